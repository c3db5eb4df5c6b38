//! Validation of a PodSpec's scheduling fields the scheduler implements: node affinity
//! (required and preferred terms) and host ports, as Kubernetes' `ValidateNodeSelector`,
//! `ValidatePreferredSchedulingTerms` and `AccumulateUniqueHostPorts` word them. Pod
//! affinity and anti-affinity are not in the supported-fields table, so they are refused
//! before these run.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{
    array_at, dns1123_subdomain, duplicate, forbidden, int_at, invalid, is_ip, label_value,
    push_invalid, qualified_name, str_at,
};
use crate::status::Cause;

/// `spec.affinity.nodeAffinity` of a PodSpec at `path`.
pub(super) fn validate_node_affinity(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(na) = spec
        .get("affinity")
        .and_then(|a| a.get("nodeAffinity"))
        .filter(|v| v.is_object())
    else {
        return;
    };
    let np = format!("{path}.affinity.nodeAffinity");
    if let Some(required) = na
        .get("requiredDuringSchedulingIgnoredDuringExecution")
        .filter(|v| !v.is_null())
    {
        let rp = format!("{np}.requiredDuringSchedulingIgnoredDuringExecution");
        let terms = array_at(required, "nodeSelectorTerms");
        if terms.is_empty() {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("{rp}.nodeSelectorTerms"),
                "Required value: must have at least one node selector term",
            ));
        }
        for (i, term) in terms.iter().enumerate() {
            validate_term(term, &format!("{rp}.nodeSelectorTerms[{i}]"), out);
        }
    }
    let pp = format!("{np}.preferredDuringSchedulingIgnoredDuringExecution");
    for (i, t) in array_at(na, "preferredDuringSchedulingIgnoredDuringExecution")
        .iter()
        .enumerate()
    {
        let weight = int_at(t, "weight").unwrap_or(0);
        if !(1..=100).contains(&weight) {
            out.push(invalid(
                format!("{pp}[{i}].weight"),
                &json!(weight),
                "must be in the range 1-100",
            ));
        }
        let empty = json!({});
        let preference = t.get("preference").unwrap_or(&empty);
        validate_term(preference, &format!("{pp}[{i}].preference"), out);
    }
}

/// One `NodeSelectorTerm`: label requirements and field requirements.
fn validate_term(term: &Value, path: &str, out: &mut Vec<Cause>) {
    for (j, req) in array_at(term, "matchExpressions").iter().enumerate() {
        validate_label_requirement(req, &format!("{path}.matchExpressions[{j}]"), out);
    }
    for (j, req) in array_at(term, "matchFields").iter().enumerate() {
        validate_field_requirement(req, &format!("{path}.matchFields[{j}]"), out);
    }
}

fn validate_label_requirement(req: &Value, path: &str, out: &mut Vec<Cause>) {
    let values = array_at(req, "values");
    let operator = str_at(req, "operator").unwrap_or("");
    match operator {
        "In" | "NotIn" if values.is_empty() => out.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.values"),
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !values.is_empty() => out.push(forbidden(
            format!("{path}.values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "Gt" | "Lt" if values.len() != 1 => out.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.values"),
            "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        other => out.push(invalid(
            format!("{path}.operator"),
            &json!(other),
            "not a valid selector operator",
        )),
    }
    let key = str_at(req, "key").unwrap_or("");
    push_invalid(
        out,
        &format!("{path}.key"),
        &json!(key),
        qualified_name(key),
    );
    for (k, v) in values.iter().enumerate() {
        let s = v.as_str().unwrap_or("");
        push_invalid(out, &format!("{path}.values[{k}]"), v, label_value(s));
    }
}

/// A `matchFields` requirement: only `metadata.name`, `In` or `NotIn` one node name.
fn validate_field_requirement(req: &Value, path: &str, out: &mut Vec<Cause>) {
    let values = array_at(req, "values");
    match str_at(req, "operator").unwrap_or("") {
        "In" | "NotIn" => {
            if values.len() != 1 {
                out.push(Cause::new(
                    "FieldValueRequired",
                    format!("{path}.values"),
                    "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                ));
            }
        }
        other => out.push(invalid(
            format!("{path}.operator"),
            &json!(other),
            "not a valid selector operator",
        )),
    }
    let key = str_at(req, "key").unwrap_or("");
    if key != "metadata.name" {
        out.push(invalid(
            format!("{path}.key"),
            &json!(key),
            "not a valid field selector key",
        ));
        return;
    }
    for (k, v) in values.iter().enumerate() {
        let s = v.as_str().unwrap_or("");
        push_invalid(out, &format!("{path}.values[{k}]"), v, dns1123_subdomain(s));
    }
}

/// A container port's `hostPort` (1-65535) and `hostIP` (an IP address; Kubernetes does not
/// check it, navarch's scheduler compares it, so it must parse).
pub(super) fn validate_host_port(port: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(hp) = int_at(port, "hostPort").filter(|p| *p != 0) {
        if !(1..=65535).contains(&hp) {
            out.push(invalid(
                format!("{path}.hostPort"),
                &json!(hp),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    if let Some(ip) = str_at(port, "hostIP").filter(|s| !s.is_empty()) {
        if !is_ip(ip) {
            out.push(invalid(
                format!("{path}.hostIP"),
                &json!(ip),
                "must be a valid IP address",
            ));
        }
    }
}

/// No two containers' ports may claim the same `protocol/hostIP/hostPort`.
pub(super) fn validate_unique_host_ports(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut seen = BTreeSet::new();
    for (ci, c) in array_at(spec, "containers").iter().enumerate() {
        for (pi, p) in array_at(c, "ports").iter().enumerate() {
            let Some(hp) = int_at(p, "hostPort").filter(|p| *p != 0) else {
                continue;
            };
            let claim = format!(
                "{}/{}/{hp}",
                str_at(p, "protocol").unwrap_or("TCP"),
                str_at(p, "hostIP").unwrap_or("")
            );
            if !seen.insert(claim.clone()) {
                out.push(duplicate(
                    format!("{path}.containers[{ci}].ports[{pi}].hostPort"),
                    &json!(claim),
                ));
            }
        }
    }
}
