//! Fault injection through the endpoint: cut, drop, delay, in both directions, on calls and
//! on open streams.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use navarch_net::{
    Endpoint, ExpectedPeer, Fault, FaultDirection, FaultRule, NetConfig, PeerClient, RpcError,
};

struct Pair {
    _pki: Pki,
    srv: Endpoint,
    cli: Endpoint,
    peer: PeerClient,
}

fn pair(call_timeout: Duration) -> Pair {
    let pki = pki();
    let srv = server(NetConfig::new("server", pki.identity("server")));
    let mut ccfg = NetConfig::new("client", pki.identity("client"));
    ccfg.call_timeout = call_timeout;
    let cli = Endpoint::client(ccfg).unwrap();
    let peer = cli.peer("server", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    Pair {
        _pki: pki,
        srv,
        cli,
        peer,
    }
}

async fn echo(peer: &PeerClient) -> Result<String, RpcError> {
    peer.call("test.echo", &"ping".to_string()).await
}

fn rule(peer: &str, direction: FaultDirection, fault: Fault) -> FaultRule {
    FaultRule {
        peer: peer.to_string(),
        direction,
        fault,
    }
}

#[tokio::test]
async fn outbound_cut_is_unreachable_at_once_and_clear_restores() {
    init_tracing();
    let p = pair(Duration::from_secs(5));
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
    p.cli
        .faults()
        .set(rule("server", FaultDirection::Outbound, Fault::Cut));
    let t = Instant::now();
    let err = echo(&p.peer).await.unwrap_err();
    assert!(matches!(err, RpcError::Unreachable(_)), "got {err:?}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // Rules for other peers do not matter.
    p.cli.faults().clear(Some("someone-else"));
    assert!(echo(&p.peer).await.is_err());
    p.cli.faults().clear(Some("server"));
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
}

#[tokio::test]
async fn inbound_cut_makes_the_caller_time_out() {
    init_tracing();
    let p = pair(Duration::from_millis(300));
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
    // Inbound rules match the caller's certificate CN.
    p.srv
        .faults()
        .set(rule("client", FaultDirection::Inbound, Fault::Cut));
    let t = Instant::now();
    let err = echo(&p.peer).await.unwrap_err();
    assert_eq!(err, RpcError::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(300));
    p.srv.faults().clear(None);
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
}

#[tokio::test]
async fn drop_everything_times_out() {
    init_tracing();
    let p = pair(Duration::from_millis(200));
    p.cli.faults().set(rule(
        "server",
        FaultDirection::Both,
        Fault::Drop { probability: 1.0 },
    ));
    let t = Instant::now();
    assert_eq!(echo(&p.peer).await.unwrap_err(), RpcError::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(200));
    p.cli.faults().set(rule(
        "server",
        FaultDirection::Both,
        Fault::Drop { probability: 0.0 },
    ));
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
    p.cli.faults().clear(None);
    p.srv.faults().set(rule(
        "client",
        FaultDirection::Inbound,
        Fault::Drop { probability: 1.0 },
    ));
    assert_eq!(echo(&p.peer).await.unwrap_err(), RpcError::Timeout);
}

#[tokio::test]
async fn delay_delays_both_ways() {
    init_tracing();
    let p = pair(Duration::from_secs(5));
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
    p.cli.faults().set(rule(
        "server",
        FaultDirection::Outbound,
        Fault::Delay { millis: 250 },
    ));
    let t = Instant::now();
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "took {:?}",
        t.elapsed()
    );
    p.cli.faults().clear(None);

    p.srv.faults().set(rule(
        "client",
        FaultDirection::Inbound,
        Fault::Delay { millis: 250 },
    ));
    let t = Instant::now();
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "took {:?}",
        t.elapsed()
    );
    p.srv.faults().clear(None);

    // A delay longer than the call timeout is a timeout.
    let err = p
        .peer
        .call_with_timeout::<_, String>("test.echo", &"x".to_string(), Duration::from_millis(100))
        .await;
    assert!(err.is_ok());
    p.cli.faults().set(rule(
        "server",
        FaultDirection::Outbound,
        Fault::Delay { millis: 1000 },
    ));
    let err = p
        .peer
        .call_with_timeout::<_, String>("test.echo", &"x".to_string(), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::Timeout);
}

#[tokio::test]
async fn cut_ends_open_streams_with_an_error() {
    init_tracing();
    let p = pair(Duration::from_secs(5));

    // Outbound cut on the caller's side.
    let mut ticks = p.peer.stream::<_, u64>("test.ticks", &()).await.unwrap();
    assert_eq!(ticks.next().await.unwrap().unwrap(), 0);
    p.cli
        .faults()
        .set(rule("server", FaultDirection::Outbound, Fault::Cut));
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ticks.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("stream did not end after the cut");
    assert!(
        matches!(end, Some(Err(RpcError::Unreachable(_)))),
        "got {end:?}"
    );
    assert!(ticks.next().await.is_none());
    let err = p
        .peer
        .stream::<_, u64>("test.ticks", &())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RpcError::Unreachable(_)), "got {err:?}");
    p.cli.faults().clear(None);

    // Inbound cut on the server's side.
    let mut ticks = p.peer.stream::<_, u64>("test.ticks", &()).await.unwrap();
    assert_eq!(ticks.next().await.unwrap().unwrap(), 0);
    p.srv
        .faults()
        .set(rule("client", FaultDirection::Inbound, Fault::Cut));
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ticks.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("stream did not end after the cut");
    assert!(matches!(end, Some(Err(_))), "got {end:?}");
    p.srv.faults().clear(None);
    assert_eq!(echo(&p.peer).await.unwrap(), "ping");
}
