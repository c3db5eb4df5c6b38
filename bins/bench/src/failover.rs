//! `navctl bench failover`: how long writes stop when a leader dies or is restarted. Three
//! members under a steady write load from several closed-loop clients (each bound to one
//! member, moving to the next when its member fails); the leader is SIGKILLed and restarted
//! again and again. From each kill on, a probe sends a fresh write to a surviving member every
//! 5 ms, each on its own, and the benchmark records how long after the kill the first of them
//! was acknowledged (a closed-loop client may be waiting on a request the dead leader will
//! never answer, which would measure the client's timeout instead). Then every member
//! is restarted in turn with SIGTERM (a rolling restart), and the longest gap between two
//! acknowledged writes in that window is the stall. navarch runs first, then etcd 3.4 with its
//! defaults, killed and restarted the same way, never both at once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;
use navarch_store::{ObjectKey, Op, StoreClient, Txn, TxnOutcome};
use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::etcd::{self, EtcdCluster, EtcdKv};
use super::navarch::NavarchCluster;
use super::procs::{self, Procs};
use super::STARTUP_TIMEOUT;

/// Flags of `navctl bench failover`.
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverBenchArgs {
    /// Times the leader is SIGKILLed (and restarted) per system.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Closed-loop writing clients.
    #[arg(long, default_value_t = 6)]
    pub clients: usize,
    /// Steady load between a restarted member catching up and the next kill, in ms.
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,
    /// Run navarch only, not etcd.
    #[arg(long)]
    pub no_etcd: bool,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: std::path::PathBuf,
    /// Where to create the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Keep the data dirs and logs afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub(crate) fn validate(args: &FailoverBenchArgs) -> Result<()> {
    if args.kills == 0 || args.kills > 1000 {
        bail!("--kills must be between 1 and 1000");
    }
    if args.clients == 0 || args.clients > 256 {
        bail!("--clients must be between 1 and 256");
    }
    Ok(())
}

/// How long a member may take to come back and catch up after a restart.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to accept a write after a kill before the run fails.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// One write through member `member` (0-based), key unique to `(client, seq)`; true if it
/// was acknowledged.
type WriteFn = Arc<dyn Fn(usize, usize, u64) -> BoxFuture<'static, bool> + Send + Sync>;

/// The clients' record: when each write was acknowledged, in that order.
#[derive(Default)]
struct Record {
    acks: Mutex<Vec<Instant>>,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// Starts `clients` closed-loop writers over `members` members.
fn start_load(
    clients: usize,
    members: usize,
    write: WriteFn,
) -> (Arc<Record>, Vec<tokio::task::JoinHandle<()>>) {
    let record = Arc::new(Record::default());
    let handles = (0..clients)
        .map(|c| {
            let record = record.clone();
            let write = write.clone();
            tokio::spawn(async move {
                let mut member = c % members;
                let mut seq = 0u64;
                while !record.stop.load(Ordering::Relaxed) {
                    seq += 1;
                    if write(member, c, seq).await {
                        record.acks.lock().expect("acks").push(Instant::now());
                    } else {
                        record.errors.fetch_add(1, Ordering::Relaxed);
                        // Its member failed it: try the next one, a moment later.
                        member = (member + 1) % members;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            })
        })
        .collect();
    (record, handles)
}

async fn stop_load(record: &Record, handles: Vec<tokio::task::JoinHandle<()>>) {
    record.stop.store(true, Ordering::Relaxed);
    for h in handles {
        // A client may wait out its request's own timeout; it cannot take longer than that.
        let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
    }
}

/// From the kill on, sends a fresh write every few milliseconds to the surviving members
/// (each on its own, not waiting for the others: the closed-loop clients may sit on requests
/// the dead leader will never answer); returns the time from the kill to the first one
/// acknowledged.
async fn probe_after_kill(
    write: &WriteFn,
    killed_at: Instant,
    dead: usize,
    kill: usize,
) -> Result<Duration> {
    let survivors: Vec<usize> = (0..3).filter(|m| *m != dead).collect();
    let deadline = killed_at + RECOVERY_TIMEOUT;
    let mut probes = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() > deadline {
                    bail!("no write acknowledged within {RECOVERY_TIMEOUT:?} of the kill");
                }
                seq += 1;
                let member = survivors[seq as usize % survivors.len()];
                let write = write.clone();
                probes.spawn(async move {
                    write(member, PROBE_CLIENT + kill, seq).await.then(Instant::now)
                });
            }
            Some(done) = probes.join_next() => {
                if let Ok(Some(acked)) = done {
                    return Ok(acked - killed_at);
                }
            }
        }
    }
}

/// How often a probe write is sent after a kill.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// Client numbers of the probes (their keys never collide with the load's).
const PROBE_CLIENT: usize = 1_000_000;

/// The longest time without an acknowledgement between `from` and `to`, and when it began.
fn longest_stall(record: &Record, from: Instant, to: Instant) -> (Duration, Instant) {
    let acks = record.acks.lock().expect("acks");
    let mut times: Vec<Instant> = acks
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    times.sort();
    let mut last = from;
    let mut worst = (Duration::ZERO, from);
    for t in times.into_iter().chain(std::iter::once(to)) {
        if t - last > worst.0 {
            worst = (t - last, last);
        }
        last = t;
    }
    worst
}

/// What one system's run measured.
struct Outcome {
    label: String,
    /// Kill to first acknowledged write through a survivor, one per kill.
    recoveries: Vec<Duration>,
    rolling_stall: Duration,
    writes: usize,
    errors: u64,
}

/// The operations the benchmark needs from a cluster of either system.
pub(crate) trait Cluster {
    /// The cluster's processes.
    fn procs(&mut self) -> &mut Procs;
    /// The process name of member `i`.
    fn member_name(&self, i: usize) -> String;
    /// The index of the member that the members answering agree is the leader, if they do.
    async fn leader(&self) -> Option<usize>;
    /// Waits until member `i` follows a leader and has applied what the leader had committed
    /// when the wait began.
    async fn wait_caught_up(&mut self, i: usize, timeout: Duration) -> Result<()>;

    /// Signals member `i` and waits for it to exit.
    fn signal(&mut self, i: usize, signal: Signal) -> Result<()> {
        let name = self.member_name(i);
        self.procs().stop_one(&name, signal)
    }

    /// Starts member `i` again on its data dir.
    fn restart(&mut self, i: usize) -> Result<()> {
        let name = self.member_name(i);
        self.procs().restart(&name)
    }
}

async fn wait_leader<C: Cluster>(cluster: &C) -> Result<usize> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(l) = cluster.leader().await {
            return Ok(l);
        }
        if Instant::now() > deadline {
            bail!("the members did not agree on a leader within {STARTUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kills and the rolling restart against one running cluster under load.
async fn measure<C: Cluster>(
    label: String,
    cluster: &mut C,
    write: WriteFn,
    args: &FailoverBenchArgs,
) -> Result<Outcome> {
    let settle = Duration::from_millis(args.settle_ms);
    let (record, handles) = start_load(args.clients, 3, write.clone());
    let mut recoveries = Vec::new();
    let result: Result<Duration> = async {
        tokio::time::sleep(settle).await;
        for k in 0..args.kills {
            let leader = wait_leader(cluster).await?;
            let killed_at = Instant::now();
            cluster.signal(leader, Signal::SIGKILL)?;
            let took = probe_after_kill(&write, killed_at, leader, k)
                .await
                .with_context(|| format!("{label}, kill {}", k + 1))?;
            recoveries.push(took);
            eprintln!(
                "  {label}: kill {:>2} of member {}: first write acknowledged after {:.1} ms",
                k + 1,
                leader + 1,
                ms(took)
            );
            cluster.restart(leader)?;
            cluster.wait_caught_up(leader, CATCH_UP_TIMEOUT).await?;
            tokio::time::sleep(settle).await;
        }
        // The rolling restart: each member in turn, stopped with SIGTERM, started again, and
        // caught up before the next.
        let from = Instant::now();
        let mut marks = Vec::new();
        for i in 0..3 {
            marks.push((Instant::now(), format!("SIGTERM of member {}", i + 1)));
            cluster.signal(i, Signal::SIGTERM)?;
            marks.push((Instant::now(), format!("member {} exited", i + 1)));
            cluster.restart(i)?;
            cluster.wait_caught_up(i, CATCH_UP_TIMEOUT).await?;
            marks.push((Instant::now(), format!("member {} caught up", i + 1)));
            tokio::time::sleep(settle).await;
        }
        let to = Instant::now();
        let (stall, began) = longest_stall(&record, from, to);
        let mark = marks
            .iter()
            .rev()
            .find(|(at, _)| *at <= began)
            .or(marks.first());
        if let Some((at, what)) = mark {
            eprintln!(
                "  {label}: rolling restart: longest stall {:.1} ms, from {:.1} ms after {what}",
                ms(stall),
                ms(began.saturating_duration_since(*at))
            );
        }
        Ok(stall)
    }
    .await;
    stop_load(&record, handles).await;
    let rolling_stall = result?;
    let writes = record.acks.lock().expect("acks").len();
    Ok(Outcome {
        label,
        recoveries,
        rolling_stall,
        writes,
        errors: record.errors.load(Ordering::Relaxed),
    })
}

fn navarch_writer(clients: Vec<StoreClient>) -> WriteFn {
    let clients = Arc::new(clients);
    Arc::new(move |member, client, seq| {
        let clients = clients.clone();
        Box::pin(async move {
            let txn = Txn::new(vec![Op::Put {
                key: ObjectKey::new("BenchFailover", "", format!("c{client}-{seq}")),
                value: vec![b'x'; 128],
            }]);
            matches!(
                clients[member].txn(&txn).await,
                Ok(TxnOutcome::Committed { .. })
            )
        })
    })
}

fn etcd_writer(kvs: Vec<EtcdKv>) -> WriteFn {
    let kvs = Arc::new(kvs);
    Arc::new(move |member, client, seq| {
        let kvs = kvs.clone();
        Box::pin(async move {
            let key = format!("/bench-failover/c{client}-{seq}").into_bytes();
            kvs[member].put(key, vec![b'x'; 128]).await.is_ok()
        })
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The nearest-rank percentile `p` (0-100) of `xs`.
fn percentile(xs: &[Duration], p: f64) -> Duration {
    let mut v = xs.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub(crate) async fn run(args: &FailoverBenchArgs, root: &Path) -> Result<()> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let etcd_bin = if args.no_etcd {
        None
    } else {
        Some(etcd::check_binary(&args.etcd)?)
    };
    println!("navctl bench failover: 3 members on loopback, {} closed-loop writing clients (128-byte puts, unique keys)", args.clients);
    println!("  {} SIGKILLs of the leader per system, each restarted and caught up before the next; then a rolling restart with SIGTERM", args.kills);
    println!("  recovery = kill to the first acknowledged write of a probe sending to the survivors every 5 ms from the kill on");
    if let Some(load) = procs::load_average() {
        println!("  load average before: {load:.2}");
    }
    let mut outcomes = Vec::new();

    let dir = root.join("navarch");
    std::fs::create_dir_all(&dir)?;
    let mut cluster = NavarchCluster::start(
        &master_bin,
        &dir,
        "warn,navarch_store=info,navarch_master=info",
    )?;
    let clients = cluster.connect_ready(STARTUP_TIMEOUT).await?;
    let outcome = measure(
        "navarch".into(),
        &mut cluster,
        navarch_writer(clients),
        args,
    )
    .await;
    cluster.stop();
    outcomes.push(outcome?);

    if let Some(bin) = etcd_bin {
        let dir = root.join("etcd");
        std::fs::create_dir_all(&dir)?;
        let (ca, _) = navarch_net::pki::ClusterCa::load_or_create(&dir.join("ca"))
            .context("create a CA for etcd's certificates")?;
        let mut cluster = EtcdCluster::start(&bin, &dir, Some(&ca)).await?;
        let label = format!("etcd {}", cluster.version);
        let kvs = cluster.connect_ready(STARTUP_TIMEOUT).await?;
        let outcome = measure(label, &mut cluster, etcd_writer(kvs), args).await;
        cluster.stop();
        outcomes.push(outcome?);
    }

    println!();
    println!(
        "{:<14} | {:>8} {:>8} {:>8} {:>8} | {:>17} | {:>8} {:>7}",
        "system", "p50 ms", "p99 ms", "min ms", "max ms", "rolling stall ms", "writes", "errors"
    );
    for o in &outcomes {
        println!(
            "{:<14} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>17.1} | {:>8} {:>7}",
            o.label,
            ms(percentile(&o.recoveries, 50.0)),
            ms(percentile(&o.recoveries, 99.0)),
            ms(percentile(&o.recoveries, 0.0)),
            ms(percentile(&o.recoveries, 100.0)),
            ms(o.rolling_stall),
            o.writes,
            o.errors
        );
    }
    if let [n, e] = &outcomes[..] {
        let ratio =
            |p: f64| ms(percentile(&e.recoveries, p)) / ms(percentile(&n.recoveries, p)).max(0.001);
        println!(
            "etcd/navarch: recovery p50 {:.2}x, p99 {:.2}x; rolling-restart stall {:.2}x",
            ratio(50.0),
            ratio(99.0),
            ms(e.rolling_stall) / ms(n.rolling_stall).max(0.001)
        );
    }
    if let Some(load) = procs::load_average() {
        println!("load average after: {load:.2}");
    }
    Ok(())
}
