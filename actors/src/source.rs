//! The source of truth an object actor rebuilds its state from after every (re)start.

use futures::future::BoxFuture;

use crate::path::ObjectKey;

/// Why an object could not be read from its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source could not answer now; retrying may help.
    #[error("source unavailable: {0}")]
    Unavailable(String),
    /// The stored object could not be understood; retrying will not help until it changes.
    #[error("stored object is invalid: {0}")]
    Invalid(String),
}

/// Reads objects of one kind, as stored (later: through the API layer over the store).
///
/// `Ok(None)` means the object no longer exists: the actor stops for good and its supervisor
/// forgets it.
pub trait Source<O>: Send + Sync + 'static {
    fn load(&self, key: &ObjectKey) -> BoxFuture<'static, Result<Option<O>, SourceError>>;

    /// The keys of every object that exists now, if this source can enumerate them (`None`,
    /// the default, when it cannot: the kind then waits to be fed).
    ///
    /// Each incarnation of a kind supervisor lists its source when it starts, and starts an
    /// actor for each listed key that has none (which then loads its object as usual). So a
    /// kind that its group stopped and started again, or that restarted after a failure, comes
    /// back with its objects, like an informer's initial list. A failed listing is retried
    /// with the kind's `supervisor_policy`.
    fn list(&self) -> Option<BoxFuture<'static, Result<Vec<ObjectKey>, SourceError>>> {
        None
    }
}
