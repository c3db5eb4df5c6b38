//! [`HollowNode`]: one node that talks to the API as a kubelet does and runs nothing
//! (Kubernetes' kubemark idea): it registers its Node, renews its Lease, refreshes its
//! status heartbeat, and reports the pods bound to it running (and deletes them when their
//! deletion waits for it), all through a [`Client`] (the node link, in `navarch-node`).
//!
//! Four loops, each retrying on its own: registration first, then the lease (every
//! `lease_renew`), the status heartbeat (every `status_update`) and the pod worker, which
//! reads the pods bound to the node from a watch cache (field selector
//! `spec.nodeName=<node>`) and acts on each change ([`crate::pods`] decides).
//!
//! # Cancel safety
//! [`HollowNode::run`] runs until its task is dropped; dropping it stops every loop (the
//! cache's reflector too). A write in flight then may or may not have been done.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use navarch_client::cache::{CacheConfig, ObjectKey, Scope};
use navarch_client::{Cache, CacheEvent, Client, ClientError, SharedCaches, Subresource};
use navarch_model::authz::NODE_LEASE_NAMESPACE;
use navarch_model::options::{DeleteOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_model::selector::FieldSelector;
use navarch_model::time::rfc3339;
use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Timing;
use crate::ipam::PodIps;
use crate::node::{self, NodeDescription};
use crate::pods::{self, PodAction};

/// The first pause after a failed write; doubled up to [`RETRY_MAX`].
const RETRY_INITIAL: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

fn nodes() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "nodes")
}

fn leases() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("coordination.k8s.io", "v1", "leases")
}

fn pods_kind() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "pods")
}

/// A pause of about `d` (±25%), so that many nodes do not act in step.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

/// What registration learned.
#[derive(Clone, Debug)]
struct Registered {
    uid: Option<String>,
    /// When the conditions last changed (this registration).
    since: String,
}

/// One hollow node.
pub struct HollowNode {
    client: Arc<dyn Client>,
    desc: NodeDescription,
    timing: Timing,
}

impl std::fmt::Debug for HollowNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HollowNode")
            .field("name", &self.desc.name)
            .finish_non_exhaustive()
    }
}

impl HollowNode {
    pub fn new(client: Arc<dyn Client>, desc: NodeDescription, timing: Timing) -> HollowNode {
        HollowNode {
            client,
            desc,
            timing,
        }
    }

    pub fn name(&self) -> &str {
        &self.desc.name
    }

    /// Registers the node, then renews its lease, refreshes its status and reports its
    /// pods until dropped.
    pub async fn run(self) {
        self.run_with(|client, desc| PodWorker::new(client, &desc).run())
            .await
    }

    /// Registers the node, then renews its lease and refreshes its status until dropped,
    /// while `pods` (given the node's client and its description as registered, its pod
    /// range the Node's) looks after the pods: a hollow node's [`PodWorker`], a kubelet.
    pub async fn run_with<F, Fut>(mut self, pods: F)
    where
        F: FnOnce(Arc<dyn Client>, Arc<NodeDescription>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let registered = self.register().await;
        let desc = Arc::new(self.desc);
        let lease = lease_loop(
            self.client.clone(),
            desc.name.clone(),
            registered.uid.clone(),
            self.timing,
        );
        let heartbeat = heartbeat_loop(
            self.client.clone(),
            desc.clone(),
            registered.since.clone(),
            self.timing,
        );
        let pods = pods(self.client.clone(), desc.clone());
        // The lease and heartbeat loops never end; the node ends when its pods' part does.
        tokio::select! {
            _ = lease => {}
            _ = heartbeat => {}
            _ = pods => {}
        }
    }

    /// Creates the Node, or makes an existing one this node's again (its main resource,
    /// then its status); retried until it is done. A pod range already on the Node is the
    /// one the node uses.
    async fn register(&mut self) -> Registered {
        let mut pause = RETRY_INITIAL;
        loop {
            match self.try_register().await {
                Ok(r) => {
                    tracing::info!(node = %self.desc.name, pod_cidr = %self.desc.pod_cidr, "node registered");
                    return r;
                }
                Err(e) => {
                    tracing::warn!(node = %self.desc.name, error = %e, retry_in = ?pause, "node registration failed");
                    tokio::time::sleep(jittered(pause)).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn try_register(&mut self) -> Result<Registered, ClientError> {
        let now = SystemTime::now();
        let w = WriteOptions::default();
        let since = rfc3339(now);
        let created = self
            .client
            .create(nodes(), None, self.desc.object(now), &w)
            .await;
        let stored = match created {
            Ok(written) => written.object,
            Err(e) if e.is_conflict() => {
                let existing = self
                    .client
                    .get(nodes(), None, &self.desc.name, &Default::default())
                    .await?;
                if let Some(cidr) = node::pod_cidr_of(&existing) {
                    self.desc.pod_cidr = cidr;
                }
                // The main resource is written only if it is not this node's already.
                let ours = self.desc.reregistered(&existing);
                let updated = if ours == existing {
                    existing
                } else {
                    self.client
                        .update(nodes(), None, &self.desc.name, None, ours, &w)
                        .await?
                        .object
                };
                let mut with_status = updated;
                with_status["status"] = self.desc.status(&since, &since);
                self.client
                    .update(
                        nodes(),
                        None,
                        &self.desc.name,
                        Some(Subresource::Status),
                        with_status,
                        &w,
                    )
                    .await?
                    .object
            }
            Err(e) => return Err(e),
        };
        Ok(Registered {
            uid: stored["metadata"]["uid"].as_str().map(str::to_string),
            since,
        })
    }
}

/// Renews `kube-node-lease/<node>` every `timing.lease_renew`, creating it if it is
/// missing; a failed renewal is retried sooner.
async fn lease_loop(client: Arc<dyn Client>, node: String, uid: Option<String>, timing: Timing) {
    let duration = timing.lease_duration.as_secs();
    let mut cached: Option<Value> = None;
    let mut pause = RETRY_INITIAL;
    loop {
        let wait = match renew(&*client, &node, uid.as_deref(), duration, &mut cached).await {
            Ok(()) => {
                pause = RETRY_INITIAL;
                jittered(timing.lease_renew)
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %e, retry_in = ?pause, "lease renewal failed");
                let p = pause;
                pause = (pause * 2).min(RETRY_MAX).min(timing.lease_renew);
                p
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn renew(
    client: &dyn Client,
    node: &str,
    uid: Option<&str>,
    duration: u64,
    cached: &mut Option<Value>,
) -> Result<(), ClientError> {
    let w = WriteOptions::default();
    let ns = Some(NODE_LEASE_NAMESPACE);
    let current = match cached.take() {
        Some(l) => l,
        None => match client.get(leases(), ns, node, &Default::default()).await {
            Ok(l) => l,
            Err(e) if e.is_not_found() => {
                let lease = node::lease(node, uid, duration, SystemTime::now());
                let created = client.create(leases(), ns, lease, &w).await?;
                *cached = Some(created.object);
                return Ok(());
            }
            Err(e) => return Err(e),
        },
    };
    let renewed = node::renewed(&current, node, duration, SystemTime::now());
    // A conflict (someone else wrote it) leaves nothing cached: the next try reads it.
    let written = client.update(leases(), ns, node, None, renewed, &w).await?;
    *cached = Some(written.object);
    Ok(())
}

/// Refreshes the Node's conditions' `lastHeartbeatTime` every `timing.status_update`.
async fn heartbeat_loop(
    client: Arc<dyn Client>,
    desc: Arc<NodeDescription>,
    since: String,
    timing: Timing,
) {
    let mut pause = RETRY_INITIAL;
    let mut wait = jittered(timing.status_update);
    loop {
        tokio::time::sleep(wait).await;
        let patch = Patch {
            ty: PatchType::StrategicMerge,
            body: desc.heartbeat(&since, SystemTime::now()),
        };
        let done = client
            .patch(
                nodes(),
                None,
                &desc.name,
                Some(Subresource::Status),
                patch,
                &WriteOptions::default(),
            )
            .await;
        wait = match done {
            Ok(_) => {
                pause = RETRY_INITIAL;
                jittered(timing.status_update)
            }
            Err(e) => {
                tracing::warn!(node = %desc.name, error = %e, retry_in = ?pause, "node status heartbeat failed");
                let p = pause;
                pause = (pause * 2).min(RETRY_MAX);
                p
            }
        };
    }
}

/// Acts on the pods bound to one node, from a watch cache of them.
struct PodWorker {
    client: Arc<dyn Client>,
    node: String,
    host_ip: Ipv4Addr,
    ips: PodIps,
    /// Pods to act on again at a time (after a failed write).
    retry: BTreeMap<ObjectKey, (Instant, Duration)>,
}

fn uid_of(pod: &Value) -> &str {
    pod["metadata"]["uid"].as_str().unwrap_or("")
}

impl PodWorker {
    fn new(client: Arc<dyn Client>, desc: &NodeDescription) -> PodWorker {
        PodWorker {
            client,
            node: desc.name.clone(),
            host_ip: desc.address,
            ips: PodIps::new(desc.pod_cidr),
            retry: BTreeMap::new(),
        }
    }

    fn cache(&self) -> (SharedCaches, Cache) {
        let config = CacheConfig {
            // A node's pods are few; a small queue per subscriber is plenty.
            subscriber_capacity: 1024,
            ..CacheConfig::default()
        };
        let caches = SharedCaches::with_config(
            self.client.clone(),
            config,
            tokio::runtime::Handle::current(),
        );
        let on_node = FieldSelector::parse("Pod", &format!("spec.nodeName={}", self.node))
            .expect("spec.nodeName is a pod field");
        let cache = caches.scoped(Scope::kind(pods_kind()).fields(on_node));
        (caches, cache)
    }

    async fn run(mut self) {
        // The caches live as long as the worker: dropping them stops the reflector.
        let (_caches, cache) = self.cache();
        let mut changes = cache.subscribe();
        loop {
            let next_retry = self.retry.values().map(|(at, _)| *at).min();
            tokio::select! {
                event = changes.recv() => match event {
                    None => return,
                    Some(CacheEvent::Added(p)) | Some(CacheEvent::Updated { new: p, .. }) => {
                        self.reconcile(&p).await;
                    }
                    Some(CacheEvent::Deleted(p)) => {
                        self.ips.release(uid_of(&p));
                        if let Some(k) = ObjectKey::of(&p) {
                            self.retry.remove(&k);
                        }
                    }
                    Some(CacheEvent::Resynced { .. }) | Some(CacheEvent::Lagged(_)) => {
                        self.reconcile_all(&cache).await;
                    }
                },
                _ = sleep_until_opt(next_retry), if next_retry.is_some() => {
                    let now = Instant::now();
                    let due: Vec<ObjectKey> = self
                        .retry
                        .iter()
                        .filter(|(_, (at, _))| *at <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in due {
                        match cache.get(Some(&key.namespace), &key.name) {
                            Some(p) => self.reconcile(&p).await,
                            None => {
                                self.retry.remove(&key);
                            }
                        }
                    }
                }
            }
        }
    }

    /// After a (re)load: the addresses pods already report are theirs, addresses of pods
    /// that are gone are free, and every pod is looked at.
    async fn reconcile_all(&mut self, cache: &Cache) {
        let snapshot = cache.snapshot();
        let present: std::collections::HashSet<&str> =
            snapshot.iter().map(|(_, p)| uid_of(p)).collect();
        for uid in self.ips.holders() {
            if !present.contains(uid.as_str()) {
                self.ips.release(&uid);
            }
        }
        for (_, p) in snapshot.iter() {
            if let Some(ip) = pods::pod_ip(p) {
                self.ips.restore(uid_of(p), ip);
            }
        }
        for (_, p) in snapshot.iter() {
            self.reconcile(p).await;
        }
    }

    fn schedule_retry(&mut self, key: ObjectKey) {
        let pause = self
            .retry
            .get(&key)
            .map(|(_, p)| (*p * 2).min(RETRY_MAX))
            .unwrap_or(RETRY_INITIAL);
        self.retry
            .insert(key, (Instant::now() + jittered(pause), pause));
    }

    async fn reconcile(&mut self, pod: &Value) {
        let Some(key) = ObjectKey::of(pod) else {
            return;
        };
        let uid = uid_of(pod).to_string();
        let outcome = match pods::decide(pod, &self.node) {
            PodAction::Nothing => {
                if let Some(ip) = pods::pod_ip(pod) {
                    self.ips.restore(&uid, ip);
                }
                Ok(())
            }
            PodAction::ReportRunning => self.report_running(&key, &uid, pod).await,
            PodAction::Delete { uid } => self.delete(&key, &uid).await,
        };
        match outcome {
            Ok(()) => {
                self.retry.remove(&key);
            }
            Err(e) if e.is_not_found() => {
                self.retry.remove(&key);
                self.ips.release(&uid);
            }
            Err(e) => {
                tracing::warn!(node = %self.node, pod = %format!("{}/{}", key.namespace, key.name), error = %e, "pod status or deletion failed; will retry");
                self.schedule_retry(key);
            }
        }
    }

    async fn report_running(
        &mut self,
        key: &ObjectKey,
        uid: &str,
        pod: &Value,
    ) -> Result<(), ClientError> {
        let ip = match pods::pod_ip(pod).filter(|ip| self.ips.restore(uid, *ip)) {
            Some(ip) => ip,
            None => self.ips.assign(uid).ok_or_else(|| {
                ClientError::Transport(format!(
                    "the pod range {} of node {} is full",
                    self.ips.range(),
                    self.node
                ))
            })?,
        };
        let status = pods::running_status(pod, ip, self.host_ip, &rfc3339(SystemTime::now()));
        let patch = Patch {
            ty: PatchType::StrategicMerge,
            body: pods::status_patch(status),
        };
        self.client
            .patch(
                pods_kind(),
                Some(&key.namespace),
                &key.name,
                Some(Subresource::Status),
                patch,
                &WriteOptions::default(),
            )
            .await?;
        tracing::debug!(node = %self.node, pod = %format!("{}/{}", key.namespace, key.name), %ip, "pod reported running");
        Ok(())
    }

    /// The pod's containers are "stopped" (nothing runs): delete it now, if it is still
    /// the same pod.
    async fn delete(&mut self, key: &ObjectKey, uid: &str) -> Result<(), ClientError> {
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(uid.to_string()).filter(|u| !u.is_empty()),
            ..DeleteOptions::default()
        };
        match self
            .client
            .delete(pods_kind(), Some(&key.namespace), &key.name, &opts)
            .await
        {
            // 409: another pod of that name by now; this one is gone.
            Ok(_) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e),
        }
        self.ips.release(uid);
        tracing::debug!(node = %self.node, pod = %format!("{}/{}", key.namespace, key.name), "pod stopped and deleted");
        Ok(())
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
