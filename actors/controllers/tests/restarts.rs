//! The controllers' actors killed on purpose, over an in-memory API: a ReplicaSet whose
//! actor is killed again and again while it scales never has more pods than it wants, and
//! still reaches its replicas; the scheduler restarted mid-flow binds every pod once; a
//! namespace's actor killed while it waits picks up from the caches and finalizes it; the
//! pod garbage collector killed during a node's quarantine still waits it out, marks the
//! node's pods failed and deletes them, keeps the terminated-pod threshold, and never
//! touches a pod recreated under a collected one's name.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use navarch_actors::{ActorPath, Root, Status};
use navarch_client::testing::FakeClient;
use navarch_client::Client;
use navarch_controllers::{ControlPlane, ControllerConfig};
use navarch_model::options::{ListOptions, Patch, WatchOptions, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_model::watch::EventType;
use serde_json::{json, Value};

mod common;
use common::{kind, start_with};

async fn start(fake: &Arc<FakeClient>) -> (Root, Arc<ControlPlane>) {
    start_with(fake, ControllerConfig::default()).await
}

async fn pods(fake: &FakeClient) -> Vec<Value> {
    fake.list(kind("", "pods"), Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn replica_set(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    })
}

/// Polls `cond` every 10 ms until it holds, or fails after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `f` every 10 ms until it gives a value, or fails after `within`.
async fn eventually_some<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_replica_set_killed_mid_scale_never_overshoots_and_converges() {
    let fake = Arc::new(FakeClient::new());
    let (root, _cp) = start(&fake).await;
    let rs_kind = kind("apps", "replicasets");
    fake.create(
        rs_kind,
        Some("default"),
        replica_set(40),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let actor = ActorPath::parse("/test/controllers/replicaset/default/web").unwrap();
    let mut kills = 0;
    let mut max_seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for target in [40, 7, 25] {
        if target != 40 {
            let patch = Patch {
                ty: PatchType::Merge,
                body: json!({"spec": {"replicas": target}}),
            };
            fake.patch(
                rs_kind,
                Some("default"),
                "web",
                None,
                patch,
                &WriteOptions::default(),
            )
            .await
            .unwrap();
        }
        loop {
            // Kill the actor as often as it comes back, while it works.
            if root.registry().kill(&actor).is_ok() {
                kills += 1;
            }
            let n = pods(&fake).await.len();
            max_seen = max_seen.max(n);
            assert!(n <= 40, "{n} pods for at most 40 replicas");
            if target == 7 {
                // Scaling down never goes below what is wanted.
                assert!(n >= 7, "{n} pods for 7 replicas");
            }
            if n == target {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} pods, want {target}"
            );
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    assert!(kills >= 3, "the actor was killed {kills} times");
    assert_eq!(max_seen, 40);
    // Left alone, it stays at its replicas and reports them.
    eventually(Duration::from_secs(10), "status.replicas = 25", || async {
        let rs = fake
            .get(rs_kind, Some("default"), "web", &Default::default())
            .await
            .unwrap();
        rs["status"]["replicas"] == 25
    })
    .await;
    assert_eq!(pods(&fake).await.len(), 25);
}

#[actix_rt::test]
async fn the_scheduler_binds_each_pod_once_across_restarts() {
    let fake = Arc::new(FakeClient::new());
    let (root, _cp) = start(&fake).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for i in 0..3 {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("n{i}")},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                // A fresh heartbeat: the node lifecycle controller leaves the node alone.
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": navarch_model::time::format_rfc3339(now)}]
            }
        });
        fake.create(kind("", "nodes"), None, node, &WriteOptions::default())
            .await
            .unwrap();
    }
    let scheduler = ActorPath::parse("/test/controllers/scheduler").unwrap();
    for i in 0..60 {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "100m"}}}]}
        });
        fake.create(
            kind("", "pods"),
            Some("default"),
            pod,
            &WriteOptions::default(),
        )
        .await
        .unwrap();
        if i % 7 == 0 {
            let _ = root.registry().kill(&scheduler);
        }
    }
    eventually(Duration::from_secs(20), "every pod bound", || async {
        pods(&fake)
            .await
            .iter()
            .all(|p| p["spec"]["nodeName"].is_string())
    })
    .await;
    // Spread over the nodes: each got a third, give or take.
    let placed = pods(&fake).await;
    let on: Vec<usize> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| {
            placed
                .iter()
                .filter(|p| p["spec"]["nodeName"] == *n)
                .count()
        })
        .collect();
    assert!(
        on.iter().all(|c| (15..=25).contains(c)),
        "pods per node: {on:?}"
    );
}

#[actix_rt::test]
async fn the_collector_deletes_what_a_dead_owner_left_behind() {
    let fake = Arc::new(FakeClient::new());
    // As a master that died between deleting a Deployment and its ReplicaSet would leave
    // it: the ReplicaSet names an owner that is gone; a pod names it and a live owner.
    let live = fake
        .create(
            kind("apps", "deployments"),
            Some("default"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "live", "namespace": "default"},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "none"}},
                            "template": {"metadata": {"labels": {"app": "none"}},
                                         "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
            &WriteOptions::default(),
        )
        .await
        .unwrap()
        .object;
    let gone_ref = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone",
                          "uid": "00000000-dead", "controller": true});
    let live_ref = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "live",
                          "uid": live["metadata"]["uid"]});
    let mut orphaned = replica_set(0);
    orphaned["metadata"]["name"] = json!("left-behind");
    orphaned["metadata"]["ownerReferences"] = json!([gone_ref]);
    fake.create(
        kind("apps", "replicasets"),
        Some("default"),
        orphaned,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "shared", "namespace": "default",
                     "ownerReferences": [gone_ref, live_ref]},
        "spec": {"containers": [{"name": "c", "image": "x"}]}});
    fake.create(
        kind("", "pods"),
        Some("default"),
        pod,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let (_root, _cp) = start(&fake).await;
    eventually(
        Duration::from_secs(10),
        "the dangling ReplicaSet deleted",
        || async {
            fake.get(
                kind("apps", "replicasets"),
                Some("default"),
                "left-behind",
                &Default::default(),
            )
            .await
            .is_err_and(|e| e.is_not_found())
        },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the gone owner dropped from the pod",
        || async {
            let p = fake
                .get(
                    kind("", "pods"),
                    Some("default"),
                    "shared",
                    &Default::default(),
                )
                .await
                .unwrap();
            p["metadata"]["ownerReferences"].as_array().map(Vec::len) == Some(1)
        },
    )
    .await;
}

#[actix_rt::test]
async fn a_namespace_is_emptied_and_finalized_by_a_restarted_controller() {
    let fake = Arc::new(FakeClient::new());
    let (root, _cp) = start(&fake).await;
    let (namespaces, leases) = (
        kind("", "namespaces"),
        kind("coordination.k8s.io", "leases"),
    );
    let w = WriteOptions::default();
    fake.create(
        namespaces,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        &w,
    )
    .await
    .unwrap();
    // Content no shared cache holds (Leases outside kube-node-lease): nothing but a pass
    // of the controller sees it change.
    for name in ["a", "b"] {
        fake.create(
            leases,
            Some("shop"),
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": name}, "spec": {}}),
            &w,
        )
        .await
        .unwrap();
    }
    // One object held by a finalizer: the namespace waits for it.
    fake.create(
        leases,
        Some("shop"),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
               "spec": {}}),
        &w,
    )
    .await
    .unwrap();
    fake.delete(namespaces, None, "shop", &Default::default())
        .await
        .unwrap();
    let ns = |fake: Arc<FakeClient>| async move {
        fake.get(namespaces, None, "shop", &Default::default())
            .await
    };
    eventually(
        Duration::from_secs(10),
        "the finalizers remaining reported",
        || async {
            ns(fake.clone()).await.is_ok_and(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "NamespaceFinalizersRemaining"
                            && c["status"] == "True"
                            && c["message"]
                                == "Some finalizers are remaining: example.com/hold in 1 resource instances"
                    })
                })
            })
        },
    )
    .await;
    let left = fake
        .list(leases, Some("shop"), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(
        left.items.len(),
        1,
        "only the held Lease is left: {:?}",
        left.items
    );
    let held = fake
        .get(leases, Some("shop"), "held", &Default::default())
        .await
        .unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(
        ns(fake.clone()).await.unwrap()["spec"]["finalizers"],
        json!(["kubernetes"])
    );
    // The finalizer goes; nothing tells the controller, so it would look again after
    // Kubernetes' 15 s estimate. Its actor killed, the next
    // incarnation starts with a pass, sees the namespace empty and finalizes it.
    fake.patch(
        leases,
        Some("shop"),
        "held",
        None,
        Patch {
            ty: PatchType::Merge,
            body: json!({"metadata": {"finalizers": null}}),
        },
        &w,
    )
    .await
    .unwrap();
    let actor = ActorPath::parse("/test/controllers/namespace/shop").unwrap();
    root.registry().kill(&actor).unwrap();
    eventually(Duration::from_secs(10), "the namespace gone", || async {
        ns(fake.clone()).await.is_err_and(|e| e.is_not_found())
    })
    .await;
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn bound_pod(name: &str, node: Option<&str>, phase: &str) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase}});
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p
}

#[actix_rt::test]
async fn the_pod_collector_killed_in_a_quarantine_waits_it_out_and_collects_once() {
    let fake = Arc::new(FakeClient::new());
    let w = WriteOptions::default();
    let pods_kind = kind("", "pods");
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n0"},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True",
                       "lastHeartbeatTime": navarch_model::time::format_rfc3339(unix_now())}]}});
    fake.create(kind("", "nodes"), None, node, &w)
        .await
        .unwrap();
    // Two pods of a node that is gone, one on the node that lives, five terminated ones
    // (three may stay), and a terminating pod bound to no node.
    let mut setup = vec![
        bound_pod("orphan-a", Some("gone"), "Running"),
        bound_pod("orphan-b", Some("gone"), "Running"),
        bound_pod("kept", Some("n0"), "Running"),
    ];
    for i in 0..5 {
        setup.push(bound_pod(&format!("done-{i}"), Some("n0"), "Succeeded"));
    }
    // Held by a finalizer: once marked failed it counts among the terminated pods (as in
    // Kubernetes), the first of them by name, so the threshold picks it and keeps the rest.
    let mut ending = bound_pod("a-ending", None, "Pending");
    ending["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    ending["metadata"]["finalizers"] = json!(["example.com/hold"]);
    setup.push(ending);
    for p in setup {
        fake.create(pods_kind, Some("default"), p, &w)
            .await
            .unwrap();
    }
    // Every pod event from here on.
    let opts = WatchOptions {
        resource_version: Some(fake.revision().to_string()),
        ..WatchOptions::default()
    };
    let mut watch = fake.watch(pods_kind, None, &opts).await.unwrap();
    let seen: Arc<Mutex<Vec<(EventType, Value)>>> = Arc::default();
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(Ok(e)) = watch.next().await {
                seen.lock().unwrap().push((e.event_type, e.object));
            }
        })
    };
    let quarantine = Duration::from_secs(2);
    let config = ControllerConfig {
        pod_gc_quarantine: quarantine,
        terminated_pod_gc_threshold: 3,
        pod_gc_check_period: Duration::from_millis(300),
        ..ControllerConfig::default()
    };
    let (root, _cp) = start_with(&fake, config).await;
    let collector = ActorPath::parse("/test/controllers/pod-garbage-collector").unwrap();
    let names = |fake: Arc<FakeClient>| async move {
        let mut n: Vec<String> = fake
            .list(pods_kind, Some("default"), &ListOptions::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    // Killed again and again: each incarnation starts the quarantine over.
    let mut kills = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if root.registry().kill(&collector).is_ok() {
            kills += 1;
        }
    }
    let last_kill = tokio::time::Instant::now();
    assert!(kills >= 3, "the collector was killed {kills} times");
    let left = names(fake.clone()).await;
    assert!(
        left.contains(&"orphan-a".to_string()) && left.contains(&"orphan-b".to_string()),
        "the orphans wait for their quarantine: {left:?}"
    );
    eventually(Duration::from_secs(15), "the orphans collected", || async {
        !names(fake.clone())
            .await
            .iter()
            .any(|n| n.starts_with("orphan-"))
    })
    .await;
    // Whole seconds: at least the quarantine less one.
    assert!(
        last_kill.elapsed() >= quarantine - Duration::from_secs(1),
        "collected {:?} after the last restart",
        last_kill.elapsed()
    );
    // The two first terminated pods by age (all the same here), then name, went; the
    // finalizer holds the unscheduled one, marked failed.
    assert_eq!(
        names(fake.clone()).await,
        ["a-ending", "done-2", "done-3", "done-4", "kept"]
    );
    let ending = fake
        .get(pods_kind, Some("default"), "a-ending", &Default::default())
        .await
        .unwrap();
    assert_eq!(ending["status"]["phase"], "Failed");

    // A pod recreated under an orphan's name, on the node that lives, is left alone by
    // the next incarnations, and the threshold holds.
    fake.create(
        pods_kind,
        Some("default"),
        bound_pod("orphan-a", Some("n0"), "Running"),
        &w,
    )
    .await
    .unwrap();
    let before = root.registry().get(&collector).unwrap().incarnation;
    root.registry().kill(&collector).unwrap();
    let info = || root.registry().get(&collector).unwrap();
    let handled = eventually_some(Duration::from_secs(10), "the collector back", || async {
        let i = info();
        (i.incarnation > before && i.status == Status::Running).then_some(i.handled)
    })
    .await;
    // A few periodic passes of the new incarnation.
    eventually(Duration::from_secs(10), "three more passes", || async {
        info().handled >= handled + 3
    })
    .await;
    assert_eq!(
        names(fake.clone()).await,
        ["a-ending", "done-2", "done-3", "done-4", "kept", "orphan-a"]
    );
    recorder.abort();
    // Each orphan was marked failed, with the DisruptionTarget condition, then deleted, once.
    let seen = seen.lock().unwrap();
    for orphan in ["orphan-a", "orphan-b"] {
        // Up to its deletion (`orphan-a` was created again afterwards).
        let mut events: Vec<(EventType, &Value)> = Vec::new();
        for (t, p) in seen.iter().filter(|(_, p)| p["metadata"]["name"] == orphan) {
            events.push((*t, p));
            if *t == EventType::Deleted {
                break;
            }
        }
        let types: Vec<EventType> = events.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, [EventType::Modified, EventType::Deleted], "{orphan}");
        let marked = events[0].1;
        assert_eq!(marked["status"]["phase"], "Failed");
        let c = &marked["status"]["conditions"][0];
        assert_eq!(
            (&c["type"], &c["status"], &c["reason"]),
            (
                &json!("DisruptionTarget"),
                &json!("True"),
                &json!("DeletionByPodGC")
            )
        );
    }
    let deleted = |name: &str| {
        seen.iter()
            .filter(|(t, p)| *t == EventType::Deleted && p["metadata"]["name"] == name)
            .count()
    };
    for name in ["orphan-a", "orphan-b", "done-0", "done-1"] {
        assert_eq!(deleted(name), 1, "{name} deleted once");
    }
    for name in ["done-2", "done-3", "done-4", "kept", "a-ending"] {
        assert_eq!(deleted(name), 0, "{name} kept");
    }
}
