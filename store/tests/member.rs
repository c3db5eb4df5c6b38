//! One in-process store member on loopback QUIC: who may call its methods, that its clients
//! check whom they reached, and its services mounted after the endpoint is bound.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use navarch_net::pki::{ClusterCa, Identity, ORG_ADMINS, ORG_MEMBERS, ORG_NODES};
use navarch_net::{Endpoint, ExpectedPeer, NetConfig, PeerClient, Router, RpcError};
use navarch_store::{
    methods, Member, MemberConfig, ObjectKey, Op, ReadConsistency, StoreClient, StoreError, Txn,
    TxnFailure, TxnOutcome,
};

const DEADLINE: Duration = Duration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    ca: ClusterCa,
    member: Arc<Member>,
    endpoint: Endpoint,
    router: Router,
}

impl Fixture {
    /// Member `m1` of a one-member cluster, started but not mounted.
    async fn start() -> Fixture {
        Self::start_with(|_| {}).await
    }

    /// Like [`Fixture::start`], with `tune` applied to the member's configuration.
    async fn start_with(tune: impl FnOnce(&mut MemberConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ClusterCa::load_or_create(&dir.path().join("ca")).unwrap();
        let id = ca.issue_member("m1", Duration::from_secs(600)).unwrap();
        let router = Router::new();
        let endpoint = Endpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            NetConfig::new("m1", id),
            router.clone(),
        )
        .unwrap();
        let addr = endpoint.local_addr().unwrap();
        let mut cfg = MemberConfig::new("m1", dir.path().join("m1"), vec![("m1".into(), addr)]);
        tune(&mut cfg);
        let member = Member::start(cfg, endpoint.clone()).await.unwrap();
        Fixture {
            _dir: dir,
            ca,
            member,
            endpoint,
            router,
        }
    }

    fn mount(&self) {
        navarch_store::mount(&self.router, &self.member).unwrap();
    }

    fn identity(&self, cn: &str, org: &str) -> Identity {
        let hour = Duration::from_secs(3600);
        if org == ORG_MEMBERS {
            self.ca.issue_member(cn, hour).unwrap()
        } else {
            self.ca.issue_client(cn, &[org], hour).unwrap()
        }
    }

    /// A raw client of m1 presenting `id`.
    fn peer(&self, id: Identity) -> PeerClient {
        Endpoint::client(NetConfig::new("caller", id))
            .unwrap()
            .peer(
                "m1",
                self.endpoint.local_addr().unwrap(),
                ExpectedPeer::member("m1"),
            )
    }

    async fn wait_leader(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.member.status().leader.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn put(name: &str) -> Txn {
    Txn::new(vec![Op::Put {
        key: ObjectKey::new("Test", "default", name),
        value: b"v".to_vec(),
    }])
}

fn is_refused<T: std::fmt::Debug>(r: &Result<T, RpcError>, method: &str) -> bool {
    matches!(r, Err(RpcError::Refused(m)) if m.contains("may not call") && m.contains(method))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_and_read_index_only_from_members_and_store_ops_from_members_and_admins() {
    let f = Fixture::start().await;
    f.mount();
    f.wait_leader().await;
    let txn = Bytes::from(navarch_net::codec::encode(&put("a")).unwrap());
    let unit = Bytes::from(navarch_net::codec::encode(&()).unwrap());

    let node = f.peer(f.identity("system:node:n1", ORG_NODES));
    let admin = f.peer(f.identity("admin", ORG_ADMINS));
    let other_member = f.peer(f.identity("m2", ORG_MEMBERS));

    for m in ["raft.vote", "raft.append", "raft.snapshot"] {
        let r = node.call_raw(m, Bytes::new()).await;
        assert!(is_refused(&r, m), "node calling {m}: {r:?}");
        let r = admin.call_raw(m, Bytes::new()).await;
        assert!(is_refused(&r, m), "admin calling {m}: {r:?}");
        // A member gets past authorization (and fails on the empty body).
        let r = other_member.call_raw(m, Bytes::new()).await;
        assert!(
            matches!(r, Err(RpcError::Decode(_))),
            "member calling {m}: {r:?}"
        );
    }

    let m = methods::READ_INDEX;
    assert!(is_refused(&node.call_raw(m, unit.clone()).await, m));
    assert!(is_refused(&admin.call_raw(m, unit.clone()).await, m));
    let index: Result<u64, StoreError> = other_member.call(m, &()).await.unwrap();
    assert!(index.unwrap() > 0);

    // Writes (a follower's forwarded ones, an admin's own) from members and admins only.
    let m = methods::TXN;
    assert!(is_refused(&node.call_raw(m, txn.clone()).await, m));
    for who in [&admin, &other_member] {
        let out: Result<TxnOutcome, StoreError> = who.call(m, &put("a")).await.unwrap();
        assert!(matches!(out, Ok(TxnOutcome::Committed { .. })), "{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_client_checks_that_it_reached_that_member() {
    let f = Fixture::start().await;
    f.mount();
    f.wait_leader().await;
    let addr = f.endpoint.local_addr().unwrap();
    let ep = Endpoint::client(NetConfig::new("admin", f.identity("admin", ORG_ADMINS))).unwrap();

    let right = StoreClient::new(ep.peer("m1", addr, ExpectedPeer::member("m1")));
    assert_eq!(right.status().await.unwrap().name, "m1");

    // Dialing m2 at an address where m1 answers fails, and says so.
    let wrong = StoreClient::new(ep.peer("m2", addr, ExpectedPeer::member("m2")));
    let err = wrong.status().await.unwrap_err();
    assert!(
        err.to_string().contains("wrong peer") && err.to_string().contains("expected member m2"),
        "{err}"
    );
    // Any master will do for navctl's raw store commands.
    let any = StoreClient::new(ep.peer("master", addr, ExpectedPeer::Master));
    assert!(any.status().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_before_the_services_are_mounted_are_retryable() {
    let f = Fixture::start().await;
    let client = StoreClient::new(f.peer(f.identity("admin", ORG_ADMINS)));
    let err = client.status().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("store.*")),
        "{err:?}"
    );
    f.mount();
    assert_eq!(client.status().await.unwrap().name, "m1");
    f.wait_leader().await;
    let got = client
        .get(
            &ObjectKey::new("Test", "default", "x"),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    assert!(got.is_none());
    // Mounting twice is refused: one member per endpoint.
    assert!(navarch_store::mount(&f.router, &f.member).is_err());
    f.member.shutdown().await;
    f.endpoint.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::start().await;
    let db = f._dir.path().join("m1/db");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o700);
    let files: Vec<_> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(files.len() > 3, "{files:?}");
    for p in files {
        assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
    }
}

/// The value of the sample `name` (no labels) in a text exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

fn scrape(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_metrics_move_with_writes_reads_and_snapshots() {
    let f = Fixture::start_with(|cfg| cfg.snapshot_every = 5).await;
    let mut registry = prometheus_client::registry::Registry::default();
    f.member.register_metrics(&mut registry);
    f.wait_leader().await;

    let before = scrape(&registry);
    assert_eq!(
        sample(&before, "navarch_store_commit_latency_seconds_count"),
        0.0
    );
    assert_eq!(sample(&before, "navarch_store_revision"), 0.0);

    let writes = 12;
    for i in 0..writes {
        let out = f.member.write(put(&format!("k{i}"))).await.unwrap();
        assert!(matches!(out, TxnOutcome::Committed { .. }), "{out:?}");
    }
    f.member
        .get(
            &ObjectKey::new("Test", "default", "k0"),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap()
        .expect("k0 was written");
    f.member.trigger_snapshot().await.unwrap();
    // Snapshots and purges happen in the background: wait for both with a deadline.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = f.member.status();
        if s.snapshot.is_some_and(|i| i > 0) && s.purged.is_some_and(|i| i > 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot and purge: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let after = scrape(&registry);
    let n = writes as f64;
    assert_eq!(
        sample(&after, "navarch_store_commit_latency_seconds_count"),
        n
    );
    assert!(sample(&after, "navarch_store_commit_latency_seconds_sum") > 0.0);
    // One entry per write at least, plus the blank entry of the election.
    assert!(sample(&after, "navarch_store_apply_latency_seconds_count") >= n + 1.0);
    assert!(sample(&after, "navarch_store_read_index_latency_seconds_count") >= 1.0);
    assert!(sample(&after, "navarch_store_raft_term") >= 1.0);
    assert_eq!(sample(&after, "navarch_store_is_leader"), 1.0);
    assert_eq!(sample(&after, "navarch_store_leader_changes_total"), 1.0);
    let last = sample(&after, "navarch_store_last_log_index");
    assert!(last >= n + 1.0, "{after}");
    assert_eq!(sample(&after, "navarch_store_committed_index"), last);
    assert_eq!(sample(&after, "navarch_store_applied_index"), last);
    assert!(sample(&after, "navarch_store_snapshot_index") > 0.0);
    assert!(sample(&after, "navarch_store_purged_index") > 0.0);
    assert_eq!(sample(&after, "navarch_store_revision"), n);
    assert!(
        after.contains("# UNIT navarch_store_commit_latency_seconds seconds"),
        "{after}"
    );
}

/// A second in-process member `name`, joined to `f`'s cluster through `member_join` with its
/// own member certificate, started and mounted.
async fn join_second(f: &Fixture, dir: &std::path::Path, name: &str) -> (Arc<Member>, Router) {
    let router = Router::new();
    let endpoint = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        NetConfig::new(name, f.identity(name, ORG_MEMBERS)),
        router.clone(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let via = StoreClient::new(endpoint.peer(
        "m1",
        f.endpoint.local_addr().unwrap(),
        ExpectedPeer::member("m1"),
    ));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let id = loop {
        match via.member_join(name, &addr.to_string()).await {
            Ok(id) => break id,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "join: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Asking again (a joiner that lost the answer) gets the same id.
    assert_eq!(via.member_join(name, &addr.to_string()).await.unwrap(), id);
    let mut cfg = MemberConfig::new(name, dir.join(name), vec![]);
    cfg.joined = Some(id);
    let member = Member::start(cfg, endpoint).await.unwrap();
    navarch_store::mount(&router, &member).unwrap();
    (member, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_member_is_promoted_then_removed_and_knows_it() {
    let f = Fixture::start().await;
    f.mount();
    f.wait_leader().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = StoreClient::new(f.peer(f.identity("admin", ORG_ADMINS)));

    // A member certificate may join only under its own name; a node's not at all.
    let m3 = StoreClient::new(f.peer(f.identity("m3", ORG_MEMBERS)));
    let r = m3.member_join("m9", "127.0.0.1:9").await;
    assert!(matches!(r, Err(StoreError::Forbidden(_))), "{r:?}");
    let node = StoreClient::new(f.peer(f.identity("system:node:n1", ORG_NODES)));
    let r = node.member_join("system:node:n1", "127.0.0.1:9").await;
    assert!(matches!(r, Err(StoreError::Forbidden(_))), "{r:?}");
    let r = admin.member_remove("m1").await;
    assert!(
        matches!(&r, Err(StoreError::Membership(m)) if m.contains("last voter")),
        "{r:?}"
    );

    let (m2, _router) = join_second(&f, dir.path(), "m2").await;
    assert_eq!(m2.id(), 2, "the next id after the first member's");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let list = admin.member_list().await.unwrap();
        if list.by_name("m2").is_some_and(|m| m.voter) && !list.joint {
            assert!(list.by_name("m1").unwrap().leader);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "m2 never became a voter: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Writes through the joined member commit, and it reads them back.
    let out = m2.write(put("through-m2")).await.unwrap();
    assert!(matches!(out, TxnOutcome::Committed { .. }), "{out:?}");
    let got = m2
        .get(
            &ObjectKey::new("Test", "default", "through-m2"),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    assert!(got.is_some());

    // Removed, it notices.
    admin.member_remove("m2").await.unwrap();
    tokio::time::timeout(DEADLINE, m2.removed())
        .await
        .expect("m2 noticed its removal");
    m2.shutdown().await;
    let list = admin.member_list().await.unwrap();
    assert_eq!(list.members.len(), 1, "{list:?}");
    // Its id is not handed out again.
    let (m4, _r4) = join_second(&f, dir.path(), "m4").await;
    assert_eq!(m4.id(), 3);
    m4.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writes_commit_only_in_their_term_and_leadership_reports_it() {
    let f = Fixture::start().await;
    f.wait_leader().await;
    let mut leadership = f.member.leadership();
    let term = leadership
        .changed_from(None)
        .await
        .expect("the only member leads");
    assert_eq!(leadership.term(), Some(term));
    let ok = f.member.write(put("a").fenced(Some(term))).await.unwrap();
    assert!(matches!(ok, TxnOutcome::Committed { .. }), "{ok:?}");
    let stale = f
        .member
        .write(put("b").fenced(Some(term - 1)))
        .await
        .unwrap();
    assert_eq!(
        stale,
        TxnOutcome::Refused {
            op_index: 0,
            failure: TxnFailure::Fenced {
                term: term - 1,
                current: term
            }
        }
    );
    // Nothing of the refused write was applied.
    let read = f
        .member
        .get(
            &ObjectKey::new("Test", "default", "b"),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    assert!(read.is_none());
    f.member.shutdown().await;
}
