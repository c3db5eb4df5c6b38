//! Fencing: the writes of a fenced caller (the control plane of the master that leads the
//! store) carry the Raft term it was started in, and the store commits them only in that
//! term. A deposed control plane's writes are refused, never applied late.
//!
//! The term travels with the request as a task-local set by the in-process client around
//! one call, so every store write that request makes (the object, its reservations, its
//! dependents) is fenced, without threading it through every storage method.

tokio::task_local! {
    static FENCE: Option<u64>;
}

/// Runs `fut` with its store writes fenced to `term` (`None`: not fenced).
pub(crate) async fn scope<F: std::future::Future>(term: Option<u64>, fut: F) -> F::Output {
    FENCE.scope(term, fut).await
}

/// The term the current request's writes are fenced to.
pub(crate) fn current() -> Option<u64> {
    FENCE.try_with(|t| *t).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fence_holds_inside_its_scope_only() {
        assert_eq!(current(), None);
        assert_eq!(scope(Some(7), async { current() }).await, Some(7));
        assert_eq!(scope(None, async { current() }).await, None);
        assert_eq!(current(), None);
    }
}
