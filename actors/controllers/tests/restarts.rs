//! The controllers' actors killed on purpose, over an in-memory API: a ReplicaSet whose
//! actor is killed again and again while it scales never has more pods than it wants, and
//! still reaches its replicas; the scheduler restarted mid-flow binds every pod once; a
//! namespace's actor killed while it waits picks up from the caches and finalizes it.

use std::sync::Arc;
use std::time::Duration;

use navarch_actors::{ActorPath, Root, TapConfig};
use navarch_client::testing::FakeClient;
use navarch_client::{Client, SharedCaches};
use navarch_controllers::{Clients, ControlPlane, ControllerConfig};
use navarch_model::identity::Component;
use navarch_model::options::{ListOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::{json, Value};

struct Fake(Arc<FakeClient>);

impl Clients for Fake {
    fn client(&self, _: &Component) -> Arc<dyn Client> {
        self.0.clone()
    }
}

fn kind(group: &str, plural: &str) -> &'static navarch_model::kinds::Kind {
    navarch_client::kind(group, "v1", plural)
}

async fn start(fake: &Arc<FakeClient>) -> (Root, Arc<ControlPlane>) {
    let root = Root::new(ActorPath::parse("/test").unwrap(), TapConfig::default());
    let f = fake.clone();
    let caches = Arc::new(move || SharedCaches::new(f.clone()));
    let cp = ControlPlane::new(root.clone(), caches, ControllerConfig::default());
    cp.activate(1, Arc::new(Fake(fake.clone()))).await.unwrap();
    (root, cp)
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
