//! RuntimeClasses with kubectl 1.37: discovery names them, `kubectl get runtimeclass` lists
//! the built-in `process` and `oci` with kubectl's columns, a handler cannot change, and a
//! pod naming a RuntimeClass that does not exist is refused with Kubernetes' message.

use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{wait_for, Cluster, Kubectl};
use serde_json::json;

/// The API server alone: the bootstrap's RuntimeClasses are all there is.
const API_ONLY: &str = "--no-control-plane";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_built_in_runtime_classes_and_pods_need_theirs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(1, &[API_ONLY]).await?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;

    let resources = kc.ok(&["api-resources", "--api-group=node.k8s.io", "--no-headers"])?;
    let row: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("runtimeclasses "))
        .with_context(|| format!("no runtimeclasses in:\n{resources}"))?
        .split_whitespace()
        .collect();
    // No short names: NAME, APIVERSION, NAMESPACED, KIND.
    assert_eq!(
        row,
        ["runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"],
        "{resources}"
    );

    let table = wait_for(
        Duration::from_secs(30),
        "the built-in RuntimeClasses",
        || async {
            let out = kc.run(&["get", "runtimeclass"]).ok()?;
            (out.ok && out.stdout.lines().count() == 3).then_some(out.stdout)
        },
    )
    .await?;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "HANDLER", "AGE"], "{table}");
    assert_eq!(
        rows[1..].iter().map(|r| &r[..2]).collect::<Vec<_>>(),
        [["oci", "oci"], ["process", "process"]],
        "{table}"
    );
    let oci = kc.json(&["get", "runtimeclasses.node.k8s.io", "oci"])?;
    assert_eq!(
        (&oci["apiVersion"], &oci["handler"]),
        (&json!("node.k8s.io/v1"), &json!("oci")),
        "{oci}"
    );

    // The handler is immutable.
    let out = kc.run(&[
        "patch",
        "runtimeclass",
        "oci",
        "-p",
        r#"{"handler":"runc"}"#,
    ])?;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("handler: Invalid value: \"runc\": field is immutable"),
        "{}",
        out.stderr
    );

    // A pod needs its RuntimeClass to exist, and is not stored otherwise.
    let pod = |name: &str, class: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"runtimeClassName": class,
                     "containers": [{"name": "c", "image": "busybox"}]}})
    };
    let out = kc.apply(&pod("web", "gvisor"))?;
    assert!(
        !out.ok
            && out.stderr.contains("Error from server (Forbidden)")
            && out.stderr.contains(
                r#"pods "web" is forbidden: pod rejected: RuntimeClass "gvisor" not found"#
            ),
        "{}",
        out.stderr
    );
    let gone = kc.run(&["get", "pod", "web"])?;
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
    kc.apply(&pod("web", "oci"))?.expect_ok("a pod on oci")?;
    let web = kc.json(&["get", "pod", "web"])?;
    assert_eq!(web["spec"]["runtimeClassName"], "oci", "{web}");
    Ok(())
}

/// The control plane's pods go through the same admission: a ReplicaSet whose template names
/// a missing RuntimeClass gets no pods and a FailedCreate event with Kubernetes' message;
/// once the class exists, its pods are created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_gets_pods_only_once_their_runtime_class_exists() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(1, &[]).await?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;

    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "sandboxed", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sandboxed"}},
                 "template": {"metadata": {"labels": {"app": "sandboxed"}},
                              "spec": {"runtimeClassName": "gvisor",
                                       "containers": [{"name": "c", "image": "busybox"}]}}}});
    kc.apply(&rs)?.expect_ok("apply the ReplicaSet")?;
    let event = wait_for(Duration::from_secs(60), "a FailedCreate event", || async {
        let events = kc
            .json(&["get", "events", "--field-selector", "reason=FailedCreate"])
            .ok()?;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["involvedObject"]["name"] == "sandboxed")
            .cloned()
    })
    .await?;
    let message = event["message"].as_str().unwrap_or("");
    assert!(
        message.contains("pod rejected: RuntimeClass \"gvisor\" not found"),
        "{event}"
    );
    let pods = kc.json(&["get", "pods", "-l", "app=sandboxed"])?;
    assert_eq!(pods["items"], json!([]), "{pods}");

    let gvisor = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "gvisor"}, "handler": "runsc"});
    kc.apply(&gvisor)?.expect_ok("apply the RuntimeClass")?;
    // A new desired count makes the controller try again at once.
    kc.ok(&["scale", "rs", "sandboxed", "--replicas=2"])?;
    let pods = wait_for(Duration::from_secs(60), "the ReplicaSet's pods", || async {
        let pods = kc.json(&["get", "pods", "-l", "app=sandboxed"]).ok()?;
        (pods["items"].as_array()?.len() == 2).then_some(pods)
    })
    .await?;
    for p in pods["items"].as_array().into_iter().flatten() {
        assert_eq!(p["spec"]["runtimeClassName"], "gvisor", "{p}");
    }
    Ok(())
}
