//! Several services on one endpoint, mounted by method prefix before or after the endpoint is
//! bound; calls to a prefix not mounted yet fail with a retryable error.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures::future::BoxFuture;
use futures::StreamExt;
use navarch_net::{CallContext, Endpoint, ExpectedPeer, NetConfig, Router, RpcError, Service};

/// Answers every call with its name and the method it got.
struct Tagged(&'static str);

impl Service for Tagged {
    fn call(
        &self,
        _ctx: CallContext,
        method: String,
        _body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let tag = self.0;
        Box::pin(async move { Ok(Bytes::from(format!("{tag}:{method}"))) })
    }
}

#[tokio::test]
async fn services_mount_on_a_bound_endpoint_by_prefix() {
    init_tracing();
    let pki = pki();
    let router = Router::new();
    let srv = Endpoint::bind(
        loopback(),
        NetConfig::new("server", pki.identity("server")),
        router.clone(),
    )
    .unwrap();
    let cli = Endpoint::client(NetConfig::new("client", pki.identity("client"))).unwrap();
    let peer = cli.peer("server", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);

    // Nothing mounted yet: a clear, retryable error naming the prefix.
    let err = peer
        .call_raw("alpha.hello", Bytes::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Unavailable(m) if m.contains("alpha.*")),
        "got {err:?}"
    );
    assert!(err.is_retryable());
    let err = peer.stream_raw("test.count", Bytes::new()).await.err();
    assert!(
        matches!(&err, Some(RpcError::Unavailable(_))),
        "got {err:?}"
    );

    // Mounted after the bind, through a clone of the router.
    router.mount("alpha", Arc::new(Tagged("a"))).unwrap();
    router.mount("beta", Arc::new(Tagged("b"))).unwrap();
    router.mount("test", Arc::new(TestService)).unwrap();
    let a = peer.call_raw("alpha.hello", Bytes::new()).await.unwrap();
    assert_eq!(&a[..], b"a:alpha.hello");
    let b = peer.call_raw("beta.x.y", Bytes::new()).await.unwrap();
    assert_eq!(&b[..], b"b:beta.x.y");
    let items: Vec<u64> = peer
        .stream::<_, u64>("test.count", &3u64)
        .await
        .unwrap()
        .map(|i| i.unwrap())
        .collect()
        .await;
    assert_eq!(items, vec![0, 1, 2]);

    // A method without a prefix, and the endpoint's own prefix, are not routable.
    let err = peer.call_raw("hello", Bytes::new()).await.unwrap_err();
    assert!(matches!(err, RpcError::Unsupported(_)), "got {err:?}");
    let err = peer.call_raw("net.other", Bytes::new()).await.unwrap_err();
    assert!(matches!(err, RpcError::Unsupported(_)), "got {err:?}");

    // Unmounted again: back to unavailable.
    router.unmount("beta");
    let err = peer.call_raw("beta.x", Bytes::new()).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable(_)), "got {err:?}");
}
