//! The scheduler: a singleton actor on the active master. It keeps
//! `navarch_logic::scheduler::ClusterState` (nodes and what is bound or assumed on them)
//! from the node and pod caches, places each pending pod with the pure `schedule`, and
//! binds it through `pods/binding` as `system:kube-scheduler`. Bindings run concurrently in
//! the background (the store batches them into few Raft entries); a pod counts as assumed
//! on its node until the binding shows in the cache or fails. An unschedulable pod gets
//! `PodScheduled=False` and a `FailedScheduling` event, and is tried again when the cluster
//! changes (a node added or changed, a pod gone), never in a loop. A failed binding is tried
//! again after a pause, unless its pod is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, SingletonLogic, SingletonRef,
    SingletonSpec, SnapshotSource, SourceError, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subresource, Subscription};
use navarch_logic::meta;
use navarch_logic::scheduler::{self, ClusterState, FitError, Placement};
use navarch_model::identity::SCHEDULER;
use navarch_model::kinds::Kind;
use navarch_model::options::{Patch, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::recorder::Recorder;

/// The scheduler name this scheduler serves (pods naming another are left alone).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Bindings in flight at once.
const MAX_BINDINGS_IN_FLIGHT: usize = 512;

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

fn nodes() -> &'static Kind {
    navarch_client::kind("", "v1", "nodes")
}

fn pod_key(pod: &Value) -> String {
    format!("{}/{}", meta::namespace(pod), meta::name(pod))
}

/// What the scheduler hears.
#[derive(Debug, Clone)]
pub enum SchedulerEvent {
    PodChanged(Arc<Value>),
    PodRemoved(Arc<Value>),
    NodeChanged(Arc<Value>),
    NodeRemoved(Arc<Value>),
    /// A binding failed; `bound` when the pod turned out to be bound already, `gone` when
    /// it no longer exists (the binding answered NotFound, or the cache saw it deleted).
    BindFailed {
        pod: Arc<Value>,
        bound: bool,
        gone: bool,
    },
    /// Try the unschedulable pods again (after a failed binding's backoff).
    Retry,
}

impl TapInfo for SchedulerEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            SchedulerEvent::PodChanged(_) => "PodChanged",
            SchedulerEvent::PodRemoved(_) => "PodRemoved",
            SchedulerEvent::NodeChanged(_) => "NodeChanged",
            SchedulerEvent::NodeRemoved(_) => "NodeRemoved",
            SchedulerEvent::BindFailed { .. } => "BindFailed",
            SchedulerEvent::Retry => "Retry",
        }
        .into()
    }

    fn summary(&self) -> Option<String> {
        Some(match self {
            SchedulerEvent::PodChanged(p)
            | SchedulerEvent::PodRemoved(p)
            | SchedulerEvent::BindFailed { pod: p, .. } => pod_key(p),
            SchedulerEvent::NodeChanged(n) | SchedulerEvent::NodeRemoved(n) => {
                meta::name(n).to_string()
            }
            SchedulerEvent::Retry => String::new(),
        })
    }
}

/// What the scheduler asks for.
#[derive(Debug)]
pub enum SchedulerAction {
    Bind { pod: Arc<Value>, node: String },
    ReportUnschedulable { pod: Arc<Value>, error: FitError },
    RetryLater,
}

/// The scheduler's memory.
#[derive(Debug, Default)]
pub struct SchedulerState {
    cluster: ClusterState,
    /// Pending pods no node fits, waiting for the cluster to change.
    unschedulable: BTreeMap<String, Arc<Value>>,
    /// The message last reported on each unschedulable pod.
    reported: HashMap<String, String>,
    /// What of each node placement depends on, to tell a heartbeat from a change.
    fingerprints: HashMap<String, String>,
    bound: u64,
}

/// What the scheduler rebuilds from: every node and pod in the caches.
#[derive(Debug, Default)]
pub struct Snapshot {
    nodes: Vec<Arc<Value>>,
    pods: Vec<Arc<Value>>,
}

/// The scheduler's decisions (the placement itself is navarch-logic's).
pub struct SchedulerLogic;

/// The fields of a node that placement reads (a status heartbeat changes none of them).
fn fingerprint(node: &Value) -> String {
    let ready = meta::condition(node, "Ready").map(|c| c["status"].clone());
    json!([
        node["spec"]["unschedulable"],
        node["spec"]["taints"],
        node["status"]["allocatable"],
        node["status"]["capacity"],
        node["metadata"]["labels"],
        ready,
    ])
    .to_string()
}

fn wants_scheduling(pod: &Value) -> bool {
    meta::pod_node(pod).is_none()
        && !meta::is_deleting(pod)
        && !meta::pod_terminated(pod)
        && pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|s| s == SCHEDULER_NAME)
}

impl SchedulerLogic {
    /// Places `pod` now, or records why it cannot be.
    fn place(state: &mut SchedulerState, pod: Arc<Value>, out: &mut Vec<SchedulerAction>) {
        let key = pod_key(&pod);
        match scheduler::schedule(&state.cluster, &pod) {
            Placement::Node(node) => {
                state.unschedulable.remove(&key);
                state.reported.remove(&key);
                state.cluster.assume(&pod, &node);
                out.push(SchedulerAction::Bind { pod, node });
            }
            Placement::Unschedulable(error) => {
                if state.reported.get(&key) != Some(&error.message) {
                    state.reported.insert(key.clone(), error.message.clone());
                    out.push(SchedulerAction::ReportUnschedulable {
                        pod: pod.clone(),
                        error,
                    });
                }
                state.unschedulable.insert(key, pod);
            }
        }
    }

    /// The cluster changed: every unschedulable pod gets another try.
    fn retry_all(state: &mut SchedulerState, out: &mut Vec<SchedulerAction>) {
        let waiting = std::mem::take(&mut state.unschedulable);
        for (_, pod) in waiting {
            Self::place(state, pod, out);
        }
    }

    fn pod_changed(state: &mut SchedulerState, pod: Arc<Value>, out: &mut Vec<SchedulerAction>) {
        let key = pod_key(&pod);
        if meta::pod_node(&pod).is_some() {
            if state
                .cluster
                .pod_placement(&pod)
                .is_none_or(|(_, assumed)| assumed)
            {
                state.bound += 1;
            }
            state.cluster.add_pod(&pod);
            state.unschedulable.remove(&key);
            state.reported.remove(&key);
            if meta::pod_terminated(&pod) {
                // An ended pod frees its node's resources.
                Self::retry_all(state, out);
            }
        } else if wants_scheduling(&pod) {
            if state.cluster.pod_placement(&pod).is_some() {
                return; // a binding is in flight
            }
            Self::place(state, pod, out);
        } else {
            state.unschedulable.remove(&key);
            state.reported.remove(&key);
        }
    }
}

impl SingletonLogic for SchedulerLogic {
    type Snapshot = Snapshot;
    type State = SchedulerState;
    type Event = SchedulerEvent;
    type Action = SchedulerAction;

    fn rebuild(&self, snapshot: Snapshot) -> SchedulerState {
        let mut state = SchedulerState::default();
        for node in &snapshot.nodes {
            state.cluster.upsert_node(node);
            state
                .fingerprints
                .insert(meta::name(node).to_string(), fingerprint(node));
        }
        for pod in &snapshot.pods {
            if meta::pod_node(pod).is_some() {
                state.cluster.add_pod(pod);
            } else if wants_scheduling(pod) {
                state.unschedulable.insert(pod_key(pod), pod.clone());
            }
        }
        state
    }

    fn on_start(&self, state: &mut SchedulerState) -> Decision<SchedulerAction> {
        let mut out = Vec::new();
        Self::retry_all(state, &mut out);
        Ok(out)
    }

    fn handle(
        &self,
        state: &mut SchedulerState,
        event: SchedulerEvent,
    ) -> Decision<SchedulerAction> {
        let mut out = Vec::new();
        match event {
            SchedulerEvent::PodChanged(pod) => Self::pod_changed(state, pod, &mut out),
            SchedulerEvent::PodRemoved(pod) => {
                let was_bound = state
                    .cluster
                    .pod_placement(&pod)
                    .is_some_and(|(_, assumed)| !assumed);
                state.cluster.remove_pod(&pod);
                let key = pod_key(&pod);
                state.unschedulable.remove(&key);
                state.reported.remove(&key);
                if was_bound {
                    Self::retry_all(state, &mut out);
                }
            }
            SchedulerEvent::NodeChanged(node) => {
                let name = meta::name(&node).to_string();
                let print = fingerprint(&node);
                if state.fingerprints.get(&name) != Some(&print) {
                    state.fingerprints.insert(name, print);
                    state.cluster.upsert_node(&node);
                    Self::retry_all(state, &mut out);
                }
            }
            SchedulerEvent::NodeRemoved(node) => {
                let name = meta::name(&node);
                state.fingerprints.remove(name);
                state.cluster.remove_node(name);
            }
            SchedulerEvent::BindFailed { pod, bound, gone } => {
                state.cluster.forget(&pod);
                if gone {
                    // Nothing to place any more; its removal (seen or to come) forgets the
                    // rest.
                    let key = pod_key(&pod);
                    state.unschedulable.remove(&key);
                    state.reported.remove(&key);
                } else if !bound {
                    // Tried again after a pause, with the cluster as it is then.
                    state.unschedulable.insert(pod_key(&pod), pod);
                    out.push(SchedulerAction::RetryLater);
                }
            }
            SchedulerEvent::Retry => Self::retry_all(state, &mut out),
        }
        Ok(out)
    }

    fn summary(&self, state: &SchedulerState) -> String {
        format!(
            "nodes {}, pods counted {}, bound {}, unschedulable {}",
            state.cluster.node_count(),
            state.cluster.pod_count(),
            state.bound,
            state.unschedulable.len()
        )
    }
}

struct CacheSnapshot {
    nodes: Cache,
    pods: Cache,
}

impl SnapshotSource<Snapshot> for CacheSnapshot {
    fn load(&self) -> BoxFuture<'static, Result<Snapshot, SourceError>> {
        let (nodes, pods) = (self.nodes.clone(), self.pods.clone());
        Box::pin(async move {
            let stopped = |_| SourceError::Unavailable("the watch cache stopped".into());
            nodes.wait_synced().await.map_err(stopped)?;
            pods.wait_synced().await.map_err(stopped)?;
            Ok(Snapshot {
                nodes: nodes.list(),
                pods: pods.list(),
            })
        })
    }
}

struct SchedulerEffects {
    client: Arc<dyn Client>,
    /// The pod cache, to tell a binding that failed because its pod is gone.
    pods: Cache,
    recorder: Recorder,
    ctx: Ctx,
    permits: Arc<Semaphore>,
    me: Arc<OnceLock<SingletonRef<SchedulerLogic>>>,
}

impl Effects<SchedulerAction> for SchedulerEffects {
    fn perform(
        &self,
        _actor: &ActorPath,
        actions: Vec<SchedulerAction>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let mut waits = Vec::new();
        for action in actions {
            let client = self.client.clone();
            let recorder = self.recorder.clone();
            let me = self.me.clone();
            let permits = self.permits.clone();
            let pod_cache = self.pods.clone();
            match action {
                SchedulerAction::Bind { pod, node } => {
                    // Only the wait for a permit holds the actor: at most this many
                    // bindings are in flight, the rest of the work runs meanwhile.
                    waits.push(async move {
                        let Ok(permit) = permits.acquire_owned().await else {
                            return;
                        };
                        // The binding acts for the request that created the pod.
                        let id = crate::feed::created_by(&pod);
                        tokio::spawn(navarch_actors::with_correlation_if(id, async move {
                            let _permit = permit;
                            let ns = meta::namespace(&pod).to_string();
                            let name = meta::name(&pod).to_string();
                            match client.bind(&ns, &name, &node).await {
                                Ok(()) => recorder.record(scheduler::scheduled_event(&pod, &node)),
                                Err(e) => {
                                    let bound = e.is_conflict();
                                    // Deleted (and maybe created again under its name):
                                    // never to be retried.
                                    let gone = e.is_not_found()
                                        || pod_cache
                                            .get(Some(&ns), &name)
                                            .is_none_or(|p| meta::uid(&p) != meta::uid(&pod));
                                    tracing::debug!(pod = %name, node = %node, gone, error = %e, "binding failed");
                                    if let Some(me) = me.get() {
                                        let _ = me.try_send(SchedulerEvent::BindFailed { pod, bound, gone });
                                    }
                                }
                            }
                        }));
                    });
                }
                SchedulerAction::ReportUnschedulable { pod, error } => {
                    let now = self.ctx.now();
                    tokio::spawn(async move {
                        recorder.record(scheduler::failed_event(&pod, &error));
                        let patch = Patch {
                            ty: PatchType::StrategicMerge,
                            body: json!({"status": {"conditions": [
                                scheduler::unschedulable_condition(&error, now)
                            ]}}),
                        };
                        let ns = meta::namespace(&pod).to_string();
                        let name = meta::name(&pod).to_string();
                        if let Err(e) = client
                            .patch(
                                pods(),
                                Some(&ns),
                                &name,
                                Some(Subresource::Status),
                                patch,
                                &WriteOptions::default(),
                            )
                            .await
                        {
                            tracing::debug!(pod = %name, error = %e, "unschedulable condition not written");
                        }
                    });
                }
                SchedulerAction::RetryLater => {
                    let clock = self.ctx.clock.clone();
                    tokio::spawn(async move {
                        clock.sleep(Duration::from_secs(1)).await;
                        if let Some(me) = me.get() {
                            let _ = me.try_send(SchedulerEvent::Retry);
                        }
                    });
                }
            }
        }
        Box::pin(async move {
            for w in waits {
                w.await;
            }
            Ok(())
        })
    }
}

/// The running scheduler of one activation.
pub struct Scheduler {
    pub handle: SingletonRef<SchedulerLogic>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Scheduler {
    /// Supervises the scheduler under `group` and feeds it.
    pub async fn start(group: &GroupHandle, ctx: &Ctx) -> Result<Scheduler, SupervisorError> {
        let node_cache = ctx.cache(nodes());
        let pod_cache = ctx.cache(pods());
        let me = Arc::new(OnceLock::new());
        let effects = SchedulerEffects {
            client: ctx.clients.client(&SCHEDULER),
            pods: pod_cache.clone(),
            recorder: ctx.recorder(&SCHEDULER),
            ctx: ctx.clone(),
            permits: Arc::new(Semaphore::new(MAX_BINDINGS_IN_FLIGHT)),
            me: me.clone(),
        };
        let spec = SingletonSpec::new(
            "scheduler",
            SchedulerLogic,
            Arc::new(CacheSnapshot {
                nodes: node_cache.clone(),
                pods: pod_cache.clone(),
            }),
        )
        .effects(Arc::new(effects));
        // Subscribed before the singleton loads its snapshot: no pod created between the
        // two is missed (one in both is handled twice, harmlessly).
        let pod_sub = pod_cache.subscribe();
        let node_sub = node_cache.subscribe();
        let handle = group.singleton(spec).await?;
        let _ = me.set(handle.clone());
        let pods_task = tokio::spawn(feed(handle.clone(), pod_cache, pod_sub, true));
        let nodes_task = tokio::spawn(feed(handle.clone(), node_cache, node_sub, false));
        Ok(Scheduler {
            handle,
            tasks: vec![pods_task, nodes_task],
        })
    }
}

async fn feed(
    handle: SingletonRef<SchedulerLogic>,
    cache: Cache,
    mut sub: Subscription,
    is_pods: bool,
) {
    while let Some(event) = sub.recv().await {
        // A pod just created is scheduled on behalf of the request that created it.
        let id = match &event {
            CacheEvent::Added(o) if is_pods => crate::feed::created_by(o),
            _ => None,
        };
        let events: Vec<SchedulerEvent> = match event {
            CacheEvent::Added(o) | CacheEvent::Updated { new: o, .. } => vec![if is_pods {
                SchedulerEvent::PodChanged(o)
            } else {
                SchedulerEvent::NodeChanged(o)
            }],
            CacheEvent::Deleted(o) => vec![if is_pods {
                SchedulerEvent::PodRemoved(o)
            } else {
                SchedulerEvent::NodeRemoved(o)
            }],
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => cache
                .list()
                .into_iter()
                .map(|o| {
                    if is_pods {
                        SchedulerEvent::PodChanged(o)
                    } else {
                        SchedulerEvent::NodeChanged(o)
                    }
                })
                .collect(),
        };
        let send_all = async {
            for e in events {
                // Waits until it is handled: the caches' order is kept, and an event that
                // found the scheduler restarting (or was lost with an incarnation) is sent
                // again to the next one. The task ends when the activation drops it.
                while handle.send(e.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        navarch_actors::with_correlation_if(id, send_all).await;
    }
}
