//! PodDisruptionBudgets: which pods a budget covers, the status Kubernetes' disruption
//! controller computes for it ([`status`]), and what an eviction does against the budgets
//! that cover its pod ([`evict`]). Pure: the disruption controller calls [`status`] and
//! writes the result to `poddisruptionbudgets/status`; the API server's `pods/eviction`
//! calls both and writes the charged budget in the transaction that deletes the pod.
//!
//! The rules, as Kubernetes' `pkg/controller/disruption` and the eviction REST handler
//! (`pkg/registry/core/pod/storage/eviction.go`) have them:
//! - a budget selects the pods of its namespace its selector matches (a null selector
//!   matches none, an empty one all);
//! - `minAvailable: N` wants N healthy pods out of all selected ones; a percentage of
//!   `minAvailable` and any `maxUnavailable` are taken of the pods' controllers' scale
//!   (a ReplicaSet's replicas, or its Deployment's), rounding up; pods without a
//!   controller are left out of that count and reported;
//! - a pod is healthy when it is Ready, not being deleted, and not recorded in
//!   `disruptedPods` by an eviction in the last two minutes;
//! - `disruptionsAllowed = currentHealthy - desiredHealthy`, never below zero, and zero
//!   while the budget expects no pods;
//! - an eviction of a pod that is Pending, finished or already being deleted ignores
//!   budgets; more than one budget is a 500; an unready pod is let go without charging
//!   the budget if the policy says `AlwaysAllow`, or if the budget is healthy; otherwise
//!   the budget must allow a disruption (429 if not), is charged one, and records the pod.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::selector::LabelSelector;
use crate::status::{ApiError, Cause};
use crate::table::parse_time;

/// The condition type a budget's status carries.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// How long an eviction's entry in `disruptedPods` keeps its pod out of the healthy count
/// (Kubernetes' `DeletionTimeout`): the pod should be gone by then.
pub const DELETION_TIMEOUT_SECONDS: i64 = 120;
/// Evictions refuse to charge a budget recording more pods than this (Kubernetes'
/// `MaxDisruptedPodSize`): the disruption controller is not keeping up.
pub const MAX_DISRUPTED_PODS: usize = 2000;
/// The message of an eviction refused for its budget.
pub const VIOLATION_MESSAGE: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";
/// The cause type of such a refusal.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";

/// What a budget's status is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The pods of the budget's namespace ([`status`] applies the selector).
    pub pods: &'a [Value],
    /// The ReplicaSets and Deployments of that namespace: the pods' controllers and theirs,
    /// whose `spec.replicas` are the expected scale.
    pub controllers: &'a [Value],
    /// The current time, Unix seconds.
    pub now: i64,
}

/// A computed status and what else the computation found.
#[derive(Clone, Debug, PartialEq)]
pub struct Computed {
    /// The budget's new `status`, to be written to `poddisruptionbudgets/status`.
    pub status: Value,
    /// Selected pods without a controller, left out of a percentage's or `maxUnavailable`'s
    /// expected count (the controller reports them as a warning event, `UnmanagedPods`).
    pub unmanaged_pods: Vec<String>,
    /// When an entry of `disruptedPods` expires (Unix seconds): compute again then.
    pub recheck_at: Option<i64>,
    /// Why the status could not be computed; the status then allows no disruption and its
    /// condition says `SyncFailed` (Kubernetes' fail-safe).
    pub error: Option<String>,
}

/// Whether `pod` is Ready (its `Ready` condition is `True`): Kubernetes' health of a pod.
pub fn is_pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn is_terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

/// The budget's selector as Kubernetes reads it: `Ok(None)` for a null selector (it selects
/// nothing), an error for one that does not parse.
fn selector(pdb: &Value) -> Result<Option<LabelSelector>, String> {
    match &pdb["spec"]["selector"] {
        Value::Null => Ok(None),
        s => LabelSelector::from_object(s)
            .map(Some)
            .map_err(|e| format!("invalid selector: {}", e.0)),
    }
}

/// Whether the budget covers `pod`: same namespace, and its selector matches the pod's
/// labels. A budget whose selector is null or invalid covers nothing.
pub fn selects(pdb: &Value, pod: &Value) -> bool {
    pdb["metadata"]["namespace"] == pod["metadata"]["namespace"]
        && matches!(selector(pdb), Ok(Some(s)) if s.matches(&pod["metadata"]["labels"]))
}

/// An IntOrString of a budget scaled to `total`, percentages rounded up.
fn scaled(v: &Value, total: i64) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
        Value::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .ok_or_else(|| format!("invalid type: string {s:?} is not a percentage"))?
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            Ok((pct * total + 99) / 100)
        }
        other => Err(format!("invalid value for IntOrString: {other}")),
    }
}

/// The `ownerReferences` entry with `controller: true`.
fn controller_of(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The controller `reference` names among `controllers`: same kind, group, name and uid.
fn find<'a>(controllers: &'a [Value], reference: &Value) -> Option<&'a Value> {
    let group = group_of(reference["apiVersion"].as_str().unwrap_or(""));
    controllers.iter().find(|c| {
        c["kind"] == reference["kind"]
            && group_of(c["apiVersion"].as_str().unwrap_or("")) == group
            && c["metadata"]["name"] == reference["name"]
            && c["metadata"]["uid"] == reference["uid"]
    })
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// The expected number of pods: the sum of the scales of the pods' controllers, a
/// ReplicaSet owned by a Deployment counting as the Deployment. Pods without a controller
/// are returned apart; a controller that cannot be found is an error.
fn expected_scale(pods: &[&Value], controllers: &[Value]) -> Result<(i64, Vec<String>), String> {
    let mut scales: BTreeMap<String, i64> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let Some(reference) = controller_of(pod) else {
            unmanaged.push(name.to_string());
            continue;
        };
        let Some(owner) = find(controllers, reference) else {
            return Err(format!("found no controllers for pod {name:?}"));
        };
        // A Deployment's ReplicaSet is scaled by the Deployment (when it is there).
        let scaled_by = match controller_of(owner) {
            Some(r) if r["kind"] == "Deployment" => find(controllers, r).unwrap_or(owner),
            _ => owner,
        };
        let uid = scaled_by["metadata"]["uid"].as_str().unwrap_or("");
        scales.insert(uid.to_string(), replicas(scaled_by));
    }
    Ok((scales.values().sum(), unmanaged))
}

/// `(expectedPods, desiredHealthy, unmanaged pods)` for the budget's spec.
fn expected_and_desired(
    spec: &Value,
    pods: &[&Value],
    controllers: &[Value],
) -> Result<(i64, i64, Vec<String>), String> {
    if let Some(max) = spec.get("maxUnavailable").filter(|v| !v.is_null()) {
        let (expected, unmanaged) = expected_scale(pods, controllers)?;
        let desired = (expected - scaled(max, expected)?).max(0);
        return Ok((expected, desired, unmanaged));
    }
    match spec.get("minAvailable") {
        Some(Value::Number(n)) => Ok((
            pods.len() as i64,
            n.as_i64().ok_or("invalid minAvailable")?,
            Vec::new(),
        )),
        Some(min @ Value::String(_)) => {
            let (expected, unmanaged) = expected_scale(pods, controllers)?;
            Ok((expected, scaled(min, expected)?, unmanaged))
        }
        // policy/v1 defaults neither: such a budget expects nothing and allows nothing.
        _ => Ok((0, 0, Vec::new())),
    }
}

/// The entries of `disruptedPods` still in force: pods not yet being deleted whose
/// eviction is under two minutes old. Also the time the first of them expires.
fn disrupted_pods(
    pods: &[&Value],
    recorded: &Value,
    now: i64,
) -> (Map<String, Value>, Option<i64>) {
    let mut kept = Map::new();
    let mut recheck: Option<i64> = None;
    let Some(recorded) = recorded.as_object() else {
        return (kept, recheck);
    };
    for pod in pods.iter().filter(|p| !is_terminating(p)) {
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let Some(at) = recorded.get(name) else {
            continue;
        };
        let Some(t) = at.as_str().and_then(parse_time) else {
            continue;
        };
        let expires = t + DELETION_TIMEOUT_SECONDS;
        // Kubernetes drops an entry once its deadline is before now.
        if expires >= now {
            recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
            kept.insert(name.to_string(), at.clone());
        }
    }
    (kept, recheck)
}

/// Kubernetes' `metav1.Time` of a Unix time: RFC 3339 in whole seconds, UTC.
fn format_time(t: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(t)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// Sets the condition of `type` in `status.conditions` (apimachinery's
/// `SetStatusCondition`): its transition time moves only when its status changes.
fn set_condition(status: &mut Value, ty: &str, value: &str, reason: &str, message: &str, now: i64) {
    let generation = status["observedGeneration"].clone();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"]
        .as_array_mut()
        .expect("conditions is a list");
    let mut condition = json!({
        "type": ty,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now),
    });
    if generation.as_i64().is_some_and(|g| g != 0) {
        condition["observedGeneration"] = generation;
    }
    match conditions.iter_mut().find(|c| c["type"] == ty) {
        Some(existing) => {
            if existing["status"] == value && existing["lastTransitionTime"].is_string() {
                condition["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

/// Sets `DisruptionAllowed` from `disruptionsAllowed` (Kubernetes'
/// `UpdateDisruptionAllowedCondition`).
fn update_allowed_condition(status: &mut Value, now: i64) {
    if status["disruptionsAllowed"].as_i64().unwrap_or(0) > 0 {
        set_condition(
            status,
            DISRUPTION_ALLOWED,
            "True",
            "SufficientPods",
            "",
            now,
        );
    } else {
        set_condition(
            status,
            DISRUPTION_ALLOWED,
            "False",
            "InsufficientPods",
            "",
            now,
        );
    }
}

/// The status Kubernetes' disruption controller writes for `pdb`, given what it observes.
/// The counts, `disruptedPods` (entries expired or of pods being deleted dropped),
/// `observedGeneration` and the `DisruptionAllowed` condition; when the budget's pods or
/// their controllers cannot be made sense of, the previous status with no disruption
/// allowed and a `SyncFailed` condition.
pub fn status(pdb: &Value, observed: &Observed) -> Computed {
    match compute(pdb, observed) {
        Ok(c) => c,
        Err(e) => {
            let mut status = if pdb["status"].is_object() {
                pdb["status"].clone()
            } else {
                json!({})
            };
            status["disruptionsAllowed"] = json!(0);
            for key in ["currentHealthy", "desiredHealthy", "expectedPods"] {
                if status[key].is_null() {
                    status[key] = json!(0);
                }
            }
            set_condition(
                &mut status,
                DISRUPTION_ALLOWED,
                "False",
                "SyncFailed",
                &e,
                observed.now,
            );
            Computed {
                status,
                unmanaged_pods: Vec::new(),
                recheck_at: None,
                error: Some(e),
            }
        }
    }
}

fn compute(pdb: &Value, observed: &Observed) -> Result<Computed, String> {
    let now = observed.now;
    let pods: Vec<&Value> = match selector(pdb)? {
        None => Vec::new(),
        Some(sel) => observed
            .pods
            .iter()
            .filter(|p| p["metadata"]["namespace"] == pdb["metadata"]["namespace"])
            .filter(|p| sel.matches(&p["metadata"]["labels"]))
            .collect(),
    };
    let (expected, desired, unmanaged) =
        expected_and_desired(&pdb["spec"], &pods, observed.controllers)?;
    let (disrupted, recheck_at) = disrupted_pods(&pods, &pdb["status"]["disruptedPods"], now);
    let current = pods
        .iter()
        .filter(|p| !is_terminating(p))
        .filter(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            !disrupted.contains_key(name)
        })
        .filter(|p| is_pod_ready(p))
        .count() as i64;
    let allowed = if expected <= 0 {
        0
    } else {
        (current - desired).max(0)
    };
    let mut status = json!({
        "currentHealthy": current,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "observedGeneration": pdb["metadata"]["generation"].as_i64().unwrap_or(0),
    });
    if !disrupted.is_empty() {
        status["disruptedPods"] = Value::Object(disrupted);
    }
    if let Some(c) = pdb["status"]["conditions"].as_array() {
        status["conditions"] = Value::Array(c.clone());
    }
    update_allowed_condition(&mut status, now);
    Ok(Computed {
        status,
        unmanaged_pods: unmanaged,
        recheck_at,
        error: None,
    })
}

/// What an eviction of a pod does.
#[derive(Clone, Debug, PartialEq)]
pub enum Eviction {
    /// Delete the pod; no budget is charged.
    Delete,
    /// Delete the pod and write this budget (one disruption fewer allowed, the pod recorded
    /// in `disruptedPods`) in the same transaction.
    DeleteAndCharge(Value),
    /// Refuse the eviction: 429 when a budget allows no disruption, 500 for a pod under
    /// several budgets, 403 for a budget in a state evictions cannot charge.
    Refuse(ApiError),
}

/// Whether an eviction of `pod` ignores budgets: it is Pending, finished, or being deleted
/// (it disrupts nothing more by going).
pub fn ignores_budgets(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Pending" | "Succeeded" | "Failed")
    ) || is_terminating(pod)
}

/// Decides the eviction of `pod` against `budgets`, the budgets of its namespace (with the
/// status to decide on: the disruption controller's, or one [`status`] just computed).
/// `now` is the time recorded in `disruptedPods`.
pub fn evict(pod: &Value, budgets: &[Value], now: i64) -> Eviction {
    if ignores_budgets(pod) {
        return Eviction::Delete;
    }
    let covering: Vec<&Value> = budgets.iter().filter(|b| selects(b, pod)).collect();
    let budget = match covering.as_slice() {
        [] => return Eviction::Delete,
        [one] => *one,
        _ => {
            return Eviction::Refuse(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ))
        }
    };
    let status = &budget["status"];
    let int = |k: &str| status[k].as_i64().unwrap_or(0);
    if !is_pod_ready(pod) {
        // An unready pod does not count as healthy: letting it go costs nothing, if the
        // policy says so or the budget is met without it.
        if budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow" {
            return Eviction::Delete;
        }
        if int("currentHealthy") >= int("desiredHealthy") && int("desiredHealthy") > 0 {
            return Eviction::Delete;
        }
    }
    charge(budget, pod, now)
}

fn too_many(cause: String, retry_after: Option<u64>) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", VIOLATION_MESSAGE);
    e.details.retry_after = retry_after;
    e.details.causes = vec![Cause::new(DISRUPTION_BUDGET_CAUSE, "", cause)];
    e
}

/// Kubernetes' `checkAndDecrement`.
fn charge(budget: &Value, pod: &Value, now: i64) -> Eviction {
    let name = budget["metadata"]["name"].as_str().unwrap_or("");
    let status = &budget["status"];
    let int = |k: &str| status[k].as_i64().unwrap_or(0);
    let forbidden = |why: &str| {
        Eviction::Refuse(
            ApiError::forbidden(format!(
                "poddisruptionbudget.policy \"{name}\" is forbidden: {why}"
            ))
            .about("poddisruptionbudget", "policy", name),
        )
    };
    if int("observedGeneration") < budget["metadata"]["generation"].as_i64().unwrap_or(0) {
        return Eviction::Refuse(too_many(
            format!("The disruption budget {name} is still being processed by the server."),
            Some(10),
        ));
    }
    let allowed = int("disruptionsAllowed");
    if allowed < 0 {
        return forbidden("pdb disruptions allowed is negative");
    }
    if status["disruptedPods"]
        .as_object()
        .is_some_and(|d| d.len() > MAX_DISRUPTED_PODS)
    {
        return forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        );
    }
    if allowed == 0 {
        return Eviction::Refuse(too_many(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                int("desiredHealthy"),
                int("currentHealthy")
            ),
            None,
        ));
    }
    let mut charged = budget.clone();
    let status = &mut charged["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed == 1 {
        update_allowed_condition(status, now);
    }
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = json!({});
    }
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    status["disruptedPods"][pod_name] = json!(format_time(now));
    Eviction::DeleteAndCharge(charged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-01T10:00:00Z.
    const T0: i64 = 1_714_557_600;

    fn pod(name: &str, ready: bool, owner: Option<(&str, &str)>) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if let Some((kind, uid)) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind,
                "name": format!("{kind}-{uid}").to_lowercase(), "uid": uid, "controller": true}]);
        }
        p
    }

    fn rs(uid: &str, replicas: i64, deployment: Option<&str>) -> Value {
        let mut r = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("replicaset-{uid}"), "namespace": "shop", "uid": uid},
            "spec": {"replicas": replicas}});
        if let Some(d) = deployment {
            r["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": format!("deployment-{d}"), "uid": d, "controller": true}]);
        }
        r
    }

    fn deployment(uid: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("deployment-{uid}"), "namespace": "shop", "uid": uid},
            "spec": {"replicas": replicas}})
    }

    fn budget(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "generation": 3},
            "spec": spec, "status": {}})
    }

    fn compute_for(spec: Value, pods: &[Value], controllers: &[Value]) -> Computed {
        status(
            &budget(spec),
            &Observed {
                pods,
                controllers,
                now: T0,
            },
        )
    }

    fn counts(c: &Computed) -> (i64, i64, i64, i64) {
        let s = &c.status;
        (
            s["currentHealthy"].as_i64().unwrap(),
            s["desiredHealthy"].as_i64().unwrap(),
            s["expectedPods"].as_i64().unwrap(),
            s["disruptionsAllowed"].as_i64().unwrap(),
        )
    }

    fn condition(c: &Computed) -> (String, String) {
        let cond = c.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == DISRUPTION_ALLOWED)
            .unwrap();
        (
            cond["status"].as_str().unwrap().into(),
            cond["reason"].as_str().unwrap().into(),
        )
    }

    #[test]
    fn min_available_counts_every_selected_pod() {
        let pods = [
            pod("a", true, None),
            pod("b", true, None),
            pod("c", false, None),
        ];
        let c = compute_for(
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
            &pods,
            &[],
        );
        assert_eq!(counts(&c), (2, 1, 3, 1));
        assert_eq!(c.status["observedGeneration"], 3);
        assert_eq!(condition(&c), ("True".into(), "SufficientPods".into()));
        assert!(c.unmanaged_pods.is_empty() && c.error.is_none());
        assert!(c.status.get("disruptedPods").is_none());

        let c = compute_for(
            json!({"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}),
            &pods,
            &[],
        );
        assert_eq!(counts(&c), (2, 3, 3, 0));
        assert_eq!(condition(&c), ("False".into(), "InsufficientPods".into()));
    }

    #[test]
    fn selectors_null_empty_and_other_namespaces() {
        let mut other = pod("x", true, None);
        other["metadata"]["namespace"] = json!("elsewhere");
        let mut db = pod("db", true, None);
        db["metadata"]["labels"] = json!({"app": "db"});
        let pods = [pod("a", true, None), db, other];
        assert_eq!(
            counts(&compute_for(json!({"minAvailable": 0}), &pods, &[])),
            (0, 0, 0, 0)
        );
        assert_eq!(
            counts(&compute_for(
                json!({"minAvailable": 0, "selector": {}}),
                &pods,
                &[]
            )),
            (2, 0, 2, 2)
        );
        let b = budget(json!({"selector": {}}));
        assert!(selects(&b, &pods[1]) && !selects(&b, &pods[2]));
        assert!(!selects(&budget(json!({})), &pods[0]));
        // Neither minAvailable nor maxUnavailable: nothing expected, nothing allowed.
        assert_eq!(
            counts(&compute_for(json!({"selector": {}}), &pods, &[])),
            (2, 0, 0, 0)
        );
    }

    #[test]
    fn percentages_and_max_unavailable_use_the_controllers_scale() {
        // Two ReplicaSets of one Deployment of 4, one of them old; a bare ReplicaSet of 2.
        let controllers = [
            deployment("d1", 4),
            rs("r1", 3, Some("d1")),
            rs("r2", 1, Some("d1")),
            rs("r3", 2, None),
        ];
        let pods = [
            pod("a", true, Some(("ReplicaSet", "r1"))),
            pod("b", true, Some(("ReplicaSet", "r1"))),
            pod("c", true, Some(("ReplicaSet", "r2"))),
            pod("d", false, Some(("ReplicaSet", "r3"))),
            pod("e", true, Some(("ReplicaSet", "r3"))),
            pod("bare", true, None),
        ];
        let sel = json!({"matchLabels": {"app": "web"}});
        // expected = 4 (d1) + 2 (r3) = 6; healthy = 5 (bare counts as healthy).
        let c = compute_for(
            json!({"maxUnavailable": 1, "selector": sel}),
            &pods,
            &controllers,
        );
        assert_eq!(counts(&c), (5, 5, 6, 0));
        assert_eq!(c.unmanaged_pods, vec!["bare".to_string()]);
        let c = compute_for(
            json!({"maxUnavailable": "34%", "selector": sel}),
            &pods,
            &controllers,
        );
        // 34% of 6 rounds up to 3: desired 3.
        assert_eq!(counts(&c), (5, 3, 6, 2));
        let c = compute_for(
            json!({"minAvailable": "50%", "selector": sel}),
            &pods,
            &controllers,
        );
        assert_eq!(counts(&c), (5, 3, 6, 2));
        // A Deployment's ReplicaSet whose Deployment is gone counts with its own replicas.
        let c = compute_for(
            json!({"maxUnavailable": 0, "selector": sel}),
            &pods[..3],
            &controllers[1..],
        );
        assert_eq!(counts(&c), (3, 4, 4, 0));
    }

    #[test]
    fn a_missing_controller_fails_safe() {
        let mut b = budget(json!({"maxUnavailable": 1, "selector": {}}));
        b["status"] = json!({"currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
            "disruptionsAllowed": 1, "observedGeneration": 2});
        let pods = [pod("a", true, Some(("ReplicaSet", "gone")))];
        let c = status(
            &b,
            &Observed {
                pods: &pods,
                controllers: &[],
                now: T0,
            },
        );
        assert_eq!(
            c.error.as_deref(),
            Some("found no controllers for pod \"a\"")
        );
        assert_eq!(counts(&c), (3, 2, 3, 0));
        assert_eq!(c.status["observedGeneration"], 2);
        assert_eq!(condition(&c), ("False".into(), "SyncFailed".into()));
        let cond = &c.status["conditions"][0];
        assert_eq!(cond["message"], "found no controllers for pod \"a\"");
        assert_eq!(cond["lastTransitionTime"], "2024-05-01T10:00:00Z");
        // minAvailable as a number needs no controllers.
        let c = compute_for(json!({"minAvailable": 1, "selector": {}}), &pods, &[]);
        assert_eq!(counts(&c), (1, 1, 1, 0));
    }

    #[test]
    fn disrupted_pods_are_not_healthy_for_two_minutes() {
        let mut b = budget(json!({"minAvailable": 1, "selector": {}}));
        let mut gone = pod("gone", true, None);
        gone["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:00:30Z");
        b["status"]["disruptedPods"] = json!({
            "a": "2024-05-01T09:59:00Z",      // 60 s ago: in force until T0 + 60
            "b": "2024-05-01T09:57:00Z",      // 180 s ago: expired
            "gone": "2024-05-01T09:59:30Z",   // being deleted: dropped
            "absent": "2024-05-01T09:59:59Z", // no such pod: dropped
        });
        let pods = [
            pod("a", true, None),
            pod("b", true, None),
            pod("c", true, None),
            gone,
        ];
        let c = status(
            &b,
            &Observed {
                pods: &pods,
                controllers: &[],
                now: T0,
            },
        );
        assert_eq!(counts(&c), (2, 1, 4, 1));
        assert_eq!(
            c.status["disruptedPods"],
            json!({"a": "2024-05-01T09:59:00Z"})
        );
        assert_eq!(c.recheck_at, Some(T0 + 60));
        // Expected count 0 allows nothing even with healthy pods.
        let c = compute_for(json!({"maxUnavailable": 5, "selector": {}}), &[], &[]);
        assert_eq!(counts(&c), (0, 0, 0, 0));
    }

    #[test]
    fn the_condition_keeps_its_transition_time_while_its_status_holds() {
        let pods = [pod("a", true, None), pod("b", true, None)];
        let mut b = budget(json!({"minAvailable": 1, "selector": {}}));
        let first = status(
            &b,
            &Observed {
                pods: &pods,
                controllers: &[],
                now: T0,
            },
        );
        b["status"] = first.status;
        let later = status(
            &b,
            &Observed {
                pods: &pods,
                controllers: &[],
                now: T0 + 50,
            },
        );
        assert_eq!(
            later.status["conditions"][0]["lastTransitionTime"],
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(later.status["conditions"].as_array().unwrap().len(), 1);
        b["status"] = later.status;
        let flipped = status(
            &b,
            &Observed {
                pods: &pods[..1],
                controllers: &[],
                now: T0 + 100,
            },
        );
        assert_eq!(flipped.status["conditions"][0]["status"], "False");
        assert_eq!(
            flipped.status["conditions"][0]["lastTransitionTime"],
            "2024-05-01T10:01:40Z"
        );
        assert_eq!(flipped.status["conditions"][0]["observedGeneration"], 3);
    }

    fn with_status(spec: Value, current: i64, desired: i64, allowed: i64) -> Value {
        let mut b = budget(spec);
        b["status"] = json!({"currentHealthy": current, "desiredHealthy": desired, "expectedPods": 3,
            "disruptionsAllowed": allowed, "observedGeneration": 3});
        b
    }

    #[test]
    fn evictions_charge_one_budget_or_are_refused() {
        let p = pod("a", true, None);
        let sel = json!({"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2});
        assert_eq!(evict(&p, &[], T0), Eviction::Delete);

        let Eviction::DeleteAndCharge(charged) =
            evict(&p, &[with_status(sel.clone(), 3, 2, 1)], T0)
        else {
            panic!("charged");
        };
        assert_eq!(charged["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            charged["status"]["disruptedPods"],
            json!({"a": "2024-05-01T10:00:00Z"})
        );
        assert_eq!(
            charged["status"]["conditions"][0]["reason"],
            "InsufficientPods"
        );
        let Eviction::DeleteAndCharge(charged) =
            evict(&p, &[with_status(sel.clone(), 4, 2, 2)], T0)
        else {
            panic!("charged");
        };
        assert_eq!(charged["status"]["disruptionsAllowed"], 1);
        assert!(charged["status"].get("conditions").is_none());

        let Eviction::Refuse(e) = evict(&p, &[with_status(sel.clone(), 2, 2, 0)], T0) else {
            panic!("refused");
        };
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.message, VIOLATION_MESSAGE);
        assert_eq!(e.retry_after(), None);
        assert_eq!(e.details.causes[0].reason, "DisruptionBudget");
        assert_eq!(
            e.details.causes[0].message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        let status = e.to_status();
        assert_eq!(
            status["details"]["causes"][0],
            json!({"reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently"})
        );

        let mut stale = with_status(sel.clone(), 3, 2, 1);
        stale["metadata"]["generation"] = json!(4);
        let Eviction::Refuse(e) = evict(&p, &[stale], T0) else {
            panic!("refused");
        };
        assert_eq!((e.code, e.retry_after()), (429, Some(10)));
        assert!(e.details.causes[0]
            .message
            .contains("still being processed"));

        let Eviction::Refuse(e) = evict(&p, &[with_status(sel.clone(), 3, 2, -1)], T0) else {
            panic!("refused");
        };
        assert_eq!(e.code, 403);

        let two = [
            with_status(sel.clone(), 3, 2, 1),
            with_status(json!({"selector": {}}), 3, 2, 1),
        ];
        let Eviction::Refuse(e) = evict(&p, &two, T0) else {
            panic!("refused");
        };
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        );
        // A budget of another namespace or selector is not this pod's.
        let mut elsewhere = with_status(sel.clone(), 2, 2, 0);
        elsewhere["metadata"]["namespace"] = json!("other");
        assert_eq!(evict(&p, &[elsewhere], T0), Eviction::Delete);
    }

    #[test]
    fn pods_that_disrupt_nothing_more_ignore_budgets() {
        let refusing = [with_status(
            json!({"selector": {}, "minAvailable": 5}),
            2,
            5,
            0,
        )];
        for phase in ["Pending", "Succeeded", "Failed"] {
            let mut p = pod("a", true, None);
            p["status"]["phase"] = json!(phase);
            assert!(ignores_budgets(&p));
            assert_eq!(evict(&p, &refusing, T0), Eviction::Delete, "{phase}");
        }
        let mut p = pod("a", true, None);
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:00:30Z");
        assert_eq!(evict(&p, &refusing, T0), Eviction::Delete);

        // Unready pods: free when the budget is healthy, or when the policy says so.
        let unready = pod("u", false, None);
        let healthy = with_status(json!({"selector": {}}), 3, 2, 1);
        assert_eq!(evict(&unready, &[healthy], T0), Eviction::Delete);
        let unhealthy = with_status(json!({"selector": {}}), 1, 2, 0);
        assert!(matches!(
            evict(&unready, std::slice::from_ref(&unhealthy), T0),
            Eviction::Refuse(e) if e.code == 429
        ));
        let mut always = unhealthy;
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert_eq!(evict(&unready, &[always], T0), Eviction::Delete);
    }
}
