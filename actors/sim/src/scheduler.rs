//! The scheduler's shell, simulated as `navarch-controllers`' singleton is built: a
//! `ClusterState` kept from the node and pod caches (rebuilt from them on a restart), each
//! pending pod placed by the core and assumed on its node until the binding shows or
//! fails, unschedulable pods tried again when the cluster changes, a failed binding tried
//! again after 1 s unless its pod is gone. Bindings are requests of their own, sent while
//! the scheduler goes on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use navarch_logic::meta;
use navarch_logic::scheduler::{ClusterState, Placement};
use serde_json::{json, Value};

use crate::api::{Api, Kind};
use crate::cores::ScheduleFn;
use crate::env::Env;
use crate::informer::{CacheEvent, Informer};

fn pod_key(pod: &Value) -> String {
    meta::name(pod).to_string()
}

fn wants_scheduling(pod: &Value) -> bool {
    meta::pod_node(pod).is_none() && !meta::is_deleting(pod) && !meta::pod_terminated(pod)
}

/// The fields of a node that placement reads.
fn fingerprint(node: &Value) -> String {
    let ready = meta::condition(node, "Ready").map(|c| c["status"].clone());
    json!([
        node["spec"]["unschedulable"],
        node["spec"]["taints"],
        node["status"]["allocatable"],
        node["status"]["capacity"],
        node["metadata"]["labels"],
        ready,
    ])
    .to_string()
}

#[derive(Debug)]
pub struct Scheduler {
    nodes: Informer,
    pods: Informer,
    cluster: ClusterState,
    unschedulable: BTreeMap<String, Arc<Value>>,
    fingerprints: BTreeMap<String, String>,
    binds: VecDeque<(Arc<Value>, String)>,
    retry_at: Option<i64>,
    schedule: ScheduleFn,
    retry_gone: bool,
}

impl Scheduler {
    /// A scheduler (re)started: rebuilt from freshly listed caches, then every pending
    /// pod tried. `retry_gone`: a pod whose binding failed goes back among the
    /// unschedulable even when it is gone (the shell before its fix).
    pub fn start(api: &Api, schedule: ScheduleFn, retry_gone: bool) -> Scheduler {
        let (nodes, _) = Informer::listed(Kind::Node, api);
        let (pods, _) = Informer::listed(Kind::Pod, api);
        let mut s = Scheduler {
            nodes,
            pods,
            cluster: ClusterState::new(),
            unschedulable: BTreeMap::new(),
            fingerprints: BTreeMap::new(),
            binds: VecDeque::new(),
            retry_at: None,
            schedule,
            retry_gone,
        };
        let nodes: Vec<Arc<Value>> = s.nodes.list().cloned().collect();
        for node in &nodes {
            s.cluster.upsert_node(node);
            s.fingerprints
                .insert(meta::name(node).to_string(), fingerprint(node));
        }
        let pods: Vec<Arc<Value>> = s.pods.list().cloned().collect();
        for pod in pods {
            if meta::pod_node(&pod).is_some() {
                s.cluster.add_pod(&pod);
            } else if wants_scheduling(&pod) {
                s.unschedulable.insert(pod_key(&pod), pod);
            }
        }
        s.retry_all();
        s
    }

    pub fn pending(&self, api: &Api) -> [usize; 2] {
        [self.nodes.pending(api), self.pods.pending(api)]
    }

    pub fn deliver(&mut self, which: usize, api: &Api) {
        let e = if which == 0 {
            self.nodes.deliver(api)
        } else {
            self.pods.deliver(api)
        };
        if let Some(e) = e {
            self.feed(which, e);
        }
    }

    pub fn relist(&mut self, which: usize, api: &Api) {
        let events = if which == 0 {
            self.nodes.relist(api)
        } else {
            self.pods.relist(api)
        };
        for e in events {
            self.feed(which, e);
        }
    }

    fn feed(&mut self, which: usize, e: CacheEvent) {
        let is_pods = which == 1;
        match e {
            CacheEvent::Added(o) | CacheEvent::Updated { new: o, .. } => {
                if is_pods {
                    self.pod_changed(o)
                } else {
                    self.node_changed(o)
                }
            }
            CacheEvent::Deleted(o) => {
                if is_pods {
                    self.pod_removed(&o)
                } else {
                    let name = meta::name(&o);
                    self.fingerprints.remove(name);
                    self.cluster.remove_node(name);
                }
            }
            CacheEvent::Resynced => {
                let all: Vec<Arc<Value>> = if is_pods {
                    self.pods.list().cloned().collect()
                } else {
                    self.nodes.list().cloned().collect()
                };
                for o in all {
                    if is_pods {
                        self.pod_changed(o)
                    } else {
                        self.node_changed(o)
                    }
                }
            }
        }
    }

    fn place(&mut self, pod: Arc<Value>) {
        let key = pod_key(&pod);
        match (self.schedule)(&self.cluster, &pod) {
            Placement::Node(node) => {
                self.unschedulable.remove(&key);
                self.cluster.assume(&pod, &node);
                self.binds.push_back((pod, node));
            }
            Placement::Unschedulable(_) => {
                self.unschedulable.insert(key, pod);
            }
        }
    }

    fn retry_all(&mut self) {
        let waiting = std::mem::take(&mut self.unschedulable);
        for (_, pod) in waiting {
            self.place(pod);
        }
    }

    fn pod_changed(&mut self, pod: Arc<Value>) {
        let key = pod_key(&pod);
        if meta::pod_node(&pod).is_some() {
            self.cluster.add_pod(&pod);
            self.unschedulable.remove(&key);
            if meta::pod_terminated(&pod) {
                self.retry_all();
            }
        } else if wants_scheduling(&pod) {
            if self.cluster.pod_placement(&pod).is_some() {
                return; // a binding is in flight
            }
            self.place(pod);
        } else {
            self.unschedulable.remove(&key);
        }
    }

    fn pod_removed(&mut self, pod: &Value) {
        let was_bound = self
            .cluster
            .pod_placement(pod)
            .is_some_and(|(_, assumed)| !assumed);
        self.cluster.remove_pod(pod);
        self.unschedulable.remove(&pod_key(pod));
        if was_bound {
            self.retry_all();
        }
    }

    fn node_changed(&mut self, node: Arc<Value>) {
        let name = meta::name(&node).to_string();
        let print = fingerprint(&node);
        if self.fingerprints.get(&name) != Some(&print) {
            self.fingerprints.insert(name, print);
            self.cluster.upsert_node(&node);
            self.retry_all();
        }
    }

    pub fn has_work(&self) -> bool {
        !self.binds.is_empty()
    }

    pub fn fire_timers(&mut self, now_ms: i64) {
        if self.retry_at.is_some_and(|t| t <= now_ms) {
            self.retry_at = None;
            self.retry_all();
        }
    }

    pub fn next_timer(&self) -> Option<i64> {
        self.retry_at
    }

    /// Sends the oldest binding in flight.
    pub fn work(&mut self, env: &mut Env) {
        let Some((pod, node)) = self.binds.pop_front() else {
            return;
        };
        let name = meta::name(&pod).to_string();
        let r = env.call(|api, _| api.bind(&name, meta::uid(&pod), &node));
        match r {
            Ok(_) => env.log(format!("sched: bind {name} to {node} -> ok")),
            Err(e) => {
                env.log(format!("sched: bind {name} to {node} -> {e}"));
                self.cluster.forget(&pod);
                // Gone: the binding answered NotFound, or the cache saw it deleted.
                let gone = e.is_not_found()
                    || self
                        .pods
                        .get(&name)
                        .is_none_or(|p| meta::uid(p) != meta::uid(&pod));
                if !e.is_conflict() && (!gone || self.retry_gone) {
                    self.unschedulable.insert(pod_key(&pod), pod);
                    let at = env.now_ms + 1000;
                    self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
                }
            }
        }
    }
}
