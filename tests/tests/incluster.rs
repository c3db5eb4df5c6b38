//! Pods that talk to the API, as operators and tools in a pod do: on a real single-server
//! cluster (`navarch-master` with its embedded node), a pod runs the official Python client
//! with `load_incluster_config()` and another the real kubectl without a kubeconfig. They
//! reach the API through the `kubernetes` Service (the service range's first address, which
//! the node's proxy forwards to the master on 127.0.0.x) with the service-account token,
//! CA and namespace projected into `/var/run/secrets/kubernetes.io/serviceaccount`.
//!
//! The pods run the busybox image with the host's Python installation and kubectl mounted
//! read-only (hostPath): the image store has no Python image, and the client is the one
//! `scripts/install-deps.sh` installed, unmodified.
//!
//! What it shows: the Python client gets 403 listing pods while no RoleBinding allows its
//! account, then lists them once one does; kubectl in a pod is the pod's service account
//! (`auth whoami`, with the pod it is bound to); TokenReview accepts the pod's token, and
//! refuses it once the pod is deleted (a bound token dies with its pod); `kubectl create
//! token` mints one that TokenReview accepts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{py_venv, wait_for, Cluster, Kubectl};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(90);

/// The Python client's loop: list the namespace's pods once a second, print each outcome,
/// stop at the first success.
const PY_SCRIPT: &str = r#"
import time
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
api = client.CoreV1Api()
for _ in range(120):
    try:
        pods = api.list_namespaced_pod("apps")
        print("LISTED", " ".join(sorted(p.metadata.name for p in pods.items)), flush=True)
        break
    except ApiException as e:
        print("STATUS", e.status, flush=True)
    except Exception as e:
        print("ERROR", repr(e), flush=True)
    time.sleep(1)
"#;

/// A host directory mounted read-only at the same path (`at`: elsewhere).
fn host_mount(name: &str, path: &Path, at: &str) -> (Value, Value) {
    (
        json!({"name": name, "hostPath": {"path": path.to_string_lossy(), "type": "Directory"}}),
        json!({"name": name, "mountPath": at, "readOnly": true}),
    )
}

/// The directories the host's Python (the venv and the interpreter it was made from, with
/// the system libraries they load) needs, canonical on the host, each with where it is
/// mounted in the container.
fn python_mounts() -> Result<Vec<(PathBuf, String)>> {
    let venv = py_venv();
    let python = std::fs::canonicalize(venv.join("bin/python")).context("the venv's python")?;
    // <prefix>/bin/python3.x
    let prefix = python
        .parent()
        .and_then(Path::parent)
        .context("python's prefix")?
        .to_path_buf();
    let mut out = vec![
        (venv.clone(), venv.to_string_lossy().to_string()),
        (prefix.clone(), prefix.to_string_lossy().to_string()),
        (PathBuf::from("/usr"), "/usr".to_string()),
    ];
    // The dynamic loader and libc: `/lib64` and `/lib` (symlinks into /usr on Debian).
    for p in ["/lib", "/lib64"] {
        out.push((std::fs::canonicalize(p)?, p.to_string()));
    }
    Ok(out)
}

fn python_pod() -> Result<Value> {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, (path, at)) in python_mounts()?.into_iter().enumerate() {
        let (v, m) = host_mount(&format!("host-{i}"), &path, &at);
        volumes.push(v);
        mounts.push(m);
    }
    let python = py_venv().join("bin/python");
    Ok(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "py", "namespace": "apps"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "volumes": volumes,
            "containers": [{
                "name": "client", "image": "busybox",
                "command": [python.to_string_lossy(), "-c", PY_SCRIPT],
                "volumeMounts": mounts,
            }],
        },
    }))
}

fn kubectl_pod() -> Result<Value> {
    let kubectl = std::fs::canonicalize(py_venv().join("bin/kubectl"))?;
    Ok(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "tool", "namespace": "apps"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "kubectl", "hostPath": {"path": kubectl.to_string_lossy(), "type": "File"}}],
            "containers": [{
                "name": "tool", "image": "busybox",
                "command": ["sleep", "86400"],
                "env": [{"name": "HOME", "value": "/tmp"}],
                "volumeMounts": [{"name": "kubectl", "mountPath": "/kubectl", "readOnly": true}],
            }],
        },
    }))
}

fn logs(kc: &Kubectl, pod: &str) -> String {
    kc.run(&["logs", "-n", "apps", pod])
        .map(|o| o.stdout)
        .unwrap_or_default()
}

/// A file the tool pod has in its projected service-account volume.
fn projected_file(kc: &Kubectl, name: &str) -> Result<String> {
    let path = format!("/var/run/secrets/kubernetes.io/serviceaccount/{name}");
    kc.ok(&["exec", "-n", "apps", "tool", "--", "cat", &path])
}

/// Admin's TokenReview of `token`: the answer's `status`.
fn review(kc: &Kubectl, token: &str) -> Result<Value> {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": token}});
    // kubectl's field validation looks a review kind's PATCH up in OpenAPI v3, finds none
    // (reviews take only POST) and falls back to OpenAPI v2, which navarch does not serve.
    let out = kc.run_stdin(
        &["create", "--validate=false", "-f", "-", "-o", "json"],
        &body.to_string(),
    )?;
    let out = out.expect_ok("create a TokenReview")?;
    Ok(serde_json::from_str::<Value>(&out.stdout)?["status"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_the_api_with_their_service_account() -> Result<()> {
    let flags = [
        "--cluster-cidr",
        "10.42.112.0/20",
        "--service-cluster-ip-range",
        "10.43.112.0/24",
        "--disk-pressure-percent",
        "1",
    ];
    let mut cluster = Cluster::single_server("incluster", &flags).await?;
    let dir = tempfile::tempdir()?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;

    // The `kubernetes` Service: the range's first address, port 443, its endpoints the
    // master's API address.
    let api_port: i64 = cluster
        .url(0, "")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("the master's API port")?;
    wait_for(DEADLINE, "the kubernetes service's endpoints", || async {
        let s = kc
            .json(&["get", "endpointslice", "-n", "default", "kubernetes"])
            .ok()?;
        (s["ports"][0]["port"].as_i64() == Some(api_port)).then_some(())
    })
    .await?;
    let svc = kc.json(&["get", "svc", "-n", "default", "kubernetes"])?;
    assert_eq!(svc["spec"]["clusterIP"], "10.43.112.1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);

    kc.ok(&["create", "namespace", "apps"])?;
    wait_for(DEADLINE, "apps' default account and root CA", || async {
        kc.run(&["get", "sa", "-n", "apps", "default"])
            .ok()?
            .ok
            .then_some(())?;
        let cm = kc
            .json(&["get", "cm", "-n", "apps", "kube-root-ca.crt"])
            .ok()?;
        cm["data"]["ca.crt"]
            .as_str()?
            .contains("BEGIN CERTIFICATE")
            .then_some(())
    })
    .await?;

    kc.apply(&python_pod()?)?
        .expect_ok("apply the python pod")?;
    kc.apply(&kubectl_pod()?)?
        .expect_ok("apply the kubectl pod")?;
    // Admission defaulted the account and projected the token.
    let py = kc.json(&["get", "pod", "-n", "apps", "py"])?;
    assert_eq!(py["spec"]["serviceAccountName"], "default");
    let projected = py["spec"]["volumes"]
        .as_array()
        .and_then(|vs| {
            vs.iter().find(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .context("no kube-api-access volume")?;
    assert_eq!(
        projected["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );

    // No RoleBinding yet: the client is authenticated but may not list pods.
    wait_for(DEADLINE, "the python client's 403", || async {
        logs(&kc, "py").contains("STATUS 403").then_some(())
    })
    .await
    .with_context(|| format!("python pod logs: {}", logs(&kc, "py")))?;
    kc.ok(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        "apps",
        "--verb=list,get",
        "--resource=pods",
    ])?;
    kc.ok(&[
        "create",
        "rolebinding",
        "read-pods",
        "-n",
        "apps",
        "--role=pod-reader",
        "--serviceaccount=apps:default",
    ])?;
    wait_for(DEADLINE, "the python client's list", || async {
        logs(&kc, "py")
            .lines()
            .any(|l| l.starts_with("LISTED "))
            .then_some(())
    })
    .await
    .with_context(|| format!("python pod logs: {}", logs(&kc, "py")))?;
    let out = logs(&kc, "py");
    let listed = out.lines().find(|l| l.starts_with("LISTED ")).unwrap_or("");
    assert!(
        listed.split(' ').any(|n| n == "py") && listed.contains("tool"),
        "{out}"
    );
    assert!(!out.contains("ERROR"), "{out}");

    // kubectl in a pod, with no kubeconfig: in-cluster configuration.
    wait_for(DEADLINE, "the kubectl pod running", || async {
        let p = kc.json(&["get", "pod", "-n", "apps", "tool"]).ok()?;
        (p["status"]["phase"] == "Running").then_some(())
    })
    .await?;
    let whoami: Value = serde_json::from_str(&kc.ok(&[
        "exec", "-n", "apps", "tool", "--", "/kubectl", "auth", "whoami", "-o", "json",
    ])?)?;
    let info = &whoami["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:apps:default");
    assert_eq!(
        info["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["tool"])
    );
    let names = kc.ok(&[
        "exec", "-n", "apps", "tool", "--", "/kubectl", "get", "pods", "-o", "name",
    ])?;
    assert!(names.contains("pod/tool"), "{names}");
    let env = kc.ok(&["exec", "-n", "apps", "tool", "--", "env"])?;
    assert!(env.contains("KUBERNETES_SERVICE_HOST=10.43.112.1"), "{env}");

    // The pod's token, reviewed: valid while the pod lives, refused once it is gone.
    let token = projected_file(&kc, "token")?;
    let status = review(&kc, token.trim())?;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:apps:default"
    );
    let ns = projected_file(&kc, "namespace")?;
    assert_eq!(ns, "apps");
    kc.ok(&[
        "delete",
        "pod",
        "-n",
        "apps",
        "tool",
        "--wait=true",
        "--timeout=60s",
    ])?;
    let status = review(&kc, token.trim())?;
    assert_eq!(status["authenticated"], false, "{status}");
    // `kubectl create token` (a TokenRequest with no pod to bind to): valid for as long as
    // the account exists.
    let minted = kc.ok(&["create", "token", "default", "-n", "apps", "--duration=15m"])?;
    let status = review(&kc, minted.trim())?;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:apps:default"
    );
    let bad = review(&kc, "not.a.token")?;
    assert_eq!(bad["authenticated"], false, "{bad}");

    cluster.passed();
    Ok(())
}
