//! rustls and quinn configuration: one explicit ring `CryptoProvider`, TLS 1.3 only, ALPN
//! `navarch/1`, mutual TLS rooted at the cluster CA, and the CA-pinning verifier used to join.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::NetError;
use crate::pki::{spki_sha256_of_der, Identity};

/// ALPN protocol id of navarch's RPC.
pub const ALPN: &[u8] = b"navarch/1";

/// Concurrent bidirectional streams a master, an admin or a member may open (one per call or
/// stream); a connection starts at [`NODE_BIDI_STREAMS`] and is raised to this once its
/// certificate says it is not a node's.
pub(crate) const MAX_BIDI_STREAMS: u32 = 4096;
/// Concurrent streams a node (or a joining peer) may open: quinn keeps state for each stream
/// a peer may open, and a master holds one connection per node.
pub(crate) const NODE_BIDI_STREAMS: u32 = 256;
/// Keep-alive interval: a dead peer is noticed within the idle timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Idle timeout in milliseconds.
const IDLE_TIMEOUT_MS: u32 = 5_000;

/// The one crypto provider navarch uses (ring), passed explicitly to every rustls builder.
/// Other TLS users in the process (the HTTPS API) should build from this one too.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Also installs [`crypto_provider`] as the process default, for libraries that only use the
/// default. Idempotent; navarch-net itself never relies on it.
pub fn install_default_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let provider = (*crypto_provider()).clone();
        if provider.install_default().is_err() {
            tracing::debug!("a default crypto provider was installed concurrently");
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    crypto_provider()
}

/// The transport of a connection; `accepts_streams` is false on the dialing side, which
/// only opens streams (quinn keeps state for every stream the peer may open, a few hundred
/// kilobytes for 4096 of them, so a client allowing none is much lighter: a process of
/// hollow nodes holds one client connection per node).
pub(crate) fn transport(accepts_streams: bool) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    let remote_bidi = if accepts_streams {
        NODE_BIDI_STREAMS
    } else {
        0
    };
    t.max_concurrent_bidi_streams(VarInt::from_u32(remote_bidi));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(IDLE_TIMEOUT_MS))));
    Arc::new(t)
}

fn tls_err(name: &str) -> impl FnOnce(String) -> NetError + '_ {
    move |reason| NetError::Tls {
        name: name.to_string(),
        reason,
    }
}

fn certs(pem: &str, what: &str, name: &str) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(name)(format!("bad {what} pem: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(name)(format!("no certificate in {what}")));
    }
    Ok(certs)
}

fn roots(identity: &Identity, name: &str) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    for c in certs(&identity.ca_pem, "ca certificate", name)? {
        roots
            .add(c)
            .map_err(|e| tls_err(name)(format!("unusable ca certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn key(identity: &Identity, name: &str) -> Result<PrivateKeyDer<'static>, NetError> {
    // The error text from pki-types never includes key material.
    PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| tls_err(name)(format!("unusable private key: {e}")))
}

/// Server side: mutual TLS with the cluster CA, anonymous clients allowed (join only).
pub(crate) fn server_config(
    identity: &Identity,
    name: &str,
) -> Result<quinn::ServerConfig, NetError> {
    let cfg = rustls_server_config(identity, name, vec![ALPN.to_vec()])?;
    let quic = QuicServerConfig::try_from(cfg).map_err(|e| tls_err(name)(e.to_string()))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(quic));
    sc.transport_config(transport(true));
    Ok(sc)
}

/// A rustls server configuration like the QUIC endpoint's (TLS 1.3, chain `[leaf, ca]`,
/// client certificates verified against the cluster CA but optional) with the given ALPN
/// protocols, for other servers of the process (the HTTPS API). `name` is only for errors.
pub fn rustls_server_config(
    identity: &Identity,
    name: &str,
    alpn: Vec<Vec<u8>>,
) -> Result<rustls::ServerConfig, NetError> {
    let mut chain = certs(&identity.cert_pem, "certificate", name)?;
    chain.extend(certs(&identity.ca_pem, "ca certificate", name)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(identity, name)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_err(name)(format!("client verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(name)(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(identity, name)?)
        .map_err(|e| tls_err(name)(format!("server certificate: {e}")))?;
    cfg.alpn_protocols = alpn;
    Ok(cfg)
}

fn finish_client(
    mut cfg: rustls::ClientConfig,
    name: &str,
) -> Result<quinn::ClientConfig, NetError> {
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(cfg).map_err(|e| tls_err(name)(e.to_string()))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(quic));
    cc.transport_config(transport(false));
    Ok(cc)
}

/// Client side: verifies servers against the cluster CA; presents our certificate unless the
/// identity is anonymous (no certificate).
pub(crate) fn client_config(
    identity: &Identity,
    name: &str,
) -> Result<quinn::ClientConfig, NetError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(name)(e.to_string()))?
        .with_root_certificates(roots(identity, name)?);
    let cfg = if identity.is_anonymous() {
        builder.with_no_client_auth()
    } else {
        builder
            .with_client_auth_cert(
                certs(&identity.cert_pem, "certificate", name)?,
                key(identity, name)?,
            )
            .map_err(|e| tls_err(name)(format!("client certificate: {e}")))?
    };
    finish_client(cfg, name)
}

/// Client side for joining: no client certificate; the server is trusted only if its chain
/// holds a certificate whose SPKI SHA-256 is `ca_hash`, and its leaf verifies against it.
pub(crate) fn join_client_config(ca_hash: &str) -> Result<quinn::ClientConfig, NetError> {
    let verifier = Arc::new(PinnedCaVerifier {
        pin: ca_hash.to_string(),
        provider: provider(),
    });
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("join")(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    finish_client(cfg, "join")
}

/// Trusts the CA whose public key hash is pinned (kubeadm's discovery-token-ca-cert-hash).
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = std::iter::once(end_entity)
            .chain(intermediates.iter())
            .find(|c| spki_sha256_of_der(c.as_ref()).is_ok_and(|h| h == self.pin));
        let Some(anchor) = anchor else {
            tracing::warn!(
                expected = %self.pin,
                presented = intermediates.len() + 1,
                "master's certificate chain has no ca with the pinned public key hash"
            );
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned ca verifier: {e}")))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
