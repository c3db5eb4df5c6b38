//! The control plane as supervised actors: the controller manager of one master, with one
//! supervisor per kind and one actor per object, and the scheduler, fed by the shared
//! watch caches and writing through the API under each controller's own identity.
//!
//! Where to start reading:
//! - [`ControlPlane`] (below): activation and deactivation. The control plane runs on the
//!   master that leads the store, fenced to the Raft term it leads in: every write it makes
//!   commits only in that term, so a deposed master's writes fail;
//! - [`context`]: what the controllers of one activation share ([`Ctx`], [`Clients`]);
//! - [`replicaset`], [`deployment`], [`nodes`], [`endpoints`], [`namespaces`]: one actor
//!   per object;
//! - [`scheduler`]: the singleton placing pods; [`gc`]: the garbage collector;
//!   [`podgc`]: the pod garbage collector (pods of nodes that are gone, terminated pods);
//! - [`feed`] and [`source`]: the caches as the actors' sources and event feeds;
//! - [`recorder`]: the Events they record.
//!
//! The decisions are navarch-logic's pure functions; the actors here read the caches when
//! a message arrives, call them, and carry the actions out.
//!
//! ```text
//! /master/m1/controllers ── replicaset ── default/web-7d4b9 ...
//!                        ├─ deployment ── default/web ...
//!                        ├─ node ── n1, n2 ...
//!                        ├─ endpoints ── default/web ...
//!                        ├─ namespace ── default, shop ...
//!                        ├─ scheduler
//!                        ├─ garbage-collector
//!                        └─ pod-garbage-collector
//! ```

pub mod context;
pub mod deployment;
pub mod endpoints;
pub mod feed;
pub mod gc;
pub mod namespaces;
pub mod nodeipam;
pub mod nodes;
pub mod podgc;
pub mod recorder;
pub mod replicaset;
pub mod scheduler;
pub mod serviceaccounts;
pub mod source;

use std::sync::Arc;
use std::time::SystemTime;

use navarch_actors::{GroupHandle, GroupSpec, Root, SupervisorError};
use navarch_client::SharedCaches;
use serde::Serialize;
use tokio::sync::watch;

pub use context::{Clients, ControllerConfig, Ctx};

/// Whether this master's control plane runs, as `/debug/controlplane` and `navctl` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Activation {
    pub active: bool,
    /// The Raft term it is fenced to while active.
    pub term: Option<u64>,
    /// Unix seconds of the last activation or deactivation.
    pub since: Option<u64>,
    /// How many times it was activated since the process started.
    pub activations: u64,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("supervisor: {0}")]
    Supervisor(#[from] SupervisorError),
}

struct Running {
    group: GroupHandle,
    caches: SharedCaches,
    _replicasets: replicaset::ReplicaSetController,
    _deployments: deployment::DeploymentController,
    _nodes: nodes::NodeController,
    _endpoints: endpoints::EndpointsController,
    _namespaces: namespaces::NamespaceController,
    _scheduler: scheduler::Scheduler,
    _gc: gc::GarbageCollector,
    _podgc: podgc::PodGarbageCollector,
    _nodeipam: Option<nodeipam::NodeIpamController>,
    _serviceaccounts: serviceaccounts::ServiceAccountController,
}

/// The controller manager and scheduler of one master.
pub struct ControlPlane {
    root: Root,
    caches: Arc<dyn Fn() -> SharedCaches + Send + Sync>,
    config: ControllerConfig,
    running: tokio::sync::Mutex<Option<Running>>,
    status: watch::Sender<Activation>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts the caches every controller reads, so that they list in parallel.
fn warm_up(caches: &SharedCaches) {
    let kind = |g: &str, p: &str| navarch_client::kind(g, "v1", p);
    for (g, p) in [
        ("", "namespaces"),
        ("", "pods"),
        ("", "nodes"),
        ("", "services"),
        ("", "endpoints"),
        ("", "serviceaccounts"),
        ("apps", "replicasets"),
        ("apps", "deployments"),
    ] {
        caches.cache(kind(g, p));
    }
    if let Some(slices) = navarch_model::kinds::lookup("discovery.k8s.io", "v1", "endpointslices") {
        caches.cache(slices);
    }
    caches.scoped(
        navarch_client::Scope::kind(kind("coordination.k8s.io", "leases"))
            .namespace(navarch_logic::nodes::LEASE_NAMESPACE),
    );
}

impl ControlPlane {
    /// A control plane that is not running yet. `caches` makes the shared watch caches of
    /// one activation (their reads go through the API as the controller manager).
    pub fn new(
        root: Root,
        caches: Arc<dyn Fn() -> SharedCaches + Send + Sync>,
        config: ControllerConfig,
    ) -> Arc<ControlPlane> {
        Arc::new(ControlPlane {
            root,
            caches,
            config,
            running: tokio::sync::Mutex::new(None),
            status: watch::Sender::new(Activation::default()),
        })
    }

    /// The current activation status.
    pub fn status(&self) -> Activation {
        self.status.borrow().clone()
    }

    /// Follows the status as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Activation> {
        self.status.subscribe()
    }

    /// Starts the controllers and the scheduler for `term`, writing through `clients`
    /// (fenced to `term`). A running activation of another term is stopped first.
    pub async fn activate(
        &self,
        term: u64,
        clients: Arc<dyn Clients>,
    ) -> Result<(), ControlPlaneError> {
        let mut running = self.running.lock().await;
        if let Some(old) = running.take() {
            let _ = old.group.shutdown().await;
            old.caches.shutdown();
        }
        // Fresh caches for every activation, listed at a linearizable revision after this
        // master's leadership began: they hold every write the previous control plane made
        // (a cache kept warm meanwhile could lag behind by a few events, and a ReplicaSet
        // missing its newest pods would create them again). As kube-controller-manager's
        // informers: nothing decides before every cache it reads has synced.
        let caches = (self.caches)();
        warm_up(&caches);
        if caches.wait_synced().await.is_err() {
            tracing::warn!(term, "the watch caches stopped before they synced");
        }
        let ctx = Ctx {
            caches: caches.clone(),
            clients,
            clock: self.root.clock(),
            config: self.config.clone(),
            term,
        };
        let group = self.root.group(GroupSpec::new("controllers"))?;
        let started = async {
            Ok::<_, SupervisorError>(Running {
                _replicasets: replicaset::ReplicaSetController::start(&group, &ctx).await?,
                _deployments: deployment::DeploymentController::start(&group, &ctx).await?,
                _nodes: nodes::NodeController::start(&group, &ctx).await?,
                _endpoints: endpoints::EndpointsController::start(&group, &ctx).await?,
                _namespaces: namespaces::NamespaceController::start(&group, &ctx).await?,
                _scheduler: scheduler::Scheduler::start(&group, &ctx).await?,
                _gc: gc::GarbageCollector::start(&group, &ctx).await?,
                _podgc: podgc::PodGarbageCollector::start(&group, &ctx).await?,
                _nodeipam: nodeipam::NodeIpamController::start(&group, &ctx).await?,
                _serviceaccounts: serviceaccounts::ServiceAccountController::start(&group, &ctx)
                    .await?,
                group: group.clone(),
                caches: caches.clone(),
            })
        }
        .await;
        let started = match started {
            Ok(r) => r,
            Err(e) => {
                let _ = group.shutdown().await;
                caches.shutdown();
                return Err(e.into());
            }
        };
        *running = Some(started);
        self.status.send_modify(|a| {
            *a = Activation {
                active: true,
                term: Some(term),
                since: Some(unix_now()),
                activations: a.activations + 1,
            }
        });
        tracing::info!(term, "control plane active");
        Ok(())
    }

    /// Stops the controllers and the scheduler (their writes were fenced anyway).
    pub async fn deactivate(&self) {
        let mut running = self.running.lock().await;
        if let Some(old) = running.take() {
            let _ = old.group.shutdown().await;
            old.caches.shutdown();
            drop(old);
            self.status.send_modify(|a| {
                a.active = false;
                a.term = None;
                a.since = Some(unix_now());
            });
            tracing::info!("control plane stopped");
        }
    }
}
