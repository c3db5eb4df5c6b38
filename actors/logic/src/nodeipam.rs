//! Node IPAM (Kubernetes' `nodeipam` controller with its range allocator): every Node gets
//! a pod range (`spec.podCIDR`) carved from the cluster's (`--cluster-cidr`, k3s's default
//! 10.42.0.0/16) in subnets of `--node-cidr-mask-size` (24): the lowest free subnet, in the
//! order the nodes were created. A range a Node already has is kept and counts as taken,
//! whoever set it; ranges outside the cluster's are left alone and take nothing.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::Value;

/// An IPv4 range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    base: u32,
    prefix: u8,
}

impl Range {
    /// `10.42.0.0/16`; the address is masked to its prefix.
    pub fn parse(s: &str) -> Result<Range, String> {
        let (ip, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not address/prefix"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length of 0 to 32"))?;
        Ok(Range {
            base: u32::from(ip) & mask(prefix),
            prefix,
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn contains(&self, other: &Range) -> bool {
        other.prefix >= self.prefix && other.base & mask(self.prefix) == self.base
    }

    /// The `k`th subnet of prefix `sub`.
    fn subnet(&self, sub: u8, k: u32) -> Range {
        Range {
            base: self.base | (k << (32 - u32::from(sub))),
            prefix: sub,
        }
    }

    /// The index of `r` among this range's subnets of prefix `r.prefix`.
    fn index_of(&self, r: &Range) -> u32 {
        (r.base - self.base) >> (32 - u32::from(r.prefix))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// How the cluster's range is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocator {
    pub cluster: Range,
    /// Each node's prefix length.
    pub node_mask: u8,
}

impl Allocator {
    pub fn new(cluster: Range, node_mask: u8) -> Result<Allocator, String> {
        if node_mask < cluster.prefix || node_mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {node_mask} must be between the cluster range's prefix {} and 30",
                cluster.prefix
            ));
        }
        if node_mask - cluster.prefix > 20 {
            return Err(format!(
                "{} split into /{node_mask} subnets makes more than 2^20 node ranges",
                cluster
            ));
        }
        Ok(Allocator { cluster, node_mask })
    }

    fn subnets(&self) -> u32 {
        1u32 << (self.node_mask - self.cluster.prefix)
    }
}

/// A range to give a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assign {
    pub node: String,
    pub cidr: String,
}

/// What the pass decided: ranges to give, and nodes left without one (the range is full).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub assign: Vec<Assign>,
    pub exhausted: Vec<String>,
}

fn pod_cidr(node: &Value) -> Option<&str> {
    node["spec"]["podCIDR"].as_str().filter(|s| !s.is_empty())
}

/// Gives every node without a pod range the lowest free subnet, oldest nodes first.
pub fn plan<N: std::borrow::Borrow<Value>>(nodes: &[N], a: &Allocator) -> Plan {
    let mut taken = BTreeSet::new();
    for n in nodes {
        if let Some(r) = pod_cidr(n.borrow()).and_then(|s| Range::parse(s).ok()) {
            if a.cluster.contains(&r) {
                // A range of another size covers the subnets it overlaps.
                let first = Range {
                    base: r.base & mask(a.node_mask.min(r.prefix)),
                    prefix: a.node_mask,
                };
                let span = if r.prefix < a.node_mask {
                    1u32 << (a.node_mask - r.prefix)
                } else {
                    1
                };
                let i = a.cluster.index_of(&first);
                taken.extend(i..i + span);
            }
        }
    }
    let mut waiting: Vec<&Value> = nodes
        .iter()
        .map(|n| n.borrow())
        .filter(|n| pod_cidr(n).is_none() && n["metadata"]["deletionTimestamp"].is_null())
        .collect();
    waiting.sort_by(|x, y| {
        let key = |n: &Value| {
            (
                n["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                n["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        };
        key(x).cmp(&key(y))
    });
    let mut out = Plan::default();
    let mut next = 0u32;
    for n in waiting {
        let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
        while next < a.subnets() && taken.contains(&next) {
            next += 1;
        }
        if next >= a.subnets() {
            out.exhausted.push(name);
            continue;
        }
        taken.insert(next);
        out.assign.push(Assign {
            node: name,
            cidr: a.cluster.subnet(a.node_mask, next).to_string(),
        });
    }
    out
}

/// The merge patch that gives a node its range.
pub fn patch(cidr: &str) -> Value {
    serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, created: &str, cidr: Option<&str>) -> Value {
        let mut n = json!({"metadata": {"name": name, "creationTimestamp": created}, "spec": {}});
        if let Some(c) = cidr {
            n["spec"]["podCIDR"] = json!(c);
        }
        n
    }

    fn alloc(cidr: &str, mask: u8) -> Allocator {
        Allocator::new(Range::parse(cidr).unwrap(), mask).unwrap()
    }

    #[test]
    fn nodes_get_the_lowest_free_subnets_oldest_first_and_keep_theirs() {
        let a = alloc("10.42.0.0/16", 24);
        let nodes = vec![
            node("b", "2026-12-01T00:00:02Z", None),
            node("a", "2026-12-01T00:00:01Z", Some("10.42.0.0/24")),
            node("c", "2026-12-01T00:00:01Z", None),
            node("far", "2026-12-01T00:00:00Z", Some("10.244.0.0/24")),
            node("d", "2026-12-01T00:00:03Z", Some("10.42.2.0/24")),
        ];
        let p = plan(&nodes, &a);
        assert_eq!(
            p.assign,
            vec![
                Assign {
                    node: "c".into(),
                    cidr: "10.42.1.0/24".into()
                },
                Assign {
                    node: "b".into(),
                    cidr: "10.42.3.0/24".into()
                },
            ]
        );
        assert!(p.exhausted.is_empty());
    }

    #[test]
    fn a_full_range_leaves_nodes_waiting() {
        let a = alloc("10.42.0.0/23", 24);
        let nodes = vec![
            node("a", "1", None),
            node("b", "2", None),
            node("c", "3", None),
        ];
        let p = plan(&nodes, &a);
        assert_eq!(p.assign.len(), 2);
        assert_eq!(p.exhausted, vec!["c".to_string()]);
        // A bigger range taken covers every subnet under it.
        let p = plan(
            &[node("big", "1", Some("10.42.0.0/23")), node("x", "2", None)],
            &a,
        );
        assert_eq!(p.exhausted, vec!["x".to_string()]);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(Range::parse("10.42.0.0").is_err());
        assert!(Range::parse("10.42.0.0/33").is_err());
        assert!(Range::parse("x/16").is_err());
        assert!(Allocator::new(Range::parse("10.42.0.0/16").unwrap(), 8).is_err());
        assert!(Allocator::new(Range::parse("10.0.0.0/8").unwrap(), 30).is_err());
        assert_eq!(
            Range::parse("10.42.7.9/16").unwrap().to_string(),
            "10.42.0.0/16"
        );
    }
}
