//! The kubelet in one process over an in-memory API ([`FakeClient`]) and the real `process`
//! runtime (root, as here and in CI): a bound pod runs and is reported Running; its Pod
//! actor killed, the restarted actor re-attaches to the running container instead of
//! starting another; a new kubelet over the same state dir (an agent restart) re-adopts it;
//! a pod deleted with a grace period is stopped and then deleted by the node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use navarch_actors::{ActorPath, Root};
use navarch_agent::kubelet::{Kubelet, KubeletConfig};
use navarch_client::cache::Scope;
use navarch_client::testing::FakeClient;
use navarch_client::{Client, SharedCaches};
use navarch_model::options::{DeleteOptions, WriteOptions};
use navarch_model::selector::FieldSelector;
use navarch_runtime::{ContainerRuntime, ImageStore, ProcessConfig, ProcessRuntime};
use serde_json::{json, Value};

fn pods() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "pods")
}

/// The shim the workspace's `cargo build --workspace --bins` put beside the test binaries.
fn shim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let shim = dir.join("navarch-shim");
    assert!(
        shim.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        shim.display()
    );
    shim
}

struct Node {
    _dir: tempfile::TempDir,
    root_dir: PathBuf,
    runtime: ProcessRuntime,
    cgroup_parent: String,
}

impl Node {
    fn new() -> Node {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the kubelet's tests run containers and need root (CI runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::new(dir.path().join("images")).unwrap();
        images.ensure_busybox().unwrap();
        let cgroup_parent = format!("navarch-test-kubelet-{}", std::process::id());
        let mut cfg = ProcessConfig::new(dir.path().join("runtime"), images, shim());
        cfg.cgroup_parent = cgroup_parent.clone();
        let runtime = ProcessRuntime::new(cfg).unwrap();
        Node {
            root_dir: dir.path().join("kubelet"),
            _dir: dir,
            runtime,
            cgroup_parent,
        }
    }

    fn config(&self) -> KubeletConfig {
        let mut runtimes: BTreeMap<String, Arc<dyn ContainerRuntime>> = BTreeMap::new();
        runtimes.insert("process".into(), Arc::new(self.runtime.clone()));
        KubeletConfig {
            node: "n1".into(),
            host_ip: "127.0.0.1".parse().unwrap(),
            root: self.root_dir.clone(),
            runtimes,
            default_runtime: "process".into(),
            backoff_cap: Duration::from_secs(300),
            resync: Duration::from_secs(2),
            pleg_period: Duration::from_millis(200),
            network: None,
            cluster_domain: "cluster.local".into(),
            cluster_dns: Vec::new(),
            allocatable: BTreeMap::new(),
            services: None,
        }
    }

    async fn start(&self, root: &Root, fake: &Arc<FakeClient>) -> (Kubelet, SharedCaches) {
        self.start_with(root, fake, self.config()).await
    }

    async fn start_with(
        &self,
        root: &Root,
        fake: &Arc<FakeClient>,
        config: KubeletConfig,
    ) -> (Kubelet, SharedCaches) {
        let client: Arc<dyn Client> = fake.clone();
        let caches = SharedCaches::new(client.clone());
        let on_node = FieldSelector::parse("Pod", "spec.nodeName=n1").unwrap();
        let cache = caches.scoped(Scope::kind(pods()).fields(on_node));
        let k = Kubelet::start(root, config, client, cache).await.unwrap();
        (k, caches)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Every container of the test goes, then its cgroups.
        let rt = self.runtime.clone();
        let _ = std::thread::spawn(move || {
            let tokio = tokio::runtime::Runtime::new().unwrap();
            tokio.block_on(async {
                for c in rt.list().await.unwrap_or_default() {
                    let _ = rt.remove(&c.id).await;
                }
            });
        })
        .join();
        for ctl in ["memory", "cpu,cpuacct", "pids", "cpu", ""] {
            let _ = std::fs::remove_dir(
                PathBuf::from("/sys/fs/cgroup")
                    .join(ctl)
                    .join(&self.cgroup_parent),
            );
        }
    }
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "n1",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": "busybox",
                            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}],
        },
        "status": {"phase": "Pending"},
    })
}

async fn get(fake: &FakeClient, name: &str) -> Option<Value> {
    fake.get(pods(), Some("default"), name, &Default::default())
        .await
        .ok()
}

async fn eventually<F, Fut>(what: &str, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

fn asking(name: &str, cpu: &str) -> Value {
    let mut p = pod(name);
    p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
    p
}

#[actix_rt::test]
async fn a_pod_past_the_nodes_room_is_rejected_and_never_runs() {
    let node = Node::new();
    let fake = Arc::new(FakeClient::new());
    // Two pods bound to a node of one cpu that only one of them fits (as after a binding
    // whose answer was lost landed twice): the kubelet admits one, rejects the other.
    for name in ["first", "second"] {
        fake.create(
            pods(),
            Some("default"),
            asking(name, "600m"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    let mut config = node.config();
    config.allocatable = [
        ("cpu".to_string(), "1".to_string()),
        ("pods".to_string(), "10".to_string()),
    ]
    .into();
    let root = Root::new(ActorPath::parse("/node/n1").unwrap(), Default::default());
    let (_kubelet, _caches) = node.start_with(&root, &fake, config).await;
    let settled = eventually("one pod Running and one rejected", || async {
        let a = get(&fake, "first").await?;
        let b = get(&fake, "second").await?;
        let rejected = |p: &Value| p["status"]["phase"] == "Failed";
        match (running(&a), running(&b), rejected(&a), rejected(&b)) {
            (true, false, false, true) => Some(b),
            (false, true, true, false) => Some(a),
            _ => None,
        }
    })
    .await;
    assert_eq!(settled["status"]["reason"], "OutOfcpu", "{settled}");
    assert_eq!(
        settled["status"]["message"],
        "Pod was rejected: Node didn't have enough resource: cpu, requested: 600, used: 600, capacity: 1000"
    );
    // A pod that fits beside the admitted one runs; the rejected one never does.
    fake.create(
        pods(),
        Some("default"),
        asking("third", "300m"),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    eventually("the pod that fits Running", || async {
        get(&fake, "third").await.filter(running)
    })
    .await;
    let listed = node.runtime.list().await.unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the rejected pod has no container: {listed:?}"
    );
    let name = settled["metadata"]["name"].as_str().unwrap();
    assert_eq!(get(&fake, name).await.unwrap()["status"]["phase"], "Failed");
}

#[actix_rt::test]
async fn a_pod_runs_and_survives_its_actor_and_its_kubelet_restarting() {
    let node = Node::new();
    let fake = Arc::new(FakeClient::new());
    fake.create(
        pods(),
        Some("default"),
        pod("web"),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let root = Root::new(ActorPath::parse("/node/n1").unwrap(), Default::default());
    let (kubelet, caches) = node.start(&root, &fake).await;
    let p = eventually("the pod Running", || async {
        get(&fake, "web").await.filter(running)
    })
    .await;
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["restartCount"], 0);
    let id = cs["containerID"].as_str().unwrap().to_string();
    let started = cs["state"]["running"]["startedAt"].clone();
    let listed = node.runtime.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    let pid = listed[0].pid.unwrap();

    // The Pod actor killed: its next incarnation re-attaches.
    let actor = ActorPath::parse("/node/n1/kubelet/pod/default/web").unwrap();
    let before = kubelet.shared().passes("default", "web");
    root.registry().kill(&actor).unwrap();
    eventually("the Pod actor restarted and made a pass", || async {
        let restarted = root
            .registry()
            .get(&actor)
            .is_some_and(|a| a.restarts >= 1 && a.status == navarch_actors::Status::Running);
        (restarted && kubelet.shared().passes("default", "web") > before).then_some(json!(true))
    })
    .await;
    // The container is the same process.
    let listed = node.runtime.list().await.unwrap();
    assert_eq!(listed.len(), 1, "no second container: {listed:?}");
    assert_eq!(listed[0].pid, Some(pid));
    let p = get(&fake, "web").await.unwrap();
    assert_eq!(
        p["status"]["containerStatuses"][0]["containerID"],
        id.as_str()
    );
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // The whole kubelet goes (an agent restart) and a new one over the same dirs adopts.
    drop(kubelet);
    drop(caches);
    let root2 = Root::new(ActorPath::parse("/node/n1b").unwrap(), Default::default());
    let (kubelet2, _caches2) = node.start(&root2, &fake).await;
    eventually("the new kubelet's first pass over the pod", || async {
        (kubelet2.shared().passes("default", "web") > 0).then_some(json!(true))
    })
    .await;
    let listed = node.runtime.list().await.unwrap();
    assert_eq!(listed.len(), 1, "adopted, not started again: {listed:?}");
    assert_eq!(listed[0].pid, Some(pid));
    let p = get(&fake, "web").await.unwrap();
    assert!(running(&p));
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"],
        started
    );

    // Deleted with a grace period: the node stops it (SIGTERM ends it at once) and deletes
    // the pod object itself.
    fake.delete(
        pods(),
        Some("default"),
        "web",
        &DeleteOptions {
            grace_period_seconds: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    eventually("the pod deleted by the node", || async {
        match get(&fake, "web").await {
            None => Some(json!(true)),
            Some(_) => None,
        }
    })
    .await;
    eventually("its container removed", || async {
        node.runtime
            .list()
            .await
            .unwrap()
            .is_empty()
            .then_some(json!(true))
    })
    .await;
}
