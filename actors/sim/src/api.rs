//! The simulated API: Deployments, ReplicaSets, Pods and Nodes of one namespace with
//! resourceVersions, optimistic concurrency, generated names, generations, the status
//! split, graceful pod deletion and background deletion of dependents, and one ordered
//! event log per kind that the simulated watches read.

use std::collections::BTreeMap;
use std::sync::Arc;

use navarch_logic::meta;
use serde_json::{json, Value};

use crate::error::ApiError;

/// The namespace every simulated object lives in.
pub const NAMESPACE: &str = "default";

/// The kinds the simulation serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    Pod,
    Node,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Deployment, Kind::ReplicaSet, Kind::Pod, Kind::Node];

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::ReplicaSet => "replicaset",
            Kind::Pod => "pod",
            Kind::Node => "node",
        }
    }

    fn has_generation(self) -> bool {
        matches!(self, Kind::Deployment | Kind::ReplicaSet)
    }
}

/// A watch event's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One entry of a kind's event log.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub ty: EventType,
    pub object: Arc<Value>,
}

/// The store and its event logs.
#[derive(Debug, Default)]
pub struct Api {
    objects: [BTreeMap<String, Arc<Value>>; 4],
    logs: [Vec<WatchEvent>; 4],
    rv: u64,
    uids: u64,
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn set_meta(obj: &mut Value, key: &str, v: Value) {
    meta::object_at(obj, "metadata").insert(key.to_string(), v);
}

impl Api {
    /// The store's revision (it moves with every write).
    pub fn revision(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<&Arc<Value>> {
        self.objects[kind.index()].get(name)
    }

    pub fn list(&self, kind: Kind) -> impl Iterator<Item = &Arc<Value>> {
        self.objects[kind.index()].values()
    }

    pub fn log(&self, kind: Kind) -> &[WatchEvent] {
        &self.logs[kind.index()]
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, kind: Kind, ty: EventType, object: Arc<Value>) {
        self.logs[kind.index()].push(WatchEvent { ty, object });
    }

    fn store(&mut self, kind: Kind, mut obj: Value, ty: EventType) -> Arc<Value> {
        let rv = self.next_rv();
        set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.objects[kind.index()].insert(meta::name(&obj).to_string(), obj.clone());
        self.record(kind, ty, obj.clone());
        obj
    }

    fn current(&self, kind: Kind, name: &str) -> Result<Arc<Value>, ApiError> {
        self.get(kind, name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                kind: kind.name(),
                name: name.to_string(),
            })
    }

    fn conflict(kind: Kind, name: &str, reason: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            kind: kind.name(),
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// POST: a `generateName` gets a random suffix; the server sets uid, revision,
    /// creationTimestamp, generation and an empty status.
    pub fn create(
        &mut self,
        kind: Kind,
        mut obj: Value,
        now: i64,
        suffix: [u8; 5],
    ) -> Result<Arc<Value>, ApiError> {
        let mut name = meta::name(&obj).to_string();
        if name.is_empty() {
            let prefix = obj["metadata"]["generateName"].as_str().unwrap_or("");
            let tail: String = suffix
                .iter()
                .map(|b| NAME_CHARS[*b as usize % NAME_CHARS.len()] as char)
                .collect();
            name = format!("{prefix}{tail}");
        }
        if self.get(kind, &name).is_some() {
            return Err(ApiError::AlreadyExists {
                kind: kind.name(),
                name,
            });
        }
        self.uids += 1;
        set_meta(&mut obj, "name", json!(name));
        set_meta(&mut obj, "uid", json!(format!("uid-{}", self.uids)));
        set_meta(
            &mut obj,
            "creationTimestamp",
            json!(meta::format_rfc3339(now)),
        );
        if kind != Kind::Node {
            set_meta(&mut obj, "namespace", json!(NAMESPACE));
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("generateName");
        }
        if kind.has_generation() {
            set_meta(&mut obj, "generation", json!(1));
        }
        match kind {
            Kind::ReplicaSet => obj["status"] = json!({"replicas": 0}),
            Kind::Deployment => obj["status"] = json!({}),
            Kind::Pod => obj["status"] = json!({"phase": "Pending"}),
            Kind::Node => {}
        }
        Ok(self.store(kind, obj, EventType::Added))
    }

    /// PUT of the main resource (`status: false`: everything but the status) or of the
    /// status subresource, at the object's resourceVersion. A write that changes nothing
    /// is not stored (the real API skips it too).
    pub fn update(
        &mut self,
        kind: Kind,
        obj: &Value,
        status: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let name = meta::name(obj);
        let cur = self.current(kind, name)?;
        let uid = meta::uid(obj);
        if !uid.is_empty() && uid != meta::uid(&cur) {
            return Err(Self::conflict(kind, name, "uid precondition failed"));
        }
        let rv = meta::resource_version(obj);
        if rv != meta::resource_version(&cur) {
            return Err(Self::conflict(
                kind,
                name,
                format!(
                    "stale resourceVersion {rv}, stored {}",
                    meta::resource_version(&cur)
                ),
            ));
        }
        let mut new = if status {
            let mut n = (*cur).clone();
            n["status"] = obj["status"].clone();
            n
        } else {
            let mut n = obj.clone();
            n["status"] = cur["status"].clone();
            for key in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "namespace",
                "generation",
            ] {
                match cur["metadata"].get(key) {
                    Some(v) => set_meta(&mut n, key, v.clone()),
                    None => {
                        if let Some(m) = n["metadata"].as_object_mut() {
                            m.remove(key);
                        }
                    }
                }
            }
            if kind.has_generation() && n["spec"] != cur["spec"] {
                set_meta(&mut n, "generation", json!(meta::generation(&cur) + 1));
            }
            n
        };
        set_meta(
            &mut new,
            "resourceVersion",
            json!(meta::resource_version(&cur)),
        );
        if new == *cur {
            return Ok(cur);
        }
        Ok(self.store(kind, new, EventType::Modified))
    }

    /// A merge patch of a pod's `ownerReferences` at a resourceVersion (adopt, release).
    pub fn set_owners(
        &mut self,
        name: &str,
        resource_version: &str,
        owners: &Value,
    ) -> Result<Arc<Value>, ApiError> {
        let cur = self.current(Kind::Pod, name)?;
        if meta::resource_version(&cur) != resource_version {
            return Err(Self::conflict(Kind::Pod, name, "stale resourceVersion"));
        }
        let mut new = (*cur).clone();
        set_meta(&mut new, "ownerReferences", owners.clone());
        Ok(self.store(Kind::Pod, new, EventType::Modified))
    }

    /// `pods/<name>/binding`: a pod bound already is a conflict.
    pub fn bind(&mut self, name: &str, uid: &str, node: &str) -> Result<Arc<Value>, ApiError> {
        let cur = self.current(Kind::Pod, name)?;
        if !uid.is_empty() && uid != meta::uid(&cur) {
            return Err(Self::conflict(Kind::Pod, name, "uid precondition failed"));
        }
        if let Some(n) = meta::pod_node(&cur) {
            return Err(Self::conflict(
                Kind::Pod,
                name,
                format!("already bound to {n}"),
            ));
        }
        let mut new = (*cur).clone();
        meta::object_at(&mut new, "spec").insert("nodeName".into(), json!(node));
        Ok(self.store(Kind::Pod, new, EventType::Modified))
    }

    /// The kubelet's or the node's own status write (no precondition).
    pub fn write_status(
        &mut self,
        kind: Kind,
        name: &str,
        status: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let cur = self.current(kind, name)?;
        if cur["status"] == status {
            return Ok(cur);
        }
        let mut new = (*cur).clone();
        new["status"] = status;
        Ok(self.store(kind, new, EventType::Modified))
    }

    /// DELETE with uid and resourceVersion preconditions. A pod bound to a node and not
    /// ended is only marked (its kubelet ends it); anything else goes at once, and so do
    /// its dependents (background propagation, done inside the request).
    pub fn delete(
        &mut self,
        kind: Kind,
        name: &str,
        uid: Option<&str>,
        resource_version: Option<&str>,
        now: i64,
    ) -> Result<(), ApiError> {
        let cur = self.current(kind, name)?;
        if uid.is_some_and(|u| u != meta::uid(&cur)) {
            return Err(Self::conflict(kind, name, "uid precondition failed"));
        }
        if resource_version.is_some_and(|r| r != meta::resource_version(&cur)) {
            return Err(Self::conflict(
                kind,
                name,
                "resourceVersion precondition failed",
            ));
        }
        if kind == Kind::Pod && meta::pod_node(&cur).is_some() && !meta::pod_terminated(&cur) {
            if !meta::is_deleting(&cur) {
                let mut new = (*cur).clone();
                set_meta(
                    &mut new,
                    "deletionTimestamp",
                    json!(meta::format_rfc3339(now)),
                );
                self.store(Kind::Pod, new, EventType::Modified);
            }
            return Ok(());
        }
        self.remove(kind, name);
        let owner = meta::uid(&cur).to_string();
        for dep_kind in [Kind::ReplicaSet, Kind::Pod] {
            let dependents: Vec<String> = self
                .list(dep_kind)
                .filter(|o| {
                    meta::owner_refs(o)
                        .iter()
                        .any(|r| r["uid"].as_str() == Some(&owner))
                })
                .map(|o| meta::name(o).to_string())
                .collect();
            for d in dependents {
                let _ = self.delete(dep_kind, &d, None, None, now);
            }
        }
        Ok(())
    }

    /// Removes an object for good (a pod its kubelet ended, or a delete without grace).
    pub fn remove(&mut self, kind: Kind, name: &str) {
        if let Some(obj) = self.objects[kind.index()].remove(name) {
            // The DELETED event carries a new revision, as the real store's does.
            let mut last = (*obj).clone();
            let rv = self.next_rv();
            set_meta(&mut last, "resourceVersion", json!(rv.to_string()));
            self.record(kind, EventType::Deleted, Arc::new(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_writes_conflict_and_bindings_are_final() {
        let mut api = Api::default();
        let pod = json!({"metadata": {"generateName": "web-"}, "spec": {}});
        let p = api.create(Kind::Pod, pod, 100, [0, 1, 2, 3, 4]).unwrap();
        assert_eq!(meta::name(&p), "web-bcdfg");
        let stale = (*p).clone();
        api.bind(meta::name(&p), meta::uid(&p), "n1").unwrap();
        assert!(api
            .bind(meta::name(&p), "", "n2")
            .unwrap_err()
            .is_conflict());
        assert!(api
            .set_owners(meta::name(&p), meta::resource_version(&stale), &json!([]))
            .is_err());
        // A bound pod is only marked on delete; its kubelet removes it.
        api.delete(Kind::Pod, "web-bcdfg", None, None, 101).unwrap();
        assert!(meta::is_deleting(api.get(Kind::Pod, "web-bcdfg").unwrap()));
        api.remove(Kind::Pod, "web-bcdfg");
        let types: Vec<EventType> = api.log(Kind::Pod).iter().map(|e| e.ty).collect();
        assert_eq!(
            types,
            [
                EventType::Added,
                EventType::Modified,
                EventType::Modified,
                EventType::Deleted
            ]
        );
    }

    #[test]
    fn deleting_an_owner_deletes_its_dependents() {
        let mut api = Api::default();
        let rs = api
            .create(
                Kind::ReplicaSet,
                json!({"metadata": {"name": "rs"}, "spec": {}}),
                1,
                [0; 5],
            )
            .unwrap();
        let owner = json!([{"uid": meta::uid(&rs), "controller": true}]);
        api.create(
            Kind::Pod,
            json!({"metadata": {"name": "p", "ownerReferences": owner}, "spec": {}}),
            1,
            [0; 5],
        )
        .unwrap();
        api.delete(Kind::ReplicaSet, "rs", None, None, 2).unwrap();
        assert!(api.get(Kind::Pod, "p").is_none());
    }
}
