//! Request bodies into values: JSON (with Kubernetes' strict checks for duplicate fields),
//! Kubernetes' protobuf (what kubectl's typed client sends), and the values in-process callers
//! pass as they are.

use navarch_model::json;
use navarch_model::kinds::Kind;
use navarch_model::options::Patch;
use navarch_model::patch::PatchType;
use navarch_model::protobuf::{self, ProtobufError};
use navarch_model::status::Cause;
use navarch_model::validate::FieldValidation;
use navarch_model::ApiError;
use serde_json::Value;

use crate::request::Body;

/// The media type of a `Content-Type` header value (parameters dropped, lowercased).
pub(crate) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(ct: &str) -> bool {
    ct.is_empty() || ct == "application/json" || ct == "*/*"
}

fn is_protobuf(ct: &str) -> bool {
    ct == protobuf::MEDIA_TYPE
}

/// A protobuf body as the JSON object it encodes.
fn from_protobuf(bytes: &[u8]) -> Result<Value, ApiError> {
    protobuf::decode(bytes).map_err(|e| match e {
        ProtobufError::UnsupportedKind { .. } => {
            ApiError::unsupported_media_type(&format!("{} ({e})", protobuf::MEDIA_TYPE))
        }
        other => ApiError::bad_request(format!("the protobuf body cannot be decoded: {other}")),
    })
}

/// An object body (create, update, a review, a binding): the value, and the warnings
/// `fieldValidation=Warn` turns duplicate fields into. Under `Strict` a duplicate field is a
/// 422, as in Kubernetes.
pub(crate) fn object(
    kind: Option<&Kind>,
    body: Body,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    match body {
        Body::Value(v) => Ok((v, Vec::new())),
        Body::Empty | Body::Patch(_) => Err(ApiError::bad_request("the request needs a body")),
        Body::Encoded {
            content_type,
            bytes,
        } => {
            let ct = essence(&content_type);
            if is_protobuf(&ct) {
                // Protobuf has no duplicate fields to report.
                return Ok((from_protobuf(&bytes)?, Vec::new()));
            }
            if !is_json(&ct) {
                return Err(ApiError::unsupported_media_type(&ct));
            }
            let parsed = json::parse(&bytes).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            })?;
            if parsed.duplicates.is_empty() || validation == FieldValidation::Ignore {
                return Ok((parsed.value, Vec::new()));
            }
            if validation == FieldValidation::Strict {
                let name = parsed.value["metadata"]["name"].as_str().unwrap_or("");
                let causes = parsed
                    .duplicates
                    .iter()
                    .map(|d| Cause::new("FieldValueDuplicate", d, json::duplicate_message(d)))
                    .collect();
                let (k, g) = kind.map(|k| (k.kind, k.group)).unwrap_or(("Object", ""));
                return Err(ApiError::invalid(k, g, name, causes));
            }
            let warnings = parsed
                .duplicates
                .iter()
                .map(|d| json::duplicate_message(d))
                .collect();
            Ok((parsed.value, warnings))
        }
    }
}

/// A patch: its type (from the `Content-Type` over HTTP) and its document.
pub(crate) fn patch(body: Body) -> Result<Patch, ApiError> {
    match body {
        Body::Patch(p) => Ok(p),
        Body::Encoded {
            content_type,
            bytes,
        } => {
            let ct = essence(&content_type);
            let ty = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
            if ty == PatchType::Apply {
                // Server-side apply sends YAML or JSON; it is refused with an explanation.
                return Ok(Patch {
                    ty,
                    body: Value::Null,
                });
            }
            let body = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            Ok(Patch { ty, body })
        }
        Body::Value(_) | Body::Empty => Err(ApiError::bad_request(
            "a patch needs a body with its Content-Type",
        )),
    }
}

/// A delete's optional `DeleteOptions` body.
pub(crate) fn optional_object(body: Body) -> Result<Option<Value>, ApiError> {
    match body {
        Body::Empty | Body::Patch(_) => Ok(None),
        Body::Value(v) => Ok(Some(v)),
        Body::Encoded {
            content_type,
            bytes,
        } => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            let ct = essence(&content_type);
            if is_protobuf(&ct) {
                return from_protobuf(&bytes).map(Some);
            }
            if !is_json(&ct) {
                return Err(ApiError::unsupported_media_type(&ct));
            }
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            })
        }
    }
}
