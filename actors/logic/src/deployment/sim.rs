//! A small in-memory cluster for the Deployment controller's tests: it applies plans the
//! way the API would (resourceVersion preconditions, generations), plays the ReplicaSet
//! controller (pods created and deleted to match `spec.replicas`, not-ready ones deleted
//! first, readiness after a delay, terminating pods lingering), and checks the rollout's
//! invariants at every step.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{equal_ignore_hash, reconcile, DeploymentAction, DeploymentInput, Plan};
use crate::events::EventSpec;
use crate::meta;

/// When a pod becomes ready, from its image: seconds after its creation, or never.
pub(super) type Readiness = Box<dyn Fn(&str) -> Option<i64>>;

pub(super) struct Sim {
    pub d: Value,
    pub rss: Vec<Value>,
    pub pods: Vec<Value>,
    pub events: Vec<EventSpec>,
    pub now: i64,
    pub readiness: Readiness,
    /// Seconds a deleted pod stays (terminating) before it is gone.
    pub grace: i64,
    /// Whether the Deployment's second write in a plan gets the resourceVersion the first
    /// returned (the documented caller protocol); otherwise it conflicts.
    pub chain_rv: bool,
    /// Writes refused on their resourceVersion precondition.
    pub conflicts: usize,
    /// Assert after each plan: the ReplicaSets' replicas sum to at most this.
    pub max_total: Option<i64>,
    /// Assert after each scale-down: available pods stay at least this (or what they were).
    pub min_available: Option<i64>,
    /// Assert (Recreate): never a pod of the new template beside a pod of an old one.
    pub no_overlap: bool,
    rv: u64,
    seq: u64,
}

fn set_rv(obj: &mut Value, rv: u64) {
    meta::object_at(obj, "metadata").insert("resourceVersion".into(), json!(rv.to_string()));
}

fn image(template: &Value) -> &str {
    template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
}

impl Sim {
    pub fn new(mut d: Value, now: i64) -> Sim {
        let md = meta::object_at(&mut d, "metadata");
        md.entry("uid").or_insert(json!("uid-deploy"));
        md.entry("namespace").or_insert(json!("default"));
        md.entry("generation").or_insert(json!(1));
        md.insert("resourceVersion".into(), json!("1"));
        Sim {
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            events: Vec::new(),
            now,
            readiness: Box::new(|_| Some(0)),
            grace: 0,
            chain_rv: true,
            conflicts: 0,
            max_total: None,
            min_available: None,
            no_overlap: false,
            rv: 1,
            seq: 0,
        }
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// A user's edit of the Deployment's spec (a new generation).
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        let before = self.d["spec"].clone();
        f(&mut self.d);
        if self.d["spec"] != before {
            let g = meta::generation(&self.d) + 1;
            meta::object_at(&mut self.d, "metadata").insert("generation".into(), json!(g));
        }
        let rv = self.next_rv();
        set_rv(&mut self.d, rv);
    }

    pub fn plan(&self) -> Plan {
        let rss: Vec<Arc<Value>> = self.rss.iter().cloned().map(Arc::new).collect();
        let pods: Vec<Arc<Value>> = self.pods.iter().cloned().map(Arc::new).collect();
        reconcile(&DeploymentInput {
            deployment: &self.d,
            replica_sets: &rss,
            pods: &pods,
            now: self.now,
        })
    }

    fn rs_index(&self, name: &str) -> Option<usize> {
        self.rss.iter().position(|r| meta::name(r) == name)
    }

    /// Applies a plan as the API would.
    pub fn apply(&mut self, plan: &Plan) {
        let plan_rv = meta::resource_version(&self.d).to_string();
        let mut deployment_written = false;
        for action in &plan.actions {
            match action {
                DeploymentAction::CreateReplicaSet(obj) => {
                    let name = meta::name(obj).to_string();
                    assert!(self.rs_index(&name).is_none(), "{name} exists already");
                    assert!(meta::is_controlled_by(obj, meta::uid(&self.d)));
                    let mut obj = obj.clone();
                    let rv = self.next_rv();
                    set_rv(&mut obj, rv);
                    let md = meta::object_at(&mut obj, "metadata");
                    md.insert("uid".into(), json!(format!("uid-{name}")));
                    md.insert("generation".into(), json!(1));
                    md.insert(
                        "creationTimestamp".into(),
                        json!(meta::format_rfc3339(self.now)),
                    );
                    obj["status"] = json!({});
                    self.rss.push(obj);
                }
                DeploymentAction::UpdateReplicaSet(obj) => {
                    let i = self.rs_index(meta::name(obj)).expect("updated RS exists");
                    let stored = &self.rss[i];
                    if meta::resource_version(obj) != meta::resource_version(stored) {
                        panic!("conflict updating {}", meta::name(obj));
                    }
                    let mut obj = obj.clone();
                    obj["status"] = stored["status"].clone();
                    let mut g = meta::generation(stored);
                    if obj["spec"] != stored["spec"] {
                        g += 1;
                    }
                    meta::object_at(&mut obj, "metadata").insert("generation".into(), json!(g));
                    let rv = self.next_rv();
                    set_rv(&mut obj, rv);
                    self.rss[i] = obj;
                }
                DeploymentAction::DeleteReplicaSet {
                    name,
                    uid,
                    resource_version,
                } => {
                    let i = self.rs_index(name).expect("deleted RS exists");
                    assert_eq!(meta::uid(&self.rss[i]), uid);
                    assert_eq!(meta::resource_version(&self.rss[i]), resource_version);
                    let rs = self.rss.remove(i);
                    self.pods
                        .retain(|p| !meta::is_controlled_by(p, meta::uid(&rs)));
                }
                DeploymentAction::UpdateDeployment(obj) | DeploymentAction::UpdateStatus(obj) => {
                    let rv = meta::resource_version(obj);
                    let fresh = rv == meta::resource_version(&self.d);
                    let chained = self.chain_rv && deployment_written && rv == plan_rv;
                    if !fresh && !chained {
                        self.conflicts += 1;
                        continue;
                    }
                    if let DeploymentAction::UpdateStatus(obj) = action {
                        self.d["status"] = obj["status"].clone();
                    } else {
                        let mut g = meta::generation(&self.d);
                        if obj["spec"] != self.d["spec"] {
                            g += 1;
                        }
                        let status = self.d["status"].clone();
                        self.d = obj.clone();
                        self.d["status"] = status;
                        meta::object_at(&mut self.d, "metadata")
                            .insert("generation".into(), json!(g));
                    }
                    let rv = self.next_rv();
                    set_rv(&mut self.d, rv);
                    deployment_written = true;
                }
                DeploymentAction::Event(e) => self.events.push(e.clone()),
            }
        }
    }

    fn owner_uid(pod: &Value) -> &str {
        meta::controller_ref(pod)
            .and_then(|r| r["uid"].as_str())
            .unwrap_or("")
    }

    fn available_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| meta::pod_available(p, 0, self.now))
            .count()
    }

    /// The ReplicaSet controller and the kubelets for one second. Whether anything changed.
    fn play_replica_sets(&mut self) -> bool {
        let before_pods = self.pods.clone();
        let before_rss = self.rss.clone();
        // Deletions first, to check what they do to availability.
        let available_before = self.available_pods();
        for rs in &self.rss {
            let uid = meta::uid(rs).to_string();
            let spec = super::work::spec_replicas(rs).max(0) as usize;
            let mut active: Vec<usize> = (0..self.pods.len())
                .filter(|i| {
                    Self::owner_uid(&self.pods[*i]) == uid && !meta::is_deleting(&self.pods[*i])
                })
                .collect();
            if active.len() > spec {
                // Not ready first, then the newest.
                active.sort_by_key(|i| {
                    let p = &self.pods[*i];
                    (meta::pod_ready(p), std::cmp::Reverse(meta::created_at(p)))
                });
                for &i in &active[..active.len() - spec] {
                    meta::object_at(&mut self.pods[i], "metadata").insert(
                        "deletionTimestamp".into(),
                        json!(meta::format_rfc3339(self.now)),
                    );
                }
            }
        }
        if self.grace == 0 {
            self.pods.retain(|p| !meta::is_deleting(p));
        }
        if let Some(min) = self.min_available {
            let after = self.available_pods() as i64;
            let floor = min.min(available_before as i64);
            assert!(
                after >= floor,
                "available pods fell to {after} (from {available_before}, min {min})"
            );
        }
        // Creations.
        let mut new_pods = Vec::new();
        for rs in &self.rss {
            let uid = meta::uid(rs);
            let spec = super::work::spec_replicas(rs).max(0) as usize;
            let active = self
                .pods
                .iter()
                .filter(|p| Self::owner_uid(p) == uid && !meta::is_deleting(p))
                .count();
            for _ in active..spec {
                self.seq += 1;
                let template = &rs["spec"]["template"];
                new_pods.push(json!({
                    "metadata": {
                        "name": format!("{}-{}", meta::name(rs), self.seq),
                        "namespace": meta::namespace(rs),
                        "uid": format!("uid-pod-{}", self.seq),
                        "labels": template["metadata"]["labels"].clone(),
                        "creationTimestamp": meta::format_rfc3339(self.now),
                        "ownerReferences": [meta::controller_ref_to(rs, "apps/v1", "ReplicaSet")],
                    },
                    "spec": template["spec"].clone(),
                    "status": {"phase": "Pending"},
                }));
            }
        }
        self.pods.extend(new_pods);
        // Readiness.
        for p in &mut self.pods {
            if meta::pod_ready(p) || meta::is_deleting(p) {
                continue;
            }
            let created = meta::created_at(p).unwrap_or(0);
            if let Some(after) = (self.readiness)(image(p)) {
                if created + after <= self.now {
                    p["status"] = json!({"phase": "Running", "conditions": [{
                        "type": "Ready", "status": "True",
                        "lastTransitionTime": meta::format_rfc3339(self.now),
                    }]});
                }
            }
        }
        // Terminating pods go after their grace period.
        let (now, grace) = (self.now, self.grace);
        self.pods.retain(|p| {
            let since = p["metadata"]["deletionTimestamp"]
                .as_str()
                .and_then(meta::parse_rfc3339);
            since.is_none_or(|t| t + grace > now)
        });
        // ReplicaSet statuses.
        for i in 0..self.rss.len() {
            let uid = meta::uid(&self.rss[i]).to_string();
            let min_ready = self.rss[i]["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
            let active: Vec<&Value> = self
                .pods
                .iter()
                .filter(|p| Self::owner_uid(p) == uid && !meta::is_deleting(p))
                .collect();
            let status = json!({
                "replicas": active.len(),
                "readyReplicas": active.iter().filter(|p| meta::pod_ready(p)).count(),
                "availableReplicas": active.iter().filter(|p| meta::pod_available(p, min_ready, self.now)).count(),
                "observedGeneration": meta::generation(&self.rss[i]),
            });
            if self.rss[i]["status"] != status {
                self.rss[i]["status"] = status;
                let rv = self.next_rv();
                set_rv(&mut self.rss[i], rv);
            }
        }
        if self.no_overlap {
            let template = &self.d["spec"]["template"];
            let new_uids: Vec<&str> = self
                .rss
                .iter()
                .filter(|r| equal_ignore_hash(&r["spec"]["template"], template))
                .map(meta::uid)
                .collect();
            let new_pods = self
                .pods
                .iter()
                .filter(|p| new_uids.contains(&Self::owner_uid(p)));
            let old_pods = self
                .pods
                .iter()
                .filter(|p| !new_uids.contains(&Self::owner_uid(p)));
            assert!(
                new_pods.count() == 0 || old_pods.count() == 0,
                "new and old pods at once"
            );
        }
        self.pods != before_pods || self.rss != before_rss
    }

    /// One reconcile, applied, then a second of the cluster. The plan and whether the
    /// cluster changed on its own.
    pub fn step(&mut self) -> (Plan, bool) {
        let plan = self.plan();
        assert_eq!(plan, self.plan(), "reconcile is deterministic");
        self.apply(&plan);
        if let Some(max) = self.max_total {
            let total: i64 = self.rss.iter().map(super::work::spec_replicas).sum();
            assert!(
                total <= max,
                "ReplicaSets sum to {total} replicas, more than {max}"
            );
        }
        let changed = self.play_replica_sets();
        self.now += 1;
        (plan, changed)
    }

    /// Steps until a reconcile has nothing to do, nothing changes, and nothing is
    /// scheduled. The number of steps.
    pub fn converge(&mut self, max_steps: usize) -> usize {
        for n in 1..=max_steps {
            let (plan, changed) = self.step();
            let terminating = self.pods.iter().any(meta::is_deleting);
            if plan.actions.is_empty() && !changed && !terminating && plan.requeue_after.is_none() {
                return n;
            }
        }
        panic!(
            "no convergence in {max_steps} steps: {:#}\n{:#}",
            self.d,
            json!(self.rss)
        );
    }

    pub fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
    }

    /// The ReplicaSet whose template is the Deployment's.
    pub fn new_rs(&self) -> Option<&Value> {
        let template = &self.d["spec"]["template"];
        self.rss
            .iter()
            .find(|r| equal_ignore_hash(&r["spec"]["template"], template))
    }

    pub fn rs_by_image(&self, img: &str) -> Option<&Value> {
        self.rss
            .iter()
            .find(|r| image(&r["spec"]["template"]) == img)
    }

    pub fn events_with(&self, reason: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.message.clone())
            .collect()
    }
}
