//! [`ObjectHost`]: the generic actor that hosts one object's [`ObjectLogic`], and [`ChildRef`],
//! the stable handle its senders hold across restarts.
//!
//! The host is a thin shell. On start it loads its object from the [`Source`] (handling no
//! message until that is done) and rebuilds its state; for each message it calls the logic
//! under `catch_unwind`, hands the actions to the kind's [`Effects`] (also under
//! `catch_unwind`, with the message's correlation id in scope), updates its registry entry and
//! records the delivery in the tap. Any panic, fatal error or kill ends this incarnation only:
//! the state is dropped, never reused, and an `ExitGuard` tells the supervisor why, even when
//! the actor's task unwinds past every `catch_unwind` (a panic while loading from the source).
//!
//! Architecture invariant: nothing outside this module holds an `Addr<ObjectHost<_>>`; senders
//! hold a [`ChildRef`], so an incarnation's address never leaks and a restart is invisible to
//! them except for messages lost with the dead incarnation.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Instant, SystemTime};

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::clock::Clock;
use crate::correlation::in_actor_scope;
use crate::error::HostError;
use crate::logic::{Effects, ObjectLogic};
use crate::message::{Envelope, Meta, TapInfo};
use crate::path::{ActorPath, ObjectKey};
use crate::registry::{Entry, KillError, Role, Status};
use crate::source::{Source, SourceError};
use crate::tap::{MessageTap, TapRecord};

/// What every host of one kind shares.
pub(crate) struct KindShared<L: ObjectLogic> {
    pub(crate) kind: Arc<str>,
    pub(crate) logic: L,
    pub(crate) source: Arc<dyn Source<L::Object>>,
    pub(crate) effects: Arc<dyn Effects<L::Action>>,
    pub(crate) tap: MessageTap,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) mailbox_capacity: usize,
}

/// Why an incarnation of an object actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// Stopped by its supervisor: the object was removed, or the kind is restarting.
    Removed,
    /// Its source says the object no longer exists.
    Gone,
    Panicked(String),
    Fatal(String),
    Killed,
    LoadFailed(String),
    /// Ended without saying why (its mailbox closed).
    Stopped,
}

impl ExitReason {
    /// True if the supervisor should restart the actor.
    pub fn is_failure(&self) -> bool {
        !matches!(self, ExitReason::Removed | ExitReason::Gone)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Removed => f.write_str("removed"),
            ExitReason::Gone => f.write_str("object gone from its source"),
            ExitReason::Panicked(m) => write!(f, "panicked: {m}"),
            ExitReason::Fatal(m) => write!(f, "fatal: {m}"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::LoadFailed(m) => write!(f, "load failed: {m}"),
            ExitReason::Stopped => f.write_str("stopped"),
        }
    }
}

/// Sent by an incarnation's [`ExitGuard`] to its supervisor.
pub(crate) struct ChildExited {
    pub(crate) key: ObjectKey,
    pub(crate) id: u64,
    pub(crate) reason: ExitReason,
}

impl Message for ChildExited {
    type Result = ();
}

/// Reports the end of an incarnation to its supervisor when the actor is dropped, whatever
/// dropped it: a clean stop, or a panic unwinding the actor's task.
pub(crate) struct ExitGuard {
    notify: Recipient<ChildExited>,
    key: ObjectKey,
    id: u64,
    reason: Option<ExitReason>,
}

impl ExitGuard {
    pub(crate) fn new(notify: Recipient<ChildExited>, key: ObjectKey, id: u64) -> Self {
        ExitGuard {
            notify,
            key,
            id,
            reason: None,
        }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let reason = match self.reason.take() {
            Some(r) => r,
            None if std::thread::panicking() => {
                ExitReason::Panicked("panic outside a message handler".to_owned())
            }
            None => ExitReason::Stopped,
        };
        self.notify.do_send(ChildExited {
            key: self.key.clone(),
            id: self.id,
            reason,
        });
    }
}

/// The running incarnation of a slot.
struct Current<L: ObjectLogic> {
    addr: Addr<ObjectHost<L>>,
    kill: Arc<AtomicBool>,
}

/// One object's place under its supervisor: its path, registry entry and, while an incarnation
/// runs, that incarnation's address. It outlives the incarnations, and those of the supervisor
/// while a [`ChildRef`] holds it. A singleton has one, made with its spec.
pub(crate) struct Slot<L: ObjectLogic> {
    pub(crate) path: ActorPath,
    pub(crate) entry: Arc<Entry>,
    current: RwLock<Option<Current<L>>>,
}

impl<L: ObjectLogic> Slot<L> {
    pub(crate) fn new(path: ActorPath, kind: &str, role: Role, supervisor: ActorPath) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<Slot<L>>| {
            let for_kill = weak.clone();
            let kill_path = path.to_string();
            let killer = Box::new(move || match for_kill.upgrade() {
                Some(slot) => slot.kill(),
                None => Err(KillError::NotRunning {
                    path: kill_path.clone(),
                }),
            });
            let for_refresh = weak.clone();
            let refresher = Box::new(move || {
                let slot = for_refresh.upgrade()?;
                let request = slot.read().as_ref()?.addr.send(Summarize);
                Some(Box::pin(async move {
                    let _ = request.await;
                }) as BoxFuture<'static, ()>)
            });
            let entry = Entry::new(path.clone(), kind, role, Some(supervisor))
                .with_killer(killer)
                .with_refresher(refresher);
            Slot {
                entry: Arc::new(entry),
                path,
                current: RwLock::new(None),
            }
        })
    }

    /// Starts incarnation `incarnation` of the actor for `key` on the current arbiter; its
    /// exit is reported to `notify` under `id`. Its start runs on behalf of `start_meta`
    /// (the change that made the object appear, when one did).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        &self,
        key: &ObjectKey,
        shared: &Arc<KindShared<L>>,
        notify: Recipient<ChildExited>,
        id: u64,
        incarnation: u64,
        at: SystemTime,
        start_meta: Meta,
    ) {
        self.entry.starting(incarnation, at);
        let kill = Arc::new(AtomicBool::new(false));
        let guard = ExitGuard::new(notify, key.clone(), id);
        let mut host = ObjectHost::new(
            key.clone(),
            self.path.clone(),
            shared.clone(),
            self.entry.clone(),
            kill.clone(),
            guard,
        );
        host.start_meta = start_meta;
        self.set(host.start(), kill);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Current<L>>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, addr: Addr<ObjectHost<L>>, kill: Arc<AtomicBool>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Current { addr, kill });
    }

    /// Forgets the running incarnation and returns its address.
    pub(crate) fn clear(&self) -> Option<Addr<ObjectHost<L>>> {
        self.current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|c| c.addr)
    }

    fn kill(&self) -> Result<(), KillError> {
        let cur = self.read();
        match &*cur {
            Some(c) if !c.kill.swap(true, Ordering::Relaxed) => {
                // The flag stops the actor at its next message; this message wakes it now.
                c.addr.do_send(Kill);
                Ok(())
            }
            _ => Err(KillError::NotRunning {
                path: self.path.to_string(),
            }),
        }
    }

    /// Sends `msg` to the current incarnation, if any, counting it as queued.
    pub(crate) fn with_addr<T>(
        &self,
        f: impl FnOnce(&Addr<ObjectHost<L>>) -> T,
    ) -> Result<T, HostError> {
        let cur = self.read();
        match &*cur {
            Some(c) => {
                self.entry.stats().enqueued();
                Ok(f(&c.addr))
            }
            None => Err(HostError::Unavailable {
                path: self.path.to_string(),
            }),
        }
    }
}

/// A stable handle to a supervised object actor: it always reaches the current incarnation,
/// also after its kind supervisor was restarted, or stopped and started again by its group
/// (the new supervisor reuses the slot of every key a handle still holds). Convert it into a
/// [`Sender`](crate::Sender) to hand it to code that should not know the receiver's logic.
pub struct ChildRef<L: ObjectLogic> {
    slot: Arc<Slot<L>>,
}

impl<L: ObjectLogic> Clone for ChildRef<L> {
    fn clone(&self) -> Self {
        ChildRef {
            slot: self.slot.clone(),
        }
    }
}

impl<L: ObjectLogic> fmt::Debug for ChildRef<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ChildRef").field(&self.slot.path).finish()
    }
}

impl<L: ObjectLogic> ChildRef<L> {
    pub(crate) fn new(slot: Arc<Slot<L>>) -> Self {
        ChildRef { slot }
    }

    /// The actor's path.
    pub fn path(&self) -> &ActorPath {
        &self.slot.path
    }

    /// Sends `event` and waits until it is handled. The message carries the correlation id and
    /// actor path in scope where the future is first polled (so
    /// `with_correlation(id, child.send(e))` works). Waits for mailbox space if it is full.
    ///
    /// # Cancel safety
    /// Dropping the future after its first poll does not unqueue the message; it is still handled.
    pub fn send(&self, event: L::Event) -> impl Future<Output = Result<(), HostError>> + 'static {
        let slot = self.slot.clone();
        async move {
            let request = slot.with_addr(|addr| {
                addr.send(Envelope {
                    event,
                    meta: Meta::current(),
                })
            });
            Self::answer(&slot, request).await
        }
    }

    /// Like [`send`](Self::send) with explicit metadata (for messages that arrive from another
    /// process with their correlation id). The message is queued before this returns.
    pub fn send_with(
        &self,
        event: L::Event,
        meta: Meta,
    ) -> impl Future<Output = Result<(), HostError>> + 'static {
        let request = self
            .slot
            .with_addr(|addr| addr.send(Envelope { event, meta }));
        let slot = self.slot.clone();
        async move { Self::answer(&slot, request).await }
    }

    async fn answer(
        slot: &Slot<L>,
        request: Result<Request<ObjectHost<L>, Envelope<L::Event>>, HostError>,
    ) -> Result<(), HostError> {
        match request?.await {
            Ok(result) => result,
            Err(_) => Err(HostError::Lost {
                path: slot.path.to_string(),
            }),
        }
    }

    /// Queues `event` without waiting, even past the mailbox capacity.
    pub fn do_send(&self, event: L::Event) -> Result<(), HostError> {
        self.do_send_meta(event, Meta::current())
    }

    pub(crate) fn do_send_meta(&self, event: L::Event, meta: Meta) -> Result<(), HostError> {
        self.slot
            .with_addr(|addr| addr.do_send(Envelope { event, meta }))
    }

    /// Queues `event` without waiting, failing if the mailbox is full.
    pub fn try_send(&self, event: L::Event) -> Result<(), HostError> {
        self.try_send_meta(event, Meta::current())
    }

    pub(crate) fn try_send_meta(&self, event: L::Event, meta: Meta) -> Result<(), HostError> {
        self.slot
            .with_addr(|addr| addr.try_send(Envelope { event, meta }))?
            .map_err(|e| {
                self.slot.entry.stats().dequeued(1);
                match e {
                    SendError::Full(_) => HostError::MailboxFull {
                        path: self.slot.path.to_string(),
                    },
                    SendError::Closed(_) => HostError::Unavailable {
                        path: self.slot.path.to_string(),
                    },
                }
            })
    }
}

/// The stored object changed: delivered by the supervisor to a running incarnation.
pub(crate) struct Changed<O> {
    pub(crate) object: O,
    pub(crate) meta: Meta,
}

impl<O: 'static> Message for Changed<O> {
    type Result = Result<(), HostError>;
}

/// Publish your summary in the registry.
pub(crate) struct Summarize;

impl Message for Summarize {
    type Result = ();
}

/// Kill switch: stop now, as if crashed.
pub(crate) struct Kill;

impl Message for Kill {
    type Result = ();
}

/// Stop for good (the object was removed or the kind restarts).
pub(crate) struct Stop;

impl Message for Stop {
    type Result = ();
}

enum Input<L: ObjectLogic> {
    Event(L::Event),
    Changed(L::Object),
}

/// What the tap will need, captured before the input is consumed.
struct Pending {
    started: Instant,
    message_type: Cow<'static, str>,
    encoded_size: usize,
    summary: Option<String>,
}

impl<L: ObjectLogic> Input<L> {
    fn describe(&self, now: Instant) -> Pending {
        let (message_type, encoded_size, summary) = match self {
            Input::Event(e) => (e.message_type(), e.encoded_size(), e.summary()),
            Input::Changed(_) => (Cow::Borrowed("ObjectChanged"), 0, None),
        };
        Pending {
            started: now,
            message_type,
            encoded_size,
            summary,
        }
    }
}

/// The actor hosting one object (or a singleton). Created only by its supervisor.
pub struct ObjectHost<L: ObjectLogic> {
    key: ObjectKey,
    path: ActorPath,
    receiver: Arc<str>,
    shared: Arc<KindShared<L>>,
    entry: Arc<Entry>,
    kill: Arc<AtomicBool>,
    /// Boxed so the actor is `Unpin` whatever the state is.
    state: Option<Box<L::State>>,
    guard: ExitGuard,
    /// Whom the start acts for: its correlation id is in scope for the start's actions.
    start_meta: Meta,
}

impl<L: ObjectLogic> ObjectHost<L> {
    pub(crate) fn new(
        key: ObjectKey,
        path: ActorPath,
        shared: Arc<KindShared<L>>,
        entry: Arc<Entry>,
        kill: Arc<AtomicBool>,
        guard: ExitGuard,
    ) -> Self {
        ObjectHost {
            key,
            receiver: path.shared(),
            path,
            shared,
            entry,
            kill,
            state: None,
            guard,
            start_meta: Meta::default(),
        }
    }

    fn loaded(&mut self, result: Result<Option<L::Object>, SourceError>, ctx: &mut Context<Self>) {
        let object = match result {
            Ok(Some(object)) => object,
            Ok(None) => return self.die(ExitReason::Gone, ctx),
            Err(e) => return self.die(ExitReason::LoadFailed(e.to_string()), ctx),
        };
        let logic = &self.shared.logic;
        let key = &self.key;
        let started = catch_unwind(AssertUnwindSafe(|| {
            let mut state = logic.rebuild(key, object);
            let decision = logic.on_start(&mut state);
            let summary = logic.summary(&state);
            (state, decision, summary)
        }));
        match started {
            Ok((state, decision, summary)) => {
                self.state = Some(Box::new(state));
                self.entry.set_summary(summary);
                self.entry.set_status(Status::Running);
                tracing::debug!(actor = %self.path, "actor started");
                let pending = self.shared.tap.enabled().then(|| Pending {
                    started: self.shared.clock.now(),
                    message_type: Cow::Borrowed("Started"),
                    encoded_size: 0,
                    summary: None,
                });
                let meta = std::mem::take(&mut self.start_meta);
                match decision {
                    Ok(actions) if actions.is_empty() => {
                        let _ = self.finish(Ok(()), pending, meta, false);
                    }
                    Ok(actions) => {
                        let fut = self.perform(actions, pending, meta, false);
                        ctx.wait(fut.map(|_, _, _| ()));
                    }
                    Err(fatal) => self.die(ExitReason::Fatal(fatal.0), ctx),
                }
            }
            Err(panic) => self.die(ExitReason::Panicked(panic_message(&*panic)), ctx),
        }
    }

    fn deliver(&mut self, input: Input<L>, meta: Meta, ctx: &mut Context<Self>) -> HostReply<L> {
        self.entry.stats().dequeued(1);
        if self.kill.load(Ordering::Relaxed) {
            self.die(ExitReason::Killed, ctx);
            return HostReply::Ready(Err(HostError::Killed {
                path: self.path.to_string(),
            }));
        }
        let pending = self
            .shared
            .tap
            .enabled()
            .then(|| input.describe(self.shared.clock.now()));
        let Some(state) = self.state.as_mut() else {
            return HostReply::Ready(Err(HostError::Unavailable {
                path: self.path.to_string(),
            }));
        };
        let logic = &self.shared.logic;
        let _span =
            tracing::debug_span!("handle", actor = %self.path, correlation = ?meta.correlation)
                .entered();
        let step = catch_unwind(AssertUnwindSafe(|| match input {
            Input::Event(e) => logic.handle(state, e),
            Input::Changed(o) => logic.on_change(state, o),
        }));
        match step {
            Ok(Ok(actions)) => {
                if actions.is_empty() {
                    HostReply::Ready(self.finish(Ok(()), pending, meta, true))
                } else {
                    HostReply::Later(Box::pin(self.perform(actions, pending, meta, true)))
                }
            }
            Ok(Err(fatal)) => {
                let err = HostError::Fatal {
                    path: self.path.to_string(),
                    message: fatal.0.clone(),
                };
                let result = self.finish(Err(err), pending, meta, true);
                self.die(ExitReason::Fatal(fatal.0), ctx);
                HostReply::Ready(result)
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                let err = HostError::Panicked {
                    path: self.path.to_string(),
                    message: message.clone(),
                };
                let result = self.finish(Err(err), pending, meta, true);
                self.die(ExitReason::Panicked(message), ctx);
                HostReply::Ready(result)
            }
        }
    }

    /// Runs the effects for `actions` inside the actor, then finishes the message (or the
    /// start, when `message` is false).
    fn perform(
        &mut self,
        actions: Vec<L::Action>,
        pending: Option<Pending>,
        meta: Meta,
        message: bool,
    ) -> impl ActorFuture<Self, Output = Result<(), HostError>> + 'static {
        let fut = self.shared.effects.perform(&self.path, actions);
        let fut = in_actor_scope(
            self.path.clone(),
            meta.correlation,
            AssertUnwindSafe(fut).catch_unwind(),
        );
        fut.into_actor(self).map(move |outcome, act, ctx| {
            let path = act.path.to_string();
            match outcome {
                Ok(Ok(())) => act.finish(Ok(()), pending, meta, message),
                Ok(Err(e)) if !e.fatal => {
                    tracing::warn!(actor = %act.path, error = %e, "effects failed");
                    act.finish(
                        Err(HostError::Effect {
                            path,
                            message: e.message,
                        }),
                        pending,
                        meta,
                        message,
                    )
                }
                Ok(Err(e)) => {
                    let err = HostError::Fatal {
                        path,
                        message: e.message.clone(),
                    };
                    let result = act.finish(Err(err), pending, meta, message);
                    act.die(ExitReason::Fatal(e.message), ctx);
                    result
                }
                Err(panic) => {
                    let text = panic_message(&*panic);
                    let err = HostError::Panicked {
                        path,
                        message: text.clone(),
                    };
                    let result = act.finish(Err(err), pending, meta, message);
                    act.die(ExitReason::Panicked(text), ctx);
                    result
                }
            }
        })
    }

    /// Counts the message (unless it was the start) and records it in the tap.
    fn finish(
        &self,
        result: Result<(), HostError>,
        pending: Option<Pending>,
        meta: Meta,
        message: bool,
    ) -> Result<(), HostError> {
        if message {
            self.entry.stats().handled();
        }
        if let Some(p) = pending {
            let outcome = match &result {
                Ok(()) => Cow::Borrowed("ok"),
                Err(e) => Cow::Owned(outcome_of(e)),
            };
            self.shared.tap.record(TapRecord {
                seq: 0,
                time: self.shared.tap.wall_time(p.started),
                via: crate::tap::Via::Local,
                sender: meta.sender.map(|s| s.shared()),
                receiver: self.receiver.clone(),
                message_type: p.message_type,
                encoded_size: p.encoded_size,
                handling: self.shared.clock.now().saturating_duration_since(p.started),
                outcome,
                correlation: meta.correlation,
                summary: p.summary,
            });
        }
        result
    }

    /// Ends this incarnation; the guard tells the supervisor why.
    fn die(&mut self, reason: ExitReason, ctx: &mut Context<Self>) {
        if reason.is_failure() {
            tracing::warn!(actor = %self.path, kind = %self.shared.kind, reason = %reason, "actor failed");
            self.entry.set_last_error(reason.to_string());
        }
        self.state = None;
        self.guard.reason = Some(reason);
        ctx.stop();
    }
}

fn outcome_of(e: &HostError) -> String {
    match e {
        HostError::Panicked { message, .. } => format!("panicked: {message}"),
        HostError::Fatal { message, .. } => format!("fatal: {message}"),
        HostError::Effect { message, .. } => format!("error: {message}"),
        HostError::Killed { .. } => "killed".to_owned(),
        other => format!("error: {other}"),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl<L: ObjectLogic> Actor for ObjectHost<L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.shared.mailbox_capacity);
        // A panic inside `load` is not caught here: it unwinds the actor's task, and the
        // guard reports the death. No message is handled before the state is rebuilt.
        let load = self.shared.source.load(&self.key);
        ctx.wait(
            load.into_actor(self)
                .map(|result, act, ctx| act.loaded(result, ctx)),
        );
    }
}

/// A reply now, or after the actions are carried out (handling nothing else meanwhile).
pub enum HostReply<L: ObjectLogic> {
    Ready(Result<(), HostError>),
    Later(LaterReply<L>),
}

/// The reply of a message whose actions are still being carried out.
pub type LaterReply<L> =
    std::pin::Pin<Box<dyn ActorFuture<ObjectHost<L>, Output = Result<(), HostError>>>>;

impl<L, M> MessageResponse<ObjectHost<L>, M> for HostReply<L>
where
    L: ObjectLogic,
    M: Message<Result = Result<(), HostError>>,
{
    fn handle(self, ctx: &mut Context<ObjectHost<L>>, tx: Option<OneshotSender<M::Result>>) {
        match self {
            HostReply::Ready(result) => {
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
            HostReply::Later(fut) => {
                ctx.wait(fut.map(move |result, _, _| {
                    if let Some(tx) = tx {
                        let _ = tx.send(result);
                    }
                }));
            }
        }
    }
}

impl<L: ObjectLogic> Handler<Envelope<L::Event>> for ObjectHost<L> {
    type Result = HostReply<L>;

    fn handle(&mut self, msg: Envelope<L::Event>, ctx: &mut Context<Self>) -> HostReply<L> {
        self.deliver(Input::Event(msg.event), msg.meta, ctx)
    }
}

impl<L: ObjectLogic> Handler<Changed<L::Object>> for ObjectHost<L> {
    type Result = HostReply<L>;

    fn handle(&mut self, msg: Changed<L::Object>, ctx: &mut Context<Self>) -> HostReply<L> {
        self.deliver(Input::Changed(msg.object), msg.meta, ctx)
    }
}

impl<L: ObjectLogic> Handler<Summarize> for ObjectHost<L> {
    type Result = ();

    fn handle(&mut self, _: Summarize, ctx: &mut Context<Self>) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let logic = &self.shared.logic;
        match catch_unwind(AssertUnwindSafe(|| logic.summary(state))) {
            Ok(summary) => self.entry.set_summary(summary),
            Err(panic) => self.die(ExitReason::Panicked(panic_message(&*panic)), ctx),
        }
    }
}

impl<L: ObjectLogic> Handler<Kill> for ObjectHost<L> {
    type Result = ();

    fn handle(&mut self, _: Kill, ctx: &mut Context<Self>) {
        self.die(ExitReason::Killed, ctx);
    }
}

impl<L: ObjectLogic> Handler<Stop> for ObjectHost<L> {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.die(ExitReason::Removed, ctx);
    }
}
