//! The pod garbage collector (Kubernetes' PodGC): a singleton on the active master that
//! force-deletes the pods nobody else will end, as `pod-garbage-collector`: orphans of nodes
//! that are gone (after the quarantine, and a live read of the node), terminating pods on
//! out-of-service nodes or on no node, and terminated pods beyond
//! `--terminated-pod-gc-threshold`. The decisions are `navarch_logic::podgc::pass`'s; the
//! actor keeps its `Memory` (the node absences it has observed, the pods it collected
//! lately), runs a pass over the shared pod and node caches and carries the plan out.
//!
//! Passes start when the caches show something that may need collecting (a pod terminating
//! or bound to a node the node cache does not know, a node deleted or put out of service;
//! several within [`POKE_INTERVAL`] make one pass), when a node's quarantine ends, and every
//! `ControllerConfig::pod_gc_check_period` (Kubernetes' 20 s) for the rest: the terminated
//! pods' threshold and whatever a failed write left. A restarted actor starts with a pass
//! and with its quarantines over again; what an earlier incarnation deleted answers 404.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::StreamExt;
use navarch_actors::{
    ActorPath, Clock, Decision, EffectError, Effects, GroupHandle, SingletonLogic, SingletonRef,
    SingletonSpec, SnapshotSource, SourceError, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subresource, Subscription};
use navarch_logic::podgc::{self, Collect, Memory, Plan, PodGcConfig};
use navarch_model::identity::POD_GARBAGE_COLLECTOR;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, GetOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use tokio::task::JoinHandle;

use crate::context::Ctx;

/// The shortest time between two passes started by cache changes.
pub const POKE_INTERVAL: Duration = Duration::from_secs(1);
/// Pods collected at once.
const CONCURRENT_COLLECTS: usize = 32;

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

fn nodes() -> &'static Kind {
    navarch_client::kind("", "v1", "nodes")
}

/// What the collector hears.
#[derive(Debug, Clone)]
pub enum PodGcEvent {
    /// The periodic pass.
    Pass,
    /// The caches changed in a way that may give it work.
    Poked,
    /// A timer it set (a quarantine's end, a poke held back) ran out.
    Woke,
}

impl TapInfo for PodGcEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            PodGcEvent::Pass => "Pass",
            PodGcEvent::Poked => "Poked",
            PodGcEvent::Woke => "Woke",
        }
        .into()
    }
}

/// What the collector asks for.
#[derive(Debug)]
pub enum PodGcAction {
    /// Carry out a pass's plan.
    Carry(Plan),
    /// Send `Woke` after this long.
    WakeIn(Duration),
}

/// The collector's state: what its passes observed (quarantines, pods collected lately),
/// when it last passed and the timer it has set.
#[derive(Debug, Default)]
pub struct PodGcState {
    memory: Memory,
    last_pass: Option<Instant>,
    /// When the earliest timer it set runs out.
    wake: Option<Instant>,
    passes: u64,
    collected: u64,
}

/// The collector's decisions around `podgc::pass`: when to pass, and the timers.
pub struct PodGcLogic {
    pods: Cache,
    nodes: Cache,
    clock: Arc<dyn Clock>,
    cfg: PodGcConfig,
    /// Set by the feeds when they send `Poked`, cleared by a pass: one poke in the mailbox
    /// at a time.
    poked: Arc<AtomicBool>,
}

impl PodGcLogic {
    fn unix_now(&self) -> i64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Asks for a `Woke` after `after`, unless a timer set before runs out sooner.
    fn wake_in(&self, state: &mut PodGcState, after: Duration, out: &mut Vec<PodGcAction>) {
        let at = self.clock.now() + after;
        if state.wake.is_some_and(|w| w <= at && w > self.clock.now()) {
            return;
        }
        state.wake = Some(at);
        out.push(PodGcAction::WakeIn(after));
    }

    fn pass(&self, state: &mut PodGcState) -> Vec<PodGcAction> {
        // Cleared before the caches are read: a change after this pokes again.
        self.poked.store(false, Ordering::SeqCst);
        let now = self.unix_now();
        let plan = podgc::pass(
            &self.pods.list(),
            &self.nodes.list(),
            &mut state.memory,
            &self.cfg,
            now,
        );
        state.last_pass = Some(self.clock.now());
        state.passes += 1;
        state.collected += plan.len() as u64;
        let mut out = Vec::new();
        if let Some(next) = plan.next {
            // The logic counts whole seconds: a second more, so the pass finds it ended.
            let after = Duration::from_secs((next - now).max(0) as u64 + 1);
            self.wake_in(state, after, &mut out);
        }
        if !plan.is_empty() {
            out.push(PodGcAction::Carry(plan));
        }
        out
    }
}

impl SingletonLogic for PodGcLogic {
    type Snapshot = ();
    type State = PodGcState;
    type Event = PodGcEvent;
    type Action = PodGcAction;

    fn rebuild(&self, _: ()) -> PodGcState {
        PodGcState::default()
    }

    fn on_start(&self, state: &mut PodGcState) -> Decision<PodGcAction> {
        Ok(self.pass(state))
    }

    fn handle(&self, state: &mut PodGcState, event: PodGcEvent) -> Decision<PodGcAction> {
        let now = self.clock.now();
        match event {
            PodGcEvent::Pass => Ok(self.pass(state)),
            PodGcEvent::Woke => {
                if state.wake.is_some_and(|w| w <= now) {
                    state.wake = None;
                }
                Ok(self.pass(state))
            }
            PodGcEvent::Poked => {
                let since = state.last_pass.map(|t| now.saturating_duration_since(t));
                match since {
                    Some(since) if since < POKE_INTERVAL => {
                        // Held back: the timer's pass sees this change and those after it
                        // (the flag stays set until then, so they send nothing).
                        let mut out = Vec::new();
                        self.wake_in(state, POKE_INTERVAL - since, &mut out);
                        Ok(out)
                    }
                    _ => Ok(self.pass(state)),
                }
            }
        }
    }

    fn summary(&self, state: &PodGcState) -> String {
        format!(
            "passes {}, nodes in quarantine {}, pods collected {}",
            state.passes,
            state.memory.quarantined(),
            state.collected
        )
    }
}

/// The collector's snapshot: nothing but the caches having synced.
struct Synced {
    pods: Cache,
    nodes: Cache,
}

impl SnapshotSource<()> for Synced {
    fn load(&self) -> BoxFuture<'static, Result<(), SourceError>> {
        let (pods, nodes) = (self.pods.clone(), self.nodes.clone());
        Box::pin(async move {
            let stopped = |_| SourceError::Unavailable("the watch cache stopped".into());
            pods.wait_synced().await.map_err(stopped)?;
            nodes.wait_synced().await.map_err(stopped)?;
            Ok(())
        })
    }
}

struct PodGcEffects {
    client: Arc<dyn Client>,
    clock: Arc<dyn Clock>,
    handle: Arc<OnceLock<SingletonRef<PodGcLogic>>>,
}

impl PodGcEffects {
    /// Marks the pod failed if the plan says so, then deletes it at once.
    async fn collect(&self, c: &Collect) {
        let pod = format!("{}/{}", c.namespace, c.name);
        let opts = WriteOptions::default();
        if let Some(body) = &c.status {
            let patch = Patch {
                ty: PatchType::StrategicMerge,
                body: body.clone(),
            };
            match self
                .client
                .patch(
                    pods(),
                    Some(&c.namespace),
                    &c.name,
                    Some(Subresource::Status),
                    patch,
                    &opts,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return,
                Err(e) => {
                    tracing::warn!(pod = %pod, reason = %c.reason, error = %e, "pod not marked failed; left for the next pass");
                    return;
                }
            }
        }
        let del = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(c.uid.clone()),
            ..DeleteOptions::default()
        };
        match self
            .client
            .delete(pods(), Some(&c.namespace), &c.name, &del)
            .await
        {
            Ok(_) => tracing::info!(pod = %pod, reason = %c.reason, "force-deleted a pod"),
            Err(e) if e.is_not_found() => {}
            Err(e) if e.is_conflict() => {
                tracing::debug!(pod = %pod, "pod replaced under its name; not deleted")
            }
            Err(e) => {
                tracing::warn!(pod = %pod, reason = %c.reason, error = %e, "pod not deleted; left for the next pass")
            }
        }
    }

    async fn collect_all(&self, collects: &[Collect]) {
        futures::stream::iter(collects)
            .for_each_concurrent(CONCURRENT_COLLECTS, |c| self.collect(c))
            .await;
    }

    async fn carry(&self, plan: Plan) {
        self.collect_all(&plan.collect).await;
        for (node, orphans) in &plan.orphans {
            // The cache may lag behind a node that came back: only a live read says it is
            // gone.
            match self
                .client
                .get(nodes(), None, node, &GetOptions::default())
                .await
            {
                Err(e) if e.is_not_found() => {
                    tracing::info!(node = %node, pods = orphans.len(), "node gone; force-deleting its pods");
                    self.collect_all(orphans).await;
                }
                Ok(_) => tracing::debug!(node = %node, "node exists after all; its pods stay"),
                Err(e) => {
                    tracing::debug!(node = %node, error = %e, "node not read; its pods wait for the next pass")
                }
            }
        }
    }
}

impl Effects<PodGcAction> for Arc<PodGcEffects> {
    fn perform(
        &self,
        _actor: &ActorPath,
        actions: Vec<PodGcAction>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let me = self.clone();
        Box::pin(async move {
            for action in actions {
                match action {
                    PodGcAction::Carry(plan) => me.carry(plan).await,
                    PodGcAction::WakeIn(after) => {
                        let (clock, handle) = (me.clock.clone(), me.handle.clone());
                        tokio::spawn(async move {
                            clock.sleep(after).await;
                            if let Some(h) = handle.get() {
                                let _ = h.send(PodGcEvent::Woke).await;
                            }
                        });
                    }
                }
            }
            Ok(())
        })
    }
}

/// The running pod garbage collector of one activation.
pub struct PodGarbageCollector {
    pub handle: SingletonRef<PodGcLogic>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PodGarbageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodGarbageCollector").finish()
    }
}

impl Drop for PodGarbageCollector {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl PodGarbageCollector {
    /// Supervises the collector under `group` and feeds it.
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<PodGarbageCollector, SupervisorError> {
        let pod_cache = ctx.cache(pods());
        let node_cache = ctx.cache(nodes());
        let poked = Arc::new(AtomicBool::new(false));
        let me = Arc::new(OnceLock::new());
        let logic = PodGcLogic {
            pods: pod_cache.clone(),
            nodes: node_cache.clone(),
            clock: ctx.clock.clone(),
            cfg: PodGcConfig {
                quarantine: ctx.config.pod_gc_quarantine.as_secs() as i64,
                terminated_threshold: ctx.config.terminated_pod_gc_threshold,
            },
            poked: poked.clone(),
        };
        let effects = Arc::new(PodGcEffects {
            client: ctx.clients.client(&POD_GARBAGE_COLLECTOR),
            clock: ctx.clock.clone(),
            handle: me.clone(),
        });
        let spec = SingletonSpec::new(
            "pod-garbage-collector",
            logic,
            Arc::new(Synced {
                pods: pod_cache.clone(),
                nodes: node_cache.clone(),
            }),
        )
        .effects(Arc::new(effects));
        // Subscribed before the first pass: no change after it goes unnoticed.
        let pod_sub = pod_cache.subscribe();
        let node_sub = node_cache.subscribe();
        let handle = group.singleton(spec).await?;
        let _ = me.set(handle.clone());
        let period = ctx
            .config
            .pod_gc_check_period
            .max(Duration::from_millis(100));
        let clock = ctx.clock.clone();
        let periodic = {
            let handle = handle.clone();
            tokio::spawn(async move {
                loop {
                    clock.sleep(period).await;
                    let _ = handle.send(PodGcEvent::Pass).await;
                }
            })
        };
        let tasks = vec![
            tokio::spawn(feed_pods(
                handle.clone(),
                pod_sub,
                node_cache,
                poked.clone(),
            )),
            tokio::spawn(feed_nodes(handle.clone(), node_sub, poked)),
            periodic,
        ];
        Ok(PodGarbageCollector { handle, tasks })
    }
}

/// Sends one `Poked` unless one is waiting already.
async fn poke(handle: &SingletonRef<PodGcLogic>, poked: &AtomicBool) {
    if poked.swap(true, Ordering::SeqCst) {
        return;
    }
    // Sent again to the next incarnation if this one was restarting; a poke lost with an
    // incarnation leaves the flag set, which its successor's first pass clears.
    while handle.send(PodGcEvent::Poked).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !poked.load(Ordering::SeqCst) {
            return;
        }
    }
}

async fn feed_pods(
    handle: SingletonRef<PodGcLogic>,
    mut sub: Subscription,
    nodes: Cache,
    poked: Arc<AtomicBool>,
) {
    while let Some(event) = sub.recv().await {
        let worth = match &event {
            CacheEvent::Added(p) | CacheEvent::Updated { new: p, .. } => {
                podgc::worth_a_pass(p, |n| nodes.get(None, n).is_some())
            }
            CacheEvent::Deleted(_) => false,
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => true,
        };
        if worth {
            poke(&handle, &poked).await;
        }
    }
}

async fn feed_nodes(
    handle: SingletonRef<PodGcLogic>,
    mut sub: Subscription,
    poked: Arc<AtomicBool>,
) {
    while let Some(event) = sub.recv().await {
        let worth = match &event {
            // Its pods' quarantine begins.
            CacheEvent::Deleted(_) => true,
            CacheEvent::Added(n) => podgc::out_of_service(n),
            CacheEvent::Updated { old, new } => {
                podgc::out_of_service(new) && !podgc::out_of_service(old)
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => true,
        };
        if worth {
            poke(&handle, &poked).await;
        }
    }
}
