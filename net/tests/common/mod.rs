//! Shared fixtures for the QUIC integration tests: a CA, identities, a test service and a
//! recording wire tap.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use navarch_net::codec;
use navarch_net::pki::{CertProfile, ORG_NODES};
use navarch_net::trace::current_correlation;
use navarch_net::{
    CallContext, ClusterCa, CorrelationId, Endpoint, Identity, NetConfig, PeerIdentity, Router,
    RpcError, Service, WireEvent, WireTap,
};
use serde::{Deserialize, Serialize};

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Arc<ClusterCa>,
}

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca, created) = ClusterCa::load_or_create(dir.path()).unwrap();
    assert!(created);
    Pki {
        dir,
        ca: Arc::new(ca),
    }
}

impl Pki {
    /// A certificate that serves and authenticates (the member profile), CN `cn`, O
    /// `system:nodes`: the generic test peer.
    pub fn identity(&self, cn: &str) -> Identity {
        self.ca
            .issue(
                cn,
                &["system:nodes"],
                Duration::from_secs(3600),
                &CertProfile::member(),
            )
            .unwrap()
    }

    /// A master's store member certificate: CN `name`, O `navarch:members`.
    pub fn member(&self, name: &str) -> Identity {
        self.ca
            .issue_member(name, Duration::from_secs(3600))
            .unwrap()
    }

    /// A node's certificate (the node profile: authenticates only).
    pub fn node(&self, name: &str) -> Identity {
        self.ca
            .issue_client(
                &format!("system:node:{name}"),
                &[ORG_NODES],
                Duration::from_secs(3600),
            )
            .unwrap()
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What `whoami` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub peer: Option<PeerIdentity>,
    pub ctx_correlation: Option<CorrelationId>,
    pub task_correlation: Option<CorrelationId>,
}

/// Mounted on `test.*`. Methods: `test.echo` (body back), `test.double`, `test.whoami`,
/// `test.sleep` (u64 millis), `test.fail` (Remote error); streams: `test.ticks` (u64 counter
/// every 10 ms, forever), `test.count` (u64 0..n); duplex: `test.upper` (each input item
/// upper-cased back as it comes, then `end of input` once the input ends; its stream drops
/// set [`UPPER_DROPPED`]).
pub struct TestService;

/// How many `test.upper` streams were dropped (their caller gone, or their input ended).
pub static UPPER_DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        UPPER_DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Service for TestService {
    fn call(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let task_correlation = current_correlation();
        Box::pin(async move {
            match method.as_str() {
                "test.echo" => Ok(body),
                // Answers twice the request's size: a response that can outgrow the frame cap.
                "test.double" => Ok(bytes::Bytes::from([&body[..], &body[..]].concat())),
                "test.whoami" => {
                    // Read the task-local again after an await point.
                    tokio::task::yield_now().await;
                    assert_eq!(current_correlation(), task_correlation);
                    let w = WhoAmI {
                        peer: ctx.peer,
                        ctx_correlation: ctx.correlation,
                        task_correlation,
                    };
                    Ok(Bytes::from(codec::encode(&w).unwrap()))
                }
                "test.sleep" => {
                    let ms: u64 =
                        codec::decode(&body).map_err(|e| RpcError::Decode(e.to_string()))?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Bytes::from(codec::encode(&ms).unwrap()))
                }
                "test.fail" => Err(RpcError::Remote("asked to fail".to_string())),
                other => Err(RpcError::Unsupported(format!("no method {other}"))),
            }
        })
    }

    fn stream(
        &self,
        _ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        Box::pin(async move {
            match method.as_str() {
                "test.ticks" => {
                    let s = futures::stream::unfold(0u64, |i| async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Some((Ok(Bytes::from(codec::encode(&i).unwrap())), i + 1))
                    });
                    Ok(s.boxed())
                }
                "test.count" => {
                    let n: u64 =
                        codec::decode(&body).map_err(|e| RpcError::Decode(e.to_string()))?;
                    Ok(futures::stream::iter(
                        (0..n).map(|i| Ok(Bytes::from(codec::encode(&i).unwrap()))),
                    )
                    .boxed())
                }
                other => Err(RpcError::Unsupported(format!("no stream {other}"))),
            }
        })
    }

    fn duplex(
        &self,
        _ctx: CallContext,
        method: String,
        _body: Bytes,
        input: BoxStream<'static, Result<Bytes, RpcError>>,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        Box::pin(async move {
            if method != "test.upper" {
                return Err(RpcError::Unsupported(format!("no duplex {method}")));
            }
            let guard = CountDrop;
            let upper = input.map(|item| item.map(|b| Bytes::from(b.to_ascii_uppercase())));
            let end = futures::stream::once(async move {
                let _guard = guard;
                Ok(Bytes::from_static(b"end of input"))
            });
            Ok(upper.chain(end).boxed())
        })
    }
}

#[derive(Default)]
pub struct RecordingTap {
    pub events: Mutex<Vec<WireEvent>>,
}

impl WireTap for RecordingTap {
    fn record(&self, event: WireEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl RecordingTap {
    pub fn snapshot(&self) -> Vec<WireEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// A router with [`TestService`] mounted on `test.*`.
pub fn test_router() -> Router {
    let router = Router::new();
    router.mount("test", Arc::new(TestService)).unwrap();
    router
}

pub fn server(cfg: NetConfig) -> Endpoint {
    Endpoint::bind(loopback(), cfg, test_router()).unwrap()
}

/// Logs to the test output, filtered by RUST_LOG (default: warnings).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
