//! A ReplicaSet's decisions: how many pods to create or which to delete (in Kubernetes'
//! order), which pods to adopt or release, and its status, guarded by expectations so a
//! write the caches have not shown yet is never made twice.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use navarch_model::selector::LabelSelector;
use serde_json::{json, Value};

use crate::events::{EventSpec, ObjectRef};
use crate::meta;

/// The most pods one step creates or deletes (Kubernetes' `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// How long unmet expectations hold a ReplicaSet back before it acts anyway (Kubernetes'
/// `ExpectationsTimeout`): a create whose watch event never arrives must not block forever.
pub const EXPECTATIONS_TIMEOUT: i64 = 300;

/// Writes a ReplicaSet made that the caches have not shown yet, as Kubernetes'
/// `ControllerExpectations`: pods created but not yet seen, pods deleted but still seen.
/// They outlive the ReplicaSet's actor (the controller keeps them per ReplicaSet), so an
/// actor restarted mid-scale waits for its predecessor's writes instead of repeating them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Creates not yet observed.
    pub adds: i64,
    /// Uids of pods deleted but not yet observed gone.
    pub deletes: BTreeSet<String>,
    /// When they were last set (Unix seconds).
    pub set_at: i64,
}

impl Expectations {
    /// Whether the caches reflect every write made (or the expectations timed out).
    pub fn satisfied(&self, now: i64) -> bool {
        (self.adds <= 0 && self.deletes.is_empty()) || now - self.set_at > EXPECTATIONS_TIMEOUT
    }

    /// `n` creates are about to be sent.
    pub fn expect_creations(&mut self, n: usize, now: i64) {
        self.adds = n as i64;
        self.set_at = now;
    }

    /// These pods are about to be deleted.
    pub fn expect_deletions<'a>(&mut self, uids: impl IntoIterator<Item = &'a str>, now: i64) {
        self.deletes = uids.into_iter().map(str::to_string).collect();
        self.set_at = now;
    }

    /// A create failed (or was never sent): it will not be observed.
    pub fn creation_failed(&mut self) {
        self.adds -= 1;
    }

    /// A pod controlled by this ReplicaSet appeared in the cache.
    pub fn creation_observed(&mut self) {
        self.adds -= 1;
    }

    /// A pod left the cache (or its delete failed and it will stay).
    pub fn deletion_observed(&mut self, uid: &str) {
        self.deletes.remove(uid);
    }
}

/// Everything a ReplicaSet decides from.
#[derive(Debug)]
pub struct ReplicaSetInput<'a> {
    /// The ReplicaSet as stored.
    pub replica_set: &'a Value,
    /// Pods of its namespace that it controls, or that no one controls (candidates for
    /// adoption). Others' pods may be included; they are ignored.
    pub pods: &'a [Arc<Value>],
    pub expectations: &'a Expectations,
    /// The last failure creating pods, if the previous step's creates failed (reported as
    /// the `ReplicaFailure` condition).
    pub create_failure: Option<&'a str>,
    pub now: i64,
}

/// A pod named by a decision, with the revision it was seen at (a precondition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
}

impl PodRef {
    fn of(pod: &Value) -> PodRef {
        PodRef {
            name: meta::name(pod).to_string(),
            uid: meta::uid(pod).to_string(),
            resource_version: meta::resource_version(pod).to_string(),
        }
    }
}

/// What a ReplicaSet asks the API to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaSetAction {
    /// Set ownerReferences to `owner_references` on the pod (adopt or release), at its
    /// revision.
    SetOwners {
        pod: PodRef,
        owner_references: Value,
    },
    /// Create `count` pods like `pod` (it has `generateName`); expectations are set first.
    CreatePods {
        count: usize,
        pod: Value,
    },
    /// Delete these pods, each with its uid as a precondition; expectations are set first.
    DeletePods(Vec<PodRef>),
    /// PUT this object (the ReplicaSet with its new status) to the status subresource.
    UpdateStatus(Value),
    Event(EventSpec),
}

/// The result of one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<ReplicaSetAction>,
    /// Look again after this many seconds (pods becoming available after minReadySeconds).
    pub requeue_after: Option<i64>,
}

fn desired_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

fn min_ready_seconds(rs: &Value) -> i64 {
    rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0)
}

/// A pod that counts towards replicas: not ended, not being deleted.
pub fn is_active(pod: &Value) -> bool {
    !meta::pod_terminated(pod) && !meta::is_deleting(pod)
}

/// One step of the ReplicaSet controller (Kubernetes' `syncReplicaSet`).
pub fn reconcile(input: &ReplicaSetInput) -> Plan {
    let rs = input.replica_set;
    let rs_uid = meta::uid(rs);
    let mut plan = Plan::default();
    let selector = match LabelSelector::from_object(&rs["spec"]["selector"]) {
        Ok(s) if !s.is_empty() => s,
        // An invalid or empty selector selects nothing (validation refuses both).
        _ => return plan,
    };
    let deleting = meta::is_deleting(rs);
    let owner = meta::controller_ref_to(rs, "apps/v1", "ReplicaSet");

    // Claim: adopt matching orphans, release owned pods that no longer match.
    let mut owned: Vec<&Value> = Vec::new();
    for pod in input.pods.iter().map(Arc::as_ref) {
        let matches = selector.matches(meta::labels(pod));
        match meta::controller_ref(pod) {
            Some(r) if r["uid"].as_str() == Some(rs_uid) => {
                if matches {
                    owned.push(pod);
                } else if !meta::is_deleting(pod) {
                    let others: Vec<Value> = meta::owner_refs(pod)
                        .iter()
                        .filter(|o| o["uid"].as_str() != Some(rs_uid))
                        .cloned()
                        .collect();
                    plan.actions.push(ReplicaSetAction::SetOwners {
                        pod: PodRef::of(pod),
                        owner_references: Value::Array(others),
                    });
                }
            }
            Some(_) => {}
            None => {
                // Kubernetes adopts only while the owner is not being deleted, and only live
                // pods.
                if matches && !deleting && is_active(pod) {
                    let mut refs = meta::owner_refs(pod).to_vec();
                    refs.push(owner.clone());
                    plan.actions.push(ReplicaSetAction::SetOwners {
                        pod: PodRef::of(pod),
                        owner_references: Value::Array(refs),
                    });
                    owned.push(pod);
                }
            }
        }
    }
    let active: Vec<&Value> = owned.iter().copied().filter(|p| is_active(p)).collect();

    // Manage replicas, unless the caches have not caught up with the last step's writes.
    let want = desired_replicas(rs);
    let have = active.len() as i64;
    if !deleting && input.expectations.satisfied(input.now) {
        let involved = ObjectRef::to(rs, "apps/v1", "ReplicaSet");
        if have < want {
            let count = ((want - have) as usize).min(BURST_REPLICAS);
            plan.actions.push(ReplicaSetAction::CreatePods {
                count,
                pod: pod_from_template(rs, &owner),
            });
        } else if have > want {
            let count = ((have - want) as usize).min(BURST_REPLICAS);
            let mut ranked = active.clone();
            ranked.sort_by(|a, b| deletion_order(a, b, input.now));
            let victims: Vec<PodRef> = ranked[..count].iter().map(|p| PodRef::of(p)).collect();
            for v in &victims {
                plan.actions.push(ReplicaSetAction::Event(EventSpec::normal(
                    involved.clone(),
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", v.name),
                )));
            }
            plan.actions.push(ReplicaSetAction::DeletePods(victims));
        }
    }

    // Status.
    let (status, requeue) = status_of(rs, &active, input.create_failure, input.now);
    plan.requeue_after = requeue;
    if status != rs["status"] {
        let mut updated = rs.clone();
        updated["status"] = status;
        plan.actions.push(ReplicaSetAction::UpdateStatus(updated));
    }
    plan
}

/// A new pod from the ReplicaSet's template: `generateName` `<rs>-`, the template's labels
/// and annotations, the controller reference, the template's spec.
pub fn pod_from_template(rs: &Value, owner: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let mut metadata = json!({
        "generateName": format!("{}-", meta::name(rs)),
        "namespace": meta::namespace(rs),
        "ownerReferences": [owner],
    });
    for field in ["labels", "annotations"] {
        let v = &template["metadata"][field];
        if v.is_object() {
            metadata[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template["spec"].clone(),
    })
}

fn phase_rank(pod: &Value) -> u8 {
    match meta::pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn ready_since(pod: &Value) -> Option<i64> {
    meta::condition(pod, "Ready")
        .filter(|c| c["status"].as_str() == Some("True"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(meta::parse_rfc3339)
}

fn restarts(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Kubernetes' order for scaling down (`ActivePods` sort): the pod to delete first sorts
/// first. Unscheduled before scheduled; Pending before Unknown before Running; not ready
/// before ready; ready for less time before longer; more restarts before fewer; newer
/// before older.
pub fn deletion_order(a: &Value, b: &Value, now: i64) -> Ordering {
    let scheduled = |p: &Value| meta::pod_node(p).is_some();
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| meta::pod_ready(a).cmp(&meta::pod_ready(b)))
        .then_with(|| {
            // Both ready: the one ready for less time first (later transition first).
            let (ra, rb) = (ready_since(a), ready_since(b));
            match (ra, rb) {
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Value| meta::created_at(p).unwrap_or(now);
            created(b).cmp(&created(a))
        })
        .then_with(|| meta::name(a).cmp(meta::name(b)))
}

/// The ReplicaSet's status from its active pods, and when to look again (a pod that will
/// become available after minReadySeconds).
fn status_of(
    rs: &Value,
    active: &[&Value],
    create_failure: Option<&str>,
    now: i64,
) -> (Value, Option<i64>) {
    let min_ready = min_ready_seconds(rs);
    let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
    let fully_labeled = active
        .iter()
        .filter(|p| match template_labels.as_object() {
            Some(want) => want.iter().all(|(k, v)| meta::labels(p)[k] == *v),
            None => true,
        })
        .count();
    let ready = active.iter().filter(|p| meta::pod_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| meta::pod_available(p, min_ready, now))
        .count();
    let requeue = if min_ready > 0 {
        active
            .iter()
            .filter(|p| meta::pod_ready(p) && !meta::pod_available(p, min_ready, now))
            .filter_map(|p| ready_since(p).map(|t| (t + min_ready - now).max(1)))
            .min()
    } else {
        None
    };
    let mut status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": meta::generation(rs),
    });
    // Kubernetes omits zero counts (omitempty) except replicas.
    for f in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
        if status[f] == json!(0) {
            status.as_object_mut().expect("an object").remove(f);
        }
    }
    let mut holder = json!({"status": rs["status"].clone()});
    match create_failure {
        Some(message) => meta::set_condition(
            &mut holder,
            "ReplicaFailure",
            "True",
            "FailedCreate",
            message,
            now,
            false,
        ),
        None => meta::remove_condition(&mut holder, "ReplicaFailure"),
    }
    if let Some(c) = holder["status"]["conditions"].as_array() {
        if !c.is_empty() {
            status["conditions"] = json!(c);
        }
    }
    (status, requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid",
                         "generation": 2, "resourceVersion": "10"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}
                }
            },
            "status": {"replicas": 0}
        })
    }

    struct P {
        name: &'static str,
        node: bool,
        phase: &'static str,
        ready_at: Option<i64>,
        restarts: i64,
        created: i64,
    }

    fn pod(p: P) -> Arc<Value> {
        let mut v = json!({
            "metadata": {
                "name": p.name, "namespace": "default", "uid": format!("uid-{}", p.name),
                "resourceVersion": "5",
                "labels": {"app": "web", "tier": "front"},
                "creationTimestamp": meta::format_rfc3339(p.created),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-abc", "uid": "rs-uid", "controller": true}]
            },
            "spec": {},
            "status": {"phase": p.phase,
                       "containerStatuses": [{"name": "c", "restartCount": p.restarts}]}
        });
        if p.node {
            v["spec"]["nodeName"] = json!("n1");
        }
        if let Some(t) = p.ready_at {
            v["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
                "lastTransitionTime": meta::format_rfc3339(t)}]);
        }
        Arc::new(v)
    }

    fn running(name: &'static str, ready_at: i64) -> Arc<Value> {
        pod(P {
            name,
            node: true,
            phase: "Running",
            ready_at: Some(ready_at),
            restarts: 0,
            created: 0,
        })
    }

    fn step(rs: &Value, pods: &[Arc<Value>], exp: &Expectations) -> Plan {
        reconcile(&ReplicaSetInput {
            replica_set: rs,
            pods,
            expectations: exp,
            create_failure: None,
            now: 1000,
        })
    }

    fn creates(plan: &Plan) -> usize {
        plan.actions
            .iter()
            .map(|a| match a {
                ReplicaSetAction::CreatePods { count, .. } => *count,
                _ => 0,
            })
            .sum()
    }

    fn deletes(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .flat_map(|a| match a {
                ReplicaSetAction::DeletePods(v) => v.iter().map(|p| p.name.clone()).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn scales_up_to_replicas_with_pods_from_the_template() {
        let plan = step(&rs(3), &[running("a", 0)], &Expectations::default());
        assert_eq!(creates(&plan), 2);
        let ReplicaSetAction::CreatePods { pod, .. } = &plan.actions[0] else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["labels"]["tier"], "front");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(pod["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn unmet_expectations_hold_back_creates_and_deletes_until_observed_or_expired() {
        let mut exp = Expectations::default();
        exp.expect_creations(2, 990);
        assert_eq!(creates(&step(&rs(3), &[running("a", 0)], &exp)), 0);
        exp.creation_observed();
        exp.creation_observed();
        assert!(exp.satisfied(1000));
        // The two pods are in the cache now: nothing more to create.
        let pods = [running("a", 0), running("b", 0), running("c", 0)];
        assert_eq!(creates(&step(&rs(3), &pods, &exp)), 0);
        // Expectations that never come true stop holding after the timeout.
        let mut stuck = Expectations::default();
        stuck.expect_creations(1, 1000 - EXPECTATIONS_TIMEOUT - 1);
        assert!(stuck.satisfied(1000));
        let mut del = Expectations::default();
        del.expect_deletions(["uid-a"], 999);
        assert!(!del.satisfied(1000));
        del.deletion_observed("uid-a");
        assert!(del.satisfied(1000));
    }

    #[test]
    fn scale_down_order_follows_kubernetes() {
        // (pod, expected position among victims): the first to go sorts first.
        let pods = vec![
            running("old-ready", 100),
            running("young-ready", 900),
            pod(P {
                name: "unscheduled",
                node: false,
                phase: "Pending",
                ready_at: None,
                restarts: 0,
                created: 0,
            }),
            pod(P {
                name: "pending",
                node: true,
                phase: "Pending",
                ready_at: None,
                restarts: 0,
                created: 0,
            }),
            pod(P {
                name: "running-not-ready",
                node: true,
                phase: "Running",
                ready_at: None,
                restarts: 0,
                created: 0,
            }),
            pod(P {
                name: "restarty",
                node: true,
                phase: "Running",
                ready_at: Some(100),
                restarts: 5,
                created: 0,
            }),
        ];
        let expected_order = [
            "unscheduled",
            "pending",
            "running-not-ready",
            "young-ready",
            "restarty",
            "old-ready",
        ];
        for keep in 0..pods.len() {
            let plan = step(&rs(keep as i64), &pods, &Expectations::default());
            let victims = deletes(&plan);
            assert_eq!(victims, expected_order[..pods.len() - keep], "keep {keep}");
        }
        // Among equals, the newest goes first.
        let a = pod(P {
            name: "older",
            node: true,
            phase: "Running",
            ready_at: None,
            restarts: 0,
            created: 10,
        });
        let b = pod(P {
            name: "newer",
            node: true,
            phase: "Running",
            ready_at: None,
            restarts: 0,
            created: 20,
        });
        assert_eq!(
            deletes(&step(&rs(1), &[a, b], &Expectations::default())),
            ["newer"]
        );
    }

    #[test]
    fn adopts_matching_orphans_and_releases_pods_that_stopped_matching() {
        let mut orphan = (*running("orphan", 0)).clone();
        orphan["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        let mut strayed = (*running("strayed", 0)).clone();
        strayed["metadata"]["labels"] = json!({"app": "other"});
        let mut foreign = (*running("foreign", 0)).clone();
        foreign["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        let pods = [Arc::new(orphan), Arc::new(strayed), Arc::new(foreign)];
        let plan = step(&rs(1), &pods, &Expectations::default());
        let owners: Vec<(&str, &Value)> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                ReplicaSetAction::SetOwners {
                    pod,
                    owner_references,
                } => Some((pod.name.as_str(), owner_references)),
                _ => None,
            })
            .collect();
        assert_eq!(owners.len(), 2);
        assert_eq!(owners[0].0, "orphan");
        assert_eq!(owners[0].1[0]["uid"], "rs-uid");
        assert_eq!(owners[1].0, "strayed");
        assert_eq!(owners[1].1, &json!([]));
        // The adopted orphan counts: one replica wanted, one owned, nothing to create.
        assert_eq!(creates(&plan), 0);
        assert!(deletes(&plan).is_empty());
    }

    #[test]
    fn status_counts_ready_available_and_fully_labeled() {
        let mut rs = rs(3);
        rs["spec"]["minReadySeconds"] = json!(30);
        let mut partial = (*running("partial", 0)).clone();
        partial["metadata"]["labels"] = json!({"app": "web"});
        let pods = [
            running("long-ready", 900),
            running("just-ready", 990),
            Arc::new(partial),
        ];
        let plan = step(&rs, &pods, &Expectations::default());
        let Some(ReplicaSetAction::UpdateStatus(updated)) = plan.actions.last() else {
            panic!("{:?}", plan.actions)
        };
        let s = &updated["status"];
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["readyReplicas"], 3);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["fullyLabeledReplicas"], 2);
        assert_eq!(s["observedGeneration"], 2);
        // just-ready becomes available at 990 + 30.
        assert_eq!(plan.requeue_after, Some(20));
        // Reconciling the written status again changes nothing.
        let again = step(updated, &pods, &Expectations::default());
        assert!(again.actions.is_empty(), "{:?}", again.actions);
    }

    #[test]
    fn terminating_and_ended_pods_do_not_count_and_a_failure_is_a_condition() {
        let mut gone = (*running("gone", 0)).clone();
        gone["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(999));
        let mut done = (*running("done", 0)).clone();
        done["status"]["phase"] = json!("Succeeded");
        let pods = [Arc::new(gone), Arc::new(done)];
        let plan = reconcile(&ReplicaSetInput {
            replica_set: &rs(1),
            pods: &pods,
            expectations: &Expectations::default(),
            create_failure: Some("pods \"web-abc-x\" is forbidden: quota"),
            now: 1000,
        });
        assert_eq!(creates(&plan), 1);
        let Some(ReplicaSetAction::UpdateStatus(updated)) = plan.actions.last() else {
            panic!()
        };
        assert_eq!(updated["status"]["replicas"], 0);
        assert_eq!(updated["status"]["conditions"][0]["type"], "ReplicaFailure");
        assert_eq!(updated["status"]["conditions"][0]["reason"], "FailedCreate");
    }

    #[test]
    fn a_deleting_replica_set_neither_scales_nor_adopts() {
        let mut r = rs(3);
        r["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(999));
        let mut orphan = (*running("orphan", 0)).clone();
        orphan["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        let plan = step(&r, &[Arc::new(orphan)], &Expectations::default());
        assert_eq!(creates(&plan), 0);
        assert!(!plan
            .actions
            .iter()
            .any(|a| matches!(a, ReplicaSetAction::SetOwners { .. })));
    }

    #[test]
    fn bursts_are_bounded() {
        let plan = step(&rs(10_000), &[], &Expectations::default());
        assert_eq!(creates(&plan), BURST_REPLICAS);
    }
}
