//! The Deployment controller's tests: the fenceposts, the template hash, one reconcile's
//! arithmetic table by table (rolling update, recreate, proportional scaling, history,
//! conditions, rollback), and whole rollouts on the simulated cluster with their
//! invariants checked at every step.

use std::sync::Arc;

use serde_json::{json, Value};

use super::bounds::Params;
use super::sim::Sim;
use super::*;
use crate::events::EventType;
use crate::meta;

const T0: i64 = 1_700_000_000;

fn ts(t: i64) -> String {
    meta::format_rfc3339(t)
}

fn template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": image}]},
    })
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn recreate() -> Value {
    json!({"type": "Recreate"})
}

fn deployment(replicas: i64, strategy: Value, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "uid-web",
            "generation": 1, "resourceVersion": "10",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "template": template(image),
        },
    })
}

fn rs_name(image: &str) -> String {
    format!("web-{}", template_hash(&template(image), None))
}

/// A ReplicaSet of `d` for `image` as the controller makes them, with `spec` replicas of
/// which `available` are available.
fn rs(d: &Value, image: &str, revision: i64, spec: i64, available: i64) -> Value {
    let hash = template_hash(&template(image), None);
    let name = format!("web-{hash}");
    let mut tmpl = template(image);
    tmpl["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
    let p = Params::of(d);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "resourceVersion": "5", "generation": 1,
            "creationTimestamp": ts(T0 - 10_000 + revision * 10),
            "labels": tmpl["metadata"]["labels"].clone(),
            "annotations": {
                REVISION: revision.to_string(),
                DESIRED_REPLICAS: p.replicas.to_string(),
                MAX_REPLICAS: p.max_replicas().to_string(),
            },
            "ownerReferences": [meta::controller_ref_to(d, "apps/v1", "Deployment")],
        },
        "spec": {
            "replicas": spec,
            "minReadySeconds": 0,
            "selector": {"matchLabels": {"app": "web", POD_TEMPLATE_HASH: hash}},
            "template": tmpl,
        },
        "status": {
            "replicas": spec, "readyReplicas": available, "availableReplicas": available,
            "observedGeneration": 1,
        },
    })
}

fn run(d: &Value, rss: &[Value], pods: &[Value], now: i64) -> Plan {
    let rss: Vec<Arc<Value>> = rss.iter().cloned().map(Arc::new).collect();
    let pods: Vec<Arc<Value>> = pods.iter().cloned().map(Arc::new).collect();
    let input = DeploymentInput {
        deployment: d,
        replica_sets: &rss,
        pods: &pods,
        now,
    };
    let plan = reconcile(&input);
    assert_eq!(plan, reconcile(&input), "reconcile is deterministic");
    plan
}

/// `d` with the status a reconcile at `now` would store (its other actions ignored).
fn settled(mut d: Value, rss: &[Value], now: i64) -> Value {
    for _ in 0..3 {
        if let Some(s) = status_of(&run(&d, rss, &[], now)) {
            d["status"] = s.clone();
        }
    }
    d
}

fn creates(p: &Plan) -> Vec<&Value> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            DeploymentAction::CreateReplicaSet(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn updates(p: &Plan) -> Vec<&Value> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            DeploymentAction::UpdateReplicaSet(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn update_of<'a>(p: &'a Plan, name: &str) -> Option<&'a Value> {
    let found: Vec<&Value> = updates(p)
        .into_iter()
        .filter(|v| meta::name(v) == name)
        .collect();
    assert!(found.len() <= 1, "one update per ReplicaSet and plan");
    found.first().copied()
}

fn deletes(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            DeploymentAction::DeleteReplicaSet { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn status_of(p: &Plan) -> Option<&Value> {
    p.actions.iter().find_map(|a| match a {
        DeploymentAction::UpdateStatus(v) => Some(&v["status"]),
        _ => None,
    })
}

fn deployment_update(p: &Plan) -> Option<&Value> {
    p.actions.iter().find_map(|a| match a {
        DeploymentAction::UpdateDeployment(v) => Some(v),
        _ => None,
    })
}

fn events(p: &Plan) -> Vec<(EventType, String, String)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            DeploymentAction::Event(e) => Some((e.type_, e.reason.clone(), e.message.clone())),
            _ => None,
        })
        .collect()
}

fn messages(p: &Plan, reason: &str) -> Vec<String> {
    events(p)
        .into_iter()
        .filter(|e| e.1 == reason)
        .map(|e| e.2)
        .collect()
}

fn cond<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The size a ReplicaSet has after the plan.
fn spec_after(p: &Plan, rs: &Value) -> i64 {
    update_of(p, meta::name(rs)).map_or_else(|| work::spec_replicas(rs), work::spec_replicas)
}

// ---------------------------------------------------------------------------------------
// Fenceposts and hashes.

#[test]
fn rolling_bounds_round_surge_up_and_unavailability_down() {
    let cases: &[(i64, Value, Value, (i64, i64))] = &[
        (10, json!("25%"), json!("25%"), (3, 2)),
        (3, json!("25%"), json!("25%"), (1, 0)),
        (1, json!("25%"), json!("25%"), (1, 0)),
        (7, json!("30%"), json!("30%"), (3, 2)),
        (100, json!("1%"), json!("1%"), (1, 1)),
        (10, json!("100%"), json!("100%"), (10, 10)),
        (4, json!("50%"), json!(0), (2, 0)),
        (5, json!(0), json!("50%"), (0, 2)),
        (5, json!(2), json!(1), (2, 1)),
        (3, json!(5), json!(5), (5, 5)),
        // Both resolve to zero: one may be unavailable.
        (10, json!(0), json!(0), (0, 1)),
        (10, json!("0%"), json!("0%"), (0, 1)),
        (3, json!("0%"), json!("10%"), (0, 1)),
        (0, json!("25%"), json!("25%"), (0, 1)),
        (0, json!(1), json!(0), (1, 0)),
        // Absent: the API's 25%.
        (10, Value::Null, Value::Null, (3, 2)),
        (8, Value::Null, json!(0), (2, 0)),
        // Malformed (validation refuses them): zero.
        (10, json!("abc"), json!(1), (0, 1)),
        (10, json!("5"), json!("x%"), (0, 1)),
    ];
    for (replicas, surge, unavailable, want) in cases {
        assert_eq!(
            rolling_bounds(*replicas, surge, unavailable),
            *want,
            "replicas {replicas}, maxSurge {surge}, maxUnavailable {unavailable}"
        );
    }
}

#[test]
fn params_default_and_cap() {
    let d = json!({"spec": {}});
    let p = Params::of(&d);
    assert_eq!(
        (p.replicas, p.recreate, p.max_surge, p.max_unavailable),
        (1, false, 1, 0)
    );
    assert_eq!(
        (p.history_limit, p.progress_deadline, p.min_ready_seconds),
        (Some(10), Some(600), 0)
    );
    // maxUnavailable is capped at replicas, and zero for zero replicas or Recreate.
    let p = Params::of(&deployment(3, rolling(json!(1), json!(5)), "v1"));
    assert_eq!((p.max_surge, p.max_unavailable), (1, 3));
    let p = Params::of(&deployment(0, rolling(json!(1), json!(5)), "v1"));
    assert_eq!(p.max_unavailable, 0);
    let p = Params::of(&deployment(3, recreate(), "v1"));
    assert_eq!((p.max_surge, p.max_unavailable, p.recreate), (0, 0, true));
    let mut d = deployment(3, recreate(), "v1");
    d["spec"]["progressDeadlineSeconds"] = json!(i32::MAX);
    d["spec"]["revisionHistoryLimit"] = json!(i32::MAX);
    let p = Params::of(&d);
    assert_eq!((p.progress_deadline, p.history_limit), (None, None));
}

#[test]
fn template_hash_is_stable_and_distinguishes() {
    let a = template("nginx:1.25");
    let reordered = json!({
        "spec": {"containers": [{"image": "nginx:1.25", "name": "c"}]},
        "metadata": {"labels": {"app": "web"}},
    });
    let mut labelled = a.clone();
    labelled["metadata"]["labels"][POD_TEMPLATE_HASH] = json!("whatever");
    let other = template("nginx:1.26");
    let h = template_hash(&a, None);
    let cases: &[(&str, String, bool)] = &[
        ("same template", template_hash(&a, None), true),
        ("keys reordered", template_hash(&reordered, None), true),
        ("hash label ignored", template_hash(&labelled, None), true),
        ("other image", template_hash(&other, None), false),
        ("collision count 0", template_hash(&a, Some(0)), false),
        ("collision count 1", template_hash(&a, Some(1)), false),
    ];
    for (what, got, same) in cases {
        assert_eq!(got == &h, *same, "{what}: {got} vs {h}");
    }
    assert_ne!(template_hash(&a, Some(1)), template_hash(&a, Some(2)));
    assert_eq!(template_hash(&a, Some(1)), template_hash(&a, Some(1)));
    for hash in [h, template_hash(&a, Some(7))] {
        assert!(!hash.is_empty() && hash.len() <= 10, "{hash}");
        assert!(
            hash.chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{hash}"
        );
    }
    assert!(equal_ignore_hash(&a, &labelled));
    assert!(!equal_ignore_hash(&a, &other));
}

// ---------------------------------------------------------------------------------------
// One reconcile.

#[test]
fn a_new_deployment_gets_its_replica_set() {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    d["spec"]["minReadySeconds"] = json!(5);
    d["metadata"]["annotations"] = json!({CHANGE_CAUSE: "first", "team": "a"});
    let plan = run(&d, &[], &[], T0);
    let created = creates(&plan);
    assert_eq!(created.len(), 1);
    let rs = created[0];
    let hash = template_hash(&d["spec"]["template"], None);
    let name = format!("web-{hash}");
    assert_eq!(meta::name(rs), name);
    assert_eq!(meta::namespace(rs), "default");
    assert_eq!(
        rs["metadata"]["labels"],
        json!({"app": "web", POD_TEMPLATE_HASH: hash})
    );
    assert_eq!(
        rs["spec"]["selector"],
        json!({"matchLabels": {"app": "web", POD_TEMPLATE_HASH: hash}})
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH],
        hash
    );
    assert_eq!(
        rs["spec"]["template"]["spec"],
        d["spec"]["template"]["spec"]
    );
    assert_eq!(rs["spec"]["replicas"], 3);
    assert_eq!(rs["spec"]["minReadySeconds"], 5);
    assert!(meta::is_controlled_by(rs, "uid-web"));
    assert_eq!(meta::controller_ref(rs).unwrap()["kind"], "Deployment");
    assert_eq!(meta::controller_ref(rs).unwrap()["apiVersion"], "apps/v1");
    for (k, v) in [
        (REVISION, "1"),
        (DESIRED_REPLICAS, "3"),
        (MAX_REPLICAS, "4"),
        (CHANGE_CAUSE, "first"),
        ("team", "a"),
    ] {
        assert_eq!(meta::annotation(rs, k), Some(v), "{k}");
    }
    let status = status_of(&plan).expect("a status");
    assert_eq!(status["observedGeneration"], 1);
    let progressing = cond(status, "Progressing").unwrap();
    assert_eq!(progressing["reason"], reason::NEW_RS_CREATED);
    assert_eq!(
        progressing["message"],
        format!("Created new replica set {name:?}")
    );
    assert_eq!(progressing["lastUpdateTime"], ts(T0));
    assert_eq!(cond(status, "Available").unwrap()["status"], "False");
    let updated = deployment_update(&plan).expect("the revision annotation");
    assert_eq!(meta::annotation(updated, REVISION), Some("1"));
    assert_eq!(
        messages(&plan, "ScalingReplicaSet"),
        vec![format!("Scaled up replica set {name} from 0 to 3")]
    );
    // Order: the create, then the status, the Deployment, the events.
    let kinds: Vec<&str> = plan
        .actions
        .iter()
        .map(|a| match a {
            DeploymentAction::CreateReplicaSet(_) => "create",
            DeploymentAction::UpdateReplicaSet(_) => "update",
            DeploymentAction::DeleteReplicaSet { .. } => "delete",
            DeploymentAction::UpdateDeployment(_) => "deployment",
            DeploymentAction::UpdateStatus(_) => "status",
            DeploymentAction::Event(_) => "event",
        })
        .collect();
    assert_eq!(kinds, ["create", "status", "deployment", "event"]);
    // The writes carry the resourceVersion they were read at.
    assert_eq!(meta::resource_version(updated), "10");
}

struct RollingCase {
    name: &'static str,
    replicas: i64,
    surge: Value,
    unavailable: Value,
    /// Old ReplicaSets, oldest first: (spec, available).
    olds: Vec<(i64, i64)>,
    /// The new ReplicaSet (spec, available), or none yet.
    new: Option<(i64, i64)>,
    want_olds: Vec<i64>,
    want_new: i64,
}

#[test]
fn rolling_update_steps() {
    let case = |name, replicas, surge, unavailable, olds, new, want_olds, want_new| RollingCase {
        name,
        replicas,
        surge,
        unavailable,
        olds,
        new,
        want_olds,
        want_new,
    };
    let cases = vec![
        case(
            "surge first",
            3,
            json!(1),
            json!(0),
            vec![(3, 3)],
            Some((0, 0)),
            vec![3],
            1,
        ),
        case(
            "surge used, new not ready",
            3,
            json!(1),
            json!(0),
            vec![(3, 3)],
            Some((1, 0)),
            vec![3],
            1,
        ),
        case(
            "new ready, old down",
            3,
            json!(1),
            json!(0),
            vec![(3, 3)],
            Some((1, 1)),
            vec![2],
            1,
        ),
        // Created with the surge, and the unavailability budget spent on the old one at once.
        case(
            "25% of 10 creates 3",
            10,
            json!("25%"),
            json!("25%"),
            vec![(10, 10)],
            None,
            vec![8],
            3,
        ),
        case(
            "25% of 10, new not ready",
            10,
            json!("25%"),
            json!("25%"),
            vec![(10, 10)],
            Some((3, 0)),
            vec![8],
            3,
        ),
        case(
            "25% of 10, room again",
            10,
            json!("25%"),
            json!("25%"),
            vec![(8, 8)],
            Some((3, 0)),
            vec![8],
            5,
        ),
        case(
            "no surge: old down first",
            3,
            json!(0),
            json!(1),
            vec![(3, 3)],
            Some((0, 0)),
            vec![2],
            0,
        ),
        case(
            "no surge: then new up",
            3,
            json!(0),
            json!(1),
            vec![(2, 2)],
            Some((0, 0)),
            vec![2],
            1,
        ),
        case(
            "unhealthy old replicas go first",
            4,
            json!(1),
            json!(1),
            vec![(2, 1), (2, 2)],
            Some((1, 0)),
            vec![1, 2],
            1,
        ),
        case(
            "crashing old, no budget",
            3,
            json!(1),
            json!(0),
            vec![(3, 0)],
            Some((1, 0)),
            vec![3],
            1,
        ),
        case(
            "crashing old, budget of one",
            3,
            json!(1),
            json!(1),
            vec![(3, 0)],
            Some((1, 0)),
            vec![2],
            1,
        ),
        // An old ReplicaSet claiming more available than it has: Kubernetes stops.
        case(
            "stale old status",
            4,
            json!(1),
            json!(1),
            vec![(2, 3)],
            Some((3, 2)),
            vec![2],
            3,
        ),
        case(
            "rollover: oldest down first",
            10,
            json!(3),
            json!(2),
            vec![(5, 5), (5, 5)],
            Some((3, 0)),
            vec![3, 5],
            3,
        ),
        case(
            "new above replicas",
            2,
            json!(1),
            json!(0),
            vec![(0, 0)],
            Some((4, 4)),
            vec![0],
            2,
        ),
        case(
            "done",
            3,
            json!(1),
            json!(0),
            vec![(0, 0)],
            Some((3, 3)),
            vec![0],
            3,
        ),
        case(
            "zero replicas",
            0,
            json!(1),
            json!(1),
            vec![(2, 2)],
            Some((0, 0)),
            vec![0],
            0,
        ),
    ];
    for c in cases {
        let n = c.olds.len() as i64;
        let image = format!("v{}", n + 1);
        let d = deployment(
            c.replicas,
            rolling(c.surge.clone(), c.unavailable.clone()),
            &image,
        );
        let olds: Vec<Value> = c
            .olds
            .iter()
            .enumerate()
            .map(|(i, (s, a))| rs(&d, &format!("v{}", i + 1), i as i64 + 1, *s, *a))
            .collect();
        let mut all = olds.clone();
        if let Some((s, a)) = c.new {
            all.push(rs(&d, &image, n + 1, s, a));
        }
        let plan = run(&d, &all, &[], T0);
        let got_olds: Vec<i64> = olds.iter().map(|o| spec_after(&plan, o)).collect();
        assert_eq!(got_olds, c.want_olds, "{}: old replica sets", c.name);
        let got_new = match c.new {
            Some(_) => spec_after(&plan, all.last().unwrap()),
            None => {
                let created = creates(&plan);
                assert_eq!(created.len(), 1, "{}", c.name);
                work::spec_replicas(created[0])
            }
        };
        assert_eq!(got_new, c.want_new, "{}: new replica set", c.name);
        if c.new.is_some() {
            assert!(creates(&plan).is_empty(), "{}", c.name);
        }
    }
}

#[test]
fn scaling_events_say_from_and_to() {
    let d = deployment(3, rolling(json!(1), json!(0)), "v2");
    let old = rs(&d, "v1", 1, 3, 3);
    let new = rs(&d, "v2", 2, 1, 1);
    let plan = run(&d, &[old.clone(), new], &[], T0);
    assert_eq!(
        messages(&plan, "ScalingReplicaSet"),
        vec![format!(
            "Scaled down replica set {} from 3 to 2",
            meta::name(&old)
        )]
    );
    let (t, _, _) = &events(&plan)[0];
    assert_eq!(*t, EventType::Normal);
    let e = plan.actions.iter().find_map(|a| match a {
        DeploymentAction::Event(e) => Some(e),
        _ => None,
    });
    let involved = &e.unwrap().involved;
    assert_eq!(
        (
            involved.kind.as_str(),
            involved.name.as_str(),
            involved.uid.as_str()
        ),
        ("Deployment", "web", "uid-web")
    );
}

#[test]
fn recreate_steps() {
    let d = deployment(3, recreate(), "v2");
    let old_pod = |rs: &Value, phase: &str, deleting: bool| {
        let mut p = json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-p",
                         "ownerReferences": [meta::controller_ref_to(rs, "apps/v1", "ReplicaSet")]},
            "status": {"phase": phase},
        });
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!(ts(T0));
        }
        p
    };
    struct Case {
        name: &'static str,
        old: Value,
        new: Option<Value>,
        pods: Vec<Value>,
        want_old: i64,
        /// The new ReplicaSet's size after the plan (None: not created).
        want_new: Option<i64>,
    }
    let old_up = rs(&d, "v1", 1, 3, 3);
    let mut old_draining = rs(&d, "v1", 1, 0, 0);
    old_draining["status"]["replicas"] = json!(2);
    let old_gone = rs(&d, "v1", 1, 0, 0);
    let cases = vec![
        Case {
            name: "old scaled to zero first",
            old: old_up.clone(),
            new: None,
            pods: vec![],
            want_old: 0,
            want_new: None,
        },
        Case {
            name: "old still reports pods",
            old: old_draining,
            new: None,
            pods: vec![],
            want_old: 0,
            want_new: None,
        },
        Case {
            name: "an old pod is terminating",
            old: old_gone.clone(),
            new: None,
            pods: vec![old_pod(&old_gone, "Running", true)],
            want_old: 0,
            want_new: None,
        },
        Case {
            name: "an old pod is pending",
            old: old_gone.clone(),
            new: None,
            pods: vec![old_pod(&old_gone, "Pending", false)],
            want_old: 0,
            want_new: None,
        },
        Case {
            name: "ended old pods do not count",
            old: old_gone.clone(),
            new: None,
            pods: vec![
                old_pod(&old_gone, "Succeeded", false),
                old_pod(&old_gone, "Failed", false),
            ],
            want_old: 0,
            want_new: Some(3),
        },
        Case {
            name: "existing new scaled up",
            old: old_gone.clone(),
            new: Some(rs(&d, "v2", 2, 0, 0)),
            pods: vec![],
            want_old: 0,
            want_new: Some(3),
        },
        Case {
            name: "new waits while old scales down",
            old: old_up,
            new: Some(rs(&d, "v2", 2, 0, 0)),
            pods: vec![],
            want_old: 0,
            want_new: Some(0),
        },
    ];
    for c in cases {
        let mut all = vec![c.old.clone()];
        all.extend(c.new.clone());
        let plan = run(&d, &all, &c.pods, T0);
        assert_eq!(spec_after(&plan, &c.old), c.want_old, "{}", c.name);
        let got_new = match &c.new {
            Some(n) => Some(spec_after(&plan, n)),
            None => creates(&plan).first().map(|r| work::spec_replicas(r)),
        };
        assert_eq!(got_new, c.want_new, "{}", c.name);
        let status = status_of(&plan).expect("a status");
        // Recreate tolerates no unavailability.
        let available = cond(status, "Available").unwrap();
        let want = if status["availableReplicas"].as_i64().unwrap_or(0) >= 3 {
            "True"
        } else {
            "False"
        };
        assert_eq!(available["status"], want, "{}", c.name);
    }
}

#[test]
fn proportional_scaling() {
    struct Case {
        name: &'static str,
        replicas: i64,
        surge: Value,
        unavailable: Value,
        /// The sizes the ReplicaSets were made for: (desired, max).
        before: (i64, i64),
        old: i64,
        new: i64,
        want: (i64, i64),
    }
    let cases = vec![
        Case {
            name: "10 to 15 mid-rollout",
            replicas: 15,
            surge: json!(3),
            unavailable: json!(2),
            before: (10, 13),
            old: 8,
            new: 5,
            want: (11, 7),
        },
        Case {
            name: "10 to 5 mid-rollout",
            replicas: 5,
            surge: json!("25%"),
            unavailable: json!("25%"),
            before: (10, 13),
            old: 6,
            new: 6,
            want: (3, 4),
        },
        Case {
            name: "to zero",
            replicas: 0,
            surge: json!("25%"),
            unavailable: json!("25%"),
            before: (10, 13),
            old: 8,
            new: 5,
            want: (0, 0),
        },
        Case {
            name: "only the new one is active",
            replicas: 5,
            surge: json!("25%"),
            unavailable: json!("25%"),
            before: (3, 4),
            old: 0,
            new: 3,
            want: (0, 5),
        },
        Case {
            name: "only the old one is active",
            replicas: 1,
            surge: json!("25%"),
            unavailable: json!("25%"),
            before: (3, 4),
            old: 3,
            new: 0,
            want: (1, 0),
        },
    ];
    for c in cases {
        let d = deployment(c.replicas, rolling(c.surge, c.unavailable), "v2");
        let mut old = rs(&d, "v1", 1, c.old, c.old);
        let mut new = rs(&d, "v2", 2, c.new, c.new);
        for r in [&mut old, &mut new] {
            meta::set_annotation(r, DESIRED_REPLICAS, Some(&c.before.0.to_string()));
            meta::set_annotation(r, MAX_REPLICAS, Some(&c.before.1.to_string()));
        }
        let plan = run(&d, &[old.clone(), new.clone()], &[], T0);
        assert_eq!(
            (spec_after(&plan, &old), spec_after(&plan, &new)),
            c.want,
            "{}",
            c.name
        );
        assert!(creates(&plan).is_empty(), "{}: no rollout step", c.name);
        let p = Params::of(&d);
        for r in updates(&plan) {
            assert_eq!(
                meta::annotation(r, DESIRED_REPLICAS),
                Some(c.replicas.to_string().as_str())
            );
            assert_eq!(
                meta::annotation(r, MAX_REPLICAS),
                Some(p.max_replicas().to_string().as_str())
            );
        }
        let mut want_events = Vec::new();
        for (r, to) in [(&old, c.want.0), (&new, c.want.1)] {
            let from = work::spec_replicas(r);
            if from != to {
                let verb = if to > from { "up" } else { "down" };
                want_events.push(format!(
                    "Scaled {verb} replica set {} from {from} to {to}",
                    meta::name(r)
                ));
            }
        }
        let mut got = messages(&plan, "ScalingReplicaSet");
        got.sort();
        want_events.sort();
        assert_eq!(got, want_events, "{}", c.name);
    }
}

#[test]
fn size_annotations_follow_the_deployment() {
    let d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    let mut r = rs(&d, "v1", 1, 3, 3);
    let d = settled(d, std::slice::from_ref(&r), T0);
    // Sized right but annotated for another size: the annotations are refreshed, no event
    // (Kubernetes leaves them stale and sees a scaling event on every sync).
    meta::set_annotation(&mut r, DESIRED_REPLICAS, Some("2"));
    meta::set_annotation(&mut r, MAX_REPLICAS, Some("9"));
    let plan = run(&d, std::slice::from_ref(&r), &[], T0);
    let u = update_of(&plan, meta::name(&r)).expect("annotations refreshed");
    assert_eq!(u["spec"]["replicas"], 3);
    assert_eq!(meta::annotation(u, DESIRED_REPLICAS), Some("3"));
    assert_eq!(meta::annotation(u, MAX_REPLICAS), Some("4"));
    assert!(messages(&plan, "ScalingReplicaSet").is_empty());
    // Scaled to 4 (maxSurge 25% of 4 is 1): both follow.
    let mut d4 = d.clone();
    d4["spec"]["replicas"] = json!(4);
    let r = rs(&d, "v1", 1, 3, 3);
    let plan = run(&d4, std::slice::from_ref(&r), &[], T0);
    let u = update_of(&plan, meta::name(&r)).expect("scaled");
    assert_eq!(u["spec"]["replicas"], 4);
    assert_eq!(meta::annotation(u, DESIRED_REPLICAS), Some("4"));
    assert_eq!(meta::annotation(u, MAX_REPLICAS), Some("5"));
    assert_eq!(
        messages(&plan, "ScalingReplicaSet"),
        vec![format!(
            "Scaled up replica set {} from 3 to 4",
            meta::name(&r)
        )]
    );
}

#[test]
fn undo_makes_the_old_replica_set_new_again() {
    // Revision 2 (v2) is complete; the template goes back to v1 (`kubectl rollout undo`).
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v2");
    let rs1 = rs(&d, "v1", 1, 0, 0);
    let rs2 = rs(&d, "v2", 2, 3, 3);
    d["metadata"]["generation"] = json!(2);
    let mut d = settled(d, &[rs1.clone(), rs2.clone()], T0);
    meta::set_annotation(&mut d, REVISION, Some("2"));
    d["spec"]["template"] = template("v1");
    d["metadata"]["generation"] = json!(3);
    meta::set_annotation(&mut d, CHANGE_CAUSE, Some("back to v1"));
    let plan = run(&d, &[rs1.clone(), rs2.clone()], &[], T0 + 100);
    assert!(creates(&plan).is_empty(), "no new ReplicaSet");
    let u = update_of(&plan, meta::name(&rs1)).expect("the old one updated");
    assert_eq!(meta::annotation(u, REVISION), Some("3"));
    assert_eq!(meta::annotation(u, REVISION_HISTORY), Some("1"));
    assert_eq!(meta::annotation(u, CHANGE_CAUSE), Some("back to v1"));
    // Scaled up in the same write (surge 1).
    assert_eq!(u["spec"]["replicas"], 1);
    assert_eq!(meta::resource_version(u), "5");
    let du = deployment_update(&plan).expect("the revision follows");
    assert_eq!(meta::annotation(du, REVISION), Some("3"));
    assert_eq!(du["spec"], d["spec"]);
    let status = status_of(&plan).unwrap();
    assert_eq!(status["updatedReplicas"].as_i64().unwrap_or(0), 0);
    assert_eq!(status["observedGeneration"], 3);
}

/// Rollout state for the deadline tests: v1 (revision 1, complete once) at 3, v2 (revision
/// 2) with one pod not ready; the Progressing condition last updated at T0.
fn stuck(auto_rollback: bool, v1_became_available: bool) -> (Value, Vec<Value>) {
    let mut d = deployment(3, rolling(json!(1), json!(0)), "v2");
    d["spec"]["progressDeadlineSeconds"] = json!(60);
    d["metadata"]["generation"] = json!(2);
    meta::set_annotation(&mut d, REVISION, Some("2"));
    if auto_rollback {
        meta::set_annotation(&mut d, AUTO_ROLLBACK, Some("true"));
    }
    let mut rs1 = rs(&d, "v1", 1, 3, 3);
    meta::set_annotation(&mut rs1, CHANGE_CAUSE, Some("v1 release"));
    if v1_became_available {
        meta::set_annotation(&mut rs1, BECAME_AVAILABLE, Some("true"));
    }
    let mut rs2 = rs(&d, "v2", 2, 1, 0);
    if auto_rollback {
        // The new ReplicaSet carries the Deployment's annotations.
        meta::set_annotation(&mut rs2, AUTO_ROLLBACK, Some("true"));
    }
    let rss = vec![rs1, rs2];
    let mut d = settled(d, &rss, T0);
    d["status"]["conditions"] = json!([
        {"type": "Available", "status": "True", "reason": reason::MIN_AVAILABLE,
         "message": "Deployment has minimum availability.",
         "lastUpdateTime": ts(T0 - 100), "lastTransitionTime": ts(T0 - 100)},
        {"type": "Progressing", "status": "True", "reason": reason::RS_UPDATED,
         "message": format!("ReplicaSet {:?} is progressing.", rs_name("v2")),
         "lastUpdateTime": ts(T0), "lastTransitionTime": ts(T0 - 100)},
    ]);
    (d, rss)
}

#[test]
fn before_the_deadline_nothing_changes_and_a_requeue_is_asked() {
    let (d, rss) = stuck(true, true);
    let plan = run(&d, &rss, &[], T0 + 30);
    assert_eq!(plan.actions, vec![], "{plan:#?}");
    // Just after T0 + 60.
    assert_eq!(plan.requeue_after, Some(31));
    let plan = run(&d, &rss, &[], T0 + 60);
    assert!(plan.actions.is_empty(), "{plan:#?}");
    assert_eq!(plan.requeue_after, Some(1));
}

#[test]
fn past_the_deadline() {
    struct Case {
        name: &'static str,
        auto_rollback: bool,
        became_available: bool,
        want_reason: &'static str,
        rolled_back: bool,
    }
    let cases = [
        Case {
            name: "no automatic rollback",
            auto_rollback: false,
            became_available: true,
            want_reason: reason::TIMED_OUT,
            rolled_back: false,
        },
        Case {
            name: "automatic rollback",
            auto_rollback: true,
            became_available: true,
            want_reason: reason::AUTO_ROLLBACK,
            rolled_back: true,
        },
        Case {
            name: "nothing to roll back to",
            auto_rollback: true,
            became_available: false,
            want_reason: reason::TIMED_OUT,
            rolled_back: false,
        },
    ];
    let v2 = rs_name("v2");
    for c in cases {
        let (d, rss) = stuck(c.auto_rollback, c.became_available);
        let plan = run(&d, &rss, &[], T0 + 61);
        let status = status_of(&plan).unwrap_or_else(|| panic!("{}: a status", c.name));
        let p = cond(status, "Progressing").unwrap();
        assert_eq!(p["status"], "False", "{}", c.name);
        assert_eq!(p["reason"], c.want_reason, "{}", c.name);
        assert_eq!(p["lastTransitionTime"], ts(T0 + 61), "{}", c.name);
        assert_eq!(plan.requeue_after, None, "{}", c.name);
        let rollback_events = messages(&plan, "DeploymentRollback");
        if c.rolled_back {
            assert_eq!(
                p["message"],
                format!("ReplicaSet {v2:?} has timed out progressing; rolled back to revision 1.")
            );
            let du = deployment_update(&plan).expect("the template rolled back");
            assert_eq!(du["spec"]["template"], template("v1"), "no hash label");
            assert_eq!(meta::annotation(du, CHANGE_CAUSE), Some("v1 release"));
            assert_eq!(meta::resource_version(du), "10");
            assert_eq!(
                rollback_events,
                vec!["Rolled back deployment \"web\" to revision 1: progress deadline exceeded"]
            );
            let warning = events(&plan)
                .into_iter()
                .find(|e| e.1 == "DeploymentRollback")
                .unwrap();
            assert_eq!(warning.0, EventType::Warning);
            // The status write comes first.
            let status_at = plan
                .actions
                .iter()
                .position(|a| matches!(a, DeploymentAction::UpdateStatus(_)));
            let update_at = plan
                .actions
                .iter()
                .position(|a| matches!(a, DeploymentAction::UpdateDeployment(_)));
            assert!(status_at < update_at);
        } else {
            assert_eq!(
                p["message"],
                format!("ReplicaSet {v2:?} has timed out progressing."),
                "{}",
                c.name
            );
            assert!(deployment_update(&plan).is_none(), "{}", c.name);
            assert!(rollback_events.is_empty(), "{}", c.name);
        }
    }
}

#[test]
fn an_exceeded_deadline_stays_until_the_template_changes_or_completes() {
    let (mut d, rss) = stuck(false, true);
    let plan = run(&d, &rss, &[], T0 + 61);
    d["status"] = status_of(&plan).unwrap().clone();
    // Progress after the deadline: the failure stays.
    let mut rss2 = rss.clone();
    rss2[1]["status"]["readyReplicas"] = json!(1);
    rss2[1]["status"]["availableReplicas"] = json!(1);
    let plan = run(&d, &rss2, &[], T0 + 70);
    let status = status_of(&plan).expect("the counts changed");
    let p = cond(status, "Progressing").unwrap();
    assert_eq!(p["reason"], reason::TIMED_OUT);
    assert_eq!(p["lastUpdateTime"], ts(T0 + 61));
    // Completion clears it.
    let mut done = vec![rs(&d, "v1", 1, 0, 0), rs(&d, "v2", 2, 3, 3)];
    meta::set_annotation(&mut done[0], BECAME_AVAILABLE, Some("true"));
    let plan = run(&d, &done, &[], T0 + 80);
    let p = cond(status_of(&plan).unwrap(), "Progressing").unwrap();
    assert_eq!(p["reason"], reason::NEW_RS_AVAILABLE);
    assert_eq!(p["status"], "True");
    assert_eq!(
        p["message"],
        format!(
            "ReplicaSet {:?} has successfully progressed.",
            rs_name("v2")
        )
    );
    // ... and marks the ReplicaSet as a rollback target.
    let u = update_of(&plan, &rs_name("v2")).expect("marked");
    assert_eq!(meta::annotation(u, BECAME_AVAILABLE), Some("true"));
    // A new template starts over.
    let mut d3 = d.clone();
    d3["spec"]["template"] = template("v3");
    let plan = run(&d3, &rss, &[], T0 + 90);
    assert_eq!(creates(&plan).len(), 1);
    let p = cond(status_of(&plan).unwrap(), "Progressing").unwrap();
    assert_eq!(p["reason"], reason::NEW_RS_CREATED);
}

#[test]
fn after_an_automatic_rollback() {
    let (mut d, rss) = stuck(true, true);
    let plan = run(&d, &rss, &[], T0 + 61);
    let status = status_of(&plan).unwrap().clone();
    let rolled = deployment_update(&plan).unwrap().clone();

    // The Deployment write conflicted (the caller did not chain): planned again, without a
    // second event.
    d["status"] = status.clone();
    let plan = run(&d, &rss, &[], T0 + 62);
    assert!(status_of(&plan).is_none(), "{plan:#?}");
    let du = deployment_update(&plan).expect("the rollback again");
    assert_eq!(du["spec"]["template"], template("v1"));
    assert!(messages(&plan, "DeploymentRollback").is_empty());

    // Both writes took effect: v1's ReplicaSet is the new one, with the next revision.
    let mut d = rolled;
    d["status"] = status;
    d["metadata"]["generation"] = json!(3);
    let plan = run(&d, &rss, &[], T0 + 63);
    assert!(creates(&plan).is_empty());
    let u = update_of(&plan, &rs_name("v1")).expect("revision bumped");
    assert_eq!(meta::annotation(u, REVISION), Some("3"));
    assert_eq!(
        meta::annotation(deployment_update(&plan).unwrap(), REVISION),
        Some("3")
    );
    assert!(messages(&plan, "DeploymentRollback").is_empty());
    let p = cond(status_of(&plan).unwrap(), "Progressing").unwrap();
    // v1's three replicas count as updated now: progress.
    assert_eq!(p["reason"], reason::RS_UPDATED);
    assert_eq!(p["status"], "True");
}

#[test]
fn history_is_cleaned_beyond_the_limit() {
    struct Case {
        name: &'static str,
        limit: Option<i64>,
        paused: bool,
        /// Per old revision 1..=5: (spec, status replicas, deleting, generation ahead).
        olds: [(i64, i64, bool, bool); 5],
        want: Vec<i64>,
    }
    let idle = (0, 0, false, false);
    let cases = vec![
        Case {
            name: "limit 2",
            limit: Some(2),
            paused: false,
            olds: [idle; 5],
            want: vec![1, 2, 3],
        },
        Case {
            name: "limit 0",
            limit: Some(0),
            paused: false,
            olds: [idle; 5],
            want: vec![1, 2, 3, 4, 5],
        },
        Case {
            name: "default limit 10",
            limit: None,
            paused: false,
            olds: [idle; 5],
            want: vec![],
        },
        Case {
            name: "limit 5",
            limit: Some(5),
            paused: false,
            olds: [idle; 5],
            want: vec![],
        },
        // (Paused: a rollout cleans up only once complete, and pods left are not.)
        Case {
            name: "one still has pods",
            limit: Some(2),
            paused: true,
            olds: [(0, 1, false, false), idle, idle, idle, idle],
            want: vec![2, 3],
        },
        Case {
            name: "one being deleted",
            limit: Some(2),
            paused: false,
            olds: [idle, (0, 0, true, false), idle, idle, idle],
            want: vec![1, 3],
        },
        Case {
            name: "one not observed yet",
            limit: Some(2),
            paused: false,
            olds: [(0, 0, false, true), idle, idle, idle, idle],
            want: vec![2, 3],
        },
        Case {
            name: "paused: cleaned too; one scaled down in the plan waits",
            limit: Some(2),
            paused: true,
            olds: [idle, idle, (1, 1, false, false), idle, idle],
            want: vec![1, 2],
        },
    ];
    for c in cases {
        let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v6");
        if let Some(l) = c.limit {
            d["spec"]["revisionHistoryLimit"] = json!(l);
        }
        d["spec"]["paused"] = json!(c.paused);
        let mut rss: Vec<Value> = c
            .olds
            .iter()
            .enumerate()
            .map(|(i, (spec, st, deleting, ahead))| {
                let mut r = rs(&d, &format!("v{}", i + 1), i as i64 + 1, *spec, *st);
                r["status"]["replicas"] = json!(st);
                if *deleting {
                    r["metadata"]["deletionTimestamp"] = json!(ts(T0));
                }
                if *ahead {
                    r["metadata"]["generation"] = json!(2);
                }
                r
            })
            .collect();
        rss.push(rs(&d, "v6", 6, 3, 3));
        let d = settled(d, &rss, T0);
        let plan = run(&d, &rss, &[], T0);
        let want: Vec<String> = c.want.iter().map(|r| rs_name(&format!("v{r}"))).collect();
        assert_eq!(deletes(&plan), want, "{}", c.name);
        for a in &plan.actions {
            if let DeploymentAction::DeleteReplicaSet {
                name,
                uid,
                resource_version,
            } = a
            {
                assert_eq!(uid, &format!("uid-{name}"));
                assert_eq!(resource_version, "5");
                assert!(update_of(&plan, name).is_none());
            }
        }
    }
}

#[test]
fn paused_deployments_do_not_roll_out() {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    let rs1 = rs(&d, "v1", 1, 3, 3);
    d = settled(d, std::slice::from_ref(&rs1), T0);
    // Paused, then the template changes: no new ReplicaSet.
    d["spec"]["paused"] = json!(true);
    d["spec"]["template"] = template("v2");
    d["metadata"]["generation"] = json!(2);
    let plan = run(&d, std::slice::from_ref(&rs1), &[], T0 + 10);
    assert!(creates(&plan).is_empty());
    assert!(updates(&plan).is_empty());
    let status = status_of(&plan).unwrap();
    let p = cond(status, "Progressing").unwrap();
    assert_eq!(
        (
            p["status"].as_str(),
            p["reason"].as_str(),
            p["message"].as_str()
        ),
        (
            Some("Unknown"),
            Some(reason::PAUSED),
            Some("Deployment is paused")
        )
    );
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(plan.requeue_after, None);
    d["status"] = status.clone();
    assert!(run(&d, std::slice::from_ref(&rs1), &[], T0 + 20)
        .actions
        .is_empty());

    // A replicas change while paused still scales.
    let mut scaled = d.clone();
    scaled["spec"]["replicas"] = json!(5);
    let plan = run(&scaled, std::slice::from_ref(&rs1), &[], T0 + 30);
    assert!(creates(&plan).is_empty());
    assert_eq!(spec_after(&plan, &rs1), 5);

    // Resumed: the rollout starts.
    let mut resumed = d.clone();
    resumed["spec"]["paused"] = json!(false);
    let plan = run(&resumed, std::slice::from_ref(&rs1), &[], T0 + 40);
    assert_eq!(creates(&plan).len(), 1);
    let p = cond(status_of(&plan).unwrap(), "Progressing").unwrap();
    assert_eq!(p["reason"], reason::NEW_RS_CREATED);
}

#[test]
fn resuming_says_so_until_progress() {
    let mut d = deployment(3, rolling(json!(1), json!(0)), "v2");
    let rss = vec![rs(&d, "v1", 1, 3, 3), rs(&d, "v2", 2, 1, 0)];
    d["spec"]["paused"] = json!(true);
    let mut d = settled(d, &rss, T0);
    assert_eq!(
        cond(&d["status"], "Progressing").unwrap()["reason"],
        reason::PAUSED
    );
    d["spec"]["paused"] = json!(false);
    let plan = run(&d, &rss, &[], T0 + 5);
    let p = cond(status_of(&plan).unwrap(), "Progressing").unwrap();
    assert_eq!(
        (
            p["status"].as_str(),
            p["reason"].as_str(),
            p["message"].as_str()
        ),
        (
            Some("Unknown"),
            Some(reason::RESUMED),
            Some("Deployment is resumed")
        )
    );
}

#[test]
fn adoption_and_release() {
    let d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    let base = rs(&d, "v1", 1, 3, 3);
    let orphan = {
        let mut r = base.clone();
        r["metadata"]["ownerReferences"] = json!([]);
        r
    };
    let with_labels = |mut r: Value, app: &str| {
        r["metadata"]["labels"]["app"] = json!(app);
        r
    };
    let others = {
        let mut r = base.clone();
        r["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "uid-x",
            "controller": true,
        }]);
        r
    };
    let deleting_orphan = {
        let mut r = orphan.clone();
        r["metadata"]["deletionTimestamp"] = json!(ts(T0));
        r
    };
    #[derive(Debug, PartialEq)]
    enum Want {
        Adopted,
        Released,
        Untouched,
    }
    let cases = vec![
        ("matching orphan", orphan.clone(), false, Want::Adopted),
        (
            "orphan not matching",
            with_labels(orphan.clone(), "api"),
            false,
            Want::Untouched,
        ),
        (
            "ours, no longer matching",
            with_labels(base.clone(), "api"),
            false,
            Want::Released,
        ),
        ("someone else's", others, false, Want::Untouched),
        (
            "orphan being deleted",
            deleting_orphan,
            false,
            Want::Untouched,
        ),
        ("deleting: no adoption", orphan, true, Want::Untouched),
        (
            "deleting: no release",
            with_labels(base, "api"),
            true,
            Want::Untouched,
        ),
    ];
    for (name, r, deleting, want) in cases {
        let mut d = d.clone();
        if deleting {
            d["metadata"]["deletionTimestamp"] = json!(ts(T0));
        }
        let plan = run(&d, std::slice::from_ref(&r), &[], T0);
        let got = match update_of(&plan, meta::name(&r)) {
            None => Want::Untouched,
            Some(u) if meta::is_controlled_by(u, "uid-web") => {
                assert_eq!(meta::owner_refs(u).len(), 1, "{name}");
                assert_eq!(meta::resource_version(u), "5");
                Want::Adopted
            }
            Some(u) => {
                assert!(
                    meta::owner_refs(u).iter().all(|o| o["uid"] != "uid-web"),
                    "{name}"
                );
                Want::Released
            }
        };
        assert_eq!(got, want, "{name}");
        if want == Want::Adopted {
            // Adopted, it is the new ReplicaSet: no other is created.
            assert!(creates(&plan).is_empty(), "{name}");
        }
        if deleting {
            assert!(creates(&plan).is_empty(), "{name}");
            assert!(deployment_update(&plan).is_none(), "{name}");
        }
    }
}

#[test]
fn a_deployment_being_deleted_only_syncs_status() {
    let mut d = deployment(5, rolling(json!("25%"), json!("25%")), "v2");
    let rss = vec![rs(&d, "v1", 1, 3, 3)];
    d["metadata"]["deletionTimestamp"] = json!(ts(T0));
    let plan = run(&d, &rss, &[], T0);
    assert!(creates(&plan).is_empty() && updates(&plan).is_empty());
    assert!(deployment_update(&plan).is_none());
    let status = status_of(&plan).unwrap();
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["updatedReplicas"].as_i64().unwrap_or(0), 0);
}

#[test]
fn a_hash_collision_bumps_the_collision_count() {
    let d = deployment(3, rolling(json!("25%"), json!("25%")), "v2");
    let rs1 = rs(&d, "v1", 1, 3, 3);
    // A ReplicaSet of another template holds v2's name.
    let mut collider = rs(&d, "v9", 2, 0, 0);
    collider["metadata"]["name"] = json!(rs_name("v2"));
    let rss = vec![rs1, collider];
    let plan = run(&d, &rss, &[], T0);
    assert!(creates(&plan).is_empty());
    let status = status_of(&plan).expect("the count");
    assert_eq!(status["collisionCount"], 1);
    // Next time the name is another.
    let mut d = d.clone();
    d["status"] = status.clone();
    let plan = run(&d, &rss, &[], T0 + 1);
    let created = creates(&plan);
    assert_eq!(created.len(), 1);
    let hash = template_hash(&template("v2"), Some(1));
    assert_eq!(meta::name(created[0]), format!("web-{hash}"));
    assert_eq!(meta::annotation(created[0], REVISION), Some("3"));
    assert_eq!(status_of(&plan).unwrap()["collisionCount"], 1);
    // Also a ReplicaSet of another controller holding the name (passed after AlreadyExists).
    let d = deployment(3, rolling(json!("25%"), json!("25%")), "v2");
    let mut foreign = rs(&d, "v2", 1, 0, 0);
    foreign["metadata"]["ownerReferences"][0]["uid"] = json!("uid-other");
    let plan = run(&d, &[foreign], &[], T0);
    assert!(creates(&plan).is_empty());
    assert_eq!(status_of(&plan).unwrap()["collisionCount"], 1);
}

#[test]
fn an_empty_selector_selects_nothing_and_warns() {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    d["spec"]["selector"] = json!({});
    d["metadata"]["generation"] = json!(4);
    let plan = run(&d, &[], &[], T0);
    assert!(creates(&plan).is_empty());
    assert_eq!(status_of(&plan).unwrap()["observedGeneration"], 4);
    let e = events(&plan);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, EventType::Warning);
    assert_eq!(e[0].1, "SelectingAll");
}

#[test]
fn a_settled_deployment_writes_nothing() {
    let d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    let mut r = rs(&d, "v1", 1, 3, 3);
    meta::set_annotation(&mut r, BECAME_AVAILABLE, Some("true"));
    let mut d = settled(d, std::slice::from_ref(&r), T0);
    meta::set_annotation(&mut d, REVISION, Some("1"));
    let plan = run(&d, std::slice::from_ref(&r), &[], T0 + 1000);
    assert_eq!(plan, Plan::default());
    // Zero counters absent or present are the same status.
    let mut zeros = d.clone();
    zeros["status"]["unavailableReplicas"] = json!(0);
    assert_eq!(run(&zeros, &[r], &[], T0 + 1000), Plan::default());
    let status = &d["status"];
    assert_eq!(
        (
            &status["replicas"],
            &status["updatedReplicas"],
            &status["readyReplicas"],
            &status["availableReplicas"]
        ),
        (&json!(3), &json!(3), &json!(3), &json!(3))
    );
    assert!(status.get("unavailableReplicas").is_none());
    let a = cond(status, "Available").unwrap();
    assert_eq!(
        (
            a["status"].as_str(),
            a["reason"].as_str(),
            a["message"].as_str()
        ),
        (
            Some("True"),
            Some(reason::MIN_AVAILABLE),
            Some("Deployment has minimum availability.")
        )
    );
}

#[test]
fn min_ready_seconds_requeue() {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    d["spec"]["minReadySeconds"] = json!(10);
    d["spec"]["progressDeadlineSeconds"] = json!(i32::MAX);
    let mut r = rs(&d, "v1", 1, 3, 2);
    r["spec"]["minReadySeconds"] = json!(10);
    let pod = |name: &str, ready_since: i64| {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "ownerReferences": [meta::controller_ref_to(&r, "apps/v1", "ReplicaSet")]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ts(ready_since)}]},
        })
    };
    let pods = vec![pod("a", T0 - 100), pod("b", T0 - 100), pod("c", T0 - 3)];
    let plan = run(&d, std::slice::from_ref(&r), &pods, T0);
    assert_eq!(plan.requeue_after, Some(7));
    // Without a progress deadline there is no Progressing condition.
    assert!(cond(status_of(&plan).unwrap(), "Progressing").is_none());
}

#[test]
fn replica_failures_surface_on_the_deployment() {
    let d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    let mut r = rs(&d, "v1", 1, 3, 1);
    r["status"]["conditions"] = json!([{
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "pods \"x\" is forbidden: exceeded quota", "lastTransitionTime": ts(T0 - 5),
    }]);
    let plan = run(&d, &[r], &[], T0);
    let f = cond(status_of(&plan).unwrap(), "ReplicaFailure").expect("copied");
    assert_eq!(f["reason"], "FailedCreate");
    assert_eq!(f["lastUpdateTime"], ts(T0 - 5));
}

// ---------------------------------------------------------------------------------------
// Whole rollouts on the simulated cluster.

/// A converged Deployment `image` in a simulated cluster.
fn converged(d: Value) -> Sim {
    let mut sim = Sim::new(d, T0);
    sim.converge(100);
    sim
}

/// Checks a converged rollout: the new ReplicaSet has everything, the status says so.
fn assert_complete(sim: &Sim, replicas: i64) {
    let new = sim.new_rs().expect("a new ReplicaSet");
    assert_eq!(new["spec"]["replicas"], replicas);
    assert_eq!(new["status"]["availableReplicas"], replicas);
    for r in &sim.rss {
        if meta::name(r) != meta::name(new) {
            assert_eq!(r["spec"]["replicas"], 0, "{}", meta::name(r));
        }
    }
    let status = &sim.d["status"];
    let n = |f: &str| status[f].as_i64().unwrap_or(0);
    assert_eq!(
        (n("replicas"), n("updatedReplicas"), n("availableReplicas")),
        (replicas, replicas, replicas)
    );
    assert_eq!(n("observedGeneration"), meta::generation(&sim.d));
    let p = cond(status, "Progressing").unwrap();
    assert_eq!(p["reason"], reason::NEW_RS_AVAILABLE);
    assert_eq!(p["status"], "True");
    assert_eq!(cond(status, "Available").unwrap()["status"], "True");
    assert_eq!(
        meta::annotation(&sim.d, REVISION),
        meta::annotation(new, REVISION)
    );
    assert_eq!(meta::annotation(new, BECAME_AVAILABLE), Some("true"));
    assert_eq!(
        meta::annotation(new, DESIRED_REPLICAS),
        Some(replicas.to_string().as_str())
    );
}

#[test]
fn simulated_rolling_updates_keep_their_bounds() {
    // (replicas, maxSurge, maxUnavailable, seconds for a pod to become ready)
    let cases: Vec<(i64, Value, Value, i64)> = vec![
        (3, json!(1), json!(0), 0),
        (3, json!("25%"), json!("25%"), 1),
        (10, json!("25%"), json!("25%"), 0),
        (10, json!("25%"), json!("25%"), 2),
        (7, json!("30%"), json!("30%"), 1),
        (5, json!(0), json!(1), 0),
        (5, json!(0), json!(1), 3),
        (4, json!(2), json!(2), 1),
        (1, json!("0%"), json!("10%"), 1),
        (1, json!(1), json!(0), 2),
        (0, json!(1), json!(1), 0),
        (6, json!("50%"), json!(0), 1),
        (6, json!(0), json!("50%"), 2),
        (20, json!("10%"), json!("5%"), 1),
    ];
    for (replicas, surge, unavailable, delay) in cases {
        let what = format!(
            "{replicas} replicas, surge {surge}, unavailable {unavailable}, ready after {delay}s"
        );
        let mut sim = Sim::new(
            deployment(replicas, rolling(surge.clone(), unavailable.clone()), "v1"),
            T0,
        );
        sim.readiness = Box::new(move |_| Some(delay));
        sim.converge(200);
        assert_complete(&sim, replicas);
        let p = Params::of(&sim.d);
        sim.max_total = Some(replicas + p.max_surge);
        sim.min_available = Some(p.min_available());

        // v2, to the end.
        sim.edit(|d| d["spec"]["template"] = template("v2"));
        let steps = sim.converge(500);
        assert!(steps > 1, "{what}");
        assert_complete(&sim, replicas);
        assert_eq!(sim.rss.len(), 2, "{what}");
        assert_eq!(
            meta::annotation(sim.new_rs().unwrap(), REVISION),
            Some("2"),
            "{what}"
        );

        // v3, then v4 in the middle of it (a rollover).
        sim.edit(|d| d["spec"]["template"] = template("v3"));
        sim.run(2);
        sim.edit(|d| d["spec"]["template"] = template("v4"));
        sim.converge(500);
        assert_complete(&sim, replicas);
        assert_eq!(
            meta::annotation(sim.new_rs().unwrap(), REVISION),
            Some("4"),
            "{what}"
        );
        assert_eq!(sim.conflicts, 0, "{what}");
        let scaled = sim.events_with("ScalingReplicaSet");
        assert!(
            scaled
                .iter()
                .all(|m| m.starts_with("Scaled up replica set web-")
                    || m.starts_with("Scaled down replica set web-")),
            "{what}: {scaled:?}"
        );
        assert!(scaled
            .iter()
            .all(|m| m.contains(" from ") && m.contains(" to ")));
    }
}

#[test]
fn simulated_recreate_never_overlaps() {
    for (replicas, delay, grace) in [(3, 1, 2), (1, 0, 0), (5, 2, 3)] {
        let mut sim = Sim::new(deployment(replicas, recreate(), "v1"), T0);
        sim.readiness = Box::new(move |_| Some(delay));
        sim.grace = grace;
        sim.converge(100);
        assert_complete(&sim, replicas);
        sim.no_overlap = true;
        sim.max_total = Some(replicas);
        sim.edit(|d| d["spec"]["template"] = template("v2"));
        // The new ReplicaSet gets replicas only once the old pods are gone (`no_overlap`
        // checks it at every step); with a grace period there is a wait.
        let mut saw_wait = false;
        for _ in 0..100 {
            let (plan, changed) = sim.step();
            let old_pods = sim
                .pods
                .iter()
                .any(|p| meta::controller_ref(p).unwrap()["name"] == rs_name("v1"));
            let new_idle = sim
                .rs_by_image("v2")
                .is_none_or(|r| r["spec"]["replicas"] == 0);
            saw_wait |= old_pods && new_idle;
            let terminating = sim.pods.iter().any(meta::is_deleting);
            if plan.actions.is_empty() && !changed && !terminating {
                break;
            }
        }
        assert!(saw_wait || grace == 0, "recreate waited for old pods");
        assert_complete(&sim, replicas);
        let available = cond(&sim.d["status"], "Available").unwrap();
        assert_eq!(available["status"], "True");
    }
}

#[test]
fn simulated_scaling_in_the_middle_of_a_rollout() {
    for (from, to) in [(10, 15), (10, 4), (6, 0), (0, 3)] {
        let mut sim = converged(deployment(from, rolling(json!("25%"), json!("25%")), "v1"));
        sim.readiness = Box::new(|_| Some(2));
        sim.edit(|d| d["spec"]["template"] = template("v2"));
        sim.run(2);
        sim.edit(|d| d["spec"]["replicas"] = json!(to));
        let p = Params::of(&sim.d);
        sim.max_total = Some(to + p.max_surge);
        sim.converge(300);
        assert_complete(&sim, to);
    }
}

#[test]
fn simulated_undo() {
    let mut sim = converged(deployment(4, rolling(json!("25%"), json!("25%")), "v1"));
    sim.edit(|d| d["spec"]["template"] = template("v2"));
    sim.converge(100);
    sim.edit(|d| {
        d["spec"]["template"] = template("v1");
        meta::set_annotation(d, CHANGE_CAUSE, Some("undo"));
    });
    sim.converge(100);
    assert_complete(&sim, 4);
    assert_eq!(sim.rss.len(), 2, "no third ReplicaSet");
    let v1 = sim.new_rs().unwrap();
    assert_eq!(meta::name(v1), rs_name("v1"));
    assert_eq!(meta::annotation(v1, REVISION), Some("3"));
    assert_eq!(meta::annotation(v1, REVISION_HISTORY), Some("1"));
    assert_eq!(meta::annotation(v1, CHANGE_CAUSE), Some("undo"));
    assert_eq!(meta::annotation(&sim.d, REVISION), Some("3"));
}

#[test]
fn simulated_history_limit() {
    let mut d = deployment(2, rolling(json!(1), json!(0)), "v1");
    d["spec"]["revisionHistoryLimit"] = json!(2);
    let mut sim = converged(d);
    for v in 2..=6 {
        sim.edit(|d| d["spec"]["template"] = template(&format!("v{v}")));
        sim.converge(100);
        assert_complete(&sim, 2);
    }
    let mut revisions: Vec<&str> = sim
        .rss
        .iter()
        .map(|r| meta::annotation(r, REVISION).unwrap())
        .collect();
    revisions.sort();
    assert_eq!(revisions, ["4", "5", "6"]);
}

/// v1 complete, then v2 whose pods never become ready, with a 5 s deadline.
fn bad_rollout(auto_rollback: bool, chain_rv: bool) -> Sim {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    d["spec"]["progressDeadlineSeconds"] = json!(5);
    if auto_rollback {
        meta::set_annotation(&mut d, AUTO_ROLLBACK, Some("true"));
    }
    let mut sim = converged(d);
    sim.chain_rv = chain_rv;
    sim.readiness = Box::new(|image| (image != "bad").then_some(1));
    sim.max_total = Some(4);
    sim.min_available = Some(3);
    sim.edit(|d| d["spec"]["template"] = template("bad"));
    sim
}

#[test]
fn simulated_automatic_rollback() {
    for chain_rv in [true, false] {
        let mut sim = bad_rollout(true, chain_rv);
        sim.converge(100);
        assert_eq!(sim.d["spec"]["template"], template("v1"));
        assert_complete(&sim, 3);
        let v1 = sim.new_rs().unwrap();
        assert_eq!(meta::name(v1), rs_name("v1"));
        assert_eq!(meta::annotation(v1, REVISION), Some("3"));
        assert_eq!(
            sim.events_with("DeploymentRollback"),
            vec!["Rolled back deployment \"web\" to revision 1: progress deadline exceeded"]
        );
        let bad = sim.rs_by_image("bad").unwrap();
        assert_eq!(bad["spec"]["replicas"], 0);
        assert_eq!(meta::annotation(bad, BECAME_AVAILABLE), None);
        assert_eq!(sim.conflicts > 0, !chain_rv, "conflicts: {}", sim.conflicts);
    }
}

#[test]
fn simulated_deadline_without_rollback() {
    let mut sim = bad_rollout(false, true);
    sim.run(30);
    let p = cond(&sim.d["status"], "Progressing").unwrap();
    assert_eq!(p["reason"], reason::TIMED_OUT);
    assert_eq!(p["status"], "False");
    assert_eq!(sim.d["spec"]["template"], template("bad"));
    assert!(sim.events_with("DeploymentRollback").is_empty());
    // Stuck but safe: one surge pod, the old ones all there.
    assert_eq!(sim.rs_by_image("v1").unwrap()["spec"]["replicas"], 3);
    assert_eq!(sim.rs_by_image("bad").unwrap()["spec"]["replicas"], 1);
    // Nothing more to do, nothing scheduled.
    let plan = sim.plan();
    assert!(plan.actions.is_empty(), "{plan:#?}");
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn the_new_replica_set_follows_min_ready_seconds_and_annotations() {
    let mut d = deployment(3, rolling(json!("25%"), json!("25%")), "v1");
    let r = rs(&d, "v1", 1, 3, 3);
    d = settled(d, std::slice::from_ref(&r), T0);
    meta::set_annotation(&mut d, REVISION, Some("1"));
    d["spec"]["minReadySeconds"] = json!(5);
    meta::set_annotation(&mut d, "owner", Some("team-a"));
    // Neither the revision nor the last-applied configuration is copied.
    meta::set_annotation(
        &mut d,
        "kubectl.kubernetes.io/last-applied-configuration",
        Some("{}"),
    );
    let plan = run(&d, std::slice::from_ref(&r), &[], T0);
    let u = update_of(&plan, meta::name(&r)).expect("synced");
    assert_eq!(u["spec"]["minReadySeconds"], 5);
    assert_eq!(meta::annotation(u, "owner"), Some("team-a"));
    assert_eq!(
        meta::annotation(u, "kubectl.kubernetes.io/last-applied-configuration"),
        None
    );
    assert_eq!(meta::annotation(u, REVISION), Some("1"));
    assert!(deployment_update(&plan).is_none(), "the revision is right");
}

#[test]
fn simulated_rollout_with_min_ready_seconds() {
    let mut d = deployment(4, rolling(json!(1), json!(1)), "v1");
    d["spec"]["minReadySeconds"] = json!(3);
    let mut sim = Sim::new(d, T0);
    sim.readiness = Box::new(|_| Some(1));
    sim.converge(100);
    assert_complete(&sim, 4);
    sim.max_total = Some(5);
    sim.min_available = Some(3);
    sim.edit(|d| d["spec"]["template"] = template("v2"));
    let mut asked = false;
    for _ in 0..100 {
        let (plan, changed) = sim.step();
        asked |= plan.requeue_after.is_some_and(|r| r <= 3);
        if plan.actions.is_empty() && !changed && plan.requeue_after.is_none() {
            break;
        }
    }
    assert!(asked, "a requeue for minReadySeconds");
    assert_complete(&sim, 4);
    assert_eq!(sim.new_rs().unwrap()["spec"]["minReadySeconds"], 3);
}

/// The surge bound holds on the pods present, not only on the sizes: an old ReplicaSet
/// scaled down whose pods are still there (by its status, or by its pods when its status
/// lags) keeps the new one from growing.
#[test]
fn scale_up_waits_for_the_pods_of_a_scaled_down_replica_set() {
    let d = deployment(8, rolling(json!(2), json!(1)), "v2");
    let mut old = rs(&d, "v1", 1, 1, 4);
    old["status"]["replicas"] = json!(4);
    let new = rs(&d, "v2", 2, 6, 6);
    let plan = run(&d, &[old.clone(), new.clone()], &[], T0);
    assert_eq!(spec_after(&plan, &new), 6, "{:?}", plan.actions);
    // A status that says 1 while 4 pods live: the pods decide.
    let mut stale = old.clone();
    stale["status"]["replicas"] = json!(1);
    stale["status"]["availableReplicas"] = json!(1);
    stale["status"]["readyReplicas"] = json!(1);
    let uid = stale["metadata"]["uid"].as_str().unwrap().to_string();
    let pods: Vec<Value> = (0..4)
        .map(|i| {
            json!({"metadata": {"name": format!("old-{i}"), "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "old", "uid": uid, "controller": true}]},
                   "status": {"phase": "Running"}})
        })
        .collect();
    let plan = run(&d, &[stale, new.clone()], &pods, T0);
    assert_eq!(spec_after(&plan, &new), 6, "{:?}", plan.actions);
}
