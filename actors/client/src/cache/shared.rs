//! [`SharedCaches`]: the per-process factory of watch caches. Every consumer asking for the
//! same scope (kind, namespace, selectors) gets the same cache, whose reflector starts on
//! the first request; one list and one watch per scope, however many consumers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Handle;
use tokio::sync::watch;

use super::reflector::Reflector;
use super::{Cache, CacheConfig, CacheShared, CacheStopped, Scope};
use crate::Client;
use navarch_model::kinds::Kind;

struct Factory {
    client: Arc<dyn Client>,
    config: CacheConfig,
    runtime: Handle,
    caches: Mutex<BTreeMap<String, Cache>>,
    stop: watch::Sender<bool>,
}

impl Drop for Factory {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The watch caches of one process, shared by all its consumers. Cheap to clone; the
/// reflectors stop when [`shutdown`](Self::shutdown) is called or the last clone is dropped.
#[derive(Clone)]
pub struct SharedCaches {
    inner: Arc<Factory>,
}

impl std::fmt::Debug for SharedCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let caches = self
            .inner
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SharedCaches")
            .field(
                "scopes",
                &caches
                    .values()
                    .map(|c| c.scope().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SharedCaches {
    /// Caches over `client` with the default configuration, their reflectors spawned on the
    /// current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(client: Arc<dyn Client>) -> SharedCaches {
        Self::with_config(client, CacheConfig::default(), Handle::current())
    }

    /// Caches with `config`, their reflectors spawned on `runtime`.
    pub fn with_config(
        client: Arc<dyn Client>,
        config: CacheConfig,
        runtime: Handle,
    ) -> SharedCaches {
        SharedCaches {
            inner: Arc::new(Factory {
                client,
                config,
                runtime,
                caches: Mutex::new(BTreeMap::new()),
                stop: watch::Sender::new(false),
            }),
        }
    }

    /// The cache of every object of `kind`, started if it is the first use.
    pub fn cache(&self, kind: &'static Kind) -> Cache {
        self.scoped(Scope::kind(kind))
    }

    /// The cache of `scope`, started if it is the first use.
    pub fn scoped(&self, scope: Scope) -> Cache {
        let id = scope.id();
        let mut caches = self
            .inner
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = caches.get(&id) {
            return c.clone();
        }
        let shared = Arc::new(CacheShared::new(scope, &self.inner.config));
        if *self.inner.stop.borrow() {
            shared.stop();
        } else {
            let reflector = Reflector::new(
                shared.clone(),
                self.inner.client.clone(),
                self.inner.config.clone(),
            );
            let mut stop = self.inner.stop.subscribe();
            let task_shared = shared.clone();
            tracing::debug!(cache = %shared.scope(), "starting cache");
            self.inner.runtime.spawn(async move {
                tokio::select! {
                    _ = reflector.run() => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                tracing::debug!(cache = %task_shared.scope(), "cache stopped");
                task_shared.stop();
            });
        }
        let cache = Cache::new(shared);
        caches.insert(id, cache.clone());
        cache
    }

    /// The caches started so far.
    pub fn caches(&self) -> Vec<Cache> {
        let caches = self
            .inner
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        caches.values().cloned().collect()
    }

    /// Waits until every cache started so far has synced.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_synced(&self) -> Result<(), CacheStopped> {
        for c in self.caches() {
            c.wait_synced().await?;
        }
        Ok(())
    }

    /// Stops every reflector; subscriptions end after what they have queued. Caches asked
    /// for afterwards are stopped from the start.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }
}
