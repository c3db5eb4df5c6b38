//! The API on three masters: a write through a follower commits, writes through a follower
//! wait out a leader's handover (no error) and crash (only the one in flight may be 504), and
//! a watch open on a follower goes on, with no gap and no duplicate, while the leader is
//! killed.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use navarch_tests::{https_client_with, wait_for, Cluster};
use serde_json::{json, Value};

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

const WRITES: usize = 30;

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// Creates `name` through `url`, retrying through an election. A timeout leaves the outcome
/// unknown; the retry then finds it committed (409 AlreadyExists) or commits it.
async fn create_acknowledged(http: &reqwest::Client, url: &str, name: &str) -> Result<()> {
    for _ in 0..100 {
        match http.post(url).json(&pod(name)).send().await {
            Ok(r) if r.status().as_u16() == 201 => return Ok(()),
            Ok(r) if r.status().as_u16() == 409 => return Ok(()),
            Ok(r) if [429, 500, 503, 504].contains(&r.status().as_u16()) => {}
            Ok(r) => bail!("create {name}: {} {}", r.status(), r.text().await?),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("create {name} never succeeded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_writes_commit_and_a_follower_watch_survives_leader_kill() -> Result<()> {
    let mut cluster = Cluster::start(3, &[API_ONLY]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let (f, g) = ((leader + 1) % 3, (leader + 2) % 3);
    let admin = cluster.http().clone();
    let ns_url = cluster.url(f, "/api/v1/namespaces");
    // A write through a follower commits, and the leader reads it back.
    let r = wait_for(
        Duration::from_secs(20),
        "a namespace created through a follower",
        || async {
            let r = admin
                .post(&ns_url)
                .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ha"}}))
                .send()
                .await
                .ok()?;
            matches!(r.status().as_u16(), 201 | 409).then_some(r)
        },
    )
    .await?;
    assert!(r.status().as_u16() == 201, "created once");
    let on_leader = admin
        .get(cluster.url(leader, "/api/v1/namespaces/ha"))
        .send()
        .await?;
    assert_eq!(on_leader.status().as_u16(), 200);

    // The request's correlation id follows the forwarded write into the leader's tap.
    let id = navarch_net::trace::CorrelationId::new_random().to_string();
    let r = admin
        .post(cluster.url(g, "/api/v1/namespaces/ha/pods"))
        .header("x-correlation-id", &id)
        .json(&pod("traced"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        r.headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok()),
        Some(id.as_str())
    );
    let tap_url = cluster.url(leader, &format!("/debug/messages?correlation={id}"));
    let records = wait_for(
        Duration::from_secs(10),
        "the leader's tap to record the write",
        || async {
            let v: Value = admin.get(&tap_url).send().await.ok()?.json().await.ok()?;
            let text = v.to_string();
            (v.as_array().is_some_and(|a| !a.is_empty()) && text.contains("store.txn")).then_some(v)
        },
    )
    .await?;
    assert!(records.to_string().contains(&id), "{records}");

    // Open a watch on follower f from the current list's resourceVersion.
    let pods_f = cluster.url(f, "/api/v1/namespaces/ha/pods");
    let list: Value = admin.get(&pods_f).send().await?.json().await?;
    let start_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list rv")?
        .to_string();
    let streaming = https_client_with(&cluster.identity("watcher", &["system:masters"])?, None)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, u64)>();
    let watch_url = format!("{pods_f}?watch=1&resourceVersion={start_rv}");
    let watcher = tokio::spawn(async move {
        let resp = streaming.get(&watch_url).send().await?;
        anyhow::ensure!(resp.status().is_success(), "watch: {}", resp.status());
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let ev: Value = serde_json::from_slice(&line)?;
                let name = ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let rv = ev["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                let ty = ev["type"].as_str().unwrap_or("").to_string();
                if tx.send((ty, name, rv)).is_err() {
                    return Ok(());
                }
            }
        }
        bail!("the watch on the follower ended")
    });

    // Write through the other follower; kill the leader a third of the way in.
    let pods_g = cluster.url(g, "/api/v1/namespaces/ha/pods");
    for i in 0..WRITES {
        if i == WRITES / 3 {
            cluster.kill(leader);
        }
        create_acknowledged(&admin, &pods_g, &format!("w-{i:02}")).await?;
    }

    // Every acknowledged pod arrives once, in revision order, on the same stream.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last_rv = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < WRITES {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .context("waiting for watch events")?;
        let Some((ty, name, rv)) = ev else {
            let r = watcher.await?;
            bail!("the watch stopped early: {r:?}");
        };
        assert_eq!(ty, "ADDED", "{name}");
        assert!(rv > last_rv, "revisions rise: {rv} after {last_rv}");
        last_rv = rv;
        *seen.entry(name).or_default() += 1;
    }
    // Nothing more arrives (no duplicate) within a short grace.
    let extra = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");
    for i in 0..WRITES {
        assert_eq!(
            seen.get(&format!("w-{i:02}")),
            Some(&1),
            "w-{i:02} exactly once"
        );
    }
    assert!(
        !watcher.is_finished(),
        "the watch on the follower is still open"
    );
    watcher.abort();
    cluster.passed();
    Ok(())
}

/// Creates pods `prefix-0..` through member `via` one after another until `stop`, counting
/// each answer by status code.
async fn create_until(
    http: reqwest::Client,
    url: String,
    prefix: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(Vec<String>, HashMap<u16, usize>)> {
    let mut created = Vec::new();
    let mut codes: HashMap<u16, usize> = HashMap::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let name = format!("{prefix}-{i}");
        i += 1;
        let code = match http.post(&url).json(&pod(&name)).send().await {
            Ok(r) => r.status().as_u16(),
            Err(e) => bail!("create {name}: the request failed: {e}"),
        };
        *codes.entry(code).or_default() += 1;
        if code == 201 {
            created.push(name);
        }
    }
    Ok((created, codes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_through_a_follower_wait_out_a_handover_and_a_crash() -> Result<()> {
    let mut cluster = Cluster::start(3, &[API_ONLY]).await?;
    let admin = cluster.http().clone();

    // SIGTERM: the leader hands over; a client of a follower sees no error at all.
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let f = (leader + 1) % 3;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = cluster.url(f, "/api/v1/namespaces/default/pods");
    let writer = tokio::spawn(create_until(
        admin.clone(),
        url.clone(),
        "term".into(),
        stop.clone(),
    ));
    let count = |cluster: &Cluster, i: usize| {
        let http = admin.clone();
        let url = cluster.url(i, "/api/v1/namespaces/default/pods");
        async move {
            let r = http.get(url).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            v["items"].as_array().map(|a| a.len())
        }
    };
    let before = wait_for(Duration::from_secs(20), "pods to be created", || async {
        count(&cluster, f).await.filter(|n| *n >= 20)
    })
    .await?;
    let status = cluster.terminate(leader, Duration::from_secs(10)).await?;
    assert!(status.success(), "the leader exited with {status}");
    wait_for(
        Duration::from_secs(20),
        "pods created after the handover",
        || async { count(&cluster, f).await.filter(|n| *n >= before + 20) },
    )
    .await?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (created, codes) = writer.await??;
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        vec![201],
        "every create through the follower succeeded across the handover: {codes:?}"
    );
    cluster.spawn(leader, false)?;

    // SIGKILL: requests sent after the crash wait for the new leader and succeed; only one
    // in flight at the moment of the kill may end as 504 (its outcome unknown), never as an
    // error of the client's.
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let f = (leader + 1) % 3;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = cluster.url(f, "/api/v1/namespaces/default/pods");
    let writer = tokio::spawn(create_until(
        admin.clone(),
        url,
        "kill".into(),
        stop.clone(),
    ));
    let before = wait_for(Duration::from_secs(20), "pods to be created", || async {
        count(&cluster, f)
            .await
            .filter(|n| *n >= created.len() + 20)
    })
    .await?;
    cluster.kill(leader);
    wait_for(
        Duration::from_secs(20),
        "pods created after the crash",
        || async { count(&cluster, f).await.filter(|n| *n >= before + 20) },
    )
    .await?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, codes) = writer.await??;
    let unknown = codes.get(&504).copied().unwrap_or(0);
    assert!(
        codes.keys().all(|c| *c == 201 || *c == 504) && unknown <= 1,
        "creates through the follower across a crash: {codes:?}"
    );
    cluster.passed();
    Ok(())
}
