//! The bootstrap reconcile: what the API server writes at start so the store holds the
//! bootstrap policy, as kube-apiserver's RBAC post-start hook does (`EnsureRBACPolicy` with
//! union semantics).
//!
//! Properties kept:
//! - A missing bootstrap object is created.
//! - An existing one gains the bootstrap labels, annotations, missing rules (as atomic rules)
//!   and missing subjects; nothing an administrator added is removed.
//! - A binding whose roleRef differs is recreated (a roleRef cannot be updated).
//! - An object annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` is left alone.
//! - Running it again on its own result changes nothing (it is idempotent).

use serde_json::{Map, Value};

use super::bootstrap::{self, AUTOUPDATE_ANNOTATION};
use super::coverage::covers;
use super::rule::{PolicyRule, RoleRef, Subject};
use super::RbacKind;

/// What the server must write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileOperation {
    Create,
    /// An update with the existing object's resourceVersion (the object carries it).
    Update,
    /// Delete the existing object, then create this one.
    Recreate,
}

/// One write of the reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconcileAction {
    pub kind: RbacKind,
    pub name: String,
    pub operation: ReconcileOperation,
    /// The object to write.
    pub object: Value,
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn protected(existing: &Value) -> bool {
    existing["metadata"]["annotations"][AUTOUPDATE_ANNOTATION].as_str() == Some("false")
}

/// `existing`'s labels or annotations with `expected`'s added (existing values win, as in
/// Kubernetes' `merge(expected, existing)`); whether that changed anything.
fn merge_map(object: &mut Value, expected: &Value, key: &str) -> bool {
    let Some(want) = expected["metadata"][key].as_object() else {
        return false;
    };
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return false;
    };
    let slot = meta.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    let have = slot.as_object_mut().expect("made an object");
    let mut changed = false;
    for (k, v) in want {
        if !have.contains_key(k) {
            have.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

fn list<T: serde::de::DeserializeOwned>(v: &Value, key: &str) -> Vec<T> {
    serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Null)).unwrap_or_default()
}

/// Reconciles one bootstrap ClusterRole with what the store holds.
pub fn reconcile_cluster_role(
    expected: &Value,
    existing: Option<&Value>,
) -> Option<ReconcileAction> {
    let action = |operation, object| ReconcileAction {
        kind: RbacKind::ClusterRole,
        name: name_of(expected).to_string(),
        operation,
        object,
    };
    let Some(existing) = existing else {
        return Some(action(ReconcileOperation::Create, expected.clone()));
    };
    if protected(existing) {
        return None;
    }
    let mut object = existing.clone();
    let mut changed = merge_map(&mut object, expected, "annotations");
    changed |= merge_map(&mut object, expected, "labels");
    let have: Vec<PolicyRule> = list(existing, "rules");
    let want: Vec<PolicyRule> = list(expected, "rules");
    let (_, missing) = covers(&have, &want);
    if !missing.is_empty() {
        let mut rules = have;
        rules.extend(missing);
        object["rules"] = serde_json::to_value(rules).expect("rules serialize");
        changed = true;
    }
    changed.then(|| action(ReconcileOperation::Update, object))
}

/// Reconciles one bootstrap ClusterRoleBinding with what the store holds.
pub fn reconcile_cluster_role_binding(
    expected: &Value,
    existing: Option<&Value>,
) -> Option<ReconcileAction> {
    let action = |operation, object| ReconcileAction {
        kind: RbacKind::ClusterRoleBinding,
        name: name_of(expected).to_string(),
        operation,
        object,
    };
    let Some(existing) = existing else {
        return Some(action(ReconcileOperation::Create, expected.clone()));
    };
    if protected(existing) {
        return None;
    }
    let role_ref = |v: &Value| -> RoleRef {
        serde_json::from_value(v.get("roleRef").cloned().unwrap_or(Value::Null)).unwrap_or_default()
    };
    if role_ref(existing) != role_ref(expected) {
        return Some(action(ReconcileOperation::Recreate, expected.clone()));
    }
    let mut object = existing.clone();
    let mut changed = merge_map(&mut object, expected, "annotations");
    changed |= merge_map(&mut object, expected, "labels");
    let mut subjects: Vec<Subject> = list(existing, "subjects");
    for s in list::<Subject>(expected, "subjects") {
        if !subjects.contains(&s) {
            subjects.push(s);
            changed = true;
        }
    }
    if changed {
        object["subjects"] = serde_json::to_value(subjects).expect("subjects serialize");
    }
    changed.then(|| action(ReconcileOperation::Update, object))
}

/// The writes that bring the store's ClusterRoles and ClusterRoleBindings (`existing`, as
/// listed; other objects are ignored) up to the bootstrap policy. Roles come first, so every
/// binding's role exists when it is written.
pub fn reconcile_bootstrap_policy(existing: &[Value]) -> Vec<ReconcileAction> {
    let find = |kind: RbacKind, name: &str| {
        existing
            .iter()
            .find(|o| RbacKind::of_object(o).ok() == Some(kind) && name_of(o) == name)
    };
    let mut actions = Vec::new();
    for role in bootstrap::cluster_roles() {
        actions.extend(reconcile_cluster_role(
            &role,
            find(RbacKind::ClusterRole, name_of(&role)),
        ));
    }
    for binding in bootstrap::cluster_role_bindings() {
        actions.extend(reconcile_cluster_role_binding(
            &binding,
            find(RbacKind::ClusterRoleBinding, name_of(&binding)),
        ));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The store after carrying out `actions` on `store`.
    fn apply(store: &mut Vec<Value>, actions: &[ReconcileAction]) {
        for a in actions {
            store
                .retain(|o| !(RbacKind::of_object(o).ok() == Some(a.kind) && name_of(o) == a.name));
            store.push(a.object.clone());
        }
    }

    #[test]
    fn an_empty_store_gets_everything_and_a_second_run_changes_nothing() {
        let actions = reconcile_bootstrap_policy(&[]);
        assert_eq!(actions.len(), bootstrap::objects().len());
        assert!(actions
            .iter()
            .all(|a| a.operation == ReconcileOperation::Create));
        let first_binding = actions
            .iter()
            .position(|a| a.kind == RbacKind::ClusterRoleBinding)
            .unwrap();
        assert!(actions[first_binding..]
            .iter()
            .all(|a| a.kind == RbacKind::ClusterRoleBinding));
        let mut store = Vec::new();
        apply(&mut store, &actions);
        assert_eq!(reconcile_bootstrap_policy(&store), vec![]);
    }

    #[test]
    fn missing_rules_and_subjects_are_added_and_extras_kept() {
        let mut store = Vec::new();
        apply(&mut store, &reconcile_bootstrap_policy(&[]));
        let view = store
            .iter_mut()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "view")
            .unwrap();
        view["rules"] = json!([
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]},
            {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]},
        ]);
        view["metadata"]["resourceVersion"] = json!("42");
        view["metadata"]["labels"] = json!({"team": "ops"});
        let binding = store
            .iter_mut()
            .find(|o| o["kind"] == "ClusterRoleBinding" && o["metadata"]["name"] == "cluster-admin")
            .unwrap();
        binding["subjects"] =
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "root"}]);

        let actions = reconcile_bootstrap_policy(&store);
        assert_eq!(actions.len(), 2, "{actions:#?}");
        let view = &actions[0];
        assert_eq!(
            (view.kind, view.operation),
            (RbacKind::ClusterRole, ReconcileOperation::Update)
        );
        assert_eq!(view.object["metadata"]["resourceVersion"], "42");
        assert_eq!(view.object["metadata"]["labels"]["team"], "ops");
        assert_eq!(
            view.object["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        let rules: Vec<PolicyRule> = list(&view.object, "rules");
        assert_eq!(rules[1].api_groups, ["example.com"]);
        let want: Vec<PolicyRule> = bootstrap::cluster_roles()
            .iter()
            .find(|r| r["metadata"]["name"] == "view")
            .map(|r| list(r, "rules"))
            .unwrap();
        assert!(covers(&rules, &want).0);
        let binding = &actions[1];
        assert_eq!(binding.operation, ReconcileOperation::Update);
        let subjects: Vec<Subject> = list(&binding.object, "subjects");
        assert_eq!(
            subjects,
            vec![Subject::user("root"), Subject::group("system:masters")]
        );
        apply(&mut store, &actions);
        assert_eq!(reconcile_bootstrap_policy(&store), vec![]);
    }

    #[test]
    fn protected_objects_are_left_alone_and_changed_role_refs_recreated() {
        let mut store = Vec::new();
        apply(&mut store, &reconcile_bootstrap_policy(&[]));
        for o in store.iter_mut() {
            if o["metadata"]["name"] == "edit" {
                o["rules"] = json!([]);
                o["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = json!("false");
            }
            if o["kind"] == "ClusterRoleBinding" && o["metadata"]["name"] == "navarch:viewers" {
                o["roleRef"]["name"] = json!("edit");
            }
        }
        let actions = reconcile_bootstrap_policy(&store);
        assert_eq!(actions.len(), 1, "{actions:#?}");
        assert_eq!(actions[0].operation, ReconcileOperation::Recreate);
        assert_eq!(actions[0].object["roleRef"]["name"], "view");
    }
}
