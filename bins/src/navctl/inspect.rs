//! `navctl inspect`: the actor message inspector in the terminal, over every master's debug
//! views (`/debug/actors`, `/debug/messages`, `/debug/controlplane`), as cluster-admin.
//!
//! The masters are found through their API leases (`kube-system/apiserver-<member>`, which
//! name each master's API address), or given with `--api`; the nodes through the Node
//! objects, each read by a master from its kubelet endpoint (`/debug/nodes/<node>/...`).
//! Every process (a master, a node agent, a single server's embedded node) has its own
//! actors and tap; the views merge them.
//!
//! - `inspect actors [PREFIX]`: the supervision tree of each master, with kind, status,
//!   mailbox depth, messages handled, restarts, last error and summary, and which master's
//!   control plane is active;
//! - `inspect messages [--follow]`: the message taps merged in time order (following polls
//!   every master for what came since its last record);
//! - `inspect trace ID`: every message one request caused (its correlation id, which every
//!   API response carries in `x-correlation-id`), across masters, in order, with offsets;
//! - `inspect top`: a refreshing view of the busiest actors (messages handled per second)
//!   and the deepest mailboxes, with the restarts since it started.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use navarch_client::https::Method;
use navarch_client::kubeconfig::Kubeconfig;
use navarch_client::{Client, HttpsClient};
use serde_json::Value;

use super::output::TextTable;
use super::Conn;

/// `navctl inspect`.
#[derive(Subcommand, Debug)]
pub enum InspectCommand {
    /// The supervision tree of every master (or one), with each actor's counters.
    Actors(ActorsArgs),
    /// Messages from every master's tap, merged in time order.
    Messages(MessagesArgs),
    /// Every message one request caused, across masters, in order with timings.
    Trace(TraceArgs),
    /// A refreshing view of the busiest actors and deepest mailboxes, like top.
    Top(TopArgs),
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub masters: Masters,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Actors shown.
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Stop after this many refreshes (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    pub iterations: u64,
}

/// Which masters to ask.
#[derive(Args, Debug, Clone)]
pub struct Masters {
    #[command(flatten)]
    pub conn: Conn,
    /// A master's API URL (repeat for each) [default: every master with a live API lease].
    #[arg(long = "api")]
    pub servers: Vec<String>,
    /// Only this master (its name, as in `--name`).
    #[arg(long, conflicts_with = "node")]
    pub master: Option<String>,
    /// Only this node agent (its Node's name).
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Args, Debug)]
pub struct ActorsArgs {
    #[command(flatten)]
    pub masters: Masters,
    /// Only actors under this path (`/master/m1/controllers`).
    pub prefix: Option<String>,
}

#[derive(Args, Debug)]
pub struct MessagesArgs {
    #[command(flatten)]
    pub masters: Masters,
    /// Keep printing messages as they come (until interrupted).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only messages to or from actors under this path.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only messages of this type.
    #[arg(long = "type")]
    pub message_type: Option<String>,
    /// Only messages of this request (a correlation id).
    #[arg(long)]
    pub trace: Option<String>,
    /// How many of the latest messages each master gives at first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    pub masters: Masters,
    /// The correlation id (32 hex digits, from an API response's `x-correlation-id`).
    pub id: String,
}

/// One process whose views are read: a master (through its own API) or a node agent
/// (through a master, from the node's kubelet endpoint).
struct Process {
    /// `m1`, or `node/n1`.
    name: String,
    url: String,
    api: HttpsClient,
    /// Where its views are: `/debug` or `/debug/nodes/<node>`.
    base: String,
    is_node: bool,
}

fn client_for(cfg: &Kubeconfig, url: &str) -> Result<HttpsClient> {
    let mut https = navarch_client::HttpsConfig::from_kubeconfig(cfg);
    https.servers = vec![url
        .parse()
        .map_err(|e| anyhow::anyhow!("error: API URL {url:?}: {e}"))?];
    HttpsClient::new(https).context("error: an HTTPS client")
}

/// The masters' API URLs from their live leases (`navarch.io/api-address`).
async fn leased(api: &HttpsClient) -> Result<Vec<String>> {
    let leases = navarch_client::kind("coordination.k8s.io", "v1", "leases");
    let opts = navarch_model::options::ListOptions {
        label_selector: navarch_model::selector::LabelSelector::parse(&format!(
            "{}=true",
            navarch_apiserver::masterservice::LEASE_LABEL
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?,
        ..Default::default()
    };
    let list = api
        .list(leases, Some("kube-system"), &opts)
        .await
        .map_err(super::server_error)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // The same liveness the masters' own endpoint reconciler applies.
    let urls = navarch_apiserver::masterservice::live_addresses(&list.items, now)
        .into_iter()
        .map(|a| format!("https://{a}"))
        .collect();
    Ok(urls)
}

async fn get_json(api: &HttpsClient, path: &str) -> Result<Value> {
    api.raw(Method::GET, path, None)
        .await
        .and_then(|r| r.json())
        .map_err(super::server_error)
}

/// The processes to ask: the masters, each named by its `/debug/controlplane`, then the
/// nodes that report a kubelet endpoint (hollow nodes report none), read through the first
/// master; `--master` or `--node` keeps one.
async fn processes(m: &Masters) -> Result<Vec<Process>> {
    let path = m.conn.kubeconfig_path();
    let cfg =
        Kubeconfig::load(&path).with_context(|| format!("error: kubeconfig {}", path.display()))?;
    let urls = if m.servers.is_empty() {
        let first = client_for(&cfg, &cfg.server)?;
        let found = leased(&first).await?;
        if found.is_empty() {
            vec![cfg.server.clone()]
        } else {
            found
        }
    } else {
        m.servers.clone()
    };
    let mut out = Vec::new();
    for url in urls {
        let api = client_for(&cfg, &url)?;
        let name = match get_json(&api, "/debug/controlplane").await {
            Ok(v) => v["master"].as_str().unwrap_or("?").to_string(),
            Err(e) => {
                eprintln!("warning: master at {url} not reached: {e}");
                continue;
            }
        };
        out.push(Process {
            name,
            url,
            api,
            base: "/debug".into(),
            is_node: false,
        });
    }
    let Some(first) = out.first() else {
        bail!("error: no master reached");
    };
    let nodes = first
        .api
        .list(
            navarch_client::kind("", "v1", "nodes"),
            None,
            &Default::default(),
        )
        .await
        .map_err(super::server_error)?;
    let (via_url, via_api) = (first.url.clone(), first.api.clone());
    for n in &nodes.items {
        let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
        let port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap_or(0);
        if name.is_empty() || port == 0 {
            continue;
        }
        out.push(Process {
            base: format!("/debug/nodes/{}", q(&name)),
            name: format!("node/{name}"),
            url: via_url.clone(),
            api: via_api.clone(),
            is_node: true,
        });
    }
    if let Some(want) = &m.master {
        out.retain(|p| !p.is_node && p.name == *want);
    }
    if let Some(want) = &m.node {
        out.retain(|p| p.is_node && p.name == format!("node/{want}"));
    }
    if out.is_empty() {
        let which = match (&m.master, &m.node) {
            (Some(n), _) => format!(" named {n:?}"),
            (_, Some(n)) => format!(" on node {n:?}"),
            _ => String::new(),
        };
        bail!("error: no master to inspect{which}");
    }
    Ok(out)
}

/// Percent-encodes a query value (paths and ids are ASCII; anything else is escaped).
fn q(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The rows of one master's actors: the tree by path, each actor named by its path below
/// its nearest shown ancestor (`default/web` when `default` is no actor) and indented one
/// step deeper than that ancestor.
pub fn actor_rows(actors: &[Value]) -> Vec<Vec<String>> {
    let mut sorted: Vec<&Value> = actors.iter().collect();
    // Segment by segment, so that a subtree stays under its root (`node/x` before
    // `node-ipam`, which a plain string order would put between them).
    let segments = |a: &Value| -> Vec<String> {
        a["path"]
            .as_str()
            .unwrap_or("")
            .split('/')
            .map(str::to_string)
            .collect()
    };
    sorted.sort_by_key(|a| segments(a));
    let mut levels: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for a in sorted {
        let path = a["path"].as_str().unwrap_or("");
        // Sorted by path, so an ancestor is always seen before its descendants.
        let parent = levels
            .keys()
            .filter(|p| path.starts_with(&format!("{p}/")))
            .max_by_key(|p| p.len())
            .cloned();
        let (name, level) = match parent {
            Some(p) => (path[p.len() + 1..].to_string(), levels[&p] + 1),
            None => (path.trim_start_matches('/').to_string(), 0),
        };
        levels.insert(path.to_string(), level);
        let text = |k: &str| match &a[k] {
            Value::String(s) => s.clone(),
            Value::Null => "-".to_string(),
            other => other.to_string(),
        };
        rows.push(vec![
            format!("{}{name}", "  ".repeat(level)),
            text("kind"),
            text("status"),
            text("mailbox_depth"),
            text("handled"),
            text("restarts"),
            text("last_error"),
            text("summary"),
        ]);
    }
    rows
}

async fn actors(a: &ActorsArgs) -> Result<()> {
    for m in processes(&a.masters).await? {
        let mut path = format!("{}/actors", m.base);
        if let Some(p) = &a.prefix {
            path.push_str(&format!("?prefix={}", q(p)));
        }
        let list = match get_json(&m.api, &path).await {
            Ok(l) => l,
            Err(e) if m.is_node => {
                println!("{}: not reachable: {e}\n", m.name);
                continue;
            }
            Err(e) => return Err(e),
        };
        let items = list.as_array().cloned().unwrap_or_default();
        let restarts: u64 = items.iter().filter_map(|i| i["restarts"].as_u64()).sum();
        if m.is_node {
            println!(
                "{} (through {}): {} actors, {} restarts",
                m.name,
                m.url,
                items.len(),
                restarts
            );
        } else {
            let cp = get_json(&m.api, "/debug/controlplane").await?;
            println!(
                "master {} ({}): control plane {}, {} actors, {} restarts",
                m.name,
                m.url,
                if cp["active"] == Value::Bool(true) {
                    "active"
                } else {
                    "standby"
                },
                items.len(),
                restarts
            );
        }
        let table = TextTable {
            headers: [
                "ACTOR",
                "KIND",
                "STATUS",
                "MAILBOX",
                "HANDLED",
                "RESTARTS",
                "LAST ERROR",
                "SUMMARY",
            ]
            .map(String::from)
            .to_vec(),
            rows: actor_rows(&items),
        };
        print!("{}", table.render());
        println!();
    }
    Ok(())
}

/// One tap record as a line: time, master, sender → receiver, type, outcome, handling.
pub fn message_line(master: &str, r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("-");
    let via = match s("via") {
        "quic_out" => " =>",
        "quic_in" => " <=",
        _ => " ->",
    };
    format!(
        "{} {master:<4} {}{via} {} {} {} {}us{}",
        s("time"),
        s("sender"),
        s("receiver"),
        s("message_type"),
        s("outcome"),
        r["handling_us"].as_u64().unwrap_or(0),
        r["correlation"]
            .as_str()
            .map(|c| format!(" trace={c}"))
            .unwrap_or_default()
    )
}

fn messages_query(a: &MessagesArgs, since: Option<u64>) -> String {
    let mut parts = vec![format!("limit={}", a.limit)];
    if let Some(p) = &a.actor {
        parts.push(format!("prefix={}", q(p)));
    }
    if let Some(t) = &a.message_type {
        parts.push(format!("type={}", q(t)));
    }
    if let Some(c) = &a.trace {
        parts.push(format!("correlation={}", q(c)));
    }
    if let Some(s) = since {
        parts.push(format!("since={s}"));
    }
    format!("messages?{}", parts.join("&"))
}

/// How often `--follow` asks each master for what is new.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

async fn messages(a: &MessagesArgs) -> Result<()> {
    let ms = processes(&a.masters).await?;
    let mut since: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let mut batch: Vec<(String, Value)> = Vec::new();
        for m in &ms {
            let path = format!(
                "{}/{}",
                m.base,
                messages_query(a, since.get(&m.name).copied())
            );
            let records = match get_json(&m.api, &path).await {
                Ok(v) => v.as_array().cloned().unwrap_or_default(),
                Err(e) if a.follow => {
                    eprintln!("warning: {}: {e}", m.name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(last) = records.iter().filter_map(|r| r["seq"].as_u64()).max() {
                since.insert(m.name.clone(), last + 1);
            }
            batch.extend(records.into_iter().map(|r| (m.name.clone(), r)));
        }
        batch.sort_by(|x, y| x.1["time"].as_str().cmp(&y.1["time"].as_str()));
        for (master, r) in &batch {
            println!("{}", message_line(master, r));
        }
        if !a.follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Milliseconds between two RFC 3339 times with fractions (`None` if either is not one).
fn millis_between(from: &str, to: &str) -> Option<f64> {
    let parse = |t: &str| -> Option<f64> {
        let (whole, frac) = match t.trim_end_matches('Z').split_once('.') {
            Some((w, f)) => (format!("{w}Z"), format!("0.{f}")),
            None => (t.to_string(), "0".to_string()),
        };
        let secs = navarch_model::time::parse_rfc3339(&whole)?;
        Some(secs as f64 + frac.parse::<f64>().ok()?)
    };
    Some((parse(to)? - parse(from)?) * 1000.0)
}

async fn trace(a: &TraceArgs) -> Result<()> {
    if a.id.parse::<navarch_net::trace::CorrelationId>().is_err() {
        bail!(
            "error: {:?} is not a correlation id (32 lowercase hex digits)",
            a.id
        );
    }
    let ms = processes(&a.masters).await?;
    let mut all: Vec<(String, Value)> = Vec::new();
    for m in &ms {
        let path = format!("{}/messages?correlation={}&limit=100000", m.base, q(&a.id));
        let records = match get_json(&m.api, &path).await {
            Ok(r) => r,
            Err(e) if m.is_node => {
                eprintln!("warning: {}: {e}", m.name);
                continue;
            }
            Err(e) => return Err(e),
        };
        all.extend(
            records
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|r| (m.name.clone(), r)),
        );
    }
    if all.is_empty() {
        bail!(
            "error: no master has messages of trace {} (taps keep only the latest messages)",
            a.id
        );
    }
    all.sort_by(|x, y| x.1["time"].as_str().cmp(&y.1["time"].as_str()));
    let start = all[0].1["time"].as_str().unwrap_or("").to_string();
    let masters: std::collections::BTreeSet<&str> = all.iter().map(|(m, _)| m.as_str()).collect();
    println!(
        "trace {}: {} messages across {} process(es): {}",
        a.id,
        all.len(),
        masters.len(),
        masters.into_iter().collect::<Vec<_>>().join(", ")
    );
    for (master, r) in &all {
        let at = millis_between(&start, r["time"].as_str().unwrap_or("")).unwrap_or(0.0);
        println!("+{at:>9.3}ms {}", message_line(master, r));
    }
    Ok(())
}

/// One actor's line in `inspect top`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    pub master: String,
    pub path: String,
    pub kind: String,
    pub per_second: f64,
    pub mailbox: u64,
    pub handled: u64,
    pub restarts: u64,
    pub status: String,
}

/// The rows of one refresh, busiest first (messages handled per second since `before`,
/// `secs` ago, then mailbox depth), and the restarts counted now; `before` becomes this
/// refresh's counts (empty before the first refresh, which gives no rates). An actor new
/// since the last refresh, or whose count fell (its process restarted), counts from zero.
pub fn top_rows(
    before: &mut BTreeMap<(String, String), u64>,
    now: &[(String, Vec<Value>)],
    secs: f64,
) -> (Vec<TopRow>, u64) {
    let mut rows = Vec::new();
    let mut restarts = 0;
    let mut seen = BTreeMap::new();
    let first = before.is_empty();
    for (master, actors) in now {
        for a in actors {
            let path = a["path"].as_str().unwrap_or("").to_string();
            let handled = a["handled"].as_u64().unwrap_or(0);
            let key = (master.clone(), path.clone());
            // Counters that fell belong to a restarted process: count from zero. The first
            // refresh has nothing to compare with: no rates yet.
            let prev = if first {
                handled
            } else {
                before
                    .get(&key)
                    .copied()
                    .filter(|p| *p <= handled)
                    .unwrap_or(0)
            };
            seen.insert(key, handled);
            let r = a["restarts"].as_u64().unwrap_or(0);
            restarts += r;
            rows.push(TopRow {
                master: master.clone(),
                path,
                kind: a["kind"].as_str().unwrap_or("").to_string(),
                per_second: (handled - prev) as f64 / secs.max(1e-3),
                mailbox: a["mailbox_depth"].as_u64().unwrap_or(0),
                handled,
                restarts: r,
                status: a["status"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    *before = seen;
    rows.sort_by(|x, y| {
        y.per_second
            .total_cmp(&x.per_second)
            .then(y.mailbox.cmp(&x.mailbox))
            .then(x.path.cmp(&y.path))
    });
    (rows, restarts)
}

async fn top(a: &TopArgs) -> Result<()> {
    if !(a.interval > 0.0 && a.interval <= 3600.0) {
        bail!("error: --interval must be more than 0 and at most 3600 seconds");
    }
    let ms = processes(&a.masters).await?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut before = BTreeMap::new();
    let mut first_restarts = None;
    let mut last = std::time::Instant::now();
    let mut n = 0u64;
    loop {
        let mut now = Vec::new();
        for m in &ms {
            match get_json(&m.api, &format!("{}/actors", m.base)).await {
                Ok(v) => now.push((m.name.clone(), v.as_array().cloned().unwrap_or_default())),
                Err(e) => eprintln!("warning: {}: {e}", m.name),
            }
        }
        let secs = last.elapsed().as_secs_f64();
        last = std::time::Instant::now();
        let (rows, restarts) = top_rows(&mut before, &now, secs);
        let since = *first_restarts.get_or_insert(restarts);
        if tty {
            print!("\x1b[2J\x1b[H");
        }
        println!(
            "navctl inspect top: {} process(es), {} actors, {restarts} restarts ({:+} since start); refresh {n}",
            now.len(),
            rows.len(),
            restarts as i64 - since as i64
        );
        let table = TextTable {
            headers: [
                "PROCESS", "ACTOR", "KIND", "MSG/S", "MAILBOX", "HANDLED", "RESTARTS", "STATUS",
            ]
            .map(String::from)
            .to_vec(),
            rows: rows
                .iter()
                .take(a.rows)
                .map(|r| {
                    vec![
                        r.master.clone(),
                        r.path.clone(),
                        r.kind.clone(),
                        format!("{:.1}", r.per_second),
                        r.mailbox.to_string(),
                        r.handled.to_string(),
                        r.restarts.to_string(),
                        r.status.clone(),
                    ]
                })
                .collect(),
        };
        print!("{}", table.render());
        n += 1;
        if a.iterations != 0 && n >= a.iterations {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(a.interval)).await;
    }
}

/// Runs `navctl inspect ...`.
pub async fn run(c: &InspectCommand) -> Result<()> {
    match c {
        InspectCommand::Actors(a) => actors(a).await,
        InspectCommand::Messages(a) => messages(a).await,
        InspectCommand::Trace(a) => trace(a).await,
        InspectCommand::Top(a) => top(a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actors_print_as_an_indented_tree() {
        let rows = actor_rows(&[
            json!({"path": "/master/m1/controllers/deployment", "kind": "deployment", "status": "running",
                   "mailbox_depth": 0, "handled": 5, "restarts": 1, "last_error": "boom", "summary": "3 objects"}),
            json!({"path": "/master/m1", "kind": "root", "status": "running", "mailbox_depth": 0,
                   "handled": 0, "restarts": 0, "last_error": null, "summary": ""}),
            json!({"path": "/master/m1/controllers", "kind": "group", "status": "running", "mailbox_depth": 2,
                   "handled": 9, "restarts": 0, "last_error": null, "summary": ""}),
            json!({"path": "/master/m1/controllers/namespace/shop/x", "kind": "namespace"}),
            json!({"path": "/master/m1/controllers/deployment-extra", "kind": "other"}),
        ]);
        let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            names,
            [
                "master/m1",
                "  controllers",
                "    deployment",
                "    deployment-extra",
                // No `namespace` nor `shop` actor: the path below `controllers` names it.
                "    namespace/shop/x"
            ]
        );
        assert_eq!(rows[2][5], "1");
        assert_eq!(rows[2][6], "boom");
        assert_eq!(rows[1][6], "-");
    }

    #[test]
    fn message_lines_and_offsets() {
        let r = json!({"time": "2026-12-02T04:00:00.000100Z", "via": "quic_out", "sender": "/master/m1/x",
                       "receiver": "m2", "message_type": "store.txn", "outcome": "ok", "handling_us": 42,
                       "correlation": "00000000000000000000000000000abc"});
        assert_eq!(
            message_line("m1", &r),
            "2026-12-02T04:00:00.000100Z m1   /master/m1/x => m2 store.txn ok 42us trace=00000000000000000000000000000abc"
        );
        let ms =
            millis_between("2026-12-02T04:00:00.000100Z", "2026-12-02T04:00:01.250100Z").unwrap();
        assert!((ms - 1250.0).abs() < 0.001, "{ms}");
        assert_eq!(q("/a b"), "/a%20b");
    }

    #[test]
    fn top_ranks_by_messages_per_second_then_mailbox() {
        let actor = |p: &str, handled: u64, mailbox: u64, restarts: u64| {
            json!({"path": p, "kind": "k", "handled": handled, "mailbox_depth": mailbox,
                   "restarts": restarts, "status": "running"})
        };
        let mut before = BTreeMap::new();
        let first = vec![(
            "m1".to_string(),
            vec![actor("/a", 10, 0, 0), actor("/b", 100, 0, 1)],
        )];
        let (rows, restarts) = top_rows(&mut before, &first, 1.0);
        assert_eq!(restarts, 1);
        assert!(rows.iter().all(|r| r.per_second == 0.0), "{rows:?}");
        let second = vec![(
            "m1".to_string(),
            vec![
                actor("/a", 30, 0, 0),
                actor("/b", 104, 7, 2),
                actor("/c", 0, 9, 0),
            ],
        )];
        let (rows, restarts) = top_rows(&mut before, &second, 2.0);
        assert_eq!(restarts, 2);
        let order: Vec<(&str, f64)> = rows
            .iter()
            .map(|r| (r.path.as_str(), r.per_second))
            .collect();
        assert_eq!(order, [("/a", 10.0), ("/b", 2.0), ("/c", 0.0)]);
        // A restarted process's counters fall: no negative rates.
        let third = vec![("m1".to_string(), vec![actor("/a", 3, 0, 0)])];
        let (rows, _) = top_rows(&mut before, &third, 1.0);
        assert_eq!(rows[0].per_second, 3.0);
    }
}
