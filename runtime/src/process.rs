//! `ProcessRuntime`, the `process` runtime: each container a process forked by its own
//! shim ([`crate::shim`]) into new namespaces, an overlay root over its image and cgroup
//! limits; without root, a plain supervised child (reported through
//! [`ContainerRuntime::isolation`]). All state is in the state dir:
//! `<state>/containers/<id>/` holds `spec.json`, `plan.json`, `started.json`,
//! `exit.json`, `stop.json`, the overlay (`rootfs`, `upper`, `work`) and by default the log.

use std::ffi::OsString;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::attach::{self, ExecIo};
use crate::cgroup::Cgroups;
use crate::container_runtime::{ContainerRuntime, Isolation, RuntimeFuture};
use crate::image::ImageStore;
use crate::lifecycle::{self, claim_start, Plan, KILL_WAIT};
use crate::plan::{resolve, LaunchPlan};
use crate::shim::{proc_stat, Report, EXEC_FAILED};
use crate::spec::{ContainerId, ContainerSpec, ExecChunk, ExecOutput, ExecRequest};
use crate::state::{self, read_json, write_json};
use crate::status::{ContainerState, ContainerStatus, StartedRecord, StopRecord};
use crate::RuntimeError;

/// How often a removal looks whether the killed process exited.
const POLL: Duration = Duration::from_millis(20);

/// Whether to isolate containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationMode {
    /// Isolated when running as root, else plain children.
    Auto,
    /// Always plain children (tests of the fallback, machines without namespaces).
    Off,
}

#[derive(Clone, Debug)]
pub struct ProcessConfig {
    pub state_dir: PathBuf,
    pub images: ImageStore,
    /// The shim's program and leading arguments (`navarch-shim`, or `navarch-node shim`).
    pub shim: Vec<OsString>,
    /// The cgroup file system (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The group every container's group goes under (`navarch`).
    pub cgroup_parent: String,
    pub isolation: IsolationMode,
}

impl ProcessConfig {
    pub fn new(
        state_dir: impl Into<PathBuf>,
        images: ImageStore,
        shim: impl Into<OsString>,
    ) -> Self {
        ProcessConfig {
            state_dir: state_dir.into(),
            images,
            shim: vec![shim.into()],
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "navarch".into(),
            isolation: IsolationMode::Auto,
        }
    }
}

/// The `process` runtime. Cheap to clone; every clone (and every instance over the same
/// state dir) sees the same containers.
#[derive(Clone, Debug)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

/// A container's records in its state dir.
type Records = lifecycle::Records<LaunchPlan>;

impl Plan for LaunchPlan {
    fn created_at(&self) -> SystemTime {
        self.created_at
    }

    fn log_path(&self) -> PathBuf {
        self.log_path.clone()
    }
}

#[derive(Debug)]
struct Inner {
    config: ProcessConfig,
    isolation: Isolation,
    cgroups: Option<Cgroups>,
}

impl ProcessRuntime {
    pub fn new(config: ProcessConfig) -> Result<Self, RuntimeError> {
        let containers = config.state_dir.join("containers");
        fs::create_dir_all(&containers)
            .map_err(RuntimeError::io("create state dir", &containers))?;
        let isolation = if config.isolation == IsolationMode::Off {
            Isolation::NotIsolated {
                reason: "isolation turned off".into(),
            }
        } else if !nix::unistd::geteuid().is_root() {
            Isolation::NotIsolated {
                reason: "not running as root".into(),
            }
        } else {
            Isolation::Isolated
        };
        let cgroups = isolation
            .is_isolated()
            .then(|| Cgroups::detect(&config.cgroup_root, &config.cgroup_parent));
        tracing::info!(state_dir = %config.state_dir.display(), isolated = isolation.is_isolated(), cgroups = ?cgroups.as_ref().map(|c| c.version), "process runtime ready");
        Ok(ProcessRuntime {
            inner: Arc::new(Inner {
                config,
                isolation,
                cgroups,
            }),
        })
    }

    /// Starts `request` in the running container `id` through its shim (`exec`), its
    /// stdout and stderr piped and its stdin fed; what both exec methods share.
    async fn spawn_exec(
        &self,
        id: &ContainerId,
        request: &ExecRequest,
    ) -> Result<tokio::process::Child, RuntimeError> {
        let mut child = self
            .spawn_exec_with(id, request, pipes(request), false)
            .await?;
        feed_stdin(&mut child, request.stdin.clone());
        Ok(child)
    }

    /// Starts `request` in the running container `id` through its shim (`exec`) on these
    /// stdin, stdout and stderr; with `tty` the command gets them as its controlling
    /// terminal.
    async fn spawn_exec_with(
        &self,
        id: &ContainerId,
        request: &ExecRequest,
        stdio: [Stdio; 3],
        tty: bool,
    ) -> Result<tokio::process::Child, RuntimeError> {
        let st = self.status(id).await?;
        if st.state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                id: id.clone(),
                state: st.state.as_str(),
                op: "exec",
            });
        }
        let shim = &self.inner.config.shim;
        let mut cmd = tokio::process::Command::new(&shim[0]);
        cmd.args(&shim[1..]).arg("exec").arg(self.inner.dir(id));
        for e in &request.env {
            cmd.arg("--env").arg(format!("{}={}", e.name, e.value));
        }
        if tty {
            cmd.arg("--tty");
        }
        cmd.arg("--").args(&request.command);
        let [stdin, stdout, stderr] = stdio;
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| RuntimeError::Shim {
            id: id.clone(),
            reason: format!("spawn exec: {e}"),
        })?;
        // The command's ends of its pipes or terminal go with `cmd`: only the child holds
        // them, so their end is the child's.
        drop(cmd);
        Ok(child)
    }

    /// The cgroup hierarchy in use, when isolated.
    pub fn cgroups(&self) -> Option<&Cgroups> {
        self.inner.cgroups.as_ref()
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

    fn create(&self, spec: ContainerSpec) -> Result<ContainerStatus, RuntimeError> {
        let id = spec.id.clone();
        let image = self.config.images.get(&spec.image)?;
        let (argv, env, working_dir) = resolve(&spec, &image.config)?;
        let dir = self.dir(&id);
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(RuntimeError::AlreadyExists { id });
            }
            return Err(RuntimeError::io("create", &dir)(e));
        }
        write_json(&dir.join(state::SPEC), &spec)?;
        let isolated = self.isolation.is_isolated();
        let result = (|| {
            let rootfs = match (&image.rootfs, isolated) {
                (Some(lower), true) => Some(mount_overlay(&dir, lower)?),
                _ => None,
            };
            let hostname_file = match (&spec.sandbox.hostname, isolated) {
                (Some(h), true) => {
                    let f = dir.join(state::HOSTNAME);
                    fs::write(&f, format!("{h}\n")).map_err(RuntimeError::io("write", &f))?;
                    Some(f)
                }
                _ => None,
            };
            let cgroup = match &self.cgroups {
                Some(cg) => Some(cg.create(&id, &spec.resources)?),
                None => None,
            };
            let plan = LaunchPlan {
                id: id.clone(),
                created_at: SystemTime::now(),
                isolated,
                argv,
                env,
                working_dir,
                hostname: spec.sandbox.hostname.clone(),
                hostname_file,
                netns: spec.sandbox.netns.clone(),
                rootfs,
                read_only_root_fs: spec.read_only_root_fs,
                mounts: spec.mounts.clone(),
                cgroup,
                log_path: spec
                    .log
                    .path
                    .clone()
                    .unwrap_or_else(|| dir.join(state::LOG)),
                log_max_size: spec.log.max_size,
                log_max_files: spec.log.max_files,
            };
            write_json(&dir.join(state::PLAN), &plan)
        })();
        if let Err(e) = result {
            let _ = self.remove(&id);
            return Err(e);
        }
        tracing::info!(container = %id, image = %spec.image, isolated, "container created");
        self.status(&id)
    }

    fn records(&self, id: &ContainerId) -> Result<Records, RuntimeError> {
        Records::read(&self.dir(id), state::PLAN, id)
    }

    fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.records(id)?.status(id, &self.dir(id))
    }

    fn start(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        let st = self.status(id)?;
        let dir = self.dir(id);
        claim_start(&dir, id, st.state)?;
        let report = run_shim(&self.config.shim, "start", &dir, id)?;
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

    /// Sends a signal to the container's process (its process group when not isolated), if
    /// it still is the process that was started.
    fn signal(&self, started: &StartedRecord, isolated: bool, signal: Signal) -> bool {
        if !alive(started.pid, started.pid_start_ticks) {
            return false;
        }
        let pid = Pid::from_raw(started.pid);
        if isolated {
            kill(pid, signal)
        } else {
            killpg(pid, signal)
        }
        .is_ok()
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
        let plan: Option<LaunchPlan> = read_json(&dir.join(state::PLAN)).ok().flatten();
        let started: Option<StartedRecord> = read_json(&dir.join(state::STARTED)).ok().flatten();
        if let Some(s) = &started {
            let isolated = plan.as_ref().is_some_and(|p| p.isolated);
            if self.signal(s, isolated, Signal::SIGKILL) {
                let deadline = Instant::now() + KILL_WAIT;
                while alive(s.pid, s.pid_start_ticks) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
            }
            // Let the shim record the exit and let go of the cgroup.
            let deadline = Instant::now() + Duration::from_secs(2);
            while alive(s.shim_pid, s.shim_start_ticks) && Instant::now() < deadline {
                std::thread::sleep(POLL);
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
        if let Some(cg) = plan.as_ref().and_then(|p| p.cgroup.as_ref()) {
            cg.remove(Duration::from_secs(2))?;
        } else if let Some(cgs) = &self.cgroups {
            // A create interrupted before its plan was written may have left groups.
            cgs.container(id).remove(Duration::from_secs(1))?;
        }
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
                // A create that died before its plan: `remove` cleans it up.
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

/// Spawns the shim with `verb` on a container dir and reads its one-line report; the shim
/// keeps running (reaped later) and its stderr goes to the dir's `shim.log`.
pub(crate) fn run_shim(
    shim: &[OsString],
    verb: &str,
    dir: &Path,
    id: &ContainerId,
) -> Result<Report, RuntimeError> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(state::SHIM_LOG))
        .map_err(RuntimeError::io("open", dir.join(state::SHIM_LOG)))?;
    let mut child = Command::new(&shim[0])
        .args(&shim[1..])
        .arg(verb)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| RuntimeError::Shim {
            id: id.clone(),
            reason: format!("spawn {:?}: {e}", shim[0]),
        })?;
    let mut line = String::new();
    let read = child
        .stdout
        .take()
        .map(|out| std::io::BufReader::new(out).read_line(&mut line));
    reap_later(child);
    if !matches!(read, Some(Ok(n)) if n > 0) {
        return Err(RuntimeError::Shim {
            id: id.clone(),
            reason: format!("no report (see {})", dir.join(state::SHIM_LOG).display()),
        });
    }
    serde_json::from_str(line.trim()).map_err(|e| RuntimeError::Shim {
        id: id.clone(),
        reason: format!("bad report {line:?}: {e}"),
    })
}

/// Whether `pid` is the process that started at `ticks` and has not exited.
pub(crate) fn alive(pid: i32, ticks: u64) -> bool {
    matches!(proc_stat(pid), Some((state, t)) if t == ticks && state != 'Z' && state != 'X')
}

pub(crate) fn mount_overlay(dir: &Path, lower: &Path) -> Result<PathBuf, RuntimeError> {
    let (upper, work, rootfs) = (
        dir.join(state::UPPER),
        dir.join(state::WORK),
        dir.join(state::ROOTFS),
    );
    for d in [&upper, &work, &rootfs] {
        fs::create_dir_all(d).map_err(RuntimeError::io("create", d))?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    if [lower, &upper, &work]
        .iter()
        .any(|p| p.to_string_lossy().contains([',', ':']))
    {
        return Err(RuntimeError::InvalidSpec {
            id: dir.display().to_string(),
            reason: "overlay paths may not hold ',' or ':'".into(),
        });
    }
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(RuntimeError::sys(format!(
        "mount overlay on {}",
        rootfs.display()
    )))?;
    Ok(rootfs)
}

/// Reaps the shims this process started once they exit (the container's exit is in its
/// `exit.json`), on one thread for the whole process.
fn reap_later(child: Child) {
    static CHILDREN: OnceLock<Mutex<Vec<Child>>> = OnceLock::new();
    let mut started = false;
    let children = CHILDREN.get_or_init(|| {
        started = true;
        Mutex::new(Vec::new())
    });
    children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
    if started {
        std::thread::Builder::new()
            .name("navarch-shim-reaper".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(200));
                children
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::warn!(error = %e, "no shim reaper thread"));
    }
}

impl ContainerRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn isolation(&self) -> Isolation {
        self.inner.isolation.clone()
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
            let Records {
                plan,
                started,
                exit,
                ..
            } = self.blocking(move |i| i.records(&owned)).await?;
            let (Some(started), None) = (started, exit) else {
                return self.status(id).await;
            };
            let isolated = plan.isolated;
            lifecycle::stop_sequence(
                id,
                grace,
                || self.status(id),
                |kill| {
                    let (owned, started) = (id.clone(), started.clone());
                    self.blocking(move |i| {
                        let signal = if kill {
                            Signal::SIGKILL
                        } else {
                            Signal::SIGTERM
                        };
                        let sent = i.signal(&started, isolated, signal);
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
        // The streaming exec, its output collected.
        Box::pin(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let collect = async {
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                while let Some(chunk) = rx.recv().await {
                    match chunk {
                        ExecChunk::Stdout(b) => stdout.extend(b),
                        ExecChunk::Stderr(b) => stderr.extend(b),
                    }
                }
                (stdout, stderr)
            };
            let (exit_code, (stdout, stderr)) =
                tokio::join!(self.exec_streaming(id, request, tx), collect);
            Ok(ExecOutput {
                stdout,
                stderr,
                exit_code: exit_code?,
            })
        })
    }

    fn exec_streaming<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
        output: tokio::sync::mpsc::Sender<ExecChunk>,
    ) -> RuntimeFuture<'a, i32> {
        Box::pin(async move {
            let child = self.spawn_exec(id, &request).await?;
            let (exit_code, said) = stream_exec(child, output, id, &request, "exec").await?;
            if exit_code == EXEC_FAILED && said.starts_with(b"navarch-shim:") {
                return Err(RuntimeError::Shim {
                    id: id.clone(),
                    reason: String::from_utf8_lossy(&said).trim().to_string(),
                });
            }
            Ok(exit_code)
        })
    }

    fn exec_attached<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
        io: ExecIo,
    ) -> RuntimeFuture<'a, i32> {
        Box::pin(async move {
            let (stdio, pty) = attach::stdio(io.tty, io.stdin)?;
            let child = self.spawn_exec_with(id, &request, stdio, io.tty).await?;
            // The shim runs the command as the terminal's session leader: a resize reaches
            // it as SIGWINCH from the kernel. A hung-up command dies with its shim.
            let (exit_code, said, _hung_up) =
                attach::run(child, pty, io, request.timeout, id, "exec", || {}).await?;
            if exit_code == EXEC_FAILED && said.starts_with(b"navarch-shim:") {
                return Err(RuntimeError::Shim {
                    id: id.clone(),
                    reason: String::from_utf8_lossy(&said).trim().to_string(),
                });
            }
            Ok(exit_code)
        })
    }

    fn remove<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ()> {
        let id = id.clone();
        Box::pin(self.blocking(move |i| i.remove(&id)))
    }
}

/// Runs a spawned exec to its end within the request's timeout, its stdout and stderr sent
/// to `output` as they come; returns the exit code ([`EXEC_FAILED`] without one) and the
/// first bytes of stderr (where a shim or runc says why the command never ran). `what`
/// names the exec in an error (`exec`, `runc exec`).
pub(crate) async fn stream_exec(
    mut child: tokio::process::Child,
    output: tokio::sync::mpsc::Sender<ExecChunk>,
    id: &ContainerId,
    request: &ExecRequest,
    what: &str,
) -> Result<(i32, Vec<u8>), RuntimeError> {
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let head = Arc::new(Mutex::new(Vec::new()));
    let run = async {
        let out = pump(stdout, output.clone(), ExecChunk::Stdout, None);
        let err = pump(stderr, output, ExecChunk::Stderr, Some(head.clone()));
        let (_, _, status) = tokio::join!(out, err, child.wait());
        status
    };
    let status = tokio::time::timeout(request.timeout, run).await;
    let status = exec_ended(status, id, request.timeout, what)?;
    let said = head.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((status.code().unwrap_or(EXEC_FAILED), said))
}

/// How an exec that ran within `timeout` (or did not) ended, as the runtime reports it.
pub(crate) fn exec_ended(
    status: Result<std::io::Result<std::process::ExitStatus>, tokio::time::error::Elapsed>,
    id: &ContainerId,
    timeout: Duration,
    what: &str,
) -> Result<std::process::ExitStatus, RuntimeError> {
    status
        .map_err(|_| RuntimeError::ExecTimeout {
            id: id.clone(),
            timeout_ms: timeout.as_millis() as u64,
        })?
        .map_err(|e| RuntimeError::Shim {
            id: id.clone(),
            reason: format!("{what}: {e}"),
        })
}

/// Copies a pipe of an exec to `output` as it comes; the first bytes of stderr are kept in
/// `head` (the shim's own failure starts there). Once `output` is closed the rest is read
/// and dropped, so the command never blocks on a full pipe.
pub(crate) async fn pump(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
    output: tokio::sync::mpsc::Sender<ExecChunk>,
    wrap: fn(Vec<u8>) -> ExecChunk,
    head: Option<Arc<Mutex<Vec<u8>>>>,
) {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = true;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(h) = &head {
            let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() < 256 {
                let take = n.min(256 - h.len());
                h.extend_from_slice(&buf[..take]);
            }
        }
        if open && output.send(wrap(buf[..n].to_vec())).await.is_err() {
            open = false;
        }
    }
}

/// An exec's stdin (see [`stdin_of`]), stdout and stderr when it has no terminal.
pub(crate) fn pipes(request: &ExecRequest) -> [Stdio; 3] {
    [stdin_of(request), Stdio::piped(), Stdio::piped()]
}

/// An exec's stdin: a pipe when it has one, else `/dev/null`.
pub(crate) fn stdin_of(request: &ExecRequest) -> Stdio {
    if request.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

/// Writes an exec's stdin to its child and closes it (end of file), beside the reading of
/// its output so that neither pipe can fill and stall the other. A command that exits
/// without reading it all just closes the pipe: the rest is dropped.
pub(crate) fn feed_stdin(child: &mut tokio::process::Child, stdin: Option<Vec<u8>>) {
    use tokio::io::AsyncWriteExt;
    if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), stdin) {
        tokio::spawn(async move {
            if let Err(e) = pipe.write_all(&bytes).await {
                tracing::debug!(error = %e, "exec stdin not taken in full");
            }
            let _ = pipe.shutdown().await;
        });
    }
}
