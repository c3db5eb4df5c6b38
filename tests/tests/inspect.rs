//! `navctl inspect` against real processes on loopback. Three masters: the actors of every master
//! (found through their API leases) with one control plane active, one master alone, the
//! merged message stream, the trace of one request sent to a follower, which spans the
//! follower and the leader it forwards the write to, and the refreshing top view. A single
//! server: its embedded node agent's actors (its own process root), read through the
//! master from the node's kubelet endpoint, and one node alone; a Deployment's trace from
//! its request through the controllers and the scheduler to the pod's actor on the node.

use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{bin, wait_for, Cluster};

fn navctl(cluster: &Cluster, args: &[&str]) -> Result<(bool, String, String)> {
    let out = std::process::Command::new(bin("navctl"))
        .args(args)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig(0))
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_sees_every_master_and_follows_a_request_across_them() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;

    // Every master, once each has renewed its API lease.
    let out = wait_for(
        Duration::from_secs(60),
        "three masters inspected",
        || async {
            let (ok, out, _) = navctl(&cluster, &["inspect", "actors"]).ok()?;
            (ok && (1..=3).all(|i| out.contains(&format!("master m{i} (")))).then_some(out)
        },
    )
    .await?;
    let active: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("master ") && l.contains("control plane active"))
        .collect();
    assert_eq!(active.len(), 1, "{out}");
    assert!(
        active[0].starts_with(&format!("master m{} (", leader + 1)),
        "{out}"
    );
    assert!(out.contains("ACTOR") && out.contains("MAILBOX"), "{out}");

    // One master, one subtree.
    let follower = (leader + 1) % 3;
    let name = format!("m{}", follower + 1);
    let (ok, out, err) = navctl(
        &cluster,
        &[
            "inspect",
            "actors",
            "--master",
            &name,
            &format!("/master/{name}"),
        ],
    )?;
    assert!(ok, "{err}");
    assert_eq!(out.matches("master m").count(), 1, "{out}");
    assert!(out.contains(&format!("master {name} (")), "{out}");

    // A request to the follower, with the correlation id it is to carry.
    let id = format!("{:032x}", rand_id());
    let resp = cluster
        .http()
        .post(cluster.url(follower, "/api/v1/namespaces"))
        .header("x-correlation-id", &id)
        .json(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "traced"}}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    let echoed = resp
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .context("no x-correlation-id on the response")?;
    assert_eq!(echoed, id);
    let (ok, out, err) = navctl(&cluster, &["inspect", "trace", &id])?;
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or("");
    assert!(header.contains("across 2 process(es)"), "{out}");
    assert!(
        out.contains(&format!(" m{} ", follower + 1))
            && out.contains(&format!(" m{} ", leader + 1)),
        "{out}"
    );
    assert!(out.lines().skip(1).all(|l| l.contains(&id)), "{out}");

    // The merged stream, filtered by the request.
    let (ok, out, err) = navctl(&cluster, &["inspect", "messages", "--trace", &id])?;
    assert!(ok, "{err}");
    assert!(
        !out.is_empty() && out.lines().all(|l| l.contains(&id)),
        "{out}"
    );

    // The top view, twice, without a terminal: the busiest actors of every master.
    let (ok, out, err) = navctl(
        &cluster,
        &[
            "inspect",
            "top",
            "--interval",
            "0.2",
            "--iterations",
            "2",
            "--rows",
            "5",
        ],
    )?;
    assert!(ok, "{err}");
    assert_eq!(
        out.matches("navctl inspect top: 3 process(es)").count(),
        2,
        "{out}"
    );
    assert!(out.contains("MSG/S") && out.contains("/master/m"), "{out}");

    // Bad input: a clear error, nothing asked.
    let (ok, _, err) = navctl(&cluster, &["inspect", "trace", "not-an-id"])?;
    assert!(!ok && err.contains("is not a correlation id"), "{err}");
    let (ok, _, err) = navctl(&cluster, &["inspect", "actors", "--master", "m9"])?;
    assert!(
        !ok && err.contains("no master to inspect named \"m9\""),
        "{err}"
    );
    cluster.passed();
    Ok(())
}

fn rand_id() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (u128::from(std::process::id()) << 64) | t.as_nanos() | 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_reads_a_node_agent_through_its_master() -> Result<()> {
    let flags = [
        "--cluster-cidr",
        "10.42.128.0/20",
        "--service-cluster-ip-range",
        "10.43.128.0/24",
        "--disk-pressure-percent",
        "1",
    ];
    let mut cluster = Cluster::single_server("inspected", &flags).await?;
    let out = wait_for(Duration::from_secs(60), "the node's actors", || async {
        let (ok, out, _) = navctl(&cluster, &["inspect", "actors"]).ok()?;
        // Once the node agent has started its kubelet and its proxy.
        let node_part = out.split("node/inspected (through").nth(1)?;
        (ok && node_part.contains("kubelet") && node_part.contains("proxy")).then_some(out)
    })
    .await?;
    assert!(out.contains("master m1 ("), "{out}");
    // The node agent's own tree, rooted at its own path.
    let node_part = out.split("node/inspected (through").nth(1).unwrap_or("");
    assert!(node_part.contains("\nnode/inspected "), "{out}");

    let (ok, out, err) = navctl(&cluster, &["inspect", "actors", "--node", "inspected"])?;
    assert!(ok, "{err}");
    assert!(!out.contains("master m1 ("), "{out}");
    assert!(out.starts_with("node/inspected (through"), "{out}");
    let (ok, out, err) = navctl(
        &cluster,
        &["inspect", "messages", "--node", "inspected", "--limit", "5"],
    )?;
    assert!(ok, "{err}");
    assert!(out.lines().all(|l| l.contains(" node/inspected ")), "{out}");
    // A Deployment created with a chosen correlation id: its pod remembers the id, and the
    // trace follows the request through the controllers and the scheduler on the master to
    // the pod's actor on the node.
    let id = format!("{:032x}", rand_id());
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "traced", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "traced"}},
                 "template": {"metadata": {"labels": {"app": "traced"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "busybox",
                                                       "command": ["sleep", "3600"]}]}}}});
    let resp = cluster
        .http()
        .post(cluster.url(0, "/apis/apps/v1/namespaces/default/deployments"))
        .header("x-correlation-id", &id)
        .json(&deployment)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    let kc = navarch_tests::Kubectl::admin(&cluster, 0, cluster.dir.path()).await?;
    let pod = wait_for(
        Duration::from_secs(90),
        "the traced pod running",
        || async {
            let pods = kc.json(&["get", "pods", "-l", "app=traced"]).ok()?;
            let p = pods["items"].as_array()?.first()?.clone();
            (p["status"]["phase"] == "Running").then_some(p)
        },
    )
    .await?;
    assert_eq!(
        pod["metadata"]["annotations"]["navarch.io/correlation-id"], id,
        "{pod}"
    );
    let (ok, out, err) = navctl(&cluster, &["inspect", "trace", &id])?;
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.contains("across 2 process(es): m1, node/inspected"),
        "{out}"
    );
    for actor in [
        "/master/m1/controllers/deployment/default/traced",
        "/master/m1/controllers/replicaset/default/traced-",
        "/master/m1/controllers/scheduler",
        "/node/inspected/",
    ] {
        assert!(out.contains(actor), "{actor} not in the trace:\n{out}");
    }

    // A rollout has its own trace: the update that changed the template names its request
    // on the Deployment, and the new ReplicaSet and pod it set in motion carry it.
    let rollout = format!("{:032x}", rand_id());
    let resp = cluster
        .http()
        .patch(cluster.url(0, "/apis/apps/v1/namespaces/default/deployments/traced"))
        .header("x-correlation-id", &rollout)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"template":{"metadata":{"annotations":{"rollout":"2"}}}}}"#)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let d = kc.json(&["get", "deployment", "traced"])?;
    assert_eq!(
        d["metadata"]["annotations"]["navarch.io/correlation-id"], rollout,
        "{d}"
    );
    let rolled_out = wait_for(
        Duration::from_secs(90),
        "the rolled-out pod running with the rollout's id",
        || async {
            let pods = kc.json(&["get", "pods", "-l", "app=traced"]).ok()?;
            pods["items"]
                .as_array()?
                .iter()
                .find(|p| {
                    p["status"]["phase"] == "Running"
                        && p["metadata"]["annotations"]["navarch.io/correlation-id"] == rollout
                })
                .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
        },
    )
    .await?;
    // A write that leaves the spec alone (a label) keeps the id of the spec's request.
    let resp = cluster
        .http()
        .patch(cluster.url(0, "/apis/apps/v1/namespaces/default/deployments/traced"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"touched":"yes"}}}"#)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let d = kc.json(&["get", "deployment", "traced"])?;
    assert_eq!(
        d["metadata"]["annotations"]["navarch.io/correlation-id"], rollout,
        "{d}"
    );
    let (ok, out, err) = navctl(&cluster, &["inspect", "trace", &rollout])?;
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .next()
            .unwrap_or("")
            .contains("across 2 process(es): m1, node/inspected"),
        "{out}"
    );
    for actor in [
        "/master/m1/controllers/deployment/default/traced",
        "/master/m1/controllers/replicaset/default/traced-",
        "/node/inspected/",
    ] {
        assert!(
            out.contains(actor),
            "{actor} not in the rollout's trace:\n{out}"
        );
    }

    // The node's kill switch, through the master: a running pod's actor dies and comes
    // back (the rolled-out one: the old pod's actor goes away with its pod).
    let kill = |q: &str| {
        cluster
            .http()
            .post(cluster.url(0, &format!("/debug/nodes/inspected/kill?{q}")))
            .send()
    };
    let resp = kill(&format!(
        "path=/node/inspected/kubelet/pod/default/{rolled_out}"
    ))
    .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let killed: serde_json::Value = resp.json().await?;
    let killed = killed["killed"].as_str().context("killed")?.to_string();
    assert_eq!(
        killed,
        format!("/node/inspected/kubelet/pod/default/{rolled_out}")
    );
    wait_for(
        Duration::from_secs(30),
        "the killed pod actor running again",
        || async {
            let url = cluster.url(0, &format!("/debug/nodes/inspected/actors?prefix={killed}"));
            let list: serde_json::Value = cluster
                .http()
                .get(url)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let a = list
                .as_array()?
                .iter()
                .find(|a| a["path"] == killed.as_str())?;
            (a["status"] == "running" && a["restarts"].as_u64() >= Some(1)).then_some(())
        },
    )
    .await?;
    assert_eq!(kill("").await?.status().as_u16(), 400);
    assert_eq!(
        kill("prefix=/node/inspected/nothing")
            .await?
            .status()
            .as_u16(),
        404
    );

    let (ok, _, err) = navctl(&cluster, &["inspect", "actors", "--node", "nowhere"])?;
    assert!(
        !ok && err.contains("no master to inspect on node \"nowhere\""),
        "{err}"
    );
    cluster.passed();
    Ok(())
}
