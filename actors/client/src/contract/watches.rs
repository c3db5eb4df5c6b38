//! Watches: from a list's resourceVersion (every change after it, in order, and a resume
//! after the last revision seen repeats nothing), and watch-list (`sendInitialEvents`: the
//! objects, then the bookmark that ends them, then changes).

use std::collections::BTreeSet;

use navarch_model::options::{DeleteOptions, ListOptions, WatchOptions};
use navarch_model::patch::PatchType;
use navarch_model::selector::LabelSelector;
use navarch_model::watch::EventType;
use serde_json::json;

use super::{ensure, leases, name_of, rv_of, Ctx, Outcome};
use crate::Client;

fn selector(s: &str) -> LabelSelector {
    LabelSelector::parse(s).expect("the suite's label selectors parse")
}

/// A watch from a list's resourceVersion sees ADDED, MODIFIED and DELETED in the order
/// they happened; a new watch from the revision of an event it saw delivers exactly the
/// events after it.
pub async fn watch_from_list(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "watch_from_list");
    let sel = selector("w=1");
    let list = x
        .list(
            leases(),
            ListOptions {
                label_selector: sel.clone(),
                ..ListOptions::default()
            },
        )
        .await?;
    ensure!(x, list.items.is_empty(), "a fresh namespace has leases");
    ensure!(
        x,
        !list.resource_version.is_empty(),
        "the list has no resourceVersion to watch from"
    );
    let from = |rv: String| WatchOptions {
        label_selector: sel.clone(),
        resource_version: Some(rv),
        allow_bookmarks: true,
        ..WatchOptions::default()
    };
    let r = c
        .watch(leases(), Some(ns), &from(list.resource_version.clone()))
        .await;
    let mut w = x.ok("watch from the list's resourceVersion", r)?;

    let a = x.create(leases(), x.lease("w1", json!({"w": "1"}))).await?;
    x.create(leases(), x.lease("not-watched", json!({"w": "2"})))
        .await?;
    let r = x
        .patch(
            leases(),
            "w1",
            None,
            PatchType::Merge,
            json!({"spec": {"holderIdentity": "changed"}}),
        )
        .await?;
    let m = x.ok("patch w1", r)?.object;
    let b = x.create(leases(), x.lease("w2", json!({"w": "1"}))).await?;
    let r = x.delete(leases(), "w1", DeleteOptions::default()).await;
    x.ok("delete w1", r)?;

    let e1 = x.next_change(&mut w, "first event").await?;
    x.expect_event(&e1, EventType::Added, "w1", "first event")?;
    ensure!(
        x,
        rv_of(&e1.object) == rv_of(&a),
        "ADDED w1 carries resourceVersion {}, the create answered {}",
        rv_of(&e1.object),
        rv_of(&a)
    );
    let e2 = x.next_change(&mut w, "second event").await?;
    x.expect_event(&e2, EventType::Modified, "w1", "second event")?;
    ensure!(
        x,
        e2.object["spec"]["holderIdentity"] == "changed" && rv_of(&e2.object) == rv_of(&m),
        "MODIFIED w1 is not the patched object: {}",
        e2.object
    );
    let e3 = x.next_change(&mut w, "third event").await?;
    x.expect_event(&e3, EventType::Added, "w2", "third event")?;
    let e4 = x.next_change(&mut w, "fourth event").await?;
    x.expect_event(&e4, EventType::Deleted, "w1", "fourth event")?;
    drop(w);

    // Resume after the MODIFIED event: ADDED w2 and DELETED w1 again, nothing before them.
    let r = c.watch(leases(), Some(ns), &from(rv_of(&e2.object))).await;
    let mut w = x.ok("watch resumed after the MODIFIED event", r)?;
    let r1 = x.next_change(&mut w, "first resumed event").await?;
    x.expect_event(
        &r1,
        EventType::Added,
        "w2",
        "first resumed event (no repeat of MODIFIED w1)",
    )?;
    ensure!(
        x,
        rv_of(&r1.object) == rv_of(&b),
        "the resumed ADDED w2 has resourceVersion {}, expected {}",
        rv_of(&r1.object),
        rv_of(&b)
    );
    let r2 = x.next_change(&mut w, "second resumed event").await?;
    x.expect_event(&r2, EventType::Deleted, "w1", "second resumed event")?;
    x.create(leases(), x.lease("w3", json!({"w": "1"}))).await?;
    let r3 = x.next_change(&mut w, "third resumed event").await?;
    x.expect_event(
        &r3,
        EventType::Added,
        "w3",
        "third resumed event (no duplicate before it)",
    )?;
    Ok(())
}

/// Watch-list: with `sendInitialEvents=true`, `resourceVersionMatch=NotOlderThan` and
/// bookmarks, the watch starts with an ADDED per existing object, then a BOOKMARK annotated
/// `k8s.io/initial-events-end`, then the changes that follow.
pub async fn watch_list(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "watch_list");
    for n in ["l1", "l2"] {
        x.create(leases(), x.lease(n, json!({"wl": "1"}))).await?;
    }
    let opts = WatchOptions {
        label_selector: selector("wl=1"),
        send_initial_events: Some(true),
        resource_version_match: Some("NotOlderThan".into()),
        allow_bookmarks: true,
        ..WatchOptions::default()
    };
    let r = c.watch(leases(), Some(ns), &opts).await;
    let mut w = x.ok("watch-list", r)?;
    let mut initial = BTreeSet::new();
    let end = loop {
        let ev = x
            .next_event(&mut w, "initial events of the watch-list")
            .await?;
        match ev.event_type {
            EventType::Added => {
                ensure!(
                    x,
                    initial.insert(name_of(&ev.object).to_string()),
                    "ADDED {} twice among the initial events",
                    name_of(&ev.object)
                );
            }
            EventType::Bookmark if ev.is_initial_events_end() => break ev,
            EventType::Bookmark => {}
            other => {
                return Err(x.fail(format!(
                    "{other} {} before the initial-events-end bookmark",
                    name_of(&ev.object)
                )))
            }
        }
        ensure!(
            x,
            initial.len() <= 2,
            "more initial events than objects: {initial:?}"
        );
    };
    ensure!(
        x,
        initial == BTreeSet::from(["l1".to_string(), "l2".to_string()]),
        "initial events: {initial:?}, expected l1 and l2"
    );
    ensure!(
        x,
        !rv_of(&end.object).is_empty() && end.object["kind"] == "Lease",
        "the initial-events-end bookmark: {}",
        end.object
    );
    x.create(leases(), x.lease("l3", json!({"wl": "1"})))
        .await?;
    let ev = x
        .next_change(&mut w, "the event after the bookmark")
        .await?;
    x.expect_event(&ev, EventType::Added, "l3", "the event after the bookmark")?;
    Ok(())
}
