//! Reads: create and get, list with label and field selectors, and limit/continue paging.

use navarch_model::options::ListOptions;
use navarch_model::selector::{FieldSelector, LabelSelector};
use serde_json::json;

use super::{ensure, leases, name_of, names, rv_of, Ctx, Outcome, SCENARIO_LABEL};
use crate::Client;

fn labels(s: &str) -> LabelSelector {
    LabelSelector::parse(s).expect("the suite's label selectors parse")
}

fn fields(s: &str) -> FieldSelector {
    FieldSelector::parse("Lease", s).expect("the suite's field selectors parse")
}

/// A create answers with the stored object (uid, resourceVersion, creationTimestamp, the
/// request's namespace); get returns it as stored; a list holds exactly the created ones,
/// in this namespace and across all namespaces.
pub async fn create_get_list(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "create_get_list");
    let mut created = Vec::new();
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let o = x
            .create(leases(), x.lease(name, json!({"app": app})))
            .await?;
        let m = &o["metadata"];
        ensure!(
            x,
            name_of(&o) == name,
            "create {name} answered {}",
            name_of(&o)
        );
        ensure!(
            x,
            m["namespace"] == ns,
            "create {name}: namespace {} instead of the request's {ns}",
            m["namespace"]
        );
        for f in ["uid", "resourceVersion", "creationTimestamp"] {
            ensure!(
                x,
                m[f].as_str().is_some_and(|v| !v.is_empty()),
                "create {name}: metadata.{f} missing in {o}"
            );
        }
        ensure!(
            x,
            o["kind"] == "Lease" && o["apiVersion"] == "coordination.k8s.io/v1",
            "create {name}: kind/apiVersion {} {}",
            o["kind"],
            o["apiVersion"]
        );
        ensure!(
            x,
            o["spec"]["holderIdentity"] == "contract",
            "create {name}: spec not kept: {o}"
        );
        created.push(o);
    }
    for o in &created {
        let got = x.must_get(leases(), name_of(o)).await?;
        ensure!(
            x,
            got["metadata"]["uid"] == o["metadata"]["uid"] && rv_of(&got) == rv_of(o),
            "get {}: uid/resourceVersion differ from the create's answer: {got}",
            name_of(o)
        );
    }
    let list = x.list(leases(), ListOptions::default()).await?;
    ensure!(
        x,
        names(&list.items) == ["a", "b", "c"],
        "list in {ns}: expected [a, b, c] (name order), got {:?}",
        names(&list.items)
    );
    ensure!(
        x,
        !list.resource_version.is_empty(),
        "list in {ns}: no metadata.resourceVersion"
    );
    ensure!(
        x,
        list.continue_token.is_none(),
        "an unlimited list has a continue token"
    );
    for item in &list.items {
        ensure!(
            x,
            item["metadata"]["namespace"] == ns,
            "list in {ns} holds {item}"
        );
    }
    // Across all namespaces: ours are there, found by their label.
    let opts = ListOptions {
        label_selector: labels(&format!("{SCENARIO_LABEL}=create_get_list")),
        ..ListOptions::default()
    };
    let all = c.list(leases(), None, &opts).await;
    let all = x.ok("list across namespaces", all)?;
    let ours: Vec<String> = all
        .items
        .iter()
        .filter(|o| o["metadata"]["namespace"] == ns)
        .map(|o| name_of(o).to_string())
        .collect();
    ensure!(
        x,
        ours == ["a", "b", "c"],
        "list across namespaces: this namespace's leases are {ours:?}"
    );
    Ok(())
}

/// Label selectors (equality, inequality, set-based, existence) and field selectors filter a
/// list; `limit` and `continue` page it with every object exactly once.
pub async fn selectors_and_paging(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "selectors_and_paging");
    for i in 0..5 {
        x.create(
            leases(),
            x.lease(
                &format!("p{i}"),
                json!({"set": "paged", "i": i.to_string()}),
            ),
        )
        .await?;
    }
    x.create(leases(), x.lease("other", json!({"set": "apart"})))
        .await?;
    x.create(leases(), x.lease("bare", json!({}))).await?;
    let cases: &[(&str, &[&str])] = &[
        ("set=paged", &["p0", "p1", "p2", "p3", "p4"]),
        ("set=paged,i notin (0,1,2)", &["p3", "p4"]),
        ("set in (apart)", &["other"]),
        ("set!=paged", &["bare", "other"]),
        ("!set", &["bare"]),
        ("set,i=4", &["p4"]),
    ];
    for (sel, want) in cases {
        let l = x
            .list(
                leases(),
                ListOptions {
                    label_selector: labels(sel),
                    ..ListOptions::default()
                },
            )
            .await?;
        ensure!(
            x,
            names(&l.items) == *want,
            "labelSelector {sel:?}: expected {want:?}, got {:?}",
            names(&l.items)
        );
    }
    let field_cases: &[(&str, &str, &[&str])] = &[
        ("metadata.name=p2", "", &["p2"]),
        ("metadata.name!=p2", "set=paged", &["p0", "p1", "p3", "p4"]),
        (&format!("metadata.namespace={ns}"), "!set", &["bare"]),
    ];
    for (fsel, lsel, want) in field_cases {
        let l = x
            .list(
                leases(),
                ListOptions {
                    field_selector: fields(fsel),
                    label_selector: labels(lsel),
                    ..ListOptions::default()
                },
            )
            .await?;
        ensure!(
            x,
            names(&l.items) == *want,
            "fieldSelector {fsel:?} labelSelector {lsel:?}: expected {want:?}, got {:?}",
            names(&l.items)
        );
    }
    // Pages of 2 over the 5 paged leases.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let l = x
            .list(
                leases(),
                ListOptions {
                    label_selector: labels("set=paged"),
                    limit: Some(2),
                    continue_token: token.clone(),
                    ..ListOptions::default()
                },
            )
            .await?;
        pages += 1;
        ensure!(
            x,
            l.items.len() <= 2,
            "page {pages} with limit 2 has {} items",
            l.items.len()
        );
        if pages == 1 {
            if let Some(n) = l.remaining_item_count {
                ensure!(x, n == 3, "first page: remainingItemCount {n}, expected 3");
            }
        }
        seen.extend(names(&l.items));
        match l.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
        ensure!(x, pages < 10, "paging does not end: seen {seen:?}");
    }
    ensure!(
        x,
        seen == ["p0", "p1", "p2", "p3", "p4"] && pages == 3,
        "paging by 2: expected p0..p4 in 3 pages, got {seen:?} in {pages}"
    );
    Ok(())
}
