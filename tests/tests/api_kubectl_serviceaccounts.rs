//! ServiceAccounts with kubectl 1.37: discovery names them (`sa`), every namespace gets its
//! `default` account from the control plane (again after it is deleted), accounts are made
//! and listed with kubectl's columns, and the fields that would need tokens are refused.

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

    // Token fields are not served yet: refused, not ignored (`false`, what happens anyway
    // without tokens, is accepted).
    let out = kc.apply(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "bot", "namespace": "shop"},
        "automountServiceAccountToken": true,
    }))?;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("automountServiceAccountToken"),
        "{}",
        out.stderr
    );
    let out = kc.apply(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "bot", "namespace": "shop"},
        "secrets": [{"name": "bot-token"}],
    }))?;
    assert!(!out.ok && out.stderr.contains("secrets"), "{}", out.stderr);
    kc.apply(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "quiet", "namespace": "shop"},
        "automountServiceAccountToken": false,
    }))?
    .expect_ok("an account without automounted tokens")?;
    cluster.passed();
    Ok(())
}
