//! The Deployment controller: one actor per Deployment under the `deployment` supervisor.
//! Each actor reads its Deployment, the ReplicaSets of its namespace and their pods from the
//! caches when a message arrives, asks `navarch_logic::deployment` for one step, and
//! carries it out as `deployment-controller`. Before it decides again, the caches must show
//! every ReplicaSet it wrote at the revision the write returned (read-your-writes): a step
//! is never computed from a cache that misses the previous step, even across the actor's
//! restarts (the revisions are the controller's, not the actor's). A Deployment held back
//! by a write of its namespace (its own or another Deployment's) is looked at again once
//! the caches show that write, or once the write is too old to wait for.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use navarch_actors::{
    Decision, GroupHandle, KindHandle, KindSpec, ObjectKey, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subresource, Subscription};
use navarch_logic::deployment::{self, DeploymentAction, DeploymentInput};
use navarch_logic::meta;
use navarch_model::identity::DEPLOYMENT_CONTROLLER;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, WriteOptions};
use navarch_model::selector::LabelSelector;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::feed::{self, owner_key, Reread, RereadState, Rereading};
use crate::recorder::Recorder;
use crate::source::{key_of, CacheSource};

fn deployments() -> &'static Kind {
    navarch_client::kind("apps", "v1", "deployments")
}

fn replicasets() -> &'static Kind {
    navarch_client::kind("apps", "v1", "replicasets")
}

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

/// How long a written ReplicaSet may take to show in the cache before its Deployment
/// decides without it.
const WRITE_VISIBLE_WITHIN: i64 = 30;

/// What the controller keeps across its actors' restarts.
pub struct Shared {
    ctx: Ctx,
    deployments: Cache,
    replica_sets: Cache,
    pods: Cache,
    client: Arc<dyn Client>,
    recorder: Recorder,
    /// The ReplicaSets written that the caches do not show yet, and the Deployments held
    /// back meanwhile.
    writes: Mutex<Writes>,
    handle: OnceLock<KindHandle<Rereading<DeploymentLogic>>>,
    requeues: Arc<feed::Requeues>,
}

fn rv(obj: &Value) -> u64 {
    meta::resource_version(obj).parse().unwrap_or(0)
}

/// What the controller remembers of its writes, under one lock: a step held back and the
/// cache event that catches the namespace up cannot miss each other.
#[derive(Debug, Default)]
struct Writes {
    /// ReplicaSets written, by `namespace/name`: the revision the caches must reach
    /// before any Deployment of the namespace decides again, and when it was written.
    pending: HashMap<String, (u64, i64)>,
    /// Deployments whose step was held back, by namespace: looked at again once the
    /// caches caught up (a pending write is not necessarily theirs, so the write's own
    /// cache event does not poke them).
    held: HashMap<String, BTreeSet<ObjectKey>>,
}

impl Shared {
    fn writes(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the caches show every ReplicaSet this controller wrote in `namespace`;
    /// forgets the writes they show (and those too old to wait for).
    fn caught_up(&self, writes: &mut Writes, namespace: &str) -> bool {
        let prefix = format!("{namespace}/");
        let now = self.ctx.now();
        writes.pending.retain(|key, (want, at)| {
            if !key.starts_with(&prefix) {
                return true;
            }
            // A write the caches never show (the object was deleted since) stops holding
            // the Deployment back after a while.
            if now - *at > WRITE_VISIBLE_WITHIN {
                return false;
            }
            let name = &key[prefix.len()..];
            // Seen at (or past) the written revision: no longer pending.
            self.replica_sets
                .get(Some(namespace), name)
                .is_none_or(|rs| rv(&rs) < *want)
        });
        !writes.pending.keys().any(|k| k.starts_with(&prefix))
    }

    /// `None` when the caches show every write of `key`'s namespace. Otherwise holds `key`
    /// back until they do, and says when the oldest pending write stops holding it back
    /// (no cache event may ever say so: a write deleted before the caches saw it).
    fn hold_back(&self, key: &ObjectKey) -> Option<Duration> {
        let ns = key.namespace().unwrap_or("");
        let mut writes = self.writes();
        if self.caught_up(&mut writes, ns) {
            return None;
        }
        writes
            .held
            .entry(ns.to_string())
            .or_default()
            .insert(key.clone());
        let prefix = format!("{ns}/");
        let oldest = writes
            .pending
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, (_, at))| *at)
            .min()
            .unwrap_or(0);
        let after = (oldest + WRITE_VISIBLE_WITHIN + 1 - self.ctx.now()).max(1);
        Some(Duration::from_secs(after as u64))
    }

    /// The Deployments held back in `namespace` (in every namespace for `None`) whose
    /// caches caught up since: no longer held, to be looked at again.
    fn released(&self, namespace: Option<&str>) -> Vec<ObjectKey> {
        let mut writes = self.writes();
        let namespaces: Vec<String> = match namespace {
            Some(ns) if writes.held.contains_key(ns) => vec![ns.to_string()],
            Some(_) => Vec::new(),
            None => writes.held.keys().cloned().collect(),
        };
        let mut out = Vec::new();
        for ns in namespaces {
            if self.caught_up(&mut writes, &ns) {
                out.extend(writes.held.remove(&ns).unwrap_or_default());
            }
        }
        out
    }

    fn wrote(&self, obj: &Value) {
        let key = format!("{}/{}", meta::namespace(obj), meta::name(obj));
        self.writes().pending.insert(key, (rv(obj), self.ctx.now()));
    }
}

/// A Deployment actor's messages.
#[derive(Debug, Clone)]
pub enum DeploymentEvent {
    /// Its ReplicaSets or pods changed, or a timer fired: reconcile.
    Resync,
}

impl TapInfo for DeploymentEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Resync".into()
    }
}

/// One step for one Deployment.
#[derive(Debug)]
pub struct Step {
    key: ObjectKey,
    plan: deployment::Plan,
}

/// The actor's logic: read the caches, decide with the pure core.
pub struct DeploymentLogic {
    shared: Arc<Shared>,
}

impl Reread for DeploymentLogic {
    type Event = DeploymentEvent;
    type Step = Step;

    fn step(&self, state: &mut RereadState) -> Decision<Step> {
        let s = &self.shared;
        let ns = state.key.namespace().unwrap_or("");
        let Some(d) = s.deployments.get(Some(ns), state.key.name()) else {
            return Ok(Vec::new());
        };
        if let Some(at_most) = s.hold_back(&state.key) {
            // The cache event that shows the pending writes releases it (`feed_replicasets`);
            // a write the caches never show stops holding it back after `at_most`.
            state.summary =
                "held back: a ReplicaSet write of its namespace is not in the cache yet"
                    .to_string();
            if let Some(h) = s.handle.get() {
                s.requeues.after(
                    h.clone(),
                    state.key.clone(),
                    at_most,
                    DeploymentEvent::Resync,
                );
            }
            return Ok(Vec::new());
        }
        let replica_sets = s.replica_sets.list_namespace(ns);
        let uid = meta::uid(&d);
        let mut pods = Vec::new();
        for rs in replica_sets
            .iter()
            .filter(|rs| meta::is_controlled_by(rs, uid))
        {
            pods.extend(s.pods.owned_by(meta::uid(rs)));
        }
        let plan = deployment::reconcile(&DeploymentInput {
            deployment: &d,
            replica_sets: &replica_sets,
            pods: &pods,
            now: s.ctx.now(),
        });
        state.summary = format!(
            "updated {}/{}, available {}, revision {}",
            d["status"]["updatedReplicas"].as_i64().unwrap_or(0),
            d["spec"]["replicas"].as_i64().unwrap_or(1),
            d["status"]["availableReplicas"].as_i64().unwrap_or(0),
            meta::annotation(&d, "deployment.kubernetes.io/revision").unwrap_or("-"),
        );
        if plan.actions.is_empty() && plan.requeue_after.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Step {
            key: state.key.clone(),
            plan,
        }])
    }
}

/// Carries a step out through the API, in order, stopping at the first write that fails
/// (the next step is computed from what the caches then show).
async fn perform_step(s: &Arc<Shared>, step: Step) {
    let opts = WriteOptions::default();
    let ns = step.key.namespace().unwrap_or("").to_string();
    let mut requeue = step.plan.requeue_after.map(|a| a.max(1) as u64);
    // A status write moves the Deployment's resourceVersion; a Deployment write after it in
    // the same plan goes at the revision it returned (the two touch separate parts).
    let mut status_rv: Option<Value> = None;
    for action in step.plan.actions {
        let result = match action {
            DeploymentAction::CreateReplicaSet(rs) => s
                .client
                .create(replicasets(), Some(&ns), rs, &opts)
                .await
                .map(|w| s.wrote(&w.object)),
            DeploymentAction::UpdateReplicaSet(rs) => {
                let name = meta::name(&rs).to_string();
                s.client
                    .update(replicasets(), Some(&ns), &name, None, rs, &opts)
                    .await
                    .map(|w| s.wrote(&w.object))
            }
            DeploymentAction::DeleteReplicaSet {
                name,
                uid,
                resource_version,
            } => {
                let opts = DeleteOptions {
                    precondition_uid: Some(uid),
                    precondition_resource_version: Some(resource_version),
                    ..DeleteOptions::default()
                };
                s.client
                    .delete(replicasets(), Some(&ns), &name, &opts)
                    .await
                    .map(|_| ())
            }
            DeploymentAction::UpdateDeployment(mut d) => {
                if let Some(rv) = status_rv.take() {
                    d["metadata"]["resourceVersion"] = rv;
                }
                let name = meta::name(&d).to_string();
                s.client
                    .update(deployments(), Some(&ns), &name, None, d, &opts)
                    .await
                    .map(|_| ())
            }
            DeploymentAction::UpdateStatus(d) => {
                let name = meta::name(&d).to_string();
                s.client
                    .update(
                        deployments(),
                        Some(&ns),
                        &name,
                        Some(Subresource::Status),
                        d,
                        &opts,
                    )
                    .await
                    .map(|w| status_rv = Some(w.object["metadata"]["resourceVersion"].clone()))
            }
            DeploymentAction::Event(e) => {
                s.recorder.record(e);
                Ok(())
            }
        };
        if let Err(e) = result {
            // A conflict or a name taken: the caches will show why, and the next step
            // starts from there.
            tracing::debug!(deployment = %step.key, error = %e, "deployment step stopped");
            requeue = Some(1);
            break;
        }
    }
    if let (Some(after), Some(h)) = (requeue, s.handle.get()) {
        s.requeues.after(
            h.clone(),
            step.key,
            Duration::from_secs(after),
            DeploymentEvent::Resync,
        );
    }
}

/// The running Deployment controller of one activation.
pub struct DeploymentController {
    pub handle: KindHandle<Rereading<DeploymentLogic>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DeploymentController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentController").finish()
    }
}

impl Drop for DeploymentController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DeploymentController {
    /// Supervises the Deployments under `group` and feeds them.
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<DeploymentController, SupervisorError> {
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            deployments: ctx.cache(deployments()),
            replica_sets: ctx.cache(replicasets()),
            pods: ctx.cache(pods()),
            client: ctx.clients.client(&DEPLOYMENT_CONTROLLER),
            recorder: ctx.recorder(&DEPLOYMENT_CONTROLLER),
            writes: Mutex::new(Writes::default()),
            handle: OnceLock::new(),
            requeues: feed::Requeues::new(ctx.clock.clone()),
        });
        let spec = KindSpec::new(
            "deployment",
            Rereading(DeploymentLogic {
                shared: shared.clone(),
            }),
            Arc::new(CacheSource::new(shared.deployments.clone())),
        )
        .effects(Arc::new(feed::InOrder {
            shared: shared.clone(),
            run: |s, step| Box::pin(async move { perform_step(&s, step).await }),
        }));
        // Subscribed before the supervisor lists: no change falls between the two.
        let own_sub = shared.deployments.subscribe();
        let rs_sub = shared.replica_sets.subscribe();
        let pod_sub = shared.pods.subscribe();
        let handle = group.supervise(spec).await?;
        let _ = shared.handle.set(handle.clone());
        let own = feed::spawn_own(handle.clone(), &shared.deployments, own_sub);
        let rs_task = tokio::spawn(feed_replicasets(shared.clone(), rs_sub));
        let pod_task = tokio::spawn(feed_pods(shared.clone(), pod_sub));
        Ok(DeploymentController {
            handle,
            tasks: vec![own, rs_task, pod_task],
        })
    }
}

/// The Deployment a ReplicaSet belongs to, or for an orphan those whose selector matches.
fn deployments_of(s: &Shared, rs: &Value) -> Vec<ObjectKey> {
    match meta::controller_ref(rs) {
        Some(owner) if owner["kind"].as_str() == Some("Deployment") => {
            owner_key(rs, owner).into_iter().collect()
        }
        Some(_) => Vec::new(),
        None => s
            .deployments
            .list_namespace(meta::namespace(rs))
            .iter()
            .filter(|d| {
                LabelSelector::from_object(&d["spec"]["selector"])
                    .is_ok_and(|sel| !sel.is_empty() && sel.matches(meta::labels(rs)))
            })
            .filter_map(|d| key_of(d))
            .collect(),
    }
}

async fn feed_replicasets(s: Arc<Shared>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let mut keys = match &event {
            CacheEvent::Added(rs) | CacheEvent::Deleted(rs) => deployments_of(&s, rs),
            CacheEvent::Updated { old, new } => {
                let mut k = deployments_of(&s, old);
                k.extend(deployments_of(&s, new));
                k
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => s
                .deployments
                .list()
                .iter()
                .filter_map(|d| key_of(d))
                .collect(),
        };
        // The Deployments held back by writes this change may have brought into the cache.
        let namespace = match &event {
            CacheEvent::Added(rs)
            | CacheEvent::Deleted(rs)
            | CacheEvent::Updated { new: rs, .. } => Some(meta::namespace(rs)),
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => None,
        };
        keys.extend(s.released(namespace));
        keys.sort();
        keys.dedup();
        for key in keys {
            feed::poke(handle, &key, DeploymentEvent::Resync).await;
        }
    }
}

/// Pods matter to a Deployment only when they go (Recreate waits for the old ones).
async fn feed_pods(s: Arc<Shared>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let CacheEvent::Deleted(pod) = event else {
            continue;
        };
        let Some(owner) = meta::controller_ref(&pod) else {
            continue;
        };
        let Some(rs) = owner["name"]
            .as_str()
            .and_then(|n| s.replica_sets.get(Some(meta::namespace(&pod)), n))
        else {
            continue;
        };
        for key in deployments_of(&s, &rs) {
            feed::poke(handle, &key, DeploymentEvent::Resync).await;
        }
    }
}
