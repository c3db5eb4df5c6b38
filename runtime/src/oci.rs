//! `OciRuntime`, the `oci` runtime: each container an OCI bundle (its `config.json`
//! generated with `oci-spec`, [`bundle`]) run by runc. `create` prepares the bundle (the
//! container's own overlay over the image, the config); `start` spawns the same per-container
//! shim as the `process` runtime ([`crate::shim`], verb `oci-start`), which runs `runc create`
//! with its log pipes as the container's stdio and `runc start`, then copies output into the
//! rotated log, reaps the process and records its exit; `stop` is `runc kill` TERM, then KILL
//! after the grace period; `exec` is `runc exec` (its output streamed as the command writes
//! it, or collected); `remove` is `runc delete --force`. State is
//! in `<state>/containers/<id>/` (`spec.json`, `oci.json`, `config.json`, the records of the
//! `process` runtime) and runc's own in `<state>/runc`.

pub mod bundle;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::mount::{umount2, MntFlags};
use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupVersion, Cgroups, ContainerCgroup};
use crate::container_runtime::{ContainerRuntime, Isolation, RuntimeFuture};
use crate::image::ImageStore;
use crate::lifecycle::{self, claim_start, Plan, KILL_WAIT};
use crate::plan::resolve;
use crate::process::{alive, mount_overlay, run_shim, stream_exec};
use crate::spec::{ContainerId, ContainerSpec, ExecOutput, ExecRequest};
use crate::state::{self, read_json, write_json};
use crate::status::{ContainerState, ContainerStatus, StartedRecord, StopRecord};
use crate::RuntimeError;

/// The runtime's plan for the shim (`oci.json`).
pub const OCI_PLAN: &str = "oci.json";
/// The bundle's config.
pub const CONFIG: &str = "config.json";
/// Where `runc create` writes the container's pid.
pub const INIT_PID: &str = "init.pid";
/// runc's own log (JSON lines) for the shim's `create` and `start`.
pub const RUNC_LOG: &str = "runc.log";

/// How often a removal looks whether the killed process exited.
const POLL: Duration = Duration::from_millis(20);

/// Everything the shim needs to run one container through runc, decided at create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciPlan {
    pub id: ContainerId,
    pub created_at: SystemTime,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    /// The container's groups as runc makes them from `cgroupsPath` (for OOM kills).
    pub cgroup: ContainerCgroup,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
}

#[derive(Clone, Debug)]
pub struct OciConfig {
    pub state_dir: PathBuf,
    pub images: ImageStore,
    /// The shim's program and leading arguments (`navarch-shim`, or `navarch-node shim`).
    pub shim: Vec<OsString>,
    /// The runc binary; a bare name is looked up in `PATH`.
    pub runc: PathBuf,
    /// The cgroup file system (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The group every container's group goes under (`navarch`).
    pub cgroup_parent: String,
}

impl OciConfig {
    pub fn new(
        state_dir: impl Into<PathBuf>,
        images: ImageStore,
        shim: impl Into<OsString>,
    ) -> Self {
        OciConfig {
            state_dir: state_dir.into(),
            images,
            shim: vec![shim.into()],
            runc: PathBuf::from("runc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "navarch".into(),
        }
    }
}

/// The `oci` runtime. Cheap to clone; every instance over the same state dir sees the same
/// containers.
#[derive(Clone, Debug)]
pub struct OciRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: OciConfig,
    runc: PathBuf,
    cgroups: Cgroups,
}

/// A container's records in its state dir.
type Records = lifecycle::Records<OciPlan>;

impl Plan for OciPlan {
    fn created_at(&self) -> SystemTime {
        self.created_at
    }

    fn log_path(&self) -> PathBuf {
        self.log_path.clone()
    }
}

/// What `runc state` says of a container.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RuncState {
    pub id: String,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The container's first process (0 once stopped).
    pub pid: i32,
    pub bundle: PathBuf,
}

/// The last error runc logged in a `--log-format json` log.
pub fn runc_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error" || v["level"] == "fatal")
            .then(|| v["msg"].as_str().map(String::from))
            .flatten()
    })
}

/// Finds `name` in `PATH` (then in `/usr/sbin`, where Debian puts runc) when it has no '/'.
fn which(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl OciRuntime {
    /// Fails when runc is missing or the process is not root (runc's rootless mode is not
    /// supported).
    pub fn new(config: OciConfig) -> Result<Self, RuntimeError> {
        let runc = which(&config.runc).ok_or_else(|| RuntimeError::Unavailable {
            runtime: "oci",
            reason: format!(
                "{} not found (scripts/install-deps.sh installs Debian's runc)",
                config.runc.display()
            ),
        })?;
        if !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::Unavailable {
                runtime: "oci",
                reason: "runc needs root".into(),
            });
        }
        let containers = config.state_dir.join("containers");
        fs::create_dir_all(&containers)
            .map_err(RuntimeError::io("create state dir", &containers))?;
        let root = config.state_dir.join("runc");
        fs::create_dir_all(&root).map_err(RuntimeError::io("create runc root", &root))?;
        let cgroups = Cgroups::detect(&config.cgroup_root, &config.cgroup_parent);
        tracing::info!(state_dir = %config.state_dir.display(), runc = %runc.display(), cgroups = ?cgroups.version, "oci runtime ready");
        Ok(OciRuntime {
            inner: Arc::new(Inner {
                config,
                runc,
                cgroups,
            }),
        })
    }

    /// The cgroup hierarchy in use.
    pub fn cgroups(&self) -> &Cgroups {
        &self.inner.cgroups
    }

    /// `runc state` of a container; `None` when runc does not know it.
    pub async fn runc_state(&self, id: &ContainerId) -> Result<Option<RuncState>, RuntimeError> {
        let id = id.clone();
        self.blocking(move |i| i.runc_state(&id)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, RuntimeError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| RuntimeError::Sys {
                op: format!("runtime task: {e}"),
                source: nix::errno::Errno::EIO,
            })?
    }
}

impl Inner {
    fn dir(&self, id: &ContainerId) -> PathBuf {
        self.config.state_dir.join("containers").join(id.as_str())
    }

    fn runc_root(&self) -> PathBuf {
        self.config.state_dir.join("runc")
    }

    fn runc_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.runc);
        c.arg("--root").arg(self.runc_root());
        c.stdin(Stdio::null());
        c
    }

    /// Runs runc to the end; its stdout, or its stderr as the error.
    fn runc(&self, id: &ContainerId, args: &[&str]) -> Result<Vec<u8>, String> {
        let out = self
            .runc_cmd()
            .args(args)
            .output()
            .map_err(|e| format!("spawn {}: {e}", self.runc.display()))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            tracing::debug!(container = %id, ?args, error = %err, "runc failed");
            Err(err)
        }
    }

    fn runc_state(&self, id: &ContainerId) -> Result<Option<RuncState>, RuntimeError> {
        match self.runc(id, &["state", id.as_str()]) {
            Ok(out) => serde_json::from_slice(&out)
                .map(Some)
                .map_err(|e| RuntimeError::Shim {
                    id: id.clone(),
                    reason: format!("runc state: {e}"),
                }),
            Err(e) if e.contains("does not exist") => Ok(None),
            Err(e) => Err(RuntimeError::Shim {
                id: id.clone(),
                reason: format!("runc state: {e}"),
            }),
        }
    }

    fn create(&self, spec: ContainerSpec) -> Result<ContainerStatus, RuntimeError> {
        let id = spec.id.clone();
        let image = self.config.images.get(&spec.image)?;
        let (argv, env, working_dir) = resolve(&spec, &image.config)?;
        let Some(lower) = image.rootfs.clone() else {
            return Err(RuntimeError::InvalidImage {
                image: spec.image.clone(),
                reason: "a host image has no root filesystem for an OCI bundle".into(),
            });
        };
        let dir = self.dir(&id);
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(RuntimeError::AlreadyExists { id });
            }
            return Err(RuntimeError::io("create", &dir)(e));
        }
        write_json(&dir.join(state::SPEC), &spec)?;
        let result = (|| {
            let rootfs = mount_overlay(&dir, &lower)?;
            let hostname_file = match &spec.sandbox.hostname {
                Some(h) => {
                    let f = dir.join(state::HOSTNAME);
                    fs::write(&f, format!("{h}\n")).map_err(RuntimeError::io("write", &f))?;
                    Some(f)
                }
                None => None,
            };
            let limit_swap = match self.cgroups.version {
                CgroupVersion::V1 => self
                    .config
                    .cgroup_root
                    .join("memory/memory.memsw.limit_in_bytes")
                    .exists(),
                CgroupVersion::V2 => true,
            };
            let config = bundle::config(&bundle::BundleConfig {
                id: id.as_str(),
                argv: &argv,
                env: &env,
                cwd: &working_dir,
                rootfs: &rootfs,
                read_only_root_fs: spec.read_only_root_fs,
                hostname: spec.sandbox.hostname.as_deref(),
                hostname_file: hostname_file.as_deref(),
                netns: spec.sandbox.netns.as_deref(),
                mounts: &spec.mounts,
                resources: &spec.resources,
                cgroups_path: PathBuf::from(format!(
                    "/{}/{}",
                    self.config.cgroup_parent,
                    id.as_str()
                )),
                limit_swap,
            })?;
            write_json(&dir.join(CONFIG), &config)?;
            let plan = OciPlan {
                id: id.clone(),
                created_at: SystemTime::now(),
                runc: self.runc.clone(),
                runc_root: self.runc_root(),
                cgroup: self.cgroups.container(&id),
                log_path: spec
                    .log
                    .path
                    .clone()
                    .unwrap_or_else(|| dir.join(state::LOG)),
                log_max_size: spec.log.max_size,
                log_max_files: spec.log.max_files,
            };
            write_json(&dir.join(OCI_PLAN), &plan)
        })();
        if let Err(e) = result {
            let _ = self.remove(&id);
            return Err(e);
        }
        tracing::info!(container = %id, image = %spec.image, "container created");
        self.status(&id)
    }

    fn records(&self, id: &ContainerId) -> Result<Records, RuntimeError> {
        Records::read(&self.dir(id), OCI_PLAN, id)
    }

    fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.records(id)?.status(id, &self.dir(id))
    }

    fn start(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        let st = self.status(id)?;
        let dir = self.dir(id);
        claim_start(&dir, id, st.state)?;
        let report = run_shim(&self.config.shim, "oci-start", &dir, id)?;
        if let Some(reason) = report.error {
            tracing::warn!(container = %id, %reason, "container failed to start");
            return Err(RuntimeError::StartFailed {
                id: id.clone(),
                reason,
            });
        }
        tracing::info!(container = %id, pid = ?report.pid, "container started");
        self.status(id)
    }

    /// `runc kill`: whether runc delivered the signal (false once the container stopped).
    fn signal(&self, id: &ContainerId, started: &StartedRecord, signal: &str) -> bool {
        alive(started.pid, started.pid_start_ticks)
            && self.runc(id, &["kill", id.as_str(), signal]).is_ok()
    }

    fn record_stop(
        &self,
        id: &ContainerId,
        f: impl FnOnce(&mut StopRecord),
    ) -> Result<(), RuntimeError> {
        let path = self.dir(id).join(state::STOP);
        let mut stop: StopRecord = read_json(&path)?.unwrap_or_default();
        f(&mut stop);
        write_json(&path, &stop)
    }

    fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound { id: id.clone() });
        }
        let started: Option<StartedRecord> = read_json(&dir.join(state::STARTED)).ok().flatten();
        if let Some(s) = &started {
            if self.signal(id, s, "KILL") {
                let deadline = Instant::now() + KILL_WAIT;
                while alive(s.pid, s.pid_start_ticks) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
            }
            // Let the shim record the exit (and read the OOM count before runc deletes
            // the cgroup).
            let deadline = Instant::now() + Duration::from_secs(2);
            while alive(s.shim_pid, s.shim_start_ticks) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        // A shim that failed between `runc create` and `started.json` leaves a container
        // runc knows: `delete --force` kills and removes it, its cgroups with it.
        if let Err(e) = self.runc(id, &["delete", "--force", id.as_str()]) {
            if !e.contains("does not exist") {
                return Err(RuntimeError::Shim {
                    id: id.clone(),
                    reason: format!("runc delete: {e}"),
                });
            }
        }
        let rootfs = dir.join(state::ROOTFS);
        if rootfs.exists() {
            match umount2(&rootfs, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(RuntimeError::sys(format!("unmount {}", rootfs.display()))(
                        e,
                    ))
                }
            }
        }
        // runc removes the groups it made; these are the ones navarch reads.
        self.cgroups.container(id).remove(Duration::from_secs(1))?;
        fs::remove_dir_all(&dir).map_err(RuntimeError::io("remove", &dir))?;
        tracing::info!(container = %id, "container removed");
        Ok(())
    }

    fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let containers = self.config.state_dir.join("containers");
        let mut out = Vec::new();
        for entry in fs::read_dir(&containers).map_err(RuntimeError::io("read dir", &containers))? {
            let entry = entry.map_err(RuntimeError::io("read dir", &containers))?;
            let Ok(id) = ContainerId::new(entry.file_name().to_string_lossy().to_string()) else {
                continue;
            };
            match self.status(&id) {
                Ok(st) => out.push(st),
                Err(RuntimeError::NotFound { .. }) => {
                    tracing::warn!(container = %id, "half-created container in the state dir")
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Kills an exec's command (by the pid runc wrote) if the exec is dropped before it ends:
/// killing `runc exec` alone would leave the command running in the container.
struct ExecGuard {
    pid_file: PathBuf,
    process_file: PathBuf,
    done: bool,
}

impl ExecGuard {
    fn kill(&self) {
        if let Some(pid) = fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// The exec ended with `exit_code`: an error if runc failed before the command ran (no
    /// pid file: not found, the container went away), named by what runc wrote to stderr.
    fn finished(
        &mut self,
        id: &ContainerId,
        exit_code: i32,
        stderr: &[u8],
    ) -> Result<(), RuntimeError> {
        self.done = true;
        if !self.pid_file.exists() && exit_code != 0 {
            return Err(RuntimeError::Shim {
                id: id.clone(),
                reason: format!("runc exec: {}", String::from_utf8_lossy(stderr).trim()),
            });
        }
        Ok(())
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
        }
        let _ = fs::remove_file(&self.pid_file);
        let _ = fs::remove_file(&self.process_file);
    }
}

/// An exec's process: the container's (user, capabilities, cwd) with the exec's argv and its
/// environment over the container's.
fn exec_process(
    config: &Path,
    id: &ContainerId,
    request: &ExecRequest,
    tty: bool,
) -> Result<oci_spec::runtime::Process, RuntimeError> {
    let spec: oci_spec::runtime::Spec =
        read_json(config)?.ok_or_else(|| RuntimeError::NotFound { id: id.clone() })?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| RuntimeError::CorruptState {
            path: config.to_path_buf(),
            reason: "no process".into(),
        })?;
    let mut env = process.env().clone().unwrap_or_default();
    for e in &request.env {
        env.retain(|x| x.split('=').next() != Some(e.name.as_str()));
        env.push(format!("{}={}", e.name, e.value));
    }
    process.set_env(Some(env));
    process.set_args(Some(request.command.clone()));
    // With `--process`, runc takes the terminal from the file, not from `--tty`.
    process.set_terminal(Some(tty));
    Ok(process)
}

impl OciRuntime {
    /// Starts `runc exec` of `request` in the running container `id`, its stdin fed and its
    /// stdout and stderr piped; the guard kills the command if the exec is dropped.
    async fn spawn_exec(
        &self,
        id: &ContainerId,
        request: &ExecRequest,
    ) -> Result<(tokio::process::Child, ExecGuard), RuntimeError> {
        let stdio = crate::process::pipes(request);
        let (mut child, guard) = self.spawn_exec_with(id, request, stdio, false).await?;
        crate::process::feed_stdin(&mut child, request.stdin.clone());
        Ok((child, guard))
    }

    /// Starts `runc exec` of `request` in the running container `id` on these stdin,
    /// stdout and stderr; with `tty` runc gives the command a terminal of the container's
    /// and relays it to them (a terminal too). The guard kills the command if the exec is
    /// dropped.
    async fn spawn_exec_with(
        &self,
        id: &ContainerId,
        request: &ExecRequest,
        stdio: [Stdio; 3],
        tty: bool,
    ) -> Result<(tokio::process::Child, ExecGuard), RuntimeError> {
        let st = self.status(id).await?;
        if st.state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                id: id.clone(),
                state: st.state.as_str(),
                op: "exec",
            });
        }
        if request.command.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                id: id.to_string(),
                reason: "an exec needs a command".into(),
            });
        }
        let inner = &self.inner;
        let pid_file = inner.dir(id).join(format!(
            "exec-{}-{}.pid",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        // The container's process with the exec's argv and its env over the container's
        // (runc's `--env` would append duplicates that the container's values shadow).
        let process_file = pid_file.with_extension("json");
        let guard = ExecGuard {
            pid_file: pid_file.clone(),
            process_file: process_file.clone(),
            done: false,
        };
        let owned = (id.clone(), request.clone(), process_file);
        self.blocking(move |i| {
            let (id, request, file) = owned;
            let process = exec_process(&i.dir(&id).join(CONFIG), &id, &request, tty)?;
            write_json(&file, &process)
        })
        .await?;
        let mut cmd = tokio::process::Command::new(&inner.runc);
        cmd.arg("--root").arg(inner.runc_root()).arg("exec");
        cmd.arg("--pid-file").arg(&pid_file);
        cmd.arg("--process").arg(&guard.process_file);
        cmd.arg(id.as_str());
        let [stdin, stdout, stderr] = stdio;
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| RuntimeError::Shim {
            id: id.clone(),
            reason: format!("spawn runc exec: {e}"),
        })?;
        drop(cmd);
        Ok((child, guard))
    }
}

impl ContainerRuntime for OciRuntime {
    fn name(&self) -> &'static str {
        "oci"
    }

    fn isolation(&self) -> Isolation {
        Isolation::Isolated
    }

    fn create(&self, spec: ContainerSpec) -> RuntimeFuture<'_, ContainerStatus> {
        Box::pin(self.blocking(move |i| i.create(spec)))
    }

    fn start<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ContainerStatus> {
        let id = id.clone();
        Box::pin(self.blocking(move |i| i.start(&id)))
    }

    fn stop<'a>(
        &'a self,
        id: &'a ContainerId,
        grace: Duration,
    ) -> RuntimeFuture<'a, ContainerStatus> {
        Box::pin(async move {
            let owned = id.clone();
            let Records { started, exit, .. } = self.blocking(move |i| i.records(&owned)).await?;
            let (Some(started), None) = (started, exit) else {
                return self.status(id).await;
            };
            lifecycle::stop_sequence(
                id,
                grace,
                || self.status(id),
                |kill| {
                    let (owned, started) = (id.clone(), started.clone());
                    self.blocking(move |i| {
                        let sent = i.signal(&owned, &started, if kill { "KILL" } else { "TERM" });
                        if sent {
                            i.record_stop(&owned, |r| r.sent(kill))?;
                        }
                        Ok(sent)
                    })
                },
            )
            .await
        })
    }

    fn status<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ContainerStatus> {
        let id = id.clone();
        Box::pin(self.blocking(move |i| i.status(&id)))
    }

    fn list(&self) -> RuntimeFuture<'_, Vec<ContainerStatus>> {
        Box::pin(self.blocking(|i| i.list()))
    }

    fn exec<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
    ) -> RuntimeFuture<'a, ExecOutput> {
        Box::pin(async move {
            let (child, mut guard) = self.spawn_exec(id, &request).await?;
            let out = match tokio::time::timeout(request.timeout, child.wait_with_output()).await {
                Ok(out) => out.map_err(|e| RuntimeError::Shim {
                    id: id.clone(),
                    reason: format!("runc exec: {e}"),
                })?,
                Err(_) => {
                    // The guard kills the command; dropping the future killed runc exec.
                    return Err(RuntimeError::ExecTimeout {
                        id: id.clone(),
                        timeout_ms: request.timeout.as_millis() as u64,
                    });
                }
            };
            let exit_code = out.status.code().unwrap_or(crate::shim::EXEC_FAILED);
            guard.finished(id, exit_code, &out.stderr)?;
            Ok(ExecOutput {
                stdout: out.stdout,
                stderr: out.stderr,
                exit_code,
            })
        })
    }

    fn exec_streaming<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
        output: tokio::sync::mpsc::Sender<crate::ExecChunk>,
    ) -> RuntimeFuture<'a, i32> {
        Box::pin(async move {
            let (child, mut guard) = self.spawn_exec(id, &request).await?;
            let (exit_code, said) = stream_exec(child, output, id, &request, "runc exec").await?;
            guard.finished(id, exit_code, &said)?;
            Ok(exit_code)
        })
    }

    fn exec_attached<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
        io: crate::ExecIo,
    ) -> RuntimeFuture<'a, i32> {
        Box::pin(async move {
            let (stdio, pty) = crate::attach::stdio(io.tty, io.stdin)?;
            let (child, mut guard) = self.spawn_exec_with(id, &request, stdio, io.tty).await?;
            // runc sizes the container's terminal from ours when it starts and again on
            // SIGWINCH, which it gets from us: our terminal is not its controlling one.
            let runc = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
            let on_resize = move || {
                if let Some(pid) = runc {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH);
                }
            };
            let (exit_code, said, hung_up) =
                crate::attach::run(child, pty, io, request.timeout, id, "runc exec", on_resize)
                    .await?;
            if hung_up {
                // Killing runc exec leaves its command running in the container.
                guard.kill();
                guard.done = true;
                return Ok(exit_code);
            }
            guard.finished(id, exit_code, &said)?;
            Ok(exit_code)
        })
    }

    fn remove<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ()> {
        let id = id.clone();
        Box::pin(self.blocking(move |i| i.remove(&id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_error_is_the_last_error_logged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(RUNC_LOG);
        assert_eq!(runc_error(&log), None);
        fs::write(
            &log,
            concat!(
                r#"{"level":"error","msg":"an earlier one","time":"t"}"#,
                "\n",
                r#"{"level":"warning","msg":"a warning","time":"t"}"#,
                "\n",
                r#"{"level":"error","msg":"exec: \"/x\": no such file","time":"t"}"#,
                "\nnot json\n"
            ),
        )
        .unwrap();
        assert_eq!(
            runc_error(&log).as_deref(),
            Some("exec: \"/x\": no such file")
        );
    }
}
