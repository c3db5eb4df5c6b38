//! The scheduler's decisions: which node a pending pod goes to, or why none fits.
//!
//! [`ClusterState`] holds every node parsed once and, per node, running totals of what its
//! pods (bound, or assumed while a binding is in flight) request, so a decision costs one
//! pass over the nodes and never re-adds pods. [`schedule`] runs Kubernetes' filters in its
//! order (cordon, taints, readiness, node selector and required node affinity, host ports,
//! resources), scores the nodes that pass (LeastAllocated, BalancedAllocation, spreading of
//! one owner's pods, preferred node affinity, PreferNoSchedule taints; the default profile's
//! weights) and picks the best, breaking ties towards the node with fewer pods and then by a
//! hash of the pod's name, so equal nodes do not all get the first pick. When nothing fits,
//! the [`FitError`] message is Kubernetes' `FailedScheduling` text. [`explain`] gives the
//! same evaluation per node, for `navctl plan`.
//!
//! Not modelled: preemption (the message says what Kubernetes says when there is nothing to
//! preempt), inter-pod affinity, explicit topology spread constraints, volumes, image
//! locality, and sampling a percentage of nodes (every node is evaluated).

mod filters;
mod pod;
mod scores;
mod state;
pub mod taints;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

use crate::events::{EventSpec, ObjectRef};
use crate::meta;

pub use filters::{
    REASON_AFFINITY, REASON_NOT_READY, REASON_PORTS, REASON_TOO_MANY_PODS, REASON_UNSCHEDULABLE,
};
pub use pod::{
    allowed_pods, pod_requests, HostPort, PodUsage, Resources, DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
};
pub use scores::{
    NodeScores, MAX_SCORE, WEIGHT_BALANCED, WEIGHT_LEAST_ALLOCATED, WEIGHT_NODE_AFFINITY,
    WEIGHT_SPREAD, WEIGHT_TAINT_TOLERATION,
};
pub use state::{ClusterState, NodeInfo, Readiness};
pub use taints::{TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE};

use filters::filter;
use pod::PodNeeds;
use scores::{normalize, Raw};

/// Kubernetes' message when the cluster has no node at all.
pub const NO_NODES_MESSAGE: &str = "no nodes available to schedule pods";

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    Node(String),
    Unschedulable(FitError),
}

/// Why no node fits: Kubernetes' message, and each filter reason with how many nodes gave
/// it (a node failing on several resources gives each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub message: String,
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FitError {}

/// One node's evaluation for a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeVerdict {
    pub node: String,
    /// Empty when the pod fits; otherwise the reasons of the first filter that failed.
    pub reasons: Vec<String>,
    /// The scores, for a node that fits.
    pub scores: Option<NodeScores>,
    /// Whether [`schedule`] picks this node.
    pub chosen: bool,
}

impl NodeVerdict {
    pub fn fits(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Picks the node for `pod`, or says why none fits.
pub fn schedule(state: &ClusterState, pod: &Value) -> Placement {
    let needs = PodNeeds::of(pod);
    let owner = needs.usage.owner.as_deref().and_then(|o| state.owner_id(o));
    let nodes = state.all_nodes();
    let mut raws = Vec::with_capacity(nodes.len());
    let mut present = 0;
    for n in nodes.iter().filter(|n| n.present) {
        present += 1;
        if filter(n, &needs).is_ok() {
            raws.push(Raw::of(n, &needs, owner));
        }
    }
    if present == 0 {
        return Placement::Unschedulable(FitError {
            message: NO_NODES_MESSAGE.to_string(),
            reasons: BTreeMap::new(),
        });
    }
    match raws.len() {
        0 => Placement::Unschedulable(fit_error(state, &needs)),
        1 => Placement::Node(raws[0].node.name.clone()),
        _ => {
            let scores = normalize(&raws, &needs);
            let i = pick(&raws, &scores, &needs.key);
            Placement::Node(raws[i].node.name.clone())
        }
    }
}

/// Every known node's verdict for `pod` (sorted by node name): the filter reasons of the
/// nodes that do not fit, the scores of those that do, and which one [`schedule`] picks.
pub fn explain(state: &ClusterState, pod: &Value) -> Vec<NodeVerdict> {
    let needs = PodNeeds::of(pod);
    let owner = needs.usage.owner.as_deref().and_then(|o| state.owner_id(o));
    let mut raws = Vec::new();
    let mut out = Vec::new();
    for n in state.all_nodes().iter().filter(|n| n.present) {
        match filter(n, &needs) {
            Ok(()) => raws.push(Raw::of(n, &needs, owner)),
            Err(f) => out.push(NodeVerdict {
                node: n.name.clone(),
                reasons: f.reasons(n),
                scores: None,
                chosen: false,
            }),
        }
    }
    if !raws.is_empty() {
        let scores = normalize(&raws, &needs);
        let chosen = pick(&raws, &scores, &needs.key);
        for (i, (r, s)) in raws.iter().zip(scores).enumerate() {
            out.push(NodeVerdict {
                node: r.node.name.clone(),
                reasons: Vec::new(),
                scores: Some(s),
                chosen: i == chosen,
            });
        }
    }
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// The best total; among equals the node with fewest pods; among those one chosen by a
/// hash of the pod's key.
fn pick(raws: &[Raw<'_>], scores: &[NodeScores], key: &str) -> usize {
    let best = scores.iter().map(|s| s.total).max().unwrap_or(0);
    let fewest = raws
        .iter()
        .zip(scores)
        .filter(|(_, s)| s.total == best)
        .map(|(r, _)| r.node.pod_count)
        .min()
        .unwrap_or(0);
    let tied: Vec<usize> = (0..raws.len())
        .filter(|&i| scores[i].total == best && raws[i].node.pod_count == fewest)
        .collect();
    tied[(fnv1a(key) % tied.len() as u64) as usize]
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Kubernetes' `FitError` text: `0/N nodes are available: <count> <reason>, ....` with the
/// `"<count> <reason>"` strings sorted, then what default preemption says when it finds
/// nothing to preempt.
fn fit_error(state: &ClusterState, needs: &PodNeeds) -> FitError {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let (mut total, mut not_helpful, mut no_victims) = (0usize, 0usize, 0usize);
    for n in state.all_nodes().iter().filter(|n| n.present) {
        total += 1;
        if let Err(f) = filter(n, needs) {
            for r in f.reasons(n) {
                *reasons.entry(r).or_insert(0) += 1;
            }
            if f.resolvable() {
                no_victims += 1;
            } else {
                not_helpful += 1;
            }
        }
    }
    let histogram = |counts: Vec<(usize, String)>| -> String {
        let mut parts: Vec<String> = counts
            .into_iter()
            .filter(|(c, _)| *c > 0)
            .map(|(c, r)| format!("{c} {r}"))
            .collect();
        parts.sort();
        parts.join(", ")
    };
    let filter_msg = histogram(reasons.iter().map(|(r, c)| (*c, r.clone())).collect());
    let mut message = format!("0/{total} nodes are available: {filter_msg}.");
    if needs.never_preempts {
        message.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
    } else {
        let preempt_msg = histogram(vec![
            (
                not_helpful,
                "Preemption is not helpful for scheduling".to_string(),
            ),
            (
                no_victims,
                "No preemption victims found for incoming pod".to_string(),
            ),
        ]);
        message.push_str(&format!(
            " preemption: 0/{total} nodes are available: {preempt_msg}."
        ));
    }
    FitError { message, reasons }
}

/// The `Binding` (`pods/binding` subresource body) placing `pod` on `node`.
pub fn binding(pod: &Value, node: &str) -> Value {
    let mut metadata = json!({
        "name": meta::name(pod),
        "namespace": meta::namespace(pod),
    });
    if !meta::uid(pod).is_empty() {
        metadata["uid"] = json!(meta::uid(pod));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    })
}

/// The pod's `PodScheduled` condition after a failed attempt (Kubernetes' reason
/// `Unschedulable`, the fit error's message).
pub fn unschedulable_condition(err: &FitError, now: i64) -> Value {
    json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": err.message,
        "lastProbeTime": Value::Null,
        "lastTransitionTime": meta::format_rfc3339(now),
    })
}

/// The `Scheduled` event: `Successfully assigned default/web-1 to n1`.
pub fn scheduled_event(pod: &Value, node: &str) -> EventSpec {
    EventSpec::normal(
        ObjectRef::to(pod, "v1", "Pod"),
        "Scheduled",
        format!(
            "Successfully assigned {}/{} to {node}",
            meta::namespace(pod),
            meta::name(pod)
        ),
    )
}

/// The `FailedScheduling` warning with the fit error's message.
pub fn failed_event(pod: &Value, err: &FitError) -> EventSpec {
    EventSpec::warning(
        ObjectRef::to(pod, "v1", "Pod"),
        "FailedScheduling",
        err.message.clone(),
    )
}
