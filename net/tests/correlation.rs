//! Correlation ids travel with calls and streams and reach the handler's task-local and the
//! wire taps on both sides.

mod common;

use std::sync::Arc;

use common::*;
use futures::StreamExt;
use navarch_net::trace::with_correlation;
use navarch_net::{CorrelationId, Direction, Endpoint, ExpectedPeer, NetConfig};

#[tokio::test]
async fn correlation_reaches_handler_and_both_taps() {
    init_tracing();
    let pki = pki();
    let server_tap = Arc::new(RecordingTap::default());
    let client_tap = Arc::new(RecordingTap::default());
    let mut scfg = NetConfig::new("server", pki.identity("server"));
    scfg.tap = Some(server_tap.clone());
    let srv = server(scfg);
    let mut ccfg = NetConfig::new("client", pki.identity("client"));
    ccfg.tap = Some(client_tap.clone());
    let cli = Endpoint::client(ccfg).unwrap();
    let peer = cli.peer(
        "server-peer",
        srv.local_addr().unwrap(),
        ExpectedPeer::AnyServer,
    );

    let id = CorrelationId::new_random();
    let who: WhoAmI = with_correlation(id, peer.call("test.whoami", &()))
        .await
        .unwrap();
    assert_eq!(who.ctx_correlation, Some(id));
    assert_eq!(who.task_correlation, Some(id));

    // Without a correlation id none is sent.
    let who: WhoAmI = peer.call("test.whoami", &()).await.unwrap();
    assert_eq!(who.ctx_correlation, None);
    assert_eq!(who.task_correlation, None);

    let out = client_tap.snapshot();
    assert_eq!(out.len(), 2);
    let e = &out[0];
    assert_eq!(e.direction, Direction::Outbound);
    assert_eq!(e.local, "client");
    assert_eq!(e.peer, "server-peer");
    assert_eq!(e.method, "test.whoami");
    assert_eq!(e.outcome, "ok");
    assert_eq!(e.correlation, Some(id));
    assert!(e.size > 0);
    assert_eq!(out[1].correlation, None);

    let inb = server_tap.snapshot();
    assert_eq!(inb.len(), 2);
    let e = &inb[0];
    assert_eq!(e.direction, Direction::Inbound);
    assert_eq!(e.local, "server");
    assert_eq!(e.peer, "client");
    assert_eq!(e.method, "test.whoami");
    assert_eq!(e.outcome, "ok");
    assert_eq!(e.correlation, Some(id));
    assert_eq!(e.size, out[0].size);
    assert_eq!(inb[1].correlation, None);

    // Streams carry it too.
    let id2 = CorrelationId::new_random();
    let items: Vec<u64> = with_correlation(id2, async {
        peer.stream::<_, u64>("test.count", &2u64)
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await
    })
    .await;
    assert_eq!(items, vec![0, 1]);
    let last_out = client_tap.snapshot().pop().unwrap();
    assert_eq!(
        (last_out.method.as_str(), last_out.correlation),
        ("test.count", Some(id2))
    );
    let last_in = server_tap.snapshot().pop().unwrap();
    assert_eq!(
        (last_in.method.as_str(), last_in.correlation),
        ("test.count", Some(id2))
    );

    // Failures are recorded with their error.
    let _ = peer.call::<_, ()>("test.fail", &()).await;
    let last_out = client_tap.snapshot().pop().unwrap();
    assert_eq!(last_out.outcome, "remote error: asked to fail");
}
