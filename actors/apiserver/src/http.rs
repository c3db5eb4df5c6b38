//! The API server: Kubernetes' REST dialect over HTTPS (actix-web), with authentication,
//! authorization, audit and admission, on the replicated store.
//!
//! - `core`: the verbs on the store (pure object rules come from `navarch-model`);
//! - `rest`: the HTTP shell (paths, queries, bodies, content negotiation);
//! - `watch`: watch streams from the store's apply path;
//! - `auth`, `audit`: who is calling, and the record of what they did;
//! - `tls`: the serving certificate and the admin kubeconfig.

pub mod audit;
pub mod auth;
pub mod core;
pub mod rest;
pub mod tls;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use navarch_model::authz::{Attributes, Authorizer, Decision, User};
use navarch_model::ApiError;
use navarch_net::trace::CorrelationId;

use self::audit::{AuditLog, Record};
use self::auth::TokenFile;
use self::core::Core;

/// What every API handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub core: Core,
    /// The store's runtime; actix-web's workers hand store work to it.
    pub runtime: tokio::runtime::Handle,
    pub tokens: Arc<TokenFile>,
    pub authz: Arc<Authorizer>,
    pub audit: Arc<AuditLog>,
    /// Bounds requests in flight (watches and streams excluded), like kube-apiserver's
    /// `--max-requests-inflight`: beyond it, 429.
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// `host:port` clients reach this server at (for `/api`'s address list).
    pub server_address: String,
}

/// The request attributes the audit log records, set by the handler that parsed them.
#[derive(Clone, Debug, Default)]
pub struct AuditInfo {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// Paths anyone may read without credentials.
fn is_public(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|pre| p == *pre || p.starts_with(&format!("{pre}/")))
}

fn long_running(req: &ServiceRequest) -> bool {
    let q = req.query_string();
    let has = |k: &str| {
        q.split('&')
            .any(|kv| kv == format!("{k}=true") || kv == format!("{k}=1"))
    };
    has("watch") || has("follow") || req.path().ends_with("/exec")
}

fn method_verb(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "unknown",
    }
}

/// Middleware in front of everything: authentication (401), the admin-only debug endpoints
/// (403), the in-flight limit (429), and one audit record per request.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let start = Instant::now();
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let path = req.path().to_string();
    let method = req.method().as_str().to_string();
    let correlation = req
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let source_ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let audit = |user: &User, info: &AuditInfo, code: u16| {
        let now = core::now_rfc3339();
        state.audit.write(&Record {
            time: &now,
            user: &user.name,
            groups: &user.groups,
            verb: if info.verb.is_empty() {
                method_verb(&method)
            } else {
                &info.verb
            },
            resource: &info.resource,
            subresource: &info.subresource,
            namespace: &info.namespace,
            name: &info.name,
            path: &path,
            code,
            latency_ms: start.elapsed().as_secs_f64() * 1000.0,
            correlation_id: &correlation,
            source_ip: &source_ip,
        });
    };
    let refuse = |req: ServiceRequest, user: &User, e: ApiError| {
        audit(user, &AuditInfo::default(), e.code);
        Ok(req
            .into_response(rest::error_response(&e))
            .map_into_right_body())
    };
    let anonymous = User::new("system:anonymous", vec!["system:unauthenticated".into()]);
    let user = match auth::authenticate(req.request(), &state.tokens) {
        Ok(Some(u)) => u,
        Ok(None) if is_public(&path) => anonymous,
        Ok(None) | Err(_) => return refuse(req, &anonymous, ApiError::unauthorized()),
    };
    if path.starts_with("/debug") {
        let attrs = Attributes {
            verb: method_verb(&method),
            group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path: &path,
        };
        if let Decision::Deny(m) = state.authz.authorize(&user, &attrs) {
            return refuse(req, &user, ApiError::forbidden(m));
        }
    }
    let _permit = if long_running(&req) || is_public(&path) {
        None
    } else {
        match state.inflight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return refuse(
                    req,
                    &user,
                    ApiError::too_many_requests(
                        "too many requests in flight, please try again later",
                        1,
                    ),
                )
            }
        }
    };
    req.extensions_mut().insert(user.clone());
    let res = next.call(req).await?;
    let info = res
        .request()
        .extensions()
        .get::<AuditInfo>()
        .cloned()
        .unwrap_or_default();
    audit(&user, &info, res.status().as_u16());
    Ok(res.map_into_left_body())
}

/// Routes of the API server (health and debug endpoints are configured beside it).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/version", web::get().to(rest::version))
        .route("/openapi/v3", web::get().to(rest::openapi_v3))
        .route("/openapi/v3/{tail:.*}", web::get().to(rest::openapi_v3))
        .route("/api", web::route().to(rest::dispatch))
        .route("/api/{tail:.*}", web::route().to(rest::dispatch))
        .route("/apis", web::route().to(rest::dispatch))
        .route("/apis/{tail:.*}", web::route().to(rest::dispatch));
}
