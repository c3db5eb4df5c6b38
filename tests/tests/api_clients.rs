//! The API server driven by unmodified clients: the real kubectl 1.37 and the official
//! Python `kubernetes` client, against a running master over HTTPS with its admin kubeconfig.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{kubectl, kubectl_spawn, python, wait_for, Cluster};
use serde_json::Value;

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"#;

/// Runs kubectl and fails with its output if it fails.
fn k(cfg: &Path, home: &Path, args: &[&str]) -> Result<String> {
    Ok(kubectl(cfg, home, args, None)?
        .expect_ok(&format!("kubectl {}", args.join(" ")))?
        .stdout)
}

fn k_stdin(cfg: &Path, home: &Path, args: &[&str], input: &str) -> Result<String> {
    Ok(kubectl(cfg, home, args, Some(input))?
        .expect_ok(&format!("kubectl {}", args.join(" ")))?
        .stdout)
}

fn json(cfg: &Path, home: &Path, args: &[&str]) -> Result<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    Ok(serde_json::from_str(&k(cfg, home, &a)?)?)
}

/// Lines of a file that mention `word` as a whole first column.
fn rows_named(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.split_whitespace().next() == Some(name))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_applies_scales_labels_watches_and_deletes_with_cascade() -> Result<()> {
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let cfg = cluster.kubeconfig(0);
    let home = tempfile::tempdir()?;
    let h = home.path();
    wait_for(Duration::from_secs(20), "the system namespaces", || async {
        let out = kubectl(&cfg, h, &["get", "ns"], None).ok()?;
        (out.ok && out.stdout.contains("kube-system")).then_some(())
    })
    .await?;

    // get: a Table with kubectl's columns.
    let ns = k(&cfg, h, &["get", "ns"])?;
    assert!(
        ns.starts_with("NAME") && ns.contains("STATUS") && ns.contains("AGE"),
        "{ns}"
    );
    assert!(
        ns.lines()
            .any(|l| l.starts_with("default ") && l.contains("Active")),
        "{ns}"
    );
    let version = k(&cfg, h, &["version"])?;
    assert!(version.contains("Server Version: v1.37."), "{version}");

    // apply of a multi-object YAML with kubectl's default (strict) validation.
    let out = k_stdin(&cfg, h, &["apply", "-f", "-"], APP)?;
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let deploys = k(&cfg, h, &["get", "deploy", "-n", "shop"])?;
    let header: Vec<&str> = deploys
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{deploys}"
    );
    assert_eq!(rows_named(&deploys, "web"), 1, "{deploys}");
    let svc = k(&cfg, h, &["get", "svc", "web", "-n", "shop"])?;
    assert!(svc.contains("ClusterIP") && svc.contains("80/TCP"), "{svc}");

    // apply again after an edit: kubectl sends a strategic merge patch that changes one
    // container's image, deletes the other ($patch: delete) and sets replicas.
    let edited = APP
        .replace("nginx:1.25", "nginx:1.27")
        .replace("replicas: 2", "replicas: 3")
        .replace("      - name: sidecar\n        image: busybox:1.36\n", "");
    let out = k_stdin(&cfg, h, &["apply", "-f", "-"], &edited)?;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let d = json(&cfg, h, &["get", "deploy", "web", "-n", "shop"])?;
    assert_eq!(d["spec"]["replicas"], 3);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{d}");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(d["metadata"]["generation"], 2);
    let out = k_stdin(&cfg, h, &["apply", "-f", "-"], &edited)?;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    // Strict validation on the server: an unknown field is refused, naming it.
    let bad = edited.replace("replicas: 3", "replicas: 3\n  replicaz: 4");
    let out = kubectl(&cfg, h, &["apply", "-f", "-"], Some(&bad))?;
    assert!(!out.ok && out.stderr.contains("spec.replicaz"), "{out:?}");

    // scale (merge patch on /scale, then the precondition path: GET and PUT /scale) and label.
    let out = k(
        &cfg,
        h,
        &["scale", "deploy/web", "-n", "shop", "--replicas=5"],
    )?;
    assert!(out.contains("scaled"), "{out}");
    k(
        &cfg,
        h,
        &[
            "scale",
            "deploy/web",
            "-n",
            "shop",
            "--current-replicas=5",
            "--replicas=4",
        ],
    )?;
    let out = kubectl(
        &cfg,
        h,
        &[
            "scale",
            "deploy/web",
            "-n",
            "shop",
            "--current-replicas=9",
            "--replicas=1",
        ],
        None,
    )?;
    assert!(!out.ok, "a failed precondition is refused: {out:?}");
    k(
        &cfg,
        h,
        &["label", "deploy", "web", "-n", "shop", "tier=front"],
    )?;
    let d = json(&cfg, h, &["get", "deploy", "web", "-n", "shop"])?;
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"]["tier"], "front");

    // get -w: existing pods print once, then each change once.
    k(&cfg, h, &["run", "p1", "-n", "shop", "--image=busybox"])?;
    let wout = home.path().join("watch.out");
    let mut watcher = kubectl_spawn(&cfg, h, &["get", "pods", "-n", "shop", "-w"], &wout)?;
    wait_for(Duration::from_secs(15), "the watch prints p1", || async {
        let t = std::fs::read_to_string(&wout).ok()?;
        (rows_named(&t, "p1") == 1).then_some(())
    })
    .await?;
    k(&cfg, h, &["run", "p2", "-n", "shop", "--image=busybox"])?;
    k(&cfg, h, &["label", "pod", "p1", "-n", "shop", "seen=twice"])?;
    let printed = wait_for(
        Duration::from_secs(15),
        "the watch prints p2 and p1's change",
        || async {
            let t = std::fs::read_to_string(&wout).ok()?;
            (rows_named(&t, "p2") >= 1 && rows_named(&t, "p1") >= 2).then_some(t)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watcher.kill();
    let _ = watcher.wait();
    let printed_final = std::fs::read_to_string(&wout)?;
    assert_eq!(rows_named(&printed_final, "p1"), 2, "{printed}");
    assert_eq!(rows_named(&printed_final, "p2"), 1, "{printed}");
    assert_eq!(rows_named(&printed_final, "NAME"), 1, "{printed}");

    // Resume: a watch from a list's resourceVersion shows only later changes.
    let list: Value = serde_json::from_str(&k(
        &cfg,
        h,
        &["get", "--raw", "/api/v1/namespaces/shop/pods"],
    )?)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list rv")?
        .to_string();
    k(
        &cfg,
        h,
        &["label", "pod", "p2", "-n", "shop", "after=resume"],
    )?;
    let raw = k(
        &cfg,
        h,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/shop/pods?watch=1&resourceVersion={rv}&timeoutSeconds=2"),
        ],
    )?;
    let events: Vec<Value> = raw
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 1, "{raw}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "p2");

    // delete --wait on an object held by a finalizer: kubectl's watch-list
    // (sendInitialEvents + bookmark) waits until the finalizer is removed.
    k(
        &cfg,
        h,
        &[
            "patch",
            "pod",
            "p2",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ],
    )?;
    let dout = home.path().join("delete.out");
    let mut deleter = kubectl_spawn(
        &cfg,
        h,
        &["delete", "pod", "p2", "-n", "shop", "--timeout=60s"],
        &dout,
    )?;
    wait_for(
        Duration::from_secs(15),
        "p2 marked for deletion",
        || async {
            let v = json(&cfg, h, &["get", "pod", "p2", "-n", "shop"]).ok()?;
            (!v["metadata"]["deletionTimestamp"].is_null()).then_some(())
        },
    )
    .await?;
    assert!(
        deleter.try_wait()?.is_none(),
        "kubectl delete waits for the finalizer"
    );
    k(
        &cfg,
        h,
        &[
            "patch",
            "pod",
            "p2",
            "-n",
            "shop",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = deleter.try_wait()? {
            break s;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "kubectl delete did not finish: {}",
            std::fs::read_to_string(&dout)?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{}", std::fs::read_to_string(&dout)?);

    // delete with cascade: a ReplicaSet owned by the Deployment and a Pod owned by it go too;
    // an orphaned pod stays, without its owner reference.
    let d = json(&cfg, h, &["get", "deploy", "web", "-n", "shop"])?;
    let duid = d["metadata"]["uid"]
        .as_str()
        .context("deployment uid")?
        .to_string();
    let rs = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-1\n  namespace: shop\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: {duid}, controller: true}}]\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: nginx, image: nginx}}]}}\n"
    );
    k_stdin(&cfg, h, &["create", "-f", "-"], &rs)?;
    let rsuid = json(&cfg, h, &["get", "rs", "web-1", "-n", "shop"])?["metadata"]["uid"]
        .as_str()
        .context("rs uid")?
        .to_string();
    for pod in ["web-1-a", "web-1-b"] {
        let p = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: shop\n  labels: {{app: web}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-1, uid: {rsuid}}}]\nspec: {{containers: [{{name: nginx, image: nginx}}]}}\n"
        );
        k_stdin(&cfg, h, &["create", "-f", "-"], &p)?;
    }
    let out = k(&cfg, h, &["delete", "deploy", "web", "-n", "shop"])?;
    assert!(out.contains("deleted"), "{out}");
    let left = k(
        &cfg,
        h,
        &["get", "deploy,rs,pods", "-n", "shop", "-o", "name"],
    )?;
    assert!(!left.contains("deployment.apps/web"), "{left}");
    assert!(!left.contains("replicaset.apps/web-1"), "{left}");
    assert!(
        !left.contains("pod/web-1-a") && !left.contains("pod/web-1-b"),
        "{left}"
    );
    assert!(left.contains("pod/p1"), "unowned pods stay: {left}");

    // Orphan: the owner goes, the dependent stays and forgets it.
    k_stdin(
        &cfg,
        h,
        &["create", "-f", "-"],
        &rs.replace(
            &format!("uid: {duid}"),
            "uid: 00000000-0000-4000-8000-000000000000",
        ),
    )?;
    let rsuid = json(&cfg, h, &["get", "rs", "web-1", "-n", "shop"])?["metadata"]["uid"]
        .as_str()
        .context("rs uid")?
        .to_string();
    let p = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: orphan\n  namespace: shop\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-1, uid: {rsuid}}}]\nspec: {{containers: [{{name: nginx, image: nginx}}]}}\n"
    );
    k_stdin(&cfg, h, &["create", "-f", "-"], &p)?;
    k(
        &cfg,
        h,
        &["delete", "rs", "web-1", "-n", "shop", "--cascade=orphan"],
    )?;
    let orphan = json(&cfg, h, &["get", "pod", "orphan", "-n", "shop"])?;
    assert!(
        orphan["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{orphan}"
    );

    // logs with no node to serve them: a clear error from the server.
    let out = kubectl(&cfg, h, &["logs", "p1", "-n", "shop"], None)?;
    assert!(
        !out.ok && out.stderr.contains("does not have a host assigned"),
        "{out:?}"
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_creates_lists_watches_resumes_and_gets_conflicts() -> Result<()> {
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let cfg = cluster.kubeconfig(0);
    let http = cluster.http().clone();
    let url = cluster.url(0, "/api/v1/namespaces/default");
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        let r = http.get(&url).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await?;
    let script = include_str!("../py/client_flow.py");
    let cfg_s = cfg.to_string_lossy().to_string();
    let out = tokio::task::spawn_blocking(move || python(script, &[("KUBECONFIG", &cfg_s)]))
        .await??
        .expect_ok("the Python client flow")?;
    let report: Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("report: {}", out.stdout))?;
    assert_eq!(
        report["selected"],
        serde_json::json!(["p0", "p2"]),
        "{report}"
    );
    assert_eq!(
        report["listed"],
        serde_json::json!(["p0", "p1", "p2"]),
        "{report}"
    );
    let first = report["first_watch"].as_array().context("first watch")?;
    let kinds: Vec<(&str, &str)> = first
        .iter()
        .map(|e| (e[0].as_str().unwrap_or(""), e[1].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [("ADDED", "p3"), ("MODIFIED", "p0"), ("DELETED", "p1")],
        "{report}"
    );
    let rvs: Vec<u64> = first
        .iter()
        .map(|e| e[2].as_str().unwrap_or("0").parse().unwrap_or(0))
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{report}");
    let resumed = report["resumed_watch"]
        .as_array()
        .context("resumed watch")?;
    assert_eq!(resumed.len(), 1, "{report}");
    assert_eq!(resumed[0][0], "ADDED");
    assert_eq!(resumed[0][1], "p4");
    assert_eq!(report["stale_update"]["status"], 409, "{report}");
    assert_eq!(report["stale_update"]["reason"], "Conflict", "{report}");
    assert_eq!(report["deployment_generation"], 1);
    assert_eq!(report["scaled_to"], 4);
    assert_eq!(report["missing"], 404);
    cluster.passed();
    Ok(())
}
