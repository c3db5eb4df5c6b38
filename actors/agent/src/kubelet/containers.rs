//! A pod's container as a runtime [`ContainerSpec`]: its id and labels, image, command and
//! args, environment, working dir, cgroup limits from `resources`, mounts, the pod's
//! hostname and network namespace, and its log file. Pure: what the sandbox and the volumes
//! made comes in as [`SandboxView`] and mounts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use navarch_model::validate::parse_quantity;
use navarch_runtime::{
    ContainerId, ContainerSpec, EnvVar, LogConfig, Mount, Resources, SandboxInfo,
};
use serde_json::Value;

use super::sync::{
    container_id, LABEL_CONTAINER, LABEL_INIT, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
    LABEL_RESTART_COUNT,
};

/// What the pod's sandbox gives its containers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxView {
    /// The pod's network namespace; `None` shares the node's network.
    pub netns: Option<PathBuf>,
}

/// Why a container spec could not be made (the container then waits with reason
/// `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The pod's hostname: `spec.hostname`, else its name (cut to 63 characters).
pub fn hostname(pod: &Value) -> String {
    let h = pod["spec"]["hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .or_else(|| pod["metadata"]["name"].as_str())
        .unwrap_or("pod");
    h.chars().take(63).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn quantity(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_i64().map(|v| i128::from(v) * 1_000_000_000),
        _ => None,
    }
}

/// Cpu in millicores and memory in bytes from a container's `resources`.
pub fn resources(container: &Value) -> Resources {
    let r = &container["resources"];
    let milli = |v: &Value| quantity(v).map(|n| ((n + 999_999) / 1_000_000).max(1) as u64);
    let bytes = |v: &Value| quantity(v).map(|n| ((n + 999_999_999) / 1_000_000_000) as u64);
    Resources {
        cpu_limit_millis: milli(&r["limits"]["cpu"]),
        cpu_request_millis: milli(&r["requests"]["cpu"]).or_else(|| milli(&r["limits"]["cpu"])),
        memory_limit_bytes: bytes(&r["limits"]["memory"]),
        pids_limit: None,
    }
}

/// Everything a container spec is made from.
#[derive(Clone, Debug)]
pub struct ContainerInputs<'a> {
    pub pod: &'a Value,
    pub container: &'a Value,
    pub init: bool,
    pub restart_count: u32,
    pub env: Vec<EnvVar>,
    pub mounts: Vec<Mount>,
    pub sandbox: &'a SandboxView,
    pub log_path: PathBuf,
}

/// The runtime spec of one container instance.
pub fn container_spec(i: ContainerInputs<'_>) -> Result<ContainerSpec, ConfigError> {
    let pod = i.pod;
    let c = i.container;
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let name = c["name"].as_str().unwrap_or("");
    let id = ContainerId::new(container_id(uid, name, i.restart_count))
        .map_err(|e| ConfigError(e.to_string()))?;
    let image = c["image"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError(format!("container {name:?} has no image")))?;
    let mut labels = BTreeMap::new();
    let meta = |k: &str| pod["metadata"][k].as_str().unwrap_or("").to_string();
    labels.insert(LABEL_POD_UID.to_string(), uid.to_string());
    labels.insert(LABEL_POD_NAME.to_string(), meta("name"));
    labels.insert(LABEL_POD_NAMESPACE.to_string(), meta("namespace"));
    labels.insert(LABEL_CONTAINER.to_string(), name.to_string());
    labels.insert(LABEL_RESTART_COUNT.to_string(), i.restart_count.to_string());
    if i.init {
        labels.insert(LABEL_INIT.to_string(), "true".into());
    }
    Ok(ContainerSpec {
        id,
        sandbox: SandboxInfo {
            hostname: Some(hostname(pod)),
            netns: i.sandbox.netns.clone(),
        },
        image: image.to_string(),
        command: strings(&c["command"]),
        args: strings(&c["args"]),
        env: i.env,
        working_dir: c["workingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        resources: resources(c),
        mounts: i.mounts,
        read_only_root_fs: c["securityContext"]["readOnlyRootFilesystem"] == true,
        log: LogConfig {
            path: Some(i.log_path),
            ..LogConfig::default()
        },
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_container_becomes_a_labelled_spec_with_its_limits() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{
                "name": "app", "image": "busybox", "command": ["httpd"], "args": ["-f"],
                "workingDir": "/www",
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
            }]},
        });
        let c = &pod["spec"]["containers"][0];
        let spec = container_spec(ContainerInputs {
            pod: &pod,
            container: c,
            init: false,
            restart_count: 2,
            env: vec![],
            mounts: vec![],
            sandbox: &SandboxView {
                netns: Some("/run/netns/x".into()),
            },
            log_path: "/l/2.log".into(),
        })
        .unwrap();
        assert_eq!(spec.id.as_str(), "u1-app-2");
        assert_eq!(spec.command, vec!["httpd"]);
        assert_eq!(spec.args, vec!["-f"]);
        assert_eq!(spec.working_dir.as_deref(), Some("/www"));
        assert_eq!(spec.resources.cpu_limit_millis, Some(500));
        assert_eq!(spec.resources.cpu_request_millis, Some(100));
        assert_eq!(spec.resources.memory_limit_bytes, Some(64 * 1024 * 1024));
        assert_eq!(spec.sandbox.hostname.as_deref(), Some("web"));
        assert_eq!(spec.labels[LABEL_RESTART_COUNT], "2");
        assert_eq!(spec.labels[LABEL_POD_UID], "u1");
        assert_eq!(
            spec.log.path.as_deref(),
            Some(std::path::Path::new("/l/2.log"))
        );
    }
}
