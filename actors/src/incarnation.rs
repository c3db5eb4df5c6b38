//! The running incarnation of a supervisor, as the slot that outlives it keeps track of it:
//! the one place kind supervisors and singletons count, record, find and forget theirs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use actix::{Actor, Addr};

/// The incarnation running now (if any), the count of incarnations started, and whether
/// the supervisor stopped for good.
pub(crate) struct Current<A: Actor> {
    running: RwLock<Option<(u64, Addr<A>)>>,
    started: AtomicU64,
    ended: AtomicBool,
}

impl<A: Actor> Current<A> {
    pub(crate) fn new() -> Self {
        Current {
            running: RwLock::new(None),
            started: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        }
    }

    /// The number of the next incarnation (from 1).
    pub(crate) fn next(&self) -> u64 {
        self.started.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Incarnation `n` runs at `addr` now; the supervisor is no longer ended.
    pub(crate) fn set(&self, n: u64, addr: Addr<A>) {
        self.ended.store(false, Ordering::Relaxed);
        *self.running.write().unwrap_or_else(|e| e.into_inner()) = Some((n, addr));
    }

    pub(crate) fn addr(&self) -> Option<Addr<A>> {
        let running = self.running.read().unwrap_or_else(|e| e.into_inner());
        running.as_ref().map(|(_, a)| a.clone())
    }

    /// Forgets incarnation `n` if it is still the current one.
    pub(crate) fn clear(&self, n: u64) {
        let mut running = self.running.write().unwrap_or_else(|e| e.into_inner());
        if running.as_ref().is_some_and(|(m, _)| *m == n) {
            *running = None;
        }
    }

    /// Stopped for good: shut down, or given up with nobody above to restart it.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}
