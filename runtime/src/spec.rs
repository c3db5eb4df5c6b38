//! What a container is asked to be: `ContainerSpec` and its parts, and the exec request.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// A container's id on its node: `[a-z0-9][a-z0-9._-]{0,127}`, unique in the state dir.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContainerId(String);

impl ContainerId {
    pub fn new(id: impl Into<String>) -> Result<Self, RuntimeError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && id.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(ContainerId(id))
        } else {
            Err(RuntimeError::InvalidSpec {
                id,
                reason: "a container id is [a-z0-9][a-z0-9._-]{0,127}".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the pod's sandbox gives every container of the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// The container's hostname (Kubernetes: the pod's name); also written to its
    /// `/etc/hostname`.
    pub hostname: Option<String>,
    /// The pod's network namespace (a bind-mounted `/proc/<pid>/ns/net` or `/run/netns/x`),
    /// joined with setns; `None` keeps the host's network.
    pub netns: Option<PathBuf>,
}

/// One environment variable, already resolved (no `valueFrom` here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// Limits enforced through cgroups, and the request that weighs the cpu share.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Cpu limit in millicores (a CFS quota over a 100 ms period).
    pub cpu_limit_millis: Option<u64>,
    /// Cpu request in millicores (cpu.shares / cpu.weight).
    pub cpu_request_millis: Option<u64>,
    /// Memory limit in bytes; past it the kernel's OOM killer ends the container.
    pub memory_limit_bytes: Option<u64>,
    /// Most processes the container may hold.
    pub pids_limit: Option<u64>,
}

/// Where a mount's contents come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MountSource {
    /// A host file or directory, bind-mounted (hostPath, emptyDir on disk, generated files).
    Bind(PathBuf),
    /// A fresh tmpfs (emptyDir with medium Memory), with an optional size in bytes.
    Tmpfs { size_bytes: Option<u64> },
}

/// A mount into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: MountSource,
    /// The absolute path inside the container.
    pub container_path: String,
    pub read_only: bool,
}

/// Where the container's stdout and stderr go, and how big the file may grow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// The log file; `None`: `container.log` in the container's state dir (removed with it).
    pub path: Option<PathBuf>,
    /// Rotate when the current file would grow past this many bytes (kubelet's
    /// `containerLogMaxSize`, 10 MiB).
    pub max_size: u64,
    /// Files kept, the current one included (kubelet's `containerLogMaxFiles`, 5).
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            path: None,
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Everything a runtime needs to create one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: ContainerId,
    pub sandbox: SandboxInfo,
    /// An image name in the node's image store.
    pub image: String,
    /// Kubernetes' `command` (replaces the image's entrypoint when not empty).
    pub command: Vec<String>,
    /// Kubernetes' `args` (replaces the image's cmd when not empty).
    pub args: Vec<String>,
    /// Added to (and overriding) the image's environment.
    pub env: Vec<EnvVar>,
    pub working_dir: Option<String>,
    pub resources: Resources,
    pub mounts: Vec<Mount>,
    pub read_only_root_fs: bool,
    pub log: LogConfig,
    /// Free-form labels kept with the container (pod uid, container name, restart count)
    /// so a restarted agent can tell which pod a container it finds belongs to.
    pub labels: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// A spec with defaults for everything but the id, the image and the command.
    pub fn new(id: ContainerId, image: impl Into<String>, command: &[&str]) -> Self {
        ContainerSpec {
            id,
            sandbox: SandboxInfo::default(),
            image: image.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            resources: Resources::default(),
            mounts: Vec::new(),
            read_only_root_fs: false,
            log: LogConfig::default(),
            labels: BTreeMap::new(),
        }
    }
}

/// A command to run inside a running container, its output collected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// Extra environment on top of the container's.
    pub env: Vec<EnvVar>,
    /// Killed (and reported as an error) when it runs longer.
    pub timeout: Duration,
    /// The command's whole stdin (then end of file); `None`: `/dev/null`.
    pub stdin: Option<Vec<u8>>,
}

impl ExecRequest {
    pub fn new(command: &[&str]) -> Self {
        ExecRequest {
            command: command.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
            stdin: None,
        }
    }
}

/// A piece of an exec's output, as the command writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// What an exec produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code, 128 + the signal for a command ended by one.
    pub exit_code: i32,
}
