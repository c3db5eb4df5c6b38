//! `navctl bench scheduler`: three masters, a thousand hollow nodes (in a few
//! `navarch-node --hollow --count` processes), a thousand pods already placed, then ten
//! thousand pods created through the API as fast as the clients go. Measured: bindings
//! committed per second (each a `pods/binding` through the pipeline and Raft), the time from
//! a pod's creation to its binding showing in a watch (p50, p99), and the masters' resident
//! memory idle (control plane running, no nodes) and at the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use super::navarch::NavarchCluster;
use super::procs::{self, wait_for};
use super::STARTUP_TIMEOUT;

/// Flags of `navctl bench scheduler`.
#[derive(Clone, Debug, clap::Args)]
pub struct SchedulerBenchArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Processes the hollow nodes are spread over.
    #[arg(long, default_value_t = 2)]
    pub node_processes: usize,
    /// Pods created and placed before the measured run.
    #[arg(long, default_value_t = 1000)]
    pub placed: usize,
    /// Pods created in the measured run.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Concurrent clients creating pods (spread over the three masters).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Where to create the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Keep the data dirs and logs afterwards.
    #[arg(long)]
    pub keep: bool,
    /// The masters' Raft heartbeat interval in milliseconds (`--heartbeat-ms`), their own
    /// default unless given.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
}

pub(crate) fn validate(a: &SchedulerBenchArgs) -> Result<()> {
    if a.nodes == 0 || a.nodes > 5000 {
        bail!("--nodes must be between 1 and 5000");
    }
    if a.node_processes == 0 || a.node_processes > a.nodes.min(64) {
        bail!("--node-processes must be between 1 and min(--nodes, 64)");
    }
    if a.pods == 0 || a.pods > 100_000 || a.placed > 100_000 {
        bail!("--pods must be between 1 and 100000, --placed at most 100000");
    }
    if a.clients == 0 || a.clients > 1024 {
        bail!("--clients must be between 1 and 1024");
    }
    if !(10..=5000).contains(&a.heartbeat_ms) {
        bail!("--heartbeat-ms must be between 10 and 5000");
    }
    Ok(())
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "scheduler"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    })
}

/// Resident memory of `pid` in MiB, from `/proc/<pid>/status`.
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The index of the master whose control plane is active.
async fn active_master(http: &reqwest::Client, apis: &[SocketAddr]) -> Option<usize> {
    for (i, a) in apis.iter().enumerate() {
        let v: Value = http
            .get(format!("https://{a}/debug/controlplane"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        if v["active"] == json!(true) {
            return Some(i);
        }
    }
    None
}

pub(crate) async fn ready_nodes(http: &reqwest::Client, api: SocketAddr) -> Result<usize> {
    let v: Value = http
        .get(format!("https://{api}/api/v1/nodes"))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| {
                    n["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count()
        })
        .unwrap_or(0))
}

pub(crate) async fn ensure_namespace(
    http: &reqwest::Client,
    api: SocketAddr,
    ns: &str,
) -> Result<()> {
    let r = http
        .post(format!("https://{api}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .send()
        .await?;
    if !(r.status().is_success() || r.status().as_u16() == 409) {
        bail!("create namespace {ns}: {}", r.status());
    }
    Ok(())
}

/// Creates `names` in `ns` with `clients` concurrent clients over the masters, recording
/// when each create was sent.
async fn create_all(
    http: &reqwest::Client,
    apis: &[SocketAddr],
    ns: &str,
    names: Vec<String>,
    clients: usize,
    sent: Arc<Mutex<HashMap<String, Instant>>>,
) -> Result<()> {
    let queue = Arc::new(Mutex::new(names));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = http.clone();
        let url = format!(
            "https://{}/api/v1/namespaces/{ns}/pods",
            apis[c % apis.len()]
        );
        let queue = queue.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(name) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                for attempt in 0.. {
                    sent.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(name.clone())
                        .or_insert_with(Instant::now);
                    match http.post(&url).json(&pod(&name)).send().await {
                        Ok(r) if r.status().is_success() || r.status().as_u16() == 409 => break,
                        Ok(r)
                            if attempt < 20
                                && [429, 500, 503, 504].contains(&r.status().as_u16()) => {}
                        Ok(r) => bail!("create pod {name}: {}", r.status()),
                        Err(e) if attempt < 20 => {
                            tracing::debug!(error = %e, "create failed; retrying")
                        }
                        Err(e) => return Err(e.into()),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Follows the pods of `ns` from `rv` and records when each is first seen bound, until
/// `want` are.
async fn watch_bound(
    http: reqwest::Client,
    api: SocketAddr,
    ns: String,
    rv: String,
    want: usize,
) -> Result<HashMap<String, Instant>> {
    watch_first(http, api, ns, rv, want, |p| {
        p["spec"]["nodeName"].is_string()
    })
    .await
}

/// Follows the pods of `ns` from `rv` and records when each is first seen with `seen(pod)`
/// true, until `want` are.
pub(crate) async fn watch_first(
    http: reqwest::Client,
    api: SocketAddr,
    ns: String,
    rv: String,
    want: usize,
    seen: fn(&Value) -> bool,
) -> Result<HashMap<String, Instant>> {
    let mut first: HashMap<String, Instant> = HashMap::new();
    let mut rv = rv;
    while first.len() < want {
        let url = format!(
            "https://{api}/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=600"
        );
        let resp = http.get(&url).send().await.context("open the pod watch")?;
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("read the pod watch")?;
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let obj = &ev["object"];
                if let Some(v) = obj["metadata"]["resourceVersion"].as_str() {
                    rv = v.to_string();
                }
                if seen(obj) {
                    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                    first.entry(name).or_insert_with(Instant::now);
                }
            }
            if first.len() >= want {
                break;
            }
        }
    }
    Ok(first)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One run of the benchmark in `root`.
pub(crate) async fn run(args: &SchedulerBenchArgs, root: &Path) -> Result<()> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let node_bin = procs::sibling_binary("navarch-node")?;
    // A thousand nodes join from this one host: the masters' per-source join limits (5 at
    // once, then one every 2 s) would take half an hour.
    let heartbeat = args.heartbeat_ms.to_string();
    let mut cluster = NavarchCluster::start_with(
        &master_bin,
        root,
        "warn",
        &[
            // The masters' default unless `--heartbeat-ms` says otherwise (before the pod
            // watches shared their decode, the saturated leader lost its heartbeats at 50 ms
            // and every election restarted the control plane).
            "--heartbeat-ms",
            &heartbeat,
            "--join-burst-per-source",
            "5000",
            "--join-qps-per-source",
            "1000",
            "--join-burst",
            "5000",
            "--join-qps",
            "1000",
        ],
    )?;
    cluster.connect_ready(STARTUP_TIMEOUT).await?;
    let http = crate::https_client(cluster.admin(), Duration::from_secs(30))?;
    // Watches last the whole run: no overall deadline.
    let watch_http = crate::https_client(cluster.admin(), Duration::from_secs(3600))?;
    let apis = cluster.api_addrs();
    let active = wait_for(STARTUP_TIMEOUT, "an active control plane", || {
        let (http, apis) = (&http, &apis);
        async move { Ok(active_master(http, apis).await) }
    })
    .await?;
    // Idle: the control plane running, nothing to do, after the bootstrap writes settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pids = cluster.pids();
    let idle: Vec<f64> = pids.iter().map(|p| rss_mib(*p).unwrap_or(0.0)).collect();

    // The hollow nodes.
    let (token, ca_hash, masters) = cluster.node_join()?;
    let started = Instant::now();
    let per = args.nodes.div_ceil(args.node_processes);
    let mut spawned = 0;
    for p in 0..args.node_processes {
        let count = per.min(args.nodes - spawned);
        if count == 0 {
            break;
        }
        spawned += count;
        let mut cmd = Command::new(&node_bin);
        cmd.arg("--hollow")
            .arg("--name")
            .arg(format!("hollow{p}"))
            .arg("--count")
            .arg(count.to_string())
            .arg("--master")
            .arg(&masters)
            .arg("--token")
            .arg(&token)
            .arg("--ca-hash")
            .arg(&ca_hash)
            .arg("--data-dir")
            .arg(root.join(format!("nodes{p}")))
            // A /14 of its own per process (10.64.0.0/14, 10.68.0.0/14, ...): pod IPs that
            // are never routed anywhere.
            .arg("--pod-cidr")
            .arg(format!("10.{}.0.0/14", 64 + 4 * p))
            .env("RUST_LOG", "warn");
        cluster.spawn_extra(
            &format!("hollow{p}"),
            cmd,
            &root.join(format!("hollow{p}.log")),
        )?;
    }
    let api = apis[active];
    wait_for(Duration::from_secs(600), "every hollow node Ready", || {
        let http = &http;
        async move { Ok((ready_nodes(http, api).await? >= args.nodes).then_some(())) }
    })
    .await?;
    let nodes_ready = started.elapsed();

    // The pods already placed.
    ensure_namespace(&http, api, "bench-placed").await?;
    ensure_namespace(&http, api, "bench").await?;
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let placed_names: Vec<String> = (0..args.placed).map(|i| format!("placed-{i}")).collect();
    let rv = list_rv(&http, api, "bench-placed").await?;
    eprintln!(
        "{} nodes Ready after {:.1} s; placing {} pods",
        args.nodes,
        nodes_ready.as_secs_f64(),
        args.placed
    );
    let watch = tokio::spawn(watch_bound(
        watch_http.clone(),
        api,
        "bench-placed".into(),
        rv,
        args.placed,
    ));
    create_all(
        &http,
        &apis,
        "bench-placed",
        placed_names,
        args.clients,
        sent.clone(),
    )
    .await?;
    watch.await??;

    // The measured run.
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let names: Vec<String> = (0..args.pods).map(|i| format!("pod-{i}")).collect();
    let rv = list_rv(&http, api, "bench").await?;
    eprintln!("creating {} pods", args.pods);
    let watch = tokio::spawn(watch_bound(
        watch_http.clone(),
        api,
        "bench".into(),
        rv,
        args.pods,
    ));
    let t0 = Instant::now();
    create_all(&http, &apis, "bench", names, args.clients, sent.clone()).await?;
    let created = t0.elapsed();
    let bound = watch.await??;
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let last = bound.values().max().copied().unwrap_or(t0);
    let first = sent.values().min().copied().unwrap_or(t0);
    let span = last.duration_since(first).as_secs_f64();
    let mut lat: Vec<f64> = bound
        .iter()
        .filter_map(|(n, b)| {
            sent.get(n)
                .map(|s| b.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let end: Vec<f64> = pids.iter().map(|p| rss_mib(*p).unwrap_or(0.0)).collect();
    cluster.check_running()?;

    println!(
        "scheduler benchmark: 3 masters, {} hollow nodes in {} processes (Ready after {:.1} s), {} pods placed before",
        args.nodes,
        args.node_processes,
        nodes_ready.as_secs_f64(),
        args.placed
    );
    println!(
        "{} pods created in {:.2} s ({:.0}/s, {} clients); bound in {:.2} s from the first create: {:.0} bindings/s",
        args.pods,
        created.as_secs_f64(),
        args.pods as f64 / created.as_secs_f64(),
        args.clients,
        span,
        args.pods as f64 / span
    );
    println!(
        "creation to binding: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0)
    );
    for (i, (a, b)) in idle.iter().zip(&end).enumerate() {
        let role = if i == active {
            "active control plane"
        } else {
            "standby"
        };
        println!(
            "m{} ({role}): resident {a:.1} MiB idle, {b:.1} MiB with the nodes and pods",
            i + 1
        );
    }
    println!(
        "summary bindings_per_s={:.0} p50_ms={:.1} p99_ms={:.1} active_rss_idle_mib={:.1} active_rss_loaded_mib={:.1} load={:.2}",
        args.pods as f64 / span,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        idle[active],
        end[active],
        procs::load_average().unwrap_or(0.0)
    );
    cluster.stop();
    Ok(())
}

pub(crate) async fn list_rv(http: &reqwest::Client, api: SocketAddr, ns: &str) -> Result<String> {
    let v: Value = http
        .get(format!("https://{api}/api/v1/namespaces/{ns}/pods?limit=1"))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string())
}
