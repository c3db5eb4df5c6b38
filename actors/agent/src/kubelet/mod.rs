//! The kubelet: the pods bound to this node run as containers on a [`ContainerRuntime`],
//! one supervised Pod actor per pod under the `pod` kind supervisor of the node's actor root
//! (`/node/<name>/kubelet/pod/<namespace>/<name>`), fed by a watch cache of the pods bound
//! to the node (`spec.nodeName=<node>`) over the node link.
//!
//! Where to start reading:
//! - [`sync`]: the pure decisions of one pod (what to start, kill, remove; its status);
//! - [`containers`]: a pod's container turned into a runtime [`navarch_runtime::ContainerSpec`];
//! - [`worker`]: one pass over a pod, carrying out what [`sync`] decided (the Pod actor's
//!   effects), and the kubelet-wide loops: the container event generator (PLEG) and the
//!   cleanup of containers whose pods are gone;
//! - [`actor`]: the Pod actor itself, a thin shell that turns pod changes and pokes into
//!   passes;
//! - a container's inputs, pure-ish: [`env`](mod@env) (its environment: `envFrom`,
//!   `fieldRef`, `resourceFieldRef`, ConfigMap and Secret keys, `$(VAR)` expansion, and
//!   [`env::referenced_objects`], what to fetch first), [`volumes`] (the pod's volumes
//!   under its dir, each container's mounts, the periodic [`volumes::update`] of
//!   configMap, secret, downwardAPI and projected volumes, [`volumes::cleanup`]) and
//!   [`probe`] (liveness, readiness and startup: the kubelet's state machine in
//!   [`probe::ProbeSet`], one attempt in [`probe::run`]).
//!
//! Architecture invariants:
//! - The runtime's state dir is the truth about containers: the kubelet's index of which
//!   containers a pod has is rebuilt from [`ContainerRuntime::list`] when the kubelet starts
//!   and only mirrors creations and removals after, so a restarted Pod actor (or agent)
//!   finds its running containers and never starts them twice.
//! - Every container carries its pod's uid, name, namespace, its container name and restart
//!   count in its labels ([`sync::LABEL_POD_UID`] ...): nothing else says whose it is.
//! - A Pod actor holds no state a restart would lose: the back-off is derived from restart
//!   counts and exit times; probe results live with the prober, per container.

pub mod actor;
pub mod containers;
pub mod env;
pub mod lookup;
pub mod probe;
pub mod prober;
pub mod sync;
pub mod volumes;
pub mod worker;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use navarch_runtime::ContainerRuntime;

pub use actor::{Kubelet, KubeletHandle};

/// How the kubelet runs.
#[derive(Clone)]
pub struct KubeletConfig {
    pub node: String,
    /// The node's address (every pod's hostIP).
    pub host_ip: Ipv4Addr,
    /// Where pod directories (`pods/<uid>`) and container logs (`logs/...`) live.
    pub root: PathBuf,
    /// The runtimes by RuntimeClass handler name (`process`, `oci`).
    pub runtimes: BTreeMap<String, Arc<dyn ContainerRuntime>>,
    /// The handler of pods without `runtimeClassName`.
    pub default_runtime: String,
    /// The crash-loop back-off's cap (Kubernetes' 5 minutes by default).
    pub backoff_cap: Duration,
    /// How often every pod is looked at even when nothing changed.
    pub resync: Duration,
    /// How often the runtime's containers are checked for state changes.
    pub pleg_period: Duration,
    /// The pod network (a network namespace and an address per pod through CNI); `None`:
    /// pods share the node's network and address.
    pub network: Option<Arc<crate::network::Cni>>,
    /// The cluster's DNS domain (pods' `/etc/hosts` names, their DNS search path).
    pub cluster_domain: String,
    /// The cluster DNS servers pods with `dnsPolicy: ClusterFirst` use (none: they use
    /// the node's resolvers, as the kubelet falls back to `Default`).
    pub cluster_dns: Vec<std::net::Ipv4Addr>,
    /// The node's allocatable resources (what `resourceFieldRef`s to unset limits read).
    pub allocatable: BTreeMap<String, String>,
    /// The Services (the node's watch cache, shared with the proxy), for pods' service
    /// environment variables; `None`: pods get none.
    pub services: Option<navarch_client::Cache>,
}

impl std::fmt::Debug for KubeletConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletConfig")
            .field("node", &self.node)
            .field("root", &self.root)
            .field("runtimes", &self.runtimes.keys().collect::<Vec<_>>())
            .field("default_runtime", &self.default_runtime)
            .finish_non_exhaustive()
    }
}

impl KubeletConfig {
    /// The directory of the pod `uid`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    /// The log file of instance `restart_count` of `container` (Kubernetes'
    /// `/var/log/pods/<ns>_<name>_<uid>/<container>/<n>.log`).
    pub fn log_path(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        restart_count: u32,
    ) -> PathBuf {
        logs_dir(&self.root, namespace, pod, uid)
            .join(container)
            .join(format!("{restart_count}.log"))
    }
}

/// The directory of a pod's container logs.
pub fn logs_dir(root: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    root.join("logs").join(format!("{namespace}_{pod}_{uid}"))
}
