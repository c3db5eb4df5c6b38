//! Table-driven tests of the scheduler: requests, each filter, each score, the
//! `FailedScheduling` text, the incremental bookkeeping and a scale sanity run.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

const GI: i64 = 1024 * 1024 * 1024;
const MI: i64 = 1024 * 1024;

fn node(name: &str, cpu: &str, mem: &str, pods: i64) -> Value {
    json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": pods.to_string()},
            "capacity": {"cpu": cpu, "memory": mem, "pods": pods.to_string()},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn std_node(name: &str) -> Value {
    node(name, "4", "8Gi", 110)
}

fn pod(name: &str, cpu: &str, mem: &str) -> Value {
    let mut requests = serde_json::Map::new();
    if !cpu.is_empty() {
        requests.insert("cpu".into(), json!(cpu));
    }
    if !mem.is_empty() {
        requests.insert("memory".into(), json!(mem));
    }
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": requests}}]},
    })
}

fn owned(mut p: Value, owner: &str) -> Value {
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true}]);
    p
}

fn bound(mut p: Value, node: &str) -> Value {
    p["spec"]["nodeName"] = json!(node);
    p["status"] = json!({"phase": "Running"});
    p
}

fn state_of(nodes: &[Value]) -> ClusterState {
    let mut s = ClusterState::new();
    for n in nodes {
        s.upsert_node(n);
    }
    s
}

fn placed(p: Placement) -> String {
    match p {
        Placement::Node(n) => n,
        Placement::Unschedulable(e) => panic!("unschedulable: {}", e.message),
    }
}

fn fit_err(p: Placement) -> FitError {
    match p {
        Placement::Unschedulable(e) => e,
        Placement::Node(n) => panic!("placed on {n}"),
    }
}

/// The reasons one node gives for one pod (empty: it fits).
fn reasons_on(n: &Value, p: &Value, others: &[Value]) -> Vec<String> {
    let mut s = state_of(std::slice::from_ref(n));
    for o in others {
        s.add_pod(o);
    }
    let v = explain(&s, p);
    assert_eq!(v.len(), 1);
    v[0].reasons.clone()
}

#[test]
fn pod_requests_follow_kubernetes() {
    /// name, pod spec, (cpu, memory) to fit, (cpu, memory) to score.
    type Case<'a> = (&'a str, Value, (i64, i64), (i64, i64));
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("sum of containers",
         json!({"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                               {"resources": {"requests": {"cpu": "0.5", "memory": "512Mi"}}}]}),
         (600, GI + 512 * MI), (600, GI + 512 * MI)),
        ("limits stand in for requests",
         json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
         (1000, GI), (1000, GI)),
        ("a request wins over its limit",
         json!({"containers": [{"resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "1"}}}]}),
         (200, 0), (200, DEFAULT_MEMORY_REQUEST)),
        ("no requests: zero to fit, defaults to score",
         json!({"containers": [{"name": "a"}, {"name": "b"}]}),
         (0, 0), (200, 2 * DEFAULT_MEMORY_REQUEST)),
        ("explicit zero stays zero for scoring",
         json!({"containers": [{"resources": {"requests": {"cpu": "0", "memory": "0"}}}]}),
         (0, 0), (0, 0)),
        ("init containers take the max",
         json!({"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}],
                "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
                                   {"resources": {"requests": {"cpu": "1", "memory": "50Mi"}}}]}),
         (2000, 100 * MI), (2000, 100 * MI)),
        ("sidecars add to the containers",
         json!({"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}],
                "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m", "memory": "10Mi"}}},
                                   {"resources": {"requests": {"cpu": "120m", "memory": "10Mi"}}}]}),
         (170, 110 * MI), (170, 110 * MI)),
        ("overhead is added",
         json!({"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}],
                "overhead": {"cpu": "10m", "memory": "1Mi"}}),
         (110, 101 * MI), (110, 101 * MI)),
        ("fractional millicores round up",
         json!({"containers": [{"resources": {"requests": {"cpu": "100.5m", "memory": "1k"}}}]}),
         (101, 1000), (101, 1000)),
    ];
    for (name, spec, want, want_nz) in cases {
        let (r, nz) = pod_requests(&json!({"spec": spec}));
        assert_eq!((r.milli_cpu, r.memory), want, "{name}");
        assert_eq!(nz, want_nz, "{name}: non-zero");
    }
    let (r, _) = pod_requests(&json!({"spec": {"containers": [
        {"resources": {"requests": {"nvidia.com/gpu": "2", "ephemeral-storage": "1Gi"}}}
    ]}}));
    assert_eq!(r.scalar.get("nvidia.com/gpu"), Some(&2));
    assert_eq!(r.ephemeral_storage, GI);
}

#[test]
fn filters_one_by_one() {
    let n = std_node;
    let with = |mut v: Value, path: &[&str], x: Value| {
        let mut at = &mut v;
        for p in path {
            at = match p.parse::<usize>() {
                Ok(i) if at.is_array() => &mut at[i],
                _ => &mut at[*p],
            };
        }
        *at = x;
        v
    };
    let p = || pod("p", "100m", "100Mi");
    let untolerated = |k: &str, v: &str| format!("node(s) had untolerated taint {{{k}: {v}}}");
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Value, Vec<String>)> = vec![
        ("plain fit", n("a"), p(), vec![]),
        ("cordoned", with(n("a"), &["spec", "unschedulable"], json!(true)), p(), vec![REASON_UNSCHEDULABLE.into()]),
        ("cordoned, tolerated",
         with(n("a"), &["spec", "unschedulable"], json!(true)),
         with(p(), &["spec", "tolerations"], json!([{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}])),
         vec![]),
        ("NoSchedule taint",
         with(n("a"), &["spec", "taints"], json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}])),
         p(), vec![untolerated("gpu", "true")]),
        ("NoSchedule taint tolerated",
         with(n("a"), &["spec", "taints"], json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}])),
         with(p(), &["spec", "tolerations"], json!([{"key": "gpu", "operator": "Equal", "value": "true"}])),
         vec![]),
        ("PreferNoSchedule does not filter",
         with(n("a"), &["spec", "taints"], json!([{"key": "soft", "effect": "PreferNoSchedule"}])),
         p(), vec![]),
        ("unreachable NoExecute, printed as Kubernetes does",
         with(n("a"), &["spec", "taints"], json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}])),
         p(), vec![untolerated(TAINT_UNREACHABLE, "")]),
        ("the first untolerated taint is named",
         with(n("a"), &["spec", "taints"], json!([
             {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}])),
         with(p(), &["spec", "tolerations"], json!([{"key": "a", "operator": "Exists"}])),
         vec![untolerated("b", "")]),
        ("empty key Exists tolerates every taint",
         with(with(n("a"), &["spec", "taints"], json!([{"key": "x", "value": "1", "effect": "NoExecute"}])),
              &["status", "conditions"], json!([{"type": "Ready", "status": "True"}])),
         with(p(), &["spec", "tolerations"], json!([{"operator": "Exists"}])),
         vec![]),
        ("Ready False", with(n("a"), &["status", "conditions"], json!([{"type": "Ready", "status": "False"}])), p(), vec![REASON_NOT_READY.into()]),
        ("Ready Unknown", with(n("a"), &["status", "conditions"], json!([{"type": "Ready", "status": "Unknown"}])), p(), vec![REASON_NOT_READY.into()]),
        ("no Ready condition", with(n("a"), &["status", "conditions"], json!([])), p(), vec![REASON_NOT_READY.into()]),
        ("not ready but the pod tolerates not-ready",
         with(n("a"), &["status", "conditions"], json!([{"type": "Ready", "status": "False"}])),
         with(p(), &["spec", "tolerations"], json!([{"key": TAINT_NOT_READY, "operator": "Exists"}])),
         vec![]),
        ("unknown, tolerating only not-ready is not enough",
         with(n("a"), &["status", "conditions"], json!([{"type": "Ready", "status": "Unknown"}])),
         with(p(), &["spec", "tolerations"], json!([{"key": TAINT_NOT_READY, "operator": "Exists"}])),
         vec![REASON_NOT_READY.into()]),
        ("the taint is reported before readiness",
         with(with(n("a"), &["status", "conditions"], json!([{"type": "Ready", "status": "Unknown"}])),
              &["spec", "taints"], json!([{"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}])),
         p(), vec![untolerated(TAINT_UNREACHABLE, "")]),
        ("nodeSelector matches",
         with(n("a"), &["metadata", "labels", "disk"], json!("ssd")),
         with(p(), &["spec", "nodeSelector"], json!({"disk": "ssd"})), vec![]),
        ("nodeSelector mismatch",
         with(n("a"), &["metadata", "labels", "disk"], json!("hdd")),
         with(p(), &["spec", "nodeSelector"], json!({"disk": "ssd"})), vec![REASON_AFFINITY.into()]),
        ("nodeSelector missing label",
         n("a"), with(p(), &["spec", "nodeSelector"], json!({"disk": "ssd"})), vec![REASON_AFFINITY.into()]),
        ("cordon is checked first",
         with(n("a"), &["spec", "unschedulable"], json!(true)),
         pod("p", "100", ""), vec![REASON_UNSCHEDULABLE.into()]),
        ("insufficient cpu", n("a"), pod("p", "5", ""), vec!["Insufficient cpu".into()]),
        ("insufficient memory", n("a"), pod("p", "", "9Gi"), vec!["Insufficient memory".into()]),
        ("insufficient both", n("a"), pod("p", "5", "9Gi"), vec!["Insufficient cpu".into(), "Insufficient memory".into()]),
        ("exactly the allocatable fits", n("a"), pod("p", "4", "8Gi"), vec![]),
        ("no pods capacity", node("a", "4", "8Gi", 0), p(), vec![REASON_TOO_MANY_PODS.into()]),
        ("extended resource missing",
         n("a"),
         with(p(), &["spec", "containers", "0", "resources", "requests"], json!({"nvidia.com/gpu": "1"})),
         vec!["Insufficient nvidia.com/gpu".into()]),
        ("extended resource present",
         with(n("a"), &["status", "allocatable", "nvidia.com/gpu"], json!("2")),
         with(p(), &["spec", "containers", "0", "resources", "requests"], json!({"nvidia.com/gpu": "2"})),
         vec![]),
        ("allocatable falls back to capacity",
         with(n("a"), &["status", "allocatable"], json!({})), pod("p", "3", "1Gi"), vec![]),
        ("allocatable below capacity counts",
         with(n("a"), &["status", "allocatable", "cpu"], json!("3500m")), pod("p", "3600m", ""), vec!["Insufficient cpu".into()]),
    ];
    for (name, node, pod, want) in cases {
        assert_eq!(reasons_on(&node, &pod, &[]), want, "{name}");
    }
}

#[test]
fn required_node_affinity() {
    let n = |labels: Value| {
        let mut v = std_node("n1");
        v["metadata"]["labels"] = labels;
        v
    };
    let with_terms = |terms: Value| {
        let mut p = pod("p", "", "");
        p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        p
    };
    let expr = |k: &str, op: &str, vals: Value| json!([{"matchExpressions": [{"key": k, "operator": op, "values": vals}]}]);
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Value, bool)> = vec![
        ("In matches", json!({"zone": "a"}), expr("zone", "In", json!(["a", "b"])), true),
        ("In misses", json!({"zone": "c"}), expr("zone", "In", json!(["a", "b"])), false),
        ("In without the label", json!({}), expr("zone", "In", json!(["a"])), false),
        ("NotIn matches", json!({"zone": "c"}), expr("zone", "NotIn", json!(["a"])), true),
        ("NotIn without the label", json!({}), expr("zone", "NotIn", json!(["a"])), true),
        ("NotIn misses", json!({"zone": "a"}), expr("zone", "NotIn", json!(["a"])), false),
        ("Exists", json!({"gpu": ""}), expr("gpu", "Exists", json!(null)), true),
        ("Exists misses", json!({}), expr("gpu", "Exists", json!(null)), false),
        ("DoesNotExist", json!({}), expr("gpu", "DoesNotExist", json!(null)), true),
        ("DoesNotExist misses", json!({"gpu": "1"}), expr("gpu", "DoesNotExist", json!(null)), false),
        ("Gt", json!({"cores": "8"}), expr("cores", "Gt", json!(["4"])), true),
        ("Gt equal is not greater", json!({"cores": "4"}), expr("cores", "Gt", json!(["4"])), false),
        ("Gt non-numeric label", json!({"cores": "many"}), expr("cores", "Gt", json!(["4"])), false),
        ("Lt", json!({"cores": "2"}), expr("cores", "Lt", json!(["4"])), true),
        ("Lt misses", json!({"cores": "6"}), expr("cores", "Lt", json!(["4"])), false),
        ("Gt with two values is invalid", json!({"cores": "8"}), expr("cores", "Gt", json!(["4", "5"])), false),
        ("unknown operator is invalid", json!({"zone": "a"}), expr("zone", "Is", json!(["a"])), false),
        ("terms are ORed", json!({"zone": "b"}),
         json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]), true),
        ("expressions in a term are ANDed", json!({"zone": "a", "disk": "hdd"}),
         json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                      {"key": "disk", "operator": "In", "values": ["ssd"]}]}]), false),
        ("matchFields on the node name", json!({}),
         json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]), true),
        ("matchFields NotIn the node name", json!({}),
         json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]), false),
        ("matchFields on another field is invalid", json!({}),
         json!([{"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}]), false),
        ("an empty term matches nothing", json!({"zone": "a"}), json!([{}]), false),
        ("no terms match nothing", json!({"zone": "a"}), json!([]), false),
        ("fields and labels together", json!({"zone": "a"}),
         json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                 "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]), true),
    ];
    for (name, labels, terms, fits) in cases {
        let got = reasons_on(&n(labels), &with_terms(terms), &[]);
        let want: Vec<String> = if fits {
            vec![]
        } else {
            vec![REASON_AFFINITY.into()]
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn host_ports() {
    let with_port = |name: &str, port: Value| {
        let mut p = pod(name, "", "");
        p["spec"]["containers"][0]["ports"] = json!([port]);
        p
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Value, bool)> = vec![
        ("same port conflicts", json!({"containerPort": 80, "hostPort": 8080}), json!({"containerPort": 80, "hostPort": 8080}), false),
        ("other port is free", json!({"containerPort": 80, "hostPort": 8080}), json!({"containerPort": 80, "hostPort": 8081}), true),
        ("other protocol is free", json!({"containerPort": 53, "hostPort": 53, "protocol": "UDP"}), json!({"containerPort": 53, "hostPort": 53}), true),
        ("TCP is the default protocol", json!({"containerPort": 53, "hostPort": 53, "protocol": "TCP"}), json!({"containerPort": 53, "hostPort": 53}), false),
        ("different host IPs are free", json!({"hostPort": 80, "hostIP": "10.0.0.1"}), json!({"hostPort": 80, "hostIP": "10.0.0.2"}), true),
        ("0.0.0.0 conflicts with a specific IP", json!({"hostPort": 80}), json!({"hostPort": 80, "hostIP": "10.0.0.2"}), false),
        ("a specific IP conflicts with 0.0.0.0", json!({"hostPort": 80, "hostIP": "10.0.0.1"}), json!({"hostPort": 80, "hostIP": "0.0.0.0"}), false),
        ("containerPort alone binds nothing", json!({"containerPort": 80}), json!({"containerPort": 80}), true),
    ];
    for (name, used, wanted, fits) in cases {
        let other = bound(with_port("other", used), "a");
        let got = reasons_on(&std_node("a"), &with_port("p", wanted), &[other]);
        let want: Vec<String> = if fits {
            vec![]
        } else {
            vec![REASON_PORTS.into()]
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn resources_count_the_pods_on_the_node() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<Value>, Value, Vec<&str>)> = vec![
        ("room left", vec![pod("o1", "3", "4Gi")], pod("p", "1", "4Gi"), vec![]),
        ("cpu taken", vec![pod("o1", "3", "1Gi")], pod("p", "1001m", ""), vec!["Insufficient cpu"]),
        ("memory taken", vec![pod("o1", "", "7Gi")], pod("p", "", "1025Mi"), vec!["Insufficient memory"]),
        ("a pod without requests always fits resources", vec![pod("o1", "4", "8Gi")], pod("p", "", ""), vec![]),
        ("pods full", vec![pod("o1", "", ""), pod("o2", "", "")], pod("p", "", ""), vec!["Too many pods"]),
    ];
    for (name, others, p, want) in cases {
        let n = node("a", "4", "8Gi", if name == "pods full" { 2 } else { 110 });
        let others: Vec<Value> = others.into_iter().map(|o| bound(o, "a")).collect();
        let want: Vec<String> = want.into_iter().map(String::from).collect();
        assert_eq!(reasons_on(&n, &p, &others), want, "{name}");
    }
}

#[test]
fn terminated_pods_hold_nothing() {
    let mut s = state_of(&[node("a", "1", "1Gi", 110)]);
    let mut done = bound(pod("done", "1", ""), "a");
    s.add_pod(&done);
    assert!(matches!(
        schedule(&s, &pod("p", "1", "")),
        Placement::Unschedulable(_)
    ));
    done["status"]["phase"] = json!("Succeeded");
    s.add_pod(&done);
    assert_eq!(placed(schedule(&s, &pod("p", "1", ""))), "a");
}

#[test]
fn failed_scheduling_message() {
    let tainted = {
        let mut n = std_node("n3");
        n["spec"]["taints"] = json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute"}]);
        n
    };
    let s = state_of(&[std_node("n1"), std_node("n2"), tainted.clone()]);
    let e = fit_err(schedule(&s, &pod("p", "5", "")));
    assert_eq!(
        e.message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: \
         1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    let want: BTreeMap<String, usize> = [
        ("Insufficient cpu".to_string(), 2),
        (
            "node(s) had untolerated taint {node.kubernetes.io/unreachable: }".to_string(),
            1,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(e.reasons, want);

    // A node short of both cpu and memory counts for each.
    let s = state_of(&[std_node("n1")]);
    let e = fit_err(schedule(&s, &pod("p", "5", "9Gi")));
    assert_eq!(
        e.message,
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );

    // Only unresolvable reasons.
    let s = state_of(&[tainted]);
    let e = fit_err(schedule(&s, &pod("p", "", "")));
    assert_eq!(
        e.message,
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );

    // preemptionPolicy: Never.
    let mut p = pod("p", "5", "");
    p["spec"]["preemptionPolicy"] = json!("Never");
    let e = fit_err(schedule(&state_of(&[std_node("n1")]), &p));
    assert_eq!(
        e.message,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );

    // Kubernetes sorts the "<count> <reason>" strings, so "10 ..." sorts before "2 ...".
    let mut nodes: Vec<Value> = (0..10).map(|i| std_node(&format!("small{i}"))).collect();
    for i in 0..2 {
        let mut n = std_node(&format!("cordoned{i}"));
        n["spec"]["unschedulable"] = json!(true);
        nodes.push(n);
    }
    let e = fit_err(schedule(&state_of(&nodes), &pod("p", "5", "")));
    assert!(
        e.message.starts_with(
            "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) were unschedulable. "
        ),
        "{}",
        e.message
    );

    // No node at all.
    let e = fit_err(schedule(&ClusterState::new(), &pod("p", "", "")));
    assert_eq!(e.message, NO_NODES_MESSAGE);
    assert!(e.reasons.is_empty());
}

#[test]
fn score_formulas() {
    /// name, (requested, allocatable) per resource, score.
    type Case<'a> = (&'a str, Vec<(i64, i64)>, i64);
    #[rustfmt::skip]
    let least: Vec<Case> = vec![
        ("empty", vec![(0, 4000), (0, 8 * GI)], 100),
        ("half and a quarter", vec![(2000, 4000), (2 * GI, 8 * GI)], (50 + 75) / 2),
        ("over-committed counts zero", vec![(5000, 4000), (0, 8 * GI)], 50),
        ("a resource the node lacks is skipped", vec![(1000, 4000), (GI, 0)], 75),
        ("nothing allocatable", vec![(0, 0), (0, 0)], 0),
    ];
    for (name, r, want) in least {
        assert_eq!(scores::least_allocated(&r), want, "least {name}");
    }
    #[rustfmt::skip]
    let balanced: Vec<Case> = vec![
        ("equal fractions", vec![(2000, 4000), (4 * GI, 8 * GI)], 100),
        ("0.5 against 0.1", vec![(2000, 4000), (GI, 10 * GI)], 80),
        ("fractions cap at 1", vec![(8000, 4000), (0, 8 * GI)], 50),
        ("one resource", vec![(2000, 4000), (0, 0)], 100),
    ];
    for (name, r, want) in balanced {
        assert_eq!(scores::balanced(&r), want, "balanced {name}");
    }
}

#[test]
fn scores_pick_the_emptier_node() {
    let mut s = state_of(&[std_node("busy"), std_node("idle")]);
    s.add_pod(&bound(pod("o", "2", "4Gi"), "busy"));
    for i in 0..5 {
        assert_eq!(
            placed(schedule(&s, &pod(&format!("p{i}"), "100m", "100Mi"))),
            "idle"
        );
    }
    let v = explain(&s, &pod("p", "100m", "100Mi"));
    let busy = v
        .iter()
        .find(|v| v.node == "busy")
        .unwrap()
        .scores
        .clone()
        .unwrap();
    let idle = v
        .iter()
        .find(|v| v.node == "idle")
        .unwrap()
        .scores
        .clone()
        .unwrap();
    assert!(idle.least_allocated > busy.least_allocated);
    assert!(idle.total > busy.total);
    assert!(v.iter().find(|v| v.node == "idle").unwrap().chosen);
    // Requests fill the node but the non-zero defaults still score an empty-looking one.
    let mut s = state_of(&[std_node("a"), std_node("b")]);
    for i in 0..10 {
        s.add_pod(&bound(pod(&format!("x{i}"), "", ""), "a"));
    }
    assert_eq!(placed(schedule(&s, &pod("p", "", ""))), "b");
}

#[test]
fn balanced_allocation_prefers_even_use() {
    // Both nodes leave the same LeastAllocated average; one ends up lopsided.
    let mut s = state_of(&[node("lop", "4", "4Gi", 110), node("even", "4", "4Gi", 110)]);
    s.add_pod(&bound(pod("o1", "2", ""), "lop"));
    s.add_pod(&bound(pod("o2", "1", "1Gi"), "even"));
    let v = explain(&s, &pod("p", "", ""));
    let get = |n: &str| {
        v.iter()
            .find(|v| v.node == n)
            .unwrap()
            .scores
            .clone()
            .unwrap()
    };
    assert!(get("even").balanced_allocation > get("lop").balanced_allocation);
    assert_eq!(placed(schedule(&s, &pod("p", "", ""))), "even");
}

#[test]
fn pods_of_one_owner_spread() {
    // Equal resources; one node already runs two of the owner's pods.
    let mut s = state_of(&[std_node("a"), std_node("b"), std_node("c")]);
    s.add_pod(&bound(owned(pod("w1", "", ""), "rs1"), "a"));
    s.add_pod(&bound(owned(pod("w2", "", ""), "rs1"), "a"));
    s.add_pod(&bound(pod("other1", "", ""), "b"));
    s.add_pod(&bound(pod("other2", "", ""), "b"));
    let p = owned(pod("w3", "", ""), "rs1");
    let v = explain(&s, &p);
    let spread: Vec<i64> = v
        .iter()
        .map(|v| v.scores.as_ref().unwrap().spread)
        .collect();
    assert_eq!(spread, vec![0, 100, 100]);
    // b and c tie on spreading; c is emptier.
    assert_eq!(placed(schedule(&s, &p)), "c");

    // Zones weigh two thirds: a node in the crowded zone loses to one in the empty zone.
    let z = |name: &str, zone: &str| {
        let mut n = std_node(name);
        n["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!(zone);
        n
    };
    let mut s = state_of(&[z("a1", "za"), z("a2", "za"), z("b1", "zb")]);
    s.add_pod(&bound(owned(pod("w1", "", ""), "rs1"), "a1"));
    let v = explain(&s, &owned(pod("w2", "", ""), "rs1"));
    let spread: BTreeMap<String, i64> = v
        .iter()
        .map(|v| (v.node.clone(), v.scores.as_ref().unwrap().spread))
        .collect();
    assert_eq!(spread["a1"], 0);
    assert_eq!(spread["a2"], 33);
    assert_eq!(spread["b1"], 100);
}

#[test]
fn preferred_affinity_and_soft_taints() {
    let labelled = |name: &str, k: &str, v: &str| {
        let mut n = std_node(name);
        n["metadata"]["labels"][k] = json!(v);
        n
    };
    let mut p = pod("p", "", "");
    p["spec"]["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
    ]}});
    let s = state_of(&[
        labelled("ssd", "disk", "ssd"),
        labelled("zone-a", "zone", "a"),
        std_node("plain"),
    ]);
    let v = explain(&s, &p);
    let aff: Vec<(String, i64)> = v
        .iter()
        .map(|v| (v.node.clone(), v.scores.as_ref().unwrap().node_affinity))
        .collect();
    assert_eq!(
        aff,
        vec![
            ("plain".into(), 0),
            ("ssd".into(), 100),
            ("zone-a".into(), 25)
        ]
    );
    assert_eq!(placed(schedule(&s, &p)), "ssd");

    let mut soft = std_node("soft");
    soft["spec"]["taints"] = json!([{"key": "spot", "effect": "PreferNoSchedule"}]);
    let s = state_of(&[soft, std_node("clean")]);
    assert_eq!(placed(schedule(&s, &pod("p", "", ""))), "clean");
    let v = explain(&s, &pod("p", "", ""));
    assert_eq!(v[1].node, "soft");
    assert_eq!(v[1].scores.as_ref().unwrap().taint_toleration, 0);
    assert_eq!(v[0].scores.as_ref().unwrap().taint_toleration, 100);
    // Tolerated, it no longer counts.
    let mut tol = pod("p", "", "");
    tol["spec"]["tolerations"] =
        json!([{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]);
    let v = explain(&s, &tol);
    assert_eq!(v[1].scores.as_ref().unwrap().taint_toleration, 100);
}

#[test]
fn equal_nodes_do_not_all_get_the_first_pick() {
    let nodes: Vec<Value> = (0..10).map(|i| std_node(&format!("n{i}"))).collect();
    let s = state_of(&nodes);
    let picks: std::collections::BTreeSet<String> = (0..50)
        .map(|i| placed(schedule(&s, &pod(&format!("p{i}"), "", ""))))
        .collect();
    assert!(picks.len() >= 5, "{picks:?}");
    // The same pod always goes to the same node.
    let p = pod("same", "", "");
    assert_eq!(schedule(&s, &p), schedule(&s, &p));
}

#[test]
fn explain_agrees_with_schedule() {
    let mut cordoned = std_node("c");
    cordoned["spec"]["unschedulable"] = json!(true);
    let mut s = state_of(&[std_node("a"), std_node("b"), cordoned]);
    s.add_pod(&bound(pod("o", "1", "1Gi"), "a"));
    let p = pod("p", "500m", "");
    let v = explain(&s, &p);
    assert_eq!(
        v.iter().map(|v| v.node.as_str()).collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
    assert_eq!(v[2].reasons, vec![REASON_UNSCHEDULABLE.to_string()]);
    assert!(v[2].scores.is_none() && !v[2].fits());
    let chosen: Vec<&str> = v
        .iter()
        .filter(|v| v.chosen)
        .map(|v| v.node.as_str())
        .collect();
    assert_eq!(chosen, vec![placed(schedule(&s, &p)).as_str()]);
}

#[test]
fn bookkeeping_stays_exact() {
    let mut s = state_of(&[std_node("a"), std_node("b")]);
    let totals = |s: &ClusterState, n: &str| {
        let i = s.node(n).unwrap();
        (
            i.requested.milli_cpu,
            i.requested.memory,
            i.pod_count,
            i.nonzero_milli_cpu,
        )
    };
    let p1 = pod("p1", "500m", "1Gi");
    let p2 = pod("p2", "250m", "");

    // Assume, then confirm: counted once.
    s.assume(&p1, "a");
    assert_eq!(totals(&s, "a"), (500, GI, 1, 500));
    assert_eq!(s.pod_placement(&p1), Some(("a", true)));
    s.add_pod(&bound(p1.clone(), "a"));
    assert_eq!(totals(&s, "a"), (500, GI, 1, 500));
    assert_eq!(s.pod_placement(&p1), Some(("a", false)));
    // Forget leaves a confirmed pod alone.
    s.forget(&p1);
    assert_eq!(totals(&s, "a"), (500, GI, 1, 500));
    // Add is idempotent and replaces a previous version.
    s.add_pod(&bound(p1.clone(), "a"));
    s.add_pod(&bound(pod("p1", "1", "1Gi"), "a"));
    assert_eq!(totals(&s, "a"), (1000, GI, 1, 1000));

    // Assume then forget: back to nothing.
    s.assume(&p2, "b");
    assert_eq!(totals(&s, "b"), (250, 0, 1, 250));
    s.forget(&p2);
    assert_eq!(totals(&s, "b"), (0, 0, 0, 0));
    s.forget(&p2);
    assert_eq!(totals(&s, "b"), (0, 0, 0, 0));

    // Assumed on one node, bound on another: moves.
    s.assume(&p2, "b");
    s.add_pod(&bound(p2.clone(), "a"));
    assert_eq!(totals(&s, "b"), (0, 0, 0, 0));
    assert_eq!(totals(&s, "a"), (1250, GI, 2, 1250));

    // Remove is idempotent; a removal of another pod of the same name (older uid) is ignored.
    let mut stale = p2.clone();
    stale["metadata"]["uid"] = json!("someone-else");
    s.remove_pod(&stale);
    assert_eq!(totals(&s, "a"), (1250, GI, 2, 1250));
    s.remove_pod(&p2);
    s.remove_pod(&p2);
    assert_eq!(totals(&s, "a"), (1000, GI, 1, 1000));

    // A pod unbound or ended by an update is removed.
    let mut ended = bound(p1.clone(), "a");
    ended["status"]["phase"] = json!("Failed");
    s.add_pod(&ended);
    assert_eq!(totals(&s, "a"), (0, 0, 0, 0));
    assert_eq!(s.pod_count(), 0);

    // Pods survive a node's removal and re-add; host ports and owners are exact.
    let mut hp = owned(pod("hp", "100m", ""), "rs");
    hp["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 80}]);
    s.add_pod(&bound(hp.clone(), "b"));
    s.remove_node("b");
    assert_eq!(s.node_names(), vec!["a".to_string()]);
    assert!(!s.node("b").unwrap().present);
    s.upsert_node(&std_node("b"));
    let b = s.node("b").unwrap();
    assert_eq!(
        (b.requested.milli_cpu, b.pod_count, b.host_ports.len()),
        (100, 1, 1)
    );
    assert_eq!(s.owner_pods_on("b", "rs"), 1);
    s.remove_pod(&hp);
    let b = s.node("b").unwrap();
    assert_eq!(
        (b.requested.milli_cpu, b.pod_count, b.host_ports.len()),
        (0, 0, 0)
    );
    assert_eq!(s.owner_pods_on("b", "rs"), 0);
    assert_eq!(s.owner_id("rs"), None);

    // A pod bound to a node not yet known is held until the node comes; a removed node
    // with no pods is gone.
    s.add_pod(&bound(pod("early", "1", ""), "late"));
    assert_eq!(s.node_names(), vec!["a".to_string(), "b".to_string()]);
    assert!(explain(&s, &pod("p", "", ""))
        .iter()
        .all(|v| v.node != "late"));
    s.upsert_node(&std_node("late"));
    assert_eq!(s.node("late").unwrap().requested.milli_cpu, 1000);
    s.remove_node("a");
    assert!(s.node("a").is_none());
    assert_eq!(s.node_count(), 2);
    s.remove_node("a");

    // Updating a node keeps its totals.
    let mut bigger = std_node("late");
    bigger["status"]["allocatable"]["cpu"] = json!("16");
    s.upsert_node(&bigger);
    let late = s.node("late").unwrap();
    assert_eq!(
        (late.allocatable.milli_cpu, late.requested.milli_cpu),
        (16000, 1000)
    );
}

#[test]
fn assumed_pods_count_for_the_next_decision() {
    let mut s = state_of(&[node("a", "1", "1Gi", 110), node("b", "1", "1Gi", 110)]);
    let p1 = pod("p1", "600m", "");
    let n1 = placed(schedule(&s, &p1));
    s.assume(&p1, &n1);
    let p2 = pod("p2", "600m", "");
    let n2 = placed(schedule(&s, &p2));
    assert_ne!(n1, n2);
    s.assume(&p2, &n2);
    let e = fit_err(schedule(&s, &pod("p3", "600m", "")));
    assert_eq!(e.reasons.get("Insufficient cpu"), Some(&2));
    s.forget(&p2);
    assert_eq!(placed(schedule(&s, &pod("p3", "600m", ""))), n2);
}

#[test]
fn ten_thousand_pods_on_a_thousand_nodes() {
    let nodes: Vec<Value> = (0..1000)
        .map(|i| node(&format!("node-{i:04}"), "8", "32Gi", 110))
        .collect();
    let mut s = state_of(&nodes);
    for i in 0..10_000 {
        // Ten owners, some pods with requests, some without.
        let p = if i % 3 == 0 {
            owned(pod(&format!("p{i}"), "", ""), &format!("rs{}", i % 10))
        } else {
            owned(
                pod(&format!("p{i}"), "100m", "128Mi"),
                &format!("rs{}", i % 10),
            )
        };
        let n = placed(schedule(&s, &p));
        s.assume(&p, &n);
    }
    assert_eq!(s.pod_count(), 10_000);
    let counts: Vec<i64> = s
        .node_names()
        .iter()
        .map(|n| s.node(n).unwrap().pod_count)
        .collect();
    let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(max - min <= 2, "pods per node from {min} to {max}");
    assert_eq!(counts.iter().sum::<i64>(), 10_000);
}
