//! The Table format (`meta.k8s.io/v1` Table) with the columns kubectl users expect per kind.

use serde_json::Value;

use crate::kinds::Kind;

/// The `columnDefinitions` of a kind's Table.
pub fn columns(kind: &Kind) -> Value {
    let _ = kind;
    unimplemented!("helper: table")
}

/// One row: `cells` (matching [`columns`]) and `object`, a `PartialObjectMetadata` with the
/// object's metadata. `now` is the current time as Unix seconds (for the Age column).
pub fn row(kind: &Kind, object: &Value, now: i64) -> Value {
    let _ = (kind, object, now);
    unimplemented!("helper: table")
}

/// A whole Table: columns, one row per object, and the list metadata
/// (`resourceVersion`, and `continue` when not empty).
pub fn table(
    kind: &Kind,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    now: i64,
) -> Value {
    let _ = (kind, objects, resource_version, continue_token, now);
    unimplemented!("helper: table")
}
