//! The authorizer every request passes (Kubernetes' `--authorization-mode=Node,RBAC` with
//! the privileged `system:masters` group), and the feed that keeps its RBAC snapshot equal
//! to the Roles, ClusterRoles and bindings in the store: listed once, then followed from the
//! store's apply path, listed again when the watch history has moved past it.
//!
//! Like kube-apiserver's RBAC cache, the snapshot is eventually consistent: a RoleBinding
//! takes effect on this master once its watch event has been applied here (milliseconds).
//! Until the first list, the snapshot holds the bootstrap policy.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use navarch_model::authz::{self, Attributes, Binding, Decision, User};
use navarch_model::kinds::{self, Kind};
use navarch_model::rbac::RbacKind;
use navarch_store::{EventKind, KeyRange, Revision, StoreError};

use crate::storage::{decode_object, Storage};

pub(crate) struct Authorizer {
    inner: RwLock<authz::Authorizer>,
}

fn rbac_kinds() -> impl Iterator<Item = &'static Kind> {
    [
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
    ]
    .into_iter()
    .map(|p| kinds::lookup("rbac.authorization.k8s.io", "v1", p).expect("rbac kinds are served"))
}

impl Authorizer {
    pub(crate) fn new(bindings: Vec<Binding>) -> Self {
        Authorizer {
            inner: RwLock::new(authz::Authorizer::new(bindings)),
        }
    }

    /// Runs `f` with the current authorizer (reviews and escalation checks need it whole).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&authz::Authorizer) -> T) -> T {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    pub(crate) fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> Decision {
        // A create names no object: like Kubernetes' Node authorizer, let a node create
        // Nodes and node Leases at all; NodeRestriction (admission) confines it to its own.
        if let (Some(node), "create", "") = (user.node_name(), attrs.verb, attrs.name) {
            let own_kind = matches!(
                (attrs.group, attrs.resource),
                ("", "nodes") | ("coordination.k8s.io", "leases")
            );
            if own_kind && attrs.subresource.is_empty() {
                let as_own = Attributes {
                    name: node,
                    namespace: if attrs.resource == "leases" {
                        authz::NODE_LEASE_NAMESPACE
                    } else {
                        attrs.namespace
                    },
                    ..attrs.clone()
                };
                return self.with(|a| a.authorize(user, &as_own));
            }
        }
        self.with(|a| a.authorize(user, attrs))
    }

    fn replace(&self, objects: &[serde_json::Value]) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        guard.rbac_mut().replace_all(objects);
    }

    fn apply(&self, kind: EventKind, obj: &serde_json::Value) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let rbac = guard.rbac_mut();
        match kind {
            EventKind::Created | EventKind::Updated => {
                if let Err(e) = rbac.upsert(obj) {
                    tracing::warn!(error = %e, "rbac object not usable; ignored");
                }
            }
            EventKind::Deleted => {
                if let Ok(k) = RbacKind::of_object(obj) {
                    let m = &obj["metadata"];
                    rbac.remove(
                        k,
                        m["namespace"].as_str().unwrap_or(""),
                        m["name"].as_str().unwrap_or(""),
                    );
                }
            }
        }
    }
}

/// Lists the RBAC objects at one revision (the four kinds, each linearizably, then the
/// store's revision as the watch's start: a change between two lists is seen again by the
/// watch, which only ever upserts).
async fn list_all(storage: &Storage) -> Result<(Vec<serde_json::Value>, Revision), String> {
    let start = storage.revision();
    let mut out = Vec::new();
    for kind in rbac_kinds() {
        out.extend(storage.all(kind, None).await.map_err(|e| e.message)?);
    }
    Ok((out, start))
}

/// Keeps `authorizer`'s RBAC snapshot equal to the store's objects, for as long as the
/// process runs.
pub(crate) async fn feed(storage: Storage, authorizer: Arc<Authorizer>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (objects, start) = match list_all(&storage).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "rbac list failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        authorizer.replace(&objects);
        tracing::debug!(
            objects = objects.len(),
            revision = start.0,
            "rbac snapshot listed"
        );
        backoff = Duration::from_millis(100);
        let mut streams = Vec::new();
        for kind in rbac_kinds() {
            match storage
                .member()
                .watch(KeyRange::kind(kind.store_kind()), Some(start))
            {
                Ok(rx) => streams.push(Box::pin(futures::stream::unfold(rx, |mut rx| async {
                    rx.recv().await.map(|b| (b, rx))
                }))),
                Err(e) => {
                    tracing::debug!(error = %e, "rbac watch failed; listing again");
                    break;
                }
            }
        }
        let mut merged = futures::stream::select_all(streams);
        while let Some(batch) = merged.next().await {
            match batch {
                Ok(batch) => {
                    for ev in &batch.events {
                        let obj = decode_object(&navarch_store::Object {
                            key: ev.key.clone(),
                            value: ev.value.clone(),
                            create_revision: ev.create_revision,
                            mod_revision: batch.revision,
                        });
                        match obj {
                            Ok(o) => authorizer.apply(ev.kind, &o),
                            Err(e) => tracing::warn!(error = %e.message, "rbac event undecodable"),
                        }
                    }
                }
                Err(StoreError::Expired { .. }) => {
                    tracing::info!("rbac watch expired; listing again");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "rbac watch ended; listing again");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}
