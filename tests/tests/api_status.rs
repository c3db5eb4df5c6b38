//! Every error the API answers with is a Kubernetes `Status` with the right code and reason,
//! provoked on a running master: 400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500.
//! Refused requests store nothing, the audit log records who did what, and the server keeps
//! serving.

use std::time::Duration;

use anyhow::{Context, Result};
use navarch_net::pki::Identity;
use navarch_store::{ObjectKey, Op, Txn, TxnOutcome};
use navarch_tests::{https_client, https_client_with, wait_for, Cluster};
use serde_json::{json, Value};

const VIEW_TOKEN: &str = "view-token-8c1d2f";
const NODE_TOKEN: &str = "node-token-51be7a";

struct Reply {
    code: u16,
    body: Value,
    retry_after: Option<String>,
}

async fn send(rb: reqwest::RequestBuilder) -> Result<Reply> {
    let r = rb.send().await?;
    let code = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Reply {
        code,
        body,
        retry_after,
    })
}

/// Asserts `r` is a failure `Status` with `code` and `reason`.
fn status(r: &Reply, code: u16, reason: &str) {
    assert_eq!(r.code, code, "{}", r.body);
    assert_eq!(r.body["kind"], "Status", "{}", r.body);
    assert_eq!(r.body["status"], "Failure", "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.body["reason"], reason, "{}", r.body);
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_status_with_the_right_code() -> Result<()> {
    let tokens = tempfile::tempdir()?;
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(
        &token_file,
        format!(
            "{VIEW_TOKEN},viewer,u1,navarch:viewers\n{NODE_TOKEN},system:node:n1,u2,system:nodes\n"
        ),
    )?;
    let mut cluster = Cluster::start(
        1,
        &[
            "--token-auth-file",
            token_file.to_str().context("path")?,
            "--max-requests-inflight",
            "1",
            "--max-mutating-requests-inflight",
            "1",
            "--history-revisions",
            "4",
        ],
    )
    .await?;
    let admin = cluster.http().clone();
    let url = |p: &str| cluster.url(0, p);
    let pods = url("/api/v1/namespaces/default/pods");
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        let r = admin
            .get(url("/api/v1/namespaces/default"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await?;
    let ca_pem = std::fs::read_to_string(cluster.ca_dir.join("ca.crt"))?;
    let anonymous = https_client(&Identity::anonymous(ca_pem.clone()))?;

    // 401: no credentials, or a token nobody issued. Health and version stay open.
    status(&send(anonymous.get(&pods)).await?, 401, "Unauthorized");
    status(
        &send(anonymous.get(&pods).bearer_auth("forged")).await?,
        401,
        "Unauthorized",
    );
    for open in ["/healthz", "/readyz", "/livez", "/version"] {
        assert_eq!(send(anonymous.get(url(open))).await?.code, 200, "{open}");
    }

    // 403: a viewer reads but may not write; a node may write only its own Node.
    let viewer = |rb: reqwest::RequestBuilder| rb.bearer_auth(VIEW_TOKEN);
    assert_eq!(send(viewer(anonymous.get(&pods))).await?.code, 200);
    let r = send(viewer(anonymous.post(&pods)).json(&pod("by-viewer"))).await?;
    status(&r, 403, "Forbidden");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("User \"viewer\" cannot create"),
        "{}",
        r.body
    );
    status(
        &send(viewer(anonymous.get(url("/debug/actors")))).await?,
        403,
        "Forbidden",
    );
    assert_eq!(send(admin.get(url("/debug/actors"))).await?.code, 200);
    let node = |rb: reqwest::RequestBuilder| rb.bearer_auth(NODE_TOKEN);
    let nodes = url("/api/v1/nodes");
    let r = send(
        node(anonymous.post(&nodes))
            .json(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})),
    )
    .await?;
    assert_eq!(r.code, 201, "a node registers itself: {}", r.body);
    let r = send(
        node(anonymous.post(&nodes))
            .json(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})),
    )
    .await?;
    status(&r, 403, "Forbidden");
    let r = send(
        admin
            .post(&nodes)
            .json(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})),
    )
    .await?;
    assert_eq!(r.code, 201, "{}", r.body);
    let merge =
        |rb: reqwest::RequestBuilder| rb.header("content-type", "application/merge-patch+json");
    let r = send(
        node(merge(anonymous.patch(url("/api/v1/nodes/n2/status"))))
            .body(r#"{"status":{"phase":"Running"}}"#),
    )
    .await?;
    status(&r, 403, "Forbidden");
    let r = send(
        node(merge(anonymous.patch(url("/api/v1/nodes/n1/status"))))
            .body(r#"{"metadata":{"labels":{"a":"b"}}}"#),
    )
    .await?;
    assert_eq!(r.code, 200, "a node updates its own status: {}", r.body);
    // A node certificate works like a node token.
    let n2cert = cluster.identity("system:node:n2", &["system:nodes"])?;
    let n2 = https_client(&n2cert)?;
    let r =
        send(merge(n2.patch(url("/api/v1/nodes/n1"))).body(r#"{"metadata":{"labels":{"x":"y"}}}"#))
            .await?;
    status(&r, 403, "Forbidden");

    // 400: malformed JSON.
    let r = send(
        admin
            .post(&pods)
            .header("content-type", "application/json")
            .body("{\"metadata\": "),
    )
    .await?;
    status(&r, 400, "BadRequest");
    // 404: no such object, no such path.
    let r = send(admin.get(url("/api/v1/namespaces/default/pods/nope"))).await?;
    status(&r, 404, "NotFound");
    assert_eq!(r.body["message"], "pods \"nope\" not found");
    status(
        &send(admin.get(url("/apis/apps/v1/widgets"))).await?,
        404,
        "NotFound",
    );
    // 405: PUT on a collection.
    status(
        &send(admin.put(&pods).json(&pod("x"))).await?,
        405,
        "MethodNotAllowed",
    );
    // 409: AlreadyExists, then a stale resourceVersion.
    let created = send(admin.post(&pods).json(&pod("web"))).await?;
    assert_eq!(created.code, 201, "{}", created.body);
    status(
        &send(admin.post(&pods).json(&pod("web"))).await?,
        409,
        "AlreadyExists",
    );
    let mut stale = created.body.clone();
    let r = send(
        merge(admin.patch(url("/api/v1/namespaces/default/pods/web")))
            .body(r#"{"metadata":{"labels":{"v":"2"}}}"#),
    )
    .await?;
    assert_eq!(r.code, 200, "{}", r.body);
    stale["metadata"]["labels"] = json!({"v": "stale"});
    status(
        &send(
            admin
                .put(url("/api/v1/namespaces/default/pods/web"))
                .json(&stale),
        )
        .await?,
        409,
        "Conflict",
    );
    // 413: a body over 3 MiB.
    let big = format!(
        "{{\"metadata\":{{\"name\":\"big\",\"annotations\":{{\"a\":\"{}\"}}}}}}",
        "x".repeat(4 << 20)
    );
    status(
        &send(
            admin
                .post(&pods)
                .header("content-type", "application/json")
                .body(big),
        )
        .await?,
        413,
        "RequestEntityTooLarge",
    );
    // 415: a content type the API does not take.
    let r = send(
        admin
            .post(&pods)
            .header("content-type", "text/plain")
            .body(pod("typed").to_string()),
    )
    .await?;
    status(&r, 415, "UnsupportedMediaType");
    let r = send(
        admin
            .patch(url("/api/v1/namespaces/default/pods/web"))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await?;
    status(&r, 415, "UnsupportedMediaType");
    // 422: invalid values, unknown fields under Strict, fields navarch does not implement.
    let deployments = url("/apis/apps/v1/namespaces/default/deployments");
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let r = send(admin.post(&deployments).json(&dep)).await?;
    status(&r, 422, "Invalid");
    assert_eq!(
        r.body["details"]["causes"][0]["field"], "spec.replicas",
        "{}",
        r.body
    );
    let mut unknown = pod("strict");
    unknown["spec"]["containers"][0]["imagee"] = json!("typo");
    let r = send(
        admin
            .post(format!("{pods}?fieldValidation=Strict"))
            .json(&unknown),
    )
    .await?;
    status(&r, 422, "Invalid");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.containers[0].imagee"),
        "{}",
        r.body
    );
    let mut volumes = pod("vols");
    volumes["spec"]["volumes"] =
        json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]);
    let r = send(admin.post(&pods).json(&volumes)).await?;
    status(&r, 422, "Invalid");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("not supported"),
        "{}",
        r.body
    );
    // Nothing a refused request sent was stored.
    for name in ["by-viewer", "big", "typed", "strict", "vols", "x"] {
        let r = send(admin.get(url(&format!("/api/v1/namespaces/default/pods/{name}")))).await?;
        assert_eq!(r.code, 404, "{name} must not exist");
    }
    let r = send(admin.get(url("/apis/apps/v1/namespaces/default/deployments/d"))).await?;
    assert_eq!(r.code, 404);

    // 410: a watch from a revision the history no longer holds ends with an in-stream ERROR.
    for i in 0..8 {
        assert_eq!(
            send(admin.post(&pods).json(&pod(&format!("churn-{i}"))))
                .await?
                .code,
            201
        );
    }
    let text = admin
        .get(format!("{pods}?watch=1&resourceVersion=1"))
        .send()
        .await?
        .text()
        .await?;
    let event: Value = serde_json::from_str(text.lines().next().context("an event")?)?;
    assert_eq!(event["type"], "ERROR", "{text}");
    assert_eq!(event["object"]["code"], 410, "{text}");
    assert_eq!(event["object"]["reason"], "Expired", "{text}");
    // sendInitialEvents without its required companions is refused before streaming.
    let r = send(admin.get(format!("{pods}?watch=1&sendInitialEvents=true"))).await?;
    status(&r, 422, "Invalid");

    // 500: an object the store holds but that does not decode.
    let store = cluster.client(0)?;
    let outcome = store
        .txn(&Txn::new(vec![Op::Put {
            key: ObjectKey::new("pods", "default", "broken"),
            value: b"not json".to_vec(),
        }]))
        .await?;
    assert!(matches!(outcome, TxnOutcome::Committed { .. }));
    let r = send(admin.get(url("/api/v1/namespaces/default/pods/broken"))).await?;
    status(&r, 500, "InternalError");

    // 429: with one mutating request allowed in flight, a second one waits for nobody; reads
    // have their own limit and still get through.
    let slow_admin =
        https_client_with(&cluster.identity("slow-admin", &["system:masters"])?, None)?;
    // A POST whose body never arrives in full holds the one mutating permit. It may lose the
    // race to a probe (and get the 429 itself): then it is sent again.
    type Chunks = tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>;
    let start_slow = || {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        tx.try_send(Ok(bytes::Bytes::from_static(b"{\"metadata\":")))
            .expect("room for one chunk");
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
        let task = tokio::spawn(
            slow_admin
                .post(&pods)
                .header("content-type", "application/json")
                .header("content-length", "1000")
                .body(body)
                .send(),
        );
        (task, tx)
    };
    let slow: std::sync::Mutex<(tokio::task::JoinHandle<_>, Chunks)> =
        std::sync::Mutex::new(start_slow());
    let r = wait_for(
        Duration::from_secs(10),
        "a 429 while a request is in flight",
        || async {
            {
                let mut s = slow.lock().unwrap();
                if s.0.is_finished() {
                    // Probe on the next round, once the new one has reached the server.
                    *s = start_slow();
                    return None;
                }
            }
            let r = send(admin.post(&pods).json(&pod("second"))).await.ok()?;
            (r.code == 429).then_some(r)
        },
    )
    .await?;
    status(&r, 429, "TooManyRequests");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let read = send(admin.get(url("/api/v1/namespaces/default/pods/web"))).await?;
    assert_eq!(read.code, 200, "{}", read.body);
    let (task, tx) = slow.into_inner().unwrap();
    task.abort();
    drop(tx);
    wait_for(
        Duration::from_secs(10),
        "the server serves again",
        || async {
            let r = send(admin.get(url("/api/v1/namespaces/default/pods/web")))
                .await
                .ok()?;
            (r.code == 200).then_some(())
        },
    )
    .await?;

    // The audit log: one JSON line per request, with user, verb, resource, code and id.
    let audit = std::fs::read_to_string(cluster.members[0].data_dir.join("audit.log"))?;
    let records: Vec<Value> = audit
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let denied = records
        .iter()
        .find(|r| r["user"] == "viewer" && r["verb"] == "create" && r["code"] == 403)
        .context("the viewer's refused create is audited")?;
    assert_eq!(denied["resource"], "pods");
    assert_eq!(denied["namespace"], "default");
    assert!(denied["correlationId"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert!(denied["latencyMs"].is_number());
    assert!(records
        .iter()
        .any(|r| r["code"] == 401 && r["user"] == "system:anonymous"));
    assert!(
        !audit.contains(VIEW_TOKEN) && !audit.contains(NODE_TOKEN),
        "no secret in the audit log"
    );
    cluster.passed();
    Ok(())
}

/// A body stream fed from a channel (one chunk, then nothing until the channel closes).
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}
