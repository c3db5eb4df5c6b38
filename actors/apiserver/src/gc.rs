//! Dependents by `ownerReferences`, handled inside the delete request (the control plane's
//! garbage collector completes what a request could not): Background (the owner goes, then
//! its dependents), Foreground (the dependents go first) and Orphan (the dependents lose
//! their reference). Emptying a deleted namespace is the namespace controller's
//! (`navarch-controllers`), as in Kubernetes.
//!
//! Every walk works on one snapshot of the candidate objects with an index by owner uid and a
//! set of visited uids, iteratively: an object that owns itself, or objects that own each
//! other, are visited once, never recursed into (Kubernetes' collector handles such cycles
//! too), and no input makes the walk's depth or length exceed the number of objects.

use std::collections::{BTreeMap, HashSet, VecDeque};

use navarch_model::kinds::{self, Kind};
use navarch_model::options::{DeleteOptions, Propagation, WriteOptions};
use navarch_model::ApiError;
use serde_json::Value;

use crate::storage::{admit_all, meta_mut, Removed, Storage, UpdateMode};

/// The stored kinds an object of `owner` may own: namespaced kinds in its namespace, or every
/// kind for a cluster-scoped owner.
fn candidate_kinds(owner: &Kind) -> impl Iterator<Item = &'static Kind> + '_ {
    kinds::KINDS
        .iter()
        .filter(|k| k.stored)
        .filter(move |k| k.namespaced || !owner.namespaced)
}

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// The objects that could depend on an owner, indexed by the uids they name as owners.
struct Graph {
    objects: Vec<(&'static Kind, Value)>,
    children: BTreeMap<String, Vec<usize>>,
}

impl Graph {
    async fn load(storage: &Storage, owner_kind: &Kind, owner: &Value) -> Result<Graph, ApiError> {
        let ns = owner["metadata"]["namespace"]
            .as_str()
            .filter(|_| owner_kind.namespaced);
        let mut objects = Vec::new();
        for kind in candidate_kinds(owner_kind) {
            for obj in storage.all(kind, ns).await? {
                objects.push((kind, obj));
            }
        }
        let mut children: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (_, obj)) in objects.iter().enumerate() {
            for o in owner_uids(obj) {
                children.entry(o.to_string()).or_default().push(i);
            }
        }
        Ok(Graph { objects, children })
    }

    fn children_of(&self, owner_uid: &str) -> &[usize] {
        self.children
            .get(owner_uid)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every object owned, directly or not, by `owner_uid`, breadth first, each once.
    fn closure(&self, owner_uid: &str) -> Vec<usize> {
        let mut visited: HashSet<&str> = HashSet::from([owner_uid]);
        let mut order = Vec::new();
        let mut queue: VecDeque<&str> = VecDeque::from([owner_uid]);
        while let Some(o) = queue.pop_front() {
            for &i in self.children_of(o) {
                let u = uid(&self.objects[i].1);
                if visited.insert(u) {
                    order.push(i);
                    queue.push_back(u);
                }
            }
        }
        order
    }
}

fn name_of(obj: &Value) -> (&str, &str) {
    (
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or(""),
    )
}

/// Deletes one dependent (no precondition, no cascade of its own: the walk does that);
/// `true` if it is gone, `false` if a grace period or finalizers hold it.
async fn remove(storage: &Storage, kind: &Kind, obj: &Value) -> Result<bool, ApiError> {
    let (ns, name) = name_of(obj);
    let opts = DeleteOptions::default();
    match storage
        .delete_one(kind, ns, name, &opts, Propagation::Background)
        .await
    {
        Ok(Removed::Deleted(_)) => Ok(true),
        Ok(Removed::Marked(_)) => Ok(false),
        Err(e) if e.code == 404 => Ok(true),
        Err(e) => Err(e),
    }
}

/// What must happen to an owner's dependents before the owner itself is removed: with
/// `Foreground` they are deleted (the deepest first), with `Orphan` they lose their
/// reference to it.
pub(crate) async fn before_owner_goes(
    storage: &Storage,
    kind: &Kind,
    owner: &Value,
    policy: Propagation,
) -> Result<(), ApiError> {
    match policy {
        Propagation::Orphan => orphan_dependents(storage, kind, owner).await,
        Propagation::Foreground => {
            let graph = Graph::load(storage, kind, owner).await?;
            for i in graph.closure(uid(owner)).into_iter().rev() {
                let (k, obj) = &graph.objects[i];
                remove(storage, k, obj).await?;
            }
            Ok(())
        }
        Propagation::Background => Ok(()),
    }
}

/// The owner is gone: its dependents go too (Kubernetes' Background propagation), and
/// theirs once they are gone; a dependent held by finalizers or a grace period keeps its
/// own dependents until it goes.
pub(crate) async fn after_owner_gone(
    storage: &Storage,
    kind: &Kind,
    owner: &Value,
) -> Result<(), ApiError> {
    let graph = Graph::load(storage, kind, owner).await?;
    let mut visited: HashSet<&str> = HashSet::from([uid(owner)]);
    let mut queue: VecDeque<&str> = VecDeque::from([uid(owner)]);
    while let Some(o) = queue.pop_front() {
        for &i in graph.children_of(o) {
            let (k, obj) = &graph.objects[i];
            let u = uid(obj);
            if !visited.insert(u) {
                continue;
            }
            if remove(storage, k, obj).await? {
                queue.push_back(u);
            }
        }
    }
    Ok(())
}

/// Removes the owner's reference from each of its direct dependents.
pub(crate) async fn orphan_dependents(
    storage: &Storage,
    kind: &Kind,
    owner: &Value,
) -> Result<(), ApiError> {
    let owner_uid = uid(owner).to_string();
    if owner_uid.is_empty() {
        return Ok(());
    }
    let graph = Graph::load(storage, kind, owner).await?;
    for &i in graph.children_of(&owner_uid) {
        let (k, obj) = &graph.objects[i];
        let (ns, name) = name_of(obj);
        let owner_uid = owner_uid.clone();
        let r = storage
            .guaranteed_update(
                k,
                ns,
                name,
                &WriteOptions::default(),
                UpdateMode::Validated,
                &admit_all,
                move |cur: &Value| {
                    let mut new = cur.clone();
                    if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"].as_str() != Some(owner_uid.as_str()));
                    }
                    meta_mut(&mut new).remove("resourceVersion");
                    Ok((new, Vec::new()))
                },
            )
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(uid: &str, owners: &[&str]) -> Value {
        let refs: Vec<Value> = owners.iter().map(|o| json!({"uid": o})).collect();
        json!({"metadata": {"name": uid, "uid": uid, "ownerReferences": refs}})
    }

    fn graph(objs: Vec<Value>) -> Graph {
        let kind = kinds::lookup("", "v1", "pods").unwrap();
        let objects: Vec<_> = objs.into_iter().map(|o| (kind, o)).collect();
        let mut children: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (_, o)) in objects.iter().enumerate() {
            for u in owner_uids(o) {
                children.entry(u.to_string()).or_default().push(i);
            }
        }
        Graph { objects, children }
    }

    #[test]
    fn closures_visit_each_object_once_through_cycles() {
        // a owns itself and b; b and c own each other; c owns d.
        let g = graph(vec![
            obj("a", &["a"]),
            obj("b", &["a", "c"]),
            obj("c", &["b"]),
            obj("d", &["c"]),
        ]);
        let names: Vec<&str> = g
            .closure("a")
            .into_iter()
            .map(|i| uid(&g.objects[i].1))
            .collect();
        assert_eq!(names, vec!["b", "c", "d"]);
        // Deepest first when reversed: d before c before b.
        let g2 = graph(vec![obj("x", &["y"]), obj("y", &["x"])]);
        assert_eq!(g2.closure("x").len(), 1);
    }
}
