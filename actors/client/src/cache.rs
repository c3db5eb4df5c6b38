//! Watch caches, as client-go's shared informers and kube-rs's watcher + reflector: one
//! in-memory copy of the objects of a kind (optionally one namespace, one selector), kept
//! up to date by a reflector that lists, then watches, and shared by every consumer in the
//! process through [`SharedCaches`].
//!
//! - [`store`]: the pure store (objects, indexes, relist diff);
//! - [`index`]: the index functions, built-in ones by namespace, owner uid and node name;
//! - [`fanout`]: subscriptions, with a `Lagged` notice instead of silent loss;
//! - [`reflector`]: the list/watch loop (resume after errors with backoff, relist on 410);
//! - [`shared`]: the per-process factory, starting one reflector per scope on first use.
//!
//! A controller reads the cache, never the API, for objects it watches, and treats events
//! as hints to reconcile the objects they name (level-triggered): after a `Lagged` or a
//! `Resynced` it reconciles everything.
//!
//! ```
//! # use std::sync::Arc;
//! # use navarch_client::{testing::FakeClient, CacheEvent, Client, SharedCaches};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let client: Arc<dyn Client> = Arc::new(FakeClient::new());
//! let caches = SharedCaches::new(client.clone()); // one per process, handed to every component
//! let pods = caches.cache(navarch_client::kind("", "v1", "pods"));
//! let mut changes = pods.subscribe(); // the first event follows `changes.initial()`
//! pods.wait_synced().await.expect("the cache runs");
//! for pod in pods.on_node("node-1") {
//!     // reconcile(&pod): reads come from memory, shared with every other consumer
//! #   let _ = pod;
//! }
//! while let Some(event) = changes.recv().await {
//!     match event {
//!         CacheEvent::Added(p) | CacheEvent::Updated { new: p, .. } | CacheEvent::Deleted(p) => {
//!             // enqueue the key of `p` for reconciling
//! #           let _ = p;
//!         }
//!         CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
//!             // enqueue every key of `pods.snapshot()`
//!         }
//!     }
//! #   break;
//! }
//! # }
//! ```
//!
//! Architecture invariant: the store changes only in the reflector's task, and each change
//! is published to subscribers under the same lock, so every subscriber sees the changes in
//! the order the store made them and a snapshot plus the events after it is always exact.

pub mod fanout;
pub mod index;
pub mod reflector;
pub mod shared;
pub mod store;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use navarch_model::kinds::Kind;
use navarch_model::selector::{FieldSelector, LabelSelector};
use navarch_model::watch::WatchEvent;
use serde_json::Value;
use tokio::sync::watch;

pub use fanout::Subscription;
pub use index::{IndexFn, BY_NAMESPACE, BY_NODE, BY_OWNER};
pub use reflector::ReflectorStats;
pub use shared::SharedCaches;
pub use store::{CacheEvent, ObjectKey, Snapshot};

use fanout::Fanout;
use store::Store;

/// What one cache holds: a kind, optionally one namespace and selectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Scope {
    pub kind: &'static Kind,
    /// `None`: every namespace (always `None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
}

impl Scope {
    /// Every object of `kind`.
    pub fn kind(kind: &'static Kind) -> Scope {
        Scope {
            kind,
            namespace: None,
            label_selector: LabelSelector::default(),
            field_selector: FieldSelector::default(),
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Scope {
        if self.kind.namespaced {
            self.namespace = Some(namespace.into());
        }
        self
    }

    pub fn labels(mut self, selector: LabelSelector) -> Scope {
        self.label_selector = selector;
        self
    }

    pub fn fields(mut self, selector: FieldSelector) -> Scope {
        self.field_selector = selector;
        self
    }

    /// The identity of the scope: caches with the same one are the same cache.
    fn id(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.kind.store_kind(),
            self.namespace.as_deref().unwrap_or(""),
            self.label_selector,
            self.field_selector
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind.qualified_resource())?;
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        if !self.label_selector.is_empty() {
            write!(f, " labels {}", self.label_selector)?;
        }
        if !self.field_selector.is_empty() {
            write!(f, " fields {}", self.field_selector)?;
        }
        Ok(())
    }
}

/// How a cache first loads (and, after a 410, reloads) its objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialSync {
    /// LIST in pages, then WATCH from the list's revision.
    List,
    /// One watch with `sendInitialEvents` (the objects as ADDED, then the bookmark that ends
    /// them), which goes on as the watch. Falls back to `List` for good if the server
    /// refuses it (a 4xx other than 410 and 429) or never sends the closing bookmark.
    WatchList,
}

/// How caches list, watch and deliver.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub initial_sync: InitialSync,
    /// Items per LIST page (`None`: one unpaged LIST).
    pub page_size: Option<usize>,
    /// A watch asks the server to end it after between this and twice this (then the
    /// reflector resumes it), so that watches of many clients do not end together.
    pub watch_timeout: Duration,
    /// The first pause after a failure; doubled on each failure in a row, up to
    /// `backoff_max`, with jitter; back to this after a success.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a watch-list may take to send its initial events before the cache falls
    /// back to `List`.
    pub watch_list_timeout: Duration,
    /// Undelivered events a subscriber may hold before it is told it lagged.
    pub subscriber_capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            initial_sync: InitialSync::List,
            page_size: Some(500),
            watch_timeout: Duration::from_secs(300),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            watch_list_timeout: Duration::from_secs(60),
            subscriber_capacity: 4096,
        }
    }
}

/// The cache stopped (its [`SharedCaches`] was shut down or dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the cache has stopped")]
pub struct CacheStopped;

/// What a cache's reflector and its readers share.
#[derive(Debug)]
pub(crate) struct CacheShared {
    scope: Scope,
    store: RwLock<Store>,
    fanout: Mutex<Fanout>,
    stats: watch::Sender<ReflectorStats>,
}

impl CacheShared {
    fn new(scope: Scope, config: &CacheConfig) -> CacheShared {
        CacheShared {
            scope,
            store: RwLock::new(Store::new()),
            fanout: Mutex::new(Fanout::new(config.subscriber_capacity)),
            stats: watch::Sender::new(ReflectorStats::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn fanout(&self) -> std::sync::MutexGuard<'_, Fanout> {
        self.fanout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One watch event into the store, and to subscribers.
    pub(crate) fn apply(&self, event: WatchEvent) {
        let mut store = self.write();
        let events = store.apply(event);
        let revision = store.revision().map(str::to_string);
        self.fanout().publish(&events, &|| store.snapshot());
        drop(store);
        self.stats.send_modify(|s| s.revision = revision);
    }

    /// A bookmark: the revision moves, nothing else.
    pub(crate) fn bookmark(&self, revision: String) {
        self.write().set_revision(revision.clone());
        self.stats.send_modify(|s| s.revision = Some(revision));
    }

    /// A complete list into the store, atomically; subscribers get the diff, then
    /// `Resynced`.
    pub(crate) fn replace(&self, items: Vec<Value>, revision: String) -> usize {
        let mut store = self.write();
        let mut events = store.replace(items, revision.clone());
        events.push(CacheEvent::Resynced {
            revision: revision.clone(),
        });
        self.fanout().publish(&events, &|| store.snapshot());
        let n = store.len();
        drop(store);
        self.stats.send_modify(|s| {
            s.revision = Some(revision);
            s.synced = true;
            s.lists += 1;
        });
        n
    }

    pub(crate) fn stats_mut(&self, f: impl FnOnce(&mut ReflectorStats)) {
        self.stats.send_modify(f);
    }

    pub(crate) fn stop(&self) {
        self.fanout().close();
        self.stats.send_modify(|s| s.stopped = true);
    }

    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }
}

/// A handle on one shared cache (cheap to clone). Reads never wait on the network.
#[derive(Clone, Debug)]
pub struct Cache {
    shared: Arc<CacheShared>,
}

impl Cache {
    pub(crate) fn new(shared: Arc<CacheShared>) -> Cache {
        Cache { shared }
    }

    pub fn scope(&self) -> &Scope {
        &self.shared.scope
    }

    pub fn kind(&self) -> &'static Kind {
        self.shared.scope.kind
    }

    /// One object (`namespace` `None` for cluster-scoped kinds).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.shared
            .read()
            .get(&ObjectKey::new(namespace.unwrap_or(""), name))
    }

    /// Every object, in namespace/name order.
    pub fn list(&self) -> Vec<Arc<Value>> {
        self.snapshot().objects()
    }

    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.by_index(BY_NAMESPACE, namespace).unwrap_or_default()
    }

    /// The objects owned by the object with this uid (`metadata.ownerReferences`).
    pub fn owned_by(&self, owner_uid: &str) -> Vec<Arc<Value>> {
        self.by_index(BY_OWNER, owner_uid).unwrap_or_default()
    }

    /// The objects whose `spec.nodeName` is `node`.
    pub fn on_node(&self, node: &str) -> Vec<Arc<Value>> {
        self.by_index(BY_NODE, node).unwrap_or_default()
    }

    /// The objects under `value` of index `index`; `None` if the cache has no such index.
    pub fn by_index(&self, index: &str, value: &str) -> Option<Vec<Arc<Value>>> {
        self.shared.read().by_index(index, value)
    }

    /// The values an index holds (e.g. every node name pods are bound to).
    pub fn index_values(&self, index: &str) -> Option<Vec<String>> {
        self.shared.read().index_values(index)
    }

    /// Adds an index over the current and future objects. Returns false, keeping the
    /// existing index, if one of this name exists: caches are shared, so name an index
    /// after what it computes, and two consumers asking for it get the same one.
    pub fn add_indexer(&self, name: &str, f: IndexFn) -> bool {
        self.shared.write().add_index(name, f)
    }

    /// The content now, immutable.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.read().snapshot()
    }

    /// Subscribes to changes. The subscription's [`initial`](Subscription::initial)
    /// snapshot and the events after it are exact: nothing between is lost or repeated.
    pub fn subscribe(&self) -> Subscription {
        let store = self.shared.read();
        let snapshot = store.snapshot();
        let sub = self.shared.fanout().subscribe(snapshot);
        drop(store);
        sub
    }

    /// Whether the first list has been loaded.
    pub fn has_synced(&self) -> bool {
        self.shared.stats.borrow().synced
    }

    /// Waits for the first list to be loaded.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_synced(&self) -> Result<(), CacheStopped> {
        let mut rx = self.shared.stats.subscribe();
        let s = rx
            .wait_for(|s| s.synced || s.stopped)
            .await
            .map_err(|_| CacheStopped)?;
        if s.synced {
            Ok(())
        } else {
            Err(CacheStopped)
        }
    }

    /// The revision the content reflects (`None` before the first list).
    pub fn revision(&self) -> Option<String> {
        self.shared.read().revision().map(str::to_string)
    }

    /// What the reflector has done so far.
    pub fn stats(&self) -> ReflectorStats {
        self.shared.stats.borrow().clone()
    }

    /// The reflector's stats as they change: wait on a condition with
    /// `watch_stats().wait_for(|s| s.relists_after_gone > 0)`.
    pub fn watch_stats(&self) -> watch::Receiver<ReflectorStats> {
        self.shared.stats.subscribe()
    }
}
