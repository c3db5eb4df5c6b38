//! `navctl describe`: an object as readable text — common metadata, a section per kind
//! (Deployment, ReplicaSet, Pod, Service, Node, Namespace), and the object's events.

use std::fmt::Write;

use navarch_model::kinds::Kind;
use navarch_model::table::{format_label_selector, human_duration, parse_time};
use serde_json::Value;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Accumulates `Label:  value` lines at an indentation.
struct Out(String);

impl Out {
    fn field(&mut self, indent: usize, label: &str, value: impl std::fmt::Display) {
        let pad = 20usize.saturating_sub(indent + label.len() + 1).max(2);
        let _ = writeln!(
            self.0,
            "{:indent$}{label}:{:pad$}{value}",
            "",
            "",
            indent = indent,
            pad = pad
        );
    }

    fn line(&mut self, indent: usize, text: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{:indent$}{text}", "", indent = indent);
    }

    /// A map as `k=v` lines, the first on the label's line.
    fn map(&mut self, indent: usize, label: &str, map: Option<&Value>, skip: &[&str]) {
        let mut pairs: Vec<String> = map
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !skip.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={}", text(v)))
                    .collect()
            })
            .unwrap_or_default();
        pairs.sort();
        if pairs.is_empty() {
            self.field(indent, label, "<none>");
            return;
        }
        self.field(indent, label, &pairs[0]);
        let col = (indent + label.len() + 3).max(20);
        for p in &pairs[1..] {
            self.line(col, p);
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        o => o.to_string(),
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn s(v: &Value, path: &[&str]) -> String {
    match at(v, path) {
        Value::Null => "<none>".into(),
        x => text(x),
    }
}

fn n(v: &Value, path: &[&str]) -> i64 {
    at(v, path).as_i64().unwrap_or(0)
}

fn items<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The text of `obj` (of `kind`) with `events` about it; `now` is Unix seconds.
pub fn describe(kind: &Kind, obj: &Value, events: &[Value], now: i64) -> String {
    let mut o = Out(String::new());
    let m = &obj["metadata"];
    o.field(0, "Name", s(m, &["name"]));
    if kind.namespaced {
        o.field(0, "Namespace", s(m, &["namespace"]));
    }
    o.map(0, "Labels", m.get("labels"), &[]);
    o.map(0, "Annotations", m.get("annotations"), &[LAST_APPLIED]);
    o.field(0, "CreationTimestamp", s(m, &["creationTimestamp"]));
    o.field(0, "UID", s(m, &["uid"]));
    o.field(0, "ResourceVersion", s(m, &["resourceVersion"]));
    if let Some(t) = m["deletionTimestamp"].as_str() {
        o.field(0, "DeletionTimestamp", t);
    }
    match kind.kind {
        "Deployment" | "ReplicaSet" => workload(&mut o, kind, obj),
        "Pod" => pod(&mut o, obj),
        "Service" => service(&mut o, obj),
        "Node" => node(&mut o, obj),
        "Namespace" => o.field(0, "Status", s(obj, &["status", "phase"])),
        _ => {}
    }
    events_section(&mut o, events, now);
    o.0
}

fn workload(o: &mut Out, kind: &Kind, d: &Value) {
    let st = &d["status"];
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    if kind.kind == "Deployment" {
        o.field(
            0,
            "Replicas",
            format!(
                "{desired} desired | {} updated | {} total | {} available | {} unavailable",
                n(st, &["updatedReplicas"]),
                n(st, &["replicas"]),
                n(st, &["availableReplicas"]),
                n(st, &["unavailableReplicas"]),
            ),
        );
    } else {
        o.field(
            0,
            "Replicas",
            format!("{} current / {desired} desired", n(st, &["replicas"])),
        );
    }
    o.field(
        0,
        "Selector",
        format_label_selector(d["spec"].get("selector")),
    );
    if kind.kind == "Deployment" {
        o.field(0, "StrategyType", s(d, &["spec", "strategy", "type"]));
        if let Some(ru) = d["spec"]["strategy"].get("rollingUpdate") {
            o.field(
                0,
                "RollingUpdateStrategy",
                format!(
                    "{} max unavailable, {} max surge",
                    text(&ru["maxUnavailable"]),
                    text(&ru["maxSurge"])
                ),
            );
        }
    }
    o.line(0, "Pod Template:");
    let t = &d["spec"]["template"];
    o.map(2, "Labels", t["metadata"].get("labels"), &[]);
    containers(o, &t["spec"], None);
    let conds = items(d, &["status", "conditions"]);
    if !conds.is_empty() {
        o.line(0, "Conditions:");
        o.line(2, format!("{:<16}{:<8}{}", "Type", "Status", "Reason"));
        for c in conds {
            o.line(
                2,
                format!(
                    "{:<16}{:<8}{}",
                    s(c, &["type"]),
                    s(c, &["status"]),
                    s(c, &["reason"])
                ),
            );
        }
    }
}

fn ports(c: &Value) -> String {
    let p: Vec<String> = items(c, &["ports"])
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                text(&p["containerPort"]),
                p["protocol"].as_str().unwrap_or("TCP")
            )
        })
        .collect();
    if p.is_empty() {
        "<none>".into()
    } else {
        p.join(", ")
    }
}

/// The containers of a pod spec; with `statuses`, each container's state too.
fn containers(o: &mut Out, spec: &Value, statuses: Option<&[Value]>) {
    let list = items(spec, &["containers"]);
    if list.is_empty() {
        o.field(2, "Containers", "<none>");
        return;
    }
    o.line(2, "Containers:");
    for c in list {
        let name = c["name"].as_str().unwrap_or("");
        o.line(3, format!("{name}:"));
        o.field(4, "Image", s(c, &["image"]));
        o.field(4, "Ports", ports(c));
        if let Some(cmd) = c["command"].as_array() {
            let cmd: Vec<String> = cmd.iter().map(text).collect();
            o.field(4, "Command", cmd.join(" "));
        }
        if let Some(statuses) = statuses {
            let st = statuses.iter().find(|s| s["name"].as_str() == Some(name));
            let state = st
                .and_then(|s| s["state"].as_object())
                .and_then(|m| m.iter().next())
                .map(|(k, v)| {
                    let mut k = k.clone();
                    if let Some(f) = k.get_mut(0..1) {
                        f.make_ascii_uppercase();
                    }
                    match v["reason"].as_str() {
                        Some(r) => format!("{k} ({r})"),
                        None => k,
                    }
                })
                .unwrap_or_else(|| "Waiting".into());
            o.field(4, "State", state);
            if let Some(st) = st {
                o.field(4, "Ready", text(&st["ready"]));
                o.field(4, "Restart Count", n(st, &["restartCount"]));
            }
        }
        let env = items(c, &["env"]);
        if !env.is_empty() {
            o.line(4, "Environment:");
            for e in env {
                let v = e
                    .get("value")
                    .map(text)
                    .unwrap_or_else(|| "<set from a source>".into());
                o.line(6, format!("{}:  {v}", s(e, &["name"])));
            }
        }
    }
}

fn pod(o: &mut Out, p: &Value) {
    let node = p["spec"]["nodeName"].as_str().unwrap_or("<none>");
    let host_ip = p["status"]["hostIP"].as_str();
    o.field(
        0,
        "Node",
        match host_ip {
            Some(ip) => format!("{node}/{ip}"),
            None => node.to_string(),
        },
    );
    let phase = if p["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".to_string()
    } else {
        s(p, &["status", "phase"])
    };
    o.field(0, "Status", phase);
    o.field(0, "IP", p["status"]["podIP"].as_str().unwrap_or(""));
    containers(
        o,
        &p["spec"],
        Some(items(p, &["status", "containerStatuses"])),
    );
    let conds = items(p, &["status", "conditions"]);
    if !conds.is_empty() {
        o.line(0, "Conditions:");
        o.line(2, format!("{:<28}{}", "Type", "Status"));
        for c in conds {
            o.line(2, format!("{:<28}{}", s(c, &["type"]), s(c, &["status"])));
        }
    }
}

fn service(o: &mut Out, svc: &Value) {
    let spec = &svc["spec"];
    o.map(0, "Selector", spec.get("selector"), &[]);
    o.field(0, "Type", s(spec, &["type"]));
    o.field(0, "IP", s(spec, &["clusterIP"]));
    let ports = items(spec, &["ports"]);
    if ports.is_empty() {
        o.field(0, "Port", "<none>");
    }
    for p in ports {
        let name = p["name"].as_str().unwrap_or("<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        o.field(0, "Port", format!("{name}  {}/{proto}", text(&p["port"])));
        o.field(
            0,
            "TargetPort",
            format!(
                "{}/{proto}",
                text(p.get("targetPort").unwrap_or(&p["port"]))
            ),
        );
        if let Some(np) = p["nodePort"].as_i64() {
            o.field(0, "NodePort", format!("{name}  {np}/{proto}"));
        }
    }
}

fn node(o: &mut Out, nd: &Value) {
    let conds = items(nd, &["status", "conditions"]);
    if conds.is_empty() {
        o.field(0, "Conditions", "<none>");
    } else {
        o.line(0, "Conditions:");
        o.line(
            2,
            format!(
                "{:<20}{:<8}{:<28}{:<28}{}",
                "Type", "Status", "LastHeartbeatTime", "Reason", "Message"
            ),
        );
        for c in conds {
            o.line(
                2,
                format!(
                    "{:<20}{:<8}{:<28}{:<28}{}",
                    s(c, &["type"]),
                    s(c, &["status"]),
                    s(c, &["lastHeartbeatTime"]),
                    s(c, &["reason"]),
                    c["message"].as_str().unwrap_or("")
                ),
            );
        }
    }
    let addrs = items(nd, &["status", "addresses"]);
    if addrs.is_empty() {
        o.field(0, "Addresses", "<none>");
    } else {
        o.line(0, "Addresses:");
        for a in addrs {
            o.field(2, &s(a, &["type"]), s(a, &["address"]));
        }
    }
    for (label, key) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        match nd["status"][key].as_object().filter(|m| !m.is_empty()) {
            None => o.field(0, label, "<none>"),
            Some(m) => {
                o.line(0, format!("{label}:"));
                for (k, v) in m {
                    o.field(2, k, text(v));
                }
            }
        }
    }
    o.field(
        0,
        "Unschedulable",
        nd["spec"]["unschedulable"].as_bool().unwrap_or(false),
    );
}

fn events_section(o: &mut Out, events: &[Value], now: i64) {
    if events.is_empty() {
        o.field(0, "Events", "<none>");
        return;
    }
    let mut evs: Vec<&Value> = events.iter().collect();
    let when = |e: &Value| {
        ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .find_map(|k| e[*k].as_str().and_then(parse_time))
            .or_else(|| {
                e["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(parse_time)
            })
    };
    evs.sort_by_key(|e| when(e));
    o.line(0, "Events:");
    let rows: Vec<[String; 5]> = evs
        .iter()
        .map(|e| {
            let age = when(e)
                .map(|t| human_duration(now - t))
                .unwrap_or_else(|| "<unknown>".into());
            let from = e["source"]["component"]
                .as_str()
                .or_else(|| e["reportingComponent"].as_str())
                .unwrap_or("")
                .to_string();
            [
                s(e, &["type"]),
                s(e, &["reason"]),
                age,
                from,
                e["message"].as_str().unwrap_or("").trim().to_string(),
            ]
        })
        .collect();
    let mut t = super::output::TextTable {
        headers: ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        rows: rows.into_iter().map(|r| r.to_vec()).collect(),
    };
    t.rows.insert(
        0,
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    );
    for l in t.render().lines() {
        o.line(2, l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_model::kinds::by_kind;
    use serde_json::json;

    #[test]
    fn describes_a_deployment() {
        let d = json!({
            "metadata": {"name": "web", "namespace": "demo", "uid": "u-1", "resourceVersion": "7",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {LAST_APPLIED: "{}"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1},
        });
        let ev = json!({"type": "Normal", "reason": "ScalingReplicaSet",
            "lastTimestamp": "2024-01-01T00:00:00Z", "source": {"component": "deployment-controller"},
            "message": "Scaled up replica set web-1 to 2"});
        let text = describe(by_kind("Deployment").unwrap(), &d, &[ev], 1704067260);
        for want in [
            "Name:               web\n",
            "Namespace:          demo\n",
            "Labels:             app=web\n",
            "tier=front",
            "Annotations:        <none>\n",
            "UID:                u-1\n",
            "Replicas:           2 desired | 2 updated | 2 total | 1 available | 0 unavailable\n",
            "Selector:           app=web\n",
            "StrategyType:       RollingUpdate\n",
            "   web:\n",
            "    Image:          nginx:1.27\n",
            "    Ports:          80/TCP\n",
            "Events:\n",
            "ScalingReplicaSet",
            "60s",
            "Scaled up replica set web-1 to 2",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains(LAST_APPLIED));
    }

    #[test]
    fn describes_a_service_and_a_namespace_without_events() {
        let svc = json!({"metadata": {"name": "web", "namespace": "demo"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.9", "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
        let text = describe(by_kind("Service").unwrap(), &svc, &[], 0);
        assert!(text.contains("Type:               ClusterIP\n"), "{text}");
        assert!(text.contains("IP:                 10.0.0.9\n"), "{text}");
        assert!(
            text.contains("Port:               <unset>  80/TCP\n"),
            "{text}"
        );
        assert!(text.contains("TargetPort:         8080/TCP\n"), "{text}");
        assert!(text.ends_with("Events:             <none>\n"), "{text}");
        let ns = json!({"metadata": {"name": "demo"}, "status": {"phase": "Active"}});
        let text = describe(by_kind("Namespace").unwrap(), &ns, &[], 0);
        assert!(!text.contains("Namespace:"), "{text}");
        assert!(text.contains("Status:             Active\n"), "{text}");
    }
}
