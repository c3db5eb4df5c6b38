//! `/metrics` on a running master: the Prometheus text with the API server's request
//! metrics, the store's and the actors', readable by administrators and the
//! `system:monitoring` group only.

use std::time::Duration;

use anyhow::Result;
use navarch_tests::{https_client, wait_for, Cluster};

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_to_administrators_and_monitoring_only() -> Result<()> {
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let admin = cluster.http().clone();
    let url = cluster.url(0, "/metrics");
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        let r = admin
            .get(cluster.url(0, "/api/v1/namespaces/default"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await?;
    let r = admin.get(cluster.url(0, "/api/v1/pods")).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    // An open watch is counted while it lasts.
    let streams =
        navarch_tests::https_client_with(&cluster.identity("watcher", &["system:masters"])?, None)?;
    let watch = streams
        .get(cluster.url(0, "/api/v1/pods?watch=true"))
        .send()
        .await?;
    assert_eq!(watch.status().as_u16(), 200);
    let text = admin.get(&url).send().await?.text().await?;
    assert!(
        text.contains("apiserver_longrunning_requests{resource=\"pods\"} 1"),
        "{text}"
    );
    for name in [
        "apiserver_request_total{verb=\"LIST\",resource=\"pods\",subresource=\"\",code=\"200\"}",
        "apiserver_request_duration_seconds_bucket",
        "apiserver_current_inflight_requests",
        "navarch_store_commit_latency_seconds_count",
        "navarch_store_apply_latency_seconds_count",
        "navarch_store_raft_term",
        "navarch_store_leader_changes_total",
        "navarch_store_applied_index",
        "navarch_actor_mailbox_depth",
        "navarch_actor_restarts",
    ] {
        assert!(text.contains(name), "{name} is missing from:\n{text}");
    }
    let monitoring = https_client(&cluster.identity("prometheus", &["system:monitoring"])?)?;
    wait_for(
        Duration::from_secs(10),
        "the monitoring role in force",
        || async {
            let r = monitoring.get(&url).send().await.ok()?;
            (r.status().as_u16() == 200).then_some(())
        },
    )
    .await?;
    // A closed watch is noticed when the server next writes to it: at the next event.
    drop(watch);
    let pods = cluster.url(0, "/api/v1/namespaces/default/pods");
    let mut n = 0;
    wait_for(
        Duration::from_secs(10),
        "the watch no longer counted",
        || {
            n += 1;
            let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("tick-{n}")},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
            let (admin, url, pods) = (&admin, &url, &pods);
            async move {
                admin.post(pods).json(&pod).send().await.ok()?;
                let t = admin.get(url).send().await.ok()?.text().await.ok()?;
                t.contains("apiserver_longrunning_requests{resource=\"pods\"} 0")
                    .then_some(())
            }
        },
    )
    .await?;
    let viewer = https_client(&cluster.identity("viewer", &["navarch:viewers"])?)?;
    let r = viewer.get(&url).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    cluster.passed();
    Ok(())
}
