//! Secrets with kubectl 1.37 on three masters: `create secret generic` and `stringData`
//! read back through any master, the keys each type requires, an immutable Secret, and the
//! store, its watch history and a backup holding only sealed bytes (AES-GCM), never the
//! value or its base64.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use navarch_tests::{Cluster, Kubectl};
use serde_json::{json, Value};

/// The API servers alone: nothing else writes Secrets.
const API_ONLY: &str = "--no-control-plane";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(name: &str, extra: Value) -> Value {
    let mut o = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"}});
    for (k, v) in extra.as_object().expect("an object") {
        o[k] = v.clone();
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_served_validated_and_sealed_at_rest_on_every_master() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(3, &[API_ONLY]).await?;
    cluster.wait_leader(Duration::from_secs(30)).await?;
    let m0 = Kubectl::admin(&cluster, 0, dir.path()).await?;
    let m2 = Kubectl::admin(&cluster, 2, dir.path()).await?;

    m0.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2-correct-horse",
    ])?;
    // Another master opens what the first sealed.
    let db = m2.json(&["get", "secret", "db"])?;
    assert_eq!(db["type"], "Opaque", "{db}");
    assert_eq!(
        db["data"],
        json!({"password": b64("hunter2-correct-horse")})
    );
    let table = m2.ok(&["get", "secrets"])?;
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("db "))
        .unwrap_or_else(|| panic!("no row for db in:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..3],
        ["db", "Opaque", "1"],
        "NAME, TYPE, DATA:\n{table}"
    );

    // stringData lands in data, base64, and is not kept.
    m0.apply(&secret(
        "plain",
        json!({"stringData": {"user": "admin"}, "data": {"user": b64("old")}}),
    ))?
    .expect_ok("apply stringData")?;
    let plain = m0.json(&["get", "secret", "plain"])?;
    assert_eq!(plain["data"], json!({"user": b64("admin")}), "{plain}");
    assert!(plain.get("stringData").is_none(), "{plain}");

    // The keys a type requires, with Kubernetes' messages; nothing is stored.
    let out = m0.apply(&secret(
        "tls",
        json!({"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}),
    ))?;
    assert!(
        !out.ok && out.stderr.contains("data[tls.key]: Required value"),
        "{}",
        out.stderr
    );
    let out = m0.apply(&secret(
            "pull",
            json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64("{not json")}}),
        ),
    )?;
    assert!(
        !out.ok && out.stderr.contains("invalid JSON"),
        "{}",
        out.stderr
    );
    for name in ["tls", "pull"] {
        let gone = m0.run(&["get", "secret", name])?;
        assert!(
            !gone.ok && gone.stderr.contains("NotFound"),
            "{}",
            gone.stderr
        );
    }

    // Immutable data, and a type that never changes.
    m0.apply(&secret(
        "frozen",
        json!({"data": {"k": b64("v")}, "immutable": true}),
    ))?
    .expect_ok("apply an immutable secret")?;
    let out = m0.run(&[
        "patch",
        "secret",
        "frozen",
        "-p",
        &json!({"data": {"k": b64("w")}}).to_string(),
    ])?;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("field is immutable when `immutable` is set"),
        "{}",
        out.stderr
    );
    let out = m0.run(&[
        "patch",
        "secret",
        "db",
        "-p",
        r#"{"type":"kubernetes.io/basic-auth"}"#,
    ])?;
    assert!(
        !out.ok && out.stderr.contains("field is immutable"),
        "{}",
        out.stderr
    );

    // At rest: the store's value, every file of every master's data dir and a backup.
    let needles = [
        "hunter2-correct-horse".to_string(),
        b64("hunter2-correct-horse"),
    ];
    let raw = cluster
        .navctl(1, &["store", "get", "secrets", "default", "db"])?
        .expect_ok("navctl store get")?;
    assert!(raw.stdout.contains("k8s:enc:aesgcm:v1:"), "{}", raw.stdout);
    let backup = dir.path().join("cluster.backup");
    let backup_arg = backup.display().to_string();
    cluster
        .navctl(0, &["backup", "--out", &backup_arg])?
        .expect_ok("navctl backup")?;
    let backup_bytes = std::fs::read(&backup)?;
    for n in &needles {
        assert!(
            !raw.stdout.contains(n.as_str()),
            "the stored value shows {n}"
        );
        assert!(
            !backup_bytes.windows(n.len()).any(|w| w == n.as_bytes()),
            "the backup shows {n}"
        );
        for i in 0..3 {
            assert!(
                !cluster.log_text(i).contains(n.as_str()),
                "master {i}'s log shows {n}"
            );
            // Every file of the data dir: the Raft log, the objects, the watch history, the
            // write-ahead log and the audit log.
            let dirs = vec![cluster.members[i].data_dir.clone()];
            for f in files_under(dirs) {
                let bytes = std::fs::read(&f)?;
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                    "{} shows {n}",
                    f.display()
                );
            }
        }
    }
    Ok(())
}

fn files_under(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}
