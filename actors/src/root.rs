//! [`Root`]: the top of one process's supervision tree (`/master`, `/node/n1`), owner of its
//! registry and message tap, and the end of every escalation.
//!
//! The root is not an actor: it never fails. Supervisors (kinds, singletons, groups) started
//! here have it as their parent; one that gives up stays failed, and the root logs the report
//! at ERROR (an operator must act), keeps it for the debug endpoint, and everything else keeps
//! running. Escalations handled lower down (a group restarting a child supervisor) are kept
//! too, logged at WARN.
//!
//! The root owns the process's [`Clock`]: every supervisor and actor under it, the registry and
//! the tap read time from it, so a test builds a whole tree on a
//! [`ManualClock`](crate::ManualClock) with [`Root::with_clock`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use crate::clock::{Clock, SystemClock};
use crate::error::SupervisorError;
use crate::group::{GroupHandle, GroupSlot, GroupSpec};
use crate::logic::ObjectLogic;
use crate::path::ActorPath;
use crate::registry::{Entry, Registry, Role, Status};
use crate::singleton::{SingletonLogic, SingletonRef, SingletonSlot, SingletonSpec};
use crate::supervisor::{EscalationAction, EscalationReport, KindHandle, KindSlot, KindSpec};
use crate::tap::{MessageTap, TapConfig, TapRecord};
use crate::tree::Parent;

/// Escalation reports kept for inspection.
const KEPT_ESCALATIONS: usize = 1000;

/// The root of a process's actors. Cheap to clone.
#[derive(Clone)]
pub struct Root {
    inner: Arc<RootInner>,
}

struct RootInner {
    path: ActorPath,
    registry: Registry,
    tap: MessageTap,
    entry: Arc<Entry>,
    escalations: Mutex<VecDeque<EscalationReport>>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Root").field(&self.inner.path).finish()
    }
}

impl Root {
    /// A root at `path` on the system clock, with a fresh registry and a tap of the given size.
    pub fn new(path: ActorPath, tap: TapConfig) -> Self {
        Root::with_clock(path, tap, SystemClock::shared())
    }

    /// A root at `path` whose whole tree runs on `clock` (a
    /// [`ManualClock`](crate::ManualClock) in tests), with a fresh registry and tap on it.
    pub fn with_clock(path: ActorPath, tap: TapConfig, clock: Arc<dyn Clock>) -> Self {
        let registry = Registry::with_clock(clock.clone());
        Root::with_parts(path, registry, MessageTap::with_clock(tap, clock))
    }

    /// A root at `path` using an existing registry and tap (for example, the tap already given
    /// to the QUIC layer as its `WireTap`). The tree runs on the tap's clock; give the registry
    /// the same one.
    pub fn with_parts(path: ActorPath, registry: Registry, tap: MessageTap) -> Self {
        let entry = Arc::new(Entry::new(path.clone(), "root", Role::Root, None));
        entry.starting(1, tap.clock().wall());
        entry.set_status(Status::Running);
        registry.register(entry.clone());
        Root {
            inner: Arc::new(RootInner {
                path,
                registry,
                tap,
                entry,
                escalations: Mutex::new(VecDeque::new()),
            }),
        }
    }

    pub fn path(&self) -> &ActorPath {
        &self.inner.path
    }

    /// The process's registry (cheap clone).
    pub fn registry(&self) -> Registry {
        self.inner.registry.clone()
    }

    /// The process's message tap (cheap clone).
    pub fn tap(&self) -> MessageTap {
        self.inner.tap.clone()
    }

    /// The clock everything under this root reads (cheap clone).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.tap.clock().clone()
    }

    /// Starts the supervisor of `spec`'s kind on the current arbiter. Must run inside an actix
    /// system.
    pub fn supervise<L: ObjectLogic>(
        &self,
        spec: KindSpec<L>,
    ) -> Result<KindHandle<L>, SupervisorError> {
        self.supervise_in(None, spec)
    }

    /// Starts the supervisor of `spec`'s kind, and its children, on `arbiter`.
    pub fn supervise_on<L: ObjectLogic>(
        &self,
        arbiter: &ArbiterHandle,
        spec: KindSpec<L>,
    ) -> Result<KindHandle<L>, SupervisorError> {
        self.supervise_in(Some(arbiter), spec)
    }

    fn supervise_in<L: ObjectLogic>(
        &self,
        arbiter: Option<&ArbiterHandle>,
        spec: KindSpec<L>,
    ) -> Result<KindHandle<L>, SupervisorError> {
        let path = self.child_path(spec.relative_path())?;
        let slot = KindSlot::new(path, spec, self.path().clone(), self);
        // Nobody waits for it to be up: messages sent meanwhile queue until it is.
        drop(slot.start_on(arbiter, Parent::Root(self.clone())));
        Ok(KindHandle::new(slot))
    }

    /// Starts the singleton of `spec` on the current arbiter. Must run inside an actix system.
    pub fn singleton<S: SingletonLogic>(
        &self,
        spec: SingletonSpec<S>,
    ) -> Result<SingletonRef<S>, SupervisorError> {
        let path = self.child_path(spec.relative_path())?;
        let slot = SingletonSlot::new(path, spec, self.path().clone(), self);
        drop(slot.start_on(None, Parent::Root(self.clone())));
        Ok(SingletonRef::new(slot))
    }

    /// Starts a group (a supervisor of supervisors) on the current arbiter; add its children
    /// with [`GroupHandle::supervise`], [`GroupHandle::singleton`] and [`GroupHandle::group`].
    /// Must run inside an actix system.
    pub fn group(&self, spec: GroupSpec) -> Result<GroupHandle, SupervisorError> {
        self.group_in(None, spec)
    }

    /// Starts a group on `arbiter`; its children run there too.
    pub fn group_on(
        &self,
        arbiter: &ArbiterHandle,
        spec: GroupSpec,
    ) -> Result<GroupHandle, SupervisorError> {
        self.group_in(Some(arbiter), spec)
    }

    fn group_in(
        &self,
        arbiter: Option<&ArbiterHandle>,
        spec: GroupSpec,
    ) -> Result<GroupHandle, SupervisorError> {
        let path = self.child_path(spec.relative_path())?;
        let slot = GroupSlot::new(path, spec, self.path().clone(), self);
        drop(slot.start_on(arbiter, Parent::Root(self.clone())));
        Ok(GroupHandle::new(slot))
    }

    fn child_path(&self, relative: &str) -> Result<ActorPath, SupervisorError> {
        let path = self.inner.path.join(relative)?;
        self.check_free(&path)?;
        Ok(path)
    }

    /// Fails unless `path` is free for a new supervisor. A supervisor that gave up stays
    /// visible as failed; supervising at its path again replaces it.
    pub(crate) fn check_free(&self, path: &ActorPath) -> Result<(), SupervisorError> {
        let taken = self.inner.registry.entry(path).is_some_and(|e| {
            let info = e.info();
            let replaceable = matches!(info.role, Role::Supervisor | Role::Group | Role::Singleton)
                && info.status == Status::Failed;
            !replaceable
        });
        if taken {
            return Err(SupervisorError::Duplicate {
                path: path.to_string(),
            });
        }
        Ok(())
    }

    /// Escalations received so far (the most recent thousand), oldest first.
    pub fn escalations(&self) -> Vec<EscalationReport> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<EscalationReport>> {
        self.inner
            .escalations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A failure escalated: log it, keep it, record it in the tap. A supervisor's failure is
    /// final (ERROR) only when the root is its parent; otherwise its group deals with it.
    pub(crate) fn escalated(&self, report: EscalationReport) {
        let last = report.parent == self.inner.path;
        match report.action {
            EscalationAction::KindRestarted => tracing::warn!(
                child = %report.child,
                supervisor = %report.supervisor,
                failures = report.failures,
                reason = %report.reason,
                "child exceeded its restart intensity, restarting its kind"
            ),
            EscalationAction::ChildParked => tracing::error!(
                child = %report.child,
                supervisor = %report.supervisor,
                failures = report.failures,
                reason = %report.reason,
                "child exceeded its restart intensity and was left stopped"
            ),
            EscalationAction::KindFailed
            | EscalationAction::SingletonFailed
            | EscalationAction::GroupFailed
                if last =>
            {
                tracing::error!(
                    child = %report.child,
                    supervisor = %report.supervisor,
                    failures = report.failures,
                    reason = %report.reason,
                    action = ?report.action,
                    "supervisor exceeded its restart intensity and stopped; everything else keeps running"
                )
            }
            EscalationAction::KindFailed
            | EscalationAction::SingletonFailed
            | EscalationAction::GroupFailed => tracing::warn!(
                child = %report.child,
                supervisor = %report.supervisor,
                parent = %report.parent,
                failures = report.failures,
                reason = %report.reason,
                action = ?report.action,
                "supervisor exceeded its restart intensity and stopped; its group deals with it"
            ),
        }
        let operator_must_act = match report.action {
            EscalationAction::KindRestarted => false,
            EscalationAction::ChildParked => true,
            _ => last,
        };
        if operator_must_act {
            self.inner.entry.set_last_error(format!(
                "{}: {} ({:?})",
                report.child, report.reason, report.action
            ));
        }
        if self.inner.tap.enabled() {
            self.inner.tap.record(TapRecord {
                sender: Some(report.supervisor.shared()),
                outcome: format!("{:?}: {}", report.action, report.reason).into(),
                ..self
                    .inner
                    .tap
                    .local_record(self.inner.path.shared(), "Escalated".into())
            });
        }
        let mut kept = self.lock();
        if kept.len() >= KEPT_ESCALATIONS {
            kept.pop_front();
        }
        kept.push_back(report);
    }
}
