//! `navctl plan -f deploy.yaml`: where a Deployment's pods would go and what applying it
//! would change, without changing anything (Nomad's `job plan`). It reads the cluster's
//! nodes and pods, and places the new pods with the scheduler's own pure logic.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::Args;
use navarch_client::Client;
use navarch_logic::deployment::{rolling_bounds, template_hash};
use navarch_logic::meta;
use navarch_logic::scheduler::{self, ClusterState, Placement};
use navarch_model::options::{GetOptions, ListOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::{json, Value};

use super::{manifest, server_error, Conn};

/// `navctl plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The manifest holding the Deployment (the first Deployment in it is planned).
    #[arg(short = 'f', long = "filename")]
    pub filename: String,
}

fn kind(group: &str, plural: &str) -> &'static navarch_model::kinds::Kind {
    navarch_client::kind(group, "v1", plural)
}

/// Prints the plan of the Deployment in `a.filename`.
pub async fn plan(a: &PlanArgs) -> Result<()> {
    let objects = manifest::read(&a.filename)?;
    let Some(d) = objects.into_iter().find(|o| o["kind"] == "Deployment") else {
        bail!("error: no Deployment in {}", a.filename);
    };
    let s = a.conn.open()?;
    let ns = d["metadata"]["namespace"]
        .as_str()
        .unwrap_or(&s.namespace)
        .to_string();
    let name = meta::name(&d).to_string();
    if name.is_empty() {
        bail!("error: the Deployment has no metadata.name");
    }
    let existing = match s
        .api
        .get(
            kind("apps", "deployments"),
            Some(&ns),
            &name,
            &GetOptions::default(),
        )
        .await
    {
        Ok(v) => Some(v),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(server_error(e)),
    };
    // The Deployment as the server would store it (a dry run: defaults applied, validated,
    // nothing written), so the template hash is the one its ReplicaSet will have.
    let deployments = kind("apps", "deployments");
    let dry = WriteOptions {
        dry_run: true,
        ..WriteOptions::default()
    };
    let mut body = d.clone();
    body["metadata"]["namespace"] = json!(ns);
    let d = match &existing {
        None => s.api.create(deployments, Some(&ns), body, &dry).await,
        Some(_) => {
            let patch = Patch {
                ty: PatchType::Merge,
                body,
            };
            s.api
                .patch(deployments, Some(&ns), &name, None, patch, &dry)
                .await
        }
    }
    .map_err(server_error)?
    .object;
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let hash = template_hash(&d["spec"]["template"], None);
    let rs_name = format!("{name}-{hash}");
    let mut out = Vec::new();
    match &existing {
        None => out.push(format!(
            "+ deployment.apps/{name} created: {replicas} replicas, replicaset {rs_name}"
        )),
        Some(cur) => {
            let cur_hash = template_hash(&cur["spec"]["template"], None);
            let cur_replicas = cur["spec"]["replicas"].as_i64().unwrap_or(1);
            if cur_hash == hash {
                out.push(format!("~ deployment.apps/{name}: pod template unchanged"));
            } else {
                let strategy = d["spec"]["strategy"]["type"]
                    .as_str()
                    .unwrap_or("RollingUpdate");
                let ru = &d["spec"]["strategy"]["rollingUpdate"];
                let (surge, unavailable) = rolling_bounds(
                    replicas,
                    ru.get("maxSurge").unwrap_or(&json!("25%")),
                    ru.get("maxUnavailable").unwrap_or(&json!("25%")),
                );
                out.push(format!(
                    "~ deployment.apps/{name}: new pod template, replicaset {rs_name} replaces {name}-{cur_hash}"
                ));
                for diff in template_changes(&cur["spec"]["template"], &d["spec"]["template"]) {
                    out.push(format!("    {diff}"));
                }
                if strategy == "Recreate" {
                    out.push(
                        "    strategy Recreate: every old pod stops before new ones start".into(),
                    );
                } else {
                    out.push(format!(
                        "    strategy RollingUpdate: at most {} pods, at least {} available during the rollout",
                        replicas + surge,
                        (replicas - unavailable).max(0)
                    ));
                }
            }
            if cur_replicas != replicas {
                out.push(format!("    replicas {cur_replicas} -> {replicas}"));
            }
        }
    }
    // Place the pods the new ReplicaSet would have, one after the other, as the scheduler
    // would: on the cluster as it is, each placed pod counted for the next.
    let nodes = s
        .api
        .list(kind("", "nodes"), None, &ListOptions::default())
        .await
        .map_err(server_error)?;
    let pods = s
        .api
        .list(kind("", "pods"), None, &ListOptions::default())
        .await
        .map_err(server_error)?;
    let mut state = ClusterState::new();
    for n in &nodes.items {
        state.upsert_node(n);
    }
    // The Deployment's pods now are the ones its new pods replace: they do not count.
    let old_uids: Vec<String> = match &existing {
        Some(cur) => s
            .api
            .list(
                kind("apps", "replicasets"),
                Some(&ns),
                &ListOptions::default(),
            )
            .await
            .map_err(server_error)?
            .items
            .iter()
            .filter(|rs| meta::is_controlled_by(rs, meta::uid(cur)))
            .map(|rs| meta::uid(rs).to_string())
            .collect(),
        None => Vec::new(),
    };
    for p in &pods.items {
        let replaced = meta::controller_ref(p)
            .and_then(|r| r["uid"].as_str())
            .is_some_and(|u| old_uids.iter().any(|o| o == u));
        if meta::pod_node(p).is_some() && !replaced {
            state.add_pod(p);
        }
    }
    let mut template_pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "labels": d["spec"]["template"]["metadata"]["labels"].clone(),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": rs_name, "uid": format!("plan-{rs_name}"), "controller": true}]},
        "spec": d["spec"]["template"]["spec"].clone(),
    });
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut unplaced: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..replicas.max(0) {
        template_pod["metadata"]["name"] = json!(format!("{rs_name}-plan{i}"));
        template_pod["metadata"]["uid"] = json!(format!("plan-{i}"));
        match scheduler::schedule(&state, &template_pod) {
            Placement::Node(n) => {
                state.assume(&template_pod, &n);
                *per_node.entry(n).or_default() += 1;
            }
            Placement::Unschedulable(e) => *unplaced.entry(e.message).or_default() += 1,
        }
    }
    out.push(format!(
        "placement of {replicas} pods of {rs_name} on {} nodes, once the pods they replace are gone:",
        state.node_count()
    ));
    for (node, n) in &per_node {
        out.push(format!("    {node}: {n}"));
    }
    for (why, n) in &unplaced {
        out.push(format!("    {n} unschedulable: {why}"));
    }
    for line in out {
        println!("{line}");
    }
    Ok(())
}

/// What changed in a pod template, container by container (image, command, resources).
fn template_changes(old: &Value, new: &Value) -> Vec<String> {
    let containers = |t: &Value| -> BTreeMap<String, Value> {
        t["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (a, b) = (containers(old), containers(new));
    let mut out = Vec::new();
    for (name, c) in &b {
        match a.get(name) {
            None => out.push(format!(
                "container {name}: added ({})",
                c["image"].as_str().unwrap_or("?")
            )),
            Some(o) => {
                for field in ["image", "command", "args", "env", "resources", "ports"] {
                    if o[field] != c[field] {
                        out.push(format!(
                            "container {name}: {field} {} -> {}",
                            o[field], c[field]
                        ));
                    }
                }
            }
        }
    }
    for name in a.keys().filter(|n| !b.contains_key(*n)) {
        out.push(format!("container {name}: removed"));
    }
    if out.is_empty() && old != new {
        out.push("pod template metadata or spec changed".to_string());
    }
    out
}
