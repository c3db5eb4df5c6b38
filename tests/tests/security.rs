//! Multi-process security tests of a running master: node join with a bootstrap token and a
//! pinned CA, and refusal of peers without a valid certificate.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use navarch_net::pki::ClusterCa;
use navarch_net::{Endpoint, ExpectedPeer, NetConfig};
use navarch_store::{StoreClient, ORG_ADMINS};
use navarch_tests::{bin, Cluster};

fn node_join(
    cluster: &Cluster,
    name: &str,
    token: &str,
    ca_hash: &str,
    dir: &std::path::Path,
) -> std::process::Output {
    Command::new(bin("navarch-node"))
        .arg("--name")
        .arg(name)
        .arg("--master")
        .arg(cluster.members[0].peer.to_string())
        .arg("--token")
        .arg(token)
        .arg("--ca-hash")
        .arg(ca_hash)
        .arg("--data-dir")
        .arg(dir)
        .arg("--join-only")
        .output()
        .expect("run navarch-node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_joins_with_token_and_pinned_ca_only() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let data = &cluster.members[0].data_dir;
    let token = std::fs::read_to_string(data.join("join-token"))?
        .trim()
        .to_string();
    let ca_hash = std::fs::read_to_string(data.join("ca-hash"))?
        .trim()
        .to_string();
    let dir = cluster.dir.path().join("n1");

    let ok = node_join(&cluster, "n1", &token, &ca_hash, &dir);
    assert!(
        ok.status.success(),
        "join failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(dir.join("node.crt").exists() && dir.join("node.key").exists());

    // A wrong secret for a real token id is refused, and the secret is not logged.
    let (id, _) = token.split_once('.').expect("token format");
    let wrong = format!("{id}.0000000000000000");
    let bad = node_join(
        &cluster,
        "n2",
        &wrong,
        &ca_hash,
        &cluster.dir.path().join("n2"),
    );
    assert!(!bad.status.success(), "a wrong token must be refused");
    assert!(!cluster.dir.path().join("n2/node.crt").exists());

    // A pin that does not match the master's CA: the node refuses the master.
    let other_pin = format!("sha256:{}", "0".repeat(64));
    let bad = node_join(
        &cluster,
        "n3",
        &token,
        &other_pin,
        &cluster.dir.path().join("n3"),
    );
    assert!(
        !bad.status.success(),
        "a master with another CA must be refused"
    );

    let log = std::fs::read_to_string(&cluster.members[0].log)?;
    let secret = token.split_once('.').map(|(_, s)| s).unwrap_or_default();
    assert!(
        !log.contains(secret),
        "the token secret must never reach the log"
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_refuses_certificates_from_another_ca_and_non_admins() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let peer = cluster.members[0].peer;

    let stranger_dir = tempfile::tempdir()?;
    let (stranger_ca, _) = ClusterCa::load_or_create(stranger_dir.path())?;
    let id = stranger_ca.issue_client("intruder", &[ORG_ADMINS], Duration::from_secs(600))?;
    let c = StoreClient::new(Endpoint::client(NetConfig::new("intruder", id))?.peer(
        "m1",
        peer,
        ExpectedPeer::member("m1"),
    ));
    assert!(
        c.status().await.is_err(),
        "a certificate from another CA must be refused"
    );

    // A valid certificate without the admin or member organization is refused by the store.
    let ca = ClusterCa::load(&cluster.ca_dir)?;
    let id = ca.issue_client(
        "system:node:n9",
        &["system:nodes"],
        Duration::from_secs(600),
    )?;
    let c = StoreClient::new(Endpoint::client(NetConfig::new("n9", id))?.peer(
        "m1",
        peer,
        ExpectedPeer::member("m1"),
    ));
    let err = c.status().await.expect_err("a node may not call the store");
    assert!(
        err.to_string().contains("may not"),
        "refusal says why: {err}"
    );

    // The admin certificate works.
    let ok = cluster.client(0)?.status().await;
    assert!(ok.is_ok(), "the admin certificate works: {ok:?}");
    cluster.passed();
    Ok(())
}
