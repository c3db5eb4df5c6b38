//! Deletion: finalizers hold an object (marked with a deletionTimestamp) until they are
//! removed; a collection's delete deletes what its selector matches; deleting an owner
//! deletes (Background, Foreground) or orphans its dependents, found by
//! `metadata.ownerReferences`.

use navarch_model::options::{DeleteOptions, ListOptions, Propagation};
use navarch_model::patch::PatchType;
use navarch_model::selector::LabelSelector;
use serde_json::{json, Value};

use super::{ensure, leases, name_of, Ctx, Outcome};
use crate::Client;

const FINALIZER: &str = "contract.navarch.io/hold";

fn owned_by(x: &Ctx<'_>, name: &str, owner: &Value) -> Value {
    let mut l = x.lease(name, json!({}));
    l["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "name": name_of(owner),
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": true,
    }]);
    l
}

fn owner_uids(o: &Value) -> Vec<String> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A delete of an object with finalizers marks it (deletionTimestamp) and keeps it, visible
/// to get and list, until the last finalizer is removed; then it is gone. Without
/// finalizers a delete removes at once.
pub async fn finalizers(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "finalizers");
    let mut held = x.lease("held", json!({}));
    held["metadata"]["finalizers"] = json!([FINALIZER]);
    x.create(leases(), held).await?;
    let r = x.delete(leases(), "held", DeleteOptions::default()).await;
    let marked = x.ok("delete of an object with a finalizer", r)?;
    if marked["kind"] != "Status" {
        ensure!(
            x,
            marked["metadata"]["deletionTimestamp"].is_string(),
            "the delete answered the object without a deletionTimestamp: {marked}"
        );
    }
    let got = x.must_get(leases(), "held").await?;
    ensure!(
        x,
        got["metadata"]["deletionTimestamp"].is_string()
            && got["metadata"]["finalizers"] == json!([FINALIZER]),
        "an object held by a finalizer: {}",
        got["metadata"]
    );
    let listed = x.list(leases(), Default::default()).await?;
    ensure!(
        x,
        super::names(&listed.items).contains(&"held".to_string()),
        "an object held by a finalizer is missing from the list"
    );
    let r = x.delete(leases(), "held", DeleteOptions::default()).await;
    x.ok("a second delete of the held object", r)?;
    x.must_get(leases(), "held").await?;
    let r = x
        .patch(
            leases(),
            "held",
            None,
            PatchType::Merge,
            json!({"metadata": {"finalizers": null}}),
        )
        .await?;
    x.ok("removing the last finalizer", r)?;
    x.gone(leases(), "held").await?;

    x.create(leases(), x.lease("free", json!({}))).await?;
    let r = x.delete(leases(), "free", DeleteOptions::default()).await;
    x.ok("delete of an object without finalizers", r)?;
    let r = x.get(leases(), "free").await;
    x.refused(
        "get right after deleting an object without finalizers",
        r,
        404,
        "NotFound",
    )?;
    Ok(())
}

/// A delete of a collection deletes what its selector matches, each as a delete would:
/// objects without finalizers go, one held by a finalizer is marked and kept; the others
/// stay.
pub async fn delete_collection(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "delete_collection");
    for (name, doomed) in [("c1", true), ("c2", true), ("c3", false)] {
        let mut l = x.lease(name, json!({"doomed": doomed.to_string()}));
        if name == "c2" {
            l["metadata"]["finalizers"] = json!([FINALIZER]);
        }
        x.create(leases(), l).await?;
    }
    let list = ListOptions {
        label_selector: LabelSelector::parse("doomed=true")
            .map_err(|e| x.fail(format!("selector: {e}")))?,
        ..ListOptions::default()
    };
    let r = c
        .delete_collection(leases(), Some(ns), &list, &DeleteOptions::default())
        .await;
    let done = x.ok("delete of a collection", r)?;
    let mut deleted = super::names(&done.items);
    deleted.sort();
    ensure!(
        x,
        deleted == ["c1", "c2"],
        "the collection's delete answered {deleted:?}, not the two objects it selects"
    );
    x.gone(leases(), "c1").await?;
    let held = x.must_get(leases(), "c2").await?;
    ensure!(
        x,
        held["metadata"]["deletionTimestamp"].is_string(),
        "the held object was not marked: {}",
        held["metadata"]
    );
    let kept = x.must_get(leases(), "c3").await?;
    ensure!(
        x,
        kept["metadata"]["deletionTimestamp"].is_null(),
        "an object the selector does not match was marked: {}",
        kept["metadata"]
    );
    let r = x
        .patch(
            leases(),
            "c2",
            None,
            PatchType::Merge,
            json!({"metadata": {"finalizers": null}}),
        )
        .await?;
    x.ok("removing the last finalizer", r)?;
    x.gone(leases(), "c2").await?;
    Ok(())
}

struct Family {
    owner: Value,
}

async fn family(x: &Ctx<'_>) -> Result<Family, super::Failure> {
    let owner = x.create(leases(), x.lease("owner", json!({}))).await?;
    for d in ["dep-1", "dep-2"] {
        x.create(leases(), owned_by(x, d, &owner)).await?;
    }
    x.create(leases(), x.lease("unrelated", json!({}))).await?;
    Ok(Family { owner })
}

fn with_policy(p: Propagation) -> DeleteOptions {
    DeleteOptions {
        propagation_policy: Some(p),
        ..DeleteOptions::default()
    }
}

/// Background: the owner goes at once, its dependents after it; others stay.
pub async fn cascade_background(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "cascade_background");
    family(&x).await?;
    let r = x
        .delete(leases(), "owner", with_policy(Propagation::Background))
        .await;
    x.ok("delete the owner (Background)", r)?;
    x.gone(leases(), "owner").await?;
    for d in ["dep-1", "dep-2"] {
        x.gone(leases(), d).await?;
    }
    x.must_get(leases(), "unrelated").await?;
    Ok(())
}

/// Orphan: the owner goes; its dependents stay, no longer owned by it.
pub async fn cascade_orphan(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "cascade_orphan");
    let f = family(&x).await?;
    let uid = f.owner["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let r = x
        .delete(leases(), "owner", with_policy(Propagation::Orphan))
        .await;
    x.ok("delete the owner (Orphan)", r)?;
    x.gone(leases(), "owner").await?;
    for d in ["dep-1", "dep-2"] {
        let what = format!("{d} to lose its ownerReference to the deleted owner");
        x.eventually(&what, || async {
            match x.get(leases(), d).await {
                Ok(o) if !owner_uids(&o).contains(&uid) => Some(Ok(())),
                Ok(_) => None,
                Err(e) => Some(Err(x.fail(format!("an orphaned dependent {d}: {e}")))),
            }
        })
        .await??;
    }
    x.must_get(leases(), "unrelated").await?;
    Ok(())
}

/// Foreground: the owner stays (marked, or already gone) until its blocking dependents are
/// gone; it is never gone while one of them is still there; in the end all of them are.
pub async fn cascade_foreground(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "cascade_foreground");
    family(&x).await?;
    let r = x
        .delete(leases(), "owner", with_policy(Propagation::Foreground))
        .await;
    let answer = x.ok("delete the owner (Foreground)", r)?;
    if answer["kind"] == "Lease" {
        // Kubernetes answers the owner as it is now: marked, waiting for its dependents.
        let marked = !answer["metadata"]["deletionTimestamp"].is_null();
        let foreground = answer["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|s| s == "foregroundDeletion"));
        let gone = x.get(leases(), "owner").await.is_err();
        ensure!(
            x,
            gone || (marked && foreground),
            "a foreground delete answered an owner neither gone nor marked with the foregroundDeletion finalizer: {}",
            answer["metadata"]
        );
    }
    x.eventually("the owner to be gone", || async {
        match x.get(leases(), "owner").await {
            Ok(_) => None,
            Err(e) if e.is_not_found() => Some(()),
            Err(_) => None,
        }
    })
    .await?;
    for d in ["dep-1", "dep-2"] {
        let r = x.get(leases(), d).await;
        x.refused(
            &format!("get {d} once its foreground-deleted owner is gone"),
            r,
            404,
            "NotFound",
        )?;
    }
    x.must_get(leases(), "unrelated").await?;
    Ok(())
}
