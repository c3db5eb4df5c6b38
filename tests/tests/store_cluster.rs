//! Multi-process tests of the replicated store: three `navarch-master` processes on
//! 127.0.0.1-3, driven over QUIC with an admin certificate, killed with SIGKILL, wiped,
//! partitioned with the fault layer, backed up and restored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use navarch_store::{
    watch_resuming, KeyRange, ListResult, ObjectKey, Op, ReadConsistency, Revision, StoreClient,
    StoreError, Txn, TxnFailure, TxnOutcome,
};
use navarch_tests::{bin, wait_for, Cluster};
use serde_json::json;

const KIND: &str = "things";

/// These tests compare revisions across restarts: the masters must not write on their own
/// (their API leases, renewed every 10 s, would move the revision).
const QUIET: &[&str] = &["--endpoint-reconciler-type", "none"];

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(KIND, "default", name)
}

/// Creates `name` with `value`, retrying across members until the outcome is known. A retry
/// that finds the object already there with our value means an earlier attempt committed.
async fn create_acked(
    clients: &[StoreClient],
    start: usize,
    name: &str,
    value: &[u8],
) -> Result<()> {
    let txn = Txn::new(vec![Op::Create {
        key: key(name),
        value: value.to_vec(),
    }]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut i = start;
    loop {
        let c = &clients[i % clients.len()];
        match c.txn(&txn).await {
            Ok(TxnOutcome::Committed { .. }) => return Ok(()),
            Ok(TxnOutcome::Refused {
                failure: TxnFailure::AlreadyExists { .. },
                ..
            }) => {
                let got = c.get(&key(name), ReadConsistency::Linearizable).await?;
                match got {
                    Some(o) if o.value == value => return Ok(()),
                    other => bail!("{name} exists with a value we never wrote: {other:?}"),
                }
            }
            Ok(TxnOutcome::Refused { failure, .. }) => bail!("unexpected refusal: {failure}"),
            Err(_) if tokio::time::Instant::now() < deadline => {
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => bail!("write of {name} never succeeded: {e}"),
        }
    }
}

async fn list_all(c: &StoreClient) -> Result<ListResult> {
    Ok(c.list(&KeyRange::kind(KIND), ReadConsistency::Linearizable)
        .await?)
}

async fn list_eventually(cluster: &Cluster, i: usize) -> Result<ListResult> {
    let c = cluster.client(i)?;
    let last_error = Mutex::new(None);
    let r = wait_for(Duration::from_secs(30), "a linearizable list", || async {
        match list_all(&c).await {
            Ok(l) => Some(l),
            Err(e) => {
                *last_error.lock().unwrap() = Some(e);
                None
            }
        }
    })
    .await;
    r.map_err(|e| {
        anyhow::anyhow!(
            "{e} from m{}; last error: {:?}",
            i + 1,
            last_error.lock().unwrap()
        )
    })
}

fn clients(cluster: &Cluster) -> Result<Vec<StoreClient>> {
    (0..cluster.members.len())
        .map(|i| cluster.client(i))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_repeated_leader_kills() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let clients = Arc::new(clients(&cluster)?);
    let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..6 {
        let (clients, acked, stop) = (clients.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut seq = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{w}-{seq:05}");
                let value = format!("value of {name}").into_bytes();
                create_acked(&clients, w + seq as usize, &name, &value).await?;
                acked.lock().unwrap().insert(name, value);
                seq += 1;
            }
            anyhow::Ok(())
        }));
    }

    for round in 0..3 {
        let target = acked.lock().unwrap().len() + 40;
        wait_for(Duration::from_secs(60), "writes to progress", || async {
            (acked.lock().unwrap().len() >= target).then_some(())
        })
        .await?;
        let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
        cluster.kill(leader);
        let new_leader = cluster.wait_leader(Duration::from_secs(30)).await?;
        assert_ne!(
            new_leader, leader,
            "round {round}: a killed member cannot lead"
        );
        let after = acked.lock().unwrap().len() + 20;
        wait_for(
            Duration::from_secs(60),
            "writes to resume under the new leader",
            || async { (acked.lock().unwrap().len() >= after).then_some(()) },
        )
        .await?;
        cluster.spawn(leader, false)?;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await??;
    }

    let acked = acked.lock().unwrap().clone();
    for i in 0..3 {
        let list = list_eventually(&cluster, i).await?;
        let stored: BTreeMap<String, Vec<u8>> = list
            .objects
            .iter()
            .map(|o| (o.key.name.clone(), o.value.clone()))
            .collect();
        assert_eq!(
            stored,
            acked,
            "member m{}: the stored objects are exactly the acknowledged writes",
            i + 1
        );
        let revisions: BTreeSet<Revision> = list.objects.iter().map(|o| o.mod_revision).collect();
        assert_eq!(
            revisions.len(),
            list.objects.len(),
            "every write committed once, at its own revision"
        );
    }
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_member_catches_up_and_wiped_member_rejoins_by_snapshot() -> Result<()> {
    let mut cluster = Cluster::start(
        3,
        &[
            "--snapshot-every",
            "100",
            "--endpoint-reconciler-type",
            "none",
        ],
    )
    .await?;
    let clients = clients(&cluster)?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let follower = (leader + 1) % 3;

    // A member killed while writes go on catches up from its data dir.
    cluster.kill(follower);
    for n in 0..150 {
        create_acked(&clients, leader, &format!("a{n:04}"), b"x").await?;
    }
    cluster.spawn(follower, false)?;
    let want = list_eventually(&cluster, leader).await?;
    let caught_up = wait_for(
        Duration::from_secs(30),
        "the restarted member to catch up",
        || async {
            let s = cluster.status(follower).await?;
            (s["revision"].as_u64()? >= want.revision.0).then_some(s)
        },
    )
    .await?;
    assert_eq!(caught_up["revision"].as_u64(), Some(want.revision.0));

    // A member whose data dir is wiped rejoins through a snapshot: the log it would need has
    // been purged on the others.
    let victim = (cluster.wait_leader(Duration::from_secs(30)).await? + 2) % 3;
    cluster.wipe(victim)?;
    for n in 0..1300 {
        create_acked(&clients, victim + 1, &format!("b{n:04}"), b"y").await?;
    }
    let live = (victim + 1) % 3;
    let purged = cluster
        .status(live)
        .await
        .and_then(|s| s["purged"].as_u64())
        .unwrap_or(0);
    assert!(
        purged > 0,
        "the live members purged their log behind a snapshot"
    );
    cluster.spawn(victim, true)?;
    let want = list_eventually(&cluster, live).await?;
    let s = wait_for(
        Duration::from_secs(60),
        "the wiped member to catch up",
        || async {
            let s = cluster.status(victim).await?;
            (s["revision"].as_u64()? >= want.revision.0).then_some(s)
        },
    )
    .await?;
    assert!(
        s["snapshot"].as_u64().unwrap_or(0) > 0,
        "the wiped member installed a snapshot: {s}"
    );
    let local = clients[victim]
        .list(
            &KeyRange::kind(KIND),
            ReadConsistency::AtLeast(want.revision),
        )
        .await?;
    assert_eq!(
        local.objects, want.objects,
        "the rejoined member holds the same objects"
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_restores_same_objects_and_revision() -> Result<()> {
    let mut cluster = Cluster::start(3, QUIET).await?;
    let clients = clients(&cluster)?;
    for n in 0..120 {
        create_acked(&clients, n, &format!("o{n:03}"), format!("v{n}").as_bytes()).await?;
    }
    for n in 0..30 {
        let txn = Txn::new(vec![Op::Update {
            key: key(&format!("o{n:03}")),
            value: b"updated".to_vec(),
            expected: None,
        }]);
        assert!(matches!(
            clients[n % 3].txn(&txn).await?,
            TxnOutcome::Committed { .. }
        ));
    }
    for n in 100..120 {
        let txn = Txn::new(vec![Op::Delete {
            key: key(&format!("o{n:03}")),
            expected: None,
        }]);
        assert!(matches!(
            clients[n % 3].txn(&txn).await?,
            TxnOutcome::Committed { .. }
        ));
    }
    let before = list_all(&clients[0]).await?;
    assert_eq!(before.objects.len(), 100);

    // The backup goes through navctl, against a follower.
    let backup = cluster.dir.path().join("cluster.backup");
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let follower = (leader + 1) % 3;
    let out = std::process::Command::new(bin("navctl"))
        .arg("--server")
        .arg(cluster.members[follower].peer.to_string())
        .arg("--credentials")
        .arg(&cluster.members[0].data_dir)
        .arg("backup")
        .arg("--out")
        .arg(&backup)
        .output()?;
    assert!(
        out.status.success(),
        "navctl backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        cluster.kill(i);
    }

    let mut restored = Cluster::create_like(3, QUIET, &cluster)?;
    for m in &restored.members {
        let out = std::process::Command::new(bin("navarch-master"))
            .arg("restore")
            .arg("--backup")
            .arg(&backup)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .output()?;
        assert!(
            out.status.success(),
            "restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Restoring over an existing store is refused.
    let again = std::process::Command::new(bin("navarch-master"))
        .args(["restore", "--backup"])
        .arg(&backup)
        .arg("--data-dir")
        .arg(&restored.members[0].data_dir)
        .output()?;
    assert!(
        !again.status.success(),
        "restore into a used data dir must fail"
    );

    for i in 0..3 {
        restored.spawn(i, false)?;
    }
    restored.wait_leader(Duration::from_secs(30)).await?;
    let after = list_eventually(&restored, 1).await?;
    assert_eq!(after.revision, before.revision, "same revision");
    assert_eq!(
        after.objects, before.objects,
        "same objects, values and revisions"
    );

    // The restored cluster accepts writes, at revisions after the backup's.
    let rc = restored.client(0)?;
    let txn = Txn::new(vec![Op::Create {
        key: key("new"),
        value: b"n".to_vec(),
    }]);
    match rc.txn(&txn).await? {
        TxnOutcome::Committed { revision, .. } => {
            assert_eq!(revision, Revision(before.revision.0 + 1))
        }
        other => bail!("write after restore: {other:?}"),
    }
    cluster.passed();
    restored.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_resumes_across_reconnect_without_gap_or_duplicate() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let clients = clients(&cluster)?;
    for n in 0..10 {
        create_acked(&clients, n, &format!("pre{n}"), b"p").await?;
    }
    let from = list_all(&clients[0]).await?.revision;

    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let watched = (leader + 1) % 3;
    let order = vec![clients[watched].clone(), clients[(watched + 1) % 3].clone()];
    let mut rx = watch_resuming(order, KeyRange::kind(KIND), from);

    let writer = {
        let clients = clients.clone();
        tokio::spawn(async move {
            for n in 0..200 {
                create_acked(&clients, leader, &format!("post{n:03}"), b"q").await?;
            }
            anyhow::Ok(())
        })
    };
    let mut got = Vec::new();
    while got.len() < 200 {
        let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await?
            .expect("watch ended")?;
        got.push(ev);
        if got.len() == 50 {
            // Cut the watch's member away mid-stream.
            cluster.kill(watched);
        }
    }
    writer.await??;
    // Other writes (the masters' bootstrap objects) share the revision sequence: compare with
    // what the store holds in the watched range, changed after the start revision.
    let survivor = (watched + 1) % 3;
    let mut expected: Vec<(u64, String)> = list_all(&clients[survivor])
        .await?
        .objects
        .into_iter()
        .filter(|o| o.mod_revision > from)
        .map(|o| (o.mod_revision.0, o.key.name))
        .collect();
    expected.sort();
    let delivered: Vec<(u64, String)> = got
        .iter()
        .map(|e| (e.revision.0, e.key.name.clone()))
        .collect();
    assert_eq!(
        delivered, expected,
        "every change after the start revision, once, in order"
    );
    assert!(delivered.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(delivered[0].1, "post000");
    assert_eq!(delivered[199].1, "post199");
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_compacted_revision_is_expired() -> Result<()> {
    let mut cluster = Cluster::start(1, &["--history-revisions", "50"]).await?;
    let clients = clients(&cluster)?;
    for n in 0..200 {
        create_acked(&clients, 0, &format!("c{n:03}"), b"c").await?;
    }
    let mut s = clients[0]
        .watch(&KeyRange::kind(KIND), Some(Revision(5)))
        .await?;
    use futures::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await?
        .expect("an answer");
    assert!(
        matches!(
            first,
            Err(StoreError::Expired {
                requested: Revision(5),
                ..
            })
        ),
        "got {first:?}"
    );

    // A watch inside the retained history still works.
    let rev = list_all(&clients[0]).await?.revision;
    let mut s = clients[0]
        .watch(&KeyRange::kind(KIND), Some(Revision(rev.0 - 10)))
        .await?;
    let batch = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await?
        .expect("an event")?;
    assert_eq!(batch.revision, Revision(rev.0 - 9));
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_with_same_expected_revision_one_wins() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let clients = clients(&cluster)?;
    create_acked(&clients, 0, "contended", b"0").await?;
    for round in 0..20 {
        let cur = clients[0]
            .get(&key("contended"), ReadConsistency::Linearizable)
            .await?
            .expect("exists");
        let txn_a = Txn::new(vec![Op::Update {
            key: key("contended"),
            value: format!("a{round}").into_bytes(),
            expected: Some(cur.mod_revision),
        }]);
        let txn_b = Txn::new(vec![Op::Update {
            key: key("contended"),
            value: format!("b{round}").into_bytes(),
            expected: Some(cur.mod_revision),
        }]);
        let (a, b) = tokio::join!(
            clients[round % 3].txn(&txn_a),
            clients[(round + 1) % 3].txn(&txn_b)
        );
        let outcomes = [a?, b?];
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, TxnOutcome::Committed { .. }))
            .count();
        let conflicts = outcomes
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    TxnOutcome::Refused {
                        failure: TxnFailure::Conflict { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!((won, conflicts), (1, 1), "round {round}: {outcomes:?}");
    }
    cluster.passed();
    Ok(())
}

async fn cut_off(cluster: &Cluster, victim: usize) -> Result<()> {
    for other in 0..cluster.members.len() {
        if other != victim {
            let rule = json!({"peer": cluster.members[other].name, "direction": "both", "fault": {"kind": "cut"}});
            cluster.fault(victim, rule).await?;
        }
    }
    Ok(())
}

async fn assert_isolated(clients: &[StoreClient], victim: usize, probe: &ObjectKey) -> Result<()> {
    let txn = Txn::new(vec![Op::Create {
        key: key("from-minority"),
        value: b"m".to_vec(),
    }]);
    let w = clients[victim].txn(&txn).await;
    assert!(w.is_err(), "an isolated member cannot commit: {w:?}");
    let r = clients[victim]
        .get(probe, ReadConsistency::Linearizable)
        .await;
    assert!(
        r.is_err(),
        "an isolated member serves no linearizable read: {r:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_minority_cannot_commit_or_read_stale_then_catches_up() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let clients = clients(&cluster)?;
    create_acked(&clients, 0, "probe", b"before").await?;

    // A follower cut off from both others.
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let victim = (leader + 1) % 3;
    cut_off(&cluster, victim).await?;
    let txn = Txn::new(vec![Op::Update {
        key: key("probe"),
        value: b"after".to_vec(),
        expected: None,
    }]);
    assert!(
        matches!(
            clients[leader].txn(&txn).await?,
            TxnOutcome::Committed { .. }
        ),
        "the majority commits"
    );
    assert_isolated(&clients, victim, &key("probe")).await?;
    cluster.clear_faults(victim).await?;
    let healed = wait_for(
        Duration::from_secs(30),
        "the healed member to serve the new value",
        || async {
            let o = clients[victim]
                .get(&key("probe"), ReadConsistency::Linearizable)
                .await
                .ok()??;
            (o.value == b"after").then_some(o)
        },
    )
    .await?;
    assert_eq!(healed.value, b"after");

    // The leader cut off: it can neither commit nor confirm a read; the majority elects another.
    let old = cluster.wait_leader(Duration::from_secs(30)).await?;
    cut_off(&cluster, old).await?;
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new_leader = wait_for(
        Duration::from_secs(30),
        "the majority to elect a new leader",
        || async {
            let s = cluster.status(others[0]).await?;
            let l = s["leader"].as_str()?.to_string();
            (l != cluster.members[old].name).then_some(l)
        },
    )
    .await?;
    let nl = cluster
        .members
        .iter()
        .position(|m| m.name == new_leader)
        .expect("known member");
    let txn = Txn::new(vec![Op::Update {
        key: key("probe"),
        value: b"majority".to_vec(),
        expected: None,
    }]);
    assert!(matches!(
        clients[nl].txn(&txn).await?,
        TxnOutcome::Committed { .. }
    ));
    assert_isolated(&clients, old, &key("probe")).await?;
    cluster.clear_faults(old).await?;
    wait_for(
        Duration::from_secs(30),
        "the old leader to catch up",
        || async {
            let o = clients[old]
                .get(&key("probe"), ReadConsistency::Linearizable)
                .await
                .ok()??;
            (o.value == b"majority").then_some(())
        },
    )
    .await?;
    let list = list_all(&clients[old]).await?;
    assert!(
        list.objects.iter().all(|o| o.key.name != "from-minority"),
        "nothing from the minority committed"
    );
    cluster.passed();
    Ok(())
}
