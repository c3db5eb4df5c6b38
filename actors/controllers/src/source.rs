//! Watch caches as the actor kit's sources: a kind supervisor lists its objects from a
//! cache when it starts, and each actor loads its object from it, so a restarted actor
//! picks up from the caches, never from memory of its predecessor.

use std::sync::Arc;

use futures::future::BoxFuture;
use navarch_actors::{ObjectKey, Source, SourceError};
use navarch_client::Cache;
use serde_json::Value;

/// Objects of one kind, read from its shared watch cache.
#[derive(Clone, Debug)]
pub struct CacheSource {
    cache: Cache,
}

impl CacheSource {
    pub fn new(cache: Cache) -> Self {
        CacheSource { cache }
    }
}

/// The actor key of a cached object (`namespace/name`, or `name`).
pub fn key_of(obj: &Value) -> Option<ObjectKey> {
    let name = obj["metadata"]["name"].as_str()?;
    match obj["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        Some(ns) => ObjectKey::namespaced(ns, name).ok(),
        None => ObjectKey::cluster(name).ok(),
    }
}

impl Source<Arc<Value>> for CacheSource {
    fn load(&self, key: &ObjectKey) -> BoxFuture<'static, Result<Option<Arc<Value>>, SourceError>> {
        let cache = self.cache.clone();
        let key = key.clone();
        Box::pin(async move {
            cache
                .wait_synced()
                .await
                .map_err(|_| SourceError::Unavailable("the watch cache stopped".into()))?;
            Ok(cache.get(key.namespace(), key.name()))
        })
    }

    fn list(&self) -> Option<BoxFuture<'static, Result<Vec<ObjectKey>, SourceError>>> {
        let cache = self.cache.clone();
        Some(Box::pin(async move {
            cache
                .wait_synced()
                .await
                .map_err(|_| SourceError::Unavailable("the watch cache stopped".into()))?;
            Ok(cache.list().iter().filter_map(|o| key_of(o)).collect())
        }))
    }
}
