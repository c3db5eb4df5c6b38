//! The proxy in one process over an in-memory API ([`FakeClient`]) with real sockets (root,
//! as here and in CI): endpoints are servers on loopback addresses, cluster IPs come from
//! a range of this test's own on a service interface of its own, node ports listen on
//! 127.0.0.1. Round-robin through a cluster IP and a node port, refusal without endpoints,
//! connections cut when their endpoint goes, UDP flows moving off a removed endpoint,
//! session affinity, and a killed ServicePort actor that no connection notices.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use navarch_actors::{ActorPath, Root};
use navarch_agent::proxy::table::Ingress;
use navarch_agent::proxy::{CopyMode, DataplaneConfig, Proxy};
use navarch_client::cache::Scope;
use navarch_client::testing::FakeClient;
use navarch_client::{Client, SharedCaches};
use navarch_model::options::WriteOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn services() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "services")
}

fn slices() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("discovery.k8s.io", "v1", "endpointslices")
}

/// A cluster IP of this test's own: 10.43.240.0/20 split by test and process.
fn cluster_ip(test: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(10, 43, 240 + (pid % 16) as u8, test)
}

/// A node port of this test's own.
fn node_port(test: u16) -> u16 {
    30000 + (std::process::id() % 500) as u16 * 5 + test
}

/// The port of this test's endpoints (each on an address of its own).
fn backend_port(test: u16) -> u16 {
    20000 + (std::process::id() % 1000) as u16 * 4 + test
}

/// A TCP server on `ip` that answers every connection with `name` and then echoes.
async fn tcp_backend(ip: &str, port: u16, name: &'static str) -> SocketAddrV4 {
    let l = TcpListener::bind((ip, port)).await.unwrap();
    let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
        unreachable!()
    };
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A UDP server on `ip` that answers every datagram with `name`.
async fn udp_backend(ip: &str, port: u16, name: &'static str) -> SocketAddrV4 {
    let s = UdpSocket::bind((ip, port)).await.unwrap();
    let SocketAddr::V4(addr) = s.local_addr().unwrap() else {
        unreachable!()
    };
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((_, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(name.as_bytes(), from).await;
        }
    });
    addr
}

fn service(name: &str, ip: Ipv4Addr, spec: Value) -> Value {
    let mut s = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()]},
    });
    for (k, v) in spec.as_object().unwrap() {
        s["spec"][k] = v.clone();
    }
    s
}

/// The EndpointSlice of Service `svc` with its endpoints (all on one port number).
fn slice(svc: &str, protocol: &str, endpoints: &[(SocketAddrV4, bool)]) -> Value {
    let port = endpoints.first().map(|(a, _)| a.port()).unwrap_or(1);
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(addr, ready)| {
            json!({
                "addresses": [addr.ip().to_string()], "nodeName": "n1",
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": svc, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": port, "protocol": protocol}],
        "endpoints": eps,
    })
}

/// Waits until the data plane serves `key` with `n` targets through its cluster IP.
async fn serving(h: &Harness, key: &str, n: usize) {
    until(&format!("{key} with {n} targets"), || async {
        h.proxy
            .dataplane()
            .spec(key)
            .is_some_and(|s| s.targets(Ingress::ClusterIp, "n1").len() == n)
    })
    .await;
}

struct Harness {
    iface: String,
    fake: Arc<FakeClient>,
    root: Root,
    proxy: Proxy,
    _caches: SharedCaches,
}

impl Harness {
    async fn start(iface_tag: &str) -> Harness {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the proxy's tests bind cluster IPs and need root (CI runs as root)"
        );
        let fake = Arc::new(FakeClient::new());
        let client: Arc<dyn Client> = fake.clone();
        let caches = SharedCaches::new(client);
        let root = Root::new(ActorPath::parse("/node/n1").unwrap(), Default::default());
        let iface = format!("nvt{iface_tag}{:x}", std::process::id() % 0xffff);
        let proxy = Proxy::start(
            &root,
            DataplaneConfig {
                node: "n1".into(),
                node_port_addresses: vec![Ipv4Addr::LOCALHOST],
                service_iface: Some(iface.clone()),
                copy: CopyMode::Splice,
            },
            caches.scoped(Scope::kind(services())),
            caches.scoped(Scope::kind(slices())),
        )
        .await
        .unwrap();
        Harness {
            iface,
            fake,
            root,
            proxy,
            _caches: caches,
        }
    }

    async fn put(&self, kind: &'static navarch_model::kinds::Kind, obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let current = self
            .fake
            .get(kind, Some("default"), &name, &Default::default())
            .await
            .ok();
        match current {
            Some(mut c) => {
                c["spec"] = obj["spec"].clone();
                c["endpoints"] = obj["endpoints"].clone();
                c["ports"] = obj["ports"].clone();
                self.fake
                    .update(
                        kind,
                        Some("default"),
                        &name,
                        None,
                        c,
                        &WriteOptions::default(),
                    )
                    .await
                    .unwrap();
            }
            None => {
                self.fake
                    .create(kind, Some("default"), obj, &WriteOptions::default())
                    .await
                    .unwrap();
            }
        }
    }

    async fn put_slice(&self, obj: Value) {
        self.put(slices(), obj).await;
    }

    async fn delete(&self, kind: &'static navarch_model::kinds::Kind, name: &str) {
        self.fake
            .delete(kind, Some("default"), name, &Default::default())
            .await
            .unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.proxy.dataplane().shutdown();
        let _ = navarch_agent::network::host::remove_bridge(&self.iface);
    }
}

/// Connects and reads the backend's name line.
async fn hello(addr: SocketAddrV4) -> std::io::Result<(TcpStream, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let mut name = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .map_err(|_| std::io::Error::other("no name line within 5s"))??;
        if n == 0 {
            return Err(std::io::Error::other("closed before the name line"));
        }
        if b[0] == b'\n' {
            break;
        }
        name.push(b[0]);
    }
    Ok((s, String::from_utf8(name).unwrap()))
}

/// Polls `f` until it holds (20 s at most).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn tcp_round_robin_refusal_and_cut_connections() {
    let h = Harness::start("a").await;
    let ip = cluster_ip(1);
    let np = node_port(1);
    let vip = SocketAddrV4::new(ip, 80);
    let nodeport = SocketAddrV4::new(Ipv4Addr::LOCALHOST, np);
    h.put(
        services(),
        service(
            "web",
            ip,
            json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": np}]}),
        ),
    )
    .await;
    // No endpoint yet: the cluster IP is there, nothing listens, the connection is refused
    // at once.
    until("the cluster ip on the service interface", || async {
        matches!(TcpStream::connect(vip).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
    .await;
    let port = backend_port(1);
    let a = tcp_backend("127.0.0.11", port, "a").await;
    let b = tcp_backend("127.0.0.12", port, "b").await;
    let c = tcp_backend("127.0.0.13", port, "c").await;
    let not_ready = tcp_backend("127.0.0.14", port, "not-ready").await;
    h.put_slice(slice(
        "web",
        "TCP",
        &[(a, true), (b, true), (c, true), (not_ready, false)],
    ))
    .await;
    serving(&h, "default/web:80:tcp", 3).await;
    for addr in [vip, nodeport] {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for _ in 0..300 {
            let (_, name) = hello(addr).await.unwrap();
            *counts.entry(name).or_default() += 1;
        }
        assert_eq!(counts.len(), 3, "through {addr}: {counts:?}");
        assert!(
            counts.values().all(|&n| n == 100),
            "through {addr}: {counts:?}"
        );
    }

    // An established connection to an endpoint that leaves the slices is closed; new ones
    // go to the others.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(hello(vip).await.unwrap());
    }
    let (mut to_a, _) = held.into_iter().find(|(_, n)| n == "a").unwrap();
    h.put_slice(slice("web", "TCP", &[(b, true), (c, true)]))
        .await;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), to_a.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the connection to the removed endpoint stayed open: {closed:?}"
    );
    for _ in 0..20 {
        let (_, name) = hello(vip).await.unwrap();
        assert!(name == "b" || name == "c", "{name}");
    }

    // The ServicePort actor killed: a held connection carries on, new ones are served.
    let (mut kept, _) = hello(vip).await.unwrap();
    let actor = ActorPath::parse("/node/n1/proxy/serviceport/default/web:80:tcp").unwrap();
    h.root.registry().kill(&actor).unwrap();
    until("the ServicePort actor restarted", || async {
        h.root
            .registry()
            .get(&actor)
            .is_some_and(|a| a.restarts >= 1 && a.status == navarch_actors::Status::Running)
    })
    .await;
    kept.write_all(b"still here").await.unwrap();
    let mut echoed = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), kept.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"still here");
    assert!(hello(vip).await.is_ok());

    // Every endpoint gone: refused at once again; the Service gone: its cluster IP too.
    h.put_slice(slice("web", "TCP", &[(b, false), (c, false)]))
        .await;
    until("refusal without ready endpoints", || async {
        matches!(TcpStream::connect(vip).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
    .await;
    h.delete(services(), "web").await;
    until("the cluster ip gone", || async {
        h.proxy.dataplane().keys().is_empty()
    })
    .await;
}

#[actix_rt::test]
async fn udp_flows_move_off_a_removed_endpoint_and_affinity_sticks() {
    let h = Harness::start("b").await;
    let ip = cluster_ip(2);
    let vip = SocketAddrV4::new(ip, 53);
    h.put(
        services(),
        service(
            "dns",
            ip,
            json!({"ports": [{"port": 53, "protocol": "UDP"}]}),
        ),
    )
    .await;
    let port = backend_port(2);
    let x = udp_backend("127.0.0.21", port, "x").await;
    let y = udp_backend("127.0.0.22", port, "y").await;
    h.put_slice(slice("dns", "UDP", &[(x, true), (y, true)]))
        .await;
    serving(&h, "default/dns:53:udp", 2).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ask = || async {
        client.send_to(b"q", vip).await.ok()?;
        let mut buf = [0u8; 16];
        let (n, _) = tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).to_string())
    };
    let first = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(name) = ask().await {
                break name;
            }
            assert!(tokio::time::Instant::now() < deadline, "no udp answer");
        }
    };
    // One flow, one endpoint.
    for _ in 0..10 {
        assert_eq!(ask().await.as_deref(), Some(first.as_str()));
    }
    // Its endpoint removed: the same flow goes to the other one.
    let (gone, other) = if first == "x" { (x, "y") } else { (y, "x") };
    let left = if gone == x { y } else { x };
    h.put_slice(slice("dns", "UDP", &[(left, true)])).await;
    serving(&h, "default/dns:53:udp", 1).await;
    assert_eq!(ask().await.as_deref(), Some(other));

    // ClientIP affinity: every connection of one client goes to the same endpoint.
    let tip = cluster_ip(3);
    let tvip = SocketAddrV4::new(tip, 8080);
    h.put(
        services(),
        service(
            "sticky",
            tip,
            json!({"sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                   "ports": [{"port": 8080, "protocol": "TCP"}]}),
        ),
    )
    .await;
    let port = backend_port(3);
    let p = tcp_backend("127.0.0.31", port, "p").await;
    let q = tcp_backend("127.0.0.32", port, "q").await;
    h.put_slice(slice("sticky", "TCP", &[(p, true), (q, true)]))
        .await;
    serving(&h, "default/sticky:8080:tcp", 2).await;
    let (_, name) = hello(tvip).await.unwrap();
    for _ in 0..30 {
        assert_eq!(hello(tvip).await.unwrap().1, name);
    }
}
