//! The pod garbage collector's decisions (Kubernetes' PodGC controller, in pure form): which
//! pods to force-delete, why, and what to write on them first.
//!
//! One pass looks at every pod and node the caches hold, with what the collector observed
//! so far ([`Memory`]: the node absences, the pods it collected lately), and decides, in
//! Kubernetes' order:
//! 1. terminated pods (phase neither `Pending`, `Running` nor `Unknown`) beyond
//!    `--terminated-pod-gc-threshold` (0: never): evicted ones first, then the oldest by
//!    `creationTimestamp`, then by name;
//! 2. terminating pods on a node that is not Ready and carries the
//!    `node.kubernetes.io/out-of-service` taint;
//! 3. orphans: pods bound to a node that does not exist, once it has been absent for the
//!    quarantine; only after a live read of the node finds it gone (the caller's part: the
//!    plan lists them by node);
//! 4. terminating pods bound to no node.
//!
//! Every pod goes with a grace period of 0, at its uid; one that has not ended is first
//! marked `Failed` (an orphan also gets the `DisruptionTarget` condition, reason
//! `DeletionByPodGC`), as nobody else would: its kubelet is gone.
//!
//! Properties kept:
//! - an orphan is never collected before its node was seen absent for the quarantine, and
//!   a node seen again starts over;
//! - a pod is collected once per pass, for the first of the rules above that applies, and
//!   not again for [`RETRY_SECONDS`]: a cache that has not caught up with a deletion yet
//!   neither collects the pod twice nor counts it among the terminated pods kept;
//! - the same inputs give the same plan (no clock, no randomness), so a restarted collector
//!   decides again what it decided before, and what is already gone answers 404.
//!
//! Times are Unix seconds passed in by the caller.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{json, Value};

use crate::meta;

/// The taint an administrator puts on a node that is out of service for good (Kubernetes'
/// non-graceful node shutdown): its terminating pods are force-deleted.
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// How long a node must have been absent before its pods are orphans (Kubernetes'
/// `quarantineTime`).
pub const QUARANTINE_SECONDS: i64 = 40;
/// How often the collector passes when nothing pokes it (Kubernetes' `gcCheckPeriod`).
pub const CHECK_PERIOD_SECONDS: i64 = 20;
/// How long a pod collected is left out of the passes, while its deletion reaches the
/// caches; if it is still there after that (a write failed), it is collected again.
pub const RETRY_SECONDS: i64 = 10;
/// Kubernetes' default `--terminated-pod-gc-threshold`.
pub const DEFAULT_TERMINATED_THRESHOLD: usize = 12_500;
/// The condition an orphan gets before it is deleted.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// Its reason.
pub const DELETION_BY_POD_GC: &str = "DeletionByPodGC";
const ORPHAN_MESSAGE: &str = "PodGC: node no longer exists";

/// The collector's settings, from the master's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodGcConfig {
    /// Seconds a node must be absent before its pods are orphans.
    pub quarantine: i64,
    /// Terminated pods kept before the oldest go; 0 keeps them all.
    pub terminated_threshold: usize,
}

impl Default for PodGcConfig {
    fn default() -> Self {
        PodGcConfig {
            quarantine: QUARANTINE_SECONDS,
            terminated_threshold: DEFAULT_TERMINATED_THRESHOLD,
        }
    }
}

/// Why a pod is collected (Kubernetes' metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// One terminated pod too many.
    Terminated,
    /// Terminating on a node that is not Ready and out of service.
    TerminatingOutOfService,
    /// Bound to a node that is gone.
    Orphaned,
    /// Terminating and bound to no node.
    TerminatingUnscheduled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Terminated => "terminated",
            Reason::TerminatingOutOfService => "terminating_out_of_service",
            Reason::Orphaned => "orphaned",
            Reason::TerminatingUnscheduled => "terminating_unscheduled",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pod to force-delete: write `status` (if any) through `pods/status`, then delete it
/// with a grace period of 0 at `uid`. If the status cannot be written, leave the pod for
/// the next pass (as Kubernetes does).
#[derive(Clone, Debug, PartialEq)]
pub struct Collect {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub reason: Reason,
    /// The strategic merge patch of `pods/status` to write first (see [`status_patch`]);
    /// `None` for a pod that has already ended.
    pub status: Option<Value>,
}

impl Collect {
    fn of(pod: &Value, reason: Reason, now: i64) -> Collect {
        Collect {
            namespace: meta::namespace(pod).to_string(),
            name: meta::name(pod).to_string(),
            uid: meta::uid(pod).to_string(),
            reason,
            status: status_patch(pod, reason, now),
        }
    }
}

/// What the collector remembers between passes (times in Unix seconds): since when each
/// node pods are bound to has been absent, and when it collected each pod lately (by uid).
/// A fresh collector starts empty, so its quarantines start over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    absent_since: BTreeMap<String, i64>,
    collected: BTreeMap<String, i64>,
}

impl Memory {
    /// When `node` was first seen absent, if it is in quarantine.
    pub fn absent_since(&self, node: &str) -> Option<i64> {
        self.absent_since.get(node).copied()
    }

    /// How many nodes are in quarantine.
    pub fn quarantined(&self) -> usize {
        self.absent_since.len()
    }

    /// How many pods were collected within the last [`RETRY_SECONDS`] and are still in
    /// the caches.
    pub fn collecting(&self) -> usize {
        self.collected.len()
    }

    fn observe_absent(&mut self, node: &str, now: i64) -> i64 {
        *self.absent_since.entry(node.to_string()).or_insert(now)
    }
}

/// What one pass decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to collect now, in order.
    pub collect: Vec<Collect>,
    /// Orphans past their node's quarantine, by node: read each node live first and collect
    /// its pods only if it is not found.
    pub orphans: BTreeMap<String, Vec<Collect>>,
    /// When (Unix seconds) the next quarantine ends, if one is running: pass again then.
    pub next: Option<i64>,
}

impl Plan {
    /// Whether there is nothing to carry out (`next` aside).
    pub fn is_empty(&self) -> bool {
        self.collect.is_empty() && self.orphans.is_empty()
    }

    /// How many pods it collects (orphans included).
    pub fn len(&self) -> usize {
        self.collect.len() + self.orphans.values().map(Vec::len).sum::<usize>()
    }
}

/// Kubernetes' `isPodTerminated`: any phase but `Pending`, `Running` and `Unknown`.
fn terminated(pod: &Value) -> bool {
    !matches!(meta::pod_phase(pod), "Pending" | "Running" | "Unknown")
}

/// Evicted by its kubelet (`Failed` with reason `Evicted`): such pods go first.
fn evicted(pod: &Value) -> bool {
    meta::pod_phase(pod) == "Failed" && pod["status"]["reason"].as_str() == Some("Evicted")
}

/// Whether `node` is out of service: not Ready, and tainted `out-of-service`.
pub fn out_of_service(node: &Value) -> bool {
    let tainted = node["spec"]["taints"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == TAINT_OUT_OF_SERVICE));
    tainted && !meta::condition_true(node, "Ready")
}

/// Whether a change of `pod` may give the collector work before its next periodic pass:
/// the pod is terminating, or bound to a node `node_exists` does not know. (Terminated pods
/// over the threshold wait for the periodic pass, as in Kubernetes.)
pub fn worth_a_pass(pod: &Value, node_exists: impl FnOnce(&str) -> bool) -> bool {
    meta::is_deleting(pod) || meta::pod_node(pod).is_some_and(|n| !node_exists(n))
}

/// The `pods/status` patch that marks `pod` `Failed` before it is force-deleted (for an
/// orphan with the `DisruptionTarget` condition, its transition time kept if it already
/// held), or `None` if the pod has ended already. It names the pod's uid, as Kubernetes'
/// does; navarch's API server keeps the stored uid on a patch instead of refusing another
/// one, so the delete's uid precondition is what guards a pod recreated under the name.
pub fn status_patch(pod: &Value, reason: Reason, now: i64) -> Option<Value> {
    if matches!(meta::pod_phase(pod), "Succeeded" | "Failed") {
        return None;
    }
    let mut status = json!({"phase": "Failed"});
    if reason == Reason::Orphaned {
        let since = meta::condition(pod, DISRUPTION_TARGET)
            .filter(|c| c["status"] == "True")
            .map(|c| c["lastTransitionTime"].clone())
            .filter(|t| t.is_string())
            .unwrap_or_else(|| json!(meta::format_rfc3339(now)));
        status["conditions"] = json!([{
            "type": DISRUPTION_TARGET,
            "status": "True",
            "reason": DELETION_BY_POD_GC,
            "message": ORPHAN_MESSAGE,
            "lastTransitionTime": since,
        }]);
    }
    Some(json!({"metadata": {"uid": meta::uid(pod)}, "status": status}))
}

/// One pass over every pod and node: what to collect, given what was observed so far
/// (`memory`, updated: nodes seen absent for the first time are added, nodes that exist
/// again or that no pod is bound to any more are forgotten; the pods of the plan are
/// remembered as collected now).
pub fn pass<P: Borrow<Value>, N: Borrow<Value>>(
    pods: &[P],
    nodes: &[N],
    memory: &mut Memory,
    cfg: &PodGcConfig,
    now: i64,
) -> Plan {
    let nodes: BTreeMap<&str, &Value> = nodes
        .iter()
        .map(|n| (meta::name(n.borrow()), n.borrow()))
        .collect();
    let all: Vec<&Value> = pods.iter().map(Borrow::borrow).collect();
    // Pods collected lately are on their way out: left out of every rule.
    memory.collected.retain(|_, at| now < *at + RETRY_SECONDS);
    let pods: Vec<&Value> = all
        .iter()
        .copied()
        .filter(|p| !memory.collected.contains_key(meta::uid(p)))
        .collect();
    let mut plan = Plan::default();
    let mut taken: HashSet<&str> = HashSet::new();

    // 1. Terminated pods beyond the threshold.
    if cfg.terminated_threshold > 0 {
        let mut done: Vec<&Value> = pods.iter().copied().filter(|p| terminated(p)).collect();
        if done.len() > cfg.terminated_threshold {
            let excess = done.len() - cfg.terminated_threshold;
            done.sort_by(|a, b| {
                evicted(b)
                    .cmp(&evicted(a))
                    .then_with(|| {
                        meta::created_at(a)
                            .unwrap_or(i64::MIN)
                            .cmp(&meta::created_at(b).unwrap_or(i64::MIN))
                    })
                    .then_with(|| meta::name(a).cmp(meta::name(b)))
                    .then_with(|| meta::namespace(a).cmp(meta::namespace(b)))
            });
            for p in done.into_iter().take(excess) {
                taken.insert(meta::uid(p));
                plan.collect.push(Collect::of(p, Reason::Terminated, now));
            }
        }
    }

    // 2. Terminating pods on nodes out of service.
    for p in &pods {
        let on_oos_node = meta::pod_node(p)
            .and_then(|n| nodes.get(n))
            .is_some_and(|n| out_of_service(n));
        if meta::is_deleting(p) && on_oos_node && taken.insert(meta::uid(p)) {
            plan.collect
                .push(Collect::of(p, Reason::TerminatingOutOfService, now));
        }
    }

    // 3. Orphans, once their node's quarantine is over (every pod keeps its node's
    // quarantine going, those collected lately too: a failed deletion does not restart it).
    let mut absent: BTreeSet<&str> = BTreeSet::new();
    for p in &all {
        let Some(node) = meta::pod_node(p).filter(|n| !nodes.contains_key(n)) else {
            continue;
        };
        absent.insert(node);
        let ends = memory.observe_absent(node, now) + cfg.quarantine;
        if memory.collected.contains_key(meta::uid(p)) {
            continue;
        }
        if now < ends {
            plan.next = Some(plan.next.map_or(ends, |t| t.min(ends)));
        } else if taken.insert(meta::uid(p)) {
            plan.orphans
                .entry(node.to_string())
                .or_default()
                .push(Collect::of(p, Reason::Orphaned, now));
        }
    }
    memory
        .absent_since
        .retain(|n, _| absent.contains(n.as_str()));

    // 4. Terminating pods bound to no node.
    for p in &pods {
        if meta::is_deleting(p) && meta::pod_node(p).is_none() && taken.insert(meta::uid(p)) {
            plan.collect
                .push(Collect::of(p, Reason::TerminatingUnscheduled, now));
        }
    }

    let present: HashSet<&str> = all.iter().map(|p| meta::uid(p)).collect();
    memory
        .collected
        .retain(|uid, _| present.contains(uid.as_str()));
    for c in plan.collect.iter().chain(plan.orphans.values().flatten()) {
        memory.collected.insert(c.uid.clone(), now);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn pod(name: &str, node: Option<&str>, phase: &str) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                         "creationTimestamp": meta::format_rfc3339(T0 - 1000)},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": phase},
        });
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        p
    }

    fn deleting(mut p: Value) -> Value {
        p["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(T0 - 10));
        p
    }

    fn created(mut p: Value, at: i64) -> Value {
        p["metadata"]["creationTimestamp"] = json!(meta::format_rfc3339(at));
        p
    }

    fn node(name: &str, ready: bool, taints: &[&str]) -> Value {
        let taints: Vec<Value> = taints
            .iter()
            .map(|k| json!({"key": k, "effect": "NoExecute"}))
            .collect();
        json!({
            "metadata": {"name": name},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready",
                                       "status": if ready { "True" } else { "False" }}]},
        })
    }

    /// The plan as "reason name" lines (orphans as "orphaned@node name"), in order.
    fn lines(plan: &Plan) -> Vec<String> {
        let mut out: Vec<String> = plan
            .collect
            .iter()
            .map(|c| format!("{} {}", c.reason, c.name))
            .collect();
        for (node, cs) in &plan.orphans {
            out.extend(cs.iter().map(|c| format!("{}@{node} {}", c.reason, c.name)));
        }
        out
    }

    #[test]
    fn each_rule_collects_its_pods_and_nothing_else() {
        let nodes = [
            node("up", true, &[]),
            node("down", false, &[]),
            node("oos", false, &[TAINT_OUT_OF_SERVICE]),
            // Tainted but Ready: the taint alone does not do it.
            node("oos-ready", true, &[TAINT_OUT_OF_SERVICE]),
        ];
        let cfg = PodGcConfig {
            quarantine: 0,
            terminated_threshold: 0,
        };
        let table: Vec<(Value, &[&str])> = vec![
            (pod("running", Some("up"), "Running"), &[]),
            (deleting(pod("ending", Some("up"), "Running")), &[]),
            (deleting(pod("on-down", Some("down"), "Running")), &[]),
            (
                deleting(pod("on-oos", Some("oos"), "Running")),
                &["terminating_out_of_service on-oos"],
            ),
            (pod("live-on-oos", Some("oos"), "Running"), &[]),
            (
                deleting(pod("on-oos-ready", Some("oos-ready"), "Running")),
                &[],
            ),
            (
                pod("orphan", Some("gone"), "Running"),
                &["orphaned@gone orphan"],
            ),
            (
                pod("done-orphan", Some("gone"), "Succeeded"),
                &["orphaned@gone done-orphan"],
            ),
            (
                deleting(pod("unbound", None, "Pending")),
                &["terminating_unscheduled unbound"],
            ),
            (pod("pending", None, "Pending"), &[]),
            // Terminated pods stay with the threshold off.
            (pod("done", Some("up"), "Succeeded"), &[]),
        ];
        for (p, want) in table {
            let mut memory = Memory::default();
            let plan = pass(std::slice::from_ref(&p), &nodes, &mut memory, &cfg, T0);
            assert_eq!(lines(&plan), *want, "{}", meta::name(&p));
        }
    }

    #[test]
    fn orphans_wait_out_the_quarantine_of_their_node() {
        let cfg = PodGcConfig {
            quarantine: 40,
            terminated_threshold: 0,
        };
        let up = [node("n1", true, &[])];
        let none: [Value; 0] = [];
        let pods = [
            pod("a", Some("n1"), "Running"),
            pod("b", Some("n1"), "Running"),
        ];
        let mut memory = Memory::default();
        // (seconds after T0, the nodes, want collected, want next)
        let table: Vec<(i64, &[Value], usize, Option<i64>)> = vec![
            (0, &up, 0, None),
            // Gone: the quarantine starts at the first pass that sees it absent.
            (5, &none, 0, Some(T0 + 45)),
            (44, &none, 0, Some(T0 + 45)),
            (45, &none, 2, None),
            // Back before another pass: it starts over when it goes again.
            (50, &up, 0, None),
            (60, &none, 0, Some(T0 + 100)),
            (99, &none, 0, Some(T0 + 100)),
            (100, &none, 2, None),
        ];
        for (at, nodes, want, next) in table {
            let plan = pass(&pods, nodes, &mut memory, &cfg, T0 + at);
            assert_eq!(plan.len(), want, "at +{at}: {plan:?}");
            assert_eq!(plan.next, next, "at +{at}");
            if want > 0 {
                assert_eq!(plan.orphans.keys().collect::<Vec<_>>(), ["n1"]);
            }
        }
        // Forgotten once no pod is bound to it.
        pass(&[] as &[Value], &none, &mut memory, &cfg, T0 + 101);
        assert_eq!(memory.quarantined(), 0);
    }

    #[test]
    fn each_node_has_its_own_quarantine() {
        let cfg = PodGcConfig {
            quarantine: 10,
            terminated_threshold: 0,
        };
        let mut memory = Memory::default();
        let none: [Value; 0] = [];
        let first = [pod("a", Some("n1"), "Running")];
        assert_eq!(
            pass(&first, &none, &mut memory, &cfg, T0).next,
            Some(T0 + 10)
        );
        let both = [first[0].clone(), pod("b", Some("n2"), "Running")];
        let plan = pass(&both, &none, &mut memory, &cfg, T0 + 5);
        assert_eq!(plan.next, Some(T0 + 10));
        assert_eq!(memory.absent_since("n2"), Some(T0 + 5));
        let plan = pass(&both, &none, &mut memory, &cfg, T0 + 10);
        assert_eq!(lines(&plan), ["orphaned@n1 a"]);
        assert_eq!(plan.next, Some(T0 + 15));
        // `a` was collected just now: it is left alone while its deletion goes through.
        let plan = pass(&both, &none, &mut memory, &cfg, T0 + 15);
        assert_eq!(lines(&plan), ["orphaned@n2 b"]);
    }

    #[test]
    fn pods_collected_lately_are_left_out_until_the_retry() {
        let cfg = PodGcConfig {
            quarantine: 5,
            terminated_threshold: 2,
        };
        let up = [node("n1", true, &[])];
        let mut pods = vec![
            created(pod("d1", Some("n1"), "Succeeded"), T0 - 30),
            created(pod("d2", Some("n1"), "Succeeded"), T0 - 20),
            created(pod("d3", Some("n1"), "Succeeded"), T0 - 10),
            pod("orphan", Some("gone"), "Running"),
        ];
        let mut memory = Memory::default();
        // (seconds after T0, want)
        let table: &[(i64, &[&str])] = &[
            (0, &["terminated d1"]),
            // The cache still shows d1: it is not counted, and nothing more goes.
            (1, &[]),
            (5, &["orphaned@gone orphan"]),
            // Both still there past the retry (their writes failed): collected again; the
            // orphan's quarantine did not start over.
            (10, &["terminated d1"]),
            (15, &["orphaned@gone orphan"]),
        ];
        for (at, want) in table {
            let plan = pass(&pods, &up, &mut memory, &cfg, T0 + at);
            assert_eq!(lines(&plan), *want, "at +{at}");
        }
        assert_eq!(memory.collecting(), 2);
        // Gone from the caches: forgotten.
        pods.retain(|p| meta::name(p) == "d2" || meta::name(p) == "d3");
        assert_eq!(
            lines(&pass(&pods, &up, &mut memory, &cfg, T0 + 16)),
            [] as [&str; 0]
        );
        assert_eq!((memory.collecting(), memory.quarantined()), (0, 0));
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_go_evicted_then_oldest_first() {
        let up = [node("n1", true, &[])];
        let mut evicted = created(pod("evicted-new", Some("n1"), "Failed"), T0 - 1);
        evicted["status"]["reason"] = json!("Evicted");
        let pods = vec![
            created(pod("c", Some("n1"), "Succeeded"), T0 - 300),
            created(pod("a", Some("n1"), "Failed"), T0 - 500),
            evicted,
            // Same age: by name.
            created(pod("e", Some("n1"), "Succeeded"), T0 - 300),
            created(pod("b", Some("n1"), "Succeeded"), T0 - 300),
            // Not terminated: never counted, whatever their age.
            created(pod("old-running", Some("n1"), "Running"), T0 - 9000),
            created(pod("old-pending", None, "Pending"), T0 - 9000),
            created(pod("old-unknown", Some("n1"), "Unknown"), T0 - 9000),
        ];
        let table: &[(usize, &[&str])] = &[
            (0, &[]),
            (5, &[]),
            (9, &[]),
            (4, &["evicted-new"]),
            (3, &["evicted-new", "a"]),
            (1, &["evicted-new", "a", "b", "c"]),
        ];
        for (threshold, want) in table {
            let cfg = PodGcConfig {
                quarantine: 40,
                terminated_threshold: *threshold,
            };
            let plan = pass(&pods, &up, &mut Memory::default(), &cfg, T0);
            let got: Vec<&str> = plan.collect.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(got, *want, "threshold {threshold}");
            assert!(plan.collect.iter().all(|c| c.reason == Reason::Terminated));
            // Ended already: nothing to write before the delete.
            assert!(plan.collect.iter().all(|c| c.status.is_none()));
        }
    }

    #[test]
    fn a_pod_is_collected_once_for_the_first_rule() {
        let cfg = PodGcConfig {
            quarantine: 0,
            terminated_threshold: 1,
        };
        // Terminated on a gone node, two of them: the oldest for the threshold, the other as
        // an orphan; a terminating orphan as an orphan only.
        let pods = [
            created(pod("old", Some("gone"), "Failed"), T0 - 100),
            created(pod("new", Some("gone"), "Failed"), T0 - 50),
            deleting(pod("ending", Some("gone"), "Running")),
        ];
        let plan = pass(&pods, &[] as &[Value], &mut Memory::default(), &cfg, T0);
        assert_eq!(
            lines(&plan),
            [
                "terminated old",
                "orphaned@gone new",
                "orphaned@gone ending"
            ]
        );
    }

    #[test]
    fn pods_that_have_not_ended_are_marked_failed_first() {
        let orphan = Collect::of(&pod("p", Some("gone"), "Running"), Reason::Orphaned, T0);
        assert_eq!(orphan.uid, "u-p");
        assert_eq!(
            orphan.status,
            Some(json!({"metadata": {"uid": "u-p"}, "status": {
                "phase": "Failed",
                "conditions": [{"type": "DisruptionTarget", "status": "True",
                                "reason": "DeletionByPodGC",
                                "message": "PodGC: node no longer exists",
                                "lastTransitionTime": meta::format_rfc3339(T0)}]}}))
        );
        // A disruption already recorded keeps its time.
        let mut marked = pod("p", Some("gone"), "Running");
        marked["status"]["conditions"] = json!([{"type": "DisruptionTarget", "status": "True",
            "reason": "DeletionByTaintManager", "lastTransitionTime": meta::format_rfc3339(T0 - 60)}]);
        let s = status_patch(&marked, Reason::Orphaned, T0).unwrap();
        assert_eq!(
            s["status"]["conditions"][0]["lastTransitionTime"],
            meta::format_rfc3339(T0 - 60)
        );
        assert_eq!(s["status"]["conditions"][0]["reason"], "DeletionByPodGC");
        // The other rules mark the phase only; an ended pod is left as it is.
        let p = deleting(pod("p", None, "Pending"));
        assert_eq!(
            status_patch(&p, Reason::TerminatingUnscheduled, T0),
            Some(json!({"metadata": {"uid": "u-p"}, "status": {"phase": "Failed"}}))
        );
        for phase in ["Succeeded", "Failed"] {
            let p = pod("p", Some("gone"), phase);
            assert_eq!(status_patch(&p, Reason::Orphaned, T0), None, "{phase}");
        }
    }

    #[test]
    fn what_is_worth_a_pass_and_what_is_out_of_service() {
        let known = |n: &str| n == "up";
        let table: Vec<(Value, bool)> = vec![
            (pod("a", Some("up"), "Running"), false),
            (pod("a", None, "Pending"), false),
            (pod("a", Some("up"), "Succeeded"), false),
            (pod("a", Some("gone"), "Running"), true),
            (deleting(pod("a", Some("up"), "Running")), true),
            (deleting(pod("a", None, "Pending")), true),
        ];
        for (p, want) in table {
            assert_eq!(worth_a_pass(&p, known), want, "{p}");
        }
        assert!(out_of_service(&node("n", false, &[TAINT_OUT_OF_SERVICE])));
        assert!(!out_of_service(&node("n", true, &[TAINT_OUT_OF_SERVICE])));
        assert!(!out_of_service(&node("n", false, &["other"])));
        let mut unknown = node("n", false, &[TAINT_OUT_OF_SERVICE]);
        unknown["status"]["conditions"] = json!([]);
        assert!(out_of_service(&unknown));
    }
}
