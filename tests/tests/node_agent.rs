//! The node agent end to end, as a user drives it with kubectl: real `navarch-master` and
//! `navarch-node` processes running busybox pods on the `process` and `oci` runtimes, in
//! network namespaces with addresses from CNI (each test a pod range of its own inside
//! 10.42.0.0/16, routed only on this machine).
//!
//! - a single-server cluster runs a Deployment whose pods reach each other by IP, with
//!   logs (following across a rotation), exec, ConfigMaps and Secrets, and an `oci` pod;
//! - containers restart per their policy with back-off, liveness and readiness probes act,
//!   and a container past its memory limit is OOMKilled;
//! - a node agent killed with SIGKILL re-adopts its running containers;
//! - with three masters and two nodes, a killed node's pods come back on the other, and a
//!   node whose master dies keeps reporting through another, its pods untouched.
//!
//! Every test leaves nothing running: `navarch-node reset` removes what its nodes left.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_tests::{
    condition_status, httpd_deployment, items, kubectl_spawn, live_pod_names, wait_for, Cluster,
    Kubectl, NodeProc,
};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(90);

/// Tests may run while the disk is nearly full (build caches): the node's disk pressure
/// threshold is lowered so that the scheduler does not skip it.
const NODE_FLAGS: &[&str] = &["--disk-pressure-percent", "1"];

fn pod_named<'a>(pods: &'a Value, name: &str) -> Option<&'a Value> {
    pods["items"]
        .as_array()?
        .iter()
        .find(|p| p["metadata"]["name"] == name)
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

async fn pod_where(
    kc: &Kubectl,
    name: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_for(DEADLINE, what, || async {
        let p = kc.json(&["get", "pod", name]).ok()?;
        cond(&p).then_some(p)
    })
    .await
}

fn container_status(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

/// Host pids of processes whose command line is exactly `argv`.
fn pids_of(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .ok()
                        .as_deref()
                        == Some(&want[..])
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The pod's CRI log directory on the node (`<node data>/kubelet/logs/<ns>_<pod>_<uid>/<c>`).
fn log_dir(node_data: &Path, pod: &Value, container: &str) -> PathBuf {
    node_data
        .join("kubelet/logs")
        .join(format!(
            "{}_{}_{}",
            pod["metadata"]["namespace"].as_str().unwrap_or(""),
            pod["metadata"]["name"].as_str().unwrap_or(""),
            pod["metadata"]["uid"].as_str().unwrap_or("")
        ))
        .join(container)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_runs_pods_with_their_own_network_logs_exec_and_config() -> Result<()> {
    let mut flags = vec!["--cluster-cidr", "10.42.16.0/20"];
    flags.extend_from_slice(NODE_FLAGS);
    let mut cluster = Cluster::single_server("solo", &flags).await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;
    let node = wait_for(
        DEADLINE,
        "the embedded node Ready with a pod range",
        || async {
            let n = kc.json(&["get", "node", "solo"]).ok()?;
            let ready = n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (ready && n["spec"]["podCIDR"].is_string()).then_some(n)
        },
    )
    .await?;
    let pod_cidr = node["spec"]["podCIDR"].as_str().unwrap().to_string();
    assert!(pod_cidr.starts_with("10.42.16."), "{pod_cidr}");
    assert_eq!(
        node["metadata"]["annotations"]["node.navarch.io/pods-isolated"],
        "true"
    );
    let prefix = pod_cidr.rsplit_once('.').unwrap().0.to_string();

    // A Deployment of 3 httpd pods that serve their own hostname.
    kc.apply(&httpd_deployment("web", 3, 80))?
        .expect_ok("apply web")?;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=90s"])?;
    let pods = kc.json(&["get", "pods", "-l", "app=web"])?;
    let web = live_pod_names(&pods);
    assert_eq!(web.len(), 3, "{pods}");
    let ips: Vec<String> = web
        .iter()
        .map(|n| {
            pod_named(&pods, n).unwrap()["status"]["podIP"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for ip in &ips {
        assert!(ip.starts_with(&format!("{prefix}.")), "{ip} in {pod_cidr}");
    }
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "each pod has its own address: {ips:?}");
    // From inside one pod to another's address: that pod answers with its hostname.
    let got = kc.ok(&[
        "exec",
        &web[0],
        "--",
        "wget",
        "-qO-",
        &format!("http://{}/", ips[1]),
    ])?;
    assert_eq!(got.trim(), web[1]);
    assert_eq!(
        kc.ok(&["exec", &web[0], "--", "cat", "/etc/hostname"])?
            .trim(),
        web[0]
    );
    let hosts = kc.ok(&["exec", &web[0], "--", "cat", "/etc/hosts"])?;
    assert!(
        hosts.contains(&format!("{}\t{}", ips[0], web[0])),
        "{hosts}"
    );
    assert!(kc
        .ok(&["logs", &web[0]])?
        .contains(&format!("serving {}", web[0])));
    // navctl exec does the same, with the command's exit code as its own.
    let navctl = std::process::Command::new(navarch_tests::bin("navctl"))
        .arg("exec")
        .arg("--kubeconfig")
        .arg(&kc.kubeconfig)
        .args([
            web[0].as_str(),
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .env("RUST_LOG", "warn")
        .output()?;
    assert_eq!(navctl.status.code(), Some(3), "{navctl:?}");
    assert_eq!(String::from_utf8_lossy(&navctl.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&navctl.stderr).contains("err"),
        "{navctl:?}"
    );
    // Nothing outside the cluster's ranges is routed from a pod.
    let routes = kc.ok(&["exec", &web[0], "--", "ip", "route"])?;
    assert!(
        !routes.contains("default"),
        "no default route in a pod: {routes}"
    );

    // The same with the oci runtime (runc).
    kc.apply(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "boxed", "namespace": "default"},
        "spec": {"runtimeClassName": "oci", "terminationGracePeriodSeconds": 2, "containers": [{
            "name": "app", "image": "busybox",
            "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo oci $(hostname) && exec httpd -f -p 80 -h /www"]}]},
    }))?
    .expect_ok("apply boxed")?;
    let boxed = pod_where(&kc, "boxed", "the oci pod Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await?;
    assert!(
        container_status(&boxed)["containerID"]
            .as_str()
            .unwrap()
            .starts_with("oci://"),
        "{boxed}"
    );
    assert_eq!(
        kc.ok(&["exec", "boxed", "--", "cat", "/etc/hostname"])?
            .trim(),
        "boxed"
    );
    let oci_ip = boxed["status"]["podIP"].as_str().unwrap().to_string();
    let got = kc.ok(&[
        "exec",
        &web[0],
        "--",
        "wget",
        "-qO-",
        &format!("http://{oci_ip}/"),
    ])?;
    assert_eq!(got.trim(), "boxed");
    // kubectl exec -it into the oci pod: runc's terminal, sized and resized with kubectl's.
    let mut cmd = std::process::Command::new(navarch_tests::kubectl_bin()?);
    cmd.args(["exec", "-it", "boxed", "--", "sh"])
        .env("KUBECONFIG", &kc.kubeconfig)
        .env("HOME", &kc.home);
    let mut term = navarch_tests::tty::Terminal::spawn(cmd, 33, 111)?;
    let wait = Duration::from_secs(30);
    term.ask_until("stty size\r", "33 111", wait).await?;
    term.resize(44, 123)?;
    term.ask_until("stty size\r", "44 123", wait).await?;
    term.type_keys("test -t 0 && echo oci-tty-$((6*7)); exit 9\r")?;
    term.wait_output("oci-tty-42", wait).await?;
    assert_eq!(term.wait_exit(wait).await?, 9, "{}", term.output());
    wait_for(DEADLINE, "the oci pod's log", || async {
        kc.ok(&["logs", "boxed"])
            .ok()?
            .contains("oci boxed")
            .then_some(())
    })
    .await?;

    // ConfigMaps and Secrets: env and files, and a changed ConfigMap reaches the file.
    kc.ok(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=greeting=hello",
    ])?;
    kc.ok(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=s3cret",
    ])?;
    kc.apply(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "configured", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 2,
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "secret", "secret": {"secretName": "app-secret", "defaultMode": 256}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            ],
            "containers": [{"name": "app", "image": "busybox",
                "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MESSAGE", "value": "$(GREETING) from $(POD_IP)"},
                ],
                "envFrom": [{"secretRef": {"name": "app-secret"}, "prefix": "S_"}],
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/config"},
                    {"name": "secret", "mountPath": "/etc/secret"},
                    {"name": "scratch", "mountPath": "/scratch"},
                ]}]},
    }))?
    .expect_ok("apply configured")?;
    let configured = pod_where(&kc, "configured", "the configured pod Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await?;
    let ip = configured["status"]["podIP"].as_str().unwrap();
    let env = kc.ok(&[
        "exec",
        "configured",
        "--",
        "sh",
        "-c",
        "echo $GREETING; echo $S_password; echo $MESSAGE",
    ])?;
    assert_eq!(env, format!("hello\ns3cret\nhello from {ip}\n"));
    assert_eq!(
        kc.ok(&["exec", "configured", "--", "cat", "/etc/secret/password"])?,
        "s3cret"
    );
    assert_eq!(
        kc.ok(&["exec", "configured", "--", "cat", "/etc/config/greeting"])?,
        "hello"
    );
    let mounts = kc.ok(&["exec", "configured", "--", "cat", "/proc/mounts"])?;
    assert!(
        mounts.lines().any(|l| l.contains(" /scratch tmpfs")),
        "{mounts}"
    );
    kc.ok(&[
        "patch",
        "configmap",
        "app-config",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ])?;
    wait_for(
        Duration::from_secs(60),
        "the changed ConfigMap in the running pod",
        || async {
            (kc.ok(&["exec", "configured", "--", "cat", "/etc/config/greeting"])
                .ok()?
                == "bonjour")
                .then_some(())
        },
    )
    .await?;

    // A hostPort, published by CNI's portmap on the node's addresses.
    let host_port = navarch_tests::free_port("127.0.0.1");
    kc.apply(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "published", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "busybox",
            "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"],
            "ports": [{"containerPort": 80, "hostPort": host_port}]}]},
    }))?
    .expect_ok("apply published")?;
    pod_where(&kc, "published", "the published pod Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let via_loopback = http
        .get(format!("http://127.0.0.1:{host_port}/"))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(
        via_loopback.trim(),
        "published",
        "the hostPort on the node's address"
    );

    // An image imported on the node with navctl (no registry), as a tarball.
    let layout = dir.path().join("tiny");
    std::fs::create_dir_all(layout.join("bin"))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox-static (scripts/install-deps.sh installs it)")?;
    std::fs::copy(busybox, layout.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", layout.join("bin/sh"))?;
    let tarball = dir.path().join("tiny.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&layout)
        .arg(".")
        .status()?;
    assert!(tar.success());
    let node_data = cluster.members[0].data_dir.join("node");
    let node_data_arg = node_data.display().to_string();
    let tarball_arg = tarball.display().to_string();
    let imported = cluster.navctl(
        0,
        &[
            "image",
            "import",
            "tiny:1",
            &tarball_arg,
            "--node-data-dir",
            &node_data_arg,
        ],
    )?;
    assert!(imported.ok, "{}", imported.stderr);
    let again = cluster.navctl(
        0,
        &[
            "image",
            "import",
            "tiny:1",
            &tarball_arg,
            "--node-data-dir",
            &node_data_arg,
        ],
    )?;
    assert!(
        !again.ok && again.stderr.contains("already exists"),
        "{}",
        again.stderr
    );
    kc.apply(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "tiny", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "tiny:1",
            "command": ["/bin/sh", "-c", "echo tiny image; ls /"]}]},
    }))?
    .expect_ok("apply tiny")?;
    pod_where(&kc, "tiny", "the tiny pod Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await?;
    let out = kc.ok(&["logs", "tiny"])?;
    assert!(out.starts_with("tiny image\n"), "{out}");
    assert!(
        !out.contains("usr"),
        "the image's own root, not busybox's: {out}"
    );

    // `logs -f` keeps following across a rotation of the log file (10 MiB).
    kc.apply(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "chatty", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "busybox",
            "command": ["sh", "-c", "i=0; while true; do echo \"line $i $(printf '%0200d' 0)\"; i=$((i+1)); done"]}]},
    }))?
    .expect_ok("apply chatty")?;
    let chatty = pod_where(&kc, "chatty", "the chatty pod Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await?;
    let out = dir.path().join("follow.txt");
    let mut follow = kubectl_spawn(&kc.kubeconfig, &kc.home, &["logs", "-f", "chatty"], &out)?;
    let logs = log_dir(&cluster.members[0].data_dir.join("node"), &chatty, "app");
    wait_for(DEADLINE, "two rotations of the chatty log", || async {
        logs.join("0.log.2").exists().then_some(())
    })
    .await?;
    // Past the rotations, the follower still gets new lines.
    let first_after = std::fs::read_to_string(logs.join("0.log"))?
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
        .context("a line in the current log file")?;
    wait_for(DEADLINE, "the follower past the rotations", || async {
        let text = std::fs::read_to_string(&out).ok()?;
        text.contains(&format!("line {first_after} ")).then_some(())
    })
    .await?;
    let _ = follow.kill();
    let _ = follow.wait();
    let text = std::fs::read_to_string(&out)?;
    let numbers: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("line ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(numbers.len() > 1000, "{} lines followed", numbers.len());
    if let Some(w) = numbers.windows(2).find(|w| w[1] != w[0] + 1) {
        bail!(
            "the follower skipped or repeated lines: {} then {}",
            w[0],
            w[1]
        );
    }
    kc.ok(&["delete", "pod", "chatty", "--wait=false"])?;
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_restart_with_back_off_probes_act_and_oom_is_reported() -> Result<()> {
    let mut flags = vec!["--cluster-cidr", "10.42.32.0/20"];
    flags.extend_from_slice(NODE_FLAGS);
    let mut cluster = Cluster::single_server("probed", &flags).await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;
    let pod = |name: &str, policy: &str, container: Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 1,
                     "containers": [container]}})
    };
    let sh = |script: &str| json!(["sh", "-c", script]);
    for p in [
        pod(
            "crash",
            "Always",
            json!({"name": "app", "image": "busybox", "command": sh("echo boom; exit 3")}),
        ),
        pod(
            "done",
            "OnFailure",
            json!({"name": "app", "image": "busybox", "command": sh("echo done")}),
        ),
        pod(
            "oom",
            "Never",
            json!({"name": "app", "image": "busybox", "command": sh("tail /dev/zero"),
            "resources": {"limits": {"memory": "32Mi"}}}),
        ),
        pod(
            "killed",
            "Always",
            json!({"name": "app", "image": "busybox", "command": ["sleep", "86411"]}),
        ),
        {
            let mut p = pod(
                "greedy",
                "Always",
                json!({"name": "app", "image": "busybox",
                    "command": sh("dd if=/dev/zero of=/scratch/big bs=1M count=4 && exec sleep 3600"),
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}),
            );
            p["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]);
            p
        },
        pod(
            "live",
            "Always",
            json!({"name": "app", "image": "busybox",
            "command": sh("mkdir -p /www && touch /www/healthz && httpd -p 80 -h /www && sleep 3 && rm /www/healthz && exec sleep 3600"),
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 1, "failureThreshold": 2}}),
        ),
        pod(
            "ready",
            "Always",
            json!({"name": "app", "image": "busybox",
            "command": sh("touch /tmp/ready; trap 'exit 0' TERM; while true; do sleep 1; done"),
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}}),
        ),
    ] {
        kc.apply(&p)?.expect_ok("apply a pod")?;
    }
    // Init containers before the app, a termination message, and a preStop hook that writes
    // through a hostPath volume.
    let hooks = dir.path().join("hooks");
    kc.apply(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "init", "namespace": "default"},
        "spec": {"restartPolicy": "Never",
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [{"name": "prep", "image": "busybox",
                "command": ["sh", "-c", "echo prepared > /work/ready"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [{"name": "app", "image": "busybox",
                "command": ["sh", "-c", "cat /work/ready; cat /work/ready > /dev/termination-log"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]}}))?
        .expect_ok("apply init")?;
    kc.apply(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hooked", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 10,
            "volumes": [{"name": "hooks", "hostPath": {"path": hooks.display().to_string(), "type": "DirectoryOrCreate"}}],
            "containers": [{"name": "app", "image": "busybox",
                "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /hooks/prestop"]}}},
                "volumeMounts": [{"name": "hooks", "mountPath": "/hooks"}]}]}}))?
    .expect_ok("apply hooked")?;
    kc.apply(&json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ready", "namespace": "default"},
        "spec": {"selector": {"app": "ready"}, "ports": [{"port": 80}]}}))?
        .expect_ok("apply the service")?;

    // An image no node has: ErrImagePull, then ImagePullBackOff; nothing crashes.
    kc.apply(&pod(
        "ghost",
        "Always",
        json!({"name": "app", "image": "no-such-image:9"}),
    ))?
    .expect_ok("apply ghost")?;
    let ghost = pod_where(&kc, "ghost", "ghost in ImagePullBackOff", |p| {
        container_status(p)["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await?;
    assert_eq!(ghost["status"]["phase"], "Pending");
    assert!(
        container_status(&ghost)["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-image"),
        "{ghost}"
    );

    // Exit 3, restarted at once, then after 10 s, waiting in CrashLoopBackOff in between.
    let crash = pod_where(
        &kc,
        "crash",
        "crash in CrashLoopBackOff after 2 restarts",
        |p| {
            let c = container_status(p);
            c["restartCount"].as_u64() >= Some(2)
                && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        },
    )
    .await?;
    let c = container_status(&crash);
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{c}");
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error", "{c}");
    assert!(
        c["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off "),
        "{c}"
    );
    assert_eq!(crash["status"]["phase"], "Running");
    let table = kc.ok(&["get", "pod", "crash"])?;
    assert!(table.contains("CrashLoopBackOff"), "{table}");

    // An emptyDir past its sizeLimit: the pod is evicted, as the kubelet does.
    let greedy = pod_where(&kc, "greedy", "greedy evicted", |p| {
        p["status"]["reason"] == "Evicted"
    })
    .await?;
    assert_eq!(greedy["status"]["phase"], "Failed");
    assert!(
        greedy["status"]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit \"1Mi\""),
        "{greedy}"
    );

    // OnFailure and exit 0: Succeeded, Completed.
    let done = pod_where(&kc, "done", "done Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await?;
    assert_eq!(
        container_status(&done)["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(container_status(&done)["restartCount"], 0);

    // Past its memory limit: killed by the cgroup, OOMKilled, and under Never the pod failed.
    let oom = pod_where(&kc, "oom", "oom Failed", |p| {
        p["status"]["phase"] == "Failed"
    })
    .await?;
    assert_eq!(
        container_status(&oom)["state"]["terminated"]["reason"],
        "OOMKilled",
        "{oom}"
    );

    // The container's process killed from outside: restarted, restartCount up.
    pod_where(&kc, "killed", "killed Running", |p| {
        p["status"]["phase"] == "Running" && is_ready(p)
    })
    .await?;
    let pids = wait_for(DEADLINE, "the container's process", || async {
        let p = pids_of(&["sleep", "86411"]);
        (p.len() == 1).then_some(p)
    })
    .await?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()?;
    assert!(status.success(), "kill the container's process");
    let killed = pod_where(&kc, "killed", "killed restarted", |p| {
        container_status(p)["restartCount"] == 1
            && container_status(p)["state"]["running"].is_object()
    })
    .await?;
    assert_eq!(
        container_status(&killed)["lastState"]["terminated"]["exitCode"],
        137,
        "{killed}"
    );
    let again = pids_of(&["sleep", "86411"]);
    assert_eq!(again.len(), 1, "one process again: {again:?}");
    assert_ne!(again, pids, "a new process");

    // A failing liveness probe restarts the container.
    let live = pod_where(&kc, "live", "live restarted by its liveness probe", |p| {
        container_status(p)["restartCount"].as_u64() >= Some(1)
    })
    .await?;
    assert!(
        container_status(&live)["lastState"]["terminated"].is_object(),
        "{live}"
    );

    let init = pod_where(&kc, "init", "init Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await?;
    assert_eq!(
        init["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed",
        "{init}"
    );
    assert_eq!(
        container_status(&init)["state"]["terminated"]["message"],
        "prepared\n",
        "{init}"
    );
    assert_eq!(kc.ok(&["logs", "init"])?, "prepared\n");
    pod_where(&kc, "hooked", "hooked Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await?;
    kc.ok(&["delete", "pod", "hooked", "--timeout=60s"])?;
    assert_eq!(
        std::fs::read_to_string(hooks.join("prestop"))?,
        "bye\n",
        "the preStop hook ran before the stop"
    );

    // A failing readiness probe: NotReady, and out of its Service's ready endpoints.
    let endpoint_ready = |want: bool| {
        let kc = &kc;
        async move {
            wait_for(
                DEADLINE,
                &format!("the ready pod's endpoint ready={want}"),
                || async {
                    let slices = kc
                        .json(&[
                            "get",
                            "endpointslices",
                            "-l",
                            "kubernetes.io/service-name=ready",
                        ])
                        .ok()?;
                    let eps: Vec<&Value> = slices["items"]
                        .as_array()?
                        .iter()
                        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
                        .collect();
                    let ready = eps.iter().any(|e| e["conditions"]["ready"] == true);
                    (ready == want).then_some(())
                },
            )
            .await
        }
    };
    pod_where(&kc, "ready", "ready Ready", is_ready).await?;
    endpoint_ready(true).await?;
    kc.ok(&["exec", "ready", "--", "rm", "/tmp/ready"])?;
    let not_ready = pod_where(&kc, "ready", "ready NotReady", |p| {
        !is_ready(p) && p["status"]["phase"] == "Running"
    })
    .await?;
    assert_eq!(container_status(&not_ready)["ready"], false);
    assert_eq!(
        container_status(&not_ready)["restartCount"],
        0,
        "readiness never restarts"
    );
    endpoint_ready(false).await?;
    kc.ok(&["exec", "ready", "--", "touch", "/tmp/ready"])?;
    endpoint_ready(true).await?;
    cluster.passed();
    Ok(())
}

async fn real_node(cluster: &Cluster, name: &str, cidr: &str) -> Result<NodeProc> {
    let masters = cluster.peer_list();
    let mut args = vec![
        "--master",
        &masters,
        "--kubelet-port",
        "0",
        "--node-lease-renew-seconds",
        "1",
        "--node-cluster-cidr",
        cidr,
    ];
    args.extend_from_slice(NODE_FLAGS);
    NodeProc::start(cluster, 0, name, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_agent_killed_readopts_its_running_containers() -> Result<()> {
    let cidr = "10.42.48.0/20";
    let mut cluster = Cluster::start(1, &["--cluster-cidr", cidr]).await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;
    let mut node = real_node(&cluster, "phoenix", cidr).await?;
    kc.apply(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "steady", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "86412"]}]}}))?
    .expect_ok("apply steady")?;
    let before = pod_where(&kc, "steady", "steady Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await?;
    let pids = wait_for(DEADLINE, "the container's process", || async {
        let p = pids_of(&["sleep", "86412"]);
        (p.len() == 1).then_some(p)
    })
    .await?;

    node.kill();
    node.spawn()?;
    wait_for(DEADLINE, "the restarted agent's adoption", || async {
        let log = node.log_text();
        (log.matches("kubelet adopted the runtimes' containers")
            .count()
            == 2)
            .then_some(())
    })
    .await?;
    // It reports the pod again (its Lease renewed, the pod untouched) ...
    let node_lease = |kc: &Kubectl| {
        kc.json(&["get", "lease", "-n", "kube-node-lease", "phoenix"])
            .ok()
    };
    let renewed = node_lease(&kc).context("the lease")?["spec"]["renewTime"].clone();
    wait_for(
        DEADLINE,
        "the node's lease renewed after the restart",
        || async { (node_lease(&kc)?["spec"]["renewTime"] != renewed).then_some(()) },
    )
    .await?;
    let after = kc.json(&["get", "pod", "steady"])?;
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(container_status(&after)["restartCount"], 0);
    assert_eq!(
        container_status(&after)["containerID"],
        container_status(&before)["containerID"]
    );
    assert_eq!(
        container_status(&after)["state"]["running"]["startedAt"],
        container_status(&before)["state"]["running"]["startedAt"]
    );
    // ... which is the same process, not a second one.
    assert_eq!(pids_of(&["sleep", "86412"]), pids);

    // Deleted, it is stopped and removed by the node.
    kc.ok(&["delete", "pod", "steady", "--timeout=60s"])?;
    wait_for(DEADLINE, "the container's process gone", || async {
        pids_of(&["sleep", "86412"]).is_empty().then_some(())
    })
    .await?;
    node.passed();
    cluster.passed();
    Ok(())
}

/// What each master says of the web pods, the nodes and its control plane, for a test that
/// gave up waiting (each read cut after 5 s).
fn seen_by_each(masters: &[Kubectl]) -> String {
    let mut out = String::new();
    for (i, kc) in masters.iter().enumerate() {
        let t = "--request-timeout=5s";
        let pods = kc.json(&["get", "pods", "-l", "app=web", t]).map(|l| {
            items(&l)
                .iter()
                .map(|p| {
                    format!(
                        "{} on {} {} ready={} deleting={}",
                        p["metadata"]["name"],
                        p["spec"]["nodeName"],
                        p["status"]["phase"],
                        is_ready(p),
                        !p["metadata"]["deletionTimestamp"].is_null()
                    )
                })
                .collect::<Vec<_>>()
        });
        let nodes = kc.json(&["get", "nodes", t]).map(|l| {
            items(&l)
                .iter()
                .map(|n| {
                    format!(
                        "{} ready={:?} taints={}",
                        n["metadata"]["name"],
                        condition_status(n, "Ready"),
                        n["spec"]["taints"]
                    )
                })
                .collect::<Vec<_>>()
        });
        let cp = kc
            .ok(&["get", "--raw", "/debug/controlplane", t])
            .map(|s| s.chars().take(400).collect::<String>());
        out.push_str(&format!(
            "\nmaster {i}: pods {pods:?}; nodes {nodes:?}; control plane {cp:?}"
        ));
    }
    out
}

/// The master a node's link goes to first: the masters rotated by the FNV-1a hash of its
/// name, as `navarch_agent::fleet::spread` orders them.
fn first_master(name: &str, n: usize) -> usize {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % n as u64) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_and_two_nodes_survive_a_killed_node_and_a_killed_master() -> Result<()> {
    let cidr = "10.42.64.0/20";
    let mut cluster = Cluster::start(
        3,
        &[
            "--cluster-cidr",
            cidr,
            // Long enough that a node whose master dies is not marked unknown while its
            // link moves to another (and a loaded machine's late lease is not a death).
            "--node-monitor-grace-period",
            "15",
            "--default-unreachable-toleration-seconds",
            "2",
            "--default-not-ready-toleration-seconds",
            "2",
        ],
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;
    let mut doomed = real_node(&cluster, "doomed", cidr).await?;
    let mut kept = real_node(&cluster, "kept", cidr).await?;
    wait_for(DEADLINE, "both nodes Ready", || async {
        let nodes = kc.json(&["get", "nodes"]).ok()?;
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        (ready == 2).then_some(())
    })
    .await?;
    kc.apply(&httpd_deployment("web", 4, 80))?
        .expect_ok("apply web")?;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=90s"])?;
    let on = |pods: &Value, node: &str| -> Vec<Value> {
        pods["items"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| {
                        p["spec"]["nodeName"] == node
                            && p["metadata"]["deletionTimestamp"].is_null()
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let pods = kc.json(&["get", "pods", "-l", "app=web"])?;
    assert!(
        !on(&pods, "doomed").is_empty() && !on(&pods, "kept").is_empty(),
        "spread over both: {pods}"
    );
    // A pod on one node reaches a pod on the other through the machine's routes.
    let (from, to) = (&on(&pods, "kept")[0], &on(&pods, "doomed")[0]);
    let to_ip = to["status"]["podIP"].as_str().unwrap();
    let got = kc.ok(&[
        "exec",
        from["metadata"]["name"].as_str().unwrap(),
        "--",
        "wget",
        "-qO-",
        &format!("http://{to_ip}/"),
    ])?;
    assert_eq!(got.trim(), to["metadata"]["name"].as_str().unwrap());
    let kept_ids: Vec<Value> = on(&pods, "kept")
        .iter()
        .map(|p| container_status(p)["containerID"].clone())
        .collect();

    // The doomed node SIGKILLed: its pods come back on the other node.
    let mut every = Vec::new();
    for i in 0..3 {
        every.push(Kubectl::admin(&cluster, i, dir.path()).await?);
    }
    doomed.kill();
    wait_for(
        Duration::from_secs(120),
        "4 ready pods, all on kept",
        || async {
            let pods = kc.json(&["get", "pods", "-l", "app=web"]).ok()?;
            let live = on(&pods, "kept");
            (live.len() == 4 && live.iter().all(is_ready)).then_some(())
        },
    )
    .await
    .with_context(|| seen_by_each(&every))?;

    // The master kept's link goes to, SIGKILLed: kept reconnects to another and goes on
    // reporting; its pods keep running untouched.
    let victim = first_master("kept", 3);
    let survivor = (victim + 1) % 3;
    let kc2 = Kubectl::admin(&cluster, survivor, dir.path()).await?;
    cluster.kill(victim);
    let lease = |kc: &Kubectl| {
        kc.json(&["get", "lease", "-n", "kube-node-lease", "kept"])
            .ok()
    };
    let renewed = wait_for(DEADLINE, "kept's lease readable", || async { lease(&kc2) }).await?
        ["spec"]["renewTime"]
        .clone();
    wait_for(
        DEADLINE,
        "kept's lease renewed through another master",
        || async { (lease(&kc2)?["spec"]["renewTime"] != renewed).then_some(()) },
    )
    .await?;
    let pods = kc2.json(&["get", "pods", "-l", "app=web"])?;
    let now_ids: Vec<Value> = on(&pods, "kept")
        .iter()
        .map(|p| container_status(p)["containerID"].clone())
        .collect();
    for id in &kept_ids {
        assert!(now_ids.contains(id), "{id} still runs: {now_ids:?}");
    }
    assert!(on(&pods, "kept")
        .iter()
        .all(|p| container_status(p)["restartCount"] == 0));
    doomed.passed();
    kept.passed();
    cluster.passed();
    Ok(())
}
