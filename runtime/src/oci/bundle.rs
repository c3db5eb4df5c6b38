//! A container's OCI bundle `config.json`, generated with the `oci-spec` crate from what the
//! runtime decided at create (pure: no file is read or written here, so it is tested on its
//! own). The defaults are runc's `spec` template (mounts, masked and read-only paths, the
//! device rule) with the capabilities a Kubernetes container gets from containerd.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount as OciMount, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use crate::cgroup::{quota_us, shares, CPU_PERIOD_US};
use crate::spec::{Mount, MountSource, Resources};
use crate::RuntimeError;

/// What goes into one container's `config.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleConfig<'a> {
    pub id: &'a str,
    pub argv: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    /// The container's writable overlay, mounted by the runtime.
    pub rootfs: &'a Path,
    pub read_only_root_fs: bool,
    pub hostname: Option<&'a str>,
    /// A file holding the hostname, bind-mounted on `/etc/hostname`.
    pub hostname_file: Option<&'a Path>,
    /// The pod's network namespace; `None` keeps the host's, as in the `process` runtime.
    pub netns: Option<&'a Path>,
    pub mounts: &'a [Mount],
    pub resources: &'a Resources,
    /// `linux.cgroupsPath`: `/<navarch's parent>/<id>`, under every hierarchy.
    pub cgroups_path: PathBuf,
    /// Whether a memory limit also caps swap (false on cgroup v1 without swap accounting).
    pub limit_swap: bool,
}

/// containerd's default capabilities, the ones a Kubernetes container runs with (runc's
/// template keeps only the last three, too few for images that chown or setuid).
const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::SysChroot,
    Capability::AuditWrite,
    Capability::Kill,
    Capability::NetBindService,
];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> OciMount {
    let mut m = OciMount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// The mounts runc's `spec` template gives every container.
fn default_mounts() -> Vec<OciMount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

fn spec_mount(m: &Mount) -> OciMount {
    let ro = if m.read_only { "ro" } else { "rw" };
    match &m.source {
        MountSource::Bind(src) => mount(
            &m.container_path,
            "bind",
            &src.to_string_lossy(),
            &["rbind", "rprivate", ro],
        ),
        MountSource::Tmpfs { size_bytes } => {
            let size = size_bytes.map(|s| format!("size={s}"));
            let mut opts = vec!["nosuid", "nodev", ro];
            if let Some(s) = &size {
                opts.push(s);
            }
            mount(&m.container_path, "tmpfs", "tmpfs", &opts)
        }
    }
}

fn invalid(id: &str) -> impl FnOnce(oci_spec::OciSpecError) -> RuntimeError + '_ {
    move |e| RuntimeError::InvalidSpec {
        id: id.to_string(),
        reason: format!("oci config: {e}"),
    }
}

/// The bundle's `config.json` for `c`.
pub fn config(c: &BundleConfig<'_>) -> Result<Spec, RuntimeError> {
    let caps: oci_spec::runtime::Capabilities = CAPABILITIES.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(invalid(c.id))?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(invalid(c.id))?,
        )
        .args(c.argv.to_vec())
        .env(c.env.to_vec())
        .cwd(c.cwd)
        .capabilities(capabilities)
        .no_new_privileges(false)
        .build()
        .map_err(invalid(c.id))?;
    let mut mounts = default_mounts();
    if let Some(file) = c.hostname_file {
        mounts.push(mount(
            "/etc/hostname",
            "bind",
            &file.to_string_lossy(),
            &["rbind", "rprivate", "rw"],
        ));
    }
    mounts.extend(c.mounts.iter().map(spec_mount));
    let ns = |typ: LinuxNamespaceType, path: Option<&Path>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p),
            None => b,
        }
        .build()
    };
    let mut namespaces = vec![
        ns(LinuxNamespaceType::Pid, None),
        ns(LinuxNamespaceType::Ipc, None),
        ns(LinuxNamespaceType::Uts, None),
        ns(LinuxNamespaceType::Mount, None),
    ];
    if let Some(p) = c.netns {
        namespaces.push(ns(LinuxNamespaceType::Network, Some(p)));
    }
    let namespaces = namespaces
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid(c.id))?;
    let r = c.resources;
    let mut resources =
        LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(invalid(c.id))?]);
    if let Some(bytes) = r.memory_limit_bytes {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let mut m = LinuxMemoryBuilder::default().limit(bytes);
        if c.limit_swap {
            m = m.swap(bytes);
        }
        resources = resources.memory(m.build().map_err(invalid(c.id))?);
    }
    if r.cpu_limit_millis.is_some() || r.cpu_request_millis.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(millis) = r.cpu_limit_millis {
            cpu = cpu
                .quota(i64::try_from(quota_us(millis)).unwrap_or(i64::MAX))
                .period(CPU_PERIOD_US);
        }
        if let Some(millis) = r.cpu_request_millis {
            cpu = cpu.shares(shares(millis));
        }
        resources = resources.cpu(cpu.build().map_err(invalid(c.id))?);
    }
    if let Some(n) = r.pids_limit {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(i64::try_from(n).unwrap_or(i64::MAX))
                .build()
                .map_err(invalid(c.id))?,
        );
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(c.cgroups_path.clone())
        .resources(resources.build().map_err(invalid(c.id))?)
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()
        .map_err(invalid(c.id))?;
    let mut builder = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(c.rootfs)
                .readonly(c.read_only_root_fs)
                .build()
                .map_err(invalid(c.id))?,
        )
        .process(process)
        .mounts(mounts)
        .linux(linux);
    if let Some(h) = c.hostname {
        builder = builder.hostname(h);
    }
    builder.build().map_err(invalid(c.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_carries_the_spec() {
        let argv = vec!["sh".to_string(), "-c".into(), "true".into()];
        let env = vec!["PATH=/bin".to_string()];
        let mounts = vec![Mount {
            source: MountSource::Tmpfs {
                size_bytes: Some(4096),
            },
            container_path: "/scratch".into(),
            read_only: true,
        }];
        let resources = Resources {
            cpu_limit_millis: Some(250),
            cpu_request_millis: Some(500),
            memory_limit_bytes: Some(1 << 26),
            pids_limit: Some(64),
        };
        let c = BundleConfig {
            id: "c1",
            argv: &argv,
            env: &env,
            cwd: "/w",
            rootfs: Path::new("/state/c1/rootfs"),
            read_only_root_fs: true,
            hostname: Some("pod-a"),
            hostname_file: Some(Path::new("/state/c1/hostname")),
            netns: Some(Path::new("/run/netns/pod-a")),
            mounts: &mounts,
            resources: &resources,
            cgroups_path: "/navarch/c1".into(),
            limit_swap: true,
        };
        let json = serde_json::to_value(config(&c).unwrap()).unwrap();
        assert_eq!(json["root"]["path"], "/state/c1/rootfs");
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["hostname"], "pod-a");
        assert_eq!(json["process"]["args"][2], "true");
        assert_eq!(json["process"]["cwd"], "/w");
        assert_eq!(json["process"]["terminal"], false);
        assert_eq!(json["linux"]["cgroupsPath"], "/navarch/c1");
        let res = &json["linux"]["resources"];
        assert_eq!(res["memory"]["limit"], 1 << 26);
        assert_eq!(res["memory"]["swap"], 1 << 26);
        assert_eq!(res["cpu"]["quota"], 25_000);
        assert_eq!(res["cpu"]["period"], 100_000);
        assert_eq!(res["cpu"]["shares"], 512);
        assert_eq!(res["pids"]["limit"], 64);
        let ns: Vec<(String, Option<String>)> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["type"].as_str().unwrap().to_string(),
                    n["path"].as_str().map(String::from),
                )
            })
            .collect();
        assert!(ns.contains(&("network".into(), Some("/run/netns/pod-a".into()))));
        assert!(ns.contains(&("pid".into(), None)));
        let dests: Vec<&str> = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/etc/hostname",
                "/scratch"
            ]
        );
        let scratch = &json["mounts"][8];
        assert_eq!(
            scratch["options"],
            serde_json::json!(["nosuid", "nodev", "ro", "size=4096"])
        );
        assert!(json["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&"/proc/kcore".into()));

        // No pod network namespace: the host's network, no new namespace.
        let host = BundleConfig { netns: None, ..c };
        let json = serde_json::to_value(config(&host).unwrap()).unwrap();
        assert!(!json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
