//! ConfigMaps with kubectl 1.37 as a user drives them: `create configmap` from literals and
//! from a binary file (which lands in `binaryData`), the table of `kubectl get`, keys the
//! API refuses, and an immutable ConfigMap whose data no edit may change (its labels may).

use anyhow::Result;
use navarch_tests::{Cluster, Kubectl};
use serde_json::json;

/// The API server alone: nothing else writes ConfigMaps.
const API_ONLY: &str = "--no-control-plane";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_reads_and_cannot_change_an_immutable_configmap() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(1, &[API_ONLY]).await?;
    let kc = Kubectl::admin(&cluster, 0, dir.path()).await?;

    kc.ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal=a=1",
        "--from-literal=b.conf=two",
    ])?;
    let cm = kc.json(&["get", "configmap", "app"])?;
    assert_eq!(cm["data"], json!({"a": "1", "b.conf": "two"}), "{cm}");
    let table = kc.ok(&["get", "cm"])?;
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("no row for app in:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(&row[..2], ["app", "2"], "NAME and DATA columns:\n{table}");

    // A file that is not UTF-8 goes to binaryData, base64 in the API.
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, [0u8, 0xff, 0xfe, 1, 2])?;
    let from_file = format!("--from-file=blob={}", blob.display());
    kc.ok(&["create", "configmap", "bin", &from_file])?;
    let bin = kc.json(&["get", "cm", "bin"])?;
    assert_eq!(bin["binaryData"], json!({"blob": "AP/+AQI="}), "{bin}");

    // Keys the API refuses, with Kubernetes' message, and nothing stored.
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bad", "namespace": "default"},
        "data": {"bad key": "x"}});
    let out = kc.apply(&bad)?;
    assert!(!out.ok, "a key with a space is refused: {}", out.stdout);
    assert!(
        out.stderr
            .contains("a valid config key must consist of alphanumeric characters"),
        "{}",
        out.stderr
    );
    let dup = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bad", "namespace": "default"},
        "data": {"k": "x"}, "binaryData": {"k": "AAEC"}});
    let out = kc.apply(&dup)?;
    assert!(
        !out.ok && out.stderr.contains("duplicate of key present in data"),
        "{}",
        out.stderr
    );
    let gone = kc.run(&["get", "cm", "bad"])?;
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );

    // Immutable: the data stays, `immutable` stays; metadata may still change.
    let frozen = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "frozen", "namespace": "default"},
        "data": {"a": "1"}, "immutable": true});
    kc.apply(&frozen)?
        .expect_ok("apply an immutable configmap")?;
    let out = kc.run(&["patch", "cm", "frozen", "-p", r#"{"data":{"a":"2"}}"#])?;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("field is immutable when `immutable` is set"),
        "{}",
        out.stderr
    );
    let out = kc.run(&["patch", "cm", "frozen", "-p", r#"{"immutable":false}"#])?;
    assert!(!out.ok, "immutable cannot be unset: {}", out.stdout);
    kc.ok(&["label", "cm", "frozen", "tier=web"])?;
    let f = kc.json(&["get", "cm", "frozen"])?;
    assert_eq!(f["data"], json!({"a": "1"}));
    assert_eq!(f["immutable"], json!(true));
    assert_eq!(f["metadata"]["labels"], json!({"tier": "web"}));

    kc.ok(&["delete", "cm", "app", "bin", "frozen"])?;
    let left = kc.json(&["get", "cm"])?;
    assert_eq!(left["items"], json!([]), "{left}");
    Ok(())
}
