//! The chaos run's checkers, pure functions of what the run recorded: linearizability of the
//! register history (Wing & Gong's search with Lowe's just-in-time linearization and a cache
//! of visited states, after Porcupine), acknowledged appends present exactly once, watch
//! streams in order without gaps or duplicates, bindings that never move, and the containers
//! the nodes run against the pods the API has.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

/// The return time of an operation whose outcome the client never learned (a write that timed
/// out, or whose connection broke after it was sent): it may take effect at any time after
/// its call, or never.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// What a client did to a register, with what it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RegisterOp {
    /// A read that returned this value (`None`: the register did not exist).
    Read(Option<String>),
    /// A write of this value (values are unique across the run).
    Write(String),
}

/// One operation of the register history; times are microseconds since the run began.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Operation {
    pub client: usize,
    pub key: String,
    pub op: RegisterOp,
    pub call: u64,
    /// When the answer came, or [`UNKNOWN`].
    pub ret: u64,
}

/// One broken invariant, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Violation {
    /// The invariant, e.g. `linearizable`, `acknowledged-write-present`.
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// Checks that the history of every register is linearizable with respect to a register that
/// starts as `initial` (per key). Returns one violation per key that is not.
pub(crate) fn linearizable(
    history: &[Operation],
    initial: &BTreeMap<String, Option<String>>,
) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut out = Vec::new();
    for (key, ops) in by_key {
        let start = initial.get(key).cloned().flatten();
        if let Err(why) = check_register(&ops, start.as_deref()) {
            out.push(violation(
                "linearizable",
                format!("register {key:?} ({} operations): {why}", ops.len()),
            ));
        }
    }
    out
}

/// A register's values as small numbers (0: absent), so that states are cheap to cache.
#[derive(Default)]
struct Values {
    ids: HashMap<String, u32>,
}

impl Values {
    fn id(&mut self, v: Option<&str>) -> u32 {
        match v {
            None => 0,
            Some(v) => {
                let next = self.ids.len() as u32 + 1;
                *self.ids.entry(v.to_string()).or_insert(next)
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    Read(u32),
    Write(u32),
}

const NIL: usize = usize::MAX;

/// One call or return event of the search's doubly linked list.
struct Entry {
    op: usize,
    call: bool,
    /// For a call: its return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

fn check_register(ops: &[&Operation], initial: Option<&str>) -> Result<(), String> {
    // A write whose outcome is unknown and whose value no read returned can always be placed
    // after everything else (or nowhere): leaving it out changes nothing and keeps the
    // search small.
    let observed: HashSet<&str> = ops
        .iter()
        .filter_map(|o| match &o.op {
            RegisterOp::Read(Some(v)) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let ops: Vec<&Operation> = ops
        .iter()
        .copied()
        .filter(|o| match &o.op {
            RegisterOp::Write(v) => o.ret != UNKNOWN || observed.contains(v.as_str()),
            RegisterOp::Read(_) => true,
        })
        .collect();
    let mut values = Values::default();
    let initial = values.id(initial);
    let steps: Vec<Step> = ops
        .iter()
        .map(|o| match &o.op {
            RegisterOp::Read(v) => Step::Read(values.id(v.as_deref())),
            RegisterOp::Write(v) => Step::Write(values.id(Some(v))),
        })
        .collect();
    // Events in time order, calls before returns at the same instant (concurrent: the
    // permissive reading, so that equal clock readings never make a false violation).
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, o) in ops.iter().enumerate() {
        if o.ret < o.call {
            return Err(format!("operation {i} returns before its call"));
        }
        events.push((o.call, 0, i));
        events.push((o.ret, 1, i));
    }
    events.sort();
    // Entry 0 is the head sentinel; event k is entry k + 1.
    let mut list: Vec<Entry> = Vec::with_capacity(events.len() + 1);
    list.push(Entry {
        op: NIL,
        call: false,
        partner: NIL,
        prev: NIL,
        next: if events.is_empty() { NIL } else { 1 },
    });
    let mut ret_entry = vec![NIL; ops.len()];
    for (k, &(_, kind, op)) in events.iter().enumerate() {
        let idx = k + 1;
        if kind == 1 {
            ret_entry[op] = idx;
        }
        list.push(Entry {
            op,
            call: kind == 0,
            partner: NIL,
            prev: k,
            next: if idx == events.len() { NIL } else { idx + 1 },
        });
    }
    for e in list.iter_mut().skip(1) {
        if e.call {
            e.partner = ret_entry[e.op];
        }
    }
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, u32)> = HashSet::new();
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut state = initial;
    let mut best: Vec<u64> = linearized.clone();
    let mut best_len = 0usize;
    let mut entry = list[0].next;
    while list[0].next != NIL {
        let e = &list[entry];
        if e.call {
            let next_state = match steps[e.op] {
                Step::Write(v) => Some(v),
                Step::Read(v) => (v == state).then_some(state),
            };
            if let Some(s) = next_state {
                linearized[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((linearized.clone(), s)) {
                    stack.push((entry, state));
                    if stack.len() > best_len {
                        best_len = stack.len();
                        best.clone_from(&linearized);
                    }
                    state = s;
                    lift(&mut list, entry);
                    entry = list[0].next;
                    continue;
                }
                linearized[e.op / 64] &= !(1 << (e.op % 64));
            }
            entry = list[entry].next;
        } else {
            let Some((call, prev)) = stack.pop() else {
                return Err(explain(&ops, &best));
            };
            state = prev;
            let op = list[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut list, call);
            entry = list[call].next;
        }
    }
    Ok(())
}

fn lift(list: &mut [Entry], call: usize) {
    for i in [call, list[call].partner] {
        let (p, n) = (list[i].prev, list[i].next);
        list[p].next = n;
        if n != NIL {
            list[n].prev = p;
        }
    }
}

fn unlift(list: &mut [Entry], call: usize) {
    for i in [list[call].partner, call] {
        let (p, n) = (list[i].prev, list[i].next);
        list[p].next = i;
        if n != NIL {
            list[n].prev = i;
        }
    }
}

/// Names the earliest operation the deepest partial linearization could not place.
fn explain(ops: &[&Operation], best: &[u64]) -> String {
    let stuck = (0..ops.len())
        .filter(|&i| best[i / 64] & (1 << (i % 64)) == 0)
        .min_by_key(|&i| ops[i].call);
    match stuck {
        None => "no linearization exists".to_string(),
        Some(i) => {
            let o = ops[i];
            let what = match &o.op {
                RegisterOp::Read(v) => format!("read of {v:?}"),
                RegisterOp::Write(v) => format!("write of {v:?}"),
            };
            let ret = if o.ret == UNKNOWN {
                "unknown".to_string()
            } else {
                format!("{:.3} ms", o.ret as f64 / 1000.0)
            };
            format!(
                "no linearization exists: the longest places {} operations and cannot place \
                 the {what} by client {} (called at {:.3} ms, returned {ret})",
                best.iter().map(|w| w.count_ones() as usize).sum::<usize>(),
                o.client,
                o.call as f64 / 1000.0,
            )
        }
    }
}

/// Every acknowledged append is listed exactly once at the end, and nothing is listed that
/// was never attempted (`maybe`: appends whose outcome the client never learned).
pub(crate) fn appends_present(
    acknowledged: &[String],
    maybe: &[String],
    listed: &[String],
) -> Vec<Violation> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for l in listed {
        *count.entry(l.as_str()).or_default() += 1;
    }
    let mut out = Vec::new();
    for a in acknowledged {
        match count.get(a.as_str()).copied().unwrap_or(0) {
            1 => {}
            0 => out.push(violation(
                "acknowledged-write-present",
                format!("the acknowledged write {a:?} is lost"),
            )),
            n => out.push(violation(
                "acknowledged-write-present",
                format!("the acknowledged write {a:?} is present {n} times"),
            )),
        }
    }
    let attempted: HashSet<&str> = acknowledged
        .iter()
        .chain(maybe)
        .map(String::as_str)
        .collect();
    let mut phantoms: Vec<&str> = count
        .keys()
        .copied()
        .filter(|l| !attempted.contains(l))
        .collect();
    phantoms.sort_unstable();
    for p in phantoms {
        out.push(violation(
            "acknowledged-write-present",
            format!("{p:?} is present but no client wrote it"),
        ));
    }
    out
}

/// What one watch connection delivered: it was opened at `from` and delivered `events`
/// (revision, object name), in arrival order.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct WatchSegment {
    pub from: u64,
    pub events: Vec<(u64, String)>,
}

/// What the watches' checks found besides violations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct WatchSummary {
    pub events: usize,
    pub segments: usize,
    /// Acknowledged writes the watcher could not see because its revision had been compacted
    /// and it relisted (legitimate: a watch from a compacted revision is 410 Gone).
    pub skipped_by_relist: usize,
}

/// Checks a watcher's segments against the acknowledged writes (revision, name): every
/// segment delivers strictly increasing revisions, segments never go back, and every
/// acknowledged write inside a segment's span (from its start to its last event) was
/// delivered by it, for the right object.
pub(crate) fn watch_complete(
    what: &str,
    segments: &[WatchSegment],
    acknowledged: &[(u64, String)],
) -> (Vec<Violation>, WatchSummary) {
    let mut out = Vec::new();
    let mut summary = WatchSummary {
        segments: segments.len(),
        ..WatchSummary::default()
    };
    let mut last = 0u64;
    for (k, seg) in segments.iter().enumerate() {
        if seg.from < last {
            out.push(violation(
                "watch-in-order",
                format!(
                    "{what}: watch {k} starts at revision {} before the {last} already delivered",
                    seg.from
                ),
            ));
        }
        let mut prev = seg.from;
        for (rv, name) in &seg.events {
            summary.events += 1;
            if *rv == prev && *rv != seg.from {
                out.push(violation(
                    "watch-no-duplicates",
                    format!("{what}: watch {k} delivered revision {rv} ({name}) twice"),
                ));
            } else if *rv <= prev {
                out.push(violation(
                    "watch-in-order",
                    format!("{what}: watch {k} delivered revision {rv} ({name}) after {prev}"),
                ));
            }
            prev = prev.max(*rv);
        }
        last = last.max(prev);
    }
    for (rv, name) in acknowledged {
        let covering = segments
            .iter()
            .enumerate()
            .find(|(_, s)| s.from < *rv && s.events.last().is_some_and(|(l, _)| l >= rv));
        match covering {
            None => {
                // Outside every span: between a compacted revision and a relist, or after
                // the watcher's last event (the run checks separately that it caught up).
                if segments.iter().any(|s| s.from >= *rv) {
                    summary.skipped_by_relist += 1;
                }
            }
            Some((k, s)) => match s.events.iter().find(|(r, _)| r == rv) {
                None => out.push(violation(
                    "watch-no-gaps",
                    format!("{what}: watch {k} skipped revision {rv} (the acknowledged write of {name})"),
                )),
                Some((_, got)) if got != name => out.push(violation(
                    "watch-no-gaps",
                    format!("{what}: watch {k} delivered {got} at revision {rv}, where {name} was written"),
                )),
                Some(_) => {}
            },
        }
    }
    (out, summary)
}

/// A pod's binding seen by a watcher: once a pod (by uid) is bound to a node, it is never
/// bound to another.
pub(crate) fn bound_once(observed: &[(String, String, String)]) -> Vec<Violation> {
    let mut node_of: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut out = Vec::new();
    for (uid, pod, node) in observed {
        if node.is_empty() {
            continue;
        }
        match node_of.get(uid.as_str()) {
            None => {
                node_of.insert(uid, (pod, node));
            }
            Some((_, first)) if first != node => out.push(violation(
                "bound-once",
                format!("pod {pod} (uid {uid}) was bound to {first} and then to {node}"),
            )),
            Some(_) => {}
        }
    }
    out
}

/// A container found running on a node, from the runtime's state on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RunningContainer {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub id: String,
}

/// A pod as the API has it: (uid, namespace/name, node name).
pub(crate) type PodRecord = (String, String, String);

/// No two running containers belong to one pod name, every running container belongs to a
/// pod the API has, and runs on the node that pod is bound to.
pub(crate) fn containers_match(running: &[RunningContainer], pods: &[PodRecord]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut by_name: BTreeMap<(String, String, String), Vec<&RunningContainer>> = BTreeMap::new();
    for c in running {
        by_name
            .entry((c.namespace.clone(), c.pod.clone(), c.container.clone()))
            .or_default()
            .push(c);
    }
    for ((ns, pod, container), cs) in &by_name {
        if cs.len() > 1 {
            let at: Vec<String> = cs
                .iter()
                .map(|c| format!("{} on {}", c.id, c.node))
                .collect();
            out.push(violation(
                "one-container-per-pod",
                format!(
                    "{} running containers for {container} of pod {ns}/{pod}: {}",
                    cs.len(),
                    at.join(", ")
                ),
            ));
        }
    }
    let by_uid: HashMap<&str, (&str, &str)> = pods
        .iter()
        .map(|(uid, name, node)| (uid.as_str(), (name.as_str(), node.as_str())))
        .collect();
    for c in running {
        match by_uid.get(c.uid.as_str()) {
            None => out.push(violation(
                "no-orphan-containers",
                format!(
                    "container {} ({} of {}/{}, uid {}) runs on {} but the pod is gone",
                    c.id, c.container, c.namespace, c.pod, c.uid, c.node
                ),
            )),
            Some((_, node)) if *node != c.node => out.push(violation(
                "bound-once",
                format!(
                    "pod {}/{} is bound to {node} but its container {} runs on {}",
                    c.namespace, c.pod, c.id, c.node
                ),
            )),
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(client: usize, v: &str, call: u64, ret: u64) -> Operation {
        Operation {
            client,
            key: "k".into(),
            op: RegisterOp::Write(v.into()),
            call,
            ret,
        }
    }

    fn r(client: usize, v: Option<&str>, call: u64, ret: u64) -> Operation {
        Operation {
            client,
            key: "k".into(),
            op: RegisterOp::Read(v.map(str::to_string)),
            call,
            ret,
        }
    }

    fn check(h: &[Operation]) -> Vec<Violation> {
        linearizable(h, &BTreeMap::from([("k".to_string(), Some("init".into()))]))
    }

    #[test]
    fn sequential_and_concurrent_histories_are_linearizable() {
        assert!(check(&[w(0, "a", 0, 10), r(1, Some("a"), 20, 30)]).is_empty());
        // Concurrent write and reads: either order of the reads around the write is fine,
        // as long as no read goes back.
        let h = [
            w(0, "a", 0, 100),
            r(1, Some("init"), 10, 20),
            r(2, Some("a"), 30, 40),
            r(1, Some("a"), 50, 60),
        ];
        assert!(check(&h).is_empty());
        assert!(check(&[r(0, Some("init"), 0, 1)]).is_empty());
    }

    #[test]
    fn a_stale_read_after_a_newer_one_is_not_linearizable() {
        // Client 2 saw "b"; afterwards client 1 reads "a" again: the register went back.
        let h = [
            w(0, "a", 0, 10),
            w(0, "b", 20, 100),
            r(2, Some("b"), 30, 40),
            r(1, Some("a"), 50, 60),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, "linearizable");
        assert!(
            v[0].detail.contains("read of Some(\"a\") by client 1"),
            "{}",
            v[0]
        );
    }

    #[test]
    fn a_read_of_a_value_never_written_or_of_a_write_not_yet_called_is_caught() {
        assert_eq!(check(&[r(0, Some("ghost"), 0, 5)]).len(), 1);
        // The read returned before the write was called.
        assert_eq!(check(&[r(0, Some("a"), 0, 5), w(1, "a", 10, 20)]).len(), 1);
    }

    #[test]
    fn a_write_of_unknown_outcome_may_land_late_or_never() {
        // Timed out, then seen much later: it took effect after its call.
        let h = [
            w(0, "a", 0, UNKNOWN),
            r(1, Some("init"), 50, 60),
            r(1, Some("a"), 500, 510),
        ];
        assert!(check(&h).is_empty());
        // Timed out and never seen: it may never have happened.
        let h = [w(0, "a", 0, UNKNOWN), r(1, Some("init"), 500, 510)];
        assert!(check(&h).is_empty());
        // But it cannot land before it was called.
        let h = [r(1, Some("a"), 0, 5), w(0, "a", 10, UNKNOWN)];
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn an_acknowledged_write_that_a_later_read_misses_is_not_linearizable() {
        // The lost-update shape: the write was acknowledged, yet a read after it sees the old
        // value (a leader that acknowledged before replicating, then lost it).
        let h = [w(0, "a", 0, 10), r(1, Some("init"), 20, 30)];
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn registers_are_checked_one_by_one() {
        let mut h = vec![w(0, "a", 0, 10), r(1, Some("init"), 20, 30)];
        h[1].key = "other".into();
        let init = BTreeMap::from([
            ("k".to_string(), Some("init".to_string())),
            ("other".to_string(), Some("init".to_string())),
        ]);
        assert!(linearizable(&h, &init).is_empty());
    }

    #[test]
    fn many_concurrent_clients_check_quickly() {
        // 4 clients, 2,000 overlapping operations on one register, linearizable by
        // construction: each write is visible from its return on.
        let mut h = Vec::new();
        let mut current = "init".to_string();
        for i in 0..500u64 {
            let t = i * 100;
            let v = format!("v{i}");
            h.push(w(0, &v, t, t + 150));
            h.push(r(1, Some(&current), t + 1, t + 40));
            h.push(r(2, Some(&v), t + 160, t + 170));
            h.push(r(3, Some(&v), t + 151, t + 199));
            current = v;
        }
        assert!(check(&h).is_empty());
    }

    #[test]
    fn lost_duplicated_and_phantom_appends_are_reported() {
        let acked = vec!["a".to_string(), "b".into(), "c".into()];
        let maybe = vec!["m".to_string()];
        assert!(appends_present(&acked, &maybe, &["a".into(), "b".into(), "c".into()]).is_empty());
        assert!(appends_present(
            &acked,
            &maybe,
            &["a".into(), "b".into(), "c".into(), "m".into()]
        )
        .is_empty());
        let v = appends_present(
            &acked,
            &maybe,
            &["a".into(), "c".into(), "c".into(), "x".into()],
        );
        let details: Vec<&str> = v.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "the acknowledged write \"b\" is lost",
                "the acknowledged write \"c\" is present 2 times",
                "\"x\" is present but no client wrote it",
            ]
        );
    }

    #[test]
    fn the_checkers_report_a_non_linearizable_history_and_a_lost_write_together() {
        // What a store that acknowledged a write and then lost it would leave behind: the
        // register reads the old value after the acknowledged write, and the append the same
        // client acknowledged is missing from the final list.
        let history = [
            w(0, "a", 0, 10),
            r(1, Some("a"), 20, 30),
            r(2, Some("init"), 40, 50),
        ];
        let lin = check(&history);
        let lost = appends_present(
            &["log-0-1".into(), "log-0-2".into()],
            &[],
            &["log-0-1".into()],
        );
        let found: Vec<&str> = lin.iter().chain(&lost).map(|v| v.invariant).collect();
        assert_eq!(found, ["linearizable", "acknowledged-write-present"]);
        assert!(
            lost[0].detail.contains("\"log-0-2\" is lost"),
            "{}",
            lost[0]
        );
    }

    fn seg(from: u64, events: &[(u64, &str)]) -> WatchSegment {
        WatchSegment {
            from,
            events: events.iter().map(|(r, n)| (*r, n.to_string())).collect(),
        }
    }

    #[test]
    fn watches_in_order_resumed_and_relisted_pass() {
        let acked = [
            (11, "a".to_string()),
            (12, "b".into()),
            (20, "c".into()),
            (31, "d".into()),
        ];
        // Resumed at 12 after a broken connection; relisted at 30 after a compaction (20 is
        // skipped by the relist, legitimately).
        let segs = [
            seg(10, &[(11, "a"), (12, "b")]),
            seg(12, &[(15, "x")]),
            seg(30, &[(31, "d")]),
        ];
        let (v, s) = watch_complete("configmaps", &segs, &acked);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(s.skipped_by_relist, 1);
        assert_eq!(s.events, 4);
    }

    #[test]
    fn watch_gaps_duplicates_and_reordering_are_reported() {
        let acked = [(11, "a".to_string()), (12, "b".into()), (13, "c".into())];
        let (v, _) = watch_complete("cm", &[seg(10, &[(11, "a"), (13, "c")])], &acked);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "watch-no-gaps");
        let (v, _) = watch_complete(
            "cm",
            &[seg(10, &[(11, "a"), (12, "b"), (12, "b"), (13, "c")])],
            &acked,
        );
        assert_eq!(
            v.iter().map(|v| v.invariant).collect::<Vec<_>>(),
            ["watch-no-duplicates"]
        );
        let (v, _) = watch_complete("cm", &[seg(10, &[(12, "b"), (11, "a"), (13, "c")])], &acked);
        assert_eq!(
            v.iter().map(|v| v.invariant).collect::<Vec<_>>(),
            ["watch-in-order"]
        );
        // A resume that goes back delivers old events again.
        let (v, _) = watch_complete(
            "cm",
            &[
                seg(10, &[(11, "a"), (12, "b")]),
                seg(11, &[(12, "b"), (13, "c")]),
            ],
            &acked,
        );
        assert!(v.iter().any(|v| v.invariant == "watch-in-order"), "{v:?}");
        // The wrong object at an acknowledged revision.
        let (v, _) = watch_complete("cm", &[seg(10, &[(11, "a"), (12, "z"), (13, "c")])], &acked);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].detail.contains("delivered z at revision 12"),
            "{}",
            v[0]
        );
    }

    #[test]
    fn a_pod_bound_twice_is_reported() {
        let o = |uid: &str, node: &str| (uid.to_string(), format!("pod-{uid}"), node.to_string());
        assert!(bound_once(&[o("1", ""), o("1", "n1"), o("1", "n1"), o("2", "n2")]).is_empty());
        let v = bound_once(&[o("1", "n1"), o("1", "n2")]);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].detail,
            "pod pod-1 (uid 1) was bound to n1 and then to n2"
        );
    }

    #[test]
    fn containers_are_checked_against_pods() {
        let c = |node: &str, pod: &str, uid: &str, id: &str| RunningContainer {
            node: node.into(),
            namespace: "ns".into(),
            pod: pod.into(),
            uid: uid.into(),
            container: "main".into(),
            id: id.into(),
        };
        let pods = vec![
            ("u1".to_string(), "ns/p1".to_string(), "n1".to_string()),
            ("u2".to_string(), "ns/p2".to_string(), "n2".to_string()),
        ];
        assert!(
            containers_match(&[c("n1", "p1", "u1", "a"), c("n2", "p2", "u2", "b")], &pods)
                .is_empty()
        );
        let v = containers_match(
            &[
                c("n1", "p1", "u1", "a"),
                c("n2", "p1", "u1", "b"),
                c("n1", "p9", "u9", "c"),
            ],
            &pods,
        );
        let kinds: Vec<&str> = v.iter().map(|v| v.invariant).collect();
        assert_eq!(
            kinds,
            [
                "one-container-per-pod",
                "bound-once",
                "no-orphan-containers"
            ]
        );
    }
}
