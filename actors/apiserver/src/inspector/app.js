// The inspector page's script: reads this master's debug views (and its nodes', through it)
// with relative paths, refreshes the supervision trees, polls the message stream and draws
// one trace as a sequence diagram. No framework, no build step, nothing fetched from outside.
'use strict';

// Everything is asked of the master serving the page, by paths below the one it was served
// at (so the page works through `kubectl proxy` or any other prefix).
const ROOT = location.pathname.replace(/debug\/inspector\/?$/, '');
const TREE_EVERY_MS = 2000;
const MESSAGES_EVERY_MS = 1000;
const MESSAGE_ROWS = 300;
const TRACE_ROWS = 2000;
const FLASH_MS = 10000;
const ID_RE = /^[0-9a-f]{32}$/;

const state = {
  master: '',
  // The processes whose views are read: this master, then each node agent through it.
  processes: [],
  restarts: new Map(),     // "process|path" -> restarts last seen
  flashUntil: new Map(),   // "process|path" -> time until which the row flashes
  restartsSeen: 0,
  since: null,             // the message stream's next seq (null: the latest first)
  streamKey: '',
  trace: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJSON(path) {
  const r = await fetch(ROOT + path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!r.ok) {
    let msg = `HTTP ${r.status}`;
    try { msg += ': ' + (await r.json()).message; } catch (_) { /* not a Status */ }
    throw new Error(`${path}: ${msg}`);
  }
  return r.json();
}

const errors = new Map();
function report(what, err) {
  if (err) errors.set(what, String(err.message || err)); else errors.delete(what);
  $('errors').textContent = [...errors.values()].join('\n');
}

function query(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') parts.push(`${k}=${encodeURIComponent(v)}`);
  }
  return parts.length ? '?' + parts.join('&') : '';
}

// --- this master, the other masters, the nodes -------------------------------------------

async function refreshControlPlane() {
  const cp = await getJSON('debug/controlplane');
  state.master = cp.master || '?';
  const box = $('served-by');
  box.dataset.master = state.master;
  box.dataset.active = cp.active ? 'true' : 'false';
  box.replaceChildren(
    'served by master ', el('b', { text: state.master }), ' — control plane ',
    el('span', { class: cp.active ? 'active' : 'standby', text: cp.active ? 'active' : (cp.disabled ? 'disabled' : 'standby') }),
    cp.active && cp.term !== undefined && cp.term !== null ? ` (fenced to term ${cp.term})` : '',
    cp.activations !== undefined ? `, ${cp.activations} activation(s)` : '');
}

async function refreshMasters() {
  const list = await getJSON('apis/coordination.k8s.io/v1/namespaces/kube-system/leases' +
    query({ labelSelector: 'navarch.io/apiserver=true' }));
  const now = Date.now() / 1000;
  const rows = (list.items || []).map((l) => {
    const spec = l.spec || {};
    const member = spec.holderIdentity || (l.metadata.name || '').replace(/^apiserver-/, '');
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) / 1000 : NaN;
    const live = renewed + (spec.leaseDurationSeconds || 0) > now;
    const addr = ((l.metadata || {}).annotations || {})['navarch.io/api-address'] || '';
    return el('tr', { 'data-member': member, class: live ? 'live' : 'stale' },
      el('td', { text: member }), el('td', { text: addr }),
      el('td', { text: isNaN(renewed) ? '-' : `${Math.max(0, Math.round(now - renewed))}s ago` }),
      el('td', { class: live ? 'active' : 'standby', text: live ? 'live' : 'expired' }),
      el('td', { class: 'note', text: member === state.master ? 'this page' : '' }));
  });
  $('master-rows').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, text: 'no API leases' }))]));
}

async function refreshProcesses() {
  const nodes = await getJSON('api/v1/nodes');
  const procs = [{ name: state.master, base: 'debug', node: false }];
  for (const n of nodes.items || []) {
    const name = (n.metadata || {}).name;
    const port = (((n.status || {}).daemonEndpoints || {}).kubeletEndpoint || {}).Port || 0;
    // Hollow nodes report no kubelet endpoint: nothing to read.
    if (name && port) procs.push({ name: `node/${name}`, base: `debug/nodes/${encodeURIComponent(name)}`, node: true });
  }
  state.processes = procs;
  const select = $('filter-process');
  const chosen = select.value || state.master;
  select.replaceChildren(...procs.map((p) => el('option', { value: p.name, text: p.name })));
  select.value = procs.some((p) => p.name === chosen) ? chosen : state.master;
}

// --- the supervision trees -----------------------------------------------------------------

// The actors of one process in tree order, each with its name below its nearest listed
// ancestor and its depth (as `navctl inspect actors` prints them).
function treeRows(actors) {
  const segs = (a) => (a.path || '').split('/');
  const sorted = [...actors].sort((x, y) => {
    const a = segs(x), b = segs(y);
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return a.length - b.length;
  });
  const levels = new Map();
  return sorted.map((a) => {
    let parent = null;
    for (const p of levels.keys()) {
      if (a.path.startsWith(p + '/') && (!parent || p.length > parent.length)) parent = p;
    }
    const level = parent === null ? 0 : levels.get(parent) + 1;
    levels.set(a.path, level);
    return { actor: a, level, name: parent === null ? a.path.replace(/^\//, '') : a.path.slice(parent.length + 1) };
  });
}

function renderTree(proc, actors, now) {
  let restarts = 0, fresh = 0;
  const rows = treeRows(actors).map(({ actor: a, level, name }) => {
    const key = `${proc.name}|${a.path}`;
    const before = state.restarts.get(key);
    if (before !== undefined && a.restarts > before) {
      state.flashUntil.set(key, now + FLASH_MS);
      state.restartsSeen += a.restarts - before;
    }
    state.restarts.set(key, a.restarts);
    restarts += a.restarts;
    const flashing = (state.flashUntil.get(key) || 0) > now;
    if (flashing) fresh++;
    const cls = ['actor', `status-${a.status}`, a.restarts > 0 ? 'has-restarts' : '', flashing ? 'restarted' : '']
      .filter(Boolean).join(' ');
    return el('tr', { class: cls, 'data-path': a.path, 'data-restarts': a.restarts },
      el('td', { class: 'name', style: `padding-left:${6 + level * 16}px`, title: a.path, text: name }),
      el('td', { text: a.kind }), el('td', { text: a.status }),
      el('td', { class: 'num', text: a.mailbox_depth }), el('td', { class: 'num', text: a.handled }),
      el('td', { class: 'num restarts', text: a.restarts }),
      el('td', { class: 'wrap error', text: a.last_error || '' }),
      el('td', { class: 'wrap', text: a.summary || '' }));
  });
  const title = proc.node
    ? `${proc.name} (node agent, read through master ${state.master})`
    : `master ${proc.name} (this master)`;
  return el('div', { class: 'process', 'data-process': proc.name, 'data-actors': actors.length },
    el('h3', {}, title, ` — ${actors.length} actors, ${restarts} restarts`,
      fresh ? el('span', { class: 'restart-note', text: ` — ${fresh} just restarted` }) : ''),
    el('table', {},
      el('thead', {}, el('tr', {}, ...['actor', 'kind', 'status', 'mailbox', 'handled', 'restarts', 'last error', 'summary']
        .map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows)));
}

async function refreshTrees() {
  const now = Date.now();
  const parts = await Promise.all(state.processes.map(async (p) => {
    try {
      const actors = await getJSON(`${p.base}/actors`);
      report(`tree ${p.name}`, null);
      return renderTree(p, actors, now);
    } catch (e) {
      report(`tree ${p.name}`, e);
      return el('div', { class: 'process unreachable', 'data-process': p.name },
        el('h3', { text: `${p.name}: not reachable (${e.message})` }));
    }
  }));
  $('tree-list').replaceChildren(...parts);
  $('tree-summary').textContent = `refreshed ${new Date(now).toLocaleTimeString()}; ` +
    `${state.restartsSeen} restart(s) seen since this page opened`;
}

// --- the message stream --------------------------------------------------------------------

function filters() {
  return {
    process: $('filter-process').value || state.master,
    prefix: $('filter-prefix').value.trim(),
    type: $('filter-type').value.trim(),
    correlation: $('filter-trace').value.trim().toLowerCase(),
  };
}

function traceLink(id) {
  return id ? el('a', { class: 'trace-link', href: `#trace=${id}`, title: 'open this trace', text: id.slice(0, 12) + '…' }) : '';
}

function viaArrow(via) {
  return via === 'quic_out' ? '⇒' : via === 'quic_in' ? '⇐' : '→';
}

function messageRow(r) {
  const failed = r.outcome && r.outcome !== 'ok';
  return el('tr', { class: `via-${r.via}${failed ? ' failed' : ''}`, 'data-seq': r.seq },
    el('td', { text: (r.time || '').replace(/^.*T/, '') }),
    el('td', { text: r.sender || '-' }), el('td', { class: 'arrow', text: viaArrow(r.via) }),
    el('td', { text: r.receiver }), el('td', { text: r.message_type }),
    el('td', { class: 'outcome', text: r.outcome }), el('td', { class: 'num', text: r.handling_us }),
    el('td', {}, traceLink(r.correlation)));
}

async function pollMessages() {
  if ($('filter-pause').checked) return;
  const f = filters();
  if (f.correlation && !ID_RE.test(f.correlation)) {
    report('messages', new Error('the trace filter must be 32 lowercase hex digits'));
    return;
  }
  const key = JSON.stringify(f);
  if (key !== state.streamKey) {
    state.streamKey = key;
    state.since = null;
    $('message-rows').replaceChildren();
  }
  const proc = state.processes.find((p) => p.name === f.process);
  if (!proc) return;
  try {
    const records = await getJSON(`${proc.base}/messages` + query({
      prefix: f.prefix, type: f.type, correlation: f.correlation,
      since: state.since, limit: state.since === null ? 100 : 500,
    }));
    report('messages', null);
    if (key !== state.streamKey) return;
    const body = $('message-rows');
    for (const r of records) {
      body.prepend(messageRow(r));
      state.since = Math.max(state.since || 0, r.seq + 1);
    }
    while (body.children.length > MESSAGE_ROWS) body.lastChild.remove();
  } catch (e) {
    report('messages', e);
  }
}

// --- one trace as a sequence diagram -------------------------------------------------------

// Which process an endpoint belongs to: an actor path names its root (`/master/m1/...`,
// `/node/n1/...`); anything else (a QUIC peer) is shown with the process that recorded it.
function processOf(name, recordedBy) {
  let m = /^\/master\/([^/]+)/.exec(name || '');
  if (m) return m[1];
  m = /^\/node\/([^/]+)/.exec(name || '');
  if (m) return `node/${m[1]}`;
  return recordedBy;
}

function micros(t) {
  // RFC 3339 with up to nine fraction digits: milliseconds from Date, the rest by hand.
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(t || '');
  if (!m) return NaN;
  const frac = (m[2] || '').padEnd(6, '0').slice(0, 6);
  return Date.parse(m[1] + 'Z') * 1000 + Number(frac);
}

async function openTrace(id) {
  id = (id || '').trim().toLowerCase();
  const section = $('trace');
  $('trace-id').value = id;
  if (!ID_RE.test(id)) {
    section.dataset.state = 'error';
    $('trace-summary').textContent = `"${id}" is not a correlation id (32 lowercase hex digits)`;
    return;
  }
  state.trace = id;
  section.dataset.trace = id;
  section.dataset.state = 'loading';
  $('trace-summary').textContent = `loading trace ${id}…`;
  const warnings = [];
  const all = [];
  await Promise.all(state.processes.map(async (p) => {
    try {
      const records = await getJSON(`${p.base}/messages` + query({ correlation: id, limit: 100000 }));
      for (const r of records) all.push({ ...r, process: p.name, at: micros(r.time) });
    } catch (e) {
      warnings.push(`${p.name}: ${e.message}`);
    }
  }));
  if (state.trace !== id) return;
  // Causal order as the taps saw it: by time, then by each process's own sequence.
  all.sort((a, b) => (a.at - b.at) || (a.process < b.process ? -1 : a.process > b.process ? 1 : a.seq - b.seq));
  const processes = [...new Set(all.map((r) => r.process))];
  section.dataset.processes = processes.join(',');
  section.dataset.count = String(all.length);
  if (!all.length) {
    section.dataset.state = 'empty';
    $('trace-summary').textContent = `no process has messages of trace ${id} (taps keep only the latest messages)` +
      (warnings.length ? `; ${warnings.join('; ')}` : '');
    $('trace-diagram').replaceChildren();
    $('trace-rows').replaceChildren();
    return;
  }
  const span = (all[all.length - 1].at - all[0].at) / 1000;
  $('trace-summary').textContent = `trace ${id}: ${all.length} messages across ${processes.length} process(es): ` +
    `${processes.join(', ')}; ${span.toFixed(1)} ms from first to last` +
    (all.length > TRACE_ROWS ? `; the diagram shows the first ${TRACE_ROWS}` : '') +
    (warnings.length ? `; not read: ${warnings.join('; ')}` : '');
  $('trace-diagram').replaceChildren(sequenceDiagram(all.slice(0, TRACE_ROWS)));
  $('trace-rows').replaceChildren(...all.map((r) => el('tr', { class: `via-${r.via}` },
    el('td', { class: 'num', text: ((r.at - all[0].at) / 1000).toFixed(3) }), el('td', { text: r.process }),
    el('td', { text: r.sender || '-' }), el('td', { class: 'arrow', text: viaArrow(r.via) }),
    el('td', { text: r.receiver }), el('td', { text: r.message_type }),
    el('td', { class: 'outcome', text: r.outcome }), el('td', { class: 'num', text: r.handling_us }))));
  section.dataset.state = 'ready';
}

// At most `n` characters, an ellipsis standing for the rest.
function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

// A lane's two lines: for an actor below its process's root, the supervisor's segment and the
// object (`deployment` / `default/web`); for anything else (a QUIC peer), its name.
function laneLabel(name) {
  const segs = name.split('/').filter(Boolean);
  if (!name.startsWith('/') || segs.length < 2) return [clip(name, 22), 'peer'];
  const rel = segs.slice(2);
  if (!rel.length) return [clip(segs.join('/'), 22)];
  if (rel.length >= 3) return [clip(rel[rel.length - 3], 22), clip(rel.slice(-2).join('/'), 22)];
  return [clip(rel[rel.length - 1], 22), rel.length > 1 ? clip(rel[0], 22) : ''];
}

// Lanes: one per sender or receiver, grouped by process (this master first, then in order of
// appearance), in order of first appearance within a process. Arrows top to bottom in causal
// order, each labelled with its type, its offset from the first message and its handling time.
function sequenceDiagram(records) {
  const lanes = [];
  const laneOf = new Map();
  const procOrder = [state.master];
  const add = (name, recordedBy) => {
    if (!name || laneOf.has(name)) return;
    const process = processOf(name, recordedBy);
    if (!procOrder.includes(process)) procOrder.push(process);
    laneOf.set(name, null);
    lanes.push({ name, process });
  };
  for (const r of records) { add(r.sender, r.process); add(r.receiver, r.process); }
  lanes.sort((a, b) => (procOrder.indexOf(a.process) - procOrder.indexOf(b.process)));
  const LANE_W = 150, LEFT = 90, BAND_H = 22, LABEL_H = 44, ROW_H = 24, TOP = BAND_H + LABEL_H + 8;
  lanes.forEach((l, i) => { l.x = LEFT + i * LANE_W + LANE_W / 2; laneOf.set(l.name, l); });
  const width = LEFT + lanes.length * LANE_W + 20;
  const height = TOP + records.length * ROW_H + 16;
  const root = svg('svg', { class: 'sequence', width, height, viewBox: `0 0 ${width} ${height}`, 'data-lanes': lanes.length });
  const defs = svg('defs');
  for (const [id, color] of [['arrow', '#2563eb'], ['arrow-quic', '#7c3aed'], ['arrow-failed', '#c62828']]) {
    const marker = svg('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: color }));
    defs.append(marker);
  }
  root.append(defs);
  // One band per process over its lanes.
  for (const p of procOrder) {
    const mine = lanes.filter((l) => l.process === p);
    if (!mine.length) continue;
    const x0 = mine[0].x - LANE_W / 2 + 2, x1 = mine[mine.length - 1].x + LANE_W / 2 - 2;
    const g = svg('g', { class: 'process-band', 'data-process': p });
    g.append(svg('rect', { class: 'band', x: x0, y: 2, width: x1 - x0, height: BAND_H - 4, rx: 3 }));
    const label = p.startsWith('node/') ? `${p} (node agent)` : `master ${p}`;
    g.append(svg('title', {}, label));
    g.append(svg('text', { class: 'band-label', x: x0 + 6, y: BAND_H - 7 },
      clip(label, Math.max(4, Math.floor((x1 - x0 - 12) / 7)))));
    root.append(g);
  }
  for (const l of lanes) {
    const g = svg('g', { class: 'lane', 'data-process': l.process, 'data-actor': l.name });
    g.append(svg('title', {}, l.name));
    laneLabel(l.name).forEach((w, i) => g.append(svg('text', { class: 'lane-label', x: l.x, y: BAND_H + 14 + i * 13, 'text-anchor': 'middle' }, w)));
    g.append(svg('line', { class: 'lifeline', x1: l.x, y1: TOP - 6, x2: l.x, y2: height - 8 }));
    root.append(g);
  }
  const t0 = records[0].at;
  records.forEach((r, i) => {
    const y = TOP + i * ROW_H + 14;
    const to = laneOf.get(r.receiver);
    const from = r.sender ? laneOf.get(r.sender) : null;
    const failed = r.outcome && r.outcome !== 'ok';
    const quic = r.via === 'quic_out' || r.via === 'quic_in';
    const cls = `msg${quic ? ' quic' : ''}${failed ? ' failed' : ''}`;
    const marker = `url(#${failed ? 'arrow-failed' : quic ? 'arrow-quic' : 'arrow'})`;
    const g = svg('g', { class: 'row', 'data-type': r.message_type, 'data-process': r.process, 'data-receiver': r.receiver });
    g.append(svg('title', {}, `${r.process}: ${r.sender || '(no sender)'} ${viaArrow(r.via)} ${r.receiver}\n` +
      `${r.message_type} ${r.outcome}, handled in ${r.handling_us}µs at ${r.time}` + (r.summary ? `\n${r.summary}` : '')));
    g.append(svg('rect', { class: 'hit', x: 0, y: y - 16, width, height: ROW_H }));
    g.append(svg('text', { class: 'offset', x: 4, y: y + 4 }, `+${((r.at - t0) / 1000).toFixed(2)}ms`));
    let labelX;
    if (from && from !== to) {
      g.append(svg('line', { class: cls, x1: from.x, y1: y, x2: to.x + (from.x < to.x ? -3 : 3), y2: y, 'marker-end': marker }));
      labelX = (from.x + to.x) / 2;
    } else {
      // No sender known, or a message to itself: a short arrow into the lane from its left.
      g.append(svg('path', { class: cls, d: from ? `M${to.x},${y - 6} h24 v12 h-21` : `M${to.x - 40},${y} h37`, 'marker-end': marker }));
      labelX = to.x + (from ? 60 : -20);
    }
    g.append(svg('text', { class: 'msg-label', x: labelX, y: y - 4, 'text-anchor': 'middle' },
      `${r.message_type} (${r.handling_us}µs)`));
    root.append(g);
  });
  return root;
}

// --- wiring --------------------------------------------------------------------------------

function traceFromHash() {
  const m = /(?:^#|&)trace=([^&]*)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function every(ms, f) {
  let running = false;
  setInterval(async () => {
    if (running) return;
    running = true;
    try { await f(); } finally { running = false; }
  }, ms);
}

async function guarded(what, f) {
  try { await f(); report(what, null); } catch (e) { report(what, e); }
}

async function start() {
  $('trace-form').addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `trace=${$('trace-id').value.trim().toLowerCase()}`;
  });
  $('trace-close').addEventListener('click', () => {
    state.trace = null;
    history.replaceState(null, '', location.pathname + location.search);
    const s = $('trace');
    s.dataset.state = 'closed'; s.dataset.trace = ''; s.dataset.processes = ''; s.dataset.count = '0';
    $('trace-diagram').replaceChildren(); $('trace-rows').replaceChildren();
    $('trace-summary').textContent = 'Click a trace id in the message stream, or open #trace=<id>.';
  });
  $('message-filters').addEventListener('submit', (e) => { e.preventDefault(); pollMessages(); });
  window.addEventListener('hashchange', () => { const id = traceFromHash(); if (id) openTrace(id); });

  // Which master this is and which processes there are, before anything is drawn from them.
  await guarded('control plane', refreshControlPlane);
  await guarded('nodes', refreshProcesses);
  const first = [guarded('masters', refreshMasters), refreshTrees(), pollMessages()];
  const id = traceFromHash();
  if (id) first.push(openTrace(id));
  await Promise.all(first);
  document.body.dataset.ready = 'true';

  every(TREE_EVERY_MS, async () => {
    await guarded('control plane', refreshControlPlane);
    await guarded('nodes', refreshProcesses);
    await guarded('masters', refreshMasters);
    await refreshTrees();
  });
  every(MESSAGES_EVERY_MS, pollMessages);
}

start();
