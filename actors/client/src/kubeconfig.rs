//! Kubeconfig files: where the API server is and how to authenticate to it (the current
//! context's cluster, CA, client certificate and key, bearer token), as kubectl reads them.
//!
//! YAML or JSON; `*-data` fields are base64, file fields are relative to the kubeconfig's
//! directory. Secrets (the key, the token) never show in `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

/// Why a kubeconfig could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a kubeconfig (YAML or JSON): {0}")]
    Syntax(String),
    #[error("the kubeconfig has no current-context")]
    NoCurrentContext,
    #[error("the kubeconfig has no {what} named {name:?}")]
    Missing { what: &'static str, name: String },
    #[error("the kubeconfig's {0} is missing or not a string")]
    Field(&'static str),
    #[error("the kubeconfig's {field} is not base64 text")]
    Base64 { field: &'static str },
    #[error("cluster {cluster:?} has no certificate-authority(-data): navarch trusts only the cluster CA")]
    NoCertificateAuthority { cluster: String },
    #[error(
        "user {user:?} has a client certificate without a key, or a key without a certificate"
    )]
    HalfClientCertificate { user: String },
}

/// A secret string (a private key, a bearer token): use [`Secret::expose`] to read it; its
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A client certificate and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// What a kubeconfig's context says: where the server is and how to authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kubeconfig {
    /// The context used.
    pub context: String,
    /// The server's base URL, without a trailing `/` (e.g. `https://127.0.0.1:6443`).
    pub server: String,
    /// The context's namespace, else `default`.
    pub namespace: String,
    /// The cluster CA, PEM: the only root the client trusts.
    pub ca_pem: String,
    pub client_cert: Option<ClientCert>,
    pub token: Option<Secret>,
}

fn named<'a>(
    list: &'a Value,
    name: &str,
    what: &'static str,
) -> Result<&'a Value, KubeconfigError> {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["name"].as_str() == Some(name)))
        .ok_or_else(|| KubeconfigError::Missing {
            what,
            name: name.to_string(),
        })
}

fn read(path: &Path) -> Result<String, KubeconfigError> {
    std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The inline `data` field (base64) or the file named by `file` (relative to `base`).
fn data_or_file(
    obj: &Value,
    data: &'static str,
    file: &'static str,
    base: &Path,
) -> Result<Option<String>, KubeconfigError> {
    if let Some(d) = obj[data].as_str() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|_| KubeconfigError::Base64 { field: data })?;
        return String::from_utf8(raw)
            .map(Some)
            .map_err(|_| KubeconfigError::Base64 { field: data });
    }
    match obj[file].as_str() {
        Some(f) => read(&base.join(f)).map(Some),
        None => Ok(None),
    }
}

impl Kubeconfig {
    /// Loads `path` and resolves its current context.
    pub fn load(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
        Self::load_context(path, None)
    }

    /// Loads `path` and resolves `context` (the current context when `None`).
    pub fn load_context(path: &Path, context: Option<&str>) -> Result<Kubeconfig, KubeconfigError> {
        let text = read(path)?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")), context)
    }

    /// Reads a kubeconfig's text; file references are relative to `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        context: Option<&str>,
    ) -> Result<Kubeconfig, KubeconfigError> {
        // JSON is YAML, so one parser reads both.
        let doc: Value =
            serde_yaml::from_str(text).map_err(|e| KubeconfigError::Syntax(e.to_string()))?;
        let current = match context {
            Some(c) => c.to_string(),
            None => doc["current-context"]
                .as_str()
                .filter(|c| !c.is_empty())
                .ok_or(KubeconfigError::NoCurrentContext)?
                .to_string(),
        };
        let ctx = &named(&doc["contexts"], &current, "context")?["context"];
        let cluster_name = ctx["cluster"]
            .as_str()
            .ok_or(KubeconfigError::Field("context.cluster"))?;
        let user_name = ctx["user"].as_str().unwrap_or("");
        let cluster = &named(&doc["clusters"], cluster_name, "cluster")?["cluster"];
        let server = cluster["server"]
            .as_str()
            .ok_or(KubeconfigError::Field("cluster.server"))?
            .trim_end_matches('/')
            .to_string();
        let ca_pem = data_or_file(
            cluster,
            "certificate-authority-data",
            "certificate-authority",
            base,
        )?
        .ok_or_else(|| KubeconfigError::NoCertificateAuthority {
            cluster: cluster_name.to_string(),
        })?;
        let user = if user_name.is_empty() {
            Value::Null
        } else {
            named(&doc["users"], user_name, "user")?["user"].clone()
        };
        let cert = data_or_file(&user, "client-certificate-data", "client-certificate", base)?;
        let key = data_or_file(&user, "client-key-data", "client-key", base)?;
        let client_cert = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Some(ClientCert {
                cert_pem,
                key_pem: Secret(key_pem),
            }),
            (None, None) => None,
            _ => {
                return Err(KubeconfigError::HalfClientCertificate {
                    user: user_name.to_string(),
                })
            }
        };
        let token = match (user["token"].as_str(), user["tokenFile"].as_str()) {
            (Some(t), _) if !t.is_empty() => Some(Secret(t.to_string())),
            (_, Some(f)) => Some(Secret(read(&base.join(f))?.trim().to_string())),
            _ => None,
        };
        Ok(Kubeconfig {
            context: current,
            server,
            namespace: ctx["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
            ca_pem,
            client_cert,
            token,
        })
    }

    /// The same cluster, authenticated by `token` only (no client certificate): how tests
    /// and tools act as another user.
    pub fn with_token(&self, token: impl Into<String>) -> Kubeconfig {
        Kubeconfig {
            client_cert: None,
            token: Some(Secret(token.into())),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn yaml(user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: admin@navarch\n\
             clusters:\n- name: navarch\n  cluster:\n    server: https://127.0.0.1:6443/\n    certificate-authority-data: {}\n\
             contexts:\n- name: admin@navarch\n  context:\n    cluster: navarch\n    user: admin\n    namespace: shop\n\
             users:\n- name: admin\n  user:\n{user}",
            B64.encode("CA PEM")
        )
    }

    #[test]
    fn reads_inline_certificates_and_redacts_secrets() {
        let text = yaml(&format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            B64.encode("CERT PEM"),
            B64.encode("KEY PEM")
        ));
        let k = Kubeconfig::parse(&text, Path::new("."), None).unwrap();
        assert_eq!(k.server, "https://127.0.0.1:6443");
        assert_eq!(k.namespace, "shop");
        assert_eq!(k.ca_pem, "CA PEM");
        let cert = k.client_cert.as_ref().unwrap();
        assert_eq!(cert.cert_pem, "CERT PEM");
        assert_eq!(cert.key_pem.expose(), "KEY PEM");
        let debug = format!("{k:?}");
        assert!(!debug.contains("KEY PEM"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn reads_files_relative_to_the_kubeconfig_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "FILE CA").unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let text = r#"{"current-context": "c", "clusters": [{"name": "k", "cluster": {"server": "https://h:1", "certificate-authority": "ca.crt"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {"tokenFile": "token"}}]}"#;
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        let k = Kubeconfig::load(&path).unwrap();
        assert_eq!(k.ca_pem, "FILE CA");
        assert_eq!(k.namespace, "default");
        assert_eq!(k.token.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(k.client_cert.is_none());
        assert!(!format!("{k:?}").contains("s3cret"));
        let other = k.with_token("t2");
        assert_eq!(other.token.unwrap().expose(), "t2");
    }

    #[test]
    fn says_what_is_missing() {
        let half = yaml(&format!(
            "    client-certificate-data: {}\n",
            B64.encode("CERT")
        ));
        assert!(matches!(
            Kubeconfig::parse(&half, Path::new("."), None),
            Err(KubeconfigError::HalfClientCertificate { .. })
        ));
        assert!(matches!(
            Kubeconfig::parse(&yaml("    token: t\n"), Path::new("."), Some("nope")),
            Err(KubeconfigError::Missing {
                what: "context",
                ..
            })
        ));
        let no_ca = "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://h\ncontexts:\n- name: c\n  context:\n    cluster: k\n";
        let e = Kubeconfig::parse(no_ca, Path::new("."), None).unwrap_err();
        assert!(matches!(e, KubeconfigError::NoCertificateAuthority { .. }));
        assert!(e.to_string().contains("\"k\""), "{e}");
        assert!(matches!(
            Kubeconfig::parse("[1, 2", Path::new("."), None),
            Err(KubeconfigError::Syntax(_))
        ));
        assert!(matches!(
            Kubeconfig::load(Path::new("/nonexistent/kubeconfig")),
            Err(KubeconfigError::Read { .. })
        ));
    }
}
