//! The simulated nodes: their Node objects, a kubelet on each that starts the pods bound
//! to it (Running and Ready after a seeded delay) once they fit beside the pods it runs
//! (the real kubelet's admission, `navarch_logic::admission`; one that does not fit fails
//! `OutOfpods`, ...) and ends the pods being deleted (gone after a seeded grace), and node
//! failures: a failed node is NotReady and its kubelet does nothing until it recovers.

use std::collections::BTreeMap;

use navarch_logic::{admission, meta};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use crate::api::{Api, Kind};
use crate::env::Env;

/// The pods each simulated node takes (`status.allocatable.pods`).
pub const PODS_PER_NODE: usize = 5;

pub fn node_status(ready: bool) -> Value {
    json!({
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": PODS_PER_NODE.to_string()},
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": PODS_PER_NODE.to_string()},
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "reason": if ready { "KubeletReady" } else { "NodeStatusUnknown" }}],
    })
}

pub fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": node_status(true),
    })
}

/// Whether `pod` fits node `node` beside the pods running there (the ones its kubelet
/// started: a start is one step, so these are the ones it admitted).
fn admit(api: &Api, node: &str, pod: &Value) -> Result<(), admission::Rejection> {
    let allocatable = api
        .get(Kind::Node, node)
        .map(|n| n["status"]["allocatable"].clone())
        .unwrap_or(Value::Null);
    let running: Vec<&Value> = api
        .list(Kind::Pod)
        .map(|p| p.as_ref())
        .filter(|p| {
            meta::pod_node(p) == Some(node)
                && meta::uid(p) != meta::uid(pod)
                && meta::pod_phase(p) == "Running"
        })
        .collect();
    admission::admit(&allocatable, &running, pod)
}

#[derive(Debug, Default)]
pub struct Kubelets {
    /// Pods to start, by uid: (name, node, when).
    starts: BTreeMap<String, (String, String, i64)>,
    /// Pods to end, by uid: (name, node, when).
    ends: BTreeMap<String, (String, String, i64)>,
    seen: u64,
    /// Failed nodes and when they recover.
    pub down: BTreeMap<String, i64>,
}

impl Kubelets {
    /// Notices what the API asks of the kubelets since the last look.
    pub fn observe(&mut self, api: &Api, rng: &mut StdRng, now_ms: i64) {
        if api.revision() == self.seen {
            return;
        }
        self.seen = api.revision();
        for pod in api.list(Kind::Pod) {
            let Some(node) = meta::pod_node(pod) else {
                continue;
            };
            if meta::pod_terminated(pod) {
                continue;
            }
            let uid = meta::uid(pod).to_string();
            let entry = (meta::name(pod).to_string(), node.to_string());
            if meta::is_deleting(pod) {
                self.starts.remove(&uid);
                if let std::collections::btree_map::Entry::Vacant(v) = self.ends.entry(uid) {
                    let at = now_ms + rng.gen_range(0..3000);
                    v.insert((entry.0, entry.1, at));
                }
            } else if !meta::pod_ready(pod) && !self.starts.contains_key(&uid) {
                let at = now_ms + rng.gen_range(300..3000);
                self.starts.insert(uid, (entry.0, entry.1, at));
            }
        }
    }

    fn up(&self, node: &str) -> bool {
        !self.down.contains_key(node)
    }

    fn due_item(&self, now_ms: i64) -> Option<(bool, String)> {
        let due = |m: &BTreeMap<String, (String, String, i64)>| {
            m.iter()
                .filter(|(_, (_, node, at))| *at <= now_ms && self.up(node))
                .map(|(uid, _)| uid.clone())
                .next()
        };
        due(&self.ends)
            .map(|u| (true, u))
            .or_else(|| due(&self.starts).map(|u| (false, u)))
    }

    pub fn has_work(&self, now_ms: i64) -> bool {
        self.due_item(now_ms).is_some()
    }

    /// When the kubelets next have something to do (a failed node's recovery included).
    pub fn next_due(&self) -> Option<i64> {
        let items = self
            .starts
            .values()
            .chain(self.ends.values())
            .filter(|(_, node, _)| self.up(node))
            .map(|(_, _, at)| *at);
        items.chain(self.down.values().copied()).min()
    }

    /// Starts or ends one pod that is due.
    pub fn work(&mut self, env: &mut Env) {
        let Some((end, uid)) = self.due_item(env.now_ms) else {
            return;
        };
        let map = if end {
            &mut self.ends
        } else {
            &mut self.starts
        };
        let Some((name, node, _)) = map.remove(&uid) else {
            return;
        };
        let current = env.api.get(Kind::Pod, &name).cloned();
        let Some(pod) = current.filter(|p| meta::uid(p) == uid) else {
            return;
        };
        if end {
            env.api.remove(Kind::Pod, &name);
            env.log(format!("kubelet {node}: {name} ended"));
        } else if !meta::is_deleting(&pod) {
            if let Err(why) = admit(env.api, &node, &pod) {
                let status =
                    json!({"phase": "Failed", "reason": why.reason, "message": why.message});
                let _ = env.api.write_status(Kind::Pod, &name, status);
                env.log(format!("kubelet {node}: {name} rejected, {}", why.reason));
                return;
            }
            let now = meta::format_rfc3339(env.now());
            let status = json!({
                "phase": "Running",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                ],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0}],
            });
            let _ = env.api.write_status(Kind::Pod, &name, status);
            env.log(format!("kubelet {node}: {name} running"));
        }
    }

    /// A node fails until `until_ms`.
    pub fn fail(&mut self, env: &mut Env, name: &str, until_ms: i64) {
        self.down.insert(name.to_string(), until_ms);
        let _ = env.api.write_status(Kind::Node, name, node_status(false));
        env.log(format!("node {name} fails"));
    }

    /// Failed nodes whose time has come (or all, `all`) recover.
    pub fn recover(&mut self, env: &mut Env, all: bool) {
        let back: Vec<String> = self
            .down
            .iter()
            .filter(|(_, t)| all || **t <= env.now_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for n in back {
            self.down.remove(&n);
            let _ = env.api.write_status(Kind::Node, &n, node_status(true));
            env.log(format!("node {n} recovers"));
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::trace::Trace;
    use crate::Stats;

    #[test]
    fn a_pod_bound_past_a_nodes_room_is_refused_and_the_rest_run() {
        let mut api = Api::default();
        api.create(Kind::Node, node("n1"), 0, [0; 5]).unwrap();
        for i in 0..=PODS_PER_NODE {
            let pod = json!({"metadata": {"name": format!("p{i}")}, "spec": {}});
            let p = api.create(Kind::Pod, pod, 0, [0; 5]).unwrap();
            api.bind(meta::name(&p), meta::uid(&p), "n1").unwrap();
        }
        let (mut rng, mut trace, mut stats) =
            (StdRng::seed_from_u64(1), Trace::default(), Stats::default());
        let mut kubelets = Kubelets::default();
        kubelets.observe(&api, &mut rng, 0);
        let mut env = Env {
            api: &mut api,
            rng: &mut rng,
            now_ms: 10_000,
            step: 1,
            faults: None,
            trace: &mut trace,
            stats: &mut stats,
        };
        while kubelets.has_work(env.now_ms) {
            kubelets.work(&mut env);
        }
        let phases: Vec<(&str, &str)> = api
            .list(Kind::Pod)
            .map(|p| {
                (
                    meta::pod_phase(p),
                    p["status"]["reason"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let running = phases.iter().filter(|(ph, _)| *ph == "Running").count();
        assert_eq!(running, PODS_PER_NODE, "{phases:?}");
        assert!(
            phases.contains(&("Failed", "OutOfpods")),
            "the pod past the room is refused: {phases:?}"
        );
    }
}
