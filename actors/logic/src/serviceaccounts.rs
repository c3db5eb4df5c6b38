//! Which namespaces need their `default` ServiceAccount and their `kube-root-ca.crt`
//! ConfigMap (pure), as Kubernetes' serviceaccounts controller and root-CA publisher ensure
//! them in every namespace: each namespace that is not being deleted and lacks one gets it,
//! again after it is deleted; a ConfigMap whose `ca.crt` is not the cluster CA is put back.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

/// The account every namespace has.
pub const DEFAULT: &str = "default";

/// The namespaces (sorted) of `namespaces` that are active and lack a `default` account
/// among `accounts`.
pub fn missing(namespaces: &[Arc<Value>], accounts: &[Arc<Value>]) -> Vec<String> {
    let have: BTreeSet<&str> = accounts
        .iter()
        .filter(|a| a["metadata"]["name"] == DEFAULT)
        .filter_map(|a| a["metadata"]["namespace"].as_str())
        .collect();
    active(namespaces)
        .into_iter()
        .filter(|n| !have.contains(n))
        .map(str::to_string)
        .collect()
}

/// The `default` ServiceAccount of `namespace`.
pub fn default_account(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT, "namespace": namespace},
    })
}

/// The ConfigMap with the cluster CA every namespace has (what pods' projected
/// service-account volumes read `ca.crt` from).
pub const ROOT_CA: &str = "kube-root-ca.crt";

/// What the root-CA publisher does in one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCa {
    /// Create the ConfigMap in this namespace.
    Create(String),
    /// Put `ca.crt` back in this namespace's ConfigMap, at its `resourceVersion`.
    Update {
        namespace: String,
        resource_version: String,
    },
}

/// What the active namespaces among `namespaces` need so that each has a
/// [`ROOT_CA`] ConfigMap (among `config_maps`, which may hold others) holding `ca_pem`.
pub fn root_ca_changes(
    namespaces: &[Arc<Value>],
    config_maps: &[Arc<Value>],
    ca_pem: &str,
) -> Vec<RootCa> {
    let mut out = Vec::new();
    for ns in active(namespaces) {
        let cm = config_maps.iter().find(|c| {
            c["metadata"]["name"] == ROOT_CA && c["metadata"]["namespace"].as_str() == Some(ns)
        });
        match cm {
            None => out.push(RootCa::Create(ns.to_string())),
            Some(c) if c["data"]["ca.crt"].as_str() != Some(ca_pem) => out.push(RootCa::Update {
                namespace: ns.to_string(),
                resource_version: c["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            }),
            Some(_) => {}
        }
    }
    out
}

/// The [`ROOT_CA`] ConfigMap of `namespace` (with `resource_version` for an update).
pub fn root_ca_config_map(namespace: &str, ca_pem: &str, resource_version: Option<&str>) -> Value {
    let mut v = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ROOT_CA, "namespace": namespace,
                     "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
        "data": {"ca.crt": ca_pem},
    });
    if let Some(rv) = resource_version {
        v["metadata"]["resourceVersion"] = json!(rv);
    }
    v
}

/// The names (sorted) of the namespaces that are neither terminating nor being deleted.
fn active(namespaces: &[Arc<Value>]) -> Vec<&str> {
    let mut out: Vec<&str> = namespaces
        .iter()
        .filter(|n| n["metadata"]["deletionTimestamp"].is_null())
        .filter(|n| n["status"]["phase"].as_str().unwrap_or("Active") == "Active")
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, terminating: bool) -> Arc<Value> {
        let mut n = json!({"metadata": {"name": name}, "status": {"phase": "Active"}});
        if terminating {
            n["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
            n["status"]["phase"] = json!("Terminating");
        }
        Arc::new(n)
    }

    fn sa(ns: &str, name: &str) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name, "namespace": ns}}))
    }

    #[test]
    fn active_namespaces_without_a_default_account_need_one() {
        let namespaces = [
            ns("shop", false),
            ns("default", false),
            ns("gone", true),
            ns("ops", false),
        ];
        let accounts = [sa("default", "default"), sa("ops", "builder")];
        assert_eq!(missing(&namespaces, &accounts), vec!["ops", "shop"]);
        let all = [
            sa("default", "default"),
            sa("ops", "default"),
            sa("shop", "default"),
        ];
        assert!(missing(&namespaces, &all).is_empty());
        assert_eq!(default_account("ops")["metadata"]["namespace"], "ops");
    }

    #[test]
    fn every_active_namespace_gets_the_root_ca_and_keeps_it() {
        let namespaces = [ns("shop", false), ns("gone", true), ns("ops", false)];
        let cm = |ns: &str, ca: &str| {
            let mut v = root_ca_config_map(ns, ca, None);
            v["metadata"]["resourceVersion"] = json!("7");
            Arc::new(v)
        };
        let other = Arc::new(json!({"metadata": {"name": "app", "namespace": "ops"}}));
        assert_eq!(
            root_ca_changes(&namespaces, std::slice::from_ref(&other), "CA"),
            vec![RootCa::Create("ops".into()), RootCa::Create("shop".into())]
        );
        assert_eq!(
            root_ca_changes(
                &namespaces,
                &[other, cm("ops", "CA"), cm("shop", "old")],
                "CA"
            ),
            vec![RootCa::Update {
                namespace: "shop".into(),
                resource_version: "7".into()
            }]
        );
        let v = root_ca_config_map("ops", "CA", Some("3"));
        assert_eq!(v["data"]["ca.crt"], "CA");
        assert_eq!(v["metadata"]["resourceVersion"], "3");
    }
}
