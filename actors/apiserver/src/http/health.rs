//! The master's HTTP endpoint (actix-web): health, readiness and the store's debug views,
//! including the fault-injection controls the chaos and partition tests drive.
//!
//! Until the API server's authentication lands this endpoint is plain HTTP; the master binds
//! it to loopback by default.

use std::future::Future;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use navarch_net::fault::FaultRule;
use navarch_net::trace::CorrelationId;
use navarch_store::Member;
use serde::Deserialize;
use serde_json::json;

/// The header that carries a request's correlation id, in and out.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// What the handlers share. The store member runs on the main tokio runtime; handlers run on
/// actix-web's workers and hand store work to `runtime`.
#[derive(Clone)]
pub struct AppState {
    pub member: Arc<Member>,
    pub runtime: tokio::runtime::Handle,
}

impl AppState {
    async fn run<F, T>(&self, f: F) -> Result<T, actix_web::Error>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .spawn(f)
            .await
            .map_err(actix_web::error::ErrorInternalServerError)
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
/// the request's extensions for handlers, and returns it in the `x-correlation-id` header.
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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/livez", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/debug/store", web::get().to(debug_store))
        .route("/debug/store/snapshot", web::post().to(trigger_snapshot))
        .route("/debug/faults", web::get().to(list_faults))
        .route("/debug/faults", web::post().to(set_fault))
        .route("/debug/faults", web::delete().to(clear_faults));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready once this member knows a leader.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.member.status().leader {
        Some(_) => HttpResponse::Ok().content_type("text/plain").body("ok"),
        None => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("no leader known"),
    }
}

async fn debug_store(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.member.status())
}

async fn trigger_snapshot(state: web::Data<AppState>) -> Result<HttpResponse, actix_web::Error> {
    let m = state.member.clone();
    match state.run(async move { m.trigger_snapshot().await }).await? {
        Ok(()) => Ok(HttpResponse::Accepted().json(json!({"snapshot": "triggered"}))),
        Err(e) => Ok(HttpResponse::InternalServerError().json(json!({"error": e.to_string()}))),
    }
}

async fn list_faults(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.member.endpoint().faults().rules())
}

async fn set_fault(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => {
            tracing::warn!(peer = %rule.peer, direction = ?rule.direction, fault = ?rule.fault, "fault injected");
            state.member.endpoint().faults().set(rule);
            HttpResponse::Ok().json(state.member.endpoint().faults().rules())
        }
        Err(e) => {
            HttpResponse::BadRequest().json(json!({"error": format!("invalid fault rule: {e}")}))
        }
    }
}

#[derive(Deserialize)]
struct ClearQuery {
    peer: Option<String>,
}

async fn clear_faults(state: web::Data<AppState>, q: web::Query<ClearQuery>) -> HttpResponse {
    state.member.endpoint().faults().clear(q.peer.as_deref());
    tracing::warn!(peer = ?q.peer, "faults cleared");
    HttpResponse::Ok().json(state.member.endpoint().faults().rules())
}
