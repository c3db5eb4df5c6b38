//! The HTTP shell of the API server: parses a Kubernetes REST request (path, verb, query,
//! body, content negotiation), authorizes it, hands it to the core and writes the answer.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use navarch_model::authz::{Attributes, Decision, User};
use navarch_model::kinds::{self, Kind};
use navarch_model::patch::PatchType;
use navarch_model::selector::{FieldSelector, LabelSelector};
use navarch_model::validate::FieldValidation;
use navarch_model::{discovery, openapi, table, ApiError};
use navarch_net::trace::{current_correlation, with_correlation, CorrelationId};
use serde_json::{json, Value};

use super::core::{unix_now, DeleteOptions, ListOptions, Patch, WriteOptions};
use super::watch::{self, WatchParams};
use super::{ApiState, AuditInfo};

/// Largest request body accepted (Kubernetes' limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What a resource path names.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static Kind,
    /// `None`: across namespaces (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses the segments after `/api/v1` or `/apis/<g>/<v>`.
pub fn parse_target(group: &str, version: &str, segs: &[&str]) -> Result<Target, ApiError> {
    let not_found = ApiError::path_not_found;
    let (namespace, rest) = match segs {
        ["namespaces", ns, plural, rest @ ..]
            if kinds::lookup(group, version, plural).is_some_and(|k| k.namespaced) =>
        {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(rest);
                v
            })
        }
        _ => (None, segs.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(not_found()),
    };
    let kind = kinds::lookup(group, version, plural).ok_or_else(not_found)?;
    if kind.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    if let Some(s) = &sub {
        if !kind.has_subresource(s) {
            return Err(not_found());
        }
    }
    if name.as_deref() == Some("") || namespace.as_deref() == Some("") {
        return Err(not_found());
    }
    Ok(Target {
        kind,
        namespace,
        name,
        subresource: sub,
    })
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

fn json_response(code: u16, v: &Value, warnings: &[String]) -> HttpResponse {
    let mut r = HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK));
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(h) = HeaderValue::from_str(&text) {
            r.append_header((header::WARNING, h));
        }
    }
    r.content_type("application/json").body(v.to_string())
}

/// Whether the client's first (preferred) Accept entry contains `needle`.
fn prefers(req: &HttpRequest, needle: &str) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| first.contains(needle))
}

fn wants_table(req: &HttpRequest) -> bool {
    prefers(req, "as=Table")
}

fn wants_aggregated(req: &HttpRequest) -> bool {
    prefers(req, "as=APIGroupDiscoveryList")
}

type Query = HashMap<String, String>;

fn query(req: &HttpRequest) -> Result<Query, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner().into_iter().collect())
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
}

fn flag(q: &Query, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true") | Some("1"))
}

fn write_options(q: &Query) -> Result<WriteOptions, ApiError> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") => FieldValidation::Warn,
        Some(s) => FieldValidation::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, got {s:?}"
            ))
        })?,
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: unsupported value {other:?}, supported values: \"All\""
            )))
        }
    };
    Ok(WriteOptions {
        field_validation,
        dry_run,
    })
}

fn list_options(kind: &Kind, q: &Query) -> Result<ListOptions, ApiError> {
    let label_selector = match q.get("labelSelector") {
        Some(s) => LabelSelector::parse(s)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => LabelSelector::default(),
    };
    let field_selector = match q.get("fieldSelector") {
        Some(s) => {
            FieldSelector::parse(kind.kind, s).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        None => FieldSelector::default(),
    };
    let limit = match q.get("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("limit must be a non-negative integer, got {l:?}"))
        })?),
        None => None,
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q.get("continue").cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: q
            .get("resourceVersionMatch")
            .cloned()
            .filter(|s| !s.is_empty()),
    })
}

/// The body of a request, refused past [`MAX_BODY`] (413).
async fn read_body(mut payload: web::Payload) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
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

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Parses a JSON body of a create, update or delete (a missing Content-Type means JSON).
fn json_body(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(req);
    if !(ct.is_empty() || ct == "application/json" || ct == "*/*") {
        return Err(ApiError::unsupported_media_type(&ct));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn list_json(kind: &Kind, page: super::core::ListPage) -> Value {
    let mut metadata = json!({"resourceVersion": page.resource_version.0.to_string()});
    if let Some(c) = &page.continue_token {
        metadata["continue"] = json!(c);
        if let Some(r) = page.remaining {
            metadata["remainingItemCount"] = json!(r);
        }
    }
    json!({
        "kind": format!("{}List", kind.kind),
        "apiVersion": kind.api_version(),
        "metadata": metadata,
        "items": page.items,
    })
}

fn verb_of(method: &str, has_name: bool, q: &Query) -> Option<&'static str> {
    Some(match (method, has_name) {
        ("GET", true) => "get",
        ("GET", false) if flag(q, "watch") => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

/// `/api/...` and `/apis/...`: discovery and resources.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    // The request's correlation id follows its store calls (and their QUIC hops).
    let id = req
        .extensions()
        .get::<CorrelationId>()
        .copied()
        .unwrap_or_else(CorrelationId::new_random);
    match with_correlation(id, dispatch_inner(&req, payload, &state)).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn user_of(req: &HttpRequest) -> User {
    req.extensions()
        .get::<User>()
        .cloned()
        .unwrap_or_else(|| User::new("system:anonymous", vec![]))
}

async fn dispatch_inner(
    req: &HttpRequest,
    payload: web::Payload,
    state: &ApiState,
) -> Result<HttpResponse, ApiError> {
    let path = req.path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().as_str().to_string();
    // Discovery.
    let discovery_doc = match segs.as_slice() {
        ["api"] => Some(if wants_aggregated(req) {
            (discovery::aggregated(true), true)
        } else {
            (discovery::api_versions(&state.server_address), false)
        }),
        ["apis"] => Some(if wants_aggregated(req) {
            (discovery::aggregated(false), true)
        } else {
            (discovery::api_group_list(), false)
        }),
        ["api", v] => Some((
            discovery::resource_list("", v).ok_or_else(ApiError::path_not_found)?,
            false,
        )),
        ["apis", g] => Some((
            discovery::api_group(g).ok_or_else(ApiError::path_not_found)?,
            false,
        )),
        ["apis", g, v] => Some((
            discovery::resource_list(g, v).ok_or_else(ApiError::path_not_found)?,
            false,
        )),
        _ => None,
    };
    if let Some((doc, aggregated)) = discovery_doc {
        if method != "GET" {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            )));
        }
        let ct = if aggregated {
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        } else {
            "application/json"
        };
        return Ok(HttpResponse::Ok().content_type(ct).body(doc.to_string()));
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let target = parse_target(group, version, rest)?;
    let q = query(req)?;
    let kind = target.kind;
    // A POST to an object's subresource (binding, exec) creates it.
    let item = target.name.is_some() && !(method == "POST" && target.subresource.is_some());
    let verb = verb_of(&method, item, &q).ok_or_else(|| {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            kind.qualified_resource()
        ))
    })?;
    // Subresources take only some verbs; exec takes GET (WebSocket) and POST (SPDY).
    let verb = match (target.subresource.as_deref(), verb) {
        (None, v) => v,
        (Some("status" | "scale"), v @ ("get" | "update" | "patch")) => v,
        (Some("log"), "get") => "get",
        (Some("exec"), "get") => "create",
        (Some("binding" | "exec"), _) if method == "POST" => "create",
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {}/{})",
                kind.qualified_resource(),
                target.subresource.as_deref().unwrap_or("")
            )))
        }
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let sub = target.subresource.clone().unwrap_or_default();
    req.extensions_mut().insert(AuditInfo {
        verb: verb.to_string(),
        resource: kind.plural.to_string(),
        subresource: sub.clone(),
        namespace: ns.clone(),
        name: name.clone(),
    });
    // Write bodies are read before authorization: a create is authorized with the name in
    // its body (a node may create only its own Node and Lease).
    let body = if matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    ) && target.subresource.as_deref() != Some("exec")
    {
        read_body(payload).await?
    } else {
        Bytes::new()
    };
    let authz_name = if verb == "create" && target.subresource.is_none() {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|b| b["metadata"]["name"].as_str().map(str::to_string))
            .unwrap_or_default()
    } else {
        name.clone()
    };
    // Authorization.
    let user = user_of(req);
    let attrs = Attributes {
        verb,
        group: kind.group,
        resource: kind.plural,
        subresource: &sub,
        namespace: &ns,
        name: &authz_name,
        path: &path,
    };
    let core = state.core.clone();
    match state.authz.authorize(&user, &attrs) {
        Decision::Allow => {}
        Decision::Deny(m) => {
            return Err(ApiError::forbidden(m).about(kind.plural, kind.group, &name))
        }
        Decision::AllowIfPodOnNode(node) => {
            let (c, k, n, nm) = (core.clone(), kind, ns.clone(), name.clone());
            let pod = state
                .run(async move { c.get(k, &n, &nm, None).await })
                .await?;
            if pod["spec"]["nodeName"].as_str() != Some(node.as_str()) {
                return Err(ApiError::forbidden(format!(
                    "pods \"{name}\" is forbidden: node \"{node}\" can only change pods bound to it"
                ))
                .about(kind.plural, kind.group, &name));
            }
        }
    }
    let table = wants_table(req);
    match (verb, target.subresource.as_deref()) {
        ("get", Some("log")) | ("create", Some("exec")) => {
            let (c, n, nm) = (core.clone(), ns.clone(), name.clone());
            let pod = state
                .run(async move { c.get(kind, &n, &nm, None).await })
                .await?;
            Err(node_stream_error(
                &pod,
                &q,
                target.subresource.as_deref().unwrap_or(""),
            ))
        }
        ("get", Some("scale")) => {
            let v = state
                .run(async move { core.get_scale(kind, &ns, &name).await })
                .await?;
            Ok(json_response(200, &v, &[]))
        }
        ("get", _) => {
            let rv = q.get("resourceVersion").cloned();
            let v = state
                .run(async move { core.get(kind, &ns, &name, rv.as_deref()).await })
                .await?;
            if table {
                let rv = v["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                return Ok(json_response(
                    200,
                    &table::table(kind, &[v], &rv, None, unix_now()),
                    &[],
                ));
            }
            Ok(json_response(200, &v, &[]))
        }
        ("list", _) => {
            let opts = list_options(kind, &q)?;
            let nsopt = target.namespace.clone();
            let page = state
                .run(async move { core.list(kind, nsopt.as_deref(), &opts).await })
                .await?;
            if table {
                let rv = page.resource_version.0.to_string();
                let t = table::table(
                    kind,
                    &page.items,
                    &rv,
                    page.continue_token.as_deref(),
                    unix_now(),
                );
                return Ok(json_response(200, &t, &[]));
            }
            Ok(json_response(200, &list_json(kind, page), &[]))
        }
        ("watch", _) => {
            let opts = list_options(kind, &q)?;
            let params = WatchParams {
                resource_version: opts.resource_version,
                resource_version_match: opts.resource_version_match,
                send_initial_events: match q.get("sendInitialEvents").map(String::as_str) {
                    Some("true") | Some("1") => Some(true),
                    Some("false") | Some("0") => Some(false),
                    _ => None,
                },
                allow_bookmarks: flag(&q, "allowWatchBookmarks"),
                timeout: match q.get("timeoutSeconds") {
                    Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "timeoutSeconds must be an integer, got {t:?}"
                        ))
                    })?)),
                    None => None,
                },
                label_selector: opts.label_selector,
                field_selector: opts.field_selector,
                table,
            };
            params.check()?;
            let rx = watch::start(core, kind, target.namespace.clone(), params, &state.runtime);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
            });
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .insert_header((header::CACHE_CONTROL, "no-cache, private"))
                .streaming(stream))
        }
        ("create", Some("binding")) => {
            let body = json_body(req, &body)?;
            let v = state
                .run(async move { core.bind(&ns, &name, body).await })
                .await?;
            Ok(json_response(201, &v, &[]))
        }
        ("create", _) => {
            if kind.namespaced && target.namespace.is_none() {
                return Err(ApiError::method_not_allowed(format!(
                    "create {} needs a namespace: POST /{}/namespaces/<namespace>/{}",
                    kind.plural,
                    kind.gv_path().trim_start_matches('/'),
                    kind.plural
                )));
            }
            let opts = write_options(&q)?;
            let body = json_body(req, &body)?;
            let (v, warnings) = state
                .run(async move { core.create(kind, &ns, body, opts).await })
                .await?;
            Ok(json_response(
                if opts.dry_run { 200 } else { 201 },
                &v,
                &warnings,
            ))
        }
        ("update", s) => {
            let opts = write_options(&q)?;
            let body = json_body(req, &body)?;
            let s = s.map(str::to_string);
            let (v, warnings) = state
                .run(async move {
                    core.update(kind, &ns, &name, s.as_deref(), body, opts)
                        .await
                })
                .await?;
            Ok(json_response(200, &v, &warnings))
        }
        ("patch", s) => {
            let opts = write_options(&q)?;
            let ct = content_type(req);
            let ty = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
            let patch: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            let s = s.map(str::to_string);
            let (v, warnings) = state
                .run(async move {
                    core.patch(
                        kind,
                        &ns,
                        &name,
                        s.as_deref(),
                        Patch { ty, body: patch },
                        opts,
                    )
                    .await
                })
                .await?;
            Ok(json_response(200, &v, &warnings))
        }
        ("delete", _) => {
            let opts = delete_options(req, &q, &body)?;
            let v = state
                .run(async move { core.delete(kind, &ns, &name, &opts).await })
                .await?;
            Ok(json_response(200, &v, &[]))
        }
        ("deletecollection", _) => {
            let opts = delete_options(req, &q, &body)?;
            let list = list_options(kind, &q)?;
            let nsopt = target.namespace.clone();
            let items = state
                .run(async move {
                    core.delete_collection(kind, nsopt.as_deref(), &list, &opts)
                        .await
                })
                .await?;
            let rv = state.core.revision().0.to_string();
            Ok(json_response(
                200,
                &json!({
                    "kind": format!("{}List", kind.kind),
                    "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }),
                &[],
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported on {}",
            kind.qualified_resource()
        ))),
    }
}

fn delete_options(req: &HttpRequest, q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        DeleteOptions::from_json(&json_body(req, body)?)?
    };
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(g.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds must be an integer, got {g:?}"))
        })?);
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation_policy = Some(p.clone());
    }
    if q.get("dryRun").is_some_and(|d| d == "All") {
        opts.dry_run = true;
    }
    opts.check()?;
    Ok(opts)
}

/// `pods/<name>/log` and `exec` are served by the pod's node; until a node agent is connected
/// to stream them, they answer why they cannot.
fn node_stream_error(pod: &Value, q: &Query, what: &str) -> ApiError {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    if let Some(c) = q.get("container") {
        if !containers.contains(&c.as_str()) {
            return ApiError::bad_request(format!("container {c} is not valid for pod {name}"));
        }
    }
    match pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        None => ApiError::bad_request(format!("pod {name} does not have a host assigned")),
        Some(node) => ApiError::unavailable(format!(
            "no agent of node {node:?} is connected to serve {what} for pod {name}"
        )),
    }
}

/// `/version`.
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "major": "1",
        "minor": "37",
        "gitVersion": format!("v1.37.0+navarch.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

/// `/openapi/v3` and `/openapi/v3/<gv>`.
pub async fn openapi_v3(req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_end_matches('/');
    let doc = match path.strip_prefix("/openapi/v3") {
        Some("") => Some(openapi::index()),
        Some(rest) => openapi::document(rest.trim_start_matches('/')),
        None => None,
    };
    match doc {
        Some(d) => HttpResponse::Ok()
            .content_type("application/json")
            .body(d.to_string()),
        None => error_response(&ApiError::path_not_found()),
    }
}

/// Anything else: 404 as a Status.
pub async fn not_found() -> HttpResponse {
    error_response(&ApiError::path_not_found())
}

impl ApiState {
    /// Runs `f` on the store's runtime (handlers run on actix-web's workers).
    pub async fn run<F, T>(&self, f: F) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Send + 'static,
    {
        let task = match current_correlation() {
            Some(id) => self.runtime.spawn(with_correlation(id, f)),
            None => self.runtime.spawn(f),
        };
        task.await
            .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_to_kinds_namespaces_names_and_subresources() {
        let t = parse_target(
            "",
            "v1",
            &["namespaces", "default", "pods", "web", "status"],
        )
        .unwrap();
        assert_eq!(t.kind.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_target("", "v1", &["namespaces", "kube-system"]).unwrap();
        assert_eq!(t.kind.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = parse_target("", "v1", &["namespaces", "x", "status"]).unwrap();
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_target("apps", "v1", &["deployments"]).unwrap();
        assert_eq!(t.namespace, None);
        assert!(parse_target("", "v1", &["pods", "web"]).is_err());
        assert!(parse_target("", "v1", &["widgets"]).is_err());
        assert!(parse_target("", "v1", &["namespaces", "d", "pods", "w", "scale"]).is_err());
        assert!(parse_target(
            "apps",
            "v1",
            &["namespaces", "d", "deployments", "w", "scale"]
        )
        .is_ok());
    }

    #[test]
    fn verbs_follow_method_and_shape() {
        let mut q = Query::new();
        assert_eq!(verb_of("GET", false, &q), Some("list"));
        q.insert("watch".into(), "1".into());
        assert_eq!(verb_of("GET", false, &q), Some("watch"));
        assert_eq!(verb_of("PUT", false, &q), None);
        assert_eq!(verb_of("POST", true, &q), None);
        assert_eq!(verb_of("DELETE", false, &q), Some("deletecollection"));
    }
}
