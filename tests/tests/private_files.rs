//! A master's data dir is private: the data dir, `db/`, `pki/` and the CA dir 0700; RocksDB's
//! files, keys and tokens 0600, also when an older start left them open; a backup written by
//! `navctl backup` is 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_store::{ObjectKey, Op, Txn, TxnOutcome};
use navarch_tests::{bin, Cluster, Output};

fn mode(p: &Path) -> Result<u32> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("stat {}", p.display()))?
        .permissions()
        .mode()
        & 0o777)
}

fn chmod(p: &Path, mode: u32) -> Result<()> {
    Ok(std::fs::set_permissions(
        p,
        std::fs::Permissions::from_mode(mode),
    )?)
}

/// Every mode that must hold in a master's data dir, as (path, mode) failures.
fn open_modes(data: &Path, ca_dir: &Path) -> Result<Vec<String>> {
    let mut wrong = Vec::new();
    let mut expect = |p: &Path, want: u32| -> Result<()> {
        let got = mode(p)?;
        if got != want {
            wrong.push(format!("{} is {got:o}, want {want:o}", p.display()));
        }
        Ok(())
    };
    for dir in [
        data.to_path_buf(),
        data.join("db"),
        data.join("pki"),
        ca_dir.into(),
    ] {
        expect(&dir, 0o700)?;
    }
    for file in [
        data.join("pki/member.key"),
        data.join("admin.key"),
        data.join("admin.kubeconfig"),
        data.join("join-token"),
        data.join("tokens.json"),
        data.join("server-token"),
        data.join("audit.log"),
        ca_dir.join("ca.key"),
        ca_dir.join("server-secret"),
    ] {
        expect(&file, 0o600)?;
    }
    let mut db_files = 0;
    for entry in std::fs::read_dir(data.join("db"))? {
        let entry = entry?;
        if entry.metadata()?.is_file() {
            db_files += 1;
            let got = mode(&entry.path())?;
            if got & 0o077 != 0 {
                wrong.push(format!("{} is {got:o}", entry.path().display()));
            }
        }
    }
    anyhow::ensure!(db_files > 3, "only {db_files} files in db/");
    Ok(wrong)
}

async fn write_some(cluster: &Cluster, n: usize) -> Result<()> {
    let c = cluster.client(0)?;
    for i in 0..n {
        let txn = Txn::new(vec![Op::Put {
            key: ObjectKey::new("Secret", "default", format!("s{i}")),
            value: b"sensitive".to_vec(),
        }]);
        let out = c.txn(&txn).await?;
        anyhow::ensure!(matches!(out, TxnOutcome::Committed { .. }), "{out:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masters_files_are_private_and_fixed_at_start() -> Result<()> {
    let mut cluster = Cluster::create(1, &[])?;
    // What an older version (or an operator) may have left: open directories.
    let data = cluster.members[0].data_dir.clone();
    let ca_dir = cluster.ca_dir.clone();
    std::fs::create_dir_all(data.join("pki"))?;
    chmod(&data, 0o755)?;
    chmod(&data.join("pki"), 0o755)?;
    chmod(&ca_dir, 0o755)?;
    chmod(&ca_dir.join("ca.key"), 0o644)?;

    cluster.spawn(0, false)?;
    cluster.wait_leader(Duration::from_secs(30)).await?;
    write_some(&cluster, 20).await?;
    let wrong = open_modes(&data, &ca_dir)?;
    assert!(
        wrong.is_empty(),
        "open files after the first start:\n{}",
        wrong.join("\n")
    );

    // A backup through navctl is private too, even though this process's umask is 022.
    let backup = cluster.dir.path().join("backup.bin");
    let out = Output::from(
        Command::new(bin("navctl"))
            .arg("--server")
            .arg(cluster.members[0].peer.to_string())
            .arg("--credentials")
            .arg(&data)
            .arg("backup")
            .arg("--out")
            .arg(&backup)
            .output()?,
    )
    .expect_ok("navctl backup")?;
    assert!(out.stdout.contains("backup of"), "{}", out.stdout);
    assert_eq!(mode(&backup)?, 0o600, "backup file mode");

    // Opened up while the master is down: the next start closes them again.
    cluster.kill(0);
    chmod(&data, 0o755)?;
    chmod(&data.join("db"), 0o755)?;
    for entry in std::fs::read_dir(data.join("db"))? {
        let entry = entry?;
        if entry.metadata()?.is_file() {
            chmod(&entry.path(), 0o644)?;
        }
    }
    chmod(&data.join("admin.key"), 0o644)?;
    chmod(&data.join("join-token"), 0o644)?;
    chmod(&data.join("audit.log"), 0o644)?;
    cluster.spawn(0, false)?;
    cluster.wait_leader(Duration::from_secs(30)).await?;
    write_some(&cluster, 5).await?;
    let wrong = open_modes(&data, &ca_dir)?;
    assert!(
        wrong.is_empty(),
        "open files after a restart:\n{}",
        wrong.join("\n")
    );
    cluster.passed();
    Ok(())
}
