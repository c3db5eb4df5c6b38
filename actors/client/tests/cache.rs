//! Shared watch caches over the in-memory fake: they load, follow, resume after stream
//! errors from the last revision, relist after compaction (410 in the stream or as the
//! answer), and every subscriber sees each change exactly once, or is told it lagged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use navarch_client::cache::{CacheConfig, CacheEvent, InitialSync, ObjectKey, Scope, Snapshot};
use navarch_client::testing::FakeClient;
use navarch_client::{Cache, Client, SharedCaches, Subscription};
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_model::selector::LabelSelector;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(10);

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

fn leases() -> &'static Kind {
    navarch_client::kind("coordination.k8s.io", "v1", "leases")
}

fn config() -> CacheConfig {
    CacheConfig {
        page_size: Some(2),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..CacheConfig::default()
    }
}

fn caches(fake: &Arc<FakeClient>, config: CacheConfig) -> SharedCaches {
    SharedCaches::with_config(fake.clone(), config, tokio::runtime::Handle::current())
}

fn pod(name: &str, node: &str, owner: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": "web"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner}]},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
}

async fn create(c: &FakeClient, ns: &str, obj: Value) -> Value {
    c.create(pods(), Some(ns), obj, &WriteOptions::default())
        .await
        .expect("create")
        .object
}

async fn relabel(c: &FakeClient, ns: &str, name: &str, v: &str) -> Value {
    let patch = Patch {
        ty: PatchType::Merge,
        body: json!({"metadata": {"labels": {"v": v}}}),
    };
    c.patch(
        pods(),
        Some(ns),
        name,
        None,
        patch,
        &WriteOptions::default(),
    )
    .await
    .expect("patch")
    .object
}

async fn delete(c: &FakeClient, ns: &str, name: &str) -> Value {
    c.delete(pods(), Some(ns), name, &DeleteOptions::default())
        .await
        .expect("delete")
}

async fn synced(cache: &Cache) {
    tokio::time::timeout(DEADLINE, cache.wait_synced())
        .await
        .expect("the cache syncs within the deadline")
        .expect("the cache is running");
}

/// Waits until the cache reflects revision `rev` of the fake.
async fn caught_up(cache: &Cache, rev: u64) {
    let mut stats = cache.watch_stats();
    let want = rev.to_string();
    tokio::time::timeout(
        DEADLINE,
        stats.wait_for(|s| {
            s.revision
                .as_deref()
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|r| r >= rev)
        }),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the cache reaches revision {want} (stats: {:?})",
            cache.stats()
        )
    })
    .expect("the cache is running");
}

/// Waits until a watch requested after the first `calls` ones is open.
async fn watching_after(fake: &FakeClient, calls: usize) {
    tokio::time::timeout(
        DEADLINE,
        fake.wait_until(|f| f.watch_calls().len() > calls && f.open_watches() >= 1),
    )
    .await
    .expect("a new watch within the deadline");
}

async fn next(sub: &mut Subscription) -> CacheEvent {
    tokio::time::timeout(DEADLINE, sub.recv())
        .await
        .expect("an event within the deadline")
        .expect("the subscription goes on")
}

/// The cache holds exactly what the fake holds.
fn same_content(cache: &Cache, fake: &FakeClient, kind: &Kind) {
    let want: Vec<Value> = fake.objects(kind);
    let got: Vec<Value> = cache.list().iter().map(|o| (**o).clone()).collect();
    assert_eq!(got, want, "cache content differs from the server's");
}

fn rv(o: &Value) -> String {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn name(o: &Value) -> String {
    o["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// A subscriber's model of the cache: its initial snapshot with every event applied, each
/// checked to be a real change (no duplicate, nothing missing in between).
struct Replay {
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    resyncs: usize,
    lagged: usize,
    changes: Vec<(String, String, String)>,
}

impl Replay {
    fn new(initial: &Snapshot) -> Replay {
        Replay {
            objects: initial
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resyncs: 0,
            lagged: 0,
            changes: Vec::new(),
        }
    }

    fn apply(&mut self, e: CacheEvent) {
        match e {
            CacheEvent::Added(o) => {
                let k = ObjectKey::of(&o).unwrap();
                assert!(
                    !self.objects.contains_key(&k),
                    "Added for {k}, which the subscriber already has"
                );
                self.changes.push(("added".into(), name(&o), rv(&o)));
                self.objects.insert(k, o);
            }
            CacheEvent::Updated { old, new } => {
                let k = ObjectKey::of(&new).unwrap();
                let held = self
                    .objects
                    .get(&k)
                    .unwrap_or_else(|| panic!("Updated for {k}, which the subscriber lacks"));
                assert_eq!(
                    held, &old,
                    "Updated's old state is not what the subscriber had"
                );
                assert_ne!(rv(&old), rv(&new), "an update that changes nothing: {k}");
                self.changes.push(("updated".into(), name(&new), rv(&new)));
                self.objects.insert(k, new);
            }
            CacheEvent::Deleted(o) => {
                let k = ObjectKey::of(&o).unwrap();
                assert!(
                    self.objects.remove(&k).is_some(),
                    "Deleted for {k}, which the subscriber lacks"
                );
                self.changes.push(("deleted".into(), name(&o), rv(&o)));
            }
            CacheEvent::Resynced { .. } => self.resyncs += 1,
            CacheEvent::Lagged(s) => {
                self.lagged += 1;
                self.objects = s.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            }
        }
    }

    fn content(&self) -> Vec<Value> {
        self.objects.values().map(|o| (**o).clone()).collect()
    }
}

/// Reads every queued event (waiting for none).
fn drain(sub: &mut Subscription, r: &mut Replay) {
    while let Some(Some(e)) = sub.try_recv() {
        r.apply(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_loads_in_pages_then_follows_the_watch() {
    let fake = Arc::new(FakeClient::new());
    for (n, node) in [("a", "n1"), ("b", "n1"), ("c", "n2")] {
        create(&fake, "shop", pod(n, node, "rs-1")).await;
    }
    let shared = caches(&fake, config());
    let cache = shared.cache(pods());
    synced(&cache).await;
    assert!(cache.has_synced());
    same_content(&cache, &fake, pods());
    assert_eq!(
        fake.list_calls().len(),
        2,
        "3 pods in pages of 2: {:?}",
        fake.list_calls()
    );
    let mut sub = cache.subscribe();
    assert_eq!(sub.initial().len(), 3);
    let d = create(&fake, "shop", pod("d", "n2", "rs-2")).await;
    let a2 = relabel(&fake, "shop", "a", "2").await;
    let b = delete(&fake, "shop", "b").await;
    match next(&mut sub).await {
        CacheEvent::Added(o) => assert_eq!(*o, d),
        other => panic!("expected Added d, got {other:?}"),
    }
    match next(&mut sub).await {
        CacheEvent::Updated { old, new } => {
            assert_eq!(rv(&old), "1");
            assert_eq!(*new, a2);
        }
        other => panic!("expected Updated a, got {other:?}"),
    }
    match next(&mut sub).await {
        CacheEvent::Deleted(o) => assert_eq!(*o, b),
        other => panic!("expected Deleted b, got {other:?}"),
    }
    same_content(&cache, &fake, pods());
    let names = |v: Vec<Arc<Value>>| v.iter().map(|o| name(o)).collect::<Vec<_>>();
    assert_eq!(names(cache.on_node("n1")), ["a"]);
    assert_eq!(names(cache.on_node("n2")), ["c", "d"]);
    assert_eq!(names(cache.owned_by("rs-1")), ["a", "c"]);
    assert_eq!(names(cache.list_namespace("shop")), ["a", "c", "d"]);
    assert_eq!(cache.get(Some("shop"), "d").as_deref(), Some(&d));
    assert!(cache.get(Some("shop"), "b").is_none());
    let s = cache.stats();
    assert_eq!(
        (s.lists, s.relists_after_gone, s.resumes),
        (1, 0, 0),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_shares_one_cache_per_scope() {
    let fake = Arc::new(FakeClient::new());
    create(&fake, "a", pod("p", "n1", "o")).await;
    create(&fake, "b", pod("q", "n1", "o")).await;
    let shared = caches(&fake, config());
    let one = shared.cache(pods());
    let two = shared.clone().cache(pods());
    let in_a = shared.scoped(Scope::kind(pods()).namespace("a"));
    let labelled =
        shared.scoped(Scope::kind(pods()).labels(LabelSelector::parse("app=db").unwrap()));
    shared.wait_synced().await.expect("running");
    assert_eq!(shared.caches().len(), 3);
    assert_eq!(
        fake.list_calls().len(),
        3,
        "one list per scope, however many users"
    );
    assert_eq!(one.len(), 2);
    assert_eq!(two.len(), 2);
    assert_eq!(
        in_a.list().iter().map(|o| name(o)).collect::<Vec<_>>(),
        ["p"]
    );
    assert!(labelled.is_empty());
    // A custom index, added once, seen through every handle.
    let by_image: navarch_client::cache::IndexFn = Arc::new(|o: &Value| {
        o["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["image"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    });
    assert!(one.add_indexer("image", by_image.clone()));
    assert!(!two.add_indexer("image", by_image));
    assert_eq!(two.by_index("image", "busybox").map(|v| v.len()), Some(2));
    assert_eq!(two.index_values("image"), Some(vec!["busybox".to_string()]));
    assert!(two.by_index("nope", "x").is_none());
    // Shutting down ends subscriptions and refuses later waits.
    let mut sub = one.subscribe();
    shared.shutdown();
    assert!(tokio::time::timeout(DEADLINE, sub.recv())
        .await
        .expect("ends")
        .is_none());
    let late = shared.cache(leases());
    assert!(late.wait_synced().await.is_err());
}

/// A compaction while the cache cannot watch: it resumes from a revision that is gone, gets
/// 410 (in the stream, or as the answer), lists again, and subscribers see exactly the
/// difference followed by `Resynced`.
async fn relist_after_compaction(gone_as_answer: bool) {
    let fake = Arc::new(FakeClient::new());
    fake.set_gone_as_answer(gone_as_answer);
    for (n, node) in [("a", "n1"), ("b", "n1"), ("c", "n2")] {
        create(&fake, "shop", pod(n, node, "rs-1")).await;
    }
    let shared = caches(&fake, config());
    let cache = shared.cache(pods());
    synced(&cache).await;
    tokio::time::timeout(DEADLINE, fake.wait_open_watches(1))
        .await
        .expect("watching");
    let mut sub = cache.subscribe();
    let mut replay = Replay::new(sub.initial());

    fake.hold_watches(true);
    fake.cut_watches();
    let a = relabel(&fake, "shop", "a", "2").await;
    delete(&fake, "shop", "b").await;
    let d = create(&fake, "shop", pod("d", "n3", "rs-2")).await;
    fake.compact();
    fake.hold_watches(false);

    let mut stats = cache.watch_stats();
    tokio::time::timeout(DEADLINE, stats.wait_for(|s| s.lists == 2))
        .await
        .expect("the cache lists again after 410")
        .expect("running");
    let mut got = Vec::new();
    loop {
        let e = next(&mut sub).await;
        let resynced = matches!(e, CacheEvent::Resynced { .. });
        got.push(e.clone());
        replay.apply(e);
        if resynced {
            break;
        }
    }
    assert_eq!(
        replay.changes,
        [
            ("deleted".to_string(), "b".to_string(), "2".to_string()),
            ("updated".to_string(), "a".to_string(), rv(&a)),
            ("added".to_string(), "d".to_string(), rv(&d)),
        ],
        "{got:?}"
    );
    assert_eq!(replay.content(), fake.objects(pods()));
    same_content(&cache, &fake, pods());
    let s = cache.stats();
    assert_eq!(s.relists_after_gone, 1, "{s:?}");
    assert_eq!(cache.on_node("n1").len(), 1);
    assert!(cache.on_node("n3").iter().any(|o| name(o) == "d"));
    assert!(cache.owned_by("rs-1").iter().all(|o| name(o) != "b"));
    // It watches again from the new list's revision.
    let e = create(&fake, "shop", pod("e", "n1", "rs-1")).await;
    match next(&mut sub).await {
        CacheEvent::Added(o) => assert_eq!(*o, e),
        other => panic!("expected Added e, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_seen_as_an_error_event_forces_a_relist() {
    relist_after_compaction(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_seen_as_the_watch_answer_forces_a_relist() {
    relist_after_compaction(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_relists_too() {
    let fake = Arc::new(FakeClient::new());
    create(&fake, "shop", pod("a", "n1", "o")).await;
    let shared = caches(&fake, config());
    let cache = shared.cache(pods());
    synced(&cache).await;
    tokio::time::timeout(DEADLINE, fake.wait_open_watches(1))
        .await
        .expect("watching");
    fake.expire_watches();
    let mut stats = cache.watch_stats();
    tokio::time::timeout(
        DEADLINE,
        stats.wait_for(|s| s.lists == 2 && s.relists_after_gone == 1),
    )
    .await
    .expect("a relist after the in-stream 410")
    .expect("running");
    same_content(&cache, &fake, pods());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_resume_from_the_last_revision_with_nothing_lost_or_repeated() {
    let fake = Arc::new(FakeClient::new());
    create(&fake, "shop", pod("seed", "n1", "o")).await;
    let shared = caches(&fake, config());
    let cache = shared.cache(pods());
    synced(&cache).await;
    let mut sub = cache.subscribe();
    let mut replay = Replay::new(sub.initial());
    let mut expected = Vec::new();
    let mut calls = 0;
    for round in 0..6 {
        watching_after(&fake, calls).await;
        calls = fake.watch_calls().len();
        let n = format!("p{round}");
        let o = create(&fake, "shop", pod(&n, "n1", "o")).await;
        expected.push(("added".to_string(), n.clone(), rv(&o)));
        match round % 3 {
            0 => fake.cut_watches(),
            1 => {
                // The next request fails too: the cache backs off, then resumes.
                fake.fail_next_watch(navarch_client::ClientError::Transport(
                    "refused (test)".into(),
                ));
                fake.cut_watches();
            }
            _ => fake.close_watches(),
        }
        let o = relabel(&fake, "shop", &n, "x").await;
        expected.push(("updated".to_string(), n.clone(), rv(&o)));
        if round % 2 == 0 {
            let o = delete(&fake, "shop", &n).await;
            expected.push(("deleted".to_string(), n, rv(&o)));
        }
    }
    caught_up(&cache, fake.revision()).await;
    while replay.changes.len() < expected.len() {
        replay.apply(next(&mut sub).await);
    }
    drain(&mut sub, &mut replay);
    assert_eq!(replay.changes, expected);
    assert_eq!(replay.resyncs, 0, "no relist was needed");
    assert_eq!(replay.content(), fake.objects(pods()));
    let s = cache.stats();
    assert_eq!((s.lists, s.relists_after_gone), (1, 0), "{s:?}");
    assert!(s.resumes >= 6, "{s:?}");
    assert!(s.errors >= 4, "{s:?}");
    // Every resumed watch started from the last revision the cache had seen.
    let revs: Vec<u64> = fake
        .watch_calls()
        .iter()
        .filter_map(|w| w.resource_version.as_deref()?.parse().ok())
        .collect();
    assert!(revs.windows(2).all(|w| w[0] <= w[1]), "{revs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_move_the_resume_point_past_compactions() {
    let fake = Arc::new(FakeClient::new());
    create(&fake, "shop", pod("a", "n1", "o")).await;
    let shared = caches(&fake, config());
    let cache = shared.cache(pods());
    synced(&cache).await;
    tokio::time::timeout(DEADLINE, fake.wait_open_watches(1))
        .await
        .expect("watching");
    // Other kinds move the revision; this cache sees nothing of them but a bookmark.
    for i in 0..3 {
        fake.create(
            leases(),
            Some("shop"),
            json!({"metadata": {"name": format!("l{i}")}}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    fake.send_bookmarks();
    caught_up(&cache, fake.revision()).await;
    let calls = fake.watch_calls().len();
    fake.compact();
    fake.cut_watches();
    watching_after(&fake, calls).await;
    let last = fake.watch_calls().last().cloned().unwrap();
    assert_eq!(last.resource_version, Some(fake.revision().to_string()));
    assert_eq!(
        cache.stats().relists_after_gone,
        0,
        "the bookmark spared a relist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_lags_is_told_and_can_resync_from_the_snapshot() {
    let fake = Arc::new(FakeClient::new());
    let shared = caches(
        &fake,
        CacheConfig {
            subscriber_capacity: 4,
            ..config()
        },
    );
    let cache = shared.cache(pods());
    synced(&cache).await;
    let mut slow = cache.subscribe();
    let mut replay = Replay::new(slow.initial());
    for i in 0..10 {
        create(&fake, "shop", pod(&format!("p{i}"), "n1", "o")).await;
    }
    caught_up(&cache, fake.revision()).await;
    let last = create(&fake, "shop", pod("last", "n1", "o")).await;
    loop {
        let e = next(&mut slow).await;
        let done = matches!(&e, CacheEvent::Added(o) if **o == last);
        replay.apply(e);
        if done {
            break;
        }
    }
    assert!(replay.lagged >= 1, "the subscriber was told it lagged");
    assert!(slow.lagged() >= 1);
    assert_eq!(replay.content(), fake.objects(pods()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_list_loads_without_a_list_and_falls_back_when_refused() {
    let fake = Arc::new(FakeClient::new());
    create(&fake, "shop", pod("a", "n1", "o")).await;
    create(&fake, "shop", pod("b", "n2", "o")).await;
    let wl = CacheConfig {
        initial_sync: InitialSync::WatchList,
        ..config()
    };
    let shared = caches(&fake, wl.clone());
    let cache = shared.cache(pods());
    synced(&cache).await;
    same_content(&cache, &fake, pods());
    assert!(fake.list_calls().is_empty(), "watch-list needs no LIST");
    let c = create(&fake, "shop", pod("c", "n1", "o")).await;
    caught_up(&cache, fake.revision()).await;
    assert_eq!(cache.get(Some("shop"), "c").as_deref(), Some(&c));
    // After a compaction it loads by watch-list again.
    fake.hold_watches(true);
    fake.cut_watches();
    delete(&fake, "shop", "a").await;
    fake.compact();
    fake.hold_watches(false);
    let mut stats = cache.watch_stats();
    tokio::time::timeout(DEADLINE, stats.wait_for(|s| s.lists == 2))
        .await
        .expect("reloaded")
        .expect("running");
    same_content(&cache, &fake, pods());
    assert!(fake.list_calls().is_empty());
    shared.shutdown();

    fake.refuse_watch_list(true);
    let fallback = caches(&fake, wl);
    let cache = fallback.cache(pods());
    synced(&cache).await;
    same_content(&cache, &fake, pods());
    assert!(cache.stats().watch_list_fallback);
    assert!(!fake.list_calls().is_empty());
}

/// Random writes, with random cuts, clean closes, expiries, failures and compactions in
/// between: the cache converges to the server's content, and a subscriber's replay of the
/// events on its initial snapshot gives that content too, each event a real change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_converges_through_random_faults() {
    for seed in 0..4u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let fake = Arc::new(FakeClient::new());
        let shared = caches(&fake, config());
        let cache = shared.cache(pods());
        synced(&cache).await;
        let mut sub = cache.subscribe();
        let mut replay = Replay::new(sub.initial());
        let mut live: Vec<String> = Vec::new();
        for step in 0..120 {
            match rng.gen_range(0..10) {
                0..=3 => {
                    let n = format!("p{step}");
                    let node = format!("n{}", rng.gen_range(0..3));
                    create(&fake, "shop", pod(&n, &node, &format!("o{}", step % 4))).await;
                    live.push(n);
                }
                4..=5 if !live.is_empty() => {
                    let n = live[rng.gen_range(0..live.len())].clone();
                    relabel(&fake, "shop", &n, &step.to_string()).await;
                }
                6 if !live.is_empty() => {
                    let n = live.remove(rng.gen_range(0..live.len()));
                    delete(&fake, "shop", &n).await;
                }
                7 => fake.cut_watches(),
                8 => match rng.gen_range(0..3) {
                    0 => fake.close_watches(),
                    1 => fake.expire_watches(),
                    _ => fake.fail_next_watch(navarch_client::ClientError::Transport(
                        "refused (test)".into(),
                    )),
                },
                _ => {
                    if rng.gen_bool(0.5) {
                        fake.compact();
                    } else {
                        fake.send_bookmarks();
                    }
                }
            }
            if step % 7 == 0 {
                drain(&mut sub, &mut replay);
            }
            // Pacing, so that faults land at every stage of the reflector's loop.
            if rng.gen_bool(0.3) {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..4))).await;
            }
        }
        caught_up(&cache, fake.revision()).await;
        // The last relist may still be publishing; wait until the content matches.
        let mut stats = cache.watch_stats();
        tokio::time::timeout(DEADLINE, async {
            loop {
                stats.borrow_and_update();
                let content: Vec<Value> = cache.list().iter().map(|o| (**o).clone()).collect();
                if content == fake.objects(pods()) {
                    return;
                }
                let _ = stats.changed().await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "seed {seed}: the cache converges (stats {:?})",
                cache.stats()
            )
        });
        drain(&mut sub, &mut replay);
        assert_eq!(replay.content(), fake.objects(pods()), "seed {seed}");
        for node in ["n0", "n1", "n2"] {
            let want: Vec<String> = fake
                .objects(pods())
                .iter()
                .filter(|o| o["spec"]["nodeName"] == node)
                .map(name)
                .collect();
            let got: Vec<String> = cache.on_node(node).iter().map(|o| name(o)).collect();
            assert_eq!(got, want, "seed {seed}: index by node {node}");
        }
        for owner in ["o0", "o1", "o2", "o3"] {
            let want = fake
                .objects(pods())
                .iter()
                .filter(|o| o["metadata"]["ownerReferences"][0]["uid"] == owner)
                .count();
            assert_eq!(
                cache.owned_by(owner).len(),
                want,
                "seed {seed}: index by owner {owner}"
            );
        }
        shared.shutdown();
    }
}
