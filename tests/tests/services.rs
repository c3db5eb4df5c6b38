//! Services end to end, as a user drives them with kubectl: real `navarch-master` and
//! `navarch-node` processes, busybox `httpd` pods behind a Service, the node's proxy in
//! between. Each test has a pod range and a service range of its own (10.42.x/20 and
//! 10.43.x/24, routed only on this machine); traffic goes to cluster IPs served on this
//! machine, to pods' addresses, and to 127.0.0.x.
//!
//! - on a single-server cluster: pods resolve Services through the cluster DNS (A and SRV),
//!   and 300 requests from a pod to the Service's DNS name reach each of 3 pods 100 times; a NodePort answers on 127.0.0.1; a UDP Service (its endpoint a
//!   user-managed EndpointSlice: an echo on the node's bridge address) echoes through its
//!   cluster IP; a client looping through
//!   the Service while the Deployment scales to 5 and back to 2 sees every new pod and
//!   fails only requests cut by a pod's deletion;
//! - with two node agents as separate processes, a pod on one reaches a Service whose pods
//!   all run on the other.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{
    condition_status, httpd_deployment, items, kubectl_spawn, live_pod_names, wait_for, Cluster,
    Kubectl, NodeProc,
};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(90);

/// Tests may run while the disk is nearly full (build caches).
const NODE_FLAGS: &[&str] = &["--disk-pressure-percent", "1"];

fn httpd_on(name: &str, replicas: u32, node: Option<&str>) -> Value {
    let mut d = httpd_deployment(name, replicas, 8080);
    if let Some(n) = node {
        d["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": n});
    }
    d
}

fn client_pod(node: Option<&str>) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "client", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "86400"]}]},
    });
    if let Some(n) = node {
        p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": n});
    }
    p
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

/// The names of the pods of `app` that are not being deleted.
fn pod_names(kc: &Kubectl, app: &str) -> Result<Vec<String>> {
    Ok(live_pod_names(&kc.json(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
    ])?))
}

async fn running(kc: &Kubectl, pod: &str) -> Result<()> {
    wait_for(DEADLINE, &format!("{pod} running"), || async {
        let p = kc.json(&["get", "pod", pod]).ok()?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await
}

/// The ready endpoint addresses of Service `svc`'s EndpointSlices, sorted.
fn ready_addresses(kc: &Kubectl, svc: &str) -> Result<std::collections::BTreeSet<String>> {
    let slices = kc.json(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
    ])?;
    let mut ready = std::collections::BTreeSet::new();
    for slice in slices["items"].as_array().into_iter().flatten() {
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            if ep["conditions"]["ready"] == true {
                for a in ep["addresses"].as_array().into_iter().flatten() {
                    ready.extend(a.as_str().map(str::to_string));
                }
            }
        }
    }
    Ok(ready)
}

/// What a test waiting on the client loop reports when it gives up: the loop's last
/// answers, whether its `kubectl exec` still runs, the Service's ready endpoints and the
/// pods' addresses and readiness.
fn loop_state(kc: &Kubectl, out: &std::path::Path, looping: &mut std::process::Child) -> String {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join(" | ");
    let pods = kc
        .json(&["get", "pods", "-l", "app=web"])
        .map(|l| {
            items(&l)
                .iter()
                .map(|p| {
                    format!(
                        "{} {} {} ready={:?}",
                        p["metadata"]["name"],
                        p["status"]["phase"],
                        p["status"]["podIP"],
                        condition_status(p, "Ready")
                    )
                })
                .collect::<Vec<_>>()
        })
        .map_err(|e| e.to_string());
    format!(
        "loop: {} lines, kubectl exec {:?}, last: {tail}; slices ready {:?}; pods {pods:?}",
        lines.len(),
        looping.try_wait(),
        ready_addresses(kc, "web"),
    )
}

fn cluster_ip(kc: &Kubectl, svc: &str) -> Result<String> {
    let s = kc.json(&["get", "svc", svc])?;
    s["spec"]["clusterIP"]
        .as_str()
        .map(str::to_string)
        .context("no clusterIP")
}

/// Counts of each answer of `n` requests from pod `client` to `url`, one wget each
/// (`FAIL` for a failed one).
fn requests(kc: &Kubectl, client: &str, url: &str, n: u32) -> Result<BTreeMap<String, u32>> {
    let script = format!("for i in $(seq {n}); do timeout 5 wget -qO- {url} || echo FAIL; done");
    let out = kc.ok(&["exec", client, "--", "sh", "-c", &script])?;
    let mut counts = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        *counts.entry(line.trim().to_string()).or_default() += 1;
    }
    Ok(counts)
}

/// An HTTP GET from this machine to `addr`: the body.
fn http_get(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default())
}

async fn node_ready(kc: &Kubectl, node: &str) -> Result<()> {
    wait_for(DEADLINE, &format!("node {node} Ready"), || async {
        let n = kc.json(&["get", "node", node]).ok()?;
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && n["spec"]["podCIDR"].is_string()).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_balances_its_pods_through_cluster_ip_node_port_and_udp() -> Result<()> {
    let mut flags = vec![
        "--cluster-cidr",
        "10.42.96.0/20",
        "--service-cluster-ip-range",
        "10.43.96.0/24",
    ];
    flags.extend_from_slice(NODE_FLAGS);
    let mut cluster = Cluster::single_server("svc-solo", &flags).await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;
    node_ready(&kc, "svc-solo").await?;

    kc.apply(&httpd_on("web", 3, None))?
        .expect_ok("apply web")?;
    // The target port by name: each pod's `http` container port.
    kc.apply(&service(
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    ))?
    .expect_ok("apply the web Service")?;
    let node_port = 30000 + (std::process::id() % 2700) as u16;
    kc.apply(&service(
        "web-np",
        json!({"type": "NodePort", "selector": {"app": "web"},
               "ports": [{"port": 80, "targetPort": 8080, "nodePort": node_port}]}),
    ))?
    .expect_ok("apply the web-np Service")?;
    kc.apply(&client_pod(None))?.expect_ok("apply client")?;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=90s"])?;
    running(&kc, "client").await?;
    let ip = cluster_ip(&kc, "web")?;
    assert!(ip.starts_with("10.43.96."), "{ip} not from the range");
    // Pods resolve through the node's cluster DNS (the range's tenth address) with
    // Kubernetes' search path: the Service by its short name.
    let resolv = kc.ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"])?;
    assert!(
        resolv.contains("nameserver 10.43.96.10\n")
            && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("options ndots:5"),
        "{resolv}"
    );
    let looked_up = kc.ok(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "web.default.svc.cluster.local.",
    ])?;
    assert!(looked_up.contains(&format!("Address: {ip}")), "{looked_up}");
    let srv = kc.ok(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "-type=srv",
        "_http._tcp.web.default.svc.cluster.local.",
    ])?;
    assert!(
        srv.contains("service = 0 100 80 web.default.svc.cluster.local"),
        "{srv}"
    );
    let url = "http://web/".to_string();
    let web = pod_names(&kc, "web")?;
    assert_eq!(web.len(), 3);
    let last = std::sync::Mutex::new(None);
    wait_for(DEADLINE, "the service serving all three pods", || async {
        let counts = requests(&kc, "client", &url, 6);
        let all = counts
            .as_ref()
            .is_ok_and(|c| web.iter().all(|w| c.contains_key(w)));
        *last.lock().unwrap() = Some(format!("{counts:?}"));
        all.then_some(())
    })
    .await
    .with_context(|| {
        format!(
            "last answers {:?}; slices ready {:?}",
            last.lock().unwrap(),
            ready_addresses(&kc, "web")
        )
    })?;

    // 300 sequential requests from inside a pod to the Service's name: each pod answers 100.
    let counts = requests(&kc, "client", &url, 300)?;
    let want: BTreeMap<String, u32> = web.iter().map(|w| (w.clone(), 100)).collect();
    assert_eq!(counts, want, "300 requests through the Service");

    // The NodePort from this machine, on 127.0.0.1.
    let mut seen = BTreeMap::new();
    for _ in 0..30 {
        *seen
            .entry(http_get(&format!("127.0.0.1:{node_port}"))?)
            .or_insert(0) += 1;
    }
    let want: BTreeMap<String, u32> = web.iter().map(|w| (w.clone(), 10)).collect();
    assert_eq!(seen, want, "through the node port");

    // A UDP Service whose endpoint is a user-managed EndpointSlice: a UDP echo on this
    // machine, on the node's pod bridge address (the pods' gateway; an endpoint may not be
    // a loopback address), through its cluster IP.
    let node = kc.json(&["get", "node", "svc-solo"])?;
    let gateway = node["spec"]["podCIDR"]
        .as_str()
        .and_then(|c| c.rsplit_once('.'))
        .map(|(prefix, _)| format!("{prefix}.1"))
        .context("the node's pod range")?;
    let echo = UdpSocket::bind(format!("{gateway}:0"))?;
    let echo_port = echo.local_addr()?.port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    kc.apply(&service(
        "echo",
        json!({"ports": [{"name": "echo", "port": 9000, "protocol": "UDP"}]}),
    ))?
    .expect_ok("apply the echo Service")?;
    kc.apply(&json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "echo-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "ports": [{"name": "echo", "port": echo_port, "protocol": "UDP"}],
        "endpoints": [{"addresses": [gateway.clone()], "conditions": {"ready": true}}],
    }))?
    .expect_ok("apply the echo slice")?;
    let echo_ip = cluster_ip(&kc, "echo")?;
    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.set_read_timeout(Some(Duration::from_millis(300)))?;
    wait_for(DEADLINE, "the udp echo through its cluster ip", || async {
        client
            .send_to(b"ping navarch", format!("{echo_ip}:9000"))
            .ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = client.recv_from(&mut buf).ok()?;
        (&buf[..n] == b"ping navarch").then_some(())
    })
    .await?;

    // Scale to 5 and back to 2 while a client loops through the Service.
    let loop_out = dir.path().join("loop.txt");
    let script = format!(
        "while [ ! -e /tmp/stop ]; do timeout 5 wget -qO- {url} || echo FAIL; usleep 50000; done"
    );
    let mut looping = kubectl_spawn(
        &kc.kubeconfig,
        &kc.home,
        &["exec", "client", "--", "sh", "-c", &script],
        &loop_out,
    )?;
    kc.ok(&["scale", "deployment/web", "--replicas=5"])?;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=90s"])?;
    let five = pod_names(&kc, "web")?;
    assert_eq!(five.len(), 5);
    // Every new pod gets traffic once ready.
    wait_for(DEADLINE, "all five pods answering the loop", || async {
        let text = std::fs::read_to_string(&loop_out).ok()?;
        five.iter()
            .all(|p| text.lines().any(|l| l.trim() == p))
            .then_some(())
    })
    .await
    .with_context(|| loop_state(&kc, &loop_out, &mut looping))?;
    kc.ok(&["scale", "deployment/web", "--replicas=2"])?;
    wait_for(DEADLINE, "two web pods left", || async {
        (pod_names(&kc, "web").ok()?.len() == 2).then_some(())
    })
    .await?;
    let two = pod_names(&kc, "web")?;
    // The change in the API: the Service's slices list only the two as ready.
    let pod_ips: std::collections::BTreeSet<String> = two
        .iter()
        .map(|p| {
            kc.json(&["get", "pod", p])?["status"]["podIP"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("{p} has no IP"))
        })
        .collect::<Result<_>>()?;
    wait_for(
        DEADLINE,
        "the slices listing only the two as ready",
        || async {
            let ready = ready_addresses(&kc, "web").ok()?;
            (ready == pod_ips).then_some(())
        },
    )
    .await?;
    // Let the loop run past the change (20 iterations, each over 50 ms: past the one second
    // the node may take), then 20 more, then stop it.
    let mark = std::fs::read_to_string(&loop_out)?.lines().count();
    wait_for(DEADLINE, "the loop past the scale-down", || async {
        (std::fs::read_to_string(&loop_out).ok()?.lines().count() >= mark + 40).then_some(())
    })
    .await
    .with_context(|| loop_state(&kc, &loop_out, &mut looping))?;
    kc.ok(&["exec", "client", "--", "touch", "/tmp/stop"])?;
    let status = looping.wait()?;
    assert!(status.success(), "the client loop: {status}");
    let text = std::fs::read_to_string(&loop_out)?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let fails = lines.iter().filter(|l| **l == "FAIL").count();
    // Only a request cut by one of the three deleted pods may fail.
    assert!(fails <= 3, "{fails} failed requests of {}", lines.len());
    for l in &lines[lines.len() - 20..] {
        assert!(
            two.iter().any(|p| p == l),
            "after the scale-down: {l:?} ({two:?})"
        );
    }
    for l in &lines {
        assert!(
            *l == "FAIL" || five.iter().any(|p| p == l),
            "an answer from no pod of the Deployment: {l:?}"
        );
    }
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_on_one_node_reaches_a_service_whose_pods_run_on_another() -> Result<()> {
    let cidr = "10.42.112.0/20";
    let range = "10.43.112.0/24";
    let mut cluster = Cluster::start(
        1,
        &["--cluster-cidr", cidr, "--service-cluster-ip-range", range],
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;
    let masters = cluster.peer_list();
    let mut nodes = Vec::new();
    for name in ["svc-left", "svc-right"] {
        let mut args = vec![
            "--master",
            &masters,
            "--kubelet-port",
            "0",
            "--node-cluster-cidr",
            cidr,
            "--service-cluster-ip-range",
            range,
        ];
        args.extend_from_slice(NODE_FLAGS);
        nodes.push(NodeProc::start(&cluster, 0, name, &args).await?);
    }
    node_ready(&kc, "svc-left").await?;
    node_ready(&kc, "svc-right").await?;
    kc.apply(&httpd_on("far", 2, Some("svc-right")))?
        .expect_ok("apply far")?;
    kc.apply(&service(
        "far",
        json!({"selector": {"app": "far"}, "ports": [{"port": 80, "targetPort": 8080}]}),
    ))?
    .expect_ok("apply the far Service")?;
    kc.apply(&client_pod(Some("svc-left")))?
        .expect_ok("apply client")?;
    kc.ok(&["rollout", "status", "deployment/far", "--timeout=90s"])?;
    running(&kc, "client").await?;
    let client = kc.json(&["get", "pod", "client"])?;
    assert_eq!(client["spec"]["nodeName"], "svc-left");
    let far = pod_names(&kc, "far")?;
    for p in &far {
        assert_eq!(
            kc.json(&["get", "pod", p])?["spec"]["nodeName"],
            "svc-right"
        );
    }
    let url = format!("http://{}/", cluster_ip(&kc, "far")?);
    wait_for(DEADLINE, "both far pods answering the client", || async {
        let counts = requests(&kc, "client", &url, 4).ok()?;
        far.iter().all(|p| counts.contains_key(p)).then_some(())
    })
    .await?;
    // Both nodes' proxies serve the cluster IP on this one machine (the kernel spreads
    // connections between them), so the split is not exact here; none fails.
    let counts = requests(&kc, "client", &url, 20)?;
    assert_eq!(counts.values().sum::<u32>(), 20);
    assert!(
        counts.keys().all(|k| far.contains(k)),
        "answers from pods of the Service only: {counts:?}"
    );
    for n in &mut nodes {
        n.passed();
    }
    cluster.passed();
    Ok(())
}
