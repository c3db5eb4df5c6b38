//! `navctl bench api`: create, get and list of pods through the Kubernetes API (HTTPS with a
//! client certificate) against a 3-master cluster on loopback, and in the same run the raw
//! store's create and get of the same bytes and keys over QUIC, so the API's cost over the store
//! reads as a ratio.
//!
//! Per client count, one after the other (never two at once): store create, API create, store
//! get, API get, API list. Client i is bound to master i mod 3 in every run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use navarch_net::pki::Identity;
use navarch_store::{ObjectKey, Op, ReadConsistency, StoreClient, Txn, TxnOutcome};
use reqwest::StatusCode;

use super::navarch::NavarchCluster;
use super::procs::{self, wait_for};
use super::workload::{self, Requests, RunResult};
use super::{
    list, load, ms, ApiBaseline, ApiBenchArgs, ApiConnections, MAX_CLIENTS, MAX_SECONDS,
    STARTUP_TIMEOUT,
};

/// The namespace holding the pods the get and list operations read.
const LIST_NAMESPACE: &str = "bench-list";
/// The namespace the create operations write to.
const CREATE_NAMESPACE: &str = "default";
/// The store kind of the baseline's writes: not `pods`, so the API never sees them.
const BASELINE_KIND: &str = "benchpods";
/// Upper bound on --list-size.
const MAX_LIST_SIZE: usize = 100_000;
/// reqwest's own deadline for one request (the closed loop has its own too).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent creates while filling the list namespace.
const SETUP_CONCURRENCY: usize = 16;

pub(super) fn validate(args: &ApiBenchArgs) -> Result<()> {
    if args.clients.is_empty() || args.clients.iter().any(|&c| c == 0 || c > MAX_CLIENTS) {
        bail!("--clients must list concurrencies between 1 and {MAX_CLIENTS}");
    }
    if args.seconds == 0 || args.seconds > MAX_SECONDS || args.warmup_seconds > MAX_SECONDS {
        bail!("--seconds must be between 1 and {MAX_SECONDS} (and --warmup-seconds at most that)");
    }
    if args.list_size == 0 || args.list_size > MAX_LIST_SIZE {
        bail!("--list-size must be between 1 and {MAX_LIST_SIZE}");
    }
    Ok(())
}

/// The Pod the benchmark posts (and the bytes the store baseline writes).
fn pod_body(name: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"bench":"x"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    )
    .into_bytes()
}

/// The name of pod `i` of the list namespace.
fn list_pod(i: usize) -> String {
    format!("l-{i}")
}

/// The list pod client `id` reads with its request `seq`: spread over all of them.
fn get_target(id: usize, seq: u64, list_size: usize) -> String {
    list_pod((id.wrapping_mul(7919) as u64).wrapping_add(seq) as usize % list_size)
}

/// A reqwest error with its causes (its `Display` alone hides them).
fn http_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// Sends `rb`, reads the whole body (so the connection goes back to the pool) and checks the
/// status; returns the body's length.
async fn expect(rb: reqwest::RequestBuilder, want: StatusCode) -> Result<usize, String> {
    let resp = rb.send().await.map_err(|e| http_error(&e))?;
    let code = resp.status();
    let body = resp.bytes().await.map_err(|e| http_error(&e))?;
    if code != want {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("HTTP {code} (want {want}): {text}"));
    }
    Ok(body.len())
}

/// Where benchmark client i sends its requests.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    /// `https://host:port` of its master.
    base: Arc<str>,
}

/// One HTTPS client per benchmark client or per master, as `--connections` says; client i is
/// bound to master i mod n either way.
fn targets(
    admin: &Identity,
    bases: &[Arc<str>],
    clients: usize,
    mode: ApiConnections,
) -> Result<Vec<Target>> {
    let shared: Vec<reqwest::Client> = match mode {
        ApiConnections::PerMember => bases
            .iter()
            .map(|_| crate::https_client(admin, HTTP_TIMEOUT))
            .collect::<Result<_>>()?,
        ApiConnections::PerClient => Vec::new(),
    };
    (0..clients)
        .map(|i| {
            let m = i % bases.len();
            let http = match mode {
                ApiConnections::PerMember => shared[m].clone(),
                ApiConnections::PerClient => crate::https_client(admin, HTTP_TIMEOUT)?,
            };
            Ok(Target {
                http,
                base: bases[m].clone(),
            })
        })
        .collect()
}

/// The measured operations, in the order they run for each client count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    StoreCreate,
    ApiCreate,
    StoreGet,
    ApiGet,
    ApiList,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::StoreCreate,
        Phase::ApiCreate,
        Phase::StoreGet,
        Phase::ApiGet,
        Phase::ApiList,
    ];

    fn label(self) -> &'static str {
        match self {
            Phase::StoreCreate => "store create",
            Phase::ApiCreate => "api   create",
            Phase::StoreGet => "store get",
            Phase::ApiGet => "api   get",
            Phase::ApiList => "api   list",
        }
    }
}

/// The requests of one phase. `tag` makes the created names unique per client count.
fn requests(
    phase: Phase,
    tag: &str,
    targets: &Arc<[Target]>,
    stores: &Arc<[StoreClient]>,
    list_size: usize,
    template: Option<Arc<serde_json::Value>>,
) -> Requests {
    let tag: Arc<str> = Arc::from(tag);
    let targets = targets.clone();
    let stores = stores.clone();
    let pods = navarch_model::kinds::lookup("", "v1", "pods")
        .map(|k| k.store_kind())
        .unwrap_or_else(|| "pods".into());
    match phase {
        Phase::StoreCreate => Arc::new(move |id, seq| {
            let store = stores[id % stores.len()].clone();
            let name = format!("p-{tag}-{id}-{seq}");
            let value = match &template {
                Some(t) => {
                    let mut v = t.as_ref().clone();
                    v["metadata"]["name"] = serde_json::Value::String(name.clone());
                    serde_json::to_vec(&v).unwrap_or_default()
                }
                None => pod_body(&name),
            };
            let key = ObjectKey::new(BASELINE_KIND, CREATE_NAMESPACE, name);
            Box::pin(async move {
                match store.txn(&Txn::new(vec![Op::Create { key, value }])).await {
                    Ok(TxnOutcome::Committed { .. }) => Ok(()),
                    Ok(TxnOutcome::Refused { failure, .. }) => Err(format!("refused: {failure}")),
                    Err(e) => Err(e.to_string()),
                }
            })
        }),
        Phase::ApiCreate => Arc::new(move |id, seq| {
            let t = targets[id].clone();
            let body = pod_body(&format!("p-{tag}-{id}-{seq}"));
            Box::pin(async move {
                let rb = t
                    .http
                    .post(format!(
                        "{}/api/v1/namespaces/{CREATE_NAMESPACE}/pods",
                        t.base
                    ))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body);
                expect(rb, StatusCode::CREATED).await.map(drop)
            })
        }),
        Phase::StoreGet => Arc::new(move |id, seq| {
            let store = stores[id % stores.len()].clone();
            let key = ObjectKey::new(pods.clone(), LIST_NAMESPACE, get_target(id, seq, list_size));
            Box::pin(async move {
                match store.get(&key, ReadConsistency::Linearizable).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(format!("{key:?} not found in the store")),
                    Err(e) => Err(e.to_string()),
                }
            })
        }),
        Phase::ApiGet => Arc::new(move |id, seq| {
            let t = targets[id].clone();
            let name = get_target(id, seq, list_size);
            Box::pin(async move {
                let rb = t.http.get(format!(
                    "{}/api/v1/namespaces/{LIST_NAMESPACE}/pods/{name}",
                    t.base
                ));
                expect(rb, StatusCode::OK).await.map(drop)
            })
        }),
        Phase::ApiList => Arc::new(move |id, _seq| {
            let t = targets[id].clone();
            Box::pin(async move {
                let rb = t.http.get(format!(
                    "{}/api/v1/namespaces/{LIST_NAMESPACE}/pods?limit={list_size}",
                    t.base
                ));
                expect(rb, StatusCode::OK).await.map(drop)
            })
        }),
    }
}

/// Waits for the `default` namespace on every master (the control plane creates it once a
/// leader is elected).
pub(crate) async fn wait_default_namespace(
    http: &reqwest::Client,
    bases: &[Arc<str>],
) -> Result<()> {
    for base in bases {
        wait_for(
            STARTUP_TIMEOUT,
            &format!("namespace {CREATE_NAMESPACE} on {base}"),
            || async move {
                let r = http
                    .get(format!("{base}/api/v1/namespaces/{CREATE_NAMESPACE}"))
                    .send()
                    .await;
                Ok(matches!(r, Ok(r) if r.status() == StatusCode::OK).then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

/// Waits for the `default` namespace on every master, then fills the list namespace and checks that every master lists all of it.
/// Returns the bytes of one posted pod body, one stored pod as GET returns it, and the bytes
/// of one list response.
async fn prepare(
    admin: &Identity,
    bases: &[Arc<str>],
    list_size: usize,
) -> Result<(usize, serde_json::Value, usize)> {
    let http = crate::https_client(admin, HTTP_TIMEOUT)?;
    wait_default_namespace(&http, bases).await?;
    let ns = format!(
        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{LIST_NAMESPACE}"}}}}"#
    );
    expect(
        http.post(format!("{}/api/v1/namespaces", bases[0]))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(ns),
        StatusCode::CREATED,
    )
    .await
    .map_err(anyhow::Error::msg)
    .context("create the list namespace")?;
    futures::stream::iter(0..list_size)
        .map(|i| {
            let rb = http
                .post(format!(
                    "{}/api/v1/namespaces/{LIST_NAMESPACE}/pods",
                    bases[i % bases.len()]
                ))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(pod_body(&list_pod(i)));
            async move { expect(rb, StatusCode::CREATED).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .map_err(anyhow::Error::msg)
        .context("fill the list namespace")?;
    let mut list_bytes = 0;
    for base in bases {
        let v: serde_json::Value = http
            .get(format!(
                "{base}/api/v1/namespaces/{LIST_NAMESPACE}/pods?limit={list_size}"
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let n = v["items"].as_array().map_or(0, Vec::len);
        if n != list_size {
            bail!("{base} lists {n} pods in {LIST_NAMESPACE}, want {list_size}");
        }
        list_bytes = serde_json::to_vec(&v)?.len();
    }
    let stored: serde_json::Value = http
        .get(format!(
            "{}/api/v1/namespaces/{LIST_NAMESPACE}/pods/{}",
            bases[0],
            list_pod(0)
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((pod_body(&list_pod(0)).len(), stored, list_bytes))
}

/// One measured (phase, client count).
struct Measured {
    phase: Phase,
    result: RunResult,
}

pub(super) async fn run(args: &ApiBenchArgs, root: &std::path::Path) -> Result<()> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let warmup = Duration::from_secs(args.warmup_seconds);
    let measure = Duration::from_secs(args.seconds);
    let fs = procs::filesystem_of(root).unwrap_or_else(|| "unknown filesystem".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("navctl bench api: pods through the Kubernetes API over HTTPS vs the raw store, one 3-master cluster on this machine (loopback)");
    println!(
        "  workload: {} clients; closed loop, client i bound to master i mod 3; {}s warm-up, {}s measured per operation",
        list(&args.clients),
        args.warmup_seconds,
        args.seconds
    );
    println!(
        "            per client count: store create, api create, store get, api get, api list ({} pods in namespace {LIST_NAMESPACE})",
        args.list_size
    );
    let conns = match args.connections {
        ApiConnections::PerClient => "one HTTPS client per benchmark client (its own TLS session and keep-alive connection, like a fleet of independent clients)",
        ApiConnections::PerMember => "one HTTPS client per master shared by its benchmark clients (a keep-alive pool, one connection per request in flight)",
    };
    println!("  api:   HTTP/1.1 over TLS with a client certificate (admin); {conns}");
    println!("  store: StoreClient over QUIC with mutual TLS, one connection per master shared by its clients; create = txn [Op::Create] of the posted JSON bytes, get = linearizable get (as the API's GET)");
    println!("  data dirs: {} ({fs})", root.display());
    println!(
        "  machine: {cpus} CPUs, load average {} at start (clients and servers share these CPUs; other work skews the figures)",
        load()
    );
    if fs == "tmpfs" || fs == "ramfs" {
        println!("  WARNING: the data dirs are on {fs}, where fsync costs nothing; pass --dir on a real disk");
    }

    let dir = root.join("navarch");
    std::fs::create_dir_all(&dir)?;
    let log_filter = std::env::var("NAVARCH_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut cluster = NavarchCluster::start(&master_bin, &dir, &log_filter)?;
    let stores: Arc<[StoreClient]> = cluster.connect_ready(STARTUP_TIMEOUT).await?.into();
    let admin = cluster.admin().clone();
    let bases: Vec<Arc<str>> = cluster
        .api_addrs()
        .iter()
        .map(|a| Arc::from(format!("https://{a}")))
        .collect();
    let (body_bytes, stored, list_bytes) = prepare(&admin, &bases, args.list_size)
        .await
        .context("prepare the API benchmark")?;
    let stored_bytes = serde_json::to_vec(&stored)?.len();
    // The store baseline writes either the pod as the API stores it (defaults filled in) or
    // the bytes a client posts.
    let template = match args.baseline {
        ApiBaseline::Stored => {
            let mut t = stored.clone();
            if let Some(m) = t["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            Some(Arc::new(t))
        }
        ApiBaseline::Posted => None,
    };
    let baseline_bytes = match &template {
        Some(t) => serde_json::to_vec(t.as_ref())?.len(),
        None => body_bytes,
    };
    println!(
        "  bytes: {body_bytes} per posted pod; {stored_bytes} per pod as GET returns it; {baseline_bytes} per store baseline value ({}); {list_bytes} per list of {} pods",
        match args.baseline {
            ApiBaseline::Stored => "the pod as the API stores it",
            ApiBaseline::Posted => "the posted body",
        },
        args.list_size
    );
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let targets: Arc<[Target]> = targets(&admin, &bases, max_clients, args.connections)?.into();
    let pids = cluster.pids();

    let mut rows: Vec<(usize, Vec<Measured>)> = Vec::new();
    for (i, &n) in args.clients.iter().enumerate() {
        let tag = format!("r{i}c{n}");
        let mut measured = Vec::new();
        for phase in Phase::ALL {
            let reqs = requests(
                phase,
                &tag,
                &targets,
                &stores,
                args.list_size,
                template.clone(),
            );
            let r = workload::run_requests(reqs, &pids, n, warmup, measure).await;
            cluster
                .check_running()
                .context("a navarch master died during the run")?;
            let r = r.with_context(|| format!("{} with {n} clients", phase.label()))?;
            progress(phase, &r);
            measured.push(Measured { phase, result: r });
        }
        rows.push((n, measured));
    }
    cluster.stop();
    println!("  load average at end: {}", load());
    print_figures(&rows);
    Ok(())
}

fn ops(r: &RunResult) -> u64 {
    r.writes_per_sec().round() as u64
}

fn progress(phase: Phase, r: &RunResult) {
    tracing::info!(
        op = phase.label(),
        clients = r.clients,
        requests = r.completed,
        errors = r.errors,
        ops_s = ops(r),
        p50_ms = r.p50_ms(),
        p99_ms = r.p99_ms(),
        "run finished"
    );
    let cores = |c: Option<f64>| c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into());
    println!(
        "  {:<12} {:>4} clients: {:>7} requests in {}s, {} errors; CPU cores busy: servers {} ({} ms/request), bench clients {}",
        phase.label(),
        r.clients,
        r.completed,
        r.window.as_secs(),
        r.errors,
        cores(r.server_cores()),
        r.server_cpu_ms_per_write()
            .map(|m| format!("{m:.3}"))
            .unwrap_or_else(|| "?".into()),
        cores(r.client_cores()),
    );
    if let Some(e) = &r.first_error {
        println!(
            "  {} with {} clients: {} failed requests in the window; first error: {e}",
            phase.label(),
            r.clients,
            r.errors
        );
    }
}

fn find(measured: &[Measured], phase: Phase) -> Option<&RunResult> {
    measured
        .iter()
        .find(|m| m.phase == phase)
        .map(|m| &m.result)
}

fn print_figures(rows: &[(usize, Vec<Measured>)]) {
    println!();
    println!(
        "{:<6} {:>7} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>9} {:>10}",
        "op",
        "clients",
        "api op/s",
        "p50 ms",
        "p99 ms",
        "store op/s",
        "p50 ms",
        "p99 ms",
        "p99 ratio",
        "tput ratio"
    );
    println!("{}", "-".repeat(101));
    let pairs = [
        ("create", Phase::ApiCreate, Some(Phase::StoreCreate)),
        ("get", Phase::ApiGet, Some(Phase::StoreGet)),
        ("list", Phase::ApiList, None),
    ];
    let mut lines = Vec::new();
    for (op, api, store) in pairs {
        for (clients, measured) in rows {
            let Some(a) = find(measured, api) else {
                continue;
            };
            let s = store.and_then(|p| find(measured, p));
            let left = format!(
                "{op:<6} {clients:>7} | {:>9} {:>8} {:>8}",
                ops(a),
                ms(a.p50_ms()),
                ms(a.p99_ms())
            );
            let mut line = format!(
                "op={op} clients={clients} api_ops_s={} api_p50_ms={} api_p99_ms={}",
                ops(a),
                ms(a.p50_ms()),
                ms(a.p99_ms())
            );
            match s {
                Some(s) => {
                    let p99_ratio = a.p99_ms() / s.p99_ms();
                    let tput_ratio = a.writes_per_sec() / s.writes_per_sec();
                    println!(
                        "{left} | {:>9} {:>8} {:>8} | {p99_ratio:>9.2} {tput_ratio:>10.2}",
                        ops(s),
                        ms(s.p50_ms()),
                        ms(s.p99_ms())
                    );
                    line.push_str(&format!(
                        " store_ops_s={} store_p50_ms={} store_p99_ms={} p99_ratio={p99_ratio:.2} tput_ratio={tput_ratio:.2}",
                        ops(s),
                        ms(s.p50_ms()),
                        ms(s.p99_ms())
                    ));
                }
                None => println!(
                    "{left} | {:>9} {:>8} {:>8} | {:>9} {:>10}",
                    "", "", "", "", ""
                ),
            }
            if a.errors > 0 {
                line.push_str(&format!(" api_errors={}", a.errors));
            }
            lines.push(line);
        }
    }
    println!();
    for l in &lines {
        println!("{l}");
    }
    // Issue 4's goals, for the largest client count that was run.
    if let Some((clients, measured)) = rows.iter().max_by_key(|(c, _)| *c) {
        if let (Some(a), Some(s)) = (
            find(measured, Phase::ApiCreate),
            find(measured, Phase::StoreCreate),
        ) {
            let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
            println!(
                "goal create p99 <= 20 ms at {clients} clients (issue 4 asks at 256): {} ({} ms)",
                verdict(a.p99_ms() <= 20.0),
                ms(a.p99_ms())
            );
            let p99_ratio = a.p99_ms() / s.p99_ms();
            let cost = s.writes_per_sec() / a.writes_per_sec();
            println!(
                "goal API create costs <= 1.5x the raw store write at {clients} clients: {} (p99 {p99_ratio:.2}x, throughput cost {cost:.2}x)",
                verdict(p99_ratio <= 1.5 && cost <= 1.5)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_body_is_a_pod_named_as_asked() {
        let v: serde_json::Value = serde_json::from_slice(&pod_body("p-r0c1-0-7")).unwrap();
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["name"], "p-r0c1-0-7");
        assert_eq!(v["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn gets_spread_over_the_list_namespace() {
        let names: std::collections::HashSet<String> =
            (0..100).map(|seq| get_target(3, seq, 100)).collect();
        assert_eq!(names.len(), 100);
        assert!(names.contains("l-0") && names.contains("l-99"));
    }

    #[test]
    fn flags_are_checked() {
        let mut args = ApiBenchArgs {
            clients: vec![1, 16],
            seconds: 1,
            warmup_seconds: 0,
            list_size: 10,
            connections: ApiConnections::PerClient,
            baseline: ApiBaseline::Stored,
            dir: None,
            keep: false,
        };
        assert!(validate(&args).is_ok());
        args.clients = vec![0];
        assert!(validate(&args).is_err());
        args.clients = vec![1];
        args.list_size = 0;
        assert!(validate(&args).is_err());
    }
}
