//! The Pod actor and the kubelet that supervises them: one actor per pod bound to the node,
//! under the `pod` kind supervisor of the `kubelet` group of the node's actor root. The
//! actor is a thin shell: a change of its pod, a poke (a container changed state, a back-off
//! ended, a probe turned) or its own start makes a pass ([`Shared::sync`]), run as its
//! effect so that passes over one pod never overlap.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, GroupSpec, KindHandle, KindSpec,
    ObjectKey, ObjectLogic, Root, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::worker::{key_of, Shared};
use super::KubeletConfig;

/// A Pod actor's messages.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// Something about the pod may have changed: make a pass.
    Sync,
}

impl TapInfo for PodEvent {
    fn message_type(&self) -> Cow<'static, str> {
        "Sync".into()
    }
}

/// What a Pod actor remembers: only which pod it is, and its last phase for the registry.
#[derive(Debug)]
pub struct PodState {
    key: ObjectKey,
    phase: String,
}

/// A pass over one pod.
#[derive(Debug)]
pub struct Pass(ObjectKey);

/// The Pod actor's logic: every event is a pass.
pub struct PodLogic;

fn phase_of(pod: &Value) -> String {
    pod["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_lowercase()
}

impl ObjectLogic for PodLogic {
    type Object = Arc<Value>;
    type State = PodState;
    type Event = PodEvent;
    type Action = Pass;

    fn rebuild(&self, key: &ObjectKey, pod: Arc<Value>) -> PodState {
        PodState {
            key: key.clone(),
            phase: phase_of(&pod),
        }
    }

    fn on_start(&self, state: &mut PodState) -> Decision<Pass> {
        Ok(vec![Pass(state.key.clone())])
    }

    fn on_change(&self, state: &mut PodState, pod: Arc<Value>) -> Decision<Pass> {
        state.phase = phase_of(&pod);
        Ok(vec![Pass(state.key.clone())])
    }

    fn handle(&self, state: &mut PodState, _: PodEvent) -> Decision<Pass> {
        Ok(vec![Pass(state.key.clone())])
    }

    fn summary(&self, state: &PodState) -> String {
        state.phase.clone()
    }
}

struct PodEffects {
    shared: Arc<Shared>,
}

impl Effects<Pass> for PodEffects {
    fn perform(
        &self,
        _: &ActorPath,
        actions: Vec<Pass>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            for Pass(key) in actions {
                shared.sync(&key).await;
            }
            Ok(())
        })
    }
}

/// The pods of the node's cache as the actor kit's source.
struct PodSource {
    pods: Cache,
}

impl navarch_actors::Source<Arc<Value>> for PodSource {
    fn load(
        &self,
        key: &ObjectKey,
    ) -> BoxFuture<'static, Result<Option<Arc<Value>>, navarch_actors::SourceError>> {
        let (pods, key) = (self.pods.clone(), key.clone());
        Box::pin(async move {
            pods.wait_synced().await.map_err(|_| {
                navarch_actors::SourceError::Unavailable("the pod cache stopped".into())
            })?;
            Ok(pods.get(key.namespace(), key.name()))
        })
    }

    fn list(
        &self,
    ) -> Option<BoxFuture<'static, Result<Vec<ObjectKey>, navarch_actors::SourceError>>> {
        let pods = self.pods.clone();
        Some(Box::pin(async move {
            pods.wait_synced().await.map_err(|_| {
                navarch_actors::SourceError::Unavailable("the pod cache stopped".into())
            })?;
            Ok(pods.list().iter().filter_map(|p| key_of(p)).collect())
        }))
    }
}

/// A running kubelet: its supervisor, its shared state and its loops (stopped on drop).
pub struct Kubelet {
    pub handle: KindHandle<PodLogic>,
    pub group: GroupHandle,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What callers keep of a kubelet.
pub type KubeletHandle = Arc<Kubelet>;

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node", &self.shared.cfg.node)
            .finish_non_exhaustive()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Why a kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("the runtimes' containers could not be listed: {0}")]
    Adopt(#[from] navarch_runtime::RuntimeError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

impl Kubelet {
    /// Re-adopts the containers the runtimes have, then starts one Pod actor per pod bound
    /// to the node (`pods` is the node's cache of them) under `root`, and the kubelet's loops.
    /// Must run inside an actix system.
    pub async fn start(
        root: &Root,
        cfg: KubeletConfig,
        client: Arc<dyn Client>,
        pods: Cache,
    ) -> Result<Kubelet, KubeletError> {
        let shared = Arc::new(Shared::new(cfg, client, pods.clone()));
        let adopted = shared.adopt().await?;
        tracing::info!(node = %shared.cfg.node, containers = adopted, "kubelet adopted the runtimes' containers");
        let group = root.group(GroupSpec::new("kubelet"))?;
        let spec = KindSpec::new("pod", PodLogic, Arc::new(PodSource { pods: pods.clone() }))
            .effects(Arc::new(PodEffects {
                shared: shared.clone(),
            }));
        let sub = pods.subscribe();
        let handle = group.supervise(spec).await?;
        let _ = shared.handle.set(handle.clone());
        let feed = tokio::spawn(feed(handle.clone(), pods.clone(), sub));
        let tasks = vec![
            feed,
            tokio::spawn(shared.clone().pleg_loop()),
            tokio::spawn(shared.clone().cleanup_loop()),
            tokio::spawn(shared.clone().resync_loop()),
        ];
        Ok(Kubelet {
            handle,
            group,
            shared,
            tasks,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Forwards the cache's changes to the supervisor: a pod added (on behalf of the request
/// that created it) or changed starts or updates its actor, a deleted one stops it (its
/// containers go with the cleanup loop).
async fn feed(handle: KindHandle<PodLogic>, pods: Cache, mut sub: navarch_client::Subscription) {
    while let Some(event) = sub.recv().await {
        match event {
            CacheEvent::Added(p) => {
                if let Some(key) = key_of(&p) {
                    // A pod that arrives acts for the request that created it.
                    let id = navarch_model::correlation_of(&p).and_then(|c| c.parse().ok());
                    let changed = handle.object_changed(key, p);
                    if navarch_actors::with_correlation_if(id, changed)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            CacheEvent::Updated { new: p, .. } => {
                if let Some(key) = key_of(&p) {
                    if handle.object_changed(key, p).await.is_err() {
                        return;
                    }
                }
            }
            CacheEvent::Deleted(p) => {
                if let Some(key) = key_of(&p) {
                    if handle.object_removed(key).await.is_err() {
                        return;
                    }
                }
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
                for p in pods.list() {
                    if let Some(key) = key_of(&p) {
                        if handle.object_changed(key, p).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}
