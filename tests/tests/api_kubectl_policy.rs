//! EndpointSlices and PodDisruptionBudgets through kubectl 1.37, the `pods/eviction`
//! subresource (429 while a budget would be violated, success otherwise, 500 under two
//! budgets, one disruption spent once under concurrent evictions; also through the Python
//! client), and `kubectl cordon`, `uncordon` and `drain` against nodes without agents.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{https_client, kubectl, python, wait_for, Cluster, Output};
use serde_json::{json, Value};

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

fn run(cfg: &Path, home: &Path, args: &[&str]) -> Result<Output> {
    kubectl(cfg, home, args, None)
}

/// Runs kubectl and fails with its output if it fails.
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

/// `kubectl create -f -` of one object.
fn create(cfg: &Path, home: &Path, object: &Value) -> Result<String> {
    Ok(
        kubectl(cfg, home, &["create", "-f", "-"], Some(&object.to_string()))?
            .expect_ok(&format!("kubectl create {}", object["metadata"]["name"]))?
            .stdout,
    )
}

async fn call(rb: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let r = rb.send().await?;
    let code = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A kubeconfig-backed home and the admin kubeconfig, once the default namespace exists.
async fn ready(cluster: &Cluster, dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
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

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

/// A pod of `ns` labelled `app`, bound to `node` when given.
fn pod(ns: &str, name: &str, app: &str, node: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p
}

/// Marks a pod Running and Ready through its status subresource, as its node would.
async fn make_ready(cluster: &Cluster, ns: &str, name: &str) -> Result<()> {
    let url = cluster.url(0, &format!("/api/v1/namespaces/{ns}/pods/{name}/status"));
    let patch = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let (code, body) = call(
        cluster
            .http()
            .patch(url)
            .header("content-type", "application/merge-patch+json")
            .json(&patch),
    )
    .await?;
    anyhow::ensure!(code == 200, "status of {ns}/{name}: {code} {body}");
    Ok(())
}

fn eviction(ns: &str, name: &str, delete_options: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns}, "deleteOptions": delete_options})
}

async fn evict(cluster: &Cluster, ns: &str, name: &str, opts: Value) -> Result<(u16, Value)> {
    let url = cluster.url(0, &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"));
    call(cluster.http().post(url).json(&eviction(ns, name, opts))).await
}

async fn get(cluster: &Cluster, path: &str) -> Result<(u16, Value)> {
    call(cluster.http().get(cluster.url(0, path))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_through_kubectl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let (admin, home) = ready(&cluster, dir.path()).await?;

    let resources = k(
        &admin,
        &home,
        &[
            "api-resources",
            "--api-group=discovery.k8s.io",
            "--no-headers",
        ],
    )?;
    assert!(
        resources.contains("endpointslices") && resources.contains("discovery.k8s.io/v1"),
        "{resources}"
    );

    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "nodeName": "n1",
             "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}},
            {"addresses": ["10.244.2.7"], "conditions": {"ready": false}}],
        "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090, "protocol": "TCP"}]});
    let out = create(&admin, &home, &slice)?;
    assert!(
        out.contains("endpointslice.discovery.k8s.io/web-abc12 created"),
        "{out}"
    );

    // kubectl's columns, as Kubernetes prints them (the masters' own `kubernetes` slice
    // is in `default` too).
    let table = k(
        &admin,
        &home,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    )?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .context("a header")?
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines.next().context("a row")?.split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["web-abc12", "IPv4", "8080,9090", "10.244.1.5,10.244.2.7"],
        "{table}"
    );
    let got = json_of(&admin, &home, &["get", "endpointslice", "web-abc12"])?;
    assert_eq!(got["ports"][0]["protocol"], "TCP", "{got}");
    assert_eq!(got["endpoints"][0]["targetRef"]["name"], "web-1");
    let described = k(&admin, &home, &["describe", "endpointslice", "web-abc12"])?;
    assert!(
        described.contains("AddressType:  IPv4") && described.contains("10.244.1.5"),
        "{described}"
    );
    let by_label = k(
        &admin,
        &home,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ],
    )?;
    assert_eq!(by_label.trim(), "endpointslice.discovery.k8s.io/web-abc12");

    // Update: endpoints change, the generation follows; the address type may not.
    k(
        &admin,
        &home,
        &[
            "patch",
            "endpointslice",
            "web-abc12",
            "--type=merge",
            "-p",
            r#"{"endpoints":[{"addresses":["10.244.3.9"]}]}"#,
        ],
    )?;
    let got = json_of(&admin, &home, &["get", "endpointslice", "web-abc12"])?;
    assert_eq!(got["endpoints"], json!([{"addresses": ["10.244.3.9"]}]));
    assert_eq!(got["metadata"]["generation"], 2);
    let refused = run(
        &admin,
        &home,
        &[
            "patch",
            "endpointslice",
            "web-abc12",
            "--type=merge",
            "-p",
            r#"{"addressType":"IPv6","endpoints":[]}"#,
        ],
    )?;
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("addressType: Invalid value: \"IPv6\": field is immutable"),
        "{}",
        refused.stderr
    );

    // Kubernetes' validation: addresses of the slice's type, a known protocol.
    let mut bad = slice.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["endpoints"] = json!([{"addresses": ["fd00::1"]}, {"addresses": []}]);
    bad["ports"] = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
    let refused = kubectl(
        &admin,
        &home,
        &["create", "-f", "-"],
        Some(&bad.to_string()),
    )?;
    assert!(!refused.ok, "{}", refused.stdout);
    for want in [
        "endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
        "endpoints[1].addresses: Required value: must contain at least 1 address",
        "ports[0].protocol: Unsupported value: \"HTTP\"",
    ] {
        assert!(refused.stderr.contains(want), "{want}: {}", refused.stderr);
    }

    let out = k(&admin, &home, &["delete", "endpointslice", "web-abc12"])?;
    assert!(out.contains("deleted"), "{out}");
    let none = run(
        &admin,
        &home,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    )?;
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_respect_disruption_budgets() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let (admin, home) = ready(&cluster, dir.path()).await?;
    k(&admin, &home, &["create", "namespace", "shop"])?;
    create(&admin, &home, &node("n1"))?;
    for name in ["web-1", "web-2", "web-3"] {
        create(&admin, &home, &pod("shop", name, "web", Some("n1")))?;
        make_ready(&cluster, "shop", name).await?;
    }

    // kubectl's typed client sends the budget as protobuf.
    let created = run(
        &admin,
        &home,
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=2",
            "-n",
            "shop",
            "-v=7",
        ],
    )?
    .expect_ok("kubectl create poddisruptionbudget")?;
    assert!(
        created
            .stdout
            .contains("poddisruptionbudget.policy/web created"),
        "{}",
        created.stdout
    );
    assert!(
        created
            .stderr
            .contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{}",
        created.stderr
    );
    let table = k(&admin, &home, &["get", "pdb", "-n", "shop"])?;
    let header = table.lines().next().context("a header")?;
    let columns: Vec<&str> = header
        .split("  ")
        .filter(|c| !c.trim().is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .context("a row")?
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "0"], "{table}");

    let described = k(&admin, &home, &["describe", "pdb", "web", "-n", "shop"])?;
    assert!(
        described.contains("Min available:  2") && described.contains("Allowed disruptions:"),
        "{described}"
    );

    // 3 healthy, 2 wanted: one eviction passes, charged to the budget in the same write.
    let (code, body) = evict(&cluster, "shop", "web-1", json!(null)).await?;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "Success", "{body}");
    let (_, p) = get(&cluster, "/api/v1/namespaces/shop/pods/web-1").await?;
    // Bound to a node without an agent: marked with the pod's grace period, kept until then.
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30, "{p}");
    let target = p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget"))
        .cloned()
        .context("a DisruptionTarget condition")?;
    assert_eq!(target["reason"], "EvictionByEvictionAPI");
    let (_, budget) = get(
        &cluster,
        "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web",
    )
    .await?;
    let s = &budget["status"];
    assert_eq!(
        (
            &s["currentHealthy"],
            &s["desiredHealthy"],
            &s["expectedPods"],
            &s["disruptionsAllowed"]
        ),
        (&json!(3), &json!(2), &json!(3), &json!(0)),
        "{budget}"
    );
    assert!(s["disruptedPods"]["web-1"].is_string(), "{budget}");
    assert_eq!(s["observedGeneration"], budget["metadata"]["generation"]);
    let allowed = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"))
        .context("the DisruptionAllowed condition")?;
    assert_eq!(
        (&allowed["status"], &allowed["reason"]),
        (&json!("False"), &json!("InsufficientPods"))
    );

    // Now 2 healthy, 2 wanted: Kubernetes' 429 with its DisruptionBudget cause.
    let (code, body) = evict(&cluster, "shop", "web-2", json!({"gracePeriodSeconds": 0})).await?;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(
        body["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        body["details"]["causes"],
        json!([{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}])
    );
    let (code, _) = get(&cluster, "/api/v1/namespaces/shop/pods/web-2").await?;
    assert_eq!(code, 200, "a refused eviction deletes nothing");

    // A Pending pod disrupts nothing more by going: budgets are not consulted.
    create(
        &admin,
        &home,
        &pod("shop", "web-pending", "web", Some("n1")),
    )?;
    let (code, body) = evict(&cluster, "shop", "web-pending", json!(null)).await?;
    assert_eq!(code, 201, "{body}");
    // A dry run decides without writing; a body naming another pod is refused.
    let url = cluster.url(0, "/api/v1/namespaces/shop/pods/web-3/eviction?dryRun=All");
    let mut budget_wide = budget.clone();
    budget_wide["spec"]["minAvailable"] = json!(1);
    let (code, body) = call(
        cluster
            .http()
            .put(cluster.url(
                0,
                "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web",
            ))
            .json(&budget_wide),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        cluster
            .http()
            .post(url)
            .json(&eviction("shop", "web-3", json!(null))),
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    let (_, p3) = get(&cluster, "/api/v1/namespaces/shop/pods/web-3").await?;
    assert!(p3["metadata"]["deletionTimestamp"].is_null(), "{p3}");
    // A typed client's protobuf Eviction is read as its JSON would be.
    let bytes = navarch_model::protobuf::encode(&eviction(
        "shop",
        "web-2",
        json!({"gracePeriodSeconds": 0}),
    ))?;
    let url = cluster.url(0, "/api/v1/namespaces/shop/pods/web-2/eviction");
    let (code, body) = call(
        cluster
            .http()
            .post(url)
            .header("content-type", "application/vnd.kubernetes.protobuf")
            .body(bytes),
    )
    .await?;
    assert_eq!(code, 201, "minAvailable 1 of 2 healthy allows one: {body}");
    let (code, _) = get(&cluster, "/api/v1/namespaces/shop/pods/web-2").await?;
    assert_eq!(code, 404, "a zero grace period deletes the pod at once");
    let url = cluster.url(0, "/api/v1/namespaces/shop/pods/web-3/eviction");
    let (code, body) = call(
        cluster
            .http()
            .post(url)
            .json(&eviction("shop", "web-2", json!(null))),
    )
    .await?;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["message"],
        "name in URL does not match name in Eviction object"
    );
    let (code, _) = evict(&cluster, "shop", "nope", json!(null)).await?;
    assert_eq!(code, 404);

    // Two budgets over one pod: Kubernetes' 500.
    k(&admin, &home, &["create", "namespace", "two"])?;
    create(&admin, &home, &pod("two", "p", "db", None))?;
    make_ready(&cluster, "two", "p").await?;
    for (name, flag) in [("a", "--min-available=0"), ("b", "--max-unavailable=1")] {
        k(
            &admin,
            &home,
            &[
                "create",
                "pdb",
                name,
                "--selector=app=db",
                flag,
                "-n",
                "two",
            ],
        )?;
    }
    let (code, body) = evict(&cluster, "two", "p", json!(null)).await?;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );

    // Concurrent evictions: 5 healthy pods, 4 wanted, one disruption: exactly one passes.
    k(&admin, &home, &["create", "namespace", "race"])?;
    let names: Vec<String> = (1..=5).map(|i| format!("r-{i}")).collect();
    for name in &names {
        create(&admin, &home, &pod("race", name, "race", Some("n1")))?;
        make_ready(&cluster, "race", name).await?;
    }
    k(
        &admin,
        &home,
        &[
            "create",
            "pdb",
            "race",
            "--selector=app=race",
            "--min-available=4",
            "-n",
            "race",
        ],
    )?;
    let tries = names
        .iter()
        .map(|n| evict(&cluster, "race", n, json!({"gracePeriodSeconds": 0})));
    let codes: Vec<u16> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.map(|(c, _)| c))
        .collect::<Result<_>>()?;
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 4, "{codes:?}");
    let (_, left) = get(&cluster, "/api/v1/namespaces/race/pods").await?;
    assert_eq!(left["items"].as_array().map(Vec::len), Some(4), "{left}");

    // Evicting is `create` on pods/eviction: a viewer may not.
    let viewer = https_client(&cluster.identity("viewer", &["navarch:viewers"])?)?;
    let url = cluster.url(0, "/api/v1/namespaces/race/pods/r-2/eviction");
    let (code, _) = call(viewer.post(url).json(&eviction("race", "r-2", json!(null)))).await?;
    assert_eq!(code, 403);
    cluster.passed();
    Ok(())
}

/// `kubectl cordon`, `uncordon` and `drain` (evicting through `pods/eviction`) against
/// nodes with no agent: pods bound to them end only with a zero grace period, or stay
/// terminating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cordons_and_drains_nodes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let (admin, home) = ready(&cluster, dir.path()).await?;
    for n in ["n1", "n2"] {
        create(&admin, &home, &node(n))?;
    }

    let out = k(&admin, &home, &["cordon", "n1"])?;
    assert!(out.contains("node/n1 cordoned"), "{out}");
    let n1 = json_of(&admin, &home, &["get", "node", "n1"])?;
    assert_eq!(n1["spec"]["unschedulable"], true, "{n1}");
    let nodes = k(&admin, &home, &["get", "nodes"])?;
    let line = nodes.lines().find(|l| l.starts_with("n1")).context("n1")?;
    assert!(line.contains("SchedulingDisabled"), "{nodes}");
    let out = k(&admin, &home, &["uncordon", "n1"])?;
    assert!(out.contains("node/n1 uncordoned"), "{out}");
    let n1 = json_of(&admin, &home, &["get", "node", "n1"])?;
    assert!(n1["spec"]["unschedulable"].is_null(), "{n1}");

    // On n1: a pod without a controller, one of a ReplicaSet, one finished; a budget that
    // wants both running ones.
    k(&admin, &home, &["create", "namespace", "shop"])?;
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    create(&admin, &home, &rs)?;
    let rs = json_of(&admin, &home, &["get", "rs", "web", "-n", "shop"])?;
    let mut owned = pod("shop", "web-x", "web", Some("n1"));
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "web", "uid": rs["metadata"]["uid"], "controller": true}]);
    create(&admin, &home, &owned)?;
    create(&admin, &home, &pod("shop", "bare", "web", Some("n1")))?;
    create(&admin, &home, &pod("shop", "done", "batch", Some("n1")))?;
    for p in ["web-x", "bare"] {
        make_ready(&cluster, "shop", p).await?;
    }
    let url = cluster.url(0, "/api/v1/namespaces/shop/pods/done/status");
    let (code, _) = call(
        cluster
            .http()
            .patch(url)
            .header("content-type", "application/merge-patch+json")
            .json(&json!({"status": {"phase": "Succeeded"}})),
    )
    .await?;
    assert_eq!(code, 200);
    k(
        &admin,
        &home,
        &[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=2",
            "-n",
            "shop",
        ],
    )?;

    // The budget holds: drain cordons, evicts what it may, retries the rest until its timeout.
    let drain = [
        "drain",
        "n1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--grace-period=0",
    ];
    let mut args = drain.to_vec();
    args.push("--timeout=7s");
    let held = run(&admin, &home, &args)?;
    assert!(!held.ok, "{}", held.stdout);
    assert!(held.stdout.contains("node/n1 cordoned"), "{}", held.stdout);
    assert!(
        held.stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        held.stderr
    );
    let (_, pods) = get(&cluster, "/api/v1/namespaces/shop/pods").await?;
    let mut left: Vec<&str> = pods["items"]
        .as_array()
        .context("pods")?
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["bare", "web-x"],
        "the finished pod went, the budget kept the rest"
    );

    // With room in the budget the drain finishes: every pod evicted and gone.
    k(
        &admin,
        &home,
        &[
            "patch",
            "pdb",
            "web",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":0}}"#,
        ],
    )?;
    let mut verbose = drain.to_vec();
    verbose.push("-v=7");
    let done = run(&admin, &home, &verbose)?.expect_ok("kubectl drain n1")?;
    for want in [
        "evicting pod shop/bare",
        "evicting pod shop/web-x",
        "node/n1 drained",
    ] {
        assert!(done.stdout.contains(want), "{want}: {}", done.stdout);
    }
    // Through the eviction subresource (kubectl 1.37 posts the Evictions as JSON).
    let posted = done
        .stderr
        .lines()
        .filter(|l| l.contains("verb=\"POST\"") && l.contains("/eviction\""))
        .count();
    assert!(posted >= 2, "{}", done.stderr);
    let (_, pods) = get(&cluster, "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").await?;
    assert_eq!(pods["items"], json!([]), "{pods}");

    // Without a zero grace period a pod of an agentless node is marked and waits for it.
    create(&admin, &home, &pod("shop", "slow", "slow", Some("n2")))?;
    make_ready(&cluster, "shop", "slow").await?;
    let waited = run(&admin, &home, &["drain", "n2", "--force", "--timeout=4s"])?;
    assert!(!waited.ok, "{}", waited.stdout);
    assert!(
        waited.stdout.contains("evicting pod shop/slow"),
        "{}",
        waited.stdout
    );
    let (_, slow) = get(&cluster, "/api/v1/namespaces/shop/pods/slow").await?;
    assert!(slow["metadata"]["deletionTimestamp"].is_string(), "{slow}");
    assert_eq!(slow["metadata"]["deletionGracePeriodSeconds"], 30);
    // --disable-eviction deletes instead, here with no grace: the pod goes.
    let out = k(
        &admin,
        &home,
        &[
            "drain",
            "n2",
            "--force",
            "--disable-eviction",
            "--grace-period=0",
        ],
    )?;
    assert!(out.contains("node/n2 drained"), "{out}");
    let (code, _) = get(&cluster, "/api/v1/namespaces/shop/pods/slow").await?;
    assert_eq!(code, 404);
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_evicts_within_a_budget() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(1, &[API_ONLY]).await?;
    let (admin, home) = ready(&cluster, dir.path()).await?;
    k(&admin, &home, &["create", "namespace", "pypdb"])?;
    for name in ["p0", "p1"] {
        create(&admin, &home, &pod("pypdb", name, "py", None))?;
        make_ready(&cluster, "pypdb", name).await?;
    }
    let script = include_str!("../py/disruption_flow.py");
    let cfg = admin.to_string_lossy().to_string();
    let out = tokio::task::spawn_blocking(move || python(script, &[("KUBECONFIG", &cfg)]))
        .await??
        .expect_ok("the Python disruption flow")?;
    let report: Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("report: {}", out.stdout))?;
    assert_eq!(report["first"], "evicted", "{report}");
    assert_eq!(
        report["second"],
        json!({"status": 429, "reason": "TooManyRequests", "causes": ["DisruptionBudget"]}),
        "{report}"
    );
    assert_eq!(
        report["status"],
        json!({"current_healthy": 2, "desired_healthy": 1, "expected_pods": 2,
               "disruptions_allowed": 0, "disrupted": ["p0"],
               "conditions": [["DisruptionAllowed", "False", "InsufficientPods"]]}),
        "{report}"
    );
    assert_eq!(report["pods"], json!(["p1"]), "{report}");
    cluster.passed();
    Ok(())
}
