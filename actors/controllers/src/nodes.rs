//! The node lifecycle controller: one actor per Node under the `node` supervisor. Each
//! actor reads its Node, its Lease in `kube-node-lease` and the pods bound to it from the
//! caches, asks `navarch_logic::nodes` what they say (a silent node becomes `Unknown` and
//! tainted unreachable, a node back loses the taints, pods on a NoExecute-tainted node are
//! evicted after their tolerationSeconds), and does it as `node-controller`. It checks
//! again when the Node, its Lease or its pods change, and at the next deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use navarch_actors::{
    Decision, GroupHandle, KindHandle, KindSpec, ObjectKey, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Scope, Subresource, Subscription};
use navarch_logic::meta;
use navarch_logic::nodes::{self, NodeAction, NodeLifecycleConfig, PodEviction, LEASE_NAMESPACE};
use navarch_model::identity::NODE_LIFECYCLE_CONTROLLER;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::feed::{self, Reread, RereadState, Rereading};
use crate::recorder::Recorder;
use crate::source::CacheSource;

fn nodes_kind() -> &'static Kind {
    navarch_client::kind("", "v1", "nodes")
}

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

fn leases() -> &'static Kind {
    navarch_client::kind("coordination.k8s.io", "v1", "leases")
}

/// What the controller's actors share.
pub struct Shared {
    ctx: Ctx,
    nodes: Cache,
    leases: Cache,
    pods: Cache,
    client: Arc<dyn Client>,
    recorder: Recorder,
    config: NodeLifecycleConfig,
    handle: OnceLock<KindHandle<Rereading<NodeLogic>>>,
    requeues: Arc<feed::Requeues>,
}

/// A node actor's messages.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// Its Lease or pods changed, or a deadline came: check again.
    Check,
}

impl TapInfo for NodeEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Check".into()
    }
}

/// What to do about one node.
#[derive(Debug)]
pub struct Step {
    node: Arc<Value>,
    actions: Vec<NodeAction>,
    evict: Vec<Arc<Value>>,
    check_after: Option<i64>,
}

pub struct NodeLogic {
    shared: Arc<Shared>,
}

impl Reread for NodeLogic {
    type Event = NodeEvent;
    type Step = Step;

    fn step(&self, state: &mut RereadState) -> Decision<Step> {
        let s = &self.shared;
        let Some(node) = s.nodes.get(None, state.key.name()) else {
            return Ok(Vec::new());
        };
        let lease = s.leases.get(Some(LEASE_NAMESPACE), state.key.name());
        let now = s.ctx.now();
        let (actions, mut check_after) =
            nodes::node_health(&node, lease.as_deref(), &s.config, now);
        // Evictions follow the taints the node has now; new taints are seen on the next
        // check (the node's update pokes this actor).
        let mut evict = Vec::new();
        let no_execute = node["spec"]["taints"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["effect"] == "NoExecute"));
        let pods = if no_execute {
            s.pods.on_node(state.key.name())
        } else {
            Vec::new()
        };
        for pod in pods {
            match nodes::evictions(&pod, &node, now) {
                PodEviction::Keep => {}
                PodEviction::EvictNow => evict.push(pod),
                PodEviction::EvictAt(at) => {
                    let wait = (at - now).max(1);
                    check_after = Some(check_after.map_or(wait, |c| c.min(wait)));
                }
            }
        }
        state.summary = match meta::condition(&node, "Ready") {
            Some(c) => format!("ready {}", c["status"].as_str().unwrap_or("?")),
            None => "never reported".to_string(),
        };
        if actions.is_empty() && evict.is_empty() && check_after.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Step {
            node,
            actions,
            evict,
            check_after,
        }])
    }
}

/// Carries a step out: conditions (status), then taints (spec), then evictions.
async fn perform_step(s: &Arc<Shared>, step: Step) {
    let opts = WriteOptions::default();
    let name = meta::name(&step.node).to_string();
    let mut retry = false;
    // Conditions first (status), then taints (spec), as Kubernetes does.
    for action in &step.actions {
        match action {
            NodeAction::MarkUnknown { conditions, .. } => {
                let mut node = (*step.node).clone();
                node["status"]["conditions"] = conditions.clone();
                if let Err(e) = s
                    .client
                    .update(
                        nodes_kind(),
                        None,
                        &name,
                        Some(Subresource::Status),
                        node,
                        &opts,
                    )
                    .await
                {
                    tracing::debug!(node = %name, error = %e, "node conditions not updated");
                    retry = true;
                }
            }
            NodeAction::MarkPodsNotReady { .. } => {
                let now = s.ctx.now();
                let writes = s.pods.on_node(&name).into_iter().filter_map(|pod| {
                    let conditions = nodes::pod_not_ready_conditions(&pod, now)?;
                    let client = s.client.clone();
                    Some(async move {
                        let patch = Patch {
                            ty: PatchType::Merge,
                            body: json!({"status": {"conditions": conditions}}),
                        };
                        let _ = client
                            .patch(
                                pods(),
                                Some(meta::namespace(&pod)),
                                meta::name(&pod),
                                Some(Subresource::Status),
                                patch,
                                &WriteOptions::default(),
                            )
                            .await;
                    })
                });
                join_all(writes).await;
            }
            NodeAction::Event(e) => s.recorder.record(e.clone()),
            NodeAction::AddTaint { .. } | NodeAction::RemoveTaint { .. } => {}
        }
    }
    if let Some(taints) = nodes::taints_after(&step.node, &step.actions) {
        // The status write above moved the node: patch the taints on the latest version.
        let patch = Patch {
            ty: PatchType::Merge,
            body: json!({"spec": {"taints": taints}}),
        };
        if let Err(e) = s
            .client
            .patch(nodes_kind(), None, &name, None, patch, &opts)
            .await
        {
            tracing::debug!(node = %name, error = %e, "node taints not updated");
            retry = true;
        }
    }
    let now = s.ctx.now();
    for pod in &step.evict {
        let ns = meta::namespace(pod).to_string();
        let pod_name = meta::name(pod).to_string();
        let patch = Patch {
            ty: PatchType::StrategicMerge,
            body: json!({"status": {"conditions": [nodes::eviction_condition(now)]}}),
        };
        let _ = s
            .client
            .patch(
                pods(),
                Some(&ns),
                &pod_name,
                Some(Subresource::Status),
                patch,
                &opts,
            )
            .await;
        let del = DeleteOptions {
            precondition_uid: Some(meta::uid(pod).to_string()),
            ..DeleteOptions::default()
        };
        match s.client.delete(pods(), Some(&ns), &pod_name, &del).await {
            Ok(_) => s.recorder.record(nodes::eviction_event(pod)),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::debug!(pod = %pod_name, error = %e, "pod not evicted");
                retry = true;
            }
        }
    }
    let after = if retry { Some(1) } else { step.check_after };
    if let (Some(after), Some(h), Ok(key)) = (after, s.handle.get(), ObjectKey::cluster(&name)) {
        s.requeues.after(
            h.clone(),
            key,
            Duration::from_secs(after.max(1) as u64),
            NodeEvent::Check,
        );
    }
}

/// The running node lifecycle controller of one activation.
pub struct NodeController {
    pub handle: KindHandle<Rereading<NodeLogic>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NodeController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeController").finish()
    }
}

impl Drop for NodeController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl NodeController {
    pub async fn start(group: &GroupHandle, ctx: &Ctx) -> Result<NodeController, SupervisorError> {
        let config = NodeLifecycleConfig {
            grace_period: ctx.config.node_monitor_grace_period.as_secs() as i64,
            startup_grace: ctx.config.node_startup_grace_period.as_secs() as i64,
        };
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            nodes: ctx.cache(nodes_kind()),
            leases: ctx
                .caches
                .scoped(Scope::kind(leases()).namespace(LEASE_NAMESPACE)),
            pods: ctx.cache(pods()),
            client: ctx.clients.client(&NODE_LIFECYCLE_CONTROLLER),
            recorder: ctx.recorder(&NODE_LIFECYCLE_CONTROLLER),
            config,
            handle: OnceLock::new(),
            requeues: feed::Requeues::new(ctx.clock.clone()),
        });
        let spec = KindSpec::new(
            "node",
            Rereading(NodeLogic {
                shared: shared.clone(),
            }),
            Arc::new(CacheSource::new(shared.nodes.clone())),
        )
        .effects(Arc::new(feed::InOrder {
            shared: shared.clone(),
            run: |s, step| Box::pin(async move { perform_step(&s, step).await }),
        }));
        let own_sub = shared.nodes.subscribe();
        let lease_sub = shared.leases.subscribe();
        let pod_sub = shared.pods.subscribe();
        let handle = group.supervise(spec).await?;
        let _ = shared.handle.set(handle.clone());
        let own = feed::spawn_own(handle.clone(), &shared.nodes, own_sub);
        let leases_task = tokio::spawn(feed_related(shared.clone(), lease_sub, |l| {
            Some(meta::name(l).to_string())
        }));
        // A pod matters to its node's actor only for evictions: only on a node with a
        // NoExecute taint (a healthy cluster's pod traffic never reaches these actors).
        let nodes = shared.nodes.clone();
        let pods_task = tokio::spawn(feed_related(shared.clone(), pod_sub, move |p| {
            let node = meta::pod_node(p)?;
            let tainted = nodes.get(None, node).is_some_and(|n| {
                n["spec"]["taints"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| t["effect"] == "NoExecute"))
            });
            tainted.then(|| node.to_string())
        }));
        Ok(NodeController {
            handle,
            tasks: vec![own, leases_task, pods_task],
        })
    }
}

/// Pokes the node a Lease or a pod names.
async fn feed_related(
    s: Arc<Shared>,
    mut sub: Subscription,
    node_of: impl Fn(&Value) -> Option<String>,
) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let names: Vec<String> = match &event {
            CacheEvent::Added(o) | CacheEvent::Updated { new: o, .. } => {
                node_of(o).into_iter().collect()
            }
            // A pod gone frees nothing a node's health depends on.
            CacheEvent::Deleted(_) => Vec::new(),
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => s
                .nodes
                .list()
                .iter()
                .map(|n| meta::name(n).to_string())
                .collect(),
        };
        for name in names {
            if let Ok(key) = ObjectKey::cluster(&name) {
                feed::poke(handle, &key, NodeEvent::Check).await;
            }
        }
    }
}
