//! The kit's only source of time: a [`Clock`] that reads "now" and sleeps, on tokio time in
//! production ([`SystemClock`]) and under a test's control ([`ManualClock`]).
//!
//! Supervisors, restart backoff, restart-intensity windows, registry refreshes and the tap's
//! timestamps all read the clock of their [`Root`](crate::Root); nothing in the kit calls
//! `Instant::now()`, `SystemTime::now()` or `tokio::time::sleep` on its own. A test (and, later,
//! a deterministic simulation) builds its tree on a [`ManualClock`], where time stands still
//! until the test calls [`ManualClock::advance`].
//!
//! ```
//! # use std::time::Duration;
//! # use navarch_actors::{Clock, ManualClock};
//! let clock = ManualClock::new();
//! let t0 = clock.now();
//! let nap = clock.sleep(Duration::from_secs(5));   // registered now, fires at t0 + 5 s
//! assert_eq!(clock.next_deadline(), Some(t0 + Duration::from_secs(5)));
//! clock.advance(Duration::from_secs(5));            // wakes it; nothing else moves time
//! # futures::executor::block_on(nap);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::{BoxFuture, Either};

/// Where the kit reads time and waits. Object-safe; shared as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;

    /// Wall-clock now, for records people read (tap timestamps, start times, escalations).
    fn wall(&self) -> SystemTime;

    /// Resolves once `duration` has passed on this clock, counted from the call (not from the
    /// first poll).
    ///
    /// # Cancel safety
    /// Dropping the future cancels the sleep; nothing else is affected.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Resolves once this clock reaches `deadline` (at once if it has).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.sleep(deadline.saturating_duration_since(self.now()))
    }
}

/// Runs `fut` for at most `limit` on `clock`; `None` if the time ran out first.
///
/// # Cancel safety
/// Dropping the returned future drops `fut` and the sleep.
pub async fn timeout<F: Future>(clock: &dyn Clock, limit: Duration, fut: F) -> Option<F::Output> {
    let sleep = clock.sleep(limit);
    let fut = std::pin::pin!(fut);
    match futures::future::select(fut, sleep).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => None,
    }
}

/// The real clock: tokio's monotonic time (so a tokio runtime with paused time controls it
/// too) and the system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// A clock whose time moves only when [`advance`](Self::advance) is called.
///
/// Cheap to clone; clones share one time. Sleepers are woken by `advance` in deadline order
/// (ties in the order they went to sleep); the woken tasks run when their executor next polls
/// them, and they all see the time `advance` moved to.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<Manual>>,
}

struct Manual {
    /// The monotonic instant that stands for the clock's start.
    base: Instant,
    wall_base: SystemTime,
    elapsed: Duration,
    next_seq: u64,
    /// Sleepers by (deadline, seq); the waker is set once the sleep has been polled.
    sleepers: BTreeMap<(Instant, u64), Option<Waker>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.lock();
        f.debug_struct("ManualClock")
            .field("elapsed", &m.elapsed)
            .field("sleepers", &m.sleepers.len())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock at its start; its wall clock reads 2025-01-01T00:00:00Z.
    pub fn new() -> Self {
        ManualClock::with_wall(UNIX_EPOCH + Duration::from_secs(1_735_689_600))
    }

    /// A clock at its start whose wall clock reads `wall`.
    pub fn with_wall(wall: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(Manual {
                // The one real clock read: an opaque base that differences are taken from.
                base: Instant::now(),
                wall_base: wall,
                elapsed: Duration::ZERO,
                next_seq: 0,
                sleepers: BTreeMap::new(),
            })),
        }
    }

    /// This clock, shared as the kit's clock.
    pub fn shared(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Manual> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How far time has moved since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.lock().elapsed
    }

    /// Moves time forward by `by` and wakes every sleeper whose deadline is now due, in
    /// deadline order. Returns how many it woke.
    pub fn advance(&self, by: Duration) -> usize {
        let wakers = {
            let mut m = self.lock();
            m.elapsed += by;
            let now = m.base + m.elapsed;
            let mut due = Vec::new();
            while let Some(entry) = m.sleepers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            due
        };
        let woken = wakers.len();
        // Woken outside the lock: a waker may poll its task inline.
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
        woken
    }

    /// Advances to the earliest deadline of a sleeper, if there is one, waking it (and any
    /// sleeper due at the same instant). Returns how far time moved.
    pub fn advance_to_next(&self) -> Option<Duration> {
        let step = {
            let m = self.lock();
            let now = m.base + m.elapsed;
            m.sleepers
                .keys()
                .next()
                .map(|(d, _)| d.saturating_duration_since(now))
        }?;
        self.advance(step);
        Some(step)
    }

    /// Sleepers waiting now.
    pub fn sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }

    /// The earliest deadline anyone sleeps until.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().sleepers.keys().next().map(|(d, _)| *d)
    }

    /// Every deadline slept until, earliest first.
    pub fn deadlines(&self) -> Vec<Instant> {
        self.lock().sleepers.keys().map(|(d, _)| *d).collect()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let m = self.lock();
        m.base + m.elapsed
    }

    fn wall(&self) -> SystemTime {
        let m = self.lock();
        m.wall_base + m.elapsed
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = self.now() + duration;
        self.sleep_until(deadline)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let key = {
            let mut m = self.lock();
            if deadline <= m.base + m.elapsed {
                return Box::pin(std::future::ready(()));
            }
            let key = (deadline, m.next_seq);
            m.next_seq += 1;
            m.sleepers.insert(key, None);
            key
        };
        Box::pin(ManualSleep {
            clock: self.clone(),
            key,
        })
    }
}

/// One sleeper on a [`ManualClock`]; dropping it takes it off the clock.
struct ManualSleep {
    clock: ManualClock,
    key: (Instant, u64),
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut m = self.clock.lock();
        match m.sleepers.get_mut(&self.key) {
            // `advance` took it off: it is due.
            None => Poll::Ready(()),
            Some(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.clock.lock().sleepers.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn time_moves_only_when_advanced() {
        let c = ManualClock::new();
        let (t0, w0) = (c.now(), c.wall());
        assert_eq!(c.now(), t0);
        assert_eq!(c.advance(s(3)), 0);
        assert_eq!(c.now() - t0, s(3));
        assert_eq!(c.wall().duration_since(w0).unwrap(), s(3));
        assert_eq!(c.elapsed(), s(3));
    }

    #[test]
    fn sleepers_wake_in_deadline_order_once_due() {
        let c = ManualClock::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut pool = futures::executor::LocalPool::new();
        let spawner = pool.spawner();
        // Registered out of order; two share a deadline and keep their registration order.
        for (name, secs) in [("c", 30), ("a", 10), ("b1", 20), ("b2", 20)] {
            let sleep = c.sleep(s(secs));
            let order = order.clone();
            futures::task::LocalSpawnExt::spawn_local(&spawner, async move {
                sleep.await;
                order.lock().unwrap().push(name);
            })
            .unwrap();
        }
        pool.run_until_stalled();
        assert_eq!(c.sleepers(), 4);
        assert_eq!(c.next_deadline(), Some(c.now() + s(10)));
        assert_eq!(c.advance(s(9)), 0);
        pool.run_until_stalled();
        assert!(order.lock().unwrap().is_empty());
        assert_eq!(c.advance(s(15)), 3);
        pool.run_until_stalled();
        assert_eq!(*order.lock().unwrap(), ["a", "b1", "b2"]);
        assert_eq!(c.advance_to_next(), Some(s(6)));
        pool.run_until_stalled();
        assert_eq!(*order.lock().unwrap(), ["a", "b1", "b2", "c"]);
        assert_eq!(c.advance_to_next(), None);
    }

    #[test]
    fn a_dropped_sleep_leaves_the_clock_and_a_due_one_is_ready_at_once() {
        let c = ManualClock::new();
        let nap = c.sleep(s(1));
        assert_eq!(c.sleepers(), 1);
        drop(nap);
        assert_eq!(c.sleepers(), 0);
        assert!(c.sleep(Duration::ZERO).now_or_never().is_some());
        assert!(c.sleep_until(c.now()).now_or_never().is_some());
        // A sleep made before an advance that passes its deadline is ready without a waker.
        let nap = c.sleep(s(1));
        c.advance(s(2));
        assert!(nap.now_or_never().is_some());
    }

    #[test]
    fn timeout_follows_the_clock() {
        let c = ManualClock::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let never = futures::future::poll_fn(move |_| {
            p.fetch_add(1, Ordering::Relaxed);
            Poll::<()>::Pending
        });
        let mut t = Box::pin(timeout(&c, s(5), never));
        assert!((&mut t).now_or_never().is_none());
        c.advance(s(5));
        assert_eq!(t.now_or_never(), Some(None));
        assert!(polls.load(Ordering::Relaxed) >= 1);
        assert_eq!(timeout(&c, s(5), async { 7 }).now_or_never(), Some(Some(7)));
    }
}
