//! Hollow nodes over the node link, as separate processes: `navarch-node --hollow --count 3`
//! joins a master, its nodes become Ready and renew their Leases; a pod bound to one of them
//! is reported Running and Ready with an address from that node's pod range, and deleted
//! by the node when it is deleted; a node may not write another node's status (403 over
//! the link, as over HTTPS); a restarted process reuses its stored credentials. On three
//! masters, SIGKILLing the master a node is connected to moves its link to another one:
//! its Lease keeps being renewed, and its pod watch resumes there.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use navarch_client::{Client, LinkClient, Subresource};
use navarch_model::options::{Patch, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_net::{Endpoint, Identity, NetConfig};
use navarch_tests::{wait_for, Cluster, NodeProc};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(60);

/// Flags that make the nodes speak up often, so that the test does not wait long.
const FAST: &[&str] = &[
    "--hollow",
    "--lease-renew-seconds",
    "2",
    "--status-update-seconds",
    "5",
];

async fn get(cluster: &Cluster, via: usize, path: &str) -> Option<(u16, Value)> {
    let r = cluster
        .http()
        .get(cluster.url(via, path))
        .send()
        .await
        .ok()?;
    let code = r.status().as_u16();
    Some((code, r.json().await.ok()?))
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

fn is_true(obj: &Value, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == "True")
}

/// The Nodes, once every one of `names` is registered and Ready.
async fn wait_ready(cluster: &Cluster, via: usize, names: &[String]) -> Result<Vec<Value>> {
    wait_for(DEADLINE, "the hollow nodes to be Ready", || async {
        let (_, list) = get(cluster, via, "/api/v1/nodes").await?;
        let items = list["items"].as_array()?;
        names
            .iter()
            .map(|n| {
                items
                    .iter()
                    .find(|i| i["metadata"]["name"] == n.as_str() && is_true(i, "Ready"))
                    .cloned()
            })
            .collect::<Option<Vec<_>>>()
    })
    .await
}

async fn renew_time(cluster: &Cluster, via: usize, node: &str) -> Option<String> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}");
    let (code, lease) = get(cluster, via, &path).await?;
    (code == 200).then(|| lease["spec"]["renewTime"].as_str().map(str::to_string))?
}

/// Waits until `node`'s Lease, read through `via`, was renewed after `after` (RFC 3339 with
/// microseconds, which orders as text).
async fn wait_renewed_after(
    cluster: &Cluster,
    via: usize,
    node: &str,
    after: &str,
) -> Result<String> {
    wait_for(
        DEADLINE,
        &format!("{node}'s lease renewed after {after}"),
        || async {
            renew_time(cluster, via, node)
                .await
                .filter(|t| t.as_str() > after)
        },
    )
    .await
}

fn now_micros() -> String {
    navarch_model::time::format_rfc3339_micros(SystemTime::now())
}

/// Whether `ip` is inside `cidr` (`a.b.c.d/p`).
fn in_range(ip: &str, cidr: &str) -> bool {
    let Some((base, prefix)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(ip), Ok(base), Ok(prefix)) = (
        ip.parse::<Ipv4Addr>(),
        base.parse::<Ipv4Addr>(),
        prefix.parse::<u32>(),
    ) else {
        return false;
    };
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(base) & mask
}

fn pod(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "busybox"},
            {"name": "side", "image": "nginx"},
        ]},
    })
}

/// Creates `pod` through `via` (retrying through elections) and waits until its node
/// reports it Running and Ready; returns it.
async fn create_running(cluster: &Cluster, via: usize, pod: &Value) -> Result<Value> {
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let url = cluster.url(via, "/api/v1/namespaces/default/pods");
    wait_for(DEADLINE, &format!("pod {name} created"), || async {
        let r = cluster.http().post(&url).json(pod).send().await.ok()?;
        matches!(r.status().as_u16(), 201 | 409).then_some(())
    })
    .await?;
    let path = format!("/api/v1/namespaces/default/pods/{name}");
    wait_for(
        DEADLINE,
        &format!("pod {name} Running and Ready"),
        || async {
            let (_, p) = get(cluster, via, &path).await?;
            (p["status"]["phase"] == "Running" && is_true(&p, "Ready")).then_some(p)
        },
    )
    .await
}

/// Whether member `i`'s audit log shows a renewal of `node`'s Lease over the node link at
/// or after `after` (whole-second RFC 3339).
fn renews_through(cluster: &Cluster, i: usize, node: &str, after: &str) -> bool {
    let user = format!("system:node:{node}");
    cluster.audit(i).into_iter().any(|r| {
        r["user"] == user.as_str()
            && r["transport"] == "node-link"
            && r["verb"] == "update"
            && r["resource"] == "leases"
            && r["code"] == 200
            && r["time"].as_str().is_some_and(|t| t >= after)
    })
}

/// A node link client with the credentials a hollow node stored in `dir`.
fn link_as(dir: &std::path::Path, masters: &[SocketAddr]) -> Result<LinkClient> {
    let id =
        Identity::load(dir, "node").with_context(|| format!("credentials in {}", dir.display()))?;
    let ep = Endpoint::client(NetConfig::new("test-node", id))?;
    Ok(LinkClient::new(&ep, masters, "hollow-nodes-test")?)
}

fn nodes_kind() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "nodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_register_renew_run_pods_and_stay_in_their_lane() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let master = cluster.members[0].peer.to_string();
    let mut args = FAST.to_vec();
    args.extend([
        "--count",
        "3",
        "--master",
        &master,
        "--labels",
        "pool=hollow",
    ]);
    let mut node = NodeProc::start(&cluster, 0, "hollow", &args).await?;
    let names: Vec<String> = (0..3).map(|k| format!("hollow-{k}")).collect();

    // Registered and Ready, as a kubelet registers: labels, pod ranges of their own.
    let registered = wait_ready(&cluster, 0, &names).await?;
    let mut ranges = Vec::new();
    for n in &registered {
        let name = n["metadata"]["name"].as_str().unwrap();
        assert_eq!(n["metadata"]["labels"]["pool"], "hollow");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], name);
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        assert_eq!(condition(n, "Ready").unwrap()["reason"], "KubeletReady");
        for ty in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(condition(n, ty).unwrap()["status"], "False", "{name} {ty}");
        }
        assert!(n["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("hollow://"));
        ranges.push(n["spec"]["podCIDR"].as_str().unwrap().to_string());
    }
    ranges.sort();
    ranges.dedup();
    assert_eq!(
        ranges.len(),
        3,
        "every node has a pod range of its own: {ranges:?}"
    );

    // Their Leases are renewed: the renewTime moves on.
    for n in &names {
        let first = wait_for(DEADLINE, "a lease", || renew_time(&cluster, 0, n)).await?;
        assert_eq!(
            first.len(),
            "2026-11-29T09:44:07.000250Z".len(),
            "microseconds: {first}"
        );
        wait_renewed_after(&cluster, 0, n, &first).await?;
    }
    let (_, lease) = get(
        &cluster,
        0,
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/hollow-1",
    )
    .await
    .context("the lease")?;
    assert_eq!(lease["spec"]["holderIdentity"], "hollow-1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);

    // A pod bound to hollow-1 runs there, with an address from its range.
    let running = create_running(&cluster, 0, &pod("web", "hollow-1")).await?;
    let n1 = registered
        .iter()
        .find(|n| n["metadata"]["name"] == "hollow-1")
        .unwrap();
    let range = n1["spec"]["podCIDR"].as_str().unwrap();
    let ip = running["status"]["podIP"].as_str().context("a podIP")?;
    assert!(in_range(ip, range), "{ip} is in hollow-1's {range}");
    assert_eq!(running["status"]["podIPs"], json!([{"ip": ip}]));
    assert_eq!(running["status"]["hostIP"], "127.0.0.1");
    for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(is_true(&running, ty), "{ty}: {}", running["status"]);
    }
    let statuses = running["status"]["containerStatuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 2);
    for c in statuses {
        assert_eq!(c["ready"], true);
        assert_eq!(c["restartCount"], 0);
        assert!(c["containerID"].as_str().unwrap().starts_with("hollow://"));
        assert!(c["state"]["running"]["startedAt"].is_string());
    }
    // A second pod there gets another address.
    let second = create_running(&cluster, 0, &pod("db", "hollow-1")).await?;
    let ip2 = second["status"]["podIP"].as_str().unwrap();
    assert!(in_range(ip2, range) && ip2 != ip, "{ip2} next to {ip}");

    // Deleted gracefully, the pod is stopped and deleted by its node.
    let r = cluster
        .http()
        .delete(cluster.url(0, "/api/v1/namespaces/default/pods/web"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    wait_for(DEADLINE, "the deleted pod to disappear", || async {
        let (code, _) = get(&cluster, 0, "/api/v1/namespaces/default/pods/web").await?;
        (code == 404).then_some(())
    })
    .await?;

    // Over the link, hollow-0 may write its own status and not another node's.
    let masters = [cluster.members[0].peer];
    let as_n0 = link_as(&node.data_dir.join("hollow-0"), &masters)?;
    let beat = |name: &str| Patch {
        ty: PatchType::Merge,
        body: json!({"metadata": {"name": name}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": navarch_model::time::rfc3339(SystemTime::now())}]}}),
    };
    let w = WriteOptions::default();
    let own = as_n0
        .patch(
            nodes_kind(),
            None,
            "hollow-0",
            Some(Subresource::Status),
            beat("hollow-0"),
            &w,
        )
        .await;
    assert!(own.is_ok(), "a node writes its own status: {own:?}");
    let e = as_n0
        .patch(
            nodes_kind(),
            None,
            "hollow-1",
            Some(Subresource::Status),
            beat("hollow-1"),
            &w,
        )
        .await
        .unwrap_err();
    assert!(e.is_forbidden(), "{e}");
    // Nor another node's pod status (the pod on hollow-1).
    let pods = navarch_client::kind("", "v1", "pods");
    let e = as_n0
        .patch(
            pods,
            Some("default"),
            "db",
            Some(Subresource::Status),
            Patch {
                ty: PatchType::Merge,
                body: json!({"status": {"phase": "Failed"}}),
            },
            &w,
        )
        .await
        .unwrap_err();
    assert!(e.is_forbidden(), "{e}");
    // The refusal is audited as the node, over the link.
    let refused = cluster.audit(0).into_iter().any(|r| {
        r["user"] == "system:node:hollow-0"
            && r["transport"] == "node-link"
            && r["name"] == "hollow-1"
            && r["code"] == 403
    });
    assert!(refused, "the 403 is in the audit log");

    // A restarted process reuses the credentials it stored and its nodes stay Ready.
    node.kill();
    node.spawn()?;
    wait_for(
        DEADLINE,
        "the restarted process to run its nodes",
        || async {
            node.log_text()
                .contains("hollow nodes running: 3 (0 joined now, 3 reused stored credentials)")
                .then_some(())
        },
    )
    .await?;
    let after = now_micros();
    wait_renewed_after(&cluster, 0, "hollow-2", &after).await?;

    node.passed();
    cluster.passed();
    Ok(())
}

/// The running master whose audit log has `node`'s latest lease renewal: the one its link
/// is connected to.
fn connected_master(cluster: &Cluster, node: &str) -> Option<usize> {
    let user = format!("system:node:{node}");
    (0..cluster.members.len())
        .filter(|&i| cluster.members[i].is_running())
        .filter_map(|i| {
            let last = cluster
                .audit(i)
                .into_iter()
                .filter(|r| {
                    r["user"] == user.as_str()
                        && r["transport"] == "node-link"
                        && r["resource"] == "leases"
                        && r["code"] == 200
                })
                .filter_map(|r| r["time"].as_str().map(str::to_string))
                .max()?;
            Some((last, i))
        })
        .max()
        .map(|(_, i)| i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_link_moves_to_another_master_when_its_master_dies() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.wait_leader(DEADLINE).await?;
    // Each node starts on one of the masters (its name picks where in the ring it begins).
    let order: Vec<usize> = (0..3).map(|k| (leader + k) % 3).collect();
    let masters = order
        .iter()
        .map(|&i| cluster.members[i].peer.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut args = FAST.to_vec();
    args.extend(["--count", "2", "--master", &masters]);
    let mut node = NodeProc::start(&cluster, leader, "ha", &args).await?;
    let names = vec!["ha-0".to_string(), "ha-1".to_string()];
    wait_ready(&cluster, order[1], &names).await?;
    let first = wait_for(DEADLINE, "ha-0's lease renewals", || async {
        connected_master(&cluster, "ha-0")
    })
    .await?;

    // The master ha-0 is connected to dies: its renewals go on through another.
    cluster.kill(first);
    let killed_at = now_micros();
    let killed_at_secs = navarch_model::time::rfc3339(SystemTime::now());
    let survivors: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let via = survivors[0];
    cluster.wait_leader(DEADLINE).await?;
    wait_renewed_after(&cluster, via, "ha-0", &killed_at).await?;
    wait_renewed_after(&cluster, via, "ha-1", &killed_at).await?;
    let moved = wait_for(DEADLINE, "ha-0's renewals through a survivor", || async {
        survivors
            .iter()
            .copied()
            .find(|&i| renews_through(&cluster, i, "ha-0", &killed_at_secs))
    })
    .await?;
    assert!(
        node.log_text()
            .contains("node link moves to another master"),
        "the link says it moved"
    );
    // Its pod watch resumed there too: a new pod bound to it is reported running.
    let running = create_running(&cluster, via, &pod("after-failover", "ha-0")).await?;
    assert!(running["status"]["podIP"].is_string());
    // From then on the renewals keep coming through one master.
    let later = now_micros();
    let later_secs = navarch_model::time::rfc3339(SystemTime::now());
    wait_renewed_after(&cluster, via, "ha-0", &later).await?;
    wait_renewed_after(&cluster, via, "ha-0", &now_micros()).await?;
    let now_on = connected_master(&cluster, "ha-0").context("a master ha-0 renews through")?;
    assert!(now_on != first, "not the dead master");
    let elsewhere: Vec<Value> = survivors
        .iter()
        .filter(|&&i| i != now_on)
        .flat_map(|&i| cluster.audit(i))
        .filter(|r| {
            r["user"] == "system:node:ha-0"
                && r["resource"] == "leases"
                && r["time"].as_str().is_some_and(|t| t > later_secs.as_str())
        })
        .collect();
    assert!(
        elsewhere.is_empty(),
        "one master at a time (first {first}, moved to {moved}, now {now_on}): {elsewhere:?}"
    );

    node.passed();
    cluster.passed();
    Ok(())
}
