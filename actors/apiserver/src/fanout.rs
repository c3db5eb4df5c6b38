//! Indexed watch fan-out: one task per indexed kind follows the store, decodes each event
//! once and hands it to every watch of the kind with no `=` selector on the indexed field,
//! and otherwise only to the watches whose `=` value the object has or had: a thousand
//! nodes' `spec.nodeName=<node>` pod watches and the controllers' pod cache cost one decode
//! per event instead of a thousand (Kubernetes' watch cache does the same with its trigger
//! index).
//!
//! A watch subscribes and gets the revision the fan-out has dispatched up to: everything
//! after it comes through the subscription, in order; what lies between the watch's own
//! start and that revision it replays from the store first (see `watch.rs`). A subscriber
//! that falls [`BACKLOG`] events behind is dropped, and its watch ends, as Kubernetes ends
//! an unresponsive watcher; the client re-watches from its last resourceVersion.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use navarch_model::kinds::Kind;
use navarch_model::selector::{field_value, FieldSelector};
use navarch_store::{EventKind, KeyRange, Object, ObjectKey, ReadConsistency, Revision};
use serde_json::Value;
use tokio::sync::{mpsc, OnceCell};

use crate::storage::{store_error, Storage};

/// Events a subscriber of one value may have queued before it is dropped.
const BACKLOG: usize = 4096;
/// The same for a subscriber of every event of the kind (a controller's cache).
const BACKLOG_ALL: usize = 16384;

/// After the store failed the fan-out's own watch, it lists and follows again after this.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// The fields watches are indexed by: (group, plural, field selector name).
const INDEXES: &[(&str, &str, &str)] = &[("", "pods", "spec.nodeName")];

/// Where the fan-out hands a subscriber its events.
type Sender = mpsc::Sender<Arc<Fanned>>;

/// One decoded event, shared by every subscriber it is handed to.
#[derive(Debug)]
pub(crate) struct Fanned {
    pub revision: Revision,
    pub kind: EventKind,
    pub key: ObjectKey,
    pub object: Value,
}

/// The indexed fan-outs of one master, started on first use.
#[derive(Default)]
pub(crate) struct Fanouts {
    by_index: [OnceCell<Arc<Shared>>; INDEXES.len()],
}

/// A watch's subscription: events after `from` whose object has or had the value.
pub(crate) struct Subscription {
    pub from: Revision,
    pub rx: mpsc::Receiver<Arc<Fanned>>,
    shared: Arc<Shared>,
    /// `None`: every event of the kind.
    value: Option<String>,
    id: u64,
}

impl Subscription {
    /// A revision a bookmark may carry now: the fan-out's, when nothing is queued here.
    pub fn quiet_revision(&self) -> Option<Revision> {
        // Read before looking at the queue: whatever was dispatched up to it is queued.
        let last = Revision(self.shared.last.load(Ordering::Acquire));
        self.rx.is_empty().then_some(last)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().expect("fan-out state");
        let Some(value) = &self.value else {
            st.all.retain(|(id, _)| *id != self.id);
            return;
        };
        if let Some(list) = st.watchers.get_mut(value) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                st.watchers.remove(value);
            }
        }
    }
}

struct Shared {
    kind: &'static Kind,
    /// The field selector name of the indexed field.
    field: &'static str,
    state: Mutex<State>,
    /// The last revision dispatched (every event up to it is in the subscribers' queues).
    last: AtomicU64,
}

#[derive(Default)]
struct State {
    /// False while the fan-out relists after a failure: no subscription can start then.
    following: bool,
    next_id: u64,
    watchers: HashMap<String, Vec<(u64, Sender)>>,
    /// Subscribers of every event (watches with no `=` term on the field).
    all: Vec<(u64, Sender)>,
}

impl Fanouts {
    /// Subscribes a watch of `kind`: to the events of the value its field selector fixes
    /// for the kind's indexed field, or to every event of the kind when it fixes none (the
    /// decode is shared all the same). `None` when no index covers the kind or the fan-out
    /// cannot start: the watch then reads the store's events itself.
    pub async fn subscribe(
        &self,
        storage: &Storage,
        kind: &'static Kind,
        selector: &FieldSelector,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Subscription> {
        let i = INDEXES
            .iter()
            .position(|(g, p, _)| *g == kind.group && *p == kind.plural)?;
        let value = selector.required_value(INDEXES[i].2).map(str::to_string);
        let shared = self.by_index[i]
            .get_or_try_init(|| start(storage.clone(), kind, INDEXES[i].2, runtime.clone()))
            .await
            .map_err(|e| tracing::warn!(error = %e, kind = kind.plural, "indexed watch fan-out did not start"))
            .ok()?
            .clone();
        let backlog = if value.is_some() {
            BACKLOG
        } else {
            BACKLOG_ALL
        };
        let (tx, rx) = mpsc::channel(backlog);
        let (from, id) = {
            let mut st = shared.state.lock().expect("fan-out state");
            if !st.following {
                return None;
            }
            st.next_id += 1;
            let id = st.next_id;
            match &value {
                Some(v) => st.watchers.entry(v.clone()).or_default().push((id, tx)),
                None => st.all.push((id, tx)),
            }
            (Revision(shared.last.load(Ordering::Acquire)), id)
        };
        Some(Subscription {
            from,
            rx,
            shared,
            value,
            id,
        })
    }
}

/// The indexed field's value in `obj`, as the field selector compares it.
fn indexed(shared: &Shared, obj: &Value) -> String {
    field_value(shared.kind.kind, shared.field, obj).unwrap_or_default()
}

/// Lists the kind, records each object's value, and spawns the task that follows it.
async fn start(
    storage: Storage,
    kind: &'static Kind,
    field: &'static str,
    runtime: tokio::runtime::Handle,
) -> Result<Arc<Shared>, navarch_model::ApiError> {
    let shared = Arc::new(Shared {
        kind,
        field,
        state: Mutex::new(State::default()),
        last: AtomicU64::new(0),
    });
    let (values, rev) = list(&storage, &shared).await?;
    shared.last.store(rev.0, Ordering::Release);
    shared.state.lock().expect("fan-out state").following = true;
    runtime.spawn(run(storage, shared.clone(), values, rev));
    Ok(shared)
}

/// Every object's value now, and the revision of that read.
async fn list(
    storage: &Storage,
    shared: &Shared,
) -> Result<(HashMap<ObjectKey, String>, Revision), navarch_model::ApiError> {
    let range = KeyRange::kind(shared.kind.store_kind());
    let page = storage
        .member()
        .list(&range, ReadConsistency::AtLeast(Revision(0)))
        .await
        .map_err(store_error)?;
    let mut values = HashMap::with_capacity(page.objects.len());
    for o in &page.objects {
        let v = storage.decode(o)?;
        values.insert(o.key.clone(), indexed(shared, &v));
    }
    Ok((values, page.revision))
}

async fn run(
    storage: Storage,
    shared: Arc<Shared>,
    mut values: HashMap<ObjectKey, String>,
    mut from: Revision,
) {
    let range = KeyRange::kind(shared.kind.store_kind());
    loop {
        if let Err(e) = follow(&storage, &shared, &range, &mut values, from).await {
            tracing::warn!(error = %e, kind = shared.kind.plural, "indexed watch fan-out restarts; its watches end");
        }
        // Every subscriber's watch ends (its sender is dropped); they re-watch.
        {
            let mut st = shared.state.lock().expect("fan-out state");
            st.following = false;
            st.watchers.clear();
            st.all.clear();
        }
        loop {
            tokio::time::sleep(RESTART_AFTER).await;
            match list(&storage, &shared).await {
                Ok((v, rev)) => {
                    values = v;
                    from = rev;
                    shared.last.store(rev.0, Ordering::Release);
                    shared.state.lock().expect("fan-out state").following = true;
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "indexed watch fan-out cannot list"),
            }
        }
    }
}

/// Follows the store from `from`, dispatching each event; returns on a store error.
async fn follow(
    storage: &Storage,
    shared: &Shared,
    range: &KeyRange,
    values: &mut HashMap<ObjectKey, String>,
    from: Revision,
) -> Result<(), String> {
    let mut rx = storage
        .member()
        .watch(range.clone(), Some(from))
        .map_err(|e| e.to_string())?;
    while let Some(batch) = rx.recv().await {
        let batch = batch.map_err(|e| e.to_string())?;
        let mut decoded = Vec::with_capacity(batch.events.len());
        for ev in &batch.events {
            let object = storage
                .decode(&Object {
                    key: ev.key.clone(),
                    value: ev.value.clone(),
                    create_revision: ev.create_revision,
                    mod_revision: batch.revision,
                })
                .map_err(|e| e.message.clone())?;
            let new = indexed(shared, &object);
            let old = match ev.kind {
                EventKind::Deleted => values.remove(&ev.key),
                _ => values.insert(ev.key.clone(), new.clone()),
            };
            decoded.push((
                Arc::new(Fanned {
                    revision: batch.revision,
                    kind: ev.kind,
                    key: ev.key.clone(),
                    object,
                }),
                new,
                old,
            ));
        }
        let mut st = shared.state.lock().expect("fan-out state");
        for (fanned, new, old) in decoded {
            st.all.retain(|(_, tx)| offer(tx, &fanned, "*"));
            dispatch(&mut st, &new, &fanned);
            if let Some(old) = old.filter(|o| *o != new) {
                dispatch(&mut st, &old, &fanned);
            }
        }
        shared.last.store(batch.revision.0, Ordering::Release);
    }
    Err("the store ended the watch".into())
}

/// Hands `fanned` to the subscribers of `value`, dropping those that are gone or behind.
fn dispatch(st: &mut State, value: &str, fanned: &Arc<Fanned>) {
    let Some(list) = st.watchers.get_mut(value) else {
        return;
    };
    list.retain(|(_, tx)| offer(tx, fanned, value));
    if list.is_empty() {
        st.watchers.remove(value);
    }
}

/// Queues `fanned` for one subscriber; false when it is gone or too far behind.
fn offer(tx: &Sender, fanned: &Arc<Fanned>, value: &str) -> bool {
    match tx.try_send(fanned.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::info!(value, "closing a watch that fell behind the fan-out");
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}
