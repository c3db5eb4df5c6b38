//! Reading and writing the metadata every controller shares: names, owners, labels,
//! conditions and times of objects held as Kubernetes JSON.

use serde_json::{json, Map, Value};

pub use navarch_model::time::{format_rfc3339, parse_rfc3339};

/// `metadata.name` (empty when absent).
pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

/// `metadata.namespace` (empty for cluster-scoped objects).
pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

/// `metadata.uid` (empty when absent).
pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

/// `metadata.resourceVersion` (empty when absent).
pub fn resource_version(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

/// `metadata.generation` (0 when absent).
pub fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// `metadata.labels` (`Null` when absent).
pub fn labels(obj: &Value) -> &Value {
    &obj["metadata"]["labels"]
}

/// One label's value.
pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

/// One annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// Sets (or with `None` removes) an annotation.
pub fn set_annotation(obj: &mut Value, key: &str, value: Option<&str>) {
    let meta = object_at(obj, "metadata");
    match value {
        Some(v) => {
            object_at_map(meta, "annotations").insert(key.to_string(), json!(v));
        }
        None => {
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(key);
            }
        }
    }
}

/// `metadata.creationTimestamp` in Unix seconds.
pub fn created_at(obj: &Value) -> Option<i64> {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// The `ownerReferences` entries.
pub fn owner_refs(obj: &Value) -> &[Value] {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_refs(obj)
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}

/// Whether the object's controller is the owner with this uid.
pub fn is_controlled_by(obj: &Value, owner_uid: &str) -> bool {
    controller_ref(obj).is_some_and(|r| r["uid"].as_str() == Some(owner_uid))
}

/// A controller owner reference to `owner` (`apiVersion`/`kind` as given), with
/// `blockOwnerDeletion`, as Kubernetes' controllers set it.
pub fn controller_ref_to(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The condition of `type_` in `status.conditions`.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
}

/// Whether the condition of `type_` has status `"True"`.
pub fn condition_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c["status"].as_str() == Some("True"))
}

/// Whether a pod is Ready (its `Ready` condition is `True`).
pub fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// Whether a pod has been Ready for at least `min_ready_seconds` at `now` (Kubernetes'
/// `IsPodAvailable`: the Ready condition's `lastTransitionTime` decides).
pub fn pod_available(pod: &Value, min_ready_seconds: i64, now: i64) -> bool {
    if !pod_ready(pod) || is_deleting(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = condition(pod, "Ready")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(parse_rfc3339);
    since.is_some_and(|t| t + min_ready_seconds <= now)
}

/// A pod's `status.phase` (`Pending` when absent).
pub fn pod_phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// Whether a pod has ended (`Succeeded` or `Failed`): it holds no resources and counts for
/// no controller.
pub fn pod_terminated(pod: &Value) -> bool {
    matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// A pod's node, if it is bound.
pub fn pod_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// The object at `key` inside `v`, created empty (and `v` made an object) if needed.
pub fn object_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    let map = v.as_object_mut().expect("made an object above");
    object_at_map(map, key)
}

fn object_at_map<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("made an object above")
}

/// Sets condition `type_` in `status.conditions`, keeping `lastTransitionTime` when the
/// status does not change (as Kubernetes' condition helpers do) and always updating
/// `lastUpdateTime` when `update_time` is set (Deployments carry it; pods and nodes do
/// not).
pub fn set_condition(
    obj: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: i64,
    update_time: bool,
) {
    let now_s = format_rfc3339(now);
    let status_map = object_at(obj, "status");
    let conds = status_map
        .entry("conditions".to_string())
        .or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("made an array above");
    let mut cond = json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_s,
    });
    if update_time {
        cond["lastUpdateTime"] = json!(now_s);
    }
    match list.iter_mut().find(|c| c["type"].as_str() == Some(type_)) {
        Some(old) => {
            if old["status"].as_str() == Some(status) {
                cond["lastTransitionTime"] = old["lastTransitionTime"].clone();
                // Kubernetes keeps lastUpdateTime when nothing about the condition changed.
                if update_time
                    && old["reason"].as_str() == Some(reason)
                    && old["message"].as_str() == Some(message)
                {
                    cond["lastUpdateTime"] = old["lastUpdateTime"].clone();
                }
            }
            *old = cond;
        }
        None => list.push(cond),
    }
}

/// Removes condition `type_` from `status.conditions`.
pub fn remove_condition(obj: &mut Value, type_: &str) {
    if let Some(list) = obj["status"]["conditions"].as_array_mut() {
        list.retain(|c| c["type"].as_str() != Some(type_));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let mut d = json!({"metadata": {"name": "web"}});
        set_condition(
            &mut d,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
            100,
            true,
        );
        set_condition(
            &mut d,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "m",
            150,
            true,
        );
        let c = condition(&d, "Available").unwrap();
        assert_eq!(c["lastTransitionTime"], format_rfc3339(100));
        assert_eq!(c["lastUpdateTime"], format_rfc3339(100));
        set_condition(
            &mut d,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "ok",
            200,
            true,
        );
        let c = condition(&d, "Available").unwrap();
        assert_eq!(c["lastTransitionTime"], format_rfc3339(200));
        assert!(condition_true(&d, "Available"));
        remove_condition(&mut d, "Available");
        assert!(condition(&d, "Available").is_none());
    }

    #[test]
    fn availability_needs_ready_for_min_ready_seconds() {
        let pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": format_rfc3339(1000)}
        ]}});
        assert!(pod_available(&pod, 0, 1000));
        assert!(!pod_available(&pod, 10, 1009));
        assert!(pod_available(&pod, 10, 1010));
        assert!(!pod_available(&json!({}), 0, 1000));
    }

    #[test]
    fn owners_and_annotations() {
        let owner = json!({"metadata": {"name": "web", "uid": "u1"}});
        let mut rs = json!({"metadata": {
            "ownerReferences": [controller_ref_to(&owner, "apps/v1", "Deployment")]
        }});
        assert!(is_controlled_by(&rs, "u1"));
        assert!(!is_controlled_by(&rs, "u2"));
        set_annotation(&mut rs, "deployment.kubernetes.io/revision", Some("3"));
        assert_eq!(
            annotation(&rs, "deployment.kubernetes.io/revision"),
            Some("3")
        );
        set_annotation(&mut rs, "deployment.kubernetes.io/revision", None);
        assert_eq!(annotation(&rs, "deployment.kubernetes.io/revision"), None);
    }
}
