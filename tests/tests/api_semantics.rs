//! Kubernetes semantics the API server keeps, checked over HTTPS on a running master:
//! generateName, generation, the status subresource, paging, selectors, deletecollection,
//! binding, graceful pod deletion ended by the pod's node, dry runs, and a deleted namespace
//! staying Terminating until it is finalized.

use std::time::Duration;

use anyhow::{Context, Result};
use navarch_net::pki::Identity;
use navarch_tests::{https_client, wait_for, Cluster};
use serde_json::{json, Value};

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

const NODE_TOKEN: &str = "semantics-node-token";

async fn call(rb: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let r = rb.send().await?;
    let code = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_kubernetes_semantics() -> Result<()> {
    let tokens = tempfile::tempdir()?;
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(
        &token_file,
        format!("{NODE_TOKEN},system:node:n1,u1,system:nodes\n"),
    )?;
    let mut cluster = Cluster::start(
        1,
        &[
            API_ONLY,
            "--token-auth-file",
            token_file.to_str().context("path")?,
        ],
    )
    .await?;
    let h = cluster.http().clone();
    let url = |p: &str| cluster.url(0, p);
    let pods = url("/api/v1/namespaces/default/pods");
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        let r = h.get(url("/api/v1/namespaces/default")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await?;

    // generateName: the server picks a unique name.
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "gen-"},
                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, a) = call(h.post(&pods).json(&body)).await?;
    assert_eq!(code, 201, "{a}");
    let (_, b) = call(h.post(&pods).json(&body)).await?;
    let (an, bn) = (
        a["metadata"]["name"].as_str().unwrap_or(""),
        b["metadata"]["name"].as_str().unwrap_or(""),
    );
    assert!(
        an.starts_with("gen-") && an.len() == 9 && an != bn,
        "{an} {bn}"
    );
    for f in ["uid", "creationTimestamp", "resourceVersion"] {
        assert!(a["metadata"][f].is_string(), "{f}: {a}");
    }

    // generation moves with the spec, not with labels; status is its own subresource.
    let deps = url("/apis/apps/v1/namespaces/default/deployments");
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 7}});
    let (code, d) = call(h.post(&deps).json(&dep)).await?;
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(
        d["status"]["replicas"].is_null(),
        "status is not set by a create: {d}"
    );
    let merge =
        |rb: reqwest::RequestBuilder| rb.header("content-type", "application/merge-patch+json");
    let (_, d) = call(
        merge(h.patch(url("/apis/apps/v1/namespaces/default/deployments/web")))
            .body(r#"{"metadata":{"labels":{"a":"b"}}}"#),
    )
    .await?;
    assert_eq!(d["metadata"]["generation"], 1, "{d}");
    let (_, d) = call(
        merge(h.patch(url("/apis/apps/v1/namespaces/default/deployments/web")))
            .body(r#"{"spec":{"replicas":2},"status":{"replicas":9}}"#),
    )
    .await?;
    assert_eq!(d["metadata"]["generation"], 2, "{d}");
    assert!(
        d["status"]["replicas"].is_null(),
        "the main resource ignores status: {d}"
    );
    let (code, d) = call(
        merge(h.patch(url(
            "/apis/apps/v1/namespaces/default/deployments/web/status",
        )))
        .body(r#"{"spec":{"replicas":5},"status":{"replicas":2,"observedGeneration":2}}"#),
    )
    .await?;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["status"]["replicas"], 2);
    assert_eq!(d["spec"]["replicas"], 2, "/status ignores spec: {d}");
    let (_, scale) = call(h.get(url(
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    )))
    .await?;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["selector"], "app=web");
    assert_eq!(scale["spec"]["replicas"], 2);

    // Paging with limit and continue, across label and field selectors.
    for i in 0..5 {
        let (code, _) = call(h.post(&pods).json(&pod(
            &format!("page-{i}"),
            json!({"set": "paged", "i": i.to_string()}),
        )))
        .await?;
        assert_eq!(code, 201);
    }
    let (_, first) = call(h.get(format!("{pods}?labelSelector=set%3Dpaged&limit=2"))).await?;
    assert_eq!(names(&first), ["page-0", "page-1"], "{first}");
    let token = first["metadata"]["continue"]
        .as_str()
        .context("continue token")?;
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let (_, second) = call(h.get(format!(
        "{pods}?labelSelector=set%3Dpaged&limit=2&continue={token}"
    )))
    .await?;
    assert_eq!(names(&second), ["page-2", "page-3"], "{second}");
    let (_, sel) = call(h.get(format!(
        "{pods}?labelSelector=set%3Dpaged,i%20notin%20(0,1,2)"
    )))
    .await?;
    assert_eq!(names(&sel), ["page-3", "page-4"]);
    let (code, bad) = call(h.get(format!("{pods}?fieldSelector=spec.bogus%3Dx"))).await?;
    assert_eq!(code, 400, "{bad}");

    // Binding assigns a node once; field selectors find pods by node.
    let (code, s) = call(h.post(url("/api/v1/namespaces/default/pods/page-0/binding")).json(&json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "page-0"}, "target": {"kind": "Node", "name": "n1"}}))).await?;
    assert_eq!(code, 201, "{s}");
    let (code, s) = call(
        h.post(url("/api/v1/namespaces/default/pods/page-0/binding"))
            .json(
                &json!({"metadata": {"name": "page-0"}, "target": {"kind": "Node", "name": "n2"}}),
            ),
    )
    .await?;
    assert_eq!(code, 409, "{s}");
    let (_, on_n1) = call(h.get(url("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1"))).await?;
    assert_eq!(names(&on_n1), ["page-0"]);

    // Graceful deletion of a pod on a node: marked, then ended by its node.
    let (code, marked) = call(h.delete(url("/api/v1/namespaces/default/pods/page-0"))).await?;
    assert_eq!(code, 200, "{marked}");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = call(h.get(url("/api/v1/namespaces/default/pods/page-0"))).await?;
    assert_eq!(code, 200, "the pod stays until its node stops it");
    let ca_pem = std::fs::read_to_string(cluster.ca_dir.join("ca.crt"))?;
    let node = https_client(&Identity::anonymous(ca_pem))?;
    let (code, s) = call(
        node.delete(url("/api/v1/namespaces/default/pods/page-1"))
            .bearer_auth(NODE_TOKEN),
    )
    .await?;
    assert_eq!(
        code, 403,
        "a node may not delete a pod of another node: {s}"
    );
    let (code, s) = call(
        node.delete(url("/api/v1/namespaces/default/pods/page-0"))
            .bearer_auth(NODE_TOKEN)
            .json(&json!({"gracePeriodSeconds": 0})),
    )
    .await?;
    assert_eq!(code, 200, "{s}");
    let (code, _) = call(h.get(url("/api/v1/namespaces/default/pods/page-0"))).await?;
    assert_eq!(code, 404);

    // Delete preconditions: a wrong uid or resourceVersion is a conflict, and nothing goes.
    let (code, s) = call(
        h.delete(url("/api/v1/namespaces/default/pods/page-1"))
            .json(&json!({"preconditions": {"uid": "00000000-0000-4000-8000-000000000000"}})),
    )
    .await?;
    assert_eq!(code, 409, "{s}");
    let (code, s) = call(
        h.delete(url("/api/v1/namespaces/default/pods/page-1"))
            .json(&json!({"preconditions": {"resourceVersion": "1"}})),
    )
    .await?;
    assert_eq!(code, 409, "{s}");
    let (code, _) = call(h.get(url("/api/v1/namespaces/default/pods/page-1"))).await?;
    assert_eq!(code, 200);

    // Unknown fields under the default fieldValidation (Warn) are dropped with a warning.
    let mut typo = pod("warned", json!({}));
    typo["spec"]["containers"][0]["imagee"] = json!("x");
    let r = h.post(&pods).json(&typo).send().await?;
    assert_eq!(r.status().as_u16(), 201);
    let warning = r
        .headers()
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        warning.contains("unknown field") && warning.contains("imagee"),
        "{warning:?}"
    );
    let stored: Value = r.json().await?;
    assert!(
        stored["spec"]["containers"][0].get("imagee").is_none(),
        "{stored}"
    );

    // Dry run changes nothing; deletecollection removes what the selector matches.
    let (code, _) = call(
        h.post(format!("{pods}?dryRun=All"))
            .json(&pod("dry", json!({}))),
    )
    .await?;
    assert_eq!(code, 200);
    let (code, _) = call(h.get(url("/api/v1/namespaces/default/pods/dry"))).await?;
    assert_eq!(code, 404);
    let (code, gone) = call(h.delete(format!("{pods}?labelSelector=set%3Dpaged"))).await?;
    assert_eq!(code, 200, "{gone}");
    assert_eq!(names(&gone).len(), 4, "{gone}");
    let (_, left) = call(h.get(&pods)).await?;
    assert_eq!(
        names(&left).len(),
        3,
        "the generated and the warned pods remain: {left}"
    );

    // A deleted namespace is Terminating, with its content, until it is emptied and
    // finalized: the namespace controller's work, which this API-only master does not run,
    // so the test does what the controller would. The system ones may not be deleted.
    let (code, _) = call(
        h.post(url("/api/v1/namespaces"))
            .json(&json!({"metadata": {"name": "tmp"}})),
    )
    .await?;
    assert_eq!(code, 201);
    let (code, _) = call(
        h.post(url("/api/v1/namespaces/tmp/pods"))
            .json(&pod("x", json!({}))),
    )
    .await?;
    assert_eq!(code, 201);
    let (code, marked) = call(h.delete(url("/api/v1/namespaces/tmp"))).await?;
    assert_eq!(code, 200, "{marked}");
    assert_eq!(marked["status"]["phase"], "Terminating", "{marked}");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(
        marked["spec"]["finalizers"],
        json!(["kubernetes"]),
        "{marked}"
    );
    let (code, _) = call(h.get(url("/api/v1/namespaces/tmp/pods/x"))).await?;
    assert_eq!(code, 200, "the content stays until it is deleted");
    let (code, s) = call(
        h.post(url("/api/v1/namespaces/tmp/pods"))
            .json(&pod("y", json!({}))),
    )
    .await?;
    assert_eq!(code, 403, "nothing new in a terminating namespace: {s}");
    assert_eq!(
        s["message"],
        "unable to create new content in namespace tmp because it is being terminated"
    );
    let (code, gone) = call(h.delete(url("/api/v1/namespaces/tmp/pods"))).await?;
    assert_eq!((code, names(&gone)), (200, vec!["x".to_string()]), "{gone}");
    let (code, _) = call(h.get(url("/api/v1/namespaces/tmp/pods/x"))).await?;
    assert_eq!(code, 404, "an unscheduled pod goes at once");
    let (code, still) = call(h.get(url("/api/v1/namespaces/tmp"))).await?;
    assert_eq!(
        (code, &still["status"]["phase"]),
        (200, &json!("Terminating"))
    );
    let (code, done) = call(h.put(url("/api/v1/namespaces/tmp/finalize")).json(&json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"},
        "spec": {"finalizers": []}
    })))
    .await?;
    assert_eq!(code, 200, "{done}");
    let (code, _) = call(h.get(url("/api/v1/namespaces/tmp"))).await?;
    assert_eq!(code, 404, "finalized, the namespace is gone");
    let (code, s) = call(
        h.post(url("/api/v1/namespaces/tmp/pods"))
            .json(&pod("y", json!({}))),
    )
    .await?;
    assert_eq!(code, 404, "no namespace, no pods: {s}");
    let (code, _) = call(h.delete(url("/api/v1/namespaces/default"))).await?;
    assert_eq!(code, 403);
    cluster.passed();
    Ok(())
}
