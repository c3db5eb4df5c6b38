//! The node link's wire: the requests a node sends a master over QUIC (`node.call`, and
//! `node.watch` for watches, a server stream), and what comes back. Both ends share these
//! types; bincode carries them (`navarch_net::codec`), objects travel inside as Kubernetes
//! JSON text and refusals as the Kubernetes `Status` an HTTPS caller would get.
//!
//! A request names what an HTTPS request's path and method name: the Kubernetes verb, the
//! kind by group, version and plural, the namespace, name and subresource, the query
//! parameters as HTTP would carry them ([`navarch_model::options`]' `to_query`), and a body
//! with its content type.

use navarch_model::kinds::{self, Kind};
use navarch_model::watch::{EventType, WatchEvent};
use navarch_model::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ClientError, ObjectList, Written};

/// The router prefix the node link is mounted on.
pub const PREFIX: &str = "node";
/// A unary API call: [`LinkRequest`] in, [`LinkReply`] out.
pub const CALL_METHOD: &str = "node.call";
/// A watch: [`LinkRequest`] in, a stream of [`WatchFrame`]s out.
pub const WATCH_METHOD: &str = "node.watch";

/// The Kubernetes verbs the link carries (those of [`crate::Client`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    /// The verb as authorization and the audit log name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Whether the verb only reads: a read that failed in transport may go to another
    /// master, a write only if it was never sent.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// A kind as an API path names it: group (empty for the core group), version, plural.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindRef {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl KindRef {
    pub fn of(kind: &Kind) -> KindRef {
        KindRef {
            group: kind.group.to_string(),
            version: kind.version.to_string(),
            plural: kind.plural.to_string(),
        }
    }

    /// The served kind it names, if navarch serves it.
    pub fn resolve(&self) -> Option<&'static Kind> {
        kinds::lookup(&self.group, &self.version, &self.plural)
    }
}

/// A request body: bytes as HTTP would carry them, with their content type (JSON for
/// objects and delete options, a patch's own type for patches).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBody {
    pub content_type: String,
    pub data: String,
}

impl LinkBody {
    /// A JSON document.
    pub fn json(v: &Value) -> LinkBody {
        LinkBody {
            content_type: "application/json".to_string(),
            data: v.to_string(),
        }
    }
}

/// One API request over the link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequest {
    pub verb: Verb,
    pub kind: KindRef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Query parameters, as an HTTPS request would send them.
    pub query: Vec<(String, String)>,
    pub body: Option<LinkBody>,
    /// Who is calling, for the audit log (HTTP's `User-Agent`).
    pub user_agent: String,
}

/// The answer to a [`LinkRequest`] on [`CALL_METHOD`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkReply {
    /// One object (or, for a binding, a `Status` of success), as JSON, with the HTTP code
    /// an HTTPS caller would get and the warnings it would get as `Warning` headers.
    Object {
        code: u16,
        object: String,
        warnings: Vec<String>,
    },
    /// One page of a list: its items as JSON and its list metadata.
    List {
        items: Vec<String>,
        resource_version: String,
        continue_token: Option<String>,
        remaining_item_count: Option<u64>,
        warnings: Vec<String>,
    },
    /// The request was refused or failed: the Kubernetes `Status` (JSON) an HTTPS caller
    /// would get as the body of its error response.
    Status { status: String },
}

/// One item of a watch's stream on [`WATCH_METHOD`]. The first is `Accepted` or `Refused`
/// (then the stream ends); events follow an `Accepted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchFrame {
    /// The server accepted the watch; events follow.
    Accepted,
    /// The server refused the watch with this `Status` (JSON).
    Refused { status: String },
    /// One watch event: its type (`ADDED`, ..., `BOOKMARK`, `ERROR`) and its object as JSON.
    Event { event_type: String, object: String },
}

impl WatchFrame {
    pub fn event(e: &WatchEvent) -> WatchFrame {
        WatchFrame::Event {
            event_type: e.event_type.as_str().to_string(),
            object: e.object.to_string(),
        }
    }

    pub fn refused(e: &ApiError) -> WatchFrame {
        WatchFrame::Refused {
            status: e.to_status().to_string(),
        }
    }
}

impl LinkReply {
    pub fn status(e: &ApiError) -> LinkReply {
        LinkReply::Status {
            status: e.to_status().to_string(),
        }
    }

    pub fn list(list: &ObjectList, warnings: Vec<String>) -> LinkReply {
        LinkReply::List {
            items: list.items.iter().map(Value::to_string).collect(),
            resource_version: list.resource_version.clone(),
            continue_token: list.continue_token.clone(),
            remaining_item_count: list.remaining_item_count,
            warnings,
        }
    }

    /// The object of an `Object` reply with its warnings; a `Status` is the API error it
    /// carries.
    pub fn into_written(self) -> Result<Written, ClientError> {
        match self {
            LinkReply::Object {
                object, warnings, ..
            } => Ok(Written {
                object: parse(&object)?,
                warnings,
            }),
            LinkReply::Status { status } => Err(status_error(&status)),
            LinkReply::List { .. } => Err(ClientError::Decode(
                "a list where an object was expected".into(),
            )),
        }
    }

    /// The page of a `List` reply; a `Status` is the API error it carries.
    pub fn into_list(self) -> Result<ObjectList, ClientError> {
        match self {
            LinkReply::List {
                items,
                resource_version,
                continue_token,
                remaining_item_count,
                ..
            } => Ok(ObjectList {
                items: items.iter().map(|i| parse(i)).collect::<Result<_, _>>()?,
                resource_version,
                continue_token,
                remaining_item_count,
            }),
            LinkReply::Status { status } => Err(status_error(&status)),
            LinkReply::Object { .. } => Err(ClientError::Decode(
                "an object where a list was expected".into(),
            )),
        }
    }
}

fn parse(json: &str) -> Result<Value, ClientError> {
    serde_json::from_str(json).map_err(|e| ClientError::Decode(format!("an object: {e}")))
}

/// The API error a `Status` (JSON) carries.
pub fn status_error(status: &str) -> ClientError {
    match serde_json::from_str::<Value>(status)
        .ok()
        .and_then(|v| ApiError::from_status(&v))
    {
        Some(e) => ClientError::Api(e),
        None => ClientError::Decode(format!(
            "a refusal that is no Status: {}",
            status.chars().take(200).collect::<String>()
        )),
    }
}

/// The watch event a frame after `Accepted` carries.
pub fn frame_event(frame: WatchFrame) -> Result<WatchEvent, ClientError> {
    match frame {
        WatchFrame::Event { event_type, object } => {
            let event_type = EventType::parse(&event_type).ok_or_else(|| {
                ClientError::Decode(format!("unknown watch event type {event_type:?}"))
            })?;
            Ok(WatchEvent {
                event_type,
                object: parse(&object)?,
            })
        }
        WatchFrame::Refused { status } => Err(status_error(&status)),
        WatchFrame::Accepted => Err(ClientError::Decode(
            "a second acceptance inside a watch".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_net::codec;
    use serde_json::json;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
        codec::decode(&codec::encode(v).unwrap()).unwrap()
    }

    #[test]
    fn a_request_survives_the_codec() {
        let pods = crate::kind("", "v1", "pods");
        let req = LinkRequest {
            verb: Verb::Patch,
            kind: KindRef::of(pods),
            namespace: Some("shop".into()),
            name: Some("web".into()),
            subresource: Some("status".into()),
            query: vec![("fieldManager".into(), "hollow".into())],
            body: Some(LinkBody {
                content_type: "application/strategic-merge-patch+json".into(),
                data: r#"{"status":{"phase":"Running"}}"#.into(),
            }),
            user_agent: "navarch-agent".into(),
        };
        let back = round_trip(&req);
        assert_eq!(back, req);
        assert_eq!(back.kind.resolve(), Some(pods));
        assert_eq!(
            KindRef {
                group: "apps".into(),
                version: "v1".into(),
                plural: "widgets".into()
            }
            .resolve(),
            None
        );
    }

    #[test]
    fn replies_carry_objects_lists_and_statuses() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "web", "resourceVersion": "7"}});
        let reply = round_trip(&LinkReply::Object {
            code: 201,
            object: pod.to_string(),
            warnings: vec!["unknown field \"spec.x\"".into()],
        });
        let w = reply.into_written().unwrap();
        assert_eq!(w.object, pod);
        assert_eq!(w.warnings, vec!["unknown field \"spec.x\"".to_string()]);

        let list = ObjectList {
            items: vec![pod.clone(), json!({"metadata": {"name": "db"}})],
            resource_version: "9".into(),
            continue_token: Some("tok".into()),
            remaining_item_count: Some(3),
        };
        let back = round_trip(&LinkReply::list(&list, vec![]))
            .into_list()
            .unwrap();
        assert_eq!(back, list);

        // A refusal comes back as the error an HTTPS caller would see, causes included.
        let e = ApiError::forbidden(
            "pods \"web\" is forbidden: node \"n1\" can only change pods bound to it",
        )
        .about("pods", "", "web");
        let got = round_trip(&LinkReply::status(&e))
            .into_written()
            .unwrap_err();
        assert_eq!(got, ClientError::Api(e.clone()));
        assert!(got.is_forbidden());
        let invalid = ApiError::invalid(
            "Pod",
            "",
            "web",
            vec![navarch_model::status::Cause::required("spec.containers")],
        );
        let got = round_trip(&LinkReply::status(&invalid))
            .into_list()
            .unwrap_err();
        assert_eq!(got, ClientError::Api(invalid));

        // Whatever is not a Status is a decode error, not an API error.
        assert!(matches!(
            status_error("{\"kind\":\"Pod\"}"),
            ClientError::Decode(_)
        ));
    }

    #[test]
    fn watch_frames_carry_events_and_refusals() {
        let ev = WatchEvent {
            event_type: EventType::Bookmark,
            object: json!({"kind": "Pod", "metadata": {"resourceVersion": "12"}}),
        };
        let frame = round_trip(&WatchFrame::event(&ev));
        assert_eq!(frame_event(frame).unwrap(), ev);
        let gone = ApiError::gone("too old resource version: 1 (5)");
        assert_eq!(
            frame_event(round_trip(&WatchFrame::refused(&gone))).unwrap_err(),
            ClientError::Api(gone)
        );
        assert!(frame_event(WatchFrame::Event {
            event_type: "EXPLODED".into(),
            object: "{}".into()
        })
        .is_err());
    }
}
