//! The control plane end to end, with hollow nodes and the real kubectl: a rollout, undo,
//! history, scale, pause, resume and restart, the surge and availability bounds checked on
//! every pod event of a watch; a rollout that can never finish hitting its progress deadline,
//! and rolling itself back with `navarch.io/auto-rollback`; a rollout finishing on three
//! masters while controller actors are killed and the active master is SIGKILLed, with no
//! ReplicaSet overshoot and no pod bound twice; a hollow node process SIGKILLed, its nodes
//! going unknown and its pods replaced elsewhere; `kubectl delete namespace` with workloads
//! in it: Terminating (creating in it refused), emptied, its conditions naming what holds
//! it, finalized by a restarted controller actor, gone; a hollow node process SIGKILLed and
//! its Nodes deleted, its pods (some of a deleted namespace, Terminating for good) marked
//! failed and force-deleted by the pod garbage collector after the quarantine, and the
//! namespace then gone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use navarch_tests::{kubectl, kubectl_spawn, wait_for, Cluster, NodeProc};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(90);

/// Hollow nodes that speak up often.
const FAST_NODES: &[&str] = &[
    "--hollow",
    "--lease-renew-seconds",
    "1",
    "--status-update-seconds",
    "5",
];

struct Kube {
    cfg: PathBuf,
    home: PathBuf,
}

impl Kube {
    fn new(cluster: &Cluster, via: usize) -> Result<Kube> {
        let home = cluster.dir.path().join(format!("home-{via}"));
        std::fs::create_dir_all(&home)?;
        Ok(Kube {
            cfg: cluster.kubeconfig(via),
            home,
        })
    }

    /// Runs kubectl and fails with its output if it fails.
    fn run(&self, args: &[&str]) -> Result<String> {
        Ok(kubectl(&self.cfg, &self.home, args, None)?
            .expect_ok(&format!("kubectl {}", args.join(" ")))?
            .stdout)
    }

    fn apply(&self, manifest: &Value) -> Result<String> {
        Ok(kubectl(
            &self.cfg,
            &self.home,
            &["apply", "-f", "-"],
            Some(&manifest.to_string()),
        )?
        .expect_ok("kubectl apply")?
        .stdout)
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.run(&a)?)?)
    }
}

fn deployment(name: &str, replicas: i64, image: &str, surge: i64, unavailable: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image,
                    "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}}]}
            }
        }
    })
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// What a pod watch saw of one app's pods, checked on every event.
#[derive(Default)]
struct Seen {
    /// Live pods (no deletionTimestamp) and whether they are Ready.
    live: BTreeMap<String, bool>,
    /// The ReplicaSet (pod-template-hash) of each pod seen.
    hash: BTreeMap<String, String>,
    /// Pods first seen, by ReplicaSet.
    added: BTreeMap<String, usize>,
    /// The largest size each ReplicaSet had.
    max_spec: BTreeMap<String, i64>,
    /// (ReplicaSet, live pods) each time one had more live pods than the largest size seen
    /// so far (its ReplicaSet event may come after the pod's): an overshoot if it had more
    /// than its largest size ever.
    tentative: Vec<(String, usize)>,
    /// Whether the bound is on the pods present (else on the ReplicaSets' sizes).
    on_pods: bool,
    /// Each ReplicaSet's (spec.replicas, status.replicas) as last seen.
    rs: BTreeMap<String, (i64, i64)>,
    /// The node each pod was first seen bound to.
    bound: BTreeMap<String, String>,
    max_live: usize,
    /// The fewest Ready pods seen once checking started.
    min_ready: Option<usize>,
    violations: Vec<String>,
    events: usize,
    /// What the test was doing, named in violations.
    phase: String,
}

/// Follows the pods labelled `app=<app>` through member `via` and records every violation of
/// `max_live` (pods that count towards replicas) and of a pod changing node. The minimum of
/// Ready pods is tracked once `check_ready` is set.
struct PodWatch {
    seen: Arc<Mutex<Seen>>,
    check_ready: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// Follows the ReplicaSets, to name their sizes in a violation.
    rs_task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    /// The bound on the pods present: kubectl's rollouts hold it.
    async fn start(cluster: &Cluster, via: usize, app: &str, max_live: usize) -> Result<PodWatch> {
        Self::start_with(cluster, via, app, max_live, true).await
    }

    /// The bound on the ReplicaSets' sizes, and no ReplicaSet with more live pods than it
    /// was ever sized for: what holds while controller actors are killed (a ReplicaSet
    /// scaled down may still have its pods while its restarted actor catches up).
    async fn start_sizes(
        cluster: &Cluster,
        via: usize,
        app: &str,
        max_sizes: usize,
    ) -> Result<PodWatch> {
        Self::start_with(cluster, via, app, max_sizes, false).await
    }

    async fn start_with(
        cluster: &Cluster,
        via: usize,
        app: &str,
        max_live: usize,
        on_pods: bool,
    ) -> Result<PodWatch> {
        let http = cluster.http().clone();
        let list_url = cluster.url(
            via,
            &format!("/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"),
        );
        let list: Value = http.get(&list_url).send().await?.json().await?;
        let mut rv = list["metadata"]["resourceVersion"]
            .as_str()
            .context("a list revision")?
            .to_string();
        let seen = Arc::new(Mutex::new(Seen {
            on_pods,
            ..Seen::default()
        }));
        let check_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let base = cluster.url(via, "/api/v1/namespaces/default/pods");
        let (s, cr, app) = (seen.clone(), check_ready.clone(), app.to_string());
        let task = tokio::spawn(async move {
            loop {
                let url = format!(
                    "{base}?watch=1&labelSelector=app%3D{app}&resourceVersion={rv}&timeoutSeconds=300"
                );
                let Ok(resp) = http
                    .get(&url)
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut body = resp.bytes_stream();
                let mut buf = Vec::new();
                while let Some(Ok(chunk)) = body.next().await {
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                            continue;
                        };
                        let pod = &ev["object"];
                        if let Some(v) = pod["metadata"]["resourceVersion"].as_str() {
                            rv = v.to_string();
                        }
                        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
                        let mut s = s.lock().unwrap();
                        s.events += 1;
                        if let Some(node) = pod["spec"]["nodeName"].as_str() {
                            match s.bound.get(&name) {
                                Some(n) if n != node => {
                                    let v = format!("pod {name} moved from {n} to {node}");
                                    s.violations.push(v);
                                }
                                Some(_) => {}
                                None => {
                                    s.bound.insert(name.clone(), node.to_string());
                                }
                            }
                        }
                        if let Some(h) = pod["metadata"]["labels"]["pod-template-hash"].as_str() {
                            if s.hash.insert(name.clone(), h.to_string()).is_none() {
                                *s.added.entry(h.to_string()).or_default() += 1;
                            }
                        }
                        let gone = ev["type"] == "DELETED"
                            || !pod["metadata"]["deletionTimestamp"].is_null();
                        if gone {
                            s.live.remove(&name);
                        } else {
                            s.live.insert(name.clone(), is_ready(pod));
                        }
                        let live = s.live.len();
                        s.max_live = s.max_live.max(live);
                        if !s.on_pods {
                            if let Some(h) = s.hash.get(&name).cloned() {
                                let of_rs =
                                    s.live.keys().filter(|p| s.hash.get(*p) == Some(&h)).count();
                                if of_rs as i64 > s.max_spec.get(&h).copied().unwrap_or(0) {
                                    s.tentative.push((h, of_rs));
                                }
                            }
                        }
                        if s.on_pods && live > max_live {
                            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
                            for p in s.live.keys() {
                                let h = s.hash.get(p).map(String::as_str).unwrap_or("?");
                                *per.entry(h).or_default() += 1;
                            }
                            let v = format!(
                                "{live} live pods, more than {max_live}, while {} ({per:?}, replica sets {:?}, created {:?})",
                                s.phase, s.rs, s.added
                            );
                            s.violations.push(v);
                        }
                        if cr.load(std::sync::atomic::Ordering::SeqCst) {
                            let ready = s.live.values().filter(|r| **r).count();
                            s.min_ready = Some(s.min_ready.map_or(ready, |m| m.min(ready)));
                        }
                    }
                }
            }
        });
        let rs_task = {
            let (http, seen) = (cluster.http().clone(), seen.clone());
            let url = cluster.url(via, "/apis/apps/v1/namespaces/default/replicasets?watch=1");
            tokio::spawn(async move {
                let Ok(resp) = http
                    .get(&url)
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await
                else {
                    return;
                };
                let mut body = resp.bytes_stream();
                let mut buf = Vec::new();
                while let Some(Ok(chunk)) = body.next().await {
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                            continue;
                        };
                        let rs = &ev["object"];
                        let h = rs["metadata"]["labels"]["pod-template-hash"]
                            .as_str()
                            .unwrap_or("?");
                        let v = (
                            rs["spec"]["replicas"].as_i64().unwrap_or(0),
                            rs["status"]["replicas"].as_i64().unwrap_or(0),
                        );
                        let mut s = seen.lock().unwrap();
                        s.rs.insert(h.to_string(), v);
                        let m = s.max_spec.entry(h.to_string()).or_default();
                        *m = (*m).max(v.0);
                        let sizes: i64 = s.rs.values().map(|(spec, _)| spec).sum();
                        if !s.on_pods && sizes as usize > max_live {
                            let v = format!(
                                "the ReplicaSets' sizes sum to {sizes}, more than {max_live}: {:?}",
                                s.rs
                            );
                            s.violations.push(v);
                        }
                    }
                }
            })
        };
        Ok(PodWatch {
            seen,
            check_ready,
            task,
            rs_task,
        })
    }

    fn phase(&self, what: &str) {
        what.clone_into(&mut self.seen.lock().unwrap().phase);
    }

    fn start_checking_ready(&self) {
        self.check_ready
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn report(&self) -> (usize, Option<usize>, Vec<String>, usize) {
        let s = self.seen.lock().unwrap();
        let mut violations = s.violations.clone();
        for (h, live) in &s.tentative {
            let max = s.max_spec.get(h).copied().unwrap_or(0);
            if *live as i64 > max {
                violations.push(format!(
                    "ReplicaSet {h} had {live} live pods, sized {max} at most"
                ));
            }
        }
        (s.max_live, s.min_ready, violations, s.events)
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
        self.rs_task.abort();
    }
}

/// The ReplicaSets of `app`: name → (spec.replicas, readyReplicas, revision).
fn replica_sets(k: &Kube, app: &str) -> Result<BTreeMap<String, (i64, i64, String)>> {
    let list = k.json(&["get", "rs", "-l", &format!("app={app}")])?;
    Ok(list["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap_or("").to_string(),
                (
                    rs["spec"]["replicas"].as_i64().unwrap_or(0),
                    rs["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        })
        .collect())
}

/// Waits until `kubectl rollout status` says the Deployment rolled out.
fn rollout_status(k: &Kube, name: &str) -> Result<()> {
    let out = k.run(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=90s",
    ])?;
    anyhow::ensure!(
        out.contains("successfully rolled out"),
        "rollout status: {out}"
    );
    Ok(())
}

async fn start_nodes(
    cluster: &Cluster,
    name: &str,
    count: usize,
    extra: &[&str],
) -> Result<NodeProc> {
    let masters = cluster.peer_list();
    let count = count.to_string();
    let mut args: Vec<&str> = FAST_NODES.to_vec();
    args.extend(["--count", &count, "--master", &masters]);
    args.extend(extra);
    NodeProc::start(cluster, 0, name, &args).await
}

async fn wait_nodes_ready(k: &Kube, n: usize) -> Result<()> {
    wait_for(DEADLINE, "hollow nodes Ready", || async {
        let list = k.json(&["get", "nodes"]).ok()?;
        let ready = list["items"]
            .as_array()?
            .iter()
            .filter(|n| is_ready_node(n))
            .count();
        (ready >= n).then_some(())
    })
    .await
}

fn is_ready_node(n: &Value) -> bool {
    n["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollouts_on_hollow_nodes_keep_their_bounds() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let k = Kube::new(&cluster, 0)?;
    let mut nodes = start_nodes(&cluster, "hollow", 3, &[]).await?;
    wait_nodes_ready(&k, 3).await?;
    // 6 replicas, at most 2 above and 1 below.
    let watch = PodWatch::start(&cluster, 0, "web", 8).await?;
    k.apply(&deployment("web", 6, "busybox:1", 2, 1))?;
    rollout_status(&k, "web")?;
    watch.start_checking_ready();
    let first = replica_sets(&k, "web")?;
    assert_eq!(first.len(), 1, "{first:?}");
    let (first_rs, _) = first.iter().next().unwrap();
    let first_rs = first_rs.clone();

    k.run(&["set", "image", "deployment/web", "main=busybox:2"])?;
    rollout_status(&k, "web")?;
    let second = replica_sets(&k, "web")?;
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(
        second[&first_rs].0, 0,
        "the old ReplicaSet is scaled down: {second:?}"
    );
    let (second_rs, _) = second.iter().find(|(n, _)| **n != first_rs).unwrap();
    let second_rs = second_rs.clone();
    assert_eq!(second[&second_rs], (6, 6, "2".to_string()));

    let history = k.run(&["rollout", "history", "deployment/web"])?;
    assert!(
        history.lines().any(|l| l.starts_with('1')) && history.lines().any(|l| l.starts_with('2')),
        "{history}"
    );
    // Undo: back to the first ReplicaSet, which becomes revision 3.
    k.run(&["rollout", "undo", "deployment/web"])?;
    rollout_status(&k, "web")?;
    let third = replica_sets(&k, "web")?;
    assert_eq!(third.len(), 2, "undo reuses the old ReplicaSet: {third:?}");
    assert_eq!(third[&first_rs], (6, 6, "3".to_string()));
    assert_eq!(third[&second_rs].0, 0);
    let image = k.json(&["get", "deployment", "web"])?["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .clone();
    assert_eq!(image, "busybox:1");
    // --to-revision: back to what revision 2 ran.
    k.run(&["rollout", "undo", "deployment/web", "--to-revision=2"])?;
    rollout_status(&k, "web")?;
    assert_eq!(
        replica_sets(&k, "web")?[&second_rs],
        (6, 6, "4".to_string())
    );

    // Scale, pause (no rollout while paused), resume, restart.
    k.run(&["scale", "deployment/web", "--replicas=4"])?;
    rollout_status(&k, "web")?;
    assert_eq!(replica_sets(&k, "web")?[&second_rs].0, 4);
    k.run(&["rollout", "pause", "deployment/web"])?;
    k.run(&["set", "image", "deployment/web", "main=busybox:3"])?;
    let d = k.json(&["get", "deployment", "web"])?;
    wait_for(DEADLINE, "the paused condition", || async {
        let d = k.json(&["get", "deployment", "web"]).ok()?;
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused")
            .then_some(())
    })
    .await?;
    assert_eq!(d["spec"]["paused"], true);
    assert_eq!(
        replica_sets(&k, "web")?.len(),
        2,
        "no new ReplicaSet while paused"
    );
    k.run(&["rollout", "resume", "deployment/web"])?;
    rollout_status(&k, "web")?;
    assert_eq!(replica_sets(&k, "web")?.len(), 3);
    k.run(&["rollout", "restart", "deployment/web"])?;
    rollout_status(&k, "web")?;
    assert_eq!(
        replica_sets(&k, "web")?.len(),
        4,
        "a restart is a new template"
    );

    // The watch saw every pod event of all this.
    let (max_live, min_ready, violations, events) = watch.report();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(events > 50, "the watch saw {events} events");
    assert!(
        max_live >= 7,
        "the rollouts used their surge: at most {max_live} live pods"
    );
    // After the scale to 4 (maxUnavailable 1) the floor is 3; before it, 5. A scale-down
    // is not a rollout: 4 is the lowest the replicas went, minus one.
    let min_ready = min_ready.context("ready pods were tracked")?;
    assert!(min_ready >= 3, "{min_ready} ready pods at the lowest");
    // navctl plan: the next template's ReplicaSet (its name as the controller will make it)
    // and where its pods would go, nothing changed; navctl controlplane: this master.
    let mut next = deployment("web", 4, "busybox:9", 2, 1);
    next["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("3");
    let file = cluster.dir.path().join("next.json");
    std::fs::write(&file, next.to_string())?;
    let kubeconfig = k.cfg.display().to_string();
    let navctl = |args: &[&str]| -> Result<String> {
        let o = std::process::Command::new(navarch_tests::bin("navctl"))
            .args(args)
            .args(["--kubeconfig", &kubeconfig])
            .output()?;
        anyhow::ensure!(
            o.status.success(),
            "navctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let plan = navctl(&["plan", "-f", &file.display().to_string()])?;
    assert!(
        plan.contains("container main: image \"busybox:3\" -> \"busybox:9\""),
        "{plan}"
    );
    // 3 cpu each on 4-cpu nodes: one pod per node, the fourth has no room.
    assert!(
        plan.contains("1 unschedulable: 0/3 nodes are available: 3 Insufficient cpu"),
        "{plan}"
    );
    let rs_planned = plan
        .split_whitespace()
        .skip_while(|w| *w != "replicaset")
        .nth(1)
        .context("the planned ReplicaSet")?
        .to_string();
    assert_eq!(replica_sets(&k, "web")?.len(), 4, "a plan changes nothing");
    k.apply(&next)?;
    let planned = wait_for(
        Duration::from_secs(20),
        "the planned ReplicaSet",
        || async {
            replica_sets(&k, "web")
                .ok()?
                .contains_key(&rs_planned)
                .then_some(())
        },
    )
    .await;
    if planned.is_err() {
        let got = k.run(&["get", "rs", "-o", "yaml"]).unwrap_or_default();
        panic!("planned {rs_planned}:\n{plan}\nReplicaSets:\n{got}");
    }
    let cp = navctl(&["controlplane"])?;
    assert!(cp.contains("active"), "{cp}");
    // Events users look for.
    let events = k.run(&["get", "events"])?;
    for reason in [
        "ScalingReplicaSet",
        "SuccessfulCreate",
        "SuccessfulDelete",
        "Scheduled",
    ] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    nodes.passed();
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_past_its_deadline_fails_or_rolls_itself_back() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let k = Kube::new(&cluster, 0)?;
    let mut nodes = start_nodes(&cluster, "hollow", 2, &[]).await?;
    wait_nodes_ready(&k, 2).await?;
    for (name, auto) in [("plain", false), ("auto", true)] {
        let mut d = deployment(name, 2, "busybox:1", 1, 0);
        d["spec"]["progressDeadlineSeconds"] = json!(4);
        if auto {
            d["metadata"]["annotations"] = json!({"navarch.io/auto-rollback": "true"});
        }
        k.apply(&d)?;
        rollout_status(&k, name)?;
        // A new template no node can take: its pods never get placed.
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "main", "image": "busybox:2"}],
            "nodeSelector": {"disk": "none-has-this"}}}}});
        k.run(&["patch", "deployment", name, "-p", &patch.to_string()])?;
    }
    // Without the annotation: ProgressDeadlineExceeded, and kubectl says so.
    let out = kubectl(
        &k.cfg,
        &k.home,
        &["rollout", "status", "deployment/plain", "--timeout=60s"],
        None,
    )?;
    assert!(
        !out.ok,
        "rollout status of a stuck rollout fails: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("exceeded its progress deadline"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let failed = wait_for(DEADLINE, "a FailedScheduling event", || async {
        let events = k
            .run(&[
                "get",
                "events",
                "--field-selector",
                "reason=FailedScheduling",
            ])
            .ok()?;
        events.contains("0/2 nodes are available").then_some(events)
    })
    .await?;
    assert!(
        failed.contains("node(s) didn't match Pod's node affinity/selector"),
        "{failed}"
    );
    let pending = k.run(&["describe", "pods", "-l", "app=plain"])?;
    assert!(pending.contains("PodScheduled   False"), "{pending}");
    // With it: back to the template that was available, by itself.
    let d = wait_for(DEADLINE, "the automatic rollback", || async {
        let d = k.json(&["get", "deployment", "auto"]).ok()?;
        let image = d["spec"]["template"]["spec"]["containers"][0]["image"].as_str()?;
        (image == "busybox:1").then_some(d)
    })
    .await?;
    assert!(
        d["spec"]["template"]["spec"]["nodeSelector"].is_null(),
        "{d}"
    );
    rollout_status(&k, "auto")?;
    let events = k.run(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=auto",
    ])?;
    assert!(events.contains("DeploymentRollback"), "{events}");
    let history = k.run(&["rollout", "history", "deployment/auto"])?;
    assert!(
        history.lines().any(|l| l.starts_with('3')),
        "the rollback is revision 3: {history}"
    );
    // The plain one stays where it is.
    let plain = k.json(&["get", "deployment", "plain"])?;
    assert_eq!(
        plain["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:2"
    );
    nodes.passed();
    cluster.passed();
    Ok(())
}

/// `POST /debug/kill?prefix=P` on member `i`: the path killed, if any actor ran there.
async fn kill_actor(cluster: &Cluster, i: usize, prefix: &str) -> Option<String> {
    let url = cluster.url(i, &format!("/debug/kill?prefix={prefix}"));
    let r = cluster.http().post(url).send().await.ok()?;
    if r.status().is_success() {
        let v: Value = r.json().await.ok()?;
        v["killed"]
            .as_str()
            .map(str::to_string)
            .or(Some(v.to_string()))
    } else {
        None
    }
}

async fn active_master(cluster: &Cluster) -> Option<usize> {
    for i in 0..cluster.members.len() {
        if !cluster.members[i].is_running() {
            continue;
        }
        let r = cluster
            .http()
            .get(cluster.url(i, "/debug/controlplane"))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        if v["active"] == true {
            return Some(i);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_killed_controllers_and_a_killed_active_master() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let active = wait_for(DEADLINE, "an active control plane", || {
        active_master(&cluster)
    })
    .await?;
    let watcher = (active + 1) % 3;
    let k = Kube::new(&cluster, watcher)?;
    let mut nodes = start_nodes(&cluster, "hollow", 4, &[]).await?;
    wait_nodes_ready(&k, 4).await?;
    // 8 replicas, surge 2, unavailable 1: the ReplicaSets' sizes never sum to more than 10,
    // and no ReplicaSet ever has more pods than it was sized for.
    let watch = PodWatch::start_sizes(&cluster, watcher, "web", 10).await?;
    k.apply(&deployment("web", 8, "busybox:1", 2, 1))?;
    rollout_status(&k, "web")?;

    // A rollout while controller actors are killed, again and again.
    watch.phase("killing controller actors");
    k.run(&["set", "image", "deployment/web", "main=busybox:2"])?;
    let name = &cluster.members[active].name;
    let mut killed = Vec::new();
    for _ in 0..12 {
        for kind in ["replicaset", "deployment", "scheduler"] {
            if let Some(p) = kill_actor(
                &cluster,
                active,
                &format!("/master/{name}/controllers/{kind}"),
            )
            .await
            {
                killed.push(format!("{kind}: {p}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        killed.len() >= 3,
        "controller actors were killed: {killed:?}"
    );
    rollout_status(&k, "web")?;

    // Another rollout, and the active master SIGKILLed in its middle.
    watch.phase("the third rollout");
    k.run(&["set", "image", "deployment/web", "main=busybox:3"])?;
    wait_for(DEADLINE, "the third rollout under way", || async {
        let rs = replica_sets(&k, "web").ok()?;
        (rs.len() == 3 && rs.values().any(|(r, _, rev)| rev == "3" && *r > 0)).then_some(())
    })
    .await?;
    watch.phase("the active master killed");
    cluster.kill(active);
    let next = wait_for(DEADLINE, "another master's control plane", || {
        active_master(&cluster)
    })
    .await?;
    assert_ne!(next, active);
    rollout_status(&k, "web")?;
    let rs = replica_sets(&k, "web")?;
    let done = rs
        .values()
        .find(|(_, _, rev)| rev == "3")
        .context("revision 3")?;
    assert_eq!((done.0, done.1), (8, 8), "{rs:?}");
    assert!(
        rs.values()
            .filter(|(_, _, rev)| rev != "3")
            .all(|(r, _, _)| *r == 0),
        "{rs:?}"
    );

    // Checked on every pod event: never more than replicas + surge, and no pod moved.
    let (max_live, _, violations, events) = watch.report();
    if !violations.is_empty() {
        let scaling = k
            .run(&["get", "events", "--sort-by=.metadata.creationTimestamp"])
            .unwrap_or_default();
        eprintln!("events:\n{scaling}");
    }
    assert!(violations.is_empty(), "{violations:?}");
    assert!(events > 40, "{events} events");
    eprintln!("at most {max_live} live pods (the sizes' bound is 10)");
    // Every live pod is bound once: the watcher's record of where each went is consistent
    // with where the pods are now.
    let pods = k.json(&["get", "pods", "-l", "app=web"])?;
    let seen = watch.seen.lock().unwrap().bound.clone();
    for p in pods["items"].as_array().context("items")? {
        let n = p["metadata"]["name"].as_str().unwrap_or("");
        if let Some(node) = p["spec"]["nodeName"].as_str() {
            assert_eq!(seen.get(n).map(String::as_str), Some(node), "pod {n}");
        }
    }
    nodes.passed();
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_goes_unknown_and_its_pods_are_replaced() -> Result<()> {
    let mut cluster = Cluster::start(
        1,
        &[
            "--node-monitor-grace-period",
            "3",
            "--default-unreachable-toleration-seconds",
            "2",
        ],
    )
    .await?;
    let k = Kube::new(&cluster, 0)?;
    let mut doomed = start_nodes(&cluster, "doomed", 2, &["--pod-cidr", "10.100.0.0/16"]).await?;
    let mut kept = start_nodes(&cluster, "kept", 2, &["--pod-cidr", "10.101.0.0/16"]).await?;
    wait_nodes_ready(&k, 4).await?;
    k.apply(&deployment("web", 6, "busybox:1", 1, 0))?;
    rollout_status(&k, "web")?;
    let on_doomed = |pods: &Value| -> usize {
        pods["items"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| {
                        p["spec"]["nodeName"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("doomed"))
                    })
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                    .count()
            })
            .unwrap_or(0)
    };
    let before = k.json(&["get", "pods", "-l", "app=web"])?;
    assert!(
        on_doomed(&before) > 0,
        "the pods spread over all nodes: {before}"
    );

    doomed.kill();
    let killed_at = std::time::Instant::now();
    // Its nodes: Unknown and tainted unreachable once their leases are 3 s old.
    wait_for(DEADLINE, "the killed nodes unknown and tainted", || async {
        let list = k.json(&["get", "nodes"]).ok()?;
        let doomed: Vec<&Value> = list["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["metadata"]["name"]
                    .as_str()
                    .is_some_and(|x| x.starts_with("doomed"))
            })
            .collect();
        (doomed.len() == 2
            && doomed.iter().all(|n| {
                let unknown = n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "Unknown")
                });
                let tainted = n["spec"]["taints"].as_array().is_some_and(|ts| {
                    ts.iter().any(|t| {
                        t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"
                    })
                });
                unknown && tainted
            }))
        .then_some(())
    })
    .await?;
    let unknown_after = killed_at.elapsed();
    let nodes = k.run(&["get", "nodes"])?;
    assert!(nodes.contains("NotReady"), "{nodes}");
    // Its pods: evicted, replaced on the nodes that live.
    wait_for(DEADLINE, "6 ready pods on the live nodes", || async {
        let pods = k.json(&["get", "pods", "-l", "app=web"]).ok()?;
        let live: Vec<&Value> = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (on_doomed(&pods) == 0
            && live.len() == 6
            && live.iter().all(|p| {
                is_ready(p)
                    && p["spec"]["nodeName"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("kept"))
            }))
        .then_some(())
    })
    .await?;
    let replaced_after = killed_at.elapsed();
    eprintln!("nodes unknown after {unknown_after:?}, pods replaced after {replaced_after:?}");
    let events = k.run(&["get", "events", "-A"])?;
    assert!(events.contains("NodeNotReady"), "{events}");
    assert!(events.contains("TaintManagerEviction"), "{events}");
    kept.passed();
    doomed.passed();
    cluster.passed();
    Ok(())
}

/// The conditions of namespace `ns`, by type: (status, message).
fn namespace_conditions(ns: &Value) -> BTreeMap<String, (String, String)> {
    ns["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("type"), (s("status"), s("message")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_namespace_terminates_it_empties_it_and_removes_it() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let k = Kube::new(&cluster, 0)?;
    let mut nodes = start_nodes(&cluster, "hollow", 2, &[]).await?;
    wait_nodes_ready(&k, 2).await?;
    k.run(&["create", "namespace", "shop"])?;
    // A Deployment and its pods, a pod of its own, a Service (with its Endpoints and
    // EndpointSlice), and a Lease held by a finalizer nobody removes but the test.
    let mut web = deployment("web", 3, "busybox:1", 1, 0);
    web["metadata"]["namespace"] = json!("shop");
    k.apply(&web)?;
    k.run(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "shop",
        "--timeout=90s",
    ])?;
    k.run(&["run", "one", "--image=busybox", "-n", "shop"])?;
    k.run(&[
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:80",
        "-n",
        "shop",
    ])?;
    k.apply(&json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "held", "namespace": "shop", "finalizers": ["example.com/hold"]},
        "spec": {"holderIdentity": "test"}
    }))?;
    wait_for(DEADLINE, "the pods running", || async {
        let pods = k.json(&["get", "pods", "-n", "shop"]).ok()?;
        let items = pods["items"].as_array()?;
        (items.len() == 4 && items.iter().all(is_ready)).then_some(())
    })
    .await?;

    // `kubectl delete namespace` waits until it is gone; meanwhile it is Terminating.
    let out = cluster.dir.path().join("delete-namespace.out");
    let mut deleter = kubectl_spawn(
        &k.cfg,
        &k.home,
        &["delete", "namespace", "shop", "--timeout=120s"],
        &out,
    )?;
    wait_for(DEADLINE, "the namespace Terminating", || async {
        let table = k.run(&["get", "namespace", "shop"]).ok()?;
        table.contains("Terminating").then_some(())
    })
    .await?;
    // Nothing new may be created in it: 403, by kubectl and over plain HTTPS.
    let late = kubectl(
        &k.cfg,
        &k.home,
        &[
            "create",
            "service",
            "clusterip",
            "late",
            "--tcp=80:80",
            "-n",
            "shop",
        ],
        None,
    )?;
    assert!(!late.ok, "{late:?}");
    assert!(
        late.stderr.contains(
            "unable to create new content in namespace shop because it is being terminated"
        ),
        "{}",
        late.stderr
    );
    let r = cluster
        .http()
        .post(cluster.url(0, "/api/v1/namespaces/shop/pods"))
        .json(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late"},
                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    let status: Value = r.json().await?;
    assert_eq!(
        (&status["kind"], &status["reason"]),
        (&json!("Status"), &json!("Forbidden"))
    );

    // Everything goes but the held Lease, and the namespace says what holds it.
    wait_for(DEADLINE, "the content gone but the held Lease", || async {
        let all = k
            .json(&[
                "get",
                "deployments,replicasets,pods,services,endpoints",
                "-n",
                "shop",
            ])
            .ok()?;
        all["items"].as_array()?.is_empty().then_some(())
    })
    .await?;
    let ns = wait_for(DEADLINE, "the finalizer reported", || async {
        let ns = k.json(&["get", "namespace", "shop"]).ok()?;
        let c = namespace_conditions(&ns);
        (c.get("NamespaceFinalizersRemaining")
            .map(|(s, _)| s.as_str())
            == Some("True"))
        .then_some(ns)
    })
    .await?;
    let c = namespace_conditions(&ns);
    assert_eq!(
        c["NamespaceFinalizersRemaining"].1,
        "Some finalizers are remaining: example.com/hold in 1 resource instances",
        "{c:?}"
    );
    assert_eq!(
        c["NamespaceContentRemaining"],
        (
            "True".to_string(),
            "Some resources are remaining: leases.coordination.k8s.io has 1 resource instances"
                .to_string()
        ),
        "{c:?}"
    );
    for ok in [
        "NamespaceDeletionDiscoveryFailure",
        "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure",
    ] {
        assert_eq!(c[ok].0, "False", "{ok}: {c:?}");
    }
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(
        deleter.try_wait()?.is_none(),
        "kubectl delete waits for the namespace to go"
    );

    // The finalizer goes, and the controller's actor is killed: its next incarnation
    // picks the namespace up from the caches and finalizes it.
    k.run(&[
        "patch",
        "lease",
        "held",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    let killed = kill_actor(&cluster, 0, "/master/m1/controllers/namespace/shop").await;
    assert!(killed.is_some(), "the namespace's actor was running");
    let deleter = Arc::new(Mutex::new(deleter));
    let status = wait_for(DEADLINE, "kubectl delete namespace to finish", || {
        let deleter = deleter.clone();
        async move { deleter.lock().unwrap().try_wait().ok().flatten() }
    })
    .await?;
    assert!(status.success(), "{}", std::fs::read_to_string(&out)?);
    let gone = kubectl(&k.cfg, &k.home, &["get", "namespace", "shop"], None)?;
    assert!(!gone.ok && gone.stderr.contains("NotFound"), "{gone:?}");
    let leases = k.json(&["get", "leases", "-n", "shop"])?;
    assert_eq!(leases["items"], json!([]));
    // Finalized by the namespace controller, through the finalize subresource.
    assert!(
        cluster.audit(0).iter().any(|r| r["verb"] == "update"
            && r["resource"] == "namespaces"
            && r["subresource"] == "finalize"
            && r["name"] == "shop"
            && r["user"] == "system:serviceaccount:kube-system:namespace-controller"
            && r["code"] == 200),
        "the namespace controller finalized shop"
    );
    nodes.passed();
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_deleted_node_are_force_deleted_and_their_namespace_finishes() -> Result<()> {
    const QUARANTINE: u64 = 3;
    let mut cluster =
        Cluster::start(1, &["--pod-gc-quarantine-period", &QUARANTINE.to_string()]).await?;
    let k = Kube::new(&cluster, 0)?;
    let mut doomed = start_nodes(&cluster, "doomed", 2, &[]).await?;
    wait_nodes_ready(&k, 2).await?;
    k.run(&["create", "namespace", "shop"])?;
    let mut web = deployment("web", 3, "busybox:1", 1, 0);
    web["metadata"]["namespace"] = json!("shop");
    k.apply(&web)?;
    k.run(&["run", "solo", "--image=busybox"])?;
    let running = wait_for(DEADLINE, "the pods running", || async {
        let pods = k.json(&["get", "pods", "-A"]).ok()?;
        let items = pods["items"].as_array()?.clone();
        (items.len() == 4 && items.iter().all(is_ready)).then_some(items)
    })
    .await?;
    let pod_names: Vec<String> = running
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();

    // The node process dies; its Nodes stay for now. The namespace is deleted: its pods are
    // marked, and no node will ever end them.
    doomed.kill();
    k.run(&["delete", "namespace", "shop", "--wait=false"])?;
    wait_for(DEADLINE, "the namespace's pods Terminating", || async {
        let pods = k.json(&["get", "pods", "-n", "shop"]).ok()?;
        let items = pods["items"].as_array()?;
        (items.len() == 3
            && items
                .iter()
                .all(|p| p["metadata"]["deletionTimestamp"].is_string()))
        .then_some(())
    })
    .await?;
    let table = k.run(&["get", "namespace", "shop"])?;
    assert!(table.contains("Terminating"), "{table}");

    // The Nodes deleted: after the quarantine, every pod bound to them goes, and the
    // namespace with them.
    let nodes = k.json(&["get", "nodes"])?;
    let names: Vec<&str> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Every pod change from here on, as kubectl's watch shows it.
    let watched = cluster.dir.path().join("pods.watch");
    let mut watcher = kubectl_spawn(
        &k.cfg,
        &k.home,
        &[
            "get",
            "pods",
            "-A",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
        &watched,
    )?;
    let events = || -> Vec<Value> {
        let text = std::fs::read_to_string(&watched).unwrap_or_default();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect()
    };
    wait_for(DEADLINE, "the watch on the pods", || async {
        (events().len() >= 4).then_some(())
    })
    .await?;
    let mut args = vec!["delete", "node"];
    args.extend(&names);
    k.run(&args)?;
    let deleted_at = std::time::Instant::now();
    wait_for(DEADLINE, "every pod force-deleted", || async {
        let pods = k.json(&["get", "pods", "-A"]).ok()?;
        pods["items"].as_array()?.is_empty().then_some(())
    })
    .await?;
    let collected_after = deleted_at.elapsed();
    wait_for(DEADLINE, "the namespace gone", || async {
        let r = kubectl(&k.cfg, &k.home, &["get", "namespace", "shop"], None).ok()?;
        (!r.ok && r.stderr.contains("NotFound")).then_some(())
    })
    .await?;
    eprintln!(
        "pods collected {collected_after:?} after their nodes were deleted, namespace gone after {:?}",
        deleted_at.elapsed()
    );
    // The logic counts whole seconds: never before the quarantine less one.
    assert!(
        collected_after >= Duration::from_secs(QUARANTINE - 1),
        "collected after {collected_after:?}, within the {QUARANTINE} s quarantine"
    );
    // The pod that was running when its node went: marked Failed with the DisruptionTarget
    // condition, then deleted.
    let solo = wait_for(DEADLINE, "the watch to see solo go", || async {
        let solo: Vec<Value> = events()
            .into_iter()
            .filter(|e| e["object"]["metadata"]["name"] == "solo")
            .collect();
        solo.iter().any(|e| e["type"] == "DELETED").then_some(solo)
    })
    .await?;
    let _ = watcher.kill();
    let _ = watcher.wait();
    let failed = solo
        .iter()
        .find(|e| e["type"] == "MODIFIED" && e["object"]["status"]["phase"] == "Failed")
        .with_context(|| format!("solo marked Failed: {solo:?}"))?;
    let target = failed["object"]["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget"))
        .with_context(|| format!("a DisruptionTarget condition: {failed}"))?;
    assert_eq!(
        (&target["status"], &target["reason"], &target["message"]),
        (
            &json!("True"),
            &json!("DeletionByPodGC"),
            &json!("PodGC: node no longer exists")
        )
    );
    // Each pod marked failed, then deleted with a grace period of 0, as the pod garbage
    // collector. (A pod marked for deletion already goes with the status write that ends
    // it, so its delete finds it gone.)
    let audit = cluster.audit(0);
    let by_collector = |verb: &str, sub: &str, name: &str, codes: &[u64]| {
        audit.iter().any(|r| {
            r["verb"] == verb
                && r["resource"] == "pods"
                && r["subresource"].as_str().unwrap_or("") == sub
                && r["name"] == name
                && r["user"] == "system:serviceaccount:kube-system:pod-garbage-collector"
                && r["code"].as_u64().is_some_and(|c| codes.contains(&c))
        })
    };
    for name in &pod_names {
        assert!(
            by_collector("patch", "status", name, &[200]),
            "{name} marked failed"
        );
        let codes: &[u64] = if name == "solo" { &[200] } else { &[200, 404] };
        assert!(
            by_collector("delete", "", name, codes),
            "{name} force-deleted"
        );
    }
    cluster.passed();
    Ok(())
}
