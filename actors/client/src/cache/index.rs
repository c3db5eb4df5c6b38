//! Secondary indexes of a cache: index functions (object → index values) and, per index,
//! value → keys of the objects that have it, kept in step with every insert and removal.
//!
//! Built in: [`BY_NAMESPACE`], [`BY_OWNER`] (each `metadata.ownerReferences[].uid`) and
//! [`BY_NODE`] (`spec.nodeName`); consumers add their own with [`IndexFn`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::store::ObjectKey;

/// An index function: the values under which an object is found (none: not indexed).
/// It must be a pure function of the object.
pub type IndexFn = Arc<dyn Fn(&Value) -> Vec<String> + Send + Sync>;

/// Objects by `metadata.namespace` (cluster-scoped objects are not indexed).
pub const BY_NAMESPACE: &str = "namespace";
/// Objects by the uid of each of their owners (`metadata.ownerReferences[].uid`).
pub const BY_OWNER: &str = "owner";
/// Objects by `spec.nodeName` (pods bound to a node).
pub const BY_NODE: &str = "node";

fn non_empty(v: &Value) -> Vec<String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(|s| vec![s.to_string()])
        .unwrap_or_default()
}

pub fn namespace_of(obj: &Value) -> Vec<String> {
    non_empty(&obj["metadata"]["namespace"])
}

pub fn owner_uids(obj: &Value) -> Vec<String> {
    let mut uids: Vec<String> = obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().flat_map(|r| non_empty(&r["uid"])).collect())
        .unwrap_or_default();
    uids.sort();
    uids.dedup();
    uids
}

pub fn node_name(obj: &Value) -> Vec<String> {
    non_empty(&obj["spec"]["nodeName"])
}

/// The indexes of one store.
#[derive(Clone)]
pub struct Indexes {
    functions: BTreeMap<String, IndexFn>,
    /// index name → index value → keys.
    maps: HashMap<String, HashMap<String, BTreeSet<ObjectKey>>>,
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexes")
            .field("names", &self.functions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for Indexes {
    /// The built-in indexes.
    fn default() -> Self {
        let mut ix = Indexes {
            functions: BTreeMap::new(),
            maps: HashMap::new(),
        };
        let builtins: [(&str, IndexFn); 3] = [
            (BY_NAMESPACE, Arc::new(namespace_of)),
            (BY_OWNER, Arc::new(owner_uids)),
            (BY_NODE, Arc::new(node_name)),
        ];
        for (name, f) in builtins {
            ix.add(name, f, std::iter::empty());
        }
        ix
    }
}

impl Indexes {
    /// Adds an index and fills it from `objects`. Returns false (and keeps the existing
    /// index) if one of this name exists.
    pub fn add<'a>(
        &mut self,
        name: &str,
        f: IndexFn,
        objects: impl Iterator<Item = (&'a ObjectKey, &'a Value)>,
    ) -> bool {
        if self.functions.contains_key(name) {
            return false;
        }
        let mut map: HashMap<String, BTreeSet<ObjectKey>> = HashMap::new();
        for (key, obj) in objects {
            for v in f(obj) {
                map.entry(v).or_default().insert(key.clone());
            }
        }
        self.functions.insert(name.to_string(), f);
        self.maps.insert(name.to_string(), map);
        true
    }

    pub fn insert(&mut self, key: &ObjectKey, obj: &Value) {
        for (name, f) in &self.functions {
            let map = self.maps.entry(name.clone()).or_default();
            for v in f(obj) {
                map.entry(v).or_default().insert(key.clone());
            }
        }
    }

    pub fn remove(&mut self, key: &ObjectKey, obj: &Value) {
        for (name, f) in &self.functions {
            let Some(map) = self.maps.get_mut(name) else {
                continue;
            };
            for v in f(obj) {
                if let Some(keys) = map.get_mut(&v) {
                    keys.remove(key);
                    if keys.is_empty() {
                        map.remove(&v);
                    }
                }
            }
        }
    }

    /// The keys under `value` of index `name`; `None` if there is no such index.
    pub fn keys(&self, name: &str, value: &str) -> Option<Vec<&ObjectKey>> {
        let map = self.maps.get(name)?;
        Some(
            map.get(value)
                .map(|keys| keys.iter().collect())
                .unwrap_or_default(),
        )
    }

    /// The values index `name` holds, sorted; `None` if there is no such index.
    pub fn values(&self, name: &str) -> Option<Vec<&str>> {
        let map = self.maps.get(name)?;
        let mut v: Vec<&str> = map.keys().map(String::as_str).collect();
        v.sort_unstable();
        Some(v)
    }

    pub fn names(&self) -> Vec<&str> {
        self.functions.keys().map(String::as_str).collect()
    }

    /// Drops every entry (the functions stay).
    pub fn clear(&mut self) {
        for map in self.maps.values_mut() {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_functions_read_namespace_owners_and_node() {
        let pod = json!({"metadata": {"namespace": "shop", "ownerReferences": [{"uid": "b"}, {"uid": "a"}, {"uid": "a"}]},
                         "spec": {"nodeName": "n1"}});
        assert_eq!(namespace_of(&pod), ["shop"]);
        assert_eq!(owner_uids(&pod), ["a", "b"]);
        assert_eq!(node_name(&pod), ["n1"]);
        let bare = json!({"metadata": {"name": "x"}, "spec": {"nodeName": ""}});
        assert!(namespace_of(&bare).is_empty());
        assert!(owner_uids(&bare).is_empty());
        assert!(node_name(&bare).is_empty());
    }

    #[test]
    fn entries_follow_inserts_and_removals_and_new_indexes_fill_from_objects() {
        let mut ix = Indexes::default();
        let k = ObjectKey::new("shop", "web-1");
        let v1 = json!({"metadata": {"namespace": "shop"}, "spec": {"nodeName": "n1"}});
        let v2 = json!({"metadata": {"namespace": "shop"}, "spec": {"nodeName": "n2"}});
        ix.insert(&k, &v1);
        assert_eq!(ix.keys(BY_NODE, "n1").unwrap(), [&k]);
        ix.remove(&k, &v1);
        ix.insert(&k, &v2);
        assert!(ix.keys(BY_NODE, "n1").unwrap().is_empty());
        assert_eq!(ix.values(BY_NODE).unwrap(), ["n2"]);
        assert!(ix.keys("nope", "x").is_none());
        let by_app: IndexFn = Arc::new(|o: &Value| {
            o["metadata"]["labels"]["app"]
                .as_str()
                .map(|s| vec![s.to_string()])
                .unwrap_or_default()
        });
        let labelled = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(ix.add("app", by_app.clone(), [(&k, &labelled)].into_iter()));
        assert!(!ix.add("app", by_app, std::iter::empty()));
        assert_eq!(ix.keys("app", "web").unwrap(), [&k]);
        assert_eq!(ix.names(), ["app", BY_NAMESPACE, BY_NODE, BY_OWNER]);
    }
}
