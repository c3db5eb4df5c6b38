//! The scheduler's scores for a feasible node, each 0..=100 as in Kubernetes, and their
//! weighted sum: LeastAllocated and BalancedAllocation (cpu and memory), spreading the pods
//! of one owner over nodes and zones, preferred node affinity and PreferNoSchedule taints.

use std::collections::HashMap;

use super::pod::PodNeeds;
use super::state::NodeInfo;
use super::taints::{Effect, Toleration};

/// Kubernetes' `MaxNodeScore`.
pub const MAX_SCORE: i64 = 100;

/// Weights of the default profile (NodeResourcesFit and BalancedAllocation 1, spreading 2,
/// NodeAffinity 2, TaintToleration 3).
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
pub const WEIGHT_BALANCED: i64 = 1;
pub const WEIGHT_SPREAD: i64 = 2;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;

/// Zones weigh two thirds of the spreading score when nodes carry zones (SelectorSpread).
const ZONE_WEIGHTING: f64 = 2.0 / 3.0;

/// One node's scores, each normalized to 0..=100, and the weighted total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeScores {
    pub least_allocated: i64,
    pub balanced_allocation: i64,
    pub spread: i64,
    pub node_affinity: i64,
    pub taint_toleration: i64,
    pub total: i64,
}

/// A feasible node's raw values before normalization across all feasible nodes.
#[derive(Clone, Debug)]
pub struct Raw<'a> {
    pub node: &'a NodeInfo,
    pub least_allocated: i64,
    pub balanced_allocation: i64,
    /// Pods of the pod's owner already on the node.
    pub owner_pods: i64,
    /// Sum of the weights of the preferred terms the node matches.
    pub affinity: i64,
    /// PreferNoSchedule taints the pod does not tolerate.
    pub intolerable: i64,
}

impl<'a> Raw<'a> {
    /// `owner` is the id the state counts the pod's owner by (`None`: no pod of it yet).
    pub fn of(node: &'a NodeInfo, pod: &PodNeeds, owner: Option<u32>) -> Raw<'a> {
        let u = &pod.usage;
        let cpu_nz = node.nonzero_milli_cpu + u.nonzero_milli_cpu;
        let mem_nz = node.nonzero_memory + u.nonzero_memory;
        let least_allocated = least_allocated(&[
            (cpu_nz, node.allocatable.milli_cpu),
            (mem_nz, node.allocatable.memory),
        ]);
        let cpu = node.requested.milli_cpu + u.requests.milli_cpu;
        let mem = node.requested.memory + u.requests.memory;
        let balanced_allocation = balanced(&[
            (cpu, node.allocatable.milli_cpu),
            (mem, node.allocatable.memory),
        ]);
        let owner_pods = owner.map_or(0, |id| node.owner_pods(id));
        let affinity = pod
            .preferred_terms
            .iter()
            .filter(|(_, t)| t.matches(&node.labels, &node.name))
            .map(|(w, _)| *w)
            .sum();
        let intolerable = node
            .taints
            .iter()
            .filter(|t| t.effect == Effect::PreferNoSchedule)
            .filter(|t| !prefer_tolerated(&pod.tolerations, t))
            .count() as i64;
        Raw {
            node,
            least_allocated,
            balanced_allocation,
            owner_pods,
            affinity,
            intolerable,
        }
    }
}

/// Kubernetes' TaintToleration score counts only tolerations that apply to
/// PreferNoSchedule (effect empty or PreferNoSchedule).
fn prefer_tolerated(tolerations: &[Toleration], taint: &super::taints::Taint) -> bool {
    tolerations
        .iter()
        .filter(|t| {
            t.effect
                .as_ref()
                .is_none_or(|e| *e == Effect::PreferNoSchedule)
        })
        .any(|t| t.tolerates(taint))
}

/// `(allocatable - requested) * 100 / allocatable` per resource, averaged (equal weights);
/// resources the node has none of are skipped.
pub fn least_allocated(resources: &[(i64, i64)]) -> i64 {
    let mut sum = 0;
    let mut n = 0;
    for &(requested, allocatable) in resources {
        if allocatable <= 0 {
            continue;
        }
        n += 1;
        if requested <= allocatable {
            sum += (allocatable - requested) * MAX_SCORE / allocatable;
        }
    }
    if n == 0 {
        0
    } else {
        sum / n
    }
}

/// `(1 - standard deviation of the requested fractions) * 100` (for two resources the
/// deviation is half their difference), fractions capped at 1.
pub fn balanced(resources: &[(i64, i64)]) -> i64 {
    let mut fractions = [0f64; 8];
    let mut n = 0;
    for &(r, a) in resources {
        if a > 0 && n < fractions.len() {
            fractions[n] = (r as f64 / a as f64).min(1.0);
            n += 1;
        }
    }
    let f = &fractions[..n];
    let std = match n {
        0 | 1 => 0.0,
        2 => ((f[0] - f[1]) / 2.0).abs(),
        _ => {
            let mean = f.iter().sum::<f64>() / n as f64;
            (f.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt()
        }
    };
    ((1.0 - std) * MAX_SCORE as f64) as i64
}

/// Normalizes the raw values across the feasible nodes and weighs them.
pub fn normalize(raws: &[Raw<'_>], pod: &PodNeeds) -> Vec<NodeScores> {
    let spread = spread_scores(raws, pod);
    let max_affinity = raws.iter().map(|r| r.affinity).max().unwrap_or(0);
    let max_intolerable = raws.iter().map(|r| r.intolerable).max().unwrap_or(0);
    raws.iter()
        .zip(spread)
        .map(|(r, spread)| {
            let node_affinity = if max_affinity > 0 {
                r.affinity.max(0) * MAX_SCORE / max_affinity
            } else {
                0
            };
            let taint_toleration = if max_intolerable > 0 {
                MAX_SCORE - r.intolerable * MAX_SCORE / max_intolerable
            } else {
                MAX_SCORE
            };
            let total = r.least_allocated * WEIGHT_LEAST_ALLOCATED
                + r.balanced_allocation * WEIGHT_BALANCED
                + spread * WEIGHT_SPREAD
                + node_affinity * WEIGHT_NODE_AFFINITY
                + taint_toleration * WEIGHT_TAINT_TOLERATION;
            NodeScores {
                least_allocated: r.least_allocated,
                balanced_allocation: r.balanced_allocation,
                spread,
                node_affinity,
                taint_toleration,
                total,
            }
        })
        .collect()
}

/// SelectorSpread: fewer pods of the same owner on a node (and in its zone) score higher;
/// a pod without an owner, or an owner with no pods yet, scores 100 everywhere.
fn spread_scores(raws: &[Raw<'_>], pod: &PodNeeds) -> Vec<i64> {
    if pod.usage.owner.is_none() {
        return vec![MAX_SCORE; raws.len()];
    }
    let max_node = raws.iter().map(|r| r.owner_pods).max().unwrap_or(0);
    let mut zones: HashMap<&str, i64> = HashMap::new();
    for r in raws {
        if let Some(z) = r.node.zone.as_deref() {
            *zones.entry(z).or_insert(0) += r.owner_pods;
        }
    }
    let max_zone = zones.values().copied().max().unwrap_or(0);
    let have_zones = !zones.is_empty();
    raws.iter()
        .map(|r| {
            let mut score = MAX_SCORE as f64;
            if max_node > 0 {
                score = MAX_SCORE as f64 * (max_node - r.owner_pods) as f64 / max_node as f64;
            }
            if have_zones {
                if let Some(z) = r.node.zone.as_deref() {
                    let mut zone_score = MAX_SCORE as f64;
                    if max_zone > 0 {
                        zone_score =
                            MAX_SCORE as f64 * (max_zone - zones[z]) as f64 / max_zone as f64;
                    }
                    score = score * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score;
                }
            }
            score as i64
        })
        .collect()
}
