//! The Node authorizer: what a node agent (`system:node:<name>` in `system:nodes`) may do,
//! scoped to its own objects as Kubernetes' Node authorizer and NodeRestriction scope a
//! kubelet. Read what a kubelet watches, cluster-wide; write its own Node (and its status)
//! and its own Lease in `kube-node-lease`; read and write the status of, and delete, pods
//! bound to it (which the server confirms against the stored pod); write events.
//!
//! Anything else gets no opinion here, so RBAC decides (nodes are authenticated users: they
//! get discovery and the review kinds like everyone).

use super::{Attributes, Verdict, NODE_LEASE_NAMESPACE};

const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// Resources a node may read (cluster-wide, like the kubelet's informers).
pub const NODE_READABLE: &[&str] = &[
    "pods",
    "nodes",
    "services",
    "endpoints",
    "namespaces",
    "leases",
    "events",
];

/// The Node authorizer's verdict for the node `node`.
pub fn authorize(node: &str, a: &Attributes<'_>) -> Verdict {
    let is_read = READ_VERBS.contains(&a.verb);
    let own_writes = |own: bool| match a.verb {
        "get" | "create" | "update" | "patch" if own => Verdict::Allow,
        _ => Verdict::NoOpinion,
    };
    match (a.group, a.resource, a.subresource) {
        (_, r, "") if is_read && NODE_READABLE.contains(&r) => Verdict::Allow,
        ("", "nodes", "" | "status") => own_writes(a.name == node),
        ("coordination.k8s.io", "leases", "") => {
            own_writes(a.name == node && a.namespace == NODE_LEASE_NAMESPACE)
        }
        ("", "pods", "status") if matches!(a.verb, "get" | "update" | "patch") => {
            Verdict::AllowIfPodOnNode(node.to_string())
        }
        ("", "pods", "") if a.verb == "delete" => Verdict::AllowIfPodOnNode(node.to_string()),
        ("", "events", "") if matches!(a.verb, "create" | "update" | "patch") => Verdict::Allow,
        _ => Verdict::NoOpinion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
            path: "",
        }
    }

    #[test]
    fn node_rules() {
        let pod_on_node = Verdict::AllowIfPodOnNode("n1".into());
        let cases = [
            (a("watch", "", "pods", "", "", ""), Verdict::Allow),
            (a("get", "", "services", "", "shop", "web"), Verdict::Allow),
            (a("list", "", "namespaces", "", "", ""), Verdict::Allow),
            (
                a("get", "", "pods", "log", "shop", "web"),
                Verdict::NoOpinion,
            ),
            (
                a("list", "apps", "deployments", "", "", ""),
                Verdict::NoOpinion,
            ),
            (a("create", "", "nodes", "", "", "n1"), Verdict::Allow),
            (a("patch", "", "nodes", "status", "", "n1"), Verdict::Allow),
            (
                a("patch", "", "nodes", "status", "", "n2"),
                Verdict::NoOpinion,
            ),
            (a("delete", "", "nodes", "", "", "n1"), Verdict::NoOpinion),
            (
                a(
                    "create",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "n1",
                ),
                Verdict::Allow,
            ),
            (
                a(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "default",
                    "n1",
                ),
                Verdict::NoOpinion,
            ),
            (
                a("update", "", "pods", "status", "shop", "web"),
                pod_on_node.clone(),
            ),
            (a("delete", "", "pods", "", "shop", "web"), pod_on_node),
            (a("create", "", "pods", "", "shop", ""), Verdict::NoOpinion),
            (
                a("update", "", "pods", "", "shop", "web"),
                Verdict::NoOpinion,
            ),
            (a("create", "", "events", "", "shop", ""), Verdict::Allow),
            (
                a("delete", "", "events", "", "shop", "e"),
                Verdict::NoOpinion,
            ),
            (
                a(
                    "create",
                    "rbac.authorization.k8s.io",
                    "clusterrolebindings",
                    "",
                    "",
                    "",
                ),
                Verdict::NoOpinion,
            ),
        ];
        for (attrs, want) in cases {
            assert_eq!(authorize("n1", &attrs), want, "{attrs:?}");
        }
    }
}
