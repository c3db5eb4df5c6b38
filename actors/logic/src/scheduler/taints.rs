//! Taints and tolerations parsed once from Kubernetes JSON, and Kubernetes' rule of which
//! toleration tolerates which taint (shared by the scheduler and node lifecycle evictions).

use serde_json::Value;

use crate::meta;

/// The taints Kubernetes' node lifecycle sets (and the scheduler reads).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// A taint's effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    /// Anything else (never tolerated by an effect-specific toleration, never filtered).
    Other(String),
}

impl Effect {
    pub fn parse(s: &str) -> Effect {
        match s {
            "NoSchedule" => Effect::NoSchedule,
            "PreferNoSchedule" => Effect::PreferNoSchedule,
            "NoExecute" => Effect::NoExecute,
            other => Effect::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Effect::NoSchedule => "NoSchedule",
            Effect::PreferNoSchedule => "PreferNoSchedule",
            Effect::NoExecute => "NoExecute",
            Effect::Other(s) => s,
        }
    }
}

/// One entry of a node's `spec.taints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
    /// `timeAdded` in Unix seconds (Kubernetes sets it on NoExecute taints).
    pub time_added: Option<i64>,
}

impl Taint {
    pub fn from_value(t: &Value) -> Taint {
        Taint {
            key: str_at(t, "key").to_string(),
            value: str_at(t, "value").to_string(),
            effect: Effect::parse(str_at(t, "effect")),
            time_added: t["timeAdded"].as_str().and_then(meta::parse_rfc3339),
        }
    }

    /// A node's `spec.taints`.
    pub fn of_node(node: &Value) -> Vec<Taint> {
        node["spec"]["taints"]
            .as_array()
            .map(|a| a.iter().map(Taint::from_value).collect())
            .unwrap_or_default()
    }

    /// Kubernetes' `{key: value}` form used in scheduling messages.
    pub fn describe(&self) -> String {
        format!("{{{}: {}}}", self.key, self.value)
    }
}

/// A toleration's operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TolerationOp {
    /// `Equal`, also when the operator is empty.
    Equal,
    Exists,
    /// An operator this version does not know: tolerates nothing.
    Other,
}

/// One entry of a pod's `spec.tolerations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    /// Empty means every key (with `Exists`).
    pub key: String,
    pub operator: TolerationOp,
    pub value: String,
    /// `None` means every effect.
    pub effect: Option<Effect>,
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    pub fn from_value(t: &Value) -> Toleration {
        let operator = match str_at(t, "operator") {
            "" | "Equal" => TolerationOp::Equal,
            "Exists" => TolerationOp::Exists,
            _ => TolerationOp::Other,
        };
        let effect = match str_at(t, "effect") {
            "" => None,
            e => Some(Effect::parse(e)),
        };
        Toleration {
            key: str_at(t, "key").to_string(),
            operator,
            value: str_at(t, "value").to_string(),
            effect,
            toleration_seconds: t["tolerationSeconds"].as_i64(),
        }
    }

    /// A pod's `spec.tolerations`.
    pub fn of_pod(pod: &Value) -> Vec<Toleration> {
        pod["spec"]["tolerations"]
            .as_array()
            .map(|a| a.iter().map(Toleration::from_value).collect())
            .unwrap_or_default()
    }

    /// Kubernetes' `ToleratesTaint`: the effect (when set) and the key (when set) must
    /// match; `Exists` then tolerates any value, `Equal` only the same value.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerates_parts(&taint.key, &taint.value, &taint.effect)
    }

    /// [`Toleration::tolerates`] for a taint given by its parts.
    pub fn tolerates_parts(&self, key: &str, value: &str, effect: &Effect) -> bool {
        if self.effect.as_ref().is_some_and(|e| e != effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != key {
            return false;
        }
        match self.operator {
            TolerationOp::Equal => self.value == value,
            TolerationOp::Exists => true,
            TolerationOp::Other => false,
        }
    }
}

/// Whether any of `tolerations` tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let taint = |k: &str, v: &str, e: &str| {
            Taint::from_value(&json!({"key": k, "value": v, "effect": e}))
        };
        let tol = |t: Value| Toleration::from_value(&t);
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, Taint, bool)> = vec![
            ("equal key value effect", json!({"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"}), taint("a", "1", "NoSchedule"), true),
            ("empty operator is Equal", json!({"key": "a", "value": "1"}), taint("a", "1", "NoExecute"), true),
            ("equal wrong value", json!({"key": "a", "value": "2"}), taint("a", "1", "NoSchedule"), false),
            ("equal empty value vs empty", json!({"key": "a", "operator": "Equal"}), taint("a", "", "NoSchedule"), true),
            ("exists any value", json!({"key": "a", "operator": "Exists"}), taint("a", "x", "NoSchedule"), true),
            ("exists other key", json!({"key": "b", "operator": "Exists"}), taint("a", "x", "NoSchedule"), false),
            ("empty key exists tolerates all", json!({"operator": "Exists"}), taint("z", "q", "NoExecute"), true),
            ("empty key exists with effect", json!({"operator": "Exists", "effect": "NoSchedule"}), taint("z", "q", "NoExecute"), false),
            ("effect mismatch", json!({"key": "a", "operator": "Exists", "effect": "NoExecute"}), taint("a", "", "NoSchedule"), false),
            ("unknown operator", json!({"key": "a", "operator": "Gt", "value": "1"}), taint("a", "1", "NoSchedule"), false),
        ];
        for (name, t, taint, want) in cases {
            assert_eq!(tol(t).tolerates(&taint), want, "{name}");
        }
    }

    #[test]
    fn taints_print_like_kubernetes() {
        let t = Taint::from_value(
            &json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(t.describe(), "{node.kubernetes.io/unreachable: }");
        assert_eq!(t.time_added, meta::parse_rfc3339("2026-01-01T00:00:00Z"));
        let t = Taint::from_value(&json!({"key": "gpu", "value": "true", "effect": "NoSchedule"}));
        assert_eq!(t.describe(), "{gpu: true}");
    }
}
