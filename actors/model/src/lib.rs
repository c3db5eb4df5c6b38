//! The Kubernetes object rules that navarch's API server (and, later, its per-object actors)
//! apply: the kinds we serve, validation and defaults, patches, selectors, the Table format,
//! discovery, OpenAPI documents, authorization, `Status` errors, and Kubernetes' protobuf wire
//! format converted to and from that JSON (`protobuf`).
//!
//! Everything here is pure: JSON in, JSON or a decision out. No store, no actix, no I/O; the
//! API server in `navarch-bins` is the shell that feeds requests in and carries results out.
//! Objects travel as `serde_json::Value` shaped like Kubernetes' JSON; typed `k8s-openapi`
//! structs are used where the schema matters (decoding, unknown fields, OpenAPI).

pub mod authz;
pub mod discovery;
pub mod kinds;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod selector;
pub mod status;
pub mod table;
pub mod validate;

pub use kinds::Kind;
pub use status::ApiError;
