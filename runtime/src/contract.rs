//! The contract every [`ContainerRuntime`] passes (`process` and `oci`): create,
//! start, exit codes and reasons, logs and their rotation, stop with SIGTERM then SIGKILL,
//! exec, isolation (PID namespace, hostname, root filesystem, memory limit) and re-attach
//! from a new runtime instance over the same state dir. Each scenario takes a factory and
//! a fresh state dir, removes what it created, and says in its failure which step broke.
//! Scenarios that need isolation fail (never skip) on a runtime that is not isolated: run
//! [`UNISOLATED`] against such a runtime.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use crate::logs::{parse, rotated};
use crate::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, ContainerStatus, ExecRequest,
    Mount, MountSource, Reason, RuntimeError,
};

/// How long a scenario waits for a container to do what it should.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a runtime's test provides.
pub trait RuntimeFactory: Sync {
    /// A runtime over `state_dir`; called again with the same dir to test re-attach.
    fn runtime(&self, state_dir: &Path) -> Result<Box<dyn ContainerRuntime>, RuntimeError>;
    /// The name of a busybox image the runtime can run.
    fn busybox(&self) -> String;
    /// That image's root filesystem on disk, to check that writes stay in the container.
    fn busybox_rootfs(&self) -> PathBuf;
    /// A network namespace standing in for a pod's (a path like `/proc/<pid>/ns/net` or
    /// `/run/netns/<name>`), alive for the factory's life.
    fn pod_netns(&self) -> Result<PathBuf, String>;
}

/// A scenario's failure.
#[derive(Debug, thiserror::Error)]
#[error("contract scenario {scenario} failed: {message}")]
pub struct Failure {
    pub scenario: &'static str,
    pub message: String,
}

pub type Outcome = Result<(), Failure>;
type Step<T> = Result<T, String>;

/// A scenario: the factory and a fresh state dir.
pub type ScenarioFn = for<'a> fn(
    &'a dyn RuntimeFactory,
    &'a Path,
) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

macro_rules! scenarios {
    ($($f:ident),* $(,)?) => {
        &[$( (stringify!($f), { fn run<'a>(f: &'a dyn RuntimeFactory, d: &'a Path) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> { Box::pin($f(f, d)) } run as ScenarioFn }) ),*]
    };
}

/// Every scenario, for an isolated runtime.
pub const ALL: &[(&str, ScenarioFn)] = scenarios!(
    exit_code_and_logs,
    clean_exit_is_completed,
    start_error_and_unknown_image,
    stop_sends_term,
    stop_kills_after_the_grace_period,
    own_pid_namespace_and_hostname,
    joins_the_pod_network_namespace,
    exec_collects_output_and_exit_code,
    attached_exec_streams_stdin_and_runs_a_terminal,
    memory_hog_is_oom_killed,
    root_filesystem_writes_stay_in_the_container,
    reattach_finds_running_containers,
    log_rotation_keeps_the_newest_bytes,
);

/// The scenarios that hold without isolation.
pub const UNISOLATED: &[(&str, ScenarioFn)] = scenarios!(
    exit_code_and_logs,
    clean_exit_is_completed,
    start_error_and_unknown_image,
    stop_sends_term,
    stop_kills_after_the_grace_period,
    exec_collects_output_and_exit_code,
    attached_exec_streams_stdin_and_runs_a_terminal,
    reattach_finds_running_containers,
    log_rotation_keeps_the_newest_bytes,
);

/// Runs `scenarios`, each in its own dir under `base`; returns the failures.
pub async fn run_all(
    f: &dyn RuntimeFactory,
    base: &Path,
    scenarios: &[(&str, ScenarioFn)],
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for (name, run) in scenarios {
        let dir = base.join(name);
        if let Err(e) = run(f, &dir).await {
            failures.push(e);
        }
    }
    failures
}

trait Ctx<T> {
    fn ctx(self, step: &str) -> Step<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, step: &str) -> Step<T> {
        self.map_err(|e| format!("{step}: {e}"))
    }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Step<()> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// Runs a scenario body with a runtime, then removes every container it left.
async fn scenario<'a, F, Fut>(
    name: &'static str,
    f: &'a dyn RuntimeFactory,
    dir: &'a Path,
    body: F,
) -> Outcome
where
    F: FnOnce(Box<dyn ContainerRuntime>) -> Fut,
    Fut: Future<Output = Step<()>> + 'a,
{
    let fail = |message: String| Failure {
        scenario: name,
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("create {}: {e}", dir.display())))?;
    let rt = f.runtime(dir).map_err(|e| fail(format!("runtime: {e}")))?;
    let result = body(rt).await;
    let cleanup = async {
        let rt = f.runtime(dir).ctx("runtime for cleanup")?;
        for c in rt.list().await.ctx("list for cleanup")? {
            rt.remove(&c.id).await.ctx("remove")?;
        }
        Step::Ok(())
    }
    .await;
    result
        .map_err(|e| format!("{e}{}", shim_logs(dir)))
        .and(cleanup)
        .map_err(fail)
}

/// What the shims and runc under `dir` logged, for a failure's message.
fn shim_logs(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(containers) = std::fs::read_dir(dir.join("state").join("containers")) else {
        return out;
    };
    for c in containers.flatten() {
        for file in [crate::state::SHIM_LOG, crate::oci::RUNC_LOG] {
            let path = c.path().join(file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.trim().is_empty() {
                    out.push_str(&format!("\n--- {}:\n{}", path.display(), text.trim_end()));
                }
            }
        }
    }
    out
}

fn id(name: &str) -> ContainerId {
    ContainerId::new(format!("{}-{}", name.replace('_', "-"), std::process::id()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn sh(f: &dyn RuntimeFactory, name: &str, script: &str) -> ContainerSpec {
    ContainerSpec::new(id(name), f.busybox(), &["sh", "-c", script])
}

async fn wait_for(
    rt: &dyn ContainerRuntime,
    id: &ContainerId,
    what: &str,
    cond: impl Fn(&ContainerStatus) -> bool,
) -> Step<ContainerStatus> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = rt.status(id).await.ctx("status")?;
        if cond(&st) {
            return Ok(st);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{id} never became {what}: {st:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_exited(rt: &dyn ContainerRuntime, id: &ContainerId) -> Step<ContainerStatus> {
    wait_for(rt, id, "exited", |s| s.state == ContainerState::Exited).await
}

async fn run(rt: &dyn ContainerRuntime, spec: ContainerSpec) -> Step<ContainerStatus> {
    let id = spec.id.clone();
    rt.create(spec).await.ctx("create")?;
    rt.start(&id).await.ctx("start")?;
    wait_exited(rt, &id).await
}

/// The log's lines, oldest first, across its rotated files.
fn log_lines(st: &ContainerStatus) -> Vec<String> {
    (0..10)
        .rev()
        .filter_map(|n| std::fs::read(rotated(&st.log_path, n)).ok())
        .flat_map(|bytes| {
            bytes
                .split(|&b| b == b'\n')
                .filter_map(|l| parse(l).map(|r| String::from_utf8_lossy(r.content).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn wait_logged(
    rt: &dyn ContainerRuntime,
    id: &ContainerId,
    line: &str,
) -> Step<ContainerStatus> {
    wait_for(rt, id, &format!("logging {line:?}"), |s| {
        log_lines(s).iter().any(|l| l == line)
    })
    .await
}

/// `sh -c 'echo hi; exit 3'` exits 3 with reason Error, and its log holds "hi".
pub async fn exit_code_and_logs(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("exit_code_and_logs", f, dir, |rt| async move {
        let st = run(&*rt, sh(f, "exit-code", "echo hi; echo oops >&2; exit 3")).await?;
        check(
            st.exit_code == Some(3) && st.reason == Some(Reason::Error),
            || format!("want exit 3, Error: {st:?}"),
        )?;
        check(
            st.started_at.is_some() && st.finished_at >= st.started_at,
            || format!("times: {st:?}"),
        )?;
        let lines = log_lines(&st);
        check(
            lines.contains(&"hi".into()) && lines.contains(&"oops".into()),
            || format!("log lines {lines:?}"),
        )?;
        let raw = std::fs::read_to_string(&st.log_path).ctx("read log")?;
        check(raw.lines().any(|l| l.contains(" stderr F oops")), || {
            format!("stderr not tagged in {raw:?}")
        })
    })
    .await
}

/// A clean exit is Completed with code 0.
pub async fn clean_exit_is_completed(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("clean_exit_is_completed", f, dir, |rt| async move {
        let st = run(&*rt, sh(f, "clean", "true")).await?;
        check(
            st.exit_code == Some(0) && st.reason == Some(Reason::Completed),
            || format!("want 0, Completed: {st:?}"),
        )?;
        let again = rt.start(&st.id).await;
        check(
            matches!(again, Err(RuntimeError::InvalidState { .. })),
            || format!("a second start: {again:?}"),
        )?;
        // What the first process left running ends with it, as in Kubernetes.
        let marker = format!("{}", 900_000 + std::process::id() % 99_999);
        let st = run(&*rt, sh(f, "leftover", &format!("sleep {marker} & true"))).await?;
        check(st.exit_code == Some(0), || format!("{st:?}"))?;
        let deadline = tokio::time::Instant::now() + WAIT;
        while host_runs(&["sleep", &marker]) {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("`sleep {marker}` outlived its container"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    })
    .await
}

/// Whether a host process runs with exactly this command line.
fn host_runs(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want))
}

/// An unknown image is a typed error (the agent's ErrImagePull); a command that cannot run
/// fails the start and leaves an exited status with reason StartError.
pub async fn start_error_and_unknown_image(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("start_error_and_unknown_image", f, dir, |rt| async move {
        let mut spec = sh(f, "no-image", "true");
        spec.image = "no-such-image".into();
        let r = rt.create(spec).await;
        check(matches!(&r, Err(e) if e.is_image_pull()), || {
            format!("unknown image: {r:?}")
        })?;
        let spec = ContainerSpec::new(id("no-binary"), f.busybox(), &["/no/such/binary"]);
        let id = spec.id.clone();
        rt.create(spec).await.ctx("create")?;
        let r = rt.start(&id).await;
        check(matches!(r, Err(RuntimeError::StartFailed { .. })), || {
            format!("start of a missing binary: {r:?}")
        })?;
        let st = rt.status(&id).await.ctx("status")?;
        check(
            st.state == ContainerState::Exited && st.reason == Some(Reason::StartError),
            || format!("{st:?}"),
        )
    })
    .await
}

/// Stop sends SIGTERM; a process that handles it exits without a SIGKILL. `sleep 1000`
/// gets the SIGTERM too (as PID 1 of its namespace it ignores it, as in Kubernetes, and
/// is killed after the grace period).
pub async fn stop_sends_term(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("stop_sends_term", f, dir, |rt| async move {
        let spec = sh(
            f,
            "term",
            "trap 'exit 143' TERM; sleep 1000 & echo ready; wait",
        );
        let id = spec.id.clone();
        rt.create(spec).await.ctx("create")?;
        rt.start(&id).await.ctx("start")?;
        wait_logged(&*rt, &id, "ready").await?;
        let st = rt.stop(&id, Duration::from_secs(20)).await.ctx("stop")?;
        check(
            st.state == ContainerState::Exited && st.exit_code == Some(143),
            || format!("want exit 143 from the trap: {st:?}"),
        )?;
        check(
            st.stop.term_sent_at.is_some() && st.stop.kill_sent_at.is_none(),
            || format!("want SIGTERM only: {:?}", st.stop),
        )?;

        let spec = ContainerSpec::new(self::id("sleep"), f.busybox(), &["sleep", "1000"]);
        let id = spec.id.clone();
        rt.create(spec).await.ctx("create sleep")?;
        rt.start(&id).await.ctx("start sleep")?;
        let st = rt
            .stop(&id, Duration::from_secs(1))
            .await
            .ctx("stop sleep")?;
        check(
            st.state == ContainerState::Exited && st.stop.term_sent_at.is_some(),
            || format!("sleep: {st:?}"),
        )?;
        let by_term = st.signal == Some(15) && st.stop.kill_sent_at.is_none();
        let by_kill = st.signal == Some(9) && st.stop.kill_sent_at.is_some();
        check(by_term || by_kill, || {
            format!("sleep ended by neither TERM nor KILL after it: {st:?}")
        })?;
        let again = rt
            .stop(&id, Duration::from_secs(1))
            .await
            .ctx("stop an exited container")?;
        check(again.state == ContainerState::Exited, || {
            format!("{again:?}")
        })
    })
    .await
}

/// A process ignoring SIGTERM gets SIGKILL once the grace period is over.
pub async fn stop_kills_after_the_grace_period(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario(
        "stop_kills_after_the_grace_period",
        f,
        dir,
        |rt| async move {
            let spec = sh(
                f,
                "kill",
                "trap '' TERM; echo ready; while true; do sleep 1; done",
            );
            let id = spec.id.clone();
            rt.create(spec).await.ctx("create")?;
            rt.start(&id).await.ctx("start")?;
            wait_logged(&*rt, &id, "ready").await?;
            let grace = Duration::from_millis(500);
            let st = rt.stop(&id, grace).await.ctx("stop")?;
            check(
                st.signal == Some(9)
                    && st.exit_code == Some(137)
                    && st.reason == Some(Reason::Error),
                || format!("want SIGKILL, 137: {st:?}"),
            )?;
            let (Some(term), Some(kill)) = (st.stop.term_sent_at, st.stop.kill_sent_at) else {
                return Err(format!("want SIGTERM then SIGKILL: {:?}", st.stop));
            };
            check(
                kill.duration_since(term).unwrap_or_default() >= grace,
                || format!("SIGKILL before the grace period: {:?}", st.stop),
            )
        },
    )
    .await
}

/// The container's command is PID 1 of its own PID namespace, with its own hostname.
pub async fn own_pid_namespace_and_hostname(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("own_pid_namespace_and_hostname", f, dir, |rt| async move {
        check(rt.isolation().is_isolated(), || {
            format!("needs an isolated runtime: {:?}", rt.isolation())
        })?;
        let mut spec = sh(
            f,
            "pidns",
            "echo pid=$$; hostname; cat /etc/hostname; ls /proc | grep -c '^[0-9]'",
        );
        spec.sandbox.hostname = Some("contract-host".into());
        let st = run(&*rt, spec).await?;
        let lines = log_lines(&st);
        check(st.exit_code == Some(0), || format!("{st:?} {lines:?}"))?;
        check(lines.first().map(String::as_str) == Some("pid=1"), || {
            format!("not PID 1: {lines:?}")
        })?;
        check(
            lines.get(1..3)
                == Some(&["contract-host".to_string(), "contract-host".to_string()][..]),
            || format!("hostname: {lines:?}"),
        )?;
        // Its /proc shows its own namespace's few processes, not the host's.
        let procs: usize = lines
            .get(3)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(usize::MAX);
        check(procs <= 4, || {
            format!("/proc shows {procs} processes: {lines:?}")
        })
    })
    .await
}

/// A container given the pod's network namespace runs in it (and so does an exec).
pub async fn joins_the_pod_network_namespace(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("joins_the_pod_network_namespace", f, dir, |rt| async move {
        use std::os::unix::fs::MetadataExt;
        check(rt.isolation().is_isolated(), || {
            format!("needs an isolated runtime: {:?}", rt.isolation())
        })?;
        let netns = f.pod_netns()?;
        let want = format!(
            "net:[{}]",
            std::fs::metadata(&netns).ctx("stat the pod's netns")?.ino()
        );
        let host = std::fs::read_link("/proc/self/ns/net").ctx("the host's netns")?;
        check(host.to_string_lossy() != want, || {
            "the pod's netns is the host's".into()
        })?;
        let mut spec = sh(
            f,
            "netns",
            "readlink /proc/self/ns/net; sleep 1000 & echo ready; wait",
        );
        spec.sandbox.netns = Some(netns);
        let id = spec.id.clone();
        rt.create(spec).await.ctx("create")?;
        rt.start(&id).await.ctx("start")?;
        let st = wait_logged(&*rt, &id, "ready").await?;
        let lines = log_lines(&st);
        check(lines.first() == Some(&want), || {
            format!("want {want}: {lines:?}")
        })?;
        let out = rt
            .exec(&id, ExecRequest::new(&["readlink", "/proc/self/ns/net"]))
            .await
            .ctx("exec")?;
        check(String::from_utf8_lossy(&out.stdout).trim() == want, || {
            format!("exec in {want}: {out:?}")
        })
    })
    .await
}

/// Exec runs in the running container and returns its stdout, stderr and exit code.
pub async fn exec_collects_output_and_exit_code(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario(
        "exec_collects_output_and_exit_code",
        f,
        dir,
        |rt| async move {
            let mut spec = ContainerSpec::new(id("exec"), f.busybox(), &["sleep", "1000"]);
            spec.sandbox.hostname = Some("exec-host".into());
            spec.env.push(crate::EnvVar {
                name: "GREETING".into(),
                value: "hello".into(),
            });
            let id = spec.id.clone();
            rt.create(spec).await.ctx("create")?;
            rt.start(&id).await.ctx("start")?;
            if rt.isolation().is_isolated() {
                let out = rt
                    .exec(&id, ExecRequest::new(&["cat", "/etc/hostname"]))
                    .await
                    .ctx("exec cat")?;
                check(out.stdout == b"exec-host\n" && out.exit_code == 0, || {
                    format!("cat /etc/hostname: {out:?}")
                })?;
            }
            let out = rt
                .exec(
                    &id,
                    ExecRequest::new(&["sh", "-c", "echo $GREETING; echo oops >&2; exit 7"]),
                )
                .await
                .ctx("exec sh")?;
            check(
                out.stdout == b"hello\n" && out.stderr == b"oops\n" && out.exit_code == 7,
                || format!("exec sh: {out:?}"),
            )?;
            // stdin, whole, then end of file.
            let mut cat = ExecRequest::new(&["sh", "-c", "cat; echo done"]);
            cat.stdin = Some(b"piped in\n".to_vec());
            let out = rt.exec(&id, cat).await.ctx("exec cat with stdin")?;
            check(
                out.stdout == b"piped in\ndone\n" && out.exit_code == 0,
                || format!("exec cat with stdin: {out:?}"),
            )?;
            // exec_streaming: the same output as chunks, and the exit code.
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let streamed = ExecRequest::new(&["sh", "-c", "echo early; echo late >&2; exit 5"]);
            let code = rt
                .exec_streaming(&id, streamed, tx)
                .await
                .ctx("exec_streaming")?;
            let mut chunks = Vec::new();
            while let Some(c) = rx.recv().await {
                chunks.push(c);
            }
            let (mut so, mut se) = (Vec::new(), Vec::new());
            for c in chunks {
                match c {
                    crate::ExecChunk::Stdout(b) => so.extend(b),
                    crate::ExecChunk::Stderr(b) => se.extend(b),
                }
            }
            check(code == 5 && so == b"early\n" && se == b"late\n", || {
                format!("exec_streaming: {code} {so:?} {se:?}")
            })?;
            // exec_streaming streams: the first line arrives while the command still runs
            // (it waits for a file that only a second exec, made after that line came,
            // creates), so an exec that collected until the end would time out here.
            let go = format!(
                "/tmp/navarch-exec-stream-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            );
            let script =
                format!("echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second");
            let mut waiting = ExecRequest::new(&["sh", "-c", &script]);
            waiting.timeout = Duration::from_secs(20);
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let drive = async {
                let first = rx.recv().await;
                let first_ok =
                    matches!(&first, Some(crate::ExecChunk::Stdout(b)) if b == b"first\n");
                let touched = rt.exec(&id, ExecRequest::new(&["touch", &go])).await;
                let mut rest = Vec::new();
                while let Some(crate::ExecChunk::Stdout(b)) = rx.recv().await {
                    rest.extend(b);
                }
                (first, first_ok, touched, rest)
            };
            let (code, (first, first_ok, touched, rest)) =
                tokio::join!(rt.exec_streaming(&id, waiting, tx), drive);
            let _ = rt.exec(&id, ExecRequest::new(&["rm", "-f", &go])).await;
            check(first_ok, || {
                format!("exec_streaming: the first line came as {first:?}, the exec ended {code:?}")
            })?;
            check(
                matches!(touched, Ok(ref o) if o.exit_code == 0)
                    && matches!(code, Ok(0))
                    && rest == b"second\n",
                || format!("exec_streaming after the file: {touched:?} {code:?} {rest:?}"),
            )?;
            // An exec past its timeout is an error, and its command does not linger.
            let mut slow = ExecRequest::new(&["sleep", "997"]);
            slow.timeout = Duration::from_millis(300);
            let r = rt.exec(&id, slow).await;
            check(matches!(r, Err(RuntimeError::ExecTimeout { .. })), || {
                format!("an exec past its timeout: {r:?}")
            })?;
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                // The pattern does not match its own command line.
                let script =
                    "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'sleep 99[7]'";
                let out = rt
                    .exec(&id, ExecRequest::new(&["sh", "-c", script]))
                    .await
                    .ctx("look for the command")?;
                if out.stdout == b"0\n" {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!("the timed-out exec's command still runs: {out:?}"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            rt.stop(&id, Duration::from_millis(100)).await.ctx("stop")?;
            let r = rt.exec(&id, ExecRequest::new(&["true"])).await;
            check(matches!(r, Err(RuntimeError::InvalidState { .. })), || {
                format!("exec in an exited container: {r:?}")
            })
        },
    )
    .await
}

/// An attached exec's channels: its input's sender, its output's receiver, and its io.
fn attached(
    tty: bool,
) -> (
    tokio::sync::mpsc::Sender<crate::ExecInput>,
    tokio::sync::mpsc::Receiver<crate::ExecChunk>,
    crate::ExecIo,
) {
    let (in_tx, input) = tokio::sync::mpsc::channel(8);
    let (output, out_rx) = tokio::sync::mpsc::channel(64);
    let io = crate::ExecIo {
        tty,
        stdin: true,
        input,
        output,
    };
    (in_tx, out_rx, io)
}

/// An attached exec's output, read until it holds `want` (or the wait is over).
async fn read_until(
    rx: &mut tokio::sync::mpsc::Receiver<crate::ExecChunk>,
    seen: &mut Vec<u8>,
    want: &str,
    stderr: &mut Vec<u8>,
) -> Step<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(seen).contains(want) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(crate::ExecChunk::Stdout(b))) => seen.extend(b),
            Ok(Some(crate::ExecChunk::Stderr(b))) => stderr.extend(b),
            Ok(None) => {
                return Err(format!(
                    "the exec ended before {want:?}: {:?}",
                    String::from_utf8_lossy(seen)
                ))
            }
            Err(_) => {
                return Err(format!(
                    "no {want:?} in {:?}",
                    String::from_utf8_lossy(seen)
                ))
            }
        }
    }
    Ok(())
}

/// An attached exec: stdin reaches the command as it is sent (each line answered before the
/// next is sent) and closing it is end of file; with a TTY the command runs on a terminal
/// (stdin is one, stderr joins stdout) whose size follows resizes, and its exit code comes
/// back.
pub async fn attached_exec_streams_stdin_and_runs_a_terminal(
    f: &dyn RuntimeFactory,
    dir: &Path,
) -> Outcome {
    use crate::attach::ExecInput;
    scenario(
        "attached_exec_streams_stdin_and_runs_a_terminal",
        f,
        dir,
        |rt| async move {
            let spec = ContainerSpec::new(id("attach"), f.busybox(), &["sleep", "1000"]);
            let id = spec.id.clone();
            rt.create(spec).await.ctx("create")?;
            rt.start(&id).await.ctx("start")?;

            // Without a TTY: `cat` answers each line while stdin is still open.
            let (in_tx, mut out_rx, io) = attached(false);
            let mut req = ExecRequest::new(&["sh", "-c", "cat; echo closed"]);
            req.timeout = WAIT;
            let drive = async {
                let (mut seen, mut err) = (Vec::new(), Vec::new());
                for line in ["one", "two"] {
                    in_tx
                        .send(ExecInput::Stdin(format!("{line}\n").into_bytes()))
                        .await
                        .map_err(|_| "input closed")?;
                    read_until(&mut out_rx, &mut seen, &format!("{line}\n"), &mut err).await?;
                }
                in_tx
                    .send(ExecInput::CloseStdin)
                    .await
                    .map_err(|_| "input closed")?;
                read_until(&mut out_rx, &mut seen, "closed\n", &mut err).await?;
                Ok::<_, String>(seen)
            };
            let (code, seen) = tokio::join!(rt.exec_attached(&id, req, io), drive);
            let seen = seen?;
            check(
                matches!(code, Ok(0)) && seen == b"one\ntwo\nclosed\n",
                || {
                    format!(
                        "attached cat: {code:?} {:?}",
                        String::from_utf8_lossy(&seen)
                    )
                },
            )?;

            // With a TTY: an interactive shell on a terminal of the size sent, then resized.
            let (in_tx, mut out_rx, io) = attached(true);
            let mut req = ExecRequest::new(&["sh"]);
            req.timeout = WAIT;
            let drive = async {
                let (mut seen, mut err) = (Vec::new(), Vec::new());
                let send = |i: ExecInput| {
                    let tx = in_tx.clone();
                    async move { tx.send(i).await.map_err(|_| "input closed".to_string()) }
                };
                for (width, height) in [(100u16, 40u16), (120, 50)] {
                    send(ExecInput::Resize { width, height }).await?;
                    // runc relays a resize to the container's terminal on its own time:
                    // ask until the size shows.
                    let want = format!("{height} {width}");
                    let deadline = tokio::time::Instant::now() + WAIT;
                    loop {
                        send(ExecInput::Stdin(b"stty size\n".to_vec())).await?;
                        let mut round = Vec::new();
                        let r = tokio::time::timeout(
                            Duration::from_millis(500),
                            read_until(&mut out_rx, &mut round, &want, &mut err),
                        )
                        .await;
                        seen.extend(&round);
                        if matches!(r, Ok(Ok(()))) || String::from_utf8_lossy(&seen).contains(&want)
                        {
                            break;
                        }
                        if tokio::time::Instant::now() >= deadline {
                            return Err(format!(
                                "the terminal never showed {want}: {:?}",
                                String::from_utf8_lossy(&seen)
                            ));
                        }
                    }
                }
                send(ExecInput::Stdin(
                    b"test -t 0 && echo tty-$((6*7)); echo err-$((1+1)) >&2; exit 4\n".to_vec(),
                ))
                .await?;
                read_until(&mut out_rx, &mut seen, "err-2", &mut err).await?;
                while let Some(c) = out_rx.recv().await {
                    match c {
                        crate::ExecChunk::Stdout(b) => seen.extend(b),
                        crate::ExecChunk::Stderr(b) => err.extend(b),
                    }
                }
                Ok::<_, String>((seen, err))
            };
            let (code, out) = tokio::join!(rt.exec_attached(&id, req, io), drive);
            let (seen, err) = out?;
            let text = String::from_utf8_lossy(&seen);
            check(
                matches!(code, Ok(4))
                    && text.contains("tty-42")
                    && text.contains("err-2")
                    && err.is_empty(),
                || format!("a shell on a terminal: {code:?} {text:?}, stderr {err:?}"),
            )?;

            // A caller that goes away hangs the terminal up: its command does not outlive it.
            let (in_tx, mut out_rx, io) = attached(true);
            let mut req = ExecRequest::new(&["sh", "-c", "echo up-$((2+3)); exec sleep 996"]);
            req.timeout = Duration::from_secs(3600);
            let drive = async {
                let (mut seen, mut err) = (Vec::new(), Vec::new());
                read_until(&mut out_rx, &mut seen, "up-5", &mut err).await?;
                drop(in_tx);
                while out_rx.recv().await.is_some() {}
                Ok::<_, String>(())
            };
            let (code, driven) = tokio::time::timeout(WAIT, async {
                tokio::join!(rt.exec_attached(&id, req, io), drive)
            })
            .await
            .map_err(|_| "an exec outlived its caller".to_string())?;
            driven?;
            check(code.is_ok(), || format!("a hung-up exec: {code:?}"))?;
            let script =
                "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'sleep 99[6]'";
            let out = rt
                .exec(&id, ExecRequest::new(&["sh", "-c", script]))
                .await
                .ctx("look for the hung-up command")?;
            check(out.stdout == b"0\n", || {
                format!("the hung-up exec's command still runs: {out:?}")
            })?;
            rt.stop(&id, Duration::from_millis(100)).await.ctx("stop")?;
            Ok(())
        },
    )
    .await
}

/// A container allocating past its memory limit is killed by the cgroup: OOMKilled.
pub async fn memory_hog_is_oom_killed(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario("memory_hog_is_oom_killed", f, dir, |rt| async move {
        check(rt.isolation().is_isolated(), || {
            format!("needs an isolated runtime: {:?}", rt.isolation())
        })?;
        let mut spec = sh(
            f,
            "oom",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        );
        spec.resources.memory_limit_bytes = Some(32 * 1024 * 1024);
        let st = run(&*rt, spec).await?;
        check(
            st.reason == Some(Reason::OomKilled) && st.exit_code == Some(137),
            || format!("want OOMKilled, 137: {st:?} {:?}", log_lines(&st)),
        )
    })
    .await
}

/// Writes to the root filesystem stay in the container's own layer, never the image's;
/// with a read-only root filesystem they fail.
pub async fn root_filesystem_writes_stay_in_the_container(
    f: &dyn RuntimeFactory,
    dir: &Path,
) -> Outcome {
    scenario(
        "root_filesystem_writes_stay_in_the_container",
        f,
        dir,
        |rt| async move {
            check(rt.isolation().is_isolated(), || {
                format!("needs an isolated runtime: {:?}", rt.isolation())
            })?;
            let image = f.busybox_rootfs();
            let st = run(
                &*rt,
                sh(
                    f,
                    "rw",
                    "echo x > /written && rm /etc/passwd && cat /written",
                ),
            )
            .await?;
            check(st.exit_code == Some(0) && log_lines(&st) == ["x"], || {
                format!("{st:?} {:?}", log_lines(&st))
            })?;
            check(
                !image.join("written").exists() && image.join("etc/passwd").exists(),
                || "the write reached the image".into(),
            )?;
            let mut spec = sh(f, "ro", "echo x > /written2");
            spec.read_only_root_fs = true;
            spec.mounts.push(Mount {
                source: MountSource::Tmpfs {
                    size_bytes: Some(1 << 20),
                },
                container_path: "/scratch".into(),
                read_only: false,
            });
            let st = run(&*rt, spec).await?;
            let lines = log_lines(&st);
            check(
                st.exit_code != Some(0)
                    && lines.iter().any(|l| l.contains("Read-only file system")),
                || format!("{st:?} {lines:?}"),
            )?;
            check(!image.join("written2").exists(), || {
                "the write reached the image".into()
            })?;
            let mut spec = sh(f, "ro-mount", "echo x > /scratch/f && cat /scratch/f");
            spec.read_only_root_fs = true;
            spec.mounts.push(Mount {
                source: MountSource::Tmpfs {
                    size_bytes: Some(1 << 20),
                },
                container_path: "/scratch".into(),
                read_only: false,
            });
            let st = run(&*rt, spec).await?;
            check(st.exit_code == Some(0) && log_lines(&st) == ["x"], || {
                format!(
                    "a writable mount in a read-only root: {st:?} {:?}",
                    log_lines(&st)
                )
            })
        },
    )
    .await
}

/// A new runtime over the same state dir finds the running container, with the same pid,
/// and stops it.
pub async fn reattach_finds_running_containers(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario(
        "reattach_finds_running_containers",
        f,
        dir,
        |rt| async move {
            let mut spec = sh(f, "reattach", "echo ready; while true; do sleep 1; done");
            spec.labels.insert("pod".into(), "p1".into());
            let id = spec.id.clone();
            rt.create(spec).await.ctx("create")?;
            let started = rt.start(&id).await.ctx("start")?;
            wait_logged(&*rt, &id, "ready").await?;
            drop(rt);
            let rt = f.runtime(dir).ctx("a second runtime")?;
            let all = rt.list().await.ctx("list")?;
            let found = all
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(|| format!("{id} not listed: {all:?}"))?;
            check(
                found.state == ContainerState::Running
                    && found.pid == started.pid
                    && found.pid.is_some(),
                || format!("want running as pid {:?}: {found:?}", started.pid),
            )?;
            check(
                found.labels.get("pod").map(String::as_str) == Some("p1"),
                || format!("labels: {found:?}"),
            )?;
            let st = rt
                .stop(&id, Duration::from_secs(1))
                .await
                .ctx("stop from the second runtime")?;
            check(st.state == ContainerState::Exited, || format!("{st:?}"))
        },
    )
    .await
}

/// A log past its size rotates, and what is kept is the newest output, contiguous.
pub async fn log_rotation_keeps_the_newest_bytes(f: &dyn RuntimeFactory, dir: &Path) -> Outcome {
    scenario(
        "log_rotation_keeps_the_newest_bytes",
        f,
        dir,
        |rt| async move {
            let mut spec = sh(f, "rotate", "seq 1 5000");
            spec.log.max_size = 4096;
            spec.log.max_files = 2;
            let st = run(&*rt, spec).await?;
            let lines = log_lines(&st);
            check(lines.last().map(String::as_str) == Some("5000"), || {
                format!("last line: {:?}", lines.last())
            })?;
            let first: u32 = lines.first().and_then(|l| l.parse().ok()).unwrap_or(0);
            check(first > 1, || "nothing was rotated away".into())?;
            let want: Vec<String> = (first..=5000).map(|n| n.to_string()).collect();
            check(lines == want, || "the kept lines are not contiguous".into())?;
            let sizes: Vec<u64> = (0..3)
                .map(|n| {
                    std::fs::metadata(rotated(&st.log_path, n))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .collect();
            check(
                sizes[0] <= 4096 && sizes[1] <= 4096 && sizes[1] > 0 && sizes[2] == 0,
                || format!("file sizes {sizes:?}"),
            )
        },
    )
    .await
}
