//! The message tap: a bounded in-memory ring of every message delivered to a supervised actor
//! and every message that crossed QUIC, with live followers.
//!
//! One [`MessageTap`] per process. Host actors record each envelope they handle; the QUIC layer
//! records through the [`WireTap`] trait, so local and remote hops land in the same ring, in one
//! sequence. Records carry no payload except an opt-in summary that is always passed through
//! [`redact::scrub`](crate::redact::scrub).
//!
//! Readers either take the recent past ([`MessageTap::recent`]) or follow live
//! ([`MessageTap::follow`]); a follower that falls behind by more than the follow buffer is told
//! how many records it missed instead of slowing the writers down.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::Stream;
use serde::{Serialize, Serializer};
use tokio::sync::broadcast;

use crate::clock::{Clock, SystemClock};
use crate::correlation::{CorrelationId, Direction, WireEvent, WireTap};
use crate::path::path_has_prefix;

/// Sizes of the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapConfig {
    /// Records kept in the ring; the oldest is dropped past this.
    pub capacity: usize,
    /// Records a live follower may fall behind before it is told it lagged.
    pub follow_buffer: usize,
    /// Whether recording starts enabled.
    pub enabled: bool,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            capacity: 10_000,
            follow_buffer: 4096,
            enabled: true,
        }
    }
}

/// How a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Delivered to a host actor in this process.
    Local,
    /// Sent to another process over QUIC.
    QuicOut,
    /// Received from another process over QUIC.
    QuicIn,
}

/// One recorded message.
#[derive(Debug, Clone, Serialize)]
pub struct TapRecord {
    /// Position in this process's tap, strictly increasing.
    pub seq: u64,
    /// When the message was delivered (or, for QUIC, sent or received).
    #[serde(serialize_with = "ser_rfc3339")]
    pub time: SystemTime,
    pub via: Via,
    /// The sending actor or peer, when known.
    pub sender: Option<Arc<str>>,
    /// The receiving actor or peer.
    pub receiver: Arc<str>,
    pub message_type: Cow<'static, str>,
    /// Bytes on the wire; 0 for in-process messages, which are never encoded.
    pub encoded_size: usize,
    #[serde(rename = "handling_us", serialize_with = "ser_micros")]
    pub handling: Duration,
    /// `ok`, or what went wrong (`error: ...`, `panicked: ...`, `killed`, ...).
    pub outcome: Cow<'static, str>,
    #[serde(serialize_with = "ser_correlation")]
    pub correlation: Option<CorrelationId>,
    /// A short, secret-free description of the payload, when the message type offers one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl TapRecord {
    /// A record of an in-process delivery, dated by the system's wall clock; `seq` is assigned
    /// by the tap. Inside the kit, [`MessageTap::local_record`] dates it by the tap's clock.
    pub fn local(receiver: Arc<str>, message_type: Cow<'static, str>) -> Self {
        TapRecord {
            seq: 0,
            time: SystemTime::now(),
            via: Via::Local,
            sender: None,
            receiver,
            message_type,
            encoded_size: 0,
            handling: Duration::ZERO,
            outcome: Cow::Borrowed("ok"),
            correlation: None,
            summary: None,
        }
    }
}

/// Which records a reader wants. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapFilter {
    /// Sender or receiver lies at or under this path (segment-wise).
    pub prefix: Option<String>,
    /// Exact message type.
    pub message_type: Option<String>,
    pub correlation: Option<CorrelationId>,
    /// Only records with a sequence number above this.
    pub since: Option<u64>,
}

impl TapFilter {
    /// True if `r` passes the filter.
    pub fn matches(&self, r: &TapRecord) -> bool {
        if self.since.is_some_and(|s| r.seq <= s) {
            return false;
        }
        if let Some(t) = &self.message_type {
            if r.message_type != t.as_str() {
                return false;
            }
        }
        if let Some(c) = &self.correlation {
            if r.correlation.as_ref() != Some(c) {
                return false;
            }
        }
        if let Some(p) = &self.prefix {
            let under = |s: &str| path_has_prefix(s, p);
            if !under(&r.receiver) && !r.sender.as_deref().is_some_and(under) {
                return false;
            }
        }
        true
    }
}

/// What a live follower receives.
#[derive(Debug, Clone)]
pub enum FollowItem {
    Record(Arc<TapRecord>),
    /// The follower fell behind and this many records were skipped.
    Lagged(u64),
}

/// The process's message tap. Cheap to clone; all clones share one ring.
#[derive(Clone)]
pub struct MessageTap {
    inner: Arc<TapInner>,
}

struct TapInner {
    enabled: AtomicBool,
    capacity: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<TapRecord>>,
    /// Live followers; records are broadcast only when there is one. Changed under `ring`.
    followers: AtomicUsize,
    /// A wall-clock time and the monotonic instant it was taken at, to date records from an
    /// `Instant` the writer already has instead of reading the clock again.
    epoch: (SystemTime, Instant),
    clock: Arc<dyn Clock>,
}

/// Unsubscribes a follower when its stream is dropped.
struct Follower(Arc<TapInner>);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ring = self.0.ring.lock().unwrap_or_else(|e| e.into_inner());
        self.0.followers.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Ring {
    next_seq: u64,
    /// Records by value: appending to a full ring reuses its storage, with no allocation.
    records: VecDeque<TapRecord>,
}

impl std::fmt::Debug for MessageTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageTap")
            .field("enabled", &self.enabled())
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MessageTap {
    fn default() -> Self {
        MessageTap::new(TapConfig::default())
    }
}

impl MessageTap {
    /// A new, empty tap on the system clock.
    pub fn new(config: TapConfig) -> Self {
        MessageTap::with_clock(config, SystemClock::shared())
    }

    /// A new, empty tap that dates its records by `clock`.
    pub fn with_clock(config: TapConfig, clock: Arc<dyn Clock>) -> Self {
        let capacity = config.capacity.max(1);
        let (live, _) = broadcast::channel(config.follow_buffer.max(1));
        MessageTap {
            inner: Arc::new(TapInner {
                enabled: AtomicBool::new(config.enabled),
                capacity,
                ring: Mutex::new(Ring {
                    next_seq: 1,
                    records: VecDeque::with_capacity(capacity.min(65_536)),
                }),
                live,
                followers: AtomicUsize::new(0),
                epoch: (clock.wall(), clock.now()),
                clock,
            }),
        }
    }

    /// Whether records are being taken. Writers check this before building a record.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Turns recording on or off; what is in the ring stays.
    pub fn set_enabled(&self, on: bool) {
        self.inner.enabled.store(on, Ordering::Relaxed);
    }

    /// The clock records are dated by (the root's clock).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// A record of an in-process delivery at the tap clock's current time.
    pub fn local_record(&self, receiver: Arc<str>, message_type: Cow<'static, str>) -> TapRecord {
        TapRecord {
            time: self.inner.clock.wall(),
            ..TapRecord::local(receiver, message_type)
        }
    }

    /// The wall-clock time of `at`, without reading the clock.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        let (wall, mono) = self.inner.epoch;
        wall + at.saturating_duration_since(mono)
    }

    /// The ring's size limit.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Records currently held.
    pub fn len(&self) -> usize {
        self.ring().records.len()
    }

    /// True when the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A writer never panics while holding the lock, but if one did the ring is still sound.
        self.inner.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `record` (its `seq` is overwritten) unless the tap is disabled; returns the seq.
    pub fn record(&self, mut record: TapRecord) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        if let Some(s) = record.summary.take() {
            record.summary = Some(crate::redact::scrub(&s));
        }
        let mut ring = self.ring();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        record.seq = seq;
        // Sent under the lock so followers see records in seq order.
        if self.inner.followers.load(Ordering::Relaxed) > 0 {
            let _ = self.inner.live.send(Arc::new(record.clone()));
        }
        if ring.records.len() >= self.inner.capacity {
            ring.records.pop_front();
        }
        ring.records.push_back(record);
        Some(seq)
    }

    /// The most recent `limit` records matching `filter`, oldest first.
    pub fn recent(&self, filter: &TapFilter, limit: usize) -> Vec<TapRecord> {
        let ring = self.ring();
        let mut out: Vec<_> = ring
            .records
            .iter()
            .rev()
            .take_while(|r| filter.since.is_none_or(|s| r.seq > s))
            .filter(|r| filter.matches(r))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Follows matching records live. With `filter.since` set, records after it that are still
    /// in the ring come first, then live ones, with no gap and no duplicate.
    ///
    /// The stream never ends; dropping it unsubscribes.
    pub fn follow(&self, filter: TapFilter) -> impl Stream<Item = FollowItem> + Send + 'static {
        let (backlog, rx, follower) = {
            let ring = self.ring();
            let rx = self.inner.live.subscribe();
            self.inner.followers.fetch_add(1, Ordering::Relaxed);
            let follower = Follower(self.inner.clone());
            let backlog: VecDeque<_> = match filter.since {
                Some(_) => ring
                    .records
                    .iter()
                    .filter(|r| filter.matches(r))
                    .map(|r| Arc::new(r.clone()))
                    .collect(),
                None => VecDeque::new(),
            };
            (backlog, rx, follower)
        };
        futures::stream::unfold(
            (backlog, rx, filter, follower),
            |(mut backlog, mut rx, filter, follower)| async move {
                if let Some(r) = backlog.pop_front() {
                    return Some((FollowItem::Record(r), (backlog, rx, filter, follower)));
                }
                loop {
                    match rx.recv().await {
                        Ok(r) if filter.matches(&r) => {
                            return Some((FollowItem::Record(r), (backlog, rx, filter, follower)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            return Some((FollowItem::Lagged(n), (backlog, rx, filter, follower)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        )
    }
}

impl WireTap for MessageTap {
    fn record(&self, event: WireEvent) {
        if !self.enabled() {
            return;
        }
        let (via, sender, receiver) = match event.direction {
            Direction::Outbound => (Via::QuicOut, event.local, event.peer),
            Direction::Inbound => (Via::QuicIn, event.peer, event.local),
        };
        MessageTap::record(
            self,
            TapRecord {
                seq: 0,
                time: event.at,
                via,
                sender: Some(Arc::from(sender)),
                receiver: Arc::from(receiver),
                message_type: Cow::Owned(event.method),
                encoded_size: event.size,
                handling: event.elapsed,
                outcome: Cow::Owned(event.outcome),
                correlation: event.correlation,
                summary: None,
            },
        );
    }
}

fn ser_rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(*t))
}

fn ser_micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn ser_correlation<S: Serializer>(c: &Option<CorrelationId>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

/// A UTC timestamp formatted as RFC 3339 with microseconds.
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil date from days since 1970-01-01 (proleptic Gregorian), after H. Hinnant.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            d.subsec_micros()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(receiver: &str, ty: &'static str) -> TapRecord {
        TapRecord::local(Arc::from(receiver), Cow::Borrowed(ty))
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_767_225_599, "2025-12-31T23:59:59.000000Z"),
        ];
        for (secs, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(Rfc3339(t).to_string(), want);
        }
        let t = UNIX_EPOCH + Duration::from_micros(1_500_000);
        assert_eq!(Rfc3339(t).to_string(), "1970-01-01T00:00:01.500000Z");
    }

    #[test]
    fn ring_is_bounded_and_ordered() {
        let tap = MessageTap::new(TapConfig {
            capacity: 3,
            ..TapConfig::default()
        });
        for _ in 0..10 {
            tap.record(rec("/a", "Ping"));
        }
        let all = tap.recent(&TapFilter::default(), usize::MAX);
        assert_eq!(
            all.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert_eq!(tap.len(), 3);
    }

    #[test]
    fn filters_select_by_prefix_type_correlation_and_since() {
        let tap = MessageTap::default();
        let id = CorrelationId(7);
        tap.record(rec("/m/c/deployment/default/web", "Scale"));
        tap.record(TapRecord {
            correlation: Some(id),
            ..rec("/m/c/deployment/default/api", "Scale")
        });
        tap.record(TapRecord {
            sender: Some(Arc::from("/m/c/deployment/default/web")),
            ..rec("/m/c/replicaset/default/web-1", "Sync")
        });
        let seqs = |f: TapFilter| {
            tap.recent(&f, 100)
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        let table = [
            (TapFilter::default(), vec![1, 2, 3]),
            (
                TapFilter {
                    prefix: Some("/m/c/deployment/default/web".into()),
                    ..TapFilter::default()
                },
                vec![1, 3],
            ),
            (
                TapFilter {
                    message_type: Some("Scale".into()),
                    ..TapFilter::default()
                },
                vec![1, 2],
            ),
            (
                TapFilter {
                    correlation: Some(id),
                    ..TapFilter::default()
                },
                vec![2],
            ),
            (
                TapFilter {
                    since: Some(1),
                    ..TapFilter::default()
                },
                vec![2, 3],
            ),
        ];
        for (f, want) in table {
            assert_eq!(seqs(f.clone()), want, "{f:?}");
        }
        assert_eq!(tap.recent(&TapFilter::default(), 2).len(), 2);
        assert_eq!(tap.recent(&TapFilter::default(), 2)[0].seq, 2);
    }

    #[test]
    fn followers_are_counted_until_their_stream_is_dropped() {
        let tap = MessageTap::default();
        let a = tap.follow(TapFilter::default());
        let b = tap.follow(TapFilter::default());
        assert_eq!(tap.inner.followers.load(Ordering::Relaxed), 2);
        drop(a);
        drop(b);
        assert_eq!(tap.inner.followers.load(Ordering::Relaxed), 0);
        let t = Instant::now();
        let wall = tap.wall_time(t);
        let now = SystemTime::now();
        assert!(now.duration_since(wall).unwrap_or_default() < Duration::from_secs(1));
    }

    #[test]
    fn disabled_tap_records_nothing_and_summaries_are_scrubbed() {
        let tap = MessageTap::default();
        tap.set_enabled(false);
        assert_eq!(tap.record(rec("/a", "Ping")), None);
        tap.set_enabled(true);
        tap.record(TapRecord {
            summary: Some("join token=abcdef".into()),
            ..rec("/a", "Join")
        });
        let r = &tap.recent(&TapFilter::default(), 1)[0];
        assert!(!r.summary.as_deref().unwrap_or("").contains("abcdef"));
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["receiver"], "/a");
        assert_eq!(json["outcome"], "ok");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
    }
}
