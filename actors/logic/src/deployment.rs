//! The Deployment controller's decisions (Kubernetes' `pkg/controller/deployment`,
//! apps/v1), pure: a Deployment with its ReplicaSets and their pods in, the writes that
//! move it one step towards its spec out.
//!
//! One [`reconcile`] is one of Kubernetes' syncs: claim the ReplicaSets (adopt matching
//! orphans, release ones that stopped matching), then either only the status (a Deployment
//! being deleted), a scale of the existing ReplicaSets (paused, or `spec.replicas` changed:
//! proportional scaling), or one step of the strategy (rolling update or recreate) followed
//! by the status with its `Available` and `Progressing` conditions, the progress deadline,
//! navarch's automatic rollback and the revision history cleanup. It is level-triggered:
//! the same input gives the same plan, and once the plan took effect the next call goes on
//! from there until nothing is left to do.
//!
//! The caller applies a plan's actions in order. The status write comes before the
//! Deployment's own update when a plan holds both: each carries the `resourceVersion` the
//! Deployment was read at, so the second should be sent with the `resourceVersion` the
//! first returned (they change disjoint parts: `/status` only the status, the main
//! resource everything else). A caller that does not do so gets a conflict on the second
//! write, and the next reconcile plans it again.
//!
//! Submodules: `bounds` (defaults, `maxSurge`/`maxUnavailable`), `hash` (the
//! `pod-template-hash`), `work` (the working state and the plan), `rollout` (the
//! strategies, scaling, history), `status` (status, conditions, automatic rollback).

use std::sync::Arc;

use navarch_model::selector::LabelSelector;
use serde_json::Value;

use crate::events::{EventSpec, ObjectRef};
use crate::meta;

mod bounds;
mod hash;
mod rollout;
mod status;
mod work;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use bounds::rolling_bounds;
pub use hash::{equal_ignore_hash, template_hash};

/// The revision of a ReplicaSet (and, copied, of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had before a rollback brought it back.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` a ReplicaSet was last sized for.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` a ReplicaSet was last sized for (proportional scaling).
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label (and selector) distinguishing a Deployment's ReplicaSets.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Why a revision was made (`kubectl rollout history`).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// navarch: `"true"` on a Deployment rolls it back when a rollout passes its deadline.
pub const AUTO_ROLLBACK: &str = "navarch.io/auto-rollback";
/// navarch: `"true"` on a ReplicaSet that was once a complete rollout (a rollback target).
pub const BECAME_AVAILABLE: &str = "navarch.io/became-available";

/// The reasons of the Deployment's conditions, as Kubernetes words them.
pub mod reason {
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    pub const PAUSED: &str = "DeploymentPaused";
    pub const RESUMED: &str = "DeploymentResumed";
    /// navarch's: the rollout passed its deadline and was rolled back.
    pub const AUTO_ROLLBACK: &str = "AutoRollback";
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// What one reconcile of a Deployment looks at.
#[derive(Clone, Copy, Debug)]
pub struct DeploymentInput<'a> {
    /// The Deployment as stored (metadata with uid, generation and resourceVersion, spec,
    /// status).
    pub deployment: &'a Value,
    /// The ReplicaSets of its namespace it controls, and orphans matching its selector.
    /// Others may be included: they are ignored, except that one holding the name of the
    /// ReplicaSet to create is a hash collision (so after a create fails with
    /// AlreadyExists, pass the ReplicaSet holding the name).
    pub replica_sets: &'a [Arc<Value>],
    /// The pods those ReplicaSets control (Recreate waits until the old ones are gone;
    /// `minReadySeconds` requeues).
    pub pods: &'a [Arc<Value>],
    /// Unix seconds.
    pub now: i64,
}

/// One write (or event) of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum DeploymentAction {
    /// A full ReplicaSet to POST.
    CreateReplicaSet(Value),
    /// A full ReplicaSet to PUT; its `metadata.resourceVersion` is a precondition.
    UpdateReplicaSet(Value),
    /// A history cleanup; uid and resourceVersion are preconditions.
    DeleteReplicaSet {
        name: String,
        uid: String,
        resource_version: String,
    },
    /// A PUT of the Deployment itself (the revision annotation, an automatic rollback's
    /// template), with its resourceVersion.
    UpdateDeployment(Value),
    /// A PUT of the `status` subresource: the Deployment with its new status, with its
    /// resourceVersion.
    UpdateStatus(Value),
    Event(EventSpec),
}

/// What one reconcile decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<DeploymentAction>,
    /// Look again after this many seconds even if nothing changes (the progress deadline,
    /// `minReadySeconds`).
    pub requeue_after: Option<i64>,
}

/// One step of the Deployment controller (Kubernetes' `syncDeployment`).
pub fn reconcile(input: &DeploymentInput) -> Plan {
    let d = input.deployment;
    let Ok(selector) = LabelSelector::from_object(&d["spec"]["selector"]) else {
        // Validation refuses such a selector; there is nothing safe to do.
        return Plan::default();
    };
    if selector.is_empty() {
        return selecting_all(d);
    }
    let mut w = work::Work::claim(input, &selector);
    if meta::is_deleting(d) {
        // Without `create` there is no collision.
        let _ = w.sync_new_rs(false, false);
        w.sync_deployment_status();
        return w.finish();
    }
    w.check_paused_conditions();
    if w.p.paused {
        w.sync();
        return w.finish();
    }
    let _ = w.sync_new_rs(false, true);
    // A scaling event is synced in place, except for a Recreate Deployment with more than
    // one active ReplicaSet: `sync` resizes none of those (proportional scaling is a
    // rolling update's), so the event would never end and the rollout never come. Its
    // rollout sizes them all (the old ones to zero, then the new one to `replicas`).
    // Kubernetes' `syncDeployment` has this stall.
    let stalled_recreate = w.p.recreate && w.active(&w.all()).len() > 1;
    if w.is_scaling_event() && !stalled_recreate {
        w.sync();
        return w.finish();
    }
    let stepped = if w.p.recreate {
        w.rollout_recreate()
    } else {
        w.rollout_rolling()
    };
    if stepped.is_err() {
        // A hash collision: store the bumped collision count, try again with it.
        w.status_out = Some(w.ds["status"].clone());
    }
    w.finish()
}

/// A Deployment with an empty selector would claim every pod: Kubernetes only warns and
/// records that it saw the generation.
fn selecting_all(d: &Value) -> Plan {
    let mut actions = Vec::new();
    let generation = meta::generation(d);
    if d["status"]["observedGeneration"].as_i64().unwrap_or(0) < generation {
        let mut obj = d.clone();
        meta::object_at(&mut obj, "status").insert("observedGeneration".into(), generation.into());
        actions.push(DeploymentAction::UpdateStatus(obj));
    }
    actions.push(DeploymentAction::Event(EventSpec::warning(
        ObjectRef::to(d, "apps/v1", "Deployment"),
        "SelectingAll",
        "This deployment is selecting all pods. A non-empty selector is required.",
    )));
    Plan {
        actions,
        requeue_after: None,
    }
}
