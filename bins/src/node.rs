//! The node agent's flags and start, shared by `navarch-node` and the node a single-server
//! `navarch-master` embeds: the image store (with busybox built in), the runtimes (`process`
//! always, `oci` when runc is there), and [`navarch_agent::node_agent::run`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_actors::{ActorPath, Root};
use navarch_agent::config::{parse_labels, Timing};
use navarch_agent::credentials::JoinParams;
use navarch_agent::node_agent::{self, NodeAgentConfig};
use navarch_runtime::{
    ContainerRuntime, ImageStore, OciConfig, OciRuntime, ProcessConfig, ProcessRuntime,
};

/// The node agent's flags.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's address: its InternalIP, every pod's hostIP (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: Ipv4Addr,
    /// The runtime (RuntimeClass handler) of pods without a runtimeClassName: process or oci.
    #[arg(long, default_value = "process")]
    pub runtime: String,
    /// Most pods the node takes (its `pods` capacity).
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The crash-loop back-off's cap, in seconds (Kubernetes' is 300).
    #[arg(long, default_value_t = 300)]
    pub crash_loop_backoff_max_seconds: u64,
    /// Labels of the node, k=v,... (kubernetes.io/hostname, /os and /arch are added).
    #[arg(long, default_value = "")]
    pub node_labels: String,
    /// The cluster's pod range, as the masters' --cluster-cidr (the node's own range comes
    /// from the masters).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub node_cluster_cidr: String,
    /// The Service range: masters give Services cluster IPs from it; nodes serve those and
    /// route the rest of the range nowhere but this machine.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cluster_ip_range: String,
    /// Pods share the node's network namespace and address instead of getting their own
    /// through CNI (machines without the CNI plugins).
    #[arg(long)]
    pub no_pod_network: bool,
    /// Where the CNI plugins are (Debian's containernetworking-plugins: /usr/lib/cni).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/usr/lib/cni,/opt/cni/bin"
    )]
    pub cni_bin_dir: Vec<std::path::PathBuf>,
    /// The node reports DiskPressure (and is tainted) when less than this percentage of
    /// its data dir's file system is available (the kubelet's nodefs.available, 10%).
    #[arg(long, default_value_t = 10)]
    pub disk_pressure_percent: u64,
    /// The port of the node's kubelet endpoint (the masters' logs and exec, QUIC on
    /// --node-ip); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Where the proxy serves node ports, comma-separated (default: --node-ip and
    /// 127.0.0.1).
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<Ipv4Addr>,
    /// How the proxy copies TCP connections: splice (the kernel's splice(2)) or userspace.
    #[arg(long, default_value = "splice")]
    pub proxy_copy: navarch_agent::proxy::CopyMode,
    /// The cluster DNS address pods with dnsPolicy ClusterFirst use, served by the node
    /// (default: the service range's tenth address, 10.43.0.10).
    #[arg(long)]
    pub cluster_dns: Option<Ipv4Addr>,
    /// Seconds between renewals of the node's Lease.
    #[arg(long, default_value_t = 10)]
    pub node_lease_renew_seconds: u64,
}

/// The runtimes this machine can run: `process` always, `oci` when runc is installed and we
/// are root.
pub fn runtimes(data_dir: &Path) -> Result<BTreeMap<String, Arc<dyn ContainerRuntime>>> {
    let images = ImageStore::new(data_dir.join("images")).context("open the image store")?;
    images
        .ensure_busybox()
        .context("build the busybox image (scripts/install-deps.sh installs busybox-static)")?;
    // The shim: the small `navarch-shim` next to this binary when it is there (a fraction of
    // the memory per container), else this binary's `shim` subcommand.
    let exe = std::env::current_exe().context("find this binary (the containers' shim)")?;
    let sibling = exe.with_file_name("navarch-shim");
    let shim: Vec<std::ffi::OsString> = if sibling.is_file() {
        vec![sibling.into()]
    } else {
        vec![exe.clone().into(), "shim".into()]
    };
    let mut out: BTreeMap<String, Arc<dyn ContainerRuntime>> = BTreeMap::new();
    let mut process = ProcessConfig::new(data_dir.join("runtime/process"), images.clone(), &exe);
    process.shim = shim.clone();
    out.insert(
        "process".into(),
        Arc::new(ProcessRuntime::new(process).context("start the process runtime")?),
    );
    let mut oci = OciConfig::new(data_dir.join("runtime/oci"), images, &exe);
    oci.shim = shim;
    match OciRuntime::new(oci) {
        Ok(rt) => {
            out.insert("oci".into(), Arc::new(rt));
        }
        Err(e) => tracing::warn!(error = %e, "the oci runtime is not available"),
    }
    Ok(out)
}

/// The node agent of node `name`, ready to run (inside an actix system).
pub fn start(
    name: &str,
    join: JoinParams,
    data_dir: &Path,
    args: &NodeArgs,
) -> Result<impl std::future::Future<Output = Result<()>>> {
    if args.node_lease_renew_seconds == 0 {
        bail!("--node-lease-renew-seconds must be at least 1");
    }
    crate::private::private_dir(data_dir)?;
    // Absolute: the shims run from `/`, and read their containers' dirs from these paths.
    let data_dir = &std::path::absolute(data_dir)
        .with_context(|| format!("make {} absolute", data_dir.display()))?;
    let runtimes = runtimes(data_dir)?;
    let cfg = NodeAgentConfig {
        name: name.to_string(),
        join,
        data_dir: data_dir.to_path_buf(),
        labels: parse_labels(&args.node_labels)?,
        address: args.node_ip,
        max_pods: args.max_pods,
        cluster_cidr: args.node_cluster_cidr.parse()?,
        service_cidr: args.service_cluster_ip_range.parse()?,
        pod_network: !args.no_pod_network,
        cni_plugin_dirs: args.cni_bin_dir.clone(),
        timing: Timing {
            lease_renew: Duration::from_secs(args.node_lease_renew_seconds),
            ..Timing::default()
        },
        runtimes,
        default_runtime: args.runtime.clone(),
        backoff_cap: Duration::from_secs(args.crash_loop_backoff_max_seconds.max(10)),
        user_agent: format!("navarch-node/{}", env!("CARGO_PKG_VERSION")),
        disk_pressure_percent: args.disk_pressure_percent.min(100),
        kubelet_port: args.kubelet_port,
        node_port_addresses: if args.nodeport_addresses.is_empty() {
            let mut a = vec![args.node_ip, Ipv4Addr::LOCALHOST];
            a.dedup();
            a
        } else {
            args.nodeport_addresses.clone()
        },
        proxy_copy: args.proxy_copy,
        cluster_dns: args.cluster_dns,
    };
    let root = Root::new(
        ActorPath::parse(&format!("/node/{name}"))
            .with_context(|| format!("{name:?} is not usable in an actor path"))?,
        Default::default(),
    );
    Ok(async move {
        node_agent::run(cfg, root).await?;
        Ok(())
    })
}

/// Removes what the stopped node at `data_dir` left running (see
/// [`node_agent::reset`]).
pub async fn reset(name: &str, data_dir: &Path) -> Result<node_agent::Reset> {
    let data_dir = &std::path::absolute(data_dir)
        .with_context(|| format!("make {} absolute", data_dir.display()))?;
    let runtimes = runtimes(data_dir)?;
    let plugins = [
        std::path::PathBuf::from("/usr/lib/cni"),
        std::path::PathBuf::from("/opt/cni/bin"),
    ];
    Ok(node_agent::reset(name, data_dir, &runtimes, &plugins).await?)
}
