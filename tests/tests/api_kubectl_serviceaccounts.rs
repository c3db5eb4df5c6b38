//! ServiceAccounts with kubectl 1.37: discovery names them (`sa`), every namespace gets its
//! `default` account and its `kube-root-ca.crt` from the control plane (again after they
//! are deleted), accounts are made and listed with kubectl's columns, a pod naming an
//! account that does not exist is refused, and token Secrets are refused.

use std::time::Duration;

use anyhow::{Context, Result};
use navarch_tests::{wait_for, Cluster, Kubectl};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

async fn has_default(kc: &Kubectl, ns: &str) -> Result<()> {
    wait_for(
        DEADLINE,
        &format!("the default account of {ns}"),
        || async {
            let out = kc
                .run(&["get", "sa", "default", "-n", ns, "-o", "json"])
                .ok()?;
            out.ok.then_some(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_its_default_service_account() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(1, &[]).await?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;

    let resources = kc.ok(&["api-resources", "--api-group=", "--no-headers"])?;
    let row: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("serviceaccounts "))
        .with_context(|| format!("no serviceaccounts in:\n{resources}"))?
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
        "{resources}"
    );

    // The namespaces there from the start, and one made now.
    has_default(&kc, "default").await?;
    has_default(&kc, "kube-system").await?;
    kc.ok(&["create", "namespace", "shop"])?;
    has_default(&kc, "shop").await?;

    // One made by hand, listed with kubectl's columns.
    kc.ok(&["create", "serviceaccount", "builder", "-n", "shop"])?;
    let table = kc.ok(&["get", "sa", "-n", "shop"])?;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "SECRETS", "AGE"], "{table}");
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(names, ["builder", "default"], "{table}");
    assert!(rows[1..].iter().all(|r| r[1] == "0"), "{table}");

    // The default account deleted comes back (a new one: another uid).
    let before = kc.json(&["get", "sa", "default", "-n", "shop"])?;
    kc.ok(&["delete", "sa", "default", "-n", "shop"])?;
    let after = wait_for(DEADLINE, "the default account made again", || async {
        let sa = kc.json(&["get", "sa", "default", "-n", "shop"]).ok()?;
        (sa["metadata"]["uid"] != before["metadata"]["uid"]).then_some(sa)
    })
    .await?;
    assert_eq!(after["metadata"]["namespace"], "shop");

    // The cluster CA in every namespace, put back when changed.
    let ca = wait_for(DEADLINE, "shop's kube-root-ca.crt", || async {
        let cm = kc
            .json(&["get", "cm", "kube-root-ca.crt", "-n", "shop"])
            .ok()?;
        cm["data"]["ca.crt"].as_str().map(str::to_string)
    })
    .await?;
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    kc.ok(&[
        "patch",
        "cm",
        "kube-root-ca.crt",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ])?;
    wait_for(DEADLINE, "kube-root-ca.crt put back", || async {
        let cm = kc
            .json(&["get", "cm", "kube-root-ca.crt", "-n", "shop"])
            .ok()?;
        (cm["data"]["ca.crt"].as_str() == Some(ca.as_str())).then_some(())
    })
    .await?;

    // Both automount settings are served; token Secrets are not (tokens are projected).
    for automount in [true, false] {
        kc.apply(&json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": format!("bot-{automount}"), "namespace": "shop"},
            "automountServiceAccountToken": automount,
        }))?
        .expect_ok("an account with automountServiceAccountToken")?;
    }
    let out = kc.apply(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "bot", "namespace": "shop"},
        "secrets": [{"name": "bot-token"}],
    }))?;
    assert!(!out.ok && out.stderr.contains("secrets"), "{}", out.stderr);

    // A pod runs as an account that exists: another is refused (403, Kubernetes' words).
    let pod = |account: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("as-{account}"), "namespace": "shop"},
               "spec": {"serviceAccountName": account, "nodeName": "nowhere",
                        "containers": [{"name": "c", "image": "busybox"}]}})
    };
    let out = kc.apply(&pod("ghost"))?;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains(
            r#"error looking up service account shop/ghost: serviceaccount "ghost" not found"#
        ),
        "{}",
        out.stderr
    );
    kc.apply(&pod("builder"))?.expect_ok("a pod as builder")?;
    let p = kc.json(&["get", "pod", "as-builder", "-n", "shop"])?;
    assert_eq!(p["spec"]["serviceAccount"], "builder");
    let mounts = &p["spec"]["containers"][0]["volumeMounts"];
    assert_eq!(
        mounts[0]["mountPath"], "/var/run/secrets/kubernetes.io/serviceaccount",
        "{p}"
    );
    // The account's `automountServiceAccountToken: false` projects nothing.
    kc.apply(&pod("bot-false"))?
        .expect_ok("a pod as bot-false")?;
    let p = kc.json(&["get", "pod", "as-bot-false", "-n", "shop"])?;
    assert!(p["spec"]["volumes"].is_null(), "{p}");
    cluster.passed();
    Ok(())
}
