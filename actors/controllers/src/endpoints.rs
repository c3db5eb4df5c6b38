//! The endpoints controllers: one actor per Service under the `endpoints` supervisor
//! computes the Service's Endpoints (as `endpoint-controller`) and EndpointSlices (as
//! `endpointslice-controller`) from the ready and not-ready pods its selector picks, with
//! `navarch_logic::endpoints`, and writes what differs.
//!
//! A write can fail for want of a fresh resourceVersion: the caches may not show the
//! controller's own last write yet when the next pod change comes. Changes of the Endpoints
//! and EndpointSlices themselves poke their Service's actor, so it computes again once the
//! cache holds the new version; any failed write also looks again after a second.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, KindHandle, KindSpec, ObjectKey,
    SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Scope, Subscription};
use navarch_logic::endpoints::{self, SliceChanges};
use navarch_logic::meta;
use navarch_model::identity::{ENDPOINTSLICE_CONTROLLER, ENDPOINT_CONTROLLER};
use navarch_model::kinds::{self, Kind};
use navarch_model::options::{DeleteOptions, WriteOptions};
use navarch_model::selector::LabelSelector;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::feed::{self, Reread, RereadState, Rereading};
use crate::source::{key_of, CacheSource};

fn services() -> &'static Kind {
    navarch_client::kind("", "v1", "services")
}

fn endpoints_kind() -> &'static Kind {
    navarch_client::kind("", "v1", "endpoints")
}

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

/// EndpointSlices, when this build serves them.
fn slices_kind() -> Option<&'static Kind> {
    kinds::lookup("discovery.k8s.io", "v1", "endpointslices")
}

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub struct Shared {
    services: Cache,
    endpoints: Cache,
    slices: Option<Cache>,
    pods: Cache,
    endpoints_client: Arc<dyn Client>,
    slices_client: Arc<dyn Client>,
    handle: OnceLock<KindHandle<Rereading<EndpointsLogic>>>,
    requeues: Arc<feed::Requeues>,
}

/// How long after a failed write a Service's actor computes again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub enum EndpointsEvent {
    /// Pods it may select changed: recompute.
    Resync,
}

impl TapInfo for EndpointsEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Resync".into()
    }
}

/// The writes that bring one Service's endpoints up to date.
#[derive(Debug)]
pub struct Step {
    /// The Service's key (its namespace is that of every write).
    key: ObjectKey,
    /// The Endpoints to create (no `resourceVersion`) or replace (with one).
    endpoints: Option<Value>,
    slices: SliceChanges,
}

pub struct EndpointsLogic {
    shared: Arc<Shared>,
}

impl Reread for EndpointsLogic {
    type Event = EndpointsEvent;
    type Step = Step;

    fn step(&self, state: &mut RereadState) -> Decision<Step> {
        let s = &self.shared;
        let ns = state.key.namespace().unwrap_or("");
        let name = state.key.name();
        let Some(svc) = s.services.get(Some(ns), name) else {
            return Ok(Vec::new());
        };
        let pods = s.pods.list_namespace(ns);
        let endpoints = endpoints::endpoints_for(&svc, &pods).and_then(|mut desired| {
            match s.endpoints.get(Some(ns), name) {
                Some(existing) if !endpoints::endpoints_changed(&existing, &desired) => None,
                Some(existing) => {
                    desired["metadata"]["resourceVersion"] =
                        existing["metadata"]["resourceVersion"].clone();
                    Some(desired)
                }
                None => Some(desired),
            }
        });
        let slices = match &s.slices {
            Some(cache) => {
                let existing: Vec<Arc<Value>> = cache
                    .list_namespace(ns)
                    .into_iter()
                    .filter(|sl| meta::label(sl, SERVICE_NAME_LABEL) == Some(name))
                    .collect();
                endpoints::endpoint_slices_for(&svc, &pods, &existing)
            }
            None => SliceChanges::default(),
        };
        let ready = s
            .endpoints
            .get(Some(ns), name)
            .map(|e| {
                e["subsets"]
                    .as_array()
                    .map(|ss| {
                        ss.iter()
                            .map(|x| x["addresses"].as_array().map_or(0, Vec::len))
                            .sum::<usize>()
                    })
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        state.summary = format!("ready endpoints {ready}");
        if endpoints.is_none()
            && slices.create.is_empty()
            && slices.update.is_empty()
            && slices.delete.is_empty()
        {
            return Ok(Vec::new());
        }
        Ok(vec![Step {
            key: state.key.clone(),
            endpoints,
            slices,
        }])
    }
}

pub struct EndpointsEffects {
    shared: Arc<Shared>,
}

impl Effects<Step> for EndpointsEffects {
    fn perform(
        &self,
        _actor: &ActorPath,
        steps: Vec<Step>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let s = self.shared.clone();
        Box::pin(async move {
            for step in steps {
                let key = step.key.clone();
                if !write_step(&s, step).await {
                    if let Some(h) = s.handle.get() {
                        s.requeues
                            .after(h.clone(), key, RETRY_AFTER, EndpointsEvent::Resync);
                    }
                }
            }
            Ok(())
        })
    }
}

/// Writes one step's changes; whether all of them were made (a slice already gone counts).
async fn write_step(s: &Shared, step: Step) -> bool {
    let opts = WriteOptions::default();
    let ns = step.key.namespace().unwrap_or("");
    let mut done = true;
    if let Some(ep) = step.endpoints {
        let name = meta::name(&ep).to_string();
        let result = if meta::resource_version(&ep).is_empty() {
            s.endpoints_client
                .create(endpoints_kind(), Some(ns), ep, &opts)
                .await
                .map(|_| ())
        } else {
            s.endpoints_client
                .update(endpoints_kind(), Some(ns), &name, None, ep, &opts)
                .await
                .map(|_| ())
        };
        if let Err(e) = result {
            tracing::debug!(service = %step.key, endpoints = %name, error = %e, "endpoints not written");
            done = false;
        }
    }
    let Some(kind) = slices_kind() else {
        return done;
    };
    for slice in step.slices.create {
        if let Err(e) = s.slices_client.create(kind, Some(ns), slice, &opts).await {
            tracing::debug!(service = %step.key, error = %e, "endpointslice not created");
            done = false;
        }
    }
    for slice in step.slices.update {
        let name = meta::name(&slice).to_string();
        if let Err(e) = s
            .slices_client
            .update(kind, Some(ns), &name, None, slice, &opts)
            .await
        {
            tracing::debug!(service = %step.key, slice = %name, error = %e, "endpointslice not updated");
            done = false;
        }
    }
    for name in &step.slices.delete {
        match s
            .slices_client
            .delete(kind, Some(ns), name, &DeleteOptions::default())
            .await
        {
            Err(e) if !e.is_not_found() => {
                tracing::debug!(service = %step.key, slice = %name, error = %e, "endpointslice not deleted");
                done = false;
            }
            _ => {}
        }
    }
    done
}

/// The running endpoints controllers of one activation.
pub struct EndpointsController {
    pub handle: KindHandle<Rereading<EndpointsLogic>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for EndpointsController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointsController").finish()
    }
}

impl Drop for EndpointsController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl EndpointsController {
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<EndpointsController, SupervisorError> {
        let shared = Arc::new(Shared {
            services: ctx.cache(services()),
            endpoints: ctx.cache(endpoints_kind()),
            slices: slices_kind().map(|k| ctx.caches.scoped(Scope::kind(k))),
            pods: ctx.cache(pods()),
            endpoints_client: ctx.clients.client(&ENDPOINT_CONTROLLER),
            slices_client: ctx.clients.client(&ENDPOINTSLICE_CONTROLLER),
            handle: OnceLock::new(),
            requeues: feed::Requeues::new(ctx.clock.clone()),
        });
        let spec = KindSpec::new(
            "endpoints",
            Rereading(EndpointsLogic {
                shared: shared.clone(),
            }),
            Arc::new(CacheSource::new(shared.services.clone())),
        )
        .effects(Arc::new(EndpointsEffects {
            shared: shared.clone(),
        }));
        let own_sub = shared.services.subscribe();
        let pod_sub = shared.pods.subscribe();
        let endpoints_sub = shared.endpoints.subscribe();
        let slices_sub = shared.slices.as_ref().map(Cache::subscribe);
        let handle = group.supervise(spec).await?;
        let _ = shared.handle.set(handle.clone());
        let own = feed::spawn_own(handle.clone(), &shared.services, own_sub);
        let mut tasks = vec![
            own,
            tokio::spawn(feed_pods(shared.clone(), pod_sub)),
            tokio::spawn(feed_written(shared.clone(), endpoints_sub, |e| {
                ObjectKey::namespaced(meta::namespace(e), meta::name(e)).ok()
            })),
        ];
        if let Some(sub) = slices_sub {
            tasks.push(tokio::spawn(feed_written(shared.clone(), sub, |sl| {
                let service = meta::label(sl, SERVICE_NAME_LABEL)?;
                ObjectKey::namespaced(meta::namespace(sl), service).ok()
            })));
        }
        Ok(EndpointsController { handle, tasks })
    }
}

/// The Services of a pod's namespace whose selector matches it.
fn services_of(s: &Shared, pod: &Value) -> Vec<ObjectKey> {
    s.services
        .list_namespace(meta::namespace(pod))
        .iter()
        .filter(|svc| {
            svc["spec"]["selector"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
                && LabelSelector::from_object(
                    &serde_json::json!({"matchLabels": svc["spec"]["selector"]}),
                )
                .is_ok_and(|sel| sel.matches(meta::labels(pod)))
        })
        .filter_map(|svc| key_of(svc))
        .collect()
}

async fn feed_pods(s: Arc<Shared>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let mut keys = match &event {
            CacheEvent::Added(p) | CacheEvent::Deleted(p) => services_of(&s, p),
            CacheEvent::Updated { old, new } => {
                let mut k = services_of(&s, old);
                k.extend(services_of(&s, new));
                k
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
                s.services.list().iter().filter_map(|x| key_of(x)).collect()
            }
        };
        keys.sort();
        keys.dedup();
        for key in keys {
            feed::poke(handle, &key, EndpointsEvent::Resync).await;
        }
    }
}

/// Pokes the Service an Endpoints or EndpointSlice change concerns (`service_of` names it):
/// its actor computes again from the version the cache now holds.
async fn feed_written(
    s: Arc<Shared>,
    mut sub: Subscription,
    service_of: fn(&Value) -> Option<ObjectKey>,
) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let keys: Vec<ObjectKey> = match &event {
            CacheEvent::Added(o) | CacheEvent::Deleted(o) | CacheEvent::Updated { new: o, .. } => {
                service_of(o).into_iter().collect()
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
                s.services.list().iter().filter_map(|x| key_of(x)).collect()
            }
        };
        for key in keys {
            feed::poke(handle, &key, EndpointsEvent::Resync).await;
        }
    }
}
