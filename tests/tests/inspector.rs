//! Multi-process tests of the inspector's mechanisms on running masters: a correlation id set
//! by a client follows the request across QUIC into a second process and shows in both
//! processes' message taps; HTTP requests get a correlation id header.

use std::time::Duration;

use anyhow::Result;
use navarch_net::trace::{with_correlation, CorrelationId};
use navarch_store::{ObjectKey, Op, Txn, TxnOutcome};
use navarch_tests::{wait_for, Cluster};
use serde_json::Value;

async fn tapped(cluster: &Cluster, i: usize, correlation: &CorrelationId) -> Option<Vec<Value>> {
    let url = cluster.url(i, &format!("/debug/messages?correlation={correlation}"));
    let v: Value = cluster
        .http()
        .get(url)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let records = v.as_array()?.clone();
    (!records.is_empty()).then_some(records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_follows_a_write_from_follower_to_leader() -> Result<()> {
    let mut cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let follower = (leader + 1) % 3;
    let client = cluster.client(follower)?;

    let id = CorrelationId::new_random();
    let txn = Txn::new(vec![Op::Create {
        key: ObjectKey::new("things", "default", "traced"),
        value: b"t".to_vec(),
    }]);
    let outcome = with_correlation(id, client.txn(&txn)).await?;
    assert!(
        matches!(outcome, TxnOutcome::Committed { .. }),
        "{outcome:?}"
    );

    // The follower received the call from the client and forwarded it to the leader...
    let at_follower = wait_for(
        Duration::from_secs(10),
        "the follower's tap to show the id",
        || tapped(&cluster, follower, &id),
    )
    .await?;
    let leader_name = cluster.members[leader].name.clone();
    assert!(
        at_follower
            .iter()
            .any(|r| r["via"] == "quic_in" && r["message_type"] == "store.txn"),
        "follower recorded the inbound call: {at_follower:?}"
    );
    assert!(
        at_follower.iter().any(|r| r["via"] == "quic_out"
            && r["message_type"] == "store.txn"
            && r["receiver"] == leader_name.as_str()),
        "follower recorded the forward to {leader_name}: {at_follower:?}"
    );
    // ...and the leader, another process, saw the same id on the forwarded call.
    let at_leader = wait_for(
        Duration::from_secs(10),
        "the leader's tap to show the id",
        || tapped(&cluster, leader, &id),
    )
    .await?;
    assert!(
        at_leader.iter().any(|r| r["via"] == "quic_in"
            && r["message_type"] == "store.txn"
            && r["sender"] == cluster.members[follower].name.as_str()),
        "leader recorded the forwarded call: {at_leader:?}"
    );
    // A third member never saw this request.
    let other = 3 - leader - follower;
    assert!(
        tapped(&cluster, other, &id).await.is_none(),
        "an uninvolved member has no record of it"
    );
    cluster.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_carry_a_correlation_id_header() -> Result<()> {
    let mut cluster = Cluster::start(1, &[]).await?;
    let http = cluster.http().clone();
    let url = cluster.url(0, "/debug/store");
    let id = CorrelationId::new_random().to_string();
    let r = http
        .get(&url)
        .header("x-correlation-id", &id)
        .send()
        .await?;
    assert_eq!(
        r.headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok()),
        Some(id.as_str())
    );
    let r = http.get(&url).send().await?;
    let fresh = r
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        fresh.parse::<CorrelationId>().is_ok() && fresh != id,
        "a new id is made: {fresh:?}"
    );

    // The registry lists this process's root actor.
    let actors: Value = http
        .get(cluster.url(0, "/debug/actors"))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        actors
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["path"] == "/master/m1")),
        "the root is registered: {actors}"
    );
    cluster.passed();
    Ok(())
}
