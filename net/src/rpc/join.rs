//! kubeadm-style node join: the node pins the CA by its public key hash, presents a bootstrap
//! token and a CSR over an anonymous connection, and receives a node certificate.
//!
//! The master join (`net.join_master`) is the same exchange with the server token instead
//! of a bootstrap token: the joining master receives the cluster CA, key included, and a
//! member certificate. Both go through the same rate limits.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde::{Deserialize, Serialize};

use super::{tls, wire, CallContext, EpInner, NetError, RpcError};
use crate::codec::{self, DEFAULT_MAX_FRAME_BYTES};
use crate::pki::{
    cert_der_from_pem, cert_holds_key, spki_sha256_of_der, BootstrapToken, ExpectedPeer, Identity,
    PkiError, TokenParseError, CLUSTER_SERVER_NAME, NODE_CN_PREFIX, ORG_MEMBERS, ORG_NODES,
};
use crate::server_token::{ServerToken, ServerTokenError};
use crate::trace::current_correlation;

/// The node join: one of the two methods an anonymous peer may call.
pub const JOIN_METHOD: &str = "net.join";
/// The master join (server token): the other method an anonymous peer may call.
pub const MASTER_JOIN_METHOD: &str = "net.join_master";

/// Overall time allowed for a join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Body of `net.join`.
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The bootstrap token `<id>.<secret>`.
    pub token: String,
    /// The node's CSR, PEM.
    pub csr_pem: String,
    /// The node name (DNS-1123 subdomain).
    pub node_name: String,
    /// Requested certificate validity in seconds (capped by the server).
    pub validity_secs: u64,
}

impl fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinRequest")
            .field("token", &"<redacted>")
            .field("node_name", &self.node_name)
            .field("validity_secs", &self.validity_secs)
            .finish_non_exhaustive()
    }
}

/// Answer of `net.join`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The node certificate, PEM.
    pub cert_pem: String,
    /// The node's kubelet serving certificate for the same key (serves only, as the
    /// cluster server name), PEM: what masters that dial the node for logs and exec expect.
    pub serving_cert_pem: String,
    /// The cluster CA certificate, PEM.
    pub ca_pem: String,
}

/// Body of `net.join_master`.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterJoinRequest {
    /// The server token `K10<ca hash>::server:<secret>`.
    pub token: String,
    /// The joining master's name (DNS-1123 subdomain): the CN of its member certificate.
    pub name: String,
    /// The joining master's CSR, PEM.
    pub csr_pem: String,
}

impl fmt::Debug for MasterJoinRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterJoinRequest")
            .field("token", &"<redacted>")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Answer of `net.join_master`: everything a master's credentials are made from.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterJoinResponse {
    /// The member certificate (CN = the name, O = `navarch:members`), PEM.
    pub cert_pem: String,
    /// The cluster CA certificate, PEM.
    pub ca_pem: String,
    /// The cluster CA's private key, PEM.
    pub ca_key_pem: String,
}

impl fmt::Debug for MasterJoinResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterJoinResponse")
            .field("ca_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What [`join_master`] brings back: the member identity and the CA's key.
#[derive(Clone)]
pub struct JoinedMaster {
    /// The member certificate, its key and the CA certificate.
    pub member: Identity,
    /// The cluster CA's private key, PEM.
    pub ca_key_pem: String,
}

impl fmt::Debug for JoinedMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinedMaster")
            .field("member", &self.member)
            .field("ca_key_pem", &"<redacted>")
            .finish()
    }
}

/// Errors of [`join`] and [`join_master`].
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The CA hash is not `sha256:<64 hex>`.
    #[error("invalid ca hash {0:?}: expected sha256:<64 hex characters>")]
    InvalidCaHash(String),
    /// The node name is not a DNS-1123 subdomain.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The master name is not a DNS-1123 subdomain.
    #[error("invalid master name {name:?}: {reason}")]
    InvalidMemberName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The token is malformed.
    #[error(transparent)]
    Token(#[from] TokenParseError),
    /// The server token is malformed.
    #[error(transparent)]
    ServerToken(#[from] ServerTokenError),
    /// Key, CSR or certificate handling failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The local endpoint could not be set up.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The master could not be reached or failed verification.
    #[error("cannot connect to master {master}: {reason}")]
    Connect {
        /// The master's address.
        master: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The master answered with an error (a wrong token is `Rpc(Refused(..))`).
    #[error("join rejected: {0}")]
    Rpc(#[from] RpcError),
    /// The master sent a CA other than the pinned one.
    #[error("master returned a ca with hash {got}, expected {expected}")]
    CaMismatch {
        /// The pinned hash.
        expected: String,
        /// The returned CA's hash.
        got: String,
    },
    /// The returned certificate is not for our key.
    #[error("master returned a certificate for another public key")]
    CertMismatch,
}

/// Checks a DNS-1123 subdomain (Kubernetes node names).
pub fn validate_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > 253 {
        return Err(format!("{} characters, at most 253 allowed", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".to_string());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!("character {c:?} outside [a-z0-9.-]"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must start and end with [a-z0-9]"));
        }
    }
    Ok(())
}

fn normalize_ca_hash(ca_hash: &str) -> Result<String, JoinError> {
    let lower = ca_hash.trim().to_ascii_lowercase();
    let ok = lower
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(lower)
    } else {
        Err(JoinError::InvalidCaHash(ca_hash.chars().take(80).collect()))
    }
}

/// Joins the cluster through `master`: returns a node identity (CN `system:node:<name>`,
/// O `system:nodes`) that authenticates the node to masters (it cannot serve: the node
/// profile has `clientAuth` only).
pub async fn join(
    master: SocketAddr,
    token: &str,
    ca_hash: &str,
    node_name: &str,
    validity: Duration,
) -> Result<Identity, JoinError> {
    Ok(join_node(master, token, ca_hash, node_name, validity)
        .await?
        .client)
}

/// What a node gets from a join: its client certificate, and its kubelet serving
/// certificate (same key).
#[derive(Clone, Debug)]
pub struct NodeCredentials {
    pub client: Identity,
    pub serving: Identity,
}

/// [`join`], keeping the kubelet serving certificate too.
pub async fn join_node(
    master: SocketAddr,
    token: &str,
    ca_hash: &str,
    node_name: &str,
    validity: Duration,
) -> Result<NodeCredentials, JoinError> {
    let pin = normalize_ca_hash(ca_hash)?;
    let token_parsed: BootstrapToken = token.parse()?;
    validate_node_name(node_name).map_err(|reason| JoinError::InvalidNodeName {
        name: node_name.to_string(),
        reason,
    })?;

    let key = KeyPair::generate().map_err(|e| PkiError::Generate {
        what: "node key".to_string(),
        reason: e.to_string(),
    })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{NODE_CN_PREFIX}{node_name}"));
    dn.push(DnType::OrganizationName, ORG_NODES);
    params.distinguished_name = dn;
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| PkiError::Generate {
            what: "node csr".to_string(),
            reason: e.to_string(),
        })?;

    let req = JoinRequest {
        token: token_parsed.to_string(),
        csr_pem,
        node_name: node_name.to_string(),
        validity_secs: validity.as_secs(),
    };
    tracing::info!(%master, node = node_name, token_id = token_parsed.id(), "joining cluster");
    let answer = anonymous_call(master, &pin, call_frame(JOIN_METHOD, &req)?).await?;
    let resp: JoinResponse =
        codec::decode(&answer).map_err(|e| RpcError::Decode(format!("join response: {e}")))?;

    let got = spki_sha256_of_der(&cert_der_from_pem(&resp.ca_pem, "returned ca")?)?;
    if got != pin {
        return Err(JoinError::CaMismatch { expected: pin, got });
    }
    let what = "returned node certificate";
    if !cert_holds_key(&cert_der_from_pem(&resp.cert_pem, what)?, &key, what)? {
        return Err(JoinError::CertMismatch);
    }
    let what = "returned serving certificate";
    if !cert_holds_key(
        &cert_der_from_pem(&resp.serving_cert_pem, what)?,
        &key,
        what,
    )? {
        return Err(JoinError::CertMismatch);
    }
    tracing::info!(%master, node = node_name, "joined cluster");
    Ok(NodeCredentials {
        client: Identity {
            cert_pem: resp.cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: resp.ca_pem.clone(),
        },
        serving: Identity {
            cert_pem: resp.serving_cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: resp.ca_pem,
        },
    })
}

/// One call over an anonymous connection to `master`, whose certificate must chain to the CA
/// pinned by `pin` and be a master's.
async fn anonymous_call(master: SocketAddr, pin: &str, frame: Bytes) -> Result<Bytes, JoinError> {
    let client_cfg = tls::join_client_config(pin)?;
    let bind: SocketAddr = if master.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|source| NetError::Bind { addr: bind, source })?;
    let exchange = async {
        let conn = endpoint
            .connect_with(client_cfg, master, CLUSTER_SERVER_NAME)
            .map_err(|e| JoinError::Connect {
                master,
                reason: e.to_string(),
            })?
            .await
            .map_err(|e| JoinError::Connect {
                master,
                reason: e.to_string(),
            })?;
        // The pinned CA signed the server's certificate; it must also be a master's.
        let who = super::peer_identity(&conn)
            .and_then(|p| p.ok_or_else(|| "the server presented no certificate".to_string()))
            .and_then(|p| ExpectedPeer::Master.check(&p));
        if let Err(reason) = who {
            conn.close(wire::CODE_WRONG_PEER, b"not a master");
            return Err(JoinError::Connect { master, reason });
        }
        let answer = wire::exchange_call(&conn, frame, DEFAULT_MAX_FRAME_BYTES).await;
        conn.close(wire::CODE_DONE, b"joined");
        Ok::<_, JoinError>(answer?)
    };
    let answer = tokio::time::timeout(JOIN_TIMEOUT, exchange).await;
    endpoint.close(wire::CODE_DONE, b"joined");
    match answer {
        Ok(r) => r,
        Err(_) => Err(JoinError::Rpc(RpcError::Timeout)),
    }
}

fn call_frame<T: Serialize>(method: &str, req: &T) -> Result<Bytes, JoinError> {
    let body = codec::encode(req).map_err(|e| RpcError::Decode(e.to_string()))?;
    Ok(wire::encode_request(
        &wire::RequestHeader {
            kind: wire::RequestKind::Call,
            method: method.to_string(),
            correlation: current_correlation(),
        },
        &body,
    )?)
}

/// Joins the cluster through `master` as another master, with the server `token`: returns
/// this master's member identity (CN `name`, O `navarch:members`) and the cluster CA's key.
/// The CA is checked against the pin the token carries before anything is returned.
pub async fn join_master(
    master: SocketAddr,
    token: &str,
    name: &str,
) -> Result<JoinedMaster, JoinError> {
    let parsed: ServerToken = token.parse()?;
    let pin = parsed.ca_hash();
    validate_node_name(name).map_err(|reason| JoinError::InvalidMemberName {
        name: name.to_string(),
        reason,
    })?;
    let key = KeyPair::generate().map_err(|e| PkiError::Generate {
        what: "member key".to_string(),
        reason: e.to_string(),
    })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, ORG_MEMBERS);
    params.distinguished_name = dn;
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| PkiError::Generate {
            what: "member csr".to_string(),
            reason: e.to_string(),
        })?;
    let req = MasterJoinRequest {
        token: parsed.to_string(),
        name: name.to_string(),
        csr_pem,
    };
    tracing::info!(%master, name, "joining the cluster as a master");
    let answer = anonymous_call(master, &pin, call_frame(MASTER_JOIN_METHOD, &req)?).await?;
    let resp: MasterJoinResponse = codec::decode(&answer)
        .map_err(|e| RpcError::Decode(format!("master join response: {e}")))?;
    let got = spki_sha256_of_der(&cert_der_from_pem(&resp.ca_pem, "returned ca")?)?;
    if got != pin {
        return Err(JoinError::CaMismatch { expected: pin, got });
    }
    let what = "returned member certificate";
    if !cert_holds_key(&cert_der_from_pem(&resp.cert_pem, what)?, &key, what)? {
        return Err(JoinError::CertMismatch);
    }
    tracing::info!(%master, name, "received the cluster ca and a member certificate");
    Ok(JoinedMaster {
        member: Identity {
            cert_pem: resp.cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: resp.ca_pem,
        },
        ca_key_pem: resp.ca_key_pem,
    })
}

/// Logs a refused join, at most one line per the limits' interval (with the count of
/// refusals held back since the previous line). `node` is what the caller claimed, quoted.
fn log_refusal(ep: &EpInner, ctx: &CallContext, node: Option<&str>, reason: &str) {
    match ep.join_log.admit(Instant::now()) {
        Some(suppressed) => {
            tracing::warn!(name = %ep.name, remote = %ctx.remote, node = ?node, reason, suppressed, "join refused")
        }
        None => {
            tracing::debug!(name = %ep.name, remote = %ctx.remote, node = ?node, reason, "join refused")
        }
    }
}

/// Server side of `net.join`. An attempt is admitted by the rate limits before anything else
/// (decoding, the token check, signing), so a flood of attempts costs almost nothing.
pub(super) async fn serve_join(
    ep: &EpInner,
    ctx: &CallContext,
    body: Bytes,
) -> Result<Bytes, RpcError> {
    let Some(auth) = ep.join.clone() else {
        log_refusal(ep, ctx, None, "this endpoint does not accept joins");
        return Err(RpcError::Unsupported(format!(
            "endpoint {} does not accept joins",
            ep.name
        )));
    };
    if let Err(wait) = ep.join_limiter.admit(ctx.remote.ip(), Instant::now()) {
        log_refusal(ep, ctx, None, "rate limited");
        return Err(RpcError::RateLimited {
            retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
        });
    }
    let req: JoinRequest = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            log_refusal(ep, ctx, None, "undecodable request");
            return Err(RpcError::Decode(format!("join request: {e}")));
        }
    };
    if let Err(reason) = validate_node_name(&req.node_name) {
        log_refusal(ep, ctx, Some(&req.node_name), "invalid node name");
        return Err(RpcError::Refused(format!(
            "invalid node name {:?}: {reason}",
            req.node_name
        )));
    }
    let token_id = req
        .token
        .parse::<BootstrapToken>()
        .map(|t| t.id().to_string())
        .unwrap_or_else(|_| "<malformed>".to_string());
    let tokens = auth.tokens.clone();
    let presented = req.token.clone();
    let valid = tokio::task::spawn_blocking(move || tokens.verify(&presented))
        .await
        .unwrap_or(false);
    if !valid {
        log_refusal(
            ep,
            ctx,
            Some(&req.node_name),
            "invalid or expired bootstrap token",
        );
        return Err(RpcError::Refused(
            "invalid or expired bootstrap token".to_string(),
        ));
    }
    let validity = Duration::from_secs(req.validity_secs.max(1)).min(auth.node_cert_validity);
    let cn = format!("{NODE_CN_PREFIX}{}", req.node_name);
    let ca = auth.ca.clone();
    let csr = req.csr_pem.clone();
    let cn2 = cn.clone();
    let signed = tokio::task::spawn_blocking(move || {
        let client = ca.sign_csr(&csr, &cn2, &[ORG_NODES], validity)?;
        let serving = ca.sign_csr_serving(&csr, &cn2, &[ORG_NODES], validity)?;
        Ok::<_, crate::PkiError>((client, serving))
    })
    .await
    .map_err(|e| RpcError::Remote(format!("signing task failed: {e}")))?;
    let (cert_pem, serving_cert_pem) = match signed {
        Ok(p) => p,
        Err(e) => {
            log_refusal(ep, ctx, Some(&req.node_name), "cannot sign csr");
            return Err(RpcError::Refused(format!("cannot sign csr: {e}")));
        }
    };
    tracing::info!(name = %ep.name, remote = %ctx.remote, node = %req.node_name, %token_id, cn = %cn, validity_secs = validity.as_secs(), "node joined");
    let resp = JoinResponse {
        cert_pem,
        serving_cert_pem,
        ca_pem: auth.ca.cert_pem().to_string(),
    };
    codec::encode(&resp)
        .map(Bytes::from)
        .map_err(|e| RpcError::Remote(format!("encode join response: {e}")))
}

/// Server side of `net.join_master`: the rate limits first (the same buckets as node joins),
/// then the server token, then the member certificate is signed and the CA handed over.
pub(super) async fn serve_master_join(
    ep: &EpInner,
    ctx: &CallContext,
    body: Bytes,
) -> Result<Bytes, RpcError> {
    let Some((auth, expected)) = ep
        .join
        .clone()
        .and_then(|a| a.server_token.clone().map(|t| (a, t)))
    else {
        log_refusal(ep, ctx, None, "this endpoint does not accept master joins");
        return Err(RpcError::Unsupported(format!(
            "endpoint {} does not accept master joins",
            ep.name
        )));
    };
    if let Err(wait) = ep.join_limiter.admit(ctx.remote.ip(), Instant::now()) {
        log_refusal(ep, ctx, None, "rate limited");
        return Err(RpcError::RateLimited {
            retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
        });
    }
    let req: MasterJoinRequest = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            log_refusal(ep, ctx, None, "undecodable request");
            return Err(RpcError::Decode(format!("master join request: {e}")));
        }
    };
    if let Err(reason) = validate_node_name(&req.name) {
        log_refusal(ep, ctx, Some(&req.name), "invalid master name");
        return Err(RpcError::Refused(format!(
            "invalid master name {:?}: {reason}",
            req.name
        )));
    }
    let valid = req
        .token
        .parse::<ServerToken>()
        .is_ok_and(|presented| expected.accepts(&presented));
    if !valid {
        log_refusal(ep, ctx, Some(&req.name), "invalid server token");
        return Err(RpcError::Refused("invalid server token".to_string()));
    }
    let ca = auth.ca.clone();
    let (csr, name) = (req.csr_pem.clone(), req.name.clone());
    let validity = auth.node_cert_validity;
    let signed = tokio::task::spawn_blocking(move || ca.sign_member_csr(&csr, &name, validity))
        .await
        .map_err(|e| RpcError::Remote(format!("signing task failed: {e}")))?;
    let cert_pem = match signed {
        Ok(p) => p,
        Err(e) => {
            log_refusal(ep, ctx, Some(&req.name), "cannot sign csr");
            return Err(RpcError::Refused(format!("cannot sign csr: {e}")));
        }
    };
    tracing::info!(name = %ep.name, remote = %ctx.remote, master = %req.name, "handed the cluster ca to a joining master");
    let resp = MasterJoinResponse {
        cert_pem,
        ca_pem: auth.ca.cert_pem().to_string(),
        ca_key_pem: auth.ca.key_pem(),
    };
    codec::encode(&resp)
        .map(Bytes::from)
        .map_err(|e| RpcError::Remote(format!("encode master join response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(validate_node_name("node-1.example").is_ok());
        assert!(validate_node_name("").is_err());
        assert!(validate_node_name("Node").is_err());
        assert!(validate_node_name("-a").is_err());
        assert!(validate_node_name("a..b").is_err());
        assert!(validate_node_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn ca_hash_format() {
        let h = format!("sha256:{}", "A".repeat(64));
        assert_eq!(normalize_ca_hash(&h).unwrap(), h.to_ascii_lowercase());
        assert!(normalize_ca_hash("sha256:abc").is_err());
        assert!(normalize_ca_hash(&"a".repeat(64)).is_err());
    }
}
