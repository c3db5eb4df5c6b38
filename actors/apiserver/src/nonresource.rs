//! Non-resource paths, after authorization like everything else: health and readiness,
//! `/version`, `/metrics`, discovery (legacy and aggregated), `/openapi/v3`, and the debug
//! views.

use navarch_model::{discovery, openapi, ApiError};
use serde_json::{json, Value};

use crate::request::{Body, Reply, RequestHead};
use crate::{debug, ApiServer};

/// The media type of aggregated discovery documents.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn text(code: u16, body: &str) -> Reply {
    Reply::Text {
        code,
        content_type: "text/plain",
        body: body.to_string(),
    }
}

fn json_doc(body: Value) -> Reply {
    Reply::Document {
        content_type: "application/json",
        body,
    }
}

/// Whether the client's first (preferred) Accept entry asks for aggregated discovery.
fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList"))
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "gitVersion": format!("v1.37.0+navarch.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub(crate) async fn serve(
    api: &ApiServer,
    head: &RequestHead,
    path: &str,
    body: Body,
) -> Result<Reply, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = head.verb == "get";
    let not_allowed = || {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {path})",
            head.verb.to_ascii_uppercase()
        ))
    };
    if let ["debug", rest @ ..] = segs.as_slice() {
        return debug::serve(api, head.verb, &rest.join("/"), &head.query, body).await;
    }
    if !get {
        return Err(not_allowed());
    }
    let aggregated = wants_aggregated(&head.origin.accept);
    let discovered = |doc: Option<Value>| doc.map(json_doc).ok_or_else(ApiError::path_not_found);
    match segs.as_slice() {
        ["healthz" | "livez", ..] => Ok(text(200, "ok")),
        ["readyz", ..] => Ok(match api.storage().member().status().leader {
            Some(_) => text(200, "ok"),
            None => text(503, "no leader known"),
        }),
        ["version"] => Ok(json_doc(version())),
        ["metrics"] => Ok(Reply::Text {
            code: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: api.metrics().encode(),
        }),
        ["api"] if aggregated => Ok(Reply::Document {
            content_type: AGGREGATED,
            body: discovery::aggregated(true),
        }),
        ["apis"] if aggregated => Ok(Reply::Document {
            content_type: AGGREGATED,
            body: discovery::aggregated(false),
        }),
        ["api"] => Ok(json_doc(discovery::api_versions(api.server_address()))),
        ["apis"] => Ok(json_doc(discovery::api_group_list())),
        ["api", v] => discovered(discovery::resource_list("", v)),
        ["apis", g] => discovered(discovery::api_group(g)),
        ["apis", g, v] => discovered(discovery::resource_list(g, v)),
        ["openapi", "v3"] => Ok(json_doc(openapi::index())),
        ["openapi", "v3", rest @ ..] => discovered(openapi::document(&rest.join("/"))),
        _ => Err(ApiError::path_not_found()),
    }
}
