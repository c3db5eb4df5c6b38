//! Singletons: the one actor of its kind (the scheduler), beside the per-object ones.
//!
//! A [`SingletonLogic`] is pure, like [`ObjectLogic`]: state and event in, actions out, tested
//! with plain calls. Each incarnation rebuilds its state from a snapshot its
//! [`SnapshotSource`] loads (the scheduler: the nodes and the pods), never from the dead one.
//! The actor around it is an ordinary [`ObjectHost`](crate::ObjectHost), so a singleton has
//! what hosts have: panics caught, effects run with the message's correlation id, a registry
//! entry (role `singleton`), the kill switch, and every message in the tap.
//!
//! A small supervisor restarts it after a panic, fatal error, kill or failed load, with
//! backoff and intensity on the root's clock ([`SingletonSpec::config`]); past its intensity the
//! singleton fails to its parent (a group restarts it; the root leaves it failed).
//! [`SingletonRef`] reaches whichever incarnation runs, across both kinds of restart and across
//! its group stopping and starting it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::error::{HostError, SupervisorError};
use crate::host::{ChildExited, ChildRef, KindShared, Slot, Stop};
use crate::incarnation::Current;
use crate::logic::{Decision, Effects, NoEffects, ObjectLogic};
use crate::message::{Meta, TapInfo};
use crate::path::{ActorPath, ObjectKey};
use crate::policy::{RestartPolicy, RestartTracker, Verdict};
use crate::registry::{Entry, Role, Status};
use crate::root::Root;
use crate::sender::Sender;
use crate::source::{Source, SourceError};
use crate::supervisor::{EscalationAction, EscalationReport};
use crate::tap::{TapRecord, Via};
use crate::tree::{ChildSupervisor, Parent, SupervisorExit, SupervisorGuard};

/// The decisions of a singleton, as pure functions. Like [`ObjectLogic`] without an object
/// key: its state is rebuilt from a snapshot of whatever it needs.
pub trait SingletonLogic: Send + Sync + 'static {
    /// What an incarnation rebuilds its state from.
    type Snapshot: Send + 'static;
    /// What the actor remembers between messages.
    type State: 'static;
    /// The messages it handles.
    type Event: TapInfo + Send + 'static;
    /// What it asks the outside world to do.
    type Action: Send + 'static;

    /// The state of a fresh incarnation.
    fn rebuild(&self, snapshot: Self::Snapshot) -> Self::State;

    /// Actions to take when an incarnation starts.
    fn on_start(&self, _state: &mut Self::State) -> Decision<Self::Action> {
        Ok(Vec::new())
    }

    /// A message arrived.
    fn handle(&self, state: &mut Self::State, event: Self::Event) -> Decision<Self::Action>;

    /// One line for the registry, computed when an incarnation starts and on refresh. Never
    /// include secrets.
    fn summary(&self, state: &Self::State) -> String;
}

/// Loads the snapshot a singleton rebuilds its state from (later: lists through the API layer).
pub trait SnapshotSource<T>: Send + Sync + 'static {
    fn load(&self) -> BoxFuture<'static, Result<T, SourceError>>;
}

/// How a singleton is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingletonConfig {
    /// Backoff and intensity of its restarts; past the intensity it fails to its parent.
    pub policy: RestartPolicy,
    /// Its mailbox capacity.
    pub mailbox_capacity: usize,
}

impl Default for SingletonConfig {
    fn default() -> Self {
        SingletonConfig {
            policy: RestartPolicy::default(),
            mailbox_capacity: 1024,
        }
    }
}

/// Everything needed to supervise a singleton.
pub struct SingletonSpec<S: SingletonLogic> {
    kind: String,
    relative_path: String,
    logic: S,
    source: Arc<dyn SnapshotSource<S::Snapshot>>,
    effects: Arc<dyn Effects<S::Action>>,
    config: SingletonConfig,
}

impl<S: SingletonLogic> SingletonSpec<S> {
    /// Singleton `kind` (`scheduler`) at `<parent>/<kind>` unless [`at`](Self::at) says
    /// otherwise, with no effects and the default config.
    pub fn new(kind: &str, logic: S, source: Arc<dyn SnapshotSource<S::Snapshot>>) -> Self {
        SingletonSpec {
            kind: kind.to_owned(),
            relative_path: kind.to_owned(),
            logic,
            source,
            effects: Arc::new(NoEffects),
            config: SingletonConfig::default(),
        }
    }

    /// Supervise at `<parent>/<relative>`.
    pub fn at(mut self, relative: &str) -> Self {
        relative.clone_into(&mut self.relative_path);
        self
    }

    pub fn effects(mut self, effects: Arc<dyn Effects<S::Action>>) -> Self {
        self.effects = effects;
        self
    }

    pub fn config(mut self, config: SingletonConfig) -> Self {
        self.config = config;
        self
    }

    pub(crate) fn relative_path(&self) -> &str {
        &self.relative_path
    }
}

/// A singleton's logic seen as the logic of one object, so that an [`ObjectHost`] hosts it.
///
/// [`ObjectHost`]: crate::ObjectHost
pub(crate) struct AsObject<S>(S);

impl<S: SingletonLogic> ObjectLogic for AsObject<S> {
    type Object = S::Snapshot;
    type State = S::State;
    type Event = S::Event;
    type Action = S::Action;

    fn rebuild(&self, _: &ObjectKey, snapshot: S::Snapshot) -> S::State {
        self.0.rebuild(snapshot)
    }

    fn on_start(&self, state: &mut S::State) -> Decision<S::Action> {
        self.0.on_start(state)
    }

    /// Never called: nobody feeds a singleton object changes.
    fn on_change(&self, _: &mut S::State, _: S::Snapshot) -> Decision<S::Action> {
        Ok(Vec::new())
    }

    fn handle(&self, state: &mut S::State, event: S::Event) -> Decision<S::Action> {
        self.0.handle(state, event)
    }

    fn summary(&self, state: &S::State) -> String {
        self.0.summary(state)
    }
}

/// A snapshot source seen as an object source whose one object always exists.
struct SnapshotAsSource<T>(Arc<dyn SnapshotSource<T>>);

impl<T: Send + 'static> Source<T> for SnapshotAsSource<T> {
    fn load(&self, _: &ObjectKey) -> BoxFuture<'static, Result<Option<T>, SourceError>> {
        self.0.load().map(|r| r.map(Some)).boxed()
    }
}

/// What outlives a singleton's incarnations and those of its supervisor.
pub(crate) struct SingletonSlot<S: SingletonLogic> {
    path: ActorPath,
    key: ObjectKey,
    host: Arc<Slot<AsObject<S>>>,
    shared: Arc<KindShared<AsObject<S>>>,
    config: SingletonConfig,
    current: Current<SingletonSupervisor<S>>,
    /// Host incarnations, counted across supervisor incarnations.
    incarnations: AtomicU64,
}

impl<S: SingletonLogic> SingletonSlot<S> {
    pub(crate) fn new(
        path: ActorPath,
        spec: SingletonSpec<S>,
        parent: ActorPath,
        root: &Root,
    ) -> Arc<Self> {
        let host = Slot::new(path.clone(), &spec.kind, Role::Singleton, parent);
        root.registry().register(host.entry.clone());
        Arc::new(SingletonSlot {
            path,
            key: ObjectKey::cluster("singleton").expect("a constant, valid key"),
            host,
            shared: Arc::new(KindShared {
                kind: Arc::from(spec.kind.as_str()),
                logic: AsObject(spec.logic),
                source: Arc::new(SnapshotAsSource(spec.source)),
                effects: spec.effects,
                tap: root.tap(),
                clock: root.clock(),
                mailbox_capacity: spec.config.mailbox_capacity.max(1),
            }),
            config: spec.config,
            current: Current::new(),
            incarnations: AtomicU64::new(0),
        })
    }

    /// Starts a supervisor incarnation (which starts the singleton) on `arbiter`, or the
    /// current arbiter.
    pub(crate) fn start_on(
        self: &Arc<Self>,
        arbiter: Option<&ArbiterHandle>,
        parent: Parent,
    ) -> BoxFuture<'static, ()> {
        let (ready, up) = oneshot::channel();
        let incarnation = self.current.next();
        let slot = self.clone();
        let make = move |ctx: &mut Context<SingletonSupervisor<S>>| {
            let mut sup = SingletonSupervisor::new(slot, parent, incarnation, ready);
            // Started before this returns, so that the singleton takes messages at once.
            sup.spawn(ctx);
            sup
        };
        let addr = match arbiter {
            Some(arbiter) => SingletonSupervisor::start_in_arbiter(arbiter, make),
            None => SingletonSupervisor::create(make),
        };
        self.current.set(incarnation, addr);
        Box::pin(async move {
            let _ = up.await;
        })
    }

    fn addr(&self) -> Option<Addr<SingletonSupervisor<S>>> {
        self.current.addr()
    }

    fn clear(&self, incarnation: u64) {
        self.current.clear(incarnation);
    }

    fn stop_with(&self, exit: SupervisorExit) -> BoxFuture<'static, ()> {
        let addr = self.addr();
        Box::pin(async move {
            let Some(addr) = addr else { return };
            let (reply, done) = oneshot::channel();
            if addr.send(StopSingleton { exit, reply }).await.is_ok() {
                let _ = done.await;
            }
        })
    }
}

/// A singleton as a group's child.
pub(crate) struct SingletonChild<S: SingletonLogic>(pub(crate) Arc<SingletonSlot<S>>);

impl<S: SingletonLogic> ChildSupervisor for SingletonChild<S> {
    fn path(&self) -> &ActorPath {
        &self.0.path
    }

    fn entry(&self) -> &Arc<Entry> {
        &self.0.host.entry
    }

    fn start(&self, parent: Parent) -> BoxFuture<'static, ()> {
        self.0.start_on(None, parent)
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        self.0.stop_with(SupervisorExit::Stopped)
    }
}

enum Phase {
    Running,
    Backoff(SpawnHandle),
    Down,
}

/// A stop in progress.
struct Stopping {
    exit: SupervisorExit,
    replies: Vec<oneshot::Sender<()>>,
}

/// Restarts one singleton. Internal: the registry shows the singleton itself, whose
/// supervisor is the group or root above.
pub struct SingletonSupervisor<S: SingletonLogic> {
    slot: Arc<SingletonSlot<S>>,
    root: Root,
    clock: Arc<dyn Clock>,
    guard: SupervisorGuard,
    incarnation: u64,
    tracker: RestartTracker,
    next_id: u64,
    /// The id of the host incarnation started last.
    id: u64,
    phase: Phase,
    /// A host told to stop whose exit has not arrived yet.
    dying: Option<u64>,
    stopping: Option<Stopping>,
    ready: Option<oneshot::Sender<()>>,
}

impl<S: SingletonLogic> SingletonSupervisor<S> {
    fn new(
        slot: Arc<SingletonSlot<S>>,
        parent: Parent,
        incarnation: u64,
        ready: oneshot::Sender<()>,
    ) -> Self {
        let root = parent.root().clone();
        SingletonSupervisor {
            clock: root.clock(),
            root,
            guard: SupervisorGuard::new(parent, slot.path.clone()),
            slot,
            incarnation,
            tracker: RestartTracker::default(),
            next_id: 0,
            id: 0,
            phase: Phase::Down,
            dying: None,
            stopping: None,
            ready: Some(ready),
        }
    }

    fn entry(&self) -> &Arc<Entry> {
        &self.slot.host.entry
    }

    fn spawn(&mut self, ctx: &mut Context<Self>) {
        self.next_id += 1;
        self.id = self.next_id;
        let incarnation = self.slot.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        self.slot.host.spawn(
            &self.slot.key,
            &self.slot.shared,
            ctx.address().recipient(),
            self.id,
            incarnation,
            self.wall(),
            crate::message::Meta::default(),
        );
        self.phase = Phase::Running;
    }

    fn wall(&self) -> SystemTime {
        self.clock.wall()
    }

    fn host_exited(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        if self.dying == Some(msg.id) {
            self.dying = None;
        }
        if self.stopping.is_some() {
            self.finish_if_done(ctx);
            return;
        }
        if msg.id != self.id || !matches!(self.phase, Phase::Running) {
            return;
        }
        self.slot.host.clear();
        self.entry().stats().drain();
        self.phase = Phase::Down;
        if !msg.reason.is_failure() {
            return;
        }
        let path = self.slot.path.clone();
        self.entry().set_last_error(msg.reason.to_string());
        self.lifecycle(&path, "ActorExited", msg.reason.to_string());
        match self
            .tracker
            .on_failure(&self.slot.config.policy, self.clock.now())
        {
            Verdict::Restart { after, attempt } => {
                tracing::info!(
                    actor = %path,
                    reason = %msg.reason,
                    attempt,
                    backoff_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                    "restarting singleton"
                );
                self.entry().set_status(Status::Restarting);
                let id = self.id;
                let sleep = self.clock.sleep(after);
                let handle = ctx.spawn(
                    sleep
                        .into_actor(self)
                        .map(move |(), act, ctx| act.restart(id, ctx)),
                );
                self.phase = Phase::Backoff(handle);
            }
            Verdict::Escalate { failures } => {
                let reason = msg.reason.to_string();
                self.root.escalated(EscalationReport {
                    time: self.wall(),
                    child: path.clone(),
                    supervisor: path,
                    parent: self.guard.parent().path().clone(),
                    failures,
                    reason: reason.clone(),
                    action: EscalationAction::SingletonFailed,
                });
                self.entry().set_status(Status::Failed);
                let error = format!("singleton failed {failures} times, last: {reason}");
                self.begin_stop(SupervisorExit::Failed(error), None, ctx);
            }
        }
    }

    fn restart(&mut self, id: u64, ctx: &mut Context<Self>) {
        if id != self.id || !matches!(self.phase, Phase::Backoff(_)) {
            return;
        }
        self.entry().restarted();
        let restarts = self.entry().stats().restarts();
        self.spawn(ctx);
        let path = self.slot.path.clone();
        self.lifecycle(&path, "ActorRestarted", format!("restart {restarts}"));
    }

    fn begin_stop(
        &mut self,
        exit: SupervisorExit,
        reply: Option<oneshot::Sender<()>>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(stopping) = &mut self.stopping {
            if exit == SupervisorExit::Removed {
                stopping.exit = exit;
            }
            stopping.replies.extend(reply);
            return;
        }
        self.stopping = Some(Stopping {
            exit,
            replies: reply.into_iter().collect(),
        });
        if let Phase::Backoff(handle) = std::mem::replace(&mut self.phase, Phase::Down) {
            ctx.cancel_future(handle);
        }
        if let Some(addr) = self.slot.host.clear() {
            addr.do_send(Stop);
            self.dying = Some(self.id);
        }
        self.finish_if_done(ctx);
    }

    fn finish_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.dying.is_some() {
            return;
        }
        let Some(stopping) = self.stopping.take() else {
            return;
        };
        self.entry().stats().drain();
        match &stopping.exit {
            SupervisorExit::Stopped => self.entry().set_status(Status::Stopped),
            SupervisorExit::Removed => {
                self.root.registry().deregister(&self.slot.host.entry);
                self.slot.current.end();
            }
            SupervisorExit::Failed(_) => {
                self.entry().set_status(Status::Failed);
                if self.guard.parent().is_root() {
                    self.slot.current.end();
                }
            }
        }
        self.slot.clear(self.incarnation);
        self.guard.set(stopping.exit);
        for reply in stopping.replies {
            let _ = reply.send(());
        }
        ctx.stop();
    }

    fn lifecycle(&self, receiver: &ActorPath, message_type: &'static str, outcome: String) {
        let tap = &self.slot.shared.tap;
        if tap.enabled() {
            tap.record(TapRecord {
                via: Via::Local,
                sender: Some(self.guard.parent().path().shared()),
                outcome: outcome.into(),
                ..tap.local_record(receiver.shared(), message_type.into())
            });
        }
    }
}

impl<S: SingletonLogic> Actor for SingletonSupervisor<S> {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        tracing::debug!(actor = %self.slot.path, incarnation = self.incarnation, "singleton supervisor started");
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
    }
}

/// Stop the singleton, then its supervisor.
struct StopSingleton {
    exit: SupervisorExit,
    reply: oneshot::Sender<()>,
}

impl Message for StopSingleton {
    type Result = ();
}

impl<S: SingletonLogic> Handler<StopSingleton> for SingletonSupervisor<S> {
    type Result = ();

    fn handle(&mut self, msg: StopSingleton, ctx: &mut Context<Self>) {
        self.begin_stop(msg.exit, Some(msg.reply), ctx);
    }
}

impl<S: SingletonLogic> Handler<ChildExited> for SingletonSupervisor<S> {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        self.host_exited(msg, ctx);
    }
}

/// A stable handle to a singleton: it reaches whichever incarnation runs now.
pub struct SingletonRef<S: SingletonLogic> {
    slot: Arc<SingletonSlot<S>>,
    child: ChildRef<AsObject<S>>,
}

impl<S: SingletonLogic> Clone for SingletonRef<S> {
    fn clone(&self) -> Self {
        SingletonRef {
            slot: self.slot.clone(),
            child: self.child.clone(),
        }
    }
}

impl<S: SingletonLogic> std::fmt::Debug for SingletonRef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SingletonRef")
            .field(&self.slot.path)
            .finish()
    }
}

impl<S: SingletonLogic> SingletonRef<S> {
    pub(crate) fn new(slot: Arc<SingletonSlot<S>>) -> Self {
        SingletonRef {
            child: ChildRef::new(slot.host.clone()),
            slot,
        }
    }

    /// The singleton's path.
    pub fn path(&self) -> &ActorPath {
        &self.slot.path
    }

    /// Sends `event` and waits until it is handled; see [`ChildRef::send`].
    ///
    /// # Cancel safety
    /// Dropping the future after its first poll does not unqueue the message.
    pub fn send(
        &self,
        event: S::Event,
    ) -> impl std::future::Future<Output = Result<(), HostError>> + Send + 'static {
        self.child.send(event)
    }

    /// Like [`send`](Self::send) with explicit metadata.
    pub fn send_with(
        &self,
        event: S::Event,
        meta: Meta,
    ) -> impl std::future::Future<Output = Result<(), HostError>> + Send + 'static {
        self.child.send_with(event, meta)
    }

    /// Queues `event` without waiting, even past the mailbox capacity.
    pub fn do_send(&self, event: S::Event) -> Result<(), HostError> {
        self.child.do_send(event)
    }

    /// Queues `event` without waiting, failing if the mailbox is full.
    pub fn try_send(&self, event: S::Event) -> Result<(), HostError> {
        self.child.try_send(event)
    }

    /// A typed sender to this singleton.
    pub fn sender(&self) -> Sender<S::Event> {
        Sender::new(self.child.clone())
    }

    /// Stops the singleton for good, waits until it has ended, and removes it from the
    /// registry (and from its group, if any).
    pub async fn shutdown(&self) -> Result<(), SupervisorError> {
        if self.slot.addr().is_none() {
            let path = self.slot.path.to_string();
            return Err(if self.slot.current.is_ended() {
                SupervisorError::Stopped { path }
            } else {
                SupervisorError::Unavailable { path }
            });
        }
        self.slot.stop_with(SupervisorExit::Removed).await;
        Ok(())
    }

    /// True while an incarnation has rebuilt its state and handles messages.
    pub fn is_running(&self) -> bool {
        self.slot.host.entry.status() == Status::Running
    }
}

impl<S: SingletonLogic> From<SingletonRef<S>> for Sender<S::Event> {
    fn from(r: SingletonRef<S>) -> Self {
        r.sender()
    }
}
