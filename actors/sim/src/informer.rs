//! A simulated watch cache (an informer): a copy of one kind's objects that follows the
//! API's event log in order, one event at a time when the schedule delivers it, and that
//! lists again (a restart, or a compacted watch) by diffing the API's current objects
//! against what it holds, as the real cache's `replace` does.

use std::collections::BTreeMap;
use std::sync::Arc;

use navarch_logic::meta;
use serde_json::Value;

use crate::api::{Api, EventType, Kind};

/// What a consumer of the cache is told (the real cache's `CacheEvent`).
#[derive(Clone, Debug)]
pub enum CacheEvent {
    Added(Arc<Value>),
    Updated {
        old: Arc<Value>,
        new: Arc<Value>,
    },
    Deleted(Arc<Value>),
    /// The cache listed again; the changes the list brought came just before.
    Resynced,
}

#[derive(Debug)]
pub struct Informer {
    pub kind: Kind,
    /// The next entry of the kind's log to deliver.
    cursor: usize,
    objects: BTreeMap<String, Arc<Value>>,
}

impl Informer {
    /// A cache that has listed `api` now.
    pub fn listed(kind: Kind, api: &Api) -> (Informer, Vec<CacheEvent>) {
        let mut i = Informer {
            kind,
            cursor: 0,
            objects: BTreeMap::new(),
        };
        let events = i.relist(api);
        (i, events)
    }

    /// Events the API has that this cache has not seen yet.
    pub fn pending(&self, api: &Api) -> usize {
        api.log(self.kind).len() - self.cursor
    }

    /// Applies the next event of the log; `None` when there is none.
    pub fn deliver(&mut self, api: &Api) -> Option<CacheEvent> {
        let e = api.log(self.kind).get(self.cursor)?.clone();
        self.cursor += 1;
        let name = meta::name(&e.object).to_string();
        Some(match e.ty {
            EventType::Added | EventType::Modified => {
                match self.objects.insert(name, e.object.clone()) {
                    Some(old) => CacheEvent::Updated { old, new: e.object },
                    None => CacheEvent::Added(e.object),
                }
            }
            EventType::Deleted => match self.objects.remove(&name) {
                Some(_) => CacheEvent::Deleted(e.object),
                // Gone before this cache saw it: nothing to tell.
                None => return self.deliver(api),
            },
        })
    }

    /// Lists again: the cache becomes the API's current objects, the consumer gets the
    /// difference, then `Resynced`.
    pub fn relist(&mut self, api: &Api) -> Vec<CacheEvent> {
        let fresh: BTreeMap<String, Arc<Value>> = api
            .list(self.kind)
            .map(|o| (meta::name(o).to_string(), o.clone()))
            .collect();
        let mut events = Vec::new();
        for (name, old) in &self.objects {
            if !fresh.contains_key(name) {
                events.push(CacheEvent::Deleted(old.clone()));
            }
        }
        for (name, new) in &fresh {
            match self.objects.get(name) {
                None => events.push(CacheEvent::Added(new.clone())),
                Some(old) if meta::resource_version(old) != meta::resource_version(new) => events
                    .push(CacheEvent::Updated {
                        old: old.clone(),
                        new: new.clone(),
                    }),
                Some(_) => {}
            }
        }
        events.push(CacheEvent::Resynced);
        self.objects = fresh;
        self.cursor = api.log(self.kind).len();
        events
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Value>> {
        self.objects.get(name)
    }

    pub fn list(&self) -> impl Iterator<Item = &Arc<Value>> {
        self.objects.values()
    }

    /// The objects whose controller is the owner with this uid.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<Value>> {
        self.objects
            .values()
            .filter(|o| meta::is_controlled_by(o, uid))
            .cloned()
            .collect()
    }
}
