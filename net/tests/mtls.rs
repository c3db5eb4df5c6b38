//! Mutual TLS, anonymous callers, foreign CAs and the kubeadm-style join path over real QUIC.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use navarch_net::{
    join, BootstrapToken, Endpoint, ExpectedPeer, Identity, JoinAuthority, JoinError, NetConfig,
    PeerIdentity, RpcError, TokenStore,
};

#[tokio::test]
async fn mutual_tls_call_carries_peer_identity() {
    init_tracing();
    let pki = pki();
    let a = server(NetConfig::new("node-a", pki.identity("node-a")));
    let b = server(NetConfig::new("node-b", pki.identity("node-b")));

    let who: WhoAmI = a
        .peer("node-b", b.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(
        who.peer,
        Some(PeerIdentity {
            common_name: "node-a".to_string(),
            organizations: vec!["system:nodes".to_string()],
        })
    );
    assert_eq!(who.ctx_correlation, None);

    let who: WhoAmI = b
        .peer("node-a", a.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer.unwrap().common_name, "node-b");

    let echoed: String = a
        .peer("node-b", b.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call("test.echo", &"hello".to_string())
        .await
        .unwrap();
    assert_eq!(echoed, "hello");
    let err = a
        .peer("node-b", b.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call::<_, ()>("test.fail", &())
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::Remote("asked to fail".to_string()));
}

#[tokio::test]
async fn anonymous_client_is_refused_except_join() {
    init_tracing();
    let pki = pki();
    let srv = server(NetConfig::new("master", pki.identity("master")));
    let anon = Endpoint::client(NetConfig::new(
        "anon",
        Identity::anonymous(pki.ca.cert_pem()),
    ))
    .unwrap();
    let err = anon
        .peer("master", srv.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call::<_, String>("test.echo", &"x".to_string())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Refused(_)), "got {err:?}");
    // join is the one method allowed, but this endpoint has no join authority
    let err = anon
        .peer("master", srv.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call_raw("net.join", bytes::Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Unsupported(_)), "got {err:?}");
}

#[tokio::test]
async fn foreign_ca_certificate_fails() {
    init_tracing();
    let pki = pki();
    let other = common::pki();
    let srv = server(NetConfig::new("master", pki.identity("master")));
    let addr = srv.local_addr().unwrap();

    // A client certificate from another CA, while trusting the right CA for the server.
    let mut foreign = other.identity("intruder");
    foreign.ca_pem = pki.ca.cert_pem().to_string();
    let cli = Endpoint::client(NetConfig::new("intruder", foreign)).unwrap();
    let res = cli
        .peer("master", addr, ExpectedPeer::AnyServer)
        .call::<_, String>("test.echo", &"x".to_string())
        .await;
    assert!(
        res.is_err(),
        "a foreign client certificate must not work: {res:?}"
    );

    // A client that trusts only another CA refuses the server.
    let cli2 = Endpoint::client(NetConfig::new("other", other.identity("other"))).unwrap();
    let res = cli2
        .peer("master", addr, ExpectedPeer::AnyServer)
        .call::<_, String>("test.echo", &"x".to_string())
        .await;
    assert!(
        res.is_err(),
        "a server from another CA must not be trusted: {res:?}"
    );
}

#[tokio::test]
async fn a_client_checks_that_it_reached_the_peer_it_expected() {
    init_tracing();
    let pki = pki();
    let m2 = server(NetConfig::new("m2", pki.member("m2")));
    let m3 = server(NetConfig::new("m3", pki.member("m3")));
    let admin = server(NetConfig::new(
        "m2",
        pki.ca
            .issue(
                "m2",
                &["system:masters"],
                Duration::from_secs(600),
                &navarch_net::CertProfile::member(),
            )
            .unwrap(),
    ));
    let node = server(NetConfig::new("n1", pki.identity("system:node:m2")));
    let cli = Endpoint::client(NetConfig::new("m1", pki.member("m1"))).unwrap();

    let who: WhoAmI = cli
        .peer("m2", m2.local_addr().unwrap(), ExpectedPeer::member("m2"))
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer.unwrap().common_name, "m1");

    // Dialing m2 and reaching m3, an admin's or a node's certificate fails before any request.
    for (what, ep) in [("m3", &m3), ("an admin", &admin), ("a node", &node)] {
        let err = cli
            .peer("m2", ep.local_addr().unwrap(), ExpectedPeer::member("m2"))
            .call::<_, WhoAmI>("test.whoami", &())
            .await
            .unwrap_err();
        match &err {
            RpcError::WrongPeer(m) => assert!(
                m.contains("expected member m2") && m.contains("dialed m2"),
                "{what}: {m}"
            ),
            other => panic!("{what}: expected a wrong-peer error, got {other:?}"),
        }
        assert!(!err.is_retryable());
    }

    // Any master will do for a node agent or navctl; a node is not one.
    let ok: Result<WhoAmI, _> = cli
        .peer("master", m3.local_addr().unwrap(), ExpectedPeer::Master)
        .call("test.whoami", &())
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let err = cli
        .peer("master", node.local_addr().unwrap(), ExpectedPeer::Master)
        .call::<_, WhoAmI>("test.whoami", &())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::WrongPeer(_)), "got {err:?}");
}

struct JoinFixture {
    pki: Pki,
    srv: Endpoint,
    token: BootstrapToken,
}

fn join_fixture() -> JoinFixture {
    let pki = pki();
    let tokens = TokenStore::open(pki.dir.path()).unwrap();
    let token = BootstrapToken::generate();
    tokens.add(&token, Duration::from_secs(600)).unwrap();
    let mut cfg = NetConfig::new("master", pki.member("master"));
    cfg.join = Some(JoinAuthority::new(
        pki.ca.clone(),
        Arc::new(tokens),
        Duration::from_secs(3600),
    ));
    let srv = server(cfg);
    JoinFixture { pki, srv, token }
}

#[tokio::test]
async fn join_with_right_token_gives_working_identity() {
    init_tracing();
    let f = join_fixture();
    let addr = f.srv.local_addr().unwrap();
    let id = join(
        addr,
        &f.token.to_string(),
        &f.pki.ca.spki_sha256(),
        "worker-1",
        Duration::from_secs(7200),
    )
    .await
    .unwrap();
    assert_eq!(id.ca_pem, f.pki.ca.cert_pem());
    let me = id.peer_identity().unwrap();
    assert_eq!(me.common_name, "system:node:worker-1");
    assert_eq!(me.organizations, vec!["system:nodes".to_string()]);

    // The joined identity authenticates the node to a master ...
    let node = server(NetConfig::new("worker-1", id));
    let who: WhoAmI = node
        .peer("master", addr, ExpectedPeer::Master)
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer, Some(me));
    // ... but cannot serve: a master dialing it refuses the node's certificate.
    let err = f
        .srv
        .peer(
            "worker-1",
            node.local_addr().unwrap(),
            ExpectedPeer::AnyServer,
        )
        .call::<_, WhoAmI>("test.whoami", &())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Refused(m) if m.contains("tls handshake")),
        "got {err:?}"
    );
}

#[tokio::test]
async fn join_with_wrong_token_is_refused() {
    init_tracing();
    let f = join_fixture();
    let addr = f.srv.local_addr().unwrap();
    let wrong = format!("{}.{}", f.token.id(), "0123456789abcdef");
    let err = join(
        addr,
        &wrong,
        &f.pki.ca.spki_sha256(),
        "worker-2",
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, JoinError::Rpc(RpcError::Refused(_))),
        "got {err:?}"
    );
    let unknown = BootstrapToken::generate().to_string();
    let err = join(
        addr,
        &unknown,
        &f.pki.ca.spki_sha256(),
        "worker-2",
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, JoinError::Rpc(RpcError::Refused(_))),
        "got {err:?}"
    );
    let err = join(
        addr,
        &f.token.to_string(),
        &f.pki.ca.spki_sha256(),
        "Bad_Name",
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, JoinError::InvalidNodeName { .. }),
        "got {err:?}"
    );
}

#[tokio::test]
async fn join_refuses_a_server_that_is_not_a_master() {
    init_tracing();
    let pki = pki();
    let tokens = TokenStore::open(pki.dir.path()).unwrap();
    let token = BootstrapToken::generate();
    tokens.add(&token, Duration::from_secs(600)).unwrap();
    // Signed by the pinned CA, but not a master's certificate.
    let mut cfg = NetConfig::new("impostor", pki.identity("impostor"));
    cfg.join = Some(JoinAuthority::new(
        pki.ca.clone(),
        Arc::new(tokens),
        Duration::from_secs(3600),
    ));
    let srv = server(cfg);
    let res = join(
        srv.local_addr().unwrap(),
        &token.to_string(),
        &pki.ca.spki_sha256(),
        "worker-9",
        Duration::from_secs(60),
    )
    .await;
    assert!(matches!(res, Err(JoinError::Connect { .. })), "got {res:?}");
}

#[tokio::test]
async fn join_with_wrong_ca_hash_fails() {
    init_tracing();
    let f = join_fixture();
    let addr = f.srv.local_addr().unwrap();
    let other = common::pki();
    let res = join(
        addr,
        &f.token.to_string(),
        &other.ca.spki_sha256(),
        "worker-3",
        Duration::from_secs(60),
    )
    .await;
    assert!(matches!(res, Err(JoinError::Connect { .. })), "got {res:?}");
    let res = join(
        addr,
        &f.token.to_string(),
        "sha256:nothex",
        "worker-3",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(res, Err(JoinError::InvalidCaHash(_))),
        "got {res:?}"
    );
}

#[tokio::test]
async fn siblings_share_one_socket_each_with_its_own_identity() {
    init_tracing();
    let pki = pki();
    let srv = server(NetConfig::new("master", pki.member("master")));
    let addr = srv.local_addr().unwrap();
    let root = Endpoint::client(NetConfig::new(
        "hollow",
        Identity::anonymous(pki.ca.cert_pem()),
    ))
    .unwrap();
    let n0 = root.sibling(NetConfig::new("n0", pki.node("n0"))).unwrap();
    let n1 = root.sibling(NetConfig::new("n1", pki.node("n1"))).unwrap();
    assert_eq!(n0.local_addr().unwrap(), root.local_addr().unwrap());
    assert_eq!(n1.local_addr().unwrap(), root.local_addr().unwrap());
    let who = |ep: &Endpoint| {
        let p = ep.peer("master", addr, ExpectedPeer::Master);
        async move { p.call::<_, WhoAmI>("test.whoami", &()).await }
    };
    assert_eq!(
        who(&n0).await.unwrap().peer.unwrap().common_name,
        "system:node:n0"
    );
    assert_eq!(
        who(&n1).await.unwrap().peer.unwrap().common_name,
        "system:node:n1"
    );

    // Closing a sibling ends its own connections only.
    n0.close();
    assert_eq!(who(&n0).await.unwrap_err(), RpcError::Closed);
    assert_eq!(
        who(&n1).await.unwrap().peer.unwrap().common_name,
        "system:node:n1"
    );

    // A disconnected peer dials again on the next call.
    let p1 = n1.peer("master", addr, ExpectedPeer::Master);
    p1.disconnect().await;
    let again: WhoAmI = p1.call("test.whoami", &()).await.unwrap();
    assert_eq!(again.peer.unwrap().common_name, "system:node:n1");
}

#[tokio::test]
async fn a_node_holds_fewer_concurrent_streams_than_a_member() {
    init_tracing();
    let pki = pki();
    let srv = server(NetConfig::new("master", pki.member("master")));
    let addr = srv.local_addr().unwrap();
    let open = |ep: Endpoint, n: usize| async move {
        let peer = ep.peer("master", addr, ExpectedPeer::Master);
        let opens = (0..n).map(|_| {
            let p = peer.clone();
            async move { p.stream::<_, u64>("test.ticks", &()).await }
        });
        futures::future::join_all(opens).await
    };
    // A member opens more than a node may (the limit is raised once its certificate is read).
    let member = Endpoint::client(NetConfig::new("m2", pki.member("m2"))).unwrap();
    let streams = open(member, 300).await;
    assert!(
        streams.iter().all(Result::is_ok),
        "a member holds 300 streams"
    );
    // A node holds 256 at once; one more waits for one of them to end.
    let mut cfg = NetConfig::new("n1", pki.node("n1"));
    cfg.call_timeout = Duration::from_millis(1500);
    let node = Endpoint::client(cfg).unwrap();
    let held = open(node.clone(), 256).await;
    assert!(held.iter().all(Result::is_ok), "a node holds 256 streams");
    let more = open(node, 1).await;
    assert_eq!(more[0].as_ref().err(), Some(&RpcError::Timeout));
    drop(held);
    drop(streams);
}
