//! The store's Prometheus metrics (`prometheus-client`): latencies of writes (to their
//! outcome), of applies (per Raft entry) and of read-index confirmations, leader changes, and,
//! read at scrape time, the Raft term, the log indexes and the revision.
//!
//! A member keeps them from its start; the binary registers them into its registry with
//! [`crate::Member::register_metrics`] (names prefixed `navarch_store_`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::ServerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::raft_types::Raft;
use crate::state_machine::Progress;

/// Latency buckets: 0.25 ms to about 8 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The metrics a member updates as it works. Clones share the values.
#[derive(Clone, Debug)]
pub(crate) struct StoreMetrics {
    /// A write's time from `Member::write` to its outcome (committed, refused or an error).
    pub commit_latency: Histogram,
    /// The state machine's time to apply one Raft entry (RocksDB batch and watch publish).
    pub apply_latency: Histogram,
    /// A linearizable read's wait: the leader's read index, then applying up to it here.
    pub read_index_latency: Histogram,
    /// Times this member saw a new leader (the first one included).
    pub leader_changes: Counter,
}

impl StoreMetrics {
    pub(crate) fn new() -> StoreMetrics {
        StoreMetrics {
            commit_latency: latency_histogram(),
            apply_latency: latency_histogram(),
            read_index_latency: latency_histogram(),
            leader_changes: Counter::default(),
        }
    }

    /// Registers everything into `registry` (under the prefix the caller chose); the gauges
    /// are read from `raft`, `progress` and `committed` at each scrape.
    pub(crate) fn register(
        &self,
        registry: &mut Registry,
        raft: Raft,
        progress: Arc<Progress>,
        committed: Arc<AtomicU64>,
    ) {
        registry.register_with_unit(
            "commit_latency",
            "Time from a write's submission to this member to its outcome",
            Unit::Seconds,
            self.commit_latency.clone(),
        );
        registry.register_with_unit(
            "apply_latency",
            "Time to apply one Raft entry to the state machine",
            Unit::Seconds,
            self.apply_latency.clone(),
        );
        registry.register_with_unit(
            "read_index_latency",
            "Time a linearizable read waits for the read index and its apply",
            Unit::Seconds,
            self.read_index_latency.clone(),
        );
        registry.register(
            "leader_changes",
            "Times this member saw a new leader",
            self.leader_changes.clone(),
        );
        registry.register_collector(Box::new(StateCollector {
            raft,
            progress,
            committed,
        }));
    }
}

/// Counts leader changes from Raft's metrics until Raft shuts down.
pub(crate) async fn count_leader_changes(raft: Raft, metrics: StoreMetrics) {
    let mut rx = raft.metrics();
    let mut last = None;
    loop {
        let leader = rx.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            metrics.leader_changes.inc();
            last = leader;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The gauges, read at scrape time so they are never stale.
struct StateCollector {
    raft: Raft,
    progress: Arc<Progress>,
    committed: Arc<AtomicU64>,
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let m = self.raft.metrics().borrow().clone();
        let gauges: [(&str, &str, u64); 9] = [
            ("raft_term", "The current Raft term.", m.current_term),
            (
                "is_leader",
                "1 if this member is the leader.",
                u64::from(m.state == ServerState::Leader),
            ),
            (
                "last_log_index",
                "Index of the last entry in this member's Raft log.",
                m.last_log_index.unwrap_or(0),
            ),
            (
                "committed_index",
                "Index of the last Raft entry known committed.",
                self.committed.load(Ordering::Relaxed),
            ),
            (
                "applied_index",
                "Index of the last Raft entry applied to the state machine.",
                self.progress.applied_index.load(Ordering::SeqCst),
            ),
            (
                "snapshot_index",
                "Last Raft index covered by the current snapshot.",
                m.snapshot.map(|l| l.index).unwrap_or(0),
            ),
            (
                "purged_index",
                "Last Raft index purged from the log.",
                m.purged.map(|l| l.index).unwrap_or(0),
            ),
            (
                "revision",
                "The store revision (committed write transactions).",
                self.progress.revision.load(Ordering::SeqCst),
            ),
            (
                "compacted_revision",
                "Watch history is compacted up to this revision.",
                self.progress.compacted.load(Ordering::SeqCst),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
