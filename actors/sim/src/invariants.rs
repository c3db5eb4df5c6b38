//! What must hold: safety properties checked after every step that wrote (a binding is
//! final, pods go only to nodes that exist, no node runs more pods than it takes, one
//! controller per object), and
//! what the system must reach once faults stop and it settles (every ReplicaSet owns
//! exactly its replicas, every Deployment converged on its template, nothing orphaned,
//! every pod running).

use std::collections::{BTreeMap, BTreeSet};

use navarch_logic::deployment::equal_ignore_hash;
use navarch_logic::meta;
use navarch_logic::replicaset::is_active;
use serde_json::Value;

use crate::api::{Api, Kind};
use crate::env::Violation;
use crate::kubelet::PODS_PER_NODE;

/// The names of the invariants, as failures report them.
pub mod name {
    pub const BINDING_IS_FINAL: &str = "binding-is-final";
    pub const BOUND_TO_EXISTING_NODE: &str = "bound-to-existing-node";
    pub const NODE_CAPACITY: &str = "node-capacity";
    pub const ONE_CONTROLLER: &str = "one-controller";
    pub const RS_ACTS_ON_ITS_VIEW: &str = "replicaset-acts-on-its-view";
    pub const RS_OWNS_ITS_REPLICAS: &str = "replicaset-owns-its-replicas";
    pub const DEPLOYMENT_CONVERGED: &str = "deployment-converged";
    pub const NO_ORPHANS: &str = "no-orphans";
    pub const PODS_RUNNING: &str = "pods-running";
    pub const QUIESCES: &str = "quiesces";
}

/// The safety checker's memory: where each pod was bound.
#[derive(Debug, Default)]
pub struct Safety {
    bindings: BTreeMap<String, String>,
    cursor: usize,
    seen: u64,
}

impl Safety {
    /// Checks what the writes since the last call did.
    pub fn check(&mut self, api: &Api) -> Result<(), Violation> {
        if api.revision() == self.seen {
            return Ok(());
        }
        self.seen = api.revision();
        let log = api.log(Kind::Pod);
        for e in &log[self.cursor..] {
            let Some(node) = meta::pod_node(&e.object) else {
                continue;
            };
            let uid = meta::uid(&e.object).to_string();
            match self.bindings.get(&uid) {
                Some(was) if was != node => {
                    return Err(Violation::new(
                        name::BINDING_IS_FINAL,
                        format!("pod {} moved from {was} to {node}", meta::name(&e.object)),
                    ))
                }
                Some(_) => {}
                None => {
                    self.bindings.insert(uid, node.to_string());
                }
            }
        }
        self.cursor = log.len();
        let mut per_node: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for pod in api.list(Kind::Pod) {
            one_controller(pod)?;
            let Some(node) = meta::pod_node(pod) else {
                continue;
            };
            if api.get(Kind::Node, node).is_none() {
                return Err(Violation::new(
                    name::BOUND_TO_EXISTING_NODE,
                    format!(
                        "pod {} is bound to {node}, which does not exist",
                        meta::name(pod)
                    ),
                ));
            }
            // What a node runs: the scheduler may bind a pod more than a node takes (a
            // binding whose answer was lost lands late), and the kubelet then refuses it.
            if meta::pod_phase(pod) == "Running" {
                per_node.entry(node).or_default().push(meta::name(pod));
            }
        }
        if let Some((node, pods)) = per_node.iter().find(|(_, p)| p.len() > PODS_PER_NODE) {
            return Err(Violation::new(
                name::NODE_CAPACITY,
                format!(
                    "{} pods run on {node}, which takes {PODS_PER_NODE}: {}",
                    pods.len(),
                    pods.join(", ")
                ),
            ));
        }
        for rs in api.list(Kind::ReplicaSet) {
            one_controller(rs)?;
        }
        Ok(())
    }
}

fn one_controller(obj: &Value) -> Result<(), Violation> {
    let n = meta::owner_refs(obj)
        .iter()
        .filter(|r| r["controller"].as_bool() == Some(true))
        .count();
    if n > 1 {
        return Err(Violation::new(
            name::ONE_CONTROLLER,
            format!("{} has {n} controllers", meta::name(obj)),
        ));
    }
    Ok(())
}

fn count(obj: &Value, field: &str) -> i64 {
    obj["status"][field].as_i64().unwrap_or(0)
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

/// The properties of a settled system.
pub fn settled(api: &Api) -> Result<(), Violation> {
    let rs_uids: BTreeMap<String, &Value> = api
        .list(Kind::ReplicaSet)
        .map(|r| (meta::uid(r).to_string(), r.as_ref()))
        .collect();
    let d_uids: BTreeSet<&str> = api.list(Kind::Deployment).map(|d| meta::uid(d)).collect();
    for pod in api.list(Kind::Pod) {
        let owner = meta::controller_ref(pod).and_then(|r| r["uid"].as_str());
        if owner.is_none_or(|u| !rs_uids.contains_key(u)) {
            return Err(Violation::new(
                name::NO_ORPHANS,
                format!("pod {} has no live controller", meta::name(pod)),
            ));
        }
        if is_active(pod) && (meta::pod_node(pod).is_none() || !meta::pod_ready(pod)) {
            return Err(Violation::new(
                name::PODS_RUNNING,
                format!(
                    "pod {} is {} on {:?}",
                    meta::name(pod),
                    meta::pod_phase(pod),
                    meta::pod_node(pod)
                ),
            ));
        }
    }
    for rs in rs_uids.values() {
        let owner = meta::controller_ref(rs).and_then(|r| r["uid"].as_str());
        if owner.is_none_or(|u| !d_uids.contains(u)) {
            return Err(Violation::new(
                name::NO_ORPHANS,
                format!("replicaset {} has no live controller", meta::name(rs)),
            ));
        }
        let uid = meta::uid(rs);
        let active = api
            .list(Kind::Pod)
            .filter(|p| meta::is_controlled_by(p, uid) && is_active(p))
            .count() as i64;
        let want = replicas(rs);
        if active != want || count(rs, "replicas") != want {
            return Err(Violation::new(
                name::RS_OWNS_ITS_REPLICAS,
                format!(
                    "replicaset {} wants {want}, owns {active} active pods, reports {}",
                    meta::name(rs),
                    count(rs, "replicas")
                ),
            ));
        }
    }
    for d in api.list(Kind::Deployment) {
        deployment_converged(d, &rs_uids)?;
    }
    Ok(())
}

fn deployment_converged(d: &Value, rss: &BTreeMap<String, &Value>) -> Result<(), Violation> {
    let fail = |what: String| {
        Err(Violation::new(
            name::DEPLOYMENT_CONVERGED,
            format!("deployment {}: {what}", meta::name(d)),
        ))
    };
    let want = replicas(d);
    let template = &d["spec"]["template"];
    let mine: Vec<&Value> = rss
        .values()
        .copied()
        .filter(|rs| meta::is_controlled_by(rs, meta::uid(d)))
        .collect();
    let (new, old): (Vec<&Value>, Vec<&Value>) = mine
        .iter()
        .partition(|rs| equal_ignore_hash(&rs["spec"]["template"], template));
    match new.as_slice() {
        [rs] => {
            if replicas(rs) != want || count(rs, "availableReplicas") != want {
                return fail(format!(
                    "new replicaset {} has {} replicas, {} available, of {want}",
                    meta::name(rs),
                    replicas(rs),
                    count(rs, "availableReplicas")
                ));
            }
        }
        [] => return fail("no replicaset has its template".to_string()),
        many => return fail(format!("{} replicasets have its template", many.len())),
    }
    if let Some(rs) = old.iter().find(|rs| replicas(rs) != 0) {
        return fail(format!(
            "old replicaset {} still has {} replicas",
            meta::name(rs),
            replicas(rs)
        ));
    }
    let limit = d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
    if old.len() as i64 > limit {
        return fail(format!("{} old replicasets kept, limit {limit}", old.len()));
    }
    let status = &d["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if observed != meta::generation(d)
        || count(d, "replicas") != want
        || count(d, "updatedReplicas") != want
        || count(d, "availableReplicas") != want
    {
        return fail(format!("status not settled: {status}"));
    }
    Ok(())
}
