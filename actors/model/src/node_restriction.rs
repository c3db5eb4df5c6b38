//! NodeRestriction admission, as Kubernetes' plugin of that name: what a node
//! (`system:node:<name>` in `system:nodes`) may write, judged on the objects themselves.
//!
//! - Nodes: only its own Node; on create no restricted labels; on update no change to its
//!   taints, and no label under `node-restriction.kubernetes.io/` or `node-role.kubernetes.io/`
//!   (nor any other `kubernetes.io`/`k8s.io` label a kubelet does not own) added, changed or
//!   removed.
//! - Pods: no creates and no spec updates; status updates and deletes only of pods bound to
//!   it (`spec.nodeName`), and no label changes through the status.
//! - Leases: only its own, in `kube-node-lease`.
//!
//! The server calls [`admit`] for every create, update, patch and delete by a node, after
//! authorization and validation, with the object to store and the stored one. Users that are
//! not nodes always pass.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::authz::{User, NODE_LEASE_NAMESPACE};
use crate::kinds::Kind;
use crate::status::ApiError;

/// What a write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    /// Update or patch.
    Update,
    Delete,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE`, as Kubernetes' admission names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// One write, as admission sees it.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionRequest<'a> {
    pub operation: Operation,
    pub kind: &'static Kind,
    /// `status` for `pods/status`; empty for the main resource.
    pub subresource: &'a str,
    pub namespace: &'a str,
    /// The name in the request's path (empty on a create: the object's is used).
    pub name: &'a str,
    /// The object to store (create, update).
    pub object: Option<&'a Value>,
    /// The stored object (update, delete). Required for pods: without it nothing is allowed.
    pub old_object: Option<&'a Value>,
}

/// The label namespace kubelets may never set.
pub const LABEL_NAMESPACE_NODE_RESTRICTION: &str = "node-restriction.kubernetes.io";

/// The `kubernetes.io` labels a kubelet sets on its own Node.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// Label namespaces (and their subdomains) a kubelet owns.
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_namespace(namespace: &str, domain: &str) -> bool {
    namespace == domain || namespace.ends_with(&format!(".{domain}"))
}

fn is_kubelet_label(key: &str) -> bool {
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|d| in_namespace(label_namespace(key), d))
}

/// Whether a node may not add, change or remove the label `key` on its Node (Kubernetes'
/// `getForbiddenLabels`): `node-restriction.kubernetes.io/*`, and every `kubernetes.io` or
/// `k8s.io` label that is not a kubelet's (so `node-role.kubernetes.io/*` too).
pub fn is_restricted_node_label(key: &str) -> bool {
    let namespace = label_namespace(key);
    let restricted = in_namespace(namespace, LABEL_NAMESPACE_NODE_RESTRICTION);
    let kubernetes = in_namespace(namespace, "kubernetes.io") || in_namespace(namespace, "k8s.io");
    restricted || (kubernetes && !is_kubelet_label(key))
}

fn labels(object: Option<&Value>) -> Map<String, Value> {
    object
        .and_then(|o| o["metadata"]["labels"].as_object())
        .cloned()
        .unwrap_or_default()
}

/// The keys whose value differs between the two label sets (added, changed or removed).
fn modified_labels(new: &Map<String, Value>, old: &Map<String, Value>) -> BTreeSet<String> {
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .chain(old.iter().filter(|(k, v)| new.get(*k) != Some(v)))
        .map(|(k, _)| k.clone())
        .collect()
}

fn restricted(modified: BTreeSet<String>) -> Vec<String> {
    modified
        .into_iter()
        .filter(|k| is_restricted_node_label(k))
        .collect()
}

fn pruned_taints(object: Option<&Value>) -> Value {
    match object.map(|o| &o["spec"]["taints"]) {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a.clone()),
        _ => Value::Null,
    }
}

fn node_name_of(object: Option<&Value>) -> &str {
    object
        .and_then(|o| o["spec"]["nodeName"].as_str())
        .unwrap_or("")
}

/// `Ok` unless `user` is a node and the write is one NodeRestriction refuses; then the 403
/// Kubernetes answers with (`nodes "n2" is forbidden: node "n1" is not allowed to modify
/// node "n2"`).
pub fn admit(user: &User, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
    let Some(node) = user.node_name() else {
        return Ok(());
    };
    let r = request;
    let name = if r.name.is_empty() {
        r.object
            .and_then(|o| o["metadata"]["name"].as_str())
            .unwrap_or("")
    } else {
        r.name
    };
    let forbidden = |why: String| {
        let what = r.kind.qualified_resource();
        let message = if name.is_empty() {
            format!("{what} is forbidden: {why}")
        } else {
            format!("{what} {name:?} is forbidden: {why}")
        };
        Err(ApiError::forbidden(message).about(r.kind.plural, r.kind.group, name))
    };
    match (r.kind.group, r.kind.plural, r.subresource) {
        ("", "nodes", _) => {
            if name != node {
                return forbidden(format!("node {node:?} is not allowed to modify node {name:?}"));
            }
            match r.operation {
                Operation::Create => {
                    let bad = restricted(labels(r.object).keys().cloned().collect());
                    if !bad.is_empty() {
                        return forbidden(format!(
                            "node {node:?} is not allowed to set the following labels: {}",
                            bad.join(", ")
                        ));
                    }
                }
                Operation::Update => {
                    if pruned_taints(r.object) != pruned_taints(r.old_object) {
                        return forbidden(format!("node {node:?} is not allowed to modify taints"));
                    }
                    let bad = restricted(modified_labels(
                        &labels(r.object),
                        &labels(r.old_object),
                    ));
                    if !bad.is_empty() {
                        return forbidden(format!(
                            "is not allowed to modify labels: {}",
                            bad.join(", ")
                        ));
                    }
                }
                Operation::Delete => {}
            }
            Ok(())
        }
        ("", "pods", "") => match r.operation {
            Operation::Create => forbidden(format!(
                "node {node:?} can only create mirror pods, and navarch has none"
            )),
            Operation::Delete if node_name_of(r.old_object) == node => Ok(()),
            Operation::Delete => forbidden(format!(
                "node {node:?} can only delete pods with spec.nodeName set to itself"
            )),
            Operation::Update => forbidden(format!(
                "unexpected operation \"UPDATE\", node {node:?} can only create and delete mirror pods"
            )),
        },
        ("", "pods", "status") => {
            if r.operation != Operation::Update {
                return forbidden(format!("unexpected operation {:?}", r.operation.as_str()));
            }
            if node_name_of(r.old_object) != node {
                return forbidden(format!(
                    "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                ));
            }
            if labels(r.object) != labels(r.old_object) {
                return forbidden(format!("node {node:?} cannot update labels through pod status"));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases", _) => {
            if r.namespace != NODE_LEASE_NAMESPACE {
                return forbidden(format!(
                    "can only access leases in the {NODE_LEASE_NAMESPACE:?} namespace"
                ));
            }
            if name != node {
                return forbidden(
                    "can only access node lease with the same name as the requesting node".into(),
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::GROUP_NODES;
    use crate::kinds::by_kind;
    use serde_json::json;

    fn n1() -> User {
        User::new("system:node:n1", vec![GROUP_NODES.into()])
    }

    fn node(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
    }

    fn request<'a>(
        operation: Operation,
        kind: &str,
        subresource: &'a str,
        name: &'a str,
        object: Option<&'a Value>,
        old_object: Option<&'a Value>,
    ) -> AdmissionRequest<'a> {
        AdmissionRequest {
            operation,
            kind: by_kind(kind).unwrap(),
            subresource,
            namespace: if kind == "Node" { "" } else { "shop" },
            name,
            object,
            old_object,
        }
    }

    fn update_labels(old: Value, new: Value) -> Result<(), ApiError> {
        let (old, new) = (node("n1", old), node("n1", new));
        admit(
            &n1(),
            &request(Operation::Update, "Node", "", "n1", Some(&new), Some(&old)),
        )
    }

    #[test]
    fn a_node_may_write_only_its_own_node() {
        let own = node("n1", json!({"kubernetes.io/hostname": "n1"}));
        assert_eq!(
            admit(
                &n1(),
                &request(Operation::Create, "Node", "", "", Some(&own), None)
            ),
            Ok(())
        );
        let other = node("n2", json!({}));
        let err = admit(
            &n1(),
            &request(Operation::Create, "Node", "", "", Some(&other), None),
        )
        .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#
        );
        let err = admit(
            &n1(),
            &request(
                Operation::Update,
                "Node",
                "status",
                "n2",
                Some(&other),
                Some(&other),
            ),
        )
        .unwrap_err();
        assert_eq!(err.details.name.as_deref(), Some("n2"));
        // Non-nodes are not restricted here.
        let admin = User::new("root", vec!["system:masters".into()]);
        assert_eq!(
            admit(
                &admin,
                &request(Operation::Create, "Node", "", "", Some(&other), None)
            ),
            Ok(())
        );
    }

    #[test]
    fn restricted_labels_may_not_be_added_changed_or_removed() {
        let cases = [
            // (old labels, new labels, refused labels)
            (
                json!({}),
                json!({"node-role.kubernetes.io/control-plane": ""}),
                Some("node-role.kubernetes.io/control-plane"),
            ),
            (
                json!({"node-role.kubernetes.io/worker": "a"}),
                json!({"node-role.kubernetes.io/worker": "b"}),
                Some("node-role.kubernetes.io/worker"),
            ),
            (
                json!({"node-role.kubernetes.io/worker": ""}),
                json!({}),
                Some("node-role.kubernetes.io/worker"),
            ),
            (
                json!({}),
                json!({"node-restriction.kubernetes.io/gpu": "a100"}),
                Some("node-restriction.kubernetes.io/gpu"),
            ),
            (
                json!({"node-restriction.kubernetes.io/gpu": "a100"}),
                json!({}),
                Some("node-restriction.kubernetes.io/gpu"),
            ),
            (
                json!({}),
                json!({"team.node-restriction.kubernetes.io/x": "y"}),
                Some("team.node-restriction.kubernetes.io/x"),
            ),
            (
                json!({}),
                json!({"example.k8s.io/x": "y"}),
                Some("example.k8s.io/x"),
            ),
            // Allowed: a kubelet's own labels, other domains, unchanged restricted labels.
            (
                json!({}),
                json!({"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux"}),
                None,
            ),
            (
                json!({}),
                json!({"topology.kubernetes.io/zone": "z1"}),
                None,
            ),
            (
                json!({}),
                json!({"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
                None,
            ),
            (
                json!({}),
                json!({"disk": "ssd", "example.com/rack": "r4"}),
                None,
            ),
            (
                json!({"node-role.kubernetes.io/worker": ""}),
                json!({"node-role.kubernetes.io/worker": "", "disk": "hdd"}),
                None,
            ),
        ];
        for (old, new, refused) in cases {
            let result = update_labels(old.clone(), new.clone());
            match refused {
                None => assert_eq!(result, Ok(()), "{old} -> {new}"),
                Some(label) => {
                    let err = result.unwrap_err();
                    assert_eq!(err.code, 403);
                    assert_eq!(
                        err.message,
                        format!(
                            r#"nodes "n1" is forbidden: is not allowed to modify labels: {label}"#
                        )
                    );
                }
            }
        }
        let several = update_labels(
            json!({"node-role.kubernetes.io/b": ""}),
            json!({"node-role.kubernetes.io/a": ""}),
        )
        .unwrap_err();
        assert!(several
            .message
            .ends_with("node-role.kubernetes.io/a, node-role.kubernetes.io/b"));
        // On registration.
        let create = node(
            "n1",
            json!({"node-role.kubernetes.io/master": "", "kubernetes.io/hostname": "n1"}),
        );
        assert_eq!(
            admit(
                &n1(),
                &request(Operation::Create, "Node", "", "", Some(&create), None)
            )
            .unwrap_err()
            .message,
            r#"nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: node-role.kubernetes.io/master"#
        );
    }

    #[test]
    fn taints_are_not_the_nodes_to_change() {
        let old = json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let new = json!({"metadata": {"name": "n1"}, "spec": {}});
        let err = admit(
            &n1(),
            &request(Operation::Update, "Node", "", "n1", Some(&new), Some(&old)),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            r#"nodes "n1" is forbidden: node "n1" is not allowed to modify taints"#
        );
        assert_eq!(
            admit(
                &n1(),
                &request(
                    Operation::Update,
                    "Node",
                    "status",
                    "n1",
                    Some(&old),
                    Some(&old)
                )
            ),
            Ok(())
        );
        let empty = json!({"metadata": {"name": "n1"}, "spec": {"taints": []}});
        assert_eq!(
            admit(
                &n1(),
                &request(
                    Operation::Update,
                    "Node",
                    "",
                    "n1",
                    Some(&empty),
                    Some(&new)
                )
            ),
            Ok(())
        );
    }

    #[test]
    fn a_node_changes_only_pods_bound_to_it() {
        let mine = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}});
        let theirs = json!({"metadata": {"name": "db"}, "spec": {"nodeName": "n2"}});
        let unbound = json!({"metadata": {"name": "new"}, "spec": {}});
        let status = |pod: &Value, new: &Value| {
            admit(
                &n1(),
                &request(
                    Operation::Update,
                    "Pod",
                    "status",
                    pod["metadata"]["name"].as_str().unwrap(),
                    Some(new),
                    Some(pod),
                ),
            )
        };
        assert_eq!(status(&mine, &mine), Ok(()));
        assert_eq!(
            status(&theirs, &theirs).unwrap_err().message,
            r#"pods "db" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        );
        assert!(status(&unbound, &unbound).is_err());
        let mut relabelled = mine.clone();
        relabelled["metadata"]["labels"]["app"] = json!("evil");
        assert_eq!(
            status(&mine, &relabelled).unwrap_err().message,
            r#"pods "web" is forbidden: node "n1" cannot update labels through pod status"#
        );
        let delete = |pod: Option<&Value>, name| {
            admit(
                &n1(),
                &request(Operation::Delete, "Pod", "", name, None, pod),
            )
        };
        assert_eq!(delete(Some(&mine), "web"), Ok(()));
        assert_eq!(
            delete(Some(&theirs), "db").unwrap_err().message,
            r#"pods "db" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#
        );
        assert!(delete(None, "db").is_err());
        assert!(admit(
            &n1(),
            &request(Operation::Create, "Pod", "", "", Some(&mine), None)
        )
        .is_err());
        assert!(admit(
            &n1(),
            &request(
                Operation::Update,
                "Pod",
                "",
                "web",
                Some(&mine),
                Some(&mine)
            )
        )
        .is_err());
    }

    #[test]
    fn a_node_holds_only_its_own_lease() {
        let lease =
            |name: &str| json!({"metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE}});
        let kind = by_kind("Lease").unwrap();
        let at = |ns: &'static str, name: &'static str, object: &Value, op| {
            admit(
                &n1(),
                &AdmissionRequest {
                    operation: op,
                    kind,
                    subresource: "",
                    namespace: ns,
                    name,
                    object: Some(object),
                    old_object: None,
                },
            )
        };
        assert_eq!(
            at(NODE_LEASE_NAMESPACE, "", &lease("n1"), Operation::Create),
            Ok(())
        );
        assert_eq!(
            at(NODE_LEASE_NAMESPACE, "", &lease("n2"), Operation::Create)
                .unwrap_err()
                .message,
            r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
        );
        assert!(at(NODE_LEASE_NAMESPACE, "n2", &lease("n2"), Operation::Update).is_err());
        assert_eq!(
            at("default", "n1", &lease("n1"), Operation::Update)
                .unwrap_err()
                .message,
            r#"leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" namespace"#
        );
        // Other kinds pass.
        let ev = json!({"metadata": {"name": "e"}});
        let events = by_kind("Event").unwrap();
        assert_eq!(
            admit(
                &n1(),
                &AdmissionRequest {
                    operation: Operation::Create,
                    kind: events,
                    subresource: "",
                    namespace: "shop",
                    name: "",
                    object: Some(&ev),
                    old_object: None
                }
            ),
            Ok(())
        );
    }
}
