//! Multi-process tests of cluster membership: masters that join a first one with `--join` and
//! its server token, become voters, survive the leader's death, are removed and added with
//! `navctl member`; who may join as a master; and changes refused because they would lose
//! quorum.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use navarch_net::pki::{ClusterCa, ORG_NODES};
use navarch_net::{Endpoint, ExpectedPeer, JoinError, NetConfig, RpcError};
use navarch_store::{
    KeyRange, MemberList, ObjectKey, Op, ReadConsistency, StoreClient, StoreError, Txn, TxnFailure,
    TxnOutcome,
};
use navarch_tests::{bin, wait_for, Cluster};

const KIND: &str = "things";
const DEADLINE: Duration = Duration::from_secs(30);

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(KIND, "default", name)
}

/// Creates `name`, retrying across `clients` until the outcome is known (an earlier attempt
/// that committed shows as the object already there with our value).
async fn create_acked(clients: &[StoreClient], start: usize, name: &str) -> Result<()> {
    let value = name.as_bytes().to_vec();
    let txn = Txn::new(vec![Op::Create {
        key: key(name),
        value: value.clone(),
    }]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut i = start;
    loop {
        let c = &clients[i % clients.len()];
        match c.txn(&txn).await {
            Ok(TxnOutcome::Committed { .. }) => return Ok(()),
            Ok(TxnOutcome::Refused {
                failure: TxnFailure::AlreadyExists { .. },
                ..
            }) => match c.get(&key(name), ReadConsistency::Linearizable).await? {
                Some(o) if o.value == value => return Ok(()),
                other => bail!("{name} exists with a value we never wrote: {other:?}"),
            },
            Ok(TxnOutcome::Refused { failure, .. }) => bail!("unexpected refusal: {failure}"),
            Err(_) if tokio::time::Instant::now() < deadline => {
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => bail!("write of {name} never succeeded: {e}"),
        }
    }
}

/// The member list through member `via`, once it shows exactly `voters` as caught-up voters
/// and no learner.
async fn wait_voters(cluster: &Cluster, via: usize, voters: &[&str]) -> Result<MemberList> {
    let c = cluster.client(via)?;
    let mut want: Vec<String> = voters.iter().map(|s| s.to_string()).collect();
    want.sort();
    wait_for(DEADLINE, &format!("voters {want:?}, caught up"), || async {
        let list = c.member_list().await.ok()?;
        let mut got: Vec<String> = list
            .members
            .iter()
            .filter(|m| m.voter && m.caught_up)
            .map(|m| m.name.clone())
            .collect();
        got.sort();
        (got == want && list.members.len() == want.len() && list.committed).then_some(list)
    })
    .await
}

fn running(cluster: &Cluster) -> Vec<usize> {
    (0..cluster.members.len())
        .filter(|i| cluster.members[*i].is_running())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_join_with_the_server_token_survive_the_leader_and_change_membership() -> Result<()>
{
    // Frequent snapshots: the log a late joiner would need is purged, so it catches up by one.
    let mut cluster = Cluster::start_joined(3, &["--snapshot-every", "10"]).await?;
    let list = wait_voters(&cluster, 0, &["m1", "m2", "m3"]).await?;
    let ids: BTreeMap<String, u64> = list
        .members
        .iter()
        .map(|m| (m.name.clone(), m.id))
        .collect();
    assert_eq!(ids["m1"], 1, "the first master is member 1");
    assert!(ids["m2"] > 1 && ids["m3"] > 1 && ids["m2"] != ids["m3"]);
    // Every master reaches the same CA: m2 and m3 got it from m1 with the token.
    let ca = std::fs::read(cluster.members[0].data_dir.join("pki/ca.crt"))?;
    for i in 1..3 {
        assert_eq!(
            std::fs::read(cluster.members[i].data_dir.join("pki/ca.crt"))?,
            ca
        );
        assert!(cluster.members[i].data_dir.join("member.json").exists());
    }

    // Writes through every member, from several writers, while the leader is killed.
    let clients: Arc<Mutex<Vec<StoreClient>>> = Arc::new(Mutex::new(
        (0..3).map(|i| cluster.client(i)).collect::<Result<_>>()?,
    ));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (clients, acked, stop) = (clients.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut seq = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{w}-{seq:05}");
                let now = clients.lock().unwrap().clone();
                create_acked(&now, w + seq, &name).await?;
                acked.lock().unwrap().push(name);
                seq += 1;
            }
            anyhow::Ok(())
        }));
    }
    let progress = |n: usize| {
        let acked = acked.clone();
        async move {
            let target = acked.lock().unwrap().len() + n;
            wait_for(DEADLINE, "writes to progress", || async {
                (acked.lock().unwrap().len() >= target).then_some(())
            })
            .await
        }
    };
    progress(30).await?;

    // Writers send only to running members: a call to a dead one waits for its timeout.
    let use_running = |cluster: &Cluster, except: Option<usize>| -> Result<()> {
        *clients.lock().unwrap() = running(cluster)
            .into_iter()
            .filter(|i| Some(*i) != except)
            .map(|i| cluster.client(i))
            .collect::<Result<_>>()?;
        Ok(())
    };
    let leader = cluster.wait_leader(DEADLINE).await?;
    let leader_name = cluster.members[leader].name.clone();
    use_running(&cluster, Some(leader))?;
    cluster.kill(leader);
    let survivor = cluster.wait_leader(DEADLINE).await?;
    assert_ne!(survivor, leader);
    progress(20).await?;

    // The dead leader is removed (the two survivors are a majority of the new voter set).
    let out = cluster
        .navctl(survivor, &["member", "remove", &leader_name])?
        .expect_ok("navctl member remove")?;
    assert!(out.stdout.contains("removed"), "{}", out.stdout);
    let rest: Vec<String> = running(&cluster)
        .iter()
        .map(|i| cluster.members[*i].name.clone())
        .collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    wait_voters(&cluster, survivor, &rest).await?;

    // A fourth master joins through a survivor and becomes a voter; writes go on through it.
    let m4 = cluster.add_member();
    cluster.spawn_join(m4, survivor)?;
    let mut voters = rest.clone();
    voters.push("m4");
    let list = wait_voters(&cluster, survivor, &voters).await?;
    let m4_id = list.by_name("m4").expect("m4 listed").id;
    assert!(
        cluster.log_text(m4).contains("snapshot installed"),
        "m4 caught up by a snapshot"
    );
    assert!(
        ids.values().all(|id| *id < m4_id),
        "a new member gets a new id, not the removed one's"
    );
    use_running(&cluster, None)?;
    progress(20).await?;

    // A joined master restarts from its data dir alone (no --join) and is a voter again.
    let joined = running(&cluster)
        .into_iter()
        .find(|i| *i != 0 && *i != survivor)
        .expect("a joined member that does not lead");
    use_running(&cluster, Some(joined))?;
    cluster.kill(joined);
    progress(10).await?;
    cluster.spawn(joined, false)?;
    let c = cluster.client(survivor)?;
    let leader_revision = wait_for(DEADLINE, "the leader's revision", || async {
        c.status().await.ok().map(|s| s.revision)
    })
    .await?;
    wait_for(
        DEADLINE,
        "the restarted member to follow and catch up",
        || async {
            let s = cluster.status(joined).await?;
            (s["role"] == "follower" && s["revision"].as_u64()? >= leader_revision).then_some(())
        },
    )
    .await?;
    wait_voters(&cluster, survivor, &voters).await?;
    use_running(&cluster, None)?;
    progress(10).await?;

    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await??;
    }
    let mut acked = acked.lock().unwrap().clone();
    acked.sort();

    // Every acknowledged write is on every member, each read from that member's own store
    // once it has applied everything committed (read index).
    for i in running(&cluster) {
        let c = cluster.client(i)?;
        let list = wait_for(DEADLINE, "a linearizable list", || async {
            c.list(&KeyRange::kind(KIND), ReadConsistency::Linearizable)
                .await
                .ok()
        })
        .await?;
        let mut stored: Vec<String> = list.objects.iter().map(|o| o.key.name.clone()).collect();
        stored.sort();
        assert_eq!(
            stored, acked,
            "{}: the stored objects are exactly the acknowledged writes",
            cluster.members[i].name
        );
    }

    // The removed master, started again, finds out, says why and exits non-zero.
    cluster.spawn(leader, false)?;
    let status = cluster.wait_exit(leader, DEADLINE).await?;
    assert!(!status.success(), "a removed member exits non-zero");
    assert!(
        cluster
            .log_text(leader)
            .contains("this member was removed from the cluster"),
        "the removed member says why"
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_server_token_joins_as_a_master() -> Result<()> {
    let mut cluster = Cluster::start_joined(1, &[]).await?;
    let m1 = cluster.members[0].peer;
    let data = cluster.members[0].data_dir.clone();
    let server_token = cluster.server_token(0)?;
    let node_token = std::fs::read_to_string(data.join("join-token"))?
        .trim()
        .to_string();
    let ca = ClusterCa::load(&data.join("pki"))?;
    let ca_hash_hex = ca.spki_sha256().trim_start_matches("sha256:").to_string();

    // A master with a wrong secret, or with the node bootstrap token, does not get in: it
    // exits non-zero and gets no CA.
    let wrong = format!("K10{ca_hash_hex}::server:{}", "0".repeat(32));
    let node_as_server = format!("K10{ca_hash_hex}::server:{}", node_token.replace('.', ""));
    for (what, token) in [
        ("a wrong secret", wrong.as_str()),
        ("the node bootstrap token", node_token.as_str()),
        ("the node token's secret", node_as_server.as_str()),
    ] {
        let i = cluster.add_member();
        let args = vec![
            "--listen-peer".to_string(),
            cluster.members[i].peer.to_string(),
            "--join".to_string(),
            m1.to_string(),
            "--token".to_string(),
            token.to_string(),
        ];
        cluster.spawn_with(i, &args)?;
        let status = cluster.wait_exit(i, DEADLINE).await?;
        assert!(!status.success(), "{what}: the joiner fails");
        assert!(
            !cluster.members[i].data_dir.join("pki/ca.key").exists(),
            "{what}: no CA key was handed out"
        );
        let log = cluster.log_text(i);
        assert!(
            log.contains("invalid server token") || log.contains("a server token has the form"),
            "{what}: the joiner says why: {log}"
        );
    }

    // Repeated wrong attempts are rate limited like node joins.
    let mut limited = false;
    for _ in 0..12 {
        match navarch_net::join_master(m1, &wrong, "intruder").await {
            Ok(_) => bail!("a wrong server token joined"),
            Err(JoinError::Rpc(RpcError::RateLimited { .. })) => limited = true,
            Err(_) => {}
        }
    }
    assert!(limited, "wrong server tokens are rate limited");

    // The server token does not join a node.
    let node = std::process::Command::new(bin("navarch-node"))
        .args(["--name", "n1", "--master", &m1.to_string(), "--token"])
        .arg(&server_token)
        .arg("--ca-hash")
        .arg(ca.spki_sha256())
        .arg("--data-dir")
        .arg(cluster.dir.path().join("n1"))
        .arg("--join-only")
        .output()?;
    assert!(
        !node.status.success(),
        "the server token is not a node token"
    );

    // A node certificate cannot add itself (or anyone) as a member.
    let node_id = ca.issue_client("system:node:n1", &[ORG_NODES], Duration::from_secs(600))?;
    let as_node = StoreClient::new(Endpoint::client(NetConfig::new("node", node_id))?.peer(
        "m1",
        m1,
        ExpectedPeer::Master,
    ));
    for r in [
        as_node
            .member_join("system:node:n1", "127.0.0.9:7001")
            .await,
        as_node
            .member_add("system:node:n1", "127.0.0.9:7001")
            .await
            .map(|m| m.id),
    ] {
        assert!(
            matches!(r, Err(StoreError::Forbidden(_))),
            "a node certificate is refused: {r:?}"
        );
    }
    let list = cluster.client(0)?.member_list().await?;
    assert_eq!(list.members.len(), 1, "nothing joined: {list:?}");
    assert!(
        cluster.log_text(0).contains("join refused"),
        "refusals are logged"
    );

    // The last voter cannot be removed.
    let out = cluster.navctl(0, &["member", "remove", "m1"])?;
    assert!(!out.ok, "removing the last voter is refused");
    assert!(out.stderr.contains("last voter"), "{}", out.stderr);

    // A master pre-registered with `navctl member add` is a learner that cannot be promoted
    // before it has caught up; started with --join it takes that id and becomes a voter.
    let late = cluster.add_member();
    let (name, addr) = (
        cluster.members[late].name.clone(),
        cluster.members[late].peer.to_string(),
    );
    let out = cluster
        .navctl(0, &["member", "add", &name, "--peer-addr", &addr])?
        .expect_ok("navctl member add")?;
    assert!(out.stdout.contains("learner"), "{}", out.stdout);
    let id = cluster
        .client(0)?
        .member_list()
        .await?
        .by_name(&name)
        .map(|m| m.id);
    let out = cluster.navctl(0, &["member", "promote", &name])?;
    assert!(
        !out.ok && out.stderr.contains("not caught up"),
        "{}",
        out.stderr
    );
    cluster.spawn_join(late, 0)?;
    let list = wait_voters(&cluster, 0, &["m1", &name]).await?;
    assert_eq!(
        list.by_name(&name).map(|m| m.id),
        id,
        "the pre-registered id"
    );

    // The token's secret is never logged.
    let secret = server_token.rsplit(':').next().unwrap_or_default();
    for i in 0..cluster.members.len() {
        assert!(
            !cluster.log_text(i).contains(secret),
            "{} logged the server token",
            cluster.members[i].name
        );
    }
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_would_lose_quorum_is_refused() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    wait_voters(&cluster, 0, &["m1", "m2", "m3"]).await?;
    let leader = cluster.wait_leader(DEADLINE).await?;
    let stopped = (leader + 1) % 3;
    let healthy = (leader + 2) % 3;
    cluster.kill(stopped);

    // 3 voters, one stopped: removing a healthy one would leave 1 of 2 reachable.
    for victim in [healthy, leader] {
        let out = cluster.navctl(leader, &["member", "remove", &cluster.members[victim].name])?;
        assert!(
            !out.ok,
            "removing {} is refused",
            cluster.members[victim].name
        );
        assert!(out.stderr.contains("lose quorum"), "{}", out.stderr);
    }
    let list = cluster.client(leader)?.member_list().await?;
    assert_eq!(
        list.members.iter().filter(|m| m.voter).count(),
        3,
        "nothing changed: {list:?}"
    );
    create_acked(&[cluster.client(leader)?], 0, "still-writable").await?;

    // Removing the stopped one keeps a reachable majority: it is done.
    cluster
        .navctl(
            healthy,
            &["member", "remove", &cluster.members[stopped].name],
        )?
        .expect_ok("remove the stopped member")?;
    let names: Vec<&str> = [leader, healthy]
        .iter()
        .map(|i| cluster.members[*i].name.as_str())
        .collect();
    wait_voters(&cluster, leader, &names).await?;
    cluster.passed();
    Ok(())
}
