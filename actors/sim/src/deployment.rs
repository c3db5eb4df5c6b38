//! The Deployment controller's shell, simulated as `navarch-controllers`' is built: caches
//! of Deployments, ReplicaSets and pods, read-your-writes on the ReplicaSets it wrote
//! (a step waits until the cache shows them, or 30 s passed, and is taken again then), the
//! pure step, its writes in order stopping at the first failure (then a look again after
//! 1 s), the Deployment's own update sent at the revision its status write returned.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use navarch_logic::deployment::{DeploymentAction, DeploymentInput};
use navarch_logic::meta;
use navarch_model::selector::LabelSelector;
use rand::Rng;
use serde_json::Value;

use crate::api::{Api, Kind};
use crate::cores::DeploymentCore;
use crate::env::Env;
use crate::informer::{CacheEvent, Informer};

/// How long a written ReplicaSet may take to show before its Deployment decides without it.
const WRITE_VISIBLE_WITHIN: i64 = 30;

/// The writes of one step still to send.
#[derive(Debug)]
struct InFlight {
    name: String,
    actions: VecDeque<DeploymentAction>,
    requeue: Option<i64>,
    status_rv: Option<Value>,
}

#[derive(Debug)]
pub struct Deployments {
    deployments: Informer,
    rss: Informer,
    pods: Informer,
    /// ReplicaSets written, by name: (revision, when).
    written: BTreeMap<String, (u64, i64)>,
    dirty: BTreeSet<String>,
    /// Deployments held back until the caches show this controller's writes.
    held: BTreeSet<String>,
    /// Reproduce the real shell's drop of a held-back Deployment's poke (before its fix).
    drop_held: bool,
    timers: BTreeMap<String, i64>,
    in_flight: Option<InFlight>,
}

fn rv(obj: &Value) -> u64 {
    meta::resource_version(obj).parse().unwrap_or(0)
}

impl Deployments {
    /// A controller (re)started. `drop_held`: a Deployment held back by a write not yet
    /// in the cache is forgotten, as `navarch-controllers`' shell did before its fix (only
    /// the writer's Deployment is poked when the write shows); otherwise it is looked at
    /// again once the caches caught up, or the oldest pending write is too old to wait for.
    pub fn start(api: &Api, drop_held: bool) -> Deployments {
        let (deployments, _) = Informer::listed(Kind::Deployment, api);
        let (rss, _) = Informer::listed(Kind::ReplicaSet, api);
        let (pods, _) = Informer::listed(Kind::Pod, api);
        let dirty = deployments
            .list()
            .map(|d| meta::name(d).to_string())
            .collect();
        Deployments {
            deployments,
            rss,
            pods,
            written: BTreeMap::new(),
            dirty,
            held: BTreeSet::new(),
            drop_held,
            timers: BTreeMap::new(),
            in_flight: None,
        }
    }

    fn informer(&mut self, which: usize) -> &mut Informer {
        match which {
            0 => &mut self.deployments,
            1 => &mut self.rss,
            _ => &mut self.pods,
        }
    }

    pub fn pending(&self, api: &Api) -> [usize; 3] {
        [
            self.deployments.pending(api),
            self.rss.pending(api),
            self.pods.pending(api),
        ]
    }

    pub fn deliver(&mut self, which: usize, api: &Api) {
        if let Some(e) = self.informer(which).deliver(api) {
            self.feed(which, e);
        }
    }

    pub fn relist(&mut self, which: usize, api: &Api) {
        for e in self.informer(which).relist(api) {
            self.feed(which, e);
        }
    }

    fn all_dirty(&mut self) {
        let names: Vec<String> = self
            .deployments
            .list()
            .map(|d| meta::name(d).to_string())
            .collect();
        self.dirty.extend(names);
    }

    /// The Deployment a ReplicaSet belongs to, or for an orphan those whose selector
    /// matches it.
    fn deployments_of(&self, rs: &Value) -> Vec<String> {
        match meta::controller_ref(rs) {
            Some(owner) if owner["kind"].as_str() == Some("Deployment") => owner["name"]
                .as_str()
                .map(str::to_string)
                .into_iter()
                .collect(),
            Some(_) => Vec::new(),
            None => self
                .deployments
                .list()
                .filter(|d| {
                    LabelSelector::from_object(&d["spec"]["selector"])
                        .is_ok_and(|s| !s.is_empty() && s.matches(meta::labels(rs)))
                })
                .map(|d| meta::name(d).to_string())
                .collect(),
        }
    }

    fn feed(&mut self, which: usize, e: CacheEvent) {
        if matches!(e, CacheEvent::Resynced) {
            self.all_dirty();
            return;
        }
        let keys: Vec<String> = match (which, &e) {
            (0, CacheEvent::Deleted(d)) => {
                self.timers.remove(meta::name(d));
                self.dirty.remove(meta::name(d));
                Vec::new()
            }
            (0, CacheEvent::Added(d) | CacheEvent::Updated { new: d, .. }) => {
                vec![meta::name(d).to_string()]
            }
            (1, CacheEvent::Added(rs) | CacheEvent::Deleted(rs)) => self.deployments_of(rs),
            (1, CacheEvent::Updated { old, new }) => {
                let mut k = self.deployments_of(old);
                k.extend(self.deployments_of(new));
                k
            }
            // Pods matter only when they go (Recreate waits for the old ones).
            (_, CacheEvent::Deleted(pod)) => {
                let rs = meta::controller_ref(pod)
                    .and_then(|o| o["name"].as_str())
                    .and_then(|n| self.rss.get(n).cloned());
                rs.map(|rs| self.deployments_of(&rs)).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        for k in keys {
            if self.deployments.get(&k).is_some() {
                self.dirty.insert(k);
            }
        }
    }

    pub fn has_work(&self) -> bool {
        self.in_flight.is_some() || !self.dirty.is_empty()
    }

    /// When a held-back Deployment must be looked at again: the oldest pending write
    /// stops holding it back after [`WRITE_VISIBLE_WITHIN`].
    fn held_until(&self) -> Option<i64> {
        if self.held.is_empty() {
            return None;
        }
        self.written
            .values()
            .map(|(_, at)| (at + WRITE_VISIBLE_WITHIN + 1) * 1000)
            .min()
    }

    pub fn fire_timers(&mut self, now_ms: i64) {
        if self.held_until().is_some_and(|t| t <= now_ms) {
            let held = std::mem::take(&mut self.held);
            self.dirty.extend(held);
        }
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
        self.timers.values().copied().chain(self.held_until()).min()
    }

    fn requeue(&mut self, name: &str, at: i64) {
        let t = self.timers.entry(name.to_string()).or_insert(at);
        *t = (*t).min(at);
    }

    /// Whether the caches show every ReplicaSet this controller wrote.
    fn caught_up(&mut self, now: i64) -> bool {
        let rss = &self.rss;
        self.written.retain(|name, (want, at)| {
            if now - *at > WRITE_VISIBLE_WITHIN {
                return false;
            }
            rss.get(name).is_none_or(|rs| rv(rs) < *want)
        });
        if self.written.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.dirty.extend(held);
            true
        } else {
            false
        }
    }

    pub fn work(&mut self, env: &mut Env, core: &mut dyn DeploymentCore) {
        if self.in_flight.is_some() {
            self.send(env);
            return;
        }
        if self.dirty.is_empty() {
            return;
        }
        let i = env.rng.gen_range(0..self.dirty.len());
        let Some(name) = self.dirty.iter().nth(i).cloned() else {
            return;
        };
        self.dirty.remove(&name);
        let Some(d) = self.deployments.get(&name).cloned() else {
            return;
        };
        if !self.caught_up(env.now()) {
            if !self.drop_held {
                self.held.insert(name);
            }
            return;
        }
        let replica_sets: Vec<_> = self.rss.list().cloned().collect();
        let uid = meta::uid(&d);
        let mut pods = Vec::new();
        for rs in replica_sets
            .iter()
            .filter(|rs| meta::is_controlled_by(rs, uid))
        {
            pods.extend(self.pods.owned_by(meta::uid(rs)));
        }
        let plan = core.reconcile(&DeploymentInput {
            deployment: &d,
            replica_sets: &replica_sets,
            pods: &pods,
            now: env.now(),
        });
        if plan.actions.is_empty() && plan.requeue_after.is_none() {
            return;
        }
        let summary: Vec<String> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                DeploymentAction::CreateReplicaSet(rs) => Some(format!(
                    "create {} ({})",
                    meta::name(rs),
                    rs["spec"]["replicas"]
                )),
                DeploymentAction::UpdateReplicaSet(rs) => Some(format!(
                    "update {} ({})",
                    meta::name(rs),
                    rs["spec"]["replicas"]
                )),
                DeploymentAction::DeleteReplicaSet { name, .. } => Some(format!("delete {name}")),
                DeploymentAction::UpdateDeployment(_) => Some("update".to_string()),
                DeploymentAction::UpdateStatus(_) => Some("status".to_string()),
                DeploymentAction::Event(_) => None,
            })
            .collect();
        env.log(format!("deploy {name}: {}", summary.join("; ")));
        self.in_flight = Some(InFlight {
            name,
            actions: plan.actions.into(),
            requeue: plan.requeue_after.map(|a| a.max(1)),
            status_rv: None,
        });
    }

    fn send(&mut self, env: &mut Env) {
        let Some(mut f) = self.in_flight.take() else {
            return;
        };
        let Some(action) = f.actions.pop_front() else {
            self.finish(f, env);
            return;
        };
        let label;
        let result = match action {
            DeploymentAction::CreateReplicaSet(rs) => {
                label = format!("create {}", meta::name(&rs));
                let suffix = env.suffix();
                env.call(|api, now| api.create(Kind::ReplicaSet, rs, now, suffix))
                    .map(|o| self.wrote(&o, env.now()))
            }
            DeploymentAction::UpdateReplicaSet(rs) => {
                label = format!("update {}", meta::name(&rs));
                env.call(|api, _| api.update(Kind::ReplicaSet, &rs, false))
                    .map(|o| self.wrote(&o, env.now()))
            }
            DeploymentAction::DeleteReplicaSet {
                name,
                uid,
                resource_version,
            } => {
                label = format!("delete {name}");
                env.call(|api, now| {
                    api.delete(
                        Kind::ReplicaSet,
                        &name,
                        Some(&uid),
                        Some(&resource_version),
                        now,
                    )
                })
            }
            DeploymentAction::UpdateDeployment(mut d) => {
                label = format!("update {}", meta::name(&d));
                if let Some(rv) = f.status_rv.take() {
                    d["metadata"]["resourceVersion"] = rv;
                }
                env.call(|api, _| api.update(Kind::Deployment, &d, false))
                    .map(|_| ())
            }
            DeploymentAction::UpdateStatus(d) => {
                label = format!("status of {}", meta::name(&d));
                env.call(|api, _| api.update(Kind::Deployment, &d, true))
                    .map(|o| f.status_rv = Some(o["metadata"]["resourceVersion"].clone()))
            }
            DeploymentAction::Event(_) => {
                self.in_flight = Some(f);
                return;
            }
        };
        match result {
            Ok(()) => {
                env.log(format!("deploy: {label} -> ok"));
                if f.actions.is_empty() {
                    self.finish(f, env);
                } else {
                    self.in_flight = Some(f);
                }
            }
            Err(e) => {
                // The caches will show why; the next step starts from there.
                env.log(format!("deploy: {label} -> {e}"));
                f.requeue = Some(1);
                self.finish(f, env);
            }
        }
    }

    fn finish(&mut self, f: InFlight, env: &mut Env) {
        if let Some(after) = f.requeue {
            self.requeue(&f.name, env.now_ms + after * 1000);
        }
    }

    fn wrote(&mut self, obj: &Value, now: i64) {
        self.written
            .insert(meta::name(obj).to_string(), (rv(obj), now));
    }
}
