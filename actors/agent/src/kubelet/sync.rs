//! The pure core of a pod worker, as the kubelet's `SyncPod` decides: from the pod, the
//! containers the runtime has for it and what the probes say, which containers to start,
//! kill or remove, and the pod status to report. No I/O, no clock: `now` comes in.
//!
//! Kubernetes' rules followed here:
//! - init containers run one at a time, in order, each to a successful exit, before any app
//!   container starts; a failed one is restarted (unless `restartPolicy: Never`, which fails
//!   the pod);
//! - an app container that exited is restarted per `restartPolicy` (`Always`; `OnFailure`
//!   when its exit code is not 0; never with `Never`), the first restart at once and then
//!   after a back-off of 10 s doubling up to a cap (5 min in Kubernetes; a node flag here),
//!   during which its status is `waiting` with reason `CrashLoopBackOff`. The back-off is
//!   derived from the container's restart count and when it last exited (a container that
//!   ran for 10 minutes or more restarts at once), so a restarted worker keeps it;
//! - an image the node does not have is `ErrImagePull` then `ImagePullBackOff`, retried with
//!   the same back-off, never a crash;
//! - a pod being deleted has its containers stopped with its grace period (preStop hooks
//!   first), its sandbox torn down, and is then deleted with grace period 0;
//! - the phase: `Pending` until a container of the pod has started, `Running` while any
//!   runs or will be restarted, `Succeeded` when all exited 0 and none will restart,
//!   `Failed` when all exited, none will restart and one failed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use navarch_model::time::rfc3339;
use navarch_runtime::{ContainerState, ContainerStatus};
use serde_json::{json, Value};

/// The labels every container of a pod carries, so a restarted agent knows whose it is.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
pub const LABEL_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const LABEL_INIT: &str = "io.navarch.container.init";

/// The back-off's first delay (Kubernetes' 10 s).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The back-off's cap in Kubernetes (a node flag here).
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A container that ran this long restarts without back-off.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// What a worker knows that the runtime does not: why a container could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// `ErrImagePull`, `CreateContainerConfigError`, `CreateContainerError`, ...
    pub reason: String,
    pub message: String,
    /// When it last failed, and how many times in a row (for the back-off).
    pub at: SystemTime,
    pub failures: u32,
    /// A fixed wait before the next try instead of the back-off, for a cause that clears
    /// by itself soon (a service-account token not to be had yet).
    pub retry_after: Option<Duration>,
}

/// What the probes of one running container say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeView {
    /// The readiness probe passed (true without a readiness probe once started).
    pub ready: bool,
    /// The startup probe passed (true without one).
    pub started: bool,
    /// The liveness or startup probe failed past its threshold: restart, with this message.
    pub restart: Option<String>,
}

/// Everything the decision reads.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub pod: &'a Value,
    /// Every container the runtime has for this pod (any instance, any state).
    pub containers: &'a [ContainerStatus],
    /// Per container name, the latest failure to create it.
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// Per container id, what its probes say.
    pub probes: &'a BTreeMap<String, ProbeView>,
    /// Per exited container id, its termination message.
    pub messages: &'a BTreeMap<String, String>,
    /// Why the node evicts the pod (an emptyDir past its `sizeLimit`), if it does.
    pub eviction: Option<&'a str>,
    /// The pod's sandbox (network namespace, address, volumes) is set up.
    pub sandbox_ready: bool,
    /// The back-off cap.
    pub backoff_cap: Duration,
    pub now: SystemTime,
}

/// One thing to do for the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the network namespace, get an address, prepare the volumes.
    SetupSandbox,
    /// Create and start instance `restart_count` of container `name`.
    Start {
        name: String,
        init: bool,
        restart_count: u32,
    },
    /// Stop a container (preStop hook first when `pre_stop`), SIGKILL after `grace`.
    Kill {
        id: String,
        container: String,
        grace: Duration,
        pre_stop: bool,
        reason: String,
    },
    /// Remove an exited instance no longer needed (the previous one is kept for logs).
    Remove { id: String },
    /// Remove every container, the network and the volumes.
    TeardownSandbox,
    /// Delete the pod object (grace period 0, on its uid), its containers being gone.
    DeletePod { uid: String },
    /// Look again at this time (a back-off ending).
    RequeueAt(SystemTime),
}

fn uid(pod: &Value) -> &str {
    pod["metadata"]["uid"].as_str().unwrap_or("")
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The restart count a container carries in its labels.
pub fn restart_count(c: &ContainerStatus) -> u32 {
    c.labels
        .get(LABEL_RESTART_COUNT)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn container_name(c: &ContainerStatus) -> &str {
    c.labels
        .get(LABEL_CONTAINER)
        .map(String::as_str)
        .unwrap_or("")
}

/// Instances of container `name`, newest (highest restart count) first.
fn instances<'a>(all: &'a [ContainerStatus], name: &str) -> Vec<&'a ContainerStatus> {
    let mut v: Vec<&ContainerStatus> = all.iter().filter(|c| container_name(c) == name).collect();
    v.sort_by_key(|c| std::cmp::Reverse(restart_count(c)));
    v
}

/// The restart policy, Kubernetes' default `Always`.
fn restart_policy(pod: &Value) -> &str {
    pod["spec"]["restartPolicy"].as_str().unwrap_or("Always")
}

fn exited_ok(c: &ContainerStatus) -> bool {
    c.state == ContainerState::Exited && c.exit_code == Some(0)
}

/// Whether an exited app container is restarted under `policy`.
fn restarts(policy: &str, c: &ContainerStatus) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => !exited_ok(c),
        _ => true,
    }
}

/// The back-off delay before restart number `restart_count + 1` of a container that ran
/// for `ran`: none for the first restart or after a long run, then 10 s doubling to `cap`.
pub fn backoff(restart_count: u32, ran: Duration, cap: Duration) -> Duration {
    if restart_count == 0 || ran >= BACKOFF_RESET_AFTER {
        return Duration::ZERO;
    }
    let doublings = (restart_count - 1).min(20);
    BACKOFF_INITIAL
        .saturating_mul(1u32 << doublings)
        .min(cap.max(BACKOFF_INITIAL))
}

/// When an exited container may be started again, if it must wait.
fn restart_at(c: &ContainerStatus, cap: Duration) -> Option<SystemTime> {
    let finished = c.finished_at?;
    let ran = c
        .started_at
        .and_then(|s| finished.duration_since(s).ok())
        .unwrap_or_default();
    let d = backoff(restart_count(c), ran, cap);
    (!d.is_zero()).then(|| finished + d)
}

/// When a container whose creation failed `w.failures` times may be tried again.
fn retry_at(w: &Waiting, cap: Duration) -> SystemTime {
    w.at + w
        .retry_after
        .unwrap_or_else(|| backoff(w.failures.saturating_sub(1), Duration::ZERO, cap))
}

/// The grace period of a stop: the deletion's, else the pod's (30 s by default).
pub fn grace_period(pod: &Value) -> Duration {
    let secs = pod["metadata"]["deletionGracePeriodSeconds"]
        .as_u64()
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_u64())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Whether an init container instance is done (exited 0).
fn init_done(all: &[ContainerStatus], name: &str) -> bool {
    instances(all, name).first().is_some_and(|c| exited_ok(c))
}

/// Whether every init container of the pod completed.
pub fn initialized(pod: &Value, all: &[ContainerStatus]) -> bool {
    names(pod, "initContainers")
        .iter()
        .all(|n| init_done(all, n))
}

fn has_started(all: &[ContainerStatus], app: &[String]) -> bool {
    all.iter()
        .any(|c| app.iter().any(|n| n == container_name(c)) && c.started_at.is_some())
}

/// Whether the pod has reached a phase it never leaves (nothing will run again).
fn terminal(pod: &Value, all: &[ContainerStatus]) -> bool {
    matches!(phase(pod, all), "Succeeded" | "Failed")
}

/// Whether the node evicts (or evicted) the pod: it fails, its containers killed, nothing
/// restarts.
fn evicted(i: &Inputs<'_>) -> bool {
    i.eviction.is_some() || i.pod["status"]["reason"] == "Evicted"
}

/// Whether the pod ran past its `activeDeadlineSeconds` (counted from its `startTime`), which
/// fails it: its containers are killed and nothing restarts.
pub fn deadline_exceeded(pod: &Value, now: SystemTime) -> bool {
    let (Some(deadline), Some(start)) = (
        pod["spec"]["activeDeadlineSeconds"].as_i64(),
        pod["status"]["startTime"]
            .as_str()
            .and_then(navarch_model::time::parse_rfc3339),
    ) else {
        return false;
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    now >= start.saturating_add(deadline)
}

/// Decides what to do next.
pub fn plan(i: &Inputs<'_>) -> Vec<Action> {
    let pod = i.pod;
    let mut out = Vec::new();
    let running: Vec<&ContainerStatus> = i
        .containers
        .iter()
        .filter(|c| c.state != ContainerState::Exited)
        .collect();
    // Deletion, or a pod that ended: stop what runs, then tear down (and delete).
    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    let expired = deadline_exceeded(pod, i.now) || evicted(i);
    if deleting || expired || terminal(pod, i.containers) {
        for c in &running {
            out.push(Action::Kill {
                id: c.id.as_str().to_string(),
                container: container_name(c).to_string(),
                grace: grace_period(pod),
                pre_stop: deleting && c.state == ContainerState::Running,
                reason: if deleting {
                    "Killing"
                } else if evicted(i) {
                    "Evicted"
                } else if expired {
                    "DeadlineExceeded"
                } else {
                    "Completed"
                }
                .into(),
            });
        }
        if running.is_empty() && deleting {
            out.push(Action::TeardownSandbox);
            out.push(Action::DeletePod {
                uid: uid(pod).to_string(),
            });
        }
        return out;
    }
    if !i.sandbox_ready {
        out.push(Action::SetupSandbox);
        return out;
    }
    // A pass when the active deadline comes.
    if let (Some(deadline), Some(start)) = (
        pod["spec"]["activeDeadlineSeconds"].as_u64(),
        pod["status"]["startTime"]
            .as_str()
            .and_then(navarch_model::time::parse_rfc3339),
    ) {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(start.max(0) as u64 + deadline);
        out.push(Action::RequeueAt(at));
    }
    // Old instances: keep the newest and the one before it (logs --previous).
    for name in names(pod, "initContainers")
        .into_iter()
        .chain(names(pod, "containers"))
    {
        for old in instances(i.containers, &name).iter().skip(2) {
            if old.state == ContainerState::Exited {
                out.push(Action::Remove {
                    id: old.id.as_str().to_string(),
                });
            }
        }
    }
    let policy = restart_policy(pod);
    let start =
        |name: &str, init: bool, latest: Option<&ContainerStatus>, out: &mut Vec<Action>| {
            let restart_count = latest.map(|c| restart_count(c) + 1).unwrap_or(0);
            if let Some(w) = i.waiting.get(name) {
                let at = retry_at(w, i.backoff_cap);
                if at > i.now {
                    out.push(Action::RequeueAt(at));
                    return;
                }
            }
            if let Some(at) = latest.and_then(|c| restart_at(c, i.backoff_cap)) {
                if at > i.now {
                    out.push(Action::RequeueAt(at));
                    return;
                }
            }
            out.push(Action::Start {
                name: name.to_string(),
                init,
                restart_count,
            });
        };
    // Init containers, one at a time.
    for name in names(pod, "initContainers") {
        let latest = instances(i.containers, &name).first().copied();
        match latest {
            Some(c) if exited_ok(c) => continue,
            Some(c) if c.state != ContainerState::Exited => return out,
            Some(c) => {
                if policy == "Never" {
                    return out; // the pod failed: `phase` says so
                }
                start(&name, true, Some(c), &mut out);
                return out;
            }
            None => {
                start(&name, true, None, &mut out);
                return out;
            }
        }
    }
    for name in names(pod, "containers") {
        let latest = instances(i.containers, &name).first().copied();
        match latest {
            None => start(&name, false, None, &mut out),
            Some(c) if c.state == ContainerState::Exited => {
                if restarts(policy, c) {
                    start(&name, false, Some(c), &mut out);
                }
            }
            Some(c) => {
                if let Some(why) = i.probes.get(c.id.as_str()).and_then(|p| p.restart.clone()) {
                    out.push(Action::Kill {
                        id: c.id.as_str().to_string(),
                        container: name.clone(),
                        grace: probe_grace(pod, &name),
                        pre_stop: true,
                        reason: why,
                    });
                }
            }
        }
    }
    out
}

/// The grace period of a kill a probe asked for: the probe's own, else the pod's.
fn probe_grace(pod: &Value, container: &str) -> Duration {
    let c = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container));
    c.and_then(|c| {
        c["livenessProbe"]["terminationGracePeriodSeconds"]
            .as_u64()
            .or_else(|| c["startupProbe"]["terminationGracePeriodSeconds"].as_u64())
    })
    .map(Duration::from_secs)
    .unwrap_or_else(|| grace_period(pod))
}

/// The pod's phase from its containers.
pub fn phase(pod: &Value, all: &[ContainerStatus]) -> &'static str {
    let policy = restart_policy(pod);
    // A failed init container under `Never` fails the pod.
    for name in names(pod, "initContainers") {
        if let Some(c) = instances(all, &name).first() {
            if c.state == ContainerState::Exited && !exited_ok(c) && policy == "Never" {
                return "Failed";
            }
        }
    }
    let app = names(pod, "containers");
    if !initialized(pod, all) || !has_started(all, &app) {
        return "Pending";
    }
    let latest: Vec<Option<&ContainerStatus>> = app
        .iter()
        .map(|n| instances(all, n).first().copied())
        .collect();
    if latest
        .iter()
        .any(|c| c.is_none_or(|c| c.state != ContainerState::Exited))
    {
        return "Running";
    }
    let latest: Vec<&ContainerStatus> = latest.into_iter().flatten().collect();
    if latest.iter().any(|c| restarts(policy, c)) {
        return "Running";
    }
    if latest.iter().all(|c| exited_ok(c)) {
        "Succeeded"
    } else {
        "Failed"
    }
}

fn time(t: Option<SystemTime>) -> Value {
    t.map(|t| json!(rfc3339(t))).unwrap_or(Value::Null)
}

fn terminated(c: &ContainerStatus, runtime: &str, messages: &BTreeMap<String, String>) -> Value {
    let mut t = json!({
        "exitCode": c.exit_code.unwrap_or(0),
        "reason": c.reason.map(|r| r.as_str()).unwrap_or("Error"),
        "startedAt": time(c.started_at),
        "finishedAt": time(c.finished_at),
        "containerID": format!("{runtime}://{}", c.id),
    });
    if let Some(s) = c.signal {
        t["signal"] = json!(s);
    }
    // The container's termination message (its `terminationMessagePath`), else why it
    // never ran.
    if let Some(m) = messages.get(c.id.as_str()).filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    } else if let Some(m) = &c.message {
        t["message"] = json!(m);
    }
    t
}

/// The status of one container (`containerStatuses[]` / `initContainerStatuses[]`).
fn container_status(pod: &Value, spec: &Value, i: &Inputs<'_>, runtime: &str, init: bool) -> Value {
    let name = spec["name"].as_str().unwrap_or("");
    let image = spec["image"].as_str().unwrap_or("");
    let inst = instances(i.containers, name);
    let latest = inst.first().copied();
    let previous = inst.get(1).copied();
    let restart_count = latest.map(restart_count).unwrap_or(0);
    let mut s = json!({
        "name": name,
        "image": image,
        "imageID": "",
        "ready": false,
        "started": false,
        "restartCount": restart_count,
        "lastState": {},
        "state": {"waiting": {"reason": "ContainerCreating"}},
    });
    if let Some(c) = latest {
        s["containerID"] = json!(format!("{runtime}://{}", c.id));
        s["imageID"] = json!(format!("{runtime}://{}", c.image));
    }
    let waiting =
        |reason: &str, message: String| json!({"waiting": {"reason": reason, "message": message}});
    let pod_ref = format!(
        "{}_{}({})",
        pod["metadata"]["name"].as_str().unwrap_or(""),
        pod["metadata"]["namespace"].as_str().unwrap_or(""),
        uid(pod)
    );
    match latest {
        Some(c) if c.state == ContainerState::Running => {
            let probes = i.probes.get(c.id.as_str()).cloned().unwrap_or(ProbeView {
                ready: true,
                started: true,
                restart: None,
            });
            s["state"] = json!({"running": {"startedAt": time(c.started_at)}});
            s["started"] = json!(probes.started);
            s["ready"] = json!(!init && probes.started && probes.ready);
            if let Some(p) = previous {
                s["lastState"] = json!({"terminated": terminated(p, runtime, i.messages)});
            }
        }
        Some(c) if c.state == ContainerState::Created => {
            if let Some(p) = previous {
                s["lastState"] = json!({"terminated": terminated(p, runtime, i.messages)});
            }
        }
        Some(c) => {
            let will_restart = if init {
                !exited_ok(c) && restart_policy(pod) != "Never"
            } else {
                restarts(restart_policy(pod), c)
            };
            let backing_off = restart_at(c, i.backoff_cap).filter(|at| *at > i.now);
            if let (true, Some(at)) = (will_restart, backing_off) {
                let left = at
                    .duration_since(c.finished_at.unwrap_or(i.now))
                    .unwrap_or_default();
                s["state"] = waiting(
                    "CrashLoopBackOff",
                    format!(
                        "back-off {} restarting failed container={name} pod={pod_ref}",
                        human(left)
                    ),
                );
                s["lastState"] = json!({"terminated": terminated(c, runtime, i.messages)});
            } else {
                s["state"] = json!({"terminated": terminated(c, runtime, i.messages)});
                if let Some(p) = previous {
                    s["lastState"] = json!({"terminated": terminated(p, runtime, i.messages)});
                }
            }
        }
        None => {}
    }
    if let Some(w) = i.waiting.get(name) {
        let still = latest.is_none_or(|c| c.state == ContainerState::Exited);
        if still {
            let reason = if w.reason == "ErrImagePull"
                && retry_at(w, i.backoff_cap) > i.now
                && w.failures > 1
            {
                "ImagePullBackOff"
            } else {
                w.reason.as_str()
            };
            let message = if reason == "ImagePullBackOff" {
                format!("Back-off pulling image \"{image}\": {}", w.message)
            } else {
                w.message.clone()
            };
            s["state"] = waiting(reason, message);
        }
    }
    s
}

/// `10s`, `1m20s`, `5m0s`: Go's duration format, as the kubelet's messages print it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// A condition, keeping `lastTransitionTime` from the pod's current status when its status
/// did not change.
fn condition(pod: &Value, ty: &str, ok: bool, reason: Option<&str>, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .filter(|c| c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let mut c = json!({
        "type": ty,
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": since,
    });
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = json!(r);
    }
    c
}

/// The pod's status as the kubelet reports it (`pods/<name>/status`), given the sandbox's
/// address and the node's.
pub fn status(i: &Inputs<'_>, runtime: &str, pod_ip: Option<&str>, host_ip: &str) -> Value {
    let pod = i.pod;
    let now = rfc3339(i.now);
    let expired = deadline_exceeded(pod, i.now);
    let evicted = evicted(i);
    let phase = if expired || evicted {
        "Failed"
    } else {
        phase(pod, i.containers)
    };
    let inits: Vec<Value> = pod["spec"]["initContainers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| container_status(pod, c, i, runtime, true))
                .collect()
        })
        .unwrap_or_default();
    let apps: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| container_status(pod, c, i, runtime, false))
                .collect()
        })
        .unwrap_or_default();
    let initialized = initialized(pod, i.containers);
    let all_ready = !apps.is_empty() && apps.iter().all(|c| c["ready"] == true);
    let not_ready_reason = if matches!(phase, "Succeeded" | "Failed") {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let scheduled_since = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(&now)
        .to_string();
    let conditions = json!([
        condition(pod, "PodReadyToStartContainers", i.sandbox_ready, None, &now),
        condition(pod, "Initialized", initialized, Some("ContainersNotInitialized"), &now),
        condition(pod, "Ready", all_ready, Some(not_ready_reason), &now),
        condition(pod, "ContainersReady", all_ready, Some(not_ready_reason), &now),
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null,
         "lastTransitionTime": scheduled_since},
    ]);
    let start = pod["status"]["startTime"]
        .as_str()
        .map(str::to_string)
        .unwrap_or(now.clone());
    let mut s = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start,
        "containerStatuses": apps,
        "qosClass": pod["status"]["qosClass"].as_str().map(str::to_string).unwrap_or_else(|| qos_class(pod).to_string()),
    });
    if !inits.is_empty() {
        s["initContainerStatuses"] = json!(inits);
    }
    if evicted {
        s["reason"] = json!("Evicted");
        s["message"] = json!(i
            .eviction
            .map(str::to_string)
            .or_else(|| pod["status"]["message"].as_str().map(str::to_string))
            .unwrap_or_default());
    } else if expired {
        s["reason"] = json!("DeadlineExceeded");
        s["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    if let Some(ip) = pod_ip {
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{"ip": ip}]);
    }
    s
}

/// Kubernetes' QoS class: Guaranteed (every container's cpu and memory limits equal their
/// requests), BestEffort (no requests or limits at all), Burstable otherwise.
pub fn qos_class(pod: &Value) -> &'static str {
    let cs: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| pod["spec"][*l].as_array())
        .flatten()
        .collect();
    let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
    if cs
        .iter()
        .all(|c| empty(&c["resources"]["requests"]) && empty(&c["resources"]["limits"]))
    {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = &c["resources"]["limits"][*r];
            let q = &c["resources"]["requests"][*r];
            !l.is_null() && (q.is_null() || q == l)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The container of the pod named `name`, and whether it is an init container.
pub fn container_spec<'a>(pod: &'a Value, name: &str) -> Option<(&'a Value, bool)> {
    for (list, init) in [("initContainers", true), ("containers", false)] {
        if let Some(c) = pod["spec"][list]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        {
            return Some((c, init));
        }
    }
    None
}

/// The id of instance `restart_count` of container `name` of the pod `uid`.
pub fn container_id(uid: &str, name: &str, restart_count: u32) -> String {
    format!("{uid}-{name}-{restart_count}")
}

#[cfg(test)]
mod tests;
