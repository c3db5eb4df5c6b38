//! The pod network for real, as root: network namespaces, the CNI bridge, host-local and
//! loopback plugins from /usr/lib/cni (`scripts/install-deps.sh` installs them), traffic
//! between pods of one node and of two nodes on this machine, addresses freed by DEL, and
//! no route out of the cluster CIDR.
//!
//! Safety: traffic only flows between namespaces and bridges these tests made, in ranges
//! of 10.42.0.0/16 (high subnets, .248 to .253, that a running cluster's nodes would not
//! use); pods have no default route, nothing is masqueraded, and the host has an
//! unreachable route for 10.42.0.0/16 before any pod sends. Every namespace, bridge, state
//! directory and route made here is removed on drop, a failed test included.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use navarch_agent::ipam::Cidr;
use navarch_agent::network::host::{self, HostChanges, RouteKind};
use navarch_agent::network::netns::{run_in, NetnsDir};
use navarch_agent::network::{Cni, CniError, NodeNetwork};
use nix::fcntl::{Flock, FlockArg};

const CLUSTER: &str = "10.42.0.0/16";
const PLUGINS: &str = "/usr/lib/cni";

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// These tests need root and the plugins: they fail, loudly, without them.
fn preflight() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_eq!(euid, "0", "the network tests must run as root");
    for plugin in ["bridge", "host-local", "loopback"] {
        let path = PathBuf::from(PLUGINS).join(plugin);
        assert!(
            path.is_file(),
            "{} is missing: run scripts/install-deps.sh (containernetworking-plugins)",
            path.display()
        );
    }
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "nvt-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test network namespace, deleted on drop.
struct Netns {
    dir: NetnsDir,
    name: String,
    path: PathBuf,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let dir = NetnsDir::default();
        let name = unique(tag);
        let path = dir.create(&name).unwrap();
        Netns { dir, name, path }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.dir.delete(&self.name) {
            eprintln!("cleanup: netns {}: {e}", self.name);
        }
    }
}

/// A test node: its CNI client, state dir and bridge, the bridge removed on drop.
struct Node {
    cni: Cni,
    _state: tempfile::TempDir,
}

impl Node {
    fn new(tag: &str, pod_cidr: &str) -> Node {
        let state = tempfile::tempdir().unwrap();
        // "nvt", the pid and the tag: unique per run, at most 15 characters.
        let bridge = format!("nvt{}{tag}", std::process::id());
        let network = NodeNetwork::new(&unique(tag), cidr(pod_cidr), cidr(CLUSTER))
            .unwrap()
            .with_bridge(&bridge)
            .unwrap();
        let cni = Cni::new(vec![PLUGINS.into()], state.path().to_path_buf(), network)
            .with_timeout(Duration::from_secs(20));
        Node { cni, _state: state }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = host::remove_bridge(self.cni.network().bridge()) {
            eprintln!("cleanup: bridge {}: {e}", self.cni.network().bridge());
        }
    }
}

/// The host's forwarding and unreachable route for the cluster CIDR, shared by the tests
/// of this process (counted) and, through a shared lock, with other runs of them: the
/// route is removed only by the run that added it, and only when no other run holds the
/// lock (else it stays, a harmless drop route).
struct HostPrepared;

struct HostState {
    users: usize,
    changes: Option<HostChanges>,
    lock: Option<Flock<File>>,
}

static HOST: Mutex<HostState> = Mutex::new(HostState {
    users: 0,
    changes: None,
    lock: None,
});

const HOST_LOCK: &str = "/run/navarch-network-tests.lock";

impl HostPrepared {
    fn get() -> HostPrepared {
        let mut state = HOST.lock().unwrap_or_else(|e| e.into_inner());
        if state.users == 0 {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(HOST_LOCK)
                .unwrap();
            state.lock = Some(
                Flock::lock(file, FlockArg::LockShared)
                    .map_err(|(_, e)| e)
                    .unwrap(),
            );
            state.changes = Some(host::prepare(&[cidr(CLUSTER)]).unwrap());
        }
        state.users += 1;
        assert_cluster_route_drops();
        HostPrepared
    }
}

impl Drop for HostPrepared {
    fn drop(&mut self) {
        let mut state = HOST.lock().unwrap_or_else(|e| e.into_inner());
        state.users -= 1;
        if state.users > 0 {
            return;
        }
        let changes = state.changes.take().unwrap_or_default();
        if let Some(lock) = state.lock.take() {
            if lock.relock(FlockArg::LockExclusiveNonblock).is_ok() {
                if let Err(e) = host::undo(&changes) {
                    eprintln!("cleanup: host routes: {e}");
                }
            }
        }
    }
}

/// Nothing of the cluster CIDR may leave: its route on the host must be a drop.
fn assert_cluster_route_drops() {
    let out = std::process::Command::new("ip")
        .args(["-j", "route", "show", "exact", CLUSTER])
        .output()
        .unwrap();
    assert_eq!(
        host::route_kind(&String::from_utf8_lossy(&out.stdout)),
        RouteKind::Drop,
        "the host has no drop route for {CLUSTER}: refusing to send"
    );
}

/// A listener inside `ns` on `ip`, answering each connection with what it read, reversed.
fn listen_in(ns: &Netns, ip: Ipv4Addr) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let listener = run_in(&ns.path, || TcpListener::bind(SocketAddrV4::new(ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = vec![0u8; 5];
        conn.read_exact(&mut got).unwrap();
        let mut back = got.clone();
        back.reverse();
        conn.write_all(&back).unwrap();
        got
    });
    (addr, server)
}

/// Connects from inside `ns` to `to`, sends five bytes and reads the answer.
fn exchange(ns: &Netns, to: SocketAddr) -> Vec<u8> {
    let mut conn = run_in(&ns.path, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(10))
    })
    .unwrap()
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"hello").unwrap();
    let mut back = vec![0u8; 5];
    conn.read_exact(&mut back).unwrap();
    back
}

#[tokio::test]
async fn two_pods_of_one_node_talk_over_its_bridge() {
    preflight();
    let node = Node::new("a", "10.42.248.0/24");
    for plugin in ["bridge", "host-local", "loopback"] {
        let versions = node.cni.versions(plugin).await.unwrap();
        assert!(
            versions.iter().any(|v| v == "1.0.0"),
            "{plugin}: {versions:?}"
        );
    }
    let (a, b) = (Netns::new("a"), Netns::new("b"));
    let net_a = node.cni.add("pod-a", &a.path).await.unwrap();
    let net_b = node.cni.add("pod-b", &b.path).await.unwrap();

    let range = cidr("10.42.248.0/24");
    assert_ne!(net_a.ip, net_b.ip);
    for net in [&net_a, &net_b] {
        assert!(range.contains(net.ip), "{} outside {range}", net.ip);
        assert_eq!(net.gateway, Ipv4Addr::new(10, 42, 248, 1));
        assert_eq!(net.interface, "eth0");
        assert_eq!(net.prefix_len, 24);
    }
    node.cni.check("pod-a", &a.path).await.unwrap();
    let again = node.cni.add("pod-a", &a.path).await.unwrap();
    assert_eq!(again, net_a, "a second ADD answers the pod's address");

    let (addr, server) = listen_in(&b, net_b.ip);
    assert_eq!(exchange(&a, addr), b"olleh");
    assert_eq!(server.join().unwrap(), b"hello");

    node.cni.del("pod-a", &a.path).await.unwrap();
    node.cni.del("pod-b", &b.path).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_added_at_once_get_distinct_addresses() {
    preflight();
    let node = Node::new("p", "10.42.249.0/24");
    let pods: Vec<Netns> = (0..4).map(|i| Netns::new(&format!("p{i}"))).collect();
    let uids: Vec<String> = (0..4).map(|i| format!("pod-p{i}")).collect();
    let adds = pods
        .iter()
        .zip(&uids)
        .map(|(ns, uid)| node.cni.add(uid, &ns.path));
    let nets: Vec<_> = futures::future::join_all(adds)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut ips: Vec<Ipv4Addr> = nets.iter().map(|n| n.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "{nets:?}");
    for (ns, uid) in pods.iter().zip(&uids) {
        node.cni.del(uid, &ns.path).await.unwrap();
    }
    let leases: Vec<String> = std::fs::read_dir(node.cni.lease_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
}

#[tokio::test]
async fn a_pod_reaches_a_pod_of_another_node_on_this_machine() {
    preflight();
    let _host = HostPrepared::get();
    let (n1, n2) = (
        Node::new("b1", "10.42.250.0/24"),
        Node::new("b2", "10.42.251.0/24"),
    );
    assert_ne!(n1.cni.network().bridge(), n2.cni.network().bridge());
    let (p1, p2) = (Netns::new("n1"), Netns::new("n2"));
    let net1 = n1.cni.add("pod-1", &p1.path).await.unwrap();
    let net2 = n2.cni.add("pod-2", &p2.path).await.unwrap();
    assert!(cidr("10.42.250.0/24").contains(net1.ip));
    assert!(cidr("10.42.251.0/24").contains(net2.ip));

    let (addr, server) = listen_in(&p2, net2.ip);
    assert_eq!(exchange(&p1, addr), b"olleh");
    assert_eq!(server.join().unwrap(), b"hello");

    n1.cni.del("pod-1", &p1.path).await.unwrap();
    n2.cni.del("pod-2", &p2.path).await.unwrap();
}

#[tokio::test]
async fn del_frees_the_address_and_is_idempotent() {
    preflight();
    // A /30: the gateway and a single pod address.
    let node = Node::new("c", "10.42.252.0/30");
    let (a, b) = (Netns::new("c1"), Netns::new("c2"));
    let first = node.cni.add("pod-c1", &a.path).await.unwrap();
    assert_eq!(first.ip, Ipv4Addr::new(10, 42, 252, 2));
    let lease = node.cni.lease_dir().join(first.ip.to_string());
    let held = std::fs::read_to_string(&lease).unwrap();
    assert!(held.contains("pod-c1"), "lease {held:?}");

    // The range is full: the plugin's error comes back, parsed.
    match node.cni.add("pod-c2", &b.path).await {
        Err(CniError::Plugin {
            plugin, code, msg, ..
        }) => {
            assert_eq!(plugin, "bridge");
            assert!(msg.contains("no IP addresses available"), "{code} {msg}");
        }
        other => panic!("expected a plugin error, got {other:?}"),
    }

    node.cni.del("pod-c1", &a.path).await.unwrap();
    assert!(!lease.exists(), "the lease outlived DEL");
    node.cni.del("pod-c1", &a.path).await.unwrap();
    assert!(matches!(
        node.cni.check("pod-c1", &a.path).await,
        Err(CniError::NotAdded(_))
    ));
    // DEL once the namespace is gone, as after a crash, is fine too.
    let gone = a.path.clone();
    drop(a);
    node.cni.del("pod-c1", &gone).await.unwrap();

    let second = node.cni.add("pod-c2", &b.path).await.unwrap();
    assert_eq!(second.ip, first.ip, "the freed address is handed out again");
    node.cni.del("pod-c2", &b.path).await.unwrap();
}

#[tokio::test]
async fn a_pod_has_no_way_out_of_the_cluster_cidr() {
    preflight();
    let _host = HostPrepared::get();
    let node = Node::new("d", "10.42.253.0/24");
    let pod = Netns::new("d");
    let net = node.cni.add("pod-d", &pod.path).await.unwrap();

    // Its routes: its subnet on eth0 and the cluster CIDR via the gateway, no default.
    let table = run_in(&pod.path, || {
        std::fs::read_to_string("/proc/thread-self/net/route")
    })
    .unwrap()
    .unwrap();
    let routes: Vec<(Ipv4Addr, Ipv4Addr, Ipv4Addr)> = table
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |s: &str| Ipv4Addr::from(u32::from_str_radix(s, 16).unwrap().swap_bytes());
            (hex(f[1]), hex(f[2]), hex(f[7]))
        })
        .collect();
    assert!(
        routes
            .iter()
            .all(|(dst, _, mask)| !(dst.is_unspecified() && mask.is_unspecified())),
        "a default route in the pod: {table}"
    );
    let via_gateway = (
        Ipv4Addr::new(10, 42, 0, 0),
        net.gateway,
        Ipv4Addr::new(255, 255, 0, 0),
    );
    assert!(routes.contains(&via_gateway), "{table}");
    assert_eq!(routes.len(), 2, "{table}");

    let attempt = |to: Ipv4Addr| {
        let to = SocketAddr::from((to, 80));
        run_in(&pod.path, move || {
            let started = Instant::now();
            let err = TcpStream::connect_timeout(&to, Duration::from_secs(3)).unwrap_err();
            (err, started.elapsed())
        })
        .unwrap()
    };
    // Outside the cluster CIDR: no route in the pod, nothing is sent.
    let (err, _) = attempt(Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable, "{err}");
    // Inside it, but on no bridge: the host drops it. Its forwarding decision for exactly
    // that packet (from the pod, in through the bridge) is "no route to host", not its
    // default route.
    assert_cluster_route_drops();
    let nowhere = Ipv4Addr::new(10, 42, 254, 254);
    let lookup = std::process::Command::new("ip")
        .args([
            "route",
            "get",
            &nowhere.to_string(),
            "from",
            &net.ip.to_string(),
        ])
        .args(["iif", node.cni.network().bridge()])
        .output()
        .unwrap();
    assert!(!lookup.status.success(), "{lookup:?}");
    assert!(
        String::from_utf8_lossy(&lookup.stderr).contains("No route to host"),
        "{lookup:?}"
    );
    // And the pod's connection fails: with the host's ICMP "no route to host", or, when
    // the kernel's per-destination ICMP rate limit (net.ipv4.icmp_ratelimit) swallowed
    // that answer, by running out of time; it never connects.
    let (err, took) = attempt(nowhere);
    assert!(
        matches!(err.kind(), ErrorKind::HostUnreachable | ErrorKind::TimedOut),
        "{err}"
    );
    assert!(took < Duration::from_secs(6), "{took:?}");

    node.cni.del("pod-d", &pod.path).await.unwrap();
}

#[test]
fn netns_create_and_delete_are_idempotent() {
    preflight();
    let dir = NetnsDir::default();
    let name = unique("e");
    assert!(!dir.exists(&name).unwrap());
    let guard = Netns {
        dir: dir.clone(),
        name: name.clone(),
        path: dir.create(&name).unwrap(),
    };
    let path = guard.path.clone();
    assert!(dir.exists(&name).unwrap());
    assert_eq!(dir.create(&name).unwrap(), path, "a second create keeps it");

    // It is a network namespace of its own: only a loopback, down.
    let links = run_in(&path, || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })
    .unwrap()
    .unwrap();
    let names: Vec<&str> = links
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(names, ["lo"]);

    dir.delete(&name).unwrap();
    assert!(!dir.exists(&name).unwrap());
    assert!(!path.exists());
    dir.delete(&name).unwrap();
    assert!(run_in(&path, || ()).is_err());
    assert!(dir.create("../escape").is_err());
}
