//! The rollout steps on the working state: finding or creating the new ReplicaSet
//! (`getNewReplicaSet`), the rolling update (`reconcileNewReplicaSet`,
//! `reconcileOldReplicaSets`), the recreate strategy, proportional scaling (`scale`) and the
//! revision history cleanup (`cleanupDeployment`).

use std::cmp::Reverse;

use serde_json::{json, Value};

use super::status::{deployment_complete, set_condition, PROGRESSING};
use super::work::{by_creation, int_annotation, revision, Scaling, Work};
use super::{reason, template_hash, DESIRED_REPLICAS, MAX_REPLICAS, POD_TEMPLATE_HASH, REVISION};
use crate::meta;

/// A ReplicaSet already holds the new ReplicaSet's name but has another template: the
/// collision count was bumped in the working status, and the step stops.
#[derive(Debug)]
pub(super) struct Collision;

impl Work<'_> {
    /// Kubernetes' `getNewReplicaSet`: syncs the existing new ReplicaSet's annotations
    /// (copied from the Deployment, the revision bumped past the old ones) and
    /// `minReadySeconds` and the Deployment's revision, or (with `create`) creates it with
    /// as many replicas as the strategy allows now. `sync_meta` false (a Deployment being
    /// deleted) only finds it.
    pub fn sync_new_rs(
        &mut self,
        create: bool,
        sync_meta: bool,
    ) -> Result<Option<usize>, Collision> {
        let max_old_revision = self
            .olds()
            .into_iter()
            .filter_map(|i| revision(self.obj(i)))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        let deadline = self.p.progress_deadline.is_some();
        if let Some(i) = self.new {
            if sync_meta {
                let mut rs = self.rss[i].obj.clone();
                let mut changed = self.set_new_rs_annotations(&mut rs, new_revision, true);
                if rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0) != self.p.min_ready_seconds {
                    meta::object_at(&mut rs, "spec")
                        .insert("minReadySeconds".into(), json!(self.p.min_ready_seconds));
                    changed = true;
                }
                if changed {
                    self.rss[i].obj = rs;
                    self.touch(i);
                }
                let rev = meta::annotation(self.obj(i), REVISION)
                    .unwrap_or("")
                    .to_string();
                self.set_deployment_revision(&rev);
            }
            if deadline && meta::condition(&self.ds, PROGRESSING).is_none() {
                let message = format!("Found new replica set {:?}", self.name(i));
                let now = self.now;
                set_condition(
                    &mut self.ds,
                    PROGRESSING,
                    "True",
                    reason::FOUND_NEW_RS,
                    &message,
                    now,
                );
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }

        let d = self.d;
        let collision_count = self.ds["status"]["collisionCount"].as_i64();
        let hash = template_hash(&d["spec"]["template"], collision_count);
        let name = format!("{}-{hash}", meta::name(d));
        if self
            .input
            .replica_sets
            .iter()
            .any(|rs| meta::name(rs) == name)
        {
            // Only a ReplicaSet with another template can hold the name: one with this
            // template would have been found as the new ReplicaSet above.
            let count = collision_count.unwrap_or(0) + 1;
            meta::object_at(&mut self.ds, "status").insert("collisionCount".into(), json!(count));
            return Err(Collision);
        }

        let mut template = super::hash::without_hash_label(&d["spec"]["template"]);
        meta::object_at(&mut template, "metadata");
        meta::object_at(&mut template["metadata"], "labels")
            .insert(POD_TEMPLATE_HASH.into(), json!(hash));
        let mut selector = d["spec"]["selector"].clone();
        meta::object_at(&mut selector, "matchLabels").insert(POD_TEMPLATE_HASH.into(), json!(hash));
        let current: i64 = self.sum_present(&self.all());
        let replicas = self.new_rs_new_replicas(0, current);
        let mut metadata = json!({
            "name": name,
            "ownerReferences": [meta::controller_ref_to(d, "apps/v1", "Deployment")],
            "labels": template["metadata"]["labels"].clone(),
        });
        if !meta::namespace(d).is_empty() {
            metadata["namespace"] = json!(meta::namespace(d));
        }
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "minReadySeconds": self.p.min_ready_seconds,
                "selector": selector,
                "template": template,
            },
        });
        self.set_new_rs_annotations(&mut rs, new_revision, false);
        let i = self.push_created(rs);
        self.new = Some(i);
        if replicas > 0 {
            self.event(
                false,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
        }
        self.set_deployment_revision(&new_revision.to_string());
        if deadline {
            let message = format!("Created new replica set {name:?}");
            let now = self.now;
            set_condition(
                &mut self.ds,
                PROGRESSING,
                "True",
                reason::NEW_RS_CREATED,
                &message,
                now,
            );
        }
        Ok(Some(i))
    }

    /// Kubernetes' `NewRSNewReplicas`: the new ReplicaSet's size now, from its size
    /// `new_spec` and `current`, the replicas of every ReplicaSet. navarch counts in
    /// `current` the pods a ReplicaSet still has beyond its size (Kubernetes counts sizes
    /// only, so its pods may pass the surge for a moment while a scale-down is under way).
    fn new_rs_new_replicas(&self, new_spec: i64, current: i64) -> i64 {
        let replicas = self.p.replicas;
        if self.p.recreate {
            return replicas;
        }
        let max_total = replicas + self.p.max_surge;
        if current >= max_total {
            return new_spec;
        }
        new_spec + (max_total - current).min(replicas - new_spec)
    }

    /// Whether an active ReplicaSet was sized for another `spec.replicas`
    /// (`isScalingEvent`).
    pub fn is_scaling_event(&self) -> bool {
        self.active(&self.all()).into_iter().any(|i| {
            int_annotation(self.obj(i), DESIRED_REPLICAS).is_some_and(|d| d != self.p.replicas)
        })
    }

    /// Kubernetes' `sync`, for a paused Deployment or a scaling event: no new ReplicaSet,
    /// the existing ones scaled to the new size, the history cleaned up when paused.
    pub fn sync(&mut self) {
        // Without `create` there is no collision.
        let _ = self.sync_new_rs(false, true);
        self.scale_deployment();
        if self.p.paused {
            self.cleanup();
        }
        self.sync_deployment_status();
    }

    /// Kubernetes' `scale`: the only active ReplicaSet (or the newest) takes all the
    /// replicas; a saturated new ReplicaSet scales the old ones to zero; otherwise (rolling
    /// update) the difference to `replicas + maxSurge` is spread over the active
    /// ReplicaSets in proportion to their size, by the `max-replicas` annotation they were
    /// sized for.
    pub fn scale_deployment(&mut self) {
        let replicas = self.p.replicas;
        let olds = self.olds();
        if let Some(i) = self.active_or_latest(&olds) {
            if self.spec(i) == replicas {
                // Kubernetes leaves the annotations stale here; keep them right.
                self.scale(i, replicas, None);
            } else {
                self.scale_to(i, replicas);
            }
            return;
        }
        if self.is_saturated() {
            for i in self.active(&olds) {
                self.scale_to(i, 0);
            }
            return;
        }
        if self.p.recreate {
            return;
        }
        let mut all = olds.clone();
        all.extend(self.new);
        let mut all = self.active(&all);
        let allowed = if replicas > 0 {
            self.p.max_replicas()
        } else {
            0
        };
        let to_add = allowed - self.sum_spec(&all);
        let scaling = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                // Larger first; between equals, newer first.
                all.sort_by(|a, b| {
                    self.spec(*b)
                        .cmp(&self.spec(*a))
                        .then_with(|| by_creation(self.obj(*b), self.obj(*a)))
                });
                Some(Scaling::Up)
            }
            std::cmp::Ordering::Less => {
                // Larger first; between equals, older first.
                all.sort_by(|a, b| {
                    self.spec(*b)
                        .cmp(&self.spec(*a))
                        .then_with(|| by_creation(self.obj(*a), self.obj(*b)))
                });
                Some(Scaling::Down)
            }
            std::cmp::Ordering::Equal => None,
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            if to_add != 0 {
                let proportion = self.proportion(i, to_add, added);
                sizes.push(self.spec(i) + proportion);
                added += proportion;
            } else {
                sizes.push(self.spec(i));
            }
        }
        for (k, &i) in all.iter().enumerate() {
            if k == 0 && to_add != 0 {
                // The leftover goes to (or comes from) the largest.
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale(i, sizes[k], scaling);
        }
    }

    /// `FindActiveOrLatest`: the only active ReplicaSet, or the newest when none is active,
    /// or nothing when several are.
    fn active_or_latest(&self, olds: &[usize]) -> Option<usize> {
        if self.new.is_none() && olds.is_empty() {
            return None;
        }
        let mut newest_first = olds.to_vec();
        newest_first.sort_by(|a, b| by_creation(self.obj(*b), self.obj(*a)));
        let mut all = newest_first.clone();
        all.extend(self.new);
        let active = self.active(&all);
        match active.len() {
            0 => self.new.or_else(|| newest_first.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `IsSaturated`: the new ReplicaSet is sized for and has all the replicas available.
    fn is_saturated(&self) -> bool {
        let Some(i) = self.new else { return false };
        let replicas = self.p.replicas;
        int_annotation(self.obj(i), DESIRED_REPLICAS) == Some(replicas)
            && self.spec(i) == replicas
            && self.st(i, "availableReplicas") == replicas
    }

    /// `GetReplicaSetProportion`: what slot `i` gains (or loses) of `to_add`, `added` being
    /// spread already.
    fn proportion(&self, i: usize, to_add: i64, added: i64) -> i64 {
        let size = self.spec(i);
        if size == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(i);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `getReplicaSetFraction`: slot `i`'s size scaled from the deployment size it was sized
    /// for to the new one, minus its size (rounded half away from zero).
    fn fraction(&self, i: usize) -> i64 {
        let size = self.spec(i);
        if self.p.replicas == 0 {
            return -size;
        }
        let max_now = self.p.max_replicas();
        let before = match int_annotation(self.obj(i), MAX_REPLICAS) {
            Some(n) if n != 0 => n,
            _ => self.d["status"]["replicas"].as_i64().unwrap_or(0),
        };
        if before <= 0 {
            return 0;
        }
        let scaled = (2 * size * max_now + before) / (2 * before);
        scaled - size
    }

    /// Kubernetes' `rolloutRolling`: scale the new ReplicaSet up if the surge allows, else
    /// scale old ones down if availability allows, else clean the history up once complete;
    /// then the status.
    pub fn rollout_rolling(&mut self) -> Result<(), Collision> {
        let Some(new) = self.sync_new_rs(true, true)? else {
            return Ok(());
        };
        if !self.reconcile_new_rs(new) {
            let scaled_down = self.reconcile_old_rss(new);
            let generation = meta::generation(self.d);
            if !scaled_down && deployment_complete(self.p.replicas, &self.d["status"], generation) {
                self.cleanup();
            }
        }
        self.sync_rollout_status();
        Ok(())
    }

    /// `reconcileNewReplicaSet`: whether the new ReplicaSet was scaled.
    fn reconcile_new_rs(&mut self, new: usize) -> bool {
        let replicas = self.p.replicas;
        let size = self.spec(new);
        if size == replicas {
            return false;
        }
        if size > replicas {
            return self.scale_to(new, replicas);
        }
        let current = self.sum_present(&self.all());
        let count = self.new_rs_new_replicas(size, current);
        self.scale_to(new, count)
    }

    /// `reconcileOldReplicaSets`: whether old ReplicaSets were scaled down.
    fn reconcile_old_rss(&mut self, new: usize) -> bool {
        let olds = self.active(&self.olds());
        if self.sum_spec(&olds) == 0 {
            return false;
        }
        let all_pods = self.sum_spec(&self.all());
        let min_available = self.p.min_available();
        let new_unavailable = self.spec(new) - self.st(new, "availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let Some(cleaned) = self.cleanup_unhealthy(&olds, max_scaled_down) else {
            return false;
        };
        let scaled = self.scale_down_old_for_rolling(&olds, new);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: scale old ReplicaSets down by their unavailable replicas,
    /// oldest first, at most `max` in all. `None` when a ReplicaSet reports more available
    /// replicas than it has (a stale status): Kubernetes stops the scale-down there.
    fn cleanup_unhealthy(&mut self, olds: &[usize], max: i64) -> Option<i64> {
        let mut total = 0;
        for &i in olds {
            if total >= max {
                break;
            }
            let size = self.spec(i);
            let available = self.st(i, "availableReplicas");
            if size == 0 || size == available {
                continue;
            }
            let down = (max - total).min(size - available);
            if down < 0 {
                return None;
            }
            self.scale_to(i, size - down);
            total += down;
        }
        Some(total)
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: scale old ReplicaSets down, oldest first,
    /// by the available replicas above `replicas - maxUnavailable`.
    fn scale_down_old_for_rolling(&mut self, olds: &[usize], new: usize) -> i64 {
        let min_available = self.p.min_available();
        let mut all = olds.to_vec();
        all.push(new);
        let available = self.sum_st(&all, "availableReplicas");
        if available <= min_available {
            return 0;
        }
        let to_scale_down = available - min_available;
        let mut total = 0;
        for &i in olds {
            if total >= to_scale_down {
                break;
            }
            let size = self.spec(i);
            if size == 0 {
                continue;
            }
            let down = size.min(to_scale_down - total);
            self.scale_to(i, size - down);
            total += down;
        }
        total
    }

    /// Kubernetes' `rolloutRecreate`: old ReplicaSets to zero; once none of their pods is
    /// left (ended pods aside), the new ReplicaSet created or scaled to `replicas`.
    pub fn rollout_recreate(&mut self) -> Result<(), Collision> {
        let mut new = self.sync_new_rs(false, true)?;
        let olds = self.olds();
        let mut scaled_down = false;
        for i in self.active(&olds) {
            scaled_down |= self.scale_to(i, 0);
        }
        if scaled_down || self.old_pods_running(&olds) {
            self.sync_rollout_status();
            return Ok(());
        }
        if new.is_none() {
            new = self.sync_new_rs(true, true)?;
        }
        if let Some(new) = new {
            self.scale_to(new, self.p.replicas);
        }
        let generation = meta::generation(self.d);
        if deployment_complete(self.p.replicas, &self.d["status"], generation) {
            self.cleanup();
        }
        self.sync_rollout_status();
        Ok(())
    }

    /// `oldPodsRunning`: old ReplicaSets report pods, or a pod of one is still there and
    /// has not ended (terminating pods count).
    fn old_pods_running(&self, olds: &[usize]) -> bool {
        if self.sum_st(olds, "replicas") > 0 {
            return true;
        }
        let uids: Vec<&str> = olds.iter().map(|i| meta::uid(self.obj(*i))).collect();
        self.input.pods.iter().any(|pod| {
            meta::controller_ref(pod)
                .and_then(|r| r["uid"].as_str())
                .is_some_and(|u| !u.is_empty() && uids.contains(&u))
                && !meta::pod_terminated(pod)
        })
    }

    /// `cleanupDeployment`: beyond `revisionHistoryLimit` old ReplicaSets, the oldest
    /// revisions that are scaled to zero, have no pods, have been observed by their
    /// controller and are not being deleted are deleted. ReplicaSets this plan also
    /// updates wait for the next reconcile (the update would break the delete's
    /// resourceVersion precondition).
    pub fn cleanup(&mut self) {
        let Some(limit) = self.p.history_limit else {
            return;
        };
        let mut cleanable: Vec<usize> = self
            .olds()
            .into_iter()
            .filter(|i| !self.rss[*i].created && !meta::is_deleting(self.obj(*i)))
            .collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return;
        }
        cleanable.sort_by_key(|i| {
            let rs = self.obj(*i);
            (
                revision(rs).unwrap_or(0),
                meta::created_at(rs).unwrap_or(i64::MAX),
                meta::name(rs).to_string(),
            )
        });
        for &i in cleanable.iter().take(diff as usize) {
            let rs = self.obj(i);
            let observed = rs["status"]["observedGeneration"].as_i64().unwrap_or(0);
            if self.st(i, "replicas") != 0
                || self.spec(i) != 0
                || meta::generation(rs) > observed
                || self.rss[i].dirty
            {
                continue;
            }
            self.deletes.push(i);
        }
    }

    /// The ReplicaSet an automatic rollback returns to: the old one with the highest
    /// revision (then the newest) that was once complete (`navarch.io/became-available`).
    pub fn rollback_target(&self) -> Option<usize> {
        self.olds()
            .into_iter()
            .filter(|i| {
                let rs = self.obj(*i);
                !self.rss[*i].created
                    && !meta::is_deleting(rs)
                    && meta::annotation(rs, super::BECAME_AVAILABLE) == Some("true")
            })
            .max_by_key(|i| {
                let rs = self.obj(*i);
                (
                    revision(rs).unwrap_or(0),
                    meta::created_at(rs).unwrap_or(0),
                    Reverse(meta::name(rs).to_string()),
                )
            })
    }
}

/// The template an automatic rollback writes into the Deployment: the ReplicaSet's, without
/// the `pod-template-hash` label.
pub(super) fn rollback_template(rs: &Value) -> Value {
    super::hash::without_hash_label(&rs["spec"]["template"])
}
