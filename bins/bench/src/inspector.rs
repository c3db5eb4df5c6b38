//! `navctl bench inspector`: what following the inspector costs a busy cluster. Three masters
//! on loopback (no nodes, so every pod stays pending and the scheduler works on each one),
//! closed-loop HTTPS clients creating and deleting pods, measured in alternating windows
//! without and with inspector readers on every master: `/debug/messages?follow=true` streams
//! (each line parsed, as a reader would) and a poller doing what the web page does each
//! refresh (`/debug/actors`, and `/debug/messages?since=SEQ`). Throughput and p50/p99 per
//! mode, and the ratios with/without, come from one run.
//!
//! The windows alternate ABBA (without, with; with, without; ...) so that a cluster slowing
//! down over the run (more objects, more history) weighs on both modes alike. The message
//! tap records in both modes (it always does); what the readers add is reading it out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use hdrhistogram::Histogram;
use navarch_net::pki::Identity;
use reqwest::StatusCode;
use tokio::task::JoinHandle;

use super::navarch::NavarchCluster;
use super::procs::{self, wait_for};
use super::workload::{self, Requests, RunResult};
use super::{load, ms, MAX_SECONDS, STARTUP_TIMEOUT};

/// Upper bounds on the flags.
const MAX_CLIENTS: usize = 1024;
const MAX_ROUNDS: usize = 50;
const MAX_FOLLOWERS: usize = 64;
/// reqwest's deadline for one workload or poll request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// A follower's stream lasts as long as its window; reqwest's deadline only bounds a hang.
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long the followers may take to receive a first record before a window starts.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);
/// Unrecorded seconds at the start of each window (the followers settle, connections warm).
const WINDOW_WARMUP: Duration = Duration::from_secs(1);
/// Where the workload's pods go.
const NAMESPACE: &str = "default";

/// Flags of `navctl bench inspector`.
#[derive(Clone, Debug, clap::Args)]
pub struct InspectorBenchArgs {
    /// Closed-loop HTTPS clients (client i bound to master i mod 3), each creating a pod and
    /// deleting it, over and over.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Measured seconds per window (each round has one window per mode).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Rounds: each measures one window without the inspector and one with it.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Unrecorded seconds of load before the first round.
    #[arg(long, default_value_t = 3)]
    pub warmup_seconds: u64,
    /// `/debug/messages?follow=true` readers per master while the inspector follows.
    #[arg(long, default_value_t = 1)]
    pub followers: usize,
    /// Milliseconds between the page-like polls of `/debug/actors` and `/debug/messages`
    /// on each master while the inspector follows.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Where to create the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Keep the data dirs and logs afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub(crate) fn validate(args: &InspectorBenchArgs) -> Result<()> {
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!("--clients must be between 1 and {MAX_CLIENTS}");
    }
    if args.seconds == 0 || args.seconds > MAX_SECONDS || args.warmup_seconds > MAX_SECONDS {
        bail!("--seconds must be between 1 and {MAX_SECONDS} (and --warmup-seconds at most that)");
    }
    if args.rounds == 0 || args.rounds > MAX_ROUNDS {
        bail!("--rounds must be between 1 and {MAX_ROUNDS}");
    }
    if args.followers == 0 || args.followers > MAX_FOLLOWERS {
        bail!("--followers must be between 1 and {MAX_FOLLOWERS}");
    }
    if !(100..=60_000).contains(&args.poll_ms) {
        bail!("--poll-ms must be between 100 and 60000");
    }
    Ok(())
}

/// Whether the inspector follows during a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Without,
    With,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Without => "without",
            Mode::With => "with",
        }
    }
}

/// The two windows of round `r`, ABBA: without first in even rounds, with first in odd ones.
fn round_order(r: usize) -> [Mode; 2] {
    if r.is_multiple_of(2) {
        [Mode::Without, Mode::With]
    } else {
        [Mode::With, Mode::Without]
    }
}

/// A reqwest error with its causes.
fn http_error(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

async fn expect(rb: reqwest::RequestBuilder, want: StatusCode) -> Result<(), String> {
    let resp = rb.send().await.map_err(|e| http_error(&e))?;
    let code = resp.status();
    let body = resp.bytes().await.map_err(|e| http_error(&e))?;
    if code != want {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("HTTP {code} (want {want}): {text}"));
    }
    Ok(())
}

fn pod_body(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"bench":"inspector"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    )
}

/// The workload of one window (`tag` keeps its names apart from other windows'): client
/// `id` creates pod `p-<tag>-<id>-<seq>` on even `seq` and deletes it on the next one.
fn requests(tag: &str, clients: &Arc<[(reqwest::Client, Arc<str>)]>) -> Requests {
    let tag: Arc<str> = Arc::from(tag);
    let clients = clients.clone();
    Arc::new(move |id, seq| {
        let (http, base) = clients[id % clients.len()].clone();
        let tag = tag.clone();
        Box::pin(async move {
            let pods = format!("{base}/api/v1/namespaces/{NAMESPACE}/pods");
            if seq.is_multiple_of(2) {
                let rb = http
                    .post(&pods)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(pod_body(&format!("p-{tag}-{id}-{seq}")));
                expect(rb, StatusCode::CREATED).await
            } else {
                let name = format!("p-{tag}-{id}-{}", seq - 1);
                expect(http.delete(format!("{pods}/{name}")), StatusCode::OK).await
            }
        })
    })
}

/// What the inspector's readers took in during one window.
#[derive(Default)]
struct Taken {
    records: AtomicU64,
    lagged: AtomicU64,
    bytes: AtomicU64,
    polls: AtomicU64,
    errors: AtomicU64,
}

/// The inspector's readers of one window; dropping them ends their requests.
struct Inspector {
    tasks: Vec<JoinHandle<()>>,
    taken: Arc<Taken>,
}

impl Drop for Inspector {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One follower: reads `/debug/messages?follow=true` on `base`, parsing each line; counts
/// into `taken` (all readers') and `mine` (its own records, to tell it is attached).
async fn follow(http: reqwest::Client, base: Arc<str>, taken: Arc<Taken>, mine: Arc<AtomicU64>) {
    loop {
        let resp = match http
            .get(format!("{base}/debug/messages?follow=true"))
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => r,
            Ok(r) => {
                tracing::warn!(%base, status = %r.status(), "follow refused");
                taken.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(%base, error = %http_error(&e), "follow failed");
                taken.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            taken.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                match serde_json::from_slice::<serde_json::Value>(&line) {
                    Ok(v) if v.get("lagged").is_some() => {
                        let n = v["lagged"].as_u64().unwrap_or(0);
                        taken.lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        taken.records.fetch_add(1, Ordering::Relaxed);
                        mine.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        taken.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// What the web page does on each refresh of one master: its actors, and its messages since
/// the last one seen.
async fn poll(http: reqwest::Client, base: Arc<str>, every: Duration, taken: Arc<Taken>) {
    let mut since: Option<u64> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let actors = http.get(format!("{base}/debug/actors")).send().await;
        let ok = match actors {
            Ok(r) if r.status() == StatusCode::OK => r.json::<serde_json::Value>().await.is_ok(),
            _ => false,
        };
        let q = match since {
            Some(s) => format!("since={s}&limit=500"),
            None => "limit=100".to_string(),
        };
        let messages = http.get(format!("{base}/debug/messages?{q}")).send().await;
        let records = match messages {
            Ok(r) if r.status() == StatusCode::OK => r.json::<serde_json::Value>().await.ok(),
            _ => None,
        };
        if let Some(last) = records
            .as_ref()
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().filter_map(|r| r["seq"].as_u64()).max())
        {
            since = Some(last + 1);
        }
        if ok && records.is_some() {
            taken.polls.fetch_add(1, Ordering::Relaxed);
        } else {
            taken.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the inspector's readers on every master and waits until each follower has
/// received a first record.
async fn start_inspector(
    admin: &Identity,
    bases: &[Arc<str>],
    followers: usize,
    every: Duration,
) -> Result<Inspector> {
    let taken = Arc::new(Taken::default());
    let mut tasks = Vec::new();
    let mut per_follower = Vec::new();
    for base in bases {
        for _ in 0..followers {
            let mine = Arc::new(AtomicU64::new(0));
            per_follower.push(mine.clone());
            let http = crate::https_client(admin, STREAM_TIMEOUT)?;
            tasks.push(tokio::spawn(follow(
                http,
                base.clone(),
                taken.clone(),
                mine,
            )));
        }
        let http = crate::https_client(admin, HTTP_TIMEOUT)?;
        tasks.push(tokio::spawn(poll(http, base.clone(), every, taken.clone())));
    }
    let inspector = Inspector { tasks, taken };
    wait_for(ATTACH_TIMEOUT, "every follower's first record", || {
        let attached = per_follower.iter().all(|n| n.load(Ordering::Relaxed) > 0);
        async move { Ok(attached.then_some(())) }
    })
    .await?;
    Ok(inspector)
}

/// One mode's windows added up.
struct Totals {
    completed: u64,
    errors: u64,
    seconds: f64,
    latency_us: Histogram<u64>,
    server_cpu_s: Option<f64>,
}

impl Totals {
    fn new() -> Result<Totals> {
        Ok(Totals {
            completed: 0,
            errors: 0,
            seconds: 0.0,
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3)
                .context("latency histogram")?,
            server_cpu_s: Some(0.0),
        })
    }

    fn add(&mut self, r: &RunResult) -> Result<()> {
        self.completed += r.completed;
        self.errors += r.errors;
        self.seconds += r.window.as_secs_f64();
        self.latency_us
            .add(&r.latency_us)
            .context("merge latency histograms")?;
        self.server_cpu_s = match (self.server_cpu_s, r.server_cpu_s) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        Ok(())
    }

    fn per_sec(&self) -> f64 {
        self.completed as f64 / self.seconds.max(1e-9)
    }

    fn p50_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.50) as f64 / 1000.0
    }

    fn p99_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.99) as f64 / 1000.0
    }

    fn cpu_ms_per_request(&self) -> Option<f64> {
        Some(self.server_cpu_s? * 1000.0 / self.completed.max(1) as f64)
    }
}

pub(crate) async fn run(args: &InspectorBenchArgs, root: &std::path::Path) -> Result<()> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let measure = Duration::from_secs(args.seconds);
    let every = Duration::from_millis(args.poll_ms);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("navctl bench inspector: a busy 3-master cluster with and without the inspector following, on this machine (loopback)");
    println!(
        "  workload: {} closed-loop HTTPS clients (client i on master i mod 3), each creating a pod and deleting it in turn; no nodes, so the scheduler sees every pod",
        args.clients
    );
    println!(
        "  inspector: {} /debug/messages?follow=true reader(s) per master, every line parsed; and per master every {} ms the page's refresh (/debug/actors, /debug/messages?since=SEQ)",
        args.followers, args.poll_ms
    );
    println!(
        "  {} rounds of two {}s windows (ABBA: without/with, with/without, ...), {}s unrecorded at the start of each; {}s warm-up before the first",
        args.rounds,
        args.seconds,
        WINDOW_WARMUP.as_secs(),
        args.warmup_seconds
    );
    println!(
        "  masters: {} ; machine: {cpus} CPUs, load average {} at start (clients, readers and masters share them)",
        master_bin.display(),
        load()
    );
    if cfg!(debug_assertions) {
        println!("  NOTE: a debug build of the benchmark; the masters are {} (build with --release for release figures)", master_bin.display());
    }

    let dir = root.join("navarch");
    std::fs::create_dir_all(&dir)?;
    let log_filter = std::env::var("NAVARCH_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut cluster = NavarchCluster::start(&master_bin, &dir, &log_filter)?;
    cluster.connect_ready(STARTUP_TIMEOUT).await?;
    let admin = cluster.admin().clone();
    let bases: Vec<Arc<str>> = cluster
        .api_addrs()
        .iter()
        .map(|a| Arc::from(format!("https://{a}")))
        .collect();
    crate::api::wait_default_namespace(&crate::https_client(&admin, HTTP_TIMEOUT)?, &bases).await?;
    let clients: Arc<[(reqwest::Client, Arc<str>)]> = (0..args.clients)
        .map(|i| {
            Ok((
                crate::https_client(&admin, HTTP_TIMEOUT)?,
                bases[i % bases.len()].clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?
        .into();
    let pids = cluster.pids();

    if args.warmup_seconds > 0 {
        let r = workload::run_requests(
            requests("warm", &clients),
            &pids,
            args.clients,
            Duration::from_secs(args.warmup_seconds),
            Duration::from_millis(100),
        )
        .await;
        cluster
            .check_running()
            .context("a master died during the warm-up")?;
        r.context("warm-up")?;
    }

    let mut without = Totals::new()?;
    let mut with = Totals::new()?;
    let (mut records, mut lagged, mut bytes, mut polls, mut reader_errors) = (0, 0, 0, 0, 0);
    for round in 0..args.rounds {
        for mode in round_order(round) {
            let inspector = match mode {
                Mode::Without => None,
                Mode::With => Some(
                    start_inspector(&admin, &bases, args.followers, every)
                        .await
                        .context("start the inspector's readers")?,
                ),
            };
            let base = inspector.as_ref().map(|i| {
                (
                    i.taken.records.load(Ordering::Relaxed),
                    i.taken.lagged.load(Ordering::Relaxed),
                    i.taken.bytes.load(Ordering::Relaxed),
                    i.taken.polls.load(Ordering::Relaxed),
                )
            });
            let tag = format!(
                "r{round}-{}",
                match mode {
                    Mode::Without => "off",
                    Mode::With => "on",
                }
            );
            let r = workload::run_requests(
                requests(&tag, &clients),
                &pids,
                args.clients,
                WINDOW_WARMUP,
                measure,
            )
            .await;
            cluster
                .check_running()
                .context("a master died during the run")?;
            let r = r.with_context(|| format!("round {} {}", round + 1, mode.label()))?;
            let mut extra = String::new();
            if let (Some(i), Some(b)) = (&inspector, base) {
                let t = &i.taken;
                let got = (
                    t.records.load(Ordering::Relaxed) - b.0,
                    t.lagged.load(Ordering::Relaxed) - b.1,
                    t.bytes.load(Ordering::Relaxed) - b.2,
                    t.polls.load(Ordering::Relaxed) - b.3,
                );
                records += got.0;
                lagged += got.1;
                bytes += got.2;
                polls += got.3;
                reader_errors += t.errors.load(Ordering::Relaxed);
                extra = format!(
                    "; readers took {} records ({} lagged), {} KiB, {} page refreshes",
                    got.0,
                    got.1,
                    got.2 / 1024,
                    got.3
                );
            }
            drop(inspector);
            let cores = r
                .server_cores()
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "?".into());
            println!(
                "  round {} {:<7}: {:>6} requests ({:.0}/s), {} errors, p50 {} ms, p99 {} ms; masters' CPU cores busy {cores}{extra}",
                round + 1,
                mode.label(),
                r.completed,
                r.writes_per_sec(),
                r.errors,
                ms(r.p50_ms()),
                ms(r.p99_ms()),
            );
            if let Some(e) = &r.first_error {
                println!("    first error: {e}");
            }
            match mode {
                Mode::Without => without.add(&r)?,
                Mode::With => with.add(&r)?,
            }
        }
    }
    cluster.stop();
    println!("  load average at end: {}", load());
    println!();
    println!(
        "{:<8} | {:>8} {:>8} {:>8} | {:>6} | {:>11}",
        "inspector", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req"
    );
    println!("{}", "-".repeat(62));
    for (label, t) in [("without", &without), ("with", &with)] {
        println!(
            "{label:<9} | {:>8.0} {:>8} {:>8} | {:>6} | {:>11}",
            t.per_sec(),
            ms(t.p50_ms()),
            ms(t.p99_ms()),
            t.errors,
            t.cpu_ms_per_request()
                .map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "?".into())
        );
    }
    let tput = with.per_sec() / without.per_sec().max(1e-9);
    let p50 = with.p50_ms() / without.p50_ms().max(1e-9);
    let p99 = with.p99_ms() / without.p99_ms().max(1e-9);
    println!();
    println!(
        "ratio with/without: throughput {tput:.3}, p50 {p50:.3}, p99 {p99:.3}; the readers took {records} records ({lagged} lagged, {} MiB) and {polls} page refreshes, {reader_errors} reader errors",
        bytes / (1024 * 1024)
    );
    println!(
        "inspector_tput_ratio={tput:.3} inspector_p50_ratio={p50:.3} inspector_p99_ratio={p99:.3} without_rps={:.0} with_rps={:.0} without_p99_ms={} with_p99_ms={}",
        without.per_sec(),
        with.per_sec(),
        ms(without.p99_ms()),
        ms(with.p99_ms())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> InspectorBenchArgs {
        InspectorBenchArgs {
            clients: 32,
            seconds: 5,
            rounds: 3,
            warmup_seconds: 3,
            followers: 1,
            poll_ms: 1000,
            dir: None,
            keep: false,
        }
    }

    #[test]
    fn flags_are_checked() {
        assert!(validate(&args()).is_ok());
        for bad in [
            InspectorBenchArgs {
                clients: 0,
                ..args()
            },
            InspectorBenchArgs {
                clients: MAX_CLIENTS + 1,
                ..args()
            },
            InspectorBenchArgs {
                seconds: 0,
                ..args()
            },
            InspectorBenchArgs {
                rounds: 0,
                ..args()
            },
            InspectorBenchArgs {
                followers: MAX_FOLLOWERS + 1,
                ..args()
            },
            InspectorBenchArgs {
                poll_ms: 10,
                ..args()
            },
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rounds_alternate_abba() {
        let order: Vec<Mode> = (0..4).flat_map(round_order).collect();
        assert_eq!(
            order,
            [
                Mode::Without,
                Mode::With,
                Mode::With,
                Mode::Without,
                Mode::Without,
                Mode::With,
                Mode::With,
                Mode::Without
            ]
        );
    }

    #[test]
    fn the_workload_posts_a_pod_named_as_asked() {
        let v: serde_json::Value = serde_json::from_str(&pod_body("p-r0w-3-8")).unwrap();
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["name"], "p-r0w-3-8");
    }
}
