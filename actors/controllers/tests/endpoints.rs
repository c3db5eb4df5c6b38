//! The endpoints controllers over an in-memory API when a write fails: a refused
//! EndpointSlice or Endpoints update (a conflict, as a stale cached resourceVersion meets)
//! is made again, so a pod that became ready while the write failed still gets listed.

use std::sync::Arc;
use std::time::Duration;

use navarch_client::testing::FakeClient;
use navarch_client::{Client, ClientError};
use navarch_controllers::ControllerConfig;
use navarch_model::options::{ListOptions, WriteOptions};
use navarch_model::status::ApiError;
use serde_json::{json, Value};

mod common;
use common::kind;

fn ready_pod(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

/// The ready addresses the objects of `plural` (`endpointslices` or `endpoints`) list.
async fn ready(fake: &FakeClient, group: &str, plural: &str) -> Vec<String> {
    let list = fake
        .list(
            kind(group, plural),
            Some("default"),
            &ListOptions::default(),
        )
        .await
        .unwrap();
    let mut ips: Vec<String> = Vec::new();
    for o in &list.items {
        for ep in o["endpoints"].as_array().into_iter().flatten() {
            if ep["conditions"]["ready"] == true {
                ips.extend(ep["addresses"][0].as_str().map(str::to_string));
            }
        }
        for s in o["subsets"].as_array().into_iter().flatten() {
            for a in s["addresses"].as_array().into_iter().flatten() {
                ips.extend(a["ip"].as_str().map(str::to_string));
            }
        }
    }
    ips.sort();
    ips
}

async fn until_ready(fake: &FakeClient, group: &str, plural: &str, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = ready(fake, group, plural).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{plural}: ready {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_failed_endpoints_write_is_made_again() {
    let fake = Arc::new(FakeClient::new());
    let (_root, _cp) = common::start_with(&fake, ControllerConfig::default()).await;
    let opts = WriteOptions::default();
    fake.create(
        kind("", "services"),
        Some("default"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.20",
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        &opts,
    )
    .await
    .unwrap();
    let pods = kind("", "pods");
    fake.create(pods, Some("default"), ready_pod("a", "10.42.0.2"), &opts)
        .await
        .unwrap();
    until_ready(&fake, "discovery.k8s.io", "endpointslices", &["10.42.0.2"]).await;
    until_ready(&fake, "", "endpoints", &["10.42.0.2"]).await;

    // The next update of each is refused as a stale write; nothing else changes after it.
    let stale = |plural| ClientError::Api(ApiError::stale(plural, "web"));
    fake.fail_next_write(
        kind("discovery.k8s.io", "endpointslices"),
        stale("endpointslices.discovery.k8s.io"),
    );
    fake.fail_next_write(kind("", "endpoints"), stale("endpoints"));
    fake.create(pods, Some("default"), ready_pod("b", "10.42.0.3"), &opts)
        .await
        .unwrap();
    until_ready(
        &fake,
        "discovery.k8s.io",
        "endpointslices",
        &["10.42.0.2", "10.42.0.3"],
    )
    .await;
    until_ready(&fake, "", "endpoints", &["10.42.0.2", "10.42.0.3"]).await;
}
