//! What a hollow node does with a pod bound to it, decided from the pod alone, and the
//! status it reports: the pure half of the pod worker.
//!
//! A hollow node runs nothing. A pod bound to it that is not yet reported running gets the
//! status a kubelet reports once its containers started (phase `Running`, the four
//! conditions `True`, its address, a running status per container); a pod being deleted
//! (`deletionTimestamp` set) is "stopped" at once and deleted with grace period 0, as the
//! kubelet deletes a pod whose containers have ended. Pods that ended (`Succeeded`,
//! `Failed`) are left alone.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// What to do with a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodAction {
    /// Nothing: not ours, ended, or already reported running.
    Nothing,
    /// Report it running (its status through `pods/<name>/status`).
    ReportRunning,
    /// Its deletion waits for the node: delete it with grace period 0, on the condition
    /// that it is still this pod (`uid`).
    Delete { uid: String },
}

fn uid(pod: &Value) -> &str {
    pod["metadata"]["uid"].as_str().unwrap_or("")
}

/// The condition of type `ty` in `status.conditions`.
fn condition<'a>(pod: &'a Value, ty: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

/// Whether the pod's status already says what [`running_status`] would: running, ready,
/// with an address and a ready status for every container.
pub fn is_reported_running(pod: &Value) -> bool {
    let s = &pod["status"];
    let ready = |ty| condition(pod, ty).is_some_and(|c| c["status"] == "True");
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let statuses = s["containerStatuses"].as_array();
    let all_running = containers.iter().all(|name| {
        statuses.is_some_and(|ss| {
            ss.iter().any(|c| {
                c["name"] == *name && c["ready"] == true && c["state"]["running"].is_object()
            })
        })
    });
    s["phase"] == "Running"
        && s["podIP"].as_str().is_some_and(|ip| !ip.is_empty())
        && ready("Ready")
        && ready("ContainersReady")
        && all_running
}

/// What the node `node` does with `pod`.
pub fn decide(pod: &Value, node: &str) -> PodAction {
    if pod["spec"]["nodeName"].as_str() != Some(node) {
        return PodAction::Nothing;
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return PodAction::Delete {
            uid: uid(pod).to_string(),
        };
    }
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    ) || is_reported_running(pod)
    {
        return PodAction::Nothing;
    }
    PodAction::ReportRunning
}

/// The address the pod's status gives it, if any.
pub fn pod_ip(pod: &Value) -> Option<Ipv4Addr> {
    pod["status"]["podIP"].as_str()?.parse().ok()
}

/// The `containerID` a hollow node reports for `container` of the pod `uid`.
pub fn container_id(uid: &str, container: &str) -> String {
    format!("hollow://{uid}/{container}")
}

/// The status a kubelet reports for `pod` once its containers run, at `now` (RFC 3339),
/// with `pod_ip` and the node's `host_ip`. Times already in the pod's status (when the
/// pod was scheduled, when it started) are kept.
pub fn running_status(pod: &Value, pod_ip: Ipv4Addr, host_ip: Ipv4Addr, now: &str) -> Value {
    let since = |ty: &str| {
        condition(pod, ty)
            .filter(|c| c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let cond = |ty: &str| {
        json!({
            "type": ty,
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": since(ty),
        })
    };
    let start = pod["status"]["startTime"].as_str().unwrap_or(now);
    let uid = uid(pod);
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let name = c["name"].as_str().unwrap_or("");
                    let image = c["image"].as_str().unwrap_or("");
                    json!({
                        "name": name,
                        "image": image,
                        "imageID": format!("hollow://{image}"),
                        "containerID": container_id(uid, name),
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": start}},
                        "lastState": {},
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "phase": "Running",
        "conditions": [
            cond("PodReadyToStartContainers"),
            cond("Initialized"),
            cond("Ready"),
            cond("ContainersReady"),
            cond("PodScheduled"),
        ],
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "podIP": pod_ip.to_string(),
        "podIPs": [{"ip": pod_ip.to_string()}],
        "startTime": start,
        "containerStatuses": containers,
    })
}

/// The strategic merge patch of `pods/<name>/status` that reports `status`.
pub fn status_patch(status: Value) -> Value {
    json!({"status": status})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"nodeName": node, "containers": [
                {"name": "app", "image": "busybox"},
                {"name": "side", "image": "nginx:1.27"},
            ]},
            "status": {"phase": "Pending"},
        })
    }

    #[test]
    fn a_bound_pod_is_reported_running_once() {
        let mut p = pod("n1");
        assert_eq!(decide(&p, "n1"), PodAction::ReportRunning);
        assert_eq!(decide(&p, "n2"), PodAction::Nothing, "not ours");
        let ip: Ipv4Addr = "10.244.0.7".parse().unwrap();
        let s = running_status(&p, ip, Ipv4Addr::LOCALHOST, "2026-11-29T09:44:07Z");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.7");
        assert_eq!(s["podIPs"], json!([{"ip": "10.244.0.7"}]));
        assert_eq!(s["hostIP"], "127.0.0.1");
        assert_eq!(s["startTime"], "2026-11-29T09:44:07Z");
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            let c = s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == ty)
                .unwrap();
            assert_eq!(c["status"], "True", "{ty}");
            assert_eq!(c["lastTransitionTime"], "2026-11-29T09:44:07Z");
        }
        let cs = s["containerStatuses"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[1]["name"], "side");
        assert_eq!(cs[1]["image"], "nginx:1.27");
        assert_eq!(cs[1]["imageID"], "hollow://nginx:1.27");
        assert_eq!(cs[1]["containerID"], "hollow://u-1/side");
        assert_eq!(cs[1]["ready"], true);
        assert_eq!(cs[1]["started"], true);
        assert_eq!(cs[1]["restartCount"], 0);
        assert_eq!(
            cs[1]["state"]["running"]["startedAt"],
            "2026-11-29T09:44:07Z"
        );
        p["status"] = s;
        assert!(is_reported_running(&p));
        assert_eq!(decide(&p, "n1"), PodAction::Nothing);
        assert_eq!(pod_ip(&p), Some(ip));
        // Reported again later, the times it had stay.
        let again = running_status(&p, ip, Ipv4Addr::LOCALHOST, "2026-11-29T10:00:00Z");
        assert_eq!(again["startTime"], "2026-11-29T09:44:07Z");
        assert_eq!(
            again["conditions"][2]["lastTransitionTime"],
            "2026-11-29T09:44:07Z"
        );
    }

    #[test]
    fn a_container_not_reported_makes_the_pod_reported_again() {
        let mut p = pod("n1");
        p["status"] = running_status(
            &p,
            "10.244.0.7".parse().unwrap(),
            Ipv4Addr::LOCALHOST,
            "2026-11-29T09:44:07Z",
        );
        p["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "third", "image": "x"}));
        assert_eq!(decide(&p, "n1"), PodAction::ReportRunning);
    }

    #[test]
    fn a_pod_being_deleted_is_deleted_and_an_ended_one_left_alone() {
        let mut p = pod("n1");
        p["metadata"]["deletionTimestamp"] = json!("2026-11-29T09:44:37Z");
        assert_eq!(decide(&p, "n1"), PodAction::Delete { uid: "u-1".into() });
        let mut done = pod("n1");
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(decide(&done, "n1"), PodAction::Nothing);
    }
}
