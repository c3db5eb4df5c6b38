//! The runtime contract run against the `oci` runtime (runc). Needs root and runc
//! (scripts/install-deps.sh installs Debian's `runc`); without either these tests fail,
//! they do not skip. Every scenario of the contract applies to runc and runs here.

use std::path::{Path, PathBuf};

use navarch_runtime::contract::{self, RuntimeFactory};
use navarch_runtime::{ContainerRuntime, ImageStore, OciConfig, OciRuntime, RuntimeError};

struct Oci {
    _dir: tempfile::TempDir,
    images: ImageStore,
    rootfs: PathBuf,
    /// A process in a network namespace of its own, as a pod sandbox's would be.
    netns_holder: std::sync::Mutex<Option<std::process::Child>>,
    /// This test's own parent group: removing it at the end cannot race another test's
    /// runc making a group under it.
    parent: String,
}

/// A parent cgroup name no other test of this process uses.
fn cgroup_parent() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("navarch-oci-test-{}-{n}", std::process::id())
}

fn config(state_dir: PathBuf, images: ImageStore, parent: &str) -> OciConfig {
    let mut config = OciConfig::new(state_dir, images, env!("CARGO_BIN_EXE_navarch-shim"));
    config.cgroup_parent = parent.to_string();
    config
}

impl Oci {
    fn new() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the oci runtime's contract needs root (CI runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::new(dir.path().join("images")).unwrap();
        let busybox = images
            .ensure_busybox()
            .unwrap_or_else(|e| panic!("{e} (scripts/install-deps.sh installs busybox-static)"));
        Oci {
            rootfs: busybox.rootfs.unwrap(),
            _dir: dir,
            images,
            netns_holder: Default::default(),
            parent: cgroup_parent(),
        }
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        if let Some(mut holder) = self.netns_holder.lock().unwrap().take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        // The last test out removes the (then empty) parent groups.
        navarch_runtime::cgroup::Cgroups::detect(Path::new("/sys/fs/cgroup"), &self.parent)
            .remove_parent_in_every_hierarchy();
    }
}

impl RuntimeFactory for Oci {
    fn runtime(&self, state_dir: &Path) -> Result<Box<dyn ContainerRuntime>, RuntimeError> {
        let rt = OciRuntime::new(config(
            state_dir.join("state"),
            self.images.clone(),
            &self.parent,
        ))?;
        Ok(Box::new(rt))
    }

    fn busybox(&self) -> String {
        "busybox".into()
    }

    fn busybox_rootfs(&self) -> PathBuf {
        self.rootfs.clone()
    }

    fn pod_netns(&self) -> Result<PathBuf, String> {
        let mut holder = self.netns_holder.lock().unwrap();
        if holder.is_none() {
            let child = std::process::Command::new("unshare")
                .args(["--net", "sleep", "1000"])
                .spawn()
                .map_err(|e| format!("unshare --net: {e}"))?;
            let ns = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
            *holder = Some(child);
            let host = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read_link(&ns).map_err(|e| e.to_string())? == host {
                if std::time::Instant::now() > deadline {
                    return Err("unshare --net never left the host's netns".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let pid = holder.as_ref().map(|c| c.id()).unwrap_or_default();
        Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let f = Oci::new();
            let dir = tempfile::tempdir().unwrap();
            contract::$name(&f, dir.path()).await.unwrap_or_else(|e| panic!("{e}"));
        }
    )*};
}

scenarios!(
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

#[test]
fn every_contract_scenario_has_a_test_here() {
    assert_eq!(contract::ALL.len(), 13);
}

/// runc knows the container the runtime started, with the same pid, from a second runtime
/// too; an exec's env overrides the container's and a missing binary is an error; limits
/// reach the container's cgroup files; remove deletes it from runc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runc_state_matches_and_limits_reach_the_cgroup() {
    use navarch_runtime::cgroup::CgroupVersion;
    let f = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    let rt = OciRuntime::new(config(
        dir.path().join("state"),
        f.images.clone(),
        &f.parent,
    ))
    .unwrap();
    let id =
        navarch_runtime::ContainerId::new(format!("runc-state-{}", std::process::id())).unwrap();
    let mut spec = navarch_runtime::ContainerSpec::new(id.clone(), "busybox", &["sleep", "1000"]);
    spec.resources.cpu_limit_millis = Some(500);
    spec.resources.memory_limit_bytes = Some(64 << 20);
    spec.resources.pids_limit = Some(50);
    spec.env.push(navarch_runtime::EnvVar {
        name: "GREETING".into(),
        value: "hello".into(),
    });
    rt.create(spec).await.unwrap();
    let st = rt.start(&id).await.unwrap();
    // An exec's environment overrides the container's.
    let mut exec = navarch_runtime::ExecRequest::new(&["sh", "-c", "echo $GREETING"]);
    exec.env.push(navarch_runtime::EnvVar {
        name: "GREETING".into(),
        value: "bye".into(),
    });
    let out = rt.exec(&id, exec).await.unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.exit_code),
        (&b"bye\n"[..], 0),
        "{out:?}"
    );
    let missing = rt
        .exec(&id, navarch_runtime::ExecRequest::new(&["/no/such/binary"]))
        .await;
    assert!(missing.is_err(), "{missing:?}");
    let again = OciRuntime::new(config(
        dir.path().join("state"),
        f.images.clone(),
        &f.parent,
    ))
    .unwrap();
    let runc = again.runc_state(&id).await.unwrap().expect("runc knows it");
    assert_eq!(
        (runc.status.as_str(), Some(runc.pid)),
        ("running", st.pid),
        "{runc:?}"
    );
    let cg = rt.cgroups().container(&id);
    let read = |d: &Path, f: &str| {
        std::fs::read_to_string(d.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    match cg.version {
        CgroupVersion::V1 => {
            assert_eq!(
                read(&cg.dirs[0], "memory.limit_in_bytes"),
                (64u64 << 20).to_string()
            );
            assert_eq!(read(&cg.dirs[1], "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cg.dirs[1], "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cg.dirs[2], "pids.max"), "50");
        }
        CgroupVersion::V2 => {
            assert_eq!(read(&cg.dirs[0], "memory.max"), (64u64 << 20).to_string());
            assert_eq!(read(&cg.dirs[0], "cpu.max"), "50000 100000");
            assert_eq!(read(&cg.dirs[0], "pids.max"), "50");
        }
    }
    let procs = read(&cg.dirs[0], "cgroup.procs");
    assert_eq!(procs, st.pid.unwrap().to_string());
    again.remove(&id).await.unwrap();
    assert_eq!(rt.runc_state(&id).await.unwrap(), None);
    assert!(
        cg.dirs.iter().all(|d| !d.exists()),
        "cgroups left: {:?}",
        cg.dirs
    );
    assert!(!dir
        .path()
        .join("state/containers")
        .join(id.as_str())
        .exists());
}

/// The environment variable that makes [`oci_agent_that_gets_killed`] act.
const KILLED_AGENT_DIR: &str = "NAVARCH_TEST_KILLED_OCI_AGENT_DIR";

/// Not a test: the "agent" process `a_killed_agent_leaves_its_runc_containers_running`
/// starts (this test binary, run with `--ignored --exact` and the env var) and SIGKILLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a helper process of a_killed_agent_leaves_its_runc_containers_running"]
async fn oci_agent_that_gets_killed() {
    let dir = PathBuf::from(std::env::var(KILLED_AGENT_DIR).expect("run by the killed-agent test"));
    let id = navarch_runtime::ContainerId::new(format!("killed-oci-agent-{}", std::process::id()))
        .unwrap();
    let spec = navarch_runtime::ContainerSpec::new(
        id.clone(),
        "busybox",
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 42' TERM; echo up; sleep 1000 & wait",
        ],
    );
    let images = ImageStore::new(dir.join("images")).unwrap();
    images.ensure_busybox().unwrap();
    let mut config = OciConfig::new(
        dir.join("state"),
        images,
        env!("CARGO_BIN_EXE_navarch-shim"),
    );
    config.cgroup_parent = std::env::var("NAVARCH_TEST_CGROUP_PARENT").unwrap();
    let rt = OciRuntime::new(config).unwrap();
    rt.create(spec).await.unwrap();
    let st = rt.start(&id).await.unwrap();
    println!("started {} {}", id, st.pid.unwrap());
    std::future::pending::<()>().await;
}

/// An agent killed with SIGKILL leaves its runc containers running under their shims; a new
/// runtime over the same state dir finds them with the same pids, and the exit and output
/// the orphaned shim recorded.
#[test]
fn a_killed_agent_leaves_its_runc_containers_running() {
    use std::io::BufRead;
    let f = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = RemoveAll {
        state: dir.path().join("state"),
        images: dir.path().join("images"),
        parent: f.parent.clone(),
    };
    let mut agent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "oci_agent_that_gets_killed",
            "--nocapture",
        ])
        .env(KILLED_AGENT_DIR, dir.path())
        .env("NAVARCH_TEST_CGROUP_PARENT", &f.parent)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(agent.stdout.take().unwrap()).lines();
    let (id, pid) = loop {
        let line = lines
            .next()
            .expect("the agent ended before starting its container")
            .unwrap();
        if let Some(rest) = line.strip_prefix("started ") {
            let (id, pid) = rest.split_once(' ').unwrap();
            break (
                navarch_runtime::ContainerId::new(id).unwrap(),
                pid.parse::<i32>().unwrap(),
            );
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    agent.wait().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let images = ImageStore::new(dir.path().join("images")).unwrap();
        let runtime = OciRuntime::new(config(dir.path().join("state"), images, &f.parent)).unwrap();
        let all = runtime.list().await.unwrap();
        let st = all.iter().find(|c| c.id == id).expect("listed");
        assert_eq!(
            (st.state, st.pid),
            (navarch_runtime::ContainerState::Running, Some(pid)),
            "{st:?}"
        );
        let runc = runtime
            .runc_state(&id)
            .await
            .unwrap()
            .expect("runc knows it");
        assert_eq!((runc.status.as_str(), runc.pid), ("running", pid));
        let st = runtime
            .stop(&id, std::time::Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(st.exit_code, Some(42), "{st:?}");
        assert!(st.stop.kill_sent_at.is_none());
        let log = std::fs::read_to_string(&st.log_path).unwrap();
        assert!(
            log.contains(" stdout F up") && log.contains(" stdout F bye"),
            "{log}"
        );
        runtime.remove(&id).await.unwrap();
    });
}

/// Removes every container of a state dir when dropped, so a failing test leaves no
/// container, mount or cgroup behind.
struct RemoveAll {
    state: PathBuf,
    images: PathBuf,
    parent: String,
}

impl Drop for RemoveAll {
    fn drop(&mut self) {
        let (Ok(images), Ok(rt)) = (
            ImageStore::new(&self.images),
            tokio::runtime::Runtime::new(),
        ) else {
            return;
        };
        let Ok(runtime) = OciRuntime::new(config(self.state.clone(), images, &self.parent)) else {
            return;
        };
        rt.block_on(async {
            for c in runtime.list().await.unwrap_or_default() {
                let _ = runtime.remove(&c.id).await;
            }
        });
    }
}

/// An imported image's config gives the command, environment and working dir; an image
/// without a root filesystem (a host image) cannot be a bundle: InvalidImage at create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_images_run_with_their_config_and_host_images_are_refused() {
    let f = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&f.rootfs)
        .arg(layout.join("rootfs"))
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(
        layout.join("config.json"),
        r#"{"entrypoint":["sh","-c"],"cmd":["echo $FOO in $(pwd)"],"env":["FOO=bar"],"workingDir":"/tmp"}"#,
    )
    .unwrap();
    f.images.import("example.com/mine:v1", &layout).unwrap();
    f.images
        .add_host_image(
            "host",
            &navarch_runtime::ImageConfig {
                cmd: vec!["/bin/sh".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let rt = OciRuntime::new(config(
        dir.path().join("state"),
        f.images.clone(),
        &f.parent,
    ))
    .unwrap();
    let id = navarch_runtime::ContainerId::new(format!("imported-{}", std::process::id())).unwrap();
    rt.create(navarch_runtime::ContainerSpec::new(
        id.clone(),
        "example.com/mine:v1",
        &[],
    ))
    .await
    .unwrap();
    rt.start(&id).await.unwrap();
    let deadline = std::time::Instant::now() + contract::WAIT;
    let st = loop {
        let st = rt.status(&id).await.unwrap();
        if st.state == navarch_runtime::ContainerState::Exited {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "never exited: {st:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let log = std::fs::read_to_string(&st.log_path).unwrap();
    assert_eq!(st.exit_code, Some(0), "{st:?} {log}");
    assert!(log.contains(" stdout F bar in /tmp"), "{log}");
    rt.remove(&id).await.unwrap();

    let host = navarch_runtime::ContainerId::new(format!("host-{}", std::process::id())).unwrap();
    let r = rt
        .create(navarch_runtime::ContainerSpec::new(
            host.clone(),
            "host",
            &[],
        ))
        .await;
    assert!(matches!(r, Err(RuntimeError::InvalidImage { .. })), "{r:?}");
    assert!(rt.list().await.unwrap().is_empty());
}
