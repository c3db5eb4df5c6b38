//! Kubernetes' admission plugins navarch runs on writes, as pure functions of the object:
//! DefaultTolerationSeconds, RuntimeClass's decision on a new pod (the server looks the
//! class up), and ServiceAccount's (the pod's account defaulted, its API token projected). (NodeRestriction and the RBAC escalation check live in `node_restriction` and
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

/// Where a pod's service-account token, the cluster CA and its namespace are mounted.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap every namespace has with the cluster CA (`ca.crt`).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The lifetime the projected token asks for (Kubernetes' 3607 s: an hour, a little more
/// so that it can be told apart).
pub const PROJECTED_TOKEN_SECONDS: i64 = 3607;
/// The shortest lifetime a token may be asked for (Kubernetes refuses under ten minutes),
/// and the longest an ask may name (2^32 seconds), in a TokenRequest or a projection.
pub const MIN_TOKEN_SECONDS: i64 = 600;
pub const MAX_TOKEN_ASK_SECONDS: i64 = 1 << 32;
/// The prefix of the projected volume's name.
pub const API_ACCESS_VOLUME_PREFIX: &str = "kube-api-access-";

/// The service account a new pod runs as: `spec.serviceAccountName`, else the deprecated
/// `spec.serviceAccount`, else `default`.
pub fn service_account_of(pod: &Value) -> &str {
    let spec = &pod["spec"];
    [&spec["serviceAccountName"], &spec["serviceAccount"]]
        .into_iter()
        .filter_map(Value::as_str)
        .find(|s| !s.is_empty())
        .unwrap_or("default")
}

/// The refusal of a pod whose service account does not exist (Kubernetes' words, 403).
pub fn service_account_not_found(pod: &Value, namespace: &str, account: &str) -> ApiError {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    ApiError::forbidden(format!(
        "pods {name:?} is forbidden: error looking up service account {namespace}/{account}: serviceaccount {account:?} not found"
    ))
    .about("pods", "", name)
}

/// Kubernetes' ServiceAccount admission plugin on a new pod, given its account
/// (`service_account`, `None` when it is not there yet) and a random name suffix: sets
/// `serviceAccountName` (and the deprecated `serviceAccount`) and, unless
/// `automountServiceAccountToken` is false on the pod (or, the pod silent, on the account)
/// or a container already mounts something at [`SERVICE_ACCOUNT_MOUNT_PATH`], adds the
/// projected volume `kube-api-access-<suffix>` (a bound token, the cluster CA from
/// [`ROOT_CA_CONFIG_MAP`], the namespace) and mounts it read-only in every container and
/// init container.
pub fn admit_service_account(pod: &mut Value, service_account: Option<&Value>, suffix: &str) {
    let account = service_account_of(pod).to_string();
    let automount = pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| service_account.and_then(|sa| sa["automountServiceAccountToken"].as_bool()))
        .unwrap_or(true);
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("serviceAccountName".into(), json!(account));
    spec.insert("serviceAccount".into(), json!(account));
    if !automount {
        return;
    }
    let lists = ["initContainers", "containers"];
    let mounted = lists.iter().any(|l| {
        spec.get(*l)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
            .any(|m| m["mountPath"].as_str() == Some(SERVICE_ACCOUNT_MOUNT_PATH))
    });
    if mounted {
        return;
    }
    let volume = format!("{API_ACCESS_VOLUME_PREFIX}{suffix}");
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(vs) = volumes.as_array_mut() {
        vs.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_SECONDS, "path": "token"}},
                    {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
    for l in lists {
        for c in spec
            .get_mut(l)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let mounts = c
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            if let Some(ms) = mounts.and_then(Value::as_array_mut) {
                ms.push(json!({"name": volume, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_admission_defaults_and_projects_the_token() {
        let mut pod = json!({"metadata": {"name": "web"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
        admit_service_account(&mut pod, None, "x7k2p");
        let spec = &pod["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["volumes"][1]["name"], "kube-api-access-x7k2p");
        let sources = &spec["volumes"][1]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        for c in [&spec["initContainers"][0], &spec["containers"][0]] {
            let m = c["volumeMounts"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            assert_eq!(
                m,
                json!({"name": "kube-api-access-x7k2p", "readOnly": true,
                       "mountPath": SERVICE_ACCOUNT_MOUNT_PATH})
            );
        }
        // Admitting again (an already mounted path) adds nothing.
        let before = pod.clone();
        admit_service_account(&mut pod, None, "other");
        assert_eq!(pod, before);
    }

    #[test]
    fn automount_false_on_the_pod_or_the_account_projects_nothing() {
        let sa_off = json!({"automountServiceAccountToken": false});
        let sa_on = json!({"automountServiceAccountToken": true});
        for (pod_says, sa, projected) in [
            (None, Some(&sa_off), false),
            (Some(true), Some(&sa_off), true),
            (Some(false), Some(&sa_on), false),
            (None, Some(&sa_on), true),
            (None, None, true),
        ] {
            let mut pod =
                json!({"spec": {"serviceAccount": "builder", "containers": [{"name": "a"}]}});
            if let Some(b) = pod_says {
                pod["spec"]["automountServiceAccountToken"] = json!(b);
            }
            admit_service_account(&mut pod, sa, "abcde");
            assert_eq!(pod["spec"]["serviceAccountName"], "builder");
            assert_eq!(
                pod["spec"]["volumes"].is_array(),
                projected,
                "{pod_says:?} {sa:?}"
            );
        }
        let e = service_account_not_found(&json!({"metadata": {"name": "web"}}), "apps", "ci");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"pods "web" is forbidden: error looking up service account apps/ci: serviceaccount "ci" not found"#
        );
    }

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
