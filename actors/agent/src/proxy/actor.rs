//! The Proxy: one supervised ServicePort actor per port of every Service with a cluster IP,
//! under the `serviceport` kind supervisor of the `proxy` group of the node's actor root
//! (`/node/<n>/proxy/serviceport/<namespace>/<service>:<port>:<protocol>`), fed by the
//! Service and EndpointSlice watch caches over the node link. The actor is a thin shell: a
//! change of its port (the pure [`service_ports`] of the Service and its slices) is applied
//! to the [`Dataplane`] as its effect. The sockets and connections live in the data plane,
//! not in the actor, so a killed actor's next incarnation re-applies the same port and no
//! connection notices.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, GroupSpec, KindHandle, KindSpec,
    ObjectKey, ObjectLogic, Root, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::forward::{Dataplane, DataplaneConfig, ProxyError};
use super::table::{service_ports, ServicePort, LABEL_SERVICE_NAME};

/// A ServicePort actor's messages.
#[derive(Debug, Clone)]
pub enum PortEvent {
    /// Apply the port again.
    Resync,
}

impl TapInfo for PortEvent {
    fn message_type(&self) -> Cow<'static, str> {
        "Resync".into()
    }
}

/// What a ServicePort actor remembers: its port as last seen.
#[derive(Debug)]
pub struct PortState {
    key: ObjectKey,
    spec: Arc<ServicePort>,
}

/// Serve this port as it now is.
#[derive(Debug)]
pub struct Apply {
    key: ObjectKey,
    spec: Arc<ServicePort>,
}

/// The ServicePort actor's logic: every event applies the port.
pub struct PortLogic;

impl ObjectLogic for PortLogic {
    type Object = Arc<ServicePort>;
    type State = PortState;
    type Event = PortEvent;
    type Action = Apply;

    fn rebuild(&self, key: &ObjectKey, spec: Arc<ServicePort>) -> PortState {
        PortState {
            key: key.clone(),
            spec,
        }
    }

    fn on_start(&self, state: &mut PortState) -> Decision<Apply> {
        Ok(vec![apply(state)])
    }

    fn on_change(&self, state: &mut PortState, spec: Arc<ServicePort>) -> Decision<Apply> {
        state.spec = spec;
        Ok(vec![apply(state)])
    }

    fn handle(&self, state: &mut PortState, _: PortEvent) -> Decision<Apply> {
        Ok(vec![apply(state)])
    }

    fn summary(&self, state: &PortState) -> String {
        state.spec.to_string()
    }
}

fn apply(state: &PortState) -> Apply {
    Apply {
        key: state.key.clone(),
        spec: state.spec.clone(),
    }
}

struct PortEffects {
    dataplane: Arc<Dataplane>,
}

impl Effects<Apply> for PortEffects {
    fn perform(
        &self,
        _: &ActorPath,
        actions: Vec<Apply>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let dataplane = self.dataplane.clone();
        Box::pin(async move {
            for Apply { key, spec } in actions {
                dataplane
                    .apply(&key.to_string(), spec)
                    .map_err(|e| EffectError {
                        message: e.to_string(),
                        fatal: false,
                    })?;
            }
            Ok(())
        })
    }
}

/// The Service and EndpointSlice caches the proxy follows.
#[derive(Clone)]
struct Inputs {
    services: Cache,
    slices: Cache,
}

impl Inputs {
    async fn synced(&self) -> Result<(), navarch_actors::SourceError> {
        let stopped = |_| navarch_actors::SourceError::Unavailable("a proxy cache stopped".into());
        self.services.wait_synced().await.map_err(stopped)?;
        self.slices.wait_synced().await.map_err(stopped)
    }

    /// The ports of Service `ns/name` now (none when it is gone).
    fn ports_of(&self, ns: &str, name: &str) -> Vec<ServicePort> {
        let Some(svc) = self.services.get(Some(ns), name) else {
            return Vec::new();
        };
        let slices = self.slices.list_namespace(ns);
        service_ports(&svc, slices.iter().map(|s| &**s))
    }

    fn all(&self) -> Vec<ServicePort> {
        let slices = self.slices.list();
        self.services
            .list()
            .iter()
            .flat_map(|svc| service_ports(svc, slices.iter().map(|s| &**s)))
            .collect()
    }
}

fn key_of(p: &ServicePort) -> Option<ObjectKey> {
    ObjectKey::namespaced(&p.namespace, &p.key_name()).ok()
}

impl navarch_actors::Source<Arc<ServicePort>> for Inputs {
    fn load(
        &self,
        key: &ObjectKey,
    ) -> BoxFuture<'static, Result<Option<Arc<ServicePort>>, navarch_actors::SourceError>> {
        let (inputs, key) = (self.clone(), key.clone());
        Box::pin(async move {
            inputs.synced().await?;
            let ns = key.namespace().unwrap_or_default();
            let service = key.name().split(':').next().unwrap_or_default();
            Ok(inputs
                .ports_of(ns, service)
                .into_iter()
                .find(|p| key_of(p).as_ref() == Some(&key))
                .map(Arc::new))
        })
    }

    fn list(
        &self,
    ) -> Option<BoxFuture<'static, Result<Vec<ObjectKey>, navarch_actors::SourceError>>> {
        let inputs = self.clone();
        Some(Box::pin(async move {
            inputs.synced().await?;
            Ok(inputs.all().iter().filter_map(key_of).collect())
        }))
    }
}

/// A running proxy: its supervisor, its data plane and its feed (stopped on drop, the
/// cluster IPs leaving the service interface).
pub struct Proxy {
    pub handle: KindHandle<PortLogic>,
    pub group: GroupHandle,
    dataplane: Arc<Dataplane>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.dataplane.shutdown();
    }
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyStartError {
    #[error(transparent)]
    Dataplane(#[from] ProxyError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

impl Proxy {
    /// Starts the proxy under `root` on the Service and EndpointSlice caches. Must run
    /// inside an actix system.
    pub async fn start(
        root: &Root,
        cfg: DataplaneConfig,
        services: Cache,
        slices: Cache,
    ) -> Result<Proxy, ProxyStartError> {
        let dataplane = Arc::new(Dataplane::new(cfg)?);
        let inputs = Inputs { services, slices };
        let group = root.group(GroupSpec::new("proxy"))?;
        let spec = KindSpec::new("serviceport", PortLogic, Arc::new(inputs.clone())).effects(
            Arc::new(PortEffects {
                dataplane: dataplane.clone(),
            }),
        );
        let subs = (inputs.services.subscribe(), inputs.slices.subscribe());
        let handle = group.supervise(spec).await?;
        let feed = tokio::spawn(feed(handle.clone(), inputs, dataplane.clone(), subs));
        Ok(Proxy {
            handle,
            group,
            dataplane,
            tasks: vec![feed],
        })
    }

    pub fn dataplane(&self) -> &Arc<Dataplane> {
        &self.dataplane
    }
}

/// The Service an object of either cache belongs to.
fn service_of(obj: &Value) -> Option<(String, String)> {
    let ns = obj["metadata"]["namespace"].as_str()?.to_string();
    let name = if obj["kind"] == "EndpointSlice" || obj.get("addressType").is_some() {
        obj["metadata"]["labels"][LABEL_SERVICE_NAME].as_str()?
    } else {
        obj["metadata"]["name"].as_str()?
    };
    Some((ns, name.to_string()))
}

/// Turns cache changes into port changes: the ports of each Service touched are computed
/// again; ports that appeared or changed go to their actors, ports that went stop theirs
/// and leave the data plane.
async fn feed(
    handle: KindHandle<PortLogic>,
    inputs: Inputs,
    dataplane: Arc<Dataplane>,
    (mut services, mut slices): (navarch_client::Subscription, navarch_client::Subscription),
) {
    let mut known: BTreeMap<(String, String), BTreeMap<ObjectKey, Arc<ServicePort>>> =
        BTreeMap::new();
    loop {
        let event = tokio::select! {
            e = services.recv() => e,
            e = slices.recv() => e,
        };
        let Some(event) = event else {
            return;
        };
        let touched: BTreeSet<(String, String)> = match &event {
            CacheEvent::Added(o) | CacheEvent::Deleted(o) => service_of(o).into_iter().collect(),
            CacheEvent::Updated { old, new } => {
                service_of(old).into_iter().chain(service_of(new)).collect()
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
                let mut all: BTreeSet<(String, String)> = known.keys().cloned().collect();
                all.extend(inputs.services.list().iter().filter_map(|s| service_of(s)));
                all
            }
        };
        for svc in touched {
            let now: BTreeMap<ObjectKey, Arc<ServicePort>> = inputs
                .ports_of(&svc.0, &svc.1)
                .into_iter()
                .filter_map(|p| Some((key_of(&p)?, Arc::new(p))))
                .collect();
            let before = known.remove(&svc).unwrap_or_default();
            for key in before.keys().filter(|k| !now.contains_key(*k)) {
                dataplane.remove(&key.to_string());
                if handle.object_removed(key.clone()).await.is_err() {
                    return;
                }
            }
            for (key, port) in &now {
                if before.get(key) == Some(port) {
                    continue;
                }
                if handle
                    .object_changed(key.clone(), port.clone())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if !now.is_empty() {
                known.insert(svc, now);
            }
        }
    }
}
