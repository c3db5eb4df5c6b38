//! [`KindSupervisor`]: one actor per object kind, owning one [`ObjectHost`](crate::ObjectHost) per
//! live object.
//!
//! It is fed the objects of its kind ([`KindHandle::object_changed`],
//! [`KindHandle::object_removed`]; later from the store's watch), starts a child for each new
//! key, forwards changes to running children and stops children whose object went away. When
//! its [`Source`] can list (`Source::list`), every incarnation of the supervisor also starts a
//! child for each listed key, so a kind stopped and started again by its group (or restarted
//! after a failure) comes back with its objects without being fed again.
//!
//! When a child dies (panic, fatal error, kill, failed load) the supervisor restarts it after
//! an exponential backoff on the root's [`Clock`]; the new incarnation rebuilds its state from
//! the source. A child that fails more than its intensity allows escalates: see [`Escalation`]
//! for the two policies. Restarts are counted on the child's registry entry, which outlives its
//! incarnations. A supervisor that gives up reports to its parent: the root records it and
//! leaves it failed, a [group](crate::GroupHandle) restarts it.
//!
//! [`KindHandle`] is the supervisor's stable handle: like [`ChildRef`] for objects, it reaches
//! whichever incarnation of the supervisor runs now.
//!
//! Cancellation: the `KindHandle` methods send a message and wait for the supervisor to take
//! it; dropping their future after the send does not undo it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::error::SupervisorError;
use crate::host::{Changed, ChildExited, ChildRef, ExitReason, KindShared, Slot, Stop};
use crate::incarnation::Current;
use crate::logic::{Effects, NoEffects, ObjectLogic};
use crate::message::Meta;
use crate::path::{ActorPath, ObjectKey};
use crate::policy::{Backoff, Escalation, Intensity, RestartPolicy, RestartTracker, Verdict};
use crate::registry::{Entry, Role, Status};
use crate::root::Root;
use crate::source::{Source, SourceError};
use crate::tap::Via;
use crate::tree::{ChildSupervisor, Parent, SupervisorExit, SupervisorGuard};

/// How a kind's supervisor treats its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindConfig {
    /// Backoff and intensity for each child.
    pub child_policy: RestartPolicy,
    /// What a child exceeding its intensity does.
    pub escalation: Escalation,
    /// Backoff and intensity of the supervisor itself (with [`Escalation::RestartKind`], and
    /// for retrying a failed listing of its source).
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
    /// Kind `kind` (`deployment`), supervised at `<parent>/<kind>` unless [`at`](Self::at) says
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

    /// Supervise at `<parent>/<relative>` (`controllers/deployment`).
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
    /// A singleton exceeded its restart intensity and its supervisor stopped.
    SingletonFailed,
    /// A child supervisor of a group exceeded its intensity; the group stopped all its
    /// children and itself.
    GroupFailed,
}

/// One escalation, as the root records it.
#[derive(Debug, Clone, Serialize)]
pub struct EscalationReport {
    #[serde(skip)]
    pub time: SystemTime,
    /// The child whose failures escalated.
    pub child: ActorPath,
    pub supervisor: ActorPath,
    /// The supervisor's parent: the one that deals with a supervisor that failed (the root
    /// leaves it failed; a group restarts it).
    pub parent: ActorPath,
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

/// A kind supervisor's place in the tree: what outlives its incarnations (its path, registry
/// entry, logic, source and config) and the incarnation running now.
pub(crate) struct KindSlot<L: ObjectLogic> {
    path: ActorPath,
    entry: Arc<Entry>,
    shared: Arc<KindShared<L>>,
    config: KindConfig,
    current: Current<KindSupervisor<L>>,
    /// The children's slots that somebody still holds (through a `ChildRef`), so that a later
    /// incarnation of the supervisor reuses them and those handles reach its actors.
    hosts: Mutex<HashMap<ObjectKey, Weak<Slot<L>>>>,
}

impl<L: ObjectLogic> KindSlot<L> {
    /// The slot of `spec` at `path` under `parent`, registered in `root`'s registry.
    pub(crate) fn new(
        path: ActorPath,
        spec: KindSpec<L>,
        parent: ActorPath,
        root: &Root,
    ) -> Arc<Self> {
        let entry = Arc::new(Entry::new(
            path.clone(),
            &spec.kind,
            Role::Supervisor,
            Some(parent),
        ));
        root.registry().register(entry.clone());
        Arc::new(KindSlot {
            path,
            entry,
            shared: Arc::new(KindShared {
                kind: Arc::from(spec.kind.as_str()),
                logic: spec.logic,
                source: spec.source,
                effects: spec.effects,
                tap: root.tap(),
                clock: root.clock(),
                mailbox_capacity: spec.config.mailbox_capacity.max(1),
            }),
            config: spec.config,
            current: Current::new(),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// The slot of the child at `key`: the one an earlier incarnation made, if a handle still
    /// holds it, or a new one.
    fn host(&self, key: &ObjectKey) -> Arc<Slot<L>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = hosts.get(key).and_then(Weak::upgrade) {
            return slot;
        }
        hosts.retain(|_, w| w.strong_count() > 0);
        let slot = Slot::new(
            self.path.child(key),
            &self.shared.kind,
            Role::Object,
            self.path.clone(),
        );
        hosts.insert(key.clone(), Arc::downgrade(&slot));
        slot
    }

    /// Starts an incarnation on `arbiter` (the current one if `None`); resolves once it is up.
    pub(crate) fn start_on(
        self: &Arc<Self>,
        arbiter: Option<&ArbiterHandle>,
        parent: Parent,
    ) -> BoxFuture<'static, ()> {
        let (ready, up) = oneshot::channel();
        let incarnation = self.current.next();
        let slot = self.clone();
        let make = move || KindSupervisor::new(slot, parent, incarnation, ready);
        let addr = match arbiter {
            Some(arbiter) => KindSupervisor::start_in_arbiter(arbiter, move |_| make()),
            None => make().start(),
        };
        self.current.set(incarnation, addr);
        Box::pin(async move {
            let _ = up.await;
        })
    }

    fn addr(&self) -> Option<Addr<KindSupervisor<L>>> {
        self.current.addr()
    }

    fn clear(&self, incarnation: u64) {
        self.current.clear(incarnation);
    }

    /// Asks the running incarnation to stop and waits until it and its children have.
    fn stop_with(&self, exit: SupervisorExit) -> BoxFuture<'static, ()> {
        let addr = self.addr();
        Box::pin(async move {
            let Some(addr) = addr else { return };
            let (reply, done) = oneshot::channel();
            let stop = StopKind {
                exit,
                reply: Some(reply),
            };
            if addr.send(stop).await.is_ok() {
                let _ = done.await;
            }
        })
    }
}

/// A kind supervisor as a group's child.
pub(crate) struct KindChild<L: ObjectLogic>(pub(crate) Arc<KindSlot<L>>);

impl<L: ObjectLogic> ChildSupervisor for KindChild<L> {
    fn path(&self) -> &ActorPath {
        &self.0.path
    }

    fn entry(&self) -> &Arc<Entry> {
        &self.0.entry
    }

    fn start(&self, parent: Parent) -> BoxFuture<'static, ()> {
        self.0.start_on(None, parent)
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        self.0.stop_with(SupervisorExit::Stopped)
    }
}

/// A stop in progress: the exit to report once every child has ended, and who waits for it.
struct Stopping {
    exit: SupervisorExit,
    replies: Vec<oneshot::Sender<()>>,
}

/// The supervisor of one object kind. Create with [`Root::supervise`] or
/// [`GroupHandle::supervise`](crate::GroupHandle::supervise).
pub struct KindSupervisor<L: ObjectLogic> {
    path: ActorPath,
    slot: Arc<KindSlot<L>>,
    shared: Arc<KindShared<L>>,
    entry: Arc<Entry>,
    root: Root,
    clock: Arc<dyn Clock>,
    guard: SupervisorGuard,
    incarnation: u64,
    children: BTreeMap<ObjectKey, Child<L>>,
    tracker: RestartTracker,
    next_id: u64,
    /// Incarnations told to stop whose exit has not arrived yet.
    dying: HashSet<u64>,
    stopping: Option<Stopping>,
    /// Told once this incarnation is up (its first listing done).
    ready: Option<oneshot::Sender<()>>,
}

impl<L: ObjectLogic> KindSupervisor<L> {
    fn new(
        slot: Arc<KindSlot<L>>,
        parent: Parent,
        incarnation: u64,
        ready: oneshot::Sender<()>,
    ) -> Self {
        let root = parent.root().clone();
        KindSupervisor {
            path: slot.path.clone(),
            shared: slot.shared.clone(),
            entry: slot.entry.clone(),
            clock: root.clock(),
            root,
            guard: SupervisorGuard::new(parent, slot.path.clone()),
            slot,
            incarnation,
            children: BTreeMap::new(),
            tracker: RestartTracker::default(),
            next_id: 0,
            dying: HashSet::new(),
            stopping: None,
            ready: Some(ready),
        }
    }

    fn config(&self) -> &KindConfig {
        &self.slot.config
    }

    fn object_changed(
        &mut self,
        key: ObjectKey,
        object: Option<L::Object>,
        meta: Meta,
        ctx: &mut Context<Self>,
    ) {
        match self.children.get_mut(&key) {
            None => {
                let slot = self.slot.host(&key);
                self.root.registry().register(slot.entry.clone());
                tracing::debug!(actor = %slot.path, "object appeared, starting actor");
                let incarnation = slot.entry.incarnation();
                self.children.insert(
                    key.clone(),
                    Child {
                        slot,
                        tracker: RestartTracker::default(),
                        id: 0,
                        incarnation,
                        phase: Phase::Parked,
                    },
                );
                self.spawn(&key, meta, ctx);
            }
            // A listed key that already has an actor: nothing new to tell it.
            Some(_) if object.is_none() => {}
            Some(child) => match child.phase {
                Phase::Running => {
                    if let Some(object) = object {
                        let _ = child
                            .slot
                            .with_addr(|addr| addr.do_send(Changed { object, meta }));
                    }
                }
                // The next incarnation loads the object as it is then.
                Phase::Backoff(_) => {}
                Phase::Parked => {
                    tracing::info!(actor = %child.slot.path, "object changed, starting parked actor again");
                    child.tracker.reset();
                    self.spawn(&key, meta, ctx);
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
    fn retire(&mut self, child: Child<L>, ctx: &mut Context<Self>) {
        if let Phase::Backoff(handle) = child.phase {
            ctx.cancel_future(handle);
        }
        if let Some(addr) = child.slot.clear() {
            addr.do_send(Stop);
            self.dying.insert(child.id);
        }
        self.root.registry().deregister(&child.slot.entry);
    }

    /// Starts a new incarnation of the child at `key`.
    fn spawn(&mut self, key: &ObjectKey, meta: Meta, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        self.next_id += 1;
        child.id = self.next_id;
        child.incarnation += 1;
        child.slot.spawn(
            key,
            &self.shared,
            ctx.address().recipient(),
            child.id,
            child.incarnation,
            self.clock.wall(),
            meta,
        );
        child.phase = Phase::Running;
    }

    /// Lists the source's keys, if it can, and starts an actor for each key that has none.
    fn list(&mut self, ctx: &mut Context<Self>) {
        let Some(listing) = self.shared.source.list() else {
            if self.entry.status() == Status::Starting {
                self.entry.set_status(Status::Running);
            }
            self.up();
            return;
        };
        ctx.spawn(
            listing
                .into_actor(self)
                .map(|result, act, ctx| act.listed(result, ctx)),
        );
    }

    fn listed(&mut self, result: Result<Vec<ObjectKey>, SourceError>, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            self.ready.take();
            return;
        }
        match result {
            Ok(keys) => {
                tracing::debug!(supervisor = %self.path, objects = keys.len(), "source listed");
                for key in keys {
                    self.object_changed(key, None, Meta::default(), ctx);
                }
                if self.entry.status() == Status::Starting {
                    self.entry.set_status(Status::Running);
                }
            }
            Err(e) => {
                tracing::warn!(supervisor = %self.path, error = %e, "listing the kind's objects failed");
                let error = format!("listing failed: {e}");
                self.entry.set_last_error(error.clone());
                let policy = self.config().supervisor_policy;
                match self.tracker.on_failure(&policy, self.clock.now()) {
                    Verdict::Restart { after, .. } => {
                        let retry = self.clock.sleep(after);
                        ctx.spawn(retry.into_actor(self).map(|(), act, ctx| act.list(ctx)));
                    }
                    Verdict::Escalate { .. } => self.give_up(error, ctx),
                }
            }
        }
        self.up();
    }

    /// This incarnation is up: whoever started it may go on.
    fn up(&mut self) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
    }

    fn child_exited(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        let was_dying = self.dying.remove(&msg.id);
        if self.stopping.is_some() {
            self.finish_stop_if_done(ctx);
            return;
        }
        if was_dying {
            return;
        }
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
            .on_failure(&self.slot.config.child_policy, self.clock.now());
        self.lifecycle(
            Some(&self.path),
            &path,
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
        let sleep = self.clock.sleep(after);
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        child.slot.entry.set_status(Status::Restarting);
        let id = child.id;
        let k = key.clone();
        let handle = ctx.spawn(
            sleep
                .into_actor(self)
                .map(move |(), act, ctx| act.restart_child(&k, id, ctx)),
        );
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
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
        self.spawn(key, Meta::default(), ctx);
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
            time: self.clock.wall(),
            child: child_path.clone(),
            supervisor: self.path.clone(),
            parent: self.guard.parent().path().clone(),
            failures,
            reason: reason.to_string(),
            action: EscalationAction::ChildParked,
        };
        match self.slot.config.escalation {
            Escalation::ParkChild => {
                child.phase = Phase::Parked;
                child.slot.entry.set_status(Status::Failed);
                self.root.escalated(report);
            }
            Escalation::RestartKind => {
                let error = format!("child {child_path} failed {failures} times, last: {reason}");
                self.entry.set_last_error(error.clone());
                let policy = self.slot.config.supervisor_policy;
                match self.tracker.on_failure(&policy, self.clock.now()) {
                    Verdict::Restart { after, .. } => {
                        report.action = EscalationAction::KindRestarted;
                        self.root.escalated(report);
                        self.restart_all(after, ctx);
                    }
                    Verdict::Escalate { .. } => {
                        report.action = EscalationAction::KindFailed;
                        self.root.escalated(report);
                        self.give_up(error, ctx);
                    }
                }
            }
        }
    }

    /// Erlang's supervisor restart: every child stops and starts again from its source (and
    /// the source is listed again, if it can be).
    fn restart_all(&mut self, after: Duration, ctx: &mut Context<Self>) {
        self.entry.restarted();
        self.entry.set_status(Status::Restarting);
        let keys: Vec<ObjectKey> = self.children.keys().cloned().collect();
        for key in &keys {
            if let Some(child) = self.children.get_mut(key) {
                if let Some(addr) = child.slot.clear() {
                    addr.do_send(Stop);
                    self.dying.insert(child.id);
                }
                // A new id, so the exit of the incarnation stopped here is ignored.
                self.next_id += 1;
                child.id = self.next_id;
                child.tracker.reset();
            }
            self.schedule_restart(key, after, ctx);
        }
        let sleep = self.clock.sleep(after);
        ctx.spawn(sleep.into_actor(self).map(|(), act, ctx| {
            act.entry.set_status(Status::Running);
            act.list(ctx);
        }));
    }

    /// Past its own intensity: stop every child and this supervisor, and tell the parent.
    fn give_up(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.guard.parent().is_root() {
            tracing::error!(supervisor = %self.path, "kind supervisor exceeded its restart intensity, stopping its children");
        } else {
            tracing::warn!(supervisor = %self.path, parent = %self.guard.parent().path(), "kind supervisor exceeded its restart intensity, stopping; its group restarts it");
        }
        self.entry.set_status(Status::Failed);
        self.begin_stop(SupervisorExit::Failed(error), None, ctx);
    }

    /// Stops every child; once all have ended, this incarnation ends with `exit`.
    fn begin_stop(
        &mut self,
        exit: SupervisorExit,
        reply: Option<oneshot::Sender<()>>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(stopping) = &mut self.stopping {
            // A shutdown asked for during a stop still forgets the supervisor.
            if exit == SupervisorExit::Removed {
                stopping.exit = exit;
            }
            stopping.replies.extend(reply);
            return;
        }
        tracing::debug!(supervisor = %self.path, exit = %exit, "stopping kind supervisor");
        self.stopping = Some(Stopping {
            exit,
            replies: reply.into_iter().collect(),
        });
        let children = std::mem::take(&mut self.children);
        for child in children.into_values() {
            self.retire(child, ctx);
        }
        self.refresh_summary();
        self.finish_stop_if_done(ctx);
    }

    fn finish_stop_if_done(&mut self, ctx: &mut Context<Self>) {
        if !self.dying.is_empty() {
            return;
        }
        let Some(stopping) = self.stopping.take() else {
            return;
        };
        match &stopping.exit {
            SupervisorExit::Stopped => self.entry.set_status(Status::Stopped),
            SupervisorExit::Removed => {
                self.slot.current.end();
                self.root.registry().deregister(&self.entry);
            }
            SupervisorExit::Failed(_) => {
                self.entry.set_status(Status::Failed);
                if self.guard.parent().is_root() {
                    self.slot.current.end();
                }
            }
        }
        self.slot.clear(self.incarnation);
        self.guard.set(stopping.exit);
        self.ready.take();
        for reply in stopping.replies {
            let _ = reply.send(());
        }
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
            tap.record(crate::tap::TapRecord {
                via: Via::Local,
                sender: sender.map(ActorPath::shared),
                outcome: outcome.into(),
                ..tap.local_record(receiver.shared(), message_type.into())
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
        self.entry.starting(self.incarnation, self.clock.wall());
        self.refresh_summary();
        tracing::debug!(supervisor = %self.path, incarnation = self.incarnation, "kind supervisor started");
        // Status `starting` until the first listing is done, if the source lists.
        self.list(ctx);
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

/// Stop every child, then this incarnation; `reply` is told once all have ended.
pub(crate) struct StopKind {
    exit: SupervisorExit,
    reply: Option<oneshot::Sender<()>>,
}

impl Message for StopKind {
    type Result = ();
}

impl<L: ObjectLogic> Handler<ObjectChanged<L::Object>> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, msg: ObjectChanged<L::Object>, ctx: &mut Context<Self>) {
        if self.stopping.is_none() {
            self.object_changed(msg.key, Some(msg.object), msg.meta, ctx);
        }
    }
}

impl<L: ObjectLogic> Handler<ObjectRemoved> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, msg: ObjectRemoved, ctx: &mut Context<Self>) {
        if self.stopping.is_none() {
            self.object_removed(&msg.key, ctx);
        }
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

impl<L: ObjectLogic> Handler<StopKind> for KindSupervisor<L> {
    type Result = ();

    fn handle(&mut self, msg: StopKind, ctx: &mut Context<Self>) {
        self.begin_stop(msg.exit, msg.reply, ctx);
    }
}

/// A cloneable handle to a kind supervisor. It reaches whichever incarnation runs now, so it
/// survives the supervisor's restarts by its group.
pub struct KindHandle<L: ObjectLogic> {
    slot: Arc<KindSlot<L>>,
}

impl<L: ObjectLogic> Clone for KindHandle<L> {
    fn clone(&self) -> Self {
        KindHandle {
            slot: self.slot.clone(),
        }
    }
}

impl<L: ObjectLogic> std::fmt::Debug for KindHandle<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KindHandle").field(&self.slot.path).finish()
    }
}

impl<L: ObjectLogic> KindHandle<L> {
    pub(crate) fn new(slot: Arc<KindSlot<L>>) -> Self {
        KindHandle { slot }
    }

    /// The supervisor's path.
    pub fn path(&self) -> &ActorPath {
        &self.slot.path
    }

    /// Why no incarnation took the message.
    fn down(&self) -> SupervisorError {
        let path = self.slot.path.to_string();
        if self.slot.current.is_ended() {
            SupervisorError::Stopped { path }
        } else {
            SupervisorError::Unavailable { path }
        }
    }

    fn addr(&self) -> Result<Addr<KindSupervisor<L>>, SupervisorError> {
        self.slot.addr().ok_or_else(|| self.down())
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
        self.addr()?.send(msg).await.map_err(|_| self.down())
    }

    /// The object at `key` is gone: its actor stops and is forgotten.
    pub async fn object_removed(&self, key: ObjectKey) -> Result<(), SupervisorError> {
        self.addr()?
            .send(ObjectRemoved { key })
            .await
            .map_err(|_| self.down())
    }

    /// A handle to the actor of `key`, if the supervisor has one.
    pub async fn child(&self, key: &ObjectKey) -> Result<Option<ChildRef<L>>, SupervisorError> {
        let msg = GetChild {
            key: key.clone(),
            _logic: PhantomData,
        };
        self.addr()?.send(msg).await.map_err(|_| self.down())
    }

    /// Stops every child and the supervisor, waits until they have all ended, and removes them
    /// from the registry (and from its group, if it has one).
    pub async fn shutdown(&self) -> Result<(), SupervisorError> {
        self.addr()?;
        self.slot.stop_with(SupervisorExit::Removed).await;
        Ok(())
    }

    /// True while an incarnation of the supervisor runs.
    pub fn is_running(&self) -> bool {
        self.slot.addr().is_some_and(|a| a.connected())
    }
}
