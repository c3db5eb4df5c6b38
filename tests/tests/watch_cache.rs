//! The shared watch caches of `navarch-client` against real masters over HTTPS: a cache whose
//! watch falls behind a compaction relists (410) and converges, and a cache on a follower
//! converges across the leader's death, with every acknowledged write in it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_client::kubeconfig::Kubeconfig;
use navarch_client::testing::Interruptible;
use navarch_client::{Client, HttpsClient, SharedCaches};
use navarch_tests::{wait_for, Cluster};
use serde_json::{json, Value};

fn pods() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "pods")
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn https(cluster: &Cluster, i: usize) -> Result<Arc<dyn Client>> {
    let cfg = Kubeconfig::load(&cluster.kubeconfig(i))?;
    Ok(Arc::new(HttpsClient::from_kubeconfig(&cfg)?))
}

fn names(cache: &navarch_client::Cache) -> BTreeSet<String> {
    cache
        .list()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_relists_after_a_compaction_and_converges() -> Result<()> {
    let mut cluster = Cluster::start(1, &["--history-revisions", "8"]).await?;
    let writer = https(&cluster, 0)?;
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        let ns = navarch_client::kind("", "v1", "namespaces");
        writer
            .get(ns, None, "default", &Default::default())
            .await
            .ok()
    })
    .await?;
    let wrapped = Arc::new(Interruptible::new(https(&cluster, 0)?));
    let caches = SharedCaches::new(wrapped.clone());
    let cache = caches.cache(pods());
    tokio::time::timeout(Duration::from_secs(20), cache.wait_synced())
        .await
        .context("synced")??;
    // Hold the cache's next watch and cut its current one: while it waits, far more than
    // the retained history is written.
    wrapped.hold_watches(true);
    wrapped.cut_watches();
    let mut want = BTreeSet::new();
    for n in 0..30 {
        let name = format!("c{n:02}");
        writer
            .create(pods(), Some("default"), pod(&name), &Default::default())
            .await?;
        want.insert(name);
    }
    // A deletion too: the relist must drop what is gone.
    writer
        .delete(pods(), Some("default"), "c07", &Default::default())
        .await?;
    want.remove("c07");
    wrapped.hold_watches(false);
    wait_for(Duration::from_secs(20), "the cache converged", || async {
        (names(&cache) == want).then_some(())
    })
    .await?;
    let stats = cache.stats();
    assert!(
        stats.relists_after_gone >= 1,
        "the cache relisted after a 410: {stats:?}"
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_on_a_follower_converges_across_the_leaders_death() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let watched = (leader + 1) % 3;
    let writes_to = (leader + 2) % 3;
    let writer = https(&cluster, writes_to)?;
    wait_for(Duration::from_secs(20), "the default namespace", || async {
        let ns = navarch_client::kind("", "v1", "namespaces");
        writer
            .get(ns, None, "default", &Default::default())
            .await
            .ok()
    })
    .await?;
    let caches = SharedCaches::new(https(&cluster, watched)?);
    let cache = caches.cache(pods());
    tokio::time::timeout(Duration::from_secs(20), cache.wait_synced())
        .await
        .context("synced")??;
    let mut acknowledged = BTreeSet::new();
    for n in 0..40 {
        if n == 15 {
            cluster.kill(leader);
        }
        let name = format!("f{n:02}");
        // Through the failover some writes time out: only acknowledged ones must show up.
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            writer.create(pods(), Some("default"), pod(&name), &Default::default()),
        )
        .await;
        if let Ok(Ok(_)) = r {
            acknowledged.insert(name);
        }
    }
    assert!(
        acknowledged.len() > 30,
        "most writes went through: {}",
        acknowledged.len()
    );
    // The cache holds exactly what the store holds (acknowledged writes, and any whose
    // outcome the writer never heard), read on the master it watches.
    let stored: BTreeSet<String> = writer
        .list(pods(), Some("default"), &Default::default())
        .await?
        .items
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert!(acknowledged.is_subset(&stored));
    wait_for(Duration::from_secs(30), "the cache converged", || async {
        (names(&cache) == stored).then_some(())
    })
    .await?;
    cluster.passed();
    Ok(())
}
