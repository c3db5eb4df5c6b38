//! The node link's server: a `navarch_net::Service` mounted on the master's QUIC router at
//! prefix `node`, answering `node.call` (one API request) and `node.watch` (a watch, as a
//! server stream of events) from node agents ([`navarch_client::LinkClient`]).
//!
//! Every request goes through the pipeline exactly as an HTTPS request with the same client
//! certificate would: the credentials are the certificate the QUIC handshake verified
//! (never a name sent in the body), so the authenticator makes the user (`system:node:<n>`
//! in `system:nodes` for a node), the Node authorizer and RBAC decide on the head, and
//! admission (NodeRestriction), decoding, validation, the verb on the store and the audit
//! record (transport `node-link`) follow. Like HTTPS, the link has its own in-flight limits
//! (reads and writes apart, 429 beyond; watches exempt) and refuses bodies over
//! [`MAX_BODY`] (413) after authorization; a watch lasts what an HTTP watch lasts (its
//! `timeoutSeconds`, else 30 to 60 minutes) and ends when the node stops reading it.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
pub use navarch_client::link::wire::PREFIX;
use navarch_client::link::wire::{
    LinkBody, LinkReply, LinkRequest, Verb, WatchFrame, CALL_METHOD, WATCH_METHOD,
};
use navarch_model::ApiError;
use navarch_net::{codec, CallContext, MountError, Router, RpcError, Service};
use tokio::sync::Semaphore;

use crate::authn::Credentials;
use crate::inprocess::path_of;
use crate::request::{Body, Origin, Reply, RequestHead, Target, Transport, MAX_BODY};
use crate::ApiServer;

/// The node link's in-flight limits (the master gives it the sizes of HTTP's).
#[derive(Clone, Copy, Debug)]
pub struct NodeLinkLimits {
    /// Reads in flight (watches excluded): beyond it, 429.
    pub max_inflight: usize,
    /// Writes in flight, apart from reads.
    pub max_mutating_inflight: usize,
}

impl Default for NodeLinkLimits {
    fn default() -> Self {
        NodeLinkLimits {
            max_inflight: 400,
            max_mutating_inflight: 200,
        }
    }
}

/// The `node.*` service.
#[derive(Clone)]
pub struct NodeLink {
    api: ApiServer,
    readonly: Arc<Semaphore>,
    mutating: Arc<Semaphore>,
}

impl std::fmt::Debug for NodeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLink").finish_non_exhaustive()
    }
}

/// Mounts the node link of `api` on `router` (methods `node.*`).
pub fn mount(router: &Router, api: &ApiServer, limits: NodeLinkLimits) -> Result<(), MountError> {
    router.mount(PREFIX, Arc::new(NodeLink::new(api.clone(), limits)))
}

/// The credentials of a link call: the certificate its connection presented, nothing else.
fn credentials(ctx: &CallContext) -> Credentials {
    Credentials::Presented {
        client_cert: ctx.peer.clone(),
        authorization: None,
        impersonate: None,
    }
}

fn bad_segment(seg: &str) -> bool {
    seg.is_empty() || seg.contains('/') || seg == "." || seg == ".."
}

/// The request head a link request stands for, refused as the HTTP route refuses a path or
/// a method: 404 for a kind, subresource or scope navarch does not serve, 405 for a verb
/// the target does not take, 400 for a name that is no path segment.
pub(crate) fn head(req: &LinkRequest, origin: Origin) -> Result<RequestHead, ApiError> {
    let kind = req.kind.resolve().ok_or_else(ApiError::path_not_found)?;
    let (ns, name, sub) = (
        req.namespace.as_deref(),
        req.name.as_deref(),
        req.subresource.as_deref(),
    );
    if let Some(seg) = [ns, name, sub]
        .into_iter()
        .flatten()
        .find(|s| bad_segment(s))
    {
        return Err(ApiError::bad_request(format!(
            "invalid path segment {seg:?}"
        )));
    }
    let scoped_right = match (kind.namespaced, ns) {
        (true, None) => name.is_none(),
        (true, Some(_)) => true,
        (false, ns) => ns.is_none(),
    };
    let sub_served = sub.is_none_or(|s| name.is_some() && kind.has_subresource(s));
    if !scoped_right || !sub_served {
        return Err(ApiError::path_not_found());
    }
    let not_allowed = || {
        ApiError::method_not_allowed(format!(
            "the server does not allow {} on the requested resource ({}{})",
            req.verb.as_str(),
            kind.qualified_resource(),
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))
    };
    let verb = match (req.verb, name.is_some(), sub) {
        (Verb::Get, true, Some("log")) => "get",
        (Verb::Create, true, Some("exec" | "binding" | "token")) => "create",
        (_, _, Some("log" | "exec" | "binding" | "token")) => return Err(not_allowed()),
        (Verb::Get, true, _) => "get",
        (Verb::List, false, None) => "list",
        (Verb::Watch, false, None) => "watch",
        (Verb::Create, false, None) => "create",
        (Verb::Update, true, _) => "update",
        (Verb::Patch, true, _) => "patch",
        (Verb::Delete, true, None) => "delete",
        _ => return Err(not_allowed()),
    };
    if !kind.serves(verb) {
        return Err(not_allowed());
    }
    Ok(RequestHead {
        verb,
        target: Target::Resource {
            kind,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        },
        query: req.query.clone(),
        origin,
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Bytes, RpcError> {
    codec::encode(v)
        .map(Bytes::from)
        .map_err(|e| RpcError::Decode(format!("encoding a node link answer: {e}")))
}

impl NodeLink {
    pub fn new(api: ApiServer, limits: NodeLinkLimits) -> NodeLink {
        NodeLink {
            api,
            readonly: Arc::new(Semaphore::new(limits.max_inflight.max(1))),
            mutating: Arc::new(Semaphore::new(limits.max_mutating_inflight.max(1))),
        }
    }

    fn origin(ctx: &CallContext, req: &LinkRequest) -> Origin {
        let path = match req.kind.resolve() {
            Some(kind) => path_of(
                kind,
                req.namespace.as_deref(),
                req.name.as_deref(),
                req.subresource.as_deref(),
            ),
            None => format!(
                "/apis/{}/{}/{}",
                req.kind.group, req.kind.version, req.kind.plural
            ),
        };
        Origin {
            transport: Transport::NodeLink,
            correlation: ctx.correlation,
            source_ip: ctx.remote.ip().to_string(),
            user_agent: req.user_agent.chars().take(256).collect(),
            path,
            accept: String::new(),
            upgrade: None,
        }
    }

    /// Parses the head; a request that names nothing served is audited as a non-resource
    /// request, as HTTP audits a path it cannot route.
    fn parse(
        &self,
        creds: &Credentials,
        ctx: &CallContext,
        req: &LinkRequest,
    ) -> Result<RequestHead, ApiError> {
        let origin = Self::origin(ctx, req);
        head(req, origin.clone()).map_err(|e| {
            let head = RequestHead {
                verb: "unknown",
                target: Target::NonResource {
                    path: origin.path.clone(),
                },
                query: Vec::new(),
                origin,
            };
            self.api.reject(creds, &head, e)
        })
    }

    /// One unary request through the pipeline.
    async fn serve(&self, ctx: CallContext, req: LinkRequest) -> LinkReply {
        let creds = credentials(&ctx);
        let head = match self.parse(&creds, &ctx, &req) {
            Ok(h) => h,
            Err(e) => return LinkReply::status(&e),
        };
        if head.verb == "watch" {
            let e = ApiError::bad_request(format!("a watch goes over {WATCH_METHOD}"));
            return LinkReply::status(&self.api.reject(&creds, &head, e));
        }
        let sem = if head.is_mutating() {
            &self.mutating
        } else {
            &self.readonly
        };
        let _permit = match sem.clone().try_acquire_owned() {
            Ok(p) => (p, self.api.in_flight(head.is_mutating())),
            Err(_) => {
                let e = ApiError::too_many_requests(
                    "too many requests in flight, please try again later",
                    1,
                );
                return LinkReply::status(&self.api.reject(&creds, &head, e));
            }
        };
        // Authorization on the head alone, before the body is looked at.
        let authorized = match self.api.authorize(&creds, head).await {
            Ok(a) => a,
            Err(e) => return LinkReply::status(&e),
        };
        let body = match req.body {
            None => Body::Empty,
            Some(LinkBody { data, .. }) if data.len() > MAX_BODY => {
                let e = ApiError::too_large(format!(
                    "the request body is larger than the limit of {MAX_BODY} bytes"
                ));
                return LinkReply::status(&self.api.refuse(authorized, e));
            }
            Some(LinkBody { content_type, data }) => Body::Encoded {
                content_type,
                bytes: Bytes::from(data),
            },
        };
        match self.api.execute(authorized, body).await {
            Ok(Reply::Object {
                code,
                object,
                warnings,
                ..
            }) => LinkReply::Object {
                code,
                object: object.to_string(),
                warnings,
            },
            Ok(Reply::List { list, warnings, .. }) => LinkReply::list(&list, warnings),
            Ok(other) => LinkReply::status(&ApiError::internal(format!(
                "the node link cannot carry the reply {other:?}"
            ))),
            Err(e) => LinkReply::status(&e),
        }
    }
}

impl Service for NodeLink {
    fn call(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let this = self.clone();
        Box::pin(async move {
            if method != CALL_METHOD {
                return Err(RpcError::Unsupported(format!(
                    "the node link has no method {method}"
                )));
            }
            let req: LinkRequest = codec::decode(&body)
                .map_err(|e| RpcError::Decode(format!("a node link request: {e}")))?;
            encode(&this.serve(ctx, req).await)
        })
    }

    fn stream(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        let this = self.clone();
        Box::pin(async move {
            if method != WATCH_METHOD {
                return Err(RpcError::Unsupported(format!(
                    "the node link has no stream {method}"
                )));
            }
            let req: LinkRequest = codec::decode(&body)
                .map_err(|e| RpcError::Decode(format!("a node link watch: {e}")))?;
            this.open_watch(ctx, req).await
        })
    }
}

impl NodeLink {
    async fn open_watch(
        &self,
        ctx: CallContext,
        req: LinkRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> {
        let creds = credentials(&ctx);
        let refused =
            |e: ApiError| -> Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> {
                let frame = encode(&WatchFrame::refused(&e))?;
                Ok(futures::stream::once(async move { Ok(frame) }).boxed())
            };
        let head = match self.parse(&creds, &ctx, &req) {
            Ok(h) => h,
            Err(e) => return refused(e),
        };
        if head.verb != "watch" {
            let e = ApiError::bad_request(format!("only watches go over {WATCH_METHOD}"));
            return refused(self.api.reject(&creds, &head, e));
        }
        let authorized = match self.api.authorize(&creds, head).await {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        match self.api.execute(authorized, Body::Empty).await {
            Ok(Reply::Watch { events, .. }) => {
                let accepted = encode(&WatchFrame::Accepted)?;
                let events = events.map(|e| encode(&WatchFrame::event(&e)));
                Ok(futures::stream::once(async move { Ok(accepted) })
                    .chain(events)
                    .boxed())
            }
            Ok(other) => refused(ApiError::internal(format!("a watch answered {other:?}"))),
            Err(e) => refused(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_client::link::wire::KindRef;

    fn req(
        verb: Verb,
        plural: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> LinkRequest {
        let (group, version) = match plural {
            "leases" => ("coordination.k8s.io", "v1"),
            "deployments" => ("apps", "v1"),
            _ => ("", "v1"),
        };
        LinkRequest {
            verb,
            kind: KindRef {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
            },
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            query: Vec::new(),
            body: None,
            user_agent: String::new(),
        }
    }

    fn verb_of(r: &LinkRequest) -> Result<&'static str, u16> {
        head(r, Origin::in_process(String::new()))
            .map(|h| h.verb)
            .map_err(|e| e.code)
    }

    #[test]
    fn link_requests_are_routed_as_http_paths_are() {
        use Verb::*;
        let cases = [
            (req(Get, "pods", Some("shop"), Some("web"), None), Ok("get")),
            (req(List, "pods", None, None, None), Ok("list")),
            (req(Watch, "pods", Some("shop"), None, None), Ok("watch")),
            (req(Create, "pods", Some("shop"), None, None), Ok("create")),
            (
                req(Patch, "pods", Some("shop"), Some("web"), Some("status")),
                Ok("patch"),
            ),
            (
                req(Create, "pods", Some("shop"), Some("web"), Some("binding")),
                Ok("create"),
            ),
            (
                req(Update, "nodes", None, Some("n1"), Some("status")),
                Ok("update"),
            ),
            (
                req(Update, "leases", Some("kube-node-lease"), Some("n1"), None),
                Ok("update"),
            ),
            (
                req(Delete, "pods", Some("shop"), Some("web"), None),
                Ok("delete"),
            ),
            (
                req(Get, "deployments", Some("shop"), Some("web"), Some("scale")),
                Ok("get"),
            ),
            // Not served: 404.
            (req(Get, "widgets", None, Some("w"), None), Err(404)),
            (req(Get, "pods", None, Some("web"), None), Err(404)),
            (req(Get, "nodes", Some("shop"), Some("n1"), None), Err(404)),
            (
                req(Get, "pods", Some("shop"), Some("web"), Some("scale")),
                Err(404),
            ),
            (
                req(Patch, "pods", Some("shop"), None, Some("status")),
                Err(404),
            ),
            // Not a verb of the target: 405.
            (req(Delete, "pods", Some("shop"), None, None), Err(405)),
            (req(Update, "pods", Some("shop"), None, None), Err(405)),
            (
                req(Get, "pods", Some("shop"), Some("web"), Some("binding")),
                Err(405),
            ),
            (
                req(Delete, "nodes", None, Some("n1"), Some("status")),
                Err(405),
            ),
            // Not a path segment: 400.
            (req(Get, "pods", Some("shop"), Some("a/b"), None), Err(400)),
            (req(Get, "pods", Some(".."), Some("web"), None), Err(400)),
        ];
        for (r, want) in cases {
            assert_eq!(verb_of(&r), want, "{r:?}");
        }
        let h = head(
            &req(Get, "pods", Some("shop"), Some("web"), Some("status")),
            Origin::in_process(String::new()),
        )
        .unwrap();
        assert_eq!(
            h.target,
            Target::Resource {
                kind: navarch_model::kinds::lookup("", "v1", "pods").unwrap(),
                namespace: Some("shop".into()),
                name: Some("web".into()),
                subresource: Some("status".into()),
            }
        );
    }
}
