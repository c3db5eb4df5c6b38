//! Delivery of a cache's changes to its subscribers: one bounded queue each, filled by the
//! cache's writer without ever waiting on a consumer. A consumer whose queue would overflow
//! loses its queued events and gets one [`CacheEvent::Lagged`] holding the content its next
//! events follow from, so it never misses changes without knowing it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::Notify;

use super::store::{CacheEvent, Snapshot};

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<CacheEvent>,
    closed: bool,
    lagged: u64,
}

#[derive(Debug, Default)]
struct Slot {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The subscribers of one cache.
#[derive(Debug)]
pub struct Fanout {
    slots: Vec<Weak<Slot>>,
    capacity: usize,
}

impl Fanout {
    /// Subscribers hold at most `capacity` undelivered events (at least 1).
    pub fn new(capacity: usize) -> Fanout {
        Fanout {
            slots: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// A new subscriber; `initial` is the content its first event follows from.
    pub fn subscribe(&mut self, initial: Snapshot) -> Subscription {
        let slot = Arc::new(Slot::default());
        self.slots.push(Arc::downgrade(&slot));
        Subscription { slot, initial }
    }

    /// Delivers the events of one change (one watch event, or a whole relist) to every
    /// subscriber. `after` is the content once they are applied, for those that lag.
    pub fn publish(&mut self, events: &[CacheEvent], after: &dyn Fn() -> Snapshot) {
        if events.is_empty() {
            return;
        }
        let mut snapshot: Option<Snapshot> = None;
        self.slots.retain(|w| {
            let Some(slot) = w.upgrade() else {
                return false;
            };
            let mut q = slot.lock();
            if q.events.len() + events.len() > self.capacity {
                q.events.clear();
                q.lagged += 1;
                let s = snapshot.get_or_insert_with(after).clone();
                q.events.push_back(CacheEvent::Lagged(s));
            } else {
                q.events.extend(events.iter().cloned());
            }
            drop(q);
            slot.notify.notify_one();
            true
        });
    }

    /// Ends every subscription: each gets what is queued, then `None`.
    pub fn close(&mut self) {
        for w in self.slots.drain(..) {
            if let Some(slot) = w.upgrade() {
                slot.lock().closed = true;
                slot.notify.notify_one();
            }
        }
    }

    /// Live subscribers.
    pub fn len(&mut self) -> usize {
        self.slots.retain(|w| w.strong_count() > 0);
        self.slots.len()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }
}

/// One consumer's view of a cache's changes. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    slot: Arc<Slot>,
    initial: Snapshot,
}

impl Subscription {
    /// The cache's content when this subscription began: the first event follows it.
    pub fn initial(&self) -> &Snapshot {
        &self.initial
    }

    /// The next change, in order; `None` once the cache has stopped and everything queued
    /// has been received.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is taken from the queue only when this returns it.
    pub async fn recv(&mut self) -> Option<CacheEvent> {
        loop {
            let notified = self.slot.notify.notified();
            if let Some(r) = self.poll_queue() {
                return r;
            }
            notified.await;
        }
    }

    /// The next change if one is queued (`Some(None)` once the cache has stopped).
    pub fn try_recv(&mut self) -> Option<Option<CacheEvent>> {
        self.poll_queue()
    }

    fn poll_queue(&self) -> Option<Option<CacheEvent>> {
        let mut q = self.slot.lock();
        match q.events.pop_front() {
            Some(e) => Some(Some(e)),
            None if q.closed => Some(None),
            None => None,
        }
    }

    /// How many times this subscriber has lagged.
    pub fn lagged(&self) -> u64 {
        self.slot.lock().lagged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn added(n: u64) -> CacheEvent {
        CacheEvent::Added(Arc::new(json!({"metadata": {"name": n.to_string()}})))
    }

    #[tokio::test]
    async fn subscribers_get_every_event_in_order_then_none_after_close() {
        let mut f = Fanout::new(10);
        let mut a = f.subscribe(Snapshot::default());
        let mut b = f.subscribe(Snapshot::default());
        f.publish(&[added(1), added(2)], &Snapshot::default);
        f.publish(&[added(3)], &Snapshot::default);
        for s in [&mut a, &mut b] {
            for n in 1..=3 {
                assert_eq!(s.recv().await, Some(added(n)));
            }
            assert_eq!(s.try_recv(), None);
        }
        drop(b);
        assert_eq!(f.len(), 1);
        f.close();
        assert_eq!(a.recv().await, None);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_and_resumes_from_the_snapshot() {
        let mut f = Fanout::new(3);
        let mut slow = f.subscribe(Snapshot::default());
        let mut fast = f.subscribe(Snapshot::default());
        f.publish(&[added(1), added(2)], &Snapshot::default);
        assert_eq!(fast.recv().await, Some(added(1)));
        assert_eq!(fast.recv().await, Some(added(2)));
        let marker = Snapshot::default();
        f.publish(&[added(3), added(4)], &|| marker.clone());
        f.publish(&[added(5)], &Snapshot::default);
        assert!(matches!(slow.recv().await, Some(CacheEvent::Lagged(_))));
        assert_eq!(slow.recv().await, Some(added(5)));
        assert_eq!(slow.lagged(), 1);
        for n in 3..=5 {
            assert_eq!(fast.recv().await, Some(added(n)));
        }
        assert_eq!(fast.lagged(), 0);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_publish() {
        let f = Arc::new(Mutex::new(Fanout::new(4)));
        let mut s = f.lock().unwrap().subscribe(Snapshot::default());
        let f2 = f.clone();
        let waiter = tokio::spawn(async move { s.recv().await });
        tokio::task::yield_now().await;
        f2.lock().unwrap().publish(&[added(7)], &Snapshot::default);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken within the deadline")
            .unwrap();
        assert_eq!(got, Some(added(7)));
    }
}
