//! What every controller of one activation shares: the watch caches it reads, the clients
//! it writes through (each controller under its own identity, fenced to the activation's
//! term), the clock, the event recorders, and the master it runs on.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use navarch_actors::Clock;
use navarch_client::{Cache, Client, SharedCaches};
use navarch_logic::podgc;
use navarch_model::identity::Component;
use navarch_model::kinds::Kind;

use crate::recorder::Recorder;

/// Sends `event` to the singleton in `handle` after `delay` (a pass again after a failed
/// write), once the singleton is known.
pub fn pass_again<S: navarch_actors::SingletonLogic>(
    handle: Arc<std::sync::OnceLock<navarch_actors::SingletonRef<S>>>,
    event: S::Event,
    delay: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Some(h) = handle.get() {
            let _ = h.send(event).await;
        }
    });
}

/// Hands out the client each component writes through.
pub trait Clients: Send + Sync + 'static {
    /// The client `component` calls the API with: authenticated as the component, its
    /// writes fenced to the term of the activation these clients were made for.
    fn client(&self, component: &Component) -> Arc<dyn Client>;
}

/// Settings of the controllers, from the master's flags.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The master this control plane runs on (events' `source.host`).
    pub host: String,
    /// `--node-monitor-grace-period`: a node silent this long is marked unknown.
    pub node_monitor_grace_period: Duration,
    /// A node that never reported gets this long after it was registered.
    pub node_startup_grace_period: Duration,
    /// `--pod-gc-quarantine-period`: a node absent this long has its pods force-deleted
    /// (Kubernetes' PodGC quarantine, 40 s).
    pub pod_gc_quarantine: Duration,
    /// `--terminated-pod-gc-threshold`: terminated pods kept before the oldest are
    /// deleted; 0 keeps them all.
    pub terminated_pod_gc_threshold: usize,
    /// How often the pod garbage collector passes when nothing pokes it (Kubernetes'
    /// `gcCheckPeriod`, 20 s).
    pub pod_gc_check_period: Duration,
    /// How Node pod ranges are handed out (`--cluster-cidr`, `--node-cidr-mask-size`);
    /// `None` hands none out.
    pub node_ipam: Option<navarch_logic::nodeipam::Allocator>,
    /// The cluster CA certificate (PEM) published in every namespace as
    /// `kube-root-ca.crt`; `None` publishes none.
    pub root_ca: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            host: "master".to_string(),
            node_monitor_grace_period: Duration::from_secs(20),
            node_startup_grace_period: Duration::from_secs(60),
            pod_gc_quarantine: Duration::from_secs(podgc::QUARANTINE_SECONDS as u64),
            terminated_pod_gc_threshold: podgc::DEFAULT_TERMINATED_THRESHOLD,
            pod_gc_check_period: Duration::from_secs(podgc::CHECK_PERIOD_SECONDS as u64),
            node_ipam: Some(default_node_ipam()),
            root_ca: None,
        }
    }
}

/// k3s's default cluster range, 10.42.0.0/16, in /24s per node.
pub fn default_node_ipam() -> navarch_logic::nodeipam::Allocator {
    let range = navarch_logic::nodeipam::Range::parse("10.42.0.0/16").expect("a valid range");
    navarch_logic::nodeipam::Allocator::new(range, 24).expect("a valid split")
}

/// The shared context of one activation.
#[derive(Clone)]
pub struct Ctx {
    pub caches: SharedCaches,
    pub clients: Arc<dyn Clients>,
    pub clock: Arc<dyn Clock>,
    pub config: ControllerConfig,
    /// The Raft term this activation is fenced to.
    pub term: u64,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("host", &self.config.host)
            .field("term", &self.term)
            .finish()
    }
}

impl Ctx {
    /// The shared cache of `kind`.
    pub fn cache(&self, kind: &'static Kind) -> Cache {
        self.caches.cache(kind)
    }

    /// Wall-clock time in Unix seconds, from the root's clock.
    pub fn now(&self) -> i64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// An event recorder for `component`.
    pub fn recorder(&self, component: &Component) -> Recorder {
        Recorder::new(
            component.name,
            &self.config.host,
            self.clients.client(component),
            self.clock.clone(),
        )
    }
}
