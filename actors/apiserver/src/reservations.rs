//! What a Service reserves (its cluster IP and node ports) and how a write of it moves those
//! reservations: every create, update, patch and delete of a Service carries, in the same
//! store transaction, the creation of the keys it newly holds and the deletion of the keys it
//! gives up, so two Services never share an address and a deleted Service frees its own.
//!
//! Addresses a request leaves out are picked at random; a random pick that collides is the
//! server's problem (the write is retried with another pick), a collision on an address the
//! user asked for is the user's (422).

use std::collections::BTreeSet;

use navarch_store::ObjectKey;
use rand::Rng;
use serde_json::{json, Value};

/// Store kind of cluster-IP reservations (`serviceips/<ip>`).
pub const SERVICE_IPS: &str = "serviceips";
/// Store kind of node-port reservations (`servicenodeports/<port>`).
pub const NODE_PORTS: &str = "servicenodeports";

/// The keys a Service holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    pub keys: BTreeSet<ObjectKey>,
}

impl Reserved {
    /// The reservations of a stored (or about to be stored) Service.
    pub fn of(svc: &Value) -> Reserved {
        let mut keys = BTreeSet::new();
        if let Some(ip) = cluster_ip(svc) {
            keys.insert(ObjectKey::new(SERVICE_IPS, "", ip));
        }
        for p in node_ports(svc) {
            keys.insert(ObjectKey::new(NODE_PORTS, "", p.to_string()));
        }
        Reserved { keys }
    }
}

fn cluster_ip(svc: &Value) -> Option<&str> {
    svc["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["nodePort"].as_i64().filter(|n| *n != 0))
                .collect()
        })
        .unwrap_or_default()
}

fn takes_node_ports(svc: &Value) -> bool {
    matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort") | Some("LoadBalancer")
    )
}

/// Which addresses of a Service were picked by the server (so a collision is retried).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Picked {
    pub keys: BTreeSet<ObjectKey>,
}

/// Fills in the addresses `svc` leaves out: the current Service's (on an update) where it
/// had them, else random ones. Also drops node ports a Service no longer takes (a change
/// from NodePort to ClusterIP that kept them unchanged, as Kubernetes does).
pub fn allocate(svc: &mut Value, current: Option<&Value>) -> Picked {
    let mut picked = Picked::default();
    let spec_ip = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    if spec_ip.is_empty() {
        let ip = match current.and_then(cluster_ip) {
            Some(ip) => ip.to_string(),
            None => {
                let ip = random_cluster_ip();
                picked
                    .keys
                    .insert(ObjectKey::new(SERVICE_IPS, "", ip.as_str()));
                ip
            }
        };
        if svc["spec"].is_object() {
            svc["spec"]["clusterIP"] = json!(ip);
            svc["spec"]["clusterIPs"] = json!([ip]);
        }
    } else if spec_ip != "None"
        && svc["spec"]["clusterIPs"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    {
        svc["spec"]["clusterIPs"] = json!([spec_ip]);
    }
    let current_ports: Vec<(i64, i64)> = current
        .map(|c| {
            c["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| Some((p["port"].as_i64()?, p["nodePort"].as_i64()?)))
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    if takes_node_ports(svc) {
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            for p in ports {
                if p["nodePort"].as_i64().is_some_and(|n| n != 0) {
                    continue;
                }
                let port = p["port"].as_i64();
                let n = match current_ports.iter().find(|(pt, _)| Some(*pt) == port) {
                    Some((_, n)) if *n != 0 => *n,
                    _ => {
                        let n = rand::thread_rng().gen_range(30000..=32767);
                        picked
                            .keys
                            .insert(ObjectKey::new(NODE_PORTS, "", n.to_string()));
                        n
                    }
                };
                p["nodePort"] = json!(n);
            }
        }
    } else if let (Some(cur), Some(ports)) = (current, svc["spec"]["ports"].as_array_mut()) {
        // Leaving NodePort: node ports the request kept unchanged go with the type.
        if takes_node_ports(cur) {
            for p in ports {
                let port = p["port"].as_i64();
                let kept = current_ports
                    .iter()
                    .any(|(pt, n)| Some(*pt) == port && p["nodePort"].as_i64() == Some(*n));
                if kept {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("nodePort");
                    }
                }
            }
        }
    }
    picked
}

/// 10.96.0.0/12 without its network address and first address (`kubernetes.default`).
fn random_cluster_ip() -> String {
    let n: u32 = rand::thread_rng().gen_range(2..(1 << 20) - 1);
    let a = ((10 << 24) | (96 << 16)) + n;
    format!(
        "{}.{}.{}.{}",
        a >> 24,
        (a >> 16) & 255,
        (a >> 8) & 255,
        a & 255
    )
}

/// The keys a write from `old` to `new` creates and releases.
pub fn changes(old: &Reserved, new: &Reserved) -> (Vec<ObjectKey>, Vec<ObjectKey>) {
    let create = new.keys.difference(&old.keys).cloned().collect();
    let release = old.keys.difference(&new.keys).cloned().collect();
    (create, release)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ty: &str, ip: &str, ports: Value) -> Value {
        json!({"spec": {"type": ty, "clusterIP": ip, "ports": ports}})
    }

    #[test]
    fn a_create_gets_random_addresses_that_count_as_picked() {
        let mut s = svc("NodePort", "", json!([{"port": 80}]));
        let picked = allocate(&mut s, None);
        let r = Reserved::of(&s);
        assert_eq!(r.keys.len(), 2);
        assert_eq!(picked.keys, r.keys);
        assert_eq!(s["spec"]["clusterIPs"][0], s["spec"]["clusterIP"]);
        let n = s["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&n));
    }

    #[test]
    fn an_update_keeps_its_addresses_and_moves_reservations() {
        let old = svc(
            "NodePort",
            "10.96.0.9",
            json!([{"port": 80, "nodePort": 30080}]),
        );
        // An update that leaves the addresses out keeps them.
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let picked = allocate(&mut new, Some(&old));
        assert!(picked.keys.is_empty());
        assert_eq!(Reserved::of(&new), Reserved::of(&old));
        // Another node port moves the reservation.
        let mut moved = svc(
            "NodePort",
            "10.96.0.9",
            json!([{"port": 80, "nodePort": 30081}]),
        );
        allocate(&mut moved, Some(&old));
        let (create, release) = changes(&Reserved::of(&old), &Reserved::of(&moved));
        assert_eq!(create, vec![ObjectKey::new(NODE_PORTS, "", "30081")]);
        assert_eq!(release, vec![ObjectKey::new(NODE_PORTS, "", "30080")]);
        // Back to ClusterIP: the unchanged node port goes with the type.
        let mut cip = svc(
            "ClusterIP",
            "10.96.0.9",
            json!([{"port": 80, "nodePort": 30080}]),
        );
        allocate(&mut cip, Some(&old));
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        let (create, release) = changes(&Reserved::of(&old), &Reserved::of(&cip));
        assert!(create.is_empty());
        assert_eq!(release, vec![ObjectKey::new(NODE_PORTS, "", "30080")]);
        // From ClusterIP to NodePort: a new port is picked.
        let mut np = svc("NodePort", "10.96.0.9", json!([{"port": 80}]));
        let picked = allocate(&mut np, Some(&cip));
        assert_eq!(picked.keys.len(), 1);
    }

    #[test]
    fn headless_services_reserve_no_ip() {
        let mut s = svc("ClusterIP", "None", json!([{"port": 80}]));
        allocate(&mut s, None);
        assert!(Reserved::of(&s).keys.is_empty());
    }
}
