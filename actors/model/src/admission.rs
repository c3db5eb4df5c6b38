//! Kubernetes' admission plugins navarch runs on writes, as pure functions of the object:
//! DefaultTolerationSeconds, and RuntimeClass's decision on a new pod (the server looks the
//! class up). (NodeRestriction and the RBAC escalation check live in `node_restriction` and
//! `escalation`.) Also the RuntimeClasses every cluster starts with.

use serde_json::{json, Value};

use crate::status::ApiError;

/// The taint a node gets while it is not ready.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint a node gets while its controller cannot reach it.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How long DefaultTolerationSeconds lets a pod stay on a node that is not ready or
/// unreachable. Kubernetes' flags default to 300 s; navarch's default to 30 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultTolerationSeconds {
    pub not_ready: i64,
    pub unreachable: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready: 30,
            unreachable: 30,
        }
    }
}

/// Whether toleration `t` already tolerates the NoExecute taint `key` (an empty key or
/// effect tolerates every key or effect).
fn tolerates(t: &Value, key: &str) -> bool {
    let k = t["key"].as_str().unwrap_or("");
    let effect = t["effect"].as_str().unwrap_or("");
    (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
}

impl DefaultTolerationSeconds {
    /// Kubernetes' DefaultTolerationSeconds plugin on a Pod being created or updated: adds
    /// `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` NoExecute
    /// tolerations (`Exists`, for the configured seconds) unless the pod already tolerates
    /// those taints.
    pub fn admit(&self, pod: &mut Value) {
        if !pod.is_object() {
            return;
        }
        if !pod["spec"].is_object() {
            pod["spec"] = json!({});
        }
        let existing: Vec<Value> = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut added = existing.clone();
        for (key, seconds) in [
            (TAINT_NOT_READY, self.not_ready),
            (TAINT_UNREACHABLE, self.unreachable),
        ] {
            if !existing.iter().any(|t| tolerates(t, key)) {
                added.push(json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": seconds,
                }));
            }
        }
        if added.len() != existing.len() {
            pod["spec"]["tolerations"] = Value::Array(added);
        }
    }
}

/// The RuntimeClasses the masters create at bootstrap, each named after its handler: the
/// node agent's two container runtimes.
pub const BUILTIN_RUNTIME_CLASSES: &[&str] = &["process", "oci"];

/// The `node.k8s.io/v1` RuntimeClass `handler`, named after it.
pub fn builtin_runtime_class(handler: &str) -> Value {
    json!({
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": handler},
        "handler": handler,
    })
}

/// Kubernetes' RuntimeClass admission plugin, on a Pod being created (never its
/// subresources, never an update): the RuntimeClass its `spec.runtimeClassName` names must
/// exist. Returns the name to look up, `None` when the pod names none. (The plugin's other
/// work, `overhead` and `scheduling`, has nothing to do: navarch refuses those fields.)
pub fn runtime_class_to_check(pod: &Value) -> Option<&str> {
    pod["spec"]["runtimeClassName"].as_str()
}

/// The refusal of a pod whose RuntimeClass does not exist, worded as Kubernetes' plugin does
/// (403, `pods "web" is forbidden: pod rejected: RuntimeClass "gvisor" not found`).
pub fn runtime_class_not_found(pod: &Value, class: &str) -> ApiError {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    ApiError::forbidden(format!(
        "pods {name:?} is forbidden: pod rejected: RuntimeClass {class:?} not found"
    ))
    .about("pods", "", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_class_admission() {
        let pod = |spec: Value| json!({"metadata": {"name": "web"}, "spec": spec});
        assert_eq!(
            runtime_class_to_check(&pod(json!({"containers": []}))),
            None
        );
        assert_eq!(
            runtime_class_to_check(&pod(json!({"runtimeClassName": "gvisor"}))),
            Some("gvisor")
        );
        let e = runtime_class_not_found(&pod(json!({})), "gvisor");
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            r#"pods "web" is forbidden: pod rejected: RuntimeClass "gvisor" not found"#
        );
        assert_eq!(e.details.kind.as_deref(), Some("pods"));
        assert_eq!(e.details.name.as_deref(), Some("web"));
        for h in BUILTIN_RUNTIME_CLASSES {
            let rc = builtin_runtime_class(h);
            assert_eq!(
                (&rc["metadata"]["name"], &rc["handler"]),
                (&json!(h), &json!(h))
            );
            let kind = crate::kinds::by_kind("RuntimeClass").unwrap();
            assert_eq!(crate::validate::validate_create(kind, &rc), vec![]);
        }
    }

    fn tolerations(mut pod: Value, cfg: DefaultTolerationSeconds) -> Value {
        cfg.admit(&mut pod);
        pod["spec"]["tolerations"].clone()
    }

    #[test]
    fn both_tolerations_are_added_with_the_configured_seconds() {
        let cfg = DefaultTolerationSeconds {
            not_ready: 30,
            unreachable: 45,
        };
        assert_eq!(
            tolerations(json!({"spec": {"containers": []}}), cfg),
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 45},
            ])
        );
        assert_eq!(DefaultTolerationSeconds::default().not_ready, 30);
    }

    #[test]
    fn existing_tolerations_are_kept_and_respected() {
        let cfg = DefaultTolerationSeconds::default();
        // Its own not-ready toleration stays; unreachable is added after the others.
        let pod = json!({"spec": {"tolerations": [
            {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600}]}});
        let t = tolerations(pod, cfg);
        assert_eq!(t.as_array().unwrap().len(), 3);
        assert_eq!(t[1]["tolerationSeconds"], 600);
        assert_eq!(t[2]["key"], "node.kubernetes.io/unreachable");
        // An empty key tolerates both (with NoExecute or every effect).
        for t in [
            json!({"operator": "Exists"}),
            json!({"operator": "Exists", "effect": "NoExecute"}),
        ] {
            let pod = json!({"spec": {"tolerations": [t.clone()]}});
            assert_eq!(tolerations(pod, cfg), json!([t]));
        }
        // A NoSchedule toleration of the taint's key does not count.
        let pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}]}});
        assert_eq!(tolerations(pod, cfg).as_array().unwrap().len(), 3);
        // Applying twice changes nothing more.
        let mut pod = json!({"spec": {}});
        cfg.admit(&mut pod);
        let once = pod.clone();
        cfg.admit(&mut pod);
        assert_eq!(pod, once);
    }
}
