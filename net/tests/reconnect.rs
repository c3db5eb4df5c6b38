//! A PeerClient reconnects by itself when its peer comes back on the same address.

mod common;

use std::time::{Duration, Instant};

use common::*;
use navarch_net::{Endpoint, ExpectedPeer, NetConfig, RpcError};

#[tokio::test]
async fn peer_client_reconnects_to_a_restarted_server() {
    init_tracing();
    let pki = pki();
    let srv = server(NetConfig::new("server", pki.identity("server")));
    let addr = srv.local_addr().unwrap();
    let mut ccfg = NetConfig::new("client", pki.identity("client"));
    ccfg.call_timeout = Duration::from_secs(1);
    let cli = Endpoint::client(ccfg).unwrap();
    let peer = cli.peer("server", addr, ExpectedPeer::AnyServer);
    let s: String = peer.call("test.echo", &"one".to_string()).await.unwrap();
    assert_eq!(s, "one");

    srv.close();
    srv.wait_idle().await;
    drop(srv);

    // While the server is gone calls fail (quickly, not forever).
    let err = peer
        .call::<_, String>("test.echo", &"gone".to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Unreachable(_) | RpcError::Timeout | RpcError::Closed
        ),
        "got {err:?}"
    );

    // Bind a new server on the same address (the old socket may take a moment to go).
    let deadline = Instant::now() + Duration::from_secs(10);
    let srv2 = loop {
        match Endpoint::bind(
            addr,
            NetConfig::new("server", pki.identity("server")),
            test_router(),
        ) {
            Ok(ep) => break ep,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot rebind {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(srv2.local_addr().unwrap(), addr);

    // The same PeerClient gets through again within its backoff (max 2 s between attempts).
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match peer
            .call::<_, String>("test.echo", &"two".to_string())
            .await
        {
            Ok(s) => {
                assert_eq!(s, "two");
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(8),
                "no reconnect after {attempts} attempts: {e}"
            ),
        }
    }
    let s: String = peer.call("test.echo", &"three".to_string()).await.unwrap();
    assert_eq!(s, "three");
}
