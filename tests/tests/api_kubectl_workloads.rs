//! What kubectl 1.37's workload commands send, accepted by a master without controllers:
//! Deployment defaults and selector checks, `kubectl scale`, `set image`, `rollout pause`,
//! `resume`, `restart`, `history` and `undo` (over ReplicaSets standing in for the
//! Deployment controller's), each checked by the Deployment's spec afterwards; pod specs
//! with node affinity and host ports; and the DefaultTolerationSeconds admission with the
//! master's flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{kubectl, wait_for, Cluster, Output};
use serde_json::{json, Value};

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

fn run(cfg: &Path, home: &Path, args: &[&str]) -> Result<Output> {
    kubectl(cfg, home, args, None)
}

fn k(cfg: &Path, home: &Path, args: &[&str]) -> Result<String> {
    Ok(run(cfg, home, args)?
        .expect_ok(&format!("kubectl {}", args.join(" ")))?
        .stdout)
}

fn json_of(cfg: &Path, home: &Path, args: &[&str]) -> Result<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    Ok(serde_json::from_str(&k(cfg, home, &a)?)?)
}

fn apply(cfg: &Path, home: &Path, object: &Value) -> Result<Output> {
    kubectl(cfg, home, &["apply", "-f", "-"], Some(&object.to_string()))
}

async fn ready(cluster: &Cluster, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let admin = cluster.kubeconfig(0);
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        run(&admin, &home, &["get", "ns", "default"])
            .ok()?
            .ok
            .then_some(())
    })
    .await?;
    Ok((admin, home))
}

fn deployment(cfg: &Path, home: &Path) -> Result<Value> {
    json_of(cfg, home, &["get", "deployment", "web"])
}

fn image(d: &Value) -> &str {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
}

/// A ReplicaSet as the Deployment controller would have made it for `revision`: owned by
/// the Deployment, its template with the pod-template-hash label.
fn replica_set(d: &Value, revision: u32, image: &str) -> Value {
    let hash = format!("h{revision}");
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    template["spec"]["containers"][0]["image"] = json!(image);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("web-{hash}"), "namespace": "default",
            "labels": template["metadata"]["labels"],
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 0, "selector": selector, "template": template}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_workload_commands_change_the_deployment() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let (admin, home) = ready(&cluster, dir.path()).await?;

    // Kubernetes' defaults for a Deployment kubectl creates.
    k(
        &admin,
        &home,
        &["create", "deployment", "web", "--image=nginx:1.0"],
    )?;
    let d = deployment(&admin, &home)?;
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["replicas"], 1);

    // A template whose labels the selector does not match is refused, as in Kubernetes.
    let mut mismatched = d.clone();
    mismatched["metadata"] = json!({"name": "other"});
    mismatched["spec"]["template"]["metadata"]["labels"] = json!({"app": "elsewhere"});
    let refused = apply(&admin, &home, &mismatched)?;
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("`selector` does not match template `labels`"),
        "{}",
        refused.stderr
    );

    // kubectl scale: a merge patch of deployments/scale.
    let out = k(&admin, &home, &["scale", "deployment/web", "--replicas=3"])?;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(deployment(&admin, &home)?["spec"]["replicas"], 3);
    // ... and with a precondition: GET and PUT of the scale subresource.
    let out = k(
        &admin,
        &home,
        &[
            "scale",
            "deployment/web",
            "--current-replicas=3",
            "--replicas=2",
        ],
    )?;
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(deployment(&admin, &home)?["spec"]["replicas"], 2);

    // kubectl set image: a strategic merge patch of the container list.
    let out = k(
        &admin,
        &home,
        &["set", "image", "deployment/web", "nginx=nginx:2.0"],
    )?;
    assert!(out.contains("image updated"), "{out}");
    let d = deployment(&admin, &home)?;
    assert_eq!(image(&d), "nginx:2.0");
    assert_eq!(d["metadata"]["generation"], 4, "{d}");

    // rollout pause, resume and restart.
    let out = k(&admin, &home, &["rollout", "pause", "deployment/web"])?;
    assert!(out.contains("paused"), "{out}");
    assert_eq!(deployment(&admin, &home)?["spec"]["paused"], true);
    let out = k(&admin, &home, &["rollout", "resume", "deployment/web"])?;
    assert!(out.contains("resumed"), "{out}");
    assert!(deployment(&admin, &home)?["spec"]["paused"].is_null());
    let out = k(&admin, &home, &["rollout", "restart", "deployment/web"])?;
    assert!(out.contains("restarted"), "{out}");
    let d = deployment(&admin, &home)?;
    let restarted =
        &d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(restarted.is_string(), "{d}");

    // rollout history and undo read the Deployment's ReplicaSets (made here as its
    // controller would have) and patch the Deployment back to an older template.
    let none = k(&admin, &home, &["rollout", "history", "deployment/web"])?;
    assert!(none.contains("No rollout history found"), "{none}");
    for (revision, img) in [(1, "nginx:1.0"), (2, "nginx:2.0")] {
        let rs = replica_set(&d, revision, img);
        kubectl(&admin, &home, &["create", "-f", "-"], Some(&rs.to_string()))?
            .expect_ok("create a ReplicaSet")?;
    }
    let history = k(&admin, &home, &["rollout", "history", "deployment/web"])?;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let one = k(
        &admin,
        &home,
        &["rollout", "history", "deployment/web", "--revision=1"],
    )?;
    assert!(one.contains("nginx:1.0"), "{one}");

    let out = k(&admin, &home, &["rollout", "undo", "deployment/web"])?;
    assert!(out.contains("rolled back"), "{out}");
    let d = deployment(&admin, &home)?;
    assert_eq!(image(&d), "nginx:1.0", "{d}");
    assert!(
        d["spec"]["template"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none(),
        "{d}"
    );
    // The Deployment's annotations become the revision's (bookkeeping ones left out; the
    // request that created an object is navarch's bookkeeping, which kubectl copies).
    assert!(
        d["metadata"]["annotations"]
            .as_object()
            .is_none_or(|a| a.keys().all(|k| k == navarch_model::CORRELATION_ANNOTATION)),
        "{d}"
    );
    let out = k(
        &admin,
        &home,
        &["rollout", "undo", "deployment/web", "--to-revision=2"],
    )?;
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(image(&deployment(&admin, &home)?), "nginx:2.0");
    let out = k(
        &admin,
        &home,
        &["rollout", "undo", "deployment/web", "--to-revision=2"],
    )?;
    assert!(out.contains("skipped rollback"), "{out}");
    let missing = run(
        &admin,
        &home,
        &["rollout", "undo", "deployment/web", "--to-revision=7"],
    )?;
    assert!(
        !missing.ok
            && missing
                .stderr
                .contains("unable to find specified revision 7"),
        "{}",
        missing.stderr
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_default_tolerations_and_scheduling_fields() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(
        1,
        &[
            API_ONLY,
            "--default-not-ready-toleration-seconds",
            "17",
            "--default-unreachable-toleration-seconds",
            "42",
        ],
    )
    .await?;
    let (admin, home) = ready(&cluster, dir.path()).await?;

    // Every pod created gets the two NoExecute tolerations, with the flags' seconds.
    k(&admin, &home, &["run", "plain", "--image=busybox"])?;
    let p = json_of(&admin, &home, &["get", "pod", "plain"])?;
    assert_eq!(
        p["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 17},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 42}
        ]),
        "{p}"
    );
    // A pod that tolerates one of the taints keeps its own; only the other is added.
    let own = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "own"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 600}]}});
    apply(&admin, &home, &own)?.expect_ok("apply own")?;
    let p = json_of(&admin, &home, &["get", "pod", "own"])?;
    let t = p["spec"]["tolerations"].as_array().context("tolerations")?;
    assert_eq!(t.len(), 2, "{p}");
    assert_eq!(t[0]["tolerationSeconds"], 600);
    assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
    assert_eq!(t[1]["tolerationSeconds"], 17);
    // A re-apply (a patch of the pod) keeps them: the apply is unchanged or accepted.
    apply(&admin, &home, &own)?.expect_ok("re-apply own")?;
    // Pods a Deployment's template describes get them when created, not the template.
    k(
        &admin,
        &home,
        &["create", "deployment", "d", "--image=busybox"],
    )?;
    let d = json_of(&admin, &home, &["get", "deployment", "d"])?;
    assert!(
        d["spec"]["template"]["spec"]["tolerations"].is_null(),
        "{d}"
    );

    // Node affinity and host ports are served; pod affinity is refused, naming the field.
    let scheduled = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "placed"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                    "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]}],
                 "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}}});
    apply(&admin, &home, &scheduled)?.expect_ok("apply placed")?;
    let p = json_of(&admin, &home, &["get", "pod", "placed"])?;
    assert_eq!(p["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    assert_eq!(
        p["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
            ["weight"],
        10
    );
    let mut bad = scheduled.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
        ["weight"] = json!(0);
    let refused = apply(&admin, &home, &bad)?;
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("weight: Invalid value: 0: must be in the range 1-100"),
        "{}",
        refused.stderr
    );
    let mut anti = scheduled;
    anti["metadata"]["name"] = json!("anti");
    anti["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}});
    let refused = apply(&admin, &home, &anti)?;
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("spec.affinity.podAntiAffinity: not supported by navarch"),
        "{}",
        refused.stderr
    );
    cluster.passed();
    Ok(())
}
