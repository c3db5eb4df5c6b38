//! The Table format (`meta.k8s.io/v1` Table) with the columns kubectl users expect per kind.
//!
//! Columns and cells follow kube-apiserver's printers; priority-1 columns are the ones
//! `kubectl get -o wide` adds. Ages use apimachinery's `HumanDuration` ([`human_duration`]).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::kinds::Kind;

/// One column: name, type, priority (1 = `-o wide` only), description.
type Column = (&'static str, &'static str, u8, &'static str);

const NAME: Column = (
    "Name",
    "string",
    0,
    "Name must be unique within a namespace.",
);
const AGE: Column = (
    "Age",
    "string",
    0,
    "The time since the object was created (its creationTimestamp).",
);
const CONTAINERS: Column = (
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = (
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = ("Selector", "string", 1, "Label selector for the pods.");

fn column_list(kind: &Kind) -> Vec<Column> {
    match kind.kind {
        "Pod" => vec![
            NAME,
            ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            ("IP", "string", 1, "The IP address allocated to the pod."),
            ("Node", "string", 1, "The node the pod is scheduled onto."),
            ("Nominated Node", "string", 1, "The node the scheduler nominated for the pod when it preempts others."),
            ("Readiness Gates", "string", 1, "Pod readiness gates that are true, out of all gates."),
        ],
        "Deployment" => vec![
            NAME,
            ("Ready", "string", 0, "Number of the pod with ready state out of the desired replicas."),
            ("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            ("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "ReplicaSet" => vec![
            NAME,
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "The most recently observed number of replicas."),
            ("Ready", "integer", 0, "The number of pods targeted by this ReplicaSet with a Ready Condition."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "Node" => vec![
            NAME,
            ("Status", "string", 0, "The status of the node."),
            ("Roles", "string", 0, "The roles of the node."),
            AGE,
            ("Version", "string", 0, "Kubelet Version reported by the node."),
            ("Internal-IP", "string", 1, "The node's first InternalIP address."),
            ("External-IP", "string", 1, "The node's first ExternalIP address."),
            ("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release."),
            ("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r'."),
            ("Container-Runtime", "string", 1, "Container runtime version reported by the node."),
        ],
        "Service" => vec![
            NAME,
            ("Type", "string", 0, "How the service is exposed."),
            ("Cluster-IP", "string", 0, "The IP address of the service, usually assigned by the master."),
            ("External-IP", "string", 0, "External IP addresses for which nodes accept traffic for this service."),
            ("Port(s)", "string", 0, "The ports the service exposes."),
            AGE,
            ("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        "Endpoints" => vec![
            NAME,
            ("Endpoints", "string", 0, "The endpoints (address:port) of the set."),
            AGE,
        ],
        "ConfigMap" => vec![
            NAME,
            ("Data", "integer", 0, "The number of keys in data and binaryData."),
            AGE,
        ],
        "ServiceAccount" => vec![
            NAME,
            ("Secrets", "string", 0, "The number of secrets the account lists."),
            AGE,
        ],
        "Secret" => vec![
            NAME,
            ("Type", "string", 0, "The type of the secret."),
            ("Data", "integer", 0, "The number of keys in the secret's data."),
            AGE,
        ],
        "EndpointSlice" => vec![
            NAME,
            ("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            ("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            ("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
            AGE,
        ],
        "PodDisruptionBudget" => vec![
            NAME,
            ("Min Available", "string", 0, "The minimum number of pods that must be available."),
            ("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
            ("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ],
        "Namespace" => vec![
            NAME,
            ("Status", "string", 0, "The status of the namespace."),
            AGE,
        ],
        "RuntimeClass" => vec![
            NAME,
            ("Handler", "string", 0, "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class."),
            AGE,
        ],
        "Event" => vec![
            ("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
            ("Type", "string", 0, "Type of this event (Normal, Warning)."),
            ("Reason", "string", 0, "Short, machine understandable string that gives the reason for this event."),
            ("Object", "string", 0, "The object that this event is about."),
            ("Subobject", "string", 1, "The field of the object this event is about, if any."),
            ("Source", "string", 1, "The component reporting this event."),
            ("Message", "string", 0, "A human-readable description of the status of this operation."),
            ("First Seen", "string", 1, "The time at which the event was first recorded."),
            ("Count", "integer", 1, "The number of times this event has occurred."),
            ("Name", "string", 1, "Name must be unique within a namespace."),
        ],
        "Lease" => vec![
            NAME,
            ("Holder", "string", 0, "The identity of the holder of the current lease."),
            AGE,
        ],
        "Role" | "ClusterRole" => vec![
            NAME,
            ("Created At", "date", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            NAME,
            ("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
            AGE,
            ("Users", "string", 1, "Users in the roleBinding"),
            ("Groups", "string", 1, "Groups in the roleBinding"),
            ("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
        ],
        _ => vec![NAME, AGE],
    }
}

/// The `columnDefinitions` of a kind's Table.
pub fn columns(kind: &Kind) -> Value {
    Value::Array(
        column_list(kind)
            .into_iter()
            .map(|(name, ty, priority, description)| {
                json!({
                    "name": name,
                    "type": ty,
                    "format": if name == "Name" { "name" } else { "" },
                    "description": description,
                    "priority": priority,
                })
            })
            .collect(),
    )
}

/// One row: `cells` (matching [`columns`]) and `object`, a `PartialObjectMetadata` with the
/// object's metadata. `now` is the current time as Unix seconds (for the Age column).
pub fn row(kind: &Kind, object: &Value, now: i64) -> Value {
    let cells = match kind.kind {
        "Pod" => pod_cells(object, now),
        "Deployment" => deployment_cells(object, now),
        "ReplicaSet" => replica_set_cells(object, now),
        "Node" => node_cells(object, now),
        "Service" => service_cells(object, now),
        "Endpoints" => vec![
            json!(name(object)),
            json!(format_endpoints(object)),
            json!(age(object, now)),
        ],
        "ServiceAccount" => vec![
            json!(name(object)),
            json!(object
                .get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)),
            json!(age(object, now)),
        ],
        "Secret" => vec![
            json!(name(object)),
            json!(s(object, &["type"])),
            json!(object
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())),
            json!(age(object, now)),
        ],
        "ConfigMap" => {
            let keys = |f: &str| {
                object
                    .get(f)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            vec![
                json!(name(object)),
                json!(keys("data") + keys("binaryData")),
                json!(age(object, now)),
            ]
        }
        "EndpointSlice" => vec![
            json!(name(object)),
            json!(s(object, &["addressType"])),
            json!(format_slice_ports(object)),
            json!(format_slice_endpoints(object)),
            json!(age(object, now)),
        ],
        "PodDisruptionBudget" => vec![
            json!(name(object)),
            json!(int_or_string(get(object, &["spec", "minAvailable"]))),
            json!(int_or_string(get(object, &["spec", "maxUnavailable"]))),
            json!(i(object, &["status", "disruptionsAllowed"])),
            json!(age(object, now)),
        ],
        "Namespace" => vec![
            json!(name(object)),
            json!(s(object, &["status", "phase"])),
            json!(age(object, now)),
        ],
        "RuntimeClass" => vec![
            json!(name(object)),
            json!(s(object, &["handler"])),
            json!(age(object, now)),
        ],
        "Event" => event_cells(object, now),
        "Lease" => vec![
            json!(name(object)),
            json!(s(object, &["spec", "holderIdentity"])),
            json!(age(object, now)),
        ],
        "Role" | "ClusterRole" => vec![json!(name(object)), json!(created_at(object))],
        "RoleBinding" | "ClusterRoleBinding" => role_binding_cells(object, now),
        _ => vec![json!(name(object)), json!(age(object, now))],
    };
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        },
    })
}

/// A whole Table: columns, one row per object, and the list metadata
/// (`resourceVersion`, and `continue` when not empty).
pub fn table(
    kind: &Kind,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    now: i64,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(resource_version));
    if let Some(c) = continue_token.filter(|c| !c.is_empty()) {
        metadata.insert("continue".into(), json!(c));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(kind),
        "rows": objects.iter().map(|o| row(kind, o, now)).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------
// Durations and times.
// ---------------------------------------------------------------------------------------

/// apimachinery's `duration.HumanDuration` of a number of seconds: `<invalid>` for more
/// than a second in the future, then `Ns` under 2 minutes, `NmMs` under 10 minutes, `Nm`
/// under 3 hours, `NhMm` under 8 hours, `Nh` under 2 days, `NdHh` under 8 days, `Nd` under
/// 2 years, `NyDd` under 8 years, then `Ny`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// An RFC 3339 time as Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// Whole seconds from the RFC 3339 time `t` to `now` (Unix seconds), truncated toward
/// zero as Go's `int(d.Seconds())` does.
fn seconds_since(t: &str, now: i64) -> Option<i64> {
    let t = t.parse::<k8s_openapi::jiff::Timestamp>().ok()?;
    let elapsed = i128::from(now) * 1_000_000_000 - t.as_nanosecond();
    i64::try_from(elapsed / 1_000_000_000).ok()
}

/// The human age of the time at `path`, `<unknown>` when absent or unparsable.
fn since(object: &Value, path: &[&str], now: i64) -> String {
    match get(object, path)
        .and_then(Value::as_str)
        .and_then(|t| seconds_since(t, now))
    {
        Some(secs) => human_duration(secs),
        None => "<unknown>".into(),
    }
}

/// `creationTimestamp` as Go's `Time.UTC().Format(time.RFC3339)` prints it; the zero time
/// when absent.
fn created_at(object: &Value) -> String {
    get(object, &["metadata", "creationTimestamp"])
        .and_then(Value::as_str)
        .and_then(parse_time)
        .and_then(|secs| k8s_openapi::jiff::Timestamp::from_second(secs).ok())
        .map_or_else(|| "0001-01-01T00:00:00Z".into(), |t| t.to_string())
}

fn age(object: &Value, now: i64) -> String {
    since(object, &["metadata", "creationTimestamp"], now)
}

// ---------------------------------------------------------------------------------------
// Field access.
// ---------------------------------------------------------------------------------------

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn s(v: &Value, path: &[&str]) -> String {
    get(v, path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn i(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn name(object: &Value) -> String {
    s(object, &["metadata", "name"])
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------
// Printers.
// ---------------------------------------------------------------------------------------

fn pod_cells(pod: &Value, now: i64) -> Vec<Value> {
    let total = arr(pod, &["spec", "containers"]).len();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<i64> = None;
    let mut reason = s(pod, &["status", "phase"]);
    let status_reason = s(pod, &["status", "reason"]);
    if !status_reason.is_empty() {
        reason = status_reason.clone();
    }
    for c in arr(pod, &["status", "conditions"]) {
        if s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let mut has_running = false;
    for c in arr(pod, &["status", "containerStatuses"]).iter().rev() {
        restarts += i(c, &["restartCount"]);
        if let Some(secs) = get(c, &["lastState", "terminated", "finishedAt"])
            .and_then(Value::as_str)
            .and_then(|t| seconds_since(t, now))
        {
            // The most recent restart: the fewest seconds ago.
            last_restart = Some(last_restart.map_or(secs, |l: i64| l.min(secs)));
        }
        let waiting = s(c, &["state", "waiting", "reason"]);
        let terminated = get(c, &["state", "terminated"]).filter(|t| t.is_object());
        if !waiting.is_empty() {
            reason = waiting;
        } else if let Some(t) = terminated {
            let r = s(t, &["reason"]);
            reason = if !r.is_empty() {
                r
            } else if i(t, &["signal"]) != 0 {
                format!("Signal:{}", i(t, &["signal"]))
            } else {
                format!("ExitCode:{}", i(t, &["exitCode"]))
            };
        } else if get(c, &["ready"]).and_then(Value::as_bool) == Some(true)
            && get(c, &["state", "running"]).is_some_and(Value::is_object)
        {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        let pod_ready = arr(pod, &["status", "conditions"])
            .iter()
            .any(|c| s(c, &["type"]) == "Ready" && s(c, &["status"]) == "True");
        reason = if pod_ready { "Running" } else { "NotReady" }.into();
    }
    let deleting = get(pod, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null());
    let phase = s(pod, &["status", "phase"]);
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts = match last_restart {
        Some(secs) if restarts > 0 => format!("{restarts} ({} ago)", human_duration(secs)),
        _ => restarts.to_string(),
    };
    let gates = arr(pod, &["spec", "readinessGates"]);
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(pod, &["status", "conditions"]);
        let true_gates = gates
            .iter()
            .filter(|g| {
                let t = s(g, &["conditionType"]);
                conditions
                    .iter()
                    .any(|c| s(c, &["type"]) == t && s(c, &["status"]) == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    vec![
        json!(name(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(pod, now)),
        json!(or_none(s(pod, &["status", "podIP"]))),
        json!(or_none(s(pod, &["spec", "nodeName"]))),
        json!(or_none(s(pod, &["status", "nominatedNodeName"]))),
        json!(gates),
    ]
}

/// Container names and images of a template, comma-joined.
fn container_cells(object: &Value) -> (String, String) {
    let containers = arr(object, &["spec", "template", "spec", "containers"]);
    let names: Vec<String> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<String> = containers.iter().map(|c| s(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// A LabelSelector as `labels.Selector.String()` prints it: sorted by key, `k=v`,
/// `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    let Some(sel) = selector.filter(|s| s.is_object()) else {
        return "<none>".into();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in arr(sel, &["matchExpressions"]) {
        let key = s(e, &["key"]);
        let values: BTreeSet<String> = arr(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let text = match s(e, &["operator"]).as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key, text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// A label map as `labels.FormatLabels` prints it: sorted `k=v`, `<none>` when empty.
pub fn format_labels(labels: Option<&Value>) -> String {
    let Some(m) = labels.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn deployment_cells(d: &Value, now: i64) -> Vec<Value> {
    let desired = get(d, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = container_cells(d);
    vec![
        json!(name(d)),
        json!(format!("{}/{desired}", i(d, &["status", "readyReplicas"]))),
        json!(i(d, &["status", "updatedReplicas"])),
        json!(i(d, &["status", "availableReplicas"])),
        json!(age(d, now)),
        json!(containers),
        json!(images),
        json!(format_label_selector(get(d, &["spec", "selector"]))),
    ]
}

fn replica_set_cells(rs: &Value, now: i64) -> Vec<Value> {
    let desired = get(rs, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = container_cells(rs);
    vec![
        json!(name(rs)),
        json!(desired),
        json!(i(rs, &["status", "replicas"])),
        json!(i(rs, &["status", "readyReplicas"])),
        json!(age(rs, now)),
        json!(containers),
        json!(images),
        json!(format_label_selector(get(rs, &["spec", "selector"]))),
    ]
}

fn node_cells(node: &Value, now: i64) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| s(c, &["type"]) == "Ready")
    {
        status.push(if s(c, &["status"]) == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if get(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    let roles = or_none(roles.into_iter().collect::<Vec<_>>().join(","));
    let address = |ty: &str| {
        or_none(
            arr(node, &["status", "addresses"])
                .iter()
                .find(|a| s(a, &["type"]) == ty)
                .map(|a| s(a, &["address"]))
                .unwrap_or_default(),
        )
    };
    let info = |key: &str| {
        let v = s(node, &["status", "nodeInfo", key]);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v
        }
    };
    vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(roles),
        json!(age(node, now)),
        json!(s(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn service_cells(svc: &Value, now: i64) -> Vec<Value> {
    let cluster_ip = arr(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| s(svc, &["spec", "clusterIP"]));
    let external: Vec<&str> = arr(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ports: Vec<String> = arr(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let protocol = match s(p, &["protocol"]) {
                p if p.is_empty() => "TCP".to_string(),
                p => p,
            };
            let node_port = i(p, &["nodePort"]);
            if node_port > 0 {
                format!("{}:{node_port}/{protocol}", i(p, &["port"]))
            } else {
                format!("{}/{protocol}", i(p, &["port"]))
            }
        })
        .collect();
    vec![
        json!(name(svc)),
        json!(s(svc, &["spec", "type"])),
        json!(or_none(cluster_ip)),
        json!(or_none(external.join(","))),
        json!(or_none(ports.join(","))),
        json!(age(svc, now)),
        json!(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

/// Endpoints as kube prints them: up to three `ip:port`, then ` + N more...`.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(a, &["ip"]));
            }
        } else {
            for p in ports {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                    }
                    if !more {
                        let ip = s(a, &["ip"]);
                        let port = i(p, &["port"]);
                        list.push(if ip.contains(':') {
                            format!("[{ip}]:{port}")
                        } else {
                            format!("{ip}:{port}")
                        });
                    }
                }
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

/// Up to three items joined by commas, then ` + N more...`; `<unset>` for none (kube's
/// `listWithMoreString`, which the EndpointSlice printer uses).
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0usize;
    for item in items {
        if list.len() < MAX {
            list.push(item);
        }
        count += 1;
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".into()
    } else {
        joined
    }
}

/// An EndpointSlice's ports: each port number, else its name, else `*`.
fn format_slice_ports(slice: &Value) -> String {
    list_with_more(arr(slice, &["ports"]).iter().map(|p| {
        match (p.get("port").and_then(Value::as_i64), p.get("name")) {
            (Some(n), _) => n.to_string(),
            (None, Some(Value::String(name))) => name.clone(),
            _ => "*".into(),
        }
    }))
}

/// Every address of every endpoint of an EndpointSlice.
fn format_slice_endpoints(slice: &Value) -> String {
    list_with_more(
        arr(slice, &["endpoints"])
            .iter()
            .flat_map(|e| arr(e, &["addresses"]))
            .map(|a| a.as_str().unwrap_or("").to_string()),
    )
}

/// An IntOrString as kubectl prints it (`2`, `50%`); `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

/// NAME, ROLE (`Kind/name`), AGE, then users, groups and service accounts
/// (`namespace/name`), as kubectl's `printRoleBinding` and `rbac.SubjectsStrings` do.
fn role_binding_cells(binding: &Value, now: i64) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        s(binding, &["roleRef", "kind"]),
        s(binding, &["roleRef", "name"])
    );
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr(binding, &["subjects"]) {
        let name = s(subject, &["name"]);
        match s(subject, &["kind"]).as_str() {
            "User" => users.push(name),
            "Group" => groups.push(name),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{name}", s(subject, &["namespace"])))
            }
            _ => {}
        }
    }
    vec![
        json!(name(binding)),
        json!(role),
        json!(age(binding, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(service_accounts.join(", ")),
    ]
}

fn event_cells(ev: &Value, now: i64) -> Vec<Value> {
    let first = if get(ev, &["firstTimestamp"]).is_some_and(Value::is_string) {
        since(ev, &["firstTimestamp"], now)
    } else {
        since(ev, &["eventTime"], now)
    };
    let mut last = if get(ev, &["lastTimestamp"]).is_some_and(Value::is_string) {
        since(ev, &["lastTimestamp"], now)
    } else {
        first.clone()
    };
    let mut count = i(ev, &["count"]);
    if get(ev, &["series"]).is_some_and(Value::is_object) {
        last = since(ev, &["series", "lastObservedTime"], now);
        count = i(ev, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, &["involvedObject", "kind"]).to_lowercase();
    let target = match s(ev, &["involvedObject", "name"]) {
        n if n.is_empty() => kind,
        n => format!("{kind}/{n}"),
    };
    let first_non_empty = |a: String, b: String| if a.is_empty() { b } else { a };
    let component = first_non_empty(
        s(ev, &["source", "component"]),
        s(ev, &["reportingComponent"]),
    );
    let instance = first_non_empty(s(ev, &["source", "host"]), s(ev, &["reportingInstance"]));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(ev, &["type"])),
        json!(s(ev, &["reason"])),
        json!(target),
        json!(s(ev, &["involvedObject", "fieldPath"])),
        json!(source),
        json!(s(ev, &["message"]).trim()),
        json!(first),
        json!(count),
        json!(name(ev)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::by_kind;

    /// 2024-05-01T10:00:00Z.
    const T0: i64 = 1_714_557_600;

    fn k(kind: &str) -> &'static Kind {
        by_kind(kind).unwrap()
    }

    fn names(kind: &str) -> Vec<(String, u64)> {
        columns(k(kind))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn cells(kind: &str, object: Value, now: i64) -> Vec<Value> {
        let r = row(k(kind), &object, now);
        let cells = r["cells"].as_array().unwrap().clone();
        assert_eq!(cells.len(), columns(k(kind)).as_array().unwrap().len());
        cells
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"})
    }

    #[test]
    fn human_duration_boundaries() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (60, "60s"),
            (119, "119s"),
            (120, "2m"),
            (306, "5m6s"),
            (599, "9m59s"),
            (600, "10m"),
            (601, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5 + 7, "3h5m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 3 * 86400, "2y3d"),
            (8 * 365 * 86400 - 1, "7y364d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(*secs), *want, "{secs}s");
        }
    }

    #[test]
    fn table_shape() {
        let pods = vec![
            json!({"metadata": meta("a")}),
            json!({"metadata": meta("b")}),
        ];
        let t = table(k("Pod"), &pods, "42", Some("tok"), T0 + 30);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][1]["format"], "");
        assert_eq!(t["rows"].as_array().unwrap().len(), 2);
        let r = &t["rows"][1];
        assert_eq!(r["cells"][0], "b");
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(r["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(r["object"]["metadata"], meta("b"));
        let t = table(k("Pod"), &[], "7", Some(""), T0);
        assert_eq!(t["metadata"], json!({"resourceVersion": "7"}));
        assert_eq!(t["rows"], json!([]));
        let t = table(k("Pod"), &[], "7", None, T0);
        assert!(t["metadata"].get("continue").is_none());
        for kind in crate::kinds::KINDS {
            let cols = columns(kind);
            for c in cols.as_array().unwrap() {
                for key in ["name", "type", "format", "description", "priority"] {
                    assert!(c.get(key).is_some(), "{} {key}", kind.kind);
                }
            }
        }
    }

    #[test]
    fn pod_rows() {
        assert_eq!(
            names("Pod"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
            .to_vec()
        );
        let pending = json!({"metadata": meta("p"),
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending"}});
        assert_eq!(
            cells("Pod", pending, T0 + 306),
            vec![
                json!("p"),
                json!("0/2"),
                json!("Pending"),
                json!("0"),
                json!("5m6s"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let running = json!({"metadata": meta("p"),
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}],
                     "readinessGates": [{"conditionType": "x/ready"}]},
            "status": {"phase": "Running", "podIP": "10.1.0.5",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "x/ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T10:05:00Z"}}},
                    {"name": "b", "ready": true, "restartCount": 1, "state": {"running": {}}}]}});
        let c = cells("Pod", running, T0 + 600);
        assert_eq!(c[1], "2/2");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "3 (5m ago)");
        assert_eq!(c[4], "10m");
        assert_eq!(c[5], "10.1.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c[8], "0/1");
        let crash = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells("Pod", crash, T0);
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("0/1"), json!("CrashLoopBackOff"), json!("4"))
        );
        let exited = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 3}}}]}});
        assert_eq!(cells("Pod", exited, T0)[2], "ExitCode:3");
        let mut m = meta("p");
        m["deletionTimestamp"] = json!("2024-05-01T10:01:00Z");
        let deleting = json!({"metadata": m, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "reason": "Evicted"}});
        assert_eq!(cells("Pod", deleting.clone(), T0)[2], "Terminating");
        let mut done = deleting;
        done["status"]["phase"] = json!("Succeeded");
        done["status"]["reason"] = json!(null);
        assert_eq!(cells("Pod", done, T0)[2], "Succeeded");
        let no_time = json!({"metadata": {"name": "x"}});
        assert_eq!(cells("Pod", no_time, T0)[4], "<unknown>");
    }

    #[test]
    fn deployment_and_replica_set_rows() {
        assert_eq!(
            names("Deployment")
                .into_iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let d = json!({"metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                     {"key": "zz", "operator": "DoesNotExist"}]},
                "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("Deployment", d, T0 + 3 * 86400),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("3d"),
                json!("a,b"),
                json!("nginx,busybox:1"),
                json!("app=web,env in (dev,prod),tier=fe,!zz")
            ]
        );
        assert_eq!(
            names("ReplicaSet")
                .into_iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let rs = json!({"metadata": meta("web-abc"),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}]}}},
            "status": {"replicas": 2}});
        assert_eq!(
            cells("ReplicaSet", rs, T0 + 45),
            vec![
                json!("web-abc"),
                json!(2),
                json!(2),
                json!(0),
                json!("45s"),
                json!("a"),
                json!("nginx"),
                json!("app=web")
            ]
        );
    }

    #[test]
    fn node_rows() {
        assert_eq!(names("Node")[4].0, "Version");
        assert_eq!(names("Node")[5], ("Internal-IP".to_string(), 1));
        let mut m = meta("n1");
        m["labels"] = json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true", "kubernetes.io/hostname": "n1"});
        let n = json!({"metadata": m, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian", "kernelVersion": "6.1",
                             "containerRuntimeVersion": "navarch://0.1"}}});
        assert_eq!(
            cells("Node", n, T0 + 9 * 3600),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,etcd"),
                json!("9h"),
                json!("v1.37.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1"),
                json!("navarch://0.1")
            ]
        );
        let unknown = json!({"metadata": meta("n2"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let c = cells("Node", unknown, T0);
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[9].clone()),
            (json!("NotReady"), json!("<none>"), json!("<unknown>"))
        );
        let bare = json!({"metadata": meta("n3")});
        assert_eq!(cells("Node", bare, T0)[1], "Unknown");
    }

    #[test]
    fn service_and_endpoints_rows() {
        assert_eq!(
            names("Service")
                .into_iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let s = json!({"metadata": meta("web"), "spec": {"type": "NodePort", "clusterIP": "10.96.0.7",
            "selector": {"app": "web", "a": "b"},
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("Service", s, T0 + 120),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.7"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("2m"),
                json!("a=b,app=web")
            ]
        );
        let headless =
            json!({"metadata": meta("h"), "spec": {"type": "ClusterIP", "clusterIPs": ["None"]}});
        let c = cells("Service", headless, T0);
        assert_eq!(
            (c[2].clone(), c[4].clone(), c[6].clone()),
            (json!("None"), json!("<none>"), json!("<none>"))
        );

        assert_eq!(
            names("Endpoints")
                .into_iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            ["Name", "Endpoints", "Age"]
        );
        let ep = |subsets: Value| json!({"metadata": meta("web"), "subsets": subsets});
        assert_eq!(cells("Endpoints", ep(json!(null)), T0)[1], "<none>");
        assert_eq!(
            cells(
                "Endpoints",
                ep(
                    json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]}])
                ),
                T0
            )[1],
            "10.0.0.1:80,10.0.0.2:80"
        );
        let many = ep(
            json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "fd00::4"}],
            "ports": [{"port": 80}, {"port": 443}]}]),
        );
        assert_eq!(
            cells("Endpoints", many, T0)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 5 more..."
        );
        let v6 = ep(
            json!([{"addresses": [{"ip": "fd00::4"}], "ports": [{"port": 80}]}, {"addresses": [{"ip": "10.0.0.9"}]}]),
        );
        assert_eq!(cells("Endpoints", v6, T0)[1], "[fd00::4]:80,10.0.0.9");
    }

    #[test]
    fn endpoint_slice_and_pdb_rows() {
        let cols = |kind: &str| names(kind).into_iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(
            cols("EndpointSlice"),
            ["Name", "AddressType", "Ports", "Endpoints", "Age"]
        );
        let slice = json!({"metadata": meta("web-abcde"), "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                          {"addresses": ["10.0.0.4"]}, {"addresses": ["10.0.0.5"]}]});
        assert_eq!(
            cells("EndpointSlice", slice, T0 + 60),
            vec![
                json!("web-abcde"),
                json!("IPv4"),
                json!("80,metrics,*"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."),
                json!("60s")
            ]
        );
        let empty = json!({"metadata": meta("e"), "addressType": "IPv6", "endpoints": null});
        let c = cells("EndpointSlice", empty, T0);
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("<unset>"), json!("<unset>"))
        );
        let four = json!({"metadata": meta("f"), "addressType": "IPv4",
            "ports": [{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}], "endpoints": []});
        assert_eq!(cells("EndpointSlice", four, T0)[2], "1,2,3 + 1 more...");

        assert_eq!(
            cols("PodDisruptionBudget"),
            [
                "Name",
                "Min Available",
                "Max Unavailable",
                "Allowed Disruptions",
                "Age"
            ]
        );
        let pdb = json!({"metadata": meta("web"), "spec": {"minAvailable": 2, "selector": {}},
            "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("PodDisruptionBudget", pdb, T0 + 3600),
            vec![
                json!("web"),
                json!("2"),
                json!("N/A"),
                json!(1),
                json!("60m")
            ]
        );
        let pct = json!({"metadata": meta("db"), "spec": {"maxUnavailable": "25%"}});
        let c = cells("PodDisruptionBudget", pct, T0);
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("N/A"), json!("25%"), json!(0))
        );
    }

    #[test]
    fn namespace_lease_runtime_class_event_rows() {
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": "2024-05-01T10:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(
            cells("Namespace", ns, T0 + 5),
            vec![json!("kube-system"), json!("Active"), json!("5s")]
        );
        assert_eq!(
            names("Lease").into_iter().map(|c| c.0).collect::<Vec<_>>(),
            ["Name", "Holder", "Age"]
        );
        assert_eq!(
            names("RuntimeClass"),
            [("Name", 0), ("Handler", 0), ("Age", 0)]
                .map(|(n, p)| (n.to_string(), p))
                .to_vec()
        );
        let rc = json!({"metadata": {"name": "oci", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "handler": "oci"});
        assert_eq!(
            cells("RuntimeClass", rc, T0 + 3 * 86400),
            vec![json!("oci"), json!("oci"), json!("3d")]
        );
        let lease = json!({"metadata": meta("n1"), "spec": {"holderIdentity": "n1-abc"}});
        assert_eq!(
            cells("Lease", lease, T0 + 60 * 200),
            vec![json!("n1"), json!("n1-abc"), json!("3h20m")]
        );

        assert_eq!(
            names("Event"),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
            .to_vec()
        );
        assert_eq!(columns(k("Event"))[0]["format"], "");
        let ev = json!({"metadata": meta("web.1"), "type": "Normal", "reason": "Pulled",
            "message": " Pulled image \"nginx\" \n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{nginx}"},
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:04:00Z", "count": 3});
        assert_eq!(
            cells("Event", ev, T0 + 300),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{nginx}"),
                json!("kubelet, n1"),
                json!("Pulled image \"nginx\""),
                json!("5m"),
                json!(3),
                json!("web.1")
            ]
        );
        let ev2 = json!({"metadata": meta("x.2"), "type": "Warning", "reason": "R",
            "involvedObject": {"kind": "Node"}, "reportingComponent": "navarch-controller",
            "eventTime": "2024-05-01T10:00:00.500000Z"});
        let c = cells("Event", ev2, T0 + 10);
        assert_eq!(
            (
                c[0].clone(),
                c[3].clone(),
                c[5].clone(),
                c[7].clone(),
                c[8].clone()
            ),
            (
                json!("9s"),
                json!("node"),
                json!("navarch-controller"),
                json!("9s"),
                json!(1)
            )
        );
    }

    #[test]
    fn rbac_rows() {
        for kind in ["Role", "ClusterRole"] {
            assert_eq!(
                names(kind),
                [("Name".to_string(), 0), ("Created At".to_string(), 0)]
            );
            assert_eq!(columns(k(kind))[1]["type"], "date");
        }
        let role = json!({"metadata": {"name": "pod-reader", "creationTimestamp": "2024-05-01T10:00:00Z"}, "rules": []});
        assert_eq!(
            cells("Role", role, T0 + 60),
            vec![json!("pod-reader"), json!("2024-05-01T10:00:00Z")]
        );
        let offset =
            json!({"metadata": {"name": "c", "creationTimestamp": "2024-05-01T12:00:00+02:00"}});
        assert_eq!(
            cells("ClusterRole", offset, T0)[1],
            json!("2024-05-01T10:00:00Z")
        );
        assert_eq!(
            cells("ClusterRole", json!({"metadata": {"name": "c"}}), T0)[1],
            json!("0001-01-01T00:00:00Z")
        );
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            assert_eq!(
                names(kind),
                [
                    ("Name", 0),
                    ("Role", 0),
                    ("Age", 0),
                    ("Users", 1),
                    ("Groups", 1),
                    ("ServiceAccounts", 1)
                ]
                .map(|(n, p)| (n.to_string(), p))
                .to_vec()
            );
        }
        let binding = json!({"metadata": meta("devs"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "dev"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                {"kind": "ServiceAccount", "name": "local"}]});
        assert_eq!(
            cells("RoleBinding", binding, T0 + 90),
            vec![
                json!("devs"),
                json!("ClusterRole/edit"),
                json!("90s"),
                json!("alice, bob"),
                json!("dev"),
                json!("build/ci, /local")
            ]
        );
        let empty = json!({"metadata": meta("e"), "roleRef": {"kind": "Role", "name": "r"}});
        assert_eq!(
            cells("ClusterRoleBinding", empty, T0)[3..],
            [json!(""), json!(""), json!("")]
        );
    }
}
