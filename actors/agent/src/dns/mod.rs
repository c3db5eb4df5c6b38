//! The cluster DNS of a node: a server on the cluster DNS address (the service range's
//! tenth address, k3s's 10.43.0.10, an address of the node's service interface), over UDP
//! and TCP, answering from the node's Service and EndpointSlice caches ([`answer`], pure)
//! and forwarding every other name to the node's own resolvers. Messages are parsed and
//! written with `hickory-proto`.
//!
//! It runs on every node rather than on the masters (or as pods, as CoreDNS does): a pod's
//! query never leaves its machine, the caches are the ones the proxy already follows, and
//! a node cut off from the masters keeps answering from what it last saw.

pub mod answer;
pub mod resolv;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use navarch_client::Cache;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use self::answer::{Answer, Objects, Qtype, Rec};

/// How long answers may be cached (short: Services change).
const TTL: u32 = 5;
/// How long an upstream resolver has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// What the DNS serves.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where it listens (port 53).
    pub address: Ipv4Addr,
    /// The interface the address is put on (the node's service interface).
    pub iface: String,
    pub domain: String,
    /// Where names outside the domain go (the node's `/etc/resolv.conf` nameservers).
    pub upstreams: Vec<SocketAddr>,
}

/// The Service and EndpointSlice caches as the answers' source.
struct Caches {
    services: Cache,
    slices: Cache,
}

impl Objects for Caches {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.services.get(Some(namespace), name)
    }
    fn slices(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.slices.list_namespace(namespace)
    }
}

/// A running cluster DNS (its sockets close and its address goes on drop).
pub struct Dns {
    cfg: DnsConfig,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("cfg", &self.cfg).finish()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = crate::network::host::remove_address(&self.cfg.iface, self.cfg.address);
    }
}

/// Why the DNS could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cluster dns address {address} on {iface}: {reason}")]
    Address {
        address: Ipv4Addr,
        iface: String,
        reason: String,
    },
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddrV4,
        #[source]
        source: std::io::Error,
    },
}

struct Server {
    cfg: DnsConfig,
    objects: Caches,
}

impl Dns {
    /// Puts the address on the interface and serves it. Must run on a tokio runtime.
    pub async fn start(cfg: DnsConfig, services: Cache, slices: Cache) -> Result<Dns, DnsError> {
        crate::network::host::add_address(&cfg.iface, cfg.address).map_err(|e| {
            DnsError::Address {
                address: cfg.address,
                iface: cfg.iface.clone(),
                reason: e.to_string(),
            }
        })?;
        let addr = SocketAddrV4::new(cfg.address, 53);
        let bind = |source| DnsError::Bind { addr, source };
        // Shared with the other nodes of this machine, which serve the same address.
        let udp = {
            use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
            let fd = socket::socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| bind(e.into()))?;
            socket::setsockopt(&fd, sockopt::ReusePort, &true).map_err(|e| bind(e.into()))?;
            socket::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &SockaddrIn::from(addr),
            )
            .map_err(|e| bind(e.into()))?;
            UdpSocket::from_std(std::net::UdpSocket::from(fd)).map_err(bind)?
        };
        let tcp = {
            let s = TcpSocket::new_v4().map_err(bind)?;
            s.set_reuseaddr(true).map_err(bind)?;
            s.set_reuseport(true).map_err(bind)?;
            s.bind(addr.into()).map_err(bind)?;
            s.listen(256).map_err(bind)?
        };
        tracing::info!(%addr, domain = %cfg.domain, upstreams = ?cfg.upstreams, "cluster dns serving");
        let server = Arc::new(Server {
            cfg: cfg.clone(),
            objects: Caches { services, slices },
        });
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), server.clone())),
            tokio::spawn(serve_tcp(tcp, server)),
        ];
        Ok(Dns { cfg, tasks })
    }
}

/// What to do with a request.
enum Reply {
    Answer(Vec<u8>),
    Forward,
    Drop,
}

impl Server {
    fn reply(&self, request: &[u8]) -> Reply {
        let Ok(req) = Message::from_vec(request) else {
            return Reply::Drop;
        };
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        let Some(q) = req.queries.first() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return encode(&resp);
        };
        resp.add_query(q.clone());
        let qtype = match q.query_type() {
            RecordType::A => Qtype::A,
            RecordType::SRV => Qtype::Srv,
            _ => Qtype::Other,
        };
        let qname = q.name().to_ascii();
        match answer::answer(&self.objects, &self.cfg.domain, &qname, qtype) {
            Answer::NotOurs => Reply::Forward,
            Answer::NxDomain => {
                resp.metadata.authoritative = true;
                resp.metadata.response_code = ResponseCode::NXDomain;
                encode(&resp)
            }
            Answer::Records(recs) => {
                resp.metadata.authoritative = true;
                for r in recs {
                    if let Some(record) = record(&r) {
                        resp.add_answer(record);
                    }
                }
                encode(&resp)
            }
        }
    }

    /// Asks the node's resolvers; `None` when none answered.
    async fn forward(&self, request: &[u8]) -> Option<Vec<u8>> {
        for upstream in &self.cfg.upstreams {
            let Ok(s) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                continue;
            };
            if s.send_to(request, upstream).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(UPSTREAM_TIMEOUT, s.recv_from(&mut buf)).await
            {
                buf.truncate(n);
                return Some(buf);
            }
        }
        None
    }

    /// The answer to `request`, forwarded when it is not ours (SERVFAIL when no
    /// upstream answers).
    async fn handle(&self, request: &[u8]) -> Option<Vec<u8>> {
        match self.reply(request) {
            Reply::Answer(bytes) => Some(bytes),
            Reply::Drop => None,
            Reply::Forward => match self.forward(request).await {
                Some(bytes) => Some(bytes),
                None => {
                    let req = Message::from_vec(request).ok()?;
                    let mut resp = Message::error_msg(
                        req.metadata.id,
                        req.metadata.op_code,
                        ResponseCode::ServFail,
                    );
                    if let Some(q) = req.queries.first() {
                        resp.add_query(q.clone());
                    }
                    resp.to_vec().ok()
                }
            },
        }
    }
}

fn encode(m: &Message) -> Reply {
    m.to_vec().map(Reply::Answer).unwrap_or(Reply::Drop)
}

fn record(r: &Rec) -> Option<Record> {
    match r {
        Rec::A { name, ip } => Some(Record::from_rdata(
            Name::from_ascii(format!("{name}.")).ok()?,
            TTL,
            RData::A(A(*ip)),
        )),
        Rec::Srv { name, port, target } => Some(Record::from_rdata(
            Name::from_ascii(format!("{name}.")).ok()?,
            TTL,
            RData::SRV(SRV::new(
                0,
                100,
                *port,
                Name::from_ascii(format!("{target}.")).ok()?,
            )),
        )),
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, server: Arc<Server>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let request = buf[..n].to_vec();
        let (socket, server) = (socket.clone(), server.clone());
        tokio::spawn(async move {
            if let Some(reply) = server.handle(&request).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(tcp_session(stream, server.clone()));
    }
}

/// Length-prefixed messages on one connection until the client closes (or idles 10 s).
async fn tcp_session(mut s: TcpStream, server: Arc<Server>) {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut request = vec![0u8; u16::from_be_bytes(len) as usize];
        if s.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(reply) = server.handle(&request).await else {
            return;
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        if s.write_all(&n.to_be_bytes()).await.is_err() || s.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The nameservers of a `resolv.conf` (port 53), for forwarding.
pub fn upstreams(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv::parse(resolv_conf)
        .nameservers
        .iter()
        .filter_map(|n| n.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
