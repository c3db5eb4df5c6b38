//! `navctl bench store`: replicated write throughput and p50/p99 latency of a 3-member navarch
//! store cluster on loopback, and with `--vs-etcd` of a 3-member etcd cluster running the same
//! workload on the same machine, printed side by side with one machine-readable summary line
//! per concurrency.
//!
//! `navctl bench api` (see `api`): create, get and list of pods through the Kubernetes API over
//! HTTPS against the same kind of 3-master cluster, beside the raw store figures of the same run.
//!
//! `navctl bench failover` (see `failover`): SIGKILLs of the leader and a rolling SIGTERM
//! restart under write load, navarch against etcd.
//!
//! `navctl bench scheduler` (see `scheduler`): bindings per second and creation-to-binding
//! latency with a thousand hollow nodes, and the masters' memory.
//!
//! `navctl bench pods` (see `pods`): pod startup on a real node agent, and its memory.
//!
//! `navctl bench proxy` (see `proxy`): the node proxy against connecting directly.
//!
//! `navctl bench inspector` (see `inspector`): a busy cluster without and with the inspector
//! following.
//!
//! The crate is the benchmarks' home; `navctl bench` (in `bins`) only parses and calls it.
//!
//! Both clusters are started by the benchmark from temporary data dirs and killed when it ends,
//! fails or is interrupted. The systems run one after the other, never at the same time.

mod api;
mod bench_pod;
pub mod chaos;
mod etcd;
mod failover;
mod inspector;
mod navarch;
mod pods;
mod procs;
mod propagation;
mod proxy;
mod scheduler;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use self::etcd::EtcdCluster;
use self::navarch::NavarchCluster;
use self::workload::{RunResult, Writer};

/// How long a cluster may take to elect a leader and accept a first write.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bounds on the flags, so a typo cannot start a runaway run.
const MAX_CLIENTS: usize = 4096;
const MAX_SECONDS: u64 = 3600;
const MAX_VALUE_SIZE: usize = 1 << 20;

/// `navctl bench ...`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Replicated write throughput and latency of a 3-member store cluster on loopback
    /// (and of a 3-member etcd cluster with --vs-etcd).
    Store(StoreBenchArgs),
    /// Create, get and list of pods over HTTPS against 3 masters, beside the raw store's
    /// create and get of the same bytes and keys in the same run (the API's cost as a ratio).
    Api(ApiBenchArgs),
    /// Time from a SIGKILL of the leader to the first write acknowledged through a survivor
    /// (p50, p99) and the longest write stall of a rolling SIGTERM restart, against etcd.
    Failover(FailoverBenchArgs),
    /// Pods bound per second and creation-to-binding p50/p99 with 1,000 hollow nodes on
    /// three masters, and the masters' resident memory idle and loaded.
    Scheduler(SchedulerBenchArgs),
    /// Pod startup (creation to Running, p50/p99) on a real node agent per runtime, and the
    /// agent's resident memory idle and with the pods.
    Pods(PodsBenchArgs),
    /// The node proxy's TCP throughput, new connections per second and UDP round trips
    /// through a cluster IP (with splice and with a userspace copy), against the endpoint
    /// directly, as ratios of one run.
    Proxy(ProxyBenchArgs),
    /// A busy 3-master cluster's API throughput and p50/p99 without and with the inspector
    /// following (message streams and the web page's polls on every master), as a ratio of
    /// one run.
    Inspector(InspectorBenchArgs),
}

pub use failover::FailoverBenchArgs;
pub use inspector::InspectorBenchArgs;
pub use pods::PodsBenchArgs;
pub use proxy::ProxyBenchArgs;
pub use scheduler::SchedulerBenchArgs;

/// How the HTTPS clients of `navctl bench api` hold their connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiConnections {
    /// Every benchmark client has its own HTTPS client (own TLS session, one keep-alive
    /// connection): a fleet of independent clients, like kubelets and controllers.
    PerClient,
    /// One HTTPS client per master shared by the benchmark clients bound to it (a pool that
    /// grows to one keep-alive connection per concurrent request: HTTP/1.1, no multiplexing).
    PerMember,
}

/// The value the raw store baseline of `bench api` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiBaseline {
    /// The pod as the API stores it.
    Stored,
    /// The body a client posts.
    Posted,
}

/// Flags of `navctl bench api`.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiBenchArgs {
    /// Concurrent clients, comma separated: one measured run per operation and value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub clients: Vec<usize>,
    /// Measured seconds per operation and client count.
    #[arg(long, default_value_t = 6)]
    pub seconds: u64,
    /// Unrecorded warm-up seconds before each measured run.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Pods in the namespace the list operation reads (created before the runs).
    #[arg(long, default_value_t = 100)]
    pub list_size: usize,
    /// How the HTTPS clients hold their connections.
    #[arg(long, value_enum, default_value = "per-client")]
    pub connections: ApiConnections,
    /// What the raw store baseline writes: the pod as the API stores it (with Kubernetes'
    /// defaults, about 570 bytes), or the body a client posts (about 140 bytes).
    #[arg(long, value_enum, default_value = "stored")]
    pub baseline: ApiBaseline,
    /// Where to create the temporary data dirs (default: the system temp dir). Use a real
    /// disk: on tmpfs an fsync costs nothing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data dirs and logs afterwards, for debugging.
    #[arg(long)]
    pub keep: bool,
}

/// Flags of `navctl bench store`.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Concurrent clients, comma separated: one measured run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub clients: Vec<usize>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Unrecorded warm-up seconds before each measured run.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Bytes per written value (random, so not compressible).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Also run the same workload against a 3-member etcd cluster and compare.
    #[arg(long)]
    pub vs_etcd: bool,
    /// The etcd binary (Debian's etcd-server).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,
    /// Run etcd over plain HTTP instead of mutual TLS on its client and peer URLs.
    #[arg(long)]
    pub etcd_plaintext: bool,
    /// Where to create the temporary data dirs (default: the system temp dir). Use a real
    /// disk: on tmpfs an fsync costs nothing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data dirs and logs afterwards, for debugging.
    #[arg(long)]
    pub keep: bool,
}

/// An HTTPS client trusting the CA of `id` and presenting `id`'s certificate (an anonymous
/// identity presents none): the benchmarks drive the API with plain requests.
pub(crate) fn https_client(
    id: &navarch_net::pki::Identity,
    timeout: Duration,
) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .add_root_certificate(reqwest::Certificate::from_pem(id.ca_pem.as_bytes())?);
    if !id.is_anonymous() {
        let pem = format!("{}\n{}", id.cert_pem, id.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

/// Runs a benchmark command; Ctrl-C stops it and kills the clusters it started.
pub async fn run(cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Store(args) => {
            validate(args)?;
            in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                store(args, &root).await
            })
            .await
        }
        BenchCommand::Api(args) => {
            api::validate(args)?;
            in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                api::run(args, &root).await
            })
            .await
        }
        BenchCommand::Pods(args) => {
            pods::validate(args)?;
            in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                pods::run(args, &root).await
            })
            .await
        }
        BenchCommand::Proxy(args) => {
            proxy::validate(args)?;
            proxy::run(args).await
        }
        BenchCommand::Scheduler(args) => {
            scheduler::validate(args)?;
            in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                scheduler::run(args, &root).await
            })
            .await
        }
        BenchCommand::Inspector(args) => {
            inspector::validate(args)?;
            in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                inspector::run(args, &root).await
            })
            .await
        }
        BenchCommand::Failover(args) => {
            failover::validate(args)?;
            in_temp_dir(args.dir.as_deref(), args.keep, |root| async move {
                failover::run(args, &root).await
            })
            .await
        }
    }
}

/// Runs `bench` in a fresh temporary directory under `dir` (default: the system temp dir),
/// removed afterwards unless `keep`; Ctrl-C stops it (dropping the clusters kills them).
async fn in_temp_dir<F, Fut>(dir: Option<&Path>, keep: bool, bench: F) -> Result<()>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let base = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("navarch-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("create a temp dir in {}", base.display()))?;
    let result = tokio::select! {
        r = bench(tmp.path().to_path_buf()) => r,
        r = tokio::signal::ctrl_c() => {
            r.context("wait for Ctrl-C")?;
            Err(anyhow::anyhow!("interrupted; the clusters were stopped"))
        }
    };
    if keep {
        let kept = tmp.keep();
        eprintln!("kept data dirs and logs in {}", kept.display());
    }
    result
}

fn validate(args: &StoreBenchArgs) -> Result<()> {
    if args.clients.is_empty() || args.clients.iter().any(|&c| c == 0 || c > MAX_CLIENTS) {
        bail!("--clients must list concurrencies between 1 and {MAX_CLIENTS}");
    }
    if args.seconds == 0 || args.seconds > MAX_SECONDS || args.warmup_seconds > MAX_SECONDS {
        bail!("--seconds must be between 1 and {MAX_SECONDS} (and --warmup-seconds at most that)");
    }
    if args.value_size == 0 || args.value_size > MAX_VALUE_SIZE {
        bail!("--value-size must be between 1 and {MAX_VALUE_SIZE}");
    }
    Ok(())
}

/// One concurrency's figures for both systems.
struct Row {
    clients: usize,
    navarch: RunResult,
    etcd: Option<RunResult>,
}

async fn store(args: &StoreBenchArgs, root: &Path) -> Result<()> {
    let master_bin = procs::sibling_binary("navarch-master")?;
    let etcd_bin = if args.vs_etcd {
        Some(etcd::check_binary(&args.etcd)?)
    } else {
        None
    };
    let warmup = Duration::from_secs(args.warmup_seconds);
    let measure = Duration::from_secs(args.seconds);
    let fs = procs::filesystem_of(root).unwrap_or_else(|| "unknown filesystem".into());

    println!("navctl bench store: replicated writes on 3-member clusters, all on this machine (loopback)");
    println!(
        "  workload: {} clients; {}-byte random values; unique keys, one create per request;",
        list(&args.clients),
        args.value_size
    );
    println!(
        "            closed loop, client i bound to member i mod 3, one connection per member; {}s warm-up, {}s measured per run",
        args.warmup_seconds, args.seconds
    );
    println!("  data dirs: {} ({fs})", root.display());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "  machine: {cpus} CPUs, load average {} at start (clients and servers share these CPUs; other work skews the figures)",
        load()
    );
    if fs == "tmpfs" || fs == "ramfs" {
        println!("  WARNING: the data dirs are on {fs}, where fsync costs nothing; pass --dir on a real disk");
    }
    println!(
        "  navarch: 3 x {} ; QUIC with mutual TLS; Raft appends acknowledged only after a RocksDB WAL fsync (group commit)",
        master_bin.display()
    );

    // navarch first, then etcd: never both at once.
    let navarch_dir = root.join("navarch");
    std::fs::create_dir_all(&navarch_dir)?;
    let log_filter = std::env::var("NAVARCH_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut cluster = NavarchCluster::start(&master_bin, &navarch_dir, &log_filter)?;
    let writers: Vec<Writer> = cluster
        .connect_ready(STARTUP_TIMEOUT)
        .await?
        .into_iter()
        .map(Writer::Navarch)
        .collect();
    let pids = cluster.pids();
    let navarch_results = run_series("navarch", &writers, &pids, args, warmup, measure, || {
        cluster
            .check_running()
            .context("a navarch master died during the run")
    })
    .await?;
    drop(writers);
    cluster.stop();
    drop(cluster);

    let mut etcd_results: Vec<Option<RunResult>> = args.clients.iter().map(|_| None).collect();
    if let Some(bin) = etcd_bin {
        let etcd_dir = root.join("etcd");
        std::fs::create_dir_all(&etcd_dir)?;
        let ca = if args.etcd_plaintext {
            None
        } else {
            let (ca, _) = navarch_net::pki::ClusterCa::load_or_create(&etcd_dir.join("ca"))
                .context("create a CA for etcd's certificates")?;
            Some(ca)
        };
        let mut cluster = EtcdCluster::start(&bin, &etcd_dir, ca.as_ref()).await?;
        let transport = if ca.is_some() {
            "gRPC over TLS with client certificates; peer URLs TLS with client certificates too"
        } else {
            "gRPC over plain HTTP/2 (NO TLS) on client and peer URLs"
        };
        println!(
            "  etcd:    3 x etcd {} ({}) ; {transport}; WAL fsync on every commit (etcd's default)",
            cluster.version,
            bin.display()
        );
        let writers: Vec<Writer> = cluster
            .connect_ready(STARTUP_TIMEOUT)
            .await?
            .into_iter()
            .map(Writer::Etcd)
            .collect();
        let pids = cluster.pids();
        let results = run_series("etcd", &writers, &pids, args, warmup, measure, || {
            cluster
                .check_running()
                .context("an etcd member died during the run")
        })
        .await?;
        etcd_results = results.into_iter().map(Some).collect();
        drop(writers);
        cluster.stop();
        if ca.is_some() {
            println!("  encryption: both encrypted: navarch QUIC with mutual TLS, etcd gRPC and peer traffic with mutual TLS");
        } else {
            println!(
                "  encryption: etcd ran WITHOUT TLS (plain HTTP/2 on client and peer URLs) while navarch used mutual TLS (QUIC)"
            );
        }
    }

    let rows: Vec<Row> = args
        .clients
        .iter()
        .zip(navarch_results)
        .zip(etcd_results)
        .map(|((&clients, navarch), etcd)| Row {
            clients,
            navarch,
            etcd,
        })
        .collect();
    println!("  load average at end: {}", load());
    print_table(&rows);
    Ok(())
}

/// Runs the workload once per concurrency against one system, checking after each run that
/// none of its processes died.
async fn run_series(
    system: &str,
    writers: &[Writer],
    pids: &[u32],
    args: &StoreBenchArgs,
    warmup: Duration,
    measure: Duration,
    mut check_running: impl FnMut() -> Result<()>,
) -> Result<Vec<RunResult>> {
    let mut results = Vec::with_capacity(args.clients.len());
    for (i, &n) in args.clients.iter().enumerate() {
        let r = workload::run(
            writers,
            pids,
            &format!("run{i}-c{n}"),
            n,
            args.value_size,
            warmup,
            measure,
        )
        .await;
        check_running()?;
        let r = r.with_context(|| format!("{system} run with {n} clients"))?;
        progress(system, &r);
        results.push(r);
    }
    Ok(results)
}

fn load() -> String {
    procs::load_average()
        .map(|l| format!("{l:.2}"))
        .unwrap_or_else(|| "unknown".into())
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Milliseconds with two decimals below 10 ms, one above.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// Writes per second, rounded to a whole number.
fn wps(r: &RunResult) -> u64 {
    r.writes_per_sec().round() as u64
}

fn progress(system: &str, r: &RunResult) {
    tracing::info!(
        system,
        clients = r.clients,
        writes = r.completed,
        errors = r.errors,
        wps = wps(r),
        p50_ms = r.p50_ms(),
        p99_ms = r.p99_ms(),
        "run finished"
    );
    let cores = |c: Option<f64>| c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into());
    println!(
        "  {system:<7} {:>4} clients: {:>7} writes in {}s, {} errors; CPU cores busy: servers {} ({} ms/write), bench clients {}",
        r.clients,
        r.completed,
        r.window.as_secs(),
        r.errors,
        cores(r.server_cores()),
        r.server_cpu_ms_per_write().map(|m| format!("{m:.3}")).unwrap_or_else(|| "?".into()),
        cores(r.client_cores()),
    );
    if let Some(e) = &r.first_error {
        println!(
            "  {system} with {} clients: {} failed writes in the window; first error: {e}",
            r.clients, r.errors
        );
    }
}

fn print_table(rows: &[Row]) {
    let with_etcd = rows.iter().any(|r| r.etcd.is_some());
    println!();
    if with_etcd {
        println!(
            "{:>7} | {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>5}",
            "clients", "navarch w/s", "p50 ms", "p99 ms", "etcd w/s", "p50 ms", "p99 ms", "ratio"
        );
        println!("{}", "-".repeat(84));
    } else {
        println!(
            "{:>7} | {:>11} {:>8} {:>8}",
            "clients", "navarch w/s", "p50 ms", "p99 ms"
        );
        println!("{}", "-".repeat(40));
    }
    for r in rows {
        let n = &r.navarch;
        let left = format!(
            "{:>7} | {:>11} {:>8} {:>8}",
            r.clients,
            wps(n),
            ms(n.p50_ms()),
            ms(n.p99_ms())
        );
        match &r.etcd {
            Some(e) => println!(
                "{left} | {:>11} {:>8} {:>8} | {:>5.2}",
                wps(e),
                ms(e.p50_ms()),
                ms(e.p99_ms()),
                n.writes_per_sec() / e.writes_per_sec()
            ),
            None => println!("{left}"),
        }
    }
    println!();
    for r in rows {
        let n = &r.navarch;
        match &r.etcd {
            Some(e) => println!(
                "clients={} navarch_wps={} etcd_wps={} ratio={:.2} p99_ms={} etcd_p99_ms={} p50_ms={} etcd_p50_ms={}",
                r.clients,
                wps(n),
                wps(e),
                n.writes_per_sec() / e.writes_per_sec(),
                ms(n.p99_ms()),
                ms(e.p99_ms()),
                ms(n.p50_ms()),
                ms(e.p50_ms())
            ),
            None => println!(
                "clients={} navarch_wps={} p99_ms={} p50_ms={}",
                r.clients,
                wps(n),
                ms(n.p99_ms()),
                ms(n.p50_ms())
            ),
        }
    }
}
