//! A Deployment's status: the counts from its ReplicaSets, the `Available` and
//! `Progressing` conditions (progress, completion, the progress deadline, pausing), the
//! automatic rollback on an exceeded deadline, and when to look again.

use serde_json::{json, Map, Value};

use super::rollout::rollback_template;
use super::work::{revision, Work};
use super::{reason, AUTO_ROLLBACK, BECAME_AVAILABLE, CHANGE_CAUSE};
use crate::meta;

pub(super) const PROGRESSING: &str = "Progressing";
pub(super) const AVAILABLE: &str = "Available";
pub(super) const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status counters Kubernetes omits when zero.
const COUNTERS: &[&str] = &[
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
];

/// Kubernetes' `SetDeploymentCondition`: nothing when the condition already has this status
/// and reason; otherwise the condition replaced, its `lastTransitionTime` kept when the
/// status holds, `lastUpdateTime` now.
pub(super) fn set_condition(
    obj: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: i64,
) {
    if let Some(c) = meta::condition(obj, type_) {
        if c["status"].as_str() == Some(status) && c["reason"].as_str() == Some(reason) {
            return;
        }
    }
    meta::set_condition(obj, type_, status, reason, message, now, true);
}

/// `DeploymentComplete`: every replica is updated and available, and nothing else runs.
pub(super) fn deployment_complete(replicas: i64, status: &Value, generation: i64) -> bool {
    let n = |f: &str| status[f].as_i64().unwrap_or(0);
    n("updatedReplicas") == replicas
        && n("replicas") == replicas
        && n("availableReplicas") == replicas
        && n("observedGeneration") >= generation
}

/// `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones,
/// than the stored status says.
fn deployment_progressing(old: &Value, new: &Value) -> bool {
    let n = |s: &Value, f: &str| s[f].as_i64().unwrap_or(0);
    let old_old = n(old, "replicas") - n(old, "updatedReplicas");
    let new_old = n(new, "replicas") - n(new, "updatedReplicas");
    n(new, "updatedReplicas") > n(old, "updatedReplicas")
        || new_old < old_old
        || n(new, "readyReplicas") > n(old, "readyReplicas")
        || n(new, "availableReplicas") > n(old, "availableReplicas")
}

/// Whether two statuses say the same, an absent counter being zero.
pub(super) fn status_equal(a: &Value, b: &Value) -> bool {
    fn norm(s: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(m) = s.as_object() {
            for (k, v) in m {
                let zero_counter = COUNTERS.contains(&k.as_str()) && v.as_i64() == Some(0);
                let empty_list = v.as_array().is_some_and(Vec::is_empty);
                if v.is_null() || zero_counter || empty_list {
                    continue;
                }
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
    norm(a) == norm(b)
}

/// Whether the Progressing condition reports a failure of the rollout `subject` (`ReplicaSet
/// "web-abc"`) that stays until the template changes or the rollout completes.
fn failure_of(cond: &Value, subject: &str) -> bool {
    cond["status"].as_str() == Some("False")
        && matches!(
            cond["reason"].as_str(),
            Some(reason::TIMED_OUT | reason::AUTO_ROLLBACK)
        )
        && cond["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("{subject} ")))
}

impl Work<'_> {
    /// `checkPausedConditions`: Progressing Unknown with `DeploymentPaused` on pausing and
    /// `DeploymentResumed` on resuming, unless a lack of progress was reported.
    pub fn check_paused_conditions(&mut self) {
        if self.p.progress_deadline.is_none() {
            return;
        }
        let cond = meta::condition(&self.ds, PROGRESSING);
        let cond_reason = cond.and_then(|c| c["reason"].as_str());
        if matches!(cond_reason, Some(reason::TIMED_OUT | reason::AUTO_ROLLBACK)) {
            return;
        }
        let paused_exists = cond_reason == Some(reason::PAUSED);
        let now = self.now;
        if self.p.paused && !paused_exists {
            let (r, m) = (reason::PAUSED, "Deployment is paused");
            set_condition(&mut self.ds, PROGRESSING, "Unknown", r, m, now);
        } else if !self.p.paused && paused_exists {
            let (r, m) = (reason::RESUMED, "Deployment is resumed");
            set_condition(&mut self.ds, PROGRESSING, "Unknown", r, m, now);
        }
    }

    /// `calculateStatus`: the counts from the ReplicaSets (as this plan leaves their
    /// specs), the conditions so far, and `Available`. Held as `{"status": ...}`.
    fn calculate_status(&self) -> Value {
        let all = self.all();
        let available = self.sum_st(&all, "availableReplicas");
        let unavailable = (self.sum_spec(&all) - available).max(0);
        let mut st = Map::new();
        let mut put = |k: &str, v: i64| {
            if v != 0 {
                st.insert(k.into(), json!(v));
            }
        };
        put("observedGeneration", meta::generation(self.d));
        put("replicas", self.sum_st(&all, "replicas"));
        put(
            "updatedReplicas",
            self.new.map_or(0, |i| self.st(i, "replicas")),
        );
        put("readyReplicas", self.sum_st(&all, "readyReplicas"));
        put("availableReplicas", available);
        put("unavailableReplicas", unavailable);
        let old = &self.ds["status"];
        if old["collisionCount"].is_number() {
            st.insert("collisionCount".into(), old["collisionCount"].clone());
        }
        if old["conditions"].is_array() {
            st.insert("conditions".into(), old["conditions"].clone());
        }
        let mut ns = json!({ "status": st });
        if available >= self.p.min_available() {
            let (r, m) = (
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.",
            );
            set_condition(&mut ns, AVAILABLE, "True", r, m, self.now);
        } else {
            let (r, m) = (
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
            );
            set_condition(&mut ns, AVAILABLE, "False", r, m, self.now);
        }
        ns
    }

    /// `syncDeploymentStatus`: the counts and `Available`, no progress estimate.
    pub fn sync_deployment_status(&mut self) {
        let ns = self.calculate_status();
        self.finish_status(ns);
    }

    /// The rollout's subject in condition messages.
    fn subject(&self) -> String {
        match self.new {
            Some(i) => format!("ReplicaSet {:?}", self.name(i)),
            None => format!("Deployment {:?}", meta::name(self.d)),
        }
    }

    /// `syncRolloutStatus`: the counts, then the Progressing condition (complete,
    /// progressing, or past its deadline), replica failures, the automatic rollback, and the
    /// requeue for the deadline.
    pub fn sync_rollout_status(&mut self) {
        let mut ns = self.calculate_status();
        let now = self.now;
        let replicas = self.p.replicas;
        let generation = meta::generation(self.d);
        let subject = self.subject();
        let Some(deadline) = self.p.progress_deadline else {
            meta::remove_condition(&mut ns, PROGRESSING);
            self.replica_failures(&mut ns);
            self.finish_status(ns);
            return;
        };
        let current = meta::condition(&self.ds, PROGRESSING).cloned();
        let n = |s: &Value, f: &str| s["status"][f].as_i64().unwrap_or(0);
        let is_complete_deployment = n(&ns, "replicas") == n(&ns, "updatedReplicas")
            && current
                .as_ref()
                .is_some_and(|c| c["reason"].as_str() == Some(reason::NEW_RS_AVAILABLE));
        if !is_complete_deployment {
            if deployment_complete(replicas, &ns["status"], generation) {
                let message = format!("{subject} has successfully progressed.");
                set_condition(
                    &mut ns,
                    PROGRESSING,
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    &message,
                    now,
                );
            } else if current.as_ref().is_some_and(|c| failure_of(c, &subject)) {
                // The deadline passed for this template: it stays failed until the template
                // changes or the rollout completes.
            } else if deployment_progressing(&self.d["status"], &ns["status"]) {
                // Progress bumps lastUpdateTime even when nothing else changes.
                let transition = current
                    .as_ref()
                    .filter(|c| c["status"].as_str() == Some("True"))
                    .map(|c| c["lastTransitionTime"].clone());
                meta::remove_condition(&mut ns, PROGRESSING);
                let message = format!("{subject} is progressing.");
                meta::set_condition(
                    &mut ns,
                    PROGRESSING,
                    "True",
                    reason::RS_UPDATED,
                    &message,
                    now,
                    true,
                );
                if let Some(t) = transition {
                    if let Some(c) = progressing_mut(&mut ns) {
                        c["lastTransitionTime"] = t;
                    }
                }
            } else if self.timed_out(&ns, deadline) {
                let message = format!("{subject} has timed out progressing.");
                set_condition(
                    &mut ns,
                    PROGRESSING,
                    "False",
                    reason::TIMED_OUT,
                    &message,
                    now,
                );
            }
        }
        self.replica_failures(&mut ns);
        self.auto_rollback(&mut ns, &subject);
        self.requeue_stuck(&ns, deadline, &subject);
        self.finish_status(ns);
    }

    /// `DeploymentTimedOut` on the new status.
    fn timed_out(&self, ns: &Value, deadline: i64) -> bool {
        let Some(c) = meta::condition(ns, PROGRESSING) else {
            return false;
        };
        match c["reason"].as_str() {
            Some(reason::NEW_RS_AVAILABLE) => false,
            Some(reason::TIMED_OUT) => true,
            _ => c["lastUpdateTime"]
                .as_str()
                .and_then(meta::parse_rfc3339)
                .is_some_and(|from| from + deadline < self.now),
        }
    }

    /// The ReplicaSets' `ReplicaFailure` conditions (the new one's first) copied to the
    /// Deployment, or removed when none has one.
    fn replica_failures(&self, ns: &mut Value) {
        let failures = |i: usize| -> Vec<Value> {
            self.obj(i)["status"]["conditions"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter(|c| c["type"].as_str() == Some(REPLICA_FAILURE))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut found = self.new.map(failures).unwrap_or_default();
        if found.is_empty() {
            found = self.all().into_iter().flat_map(failures).collect();
        }
        let Some(f) = found.first() else {
            meta::remove_condition(ns, REPLICA_FAILURE);
            return;
        };
        let (status, why) = (
            f["status"].as_str().unwrap_or(""),
            f["reason"].as_str().unwrap_or(""),
        );
        let existing = meta::condition(ns, REPLICA_FAILURE).cloned();
        if existing.as_ref().is_some_and(|c| {
            c["status"].as_str() == Some(status) && c["reason"].as_str() == Some(why)
        }) {
            return;
        }
        let mut transition = f["lastTransitionTime"].clone();
        if let Some(c) = existing.filter(|c| c["status"].as_str() == Some(status)) {
            transition = c["lastTransitionTime"].clone();
        }
        meta::remove_condition(ns, REPLICA_FAILURE);
        let cond = json!({
            "type": REPLICA_FAILURE,
            "status": status,
            "reason": why,
            "message": f["message"].clone(),
            "lastUpdateTime": f["lastTransitionTime"].clone(),
            "lastTransitionTime": transition,
        });
        if let Some(list) = ns["status"]["conditions"].as_array_mut() {
            list.push(cond);
        } else {
            ns["status"]["conditions"] = json!([cond]);
        }
    }

    /// navarch's automatic rollback: a Deployment annotated `navarch.io/auto-rollback:
    /// "true"` whose rollout passed its deadline goes back to the template of the latest
    /// old ReplicaSet that was once complete; Progressing says `AutoRollback`.
    fn auto_rollback(&mut self, ns: &mut Value, subject: &str) {
        if self.p.paused || meta::annotation(self.d, AUTO_ROLLBACK) != Some("true") {
            return;
        }
        let Some(cond) = meta::condition(ns, PROGRESSING).cloned() else {
            return;
        };
        if !failure_of(&cond, subject) {
            return;
        }
        let Some(target) = self.rollback_target() else {
            return;
        };
        let rs = self.obj(target);
        let rev = revision(rs).unwrap_or(0);
        let template = rollback_template(rs);
        let cause = meta::annotation(rs, CHANGE_CAUSE).map(str::to_string);
        let already = cond["reason"].as_str() == Some(reason::AUTO_ROLLBACK);
        let message =
            format!("{subject} has timed out progressing; rolled back to revision {rev}.");
        set_condition(
            ns,
            PROGRESSING,
            "False",
            reason::AUTO_ROLLBACK,
            &message,
            self.now,
        );
        if !already {
            let name = meta::name(self.d).to_string();
            self.event(
                true,
                "DeploymentRollback",
                format!(
                    "Rolled back deployment {name:?} to revision {rev}: progress deadline exceeded"
                ),
            );
        }
        self.set_deployment_template(template, cause.as_deref());
    }

    /// `requeueStuckDeployment`: a rollout that may still pass its deadline is looked at
    /// again just after it.
    fn requeue_stuck(&mut self, ns: &Value, deadline: i64, subject: &str) {
        let Some(c) = meta::condition(ns, PROGRESSING) else {
            return;
        };
        let done = matches!(
            c["reason"].as_str(),
            Some(reason::NEW_RS_AVAILABLE | reason::TIMED_OUT)
        );
        if done
            || failure_of(c, subject)
            || deployment_complete(self.p.replicas, &ns["status"], meta::generation(self.d))
        {
            return;
        }
        let Some(from) = c["lastUpdateTime"].as_str().and_then(meta::parse_rfc3339) else {
            return;
        };
        self.requeue_at((from + deadline - self.now + 1).max(1));
    }

    fn requeue_at(&mut self, after: i64) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    /// Marks a complete new ReplicaSet (`navarch.io/became-available`), asks to look again
    /// when a ready pod will have been ready for `minReadySeconds`, and keeps the status to
    /// store.
    fn finish_status(&mut self, ns: Value) {
        let generation = meta::generation(self.d);
        if let Some(i) = self.new {
            let complete = deployment_complete(self.p.replicas, &ns["status"], generation);
            if complete
                && !meta::is_deleting(self.d)
                && meta::annotation(self.obj(i), BECAME_AVAILABLE) != Some("true")
            {
                meta::set_annotation(&mut self.rss[i].obj, BECAME_AVAILABLE, Some("true"));
                self.touch(i);
            }
        }
        let min_ready = self.p.min_ready_seconds;
        if min_ready > 0 {
            let uids: Vec<String> = self
                .rss
                .iter()
                .map(|s| meta::uid(&s.obj).to_string())
                .filter(|u| !u.is_empty())
                .collect();
            let soonest = self
                .input
                .pods
                .iter()
                .filter(|pod| {
                    meta::controller_ref(pod)
                        .and_then(|r| r["uid"].as_str())
                        .is_some_and(|u| uids.iter().any(|x| x == u))
                        && meta::pod_ready(pod)
                        && !meta::is_deleting(pod)
                        && !meta::pod_available(pod, min_ready, self.now)
                })
                .filter_map(|pod| {
                    meta::condition(pod, "Ready")
                        .and_then(|c| c["lastTransitionTime"].as_str())
                        .and_then(meta::parse_rfc3339)
                })
                .map(|since| (since + min_ready - self.now).max(1))
                .min();
            if let Some(after) = soonest {
                self.requeue_at(after);
            }
        }
        self.status_out = Some(ns["status"].clone());
    }
}

fn progressing_mut(ns: &mut Value) -> Option<&mut Value> {
    ns["status"]["conditions"]
        .as_array_mut()?
        .iter_mut()
        .find(|c| c["type"].as_str() == Some(PROGRESSING))
}
