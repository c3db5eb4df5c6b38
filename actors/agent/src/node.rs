//! A node's own objects as a kubelet writes them: its Node (labels, pod range, capacity,
//! addresses, node info and conditions), the status heartbeat, and its Lease in
//! `kube-node-lease`. Pure: the node's description and the time come in, JSON goes out.

use std::collections::BTreeMap;
use std::time::SystemTime;

use navarch_model::time::{format_rfc3339_micros, rfc3339};
use serde_json::{json, Map, Value};

use crate::config::Resources;
use crate::ipam::Cidr;

/// The annotation that marks a hollow node: it runs nothing, so its pods are not isolated.
pub const HOLLOW_ANNOTATION: &str = "node.navarch.io/hollow";
/// The runtime a hollow node reports (`status.nodeInfo.containerRuntimeVersion`); its
/// containers' ids start with `hollow://` too.
pub const HOLLOW_RUNTIME: &str = "hollow://0.1.0";
/// The kubelet version a hollow node reports.
pub const HOLLOW_KUBELET_VERSION: &str = "v1.37.0+navarch.hollow";

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeDescription {
    pub name: String,
    pub capacity: Resources,
    /// Labels given on the command line; the kubelet's own (`kubernetes.io/hostname`,
    /// `kubernetes.io/os`, `kubernetes.io/arch`) are added.
    pub labels: BTreeMap<String, String>,
    pub pod_cidr: Cidr,
    /// The node's address (InternalIP, and every pod's hostIP).
    pub address: std::net::Ipv4Addr,
    /// A fresh id per start of the agent (`nodeInfo.bootID`).
    pub boot_id: String,
    /// A hollow node, or one that runs its pods.
    pub flavor: Flavor,
    /// The port of the node's kubelet endpoint (`kubelet.*` over QUIC, on `address`), which
    /// masters dial for `pods/log` and `pods/exec`; 0 for a node that serves none (hollow
    /// nodes), which the API server then answers for with an error.
    pub kubelet_port: u16,
}

/// The annotation that says whether a node's pods are isolated from the host (namespaces,
/// a root filesystem, cgroup limits) or plain supervised processes.
pub const ISOLATED_ANNOTATION: &str = "node.navarch.io/pods-isolated";

/// What kind of node this is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Runs nothing (kubemark's idea).
    Hollow,
    /// Runs its pods on a container runtime.
    Kubelet(KubeletInfo),
}

/// What a node that runs pods says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletInfo {
    /// `status.nodeInfo.containerRuntimeVersion` (`process://0.1.0`).
    pub runtime_version: String,
    /// The runtimes (RuntimeClass handlers) it has.
    pub runtimes: Vec<String>,
    pub isolated: bool,
    /// Why pods are not isolated, when they are not.
    pub isolation_note: Option<String>,
    pub kernel_version: String,
    pub os_image: String,
    /// Where the pods' files are (its file system's free space is the disk pressure).
    pub root: std::path::PathBuf,
    /// Disk pressure below this share of the root's file system available (percent).
    pub disk_pressure_percent: u64,
}

/// The kubelet version a node that runs pods reports.
pub const KUBELET_VERSION: &str = "v1.37.0+navarch";

/// Kubernetes' name for this machine's architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// A stable, id-looking hex string for `name` (machine and system ids).
fn stable_id(name: &str, salt: &str) -> String {
    // FNV-1a, twice with different salts, is enough for an id that only has to be stable.
    let hash = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        hash(&format!("{salt}/{name}")),
        hash(&format!("{name}/{salt}"))
    )
}

impl NodeDescription {
    /// The labels the Node carries: the given ones, then the kubelet's.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("kubernetes.io/hostname".into(), self.name.clone());
        l.insert("kubernetes.io/os".into(), "linux".into());
        l.insert("kubernetes.io/arch".into(), arch().into());
        l
    }

    /// The annotations the node sets on its Node: the hollow mark, or whether its pods are
    /// isolated.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        match &self.flavor {
            Flavor::Hollow => {
                a.insert(HOLLOW_ANNOTATION.to_string(), "true".to_string());
                a.insert(ISOLATED_ANNOTATION.to_string(), "false".to_string());
            }
            Flavor::Kubelet(k) => {
                a.insert(ISOLATED_ANNOTATION.to_string(), k.isolated.to_string());
                a.insert("node.navarch.io/runtimes".to_string(), k.runtimes.join(","));
                if let Some(note) = &k.isolation_note {
                    a.insert("node.navarch.io/isolation".to_string(), note.clone());
                }
            }
        }
        a
    }

    /// The four conditions of a healthy kubelet, all last changed at `since` and heard of
    /// at `now`.
    pub fn conditions(&self, since: &str, now: &str) -> Value {
        let c = |ty: &str, status: &str, reason: &str, message: &str| {
            json!({
                "type": ty,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
            })
        };
        let ready = match &self.flavor {
            Flavor::Hollow => "hollow kubelet is posting ready status",
            Flavor::Kubelet(_) => "kubelet is posting ready status",
        };
        let p = match &self.flavor {
            Flavor::Hollow => crate::machine::Pressure::default(),
            Flavor::Kubelet(k) => crate::machine::pressure(&k.root, k.disk_pressure_percent),
        };
        let memory = if p.memory {
            c(
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            )
        } else {
            c(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            )
        };
        let disk = if p.disk {
            c(
                "DiskPressure",
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            )
        } else {
            c(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            )
        };
        let pids = if p.pids {
            c(
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            )
        } else {
            c(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            )
        };
        json!([
            memory,
            disk,
            pids,
            c("Ready", "True", "KubeletReady", ready),
        ])
    }

    /// The Node's status: resources, conditions, addresses, node info.
    pub fn status(&self, since: &str, now: &str) -> Value {
        let resources: Map<String, Value> = self
            .capacity
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let (kernel, os_image, runtime, kubelet) = match &self.flavor {
            Flavor::Hollow => (
                "hollow".to_string(),
                "navarch hollow node (pods are not run, nor isolated)".to_string(),
                HOLLOW_RUNTIME.to_string(),
                HOLLOW_KUBELET_VERSION,
            ),
            Flavor::Kubelet(k) => (
                k.kernel_version.clone(),
                k.os_image.clone(),
                k.runtime_version.clone(),
                KUBELET_VERSION,
            ),
        };
        json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": self.conditions(since, now),
            "addresses": [
                {"type": "InternalIP", "address": self.address.to_string()},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": stable_id(&self.name, "machine"),
                "systemUUID": stable_id(&self.name, "system"),
                "bootID": self.boot_id,
                "kernelVersion": kernel,
                "osImage": os_image,
                "containerRuntimeVersion": runtime,
                "kubeletVersion": kubelet,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch(),
            },
        })
    }

    /// The Node a registration creates.
    pub fn object(&self, now: SystemTime) -> Value {
        let t = rfc3339(now);
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": self.labels(),
                "annotations": self.annotations(),
            },
            // A hollow node picks its own range; a kubelet gets one from the masters.
            "spec": match self.flavor {
                Flavor::Hollow => json!({
                    "podCIDR": self.pod_cidr.to_string(),
                    "podCIDRs": [self.pod_cidr.to_string()],
                }),
                Flavor::Kubelet(_) => json!({}),
            },
            "status": self.status(&t, &t),
        })
    }

    /// `existing` (a Node registered before) made this node's again, for an update of the
    /// main resource: the kubelet's labels and ours set, the hollow annotation, and the pod
    /// range unless it has one (a pod range, once set, stays). What others set (other
    /// labels and annotations, taints) is kept; so is the status, which goes through
    /// `nodes/<name>/status`.
    pub fn reregistered(&self, existing: &Value) -> Value {
        let mut node = existing.clone();
        let meta = &mut node["metadata"];
        if !meta["labels"].is_object() {
            meta["labels"] = json!({});
        }
        for (k, v) in self.labels() {
            meta["labels"][k] = json!(v);
        }
        if !meta["annotations"].is_object() {
            meta["annotations"] = json!({});
        }
        for (k, v) in self.annotations() {
            meta["annotations"][k] = json!(v);
        }
        if !node["spec"].is_object() {
            node["spec"] = json!({});
        }
        if self.flavor == Flavor::Hollow
            && node["spec"]["podCIDR"].as_str().unwrap_or("").is_empty()
        {
            node["spec"]["podCIDR"] = json!(self.pod_cidr.to_string());
            node["spec"]["podCIDRs"] = json!([self.pod_cidr.to_string()]);
        }
        node
    }

    /// The strategic merge patch of `nodes/<name>/status` that says the node is alive:
    /// every condition heard of `now`, unchanged since `since`.
    pub fn heartbeat(&self, since: &str, now: SystemTime) -> Value {
        json!({"status": {"conditions": self.conditions(since, &rfc3339(now))}})
    }
}

/// The pod range a Node says it has (`spec.podCIDR`), if it is a valid one.
pub fn pod_cidr_of(node: &Value) -> Option<Cidr> {
    node["spec"]["podCIDR"].as_str()?.parse().ok()
}

/// The node's Lease, renewed at `now`: `kube-node-lease/<node>`, held by the node, owned by
/// its Node (so it goes with it).
pub fn lease(node: &str, node_uid: Option<&str>, duration_secs: u64, now: SystemTime) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": navarch_model::authz::NODE_LEASE_NAMESPACE,
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration_secs,
            "renewTime": format_rfc3339_micros(now),
        },
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1",
            "kind": "Node",
            "name": node,
            "uid": uid,
        }]);
    }
    lease
}

/// `existing` renewed at `now` (its resourceVersion kept: the update is a compare-and-swap).
pub fn renewed(existing: &Value, node: &str, duration_secs: u64, now: SystemTime) -> Value {
    let mut l = existing.clone();
    if !l["spec"].is_object() {
        l["spec"] = json!({});
    }
    l["spec"]["holderIdentity"] = json!(node);
    l["spec"]["leaseDurationSeconds"] = json!(duration_secs);
    l["spec"]["renewTime"] = json!(format_rfc3339_micros(now));
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn desc() -> NodeDescription {
        NodeDescription {
            name: "hollow-3".into(),
            capacity: crate::config::parse_capacity("").unwrap(),
            labels: [("pool".to_string(), "hollow".to_string())].into(),
            pod_cidr: "10.244.3.0/24".parse().unwrap(),
            address: std::net::Ipv4Addr::LOCALHOST,
            boot_id: "b00t".into(),
            flavor: Flavor::Hollow,
            kubelet_port: 0,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + 250)
    }

    #[test]
    fn a_registration_says_what_a_kubelet_says() {
        let n = desc().object(at(1_795_945_447));
        assert_eq!(n["metadata"]["name"], "hollow-3");
        let labels = &n["metadata"]["labels"];
        assert_eq!(labels["pool"], "hollow");
        assert_eq!(labels["kubernetes.io/hostname"], "hollow-3");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], arch());
        assert_eq!(n["metadata"]["annotations"][HOLLOW_ANNOTATION], "true");
        assert_eq!(n["spec"]["podCIDR"], "10.244.3.0/24");
        let s = &n["status"];
        assert_eq!(
            s["capacity"],
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"})
        );
        assert_eq!(s["allocatable"], s["capacity"]);
        assert_eq!(
            s["addresses"],
            json!([{"type": "InternalIP", "address": "127.0.0.1"},
                   {"type": "Hostname", "address": "hollow-3"}])
        );
        assert_eq!(s["nodeInfo"]["containerRuntimeVersion"], HOLLOW_RUNTIME);
        assert_eq!(s["nodeInfo"]["operatingSystem"], "linux");
        let conditions = s["conditions"].as_array().unwrap();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-29T09:44:07Z");
        for ty in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            let c = conditions.iter().find(|c| c["type"] == ty).unwrap();
            assert_eq!(c["status"], "False", "{ty}");
        }
        // The ids are stable for a name, and differ between names.
        let again = desc().object(at(0));
        assert_eq!(
            again["status"]["nodeInfo"]["machineID"],
            s["nodeInfo"]["machineID"]
        );
        let mut other = desc();
        other.name = "hollow-4".into();
        assert_ne!(
            other.object(at(0))["status"]["nodeInfo"]["machineID"],
            s["nodeInfo"]["machineID"]
        );
    }

    #[test]
    fn a_reregistration_keeps_what_others_set_and_the_pod_range() {
        let existing = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "hollow-3", "resourceVersion": "9",
                         "labels": {"team": "a", "kubernetes.io/os": "windows"}},
            "spec": {"podCIDR": "10.99.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
        });
        let n = desc().reregistered(&existing);
        assert_eq!(n["metadata"]["resourceVersion"], "9");
        assert_eq!(n["metadata"]["labels"]["team"], "a");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(n["metadata"]["labels"]["pool"], "hollow");
        assert_eq!(n["spec"]["podCIDR"], "10.99.0.0/24", "a pod range stays");
        assert_eq!(n["spec"]["taints"], existing["spec"]["taints"]);
        assert_eq!(pod_cidr_of(&n).unwrap().to_string(), "10.99.0.0/24");
        let bare = desc().reregistered(&json!({"metadata": {"name": "hollow-3"}}));
        assert_eq!(bare["spec"]["podCIDR"], "10.244.3.0/24");
    }

    #[test]
    fn leases_are_held_by_the_node_with_microsecond_renewals() {
        let l = lease("hollow-3", Some("uid-1"), 40, at(1_795_945_447));
        assert_eq!(l["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(l["spec"]["holderIdentity"], "hollow-3");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["spec"]["renewTime"], "2026-11-29T09:44:07.000250Z");
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        let mut stored = l.clone();
        stored["metadata"]["resourceVersion"] = json!("12");
        let r = renewed(&stored, "hollow-3", 40, at(1_795_945_457));
        assert_eq!(r["metadata"]["resourceVersion"], "12");
        assert_eq!(r["spec"]["renewTime"], "2026-11-29T09:44:17.000250Z");
        let hb = desc().heartbeat("2026-11-29T09:00:00Z", at(1_795_945_507));
        let ready = hb["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-29T09:45:07Z");
        assert_eq!(ready["lastTransitionTime"], "2026-11-29T09:00:00Z");
    }
}
