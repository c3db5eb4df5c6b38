//! `navarch-master`: runs a master — today the replicated store member and its HTTP endpoint —
//! and restores a store backup into a fresh data dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use navarch_actors::{ActorPath, Root, TapConfig};
use navarch_bins::http::{self, AppState};
use navarch_bins::{credentials, debug_actors, init_logging};
use navarch_net::fault::FaultInjector;
use navarch_net::{JoinAuthority, NetConfig};
use navarch_store::{HistoryLimits, InitialState, Member, MemberConfig};

#[derive(Parser)]
#[command(
    name = "navarch-master",
    about = "A navarch master: the replicated store and its endpoints"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Restore a backup file into a fresh data dir (run once per member, then start them).
    Restore {
        #[arg(long)]
        backup: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ClusterState {
    New,
    Existing,
}

#[derive(clap::Args)]
struct RunArgs {
    /// This member's name (the CN of its certificate).
    #[arg(long, default_value = "m1")]
    name: String,
    /// Where the store, credentials and logs live.
    #[arg(long, default_value = "navarch-data")]
    data_dir: PathBuf,
    /// Every member as name=quic-addr, comma separated, in the same order on every member.
    /// Without it: a single-member cluster on --listen-peer.
    #[arg(long)]
    initial_cluster: Option<String>,
    /// The QUIC address of a single-member cluster.
    #[arg(long, default_value = "127.0.0.1:7001")]
    listen_peer: SocketAddr,
    /// `existing`: join the cluster without initializing it (a member whose data dir was wiped).
    #[arg(long, value_enum, default_value = "new")]
    initial_cluster_state: ClusterState,
    /// The HTTP endpoint (health, readiness, debug views).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen_api: SocketAddr,
    /// Directory of the cluster CA shared by the masters (default: DATA_DIR/pki).
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Build a Raft snapshot and purge the log behind it every this many entries (etcd's
    /// default too: a snapshot holds the whole state, so it is not cheap).
    #[arg(long, default_value_t = 100_000)]
    snapshot_every: u64,
    /// Keep at most this many revisions of watch history.
    #[arg(long, default_value_t = 100_000)]
    history_revisions: u64,
    /// Drop watch history older than this many seconds.
    #[arg(long, default_value_t = 3600)]
    history_seconds: u64,
    /// Raft heartbeat interval in milliseconds; it is also openraft's deadline for one
    /// AppendEntries (a follower's fsync included), and elections time out after 7-14 of them.
    #[arg(long, default_value_t = 250)]
    heartbeat_ms: u64,
    /// Messages the actor message tap keeps in memory (`/debug/messages`).
    #[arg(long, default_value_t = 10_000)]
    tap_capacity: usize,
}

fn parse_initial_cluster(s: &str) -> Result<Vec<(String, SocketAddr)>> {
    let mut out: Vec<(String, SocketAddr)> = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, addr) = part
            .split_once('=')
            .with_context(|| format!("--initial-cluster entry {part:?} is not name=host:port"))?;
        let addr: SocketAddr = addr.parse().with_context(|| {
            format!("--initial-cluster entry {part:?}: {addr:?} is not an ip:port")
        })?;
        if out.iter().any(|(n, _)| n == name) {
            bail!("--initial-cluster names {name:?} twice");
        }
        out.push((name.to_string(), addr));
    }
    if out.is_empty() {
        bail!("--initial-cluster is empty");
    }
    Ok(out)
}

fn main() -> Result<()> {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Restore { backup, data_dir }) => {
            let data =
                std::fs::read(&backup).with_context(|| format!("read {}", backup.display()))?;
            let summary = navarch_store::backup::restore(&data, &data_dir)?;
            println!(
                "restored {} objects at revision {} into {}",
                summary.objects,
                summary.revision,
                data_dir.display()
            );
            Ok(())
        }
        None => actix_rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .block_on(run(cli.run)),
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let cluster = match &args.initial_cluster {
        Some(s) => parse_initial_cluster(s)?,
        None => vec![(args.name.clone(), args.listen_peer)],
    };
    if !cluster.iter().any(|(n, _)| *n == args.name) {
        bail!(
            "--name {} is not one of the --initial-cluster members",
            args.name
        );
    }
    let creds = credentials::master(&args.data_dir, args.ca_dir.as_deref(), &args.name)?;
    // The actor root of this process; its tap also records every QUIC message.
    let root_path = ActorPath::parse(&format!("/master/{}", args.name))
        .with_context(|| format!("--name {:?} is not usable in an actor path", args.name))?;
    let root = Root::new(
        root_path,
        TapConfig {
            capacity: args.tap_capacity,
            ..TapConfig::default()
        },
    );
    let mut net = NetConfig::new(args.name.clone(), creds.member.clone());
    net.faults = FaultInjector::default();
    net.tap = Some(Arc::new(root.tap()));
    net.join = Some(JoinAuthority {
        ca: Arc::new(creds.ca),
        tokens: Arc::new(creds.tokens),
        node_cert_validity: Duration::from_secs(365 * 24 * 3600),
    });

    let mut cfg = MemberConfig::new(args.name.clone(), args.data_dir.clone(), cluster);
    cfg.initial_state = match args.initial_cluster_state {
        ClusterState::New => InitialState::New,
        ClusterState::Existing => InitialState::Existing,
    };
    cfg.snapshot_every = args.snapshot_every;
    cfg.history = HistoryLimits {
        max_revisions: args.history_revisions,
        max_age: Duration::from_secs(args.history_seconds),
    };
    cfg.heartbeat = Duration::from_millis(args.heartbeat_ms);
    cfg.election_timeout = (cfg.heartbeat * 7, cfg.heartbeat * 14);
    let member = Member::start(cfg, net).await?;

    let state = AppState {
        member: member.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let server = HttpServer::new(move || {
        let (registry, tap) = (root.registry(), root.tap());
        App::new()
            .wrap(actix_web::middleware::from_fn(http::correlation))
            .app_data(web::Data::new(state.clone()))
            .configure(http::configure)
            .configure(|cfg| debug_actors::configure(cfg, registry, tap))
    })
    .workers(2)
    .bind(args.listen_api)
    .with_context(|| format!("bind --listen-api {}", args.listen_api))?
    .run();
    tracing::info!(api = %args.listen_api, data_dir = %args.data_dir.display(), "master ready to serve");
    let handle = server.handle();
    tokio::select! {
        r = server => r.context("http server")?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            handle.stop(true).await;
        }
    }
    member.shutdown().await;
    Ok(())
}
