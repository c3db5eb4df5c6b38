//! The kinds navarch serves: their group, version, resource names and subresources.

/// One served kind. Resource names follow Kubernetes (`pods`, `deployments`, ...).
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// The resource (plural), e.g. `deployments`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<sub>`.
    pub subresources: &'static [&'static str],
    /// The verbs served on the main resource, as discovery lists them: [`VERBS`] for stored
    /// kinds, only `create` for the review kinds.
    pub verbs: &'static [&'static str],
    /// Whether objects of this kind are kept in the store. The review kinds
    /// (SelfSubjectAccessReview, ...) are not: a create is answered and forgotten.
    pub stored: bool,
}

const ALL: &[&str] = &["all"];

/// Every kind navarch serves, in discovery order.
pub static KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        // `finalize`: PUT only, the namespace controller's (Kubernetes' FinalizeREST).
        subresources: &["status", "finalize"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &["status"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: ALL,
        subresources: &["status", "binding", "eviction", "log", "exec"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: ALL,
        subresources: &["status"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &["token"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: ALL,
        subresources: &["status", "scale"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: ALL,
        subresources: &["status", "scale"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &["status"],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "node.k8s.io",
        version: "v1",
        kind: "RuntimeClass",
        plural: "runtimeclasses",
        singular: "runtimeclass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenReview",
        plural: "tokenreviews",
        singular: "tokenreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: CREATE_ONLY,
        stored: false,
    },
    Kind {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: CREATE_ONLY,
        stored: false,
    },
    Kind {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: CREATE_ONLY,
        stored: false,
    },
    Kind {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: CREATE_ONLY,
        stored: false,
    },
    Kind {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: CREATE_ONLY,
        stored: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: VERBS,
        stored: true,
    },
];

/// The verbs of the review kinds: they are created (and answered), never read back.
pub const CREATE_ONLY: &[&str] = &["create"];

/// The verbs of every stored kind on its main resource.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl Kind {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: the resource as Kubernetes names it in messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The kind field of the store key: the qualified resource, so groups never collide.
    pub fn store_kind(&self) -> String {
        self.qualified_resource()
    }

    /// The URL prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether the main resource serves `verb` (`get`, `create`, ...).
    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

/// The kind served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The kind named `kind` (e.g. `Pod`), in any group.
pub fn by_kind(kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// The kind stored under `store_kind` (see [`Kind::store_kind`]).
pub fn by_store_kind(store_kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.store_kind() == store_kind)
}

/// The served group versions, `(group, version)`, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in KINDS {
        if !out.contains(&(k.group, k.version)) {
            out.push((k.group, k.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(d.kind, "Deployment");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.qualified_resource(), "deployments.apps");
        assert_eq!(by_kind("Deployment"), Some(d));
        assert_eq!(by_store_kind("deployments.apps"), Some(d));
        assert_eq!(lookup("", "v1", "pods").unwrap().store_kind(), "pods");
        assert!(lookup("apps", "v1", "pods").is_none());
        assert_eq!(
            group_versions(),
            vec![
                ("", "v1"),
                ("apps", "v1"),
                ("coordination.k8s.io", "v1"),
                ("discovery.k8s.io", "v1"),
                ("policy", "v1"),
                ("node.k8s.io", "v1"),
                ("authentication.k8s.io", "v1"),
                ("authorization.k8s.io", "v1"),
                ("rbac.authorization.k8s.io", "v1"),
            ]
        );
    }

    #[test]
    fn review_kinds_are_create_only_and_never_stored() {
        for kind in KINDS {
            let review = kind.plural.ends_with("reviews");
            assert_eq!(kind.stored, !review, "{}", kind.kind);
            if review {
                assert_eq!(kind.verbs, CREATE_ONLY, "{}", kind.kind);
                assert!(!kind.namespaced && kind.subresources.is_empty());
                assert!(kind.serves("create") && !kind.serves("get"));
            } else {
                assert_eq!(kind.verbs, VERBS, "{}", kind.kind);
            }
        }
        let role = lookup("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        assert!(role.namespaced);
        assert_eq!(role.qualified_resource(), "roles.rbac.authorization.k8s.io");
        assert!(!by_kind("ClusterRoleBinding").unwrap().namespaced);
        let rc = lookup("node.k8s.io", "v1", "runtimeclasses").unwrap();
        assert!(!rc.namespaced && rc.short_names.is_empty() && rc.subresources.is_empty());
        assert_eq!(rc.qualified_resource(), "runtimeclasses.node.k8s.io");
        assert_eq!(
            by_kind("SelfSubjectReview").unwrap().api_version(),
            "authentication.k8s.io/v1"
        );
    }
}
