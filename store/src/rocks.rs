//! The RocksDB database under one member: its column families, options, the modes of its
//! files, and the group-commit flusher that makes Raft log appends durable before they are
//! acknowledged.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use openraft::{AnyError, StorageIOError};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::raft_types::StorageError;
use crate::StoreError;

/// Raft log entries, keyed by big-endian index.
pub const CF_LOG: &str = "log";
/// Raft's vote, committed id and last purged id.
pub const CF_RAFT: &str = "raft";
/// Objects, keyed by `ObjectKey::encode`.
pub const CF_OBJECTS: &str = "objects";
/// Event history, keyed by big-endian revision.
pub const CF_EVENTS: &str = "events";
/// State machine metadata: last applied, membership, revision, compacted revision, snapshot.
pub const CF_SM: &str = "sm";

const ALL_CFS: [&str; 5] = [CF_LOG, CF_RAFT, CF_OBJECTS, CF_EVENTS, CF_SM];

/// Opens (or creates) the member's database in `dir`, which is made private: the directory
/// 0700 and every file in it 0600, before and after the open (RocksDB creates its files 0644
/// less the process umask; the binaries set a umask of 0o077 so that later files are 0600 too).
pub fn open(dir: &Path) -> Result<Arc<DB>, StoreError> {
    let io = |e: std::io::Error| StoreError::Storage(format!("{}: {e}", dir.display()));
    make_private(dir).map_err(io)?;
    let db =
        open_db(dir).map_err(|e| StoreError::Storage(format!("open {}: {e}", dir.display())))?;
    make_private(dir).map_err(io)?;
    Ok(db)
}

/// Creates `dir` if missing; makes it 0700 and the files in it 0600.
fn make_private(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Memtables of all column families together: past it RocksDB flushes the largest.
const MEMTABLES_BUDGET: usize = 32 << 20;
/// One memtable of one column family.
const MEMTABLE_SIZE: usize = 8 << 20;
/// The block cache all column families share.
const BLOCK_CACHE: usize = 16 << 20;

fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    // RocksDB's defaults (64 MiB memtables, two per column family, and a 32 MiB block cache
    // per column family) let a busy master hold hundreds of MiB that reads never need.
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&cache);
    let mut cf_opts = Options::default();
    cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    cf_opts.set_write_buffer_size(MEMTABLE_SIZE);
    cf_opts.set_max_write_buffer_number(2);
    cf_opts.set_block_based_table_factory(&table);
    let mut opts = cf_opts.clone();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_db_write_buffer_size(MEMTABLES_BUDGET);
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

pub fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    // The column families are created at open; a missing one is a programming error.
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} missing"))
}

pub fn u64_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn decode_u64_key(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

/// Writes `batch`, syncing the WAL to disk before returning.
pub fn write_synced(db: &DB, batch: WriteBatch) -> Result<(), rocksdb::Error> {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo)
}

/// Writes `batch` to the WAL and memtable without waiting for the disk.
pub fn write_unsynced(db: &DB, batch: WriteBatch) -> Result<(), rocksdb::Error> {
    let mut wo = WriteOptions::default();
    wo.set_sync(false);
    db.write_opt(batch, &wo)
}

pub fn io_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write(AnyError::new(&e)),
    }
}

pub fn io_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read(AnyError::new(&e)),
    }
}

/// Group commit: callers hand over a completion after their batch is written unsynced; one
/// thread syncs the WAL once for everything queued and then completes them all.
///
/// A completion is run only after an `fsync` that covers its write, so an acknowledged append
/// is durable.
pub struct GroupCommit {
    tx: mpsc::Sender<Completion>,
}

/// Run once the WAL holding a write is synced (or the sync failed).
pub type Completion = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

impl GroupCommit {
    pub fn start(db: Arc<DB>) -> Self {
        let (tx, rx) = mpsc::channel::<Completion>();
        std::thread::Builder::new()
            .name("navarch-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut pending = vec![first];
                    pending.extend(rx.try_iter());
                    let result = db.flush_wal(true).map_err(std::io::Error::other);
                    for done in pending {
                        done(
                            result
                                .as_ref()
                                .map(|_| ())
                                .map_err(|e| std::io::Error::other(e.to_string())),
                        );
                    }
                }
            })
            .expect("spawn wal sync thread");
        Self { tx }
    }

    /// Queues `done` to run after the next WAL sync. If the flusher is gone, runs it with an
    /// error at once.
    pub fn after_sync(&self, done: Completion) {
        if let Err(mpsc::SendError(done)) = self.tx.send(done) {
            done(Err(std::io::Error::other("wal sync thread stopped")));
        }
    }
}
