//! Defaults and validation of `policy/v1` PodDisruptionBudgets, as Kubernetes'
//! `pkg/apis/policy/validation` words them: `minAvailable` or `maxUnavailable` (not both),
//! each a non-negative integer or a percentage of at most 100%, the selector's syntax, the
//! unhealthy pod eviction policy, and a status of non-negative counts.

use serde_json::{json, Map, Value};

use super::{int_or_percent, invalid, is_empty, unsupported, validate_selector_syntax};
use crate::status::Cause;

const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// The status a new budget starts with, as Kubernetes' Go types write an empty one: the four
/// counts at zero.
pub(super) fn default_budget(obj: &mut Map<String, Value>) {
    if obj.get("status").is_none_or(is_empty) {
        obj.insert(
            "status".into(),
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
        );
    }
}

/// Validates a budget's spec.
pub(super) fn validate_budget(spec: &Value, out: &mut Vec<Cause>) {
    let set = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    if set("minAvailable") && set("maxUnavailable") {
        out.push(invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for key in ["minAvailable", "maxUnavailable"] {
        let path = format!("spec.{key}");
        match spec.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ (Value::Number(_) | Value::String(_))) => {
                if let Some((n, true)) = int_or_percent(spec, key, "spec", out) {
                    if n > 100 {
                        out.push(invalid(&path, v, "must not be greater than 100%"));
                    }
                }
            }
            Some(v) => out.push(invalid(
                &path,
                v,
                "must be an integer or percentage (e.g '5%')",
            )),
        }
    }
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        validate_selector_syntax(sel, "spec.selector", out);
    }
    if let Some(p) = spec
        .get("unhealthyPodEvictionPolicy")
        .filter(|p| !p.is_null())
    {
        if !p
            .as_str()
            .is_some_and(|s| UNHEALTHY_POD_EVICTION_POLICIES.contains(&s))
        {
            out.push(unsupported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                UNHEALTHY_POD_EVICTION_POLICIES,
            ));
        }
    }
}

/// Validates a budget's status (what the disruption controller and evictions write): the
/// counts are never negative.
pub(super) fn validate_budget_status(status: &Value, out: &mut Vec<Cause>) {
    for key in [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ] {
        if let Some(n) = status.get(key).and_then(Value::as_i64) {
            if n < 0 {
                out.push(invalid(
                    format!("status.{key}"),
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    let mut types = std::collections::BTreeSet::new();
    for (i, c) in super::array_at(status, "conditions").iter().enumerate() {
        let cp = format!("status.conditions[{i}]");
        match super::str_at(c, "type").filter(|t| !t.is_empty()) {
            None => out.push(Cause::required(format!("{cp}.type"))),
            Some(t) => {
                if !types.insert(t) {
                    out.push(super::duplicate(format!("{cp}.type"), &json!(t)));
                }
            }
        }
        if super::str_at(c, "lastTransitionTime").is_none_or(str::is_empty) {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("{cp}.lastTransitionTime"),
                "Required value: must be set",
            ));
        }
        match super::str_at(c, "status") {
            Some("True" | "False" | "Unknown") => {}
            Some(s) => out.push(unsupported(
                format!("{cp}.status"),
                &json!(s),
                &["False", "True", "Unknown"],
            )),
            None => out.push(Cause::required(format!("{cp}.status"))),
        }
        if super::str_at(c, "reason").is_none_or(str::is_empty) {
            out.push(Cause::required(format!("{cp}.reason")));
        }
    }
}
