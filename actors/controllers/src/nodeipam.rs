//! The node IPAM controller: a singleton on the active master that gives every Node without
//! one a pod range from the cluster's (`--cluster-cidr` split by `--node-cidr-mask-size`),
//! as Kubernetes' `nodeipam` controller does, writing as `node-controller`. The decision is
//! `navarch_logic::nodeipam::plan`'s; a pass runs when a Node without a range appears in the
//! node cache, and again a second after a write failed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, SingletonLogic, SingletonRef,
    SingletonSpec, SnapshotSource, SourceError, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subscription};
use navarch_logic::nodeipam::{self, Allocator, Plan};
use navarch_model::identity::NODE_LIFECYCLE_CONTROLLER;
use navarch_model::kinds::Kind;
use navarch_model::options::{Patch, WriteOptions};
use navarch_model::patch::PatchType;
use tokio::task::JoinHandle;

use crate::context::Ctx;

fn nodes() -> &'static Kind {
    navarch_client::kind("", "v1", "nodes")
}

/// What the controller hears.
#[derive(Debug, Clone)]
pub enum IpamEvent {
    /// A node may need a range: pass.
    Pass,
}

impl TapInfo for IpamEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Pass".into()
    }
}

/// Carry a pass's plan out.
#[derive(Debug)]
pub struct Carry(Plan);

/// Passes made and ranges given.
#[derive(Debug, Default)]
pub struct IpamState {
    passes: u64,
    assigned: u64,
    exhausted: usize,
}

pub struct IpamLogic {
    nodes: Cache,
    allocator: Allocator,
}

impl IpamLogic {
    fn pass(&self, state: &mut IpamState) -> Vec<Carry> {
        let plan = nodeipam::plan(&self.nodes.list(), &self.allocator);
        state.passes += 1;
        state.assigned += plan.assign.len() as u64;
        state.exhausted = plan.exhausted.len();
        if plan.assign.is_empty() && plan.exhausted.is_empty() {
            Vec::new()
        } else {
            vec![Carry(plan)]
        }
    }
}

impl SingletonLogic for IpamLogic {
    type Snapshot = ();
    type State = IpamState;
    type Event = IpamEvent;
    type Action = Carry;

    fn rebuild(&self, _: ()) -> IpamState {
        IpamState::default()
    }

    fn on_start(&self, state: &mut IpamState) -> Decision<Carry> {
        Ok(self.pass(state))
    }

    fn handle(&self, state: &mut IpamState, _: IpamEvent) -> Decision<Carry> {
        Ok(self.pass(state))
    }

    fn summary(&self, state: &IpamState) -> String {
        format!(
            "range {} /{}, passes {}, ranges given {}, nodes waiting for a free range {}",
            self.allocator.cluster,
            self.allocator.node_mask,
            state.passes,
            state.assigned,
            state.exhausted
        )
    }
}

struct Synced(Cache);

impl SnapshotSource<()> for Synced {
    fn load(&self) -> BoxFuture<'static, Result<(), SourceError>> {
        let nodes = self.0.clone();
        Box::pin(async move {
            nodes
                .wait_synced()
                .await
                .map_err(|_| SourceError::Unavailable("the watch cache stopped".into()))
        })
    }
}

struct IpamEffects {
    client: Arc<dyn Client>,
    handle: Arc<OnceLock<SingletonRef<IpamLogic>>>,
}

impl Effects<Carry> for Arc<IpamEffects> {
    fn perform(
        &self,
        _: &ActorPath,
        plans: Vec<Carry>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let me = self.clone();
        Box::pin(async move {
            let mut retry = false;
            for Carry(plan) in plans {
                for node in &plan.exhausted {
                    tracing::warn!(node = %node, "no pod range left for the node (CIDRNotAvailable)");
                }
                for a in plan.assign {
                    let patch = Patch {
                        ty: PatchType::Merge,
                        body: nodeipam::patch(&a.cidr),
                    };
                    match me
                        .client
                        .patch(
                            nodes(),
                            None,
                            &a.node,
                            None,
                            patch,
                            &WriteOptions::default(),
                        )
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(node = %a.node, pod_cidr = %a.cidr, "pod range given to the node")
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            tracing::warn!(node = %a.node, error = %e, "pod range not written; retrying");
                            retry = true;
                        }
                    }
                }
            }
            if retry {
                crate::context::pass_again(
                    me.handle.clone(),
                    IpamEvent::Pass,
                    Duration::from_secs(1),
                );
            }
            Ok(())
        })
    }
}

/// The running node IPAM controller of one activation.
pub struct NodeIpamController {
    pub handle: SingletonRef<IpamLogic>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NodeIpamController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIpamController").finish()
    }
}

impl Drop for NodeIpamController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl NodeIpamController {
    /// Supervises the controller under `group` and feeds it; `None` when the control plane
    /// hands out no ranges.
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<Option<NodeIpamController>, SupervisorError> {
        let Some(allocator) = ctx.config.node_ipam else {
            return Ok(None);
        };
        let cache = ctx.cache(nodes());
        let me = Arc::new(OnceLock::new());
        let spec = SingletonSpec::new(
            "node-ipam-controller",
            IpamLogic {
                nodes: cache.clone(),
                allocator,
            },
            Arc::new(Synced(cache.clone())),
        )
        .effects(Arc::new(Arc::new(IpamEffects {
            client: ctx.clients.client(&NODE_LIFECYCLE_CONTROLLER),
            handle: me.clone(),
        })));
        let sub = cache.subscribe();
        let handle = group.singleton(spec).await?;
        let _ = me.set(handle.clone());
        let tasks = vec![tokio::spawn(feed(handle.clone(), sub))];
        Ok(Some(NodeIpamController { handle, tasks }))
    }
}

async fn feed(handle: SingletonRef<IpamLogic>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let worth = match &event {
            CacheEvent::Added(n) | CacheEvent::Updated { new: n, .. } => {
                n["spec"]["podCIDR"].as_str().is_none_or(str::is_empty)
            }
            CacheEvent::Deleted(_) => false,
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => true,
        };
        if worth {
            let _ = handle.send(IpamEvent::Pass).await;
        }
    }
}
