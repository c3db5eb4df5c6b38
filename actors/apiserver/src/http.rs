//! The HTTPS layer of the API server (actix-web): it only turns HTTP requests into pipeline
//! requests and replies into HTTP responses. What it owns is what only HTTP has: TLS and the
//! client certificate of a connection, correlation-id headers, the in-flight limits, reading
//! bodies (bounded in size and time, and only after the request's head is authorized),
//! content negotiation (JSON, Tables, Kubernetes' protobuf) and chunked watch streams.
//!
//! - `route`: the path, decoded once, to a request head's target and verb;
//! - `tls`: the serving certificate, the rustls configuration and the admin kubeconfig;
//! - `ws`: `pods/exec` over a WebSocket (kubectl's `v5.channel.k8s.io`).

pub mod route;
pub mod tls;
pub mod ws;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use navarch_model::kinds::Kind;
use navarch_model::watch::{EventType, WatchEvent};
use navarch_model::{protobuf, table, ApiError};
use navarch_net::pki::PeerIdentity;
use navarch_net::trace::CorrelationId;
use serde_json::{json, Value};

use crate::authn::Credentials;
use crate::request::{Body, Origin, Reply, RequestHead, Transport};
use crate::time::unix_now;
use crate::ApiServer;

pub use crate::request::MAX_BODY;
/// The header that carries a request's correlation id, in and out.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The limits of the HTTPS layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Read-only requests in flight (watches and other long-running requests excluded), like
    /// kube-apiserver's `--max-requests-inflight`: beyond it, 429.
    pub max_inflight: usize,
    /// Mutating requests in flight (`--max-mutating-requests-inflight`), apart from reads.
    pub max_mutating_inflight: usize,
    /// How long a request body may take to arrive in full.
    pub body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_inflight: 400,
            max_mutating_inflight: 200,
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// What the handler shares.
#[derive(Clone)]
pub struct HttpState {
    api: ApiServer,
    readonly: Arc<tokio::sync::Semaphore>,
    mutating: Arc<tokio::sync::Semaphore>,
    body_timeout: Duration,
}

impl HttpState {
    pub fn new(api: ApiServer, limits: HttpLimits) -> Self {
        HttpState {
            api,
            readonly: Arc::new(tokio::sync::Semaphore::new(limits.max_inflight.max(1))),
            mutating: Arc::new(tokio::sync::Semaphore::new(
                limits.max_mutating_inflight.max(1),
            )),
            body_timeout: limits.body_timeout,
        }
    }
}

/// Mounts the API server: one handler for every path, so that what is authorized is what is
/// routed.
pub fn configure(cfg: &mut web::ServiceConfig, state: HttpState) {
    cfg.app_data(web::Data::new(state))
        .default_service(web::to(dispatch));
}

/// The verified client certificate of a TLS connection (set when the connection opens).
#[derive(Clone, Debug)]
struct ClientCert(PeerIdentity);

/// `HttpServer::on_connect` hook: records the client certificate rustls verified against the
/// cluster CA, if the client presented one.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = conn.downcast_ref::<Tls>() {
        let (_, session) = tls.get_ref();
        if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
            match PeerIdentity::from_der(leaf.as_ref()) {
                Ok(id) => {
                    ext.insert(ClientCert(id));
                }
                Err(e) => tracing::warn!(error = %e, "unreadable client certificate"),
            }
        }
    }
}

/// The correlation id of a request: the caller's `x-correlation-id` if valid, else a new one.
pub fn correlation_of(req: &HttpRequest) -> CorrelationId {
    req.headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(CorrelationId::new_random)
}

/// Middleware: gives every request a correlation id (the caller's, or a new one), keeps it in
/// the request's extensions, and returns it in the `x-correlation-id` header.
pub async fn correlation(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = correlation_of(req.request());
    req.extensions_mut().insert(id);
    let mut res = next.call(req).await?;
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        res.headers_mut()
            .insert(HeaderName::from_static(CORRELATION_HEADER), v);
    }
    Ok(res)
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn error_response(e: &ApiError) -> HttpResponse {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = HttpResponse::build(code);
    if let Some(s) = e.retry_after() {
        r.insert_header((header::RETRY_AFTER, s.to_string()));
    }
    r.content_type("application/json")
        .body(e.to_status().to_string())
}

fn with_warnings(code: u16, warnings: &[String]) -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK));
    for w in warnings {
        // RFC 7234's quoted string, as kube-apiserver writes it (Go's strconv.Quote).
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!("299 - \"{quoted}\"");
        if let Ok(h) = HeaderValue::from_str(&text) {
            r.append_header((header::WARNING, h));
        }
    }
    r
}

/// How a reply is encoded, from the client's first (preferred) `Accept` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    /// kubectl's `application/json;as=Table;...`: objects as rows.
    Table,
    /// `application/vnd.kubernetes.protobuf`, for the kinds it can carry (JSON otherwise).
    Protobuf,
}

fn negotiate(accept: &str) -> Encoding {
    let first = accept.split(',').next().unwrap_or("");
    if first.contains("as=Table") {
        Encoding::Table
    } else if first.trim().starts_with(protobuf::MEDIA_TYPE) {
        Encoding::Protobuf
    } else {
        Encoding::Json
    }
}

/// `object` as protobuf, if its kind can be carried that way.
fn as_protobuf(object: &Value) -> Option<Vec<u8>> {
    let (v, k) = (object["apiVersion"].as_str()?, object["kind"].as_str()?);
    if !protobuf::is_encodable(v, k) {
        return None;
    }
    match protobuf::encode(object) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, kind = k, "protobuf encoding failed; answering JSON");
            None
        }
    }
}

/// An object's body in the negotiated encoding.
fn body_of(
    builder: &mut actix_web::HttpResponseBuilder,
    object: &Value,
    encoding: Encoding,
) -> HttpResponse {
    if encoding == Encoding::Protobuf {
        if let Some(bytes) = as_protobuf(object) {
            return builder.content_type(protobuf::MEDIA_TYPE).body(bytes);
        }
    }
    builder
        .content_type("application/json")
        .body(object.to_string())
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    match serve(&req, payload, &state).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// The `Impersonate-*` headers, if any.
fn impersonation(req: &HttpRequest) -> Option<crate::authn::Impersonation> {
    let values = |name: &str| -> Vec<String> {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    if user.is_none() && groups.is_empty() && uid.is_none() {
        return None;
    }
    Some(crate::authn::Impersonation {
        user: user.unwrap_or_default(),
        groups,
        uid,
    })
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
}

async fn serve(
    req: &HttpRequest,
    payload: web::Payload,
    state: &HttpState,
) -> Result<HttpResponse, ApiError> {
    let api = &state.api;
    let creds = Credentials::Presented {
        client_cert: req.conn_data::<ClientCert>().map(|c| c.0.clone()),
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        impersonate: impersonation(req),
    };
    let origin = Origin {
        transport: Transport::Https,
        correlation: req.extensions().get::<CorrelationId>().copied(),
        source_ip: req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        user_agent: header_str(req, header::USER_AGENT).to_string(),
        path: req.path().to_string(),
        accept: header_str(req, header::ACCEPT).to_string(),
        upgrade: ws::negotiate(req),
    };
    let method = req.method().as_str();
    let extra = req
        .headers()
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-extra-"));
    let parsed = route::segments(req.path()).and_then(|segs| {
        if extra {
            return Err(ApiError::bad_request(
                "Impersonate-Extra-* headers are not supported by navarch",
            ));
        }
        let target = route::target(&segs);
        let query = query_pairs(req)?;
        let verb = route::verb(method, &target, &query)?;
        Ok(RequestHead {
            verb,
            target,
            query,
            origin: origin.clone(),
        })
    });
    let head = match parsed {
        Ok(h) => h,
        Err(e) => {
            // Turned away before it named anything: audited as a non-resource request.
            let head = RequestHead {
                verb: "unknown",
                target: crate::request::Target::NonResource {
                    path: req.path().to_string(),
                },
                query: Vec::new(),
                origin,
            };
            return Err(api.reject(&creds, &head, e));
        }
    };
    // The in-flight limits, by what the parsed request is (only real watches, followed logs
    // and exec are long-running).
    let _permit = if head.is_long_running() {
        None
    } else {
        let sem = if head.is_mutating() {
            &state.mutating
        } else {
            &state.readonly
        };
        match sem.clone().try_acquire_owned() {
            Ok(p) => Some((p, api.in_flight(head.is_mutating()))),
            Err(_) => {
                let e = ApiError::too_many_requests(
                    "too many requests in flight, please try again later",
                    1,
                );
                return Err(api.reject(&creds, &head, e));
            }
        }
    };
    let takes_body = matches!(
        head.verb,
        "create" | "update" | "patch" | "delete" | "deletecollection" | "post" | "put"
    ) && !matches!(
        &head.target,
        crate::request::Target::Resource { subresource: Some(s), .. } if s == "exec"
    );
    let accept = head.origin.accept.clone();
    // Authorization on the head alone: nothing of the body is read for a refused request.
    let authorized = api.authorize(&creds, head).await?;
    let upgrade = authorized.head().origin.upgrade;
    let mut payload = Some(payload);
    let body = if takes_body {
        let payload = payload.take().expect("the payload is read once");
        match read_body(payload, state.body_timeout).await {
            Ok(bytes) => Body::Encoded {
                content_type: header_str(req, header::CONTENT_TYPE).to_string(),
                bytes,
            },
            Err(e) => return Err(api.refuse(authorized, e)),
        }
    } else {
        Body::Empty
    };
    let reply = api.execute(authorized, body).await?;
    if let Reply::Exec(session) = reply {
        // `execute` answers an exec only for a WebSocket upgrade.
        let (Some(protocol), Some(payload)) = (upgrade, payload) else {
            return Err(ApiError::internal("an exec without its upgrade"));
        };
        return Ok(ws::respond(req, payload, session, protocol));
    }
    Ok(respond(reply, negotiate(&accept)))
}

/// The body of a request, refused past [`MAX_BODY`] (413) or when it does not arrive in
/// full within `timeout` (408).
async fn read_body(mut payload: web::Payload, timeout: Duration) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = BytesMut::new();
    loop {
        let next = match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(n) => n,
            Err(_) => {
                return Err(ApiError::new(
                    408,
                    "Timeout",
                    format!(
                        "the request body did not arrive within {}s",
                        timeout.as_secs()
                    ),
                ))
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::too_large(format!(
                "the request body is larger than the limit of {MAX_BODY} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn list_json(kind: &Kind, list: &navarch_client::ObjectList) -> Value {
    let mut metadata = json!({"resourceVersion": list.resource_version});
    if let Some(c) = &list.continue_token {
        metadata["continue"] = json!(c);
        if let Some(r) = list.remaining_item_count {
            metadata["remainingItemCount"] = json!(r);
        }
    }
    json!({
        "kind": format!("{}List", kind.kind),
        "apiVersion": kind.api_version(),
        "metadata": metadata,
        "items": list.items,
    })
}

/// One watch event as a line of JSON (a one-row Table for kubectl when asked).
fn watch_line(kind: &Kind, e: WatchEvent, as_table: bool, first: &mut bool) -> Bytes {
    let object = if as_table
        && matches!(
            e.event_type,
            EventType::Added | EventType::Modified | EventType::Deleted
        ) {
        let rv = e.object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut t = table::table(kind, &[e.object], &rv, None, unix_now());
        if !*first {
            if let Some(o) = t.as_object_mut() {
                o.remove("columnDefinitions");
            }
        }
        *first = false;
        t
    } else {
        e.object
    };
    let mut buf = serde_json::to_vec(&json!({"type": e.event_type.as_str(), "object": object}))
        .expect("a JSON value serializes");
    buf.push(b'\n');
    Bytes::from(buf)
}

/// One watch event as a protobuf frame, or (for what protobuf cannot carry) nothing.
fn watch_frame(e: &WatchEvent) -> Option<Bytes> {
    match protobuf::encode_watch_event(e.event_type.as_str(), &e.object) {
        Ok(b) => Some(Bytes::from(b)),
        Err(err) => {
            tracing::warn!(error = %err, "a watch event does not encode as protobuf; ending the watch");
            None
        }
    }
}

fn respond(reply: Reply, encoding: Encoding) -> HttpResponse {
    let as_table = encoding == Encoding::Table;
    match reply {
        Reply::Object {
            code,
            kind,
            object,
            warnings,
        } => {
            let body = match kind {
                Some(k) if as_table && code < 300 => {
                    let rv = object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    table::table(k, &[object], &rv, None, unix_now())
                }
                _ => object,
            };
            body_of(&mut with_warnings(code, &warnings), &body, encoding)
        }
        Reply::List {
            kind,
            list,
            warnings,
        } => {
            let body = if as_table {
                table::table(
                    kind,
                    &list.items,
                    &list.resource_version,
                    list.continue_token.as_deref(),
                    unix_now(),
                )
            } else {
                list_json(kind, &list)
            };
            body_of(&mut with_warnings(200, &warnings), &body, encoding)
        }
        Reply::Watch { kind, events } => {
            let mut r = HttpResponse::Ok();
            r.insert_header((header::CACHE_CONTROL, "no-cache, private"));
            if encoding == Encoding::Protobuf
                && protobuf::is_encodable(&kind.api_version(), kind.kind)
            {
                // Frames until one cannot be encoded (the stream then ends; the client
                // watches again).
                let frames = events
                    .map(|e| watch_frame(&e))
                    .take_while(|f| std::future::ready(f.is_some()))
                    .filter_map(|f| std::future::ready(f.map(Ok::<_, actix_web::Error>)));
                return r.content_type(protobuf::WATCH_MEDIA_TYPE).streaming(frames);
            }
            let mut first = true;
            let lines = events
                .map(move |e| Ok::<_, actix_web::Error>(watch_line(kind, e, as_table, &mut first)));
            r.content_type("application/json").streaming(lines)
        }
        Reply::Document { content_type, body } => HttpResponse::Ok()
            .content_type(content_type)
            .body(body.to_string()),
        Reply::Text {
            code,
            content_type,
            body,
        } => HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
            .content_type(content_type)
            .body(body),
        Reply::Stream {
            content_type,
            chunks,
        } => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(chunks.map(Ok::<_, actix_web::Error>)),
        Reply::Exec(_) => error_response(&ApiError::internal("an exec without its upgrade")),
    }
}
