//! The actor inspector's HTTP endpoints, mounted on a process's actix-web server:
//!
//! - `GET /debug/actors[?prefix=P | ?path=P]`: the registry as JSON (one object for `path`);
//! - `GET /debug/messages?[prefix=P][&type=T][&correlation=C][&since=SEQ][&limit=N][&follow=true]`:
//!   the message tap as a JSON array, or with `follow=true` a live stream of newline-delimited
//!   JSON records (records after `since` first, when given; a `{"lagged":N}` line when the
//!   reader fell behind and N records were skipped);
//! - `POST /debug/kill?path=P` kills that actor, `POST /debug/kill?prefix=P` a random running
//!   one under P; its supervisor restarts it.
//!
//! Errors are `{"error": "..."}` with 400 (bad query), 404 (no such actor) or 409 (not
//! killable now). Admin-only once the API has authentication: mount it behind that check.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use navarch_actors::{
    ActorPath, CorrelationId, FollowItem, KillError, MessageTap, Registry, TapFilter,
};
use serde::Deserialize;

/// How long `/debug/actors` waits for actors to publish fresh summaries; a busy actor shows
/// its previous one.
const REFRESH_BUDGET: Duration = Duration::from_millis(250);

/// Records returned by a non-following `/debug/messages` without `limit`.
const DEFAULT_LIMIT: usize = 100;

struct DebugState {
    registry: Registry,
    tap: MessageTap,
}

/// Mounts `/debug/actors`, `/debug/messages` and `/debug/kill` over `registry` and `tap`.
pub fn configure(cfg: &mut web::ServiceConfig, registry: Registry, tap: MessageTap) {
    cfg.app_data(web::Data::new(DebugState { registry, tap }))
        .route("/debug/actors", web::get().to(actors))
        .route("/debug/messages", web::get().to(messages))
        .route("/debug/kill", web::post().to(kill));
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message.to_string() }))
}

#[derive(Deserialize)]
struct ActorsQuery {
    prefix: Option<String>,
    path: Option<String>,
}

async fn actors(state: web::Data<DebugState>, query: web::Query<ActorsQuery>) -> HttpResponse {
    if let Some(raw) = &query.path {
        let path = match ActorPath::parse(raw) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        state.registry.refresh(&path, REFRESH_BUDGET).await;
        return match state.registry.get(&path) {
            Some(info) => HttpResponse::Ok().json(info),
            None => error(StatusCode::NOT_FOUND, format!("no actor at {path}")),
        };
    }
    let prefix = match ActorPath::parse(query.prefix.as_deref().unwrap_or("/")) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    state.registry.refresh(&prefix, REFRESH_BUDGET).await;
    HttpResponse::Ok().json(state.registry.list(&prefix))
}

#[derive(Deserialize)]
struct MessagesQuery {
    prefix: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    correlation: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

async fn messages(state: web::Data<DebugState>, query: web::Query<MessagesQuery>) -> HttpResponse {
    let query = query.into_inner();
    let correlation = match query
        .correlation
        .as_deref()
        .map(str::parse::<CorrelationId>)
    {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let filter = TapFilter {
        prefix: query.prefix,
        message_type: query.message_type,
        correlation,
        since: query.since,
    };
    if !query.follow {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        return HttpResponse::Ok().json(state.tap.recent(&filter, limit));
    }
    let lines = state.tap.follow(filter).map(|item| {
        let mut line = match item {
            FollowItem::Record(r) => serde_json::to_vec(&*r),
            FollowItem::Lagged(n) => serde_json::to_vec(&serde_json::json!({ "lagged": n })),
        }
        .map_err(actix_web::error::ErrorInternalServerError)?;
        line.push(b'\n');
        Ok::<_, actix_web::Error>(web::Bytes::from(line))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("cache-control", "no-cache"))
        .streaming(lines)
}

#[derive(Deserialize)]
struct KillQuery {
    path: Option<String>,
    prefix: Option<String>,
}

async fn kill(state: web::Data<DebugState>, query: web::Query<KillQuery>) -> HttpResponse {
    let result = match (&query.path, &query.prefix) {
        (Some(raw), None) => match ActorPath::parse(raw) {
            Ok(path) => state.registry.kill(&path),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        (None, Some(raw)) => match ActorPath::parse(raw) {
            Ok(prefix) => state.registry.kill_random(&prefix),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of path= or prefix=",
            )
        }
    };
    match result {
        Ok(killed) => HttpResponse::Ok().json(serde_json::json!({ "killed": killed })),
        Err(e @ (KillError::NotFound { .. } | KillError::NoneUnder { .. })) => {
            error(StatusCode::NOT_FOUND, e)
        }
        Err(e @ (KillError::NotKillable { .. } | KillError::NotRunning { .. })) => {
            error(StatusCode::CONFLICT, e)
        }
    }
}
