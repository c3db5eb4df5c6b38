//! Kubernetes RBAC, pure: the rules of Roles and ClusterRoles, who their bindings grant them
//! to, and the decisions over them, as `kube-apiserver --authorization-mode=...,RBAC` makes
//! them.
//!
//! Start at [`RbacSnapshot`] (the cluster's RBAC objects, fed by the server from a list and a
//! watch, and `authorize`/`rules_for` over them), then [`rule`] (matching of one rule),
//! [`bootstrap`] (the roles and bindings every cluster starts with) and [`reconcile`] (how
//! the server brings the stored bootstrap objects up to date at start).
//!
//! Not here: aggregation (`aggregationRule`), which navarch refuses; the Node authorizer and
//! the union of authorizers (`crate::authz`); escalation checks (`crate::escalation`).

pub mod bootstrap;
pub mod coverage;
pub mod reconcile;
pub mod rule;
pub mod snapshot;

pub use rule::{PolicyRule, RoleRef, Subject};
pub use snapshot::{RbacDecision, RbacSnapshot, ResolvedRules};

use serde_json::Value;

use crate::kinds::Kind;

/// The API group of the RBAC kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The apiVersion of the RBAC kinds.
pub const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";

/// One of the four RBAC kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RbacKind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl RbacKind {
    /// The RBAC kind a served kind is, if it is one.
    pub fn of(kind: &Kind) -> Option<RbacKind> {
        if kind.group != RBAC_GROUP {
            return None;
        }
        Self::named(kind.kind)
    }

    fn named(kind: &str) -> Option<RbacKind> {
        match kind {
            "Role" => Some(RbacKind::Role),
            "ClusterRole" => Some(RbacKind::ClusterRole),
            "RoleBinding" => Some(RbacKind::RoleBinding),
            "ClusterRoleBinding" => Some(RbacKind::ClusterRoleBinding),
            _ => None,
        }
    }

    /// The RBAC kind of an object, by its `apiVersion` and `kind`.
    pub fn of_object(object: &Value) -> Result<RbacKind, RbacError> {
        let kind = object["kind"].as_str().unwrap_or("");
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        Self::named(kind)
            .filter(|_| api_version == RBAC_API_VERSION)
            .ok_or_else(|| RbacError::NotRbac {
                kind: kind.into(),
                api_version: api_version.into(),
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            RbacKind::Role => "Role",
            RbacKind::ClusterRole => "ClusterRole",
            RbacKind::RoleBinding => "RoleBinding",
            RbacKind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }

    pub fn namespaced(self) -> bool {
        matches!(self, RbacKind::Role | RbacKind::RoleBinding)
    }

    /// The served kind (for paths, store keys and messages).
    pub fn kind(self) -> &'static Kind {
        crate::kinds::KINDS
            .iter()
            .find(|k| k.group == RBAC_GROUP && k.kind == self.name())
            .expect("the RBAC kinds are served")
    }
}

/// Why an object could not be taken into an [`RbacSnapshot`]. Retrying the same object
/// cannot help; the store holds something the API server would not have accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    #[error("not an RBAC object: kind {kind:?}, apiVersion {api_version:?}")]
    NotRbac { kind: String, api_version: String },
    #[error("{kind} without metadata.name")]
    Unnamed { kind: &'static str },
    #[error("{kind} {name:?} is malformed: {reason}")]
    Malformed {
        kind: &'static str,
        name: String,
        reason: String,
    },
}
