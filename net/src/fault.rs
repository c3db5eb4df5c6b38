//! Fault injection for tests and chaos runs: per-peer rules (cut, drop, delay) that the
//! endpoint applies to outbound calls (by peer name) and inbound requests (by caller CN).

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Which traffic a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultDirection {
    /// Calls this endpoint makes to the peer.
    Outbound,
    /// Requests this endpoint receives from the peer.
    Inbound,
    /// Both.
    Both,
}

impl FaultDirection {
    fn covers(self, d: FaultDirection) -> bool {
        self == FaultDirection::Both || self == d
    }
}

/// What happens to matching traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// Each message is silently discarded with this probability (0.0..=1.0).
    Drop {
        /// Probability of discarding.
        probability: f64,
    },
    /// Each message waits this long before it is sent or handled.
    Delay {
        /// Milliseconds.
        millis: u64,
    },
    /// Nothing gets through; open streams end with an error.
    Cut,
}

/// One rule: `fault` for traffic with `peer` in `direction`. The peer `"*"` matches every peer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FaultRule {
    /// Peer name (outbound) or certificate CN (inbound); `"*"` for all.
    pub peer: String,
    /// Which traffic.
    pub direction: FaultDirection,
    /// What happens to it.
    pub fault: Fault,
}

struct Inner {
    rules: Mutex<Vec<FaultRule>>,
    generation: watch::Sender<u64>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            rules: Mutex::new(Vec::new()),
            generation: watch::channel(0).0,
        }
    }
}

/// A shared, mutable set of fault rules (cheap to clone; clones share the rules).
#[derive(Clone, Default)]
pub struct FaultInjector {
    inner: Arc<Inner>,
}

impl fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjector")
            .field("rules", &self.rules())
            .finish()
    }
}

/// What the endpoint should do with one message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    Pass,
    Cut,
    Drop,
    Delay(std::time::Duration),
}

impl FaultInjector {
    /// An injector with no rules.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.inner.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.inner
            .generation
            .send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Adds `rule`, replacing any rule for the same peer and direction.
    pub fn set(&self, rule: FaultRule) {
        tracing::info!(peer = %rule.peer, direction = ?rule.direction, fault = ?rule.fault, "fault rule set");
        {
            let mut rules = self.lock();
            rules.retain(|r| !(r.peer == rule.peer && r.direction == rule.direction));
            rules.push(rule);
        }
        self.bump();
    }

    /// Removes the rules for `peer`, or all rules with `None`.
    pub fn clear(&self, peer: Option<&str>) {
        tracing::info!(peer = peer.unwrap_or("*all*"), "fault rules cleared");
        {
            let mut rules = self.lock();
            match peer {
                Some(p) => rules.retain(|r| r.peer != p),
                None => rules.clear(),
            }
        }
        self.bump();
    }

    /// The current rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// The rule that applies to `peer` in `direction` (an exact peer match wins over `"*"`,
    /// a one-direction rule over `Both`).
    pub fn find(&self, peer: &str, direction: FaultDirection) -> Option<Fault> {
        let rules = self.lock();
        let score = |r: &FaultRule| -> Option<u8> {
            if !r.direction.covers(direction) {
                return None;
            }
            let peer_score = if r.peer == peer {
                2
            } else if r.peer == "*" {
                0
            } else {
                return None;
            };
            Some(peer_score + u8::from(r.direction != FaultDirection::Both))
        };
        rules
            .iter()
            .filter_map(|r| score(r).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| r.fault.clone())
    }

    /// Decides the fate of one message (rolls the dice for `Drop`).
    pub(crate) fn verdict(&self, peer: &str, direction: FaultDirection) -> Verdict {
        match self.find(peer, direction) {
            None => Verdict::Pass,
            Some(Fault::Cut) => Verdict::Cut,
            Some(Fault::Delay { millis }) => {
                Verdict::Delay(std::time::Duration::from_millis(millis))
            }
            Some(Fault::Drop { probability }) => {
                let p = if probability.is_nan() {
                    0.0
                } else {
                    probability.clamp(0.0, 1.0)
                };
                if rand::random::<f64>() < p {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                }
            }
        }
    }

    /// True if traffic with `peer` in `direction` is cut right now.
    pub fn is_cut(&self, peer: &str, direction: FaultDirection) -> bool {
        matches!(self.find(peer, direction), Some(Fault::Cut))
    }

    /// A receiver that changes whenever the rules change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_clear_removes() {
        let f = FaultInjector::default();
        f.set(FaultRule {
            peer: "a".into(),
            direction: FaultDirection::Outbound,
            fault: Fault::Cut,
        });
        f.set(FaultRule {
            peer: "a".into(),
            direction: FaultDirection::Outbound,
            fault: Fault::Delay { millis: 5 },
        });
        f.set(FaultRule {
            peer: "a".into(),
            direction: FaultDirection::Inbound,
            fault: Fault::Cut,
        });
        assert_eq!(f.rules().len(), 2);
        assert_eq!(
            f.verdict("a", FaultDirection::Outbound),
            Verdict::Delay(std::time::Duration::from_millis(5))
        );
        assert_eq!(f.verdict("a", FaultDirection::Inbound), Verdict::Cut);
        assert_eq!(f.verdict("b", FaultDirection::Inbound), Verdict::Pass);
        f.set(FaultRule {
            peer: "*".into(),
            direction: FaultDirection::Both,
            fault: Fault::Drop { probability: 1.0 },
        });
        assert_eq!(f.verdict("b", FaultDirection::Inbound), Verdict::Drop);
        assert_eq!(f.verdict("a", FaultDirection::Inbound), Verdict::Cut);
        f.clear(Some("a"));
        assert_eq!(f.rules().len(), 1);
        f.clear(None);
        assert!(f.rules().is_empty());
    }

    #[test]
    fn serde_shape() {
        let r = FaultRule {
            peer: "n1".into(),
            direction: FaultDirection::Both,
            fault: Fault::Drop { probability: 0.5 },
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"peer":"n1","direction":"both","fault":{"kind":"drop","probability":0.5}}"#
        );
        assert_eq!(serde_json::from_str::<FaultRule>(&j).unwrap(), r);
        let cut: Fault = serde_json::from_str(r#"{"kind":"cut"}"#).unwrap();
        assert_eq!(cut, Fault::Cut);
    }
}
