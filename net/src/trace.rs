//! Correlation ids carried across calls (task-local on each side) and the wire tap hook
//! that observes every call an endpoint makes or serves.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// An id that follows one logical operation across nodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CorrelationId(pub u128);

impl CorrelationId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        CorrelationId(rand::random::<u128>())
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({self})")
    }
}

/// A string that is not a correlation id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid correlation id {value:?}: expected 32 lowercase hex characters")]
pub struct ParseCorrelationError {
    /// The rejected input (truncated to 64 characters).
    pub value: String,
}

impl FromStr for CorrelationId {
    type Err = ParseCorrelationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(ParseCorrelationError {
                value: s.chars().take(64).collect(),
            });
        }
        u128::from_str_radix(s, 16)
            .map(CorrelationId)
            .map_err(|_| ParseCorrelationError {
                value: s.to_string(),
            })
    }
}

tokio::task_local! {
    /// The correlation id of the operation the current task works for.
    pub static CORRELATION: CorrelationId;
}

/// The correlation id of the current task, if one was set with [`with_correlation`].
pub fn current_correlation() -> Option<CorrelationId> {
    CORRELATION.try_with(|c| *c).ok()
}

/// Runs `f` with `id` as the current correlation id.
pub async fn with_correlation<F: Future>(id: CorrelationId, f: F) -> F::Output {
    CORRELATION.scope(id, f).await
}

/// Runs `f` with `id` as the current correlation id when there is one, else as it is.
pub async fn with_correlation_if<F: Future>(id: Option<CorrelationId>, f: F) -> F::Output {
    match id {
        Some(id) => with_correlation(id, f).await,
        None => f.await,
    }
}

/// Which way a message went, seen from the endpoint that records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A call or stream this endpoint opened.
    Outbound,
    /// A request this endpoint served.
    Inbound,
}

/// One call or stream open, as seen by one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct WireEvent {
    /// When the call started.
    pub at: SystemTime,
    /// Outbound (we called) or inbound (we served).
    pub direction: Direction,
    /// This endpoint's name.
    pub local: String,
    /// The peer's name (outbound), certificate CN (inbound) or "unauthenticated".
    pub peer: String,
    /// The method called.
    pub method: String,
    /// Encoded bytes of the request frame.
    pub size: usize,
    /// How long the call (or stream open) took.
    pub elapsed: Duration,
    /// "ok" or the error.
    pub outcome: String,
    /// The correlation id sent with the request.
    pub correlation: Option<CorrelationId>,
}

/// Receives a [`WireEvent`] for every call an endpoint makes or serves.
pub trait WireTap: Send + Sync + 'static {
    /// Records one event; must not block.
    fn record(&self, event: WireEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_display_round_trips() {
        let id = CorrelationId(0xabc);
        let s = id.to_string();
        assert_eq!(s, "00000000000000000000000000000abc");
        assert_eq!(s.parse::<CorrelationId>().unwrap(), id);
        let r = CorrelationId::new_random();
        assert_eq!(r.to_string().parse::<CorrelationId>().unwrap(), r);
        assert!("ABC".parse::<CorrelationId>().is_err());
        assert!("0000000000000000000000000000ABCD"
            .parse::<CorrelationId>()
            .is_err());
    }

    #[tokio::test]
    async fn task_local_scope() {
        assert_eq!(current_correlation(), None);
        let id = CorrelationId(7);
        let got = with_correlation(id, async { current_correlation() }).await;
        assert_eq!(got, Some(id));
    }
}
