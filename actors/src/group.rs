//! Groups: supervisors of supervisors. A [`GroupSupervisor`] owns child supervisors (kinds,
//! singletons, other groups), restarts a failed one with backoff, escalates past its intensity,
//! and stops and starts all of them together on request, as a controller manager does when its
//! master loses and gains leadership.
//!
//! Erlang's `one_for_one` supervisor, with two differences. The children are *supervisors*, so
//! a child "fails" only when it gives up (its own restart intensity exceeded) or panics; its
//! workers' crashes are its own business. And the group's children are a definition that
//! outlives the group's incarnations ([`GroupHandle::supervise`] adds to it): a group that
//! fails and is restarted by its parent starts every child it had again, each rebuilt from its
//! sources.
//!
//! - **Failure of a child**: counted against [`GroupConfig::child_policy`] for that child. Within
//!   the intensity it is started again after the backoff on the root's clock; past it the group
//!   gives up: it stops every child (in reverse order of addition, each awaited) and reports to
//!   its own parent. A group under the root then stays failed; under another group, that group
//!   restarts it.
//! - **[`stop_children`](GroupHandle::stop_children)**: stops every child, last added first,
//!   each awaited until every actor under it (hosts included) has ended. The children's
//!   registry entries stay, with status `stopped`; their hosts leave the registry. Idempotent;
//!   sticky across the group's own restarts until `start_children`.
//! - **[`start_children`](GroupHandle::start_children)**: starts every stopped child afresh (a
//!   kind lists its source again, a singleton reloads its snapshot) and waits until each is up.
//!   Idempotent: running children and children waiting out a backoff are left alone.
//!
//! The group handles nothing else while it starts or stops children, so those requests are
//! applied one at a time, in the order they arrive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::error::SupervisorError;
use crate::logic::ObjectLogic;
use crate::path::ActorPath;
use crate::policy::{Backoff, Intensity, RestartPolicy, RestartTracker, Verdict};
use crate::registry::{Entry, Role, Status};
use crate::root::Root;
use crate::singleton::{
    SingletonChild, SingletonLogic, SingletonRef, SingletonSlot, SingletonSpec,
};
use crate::supervisor::{
    EscalationAction, EscalationReport, KindChild, KindHandle, KindSlot, KindSpec,
};
use crate::tap::{TapRecord, Via};
use crate::tree::{ChildSupervisor, Parent, SupervisorExit, SupervisorExited, SupervisorGuard};

/// How a group treats its child supervisors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// Backoff and intensity for each child supervisor; a child failing more often than this
    /// fails the group.
    pub child_policy: RestartPolicy,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            child_policy: RestartPolicy {
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
        }
    }
}

/// Everything needed to start a group.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    relative_path: String,
    kind: String,
    config: GroupConfig,
}

impl GroupSpec {
    /// A group at `<parent>/<relative>` (`controllers`), shown as kind `group`.
    pub fn new(relative: &str) -> Self {
        GroupSpec {
            relative_path: relative.to_owned(),
            kind: "group".to_owned(),
            config: GroupConfig::default(),
        }
    }

    /// The kind the registry shows (`controller-manager`).
    pub fn kind(mut self, kind: &str) -> Self {
        kind.clone_into(&mut self.kind);
        self
    }

    pub fn config(mut self, config: GroupConfig) -> Self {
        self.config = config;
        self
    }

    pub(crate) fn relative_path(&self) -> &str {
        &self.relative_path
    }
}

/// What outlives a group's incarnations: its children and whether they should run.
struct Definition {
    children: Vec<Arc<dyn ChildSupervisor>>,
    current: Option<(u64, Addr<GroupSupervisor>)>,
    /// False after `stop_children` until `start_children`.
    wanted: bool,
}

/// A group's place in the tree.
pub(crate) struct GroupSlot {
    path: ActorPath,
    entry: Arc<Entry>,
    config: GroupConfig,
    root: Root,
    definition: Mutex<Definition>,
    incarnations: AtomicU64,
    ended: AtomicBool,
}

impl GroupSlot {
    pub(crate) fn new(
        path: ActorPath,
        spec: GroupSpec,
        parent: ActorPath,
        root: &Root,
    ) -> Arc<Self> {
        let entry = Arc::new(Entry::new(
            path.clone(),
            &spec.kind,
            Role::Group,
            Some(parent),
        ));
        root.registry().register(entry.clone());
        Arc::new(GroupSlot {
            path,
            entry,
            config: spec.config,
            root: root.clone(),
            definition: Mutex::new(Definition {
                children: Vec::new(),
                current: None,
                wanted: true,
            }),
            incarnations: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        })
    }

    fn definition(&self) -> MutexGuard<'_, Definition> {
        self.definition.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an incarnation on `arbiter` (the current one if `None`); resolves once it and
    /// its children are up.
    pub(crate) fn start_on(
        self: &Arc<Self>,
        arbiter: Option<&ArbiterHandle>,
        parent: Parent,
    ) -> BoxFuture<'static, ()> {
        let (ready, up) = oneshot::channel();
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = self.clone();
        let make = move || GroupSupervisor::new(slot, parent, incarnation, ready);
        // Under the lock: a child added meanwhile is either in the definition the new
        // incarnation reads, or added to the new incarnation by message.
        let mut definition = self.definition();
        let addr = match arbiter {
            Some(arbiter) => GroupSupervisor::start_in_arbiter(arbiter, move |_| make()),
            None => make().start(),
        };
        definition.current = Some((incarnation, addr));
        self.ended.store(false, Ordering::Relaxed);
        drop(definition);
        Box::pin(async move {
            let _ = up.await;
        })
    }

    fn addr(&self) -> Option<Addr<GroupSupervisor>> {
        self.definition().current.as_ref().map(|(_, a)| a.clone())
    }

    fn clear(&self, incarnation: u64) {
        let mut definition = self.definition();
        if definition
            .current
            .as_ref()
            .is_some_and(|(n, _)| *n == incarnation)
        {
            definition.current = None;
        }
    }

    fn stop_with(&self, exit: SupervisorExit) -> BoxFuture<'static, ()> {
        let addr = self.addr();
        Box::pin(async move {
            let Some(addr) = addr else { return };
            let (reply, done) = oneshot::channel();
            if addr.send(StopGroup { exit, reply }).await.is_ok() {
                let _ = done.await;
            }
        })
    }
}

/// A group as another group's child.
struct GroupChildSlot(Arc<GroupSlot>);

impl ChildSupervisor for GroupChildSlot {
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

enum Phase {
    Running,
    Backoff(SpawnHandle),
    Stopped,
}

struct Member {
    sup: Arc<dyn ChildSupervisor>,
    tracker: RestartTracker,
    /// The id of the running incarnation; exits of older ones are ignored.
    id: u64,
    phase: Phase,
}

/// A supervisor of supervisors. Create with [`Root::group`] or [`GroupHandle::group`].
pub struct GroupSupervisor {
    path: ActorPath,
    slot: Arc<GroupSlot>,
    entry: Arc<Entry>,
    root: Root,
    clock: Arc<dyn Clock>,
    guard: SupervisorGuard,
    incarnation: u64,
    members: Vec<Member>,
    next_id: u64,
    /// Set once the group is on its way out; it accepts no new work.
    stopping: bool,
    ready: Option<oneshot::Sender<()>>,
}

impl GroupSupervisor {
    fn new(
        slot: Arc<GroupSlot>,
        parent: Parent,
        incarnation: u64,
        ready: oneshot::Sender<()>,
    ) -> Self {
        let root = parent.root().clone();
        GroupSupervisor {
            path: slot.path.clone(),
            entry: slot.entry.clone(),
            clock: root.clock(),
            root,
            guard: SupervisorGuard::new(parent, slot.path.clone()),
            slot,
            incarnation,
            members: Vec::new(),
            next_id: 0,
            stopping: false,
            ready: Some(ready),
        }
    }

    fn position(&self, path: &ActorPath) -> Option<usize> {
        self.members.iter().position(|m| m.sup.path() == path)
    }

    /// Starts a fresh incarnation of member `i`; the future resolves once it is up.
    fn start_member(&mut self, i: usize, ctx: &mut Context<Self>) -> BoxFuture<'static, ()> {
        self.next_id += 1;
        let id = self.next_id;
        let parent = Parent::Group {
            root: self.root.clone(),
            path: self.path.clone(),
            notify: ctx.address().recipient(),
            id,
        };
        let member = &mut self.members[i];
        member.id = id;
        member.phase = Phase::Running;
        member.sup.start(parent)
    }

    /// Stops member `i` (its backoff, or its running incarnation); the future resolves once
    /// every actor under it has ended.
    fn stop_member(&mut self, i: usize, ctx: &mut Context<Self>) -> Option<BoxFuture<'static, ()>> {
        self.next_id += 1;
        let member = &mut self.members[i];
        // A new id: the exit of the incarnation stopped here is expected, not a failure.
        member.id = self.next_id;
        let entry = member.sup.entry().clone();
        match std::mem::replace(&mut member.phase, Phase::Stopped) {
            Phase::Stopped => None,
            Phase::Backoff(handle) => {
                ctx.cancel_future(handle);
                entry.set_status(Status::Stopped);
                None
            }
            Phase::Running => {
                let stop = member.sup.stop();
                Some(Box::pin(async move {
                    stop.await;
                    entry.set_status(Status::Stopped);
                }))
            }
        }
    }

    /// Stops every member, last added first, one after the other.
    fn stop_all(&mut self, ctx: &mut Context<Self>) -> BoxFuture<'static, ()> {
        let stops: Vec<_> = (0..self.members.len())
            .rev()
            .filter_map(|i| self.stop_member(i, ctx))
            .collect();
        Box::pin(async move {
            for stop in stops {
                stop.await;
            }
        })
    }

    /// Starts every stopped member, and waits until all are up.
    fn start_stopped(&mut self, ctx: &mut Context<Self>) -> BoxFuture<'static, ()> {
        let stopped: Vec<usize> = (0..self.members.len())
            .filter(|&i| matches!(self.members[i].phase, Phase::Stopped))
            .collect();
        let starts: Vec<_> = stopped
            .into_iter()
            .map(|i| self.start_member(i, ctx))
            .collect();
        Box::pin(async move {
            futures::future::join_all(starts).await;
        })
    }

    fn member_exited(&mut self, msg: SupervisorExited, ctx: &mut Context<Self>) {
        let Some(i) = self.members.iter().position(|m| m.id == msg.id) else {
            return;
        };
        if self.stopping {
            return;
        }
        let path = self.members[i].sup.path().clone();
        match msg.reason {
            SupervisorExit::Removed => {
                tracing::debug!(supervisor = %path, "child supervisor removed");
                let member = self.members.remove(i);
                member.sup.forget(&self.root.registry());
                self.slot
                    .definition()
                    .children
                    .retain(|c| c.path() != &path);
            }
            SupervisorExit::Stopped => {
                self.members[i].phase = Phase::Stopped;
                self.members[i].sup.entry().set_status(Status::Stopped);
            }
            SupervisorExit::Failed(reason) => self.member_failed(i, reason, ctx),
        }
        self.refresh_summary();
    }

    fn member_failed(&mut self, i: usize, reason: String, ctx: &mut Context<Self>) {
        let policy = self.slot.config.child_policy;
        let now = self.clock.now();
        let member = &mut self.members[i];
        let path = member.sup.path().clone();
        let entry = member.sup.entry().clone();
        entry.set_last_error(reason.clone());
        let verdict = member.tracker.on_failure(&policy, now);
        self.lifecycle(&path, "ActorExited", format!("failed: {reason}"));
        match verdict {
            Verdict::Restart { after, attempt } => {
                tracing::warn!(
                    supervisor = %path,
                    group = %self.path,
                    reason = %reason,
                    attempt,
                    backoff_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                    "child supervisor failed, restarting it"
                );
                entry.set_status(Status::Restarting);
                let id = self.members[i].id;
                let sleep = self.clock.sleep(after);
                let handle = ctx.spawn(
                    sleep
                        .into_actor(self)
                        .map(move |(), act, ctx| act.restart_member(&path, id, ctx)),
                );
                self.members[i].phase = Phase::Backoff(handle);
            }
            Verdict::Escalate { failures } => {
                // It stays down, shown as failed; the group's stop below leaves it alone.
                self.members[i].phase = Phase::Stopped;
                let error = format!("child {path} failed {failures} times, last: {reason}");
                self.root.escalated(EscalationReport {
                    time: self.clock.wall(),
                    child: path,
                    supervisor: self.path.clone(),
                    parent: self.guard.parent().path().clone(),
                    failures,
                    reason,
                    action: EscalationAction::GroupFailed,
                });
                self.entry.set_status(Status::Failed);
                self.entry.set_last_error(error.clone());
                self.finish(SupervisorExit::Failed(error), None, ctx);
            }
        }
    }

    fn restart_member(&mut self, path: &ActorPath, id: u64, ctx: &mut Context<Self>) {
        let Some(i) = self.position(path) else {
            return;
        };
        if self.members[i].id != id || !matches!(self.members[i].phase, Phase::Backoff(_)) {
            return;
        }
        let entry = self.members[i].sup.entry().clone();
        entry.restarted();
        let start = self.start_member(i, ctx);
        ctx.spawn(
            start
                .into_actor(self)
                .map(|(), act, _| act.refresh_summary()),
        );
        self.lifecycle(
            path,
            "ActorRestarted",
            format!("restart {}", entry.stats().restarts()),
        );
        self.refresh_summary();
    }

    /// Stops every member, then ends this incarnation with `exit` and answers `reply`.
    fn finish(
        &mut self,
        exit: SupervisorExit,
        reply: Option<oneshot::Sender<()>>,
        ctx: &mut Context<Self>,
    ) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        tracing::debug!(group = %self.path, exit = %exit, "stopping group");
        let stop = self.stop_all(ctx);
        ctx.wait(stop.into_actor(self).map(move |(), act, ctx| {
            match &exit {
                SupervisorExit::Stopped => act.entry.set_status(Status::Stopped),
                SupervisorExit::Removed => {
                    let registry = act.root.registry();
                    for member in &act.members {
                        member.sup.forget(&registry);
                    }
                    act.slot.definition().children.clear();
                    registry.deregister(&act.entry);
                    act.slot.ended.store(true, Ordering::Relaxed);
                }
                SupervisorExit::Failed(_) => {
                    act.entry.set_status(Status::Failed);
                    if act.guard.parent().is_root() {
                        tracing::error!(group = %act.path, "group exceeded its restart intensity and stopped with its children");
                        act.slot.ended.store(true, Ordering::Relaxed);
                    }
                }
            }
            act.refresh_summary();
            act.slot.clear(act.incarnation);
            act.guard.set(exit);
            act.ready.take();
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
            ctx.stop();
        }));
    }

    fn lifecycle(&self, receiver: &ActorPath, message_type: &'static str, outcome: String) {
        let tap = self.root.tap();
        if tap.enabled() {
            tap.record(TapRecord {
                via: Via::Local,
                sender: Some(self.path.shared()),
                outcome: outcome.into(),
                ..tap.local_record(receiver.shared(), message_type.into())
            });
        }
    }

    fn refresh_summary(&self) {
        let (mut running, mut restarting, mut stopped) = (0, 0, 0);
        for m in &self.members {
            match m.phase {
                Phase::Running => running += 1,
                Phase::Backoff(_) => restarting += 1,
                Phase::Stopped => stopped += 1,
            }
        }
        self.entry.set_summary(format!(
            "{} children: {running} running, {restarting} restarting, {stopped} stopped",
            self.members.len()
        ));
    }
}

impl Actor for GroupSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.entry.starting(self.incarnation, self.clock.wall());
        let (children, wanted) = {
            let definition = self.slot.definition();
            (definition.children.clone(), definition.wanted)
        };
        for sup in children {
            if !wanted {
                sup.entry().set_status(Status::Stopped);
            }
            self.members.push(Member {
                sup,
                tracker: RestartTracker::default(),
                id: 0,
                phase: Phase::Stopped,
            });
        }
        tracing::debug!(group = %self.path, incarnation = self.incarnation, children = self.members.len(), "group started");
        let start = if wanted {
            self.start_stopped(ctx)
        } else {
            Box::pin(async {})
        };
        ctx.wait(start.into_actor(self).map(|(), act, _| {
            act.entry.set_status(Status::Running);
            act.refresh_summary();
            if let Some(ready) = act.ready.take() {
                let _ = ready.send(());
            }
        }));
    }
}

/// Adopt `sup` (already in the definition) and start it if the group's children run.
struct AddChild {
    sup: Arc<dyn ChildSupervisor>,
    reply: oneshot::Sender<()>,
}

impl Message for AddChild {
    type Result = ();
}

struct StartChildren {
    reply: oneshot::Sender<()>,
}

impl Message for StartChildren {
    type Result = ();
}

struct StopChildren {
    reply: oneshot::Sender<()>,
}

impl Message for StopChildren {
    type Result = ();
}

/// Stop every child, then the group itself.
struct StopGroup {
    exit: SupervisorExit,
    reply: oneshot::Sender<()>,
}

impl Message for StopGroup {
    type Result = ();
}

impl Handler<AddChild> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AddChild, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if self.position(msg.sup.path()).is_some() {
            let _ = msg.reply.send(());
            return;
        }
        self.members.push(Member {
            sup: msg.sup,
            tracker: RestartTracker::default(),
            id: 0,
            phase: Phase::Stopped,
        });
        let i = self.members.len() - 1;
        if !self.slot.definition().wanted {
            self.members[i].sup.entry().set_status(Status::Stopped);
            self.refresh_summary();
            let _ = msg.reply.send(());
            return;
        }
        let start = self.start_member(i, ctx);
        let reply = msg.reply;
        ctx.wait(start.into_actor(self).map(move |(), act, _| {
            act.refresh_summary();
            let _ = reply.send(());
        }));
    }
}

impl Handler<StartChildren> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StartChildren, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.slot.definition().wanted = true;
        let start = self.start_stopped(ctx);
        self.refresh_summary();
        tracing::info!(group = %self.path, "starting children");
        let reply = msg.reply;
        ctx.wait(start.into_actor(self).map(move |(), act, _| {
            act.refresh_summary();
            let _ = reply.send(());
        }));
    }
}

impl Handler<StopChildren> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StopChildren, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.slot.definition().wanted = false;
        let stop = self.stop_all(ctx);
        self.refresh_summary();
        tracing::info!(group = %self.path, "stopping children");
        let reply = msg.reply;
        ctx.wait(stop.into_actor(self).map(move |(), act, _| {
            act.refresh_summary();
            let _ = reply.send(());
        }));
    }
}

impl Handler<StopGroup> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StopGroup, ctx: &mut Context<Self>) {
        self.finish(msg.exit, Some(msg.reply), ctx);
    }
}

impl Handler<SupervisorExited> for GroupSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SupervisorExited, ctx: &mut Context<Self>) {
        self.member_exited(msg, ctx);
    }
}

/// A cloneable handle to a group; it reaches whichever incarnation of the group runs now.
#[derive(Clone)]
pub struct GroupHandle {
    slot: Arc<GroupSlot>,
}

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GroupHandle").field(&self.slot.path).finish()
    }
}

impl GroupHandle {
    pub(crate) fn new(slot: Arc<GroupSlot>) -> Self {
        GroupHandle { slot }
    }

    /// The group's path.
    pub fn path(&self) -> &ActorPath {
        &self.slot.path
    }

    fn down(&self) -> SupervisorError {
        let path = self.slot.path.to_string();
        if self.slot.ended.load(Ordering::Relaxed) {
            SupervisorError::Stopped { path }
        } else {
            SupervisorError::Unavailable { path }
        }
    }

    /// Adds a child supervisor to the group's definition, made by `make` from its path, and
    /// starts it if the group's children run; resolves once it is up.
    async fn add<H>(
        &self,
        relative: &str,
        make: impl FnOnce(ActorPath, &Root) -> (Arc<dyn ChildSupervisor>, H),
    ) -> Result<H, SupervisorError> {
        let path = self.slot.path.join(relative)?;
        let root = &self.slot.root;
        let (sup, handle, addr) = {
            let mut definition = self.slot.definition();
            if definition.children.iter().any(|c| c.path() == &path) {
                return Err(SupervisorError::Duplicate {
                    path: path.to_string(),
                });
            }
            root.check_free(&path)?;
            let (sup, handle) = make(path, root);
            definition.children.push(sup.clone());
            let addr = definition.current.as_ref().map(|(_, a)| a.clone());
            (sup, handle, addr)
        };
        if let Some(addr) = addr {
            let (reply, done) = oneshot::channel();
            if addr.send(AddChild { sup, reply }).await.is_ok() {
                let _ = done.await;
            }
        }
        Ok(handle)
    }

    /// Supervises `spec`'s kind at `<group>/<spec path>` under this group. Resolves once the
    /// kind supervisor is up (its source listed), or at once if the group's children are
    /// stopped (the kind starts with them).
    pub async fn supervise<L: ObjectLogic>(
        &self,
        spec: KindSpec<L>,
    ) -> Result<KindHandle<L>, SupervisorError> {
        let relative = spec.relative_path().to_owned();
        let parent = self.slot.path.clone();
        self.add(&relative, move |path, root| {
            let slot = KindSlot::new(path, spec, parent, root);
            let sup: Arc<dyn ChildSupervisor> = Arc::new(KindChild(slot.clone()));
            (sup, KindHandle::new(slot))
        })
        .await
    }

    /// Supervises the singleton of `spec` under this group.
    pub async fn singleton<S: SingletonLogic>(
        &self,
        spec: SingletonSpec<S>,
    ) -> Result<SingletonRef<S>, SupervisorError> {
        let relative = spec.relative_path().to_owned();
        let parent = self.slot.path.clone();
        self.add(&relative, move |path, root| {
            let slot = SingletonSlot::new(path, spec, parent, root);
            let sup: Arc<dyn ChildSupervisor> = Arc::new(SingletonChild(slot.clone()));
            (sup, SingletonRef::new(slot))
        })
        .await
    }

    /// Supervises a nested group under this group.
    pub async fn group(&self, spec: GroupSpec) -> Result<GroupHandle, SupervisorError> {
        let relative = spec.relative_path().to_owned();
        let parent = self.slot.path.clone();
        self.add(&relative, move |path, root| {
            let slot = GroupSlot::new(path, spec, parent, root);
            let sup: Arc<dyn ChildSupervisor> = Arc::new(GroupChildSlot(slot.clone()));
            (sup, GroupHandle::new(slot))
        })
        .await
    }

    /// Stops every child supervisor and every actor under them, last added first, and waits
    /// until all have ended (an actor busy with a message, its effects or its load finishes
    /// that first). Idempotent. The children stay stopped, across restarts of the
    /// group too, until [`start_children`](Self::start_children).
    ///
    /// # Cancel safety
    /// Once the group has the request, dropping the future does not stop the stopping.
    pub async fn stop_children(&self) -> Result<(), SupervisorError> {
        let addr = {
            let mut definition = self.slot.definition();
            definition.wanted = false;
            definition.current.as_ref().map(|(_, a)| a.clone())
        };
        // No incarnation: nothing under the group runs, and the next one starts none.
        let Some(addr) = addr else { return Ok(()) };
        let (reply, done) = oneshot::channel();
        if addr.send(StopChildren { reply }).await.is_err() {
            return Ok(());
        }
        done.await.map_err(|_| self.down())
    }

    /// Starts every stopped child supervisor afresh, rebuilt from its sources, and waits until
    /// each is up. Idempotent. Fails if no incarnation of the group runs now (its next one
    /// starts them).
    ///
    /// # Cancel safety
    /// Once the group has the request, dropping the future does not stop the starting.
    pub async fn start_children(&self) -> Result<(), SupervisorError> {
        let addr = {
            let mut definition = self.slot.definition();
            definition.wanted = true;
            definition.current.as_ref().map(|(_, a)| a.clone())
        };
        let addr = addr.ok_or_else(|| self.down())?;
        let (reply, done) = oneshot::channel();
        addr.send(StartChildren { reply })
            .await
            .map_err(|_| self.down())?;
        done.await.map_err(|_| self.down())
    }

    /// Stops every child and the group, waits until all have ended, and removes them from the
    /// registry (and from the parent group, if any).
    pub async fn shutdown(&self) -> Result<(), SupervisorError> {
        if self.slot.addr().is_none() {
            return Err(self.down());
        }
        self.slot.stop_with(SupervisorExit::Removed).await;
        Ok(())
    }

    /// True while an incarnation of the group runs.
    pub fn is_running(&self) -> bool {
        self.slot.addr().is_some_and(|a| a.connected())
    }

    /// True unless [`stop_children`](Self::stop_children) is in force.
    pub fn children_wanted(&self) -> bool {
        self.slot.definition().wanted
    }
}
