//! Tables for the pod worker's decisions: starts, restarts with back-off, init order,
//! deletion, phases and the status kubectl reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use navarch_runtime::{ContainerId, ContainerState, ContainerStatus, Reason};
use serde_json::{json, Value};

use super::*;

fn t(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn pod(policy: &str) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"restartPolicy": policy, "nodeName": "n1",
                 "containers": [{"name": "app", "image": "busybox"}]},
        "status": {"phase": "Pending"},
    })
}

fn container(
    name: &str,
    n: u32,
    state: ContainerState,
    exit: Option<i32>,
    started: u64,
    finished: Option<u64>,
) -> ContainerStatus {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_CONTAINER.to_string(), name.to_string());
    labels.insert(LABEL_RESTART_COUNT.to_string(), n.to_string());
    ContainerStatus {
        id: ContainerId::new(container_id("u1", name, n)).unwrap(),
        state,
        image: "busybox".into(),
        pid: Some(100),
        created_at: t(started),
        started_at: (state != ContainerState::Created).then(|| t(started)),
        finished_at: finished.map(t),
        exit_code: exit,
        signal: None,
        reason: exit.map(|c| {
            if c == 0 {
                Reason::Completed
            } else {
                Reason::Error
            }
        }),
        message: None,
        stop: Default::default(),
        log_path: PathBuf::from("/dev/null"),
        labels,
    }
}

struct Case {
    containers: Vec<ContainerStatus>,
    waiting: BTreeMap<String, Waiting>,
    probes: BTreeMap<String, ProbeView>,
    messages: BTreeMap<String, String>,
    eviction: Option<String>,
    sandbox: bool,
    now: SystemTime,
}

impl Case {
    fn new(containers: Vec<ContainerStatus>, now: u64) -> Case {
        Case {
            containers,
            waiting: BTreeMap::new(),
            probes: BTreeMap::new(),
            messages: BTreeMap::new(),
            eviction: None,
            sandbox: true,
            now: t(now),
        }
    }
    fn inputs<'a>(&'a self, pod: &'a Value) -> Inputs<'a> {
        Inputs {
            pod,
            containers: &self.containers,
            waiting: &self.waiting,
            probes: &self.probes,
            messages: &self.messages,
            eviction: self.eviction.as_deref(),
            sandbox_ready: self.sandbox,
            backoff_cap: BACKOFF_CAP,
            now: self.now,
        }
    }
}

fn start(name: &str, n: u32) -> Action {
    Action::Start {
        name: name.into(),
        init: false,
        restart_count: n,
    }
}

#[test]
fn a_new_pod_gets_its_sandbox_then_its_containers() {
    let p = pod("Always");
    let mut c = Case::new(vec![], 0);
    c.sandbox = false;
    assert_eq!(plan(&c.inputs(&p)), vec![Action::SetupSandbox]);
    c.sandbox = true;
    assert_eq!(plan(&c.inputs(&p)), vec![start("app", 0)]);
    let s = status(&c.inputs(&p), "process", Some("10.42.0.5"), "127.0.0.1");
    assert_eq!(s["phase"], "Pending");
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    assert_eq!(s["podIP"], "10.42.0.5");
}

#[test]
fn a_running_container_is_left_alone_and_reported_ready() {
    let p = pod("Always");
    let c = Case::new(
        vec![container("app", 0, ContainerState::Running, None, 0, None)],
        5,
    );
    assert!(plan(&c.inputs(&p)).is_empty());
    let s = status(&c.inputs(&p), "process", Some("10.42.0.5"), "127.0.0.1");
    assert_eq!(s["phase"], "Running");
    let cs = &s["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["started"], true);
    assert_eq!(cs["containerID"], "process://u1-app-0");
    let ready = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
}

#[test]
fn restarts_back_off_from_ten_seconds_doubling_to_the_cap() {
    assert_eq!(backoff(0, Duration::ZERO, BACKOFF_CAP), Duration::ZERO);
    assert_eq!(
        backoff(1, Duration::ZERO, BACKOFF_CAP),
        Duration::from_secs(10)
    );
    assert_eq!(
        backoff(2, Duration::ZERO, BACKOFF_CAP),
        Duration::from_secs(20)
    );
    assert_eq!(
        backoff(6, Duration::ZERO, BACKOFF_CAP),
        Duration::from_secs(300)
    );
    assert_eq!(
        backoff(60, Duration::ZERO, BACKOFF_CAP),
        Duration::from_secs(300)
    );
    // The cap is a flag, beyond Kubernetes' 5 minutes too.
    assert_eq!(
        backoff(7, Duration::ZERO, Duration::from_secs(900)),
        Duration::from_secs(640)
    );
    // A long run resets it.
    assert_eq!(
        backoff(5, Duration::from_secs(601), BACKOFF_CAP),
        Duration::ZERO
    );
}

#[test]
fn a_crashing_container_restarts_at_once_then_waits_in_crash_loop_back_off() {
    let p = pod("Always");
    // The first exit restarts at once.
    let c = Case::new(
        vec![container(
            "app",
            0,
            ContainerState::Exited,
            Some(1),
            0,
            Some(1),
        )],
        1,
    );
    assert_eq!(plan(&c.inputs(&p)), vec![start("app", 1)]);
    // The second waits 10 s after its exit.
    let c = Case::new(
        vec![
            container("app", 0, ContainerState::Exited, Some(1), 0, Some(1)),
            container("app", 1, ContainerState::Exited, Some(1), 2, Some(3)),
        ],
        5,
    );
    assert_eq!(plan(&c.inputs(&p)), vec![Action::RequeueAt(t(13))]);
    let s = status(&c.inputs(&p), "process", None, "127.0.0.1");
    let cs = &s["containerStatuses"][0];
    assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert!(cs["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .starts_with("back-off 10s restarting failed container=app pod=web_shop(u1)"));
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(s["phase"], "Running");
    let c = Case { now: t(13), ..c };
    assert_eq!(plan(&c.inputs(&p)), vec![start("app", 2)]);
}

#[test]
fn restart_policies_decide_and_phases_follow() {
    let done = |code| {
        vec![container(
            "app",
            0,
            ContainerState::Exited,
            Some(code),
            0,
            Some(1),
        )]
    };
    for (policy, code, restarted, phase_) in [
        ("Always", 0, true, "Running"),
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 2, true, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 2, false, "Failed"),
    ] {
        let p = pod(policy);
        let c = Case::new(done(code), 2);
        let actions = plan(&c.inputs(&p));
        assert_eq!(
            actions.contains(&start("app", 1)),
            restarted,
            "{policy} {code}: {actions:?}"
        );
        assert_eq!(phase(&p, &c.containers), phase_, "{policy} {code}");
        if phase_ == "Succeeded" {
            let s = status(&c.inputs(&p), "process", None, "h");
            assert_eq!(
                s["containerStatuses"][0]["state"]["terminated"]["reason"],
                "Completed"
            );
        }
    }
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let mut p = pod("Always");
    p["spec"]["initContainers"] =
        json!([{"name": "one", "image": "busybox"}, {"name": "two", "image": "busybox"}]);
    let init = |name: &str, n| Action::Start {
        name: name.into(),
        init: true,
        restart_count: n,
    };
    let c = Case::new(vec![], 0);
    assert_eq!(plan(&c.inputs(&p)), vec![init("one", 0)]);
    let c = Case::new(
        vec![container("one", 0, ContainerState::Running, None, 0, None)],
        1,
    );
    assert!(plan(&c.inputs(&p)).is_empty());
    assert_eq!(phase(&p, &c.containers), "Pending");
    let c = Case::new(
        vec![container(
            "one",
            0,
            ContainerState::Exited,
            Some(0),
            0,
            Some(1),
        )],
        1,
    );
    assert_eq!(plan(&c.inputs(&p)), vec![init("two", 0)]);
    let c = Case::new(
        vec![
            container("one", 0, ContainerState::Exited, Some(0), 0, Some(1)),
            container("two", 0, ContainerState::Exited, Some(0), 1, Some(2)),
        ],
        3,
    );
    assert_eq!(plan(&c.inputs(&p)), vec![start("app", 0)]);
    let s = status(&c.inputs(&p), "process", None, "h");
    let initialized = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .unwrap();
    assert_eq!(initialized["status"], "True");
    assert_eq!(
        s["initContainerStatuses"][1]["state"]["terminated"]["reason"],
        "Completed"
    );
    // A failed init container under Never fails the pod.
    let mut never = p.clone();
    never["spec"]["restartPolicy"] = json!("Never");
    let c = Case::new(
        vec![container(
            "one",
            0,
            ContainerState::Exited,
            Some(1),
            0,
            Some(1),
        )],
        2,
    );
    assert!(plan(&c.inputs(&never)).is_empty());
    assert_eq!(phase(&never, &c.containers), "Failed");
}

#[test]
fn a_deleted_pod_is_stopped_with_its_grace_then_torn_down_and_deleted() {
    let mut p = pod("Always");
    p["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(7);
    let c = Case::new(
        vec![container("app", 0, ContainerState::Running, None, 0, None)],
        1,
    );
    assert_eq!(
        plan(&c.inputs(&p)),
        vec![Action::Kill {
            id: "u1-app-0".into(),
            container: "app".into(),
            grace: Duration::from_secs(7),
            pre_stop: true,
            reason: "Killing".into()
        }]
    );
    let c = Case::new(
        vec![container(
            "app",
            0,
            ContainerState::Exited,
            Some(137),
            0,
            Some(1),
        )],
        2,
    );
    assert_eq!(
        plan(&c.inputs(&p)),
        vec![
            Action::TeardownSandbox,
            Action::DeletePod { uid: "u1".into() }
        ]
    );
}

#[test]
fn a_failing_liveness_probe_kills_and_readiness_gates_ready() {
    let p = pod("Always");
    let mut c = Case::new(
        vec![container("app", 0, ContainerState::Running, None, 0, None)],
        5,
    );
    c.probes.insert(
        "u1-app-0".into(),
        ProbeView {
            ready: false,
            started: true,
            restart: None,
        },
    );
    assert!(plan(&c.inputs(&p)).is_empty());
    let s = status(&c.inputs(&p), "process", Some("10.42.0.5"), "h");
    assert_eq!(s["containerStatuses"][0]["ready"], false);
    let ready = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");
    c.probes.insert(
        "u1-app-0".into(),
        ProbeView {
            ready: false,
            started: true,
            restart: Some("Liveness probe failed".into()),
        },
    );
    assert!(
        matches!(&plan(&c.inputs(&p))[..], [Action::Kill { reason, pre_stop: true, .. }] if reason == "Liveness probe failed")
    );
}

#[test]
fn an_unknown_image_is_err_image_pull_then_image_pull_back_off() {
    let p = pod("Always");
    let mut c = Case::new(vec![], 1);
    c.waiting.insert(
        "app".into(),
        Waiting {
            reason: "ErrImagePull".into(),
            message: "image nope not found".into(),
            at: t(0),
            failures: 1,
            retry_after: None,
        },
    );
    assert_eq!(
        plan(&c.inputs(&p)),
        vec![start("app", 0)],
        "the first retry is at once"
    );
    let s = status(&c.inputs(&p), "process", None, "h");
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ErrImagePull"
    );
    c.waiting.get_mut("app").unwrap().failures = 2;
    assert_eq!(plan(&c.inputs(&p)), vec![Action::RequeueAt(t(10))]);
    let s = status(&c.inputs(&p), "process", None, "h");
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ImagePullBackOff"
    );
    assert_eq!(s["phase"], "Pending");
}

#[test]
fn only_the_two_newest_instances_are_kept() {
    let p = pod("Always");
    let c = Case::new(
        vec![
            container("app", 0, ContainerState::Exited, Some(1), 0, Some(1)),
            container("app", 1, ContainerState::Exited, Some(1), 2, Some(3)),
            container("app", 2, ContainerState::Running, None, 20, None),
        ],
        30,
    );
    assert_eq!(
        plan(&c.inputs(&p)),
        vec![Action::Remove {
            id: "u1-app-0".into()
        }]
    );
}

#[test]
fn qos_classes() {
    let mut p = pod("Always");
    assert_eq!(qos_class(&p), "BestEffort");
    p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
    assert_eq!(qos_class(&p), "Guaranteed");
    p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}});
    assert_eq!(qos_class(&p), "Burstable");
}

#[test]
fn a_pod_past_its_active_deadline_is_killed_and_failed() {
    let mut p = pod("Always");
    p["spec"]["activeDeadlineSeconds"] = json!(30);
    p["status"]["startTime"] = json!(navarch_model::time::rfc3339(t(0)));
    let c = Case::new(
        vec![container("app", 0, ContainerState::Running, None, 0, None)],
        10,
    );
    assert_eq!(
        plan(&c.inputs(&p)),
        vec![Action::RequeueAt(t(30))],
        "a pass at the deadline"
    );
    let c = Case::new(
        vec![container("app", 0, ContainerState::Running, None, 0, None)],
        31,
    );
    assert!(
        matches!(&plan(&c.inputs(&p))[..], [Action::Kill { reason, .. }] if reason == "DeadlineExceeded")
    );
    let c = Case::new(
        vec![container(
            "app",
            0,
            ContainerState::Exited,
            Some(137),
            0,
            Some(32),
        )],
        33,
    );
    assert!(plan(&c.inputs(&p)).is_empty(), "nothing restarts");
    let s = status(&c.inputs(&p), "process", None, "h");
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["reason"], "DeadlineExceeded");
}

#[test]
fn a_termination_message_is_reported_with_the_exit() {
    let p = pod("Never");
    let mut c = Case::new(
        vec![container(
            "app",
            0,
            ContainerState::Exited,
            Some(2),
            0,
            Some(1),
        )],
        2,
    );
    c.messages.insert("u1-app-0".into(), "disk full".into());
    let s = status(&c.inputs(&p), "process", None, "h");
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["message"],
        "disk full"
    );
    assert_eq!(s["phase"], "Failed");
}

#[test]
fn an_evicted_pod_is_killed_and_failed_for_good() {
    let p = pod("Always");
    let mut c = Case::new(
        vec![container("app", 0, ContainerState::Running, None, 0, None)],
        5,
    );
    c.eviction = Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ".into());
    assert!(
        matches!(&plan(&c.inputs(&p))[..], [Action::Kill { reason, .. }] if reason == "Evicted")
    );
    let s = status(&c.inputs(&p), "process", None, "h");
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["reason"], "Evicted");
    // Once reported, it stays evicted though the usage is gone.
    let mut p2 = p.clone();
    p2["status"] = s;
    let c = Case::new(
        vec![container(
            "app",
            0,
            ContainerState::Exited,
            Some(137),
            0,
            Some(6),
        )],
        7,
    );
    assert!(plan(&c.inputs(&p2)).is_empty(), "nothing restarts");
    assert_eq!(
        status(&c.inputs(&p2), "process", None, "h")["phase"],
        "Failed"
    );
}
