//! Watches in the Kubernetes dialect as typed event streams fed from the store's apply path
//! (never by polling): synthetic initial events, `sendInitialEvents` and its closing
//! bookmark, periodic bookmarks, selectors, and an ERROR event (410) for expired history.
//!
//! The stream yields [`WatchEvent`]s; the HTTP layer encodes them (JSON lines, one-row Tables
//! or protobuf frames) and in-process watchers consume them as they are.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::BoxStream;
use navarch_model::kinds::Kind;
use navarch_model::options::{ListOptions, WatchOptions};
use navarch_model::watch::{EventType, WatchEvent};
use navarch_model::ApiError;
use navarch_store::{EventBatch, EventKind, KeyRange, Revision};
use rand::Rng;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::encryption;
use crate::fanout::Subscription;
use crate::storage::{store_error, Storage};

/// How often a watch that asked for bookmarks gets one when nothing else happens.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// A stream of watch events; it ends when the watch does (timeout, error, or the store).
pub type EventStream = BoxStream<'static, WatchEvent>;

/// Starts a watch on `runtime` (the store's); dropping the stream ends it.
pub fn start(
    storage: Storage,
    kind: &'static Kind,
    ns: Option<String>,
    opts: WatchOptions,
    runtime: &tokio::runtime::Handle,
) -> EventStream {
    let (tx, rx) = mpsc::channel(256);
    let rt = runtime.clone();
    runtime.spawn(async move {
        let timeout = opts.timeout.unwrap_or_else(|| {
            // kube-apiserver's spread: 30-60 minutes, so clients do not reconnect in step.
            Duration::from_secs(rand::thread_rng().gen_range(1800..3600))
        });
        // A sealed value shows nothing of the object: only decoded ones can be skipped.
        let required = if encryption::is_sealed(&kind.store_kind()) {
            Vec::new()
        } else {
            opts.field_selector
                .required_values()
                .filter_map(|v| serde_json::to_vec(v).ok())
                .collect()
        };
        let mut w = Watcher {
            kind,
            tx,
            opts,
            known: HashSet::new(),
            required,
        };
        if tokio::time::timeout(timeout, w.run(&storage, ns, &rt))
            .await
            .is_err()
        {
            tracing::debug!(kind = kind.plural, "watch timed out");
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (e, rx))
    }))
}

struct Watcher {
    kind: &'static Kind,
    tx: mpsc::Sender<WatchEvent>,
    opts: WatchOptions,
    /// Objects (namespace, name) this watch has shown as present, for selector transitions.
    known: HashSet<(String, String)>,
    /// JSON-quoted values the field selector requires (see `surely_unmatched`).
    required: Vec<Vec<u8>>,
}

impl Watcher {
    async fn run(
        &mut self,
        storage: &Storage,
        ns: Option<String>,
        runtime: &tokio::runtime::Handle,
    ) {
        let range = match &ns {
            Some(n) if self.kind.namespaced => KeyRange::namespaced(self.kind.store_kind(), n),
            _ => KeyRange::kind(self.kind.store_kind()),
        };
        let mut had_initial = false;
        let after = if self.opts.wants_initial_events() {
            had_initial = true;
            let opts = ListOptions {
                label_selector: self.opts.label_selector.clone(),
                field_selector: self.opts.field_selector.clone(),
                resource_version: self.opts.resource_version.clone().filter(|r| !r.is_empty()),
                ..ListOptions::default()
            };
            let page = match storage.list(self.kind, ns.as_deref(), &opts).await {
                Ok(p) => p,
                Err(e) => return self.error(e).await,
            };
            for obj in page.items {
                self.known.insert(Self::id(&obj));
                if !self.send(EventType::Added, obj).await {
                    return;
                }
            }
            if self.opts.send_initial_events == Some(true)
                && !self.bookmark(page.resource_version, true).await
            {
                return;
            }
            page.resource_version
        } else {
            let rv = self.opts.resource_version.as_deref().unwrap_or("0");
            match rv.parse::<u64>() {
                Ok(r) => Revision(r),
                Err(_) => {
                    return self
                        .error(ApiError::bad_request(format!(
                            "invalid resourceVersion {rv:?}"
                        )))
                        .await
                }
            }
        };
        let sub = storage
            .fanouts()
            .subscribe(storage, self.kind, &self.opts.field_selector, runtime)
            .await;
        match sub {
            Some(sub) => {
                self.follow_indexed(storage, range, after, had_initial, sub)
                    .await
            }
            None => self.follow_store(storage, range, after, had_initial).await,
        }
    }

    /// Follows the store's events for the watch's range, skipping what cannot match.
    async fn follow_store(
        &mut self,
        storage: &Storage,
        range: KeyRange,
        after: Revision,
        had_initial: bool,
    ) {
        let mut rx = match storage.member().watch(range, Some(after)) {
            Ok(rx) => rx,
            Err(e) => return self.error(store_error(e)).await,
        };
        let mut last = after;
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    None => return,
                    Some(Err(e)) => return self.error(store_error(e)).await,
                    Some(Ok(batch)) => {
                        last = batch.revision;
                        if !self.batch(storage, &batch, had_initial).await {
                            return;
                        }
                    }
                },
                _ = ticker.tick(), if self.opts.allow_bookmarks => {
                    if !self.bookmark(last, false).await {
                        return;
                    }
                }
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Follows an indexed fan-out subscription; what lies between `after` and the
    /// subscription's start is replayed from the store first.
    async fn follow_indexed(
        &mut self,
        storage: &Storage,
        range: KeyRange,
        after: Revision,
        had_initial: bool,
        mut sub: Subscription,
    ) {
        let mut catch_up = if after < sub.from {
            match storage.member().watch(range.clone(), Some(after)) {
                Ok(rx) => Some(rx),
                Err(e) => return self.error(store_error(e)).await,
            }
        } else {
            None
        };
        let mut last = after;
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                batch = next_batch(&mut catch_up), if catch_up.is_some() => match batch {
                    None => return,
                    Some(Err(e)) => return self.error(store_error(e)).await,
                    // The subscription has this one and what follows.
                    Some(Ok(batch)) if batch.revision > sub.from => catch_up = None,
                    Some(Ok(batch)) => {
                        last = batch.revision;
                        if !self.batch(storage, &batch, had_initial).await {
                            return;
                        }
                        if batch.revision == sub.from {
                            catch_up = None;
                        }
                    }
                },
                fanned = sub.rx.recv(), if catch_up.is_none() => match fanned {
                    // The fan-out dropped this watch (behind, or restarting): the client
                    // watches again from its last resourceVersion.
                    None => return,
                    Some(f) => {
                        if f.revision <= after || !range.contains(&f.key) {
                            continue;
                        }
                        last = last.max(f.revision);
                        if !self.event(f.kind, f.object.clone(), had_initial).await {
                            return;
                        }
                    }
                },
                _ = ticker.tick(), if self.opts.allow_bookmarks => {
                    if catch_up.is_none() {
                        if let Some(quiet) = sub.quiet_revision() {
                            last = last.max(quiet);
                        }
                    }
                    if !self.bookmark(last, false).await {
                        return;
                    }
                }
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Reports the events of one store batch; false when the watch is over.
    async fn batch(&mut self, storage: &Storage, batch: &EventBatch, had_initial: bool) -> bool {
        for ev in &batch.events {
            if self.surely_unmatched(ev) {
                continue;
            }
            let obj = match storage.decode(&navarch_store::Object {
                key: ev.key.clone(),
                value: ev.value.clone(),
                create_revision: ev.create_revision,
                mod_revision: batch.revision,
            }) {
                Ok(o) => o,
                Err(e) => {
                    self.error(e).await;
                    return false;
                }
            };
            if !self.event(ev.kind, obj, had_initial).await {
                return false;
            }
        }
        true
    }

    /// An event this watch cannot report, known without decoding it: the object was not
    /// reported before (so no DELETED is owed) and its encoding lacks a value an `=` field
    /// selector requires (JSON-quoted). A thousand nodes each watching their own pods
    /// (`spec.nodeName=<node>`) decode only their pods' events, not everyone's.
    fn surely_unmatched(&self, ev: &navarch_store::Event) -> bool {
        if self.required.is_empty() {
            return false;
        }
        let id = (ev.key.namespace.clone(), ev.key.name.clone());
        if self.known.contains(&id) {
            return false;
        }
        self.required.iter().any(|needle| {
            !ev.value
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
        })
    }

    fn id(obj: &Value) -> (String, String) {
        (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    }

    fn matches(&self, obj: &Value) -> bool {
        self.opts.label_selector.matches(&obj["metadata"]["labels"])
            && self.opts.field_selector.matches(obj)
    }

    /// Turns one store event into the watch event a client of this selector sees.
    async fn event(&mut self, kind: EventKind, obj: Value, had_initial: bool) -> bool {
        let id = Self::id(&obj);
        let matches = self.matches(&obj);
        let known = self.known.contains(&id);
        let ty = match kind {
            EventKind::Created if matches => EventType::Added,
            EventKind::Updated if matches => {
                // Without an initial list we cannot know whether an updated object matched
                // before; report it as modified.
                if known || !had_initial {
                    EventType::Modified
                } else {
                    EventType::Added
                }
            }
            EventKind::Updated if known => EventType::Deleted,
            EventKind::Deleted if matches || known => EventType::Deleted,
            _ => return true,
        };
        if ty == EventType::Deleted {
            self.known.remove(&id);
        } else {
            self.known.insert(id);
        }
        self.send(ty, obj).await
    }

    async fn send(&mut self, ty: EventType, obj: Value) -> bool {
        self.tx.send(WatchEvent::new(ty, obj)).await.is_ok()
    }

    async fn bookmark(&mut self, rev: Revision, initial_end: bool) -> bool {
        let e = WatchEvent::bookmark(&self.kind.api_version(), self.kind.kind, rev.0, initial_end);
        self.tx.send(e).await.is_ok()
    }

    async fn error(&mut self, e: ApiError) {
        let _ = self.tx.send(WatchEvent::error(&e)).await;
    }
}

/// The next batch of a catch-up replay; pending forever once there is none.
async fn next_batch(
    rx: &mut Option<tokio::sync::mpsc::Receiver<Result<EventBatch, navarch_store::StoreError>>>,
) -> Option<Result<EventBatch, navarch_store::StoreError>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
