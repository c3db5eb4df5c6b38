//! The in-memory store of one cache, pure: objects by namespace/name, their indexes, the
//! revision they reflect, and the two ways they change — one watch event at a time
//! ([`Store::apply`]) or all at once after a list ([`Store::replace`], which diffs the new
//! list against what the store held). Both return the [`CacheEvent`]s consumers see.
//!
//! Properties kept (tested below):
//! - applying an event the store already reflects (same resourceVersion) changes nothing
//!   and reports nothing, so a resumed watch can never duplicate an event;
//! - an event older than the object held (a smaller integer resourceVersion) is ignored:
//!   a list read in pages may hold objects newer than its first page's revision, which the
//!   watch from that revision then replays;
//! - an object replaced under the same name by a new one (another uid) is reported as
//!   `Deleted` then `Added`, never as an update;
//! - after `replace`, the store holds exactly the listed objects and the events reported
//!   take a consumer from the old content to the new one;
//! - indexes always describe exactly the objects held.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use navarch_model::watch::{EventType, WatchEvent};
use serde_json::Value;

use super::index::{IndexFn, Indexes};

/// An object's place in a cache: namespace (empty for cluster-scoped objects) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object; `None` if it has no name.
    pub fn of(obj: &Value) -> Option<ObjectKey> {
        let m = &obj["metadata"];
        let name = m["name"].as_str().filter(|n| !n.is_empty())?;
        Some(ObjectKey::new(m["namespace"].as_str().unwrap_or(""), name))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

fn rv(obj: &Value) -> Option<&str> {
    obj["metadata"]["resourceVersion"].as_str()
}

/// Whether `new` is an older version than `old` (integer resourceVersions, as navarch's
/// are; opaque ones are never compared).
fn older(new: &Value, old: &Value) -> bool {
    match (
        rv(new).and_then(|r| r.parse::<u64>().ok()),
        rv(old).and_then(|r| r.parse::<u64>().ok()),
    ) {
        (Some(n), Some(o)) => n < o,
        _ => false,
    }
}

fn uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["uid"].as_str()
}

/// What a consumer of a cache is told.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheEvent {
    Added(Arc<Value>),
    Updated {
        old: Arc<Value>,
        new: Arc<Value>,
    },
    /// The object's last state: the `DELETED` event's object, or, when a relist found it
    /// gone, the state the cache held.
    Deleted(Arc<Value>),
    /// The cache listed the objects again (at start, or after its revision was compacted)
    /// and now reflects `revision`; the changes the list brought came just before. The
    /// first one means the cache has synced.
    Resynced {
        revision: String,
    },
    /// This subscriber fell behind and missed events: the snapshot is the cache's content
    /// at the point where its events resume. Rebuild what you derive from it.
    Lagged(Snapshot),
}

impl CacheEvent {
    /// The object this event is about (the new state for updates); `None` for notices.
    pub fn object(&self) -> Option<&Arc<Value>> {
        match self {
            CacheEvent::Added(o) | CacheEvent::Deleted(o) => Some(o),
            CacheEvent::Updated { new, .. } => Some(new),
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => None,
        }
    }

    /// The key of the object this event is about.
    pub fn key(&self) -> Option<ObjectKey> {
        self.object().and_then(|o| ObjectKey::of(o))
    }
}

type Objects = BTreeMap<ObjectKey, Arc<Value>>;

/// The content of a cache at one point, immutable and cheap to take (it shares the objects).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    objects: Arc<Objects>,
    revision: Option<String>,
}

impl Snapshot {
    pub fn get(&self, key: &ObjectKey) -> Option<&Arc<Value>> {
        self.objects.get(key)
    }

    /// Objects in key order (namespace, then name).
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<Value>)> {
        self.objects.iter()
    }

    pub fn objects(&self) -> Vec<Arc<Value>> {
        self.objects.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The revision this content reflects (`None` before the first list).
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }
}

/// The objects of one cache and their indexes.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Shared with the snapshots taken; copied on the first write after one is taken.
    objects: Arc<Objects>,
    indexes: Indexes,
    revision: Option<String>,
}

impl Store {
    /// An empty store with the built-in indexes.
    pub fn new() -> Store {
        Store::default()
    }

    fn insert(&mut self, key: ObjectKey, obj: Arc<Value>) -> Option<Arc<Value>> {
        let old = Arc::make_mut(&mut self.objects).insert(key.clone(), obj.clone());
        if let Some(o) = &old {
            self.indexes.remove(&key, o);
        }
        self.indexes.insert(&key, &obj);
        old
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Value>> {
        let old = Arc::make_mut(&mut self.objects).remove(key)?;
        self.indexes.remove(key, &old);
        Some(old)
    }

    /// Applies one `ADDED`, `MODIFIED` or `DELETED` event (others are ignored) and says what
    /// changed; it also moves the store's revision to the event's.
    pub fn apply(&mut self, event: WatchEvent) -> Vec<CacheEvent> {
        if let Some(r) = rv(&event.object) {
            self.revision = Some(r.to_string());
        }
        let Some(key) = ObjectKey::of(&event.object) else {
            return Vec::new();
        };
        let current = self.objects.get(&key).cloned();
        if current.as_ref().is_some_and(|c| older(&event.object, c)) {
            return Vec::new();
        }
        match event.event_type {
            EventType::Added | EventType::Modified => {
                let new = Arc::new(event.object);
                match current {
                    None => {
                        self.insert(key, new.clone());
                        vec![CacheEvent::Added(new)]
                    }
                    Some(old) if rv(&old) == rv(&new) && rv(&new).is_some() => Vec::new(),
                    Some(old) if uid(&old) != uid(&new) => {
                        self.insert(key, new.clone());
                        vec![CacheEvent::Deleted(old), CacheEvent::Added(new)]
                    }
                    Some(old) => {
                        self.insert(key, new.clone());
                        vec![CacheEvent::Updated { old, new }]
                    }
                }
            }
            EventType::Deleted => match current {
                None => Vec::new(),
                Some(_) => {
                    self.remove(&key);
                    vec![CacheEvent::Deleted(Arc::new(event.object))]
                }
            },
            EventType::Bookmark | EventType::Error => Vec::new(),
        }
    }

    /// Replaces the whole content with a list read at `revision`, and says how the old
    /// content became the new one: deletions first, then additions and updates, each in
    /// key order. Objects the list holds unchanged (same resourceVersion) are not reported.
    pub fn replace(&mut self, items: Vec<Value>, revision: String) -> Vec<CacheEvent> {
        let mut listed: Objects = BTreeMap::new();
        for item in items {
            if let Some(key) = ObjectKey::of(&item) {
                listed.insert(key, Arc::new(item));
            }
        }
        let mut deleted = Vec::new();
        let mut changed = Vec::new();
        for (key, old) in self.objects.iter() {
            match listed.get(key) {
                None => deleted.push(CacheEvent::Deleted(old.clone())),
                Some(new) if uid(old) != uid(new) => {
                    deleted.push(CacheEvent::Deleted(old.clone()));
                }
                Some(_) => {}
            }
        }
        for (key, new) in &listed {
            match self.objects.get(key) {
                None => changed.push(CacheEvent::Added(new.clone())),
                Some(old) if uid(old) != uid(new) => changed.push(CacheEvent::Added(new.clone())),
                Some(old) if rv(old) == rv(new) && rv(new).is_some() => {}
                Some(old) => changed.push(CacheEvent::Updated {
                    old: old.clone(),
                    new: new.clone(),
                }),
            }
        }
        // Unchanged objects keep their old Arc, so consumers holding them see no churn.
        for (key, new) in listed.iter_mut() {
            if let Some(old) = self.objects.get(key) {
                if rv(old) == rv(new) && uid(old) == uid(new) && rv(new).is_some() {
                    *new = old.clone();
                }
            }
        }
        self.indexes.clear();
        for (key, obj) in &listed {
            self.indexes.insert(key, obj);
        }
        self.objects = Arc::new(listed);
        self.revision = Some(revision);
        deleted.extend(changed);
        deleted
    }

    /// Moves the revision without a change (a bookmark).
    pub fn set_revision(&mut self, revision: String) {
        self.revision = Some(revision);
    }

    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            objects: self.objects.clone(),
            revision: self.revision.clone(),
        }
    }

    /// The objects under `value` in index `index`, in key order; `None` if no such index.
    pub fn by_index(&self, index: &str, value: &str) -> Option<Vec<Arc<Value>>> {
        let keys = self.indexes.keys(index, value)?;
        Some(
            keys.into_iter()
                .filter_map(|k| self.objects.get(k).cloned())
                .collect(),
        )
    }

    /// The values index `index` holds; `None` if no such index.
    pub fn index_values(&self, index: &str) -> Option<Vec<String>> {
        self.indexes
            .values(index)
            .map(|v| v.into_iter().map(str::to_string).collect())
    }

    /// Adds an index over the current and future objects; false if the name is taken.
    pub fn add_index(&mut self, name: &str, f: IndexFn) -> bool {
        let objects = self.objects.clone();
        self.indexes
            .add(name, f, objects.iter().map(|(k, v)| (k, v.as_ref())))
    }

    pub fn index_names(&self) -> Vec<&str> {
        self.indexes.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::{BY_NAMESPACE, BY_NODE, BY_OWNER};
    use serde_json::json;

    fn pod(name: &str, uid: &str, rv: u64, node: &str) -> Value {
        json!({"metadata": {"namespace": "shop", "name": name, "uid": uid, "resourceVersion": rv.to_string(),
                            "ownerReferences": [{"uid": format!("owner-of-{name}")}]},
               "spec": {"nodeName": node}})
    }

    fn ev(t: EventType, o: Value) -> WatchEvent {
        WatchEvent::new(t, o)
    }

    fn names(events: &[CacheEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let what = match e {
                    CacheEvent::Added(_) => "added",
                    CacheEvent::Updated { .. } => "updated",
                    CacheEvent::Deleted(_) => "deleted",
                    CacheEvent::Resynced { .. } => "resynced",
                    CacheEvent::Lagged(_) => "lagged",
                };
                format!(
                    "{what} {}",
                    e.key().map(|k| k.to_string()).unwrap_or_default()
                )
            })
            .collect()
    }

    fn index_names(s: &Store, index: &str, value: &str) -> Vec<String> {
        s.by_index(index, value)
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn events_apply_once_and_report_old_and_new() {
        let mut s = Store::new();
        let e = s.apply(ev(EventType::Added, pod("a", "u1", 1, "n1")));
        assert_eq!(names(&e), ["added shop/a"]);
        assert!(s
            .apply(ev(EventType::Added, pod("a", "u1", 1, "n1")))
            .is_empty());
        let e = s.apply(ev(EventType::Modified, pod("a", "u1", 2, "n2")));
        match &e[..] {
            [CacheEvent::Updated { old, new }] => {
                assert_eq!(old["spec"]["nodeName"], "n1");
                assert_eq!(new["spec"]["nodeName"], "n2");
            }
            other => panic!("expected one update, got {other:?}"),
        }
        assert!(s
            .apply(ev(EventType::Modified, pod("a", "u1", 2, "n2")))
            .is_empty());
        assert_eq!(index_names(&s, BY_NODE, "n2"), ["a"]);
        assert!(index_names(&s, BY_NODE, "n1").is_empty());
        let e = s.apply(ev(EventType::Deleted, pod("a", "u1", 3, "n2")));
        assert_eq!(names(&e), ["deleted shop/a"]);
        assert!(s
            .apply(ev(EventType::Deleted, pod("a", "u1", 3, "n2")))
            .is_empty());
        assert!(s.is_empty());
        assert!(index_names(&s, BY_NODE, "n2").is_empty());
        assert_eq!(s.revision(), Some("3"));
    }

    #[test]
    fn a_new_object_under_an_old_name_is_a_delete_and_an_add() {
        let mut s = Store::new();
        s.apply(ev(EventType::Added, pod("a", "u1", 1, "n1")));
        let e = s.apply(ev(EventType::Modified, pod("a", "u2", 5, "n1")));
        assert_eq!(names(&e), ["deleted shop/a", "added shop/a"]);
        let e = s.replace(vec![pod("a", "u3", 9, "n1")], "9".into());
        assert_eq!(names(&e), ["deleted shop/a", "added shop/a"]);
    }

    #[test]
    fn replace_reports_the_diff_and_leaves_exactly_the_list() {
        let mut s = Store::new();
        for (n, rv) in [("a", 1), ("b", 2), ("c", 3)] {
            s.apply(ev(EventType::Added, pod(n, &format!("u-{n}"), rv, "n1")));
        }
        let before = s.snapshot();
        let kept = s.get(&ObjectKey::new("shop", "a")).unwrap();
        // a unchanged, b updated, c gone, d new.
        let e = s.replace(
            vec![
                pod("d", "u-d", 7, "n2"),
                pod("a", "u-a", 1, "n1"),
                pod("b", "u-b", 6, "n2"),
            ],
            "8".into(),
        );
        assert_eq!(
            names(&e),
            ["deleted shop/c", "updated shop/b", "added shop/d"]
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.revision(), Some("8"));
        assert!(Arc::ptr_eq(
            &kept,
            &s.get(&ObjectKey::new("shop", "a")).unwrap()
        ));
        assert_eq!(index_names(&s, BY_NODE, "n2"), ["b", "d"]);
        assert_eq!(index_names(&s, BY_NODE, "n1"), ["a"]);
        assert_eq!(index_names(&s, BY_NAMESPACE, "shop"), ["a", "b", "d"]);
        assert_eq!(
            index_names(&s, BY_OWNER, "owner-of-c"),
            Vec::<String>::new()
        );
        assert_eq!(index_names(&s, BY_OWNER, "owner-of-d"), ["d"]);
        // The snapshot taken before is untouched by the replacement.
        assert_eq!(before.len(), 3);
        assert!(before.get(&ObjectKey::new("shop", "c")).is_some());
        assert_eq!(before.revision(), Some("3"));
        // Replaying the diff on the old snapshot gives the new content.
        let mut replay: BTreeMap<ObjectKey, Arc<Value>> =
            before.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for e in &e {
            let key = e.key().unwrap();
            match e {
                CacheEvent::Deleted(_) => {
                    replay.remove(&key);
                }
                CacheEvent::Added(o) | CacheEvent::Updated { new: o, .. } => {
                    replay.insert(key, o.clone());
                }
                _ => unreachable!(),
            }
        }
        let after: BTreeMap<_, _> = s
            .snapshot()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(replay, after);
    }

    #[test]
    fn custom_indexes_cover_objects_present_and_to_come() {
        let mut s = Store::new();
        s.apply(ev(EventType::Added, pod("a", "u-a", 1, "n1")));
        let by_uid: IndexFn = Arc::new(|o: &Value| {
            o["metadata"]["uid"]
                .as_str()
                .map(|u| vec![u.to_string()])
                .unwrap_or_default()
        });
        assert!(s.add_index("uid", by_uid.clone()));
        assert!(!s.add_index("uid", by_uid));
        s.apply(ev(EventType::Added, pod("b", "u-b", 2, "n1")));
        assert_eq!(index_names(&s, "uid", "u-a"), ["a"]);
        assert_eq!(index_names(&s, "uid", "u-b"), ["b"]);
        s.replace(vec![pod("b", "u-b", 2, "n1")], "3".into());
        assert!(index_names(&s, "uid", "u-a").is_empty());
        assert_eq!(s.index_values("uid").unwrap(), ["u-b"]);
        assert!(s.by_index("nope", "x").is_none());
    }

    #[test]
    fn events_older_than_the_object_held_are_ignored() {
        let mut s = Store::new();
        // A page read later than the list's revision already holds version 12.
        s.replace(vec![pod("a", "u1", 12, "n1")], "10".into());
        assert!(s
            .apply(ev(EventType::Modified, pod("a", "u1", 11, "n0")))
            .is_empty());
        assert!(s
            .apply(ev(EventType::Deleted, pod("a", "u1", 11, "n0")))
            .is_empty());
        assert!(s
            .apply(ev(EventType::Modified, pod("a", "u1", 12, "n1")))
            .is_empty());
        let e = s.apply(ev(EventType::Modified, pod("a", "u1", 13, "n3")));
        assert_eq!(names(&e), ["updated shop/a"]);
        assert_eq!(
            s.get(&ObjectKey::new("shop", "a")).unwrap()["spec"]["nodeName"],
            "n3"
        );
    }

    #[test]
    fn objects_without_names_and_notices_are_ignored() {
        let mut s = Store::new();
        assert!(s
            .apply(ev(
                EventType::Added,
                json!({"metadata": {"resourceVersion": "4"}})
            ))
            .is_empty());
        assert!(s
            .apply(WatchEvent::bookmark("v1", "Pod", 5, false))
            .is_empty());
        assert!(s.is_empty());
        assert_eq!(s.revision(), Some("5"));
    }
}
