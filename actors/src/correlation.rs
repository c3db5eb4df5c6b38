//! Correlation ids and the sending actor, carried implicitly by the task that handles a message.
//!
//! The correlation id type and its task-local live in `navarch_net::trace`, so that the QUIC
//! layer and the actors agree on one id. This module re-exports them and adds a second
//! task-local, the path of the actor on whose behalf the current task runs, which
//! [`ChildRef`](crate::ChildRef) reads to fill in the sender of a message.

use std::future::Future;

pub use navarch_net::trace::{
    current_correlation, with_correlation, with_correlation_if, CorrelationId, Direction,
    WireEvent, WireTap,
};

use crate::path::ActorPath;

tokio::task_local! {
    static CURRENT_ACTOR: ActorPath;
}

/// The actor on whose behalf the current task runs, if any.
pub fn current_actor() -> Option<ActorPath> {
    CURRENT_ACTOR.try_with(|p| p.clone()).ok()
}

/// Runs `fut` as actor `path` with correlation id `correlation` (if any) in scope.
pub async fn in_actor_scope<F: Future>(
    path: ActorPath,
    correlation: Option<CorrelationId>,
    fut: F,
) -> F::Output {
    match correlation {
        Some(id) => CURRENT_ACTOR.scope(path, with_correlation(id, fut)).await,
        None => CURRENT_ACTOR.scope(path, fut).await,
    }
}
