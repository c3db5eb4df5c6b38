//! The service proxy of a node (kube-proxy's job, in its original userspace shape): every
//! Service port with a cluster IP is served on this node, TCP and UDP, from its cluster IPs
//! (reachable from the node itself and from its pods) and from its node port on the
//! node-port addresses, round-robin over its ready endpoints.
//!
//! Where to start reading:
//! - [`table`]: what a Service and its EndpointSlices mean for the proxy (pure), and which
//!   endpoints take new connections ([`table::ServicePort::targets`]: readiness, the
//!   terminating fallback, the Local traffic policies);
//! - [`balance`]: which endpoint a connection goes to (pure): round-robin, ClientIP
//!   session affinity with its timeout;
//! - [`forward`]: the sockets and the copying, and when a socket exists at all;
//! - [`copy`]: splice(2) or a userspace copy;
//! - [`actor`]: the ServicePort actors and the feed from the caches.
//!
//! Architecture invariants:
//! - Cluster IPs are addresses of the node's service interface (a port-less bridge,
//!   `nvs<hash>`), so they are local: no packet to one is ever routed, and the rest of the
//!   service range is an unreachable route (`network::host`), so nothing to it leaves the
//!   machine, proxy up or down.
//! - A socket exists only while its ingress has a target: no ready endpoint, no socket, and
//!   the kernel refuses at once.
//! - The proxy opens its own connection to the endpoint: the endpoint sees the node (its
//!   bridge address) as the client, not the client's address (as kube-proxy's userspace
//!   mode did).

pub mod actor;
pub mod balance;
pub mod copy;
pub mod forward;
pub mod table;

pub use actor::Proxy;
pub use copy::CopyMode;
pub use forward::{Dataplane, DataplaneConfig, ProxyError};

/// The service interface of node `node`: `nvs` and the hash its pod bridge is named with
/// (11 characters, within Linux's 15).
pub fn service_iface_name(node: &str) -> String {
    let bridge = crate::network::cni::bridge_name(node);
    format!("nvs{}", &bridge[2..])
}
