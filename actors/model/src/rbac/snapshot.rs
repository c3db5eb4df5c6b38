//! `RbacSnapshot`: the cluster's Roles, ClusterRoles and their bindings, held in memory and
//! kept current from the store's list and watch, and Kubernetes' rule resolution over them
//! (`DefaultRuleResolver`: which rules apply to a user in a namespace, and from which binding).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::rule::{PolicyRule, RoleRef, Subject};
use super::{RbacError, RbacKind};
use crate::authz::{Attributes, User};

/// A binding as the resolver needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Binding {
    #[serde(default)]
    role_ref: RoleRef,
    #[serde(default, deserialize_with = "nullable")]
    subjects: Vec<Subject>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
struct RoleBody {
    #[serde(default, deserialize_with = "nullable")]
    rules: Vec<PolicyRule>,
}

fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The binding a rule came from, as Kubernetes describes it in an allow reason:
/// `ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters"`.
#[derive(Clone, Copy, Debug)]
pub struct RuleSource<'a> {
    /// The binding's namespace; empty for a ClusterRoleBinding.
    pub namespace: &'a str,
    pub binding: &'a str,
    pub role_ref: &'a RoleRef,
    pub subject: &'a Subject,
}

impl RuleSource<'_> {
    pub fn describe(&self) -> String {
        let (kind, binding) = if self.namespace.is_empty() {
            ("ClusterRoleBinding", self.binding.to_string())
        } else {
            (
                "RoleBinding",
                format!("{}/{}", self.binding, self.namespace),
            )
        };
        format!(
            "{kind} {binding:?} of {} {:?} to {}",
            self.role_ref.kind,
            self.role_ref.name,
            self.subject.describe(self.namespace)
        )
    }
}

/// What the resolver visits: a rule and where it came from, or an error (a binding whose
/// role does not exist).
#[derive(Debug)]
pub enum Visit<'a> {
    Rule(RuleSource<'a>, &'a PolicyRule),
    Error(String),
}

/// The rules that apply to a user in a namespace, with the errors met on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedRules {
    pub rules: Vec<PolicyRule>,
    pub errors: Vec<String>,
}

/// RBAC's answer to one request: allowed (and by which binding) or no opinion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RbacDecision {
    /// The describing source of the first rule that allows the request.
    pub allowed_by: Option<String>,
    /// Resolution errors met while looking (they do not deny anything by themselves).
    pub errors: Vec<String>,
}

impl RbacDecision {
    /// Kubernetes' reason: `RBAC: allowed by ...` or `RBAC: <errors>`; empty otherwise.
    pub fn reason(&self) -> String {
        match &self.allowed_by {
            Some(source) => format!("RBAC: allowed by {source}"),
            None if !self.errors.is_empty() => format!("RBAC: {}", aggregate(&self.errors)),
            None => String::new(),
        }
    }
}

/// Several errors as apimachinery's `NewAggregate(...).Error()` prints them: one alone, or
/// `[a, b]` (duplicates dropped).
pub fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The cluster's RBAC objects, by kind, namespace and name (visited in name order), plus
/// ClusterRoleBindings held only in memory (from `--authorization-policy-file`).
///
/// Built with [`RbacSnapshot::replace_all`] from a list and kept current with
/// [`RbacSnapshot::upsert`] and [`RbacSnapshot::remove`] from a watch. Pure: no I/O.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RbacSnapshot {
    cluster_roles: BTreeMap<String, RoleBody>,
    /// `(namespace, name)`.
    roles: BTreeMap<(String, String), RoleBody>,
    cluster_role_bindings: BTreeMap<String, Binding>,
    /// namespace → name → binding.
    role_bindings: BTreeMap<String, BTreeMap<String, Binding>>,
    /// Never stored, never replaced by a list: visited after the stored ones.
    in_memory_cluster_role_bindings: Vec<(String, Binding)>,
}

fn meta_str<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"][key].as_str().unwrap_or("")
}

impl RbacSnapshot {
    /// An empty snapshot: nobody is granted anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot holding the bootstrap policy ([`super::bootstrap`]), what the store holds
    /// once the server has reconciled it.
    pub fn with_bootstrap_policy() -> Self {
        let mut s = Self::new();
        for object in super::bootstrap::objects() {
            s.upsert(&object)
                .expect("the bootstrap policy is well-formed RBAC");
        }
        s
    }

    /// Adds or replaces one object (a Role, ClusterRole, RoleBinding or ClusterRoleBinding,
    /// as stored), as on a watch's ADDED or MODIFIED event.
    pub fn upsert(&mut self, object: &Value) -> Result<RbacKind, RbacError> {
        let kind = RbacKind::of_object(object)?;
        let name = meta_str(object, "name");
        if name.is_empty() {
            return Err(RbacError::Unnamed { kind: kind.name() });
        }
        let namespace = meta_str(object, "namespace");
        if kind.namespaced() && namespace.is_empty() {
            return Err(RbacError::Malformed {
                kind: kind.name(),
                name: name.into(),
                reason: "no metadata.namespace".into(),
            });
        }
        let malformed = |e: serde_json::Error| RbacError::Malformed {
            kind: kind.name(),
            name: name.to_string(),
            reason: e.to_string(),
        };
        match kind {
            RbacKind::ClusterRole => {
                let body = RoleBody::deserialize(object).map_err(malformed)?;
                self.cluster_roles.insert(name.into(), body);
            }
            RbacKind::Role => {
                let body = RoleBody::deserialize(object).map_err(malformed)?;
                self.roles.insert((namespace.into(), name.into()), body);
            }
            RbacKind::ClusterRoleBinding => {
                let body = Binding::deserialize(object).map_err(malformed)?;
                self.cluster_role_bindings.insert(name.into(), body);
            }
            RbacKind::RoleBinding => {
                let body = Binding::deserialize(object).map_err(malformed)?;
                self.role_bindings
                    .entry(namespace.into())
                    .or_default()
                    .insert(name.into(), body);
            }
        }
        Ok(kind)
    }

    /// Removes one object (a watch's DELETED event); `namespace` is empty for cluster-scoped
    /// kinds. Whether it was there.
    pub fn remove(&mut self, kind: RbacKind, namespace: &str, name: &str) -> bool {
        match kind {
            RbacKind::ClusterRole => self.cluster_roles.remove(name).is_some(),
            RbacKind::Role => self
                .roles
                .remove(&(namespace.to_string(), name.to_string()))
                .is_some(),
            RbacKind::ClusterRoleBinding => self.cluster_role_bindings.remove(name).is_some(),
            RbacKind::RoleBinding => {
                let Some(bindings) = self.role_bindings.get_mut(namespace) else {
                    return false;
                };
                let removed = bindings.remove(name).is_some();
                if bindings.is_empty() {
                    self.role_bindings.remove(namespace);
                }
                removed
            }
        }
    }

    /// Replaces every stored object with `objects` (a fresh list), keeping the in-memory
    /// bindings. Objects that fail to parse are skipped and returned with their error, so one
    /// bad object never hides the others.
    pub fn replace_all<'a>(
        &mut self,
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Vec<RbacError> {
        let in_memory = std::mem::take(&mut self.in_memory_cluster_role_bindings);
        *self = Self {
            in_memory_cluster_role_bindings: in_memory,
            ..Self::default()
        };
        objects
            .into_iter()
            .filter_map(|o| self.upsert(o).err())
            .collect()
    }

    /// Adds a ClusterRoleBinding that lives only in memory (never stored, never listed).
    pub fn add_in_memory_cluster_role_binding(
        &mut self,
        name: impl Into<String>,
        role_ref: RoleRef,
        subjects: Vec<Subject>,
    ) {
        self.in_memory_cluster_role_bindings
            .push((name.into(), Binding { role_ref, subjects }));
    }

    /// Whether the snapshot holds the object.
    pub fn contains(&self, kind: RbacKind, namespace: &str, name: &str) -> bool {
        match kind {
            RbacKind::ClusterRole => self.cluster_roles.contains_key(name),
            RbacKind::Role => self
                .roles
                .contains_key(&(namespace.to_string(), name.to_string())),
            RbacKind::ClusterRoleBinding => self.cluster_role_bindings.contains_key(name),
            RbacKind::RoleBinding => self
                .role_bindings
                .get(namespace)
                .is_some_and(|b| b.contains_key(name)),
        }
    }

    /// The rules of the role a binding in `binding_namespace` (empty for a
    /// ClusterRoleBinding) refers to (Kubernetes' `GetRoleReferenceRules`).
    pub fn role_reference_rules(
        &self,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(&(binding_namespace.to_string(), role_ref.name.clone()))
                .map(|r| r.rules.as_slice())
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )
                }),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|r| r.rules.as_slice())
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )
                }),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// Visits every rule that applies to `user` in `namespace` (empty: cluster-wide rules
    /// only): first those of ClusterRoleBindings, then those of the namespace's RoleBindings,
    /// as Kubernetes' `VisitRulesFor`. `visit` returns false to stop.
    pub fn visit_rules_for<'s>(
        &'s self,
        user: &User,
        namespace: &str,
        visit: &mut dyn FnMut(Visit<'s>) -> bool,
    ) {
        let cluster = self
            .cluster_role_bindings
            .iter()
            .map(|(n, b)| (n.as_str(), b))
            .chain(
                self.in_memory_cluster_role_bindings
                    .iter()
                    .map(|(n, b)| (n.as_str(), b)),
            );
        let local = (!namespace.is_empty())
            .then(|| self.role_bindings.get_key_value(namespace))
            .flatten()
            .into_iter()
            .flat_map(|(ns, bindings)| {
                bindings
                    .iter()
                    .map(move |(n, b)| (ns.as_str(), n.as_str(), b))
            });
        let all = cluster.map(|(n, b)| ("", n, b)).chain(local);
        for (binding_namespace, name, binding) in all {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| s.applies_to(user, binding_namespace))
            else {
                continue;
            };
            match self.role_reference_rules(&binding.role_ref, binding_namespace) {
                Err(e) => {
                    if !visit(Visit::Error(e)) {
                        return;
                    }
                }
                Ok(rules) => {
                    let source = RuleSource {
                        namespace: binding_namespace,
                        binding: name,
                        role_ref: &binding.role_ref,
                        subject,
                    };
                    for rule in rules {
                        if !visit(Visit::Rule(source, rule)) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Whether RBAC allows the request (Kubernetes' `RBACAuthorizer.Authorize`: allow, or no
    /// opinion; RBAC never denies).
    pub fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> RbacDecision {
        let mut decision = RbacDecision::default();
        self.visit_rules_for(user, attrs.namespace, &mut |v| match v {
            Visit::Rule(source, rule) => {
                if rule.allows(attrs) {
                    decision.allowed_by = Some(source.describe());
                    return false;
                }
                true
            }
            Visit::Error(e) => {
                decision.errors.push(e);
                true
            }
        });
        decision
    }

    /// Every rule that applies to `user` in `namespace` (Kubernetes' `RulesFor`).
    pub fn rules_for(&self, user: &User, namespace: &str) -> ResolvedRules {
        let mut out = ResolvedRules::default();
        self.visit_rules_for(user, namespace, &mut |v| {
            match v {
                Visit::Rule(_, rule) => out.rules.push(rule.clone()),
                Visit::Error(e) => out.errors.push(e),
            }
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster_role(name: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name}, "rules": rules})
    }

    fn role(ns: &str, name: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": ns}, "rules": rules})
    }

    fn cluster_binding(name: &str, role: &str, subjects: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": subjects})
    }

    fn binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name, "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
               "subjects": subjects})
    }

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

    fn snapshot(objects: &[Value]) -> RbacSnapshot {
        let mut s = RbacSnapshot::new();
        assert_eq!(s.replace_all(objects), vec![]);
        s
    }

    fn allowed(s: &RbacSnapshot, user: &User, a: &Attributes<'_>) -> bool {
        s.authorize(user, a).allowed_by.is_some()
    }

    fn alice() -> User {
        User::new("alice", vec!["dev".into(), "system:authenticated".into()])
    }

    #[test]
    fn bindings_in_and_out_of_their_namespace() {
        let pod_reader =
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]);
        let s = snapshot(&[
            cluster_role("pod-reader", pod_reader.clone()),
            role("shop", "local-reader", pod_reader.clone()),
            role(
                "other",
                "local-reader",
                json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
            ),
            // A RoleBinding of a ClusterRole grants it in the binding's namespace only.
            binding(
                "shop",
                "alice-reads",
                "ClusterRole",
                "pod-reader",
                json!([{"kind": "User", "name": "alice"}]),
            ),
            // A RoleBinding of a Role uses the Role of its own namespace.
            binding(
                "web",
                "dev-reads",
                "Role",
                "local-reader",
                json!([{"kind": "Group", "name": "dev"}]),
            ),
            binding(
                "shop",
                "dev-local",
                "Role",
                "local-reader",
                json!([{"kind": "Group", "name": "dev"}]),
            ),
        ]);
        let a = alice();
        let cases = [
            (attrs("get", "pods", "shop", "x"), true),
            (attrs("list", "pods", "shop", ""), true),
            (attrs("delete", "pods", "shop", "x"), false),
            (attrs("get", "pods", "default", "x"), false),
            // Cluster-wide (no namespace): RoleBindings never apply.
            (attrs("list", "pods", "", ""), false),
            // The Role "local-reader" does not exist in "web": an error, no permission.
            (attrs("get", "pods", "web", "x"), false),
            // The Role of "other" is not visible from "shop".
            (attrs("delete", "services", "shop", "x"), false),
        ];
        for (at, want) in cases {
            assert_eq!(allowed(&s, &a, &at), want, "{at:?}");
        }
        let d = s.authorize(&a, &attrs("get", "pods", "shop", "x"));
        assert_eq!(
            d.reason(),
            r#"RBAC: allowed by RoleBinding "alice-reads/shop" of ClusterRole "pod-reader" to User "alice""#
        );
        let d = s.authorize(&a, &attrs("get", "pods", "web", "x"));
        assert_eq!(d.allowed_by, None);
        assert_eq!(
            d.reason(),
            r#"RBAC: role.rbac.authorization.k8s.io "local-reader" not found"#
        );
        let nobody = User::new("bob", vec![]);
        assert_eq!(
            s.authorize(&nobody, &attrs("get", "pods", "shop", "x")),
            RbacDecision::default()
        );
        assert_eq!(RbacDecision::default().reason(), "");
    }

    #[test]
    fn cluster_role_bindings_apply_everywhere() {
        let s = snapshot(&[
            cluster_role(
                "reader",
                json!([{"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}]),
            ),
            cluster_binding(
                "devs-read",
                "reader",
                json!([{"kind": "Group", "name": "dev"}]),
            ),
            cluster_binding(
                "dangling",
                "missing",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        ]);
        let a = alice();
        assert!(allowed(&s, &a, &attrs("get", "nodes", "", "n1")));
        assert!(allowed(&s, &a, &attrs("get", "pods", "anywhere", "p")));
        assert!(!allowed(&s, &a, &attrs("list", "pods", "anywhere", "")));
        let d = s.authorize(&a, &attrs("list", "pods", "x", ""));
        assert_eq!(
            d.errors,
            vec![r#"clusterrole.rbac.authorization.k8s.io "missing" not found"#]
        );
        assert_eq!(
            s.authorize(&a, &attrs("get", "nodes", "", "n1")).reason(),
            r#"RBAC: allowed by ClusterRoleBinding "devs-read" of ClusterRole "reader" to Group "dev""#
        );
    }

    #[test]
    fn service_account_subjects_and_groups() {
        let s = snapshot(&[
            cluster_role(
                "edit-pods",
                json!([{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]),
            ),
            // Namespace omitted: the binding's namespace.
            binding(
                "build",
                "ci",
                "ClusterRole",
                "edit-pods",
                json!([{"kind": "ServiceAccount", "name": "ci"}]),
            ),
            binding(
                "prod",
                "all-sas",
                "ClusterRole",
                "edit-pods",
                json!([{"kind": "Group", "name": "system:serviceaccounts:build", "apiGroup": "rbac.authorization.k8s.io"}]),
            ),
            cluster_binding(
                "deployer",
                "edit-pods",
                json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "tools"}]),
            ),
        ]);
        let ci = User::service_account("build", "ci");
        assert_eq!(ci.name, "system:serviceaccount:build:ci");
        assert!(allowed(&s, &ci, &attrs("create", "pods", "build", "")));
        assert!(!allowed(&s, &ci, &attrs("create", "pods", "default", "")));
        // Through the group every service account of "build" carries.
        assert!(allowed(&s, &ci, &attrs("create", "pods", "prod", "")));
        let deployer = User::service_account("tools", "deployer");
        assert!(allowed(
            &s,
            &deployer,
            &attrs("create", "pods", "anywhere", "")
        ));
        let impostor = User::new("deployer", vec![]);
        assert!(!allowed(
            &s,
            &impostor,
            &attrs("create", "pods", "anywhere", "")
        ));
        assert_eq!(
            s.authorize(&ci, &attrs("create", "pods", "build", ""))
                .reason(),
            r#"RBAC: allowed by RoleBinding "ci/build" of ClusterRole "edit-pods" to ServiceAccount "ci/build""#
        );
    }

    #[test]
    fn watch_events_update_the_snapshot() {
        let mut s = RbacSnapshot::new();
        let a = alice();
        let get = attrs("get", "pods", "shop", "x");
        s.upsert(&role(
            "shop",
            "r",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
        ))
        .unwrap();
        assert!(!allowed(&s, &a, &get));
        s.upsert(&binding(
            "shop",
            "b",
            "Role",
            "r",
            json!([{"kind": "User", "name": "alice"}]),
        ))
        .unwrap();
        assert!(allowed(&s, &a, &get));
        // MODIFIED: the role loses the verb.
        s.upsert(&role(
            "shop",
            "r",
            json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]),
        ))
        .unwrap();
        assert!(!allowed(&s, &a, &get));
        assert!(allowed(&s, &a, &attrs("list", "pods", "shop", "")));
        // DELETED.
        assert!(s.remove(RbacKind::RoleBinding, "shop", "b"));
        assert!(!s.remove(RbacKind::RoleBinding, "shop", "b"));
        assert!(!allowed(&s, &a, &attrs("list", "pods", "shop", "")));
        assert!(s.contains(RbacKind::Role, "shop", "r"));
        // A fresh list replaces everything but the in-memory bindings.
        s.add_in_memory_cluster_role_binding(
            "navarch:policy-file:0",
            RoleRef::cluster_role("reader"),
            vec![Subject::user("alice")],
        );
        let errors = s.replace_all(&[
            cluster_role(
                "reader",
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
            ),
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}),
        ]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(!s.contains(RbacKind::Role, "shop", "r"));
        assert!(allowed(&s, &a, &get));
        assert_eq!(
            s.authorize(&a, &get).reason(),
            r#"RBAC: allowed by ClusterRoleBinding "navarch:policy-file:0" of ClusterRole "reader" to User "alice""#
        );
    }

    #[test]
    fn malformed_objects_are_refused() {
        let mut s = RbacSnapshot::new();
        assert!(matches!(
            s.upsert(&json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "r"}})),
            Err(RbacError::Malformed { .. })
        ));
        assert!(matches!(
            s.upsert(&json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {}})),
            Err(RbacError::Unnamed { .. })
        ));
        assert!(matches!(
            s.upsert(&cluster_role("x", json!("not a list"))),
            Err(RbacError::Malformed { .. })
        ));
        assert!(matches!(
            s.upsert(&json!({"kind": "Role", "apiVersion": "v1", "metadata": {"name": "r", "namespace": "n"}})),
            Err(RbacError::NotRbac { .. })
        ));
        // Null lists are empty.
        s.upsert(
            &json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                         "metadata": {"name": "empty"}, "rules": null}),
        )
        .unwrap();
        assert_eq!(s, {
            let mut t = RbacSnapshot::new();
            t.upsert(&cluster_role("empty", json!([]))).unwrap();
            t
        });
    }

    #[test]
    fn rules_for_lists_cluster_then_namespace_rules_with_errors() {
        let s = snapshot(&[
            cluster_role(
                "c",
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]),
            ),
            role(
                "shop",
                "r",
                json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]),
            ),
            cluster_binding("cb", "c", json!([{"kind": "User", "name": "alice"}])),
            binding(
                "shop",
                "rb",
                "Role",
                "r",
                json!([{"kind": "User", "name": "alice"}]),
            ),
            binding(
                "shop",
                "rb2",
                "Role",
                "gone",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        ]);
        let r = s.rules_for(&alice(), "shop");
        assert_eq!(
            r.rules,
            vec![
                PolicyRule::resources(&["get"], &[""], &["nodes"]),
                PolicyRule::resources(&["list"], &[""], &["pods"]),
            ]
        );
        assert_eq!(
            r.errors,
            vec![r#"role.rbac.authorization.k8s.io "gone" not found"#]
        );
        assert_eq!(s.rules_for(&alice(), "").rules.len(), 1);
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
        assert_eq!(aggregate(&["a".into(), "a".into()]), "a");
    }
}
