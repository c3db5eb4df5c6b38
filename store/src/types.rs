//! The store's data model: keys, revisions, stored records, transactions, results and events.
//!
//! Everything here travels on the wire (bincode through `navarch_net::codec`) and through the
//! Raft log, so it only uses plain structs and externally tagged enums.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The cluster-wide revision: rises by one with every committed write transaction.
///
/// It becomes Kubernetes' `resourceVersion`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An object's address: (kind, namespace, name). Cluster-scoped objects use an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Checks that the key can be encoded: kind and name present, no NUL byte anywhere.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.kind.is_empty() || self.name.is_empty() {
            return Err(StoreError::InvalidKey(format!(
                "{self}: kind and name must not be empty"
            )));
        }
        if [&self.kind, &self.namespace, &self.name]
            .iter()
            .any(|s| s.contains('\0'))
        {
            return Err(StoreError::InvalidKey(format!("{self:?}: NUL byte in key")));
        }
        Ok(())
    }

    /// The RocksDB key: `kind \0 namespace \0 name`, so that prefixes select a kind or a namespace.
    pub fn encode(&self) -> Vec<u8> {
        let mut k =
            Vec::with_capacity(self.kind.len() + self.namespace.len() + self.name.len() + 2);
        k.extend_from_slice(self.kind.as_bytes());
        k.push(0);
        k.extend_from_slice(self.namespace.as_bytes());
        k.push(0);
        k.extend_from_slice(self.name.as_bytes());
        k
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        let mut parts = raw.splitn(3, |b| *b == 0);
        let kind = std::str::from_utf8(parts.next()?).ok()?;
        let namespace = std::str::from_utf8(parts.next()?).ok()?;
        let name = std::str::from_utf8(parts.next()?).ok()?;
        Some(Self::new(kind, namespace, name))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Which objects a list or a watch covers: one kind, optionally one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub kind: String,
    /// `None`: every namespace.
    pub namespace: Option<String>,
}

impl KeyRange {
    pub fn kind(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            namespace: None,
        }
    }

    pub fn namespaced(kind: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            namespace: Some(namespace.into()),
        }
    }

    pub fn prefix(&self) -> Vec<u8> {
        let mut p = self.kind.as_bytes().to_vec();
        p.push(0);
        if let Some(ns) = &self.namespace {
            p.extend_from_slice(ns.as_bytes());
            p.push(0);
        }
        p
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.kind == self.kind
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}

/// What RocksDB keeps for one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// An object as read back: its key, value and revisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub key: ObjectKey,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: Revision,
    /// The revision of the object's last change: its resourceVersion.
    pub mod_revision: Revision,
}

/// One operation of a transaction. All operations of a transaction apply atomically, or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Fails with `AlreadyExists` if the key is present.
    Create {
        key: ObjectKey,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Fails with `NotFound` if absent, `Conflict` if `expected` is set and stale.
    Update {
        key: ObjectKey,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        expected: Option<Revision>,
    },
    /// Creates or replaces, unconditionally.
    Put {
        key: ObjectKey,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Fails with `NotFound` if absent, `Conflict` if `expected` is set and stale.
    Delete {
        key: ObjectKey,
        expected: Option<Revision>,
    },
    /// A precondition only: the object's mod revision must be `expected` (`None`: absent).
    Check {
        key: ObjectKey,
        expected: Option<Revision>,
    },
}

impl Op {
    pub fn key(&self) -> &ObjectKey {
        match self {
            Op::Create { key, .. }
            | Op::Update { key, .. }
            | Op::Put { key, .. }
            | Op::Delete { key, .. }
            | Op::Check { key, .. } => key,
        }
    }
}

/// A write transaction: the unit that goes through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub ops: Vec<Op>,
    /// Milliseconds since the epoch, set by the proposer; kept with the events so history can
    /// be compacted by age the same way on every member.
    pub proposed_at_ms: u64,
    /// A fenced transaction commits only in the Raft term it names: the control plane of the
    /// master that led in that term sets it, so a deposed master's writes (forwarded to the
    /// new leader, or proposed after an election) are refused with [`TxnFailure::Fenced`].
    pub fence: Option<u64>,
}

impl Txn {
    pub fn new(ops: Vec<Op>) -> Self {
        let proposed_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            ops,
            proposed_at_ms,
            fence: None,
        }
    }

    /// The same transaction, fenced to the Raft term `term` (see [`Txn::fence`]).
    pub fn fenced(mut self, term: Option<u64>) -> Self {
        self.fence = term;
        self
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Err(StoreError::InvalidKey("empty transaction".into()));
        }
        self.ops.iter().try_for_each(|op| op.key().validate())
    }
}

/// Why a transaction was refused (nothing of it applied).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxnFailure {
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("{key}: expected revision {expected:?}, found {actual:?}")]
    Conflict {
        key: ObjectKey,
        expected: Option<Revision>,
        actual: Option<Revision>,
    },
    /// The transaction was fenced to a term that is not the term of the leader that
    /// committed it: the control plane that sent it is not the active one any more.
    #[error("fenced to term {term}, but committed in term {current}")]
    Fenced { term: u64, current: u64 },
}

/// The outcome of one applied transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Applied at `revision`; one entry per op: the object after the op (`None` for a delete or
    /// a check).
    Committed {
        revision: Revision,
        objects: Vec<Option<Object>>,
    },
    /// Refused by the op at `op_index`; the store's revision did not move.
    Refused {
        op_index: usize,
        failure: TxnFailure,
    },
}

/// What happened to one object at one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One change, as delivered by a watch. For a delete, `value` is the object's last value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub revision: Revision,
    pub kind: EventKind,
    pub key: ObjectKey,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: Revision,
}

/// The changes committed at one revision, as kept in the history and sent to watchers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub revision: Revision,
    pub at_ms: u64,
    pub events: Vec<Event>,
}

/// A page of a list: objects and the revision the list was read at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    pub objects: Vec<Object>,
    pub revision: Revision,
}

/// How a read is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// Confirmed with the leader's read index: never stale.
    Linearizable,
    /// Served locally once this member has applied at least this revision.
    AtLeast(Revision),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_round_trips_and_prefixes_select() {
        let k = ObjectKey::new("pods", "default", "web-1");
        assert_eq!(ObjectKey::decode(&k.encode()), Some(k.clone()));
        assert!(k.encode().starts_with(&KeyRange::kind("pods").prefix()));
        assert!(k
            .encode()
            .starts_with(&KeyRange::namespaced("pods", "default").prefix()));
        assert!(!k
            .encode()
            .starts_with(&KeyRange::namespaced("pods", "def").prefix()));
        assert!(!k.encode().starts_with(&KeyRange::kind("pod").prefix()));
    }

    #[test]
    fn invalid_keys_are_refused() {
        assert!(ObjectKey::new("pods", "", "").validate().is_err());
        assert!(ObjectKey::new("pods", "a\0b", "x").validate().is_err());
        assert!(ObjectKey::new("nodes", "", "n1").validate().is_ok());
    }
}
