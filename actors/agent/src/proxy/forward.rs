//! The proxy's data plane: for each Service port, sockets on its cluster IPs (addresses of
//! the node's service interface) and on its node port (on the node-port addresses), and
//! the copying between a client and the endpoint [`Balancer`] picked.
//!
//! - A listener exists only while its ingress has a target: a Service with no ready
//!   endpoint has no socket, so the kernel refuses a TCP connection at once (RST) and
//!   answers UDP with port unreachable, as kube-proxy's REJECT does.
//! - Targets are read at each new connection (and each UDP datagram), so a change reaches
//!   new traffic as soon as [`Dataplane::apply`] has run.
//! - A TCP connection to an endpoint no longer in the Service's slices is cut (both sides
//!   closed); one to an endpoint that only turned not ready is left alone, as Kubernetes
//!   does.
//! - A UDP flow (a client's address and port) is bound to one endpoint while that endpoint
//!   is a target; once it is not, the flow's next datagram goes to a live one: there is no
//!   conntrack entry to go stale.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinHandle};

use super::balance::Balancer;
use super::copy::{self, CopyMode};
use super::table::{Ingress, Protocol, ServicePort};

/// How long a connection to an endpoint may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A UDP flow silent this long is forgotten.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// Why a Service port could not be served (in full).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bind {addr}/{protocol}: {source}")]
    Bind {
        addr: SocketAddrV4,
        protocol: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("service interface {iface}: {reason}")]
    Iface { iface: String, reason: String },
}

/// What the data plane serves on.
#[derive(Clone, Debug)]
pub struct DataplaneConfig {
    pub node: String,
    /// Where node ports listen (`--nodeport-addresses`).
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// The interface holding the cluster IPs; `None`: cluster IPs are not served (the
    /// agent is not root, or pods share the host's network).
    pub service_iface: Option<String>,
    pub copy: CopyMode,
}

/// Every Service port the node serves.
pub struct Dataplane {
    cfg: DataplaneConfig,
    ports: Mutex<HashMap<String, Port>>,
    /// Which Service ports hold each cluster IP on the service interface.
    ips: Mutex<HashMap<Ipv4Addr, BTreeSet<String>>>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("node", &self.cfg.node)
            .finish_non_exhaustive()
    }
}

struct Port {
    shared: Arc<PortShared>,
    listeners: HashMap<(Ingress, SocketAddrV4), JoinHandle<()>>,
}

impl Drop for Port {
    fn drop(&mut self) {
        for l in self.listeners.values() {
            l.abort();
        }
        self.shared.cut(|_| true);
    }
}

/// What a Service port's sockets share.
struct PortShared {
    node: String,
    copy: CopyMode,
    spec: RwLock<Arc<ServicePort>>,
    balancers: Mutex<HashMap<Ingress, Balancer>>,
    conns: Mutex<HashMap<u64, (SocketAddrV4, AbortHandle)>>,
    next_conn: AtomicU64,
}

impl PortShared {
    fn spec(&self) -> Arc<ServicePort> {
        self.spec.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn pick(
        &self,
        ingress: Ingress,
        client: IpAddr,
        skip: &[SocketAddrV4],
    ) -> Option<SocketAddrV4> {
        let spec = self.spec();
        let targets = spec.targets(ingress, &self.node);
        self.balancers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ingress)
            .or_default()
            .pick(client, &targets, skip, spec.affinity, Instant::now())
    }

    /// Cuts the TCP connections whose endpoint `gone` says is gone.
    fn cut(&self, gone: impl Fn(&SocketAddrV4) -> bool) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for (backend, task) in conns.values() {
            if gone(backend) {
                task.abort();
            }
        }
    }
}

impl Dataplane {
    pub fn new(cfg: DataplaneConfig) -> Result<Dataplane, ProxyError> {
        if let Some(iface) = &cfg.service_iface {
            crate::network::host::ensure_service_iface(iface).map_err(|e| ProxyError::Iface {
                iface: iface.clone(),
                reason: e.to_string(),
            })?;
            // What a previous run left (Services deleted while it was down) goes; the
            // ports being served put theirs back as they are applied.
            for ip in crate::network::host::addresses(iface) {
                let _ = crate::network::host::remove_address(iface, ip);
            }
        }
        Ok(Dataplane {
            cfg,
            ports: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
        })
    }

    /// Serves `spec` as Service port `key` (made, or changed to it).
    pub fn apply(&self, key: &str, spec: Arc<ServicePort>) -> Result<(), ProxyError> {
        self.hold_ips(key, &spec.cluster_ips)?;
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let port = ports.entry(key.to_string()).or_insert_with(|| Port {
            shared: Arc::new(PortShared {
                node: self.cfg.node.clone(),
                copy: self.cfg.copy,
                spec: RwLock::new(spec.clone()),
                balancers: Mutex::new(HashMap::new()),
                conns: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(0),
            }),
            listeners: HashMap::new(),
        });
        let old = std::mem::replace(
            &mut *port.shared.spec.write().unwrap_or_else(|e| e.into_inner()),
            spec.clone(),
        );
        // A different port or protocol is a different socket: every listener goes.
        if old.protocol != spec.protocol || old.port != spec.port || old.node_port != spec.node_port
        {
            for (_, l) in port.listeners.drain() {
                l.abort();
            }
        }
        let kept = spec.addresses();
        port.shared.cut(|b| !kept.contains(b));
        let mut desired: Vec<(Ingress, SocketAddrV4)> = Vec::new();
        if self.cfg.service_iface.is_some()
            && !spec.targets(Ingress::ClusterIp, &self.cfg.node).is_empty()
        {
            desired.extend(
                spec.cluster_ips
                    .iter()
                    .map(|ip| (Ingress::ClusterIp, SocketAddrV4::new(*ip, spec.port))),
            );
        }
        if let Some(np) = spec.node_port {
            if !spec.targets(Ingress::NodePort, &self.cfg.node).is_empty() {
                desired.extend(
                    self.cfg
                        .node_port_addresses
                        .iter()
                        .map(|ip| (Ingress::NodePort, SocketAddrV4::new(*ip, np))),
                );
            }
        }
        port.listeners.retain(|k, l| {
            let keep = desired.contains(k) && !l.is_finished();
            if !keep {
                l.abort();
            }
            keep
        });
        let mut first_error = None;
        for (ingress, addr) in desired {
            if port.listeners.contains_key(&(ingress, addr)) {
                continue;
            }
            let shared = port.shared.clone();
            // Several node agents on one machine serve the same cluster IPs: they share the
            // port (the kernel spreads connections between them).
            let shared_port = ingress == Ingress::ClusterIp;
            let task =
                match spec.protocol {
                    Protocol::Tcp => bind_tcp(addr, shared_port)
                        .map(|l| tokio::spawn(serve_tcp(l, ingress, shared))),
                    Protocol::Udp => bind_udp(addr, shared_port)
                        .map(|s| tokio::spawn(serve_udp(s, ingress, shared))),
                };
            match task {
                Ok(t) => {
                    tracing::debug!(service = %key, %addr, protocol = spec.protocol.as_str(), "listening");
                    port.listeners.insert((ingress, addr), t);
                }
                Err(source) => {
                    first_error.get_or_insert(ProxyError::Bind {
                        addr,
                        protocol: spec.protocol.as_str(),
                        source,
                    });
                }
            }
        }
        drop(ports);
        self.release_ips(key, &spec.cluster_ips);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops serving Service port `key`: its sockets close, its connections are cut.
    pub fn remove(&self, key: &str) {
        let port = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        drop(port);
        self.release_ips(key, &[]);
    }

    /// The keys served.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The port `key` is served as (once applied).
    pub fn spec(&self, key: &str) -> Option<Arc<ServicePort>> {
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(|p| p.shared.spec())
    }

    /// Puts `ips` on the service interface for `key`.
    fn hold_ips(&self, key: &str, ips: &[Ipv4Addr]) -> Result<(), ProxyError> {
        let Some(iface) = &self.cfg.service_iface else {
            return Ok(());
        };
        let mut held = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        for ip in ips {
            let holders = held.entry(*ip).or_default();
            if holders.is_empty() {
                crate::network::host::add_address(iface, *ip).map_err(|e| ProxyError::Iface {
                    iface: iface.clone(),
                    reason: e.to_string(),
                })?;
            }
            holders.insert(key.to_string());
        }
        Ok(())
    }

    /// Lets go of the cluster IPs `key` held that are not in `keep`; an address no port
    /// holds leaves the interface.
    fn release_ips(&self, key: &str, keep: &[Ipv4Addr]) {
        let Some(iface) = &self.cfg.service_iface else {
            return;
        };
        let mut held = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|ip, holders| {
            if !keep.contains(ip) {
                holders.remove(key);
            }
            if holders.is_empty() {
                if let Err(e) = crate::network::host::remove_address(iface, *ip) {
                    tracing::warn!(%ip, iface, error = %e, "cluster ip not removed");
                }
                return false;
            }
            true
        });
    }

    /// Stops serving everything and takes every cluster IP off the service interface (the
    /// proxy stopping).
    pub fn shutdown(&self) {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(iface) = &self.cfg.service_iface {
            for ip in crate::network::host::addresses(iface) {
                let _ = crate::network::host::remove_address(iface, ip);
            }
        }
        self.ips.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn bind_tcp(addr: SocketAddrV4, shared: bool) -> std::io::Result<TcpListener> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    if shared {
        s.set_reuseport(true)?;
    }
    s.bind(addr.into())?;
    s.listen(1024)
}

fn bind_udp(addr: SocketAddrV4, shared: bool) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if shared {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(addr),
    )?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

async fn serve_tcp(listener: TcpListener, ingress: Ingress, shared: Arc<PortShared>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(proxy_tcp(client, peer, ingress, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connects `client` to an endpoint (the next one when one refuses) and copies both ways
/// until either side closes or the endpoint goes.
async fn proxy_tcp(client: TcpStream, peer: SocketAddr, ingress: Ingress, shared: Arc<PortShared>) {
    let mut refused = Vec::new();
    let (backend, upstream) = loop {
        let Some(backend) = shared.pick(ingress, peer.ip(), &refused) else {
            // Nothing answers: a reset, not a hang.
            let _ = client.set_zero_linger();
            return;
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(s)) => break (backend, s),
            Ok(Err(e)) => tracing::debug!(%backend, error = %e, "endpoint refused"),
            Err(_) => tracing::debug!(%backend, "endpoint did not answer"),
        }
        refused.push(backend);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let task = tokio::spawn(copy::both_ways(client, upstream, shared.copy));
    shared
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, (backend, task.abort_handle()));
    // The endpoint may have gone between the pick and the registration.
    if !shared.spec().endpoints.iter().any(|e| e.addr == backend) {
        task.abort();
    }
    let _ = task.await;
    shared
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

/// A UDP client's flow: the endpoint it goes to and the socket connected to it.
struct Flow {
    backend: SocketAddrV4,
    upstream: Arc<UdpSocket>,
    replies: JoinHandle<()>,
    last: Instant,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

async fn serve_udp(socket: UdpSocket, ingress: Ingress, shared: Arc<PortShared>) {
    let socket = Arc::new(socket);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut sweep = tokio::time::interval(UDP_IDLE / 4);
    // The targets of the port as last applied, computed again only when it changes.
    let mut seen = shared.spec();
    let mut targets = seen.targets(ingress, &shared.node);
    loop {
        let (n, client) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            },
            _ = sweep.tick() => {
                flows.retain(|_, f| f.last.elapsed() < UDP_IDLE);
                continue;
            }
        };
        let spec = shared.spec();
        if !Arc::ptr_eq(&spec, &seen) {
            targets = spec.targets(ingress, &shared.node);
            seen = spec;
        }
        let stale = flows
            .get(&client)
            .is_none_or(|f| !targets.contains(&f.backend) || f.replies.is_finished());
        if stale {
            flows.remove(&client);
            let Some(backend) = shared.pick(ingress, client.ip(), &[]) else {
                continue;
            };
            match flow(backend, client, socket.clone()).await {
                Ok(f) => {
                    flows.insert(client, f);
                }
                Err(e) => {
                    tracing::debug!(%backend, error = %e, "udp flow not opened");
                    continue;
                }
            }
        }
        if let Some(f) = flows.get_mut(&client) {
            f.last = Instant::now();
            if let Err(e) = f.upstream.send(&buf[..n]).await {
                tracing::debug!(backend = %f.backend, error = %e, "udp send failed");
                flows.remove(&client);
            }
        }
    }
}

/// Opens a flow from `client` to `backend`: replies go back from the Service's socket.
async fn flow(
    backend: SocketAddrV4,
    client: SocketAddr,
    socket: Arc<UdpSocket>,
) -> std::io::Result<Flow> {
    let upstream = Arc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?);
    upstream.connect(backend).await?;
    let reader = upstream.clone();
    let replies = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        // An error (the endpoint's port unreachable) ends the flow; the client's next
        // datagram opens another.
        while let Ok(n) = reader.recv(&mut buf).await {
            if socket.send_to(&buf[..n], client).await.is_err() {
                break;
            }
        }
    });
    Ok(Flow {
        backend,
        upstream,
        replies,
        last: Instant::now(),
    })
}
