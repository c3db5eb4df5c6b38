//! `navarch-node`: a node of the cluster. By default it joins (a bootstrap token and the
//! pinned CA hash buy a node certificate over QUIC, stored in its data dir) and runs the
//! node agent: it registers its Node and runs the pods bound to it on its container
//! runtimes (`process`, and `oci` through runc when runc is there). With `--hollow` it runs
//! hollow nodes (`navarch-agent`): nodes that register, renew their leases and report
//! their pods running over the node link, without running anything (`--count N` of them in
//! one process). `navarch-node shim ...` is the per-container supervisor the runtimes start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use navarch_agent::config::{parse_capacity, parse_labels, Timing, DEFAULT_CAPACITY};
use navarch_agent::credentials::JoinParams;
use navarch_agent::{Fleet, FleetConfig};

#[derive(Parser)]
#[command(
    name = "navarch-node",
    about = "Join a node to a navarch cluster, or run hollow nodes"
)]
struct Cli {
    /// The node's name (its certificate becomes CN=system:node:<name>); with --count, the
    /// stem of the nodes' names (<name>-0 ... <name>-(N-1)).
    #[arg(long)]
    name: String,
    /// Masters' QUIC addresses, comma separated: the node joins through the first that
    /// answers and talks to one at a time, moving to the next when it fails.
    #[arg(long, value_delimiter = ',', required = true)]
    master: Vec<SocketAddr>,
    /// A bootstrap token, <id>.<secret> (a master writes one to DATA_DIR/join-token).
    #[arg(long, env = "NAVARCH_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// The cluster CA's public key pin, sha256:<hex> (DATA_DIR/ca-hash on a master).
    #[arg(long)]
    ca_hash: String,
    /// Where the node keeps its credentials (with --count, a directory per node in it).
    #[arg(long, default_value = "navarch-node-data")]
    data_dir: PathBuf,
    /// Run hollow nodes: they register, renew their leases and report the pods bound to
    /// them running, over the node link, without running anything (pods are not isolated).
    #[arg(long)]
    hollow: bool,
    /// How many hollow nodes this process runs.
    #[arg(long, requires = "hollow")]
    count: Option<usize>,
    /// The resources each hollow node reports (capacity and allocatable).
    #[arg(long, default_value = DEFAULT_CAPACITY, requires = "hollow")]
    capacity: String,
    /// Labels of the node (of each hollow node with --hollow), k=v,...
    /// (kubernetes.io/hostname, /os and /arch are added).
    #[arg(long, default_value = "")]
    labels: String,
    /// The range this process's nodes take their pod ranges from: node k gets its k-th
    /// subnet of --node-cidr-mask-size (give each process a range of its own).
    #[arg(long, default_value = "10.244.0.0/14", requires = "hollow")]
    pod_cidr: String,
    /// The prefix length of each node's pod range.
    #[arg(long, default_value_t = 24, requires = "hollow")]
    node_cidr_mask_size: u8,
    /// Seconds between renewals of a node's Lease in kube-node-lease.
    #[arg(long, default_value_t = 10, requires = "hollow")]
    lease_renew_seconds: u64,
    /// The Lease's leaseDurationSeconds.
    #[arg(long, default_value_t = 40, requires = "hollow")]
    lease_duration_seconds: u64,
    /// Seconds between refreshes of a node's status heartbeat (its conditions'
    /// lastHeartbeatTime).
    #[arg(long, default_value_t = 60, requires = "hollow")]
    status_update_seconds: u64,
    /// Joins in flight at once (each waits out the masters' join rate limits).
    #[arg(long, default_value_t = 4, requires = "hollow")]
    join_parallelism: usize,
    /// Only join: get the node certificate, store it in --data-dir and exit.
    #[arg(long, conflicts_with = "hollow")]
    join_only: bool,
    #[command(flatten)]
    node: navarch_bins::node::NodeArgs,
}

/// `navarch-node reset`: stops and removes every container, pod network and pod directory a
/// stopped node left on this machine.
#[derive(Parser)]
#[command(name = "navarch-node reset")]
struct Reset {
    /// The node's name (its bridge is named after it).
    #[arg(long)]
    name: String,
    /// The node's data dir (a master's embedded node: DATA_DIR/node).
    #[arg(long)]
    data_dir: PathBuf,
}

fn main() -> Result<()> {
    // The runtimes start this binary as each container's shim.
    if std::env::args().nth(1).as_deref() == Some("shim") {
        std::process::exit(navarch_runtime::shim::main());
    }
    // Before anything is created: the node's key is for this user only.
    navarch_bins::private::restrict_umask();
    navarch_bins::init_logging();
    if std::env::args().nth(1).as_deref() == Some("reset") {
        let r = Reset::parse_from(std::env::args().skip(1));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let done = rt.block_on(navarch_bins::node::reset(&r.name, &r.data_dir))?;
        println!(
            "node {} reset: {} containers and {} pods removed",
            r.name, done.containers, done.pods
        );
        return Ok(());
    }
    let cli = Cli::parse();
    if cli.hollow {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return rt.block_on(hollow(cli));
    }
    if cli.join_only {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return rt.block_on(join_only(cli));
    }
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
    .block_on(agent(cli))
}

async fn agent(cli: Cli) -> Result<()> {
    let join = JoinParams {
        masters: cli.master.clone(),
        token: cli.token.clone(),
        ca_hash: cli.ca_hash.clone(),
    };
    let mut node = cli.node.clone();
    if !cli.labels.is_empty() {
        node.node_labels = cli.labels.clone();
    }
    let run = navarch_bins::node::start(&cli.name, join, &cli.data_dir, &node)?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = sigterm.recv() => Ok(()),
    }
}

async fn join_only(cli: Cli) -> Result<()> {
    let identity = navarch_net::join(
        cli.master[0],
        &cli.token,
        &cli.ca_hash,
        &cli.name,
        Duration::from_secs(365 * 24 * 3600),
    )
    .await
    .context("join")?;
    navarch_bins::private::private_dir(&cli.data_dir)?;
    identity.save(&cli.data_dir, "node")?;
    tracing::info!(node = %cli.name, dir = %cli.data_dir.display(), "joined: node certificate stored");
    println!(
        "joined as system:node:{}; credentials in {}",
        cli.name,
        cli.data_dir.display()
    );
    Ok(())
}

async fn hollow(cli: Cli) -> Result<()> {
    if cli.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let secs = |what: &str, s: u64| {
        if s == 0 {
            bail!("{what} must be at least 1 second");
        }
        Ok(Duration::from_secs(s))
    };
    let cfg = FleetConfig {
        name: cli.name,
        count: cli.count,
        join: JoinParams {
            masters: cli.master,
            token: cli.token,
            ca_hash: cli.ca_hash,
        },
        data_dir: cli.data_dir,
        capacity: parse_capacity(&cli.capacity)?,
        labels: parse_labels(&cli.labels)?,
        pod_cidr: cli.pod_cidr.parse()?,
        node_cidr_mask: cli.node_cidr_mask_size,
        timing: Timing {
            lease_renew: secs("--lease-renew-seconds", cli.lease_renew_seconds)?,
            lease_duration: secs("--lease-duration-seconds", cli.lease_duration_seconds)?,
            status_update: secs("--status-update-seconds", cli.status_update_seconds)?,
        },
        join_parallelism: cli.join_parallelism,
        user_agent: format!("navarch-node/{} (hollow)", env!("CARGO_PKG_VERSION")),
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    let fleet = tokio::select! {
        f = Fleet::start(cfg) => f?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
        _ = sigterm.recv() => return Ok(()),
    };
    let s = fleet.started();
    println!(
        "hollow nodes running: {} ({} joined now, {} reused stored credentials) after {} ms",
        s.nodes,
        s.joined,
        s.nodes - s.joined,
        s.elapsed.as_millis()
    );
    let signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = sigterm.recv() => "terminate",
    };
    tracing::info!(signal, "stopping the hollow nodes");
    fleet.stop().await;
    Ok(())
}
