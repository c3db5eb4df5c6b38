//! The pod network of a node: every pod gets a network namespace of its own and an address
//! of the node's pod range (`spec.podCIDR`), through the standard CNI plugins (Debian's
//! `containernetworking-plugins` in `/usr/lib/cni`: `bridge`, `host-local`, `loopback`),
//! executed with the CNI protocol, not re-implemented.
//!
//! - [`netns`]: the pod's named network namespace (`/run/netns/<name>`, as `ip netns`), and
//!   [`netns::run_in`] to run code inside one from a thread of its own;
//! - [`cni`]: the node's network configuration and the CNI calls (ADD, DEL, CHECK, VERSION);
//! - [`host`]: what is changed on the host (forwarding, the unreachable routes);
//! - [`hosts`]: the pod's `/etc/hosts`, as the kubelet writes it (pure).
//!
//! # Design
//!
//! **One bridge per node.** Each node's pods hang off a Linux bridge of its own (named
//! from the node's name, `nv` and a hash, or set), which holds the range's first address as
//! the pods' gateway (`isGateway`). Several node agents on one machine (a development
//! cluster, the tests) thus each have their own L2 segment and range, and a pod of one node
//! reaches a pod of another the way it would across machines: through its gateway and the
//! host's routing table, where each bridge's range is a connected route. That crossing is
//! what needs `net.ipv4.ip_forward` ([`host::prepare`] turns it on if it is off; the bridge
//! plugin with `isGateway` does as well). An iptables `FORWARD` policy of `DROP` (Docker
//! sets one) would stop it; navarch does not change iptables.
//!
//! **No default route, nothing leaves the machine.** A pod gets exactly one route besides
//! its own subnet: the cluster CIDR (and the extra ranges configured, the service range),
//! via its gateway. It has no default route, so a packet to any other address fails in the
//! pod with "network unreachable" before it is sent, and the bridge plugin runs with
//! `ipMasq: false`, so nothing is ever NATed to the host's address. On the host,
//! [`host::prepare`] puts an `unreachable` route on each routed range: a packet to an
//! address of the cluster CIDR that no local bridge holds would otherwise follow the host's
//! default route off the machine; with it, it is dropped here and its sender gets "no route
//! to host" at once (an ICMP error from its gateway, subject to the kernel's per-destination
//! ICMP rate limit; a `blackhole` route would drop it just the same, but silently, leaving
//! every connection to time out). Until the nodes of several machines route to one another (not done yet), the
//! pod network is local to one machine.
//!
//! **What changes on the host**, all of it local to the machine: a bridge per node and a
//! veth per pod (the bridge plugin's); `net.ipv4.ip_forward` on; an `unreachable` route for
//! each range given to [`host::prepare`] (the agent passes [`NodeNetwork::routed`]: the
//! cluster CIDR and the service range, whose packets would otherwise also follow the
//! default route); `/run/netns` made a shared mount, as `ip netns` makes it. No iptables
//! rule, no NAT, no default route anywhere.
//!
//! **Addresses.** `host-local` hands them out and keeps them in the node's own state
//! directory, `<state>/ipam/navarch/` (`dataDir`, so that two node agents on one machine
//! never share leases): one file per address in use, named by the address and holding the
//! container id (the pod uid) and interface, `last_reserved_ip.0` (where the next search
//! starts) and a `lock` file. DEL removes the address's file, so a later ADD may reuse it.
//! The result of each pod's ADD is kept in `<state>/results/` for its DEL and CHECK, as the
//! CNI spec asks of runtimes. The bridge stays when its last pod goes (the bridge plugin
//! never removes it): [`host::remove_bridge`] does, for a node taken down for good.

pub mod cni;
pub mod host;
pub mod hosts;
pub mod netns;

pub use cni::{Cni, CniError, NodeNetwork, PodNetwork};
pub use netns::{NetnsDir, NetnsError};
