//! Oversized frames are refused per stream: the connection's other streams and later calls
//! keep working.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use navarch_net::{Endpoint, ExpectedPeer, NetConfig, RpcError};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn oversized_request_is_refused_without_hurting_other_streams() {
    init_tracing();
    let pki = pki();
    let mut scfg = NetConfig::new("server", pki.identity("server"));
    scfg.max_frame_bytes = MIB;
    let srv = server(scfg);
    // The client's own cap is larger, so the oversized frame really goes on the wire and the
    // server must refuse it.
    let mut ccfg = NetConfig::new("client", pki.identity("client"));
    ccfg.max_frame_bytes = 8 * MIB;
    let cli = Endpoint::client(ccfg).unwrap();
    let peer = cli.peer("server", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);

    let mut ticks = peer.stream::<_, u64>("test.ticks", &()).await.unwrap();
    let first = ticks.next().await.unwrap().unwrap();

    let big = bytes::Bytes::from(vec![7u8; 2 * MIB]);
    let err = peer.call_raw("test.echo", big).await.unwrap_err();
    match err {
        RpcError::FrameTooLarge { size, max } => {
            assert!(size > 2 * MIB, "size {size}");
            assert_eq!(max, MIB);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }

    // The long-lived stream on the same connection keeps delivering, in order.
    let mut last = first;
    for _ in 0..5 {
        let next = tokio::time::timeout(Duration::from_secs(5), ticks.next())
            .await
            .expect("stream stalled after the oversized frame")
            .unwrap()
            .unwrap();
        assert_eq!(next, last + 1);
        last = next;
    }

    // And a normal call on the same PeerClient succeeds.
    let echoed: String = peer
        .call("test.echo", &"still fine".to_string())
        .await
        .unwrap();
    assert_eq!(echoed, "still fine");
    drop(ticks);
}

#[tokio::test]
async fn oversized_request_is_refused_locally_before_sending() {
    init_tracing();
    let pki = pki();
    let srv = server(NetConfig::new("server", pki.identity("server")));
    let mut ccfg = NetConfig::new("client", pki.identity("client"));
    ccfg.max_frame_bytes = 64 * 1024;
    let cli = Endpoint::client(ccfg).unwrap();
    let peer = cli.peer("server", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    let err = peer
        .call_raw("test.echo", bytes::Bytes::from(vec![0u8; 100 * 1024]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::FrameTooLarge { max, .. } if max == 64 * 1024),
        "got {err:?}"
    );
    let n: Vec<u64> = peer
        .stream::<_, u64>("test.count", &3u64)
        .await
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(n, vec![0, 1, 2]);
}

#[tokio::test]
async fn oversized_response_becomes_an_error() {
    init_tracing();
    let pki = pki();
    let mut scfg = NetConfig::new("server", pki.identity("server"));
    scfg.max_frame_bytes = 64 * 1024;
    let srv = server(scfg);
    let mut ccfg = NetConfig::new("client", pki.identity("client"));
    ccfg.max_frame_bytes = 128 * 1024;
    let cli = Endpoint::client(ccfg).unwrap();
    let peer = cli.peer("server", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    // Fits the server's request cap, but the doubled answer does not fit its response cap.
    let err = peer
        .call_raw("test.double", bytes::Bytes::from(vec![1u8; 40 * 1024]))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { .. }), "got {err:?}");
}
