//! One reconcile's working state: the Deployment's ReplicaSets as the steps change them in
//! memory (claimed, created, scaled, annotated), the Deployment's status and metadata being
//! rewritten, and the plan they turn into at the end.

use std::cmp::Ordering;

use navarch_model::selector::LabelSelector;
use serde_json::{json, Value};

use super::bounds::Params;
use super::{
    DeploymentAction, DeploymentInput, Plan, BECAME_AVAILABLE, DESIRED_REPLICAS, MAX_REPLICAS,
    REVISION, REVISION_HISTORY,
};
use crate::events::{EventSpec, ObjectRef};
use crate::meta;

/// Annotations of a Deployment never copied onto its ReplicaSets, nor back on a rollback
/// (Kubernetes' `annotationsToSkip`, navarch's own availability mark, and the request each
/// object was created by).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
    BECAME_AVAILABLE,
    navarch_model::CORRELATION_ANNOTATION,
];

/// How long the revision history annotation may grow (Kubernetes' 2000 characters).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// One ReplicaSet of the Deployment as this reconcile sees it.
#[derive(Debug)]
pub(super) struct Slot {
    pub obj: Value,
    /// Not in the store yet: this plan creates it.
    pub created: bool,
    /// Changed by this plan (an update, or part of the create).
    pub dirty: bool,
}

/// The direction of a scale, for the event's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scaling {
    Up,
    Down,
}

#[derive(Debug)]
pub(super) struct Work<'a> {
    pub input: &'a DeploymentInput<'a>,
    /// The Deployment as stored.
    pub d: &'a Value,
    pub p: Params,
    pub now: i64,
    /// The claimed ReplicaSets, oldest first, then the one this plan creates.
    pub rss: Vec<Slot>,
    /// The new ReplicaSet (its template is the Deployment's).
    pub new: Option<usize>,
    /// Slots in the order the steps first changed them.
    touched: Vec<usize>,
    /// ReplicaSets released (their owner reference to the Deployment removed).
    released: Vec<Value>,
    /// Slots deleted by the history cleanup.
    pub deletes: Vec<usize>,
    events: Vec<EventSpec>,
    /// The Deployment whose status the steps rewrite (Go's in-memory `d.Status`).
    pub ds: Value,
    /// The Deployment's metadata and spec as they should be stored.
    pub dm: Value,
    dm_dirty: bool,
    /// The status to store, once a step computed it.
    pub status_out: Option<Value>,
    pub requeue: Option<i64>,
}

impl<'a> Work<'a> {
    /// Claims the input's ReplicaSets (Kubernetes' `ClaimReplicaSets`): controlled ones that
    /// still match are kept, controlled ones that no longer match are released, matching
    /// orphans are adopted; nothing is adopted or released while the Deployment is being
    /// deleted, and ReplicaSets of other controllers are ignored.
    pub fn claim(input: &'a DeploymentInput<'a>, selector: &LabelSelector) -> Work<'a> {
        let d = input.deployment;
        let duid = meta::uid(d);
        let deleting = meta::is_deleting(d);
        let mut rss = Vec::new();
        let mut released = Vec::new();
        for rs in input.replica_sets {
            let matches = selector.matches(meta::labels(rs));
            match meta::controller_ref(rs) {
                Some(r) if r["uid"].as_str() == Some(duid) => {
                    if matches {
                        rss.push(Slot {
                            obj: (**rs).clone(),
                            created: false,
                            dirty: false,
                        });
                    } else if !deleting {
                        let mut obj = (**rs).clone();
                        remove_owner(&mut obj, duid);
                        released.push(obj);
                    }
                }
                Some(_) => {}
                None => {
                    if deleting
                        || !matches
                        || meta::is_deleting(rs)
                        || meta::namespace(rs) != meta::namespace(d)
                    {
                        continue;
                    }
                    let mut obj = (**rs).clone();
                    remove_owner(&mut obj, duid);
                    let refs = meta::object_at(&mut obj, "metadata")
                        .entry("ownerReferences")
                        .or_insert_with(|| json!([]));
                    if !refs.is_array() {
                        *refs = json!([]);
                    }
                    if let Some(list) = refs.as_array_mut() {
                        list.push(meta::controller_ref_to(d, "apps/v1", "Deployment"));
                    }
                    rss.push(Slot {
                        obj,
                        created: false,
                        dirty: true,
                    });
                }
            }
        }
        rss.sort_by(|a, b| by_creation(&a.obj, &b.obj));
        let mut w = Work {
            input,
            d,
            p: Params::of(d),
            now: input.now,
            rss,
            new: None,
            touched: Vec::new(),
            released,
            deletes: Vec::new(),
            events: Vec::new(),
            ds: json!({"status": d["status"].clone()}),
            dm: d.clone(),
            dm_dirty: false,
            status_out: None,
            requeue: None,
        };
        // Adopted slots were dirty from the start; their order is the sort's.
        for i in 0..w.rss.len() {
            if w.rss[i].dirty {
                w.touch(i);
            }
        }
        let template = &d["spec"]["template"];
        w.new = w
            .rss
            .iter()
            .position(|s| super::equal_ignore_hash(&s.obj["spec"]["template"], template));
        w
    }

    /// The old ReplicaSets: every slot but the new one, oldest first.
    pub fn olds(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    /// Every slot.
    pub fn all(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    /// The slots among `of` with replicas (`FilterActiveReplicaSets`).
    pub fn active(&self, of: &[usize]) -> Vec<usize> {
        of.iter().copied().filter(|i| self.spec(*i) > 0).collect()
    }

    pub fn obj(&self, i: usize) -> &Value {
        &self.rss[i].obj
    }

    pub fn name(&self, i: usize) -> &str {
        meta::name(&self.rss[i].obj)
    }

    /// `spec.replicas` (the API's default is 1).
    pub fn spec(&self, i: usize) -> i64 {
        spec_replicas(&self.rss[i].obj)
    }

    /// A `status` counter (0 when absent).
    pub fn st(&self, i: usize, field: &str) -> i64 {
        self.rss[i].obj["status"][field].as_i64().unwrap_or(0)
    }

    /// The sum of `spec.replicas` over `of`.
    pub fn sum_spec(&self, of: &[usize]) -> i64 {
        of.iter().map(|i| self.spec(*i)).sum()
    }

    /// The pods `of` may have now: for each ReplicaSet the largest of its size, the pods
    /// its status counts and its live pods in the input (a ReplicaSet scaled down still
    /// has its pods until they are deleted). The surge bound holds on these, so the pods present, not only the sizes,
    /// never pass `replicas + maxSurge`.
    pub fn sum_present(&self, of: &[usize]) -> i64 {
        of.iter()
            .map(|i| {
                let uid = meta::uid(self.obj(*i));
                // The pods themselves: a status written before a restart, or not yet
                // rewritten, may count fewer than there are.
                let live = self
                    .input
                    .pods
                    .iter()
                    .filter(|p| {
                        meta::controller_ref(p).and_then(|r| r["uid"].as_str()) == Some(uid)
                            && !meta::is_deleting(p)
                            && !meta::pod_terminated(p)
                    })
                    .count() as i64;
                self.spec(*i).max(self.st(*i, "replicas")).max(live)
            })
            .sum()
    }

    /// The sum of a status counter over `of`.
    pub fn sum_st(&self, of: &[usize], field: &str) -> i64 {
        of.iter().map(|i| self.st(*i, field)).sum()
    }

    /// Records that slot `i` changed.
    pub fn touch(&mut self, i: usize) {
        self.rss[i].dirty = true;
        if !self.touched.contains(&i) {
            self.touched.push(i);
        }
    }

    /// Adds a created ReplicaSet.
    pub fn push_created(&mut self, obj: Value) -> usize {
        self.rss.push(Slot {
            obj,
            created: true,
            dirty: true,
        });
        let i = self.rss.len() - 1;
        self.touch(i);
        i
    }

    pub fn event(&mut self, warning: bool, reason: &str, message: String) {
        let involved = ObjectRef::to(self.d, "apps/v1", "Deployment");
        self.events.push(if warning {
            EventSpec::warning(involved, reason, message)
        } else {
            EventSpec::normal(involved, reason, message)
        });
    }

    /// Kubernetes' `scaleReplicaSet`: sets `spec.replicas` and the replicas annotations when
    /// either differs; an event when the size changed. Whether the size changed.
    pub fn scale(&mut self, i: usize, new_scale: i64, scaling: Option<Scaling>) -> bool {
        let old = self.spec(i);
        let size_changed = old != new_scale;
        let (desired, max) = (self.p.replicas, self.p.max_replicas());
        let obj = &mut self.rss[i].obj;
        let annotations_changed = set_replicas_annotations(obj, desired, max);
        if size_changed || annotations_changed {
            meta::object_at(obj, "spec").insert("replicas".into(), json!(new_scale));
            self.touch(i);
        }
        if size_changed {
            let verb = match scaling {
                Some(Scaling::Up) => "up",
                _ => "down",
            };
            let message = format!(
                "Scaled {verb} replica set {} from {old} to {new_scale}",
                self.name(i)
            );
            self.event(false, "ScalingReplicaSet", message);
        }
        size_changed
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: nothing when the size is right.
    pub fn scale_to(&mut self, i: usize, new_scale: i64) -> bool {
        let old = self.spec(i);
        if old == new_scale {
            return false;
        }
        let scaling = if old < new_scale {
            Scaling::Up
        } else {
            Scaling::Down
        };
        self.scale(i, new_scale, Some(scaling))
    }

    /// Copies the Deployment's annotations onto a (new) ReplicaSet, bumps its revision to
    /// `new_revision` when lower (keeping the old one in the revision history), and on a
    /// ReplicaSet about to be created sets the replicas annotations
    /// (`SetNewReplicaSetAnnotations`). Whether anything changed.
    pub fn set_new_rs_annotations(&self, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
        let mut changed = false;
        if let Some(annotations) = self.d["metadata"]["annotations"].as_object() {
            for (k, v) in annotations {
                let Some(v) = v.as_str() else { continue };
                if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) || meta::annotation(rs, k) == Some(v) {
                    continue;
                }
                meta::set_annotation(rs, k, Some(v));
                changed = true;
            }
        }
        let old_revision = meta::annotation(rs, REVISION).map(str::to_string);
        let old_int = match old_revision.as_deref() {
            None | Some("") => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) => n,
                // Kubernetes leaves a ReplicaSet with a malformed revision alone.
                Err(_) => return changed,
            },
        };
        if old_int < new_revision {
            meta::set_annotation(rs, REVISION, Some(&new_revision.to_string()));
            changed = true;
            if let Some(old) = old_revision.as_deref().filter(|s| !s.is_empty()) {
                append_revision_history(rs, old);
            }
        }
        if !exists && set_replicas_annotations(rs, self.p.replicas, self.p.max_replicas()) {
            changed = true;
        }
        changed
    }

    /// Sets the Deployment's revision annotation (`SetDeploymentRevision`).
    pub fn set_deployment_revision(&mut self, revision: &str) {
        if revision.is_empty() || meta::annotation(&self.dm, REVISION) == Some(revision) {
            return;
        }
        meta::set_annotation(&mut self.dm, REVISION, Some(revision));
        self.dm_dirty = true;
    }

    /// Replaces the Deployment's pod template (an automatic rollback).
    pub fn set_deployment_template(&mut self, template: Value, change_cause: Option<&str>) {
        meta::object_at(&mut self.dm, "spec").insert("template".into(), template);
        if let Some(cause) = change_cause {
            meta::set_annotation(&mut self.dm, super::CHANGE_CAUSE, Some(cause));
        }
        self.dm_dirty = true;
    }

    /// The plan: releases, then creates and updates of ReplicaSets in the order the steps
    /// made them, the history cleanup's deletes, the status (when it differs), the
    /// Deployment's own update, and last the events.
    pub fn finish(self) -> Plan {
        let mut actions = Vec::new();
        for obj in self.released {
            actions.push(DeploymentAction::UpdateReplicaSet(obj));
        }
        for i in &self.touched {
            let slot = &self.rss[*i];
            if self.deletes.contains(i) {
                continue;
            }
            if slot.created {
                let mut obj = slot.obj.clone();
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
                actions.push(DeploymentAction::CreateReplicaSet(obj));
            } else if slot.dirty {
                actions.push(DeploymentAction::UpdateReplicaSet(slot.obj.clone()));
            }
        }
        for i in &self.deletes {
            let obj = &self.rss[*i].obj;
            actions.push(DeploymentAction::DeleteReplicaSet {
                name: meta::name(obj).to_string(),
                uid: meta::uid(obj).to_string(),
                resource_version: meta::resource_version(obj).to_string(),
            });
        }
        if let Some(status) = self.status_out {
            if !super::status::status_equal(&status, &self.d["status"]) {
                let mut obj = self.d.clone();
                obj["status"] = status;
                actions.push(DeploymentAction::UpdateStatus(obj));
            }
        }
        if self.dm_dirty {
            actions.push(DeploymentAction::UpdateDeployment(self.dm));
        }
        actions.extend(self.events.into_iter().map(DeploymentAction::Event));
        Plan {
            actions,
            requeue_after: self.requeue,
        }
    }
}

/// `spec.replicas` of a ReplicaSet (the API's default is 1).
pub(super) fn spec_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// A ReplicaSet's revision (`Revision`): 0 without the annotation, `None` when malformed.
pub(super) fn revision(rs: &Value) -> Option<i64> {
    match meta::annotation(rs, REVISION) {
        None => Some(0),
        Some(s) => s.parse().ok(),
    }
}

/// Oldest first, by `creationTimestamp` then name (`ReplicaSetsByCreationTimestamp`); a
/// ReplicaSet without a timestamp (not created yet) sorts last.
pub(super) fn by_creation(a: &Value, b: &Value) -> Ordering {
    let t = |v: &Value| meta::created_at(v).unwrap_or(i64::MAX);
    t(a).cmp(&t(b))
        .then_with(|| meta::name(a).cmp(meta::name(b)))
}

/// Sets `desired-replicas` and `max-replicas`; whether either changed.
pub(super) fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if meta::annotation(rs, key) != Some(value.as_str()) {
            meta::set_annotation(rs, key, Some(&value));
            changed = true;
        }
    }
    changed
}

/// An integer annotation (`None` when absent or malformed).
pub(super) fn int_annotation(rs: &Value, key: &str) -> Option<i64> {
    meta::annotation(rs, key).and_then(|s| s.parse().ok())
}

/// Appends `old` to the revision history annotation, dropping its oldest entries to stay
/// within [`MAX_REVISION_HISTORY_CHARS`].
fn append_revision_history(rs: &mut Value, old: &str) {
    let history = meta::annotation(rs, REVISION_HISTORY)
        .unwrap_or("")
        .to_string();
    if history.is_empty() {
        meta::set_annotation(rs, REVISION_HISTORY, Some(old));
        return;
    }
    let mut entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total <= MAX_REVISION_HISTORY_CHARS {
        entries = entries.split_off(start);
        entries.push(old);
        meta::set_annotation(rs, REVISION_HISTORY, Some(&entries.join(",")));
    }
}

/// Removes every owner reference to `uid`.
fn remove_owner(obj: &mut Value, uid: &str) {
    if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
        refs.retain(|r| r["uid"].as_str() != Some(uid));
    }
}
