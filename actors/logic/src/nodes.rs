//! Node lifecycle (Kubernetes' node lifecycle controller, simplified but faithful): a node
//! whose kubelet stops heartbeating (its Lease and its `Ready` condition) past the grace
//! period gets its conditions set to `Unknown`, the `unreachable` taints and its pods marked
//! not ready; a node reporting `Ready=False` gets the `not-ready` taints; a node that is
//! Ready again loses them; conditions such as `MemoryPressure` and a cordon become their
//! NoSchedule taints. [`evictions`] decides when a pod on a NoExecute-tainted node goes.
//!
//! Times are Unix seconds passed in by the caller; the logic reads no clock.

use serde_json::{json, Value};

use crate::events::{EventSpec, ObjectRef};
use crate::meta;
use crate::scheduler::taints::{Effect, Taint, Toleration};
pub use crate::scheduler::taints::{
    TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY,
    TAINT_PID_PRESSURE, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
};

/// The conditions set to `Unknown` when the kubelet is not heard from (Kubernetes leaves
/// `NetworkUnavailable` alone: it is managed on the control plane).
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The condition-to-taint table of Kubernetes' TaintNodesByCondition.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_DISK_PRESSURE),
    ("PIDPressure", "True", TAINT_PID_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NETWORK_UNAVAILABLE),
];

/// The lease namespace the kubelet renews its node's Lease in.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// `--node-monitor-grace-period` and `--node-startup-grace-period`, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without a heartbeat before it is `Unknown`.
    pub grace_period: i64,
    /// The same for a node that never reported, counted from its creation.
    pub startup_grace: i64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: 20,
            startup_grace: 60,
        }
    }
}

/// What to do about a node. Carry the actions out in order; if one fails, stop and call
/// [`node_health`] again later (every action is derived from the objects, so a retry
/// recomputes whatever is still missing).
#[derive(Clone, Debug, PartialEq)]
pub enum NodeAction {
    /// Set every pod on the node to `Ready=False` (see [`pod_not_ready_conditions`]);
    /// emitted when this call finds the kubelet gone.
    MarkPodsNotReady {
        node: String,
    },
    /// Replace the node's `status.conditions` with `conditions`.
    MarkUnknown {
        node: String,
        conditions: Value,
    },
    /// Add `taint` to `spec.taints` (see [`taints_after`]).
    AddTaint {
        node: String,
        taint: Value,
    },
    /// Remove the taint of this key and effect.
    RemoveTaint {
        node: String,
        key: String,
        effect: String,
    },
    Event(EventSpec),
}

/// What happens to a pod on a node with NoExecute taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodEviction {
    Keep,
    /// Delete it at this time (Unix seconds) unless the taint goes first.
    EvictAt(i64),
    EvictNow,
}

/// The node's last heartbeat: the later of its Lease's `spec.renewTime` and its `Ready`
/// condition's `lastHeartbeatTime`.
pub fn heartbeat(node: &Value, lease: Option<&Value>) -> Option<i64> {
    let lease_t = lease
        .and_then(|l| l["spec"]["renewTime"].as_str())
        .and_then(meta::parse_rfc3339);
    let ready_t = meta::condition(node, "Ready")
        .and_then(|c| c["lastHeartbeatTime"].as_str())
        .and_then(meta::parse_rfc3339);
    lease_t.max(ready_t)
}

/// Checks one node at `now`: the actions that bring it to what its heartbeat and conditions
/// say, and in how many seconds to check again if nothing changes before (`None` once it
/// is already past its grace period: only a change of the node or its Lease matters then).
pub fn node_health(
    node: &Value,
    lease: Option<&Value>,
    cfg: &NodeLifecycleConfig,
    now: i64,
) -> (Vec<NodeAction>, Option<i64>) {
    let name = meta::name(node).to_string();
    let ready = meta::condition(node, "Ready");
    let beat = heartbeat(node, lease);
    let created = meta::created_at(node);
    let (reference, grace) = match ready {
        // Never reported: counted from creation (or a later lease), with the startup grace.
        None => (beat.max(created), cfg.startup_grace),
        Some(_) => (beat.or(created), cfg.grace_period),
    };
    let reference = reference.unwrap_or(now);
    let expired = now > reference + grace;

    let mut actions = Vec::new();
    let mut conditions = node["status"]["conditions"].clone();
    if expired {
        if let Some(new) = unknown_conditions(node, now) {
            let was_ready = ready.and_then(|c| c["status"].as_str()) == Some("True");
            let was_unknown = ready.and_then(|c| c["status"].as_str()) == Some("Unknown");
            if !was_unknown {
                actions.push(NodeAction::MarkPodsNotReady { node: name.clone() });
            }
            conditions = new.clone();
            actions.push(NodeAction::MarkUnknown {
                node: name.clone(),
                conditions: new,
            });
            if was_ready {
                actions.push(NodeAction::Event(EventSpec::normal(
                    node_ref(node),
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                )));
            }
        }
    }
    let (add, remove) = taint_changes(node, &conditions, now);
    let events: Vec<NodeAction> = actions
        .iter()
        .filter(|a| matches!(a, NodeAction::Event(_)))
        .cloned()
        .collect();
    actions.retain(|a| !matches!(a, NodeAction::Event(_)));
    actions.extend(add.into_iter().map(|taint| NodeAction::AddTaint {
        node: name.clone(),
        taint,
    }));
    actions.extend(
        remove
            .into_iter()
            .map(|(key, effect)| NodeAction::RemoveTaint {
                node: name.clone(),
                key,
                effect,
            }),
    );
    actions.extend(events);
    let recheck = (!expired).then(|| (reference + grace + 1 - now).max(1));
    (actions, recheck)
}

/// Kubernetes refers to nodes in events with the node's name as uid.
fn node_ref(node: &Value) -> ObjectRef {
    ObjectRef {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        namespace: String::new(),
        name: meta::name(node).to_string(),
        uid: meta::name(node).to_string(),
    }
}

/// The conditions with the kubelet's set to `Unknown` (absent ones added as never
/// updated), or `None` when they already are.
fn unknown_conditions(node: &Value, now: i64) -> Option<Value> {
    let now_s = meta::format_rfc3339(now);
    let created = node["metadata"]["creationTimestamp"].clone();
    let mut list: Vec<Value> = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match list.iter_mut().find(|c| c["type"].as_str() == Some(type_)) {
            None => {
                list.push(json!({
                    "type": type_,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": now_s,
                }));
                changed = true;
            }
            Some(c) if c["status"].as_str() != Some("Unknown") => {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now_s);
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed.then_some(Value::Array(list))
}

fn status_of<'a>(conditions: &'a Value, type_: &str) -> Option<&'a str> {
    conditions
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
        .and_then(|c| c["status"].as_str())
}

/// The taints to add and the (key, effect) pairs to remove so the node's taints say what
/// `conditions` (and the cordon) say.
fn taint_changes(
    node: &Value,
    conditions: &Value,
    now: i64,
) -> (Vec<Value>, Vec<(String, String)>) {
    let existing = Taint::of_node(node);
    let has =
        |key: &str, effect: &Effect| existing.iter().any(|t| t.key == key && t.effect == *effect);
    let mut add = Vec::new();
    let mut remove = Vec::new();
    let ready = status_of(conditions, "Ready");

    // NoExecute: the taints that evict.
    let (want_ne, drop_ne): (Option<&str>, Vec<&str>) = match ready {
        Some("True") => (None, vec![TAINT_NOT_READY, TAINT_UNREACHABLE]),
        Some("False") => (Some(TAINT_NOT_READY), vec![TAINT_UNREACHABLE]),
        Some(_) => (Some(TAINT_UNREACHABLE), vec![TAINT_NOT_READY]),
        None => (None, vec![]),
    };
    if let Some(key) = want_ne {
        if !has(key, &Effect::NoExecute) {
            add.push(
                json!({"key": key, "effect": "NoExecute", "timeAdded": meta::format_rfc3339(now)}),
            );
        }
    }
    for key in drop_ne {
        if has(key, &Effect::NoExecute) {
            remove.push((key.to_string(), "NoExecute".to_string()));
        }
    }

    // NoSchedule: one taint per condition in Kubernetes' table, and the cordon.
    let mut wanted: Vec<&str> = CONDITION_TAINTS
        .iter()
        .filter(|(t, s, _)| status_of(conditions, t) == Some(*s))
        .map(|(_, _, key)| *key)
        .collect();
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        wanted.push(TAINT_UNSCHEDULABLE);
    }
    for key in &wanted {
        if !has(key, &Effect::NoSchedule)
            && !add
                .iter()
                .any(|t| t["key"] == *key && t["effect"] == "NoSchedule")
        {
            add.push(json!({"key": key, "effect": "NoSchedule"}));
        }
    }
    let managed = |key: &str| {
        // Without a Ready condition (a node still starting) its taints are left alone.
        let readiness = key == TAINT_NOT_READY || key == TAINT_UNREACHABLE;
        (key == TAINT_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key))
            && !(readiness && ready.is_none())
    };
    for t in &existing {
        if t.effect == Effect::NoSchedule && managed(&t.key) && !wanted.contains(&t.key.as_str()) {
            remove.push((t.key.clone(), "NoSchedule".to_string()));
        }
    }
    (add, remove)
}

/// The node's `spec.taints` after the taint actions addressed to it, or `None` when they
/// change nothing.
pub fn taints_after(node: &Value, actions: &[NodeAction]) -> Option<Value> {
    let name = meta::name(node);
    let mut taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let same = |t: &Value, key: &str, effect: &str| {
        t["key"].as_str().unwrap_or("") == key && t["effect"].as_str().unwrap_or("") == effect
    };
    let mut changed = false;
    for a in actions {
        match a {
            NodeAction::AddTaint { node, taint } if node == name => {
                let key = taint["key"].as_str().unwrap_or("");
                let effect = taint["effect"].as_str().unwrap_or("");
                if !taints.iter().any(|t| same(t, key, effect)) {
                    taints.push(taint.clone());
                    changed = true;
                }
            }
            NodeAction::RemoveTaint { node, key, effect } if node == name => {
                let before = taints.len();
                taints.retain(|t| !same(t, key, effect));
                changed |= taints.len() != before;
            }
            _ => {}
        }
    }
    changed.then_some(Value::Array(taints))
}

/// A pod's `status.conditions` with `Ready` set to `False` (its transition time `now`),
/// as Kubernetes marks the pods of an unreachable node; `None` when already not ready or
/// without a Ready condition.
pub fn pod_not_ready_conditions(pod: &Value, now: i64) -> Option<Value> {
    let mut list = pod["status"]["conditions"].as_array()?.clone();
    let c = list
        .iter_mut()
        .find(|c| c["type"].as_str() == Some("Ready"))?;
    if c["status"].as_str() == Some("False") {
        return None;
    }
    c["status"] = json!("False");
    c["lastTransitionTime"] = json!(meta::format_rfc3339(now));
    Some(Value::Array(list))
}

/// Whether and when a pod on `node` is evicted for the node's NoExecute taints: a taint
/// it does not tolerate evicts now; tolerated with `tolerationSeconds` it goes at the
/// taint's `timeAdded` plus those seconds (the earliest over the taints; the first
/// toleration matching a taint decides, as in Kubernetes); tolerated without a limit it
/// stays. Pods already deleting or ended, or on another node, are kept (nothing to do).
pub fn evictions(pod: &Value, node: &Value, now: i64) -> PodEviction {
    if meta::is_deleting(pod) || meta::pod_terminated(pod) {
        return PodEviction::Keep;
    }
    if meta::pod_node(pod).is_some_and(|n| n != meta::name(node)) {
        return PodEviction::Keep;
    }
    let tolerations = Toleration::of_pod(pod);
    let mut deadline: Option<i64> = None;
    for taint in Taint::of_node(node)
        .iter()
        .filter(|t| t.effect == Effect::NoExecute)
    {
        let Some(tol) = tolerations.iter().find(|t| t.tolerates(taint)) else {
            return PodEviction::EvictNow;
        };
        if let Some(secs) = tol.toleration_seconds {
            let at = taint.time_added.unwrap_or(now) + secs.max(0);
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
    }
    match deadline {
        None => PodEviction::Keep,
        Some(at) if at <= now => PodEviction::EvictNow,
        Some(at) => PodEviction::EvictAt(at),
    }
}

/// The event Kubernetes' taint manager records when it deletes a pod.
pub fn eviction_event(pod: &Value) -> EventSpec {
    EventSpec::normal(
        ObjectRef::to(pod, "v1", "Pod"),
        "TaintManagerEviction",
        format!(
            "Marking for deletion Pod {}/{}",
            meta::namespace(pod),
            meta::name(pod)
        ),
    )
}

/// The `DisruptionTarget` condition Kubernetes sets on a pod before a taint eviction.
pub fn eviction_condition(now: i64) -> Value {
    json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": meta::format_rfc3339(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn ts(t: i64) -> String {
        meta::format_rfc3339(t)
    }

    fn node_with(ready: Option<(&str, i64)>, taints: Value) -> Value {
        let mut conditions = vec![];
        if let Some((status, hb)) = ready {
            conditions.push(json!({"type": "Ready", "status": status, "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(T0 - 1000)}));
            for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
                conditions.push(json!({"type": t, "status": "False", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(T0 - 1000)}));
            }
        }
        json!({
            "metadata": {"name": "n1", "uid": "u1", "creationTimestamp": ts(T0 - 100)},
            "spec": {"taints": taints},
            "status": {"conditions": conditions},
        })
    }

    fn lease(renew: &str) -> Value {
        json!({"metadata": {"name": "n1", "namespace": LEASE_NAMESPACE}, "spec": {"holderIdentity": "n1", "renewTime": renew}})
    }

    fn ne(key: &str, added: i64) -> Value {
        json!({"key": key, "effect": "NoExecute", "timeAdded": ts(added)})
    }

    fn ns(key: &str) -> Value {
        json!({"key": key, "effect": "NoSchedule"})
    }

    /// A compact summary of actions: "pods", "unknown", "+key:Effect", "-key:Effect", "event:Reason".
    fn summary(actions: &[NodeAction]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                NodeAction::MarkPodsNotReady { .. } => "pods".to_string(),
                NodeAction::MarkUnknown { .. } => "unknown".to_string(),
                NodeAction::AddTaint { taint, .. } => format!(
                    "+{}:{}",
                    taint["key"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("node.kubernetes.io/"),
                    taint["effect"].as_str().unwrap()
                ),
                NodeAction::RemoveTaint { key, effect, .. } => {
                    format!(
                        "-{}:{effect}",
                        key.trim_start_matches("node.kubernetes.io/")
                    )
                }
                NodeAction::Event(e) => format!("event:{}", e.reason),
            })
            .collect()
    }

    #[test]
    fn heartbeat_timing() {
        let cfg = NodeLifecycleConfig::default();
        let gone = vec![
            "pods",
            "unknown",
            "+unreachable:NoExecute",
            "+unreachable:NoSchedule",
            "event:NodeNotReady",
        ];
        /// name, node, lease, now, the actions, the recheck.
        type Case<'a> = (
            &'a str,
            Value,
            Option<Value>,
            i64,
            Vec<&'a str>,
            Option<i64>,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("fresh heartbeat", node_with(Some(("True", T0)), json!([])), None, T0 + 5, vec![], Some(16)),
            ("exactly the grace period", node_with(Some(("True", T0)), json!([])), None, T0 + 20, vec![], Some(1)),
            ("just over the grace period", node_with(Some(("True", T0)), json!([])), None, T0 + 21, gone.clone(), None),
            ("a fresh lease keeps it alive", node_with(Some(("True", T0)), json!([])),
             Some(lease(&format!("{}.123456Z", ts(T0 + 15).trim_end_matches('Z')))), T0 + 30, vec![], Some(6)),
            ("an old lease, a fresh heartbeat", node_with(Some(("True", T0 + 25)), json!([])),
             Some(lease(&ts(T0))), T0 + 30, vec![], Some(16)),
            ("both old", node_with(Some(("True", T0)), json!([])), Some(lease(&ts(T0 + 5))), T0 + 26, gone.clone(), None),
            ("never reported, within startup grace", node_with(None, json!([])), None, T0 - 100 + 60, vec![], Some(1)),
            ("never reported, past startup grace", node_with(None, json!([])), None, T0 - 100 + 61,
             vec!["pods", "unknown", "+unreachable:NoExecute", "+unreachable:NoSchedule"], None),
            ("never reported but renewing its lease", node_with(None, json!([])), Some(lease(&ts(T0 + 50))), T0 + 100, vec![], Some(11)),
            ("already unknown and tainted: nothing", {
                let mut n = node_with(Some(("True", T0)), json!([ne(TAINT_UNREACHABLE, T0 + 21), ns(TAINT_UNREACHABLE)]));
                n["status"]["conditions"] = unknown_conditions(&n, T0 + 21).unwrap();
                n
             }, None, T0 + 100, vec![], None),
            ("already unknown, taints missing", {
                let mut n = node_with(Some(("True", T0)), json!([]));
                n["status"]["conditions"] = unknown_conditions(&n, T0 + 21).unwrap();
                n
             }, None, T0 + 100, vec!["+unreachable:NoExecute", "+unreachable:NoSchedule"], None),
            ("kubelet says NotReady", node_with(Some(("False", T0)), json!([])), None, T0 + 1,
             vec!["+not-ready:NoExecute", "+not-ready:NoSchedule"], Some(20)),
            ("NotReady after unreachable swaps the taints",
             node_with(Some(("False", T0)), json!([ne(TAINT_UNREACHABLE, T0 - 50), ns(TAINT_UNREACHABLE)])), None, T0 + 1,
             vec!["+not-ready:NoExecute", "+not-ready:NoSchedule", "-unreachable:NoExecute", "-unreachable:NoSchedule"], Some(20)),
            ("NotReady and tainted: nothing",
             node_with(Some(("False", T0)), json!([ne(TAINT_NOT_READY, T0), ns(TAINT_NOT_READY)])), None, T0 + 1, vec![], Some(20)),
            ("Ready again removes the taints",
             node_with(Some(("True", T0)), json!([ne(TAINT_UNREACHABLE, T0 - 50), ns(TAINT_UNREACHABLE), ns("user/own")])), None, T0 + 1,
             vec!["-unreachable:NoExecute", "-unreachable:NoSchedule"], Some(20)),
            ("Ready and clean: nothing", node_with(Some(("True", T0)), json!([])), None, T0, vec![], Some(21)),
            ("memory pressure taints", {
                let mut n = node_with(Some(("True", T0)), json!([]));
                n["status"]["conditions"][1]["status"] = json!("True");
                n
             }, None, T0, vec!["+memory-pressure:NoSchedule"], Some(21)),
            ("cordon taints, uncordon untaints", {
                let mut n = node_with(Some(("True", T0)), json!([]));
                n["spec"]["unschedulable"] = json!(true);
                n
             }, None, T0, vec!["+unschedulable:NoSchedule"], Some(21)),
            ("uncordoned", node_with(Some(("True", T0)), json!([ns(TAINT_UNSCHEDULABLE)])), None, T0, vec!["-unschedulable:NoSchedule"], Some(21)),
            ("starting node keeps the kubelet's not-ready taint", node_with(None, json!([ns(TAINT_NOT_READY)])), None, T0 - 50, vec![], Some(11)),
        ];
        for (name, node, lease, now, want, recheck) in cases {
            let (actions, got_recheck) = node_health(&node, lease.as_ref(), &cfg, now);
            assert_eq!(summary(&actions), want, "{name}");
            assert_eq!(got_recheck, recheck, "{name}: recheck");
            // Applying the actions reaches a state that needs none.
            let mut after = node.clone();
            for a in &actions {
                if let NodeAction::MarkUnknown { conditions, .. } = a {
                    after["status"]["conditions"] = conditions.clone();
                }
            }
            if let Some(t) = taints_after(&node, &actions) {
                after["spec"]["taints"] = t;
            }
            let (again, _) = node_health(&after, lease.as_ref(), &cfg, now);
            assert_eq!(summary(&again), Vec::<String>::new(), "{name}: idempotent");
        }
    }

    #[test]
    fn marking_unknown_rewrites_the_kubelet_conditions() {
        let node = node_with(Some(("True", T0)), json!([]));
        let (actions, _) = node_health(&node, None, &NodeLifecycleConfig::default(), T0 + 30);
        let NodeAction::MarkUnknown {
            node: n,
            conditions,
        } = &actions[1]
        else {
            panic!("{actions:?}")
        };
        assert_eq!(n, "n1");
        let ready = &conditions[0];
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], "NodeStatusUnknown");
        assert_eq!(ready["message"], "Kubelet stopped posting node status.");
        assert_eq!(ready["lastHeartbeatTime"], ts(T0));
        assert_eq!(ready["lastTransitionTime"], ts(T0 + 30));
        for c in conditions.as_array().unwrap() {
            assert_eq!(c["status"], "Unknown", "{c}");
        }
        let NodeAction::AddTaint { taint, .. } = &actions[2] else {
            panic!()
        };
        assert_eq!(
            taint,
            &json!({"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": ts(T0 + 30)})
        );
        let NodeAction::Event(e) = actions.last().unwrap() else {
            panic!()
        };
        assert_eq!(e.message, "Node n1 status is now: NodeNotReady");
        assert_eq!(e.involved.kind, "Node");

        // A node that never reported gets "never updated" conditions.
        let (actions, _) = node_health(
            &node_with(None, json!([])),
            None,
            &NodeLifecycleConfig::default(),
            T0 + 100,
        );
        let NodeAction::MarkUnknown { conditions, .. } = &actions[1] else {
            panic!()
        };
        assert_eq!(conditions.as_array().unwrap().len(), 4);
        assert_eq!(conditions[0]["reason"], "NodeStatusNeverUpdated");
        assert_eq!(
            conditions[0]["message"],
            "Kubelet never posted node status."
        );
        assert_eq!(conditions[0]["lastHeartbeatTime"], ts(T0 - 100));

        // An already Unknown Ready keeps its transition time; a missing pressure condition is added.
        let mut partial = node_with(Some(("True", T0)), json!([]));
        partial["status"]["conditions"] =
            json!([{"type": "Ready", "status": "Unknown", "lastTransitionTime": ts(T0 + 1)}]);
        let new = unknown_conditions(&partial, T0 + 50).unwrap();
        assert_eq!(new[0]["lastTransitionTime"], ts(T0 + 1));
        assert_eq!(new.as_array().unwrap().len(), 4);
    }

    #[test]
    fn taints_after_applies_only_real_changes() {
        let node = node_with(Some(("True", T0)), json!([ns("a")]));
        let add_a = NodeAction::AddTaint {
            node: "n1".into(),
            taint: ns("a"),
        };
        let add_b = NodeAction::AddTaint {
            node: "n1".into(),
            taint: ns("b"),
        };
        let other = NodeAction::AddTaint {
            node: "n2".into(),
            taint: ns("c"),
        };
        let rm_a = NodeAction::RemoveTaint {
            node: "n1".into(),
            key: "a".into(),
            effect: "NoSchedule".into(),
        };
        let rm_x = NodeAction::RemoveTaint {
            node: "n1".into(),
            key: "a".into(),
            effect: "NoExecute".into(),
        };
        assert_eq!(
            taints_after(&node, &[add_a.clone(), other.clone(), rm_x]),
            None
        );
        assert_eq!(
            taints_after(&node, &[add_b]),
            Some(json!([ns("a"), ns("b")]))
        );
        assert_eq!(taints_after(&node, &[rm_a]), Some(json!([])));
    }

    #[test]
    fn pods_are_marked_not_ready_once() {
        let pod = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(T0)},
        ]}});
        let new = pod_not_ready_conditions(&pod, T0 + 9).unwrap();
        assert_eq!(new[1]["status"], "False");
        assert_eq!(new[1]["lastTransitionTime"], ts(T0 + 9));
        assert_eq!(new[0], pod["status"]["conditions"][0]);
        let again = json!({"status": {"conditions": new}});
        assert_eq!(pod_not_ready_conditions(&again, T0 + 10), None);
        assert_eq!(pod_not_ready_conditions(&json!({"status": {}}), T0), None);
    }

    #[test]
    fn eviction_times() {
        let node = |taints: Value| json!({"metadata": {"name": "n1"}, "spec": {"taints": taints}});
        let pod = |tolerations: Value| {
            json!({"metadata": {"name": "p", "namespace": "default"},
                   "spec": {"nodeName": "n1", "tolerations": tolerations}, "status": {"phase": "Running"}})
        };
        let default_tolerations = json!([
            {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]);
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Value, i64, PodEviction)> = vec![
            ("no taints", node(json!([])), pod(json!([])), T0, PodEviction::Keep),
            ("NoSchedule does not evict", node(json!([ns(TAINT_UNREACHABLE)])), pod(json!([])), T0, PodEviction::Keep),
            ("untolerated NoExecute", node(json!([ne(TAINT_UNREACHABLE, T0)])), pod(json!([])), T0, PodEviction::EvictNow),
            ("tolerated forever", node(json!([ne(TAINT_UNREACHABLE, T0)])),
             pod(json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}])), T0 + 10_000, PodEviction::Keep),
            ("default tolerations: 300s after the taint", node(json!([ne(TAINT_UNREACHABLE, T0)])), pod(default_tolerations.clone()), T0 + 10, PodEviction::EvictAt(T0 + 300)),
            ("default tolerations: just before", node(json!([ne(TAINT_UNREACHABLE, T0)])), pod(default_tolerations.clone()), T0 + 299, PodEviction::EvictAt(T0 + 300)),
            ("default tolerations: time is up", node(json!([ne(TAINT_UNREACHABLE, T0)])), pod(default_tolerations.clone()), T0 + 300, PodEviction::EvictNow),
            ("30 seconds", node(json!([ne(TAINT_NOT_READY, T0)])),
             pod(json!([{"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}])), T0, PodEviction::EvictAt(T0 + 30)),
            ("the earliest of two taints", node(json!([ne(TAINT_NOT_READY, T0 + 100), ne("custom", T0)])),
             pod(json!([{"key": TAINT_NOT_READY, "operator": "Exists", "tolerationSeconds": 30},
                        {"key": "custom", "operator": "Exists", "tolerationSeconds": 600}])), T0 + 100, PodEviction::EvictAt(T0 + 130)),
            ("one tolerated, one not", node(json!([ne(TAINT_NOT_READY, T0), ne("custom", T0)])),
             pod(json!([{"key": TAINT_NOT_READY, "operator": "Exists"}])), T0, PodEviction::EvictNow),
            ("zero seconds", node(json!([ne("custom", T0)])), pod(json!([{"key": "custom", "operator": "Exists", "tolerationSeconds": 0}])), T0, PodEviction::EvictNow),
            ("negative seconds", node(json!([ne("custom", T0)])), pod(json!([{"key": "custom", "operator": "Exists", "tolerationSeconds": -5}])), T0, PodEviction::EvictNow),
            ("no timeAdded counts from now", node(json!([{"key": "custom", "effect": "NoExecute"}])),
             pod(json!([{"key": "custom", "operator": "Exists", "tolerationSeconds": 60}])), T0, PodEviction::EvictAt(T0 + 60)),
            ("the first matching toleration decides", node(json!([ne("custom", T0)])),
             pod(json!([{"key": "custom", "operator": "Exists", "tolerationSeconds": 60}, {"operator": "Exists"}])), T0, PodEviction::EvictAt(T0 + 60)),
            ("tolerate-everything stays", node(json!([ne(TAINT_UNREACHABLE, T0), ne("custom", T0)])), pod(json!([{"operator": "Exists"}])), T0, PodEviction::Keep),
            ("a NoSchedule toleration does not tolerate NoExecute", node(json!([ne("custom", T0)])),
             pod(json!([{"key": "custom", "operator": "Exists", "effect": "NoSchedule"}])), T0, PodEviction::EvictNow),
        ];
        for (name, node, pod, now, want) in cases {
            assert_eq!(evictions(&pod, &node, now), want, "{name}");
        }
        let n = node(json!([ne(TAINT_UNREACHABLE, T0)]));
        let mut deleting = pod(json!([]));
        deleting["metadata"]["deletionTimestamp"] = json!(ts(T0));
        assert_eq!(evictions(&deleting, &n, T0), PodEviction::Keep);
        let mut done = pod(json!([]));
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(evictions(&done, &n, T0), PodEviction::Keep);
        let mut elsewhere = pod(json!([]));
        elsewhere["spec"]["nodeName"] = json!("n2");
        assert_eq!(evictions(&elsewhere, &n, T0), PodEviction::Keep);
        let e = eviction_event(&pod(json!([])));
        assert_eq!(
            (e.reason.as_str(), e.message.as_str()),
            ("TaintManagerEviction", "Marking for deletion Pod default/p")
        );
        assert_eq!(eviction_condition(T0)["reason"], "DeletionByTaintManager");
    }
}
