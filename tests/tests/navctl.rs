//! `navctl get | apply | delete | describe` against a running master over the Kubernetes API,
//! with the admin kubeconfig the master wrote.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use navarch_tests::{bin, Cluster, Output};
use serde_json::Value;

fn navctl(kubeconfig: &Path, args: &[&str], stdin_file: Option<&Path>) -> Result<Output> {
    let mut cmd = Command::new(bin("navctl"));
    cmd.args(args).arg("--kubeconfig").arg(kubeconfig);
    if let Some(f) = stdin_file {
        cmd.stdin(std::fs::File::open(f)?);
    }
    Ok(Output::from(cmd.output().context("run navctl")?))
}

fn ok(kubeconfig: &Path, args: &[&str]) -> Result<String> {
    Ok(navctl(kubeconfig, args, None)?
        .expect_ok(&format!("navctl {args:?}"))?
        .stdout)
}

fn manifest(replicas: u32) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navctl_applies_gets_describes_and_deletes() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let kc = cluster.kubeconfig(0);
    let file = cluster.dir.path().join("shop.yaml");

    std::fs::write(&file, manifest(2))?;
    let out = ok(&kc, &["apply", "-f", file.to_str().unwrap()])?;
    assert_eq!(
        out,
        "namespace/shop created\ndeployment.apps/web created\nservice/web created\n"
    );

    let out = ok(&kc, &["get", "deploy", "-n", "shop"])?;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(row.first(), Some(&"web"), "{out}");
    assert!(row.get(1).is_some_and(|r| r.ends_with("/2")), "{out}");

    let out = ok(&kc, &["get", "ns"])?;
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"default") && names.contains(&"shop"),
        "{out}"
    );

    // All namespaces: a NAMESPACE column first; wide and name outputs.
    let out = ok(&kc, &["get", "deployments", "-A"])?;
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("shop ")), "{out}");
    let out = ok(&kc, &["get", "svc", "-n", "shop", "-o", "name"])?;
    assert_eq!(out, "service/web\n");
    let out = ok(&kc, &["get", "deploy/web", "-n", "shop", "-o", "wide"])?;
    assert!(out.contains("nginx:1.27"), "{out}");

    // Changed replicas: configured, and the server has them.
    std::fs::write(&file, manifest(3))?;
    let out = ok(&kc, &["apply", "-f", file.to_str().unwrap()])?;
    assert!(out.contains("deployment.apps/web configured\n"), "{out}");
    let d: Value = serde_json::from_str(&ok(
        &kc,
        &["get", "deployment", "web", "-n", "shop", "-o", "json"],
    )?)?;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["kind"], "Deployment");

    // The same manifest again, from stdin: nothing changes.
    let r = navctl(&kc, &["apply", "-f", "-"], Some(&file))?;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "namespace/shop unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\n"
    );

    let out = ok(&kc, &["describe", "deployment", "web", "-n", "shop"])?;
    assert!(out.contains("Name:               web\n"), "{out}");
    assert!(out.contains("Namespace:          shop\n"), "{out}");
    assert!(out.contains("Replicas:           3 desired"), "{out}");
    assert!(out.contains("Image:          nginx:1.27"), "{out}");
    assert!(out.contains("Events:"), "{out}");
    let out = ok(&kc, &["describe", "svc", "web", "-n", "shop"])?;
    assert!(out.contains("Port:               <unset>  80/TCP"), "{out}");

    let out = ok(&kc, &["delete", "deployment", "web", "-n", "shop"])?;
    assert_eq!(out, "deployment.apps \"web\" deleted\n");
    // Deletion may finish asynchronously (finalizers): wait for NotFound.
    let mut last = String::new();
    for _ in 0..100 {
        let r = navctl(&kc, &["get", "deployment", "web", "-n", "shop"], None)?;
        if !r.ok {
            last = r.stderr;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        last.trim(),
        "Error from server (NotFound): deployments.apps \"web\" not found"
    );

    let r = navctl(&kc, &["get", "foos"], None)?;
    assert!(!r.ok);
    assert_eq!(
        r.stderr.trim(),
        "error: the server doesn't have a resource type \"foos\""
    );

    // An invalid field stops apply with the server's message and a failure.
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: shop\nspec:\n  bogus: 1\n",
    )?;
    let r = navctl(&kc, &["apply", "-f", file.to_str().unwrap()], None)?;
    assert!(!r.ok, "{}", r.stdout);
    assert!(r.stderr.starts_with("Error from server"), "{}", r.stderr);

    let out = ok(
        &kc,
        &[
            "delete",
            "svc/web",
            "-n",
            "shop",
            "--cascade",
            "foreground",
            "--grace-period",
            "0",
        ],
    )?;
    assert_eq!(out, "service \"web\" deleted\n");
    let r = navctl(&kc, &["get", "svc", "-n", "shop"], None)?;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stderr.trim(), "No resources found in shop namespace.");

    cluster.passed();
    Ok(())
}
