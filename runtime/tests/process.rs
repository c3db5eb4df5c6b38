//! The runtime contract run against the `process` runtime: isolated (needs root, as here
//! and in CI; without root these tests fail, they do not skip) and not isolated.

use std::path::{Path, PathBuf};

use navarch_runtime::contract::{self, RuntimeFactory};
use navarch_runtime::{
    ContainerRuntime, ImageStore, IsolationMode, ProcessConfig, ProcessRuntime, RuntimeError,
};

struct Process {
    _dir: tempfile::TempDir,
    images: ImageStore,
    rootfs: PathBuf,
    mode: IsolationMode,
    /// A process in a network namespace of its own, as a pod sandbox's would be.
    netns_holder: std::sync::Mutex<Option<std::process::Child>>,
    /// This test's own parent group.
    parent: String,
}

/// A parent cgroup name no other test of this process uses: a test removing its (empty)
/// parent at the end can never race another test making a group under it.
fn cgroup_parent() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("navarch-test-{}-{n}", std::process::id())
}

impl Process {
    fn new(mode: IsolationMode) -> Self {
        if mode == IsolationMode::Auto {
            assert!(
                nix::unistd::geteuid().is_root(),
                "the isolated process runtime's contract needs root (CI runs as root)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::new(dir.path().join("images")).unwrap();
        let busybox = images
            .ensure_busybox()
            .unwrap_or_else(|e| panic!("{e} (scripts/install-deps.sh installs busybox-static)"));
        Process {
            rootfs: busybox.rootfs.unwrap(),
            _dir: dir,
            images,
            mode,
            netns_holder: Default::default(),
            parent: cgroup_parent(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut holder) = self.netns_holder.lock().unwrap().take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        // The test's own parent groups, empty by now.
        navarch_runtime::cgroup::Cgroups::detect(Path::new("/sys/fs/cgroup"), &self.parent)
            .remove_parent();
    }
}

impl RuntimeFactory for Process {
    fn runtime(&self, state_dir: &Path) -> Result<Box<dyn ContainerRuntime>, RuntimeError> {
        let mut config = ProcessConfig::new(
            state_dir.join("state"),
            self.images.clone(),
            env!("CARGO_BIN_EXE_navarch-shim"),
        );
        config.cgroup_parent = self.parent.clone();
        config.isolation = self.mode;
        Ok(Box::new(ProcessRuntime::new(config)?))
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
            // Wait until unshare has moved into its namespace (then execed sleep).
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

macro_rules! isolated {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let f = Process::new(IsolationMode::Auto);
            let dir = tempfile::tempdir().unwrap();
            let rt = f.runtime(dir.path()).unwrap();
            assert!(rt.isolation().is_isolated(), "{:?}", rt.isolation());
            drop(rt);
            contract::$name(&f, dir.path()).await.unwrap_or_else(|e| panic!("{e}"));
        }
    )*};
}

isolated!(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_isolated_passes_the_scenarios_that_need_no_isolation() {
    let f = Process::new(IsolationMode::Off);
    let dir = tempfile::tempdir().unwrap();
    let rt = f.runtime(dir.path()).unwrap();
    assert!(!rt.isolation().is_isolated());
    drop(rt);
    let failures = contract::run_all(&f, dir.path(), contract::UNISOLATED).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_memory_and_pids_limits_reach_the_cgroup_files() {
    use navarch_runtime::cgroup::CgroupVersion;
    use navarch_runtime::plan::LaunchPlan;
    let f = Process::new(IsolationMode::Auto);
    let dir = tempfile::tempdir().unwrap();
    let rt = f.runtime(dir.path()).unwrap();
    let id = navarch_runtime::ContainerId::new(format!("limits-{}", std::process::id())).unwrap();
    let mut spec = navarch_runtime::ContainerSpec::new(id.clone(), "busybox", &["true"]);
    spec.resources.cpu_limit_millis = Some(500);
    spec.resources.cpu_request_millis = Some(250);
    spec.resources.memory_limit_bytes = Some(64 << 20);
    spec.resources.pids_limit = Some(50);
    rt.create(spec).await.unwrap();
    let plan: LaunchPlan = navarch_runtime::state::read_json(
        &dir.path()
            .join("state/containers")
            .join(id.as_str())
            .join("plan.json"),
    )
    .unwrap()
    .unwrap();
    let cg = plan
        .cgroup
        .clone()
        .expect("an isolated container has cgroups");
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
            assert_eq!(read(&cg.dirs[1], "cpu.shares"), "256");
            assert_eq!(read(&cg.dirs[2], "pids.max"), "50");
        }
        CgroupVersion::V2 => {
            assert_eq!(read(&cg.dirs[0], "memory.max"), (64u64 << 20).to_string());
            assert_eq!(read(&cg.dirs[0], "cpu.max"), "50000 100000");
            assert_eq!(read(&cg.dirs[0], "pids.max"), "50");
        }
    }
    rt.remove(&id).await.unwrap();
    assert!(
        cg.dirs.iter().all(|d| !d.exists()),
        "cgroups left behind: {:?}",
        cg.dirs
    );
    assert!(
        !plan.rootfs.unwrap().exists(),
        "the overlay's mount point is left"
    );
}

/// The environment variable that makes [`agent_that_gets_killed`] act.
const KILLED_AGENT_DIR: &str = "NAVARCH_TEST_KILLED_AGENT_DIR";

/// Not a test: the "agent" process `a_killed_agent_leaves_its_containers_running` starts
/// (this test binary, run with `--ignored --exact` and the env var) and kills with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a helper process of a_killed_agent_leaves_its_containers_running"]
async fn agent_that_gets_killed() {
    let dir = PathBuf::from(std::env::var(KILLED_AGENT_DIR).expect("run by the killed-agent test"));
    let id =
        navarch_runtime::ContainerId::new(format!("killed-agent-{}", std::process::id())).unwrap();
    let spec = navarch_runtime::ContainerSpec::new(
        id.clone(),
        "busybox",
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo up; sleep 1000 & wait",
        ],
    );
    // The image store dies with this process: import the image into one that stays.
    let images = ImageStore::new(dir.join("images")).unwrap();
    images.ensure_busybox().unwrap();
    let mut config = ProcessConfig::new(
        dir.join("state"),
        images,
        env!("CARGO_BIN_EXE_navarch-shim"),
    );
    config.cgroup_parent = std::env::var("NAVARCH_TEST_CGROUP_PARENT").unwrap();
    let rt = ProcessRuntime::new(config).unwrap();
    rt.create(spec).await.unwrap();
    let st = rt.start(&id).await.unwrap();
    println!("started {} {}", id, st.pid.unwrap());
    std::future::pending::<()>().await;
}

#[test]
fn a_killed_agent_leaves_its_containers_running() {
    use std::io::BufRead;
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let dir = tempfile::tempdir().unwrap();
    let parent = cgroup_parent();
    let mut agent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "agent_that_gets_killed",
            "--nocapture",
        ])
        .env(KILLED_AGENT_DIR, dir.path())
        .env("NAVARCH_TEST_CGROUP_PARENT", &parent)
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
        let mut config = ProcessConfig::new(
            dir.path().join("state"),
            ImageStore::new(dir.path().join("images")).unwrap(),
            env!("CARGO_BIN_EXE_navarch-shim"),
        );
        config.cgroup_parent = parent.clone();
        let runtime = ProcessRuntime::new(config).unwrap();
        let st = runtime.status(&id).await.unwrap();
        assert_eq!(
            (st.state, st.pid),
            (navarch_runtime::ContainerState::Running, Some(pid)),
            "{st:?}"
        );
        let st = runtime
            .stop(&id, std::time::Duration::from_secs(20))
            .await
            .unwrap();
        // The exit the orphaned shim recorded, and the output it kept copying.
        assert_eq!(st.exit_code, Some(42), "{st:?}");
        assert!(st.stop.kill_sent_at.is_none());
        let log = std::fs::read_to_string(&st.log_path).unwrap();
        assert!(log.contains(" stdout F up"), "{log}");
        runtime.remove(&id).await.unwrap();
    });
    navarch_runtime::cgroup::Cgroups::detect(Path::new("/sys/fs/cgroup"), &parent).remove_parent();
}

async fn run_to_exit(
    rt: &ProcessRuntime,
    spec: navarch_runtime::ContainerSpec,
) -> navarch_runtime::ContainerStatus {
    let id = spec.id.clone();
    rt.create(spec).await.unwrap();
    rt.start(&id).await.unwrap();
    let deadline = std::time::Instant::now() + contract::WAIT;
    loop {
        let st = rt.status(&id).await.unwrap();
        if st.state == navarch_runtime::ContainerState::Exited {
            return st;
        }
        assert!(std::time::Instant::now() < deadline, "never exited: {st:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn log_contents(st: &navarch_runtime::ContainerStatus) -> Vec<String> {
    std::fs::read(&st.log_path)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            navarch_runtime::logs::parse(l).map(|r| String::from_utf8_lossy(r.content).to_string())
        })
        .collect()
}

/// An imported image's config gives the command, environment and working dir; an image
/// without a root filesystem runs on the host's, still in its own namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_and_host_images_run_with_their_config() {
    let f = Process::new(IsolationMode::Auto);
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
                cmd: vec!["/bin/sh".into(), "-c".into(), "echo pid=$$".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let rt = {
        let mut config = ProcessConfig::new(
            dir.path().join("state"),
            f.images.clone(),
            env!("CARGO_BIN_EXE_navarch-shim"),
        );
        config.cgroup_parent = f.parent.clone();
        ProcessRuntime::new(config).unwrap()
    };
    let id = navarch_runtime::ContainerId::new(format!("imported-{}", std::process::id())).unwrap();
    let st = run_to_exit(
        &rt,
        navarch_runtime::ContainerSpec::new(id.clone(), "example.com/mine:v1", &[]),
    )
    .await;
    assert_eq!(
        (st.exit_code, log_contents(&st)),
        (Some(0), vec!["bar in /tmp".to_string()]),
        "{st:?}"
    );
    rt.remove(&id).await.unwrap();

    let id = navarch_runtime::ContainerId::new(format!("host-{}", std::process::id())).unwrap();
    let st = run_to_exit(
        &rt,
        navarch_runtime::ContainerSpec::new(id.clone(), "host", &[]),
    )
    .await;
    assert_eq!(
        (st.exit_code, log_contents(&st)),
        (Some(0), vec!["pid=1".to_string()]),
        "{st:?}"
    );
    rt.remove(&id).await.unwrap();
}
