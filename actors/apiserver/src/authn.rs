//! Authentication: who a request comes from. Client certificates signed by the cluster CA
//! (user = CN, groups = O), bearer tokens from a token file in kube-apiserver's format,
//! service-account tokens (`satoken`; the server then confirms what they are bound to), and
//! in-process components, which carry their identity by construction.

use std::collections::HashMap;
use std::path::Path;

use navarch_model::authz::{User, GROUP_AUTHENTICATED};
use navarch_model::ApiError;
use navarch_net::pki::PeerIdentity;

use crate::satoken::{self, Claims, TokenKey};

/// What a request presents to prove who sent it.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// An in-process component (a controller, the scheduler): the caller built the
    /// identity and is trusted with it.
    Component(User),
    /// What a request presented: the verified client certificate of its connection (HTTPS,
    /// or a node's QUIC link) and the `Authorization` header, if any (HTTPS only).
    Presented {
        client_cert: Option<PeerIdentity>,
        authorization: Option<String>,
        /// `Impersonate-*` headers: act as another user, if the authenticated one may.
        impersonate: Option<Impersonation>,
    },
}

/// Who a request asks to act as (Kubernetes' `Impersonate-User`, `Impersonate-Group`,
/// `Impersonate-Uid` headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Impersonation {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
}

impl Credentials {
    pub fn impersonation(&self) -> Option<&Impersonation> {
        match self {
            Credentials::Presented { impersonate, .. } => impersonate.as_ref(),
            Credentials::Component(_) => None,
        }
    }
}

/// Bearer tokens: `token,user,uid,"group1,group2"` per line, like kube-apiserver's
/// `--token-auth-file`. Tokens are kept only as SHA-256 digests.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    users: HashMap<[u8; 32], User>,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Splits one CSV line, honouring double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

impl TokenFile {
    pub fn parse(text: &str) -> Result<TokenFile, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f = csv_fields(line);
            if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
                return Err(format!(
                    "line {}: expected token,user,uid[,\"group1,group2\"]",
                    i + 1
                ));
            }
            let mut groups: Vec<String> = f
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            groups.push(GROUP_AUTHENTICATED.to_string());
            if users
                .insert(digest(&f[0]), User::new(f[1].clone(), groups))
                .is_some()
            {
                return Err(format!("line {}: duplicate token", i + 1));
            }
        }
        Ok(TokenFile { users })
    }

    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("read token file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))
    }

    pub fn lookup(&self, token: &str) -> Option<&User> {
        self.users.get(&digest(token))
    }
}

/// Who a request comes from, and, for a service-account token, its claims: the server
/// still has to confirm that what they are bound to exists ([`Claims::still_bound`]).
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user: User,
    pub token: Option<Claims>,
}

impl Authenticated {
    fn user(user: User) -> Self {
        Authenticated { user, token: None }
    }
}

/// Who sent a request: `Ok(None)` for an anonymous one, 401 for bad credentials (a bearer
/// token wins over a client certificate, as in kube-apiserver). A bearer token is looked up
/// in the token file, then, if it is shaped like a JWT, checked as a service-account token
/// for the API's own audience (kube-apiserver's authenticators in turn).
pub fn authenticate(
    creds: &Credentials,
    tokens: &TokenFile,
    sa_key: &TokenKey,
) -> Result<Option<Authenticated>, ApiError> {
    match creds {
        Credentials::Component(u) => Ok(Some(Authenticated::user(u.clone()))),
        Credentials::Presented {
            client_cert,
            authorization,
            ..
        } => {
            if let Some(value) = authorization {
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .map(str::trim)
                    .ok_or_else(ApiError::unauthorized)?;
                if let Some(u) = tokens.lookup(token) {
                    return Ok(Some(Authenticated::user(u.clone())));
                }
                if !satoken::looks_like_jwt(token) {
                    return Err(ApiError::unauthorized());
                }
                let now = crate::time::unix_now();
                return match sa_key.verify(token, &[satoken::ISSUER], now) {
                    Ok(claims) => Ok(Some(Authenticated {
                        user: claims.user(),
                        token: Some(claims),
                    })),
                    Err(e) => {
                        tracing::debug!(error = %e, "service-account token refused");
                        Err(ApiError::unauthorized())
                    }
                };
            }
            if let Some(id) = client_cert {
                let mut groups = id.organizations.clone();
                groups.push(GROUP_AUTHENTICATED.to_string());
                return Ok(Some(Authenticated::user(User::new(
                    id.common_name.clone(),
                    groups,
                ))));
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_give_users_and_groups() {
        let tf = TokenFile::parse(
            "# comment\nsecret1,alice,1,\"navarch:viewers,dev\"\nsecret2,system:node:n1,2,system:nodes\n",
        )
        .unwrap();
        let a = tf.lookup("secret1").unwrap();
        assert_eq!(a.name, "alice");
        assert_eq!(
            a.groups,
            vec!["navarch:viewers", "dev", GROUP_AUTHENTICATED]
        );
        assert_eq!(tf.lookup("secret2").unwrap().node_name(), Some("n1"));
        assert!(tf.lookup("nope").is_none());
        assert!(TokenFile::parse("onlytoken\n").is_err());
        assert!(TokenFile::parse("t,a,1\nt,b,2\n").is_err());
    }

    #[test]
    fn token_file_tokens_shaped_like_jwts_are_still_the_files() {
        let tf = TokenFile::parse("aaaa.bbbb.cccc,ci,1,dev\n").unwrap();
        let key = TokenKey::random();
        let creds = |t: &str| Credentials::Presented {
            client_cert: None,
            authorization: Some(format!("Bearer {t}")),
            impersonate: None,
        };
        let a = authenticate(&creds("aaaa.bbbb.cccc"), &tf, &key)
            .unwrap()
            .unwrap();
        assert_eq!(a.user.name, "ci");
        assert!(a.token.is_none());
        // Any other JWT-shaped token is checked as a service-account token: not ours.
        assert!(authenticate(&creds("aaaa.bbbb.dddd"), &tf, &key).is_err());
        assert!(authenticate(&creds("plain"), &tf, &key).is_err());
    }
}
