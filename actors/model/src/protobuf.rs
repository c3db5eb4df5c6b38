//! Kubernetes' protobuf wire format (`application/vnd.kubernetes.protobuf`), converted to and
//! from the JSON objects navarch works with. Pure: bytes in, JSON out, and back; the API
//! server negotiates the media type and calls these.
//!
//! # The wire format, as Kubernetes' apimachinery writes it
//!
//! - **A body** (`runtime/serializer/protobuf`, `Serializer`): the 4 bytes `k8s\x00`, then a
//!   `runtime.Unknown` message: `typeMeta` (1: `apiVersion`, `kind`), `raw` (2: the object's
//!   own message, which has no type fields), `contentEncoding` (3) and `contentType` (4),
//!   both written empty. Lists are objects like any other (`PodList`: `metadata`, `items`;
//!   items carry no `apiVersion`/`kind`).
//! - **A watch stream** (`application/vnd.kubernetes.protobuf;stream=watch`): frames of a
//!   4-byte big-endian length and a `metav1.WatchEvent` written *without* magic or envelope
//!   (the `RawSerializer`): `type` (1) and `object` (2, a `RawExtension` whose `raw` is the
//!   object as a full body, magic and envelope included). That is what the API server's
//!   watch encoder writes and client-go's watch decoder reads.
//!
//! # The JSON
//!
//! Exactly Kubernetes' JSON: the names of k8s-openapi's schemas, `int64` as numbers, `Time`
//! in whole seconds, `MicroTime` with microseconds, `IntOrString` a number or a string,
//! quantities strings, `Duration` Go's duration text, `FieldsV1`/`RawExtension` embedded
//! JSON, bytes base64, absent fields omitted. A zero value Go would omit (`nodePort: 0` on a
//! non-pointer `omitempty` field, which kubectl's Go encoder always puts on the wire) is
//! omitted; a pointer's zero (`replicas: 0`) is kept. A JSON value protobuf cannot carry
//! (wrong type, or a field the message has no place for) is an error naming its path, never
//! dropped. The per-message code is generated (`protobuf/generated.rs`, by
//! `tests/protobuf_codegen.rs`) from k8s-pb's own structs.
//!
//! # Bounds
//!
//! A body may be at most [`MAX_BODY_BYTES`]. Before prost allocates anything, one pass over
//! the bytes (`bounds.rs`) refuses messages nested deeper than [`MAX_DEPTH`], an estimated
//! allocation above [`MAX_DECODED_BYTES`] (repeated empty messages cost two bytes each on
//! the wire but a struct each in memory), and unknown fields that carry data.

mod bounds;
mod convert;
#[rustfmt::skip]
mod generated;

use k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use prost_k8s::Message;
use serde_json::Value;

/// The protobuf media type of bodies and responses.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The media type of a protobuf watch response (`Content-Type` of the stream).
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// The 4 bytes every protobuf body starts with: `k8s` and the envelope format 0 (`Unknown`).
pub const MAGIC: [u8; 4] = *b"k8s\x00";

/// The largest body [`decode`] takes (the API server's own limit is lower).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The estimated memory one [`decode`] may allocate (see `bounds.rs` for the estimate).
pub const MAX_DECODED_BYTES: usize = 64 << 20;

/// The deepest message nesting [`decode`] accepts, counting the object itself (Kubernetes'
/// objects nest about a dozen deep; prost's own limit is 100).
pub const MAX_DEPTH: usize = 64;

/// The event types of a watch stream.
pub const WATCH_EVENT_TYPES: &[&str] = &["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"];

/// Why a body could not be decoded or an object encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("not a Kubernetes protobuf body: it does not start with k8s\\x00")]
    NoMagic,
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    #[error("the protobuf envelope has no {0}")]
    MissingTypeMeta(&'static str),
    #[error("protobuf is not supported for kind {kind:?} of apiVersion {api_version:?}")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("unsupported protobuf envelope: contentEncoding {content_encoding:?}, contentType {content_type:?}")]
    UnsupportedEnvelope {
        content_encoding: String,
        content_type: String,
    },
    #[error("protobuf body would take more than {limit} bytes to decode")]
    TooComplex { limit: usize },
    #[error("protobuf message nested deeper than {limit} at {path:?}")]
    TooDeep { path: String, limit: usize },
    #[error("unknown protobuf field {tag} of {message} at {path:?} carries data navarch cannot represent")]
    UnknownProtobufField {
        path: String,
        message: &'static str,
        tag: u32,
    },
    #[error("{path}: {message}")]
    InvalidJson { path: String, message: String },
    #[error("{path}: field has no place in protobuf")]
    NoProtobufField { path: String },
    #[error("invalid watch event type {0:?}")]
    InvalidEventType(String),
    #[error("malformed watch frame: {0}")]
    BadFrame(String),
}

/// One convertible kind: the generated table in `generated.rs` lists them.
pub(crate) struct KindCodec {
    /// `v1`, `apps/v1`; `*` for a kind registered in every group version (DeleteOptions).
    pub api_version: &'static str,
    pub kind: &'static str,
    pub shape: &'static bounds::Shape,
    /// The object's own message (the envelope's `raw`) to JSON, without apiVersion/kind.
    pub decode: fn(&[u8]) -> Result<Value, ProtobufError>,
    /// A JSON object to the object's own message.
    pub encode: fn(&Value) -> Result<Vec<u8>, ProtobufError>,
}

fn codec(api_version: &str, kind: &str) -> Option<&'static KindCodec> {
    generated::KINDS
        .iter()
        .find(|c| c.kind == kind && (c.api_version == api_version || c.api_version == "*"))
}

/// Whether objects of `api_version`/`kind` have a protobuf form here (`Table`, for one,
/// has not; the server answers those in JSON).
pub fn is_encodable(api_version: &str, kind: &str) -> bool {
    codec(api_version, kind).is_some()
}

/// The kinds [`encode`] and [`decode`] handle, as `(apiVersion, kind)`; `*` is any.
pub fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    generated::KINDS.iter().map(|c| (c.api_version, c.kind))
}

/// Decodes a protobuf body (magic, envelope, object) to the JSON object it means, with
/// `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ProtobufError::TooLarge {
            len: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let rest = body.strip_prefix(&MAGIC).ok_or(ProtobufError::NoMagic)?;
    let Unknown {
        type_meta,
        raw,
        content_encoding,
        content_type,
    } = Unknown::decode(rest).map_err(|e| ProtobufError::Malformed(e.to_string()))?;
    let content_encoding = content_encoding.unwrap_or_default();
    let content_type = content_type.unwrap_or_default();
    if !content_encoding.is_empty() || !(content_type.is_empty() || content_type == MEDIA_TYPE) {
        return Err(ProtobufError::UnsupportedEnvelope {
            content_encoding,
            content_type,
        });
    }
    let TypeMeta { api_version, kind } = type_meta.unwrap_or_default();
    let api_version = api_version
        .filter(|s| !s.is_empty())
        .ok_or(ProtobufError::MissingTypeMeta("apiVersion"))?;
    let kind = kind
        .filter(|s| !s.is_empty())
        .ok_or(ProtobufError::MissingTypeMeta("kind"))?;
    let c = codec(&api_version, &kind).ok_or_else(|| ProtobufError::UnsupportedKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let raw = raw.unwrap_or_default();
    bounds::check(&raw, c.shape)?;
    let mut object = (c.decode)(&raw)?;
    if let Value::Object(o) = &mut object {
        o.insert("apiVersion".into(), Value::String(api_version));
        o.insert("kind".into(), Value::String(kind));
    }
    Ok(object)
}

/// Encodes a JSON object (with `apiVersion` and `kind`) as a protobuf body: magic, envelope,
/// object.
pub fn encode(object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let field = |name: &str| -> Result<&str, ProtobufError> {
        match object.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(ProtobufError::InvalidJson {
                path: name.to_string(),
                message: "a non-empty string is required".into(),
            }),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let c = codec(api_version, kind).ok_or_else(|| ProtobufError::UnsupportedKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })?;
    let raw = (c.encode)(object)?;
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        // Go writes both, empty.
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + envelope.encoded_len());
    out.extend_from_slice(&MAGIC);
    envelope
        .encode(&mut out)
        .map_err(|e| ProtobufError::Malformed(e.to_string()))?;
    Ok(out)
}

/// One frame of a protobuf watch stream: the 4-byte big-endian length, then the
/// `WatchEvent` (`type`, and the object as a full protobuf body in `object.raw`).
pub fn encode_watch_event(event_type: &str, object: &Value) -> Result<Vec<u8>, ProtobufError> {
    if !WATCH_EVENT_TYPES.contains(&event_type) {
        return Err(ProtobufError::InvalidEventType(event_type.to_string()));
    }
    let event = WatchEvent {
        r#type: Some(event_type.to_string()),
        object: Some(RawExtension {
            raw: Some(encode(object)?),
        }),
    };
    let len = event.encoded_len();
    let prefix = u32::try_from(len).map_err(|_| ProtobufError::TooLarge {
        len,
        limit: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&prefix.to_be_bytes());
    event
        .encode(&mut out)
        .map_err(|e| ProtobufError::Malformed(e.to_string()))?;
    Ok(out)
}

/// One event read off a protobuf watch stream by [`decode_watch_event`].
#[derive(Clone, Debug, PartialEq)]
pub struct WatchFrame {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub event_type: String,
    /// The object, decoded like a body (with `apiVersion` and `kind`).
    pub object: Value,
    /// The bytes of the stream the frame took (its length prefix included).
    pub consumed: usize,
}

/// Reads the first frame of a protobuf watch stream: `Ok(None)` while `stream` does not
/// yet hold a whole frame.
pub fn decode_watch_event(stream: &[u8]) -> Result<Option<WatchFrame>, ProtobufError> {
    let Some((len, rest)) = stream.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_BODY_BYTES {
        return Err(ProtobufError::TooLarge {
            len,
            limit: MAX_BODY_BYTES,
        });
    }
    let Some(frame) = rest.get(..len) else {
        return Ok(None);
    };
    let WatchEvent { r#type, object } =
        WatchEvent::decode(frame).map_err(|e| ProtobufError::BadFrame(e.to_string()))?;
    let event_type = r#type.unwrap_or_default();
    if !WATCH_EVENT_TYPES.contains(&event_type.as_str()) {
        return Err(ProtobufError::InvalidEventType(event_type));
    }
    let RawExtension { raw } = object.unwrap_or_default();
    let object = decode(&raw.unwrap_or_default())?;
    Ok(Some(WatchFrame {
        event_type,
        object,
        consumed: 4 + len,
    }))
}
