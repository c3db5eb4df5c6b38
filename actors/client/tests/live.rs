//! Against a running server (ignored by default; needs the feature `contract`): the
//! contract suite over HTTPS, and what is HTTPS-specific (warnings, tables, raw requests,
//! failover across servers, a cache whose watch is cut).
//!
//! ```text
//! NAVARCH_KUBECONFIG=/path/to/admin.kubeconfig \
//! NAVARCH_UNPRIVILEGED_TOKEN=<a token of a user without roles> \
//!   cargo test -p navarch-client --features contract --test live -- --ignored
//! ```
#![cfg(feature = "contract")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use navarch_client::cache::CacheConfig;
use navarch_client::testing::Interruptible;
use navarch_client::{contract, Client, HttpsClient, HttpsConfig, Kubeconfig, SharedCaches};
use navarch_model::options::{DeleteOptions, ListOptions, WriteOptions};
use serde_json::json;

fn kubeconfig() -> Kubeconfig {
    let path = std::env::var_os("NAVARCH_KUBECONFIG")
        .map(PathBuf::from)
        .expect("set NAVARCH_KUBECONFIG to a running server's admin kubeconfig");
    Kubeconfig::load(&path).expect("the admin kubeconfig loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running server: NAVARCH_KUBECONFIG"]
async fn the_contract_holds_over_https() {
    let k = kubeconfig();
    let admin = HttpsClient::from_kubeconfig(&k).expect("client");
    let user = std::env::var("NAVARCH_UNPRIVILEGED_TOKEN")
        .ok()
        .map(|t| HttpsClient::from_kubeconfig(&k.with_token(t)).expect("client"));
    let report = contract::run_all(
        &admin,
        user.as_ref().map(|u| u as &dyn Client),
        "contract-https",
    )
    .await;
    for (name, outcome) in &report.results {
        match outcome {
            Ok(()) => eprintln!("PASS {name}"),
            Err(f) => eprintln!("FAIL {name}: {}", f.message),
        }
    }
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running server: NAVARCH_KUBECONFIG"]
async fn https_warnings_tables_raw_requests_failover_and_cut_watches() {
    let k = kubeconfig();
    // The first server refuses connections: reads and never-sent writes go to the next.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut cfg = HttpsConfig::from_kubeconfig(&k);
    cfg.servers = vec![dead_url, k.server.clone()];
    let c = HttpsClient::new(cfg).expect("client");
    let ns = contract::fresh_namespace(&c, "live-https")
        .await
        .expect("namespace");
    let pods = navarch_client::kind("", "v1", "pods");
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warned"},
        "spec": {"schedulerName": "none", "containers": [{"name": "c", "image": "busybox", "imagee": "typo"}]}});
    let w = c
        .create(pods, Some(&ns), pod.clone(), &WriteOptions::default())
        .await
        .expect("create over the second server");
    assert!(
        w.warnings
            .iter()
            .any(|m| m.contains("unknown field") && m.contains("imagee")),
        "warnings: {:?}",
        w.warnings
    );
    pod["metadata"]["name"] = json!("second");
    c.create(pods, Some(&ns), pod, &WriteOptions::default())
        .await
        .expect("create");
    let table = c
        .get_table(pods, Some(&ns), None, &ListOptions::default())
        .await
        .expect("table");
    assert_eq!(table["kind"], "Table", "{table}");
    assert_eq!(table["rows"].as_array().map(Vec::len), Some(2), "{table}");
    let version = c
        .raw(navarch_client::https::Method::GET, "/version", None)
        .await
        .expect("version");
    assert_eq!(version.status, 200);
    assert!(version.json().unwrap()["gitVersion"].is_string());
    let missing = c
        .raw(
            navarch_client::https::Method::GET,
            "/api/v1/namespaces/nope/pods/x",
            None,
        )
        .await
        .expect("raw 404");
    assert_eq!(missing.json().unwrap_err().code(), Some(404));

    // A cache over HTTPS resumes after its watch is cut, without relisting.
    let cut = Arc::new(Interruptible::new(Arc::new(c.clone())));
    let caches = SharedCaches::with_config(
        cut.clone(),
        CacheConfig {
            backoff_initial: Duration::from_millis(50),
            ..CacheConfig::default()
        },
        tokio::runtime::Handle::current(),
    );
    let cache = caches.scoped(navarch_client::Scope::kind(pods).namespace(ns.clone()));
    tokio::time::timeout(Duration::from_secs(20), cache.wait_synced())
        .await
        .expect("synced in time")
        .expect("running");
    assert_eq!(cache.len(), 2);
    tokio::time::timeout(Duration::from_secs(20), cut.wait_open_watches(1))
        .await
        .expect("watching");
    cut.cut_watches();
    c.delete(pods, Some(&ns), "second", &DeleteOptions::default())
        .await
        .expect("delete");
    let mut stats = cache.watch_stats();
    tokio::time::timeout(Duration::from_secs(20), stats.wait_for(|s| s.resumes >= 1))
        .await
        .expect("resumed in time")
        .expect("running");
    let mut sub = cache.subscribe();
    if cache.get(Some(&ns), "second").is_some() {
        let e = tokio::time::timeout(Duration::from_secs(20), sub.recv())
            .await
            .expect("the delete arrives")
            .expect("running");
        assert!(matches!(e, navarch_client::CacheEvent::Deleted(_)), "{e:?}");
    }
    assert!(cache.get(Some(&ns), "second").is_none());
    let s = cache.stats();
    assert_eq!((s.lists, s.relists_after_gone), (1, 0), "{s:?}");
    caches.shutdown();
    let _ = c
        .delete(contract_namespaces(), None, &ns, &DeleteOptions::default())
        .await;
}

fn contract_namespaces() -> &'static navarch_model::Kind {
    navarch_client::kind("", "v1", "namespaces")
}

/// Needs a server started with a small watch history (`--history-revisions 8`):
/// `NAVARCH_COMPACTING_KUBECONFIG=<its admin kubeconfig>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running server with --history-revisions 8: NAVARCH_COMPACTING_KUBECONFIG"]
async fn a_cache_relists_after_the_server_compacts_past_it() {
    let path = std::env::var_os("NAVARCH_COMPACTING_KUBECONFIG")
        .map(PathBuf::from)
        .expect("set NAVARCH_COMPACTING_KUBECONFIG to the admin kubeconfig of a server run with --history-revisions 8");
    let k = Kubeconfig::load(&path).expect("kubeconfig");
    let c = HttpsClient::from_kubeconfig(&k).expect("client");
    let ns = contract::fresh_namespace(&c, "live-compact")
        .await
        .expect("namespace");
    let leases = navarch_client::kind("coordination.k8s.io", "v1", "leases");
    let lease = |n: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": n}, "spec": {}});
    for n in ["a", "b"] {
        c.create(leases, Some(&ns), lease(n), &WriteOptions::default())
            .await
            .expect("create");
    }
    for initial_sync in [
        navarch_client::cache::InitialSync::List,
        navarch_client::cache::InitialSync::WatchList,
    ] {
        let victim = format!("victim-{initial_sync:?}").to_lowercase();
        c.create(leases, Some(&ns), lease(&victim), &WriteOptions::default())
            .await
            .expect("create");
        let cut = Arc::new(Interruptible::new(Arc::new(c.clone())));
        let caches = SharedCaches::with_config(
            cut.clone(),
            CacheConfig {
                initial_sync,
                backoff_initial: Duration::from_millis(50),
                ..CacheConfig::default()
            },
            tokio::runtime::Handle::current(),
        );
        let cache = caches.scoped(navarch_client::Scope::kind(leases).namespace(ns.clone()));
        tokio::time::timeout(Duration::from_secs(20), cache.wait_synced())
            .await
            .expect("synced in time")
            .expect("running");
        assert!(!cache.stats().watch_list_fallback, "{:?}", cache.stats());
        tokio::time::timeout(Duration::from_secs(20), cut.wait_open_watches(1))
            .await
            .expect("watching");
        let mut sub = cache.subscribe();
        // No watch while the server writes (and compacts) well past the cache's revision.
        cut.hold_watches(true);
        cut.cut_watches();
        c.delete(leases, Some(&ns), &victim, &DeleteOptions::default())
            .await
            .expect("delete");
        for i in 0..30 {
            let n = format!("{initial_sync:?}-{i}").to_lowercase();
            c.create(leases, Some(&ns), lease(&n), &WriteOptions::default())
                .await
                .expect("create");
        }
        cut.hold_watches(false);
        let mut stats = cache.watch_stats();
        tokio::time::timeout(
            Duration::from_secs(20),
            stats.wait_for(|s| s.relists_after_gone >= 1 && s.lists >= 2),
        )
        .await
        .unwrap_or_else(|_| panic!("no relist after the compaction: {:?}", cache.stats()))
        .expect("running");
        let listed = c
            .list(leases, Some(&ns), &ListOptions::default())
            .await
            .expect("list");
        let mut got: Vec<String> = cache
            .list()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        let mut want: Vec<String> = listed
            .items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        let mut saw_delete = false;
        loop {
            let e = tokio::time::timeout(Duration::from_secs(20), sub.recv())
                .await
                .expect("events in time")
                .expect("running");
            match e {
                navarch_client::CacheEvent::Deleted(o)
                    if o["metadata"]["name"] == victim.as_str() =>
                {
                    saw_delete = true
                }
                navarch_client::CacheEvent::Resynced { .. } => break,
                _ => {}
            }
        }
        assert!(
            saw_delete,
            "the relist reports the deletion the watch missed"
        );
        caches.shutdown();
    }
    let _ = c
        .delete(contract_namespaces(), None, &ns, &DeleteOptions::default())
        .await;
}
