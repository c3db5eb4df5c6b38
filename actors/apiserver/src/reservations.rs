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
pub fn allocate(svc: &mut Value, current: Option<&Value>, range: &ServiceRange) -> Picked {
    let mut picked = Picked::default();
    let spec_ip = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    if spec_ip.is_empty() {
        let ip = match current.and_then(cluster_ip) {
            Some(ip) => ip.to_string(),
            None => {
                let ip = range.random();
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

/// The range cluster IPs come from (`--service-cluster-ip-range`, k3s's 10.43.0.0/16 by
/// default): its network address is never given out, nor its first address (the
/// `kubernetes` Service's in Kubernetes), nor its broadcast address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRange {
    base: u32,
    prefix: u8,
}

impl Default for ServiceRange {
    fn default() -> Self {
        ServiceRange {
            base: u32::from(std::net::Ipv4Addr::new(10, 43, 0, 0)),
            prefix: 16,
        }
    }
}

impl std::str::FromStr for ServiceRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want a.b.c.d/n)"))?;
        let ip: std::net::Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=28).contains(p))
            .ok_or_else(|| format!("{s:?}: the prefix length must be between 8 and 28"))?;
        let base = u32::from(ip);
        if base & !mask(prefix) != 0 {
            return Err(format!("{s:?} has host bits set"));
        }
        Ok(ServiceRange { base, prefix })
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl std::fmt::Display for ServiceRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.base), self.prefix)
    }
}

impl ServiceRange {
    /// Whether `ip` is an address of the range a Service may have.
    pub fn contains(&self, ip: &str) -> bool {
        let Ok(ip) = ip.parse::<std::net::Ipv4Addr>() else {
            return false;
        };
        let n = u32::from(ip);
        let size = 1u32 << (32 - self.prefix);
        n & mask(self.prefix) == self.base && (1..size - 1).contains(&(n - self.base))
    }

    /// The range's first address (the `kubernetes` Service's).
    pub fn first(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(self.base + 1)
    }

    /// The cluster DNS's address (the tenth, k3s's 10.43.0.10), which the nodes serve
    /// themselves: never a Service's.
    pub fn dns(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(self.base + 10)
    }

    /// A random address of the range past its first, never the cluster DNS's.
    fn random(&self) -> String {
        let size = 1u32 << (32 - self.prefix);
        loop {
            let n: u32 = rand::thread_rng().gen_range(2..size - 1);
            if n != 10 {
                return std::net::Ipv4Addr::from(self.base + n).to_string();
            }
        }
    }
}

/// A cluster IP a request asked for that is outside the range: the 422 Kubernetes gives.
pub fn check_cluster_ip(svc: &Value, range: &ServiceRange) -> Result<(), (String, String)> {
    match cluster_ip(svc) {
        Some(ip) if !range.contains(ip) => Err((
            ip.to_string(),
            format!("failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {range}"),
        )),
        Some(ip) if ip == range.dns().to_string() => Err((
            ip.to_string(),
            format!("failed to allocate IP {ip}: it is the cluster DNS's address, which every node serves itself"),
        )),
        _ => Ok(()),
    }
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
        let picked = allocate(&mut s, None, &ServiceRange::default());
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
            "10.43.0.9",
            json!([{"port": 80, "nodePort": 30080}]),
        );
        // An update that leaves the addresses out keeps them.
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let picked = allocate(&mut new, Some(&old), &ServiceRange::default());
        assert!(picked.keys.is_empty());
        assert_eq!(Reserved::of(&new), Reserved::of(&old));
        // Another node port moves the reservation.
        let mut moved = svc(
            "NodePort",
            "10.43.0.9",
            json!([{"port": 80, "nodePort": 30081}]),
        );
        allocate(&mut moved, Some(&old), &ServiceRange::default());
        let (create, release) = changes(&Reserved::of(&old), &Reserved::of(&moved));
        assert_eq!(create, vec![ObjectKey::new(NODE_PORTS, "", "30081")]);
        assert_eq!(release, vec![ObjectKey::new(NODE_PORTS, "", "30080")]);
        // Back to ClusterIP: the unchanged node port goes with the type.
        let mut cip = svc(
            "ClusterIP",
            "10.43.0.9",
            json!([{"port": 80, "nodePort": 30080}]),
        );
        allocate(&mut cip, Some(&old), &ServiceRange::default());
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        let (create, release) = changes(&Reserved::of(&old), &Reserved::of(&cip));
        assert!(create.is_empty());
        assert_eq!(release, vec![ObjectKey::new(NODE_PORTS, "", "30080")]);
        // From ClusterIP to NodePort: a new port is picked.
        let mut np = svc("NodePort", "10.43.0.9", json!([{"port": 80}]));
        let picked = allocate(&mut np, Some(&cip), &ServiceRange::default());
        assert_eq!(picked.keys.len(), 1);
    }

    #[test]
    fn cluster_ips_come_from_the_range() {
        let range: ServiceRange = "10.43.16.0/24".parse().unwrap();
        for _ in 0..200 {
            let mut s = svc("ClusterIP", "", json!([{"port": 80}]));
            allocate(&mut s, None, &range);
            let ip = s["spec"]["clusterIP"].as_str().unwrap();
            assert!(range.contains(ip), "{ip}");
            assert_ne!(
                ip, "10.43.16.1",
                "the first address is the kubernetes Service's"
            );
        }
        assert!(!range.contains("10.43.16.0") && !range.contains("10.43.16.255"));
        assert!(!range.contains("10.43.17.5") && !range.contains("nope"));
        assert!(check_cluster_ip(&svc("ClusterIP", "10.96.0.1", json!([])), &range).is_err());
        assert!(check_cluster_ip(&svc("ClusterIP", "None", json!([])), &range).is_ok());
        assert!(check_cluster_ip(&svc("ClusterIP", "10.43.16.7", json!([])), &range).is_ok());
        assert!(check_cluster_ip(&svc("ClusterIP", "10.43.16.10", json!([])), &range).is_err());
        for bad in ["10.43.0.0", "10.43.0.1/16", "10.43.0.0/4", "x/16"] {
            assert!(bad.parse::<ServiceRange>().is_err(), "{bad}");
        }
        assert_eq!(ServiceRange::default().to_string(), "10.43.0.0/16");
    }

    #[test]
    fn headless_services_reserve_no_ip() {
        let mut s = svc("ClusterIP", "None", json!([{"port": 80}]));
        allocate(&mut s, None, &ServiceRange::default());
        assert!(Reserved::of(&s).keys.is_empty());
    }
}
