//! Cgroups for containers, v1 (one hierarchy per controller, as on this machine's hybrid
//! layout) or v2 (the unified hierarchy, detected by `<root>/cgroup.controllers`): create a
//! container's groups under a navarch-specific parent, write its limits, count its OOM
//! kills, remove them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::spec::{ContainerId, Resources};
use crate::RuntimeError;

/// The CFS period the cpu limit is a quota of.
pub const CPU_PERIOD_US: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The machine's cgroup hierarchy and the parent group navarch's containers go under.
#[derive(Clone, Debug)]
pub struct Cgroups {
    pub version: CgroupVersion,
    root: PathBuf,
    parent: String,
}

/// The v1 controllers a container gets a group in.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// One container's groups, kept in its plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCgroup {
    pub version: CgroupVersion,
    /// Every group dir (one per controller on v1, one on v2).
    pub dirs: Vec<PathBuf>,
    /// The group that holds the memory controller's files.
    pub memory_dir: PathBuf,
}

impl Cgroups {
    /// Detects the version under `root` (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path, parent: &str) -> Self {
        let version = if root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        };
        Cgroups {
            version,
            root: root.to_path_buf(),
            parent: parent.to_string(),
        }
    }

    fn parent_dirs(&self) -> Vec<PathBuf> {
        match self.version {
            CgroupVersion::V1 => V1_CONTROLLERS
                .iter()
                .map(|c| self.root.join(c).join(&self.parent))
                .collect(),
            CgroupVersion::V2 => vec![self.root.join(&self.parent)],
        }
    }

    /// A container's groups (paths only; nothing is created).
    pub fn container(&self, id: &ContainerId) -> ContainerCgroup {
        let dirs: Vec<PathBuf> = self
            .parent_dirs()
            .iter()
            .map(|p| p.join(id.as_str()))
            .collect();
        ContainerCgroup {
            version: self.version,
            memory_dir: dirs[0].clone(),
            dirs,
        }
    }

    /// Creates a container's groups and writes its limits.
    pub fn create(
        &self,
        id: &ContainerId,
        resources: &Resources,
    ) -> Result<ContainerCgroup, RuntimeError> {
        if self.version == CgroupVersion::V2 {
            let parent = self.root.join(&self.parent);
            fs::create_dir_all(&parent).map_err(RuntimeError::io("create cgroup", &parent))?;
            // Hand the controllers down; failures show as missing files below.
            for dir in [&self.root, &parent] {
                let _ = fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu +pids");
            }
        }
        let cg = self.container(id);
        for dir in &cg.dirs {
            fs::create_dir_all(dir).map_err(RuntimeError::io("create cgroup", dir))?;
        }
        if let Err(e) = cg.apply(resources) {
            let _ = cg.remove(Duration::from_secs(1));
            return Err(e);
        }
        Ok(cg)
    }

    /// Removes the (empty) parent groups; for tests that use a parent of their own.
    pub fn remove_parent(&self) {
        for dir in self.parent_dirs() {
            let _ = fs::remove_dir(dir);
        }
    }

    /// Removes the (empty) parent group from every v1 hierarchy, not only navarch's three
    /// (runc makes a container's group in each: cpuset, devices, freezer, ...).
    pub fn remove_parent_in_every_hierarchy(&self) {
        self.remove_parent();
        if self.version == CgroupVersion::V1 {
            for entry in fs::read_dir(&self.root).into_iter().flatten().flatten() {
                let _ = fs::remove_dir(entry.path().join(&self.parent));
            }
        }
    }
}

fn write(path: PathBuf, value: &str) -> Result<(), RuntimeError> {
    fs::write(&path, value).map_err(RuntimeError::io("write cgroup file", path))
}

impl ContainerCgroup {
    fn apply(&self, r: &Resources) -> Result<(), RuntimeError> {
        match self.version {
            CgroupVersion::V1 => {
                let (mem, cpu, pids) = (&self.dirs[0], &self.dirs[1], &self.dirs[2]);
                if let Some(bytes) = r.memory_limit_bytes {
                    write(mem.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    // No swapping past the limit, where swap accounting exists.
                    let memsw = mem.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(memsw, &bytes.to_string())?;
                    }
                }
                if let Some(millis) = r.cpu_limit_millis {
                    write(cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(cpu.join("cpu.cfs_quota_us"), &quota_us(millis).to_string())?;
                }
                if let Some(millis) = r.cpu_request_millis {
                    write(cpu.join("cpu.shares"), &shares(millis).to_string())?;
                }
                if let Some(n) = r.pids_limit {
                    write(pids.join("pids.max"), &n.to_string())?;
                }
            }
            CgroupVersion::V2 => {
                let dir = &self.dirs[0];
                if let Some(bytes) = r.memory_limit_bytes {
                    write(dir.join("memory.max"), &bytes.to_string())?;
                    if dir.join("memory.swap.max").exists() {
                        write(dir.join("memory.swap.max"), "0")?;
                    }
                }
                if let Some(millis) = r.cpu_limit_millis {
                    write(
                        dir.join("cpu.max"),
                        &format!("{} {CPU_PERIOD_US}", quota_us(millis)),
                    )?;
                }
                if let Some(millis) = r.cpu_request_millis {
                    write(dir.join("cpu.weight"), &weight(shares(millis)).to_string())?;
                }
                if let Some(n) = r.pids_limit {
                    write(dir.join("pids.max"), &n.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The files a process's pid is written to, to move it into the groups.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// OOM kills the memory group counted (v1 `memory.oom_control` `oom_kill`, v2
    /// `memory.events` `oom_kill`); 0 when the kernel does not say.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        fs::read_to_string(self.memory_dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// Removes the groups, retrying while the kernel still counts exited tasks in them.
    pub fn remove(&self, wait: Duration) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + wait;
        for dir in &self.dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(RuntimeError::io("remove cgroup", dir)(e))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        Ok(())
    }
}

/// Millicores to a CFS quota over [`CPU_PERIOD_US`] (at least 1 ms, the kernel's floor).
pub fn quota_us(millis: u64) -> u64 {
    (millis * CPU_PERIOD_US / 1000).max(1000)
}

/// Millicores to cpu.shares as the kubelet converts them (2 to 262144).
pub fn shares(millis: u64) -> u64 {
    (millis * 1024 / 1000).clamp(2, 262_144)
}

/// cpu.shares to cpu.weight as runc converts them (1 to 10000).
pub fn weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_the_kubelet_and_runc() {
        assert_eq!(quota_us(500), 50_000);
        assert_eq!(quota_us(1), 1000);
        assert_eq!(shares(1000), 1024);
        assert_eq!(shares(0), 2);
        assert_eq!(weight(2), 1);
        assert_eq!(weight(262_144), 10_000);
    }

    /// On a fake hierarchy (plain files), the files each version's limits go to.
    #[test]
    fn limits_go_to_each_versions_files() {
        let resources = Resources {
            cpu_limit_millis: Some(250),
            cpu_request_millis: Some(500),
            memory_limit_bytes: Some(1 << 26),
            pids_limit: Some(64),
        };
        let id = ContainerId::new("c1").unwrap();
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();

        let v2 = tempfile::tempdir().unwrap();
        fs::write(v2.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let cg = Cgroups::detect(v2.path(), "navarch")
            .create(&id, &resources)
            .unwrap();
        let dir = v2.path().join("navarch/c1");
        assert_eq!(cg.dirs, vec![dir.clone()]);
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert_eq!(read(dir.join("cpu.max")), "25000 100000");
        assert_eq!(read(dir.join("cpu.weight")), weight(512).to_string());
        assert_eq!(read(dir.join("pids.max")), "64");
        assert_eq!(
            read(v2.path().join("navarch/cgroup.subtree_control")),
            "+memory +cpu +pids"
        );
        assert_eq!(cg.procs_files(), vec![dir.join("cgroup.procs")]);

        let v1 = tempfile::tempdir().unwrap();
        let cg = Cgroups::detect(v1.path(), "navarch")
            .create(&id, &resources)
            .unwrap();
        let at = |c: &str, f: &str| read(v1.path().join(c).join("navarch/c1").join(f));
        assert_eq!(cg.memory_dir, v1.path().join("memory/navarch/c1"));
        assert_eq!(at("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(at("cpu", "cpu.cfs_quota_us"), "25000");
        assert_eq!(at("cpu", "cpu.shares"), "512");
        assert_eq!(at("pids", "pids.max"), "64");
        assert_eq!(cg.procs_files().len(), 3);
    }

    #[test]
    fn detection_and_oom_counts_read_the_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Cgroups::detect(dir.path(), "n").version, CgroupVersion::V1);
        fs::write(dir.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(Cgroups::detect(dir.path(), "n").version, CgroupVersion::V2);
        let cg = ContainerCgroup {
            version: CgroupVersion::V2,
            dirs: vec![],
            memory_dir: dir.path().into(),
        };
        fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 1);
        let cg1 = ContainerCgroup {
            version: CgroupVersion::V1,
            dirs: vec![],
            memory_dir: dir.path().into(),
        };
        fs::write(
            dir.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(cg1.oom_kills(), 2);
    }
}
