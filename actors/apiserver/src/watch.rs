//! Watches in the Kubernetes dialect: newline-delimited `WatchEvent`s fed from the store's
//! apply path (never by polling), with synthetic initial events, `sendInitialEvents` and its
//! closing bookmark, periodic bookmarks, selectors and an in-stream 410 for expired history.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use navarch_model::kinds::Kind;
use navarch_model::selector::{FieldSelector, LabelSelector};
use navarch_model::{table, ApiError};
use navarch_store::{EventKind, KeyRange, Revision};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::core::{decode_object, store_error, unix_now, Core, ListOptions};

/// The annotation on the bookmark that ends the initial events of a watch-list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";
/// How often a watch that asked for bookmarks gets one when nothing else happens.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// What a watch request asked for.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
    pub timeout: Option<Duration>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    /// Send each object as a one-row Table.
    pub table: bool,
}

impl WatchParams {
    /// Kubernetes' validation of watch options (a 422 before the stream starts).
    pub fn check(&self) -> Result<(), ApiError> {
        let invalid = |m: &str| ApiError::new(422, "Invalid", m.to_string());
        match (self.send_initial_events, self.resource_version_match.as_deref()) {
            (Some(true), Some("NotOlderThan")) if self.allow_bookmarks => Ok(()),
            (Some(true), Some("NotOlderThan")) => Err(invalid(
                "allowWatchBookmarks: Forbidden: allowWatchBookmarks must be true when sendInitialEvents is set",
            )),
            (Some(_), m) if m != Some("NotOlderThan") => Err(invalid(
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )),
            (None, Some(_)) => Err(invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )),
            _ => Ok(()),
        }
    }

    /// The legacy rule: no resourceVersion (or `0`) starts with a synthetic ADDED per object.
    fn wants_initial_events(&self) -> bool {
        match self.send_initial_events {
            Some(b) => b,
            None => matches!(
                self.resource_version.as_deref(),
                None | Some("") | Some("0")
            ),
        }
    }
}

/// Starts a watch; its events arrive as ready-to-send lines on the returned channel, which
/// closes when the watch ends (timeout, expiry or error). Runs on the store's runtime.
pub fn start(
    core: Core,
    kind: &'static Kind,
    ns: Option<String>,
    params: WatchParams,
    runtime: &tokio::runtime::Handle,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    runtime.spawn(async move {
        let timeout = params.timeout.unwrap_or_else(|| {
            // kube-apiserver's spread: 30-60 minutes, so clients do not reconnect in step.
            Duration::from_secs(rand::thread_rng().gen_range(1800..3600))
        });
        let mut w = Watcher {
            kind,
            tx,
            params,
            known: HashSet::new(),
            first: true,
        };
        if tokio::time::timeout(timeout, w.run(&core, ns))
            .await
            .is_err()
        {
            tracing::debug!(kind = kind.plural, "watch timed out");
        }
    });
    rx
}

struct Watcher {
    kind: &'static Kind,
    tx: mpsc::Sender<Bytes>,
    params: WatchParams,
    /// Objects (namespace, name) this watch has shown as present, for selector transitions.
    known: HashSet<(String, String)>,
    /// Table column definitions go with the first event only.
    first: bool,
}

impl Watcher {
    async fn run(&mut self, core: &Core, ns: Option<String>) {
        let range = match &ns {
            Some(n) if self.kind.namespaced => KeyRange::namespaced(self.kind.store_kind(), n),
            _ => KeyRange::kind(self.kind.store_kind()),
        };
        let mut had_initial = false;
        let after = if self.params.wants_initial_events() {
            had_initial = true;
            let opts = ListOptions {
                label_selector: self.params.label_selector.clone(),
                field_selector: self.params.field_selector.clone(),
                resource_version: self
                    .params
                    .resource_version
                    .clone()
                    .filter(|r| !r.is_empty()),
                ..ListOptions::default()
            };
            let page = match core.list(self.kind, ns.as_deref(), &opts).await {
                Ok(p) => p,
                Err(e) => return self.error(e).await,
            };
            for obj in page.items {
                self.remember(&obj);
                if !self.send("ADDED", obj).await {
                    return;
                }
            }
            if self.params.send_initial_events == Some(true)
                && !self.bookmark(page.resource_version, true).await
            {
                return;
            }
            page.resource_version
        } else {
            let rv = self.params.resource_version.as_deref().unwrap_or("0");
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
        let mut rx = match core.member().watch(range, Some(after)) {
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
                        for ev in &batch.events {
                            let obj = match decode_object(&navarch_store::Object {
                                key: ev.key.clone(),
                                value: ev.value.clone(),
                                create_revision: ev.create_revision,
                                mod_revision: batch.revision,
                            }) {
                                Ok(o) => o,
                                Err(e) => return self.error(e).await,
                            };
                            if !self.event(ev.kind, obj, had_initial).await {
                                return;
                            }
                        }
                    }
                },
                _ = ticker.tick(), if self.params.allow_bookmarks => {
                    if !self.bookmark(last, false).await {
                        return;
                    }
                }
                _ = self.tx.closed() => return,
            }
        }
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
        self.params
            .label_selector
            .matches(&obj["metadata"]["labels"])
            && self.params.field_selector.matches(obj)
    }

    fn remember(&mut self, obj: &Value) {
        self.known.insert(Self::id(obj));
    }

    /// Turns one store event into the watch event a client of this selector sees.
    async fn event(&mut self, kind: EventKind, obj: Value, had_initial: bool) -> bool {
        let id = Self::id(&obj);
        let matches = self.matches(&obj);
        let known = self.known.contains(&id);
        let ty = match kind {
            EventKind::Created if matches => "ADDED",
            EventKind::Updated if matches => {
                // Without an initial list we cannot know whether an updated object matched
                // before; report it as modified.
                if known || !had_initial {
                    "MODIFIED"
                } else {
                    "ADDED"
                }
            }
            EventKind::Updated if known => "DELETED",
            EventKind::Deleted if matches || known => "DELETED",
            _ => return true,
        };
        if ty == "DELETED" {
            self.known.remove(&id);
        } else {
            self.known.insert(id);
        }
        self.send(ty, obj).await
    }

    async fn send(&mut self, ty: &str, obj: Value) -> bool {
        let object = if self.params.table {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let mut t = table::table(self.kind, &[obj], &rv, None, unix_now());
            if !self.first {
                if let Some(o) = t.as_object_mut() {
                    o.remove("columnDefinitions");
                }
            }
            t
        } else {
            obj
        };
        self.first = false;
        self.line(json!({"type": ty, "object": object})).await
    }

    async fn bookmark(&mut self, rev: Revision, initial_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": rev.0.to_string()});
        if initial_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        let object = json!({
            "kind": self.kind.kind,
            "apiVersion": self.kind.api_version(),
            "metadata": metadata,
        });
        self.line(json!({"type": "BOOKMARK", "object": object}))
            .await
    }

    async fn error(&mut self, e: ApiError) {
        self.line(json!({"type": "ERROR", "object": e.to_status()}))
            .await;
    }

    async fn line(&mut self, v: Value) -> bool {
        let mut buf = serde_json::to_vec(&v).expect("a JSON value serializes");
        buf.push(b'\n');
        self.tx.send(Bytes::from(buf)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_list_needs_not_older_than_and_bookmarks() {
        let ok = WatchParams {
            send_initial_events: Some(true),
            resource_version_match: Some("NotOlderThan".into()),
            allow_bookmarks: true,
            ..WatchParams::default()
        };
        assert!(ok.check().is_ok());
        assert!(ok.wants_initial_events());
        let no_bookmarks = WatchParams {
            allow_bookmarks: false,
            ..ok.clone()
        };
        assert_eq!(no_bookmarks.check().unwrap_err().code, 422);
        let no_match = WatchParams {
            resource_version_match: None,
            ..ok
        };
        assert_eq!(no_match.check().unwrap_err().code, 422);
    }

    #[test]
    fn legacy_watch_from_zero_or_nothing_starts_with_added_events() {
        let mut p = WatchParams::default();
        assert!(p.wants_initial_events());
        p.resource_version = Some("0".into());
        assert!(p.wants_initial_events());
        p.resource_version = Some("17".into());
        assert!(!p.wants_initial_events());
    }
}
