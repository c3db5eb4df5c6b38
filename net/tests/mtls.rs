//! Mutual TLS, anonymous callers, foreign CAs and the kubeadm-style join path over real QUIC.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use navarch_net::{
    join, BootstrapToken, Endpoint, Identity, JoinAuthority, JoinError, NetConfig, PeerIdentity,
    RpcError, TokenStore,
};

#[tokio::test]
async fn mutual_tls_call_carries_peer_identity() {
    init_tracing();
    let pki = pki();
    let a = server(NetConfig::new("node-a", pki.identity("node-a")));
    let b = server(NetConfig::new("node-b", pki.identity("node-b")));

    let who: WhoAmI = a
        .peer("node-b", b.local_addr().unwrap())
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
        .peer("node-a", a.local_addr().unwrap())
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer.unwrap().common_name, "node-b");

    let echoed: String = a
        .peer("node-b", b.local_addr().unwrap())
        .call("test.echo", &"hello".to_string())
        .await
        .unwrap();
    assert_eq!(echoed, "hello");
    let err = a
        .peer("node-b", b.local_addr().unwrap())
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
        .peer("master", srv.local_addr().unwrap())
        .call::<_, String>("test.echo", &"x".to_string())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Refused(_)), "got {err:?}");
    // join is the one method allowed, but this endpoint has no join authority
    let err = anon
        .peer("master", srv.local_addr().unwrap())
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
        .peer("master", addr)
        .call::<_, String>("test.echo", &"x".to_string())
        .await;
    assert!(
        res.is_err(),
        "a foreign client certificate must not work: {res:?}"
    );

    // A client that trusts only another CA refuses the server.
    let cli2 = Endpoint::client(NetConfig::new("other", other.identity("other"))).unwrap();
    let res = cli2
        .peer("master", addr)
        .call::<_, String>("test.echo", &"x".to_string())
        .await;
    assert!(
        res.is_err(),
        "a server from another CA must not be trusted: {res:?}"
    );
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
    let mut cfg = NetConfig::new("master", pki.identity("master"));
    cfg.join = Some(JoinAuthority {
        ca: pki.ca.clone(),
        tokens: Arc::new(tokens),
        node_cert_validity: Duration::from_secs(3600),
    });
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

    // The joined identity works for mutual TLS, as a client and as a server.
    let node = server(NetConfig::new("worker-1", id));
    let who: WhoAmI = node
        .peer("master", addr)
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer, Some(me));
    let who: WhoAmI = f
        .srv
        .peer("worker-1", node.local_addr().unwrap())
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer.unwrap().common_name, "master");
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
