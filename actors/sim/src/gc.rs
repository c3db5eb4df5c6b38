//! The garbage collector, simulated: dependents (ReplicaSets, pods) whose owners are gone
//! are deleted, or lose the references to them, as `navarch_logic::gc::dependent` decides
//! from a live read of each owner (a pod created by a create still in flight when its
//! ReplicaSet went is collected so).

use navarch_logic::gc::{self, Decision, Owner};
use navarch_logic::meta;
use serde_json::Value;

use crate::api::{Api, EventType, Kind};
use crate::env::Env;

fn owner_kind(r: &Value) -> Option<Kind> {
    match r["kind"].as_str() {
        Some("Deployment") => Some(Kind::Deployment),
        Some("ReplicaSet") => Some(Kind::ReplicaSet),
        _ => None,
    }
}

fn decide(api: &Api, obj: &Value) -> Decision {
    let owners: Vec<Owner> = meta::owner_refs(obj)
        .iter()
        .map(|r| match owner_kind(r) {
            None => Owner::Unknown,
            Some(k) => {
                let name = r["name"].as_str().unwrap_or("");
                match api.get(k, name) {
                    Some(o) if Some(meta::uid(o)) == r["uid"].as_str() => Owner::Exists,
                    _ => Owner::Absent,
                }
            }
        })
        .collect();
    gc::dependent(obj, &owners)
}

#[derive(Debug, Default)]
pub struct Collector {
    /// The lengths of the Deployment and ReplicaSet logs and the pods' log position when
    /// last looked: only an owner going or a pod appearing can make a dependent.
    seen: (usize, usize, usize),
    /// Look again even if nothing was seen to change (after acting).
    stale: bool,
    /// The next dependent to act on, as of revision `seen`.
    next: Option<(Kind, String, Decision)>,
}

impl Collector {
    /// Looks for a dependent to collect, when the API changed.
    pub fn observe(&mut self, api: &Api) {
        let pods = api.log(Kind::Pod);
        let owners_changed = (
            api.log(Kind::Deployment).len(),
            api.log(Kind::ReplicaSet).len(),
        ) != (self.seen.0, self.seen.1);
        let pod_added = pods[self.seen.2.min(pods.len())..]
            .iter()
            .any(|e| e.ty == EventType::Added);
        self.seen = (
            api.log(Kind::Deployment).len(),
            api.log(Kind::ReplicaSet).len(),
            pods.len(),
        );
        if !(owners_changed || pod_added || self.stale) {
            return;
        }
        self.stale = false;
        self.next = None;
        for kind in [Kind::ReplicaSet, Kind::Pod] {
            for obj in api.list(kind) {
                let d = decide(api, obj);
                if d != Decision::Keep {
                    self.next = Some((kind, meta::name(obj).to_string(), d));
                    return;
                }
            }
        }
    }

    pub fn has_work(&self) -> bool {
        self.next.is_some()
    }

    pub fn work(&mut self, env: &mut Env) {
        let Some((kind, name, decision)) = self.next.take() else {
            return;
        };
        // Forces a fresh look at the next step.
        self.stale = true;
        let Some(obj) = env.api.get(kind, &name).cloned() else {
            return;
        };
        let uid = meta::uid(&obj).to_string();
        let r = match decision {
            Decision::Delete => env.call(|api, now| api.delete(kind, &name, Some(&uid), None, now)),
            Decision::SetOwners(owners) if kind == Kind::Pod => env
                .call(|api, _| api.set_owners(&name, meta::resource_version(&obj), &owners))
                .map(|_| ()),
            _ => Ok(()),
        };
        env.log(format!(
            "gc: collect {} {name} -> {}",
            kind.name(),
            r.map_or_else(|e| e.to_string(), |()| "ok".to_string())
        ));
    }
}
