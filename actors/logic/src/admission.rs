//! The kubelet's admission of a pod bound to its node: Kubernetes' resource fit, checked on
//! the node against the pods it already admitted. The scheduler's view can be stale (a
//! binding whose answer was lost is retried and may land twice over a node's room); the
//! node's is not, so a pod that does not fit is rejected (`OutOfcpu`, `OutOfmemory`,
//! `OutOfpods`, failed with Kubernetes' message) instead of run.

use serde_json::Value;

use crate::scheduler::{pod_requests, Resources};

/// Why a pod is refused: its status `reason` and `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

fn rejected(resource: &str, requested: i64, used: i64, capacity: i64) -> Rejection {
    Rejection {
        reason: format!("OutOf{resource}"),
        message: format!(
            "Pod was rejected: Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
}

/// Admits `pod` on a node of `allocatable` (a resource list; a resource it does not name
/// is not checked) that runs `admitted` (the pods it admitted before, still running):
/// the pod count, cpu (millicores), memory (bytes) and every other resource the node
/// names, as the kubelet's `GeneralPredicates` check them.
pub fn admit(allocatable: &Value, admitted: &[&Value], pod: &Value) -> Result<(), Rejection> {
    if let Some(capacity) = crate::scheduler::allowed_pods(allocatable) {
        let used = admitted.len() as i64;
        if used + 1 > capacity {
            return Err(rejected("pods", 1, used, capacity));
        }
    }
    let have = Resources::from_list(allocatable);
    let named = |name: &str| allocatable.get(name).is_some();
    let (want, _) = pod_requests(pod);
    let mut used = Resources::default();
    for p in admitted {
        used.add(&pod_requests(p).0);
    }
    let checks = [
        ("cpu", want.milli_cpu, used.milli_cpu, have.milli_cpu),
        ("memory", want.memory, used.memory, have.memory),
        (
            "ephemeral-storage",
            want.ephemeral_storage,
            used.ephemeral_storage,
            have.ephemeral_storage,
        ),
    ];
    for (name, want, used, cap) in checks {
        if named(name) && want > 0 && want > cap - used {
            return Err(rejected(name, want, used, cap));
        }
    }
    for (name, &amount) in &want.scalar {
        let cap = have.scalar.get(name).copied().unwrap_or(0);
        let taken = used.scalar.get(name).copied().unwrap_or(0);
        if amount > 0 && amount > cap - taken {
            return Err(rejected(name, amount, taken, cap));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(cpu: &str, memory: &str) -> Value {
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
    }

    #[test]
    fn a_pod_that_fits_is_admitted_and_one_past_the_room_is_rejected_in_kubernetes_words() {
        let node = json!({"cpu": "2", "memory": "1Gi", "pods": "3"});
        let a = pod("1500m", "100Mi");
        assert_eq!(admit(&node, &[], &a), Ok(()));
        let b = pod("600m", "100Mi");
        assert_eq!(
            admit(&node, &[&a], &b),
            Err(Rejection {
                reason: "OutOfcpu".into(),
                message: "Pod was rejected: Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000".into(),
            })
        );
        assert_eq!(admit(&node, &[&a], &pod("500m", "100Mi")), Ok(()));
        let big = pod("10m", "1000Mi");
        assert_eq!(admit(&node, &[&a], &big).unwrap_err().reason, "OutOfmemory");
        let small = pod("1m", "1Mi");
        assert_eq!(admit(&node, &[&small, &small, &small], &small).unwrap_err().message,
            "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3");
    }

    #[test]
    fn what_the_node_does_not_name_is_not_checked_and_extended_resources_are() {
        let a = pod("64", "64Gi");
        assert_eq!(admit(&json!({}), &[&a, &a], &a), Ok(()));
        let gpu = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]}});
        assert_eq!(
            admit(&json!({"cpu": "1"}), &[], &gpu).unwrap_err().reason,
            "OutOfnvidia.com/gpu"
        );
        assert_eq!(admit(&json!({"nvidia.com/gpu": "1"}), &[], &gpu), Ok(()));
    }
}
