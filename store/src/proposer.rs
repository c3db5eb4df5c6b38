//! Batches concurrent writes on the leader into one Raft entry: while a few proposals are in
//! flight, new transactions queue up and go together in the next one, so the log fsync, the
//! replication round trip and the apply are shared under load. Each transaction still
//! applies on its own and gets its own revision.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::warn;

use crate::raft_types::{Applied, MemberId, Proposal, Raft};
use crate::types::{Txn, TxnOutcome};
use crate::StoreError;

/// Transactions in one entry at most.
const MAX_BATCH: usize = 256;
/// Bytes of keys and values in one entry at most (a larger transaction goes alone). With
/// `MAX_ENTRIES_PER_APPEND` this keeps a replication message well under the QUIC frame cap.
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Log entries in one AppendEntries at most (openraft's `max_payload_entries`).
pub(crate) const MAX_ENTRIES_PER_APPEND: u64 = 16;
/// Proposals waiting for commit at once; more writes wait and join the next batch.
const MAX_IN_FLIGHT: usize = 4;

/// Why a proposal did not produce an outcome.
#[derive(Debug)]
pub(crate) enum ProposeError {
    /// This member is not the leader (any more); the leader, if known.
    NotLeader(Option<MemberId>),
    Failed(StoreError),
}

struct Pending {
    txn: Txn,
    reply: oneshot::Sender<Result<TxnOutcome, ProposeError>>,
}

/// The leader-side write queue of one member.
pub(crate) struct Proposer {
    tx: mpsc::Sender<Pending>,
    gate: Arc<watch::Sender<Gate>>,
}

/// Whether proposals may go to Raft, and how many are there now.
#[derive(Clone, Copy, Debug, Default)]
struct Gate {
    paused: bool,
    in_flight: usize,
}

/// Holds proposals back while it lives (see [`Proposer::pause`]).
pub(crate) struct Paused {
    gate: Arc<watch::Sender<Gate>>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.gate.send_modify(|g| g.paused = false);
    }
}

impl Proposer {
    pub(crate) fn start(raft: Raft) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT);
        let gate = Arc::new(watch::channel(Gate::default()).0);
        tokio::spawn(run(raft, rx, gate.clone()));
        Self { tx, gate }
    }

    /// Holds new proposals back until the returned guard is dropped, once the ones in flight
    /// have completed (so the log stops growing: a leadership handover needs a successor
    /// with this member's whole log). Transactions that arrive meanwhile wait in the queue.
    pub(crate) async fn pause(&self) -> Paused {
        self.gate.send_modify(|g| g.paused = true);
        let paused = Paused {
            gate: self.gate.clone(),
        };
        let mut rx = self.gate.subscribe();
        // The sender lives in `self`: the wait ends when the last proposal completes.
        let _ = rx.wait_for(|g| g.in_flight == 0).await;
        paused
    }

    /// Proposes `txn` and waits for its outcome once its entry is committed and applied.
    ///
    /// # Cancel safety
    /// Dropping the future does not withdraw the transaction: it may still commit.
    pub(crate) async fn propose(&self, txn: Txn) -> Result<TxnOutcome, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { txn, reply })
            .await
            .map_err(|_| ProposeError::Failed(StoreError::ShuttingDown))?;
        rx.await
            .map_err(|_| ProposeError::Failed(StoreError::ShuttingDown))?
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, gate: Arc<watch::Sender<Gate>>) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut gate_rx = gate.subscribe();
    let mut carried: Option<Pending> = None;
    loop {
        // Wait for room first, so that writes arriving meanwhile form the next batch.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = txn_bytes(&first.txn);
        let mut batch = vec![first];
        // A transaction that would overflow this batch waits at the head of the next one.
        let mut held = None;
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) if bytes + txn_bytes(&p.txn) > MAX_BATCH_BYTES => {
                    held = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += txn_bytes(&p.txn);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        carried = held;
        // Admitted only while not paused; counted in flight in the same step, so a pause
        // sees every proposal that got past here.
        loop {
            let mut admitted = false;
            gate.send_if_modified(|g| {
                if !g.paused {
                    g.in_flight += 1;
                    admitted = true;
                }
                admitted
            });
            if admitted || gate_rx.changed().await.is_err() {
                break;
            }
        }
        let raft = raft.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let (txns, replies): (Vec<Txn>, Vec<_>) =
                batch.into_iter().map(|p| (p.txn, p.reply)).unzip();
            let n = txns.len();
            let result = raft.client_write(Proposal { txns }).await;
            drop(permit);
            gate.send_modify(|g| g.in_flight -= 1);
            match result {
                Ok(resp) => match resp.data {
                    Applied::Txns(outcomes) if outcomes.len() == n => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    other => {
                        warn!(
                            ?other,
                            expected = n,
                            "proposal applied with a mismatched result"
                        );
                        fail_all(replies, || {
                            ProposeError::Failed(StoreError::Storage(
                                "mismatched apply result".into(),
                            ))
                        });
                    }
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    fail_all(replies, || ProposeError::NotLeader(f.leader_id));
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    let msg = e.to_string();
                    fail_all(replies, || {
                        ProposeError::Failed(StoreError::Storage(msg.clone()))
                    });
                }
                Err(RaftError::Fatal(e)) => {
                    warn!(error = %e, "raft stopped");
                    fail_all(replies, || ProposeError::Failed(StoreError::ShuttingDown));
                }
            }
        });
    }
}

/// The size a transaction adds to an entry, roughly: its keys and values.
fn txn_bytes(txn: &Txn) -> usize {
    use crate::types::Op;
    txn.ops
        .iter()
        .map(|op| {
            let k = op.key();
            let key = k.kind.len() + k.namespace.len() + k.name.len() + 16;
            match op {
                Op::Create { value, .. } | Op::Update { value, .. } | Op::Put { value, .. } => {
                    key + value.len()
                }
                Op::Delete { .. } | Op::Check { .. } => key,
            }
        })
        .sum()
}

fn fail_all(
    replies: Vec<oneshot::Sender<Result<TxnOutcome, ProposeError>>>,
    err: impl Fn() -> ProposeError,
) {
    for reply in replies {
        let _ = reply.send(Err(err()));
    }
}
