//! API errors as Kubernetes `Status` objects: code, reason, message and details.

use serde_json::{json, Value};

/// One field-level cause of an `Invalid` (422) error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Kubernetes' cause type: `FieldValueInvalid`, `FieldValueRequired`,
    /// `FieldValueNotSupported`, `FieldValueForbidden`, `FieldValueDuplicate`,
    /// `FieldValueTooLong`, `FieldValueTypeInvalid`.
    pub reason: &'static str,
    /// The JSON path of the field, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn required(field: impl Into<String>) -> Self {
        Self::new("FieldValueRequired", field, "Required value")
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueInvalid", field, message)
    }
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueNotSupported", field, message)
    }
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueForbidden", field, message)
    }
}

/// An error the API answers with: an HTTP code and the `Status` body that explains it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel through many `Result`s and most have no details.
    pub details: Box<Details>,
}

/// The `details` of a `Status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// `details.name`, `details.group`, `details.kind` (the resource, as Kubernetes does).
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    /// Seconds, for 429 (and the `Retry-After` header).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    /// Sets `details` from a resource (`plural`, `group`) and an object name.
    pub fn about(mut self, plural: &str, group: &str, name: &str) -> Self {
        self.details.kind = Some(plural.to_string());
        self.details.group = Some(group.to_string());
        if !name.is_empty() {
            self.details.name = Some(name.to_string());
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn not_found(qualified_resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{qualified_resource} \"{name}\" not found"),
        )
    }
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }
    pub fn already_exists(qualified_resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{qualified_resource} \"{name}\" already exists"),
        )
    }
    pub fn conflict(qualified_resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified_resource} \"{name}\": {why}"),
        )
    }
    /// The optimistic-concurrency conflict.
    pub fn stale(qualified_resource: &str, name: &str) -> Self {
        Self::conflict(
            qualified_resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"),
        )
    }
    /// 422 Invalid: `<Kind>.<group> "<name>" is invalid: <causes>`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if list.len() == 1 {
            format!("{what} \"{name}\" is invalid: {}", list[0])
        } else {
            format!("{what} \"{name}\" is invalid: [{}]", list.join(", "))
        };
        let mut e = Self::new(422, "Invalid", message);
        e.details.kind = Some(kind.to_string());
        e.details.group = Some(group.to_string());
        e.details.name = Some(name.to_string());
        e.details.causes = causes;
        e
    }
    pub fn too_many_requests(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.details.retry_after = Some(retry_after);
        e
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Reads a `Status` answered by a server (the inverse of [`to_status`](Self::to_status)).
    /// A reason Kubernetes does not define reads as `Unknown`; a body that is no `Status`
    /// gives `None`.
    pub fn from_status(status: &Value) -> Option<ApiError> {
        if status["kind"] != "Status" {
            return None;
        }
        let code = status["code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())?;
        let reason = known_reason(status["reason"].as_str().unwrap_or(""));
        let mut e = ApiError::new(code, reason, status["message"].as_str().unwrap_or(""));
        let d = &status["details"];
        let s = |k: &str| d[k].as_str().map(str::to_string);
        e.details.name = s("name");
        e.details.group = s("group");
        e.details.kind = s("kind");
        e.details.retry_after = d["retryAfterSeconds"].as_u64();
        if let Some(causes) = d["causes"].as_array() {
            e.details.causes = causes
                .iter()
                .map(|c| Cause {
                    reason: known_cause(c["reason"].as_str().unwrap_or("")),
                    field: c["field"].as_str().unwrap_or("").to_string(),
                    message: c["message"].as_str().unwrap_or("").to_string(),
                })
                .collect();
        }
        Some(e)
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.details.retry_after
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let d = &self.details;
        let mut details = serde_json::Map::new();
        if let Some(n) = &d.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &d.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &d.kind {
            details.insert("kind".into(), json!(k));
        }
        if !d.causes.is_empty() {
            let causes: Vec<Value> = d
                .causes
                .iter()
                .map(|c| {
                    // `field` is omitted when empty, as Kubernetes does (a DisruptionBudget
                    // cause names no field).
                    let mut cause = json!({"reason": c.reason, "message": c.message});
                    if !c.field.is_empty() {
                        cause["field"] = json!(c.field);
                    }
                    cause
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = d.retry_after {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// Kubernetes' `StatusReason` values, as `&'static str`.
const REASONS: &[&str] = &[
    "",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "Gone",
    "Invalid",
    "ServerTimeout",
    "StoreReadError",
    "Timeout",
    "TooManyRequests",
    "BadRequest",
    "MethodNotAllowed",
    "NotAcceptable",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
    "InternalError",
    "Expired",
    "ServiceUnavailable",
];

fn known_reason(r: &str) -> &'static str {
    REASONS
        .iter()
        .find(|k| **k == r)
        .copied()
        .unwrap_or("Unknown")
}

const CAUSES: &[&str] = &[
    "FieldValueNotFound",
    "FieldValueRequired",
    "FieldValueDuplicate",
    "FieldValueInvalid",
    "FieldValueNotSupported",
    "FieldValueForbidden",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
    "UnexpectedServerResponse",
    "FieldManagerConflict",
    "ResourceVersionTooLarge",
    "DisruptionBudget",
    "NamespaceTerminating",
];

fn known_cause(r: &str) -> &'static str {
    CAUSES
        .iter()
        .find(|k| **k == r)
        .copied()
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_kubernetes() {
        let s = ApiError::not_found("deployments.apps", "nginx")
            .about("deployments", "apps", "nginx")
            .to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"nginx\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "Deployment",
            "apps",
            "web",
            vec![Cause::invalid(
                "spec.replicas",
                "must be greater than or equal to 0",
            )],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert!(s["message"]
            .as_str()
            .unwrap()
            .contains("Deployment.apps \"web\" is invalid"));
        assert_eq!(ApiError::from_status(&s), Some(e));
        assert_eq!(
            ApiError::from_status(&serde_json::json!({"kind": "Pod"})),
            None
        );
    }
}
