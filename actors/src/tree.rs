//! The supervision tree's plumbing: how a supervisor (kind, singleton or group) learns who its
//! parent is, how the parent learns that it ended, and the interface a group drives its child
//! supervisors through.
//!
//! A supervisor's parent is either the process [`Root`] (which never fails and only records
//! what reaches it) or a [`GroupSupervisor`](crate::group::GroupSupervisor), which restarts a
//! failed child supervisor with backoff and escalates past its intensity. Every supervisor
//! incarnation carries a [`SupervisorGuard`] that tells a group parent when the incarnation
//! ends, however it ends (a stop it was asked for, a failure, a panic unwinding its task).

use std::sync::Arc;

use actix::prelude::*;
use futures::future::BoxFuture;

use crate::path::ActorPath;
use crate::registry::{Entry, Registry};
use crate::root::Root;

/// Why a supervisor's incarnation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SupervisorExit {
    /// Its parent stopped it on purpose; it may be started again.
    Stopped,
    /// Its handle shut it down for good: the parent forgets it.
    Removed,
    /// It gave up (restart intensity exceeded) or panicked: the parent restarts it or
    /// escalates.
    Failed(String),
}

impl std::fmt::Display for SupervisorExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SupervisorExit::Stopped => f.write_str("stopped"),
            SupervisorExit::Removed => f.write_str("removed"),
            SupervisorExit::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

/// Sent by a child supervisor's guard to its group.
pub(crate) struct SupervisorExited {
    pub(crate) id: u64,
    pub(crate) reason: SupervisorExit,
}

impl Message for SupervisorExited {
    type Result = ();
}

/// Where a supervisor sits in the tree.
#[derive(Clone)]
pub(crate) enum Parent {
    Root(Root),
    Group {
        root: Root,
        path: ActorPath,
        notify: Recipient<SupervisorExited>,
        /// The incarnation's id among the group's children, echoed in its exit.
        id: u64,
    },
}

impl Parent {
    pub(crate) fn root(&self) -> &Root {
        match self {
            Parent::Root(root) | Parent::Group { root, .. } => root,
        }
    }

    pub(crate) fn path(&self) -> &ActorPath {
        match self {
            Parent::Root(root) => root.path(),
            Parent::Group { path, .. } => path,
        }
    }

    /// True when nothing above will restart a supervisor that gives up.
    pub(crate) fn is_root(&self) -> bool {
        matches!(self, Parent::Root(_))
    }
}

/// Tells a supervisor's parent that its incarnation ended, when the actor is dropped.
pub(crate) struct SupervisorGuard {
    parent: Parent,
    path: ActorPath,
    reason: Option<SupervisorExit>,
}

impl SupervisorGuard {
    pub(crate) fn new(parent: Parent, path: ActorPath) -> Self {
        SupervisorGuard {
            parent,
            path,
            reason: None,
        }
    }

    pub(crate) fn parent(&self) -> &Parent {
        &self.parent
    }

    /// Says why the incarnation is about to end.
    pub(crate) fn set(&mut self, reason: SupervisorExit) {
        self.reason = Some(reason);
    }
}

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        let reason = match self.reason.take() {
            Some(r) => r,
            None if std::thread::panicking() => {
                tracing::error!(supervisor = %self.path, "supervisor panicked");
                SupervisorExit::Failed("supervisor panicked".to_owned())
            }
            None => SupervisorExit::Failed("supervisor stopped without a reason".to_owned()),
        };
        if let Parent::Group { notify, id, .. } = &self.parent {
            notify.do_send(SupervisorExited { id: *id, reason });
        }
    }
}

/// A child supervisor as its group drives it. Implemented by the slot of each kind of
/// supervisor, which outlives its incarnations.
pub(crate) trait ChildSupervisor: Send + Sync + 'static {
    fn path(&self) -> &ActorPath;

    /// Its registry entry (it outlives incarnations, and counts the group's restarts).
    fn entry(&self) -> &Arc<Entry>;

    /// Starts a fresh incarnation on the current arbiter under `parent`, rebuilt from its
    /// sources. The future resolves once the incarnation is up (its children started) or has
    /// failed to start.
    fn start(&self, parent: Parent) -> BoxFuture<'static, ()>;

    /// Stops the running incarnation, if any, and every actor under it; resolves once all of
    /// them have ended. The incarnation reports [`SupervisorExit::Stopped`].
    fn stop(&self) -> BoxFuture<'static, ()>;

    /// Drops its registry entry (its group forgets it).
    fn forget(&self, registry: &Registry) {
        registry.deregister(self.entry());
    }
}
