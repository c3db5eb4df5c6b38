//! A small client of navarch's API server for `navctl` and the benchmarks: HTTPS with the
//! cluster CA, credentials from a kubeconfig (client certificate or bearer token).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use navarch_net::pki::Identity;
use serde_json::Value;

/// An HTTPS client trusting the CA of `id` and presenting `id`'s certificate (an anonymous
/// identity presents none).
pub fn https_client(id: &Identity, timeout: Duration) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .add_root_certificate(reqwest::Certificate::from_pem(id.ca_pem.as_bytes())?);
    if !id.is_anonymous() {
        let pem = format!("{}\n{}", id.cert_pem, id.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

/// What a kubeconfig's current context says: where the server is and how to authenticate.
#[derive(Clone)]
pub struct Kubeconfig {
    pub server: String,
    pub namespace: String,
    /// Client certificate (or, when anonymous, only the CA).
    pub identity: Identity,
    pub token: Option<String>,
}

impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn named<'a>(list: &'a Value, name: &str, what: &str) -> Result<&'a Value> {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["name"].as_str() == Some(name)))
        .with_context(|| format!("kubeconfig has no {what} named {name:?}"))
}

fn data_or_file(obj: &Value, data: &str, file: &str, base: &Path) -> Result<Option<String>> {
    if let Some(d) = obj[data].as_str() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .with_context(|| format!("kubeconfig {data} is not base64"))?;
        return Ok(Some(
            String::from_utf8(raw).with_context(|| format!("kubeconfig {data} is not text"))?,
        ));
    }
    if let Some(f) = obj[file].as_str() {
        let p = base.join(f);
        return Ok(Some(
            std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?,
        ));
    }
    Ok(None)
}

impl Kubeconfig {
    /// Loads `path` (YAML or JSON) and resolves its current context.
    pub fn load(path: &Path) -> Result<Kubeconfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let doc: Value = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a kubeconfig (YAML)", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let current = doc["current-context"]
            .as_str()
            .filter(|c| !c.is_empty())
            .with_context(|| format!("{} has no current-context", path.display()))?;
        let ctx = &named(&doc["contexts"], current, "context")?["context"];
        let cluster_name = ctx["cluster"].as_str().context("context has no cluster")?;
        let user_name = ctx["user"].as_str().unwrap_or("");
        let cluster = &named(&doc["clusters"], cluster_name, "cluster")?["cluster"];
        let server = cluster["server"]
            .as_str()
            .context("cluster has no server")?
            .trim_end_matches('/')
            .to_string();
        let ca = data_or_file(
            cluster,
            "certificate-authority-data",
            "certificate-authority",
            base,
        )?
        .context("the cluster has no certificate-authority(-data): navctl needs the cluster CA")?;
        let user = if user_name.is_empty() {
            Value::Null
        } else {
            named(&doc["users"], user_name, "user")?["user"].clone()
        };
        let cert = data_or_file(&user, "client-certificate-data", "client-certificate", base)?;
        let key = data_or_file(&user, "client-key-data", "client-key", base)?;
        let identity = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Identity {
                cert_pem,
                key_pem,
                ca_pem: ca,
            },
            (None, None) => Identity::anonymous(ca),
            _ => bail!("user {user_name:?} has a client certificate without a key, or a key without a certificate"),
        };
        Ok(Kubeconfig {
            server,
            namespace: ctx["namespace"].as_str().unwrap_or("default").to_string(),
            identity,
            token: user["token"].as_str().map(str::to_string),
        })
    }

    /// An HTTPS client with these credentials.
    pub fn client(&self, timeout: Duration) -> Result<ApiClient> {
        Ok(ApiClient {
            http: https_client(&self.identity, timeout)?,
            server: self.server.clone(),
            token: self.token.clone(),
        })
    }
}

/// Requests against one API server.
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    pub server: String,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// A response: status code and JSON body (a `Status` for errors).
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The body, or the Status message as an error.
    pub fn into_result(self) -> Result<Value> {
        if self.ok() {
            return Ok(self.body);
        }
        let msg = self.body["message"].as_str().unwrap_or("no message");
        let reason = self.body["reason"].as_str().unwrap_or("Error");
        bail!("Error from server ({reason}): {msg}")
    }
}

impl ApiClient {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.server));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Reply> {
        let resp = rb.send().await.context("request to the API server")?;
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Reply { code, body })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn get_table(&self, path: &str) -> Result<Reply> {
        self.send(self.request(reqwest::Method::GET, path).header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ))
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Result<Reply> {
        self.send(
            self.request(reqwest::Method::PATCH, path)
                .header("content-type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> Result<Reply> {
        let mut rb = self.request(reqwest::Method::DELETE, path);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }
}
