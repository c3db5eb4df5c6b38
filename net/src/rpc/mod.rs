//! RPC over QUIC: endpoints that serve the [`Service`]s mounted on their [`Router`] and dial
//! peers, one bidirectional stream per call, server stream or duplex stream (a server
//! stream that reads the caller's input too), mutual TLS, fault injection and wire tracing.

mod join;
mod limit;
mod router;
mod server;
mod tls;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::codec::{self, DEFAULT_MAX_FRAME_BYTES};
use crate::fault::{FaultDirection, FaultInjector, Verdict};
use crate::pki::{
    ClusterCa, ExpectedPeer, Identity, PeerIdentity, PkiError, TokenStore, CLUSTER_SERVER_NAME,
};
use crate::server_token::ServerToken;
use crate::trace::{current_correlation, CorrelationId, Direction, WireEvent, WireTap};

pub use join::{
    join, join_master, join_node, JoinError, JoinRequest, JoinResponse, JoinedMaster,
    MasterJoinRequest, MasterJoinResponse, NodeCredentials, JOIN_METHOD, MASTER_JOIN_METHOD,
};
pub use limit::{JoinLimits, Rate};
pub use router::{MountError, Router, RESERVED_PREFIX};
pub use tls::{crypto_provider, install_default_crypto_provider, rustls_server_config, ALPN};

/// Default timeout of a unary call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// At most one WARN line per this interval for failed handshakes, and for calls without a
/// certificate.
const UNAUTHENTICATED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Transport and authorization errors of a call. Application errors travel inside `Ok` bodies.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcError {
    /// The peer could not be reached (or the link is cut).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// No answer within the call timeout.
    #[error("call timed out")]
    Timeout,
    /// The peer refused the call (authorization, bad token, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// A frame is over the size cap.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Frame size in bytes.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A frame or body could not be decoded.
    #[error("decode error: {0}")]
    Decode(String),
    /// The method is unknown or does not support this kind of call.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The connection or stream closed before an answer.
    #[error("connection closed")]
    Closed,
    /// The handler failed; carries its error text.
    #[error("remote error: {0}")]
    Remote(String),
    /// Nothing serves the method's prefix on the peer (yet): it may still be starting.
    /// Retrying can help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server's certificate is valid but not the peer's the client expected (another
    /// member, a node, an admin): nothing was sent to it.
    #[error("wrong peer: {0}")]
    WrongPeer(String),
    /// Too many attempts (joins) from this source or overall: nothing was done. Retry after
    /// the delay.
    #[error("rate limited: retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait before the next attempt can be admitted.
        retry_after_ms: u64,
    },
}

impl RpcError {
    /// Whether the same call may succeed if retried later: the peer was unreachable, the link
    /// closed, or the service was not mounted yet. Nothing was done by the peer in these
    /// cases, except that a `Closed` call may have run without its answer arriving.
    /// A `Timeout` is not retryable blindly: the call may have taken effect.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RpcError::Unreachable(_)
                | RpcError::Closed
                | RpcError::Unavailable(_)
                | RpcError::RateLimited { .. }
        )
    }
}

/// Errors setting up an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration could not be built.
    #[error("tls configuration of {name}: {reason}")]
    Tls {
        /// Endpoint name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An anonymous identity (no certificate) cannot serve.
    #[error("endpoint {0} has no certificate and cannot serve")]
    NoCertificate(String),
    /// A PKI error.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What an endpoint needs to accept node joins.
#[derive(Clone)]
pub struct JoinAuthority {
    /// The CA that signs node certificates.
    pub ca: Arc<ClusterCa>,
    /// Accepted bootstrap tokens.
    pub tokens: Arc<TokenStore>,
    /// Maximum validity of a node certificate (and of a joining master's member certificate).
    pub node_cert_validity: Duration,
    /// Rate limits of join attempts and of their refusal log lines.
    pub limits: JoinLimits,
    /// The server token masters join with (`net.join_master`); `None`: no master joins.
    pub server_token: Option<ServerToken>,
}

impl JoinAuthority {
    /// An authority with the default [`JoinLimits`].
    pub fn new(
        ca: Arc<ClusterCa>,
        tokens: Arc<TokenStore>,
        node_cert_validity: Duration,
    ) -> JoinAuthority {
        JoinAuthority {
            ca,
            tokens,
            node_cert_validity,
            limits: JoinLimits::default(),
            server_token: None,
        }
    }
}

impl fmt::Debug for JoinAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinAuthority")
            .field("ca", &self.ca)
            .field("node_cert_validity", &self.node_cert_validity)
            .field("limits", &self.limits)
            .field("server_token", &self.server_token)
            .finish_non_exhaustive()
    }
}

/// Random 8-byte connection ids that a restarted endpoint answers with a stateless reset
/// (quinn's default keyed generator makes the new process ignore the old one's ids).
struct RandomCids;

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let bytes: [u8; 8] = rand::random();
        quinn::ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// Configuration of an [`Endpoint`].
#[derive(Clone)]
pub struct NetConfig {
    /// This endpoint's name (in logs and wire events).
    pub name: String,
    /// Our certificate and key (or [`Identity::anonymous`] for a dial-only joiner).
    pub identity: Identity,
    /// Cap on one frame, both ways (default 16 MiB).
    pub max_frame_bytes: usize,
    /// Timeout of unary calls (default 5 s).
    pub call_timeout: Duration,
    /// Fault rules applied to this endpoint's traffic.
    pub faults: FaultInjector,
    /// Observer of every call.
    pub tap: Option<Arc<dyn WireTap>>,
    /// Set on an endpoint that accepts `net.join`.
    pub join: Option<JoinAuthority>,
    /// A secret kept across restarts (at least 32 bytes) from which a bound endpoint derives
    /// its QUIC stateless-reset tokens. With it, a process restarted on the same address
    /// resets its peers' connections to the process before it at their next packet, instead
    /// of leaving them to the idle timeout; without it, quinn picks a new key every start.
    pub reset_key: Option<Vec<u8>>,
}

impl fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetConfig")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("call_timeout", &self.call_timeout)
            .field("faults", &self.faults)
            .field("tap", &self.tap.is_some())
            .field("join", &self.join)
            .field("reset_key", &self.reset_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl NetConfig {
    /// A configuration with defaults: 16 MiB frames, 5 s calls, no faults, no tap, no join.
    pub fn new(name: impl Into<String>, identity: Identity) -> NetConfig {
        NetConfig {
            name: name.into(),
            identity,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            faults: FaultInjector::default(),
            tap: None,
            join: None,
            reset_key: None,
        }
    }
}

/// What a handler knows about the call it serves.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The caller's certificate identity; `None` for an anonymous (joining) caller.
    pub peer: Option<PeerIdentity>,
    /// The caller's address.
    pub remote: SocketAddr,
    /// The correlation id the caller sent.
    pub correlation: Option<CorrelationId>,
}

/// Serves inbound calls, mounted on a [`Router`] prefix: it gets every method
/// `<prefix>.<name>` under its prefix, whole. Bodies are opaque bytes (usually
/// [`codec::encode`]d values).
pub trait Service: Send + Sync + 'static {
    /// Answers one unary call.
    fn call(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>>;

    /// Opens a server stream; the default refuses with `Unsupported`.
    fn stream(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        let _ = (ctx, body);
        Box::pin(async move {
            Err(RpcError::Unsupported(format!(
                "method {method} does not stream"
            )))
        })
    }

    /// Opens a duplex stream: a server stream that also reads the caller's `input`, which
    /// ends when the caller finishes its side. The default refuses with `Unsupported`.
    fn duplex(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
        input: BoxStream<'static, Result<Bytes, RpcError>>,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        let _ = (ctx, body, input);
        Box::pin(async move {
            Err(RpcError::Unsupported(format!(
                "method {method} takes no input stream"
            )))
        })
    }
}

pub(crate) struct EpInner {
    name: String,
    quinn: quinn::Endpoint,
    /// Extra dial-only endpoints for addresses the main socket cannot reach, keyed by
    /// (ipv6, loopback).
    dialers: Mutex<HashMap<(bool, bool), quinn::Endpoint>>,
    client_cfg: quinn::ClientConfig,
    max_frame: usize,
    call_timeout: Duration,
    faults: FaultInjector,
    tap: Option<Arc<dyn WireTap>>,
    join: Option<JoinAuthority>,
    /// The services of a bound endpoint; `None` on a dial-only one.
    router: Option<Router>,
    /// Join attempts admitted (per source and overall), and their refusals' log lines.
    join_limiter: limit::JoinLimiter,
    join_log: limit::LogThrottle,
    /// Log lines of failed handshakes and of calls without a certificate: peers that are not
    /// authenticated cannot write one line each.
    handshake_log: limit::LogThrottle,
    anonymous_log: limit::LogThrottle,
    peers: Mutex<HashMap<(String, SocketAddr, ExpectedPeer), Arc<PeerShared>>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    /// False for a [`Endpoint::sibling`]: the socket (and closing it) belongs to another
    /// endpoint; closing this one closes only its own connections.
    owns_socket: bool,
}

/// The identity in the peer's leaf certificate; `None` for a peer without one.
pub(crate) fn peer_identity(conn: &quinn::Connection) -> Result<Option<PeerIdentity>, String> {
    let Some(any) = conn.peer_identity() else {
        return Ok(None);
    };
    let Ok(certs) = any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>() else {
        return Err("peer identity is not a certificate chain".to_string());
    };
    let Some(leaf) = certs.first() else {
        return Ok(None);
    };
    PeerIdentity::from_der(leaf.as_ref())
        .map(Some)
        .map_err(|e| e.to_string())
}

pub(crate) struct Timing {
    at: SystemTime,
    start: Instant,
}

impl Timing {
    pub(crate) fn start() -> Timing {
        Timing {
            at: SystemTime::now(),
            start: Instant::now(),
        }
    }
}

impl EpInner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record<T>(
        &self,
        direction: Direction,
        peer: &str,
        method: &str,
        size: usize,
        timing: &Timing,
        outcome: &Result<T, RpcError>,
        correlation: Option<CorrelationId>,
    ) {
        let Some(tap) = &self.tap else { return };
        tap.record(WireEvent {
            at: timing.at,
            direction,
            local: self.name.clone(),
            peer: peer.to_string(),
            method: method.to_string(),
            size,
            elapsed: timing.start.elapsed(),
            outcome: match outcome {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            },
            correlation,
        });
    }

    fn dialer(&self, target: SocketAddr) -> Result<quinn::Endpoint, RpcError> {
        let local = self.quinn.local_addr().map_err(|e| {
            RpcError::Unreachable(format!("endpoint {} has no socket: {e}", self.name))
        })?;
        let same_family = local.is_ipv6() == target.is_ipv6();
        let reachable =
            local.ip().is_unspecified() || local.ip().is_loopback() == target.ip().is_loopback();
        if same_family && reachable {
            return Ok(self.quinn.clone());
        }
        let key = (target.is_ipv6(), target.ip().is_loopback());
        let mut dialers = self.dialers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ep) = dialers.get(&key) {
            return Ok(ep.clone());
        }
        let bind: SocketAddr = match key {
            (false, true) => (Ipv4Addr::LOCALHOST, 0).into(),
            (false, false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            (true, true) => (Ipv6Addr::LOCALHOST, 0).into(),
            (true, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let ep = quinn::Endpoint::client(bind).map_err(|e| {
            RpcError::Unreachable(format!("cannot bind {bind} to dial {target}: {e}"))
        })?;
        dialers.insert(key, ep.clone());
        Ok(ep)
    }
}

/// A QUIC endpoint: serves the services mounted on its [`Router`] (when bound) and dials peers.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<EpInner>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.inner.name)
            .field("local_addr", &self.inner.quinn.local_addr().ok())
            .finish()
    }
}

impl Endpoint {
    /// Binds `listen` and serves the services mounted on `router` (now or later: a call to a
    /// prefix nothing is mounted on fails with [`RpcError::Unavailable`]); the endpoint can
    /// also dial out. Must be called inside a tokio runtime.
    pub fn bind(listen: SocketAddr, cfg: NetConfig, router: Router) -> Result<Endpoint, NetError> {
        if cfg.identity.is_anonymous() {
            return Err(NetError::NoCertificate(cfg.name));
        }
        let server_cfg = tls::server_config(&cfg.identity, &cfg.name)?;
        let bind_err = |source| NetError::Bind {
            addr: listen,
            source,
        };
        let quinn = match &cfg.reset_key {
            None => quinn::Endpoint::server(server_cfg, listen).map_err(bind_err)?,
            Some(secret) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(key));
                // quinn's default generator drops a connection id it did not make itself
                // (keyed per process) without a reset; ours lets the reset go out.
                endpoint_cfg.cid_generator(|| Box::new(RandomCids));
                let socket = std::net::UdpSocket::bind(listen).map_err(bind_err)?;
                quinn::Endpoint::new(
                    endpoint_cfg,
                    Some(server_cfg),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(bind_err)?
            }
        };
        let ep = Self::build(cfg, quinn, Some(router))?;
        let task = tokio::spawn(server::accept_loop(ep.inner.clone()));
        *ep.inner
            .accept_task
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(task);
        tracing::info!(name = %ep.inner.name, addr = ?ep.local_addr().ok(), "endpoint listening");
        Ok(ep)
    }

    /// A dial-only endpoint on `0.0.0.0:0` (IPv6 targets get their own socket lazily).
    /// Must be called inside a tokio runtime.
    pub fn client(cfg: NetConfig) -> Result<Endpoint, NetError> {
        let bind: SocketAddr = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).into();
        let quinn = quinn::Endpoint::client(bind)
            .map_err(|source| NetError::Bind { addr: bind, source })?;
        Self::build(cfg, quinn, None)
    }

    /// A dial-only endpoint that shares this endpoint's UDP socket and its I/O driver but
    /// presents `cfg`'s identity, with its own connections, timeouts, faults and tap: many
    /// identities in one process (hollow nodes) cost one socket. Closing the sibling closes
    /// only its own connections; closing this endpoint ends the sibling's too.
    pub fn sibling(&self, cfg: NetConfig) -> Result<Endpoint, NetError> {
        let mut ep = Self::build(cfg, self.inner.quinn.clone(), None)?;
        Arc::get_mut(&mut ep.inner)
            .expect("a new endpoint has one handle")
            .owns_socket = false;
        Ok(ep)
    }

    fn build(
        cfg: NetConfig,
        quinn: quinn::Endpoint,
        router: Option<Router>,
    ) -> Result<Endpoint, NetError> {
        let client_cfg = tls::client_config(&cfg.identity, &cfg.name)?;
        let limits = cfg.join.as_ref().map(|j| j.limits).unwrap_or_default();
        Ok(Endpoint {
            inner: Arc::new(EpInner {
                name: cfg.name,
                quinn,
                dialers: Mutex::new(HashMap::new()),
                client_cfg,
                max_frame: cfg.max_frame_bytes,
                call_timeout: cfg.call_timeout,
                faults: cfg.faults,
                tap: cfg.tap,
                join: cfg.join,
                router,
                join_limiter: limit::JoinLimiter::new(limits),
                join_log: limit::LogThrottle::new(limits.log_interval),
                handshake_log: limit::LogThrottle::new(UNAUTHENTICATED_LOG_INTERVAL),
                anonymous_log: limit::LogThrottle::new(UNAUTHENTICATED_LOG_INTERVAL),
                peers: Mutex::new(HashMap::new()),
                accept_task: Mutex::new(None),
                closed: AtomicBool::new(false),
                owns_socket: true,
            }),
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.quinn.local_addr()
    }

    /// This endpoint's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The fault rules applied by this endpoint.
    pub fn faults(&self) -> &FaultInjector {
        &self.inner.faults
    }

    /// A client for the peer called `name` (in logs, taps and fault rules) at `addr`, whose
    /// server certificate must be `expected`'s: a connection to anyone else is closed before a
    /// request is sent, and the call fails with [`RpcError::WrongPeer`]. Clients for the same
    /// name, address and expectation share one lazily opened connection.
    pub fn peer(&self, name: &str, addr: SocketAddr, expected: ExpectedPeer) -> PeerClient {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        let shared = peers
            .entry((name.to_string(), addr, expected.clone()))
            .or_insert_with(|| {
                Arc::new(PeerShared {
                    name: name.to_string(),
                    addr,
                    expected,
                    state: tokio::sync::Mutex::new(ConnState {
                        conn: None,
                        retry_at: None,
                        backoff: BACKOFF_INITIAL,
                    }),
                })
            })
            .clone();
        PeerClient {
            ep: self.inner.clone(),
            shared,
        }
    }

    /// Stops accepting, closes every connection and fails later calls with `Closed`.
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if !self.inner.owns_socket {
            tracing::debug!(name = %self.inner.name, "sibling endpoint closing");
            let peers: Vec<_> = self
                .inner
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            for p in peers {
                // A connection being dialed now is closed by `connection` once it sees the
                // endpoint closed.
                if let Ok(st) = p.state.try_lock() {
                    if let Some(c) = &st.conn {
                        c.close(wire::CODE_DONE, b"endpoint closed");
                    }
                }
            }
            return;
        }
        tracing::info!(name = %self.inner.name, "endpoint closing");
        if let Some(task) = self
            .inner
            .accept_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
        self.inner.quinn.close(wire::CODE_DONE, b"endpoint closed");
        for ep in self
            .inner
            .dialers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            ep.close(wire::CODE_DONE, b"endpoint closed");
        }
    }

    /// Waits until every connection of a closed endpoint is drained (its socket is released
    /// once the last `Endpoint` handle is dropped as well).
    pub async fn wait_idle(&self) {
        if !self.inner.owns_socket {
            return;
        }
        self.inner.quinn.wait_idle().await;
        let dialers: Vec<_> = self
            .inner
            .dialers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for ep in dialers {
            ep.wait_idle().await;
        }
    }
}

struct ConnState {
    conn: Option<quinn::Connection>,
    retry_at: Option<tokio::time::Instant>,
    backoff: Duration,
}

struct PeerShared {
    name: String,
    addr: SocketAddr,
    expected: ExpectedPeer,
    state: tokio::sync::Mutex<ConnState>,
}

/// Calls one peer. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct PeerClient {
    ep: Arc<EpInner>,
    shared: Arc<PeerShared>,
}

impl fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerClient")
            .field("local", &self.ep.name)
            .field("peer", &self.shared.name)
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl PeerClient {
    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The shared connection, (re)connecting if needed, with backoff after failed attempts.
    /// Makes sure a connection to the peer is up (dialing it if needed), within the call
    /// timeout. A caller that must know whether a request was sent connects first: a later
    /// call failure then happened with the request possibly on its way.
    pub async fn connect(&self) -> Result<(), RpcError> {
        match tokio::time::timeout(self.ep.call_timeout, self.connection()).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(RpcError::Timeout),
        }
    }

    /// Closes the connection to the peer, if one is open: calls and streams on it fail with
    /// `Closed`, and the next call dials again. A client that moves to another peer closes
    /// the old connection so that it holds one at a time.
    pub async fn disconnect(&self) {
        let mut st = self.shared.state.lock().await;
        if let Some(c) = st.conn.take() {
            tracing::debug!(local = %self.ep.name, peer = %self.shared.name, "disconnecting");
            c.close(wire::CODE_DONE, b"disconnected");
        }
    }

    async fn connection(&self) -> Result<quinn::Connection, RpcError> {
        let mut st = self.shared.state.lock().await;
        if let Some(c) = &st.conn {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
            tracing::debug!(local = %self.ep.name, peer = %self.shared.name, reason = ?c.close_reason(), "connection lost; reconnecting");
            st.conn = None;
        }
        if self.ep.closed.load(Ordering::SeqCst) {
            return Err(RpcError::Closed);
        }
        if let Some(at) = st.retry_at {
            tokio::time::sleep_until(at).await;
        }
        let addr = self.shared.addr;
        let dialer = self.ep.dialer(addr)?;
        let attempt =
            match dialer.connect_with(self.ep.client_cfg.clone(), addr, CLUSTER_SERVER_NAME) {
                Ok(connecting) => match connecting.await.map_err(wire::map_conn_err) {
                    Ok(c) => self.check_server(c),
                    Err(e) => Err(e),
                },
                Err(e) => Err(RpcError::Unreachable(format!(
                    "cannot dial {} at {addr}: {e}",
                    self.shared.name
                ))),
            };
        match attempt {
            Ok(c) if self.ep.closed.load(Ordering::SeqCst) => {
                c.close(wire::CODE_DONE, b"endpoint closed");
                Err(RpcError::Closed)
            }
            Ok(c) => {
                tracing::debug!(local = %self.ep.name, peer = %self.shared.name, %addr, "connected");
                st.conn = Some(c.clone());
                st.retry_at = None;
                st.backoff = BACKOFF_INITIAL;
                Ok(c)
            }
            Err(e) => {
                tracing::debug!(local = %self.ep.name, peer = %self.shared.name, %addr, error = %e, backoff_ms = st.backoff.as_millis() as u64, "connect failed");
                st.retry_at = Some(tokio::time::Instant::now() + st.backoff);
                st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                Err(e)
            }
        }
    }

    /// Keeps `conn` only if the server's certificate is the expected peer's.
    fn check_server(&self, conn: quinn::Connection) -> Result<quinn::Connection, RpcError> {
        let verdict = match peer_identity(&conn) {
            Ok(Some(who)) => self.shared.expected.check(&who),
            Ok(None) => Err("the server presented no certificate".to_string()),
            Err(e) => Err(e),
        };
        match verdict {
            Ok(()) => Ok(conn),
            Err(reason) => {
                conn.close(wire::CODE_WRONG_PEER, b"unexpected server certificate");
                tracing::warn!(local = %self.ep.name, peer = %self.shared.name, addr = %self.shared.addr, %reason, "dialed server is not the expected peer; closing");
                Err(RpcError::WrongPeer(format!(
                    "dialed {} at {}: {reason}",
                    self.shared.name, self.shared.addr
                )))
            }
        }
    }

    /// Calls `method` with a bincode-encoded request and decodes the response.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, RpcError> {
        self.call_with_timeout(method, req, self.ep.call_timeout)
            .await
    }

    /// [`PeerClient::call`] with an explicit timeout.
    pub async fn call_with_timeout<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        let body = codec::encode(req).map_err(|e| RpcError::Decode(format!("request: {e}")))?;
        let resp = self
            .call_raw_with_timeout(method, Bytes::from(body), timeout)
            .await?;
        codec::decode(&resp).map_err(|e| RpcError::Decode(format!("response to {method}: {e}")))
    }

    /// Calls `method` with raw body bytes.
    pub async fn call_raw(&self, method: &str, body: Bytes) -> Result<Bytes, RpcError> {
        self.call_raw_with_timeout(method, body, self.ep.call_timeout)
            .await
    }

    /// [`PeerClient::call_raw`] with an explicit timeout.
    pub async fn call_raw_with_timeout(
        &self,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        let timing = Timing::start();
        let correlation = current_correlation();
        let header = wire::RequestHeader {
            kind: wire::RequestKind::Call,
            method: method.to_string(),
            correlation,
        };
        let frame = wire::encode_request(&header, &body);
        let size = frame.as_ref().map(|f| f.len()).unwrap_or(0);
        let result = match frame {
            Err(e) => Err(e),
            Ok(frame) => self.do_call(frame, timeout).await,
        };
        if let Err(e) = &result {
            tracing::debug!(local = %self.ep.name, peer = %self.shared.name, method, error = %e, "call failed");
        }
        self.ep.record(
            Direction::Outbound,
            &self.shared.name,
            method,
            size,
            &timing,
            &result,
            correlation,
        );
        result
    }

    /// Applies outbound faults and the size cap common to calls and stream opens; returns
    /// the delay to apply, or the error to return at once.
    async fn preflight(&self, frame: &Bytes, timeout: Duration) -> Result<Duration, RpcError> {
        let max = self.ep.max_frame;
        if frame.len() > max {
            return Err(RpcError::FrameTooLarge {
                size: frame.len(),
                max,
            });
        }
        if self.ep.closed.load(Ordering::SeqCst) {
            return Err(RpcError::Closed);
        }
        match self
            .ep
            .faults
            .verdict(&self.shared.name, FaultDirection::Outbound)
        {
            Verdict::Pass => Ok(Duration::ZERO),
            Verdict::Delay(d) => Ok(d),
            Verdict::Cut => Err(RpcError::Unreachable(format!(
                "link to {} cut by fault injection",
                self.shared.name
            ))),
            Verdict::Drop => {
                tokio::time::sleep(timeout).await;
                Err(RpcError::Timeout)
            }
        }
    }

    async fn do_call(&self, frame: Bytes, timeout: Duration) -> Result<Bytes, RpcError> {
        let delay = self.preflight(&frame, timeout).await?;
        let max = self.ep.max_frame;
        let exchange = async {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let conn = self.connection().await?;
            wire::exchange_call(&conn, frame, max).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::Timeout),
        }
    }

    /// Opens a server stream of bincode-encoded items. Only the open is bounded by the call
    /// timeout; the stream ends with an error if the connection dies or the link is cut.
    pub async fn stream<Req: Serialize, Item: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<BoxStream<'static, Result<Item, RpcError>>, RpcError> {
        let body = codec::encode(req).map_err(|e| RpcError::Decode(format!("request: {e}")))?;
        let raw = self.stream_raw(method, Bytes::from(body)).await?;
        Ok(decode_items(raw, method))
    }

    /// Opens a server stream of raw items.
    pub async fn stream_raw(
        &self,
        method: &str,
        body: Bytes,
    ) -> Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> {
        self.open_raw(wire::RequestKind::Stream, method, body, None)
            .await
    }

    /// Opens a duplex stream: `input`'s items go to the handler as they come (and its end
    /// ends the handler's input), while its items come back as a server stream's do. Only
    /// the open is bounded by the call timeout; dropping the returned stream stops both.
    pub async fn duplex<Req, In, Item>(
        &self,
        method: &str,
        req: &Req,
        input: BoxStream<'static, In>,
    ) -> Result<BoxStream<'static, Result<Item, RpcError>>, RpcError>
    where
        Req: Serialize,
        In: Serialize + Send + 'static,
        Item: DeserializeOwned + Send + 'static,
    {
        let body = codec::encode(req).map_err(|e| RpcError::Decode(format!("request: {e}")))?;
        let input = input
            .filter_map(|i| async move {
                match codec::encode(&i) {
                    Ok(b) => Some(Bytes::from(b)),
                    Err(e) => {
                        tracing::warn!(error = %e, "duplex input not encodable; dropped");
                        None
                    }
                }
            })
            .boxed();
        let raw = self.duplex_raw(method, Bytes::from(body), input).await?;
        Ok(decode_items(raw, method))
    }

    /// [`PeerClient::duplex`] with raw input and items.
    pub async fn duplex_raw(
        &self,
        method: &str,
        body: Bytes,
        input: BoxStream<'static, Bytes>,
    ) -> Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> {
        self.open_raw(wire::RequestKind::Duplex, method, body, Some(input))
            .await
    }

    async fn open_raw(
        &self,
        kind: wire::RequestKind,
        method: &str,
        body: Bytes,
        input: Option<BoxStream<'static, Bytes>>,
    ) -> Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> {
        let timing = Timing::start();
        let correlation = current_correlation();
        let header = wire::RequestHeader {
            kind,
            method: method.to_string(),
            correlation,
        };
        let frame = wire::encode_request(&header, &body);
        let size = frame.as_ref().map(|f| f.len()).unwrap_or(0);
        let result = match frame {
            Err(e) => Err(e),
            Ok(frame) => self.do_open_stream(frame, input).await,
        };
        if let Err(e) = &result {
            tracing::debug!(local = %self.ep.name, peer = %self.shared.name, method, error = %e, "stream open failed");
        }
        self.ep.record(
            Direction::Outbound,
            &self.shared.name,
            method,
            size,
            &timing,
            &result,
            correlation,
        );
        result
    }

    async fn do_open_stream(
        &self,
        frame: Bytes,
        input: Option<BoxStream<'static, Bytes>>,
    ) -> Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> {
        let timeout = self.ep.call_timeout;
        let delay = self.preflight(&frame, timeout).await?;
        let max = self.ep.max_frame;
        let duplex = input.is_some();
        let open = async {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let conn = self.connection().await?;
            let (writer, mut reader, write_err) = if duplex {
                let (w, r) = wire::open_and_keep(&conn, frame, max).await?;
                (Some(w), r, None)
            } else {
                let (r, e) = wire::open_and_send(&conn, frame, max).await?;
                (None, r, e)
            };
            match wire::read_response(&mut reader).await {
                Ok(wire::Response::Ok(_)) => Ok((writer, reader)),
                Ok(wire::Response::Err(e)) => Err(e),
                Ok(other) => Err(RpcError::Decode(format!(
                    "unexpected {} frame opening a stream",
                    wire::response_name(&other)
                ))),
                Err(e) => Err(write_err.map(wire::map_io).unwrap_or(e)),
            }
        };
        let (writer, reader) = match tokio::time::timeout(timeout, open).await {
            Ok(r) => r?,
            Err(_) => return Err(RpcError::Timeout),
        };
        let forward = match (writer, input) {
            (Some(w), Some(input)) => Some(AbortOnDrop(tokio::spawn(forward_input(
                w,
                input,
                max,
                self.shared.name.clone(),
            )))),
            _ => None,
        };
        let state = ClientStream {
            reader,
            fault_rx: self.ep.faults.subscribe(),
            faults: self.ep.faults.clone(),
            peer: self.shared.name.clone(),
            done: false,
            _forward: forward,
        };
        Ok(futures::stream::unfold(state, |mut st| async move {
            st.next_item().await.map(|item| (item, st))
        })
        .boxed())
    }
}

/// A raw stream's items decoded (an undecodable one an error naming `method`).
fn decode_items<Item: DeserializeOwned + Send + 'static>(
    raw: BoxStream<'static, Result<Bytes, RpcError>>,
    method: &str,
) -> BoxStream<'static, Result<Item, RpcError>> {
    let method = method.to_string();
    raw.map(move |item| {
        item.and_then(|b| {
            codec::decode::<Item>(&b)
                .map_err(|e| RpcError::Decode(format!("item of {method}: {e}")))
        })
    })
    .boxed()
}

/// Sends a duplex call's input as it comes, then finishes the caller's side. An input item
/// over the frame cap ends the input (the handler sees its end).
async fn forward_input(
    mut w: wire::Writer,
    mut input: BoxStream<'static, Bytes>,
    max: usize,
    peer: String,
) {
    use futures::SinkExt;
    while let Some(item) = input.next().await {
        let frame = wire::encode_input(&item);
        if frame.len() > max {
            tracing::warn!(%peer, size = frame.len(), max, "duplex input over the frame cap; ending the input");
            break;
        }
        if let Err(e) = w.send(frame).await {
            tracing::debug!(%peer, error = %e, "duplex input not delivered");
            return;
        }
    }
    let _ = w.get_mut().finish();
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ClientStream {
    reader: wire::Reader,
    fault_rx: tokio::sync::watch::Receiver<u64>,
    faults: FaultInjector,
    peer: String,
    done: bool,
    /// A duplex call's input forwarder, stopped with the stream.
    _forward: Option<AbortOnDrop>,
}

impl ClientStream {
    async fn next_item(&mut self) -> Option<Result<Bytes, RpcError>> {
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                frame = wire::read_response(&mut self.reader) => {
                    return match frame {
                        Ok(wire::Response::Item(b)) => Some(Ok(b)),
                        Ok(wire::Response::Err(e)) => Some(Err(e)),
                        Ok(wire::Response::End) => {
                            self.done = true;
                            None
                        }
                        Ok(wire::Response::Ok(_)) => {
                            self.done = true;
                            Some(Err(RpcError::Decode("unexpected ok frame inside a stream".to_string())))
                        }
                        Err(e) => {
                            self.done = true;
                            Some(Err(e))
                        }
                    };
                }
                changed = self.fault_rx.changed() => {
                    if changed.is_err() || self.faults.is_cut(&self.peer, FaultDirection::Outbound) {
                        self.done = true;
                        let _ = self.reader.get_mut().stop(wire::CODE_CUT);
                        return Some(Err(RpcError::Unreachable(format!(
                            "stream from {} cut by fault injection",
                            self.peer
                        ))));
                    }
                }
            }
        }
    }
}
