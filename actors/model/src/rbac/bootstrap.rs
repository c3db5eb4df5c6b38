//! The bootstrap policy: the ClusterRoles and ClusterRoleBindings every navarch cluster starts
//! with, after Kubernetes' `plugin/pkg/auth/authorizer/rbac/bootstrappolicy`.
//!
//! Where navarch differs, and why:
//! - `admin`, `edit` and `view` are aggregated in Kubernetes; navarch has no aggregation, so
//!   their rules are written out, limited to the resources navarch serves.
//! - `system:kube-scheduler` is least privilege for navarch's scheduler: no pod deletion
//!   (navarch does not preempt), no reads of workloads or volumes it does not consult.
//! - Controller roles are Kubernetes' for the resources navarch serves, plus, since each
//!   controller's informers run under its own identity, the reads they need (the node
//!   lifecycle controller's leases), and events for every controller.
//! - The group `navarch:viewers` is bound to `view`, and to `navarch:cluster-viewer` for the
//!   cluster-scoped reads (nodes, leases) navarch viewers have always had.
//!
//! Every object is labelled `kubernetes.io/bootstrapping: rbac-defaults` and annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`, so [`super::reconcile`] keeps it
//! up to date unless an administrator sets the annotation to `"false"`.

use serde_json::{json, Value};

use super::rule::{PolicyRule, RoleRef, Subject};
use super::RBAC_API_VERSION;
use crate::authz::{
    GROUP_AUTHENTICATED, GROUP_MASTERS, GROUP_MONITORING, GROUP_UNAUTHENTICATED, GROUP_VIEWERS,
};
use crate::identity::{self, Component};

/// The label every bootstrap object carries.
pub const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The annotation that lets the reconcile update an object (`"false"` protects it).
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

pub const CLUSTER_ADMIN: &str = "cluster-admin";
pub const ADMIN: &str = "admin";
pub const EDIT: &str = "edit";
pub const VIEW: &str = "view";
pub const DISCOVERY: &str = "system:discovery";
pub const BASIC_USER: &str = "system:basic-user";
pub const PUBLIC_INFO_VIEWER: &str = "system:public-info-viewer";
pub const MONITORING: &str = "system:monitoring";
/// navarch's cluster-scoped reads for viewers (nodes, leases).
pub const CLUSTER_VIEWER: &str = "navarch:cluster-viewer";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CORE: &[&str] = &[""];
const APPS: &[&str] = &["apps"];
const COORDINATION: &[&str] = &["coordination.k8s.io"];
const DISCOVERY_GROUP: &[&str] = &["discovery.k8s.io"];
const POLICY: &[&str] = &["policy"];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule::resources(verbs, groups, resources)
}

/// What every component may do with events.
fn events() -> PolicyRule {
    rule(&["create", "patch", "update"], CORE, &["events"])
}

fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            CORE,
            &[
                "configmaps",
                "endpoints",
                "pods",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            CORE,
            &["events", "namespaces/status", "pods/log", "pods/status"],
        ),
        rule(READ, CORE, &["namespaces"]),
        rule(
            READ,
            APPS,
            &[
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
            ],
        ),
        rule(READ, DISCOVERY_GROUP, &["endpointslices"]),
        rule(
            READ,
            POLICY,
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
    ]
}

fn edit_rules() -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(READ, CORE, &["pods/exec"]),
        rule(WRITE, CORE, &["pods", "pods/exec"]),
        rule(&["create"], CORE, &["pods/eviction"]),
        rule(
            WRITE,
            CORE,
            &[
                "configmaps",
                "events",
                "secrets",
                "serviceaccounts",
                "services",
            ],
        ),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        // Like Kubernetes' edit (not view): Secrets are readable by editors only.
        rule(READ, CORE, &["secrets"]),
        rule(
            WRITE,
            APPS,
            &[
                "deployments",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(READ_WRITE, COORDINATION, &["leases"]),
        rule(WRITE, POLICY, &["poddisruptionbudgets"]),
    ];
    rules.extend(view_rules());
    rules
}

fn admin_rules() -> Vec<PolicyRule> {
    let mut rules = vec![rule(
        READ_WRITE,
        &[super::RBAC_GROUP],
        &["rolebindings", "roles"],
    )];
    rules.extend(edit_rules());
    rules
}

fn scheduler_rules() -> Vec<PolicyRule> {
    vec![
        events(),
        rule(&["create"], COORDINATION, &["leases"]),
        rule(&["get", "update"], COORDINATION, &["leases"]).named(&["kube-scheduler"]),
        rule(READ, CORE, &["nodes"]),
        rule(READ, CORE, &["pods"]),
        rule(&["create"], CORE, &["pods/binding"]),
        rule(&["patch", "update"], CORE, &["pods/status"]),
    ]
}

/// The rules of each component's ClusterRole.
fn component_rules(c: &Component) -> Vec<PolicyRule> {
    let mut rules = match c.name {
        "kube-scheduler" => return scheduler_rules(),
        // The shared caches: read everything, write nothing.
        "kube-controller-manager" => return vec![rule(READ, &["*"], &["*"])],
        "deployment-controller" => vec![
            rule(&["get", "list", "update", "watch"], APPS, &["deployments"]),
            rule(&["update"], APPS, &["deployments/status"]),
            rule(
                &[
                    "create", "delete", "get", "list", "patch", "update", "watch",
                ],
                APPS,
                &["replicasets"],
            ),
            rule(&["get", "list", "update", "watch"], CORE, &["pods"]),
        ],
        "replicaset-controller" => vec![
            rule(&["get", "list", "update", "watch"], APPS, &["replicasets"]),
            rule(&["update"], APPS, &["replicasets/status"]),
            rule(
                &["create", "delete", "list", "patch", "watch"],
                CORE,
                &["pods"],
            ),
        ],
        "generic-garbage-collector" => vec![rule(
            &["delete", "get", "list", "patch", "update", "watch"],
            &["*"],
            &["*"],
        )],
        // Kubernetes' service-account controller and root-CA publisher in one: a `default`
        // ServiceAccount and the `kube-root-ca.crt` ConfigMap in every namespace.
        "service-account-controller" => vec![
            rule(&["create"], CORE, &["serviceaccounts"]),
            rule(READ, CORE, &["namespaces", "serviceaccounts", "configmaps"]),
            rule(&["create", "update"], CORE, &["configmaps"]),
        ],
        "namespace-controller" => vec![
            rule(&["delete", "get", "list", "watch"], CORE, &["namespaces"]),
            rule(
                &["update"],
                CORE,
                &["namespaces/finalize", "namespaces/status"],
            ),
            rule(
                &["delete", "deletecollection", "get", "list", "watch"],
                &["*"],
                &["*"],
            ),
        ],
        // Kubernetes' role: it reads through the shared caches and reads a node live
        // before collecting its orphans.
        "pod-garbage-collector" => vec![
            rule(&["delete", "list", "watch"], CORE, &["pods"]),
            rule(&["patch"], CORE, &["pods/status"]),
            rule(READ, CORE, &["nodes"]),
        ],
        "node-controller" => vec![
            rule(
                &["delete", "get", "list", "patch", "update", "watch"],
                CORE,
                &["nodes"],
            ),
            rule(&["patch", "update"], CORE, &["nodes/status"]),
            rule(&["patch", "update"], CORE, &["pods/status"]),
            rule(&["delete", "get", "list", "watch"], CORE, &["pods"]),
            rule(READ, COORDINATION, &["leases"]),
        ],
        "endpoint-controller" => vec![
            rule(READ, CORE, &["pods", "services"]),
            rule(
                &["create", "delete", "get", "list", "update", "watch"],
                CORE,
                &["endpoints"],
            ),
        ],
        "endpointslice-controller" => vec![
            rule(READ, CORE, &["nodes", "pods", "services"]),
            // Its slices are owned by their Service with blockOwnerDeletion.
            rule(&["update"], CORE, &["services/finalizers"]),
            rule(
                &["create", "delete", "get", "list", "update", "watch"],
                DISCOVERY_GROUP,
                &["endpointslices"],
            ),
        ],
        "disruption-controller" => vec![
            rule(READ, APPS, &["deployments", "replicasets"]),
            rule(READ, POLICY, &["poddisruptionbudgets"]),
            rule(&["update"], POLICY, &["poddisruptionbudgets/status"]),
            rule(&["get"], &["*"], &["*/scale"]),
            rule(READ, CORE, &["pods"]),
            // It clears the DisruptionTarget condition of pods an eviction did not delete.
            rule(&["patch", "update"], CORE, &["pods/status"]),
        ],
        other => panic!("no bootstrap role for component {other}"),
    };
    rules.push(events());
    rules
}

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": { BOOTSTRAPPING_LABEL.0: BOOTSTRAPPING_LABEL.1 },
        "annotations": { AUTOUPDATE_ANNOTATION: "true" },
    })
}

/// A bootstrap ClusterRole object.
pub fn cluster_role(name: &str, rules: &[PolicyRule]) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": metadata(name),
        "rules": rules,
    })
}

/// A bootstrap ClusterRoleBinding object, named after the role unless `name` says otherwise.
pub fn cluster_role_binding(name: &str, role: &str, subjects: &[Subject]) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name),
        "roleRef": RoleRef::cluster_role(role),
        "subjects": subjects,
    })
}

/// Every bootstrap ClusterRole.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        cluster_role(
            CLUSTER_ADMIN,
            &[
                rule(&["*"], &["*"], &["*"]),
                PolicyRule::urls(&["*"], &["*"]),
            ],
        ),
        cluster_role(ADMIN, &admin_rules()),
        cluster_role(EDIT, &edit_rules()),
        cluster_role(VIEW, &view_rules()),
        cluster_role(
            DISCOVERY,
            &[PolicyRule::urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            BASIC_USER,
            &[
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            PUBLIC_INFO_VIEWER,
            &[PolicyRule::urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            MONITORING,
            &[PolicyRule::urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        cluster_role(
            CLUSTER_VIEWER,
            &[
                rule(READ, CORE, &["nodes"]),
                rule(READ, COORDINATION, &["leases"]),
            ],
        ),
    ];
    for c in identity::COMPONENTS {
        roles.push(cluster_role(c.cluster_role, &component_rules(c)));
    }
    roles
}

/// Every bootstrap ClusterRoleBinding.
pub fn cluster_role_bindings() -> Vec<Value> {
    let authenticated = Subject::group(GROUP_AUTHENTICATED);
    let mut bindings = vec![
        cluster_role_binding(
            CLUSTER_ADMIN,
            CLUSTER_ADMIN,
            &[Subject::group(GROUP_MASTERS)],
        ),
        cluster_role_binding(DISCOVERY, DISCOVERY, std::slice::from_ref(&authenticated)),
        cluster_role_binding(BASIC_USER, BASIC_USER, std::slice::from_ref(&authenticated)),
        cluster_role_binding(
            PUBLIC_INFO_VIEWER,
            PUBLIC_INFO_VIEWER,
            &[authenticated.clone(), Subject::group(GROUP_UNAUTHENTICATED)],
        ),
        cluster_role_binding(MONITORING, MONITORING, &[Subject::group(GROUP_MONITORING)]),
        cluster_role_binding(GROUP_VIEWERS, VIEW, &[Subject::group(GROUP_VIEWERS)]),
        cluster_role_binding(
            CLUSTER_VIEWER,
            CLUSTER_VIEWER,
            &[Subject::group(GROUP_VIEWERS)],
        ),
    ];
    for c in identity::COMPONENTS {
        bindings.push(cluster_role_binding(
            c.cluster_role,
            c.cluster_role,
            &[c.subject()],
        ));
    }
    bindings
}

/// The whole policy: the roles, then the bindings.
pub fn objects() -> Vec<Value> {
    let mut all = cluster_roles();
    all.extend(cluster_role_bindings());
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Attributes, User};
    use crate::identity::*;
    use crate::kinds::by_kind;
    use crate::rbac::RbacSnapshot;
    use crate::validate;

    /// What the bootstrap policy alone lets `user` do.
    fn can(user: &User, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> bool {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let attrs = Attributes {
            verb,
            group,
            resource,
            subresource,
            namespace: ns,
            name,
            path: "",
        };
        RbacSnapshot::with_bootstrap_policy()
            .authorize(user, &attrs)
            .allowed_by
            .is_some()
    }

    fn can_path(user: &User, verb: &str, path: &str) -> bool {
        let attrs = Attributes {
            verb,
            group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path,
        };
        RbacSnapshot::with_bootstrap_policy()
            .authorize(user, &attrs)
            .allowed_by
            .is_some()
    }

    #[test]
    fn every_object_is_valid_labelled_and_named_once() {
        let mut names = Vec::new();
        for o in objects() {
            let kind = by_kind(o["kind"].as_str().unwrap()).unwrap();
            let mut decoded =
                validate::decode(kind, &o, validate::FieldValidation::Strict).unwrap();
            validate::default(kind, &mut decoded.object);
            assert_eq!(
                validate::validate_create(kind, &decoded.object),
                vec![],
                "{o}"
            );
            assert_eq!(
                o["metadata"]["labels"]["kubernetes.io/bootstrapping"],
                "rbac-defaults"
            );
            assert_eq!(o["metadata"]["annotations"][AUTOUPDATE_ANNOTATION], "true");
            names.push(format!("{}/{}", kind.kind, o["metadata"]["name"]));
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        // Every binding's role exists.
        let roles: Vec<Value> = cluster_roles();
        for b in cluster_role_bindings() {
            let role = &b["roleRef"]["name"];
            assert!(roles.iter().any(|r| &r["metadata"]["name"] == role), "{b}");
        }
    }

    #[test]
    fn groups_keep_their_meaning() {
        let admin = User::new(
            "root",
            vec![GROUP_MASTERS.into(), GROUP_AUTHENTICATED.into()],
        );
        assert!(can(&admin, "delete", "", "nodes", "", "n1"));
        assert!(can(
            &admin,
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "x"
        ));
        assert!(can_path(&admin, "get", "/debug/actors"));

        let viewer = User::new("v", vec![GROUP_VIEWERS.into(), GROUP_AUTHENTICATED.into()]);
        for (resource, group, ns) in [
            ("pods", "", "default"),
            ("pods", "", ""),
            ("deployments", "apps", "shop"),
            ("replicasets/scale", "apps", "shop"),
            ("services", "", "x"),
            ("endpoints", "", "x"),
            ("events", "", "x"),
            ("namespaces", "", ""),
            ("nodes", "", ""),
            ("leases", "coordination.k8s.io", "kube-node-lease"),
            ("pods/log", "", "default"),
        ] {
            assert!(can(&viewer, "list", group, resource, ns, ""), "{resource}");
        }
        assert!(!can(&viewer, "create", "", "pods", "default", ""));
        assert!(!can(&viewer, "create", "", "pods/exec", "default", "p"));
        assert!(!can(&viewer, "create", "", "pods/eviction", "default", "p"));
        assert!(!can(
            &viewer,
            "list",
            "rbac.authorization.k8s.io",
            "roles",
            "x",
            ""
        ));
        assert!(!can_path(&viewer, "get", "/debug/actors"));

        let nobody = User::new("nobody", vec![GROUP_AUTHENTICATED.into()]);
        for path in [
            "/api",
            "/apis/apps/v1",
            "/openapi/v3",
            "/version",
            "/healthz",
            "/readyz",
        ] {
            assert!(can_path(&nobody, "get", path), "{path}");
        }
        assert!(!can_path(&nobody, "get", "/metrics"));
        assert!(!can_path(&nobody, "get", "/debug/actors"));
        assert!(!can(&nobody, "get", "", "pods", "default", "p"));
        assert!(can(
            &nobody,
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            ""
        ));
        assert!(can(
            &nobody,
            "create",
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "",
            ""
        ));
        assert!(can(
            &nobody,
            "create",
            "authentication.k8s.io",
            "selfsubjectreviews",
            "",
            ""
        ));
        assert!(!can(
            &nobody,
            "create",
            "authorization.k8s.io",
            "subjectaccessreviews",
            "",
            ""
        ));

        let anonymous = User::new("system:anonymous", vec![GROUP_UNAUTHENTICATED.into()]);
        assert!(can_path(&anonymous, "get", "/healthz"));
        assert!(can_path(&anonymous, "get", "/version"));
        assert!(!can_path(&anonymous, "get", "/api"));

        let prometheus = User::new("prom", vec![GROUP_MONITORING.into()]);
        assert!(can_path(&prometheus, "get", "/metrics"));
        assert!(can_path(&prometheus, "get", "/readyz/etcd"));
        assert!(!can_path(&prometheus, "get", "/api"));
    }

    #[test]
    fn admin_edit_view_are_nested_and_rbac_is_for_admins() {
        let bind = |role: &str| {
            let mut s = RbacSnapshot::with_bootstrap_policy();
            s.add_in_memory_cluster_role_binding(
                "t",
                RoleRef::cluster_role(role),
                vec![Subject::user("u")],
            );
            s
        };
        let u = User::new("u", vec![]);
        let may = |s: &RbacSnapshot, verb, group, resource: &str| {
            let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
            let attrs = Attributes {
                verb,
                group,
                resource,
                subresource,
                namespace: "shop",
                name: "",
                path: "",
            };
            s.authorize(&u, &attrs).allowed_by.is_some()
        };
        let (admin, edit, view) = (bind(ADMIN), bind(EDIT), bind(VIEW));
        assert!(may(&admin, "create", "rbac.authorization.k8s.io", "roles"));
        assert!(!may(&edit, "create", "rbac.authorization.k8s.io", "roles"));
        assert!(may(&edit, "create", "apps", "deployments"));
        // Secrets: editors read and write them, viewers see only ConfigMaps (as Kubernetes).
        assert!(may(&edit, "get", "", "secrets"));
        assert!(may(&edit, "create", "", "secrets"));
        assert!(may(&admin, "list", "", "secrets"));
        assert!(!may(&view, "get", "", "secrets"));
        assert!(!may(&view, "list", "", "secrets"));
        assert!(may(&view, "get", "", "configmaps"));
        assert!(!may(&view, "create", "", "configmaps"));
        assert!(may(&edit, "update", "coordination.k8s.io", "leases"));
        assert!(!may(&edit, "create", "", "endpoints"));
        assert!(may(&edit, "create", "policy", "poddisruptionbudgets"));
        assert!(may(&edit, "create", "", "pods/eviction"));
        assert!(may(&admin, "create", "", "pods/eviction"));
        assert!(!may(&view, "create", "", "pods/eviction"));
        assert!(!may(&view, "create", "policy", "poddisruptionbudgets"));
        assert!(may(&view, "list", "policy", "poddisruptionbudgets"));
        assert!(may(&view, "watch", "discovery.k8s.io", "endpointslices"));
        assert!(!may(&edit, "create", "discovery.k8s.io", "endpointslices"));
        assert!(!may(&view, "create", "apps", "deployments"));
        assert!(may(&view, "watch", "apps", "deployments"));
        for s in [&admin, &edit] {
            assert!(may(s, "list", "", "pods") && may(s, "delete", "", "pods"));
        }
        assert!(!may(&admin, "create", "", "nodes"));
    }

    #[test]
    fn the_scheduler_has_exactly_what_it_needs() {
        let s = SCHEDULER.user_info();
        assert!(can(&s, "list", "", "pods", "", ""));
        assert!(can(&s, "watch", "", "nodes", "", ""));
        assert!(can(&s, "create", "", "pods/binding", "shop", "web-1"));
        assert!(can(&s, "patch", "", "pods/status", "shop", "web-1"));
        assert!(can(&s, "create", "", "events", "shop", ""));
        assert!(can(
            &s,
            "create",
            "coordination.k8s.io",
            "leases",
            "kube-system",
            ""
        ));
        assert!(can(
            &s,
            "update",
            "coordination.k8s.io",
            "leases",
            "kube-system",
            "kube-scheduler"
        ));
        assert!(!can(
            &s,
            "update",
            "coordination.k8s.io",
            "leases",
            "kube-system",
            "kube-controller-manager"
        ));
        assert!(!can(&s, "delete", "", "pods", "shop", "web-1"));
        assert!(!can(&s, "update", "", "pods", "shop", "web-1"));
        assert!(!can(&s, "create", "apps", "deployments", "shop", ""));
        assert!(!can(&s, "update", "apps", "deployments", "shop", "web"));
        assert!(!can(&s, "update", "", "nodes", "", "n1"));
        assert!(!can(&s, "list", "", "services", "", ""));
    }

    #[test]
    fn controllers_have_exactly_what_they_need() {
        let rs = REPLICASET_CONTROLLER.user_info();
        assert!(can(&rs, "create", "", "pods", "shop", ""));
        assert!(can(&rs, "delete", "", "pods", "shop", "web-1"));
        assert!(can(
            &rs,
            "update",
            "apps",
            "replicasets/status",
            "shop",
            "web"
        ));
        assert!(can(&rs, "watch", "apps", "replicasets", "", ""));
        assert!(can(&rs, "create", "", "events", "shop", ""));
        assert!(!can(&rs, "create", "apps", "replicasets", "shop", ""));
        assert!(!can(&rs, "update", "apps", "deployments", "shop", "web"));
        assert!(!can(&rs, "create", "", "pods/binding", "shop", "web-1"));

        let d = DEPLOYMENT_CONTROLLER.user_info();
        assert!(can(&d, "create", "apps", "replicasets", "shop", ""));
        assert!(can(
            &d,
            "update",
            "apps",
            "deployments/status",
            "shop",
            "web"
        ));
        assert!(!can(&d, "create", "", "pods", "shop", ""));
        assert!(!can(&d, "delete", "apps", "deployments", "shop", "web"));

        let gc = GARBAGE_COLLECTOR.user_info();
        assert!(can(&gc, "delete", "apps", "replicasets", "shop", "web-1"));
        assert!(!can(&gc, "create", "", "pods", "shop", ""));

        let ns = NAMESPACE_CONTROLLER.user_info();
        assert!(can(&ns, "deletecollection", "", "pods", "shop", ""));
        assert!(can(&ns, "update", "", "namespaces/finalize", "", "shop"));
        assert!(!can(&ns, "create", "", "pods", "shop", ""));

        let pgc = POD_GARBAGE_COLLECTOR.user_info();
        assert!(can(&pgc, "delete", "", "pods", "shop", "web-1"));
        assert!(can(&pgc, "patch", "", "pods/status", "shop", "web-1"));
        assert!(can(&pgc, "get", "", "nodes", "", "n1"));
        assert!(can(&pgc, "watch", "", "pods", "", ""));
        assert!(!can(&pgc, "create", "", "pods", "shop", ""));
        assert!(!can(&pgc, "update", "", "pods", "shop", "web-1"));
        assert!(!can(&pgc, "delete", "", "nodes", "", "n1"));
        assert!(!can(&pgc, "update", "", "pods/status", "shop", "web-1"));

        let node = NODE_LIFECYCLE_CONTROLLER.user_info();
        assert!(can(&node, "patch", "", "nodes/status", "", "n1"));
        assert!(can(&node, "delete", "", "pods", "shop", "web-1"));
        assert!(can(
            &node,
            "watch",
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            ""
        ));
        assert!(!can(&node, "create", "", "pods", "shop", ""));
        assert!(!can(
            &node,
            "update",
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            "n1"
        ));

        let ep = ENDPOINT_CONTROLLER.user_info();
        assert!(can(&ep, "update", "", "endpoints", "shop", "web"));
        assert!(can(&ep, "watch", "", "pods", "", ""));
        assert!(!can(&ep, "update", "", "services", "shop", "web"));

        assert!(can(&ep, "create", "", "endpoints", "shop", ""));
        assert!(can(&ep, "delete", "", "endpoints", "shop", "web"));
        assert!(!can(
            &ep,
            "create",
            "discovery.k8s.io",
            "endpointslices",
            "shop",
            ""
        ));

        let eps = ENDPOINTSLICE_CONTROLLER.user_info();
        for verb in ["create", "delete", "get", "list", "update", "watch"] {
            assert!(
                can(
                    &eps,
                    verb,
                    "discovery.k8s.io",
                    "endpointslices",
                    "shop",
                    "web-x"
                ),
                "{verb}"
            );
        }
        assert!(can(&eps, "watch", "", "services", "", ""));
        assert!(can(&eps, "list", "", "nodes", "", ""));
        assert!(!can(&eps, "create", "", "endpoints", "shop", ""));

        let dc = DISRUPTION_CONTROLLER.user_info();
        assert!(can(
            &dc,
            "update",
            "policy",
            "poddisruptionbudgets/status",
            "shop",
            "web"
        ));
        assert!(can(&dc, "watch", "apps", "replicasets", "", ""));
        assert!(can(&dc, "get", "apps", "deployments/scale", "shop", "web"));
        assert!(!can(
            &dc,
            "update",
            "policy",
            "poddisruptionbudgets",
            "shop",
            "web"
        ));
        assert!(!can(&dc, "create", "", "pods/eviction", "shop", "web-1"));

        for c in CONTROLLERS {
            let u = c.user_info();
            assert!(can(&u, "create", "", "events", "shop", ""), "{}", c.name);
            assert!(
                !can(
                    &u,
                    "create",
                    "rbac.authorization.k8s.io",
                    "clusterrolebindings",
                    "",
                    ""
                ),
                "{}",
                c.name
            );
            // Every controller also gets what every authenticated user gets.
            assert!(can_path(&u, "get", "/apis"), "{}", c.name);
        }
    }
}
