//! Supervision: panics, kills and failures end one incarnation only; the supervisor restarts it
//! from its source, counts it, and escalates a child that keeps failing as configured.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use navarch_actors::{
    with_correlation, Backoff, CorrelationId, Escalation, EscalationAction, HostError, Intensity,
    KindConfig, KindSpec, RestartPolicy, Root, Status, TapConfig, TapFilter,
};

fn policy(initial_ms: u64, max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_secs(2),
            factor: 2,
        },
        intensity: Intensity {
            max_restarts,
            within: Duration::from_secs(60),
        },
    }
}

fn config(child: RestartPolicy, escalation: Escalation) -> KindConfig {
    KindConfig {
        child_policy: child,
        escalation,
        supervisor_policy: policy(1, 1),
        ..KindConfig::default()
    }
}

fn root() -> Root {
    Root::new(path("/test"), TapConfig::default())
}

#[actix_rt::test]
async fn panicking_handler_is_restarted_while_its_neighbours_keep_working() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let keys = [key("default/a"), key("default/b"), key("default/c")];
    for k in &keys {
        source.put(k, 10);
    }
    // A long first backoff, so that we can watch the neighbours work while `a` is dead.
    let spec = KindSpec::new("counter", Counter, source.clone())
        .at("controllers/counter")
        .config(config(policy(500, 5), Escalation::RestartKind));
    let kind = root.supervise(spec).unwrap();
    for k in &keys {
        kind.object_changed(k.clone(), 10).await.unwrap();
    }
    let a = kind.child(&keys[0]).await.unwrap().unwrap();
    let b = kind.child(&keys[1]).await.unwrap().unwrap();
    let c = kind.child(&keys[2]).await.unwrap().unwrap();
    assert_eq!(a.path().as_str(), "/test/controllers/counter/default/a");
    a.send(CounterEvent::Add(1)).await.unwrap();

    let err = a.send(CounterEvent::Panic).await.unwrap_err();
    assert!(matches!(err, HostError::Panicked { .. }), "{err:?}");

    let reg = root.registry();
    let a_path = a.path().clone();
    eventually(LIMIT, "a waits out its backoff", || {
        reg.get(&a_path)
            .is_some_and(|i| i.status == Status::Restarting)
    })
    .await;
    // `a` is dead; `b` and `c`, on the same arbiter, keep handling messages.
    for _ in 0..100 {
        b.send(CounterEvent::Add(1)).await.unwrap();
        c.send(CounterEvent::Add(2)).await.unwrap();
    }
    assert!(matches!(
        a.send(CounterEvent::Add(1)).await,
        Err(HostError::Unavailable { .. })
    ));

    eventually(LIMIT, "a restarted", || {
        reg.get(&a_path)
            .is_some_and(|i| i.status == Status::Running && i.restarts == 1)
    })
    .await;
    let info = reg.get(&a_path).unwrap();
    // Rebuilt from the source (10), not from the dead incarnation (11).
    assert_eq!(info.summary, "value=10");
    assert_eq!(info.incarnation, 2);
    assert!(info
        .last_error
        .as_deref()
        .unwrap()
        .contains("asked to panic"));
    assert_eq!(source.loads(&keys[0]), 2);
    a.send(CounterEvent::Add(5)).await.unwrap();
    assert_eq!(summary(&reg, &a_path).await, "value=15");
    for (p, want) in [(b.path(), "value=110"), (c.path(), "value=210")] {
        assert_eq!(summary(&reg, p).await, want);
        assert_eq!(reg.get(p).unwrap().restarts, 0);
    }

    // The tap shows the panic, the exit and the restart, in order.
    let filter = TapFilter {
        prefix: Some(a_path.to_string()),
        ..TapFilter::default()
    };
    let seen: Vec<(String, String)> = root
        .tap()
        .recent(&filter, 100)
        .iter()
        .map(|r| (r.message_type.to_string(), r.outcome.to_string()))
        .collect();
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "Started",
            "Add",
            "Panic",
            "ActorExited",
            "ActorRestarted",
            "Started",
            "Add"
        ],
        "{seen:?}"
    );
    assert!(seen[2]
        .1
        .starts_with("panicked: counter default/a asked to panic"));
    assert_eq!(seen[3].1, seen[2].1);
}

#[actix_rt::test]
async fn panic_outside_any_handler_is_reported_by_the_guard() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let (a, b) = (key("ns/a"), key("ns/b"));
    source.put(&a, 1);
    source.put(&b, 1);
    source.panicking.lock().unwrap().insert(a.clone());
    let spec = KindSpec::new("counter", Counter, source.clone())
        .config(config(policy(5, 50), Escalation::RestartKind));
    let kind = root.supervise(spec).unwrap();
    kind.object_changed(b.clone(), 1).await.unwrap();
    kind.object_changed(a.clone(), 1).await.unwrap();
    let reg = root.registry();
    let a_path = path("/test/counter/ns/a");
    eventually(LIMIT, "a failed to load twice", || source.loads(&a) >= 2).await;
    let bref = kind.child(&b).await.unwrap().unwrap();
    for _ in 0..10 {
        bref.send(CounterEvent::Add(1)).await.unwrap();
    }
    source.panicking.lock().unwrap().clear();
    eventually(LIMIT, "a running", || {
        reg.get(&a_path)
            .is_some_and(|i| i.status == Status::Running)
    })
    .await;
    let info = reg.get(&a_path).unwrap();
    assert!(info.restarts >= 1);
    assert!(info
        .last_error
        .as_deref()
        .unwrap()
        .contains("panic outside a message handler"));
    assert_eq!(summary(&reg, bref.path()).await, "value=11");
}

#[actix_rt::test]
async fn panic_inside_effects_is_contained() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let a = key("ns/a");
    source.put(&a, 3);
    let effects = CounterEffects::new();
    let spec = KindSpec::new("counter", Counter, source.clone())
        .effects(Arc::new(SharedEffects(effects.clone())))
        .config(config(policy(1, 5), Escalation::RestartKind));
    let kind = root.supervise(spec).unwrap();
    kind.object_changed(a.clone(), 3).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    let err = aref.send(CounterEvent::ExplodeInEffects).await.unwrap_err();
    assert!(matches!(err, HostError::Panicked { ref message, .. } if message.contains("exploded")));
    let reg = root.registry();
    eventually(LIMIT, "a restarted", || {
        reg.get(aref.path())
            .is_some_and(|i| i.restarts == 1 && i.status == Status::Running)
    })
    .await;
    aref.send(CounterEvent::Add(1)).await.unwrap();
    assert_eq!(summary(&reg, aref.path()).await, "value=4");
}

#[actix_rt::test]
async fn killed_actor_rebuilds_its_state_from_its_source() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let (a, b) = (key("ns/a"), key("ns/b"));
    source.put(&a, 7);
    source.put(&b, 0);
    let spec = KindSpec::new("counter", Counter, source.clone())
        .config(config(policy(1, 10), Escalation::RestartKind));
    let kind = root.supervise(spec).unwrap();
    kind.object_changed(a.clone(), 7).await.unwrap();
    kind.object_changed(b.clone(), 0).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    aref.send(CounterEvent::Add(3)).await.unwrap();
    let reg = root.registry();
    assert_eq!(summary(&reg, aref.path()).await, "value=10");

    // The store moves on while the actor runs; a kill makes it read the store again.
    source.put(&a, 20);
    assert_eq!(reg.kill(aref.path()).unwrap(), *aref.path());
    eventually(LIMIT, "a restarted after the kill", || {
        reg.get(aref.path()).is_some_and(|i| {
            i.restarts == 1 && i.status == Status::Running && i.summary == "value=20"
        })
    })
    .await;
    assert_eq!(
        reg.get(aref.path()).unwrap().last_error.as_deref(),
        Some("killed")
    );
    let killed = root.tap().recent(
        &TapFilter {
            message_type: Some("ActorExited".into()),
            ..TapFilter::default()
        },
        10,
    );
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0].outcome, "killed");

    // A random kill under the kind's prefix hits one of its two children.
    let victim = reg.kill_random(kind.path()).unwrap();
    assert!(victim == *aref.path() || victim.as_str() == "/test/counter/ns/b");
    eventually(LIMIT, "victim restarted", || {
        let all = reg.list(kind.path());
        let restarts: u32 = all.iter().map(|i| i.restarts).sum();
        restarts == 2 && all.iter().all(|i| i.status == Status::Running)
    })
    .await;
    assert!(
        reg.kill(kind.path()).is_err(),
        "supervisors are not killable"
    );
}

#[actix_rt::test]
async fn child_that_keeps_failing_is_parked_when_so_configured() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let (bad, good) = (key("ns/bad"), key("ns/good"));
    source.put(&bad, 1);
    source.put(&good, 1);
    source.failing.lock().unwrap().insert(bad.clone());
    let spec = KindSpec::new("counter", Counter, source.clone())
        .config(config(policy(1, 2), Escalation::ParkChild));
    let kind = root.supervise(spec).unwrap();
    kind.object_changed(good.clone(), 1).await.unwrap();
    kind.object_changed(bad.clone(), 1).await.unwrap();
    let reg = root.registry();
    let bad_path = path("/test/counter/ns/bad");
    eventually(LIMIT, "bad parked", || {
        reg.get(&bad_path)
            .is_some_and(|i| i.status == Status::Failed)
    })
    .await;
    let info = reg.get(&bad_path).unwrap();
    assert_eq!(info.restarts, 2);
    assert_eq!(source.loads(&bad), 3);
    assert!(info.last_error.as_deref().unwrap().contains("unreachable"));
    let esc = root.escalations();
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].action, EscalationAction::ChildParked);
    assert_eq!(esc[0].child, bad_path);
    assert_eq!(esc[0].failures, 3);

    // Its neighbour is untouched.
    let goodref = kind.child(&good).await.unwrap().unwrap();
    goodref.send(CounterEvent::Add(1)).await.unwrap();
    assert_eq!(reg.get(goodref.path()).unwrap().restarts, 0);

    // A change to the parked object starts it again with a clean record.
    source.failing.lock().unwrap().clear();
    kind.object_changed(bad.clone(), 1).await.unwrap();
    eventually(LIMIT, "bad running again", || {
        reg.get(&bad_path)
            .is_some_and(|i| i.status == Status::Running)
    })
    .await;
}

#[actix_rt::test]
async fn child_that_keeps_failing_restarts_its_kind_then_the_kind_gives_up() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let (poisoned, fine) = (key("ns/poisoned"), key("ns/fine"));
    source.put(&poisoned, -1);
    source.put(&fine, 5);
    let failing = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone())
                .config(config(policy(1, 1), Escalation::RestartKind)),
        )
        .unwrap();
    let other = root
        .supervise(KindSpec::new("other", Counter, source.clone()))
        .unwrap();
    other.object_changed(fine.clone(), 5).await.unwrap();
    failing.object_changed(fine.clone(), 5).await.unwrap();
    let fine_path = path("/test/counter/ns/fine");
    let reg = root.registry();
    eventually(LIMIT, "fine running", || {
        reg.get(&fine_path)
            .is_some_and(|i| i.status == Status::Running)
    })
    .await;
    failing.object_changed(poisoned.clone(), -1).await.unwrap();

    eventually(LIMIT, "the kind gives up", || root.escalations().len() == 2).await;
    let actions: Vec<_> = root.escalations().iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            EscalationAction::KindRestarted,
            EscalationAction::KindFailed
        ]
    );
    let sup = reg.get(failing.path()).unwrap();
    assert_eq!((sup.status, sup.restarts), (Status::Failed, 1));
    assert!(sup
        .last_error
        .unwrap()
        .contains("stored counter ns/poisoned is poisoned"));
    // Its children are gone; the supervisor refuses new work.
    assert_eq!(reg.list(failing.path()).len(), 1);
    eventually_async(LIMIT, "the failed supervisor refuses work", || {
        let f = failing.clone();
        let k = fine.clone();
        async move { f.object_changed(k, 5).await.is_err() }
    })
    .await;
    assert!(!failing.is_running());

    // The other kind, and the root, keep running.
    let fine_other = other.child(&fine).await.unwrap().unwrap();
    fine_other.send(CounterEvent::Add(1)).await.unwrap();
    assert_eq!(summary(&reg, fine_other.path()).await, "value=6");
    assert_eq!(reg.get(fine_other.path()).unwrap().restarts, 0);
    let root_info = reg.get(root.path()).unwrap();
    assert!(root_info.last_error.unwrap().contains("KindFailed"));

    // The failed kind can be supervised again; a live one cannot be supervised twice.
    source.put(&poisoned, 1);
    let again = root
        .supervise(KindSpec::new("counter", Counter, source.clone()))
        .unwrap();
    again.object_changed(poisoned.clone(), 1).await.unwrap();
    let p = again.child(&poisoned).await.unwrap().unwrap();
    p.send(CounterEvent::Add(1)).await.unwrap();
    assert_eq!(reg.get(again.path()).unwrap().status, Status::Running);
    assert!(root
        .supervise(KindSpec::new("other", Counter, source.clone()))
        .is_err());
}

/// An object's logic is plain function calls: rebuilt from its stored object, changed by
/// events and by new versions of the object, with its actions returned, no actor involved.
#[test]
fn object_logic_is_tested_without_actix() {
    use navarch_actors::ObjectLogic;
    let logic = Counter;
    let mut state = logic.rebuild(&key("ns/a"), 3);
    assert_eq!(logic.summary(&state), "value=3");
    assert!(logic
        .handle(&mut state, CounterEvent::Add(4))
        .unwrap()
        .is_empty());
    assert_eq!(logic.summary(&state), "value=7");
    assert!(matches!(
        logic
            .handle(&mut state, CounterEvent::Forward(2))
            .unwrap()
            .as_slice(),
        [Act::Forward(2)]
    ));
    assert!(logic.handle(&mut state, CounterEvent::Fail).is_err());
    assert!(logic.on_change(&mut state, 10).unwrap().is_empty());
    assert_eq!(logic.summary(&state), "value=10");
}

/// Handles and their futures can move to other threads (a QUIC handler on a tokio worker
/// sends to an actor on an arbiter).
#[test]
fn handles_and_their_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn check(kind: navarch_actors::KindHandle<Counter>, child: navarch_actors::ChildRef<Counter>) {
        is_send(&kind.object_changed(key("a"), 1));
        is_send(&kind.child(&key("a")));
        is_send(&child.send(CounterEvent::Add(1)));
        is_send(&child);
        is_send(&kind);
    }
    let _ = check;
}

#[actix_rt::test]
async fn removed_or_vanished_objects_stop_their_actors() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let (a, b) = (key("ns/a"), key("ns/b"));
    source.put(&a, 1);
    source.put(&b, 1);
    let kind = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone())
                .config(config(policy(1, 5), Escalation::RestartKind)),
        )
        .unwrap();
    kind.object_changed(a.clone(), 1).await.unwrap();
    kind.object_changed(b.clone(), 1).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    let bref = kind.child(&b).await.unwrap().unwrap();
    let reg = root.registry();
    assert_eq!(reg.list(kind.path()).len(), 3);

    // Removed through the supervisor.
    kind.object_removed(a.clone()).await.unwrap();
    assert!(reg.get(aref.path()).is_none());
    assert!(kind.child(&a).await.unwrap().is_none());
    eventually_async(LIMIT, "a unreachable", || {
        let aref = aref.clone();
        async move { aref.send(CounterEvent::Add(1)).await.is_err() }
    })
    .await;

    // Gone from the source: the next incarnation finds nothing and stops for good.
    source.remove(&b);
    reg.kill(bref.path()).unwrap();
    eventually(LIMIT, "b forgotten", || reg.get(bref.path()).is_none()).await;
    assert_eq!(reg.list(kind.path()).len(), 1);

    // A changed object reaches the running actor.
    source.put(&a, 40);
    kind.object_changed(a.clone(), 40).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    kind.object_changed(a.clone(), 41).await.unwrap();
    eventually_async(LIMIT, "change applied", || {
        let reg = reg.clone();
        let p = aref.path().clone();
        async move { summary(&reg, &p).await == "value=41" }
    })
    .await;
}

#[actix_rt::test]
async fn correlation_id_and_sender_follow_the_messages_a_request_causes() {
    let root = root();
    let source = Arc::new(MemSource::default());
    let (a, b) = (key("ns/a"), key("ns/b"));
    source.put(&a, 0);
    source.put(&b, 100);
    let effects = CounterEffects::new();
    let kind = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone())
                .effects(Arc::new(SharedEffects(effects.clone()))),
        )
        .unwrap();
    kind.object_changed(a.clone(), 0).await.unwrap();
    kind.object_changed(b.clone(), 100).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    let bref = kind.child(&b).await.unwrap().unwrap();
    *effects.target.lock().unwrap() = Some(bref.clone());

    let id = CorrelationId::new_random();
    with_correlation(id, aref.send(CounterEvent::Forward(4)))
        .await
        .unwrap();
    assert_eq!(summary(&root.registry(), bref.path()).await, "value=104");
    let seen = effects.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(aref.path().clone(), Some(id), Some(aref.path().clone()))]
    );

    let records = root.tap().recent(
        &TapFilter {
            correlation: Some(id),
            ..TapFilter::default()
        },
        10,
    );
    let got: Vec<(&str, Option<&str>, &str)> = records
        .iter()
        .map(|r| (&*r.receiver, r.sender.as_deref(), &*r.message_type))
        .collect();
    assert_eq!(
        got,
        [
            ("/test/counter/ns/b", Some("/test/counter/ns/a"), "Add"),
            ("/test/counter/ns/a", None, "Forward"),
        ]
    );
    // Without a correlation id in scope, none is invented.
    aref.send(CounterEvent::Add(1)).await.unwrap();
    let last = root.tap().recent(&TapFilter::default(), 1);
    assert_eq!(last[0].correlation, None);
}
