//! Message hop benchmark: bare actix `do_send` and `send` against the same hop through a
//! supervised `ObjectHost` (tap off, tap on), plus the cost of one tap record.
//!
//! Run with `cargo bench -p navarch-actors --bench hops`. Each figure is the median of several
//! rounds; all actors run on one arbiter with the sender, as in a controller process.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::BoxFuture;
use navarch_actors::{
    Decision, KindConfig, KindSpec, MessageTap, ObjectKey, ObjectLogic, Root, Source, SourceError,
    Status, TapConfig, TapInfo, TapRecord,
};

/// `cargo bench` passes `--bench`: measure for real. Under `cargo test` the binary only runs a
/// short smoke pass, so the suite checks that it works without timing anything.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn messages() -> u64 {
    if measuring() {
        200_000
    } else {
        2_000
    }
}

fn rounds() -> usize {
    if measuring() {
        7
    } else {
        1
    }
}

struct Bare {
    handled: u64,
}

impl Actor for Bare {
    type Context = Context<Self>;
}

struct Ping;

impl Message for Ping {
    type Result = ();
}

impl Handler<Ping> for Bare {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {
        self.handled += 1;
    }
}

struct Count;

impl Message for Count {
    type Result = u64;
}

impl Handler<Count> for Bare {
    type Result = MessageResult<Count>;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> MessageResult<Count> {
        MessageResult(self.handled)
    }
}

/// The smallest useful logic: count pings.
struct Counting;

struct Hop;

impl TapInfo for Hop {
    fn message_type(&self) -> Cow<'static, str> {
        Cow::Borrowed("Hop")
    }
}

impl ObjectLogic for Counting {
    type Object = u64;
    type State = u64;
    type Event = Hop;
    type Action = ();

    fn rebuild(&self, _: &ObjectKey, object: u64) -> u64 {
        object
    }
    fn on_change(&self, state: &mut u64, object: u64) -> Decision<()> {
        *state = object;
        Ok(Vec::new())
    }
    fn handle(&self, state: &mut u64, _: Hop) -> Decision<()> {
        *state += 1;
        Ok(Vec::new())
    }
    fn summary(&self, state: &u64) -> String {
        format!("handled {state}")
    }
}

struct Zero;

impl Source<u64> for Zero {
    fn load(&self, _: &ObjectKey) -> BoxFuture<'static, Result<Option<u64>, SourceError>> {
        Box::pin(async { Ok(Some(0)) })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn per_msg(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

async fn bare_do_send(addr: &Addr<Bare>) -> f64 {
    let before = addr.send(Count).await.unwrap();
    let t = Instant::now();
    for _ in 0..messages() {
        addr.do_send(Ping);
    }
    let after = addr.send(Count).await.unwrap();
    assert_eq!(after - before, messages());
    per_msg(t.elapsed(), messages())
}

async fn bare_send(addr: &Addr<Bare>) -> f64 {
    let t = Instant::now();
    for _ in 0..messages() {
        addr.send(Ping).await.unwrap();
    }
    per_msg(t.elapsed(), messages())
}

async fn supervised_do_send(child: &navarch_actors::ChildRef<Counting>) -> f64 {
    let t = Instant::now();
    for _ in 0..messages() {
        child.do_send(Hop).unwrap();
    }
    child.send(Hop).await.unwrap();
    per_msg(t.elapsed(), messages() + 1)
}

async fn supervised_send(child: &navarch_actors::ChildRef<Counting>) -> f64 {
    let t = Instant::now();
    for _ in 0..messages() {
        child.send(Hop).await.unwrap();
    }
    per_msg(t.elapsed(), messages())
}

fn tap_record_alone() -> f64 {
    let tap = MessageTap::new(TapConfig::default());
    let receiver: Arc<str> = Arc::from("/master/controllers/deployment/default/web");
    let t = Instant::now();
    for _ in 0..messages() {
        let started = Instant::now();
        tap.record(TapRecord {
            time: tap.wall_time(started),
            handling: started.elapsed(),
            ..TapRecord::local(receiver.clone(), Cow::Borrowed("Hop"))
        });
    }
    per_msg(t.elapsed(), messages())
}

fn main() {
    let sys = System::new();
    sys.block_on(async {
        let bare = Bare { handled: 0 }.start();
        let root = Root::new(
            navarch_actors::ActorPath::parse("/bench").unwrap(),
            TapConfig {
                capacity: 10_000,
                ..TapConfig::default()
            },
        );
        let config = KindConfig {
            mailbox_capacity: 16,
            ..KindConfig::default()
        };
        let kind = root
            .supervise(KindSpec::new("counter", Counting, Arc::new(Zero)).config(config))
            .unwrap();
        let key: ObjectKey = "default/web".parse().unwrap();
        kind.object_changed(key.clone(), 0).await.unwrap();
        let child = kind.child(&key).await.unwrap().unwrap();
        let reg = root.registry();
        while reg.get(child.path()).map(|i| i.status) != Some(Status::Running) {
            child.send(Hop).await.ok();
        }
        let tap = root.tap();

        let mut rows: Vec<(&str, Vec<f64>)> = vec![
            ("bare actix do_send", vec![]),
            ("bare actix send().await", vec![]),
            ("supervised do_send, tap off", vec![]),
            ("supervised send().await, tap off", vec![]),
            ("supervised do_send, tap on", vec![]),
            ("supervised send().await, tap on", vec![]),
            ("tap record alone", vec![]),
        ];
        for _ in 0..rounds() {
            rows[0].1.push(bare_do_send(&bare).await);
            rows[1].1.push(bare_send(&bare).await);
            tap.set_enabled(false);
            rows[2].1.push(supervised_do_send(&child).await);
            rows[3].1.push(supervised_send(&child).await);
            tap.set_enabled(true);
            rows[4].1.push(supervised_do_send(&child).await);
            rows[5].1.push(supervised_send(&child).await);
            rows[6].1.push(tap_record_alone());
        }
        let m: Vec<f64> = rows.iter().map(|(_, v)| median(v.clone())).collect();
        if !measuring() {
            println!(
                "smoke run only: figures come from `cargo bench -p navarch-actors --bench hops`"
            );
        }
        println!(
            "message hops, {} messages x {} rounds, median ns per message",
            messages(),
            rounds()
        );
        println!("{:<36} {:>10} {:>12}", "hop", "ns/msg", "vs bare");
        let vs = [None, None, Some(0), Some(1), Some(0), Some(1), None];
        for (i, (name, _)) in rows.iter().enumerate() {
            let ratio = vs[i]
                .map(|b| format!("{:.2}x", m[i] / m[b]))
                .unwrap_or_default();
            println!("{name:<36} {:>10.0} {ratio:>12}", m[i]);
        }
        println!(
            "tap cost per message (tap on - tap off): do_send {:.0} ns, send {:.0} ns",
            m[4] - m[2],
            m[5] - m[3]
        );
        println!("tap cost per record, measured alone: {:.0} ns", m[6]);
        assert!(tap.len() <= 10_000);
    });
}
