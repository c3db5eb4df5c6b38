//! Service-account tokens: short-lived, audience-bound JWTs that the API server issues
//! (`serviceaccounts/<name>/token`, Kubernetes' TokenRequest) and accepts as bearer tokens.
//!
//! A token is a compact JWS signed with HMAC-SHA256 under a key every master derives from
//! the cluster CA's key, so any master checks what another issued. Its claims are
//! Kubernetes' (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the `kubernetes.io`
//! claim naming the namespace, the service account and the pod it is bound to, with uids).
//! Checking a token has two halves: [`TokenKey::verify`] here (signature, algorithm, issuer,
//! times, audience; no I/O), then the server confirms that the service account and the
//! bound pod still exist with the uids the token names, so that deleting either revokes
//! the token at once.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use navarch_model::authz::User;

/// The issuer of every token, and the audience the API itself accepts (Kubernetes'
/// `--service-account-issuer` and `--api-audiences` default to the same URL).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The shortest and the longest a requested token may live (Kubernetes refuses under ten
/// minutes; the longest is the kubelet's ask rounded up to a day).
pub const MIN_EXPIRATION_SECONDS: i64 = navarch_model::admission::MIN_TOKEN_SECONDS;
pub const MAX_EXPIRATION_SECONDS: i64 = 24 * 3600;
/// What a TokenRequest without `expirationSeconds` gets.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// How long past its `deletionTimestamp` a pod's tokens stay valid (Kubernetes gives the
/// same grace, so a terminating pod can still report).
const DELETED_POD_GRACE_SECONDS: i64 = 60;

/// `Extra` keys of the user a bound token authenticates as (Kubernetes' names).
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Why a presented token is not accepted. Only logged at debug level: the client gets a
/// plain 401, as from kube-apiserver.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("signature does not verify")]
    Signature,
    #[error("issued by {0:?}, not by this cluster")]
    Issuer(String),
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("audiences {0:?} are not accepted here")]
    Audience(Vec<String>),
    #[error("service account {0} is gone or was recreated")]
    ServiceAccountGone(String),
    #[error("pod {0} is gone, was recreated or was deleted")]
    PodGone(String),
}

/// A named object a token is bound to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

impl Claims {
    /// The user this token authenticates as, with the pod and node it is bound to as
    /// `extra` (what `kubectl auth whoami` shows inside a pod).
    pub fn user(&self) -> User {
        let k = &self.kubernetes;
        let mut u = User::service_account(&k.namespace, &k.serviceaccount.name);
        u.uid = k.serviceaccount.uid.clone();
        let mut extra = BTreeMap::new();
        if let Some(p) = &k.pod {
            extra.insert(EXTRA_POD_NAME.to_string(), vec![p.name.clone()]);
            extra.insert(EXTRA_POD_UID.to_string(), vec![p.uid.clone()]);
        }
        if let Some(n) = &k.node {
            extra.insert(EXTRA_NODE_NAME.to_string(), vec![n.name.clone()]);
        }
        extra.insert(
            EXTRA_CREDENTIAL_ID.to_string(),
            vec![format!("JTI={}", self.jti)],
        );
        u.extra = extra;
        u
    }

    /// Whether the service account and the pod the token names are still the ones it was
    /// issued for: `service_account` and `pod` are the stored objects (`None`: absent),
    /// `now` in Unix seconds.
    pub fn still_bound(
        &self,
        service_account: Option<&serde_json::Value>,
        pod: Option<&serde_json::Value>,
        now: i64,
    ) -> Result<(), TokenError> {
        let k = &self.kubernetes;
        let uid_of = |o: &serde_json::Value| o["metadata"]["uid"].as_str().map(str::to_string);
        if service_account.and_then(uid_of).as_deref() != Some(k.serviceaccount.uid.as_str()) {
            return Err(TokenError::ServiceAccountGone(format!(
                "{}/{}",
                k.namespace, k.serviceaccount.name
            )));
        }
        if let Some(bound) = &k.pod {
            let gone = || TokenError::PodGone(format!("{}/{}", k.namespace, bound.name));
            let pod = pod.ok_or_else(gone)?;
            if uid_of(pod).as_deref() != Some(bound.uid.as_str()) {
                return Err(gone());
            }
            if let Some(t) = pod["metadata"]["deletionTimestamp"].as_str() {
                let at = navarch_model::time::parse_rfc3339(t).unwrap_or(i64::MIN);
                if at.saturating_add(DELETED_POD_GRACE_SECONDS) < now {
                    return Err(gone());
                }
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    typ: String,
}

/// What a token is asked for: its service account and pod (with uids), audiences and
/// lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: ObjectRef,
    pub pod: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
}

/// The key tokens are signed and checked with.
pub struct TokenKey {
    key: hmac::Key,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("kid", &self.kid).finish()
    }
}

impl TokenKey {
    /// The key every master of a cluster derives from the CA's private key.
    pub fn from_ca_key(ca_key_pem: &str) -> TokenKey {
        let raw = crate::encryption::derive_from_ca_key(
            ca_key_pem,
            b"navarch service-account tokens",
            b"hs256 v1",
        );
        Self::from_bytes(&raw)
    }

    /// A fresh random key: for an API server no other server shares tokens with (tests).
    pub fn random() -> TokenKey {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .expect("the system random source works");
        Self::from_bytes(&raw)
    }

    fn from_bytes(raw: &[u8; 32]) -> TokenKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, raw);
        // The key id names the key without revealing it: a digest of a signature.
        let tag = hmac::sign(&key, b"navarch key id");
        let kid = URL_SAFE_NO_PAD.encode(&tag.as_ref()[..12]);
        TokenKey {
            key,
            kid,
            rng: SystemRandom::new(),
        }
    }

    /// Issues a token for `spec` at `now` (Unix seconds); returns it with its claims.
    pub fn issue(&self, spec: &TokenSpec, now: i64) -> (String, Claims) {
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .expect("the system random source works");
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: navarch_model::rbac::rule::service_account_user(
                &spec.namespace,
                &spec.service_account.name,
            ),
            aud: spec.audiences.clone(),
            exp: now + spec.expiration_seconds,
            iat: now,
            nbf: now,
            jti: URL_SAFE_NO_PAD.encode(jti),
            kubernetes: KubernetesClaim {
                namespace: spec.namespace.clone(),
                serviceaccount: spec.service_account.clone(),
                pod: spec.pod.clone(),
                node: spec.node.clone(),
            },
        };
        let header = Header {
            alg: "HS256".into(),
            kid: self.kid.clone(),
            typ: "JWT".into(),
        };
        let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let signing_input = format!(
            "{}.{}",
            enc(&serde_json::to_vec(&header).expect("a header serializes")),
            enc(&serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let sig = hmac::sign(&self.key, signing_input.as_bytes());
        (format!("{signing_input}.{}", enc(sig.as_ref())), claims)
    }

    /// Checks `token` at `now` (Unix seconds) for one of `audiences`: its form, algorithm,
    /// signature, issuer, validity window and audience. Returns its claims; the caller still
    /// has to confirm [`Claims::still_bound`].
    pub fn verify(&self, token: &str, audiences: &[&str], now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let dec = |v: &str| URL_SAFE_NO_PAD.decode(v).map_err(|_| TokenError::Malformed);
        let header: Header = serde_json::from_slice(&dec(h)?).map_err(|_| TokenError::Malformed)?;
        // Only the one algorithm this key signs with: never `none`, never another family.
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let signing_input_len = h.len() + 1 + p.len();
        hmac::verify(&self.key, &token.as_bytes()[..signing_input_len], &dec(s)?)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = serde_json::from_slice(&dec(p)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer(claims.iss));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        if !claims.aud.iter().any(|a| audiences.contains(&a.as_str())) {
            return Err(TokenError::Audience(claims.aud));
        }
        Ok(claims)
    }
}

/// Whether a bearer token is shaped like a JWT (three base64url parts), so that it is
/// checked as a service-account token rather than looked up in the token file.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> TokenSpec {
        TokenSpec {
            namespace: "apps".into(),
            service_account: ObjectRef {
                name: "default".into(),
                uid: "sa-1".into(),
            },
            pod: Some(ObjectRef {
                name: "web".into(),
                uid: "pod-1".into(),
            }),
            node: Some(ObjectRef {
                name: "n1".into(),
                uid: String::new(),
            }),
            audiences: vec![ISSUER.into()],
            expiration_seconds: 3600,
        }
    }

    #[test]
    fn issued_tokens_verify_and_name_their_user() {
        let key = TokenKey::random();
        let (token, claims) = key.issue(&spec(), 1_000);
        assert!(looks_like_jwt(&token));
        let got = key.verify(&token, &[ISSUER], 1_001).unwrap();
        assert_eq!(got, claims);
        assert_eq!(got.exp, 4_600);
        let u = got.user();
        assert_eq!(u.name, "system:serviceaccount:apps:default");
        assert_eq!(u.uid, "sa-1");
        assert!(u
            .groups
            .contains(&"system:serviceaccounts:apps".to_string()));
        assert_eq!(u.extra[EXTRA_POD_NAME], vec!["web"]);
        assert_eq!(u.extra[EXTRA_NODE_NAME], vec!["n1"]);
    }

    #[test]
    fn wrong_key_time_audience_and_forms_are_refused() {
        let key = TokenKey::random();
        let (token, _) = key.issue(&spec(), 1_000);
        assert_eq!(
            TokenKey::random().verify(&token, &[ISSUER], 1_001),
            Err(TokenError::Signature)
        );
        assert_eq!(
            key.verify(&token, &[ISSUER], 4_600),
            Err(TokenError::Expired)
        );
        assert_eq!(
            key.verify(&token, &[ISSUER], 999),
            Err(TokenError::NotYetValid)
        );
        assert!(matches!(
            key.verify(&token, &["vault"], 1_001),
            Err(TokenError::Audience(_))
        ));
        assert_eq!(
            key.verify("a.b", &[ISSUER], 1_001),
            Err(TokenError::Malformed)
        );
        // A changed claim breaks the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["kubernetes.io"]["namespace"] = json!("kube-system");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        assert_eq!(
            key.verify(&forged, &[ISSUER], 1_001),
            Err(TokenError::Signature)
        );
        // `alg: none` with no signature is refused before anything else.
        let none = format!(
            "{}.{}.x",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(
            key.verify(&none, &[ISSUER], 1_001),
            Err(TokenError::Algorithm("none".into()))
        );
    }

    #[test]
    fn masters_derive_the_same_key_from_the_ca_key() {
        let a = TokenKey::from_ca_key("-----BEGIN PRIVATE KEY-----\nabc\n");
        let b = TokenKey::from_ca_key("-----BEGIN PRIVATE KEY-----\nabc\n");
        let (token, _) = a.issue(&spec(), 1_000);
        assert!(b.verify(&token, &[ISSUER], 1_000).is_ok());
        let other = TokenKey::from_ca_key("-----BEGIN PRIVATE KEY-----\nxyz\n");
        assert!(other.verify(&token, &[ISSUER], 1_000).is_err());
    }

    #[test]
    fn deleting_the_service_account_or_pod_revokes() {
        let (_, claims) = TokenKey::random().issue(&spec(), 1_000);
        let sa = json!({"metadata": {"uid": "sa-1"}});
        let pod = json!({"metadata": {"uid": "pod-1"}});
        assert_eq!(claims.still_bound(Some(&sa), Some(&pod), 1_001), Ok(()));
        assert!(claims.still_bound(None, Some(&pod), 1_001).is_err());
        let recreated = json!({"metadata": {"uid": "sa-2"}});
        assert!(claims
            .still_bound(Some(&recreated), Some(&pod), 1_001)
            .is_err());
        assert!(claims.still_bound(Some(&sa), None, 1_001).is_err());
        let deleting =
            json!({"metadata": {"uid": "pod-1", "deletionTimestamp": "1970-01-01T00:16:40Z"}});
        assert_eq!(
            claims.still_bound(Some(&sa), Some(&deleting), 1_030),
            Ok(())
        );
        assert!(claims
            .still_bound(Some(&sa), Some(&deleting), 1_061)
            .is_err());
    }
}
