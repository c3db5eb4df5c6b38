//! The actor registry: every live actor of the process by path, with what an operator needs to
//! see (kind, supervisor, state summary, mailbox depth, messages handled, restarts, last error,
//! start time) and the kill switch.
//!
//! Ours, not actix's (`actix::Registry` holds one service per type). An entry belongs to an
//! actor *slot* (one object under one supervisor), not to one incarnation: it survives restarts,
//! which is what lets it count them. Counters are atomics written by the actor on its hot path;
//! readers take a consistent-enough snapshot ([`ActorInfo`]) without messaging the actor. The
//! state summary is the exception: computing it on every message would tax the hot path, so an
//! actor publishes it when it starts and when asked ([`Registry::refresh`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use rand::seq::SliceRandom;
use serde::{Serialize, Serializer};

use crate::clock::{Clock, SystemClock};
use crate::path::ActorPath;
use crate::tap::Rfc3339;

/// What an actor is in the supervision tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The root of a process (`/master`, `/node/n1`).
    Root,
    /// A supervisor of supervisors (a controller manager).
    Group,
    /// A per-kind supervisor.
    Supervisor,
    /// A host actor for one object.
    Object,
    /// The one actor of its kind (the scheduler), supervised on its own.
    Singleton,
}

/// Where an actor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Loading its state from its source.
    Starting,
    Running,
    /// Dead, waiting out its backoff before the next incarnation.
    Restarting,
    /// Exceeded its restart intensity and was not restarted.
    Failed,
    /// Stopped by its supervisor on purpose (a controller manager on a master that is not the
    /// leader); it starts again when its supervisor starts its children.
    Stopped,
}

/// Why the kill switch did not kill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KillError {
    #[error("no actor at {path}")]
    NotFound { path: String },
    #[error("actor {path} is a {role:?} and cannot be killed")]
    NotKillable { path: String, role: Role },
    #[error("actor {path} is not running (it is restarting or failed)")]
    NotRunning { path: String },
    #[error("no running actor to kill under {prefix}")]
    NoneUnder { prefix: String },
}

/// The kill switch of one actor.
pub type Killer = Box<dyn Fn() -> Result<(), KillError> + Send + Sync>;

/// Asks one actor to publish its summary; the future resolves once it has (or cannot).
pub type Refresher = Box<dyn Fn() -> Option<BoxFuture<'static, ()>> + Send + Sync>;

/// Counters an actor updates on its hot path.
#[derive(Debug, Default)]
pub struct ActorStats {
    enqueued: AtomicU64,
    dequeued: AtomicU64,
    handled: AtomicU64,
    restarts: AtomicU32,
}

impl ActorStats {
    /// A message was put in the mailbox.
    #[inline]
    pub fn enqueued(&self) {
        self.enqueued.fetch_add(1, Ordering::Relaxed);
    }

    /// A message left the mailbox (handled, or lost with a dead incarnation).
    #[inline]
    pub fn dequeued(&self, n: u64) {
        self.dequeued.fetch_add(n, Ordering::Relaxed);
    }

    /// A message was handled (whatever its outcome).
    #[inline]
    pub fn handled(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages sent but not yet taken out of the mailbox.
    pub fn mailbox_depth(&self) -> u64 {
        let out = self.dequeued.load(Ordering::Relaxed);
        self.enqueued.load(Ordering::Relaxed).saturating_sub(out)
    }

    /// Messages handled so far, over all incarnations.
    pub fn handled_count(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Drops what is still counted as queued (the incarnation that held it is gone).
    pub fn drain(&self) {
        let queued = self.enqueued.load(Ordering::Relaxed);
        self.dequeued.store(queued, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Dynamic {
    status: Status,
    summary: String,
    last_error: Option<String>,
    started_at: SystemTime,
    incarnation: u64,
}

/// One registered actor slot.
pub struct Entry {
    path: ActorPath,
    kind: Arc<str>,
    role: Role,
    supervisor: Option<ActorPath>,
    stats: ActorStats,
    dynamic: Mutex<Dynamic>,
    killer: Option<Killer>,
    refresher: Option<Refresher>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("path", &self.path)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// A new entry in status `starting`, without kill switch or summary refresher. Its start
    /// time reads the Unix epoch until [`starting`](Self::starting) is called.
    pub fn new(path: ActorPath, kind: &str, role: Role, supervisor: Option<ActorPath>) -> Self {
        Entry {
            path,
            kind: Arc::from(kind),
            role,
            supervisor,
            stats: ActorStats::default(),
            dynamic: Mutex::new(Dynamic {
                status: Status::Starting,
                summary: String::new(),
                last_error: None,
                started_at: UNIX_EPOCH,
                incarnation: 0,
            }),
            killer: None,
            refresher: None,
        }
    }

    /// With a kill switch (object actors).
    pub fn with_killer(mut self, killer: Killer) -> Self {
        self.killer = Some(killer);
        self
    }

    /// With a way to ask the actor for a fresh summary.
    pub fn with_refresher(mut self, refresher: Refresher) -> Self {
        self.refresher = Some(refresher);
        self
    }

    fn dynamic(&self) -> MutexGuard<'_, Dynamic> {
        self.dynamic.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn path(&self) -> &ActorPath {
        &self.path
    }

    pub fn stats(&self) -> &ActorStats {
        &self.stats
    }

    /// A new incarnation is starting, at wall-clock time `at`.
    pub fn starting(&self, incarnation: u64, at: SystemTime) {
        let mut d = self.dynamic();
        d.status = Status::Starting;
        d.incarnation = incarnation;
        d.started_at = at;
    }

    /// The incarnation last started (0 before the first).
    pub fn incarnation(&self) -> u64 {
        self.dynamic().incarnation
    }

    /// The kind, as the registry shows it.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What the actor is in the tree.
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn set_status(&self, status: Status) {
        self.dynamic().status = status;
    }

    pub fn status(&self) -> Status {
        self.dynamic().status
    }

    pub fn set_summary(&self, summary: String) {
        self.dynamic().summary = summary;
    }

    pub fn set_last_error(&self, error: String) {
        self.dynamic().last_error = Some(error);
    }

    /// Counts a restart.
    pub fn restarted(&self) {
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot for readers.
    pub fn info(&self) -> ActorInfo {
        let d = self.dynamic();
        ActorInfo {
            path: self.path.clone(),
            kind: self.kind.clone(),
            role: self.role,
            supervisor: self.supervisor.clone(),
            status: d.status,
            summary: d.summary.clone(),
            mailbox_depth: self.stats.mailbox_depth(),
            handled: self.stats.handled_count(),
            restarts: self.stats.restarts(),
            last_error: d.last_error.clone(),
            started_at: d.started_at,
            incarnation: d.incarnation,
        }
    }
}

/// A snapshot of one actor, as the debug endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActorInfo {
    pub path: ActorPath,
    pub kind: Arc<str>,
    pub role: Role,
    pub supervisor: Option<ActorPath>,
    pub status: Status,
    /// One line from the actor's logic.
    pub summary: String,
    pub mailbox_depth: u64,
    pub handled: u64,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// When the current incarnation started.
    #[serde(serialize_with = "ser_time")]
    pub started_at: SystemTime,
    /// 1 for the first incarnation, +1 per restart (0 before the first start).
    pub incarnation: u64,
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(*t))
}

/// The registry of one process. Cheap to clone; all clones share one map.
#[derive(Clone)]
pub struct Registry {
    entries: Arc<RwLock<BTreeMap<ActorPath, Arc<Entry>>>>,
    clock: Arc<dyn Clock>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_clock(SystemClock::shared())
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("actors", &self.read().len())
            .finish()
    }
}

impl Registry {
    /// An empty registry on the system clock.
    pub fn new() -> Self {
        Registry::default()
    }

    /// An empty registry whose [`refresh`](Self::refresh) budget runs on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Registry {
            entries: Arc::default(),
            clock,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ActorPath, Arc<Entry>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ActorPath, Arc<Entry>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) the entry at its path.
    pub fn register(&self, entry: Arc<Entry>) {
        self.write().insert(entry.path.clone(), entry);
    }

    /// Removes `entry`, unless its path has since been taken by another entry.
    pub fn deregister(&self, entry: &Arc<Entry>) {
        let mut map = self.write();
        if map.get(&entry.path).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(&entry.path);
        }
    }

    /// The entry at `path`.
    pub fn entry(&self, path: &ActorPath) -> Option<Arc<Entry>> {
        self.read().get(path).cloned()
    }

    /// A snapshot of the actor at `path`.
    pub fn get(&self, path: &ActorPath) -> Option<ActorInfo> {
        self.entry(path).map(|e| e.info())
    }

    /// Snapshots of the actors whose supervisor is `supervisor`, in path order.
    pub fn children(&self, supervisor: &ActorPath) -> Vec<ActorInfo> {
        self.under(supervisor)
            .iter()
            .filter(|e| e.supervisor.as_ref() == Some(supervisor))
            .map(|e| e.info())
            .collect()
    }

    /// Snapshots of every actor at or under `prefix`, in path order.
    pub fn list(&self, prefix: &ActorPath) -> Vec<ActorInfo> {
        self.under(prefix).iter().map(|e| e.info()).collect()
    }

    fn under(&self, prefix: &ActorPath) -> Vec<Arc<Entry>> {
        self.read()
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.as_str().starts_with(prefix.as_str()))
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Asks every actor at or under `prefix` to publish its current summary, and waits for
    /// them, `within` at most on the registry's clock (an actor busy with a long message
    /// answers after it).
    ///
    /// On a [`ManualClock`](crate::ManualClock) the budget runs out only when the clock is
    /// advanced past it.
    ///
    /// # Cancel safety
    /// Cancelling only stops the waiting; the actors still publish.
    pub async fn refresh(&self, prefix: &ActorPath, within: Duration) {
        let asks: Vec<_> = self
            .under(prefix)
            .iter()
            .filter_map(|e| e.refresher.as_ref().and_then(|r| r()))
            .collect();
        let clock = self.clock.clone();
        let _ = crate::clock::timeout(&*clock, within, futures::future::join_all(asks)).await;
    }

    /// Number of registered actors.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kills the actor at `path`; its supervisor restarts it.
    pub fn kill(&self, path: &ActorPath) -> Result<ActorPath, KillError> {
        let entry = self.entry(path).ok_or_else(|| KillError::NotFound {
            path: path.to_string(),
        })?;
        kill_entry(&entry)
    }

    /// Kills one running object actor at or under `prefix`, chosen at random.
    pub fn kill_random(&self, prefix: &ActorPath) -> Result<ActorPath, KillError> {
        let mut candidates: Vec<_> = self
            .under(prefix)
            .into_iter()
            .filter(|e| e.killer.is_some() && e.status() == Status::Running)
            .collect();
        candidates.shuffle(&mut rand::thread_rng());
        for entry in candidates {
            // It may have died between the listing and now; try the next one.
            if let Ok(path) = kill_entry(&entry) {
                return Ok(path);
            }
        }
        Err(KillError::NoneUnder {
            prefix: prefix.to_string(),
        })
    }
}

fn kill_entry(entry: &Entry) -> Result<ActorPath, KillError> {
    match &entry.killer {
        Some(kill) => {
            kill()?;
            tracing::info!(actor = %entry.path, "actor killed by the kill switch");
            Ok(entry.path.clone())
        }
        None => Err(KillError::NotKillable {
            path: entry.path.to_string(),
            role: entry.role,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ActorPath {
        ActorPath::parse(s).unwrap()
    }

    #[test]
    fn list_by_prefix_is_segment_wise_and_ordered() {
        let r = Registry::new();
        for path in [
            "/m/c/dep/ns/b",
            "/m/c/dep/ns/a",
            "/m/c/dep2/ns/a",
            "/m/c/rs/ns/x",
            "/n/1",
        ] {
            r.register(Arc::new(Entry::new(p(path), "k", Role::Object, None)));
        }
        let got: Vec<_> = r
            .list(&p("/m/c/dep"))
            .into_iter()
            .map(|i| i.path.to_string())
            .collect();
        assert_eq!(got, vec!["/m/c/dep/ns/a", "/m/c/dep/ns/b"]);
        assert_eq!(r.list(&ActorPath::root()).len(), 5);
        assert!(r.get(&p("/n/1")).is_some());
        assert!(r.get(&p("/n/2")).is_none());
    }

    #[test]
    fn deregister_leaves_a_newer_entry_alone() {
        let r = Registry::new();
        let old = Arc::new(Entry::new(p("/a"), "k", Role::Object, None));
        r.register(old.clone());
        let new = Arc::new(Entry::new(p("/a"), "k", Role::Object, None));
        r.register(new.clone());
        r.deregister(&old);
        assert!(r.entry(&p("/a")).is_some_and(|e| Arc::ptr_eq(&e, &new)));
        r.deregister(&new);
        assert!(r.is_empty());
    }

    #[test]
    fn kill_switch_refuses_what_it_cannot_kill() {
        let r = Registry::new();
        r.register(Arc::new(Entry::new(p("/m"), "root", Role::Root, None)));
        let killed = Arc::new(AtomicU32::new(0));
        let k = killed.clone();
        let e = Arc::new(
            Entry::new(p("/m/x"), "k", Role::Object, Some(p("/m"))).with_killer(Box::new(
                move || {
                    k.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                },
            )),
        );
        r.register(e.clone());
        assert!(matches!(
            r.kill(&p("/m")),
            Err(KillError::NotKillable { .. })
        ));
        assert!(matches!(r.kill(&p("/zz")), Err(KillError::NotFound { .. })));
        // Not running yet: random kill finds nobody.
        assert!(matches!(
            r.kill_random(&p("/m")),
            Err(KillError::NoneUnder { .. })
        ));
        e.set_status(Status::Running);
        assert_eq!(r.kill_random(&p("/m")).unwrap(), p("/m/x"));
        assert_eq!(r.kill(&p("/m/x")).unwrap(), p("/m/x"));
        assert_eq!(killed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn mailbox_depth_counts_queued_messages() {
        let s = ActorStats::default();
        s.enqueued();
        s.enqueued();
        s.dequeued(1);
        assert_eq!(s.mailbox_depth(), 1);
        s.drain();
        assert_eq!(s.mailbox_depth(), 0);
    }
}
