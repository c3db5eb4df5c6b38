//! A Service's Endpoints (core/v1) and EndpointSlices (discovery.k8s.io/v1), computed from
//! the pods its selector picks, as Kubernetes' endpoints and EndpointSlice controllers do:
//! ready pods are addresses, the rest not-ready addresses (terminating pods only in slices,
//! flagged `terminating`), each service port resolved against each pod (named target ports
//! through the pod's container ports), addresses grouped by identical port sets. Slices are
//! reconciled against the existing ones with little churn: endpoints stay in the slice
//! they are in, existing slices are updated in place before any is created, surplus ones
//! are deleted, and nothing changes when the existing slices already say the right thing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use navarch_model::selector::LabelSelector;
use serde_json::{json, Map, Value};

use crate::meta;

/// Kubernetes' `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// An Endpoints object holds at most this many addresses (Kubernetes truncates beyond).
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// What to write so the Service's EndpointSlices are the desired ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceChanges {
    /// New slices (`metadata.generateName` set, no name).
    pub create: Vec<Value>,
    /// Existing slices rewritten (their `metadata.name` and `resourceVersion` kept).
    pub update: Vec<Value>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl SliceChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

// --- the service ------------------------------------------------------------------------------

/// One service port and its target.
#[derive(Clone, Debug)]
struct ServicePort {
    name: String,
    protocol: String,
    app_protocol: Option<String>,
    target: Target,
}

#[derive(Clone, Debug)]
enum Target {
    Number(i64),
    Name(String),
}

impl ServicePort {
    fn parse(p: &Value) -> ServicePort {
        let port = p["port"].as_i64().unwrap_or(0);
        let target = match &p["targetPort"] {
            Value::Number(n) => match n.as_i64() {
                Some(0) | None => Target::Number(port),
                Some(t) => Target::Number(t),
            },
            Value::String(s) if !s.is_empty() => Target::Name(s.clone()),
            _ => Target::Number(port),
        };
        ServicePort {
            name: p["name"].as_str().unwrap_or("").to_string(),
            protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
            app_protocol: p["appProtocol"].as_str().map(str::to_string),
            target,
        }
    }

    /// Kubernetes' `FindPort`: a number is the port; a name is looked up among the pod's
    /// container ports (and its sidecars') of the same protocol.
    fn resolve(&self, pod: &Value) -> Option<i64> {
        match &self.target {
            Target::Number(n) => Some(*n),
            Target::Name(name) => {
                let spec = &pod["spec"];
                let containers = spec["containers"].as_array().into_iter().flatten();
                let sidecars = spec["initContainers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["restartPolicy"].as_str() == Some("Always"));
                containers
                    .chain(sidecars)
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .find(|p| {
                        p["name"].as_str() == Some(name.as_str())
                            && p["protocol"].as_str().unwrap_or("TCP") == self.protocol
                    })
                    .and_then(|p| p["containerPort"].as_i64())
            }
        }
    }
}

/// What the controllers read from a Service.
struct Service<'a> {
    obj: &'a Value,
    name: &'a str,
    namespace: &'a str,
    selector: LabelSelector,
    ports: Vec<ServicePort>,
    publish_not_ready: bool,
    headless: bool,
    /// `IPv4` and/or `IPv6`, primary first.
    address_types: Vec<&'static str>,
}

impl<'a> Service<'a> {
    /// `None` for a Service the controllers leave alone: no selector (its endpoints are
    /// managed by hand; an empty selector counts as none here, where Kubernetes would
    /// select every pod of the namespace) or `ExternalName`.
    fn parse(svc: &'a Value, pods: &[Arc<Value>]) -> Option<Service<'a>> {
        let spec = &svc["spec"];
        if spec["type"].as_str() == Some("ExternalName") {
            return None;
        }
        let sel = spec["selector"].as_object().filter(|m| !m.is_empty())?;
        let selector = LabelSelector::from_object(&json!({"matchLabels": sel})).ok()?;
        let cluster_ip = spec["clusterIP"].as_str().unwrap_or("");
        let headless = cluster_ip.is_empty() || cluster_ip == "None";
        let mut address_types: Vec<&'static str> = spec["ipFamilies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| match f.as_str() {
                Some("IPv4") => Some("IPv4"),
                Some("IPv6") => Some("IPv6"),
                _ => None,
            })
            .collect();
        address_types.dedup();
        if address_types.is_empty() {
            if !headless {
                address_types.push(family(cluster_ip));
            } else {
                // No family stated: the families of the pods' primary IPs, IPv4 first.
                let found: BTreeSet<&'static str> = pods
                    .iter()
                    .filter_map(|p| primary_ip(p))
                    .map(family)
                    .collect();
                address_types = found.into_iter().collect();
                if address_types.is_empty() {
                    address_types.push("IPv4");
                }
            }
        }
        Some(Service {
            obj: svc,
            name: meta::name(svc),
            namespace: meta::namespace(svc),
            selector,
            ports: spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(ServicePort::parse)
                .collect(),
            publish_not_ready: spec["publishNotReadyAddresses"].as_bool() == Some(true),
            headless,
            address_types,
        })
    }

    /// The pods the service selects that can be endpoints: in its namespace, matching,
    /// with an IP, not ended.
    fn selects<'p>(&'p self, pods: &'p [Arc<Value>]) -> impl Iterator<Item = &'p Value> + 'p {
        pods.iter().map(|p| p.as_ref()).filter(move |p| {
            meta::namespace(p) == self.namespace
                && self.selector.matches(meta::labels(p))
                && primary_ip(p).is_some()
                && !meta::pod_terminated(p)
        })
    }

    /// The service's labels less the ones the controllers own, plus the headless label.
    fn labels(&self) -> Map<String, Value> {
        let mut labels = Map::new();
        if let Some(l) = meta::labels(self.obj).as_object() {
            for (k, v) in l {
                if k != LABEL_SERVICE_NAME && k != LABEL_MANAGED_BY && k != LABEL_HEADLESS {
                    labels.insert(k.clone(), v.clone());
                }
            }
        }
        if self.headless {
            labels.insert(LABEL_HEADLESS.to_string(), json!(""));
        }
        labels
    }

    /// The pod's DNS hostname under this service (`spec.hostname` with `spec.subdomain`
    /// naming the service).
    fn hostname<'p>(&self, pod: &'p Value) -> Option<&'p str> {
        let h = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
        (pod["spec"]["subdomain"].as_str() == Some(self.name)
            && meta::namespace(pod) == self.namespace)
            .then_some(h)
    }

    /// The endpoint ports a pod offers: `(name, port, protocol, appProtocol)` in the
    /// service's order; ports whose target does not resolve on the pod are left out.
    fn pod_ports(&self, pod: &Value) -> Vec<PortKey> {
        self.ports
            .iter()
            .filter_map(|sp| {
                sp.resolve(pod).map(|n| PortKey {
                    name: sp.name.clone(),
                    port: n,
                    protocol: sp.protocol.clone(),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect()
    }
}

/// One endpoint port, comparable.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PortKey {
    name: String,
    port: i64,
    protocol: String,
    app_protocol: Option<String>,
}

impl PortKey {
    fn from_value(p: &Value) -> PortKey {
        PortKey {
            name: p["name"].as_str().unwrap_or("").to_string(),
            port: p["port"].as_i64().unwrap_or(0),
            protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
            app_protocol: p["appProtocol"].as_str().map(str::to_string),
        }
    }

    /// As an Endpoints port (`name` omitted when empty).
    fn endpoints_json(&self) -> Value {
        let mut v = json!({"port": self.port, "protocol": self.protocol});
        if !self.name.is_empty() {
            v["name"] = json!(self.name);
        }
        if let Some(a) = &self.app_protocol {
            v["appProtocol"] = json!(a);
        }
        v
    }

    /// As an EndpointSlice port (`name` always set, as Kubernetes writes it).
    fn slice_json(&self) -> Value {
        let mut v = json!({"name": self.name, "port": self.port, "protocol": self.protocol});
        if let Some(a) = &self.app_protocol {
            v["appProtocol"] = json!(a);
        }
        v
    }
}

fn family(ip: &str) -> &'static str {
    if ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn primary_ip(pod: &Value) -> Option<&str> {
    pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            pod["status"]["podIPs"][0]["ip"]
                .as_str()
                .filter(|ip| !ip.is_empty())
        })
}

/// The pod's IP of one family (`status.podIPs`, else `status.podIP`).
fn ip_of_family<'p>(pod: &'p Value, address_type: &str) -> Option<&'p str> {
    let listed = pod["status"]["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip"].as_str())
        .find(|ip| !ip.is_empty() && family(ip) == address_type);
    listed.or_else(|| primary_ip(pod).filter(|ip| family(ip) == address_type))
}

fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": meta::namespace(pod),
        "name": meta::name(pod),
        "uid": meta::uid(pod),
    })
}

// --- Endpoints --------------------------------------------------------------------------------

/// The Endpoints object (named like the service) its controller would write, or `None`
/// for a service without a selector (or `ExternalName`), whose Endpoints are not managed.
pub fn endpoints_for(service: &Value, pods: &[Arc<Value>]) -> Option<Value> {
    let svc = Service::parse(service, pods)?;
    let address_type = svc.address_types[0];
    // Port set → (ready addresses, not-ready addresses).
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for pod in svc.selects(pods) {
        if meta::is_deleting(pod) && !svc.publish_not_ready {
            continue;
        }
        let Some(ip) = ip_of_family(pod, address_type) else {
            continue;
        };
        let mut ports = svc.pod_ports(pod);
        if svc.ports.is_empty() {
            // Only a headless service lists addresses without ports.
            if !svc.headless {
                continue;
            }
        } else if ports.is_empty() {
            continue;
        }
        ports.sort();
        ports.dedup();
        let mut address = json!({"ip": ip, "targetRef": target_ref(pod)});
        if let Some(n) = meta::pod_node(pod) {
            address["nodeName"] = json!(n);
        }
        if let Some(h) = svc.hostname(pod) {
            address["hostname"] = json!(h);
        }
        let entry = groups.entry(ports).or_default();
        if svc.publish_not_ready || meta::pod_ready(pod) {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let mut subsets: Vec<(Vec<PortKey>, Vec<Value>, Vec<Value>)> = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            sort_addresses(&mut ready);
            sort_addresses(&mut not_ready);
            (ports, ready, not_ready)
        })
        .collect();
    let truncated = truncate(&mut subsets, MAX_ENDPOINTS_ADDRESSES);
    let subsets: Vec<Value> = subsets
        .into_iter()
        .filter(|(_, r, n)| !r.is_empty() || !n.is_empty())
        .map(|(ports, ready, not_ready)| {
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            if !ports.is_empty() {
                s.insert(
                    "ports".into(),
                    Value::Array(ports.iter().map(PortKey::endpoints_json).collect()),
                );
            }
            Value::Object(s)
        })
        .collect();
    let mut labels = Map::new();
    if let Some(l) = meta::labels(service).as_object() {
        labels.extend(l.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if svc.headless {
        labels.insert(LABEL_HEADLESS.to_string(), json!(""));
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    let mut metadata = json!({"name": svc.name, "namespace": svc.namespace});
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    if truncated {
        metadata["annotations"] = json!({ANNOTATION_OVER_CAPACITY: "truncated"});
    }
    let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata});
    if !subsets.is_empty() {
        ep["subsets"] = Value::Array(subsets);
    }
    Some(ep)
}

/// Whether `existing` must be rewritten to say what `desired` says (subsets, labels and
/// the over-capacity annotation; fields the API server fills in are ignored).
pub fn endpoints_changed(existing: &Value, desired: &Value) -> bool {
    let subsets = |e: &Value| -> Vec<Value> {
        e["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let addrs = |k: &str| -> Vec<Value> {
                    s[k].as_array()
                        .into_iter()
                        .flatten()
                        .map(canon_address)
                        .collect()
                };
                let ports: Vec<PortKey> = s["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(PortKey::from_value)
                    .collect();
                json!([
                    addrs("addresses"),
                    addrs("notReadyAddresses"),
                    format!("{ports:?}")
                ])
            })
            .collect()
    };
    let labels = |e: &Value| {
        e["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    subsets(existing) != subsets(desired)
        || labels(existing) != labels(desired)
        || meta::annotation(existing, ANNOTATION_OVER_CAPACITY)
            != meta::annotation(desired, ANNOTATION_OVER_CAPACITY)
}

fn canon_address(a: &Value) -> Value {
    json!([
        a["ip"],
        a["hostname"],
        a["nodeName"],
        a["targetRef"]["kind"],
        a["targetRef"]["namespace"],
        a["targetRef"]["name"],
        a["targetRef"]["uid"],
    ])
}

/// Kubernetes orders addresses by IP (as text), then by pod uid.
fn sort_addresses(list: &mut [Value]) {
    list.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["ip"].as_str().unwrap_or("").to_string(),
                v["targetRef"]["uid"].as_str().unwrap_or("").to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Keeps at most `max` addresses in all, ready ones first: when the ready ones alone are
/// too many, each subset keeps its share of them (rounded up) and no not-ready ones;
/// otherwise the not-ready ones are cut to their share of what is left. Returns whether
/// anything was cut.
fn truncate(subsets: &mut [(Vec<PortKey>, Vec<Value>, Vec<Value>)], max: usize) -> bool {
    let ready: usize = subsets.iter().map(|s| s.1.len()).sum();
    let not_ready: usize = subsets.iter().map(|s| s.2.len()).sum();
    if ready + not_ready <= max {
        return false;
    }
    let cut_ready = ready > max;
    let (room, total) = if cut_ready {
        (max, ready)
    } else {
        (max - ready, not_ready)
    };
    let mut left = room;
    for s in subsets.iter_mut() {
        let here = if cut_ready { s.1.len() } else { s.2.len() };
        let share = (here * room).div_ceil(total).min(left);
        if cut_ready {
            s.1.truncate(share);
            s.2.clear();
            left -= s.1.len();
        } else {
            s.2.truncate(share);
            left -= s.2.len();
        }
    }
    true
}

// --- EndpointSlices ---------------------------------------------------------------------------

/// [`endpoint_slices_with_max`] with Kubernetes' 100 endpoints per slice.
pub fn endpoint_slices_for(
    service: &Value,
    pods: &[Arc<Value>],
    existing: &[Arc<Value>],
) -> SliceChanges {
    endpoint_slices_with_max(service, pods, existing, MAX_ENDPOINTS_PER_SLICE)
}

/// The writes that make the service's EndpointSlices what its pods say. `existing` may
/// hold any slices: only those labelled for this service and managed by the
/// EndpointSlice controller are considered. A service without a selector (or
/// `ExternalName`) gets no changes (its slices are not managed, as in Kubernetes).
pub fn endpoint_slices_with_max(
    service: &Value,
    pods: &[Arc<Value>],
    existing: &[Arc<Value>],
    max_per_slice: usize,
) -> SliceChanges {
    let max = max_per_slice.max(1);
    let Some(svc) = Service::parse(service, pods) else {
        return SliceChanges::default();
    };
    let mut changes = SliceChanges::default();
    let svc_uid = meta::uid(service);
    let mut ours: Vec<&Value> = existing
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| {
            meta::namespace(s) == svc.namespace
                && meta::label(s, LABEL_SERVICE_NAME) == Some(svc.name)
                && meta::label(s, LABEL_MANAGED_BY) == Some(MANAGED_BY)
        })
        .collect();
    ours.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let labels = svc.labels();
    let owner = meta::controller_ref_to(service, "v1", "Service");
    for s in ours.iter().copied() {
        let owned = svc_uid.is_empty() || meta::is_controlled_by(s, svc_uid);
        let supported = svc
            .address_types
            .contains(&s["addressType"].as_str().unwrap_or(""));
        if !owned || !supported {
            changes.delete.push(meta::name(s).to_string());
        }
    }
    let deleted: HashSet<String> = changes.delete.iter().cloned().collect();
    for address_type in svc.address_types.iter().copied() {
        let mine: Vec<&Value> = ours
            .iter()
            .copied()
            .filter(|s| s["addressType"].as_str() == Some(address_type))
            .filter(|s| !deleted.contains(meta::name(s)))
            .collect();
        let ctx = SliceContext {
            svc: &svc,
            labels: &labels,
            owner: &owner,
            address_type,
            max,
        };
        ctx.reconcile(pods, &mine, &mut changes);
    }
    changes
}

/// An endpoint's identity across syncs: its address and pod.
fn endpoint_key(ep: &Value) -> String {
    format!(
        "{}|{}/{}",
        ep["addresses"][0].as_str().unwrap_or(""),
        ep["targetRef"]["namespace"].as_str().unwrap_or(""),
        ep["targetRef"]["name"].as_str().unwrap_or(""),
    )
}

/// An endpoint with only the fields that matter, for comparison.
fn canon_endpoint(ep: &Value) -> Value {
    let b = |v: &Value| v.as_bool();
    json!([
        ep["addresses"],
        b(&ep["conditions"]["ready"]),
        b(&ep["conditions"]["serving"]),
        b(&ep["conditions"]["terminating"]),
        ep["nodeName"],
        ep["hostname"],
        ep["zone"],
        ep["targetRef"]["kind"],
        ep["targetRef"]["namespace"],
        ep["targetRef"]["name"],
        ep["targetRef"]["uid"],
    ])
}

fn slice_ports(s: &Value) -> Vec<PortKey> {
    s["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(PortKey::from_value)
        .collect()
}

struct SliceContext<'a> {
    svc: &'a Service<'a>,
    labels: &'a Map<String, Value>,
    owner: &'a Value,
    address_type: &'static str,
    max: usize,
}

impl SliceContext<'_> {
    /// The desired endpoints of this address type, by port list (in the service's order).
    fn desired(&self, pods: &[Arc<Value>]) -> BTreeMap<Vec<PortKey>, BTreeMap<String, Value>> {
        let mut groups: BTreeMap<Vec<PortKey>, BTreeMap<String, Value>> = BTreeMap::new();
        for pod in self.svc.selects(pods) {
            let Some(ip) = ip_of_family(pod, self.address_type) else {
                continue;
            };
            let ports = self.svc.pod_ports(pod);
            if ports.is_empty() && !self.svc.ports.is_empty() {
                continue;
            }
            let serving = meta::pod_ready(pod);
            let terminating = meta::is_deleting(pod);
            let ready = self.svc.publish_not_ready || (serving && !terminating);
            let mut ep = json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "targetRef": target_ref(pod),
            });
            if let Some(n) = meta::pod_node(pod) {
                ep["nodeName"] = json!(n);
            }
            if let Some(h) = self.svc.hostname(pod) {
                ep["hostname"] = json!(h);
            }
            groups
                .entry(ports)
                .or_default()
                .insert(endpoint_key(&ep), ep);
        }
        groups
    }

    fn reconcile(&self, pods: &[Arc<Value>], existing: &[&Value], changes: &mut SliceChanges) {
        let mut desired = self.desired(pods);
        let placeholder = desired.is_empty();
        if placeholder {
            // No endpoints: one empty slice says so (Kubernetes' placeholder).
            desired.insert(Vec::new(), BTreeMap::new());
        }
        // Existing slices by port list; those of port lists no longer wanted are spare.
        let mut spare: Vec<&Value> = Vec::new();
        let mut by_ports: BTreeMap<Vec<PortKey>, Vec<&Value>> = BTreeMap::new();
        for s in existing.iter().copied() {
            let ports = slice_ports(s);
            if desired.contains_key(&ports) {
                by_ports.entry(ports).or_default().push(s);
            } else {
                spare.push(s);
            }
        }
        let mut to_write: Vec<(Option<&Value>, Vec<PortKey>, Vec<Value>)> = Vec::new();
        for (ports, mut wanted) in desired {
            let slices = by_ports.remove(&ports).unwrap_or_default();
            // Endpoints stay where they are.
            let mut filled: Vec<(&Value, Vec<Value>)> = Vec::new();
            for s in slices {
                let mut kept = Vec::new();
                for ep in s["endpoints"].as_array().into_iter().flatten() {
                    if let Some(d) = wanted.remove(&endpoint_key(ep)) {
                        kept.push(d);
                    }
                }
                filled.push((s, kept));
            }
            // New endpoints fill the room left in existing slices, then new slices.
            let mut rest: Vec<Value> = wanted.into_values().collect();
            rest.reverse();
            for (_, kept) in filled.iter_mut() {
                while kept.len() < self.max {
                    match rest.pop() {
                        Some(e) => kept.push(e),
                        None => break,
                    }
                }
            }
            rest.reverse();
            let mut emptied = Vec::new();
            for (s, kept) in filled {
                if kept.is_empty() && !(placeholder && to_write.is_empty() && emptied.is_empty()) {
                    emptied.push(s);
                } else {
                    to_write.push((Some(s), ports.clone(), kept));
                }
            }
            spare.extend(emptied);
            let chunks: Vec<Vec<Value>> = rest.chunks(self.max).map(<[Value]>::to_vec).collect();
            if placeholder && to_write.is_empty() {
                to_write.push((None, ports.clone(), Vec::new()));
            }
            for c in chunks {
                to_write.push((None, ports.clone(), c));
            }
        }
        // Slices to create reuse spare ones first (the address type cannot change, it is
        // the same here); what is still spare goes.
        spare.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        spare.reverse();
        for (slot, ports, endpoints) in to_write {
            let base = slot.or_else(|| spare.pop());
            let slice = self.slice(base, &ports, endpoints);
            match base {
                None => changes.create.push(slice),
                Some(old) => {
                    if self.differs(old, &slice) {
                        changes.update.push(slice);
                    }
                }
            }
        }
        for s in spare {
            changes.delete.push(meta::name(s).to_string());
        }
    }

    /// The slice: `base` (an existing slice, metadata kept) rewritten, or a new one.
    fn slice(&self, base: Option<&Value>, ports: &[PortKey], endpoints: Vec<Value>) -> Value {
        let mut s = match base {
            Some(b) => b.clone(),
            None => json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "generateName": format!("{}-", self.svc.name),
                    "namespace": self.svc.namespace,
                },
            }),
        };
        let mut labels = self.labels.clone();
        labels.insert(LABEL_SERVICE_NAME.into(), json!(self.svc.name));
        labels.insert(LABEL_MANAGED_BY.into(), json!(MANAGED_BY));
        let md = meta::object_at(&mut s, "metadata");
        md.insert("labels".into(), Value::Object(labels));
        let mut owners: Vec<Value> = md
            .get("ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        owners.retain(|o| o["controller"].as_bool() != Some(true));
        owners.insert(0, self.owner.clone());
        md.insert("ownerReferences".into(), Value::Array(owners));
        s["addressType"] = json!(self.address_type);
        s["endpoints"] = Value::Array(endpoints);
        s["ports"] = Value::Array(ports.iter().map(PortKey::slice_json).collect());
        s
    }

    fn differs(&self, old: &Value, new: &Value) -> bool {
        let eps = |s: &Value| -> Vec<Value> {
            s["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(canon_endpoint)
                .collect()
        };
        let owner_uid = |s: &Value| {
            meta::controller_ref(s)
                .and_then(|r| r["uid"].as_str())
                .unwrap_or("")
                .to_string()
        };
        eps(old) != eps(new)
            || slice_ports(old) != slice_ports(new)
            || meta::labels(old).as_object().cloned().unwrap_or_default()
                != meta::labels(new).as_object().cloned().unwrap_or_default()
            || owner_uid(old) != owner_uid(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(selector: Value, ports: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"selector": selector, "ports": ports, "clusterIP": "10.96.0.10", "type": "ClusterIP"},
        })
    }

    fn web_svc() -> Value {
        svc(
            json!({"app": "web"}),
            json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]),
        )
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}
            ]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
    }

    fn edit(p: &Arc<Value>, f: impl FnOnce(&mut Value)) -> Arc<Value> {
        let mut v = (**p).clone();
        f(&mut v);
        Arc::new(v)
    }

    fn ips(list: &Value) -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|a| a["ip"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn endpoints_split_ready_and_not_ready() {
        let pods = vec![
            pod("b", "10.0.0.2", true),
            pod("a", "10.0.0.10", true),
            pod("c", "10.0.0.3", false),
        ];
        let ep = endpoints_for(&web_svc(), &pods).unwrap();
        assert_eq!(ep["metadata"]["name"], "web");
        assert_eq!(ep["metadata"]["namespace"], "default");
        assert_eq!(ep["metadata"]["labels"], json!({"app": "web"}));
        let s = &ep["subsets"];
        assert_eq!(s.as_array().unwrap().len(), 1);
        // Ordered by IP as text, as Kubernetes does.
        assert_eq!(ips(&s[0]["addresses"]), vec!["10.0.0.10", "10.0.0.2"]);
        assert_eq!(ips(&s[0]["notReadyAddresses"]), vec!["10.0.0.3"]);
        assert_eq!(
            s[0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            s[0]["addresses"][1],
            json!({"ip": "10.0.0.2", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}})
        );
    }

    #[test]
    fn endpoints_select_and_filter_pods() {
        let base = pod("p", "10.0.0.1", true);
        #[rustfmt::skip]
        let cases: Vec<(&str, Arc<Value>, bool)> = vec![
            ("selected", base.clone(), true),
            ("other labels", edit(&base, |p| p["metadata"]["labels"]["app"] = json!("db")), false),
            ("other namespace", edit(&base, |p| p["metadata"]["namespace"] = json!("prod")), false),
            ("no IP yet", edit(&base, |p| p["status"]["podIP"] = json!(null)), false),
            ("ended", edit(&base, |p| p["status"]["phase"] = json!("Failed")), false),
            ("being deleted", edit(&base, |p| p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")), false),
            ("IP from podIPs", edit(&base, |p| { p["status"]["podIP"] = json!(null); p["status"]["podIPs"] = json!([{"ip": "10.0.0.1"}]); }), true),
        ];
        for (name, p, listed) in cases {
            let ep = endpoints_for(&web_svc(), &[p]).unwrap();
            assert_eq!(ep.get("subsets").is_some(), listed, "{name}: {ep}");
        }
        // Without a selector (or ExternalName) the Endpoints are not managed.
        assert_eq!(
            endpoints_for(
                &svc(json!(null), json!([{"port": 80}])),
                std::slice::from_ref(&base)
            ),
            None
        );
        assert_eq!(
            endpoints_for(
                &svc(json!({}), json!([{"port": 80}])),
                std::slice::from_ref(&base)
            ),
            None
        );
        let mut ext = web_svc();
        ext["spec"]["type"] = json!("ExternalName");
        assert_eq!(endpoints_for(&ext, std::slice::from_ref(&base)), None);
        // publishNotReadyAddresses lists not-ready and deleting pods as ready.
        let mut publish = web_svc();
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let deleting = edit(&pod("d", "10.0.0.4", false), |p| {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
        });
        let ep = endpoints_for(&publish, &[pod("n", "10.0.0.3", false), deleting]).unwrap();
        assert_eq!(
            ips(&ep["subsets"][0]["addresses"]),
            vec!["10.0.0.3", "10.0.0.4"]
        );
    }

    #[test]
    fn ports_resolve_per_pod() {
        let two = svc(
            json!({"app": "web"}),
            json!([
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9000, "targetPort": "metrics"},
            ]),
        );
        let no_metrics = edit(&pod("old", "10.0.0.9", true), |p| {
            p["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 8081}]);
        });
        let none = edit(&pod("bare", "10.0.0.8", true), |p| {
            p["spec"]["containers"][0]["ports"] = json!([])
        });
        let ep = endpoints_for(&two, &[pod("new", "10.0.0.1", true), no_metrics, none]).unwrap();
        let subsets = ep["subsets"].as_array().unwrap();
        // Two port sets, two subsets; the pod resolving no port is left out.
        assert_eq!(subsets.len(), 2);
        let by_ip: BTreeMap<String, Value> = subsets
            .iter()
            .map(|s| (ips(&s["addresses"])[0].clone(), s["ports"].clone()))
            .collect();
        assert_eq!(
            by_ip["10.0.0.1"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}])
        );
        assert_eq!(
            by_ip["10.0.0.9"],
            json!([{"name": "http", "port": 8081, "protocol": "TCP"}])
        );

        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Option<i64>)> = vec![
            ("numeric target", json!({"port": 80, "targetPort": 8080}), Some(8080)),
            ("absent target is the port", json!({"port": 80}), Some(80)),
            ("named target", json!({"port": 80, "targetPort": "metrics"}), Some(9090)),
            ("named target of another protocol", json!({"port": 80, "targetPort": "metrics", "protocol": "UDP"}), None),
            ("unknown name", json!({"port": 80, "targetPort": "nope"}), None),
        ];
        for (name, sp, want) in cases {
            assert_eq!(
                ServicePort::parse(&sp).resolve(&pod("p", "10.0.0.1", true)),
                want,
                "{name}"
            );
        }
        // A sidecar's named port resolves too.
        let sidecar = edit(&pod("s", "10.0.0.1", true), |p| {
            p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always", "ports": [{"name": "proxy", "containerPort": 15001}]}]);
        });
        assert_eq!(
            ServicePort::parse(&json!({"port": 80, "targetPort": "proxy"})).resolve(&sidecar),
            Some(15001)
        );
    }

    #[test]
    fn headless_services() {
        let mut h = svc(json!({"app": "web"}), json!([]));
        h["spec"]["clusterIP"] = json!("None");
        let p = edit(&pod("web-0", "10.0.0.1", true), |p| {
            p["spec"]["hostname"] = json!("web-0");
            p["spec"]["subdomain"] = json!("web");
        });
        let ep = endpoints_for(&h, std::slice::from_ref(&p)).unwrap();
        assert_eq!(ep["metadata"]["labels"][LABEL_HEADLESS], "");
        assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "web-0");
        assert!(ep["subsets"][0].get("ports").is_none());
        // A service with an IP and no ports lists nothing.
        let ep = endpoints_for(
            &svc(json!({"app": "web"}), json!([])),
            std::slice::from_ref(&p),
        )
        .unwrap();
        assert!(ep.get("subsets").is_none());
        // Slices of a headless service carry the label and the hostname.
        let c = endpoint_slices_for(&h, &[p], &[]);
        assert_eq!(c.create.len(), 1);
        assert_eq!(c.create[0]["metadata"]["labels"][LABEL_HEADLESS], "");
        assert_eq!(c.create[0]["endpoints"][0]["hostname"], "web-0");
    }

    #[test]
    fn endpoints_truncate_at_capacity() {
        let pods: Vec<Arc<Value>> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250),
                    i % 10 != 0,
                )
            })
            .collect();
        let ep = endpoints_for(&web_svc(), &pods).unwrap();
        let s = &ep["subsets"][0];
        // 990 ready kept, 10 of the 110 not-ready.
        assert_eq!(s["addresses"].as_array().unwrap().len(), 990);
        assert_eq!(s["notReadyAddresses"].as_array().unwrap().len(), 10);
        assert_eq!(
            meta::annotation(&ep, ANNOTATION_OVER_CAPACITY),
            Some("truncated")
        );
        let small = endpoints_for(&web_svc(), &pods[..5]).unwrap();
        assert_eq!(meta::annotation(&small, ANNOTATION_OVER_CAPACITY), None);
    }

    #[test]
    fn endpoints_change_detection() {
        let pods = vec![pod("a", "10.0.0.1", true)];
        let desired = endpoints_for(&web_svc(), &pods).unwrap();
        // What the API server returns carries more metadata and may drop empty fields.
        let mut stored = desired.clone();
        stored["metadata"]["resourceVersion"] = json!("42");
        stored["metadata"]["uid"] = json!("ep-uid");
        assert!(!endpoints_changed(&stored, &desired));
        let moved = endpoints_for(&web_svc(), &[pod("a", "10.0.0.2", true)]).unwrap();
        assert!(endpoints_changed(&stored, &moved));
        let unready = endpoints_for(&web_svc(), &[pod("a", "10.0.0.1", false)]).unwrap();
        assert!(endpoints_changed(&stored, &unready));
        let mut relabelled = web_svc();
        relabelled["metadata"]["labels"]["tier"] = json!("front");
        assert!(endpoints_changed(
            &stored,
            &endpoints_for(&relabelled, &pods).unwrap()
        ));
        let empty = endpoints_for(&web_svc(), &[]).unwrap();
        assert!(!endpoints_changed(
            &json!({"metadata": {"labels": {"app": "web"}}, "subsets": []}),
            &empty
        ));
    }

    /// Applies changes to a set of stored slices, naming created ones `web-<n>`.
    fn apply(stored: &mut Vec<Arc<Value>>, c: &SliceChanges, next: &mut usize) {
        stored.retain(|s| !c.delete.iter().any(|d| d == meta::name(s)));
        for u in &c.update {
            let i = stored
                .iter()
                .position(|s| meta::name(s) == meta::name(u))
                .unwrap();
            let mut v = u.clone();
            let rv = v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .parse::<i64>()
                .unwrap()
                + 1;
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
            stored[i] = Arc::new(v);
        }
        for n in &c.create {
            let mut v = n.clone();
            assert!(v["metadata"].get("name").is_none());
            v["metadata"]["name"] = json!(format!("web-{next}"));
            v["metadata"]["resourceVersion"] = json!("1");
            v["metadata"]["uid"] = json!(format!("slice-{next}"));
            *next += 1;
            stored.push(Arc::new(v));
        }
    }

    fn slice_ips(stored: &[Arc<Value>]) -> BTreeSet<String> {
        stored
            .iter()
            .flat_map(|s| s["endpoints"].as_array().unwrap().clone())
            .map(|e| e["addresses"][0].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn slices_are_created_then_stable() {
        let pods = vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)];
        let c = endpoint_slices_for(&web_svc(), &pods, &[]);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (1, 0, 0));
        let s = &c.create[0];
        assert_eq!(s["apiVersion"], "discovery.k8s.io/v1");
        assert_eq!(s["kind"], "EndpointSlice");
        assert_eq!(s["metadata"]["generateName"], "web-");
        assert_eq!(s["addressType"], "IPv4");
        assert_eq!(
            s["metadata"]["labels"],
            json!({"app": "web", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: MANAGED_BY})
        );
        assert_eq!(
            s["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            s["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            s["endpoints"][0],
            json!({"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                   "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}})
        );
        assert_eq!(
            s["endpoints"][1]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );

        let mut stored = Vec::new();
        let mut next = 0;
        apply(&mut stored, &c, &mut next);
        assert!(endpoint_slices_for(&web_svc(), &pods, &stored).is_empty());
        // The API server's additions change nothing.
        let normalized = edit(&stored[0], |s| {
            s["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            s["metadata"]["generation"] = json!(1);
        });
        assert!(endpoint_slices_for(&web_svc(), &pods, &[normalized]).is_empty());
        // Nor does a stored slice whose empty port name and default protocol were dropped.
        let unnamed = svc(
            json!({"app": "web"}),
            json!([{"port": 80, "targetPort": 8080}]),
        );
        let c = endpoint_slices_for(&unnamed, &pods, &[]);
        assert_eq!(
            c.create[0]["ports"],
            json!([{"name": "", "port": 8080, "protocol": "TCP"}])
        );
        let mut stored = Vec::new();
        apply(&mut stored, &c, &mut next);
        let trimmed = edit(&stored[0], |s| s["ports"] = json!([{"port": 8080}]));
        assert!(endpoint_slices_for(&unnamed, &pods, &[trimmed]).is_empty());
    }

    #[test]
    fn slices_follow_pod_changes_in_place() {
        let pods = vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)];
        let mut stored = Vec::new();
        let mut next = 0;
        apply(
            &mut stored,
            &endpoint_slices_for(&web_svc(), &pods, &[]),
            &mut next,
        );

        // A pod turns terminating: the slice is updated in place, keeping its name and version.
        let terminating = edit(&pods[1], |p| {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
        });
        let c = endpoint_slices_for(&web_svc(), &[pods[0].clone(), terminating], &stored);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
        assert_eq!(c.update[0]["metadata"]["name"], "web-0");
        assert_eq!(c.update[0]["metadata"]["resourceVersion"], "1");
        assert_eq!(
            c.update[0]["endpoints"][1]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        apply(&mut stored, &c, &mut next);

        // All pods go: the slice stays as an empty placeholder.
        let c = endpoint_slices_for(&web_svc(), &[], &stored);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
        assert_eq!(c.update[0]["endpoints"], json!([]));
        assert_eq!(c.update[0]["ports"], json!([]));
        apply(&mut stored, &c, &mut next);
        assert!(endpoint_slices_for(&web_svc(), &[], &stored).is_empty());

        // Pods come back: the placeholder is reused.
        let c = endpoint_slices_for(&web_svc(), &pods, &stored);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
        apply(&mut stored, &c, &mut next);
        assert_eq!(
            slice_ips(&stored),
            ["10.0.0.1", "10.0.0.2"].map(String::from).into()
        );

        // The target port changes: the slice is rewritten in place, not recreated.
        let mut moved = web_svc();
        moved["spec"]["ports"][0]["targetPort"] = json!("metrics");
        let c = endpoint_slices_for(&moved, &pods, &stored);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
        assert_eq!(c.update[0]["ports"][0]["port"], 9090);

        // A service with no pods at all and no slices gets one placeholder.
        let c = endpoint_slices_for(&web_svc(), &[], &[]);
        assert_eq!(c.create.len(), 1);
        assert_eq!(c.create[0]["endpoints"], json!([]));
    }

    #[test]
    fn more_than_a_hundred_pods_make_two_slices() {
        let pods: Vec<Arc<Value>> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.0.{}.{}", i / 100, i % 100 + 1),
                    true,
                )
            })
            .collect();
        let c = endpoint_slices_for(&web_svc(), &pods, &[]);
        assert_eq!(c.create.len(), 2);
        let sizes: Vec<usize> = c
            .create
            .iter()
            .map(|s| s["endpoints"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![100, 50]);
        let mut stored = Vec::new();
        let mut next = 0;
        apply(&mut stored, &c, &mut next);
        assert_eq!(slice_ips(&stored).len(), 150);
        assert!(endpoint_slices_for(&web_svc(), &pods, &stored).is_empty());

        // Twenty more fill the room in the second slice: one update, no create.
        let more: Vec<Arc<Value>> = (150..170)
            .map(|i| pod(&format!("p{i:03}"), &format!("10.0.9.{i}"), true))
            .collect();
        let all: Vec<Arc<Value>> = pods.iter().chain(&more).cloned().collect();
        let c = endpoint_slices_for(&web_svc(), &all, &stored);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
        assert_eq!(c.update[0]["metadata"]["name"], "web-1");
        apply(&mut stored, &c, &mut next);
        assert_eq!(slice_ips(&stored).len(), 170);

        // Down to ten pods, all in the first slice: the second is deleted.
        let c = endpoint_slices_for(&web_svc(), &pods[..10], &stored);
        assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 1));
        assert_eq!(c.delete, vec!["web-1".to_string()]);
        apply(&mut stored, &c, &mut next);
        assert_eq!(slice_ips(&stored).len(), 10);
        assert!(endpoint_slices_for(&web_svc(), &pods[..10], &stored).is_empty());

        // A smaller maximum splits further.
        let c = endpoint_slices_with_max(&web_svc(), &pods[..10], &[], 3);
        assert_eq!(c.create.len(), 4);
    }

    #[test]
    fn slices_of_others_are_left_alone_and_strays_deleted() {
        let pods = vec![pod("a", "10.0.0.1", true)];
        let foreign = Arc::new(
            json!({"metadata": {"name": "web-manual", "namespace": "default",
            "labels": {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: "someone-else"}}, "addressType": "IPv4", "endpoints": []}),
        );
        let other_svc = Arc::new(json!({"metadata": {"name": "db-x", "namespace": "default",
            "labels": {LABEL_SERVICE_NAME: "db", LABEL_MANAGED_BY: MANAGED_BY}}, "addressType": "IPv4", "endpoints": []}));
        let old_owner = Arc::new(
            json!({"metadata": {"name": "web-old", "namespace": "default",
            "labels": {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: MANAGED_BY},
            "ownerReferences": [{"kind": "Service", "name": "web", "uid": "previous-uid", "controller": true}]},
            "addressType": "IPv4", "endpoints": [], "ports": []}),
        );
        let c = endpoint_slices_for(&web_svc(), &pods, &[foreign, other_svc, old_owner]);
        assert_eq!(c.delete, vec!["web-old".to_string()]);
        assert_eq!(c.create.len(), 1);
        assert!(c.update.is_empty());
    }

    #[test]
    fn no_selector_no_slices() {
        let c = endpoint_slices_for(
            &svc(json!(null), json!([{"port": 80}])),
            &[pod("a", "10.0.0.1", true)],
            &[],
        );
        assert!(c.is_empty());
    }

    #[test]
    fn ipv6_and_dual_stack() {
        let v6 = vec![pod("a", "fd00::1", true)];
        let mut s = web_svc();
        s["spec"]["clusterIP"] = json!("fd00:96::10");
        let c = endpoint_slices_for(&s, &v6, &[]);
        assert_eq!(c.create[0]["addressType"], "IPv6");
        assert_eq!(c.create[0]["endpoints"][0]["addresses"], json!(["fd00::1"]));

        let dual = vec![edit(&pod("a", "10.0.0.1", true), |p| {
            p["status"]["podIPs"] = json!([{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]);
        })];
        let mut s = web_svc();
        s["spec"]["ipFamilies"] = json!(["IPv4", "IPv6"]);
        let c = endpoint_slices_for(&s, &dual, &[]);
        let types: Vec<&str> = c
            .create
            .iter()
            .map(|s| s["addressType"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["IPv4", "IPv6"]);
        assert_eq!(c.create[1]["endpoints"][0]["addresses"], json!(["fd00::1"]));
        // Endpoints take the primary family.
        let ep = endpoints_for(&s, &dual).unwrap();
        assert_eq!(ips(&ep["subsets"][0]["addresses"]), vec!["10.0.0.1"]);
    }
}
