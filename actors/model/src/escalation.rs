//! Escalation prevention, as Kubernetes' RBAC storage does it: nobody grants what they do not
//! hold.
//!
//! - Creating or updating a Role or ClusterRole is allowed only if the user already holds
//!   every permission in it (in the role's namespace, or cluster-wide for a ClusterRole), or
//!   may `escalate` that role resource.
//! - Creating or updating a RoleBinding or ClusterRoleBinding is allowed only if the user
//!   holds every permission of the role it refers to (in the binding's namespace, or
//!   cluster-wide), or may `bind` that role.
//! - Members of `system:masters` may always; an update that only changes what the garbage
//!   collector changes (owner references, finalizers) is never checked.
//!
//! The server calls [`check_escalation`] on every create, update and patch of the four RBAC
//! kinds, with the object it is about to store (decoded, defaulted and validated), after
//! authorizing the request itself. The permissions held are RBAC's only, as in Kubernetes.

use serde_json::{Map, Value};

use crate::authz::{Attributes, Authorizer, User, GROUP_MASTERS};
use crate::kinds::Kind;
use crate::rbac::coverage::{compact, covers};
use crate::rbac::rule::{go_quoted, PolicyRule, RoleRef};
use crate::rbac::snapshot::aggregate;
use crate::rbac::RbacKind;
use crate::status::ApiError;

/// A write of an RBAC object, as the escalation check needs it.
#[derive(Clone, Copy, Debug)]
pub struct RbacWrite<'a> {
    /// The kind written (other kinds pass the check untouched).
    pub kind: &'static Kind,
    /// The request's namespace; empty for the cluster-scoped kinds.
    pub namespace: &'a str,
    /// The object about to be stored.
    pub object: &'a Value,
    /// The stored object, on an update or patch; `None` on a create.
    pub old: Option<&'a Value>,
}

/// `Ok` if the write grants nothing the user does not hold; otherwise the 403 Kubernetes
/// answers with.
pub fn check_escalation(
    authorizer: &Authorizer,
    user: &User,
    write: &RbacWrite<'_>,
) -> Result<(), ApiError> {
    let Some(kind) = RbacKind::of(write.kind) else {
        return Ok(());
    };
    if user.in_group(GROUP_MASTERS) {
        return Ok(());
    }
    if let Some(old) = write.old {
        if only_gc_fields_change(old, write.object) {
            return Ok(());
        }
    }
    let name = write.object["metadata"]["name"].as_str().unwrap_or("");
    let forbidden = |why: String| {
        ApiError::forbidden(format!(
            "{} {name:?} is forbidden: {why}",
            write.kind.qualified_resource()
        ))
        .about(write.kind.plural, write.kind.group, name)
    };
    let wanted: Vec<PolicyRule> = match kind {
        RbacKind::Role | RbacKind::ClusterRole => {
            // Kubernetes asks with the request's name: none on a create.
            let request_name = if write.old.is_some() { name } else { "" };
            let escalate = Attributes {
                verb: "escalate",
                group: write.kind.group,
                resource: write.kind.plural,
                subresource: "",
                namespace: write.namespace,
                name: request_name,
                path: "",
            };
            if authorizer.allows(user, &escalate) {
                return Ok(());
            }
            rules_of(write.object)
        }
        RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
            let role_ref: RoleRef =
                serde_json::from_value(write.object.get("roleRef").cloned().unwrap_or(Value::Null))
                    .unwrap_or_default();
            let resource = match role_ref.kind.as_str() {
                "ClusterRole" => Some("clusterroles"),
                "Role" => Some("roles"),
                _ => None,
            };
            if let Some(resource) = resource {
                let bind = Attributes {
                    verb: "bind",
                    group: &role_ref.api_group,
                    resource,
                    subresource: "",
                    namespace: write.namespace,
                    name: &role_ref.name,
                    path: "",
                };
                if authorizer.allows(user, &bind) {
                    return Ok(());
                }
            }
            authorizer
                .rbac()
                .role_reference_rules(&role_ref, write.namespace)
                .map_err(forbidden)?
                .to_vec()
        }
    };
    let held = authorizer.rbac().rules_for(user, write.namespace);
    let (covered, missing) = covers(&held.rules, &wanted);
    if covered {
        return Ok(());
    }
    let mut lines: Vec<String> = compact(&missing)
        .iter()
        .map(PolicyRule::compact_string)
        .collect();
    lines.sort();
    lines.dedup();
    let mut why = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        lines.join("\n")
    );
    if !held.errors.is_empty() {
        why.push_str(&format!(
            "; resolution errors: [{}]",
            aggregate(&held.errors)
        ));
    }
    Err(forbidden(why))
}

fn rules_of(object: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(object.get("rules").cloned().unwrap_or(Value::Null)).unwrap_or_default()
}

/// Whether `new` differs from `old` only in what the garbage collector and the server change
/// (Kubernetes' `IsOnlyMutatingGCFields`, plus the server-kept resourceVersion and
/// generation).
fn only_gc_fields_change(old: &Value, new: &Value) -> bool {
    fn stripped(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in [
                "ownerReferences",
                "finalizers",
                "selfLink",
                "managedFields",
                "resourceVersion",
                "generation",
            ] {
                meta.remove(key);
            }
        }
        normalized(&v)
    }
    stripped(old) == stripped(new)
}

/// `v` without nulls and empty objects or lists, so absent and empty compare equal.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_nothing(v))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::by_kind;
    use serde_json::json;

    fn role(kind: &str, ns: &str, name: &str, rules: Value) -> Value {
        let mut meta = json!({"name": name});
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules})
    }

    fn binding(
        kind: &str,
        ns: &str,
        name: &str,
        role_kind: &str,
        role: &str,
        subjects: Value,
    ) -> Value {
        let mut meta = json!({"name": name});
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
               "subjects": subjects})
    }

    fn alice() -> User {
        User::new("alice", vec!["dev".into(), "system:authenticated".into()])
    }

    /// The bootstrap policy plus `objects`.
    fn authorizer(objects: &[Value]) -> Authorizer {
        let mut az = Authorizer::default();
        for o in objects {
            az.rbac_mut().upsert(o).unwrap();
        }
        az
    }

    fn check(
        az: &Authorizer,
        user: &User,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let kind = by_kind(object["kind"].as_str().unwrap()).unwrap();
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
        check_escalation(
            az,
            user,
            &RbacWrite {
                kind,
                namespace,
                object,
                old,
            },
        )
    }

    /// alice is `admin` in "shop" only.
    fn shop_admin() -> Authorizer {
        authorizer(&[binding(
            "RoleBinding",
            "shop",
            "alice-admin",
            "ClusterRole",
            "admin",
            json!([{"kind": "User", "name": "alice"}]),
        )])
    }

    #[test]
    fn roles_may_hold_only_what_their_author_holds() {
        let az = shop_admin();
        let a = alice();
        let pods = json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]);
        assert_eq!(
            check(&az, &a, &role("Role", "shop", "r", pods.clone()), None),
            Ok(())
        );
        // Not in another namespace.
        let err = check(&az, &a, &role("Role", "web", "r", pods.clone()), None).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"alice\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\" \"list\"]}"
        );
        assert_eq!(err.details.kind.as_deref(), Some("roles"));
        assert_eq!(err.details.name.as_deref(), Some("r"));
        // Nor what admin lacks, even in "shop".
        let nodes = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes", "pods"]},
                           {"verbs": ["delete"], "apiGroups": ["apps"], "resources": ["deployments"]}]);
        let err = check(&az, &a, &role("Role", "shop", "r", nodes), None).unwrap_err();
        assert!(
            err.message.ends_with(
                "not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
            ),
            "{}",
            err.message
        );
        // A ClusterRole is judged by cluster-wide permissions: alice has none there.
        assert!(check(&az, &a, &role("ClusterRole", "", "c", pods.clone()), None).is_err());
        // An empty role grants nothing: always fine.
        assert_eq!(
            check(&az, &a, &role("ClusterRole", "", "c", json!([])), None),
            Ok(())
        );
    }

    #[test]
    fn escalate_lets_a_user_write_roles_beyond_their_permissions() {
        let az = authorizer(&[
            role(
                "ClusterRole",
                "",
                "role-escalator",
                json!([
                {"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"]}]),
            ),
            role(
                "ClusterRole",
                "",
                "named-escalator",
                json!([
                {"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "resourceNames": ["r"]}]),
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "e",
                "ClusterRole",
                "role-escalator",
                json!([{"kind": "User", "name": "alice"}]),
            ),
            binding(
                "RoleBinding",
                "shop",
                "n",
                "ClusterRole",
                "named-escalator",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        ]);
        let a = alice();
        let everything = json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]);
        assert_eq!(
            check(
                &az,
                &a,
                &role("ClusterRole", "", "god", everything.clone()),
                None
            ),
            Ok(())
        );
        // `escalate` on roles named "r": not on a create (no name yet), but on its update.
        let r = role("Role", "shop", "r", everything.clone());
        assert!(check(&az, &a, &r, None).is_err());
        let old = role("Role", "shop", "r", json!([]));
        assert_eq!(check(&az, &a, &r, Some(&old)), Ok(()));
        let other = role("Role", "shop", "q", everything);
        assert!(check(&az, &a, &other, Some(&role("Role", "shop", "q", json!([])))).is_err());
    }

    #[test]
    fn bindings_may_grant_only_held_roles_or_bound_ones() {
        let az = shop_admin();
        let a = alice();
        let bob = json!([{"kind": "User", "name": "bob"}]);
        // admin covers edit and view in "shop".
        for role in ["edit", "view", "admin"] {
            let b = binding("RoleBinding", "shop", "b", "ClusterRole", role, bob.clone());
            assert_eq!(check(&az, &a, &b, None), Ok(()), "{role}");
        }
        let b = binding(
            "RoleBinding",
            "shop",
            "b",
            "ClusterRole",
            "cluster-admin",
            bob.clone(),
        );
        let err = check(&az, &a, &b, None).unwrap_err();
        assert!(
            err.message.starts_with(
                "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"alice\""
            ),
            "{}",
            err.message
        );
        // Cluster-wide, alice holds nothing.
        let b = binding(
            "ClusterRoleBinding",
            "",
            "b",
            "ClusterRole",
            "view",
            bob.clone(),
        );
        assert_eq!(check(&az, &a, &b, None).unwrap_err().code, 403);
        // Outside "shop" either.
        let b = binding(
            "RoleBinding",
            "web",
            "b",
            "ClusterRole",
            "view",
            bob.clone(),
        );
        assert!(check(&az, &a, &b, None).is_err());
        // A role that does not exist cannot be bound (its permissions are unknown).
        let b = binding("RoleBinding", "shop", "b", "Role", "missing", bob.clone());
        assert_eq!(
            check(&az, &a, &b, None).unwrap_err().message,
            "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: role.rbac.authorization.k8s.io \"missing\" not found"
        );
    }

    #[test]
    fn bind_lets_a_user_grant_named_roles() {
        let az = authorizer(&[
            role(
                "ClusterRole",
                "",
                "binder",
                json!([
                {"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["cluster-admin"]}]),
            ),
            binding(
                "RoleBinding",
                "shop",
                "x",
                "ClusterRole",
                "binder",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        ]);
        let a = alice();
        let bob = json!([{"kind": "User", "name": "bob"}]);
        let b = binding(
            "RoleBinding",
            "shop",
            "b",
            "ClusterRole",
            "cluster-admin",
            bob.clone(),
        );
        assert_eq!(check(&az, &a, &b, None), Ok(()));
        // Only in the namespace the bind permission was granted in, and only that role.
        assert!(check(
            &az,
            &a,
            &binding(
                "RoleBinding",
                "web",
                "b",
                "ClusterRole",
                "cluster-admin",
                bob.clone()
            ),
            None
        )
        .is_err());
        assert!(check(
            &az,
            &a,
            &binding(
                "RoleBinding",
                "shop",
                "b",
                "ClusterRole",
                "edit",
                bob.clone()
            ),
            None
        )
        .is_err());
        assert!(check(
            &az,
            &a,
            &binding(
                "ClusterRoleBinding",
                "",
                "b",
                "ClusterRole",
                "cluster-admin",
                bob
            ),
            None
        )
        .is_err());
    }

    #[test]
    fn masters_gc_updates_and_other_kinds_pass() {
        let az = Authorizer::default();
        let root = User::new("root", vec![GROUP_MASTERS.into()]);
        let everything = role(
            "ClusterRole",
            "",
            "god",
            json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
        );
        assert_eq!(check(&az, &root, &everything, None), Ok(()));
        let a = alice();
        assert!(check(&az, &a, &everything, None).is_err());
        let mut owned = everything.clone();
        owned["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Namespace", "name": "x", "uid": "u"}]);
        owned["metadata"]["finalizers"] = json!(["f"]);
        owned["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(check(&az, &a, &owned, Some(&everything)), Ok(()));
        let mut relabelled = everything.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(check(&az, &a, &relabelled, Some(&everything)).is_err());
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"}});
        assert_eq!(check(&az, &a, &pod, None), Ok(()));
    }
}
