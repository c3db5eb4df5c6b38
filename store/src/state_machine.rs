//! The replicated state machine in RocksDB: applies committed transactions, keeps the event
//! history that watches replay, builds and installs snapshots.
//!
//! An applied entry writes its objects, its event batch, the new revision and the applied log
//! id in one RocksDB batch; only after that write are its events published to watchers.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use navarch_net::codec;
use openraft::storage::{RaftStateMachine, Snapshot as RaftSnapshot};
use openraft::{EntryPayload, OptionalSend, RaftLogId, RaftSnapshotBuilder};
use prometheus_client::metrics::histogram::Histogram;
use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::apply::{evaluate, Change};
use crate::raft_types::{
    Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::rocks::{self, cf, io_read, io_write, u64_key, CF_EVENTS, CF_OBJECTS, CF_SM};
use crate::types::{EventBatch, ObjectKey, Revision, StoredRecord, TxnFailure, TxnOutcome};
use crate::watch::WatchHub;

const KEY_APPLIED: &[u8] = b"applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_REVISION: &[u8] = b"revision";
const KEY_COMPACTED: &[u8] = b"compacted";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The highest member id any applied membership held: a new member gets a higher one.
const KEY_MAX_MEMBER_ID: &[u8] = b"max_member_id";

/// How much event history a member keeps for watches.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    /// Keep this many revisions of events; older ones are dropped in steps of
    /// `max_revisions / 16` (1 to 1024), so at most that many more are held at a time.
    pub max_revisions: u64,
    /// Drop events older than this.
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_revisions: 100_000,
            max_age: Duration::from_secs(3600),
        }
    }
}

/// The full state as shipped in a snapshot or a backup: every object at one revision.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatePayload {
    pub revision: Revision,
    /// Raw `(ObjectKey::encode, encoded StoredRecord)` pairs, in key order.
    pub objects: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// Counters the rest of the member reads without touching RocksDB.
#[derive(Debug, Default)]
pub struct Progress {
    pub revision: AtomicU64,
    pub compacted: AtomicU64,
    pub applied_index: AtomicU64,
    /// The highest member id of every membership applied here (or of an installed snapshot's).
    pub max_member_id: AtomicU64,
}

pub struct StateMachine {
    db: Arc<DB>,
    watch: WatchHub,
    progress: Arc<Progress>,
    limits: HistoryLimits,
    /// Time to apply each entry.
    apply_latency: Histogram,
}

impl StateMachine {
    pub fn open(
        db: Arc<DB>,
        watch: WatchHub,
        limits: HistoryLimits,
        apply_latency: Histogram,
    ) -> Result<Self, StorageError> {
        let progress = Arc::new(Progress::default());
        let rev: u64 = read_meta(&db, KEY_REVISION)?.unwrap_or(0);
        let compacted: u64 = read_meta(&db, KEY_COMPACTED)?.unwrap_or(0);
        let applied: Option<LogId> = read_meta::<Option<LogId>>(&db, KEY_APPLIED)?.flatten();
        let max_member_id: u64 = read_meta(&db, KEY_MAX_MEMBER_ID)?.unwrap_or(0);
        progress
            .max_member_id
            .store(max_member_id, Ordering::SeqCst);
        progress.revision.store(rev, Ordering::SeqCst);
        progress.compacted.store(compacted, Ordering::SeqCst);
        progress
            .applied_index
            .store(applied.map(|l| l.index).unwrap_or(0), Ordering::SeqCst);
        watch.set_compacted(Revision(compacted));
        Ok(Self {
            db,
            watch,
            progress,
            limits,
            apply_latency,
        })
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn lookup(&self, key: &ObjectKey) -> Result<Option<StoredRecord>, StorageError> {
        match self
            .db
            .get_cf(cf(&self.db, CF_OBJECTS), key.encode())
            .map_err(io_read)?
        {
            None => Ok(None),
            Some(raw) => codec::decode(&raw).map(Some).map_err(io_read),
        }
    }

    /// Raises the highest member id seen to `membership`'s, in `batch` and in memory (a
    /// membership entry is applied once, so raising before the batch is written is harmless).
    fn raise_max_member_id(
        &self,
        batch: &mut WriteBatch,
        membership: &StoredMembership,
    ) -> Result<(), StorageError> {
        let max = membership
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0);
        if max > self.progress.max_member_id.load(Ordering::SeqCst) {
            batch.put_cf(
                cf(&self.db, CF_SM),
                KEY_MAX_MEMBER_ID,
                codec::encode(&max).map_err(io_write)?,
            );
            self.progress.max_member_id.store(max, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Drops history past the limits into `batch`, raising `compacted` (this entry's running
    /// value); the caller publishes it once the batch is written. A cheap check most of the time.
    fn compact(
        &self,
        batch: &mut WriteBatch,
        compacted: &mut u64,
        revision: u64,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let mut upto = *compacted;
        // By count, in steps: each compaction is a RocksDB range tombstone that every later
        // read of the history column must step over, so one per revision would pile up
        // thousands of them under load. Compact once a step's worth is due.
        let step = (self.limits.max_revisions / 16).clamp(1, 1024);
        if revision.saturating_sub(upto) >= self.limits.max_revisions + step {
            upto = revision - self.limits.max_revisions;
        }
        // By age: look at the oldest retained batch only every 64 revisions.
        if revision.is_multiple_of(64) {
            let max_age_ms = self.limits.max_age.as_millis() as u64;
            let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_EVENTS));
            it.seek(u64_key(upto + 1));
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let b: EventBatch = codec::decode(v).map_err(io_read)?;
                if now_ms.saturating_sub(b.at_ms) <= max_age_ms {
                    break;
                }
                upto = rocks::decode_u64_key(k).unwrap_or(upto);
                it.next();
            }
        }
        if upto > *compacted {
            batch.delete_range_cf(cf(&self.db, CF_EVENTS), u64_key(0), u64_key(upto + 1));
            batch.put_cf(
                cf(&self.db, CF_SM),
                KEY_COMPACTED,
                codec::encode(&upto).map_err(io_write)?,
            );
            *compacted = upto;
        }
        Ok(())
    }
}

fn read_meta<T: serde::de::DeserializeOwned>(
    db: &DB,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match db.get_cf(cf(db, CF_SM), key).map_err(io_read)? {
        None => Ok(None),
        Some(raw) => codec::decode(&raw).map(Some).map_err(io_read),
    }
}

/// Reads every object and the revision from a consistent point-in-time view of `db`.
pub fn dump_state(
    db: &DB,
) -> Result<(StatePayload, Option<LogId>, StoredMembership), StorageError> {
    let snap = db.snapshot();
    let get = |key: &[u8]| snap.get_cf(cf(db, CF_SM), key).map_err(io_read);
    let revision: u64 = get(KEY_REVISION)?
        .map(|r| codec::decode(&r))
        .transpose()
        .map_err(io_read)?
        .unwrap_or(0);
    let applied: Option<LogId> = get(KEY_APPLIED)?
        .map(|r| codec::decode::<Option<LogId>>(&r))
        .transpose()
        .map_err(io_read)?
        .flatten();
    let membership: StoredMembership = get(KEY_MEMBERSHIP)?
        .map(|r| codec::decode(&r))
        .transpose()
        .map_err(io_read)?
        .unwrap_or_default();
    let mut objects = Vec::new();
    let mut it = snap.raw_iterator_cf(cf(db, CF_OBJECTS));
    it.seek_to_first();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        objects.push((k.to_vec(), v.to_vec()));
        it.next();
    }
    it.status().map_err(io_read)?;
    Ok((
        StatePayload {
            revision: Revision(revision),
            objects,
        },
        applied,
        membership,
    ))
}

/// Replaces all objects and history with `payload` in `batch`, marking history compacted at
/// the payload's revision.
pub fn replace_state(
    db: &DB,
    batch: &mut WriteBatch,
    payload: &StatePayload,
) -> Result<(), StorageError> {
    let objects = cf(db, CF_OBJECTS);
    batch.delete_range_cf(objects, Vec::<u8>::new(), vec![0xffu8; 64]);
    // Keys start with a kind (UTF-8, never 0xff), so the range above covers them all.
    batch.delete_range_cf(cf(db, CF_EVENTS), u64_key(0), u64_key(u64::MAX));
    for (k, v) in &payload.objects {
        batch.put_cf(objects, k, v);
    }
    let sm = cf(db, CF_SM);
    batch.put_cf(
        sm,
        KEY_REVISION,
        codec::encode(&payload.revision.0).map_err(io_write)?,
    );
    batch.put_cf(
        sm,
        KEY_COMPACTED,
        codec::encode(&payload.revision.0).map_err(io_write)?,
    );
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = read_meta::<Option<LogId>>(&self.db, KEY_APPLIED)?.flatten();
        let membership = read_meta(&self.db, KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            let started = Instant::now();
            let log_id = *entry.get_log_id();
            let mut batch = WriteBatch::default();
            let sm = cf(&self.db, CF_SM);
            batch.put_cf(
                sm,
                KEY_APPLIED,
                codec::encode(&Some(log_id)).map_err(io_write)?,
            );
            let mut published = Vec::new();
            let compacted_before = self.progress.compacted.load(Ordering::SeqCst);
            let mut compacted = compacted_before;
            let applied = match entry.payload {
                EntryPayload::Blank => Applied::Nothing,
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(log_id), m);
                    batch.put_cf(
                        sm,
                        KEY_MEMBERSHIP,
                        codec::encode(&stored).map_err(io_write)?,
                    );
                    self.raise_max_member_id(&mut batch, &stored)?;
                    Applied::Nothing
                }
                EntryPayload::Normal(proposal) => {
                    // Transactions of one entry see each other's changes through `overlay`.
                    let mut overlay: HashMap<ObjectKey, Option<StoredRecord>> = HashMap::new();
                    let mut revision = self.progress.revision.load(Ordering::SeqCst);
                    let mut outcomes = Vec::with_capacity(proposal.txns.len());
                    for txn in proposal.txns {
                        if let Some(term) = txn.fence.filter(|t| *t != log_id.leader_id.term) {
                            outcomes.push(TxnOutcome::Refused {
                                op_index: 0,
                                failure: TxnFailure::Fenced {
                                    term,
                                    current: log_id.leader_id.term,
                                },
                            });
                            continue;
                        }
                        let next = Revision(revision + 1);
                        let mut lookup_err = None;
                        let ev = evaluate(&txn, next, |k| match overlay.get(k) {
                            Some(v) => v.clone(),
                            None => self.lookup(k).unwrap_or_else(|e| {
                                lookup_err = Some(e);
                                None
                            }),
                        });
                        if let Some(e) = lookup_err {
                            return Err(e);
                        }
                        if let TxnOutcome::Committed { .. } = ev.outcome {
                            let objects = cf(&self.db, CF_OBJECTS);
                            for change in ev.changes {
                                match change {
                                    Change::Put(k, rec) => {
                                        batch.put_cf(
                                            objects,
                                            k.encode(),
                                            codec::encode(&rec).map_err(io_write)?,
                                        );
                                        overlay.insert(k, Some(rec));
                                    }
                                    Change::Delete(k) => {
                                        batch.delete_cf(objects, k.encode());
                                        overlay.insert(k, None);
                                    }
                                }
                            }
                            let eb = EventBatch {
                                revision: next,
                                at_ms: txn.proposed_at_ms,
                                events: ev.events,
                            };
                            batch.put_cf(
                                cf(&self.db, CF_EVENTS),
                                u64_key(next.0),
                                codec::encode(&eb).map_err(io_write)?,
                            );
                            self.compact(&mut batch, &mut compacted, next.0, txn.proposed_at_ms)?;
                            revision = next.0;
                            published.push(eb);
                        }
                        outcomes.push(ev.outcome);
                    }
                    if !published.is_empty() {
                        batch.put_cf(
                            sm,
                            KEY_REVISION,
                            codec::encode(&revision).map_err(io_write)?,
                        );
                    }
                    Applied::Txns(outcomes)
                }
            };
            rocks::write_unsynced(&self.db, batch).map_err(io_write)?;
            self.progress
                .applied_index
                .store(log_id.index, Ordering::SeqCst);
            if compacted > compacted_before {
                self.progress.compacted.store(compacted, Ordering::SeqCst);
                self.watch.set_compacted(Revision(compacted));
                debug!(compacted, "event history compacted");
            }
            for eb in published {
                self.progress
                    .revision
                    .store(eb.revision.0, Ordering::SeqCst);
                self.watch.publish(eb);
            }
            self.apply_latency.observe(started.elapsed().as_secs_f64());
            out.push(applied);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let payload: StatePayload = codec::decode(&data).map_err(io_read)?;
        let mut batch = WriteBatch::default();
        replace_state(&self.db, &mut batch, &payload)?;
        let sm = cf(&self.db, CF_SM);
        batch.put_cf(
            sm,
            KEY_APPLIED,
            codec::encode(&meta.last_log_id).map_err(io_write)?,
        );
        batch.put_cf(
            sm,
            KEY_MEMBERSHIP,
            codec::encode(&meta.last_membership).map_err(io_write)?,
        );
        self.raise_max_member_id(&mut batch, &meta.last_membership)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        batch.put_cf(sm, KEY_SNAPSHOT, codec::encode(&stored).map_err(io_write)?);
        rocks::write_synced(&self.db, batch).map_err(io_write)?;
        self.progress
            .revision
            .store(payload.revision.0, Ordering::SeqCst);
        self.progress
            .compacted
            .store(payload.revision.0, Ordering::SeqCst);
        self.progress.applied_index.store(
            meta.last_log_id.map(|l| l.index).unwrap_or(0),
            Ordering::SeqCst,
        );
        self.watch.reset(payload.revision);
        info!(snapshot = %meta.snapshot_id, revision = payload.revision.0, objects = payload.objects.len(), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored: Option<StoredSnapshot> = read_meta(&self.db, KEY_SNAPSHOT)?;
        Ok(stored.map(|s| RaftSnapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Builds a snapshot from a RocksDB point-in-time view while applies go on.
pub struct SnapshotBuilder {
    db: Arc<DB>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (payload, applied, membership) = dump_state(&self.db)?;
        let data = codec::encode(&payload).map_err(io_write)?;
        let snapshot_id = format!(
            "{}-{}-r{}",
            applied.map(|l| l.leader_id.term).unwrap_or(0),
            applied.map(|l| l.index).unwrap_or(0),
            payload.revision.0
        );
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_SM),
            KEY_SNAPSHOT,
            codec::encode(&stored).map_err(io_write)?,
        );
        rocks::write_synced(&self.db, batch).map_err(io_write)?;
        info!(snapshot = %meta.snapshot_id, objects = payload.objects.len(), "snapshot built");
        Ok(RaftSnapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}
