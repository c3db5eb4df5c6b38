//! The user's side of a schedule: Deployments created, scaled up and down, given a new
//! template (a rollout), rolled back to an earlier one, deleted, each chosen by the
//! seeded random source. Users write with a fresh read, so their writes do not conflict.

use std::collections::BTreeMap;

use navarch_logic::meta;
use rand::Rng;
use serde_json::{json, Value};

use crate::api::Kind;
use crate::env::Env;

/// At most this many Deployments at once.
pub const MAX_DEPLOYMENTS: usize = 2;
/// At most this many replicas per Deployment (their sum, with surge, fits the nodes).
pub const MAX_REPLICAS: i64 = 4;

#[derive(Debug, Default)]
pub struct Workload {
    /// Whether to make Recreate Deployments.
    pub recreate: bool,
    created: u32,
    /// The newest image version of each Deployment.
    versions: BTreeMap<String, u32>,
}

fn image(v: u32) -> String {
    format!("app:v{v}")
}

fn deployment(name: &str, recreate: bool, rng: &mut impl Rng) -> Value {
    let strategy = if recreate && rng.gen_ratio(1, 4) {
        json!({"type": "Recreate"})
    } else {
        let pick = |rng: &mut dyn rand::RngCore| match rng.next_u32() % 3 {
            0 => json!("25%"),
            1 => json!(1),
            _ => json!(0),
        };
        json!({"type": "RollingUpdate",
               "rollingUpdate": {"maxSurge": pick(rng), "maxUnavailable": pick(rng)}})
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": rng.gen_range(0..=MAX_REPLICAS),
            "revisionHistoryLimit": rng.gen_range(1..=3),
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image(1)}]},
            },
        },
    })
}

impl Workload {
    pub fn new(recreate: bool) -> Workload {
        Workload {
            recreate,
            ..Workload::default()
        }
    }

    /// One user action.
    pub fn act(&mut self, env: &mut Env) {
        let names: Vec<String> = env
            .api
            .list(Kind::Deployment)
            .map(|d| meta::name(d).to_string())
            .collect();
        if names.len() < MAX_DEPLOYMENTS && (names.is_empty() || env.rng.gen_ratio(1, 4)) {
            self.created += 1;
            let name = format!("web{}", self.created);
            let d = deployment(&name, self.recreate, env.rng);
            let now = env.now();
            if env.api.create(Kind::Deployment, d, now, [0; 5]).is_ok() {
                self.versions.insert(name.clone(), 1);
                env.log(format!("user: create deployment {name}"));
            }
            return;
        }
        let name = names[env.rng.gen_range(0..names.len())].clone();
        let Some(current) = env.api.get(Kind::Deployment, &name).cloned() else {
            return;
        };
        let mut d = (*current).clone();
        let latest = self.versions.get(&name).copied().unwrap_or(1);
        let what = match env.rng.gen_range(0..20) {
            0..=7 => {
                let r = env.rng.gen_range(0..=MAX_REPLICAS);
                d["spec"]["replicas"] = json!(r);
                format!("scale {name} to {r}")
            }
            8..=14 => {
                let v = latest + 1;
                self.versions.insert(name.clone(), v);
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image(v));
                format!("roll {name} out to {}", image(v))
            }
            15..=18 => {
                let v = env.rng.gen_range(1..=latest);
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image(v));
                format!("roll {name} back to {}", image(v))
            }
            _ => {
                let now = env.now();
                let _ = env.api.delete(Kind::Deployment, &name, None, None, now);
                env.log(format!("user: delete deployment {name}"));
                return;
            }
        };
        if env.api.update(Kind::Deployment, &d, false).is_ok() {
            env.log(format!("user: {what}"));
        }
    }
}
