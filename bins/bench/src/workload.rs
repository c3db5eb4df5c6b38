//! The workload both systems run: N closed-loop clients, each bound round-robin to one member,
//! writing unique keys with a fixed-size value; a warm-up, then a measured window in which
//! every completed write's latency goes into an HDR histogram. The closed loop itself
//! (`run_requests`) takes any request, so `navctl bench api` runs its HTTPS requests through it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use navarch_store::{ObjectKey, Op, StoreClient, Txn, TxnOutcome};
use rand::RngCore;
use tokio::time::Instant;

use super::etcd::EtcdKv;
use super::procs;

/// Longest a single request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client gives up after this many failures in a row (the cluster is not answering).
const MAX_CONSECUTIVE_ERRORS: u32 = 100;
/// Upper bound on the requests one client issues in a run, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: u64 = 10_000_000;
/// Latencies are recorded in microseconds up to this bound.
const MAX_LATENCY_US: u64 = 120_000_000;

/// A connection to one member of the system under test.
#[derive(Clone)]
pub(crate) enum Writer {
    Navarch(StoreClient),
    Etcd(EtcdKv),
}

impl Writer {
    /// Writes one new key: `run`, the client and its sequence number make it unique.
    async fn write(
        &self,
        run: &str,
        client: usize,
        seq: u64,
        value: Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Writer::Navarch(c) => {
                let key = ObjectKey::new("Bench", run, format!("c{client}-{seq}"));
                match c.txn(&Txn::new(vec![Op::Create { key, value }])).await {
                    Ok(TxnOutcome::Committed { .. }) => Ok(()),
                    Ok(TxnOutcome::Refused { failure, .. }) => Err(format!("refused: {failure}")),
                    Err(e) => Err(e.to_string()),
                }
            }
            Writer::Etcd(kv) => {
                let key = format!("/bench/{run}/c{client}-{seq}").into_bytes();
                kv.put(key, value).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// What one run measured.
pub(crate) struct RunResult {
    pub clients: usize,
    pub completed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub window: Duration,
    pub latency_us: Histogram<u64>,
    /// CPU seconds the system's server processes used during the measured window.
    pub server_cpu_s: Option<f64>,
    /// CPU seconds the benchmark process (the clients) used during the measured window.
    pub client_cpu_s: Option<f64>,
}

impl RunResult {
    pub fn writes_per_sec(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    pub fn p50_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.50) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.99) as f64 / 1000.0
    }

    /// CPU cores the servers kept busy on average during the window.
    pub fn server_cores(&self) -> Option<f64> {
        Some(self.server_cpu_s? / self.window.as_secs_f64())
    }

    /// CPU cores the benchmark's clients kept busy on average during the window.
    pub fn client_cores(&self) -> Option<f64> {
        Some(self.client_cpu_s? / self.window.as_secs_f64())
    }

    /// Server CPU milliseconds per completed write.
    pub fn server_cpu_ms_per_write(&self) -> Option<f64> {
        Some(self.server_cpu_s? * 1000.0 / self.completed as f64)
    }
}

/// CPU seconds used so far by the server processes `pids` and by this process.
fn cpu_snapshot(pids: &[u32]) -> (Option<f64>, Option<f64>) {
    let servers = pids
        .iter()
        .map(|p| procs::cpu_seconds(&p.to_string()))
        .sum::<Option<f64>>();
    (servers, procs::cpu_seconds("self"))
}

struct ClientStats {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's limits.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Runs `clients` closed-loop writers against `members` (client i uses member i mod n):
/// `warmup` unrecorded, then `measure` recorded. Writes completing inside the measured window
/// count; clients stop issuing at its end. The CPU time of `server_pids` and of this process
/// is read at both ends of the window.
pub(crate) async fn run(
    members: &[Writer],
    server_pids: &[u32],
    run: &str,
    clients: usize,
    value_size: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<RunResult> {
    if members.is_empty() {
        bail!("nothing to run: no members");
    }
    let run: Arc<str> = Arc::from(run);
    let members: Arc<[Writer]> = Arc::from(members);
    let values: Arc<[Arc<[u8]>]> = (0..clients)
        .map(|_| {
            let mut value = vec![0u8; value_size];
            rand::thread_rng().fill_bytes(&mut value);
            Arc::from(value)
        })
        .collect();
    let requests: Requests = Arc::new(move |id, seq| {
        let writer = members[id % members.len()].clone();
        let run = run.clone();
        let value = values[id].to_vec();
        Box::pin(async move { writer.write(&run, id, seq, value).await })
    });
    run_requests(requests, server_pids, clients, warmup, measure).await
}

/// One request of a closed-loop client: `Ok` when it succeeded, else what went wrong.
pub(crate) type Request = BoxFuture<'static, Result<(), String>>;
/// Makes client `id`'s request number `seq`.
pub(crate) type Requests = Arc<dyn Fn(usize, u64) -> Request + Send + Sync>;

/// Runs `clients` closed-loop clients, each issuing `requests(id, seq)` one after the other:
/// `warmup` unrecorded, then `measure` recorded. Requests completing inside the measured window
/// count; clients stop issuing at its end. The CPU time of `server_pids` and of this process is
/// read at both ends of the window.
pub(crate) async fn run_requests(
    requests: Requests,
    server_pids: &[u32],
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<RunResult> {
    if clients == 0 {
        bail!("nothing to run: 0 clients");
    }
    let start = Instant::now();
    let window_start = start + warmup;
    let window_end = window_start + measure;
    let pids = server_pids.to_vec();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(window_start).await;
        let before = cpu_snapshot(&pids);
        tokio::time::sleep_until(window_end).await;
        let after = cpu_snapshot(&pids);
        let delta = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        (delta(before.0, after.0), delta(before.1, after.1))
    });
    let mut tasks = Vec::with_capacity(clients);
    for id in 0..clients {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            client_loop(&*requests, id, window_start, window_end).await
        }));
    }
    let mut result = RunResult {
        clients,
        completed: 0,
        errors: 0,
        first_error: None,
        window: measure,
        latency_us: histogram(),
        server_cpu_s: None,
        client_cpu_s: None,
    };
    for t in tasks {
        let s = t.await.context("benchmark client task")?;
        result.completed += s.completed;
        result.errors += s.errors;
        if result.first_error.is_none() {
            result.first_error = s.first_error;
        }
        result
            .latency_us
            .add(&s.latency_us)
            .context("merge latency histograms")?;
    }
    (result.server_cpu_s, result.client_cpu_s) = cpu.await.context("CPU accounting task")?;
    if result.completed == 0 {
        bail!(
            "no request completed in the measured window with {clients} clients ({} errors; first: {})",
            result.errors,
            result.first_error.as_deref().unwrap_or("none")
        );
    }
    Ok(result)
}

async fn client_loop(
    requests: &(dyn Fn(usize, u64) -> Request + Send + Sync),
    id: usize,
    window_start: Instant,
    window_end: Instant,
) -> ClientStats {
    let mut stats = ClientStats {
        completed: 0,
        errors: 0,
        first_error: None,
        latency_us: histogram(),
    };
    let mut consecutive_errors = 0;
    for seq in 0..MAX_REQUESTS_PER_CLIENT {
        let sent = Instant::now();
        if sent >= window_end {
            break;
        }
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, requests(id, seq)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        let done = Instant::now();
        let in_window = done >= window_start && done <= window_end;
        match outcome {
            Ok(()) => {
                consecutive_errors = 0;
                if in_window {
                    stats.completed += 1;
                    let us = done.duration_since(sent).as_micros().max(1) as u64;
                    stats.latency_us.saturating_record(us);
                }
            }
            Err(e) => {
                consecutive_errors += 1;
                if in_window {
                    stats.errors += 1;
                }
                if stats.first_error.is_none() {
                    tracing::warn!(client = id, seq, error = %e, "request failed");
                    stats.first_error = Some(e);
                }
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    tracing::warn!(client = id, consecutive_errors, "client giving up");
                    break;
                }
            }
        }
    }
    stats
}
