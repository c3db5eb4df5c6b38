//! The reflector: the loop that keeps one cache equal to the API's objects.
//!
//! ```text
//!   ┌──────── list (pages) or watch-list ────────┐
//!   │  replace the store atomically, Resynced    │ ◄── 410 (answer or ERROR event)
//!   └──────────────┬─────────────────────────────┘
//!                  ▼
//!   watch from the last revision seen (bookmarks on) ──► events into the store
//!        ▲                 │
//!        └── backoff ◄─────┴── stream error / refused watch (resume, no relist)
//!        └── at once ◄──────── server closed the watch (its timeout)
//! ```
//!
//! Properties kept:
//! - the store only moves forward: every event applied comes after the revision it holds,
//!   and a resumed watch starts after the last revision seen (event or bookmark), so a
//!   resume loses and repeats nothing; a cache with no revision to resume from (a list at
//!   revision 0) loads again rather than watch from "0", which means "any";
//! - a relist replaces the store in one step, and subscribers get exactly the difference;
//! - failures in a row wait longer each time (up to a cap), a success resets the wait;
//!   a watch the server ends at once with nothing in it counts as a failure, so a
//!   misbehaving server cannot make the loop spin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use navarch_model::options::{ListOptions, WatchOptions};
use navarch_model::watch::{EventType, WatchEvent};
use navarch_model::ApiError;
use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;

use super::store::ObjectKey;
use super::{CacheConfig, CacheShared, InitialSync};
use crate::{Client, ClientError, WatchStream};

/// What a reflector has done, for tests and diagnostics (see `Cache::watch_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReflectorStats {
    /// The first list has been loaded.
    pub synced: bool,
    /// The cache has stopped for good.
    pub stopped: bool,
    /// Complete loads of the store (the first one included), by list or watch-list.
    pub lists: u64,
    /// Loads caused by a compacted revision (410).
    pub relists_after_gone: u64,
    /// Watch requests made (the initial watch-list included).
    pub watches: u64,
    /// Watches started from a revision after an earlier watch ended (not after a list).
    pub resumes: u64,
    /// Failed lists and watches (transport, refusals, errors in the stream).
    pub errors: u64,
    pub last_error: Option<String>,
    /// The revision the store reflects.
    pub revision: Option<String>,
    /// The server refused watch-list, so the cache lists.
    pub watch_list_fallback: bool,
}

/// Exponential backoff with jitter.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The pause before the next attempt: the current step, jittered up to +50%.
    fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        step.mul_f64(rand::thread_rng().gen_range(1.0..1.5))
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// How one watch ended.
enum WatchEnd {
    /// The server ended it cleanly.
    Closed {
        events: u64,
        lasted: Duration,
    },
    /// The revision is compacted: list again.
    Gone(String),
    Failed(ClientError),
}

/// Why a watch-list did not load the store.
enum WatchListError {
    /// The server does not do watch-list: list instead, from now on.
    Unsupported(String),
    Failed(ClientError),
}

pub(crate) struct Reflector {
    shared: Arc<CacheShared>,
    client: Arc<dyn Client>,
    config: CacheConfig,
    backoff: Backoff,
    watch_list: bool,
    /// The last revision seen; `None`: the store must be (re)loaded.
    revision: Option<String>,
    /// A watch-list's stream, to go on with after its initial events.
    pending: Option<WatchStream>,
    /// The next watch follows a load (it is not a resume).
    after_load: bool,
}

fn is_gone(e: &ApiError) -> bool {
    e.code == 410
}

fn error_event(ev: &WatchEvent) -> ApiError {
    ApiError::from_status(&ev.object)
        .unwrap_or_else(|| ApiError::internal(format!("a watch error event: {}", ev.object)))
}

impl Reflector {
    pub(crate) fn new(
        shared: Arc<CacheShared>,
        client: Arc<dyn Client>,
        config: CacheConfig,
    ) -> Reflector {
        Reflector {
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            watch_list: config.initial_sync == InitialSync::WatchList,
            shared,
            client,
            config,
            revision: None,
            pending: None,
            after_load: false,
        }
    }

    /// Runs until the task is dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: the store is changed only between awaits, one event or load at a time.
    pub(crate) async fn run(mut self) {
        loop {
            // A watch from "0" (or none) is not "after revision 0": it starts with synthetic
            // ADDED events and reports nothing deleted meanwhile. Only right after a list
            // at 0 (nothing existed) is it exact; to resume, load again.
            let anchorless = matches!(self.revision.as_deref(), Some("0") | Some(""));
            if anchorless && !self.after_load && self.pending.is_none() {
                self.revision = None;
            }
            if self.revision.is_none() {
                if let Err(e) = self.load().await {
                    self.pause_after(e).await;
                    continue;
                }
            }
            let stream = match self.pending.take() {
                Some(s) => s,
                None => match self.open_watch().await {
                    Ok(s) => s,
                    Err(ClientError::Api(e)) if is_gone(&e) => {
                        self.gone(&e.message);
                        continue;
                    }
                    Err(e) => {
                        self.pause_after(e).await;
                        continue;
                    }
                },
            };
            match self.consume(stream).await {
                WatchEnd::Closed { events, lasted } => {
                    tracing::debug!(cache = %self.shared.scope(), events, "watch ended by the server, resuming");
                    if events == 0 && lasted < Duration::from_secs(1) {
                        self.pause_after(ClientError::Transport(
                            "the server ended a watch at once".into(),
                        ))
                        .await;
                    }
                }
                WatchEnd::Gone(m) => self.gone(&m),
                WatchEnd::Failed(e) => self.pause_after(e).await,
            }
        }
    }

    fn scope_selectors(&self) -> ListOptions {
        let s = self.shared.scope();
        ListOptions {
            label_selector: s.label_selector.clone(),
            field_selector: s.field_selector.clone(),
            ..ListOptions::default()
        }
    }

    fn watch_options(&self) -> WatchOptions {
        let s = self.shared.scope();
        let base = self.config.watch_timeout.max(Duration::from_secs(1));
        let timeout = base.mul_f64(rand::thread_rng().gen_range(1.0..2.0));
        WatchOptions {
            label_selector: s.label_selector.clone(),
            field_selector: s.field_selector.clone(),
            allow_bookmarks: true,
            timeout: Some(Duration::from_secs(timeout.as_secs().max(1))),
            ..WatchOptions::default()
        }
    }

    async fn pause_after(&mut self, e: ClientError) {
        let d = self.backoff.delay();
        tracing::warn!(cache = %self.shared.scope(), error = %e, retry_in = ?d, "cache list or watch failed");
        let msg = e.to_string();
        self.shared.stats_mut(|s| {
            s.errors += 1;
            s.last_error = Some(msg);
        });
        tokio::time::sleep(d).await;
    }

    fn gone(&mut self, message: &str) {
        tracing::info!(cache = %self.shared.scope(), revision = ?self.revision, reason = %message, "revision compacted, loading the cache again");
        self.revision = None;
        self.pending = None;
        self.shared.stats_mut(|s| s.relists_after_gone += 1);
    }

    /// Loads the store: watch-list if configured and supported, else list.
    async fn load(&mut self) -> Result<(), ClientError> {
        if self.watch_list {
            match self.watch_list_load().await {
                Ok(()) => return Ok(()),
                Err(WatchListError::Failed(e)) => return Err(e),
                Err(WatchListError::Unsupported(why)) => {
                    tracing::warn!(cache = %self.shared.scope(), reason = %why, "the server does not do watch-list, listing instead");
                    self.watch_list = false;
                    self.shared.stats_mut(|s| s.watch_list_fallback = true);
                }
            }
        }
        self.list_load().await
    }

    fn loaded(&mut self, items: Vec<Value>, revision: String) {
        let n = self.shared.replace(items, revision.clone());
        tracing::info!(cache = %self.shared.scope(), revision = %revision, objects = n, "cache loaded");
        self.revision = Some(revision);
        self.after_load = true;
        self.backoff.reset();
    }

    /// LIST in pages; a continue token that expired (410) restarts with one unpaged LIST.
    async fn list_load(&mut self) -> Result<(), ClientError> {
        let scope = self.shared.scope().clone();
        let mut page_size = self.config.page_size;
        'restart: loop {
            let mut items = Vec::new();
            let mut revision: Option<String> = None;
            let mut token: Option<String> = None;
            loop {
                let opts = ListOptions {
                    limit: page_size,
                    continue_token: token.clone(),
                    ..self.scope_selectors()
                };
                let page = match self
                    .client
                    .list(scope.kind, scope.namespace.as_deref(), &opts)
                    .await
                {
                    Ok(p) => p,
                    Err(e) if e.is_gone() && token.is_some() => {
                        tracing::debug!(cache = %scope, "list continuation expired, listing whole");
                        page_size = None;
                        continue 'restart;
                    }
                    Err(e) => return Err(e),
                };
                revision.get_or_insert(page.resource_version);
                items.extend(page.items);
                match page.continue_token {
                    Some(t) if page_size.is_some() => token = Some(t),
                    _ => break,
                }
            }
            self.loaded(items, revision.unwrap_or_default());
            return Ok(());
        }
    }

    /// One watch with `sendInitialEvents`: its initial events load the store, and the
    /// stream goes on as the cache's watch.
    async fn watch_list_load(&mut self) -> Result<(), WatchListError> {
        let scope = self.shared.scope().clone();
        let opts = WatchOptions {
            send_initial_events: Some(true),
            resource_version_match: Some("NotOlderThan".into()),
            ..self.watch_options()
        };
        self.shared.stats_mut(|s| s.watches += 1);
        let mut stream = match self
            .client
            .watch(scope.kind, scope.namespace.as_deref(), &opts)
            .await
        {
            Ok(s) => s,
            Err(ClientError::Api(e))
                if (400..500).contains(&e.code) && e.code != 410 && e.code != 429 =>
            {
                return Err(WatchListError::Unsupported(e.to_string()))
            }
            Err(e) => return Err(WatchListError::Failed(e)),
        };
        let deadline = Instant::now() + self.config.watch_list_timeout;
        let mut items: BTreeMap<ObjectKey, Value> = BTreeMap::new();
        loop {
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(WatchListError::Unsupported(format!(
                        "no initial-events-end bookmark within {:?}",
                        self.config.watch_list_timeout
                    )))
                }
            };
            let ev = match next {
                None => {
                    return Err(WatchListError::Failed(ClientError::Transport(
                        "the watch-list ended before its initial events did".into(),
                    )))
                }
                Some(Err(e)) => return Err(WatchListError::Failed(e)),
                Some(Ok(ev)) => ev,
            };
            match ev.event_type {
                EventType::Added | EventType::Modified => {
                    if let Some(k) = ObjectKey::of(&ev.object) {
                        items.insert(k, ev.object);
                    }
                }
                EventType::Deleted => {
                    if let Some(k) = ObjectKey::of(&ev.object) {
                        items.remove(&k);
                    }
                }
                EventType::Bookmark if ev.is_initial_events_end() => {
                    let revision = ev
                        .object
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    self.loaded(items.into_values().collect(), revision);
                    self.pending = Some(stream);
                    return Ok(());
                }
                EventType::Bookmark => {}
                EventType::Error => {
                    let e = error_event(&ev);
                    return Err(WatchListError::Failed(ClientError::Api(e)));
                }
            }
        }
    }

    async fn open_watch(&mut self) -> Result<WatchStream, ClientError> {
        let scope = self.shared.scope().clone();
        let opts = WatchOptions {
            resource_version: self.revision.clone().filter(|r| !r.is_empty()),
            ..self.watch_options()
        };
        let resume = !std::mem::take(&mut self.after_load);
        self.shared.stats_mut(|s| {
            s.watches += 1;
            if resume {
                s.resumes += 1;
            }
        });
        tracing::debug!(cache = %scope, revision = ?opts.resource_version, resume, "watching");
        self.client
            .watch(scope.kind, scope.namespace.as_deref(), &opts)
            .await
    }

    /// Applies a watch's events until it ends.
    async fn consume(&mut self, mut stream: WatchStream) -> WatchEnd {
        let started = Instant::now();
        let mut events = 0;
        while let Some(item) = stream.next().await {
            let ev = match item {
                Ok(ev) => ev,
                Err(e) => return WatchEnd::Failed(e),
            };
            match ev.event_type {
                EventType::Added | EventType::Modified | EventType::Deleted => {
                    if let Some(r) = ev.object["metadata"]["resourceVersion"].as_str() {
                        self.revision = Some(r.to_string());
                    }
                    self.shared.apply(ev);
                }
                EventType::Bookmark => {
                    if let Some(r) = ev.object["metadata"]["resourceVersion"].as_str() {
                        self.revision = Some(r.to_string());
                        self.shared.bookmark(r.to_string());
                    }
                }
                EventType::Error => {
                    let e = error_event(&ev);
                    return if is_gone(&e) {
                        WatchEnd::Gone(e.message)
                    } else {
                        WatchEnd::Failed(ClientError::Api(e))
                    };
                }
            }
            events += 1;
            self.backoff.reset();
        }
        WatchEnd::Closed {
            events,
            lasted: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let steps: Vec<Duration> = (0..4).map(|_| b.delay()).collect();
        let within = |d: Duration, lo: u64| {
            d >= Duration::from_millis(lo) && d < Duration::from_millis(lo * 3 / 2)
        };
        assert!(within(steps[0], 100), "{steps:?}");
        assert!(within(steps[1], 200), "{steps:?}");
        assert!(within(steps[2], 350), "{steps:?}");
        assert!(within(steps[3], 350), "{steps:?}");
        b.reset();
        assert!(within(b.delay(), 100));
    }
}
