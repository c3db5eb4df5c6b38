//! Duplex calls: the caller's input reaches the handler item by item while its output comes
//! back, the end of the input ends the handler's input, and a caller that goes away stops
//! the handler.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use navarch_net::pki::ExpectedPeer;
use navarch_net::{Endpoint, NetConfig, RpcError};

use common::{pki, server, UPPER_DROPPED};

fn pair() -> (common::Pki, Endpoint, Endpoint) {
    common::init_tracing();
    let pki = pki();
    let srv = server(NetConfig::new("srv", pki.identity("srv")));
    let cli = Endpoint::client(NetConfig::new("cli", pki.identity("cli"))).unwrap();
    (pki, srv, cli)
}

/// A caller's input: what is sent on the channel, until it is dropped.
fn input() -> (
    tokio::sync::mpsc::Sender<Bytes>,
    futures::stream::BoxStream<'static, Bytes>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let s = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    (tx, s.boxed())
}

#[tokio::test]
async fn input_reaches_the_handler_as_it_comes_and_its_end_ends_the_stream() {
    let (_pki, srv, cli) = pair();
    let peer = cli.peer("srv", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    let (tx, input) = input();
    let mut out = peer
        .duplex_raw("test.upper", Bytes::new(), input)
        .await
        .unwrap();
    // Each answer comes back while the input is still open: the input is not collected
    // first.
    for word in ["one", "two", "three"] {
        tx.send(Bytes::from(word)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), out.next())
            .await
            .expect("an answer while the input is open")
            .unwrap()
            .unwrap();
        assert_eq!(got, Bytes::from(word.to_uppercase()));
    }
    drop(tx);
    assert_eq!(
        out.next().await.unwrap().unwrap(),
        Bytes::from("end of input")
    );
    assert!(
        out.next().await.is_none(),
        "the stream ends after the handler's"
    );
}

#[tokio::test]
async fn typed_duplex_calls_encode_input_and_decode_items() {
    let (_pki, srv, cli) = pair();
    let peer = cli.peer("srv", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    // Bincode strings are a length then the bytes: upper-casing keeps them strings.
    let input = futures::stream::iter(vec!["ab".to_string(), "cd".to_string()]).boxed();
    let out: Vec<Result<String, RpcError>> = peer
        .duplex::<_, _, String>("test.upper", &(), input)
        .await
        .unwrap()
        .take(2)
        .collect()
        .await;
    assert_eq!(out, vec![Ok("AB".to_string()), Ok("CD".to_string())]);
}

#[tokio::test]
async fn a_caller_that_goes_away_stops_the_handler() {
    let (_pki, srv, cli) = pair();
    let peer = cli.peer("srv", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    let before = UPPER_DROPPED.load(Ordering::SeqCst);
    let (tx, input) = input();
    let mut out = peer
        .duplex_raw("test.upper", Bytes::new(), input)
        .await
        .unwrap();
    tx.send(Bytes::from("x")).await.unwrap();
    assert_eq!(out.next().await.unwrap().unwrap(), Bytes::from("X"));
    // The caller drops its stream with its input still open: the handler's stream goes.
    drop(out);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while UPPER_DROPPED.load(Ordering::SeqCst) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler's stream was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tx);
}

#[tokio::test]
async fn methods_without_input_refuse_a_duplex_open() {
    let (_pki, srv, cli) = pair();
    let peer = cli.peer("srv", srv.local_addr().unwrap(), ExpectedPeer::AnyServer);
    let err = peer
        .duplex_raw("test.count", Bytes::new(), futures::stream::empty().boxed())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, RpcError::Unsupported(_)), "{err:?}");
}
