//! The Raft log in RocksDB: openraft's `RaftLogStorage`, with appends acknowledged only once
//! the WAL holding them is synced to disk.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use navarch_net::codec;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogId, RaftLogReader};
use rocksdb::{WriteBatch, DB};

use crate::raft_types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::rocks::{self, cf, io_read, io_write, u64_key, GroupCommit, CF_LOG, CF_RAFT};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

/// The member's Raft log. Cheap to clone: clones share the database and the flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    sync: Arc<GroupCommit>,
    /// The committed index as last told by Raft; shown by `/debug/store`.
    committed: Arc<AtomicU64>,
}

impl LogStore {
    pub fn new(db: Arc<DB>, committed: Arc<AtomicU64>) -> Self {
        let sync = Arc::new(GroupCommit::start(db.clone()));
        Self {
            db,
            sync,
            committed,
        }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self
            .db
            .get_cf(cf(&self.db, CF_RAFT), key)
            .map_err(io_read)?
        {
            None => Ok(None),
            Some(raw) => codec::decode(&raw).map(Some).map_err(io_read),
        }
    }

    /// The id of the last entry in the log, or of the last purged one if the log is empty.
    pub(crate) fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        Ok(self.last_entry_id()?.or(self.get_meta(KEY_PURGED)?))
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_LOG));
        it.seek_to_last();
        match it.value() {
            None => {
                it.status().map_err(io_read)?;
                Ok(None)
            }
            Some(raw) => {
                let entry: Entry = codec::decode(raw).map_err(io_read)?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_LOG));
        it.seek(u64_key(start));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let idx = rocks::decode_u64_key(k).unwrap_or(u64::MAX);
            if !range.contains(&idx) {
                break;
            }
            out.push(codec::decode(v).map_err(io_read)?);
            it.next();
        }
        it.status().map_err(io_read)?;
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_VOTE,
            codec::encode(vote).map_err(io_write)?,
        );
        rocks::write_synced(&self.db, b).map_err(io_write)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = committed {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        let mut b = WriteBatch::default();
        b.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_COMMITTED,
            codec::encode(&committed).map_err(io_write)?,
        );
        rocks::write_unsynced(&self.db, b).map_err(io_write)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let c: Option<Option<LogId>> = self.get_meta(KEY_COMMITTED)?;
        let c = c.flatten();
        if let Some(c) = c {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(c)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        for entry in entries {
            b.put_cf(
                log,
                u64_key(entry.get_log_id().index),
                codec::encode(&entry).map_err(io_write)?,
            );
        }
        // Readable on return; durable (and acknowledged to Raft) after the group sync.
        rocks::write_unsynced(&self.db, b).map_err(io_write)?;
        self.sync
            .after_sync(Box::new(move |r| callback.log_io_completed(r)));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.delete_range_cf(
            cf(&self.db, CF_LOG),
            u64_key(log_id.index),
            u64_key(u64::MAX),
        );
        rocks::write_synced(&self.db, b).map_err(io_write)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_PURGED,
            codec::encode(&log_id).map_err(io_write)?,
        );
        b.delete_range_cf(cf(&self.db, CF_LOG), u64_key(0), u64_key(log_id.index + 1));
        // Synced: the state machine writes before it in the WAL become durable with it.
        rocks::write_synced(&self.db, b).map_err(io_write)
    }
}
