//! Which namespaces need their `default` ServiceAccount (pure), as Kubernetes'
//! serviceaccounts controller ensures one in every namespace: each namespace that is not
//! being deleted and has no `default` account gets one, again after it is deleted.

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
    let mut out: Vec<String> = namespaces
        .iter()
        .filter(|n| n["metadata"]["deletionTimestamp"].is_null())
        .filter(|n| n["status"]["phase"].as_str().unwrap_or("Active") == "Active")
        .filter_map(|n| n["metadata"]["name"].as_str())
        .filter(|n| !have.contains(n))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The `default` ServiceAccount of `namespace`.
pub fn default_account(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT, "namespace": namespace},
    })
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
}
