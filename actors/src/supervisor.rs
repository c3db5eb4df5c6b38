//! [`KindSupervisor`]: one actor per object kind, owning one [`ObjectHost`] per live object.
//!
//! It is fed the objects of its kind ([`KindHandle::object_changed`],
//! [`KindHandle::object_removed`]; later from the store's watch), starts a child for each new
//! key, forwards changes to running children and stops children whose object went away.
//!
//! When a child dies (panic, fatal error, kill, failed load) the supervisor restarts it after
//! an exponential backoff; the new incarnation rebuilds its state from the source. A child that
//! fails more than its intensity allows escalates: see [`Escalation`] for the two policies.
//! Restarts are counted on the child's registry entry, which outlives its incarnations.
//!
//! Cancellation: the `KindHandle` methods send a message and wait for the supervisor to take
//! it; dropping their future after the send does not undo it.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use serde::Serialize;

use crate::error::SupervisorError;
use crate::host::{
    Changed, ChildExited, ChildRef, ExitGuard, ExitReason, KindShared, ObjectHost, Slot, Stop,
};
use crate::logic::{Effects, NoEffects, ObjectLogic};
use crate::message::Meta;
use crate::path::{ActorPath, ObjectKey};
use crate::policy::{Backoff, Escalation, Intensity, RestartPolicy, RestartTracker, Verdict};
use crate::registry::{Entry, Status};
use crate::root::Root;
use crate::source::Source;
use crate::tap::{TapRecord, Via};

/// How a kind's supervisor treats its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindConfig {
    /// Backoff and intensity for each child.
    pub child_policy: RestartPolicy,
    /// What a child exceeding its intensity does.
    pub escalation: Escalation,
    /// Backoff and intensity of the supervisor itself (with [`Escalation::RestartKind`]).
    pub supervisor_policy: RestartPolicy,
    /// Mailbox capacity of each child (actix's default is 16).
    pub mailbox_capacity: usize,
}

impl Default for KindConfig {
    fn default() -> Self {
        KindConfig {
            child_policy: RestartPolicy::default(),
            escalation: Escalation::default(),
            supervisor_policy: RestartPolicy {
                backoff: Backoff {
                    initial: Duration::from_millis(500),
                    max: Duration::from_secs(30),
                    factor: 2,
                },
                intensity: Intensity {
                    max_restarts: 3,
                    within: Duration::from_secs(300),
                },
            },
            mailbox_capacity: 64,
        }
    }
}

/// Everything needed to supervise one kind.
pub struct KindSpec<L: ObjectLogic> {
    kind: String,
    relative_path: String,
    logic: L,
    source: Arc<dyn Source<L::Object>>,
    effects: Arc<dyn Effects<L::Action>>,
    config: KindConfig,
}

impl<L: ObjectLogic> KindSpec<L> {
    /// Kind `kind` (`deployment`), supervised at `<root>/<kind>` unless [`at`](Self::at) says
    /// otherwise, with no effects and the default config.
    pub fn new(kind: &str, logic: L, source: Arc<dyn Source<L::Object>>) -> Self {
        KindSpec {
            kind: kind.to_owned(),
            relative_path: kind.to_owned(),
            logic,
            source,
            effects: Arc::new(NoEffects),
            config: KindConfig::default(),
        }
    }

    /// Supervise at `<root>/<relative>` (`controllers/deployment`).
    pub fn at(mut self, relative: &str) -> Self {
        relative.clone_into(&mut self.relative_path);
        self
    }

    pub fn effects(mut self, effects: Arc<dyn Effects<L::Action>>) -> Self {
        self.effects = effects;
        self
    }

    pub fn config(mut self, config: KindConfig) -> Self {
        self.config = config;
        self
    }

    pub(crate) fn relative_path(&self) -> &str {
        &self.relative_path
    }
}

/// What a root learns when a failure escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationAction {
    /// The child was left stopped ([`Escalation::ParkChild`]).
    ChildParked,
    /// The kind supervisor restarted all its children.
    KindRestarted,
    /// The kind supervisor exceeded its own intensity and stopped with all its children.
    KindFailed,
}

/// One escalation, as the root records it.
#[derive(Debug, Clone, Serialize)]
pub struct EscalationReport {
    #[serde(skip)]
    pub time: SystemTime,
    /// The child whose failures escalated.
    pub child: ActorPath,
    pub supervisor: ActorPath,
    /// Failures of the child within its intensity window.
    pub failures: u32,
    /// The last failure.
    pub reason: String,
    pub action: EscalationAction,
}

enum Phase {
    Running,
    Backoff(SpawnHandle),
    Parked,
}

struct Child<L: ObjectLogic> {
    slot: Arc<Slot<L>>,
    tracker: RestartTracker,
    /// Identifies the current incarnation among all of this supervisor's; exits of older ones
    /// are ignored.
    id: u64,
    incarnation: u64,
    phase: Phase,
}

/// The supervisor of one object kind. Create with [`Root::supervise`].
pub struct KindSupervisor<L: ObjectLogic> {
    path: ActorPath,
    shared: Arc<KindShared<L>>,
    config: KindConfig,
    root: Root,
    entry: Arc<Entry>,
    children: BTreeMap<ObjectKey, Child<L>>,
    tracker: RestartTracker,
    next_id: u64,
}

impl<L: ObjectLogic> KindSupervisor<L> {
    pub(crate) fn new(path: ActorPath, spec: KindSpec<L>, root: Root) -> Self {
        let tap = root.tap();
        let entry = Arc::new(Entry::new(
            path.clone(),
            &spec.kind,
            crate::registry::Role::Supervisor,
            Some(root.path().clone()),
        ));
        root.registry().register(entry.clone());
        KindSupervisor {
            path,
            shared: Arc::new(KindShared {
                kind: Arc::from(spec.kind.as_str()),
                logic: spec.logic,
                source: spec.source,
                effects: spec.effects,
                tap,
                mailbox_capacity: spec.config.mailbox_capacity.max(1),
            }),
            config: spec.config,
            root,
            entry,
            children: BTreeMap::new(),
            tracker: RestartTracker::default(),
            next_id: 0,
        }
    }

    fn object_changed(
        &mut self,
        key: ObjectKey,
        object: L::Object,
        meta: Meta,
        ctx: &mut Context<Self>,
    ) {
        match self.children.get_mut(&key) {
            None => {
                let slot = Slot::new(self.path.child(&key), &self.shared.kind, self.path.clone());
                self.root.registry().register(slot.entry.clone());
                tracing::debug!(actor = %slot.path, "object appeared, starting actor");
                self.children.insert(
                    key.clone(),
                    Child {
                        slot,
                        tracker: RestartTracker::default(),
                        id: 0,
                        incarnation: 0,
                        phase: Phase::Parked,
                    },
                );
                self.spawn(&key, ctx);
            }
            Some(child) => match child.phase {
                Phase::Running => {
                    let _ = child
                        .slot
                        .with_addr(|addr| addr.do_send(Changed { object, meta }));
                }
                // The next incarnation loads the object as it is then.
                Phase::Backoff(_) => {}
                Phase::Parked => {
                    tracing::info!(actor = %child.slot.path, "object changed, starting parked actor again");
                    child.tracker.reset();
                    self.spawn(&key, ctx);
                }
            },
        }
        self.refresh_summary();
    }

    fn object_removed(&mut self, key: &ObjectKey, ctx: &mut Context<Self>) {
        if let Some(child) = self.children.remove(key) {
            tracing::debug!(actor = %child.slot.path, "object removed, stopping actor");
            self.retire(child, ctx);
        }
        self.refresh_summary();
    }

    /// Stops a child for good and forgets it.
    fn retire(&self, child: Child<L>, ctx: &mut Context<Self>) {
        if let Phase::Backoff(handle) = child.phase {
            ctx.cancel_future(handle);
        }
        if let Some(addr) = child.slot.clear() {
            addr.do_send(Stop);
        }
        self.root.registry().deregister(&child.slot.entry);
    }

    /// Starts a new incarnation of the child at `key`.
    fn spawn(&mut self, key: &ObjectKey, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        self.next_id += 1;
        child.id = self.next_id;
        child.incarnation += 1;
        child.slot.entry.starting(child.incarnation);
        let kill = Arc::new(AtomicBool::new(false));
        let guard = ExitGuard::new(ctx.address().recipient(), key.clone(), child.id);
        let host = ObjectHost::new(
            key.clone(),
            child.slot.path.clone(),
            self.shared.clone(),
            child.slot.entry.clone(),
            kill.clone(),
            guard,
        );
        child.slot.set(host.start(), kill);
        child.phase = Phase::Running;
    }

    fn child_exited(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(&msg.key) else {
            return;
        };
        if child.id != msg.id {
            return;
        }
        child.slot.clear();
        child.slot.entry.stats().drain();
        let path = child.slot.path.clone();
        if !msg.reason.is_failure() {
            tracing::info!(actor = %path, reason = %msg.reason, "actor stopped for good");
            if let Some(child) = self.children.remove(&msg.key) {
                self.retire(child, ctx);
            }
            self.refresh_summary();
            return;
        }
        child.slot.entry.set_last_error(msg.reason.to_string());
        let verdict = child
            .tracker
            .on_failure(&self.config.child_policy, Instant::now());
        self.lifecycle(
            Some(&path),
            &self.path,
            "ActorExited",
            msg.reason.to_string(),
        );
        match verdict {
            Verdict::Restart { after, attempt } => {
                tracing::info!(
                    actor = %path,
                    reason = %msg.reason,
                    attempt,
                    backoff_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                    "restarting actor"
                );
                self.schedule_restart(&msg.key, after, ctx);
            }
            Verdict::Escalate { failures } => self.escalate(&msg.key, msg.reason, failures, ctx),
        }
        self.refresh_summary();
    }

    fn schedule_restart(&mut self, key: &ObjectKey, after: Duration, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        child.slot.entry.set_status(Status::Restarting);
        let id = child.id;
        let k = key.clone();
        let handle = ctx.run_later(after, move |act, ctx| act.restart_child(&k, id, ctx));
        if let Phase::Backoff(old) = std::mem::replace(&mut child.phase, Phase::Backoff(handle)) {
            ctx.cancel_future(old);
        }
    }

    fn restart_child(&mut self, key: &ObjectKey, id: u64, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        if child.id != id || !matches!(child.phase, Phase::Backoff(_)) {
            return;
        }
        child.slot.entry.restarted();
        let path = child.slot.path.clone();
        let restarts = child.slot.entry.stats().restarts();
        self.spawn(key, ctx);
        self.lifecycle(
            Some(&self.path),
            &path,
            "ActorRestarted",
            format!("restart {restarts}"),
        );
        self.refresh_summary();
    }

    fn escalate(
        &mut self,
        key: &ObjectKey,
        reason: ExitReason,
        failures: u32,
        ctx: &mut Context<Self>,
    ) {
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        let child_path = child.slot.path.clone();
        let mut report = EscalationReport {
            time: SystemTime::now(),
            child: child_path.clone(),
            supervisor: self.path.clone(),
            failures,
            reason: reason.to_string(),
            action: EscalationAction::ChildParked,
        };
        match self.config.escalation {
            Escalation::ParkChild => {
                child.phase = Phase::Parked;
                child.slot.entry.set_status(Status::Failed);
                self.root.escalated(report);
            }
            Escalation::RestartKind => {
                let error = format!("child {child_path} failed {failures} times, last: {reason}");
                self.entry.set_last_error(error);
                match self
                    .tracker
                    .on_failure(&self.config.supervisor_policy, Instant::now())
                {
                    Verdict::Restart { after, .. } => {
                        report.action = EscalationAction::KindRestarted;
                        self.root.escalated(report);
                        self.restart_all(after, ctx);
                    }
                    Verdict::Escalate { .. } => {
                        report.action = EscalationAction::KindFailed;
                        self.root.escalated(report);
                        self.give_up(ctx);
                    }
                }
            }
        }
    }

    /// Erlang's supervisor restart: every child stops and starts again from its source.
    fn restart_all(&mut self, after: Duration, ctx: &mut Context<Self>) {
        self.entry.restarted();
        self.entry.set_status(Status::Restarting);
        let keys: Vec<ObjectKey> = self.children.keys().cloned().collect();
        for key in &keys {
            if let Some(child) = self.children.get_mut(key) {
                // A new id first, so the exit of the incarnation stopped here is ignored.
                self.next_id += 1;
                child.id = self.next_id;
                child.tracker.reset();
                if let Some(addr) = child.slot.clear() {
                    addr.do_send(Stop);
                }
            }
            self.schedule_restart(key, after, ctx);
        }
        ctx.run_later(after, |act, _| act.entry.set_status(Status::Running));
    }

    /// Past its own intensity: stop every child and this supervisor, and stay visible as failed.
    fn give_up(&mut self, ctx: &mut Context<Self>) {
        tracing::error!(supervisor = %self.path, "kind supervisor exceeded its restart intensity, stopping its children");
        let children = std::mem::take(&mut self.children);
        for child in children.into_values() {
            self.retire(child, ctx);
        }
        self.entry.set_status(Status::Failed);
        self.refresh_summary();
        ctx.stop();
    }

    fn lifecycle(
        &self,
        sender: Option<&ActorPath>,
        receiver: &ActorPath,
        message_type: &'static str,
        outcome: String,
    ) {
        let tap = &self.shared.tap;
        if tap.enabled() {
            tap.record(TapRecord {
                via: Via::Local,
                sender: sender.map(ActorPath::shared),
                outcome: outcome.into(),
                ..TapRecord::local(receiver.shared(), message_type.into())
            });
        }
    }

    fn refresh_summary(&self) {
        let (mut running, mut restarting, mut failed) = (0, 0, 0);
        for c in self.children.values() {
            match c.phase {
                Phase::Running => running += 1,
                Phase::Backoff(_) => restarting += 1,
                Phase::Parked => failed += 1,
            }
        }
        self.entry.set_summary(format!(
            "{} children: {running} running, {restarting} restarting, {failed} failed",
            self.children.len()
        ));
    }
}

impl<L: ObjectLogic> Actor for KindSupervisor<L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.entry.starting(1);
        self.entry.set_status(Status::Running);
        self.refresh_summary();
        tracing::debug!(supervisor = %self.path, "kind supervisor started");
    }
}

/// The object at `key` exists, new or changed.
pub(crate) struct ObjectChanged<O> {
    key: ObjectKey,
    object: O,
    meta: Meta,
}

impl<O: 'static> Message for ObjectChanged<O> {
    type Result = ();
}

/// The object at `key` is gone.
pub(crate) struct ObjectRemoved {
    key: ObjectKey,
}

impl Message for ObjectRemoved {
    type Result = ();
}

pub(crate) struct GetChild<L> {
    key: ObjectKey,
    _logic: PhantomData<fn() -> L>,
}

impl<L: ObjectLogic> Message for GetChild<L> {
    type Result = Option<ChildRef<L>>;
}

pub(crate) struct Shutdown;

impl Message for Shutdown {
    type Result = ();
}

impl<L: ObjectLogic> Handler<ObjectChanged<L::Object>> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, msg: ObjectChanged<L::Object>, ctx: &mut Context<Self>) {
        self.object_changed(msg.key, msg.object, msg.meta, ctx);
    }
}

impl<L: ObjectLogic> Handler<ObjectRemoved> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, msg: ObjectRemoved, ctx: &mut Context<Self>) {
        self.object_removed(&msg.key, ctx);
    }
}

impl<L: ObjectLogic> Handler<ChildExited> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        self.child_exited(msg, ctx);
    }
}

impl<L: ObjectLogic> Handler<GetChild<L>> for KindSupervisor<L> {
    type Result = Option<ChildRef<L>>;

    fn handle(&mut self, msg: GetChild<L>, _: &mut Context<Self>) -> Option<ChildRef<L>> {
        self.children
            .get(&msg.key)
            .map(|c| ChildRef::new(c.slot.clone()))
    }
}

impl<L: ObjectLogic> Handler<Shutdown> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        let children = std::mem::take(&mut self.children);
        for child in children.into_values() {
            self.retire(child, ctx);
        }
        self.root.registry().deregister(&self.entry);
        ctx.stop();
    }
}

/// A cloneable handle to a kind supervisor.
pub struct KindHandle<L: ObjectLogic> {
    addr: Addr<KindSupervisor<L>>,
    path: ActorPath,
}

impl<L: ObjectLogic> Clone for KindHandle<L> {
    fn clone(&self) -> Self {
        KindHandle {
            addr: self.addr.clone(),
            path: self.path.clone(),
        }
    }
}

impl<L: ObjectLogic> std::fmt::Debug for KindHandle<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KindHandle").field(&self.path).finish()
    }
}

impl<L: ObjectLogic> KindHandle<L> {
    pub(crate) fn new(addr: Addr<KindSupervisor<L>>, path: ActorPath) -> Self {
        KindHandle { addr, path }
    }

    /// The supervisor's path.
    pub fn path(&self) -> &ActorPath {
        &self.path
    }

    fn stopped(&self) -> SupervisorError {
        SupervisorError::Stopped {
            path: self.path.to_string(),
        }
    }

    /// The object at `key` exists (new or changed). Starts its actor if it has none; otherwise
    /// the running actor sees the change. Carries the caller's correlation id.
    pub async fn object_changed(
        &self,
        key: ObjectKey,
        object: L::Object,
    ) -> Result<(), SupervisorError> {
        let msg = ObjectChanged {
            key,
            object,
            meta: Meta::current(),
        };
        self.addr.send(msg).await.map_err(|_| self.stopped())
    }

    /// The object at `key` is gone: its actor stops and is forgotten.
    pub async fn object_removed(&self, key: ObjectKey) -> Result<(), SupervisorError> {
        self.addr
            .send(ObjectRemoved { key })
            .await
            .map_err(|_| self.stopped())
    }

    /// A handle to the actor of `key`, if the supervisor has one.
    pub async fn child(&self, key: &ObjectKey) -> Result<Option<ChildRef<L>>, SupervisorError> {
        let msg = GetChild {
            key: key.clone(),
            _logic: PhantomData,
        };
        self.addr.send(msg).await.map_err(|_| self.stopped())
    }

    /// Stops every child and the supervisor, and removes them from the registry.
    pub async fn shutdown(&self) -> Result<(), SupervisorError> {
        self.addr.send(Shutdown).await.map_err(|_| self.stopped())
    }

    /// True while the supervisor runs.
    pub fn is_running(&self) -> bool {
        self.addr.connected()
    }
}
