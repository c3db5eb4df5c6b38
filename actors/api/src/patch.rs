//! Patches as Kubernetes applies them: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch with the merge keys of our kinds.

use serde_json::Value;

/// The patch formats, by their content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let _ = content_type;
        unimplemented!("helper: patch")
    }
}

/// Why a patch could not be applied (the API answers 400 or 422).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (400).
    #[error("{0}")]
    Malformed(String),
    /// The patch is well-formed but cannot apply to this object, e.g. a failed JSON patch
    /// `test` or a path that does not exist (422).
    #[error("{0}")]
    Unprocessable(String),
}

/// Applies `patch` of type `ty` to `original`, an object of kind `kind` (e.g. `Deployment`),
/// and returns the patched object. `Apply` is not handled here.
pub fn apply(
    kind: &str,
    original: &Value,
    patch: &Value,
    ty: PatchType,
) -> Result<Value, PatchError> {
    let _ = (kind, original, patch, ty);
    unimplemented!("helper: patch")
}
