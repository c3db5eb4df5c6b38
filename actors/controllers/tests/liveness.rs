//! The controllers always look again, over an in-memory API and a clock that moves only
//! when the test says so: a Deployment held back by another Deployment's write that its
//! cache did not show yet is looked at again once the cache shows it; a pod deleted while
//! its binding was in flight is dropped, not retried every second; a ReplicaSet whose
//! writes failed is looked at again after a backoff. (The liveness bugs navarch-sim found:
//! `ShellQuirks` in actors/sim.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use navarch_actors::{ActorPath, Clock, ManualClock, Root, Status, TapConfig};
use navarch_client::testing::FakeClient;
use navarch_client::{
    Client, ClientError, ObjectList, SharedCaches, Subresource, WatchStream, Written,
};
use navarch_controllers::{Clients, ControlPlane, ControllerConfig};
use navarch_model::identity::Component;
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
use navarch_model::ApiError;
use serde_json::{json, Value};
use tokio::sync::watch;

/// A write [`Faulty`] can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Write {
    Create,
    Status,
}

/// The fake API with faults on demand: the watch events of one kind held back while a gate
/// is closed (a cache that lags), bindings held while another is, writes that fail.
struct Faulty {
    inner: Arc<FakeClient>,
    /// The plural whose watch events wait while `events_open` is false.
    lagging: Option<&'static str>,
    events_open: watch::Sender<bool>,
    binds_open: watch::Sender<bool>,
    /// Every binding asked for (the pod's name), and how each that returned went.
    binds: Mutex<Vec<String>>,
    bound: Mutex<Vec<(String, bool)>>,
    /// How many of the next writes of (what, plural) fail.
    fail: Mutex<HashMap<(Write, &'static str), usize>>,
    failed: Mutex<Vec<(Write, &'static str)>>,
}

impl Faulty {
    fn new(inner: Arc<FakeClient>, lagging: Option<&'static str>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            lagging,
            events_open: watch::Sender::new(true),
            binds_open: watch::Sender::new(true),
            binds: Mutex::default(),
            bound: Mutex::default(),
            fail: Mutex::default(),
            failed: Mutex::default(),
        })
    }

    fn hold_events(&self, hold: bool) {
        self.events_open.send_replace(!hold);
    }

    fn hold_binds(&self, hold: bool) {
        self.binds_open.send_replace(!hold);
    }

    fn fail_next(&self, what: Write, plural: &'static str, n: usize) {
        *self.fail.lock().unwrap().entry((what, plural)).or_default() += n;
    }

    fn failed(&self) -> usize {
        self.failed.lock().unwrap().len()
    }

    /// Fails this write if one is due.
    fn injected(&self, what: Write, kind: &Kind) -> Option<ClientError> {
        let mut fail = self.fail.lock().unwrap();
        let left = fail.get_mut(&(what, kind.plural)).filter(|n| **n > 0)?;
        *left -= 1;
        self.failed.lock().unwrap().push((what, kind.plural));
        Some(ClientError::Api(ApiError::internal(
            "etcdserver: request timed out (test)",
        )))
    }
}

impl Client for Faulty {
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a GetOptions,
    ) -> BoxFuture<'a, navarch_client::Result<Value>> {
        self.inner.get(kind, namespace, name, opts)
    }

    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, navarch_client::Result<ObjectList>> {
        self.inner.list(kind, namespace, opts)
    }

    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, navarch_client::Result<WatchStream>> {
        Box::pin(async move {
            let events = self.inner.watch(kind, namespace, opts).await?;
            if self.lagging != Some(kind.plural) {
                return Ok(events);
            }
            let gate = self.events_open.subscribe();
            Ok(events
                .then(move |event| {
                    let mut gate = gate.clone();
                    async move {
                        let _ = gate.wait_for(|open| *open).await;
                        event
                    }
                })
                .boxed())
        })
    }

    fn create<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, navarch_client::Result<Written>> {
        if let Some(e) = self.injected(Write::Create, kind) {
            return Box::pin(async move { Err(e) });
        }
        self.inner.create(kind, namespace, object, opts)
    }

    fn update<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, navarch_client::Result<Written>> {
        if matches!(subresource, Some(Subresource::Status)) {
            if let Some(e) = self.injected(Write::Status, kind) {
                return Box::pin(async move { Err(e) });
            }
        }
        self.inner
            .update(kind, namespace, name, subresource, object, opts)
    }

    fn patch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        patch: Patch,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, navarch_client::Result<Written>> {
        self.inner
            .patch(kind, namespace, name, subresource, patch, opts)
    }

    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, navarch_client::Result<Value>> {
        self.inner.delete(kind, namespace, name, opts)
    }

    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, navarch_client::Result<Value>> {
        self.inner.get_scale(kind, namespace, name)
    }

    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, navarch_client::Result<()>> {
        Box::pin(async move {
            self.binds.lock().unwrap().push(pod.to_string());
            let mut open = self.binds_open.subscribe();
            let _ = open.wait_for(|open| *open).await;
            let r = self.inner.bind(namespace, pod, node).await;
            self.bound
                .lock()
                .unwrap()
                .push((pod.to_string(), r.is_ok()));
            r
        })
    }

    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, navarch_client::Result<Value>> {
        self.inner.create_token(namespace, service_account, request)
    }
}

struct Every(Arc<Faulty>);

impl Clients for Every {
    fn client(&self, _: &Component) -> Arc<dyn Client> {
        self.0.clone()
    }
}

fn kind(group: &str, plural: &str) -> &'static Kind {
    navarch_client::kind(group, "v1", plural)
}

/// The control plane over `faulty` (its caches read through it too), on a manual clock.
async fn start(faulty: &Arc<Faulty>) -> (Root, ManualClock, Arc<ControlPlane>) {
    let clock = ManualClock::new();
    let root = Root::with_clock(
        ActorPath::parse("/test").unwrap(),
        TapConfig::default(),
        clock.shared(),
    );
    let f = faulty.clone();
    let caches = Arc::new(move || SharedCaches::new(f.clone()));
    let cp = ControlPlane::new(root.clone(), caches, ControllerConfig::default());
    cp.activate(1, Arc::new(Every(faulty.clone())))
        .await
        .unwrap();
    (root, clock, cp)
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

async fn list(fake: &FakeClient, kind: &'static Kind) -> Vec<Value> {
    fake.list(kind, Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .items
}

fn owned_by<'a>(objects: &'a [Value], owner: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o["metadata"]["ownerReferences"][0]["name"] == owner)
        .collect()
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    })
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

#[actix_rt::test]
async fn a_deployment_held_back_by_another_ones_write_gets_its_replica_set() {
    let fake = Arc::new(FakeClient::new());
    let faulty = Faulty::new(fake.clone(), Some("replicasets"));
    let (root, _clock, _cp) = start(&faulty).await;
    let (deployments, replicasets) = (kind("apps", "deployments"), kind("apps", "replicasets"));
    let w = WriteOptions::default();
    // The controllers' ReplicaSet cache lags: `first`'s ReplicaSet is written, not seen.
    faulty.hold_events(true);
    fake.create(deployments, Some("default"), deployment("first"), &w)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the ReplicaSet of first written",
        || async { !owned_by(&list(&fake, replicasets).await, "first").is_empty() },
    )
    .await;
    // `second` is looked at while that write is pending: its step is held back.
    fake.create(deployments, Some("default"), deployment("second"), &w)
        .await
        .unwrap();
    let second = ActorPath::parse("/test/controllers/deployment/default/second").unwrap();
    eventually(
        Duration::from_secs(10),
        "the actor of second started",
        || async {
            root.registry()
                .get(&second)
                .is_some_and(|i| i.status == Status::Running)
        },
    )
    .await;
    assert!(owned_by(&list(&fake, replicasets).await, "second").is_empty());
    // The cache catches up (nothing else happens, and the clock stands still): `second`
    // is looked at again and gets its ReplicaSet.
    faulty.hold_events(false);
    eventually(
        Duration::from_secs(10),
        "the ReplicaSet of second created",
        || async { !owned_by(&list(&fake, replicasets).await, "second").is_empty() },
    )
    .await;
    assert_eq!(owned_by(&list(&fake, replicasets).await, "first").len(), 1);
}

#[actix_rt::test]
async fn a_pod_deleted_while_its_binding_is_in_flight_is_dropped_not_retried() {
    let fake = Arc::new(FakeClient::new());
    let faulty = Faulty::new(fake.clone(), None);
    let (root, clock, _cp) = start(&faulty).await;
    let pods = kind("", "pods");
    let w = WriteOptions::default();
    let heartbeat = navarch_model::time::format_rfc3339(
        clock
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n0"},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastHeartbeatTime": heartbeat}]}});
    fake.create(kind("", "nodes"), None, node, &w)
        .await
        .unwrap();
    let scheduler = ActorPath::parse("/test/controllers/scheduler").unwrap();
    // Asked through its mailbox: the summary after what was queued before.
    let summary = || async {
        root.registry()
            .refresh(&scheduler, Duration::from_secs(5))
            .await;
        root.registry()
            .get(&scheduler)
            .map(|i| i.summary)
            .unwrap_or_default()
    };

    // The binding of `gone` is in flight when the pod is deleted, and the scheduler has
    // seen the deletion (the pod no longer counts) before the binding answers NotFound.
    faulty.hold_binds(true);
    fake.create(pods, Some("default"), pod("gone"), &w)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the binding of gone sent",
        || async { faulty.binds.lock().unwrap().contains(&"gone".to_string()) },
    )
    .await;
    fake.delete(pods, Some("default"), "gone", &DeleteOptions::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the deletion handled", || async {
        summary().await.contains("pods counted 0")
    })
    .await;
    faulty.hold_binds(false);
    eventually(Duration::from_secs(10), "the binding failed", || async {
        faulty
            .bound
            .lock()
            .unwrap()
            .contains(&("gone".to_string(), false))
    })
    .await;
    // The failure is in the scheduler's mailbox, before the question.
    let after = summary().await;
    assert!(
        after.contains("pods counted 0, bound 0, unschedulable 0"),
        "the pod that is gone waits to be placed: {after}"
    );
    // Time passes: nothing tries to bind it again.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        tokio::task::yield_now().await;
    }
    fake.create(pods, Some("default"), pod("last"), &w)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "last bound", || async {
        faulty
            .bound
            .lock()
            .unwrap()
            .contains(&("last".to_string(), true))
    })
    .await;
    let binds = faulty.binds.lock().unwrap().clone();
    assert_eq!(binds, ["gone", "last"]);
}

#[actix_rt::test]
async fn a_replica_set_whose_writes_failed_looks_again_and_reaches_its_replicas() {
    let fake = Arc::new(FakeClient::new());
    let faulty = Faulty::new(fake.clone(), None);
    let (_root, clock, _cp) = start(&faulty).await;
    let (replicasets, pods) = (kind("apps", "replicasets"), kind("", "pods"));
    // An outage: the first pod create and the status write after it fail (no cache event
    // follows either).
    faulty.fail_next(Write::Create, "pods", 1);
    faulty.fail_next(Write::Status, "replicasets", 1);
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    });
    fake.create(replicasets, Some("default"), rs, &WriteOptions::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "both writes failed", || async {
        faulty.failed() == 2
    })
    .await;
    assert!(list(&fake, pods).await.is_empty());
    // Only time passes, a second at each look: the ReplicaSet looks again after its
    // backoff, creates its pods and reports them.
    eventually(
        Duration::from_secs(10),
        "2 pods, status.replicas = 2",
        || {
            clock.advance(Duration::from_secs(1));
            let fake = fake.clone();
            async move {
                let rs = fake
                    .get(replicasets, Some("default"), "web", &GetOptions::default())
                    .await
                    .unwrap();
                list(&fake, pods).await.len() == 2 && rs["status"]["replicas"] == 2
            }
        },
    )
    .await;
}
