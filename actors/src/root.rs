//! [`Root`]: the top of one process's supervision tree (`/master`, `/node/n1`), owner of its
//! registry and message tap, and the end of every escalation.
//!
//! The root is not an actor: it never fails. A kind supervisor that gives up reports here; the
//! root logs the report at ERROR (an operator must act), keeps it for the debug endpoint, and
//! every other kind keeps running.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use crate::error::SupervisorError;
use crate::logic::ObjectLogic;
use crate::path::ActorPath;
use crate::registry::{Entry, Registry, Role, Status};
use crate::supervisor::{EscalationAction, EscalationReport, KindHandle, KindSpec, KindSupervisor};
use crate::tap::{MessageTap, TapConfig, TapRecord};

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
    /// A root at `path` with a fresh registry and a tap of the given size.
    pub fn new(path: ActorPath, tap: TapConfig) -> Self {
        Root::with_parts(path, Registry::new(), MessageTap::new(tap))
    }

    /// A root at `path` using an existing registry and tap (for example, the tap already given
    /// to the QUIC layer as its `WireTap`).
    pub fn with_parts(path: ActorPath, registry: Registry, tap: MessageTap) -> Self {
        let entry = Arc::new(Entry::new(path.clone(), "root", Role::Root, None));
        entry.starting(1);
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

    /// Starts the supervisor of `spec`'s kind on the current arbiter. Must run inside an actix
    /// system.
    pub fn supervise<L: ObjectLogic>(
        &self,
        spec: KindSpec<L>,
    ) -> Result<KindHandle<L>, SupervisorError> {
        let path = self.kind_path(&spec)?;
        let sup = KindSupervisor::new(path.clone(), spec, self.clone());
        Ok(KindHandle::new(sup.start(), path))
    }

    /// Starts the supervisor of `spec`'s kind, and its children, on `arbiter`.
    pub fn supervise_on<L: ObjectLogic>(
        &self,
        arbiter: &ArbiterHandle,
        spec: KindSpec<L>,
    ) -> Result<KindHandle<L>, SupervisorError> {
        let path = self.kind_path(&spec)?;
        let root = self.clone();
        let p = path.clone();
        let addr =
            KindSupervisor::start_in_arbiter(arbiter, move |_| KindSupervisor::new(p, spec, root));
        Ok(KindHandle::new(addr, path))
    }

    fn kind_path<L: ObjectLogic>(&self, spec: &KindSpec<L>) -> Result<ActorPath, SupervisorError> {
        let path = self.inner.path.join(spec.relative_path())?;
        // A supervisor that gave up stays visible as failed; supervising its kind again
        // replaces it.
        let taken = self.inner.registry.entry(&path).is_some_and(|e| {
            let info = e.info();
            !(info.role == Role::Supervisor && info.status == Status::Failed)
        });
        if taken {
            return Err(SupervisorError::Duplicate {
                path: path.to_string(),
            });
        }
        Ok(path)
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

    /// A failure escalated to the top: log it, keep it, record it in the tap.
    pub(crate) fn escalated(&self, report: EscalationReport) {
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
            EscalationAction::KindFailed => tracing::error!(
                child = %report.child,
                supervisor = %report.supervisor,
                failures = report.failures,
                reason = %report.reason,
                "kind supervisor exceeded its restart intensity and stopped; other kinds keep running"
            ),
        }
        if report.action != EscalationAction::KindRestarted {
            self.inner.entry.set_last_error(format!(
                "{}: {} ({:?})",
                report.child, report.reason, report.action
            ));
        }
        if self.inner.tap.enabled() {
            self.inner.tap.record(TapRecord {
                sender: Some(report.supervisor.shared()),
                outcome: format!("{:?}: {}", report.action, report.reason).into(),
                ..TapRecord::local(self.inner.path.shared(), "Escalated".into())
            });
        }
        let mut kept = self.lock();
        if kept.len() >= KEPT_ESCALATIONS {
            kept.pop_front();
        }
        kept.push_back(report);
    }
}
