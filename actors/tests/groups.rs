//! Groups (supervisors of supervisors): stopping and starting every actor under a group
//! together, the tree in the registry, and Erlang-like restart and escalation of failed child
//! supervisors, all on a manual clock.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use navarch_actors::{
    ActorPath, Backoff, Clock, Escalation, EscalationAction, GroupConfig, GroupSpec, HostError,
    Intensity, KindConfig, KindSpec, ManualClock, RestartPolicy, Role, Root, SingletonSpec, Status,
    SupervisorError, TapConfig,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn policy(initial: Duration, max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        backoff: Backoff {
            initial,
            max: secs(60),
            factor: 2,
        },
        intensity: Intensity {
            max_restarts,
            within: secs(3600),
        },
    }
}

/// A kind that gives up at the first failure of any child.
fn brittle() -> KindConfig {
    KindConfig {
        child_policy: policy(secs(1), 0),
        escalation: Escalation::RestartKind,
        supervisor_policy: policy(secs(1), 0),
        ..KindConfig::default()
    }
}

fn statuses(root: &Root, prefix: &ActorPath) -> Vec<(String, Role, Status)> {
    root.registry()
        .list(prefix)
        .into_iter()
        .map(|i| (i.path.to_string(), i.role, i.status))
        .collect()
}

#[actix_rt::test]
async fn stopping_a_group_stops_every_actor_under_it_and_starting_rebuilds_them() {
    let clock = ManualClock::new();
    let root = Root::with_clock(path("/sim"), TapConfig::default(), clock.shared());
    let reg = root.registry();
    let deployments = Arc::new(MemSource::listable());
    let (a, b) = (key("ns/a"), key("ns/b"));
    deployments.put(&a, 1);
    deployments.put(&b, 2);
    let nodes_source = Arc::new(MemSource::listable());
    nodes_source.put(&key("n1"), 0);
    let tracked = Tracked::default();
    let placer = Placer::default();
    let snapshot = MemNodes::with(&[("n1", 4)]);

    let cm = root
        .group(GroupSpec::new("controllers").kind("controller-manager"))
        .unwrap();
    let deps = cm
        .supervise(KindSpec::new(
            "deployment",
            tracked.clone(),
            deployments.clone(),
        ))
        .await
        .unwrap();
    let sched = cm
        .singleton(SingletonSpec::new(
            "scheduler",
            placer.clone(),
            snapshot.clone(),
        ))
        .await
        .unwrap();
    let inner = cm.group(GroupSpec::new("nodes")).await.unwrap();
    let nodes = inner
        .supervise(KindSpec::new("node", tracked.clone(), nodes_source.clone()))
        .await
        .unwrap();
    // The kinds are up: their sources were listed, no feeding needed.
    let aref = deps.child(&a).await.unwrap().unwrap();
    assert!(nodes.child(&key("n1")).await.unwrap().is_some());
    aref.send(CounterEvent::Add(5)).await.unwrap();
    sched
        .send(PlacerEvent::Place {
            pod: "web-1".into(),
            cpu: 1,
        })
        .await
        .unwrap();
    let cm_path = cm.path().clone();
    eventually(LIMIT, "everything runs", || {
        statuses(&root, &cm_path)
            .iter()
            .all(|(_, _, s)| *s == Status::Running)
    })
    .await;
    assert_eq!(tracked.live.load(Ordering::SeqCst), 3);
    assert_eq!(placer.live.load(Ordering::SeqCst), 1);

    // The registry shows the tree: each entry names its supervisor.
    let tree: Vec<(String, Role, Option<String>)> = reg
        .list(&root.path().clone())
        .into_iter()
        .map(|i| {
            (
                i.path.to_string(),
                i.role,
                i.supervisor.map(|s| s.to_string()),
            )
        })
        .collect();
    let want: Vec<(&str, Role, Option<&str>)> = vec![
        ("/sim", Role::Root, None),
        ("/sim/controllers", Role::Group, Some("/sim")),
        (
            "/sim/controllers/deployment",
            Role::Supervisor,
            Some("/sim/controllers"),
        ),
        (
            "/sim/controllers/deployment/ns/a",
            Role::Object,
            Some("/sim/controllers/deployment"),
        ),
        (
            "/sim/controllers/deployment/ns/b",
            Role::Object,
            Some("/sim/controllers/deployment"),
        ),
        (
            "/sim/controllers/nodes",
            Role::Group,
            Some("/sim/controllers"),
        ),
        (
            "/sim/controllers/nodes/node",
            Role::Supervisor,
            Some("/sim/controllers/nodes"),
        ),
        (
            "/sim/controllers/nodes/node/n1",
            Role::Object,
            Some("/sim/controllers/nodes/node"),
        ),
        (
            "/sim/controllers/scheduler",
            Role::Singleton,
            Some("/sim/controllers"),
        ),
    ];
    let want: Vec<(String, Role, Option<String>)> = want
        .into_iter()
        .map(|(p, r, s)| (p.to_owned(), r, s.map(str::to_owned)))
        .collect();
    assert_eq!(tree, want);
    let children: Vec<String> = reg
        .children(&cm_path)
        .into_iter()
        .map(|i| i.path.to_string())
        .collect();
    assert_eq!(
        children,
        [
            "/sim/controllers/deployment",
            "/sim/controllers/nodes",
            "/sim/controllers/scheduler"
        ]
    );
    assert_eq!(
        reg.get(&cm_path).unwrap().kind.as_ref(),
        "controller-manager"
    );

    // Stop: once awaited, every actor under the group has ended.
    cm.stop_children().await.unwrap();
    assert_eq!(tracked.live.load(Ordering::SeqCst), 0);
    assert_eq!(placer.live.load(Ordering::SeqCst), 0);
    assert_eq!(
        statuses(&root, &cm_path),
        [
            ("/sim/controllers".to_owned(), Role::Group, Status::Running),
            (
                "/sim/controllers/deployment".to_owned(),
                Role::Supervisor,
                Status::Stopped
            ),
            (
                "/sim/controllers/nodes".to_owned(),
                Role::Group,
                Status::Stopped
            ),
            (
                "/sim/controllers/nodes/node".to_owned(),
                Role::Supervisor,
                Status::Stopped
            ),
            (
                "/sim/controllers/scheduler".to_owned(),
                Role::Singleton,
                Status::Stopped
            ),
        ]
    );
    assert!(cm.is_running() && !cm.children_wanted());
    assert!(!deps.is_running() && !inner.is_running() && !nodes.is_running());
    assert!(matches!(
        aref.send(CounterEvent::Add(1)).await,
        Err(HostError::Unavailable { .. })
    ));
    assert!(matches!(
        sched.send(PlacerEvent::Panic).await,
        Err(HostError::Unavailable { .. })
    ));
    assert!(matches!(
        deps.object_changed(a.clone(), 1).await,
        Err(SupervisorError::Unavailable { .. })
    ));
    // Idempotent.
    cm.stop_children().await.unwrap();
    assert_eq!(reg.list(&cm_path).len(), 5);

    // The store moves on while the group is stopped.
    deployments.put(&a, 100);
    let c = key("ns/c");
    deployments.put(&c, 3);
    *snapshot.nodes.lock().unwrap() = vec![("n1".into(), 4), ("n2".into(), 8)];

    // Start: every child is rebuilt from its sources; old handles reach the new actors.
    cm.start_children().await.unwrap();
    assert!(cm.children_wanted() && deps.is_running() && nodes.is_running());
    assert!(deps.child(&c).await.unwrap().is_some());
    aref.send(CounterEvent::Add(1)).await.unwrap();
    assert_eq!(summary(&reg, aref.path()).await, "value=101");
    sched
        .send(PlacerEvent::Place {
            pod: "web-2".into(),
            cpu: 2,
        })
        .await
        .unwrap();
    assert_eq!(
        summary(&reg, sched.path()).await,
        "placed 1, free n1=4 n2=6"
    );
    eventually(LIMIT, "everything runs again", || {
        statuses(&root, &cm_path)
            .iter()
            .all(|(_, _, s)| *s == Status::Running)
    })
    .await;
    assert_eq!(tracked.live.load(Ordering::SeqCst), 4);
    assert_eq!(placer.live.load(Ordering::SeqCst), 1);
    // A stop and a start are not restarts.
    assert!(reg.list(&cm_path).iter().all(|i| i.restarts == 0));
    assert_eq!(reg.get(aref.path()).unwrap().incarnation, 2);

    // Idempotent: a second start touches nothing.
    let loads = (deployments.loads(&a), deployments.lists(), snapshot.loads());
    cm.start_children().await.unwrap();
    assert_eq!(
        (deployments.loads(&a), deployments.lists(), snapshot.loads()),
        loads
    );

    // Shutting down a child removes it from the group for good.
    inner.shutdown().await.unwrap();
    assert_eq!(tracked.live.load(Ordering::SeqCst), 3);
    assert!(reg.list(inner.path()).is_empty());
    cm.stop_children().await.unwrap();
    cm.start_children().await.unwrap();
    assert!(reg.list(inner.path()).is_empty());
    assert!(matches!(
        inner.start_children().await,
        Err(SupervisorError::Stopped { .. })
    ));

    // Paths are unique within the tree.
    assert!(matches!(
        cm.supervise(KindSpec::new("deployment", Counter, deployments.clone()))
            .await,
        Err(SupervisorError::Duplicate { .. })
    ));
    assert_eq!(clock.sleepers(), 0, "nothing waited on the clock");
}

#[actix_rt::test]
async fn a_child_added_while_the_group_is_stopped_starts_with_the_others() {
    let root = Root::new(path("/m"), TapConfig::default());
    let source = Arc::new(MemSource::listable());
    source.put(&key("ns/a"), 7);
    let cm = root.group(GroupSpec::new("controllers")).unwrap();
    cm.stop_children().await.unwrap();
    let kind = cm
        .supervise(KindSpec::new("counter", Counter, source.clone()))
        .await
        .unwrap();
    assert_eq!(
        root.registry().get(kind.path()).unwrap().status,
        Status::Stopped
    );
    assert!(!kind.is_running());
    cm.start_children().await.unwrap();
    let a = kind.child(&key("ns/a")).await.unwrap().unwrap();
    a.send(CounterEvent::Add(1)).await.unwrap();
    assert_eq!(summary(&root.registry(), a.path()).await, "value=8");
}

#[actix_rt::test]
async fn a_failed_child_supervisor_is_restarted_with_backoff_until_the_group_gives_up() {
    let clock = ManualClock::new();
    let root = Root::with_clock(path("/sim"), TapConfig::default(), clock.shared());
    let reg = root.registry();
    let cm = root
        .group(GroupSpec::new("cm").config(GroupConfig {
            child_policy: policy(secs(10), 1),
        }))
        .unwrap();
    let steady_source = Arc::new(MemSource::listable());
    steady_source.put(&key("ns/ok"), 1);
    let tracked = Tracked::default();
    let steady = cm
        .supervise(KindSpec::new(
            "steady",
            tracked.clone(),
            steady_source.clone(),
        ))
        .await
        .unwrap();
    let placer = Placer::default();
    let sched = cm
        .singleton(SingletonSpec::new(
            "scheduler",
            placer.clone(),
            MemNodes::with(&[("n1", 1)]),
        ))
        .await
        .unwrap();
    let poisoned = Arc::new(MemSource::listable());
    poisoned.put(&key("ns/bad"), -1);
    let flaky = cm
        .supervise(KindSpec::new("flaky", Counter, poisoned.clone()).config(brittle()))
        .await
        .unwrap();

    // The kind gives up at once; the group restarts it one backoff later on the clock.
    let t0 = clock.now();
    eventually(LIMIT, "the group schedules a restart of flaky", || {
        clock.deadlines() == [t0 + secs(10)]
    })
    .await;
    let info = reg.get(flaky.path()).unwrap();
    assert_eq!((info.status, info.restarts), (Status::Restarting, 0));
    assert!(info.last_error.unwrap().contains("poisoned"));
    let esc = root.escalations();
    assert_eq!(esc.len(), 1);
    assert_eq!(
        (esc[0].action, &esc[0].parent),
        (EscalationAction::KindFailed, cm.path())
    );
    // Handled by the group: not an error of the root's.
    assert!(reg.get(root.path()).unwrap().last_error.is_none());
    // Its siblings never noticed.
    let ok = steady.child(&key("ns/ok")).await.unwrap().unwrap();
    ok.send(CounterEvent::Add(1)).await.unwrap();
    sched
        .send(PlacerEvent::Place {
            pod: "p".into(),
            cpu: 1,
        })
        .await
        .unwrap();

    // Restarted once (fresh incarnation, listing again); it fails again, twice within the
    // group's window of one restart: the group gives up and stops everything under it.
    clock.advance(secs(10));
    eventually(LIMIT, "the group gives up", || {
        reg.get(cm.path())
            .is_some_and(|i| i.status == Status::Failed)
    })
    .await;
    eventually(LIMIT, "the group stopped", || !cm.is_running()).await;
    assert_eq!(reg.get(flaky.path()).unwrap().restarts, 1);
    assert_eq!(poisoned.lists(), 2);
    let actions: Vec<_> = root.escalations().iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            EscalationAction::KindFailed,
            EscalationAction::KindFailed,
            EscalationAction::GroupFailed
        ]
    );
    let last = root.escalations().pop().unwrap();
    assert_eq!(
        (&last.child, &last.supervisor, &last.parent),
        (flaky.path(), cm.path(), root.path())
    );
    assert!(reg.get(root.path()).unwrap().last_error.is_some());
    assert_eq!(tracked.live.load(Ordering::SeqCst), 0);
    assert_eq!(placer.live.load(Ordering::SeqCst), 0);
    for p in [steady.path(), sched.path()] {
        assert_eq!(reg.get(p).unwrap().status, Status::Stopped, "{p}");
    }
    assert!(matches!(
        cm.start_children().await,
        Err(SupervisorError::Stopped { .. })
    ));
    assert!(matches!(
        ok.send(CounterEvent::Add(1)).await,
        Err(HostError::Unavailable { .. })
    ));
}

#[actix_rt::test]
async fn a_nested_group_that_fails_is_restarted_by_its_parent_with_its_children() {
    let clock = ManualClock::new();
    let root = Root::with_clock(path("/sim"), TapConfig::default(), clock.shared());
    let reg = root.registry();
    let outer = root
        .group(GroupSpec::new("cm").config(GroupConfig {
            child_policy: policy(secs(30), 3),
        }))
        .unwrap();
    let inner = outer
        .group(GroupSpec::new("inner").config(GroupConfig {
            child_policy: policy(secs(1), 0),
        }))
        .await
        .unwrap();
    let source = Arc::new(MemSource::listable());
    source.put(&key("ns/x"), -1);
    let kind = inner
        .supervise(KindSpec::new("flaky", Counter, source.clone()).config(brittle()))
        .await
        .unwrap();

    // flaky gives up; inner (no restart allowed) gives up; outer restarts inner in 30 s.
    let t0 = clock.now();
    eventually(LIMIT, "outer schedules a restart of inner", || {
        clock.deadlines() == [t0 + secs(30)]
    })
    .await;
    assert_eq!(reg.get(inner.path()).unwrap().status, Status::Restarting);
    assert_eq!(reg.get(kind.path()).unwrap().status, Status::Failed);
    let esc = root.escalations();
    let got: Vec<_> = esc
        .iter()
        .map(|e| (e.action, e.parent.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (EscalationAction::KindFailed, "/sim/cm/inner".to_owned()),
            (EscalationAction::GroupFailed, "/sim/cm".to_owned()),
        ]
    );
    assert!(matches!(
        kind.object_changed(key("ns/x"), 1).await,
        Err(SupervisorError::Unavailable { .. })
    ));

    // The object is repaired; inner's new incarnation starts its kind again from its source.
    source.put(&key("ns/x"), 1);
    clock.advance(secs(30));
    eventually_async(LIMIT, "x runs again", || {
        let kind = kind.clone();
        let reg = reg.clone();
        async move {
            match kind.child(&key("ns/x")).await {
                Ok(Some(x)) => reg
                    .get(x.path())
                    .is_some_and(|i| i.status == Status::Running),
                _ => false,
            }
        }
    })
    .await;
    let info = reg.get(inner.path()).unwrap();
    assert_eq!(
        (info.status, info.restarts, info.incarnation),
        (Status::Running, 1, 2)
    );
    assert_eq!(reg.get(kind.path()).unwrap().status, Status::Running);
    assert_eq!(reg.get(outer.path()).unwrap().status, Status::Running);
    assert!(reg.get(root.path()).unwrap().last_error.is_none());
}
