//! Typed senders: a component holds a `Sender<M>` and does not know whether an object actor, a
//! singleton or a test channel is behind it; the correlation id travels either way, and an
//! actor's restart is invisible to it.

mod common;

use std::sync::Arc;

use common::*;
use navarch_actors::{
    with_correlation, CorrelationId, HostError, KindConfig, KindSpec, Meta, Root, Sender,
    SingletonSpec, Status, TapConfig, TapFilter,
};

/// A component that only knows it emits numbers.
struct Relay {
    out: Sender<i64>,
}

impl Relay {
    async fn relay(&self, n: i64) -> Result<(), HostError> {
        self.out.send(n * 10).await
    }
}

#[actix_rt::test]
async fn a_component_sends_through_a_channel_in_tests_and_to_an_actor_in_production() {
    // In a test: a channel, no actor system needed by the component.
    let (out, mut inbox) = Sender::channel("test");
    let relay = Relay { out };
    let id = CorrelationId::new_random();
    with_correlation(id, relay.relay(4)).await.unwrap();
    let (n, meta) = inbox.recv().await.unwrap();
    assert_eq!((n, meta.correlation), (40, Some(id)));

    // In production: the same component, sending to an object actor through an adapter.
    let root = Root::new(path("/m"), TapConfig::default());
    let source = Arc::new(MemSource::default());
    let a = key("ns/a");
    source.put(&a, 1);
    let kind = root
        .supervise(
            KindSpec::new("counter", Counter, source.clone()).config(KindConfig {
                child_policy: navarch_actors::RestartPolicy {
                    backoff: navarch_actors::Backoff {
                        initial: std::time::Duration::from_millis(1),
                        ..navarch_actors::Backoff::default()
                    },
                    ..navarch_actors::RestartPolicy::default()
                },
                ..KindConfig::default()
            }),
        )
        .unwrap();
    kind.object_changed(a.clone(), 1).await.unwrap();
    let child = kind.child(&a).await.unwrap().unwrap();
    let events: Sender<CounterEvent> = child.clone().into();
    assert_eq!(events.target(), child.path().to_string());
    let relay = Relay {
        out: events.adapt(CounterEvent::Add),
    };
    with_correlation(id, relay.relay(2)).await.unwrap();
    let reg = root.registry();
    assert_eq!(summary(&reg, child.path()).await, "value=21");
    let records = root.tap().recent(
        &TapFilter {
            correlation: Some(id),
            ..TapFilter::default()
        },
        10,
    );
    assert_eq!(records.len(), 1);
    assert_eq!(&*records[0].receiver, child.path().as_str());
    assert_eq!(records[0].summary.as_deref(), Some("add 20"));

    // The sender outlives an incarnation: after a kill it reaches the next one.
    reg.kill(child.path()).unwrap();
    eventually(LIMIT, "restarted", || {
        reg.get(child.path())
            .is_some_and(|i| i.restarts == 1 && i.status == Status::Running)
    })
    .await;
    relay.relay(3).await.unwrap();
    assert_eq!(summary(&reg, child.path()).await, "value=31");

    // Explicit metadata, and the fire-and-forget forms.
    let meta = Meta {
        correlation: Some(CorrelationId(77)),
        sender: Some(path("/m/elsewhere")),
    };
    events.send_with(CounterEvent::Add(1), meta).await.unwrap();
    events.do_send(CounterEvent::Add(1)).unwrap();
    events.try_send(CounterEvent::Add(1)).unwrap();
    assert_eq!(summary(&reg, child.path()).await, "value=34");
    let by_id = root.tap().recent(
        &TapFilter {
            correlation: Some(CorrelationId(77)),
            ..TapFilter::default()
        },
        10,
    );
    assert_eq!(by_id[0].sender.as_deref(), Some("/m/elsewhere"));

    // A failure comes back as the receiver's error.
    let err = events.send(CounterEvent::Fail).await.unwrap_err();
    assert!(matches!(err, HostError::Fatal { .. }), "{err:?}");
}

#[actix_rt::test]
async fn a_singleton_converts_into_a_sender_of_its_events() {
    let root = Root::new(path("/m"), TapConfig::default());
    let nodes = MemNodes::with(&[("n1", 2)]);
    let sched = root
        .singleton(SingletonSpec::new("scheduler", Placer::default(), nodes))
        .unwrap();
    let to_sched: Sender<PlacerEvent> = sched.clone().into();
    to_sched
        .send(PlacerEvent::Place {
            pod: "p".into(),
            cpu: 2,
        })
        .await
        .unwrap();
    assert_eq!(
        summary(&root.registry(), sched.path()).await,
        "placed 1, free n1=0"
    );
    assert_eq!(format!("{to_sched:?}"), "Sender(\"/m/scheduler\")");
}

/// Senders and their futures move between threads, like `ChildRef`s.
#[test]
fn senders_and_their_futures_are_send() {
    fn is_send<T: Send + Sync>(_: &T) {}
    fn is_send_future<T: Send>(_: &T) {}
    fn check(s: Sender<CounterEvent>) {
        is_send(&s);
        is_send_future(&s.send(CounterEvent::Add(1)));
        is_send_future(&s.send_with(CounterEvent::Add(1), Meta::default()));
    }
    let _ = check;
}
