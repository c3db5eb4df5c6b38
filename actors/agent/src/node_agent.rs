//! The node agent that runs pods (`navarch-node` without `--hollow`, and the node embedded
//! in a single-server `navarch-master`): it joins (or reuses its stored certificate),
//! registers its Node with this machine's resources and its runtimes, renews its Lease,
//! refreshes its status, and runs the [`Kubelet`] over the node link.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use navarch_actors::Root;
use navarch_client::cache::{CacheConfig, Scope};
use navarch_client::{Client, LinkClient, SharedCaches};
use navarch_model::selector::FieldSelector;
use navarch_net::{Endpoint, NetConfig};
use navarch_runtime::{ContainerRuntime, Isolation};

use crate::config::Timing;
use crate::credentials::{load_or_join, JoinGate, JoinParams};
use crate::fleet::{boot_id, spread};
use crate::hollow::HollowNode;
use crate::ipam::Cidr;
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::node::{Flavor, KubeletInfo, NodeDescription};
use crate::AgentError;

/// What a node agent is made of.
#[derive(Clone)]
pub struct NodeAgentConfig {
    pub name: String,
    pub join: JoinParams,
    /// Credentials, pods' files and logs live here.
    pub data_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// The node's address (InternalIP, every pod's hostIP).
    pub address: Ipv4Addr,
    /// Most pods the node takes.
    pub max_pods: u32,
    /// The cluster's pod range (the masters' `--cluster-cidr`): pods reach it through
    /// their bridge; nothing in it leaves the machine.
    pub cluster_cidr: Cidr,
    /// The Service range (`--service-cluster-ip-range`): routed like the cluster's.
    pub service_cidr: Cidr,
    /// Give pods a network namespace and an address of their own (else the node's).
    pub pod_network: bool,
    /// Where the CNI plugins are.
    pub cni_plugin_dirs: Vec<PathBuf>,
    pub timing: Timing,
    /// The runtimes by handler name, and the default one.
    pub runtimes: BTreeMap<String, Arc<dyn ContainerRuntime>>,
    pub default_runtime: String,
    pub backoff_cap: Duration,
    pub user_agent: String,
    /// Disk pressure below this share (percent) of the data dir's file system available.
    pub disk_pressure_percent: u64,
    /// The port of the node's kubelet endpoint (logs and exec for the masters, over QUIC on
    /// `address`); 0 picks a free one.
    pub kubelet_port: u16,
    /// Where the proxy listens on node ports (`--nodeport-addresses`).
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// How the proxy copies TCP connections.
    pub proxy_copy: crate::proxy::CopyMode,
    /// The cluster DNS address (`--cluster-dns`; default: the service range's tenth
    /// address, which the masters never give a Service).
    pub cluster_dns: Option<Ipv4Addr>,
}

impl std::fmt::Debug for NodeAgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgentConfig")
            .field("name", &self.name)
            .field("data_dir", &self.data_dir)
            .field("runtimes", &self.runtimes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The runtime version the Node reports, and whether (and why not) pods are isolated.
fn isolation(cfg: &NodeAgentConfig) -> (String, bool, Option<String>) {
    let default = cfg.runtimes.get(&cfg.default_runtime);
    let version = format!("{}://{}", cfg.default_runtime, env!("CARGO_PKG_VERSION"));
    match default.map(|r| r.isolation()) {
        Some(Isolation::Isolated) => (version, true, None),
        Some(Isolation::NotIsolated { reason }) => (version, false, Some(reason)),
        None => (version, false, Some("no runtime".into())),
    }
}

/// Waits for the masters to give the Node its pod range, then makes the node's network:
/// the host's routes for the cluster and service ranges, and the CNI configuration.
async fn network(
    cfg: &NodeAgentConfig,
    client: &dyn Client,
    root: &std::path::Path,
) -> Result<crate::network::Cni, AgentError> {
    let mut logged = false;
    let pod_cidr = loop {
        match client
            .get(
                navarch_client::kind("", "v1", "nodes"),
                None,
                &cfg.name,
                &Default::default(),
            )
            .await
        {
            Ok(node) => {
                if let Some(c) = crate::node::pod_cidr_of(&node) {
                    break c;
                }
            }
            Err(e) => tracing::debug!(node = %cfg.name, error = %e, "node not read"),
        }
        if !logged {
            tracing::info!(node = %cfg.name, "waiting for the masters to give the node its pod range");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let bad = |e: String| AgentError::Config {
        what: "pod network".into(),
        reason: e,
    };
    let net = crate::network::NodeNetwork::new(&cfg.name, pod_cidr, cfg.cluster_cidr)
        .map_err(|e| bad(e.to_string()))?
        .with_routes(vec![cfg.service_cidr]);
    crate::network::host::prepare(&net.routed()).map_err(|e| bad(e.to_string()))?;
    tracing::info!(node = %cfg.name, %pod_cidr, bridge = net.bridge(), "pod network ready");
    let cni = crate::network::Cni::new(cfg.cni_plugin_dirs.clone(), root.join("cni"), net);
    cni.save().map_err(|e| bad(e.to_string()))?;
    Ok(cni)
}

/// The cluster DNS address: `--cluster-dns`, or the service range's tenth address.
fn cluster_dns_address(cfg: &NodeAgentConfig) -> Option<Ipv4Addr> {
    cfg.cluster_dns.or_else(|| {
        (cfg.service_cidr.size() > 16)
            .then(|| Ipv4Addr::from(u32::from(cfg.service_cidr.network()) + 10))
    })
}

/// Joins (or loads the stored certificate), then runs the node until the future is
/// dropped. Must run inside an actix system (the Pod actors start on its arbiter).
pub async fn run(cfg: NodeAgentConfig, root: Root) -> Result<(), AgentError> {
    if !cfg.runtimes.contains_key(&cfg.default_runtime) {
        return Err(AgentError::Config {
            what: "--runtime".into(),
            reason: format!(
                "{:?} is not one of this node's runtimes {:?}",
                cfg.default_runtime,
                cfg.runtimes.keys().collect::<Vec<_>>()
            ),
        });
    }
    let gate = JoinGate::new(1);
    let creds_dir = crate::credentials::node_dir(&cfg.data_dir, &cfg.name, false);
    let (identity, joined) = load_or_join(&creds_dir, &cfg.name, &cfg.join, &gate).await?;
    tracing::info!(node = %cfg.name, joined, "node certificate ready");
    let ep = Endpoint::client(NetConfig::new(cfg.name.clone(), identity))?;
    // The kubelet endpoint is bound before the Node registers (it reports the port); it
    // answers once the kubelet is attached.
    let lookup = Arc::new(crate::kubelet::lookup::Lookup::default());
    let kubelet_endpoint = match crate::credentials::stored_serving(&creds_dir, &cfg.name) {
        Some(serving) => {
            let service = crate::streams::KubeletService::new(lookup.clone(), lookup.clone())
                .with_debug(root.registry(), root.tap());
            let addr = SocketAddr::new(cfg.address.into(), cfg.kubelet_port);
            let kep = crate::streams::serve(addr, &cfg.name, serving, service)?;
            tracing::info!(node = %cfg.name, addr = %kep.local_addr().map(|a| a.to_string()).unwrap_or_default(), "kubelet endpoint serving logs and exec to the masters");
            Some(kep)
        }
        None => {
            tracing::warn!(node = %cfg.name, "no kubelet serving certificate stored (joined before they were handed out): no logs nor exec through the masters");
            None
        }
    };
    let kubelet_port = kubelet_endpoint
        .as_ref()
        .and_then(|e| e.local_addr().ok())
        .map(|a| a.port())
        .unwrap_or(0);
    let masters: Vec<SocketAddr> = spread(&cfg.name, &cfg.join.masters);
    let link = LinkClient::new(&ep, &masters, cfg.user_agent.clone())?;
    let client: Arc<dyn Client> = Arc::new(link);
    let kubelet_root = cfg.data_dir.join("kubelet");
    std::fs::create_dir_all(&kubelet_root).map_err(|e| AgentError::Config {
        what: "--data-dir".into(),
        reason: format!("create {}: {e}", kubelet_root.display()),
    })?;
    let (runtime_version, isolated, note) = isolation(&cfg);
    let desc = NodeDescription {
        name: cfg.name.clone(),
        capacity: crate::machine::capacity(&kubelet_root, cfg.max_pods),
        labels: cfg.labels.clone(),
        // Until the masters give the Node its range; never written for a kubelet.
        pod_cidr: cfg.cluster_cidr,
        address: cfg.address,
        boot_id: boot_id(),
        kubelet_port,
        flavor: Flavor::Kubelet(KubeletInfo {
            runtime_version,
            runtimes: cfg.runtimes.keys().cloned().collect(),
            isolated,
            isolation_note: note,
            kernel_version: crate::machine::kernel_version(),
            os_image: crate::machine::os_image(),
            root: kubelet_root.clone(),
            disk_pressure_percent: cfg.disk_pressure_percent,
        }),
    };
    let mut kubelet_cfg = KubeletConfig {
        node: cfg.name.clone(),
        host_ip: cfg.address,
        root: kubelet_root.clone(),
        runtimes: cfg.runtimes.clone(),
        default_runtime: cfg.default_runtime.clone(),
        backoff_cap: cfg.backoff_cap,
        resync: Duration::from_secs(10),
        pleg_period: Duration::from_secs(1),
        network: None,
        cluster_domain: "cluster.local".into(),
        cluster_dns: Vec::new(),
        allocatable: desc.capacity.clone(),
        services: None,
    };
    let node = HollowNode::new(client, desc, cfg.timing);
    let mut failed: Option<AgentError> = None;
    node.run_with(|client, _desc| async {
        let caches = SharedCaches::with_config(
            client.clone(),
            CacheConfig {
                subscriber_capacity: 4096,
                ..CacheConfig::default()
            },
            tokio::runtime::Handle::current(),
        );
        let on_node = FieldSelector::parse("Pod", &format!("spec.nodeName={}", cfg.name))
            .expect("spec.nodeName is a pod field");
        let pods =
            caches.scoped(Scope::kind(navarch_client::kind("", "v1", "pods")).fields(on_node));
        let services = caches.scoped(Scope::kind(navarch_client::kind("", "v1", "services")));
        let slices = caches.scoped(Scope::kind(navarch_client::kind(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
        )));
        let root_user = nix::unistd::geteuid().is_root();
        if cfg.pod_network && !root_user {
            tracing::warn!(node = %cfg.name, "not running as root: pods share the node's network (no namespaces, no CNI)");
        }
        if cfg.pod_network && root_user {
            match network(&cfg, &*client, &kubelet_root).await {
                Ok(cni) => kubelet_cfg.network = Some(Arc::new(cni)),
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            }
        }
        // Cluster IPs are served from the node's service interface, which takes root; the
        // node ports are served either way.
        let proxy_cfg = crate::proxy::DataplaneConfig {
            node: cfg.name.clone(),
            node_port_addresses: cfg.node_port_addresses.clone(),
            service_iface: (root_user && cfg.pod_network)
                .then(|| crate::proxy::service_iface_name(&cfg.name)),
            copy: cfg.proxy_copy,
        };
        if proxy_cfg.service_iface.is_none() {
            tracing::warn!(node = %cfg.name, "cluster ips are not served on this node (no root, or no pod network): node ports only");
        }
        let proxy_cfg_iface = proxy_cfg.service_iface.clone();
        let (dns_services, dns_slices) = (services.clone(), slices.clone());
        kubelet_cfg.services = Some(services.clone());
        let proxy = match crate::proxy::Proxy::start(&root, proxy_cfg, services, slices).await {
            Ok(p) => p,
            Err(e) => {
                failed = Some(AgentError::Config {
                    what: "proxy".into(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        tracing::info!(node = %cfg.name, "proxy running");
        // The cluster DNS, on the service interface beside the cluster IPs.
        let dns = match (&proxy_cfg_iface, cluster_dns_address(&cfg)) {
            (Some(iface), Some(address)) => {
                let upstreams = crate::dns::upstreams(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                );
                let dns_cfg = crate::dns::DnsConfig {
                    address,
                    iface: iface.clone(),
                    domain: "cluster.local".into(),
                    upstreams,
                };
                match crate::dns::Dns::start(dns_cfg, dns_services, dns_slices).await {
                    Ok(d) => {
                        kubelet_cfg.cluster_dns = vec![address];
                        Some(d)
                    }
                    Err(e) => {
                        failed = Some(AgentError::Config {
                            what: "cluster dns".into(),
                            reason: e.to_string(),
                        });
                        return;
                    }
                }
            }
            _ => None,
        };
        match Kubelet::start(&root, kubelet_cfg, client, pods).await {
            Ok(kubelet) => {
                lookup.attach(kubelet.shared().clone());
                tracing::info!(node = %cfg.name, "kubelet running");
                // The kubelet and the proxy (and the caches feeding them) live as long as
                // the node.
                let _keep = (kubelet, dns, proxy, caches, kubelet_endpoint);
                std::future::pending::<()>().await;
            }
            Err(e) => {
                failed = Some(AgentError::Config {
                    what: "kubelet".into(),
                    reason: e.to_string(),
                });
            }
        }
    })
    .await;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What [`reset`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reset {
    pub containers: usize,
    pub pods: usize,
}

/// Stops and removes everything a node left on this machine (k3s's `killall`): every
/// container of its runtimes, every pod's network namespace, volumes and directory, and its
/// bridge. Safe to run on a stopped node's data dir only: a running agent would start its
/// pods again.
pub async fn reset(
    name: &str,
    data_dir: &std::path::Path,
    runtimes: &BTreeMap<String, Arc<dyn ContainerRuntime>>,
    cni_plugin_dirs: &[PathBuf],
) -> Result<Reset, AgentError> {
    let mut out = Reset::default();
    let failed = |what: &str, e: String| AgentError::Config {
        what: what.to_string(),
        reason: e,
    };
    for rt in runtimes.values() {
        let listed = rt
            .list()
            .await
            .map_err(|e| failed("runtime", e.to_string()))?;
        for c in listed {
            rt.remove(&c.id)
                .await
                .map_err(|e| failed("runtime", format!("remove {}: {e}", c.id)))?;
            out.containers += 1;
        }
    }
    // Every pod off the network (its address, its host ports), while their namespaces exist.
    let netns = crate::network::NetnsDir::default();
    if let Some(cni) = crate::network::Cni::load(
        cni_plugin_dirs.to_vec(),
        data_dir.join("kubelet").join("cni"),
    ) {
        for uid in cni.added() {
            let path = netns.path(&format!("nv-{uid}")).unwrap_or_default();
            cni.del(&uid, &path)
                .await
                .map_err(|e| failed("pod network", e.to_string()))?;
        }
    }
    let pods = data_dir.join("kubelet").join("pods");
    if let Ok(dirs) = std::fs::read_dir(&pods) {
        for d in dirs.flatten() {
            let uid = d.file_name().to_string_lossy().to_string();
            netns
                .delete(&format!("nv-{uid}"))
                .map_err(|e| failed("network namespace", e.to_string()))?;
            crate::kubelet::volumes::cleanup(&d.path())
                .map_err(|e| failed("pod volumes", e.to_string()))?;
            out.pods += 1;
        }
    }
    let _ = std::fs::remove_dir_all(data_dir.join("kubelet").join("cni"));
    crate::network::host::remove_bridge(&crate::network::cni::bridge_name(name))
        .map_err(|e| failed("bridge", e.to_string()))?;
    crate::network::host::remove_bridge(&crate::proxy::service_iface_name(name))
        .map_err(|e| failed("service interface", e.to_string()))?;
    Ok(out)
}
