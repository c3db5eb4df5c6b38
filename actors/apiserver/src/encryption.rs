//! Encryption at rest of Secrets, as kube-apiserver's `aesgcm` provider: every Secret is
//! stored as `k8s:enc:aesgcm:v1:<key name>:` followed by a random 96-bit nonce and the
//! AES-256-GCM sealed JSON, with the object's store key as associated data (a ciphertext
//! moved to another key does not open). The store, its history, snapshots and backups only
//! ever hold the sealed bytes; the API server opens them when it reads.
//!
//! The key: a master derives it from the cluster CA's private key (HKDF-SHA256), which every
//! master holds (a joining master receives it), so all of them read what any of them wrote,
//! and there is no second secret to hand out. Rotating it means rotating the CA.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The kinds (store kind names) kept encrypted.
const ENCRYPTED_KINDS: &[&str] = &["secrets"];

/// Whether objects of `store_kind` are sealed in the store.
pub fn is_sealed(store_kind: &str) -> bool {
    ENCRYPTED_KINDS.contains(&store_kind)
}

/// The prefix of a sealed value, before the key name.
const PREFIX: &str = "k8s:enc:aesgcm:v1:";

/// The name of the CA-derived key, written into every sealed value.
const DERIVED_KEY_NAME: &str = "navarch-ca-hkdf";

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("the value is not sealed by this API server's aesgcm provider")]
    NotSealed,
    #[error("the value was sealed with key {0:?}, not this server's")]
    OtherKey(String),
    #[error("the value does not open with this server's key (altered, or another cluster's)")]
    Unopenable,
}

/// The key Secrets are sealed with. Its `Debug` never shows the key.
pub struct SecretsKey {
    name: String,
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("name", &self.name)
            .finish()
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// A 32-byte key every master derives alike from the CA's private key (its PEM): HKDF-SHA256
/// with a `salt` and an `info` naming what the key is for, so that keys for different uses
/// differ.
pub(crate) fn derive_from_ca_key(ca_key_pem: &str, salt: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ca_key_pem.as_bytes());
    let mut raw = [0u8; 32];
    prk.expand(&[info], Len32)
        .and_then(|okm| okm.fill(&mut raw))
        .expect("32 bytes are a valid HKDF-SHA256 output length");
    raw
}

impl SecretsKey {
    /// The key every master of a cluster derives from the CA's private key (its PEM).
    pub fn from_ca_key(ca_key_pem: &str) -> SecretsKey {
        let raw = derive_from_ca_key(ca_key_pem, b"navarch secrets at rest", b"aes-256-gcm v1");
        Self::from_bytes(DERIVED_KEY_NAME, &raw)
    }

    /// A fresh random key: for an API server whose store no other server reads (tests).
    pub fn random() -> SecretsKey {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .expect("the system random source works");
        Self::from_bytes("random", &raw)
    }

    fn from_bytes(name: &str, raw: &[u8; 32]) -> SecretsKey {
        let key = UnboundKey::new(&AES_256_GCM, raw).expect("a 32-byte AES-256 key");
        SecretsKey {
            name: name.to_string(),
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    fn header(&self) -> String {
        format!("{PREFIX}{}:", self.name)
    }

    /// Seals `plain` for the object stored under `aad` (its store key).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system random source works");
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .expect("AES-GCM seals any length a store value can have");
        let mut out = self.header().into_bytes();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value [`seal`](Self::seal) made for the same `aad`.
    pub fn open(&self, stored: &[u8], aad: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let rest = stored
            .strip_prefix(PREFIX.as_bytes())
            .ok_or(EncryptionError::NotSealed)?;
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or(EncryptionError::NotSealed)?;
        let name = String::from_utf8_lossy(&rest[..colon]);
        if name != self.name {
            return Err(EncryptionError::OtherKey(name.into_owned()));
        }
        let body = &rest[colon + 1..];
        if body.len() < NONCE_LEN {
            return Err(EncryptionError::Unopenable);
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| EncryptionError::Unopenable)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| EncryptionError::Unopenable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nnot a real key, only bytes to derive from\n-----END PRIVATE KEY-----\n";

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_object() {
        let k = SecretsKey::from_ca_key(PEM);
        let plain = br#"{"data":{"password":"aHVudGVyMg=="}}"#;
        let sealed = k.seal(plain, b"secrets/default/db");
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:navarch-ca-hkdf:"));
        assert!(
            !sealed.windows(8).any(|w| w == b"password"),
            "nothing of the plaintext shows"
        );
        assert_eq!(k.open(&sealed, b"secrets/default/db").unwrap(), plain);
        // Another master of the same cluster derives the same key.
        let same = SecretsKey::from_ca_key(PEM);
        assert_eq!(same.open(&sealed, b"secrets/default/db").unwrap(), plain);
        // Each seal has its own nonce.
        assert_ne!(k.seal(plain, b"secrets/default/db"), sealed);

        assert!(matches!(
            k.open(&sealed, b"secrets/default/other"),
            Err(EncryptionError::Unopenable)
        ));
        let other = SecretsKey::from_ca_key("another cluster's key");
        assert!(matches!(
            other.open(&sealed, b"secrets/default/db"),
            Err(EncryptionError::Unopenable)
        ));
        assert!(matches!(
            SecretsKey::random().open(&sealed, b"secrets/default/db"),
            Err(EncryptionError::OtherKey(_))
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            k.open(&flipped, b"secrets/default/db"),
            Err(EncryptionError::Unopenable)
        ));
        assert!(matches!(
            k.open(plain, b"secrets/default/db"),
            Err(EncryptionError::NotSealed)
        ));
        assert_eq!(
            format!("{k:?}"),
            r#"SecretsKey { name: "navarch-ca-hkdf" }"#
        );
    }
}
