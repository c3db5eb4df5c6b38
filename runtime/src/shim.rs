//! The shim: a small single-threaded program (`navarch-shim`, or any binary that calls
//! [`main`]) that the runtime starts once per container and per exec, so the node agent,
//! a multi-threaded process, never forks and runs code before `exec`.
//!
//! `start <container dir>`: reads `plan.json`, forks the container's process (in new PID,
//! mount, UTS and IPC namespaces and the pod's network namespace when isolated), puts it in
//! its cgroups before it runs anything, sets up its root (the overlay, `/proc`, a small
//! `/dev`, `/sys`, mounts, `pivot_root`), execs the command, writes `started.json`, reports
//! one JSON line on stdout and keeps running in its own session: it copies the container's
//! stdout and stderr into the log file (CRI format, rotated), reaps the process and writes
//! `exit.json` (exit code, signal, OOM kills). It outlives the agent, so a restarted agent
//! finds its containers running and their exits recorded.
//!
//! `oci-start <container dir>`: the same for the `oci` runtime, with runc in place of the
//! fork (`shim/oci.rs`: `runc create` with the log pipes as stdio, then `runc start`).
//!
//! `exec <container dir> [--env NAME=value]... -- <argv>...`: joins the running container's
//! namespaces and cgroups, runs the command with the container's environment and working
//! dir on the shim's own stdout and stderr, and exits with its exit code (128 + signal);
//! the shim's own failures exit with [`EXEC_FAILED`] and say why on stderr.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    chdir, dup2_stderr, dup2_stdin, dup2_stdout, execve, pipe2, pivot_root, sethostname, setsid,
    ForkResult, Pid,
};
use serde::{Deserialize, Serialize};

use crate::cgroup::ContainerCgroup;
use crate::logs::{LineSplitter, LogWriter, Stream};
use crate::plan::LaunchPlan;
use crate::rootpath::resolve_in_root;
use crate::spec::MountSource;
use crate::state::{self, write_json};
use crate::status::{ExitRecord, StartedRecord};

mod oci;

/// The exit code of an exec whose shim failed (not the command's).
pub const EXEC_FAILED: i32 = 255;

/// The exit code recorded for a container whose command never ran.
pub const START_FAILED: i32 = 128;

/// The one line `start` prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub pid: Option<i32>,
    pub error: Option<String>,
}

/// The shim's entry point; returns the process's exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A binary may mount the shim as a subcommand: skip to the verb.
    let Some(at) = args
        .iter()
        .position(|a| a == "start" || a == "exec" || a == "oci-start")
    else {
        eprintln!(
            "navarch-shim: usage: start DIR | oci-start DIR | exec DIR [--env N=V]... [--tty] -- ARGV..."
        );
        return 2;
    };
    let (verb, rest) = (&args[at], &args[at + 1..]);
    let Some(dir) = rest.first().map(PathBuf::from) else {
        eprintln!("navarch-shim: {verb} needs a container dir");
        return 2;
    };
    if verb == "start" || verb == "oci-start" {
        let started = if verb == "start" {
            start(&dir)
        } else {
            oci::start(&dir)
        };
        match started {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("navarch-shim: start {}: {e}", dir.display());
                let _ = writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string(&Report {
                        pid: None,
                        error: Some(e)
                    })
                    .unwrap_or_default()
                );
                1
            }
        }
    } else {
        let mut env = Vec::new();
        let mut tty = false;
        let mut i = 1;
        while i < rest.len() && rest[i] != "--" {
            if rest[i] == "--env" && i + 1 < rest.len() {
                env.push(rest[i + 1].clone());
                i += 2;
            } else if rest[i] == "--tty" {
                tty = true;
                i += 1;
            } else {
                eprintln!("navarch-shim: unexpected argument {}", rest[i]);
                return 2;
            }
        }
        let argv = rest.get(i + 1..).unwrap_or_default().to_vec();
        match exec(&dir, env, argv, tty) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("navarch-shim: exec: {e}");
                EXEC_FAILED
            }
        }
    }
}

nix::ioctl_write_int_bad!(set_controlling_terminal, nix::libc::TIOCSCTTY);

/// Makes the command a new session's leader with its stdin (a terminal's slave) as the
/// session's controlling terminal: the terminal's signals (^C, SIGWINCH) reach it.
fn controlling_terminal() -> Result<(), String> {
    setsid().map_err(|e| format!("setsid: {e}"))?;
    #[allow(unsafe_code)]
    // SAFETY: TIOCSCTTY takes an int argument and reads no memory.
    let r = unsafe { set_controlling_terminal(0, 0) };
    r.map(|_| ())
        .map_err(|e| format!("make stdin the controlling terminal: {e}"))
}

/// Forks the (single-threaded) shim.
#[allow(unsafe_code)]
fn fork() -> Result<ForkResult, String> {
    // SAFETY: the shim is single-threaded (it starts no threads), so the child is a whole
    // copy of its only thread and may allocate and run any code before exec.
    unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn exit_of(status: WaitStatus) -> Option<(i32, Option<i32>)> {
    match status {
        WaitStatus::Exited(_, code) => Some((code, None)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

/// `/proc/<pid>/stat`: the process's state letter and its start time in clock ticks.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: field 3 (state) is index 0, field 22 (starttime) is index 19.
    Some((
        fields.first()?.chars().next()?,
        fields.get(19)?.parse().ok()?,
    ))
}

fn start(dir: &Path) -> Result<(), String> {
    // Its own session (no signal for the agent's process group reaches it) and out of
    // the agent's working dir.
    let _ = setsid();
    let _ = chdir("/");
    let plan: LaunchPlan = state::read_json(&dir.join(state::PLAN))
        .map_err(|e| e.to_string())?
        .ok_or("no plan.json")?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (ep_r, ep_w) = pipe()?;
    let netns = match (&plan.netns, plan.isolated) {
        (Some(p), true) => {
            Some(File::open(p).map_err(|e| format!("open netns {}: {e}", p.display()))?)
        }
        _ => None,
    };
    if plan.isolated {
        // The next child is PID 1 of a new PID namespace; the shim stays outside it.
        unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid namespace: {e}"))?;
    }
    let child = match fork()? {
        ForkResult::Child => {
            drop((out_r, err_r, go_w, ep_r));
            let Err(e) = container(&plan, go_r, out_w, err_w, netns);
            let mut ep = File::from(ep_w);
            let _ = ep.write_all(e.as_bytes());
            std::process::exit(127);
        }
        ForkResult::Parent { child } => child,
    };
    drop((out_w, err_w, go_r, ep_w, netns));
    let placed = plan
        .cgroup
        .iter()
        .flat_map(|cg| cg.procs_files())
        .try_for_each(|f| {
            fs::write(&f, child.as_raw().to_string())
                .map_err(|e| format!("join cgroup {}: {e}", f.display()))
        });
    let mut start_error = String::new();
    match placed {
        Ok(()) => {
            let _ = File::from(go_w).write_all(b"g");
            let _ = File::from(ep_r).read_to_string(&mut start_error);
        }
        Err(e) => {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            start_error = e;
        }
    }
    if !start_error.is_empty() {
        let _ = waitpid(child, None);
        let exit = ExitRecord {
            exit_code: START_FAILED,
            signal: None,
            finished_at: SystemTime::now(),
            oom_kills: 0,
            start_error: Some(start_error.clone()),
        };
        write_json(&dir.join(state::EXIT), &exit).map_err(|e| e.to_string())?;
        report(&Report {
            pid: None,
            error: Some(start_error),
        });
        return Ok(());
    }
    let me = nix::unistd::getpid().as_raw();
    let started = StartedRecord {
        pid: child.as_raw(),
        pid_start_ticks: proc_stat(child.as_raw()).map(|s| s.1).unwrap_or(0),
        shim_pid: me,
        shim_start_ticks: proc_stat(me).map(|s| s.1).unwrap_or(0),
        started_at: SystemTime::now(),
    };
    write_json(&dir.join(state::STARTED), &started).map_err(|e| e.to_string())?;
    report(&Report {
        pid: Some(child.as_raw()),
        error: None,
    });
    supervise(dir, &Supervised::of(&plan), child, out_r, err_r)
}

/// Prints the report and lets go of the runtime's pipe.
fn report(r: &Report) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
    let _ = out.flush();
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = dup2_stdout(null);
    }
}

/// What [`supervise`] writes to and reads from.
struct Supervised<'a> {
    log_path: &'a Path,
    log_max_size: u64,
    log_max_files: u32,
    /// Kill the child's process group once it exits (no PID namespace does it for us).
    kill_group: bool,
    /// Where the OOM kills are counted.
    cgroup: Option<&'a ContainerCgroup>,
}

impl<'a> Supervised<'a> {
    fn of(plan: &'a LaunchPlan) -> Self {
        Supervised {
            log_path: &plan.log_path,
            log_max_size: plan.log_max_size,
            log_max_files: plan.log_max_files,
            kill_group: !plan.isolated,
            cgroup: plan.cgroup.as_ref(),
        }
    }
}

/// Copies output into the log until the process is reaped, then records its exit.
fn supervise(
    dir: &Path,
    plan: &Supervised<'_>,
    child: Pid,
    out_r: OwnedFd,
    err_r: OwnedFd,
) -> Result<(), String> {
    let mut log = LogWriter::open(plan.log_path, plan.log_max_size, plan.log_max_files)
        .map_err(|e| format!("open log {}: {e}", plan.log_path.display()))?;
    let mut streams = [
        (
            Some(File::from(out_r)),
            Stream::Stdout,
            LineSplitter::default(),
        ),
        (
            Some(File::from(err_r)),
            Stream::Stderr,
            LineSplitter::default(),
        ),
    ];
    let mut exit: Option<(i32, Option<i32>)> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if exit.is_none() {
            if let Ok(st) = waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                exit = exit_of(st);
            }
            if exit.is_some() {
                if plan.kill_group {
                    // As the end of a PID namespace's init ends everything in it: the rest
                    // of the container's process group goes with its first process.
                    let _ = nix::sys::signal::killpg(child, nix::sys::signal::Signal::SIGKILL);
                }
                // Processes that left the group may hold the pipes: read what is there,
                // then stop waiting for them.
                drain_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        let open: Vec<usize> = (0..2).filter(|&i| streams[i].0.is_some()).collect();
        if open.is_empty() || drain_until.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .map(|&i| {
                    PollFd::new(
                        streams[i]
                            .0
                            .as_ref()
                            .map(|f| f.as_fd())
                            .unwrap_or_else(|| unreachable!()),
                        PollFlags::POLLIN,
                    )
                })
                .collect();
            let _ = poll(&mut fds, PollTimeout::from(100u16));
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        for (k, &i) in open.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let (file, stream, splitter) = &mut streams[i];
            let n = file
                .as_mut()
                .map(|f| f.read(&mut buf).unwrap_or(0))
                .unwrap_or(0);
            let now = SystemTime::now();
            let mut write = |partial: bool, line: &[u8]| {
                if let Err(e) = log.record(*stream, partial, line, now) {
                    eprintln!("navarch-shim: write log: {e}");
                }
            };
            if n == 0 {
                splitter.finish(&mut write);
                *file = None;
            } else {
                splitter.feed(&buf[..n], &mut write);
            }
        }
    }
    for (_, stream, splitter) in &mut streams {
        let now = SystemTime::now();
        splitter.finish(|p, l| {
            let _ = log.record(*stream, p, l, now);
        });
    }
    let (exit_code, signal) = match exit {
        Some(e) => e,
        None => waitpid(child, None)
            .ok()
            .and_then(exit_of)
            .unwrap_or((crate::status::UNKNOWN_EXIT_CODE, None)),
    };
    let record = ExitRecord {
        exit_code,
        signal,
        finished_at: SystemTime::now(),
        oom_kills: plan.cgroup.map(|c| c.oom_kills()).unwrap_or(0),
        start_error: None,
    };
    write_json(&dir.join(state::EXIT), &record).map_err(|e| e.to_string())
}

/// The container's process, between fork and exec. Returns only on failure.
fn container(
    plan: &LaunchPlan,
    go: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
    netns: Option<File>,
) -> Result<Infallible, String> {
    let mut b = [0u8; 1];
    if File::from(go).read(&mut b).unwrap_or(0) == 0 {
        return Err("the shim went away before the start".into());
    }
    let _ = setsid();
    if plan.isolated {
        if let Some(ns) = netns {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("join the pod's network namespace: {e}"))?;
        }
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
            .map_err(|e| format!("unshare namespaces: {e}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("make / private: {e}"))?;
        if let Some(h) = &plan.hostname {
            sethostname(h).map_err(|e| format!("sethostname {h}: {e}"))?;
        }
        match &plan.rootfs {
            Some(root) => setup_root(plan, root)?,
            None => {
                mount(
                    Some("proc"),
                    "/proc",
                    Some("proc"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
                    None::<&str>,
                )
                .map_err(|e| format!("mount /proc: {e}"))?;
                user_mounts(plan, Path::new("/"), false)?;
            }
        }
    }
    chdir(plan.working_dir.as_str()).map_err(|e| format!("chdir {}: {e}", plan.working_dir))?;
    let null = File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    dup2_stdin(&null)
        .and_then(|_| dup2_stdout(&out))
        .and_then(|_| dup2_stderr(&err))
        .map_err(|e| format!("dup2: {e}"))?;
    exec_command(&plan.argv, &plan.env)
}

/// Execs argv[0] (searched in the environment's PATH when it has no '/').
fn exec_command(argv: &[String], env: &[String]) -> Result<Infallible, String> {
    let program = find_program(&argv[0], env)
        .ok_or_else(|| format!("executable file {} not found in $PATH", argv[0]))?;
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    let args = argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let path = cstr(&program)?;
    let e = execve(&path, &args, &envs).unwrap_err();
    Err(format!("exec {program}: {e}"))
}

fn find_program(name: &str, env: &[String]) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':').map(|d| format!("{d}/{name}")).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn mnt(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(source, target, fstype, flags, data).map_err(|e| {
        format!(
            "mount {} on {}: {e}",
            source.unwrap_or(""),
            target.display()
        )
    })
}

/// Mounts `/proc`, `/dev`, `/sys` and the spec's mounts under `root`, then makes it `/`.
fn setup_root(plan: &LaunchPlan, root: &Path) -> Result<(), String> {
    let mkdir = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()));
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let inside = |p: &str| {
        resolve_in_root(root, p).map_err(|e| format!("resolve {p} in {}: {e}", root.display()))
    };
    let proc_dir = inside("/proc")?;
    mkdir(&proc_dir)?;
    mnt(Some("proc"), &proc_dir, Some("proc"), nse, None)?;
    let dev = inside("/dev")?;
    mkdir(&dev)?;
    mnt(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(d);
        File::create(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
        mnt(
            Some(&format!("/dev/{d}")),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let _ = std::os::unix::fs::symlink(to, dev.join(link));
    }
    mkdir(&dev.join("shm"))?;
    mnt(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        nse,
        Some("mode=1777,size=65536k"),
    )?;
    mkdir(&dev.join("pts"))?;
    let _ = mnt(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    );
    let sys = inside("/sys")?;
    mkdir(&sys)?;
    let _ = mnt(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        nse | MsFlags::MS_RDONLY,
        None,
    );
    if let Some(file) = &plan.hostname_file {
        let target = inside("/etc/hostname")?;
        if target.parent().is_some_and(Path::is_dir) {
            if !target.exists() {
                File::create(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
            }
            mnt(
                Some(&file.to_string_lossy()),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    user_mounts(plan, root, true)?;
    chdir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the old root: {e}"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if plan.read_only_root_fs {
        mnt(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

/// The spec's mounts, under `root`. In a container's root, targets are resolved inside it
/// (an image's symlinks cannot point them at host paths) and created when missing.
fn user_mounts(plan: &LaunchPlan, root: &Path, create: bool) -> Result<(), String> {
    for m in &plan.mounts {
        let target = if create {
            resolve_in_root(root, &m.container_path)
                .map_err(|e| format!("resolve {}: {e}", m.container_path))?
        } else {
            root.join(m.container_path.trim_start_matches('/'))
        };
        match &m.source {
            MountSource::Bind(src) => {
                if create && !target.exists() {
                    if src.is_dir() {
                        fs::create_dir_all(&target)
                            .map_err(|e| format!("mkdir {}: {e}", target.display()))?;
                    } else {
                        if let Some(p) = target.parent() {
                            fs::create_dir_all(p)
                                .map_err(|e| format!("mkdir {}: {e}", p.display()))?;
                        }
                        File::create(&target)
                            .map_err(|e| format!("create {}: {e}", target.display()))?;
                    }
                }
                mnt(
                    Some(&src.to_string_lossy()),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
            }
            MountSource::Tmpfs { size_bytes } => {
                if create {
                    fs::create_dir_all(&target)
                        .map_err(|e| format!("mkdir {}: {e}", target.display()))?;
                }
                let data = size_bytes.map(|s| format!("size={s}"));
                mnt(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    data.as_deref(),
                )?;
            }
        }
        if m.read_only {
            mnt(
                None,
                &target,
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                None,
            )?;
        }
    }
    Ok(())
}

fn exec(dir: &Path, extra_env: Vec<String>, argv: Vec<String>, tty: bool) -> Result<i32, String> {
    if argv.is_empty() {
        return Err("no command".into());
    }
    let plan: LaunchPlan = state::read_json(&dir.join(state::PLAN))
        .map_err(|e| e.to_string())?
        .ok_or("no plan.json")?;
    let started: StartedRecord = state::read_json(&dir.join(state::STARTED))
        .map_err(|e| e.to_string())?
        .ok_or("not started")?;
    if proc_stat(started.pid).map(|s| s.1) != Some(started.pid_start_ticks) {
        return Err("the container is not running".into());
    }
    if plan.isolated {
        let ns = |name: &str| {
            let p = format!("/proc/{}/ns/{name}", started.pid);
            File::open(&p).map_err(|e| format!("open {p}: {e}"))
        };
        let joins = [
            (ns("ipc")?, CloneFlags::CLONE_NEWIPC),
            (ns("uts")?, CloneFlags::CLONE_NEWUTS),
            (ns("net")?, CloneFlags::CLONE_NEWNET),
            (ns("pid")?, CloneFlags::CLONE_NEWPID),
            (ns("mnt")?, CloneFlags::CLONE_NEWNS),
        ];
        let me = nix::unistd::getpid().as_raw().to_string();
        for f in plan.cgroup.iter().flat_map(|cg| cg.procs_files()) {
            fs::write(&f, &me).map_err(|e| format!("join cgroup {}: {e}", f.display()))?;
        }
        for (file, kind) in &joins {
            setns(file.as_fd(), *kind).map_err(|e| format!("setns {kind:?}: {e}"))?;
        }
    }
    let mut env = plan.env.clone();
    for e in extra_env {
        let name = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(name.as_str()));
        env.push(e);
    }
    match fork()? {
        ForkResult::Child => {
            // The command dies with its shim (an exec the runtime gave up on and killed).
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid() == Pid::from_raw(1) {
                std::process::exit(EXEC_FAILED);
            }
            if tty {
                if let Err(e) = controlling_terminal() {
                    eprintln!("navarch-shim: {e}");
                    std::process::exit(127);
                }
            }
            let e = match chdir(plan.working_dir.as_str()) {
                Ok(()) => exec_command(&argv, &env).unwrap_err(),
                Err(e) => format!("chdir {}: {e}", plan.working_dir),
            };
            eprintln!("navarch-shim: {e}");
            std::process::exit(127);
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(st) => {
                    if let Some((code, _)) = exit_of(st) {
                        return Ok(code);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("wait: {e}")),
            }
        },
    }
}
