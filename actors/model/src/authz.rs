//! Authorization: who may do what, as `kube-apiserver --authorization-mode=Node,RBAC` decides.
//!
//! [`Authorizer`] is the union Kubernetes runs, in order: members of `system:masters` are
//! allowed everything; the Node authorizer ([`node`]) decides for nodes (`system:node:<name>`
//! in `system:nodes`) what a kubelet needs; RBAC ([`crate::rbac`]) decides for everyone from
//! the cluster's Roles, ClusterRoles and bindings. The first that allows wins; none denies.
//!
//! The server keeps one `Authorizer`, feeds its RBAC snapshot from the store
//! ([`Authorizer::rbac_mut`]) and asks [`Authorizer::authorize`] for every request. Groups keep
//! their meaning through the bootstrap bindings: `system:masters` → `cluster-admin`,
//! `navarch:viewers` → `view`, `system:nodes` → the Node authorizer. The
//! `--authorization-policy-file` bindings ([`Binding`]) become ClusterRoleBindings held in
//! memory only.

pub mod node;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rbac::rule::{service_account_user, PolicyRule, RoleRef, Subject};
use crate::rbac::snapshot::aggregate;
use crate::rbac::RbacSnapshot;

/// The group whose members are administrators (as in Kubernetes).
pub const GROUP_MASTERS: &str = "system:masters";
/// Nodes: user `system:node:<name>`, group `system:nodes`.
pub const GROUP_NODES: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Read-only users.
pub const GROUP_VIEWERS: &str = "navarch:viewers";
/// Every authenticated user carries this group.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// The anonymous user carries this group.
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of unauthenticated requests.
pub const USER_ANONYMOUS: &str = "system:anonymous";
/// Scrapers of `/metrics` and the health endpoints.
pub const GROUP_MONITORING: &str = "system:monitoring";
/// Every service account carries this group, and `system:serviceaccounts:<namespace>`.
pub const GROUP_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// The namespace of node heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// An authenticated user (Kubernetes' `user.Info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// Empty when the authenticator gives none (client certificates, the token file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        Self {
            name: name.into(),
            groups,
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The user a service account authenticates as: `system:serviceaccount:<ns>:<name>` in
    /// `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self::new(
            service_account_user(namespace, name),
            vec![
                GROUP_SERVICE_ACCOUNTS.to_string(),
                format!("{GROUP_SERVICE_ACCOUNTS}:{namespace}"),
                GROUP_AUTHENTICATED.to_string(),
            ],
        )
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

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// A role of `--authorization-policy-file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The ClusterRole `cluster-admin`.
    ClusterAdmin,
    /// The ClusterRole `view` (and `navarch:cluster-viewer`, as the group `navarch:viewers`).
    View,
    /// Nodes are recognised by their name and the group `system:nodes`, so this grants
    /// nothing more (as before); accepted so existing policy files keep loading.
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

/// Grants `role` to a user or to a group (exactly one of the two is set): one entry of the
/// `--authorization-policy-file` JSON list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub role: Role,
}

/// The name of the in-memory ClusterRoleBinding made of the policy file's `index`th entry.
pub fn policy_file_binding_name(index: usize) -> String {
    format!("navarch:authorization-policy-file:{index}")
}

/// What a request does: Kubernetes' request attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection (and RBAC's
    /// escalate, bind; any verb a rule may name).
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

impl Attributes<'_> {
    pub fn is_resource_request(&self) -> bool {
        !self.resource.is_empty()
    }

    /// The message of the 403 Kubernetes answers a refused request with, `reason` (the
    /// authorizers' explanation, often empty) appended:
    /// `pods "web" is forbidden: User "alice" cannot get resource "pods" in API group "" in
    /// the namespace "default"`, or `forbidden: User "alice" cannot get path "/debug"`.
    pub fn forbidden_message(&self, user: &User, reason: &str) -> String {
        let mut why = if !self.is_resource_request() {
            format!(
                "User {:?} cannot {} path {:?}",
                user.name, self.verb, self.path
            )
        } else {
            let mut resource = self.resource.to_string();
            if !self.subresource.is_empty() {
                resource = format!("{resource}/{}", self.subresource);
            }
            let scope = if self.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {:?}", self.namespace)
            };
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                user.name, self.verb, self.group
            )
        };
        if !reason.is_empty() {
            why = format!("{why}: {reason}");
        }
        if !self.is_resource_request() {
            return format!("forbidden: {why}");
        }
        let qualified = if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} {:?} is forbidden: {why}", self.name)
        }
    }
}

/// What the union of authorizers concluded (Kubernetes' decision; none of ours denies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The Node authorizer allows it only if the pod named in the request is bound to this
    /// node (`spec.nodeName`): the server checks the stored pod (see
    /// [`crate::node_restriction`]).
    AllowIfPodOnNode(String),
    NoOpinion,
}

/// A verdict with Kubernetes' reason (`RBAC: allowed by ...`) and evaluation error, as a
/// SubjectAccessReview reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub reason: String,
    pub evaluation_error: String,
}

/// The authorizer's answer, as the server acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed only if the pod named in the request is bound to this node (`spec.nodeName`).
    /// The server checks the stored pod (and, for a create or update, the new one) itself.
    AllowIfPodOnNode(String),
    /// Refused: the message of the 403 ([`Attributes::forbidden_message`]).
    Deny(String),
}

/// The rules a user holds in a namespace, as a SelfSubjectRulesReview reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRules {
    /// Rules with resources.
    pub resource_rules: Vec<PolicyRule>,
    /// Rules with non-resource URLs.
    pub non_resource_rules: Vec<PolicyRule>,
    /// True when an authorizer cannot list what it allows (the Node authorizer for nodes).
    pub incomplete: bool,
    pub evaluation_error: String,
}

/// The union of authorizers: privileged group, Node, RBAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorizer {
    rbac: RbacSnapshot,
}

impl Default for Authorizer {
    /// The bootstrap policy, no policy-file bindings.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Authorizer {
    /// An authorizer whose RBAC snapshot holds the bootstrap policy (what the store holds
    /// once reconciled) and `bindings` from `--authorization-policy-file`, as in-memory
    /// ClusterRoleBindings. The server replaces the stored part with the store's objects
    /// ([`RbacSnapshot::replace_all`]) once it has reconciled and listed them.
    pub fn new(bindings: Vec<Binding>) -> Self {
        let mut rbac = RbacSnapshot::with_bootstrap_policy();
        add_policy_file_bindings(&mut rbac, &bindings);
        Self { rbac }
    }

    /// An authorizer over `rbac` exactly (no bootstrap policy added).
    pub fn with_snapshot(rbac: RbacSnapshot) -> Self {
        Self { rbac }
    }

    pub fn rbac(&self) -> &RbacSnapshot {
        &self.rbac
    }

    /// The snapshot, to feed it from the store's watch.
    pub fn rbac_mut(&mut self) -> &mut RbacSnapshot {
        &mut self.rbac
    }

    /// The union's verdict with its reason, as a SubjectAccessReview reports it.
    pub fn evaluate(&self, user: &User, attrs: &Attributes<'_>) -> Evaluation {
        let allow = |verdict, reason: String| Evaluation {
            verdict,
            reason,
            evaluation_error: String::new(),
        };
        if user.in_group(GROUP_MASTERS) {
            return allow(Verdict::Allow, String::new());
        }
        if let Some(node) = user.node_name() {
            match node::authorize(node, attrs) {
                Verdict::NoOpinion => {}
                verdict => return allow(verdict, String::new()),
            }
        }
        let rbac = self.rbac.authorize(user, attrs);
        let reason = rbac.reason();
        if rbac.allowed_by.is_some() {
            return allow(Verdict::Allow, reason);
        }
        Evaluation {
            verdict: Verdict::NoOpinion,
            reason,
            evaluation_error: String::new(),
        }
    }

    /// Decides whether `user` may do `attrs`.
    pub fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> Decision {
        let e = self.evaluate(user, attrs);
        match e.verdict {
            Verdict::Allow => Decision::Allow,
            Verdict::AllowIfPodOnNode(n) => Decision::AllowIfPodOnNode(n),
            Verdict::NoOpinion => Decision::Deny(attrs.forbidden_message(user, &e.reason)),
        }
    }

    /// Whether `user` may do `attrs` outright (a conditional node permission is not enough).
    pub fn allows(&self, user: &User, attrs: &Attributes<'_>) -> bool {
        self.evaluate(user, attrs).verdict == Verdict::Allow
    }

    /// The rules `user` holds in `namespace` (Kubernetes' union `RulesFor`): RBAC's, with the
    /// Node authorizer marking a node's list incomplete. Members of `system:masters` get
    /// what their RBAC bindings give, as in Kubernetes.
    pub fn rules_for(&self, user: &User, namespace: &str) -> UserRules {
        let mut out = UserRules::default();
        let mut errors = Vec::new();
        if user.node_name().is_some() {
            out.incomplete = true;
            errors.push("node authorizer does not support user rule resolution".to_string());
        }
        let resolved = self.rbac.rules_for(user, namespace);
        for rule in resolved.rules {
            if !rule.resources.is_empty() {
                out.resource_rules.push(PolicyRule {
                    non_resource_urls: Vec::new(),
                    ..rule.clone()
                });
            }
            if !rule.non_resource_urls.is_empty() {
                out.non_resource_rules.push(PolicyRule {
                    verbs: rule.verbs,
                    non_resource_urls: rule.non_resource_urls,
                    ..PolicyRule::default()
                });
            }
        }
        errors.extend(resolved.errors);
        out.evaluation_error = aggregate(&errors);
        out
    }
}

fn add_policy_file_bindings(rbac: &mut RbacSnapshot, bindings: &[Binding]) {
    for (i, b) in bindings.iter().enumerate() {
        let roles: &[&str] = match b.role {
            Role::ClusterAdmin => &[crate::rbac::bootstrap::CLUSTER_ADMIN],
            Role::View => &[
                crate::rbac::bootstrap::VIEW,
                crate::rbac::bootstrap::CLUSTER_VIEWER,
            ],
            Role::Node => &[],
        };
        let subject = match (&b.user, &b.group) {
            (Some(u), _) => Subject::user(u),
            (None, Some(g)) => Subject::group(g),
            (None, None) => continue,
        };
        for (j, role) in roles.iter().enumerate() {
            let name = if j == 0 {
                policy_file_binding_name(i)
            } else {
                format!("{}:{role}", policy_file_binding_name(i))
            };
            rbac.add_in_memory_cluster_role_binding(
                name,
                RoleRef::cluster_role(role),
                vec![subject.clone()],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn path(p: &str) -> Attributes<'_> {
        Attributes {
            path: p,
            ..attrs("get", "", "", "")
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
        assert_eq!(
            az.authorize(&viewer, &attrs("list", "nodes", "", "")),
            Decision::Allow
        );
        let Decision::Deny(msg) = az.authorize(&viewer, &attrs("create", "pods", "default", ""))
        else {
            panic!("viewer may not create");
        };
        assert_eq!(
            msg,
            r#"pods is forbidden: User "v" cannot create resource "pods" in API group "" in the namespace "default""#
        );
        // Even with every RBAC object gone, system:masters may do anything.
        let bare = Authorizer::with_snapshot(RbacSnapshot::new());
        assert_eq!(
            bare.authorize(&admin, &path("/debug/actors")),
            Decision::Allow
        );
        assert!(matches!(
            bare.authorize(&viewer, &attrs("list", "pods", "default", "")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn deny_messages_are_shaped_like_kubernetes() {
        let az = Authorizer::default();
        let alice = User::new("alice", vec![GROUP_AUTHENTICATED.into()]);
        let cases = [
            (
                attrs("get", "pods", "default", "web"),
                r#"pods "web" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default""#,
            ),
            (
                attrs("list", "nodes", "", ""),
                r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#,
            ),
            (
                Attributes {
                    group: "apps",
                    subresource: "scale",
                    ..attrs("patch", "deployments", "shop", "web")
                },
                r#"deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments/scale" in API group "apps" in the namespace "shop""#,
            ),
            (
                path("/debug/actors"),
                r#"forbidden: User "alice" cannot get path "/debug/actors""#,
            ),
        ];
        for (a, want) in cases {
            assert_eq!(az.authorize(&alice, &a), Decision::Deny(want.into()));
        }
        // Resolution errors are the reason.
        let mut az = Authorizer::default();
        az.rbac_mut()
            .upsert(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gone"},
                "subjects": [{"kind": "User", "name": "alice"}]}))
            .unwrap();
        assert_eq!(
            az.authorize(&alice, &attrs("get", "pods", "default", "")),
            Decision::Deny(r#"pods is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#.into())
        );
    }

    #[test]
    fn users_without_roles_are_denied_even_reads_but_may_discover() {
        let az = Authorizer::default();
        let nobody = User::new("nobody", vec![GROUP_AUTHENTICATED.into()]);
        assert!(matches!(
            az.authorize(&nobody, &attrs("get", "pods", "default", "x")),
            Decision::Deny(_)
        ));
        assert_eq!(
            az.authorize(&nobody, &path("/apis/apps/v1")),
            Decision::Allow
        );
        assert!(matches!(
            az.authorize(&nobody, &path("/debug/actors")),
            Decision::Deny(_)
        ));
        let e = az.evaluate(&nobody, &path("/api"));
        assert_eq!(
            e.reason,
            r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#
        );
    }

    #[test]
    fn policy_file_bindings_grant_roles_by_user_or_group() {
        let bindings: Vec<Binding> = serde_json::from_value(json!([
            {"user": "alice", "role": "view"},
            {"group": "ops", "role": "cluster-admin"},
            {"user": "system:node:n9", "role": "node"},
        ]))
        .unwrap();
        let az = Authorizer::new(bindings);
        let alice = User::new("alice", vec![]);
        assert_eq!(
            az.authorize(&alice, &attrs("list", "pods", "", "")),
            Decision::Allow
        );
        assert_eq!(
            az.authorize(&alice, &attrs("get", "nodes", "", "n1")),
            Decision::Allow
        );
        assert!(matches!(
            az.authorize(&alice, &attrs("delete", "pods", "default", "x")),
            Decision::Deny(_)
        ));
        let bob = User::new("bob", vec!["ops".into()]);
        assert_eq!(
            az.authorize(&bob, &attrs("delete", "nodes", "", "n1")),
            Decision::Allow
        );
        assert_eq!(
            az.evaluate(&bob, &attrs("delete", "nodes", "", "n1"))
                .reason,
            r#"RBAC: allowed by ClusterRoleBinding "navarch:authorization-policy-file:1" of ClusterRole "cluster-admin" to Group "ops""#
        );
        // "node" grants nothing: a node is recognised by its group.
        let n9 = User::new("system:node:n9", vec![]);
        assert!(matches!(
            az.authorize(&n9, &attrs("get", "nodes", "", "n9")),
            Decision::Deny(_)
        ));
        // The policy bindings survive a fresh list from the store.
        let mut az = az;
        az.rbac_mut()
            .replace_all(&crate::rbac::bootstrap::objects());
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
        assert!(!az.allows(&n1, &status));
        assert!(matches!(
            az.authorize(&n1, &attrs("create", "pods", "default", "")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            az.authorize(&n1, &attrs("update", "pods", "default", "web")),
            Decision::Deny(_)
        ));
        // Nodes are authenticated users too: RBAC gives them discovery.
        assert_eq!(az.authorize(&n1, &path("/api")), Decision::Allow);
    }

    #[test]
    fn node_role_needs_the_node_group_and_user_prefix() {
        let fake = User::new("system:node:n1", vec!["other".into()]);
        assert_eq!(fake.node_name(), None);
        assert!(matches!(
            Authorizer::default().authorize(&fake, &attrs("list", "pods", "", "")),
            Decision::Deny(_)
        ));
        let nameless = User::new("system:node:", vec![GROUP_NODES.into()]);
        assert_eq!(nameless.node_name(), None);
    }

    #[test]
    fn rules_for_splits_resource_and_url_rules_and_flags_nodes() {
        let az = Authorizer::default();
        let admin = User::new("root", vec![GROUP_MASTERS.into()]);
        let r = az.rules_for(&admin, "default");
        assert!(r
            .resource_rules
            .contains(&PolicyRule::resources(&["*"], &["*"], &["*"])));
        assert!(r
            .non_resource_rules
            .contains(&PolicyRule::urls(&["*"], &["*"])));
        assert!(!r.incomplete);
        assert_eq!(r.evaluation_error, "");
        let r = az.rules_for(&node("n1"), "default");
        assert!(r.incomplete);
        assert_eq!(
            r.evaluation_error,
            "node authorizer does not support user rule resolution"
        );
    }

    #[test]
    fn service_account_users() {
        let u = User::service_account("build", "ci");
        assert_eq!(u.name, "system:serviceaccount:build:ci");
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:build",
                "system:authenticated"
            ]
        );
        let json = serde_json::to_value(&u).unwrap();
        assert!(json.get("uid").is_none() && json.get("extra").is_none());
        let back: User = serde_json::from_value(json!({"name": "a", "groups": []})).unwrap();
        assert_eq!(back, User::new("a", vec![]));
    }
}
