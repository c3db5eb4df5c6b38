//! Protection of what unauthenticated peers can reach: token buckets for join attempts (per
//! source address and overall) and a log throttle, so that a flood of bad joins or
//! handshakes costs neither signing work nor one log line each.
//!
//! Both are pure state machines over the `Instant`s their callers pass, tested without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket's shape: `burst` attempts at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Attempts allowed at once.
    pub burst: u32,
    /// Attempts added back per second.
    pub per_second: f64,
}

/// How fast `net.join` may be attempted, and how often refusals are logged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JoinLimits {
    /// Per source IP address (not port: every join comes from a fresh port).
    pub per_source: Rate,
    /// All sources together.
    pub overall: Rate,
    /// At most one WARN line per this interval for refused joins, with the count of the
    /// refusals not logged since the previous line.
    pub log_interval: Duration,
}

impl Default for JoinLimits {
    /// 5 attempts at once per address then one every 2 s; 20 at once overall then 5 a second;
    /// one refusal line every 10 s.
    fn default() -> Self {
        JoinLimits {
            per_source: Rate {
                burst: 5,
                per_second: 0.5,
            },
            overall: Rate {
                burst: 20,
                per_second: 5.0,
            },
            log_interval: Duration::from_secs(10),
        }
    }
}

/// Source addresses remembered at most; beyond it, buckets that refilled are forgotten.
const MAX_SOURCES: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_second).min(f64::from(rate.burst));
        self.at = now;
    }

    /// How long until one token is there (zero if one is).
    fn wait(&self, rate: Rate) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else if rate.per_second <= 0.0 {
            Duration::MAX
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate.per_second)
        }
    }
}

/// Token buckets for join attempts.
#[derive(Debug)]
pub(crate) struct JoinLimiter {
    limits: JoinLimits,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    overall: Option<Bucket>,
    sources: HashMap<IpAddr, Bucket>,
}

impl JoinLimiter {
    pub(crate) fn new(limits: JoinLimits) -> JoinLimiter {
        JoinLimiter {
            limits,
            state: Mutex::new(LimiterState {
                overall: None,
                sources: HashMap::new(),
            }),
        }
    }

    /// Takes one attempt for `source` at `now`, or says how long to wait for one. A refused
    /// attempt takes nothing.
    pub(crate) fn admit(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let JoinLimits {
            per_source,
            overall,
            ..
        } = self.limits;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.sources.len() >= MAX_SOURCES && !st.sources.contains_key(&source) {
            st.sources.retain(|_, b| {
                b.refill(per_source, now);
                b.tokens < f64::from(per_source.burst)
            });
            if st.sources.len() >= MAX_SOURCES {
                // Still full of active sources: the overall bucket is the limit that holds.
                st.sources.clear();
            }
        }
        let mut all = st.overall.unwrap_or_else(|| Bucket::full(overall, now));
        all.refill(overall, now);
        let mut src = st
            .sources
            .get(&source)
            .copied()
            .unwrap_or_else(|| Bucket::full(per_source, now));
        src.refill(per_source, now);
        let wait = src.wait(per_source).max(all.wait(overall));
        if wait.is_zero() {
            src.tokens -= 1.0;
            all.tokens -= 1.0;
        }
        st.sources.insert(source, src);
        st.overall = Some(all);
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }
}

/// At most one log line per interval; counts the lines it held back.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the previous line)` if a line may be written at `now`; `None`
    /// (and one more held back) otherwise.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held) = &mut *st;
        match last {
            Some(at) if now.saturating_duration_since(*at) < self.interval => {
                *held += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_source: (u32, f64), overall: (u32, f64)) -> JoinLimits {
        JoinLimits {
            per_source: Rate {
                burst: per_source.0,
                per_second: per_source.1,
            },
            overall: Rate {
                burst: overall.0,
                per_second: overall.1,
            },
            log_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let l = JoinLimiter::new(limits((3, 1.0), (100, 100.0)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit(a, t0), Ok(()));
        }
        let wait = l.admit(a, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // Refused attempts take nothing: after the wait exactly one more is allowed.
        for _ in 0..10 {
            assert!(l.admit(a, t0 + Duration::from_millis(500)).is_err());
        }
        assert_eq!(l.admit(a, t0 + Duration::from_secs(1)), Ok(()));
        assert!(l.admit(a, t0 + Duration::from_secs(1)).is_err());
        // Another source has its own bucket.
        assert_eq!(l.admit("10.0.0.2".parse().unwrap(), t0), Ok(()));
    }

    #[test]
    fn the_overall_bucket_holds_against_many_sources() {
        let l = JoinLimiter::new(limits((5, 1.0), (4, 2.0)));
        let t0 = Instant::now();
        let admitted = (1..=50u8)
            .filter(|i| l.admit(IpAddr::from([10, 0, 1, *i]), t0).is_ok())
            .count();
        assert_eq!(admitted, 4);
        let wait = l.admit(IpAddr::from([10, 0, 2, 1]), t0).unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(l
            .admit(IpAddr::from([10, 0, 2, 1]), t0 + Duration::from_millis(500))
            .is_ok());
    }

    #[test]
    fn many_sources_stay_bounded() {
        let l = JoinLimiter::new(limits((1, 1.0), (u32::MAX, 1e9)));
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 * 2) {
            let _ = l.admit(IpAddr::from(i.to_be_bytes()), t0);
        }
        let n = l.state.lock().unwrap().sources.len();
        assert!(n <= MAX_SOURCES, "{n} sources remembered");
    }

    #[test]
    fn the_log_throttle_writes_one_line_per_interval_with_the_count_held_back() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0));
        for i in 1..=99 {
            assert_eq!(t.admit(t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(t.admit(t0 + Duration::from_secs(10)), Some(99));
        assert_eq!(t.admit(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(30)), Some(1));
    }
}
