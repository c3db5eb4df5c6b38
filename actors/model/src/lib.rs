//! The Kubernetes object rules that navarch's API server (and, later, its per-object actors)
//! apply: the kinds we serve, validation and defaults, patches, selectors, the Table format,
//! discovery, OpenAPI documents, authorization (Node and RBAC), admission, the review kinds'
//! answers, `Status` errors, and Kubernetes' protobuf wire format converted to and from that
//! JSON (`protobuf`).
//!
//! Everything here is pure: JSON in, JSON or a decision out. No store, no actix, no I/O; the
//! API server (`navarch-apiserver`) is the shell that feeds requests in and carries results out.
//! Objects travel as `serde_json::Value` shaped like Kubernetes' JSON; typed `k8s-openapi`
//! structs are used where the schema matters (decoding, unknown fields, OpenAPI).
//!
//! Where to start: [`kinds`] (the table everything is driven by), [`validate`] (the write
//! pipeline), then [`authz`] (who may do what: the Node,RBAC union), [`rbac`] (the RBAC
//! snapshot, bootstrap policy and its reconcile), [`escalation`] and [`node_restriction`]
//! (checks on writes), [`admission`] (the mutating plugins), [`pdb`] (PodDisruptionBudget
//! status and eviction decisions), [`review`] (`kubectl auth can-i` and `whoami`) and
//! [`identity`] (the users navarch's own components are).

pub mod admission;
pub mod authz;
pub mod discovery;
pub mod escalation;
pub mod identity;
pub mod json;
pub mod kinds;
pub mod node_restriction;
pub mod openapi;
pub mod options;
pub mod patch;
pub mod pdb;
pub mod protobuf;
pub mod rbac;
pub mod review;
pub mod selector;
pub mod status;
pub mod table;
pub mod time;
pub mod validate;
pub mod watch;

pub use kinds::Kind;
pub use status::ApiError;

/// The annotation an object gets when a request creates it: that request's correlation id,
/// so that the work the object sets off (its controllers' and its node's actors) is traced
/// to the request, and a user can go from the object to `navctl inspect trace <id>`.
pub const CORRELATION_ANNOTATION: &str = "navarch.io/correlation-id";

/// The correlation id an object was created under, if it says.
pub fn correlation_of(obj: &serde_json::Value) -> Option<&str> {
    obj["metadata"]["annotations"][CORRELATION_ANNOTATION].as_str()
}
