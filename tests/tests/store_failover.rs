//! Multi-process tests of failover: a leader or follower paused with SIGSTOP past the election
//! timeout and resumed (pre-vote keeps it from deposing anyone), and a leader stopped with
//! SIGTERM handing leadership over without failing a write, and a member restarted after a
//! SIGKILL resetting its peers' old connections. Three `navarch-master` processes
//! on 127.0.0.1-3, driven over QUIC with an admin certificate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_store::{
    KeyRange, ObjectKey, Op, ReadConsistency, Revision, StoreClient, Txn, TxnOutcome,
};
use navarch_tests::{wait_for, Cluster};

const KIND: &str = "failover";

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(KIND, "default", name)
}

/// Writers creating unique keys through the given members. A write whose outcome is
/// unknown (an error) is settled by reading it back later; `errors` counts the errors seen.
struct Writers {
    acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    unsure: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
}

impl Writers {
    fn start(prefix: &str, clients: Vec<(usize, StoreClient)>, per_member: usize) -> Writers {
        let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let unsure: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let errors = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (member, client) in clients {
            for w in 0..per_member {
                let (acked, unsure, errors, stop) =
                    (acked.clone(), unsure.clone(), errors.clone(), stop.clone());
                let client = client.clone();
                let prefix = prefix.to_string();
                tasks.push(tokio::spawn(async move {
                    let mut seq = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let name = format!("{prefix}-m{member}-w{w}-{seq:05}");
                        let value = format!("value of {name}").into_bytes();
                        seq += 1;
                        let txn = Txn::new(vec![Op::Create {
                            key: key(&name),
                            value: value.clone(),
                        }]);
                        match client.txn(&txn).await {
                            Ok(TxnOutcome::Committed { .. }) => {
                                acked.lock().unwrap().insert(name, value);
                            }
                            Ok(TxnOutcome::Refused { failure, .. }) => {
                                bail!("{name}: a fresh create was refused: {failure:?}")
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::SeqCst);
                                unsure.lock().unwrap().insert(name, value);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    Ok(())
                }));
            }
        }
        Writers {
            acked,
            unsure,
            errors,
            stop,
            tasks,
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn progress(&self, more: usize, what: &str) -> Result<()> {
        let target = self.count() + more;
        wait_for(Duration::from_secs(60), what, || async {
            (self.count() >= target).then_some(())
        })
        .await
    }

    async fn stop(self) -> Result<(BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await??;
        }
        let acked = self.acked.lock().unwrap().clone();
        let unsure = self.unsure.lock().unwrap().clone();
        Ok((acked, unsure, self.errors.load(Ordering::SeqCst)))
    }
}

/// Every member, once it answers a linearizable list, holds every acknowledged write once,
/// nothing that was never written, and each write at its own revision.
async fn assert_all_members_hold(
    cluster: &Cluster,
    acked: &BTreeMap<String, Vec<u8>>,
    unsure: &BTreeMap<String, Vec<u8>>,
) -> Result<()> {
    let mut reference: Option<BTreeMap<String, Vec<u8>>> = None;
    for i in 0..cluster.members.len() {
        let c = cluster.client(i)?;
        let list = wait_for(Duration::from_secs(30), "a linearizable list", || async {
            c.list(&KeyRange::kind(KIND), ReadConsistency::Linearizable)
                .await
                .ok()
        })
        .await
        .with_context(|| format!("list on m{}", i + 1))?;
        let stored: BTreeMap<String, Vec<u8>> = list
            .objects
            .iter()
            .map(|o| (o.key.name.clone(), o.value.clone()))
            .collect();
        for (name, value) in acked {
            assert_eq!(
                stored.get(name),
                Some(value),
                "m{}: acknowledged write {name} is missing or changed",
                i + 1
            );
        }
        for (name, value) in &stored {
            let expected = acked.get(name).or_else(|| unsure.get(name));
            assert_eq!(
                expected,
                Some(value),
                "m{}: {name} was never written",
                i + 1
            );
        }
        let revisions: BTreeSet<Revision> = list.objects.iter().map(|o| o.mod_revision).collect();
        assert_eq!(
            revisions.len(),
            list.objects.len(),
            "m{}: a write applied twice",
            i + 1
        );
        match &reference {
            None => reference = Some(stored),
            Some(r) => assert_eq!(r, &stored, "m{} differs from m1", i + 1),
        }
    }
    Ok(())
}

async fn term(cluster: &Cluster, i: usize) -> Result<u64> {
    let s = cluster
        .status(i)
        .await
        .with_context(|| format!("m{} does not answer", i + 1))?;
    s["term"].as_u64().context("no term in /debug/store")
}

/// Waits until member `i` has applied at least what `leader` had committed when called.
async fn wait_caught_up(cluster: &Cluster, i: usize, leader: usize) -> Result<()> {
    let committed = cluster.status(leader).await.context("leader status")?["committed"]
        .as_u64()
        .context("committed")?;
    wait_for(
        Duration::from_secs(30),
        "the resumed member to catch up",
        || async {
            let s = cluster.status(i).await?;
            (s["applied"].as_u64()? >= committed).then_some(())
        },
    )
    .await
}

/// Waits until the member `i`'s log shows `needle`.
async fn wait_log(cluster: &Cluster, i: usize, needle: &str) -> Result<()> {
    let path = cluster.members[i].log.clone();
    wait_for(Duration::from_secs(10), needle, || async {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|l| l.contains(needle))
            .map(|_| ())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_leader_does_not_disrupt_its_successor() -> Result<()> {
    let cluster = Cluster::start(3, &[]).await?;
    let old = cluster.wait_leader(Duration::from_secs(30)).await?;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let clients = survivors
        .iter()
        .map(|&i| Ok((i, cluster.client(i)?)))
        .collect::<Result<Vec<_>>>()?;
    let writers = Writers::start("p", clients, 2);
    writers.progress(30, "writes before the pause").await?;

    // Paused well past the election timeout (150-250 ms): the others elect a successor.
    cluster.signal(old, "STOP")?;
    let successor = wait_for(Duration::from_secs(10), "a successor", || async {
        let mut leader = None;
        for &i in &survivors {
            let s = cluster.status(i).await?;
            let l = s["leader"].as_str()?.to_string();
            if leader.as_ref().is_some_and(|x| *x != l) {
                return None;
            }
            leader = Some(l);
        }
        let l = leader?;
        let idx = cluster.members.iter().position(|m| m.name == l)?;
        (idx != old).then_some(idx)
    })
    .await?;
    writers.progress(30, "writes under the successor").await?;
    let successor_term = term(&cluster, successor).await?;

    cluster.signal(old, "CONT")?;
    wait_caught_up(&cluster, old, successor).await?;
    writers.progress(30, "writes after the resume").await?;
    assert_eq!(
        cluster.wait_leader(Duration::from_secs(10)).await?,
        successor,
        "the resumed member took leadership back"
    );
    for i in 0..3 {
        assert_eq!(
            term(&cluster, i).await?,
            successor_term,
            "m{}: the resumed leader forced an election",
            i + 1
        );
    }
    let (acked, unsure, _) = writers.stop().await?;
    assert_all_members_hold(&cluster, &acked, &unsure).await?;
    let mut cluster = cluster;
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_follower_rejoins_without_an_election() -> Result<()> {
    let cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let follower = (leader + 1) % 3;
    let writers = Writers::start("f", vec![(leader, cluster.client(leader)?)], 2);
    writers.progress(30, "writes before the pause").await?;
    let before = term(&cluster, leader).await?;

    cluster.signal(follower, "STOP")?;
    writers
        .progress(30, "writes while the follower is paused")
        .await?;
    // The pause itself is the stimulus: four times the longest election timeout (250 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.signal(follower, "CONT")?;
    wait_caught_up(&cluster, follower, leader).await?;
    writers.progress(30, "writes after the resume").await?;

    assert_eq!(cluster.wait_leader(Duration::from_secs(10)).await?, leader);
    for i in 0..3 {
        assert_eq!(
            term(&cluster, i).await?,
            before,
            "m{}: the resumed follower raised the term",
            i + 1
        );
    }
    let (acked, unsure, errors) = writers.stop().await?;
    assert_eq!(errors, 0, "writes through a healthy leader failed");
    assert_all_members_hold(&cluster, &acked, &unsure).await?;
    let mut cluster = cluster;
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_hands_leadership_over_without_failing_a_write() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let mut all_acked = BTreeMap::new();
    for round in 0..2 {
        let old = cluster.wait_leader(Duration::from_secs(30)).await?;
        let before = term(&cluster, old).await?;
        let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
        let clients = survivors
            .iter()
            .map(|&i| Ok((i, cluster.client(i)?)))
            .collect::<Result<Vec<_>>>()?;
        let writers = Writers::start(&format!("r{round}"), clients, 2);
        writers.progress(50, "writes before the stop").await?;

        let status = cluster.terminate(old, Duration::from_secs(10)).await?;
        assert!(
            status.success(),
            "round {round}: the leader exited with {status}"
        );
        wait_log(&cluster, old, "handed leadership over").await?;
        writers.progress(50, "writes under the successor").await?;
        let successor = cluster.wait_leader(Duration::from_secs(10)).await?;
        assert_ne!(successor, old);
        assert_eq!(
            term(&cluster, successor).await?,
            before + 1,
            "round {round}: more than one election after a handover"
        );

        let (acked, unsure, errors) = writers.stop().await?;
        assert_eq!(
            errors, 0,
            "round {round}: a write through a surviving member failed during the handover"
        );
        assert!(unsure.is_empty());
        all_acked.extend(acked);
        cluster.spawn(old, false)?;
        wait_caught_up(&cluster, old, successor).await?;
        assert_all_members_hold(&cluster, &all_acked, &unsure).await?;
    }
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_member_restarted_resets_the_leaders_old_connection() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let follower = (leader + 1) % 3;
    let writers = Writers::start("k", vec![(leader, cluster.client(leader)?)], 1);
    writers.progress(20, "writes before the kill").await?;
    cluster.kill(follower);
    cluster.spawn(follower, false)?;
    writers.progress(20, "writes after the restart").await?;
    wait_caught_up(&cluster, follower, leader).await?;
    // The restarted process answered the leader's packets on the old connection with a
    // stateless reset (its reset key is kept in the data dir): the leader dialed again at
    // once instead of waiting out the QUIC idle timeout.
    wait_log(&cluster, leader, "reset by peer").await?;
    let log = std::fs::read_to_string(&cluster.members[leader].log)?;
    assert!(
        !log.contains("connection timed out"),
        "the leader waited out the idle timeout of its old connection"
    );
    let (acked, unsure, errors) = writers.stop().await?;
    assert_eq!(errors, 0);
    assert_all_members_hold(&cluster, &acked, &unsure).await?;
    cluster.passed();
    Ok(())
}
