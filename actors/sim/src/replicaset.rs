//! The ReplicaSet controller's shell, simulated as `navarch-controllers`' is built: caches
//! of ReplicaSets and pods, expectations per ReplicaSet uid settled by pod events, the
//! pure step on what the caches show, creates in slow-start batches that stop at the
//! first failed batch, deletes with uid preconditions, status writes, requeues (and after
//! a step with a failed write, a look again after a backoff that doubles with each such
//! step in a row). Each API request is one step of the schedule, so other components act
//! between them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use navarch_logic::meta;
use navarch_logic::replicaset::{self, Expectations, PodRef, ReplicaSetAction, ReplicaSetInput};
use navarch_model::selector::LabelSelector;
use rand::Rng;
use serde_json::Value;

use crate::api::{Api, Kind};
use crate::cores::ReplicaSetCore;
use crate::env::{Env, Violation};
use crate::informer::{CacheEvent, Informer};
use crate::invariants::name::RS_ACTS_ON_ITS_VIEW;

/// The first look again after a step with a failed write, in ms; doubled for each such
/// step in a row, up to [`RETRY_MAX_MS`] (the shell's `replicaset::retry_after`).
const RETRY_BASE_MS: i64 = 1000;
const RETRY_MAX_MS: i64 = 1_000_000;

fn retry_after_ms(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(16);
    (RETRY_BASE_MS << doublings).min(RETRY_MAX_MS)
}

/// One request still to send.
#[derive(Debug)]
enum Op {
    SetOwners {
        pod: PodRef,
        owners: Value,
    },
    /// The creates of one `CreatePods`, in batches of 1, 2, 4, ...
    Create {
        rs_uid: String,
        rs_name: String,
        pod: Value,
        /// Not sent yet, this batch's included.
        remaining: usize,
        /// Not sent yet of this batch.
        batch_left: usize,
        batch: usize,
        failure: Option<String>,
    },
    Delete {
        rs_uid: String,
        victim: PodRef,
    },
    Status(Value),
}

#[derive(Debug)]
pub struct ReplicaSets {
    rss: Informer,
    pods: Informer,
    expectations: BTreeMap<String, Expectations>,
    failures: BTreeMap<String, String>,
    dirty: BTreeSet<String>,
    timers: BTreeMap<String, i64>,
    outbox: VecDeque<Op>,
    /// The ReplicaSet whose step the outbox holds.
    current: String,
    /// Whether a write of the step in the outbox failed.
    step_failed: bool,
    /// Steps in a row with a failed write, by ReplicaSet: its backoff.
    failed_steps: BTreeMap<String, u32>,
    /// Reproduce the real shell's silence after a failed write (no look again), before its
    /// fix.
    forget_failures: bool,
}

fn exp<'a>(all: &'a mut BTreeMap<String, Expectations>, uid: &str) -> &'a mut Expectations {
    all.entry(uid.to_string()).or_default()
}

impl ReplicaSets {
    /// A controller (re)started: it lists both kinds and looks at every ReplicaSet.
    /// `forget_failures`: a failed write is not followed by a look again (the shell before
    /// its fix).
    pub fn start(api: &Api, forget_failures: bool) -> ReplicaSets {
        let (rss, _) = Informer::listed(Kind::ReplicaSet, api);
        let (pods, _) = Informer::listed(Kind::Pod, api);
        let dirty = rss.list().map(|r| meta::name(r).to_string()).collect();
        ReplicaSets {
            rss,
            pods,
            expectations: BTreeMap::new(),
            failures: BTreeMap::new(),
            dirty,
            timers: BTreeMap::new(),
            outbox: VecDeque::new(),
            current: String::new(),
            step_failed: false,
            failed_steps: BTreeMap::new(),
            forget_failures,
        }
    }

    /// Undelivered events per watch (ReplicaSets, pods).
    pub fn pending(&self, api: &Api) -> [usize; 2] {
        [self.rss.pending(api), self.pods.pending(api)]
    }

    /// Delivers the next event of watch `which` and feeds it as the shell does.
    pub fn deliver(&mut self, which: usize, api: &Api) {
        if which == 0 {
            if let Some(e) = self.rss.deliver(api) {
                self.feed_own(e);
            }
        } else if let Some(e) = self.pods.deliver(api) {
            self.feed_pod(e);
        }
    }

    /// A watch was compacted: that cache lists again.
    pub fn relist(&mut self, which: usize, api: &Api) {
        let events = if which == 0 {
            self.rss.relist(api)
        } else {
            self.pods.relist(api)
        };
        for e in events {
            if which == 0 {
                self.feed_own(e);
            } else {
                self.feed_pod(e);
            }
        }
    }

    fn feed_own(&mut self, e: CacheEvent) {
        match e {
            CacheEvent::Added(o) | CacheEvent::Updated { new: o, .. } => {
                self.dirty.insert(meta::name(&o).to_string());
            }
            CacheEvent::Deleted(o) => {
                self.dirty.remove(meta::name(&o));
                self.timers.remove(meta::name(&o));
            }
            CacheEvent::Resynced => self.all_dirty(),
        }
    }

    fn all_dirty(&mut self) {
        let names: Vec<String> = self.rss.list().map(|r| meta::name(r).to_string()).collect();
        self.dirty.extend(names);
    }

    fn owner_name(pod: &Value) -> Option<String> {
        meta::controller_ref(pod).and_then(|o| o["name"].as_str().map(str::to_string))
    }

    fn matching(&self, pod: &Value) -> Vec<String> {
        self.rss
            .list()
            .filter(|rs| {
                LabelSelector::from_object(&rs["spec"]["selector"])
                    .is_ok_and(|s| !s.is_empty() && s.matches(meta::labels(pod)))
            })
            .map(|rs| meta::name(rs).to_string())
            .collect()
    }

    /// The shell's `feed_pods`: expectations settle, the owners (or for orphans the
    /// matching ReplicaSets) are poked.
    fn feed_pod(&mut self, e: CacheEvent) {
        let mut keys = Vec::new();
        match &e {
            CacheEvent::Added(p) => match meta::controller_ref(p) {
                Some(owner) => {
                    if let Some(uid) = owner["uid"].as_str() {
                        exp(&mut self.expectations, uid).creation_observed();
                    }
                    keys.extend(Self::owner_name(p));
                }
                None => keys.extend(self.matching(p)),
            },
            CacheEvent::Updated { old, new } => {
                if meta::is_deleting(new) && !meta::is_deleting(old) {
                    if let Some(uid) = meta::controller_ref(new).and_then(|o| o["uid"].as_str()) {
                        exp(&mut self.expectations, uid).deletion_observed(meta::uid(new));
                    }
                }
                for p in [old, new] {
                    match meta::controller_ref(p) {
                        Some(_) => keys.extend(Self::owner_name(p)),
                        None => keys.extend(self.matching(p)),
                    }
                }
            }
            CacheEvent::Deleted(p) => {
                if let Some(uid) = meta::controller_ref(p).and_then(|o| o["uid"].as_str()) {
                    exp(&mut self.expectations, uid).deletion_observed(meta::uid(p));
                    keys.extend(Self::owner_name(p));
                }
            }
            CacheEvent::Resynced => self.all_dirty(),
        }
        for k in keys {
            if self.rss.get(&k).is_some() {
                self.dirty.insert(k);
            }
        }
    }

    pub fn has_work(&self) -> bool {
        !self.outbox.is_empty() || !self.dirty.is_empty()
    }

    /// Timers due by `now_ms` poke their ReplicaSets.
    pub fn fire_timers(&mut self, now_ms: i64) {
        let due: Vec<String> = self
            .timers
            .iter()
            .filter(|(_, t)| **t <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.timers.remove(&k);
            self.dirty.insert(k);
        }
    }

    pub fn next_timer(&self) -> Option<i64> {
        self.timers.values().min().copied()
    }

    /// Sends the next request, or (with none in flight) reconciles one poked ReplicaSet.
    pub fn work(&mut self, env: &mut Env, core: &mut dyn ReplicaSetCore) -> Result<(), Violation> {
        if !self.outbox.is_empty() {
            self.send(env);
            return Ok(());
        }
        if self.dirty.is_empty() {
            return Ok(());
        }
        let i = env.rng.gen_range(0..self.dirty.len());
        let Some(name) = self.dirty.iter().nth(i).cloned() else {
            return Ok(());
        };
        self.dirty.remove(&name);
        self.reconcile(&name, env, core)
    }

    fn reconcile(
        &mut self,
        name: &str,
        env: &mut Env,
        core: &mut dyn ReplicaSetCore,
    ) -> Result<(), Violation> {
        let Some(rs) = self.rss.get(name).cloned() else {
            self.failed_steps.remove(name);
            return Ok(());
        };
        let uid = meta::uid(&rs).to_string();
        let mut pods = self.pods.owned_by(&uid);
        pods.extend(
            self.pods
                .list()
                .filter(|p| meta::controller_ref(p).is_none())
                .cloned(),
        );
        let expectations = self.expectations.get(&uid).cloned().unwrap_or_default();
        let failure = self.failures.get(&uid).cloned();
        let now = env.now();
        let input = ReplicaSetInput {
            replica_set: &rs,
            pods: &pods,
            expectations: &expectations,
            create_failure: failure.as_deref(),
            now,
        };
        let plan = core.reconcile(&input);
        acts_on_its_view(&input, &plan)?;
        if plan.actions.is_empty() && plan.requeue_after.is_none() {
            return Ok(());
        }
        let mut summary = Vec::new();
        for action in plan.actions {
            match action {
                ReplicaSetAction::SetOwners {
                    pod,
                    owner_references,
                } => {
                    summary.push(format!("owners {}", pod.name));
                    self.outbox.push_back(Op::SetOwners {
                        pod,
                        owners: owner_references,
                    });
                }
                ReplicaSetAction::CreatePods { count, pod } => {
                    summary.push(format!("create {count}"));
                    // Expectations first, before anything is sent.
                    exp(&mut self.expectations, &uid).expect_creations(count, now);
                    self.outbox.push_back(Op::Create {
                        rs_uid: uid.clone(),
                        rs_name: name.to_string(),
                        pod,
                        remaining: count,
                        batch_left: 1.min(count),
                        batch: 1,
                        failure: None,
                    });
                }
                ReplicaSetAction::DeletePods(victims) => {
                    let names: Vec<&str> = victims.iter().map(|v| v.name.as_str()).collect();
                    summary.push(format!("delete {}", names.join(",")));
                    exp(&mut self.expectations, &uid)
                        .expect_deletions(victims.iter().map(|v| v.uid.as_str()), now);
                    for victim in victims {
                        self.outbox.push_back(Op::Delete {
                            rs_uid: uid.clone(),
                            victim,
                        });
                    }
                }
                ReplicaSetAction::UpdateStatus(obj) => {
                    summary.push(format!(
                        "status {}",
                        obj["status"]["replicas"].as_i64().unwrap_or(0)
                    ));
                    self.outbox.push_back(Op::Status(obj));
                }
                ReplicaSetAction::Event(_) => {}
            }
        }
        if let Some(after) = plan.requeue_after {
            let at = env.now_ms + after.max(1) * 1000;
            let t = self.timers.entry(name.to_string()).or_insert(at);
            *t = (*t).min(at);
        }
        self.current = name.to_string();
        self.step_failed = false;
        env.log(format!("rs {name}: {}", summary.join("; ")));
        if self.outbox.is_empty() {
            self.step_done(env);
        }
        Ok(())
    }

    fn send(&mut self, env: &mut Env) {
        let Some(op) = self.outbox.front_mut() else {
            return;
        };
        let mut failed = false;
        let done = match op {
            Op::SetOwners { pod, owners } => {
                let r = env.call(|api, _| api.set_owners(&pod.name, &pod.resource_version, owners));
                env.log(format!("rs: owners of {} -> {}", pod.name, outcome(&r)));
                failed = r.is_err();
                true
            }
            Op::Status(obj) => {
                let r = env.call(|api, _| api.update(Kind::ReplicaSet, obj, true));
                env.log(format!(
                    "rs: status of {} -> {}",
                    meta::name(obj),
                    outcome(&r)
                ));
                failed = r.is_err();
                true
            }
            Op::Delete { rs_uid, victim } => {
                let r = env.call(|api, now| {
                    api.delete(Kind::Pod, &victim.name, Some(&victim.uid), None, now)
                });
                env.log(format!("rs: delete {} -> {}", victim.name, outcome(&r)));
                if r.is_err() {
                    failed = true;
                    // It will not be observed gone (or is gone already).
                    exp(&mut self.expectations, rs_uid).deletion_observed(&victim.uid);
                }
                true
            }
            Op::Create {
                rs_uid,
                rs_name,
                pod,
                remaining,
                batch_left,
                batch,
                failure,
            } => {
                let suffix = env.suffix();
                let body = pod.clone();
                let r = env.call(|api, now| api.create(Kind::Pod, body, now, suffix));
                let name = r.as_ref().map(|p| meta::name(p).to_string());
                env.log(format!(
                    "rs: create pod of {rs_name} -> {}",
                    name.as_deref().unwrap_or_else(|e| if e.is_conflict() {
                        "conflict"
                    } else {
                        "error"
                    })
                ));
                if let Err(e) = &r {
                    failed = true;
                    exp(&mut self.expectations, rs_uid).creation_failed();
                    *failure = Some(e.to_string());
                }
                *remaining -= 1;
                *batch_left -= 1;
                if *batch_left > 0 {
                    false
                } else if failure.is_some() || *remaining == 0 {
                    // The creates never sent will not be observed either.
                    for _ in 0..*remaining {
                        exp(&mut self.expectations, rs_uid).creation_failed();
                    }
                    match failure.take() {
                        Some(f) => self.failures.insert(rs_uid.clone(), f),
                        None => self.failures.remove(rs_uid.as_str()),
                    };
                    true
                } else {
                    *batch *= 2;
                    *batch_left = (*batch).min(*remaining);
                    false
                }
            }
        };
        self.step_failed |= failed;
        if done {
            self.outbox.pop_front();
            if self.outbox.is_empty() {
                self.step_done(env);
            }
        }
    }

    /// The step in the outbox is carried out: after a failed write, a look again after the
    /// backoff; otherwise the backoff starts over.
    fn step_done(&mut self, env: &mut Env) {
        if !self.step_failed {
            self.failed_steps.remove(&self.current);
            return;
        }
        self.step_failed = false;
        if self.forget_failures {
            return;
        }
        let n = self.failed_steps.entry(self.current.clone()).or_default();
        *n = n.saturating_add(1);
        let at = env.now_ms + retry_after_ms(*n);
        let t = self.timers.entry(self.current.clone()).or_insert(at);
        *t = (*t).min(at);
    }
}

fn outcome<T>(r: &Result<T, crate::error::ApiError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

/// Invariant `replicaset-acts-on-its-view`: a step creates only what its own view lacks
/// and deletes only what its view has beyond `spec.replicas`, only pods it owns or adopts,
/// each once, and neither while expectations are unmet. The real core's rule, checked on
/// whatever core runs.
fn acts_on_its_view(input: &ReplicaSetInput, plan: &replicaset::Plan) -> Result<(), Violation> {
    let rs = input.replica_set;
    let uid = meta::uid(rs);
    let Ok(selector) = LabelSelector::from_object(&rs["spec"]["selector"]) else {
        return Ok(());
    };
    let deleting = meta::is_deleting(rs);
    let mine: BTreeSet<&str> = input
        .pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| replicaset::is_active(p) && selector.matches(meta::labels(p)))
        .filter(|p| match meta::controller_ref(p) {
            Some(r) => r["uid"].as_str() == Some(uid),
            None => !deleting,
        })
        .map(meta::uid)
        .collect();
    let have = mine.len() as i64;
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let satisfied = input.expectations.satisfied(input.now);
    let name = meta::name(rs);
    for a in &plan.actions {
        match a {
            ReplicaSetAction::CreatePods { count, .. }
                if !satisfied || deleting || *count as i64 > want - have =>
            {
                return Err(Violation::new(
                    RS_ACTS_ON_ITS_VIEW,
                    format!("{name} creates {count} pods with {have} active of {want} wanted (expectations met: {satisfied})"),
                ));
            }
            ReplicaSetAction::DeletePods(victims) => {
                let distinct: BTreeSet<&str> = victims.iter().map(|v| v.uid.as_str()).collect();
                let foreign: Vec<&str> = victims
                    .iter()
                    .filter(|v| !mine.contains(v.uid.as_str()))
                    .map(|v| v.name.as_str())
                    .collect();
                if !satisfied
                    || deleting
                    || victims.len() as i64 > have - want
                    || distinct.len() != victims.len()
                    || !foreign.is_empty()
                {
                    let names: Vec<&str> = victims.iter().map(|v| v.name.as_str()).collect();
                    return Err(Violation::new(
                        RS_ACTS_ON_ITS_VIEW,
                        format!(
                            "{name} deletes {names:?} with {have} active of {want} wanted (expectations met: {satisfied}, not its own: {foreign:?})"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
