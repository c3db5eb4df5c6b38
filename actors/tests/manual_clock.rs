//! A whole tree on a manual clock: restart backoff and restart-intensity windows follow the
//! clock the test moves, not real time, and records are dated by it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use navarch_actors::{
    Backoff, Clock, Escalation, EscalationAction, Intensity, KindConfig, KindSpec, ManualClock,
    RestartPolicy, Root, Status, TapConfig, TapFilter,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn manual_root(clock: &ManualClock) -> Root {
    Root::with_clock(path("/sim"), TapConfig::default(), clock.shared())
}

fn config(backoff: Backoff, max_restarts: u32, within: Duration) -> KindConfig {
    KindConfig {
        child_policy: RestartPolicy {
            backoff,
            intensity: Intensity {
                max_restarts,
                within,
            },
        },
        escalation: Escalation::ParkChild,
        ..KindConfig::default()
    }
}

#[actix_rt::test]
async fn restart_backoff_waits_for_the_manual_clock() {
    let clock = ManualClock::new();
    let wall0 = clock.wall();
    let root = manual_root(&clock);
    let source = Arc::new(MemSource::default());
    let a = key("ns/a");
    source.put(&a, 10);
    let backoff = Backoff {
        initial: secs(1),
        max: secs(60),
        factor: 2,
    };
    let kind = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone()).config(config(
                backoff,
                10,
                secs(3600),
            )),
        )
        .unwrap();
    kind.object_changed(a.clone(), 10).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    aref.send(CounterEvent::Add(1)).await.unwrap();
    let reg = root.registry();
    let info = reg.get(aref.path()).unwrap();
    assert_eq!(
        info.started_at, wall0,
        "start times come from the manual clock"
    );

    // A failure schedules the restart one backoff ahead on the manual clock, and nothing else.
    let t0 = clock.now();
    aref.send(CounterEvent::Fail).await.unwrap_err();
    eventually(LIMIT, "the restart is scheduled", || {
        clock.deadlines() == [t0 + secs(1)]
    })
    .await;
    assert_eq!(clock.advance(Duration::from_millis(999)), 0);
    // A round trip through the supervisor: whatever it had queued has been handled.
    assert!(kind.child(&a).await.unwrap().is_some());
    let info = reg.get(aref.path()).unwrap();
    assert_eq!((info.status, info.restarts), (Status::Restarting, 0));
    assert_eq!(source.loads(&a), 1);

    assert_eq!(clock.advance(Duration::from_millis(1)), 1);
    eventually(LIMIT, "a restarted", || {
        reg.get(aref.path())
            .is_some_and(|i| i.status == Status::Running && i.restarts == 1)
    })
    .await;
    assert_eq!(source.loads(&a), 2);
    assert_eq!(reg.get(aref.path()).unwrap().started_at, wall0 + secs(1));

    // The second failure in the window waits twice as long.
    let t1 = clock.now();
    aref.send(CounterEvent::Fail).await.unwrap_err();
    eventually(LIMIT, "the second restart is scheduled", || {
        clock.deadlines() == [t1 + secs(2)]
    })
    .await;
    clock.advance(secs(2));
    eventually(LIMIT, "a restarted twice", || {
        reg.get(aref.path())
            .is_some_and(|i| i.status == Status::Running && i.restarts == 2)
    })
    .await;
    assert_eq!(summary(&reg, aref.path()).await, "value=10");

    // The tap dates lifecycle records by the manual clock.
    let restarted = root.tap().recent(
        &TapFilter {
            message_type: Some("ActorRestarted".into()),
            ..TapFilter::default()
        },
        10,
    );
    let times: Vec<_> = restarted.iter().map(|r| r.time).collect();
    assert_eq!(times, [wall0 + secs(1), wall0 + secs(3)]);
    let handled = root.tap().recent(
        &TapFilter {
            message_type: Some("Add".into()),
            ..TapFilter::default()
        },
        10,
    );
    assert_eq!(handled[0].time, wall0);
    assert_eq!(handled[0].handling, Duration::ZERO);
}

#[actix_rt::test]
async fn restart_intensity_counts_failures_within_the_manual_clocks_window() {
    let clock = ManualClock::new();
    let root = manual_root(&clock);
    let source = Arc::new(MemSource::default());
    let a = key("ns/a");
    source.put(&a, 1);
    let flat = Backoff {
        initial: secs(1),
        max: secs(1),
        factor: 1,
    };
    // At most 2 restarts within 10 s.
    let kind = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone()).config(config(flat, 2, secs(10))),
        )
        .unwrap();
    kind.object_changed(a.clone(), 1).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    let reg = root.registry();

    let fail_and_restart = |expected_restarts: u32| {
        let (aref, reg, clock) = (aref.clone(), reg.clone(), clock.clone());
        async move {
            aref.send(CounterEvent::Fail).await.unwrap_err();
            eventually(LIMIT, "restart scheduled", || clock.sleepers() == 1).await;
            clock.advance(secs(1));
            eventually(LIMIT, "restarted", || {
                reg.get(aref.path())
                    .is_some_and(|i| i.status == Status::Running && i.restarts == expected_restarts)
            })
            .await;
        }
    };
    // Two failures 21 s apart never share a window...
    fail_and_restart(1).await;
    clock.advance(secs(20));
    fail_and_restart(2).await;
    // ...so two more within the next few seconds still fit: 3 restarts, 2 in the window.
    fail_and_restart(3).await;
    assert!(root.escalations().is_empty());

    // The third failure inside 10 s escalates: the child is parked.
    aref.send(CounterEvent::Fail).await.unwrap_err();
    eventually(LIMIT, "a parked", || {
        reg.get(aref.path())
            .is_some_and(|i| i.status == Status::Failed)
    })
    .await;
    assert_eq!(clock.sleepers(), 0);
    let esc = root.escalations();
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].action, EscalationAction::ChildParked);
    assert_eq!(esc[0].failures, 3);
    assert_eq!(esc[0].time, clock.wall());
    assert_eq!(esc[0].parent, *root.path());
}

#[actix_rt::test]
async fn a_kind_that_cannot_list_its_source_retries_on_the_manual_clock_then_gives_up() {
    let clock = ManualClock::new();
    let root = manual_root(&clock);
    let source = Arc::new(MemSource::listable());
    source.put(&key("ns/a"), 1);
    *source.list_failing.lock().unwrap() = true;
    let policy = RestartPolicy {
        backoff: Backoff {
            initial: secs(5),
            max: secs(5),
            factor: 1,
        },
        intensity: Intensity {
            max_restarts: 1,
            within: secs(60),
        },
    };
    let kind = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone()).config(KindConfig {
                supervisor_policy: policy,
                ..KindConfig::default()
            }),
        )
        .unwrap();
    let reg = root.registry();
    eventually(LIMIT, "a retry is scheduled", || clock.sleepers() == 1).await;
    assert_eq!(source.lists(), 1);
    let info = reg.get(kind.path()).unwrap();
    assert_eq!(info.status, Status::Starting);
    assert!(info.last_error.unwrap().contains("unreachable"));

    clock.advance(secs(5));
    eventually(LIMIT, "the supervisor gives up", || {
        reg.get(kind.path())
            .is_some_and(|i| i.status == Status::Failed)
    })
    .await;
    assert_eq!(source.lists(), 2);
    eventually(LIMIT, "it stopped", || !kind.is_running()).await;
    assert!(matches!(
        kind.object_changed(key("ns/a"), 1).await,
        Err(navarch_actors::SupervisorError::Stopped { .. })
    ));

    // Listing works: a new supervisor of the kind starts an actor per listed key unfed.
    *source.list_failing.lock().unwrap() = false;
    let again = root
        .supervise(KindSpec::new("counter", Counter, source.clone()))
        .unwrap();
    eventually_async(LIMIT, "a started from the listing", || {
        let again = again.clone();
        async move { again.child(&key("ns/a")).await.unwrap().is_some() }
    })
    .await;
}
