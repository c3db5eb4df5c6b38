//! kubectl 1.37's imperative commands (whose typed client sends protobuf), `kubectl auth
//! can-i` and `whoami` for an admin, a viewer and a node, impersonation, and RBAC objects made
//! with kubectl that give a token user write access in one namespace only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{kubectl, wait_for, Cluster, Output};
use serde_json::Value;

/// The API server alone: no controller or scheduler changes the objects these tests check.
const API_ONLY: &str = "--no-control-plane";

const VIEW_TOKEN: &str = "kubectl-viewer-token";
const NODE_TOKEN: &str = "kubectl-node-token";
const DEV_TOKEN: &str = "kubectl-dev-token";

fn run(cfg: &Path, home: &Path, args: &[&str]) -> Result<Output> {
    kubectl(cfg, home, args, None)
}

/// Runs kubectl and fails with its output if it fails.
fn k(cfg: &Path, home: &Path, args: &[&str]) -> Result<String> {
    Ok(run(cfg, home, args)?
        .expect_ok(&format!("kubectl {}", args.join(" ")))?
        .stdout)
}

fn json(cfg: &Path, home: &Path, args: &[&str]) -> Result<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    Ok(serde_json::from_str(&k(cfg, home, &a)?)?)
}

/// `kubectl auth can-i ...`: `yes` or `no` (kubectl exits 1 for no).
fn can_i(cfg: &Path, home: &Path, args: &[&str]) -> Result<String> {
    let mut a = vec!["auth", "can-i"];
    a.extend_from_slice(args);
    let o = run(cfg, home, &a)?;
    let answer = o.stdout.trim().to_string();
    anyhow::ensure!(
        (answer == "yes" && o.ok) || (answer == "no" && !o.ok),
        "kubectl auth can-i {}: {answer:?} {}",
        args.join(" "),
        o.stderr
    );
    Ok(answer)
}

/// A kubeconfig for `token` against the admin kubeconfig's cluster.
fn token_kubeconfig(admin: &Path, dir: &Path, user: &str, token: &str) -> Result<PathBuf> {
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(admin)?)?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_imperatively_and_answers_auth_questions() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!(
            "{VIEW_TOKEN},viewer,u1,navarch:viewers\n{NODE_TOKEN},system:node:n1,u2,system:nodes\n{DEV_TOKEN},dev,u3\n"
        ),
    )?;
    let mut cluster = Cluster::start(
        1,
        &[
            API_ONLY,
            "--token-auth-file",
            tokens.to_str().context("path")?,
        ],
    )
    .await?;
    let admin = cluster.kubeconfig(0);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        run(&admin, &home, &["get", "ns", "default"])
            .ok()?
            .ok
            .then_some(())
    })
    .await?;

    // Every imperative create of our kinds; the typed ones arrive as protobuf.
    for args in [
        vec!["create", "namespace", "a1"],
        vec!["create", "deployment", "d1", "--image=busybox", "-n", "a1"],
        vec![
            "create",
            "service",
            "clusterip",
            "s1",
            "--tcp=80:80",
            "-n",
            "a1",
        ],
        vec![
            "create",
            "service",
            "nodeport",
            "s2",
            "--tcp=81:8081",
            "-n",
            "a1",
        ],
        vec!["run", "p1", "--image=busybox", "-n", "a1"],
        vec![
            "expose",
            "deployment",
            "d1",
            "--port=8080",
            "--name=d1svc",
            "-n",
            "a1",
        ],
        vec![
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
            "-n",
            "a1",
        ],
        vec![
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get,list",
            "--resource=nodes",
        ],
        vec![
            "create",
            "clusterrolebinding",
            "dev-nodes",
            "--clusterrole=node-reader",
            "--user=dev",
        ],
    ] {
        let out = k(&admin, &home, &args)?;
        assert!(
            out.contains("created") || out.contains("exposed"),
            "{}: {out}",
            args.join(" ")
        );
    }
    let ns = json(&admin, &home, &["get", "namespace", "a1"])?;
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    let d = json(&admin, &home, &["get", "deployment", "d1", "-n", "a1"])?;
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d1");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    let s1 = json(&admin, &home, &["get", "service", "s1", "-n", "a1"])?;
    assert_eq!(s1["spec"]["type"], "ClusterIP");
    assert_eq!(s1["spec"]["ports"][0]["name"], "80-80");
    assert_eq!(s1["spec"]["ports"][0]["targetPort"], 80);
    assert!(s1["spec"]["clusterIP"]
        .as_str()
        .is_some_and(|ip| !ip.is_empty()));
    let s2 = json(&admin, &home, &["get", "service", "s2", "-n", "a1"])?;
    assert_eq!(s2["spec"]["type"], "NodePort");
    assert!(s2["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .is_some_and(|p| (30000..=32767).contains(&p)));
    let p1 = json(&admin, &home, &["get", "pod", "p1", "-n", "a1"])?;
    assert_eq!(p1["metadata"]["labels"]["run"], "p1");
    let exposed = json(&admin, &home, &["get", "service", "d1svc", "-n", "a1"])?;
    assert_eq!(exposed["spec"]["selector"]["app"], "d1");
    assert_eq!(exposed["spec"]["ports"][0]["port"], 8080);
    let role = json(&admin, &home, &["get", "role", "pod-reader", "-n", "a1"])?;
    assert_eq!(role["rules"][0]["resources"][0], "pods");
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    let table = k(&admin, &home, &["get", "clusterrolebindings", "dev-nodes"])?;
    assert!(table.contains("ClusterRole/node-reader"), "{table}");

    // `kubectl logs deploy/d1` lists the Deployment's pods preferring protobuf, which the
    // server answers in: kubectl reads the PodList and asks the pod it found for its log.
    let mut labelled = json(&admin, &home, &["get", "pod", "p1", "-n", "a1"])?;
    labelled["metadata"] =
        serde_json::json!({"name": "d1-pod", "namespace": "a1", "labels": {"app": "d1"}});
    labelled.as_object_mut().context("a pod")?.remove("status");
    kubectl(
        &admin,
        &home,
        &["create", "-f", "-"],
        Some(&labelled.to_string()),
    )?
    .expect_ok("create d1-pod")?;
    let logs = run(&admin, &home, &["logs", "deploy/d1", "-n", "a1"])?;
    assert!(
        logs.stderr.contains("d1-pod does not have a host assigned"),
        "{}",
        logs.stderr
    );

    // The same list, asked for as kubectl's typed client asks: answered in protobuf (the
    // `k8s\0` envelope), and as JSON when JSON comes first.
    let http = cluster.http().clone();
    let pods_url = cluster.url(0, "/api/v1/namespaces/a1/pods");
    let r = http
        .get(&pods_url)
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .send()
        .await?;
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/vnd.kubernetes.protobuf")
    );
    assert!(r.bytes().await?.starts_with(b"k8s\x00"));
    let r = http
        .get(&pods_url)
        .header(
            "accept",
            "application/json,application/vnd.kubernetes.protobuf",
        )
        .send()
        .await?;
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );

    // auth can-i and whoami, as an admin, a viewer and a node.
    let viewer = token_kubeconfig(&admin, dir.path(), "viewer", VIEW_TOKEN)?;
    let node = token_kubeconfig(&admin, dir.path(), "node", NODE_TOKEN)?;
    let dev = token_kubeconfig(&admin, dir.path(), "dev", DEV_TOKEN)?;
    for (cfg, args, want) in [
        (&admin, vec!["delete", "nodes"], "yes"),
        (&admin, vec!["create", "clusterrolebindings"], "yes"),
        (&viewer, vec!["list", "pods", "-A"], "yes"),
        (&viewer, vec!["get", "deployments", "-n", "a1"], "yes"),
        (&viewer, vec!["create", "pods"], "no"),
        (&viewer, vec!["delete", "deployments", "-n", "a1"], "no"),
        (&node, vec!["update", "node/n1"], "yes"),
        (&node, vec!["update", "node/n2"], "no"),
        (&node, vec!["list", "pods", "-A"], "yes"),
        (&node, vec!["create", "pods"], "no"),
        (&dev, vec!["get", "nodes"], "yes"),
        (&dev, vec!["list", "pods", "-n", "a1"], "no"),
    ] {
        assert_eq!(can_i(cfg, &home, &args)?, want, "{cfg:?} can-i {args:?}");
    }
    let whoami = k(&viewer, &home, &["auth", "whoami", "-o", "json"])?;
    let who: Value = serde_json::from_str(&whoami)?;
    assert_eq!(who["status"]["userInfo"]["username"], "viewer");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!(["navarch:viewers", "system:authenticated"])
    );
    let whoami = k(&node, &home, &["auth", "whoami"])?;
    assert!(whoami.contains("system:node:n1"), "{whoami}");
    // Impersonation: an admin may act as anyone, and is then only that user.
    assert_eq!(
        can_i(
            &admin,
            &home,
            &[
                "delete",
                "nodes",
                "--as=viewer",
                "--as-group=navarch:viewers"
            ]
        )?,
        "no"
    );
    let refused = run(&viewer, &home, &["get", "pods", "--as=admin"])?;
    assert!(
        !refused.ok && refused.stderr.contains("impersonate"),
        "{}",
        refused.stderr
    );

    // A RoleBinding made with kubectl: dev may write pods in a1 and nowhere else.
    k(
        &admin,
        &home,
        &[
            "create",
            "role",
            "pod-writer",
            "--verb=get,list,create,delete",
            "--resource=pods",
            "-n",
            "a1",
        ],
    )?;
    k(
        &admin,
        &home,
        &[
            "create",
            "rolebinding",
            "dev-writes",
            "--role=pod-writer",
            "--user=dev",
            "-n",
            "a1",
        ],
    )?;
    wait_for(Duration::from_secs(10), "the binding in force", || async {
        (can_i(&dev, &home, &["create", "pods", "-n", "a1"]).ok()? == "yes").then_some(())
    })
    .await?;
    assert_eq!(
        can_i(&dev, &home, &["create", "pods", "-n", "default"])?,
        "no"
    );
    let out = k(
        &dev,
        &home,
        &["run", "by-dev", "--image=busybox", "-n", "a1"],
    )?;
    assert!(out.contains("created"), "{out}");
    let refused = run(
        &dev,
        &home,
        &["run", "by-dev", "--image=busybox", "-n", "default"],
    )?;
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("Forbidden") || refused.stderr.contains("forbidden"),
        "{}",
        refused.stderr
    );
    let refused = run(
        &dev,
        &home,
        &["create", "deployment", "d2", "--image=busybox", "-n", "a1"],
    )?;
    assert!(
        !refused.ok && refused.stderr.contains("forbidden"),
        "{}",
        refused.stderr
    );
    // dev cannot grant itself more: binding the admin role needs the permissions it grants.
    let escalate = run(
        &dev,
        &home,
        &[
            "create",
            "rolebinding",
            "dev-admin",
            "--clusterrole=admin",
            "--user=dev",
            "-n",
            "a1",
        ],
    )?;
    assert!(!escalate.ok, "{}", escalate.stdout);
    cluster.passed();
    Ok(())
}
