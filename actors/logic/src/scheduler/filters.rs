//! The scheduler's filters, in Kubernetes' order: a node either fits a pod or fails the
//! first filter that rejects it, with that filter's reasons (worded as Kubernetes words
//! them in `FailedScheduling`).

use super::pod::{NodeSelectorTerm, PodNeeds};
use super::state::{NodeInfo, Readiness};
use super::taints::{
    tolerated, Effect, Taint, Toleration, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
};

pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_NOT_READY: &str = "node(s) were not ready";
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";

/// Why a node does not fit, as cheap data (the words are made only when needed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Cordoned and the pod does not tolerate `node.kubernetes.io/unschedulable`.
    Unschedulable,
    /// The index in the node's taints of the first untolerated NoSchedule/NoExecute taint.
    Taint(usize),
    /// `Ready` is not `True` and the pod does not tolerate the matching taint.
    NotReady,
    /// nodeSelector or required node affinity.
    Affinity,
    Ports,
    Resources(Insufficient),
}

/// The resources a node lacks for a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Insufficient {
    pub pods: bool,
    pub cpu: bool,
    pub memory: bool,
    pub ephemeral_storage: bool,
    pub scalar: Vec<String>,
}

impl Failure {
    /// The reasons as Kubernetes prints them.
    pub fn reasons(&self, node: &NodeInfo) -> Vec<String> {
        match self {
            Failure::Unschedulable => vec![REASON_UNSCHEDULABLE.to_string()],
            Failure::Taint(i) => vec![format!(
                "node(s) had untolerated taint {}",
                node.taints[*i].describe()
            )],
            Failure::NotReady => vec![REASON_NOT_READY.to_string()],
            Failure::Affinity => vec![REASON_AFFINITY.to_string()],
            Failure::Ports => vec![REASON_PORTS.to_string()],
            Failure::Resources(r) => {
                let mut out = Vec::new();
                if r.pods {
                    out.push(REASON_TOO_MANY_PODS.to_string());
                }
                if r.cpu {
                    out.push("Insufficient cpu".to_string());
                }
                if r.memory {
                    out.push("Insufficient memory".to_string());
                }
                if r.ephemeral_storage {
                    out.push("Insufficient ephemeral-storage".to_string());
                }
                for s in &r.scalar {
                    out.push(format!("Insufficient {s}"));
                }
                out
            }
        }
    }

    /// Whether evicting pods could make the node fit (Kubernetes' `Unschedulable` as
    /// against `UnschedulableAndUnresolvable`): only ports and resources.
    pub fn resolvable(&self) -> bool {
        matches!(self, Failure::Ports | Failure::Resources(_))
    }
}

/// Runs the filters in order; the first failure decides.
pub fn filter(node: &NodeInfo, pod: &PodNeeds) -> Result<(), Failure> {
    if node.unschedulable && !tolerates_key(&pod.tolerations, TAINT_UNSCHEDULABLE) {
        return Err(Failure::Unschedulable);
    }
    if let Some(i) = untolerated_taint(&node.taints, &pod.tolerations) {
        return Err(Failure::Taint(i));
    }
    match node.readiness {
        Readiness::Ready => {}
        Readiness::NotReady if tolerates_key(&pod.tolerations, TAINT_NOT_READY) => {}
        Readiness::Unknown if tolerates_key(&pod.tolerations, TAINT_UNREACHABLE) => {}
        _ => return Err(Failure::NotReady),
    }
    if !matches_affinity(node, pod) {
        return Err(Failure::Affinity);
    }
    if !pod.usage.host_ports.is_empty()
        && pod
            .usage
            .host_ports
            .iter()
            .any(|want| node.host_ports.iter().any(|used| used.conflicts(want)))
    {
        return Err(Failure::Ports);
    }
    fits_resources(node, pod)
}

/// Whether the pod tolerates `key:NoSchedule` (no value), as the readiness and
/// cordon checks ask.
fn tolerates_key(tolerations: &[Toleration], key: &str) -> bool {
    tolerations
        .iter()
        .any(|t| t.tolerates_parts(key, "", &Effect::NoSchedule))
}

/// The first NoSchedule or NoExecute taint none of the tolerations tolerates.
pub fn untolerated_taint(taints: &[Taint], tolerations: &[Toleration]) -> Option<usize> {
    taints.iter().position(|t| {
        matches!(t.effect, Effect::NoSchedule | Effect::NoExecute) && !tolerated(tolerations, t)
    })
}

fn matches_affinity(node: &NodeInfo, pod: &PodNeeds) -> bool {
    for (k, v) in &pod.node_selector {
        if node.labels.get(k) != Some(v) {
            return false;
        }
    }
    match &pod.required_terms {
        None => true,
        Some(terms) => any_term(terms, node),
    }
}

fn any_term(terms: &[NodeSelectorTerm], node: &NodeInfo) -> bool {
    terms.iter().any(|t| t.matches(&node.labels, &node.name))
}

fn fits_resources(node: &NodeInfo, pod: &PodNeeds) -> Result<(), Failure> {
    let want = &pod.usage.requests;
    let alloc = &node.allocatable;
    let used = &node.requested;
    let mut miss = Insufficient {
        pods: node.pod_count + 1 > node.allowed_pods,
        cpu: want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu - used.milli_cpu,
        memory: want.memory > 0 && want.memory > alloc.memory - used.memory,
        ephemeral_storage: want.ephemeral_storage > 0
            && want.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage,
        scalar: Vec::new(),
    };
    for (name, &amount) in &want.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        let taken = used.scalar.get(name).copied().unwrap_or(0);
        if amount > 0 && amount > have - taken {
            miss.scalar.push(name.clone());
        }
    }
    if miss == Insufficient::default() {
        Ok(())
    } else {
        Err(Failure::Resources(miss))
    }
}
