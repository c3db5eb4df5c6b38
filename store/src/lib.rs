//! navarch's cluster store: a Raft-replicated (openraft) key-value store of objects, with its
//! log and state in RocksDB, Raft traffic over QUIC with mutual TLS, watches from the apply
//! path, snapshots, and backup and restore.
//!
//! Start reading at [`Member`]: one store member, as the master binary runs it: the binary
//! binds a `navarch_net::Endpoint` with a `Router`, starts the member with the endpoint and
//! [`mount`]s the member's services on the router. Its data model is in [`types`]; the pure
//! transaction logic in [`apply`]; the RocksDB side in `log_store`, `state_machine` and `read`;
//! watches in [`watch`]; membership changes in `membership`; the wire in `network` (Raft, both sides), `service` (`store.*`) and
//! `client` ([`StoreClient`]).

// openraft's storage traits fix `StorageError` (over 200 bytes) as the error of everything
// that touches RocksDB; boxing it would only convert back and forth at the trait boundary.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod backup;
mod client;
pub mod election;
mod log_store;
mod member;
mod membership;
mod metrics;
mod network;
mod proposer;
pub mod raft_types;
mod read;
mod rocks;
mod service;
mod state_machine;
pub mod types;
pub mod watch;

use serde::{Deserialize, Serialize};

pub use client::{methods, watch_resuming, StoreClient};
pub use member::{InitialState, Leadership, Member, MemberConfig, Role, StoreStatus};
pub use membership::{MemberInfo, MemberList, MemberRequest, CAUGHT_UP_LAG};
pub use network::RaftService;
pub use service::{mount, StoreService, ORG_ADMINS, ORG_MEMBERS, RAFT_PREFIX, STORE_PREFIX};
pub use state_machine::HistoryLimits;
pub use types::*;

/// Why a store operation failed. A refused transaction is not an error: see [`TxnOutcome`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StoreError {
    #[error("invalid request: {0}")]
    InvalidKey(String),
    /// The requested revision is older than the retained history (the API's 410 Gone).
    #[error("revision {requested} is compacted (oldest retained is after {compacted})")]
    Expired {
        requested: Revision,
        compacted: Revision,
    },
    /// No leader could be reached in time; nothing was written. Retrying can help.
    #[error("no leader available: {0}")]
    Unavailable(String),
    /// A write was sent but its outcome is unknown (it may still commit). Read before retrying.
    #[error("timed out after {0:?}; the outcome is unknown")]
    Timeout(std::time::Duration),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("network failure: {0}")]
    Network(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("the member is shutting down")]
    ShuttingDown,
    /// A membership change was refused (it would lose quorum, the learner is behind, the
    /// name is taken, ...); nothing was changed.
    #[error("membership change refused: {0}")]
    Membership(String),
}
