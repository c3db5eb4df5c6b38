//! What the pipeline takes and gives: a request's head (verb, target, query, origin), its
//! body, and the reply, all independent of the transport that carried them. The HTTPS layer
//! builds them from HTTP requests and encodes replies; the in-process client builds them
//! from calls and reads replies as values.

use std::fmt;

use bytes::Bytes;
use futures::stream::BoxStream;
use navarch_client::ObjectList;
use navarch_model::kinds::Kind;
use navarch_model::options::Patch;
use navarch_net::trace::CorrelationId;
use serde_json::Value;

use crate::watch::EventStream;

/// What a request addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An object, a collection or a subresource of a served kind.
    Resource {
        kind: &'static Kind,
        /// `None`: across namespaces (or a cluster-scoped kind).
        namespace: Option<String>,
        name: Option<String>,
        subresource: Option<String>,
    },
    /// Anything else (`/version`, discovery, `/openapi/v3`, `/metrics`, `/debug/...`): a
    /// decoded, normalized path.
    NonResource { path: String },
}

impl Target {
    pub fn kind(&self) -> Option<&'static Kind> {
        match self {
            Target::Resource { kind, .. } => Some(kind),
            Target::NonResource { .. } => None,
        }
    }
}

/// Largest request body accepted, whatever the transport (Kubernetes' limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How a request reached the server (for the audit log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Https,
    InProcess,
    /// A node agent's QUIC link (`nodelink`).
    NodeLink,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::InProcess => "in-process",
            Transport::NodeLink => "node-link",
        }
    }
}

/// Where a request came from and what it prefers, beyond its target.
#[derive(Clone, Debug)]
pub struct Origin {
    pub transport: Transport,
    pub correlation: Option<CorrelationId>,
    pub source_ip: String,
    pub user_agent: String,
    /// The path as the client sent it (for the audit record).
    pub path: String,
    /// The `Accept` header (discovery answers in the flavour it asks for).
    pub accept: String,
    /// The WebSocket subprotocol an exec's upgrade negotiated (`v5.channel.k8s.io`,
    /// `v4.channel.k8s.io`); `None` when the request is no WebSocket upgrade.
    pub upgrade: Option<&'static str>,
}

impl Origin {
    pub fn in_process(path: String) -> Origin {
        Origin {
            transport: Transport::InProcess,
            correlation: navarch_net::trace::current_correlation(),
            source_ip: String::new(),
            user_agent: String::new(),
            path,
            accept: String::new(),
            upgrade: None,
        }
    }
}

/// A request without its body: everything authorization looks at.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// Kubernetes' verb for resources (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`); the lowercase HTTP method for non-resource paths.
    pub verb: &'static str,
    pub target: Target,
    /// Query parameters as sent.
    pub query: Vec<(String, String)>,
    pub origin: Origin,
}

impl RequestHead {
    /// Whether the request runs for long (watches, followed logs, exec): not counted against
    /// in-flight limits.
    pub fn is_long_running(&self) -> bool {
        let follow = self
            .query
            .iter()
            .any(|(k, v)| k == "follow" && (v == "true" || v == "1"));
        match &self.target {
            Target::Resource { subresource, .. } => {
                self.verb == "watch"
                    || (subresource.as_deref() == Some("log") && follow)
                    || subresource.as_deref() == Some("exec")
            }
            Target::NonResource { path } => path == "/debug/messages" && follow,
        }
    }

    /// Whether the request may change state (for the mutating in-flight limit).
    pub fn is_mutating(&self) -> bool {
        !matches!(self.verb, "get" | "list" | "watch" | "head")
    }
}

/// A request's body.
#[derive(Clone)]
pub enum Body {
    Empty,
    /// Bytes as received, with their `Content-Type` (empty when none was sent).
    Encoded {
        content_type: String,
        bytes: Bytes,
    },
    /// A JSON value from an in-process caller: no encoding round trip.
    Value(Value),
    /// A patch from an in-process caller.
    Patch(Patch),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Encoded {
                content_type,
                bytes,
            } => write!(f, "Encoded({content_type}, {} bytes)", bytes.len()),
            Body::Value(_) => f.write_str("Value(..)"),
            Body::Patch(p) => write!(f, "Patch({:?})", p.ty),
        }
    }
}

/// A successful answer.
pub enum Reply {
    /// One object (or a `Status` of success, for a binding), with its HTTP code.
    Object {
        code: u16,
        /// The kind of a served object (lets the HTTP layer render a Table); `None` for
        /// Scale, Status and other views.
        kind: Option<&'static Kind>,
        object: Value,
        warnings: Vec<String>,
    },
    List {
        kind: &'static Kind,
        list: ObjectList,
        warnings: Vec<String>,
    },
    Watch {
        kind: &'static Kind,
        events: EventStream,
    },
    /// A JSON document (discovery, OpenAPI, version, debug views).
    Document {
        content_type: &'static str,
        body: Value,
    },
    /// Plain text (health, metrics).
    Text {
        code: u16,
        content_type: &'static str,
        body: String,
    },
    /// A live stream of pre-encoded chunks (the message tap followed, a pod's log).
    Stream {
        content_type: &'static str,
        chunks: BoxStream<'static, Bytes>,
    },
    /// An exec ready to run on the pod's node, once the transport has upgraded the
    /// connection (101 Switching Protocols).
    Exec(crate::kubelet::ExecSession),
}

impl Reply {
    pub fn code(&self) -> u16 {
        match self {
            Reply::Object { code, .. } | Reply::Text { code, .. } => *code,
            Reply::Exec(_) => 101,
            _ => 200,
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Object { code, object, .. } => write!(f, "Object({code}, {object})"),
            Reply::List { kind, list, .. } => {
                write!(f, "List({}, {} items)", kind.plural, list.items.len())
            }
            Reply::Watch { kind, .. } => write!(f, "Watch({})", kind.plural),
            Reply::Document { content_type, .. } => write!(f, "Document({content_type})"),
            Reply::Text { code, body, .. } => write!(f, "Text({code}, {body})"),
            Reply::Stream { content_type, .. } => write!(f, "Stream({content_type})"),
            Reply::Exec(s) => write!(f, "{s:?}"),
        }
    }
}
