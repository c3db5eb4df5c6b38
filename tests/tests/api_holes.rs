//! Regression tests for the holes found by trying the API as an attacker and as a careless
//! user would, each against a running master: every one of them failed on the server before
//! the request pipeline (run them with `NAVARCH_BIN_DIR` pointing at an older build to see it).

use std::time::Duration;

use anyhow::{Context, Result};
use navarch_net::pki::Identity;
use navarch_tests::{https_client, https_client_with, wait_for, Cluster};
use serde_json::{json, Value};

const VIEW_TOKEN: &str = "holes-viewer-token";
const NODE_TOKEN: &str = "holes-node-token";
const NOBODY_TOKEN: &str = "holes-nobody-token";
const WRITER_TOKEN: &str = "holes-writer-token";

struct Reply {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

async fn send(rb: reqwest::RequestBuilder) -> Result<Reply> {
    let r = rb.send().await?;
    let code = r.status().as_u16();
    let warnings = r
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let text = r.text().await?;
    Ok(Reply {
        code,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        warnings,
    })
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// A master with token users: a viewer, node n1, a user with no role, and a writer bound to
/// cluster-admin by the policy file.
struct Setup {
    cluster: Cluster,
    admin: reqwest::Client,
    anonymous: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start(extra: &[&str]) -> Result<Setup> {
        let dir = tempfile::tempdir()?;
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(
            &tokens,
            format!(
                "{VIEW_TOKEN},viewer,u1,navarch:viewers\n{NODE_TOKEN},system:node:n1,u2,system:nodes\n{NOBODY_TOKEN},nobody,u3\n{WRITER_TOKEN},writer,u4\n"
            ),
        )?;
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, r#"[{"user": "writer", "role": "cluster-admin"}]"#)?;
        let mut args = vec![
            // The API server alone: no garbage collector finishes what these tests check.
            "--no-control-plane",
            "--token-auth-file",
            tokens.to_str().context("path")?,
            "--authorization-policy-file",
            policy.to_str().context("path")?,
        ];
        args.extend_from_slice(extra);
        let cluster = Cluster::start(1, &args).await?;
        let admin = cluster.http().clone();
        wait_for(Duration::from_secs(20), "the default namespace", || async {
            let r = admin
                .get(cluster.url(0, "/api/v1/namespaces/default"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        })
        .await?;
        let ca = std::fs::read_to_string(cluster.ca_dir.join("ca.crt"))?;
        let anonymous = https_client(&Identity::anonymous(ca))?;
        Ok(Setup {
            cluster,
            admin,
            anonymous,
            _dir: dir,
        })
    }

    fn url(&self, p: &str) -> String {
        self.cluster.url(0, p)
    }

    fn as_token(&self, rb: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        rb.bearer_auth(token)
    }

    async fn alive(&self) -> Result<()> {
        let r = send(self.admin.get(self.url("/api/v1/namespaces/default/pods"))).await?;
        anyhow::ensure!(r.code == 200, "the master still serves: {}", r.body);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletes_of_owner_reference_cycles_leave_the_server_up() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let pods = s.url("/api/v1/namespaces/default/pods");
    let mut uid = std::collections::HashMap::new();
    for name in ["selfish", "left", "right"] {
        let r = send(s.admin.post(&pods).json(&pod(name))).await?;
        assert_eq!(r.code, 201, "{}", r.body);
        uid.insert(
            name,
            r.body["metadata"]["uid"].as_str().unwrap().to_string(),
        );
    }
    let owned_by = |owner: &str| {
        json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": owner, "uid": uid[owner]}]}})
    };
    // An object that owns itself, and two that own each other.
    for (name, owner) in [("selfish", "selfish"), ("left", "right"), ("right", "left")] {
        let r = send(
            s.admin
                .patch(format!("{pods}/{name}"))
                .header("content-type", "application/merge-patch+json")
                .body(owned_by(owner).to_string()),
        )
        .await?;
        assert_eq!(r.code, 200, "{}", r.body);
    }
    for name in ["selfish", "left"] {
        let r = send(
            s.admin
                .delete(format!("{pods}/{name}"))
                .json(&json!({"propagationPolicy": "Foreground"})),
        )
        .await?;
        assert_eq!(r.code, 200, "{}", r.body);
    }
    s.alive().await?;
    for name in ["selfish", "left", "right"] {
        let r = send(s.admin.get(format!("{pods}/{name}"))).await?;
        assert_eq!(r.code, 404, "{name} is gone: {}", r.body);
    }
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_patch_that_doubles_the_document_is_refused_not_fatal() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let nodes = s.url("/api/v1/nodes");
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "spec": {"providerID": "x".repeat(100)}});
    let r = send(s.as_token(s.anonymous.post(&nodes), NODE_TOKEN).json(&node)).await?;
    assert_eq!(r.code, 201, "{}", r.body);
    // 60 copies of the spec into itself: 2.5 KB that would need 2^60 times the memory.
    let ops: Vec<Value> = (0..60)
        .map(|i| json!({"op": "copy", "from": "/spec", "path": format!("/spec/c{i}")}))
        .collect();
    let patch = Value::Array(ops).to_string();
    assert!(patch.len() < 4096, "{}", patch.len());
    let r = send(
        s.as_token(s.anonymous.patch(format!("{nodes}/n1")), NODE_TOKEN)
            .header("content-type", "application/json-patch+json")
            .body(patch),
    )
    .await?;
    assert_eq!(r.code, 413, "{}", r.body);
    assert_eq!(r.body["reason"], "RequestEntityTooLarge");
    s.alive().await?;
    s.cluster.passed();
    Ok(())
}

/// A POST whose body never arrives in full, sent as `token` (or the admin when `None`).
fn slow_post(
    s: &Setup,
    token: Option<&str>,
    query: &str,
) -> (
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tx.try_send(Ok(bytes::Bytes::from_static(b"{\"metadata\":")))
        .expect("room for one chunk");
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    // Its own connection, as a slow client would have.
    let client = https_client_with(
        &s.cluster.identity("slow", &[]).expect("a certificate"),
        None,
    )
    .expect("a client");
    let mut rb = client
        .post(s.url(&format!("/api/v1/namespaces/default/pods{query}")))
        .header("content-type", "application/json")
        .header("content-length", "1000")
        .body(reqwest::Body::wrap_stream(stream));
    rb = rb.bearer_auth(token.unwrap_or(WRITER_TOKEN));
    (tokio::spawn(rb.send()), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_cannot_lock_everyone_out() -> Result<()> {
    let mut s = Setup::start(&[
        "--max-requests-inflight",
        "4",
        "--max-mutating-requests-inflight",
        "4",
        "--request-body-timeout",
        "2",
    ])
    .await?;
    // A user with no permissions: refused on the request line, before any body is read,
    // however many such requests arrive.
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(slow_post(&s, Some(NOBODY_TOKEN), ""));
    }
    for (task, _tx) in &mut held {
        let r = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .context("an unauthorized slow POST is answered at once")???;
        assert_eq!(r.status().as_u16(), 403);
    }
    let r = send(
        s.admin
            .post(s.url("/api/v1/namespaces/default/pods"))
            .json(&pod("a")),
    )
    .await?;
    assert_eq!(r.code, 201, "the admin is not locked out: {}", r.body);
    // An authorized one whose body never completes is timed out (408) and frees its permit.
    let mut writers: Vec<_> = (0..4).map(|_| slow_post(&s, None, "")).collect();
    for (task, _tx) in &mut writers {
        let r = tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .context("a slow body is timed out")???;
        assert_eq!(r.status().as_u16(), 408);
    }
    let r = send(
        s.admin
            .post(s.url("/api/v1/namespaces/default/pods"))
            .json(&pod("b")),
    )
    .await?;
    assert_eq!(r.code, 201, "the permits came back: {}", r.body);
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_real_watches_skip_the_inflight_limit() -> Result<()> {
    let mut s = Setup::start(&[
        "--max-mutating-requests-inflight",
        "1",
        "--request-body-timeout",
        "30",
    ])
    .await?;
    // `?watch=true` on a POST is no watch: it holds the one mutating permit like any POST.
    let mut slow = slow_post(&s, None, "?watch=true");
    let r = wait_for(
        Duration::from_secs(10),
        "a 429 behind a slow ?watch=true POST",
        || {
            let s = &s;
            let finished = slow.0.is_finished();
            if finished {
                slow = slow_post(s, None, "?watch=true");
            }
            async move {
                if finished {
                    return None;
                }
                let r = send(
                    s.admin
                        .post(s.url("/api/v1/namespaces/default/pods"))
                        .json(&pod("w")),
                )
                .await
                .ok()?;
                (r.code == 429).then_some(r)
            }
        },
    )
    .await?;
    assert_eq!(r.body["reason"], "TooManyRequests");
    // A real watch is long-running and does not count.
    let watch = https_client_with(&s.cluster.identity("watcher", &["system:masters"])?, None)?
        .get(s.url("/api/v1/namespaces/default/pods?watch=true"))
        .send()
        .await?;
    assert_eq!(watch.status().as_u16(), 200);
    slow.0.abort();
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_may_not_set_restricted_labels_on_its_own_node() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let nodes = s.url("/api/v1/nodes");
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
                      "labels": {"kubernetes.io/hostname": "n1"}}});
    let r = send(s.as_token(s.anonymous.post(&nodes), NODE_TOKEN).json(&node)).await?;
    assert_eq!(r.code, 201, "{}", r.body);
    for label in [
        "node-role.kubernetes.io/control-plane",
        "node-restriction.kubernetes.io/trusted",
    ] {
        let patch = json!({"metadata": {"labels": {label: "true"}}});
        let r = send(
            s.as_token(s.anonymous.patch(format!("{nodes}/n1")), NODE_TOKEN)
                .header("content-type", "application/merge-patch+json")
                .body(patch.to_string()),
        )
        .await?;
        assert_eq!(r.code, 403, "{label}: {}", r.body);
        assert!(
            r.body["message"].as_str().unwrap_or("").contains(label),
            "{}",
            r.body
        );
    }
    // A node may still set its own ordinary labels; an admin may set the restricted ones.
    let r = send(
        s.as_token(s.anonymous.patch(format!("{nodes}/n1")), NODE_TOKEN)
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"metadata":{"labels":{"example.com/rack":"r1"}}}"#),
    )
    .await?;
    assert_eq!(r.code, 200, "{}", r.body);
    let r = send(
        s.admin
            .patch(format!("{nodes}/n1"))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"metadata":{"labels":{"node-role.kubernetes.io/worker":""}}}"#),
    )
    .await?;
    assert_eq!(r.code, 200, "{}", r.body);
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_fields_are_refused_under_strict_validation() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let body = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dup","name":"dup"},
                   "spec":{"containers":[{"name":"c","image":"busybox","image":"nginx"}]}}"#;
    let pods = s.url("/api/v1/namespaces/default/pods");
    let r = send(
        s.admin
            .post(format!("{pods}?fieldValidation=Strict"))
            .header("content-type", "application/json")
            .body(body),
    )
    .await?;
    assert_eq!(r.code, 422, "{}", r.body);
    let causes: Vec<&str> = r.body["details"]["causes"]
        .as_array()
        .context("causes")?
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(causes, ["metadata.name", "spec.containers[0].image"]);
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "FieldValueDuplicate"
    );
    assert_eq!(send(s.admin.get(format!("{pods}/dup"))).await?.code, 404);
    // Warn (the default) stores the object and says what it saw.
    let r = send(
        s.admin
            .post(&pods)
            .header("content-type", "application/json")
            .body(body),
    )
    .await?;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("duplicate field \\\"spec.containers[0].image\\\"")),
        "{:?}",
        r.warnings
    );
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_tokens_are_bound_to_their_list_and_future_versions_are_504() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let pods = s.url("/api/v1/namespaces/default/pods");
    for n in ["p1", "p2"] {
        assert_eq!(send(s.admin.post(&pods).json(&pod(n))).await?.code, 201);
    }
    let page = send(s.admin.get(format!("{pods}?limit=1"))).await?;
    let token = page.body["metadata"]["continue"]
        .as_str()
        .context("a continue token")?
        .to_string();
    let r = send(
        s.admin
            .get(s.url(&format!("/api/v1/nodes?limit=1&continue={token}"))),
    )
    .await?;
    assert_eq!(r.code, 400, "{}", r.body);
    let r = send(
        s.admin
            .get(s.url(&format!("/api/v1/pods?limit=1&continue={token}"))),
    )
    .await?;
    assert_eq!(
        r.code, 400,
        "a namespace's token is not one for all namespaces: {}",
        r.body
    );
    let r = send(s.admin.get(format!("{pods}?limit=1&continue={token}"))).await?;
    assert_eq!(r.code, 200, "{}", r.body);
    // A resourceVersion from the future.
    let rv: u64 = page.body["metadata"]["resourceVersion"]
        .as_str()
        .context("rv")?
        .parse()?;
    let r = send(
        s.admin
            .get(format!("{pods}/p1?resourceVersion={}", rv + 1_000_000)),
    )
    .await?;
    assert_eq!(r.code, 504, "{}", r.body);
    assert_eq!(r.body["reason"], "Timeout");
    assert!(r.body["message"]
        .as_str()
        .unwrap_or("")
        .starts_with("Too large resource version"));
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletecollection_of_namespaces_marks_what_it_may_and_says_what_it_refused() -> Result<()>
{
    let mut s = Setup::start(&[]).await?;
    let nss = s.url("/api/v1/namespaces");
    for n in ["x1", "x2"] {
        let r = send(
            s.admin
                .post(&nss)
                .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})),
        )
        .await?;
        assert_eq!(r.code, 201, "{}", r.body);
    }
    let r = send(s.admin.delete(&nss)).await?;
    assert_eq!(r.code, 200, "{}", r.body);
    let deleted: Vec<&str> = r.body["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert!(
        deleted.contains(&"x1") && deleted.contains(&"x2"),
        "{deleted:?}"
    );
    for refused in ["default", "kube-system", "kube-public"] {
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("was not deleted") && w.contains(&format!("\\\"{refused}\\\""))),
            "{refused}: {:?}",
            r.warnings
        );
    }
    // Deleted namespaces are Terminating until they are finalized (this master runs no
    // namespace controller: the test finalizes them as it would, once they are empty).
    for n in ["x1", "x2"] {
        let r = send(s.admin.get(format!("{nss}/{n}"))).await?;
        assert_eq!(r.code, 200, "{}", r.body);
        assert_eq!(r.body["status"]["phase"], "Terminating", "{}", r.body);
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n},
                          "spec": {"finalizers": []}});
        let r = send(s.admin.put(format!("{nss}/{n}/finalize")).json(&body)).await?;
        assert_eq!(r.code, 200, "{}", r.body);
        assert_eq!(send(s.admin.get(format!("{nss}/{n}"))).await?.code, 404);
    }
    let r = send(s.admin.get(format!("{nss}/default"))).await?;
    assert_eq!(r.code, 200);
    assert!(
        r.body["metadata"]["deletionTimestamp"].is_null(),
        "{}",
        r.body
    );
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_paths_are_authorized_however_they_are_spelled() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    for (token, method, path) in [
        (VIEW_TOKEN, "GET", "/%64ebug/faults"),
        (VIEW_TOKEN, "GET", "/debug/faults"),
        (VIEW_TOKEN, "GET", "/%64ebug/actors"),
        (NODE_TOKEN, "POST", "/%64ebug/kill?prefix=/master"),
        (NODE_TOKEN, "POST", "/debug/%66aults"),
        (NODE_TOKEN, "DELETE", "/de%62ug/faults"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let r = send(
            s.as_token(s.anonymous.request(m, s.url(path)), token)
                .header("content-type", "application/json")
                .body(r#"{"peer":"m2","direction":"both","fault":"cut"}"#),
        )
        .await?;
        assert_eq!(r.code, 403, "{method} {path}: {}", r.body);
    }
    let r = send(s.admin.get(s.url("/%64ebug/faults"))).await?;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body, json!([]), "no fault was set by anyone else");
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_reservations_follow_every_write() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let svcs = s.url("/api/v1/namespaces/default/services");
    let svc = |name: &str, ty: &str, node_port: Option<i64>| {
        let mut port = json!({"port": 80, "protocol": "TCP"});
        if let Some(n) = node_port {
            port["nodePort"] = json!(n);
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"type": ty, "selector": {"app": name}, "ports": [port]}})
    };
    let r = send(s.admin.post(&svcs).json(&svc("a", "ClusterIP", None))).await?;
    assert_eq!(r.code, 201, "{}", r.body);
    // A patch to NodePort with a given port reserves it...
    let r = send(
        s.admin
            .patch(format!("{svcs}/a"))
            .header("content-type", "application/merge-patch+json")
            .body(json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}}).to_string()),
    )
    .await?;
    assert_eq!(r.code, 200, "{}", r.body);
    // ...so another Service cannot share it.
    let r = send(s.admin.post(&svcs).json(&svc("b", "NodePort", Some(30080)))).await?;
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("already allocated"),
        "{}",
        r.body
    );
    // An update moves the reservation: the old port is free again.
    let mut moved = send(s.admin.get(format!("{svcs}/a"))).await?.body;
    moved["spec"]["ports"][0]["nodePort"] = json!(30081);
    let r = send(s.admin.put(format!("{svcs}/a")).json(&moved)).await?;
    assert_eq!(r.code, 200, "{}", r.body);
    let r = send(s.admin.post(&svcs).json(&svc("b", "NodePort", Some(30080)))).await?;
    assert_eq!(r.code, 201, "{}", r.body);
    let r = send(s.admin.post(&svcs).json(&svc("c", "NodePort", Some(30081)))).await?;
    assert_eq!(r.code, 422, "{}", r.body);
    // Deleting a Service that was patched works and frees what it held.
    let r = send(s.admin.delete(format!("{svcs}/a"))).await?;
    assert_eq!(r.code, 200, "{}", r.body);
    let r = send(s.admin.post(&svcs).json(&svc("c", "NodePort", Some(30081)))).await?;
    assert_eq!(r.code, 201, "{}", r.body);
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_keep_the_propagation_policy_of_a_delete() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let pods = s.url("/api/v1/namespaces/default/pods");
    for (owner, policy) in [("keep-orphan", "Orphan"), ("keep-fg", "Foreground")] {
        let mut o = pod(owner);
        o["metadata"]["finalizers"] = json!(["example.com/hold"]);
        let r = send(s.admin.post(&pods).json(&o)).await?;
        assert_eq!(r.code, 201, "{}", r.body);
        let uid = r.body["metadata"]["uid"].as_str().unwrap().to_string();
        let dep = format!("{owner}-dep");
        let mut d = pod(&dep);
        d["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Pod", "name": owner, "uid": uid}]);
        assert_eq!(send(s.admin.post(&pods).json(&d)).await?.code, 201);
        let r = send(
            s.admin
                .delete(format!("{pods}/{owner}"))
                .json(&json!({"propagationPolicy": policy})),
        )
        .await?;
        assert_eq!(r.code, 200, "{}", r.body);
        // The owner waits for its finalizer; the dependent is untouched meanwhile.
        let held = send(s.admin.get(format!("{pods}/{owner}"))).await?;
        assert!(!held.body["metadata"]["deletionTimestamp"].is_null());
        assert_eq!(send(s.admin.get(format!("{pods}/{dep}"))).await?.code, 200);
        // The finalizer goes: the policy of the delete applies now.
        let r = send(
            s.admin
                .patch(format!("{pods}/{owner}"))
                .header("content-type", "application/json-patch+json")
                .body(r#"[{"op":"test","path":"/metadata/finalizers/0","value":"example.com/hold"},{"op":"remove","path":"/metadata/finalizers/0"}]"#),
        )
        .await?;
        assert_eq!(r.code, 200, "{}", r.body);
        assert_eq!(
            send(s.admin.get(format!("{pods}/{owner}"))).await?.code,
            404
        );
        let after = send(s.admin.get(format!("{pods}/{dep}"))).await?;
        match policy {
            "Orphan" => {
                assert_eq!(after.code, 200, "orphaned, not deleted: {}", after.body);
                assert!(
                    after.body["metadata"]["ownerReferences"]
                        .as_array()
                        .is_none_or(|r| r.is_empty()),
                    "{}",
                    after.body
                );
            }
            _ => assert_eq!(after.code, 404, "deleted with its owner: {}", after.body),
        }
    }
    s.cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_body_that_is_not_an_object_is_a_400() -> Result<()> {
    let mut s = Setup::start(&[]).await?;
    let pods = s.url("/api/v1/namespaces/default/pods");
    assert_eq!(
        send(s.admin.post(&pods).json(&pod("bindme"))).await?.code,
        201
    );
    for body in ["[1,2]", "\"node\"", "42", "null"] {
        let r = send(
            s.admin
                .post(format!("{pods}/bindme/binding"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await?;
        assert_eq!(r.code, 400, "{body}: {}", r.body);
        assert_eq!(r.body["kind"], "Status");
    }
    s.alive().await?;
    s.cluster.passed();
    Ok(())
}
