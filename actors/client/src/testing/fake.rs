//! [`FakeClient`]: an in-memory API server for tests. Every write is one revision; objects
//! carry it as their resourceVersion; history since the last compaction feeds watches.
//!
//! Faithful where caches and controllers depend on it: list at a revision with label and
//! field selectors and `limit`/`continue`; watch from a revision (ADDED/MODIFIED/DELETED in
//! order, bookmarks on demand, legacy initial events, watch-list with its closing bookmark);
//! 410 for a revision older than the compacted one (as the watch's answer, or as an ERROR
//! event like navarch's server); optimistic concurrency (409); finalizers holding a delete
//! (a Namespace's `spec.finalizers` too: deleted, it is `Terminating` until `finalize`
//! empties them).
//! `generateName` gets a unique suffix. Simplified: no validation, no status split beyond `status`/`scale` subresources, no
//! garbage collection, selector transitions are not turned into DELETED events.
//!
//! Faults: [`compact`](FakeClient::compact), [`cut_watches`](FakeClient::cut_watches)
//! (streams end with a transport error), [`close_watches`](FakeClient::close_watches) (end
//! cleanly), [`expire_watches`](FakeClient::expire_watches) (ERROR 410 in the stream),
//! [`fail_next_list`](FakeClient::fail_next_list), [`fail_next_watch`](FakeClient::fail_next_watch),
//! [`hold_watches`](FakeClient::hold_watches).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::FutureExt;
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
use navarch_model::selector::{FieldSelector, LabelSelector};
use navarch_model::watch::{EventType, WatchEvent};
use navarch_model::ApiError;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{Client, ClientError, ObjectList, Result, Subresource, WatchStream, Written};

/// (store kind, namespace, name): the key order lists follow.
type Key = (String, String, String);

#[derive(Clone, Debug)]
struct Change {
    revision: u64,
    key: Key,
    event_type: EventType,
    object: Value,
}

/// One LIST the fake answered (or refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCall {
    pub resource: String,
    pub namespace: Option<String>,
    pub continue_token: Option<String>,
}

/// One WATCH the fake was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchCall {
    pub resource: String,
    pub namespace: Option<String>,
    pub resource_version: Option<String>,
    pub send_initial_events: Option<bool>,
}

#[derive(Debug, Default)]
struct State {
    revision: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Change>,
    /// Revisions at or below this one are no longer in `history`.
    compacted: u64,
    cut_epoch: u64,
    close_epoch: u64,
    expire_epoch: u64,
    bookmark_epoch: u64,
    gone_as_answer: bool,
    refuse_watch_list: bool,
    hold_watches: bool,
    fail_lists: VecDeque<ClientError>,
    fail_watches: VecDeque<ClientError>,
    /// Failures for the next writes (create, update, patch, delete) of a resource, by group
    /// and plural.
    fail_writes: VecDeque<((&'static str, &'static str), ClientError)>,
    lists: Vec<ListCall>,
    watches: Vec<WatchCall>,
    open_watches: usize,
    uids: u64,
    tokens_issued: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Bumped on every change watchers may care about (writes, faults, watch counts).
    changed: watch::Sender<u64>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn poke(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// An in-memory [`Client`]; clones share the same state.
#[derive(Clone, Debug)]
pub struct FakeClient {
    inner: Arc<Inner>,
}

impl Default for FakeClient {
    fn default() -> Self {
        Self::new()
    }
}

fn key(kind: &Kind, ns: Option<&str>, name: &str) -> Key {
    (
        kind.store_kind(),
        if kind.namespaced {
            ns.unwrap_or("").to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

fn qualified(kind: &Kind, name: &str) -> (String, String) {
    (kind.qualified_resource(), name.to_string())
}

fn not_found(kind: &Kind, name: &str) -> ClientError {
    let (q, n) = qualified(kind, name);
    ClientError::Api(ApiError::not_found(&q, &n).about(kind.plural, kind.group, name))
}

fn stale(kind: &Kind, name: &str) -> ClientError {
    let (q, n) = qualified(kind, name);
    ClientError::Api(ApiError::stale(&q, &n).about(kind.plural, kind.group, name))
}

fn rv_of(v: &Value) -> Option<&str> {
    v["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
}

fn parse_rv(rv: &str) -> Result<u64> {
    rv.parse().map_err(|_| {
        ClientError::Api(ApiError::bad_request(format!(
            "invalid resourceVersion {rv:?}: must be an integer"
        )))
    })
}

fn spec_of(v: &Value) -> Value {
    let mut s = v.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    s
}

/// Whether finalizers hold `v` when it is deleted: its own, and a Namespace's
/// `spec.finalizers`.
fn has_finalizers(v: &Value) -> bool {
    let non_empty = |f: &Value| f.as_array().is_some_and(|f| !f.is_empty());
    non_empty(&v["metadata"]["finalizers"])
        || (v["kind"] == "Namespace" && non_empty(&v["spec"]["finalizers"]))
}

struct Matcher {
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Matcher {
    fn new(kind: &Kind, ns: Option<&str>, labels: &LabelSelector, fields: &FieldSelector) -> Self {
        Matcher {
            resource: kind.store_kind(),
            namespace: ns.filter(|_| kind.namespaced).map(str::to_string),
            labels: labels.clone(),
            fields: fields.clone(),
        }
    }

    fn matches(&self, key: &Key, obj: &Value) -> bool {
        key.0 == self.resource
            && self.namespace.as_ref().is_none_or(|n| *n == key.1)
            && self.labels.matches(&obj["metadata"]["labels"])
            && self.fields.matches(obj)
    }
}

impl State {
    /// Commits a change at the next revision and records it for watches.
    fn commit(&mut self, key: Key, event_type: EventType, mut object: Value) -> Value {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        if event_type == EventType::Deleted {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        self.history.push_back(Change {
            revision: self.revision,
            key,
            event_type,
            object: object.clone(),
        });
        object
    }

    /// Writes `new` over the object at `key` (or deletes it, if its deletion was waiting
    /// for finalizers and none is left).
    fn store_update(&mut self, key: Key, current: &Value, mut new: Value) -> Value {
        let m = &current["metadata"];
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "name",
            "namespace",
        ] {
            if m[f].is_null() {
                if let Some(o) = new["metadata"].as_object_mut() {
                    o.remove(f);
                }
            } else {
                new["metadata"][f] = m[f].clone();
            }
        }
        let generation = m["generation"].as_i64().unwrap_or(1);
        let bumped = if spec_of(current) != spec_of(&new) {
            generation + 1
        } else {
            generation
        };
        new["metadata"]["generation"] = json!(bumped);
        if !new["metadata"]["deletionTimestamp"].is_null() && !has_finalizers(&new) {
            return self.commit(key, EventType::Deleted, new);
        }
        self.commit(key, EventType::Modified, new)
    }
}

impl FakeClient {
    pub fn new() -> FakeClient {
        FakeClient {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: watch::Sender::new(0),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.inner.lock());
        self.inner.poke();
        out
    }

    /// The current revision (that of the last write).
    pub fn revision(&self) -> u64 {
        self.inner.lock().revision
    }

    /// Drops all history: a watch or a list continuation from any earlier revision gets
    /// 410, and so do open watches that have not yet delivered everything.
    pub fn compact(&self) {
        self.with(|s| {
            s.compacted = s.revision;
            s.history.clear();
        });
    }

    /// Ends every open watch with `ClientError::Transport`, as a broken connection does.
    pub fn cut_watches(&self) {
        self.with(|s| s.cut_epoch += 1);
    }

    /// Ends every open watch cleanly, as the server's watch timeout does.
    pub fn close_watches(&self) {
        self.with(|s| s.close_epoch += 1);
    }

    /// Ends every open watch with an ERROR event carrying 410 Expired.
    pub fn expire_watches(&self) {
        self.with(|s| s.expire_epoch += 1);
    }

    /// Sends a BOOKMARK at the current revision on every open watch that allows them.
    pub fn send_bookmarks(&self) {
        self.with(|s| s.bookmark_epoch += 1);
    }

    /// While held, watch requests wait (unanswered) until released: a cache cannot watch,
    /// so writes and compactions meanwhile are seen only when it resumes.
    pub fn hold_watches(&self, hold: bool) {
        self.with(|s| s.hold_watches = hold);
    }

    /// Answers a watch from a compacted revision with a 410 response (true) or, as navarch
    /// does, with a stream holding one ERROR 410 event (false, the default).
    pub fn set_gone_as_answer(&self, answer: bool) {
        self.with(|s| s.gone_as_answer = answer);
    }

    /// Refuses `sendInitialEvents` watches with 422, as a server without watch-list.
    pub fn refuse_watch_list(&self, refuse: bool) {
        self.with(|s| s.refuse_watch_list = refuse);
    }

    /// The next LIST fails with `e`.
    pub fn fail_next_list(&self, e: ClientError) {
        self.with(|s| s.fail_lists.push_back(e));
    }

    /// The next WATCH request fails with `e`.
    pub fn fail_next_watch(&self, e: ClientError) {
        self.with(|s| s.fail_watches.push_back(e));
    }

    /// The next write (create, update, patch or delete) of a `kind` object fails with `e`;
    /// writes of other kinds go through.
    pub fn fail_next_write(&self, kind: &Kind, e: ClientError) {
        self.with(|s| s.fail_writes.push_back(((kind.group, kind.plural), e)));
    }

    /// The failure queued for a write of `kind`, if any (and it is used up).
    fn injected_write_failure(&self, kind: &Kind) -> Option<ClientError> {
        let mut s = self.inner.lock();
        let at = s
            .fail_writes
            .iter()
            .position(|(k, _)| *k == (kind.group, kind.plural))?;
        s.fail_writes.remove(at).map(|(_, e)| e)
    }

    pub fn list_calls(&self) -> Vec<ListCall> {
        self.inner.lock().lists.clone()
    }

    pub fn watch_calls(&self) -> Vec<WatchCall> {
        self.inner.lock().watches.clone()
    }

    /// Watch streams open now.
    pub fn open_watches(&self) -> usize {
        self.inner.lock().open_watches
    }

    /// Waits until at least `n` watch streams are open (wrap it in a timeout).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_open_watches(&self, n: usize) {
        self.wait_until(|f| f.open_watches() >= n).await
    }

    /// Waits until `cond` holds, checking it after every write, fault, watch request and
    /// watch end (wrap it in a timeout).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_until(&self, cond: impl Fn(&FakeClient) -> bool) {
        let mut rx = self.inner.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if cond(self) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Every object of `kind` stored now, in key order.
    pub fn objects(&self, kind: &Kind) -> Vec<Value> {
        let r = kind.store_kind();
        self.inner
            .lock()
            .objects
            .iter()
            .filter(|(k, _)| k.0 == r)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn do_list(&self, kind: &Kind, ns: Option<&str>, opts: &ListOptions) -> Result<ObjectList> {
        let mut s = self.inner.lock();
        s.lists.push(ListCall {
            resource: kind.qualified_resource(),
            namespace: ns.map(str::to_string),
            continue_token: opts.continue_token.clone(),
        });
        if let Some(e) = s.fail_lists.pop_front() {
            return Err(e);
        }
        let m = Matcher::new(kind, ns, &opts.label_selector, &opts.field_selector);
        let after: Option<Key> = match &opts.continue_token {
            None => None,
            Some(t) => {
                let (rev, rest) = t.split_once(':').ok_or_else(|| {
                    ClientError::Api(ApiError::bad_request("invalid continue token"))
                })?;
                if parse_rv(rev)? < s.compacted {
                    return Err(ClientError::Api(ApiError::gone(
                        "the provided continue parameter is too old to display a consistent list result",
                    )));
                }
                let (ns, name) = rest.split_once('/').unwrap_or(("", rest));
                Some((kind.store_kind(), ns.to_string(), name.to_string()))
            }
        };
        let all: Vec<(&Key, &Value)> = s
            .objects
            .iter()
            .filter(|(k, v)| m.matches(k, v))
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .collect();
        let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<(&Key, &Value)> = all.iter().take(limit).copied().collect();
        let more = all.len() > page.len();
        let continue_token = match (more, page.last()) {
            (true, Some((k, _))) => Some(format!("{}:{}/{}", s.revision, k.1, k.2)),
            _ => None,
        };
        Ok(ObjectList {
            items: page.iter().map(|(_, v)| (*v).clone()).collect(),
            resource_version: s.revision.to_string(),
            remaining_item_count: more.then(|| (all.len() - page.len()) as u64),
            continue_token,
        })
    }

    fn do_watch(
        &self,
        kind: &'static Kind,
        ns: Option<&str>,
        opts: &WatchOptions,
    ) -> Result<WatchStream> {
        let mut s = self.inner.lock();
        s.watches.push(WatchCall {
            resource: kind.qualified_resource(),
            namespace: ns.map(str::to_string),
            resource_version: opts.resource_version.clone(),
            send_initial_events: opts.send_initial_events,
        });
        if let Some(e) = s.fail_watches.pop_front() {
            return Err(e);
        }
        if opts.send_initial_events.is_some() && s.refuse_watch_list {
            return Err(ClientError::Api(ApiError::new(
                422,
                "Invalid",
                "sendInitialEvents: Forbidden: not supported by this fake",
            )));
        }
        opts.check()?;
        let m = Matcher::new(kind, ns, &opts.label_selector, &opts.field_selector);
        let mut pending = VecDeque::new();
        let after = if opts.wants_initial_events() {
            for (k, v) in &s.objects {
                if m.matches(k, v) {
                    pending.push_back(Ok(WatchEvent::new(EventType::Added, v.clone())));
                }
            }
            if opts.send_initial_events == Some(true) {
                pending.push_back(Ok(WatchEvent::bookmark(
                    &kind.api_version(),
                    kind.kind,
                    s.revision,
                    true,
                )));
            }
            s.revision
        } else {
            let rv = parse_rv(opts.resource_version.as_deref().unwrap_or("0"))?;
            if rv < s.compacted {
                let e = ApiError::gone(format!("too old resource version: {rv} ({})", s.compacted));
                if s.gone_as_answer {
                    return Err(ClientError::Api(e));
                }
                pending.push_back(Ok(WatchEvent::error(&e)));
            }
            rv
        };
        s.open_watches += 1;
        let st = WatchState {
            inner: self.inner.clone(),
            matcher: m,
            kind,
            after,
            cut: s.cut_epoch,
            close: s.close_epoch,
            expire: s.expire_epoch,
            bookmark: s.bookmark_epoch,
            bookmarks: opts.allow_bookmarks,
            pending,
            done: false,
            rx: self.inner.changed.subscribe(),
        };
        drop(s);
        self.inner.poke();
        Ok(futures::StreamExt::boxed(futures::stream::unfold(
            st,
            WatchState::next,
        )))
    }

    fn do_create(&self, kind: &Kind, ns: Option<&str>, mut object: Value) -> Result<Written> {
        let mut name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            // `generateName`: the prefix and a suffix unique in this fake.
            if let Some(prefix) = object["metadata"]["generateName"].as_str() {
                name = format!("{prefix}{:05}", self.inner.lock().uids + 1);
                object["metadata"]["name"] = json!(name);
            }
        }
        if name.is_empty() {
            return Err(ClientError::Api(ApiError::invalid(
                kind.kind,
                kind.group,
                "",
                vec![navarch_model::status::Cause::required("metadata.name")],
            )));
        }
        let ns = ns
            .map(str::to_string)
            .or_else(|| object["metadata"]["namespace"].as_str().map(str::to_string));
        let k = key(kind, ns.as_deref(), &name);
        let mut s = self.inner.lock();
        if s.objects.contains_key(&k) {
            let (q, n) = qualified(kind, &name);
            return Err(ClientError::Api(ApiError::already_exists(&q, &n).about(
                kind.plural,
                kind.group,
                &name,
            )));
        }
        s.uids += 1;
        let m = &mut object["metadata"];
        m["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", s.uids));
        m["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        m["generation"] = json!(1);
        if kind.namespaced {
            m["namespace"] = json!(k.1);
        }
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        let stored = s.commit(k, EventType::Added, object);
        drop(s);
        self.inner.poke();
        Ok(Written {
            object: stored,
            warnings: Vec::new(),
        })
    }

    fn do_update(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
        object: Value,
    ) -> Result<Written> {
        let k = key(kind, ns, name);
        let mut s = self.inner.lock();
        let current = s
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        if let Some(want) = rv_of(&object) {
            if Some(want) != rv_of(&current) {
                return Err(stale(kind, name));
            }
        }
        let new = match sub {
            Some(Subresource::Status) => {
                let mut n = current.clone();
                n["status"] = object["status"].clone();
                n
            }
            Some(Subresource::Scale) => {
                let mut n = current.clone();
                n["spec"]["replicas"] = object["spec"]["replicas"].clone();
                n
            }
            Some(Subresource::Finalize) => {
                let mut n = current.clone();
                n["spec"]["finalizers"] = match &object["spec"]["finalizers"] {
                    Value::Null => json!([]),
                    f => f.clone(),
                };
                n
            }
            None => {
                let mut n = object;
                match current.get("status") {
                    Some(st) if !st.is_null() => n["status"] = st.clone(),
                    _ => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                n
            }
        };
        let stored = s.store_update(k, &current, new);
        drop(s);
        self.inner.poke();
        let object = match sub {
            Some(Subresource::Scale) => scale_of(&stored),
            _ => stored,
        };
        Ok(Written {
            object,
            warnings: Vec::new(),
        })
    }

    fn do_patch(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
        patch: Patch,
    ) -> Result<Written> {
        let current = {
            let s = self.inner.lock();
            s.objects
                .get(&key(kind, ns, name))
                .cloned()
                .ok_or_else(|| not_found(kind, name))?
        };
        let base = match sub {
            Some(Subresource::Scale) => scale_of(&current),
            _ => current.clone(),
        };
        let patched = navarch_model::patch::apply(kind.kind, &base, &patch.body, patch.ty)
            .map_err(|e| ClientError::Api(ApiError::from(e)))?;
        let mut body = patched;
        if rv_of(&patch.body).is_none() {
            if let Some(o) = body["metadata"].as_object_mut() {
                o.remove("resourceVersion");
            }
        }
        self.do_update(kind, ns, name, sub, body)
    }

    fn do_delete(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value> {
        let k = key(kind, ns, name);
        let mut s = self.inner.lock();
        let current = s
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        if let Some(want) = &opts.precondition_resource_version {
            if Some(want.as_str()) != rv_of(&current) {
                return Err(stale(kind, name));
            }
        }
        if let Some(want) = &opts.precondition_uid {
            if current["metadata"]["uid"].as_str() != Some(want.as_str()) {
                return Err(stale(kind, name));
            }
        }
        if opts.dry_run {
            return Ok(current);
        }
        let out = if has_finalizers(&current) {
            if current["metadata"]["deletionTimestamp"].is_null() {
                let mut n = current.clone();
                n["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
                if n["kind"] == "Namespace" {
                    n["status"]["phase"] = json!("Terminating");
                }
                s.commit(k, EventType::Modified, n)
            } else {
                current
            }
        } else {
            s.commit(k, EventType::Deleted, current)
        };
        drop(s);
        self.inner.poke();
        Ok(out)
    }
}

fn scale_of(obj: &Value) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0)},
    })
}

/// One open watch.
struct WatchState {
    inner: Arc<Inner>,
    matcher: Matcher,
    kind: &'static Kind,
    /// Everything up to this revision has been queued.
    after: u64,
    cut: u64,
    close: u64,
    expire: u64,
    bookmark: u64,
    bookmarks: bool,
    pending: VecDeque<Result<WatchEvent>>,
    done: bool,
    rx: watch::Receiver<u64>,
}

impl Drop for WatchState {
    fn drop(&mut self) {
        self.inner.lock().open_watches -= 1;
        self.inner.poke();
    }
}

impl WatchState {
    /// Queues what the store has for this watch now; false if the watch is over.
    fn fill(&mut self) {
        let s = self.inner.lock();
        if s.cut_epoch != self.cut {
            self.pending.push_back(Err(ClientError::Transport(
                "the connection was cut (fake)".into(),
            )));
            self.done = true;
            return;
        }
        if s.close_epoch != self.close {
            self.done = true;
            return;
        }
        let gone = |why: &str| Ok(WatchEvent::error(&ApiError::gone(why.to_string())));
        if s.expire_epoch != self.expire {
            self.pending.push_back(gone("the watch expired (fake)"));
            self.done = true;
            return;
        }
        if self.after < s.compacted && s.revision > self.after {
            self.pending
                .push_back(gone("too old resource version: compacted while watching"));
            self.done = true;
            return;
        }
        for c in s.history.iter().filter(|c| c.revision > self.after) {
            if self.matcher.matches(&c.key, &c.object) {
                self.pending
                    .push_back(Ok(WatchEvent::new(c.event_type, c.object.clone())));
            }
        }
        self.after = s.revision;
        if s.bookmark_epoch != self.bookmark {
            self.bookmark = s.bookmark_epoch;
            if self.bookmarks {
                self.pending.push_back(Ok(WatchEvent::bookmark(
                    &self.kind.api_version(),
                    self.kind.kind,
                    s.revision,
                    false,
                )));
            }
        }
    }

    async fn next(mut self) -> Option<(Result<WatchEvent>, WatchState)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                let last = item.is_err()
                    || item
                        .as_ref()
                        .is_ok_and(|e| e.event_type == EventType::Error);
                if last {
                    self.pending.clear();
                    self.done = true;
                }
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            self.rx.borrow_and_update();
            self.fill();
            if self.pending.is_empty() && !self.done && self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

impl Client for FakeClient {
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        _opts: &'a GetOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        let r = self
            .inner
            .lock()
            .objects
            .get(&key(kind, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(kind, name));
        async move { r }.boxed()
    }

    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        let r = self.do_list(kind, namespace, opts);
        async move { r }.boxed()
    }

    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        async move {
            let mut rx = self.inner.changed.subscribe();
            loop {
                rx.borrow_and_update();
                if !self.inner.lock().hold_watches {
                    break;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
            self.do_watch(kind, namespace, opts)
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        object: Value,
        _opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        let r = match self.injected_write_failure(kind) {
            Some(e) => Err(e),
            None => self.do_create(kind, namespace, object),
        };
        async move { r }.boxed()
    }

    fn update<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        object: Value,
        _opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        let r = match self.injected_write_failure(kind) {
            Some(e) => Err(e),
            None => self.do_update(kind, namespace, name, subresource, object),
        };
        async move { r }.boxed()
    }

    fn patch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        patch: Patch,
        _opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        let r = match self.injected_write_failure(kind) {
            Some(e) => Err(e),
            None => self.do_patch(kind, namespace, name, subresource, patch),
        };
        async move { r }.boxed()
    }

    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        let r = match self.injected_write_failure(kind) {
            Some(e) => Err(e),
            None => self.do_delete(kind, namespace, name, opts),
        };
        async move { r }.boxed()
    }

    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value>> {
        let r = self
            .inner
            .lock()
            .objects
            .get(&key(kind, Some(namespace), name))
            .map(scale_of)
            .ok_or_else(|| not_found(kind, name));
        async move { r }.boxed()
    }

    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let pods = crate::kind("", "v1", "pods");
        let r = (|| {
            let k = key(pods, Some(namespace), pod);
            let mut s = self.inner.lock();
            let current = s
                .objects
                .get(&k)
                .cloned()
                .ok_or_else(|| not_found(pods, pod))?;
            if let Some(n) = current["spec"]["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
            {
                return Err(ClientError::Api(ApiError::conflict(
                    "pods/binding",
                    pod,
                    &format!("pod {pod} is already assigned to node {n:?}"),
                )));
            }
            let mut new = current.clone();
            new["spec"]["nodeName"] = json!(node);
            s.store_update(k, &current, new);
            drop(s);
            self.inner.poke();
            Ok(())
        })();
        async move { r }.boxed()
    }

    /// Answers with an opaque token `fake-token-<ns>-<account>-<n>` (a new `n` each time)
    /// that expires after `spec.expirationSeconds` (3600 when absent), if the account
    /// exists.
    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, Result<Value>> {
        let sa = crate::kind("", "v1", "serviceaccounts");
        let r = (|| {
            let mut s = self.inner.lock();
            if !s
                .objects
                .contains_key(&key(sa, Some(namespace), service_account))
            {
                return Err(not_found(sa, service_account));
            }
            s.tokens_issued += 1;
            let n = s.tokens_issued;
            let secs = request["spec"]["expirationSeconds"]
                .as_i64()
                .unwrap_or(3600);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let mut answer = request;
            answer["status"] = json!({
                "token": format!("fake-token-{namespace}-{service_account}-{n}"),
                "expirationTimestamp": navarch_model::time::format_rfc3339(now + secs),
            });
            Ok(answer)
        })();
        async move { r }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Duration;

    fn leases() -> &'static Kind {
        crate::kind("coordination.k8s.io", "v1", "leases")
    }

    fn lease(name: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": app}}, "spec": {}})
    }

    async fn next(s: &mut WatchStream) -> Result<WatchEvent> {
        tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("an event within the deadline")
            .expect("the stream goes on")
    }

    #[tokio::test]
    async fn writes_move_revisions_and_watches_replay_them_in_order() {
        let f = FakeClient::new();
        let wo = WriteOptions::default();
        let a = f
            .create(leases(), Some("ns"), lease("a", "web"), &wo)
            .await
            .unwrap();
        assert_eq!(a.object["metadata"]["resourceVersion"], "1");
        let l = f
            .list(leases(), Some("ns"), &ListOptions::default())
            .await
            .unwrap();
        assert_eq!(l.resource_version, "1");
        let opts = WatchOptions {
            resource_version: Some("1".into()),
            ..WatchOptions::default()
        };
        let mut w = f.watch(leases(), Some("ns"), &opts).await.unwrap();
        f.create(leases(), Some("ns"), lease("b", "db"), &wo)
            .await
            .unwrap();
        let patch = Patch {
            ty: navarch_model::patch::PatchType::Merge,
            body: json!({"metadata": {"labels": {"x": "y"}}}),
        };
        f.patch(leases(), Some("ns"), "a", None, patch, &wo)
            .await
            .unwrap();
        f.delete(leases(), Some("ns"), "b", &DeleteOptions::default())
            .await
            .unwrap();
        let got: Vec<(EventType, Option<u64>)> = [
            next(&mut w).await.unwrap(),
            next(&mut w).await.unwrap(),
            next(&mut w).await.unwrap(),
        ]
        .iter()
        .map(|e| (e.event_type, e.revision()))
        .collect();
        assert_eq!(
            got,
            [
                (EventType::Added, Some(2)),
                (EventType::Modified, Some(3)),
                (EventType::Deleted, Some(4))
            ]
        );
        let stale = json!({"metadata": {"name": "a", "resourceVersion": "1"}});
        assert!(f
            .update(leases(), Some("ns"), "a", None, stale, &wo)
            .await
            .unwrap_err()
            .is_conflict());
    }

    #[tokio::test]
    async fn compaction_answers_410_and_faults_end_streams() {
        let f = FakeClient::new();
        let wo = WriteOptions::default();
        f.create(leases(), Some("ns"), lease("a", "web"), &wo)
            .await
            .unwrap();
        f.create(leases(), Some("ns"), lease("b", "web"), &wo)
            .await
            .unwrap();
        f.compact();
        let from1 = WatchOptions {
            resource_version: Some("1".into()),
            ..WatchOptions::default()
        };
        let mut w = f.watch(leases(), None, &from1).await.unwrap();
        let e = next(&mut w).await.unwrap();
        assert_eq!(e.event_type, EventType::Error);
        assert_eq!(e.object["code"], 410);
        assert!(w.next().await.is_none(), "nothing after an ERROR event");
        drop(w);
        f.set_gone_as_answer(true);
        assert!(f
            .watch(leases(), None, &from1)
            .await
            .err()
            .unwrap()
            .is_gone());
        let from2 = WatchOptions {
            resource_version: Some("2".into()),
            allow_bookmarks: true,
            ..WatchOptions::default()
        };
        let mut w = f.watch(leases(), None, &from2).await.unwrap();
        f.send_bookmarks();
        assert_eq!(next(&mut w).await.unwrap().event_type, EventType::Bookmark);
        f.cut_watches();
        assert!(matches!(next(&mut w).await, Err(ClientError::Transport(_))));
        assert!(w.next().await.is_none());
        drop(w);
        assert_eq!(f.open_watches(), 0);
        // Paging and its expiry.
        let page = ListOptions {
            limit: Some(1),
            ..ListOptions::default()
        };
        let first = f.list(leases(), Some("ns"), &page).await.unwrap();
        assert_eq!(first.items.len(), 1);
        assert_eq!(first.remaining_item_count, Some(1));
        let token = first.continue_token.clone().unwrap();
        f.create(leases(), Some("ns"), lease("c", "web"), &wo)
            .await
            .unwrap();
        f.compact();
        let cont = ListOptions {
            continue_token: Some(token),
            ..page
        };
        assert!(f
            .list(leases(), Some("ns"), &cont)
            .await
            .unwrap_err()
            .is_gone());
    }

    #[tokio::test]
    async fn finalizers_hold_a_delete_until_they_are_removed() {
        let f = FakeClient::new();
        let wo = WriteOptions::default();
        let mut obj = lease("held", "x");
        obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
        f.create(leases(), Some("ns"), obj, &wo).await.unwrap();
        let d = f
            .delete(leases(), Some("ns"), "held", &DeleteOptions::default())
            .await
            .unwrap();
        assert!(d["metadata"]["deletionTimestamp"].is_string());
        let patch = Patch {
            ty: navarch_model::patch::PatchType::Merge,
            body: json!({"metadata": {"finalizers": null}}),
        };
        f.patch(leases(), Some("ns"), "held", None, patch, &wo)
            .await
            .unwrap();
        assert!(f
            .get(leases(), Some("ns"), "held", &GetOptions::default())
            .await
            .unwrap_err()
            .is_not_found());
    }
}
