//! The CNI client: a node's network configuration (a conflist for the `bridge` plugin with
//! `host-local` addresses, and the `loopback` plugin for `lo`) and the calls that put a pod's
//! network namespace on it and take it off, by executing the standard plugins with the CNI
//! protocol (spec 1.0.0): the command and the pod in environment variables, the network
//! configuration as JSON on stdin, the result or a JSON error on stdout.
//!
//! A list's plugins run in order for ADD, each given the previous one's result as
//! `prevResult`; the last result is kept in `<state>/results/` and given, as the spec asks,
//! to every plugin's DEL (in reverse order) and CHECK. DEL succeeds when there is nothing
//! left to remove, the network namespace included.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::ipam::Cidr;

/// The CNI spec version navarch speaks (Debian's plugins, 1.1, support it).
pub const CNI_VERSION: &str = "1.0.0";
/// The network's name (host-local keeps its leases under `<dataDir>/<name>/`).
pub const NETWORK_NAME: &str = "navarch";
/// The pod's side of its veth pair.
pub const POD_INTERFACE: &str = "eth0";
/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const DEBIAN_PLUGIN_DIR: &str = "/usr/lib/cni";
/// How long one plugin call may take before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a pod's network could not be set up, checked or torn down.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The node's network cannot be configured as asked.
    #[error("network config: {0}")]
    Config(String),
    #[error("cni plugin {plugin:?} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("cni plugin {plugin}: start: {source}")]
    Spawn {
        plugin: String,
        #[source]
        source: io::Error,
    },
    #[error("cni plugin {plugin} {command}: no answer within {after:?}, killed")]
    Timeout {
        plugin: String,
        command: &'static str,
        after: Duration,
    },
    /// The plugin failed with a CNI error (its JSON on stdout).
    #[error("cni plugin {plugin} {command} failed: {msg}{} (code {code}: {})", details_suffix(details), code_meaning(*code))]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
        details: String,
    },
    /// The plugin failed without a CNI error on stdout.
    #[error("cni plugin {plugin} {command} failed ({status}): {output}")]
    Failed {
        plugin: String,
        command: &'static str,
        status: String,
        output: String,
    },
    /// The plugin succeeded with a result navarch cannot use.
    #[error("cni plugin {plugin} {command}: bad result: {reason}")]
    BadResult {
        plugin: String,
        command: &'static str,
        reason: String,
    },
    /// CHECK of a pod that has no recorded ADD.
    #[error("pod {0} has no network to check (no ADD recorded)")]
    NotAdded(String),
    #[error("cni result cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(": {details}")
    }
}

/// What the CNI spec's well-known error codes mean.
pub fn code_meaning(code: u64) -> &'static str {
    match code {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        100.. => "plugin-specific error",
        _ => "reserved error code",
    }
}

/// Parses a plugin's stdout after a failure: the CNI error object, if it is one.
pub fn parse_error(stdout: &[u8]) -> Option<(u64, String, String)> {
    let v: Value = serde_json::from_slice(stdout).ok()?;
    let code = v.get("code")?.as_u64()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Some((code, text("msg"), text("details")))
}

/// A node's pod network, from its pod range and the cluster's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNetwork {
    node_name: String,
    pod_cidr: Cidr,
    cluster_cidr: Cidr,
    extra_routes: Vec<Cidr>,
    bridge: String,
}

impl NodeNetwork {
    /// Node `node_name`'s network: its pods get addresses of `pod_cidr` (the node's
    /// `spec.podCIDR`), which must lie in `cluster_cidr`, the one range they get a route to.
    pub fn new(node_name: &str, pod_cidr: Cidr, cluster_cidr: Cidr) -> Result<Self, CniError> {
        if !cluster_cidr.covers(&pod_cidr) {
            return Err(CniError::Config(format!(
                "pod range {pod_cidr} is not inside the cluster range {cluster_cidr}"
            )));
        }
        if pod_cidr.prefix() > 30 {
            return Err(CniError::Config(format!(
                "pod range {pod_cidr} has no room for a gateway and pods"
            )));
        }
        Ok(NodeNetwork {
            node_name: node_name.to_string(),
            pod_cidr,
            cluster_cidr,
            extra_routes: Vec::new(),
            bridge: bridge_name(node_name),
        })
    }

    /// More ranges the pods get a route to through their gateway (the service range).
    pub fn with_routes(mut self, routes: Vec<Cidr>) -> Self {
        self.extra_routes = routes;
        self
    }

    /// Another bridge name than the one derived from the node's name.
    pub fn with_bridge(mut self, bridge: &str) -> Result<Self, CniError> {
        if !valid_ifname(bridge) {
            return Err(CniError::Config(format!(
                "bridge name {bridge:?} is not 1 to 15 of [A-Za-z0-9_.-]"
            )));
        }
        self.bridge = bridge.to_string();
        Ok(self)
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    pub fn pod_cidr(&self) -> Cidr {
        self.pod_cidr
    }

    pub fn cluster_cidr(&self) -> Cidr {
        self.cluster_cidr
    }

    /// Every range the pods have a route to: the cluster's, then the extra ones.
    pub fn routed(&self) -> Vec<Cidr> {
        let mut all = vec![self.cluster_cidr];
        all.extend(self.extra_routes.iter().copied());
        all
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The bridge's address, the pods' gateway: the range's first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.pod_cidr.network()) + 1)
    }

    /// The network configuration list given to the plugins, host-local keeping its
    /// leases in `<ipam_dir>/navarch/`.
    pub fn conflist(&self, ipam_dir: &Path) -> Value {
        // The gateway is spelled out: the bridge plugin's CHECK compares the routes it
        // finds, which have one, with the result's.
        let gw = self.gateway().to_string();
        let routes: Vec<Value> = self
            .routed()
            .iter()
            .map(|c| json!({ "dst": c.to_string(), "gw": gw }))
            .collect();
        json!({
            "cniVersion": CNI_VERSION,
            "name": NETWORK_NAME,
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                "isDefaultGateway": false,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{
                        "subnet": self.pod_cidr.to_string(),
                        "gateway": self.gateway().to_string(),
                    }]],
                    "routes": routes,
                    "dataDir": ipam_dir,
                },
            }, {
                // Pods' hostPorts: DNAT from the node's addresses (loopback included,
                // through its SNAT chains) to the pod, as Kubernetes' CNI setups do.
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "snat": true,
            }],
        })
    }
}

/// The loopback network (`lo` up in the pod's namespace), a single plugin's config.
pub fn loopback_config() -> Value {
    json!({ "cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback" })
}

/// A bridge name for node `node`: `nv` and 8 hex digits of a stable hash of its name (10
/// characters, within Linux's 15), so nodes sharing a machine get bridges of their own.
pub fn bridge_name(node: &str) -> String {
    // FNV-1a, 32 bits: stable across builds and platforms, unlike std's hasher.
    let hash = node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("nv{hash:08x}")
}

fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A pod's place on the network, from the plugins' result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetwork {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The interface inside the pod (`eth0`).
    pub interface: String,
}

/// The pod's IPv4 address on `ifname` in a CNI result (spec 1.0 `interfaces` and `ips`).
pub fn pod_network(result: &Value, ifname: &str) -> Result<PodNetwork, String> {
    let interfaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let pod_iface = interfaces.iter().position(|i| {
        i["name"].as_str() == Some(ifname) && i["sandbox"].as_str().is_some_and(|s| !s.is_empty())
    });
    let ips = result["ips"]
        .as_array()
        .ok_or_else(|| "no \"ips\" in the result".to_string())?;
    let mine = |ip: &&Value| match (pod_iface, ip["interface"].as_u64()) {
        (Some(want), Some(at)) => usize::try_from(at).is_ok_and(|at| at == want),
        _ => true,
    };
    for ip in ips.iter().filter(mine) {
        let Some((addr, prefix)) = ip["address"].as_str().and_then(|a| a.split_once('/')) else {
            continue;
        };
        let Ok(addr) = addr.parse::<Ipv4Addr>() else {
            continue; // IPv6
        };
        let prefix_len: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("bad prefix in {:?}", ip["address"]))?;
        let gateway = ip["gateway"]
            .as_str()
            .and_then(|g| g.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| format!("no IPv4 gateway for {addr}"))?;
        return Ok(PodNetwork {
            ip: addr,
            prefix_len,
            gateway,
            interface: ifname.to_string(),
        });
    }
    Err(format!("no IPv4 address on {ifname} in the result"))
}

/// One plugin's configuration as a list gives it: the plugin's object with the list's
/// `name` and `cniVersion`, and `prevResult` when there is one.
pub fn plugin_config(list: &Value, plugin: &Value, prev_result: Option<&Value>) -> Value {
    plugin_config_with(list, plugin, prev_result, &Value::Null)
}

/// [`plugin_config`] with the runtime's dynamic arguments: each key of `runtime_config`
/// (`portMappings`) goes into the plugin's `runtimeConfig` when the plugin declares the
/// capability, as the CNI conventions say.
pub fn plugin_config_with(
    list: &Value,
    plugin: &Value,
    prev_result: Option<&Value>,
    runtime_config: &Value,
) -> Value {
    let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), list["name"].clone());
    conf.insert("cniVersion".into(), list["cniVersion"].clone());
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let mut rc = Map::new();
    if let Some(args) = runtime_config.as_object() {
        for (k, v) in args {
            if plugin["capabilities"][k] == true {
                rc.insert(k.clone(), v.clone());
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    Value::Object(conf)
}

/// A pod's host port, as `portmap`'s `portMappings` capability takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Only on this host address; `None`: every address of the node.
    pub host_ip: Option<String>,
}

/// The runtime config carrying `mappings`.
pub fn port_mappings_config(mappings: &[PortMapping]) -> Value {
    let list: Vec<Value> = mappings
        .iter()
        .map(|m| {
            let mut v = json!({
                "hostPort": m.host_port,
                "containerPort": m.container_port,
                "protocol": m.protocol,
            });
            if let Some(ip) = &m.host_ip {
                v["hostIP"] = json!(ip);
            }
            v
        })
        .collect();
    if list.is_empty() {
        Value::Null
    } else {
        json!({ "portMappings": list })
    }
}

/// The CNI client of one node.
#[derive(Debug)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
    state_dir: PathBuf,
    network: NodeNetwork,
    conflist: Value,
    timeout: Duration,
}

/// A CNI command and what it is called with.
struct Call<'a> {
    command: &'static str,
    container_id: &'a str,
    netns: &'a Path,
    ifname: &'a str,
}

impl Cni {
    /// A client that finds plugins in `plugin_dirs` (in order; `CNI_PATH`), keeps its
    /// state (host-local's leases in `<state_dir>/ipam`, ADD results in
    /// `<state_dir>/results`) under the node's `state_dir`, and puts pods on `network`.
    pub fn new(plugin_dirs: Vec<PathBuf>, state_dir: PathBuf, network: NodeNetwork) -> Cni {
        let conflist = network.conflist(&state_dir.join("ipam"));
        Cni {
            plugin_dirs,
            state_dir,
            network,
            conflist,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Writes the node's network to `<state_dir>/network.json`, so that [`Cni::load`] can
    /// take its pods off the network after the agent is gone (`navarch-node reset`).
    pub fn save(&self) -> Result<(), CniError> {
        let n = &self.network;
        let body = json!({
            "node": n.node_name,
            "podCIDR": n.pod_cidr.to_string(),
            "clusterCIDR": n.cluster_cidr.to_string(),
            "routes": n.extra_routes.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "bridge": n.bridge,
        });
        self.store_json(&self.state_dir.join("network.json"), &body)
    }

    /// The client [`Cni::save`] described in `state_dir`, if there is one.
    pub fn load(plugin_dirs: Vec<PathBuf>, state_dir: PathBuf) -> Option<Cni> {
        let v: Value =
            serde_json::from_slice(&std::fs::read(state_dir.join("network.json")).ok()?).ok()?;
        let cidr = |k: &str| v[k].as_str()?.parse::<Cidr>().ok();
        let routes = v["routes"]
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str()?.parse().ok())
            .collect();
        let network = NodeNetwork::new(v["node"].as_str()?, cidr("podCIDR")?, cidr("clusterCIDR")?)
            .ok()?
            .with_routes(routes)
            .with_bridge(v["bridge"].as_str()?)
            .ok()?;
        Some(Cni::new(plugin_dirs, state_dir, network))
    }

    /// The pods with an ADD on record (their uids).
    pub fn added(&self) -> Vec<String> {
        let prefix = format!("{NETWORK_NAME}-");
        let suffix = format!("-{POD_INTERFACE}.json");
        std::fs::read_dir(self.state_dir.join("results"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        Some(
                            name.strip_prefix(&prefix)?
                                .strip_suffix(&suffix)?
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Another limit than [`DEFAULT_TIMEOUT`] on each plugin call.
    pub fn with_timeout(mut self, timeout: Duration) -> Cni {
        self.timeout = timeout;
        self
    }

    pub fn network(&self) -> &NodeNetwork {
        &self.network
    }

    /// The configuration list the plugins are given.
    pub fn conflist(&self) -> &Value {
        &self.conflist
    }

    /// Where host-local keeps this node's leases: one file per address, named by the
    /// address and holding the container id and interface, and `last_reserved_ip.0`.
    pub fn lease_dir(&self) -> PathBuf {
        self.state_dir.join("ipam").join(NETWORK_NAME)
    }

    fn result_path(&self, pod_uid: &str) -> PathBuf {
        self.state_dir
            .join("results")
            .join(format!("{NETWORK_NAME}-{pod_uid}-{POD_INTERFACE}.json"))
    }

    /// Puts pod `pod_uid`'s network namespace `netns` on the node's network: `lo` up,
    /// then `eth0` on the bridge with an address of the pod range. A failure part way is
    /// undone with a DEL before the error is returned. Asked again for a pod already added
    /// (an agent restarted), it answers the recorded address if CHECK finds the pod's network
    /// intact, and otherwise deletes what is left and starts over.
    pub async fn add(&self, pod_uid: &str, netns: &Path) -> Result<PodNetwork, CniError> {
        self.add_with_ports(pod_uid, netns, &[]).await
    }

    /// [`Cni::add`], publishing the pod's host ports (`portmap`); DEL and CHECK use the
    /// same mappings, kept with the ADD result.
    pub async fn add_with_ports(
        &self,
        pod_uid: &str,
        netns: &Path,
        ports: &[PortMapping],
    ) -> Result<PodNetwork, CniError> {
        check_container_id(pod_uid)?;
        if let Some(cached) = self.load_result(pod_uid)? {
            match self.check(pod_uid, netns).await {
                Ok(()) => {
                    if let Ok(network) = pod_network(&cached, POD_INTERFACE) {
                        tracing::debug!(pod_uid, ip = %network.ip, "pod network already added");
                        return Ok(network);
                    }
                }
                Err(e) => {
                    tracing::info!(pod_uid, error = %e, "pod network not intact, adding it again");
                }
            }
            self.del(pod_uid, netns).await?;
        }
        self.store_json(
            &self.runtime_config_path(pod_uid),
            &port_mappings_config(ports),
        )?;
        let result = match self.add_all(pod_uid, netns).await {
            Ok(result) => result,
            Err(e) => {
                if let Err(undo) = self.del(pod_uid, netns).await {
                    tracing::warn!(pod_uid, error = %undo, "cni del after a failed add failed");
                }
                return Err(e);
            }
        };
        let network =
            pod_network(&result, POD_INTERFACE).map_err(|reason| CniError::BadResult {
                plugin: "bridge".into(),
                command: "ADD",
                reason,
            })?;
        tracing::info!(pod_uid, ip = %network.ip, bridge = self.network.bridge(), "pod network added");
        Ok(network)
    }

    fn runtime_config_path(&self, pod_uid: &str) -> PathBuf {
        self.state_dir.join("results").join(format!(
            "{NETWORK_NAME}-{pod_uid}-{POD_INTERFACE}.runtime.json"
        ))
    }

    /// The runtime config the pod was added with (`Null` when none).
    fn runtime_config(&self, pod_uid: &str) -> Value {
        std::fs::read(self.runtime_config_path(pod_uid))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    async fn add_all(&self, pod_uid: &str, netns: &Path) -> Result<Value, CniError> {
        let lo = Call {
            command: "ADD",
            container_id: pod_uid,
            netns,
            ifname: "lo",
        };
        self.exec("loopback", &lo, &loopback_config()).await?;
        let call = Call {
            ifname: POD_INTERFACE,
            ..lo
        };
        let mut prev: Option<Value> = None;
        let rc = self.runtime_config(pod_uid);
        for plugin in self.plugins() {
            let conf = plugin_config_with(&self.conflist, plugin, prev.as_ref(), &rc);
            let result = self
                .exec(plugin_type(plugin), &call, &conf)
                .await?
                .ok_or_else(|| CniError::BadResult {
                    plugin: plugin_type(plugin).into(),
                    command: "ADD",
                    reason: "no result on stdout".into(),
                })?;
            prev = Some(result);
        }
        let result = prev.ok_or_else(|| CniError::Config("no plugins in the list".into()))?;
        self.store_result(pod_uid, &result)?;
        Ok(result)
    }

    /// Takes pod `pod_uid` off the network, releasing its address. Idempotent: a pod never
    /// added, already deleted, or whose namespace is gone is not an error.
    pub async fn del(&self, pod_uid: &str, netns: &Path) -> Result<(), CniError> {
        check_container_id(pod_uid)?;
        let cached = self.load_result(pod_uid)?;
        let call = Call {
            command: "DEL",
            container_id: pod_uid,
            netns,
            ifname: POD_INTERFACE,
        };
        let rc = self.runtime_config(pod_uid);
        for plugin in self.plugins().iter().rev() {
            let conf = plugin_config_with(&self.conflist, plugin, cached.as_ref(), &rc);
            self.exec(plugin_type(plugin), &call, &conf).await?;
        }
        let lo = Call {
            ifname: "lo",
            ..call
        };
        self.exec("loopback", &lo, &loopback_config()).await?;
        for path in [self.result_path(pod_uid), self.runtime_config_path(pod_uid)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CniError::Cache { path, source }),
            }
        }
        tracing::info!(
            pod_uid,
            bridge = self.network.bridge(),
            "pod network deleted"
        );
        Ok(())
    }

    /// Asks every plugin whether pod `pod_uid`'s network is still as ADD left it.
    pub async fn check(&self, pod_uid: &str, netns: &Path) -> Result<(), CniError> {
        check_container_id(pod_uid)?;
        let cached = self
            .load_result(pod_uid)?
            .ok_or_else(|| CniError::NotAdded(pod_uid.to_string()))?;
        let lo = Call {
            command: "CHECK",
            container_id: pod_uid,
            netns,
            ifname: "lo",
        };
        self.exec("loopback", &lo, &loopback_config()).await?;
        let call = Call {
            ifname: POD_INTERFACE,
            ..lo
        };
        let rc = self.runtime_config(pod_uid);
        for plugin in self.plugins() {
            let conf = plugin_config_with(&self.conflist, plugin, Some(&cached), &rc);
            self.exec(plugin_type(plugin), &call, &conf).await?;
        }
        Ok(())
    }

    /// The CNI versions plugin `plugin` supports (its VERSION answer).
    pub async fn versions(&self, plugin: &str) -> Result<Vec<String>, CniError> {
        let call = Call {
            command: "VERSION",
            container_id: "",
            netns: Path::new(""),
            ifname: "",
        };
        let conf = json!({ "cniVersion": CNI_VERSION });
        let answer = self.exec(plugin, &call, &conf).await?.unwrap_or_default();
        Ok(answer["supportedVersions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn plugins(&self) -> &[Value] {
        self.conflist["plugins"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        let plain = !plugin.is_empty() && !plugin.contains('/') && plugin != "..";
        plain
            .then(|| {
                self.plugin_dirs
                    .iter()
                    .map(|d| d.join(plugin))
                    .find(|p| p.is_file())
            })
            .flatten()
            .ok_or_else(|| CniError::PluginNotFound {
                plugin: plugin.to_string(),
                dirs: self.cni_path(),
            })
    }

    fn cni_path(&self) -> String {
        let dirs: Vec<String> = self
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }

    /// Runs one plugin: its result (`None` when it printed nothing) or its error.
    async fn exec(
        &self,
        plugin: &str,
        call: &Call<'_>,
        conf: &Value,
    ) -> Result<Option<Value>, CniError> {
        let bin = self.find(plugin)?;
        let stdin = serde_json::to_vec(conf).map_err(|e| CniError::Config(e.to_string()))?;
        let mut command = tokio::process::Command::new(&bin);
        command
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CNI_COMMAND", call.command)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if call.command != "VERSION" {
            command
                .env("CNI_CONTAINERID", call.container_id)
                .env("CNI_NETNS", call.netns)
                .env("CNI_IFNAME", call.ifname);
        }
        let run = async {
            let mut child = command.spawn()?;
            if let Some(mut input) = child.stdin.take() {
                // A plugin that exits without reading its config fails on its own.
                let _ = input.write_all(&stdin).await;
            }
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| CniError::Timeout {
                plugin: plugin.to_string(),
                command: call.command,
                after: self.timeout,
            })?
            .map_err(|source| CniError::Spawn {
                plugin: plugin.to_string(),
                source,
            })?;
        tracing::debug!(
            plugin,
            command = call.command,
            container_id = call.container_id,
            ifname = call.ifname,
            status = %output.status,
            "cni plugin ran"
        );
        if !output.status.success() {
            return Err(match parse_error(&output.stdout) {
                Some((code, msg, details)) => CniError::Plugin {
                    plugin: plugin.to_string(),
                    command: call.command,
                    code,
                    msg,
                    details,
                },
                None => CniError::Failed {
                    plugin: plugin.to_string(),
                    command: call.command,
                    status: output.status.to_string(),
                    output: [&output.stdout, &output.stderr]
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect::<Vec<_>>()
                        .join("; "),
                },
            });
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| CniError::BadResult {
                plugin: plugin.to_string(),
                command: call.command,
                reason: format!("not JSON: {e}"),
            })
    }

    fn store_result(&self, pod_uid: &str, result: &Value) -> Result<(), CniError> {
        self.store_json(&self.result_path(pod_uid), result)
    }

    fn store_json(&self, path: &Path, result: &Value) -> Result<(), CniError> {
        let path = path.to_path_buf();
        let cache = |source| CniError::Cache {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(cache)?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(result)
            .map_err(io::Error::other)
            .map_err(cache)?;
        std::fs::write(&tmp, body).map_err(cache)?;
        std::fs::rename(&tmp, &path).map_err(cache)
    }

    fn load_result(&self, pod_uid: &str) -> Result<Option<Value>, CniError> {
        let path = self.result_path(pod_uid);
        match std::fs::read(&path) {
            // A damaged cache is dropped: DEL works without it.
            Ok(body) => Ok(serde_json::from_slice(&body).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CniError::Cache { path, source }),
        }
    }
}

fn plugin_type(plugin: &Value) -> &str {
    plugin["type"].as_str().unwrap_or("")
}

/// CNI container ids are alphanumeric with `_`, `.` and `-` (a pod uid is).
fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = !id.is_empty()
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::Config(format!(
            "{id:?} is not a CNI container id"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn node() -> NodeNetwork {
        NodeNetwork::new("node-3", cidr("10.42.3.0/24"), cidr("10.42.0.0/16"))
            .unwrap()
            .with_routes(vec![cidr("10.43.0.0/16")])
    }

    #[test]
    fn the_conflist_routes_only_the_cluster_ranges_and_masquerades_nothing() {
        let list = node().conflist(Path::new("/var/lib/n3/ipam"));
        assert_eq!(list["cniVersion"], "1.0.0");
        assert_eq!(list["name"], NETWORK_NAME);
        let bridge = &list["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], bridge_name("node-3"));
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["isDefaultGateway"], false);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["hairpinMode"], true);
        let ipam = &bridge["ipam"];
        assert_eq!(ipam["type"], "host-local");
        assert_eq!(ipam["dataDir"], "/var/lib/n3/ipam");
        assert_eq!(
            ipam["ranges"],
            json!([[{ "subnet": "10.42.3.0/24", "gateway": "10.42.3.1" }]])
        );
        assert_eq!(
            ipam["routes"],
            json!([
                { "dst": "10.42.0.0/16", "gw": "10.42.3.1" },
                { "dst": "10.43.0.0/16", "gw": "10.42.3.1" }
            ])
        );
        assert!(!list.to_string().contains("0.0.0.0/0"));
    }

    #[test]
    fn a_pod_range_outside_the_cluster_range_is_refused() {
        let err = NodeNetwork::new("n", cidr("10.44.0.0/24"), cidr("10.42.0.0/16")).unwrap_err();
        assert!(err.to_string().contains("not inside"), "{err}");
        assert!(NodeNetwork::new("n", cidr("10.0.0.0/8"), cidr("10.42.0.0/16")).is_err());
    }

    #[test]
    fn bridge_names_fit_linux_and_differ_per_node() {
        let a = bridge_name("node-1");
        let b = bridge_name("node-2");
        assert_ne!(a, b);
        assert_eq!(a, bridge_name("node-1"), "stable");
        let long = bridge_name(&"x".repeat(300));
        for name in [&a, &b, &long] {
            assert!(valid_ifname(name), "{name}");
        }
        assert!(node().with_bridge("this-is-too-long-x").is_err());
        assert_eq!(node().with_bridge("nvt1a").unwrap().bridge(), "nvt1a");
    }

    #[test]
    fn a_plugin_gets_the_lists_name_version_and_the_previous_result() {
        let list = node().conflist(Path::new("/x"));
        let prev = json!({ "cniVersion": "1.0.0", "ips": [] });
        let conf = plugin_config(&list, &list["plugins"][0], Some(&prev));
        assert_eq!(conf["name"], NETWORK_NAME);
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["type"], "bridge");
        assert_eq!(conf["prevResult"], prev);
        let first = plugin_config(&list, &list["plugins"][0], None);
        assert!(first.get("prevResult").is_none());
    }

    #[test]
    fn the_pods_address_is_the_one_on_its_eth0() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                { "name": "nv0", "mac": "e6:78:e4:c4:62:fd" },
                { "name": "veth6e907f5e", "mac": "26:4b:38:f8:ea:cd" },
                { "name": "eth0", "mac": "72:47:0b:db:4d:6e", "sandbox": "/run/netns/p" }
            ],
            "ips": [
                { "interface": 2, "address": "fd00::2/64", "gateway": "fd00::1" },
                { "interface": 2, "address": "10.42.3.7/24", "gateway": "10.42.3.1" }
            ],
            "routes": [{ "dst": "10.42.0.0/16" }]
        });
        assert_eq!(
            pod_network(&result, "eth0").unwrap(),
            PodNetwork {
                ip: "10.42.3.7".parse().unwrap(),
                prefix_len: 24,
                gateway: "10.42.3.1".parse().unwrap(),
                interface: "eth0".into(),
            }
        );
        assert!(pod_network(&json!({ "ips": [] }), "eth0").is_err());
        assert!(pod_network(&json!({}), "eth0").is_err());
    }

    #[test]
    fn plugin_errors_are_read_from_their_json() {
        let out = br#"{"code": 7, "msg": "bad bridge", "details": "name too long"}"#;
        let (code, msg, details) = parse_error(out).unwrap();
        assert_eq!(
            (code, msg.as_str(), details.as_str()),
            (7, "bad bridge", "name too long")
        );
        let err = CniError::Plugin {
            plugin: "bridge".into(),
            command: "ADD",
            code,
            msg,
            details,
        };
        assert_eq!(
            err.to_string(),
            "cni plugin bridge ADD failed: bad bridge: name too long (code 7: invalid network config)"
        );
        assert!(parse_error(b"panic: oops").is_none());
        assert!(parse_error(br#"{"msg":"no code"}"#).is_none());
        assert_eq!(code_meaning(999), "plugin-specific error");
    }

    #[test]
    fn container_ids_are_checked() {
        assert!(check_container_id("3f2a9c1e-0b7d-4c55-9e1a-7d2c0f7e8a11").is_ok());
        for bad in ["", "-x", "a/b", "a b"] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }
    /// A plugin directory of shell scripts standing in for the real plugins.
    fn fake_plugins(scripts: &[(&str, String)]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    /// A plugin that logs its environment and stdin, and answers `add_result` to ADD.
    fn recording(name: &str, log: &Path, add_result: &str) -> String {
        format!(
            "{{ echo \"{name} $CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME $CNI_PATH\"; cat; echo; }} >> {log}\n\
             [ \"$CNI_COMMAND\" = ADD ] && echo '{add_result}'\nexit 0",
            log = log.display()
        )
    }

    const BRIDGE_RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/p"}],"ips":[{"interface":0,"address":"10.42.3.7/24","gateway":"10.42.3.1"}]}"#;

    fn calls(log: &Path) -> Vec<(String, Value)> {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .map(|c| (c[0].to_string(), serde_json::from_str(c[1]).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn the_plugins_are_called_with_the_cni_protocol() {
        let state = tempfile::tempdir().unwrap();
        let log = state.path().join("calls");
        let plugins = fake_plugins(&[
            ("bridge", recording("bridge", &log, BRIDGE_RESULT)),
            ("portmap", recording("portmap", &log, BRIDGE_RESULT)),
            (
                "loopback",
                recording("loopback", &log, r#"{"cniVersion":"1.0.0"}"#),
            ),
        ]);
        let dir = plugins.path().display().to_string();
        let cni = Cni::new(
            vec![plugins.path().to_path_buf()],
            state.path().join("node"),
            node(),
        );
        let netns = Path::new("/run/netns/p");

        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: None,
        }];
        let net = cni.add_with_ports("uid-1", netns, &ports).await.unwrap();
        assert_eq!(net.ip, Ipv4Addr::new(10, 42, 3, 7));
        assert_eq!(net.gateway, Ipv4Addr::new(10, 42, 3, 1));
        let added = calls(&log);
        assert_eq!(added.len(), 3);
        assert_eq!(
            added[0].0,
            format!("loopback ADD uid-1 /run/netns/p lo {dir}")
        );
        assert_eq!(added[0].1, loopback_config());
        assert_eq!(
            added[1].0,
            format!("bridge ADD uid-1 /run/netns/p eth0 {dir}")
        );
        let conf = &added[1].1;
        assert_eq!(
            (&conf["name"], &conf["cniVersion"]),
            (&json!("navarch"), &json!("1.0.0"))
        );
        assert_eq!(conf["ipMasq"], false);
        assert!(
            conf.get("prevResult").is_none(),
            "the first plugin has no prevResult"
        );
        assert!(
            conf.get("runtimeConfig").is_none(),
            "bridge takes no port mappings"
        );
        let expected: Value = serde_json::from_str(BRIDGE_RESULT).unwrap();
        // portmap, chained: the bridge's result, and the port mappings it declares it takes.
        assert_eq!(
            added[2].0,
            format!("portmap ADD uid-1 /run/netns/p eth0 {dir}")
        );
        assert_eq!(added[2].1["prevResult"], expected);
        assert_eq!(
            added[2].1["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
        );

        cni.del("uid-1", netns).await.unwrap();
        let all = calls(&log);
        assert_eq!(all.len(), 6);
        // In reverse: portmap (with the same mappings), the bridge, loopback.
        assert_eq!(
            all[3].0,
            format!("portmap DEL uid-1 /run/netns/p eth0 {dir}")
        );
        assert_eq!(all[3].1["runtimeConfig"], added[2].1["runtimeConfig"]);
        assert_eq!(
            all[4].0,
            format!("bridge DEL uid-1 /run/netns/p eth0 {dir}")
        );
        assert_eq!(
            all[4].1["prevResult"], expected,
            "DEL gets the ADD's result"
        );
        assert_eq!(
            all[5].0,
            format!("loopback DEL uid-1 /run/netns/p lo {dir}")
        );
        assert!(matches!(
            cni.check("uid-1", netns).await,
            Err(CniError::NotAdded(_))
        ));
    }

    #[tokio::test]
    async fn a_plugins_json_error_comes_back_parsed() {
        let plugins = fake_plugins(&[
            (
                "bridge",
                "cat >/dev/null; echo '{\"code\":11,\"msg\":\"busy\",\"details\":\"lock held\"}'; exit 1"
                    .into(),
            ),
            ("loopback", "cat >/dev/null; echo '{}'".into()),
        ]);
        let state = tempfile::tempdir().unwrap();
        let cni = Cni::new(vec![plugins.path().into()], state.path().into(), node());
        match cni.add("uid-2", Path::new("/run/netns/q")).await {
            Err(CniError::Plugin {
                plugin,
                command,
                code,
                msg,
                details,
            }) => {
                assert_eq!((plugin.as_str(), command), ("bridge", "ADD"));
                assert_eq!(
                    (code, msg.as_str(), details.as_str()),
                    (11, "busy", "lock held")
                );
            }
            other => panic!("expected a plugin error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_plugin_failing_without_json_shows_its_output() {
        let plugins = fake_plugins(&[("loopback", "echo 'no such thing' >&2; exit 2".into())]);
        let state = tempfile::tempdir().unwrap();
        let cni = Cni::new(vec![plugins.path().into()], state.path().into(), node());
        match cni.add("uid-3", Path::new("/run/netns/r")).await {
            Err(CniError::Failed { plugin, output, .. }) => {
                assert_eq!(plugin, "loopback");
                assert!(output.contains("no such thing"), "{output}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_plugin_that_hangs_is_killed_at_the_timeout() {
        let plugins = fake_plugins(&[("loopback", "exec tail -f /dev/null".into())]);
        let state = tempfile::tempdir().unwrap();
        let cni = Cni::new(vec![plugins.path().into()], state.path().into(), node())
            .with_timeout(Duration::from_millis(200));
        let err = cni.versions("loopback").await.unwrap_err();
        assert!(
            matches!(
                err,
                CniError::Timeout {
                    command: "VERSION",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn versions_and_missing_plugins() {
        let plugins = fake_plugins(&[(
            "bridge",
            r#"cat >/dev/null; [ "$CNI_COMMAND" = VERSION ] && echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'"#
                .into(),
        )]);
        let state = tempfile::tempdir().unwrap();
        let cni = Cni::new(vec![plugins.path().into()], state.path().into(), node());
        assert_eq!(cni.versions("bridge").await.unwrap(), ["0.4.0", "1.0.0"]);
        let err = cni.versions("macvlan").await.unwrap_err();
        assert!(matches!(err, CniError::PluginNotFound { .. }), "{err}");
        assert!(matches!(
            cni.versions("../bridge").await,
            Err(CniError::PluginNotFound { .. })
        ));
    }
}
