//! The ReplicaSet controller: one actor per ReplicaSet under the `replicaset` supervisor.
//! Each actor reads its ReplicaSet and pods from the caches when it handles a message,
//! asks `navarch_logic::replicaset` what to do, and does it through the API as
//! `replicaset-controller`. Expectations live in the controller, not the actor, so an actor
//! restarted mid-scale waits for its predecessor's creates to show instead of repeating
//! them. A step with a failed write (a create, a delete, an adoption, the status) is
//! followed by another look after a backoff that doubles with each such step in a row, as
//! Kubernetes' workqueue rate limiter requeues a failed sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use navarch_actors::{Decision, KindHandle, KindSpec, ObjectKey, TapInfo};
use navarch_client::{Cache, CacheEvent, Client, Subscription};
use navarch_logic::meta;
use navarch_logic::replicaset::{self, Expectations, ReplicaSetAction, ReplicaSetInput};
use navarch_model::identity::REPLICASET_CONTROLLER;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_model::selector::LabelSelector;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::feed::{self, owner_key, Reread, RereadState, Rereading};
use crate::recorder::Recorder;
use crate::source::CacheSource;

fn replicasets() -> &'static Kind {
    navarch_client::kind("apps", "v1", "replicasets")
}

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

/// The pod cache index of pods without a controller, by namespace (adoption candidates).
pub const ORPHANS_BY_NAMESPACE: &str = "orphans-by-namespace";

/// The look again after a step whose writes failed: 1 s (as the Deployment shell's),
/// doubled for each such step in a row, up to [`RETRY_MAX`] (Kubernetes' workqueue rate
/// limiter: 5 ms doubled up to 1000 s).
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// The longest backoff after failed writes.
pub const RETRY_MAX: Duration = Duration::from_secs(1000);

/// The backoff after the `failures`-th step in a row with a failed write (from 1).
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (RETRY_BASE * (1u32 << doublings)).min(RETRY_MAX)
}

/// What the controller keeps across its actors' restarts.
pub struct Shared {
    ctx: Ctx,
    rs_cache: Cache,
    pod_cache: Cache,
    client: Arc<dyn Client>,
    recorder: Recorder,
    /// By ReplicaSet uid.
    expectations: Mutex<HashMap<String, Expectations>>,
    /// The last create failure, by ReplicaSet uid (the `ReplicaFailure` condition).
    failures: Mutex<HashMap<String, String>>,
    /// Steps in a row whose writes failed, by ReplicaSet: its backoff.
    failed_steps: Mutex<HashMap<ObjectKey, u32>>,
    handle: OnceLock<KindHandle<Rereading<ReplicaSetLogic>>>,
    requeues: Arc<feed::Requeues>,
}

impl Shared {
    fn expectations(&self, uid: &str) -> Expectations {
        self.expectations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    fn with_expectations(&self, uid: &str, f: impl FnOnce(&mut Expectations)) {
        let mut all = self.expectations.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(uid.to_string()).or_default());
    }

    /// Counts a step's outcome for `key`; after a failed one, the backoff to look again.
    fn step_done(&self, key: &ObjectKey, failed: bool) -> Option<Duration> {
        let mut all = self.failed_steps.lock().unwrap_or_else(|p| p.into_inner());
        if !failed {
            all.remove(key);
            return None;
        }
        let n = all.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        Some(retry_after(*n))
    }

    fn set_failure(&self, uid: &str, failure: Option<String>) {
        let mut all = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failure {
            Some(f) => all.insert(uid.to_string(), f),
            None => all.remove(uid),
        };
    }
}

/// A ReplicaSet actor's messages.
#[derive(Debug, Clone)]
pub enum ReplicaSetEvent {
    /// Something it depends on changed (its pods), or a timer fired: reconcile.
    Resync,
}

impl TapInfo for ReplicaSetEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Resync".into()
    }
}

/// One step's decisions for one ReplicaSet.
#[derive(Debug)]
pub struct Step {
    key: ObjectKey,
    replica_set: Arc<Value>,
    plan: replicaset::Plan,
}

/// The actor's logic: read the caches, decide with the pure core.
pub struct ReplicaSetLogic {
    shared: Arc<Shared>,
}

impl Reread for ReplicaSetLogic {
    type Event = ReplicaSetEvent;
    type Step = Step;

    fn step(&self, state: &mut RereadState) -> Decision<Step> {
        let s = &self.shared;
        let Some(rs) = s.rs_cache.get(state.key.namespace(), state.key.name()) else {
            s.step_done(&state.key, false);
            return Ok(Vec::new());
        };
        let uid = meta::uid(&rs).to_string();
        let ns = meta::namespace(&rs);
        let mut pods = s.pod_cache.owned_by(&uid);
        if let Some(orphans) = s.pod_cache.by_index(ORPHANS_BY_NAMESPACE, ns) {
            pods.extend(orphans);
        }
        let expectations = s.expectations(&uid);
        let failure = s
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .cloned();
        let plan = replicaset::reconcile(&ReplicaSetInput {
            replica_set: &rs,
            pods: &pods,
            expectations: &expectations,
            create_failure: failure.as_deref(),
            now: s.ctx.now(),
        });
        state.summary = format!(
            "replicas {}/{}",
            rs["status"]["readyReplicas"].as_i64().unwrap_or(0),
            rs["spec"]["replicas"].as_i64().unwrap_or(1)
        );
        if plan.actions.is_empty() && plan.requeue_after.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Step {
            key: state.key.clone(),
            replica_set: rs,
            plan,
        }])
    }
}

/// Carries a step out through the API; a failed write brings another look after a backoff.
async fn perform_step(s: &Arc<Shared>, step: Step) {
    let rs = &step.replica_set;
    let uid = meta::uid(rs).to_string();
    let ns = meta::namespace(rs).to_string();
    let opts = WriteOptions::default();
    let mut failed = false;
    for action in step.plan.actions {
        match action {
            ReplicaSetAction::SetOwners {
                pod,
                owner_references,
            } => {
                let patch = Patch {
                    ty: PatchType::Merge,
                    body: json!({"metadata": {
                        "ownerReferences": owner_references,
                        "resourceVersion": pod.resource_version,
                    }}),
                };
                if let Err(e) = s
                    .client
                    .patch(pods(), Some(&ns), &pod.name, None, patch, &opts)
                    .await
                {
                    tracing::debug!(pod = %pod.name, error = %e, "pod ownership not changed");
                    failed = true;
                }
            }
            ReplicaSetAction::CreatePods { count, pod } => {
                // Expectations first, before anything is sent: a successor incarnation must
                // see them even if this one dies before the task below runs. Detached: an
                // actor killed meanwhile must not cancel creates half sent, or the
                // expectations would wait for pods that never come.
                let now = s.ctx.now();
                s.with_expectations(&uid, |e| e.expect_creations(count, now));
                let (s, rs, uid, ns) = (s.clone(), rs.clone(), uid.clone(), ns.clone());
                let create = feed::keeping_correlation(async move {
                    create_pods(&s, &rs, &uid, &ns, count, pod).await
                });
                failed |= tokio::spawn(create).await.unwrap_or(true);
            }
            ReplicaSetAction::DeletePods(victims) => {
                let now = s.ctx.now();
                s.with_expectations(&uid, |e| {
                    e.expect_deletions(victims.iter().map(|v| v.uid.as_str()), now)
                });
                let (s, uid, ns) = (s.clone(), uid.clone(), ns.clone());
                let delete =
                    feed::keeping_correlation(
                        async move { delete_pods(&s, &uid, &ns, victims).await },
                    );
                failed |= tokio::spawn(delete).await.unwrap_or(true);
            }
            ReplicaSetAction::UpdateStatus(obj) => {
                let name = meta::name(&obj).to_string();
                if let Err(e) = s
                    .client
                    .update(
                        replicasets(),
                        Some(&ns),
                        &name,
                        Some(navarch_client::Subresource::Status),
                        obj,
                        &opts,
                    )
                    .await
                {
                    // A conflict means a newer ReplicaSet is on its way to this actor; any
                    // other failure would leave the status stale without another look.
                    tracing::debug!(replicaset = %name, error = %e, "status not updated");
                    failed = true;
                }
            }
            ReplicaSetAction::Event(e) => s.recorder.record(e),
        }
    }
    if let Some(backoff) = s.step_done(&step.key, failed) {
        tracing::debug!(replicaset = %step.key, backoff_ms = backoff.as_millis() as u64, "a write failed, looking again later");
        requeue(s, step.key.clone(), backoff);
    }
    if let Some(after) = step.plan.requeue_after {
        requeue(s, step.key, Duration::from_secs(after.max(1) as u64));
    }
}

/// Deletes `victims` (each at its uid); the caller set the expectations. Whether a delete
/// failed.
async fn delete_pods(
    s: &Arc<Shared>,
    uid: &str,
    ns: &str,
    victims: Vec<replicaset::PodRef>,
) -> bool {
    let uid = uid.to_string();
    let ns = ns.to_string();
    let results = join_all(victims.iter().map(|v| {
        let opts = DeleteOptions {
            precondition_uid: Some(v.uid.clone()),
            ..DeleteOptions::default()
        };
        let client = s.client.clone();
        let ns = ns.clone();
        let name = v.name.clone();
        async move { client.delete(pods(), Some(&ns), &name, &opts).await }
    }))
    .await;
    let mut failed = false;
    for (v, r) in victims.iter().zip(results) {
        if let Err(e) = r {
            // It will not be observed gone (or is gone already).
            tracing::debug!(pod = %v.name, error = %e, "pod not deleted");
            s.with_expectations(&uid, |x| x.deletion_observed(&v.uid));
            failed = true;
        }
    }
    failed
}

/// Creates `count` pods in batches of 1, 2, 4, ... (Kubernetes' slow start), stopping at the
/// first batch with a failure; the caller set the expectations, lowered here for every
/// create that failed or was never sent. Whether a create failed.
async fn create_pods(
    s: &Arc<Shared>,
    rs: &Value,
    uid: &str,
    ns: &str,
    count: usize,
    pod: Value,
) -> bool {
    let involved = navarch_logic::events::ObjectRef::to(rs, "apps/v1", "ReplicaSet");
    let mut remaining = count;
    let mut batch = 1;
    let mut failure = None;
    while remaining > 0 {
        let n = batch.min(remaining);
        let results = join_all((0..n).map(|_| {
            let client = s.client.clone();
            let pod = pod.clone();
            let ns = ns.to_string();
            async move {
                client
                    .create(pods(), Some(&ns), pod, &WriteOptions::default())
                    .await
            }
        }))
        .await;
        remaining -= n;
        for r in results {
            match r {
                Ok(w) => s.recorder.record(navarch_logic::events::EventSpec::normal(
                    involved.clone(),
                    "SuccessfulCreate",
                    format!("Created pod: {}", meta::name(&w.object)),
                )),
                Err(e) => {
                    s.with_expectations(uid, Expectations::creation_failed);
                    s.recorder.record(navarch_logic::events::EventSpec::warning(
                        involved.clone(),
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    ));
                    failure = Some(e.to_string());
                }
            }
        }
        if failure.is_some() {
            // The creates never sent will not be observed either.
            for _ in 0..remaining {
                s.with_expectations(uid, Expectations::creation_failed);
            }
            break;
        }
        batch *= 2;
    }
    let failed = failure.is_some();
    s.set_failure(uid, failure);
    failed
}

fn requeue(s: &Arc<Shared>, key: ObjectKey, after: Duration) {
    if let Some(h) = s.handle.get() {
        s.requeues
            .after(h.clone(), key, after, ReplicaSetEvent::Resync);
    }
}

/// The running ReplicaSet controller of one activation.
pub struct ReplicaSetController {
    pub handle: KindHandle<Rereading<ReplicaSetLogic>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ReplicaSetController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSetController").finish()
    }
}

impl Drop for ReplicaSetController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn orphan_index(pod: &Value) -> Vec<String> {
    if meta::controller_ref(pod).is_none() {
        vec![meta::namespace(pod).to_string()]
    } else {
        Vec::new()
    }
}

impl ReplicaSetController {
    /// Supervises the ReplicaSets under `group` and feeds them.
    pub async fn start(
        group: &navarch_actors::GroupHandle,
        ctx: &Ctx,
    ) -> Result<ReplicaSetController, navarch_actors::SupervisorError> {
        let rs_cache = ctx.cache(replicasets());
        let pod_cache = ctx.cache(pods());
        pod_cache.add_indexer(ORPHANS_BY_NAMESPACE, Arc::new(orphan_index));
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            rs_cache: rs_cache.clone(),
            pod_cache: pod_cache.clone(),
            client: ctx.clients.client(&REPLICASET_CONTROLLER),
            recorder: ctx.recorder(&REPLICASET_CONTROLLER),
            expectations: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            failed_steps: Mutex::new(HashMap::new()),
            handle: OnceLock::new(),
            requeues: feed::Requeues::new(ctx.clock.clone()),
        });
        let spec = KindSpec::new(
            "replicaset",
            Rereading(ReplicaSetLogic {
                shared: shared.clone(),
            }),
            Arc::new(CacheSource::new(rs_cache.clone())),
        )
        .effects(Arc::new(feed::InOrder {
            shared: shared.clone(),
            run: |s, step| Box::pin(async move { perform_step(&s, step).await }),
        }));
        let own_sub = rs_cache.subscribe();
        let pod_sub = pod_cache.subscribe();
        let handle = group.supervise(spec).await?;
        let _ = shared.handle.set(handle.clone());
        let own = feed::spawn_own(handle.clone(), &rs_cache, own_sub);
        let pods_task = tokio::spawn(feed_pods(shared.clone(), pod_sub));
        Ok(ReplicaSetController {
            handle,
            tasks: vec![own, pods_task],
        })
    }
}

/// The ReplicaSet keys a pod change concerns, with the expectations it settles.
async fn feed_pods(s: Arc<Shared>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let mut keys = Vec::new();
        match &event {
            CacheEvent::Added(p) => {
                if let Some(owner) = meta::controller_ref(p) {
                    if let Some(uid) = owner["uid"].as_str() {
                        s.with_expectations(uid, Expectations::creation_observed);
                    }
                    keys.extend(owner_key(p, owner));
                } else {
                    keys.extend(matching_replicasets(&s, p));
                }
            }
            CacheEvent::Updated { old, new } => {
                if meta::is_deleting(new) && !meta::is_deleting(old) {
                    if let Some(uid) = meta::controller_ref(new).and_then(|o| o["uid"].as_str()) {
                        s.with_expectations(uid, |e| e.deletion_observed(meta::uid(new)));
                    }
                }
                for p in [old, new] {
                    match meta::controller_ref(p) {
                        Some(owner) => keys.extend(owner_key(p, owner)),
                        None => keys.extend(matching_replicasets(&s, p)),
                    }
                }
            }
            CacheEvent::Deleted(p) => {
                if let Some(owner) = meta::controller_ref(p) {
                    if let Some(uid) = owner["uid"].as_str() {
                        s.with_expectations(uid, |e| e.deletion_observed(meta::uid(p)));
                    }
                    keys.extend(owner_key(p, owner));
                }
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
                keys.extend(
                    s.rs_cache
                        .list()
                        .iter()
                        .filter_map(|o| crate::source::key_of(o)),
                );
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            feed::poke(handle, &key, ReplicaSetEvent::Resync).await;
        }
    }
}

/// The ReplicaSets of a pod's namespace whose selector matches it (for orphans).
fn matching_replicasets(s: &Shared, pod: &Value) -> Vec<ObjectKey> {
    s.rs_cache
        .list_namespace(meta::namespace(pod))
        .iter()
        .filter(|rs| {
            LabelSelector::from_object(&rs["spec"]["selector"])
                .is_ok_and(|sel| !sel.is_empty() && sel.matches(meta::labels(pod)))
        })
        .filter_map(|rs| crate::source::key_of(rs))
        .collect()
}
