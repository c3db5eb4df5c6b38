//! The message tap: records in order, live followers, filters, a bounded ring under load, and
//! QUIC events in the same ring.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use futures::StreamExt;
use navarch_actors::correlation::{Direction, WireEvent, WireTap};
use navarch_actors::{
    with_correlation, CorrelationId, FollowItem, KindConfig, KindSpec, MessageTap, Root, Status,
    TapConfig, TapFilter, TapRecord, Via,
};

async fn next_record(
    stream: &mut (impl futures::Stream<Item = FollowItem> + Unpin),
) -> Arc<TapRecord> {
    match tokio::time::timeout(LIMIT, stream.next()).await {
        Ok(Some(FollowItem::Record(r))) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

#[actix_rt::test]
async fn records_arrive_in_order_and_a_follower_sees_them_live() {
    let root = Root::new(path("/m"), TapConfig::default());
    let source = Arc::new(MemSource::default());
    let (a, b) = (key("ns/a"), key("ns/b"));
    source.put(&a, 0);
    source.put(&b, 0);
    let kind = root
        .supervise(KindSpec::new("counter", Counter, source.clone()))
        .unwrap();
    kind.object_changed(a.clone(), 0).await.unwrap();
    kind.object_changed(b.clone(), 0).await.unwrap();
    let aref = kind.child(&a).await.unwrap().unwrap();
    let bref = kind.child(&b).await.unwrap().unwrap();

    let tap = root.tap();
    let mut follower = Box::pin(tap.follow(TapFilter {
        message_type: Some("Add".into()),
        ..TapFilter::default()
    }));
    let mut only_b = Box::pin(tap.follow(TapFilter {
        prefix: Some(bref.path().to_string()),
        message_type: Some("Add".into()),
        ..TapFilter::default()
    }));
    for i in 0..50 {
        let target = if i % 2 == 0 { &aref } else { &bref };
        target.send(CounterEvent::Add(i)).await.unwrap();
    }
    let mut last_seq = 0;
    for i in 0..50 {
        let r = next_record(&mut follower).await;
        assert!(r.seq > last_seq, "out of order: {} after {last_seq}", r.seq);
        last_seq = r.seq;
        assert_eq!(r.summary.as_deref(), Some(format!("add {i}").as_str()));
        let want = if i % 2 == 0 { aref.path() } else { bref.path() };
        assert_eq!(&*r.receiver, want.as_str());
        assert_eq!((r.via, &*r.outcome), (Via::Local, "ok"));
    }
    for i in (1..50).step_by(2) {
        let r = next_record(&mut only_b).await;
        assert_eq!(r.summary.as_deref(), Some(format!("add {i}").as_str()));
    }
    // The recent past shows the same, in the same order.
    let recent = tap.recent(
        &TapFilter {
            prefix: Some(aref.path().to_string()),
            message_type: Some("Add".into()),
            ..TapFilter::default()
        },
        1000,
    );
    assert_eq!(recent.len(), 25);
    assert!(recent.windows(2).all(|w| w[0].seq < w[1].seq));

    // Correlation filter picks out one request's messages.
    let id = CorrelationId::new_random();
    with_correlation(id, aref.send(CounterEvent::Add(1000)))
        .await
        .unwrap();
    let by_id = tap.recent(
        &TapFilter {
            correlation: Some(id),
            ..TapFilter::default()
        },
        10,
    );
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].summary.as_deref(), Some("add 1000"));
}

#[actix_rt::test]
async fn follow_since_replays_the_ring_then_goes_live_without_gaps() {
    let tap = MessageTap::new(TapConfig::default());
    for _ in 0..10 {
        tap.record(TapRecord::local(Arc::from("/x"), "Ping".into()));
    }
    let mut stream = Box::pin(tap.follow(TapFilter {
        since: Some(7),
        ..TapFilter::default()
    }));
    for _ in 0..3 {
        tap.record(TapRecord::local(Arc::from("/x"), "Ping".into()));
    }
    let mut seqs = Vec::new();
    for _ in 0..6 {
        seqs.push(next_record(&mut stream).await.seq);
    }
    assert_eq!(seqs, vec![8, 9, 10, 11, 12, 13]);
}

#[actix_rt::test]
async fn ring_stays_bounded_under_load_and_slow_followers_are_told_they_lagged() {
    let root = Root::new(
        path("/m"),
        TapConfig {
            capacity: 256,
            follow_buffer: 16,
            enabled: true,
        },
    );
    let source = Arc::new(MemSource::default());
    let keys: Vec<_> = (0..4).map(|i| key(&format!("ns/c{i}"))).collect();
    let config = KindConfig {
        mailbox_capacity: 1024,
        ..KindConfig::default()
    };
    let kind = root
        .supervise(KindSpec::new("counter", Counter, source.clone()).config(config))
        .unwrap();
    for k in &keys {
        source.put(k, 0);
        kind.object_changed(k.clone(), 0).await.unwrap();
    }
    let reg = root.registry();
    let mut refs = Vec::new();
    for k in &keys {
        refs.push(kind.child(k).await.unwrap().unwrap());
    }
    eventually(LIMIT, "children running", || {
        refs.iter().all(|r| {
            reg.get(r.path())
                .is_some_and(|i| i.status == Status::Running)
        })
    })
    .await;
    let tap = root.tap();
    let mut slow = Box::pin(tap.follow(TapFilter::default()));
    let per_child = 5_000;
    let tasks: Vec<_> = refs
        .iter()
        .cloned()
        .map(|r| {
            actix_rt::spawn(async move {
                for i in 0..per_child {
                    r.send(CounterEvent::Add(i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let handled: u64 = refs
        .iter()
        .map(|r| reg.get(r.path()).unwrap().handled)
        .sum();
    assert_eq!(handled, 4 * per_child as u64);
    assert_eq!(tap.len(), 256);
    let all = tap.recent(&TapFilter::default(), usize::MAX);
    assert_eq!(all.len(), 256);
    assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert!(all[255].seq >= 4 * per_child as u64);
    // The follower did not hold anybody up; it learns what it missed.
    match tokio::time::timeout(LIMIT, slow.next()).await {
        Ok(Some(FollowItem::Lagged(n))) => assert!(n > 0),
        other => panic!("expected a lag notice, got {other:?}"),
    }
    let r = next_record(&mut slow).await;
    assert!(r.seq > 16);
    for r in &refs {
        assert_eq!(reg.get(r.path()).unwrap().mailbox_depth, 0);
    }
}

#[test]
fn quic_events_land_in_the_same_ring() {
    let tap = MessageTap::new(TapConfig::default());
    tap.record(TapRecord::local(Arc::from("/m/a"), "Ping".into()));
    let id = CorrelationId(42);
    let wire: Arc<dyn WireTap> = Arc::new(tap.clone());
    wire.record(WireEvent {
        at: SystemTime::now(),
        direction: Direction::Outbound,
        local: "master-1".into(),
        peer: "node-n1".into(),
        method: "pods.bind".into(),
        size: 321,
        elapsed: Duration::from_micros(250),
        outcome: "ok".into(),
        correlation: Some(id),
    });
    wire.record(WireEvent {
        at: SystemTime::now(),
        direction: Direction::Inbound,
        local: "master-1".into(),
        peer: "node-n1".into(),
        method: "node.heartbeat".into(),
        size: 12,
        elapsed: Duration::from_micros(10),
        outcome: "error: denied".into(),
        correlation: None,
    });
    let all = tap.recent(&TapFilter::default(), 10);
    assert_eq!(all.len(), 3);
    let out = &all[1];
    assert_eq!(
        (
            out.via,
            out.sender.as_deref(),
            &*out.receiver,
            &*out.message_type,
            out.encoded_size
        ),
        (Via::QuicOut, Some("master-1"), "node-n1", "pods.bind", 321)
    );
    assert_eq!(out.correlation, Some(id));
    let inbound = &all[2];
    assert_eq!(
        (inbound.via, inbound.sender.as_deref(), &*inbound.receiver),
        (Via::QuicIn, Some("node-n1"), "master-1")
    );
    let json = serde_json::to_value(out).unwrap();
    assert_eq!(json["via"], "quic_out");
    assert_eq!(json["correlation"], id.to_string());
    assert_eq!(json["handling_us"], 250);
}
