//! Test doubles for code written against [`Client`](crate::Client):
//!
//! - [`FakeClient`]: an in-memory API with revisions, lists (selectors, paging), watches
//!   from a revision, compaction that answers 410, and injected failures: enough to test
//!   caches and controllers without a server;
//! - [`Interruptible`]: a decorator over any client (a real cluster's too) that cuts its
//!   open watches on demand and fails the next watches, to prove resumption end to end.

mod fake;
mod interruptible;

pub use fake::{FakeClient, ListCall, WatchCall};
pub use interruptible::Interruptible;
