//! What a pod asks of a node, read once from its JSON: resource requests (Kubernetes'
//! `PodRequests` rules), host ports, node selector and affinity, tolerations and owner.

use std::collections::BTreeMap;

use navarch_model::validate::parse_quantity;
use serde_json::Value;

use super::taints::Toleration;
use crate::meta;

/// Kubernetes' scoring default for a container without a cpu request (100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Kubernetes' scoring default for a container without a memory request (200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts: cpu in millicores, the rest in their
/// base unit (bytes for memory and ephemeral storage, counts for extended resources).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`nvidia.com/gpu`), `hugepages-*` and anything else named.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// A resource list (`{"cpu": "500m", "memory": "1Gi"}`); `pods` is not a resource
    /// here (see [`allowed_pods`]).
    pub fn from_list(list: &Value) -> Resources {
        let mut r = Resources::default();
        if let Some(map) = list.as_object() {
            for (name, q) in map {
                let Some(nano) = quantity(q) else { continue };
                r.set(name, nano);
            }
        }
        r
    }

    fn set(&mut self, name: &str, nano: i128) {
        match name {
            "cpu" => self.milli_cpu = ceil_div(nano, 1_000_000),
            "memory" => self.memory = ceil_div(nano, 1_000_000_000),
            "ephemeral-storage" => self.ephemeral_storage = ceil_div(nano, 1_000_000_000),
            "pods" => {}
            other => {
                self.scalar
                    .insert(other.to_string(), ceil_div(nano, 1_000_000_000));
            }
        }
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_insert(0) += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        for (k, v) in &o.scalar {
            if let Some(mine) = self.scalar.get_mut(k) {
                *mine -= v;
                if *mine == 0 {
                    self.scalar.remove(k);
                }
            }
        }
    }

    /// Each resource the larger of the two.
    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

fn quantity(q: &Value) -> Option<i128> {
    match q {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_i64().map(|v| i128::from(v) * 1_000_000_000),
        _ => None,
    }
    .map(|v| v.max(0))
}

fn ceil_div(v: i128, d: i128) -> i64 {
    let q = (v + d - 1) / d;
    i64::try_from(q).unwrap_or(i64::MAX)
}

/// A node's pod capacity from a resource list (`pods`), `None` when absent.
pub fn allowed_pods(list: &Value) -> Option<i64> {
    quantity(&list["pods"]).map(|nano| ceil_div(nano, 1_000_000_000))
}

/// One host port a pod binds on its node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// `0.0.0.0` when the pod gives no `hostIP`.
    pub ip: String,
    /// `TCP` when the pod gives no protocol.
    pub protocol: String,
    pub port: i64,
}

impl HostPort {
    /// Kubernetes' conflict rule: same protocol and port, and the same IP or either side
    /// on `0.0.0.0`.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// What a pod holds on the node it is bound to: what the node's bookkeeping adds up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Requests as the fit filter counts them.
    pub requests: Resources,
    /// Cpu and memory with Kubernetes' non-zero defaults, for scoring.
    pub nonzero_milli_cpu: i64,
    pub nonzero_memory: i64,
    pub host_ports: Vec<HostPort>,
    /// The controller owner's uid (spreading counts pods of one owner).
    pub owner: Option<String>,
}

impl PodUsage {
    pub fn of(pod: &Value) -> PodUsage {
        let (requests, nonzero) = pod_requests(pod);
        PodUsage {
            requests,
            nonzero_milli_cpu: nonzero.0,
            nonzero_memory: nonzero.1,
            host_ports: host_ports(pod),
            owner: meta::controller_ref(pod)
                .and_then(|r| r["uid"].as_str())
                .filter(|u| !u.is_empty())
                .map(str::to_string),
        }
    }
}

/// A container's requests after Kubernetes' defaulting (a limit without a request is the
/// request).
fn container_requests(c: &Value) -> Resources {
    let mut r = Resources::from_list(&c["resources"]["requests"]);
    if let Some(limits) = c["resources"]["limits"].as_object() {
        let requests = &c["resources"]["requests"];
        for (name, q) in limits {
            if requests.get(name).is_none() {
                if let Some(nano) = quantity(q) {
                    r.set(name, nano);
                }
            }
        }
    }
    r
}

/// Whether a container states a request (or, by defaulting, a limit) for `name`.
fn container_states(c: &Value, name: &str) -> bool {
    c["resources"]["requests"].get(name).is_some() || c["resources"]["limits"].get(name).is_some()
}

/// The container's requests with the non-zero defaults for scoring (cpu, memory).
fn container_nonzero(c: &Value, r: &Resources) -> (i64, i64) {
    let cpu = if container_states(c, "cpu") {
        r.milli_cpu
    } else {
        DEFAULT_MILLI_CPU_REQUEST
    };
    let mem = if container_states(c, "memory") {
        r.memory
    } else {
        DEFAULT_MEMORY_REQUEST
    };
    (cpu, mem)
}

/// Kubernetes' `PodRequests`: the sum over containers, against the largest init container
/// (restartable init containers, the sidecars, run alongside and add up), plus the pod's
/// overhead. Returns the requests and the non-zero (cpu, memory) for scoring.
pub fn pod_requests(pod: &Value) -> (Resources, (i64, i64)) {
    let spec = &pod["spec"];
    let mut sum = Resources::default();
    let mut nz = (0i64, 0i64);
    for c in spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let r = container_requests(c);
        let (a, b) = container_nonzero(c, &r);
        nz.0 += a;
        nz.1 += b;
        sum.add(&r);
    }
    let mut sidecars = Resources::default();
    let mut sidecars_nz = (0i64, 0i64);
    let mut init_max = Resources::default();
    let mut init_max_nz = (0i64, 0i64);
    for c in spec["initContainers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let r = container_requests(c);
        let (a, b) = container_nonzero(c, &r);
        let mut candidate = sidecars.clone();
        let candidate_nz;
        if c["restartPolicy"].as_str() == Some("Always") {
            sidecars.add(&r);
            sidecars_nz = (sidecars_nz.0 + a, sidecars_nz.1 + b);
            candidate = sidecars.clone();
            candidate_nz = sidecars_nz;
        } else {
            candidate.add(&r);
            candidate_nz = (sidecars_nz.0 + a, sidecars_nz.1 + b);
        }
        init_max.max_with(&candidate);
        init_max_nz = (
            init_max_nz.0.max(candidate_nz.0),
            init_max_nz.1.max(candidate_nz.1),
        );
    }
    sum.add(&sidecars);
    nz = (nz.0 + sidecars_nz.0, nz.1 + sidecars_nz.1);
    sum.max_with(&init_max);
    nz = (nz.0.max(init_max_nz.0), nz.1.max(init_max_nz.1));
    let overhead = Resources::from_list(&spec["overhead"]);
    sum.add(&overhead);
    nz = (nz.0 + overhead.milli_cpu, nz.1 + overhead.memory);
    (sum, nz)
}

/// The host ports of a pod's containers (ports without `hostPort` bind nothing),
/// deduplicated.
pub fn host_ports(pod: &Value) -> Vec<HostPort> {
    let mut out: Vec<HostPort> = Vec::new();
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().into_iter().flatten();
    let inits = spec["initContainers"].as_array().into_iter().flatten();
    for c in containers.chain(inits) {
        for p in c["ports"].as_array().into_iter().flatten() {
            let port = p["hostPort"].as_i64().unwrap_or(0);
            if port <= 0 {
                continue;
            }
            let hp = HostPort {
                ip: p["hostIP"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("0.0.0.0")
                    .to_string(),
                protocol: p["protocol"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("TCP")
                    .to_string(),
                port,
            };
            if !out.contains(&hp) {
                out.push(hp);
            }
        }
    }
    out
}

/// A node selector requirement's operator with its values.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SelectorOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: SelectorOp,
}

impl Requirement {
    fn parse(e: &Value, fields: bool) -> Option<Requirement> {
        let key = e["key"].as_str()?.to_string();
        let values: Vec<String> = e["values"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let single_int = || -> Option<i64> {
            match values.as_slice() {
                [v] => v.parse().ok(),
                _ => None,
            }
        };
        let op = match e["operator"].as_str()? {
            "In" if !values.is_empty() => SelectorOp::In(values.clone()),
            "NotIn" if !values.is_empty() => SelectorOp::NotIn(values.clone()),
            "Exists" if !fields && values.is_empty() => SelectorOp::Exists,
            "DoesNotExist" if !fields && values.is_empty() => SelectorOp::DoesNotExist,
            "Gt" if !fields => SelectorOp::Gt(single_int()?),
            "Lt" if !fields => SelectorOp::Lt(single_int()?),
            _ => return None,
        };
        if fields && key != "metadata.name" {
            return None;
        }
        Some(Requirement { key, op })
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match &self.op {
            SelectorOp::In(vs) => value.is_some_and(|v| vs.iter().any(|x| x == v)),
            SelectorOp::NotIn(vs) => !value.is_some_and(|v| vs.iter().any(|x| x == v)),
            SelectorOp::Exists => value.is_some(),
            SelectorOp::DoesNotExist => value.is_none(),
            SelectorOp::Gt(b) => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *b),
            SelectorOp::Lt(b) => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *b),
        }
    }
}

/// One `NodeSelectorTerm`: its label expressions and field expressions all hold. An empty
/// term, or one with an invalid requirement, matches no node (as in Kubernetes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
    valid: bool,
}

impl NodeSelectorTerm {
    pub fn parse(t: &Value) -> NodeSelectorTerm {
        let mut valid = true;
        let mut parse_all = |key: &str, fields: bool| -> Vec<Requirement> {
            let mut out = Vec::new();
            for e in t[key].as_array().into_iter().flatten() {
                match Requirement::parse(e, fields) {
                    Some(r) => out.push(r),
                    None => valid = false,
                }
            }
            out
        };
        let labels = parse_all("matchExpressions", false);
        let fields = parse_all("matchFields", true);
        let valid = valid && !(labels.is_empty() && fields.is_empty());
        NodeSelectorTerm {
            labels,
            fields,
            valid,
        }
    }

    /// Whether the node (its labels and name) matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
        self.valid
            && self
                .labels
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches(Some(node_name)))
    }
}

/// What scheduling a pod needs to know about it, parsed once per decision.
#[derive(Clone, Debug)]
pub struct PodNeeds {
    /// `namespace/name`.
    pub key: String,
    pub usage: PodUsage,
    pub tolerations: Vec<Toleration>,
    pub node_selector: Vec<(String, String)>,
    /// `None` when the pod has no required node affinity; the terms are ORed.
    pub required_terms: Option<Vec<NodeSelectorTerm>>,
    pub preferred_terms: Vec<(i64, NodeSelectorTerm)>,
    /// `spec.preemptionPolicy: Never`.
    pub never_preempts: bool,
}

impl PodNeeds {
    pub fn of(pod: &Value) -> PodNeeds {
        let spec = &pod["spec"];
        let node_selector = spec["nodeSelector"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let na = &spec["affinity"]["nodeAffinity"];
        let required = &na["requiredDuringSchedulingIgnoredDuringExecution"];
        let required_terms = if required.is_object() {
            Some(
                required["nodeSelectorTerms"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(NodeSelectorTerm::parse)
                    .collect(),
            )
        } else {
            None
        };
        let preferred_terms = na["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let w = p["weight"].as_i64().unwrap_or(0);
                (w != 0).then(|| (w, NodeSelectorTerm::parse(&p["preference"])))
            })
            .collect();
        PodNeeds {
            key: pod_key(pod),
            usage: PodUsage::of(pod),
            tolerations: Toleration::of_pod(pod),
            node_selector,
            required_terms,
            preferred_terms,
            never_preempts: spec["preemptionPolicy"].as_str() == Some("Never"),
        }
    }
}

/// The key a pod is tracked by: `namespace/name`.
pub fn pod_key(pod: &Value) -> String {
    format!("{}/{}", meta::namespace(pod), meta::name(pod))
}
