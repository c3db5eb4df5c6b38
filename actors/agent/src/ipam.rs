//! Pod addresses: a node's pod range (`spec.podCIDR`), carved from the range a process's
//! nodes share, and the addresses of the pods on one node, each unique on it.
//!
//! Properties kept:
//! - node `k` of a range gets its `k`-th subnet, so nodes of one process never overlap;
//! - a pod keeps its address while it is on the node (asked again, it gets the same one),
//!   and no two pods of a node hold one address at once;
//! - the subnet's first address (the network) and second (the gateway's, by convention)
//!   and its last (broadcast) are never handed out.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::AgentError;

/// An IPv4 range, `10.244.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Cidr, AgentError> {
        let bad = |reason: String| AgentError::Config {
            what: "pod range".into(),
            reason,
        };
        let (ip, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| bad(format!("{s:?} is not address/prefix")))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| bad(format!("{ip:?} is not an IPv4 address")))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 30)
            .ok_or_else(|| bad(format!("prefix {prefix:?} is not 0 to 30")))?;
        let base = u32::from(ip);
        if base & !mask(prefix) != 0 {
            return Err(bad(format!("{s} has host bits set")));
        }
        Ok(Cidr { base, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

impl Cidr {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses the range spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }

    /// The range's first address (its network address).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// Whether `other` lies wholly inside this range.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// The `index`-th subnet of prefix `sub_prefix` (node `index`'s pod range).
    pub fn subnet(&self, index: usize, sub_prefix: u8) -> Result<Cidr, AgentError> {
        let bad = |reason: String| AgentError::Config {
            what: "pod range".into(),
            reason,
        };
        if sub_prefix < self.prefix || sub_prefix > 30 {
            return Err(bad(format!(
                "a /{sub_prefix} per node does not fit in {self}"
            )));
        }
        let count = 1u64 << (sub_prefix - self.prefix);
        let i = u64::try_from(index).unwrap_or(u64::MAX);
        if i >= count {
            return Err(bad(format!(
                "{self} holds {count} node ranges of /{sub_prefix}; node {index} needs a larger one"
            )));
        }
        let step = 1u64 << (32 - u32::from(sub_prefix));
        let base = u64::from(self.base) + i * step;
        Ok(Cidr {
            base: u32::try_from(base).map_err(|_| bad("past the end of IPv4".into()))?,
            prefix: sub_prefix,
        })
    }
}

/// The addresses handed to the pods of one node, by pod uid.
#[derive(Debug)]
pub struct PodIps {
    range: Cidr,
    by_pod: HashMap<String, u32>,
    used: BTreeSet<u32>,
    /// Where the next search starts, so a released address is not handed out at once.
    next: u32,
}

impl PodIps {
    pub fn new(range: Cidr) -> PodIps {
        PodIps {
            range,
            by_pod: HashMap::new(),
            used: BTreeSet::new(),
            next: 2,
        }
    }

    pub fn range(&self) -> Cidr {
        self.range
    }

    /// Offsets that may be handed out: after the network and gateway, before broadcast.
    fn usable(&self) -> std::ops::Range<u32> {
        let size = u32::try_from(self.range.size()).unwrap_or(u32::MAX);
        2..size.saturating_sub(1)
    }

    /// The address of the pod `uid`: the one it holds, or a free one; `None` when the range
    /// is full.
    pub fn assign(&mut self, uid: &str) -> Option<Ipv4Addr> {
        if let Some(off) = self.by_pod.get(uid) {
            return Some(Ipv4Addr::from(self.range.base + off));
        }
        let usable = self.usable();
        let span = usable.end.saturating_sub(usable.start);
        for i in 0..span {
            let off = usable.start + (self.next - usable.start + i) % span;
            if self.used.insert(off) {
                self.by_pod.insert(uid.to_string(), off);
                self.next = if off + 1 >= usable.end {
                    usable.start
                } else {
                    off + 1
                };
                return Some(Ipv4Addr::from(self.range.base + off));
            }
        }
        None
    }

    /// Records that the pod `uid` holds `ip` (read back from its status after a restart).
    /// Refused (false) when `ip` is outside the range or another pod holds it.
    pub fn restore(&mut self, uid: &str, ip: Ipv4Addr) -> bool {
        if !self.range.contains(ip) {
            return false;
        }
        let off = u32::from(ip) - self.range.base;
        if !self.usable().contains(&off) {
            return false;
        }
        if let Some(held) = self.by_pod.get(uid) {
            return *held == off;
        }
        if !self.used.insert(off) {
            return false;
        }
        self.by_pod.insert(uid.to_string(), off);
        true
    }

    /// The pod `uid` is gone: its address is free again.
    pub fn release(&mut self, uid: &str) {
        if let Some(off) = self.by_pod.remove(uid) {
            self.used.remove(&off);
        }
    }

    /// The uids holding an address.
    pub fn holders(&self) -> Vec<String> {
        self.by_pod.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_pod.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pod.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_split_per_node() {
        let r: Cidr = "10.244.0.0/14".parse().unwrap();
        assert_eq!(r.to_string(), "10.244.0.0/14");
        assert_eq!(r.subnet(0, 24).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(r.subnet(1, 24).unwrap().to_string(), "10.244.1.0/24");
        assert_eq!(r.subnet(999, 24).unwrap().to_string(), "10.247.231.0/24");
        assert!(r.subnet(1024, 24).is_err(), "a /14 holds 1024 /24s");
        assert!(r.subnet(0, 13).is_err());
        for bad in [
            "10.244.0.1/16",
            "10.244.0.0",
            "10.244.0.0/31",
            "::1/64",
            "x/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(r.contains("10.247.255.255".parse().unwrap()));
        assert!(!r.contains("10.248.0.0".parse().unwrap()));
    }

    #[test]
    fn pods_get_unique_addresses_and_keep_them() {
        let mut ips = PodIps::new("10.244.3.0/29".parse().unwrap());
        // A /29: .0 network, .1 gateway, .7 broadcast; .2 to .6 for pods.
        let a = ips.assign("a").unwrap();
        assert_eq!(a.to_string(), "10.244.3.2");
        assert_eq!(ips.assign("a"), Some(a), "the same pod keeps its address");
        let got: Vec<String> = ["b", "c", "d", "e"]
            .iter()
            .map(|p| ips.assign(p).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            ["10.244.3.3", "10.244.3.4", "10.244.3.5", "10.244.3.6"]
        );
        assert_eq!(ips.assign("f"), None, "full");
        ips.release("c");
        assert_eq!(ips.assign("f").unwrap().to_string(), "10.244.3.4");
        assert_eq!(ips.len(), 5);
    }

    #[test]
    fn addresses_read_back_after_a_restart_are_not_handed_out_again() {
        let mut ips = PodIps::new("10.244.0.0/24".parse().unwrap());
        assert!(ips.restore("old", "10.244.0.2".parse().unwrap()));
        assert!(ips.restore("old", "10.244.0.2".parse().unwrap()));
        assert!(!ips.restore("other", "10.244.0.2".parse().unwrap()), "held");
        assert!(!ips.restore("x", "10.244.1.2".parse().unwrap()), "outside");
        assert!(
            !ips.restore("x", "10.244.0.1".parse().unwrap()),
            "the gateway's"
        );
        assert_eq!(ips.assign("new").unwrap().to_string(), "10.244.0.3");
        let mut holders = ips.holders();
        holders.sort();
        assert_eq!(holders, ["new", "old"]);
    }
}
