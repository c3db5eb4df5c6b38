//! The debug views, served through the pipeline like every other path (so only those the
//! authorizer lets in reach them; by default cluster administrators):
//!
//! - `GET /debug/actors[?prefix=P | ?path=P]`: the actor registry as JSON;
//! - `GET /debug/messages?[prefix=P][&type=T][&correlation=C][&since=SEQ][&limit=N][&follow=true]`:
//!   the message tap as a JSON array, or with `follow=true` a live stream of newline-delimited
//!   JSON records (a `{"lagged":N}` line when the reader fell behind);
//! - `POST /debug/kill?path=P` (or `?prefix=P`, a random running actor under P): the kill
//!   switch; the actor's supervisor restarts it;
//! - `GET /debug/store`, `POST /debug/store/snapshot`: the store member's status, a snapshot;
//! - `GET|POST|DELETE /debug/faults[?peer=P]`: the QUIC fault-injection rules;
//! - `GET /debug/nodes/<node>/actors`, `.../messages` (same queries): a node agent's
//!   actors and tap, read from its kubelet endpoint over QUIC; `POST .../kill` its kill
//!   switch;
//! - `GET /debug/inspector`: the inspector's web page (HTML with its CSS and JavaScript
//!   inlined, from `inspector/`), which reads the views above by relative paths;
//! - `GET /debug/<name>`: the binary's own views ([`DebugHooks::views`], e.g.
//!   `controlplane`: whether this master's control plane is active).
//!
//! Errors are `Status` objects: 400 (bad query), 404 (no such actor), 409 (not killable).

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use navarch_actors::{ActorPath, CorrelationId, FollowItem, KillError, TapFilter};
use navarch_model::ApiError;
use navarch_net::fault::FaultRule;
use serde_json::{json, Value};

use crate::request::{Body, Reply};
use crate::{ApiServer, DebugHooks};

/// How long `/debug/actors` waits for actors to publish fresh summaries; a busy actor shows
/// its previous one.
const REFRESH_BUDGET: Duration = Duration::from_millis(250);
/// Records returned by a non-following `/debug/messages` without `limit`.
const DEFAULT_LIMIT: usize = 100;

/// The inspector's page with its style and script inlined: one document, so it needs no
/// other path (and works the same at `/debug/inspector` and `/debug/inspector/`).
static INSPECTOR_PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("inspector/index.html")
        .replacen("/*{{style}}*/", include_str!("inspector/style.css"), 1)
        .replacen("/*{{script}}*/", include_str!("inspector/app.js"), 1)
});

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

fn doc(body: Value) -> Reply {
    Reply::Document {
        content_type: "application/json",
        body,
    }
}

fn path(raw: &str) -> Result<ActorPath, ApiError> {
    ActorPath::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn hooks(api: &ApiServer) -> Result<&DebugHooks, ApiError> {
    api.debug_hooks()
        .ok_or_else(|| ApiError::not_found("debug", "this server has no actor views"))
}

pub(crate) async fn serve(
    api: &ApiServer,
    verb: &str,
    sub: &str,
    q: &[(String, String)],
    body: Body,
) -> Result<Reply, ApiError> {
    match (verb, sub) {
        ("get", "store") => Ok(doc(json!(api.storage().member().status()))),
        ("post", "store/snapshot") => {
            api.storage()
                .member()
                .trigger_snapshot()
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(Reply::Object {
                code: 202,
                kind: None,
                object: json!({"snapshot": "triggered"}),
                warnings: vec![],
            })
        }
        ("get", "faults") => Ok(doc(json!(hooks(api)?.faults.rules()))),
        ("post", "faults") => {
            let faults = &hooks(api)?.faults;
            let bytes = match body {
                Body::Encoded { bytes, .. } => bytes,
                Body::Value(v) => Bytes::from(v.to_string()),
                Body::Empty | Body::Patch(_) => Bytes::new(),
            };
            let rule: FaultRule = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid fault rule: {e}")))?;
            tracing::warn!(peer = %rule.peer, direction = ?rule.direction, fault = ?rule.fault, "fault injected");
            faults.set(rule);
            Ok(doc(json!(faults.rules())))
        }
        ("delete", "faults") => {
            let faults = &hooks(api)?.faults;
            let peer = param(q, "peer");
            faults.clear(peer);
            tracing::warn!(peer = ?peer, "faults cleared");
            Ok(doc(json!(faults.rules())))
        }
        ("get", "inspector") => Ok(Reply::Text {
            code: 200,
            content_type: "text/html; charset=utf-8",
            body: INSPECTOR_PAGE.clone(),
        }),
        ("get", sub) if sub.starts_with("nodes/") => node_view(api, sub, q).await,
        ("post", sub) if sub.starts_with("nodes/") => node_kill(api, sub, q).await,
        ("get", name) if hooks(api)?.views.iter().any(|(n, _)| *n == name) => {
            let (_, view) = hooks(api)?
                .views
                .iter()
                .find(|(n, _)| *n == name)
                .expect("checked above");
            Ok(doc(view()))
        }
        _ => actor_view(hooks(api)?, verb, sub, q).await,
    }
}

/// `POST /debug/nodes/<node>/kill?path=P` (or `?prefix=P`): a node agent's kill switch,
/// through its kubelet endpoint; answered as the master's own `/debug/kill` is.
async fn node_kill(api: &ApiServer, sub: &str, q: &[(String, String)]) -> Result<Reply, ApiError> {
    use navarch_client::kubelet::{self, DebugKillRequest};
    let mut parts = sub.split('/');
    let (Some("nodes"), Some(node), Some("kill"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::path_not_found());
    };
    let req = match (param(q, "path"), param(q, "prefix")) {
        (Some(p), None) => DebugKillRequest {
            path: Some(path(p)?.to_string()),
            prefix: None,
        },
        (None, Some(p)) => DebugKillRequest {
            path: None,
            prefix: Some(path(p)?.to_string()),
        },
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of path= or prefix=",
            ))
        }
    };
    let (dialer, runtime) = api.kubelet_dialer();
    let answer = crate::kubelet::node_debug(
        dialer,
        runtime,
        api.storage(),
        node,
        kubelet::DEBUG_KILL,
        req,
    )
    .await?;
    if let Some(e) = answer.get("error") {
        let code = e["code"].as_u64().unwrap_or(500) as u16;
        let reason = match e["reason"].as_str() {
            Some("NotFound") => "NotFound",
            Some("Conflict") => "Conflict",
            Some("BadRequest") => "BadRequest",
            _ => "InternalError",
        };
        let message = e["message"].as_str().unwrap_or_default().to_string();
        return Err(ApiError::new(code, reason, message));
    }
    Ok(doc(answer))
}

/// `GET /debug/nodes/<node>/actors[?prefix=P]` and `/debug/nodes/<node>/messages[?...]`:
/// a node agent's actor views, read from its kubelet endpoint (the node's own process).
async fn node_view(api: &ApiServer, sub: &str, q: &[(String, String)]) -> Result<Reply, ApiError> {
    use navarch_client::kubelet::{self, DebugActorsRequest, DebugMessagesRequest};
    let mut parts = sub.split('/');
    let (Some("nodes"), Some(node), Some(view), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::path_not_found());
    };
    let (dialer, runtime) = api.kubelet_dialer();
    let storage = api.storage();
    let body = match view {
        "actors" => {
            let req = DebugActorsRequest {
                prefix: param(q, "prefix").map(str::to_string),
            };
            crate::kubelet::node_debug(dialer, runtime, storage, node, kubelet::DEBUG_ACTORS, req)
                .await?
        }
        "messages" => {
            let limit = match param(q, "limit") {
                Some(v) => v.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!("limit must be a number, got {v:?}"))
                })?,
                None => DEFAULT_LIMIT,
            };
            let since = param(q, "since")
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("since must be a number, got {v:?}"))
                    })
                })
                .transpose()?;
            let req = DebugMessagesRequest {
                prefix: param(q, "prefix").map(str::to_string),
                message_type: param(q, "type").map(str::to_string),
                correlation: param(q, "correlation").map(str::to_string),
                since,
                limit,
            };
            crate::kubelet::node_debug(dialer, runtime, storage, node, kubelet::DEBUG_MESSAGES, req)
                .await?
        }
        _ => return Err(ApiError::path_not_found()),
    };
    Ok(doc(body))
}

/// The actor views alone (`actors`, `messages`, `kill` under `/debug/`), over a registry and
/// a tap; the pipeline calls this after authorization.
pub async fn actor_view(
    h: &DebugHooks,
    verb: &str,
    sub: &str,
    q: &[(String, String)],
) -> Result<Reply, ApiError> {
    match (verb, sub) {
        ("get", "actors") => actors(h, q).await,
        ("get", "messages") => messages(h, q),
        ("post", "kill") => kill(h, q),
        _ => Err(ApiError::path_not_found()),
    }
}

async fn actors(h: &DebugHooks, q: &[(String, String)]) -> Result<Reply, ApiError> {
    if let Some(raw) = param(q, "path") {
        let p = path(raw)?;
        h.registry.refresh(&p, REFRESH_BUDGET).await;
        return match h.registry.get(&p) {
            Some(info) => Ok(doc(json!(info))),
            None => Err(ApiError::not_found("actors", p.as_str())),
        };
    }
    let prefix = path(param(q, "prefix").unwrap_or("/"))?;
    h.registry.refresh(&prefix, REFRESH_BUDGET).await;
    Ok(doc(json!(h.registry.list(&prefix))))
}

fn messages(h: &DebugHooks, q: &[(String, String)]) -> Result<Reply, ApiError> {
    let correlation = match param(q, "correlation").map(str::parse::<CorrelationId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => return Err(ApiError::bad_request(e.to_string())),
    };
    let number = |k: &str| -> Result<Option<u64>, ApiError> {
        param(q, k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("{k} must be a number, got {v:?}")))
            })
            .transpose()
    };
    let filter = TapFilter {
        prefix: param(q, "prefix").map(str::to_string),
        message_type: param(q, "type").map(str::to_string),
        correlation,
        since: number("since")?,
    };
    let follow = matches!(param(q, "follow"), Some("true") | Some("1"));
    if !follow {
        let limit = number("limit")?
            .map(|l| l as usize)
            .unwrap_or(DEFAULT_LIMIT);
        return Ok(doc(json!(h.tap.recent(&filter, limit))));
    }
    let chunks = h.tap.follow(filter).filter_map(|item| async move {
        let line = match item {
            FollowItem::Record(r) => serde_json::to_vec(&*r),
            FollowItem::Lagged(n) => serde_json::to_vec(&json!({ "lagged": n })),
        };
        line.ok().map(|mut l| {
            l.push(b'\n');
            Bytes::from(l)
        })
    });
    Ok(Reply::Stream {
        content_type: "application/x-ndjson",
        chunks: chunks.boxed(),
    })
}

fn kill(h: &DebugHooks, q: &[(String, String)]) -> Result<Reply, ApiError> {
    let result = match (param(q, "path"), param(q, "prefix")) {
        (Some(raw), None) => h.registry.kill(&path(raw)?),
        (None, Some(raw)) => h.registry.kill_random(&path(raw)?),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of path= or prefix=",
            ))
        }
    };
    match result {
        Ok(killed) => Ok(doc(json!({ "killed": killed }))),
        Err(e @ (KillError::NotFound { .. } | KillError::NoneUnder { .. })) => {
            Err(ApiError::new(404, "NotFound", e.to_string()))
        }
        Err(e @ (KillError::NotKillable { .. } | KillError::NotRunning { .. })) => {
            Err(ApiError::new(409, "Conflict", e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::INSPECTOR_PAGE;

    #[test]
    fn the_inspector_page_is_one_self_contained_document() {
        let page = INSPECTOR_PAGE.as_str();
        assert!(!page.contains("{{style}}") && !page.contains("{{script}}"));
        assert!(page.contains("svg.sequence") && page.contains("function sequenceDiagram"));
        // The inlined script cannot end its own element early.
        let script = include_str!("inspector/app.js");
        assert!(!script.contains("</script"));
        // Nothing is fetched from elsewhere: no absolute URLs in what the browser loads
        // (the SVG namespace is a name, not a fetch), and no asset paths to resolve.
        let without_ns = page.replace("http://www.w3.org/2000/svg", "");
        for banned in [
            "http://", "https://", "src=", "href=\"/", "@import", "url(http",
        ] {
            assert!(!without_ns.contains(banned), "the page contains {banned:?}");
        }
        // Every request goes through `getJSON`, below the path the page was served at.
        assert_eq!(script.matches("fetch(").count(), 1);
        assert!(script.contains("fetch(ROOT + path"));
    }
}
