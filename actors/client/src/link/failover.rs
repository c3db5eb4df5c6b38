//! Which master a node link talks to, and when a failed call may go to another: pure
//! decisions, tested without a network.
//!
//! Properties kept:
//! - one master at a time: every call goes to the current master while it answers;
//! - a transport failure moves the link to the next master in the list (round robin), so
//!   a dead master costs one failure, not one per call;
//! - a call moves on to another master within the same attempt only if it cannot have
//!   done anything where it failed: it was never sent (no connection, the wrong peer, the
//!   service not mounted), or it only reads. A write that may have arrived is not sent
//!   again: its caller is told the outcome is unknown.

use navarch_net::RpcError;

/// The current master among `n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    n: usize,
    current: usize,
}

impl Failover {
    /// Starts with the first of `n` masters (`n` ≥ 1).
    pub fn new(n: usize) -> Failover {
        Failover {
            n: n.max(1),
            current: 0,
        }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// The masters one call tries, in order: the current one, then each other once.
    pub fn order(&self) -> Vec<usize> {
        (0..self.n).map(|i| (self.current + i) % self.n).collect()
    }

    /// A call to `idx` failed in transport. If `idx` is the current master, the next one
    /// becomes current and `true` is returned (the caller drops its connection to `idx`);
    /// a failure on a master the link already left changes nothing.
    pub fn failed(&mut self, idx: usize) -> bool {
        if idx != self.current || self.n == 1 {
            return false;
        }
        self.current = (idx + 1) % self.n;
        true
    }

    /// A call to `idx` was answered: it is the current master from now on. Returns the
    /// master it replaces, if another one was current.
    pub fn answered(&mut self, idx: usize) -> Option<usize> {
        if idx == self.current || idx >= self.n {
            return None;
        }
        let old = self.current;
        self.current = idx;
        Some(old)
    }
}

/// What to do after a call to one master failed with `e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Try the next master: the call did nothing where it failed, or only reads.
    TryNext,
    /// Stop: the failure is the caller's answer (a write whose outcome is unknown, or an
    /// error another master would give too).
    Stop,
}

/// The decision after a failed call. `sent` says whether the request may have left: the
/// connection was up when the call was made.
pub fn after_failure(e: &RpcError, sent: bool, read: bool) -> After {
    match e {
        // Nothing was done: the request did not reach a service.
        RpcError::Unavailable(_) | RpcError::WrongPeer(_) | RpcError::RateLimited { .. } => {
            After::TryNext
        }
        RpcError::Unreachable(_) | RpcError::Closed | RpcError::Timeout => {
            if !sent || read {
                After::TryNext
            } else {
                After::Stop
            }
        }
        // The master refused or could not serve what we sent: another master would too.
        RpcError::Refused(_)
        | RpcError::FrameTooLarge { .. }
        | RpcError::Decode(_)
        | RpcError::Unsupported(_)
        | RpcError::Remote(_) => After::Stop,
    }
}

/// Whether a failure says the master (or the way to it) is gone, so that the link moves
/// to the next one.
pub fn is_transport(e: &RpcError) -> bool {
    matches!(
        e,
        RpcError::Unreachable(_)
            | RpcError::Closed
            | RpcError::Timeout
            | RpcError::Unavailable(_)
            | RpcError::WrongPeer(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_stay_on_a_master_until_it_fails_then_move_round_robin() {
        let mut f = Failover::new(3);
        assert_eq!(f.order(), vec![0, 1, 2]);
        assert!(f.failed(0));
        assert_eq!(f.current(), 1);
        assert_eq!(f.order(), vec![1, 2, 0]);
        // A late failure of a call still on the old master moves nothing.
        assert!(!f.failed(0));
        assert_eq!(f.current(), 1);
        assert!(f.failed(1));
        assert!(f.failed(2));
        assert_eq!(f.current(), 0, "wraps around");
        // A call answered by another master than the current one makes it current.
        assert_eq!(f.answered(2), Some(0));
        assert_eq!(f.current(), 2);
        assert_eq!(f.answered(2), None);
        assert_eq!(f.answered(7), None);
    }

    #[test]
    fn one_master_stays_current() {
        let mut f = Failover::new(1);
        assert!(!f.failed(0));
        assert_eq!(f.order(), vec![0]);
        assert_eq!(Failover::new(0).order(), vec![0]);
    }

    #[test]
    fn only_what_cannot_have_been_done_twice_goes_to_the_next_master() {
        let closed = RpcError::Closed;
        let cases = [
            // (error, sent, read, decision)
            (closed.clone(), false, false, After::TryNext),
            (closed.clone(), true, true, After::TryNext),
            (closed, true, false, After::Stop),
            (RpcError::Timeout, true, false, After::Stop),
            (RpcError::Timeout, true, true, After::TryNext),
            (
                RpcError::Unreachable("x".into()),
                false,
                false,
                After::TryNext,
            ),
            (
                RpcError::Unavailable("stopping".into()),
                true,
                false,
                After::TryNext,
            ),
            (
                RpcError::WrongPeer("m9".into()),
                true,
                false,
                After::TryNext,
            ),
            (
                RpcError::Refused("no cert".into()),
                false,
                true,
                After::Stop,
            ),
            (RpcError::Remote("panicked".into()), true, true, After::Stop),
        ];
        for (e, sent, read, want) in cases {
            assert_eq!(
                after_failure(&e, sent, read),
                want,
                "{e:?} sent={sent} read={read}"
            );
        }
        assert!(is_transport(&RpcError::Timeout));
        assert!(!is_transport(&RpcError::Refused("x".into())));
    }
}
