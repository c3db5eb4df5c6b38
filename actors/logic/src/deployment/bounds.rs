//! A Deployment's parameters with the API's defaults, and the rolling update's fenceposts
//! (Kubernetes' `ResolveFenceposts`, `MaxSurge`, `MaxUnavailable`).

use serde_json::Value;

/// The most `progressDeadlineSeconds` and `revisionHistoryLimit` can be (`math.MaxInt32`):
/// Kubernetes reads it as "no deadline" and "keep every revision".
const UNLIMITED: i64 = i32::MAX as i64;

/// The API's default for `maxSurge` and `maxUnavailable`.
const DEFAULT_FENCEPOST: &str = "25%";

/// The rolling update's fenceposts for `replicas` desired pods: how many pods may exist
/// above `replicas` (`maxSurge`, a percentage rounded up) and how many may be unavailable
/// below it (`maxUnavailable`, a percentage rounded down). When both resolve to zero,
/// `maxUnavailable` becomes 1 so a rollout can always move. An absent (`null`) value is
/// the API's default, 25%; a malformed one (a string that is not a percentage) counts as 0,
/// as validation refuses it anyway. The unavailable count is not capped at `replicas` here
/// (the controller caps it, as Kubernetes' `MaxUnavailable` does).
pub fn rolling_bounds(replicas: i64, max_surge: &Value, max_unavailable: &Value) -> (i64, i64) {
    let surge = scaled_value(max_surge, replicas, true);
    let mut unavailable = scaled_value(max_unavailable, replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// An int-or-percent against `total` (`GetScaledValueFromIntOrPercent`).
fn scaled_value(value: &Value, total: i64, round_up: bool) -> i64 {
    match value {
        Value::Null => scaled_value(&Value::String(DEFAULT_FENCEPOST.into()), total, round_up),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let product = i128::from(percent) * i128::from(total);
            let scaled = if round_up {
                -(-product).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i64::try_from(scaled).unwrap_or(0)
        }
        _ => 0,
    }
}

/// What the controller reads from a Deployment's spec, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Params {
    /// `spec.replicas` (default 1).
    pub replicas: i64,
    /// `spec.strategy.type == Recreate` (anything else rolls).
    pub recreate: bool,
    /// `MaxSurge`: 0 for Recreate.
    pub max_surge: i64,
    /// `MaxUnavailable`: 0 for Recreate and for zero replicas, at most `replicas`.
    pub max_unavailable: i64,
    /// `spec.revisionHistoryLimit` (default 10; `None` keeps everything).
    pub history_limit: Option<i64>,
    /// `spec.progressDeadlineSeconds` (default 600; `None`: no deadline).
    pub progress_deadline: Option<i64>,
    /// `spec.minReadySeconds` (default 0).
    pub min_ready_seconds: i64,
    /// `spec.paused`.
    pub paused: bool,
}

impl Params {
    pub fn of(deployment: &Value) -> Params {
        let spec = &deployment["spec"];
        let replicas = spec["replicas"].as_i64().unwrap_or(1).max(0);
        let recreate = spec["strategy"]["type"].as_str() == Some("Recreate");
        let (max_surge, max_unavailable) = if recreate {
            (0, 0)
        } else {
            let rolling = &spec["strategy"]["rollingUpdate"];
            let (surge, unavailable) =
                rolling_bounds(replicas, &rolling["maxSurge"], &rolling["maxUnavailable"]);
            let unavailable = if replicas == 0 {
                0
            } else {
                unavailable.min(replicas)
            };
            (surge, unavailable)
        };
        let limited = |v: &Value, default: i64| match v.as_i64() {
            None => Some(default),
            Some(UNLIMITED) => None,
            Some(n) => Some(n.max(0)),
        };
        Params {
            replicas,
            recreate,
            max_surge,
            max_unavailable,
            history_limit: limited(&spec["revisionHistoryLimit"], 10),
            progress_deadline: limited(&spec["progressDeadlineSeconds"], 600),
            min_ready_seconds: spec["minReadySeconds"].as_i64().unwrap_or(0).max(0),
            paused: spec["paused"].as_bool().unwrap_or(false),
        }
    }

    /// `replicas + MaxSurge`: the `max-replicas` annotation.
    pub fn max_replicas(&self) -> i64 {
        self.replicas + self.max_surge
    }

    /// `replicas - MaxUnavailable`: the availability a rollout keeps.
    pub fn min_available(&self) -> i64 {
        self.replicas - self.max_unavailable
    }
}
