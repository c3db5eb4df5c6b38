//! `kubectl logs` and `kubectl exec` reach a real container through the master: a real
//! navarch-master, a Node whose status points at a kubelet endpoint this test serves (with a
//! kubelet serving certificate from the cluster's CA), and behind it a busybox container run
//! by the `process` runtime. Also the refusals: a viewer may read logs but not exec, a pod
//! without a node and a node without an endpoint get their `Status`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_agent::streams::{
    self, ContainerResolver, KubeletService, LogLocator, LogTarget, RuntimeExecer, StreamError,
};
use navarch_net::pki::ClusterCa;
use navarch_runtime::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, ImageStore, ProcessConfig,
    ProcessRuntime,
};
use navarch_tests::tty::Terminal;
use navarch_tests::{bin, kubectl, kubectl_spawn, wait_for, Cluster, Kubectl};
use serde_json::json;

const NODE: &str = "n1";
const POD: &str = "talker";

/// The one container of the test's pod, as the kubelet would know it.
struct OnePod {
    id: ContainerId,
    log: PathBuf,
    runtime: Arc<dyn ContainerRuntime>,
    handle: tokio::runtime::Handle,
}

impl OnePod {
    fn check(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<(), StreamError> {
        if namespace != "default" || pod != POD {
            return Err(StreamError::NotFound(format!(
                "pod {namespace}/{pod} is not on node {NODE}"
            )));
        }
        match container {
            None | Some("main") => Ok(()),
            Some(c) => Err(StreamError::container_not_valid(c, pod)),
        }
    }
}

impl LogLocator for OnePod {
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogTarget, StreamError> {
        self.check(namespace, pod, container)?;
        if previous {
            return Err(StreamError::previous_not_found("main", pod));
        }
        let (runtime, id, handle) = (self.runtime.clone(), self.id.clone(), self.handle.clone());
        Ok(LogTarget {
            path: self.log.clone(),
            // Asked from a blocking thread.
            running: Arc::new(move || {
                handle
                    .block_on(runtime.status(&id))
                    .map(|s| s.state == ContainerState::Running)
                    .unwrap_or(false)
            }),
        })
    }
}

impl ContainerResolver for OnePod {
    fn resolve(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ContainerId, StreamError> {
        self.check(namespace, pod, container)?;
        Ok(self.id.clone())
    }
}

fn cgroup_parent() -> String {
    format!("navarch-test-streams-{}", std::process::id())
}

/// A kubeconfig for `token` against the admin kubeconfig's cluster.
fn token_kubeconfig(admin: &Path, dir: &Path, user: &str, token: &str) -> Result<PathBuf> {
    let doc: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(admin)?)?;
    let cluster = &doc["clusters"][0]["cluster"];
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: navarch\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}\n  context: {{cluster: navarch, user: {user}, namespace: default}}\ncurrent-context: {user}\n",
        cluster["server"].as_str().context("server")?,
        cluster["certificate-authority-data"].as_str().context("ca")?,
    );
    let path = dir.join(format!("{user}.kubeconfig"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn pod(name: &str, node: Option<&str>) -> serde_json::Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    });
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p
}

/// Waits (30 s at most) for a background kubectl to exit.
async fn wait_exit(
    child: &mut std::process::Child,
    out: &Path,
) -> Result<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "kubectl did not end: {}",
            std::fs::read_to_string(out).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_reach_a_real_container_through_the_master() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "viewer-token,viewer,u1\n")?;
    let mut cluster = Cluster::start(
        1,
        &[
            "--no-control-plane",
            "--token-auth-file",
            tokens.to_str().context("path")?,
        ],
    )
    .await?;
    let k = Kubectl::admin(&cluster, 0, dir.path()).await?;

    // The container: a few lines on both streams, then it waits for a file an exec makes.
    let images = ImageStore::new(dir.path().join("images"))?;
    images
        .ensure_busybox()
        .context("scripts/install-deps.sh installs busybox-static")?;
    let mut config = ProcessConfig::new(dir.path().join("state"), images, bin("navarch-shim"));
    config.cgroup_parent = cgroup_parent();
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(ProcessRuntime::new(config)?);
    let id = ContainerId::new("default-talker-main")?;
    let log = dir.path().join("logs/default_talker_u1/main/0.log");
    // (At most 90 s, should the test fail before it makes the file.)
    let script = "for i in 1 2 3; do echo line $i; done; echo warning >&2; n=0; \
                  while [ ! -e /tmp/stop ] && [ $n -lt 900 ]; do sleep 0.1; n=$((n+1)); done; \
                  echo bye";
    let mut spec = ContainerSpec::new(id.clone(), "busybox", &["sh", "-c", script]);
    spec.log.path = Some(log.clone());
    runtime.create(spec).await?;
    runtime.start(&id).await?;

    // The node's kubelet endpoint, with a kubelet serving certificate of the cluster's CA.
    let one = Arc::new(OnePod {
        id: id.clone(),
        log: log.clone(),
        runtime: runtime.clone(),
        handle: tokio::runtime::Handle::current(),
    });
    let exec = Arc::new(RuntimeExecer {
        resolver: one.clone(),
        runtime: runtime.clone(),
        timeout: Duration::from_secs(30),
    });
    let identity =
        ClusterCa::load(&cluster.ca_dir)?.issue_kubelet_serving(NODE, Duration::from_secs(3600))?;
    let endpoint = streams::serve(
        "127.0.0.1:0".parse()?,
        NODE,
        identity,
        KubeletService::new(one.clone(), exec),
    )?;
    let port = endpoint.local_addr()?.port();

    // The Node points at it; the pod is bound to it.
    k.apply(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))?
        .expect_ok("create the node")?;
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    k.ok(&[
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ])?;
    k.apply(&pod(POD, Some(NODE)))?
        .expect_ok("create the pod")?;

    // kubectl logs: prefixes stripped, both streams, --tail, --timestamps.
    let last = std::sync::Mutex::new(String::new());
    let first = wait_for(
        Duration::from_secs(20),
        "the container's first lines",
        || async {
            let out = k.run(&["logs", POD]).ok()?;
            *last.lock().unwrap() = format!("{out:?}");
            (out.ok && out.stdout.contains("warning")).then_some(out.stdout)
        },
    )
    .await;
    let all = first.with_context(|| format!("last: {}", last.lock().unwrap()))?;
    assert_eq!(all, "line 1\nline 2\nline 3\nwarning\n");
    assert_eq!(k.ok(&["logs", POD, "--tail=2"])?, "line 3\nwarning\n");
    let stamped = k.ok(&["logs", POD, "--timestamps", "--tail=1", "-c", "main"])?;
    let (ts, rest) = stamped.split_once(' ').context("a timestamp")?;
    assert_eq!(rest, "warning\n");
    assert!(
        ts.len() == 30 && ts.ends_with('Z') && navarch_model::time::parse_rfc3339(ts).is_some(),
        "{stamped:?}"
    );
    let limited = k.ok(&["logs", POD, "--limit-bytes=8"])?;
    assert_eq!(limited, "line 1\nl");
    let previous = k.run(&["logs", POD, "--previous"])?;
    assert!(
        !previous.ok
            && previous
                .stderr
                .contains("previous terminated container \"main\" in pod \"talker\" not found"),
        "{previous:?}"
    );

    // kubectl exec: stdout, stderr and the exit code, through the WebSocket.
    let out = k.run(&[
        "exec",
        POD,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])?;
    assert_eq!(out.stdout, "out\n", "{out:?}");
    assert!(out.stderr.starts_with("err\n"), "{out:?}");
    assert!(!out.ok);
    let code = std::process::Command::new(navarch_tests::kubectl_bin()?)
        .args(["exec", POD, "--", "sh", "-c", "exit 3"])
        .env("KUBECONFIG", &k.kubeconfig)
        .env("HOME", &k.home)
        .stdin(std::process::Stdio::null())
        .output()?;
    assert_eq!(code.status.code(), Some(3), "{code:?}");
    assert_eq!(
        k.ok(&["exec", POD, "-c", "main", "--", "echo", "hi"])?,
        "hi\n"
    );
    // stdin, piped in whole (kubectl -i).
    let piped = kubectl(
        &k.kubeconfig,
        &k.home,
        &["exec", "-i", POD, "--", "sh", "-c", "cat; echo end"],
        Some("from stdin\n"),
    )?
    .expect_ok("exec -i")?;
    assert_eq!(piped.stdout, "from stdin\nend\n");

    // kubectl exec -it: an interactive shell on a terminal of kubectl's terminal's size,
    // resized with it, and the shell's exit code as kubectl's.
    let mut cmd = std::process::Command::new(navarch_tests::kubectl_bin()?);
    cmd.args(["exec", "-it", POD, "--", "sh"])
        .env("KUBECONFIG", &k.kubeconfig)
        .env("HOME", &k.home);
    let mut term = Terminal::spawn(cmd, 30, 90)?;
    let wait = Duration::from_secs(20);
    term.ask_until("stty size\r", "30 90", wait).await?;
    term.resize(45, 132)?;
    term.ask_until("stty size\r", "45 132", wait).await?;
    term.type_keys("test -t 0 && echo tty-$((6*7)); echo err-$((1+1)) >&2\r")?;
    term.wait_output("tty-42", wait).await?;
    term.wait_output("err-2", wait).await?;
    // ^C reaches the shell's foreground command through the container's terminal.
    term.type_keys("sleep 601\r")?;
    let running = "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'sleep 60[1]'";
    wait_for(wait, "the terminal's sleep to run", || async {
        let out = k.run(&["exec", POD, "--", "sh", "-c", running]).ok()?;
        (out.stdout == "1\n").then_some(())
    })
    .await?;
    term.type_keys("\x03")?;
    term.type_keys("echo after-$((3+4))\r")?;
    term.wait_output("after-7", wait).await?;
    term.type_keys("exit 5\r")?;
    assert_eq!(term.wait_exit(wait).await?, 5, "{}", term.output());
    // navctl exec -it the same.
    let mut cmd = std::process::Command::new(bin("navctl"));
    cmd.args(["exec", "--kubeconfig"])
        .arg(&k.kubeconfig)
        .args(["-it", POD, "--", "sh"])
        .env("RUST_LOG", "warn");
    let mut term = Terminal::spawn(cmd, 24, 80)?;
    term.ask_until("stty size\r", "24 80", wait).await?;
    term.resize(50, 160)?;
    term.ask_until("stty size\r", "50 160", wait).await?;
    term.type_keys("test -t 0 && echo navctl-tty-$((6*7)); exit 6\r")?;
    term.wait_output("navctl-tty-42", wait).await?;
    assert_eq!(term.wait_exit(wait).await?, 6, "{}", term.output());
    // navctl -i streams stdin: each line is answered while stdin is still open.
    let mut cmd = std::process::Command::new(bin("navctl"));
    cmd.args(["exec", "--kubeconfig"])
        .arg(&k.kubeconfig)
        .args([
            "-i",
            POD,
            "--",
            "sh",
            "-c",
            "while read l; do echo got-$l; done; echo eof",
        ])
        .env("RUST_LOG", "warn");
    let mut term = Terminal::spawn(cmd, 24, 80)?;
    term.type_keys("a\r")?;
    term.wait_output("got-a", wait).await?;
    term.type_keys("b\r")?;
    term.wait_output("got-b", wait).await?;
    // ^D at the start of a line: end of file on navctl's stdin, closed on the command's.
    term.type_keys("\x04")?;
    term.wait_output("eof", wait).await?;
    assert_eq!(term.wait_exit(wait).await?, 0, "{}", term.output());

    // A viewer reads logs but may not exec.
    let viewer = token_kubeconfig(&k.kubeconfig, dir.path(), "viewer", "viewer-token")?;
    k.ok(&[
        "create",
        "rolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--user=viewer",
    ])?;
    let vhome = dir.path().join("viewer-home");
    std::fs::create_dir_all(&vhome)?;
    let vlogs =
        kubectl(&viewer, &vhome, &["logs", POD, "--tail=1"], None)?.expect_ok("viewer logs")?;
    assert_eq!(vlogs.stdout, "warning\n");
    let vexec = kubectl(&viewer, &vhome, &["exec", POD, "--", "true"], None)?;
    assert!(
        !vexec.ok && vexec.stderr.contains("forbidden") && vexec.stderr.contains("pods/exec"),
        "{vexec:?}"
    );

    // A pod with no node, and a node with no kubelet endpoint.
    k.apply(&pod("unbound", None))?
        .expect_ok("create unbound")?;
    let unbound = k.run(&["logs", "unbound"])?;
    assert!(
        !unbound.ok
            && unbound
                .stderr
                .contains("pod unbound does not have a host assigned"),
        "{unbound:?}"
    );
    let unbound = k.run(&["exec", "unbound", "--", "true"])?;
    assert!(
        !unbound.ok
            && unbound
                .stderr
                .contains("pod unbound does not have a host assigned"),
        "{unbound:?}"
    );
    k.apply(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "hollow"}}))?
        .expect_ok("create hollow")?;
    k.apply(&pod("on-hollow", Some("hollow")))?
        .expect_ok("create on-hollow")?;
    let hollow = k.run(&["logs", "on-hollow"])?;
    assert!(
        !hollow.ok && hollow.stderr.contains("reports no kubelet endpoint"),
        "{hollow:?}"
    );

    // A node whose kubelet endpoint does not answer: a 502 that says so.
    let gone = streams::serve(
        "127.0.0.1:0".parse()?,
        "gone",
        ClusterCa::load(&cluster.ca_dir)?
            .issue_kubelet_serving("gone", Duration::from_secs(3600))?,
        KubeletService::new(
            one.clone(),
            Arc::new(RuntimeExecer {
                resolver: one.clone(),
                runtime: runtime.clone(),
                timeout: Duration::from_secs(5),
            }),
        ),
    )?;
    let gone_port = gone.local_addr()?.port();
    gone.close();
    k.apply(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gone"}}))?
        .expect_ok("create gone")?;
    let gone_status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": gone_port}},
    }});
    k.ok(&[
        "patch",
        "node",
        "gone",
        "--subresource=status",
        "--type=merge",
        "-p",
        &gone_status.to_string(),
    ])?;
    k.apply(&pod("on-gone", Some("gone")))?
        .expect_ok("create on-gone")?;
    let unreachable = k.run(&["logs", "on-gone"])?;
    assert!(
        !unreachable.ok
            && unreachable
                .stderr
                .contains("error dialing the kubelet of node \"gone\""),
        "{unreachable:?}"
    );

    // Every one of these was audited as the rest: the exec as 101, the viewer's as 403.
    let audit: Vec<serde_json::Value> = cluster
        .audit(0)
        .into_iter()
        .filter(|r| r["subresource"] == "exec" || r["subresource"] == "log")
        .collect();
    let seen = |user: &str, sub: &str, verb: &str, code: u64| {
        audit.iter().any(|r| {
            r["user"] == user && r["subresource"] == sub && r["verb"] == verb && r["code"] == code
        })
    };
    assert!(seen("admin", "exec", "create", 101), "{audit:?}");
    assert!(seen("admin", "log", "get", 200), "{audit:?}");
    assert!(seen("viewer", "log", "get", 200), "{audit:?}");
    assert!(seen("viewer", "exec", "create", 403), "{audit:?}");

    // exec output streams while the command runs: the first line is there before the
    // command is told to finish.
    let streamed_out = dir.path().join("streamed.out");
    let mut streamed = kubectl_spawn(
        &k.kubeconfig,
        &k.home,
        &[
            "exec",
            POD,
            "--",
            "sh",
            "-c",
            "echo started; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo finished",
        ],
        &streamed_out,
    )?;
    wait_for(Duration::from_secs(20), "the exec's first line", || async {
        std::fs::read_to_string(&streamed_out)
            .ok()?
            .contains("started")
            .then_some(())
    })
    .await?;
    assert!(streamed.try_wait()?.is_none(), "the command still runs");
    k.ok(&["exec", POD, "--", "touch", "/tmp/go"])?;
    let status = wait_exit(&mut streamed, &streamed_out).await?;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&streamed_out)?,
        "started\nfinished\n"
    );

    // kubectl logs -f follows until the container ends.
    let follow_out = dir.path().join("follow.out");
    let mut follow = kubectl_spawn(&k.kubeconfig, &k.home, &["logs", "-f", POD], &follow_out)?;
    wait_for(
        Duration::from_secs(20),
        "the follow's first lines",
        || async {
            std::fs::read_to_string(&follow_out)
                .ok()?
                .contains("warning")
                .then_some(())
        },
    )
    .await?;
    k.ok(&["exec", POD, "--", "touch", "/tmp/stop"])?;
    let ended = wait_exit(&mut follow, &follow_out).await?;
    assert!(ended.success(), "{ended:?}");
    assert_eq!(
        std::fs::read_to_string(&follow_out)?,
        "line 1\nline 2\nline 3\nwarning\nbye\n"
    );

    endpoint.close();
    runtime.remove(&id).await?;
    navarch_runtime::cgroup::Cgroups::detect(Path::new("/sys/fs/cgroup"), &cgroup_parent())
        .remove_parent();
    cluster.passed();
    Ok(())
}
