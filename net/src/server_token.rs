//! The server token: what a master presents to join a running cluster as another master
//! (k3s's server token), distinct from the node bootstrap tokens of `net.join`.
//!
//! Format: `K10<64 hex>::server:<secret>`, where the hex is the SHA-256 of the cluster CA's
//! SubjectPublicKeyInfo (the pin a joiner checks the CA against, as kubeadm's
//! `--discovery-token-ca-cert-hash`) and the secret is 32 characters of `[a-z0-9]`. The
//! token grants the cluster CA (certificate and key) and a member certificate, nothing else;
//! every master that holds the CA holds the same secret (`server-secret` beside the CA).

use std::fmt;
use std::str::FromStr;

use crate::pki::{constant_time_eq, ClusterCa};

const PREFIX: &str = "K10";
const SEPARATOR: &str = "::server:";
/// Length of a generated secret.
pub const SERVER_SECRET_LEN: usize = 32;

/// A malformed server token. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerTokenError {
    /// Not `K10<64 hex>::server:<secret>`.
    #[error("a server token has the form K10<64 hex characters>::server:<secret>: {0}")]
    Format(&'static str),
    /// The secret is too short or has characters outside `[a-z0-9]`.
    #[error("the server token's secret must be 16 to 128 characters of [a-z0-9]")]
    Secret,
}

/// A server token: the CA pin and the shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerToken {
    ca_hash_hex: String,
    secret: String,
}

/// A new random secret: 32 characters of `[a-z0-9]`.
pub fn generate_server_secret() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..SERVER_SECRET_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_secret(secret: &str) -> Result<(), ServerTokenError> {
    let ok = (16..=128).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ServerTokenError::Secret)
    }
}

impl ServerToken {
    /// The token of `ca` with `secret`.
    pub fn new(ca: &ClusterCa, secret: &str) -> Result<ServerToken, ServerTokenError> {
        check_secret(secret.trim())?;
        let hash = ca.spki_sha256();
        Ok(ServerToken {
            ca_hash_hex: hash.trim_start_matches("sha256:").to_string(),
            secret: secret.trim().to_string(),
        })
    }

    /// The CA pin, `sha256:<64 hex>` (the form `net.join` and `ClusterCa::spki_sha256` use).
    pub fn ca_hash(&self) -> String {
        format!("sha256:{}", self.ca_hash_hex)
    }

    /// The secret: only for writing it beside the CA (0600) on a master that joined.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether `presented` is this token: same CA pin and same secret, compared without an
    /// early exit.
    pub fn accepts(&self, presented: &ServerToken) -> bool {
        let same_ca = constant_time_eq(
            self.ca_hash_hex.as_bytes(),
            presented.ca_hash_hex.as_bytes(),
        );
        let same_secret = constant_time_eq(self.secret.as_bytes(), presented.secret.as_bytes());
        same_ca & same_secret
    }
}

impl FromStr for ServerToken {
    type Err = ServerTokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or(ServerTokenError::Format("it does not start with K10"))?;
        let (hash, secret) = rest
            .split_once(SEPARATOR)
            .ok_or(ServerTokenError::Format("no ::server: separator"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServerTokenError::Format(
                "the CA hash is not 64 hex characters",
            ));
        }
        check_secret(secret)?;
        Ok(ServerToken {
            ca_hash_hex: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }
}

impl fmt::Display for ServerToken {
    /// The full token: only for writing it to its 0600 file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}{SEPARATOR}{}", self.ca_hash_hex, self.secret)
    }
}

impl fmt::Debug for ServerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerToken(K10{}::server:<redacted>)", self.ca_hash_hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ClusterCa::load_or_create(dir.path()).unwrap();
        let secret = generate_server_secret();
        let t = ServerToken::new(&ca, &secret).unwrap();
        let text = t.to_string();
        assert!(text.starts_with("K10"));
        let parsed: ServerToken = text.parse().unwrap();
        assert!(t.accepts(&parsed));
        assert_eq!(parsed.ca_hash(), ca.spki_sha256());
        assert!(
            !format!("{t:?}").contains(&secret),
            "Debug redacts the secret"
        );

        let other = ServerToken::new(&ca, &generate_server_secret()).unwrap();
        assert!(!t.accepts(&other), "another secret is refused");
        let wrong_ca: ServerToken = format!("K10{}::server:{secret}", "0".repeat(64))
            .parse()
            .unwrap();
        assert!(!t.accepts(&wrong_ca), "another CA pin is refused");
        assert!("abcdef.0123456789abcdef".parse::<ServerToken>().is_err());
        assert!("K10abc::server:x".parse::<ServerToken>().is_err());
        let upper = format!("K10{}::server:SECRET0123456789AB", "a".repeat(64));
        assert!(upper.parse::<ServerToken>().is_err());
    }
}
