//! [`HttpsClient`]: the [`Client`] over the Kubernetes REST API, HTTPS with rustls (TLS 1.3
//! only, trusting only the cluster CA, presenting a client certificate or a bearer token).
//!
//! Every request but a watch has a deadline ([`HttpsConfig::request_timeout`]). With several
//! server URLs, a read that fails in transport is tried on the next server, a write only
//! when it was never sent (the connection or the TLS handshake failed), since a write that
//! may have reached a server must not be repeated blindly; the server that answered last is
//! tried first next time.

mod decode;
mod url;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
pub use reqwest::Method;
use reqwest::Url;
use serde_json::{json, Value};

use crate::kubeconfig::{ClientCert, Kubeconfig, Secret};
use crate::{Client, ClientError, ObjectList, Result, Subresource, WatchStream, Written};
pub use decode::WatchDecoder;

/// kubectl's `Accept` for server-side tables.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// How to reach the API.
#[derive(Clone, Debug)]
pub struct HttpsConfig {
    /// Base URLs of the API servers, tried in order (e.g. `https://127.0.0.1:6443`).
    pub servers: Vec<String>,
    /// The cluster CA, PEM: the only root trusted.
    pub ca_pem: String,
    pub client_cert: Option<ClientCert>,
    pub token: Option<Secret>,
    /// The deadline of every request but watches, from sending to the last byte.
    pub request_timeout: Duration,
    /// The deadline of a connection (TCP and TLS), watches included.
    pub connect_timeout: Duration,
    pub user_agent: String,
}

impl HttpsConfig {
    /// The kubeconfig's server and credentials, with default timeouts (30 s, 5 s).
    pub fn from_kubeconfig(k: &Kubeconfig) -> HttpsConfig {
        HttpsConfig {
            servers: vec![k.server.clone()],
            ca_pem: k.ca_pem.clone(),
            client_cert: k.client_cert.clone(),
            token: k.token.clone(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            user_agent: format!("navarch-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Why an [`HttpsClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no API server URL given")]
    NoServer,
    #[error("invalid API server URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// An answer as it came, for [`HttpsClient::raw`].
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub warnings: Vec<String>,
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON if the status is a success, else the error it carries.
    pub fn json(&self) -> Result<Value> {
        if !(200..300).contains(&self.status) {
            return Err(ClientError::Api(decode::api_error(self.status, &self.body)));
        }
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// The Kubernetes API over HTTPS. Cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct HttpsClient {
    http: reqwest::Client,
    servers: Vec<Url>,
    /// Index of the server to try first.
    preferred: std::sync::Arc<AtomicUsize>,
    token: Option<Secret>,
    request_timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field(
                "servers",
                &self.servers.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Whether a failed attempt may go to the next server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Any transport failure: the request changes nothing.
    Read,
    /// Only if it never left: a write that may have arrived must not be sent twice.
    Write,
}

/// One request, re-buildable for each server.
struct Call<'a> {
    method: Method,
    url: &'a (dyn Fn(&Url) -> Url + Sync),
    body: Option<(&'static str, Bytes)>,
    accept: &'static str,
    retry: Retry,
    timeout: Option<Duration>,
}

/// A reqwest error and its causes, as one line.
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

fn warnings(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(decode::warning_text)
        .collect()
}

fn json_body(v: &Value) -> Option<(&'static str, Bytes)> {
    Some(("application/json", Bytes::from(v.to_string())))
}

impl HttpsClient {
    pub fn new(config: HttpsConfig) -> Result<HttpsClient, BuildError> {
        if config.servers.is_empty() {
            return Err(BuildError::NoServer);
        }
        let servers = config
            .servers
            .iter()
            .map(|s| {
                let url = Url::parse(s).map_err(|e| BuildError::Url {
                    url: s.clone(),
                    message: e.to_string(),
                })?;
                if url.cannot_be_a_base() || url.scheme() != "https" {
                    return Err(BuildError::Url {
                        url: s.clone(),
                        message: "an https:// URL is required".into(),
                    });
                }
                Ok(url)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ca = reqwest::Certificate::from_pem(config.ca_pem.as_bytes())
            .map_err(|e| BuildError::Tls(format!("the cluster CA: {}", describe(&e))))?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_3)
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .connect_timeout(config.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(config.user_agent.clone());
        if let Some(c) = &config.client_cert {
            let pem = format!("{}\n{}", c.cert_pem, c.key_pem.expose());
            let id = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
                BuildError::Tls(format!("the client certificate: {}", describe(&e)))
            })?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| BuildError::Tls(describe(&e)))?;
        Ok(HttpsClient {
            http,
            servers,
            preferred: std::sync::Arc::new(AtomicUsize::new(0)),
            token: config.token,
            request_timeout: config.request_timeout,
        })
    }

    /// A client for the kubeconfig's server and credentials, with default timeouts.
    pub fn from_kubeconfig(k: &Kubeconfig) -> Result<HttpsClient, BuildError> {
        Self::new(HttpsConfig::from_kubeconfig(k))
    }

    /// The servers, in configuration order.
    pub fn servers(&self) -> &[Url] {
        &self.servers
    }

    /// Sends `call` to the preferred server, then (when allowed) to the others in turn.
    async fn send(&self, call: Call<'_>) -> Result<reqwest::Response> {
        let n = self.servers.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut last = None;
        for i in 0..n {
            let idx = (first + i) % n;
            let server = &self.servers[idx];
            let mut rb = self
                .http
                .request(call.method.clone(), (call.url)(server))
                .header("accept", call.accept);
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t.expose());
            }
            if let Some((ct, body)) = &call.body {
                rb = rb.header("content-type", *ct).body(body.clone());
            }
            if let Some(t) = call.timeout {
                rb = rb.timeout(t);
            }
            match rb.send().await {
                Ok(resp) => {
                    if idx != first {
                        self.preferred.store(idx, Ordering::Relaxed);
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    let never_sent = e.is_connect();
                    let err = format!("{} {server}: {}", call.method, describe(&e));
                    tracing::debug!(server = %server, error = %err, never_sent, "api request failed");
                    last = Some(err);
                    if !(call.retry == Retry::Read || never_sent) {
                        break;
                    }
                }
            }
        }
        Err(ClientError::Transport(last.unwrap_or_default()))
    }

    /// The whole answer, with its deadline already running (set on the request).
    async fn read(resp: reqwest::Response) -> Result<RawResponse> {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let warnings = warnings(&resp);
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(format!("reading the answer: {}", describe(&e))))?;
        Ok(RawResponse {
            status,
            content_type,
            warnings,
            body,
        })
    }

    async fn json(&self, call: Call<'_>) -> Result<(Value, Vec<String>)> {
        let raw = Self::read(self.send(call).await?).await?;
        let v = raw.json()?;
        Ok((v, raw.warnings))
    }

    fn call<'a>(
        &self,
        method: Method,
        url: &'a (dyn Fn(&Url) -> Url + Sync),
        body: Option<(&'static str, Bytes)>,
    ) -> Call<'a> {
        let retry = if method == Method::GET {
            Retry::Read
        } else {
            Retry::Write
        };
        Call {
            method,
            url,
            body,
            accept: "application/json",
            retry,
            timeout: Some(self.request_timeout),
        }
    }

    /// A GET answered as a server-side Table (kubectl's `Accept`): one object when `name`
    /// is given, else a list.
    pub async fn get_table(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Value> {
        let q = opts.to_query();
        let url = |b: &Url| {
            let u = match name {
                Some(n) => url::object(b, kind, namespace, n, None),
                None => url::collection(b, kind, namespace),
            };
            url::with_query(u, &q)
        };
        let mut call = self.call(Method::GET, &url, None);
        call.accept = TABLE_ACCEPT;
        Ok(self.json(call).await?.0)
    }

    /// Any request, answered as it comes (status, headers, bytes): discovery, `/version`,
    /// logs, or a path this crate has no method for. `path_and_query` starts at the
    /// server's root (`/api/v1/...`). GETs are tried on every server; the deadline is the
    /// request timeout.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<RawResponse> {
        let url = |b: &Url| url::raw(b, path_and_query);
        let mut call = self.call(method, &url, body);
        call.accept = "application/json, */*";
        Self::read(self.send(call).await?).await
    }

    async fn watch_stream(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        opts: &WatchOptions,
    ) -> Result<WatchStream> {
        let q = opts.to_query();
        let url = |b: &Url| url::with_query(url::collection(b, kind, namespace), &q);
        let mut call = self.call(Method::GET, &url, None);
        call.timeout = None;
        let resp = self.send(call).await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = tokio::time::timeout(self.request_timeout, resp.bytes())
                .await
                .map_err(|_| {
                    ClientError::Transport("reading a refused watch's answer timed out".into())
                })?
                .map_err(|e| ClientError::Transport(describe(&e)))?;
            return Err(ClientError::Api(decode::api_error(status, &body)));
        }
        Ok(decode_watch(resp.bytes_stream()))
    }
}

/// A watch body as events: ends when the server ends the body, with `Transport` if the
/// connection broke (mid-event or not).
fn decode_watch<S>(body: S) -> WatchStream
where
    S: futures::Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
{
    struct State<S> {
        body: std::pin::Pin<Box<S>>,
        decoder: WatchDecoder,
        ready: std::collections::VecDeque<Result<navarch_model::watch::WatchEvent>>,
        done: bool,
    }
    let state = State {
        body: Box::pin(body),
        decoder: WatchDecoder::default(),
        ready: Default::default(),
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.ready.pop_front() {
                if item.is_err() {
                    // Nothing after an error: the stream's position is lost.
                    s.done = true;
                    s.ready.clear();
                }
                return Some((item, s));
            }
            if s.done {
                return None;
            }
            match s.body.next().await {
                Some(Ok(chunk)) => s.ready.extend(s.decoder.push(&chunk)),
                Some(Err(e)) => {
                    s.ready.push_back(Err(ClientError::Transport(format!(
                        "the watch broke: {}",
                        describe(&e)
                    ))));
                }
                None => {
                    s.done = true;
                    s.ready.extend(s.decoder.finish());
                }
            }
        }
    })
    .boxed()
}

fn sub_str(s: Option<Subresource>) -> Option<&'static str> {
    s.map(Subresource::as_str)
}

impl Client for HttpsClient {
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a GetOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let q = opts.to_query();
            let url = |b: &Url| url::with_query(url::object(b, kind, namespace, name, None), &q);
            Ok(self.json(self.call(Method::GET, &url, None)).await?.0)
        }
        .boxed()
    }

    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        async move {
            let q = opts.to_query();
            let url = |b: &Url| url::with_query(url::collection(b, kind, namespace), &q);
            let (v, _) = self.json(self.call(Method::GET, &url, None)).await?;
            decode::object_list(v)
        }
        .boxed()
    }

    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        self.watch_stream(kind, namespace, opts).boxed()
    }

    fn create<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        async move {
            let ns = namespace
                .map(str::to_string)
                .or_else(|| object["metadata"]["namespace"].as_str().map(str::to_string));
            let q = opts.to_query();
            let url = |b: &Url| url::with_query(url::collection(b, kind, ns.as_deref()), &q);
            let (object, warnings) = self
                .json(self.call(Method::POST, &url, json_body(&object)))
                .await?;
            Ok(Written { object, warnings })
        }
        .boxed()
    }

    fn update<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        async move {
            let q = opts.to_query();
            let url = |b: &Url| {
                url::with_query(
                    url::object(b, kind, namespace, name, sub_str(subresource)),
                    &q,
                )
            };
            let (object, warnings) = self
                .json(self.call(Method::PUT, &url, json_body(&object)))
                .await?;
            Ok(Written { object, warnings })
        }
        .boxed()
    }

    fn patch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        patch: Patch,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        async move {
            let q = opts.to_query();
            let url = |b: &Url| {
                url::with_query(
                    url::object(b, kind, namespace, name, sub_str(subresource)),
                    &q,
                )
            };
            let body = Some((patch.ty.content_type(), Bytes::from(patch.body.to_string())));
            let (object, warnings) = self.json(self.call(Method::PATCH, &url, body)).await?;
            Ok(Written { object, warnings })
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let url = |b: &Url| url::object(b, kind, namespace, name, None);
            let body = json_body(&opts.to_json());
            Ok(self.json(self.call(Method::DELETE, &url, body)).await?.0)
        }
        .boxed()
    }

    fn delete_collection<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        list: &'a ListOptions,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        async move {
            let q = list.to_query();
            let url = |b: &Url| url::with_query(url::collection(b, kind, namespace), &q);
            let body = json_body(&opts.to_json());
            let (v, _) = self.json(self.call(Method::DELETE, &url, body)).await?;
            decode::object_list(v)
        }
        .boxed()
    }

    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let url = |b: &Url| url::object(b, kind, Some(namespace), name, Some("scale"));
            Ok(self.json(self.call(Method::GET, &url, None)).await?.0)
        }
        .boxed()
    }

    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let pods = crate::kind("", "v1", "pods");
            let url = |b: &Url| url::object(b, pods, Some(namespace), pod, Some("binding"));
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            self.json(self.call(Method::POST, &url, json_body(&binding)))
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let sa = crate::kind("", "v1", "serviceaccounts");
            let url = |b: &Url| url::object(b, sa, Some(namespace), service_account, Some("token"));
            Ok(self
                .json(self.call(Method::POST, &url, json_body(&request)))
                .await?
                .0)
        }
        .boxed()
    }
}
