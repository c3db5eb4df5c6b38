//! Feeding controllers from the watch caches: a kind's own objects go to its supervisor
//! (which starts, updates and stops one actor per object), and changes of related objects
//! (a ReplicaSet's pods, a Service's pods) poke the actors they concern. Pokes are hints:
//! an actor re-reads the caches when it handles one, so a dropped poke is harmless while
//! another is queued, and none carries state that could be stale.

use std::sync::Arc;

use navarch_actors::{KindHandle, ObjectKey, ObjectLogic};
use navarch_client::{Cache, CacheEvent, Subscription};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::source::key_of;

/// Forwards every change of `cache` (from `sub`, taken before the supervisor listed its
/// source, so that nothing between the list and the subscription is missed) to the kind
/// supervisor `handle`: added and updated
/// objects start or update their actor (an added one on behalf of the request that created
/// it, [`on_behalf`], an updated one on behalf of the request that changed its spec, when
/// that moved its correlation id), deleted ones stop it. After a relist or a lag every
/// cached object is sent again (the supervisor ignores what did not change for a running
/// actor's purposes: the actor re-reads anyway).
pub fn spawn_own<L>(handle: KindHandle<L>, cache: &Cache, mut sub: Subscription) -> JoinHandle<()>
where
    L: ObjectLogic<Object = Arc<Value>>,
{
    let cache = cache.clone();
    tokio::spawn(async move {
        while let Some(event) = sub.recv().await {
            match event {
                CacheEvent::Added(o) => {
                    if let Some(key) = key_of(&o) {
                        // A new object acts for the request that created it.
                        if on_behalf(&o, handle.object_changed(key, o.clone()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                CacheEvent::Updated { old, new: o } => {
                    if let Some(key) = key_of(&o) {
                        // An update that changed the spec names its request on the object
                        // (a rollout, a scale): the actor acts for that request.
                        let changed = navarch_model::correlation_of(&old)
                            != navarch_model::correlation_of(&o);
                        let send = handle.object_changed(key, o.clone());
                        let sent = if changed {
                            on_behalf(&o, send).await
                        } else {
                            send.await
                        };
                        if sent.is_err() {
                            return;
                        }
                    }
                }
                CacheEvent::Deleted(o) => {
                    if let Some(key) = key_of(&o) {
                        if handle.object_removed(key).await.is_err() {
                            return;
                        }
                    }
                }
                CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => {
                    for o in cache.list() {
                        if let Some(key) = key_of(&o) {
                            if handle.object_changed(key, o).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Runs `f` on behalf of the request that created `obj` (its correlation id in scope, so
/// that what `f` sends carries it), or as it is when `obj` names none.
pub async fn on_behalf<F: std::future::Future>(obj: &Value, f: F) -> F::Output {
    navarch_actors::with_correlation_if(created_by(obj), f).await
}

/// The correlation id of the request that created `obj`, if it names one.
pub fn created_by(obj: &Value) -> Option<navarch_actors::CorrelationId> {
    navarch_model::correlation_of(obj).and_then(|c| c.parse().ok())
}

/// `f`, to be spawned as a task of its own, still on behalf of the request the calling task
/// acts for (a task does not inherit its spawner's correlation id).
pub fn keeping_correlation<F: std::future::Future>(
    f: F,
) -> impl std::future::Future<Output = F::Output> {
    navarch_actors::with_correlation_if(navarch_actors::current_correlation(), f)
}

/// Pokes the actor of `key`, if it runs, with `event`; a full mailbox drops the poke (the
/// queued messages re-read the caches after this change anyway).
pub async fn poke<L: ObjectLogic>(handle: &KindHandle<L>, key: &ObjectKey, event: L::Event) {
    if let Ok(Some(child)) = handle.child(key).await {
        let _ = child.try_send(event);
    }
}

/// The key of a namespaced object's owner named in an owner reference.
pub fn owner_key(obj: &Value, owner: &Value) -> Option<ObjectKey> {
    let ns = obj["metadata"]["namespace"].as_str()?;
    let name = owner["name"].as_str()?;
    ObjectKey::namespaced(ns, name).ok()
}

/// Timers that poke an actor again later ("look again in 20 s"), at most one per object:
/// a step asking for an earlier look replaces a later one, a later or equal one is dropped.
/// (A timer per step would multiply: every poke's step would start another chain.)
pub struct Requeues {
    clock: Arc<dyn navarch_actors::Clock>,
    pending: std::sync::Mutex<std::collections::HashMap<ObjectKey, std::time::Instant>>,
}

impl std::fmt::Debug for Requeues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requeues").finish()
    }
}

impl Requeues {
    pub fn new(clock: Arc<dyn navarch_actors::Clock>) -> Arc<Requeues> {
        Arc::new(Requeues {
            clock,
            pending: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Pokes `key`'s actor with `event` after `after`, unless a poke at or before then is
    /// already pending for it.
    pub fn after<L: ObjectLogic>(
        self: &Arc<Self>,
        handle: KindHandle<L>,
        key: ObjectKey,
        after: std::time::Duration,
        event: L::Event,
    ) {
        let at = self.clock.now() + after;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending.get(&key) {
                Some(t) if *t <= at => return,
                _ => {
                    pending.insert(key.clone(), at);
                }
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.clock.sleep_until(at).await;
            let ours = {
                let mut pending = me.pending.lock().unwrap_or_else(|p| p.into_inner());
                if pending.get(&key) == Some(&at) {
                    pending.remove(&key);
                    true
                } else {
                    false
                }
            };
            if ours {
                poke(&handle, &key, event).await;
            }
        });
    }
}

/// What an object's actor remembers between messages: which object it is, and the line
/// the registry shows. Nothing else: every message makes it read the caches again.
#[derive(Debug)]
pub struct RereadState {
    pub key: ObjectKey,
    pub summary: String,
}

/// A controller's step for one object, read from the caches when a message arrives.
pub trait Reread: Send + Sync + 'static {
    /// The pokes the actor gets (`Resync`, `Check`).
    type Event: navarch_actors::TapInfo + Send + 'static;
    /// What one step asks the effects to do.
    type Step: Send + 'static;

    /// Reads the object of `state.key` and what it depends on, calls the pure step, and
    /// updates `state.summary`.
    fn step(&self, state: &mut RereadState) -> navarch_actors::Decision<Self::Step>;
}

/// A [`Reread`] as the actor kit's logic: started, changed and poked alike, it steps.
pub struct Rereading<R>(pub R);

impl<R: Reread> ObjectLogic for Rereading<R> {
    type Object = Arc<Value>;
    type State = RereadState;
    type Event = R::Event;
    type Action = R::Step;

    fn rebuild(&self, key: &ObjectKey, _object: Arc<Value>) -> RereadState {
        RereadState {
            key: key.clone(),
            summary: String::new(),
        }
    }

    fn on_start(&self, state: &mut RereadState) -> navarch_actors::Decision<R::Step> {
        self.0.step(state)
    }

    fn on_change(
        &self,
        state: &mut RereadState,
        _object: Arc<Value>,
    ) -> navarch_actors::Decision<R::Step> {
        self.0.step(state)
    }

    fn handle(
        &self,
        state: &mut RereadState,
        _event: R::Event,
    ) -> navarch_actors::Decision<R::Step> {
        self.0.step(state)
    }

    fn summary(&self, state: &RereadState) -> String {
        state.summary.clone()
    }
}

/// Effects that carry a controller's steps out one after the other, each with `run` (the
/// controller's own async function over its shared state).
pub struct InOrder<S: Send + Sync + 'static, St: Send + 'static> {
    pub shared: Arc<S>,
    pub run: fn(Arc<S>, St) -> futures::future::BoxFuture<'static, ()>,
}

impl<S: Send + Sync + 'static, St: Send + 'static> navarch_actors::Effects<St> for InOrder<S, St> {
    fn perform(
        &self,
        _actor: &navarch_actors::ActorPath,
        steps: Vec<St>,
    ) -> futures::future::BoxFuture<'static, Result<(), navarch_actors::EffectError>> {
        let (shared, run) = (self.shared.clone(), self.run);
        Box::pin(async move {
            for step in steps {
                run(shared.clone(), step).await;
            }
            Ok(())
        })
    }
}
