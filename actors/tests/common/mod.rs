//! Test kit shared by the integration tests: a counter kind, an in-memory source, recording
//! effects and a wait-for-condition helper.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use navarch_actors::{
    current_actor, current_correlation, ActorPath, ChildRef, CorrelationId, Decision, EffectError,
    Effects, Fatal, ObjectKey, ObjectLogic, Registry, Source, SourceError, TapInfo,
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

/// An in-memory store of counters, with switches to make loads fail or panic.
#[derive(Default)]
pub struct MemSource {
    pub values: Mutex<HashMap<ObjectKey, i64>>,
    pub loads: Mutex<HashMap<ObjectKey, u32>>,
    pub failing: Mutex<HashSet<ObjectKey>>,
    pub panicking: Mutex<HashSet<ObjectKey>>,
}

impl MemSource {
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
