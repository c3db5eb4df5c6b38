//! Watches fed from the apply path: replay the stored history from a revision, then follow
//! what the state machine publishes, with no gap and no duplicate.
//!
//! A watcher subscribes to the broadcast first, then replays stored events after its
//! revision, then follows the broadcast, skipping what it already sent. If it lags behind the
//! broadcast it replays from the history again. `apply` never waits for a watcher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use navarch_net::codec;
use rocksdb::DB;
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use crate::rocks::{cf, u64_key, CF_EVENTS};
use crate::types::{Event, EventBatch, KeyRange, Revision};
use crate::StoreError;

const BROADCAST_CAPACITY: usize = 4096;
const REPLAY_CHUNK: usize = 512;

#[derive(Clone, Debug)]
enum Notice {
    Batch(Arc<EventBatch>),
    /// The history was replaced (a snapshot was installed) up to this revision.
    Reset(Revision),
}

/// One member's watch fan-out. Cheap to clone.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Notice>,
    compacted: AtomicU64,
    db: Arc<DB>,
}

/// The receiving end of one watch: for each revision with matching changes, those changes
/// (never split across items), in revision order; or one final error.
pub type WatchReceiver = mpsc::Receiver<Result<EventBatch, StoreError>>;

impl WatchHub {
    pub fn new(db: Arc<DB>) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                tx,
                compacted: AtomicU64::new(0),
                db,
            }),
        }
    }

    pub fn compacted(&self) -> Revision {
        Revision(self.inner.compacted.load(Ordering::SeqCst))
    }

    pub(crate) fn set_compacted(&self, rev: Revision) {
        self.inner.compacted.store(rev.0, Ordering::SeqCst);
    }

    pub(crate) fn publish(&self, batch: EventBatch) {
        // No receivers is fine: nobody is watching.
        let _ = self.inner.tx.send(Notice::Batch(Arc::new(batch)));
    }

    pub(crate) fn reset(&self, compacted: Revision) {
        self.set_compacted(compacted);
        let _ = self.inner.tx.send(Notice::Reset(compacted));
    }

    /// Starts a watch of `range` delivering every change with a revision above `after`.
    ///
    /// Fails with `StoreError::Expired` when `after` is older than the retained history.
    /// Dropping the receiver ends the watch.
    pub fn watch(&self, range: KeyRange, after: Revision) -> Result<WatchReceiver, StoreError> {
        let rx = self.inner.tx.subscribe();
        let compacted = self.compacted();
        if after < compacted {
            return Err(StoreError::Expired {
                requested: after,
                compacted,
            });
        }
        let (tx, out) = mpsc::channel(256);
        let inner = self.inner.clone();
        tokio::spawn(async move { follow(inner, range, after, rx, tx).await });
        Ok(out)
    }
}

async fn follow(
    inner: Arc<Inner>,
    range: KeyRange,
    after: Revision,
    mut rx: broadcast::Receiver<Notice>,
    tx: mpsc::Sender<Result<EventBatch, StoreError>>,
) {
    let mut sent = after;
    // Replay the stored history, then follow the broadcast; replay again after a lag.
    'outer: loop {
        loop {
            let chunk = match read_history(&inner.db, sent, REPLAY_CHUNK) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let compacted = Revision(inner.compacted.load(Ordering::SeqCst));
            if sent < compacted {
                return expire(&tx, sent, compacted).await;
            }
            let done = chunk.len() < REPLAY_CHUNK;
            for batch in chunk {
                if !deliver(&tx, &range, &batch).await {
                    return;
                }
                sent = batch.revision;
            }
            if done {
                break;
            }
        }
        loop {
            match rx.recv().await {
                Ok(Notice::Batch(batch)) => {
                    if batch.revision <= sent {
                        continue;
                    }
                    if batch.revision.0 > sent.0 + 1 {
                        // A revision between was published before we subscribed-and-replayed
                        // caught up; read it from the history.
                        continue 'outer;
                    }
                    if !deliver(&tx, &range, &batch).await {
                        return;
                    }
                    sent = batch.revision;
                }
                Ok(Notice::Reset(compacted)) => {
                    if sent < compacted {
                        return expire(&tx, sent, compacted).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(
                        missed = n,
                        after = sent.0,
                        "watcher lagged, replaying from history"
                    );
                    continue 'outer;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

async fn expire(
    tx: &mpsc::Sender<Result<EventBatch, StoreError>>,
    sent: Revision,
    compacted: Revision,
) {
    let _ = tx
        .send(Err(StoreError::Expired {
            requested: sent,
            compacted,
        }))
        .await;
}

async fn deliver(
    tx: &mpsc::Sender<Result<EventBatch, StoreError>>,
    range: &KeyRange,
    batch: &EventBatch,
) -> bool {
    let events: Vec<Event> = batch
        .events
        .iter()
        .filter(|e| range.contains(&e.key))
        .cloned()
        .collect();
    if events.is_empty() {
        return true;
    }
    tx.send(Ok(EventBatch {
        revision: batch.revision,
        at_ms: batch.at_ms,
        events,
    }))
    .await
    .is_ok()
}

fn read_history(db: &DB, after: Revision, max: usize) -> Result<Vec<EventBatch>, StoreError> {
    let mut out = Vec::new();
    let mut it = db.raw_iterator_cf(cf(db, CF_EVENTS));
    it.seek(u64_key(after.0 + 1));
    while let Some(v) = it.value() {
        if out.len() == max {
            break;
        }
        out.push(codec::decode::<EventBatch>(v).map_err(|e| StoreError::Storage(e.to_string()))?);
        it.next();
    }
    it.status()
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    Ok(out)
}
