//! Authorization: who may do what. Pure decisions over a user and a request's attributes.
//!
//! Roles: `cluster-admin` (everything), `view` (get, list, watch on our kinds) and `node`
//! (what a node agent needs, scoped to its own objects as Kubernetes' Node authorizer does).
//! Users get roles from their groups (`system:masters` → cluster-admin, `system:nodes` →
//! node, `navarch:viewers` → view) and from explicit bindings.

use serde::{Deserialize, Serialize};

/// The group whose members are administrators (as in Kubernetes).
pub const GROUP_MASTERS: &str = "system:masters";
/// Nodes: user `system:node:<name>`, group `system:nodes`.
pub const GROUP_NODES: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Read-only users.
pub const GROUP_VIEWERS: &str = "navarch:viewers";
/// Every authenticated user carries this group.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// The namespace of node heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        Self {
            name: name.into(),
            groups,
        }
    }

    /// The node this user is, if it is one (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if !self.groups.iter().any(|g| g == GROUP_NODES) {
            return None;
        }
        self.name
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|n| !n.is_empty())
    }
}

/// A built-in role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ClusterAdmin,
    View,
    Node,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cluster-admin" => Some(Role::ClusterAdmin),
            "view" => Some(Role::View),
            "node" => Some(Role::Node),
            _ => None,
        }
    }
}

/// Grants `role` to a user or to a group (exactly one of the two is set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub role: Role,
}

/// What a request does: Kubernetes' request attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    /// API group (`""` for core).
    pub group: &'a str,
    /// The resource (plural), e.g. `pods`; empty for a non-resource request.
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    /// The object's name; empty for collections.
    pub name: &'a str,
    /// For non-resource requests: the path (e.g. `/debug/actors`).
    pub path: &'a str,
}

/// The authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed only if the pod named in the request is bound to this node (`spec.nodeName`).
    /// The server checks the stored pod (and, for a create or update, the new one) itself.
    AllowIfPodOnNode(String),
    Deny(String),
}

const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// Resources a node may read (cluster-wide, like the kubelet's informers).
const NODE_READABLE: &[&str] = &[
    "pods",
    "nodes",
    "services",
    "endpoints",
    "namespaces",
    "leases",
    "events",
];

/// The authorizer: built-in group roles plus explicit bindings.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    bindings: Vec<Binding>,
}

impl Authorizer {
    pub fn new(bindings: Vec<Binding>) -> Self {
        Self { bindings }
    }

    /// The roles `user` holds.
    pub fn roles(&self, user: &User) -> Vec<Role> {
        let mut roles = Vec::new();
        let mut add = |r: Role| {
            if !roles.contains(&r) {
                roles.push(r);
            }
        };
        for g in &user.groups {
            match g.as_str() {
                GROUP_MASTERS => add(Role::ClusterAdmin),
                GROUP_VIEWERS => add(Role::View),
                GROUP_NODES if user.node_name().is_some() => add(Role::Node),
                _ => {}
            }
        }
        for b in &self.bindings {
            let applies = b.user.as_deref() == Some(user.name.as_str())
                || b.group
                    .as_deref()
                    .is_some_and(|g| user.groups.iter().any(|ug| ug == g));
            if applies {
                add(b.role);
            }
        }
        roles
    }

    /// Decides whether `user` may do `attrs`.
    pub fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> Decision {
        let roles = self.roles(user);
        if roles.contains(&Role::ClusterAdmin) {
            return Decision::Allow;
        }
        let is_read = READ_VERBS.contains(&attrs.verb);
        if attrs.resource.is_empty() {
            // Non-resource paths: discovery and OpenAPI are open to every authenticated user;
            // the debug endpoints are for administrators only.
            let open = [
                "/api", "/apis", "/openapi", "/version", "/healthz", "/readyz", "/livez",
            ];
            if is_read && open.iter().any(|p| path_under(attrs.path, p)) {
                return Decision::Allow;
            }
            return Decision::Deny(deny_message(user, attrs));
        }
        if roles.contains(&Role::View) && is_read && !matches!(attrs.subresource, "log" | "exec") {
            return Decision::Allow;
        }
        if roles.contains(&Role::Node) {
            if let Some(node) = user.node_name() {
                let d = node_decision(node, attrs, is_read);
                if d != Decision::Deny(String::new()) {
                    return d;
                }
            }
        }
        Decision::Deny(deny_message(user, attrs))
    }
}

fn path_under(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// The node role, like Kubernetes' Node authorizer and NodeRestriction admission: read what a
/// kubelet watches; write its own Node and Lease, the status of (and deletion of) pods bound to
/// it, and events. `Deny("")` means "no rule matched".
fn node_decision(node: &str, a: &Attributes<'_>, is_read: bool) -> Decision {
    let none = Decision::Deny(String::new());
    match (a.group, a.resource, a.subresource) {
        (_, r, "") if is_read && NODE_READABLE.contains(&r) => Decision::Allow,
        ("", "nodes", "" | "status") => {
            let own = a.name == node;
            match a.verb {
                "get" | "create" | "update" | "patch" if own => Decision::Allow,
                _ => none,
            }
        }
        ("coordination.k8s.io", "leases", "") => {
            let own = a.name == node && a.namespace == NODE_LEASE_NAMESPACE;
            match a.verb {
                "get" | "create" | "update" | "patch" if own => Decision::Allow,
                _ => none,
            }
        }
        ("", "pods", "status") if matches!(a.verb, "get" | "update" | "patch") => {
            Decision::AllowIfPodOnNode(node.to_string())
        }
        ("", "pods", "") if a.verb == "delete" => Decision::AllowIfPodOnNode(node.to_string()),
        ("", "events", "") if matches!(a.verb, "create" | "update" | "patch") => Decision::Allow,
        _ => none,
    }
}

fn deny_message(user: &User, a: &Attributes<'_>) -> String {
    if a.resource.is_empty() {
        return format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, a.verb, a.path
        );
    }
    let mut res = a.resource.to_string();
    if !a.subresource.is_empty() {
        res = format!("{res}/{}", a.subresource);
    }
    let group = if a.group.is_empty() {
        String::new()
    } else {
        format!(" in API group \"{}\"", a.group)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let name = if a.name.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", a.name)
    };
    format!(
        "{}{name} is forbidden: User \"{}\" cannot {} resource \"{res}\"{group} {scope}",
        qualified(a),
        user.name,
        a.verb
    )
}

fn qualified(a: &Attributes<'_>) -> String {
    if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(verb: &'a str, resource: &'a str, ns: &'a str, name: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: "",
            namespace: ns,
            name,
            path: "",
        }
    }

    fn node(name: &str) -> User {
        User::new(
            format!("system:node:{name}"),
            vec![GROUP_NODES.into(), GROUP_AUTHENTICATED.into()],
        )
    }

    #[test]
    fn admin_may_do_anything_viewer_only_reads() {
        let az = Authorizer::default();
        let admin = User::new("admin", vec![GROUP_MASTERS.into()]);
        let viewer = User::new("v", vec![GROUP_VIEWERS.into()]);
        assert_eq!(
            az.authorize(&admin, &attrs("delete", "pods", "default", "x")),
            Decision::Allow
        );
        assert_eq!(
            az.authorize(&viewer, &attrs("list", "pods", "default", "")),
            Decision::Allow
        );
        let Decision::Deny(msg) = az.authorize(&viewer, &attrs("create", "pods", "default", ""))
        else {
            panic!("viewer may not create");
        };
        assert!(msg.contains("cannot create resource \"pods\""), "{msg}");
    }

    #[test]
    fn users_without_roles_are_denied_even_reads_but_may_discover() {
        let az = Authorizer::default();
        let nobody = User::new("nobody", vec![GROUP_AUTHENTICATED.into()]);
        assert!(matches!(
            az.authorize(&nobody, &attrs("get", "pods", "default", "x")),
            Decision::Deny(_)
        ));
        let discovery = Attributes {
            path: "/apis/apps/v1",
            ..attrs("get", "", "", "")
        };
        assert_eq!(az.authorize(&nobody, &discovery), Decision::Allow);
        let debug = Attributes {
            path: "/debug/actors",
            ..attrs("get", "", "", "")
        };
        assert!(matches!(az.authorize(&nobody, &debug), Decision::Deny(_)));
    }

    #[test]
    fn bindings_grant_roles_by_user_or_group() {
        let az = Authorizer::new(vec![
            Binding {
                user: Some("alice".into()),
                group: None,
                role: Role::View,
            },
            Binding {
                user: None,
                group: Some("ops".into()),
                role: Role::ClusterAdmin,
            },
        ]);
        let alice = User::new("alice", vec![]);
        assert_eq!(az.roles(&alice), vec![Role::View]);
        let bob = User::new("bob", vec!["ops".into()]);
        assert_eq!(
            az.authorize(&bob, &attrs("delete", "nodes", "", "n1")),
            Decision::Allow
        );
    }

    #[test]
    fn a_node_writes_only_its_own_objects() {
        let az = Authorizer::default();
        let n1 = node("n1");
        assert_eq!(
            az.authorize(&n1, &attrs("update", "nodes", "", "n1")),
            Decision::Allow
        );
        assert!(matches!(
            az.authorize(&n1, &attrs("update", "nodes", "", "n2")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            az.authorize(&n1, &attrs("delete", "nodes", "", "n1")),
            Decision::Deny(_)
        ));
        assert_eq!(
            az.authorize(&n1, &attrs("list", "pods", "", "")),
            Decision::Allow
        );
        let lease = Attributes {
            group: "coordination.k8s.io",
            ..attrs("update", "leases", NODE_LEASE_NAMESPACE, "n1")
        };
        assert_eq!(az.authorize(&n1, &lease), Decision::Allow);
        let other_lease = Attributes {
            name: "n2",
            ..lease.clone()
        };
        assert!(matches!(az.authorize(&n1, &other_lease), Decision::Deny(_)));
        let status = Attributes {
            subresource: "status",
            ..attrs("patch", "pods", "default", "web")
        };
        assert_eq!(
            az.authorize(&n1, &status),
            Decision::AllowIfPodOnNode("n1".into())
        );
        assert!(matches!(
            az.authorize(&n1, &attrs("create", "pods", "default", "")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            az.authorize(&n1, &attrs("update", "pods", "default", "web")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn node_role_needs_the_node_group_and_user_prefix() {
        let fake = User::new("system:node:n1", vec!["other".into()]);
        assert_eq!(fake.node_name(), None);
        assert!(Authorizer::default().roles(&fake).is_empty());
    }
}
