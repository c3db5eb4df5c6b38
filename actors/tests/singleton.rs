//! Singletons: pure logic tested without actix; the supervised actor restarted with backoff on
//! a manual clock after a kill or a panic, rebuilt from its snapshot each time, reachable
//! through one handle, in the registry and the tap, and failing to its parent past its
//! intensity.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use navarch_actors::{
    with_correlation, Backoff, CorrelationId, EscalationAction, HostError, Intensity, ManualClock,
    RestartPolicy, Role, Root, Sender, SingletonConfig, SingletonLogic, SingletonSpec, Status,
    SupervisorError, TapConfig, TapFilter,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn place(pod: &str, cpu: u32) -> PlacerEvent {
    PlacerEvent::Place {
        pod: pod.into(),
        cpu,
    }
}

#[test]
fn placer_logic_is_a_pure_function_of_state_and_event() {
    let logic = Placer::default();
    let mut state = logic.rebuild(vec![("a".into(), 2), ("b".into(), 4), ("c".into(), 4)]);
    let table = [
        // Most free cpu wins; ties go to the first name.
        (
            place("p1", 3),
            Placement::Bind {
                pod: "p1".into(),
                node: "b".into(),
            },
        ),
        (
            place("p2", 3),
            Placement::Bind {
                pod: "p2".into(),
                node: "c".into(),
            },
        ),
        (
            place("p3", 2),
            Placement::Bind {
                pod: "p3".into(),
                node: "a".into(),
            },
        ),
        (
            place("p4", 2),
            Placement::Unschedulable { pod: "p4".into() },
        ),
        (
            place("p5", 1),
            Placement::Bind {
                pod: "p5".into(),
                node: "b".into(),
            },
        ),
    ];
    for (event, want) in table {
        assert_eq!(logic.handle(&mut state, event).unwrap(), vec![want]);
    }
    assert_eq!(logic.summary(&state), "placed 4, free a=0 b=0 c=1");
    assert_eq!(logic.live.load(Ordering::SeqCst), 1);
    drop(state);
    assert_eq!(logic.live.load(Ordering::SeqCst), 0);
}

#[actix_rt::test]
async fn a_singleton_is_restarted_with_backoff_and_rebuilt_from_its_snapshot() {
    let clock = ManualClock::new();
    let root = Root::with_clock(path("/sim"), TapConfig::default(), clock.shared());
    let reg = root.registry();
    let nodes = MemNodes::with(&[("n1", 4)]);
    let placer = Placer::default();
    let (bindings, mut inbox) = Sender::<Placement>::channel("bindings");
    let config = SingletonConfig {
        policy: RestartPolicy {
            backoff: Backoff {
                initial: secs(5),
                max: secs(60),
                factor: 2,
            },
            intensity: Intensity {
                max_restarts: 2,
                within: secs(600),
            },
        },
        ..SingletonConfig::default()
    };
    let sched = root
        .singleton(
            SingletonSpec::new("scheduler", placer.clone(), nodes.clone())
                .effects(std::sync::Arc::new(PlacementEffects(bindings)))
                .config(config),
        )
        .unwrap();
    assert_eq!(sched.path().as_str(), "/sim/scheduler");

    // Actions go out through the effects with the request's correlation id.
    let id = CorrelationId::new_random();
    with_correlation(id, sched.send(place("web-1", 3)))
        .await
        .unwrap();
    let (binding, meta) = inbox.try_recv().unwrap();
    assert_eq!(
        binding,
        Placement::Bind {
            pod: "web-1".into(),
            node: "n1".into()
        }
    );
    assert_eq!(meta.correlation, Some(id));
    assert_eq!(meta.sender.as_ref(), Some(sched.path()));
    let info = reg.get(sched.path()).unwrap();
    assert_eq!(
        (info.role, info.status, info.supervisor.as_ref()),
        (Role::Singleton, Status::Running, Some(root.path()))
    );
    assert_eq!(summary(&reg, sched.path()).await, "placed 1, free n1=1");

    // Killed: restarted after 5 s on the clock, from the snapshot as it is then.
    *nodes.nodes.lock().unwrap() = vec![("n1".into(), 4), ("n2".into(), 2)];
    reg.kill(sched.path()).unwrap();
    eventually(LIMIT, "the restart is scheduled", || clock.sleepers() == 1).await;
    assert_eq!(reg.get(sched.path()).unwrap().status, Status::Restarting);
    assert!(matches!(
        sched.send(place("web-2", 1)).await,
        Err(HostError::Unavailable { .. })
    ));
    assert_eq!(clock.advance_to_next(), Some(secs(5)));
    eventually(LIMIT, "restarted after the kill", || {
        reg.get(sched.path())
            .is_some_and(|i| i.status == Status::Running && i.restarts == 1)
    })
    .await;
    assert_eq!(
        summary(&reg, sched.path()).await,
        "placed 0, free n1=4 n2=2"
    );
    assert_eq!(nodes.loads(), 2);
    assert_eq!(placer.live.load(Ordering::SeqCst), 1);

    // A panic: the same handle, twice the backoff.
    let err = sched.send(PlacerEvent::Panic).await.unwrap_err();
    assert!(matches!(err, HostError::Panicked { .. }), "{err:?}");
    eventually(LIMIT, "the second restart is scheduled", || {
        clock.sleepers() == 1
    })
    .await;
    assert_eq!(clock.advance_to_next(), Some(secs(10)));
    eventually(LIMIT, "restarted after the panic", || {
        reg.get(sched.path())
            .is_some_and(|i| i.status == Status::Running && i.restarts == 2)
    })
    .await;
    sched.send(place("web-3", 1)).await.unwrap();

    // The tap shows its messages and its life.
    let seen: Vec<String> = root
        .tap()
        .recent(
            &TapFilter {
                prefix: Some(sched.path().to_string()),
                ..TapFilter::default()
            },
            100,
        )
        .iter()
        .map(|r| r.message_type.to_string())
        .collect();
    assert_eq!(
        seen,
        [
            "Started",
            "Place",
            "ActorExited",
            "ActorRestarted",
            "Started",
            "Panic",
            "ActorExited",
            "ActorRestarted",
            "Started",
            "Place"
        ]
    );

    // Past its intensity it fails to the root, which leaves it failed.
    sched.send(PlacerEvent::Panic).await.unwrap_err();
    eventually(LIMIT, "the singleton failed", || {
        reg.get(sched.path())
            .is_some_and(|i| i.status == Status::Failed)
    })
    .await;
    assert_eq!(clock.sleepers(), 0);
    let esc = root.escalations();
    assert_eq!(esc.len(), 1);
    assert_eq!(
        (esc[0].action, esc[0].failures),
        (EscalationAction::SingletonFailed, 3)
    );
    assert_eq!(placer.live.load(Ordering::SeqCst), 0);
    assert!(!sched.is_running());
    assert!(matches!(
        sched.shutdown().await,
        Err(SupervisorError::Stopped { .. })
    ));
    // A failed singleton can be supervised again at its path.
    let again = root
        .singleton(SingletonSpec::new(
            "scheduler",
            Placer::default(),
            nodes.clone(),
        ))
        .unwrap();
    again.send(place("web-4", 1)).await.unwrap();
}

#[actix_rt::test]
async fn a_singleton_that_cannot_load_its_snapshot_keeps_retrying_within_its_intensity() {
    let clock = ManualClock::new();
    let root = Root::with_clock(path("/sim"), TapConfig::default(), clock.shared());
    let reg = root.registry();
    let nodes = MemNodes::with(&[("n1", 1)]);
    *nodes.failing.lock().unwrap() = true;
    let sched = root
        .singleton(SingletonSpec::new(
            "scheduler",
            Placer::default(),
            nodes.clone(),
        ))
        .unwrap();
    eventually(LIMIT, "a retry is scheduled", || clock.sleepers() == 1).await;
    let info = reg.get(sched.path()).unwrap();
    assert_eq!(info.status, Status::Restarting);
    assert!(info.last_error.unwrap().contains("nodes are unreachable"));
    *nodes.failing.lock().unwrap() = false;
    clock.advance_to_next();
    eventually(LIMIT, "running", || sched.is_running()).await;
    sched.send(place("p", 1)).await.unwrap();
    assert_eq!(nodes.loads(), 2);
}
