//! RBAC's data (PolicyRule, Subject, RoleRef) and Kubernetes' rule matching: verbs, API
//! groups, resources (`*`, `resource/subresource`, `*/subresource`), resource names and
//! non-resource URLs (trailing `*`).

use serde::{Deserialize, Deserializer, Serialize};

use crate::authz::{Attributes, User};

/// `*`: every verb, group, resource or URL.
pub const ALL: &str = "*";

/// One rule of a Role or ClusterRole, as `rbac.authorization.k8s.io/v1` spells it. Absent and
/// `null` lists read as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "nullable")]
    pub verbs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub api_groups: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl PolicyRule {
    /// A resource rule: `verbs` on `resources` of `api_groups`.
    pub fn resources(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: strings(verbs),
            api_groups: strings(api_groups),
            resources: strings(resources),
            ..PolicyRule::default()
        }
    }

    /// A non-resource rule: `verbs` on `urls`.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: strings(verbs),
            non_resource_urls: strings(urls),
            ..PolicyRule::default()
        }
    }

    /// The same rule limited to objects named `names`.
    pub fn named(mut self, names: &[&str]) -> PolicyRule {
        self.resource_names = strings(names);
        self
    }

    /// Whether this rule allows the request (Kubernetes' `RuleAllows`).
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if !a.is_resource_request() {
            return self.verb_matches(a.verb) && self.url_matches(a.path);
        }
        let combined = if a.subresource.is_empty() {
            a.resource.to_string()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        self.verb_matches(a.verb)
            && self.group_matches(a.group)
            && self.resource_matches(&combined, a.subresource)
            && self.name_matches(a.name)
    }

    pub fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    pub fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    /// `combined` is `resource` or `resource/subresource`; `*` matches everything, and
    /// `*/subresource` that subresource of every resource.
    pub fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == ALL
                || r == combined
                || (!subresource.is_empty()
                    && r.len() == subresource.len() + 2
                    && r.starts_with("*/")
                    && r.ends_with(subresource))
        })
    }

    /// No resource names means every name (including none, as for a list or a create).
    pub fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    /// `*` matches every path; `/apis/*` every path that starts with `/apis/`.
    pub fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
        })
    }

    /// Kubernetes' `CompactString`, the form escalation errors list missing rules in:
    /// `{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (name, values) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !values.is_empty() {
                parts.push(format!("{name}:{}", go_quoted(values)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// A list as Go's `%q` prints it: `["a" "b"]`.
pub fn go_quoted(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Who a binding grants its role to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default)]
    pub name: String,
    /// For a ServiceAccount; in a RoleBinding it defaults to the binding's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The prefix of a service account's user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// The user name a service account authenticates as.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

impl Subject {
    pub fn user(name: &str) -> Subject {
        Subject {
            kind: "User".into(),
            api_group: super::RBAC_GROUP.into(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    pub fn group(name: &str) -> Subject {
        Subject {
            kind: "Group".into(),
            api_group: super::RBAC_GROUP.into(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    pub fn service_account(namespace: &str, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            api_group: String::new(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// Whether this subject is `user` (Kubernetes' `appliesToUser`). `binding_namespace` is
    /// the namespace of a RoleBinding (empty for a ClusterRoleBinding): a ServiceAccount
    /// subject without a namespace means one in the binding's namespace.
    pub fn applies_to(&self, user: &User, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let namespace = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                !namespace.is_empty()
                    && user
                        .name
                        .strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)
                        .and_then(|rest| rest.strip_prefix(namespace))
                        .and_then(|rest| rest.strip_prefix(':'))
                        == Some(self.name.as_str())
            }
            _ => false,
        }
    }

    /// `User "alice"`, `ServiceAccount "builder/ci"`: how Kubernetes names a subject in reasons.
    pub fn describe(&self, binding_namespace: &str) -> String {
        if self.kind == "ServiceAccount" {
            let namespace = if self.namespace.is_empty() {
                binding_namespace
            } else {
                &self.namespace
            };
            return format!("{} {:?}", self.kind, format!("{}/{namespace}", self.name));
        }
        format!("{} {:?}", self.kind, self.name)
    }
}

/// The role a binding grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

impl RoleRef {
    pub fn cluster_role(name: &str) -> RoleRef {
        RoleRef {
            api_group: super::RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        subresource: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource,
            namespace: "default",
            name,
            path: "",
        }
    }

    fn path<'a>(verb: &'a str, path: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path,
        }
    }

    /// Every wildcard and scoping case of `RuleAllows`, resource requests.
    #[test]
    fn resource_rules_match_as_kubernetes_matches_them() {
        let pods = PolicyRule::resources(&["get", "list"], &[""], &["pods"]);
        let any_verb = PolicyRule::resources(&["*"], &[""], &["pods"]);
        let any_group = PolicyRule::resources(&["get"], &["*"], &["deployments"]);
        let any_resource = PolicyRule::resources(&["get"], &["apps"], &["*"]);
        let status = PolicyRule::resources(&["update"], &[""], &["pods/status"]);
        let any_status = PolicyRule::resources(&["update"], &["*"], &["*/status"]);
        let named = PolicyRule::resources(&["get", "update"], &[""], &["pods"]).named(&["web"]);
        let cases: &[(&PolicyRule, Attributes<'_>, bool)] = &[
            (&pods, resource("get", "", "pods", "", "x"), true),
            (&pods, resource("list", "", "pods", "", ""), true),
            (&pods, resource("delete", "", "pods", "", "x"), false),
            (&pods, resource("get", "apps", "pods", "", "x"), false),
            (&pods, resource("get", "", "services", "", "x"), false),
            // A rule on a resource does not cover its subresources.
            (&pods, resource("get", "", "pods", "log", "x"), false),
            (&any_verb, resource("escalate", "", "pods", "", "x"), true),
            (&any_verb, resource("get", "", "pods", "status", "x"), false),
            (
                &any_group,
                resource("get", "apps", "deployments", "", "d"),
                true,
            ),
            (
                &any_group,
                resource("get", "extensions", "deployments", "", "d"),
                true,
            ),
            (
                &any_group,
                resource("get", "apps", "replicasets", "", "d"),
                false,
            ),
            (
                &any_resource,
                resource("get", "apps", "replicasets", "", "r"),
                true,
            ),
            // `*` covers subresources too.
            (
                &any_resource,
                resource("get", "apps", "deployments", "scale", "d"),
                true,
            ),
            (&any_resource, resource("get", "", "pods", "", "p"), false),
            (&status, resource("update", "", "pods", "status", "p"), true),
            (&status, resource("update", "", "pods", "", "p"), false),
            (
                &status,
                resource("update", "", "nodes", "status", "n"),
                false,
            ),
            (
                &any_status,
                resource("update", "", "nodes", "status", "n"),
                true,
            ),
            (
                &any_status,
                resource("update", "apps", "deployments", "status", "d"),
                true,
            ),
            (
                &any_status,
                resource("update", "apps", "deployments", "scale", "d"),
                false,
            ),
            (&any_status, resource("update", "", "pods", "", "p"), false),
            (&named, resource("get", "", "pods", "", "web"), true),
            (&named, resource("update", "", "pods", "", "web"), true),
            (&named, resource("get", "", "pods", "", "db"), false),
            // A list or create has no name: resourceNames never match it.
            (&named, resource("get", "", "pods", "", ""), false),
            // Non-resource rules never match resource requests.
            (
                &PolicyRule::urls(&["*"], &["*"]),
                resource("get", "", "pods", "", "p"),
                false,
            ),
        ];
        for (rule, attrs, want) in cases {
            assert_eq!(rule.allows(attrs), *want, "{rule:?} {attrs:?}");
        }
    }

    #[test]
    fn non_resource_rules_match_urls_with_a_trailing_star() {
        let discovery = PolicyRule::urls(&["get"], &["/api", "/api/*", "/version"]);
        let everything = PolicyRule::urls(&["*"], &["*"]);
        let healthz = PolicyRule::urls(&["get"], &["/healthz*"]);
        let cases: &[(&PolicyRule, &str, &str, bool)] = &[
            (&discovery, "get", "/api", true),
            (&discovery, "get", "/api/v1", true),
            (&discovery, "get", "/api/", true),
            (&discovery, "get", "/apis", false),
            (&discovery, "get", "/version", true),
            (&discovery, "get", "/version/", false),
            (&discovery, "post", "/api", false),
            (&everything, "delete", "/debug/actors", true),
            (&healthz, "get", "/healthz", true),
            (&healthz, "get", "/healthzfoo", true),
            (&healthz, "get", "/health", false),
            // Resource rules never match non-resource requests.
            (
                &PolicyRule::resources(&["*"], &["*"], &["*"]),
                "get",
                "/api",
                false,
            ),
        ];
        for (rule, verb, url, want) in cases {
            assert_eq!(
                rule.allows(&path(verb, url)),
                *want,
                "{rule:?} {verb} {url}"
            );
        }
    }

    #[test]
    fn subjects_apply_by_name_group_and_service_account() {
        let alice = User::new("alice", vec!["dev".into()]);
        let ci = User::new(
            "system:serviceaccount:build:ci",
            vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:build".into(),
            ],
        );
        assert!(Subject::user("alice").applies_to(&alice, ""));
        assert!(!Subject::user("bob").applies_to(&alice, ""));
        assert!(Subject::group("dev").applies_to(&alice, ""));
        assert!(!Subject::group("ops").applies_to(&alice, ""));
        assert!(Subject::service_account("build", "ci").applies_to(&ci, ""));
        assert!(!Subject::service_account("other", "ci").applies_to(&ci, ""));
        assert!(!Subject::service_account("build", "c").applies_to(&ci, ""));
        // Without a namespace: the binding's, and nothing in a cluster binding.
        let local = Subject::service_account("", "ci");
        assert!(local.applies_to(&ci, "build"));
        assert!(!local.applies_to(&ci, "other"));
        assert!(!local.applies_to(&ci, ""));
        // The service-account groups are ordinary groups.
        assert!(Subject::group("system:serviceaccounts:build").applies_to(&ci, ""));
        assert!(!Subject::user("ci").applies_to(&ci, ""));
        let unknown = Subject {
            kind: "Robot".into(),
            name: "alice".into(),
            ..Subject::default()
        };
        assert!(!unknown.applies_to(&alice, ""));
        assert_eq!(local.describe("build"), "ServiceAccount \"ci/build\"");
        assert_eq!(Subject::group("dev").describe(""), "Group \"dev\"");
    }

    #[test]
    fn rules_read_null_lists_as_empty_and_print_compactly() {
        let rule: PolicyRule = serde_json::from_value(serde_json::json!({
            "verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": null
        }))
        .unwrap();
        assert!(rule.resource_names.is_empty());
        assert_eq!(
            rule.compact_string(),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["get"]}"#
        );
        assert_eq!(
            PolicyRule::urls(&["get", "post"], &["/x"]).compact_string(),
            r#"{NonResourceURLs:["/x"], Verbs:["get" "post"]}"#
        );
        assert_eq!(
            serde_json::to_value(PolicyRule::urls(&["get"], &["/x"])).unwrap(),
            serde_json::json!({"verbs": ["get"], "nonResourceURLs": ["/x"]})
        );
    }
}
