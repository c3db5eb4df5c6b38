//! `LaunchPlan`: everything the shim needs to start one container, decided by the runtime
//! at create from the spec and the image (`plan.json`), so the shim decides nothing. The
//! pure part (`resolve`: which argv, environment and working dir) is tested on its own.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cgroup::ContainerCgroup;
use crate::image::ImageConfig;
use crate::spec::{ContainerId, ContainerSpec, Mount};
use crate::RuntimeError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub id: ContainerId,
    pub created_at: SystemTime,
    /// Namespaces, root filesystem and cgroups; otherwise a plain child.
    pub isolated: bool,
    pub argv: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: String,
    pub hostname: Option<String>,
    /// A file holding the hostname, bind-mounted on the container's `/etc/hostname`.
    pub hostname_file: Option<PathBuf>,
    pub netns: Option<PathBuf>,
    /// The container's root (its overlay's mount point); `None`: the host's root.
    pub rootfs: Option<PathBuf>,
    pub read_only_root_fs: bool,
    pub mounts: Vec<Mount>,
    pub cgroup: Option<ContainerCgroup>,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
}

/// What the container runs: Kubernetes' rules for command and args over the image's
/// entrypoint and cmd, the image's environment overridden by the spec's, the working dir.
pub fn resolve(
    spec: &ContainerSpec,
    image: &ImageConfig,
) -> Result<(Vec<String>, Vec<String>, String), RuntimeError> {
    let argv: Vec<String> = if !spec.command.is_empty() {
        spec.command.iter().chain(&spec.args).cloned().collect()
    } else {
        let args = if spec.args.is_empty() {
            &image.cmd
        } else {
            &spec.args
        };
        image.entrypoint.iter().chain(args).cloned().collect()
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err(RuntimeError::InvalidSpec {
            id: spec.id.to_string(),
            reason: "no command: neither the spec nor the image gives one".into(),
        });
    }
    let mut env: Vec<String> = Vec::new();
    let mut set = |name: &str, entry: String| {
        env.retain(|e| e.split('=').next() != Some(name));
        env.push(entry);
    };
    set(
        "PATH",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    );
    for e in &image.env {
        set(e.split('=').next().unwrap_or(""), e.clone());
    }
    if let Some(h) = &spec.sandbox.hostname {
        set("HOSTNAME", format!("HOSTNAME={h}"));
    }
    for e in &spec.env {
        if e.name.is_empty() || e.name.contains('=') {
            return Err(RuntimeError::InvalidSpec {
                id: spec.id.to_string(),
                reason: format!("invalid env name {:?}", e.name),
            });
        }
        set(&e.name, format!("{}={}", e.name, e.value));
    }
    let working_dir = spec
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    if !working_dir.starts_with('/') {
        return Err(RuntimeError::InvalidSpec {
            id: spec.id.to_string(),
            reason: format!("working dir {working_dir} is not absolute"),
        });
    }
    for m in &spec.mounts {
        if !m.container_path.starts_with('/') || m.container_path.split('/').any(|p| p == "..") {
            return Err(RuntimeError::InvalidSpec {
                id: spec.id.to_string(),
                reason: format!(
                    "mount path {} must be absolute, without ..",
                    m.container_path
                ),
            });
        }
    }
    Ok((argv, env, working_dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EnvVar;

    #[test]
    fn command_and_args_follow_kubernetes() {
        let id = ContainerId::new("c").unwrap();
        let image = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["a".into()],
            env: vec!["A=1".into(), "PATH=/bin".into()],
            working_dir: Some("/w".into()),
        };
        let mut spec = ContainerSpec::new(id, "img", &[]);
        let (argv, env, wd) = resolve(&spec, &image).unwrap();
        assert_eq!(argv, vec!["/ep", "a"]);
        assert_eq!(env, vec!["A=1", "PATH=/bin"]);
        assert_eq!(wd, "/w");
        spec.args = vec!["b".into()];
        assert_eq!(resolve(&spec, &image).unwrap().0, vec!["/ep", "b"]);
        spec.command = vec!["/cmd".into()];
        assert_eq!(resolve(&spec, &image).unwrap().0, vec!["/cmd", "b"]);
        spec.env = vec![EnvVar {
            name: "A".into(),
            value: "2".into(),
        }];
        assert_eq!(resolve(&spec, &image).unwrap().1, vec!["PATH=/bin", "A=2"]);
        spec.working_dir = Some("rel".into());
        assert!(resolve(&spec, &image).is_err());
        let empty = ContainerSpec::new(ContainerId::new("d").unwrap(), "img", &[]);
        assert!(matches!(
            resolve(&empty, &ImageConfig::default()),
            Err(RuntimeError::InvalidSpec { .. })
        ));
    }
}
