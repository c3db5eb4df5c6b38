//! Restart policy: bounded exponential backoff and restart intensity (N restarts within T).
//!
//! Pure decisions, no clock of their own: callers pass `now`. The supervisor keeps one
//! [`RestartTracker`] per child and one for itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Exponential backoff: the first restart waits `initial`, each further one `factor` times
/// longer, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: u32,
}

impl Backoff {
    /// The delay before restart number `attempt` (1-based) within the current window.
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempt {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            factor: 2,
        }
    }
}

/// At most `max_restarts` restarts within any window of length `within`; one more failure
/// escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub within: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity {
            max_restarts: 5,
            within: Duration::from_secs(60),
        }
    }
}

/// Backoff and intensity together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestartPolicy {
    pub backoff: Backoff,
    pub intensity: Intensity,
}

/// What a supervisor does when one of its children exceeds its restart intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escalation {
    /// Erlang style: the failure escalates to the kind supervisor, which restarts itself, that
    /// is stops every child and starts them all again from their source. This counts against
    /// the supervisor's own intensity; past it the supervisor gives up, stops its children and
    /// reports to the process root, which logs and keeps every other kind running.
    #[default]
    RestartKind,
    /// Leave the failing child stopped (status `failed`) and report it to the process root. A
    /// later change of its object starts it again with a clean record.
    ParkChild,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart after `after`; this is restart number `attempt` in the current window.
    Restart { after: Duration, attempt: u32 },
    /// Too many failures within the window: escalate.
    Escalate { failures: u32 },
}

/// The recent failures of one actor.
#[derive(Debug, Clone, Default)]
pub struct RestartTracker {
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> Verdict {
        let window = policy.intensity.within;
        while let Some(&first) = self.recent.front() {
            if now.saturating_duration_since(first) >= window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        let failures = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if failures > policy.intensity.max_restarts {
            Verdict::Escalate { failures }
        } else {
            Verdict::Restart {
                after: policy.backoff.delay(failures),
                attempt: failures,
            }
        }
    }

    /// Forgets past failures (after an escalation has been dealt with).
    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let b = Backoff {
            initial: ms(10),
            max: ms(100),
            factor: 3,
        };
        let got: Vec<_> = (1..=6).map(|n| b.delay(n)).collect();
        assert_eq!(got, vec![ms(10), ms(30), ms(90), ms(100), ms(100), ms(100)]);
        assert_eq!(b.delay(u32::MAX), ms(100));
        let flat = Backoff { factor: 0, ..b };
        assert_eq!(flat.delay(5), ms(10));
    }

    #[test]
    fn tracker_escalates_past_intensity_within_the_window() {
        let policy = RestartPolicy {
            backoff: Backoff {
                initial: ms(1),
                max: ms(8),
                factor: 2,
            },
            intensity: Intensity {
                max_restarts: 3,
                within: Duration::from_secs(10),
            },
        };
        let t0 = Instant::now();
        let mut t = RestartTracker::default();
        let table = [
            (
                0,
                Verdict::Restart {
                    after: ms(1),
                    attempt: 1,
                },
            ),
            (
                1,
                Verdict::Restart {
                    after: ms(2),
                    attempt: 2,
                },
            ),
            (
                2,
                Verdict::Restart {
                    after: ms(4),
                    attempt: 3,
                },
            ),
            (3, Verdict::Escalate { failures: 4 }),
        ];
        for (secs, want) in table {
            assert_eq!(t.on_failure(&policy, t0 + Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn tracker_forgets_failures_outside_the_window() {
        let policy = RestartPolicy {
            backoff: Backoff::default(),
            intensity: Intensity {
                max_restarts: 1,
                within: Duration::from_secs(5),
            },
        };
        let t0 = Instant::now();
        let mut t = RestartTracker::default();
        for i in 0..10 {
            // One failure every 5 s never exceeds 1 in 5 s.
            let v = t.on_failure(&policy, t0 + Duration::from_secs(5 * i));
            assert!(matches!(v, Verdict::Restart { attempt: 1, .. }), "{v:?}");
        }
        assert!(matches!(
            t.on_failure(&policy, t0 + Duration::from_secs(46)),
            Verdict::Escalate { failures: 2 }
        ));
        t.reset();
        assert!(matches!(
            t.on_failure(&policy, t0 + Duration::from_secs(47)),
            Verdict::Restart { attempt: 1, .. }
        ));
    }
}
