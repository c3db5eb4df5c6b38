//! The garbage collector: a singleton that deletes the dependents of owners that are gone
//! (by `ownerReferences`), drops references to owners that went or orphaned them, and lets
//! owners held by the `foregroundDeletion` or `orphan` finalizer go once their dependents
//! allow, as `generic-garbage-collector`. The API server does this inside the delete request
//! when it can; the collector is what makes it complete when a master died in between: it
//! scans every dependent when it starts, and follows owner deletions afterwards. The
//! decisions are `navarch_logic::gc`'s; an owner the caches say is gone is read live before
//! anything is deleted.

use std::sync::Arc;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, SingletonLogic, SingletonRef,
    SingletonSpec, SnapshotSource, SourceError, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subscription};
use navarch_logic::gc::{self, Owner};
use navarch_logic::meta;
use navarch_model::identity::GARBAGE_COLLECTOR;
use navarch_model::kinds::{self, Kind};
use navarch_model::options::{DeleteOptions, GetOptions, Patch, Propagation, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::context::Ctx;

/// The collector's messages.
#[derive(Debug, Clone)]
pub enum GcEvent {
    /// Look at every dependent and every held owner.
    Scan,
    /// An owner was deleted, or is being deleted.
    OwnerChanged(Arc<Value>),
}

impl TapInfo for GcEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            GcEvent::Scan => "Scan",
            GcEvent::OwnerChanged(_) => "OwnerChanged",
        }
        .into()
    }
}

/// What to look at: dependents to decide about, owners that may be released.
#[derive(Debug, Default)]
pub struct Examine {
    dependents: Vec<(&'static Kind, Arc<Value>)>,
    owners: Vec<(&'static Kind, Arc<Value>)>,
}

/// The caches the collector reads: dependents and owners of the kinds navarch's
/// controllers make.
#[derive(Clone)]
struct Caches {
    /// Kinds whose objects have owners.
    dependents: Vec<(&'static Kind, Cache)>,
    /// Kinds that own objects.
    owners: Vec<(&'static Kind, Cache)>,
}

impl Caches {
    fn owner_cache(&self, kind: &Kind) -> Option<&Cache> {
        self.owners
            .iter()
            .chain(self.dependents.iter())
            .find(|(k, _)| std::ptr::eq(*k, kind))
            .map(|(_, c)| c)
    }

    fn dependents_of(&self, owner_uid: &str) -> Vec<(&'static Kind, Arc<Value>)> {
        let mut out = Vec::new();
        for (k, c) in &self.dependents {
            for d in c.owned_by(owner_uid) {
                out.push((*k, d));
            }
        }
        out
    }
}

pub struct GcLogic {
    caches: Caches,
}

/// The collector keeps nothing between messages: it works from the caches.
#[derive(Debug, Default)]
pub struct GcState {
    scans: u64,
    owner_events: u64,
}

impl GcLogic {
    fn scan(&self) -> Examine {
        let mut e = Examine::default();
        for (k, c) in &self.caches.dependents {
            for d in c.list() {
                if !meta::owner_refs(&d).is_empty() {
                    e.dependents.push((*k, d));
                }
            }
        }
        for (k, c) in &self.caches.owners {
            for o in c.list() {
                if gc::release_owner(&o, 0).is_some() {
                    e.owners.push((*k, o));
                }
            }
        }
        e
    }
}

impl SingletonLogic for GcLogic {
    type Snapshot = ();
    type State = GcState;
    type Event = GcEvent;
    type Action = Examine;

    fn rebuild(&self, _: ()) -> GcState {
        GcState::default()
    }

    fn on_start(&self, state: &mut GcState) -> Decision<Examine> {
        state.scans += 1;
        Ok(vec![self.scan()])
    }

    fn handle(&self, state: &mut GcState, event: GcEvent) -> Decision<Examine> {
        match event {
            GcEvent::Scan => {
                state.scans += 1;
                Ok(vec![self.scan()])
            }
            GcEvent::OwnerChanged(owner) => {
                state.owner_events += 1;
                let mut e = Examine {
                    dependents: self.caches.dependents_of(meta::uid(&owner)),
                    owners: Vec::new(),
                };
                if let Some(kind) = kind_of(&owner) {
                    e.owners.push((kind, owner));
                }
                Ok(vec![e])
            }
        }
    }

    fn summary(&self, state: &GcState) -> String {
        format!(
            "scans {}, owner changes {}",
            state.scans, state.owner_events
        )
    }
}

fn kind_of(obj: &Value) -> Option<&'static Kind> {
    let (group, version) = match obj["apiVersion"].as_str()?.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", obj["apiVersion"].as_str()?),
    };
    kinds::KINDS.iter().find(|k| {
        k.group == group && k.version == version && k.kind == obj["kind"].as_str().unwrap_or("")
    })
}

struct Nothing;

impl SnapshotSource<()> for Nothing {
    fn load(&self) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async { Ok(()) })
    }
}

struct GcEffects {
    client: Arc<dyn Client>,
    caches: Caches,
}

impl GcEffects {
    /// What became of the owner `r` names, for a dependent in `namespace`.
    async fn fate(&self, namespace: &str, r: &Value) -> Owner {
        let Some(kind) = kind_of(r) else {
            return Owner::Unknown;
        };
        let (Some(name), Some(uid)) = (r["name"].as_str(), r["uid"].as_str()) else {
            return Owner::Unknown;
        };
        let ns = kind.namespaced.then_some(namespace);
        if let Some(cache) = self.caches.owner_cache(kind) {
            if let Some(o) = cache.get(ns, name) {
                let s = gc::owner_state(Some(&o), uid);
                if s != Owner::Absent {
                    return s;
                }
            }
        }
        // The cache may lag: only a live read says an owner is gone.
        match self
            .client
            .get(kind, ns, name, &GetOptions::default())
            .await
        {
            Ok(o) => gc::owner_state(Some(&o), uid),
            Err(e) if e.is_not_found() => Owner::Absent,
            Err(_) => Owner::Unknown,
        }
    }

    async fn dependent(&self, kind: &'static Kind, obj: &Value) {
        let ns = meta::namespace(obj);
        let mut owners = Vec::new();
        for r in meta::owner_refs(obj) {
            owners.push(self.fate(ns, r).await);
        }
        let opts = WriteOptions::default();
        let name = meta::name(obj);
        let ns = kind.namespaced.then_some(ns);
        match gc::dependent(obj, &owners) {
            gc::Decision::Keep => {}
            gc::Decision::Delete => {
                let del = DeleteOptions {
                    precondition_uid: Some(meta::uid(obj).to_string()),
                    propagation_policy: Some(Propagation::Background),
                    ..DeleteOptions::default()
                };
                match self.client.delete(kind, ns, name, &del).await {
                    Ok(_) => tracing::info!(
                        kind = kind.kind,
                        name,
                        "deleted a dependent of a deleted owner"
                    ),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::debug!(kind = kind.kind, name, error = %e, "dependent not deleted")
                    }
                }
            }
            gc::Decision::SetOwners(refs) => {
                let patch = Patch {
                    ty: PatchType::Merge,
                    body: json!({"metadata": {
                        "ownerReferences": refs,
                        "resourceVersion": meta::resource_version(obj),
                    }}),
                };
                if let Err(e) = self.client.patch(kind, ns, name, None, patch, &opts).await {
                    tracing::debug!(kind = kind.kind, name, error = %e, "owner references not updated");
                }
            }
        }
    }

    async fn owner(&self, kind: &'static Kind, owner: &Value) {
        let remaining = self.caches.dependents_of(meta::uid(owner)).len();
        let Some(finalizers) = gc::release_owner(owner, remaining) else {
            return;
        };
        let patch = Patch {
            ty: PatchType::Merge,
            body: json!({"metadata": {
                "finalizers": finalizers,
                "resourceVersion": meta::resource_version(owner),
            }}),
        };
        let ns = kind.namespaced.then_some(meta::namespace(owner));
        if let Err(e) = self
            .client
            .patch(
                kind,
                ns,
                meta::name(owner),
                None,
                patch,
                &WriteOptions::default(),
            )
            .await
        {
            tracing::debug!(kind = kind.kind, name = meta::name(owner), error = %e, "owner not released");
        }
    }
}

impl Effects<Examine> for Arc<GcEffects> {
    fn perform(
        &self,
        _actor: &ActorPath,
        work: Vec<Examine>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let me = self.clone();
        Box::pin(async move {
            for e in work {
                for (k, d) in &e.dependents {
                    me.dependent(k, d).await;
                }
                for (k, o) in &e.owners {
                    me.owner(k, o).await;
                }
            }
            Ok(())
        })
    }
}

/// The running collector of one activation.
pub struct GarbageCollector {
    pub handle: SingletonRef<GcLogic>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbageCollector").finish()
    }
}

impl Drop for GarbageCollector {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl GarbageCollector {
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<GarbageCollector, SupervisorError> {
        let kind = |g: &str, p: &str| navarch_client::kind(g, "v1", p);
        let mut dependents = vec![
            (kind("", "pods"), ctx.cache(kind("", "pods"))),
            (
                kind("apps", "replicasets"),
                ctx.cache(kind("apps", "replicasets")),
            ),
        ];
        if let Some(slices) = kinds::lookup("discovery.k8s.io", "v1", "endpointslices") {
            dependents.push((slices, ctx.cache(slices)));
        }
        let owners = vec![
            (
                kind("apps", "deployments"),
                ctx.cache(kind("apps", "deployments")),
            ),
            (kind("", "services"), ctx.cache(kind("", "services"))),
        ];
        let caches = Caches { dependents, owners };
        let effects = Arc::new(GcEffects {
            client: ctx.clients.client(&GARBAGE_COLLECTOR),
            caches: caches.clone(),
        });
        let spec = SingletonSpec::new(
            "garbage-collector",
            GcLogic {
                caches: caches.clone(),
            },
            Arc::new(Nothing),
        )
        .effects(Arc::new(effects));
        // Every kind that owns something: its deletions (and deletions held by GC
        // finalizers) reach the collector; subscribed before its first scan.
        let mut watched: Vec<Cache> = caches.owners.iter().map(|(_, c)| c.clone()).collect();
        watched.extend(caches.dependents.iter().map(|(_, c)| c.clone()));
        let subs: Vec<Subscription> = watched.iter().map(Cache::subscribe).collect();
        let handle = group.singleton(spec).await?;
        let mut tasks = Vec::new();
        for sub in subs {
            tasks.push(tokio::spawn(feed(handle.clone(), sub)));
        }
        Ok(GarbageCollector { handle, tasks })
    }
}

async fn feed(handle: SingletonRef<GcLogic>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let e = match event {
            CacheEvent::Deleted(o) => GcEvent::OwnerChanged(o),
            CacheEvent::Updated { old, new }
                if meta::is_deleting(&new) && !meta::is_deleting(&old) =>
            {
                GcEvent::OwnerChanged(new)
            }
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => GcEvent::Scan,
            _ => continue,
        };
        while handle.send(e.clone()).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
