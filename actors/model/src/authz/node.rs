//! The Node authorizer: what a node agent (`system:node:<name>` in `system:nodes`) may do,
//! scoped to its own objects as Kubernetes' Node authorizer and NodeRestriction scope a
//! kubelet. Read what a kubelet watches, cluster-wide; write its own Node (and its status)
//! and its own Lease in `kube-node-lease`; read and write the status of, and delete, pods
//! bound to it (which the server confirms against the stored pod); read the ConfigMaps and
//! Secrets its pods refer to (confirmed against the pods bound to it); write events; ask
//! for tokens of its pods' service accounts (the server binds each to a pod on the node).
//!
//! Anything else gets no opinion here, so RBAC decides (nodes are authenticated users: they
//! get discovery and the review kinds like everyone).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Attributes, Verdict, NODE_LEASE_NAMESPACE};

const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// Resources a node may read (cluster-wide, like the kubelet's informers). RuntimeClasses
/// are Kubernetes' `NodeRules` (the kubelet resolves a pod's `runtimeClassName` to its
/// handler); EndpointSlices are what the node's proxy follows (Kubernetes' node-proxier role).
pub const NODE_READABLE: &[&str] = &[
    "pods",
    "nodes",
    "services",
    "endpoints",
    "endpointslices",
    "namespaces",
    "leases",
    "events",
    "runtimeclasses",
];

/// The ConfigMaps and Secrets `pod` refers to (env, envFrom of every container, init and
/// ephemeral ones included, and its configMap, secret and projected volumes): what its
/// node may read (Kubernetes' node authorizer follows the same graph) and fetches.
pub fn referenced_objects(pod: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in array(spec, list) {
            for source in array(c, "envFrom") {
                if let Some(n) = source.get("configMapRef").and_then(|r| str_at(r, "name")) {
                    config_maps.insert(n.to_string());
                }
                if let Some(n) = source.get("secretRef").and_then(|r| str_at(r, "name")) {
                    secrets.insert(n.to_string());
                }
            }
            for var in array(c, "env") {
                let Some(from) = var.get("valueFrom") else {
                    continue;
                };
                if let Some(n) = from.get("configMapKeyRef").and_then(|r| str_at(r, "name")) {
                    config_maps.insert(n.to_string());
                }
                if let Some(n) = from.get("secretKeyRef").and_then(|r| str_at(r, "name")) {
                    secrets.insert(n.to_string());
                }
            }
        }
    }
    for volume in array(spec, "volumes") {
        if let Some(n) = volume.get("configMap").and_then(|r| str_at(r, "name")) {
            config_maps.insert(n.to_string());
        }
        if let Some(n) = volume.get("secret").and_then(|r| str_at(r, "secretName")) {
            secrets.insert(n.to_string());
        }
        if let Some(projected) = volume.get("projected") {
            for source in array(projected, "sources") {
                if let Some(n) = source.get("configMap").and_then(|r| str_at(r, "name")) {
                    config_maps.insert(n.to_string());
                }
                if let Some(n) = source.get("secret").and_then(|r| str_at(r, "name")) {
                    secrets.insert(n.to_string());
                }
            }
        }
    }
    config_maps.remove("");
    secrets.remove("");
    (config_maps, secrets)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

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
        // Tokens for its pods' service accounts: the server allows only those bound to a
        // pod on this node that runs as that account (Kubernetes' NodeRestriction).
        ("", "serviceaccounts", "token") if a.verb == "create" => Verdict::Allow,
        // Only those a pod bound to it refers to: the server checks the pods.
        ("", "configmaps" | "secrets", "") if a.verb == "get" && !a.name.is_empty() => {
            Verdict::AllowIfPodOnNode(node.to_string())
        }
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
                a("watch", "node.k8s.io", "runtimeclasses", "", "", ""),
                Verdict::Allow,
            ),
            (
                a("get", "node.k8s.io", "runtimeclasses", "", "", "oci"),
                Verdict::Allow,
            ),
            (
                a("create", "node.k8s.io", "runtimeclasses", "", "", ""),
                Verdict::NoOpinion,
            ),
            (
                a("delete", "node.k8s.io", "runtimeclasses", "", "", "oci"),
                Verdict::NoOpinion,
            ),
            (
                a("get", "", "pods", "log", "shop", "web"),
                Verdict::NoOpinion,
            ),
            (
                a("list", "apps", "deployments", "", "", ""),
                Verdict::NoOpinion,
            ),
            (
                a("create", "", "serviceaccounts", "token", "shop", "default"),
                Verdict::Allow,
            ),
            (
                a("get", "", "serviceaccounts", "token", "shop", "default"),
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
