//! Certificate profiles hold over real handshakes: a node's certificate cannot pose as a master
//! (QUIC) or as the API server (HTTPS); the API's serving certificate cannot authenticate a
//! client or serve QUIC; a member's certificate does both on QUIC.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use navarch_net::{
    rustls_server_config, ClusterCa, Endpoint, ExpectedPeer, Identity, NetConfig, RpcError,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;

fn assert_handshake_refused(r: Result<WhoAmI, RpcError>, what: &str) {
    match r {
        Err(RpcError::Refused(m)) => assert!(m.contains("tls handshake"), "{what}: {m}"),
        other => panic!("{what}: expected a refused handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn a_quic_endpoint_serving_with_a_node_certificate_is_refused_by_a_member() {
    init_tracing();
    let pki = pki();
    let node = server(NetConfig::new("n1", pki.node("n1")));
    let member = Endpoint::client(NetConfig::new("m1", pki.member("m1"))).unwrap();
    let addr = node.local_addr().unwrap();
    for expected in [
        ExpectedPeer::member("m2"),
        ExpectedPeer::Master,
        ExpectedPeer::AnyServer,
    ] {
        let r = member
            .peer("n1", addr, expected.clone())
            .call("test.whoami", &())
            .await;
        assert_handshake_refused(r, &format!("node serving, client expecting {expected}"));
    }
    // The same node certificate authenticates fine as a client of a member.
    let m1 = server(NetConfig::new("m1", pki.member("m1")));
    let who: WhoAmI = Endpoint::client(NetConfig::new("n1", pki.node("n1")))
        .unwrap()
        .peer("m1", m1.local_addr().unwrap(), ExpectedPeer::member("m1"))
        .call("test.whoami", &())
        .await
        .unwrap();
    assert_eq!(who.peer.unwrap().common_name, "system:node:n1");
}

fn api_serving(ca: &ClusterCa) -> Identity {
    ca.issue_serving(
        "m1-apiserver",
        &[IpAddr::from([127, 0, 0, 1])],
        Duration::from_secs(600),
    )
    .unwrap()
}

#[tokio::test]
async fn the_api_serving_certificate_neither_serves_quic_nor_authenticates() {
    init_tracing();
    let pki = pki();
    let m1 = server(NetConfig::new("m1", pki.member("m1")));
    // As a client certificate: the member's endpoint refuses it (no clientAuth).
    let r: Result<WhoAmI, _> = Endpoint::client(NetConfig::new("api", api_serving(&pki.ca)))
        .unwrap()
        .peer("m1", m1.local_addr().unwrap(), ExpectedPeer::member("m1"))
        .call("test.whoami", &())
        .await;
    assert!(
        r.is_err(),
        "a serving certificate must not authenticate: {r:?}"
    );
    // As a QUIC server: not valid for the cluster server name.
    let api = server(NetConfig::new("api", api_serving(&pki.ca)));
    let r = Endpoint::client(NetConfig::new("m1", pki.member("m1")))
        .unwrap()
        .peer("api", api.local_addr().unwrap(), ExpectedPeer::AnyServer)
        .call("test.whoami", &())
        .await;
    assert_handshake_refused(r, "the API's serving certificate on QUIC");
}

/// Runs a TLS handshake between `client` and `server` in memory, as an HTTPS client reaching
/// `name` would; returns the first error either side reports.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
    name: ServerName<'static>,
) -> Result<(), rustls::Error> {
    let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
    let mut s = rustls::ServerConnection::new(Arc::new(server))?;
    for _ in 0..16 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

/// An HTTPS client (kubectl's view) trusting only the cluster CA.
fn https_client(ca: &ClusterCa) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    rustls::ClientConfig::builder_with_provider(navarch_net::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn https_server(id: &Identity) -> rustls::ServerConfig {
    rustls_server_config(id, "https", vec![b"http/1.1".to_vec()]).unwrap()
}

#[test]
fn an_https_server_presenting_a_node_certificate_is_refused() {
    let pki = pki();
    let ip = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
    // The API server's own certificate is accepted ...
    handshake(
        https_client(&pki.ca),
        https_server(&api_serving(&pki.ca)),
        ip.clone(),
    )
    .expect("the serving certificate serves");
    // ... a node's is not, by address or by the cluster server name.
    for name in [ip, ServerName::try_from("navarch.cluster").unwrap()] {
        let err = handshake(
            https_client(&pki.ca),
            https_server(&pki.node("n1")),
            name.clone(),
        )
        .unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "node certificate served as {name:?}: {err:?}"
        );
    }
}
