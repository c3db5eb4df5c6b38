//! The simulated API's refusals, worded as the real API's, with what a caller may do about
//! them.

use thiserror::Error;

/// Why a simulated API request did not do what was asked (or may not have).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    /// A precondition (resourceVersion, uid) did not hold, or the pod is bound already:
    /// read again, then decide again.
    #[error("conflict on {kind} {name:?}: {reason}")]
    Conflict {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// The request failed before it reached the store: nothing changed, retrying is safe.
    #[error("the request failed before it reached the store")]
    Unavailable,
    /// The request was applied but its answer was lost: the outcome is unknown to the
    /// caller, which must read before it retries.
    #[error("the request timed out: its outcome is unknown")]
    Timeout,
}

impl ApiError {
    /// Whether the refusal is a conflict (the scheduler reads it as "bound already").
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Conflict { .. })
    }

    /// Whether the object is not there (a binding's pod deleted).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }
}
