//! The benchmark's child processes: spawned with their output in a log file, killed when the
//! group is dropped (on success, error or interrupt), and the helpers to pick loopback ports,
//! find binaries and poll for a condition with a deadline.

use std::collections::HashSet;
use std::future::Future;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Processes started by the benchmark. Dropping the group SIGKILLs and reaps every one.
#[derive(Default)]
pub(crate) struct Procs {
    children: Vec<Proc>,
}

struct Proc {
    name: String,
    log: PathBuf,
    child: Child,
    /// How it was started, to start it again.
    cmd: Command,
}

impl Procs {
    /// Starts `cmd` as `name`, stdout and stderr appended to `log`.
    pub(crate) fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name} ({:?})", cmd.get_program()))?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started process");
        self.children.push(Proc {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            cmd,
        });
        Ok(())
    }

    fn get(&mut self, name: &str) -> Result<&mut Proc> {
        self.children
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no process named {name}"))
    }

    /// Sends `signal` to `name` and reaps it once it has exited (SIGKILL: at once).
    pub(crate) fn stop_one(&mut self, name: &str, signal: nix::sys::signal::Signal) -> Result<()> {
        let p = self.get(name)?;
        let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
        nix::sys::signal::kill(pid, signal).with_context(|| format!("signal {name}"))?;
        p.child.wait().with_context(|| format!("wait for {name}"))?;
        tracing::debug!(name, ?signal, "process stopped");
        Ok(())
    }

    /// Sends `signal` to `name` without waiting (SIGSTOP, SIGCONT); a process that has
    /// exited is left alone.
    pub(crate) fn signal(&mut self, name: &str, signal: nix::sys::signal::Signal) -> Result<()> {
        let p = self.get(name)?;
        if p.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
        nix::sys::signal::kill(pid, signal).with_context(|| format!("signal {name}"))?;
        Ok(())
    }

    /// Starts `name` again as it was started first (after [`Procs::stop_one`]).
    pub(crate) fn restart(&mut self, name: &str) -> Result<()> {
        let p = self.get(name)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&p.log)
            .with_context(|| format!("open {}", p.log.display()))?;
        p.cmd.stdout(file.try_clone()?).stderr(file);
        p.child = p.cmd.spawn().with_context(|| format!("restart {name}"))?;
        tracing::debug!(name, pid = p.child.id(), "restarted process");
        Ok(())
    }

    /// Fails if a process has exited, with the tail of its log.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        for p in &mut self.children {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    p.name,
                    p.log.display(),
                    tail(&p.log, 20)
                );
            }
        }
        Ok(())
    }

    /// The last lines of every process's log, for an error report.
    pub(crate) fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for p in &self.children {
            out.push_str(&format!(
                "----- last lines of {} ({}) -----\n",
                p.name,
                p.log.display()
            ));
            out.push_str(&tail(&p.log, lines));
            out.push('\n');
        }
        out
    }

    /// The process ids, for CPU accounting.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|p| p.child.id()).collect()
    }

    /// SIGKILLs and reaps every process.
    pub(crate) fn kill_all(&mut self) {
        for mut p in self.children.drain(..) {
            let _ = p.child.kill();
            let _ = p.child.wait();
            tracing::debug!(name = %p.name, "stopped process");
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let last: Vec<&str> = text.lines().rev().take(lines).collect();
    last.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Ports handed out in this process, so two members never get the same one.
static TAKEN: Mutex<Option<HashSet<(String, u16)>>> = Mutex::new(None);

/// A port on `ip` free for both TCP and UDP at the time of the call and not handed out before.
pub(crate) fn free_port(ip: &str) -> Result<u16> {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let udp = UdpSocket::bind((ip, 0)).with_context(|| format!("bind udp on {ip}"))?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind((ip, port)).is_ok() && taken.insert((ip.to_string(), port)) {
            return Ok(port);
        }
    }
    bail!("no free port on {ip}")
}

/// A binary installed next to the running executable (`navctl`), as `cargo build` lays them out.
pub(crate) fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{name} not found at {} (next to {}): build it with `cargo build --release -p navarch-bins`",
            path.display(),
            exe.display()
        );
    }
    Ok(path)
}

/// Polls `cond` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub(crate) async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut cond: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) used so far by process `pid` ("self" for this
/// one), from `/proc/<pid>/stat`; `None` if it cannot be read.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may contain spaces:
    // state is the 3rd field of the line, utime the 14th and stime the 15th.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The 1-minute load average of the machine.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The filesystem type `path` lives on, from /proc/self/mounts (longest matching mount point).
pub(crate) fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _dev = f.next()?;
            let mount = f.next()?;
            let fstype = f.next()?;
            Some((mount.to_string(), fstype.to_string()))
        })
        .filter(|(m, _)| path.starts_with(m))
        .max_by_key(|(m, _)| m.len())
        .map(|(_, t)| t)
}
