//! The reconciling cores the simulation drives, behind traits so that a test can put a
//! broken core in place of a real one and watch the simulation catch it.

use navarch_logic::deployment::{self, DeploymentInput};
use navarch_logic::replicaset::{self, ReplicaSetInput};
use navarch_logic::scheduler::{self, ClusterState, Placement};
use serde_json::Value;

/// The ReplicaSet controller's decision, as its shell calls it.
pub trait ReplicaSetCore {
    /// One step (the real one: `navarch_logic::replicaset::reconcile`).
    fn reconcile(&mut self, input: &ReplicaSetInput<'_>) -> replicaset::Plan;

    /// The controller restarted: it lost its expectations and its caches and listed
    /// again. A pure core keeps nothing, so there is nothing to do.
    fn restarted(&mut self) {}
}

/// The Deployment controller's decision, as its shell calls it.
pub trait DeploymentCore {
    /// One step (the real one: `navarch_logic::deployment::reconcile`).
    fn reconcile(&mut self, input: &DeploymentInput<'_>) -> deployment::Plan;

    /// The controller restarted (see [`ReplicaSetCore::restarted`]).
    fn restarted(&mut self) {}
}

/// The scheduler's placement of one pod on the scheduler's view of the cluster.
pub type ScheduleFn = fn(&ClusterState, &Value) -> Placement;

/// The cores one schedule runs with (made fresh for every schedule, so a stateful core
/// starts each one alike).
pub struct Cores {
    pub replica_set: Box<dyn ReplicaSetCore>,
    pub deployment: Box<dyn DeploymentCore>,
    pub schedule: ScheduleFn,
}

impl std::fmt::Debug for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cores").finish_non_exhaustive()
    }
}

/// navarch-logic's ReplicaSet core.
#[derive(Debug, Default)]
pub struct RealReplicaSet;

impl ReplicaSetCore for RealReplicaSet {
    fn reconcile(&mut self, input: &ReplicaSetInput<'_>) -> replicaset::Plan {
        replicaset::reconcile(input)
    }
}

/// navarch-logic's Deployment core.
#[derive(Debug, Default)]
pub struct RealDeployment;

impl DeploymentCore for RealDeployment {
    fn reconcile(&mut self, input: &DeploymentInput<'_>) -> deployment::Plan {
        deployment::reconcile(input)
    }
}

impl Cores {
    /// The cores the control plane runs.
    pub fn real() -> Cores {
        Cores {
            replica_set: Box::new(RealReplicaSet),
            deployment: Box::new(RealDeployment),
            schedule: scheduler::schedule,
        }
    }
}
