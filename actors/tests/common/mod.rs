//! Test kit shared by the integration tests: a counter kind (also with its live states
//! counted), an in-memory source, recording effects, a scheduler-like singleton with its
//! snapshot source, and wait-for-condition helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use navarch_actors::{
    current_actor, current_correlation, ActorPath, ChildRef, CorrelationId, Decision, EffectError,
    Effects, Fatal, ObjectKey, ObjectLogic, Registry, Sender, SingletonLogic, SnapshotSource,
    Source, SourceError, TapInfo,
};

/// A counter per object: its stored value is the starting point; events add to it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter;

#[derive(Debug)]
pub struct CounterState {
    pub key: ObjectKey,
    pub value: i64,
}

#[derive(Debug)]
pub enum CounterEvent {
    Add(i64),
    Panic,
    Fail,
    /// Carry out `Act::Forward` (send `Add(n)` to another counter from the effects).
    Forward(i64),
    /// Panic inside the effects future.
    ExplodeInEffects,
}

impl TapInfo for CounterEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            CounterEvent::Add(_) => "Add",
            CounterEvent::Panic => "Panic",
            CounterEvent::Fail => "Fail",
            CounterEvent::Forward(_) => "Forward",
            CounterEvent::ExplodeInEffects => "ExplodeInEffects",
        }
        .into()
    }

    fn summary(&self) -> Option<String> {
        match self {
            CounterEvent::Add(n) => Some(format!("add {n}")),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub enum Act {
    Forward(i64),
    Explode,
}

impl ObjectLogic for Counter {
    type Object = i64;
    type State = CounterState;
    type Event = CounterEvent;
    type Action = Act;

    fn rebuild(&self, key: &ObjectKey, object: i64) -> CounterState {
        assert!(object >= 0, "stored counter {key} is poisoned");
        CounterState {
            key: key.clone(),
            value: object,
        }
    }

    fn on_change(&self, state: &mut CounterState, object: i64) -> Decision<Act> {
        state.value = object;
        Ok(Vec::new())
    }

    fn handle(&self, state: &mut CounterState, event: CounterEvent) -> Decision<Act> {
        match event {
            CounterEvent::Add(n) => {
                state.value += n;
                Ok(Vec::new())
            }
            CounterEvent::Panic => panic!("counter {} asked to panic", state.key),
            CounterEvent::Fail => Err(Fatal(format!("counter {} asked to fail", state.key))),
            CounterEvent::Forward(n) => Ok(vec![Act::Forward(n)]),
            CounterEvent::ExplodeInEffects => Ok(vec![Act::Explode]),
        }
    }

    fn summary(&self, state: &CounterState) -> String {
        format!("value={}", state.value)
    }
}

/// An in-memory store of counters, with switches to make loads fail or panic. It lists its
/// keys only if made with [`MemSource::listable`].
#[derive(Default)]
pub struct MemSource {
    pub values: Mutex<HashMap<ObjectKey, i64>>,
    pub loads: Mutex<HashMap<ObjectKey, u32>>,
    pub failing: Mutex<HashSet<ObjectKey>>,
    pub panicking: Mutex<HashSet<ObjectKey>>,
    pub listing: bool,
    pub list_failing: Mutex<bool>,
    pub lists: Mutex<u32>,
}

impl MemSource {
    /// A source that kind supervisors list on every start.
    pub fn listable() -> Self {
        MemSource {
            listing: true,
            ..MemSource::default()
        }
    }

    pub fn lists(&self) -> u32 {
        *self.lists.lock().unwrap()
    }

    pub fn put(&self, key: &ObjectKey, value: i64) {
        self.values.lock().unwrap().insert(key.clone(), value);
    }

    pub fn remove(&self, key: &ObjectKey) {
        self.values.lock().unwrap().remove(key);
    }

    pub fn loads(&self, key: &ObjectKey) -> u32 {
        self.loads.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

impl Source<i64> for MemSource {
    fn load(&self, key: &ObjectKey) -> BoxFuture<'static, Result<Option<i64>, SourceError>> {
        *self.loads.lock().unwrap().entry(key.clone()).or_default() += 1;
        let failing = self.failing.lock().unwrap().contains(key);
        let panicking = self.panicking.lock().unwrap().contains(key);
        let value = self.values.lock().unwrap().get(key).copied();
        let key = key.clone();
        Box::pin(async move {
            assert!(!panicking, "source asked to panic loading {key}");
            if failing {
                return Err(SourceError::Unavailable(format!("{key} is unreachable")));
            }
            Ok(value)
        })
    }

    fn list(&self) -> Option<BoxFuture<'static, Result<Vec<ObjectKey>, SourceError>>> {
        if !self.listing {
            return None;
        }
        *self.lists.lock().unwrap() += 1;
        let failing = *self.list_failing.lock().unwrap();
        let mut keys: Vec<ObjectKey> = self.values.lock().unwrap().keys().cloned().collect();
        keys.sort();
        Some(Box::pin(async move {
            if failing {
                return Err(SourceError::Unavailable("the store is unreachable".into()));
            }
            Ok(keys)
        }))
    }
}

/// What the effects saw: (actor, correlation id in scope, actor in scope).
pub type Seen = (ActorPath, Option<CorrelationId>, Option<ActorPath>);

/// Effects that forward to another counter and record what was in scope.
pub struct CounterEffects {
    pub target: Mutex<Option<ChildRef<Counter>>>,
    pub seen: Mutex<Vec<Seen>>,
}

impl CounterEffects {
    pub fn new() -> Arc<Self> {
        Arc::new(CounterEffects {
            target: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
        })
    }
}

/// Forwards `Effects` to a shared `CounterEffects` (so the test keeps a handle on it).
pub struct SharedEffects(pub Arc<CounterEffects>);

impl Effects<Act> for SharedEffects {
    fn perform(
        &self,
        actor: &ActorPath,
        actions: Vec<Act>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let inner = self.0.clone();
        let actor = actor.clone();
        Box::pin(async move {
            for action in actions {
                inner.seen.lock().unwrap().push((
                    actor.clone(),
                    current_correlation(),
                    current_actor(),
                ));
                match action {
                    Act::Explode => panic!("effects of {actor} exploded"),
                    Act::Forward(n) => {
                        let target = inner.target.lock().unwrap().clone();
                        if let Some(t) = target {
                            t.send(CounterEvent::Add(n))
                                .await
                                .map_err(|e| EffectError {
                                    message: e.to_string(),
                                    fatal: false,
                                })?;
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

/// Waits until `cond` holds, checking every few milliseconds; panics with `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Like [`eventually`] for an async condition.
pub async fn eventually_async<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The summary of the actor at `p`, freshly published.
pub async fn summary(reg: &Registry, p: &ActorPath) -> String {
    reg.refresh(p, LIMIT).await;
    reg.get(p).map(|i| i.summary).unwrap_or_default()
}

pub fn key(s: &str) -> ObjectKey {
    s.parse().unwrap()
}

pub fn path(s: &str) -> ActorPath {
    ActorPath::parse(s).unwrap()
}

pub const LIMIT: Duration = Duration::from_secs(10);

/// Counts live actor states: +1 when made, -1 when dropped. A state is dropped when its
/// incarnation ends, so the count says how many actors run.
pub struct Live(Arc<AtomicIsize>);

impl Live {
    pub fn new(count: &Arc<AtomicIsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// [`Counter`], with its live states counted.
#[derive(Clone, Default)]
pub struct Tracked {
    pub live: Arc<AtomicIsize>,
}

pub struct TrackedState {
    pub inner: CounterState,
    _live: Live,
}

impl ObjectLogic for Tracked {
    type Object = i64;
    type State = TrackedState;
    type Event = CounterEvent;
    type Action = Act;

    fn rebuild(&self, key: &ObjectKey, object: i64) -> TrackedState {
        TrackedState {
            inner: Counter.rebuild(key, object),
            _live: Live::new(&self.live),
        }
    }

    fn on_change(&self, state: &mut TrackedState, object: i64) -> Decision<Act> {
        Counter.on_change(&mut state.inner, object)
    }

    fn handle(&self, state: &mut TrackedState, event: CounterEvent) -> Decision<Act> {
        Counter.handle(&mut state.inner, event)
    }

    fn summary(&self, state: &TrackedState) -> String {
        Counter.summary(&state.inner)
    }
}

/// A scheduler-like singleton: places each pod on the node with the most free cpu (ties by
/// name), or reports it unschedulable.
#[derive(Clone, Default)]
pub struct Placer {
    pub live: Arc<AtomicIsize>,
}

pub struct PlacerState {
    pub free: BTreeMap<String, u32>,
    pub placed: u32,
    _live: Live,
}

#[derive(Debug)]
pub enum PlacerEvent {
    Place { pod: String, cpu: u32 },
    Panic,
}

impl TapInfo for PlacerEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            PlacerEvent::Place { .. } => "Place",
            PlacerEvent::Panic => "Panic",
        }
        .into()
    }

    fn summary(&self) -> Option<String> {
        match self {
            PlacerEvent::Place { pod, cpu } => Some(format!("{pod} cpu={cpu}")),
            PlacerEvent::Panic => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Bind { pod: String, node: String },
    Unschedulable { pod: String },
}

impl SingletonLogic for Placer {
    type Snapshot = Vec<(String, u32)>;
    type State = PlacerState;
    type Event = PlacerEvent;
    type Action = Placement;

    fn rebuild(&self, nodes: Vec<(String, u32)>) -> PlacerState {
        PlacerState {
            free: nodes.into_iter().collect(),
            placed: 0,
            _live: Live::new(&self.live),
        }
    }

    fn handle(&self, state: &mut PlacerState, event: PlacerEvent) -> Decision<Placement> {
        match event {
            PlacerEvent::Place { pod, cpu } => {
                let best = state
                    .free
                    .iter()
                    .filter(|(_, free)| **free >= cpu)
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(node, _)| node.clone());
                Ok(vec![match best {
                    Some(node) => {
                        *state.free.get_mut(&node).unwrap() -= cpu;
                        state.placed += 1;
                        Placement::Bind { pod, node }
                    }
                    None => Placement::Unschedulable { pod },
                }])
            }
            PlacerEvent::Panic => panic!("placer asked to panic"),
        }
    }

    fn summary(&self, state: &PlacerState) -> String {
        let free: Vec<String> = state.free.iter().map(|(n, f)| format!("{n}={f}")).collect();
        format!("placed {}, free {}", state.placed, free.join(" "))
    }
}

/// The nodes a [`Placer`] rebuilds from, with a switch to make loads fail.
#[derive(Default)]
pub struct MemNodes {
    pub nodes: Mutex<Vec<(String, u32)>>,
    pub loads: Mutex<u32>,
    pub failing: Mutex<bool>,
}

impl MemNodes {
    pub fn with(nodes: &[(&str, u32)]) -> Arc<Self> {
        let m = MemNodes::default();
        *m.nodes.lock().unwrap() = nodes.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect();
        Arc::new(m)
    }

    pub fn loads(&self) -> u32 {
        *self.loads.lock().unwrap()
    }
}

impl SnapshotSource<Vec<(String, u32)>> for MemNodes {
    fn load(&self) -> BoxFuture<'static, Result<Vec<(String, u32)>, SourceError>> {
        *self.loads.lock().unwrap() += 1;
        let nodes = self.nodes.lock().unwrap().clone();
        let failing = *self.failing.lock().unwrap();
        Box::pin(async move {
            if failing {
                return Err(SourceError::Unavailable("nodes are unreachable".into()));
            }
            Ok(nodes)
        })
    }
}

/// Effects that hand each placement to a typed sender, as a scheduler hands bindings to the
/// API layer.
pub struct PlacementEffects(pub Sender<Placement>);

impl Effects<Placement> for PlacementEffects {
    fn perform(
        &self,
        _: &ActorPath,
        actions: Vec<Placement>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let out = self.0.clone();
        Box::pin(async move {
            for placement in actions {
                out.send(placement).await.map_err(|e| EffectError {
                    message: e.to_string(),
                    fatal: false,
                })?;
            }
            Ok(())
        })
    }
}
