//! navarch's node agent, as a library: what a node says and does over its link to the
//! masters. Today that is the hollow node (Kubernetes' kubemark idea): a node that joins,
//! registers, renews its lease, refreshes its status and reports the pods bound to it
//! running, without running anything, so that one machine can stand in for a thousand
//! nodes in front of the control plane. The real agent (containers, a runtime) comes next
//! and shares these parts.
//!
//! Where to start reading:
//! - [`fleet`]: [`Fleet`], the nodes of one process, their credentials and shared socket;
//! - [`hollow`]: [`HollowNode`], one node's loops (registration, lease, status, pods);
//! - the pure decisions they carry out: [`node`] (the Node, its heartbeat, the Lease),
//!   [`pods`] (what to do with a pod, the status to report), [`ipam`] (pod ranges and
//!   addresses), [`config`] (resources, labels, timing);
//! - [`credentials`]: stored certificates and the join, polite to rate limits;
//! - [`network`]: the pod network: network namespaces, the CNI plugins, the host's routes,
//!   the pod's `/etc/hosts`.
//!
//! Architecture invariant: the agent reaches the cluster only through a
//! [`navarch_client::Client`] (the node link's [`navarch_client::LinkClient`] in the
//! binary), so every one of its writes is authorized and admitted as its node's.

pub mod config;
pub mod credentials;
pub mod dns;
pub mod fleet;
pub mod hollow;
pub mod ipam;
pub mod kubelet;
pub mod machine;
pub mod network;
pub mod node;
pub mod node_agent;
pub mod pods;
pub mod proxy;
pub mod streams;

use std::path::PathBuf;

pub use config::Timing;
pub use fleet::{Fleet, FleetConfig, Started};
pub use hollow::HollowNode;

/// Why the agent could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A flag's value is not usable.
    #[error("{what}: {reason}")]
    Config { what: String, reason: String },
    /// The join failed for good (a refused token, a CA other than the pinned one, ...).
    #[error("join as {node}: {source}")]
    Join {
        node: String,
        #[source]
        source: navarch_net::JoinError,
    },
    /// The credentials could not be kept in their directory.
    #[error("credentials in {dir}: {reason}")]
    Credentials { dir: PathBuf, reason: String },
    #[error(transparent)]
    Net(#[from] navarch_net::NetError),
    #[error(transparent)]
    Link(#[from] navarch_client::link::LinkError),
    /// The agent was stopped before it was done.
    #[error("stopped")]
    Stopped,
}
