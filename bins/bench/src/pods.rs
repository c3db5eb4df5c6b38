//! `navctl bench pods`: one real node agent (`navarch-node`, no hollow nodes) joined to three
//! masters on loopback runs busybox pods. Measured, per runtime (`process`, then `oci`): the
//! time from a pod's create request to the watch showing it Running with its container
//! running (p50, p99 over `--pods` pods created at once by a few clients); and the node
//! agent's resident memory idle (registered, no pods) and with the pods running, beside the
//! containers' shims (one small process per container, outside the agent).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::navarch::NavarchCluster;
use super::procs::{self, wait_for};
use super::scheduler::{ensure_namespace, list_rv, percentile, ready_nodes, rss_mib, watch_first};
use super::STARTUP_TIMEOUT;

/// Flags of `navctl bench pods`.
#[derive(Clone, Debug, clap::Args)]
pub struct PodsBenchArgs {
    /// Pods per runtime.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Concurrent clients creating them.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Pods created per second (0: all at once, as fast as the clients go). Kubernetes'
    /// pod startup SLO is measured at a steady creation rate, not a burst.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// The runtimes measured, in order.
    #[arg(long, value_delimiter = ',', default_value = "process,oci")]
    pub runtimes: Vec<String>,
    /// Where to create the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Keep the data dirs and logs afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub(crate) fn validate(a: &PodsBenchArgs) -> Result<()> {
    if a.pods == 0 || a.pods > 110 {
        bail!("--pods must be between 1 and 110 (the node's pod capacity)");
    }
    if a.clients == 0 || a.clients > 64 {
        bail!("--clients must be between 1 and 64");
    }
    if !(0.0..=1000.0).contains(&a.rate) {
        bail!("--rate must be between 0 (a burst) and 1000 pods per second");
    }
    for r in &a.runtimes {
        if r != "process" && r != "oci" {
            bail!("--runtimes takes process and oci, not {r:?}");
        }
    }
    Ok(())
}

fn pod(name: &str, runtime: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {"runtimeClassName": runtime, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}
    })
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

/// Resident memory (MiB) of the containers' shims and their processes: every process
/// whose command line names the node's runtime state dir.
fn shims_rss_mib(state_dir: &Path) -> (usize, f64) {
    let needle = state_dir.display().to_string();
    let mut n = 0;
    let mut total = 0.0;
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                n += 1;
                total += rss_mib(pid).unwrap_or(0.0);
            }
        }
    }
    (n, total)
}

/// One run of the benchmark in `root`.
pub(crate) async fn run(args: &PodsBenchArgs, root: &Path) -> Result<()> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let node_bin = procs::sibling_binary("navarch-node")?;
    let mut cluster = NavarchCluster::start_with(&master_bin, root, "warn", &[])?;
    cluster.connect_ready(STARTUP_TIMEOUT).await?;
    let http = crate::https_client(cluster.admin(), Duration::from_secs(30))?;
    let watch_http = crate::https_client(cluster.admin(), Duration::from_secs(3600))?;
    let api = cluster.api_addrs()[0];
    let (token, ca_hash, masters) = cluster.node_join()?;
    let node_dir = root.join("node");
    let mut cmd = Command::new(&node_bin);
    cmd.args([
        "--name",
        "bench-node",
        "--master",
        &masters,
        "--token",
        &token,
    ])
    .args(["--ca-hash", &ca_hash, "--kubelet-port", "0"])
    // The benchmark measures the agent, not this machine's disk: never tainted for it.
    .args(["--disk-pressure-percent", "0"])
    .arg("--data-dir")
    .arg(&node_dir)
    .env("RUST_LOG", "warn");
    cluster.spawn_extra("node", cmd, &root.join("node.log"))?;
    wait_for(STARTUP_TIMEOUT, "the node Ready", || {
        let http = &http;
        async move { Ok((ready_nodes(http, api).await? >= 1).then_some(())) }
    })
    .await?;
    let pids = cluster.pids();
    let node_pid = *pids.last().context("the node's pid")?;
    // Idle: registered, its watches open, after its first status and lease writes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_mib(node_pid).unwrap_or(0.0);
    let pace = if args.rate > 0.0 {
        format!("{} per second", args.rate)
    } else {
        "all at once".to_string()
    };
    println!(
        "navctl bench pods: 3 masters and one node agent on this machine (loopback), {} busybox pods per runtime created by {} clients, {pace}",
        args.pods, args.clients
    );
    println!("  node agent resident memory idle: {idle:.1} MiB");
    for runtime in &args.runtimes {
        let ns = format!("bench-{runtime}");
        ensure_namespace(&http, api, &ns).await?;
        let rv = list_rv(&http, api, &ns).await?;
        let watch = tokio::spawn(watch_first(
            watch_http.clone(),
            api,
            ns.clone(),
            rv,
            args.pods,
            running,
        ));
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let queue: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
            (0..args.pods).map(|i| format!("pod-{i}")).collect(),
        ));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        // With a rate, pod k is not created before t0 + k / rate.
        let slot = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let rate = args.rate;
        for _ in 0..args.clients {
            let (http, queue, sent, slot) =
                (http.clone(), queue.clone(), sent.clone(), slot.clone());
            let url = format!("https://{api}/api/v1/namespaces/{ns}/pods");
            let runtime = runtime.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(name) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                        return Ok::<(), anyhow::Error>(());
                    };
                    if rate > 0.0 {
                        let k = slot.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let at = t0 + Duration::from_secs_f64(k as f64 / rate);
                        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    }
                    sent.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), Instant::now());
                    let r = http.post(&url).json(&pod(&name, &runtime)).send().await?;
                    if !r.status().is_success() {
                        bail!("create {name}: {}", r.status());
                    }
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        let seen = tokio::time::timeout(Duration::from_secs(300), watch)
            .await
            .context("the pods Running within 5 minutes")???;
        let span = t0.elapsed();
        let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut lat: Vec<f64> = seen
            .iter()
            .filter_map(|(n, at)| Some(at.duration_since(*sent.get(n)?).as_secs_f64() * 1000.0))
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let loaded = rss_mib(node_pid).unwrap_or(0.0);
        let (shims, shims_rss) = shims_rss_mib(&node_dir.join("runtime"));
        println!(
            "  {runtime}: {} pods Running in {:.2} s; creation to Running p50 {:.1} ms, p99 {:.1} ms",
            lat.len(),
            span.as_secs_f64(),
            percentile(&lat, 50.0),
            percentile(&lat, 99.0)
        );
        println!(
            "  {runtime}: node agent resident memory with {} pods: {loaded:.1} MiB (beside {shims} shim and container processes, {shims_rss:.1} MiB together)",
            lat.len()
        );
        // Gone before the next runtime's round.
        let r = http
            .delete(format!("https://{api}/api/v1/namespaces/{ns}/pods"))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("delete the {runtime} pods: {}", r.status());
        }
        wait_for(Duration::from_secs(120), "the pods deleted", || {
            let (http, ns) = (&http, &ns);
            async move {
                let v: Value = http
                    .get(format!("https://{api}/api/v1/namespaces/{ns}/pods"))
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok(v["items"]
                    .as_array()
                    .is_some_and(|i| i.is_empty())
                    .then_some(()))
            }
        })
        .await?;
    }
    cluster.stop();
    let reset = Command::new(&node_bin)
        .args(["reset", "--name", "bench-node", "--data-dir"])
        .arg(&node_dir)
        .env("RUST_LOG", "warn")
        .status()?;
    if !reset.success() {
        bail!("navarch-node reset failed");
    }
    Ok(())
}
