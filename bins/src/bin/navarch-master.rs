//! `navarch-master`: runs a master — the replicated store member, the API server over HTTPS
//! and the node link over QUIC — and restores a store backup into a fresh data dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpServer};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use navarch_actors::{ActorPath, Root, TapConfig};
use navarch_apiserver::audit::AuditLog;
use navarch_apiserver::http::{self, HttpLimits, HttpState};
use navarch_apiserver::masterservice;
use navarch_apiserver::nodelink::{self, NodeLinkLimits};
use navarch_apiserver::{ApiServer, ApiServerConfig, DebugHooks, TokenFile};
use navarch_bins::join::{self, JoinedMember};
use navarch_bins::{control, credentials, init_logging};
use navarch_client::SharedCaches;
use navarch_controllers::{ControlPlane, ControllerConfig};
use navarch_model::authz::Binding;
use navarch_model::identity;
use navarch_net::fault::FaultInjector;
use navarch_net::{Endpoint, JoinAuthority, JoinLimits, NetConfig, Rate, Router};
use navarch_store::election::Timing;
use navarch_store::{HistoryLimits, InitialState, Member, MemberConfig};

/// mimalloc: the master allocates and frees many small JSON values per request; glibc's
/// allocator spent a quarter of the API server's CPU on that under load. It is built with
/// `no_thp`: with transparent huge pages its arenas held 2 MiB pages for a few live bytes
/// each (an idle master was 42 MiB of anonymous memory instead of 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// How the `kubernetes` Service's endpoints are kept (kube-apiserver's
/// `--endpoint-reconciler-type`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EndpointReconciler {
    /// Each master renews a Lease with its API address and the slices follow the live ones.
    Lease,
    /// The Service is made; its endpoints are left to the operator (no periodic writes).
    None,
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
    /// Join a running cluster through any master's QUIC address, with --token, on an empty
    /// data dir: the CA and this master's certificate come from the cluster, and this master
    /// (at --listen-peer) becomes a learner, then a voter once caught up. A master that
    /// joined restarts from its data dir without --join.
    #[arg(long, conflicts_with_all = ["initial_cluster", "ca_dir"], requires = "token")]
    join: Option<SocketAddr>,
    /// The server token for --join: the `server-token` file of any master's data dir.
    #[arg(long, env = "NAVARCH_SERVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The API server's HTTPS address (Kubernetes API, health, readiness, debug views).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen_api: SocketAddr,
    /// The address pods reach this master's API at, through the `kubernetes` Service
    /// (kube-apiserver's `--advertise-address`); defaults to `--listen-api`'s address, or
    /// 127.0.0.1 when that is unspecified.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// How the `kubernetes` Service's endpoints are kept: `lease` (every master renews its
    /// API lease every 10 s) or `none`.
    #[arg(long, value_enum, default_value = "lease")]
    endpoint_reconciler_type: EndpointReconciler,
    /// Bearer tokens, one `token,user,uid,"group1,group2"` per line (kube-apiserver's format).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Extra role bindings: a JSON list of `{"user"|"group": ..., "role": "cluster-admin"|"view"|"node"}`.
    #[arg(long)]
    authorization_policy_file: Option<PathBuf>,
    /// Read-only requests in flight before the API answers 429 (watches, followed logs and
    /// exec not counted).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests in flight before the API answers 429, apart from the read-only ones.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Seconds a request body may take to arrive in full (408 beyond).
    #[arg(long, default_value_t = 60)]
    request_body_timeout: u64,
    /// Rotate the audit log (DATA_DIR/audit.log) when it reaches this many bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    audit_log_max_bytes: u64,
    /// Rotated audit logs kept (audit.log.1 ... audit.log.N).
    #[arg(long, default_value_t = 5)]
    audit_log_keep: usize,
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
    /// Raft heartbeat interval in milliseconds. A follower that hears nothing from the leader
    /// for 3-5 heartbeats asks for pre-votes and campaigns; voters refuse while they heard
    /// from a leader within 2.4 heartbeats. One AppendEntries may take max(1 s, 4 heartbeats).
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// On SIGTERM or Ctrl-C, how long a leader may take to hand leadership to a follower
    /// before it stops anyway.
    #[arg(long, default_value_t = 2000)]
    handover_timeout_ms: u64,
    /// Messages the actor message tap keeps in memory (`/debug/messages`).
    #[arg(long, default_value_t = 10_000)]
    tap_capacity: usize,
    /// A node whose Lease (or status heartbeat) is older than this many seconds becomes
    /// unknown and is tainted unreachable.
    #[arg(long, default_value_t = 20)]
    node_monitor_grace_period: u64,
    /// Seconds a node must be gone before the pod garbage collector force-deletes the pods
    /// bound to it (Kubernetes' PodGC quarantine; not a flag there).
    #[arg(long, default_value_t = navarch_logic::podgc::QUARANTINE_SECONDS as u64)]
    pod_gc_quarantine_period: u64,
    /// Terminated pods (Succeeded or Failed) kept before the pod garbage collector deletes
    /// the oldest; 0 keeps them all.
    #[arg(long, default_value_t = navarch_logic::podgc::DEFAULT_TERMINATED_THRESHOLD)]
    terminated_pod_gc_threshold: usize,
    /// Do not run the controllers and the scheduler on this master, even when it leads.
    #[arg(long)]
    no_control_plane: bool,
    /// Node and master joins admitted at once from one source address, before
    /// --join-qps-per-source applies (many hollow nodes joining from one host need more).
    #[arg(long, default_value_t = JoinLimits::default().per_source.burst)]
    join_burst_per_source: u32,
    /// Joins per second admitted from one source address once its burst is spent.
    #[arg(long, default_value_t = JoinLimits::default().per_source.per_second)]
    join_qps_per_source: f64,
    /// Joins admitted at once from all sources together, before --join-qps applies.
    #[arg(long, default_value_t = JoinLimits::default().overall.burst)]
    join_burst: u32,
    /// Joins per second admitted from all sources together once the burst is spent.
    #[arg(long, default_value_t = JoinLimits::default().overall.per_second)]
    join_qps: f64,
    /// Seconds every pod tolerates the `node.kubernetes.io/not-ready:NoExecute` taint unless
    /// it says otherwise (the DefaultTolerationSeconds admission; Kubernetes defaults to 300).
    #[arg(long, default_value_t = 30)]
    default_not_ready_toleration_seconds: i64,
    /// Seconds every pod tolerates the `node.kubernetes.io/unreachable:NoExecute` taint
    /// unless it says otherwise (Kubernetes defaults to 300).
    #[arg(long, default_value_t = 30)]
    default_unreachable_toleration_seconds: i64,
    /// The cluster's pod range, split into one range per Node (k3s's default). Keep it to
    /// addresses local to this cluster's machines.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The prefix length of each Node's pod range.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// A dedicated master: no node agent in this process (by default a master also runs a
    /// node, as `k3s server` does, so that one process is a complete single-server cluster).
    #[arg(long)]
    no_node: bool,
    /// The embedded node's name (default: this master's --name).
    #[arg(long)]
    node_name: Option<String>,
    #[command(flatten)]
    node: navarch_bins::node::NodeArgs,
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
    // The embedded node's runtimes start this binary as each container's shim.
    if std::env::args().nth(1).as_deref() == Some("shim") {
        std::process::exit(navarch_runtime::shim::main());
    }
    // Before anything is created: the store, keys and tokens are for this user only.
    navarch_bins::private::restrict_umask();
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
        None => {
            let result = actix_rt::System::with_tokio_rt(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime")
            })
            .block_on(run(cli.run));
            // The store was stopped, its WAL synced and RocksDB's background work cancelled;
            // tasks that still hold the database must not race C++ static destructors at
            // exit (RocksDB then aborts with "pthread lock: Invalid argument"), so leave
            // without running them.
            let code = match &result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("Error: {e:?}");
                    1
                }
            };
            exit_now(code)
        }
    }
}

/// How long a stopping master keeps answering after it unmounted its store.
const STOP_LINGER: Duration = Duration::from_millis(100);

/// How often a master renews its API lease and reconciles the `kubernetes` Service's
/// endpoints (the lease lasts `masterservice::LEASE_SECONDS`).
const MASTER_LEASE_RENEW: Duration = Duration::from_secs(10);

/// The API address this master puts in the `kubernetes` Service's endpoints.
fn advertised_api(listen: SocketAddr, advertise: Option<std::net::IpAddr>) -> SocketAddr {
    let ip = match advertise {
        Some(ip) => ip,
        None if listen.ip().is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        None => listen.ip(),
    };
    SocketAddr::new(ip, listen.port())
}

/// Ends the process at once, without C and C++ exit handlers (RocksDB's static destructors
/// race threads that still drop their handles to the closed store).
#[allow(unsafe_code)]
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` has no preconditions; it ends the process without running atexit
    // handlers or destructors. Everything that must be durable was synced by
    // `Member::shutdown` (and stays correct after a crash anyway).
    unsafe { libc::_exit(code) }
}

async fn run(args: RunArgs) -> Result<()> {
    // A master that joined a running cluster finds who it is in its data dir.
    let joined = JoinedMember::load(&args.data_dir)?;
    if let Some(j) = &joined {
        if j.name != args.name {
            bail!(
                "{} belongs to member {} (id {}), not --name {}",
                args.data_dir.display(),
                j.name,
                j.id,
                args.name
            );
        }
        if args.join.is_some() {
            tracing::info!(
                id = j.id,
                "this master joined the cluster before; --join is ignored"
            );
        }
    } else if let (Some(via), Some(token)) = (args.join, &args.token) {
        join::fetch_credentials(&args.data_dir, via, token, &args.name).await?;
    }
    let cluster = match &args.initial_cluster {
        Some(s) => parse_initial_cluster(s)?,
        None => vec![(args.name.clone(), args.listen_peer)],
    };
    let listen_peer = match (&joined, args.join) {
        (Some(j), _) => j.peer_addr,
        (None, Some(_)) => args.listen_peer,
        (None, None) => match cluster.iter().find(|(n, _)| *n == args.name) {
            Some((_, a)) => *a,
            None => bail!(
                "--name {} is not one of the --initial-cluster members",
                args.name
            ),
        },
    };
    let node_ipam = navarch_logic::nodeipam::Range::parse(&args.cluster_cidr)
        .and_then(|r| navarch_logic::nodeipam::Allocator::new(r, args.node_cidr_mask_size))
        .map_err(|e| anyhow::anyhow!("--cluster-cidr {}: {e}", args.cluster_cidr))?;
    let creds = credentials::master(&args.data_dir, args.ca_dir.as_deref(), &args.name)?;
    let service_range: navarch_apiserver::reservations::ServiceRange = args
        .node
        .service_cluster_ip_range
        .parse()
        .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range: {e}"))?;
    let serving = http::tls::serving_identity(
        &creds.ca,
        &args.name,
        args.listen_api,
        &[
            std::net::IpAddr::V4(service_range.first()),
            advertised_api(args.listen_api, args.advertise_address).ip(),
        ],
    )
    .context("issue the API server's certificate")?;
    let tls = http::tls::server_config(&serving, &args.name)?;
    let server_url = http::tls::server_url(args.listen_api);
    http::tls::write_admin_kubeconfig(
        &args.data_dir,
        &server_url,
        &credentials::admin(&args.data_dir)?,
    )
    .context("write admin.kubeconfig")?;
    let tokens = match &args.token_auth_file {
        Some(p) => TokenFile::load(p).map_err(anyhow::Error::msg)?,
        None => TokenFile::default(),
    };
    let bindings: Vec<Binding> = match &args.authorization_policy_file {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
        )
        .with_context(|| format!("{}: not a JSON list of role bindings", p.display()))?,
        None => Vec::new(),
    };
    let audit = AuditLog::open(
        &args.data_dir.join("audit.log"),
        args.audit_log_max_bytes,
        args.audit_log_keep,
    )
    .context("open the audit log")?;
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
    let faults = FaultInjector::default();
    let mut net = NetConfig::new(args.name.clone(), creds.member.clone());
    net.faults = faults.clone();
    net.tap = Some(Arc::new(root.tap()));
    net.reset_key = Some(credentials::quic_reset_key(&args.data_dir)?);
    let ca_key_pem = creds.ca.key_pem();
    let ca_cert_pem = creds.ca.cert_pem().to_string();
    let mut join_authority = JoinAuthority::new(
        Arc::new(creds.ca),
        Arc::new(creds.tokens),
        Duration::from_secs(365 * 24 * 3600),
    );
    join_authority.server_token = Some(creds.server_token);
    join_authority.limits = JoinLimits {
        per_source: Rate {
            burst: args.join_burst_per_source,
            per_second: args.join_qps_per_source,
        },
        overall: Rate {
            burst: args.join_burst,
            per_second: args.join_qps,
        },
        ..JoinLimits::default()
    };
    net.join = Some(join_authority);

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
    cfg.timing = Timing::from_heartbeat(Duration::from_millis(args.heartbeat_ms));
    // One QUIC endpoint for every service of this master, on its address in the cluster.
    let router = Router::new();
    let endpoint = Endpoint::bind(listen_peer, net, router.clone())
        .with_context(|| format!("bind the QUIC endpoint on {listen_peer}"))?;
    cfg.joined = match (joined, args.join) {
        (Some(j), _) => Some(j.id),
        (None, Some(via)) => Some(
            join::register(&endpoint, &args.data_dir, via, &args.name, listen_peer)
                .await?
                .id,
        ),
        (None, None) => None,
    };
    let member = Member::start(cfg, endpoint.clone()).await?;
    navarch_store::mount(&router, &member).context("mount the store's services")?;

    let mut api_cfg = ApiServerConfig::new(member.clone(), tokio::runtime::Handle::current());
    api_cfg.tokens = tokens;
    api_cfg.bindings = bindings;
    api_cfg.audit = Some(Arc::new(audit));
    // pods/log and pods/exec dial the node's kubelet endpoint as this master.
    api_cfg.kubelet_dialer = Some(endpoint.clone());
    api_cfg.service_range = service_range;
    // The control plane is made once the API server exists (it reads and writes through
    // it); the debug view reads it from here.
    let control_slot: Arc<OnceLock<Arc<ControlPlane>>> = Arc::new(OnceLock::new());
    let control_view = control_slot.clone();
    let master_name = args.name.clone();
    api_cfg.debug = Some(DebugHooks {
        registry: root.registry(),
        tap: root.tap(),
        faults,
        views: vec![(
            "controlplane",
            Arc::new(move || {
                let mut v = match control_view.get() {
                    Some(cp) => serde_json::json!(cp.status()),
                    None => serde_json::json!({"active": false, "disabled": true}),
                };
                v["master"] = serde_json::json!(master_name);
                v
            }),
        )],
    });
    api_cfg.server_address = server_url.trim_start_matches("https://").to_string();
    api_cfg.default_not_ready_toleration_seconds = args.default_not_ready_toleration_seconds;
    api_cfg.default_unreachable_toleration_seconds = args.default_unreachable_toleration_seconds;
    // Every master holds the CA key, so every one derives the same key for Secrets.
    api_cfg.secrets_key = Arc::new(navarch_apiserver::encryption::SecretsKey::from_ca_key(
        &ca_key_pem,
    ));
    // And the same key for service-account tokens: any master checks what another issued.
    api_cfg.token_key = Arc::new(navarch_apiserver::satoken::TokenKey::from_ca_key(
        &ca_key_pem,
    ));
    let api = ApiServer::start(api_cfg);
    if !args.no_control_plane {
        // The shared watch caches of each activation of this master's controllers.
        let reader = api.clone();
        let control_plane = ControlPlane::new(
            root.clone(),
            Arc::new(move || {
                SharedCaches::new(Arc::new(
                    reader.client(identity::CONTROLLER_MANAGER.user_info()),
                ))
            }),
            ControllerConfig {
                host: args.name.clone(),
                node_monitor_grace_period: Duration::from_secs(args.node_monitor_grace_period),
                pod_gc_quarantine: Duration::from_secs(args.pod_gc_quarantine_period),
                terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
                node_ipam: Some(node_ipam),
                root_ca: Some(ca_cert_pem.clone()),
                ..ControllerConfig::default()
            },
        );
        let _ = control_slot.set(control_plane.clone());
        // The actors live on this thread's arbiter: activations must start from it.
        actix_rt::spawn(control::follow_leadership(
            member.clone(),
            api.clone(),
            control_plane,
        ));
    }
    // Node agents' QUIC link: their requests go through the same pipeline, with in-flight
    // limits of the sizes HTTP's have.
    nodelink::mount(
        &router,
        &api,
        NodeLinkLimits {
            max_inflight: args.max_requests_inflight,
            max_mutating_inflight: args.max_mutating_requests_inflight,
        },
    )
    .context("mount the node link")?;
    let bootstrap = api.clone();
    let (member_name, api_address) = (
        args.name.clone(),
        advertised_api(args.listen_api, args.advertise_address),
    );
    let reconciler = args.endpoint_reconciler_type;
    tokio::spawn(async move {
        // Every master makes sure the system namespaces and the bootstrap RBAC policy exist
        // once a leader is known.
        loop {
            match bootstrap.ensure_bootstrap().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "bootstrap objects not written yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        // Then keeps the `kubernetes` Service, and its address in the Service's endpoints,
        // renewing its lease well inside the lease's duration.
        let mut every = tokio::time::interval(MASTER_LEASE_RENEW);
        loop {
            every.tick().await;
            let done = match reconciler {
                EndpointReconciler::Lease => {
                    masterservice::reconcile(&bootstrap, &member_name, api_address).await
                }
                EndpointReconciler::None => masterservice::ensure_service(&bootstrap).await,
            };
            match done {
                Ok(()) if reconciler == EndpointReconciler::None => break,
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "kubernetes service not reconciled yet")
                }
            }
        }
    });
    let http_state = HttpState::new(
        api,
        HttpLimits {
            max_inflight: args.max_requests_inflight,
            max_mutating_inflight: args.max_mutating_requests_inflight,
            body_timeout: Duration::from_secs(args.request_body_timeout),
        },
    );
    let server = HttpServer::new(move || {
        let state = http_state.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(http::correlation))
            .configure(|cfg| http::configure(cfg, state))
    })
    .workers(2)
    // Clients (kubelets, controllers, kubectl's reused transport) keep connections open
    // between requests; actix-web's default of 5 s would make them reconnect and
    // handshake again.
    .keep_alive(Duration::from_secs(120))
    // On SIGTERM, requests in flight get this long to finish (idle keep-alive connections
    // would otherwise hold the stop for actix's default 30 s).
    .shutdown_timeout(2)
    // Signals are this binary's to handle (a leader hands over first), not actix's.
    .disable_signals()
    .on_connect(http::on_connect)
    .bind_rustls_0_23(args.listen_api, tls)
    .with_context(|| format!("bind --listen-api {}", args.listen_api))?
    .run();
    tracing::info!(api = %server_url, data_dir = %args.data_dir.display(), "master ready to serve");
    if !args.no_node {
        // The embedded node joins through this master with its own bootstrap token, like
        // any node, and runs on this thread's arbiter (its Pod actors start there).
        let read = |f: &str| -> Result<String> {
            Ok(std::fs::read_to_string(args.data_dir.join(f))
                .with_context(|| format!("read {f} for the embedded node"))?
                .trim()
                .to_string())
        };
        let join = navarch_agent::credentials::JoinParams {
            masters: vec![listen_peer],
            token: read("join-token")?,
            ca_hash: read("ca-hash")?,
        };
        let node_name = args.node_name.clone().unwrap_or_else(|| args.name.clone());
        let node =
            navarch_bins::node::start(&node_name, join, &args.data_dir.join("node"), &args.node)?;
        actix_rt::spawn(async move {
            if let Err(e) = node.await {
                tracing::error!(error = %format!("{e:#}"), "the embedded node stopped");
            }
        });
    }
    let handle = server.handle();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    let mut server = std::pin::pin!(server);
    let signal = tokio::select! {
        r = &mut server => {
            r.context("http server")?;
            None
        }
        _ = tokio::signal::ctrl_c() => Some("interrupt"),
        _ = sigterm.recv() => Some("terminate"),
        _ = member.removed() => Some("removed"),
    };
    if signal == Some("removed") {
        // Nothing to hand over or finish: this member is not part of the cluster any more.
        let (_, _) = tokio::join!(handle.stop(false), server);
    } else if let Some(signal) = signal {
        // A planned stop is not a failure: a leader hands over first, so writes wait about one
        // round trip instead of an election timeout. Requests still in flight here finish
        // (forwarded to the successor) before the store stops.
        tracing::info!(signal, "shutting down");
        let within = Duration::from_millis(args.handover_timeout_ms);
        if let Some(successor) = member.transfer_leadership(within).await {
            tracing::info!(%successor, "handed leadership over before stopping");
        }
        // New node link calls get a retryable "unavailable" from now on (nodes move to
        // another master); watches on it end with the endpoint.
        router.unmount(nodelink::PREFIX);
        // The server future runs its own stop: drive both.
        let (_, stopped) = tokio::join!(handle.stop(true), server);
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "http server stopped with an error");
        }
        // New store calls now get a retryable "unavailable" (their clients go to another
        // master); those in flight finish. Raft keeps running meanwhile.
        router.unmount(navarch_store::STORE_PREFIX);
        member.drain(within).await;
        // Calls already on their way when the store was unmounted (members that had not yet
        // heard of the successor forward here) are answered before the endpoint closes: they
        // get "unavailable" or, if they got in, are drained.
        tokio::time::sleep(STOP_LINGER).await;
        member.drain(within).await;
    }
    member.shutdown().await;
    endpoint.close();
    // Let the close frames go out, so peers drop their connections to this process now
    // instead of after the QUIC idle timeout (a restarted master would be unreachable until
    // then).
    if tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle())
        .await
        .is_err()
    {
        tracing::debug!("quic connections still draining at exit");
    }
    if member.is_removed() {
        bail!("this member was removed from the cluster: it stopped serving");
    }
    Ok(())
}
