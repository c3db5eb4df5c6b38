//! The openraft type configuration: what goes through the log, what comes back, who members are.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::types::{Txn, TxnOutcome};

/// A Raft member id: its position (from 1) in the initial member list.
pub type MemberId = u64;

/// A member as Raft knows it: its name (the certificate CN it presents) and QUIC peer address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub addr: String,
}

/// What one Raft log entry carries: the write transactions the leader batched together.
/// Each applies on its own (all or nothing) and gets its own revision, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub txns: Vec<Txn>,
}

/// The result of applying one log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// A blank or membership entry: nothing for a client.
    Nothing,
    /// One outcome per transaction of the proposal, in order.
    Txns(Vec<TxnOutcome>),
}

openraft::declare_raft_types!(
    /// navarch's Raft: batches of transactions in, outcomes out, members addressed over QUIC.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = MemberId,
        Node = Member,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<MemberId>;
pub type Vote = openraft::Vote<MemberId>;
pub type StoredMembership = openraft::StoredMembership<MemberId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<MemberId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<MemberId>;
