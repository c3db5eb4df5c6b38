//! The scheduler's view of the cluster: each node parsed once, with running totals of what
//! the pods bound (or assumed) on it request, kept exact by incremental adds and removes.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::pod::{allowed_pods, pod_key, HostPort, PodUsage, Resources};
use super::taints::Taint;
use crate::meta;

/// A node's `Ready` condition as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// `Ready` is `False` (the kubelet says so).
    NotReady,
    /// `Ready` is `Unknown` or absent (the kubelet is not heard from).
    Unknown,
}

/// One node: what its object says, and the totals of its pods.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    /// False for a placeholder kept while pods still point at a node not (or no longer)
    /// known: such a node is never a candidate.
    pub present: bool,
    pub labels: BTreeMap<String, String>,
    pub unschedulable: bool,
    pub readiness: Readiness,
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    /// `topology.kubernetes.io/zone` (spreading also balances zones).
    pub zone: Option<String>,
    // --- totals over the pods on the node ---
    pub requested: Resources,
    pub nonzero_milli_cpu: i64,
    pub nonzero_memory: i64,
    pub pod_count: i64,
    pub host_ports: Vec<HostPort>,
    /// Pods per controller owner (its id in [`ClusterState`]), sorted by id.
    owners: Vec<(u32, i64)>,
}

impl NodeInfo {
    fn placeholder(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            present: false,
            labels: BTreeMap::new(),
            unschedulable: false,
            readiness: Readiness::Unknown,
            taints: Vec::new(),
            allocatable: Resources::default(),
            allowed_pods: 0,
            zone: None,
            requested: Resources::default(),
            nonzero_milli_cpu: 0,
            nonzero_memory: 0,
            pod_count: 0,
            host_ports: Vec::new(),
            owners: Vec::new(),
        }
    }

    fn set_from(&mut self, node: &Value) {
        self.present = true;
        self.labels = node["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        self.unschedulable = node["spec"]["unschedulable"].as_bool() == Some(true);
        self.readiness = match meta::condition(node, "Ready").and_then(|c| c["status"].as_str()) {
            Some("True") => Readiness::Ready,
            Some("False") => Readiness::NotReady,
            _ => Readiness::Unknown,
        };
        self.taints = Taint::of_node(node);
        // Allocatable, each resource falling back to capacity.
        let status = &node["status"];
        let mut alloc = Resources::from_list(&status["capacity"]);
        let a = Resources::from_list(&status["allocatable"]);
        let stated = |name: &str| status["allocatable"].get(name).is_some();
        if stated("cpu") {
            alloc.milli_cpu = a.milli_cpu;
        }
        if stated("memory") {
            alloc.memory = a.memory;
        }
        if stated("ephemeral-storage") {
            alloc.ephemeral_storage = a.ephemeral_storage;
        }
        alloc.scalar.extend(a.scalar);
        self.allocatable = alloc;
        self.allowed_pods = allowed_pods(&status["allocatable"])
            .or_else(|| allowed_pods(&status["capacity"]))
            .unwrap_or(0);
        self.zone = self
            .labels
            .get("topology.kubernetes.io/zone")
            .or_else(|| self.labels.get("failure-domain.beta.kubernetes.io/zone"))
            .filter(|z| !z.is_empty())
            .cloned();
    }

    fn clear_node_fields(&mut self) {
        let mut fresh = NodeInfo::placeholder(&self.name);
        std::mem::swap(&mut fresh.requested, &mut self.requested);
        fresh.nonzero_milli_cpu = self.nonzero_milli_cpu;
        fresh.nonzero_memory = self.nonzero_memory;
        fresh.pod_count = self.pod_count;
        std::mem::swap(&mut fresh.host_ports, &mut self.host_ports);
        std::mem::swap(&mut fresh.owners, &mut self.owners);
        *self = fresh;
    }

    fn add_usage(&mut self, u: &PodUsage, owner: Option<u32>) {
        self.requested.add(&u.requests);
        self.nonzero_milli_cpu += u.nonzero_milli_cpu;
        self.nonzero_memory += u.nonzero_memory;
        self.pod_count += 1;
        self.host_ports.extend(u.host_ports.iter().cloned());
        if let Some(id) = owner {
            match self.owners.binary_search_by_key(&id, |(i, _)| *i) {
                Ok(at) => self.owners[at].1 += 1,
                Err(at) => self.owners.insert(at, (id, 1)),
            }
        }
    }

    fn remove_usage(&mut self, u: &PodUsage, owner: Option<u32>) {
        self.requested.sub(&u.requests);
        self.nonzero_milli_cpu -= u.nonzero_milli_cpu;
        self.nonzero_memory -= u.nonzero_memory;
        self.pod_count -= 1;
        for hp in &u.host_ports {
            if let Some(i) = self.host_ports.iter().position(|h| h == hp) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(id) = owner {
            if let Ok(at) = self.owners.binary_search_by_key(&id, |(i, _)| *i) {
                self.owners[at].1 -= 1;
                if self.owners[at].1 <= 0 {
                    self.owners.remove(at);
                }
            }
        }
    }

    /// Pods on this node of the owner with this id.
    pub(crate) fn owner_pods(&self, id: u32) -> i64 {
        match self.owners.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => self.owners[at].1,
            Err(_) => 0,
        }
    }
}

/// A pod the state counts on a node.
#[derive(Clone, Debug)]
struct PodEntry {
    node: String,
    uid: String,
    usage: PodUsage,
    owner: Option<u32>,
    assumed: bool,
}

/// Nodes and what is bound (or assumed) on them.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    /// Controller owner uid → (a small id the nodes count by, pods counted).
    owners: HashMap<String, (u32, i64)>,
    next_owner: u32,
}

impl ClusterState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a node (its pods' totals are kept).
    pub fn upsert_node(&mut self, node: &Value) {
        let name = meta::name(node);
        if name.is_empty() {
            return;
        }
        let i = self.slot(name);
        self.nodes[i].set_from(node);
    }

    /// Removes a node. Pods still counted on it keep a placeholder (never a candidate) so
    /// that their later removal stays exact, and a re-added node finds its totals.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        self.nodes[i].clear_node_fields();
        self.drop_if_empty(i);
    }

    /// Counts a pod bound to a node (`spec.nodeName` set). A pod that has ended, or is not
    /// bound, is removed instead. Replaces an earlier version (or an assumption) of it.
    pub fn add_pod(&mut self, pod: &Value) {
        match meta::pod_node(pod) {
            Some(node) if !meta::pod_terminated(pod) => {
                let node = node.to_string();
                self.put(pod, &node, false);
            }
            _ => self.remove_pod(pod),
        }
    }

    /// Stops counting a pod (idempotent). A removal carrying another uid than the pod
    /// counted under its name is stale and ignored.
    pub fn remove_pod(&mut self, pod: &Value) {
        let key = pod_key(pod);
        let uid = meta::uid(pod);
        if let Some(e) = self.pods.get(&key) {
            if !uid.is_empty() && !e.uid.is_empty() && e.uid != uid {
                return;
            }
            self.take(&key);
        }
    }

    /// Counts a binding in flight: the pod counts on `node` until [`add_pod`],
    /// [`remove_pod`] or [`forget`].
    ///
    /// [`add_pod`]: ClusterState::add_pod
    /// [`remove_pod`]: ClusterState::remove_pod
    /// [`forget`]: ClusterState::forget
    pub fn assume(&mut self, pod: &Value, node: &str) {
        self.put(pod, node, true);
    }

    /// Drops an assumption (the binding failed); a confirmed pod stays.
    pub fn forget(&mut self, pod: &Value) {
        let key = pod_key(pod);
        if self.pods.get(&key).is_some_and(|e| e.assumed) {
            self.take(&key);
        }
    }

    /// The nodes known, sorted by name.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.present)
            .map(|n| n.name.clone())
            .collect();
        names.sort();
        names
    }

    /// How many nodes are known.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.present).count()
    }

    /// One node's view (totals included), also for a placeholder.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// The node a pod is counted on, and whether only assumed.
    pub fn pod_placement(&self, pod: &Value) -> Option<(&str, bool)> {
        self.pods
            .get(&pod_key(pod))
            .map(|e| (e.node.as_str(), e.assumed))
    }

    /// How many pods are counted (bound and assumed).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Pods on `node` controlled by the owner with uid `owner`.
    pub fn owner_pods_on(&self, node: &str, owner: &str) -> i64 {
        match (self.node(node), self.owner_id(owner)) {
            (Some(n), Some(id)) => n.owner_pods(id),
            _ => 0,
        }
    }

    /// The id nodes count an owner's pods by; `None` when it has no pod counted.
    pub(crate) fn owner_id(&self, owner: &str) -> Option<u32> {
        self.owners.get(owner).map(|(id, _)| *id)
    }

    /// The nodes as held, candidates and placeholders alike.
    pub(crate) fn all_nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.nodes.push(NodeInfo::placeholder(name));
        let i = self.nodes.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    fn put(&mut self, pod: &Value, node: &str, assumed: bool) {
        let key = pod_key(pod);
        self.take(&key);
        let usage = PodUsage::of(pod);
        let owner = usage.owner.as_ref().map(|uid| {
            let next = &mut self.next_owner;
            let e = self.owners.entry(uid.clone()).or_insert_with(|| {
                *next = next.wrapping_add(1);
                (*next, 0)
            });
            e.1 += 1;
            e.0
        });
        let i = self.slot(node);
        self.nodes[i].add_usage(&usage, owner);
        self.pods.insert(
            key,
            PodEntry {
                node: node.to_string(),
                uid: meta::uid(pod).to_string(),
                usage,
                owner,
                assumed,
            },
        );
    }

    fn take(&mut self, key: &str) {
        let Some(e) = self.pods.remove(key) else {
            return;
        };
        if let Some(&i) = self.index.get(&e.node) {
            self.nodes[i].remove_usage(&e.usage, e.owner);
            self.drop_if_empty(i);
        }
        if let Some(uid) = &e.usage.owner {
            if let Some(o) = self.owners.get_mut(uid) {
                o.1 -= 1;
                if o.1 <= 0 {
                    self.owners.remove(uid);
                }
            }
        }
    }

    /// Frees a placeholder slot no pod points at any more.
    fn drop_if_empty(&mut self, i: usize) {
        if self.nodes[i].present || self.nodes[i].pod_count > 0 {
            return;
        }
        let gone = self.nodes.swap_remove(i);
        self.index.remove(&gone.name);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
    }
}
