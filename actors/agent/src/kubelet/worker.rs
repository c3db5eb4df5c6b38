//! One pass over a pod (the Pod actor's effects): read what the runtime has for it, let
//! [`sync::plan`] decide, carry the actions out, and report [`sync::status`] when it
//! changed. Also the kubelet-wide parts the Pod actors share: the index of containers per
//! pod (rebuilt from the runtimes at start), the container event generator that pokes a pod
//! when one of its containers changes state, and the cleanup of containers whose pod is no
//! longer bound here.
//!
//! # Cancel safety
//! A pass cancelled half-way leaves containers in states the next pass reads back from the
//! runtime: nothing here is remembered only in memory except creation failures (for the
//! `ErrImagePull` back-off), which a restarted kubelet simply retries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use navarch_actors::{KindHandle, ObjectKey};
use navarch_client::{Cache, Client, Subresource};
use navarch_model::options::{DeleteOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_runtime::{
    ContainerId, ContainerRuntime, ContainerState, ContainerStatus, ExecRequest, RuntimeError,
};
use serde_json::{json, Value};

use super::actor::{PodEvent, PodLogic};
use super::containers::{self, ContainerInputs, SandboxView};
use super::prober::{self, Prober};
use super::sync::{self, Action, Inputs, ProbeView, Waiting, LABEL_POD_UID};
use super::KubeletConfig;
use super::{env, volumes};
use crate::network::hosts::{hosts_file, HostsSpec};
use crate::network::NetnsDir;

/// The network namespace of the pod `uid` (`/run/netns/<name>`).
fn netns_name(uid: &str) -> String {
    format!("nv-{uid}")
}

fn pods_kind() -> &'static navarch_model::kinds::Kind {
    navarch_client::kind("", "v1", "pods")
}

/// How many times one pass decides again after acting, before it waits for the next poke.
const MAX_ROUNDS: usize = 6;

/// A container the kubelet knows of: which runtime has it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    runtime: String,
    state: ContainerState,
}

/// One container instance of a pod, from the index (its name and restart count are in its
/// id, `<pod uid>-<container>-<restart count>`).
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub id: ContainerId,
    pub runtime: String,
    pub state: ContainerState,
    pub container: String,
    pub restart: u32,
}

/// What the Pod actors of one kubelet share.
pub struct Shared {
    pub cfg: KubeletConfig,
    pub client: Arc<dyn Client>,
    /// The pods bound to this node.
    pub pods: Cache,
    /// Per pod uid, its containers (mirrors the runtimes' state dirs).
    index: Mutex<BTreeMap<String, BTreeMap<ContainerId, Known>>>,
    /// Per (pod uid, container name), why its creation last failed.
    waiting: Mutex<HashMap<(String, String), Waiting>>,
    /// Per container id, what its probes say (containers without probes are absent).
    probes: Mutex<BTreeMap<String, ProbeView>>,
    pub(crate) handle: OnceLock<KindHandle<PodLogic>>,
    /// Per pod key, the passes finished (what the inspector and tests read).
    passes: Mutex<HashMap<String, u64>>,
    prober: Prober,
    /// Per pod uid, when its configMap and secret volumes were last brought up to date.
    volumes_updated: Mutex<HashMap<String, Instant>>,
    /// RuntimeClass name to handler, and when it was read.
    runtime_classes: Mutex<HashMap<String, (String, Instant)>>,
    /// Per pod key, the earliest timed poke set for it.
    pokes_at: Mutex<HashMap<String, SystemTime>>,
    /// Per (pod uid, ask), the service-account token the pod's projected volumes hold.
    tokens: Mutex<HashMap<(String, volumes::TokenAsk), IssuedToken>>,
    /// The uids of the pods this kubelet admitted (or found running): what a new pod's
    /// resource fit is checked against.
    admitted: Mutex<std::collections::BTreeSet<String>>,
}

/// A service-account token the kubelet got for a pod, and when it is to be renewed.
#[derive(Clone, Debug)]
struct IssuedToken {
    token: String,
    renew_at: SystemTime,
}

/// When a token issued `now` that expires at `expires` is renewed: at 80% of its life, or
/// after a day, whichever comes first (the kubelet's token manager).
fn renew_at(now: SystemTime, expires: SystemTime) -> SystemTime {
    let life = expires.duration_since(now).unwrap_or_default();
    now + (life.mul_f64(0.8)).min(Duration::from_secs(24 * 3600))
}

/// What a pod's environment and volumes are built from besides the pod: the ConfigMaps and
/// Secrets it refers to, and its service-account tokens.
pub(crate) struct PodObjects {
    config_maps: BTreeMap<String, Value>,
    secrets: BTreeMap<String, Value>,
    tokens: BTreeMap<volumes::TokenAsk, String>,
}

/// How soon a container whose service-account token could not be had is tried again.
const TOKEN_RETRY: Duration = Duration::from_secs(1);

/// How long a RuntimeClass's handler is used before it is read again.
const RUNTIME_CLASS_TTL: Duration = Duration::from_secs(30);

/// How often a pod's configMap, secret and projected volumes are rewritten from the
/// current objects (the kubelet's sync period is a minute; changes show within it).
const VOLUME_UPDATE_PERIOD: Duration = Duration::from_secs(20);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node", &self.cfg.node)
            .finish_non_exhaustive()
    }
}

/// What the sandbox of a pod is, as `sandbox.json` in its directory records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxRecord {
    pub ip: String,
    pub netns: Option<PathBuf>,
}

fn uid_of(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn key_text(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace().unwrap_or(""), key.name())
}

impl Shared {
    pub fn new(cfg: KubeletConfig, client: Arc<dyn Client>, pods: Cache) -> Shared {
        Shared {
            cfg,
            client,
            pods,
            index: Mutex::new(BTreeMap::new()),
            waiting: Mutex::new(HashMap::new()),
            probes: Mutex::new(BTreeMap::new()),
            handle: OnceLock::new(),
            passes: Mutex::new(HashMap::new()),
            prober: Prober::default(),
            volumes_updated: Mutex::new(HashMap::new()),
            runtime_classes: Mutex::new(HashMap::new()),
            pokes_at: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            admitted: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    /// Admits a pod before anything of it runs: it fits the node's allocatable beside the
    /// pods admitted before it (Kubernetes' kubelet admission). A pod with containers or a
    /// sandbox already (re-adopted after a restart) is admitted as it is.
    fn admit(&self, pod: &Value, present: bool) -> Result<(), navarch_logic::admission::Rejection> {
        let uid = uid_of(pod);
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if admitted.contains(&uid) {
            return Ok(());
        }
        if !present {
            let pods = self.pods.list();
            // Pods gone from the cache are gone for good (a uid is never reused).
            let live: std::collections::BTreeSet<String> = pods.iter().map(|p| uid_of(p)).collect();
            admitted.retain(|u| live.contains(u));
            let others: Vec<&Value> = pods
                .iter()
                .map(|p| &**p)
                .filter(|p| {
                    let u = uid_of(p);
                    u != uid
                        && admitted.contains(&u)
                        && p["spec"]["nodeName"].as_str() == Some(self.cfg.node.as_str())
                        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                })
                .collect();
            let allocatable = json!(self.cfg.allocatable);
            navarch_logic::admission::admit(&allocatable, &others, pod)?;
        }
        admitted.insert(uid);
        Ok(())
    }

    /// A pod admission refused: it fails, with the reason and message, and never runs.
    async fn report_rejected(
        &self,
        key: &ObjectKey,
        pod: &Value,
        why: &navarch_logic::admission::Rejection,
    ) {
        tracing::warn!(pod = %key_text(key), reason = %why.reason, message = %why.message, "pod rejected");
        let mut status = pod["status"].clone();
        status["phase"] = json!("Failed");
        status["reason"] = json!(why.reason);
        status["message"] = json!(why.message);
        if let Err(e) = self.report(key, pod, status).await {
            tracing::warn!(pod = %key_text(key), error = %e, "pod status not written");
        }
    }

    /// Publishes what the probes of container `id` say.
    pub fn set_probe_view(&self, id: &str, view: ProbeView) {
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), view);
    }

    /// The ConfigMaps and Secrets the pod refers to, read now (those missing are absent:
    /// the env and volumes decide whether that is an error) and its service-account tokens
    /// (renewed when due).
    async fn objects(&self, pod: &Value) -> PodObjects {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let (cms, secrets) = env::referenced_objects(pod);
        let mut out = PodObjects {
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
            tokens: BTreeMap::new(),
        };
        for (names, kind, into) in [
            (cms, "configmaps", &mut out.config_maps),
            (secrets, "secrets", &mut out.secrets),
        ] {
            for name in names {
                match self
                    .client
                    .get(
                        navarch_client::kind("", "v1", kind),
                        Some(ns),
                        &name,
                        &Default::default(),
                    )
                    .await
                {
                    Ok(o) => {
                        into.insert(name, o);
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(namespace = ns, kind, name = %name, error = %e, "object for a pod not read")
                    }
                }
            }
        }
        out.tokens = self.tokens_for(pod).await;
        out
    }

    /// The pod's service environment variables, from the node's Service cache (none
    /// without one).
    fn service_env(&self, pod: &Value) -> Vec<navarch_runtime::EnvVar> {
        let Some(services) = &self.cfg.services else {
            return Vec::new();
        };
        let all = services.list();
        let refs: Vec<&Value> = all.iter().map(|s| s.as_ref()).collect();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let links = pod["spec"]["enableServiceLinks"].as_bool().unwrap_or(true);
        env::service_env(&refs, ns, links)
    }

    /// The pod's current token for each ask of its projected `serviceAccountToken`
    /// sources: a kept one until it is due for renewal, else a new one from the API
    /// (`serviceaccounts/<name>/token`, bound to the pod). One that cannot be had is absent
    /// (the volume then fails to mount, and the next pass asks again).
    async fn tokens_for(&self, pod: &Value) -> BTreeMap<volumes::TokenAsk, String> {
        let mut out = BTreeMap::new();
        let uid = uid_of(pod);
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let account = volumes::service_account_name(pod);
        for ask in volumes::token_asks(pod) {
            let key = (uid.clone(), ask.clone());
            let now = SystemTime::now();
            let kept = self
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .filter(|t| t.renew_at > now)
                .map(|t| t.token.clone());
            if let Some(t) = kept {
                out.insert(ask, t);
                continue;
            }
            let mut spec = json!({
                "expirationSeconds": ask.expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid},
            });
            if !ask.audience.is_empty() {
                spec["audiences"] = json!([ask.audience]);
            }
            let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
            match self.client.create_token(ns, account, request).await {
                Ok(answer) => {
                    let token = answer["status"]["token"].as_str().unwrap_or("").to_string();
                    let expires = answer["status"]["expirationTimestamp"]
                        .as_str()
                        .and_then(navarch_model::time::parse_rfc3339)
                        .and_then(|s| u64::try_from(s).ok())
                        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
                        .unwrap_or(now);
                    if token.is_empty() {
                        tracing::warn!(pod = %name, namespace = ns, "token request answered without a token");
                        continue;
                    }
                    tracing::info!(pod = %name, namespace = ns, account, audience = %ask.audience, "service account token obtained");
                    self.tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(
                            key,
                            IssuedToken {
                                token: token.clone(),
                                renew_at: renew_at(now, expires),
                            },
                        );
                    out.insert(ask, token);
                }
                Err(e) => {
                    tracing::warn!(pod = %name, namespace = ns, account, error = %e, "service account token not obtained")
                }
            }
        }
        out
    }

    fn volume_context<'a>(&'a self, objects: &'a PodObjects) -> volumes::VolumeContext<'a> {
        volumes::VolumeContext {
            config_maps: &objects.config_maps,
            secrets: &objects.secrets,
            tmpfs: nix::unistd::geteuid().is_root(),
            allocatable: &self.cfg.allocatable,
            tokens: &objects.tokens,
        }
    }

    /// Rewrites the pod's configMap and secret volumes when their objects changed, at most
    /// every [`VOLUME_UPDATE_PERIOD`].
    async fn update_volumes(&self, pod: &Value) {
        let has_files = pod["spec"]["volumes"].as_array().is_some_and(|vs| {
            vs.iter().any(|v| {
                ["configMap", "secret", "projected", "downwardAPI"]
                    .iter()
                    .any(|k| v[*k].is_object())
            })
        });
        if !has_files {
            return;
        }
        let uid = uid_of(pod);
        {
            let mut last = self
                .volumes_updated
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match last.get(&uid) {
                Some(t) if now.duration_since(*t) < VOLUME_UPDATE_PERIOD => return,
                _ => {
                    last.insert(uid.clone(), now);
                }
            }
        }
        let objects = self.objects(pod).await;
        match volumes::update(pod, &self.cfg.pod_dir(&uid), &self.volume_context(&objects)) {
            Ok(changed) if !changed.is_empty() => {
                tracing::info!(pod_uid = %uid, volumes = ?changed, "pod volumes updated")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(pod_uid = %uid, error = %e, "pod volumes not updated"),
        }
    }

    /// How many passes over the pod `namespace/name` have finished.
    pub fn passes(&self, namespace: &str, name: &str) -> u64 {
        self.passes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{namespace}/{name}"))
            .copied()
            .unwrap_or(0)
    }

    fn runtime(&self, name: &str) -> Option<&Arc<dyn ContainerRuntime>> {
        self.cfg.runtimes.get(name)
    }

    /// The runtime a pod runs on: the handler of its `runtimeClassName` (the RuntimeClass
    /// object, read through the API and kept [`RUNTIME_CLASS_TTL`]), else the node's default.
    async fn runtime_of(&self, pod: &Value) -> Result<String, String> {
        let Some(class) = pod["spec"]["runtimeClassName"]
            .as_str()
            .filter(|s| !s.is_empty())
        else {
            return Ok(self.cfg.default_runtime.clone());
        };
        let cached = self
            .runtime_classes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(class)
            .filter(|(_, at)| at.elapsed() < RUNTIME_CLASS_TTL)
            .map(|(h, _)| h.clone());
        let handler = match cached {
            Some(h) => h,
            None => {
                let kind = navarch_client::kind("node.k8s.io", "v1", "runtimeclasses");
                let rc = self
                    .client
                    .get(kind, None, class, &Default::default())
                    .await
                    .map_err(|e| {
                        if e.is_not_found() {
                            format!("RuntimeClass \"{class}\" not found")
                        } else {
                            format!("RuntimeClass \"{class}\" not read: {e}")
                        }
                    })?;
                let h = rc["handler"].as_str().unwrap_or("").to_string();
                self.runtime_classes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(class.to_string(), (h.clone(), Instant::now()));
                h
            }
        };
        if self.cfg.runtimes.contains_key(&handler) {
            Ok(handler)
        } else {
            Err(format!(
                "RuntimeClass \"{class}\" has handler {handler:?}, which node {} does not have (it has {:?})",
                self.cfg.node,
                self.cfg.runtimes.keys().collect::<Vec<_>>()
            ))
        }
    }

    /// Rebuilds the index from every runtime's state dir; returns how many containers
    /// (running or not) it found.
    pub async fn adopt(&self) -> Result<usize, RuntimeError> {
        let mut found = 0;
        let mut index = BTreeMap::<String, BTreeMap<ContainerId, Known>>::new();
        for (name, rt) in &self.cfg.runtimes {
            for c in rt.list().await? {
                let Some(uid) = c.labels.get(LABEL_POD_UID) else {
                    continue;
                };
                found += 1;
                index.entry(uid.clone()).or_default().insert(
                    c.id.clone(),
                    Known {
                        runtime: name.clone(),
                        state: c.state,
                    },
                );
            }
        }
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(found)
    }

    fn known(&self, uid: &str) -> Vec<(ContainerId, Known)> {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    fn remember(&self, uid: &str, id: &ContainerId, runtime: &str, state: ContainerState) {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(uid.to_string())
            .or_default()
            .insert(
                id.clone(),
                Known {
                    runtime: runtime.to_string(),
                    state,
                },
            );
    }

    /// The containers the kubelet knows of for the pod `uid`, as the endpoint needs them.
    pub(crate) fn instances_of(&self, uid: &str) -> Vec<Instance> {
        self.known(uid)
            .into_iter()
            .filter_map(|(id, k)| {
                let rest = id.as_str().strip_prefix(uid)?.strip_prefix('-')?;
                let (container, n) = rest.rsplit_once('-')?;
                Some(Instance {
                    container: container.to_string(),
                    restart: n.parse().ok()?,
                    id,
                    runtime: k.runtime,
                    state: k.state,
                })
            })
            .collect()
    }

    /// The last state seen of container `id` of the pod `uid`.
    pub(crate) fn state_of(&self, uid: &str, id: &ContainerId) -> Option<ContainerState> {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)?
            .get(id)
            .map(|k| k.state)
    }

    pub(crate) fn runtime_named(&self, name: &str) -> Option<Arc<dyn ContainerRuntime>> {
        self.cfg.runtimes.get(name).cloned()
    }

    fn forget(&self, uid: &str, id: &ContainerId) {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = index.get_mut(uid) {
            m.remove(id);
            if m.is_empty() {
                index.remove(uid);
            }
        }
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id.as_str());
        self.prober.stop(id.as_str());
    }

    /// The statuses of the pod's containers, now.
    async fn observe(&self, uid: &str) -> Vec<(String, ContainerStatus)> {
        let mut out = Vec::new();
        for (id, known) in self.known(uid) {
            let Some(rt) = self.runtime(&known.runtime) else {
                continue;
            };
            match rt.status(&id).await {
                Ok(s) => {
                    self.remember(uid, &id, &known.runtime, s.state);
                    out.push((known.runtime.clone(), s));
                }
                Err(RuntimeError::NotFound { .. }) => self.forget(uid, &id),
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "container status not read");
                }
            }
        }
        out
    }

    fn sandbox(&self, uid: &str) -> Option<SandboxRecord> {
        let bytes = std::fs::read(self.cfg.pod_dir(uid).join("sandbox.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Pokes the Pod actor of `key`, if it runs.
    pub async fn poke(&self, key: &ObjectKey) {
        if let Some(h) = self.handle.get() {
            if let Ok(Some(child)) = h.child(key).await {
                let _ = child.try_send(PodEvent::Sync);
            }
        }
    }

    /// Pokes the Pod actor of `key` at `at`.
    /// Pokes the Pod actor of `key` at `at`, unless a poke no later than `at` is already
    /// set for it (every pass of a pod in back-off or with a deadline asks again; the
    /// earliest poke's pass asks for the next).
    fn poke_at(self: &Arc<Self>, key: &ObjectKey, at: SystemTime) {
        let text = key_text(key);
        {
            let mut set = self.pokes_at.lock().unwrap_or_else(|p| p.into_inner());
            if set.get(&text).is_some_and(|t| *t <= at) {
                return;
            }
            set.insert(text.clone(), at);
        }
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .max(Duration::from_millis(50));
        let (s, key) = (self.clone(), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            {
                let mut set = s.pokes_at.lock().unwrap_or_else(|p| p.into_inner());
                if set.get(&text) == Some(&at) {
                    set.remove(&text);
                }
            }
            s.poke(&key).await;
        });
    }

    /// One pass over the pod at `key`.
    pub async fn sync(self: &Arc<Self>, key: &ObjectKey) {
        self.pass(key).await;
        *self
            .passes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key_text(key))
            .or_insert(0) += 1;
    }

    async fn pass(self: &Arc<Self>, key: &ObjectKey) {
        for _ in 0..MAX_ROUNDS {
            let Some(pod) = self.pods.get(key.namespace(), key.name()) else {
                return;
            };
            if pod["spec"]["nodeName"].as_str() != Some(self.cfg.node.as_str()) {
                return;
            }
            match self.round(key, &pod).await {
                Ok(true) => continue,
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(pod = %key_text(key), error = %e, "pod sync failed; retrying");
                    self.poke_at(key, SystemTime::now() + Duration::from_secs(2));
                    return;
                }
            }
        }
        // Still acting after MAX_ROUNDS: look again soon rather than spin.
        self.poke_at(key, SystemTime::now() + Duration::from_millis(200));
    }

    /// Decides once, acts, reports; `Ok(true)` when it changed something and should decide
    /// again.
    async fn round(self: &Arc<Self>, key: &ObjectKey, pod: &Value) -> Result<bool, String> {
        let uid = uid_of(pod);
        let runtime = match self.runtime_of(pod).await {
            Ok(r) => r,
            Err(msg) => {
                self.report_unrunnable(key, pod, &msg).await;
                return Ok(false);
            }
        };
        let observed = self.observe(&uid).await;
        let sandbox_now = self.sandbox(&uid);
        if pod["metadata"]["deletionTimestamp"].is_null() {
            // A pod the kubelet rejected stays failed; one not yet admitted must fit.
            let refused = pod["status"]["phase"] == "Failed"
                && pod["status"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("OutOf"));
            if refused && observed.is_empty() && sandbox_now.is_none() {
                return Ok(false);
            }
            if let Err(why) = self.admit(pod, !observed.is_empty() || sandbox_now.is_some()) {
                self.report_rejected(key, pod, &why).await;
                return Ok(false);
            }
        }
        self.follow_probes(key, pod, &observed, sandbox_now.as_ref());
        let containers: Vec<ContainerStatus> = observed.iter().map(|(_, c)| c.clone()).collect();
        let waiting: BTreeMap<String, Waiting> = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((u, _), _)| *u == uid)
            .map(|((_, n), w)| (n.clone(), w.clone()))
            .collect();
        let probes = self
            .probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let messages = self.termination_messages(pod, &containers);
        let sandbox = self.sandbox(&uid);
        let eviction = sandbox
            .as_ref()
            .and_then(|_| empty_dir_over_limit(pod, &self.cfg.pod_dir(&uid)));
        if let Some(why) = &eviction {
            tracing::warn!(pod = %key_text(key), reason = %why, "evicting the pod");
        }
        let now = SystemTime::now();
        let inputs = Inputs {
            pod,
            containers: &containers,
            waiting: &waiting,
            probes: &probes,
            messages: &messages,
            eviction: eviction.as_deref(),
            sandbox_ready: sandbox.is_some(),
            backoff_cap: self.cfg.backoff_cap,
            now,
        };
        let actions = sync::plan(&inputs);
        let mut acted = false;
        for action in actions {
            match action {
                Action::RequeueAt(at) => self.poke_at(key, at),
                Action::SetupSandbox => {
                    self.setup_sandbox(pod).await?;
                    acted = true;
                }
                Action::Start {
                    name,
                    init,
                    restart_count,
                } => {
                    self.start(pod, &runtime, &name, init, restart_count, sandbox.as_ref())
                        .await;
                    acted = true;
                }
                Action::Kill {
                    id,
                    container,
                    grace,
                    pre_stop,
                    reason,
                } => {
                    self.kill(pod, &observed, &id, &container, grace, pre_stop, &reason)
                        .await;
                    acted = true;
                }
                Action::Remove { id } => {
                    self.remove(&uid, &observed, &id).await;
                    acted = true;
                }
                Action::TeardownSandbox => {
                    self.teardown(&uid).await;
                }
                Action::DeletePod { uid } => {
                    self.delete_pod(key, &uid).await?;
                    return Ok(false);
                }
            }
        }
        if acted {
            return Ok(true);
        }
        if sandbox.is_some() {
            self.update_volumes(pod).await;
        }
        // Nothing left to do: say so.
        let ip = sandbox.map(|s| s.ip);
        let host_ip = self.cfg.host_ip.to_string();
        let wanted = sync::status(&inputs, &runtime, ip.as_deref(), &host_ip);
        self.report(key, pod, wanted).await?;
        Ok(false)
    }

    /// The termination file of instance `n` of `container` (bind-mounted at the container's
    /// `terminationMessagePath`).
    fn termination_file(&self, uid: &str, container: &str, n: u32) -> PathBuf {
        self.cfg
            .pod_dir(uid)
            .join("termination")
            .join(format!("{container}-{n}"))
    }

    /// The termination messages of the pod's exited containers: the file the container
    /// wrote (at most 4096 bytes, as Kubernetes reads), else with `FallbackToLogsOnError`
    /// and a failed exit the end of its log (at most 2048 bytes).
    fn termination_messages(
        &self,
        pod: &Value,
        containers: &[ContainerStatus],
    ) -> BTreeMap<String, String> {
        let uid = uid_of(pod);
        let mut out = BTreeMap::new();
        for c in containers
            .iter()
            .filter(|c| c.state == ContainerState::Exited)
        {
            let name = c
                .labels
                .get(sync::LABEL_CONTAINER)
                .map(String::as_str)
                .unwrap_or("");
            let n = sync::restart_count(c);
            let mut text = std::fs::read(self.termination_file(&uid, name, n))
                .map(|mut b| {
                    b.truncate(4096);
                    String::from_utf8_lossy(&b).into_owned()
                })
                .unwrap_or_default();
            let fallback = sync::container_spec(pod, name).is_some_and(|(spec, _)| {
                spec["terminationMessagePolicy"] == "FallbackToLogsOnError"
            });
            if text.is_empty() && fallback && c.exit_code != Some(0) {
                text = log_tail(&c.log_path, 2048);
            }
            if !text.is_empty() {
                out.insert(c.id.as_str().to_string(), text);
            }
        }
        out
    }

    /// Starts probing running containers that have probes, and forgets the probes of those
    /// that stopped.
    fn follow_probes(
        self: &Arc<Self>,
        key: &ObjectKey,
        pod: &Value,
        observed: &[(String, ContainerStatus)],
        sandbox: Option<&SandboxRecord>,
    ) {
        for (runtime, c) in observed {
            let id = c.id.as_str();
            if c.state != ContainerState::Running {
                self.prober.stop(id);
                self.probes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                continue;
            }
            let name = c
                .labels
                .get(sync::LABEL_CONTAINER)
                .map(String::as_str)
                .unwrap_or("");
            let Some((spec, false)) = sync::container_spec(pod, name) else {
                continue;
            };
            if !prober::has_probes(spec) || self.prober.watching(id) {
                continue;
            }
            let (Some(rt), Some(ip)) = (
                self.runtime(runtime).cloned(),
                sandbox.and_then(|s| s.ip.parse().ok()),
            ) else {
                continue;
            };
            let probed = prober::Probed {
                key: key.clone(),
                id: c.id.clone(),
                container: spec.clone(),
                runtime: rt,
                pod_ip: ip,
                started_at: c.started_at.unwrap_or_else(SystemTime::now),
            };
            if let Err(e) = self.prober.start(self, probed) {
                tracing::warn!(container = id, error = %e, "container probes not run");
            }
        }
    }

    async fn report(&self, key: &ObjectKey, pod: &Value, wanted: Value) -> Result<(), String> {
        let current = &pod["status"];
        let same = wanted
            .as_object()
            .is_some_and(|m| m.iter().all(|(k, v)| &current[k] == v));
        if same {
            return Ok(());
        }
        let patch = Patch {
            ty: PatchType::Merge,
            body: json!({"metadata": {"uid": pod["metadata"]["uid"]}, "status": wanted}),
        };
        match self
            .client
            .patch(
                pods_kind(),
                key.namespace(),
                key.name(),
                Some(Subresource::Status),
                patch,
                &WriteOptions::default(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(format!("status not written: {e}")),
        }
    }

    /// A pod this node cannot run at all (no runtime for its class): it waits, saying why.
    async fn report_unrunnable(&self, key: &ObjectKey, pod: &Value, msg: &str) {
        let mut status = pod["status"].clone();
        status["phase"] = json!("Pending");
        let cs: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        json!({"name": c["name"], "image": c["image"], "imageID": "",
                           "ready": false, "started": false, "restartCount": 0, "lastState": {},
                           "state": {"waiting": {"reason": "CreateContainerConfigError", "message": msg}}})
                    })
                    .collect()
            })
            .unwrap_or_default();
        status["containerStatuses"] = json!(cs);
        if let Err(e) = self.report(key, pod, status).await {
            tracing::warn!(pod = %key_text(key), error = %e, "pod status not written");
        }
    }

    async fn setup_sandbox(&self, pod: &Value) -> Result<(), String> {
        let uid = uid_of(pod);
        let dir = self.cfg.pod_dir(&uid);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let record = match &self.cfg.network {
            None => SandboxRecord {
                ip: self.cfg.host_ip.to_string(),
                netns: None,
            },
            Some(cni) => {
                let netns = NetnsDir::default()
                    .create(&netns_name(&uid))
                    .map_err(|e| format!("create the pod's network namespace: {e}"))?;
                let net = cni
                    .add_with_ports(&uid, &netns, &host_ports(pod))
                    .await
                    .map_err(|e| format!("set up the pod's network: {e}"))?;
                SandboxRecord {
                    ip: net.ip.to_string(),
                    netns: Some(netns),
                }
            }
        };
        let hosts = hosts_file(
            std::slice::from_ref(&record.ip),
            &HostsSpec::from_pod(pod),
            &self.cfg.cluster_domain,
        );
        write_atomically(&dir.join("etc-hosts"), hosts.as_bytes())
            .map_err(|e| format!("write the pod's hosts file: {e}"))?;
        let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = crate::dns::resolv::for_pod(
            pod,
            &self.cfg.cluster_dns,
            &self.cfg.cluster_domain,
            &node_resolv,
        );
        write_atomically(&dir.join("etc-resolv"), resolv.as_bytes())
            .map_err(|e| format!("write the pod's resolv.conf: {e}"))?;
        write_atomically(
            &dir.join("sandbox.json"),
            &serde_json::to_vec(&record).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("write the sandbox record: {e}"))?;
        tracing::info!(pod_uid = %uid, ip = %record.ip, "pod sandbox ready");
        Ok(())
    }

    async fn teardown(&self, uid: &str) {
        for (id, known) in self.known(uid) {
            if let Some(rt) = self.runtime(&known.runtime) {
                if let Err(e) = rt.remove(&id).await {
                    if !matches!(e, RuntimeError::NotFound { .. }) {
                        tracing::warn!(container = %id, error = %e, "container not removed");
                        continue;
                    }
                }
            }
            self.forget(uid, &id);
        }
        if let Some(cni) = &self.cfg.network {
            let netns = NetnsDir::default();
            let name = netns_name(uid);
            let path = netns.path(&name).unwrap_or_default();
            if let Err(e) = cni.del(uid, &path).await {
                // The sandbox record stays: the next cleanup tries again.
                tracing::warn!(pod_uid = uid, error = %e, "pod network not torn down; retrying later");
                return;
            }
            if let Err(e) = netns.delete(&name) {
                tracing::warn!(pod_uid = uid, error = %e, "pod network namespace not removed");
                return;
            }
        }
        let dir = self.cfg.pod_dir(uid);
        if dir.exists() {
            if let Err(e) = volumes::cleanup(&dir) {
                tracing::warn!(pod_uid = uid, error = %e, "pod volumes not cleaned up; retrying later");
                return;
            }
        }
        self.volumes_updated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(u, _), _| u != uid);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "pod directory not removed");
            }
        }
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(u, _), _| u != uid);
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        pod: &Value,
        runtime: &str,
        name: &str,
        init: bool,
        restart_count: u32,
        sandbox: Option<&SandboxRecord>,
    ) {
        let uid = uid_of(pod);
        let Some((container, _)) = sync::container_spec(pod, name) else {
            return;
        };
        let Some(rt) = self.runtime(runtime) else {
            return;
        };
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let view = SandboxView {
            netns: sandbox.and_then(|s| s.netns.clone()),
        };
        let objects = self.objects(pod).await;
        let services = self.service_env(pod);
        let pod_ip = sandbox.map(|s| s.ip.clone());
        let host_ip = self.cfg.host_ip.to_string();
        let env_ctx = env::EnvContext {
            pod_ip: pod_ip.as_deref(),
            host_ip: Some(&host_ip),
            config_maps: &objects.config_maps,
            secrets: &objects.secrets,
            allocatable: &self.cfg.allocatable,
            services: &services,
        };
        let env = match env::container_env(pod, container, &env_ctx) {
            Ok(e) => e,
            Err(e) => return self.failed(&uid, name, e.reason(), e.to_string()),
        };
        let prepared =
            volumes::prepare(pod, &self.cfg.pod_dir(&uid), &self.volume_context(&objects))
                .and_then(|v| v.mounts_for(container));
        let mut mounts = match prepared {
            Ok(m) => m,
            // The account is about to be made (a namespace a moment old) or the API is
            // briefly away: asked again in a second, not backed off.
            Err(e @ volumes::VolumeError::TokenUnavailable { .. }) => {
                return self.failed_with(
                    &uid,
                    name,
                    "ContainerCreating",
                    format!("MountVolume failed: {e}"),
                    Some(TOKEN_RETRY),
                )
            }
            Err(e) => {
                return self.failed(
                    &uid,
                    name,
                    "ContainerCreating",
                    format!("MountVolume failed: {e}"),
                )
            }
        };
        let hosts = self.cfg.pod_dir(&uid).join("etc-hosts");
        if hosts.exists() && !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
            mounts.push(navarch_runtime::Mount {
                source: navarch_runtime::MountSource::Bind(hosts),
                container_path: "/etc/hosts".into(),
                read_only: false,
            });
        }
        let resolv = self.cfg.pod_dir(&uid).join("etc-resolv");
        if resolv.exists()
            && !mounts
                .iter()
                .any(|m| m.container_path == "/etc/resolv.conf")
        {
            mounts.push(navarch_runtime::Mount {
                source: navarch_runtime::MountSource::Bind(resolv),
                container_path: "/etc/resolv.conf".into(),
                read_only: false,
            });
        }
        // The termination message file, as the kubelet gives every container one.
        let message_path = container["terminationMessagePath"]
            .as_str()
            .filter(|p| p.starts_with('/'))
            .unwrap_or("/dev/termination-log");
        let message_file = self.termination_file(&uid, name, restart_count);
        let made = message_file
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&message_file, b""));
        if let Err(e) = made {
            return self.failed(
                &uid,
                name,
                "CreateContainerError",
                format!("termination message file: {e}"),
            );
        }
        if !mounts.iter().any(|m| m.container_path == message_path) {
            mounts.push(navarch_runtime::Mount {
                source: navarch_runtime::MountSource::Bind(message_file),
                container_path: message_path.to_string(),
                read_only: false,
            });
        }
        let (command, args) = env::expand_command_args(container, &env);
        let spec = containers::container_spec(ContainerInputs {
            pod,
            container,
            init,
            restart_count,
            env,
            mounts,
            sandbox: &view,
            log_path: self.cfg.log_path(ns, pod_name, &uid, name, restart_count),
        })
        .map(|mut s| {
            s.command = command;
            s.args = args;
            s
        });
        let spec = match spec {
            Ok(s) => s,
            Err(e) => return self.failed(&uid, name, "CreateContainerConfigError", e.to_string()),
        };
        let id = spec.id.clone();
        if let Some(parent) = spec.log.path.as_deref().and_then(Path::parent) {
            if let Err(e) = std::fs::create_dir_all(parent) {
                return self.failed(&uid, name, "CreateContainerError", e.to_string());
            }
        }
        // A leftover of an interrupted pass with this id goes first.
        let _ = rt.remove(&id).await;
        match rt.create(spec).await {
            Ok(s) => self.remember(&uid, &id, runtime, s.state),
            Err(e) if e.is_image_pull() => {
                let image = container["image"].as_str().unwrap_or("");
                return self.failed(
                    &uid,
                    name,
                    "ErrImagePull",
                    format!("failed to pull image \"{image}\": {e}"),
                );
            }
            Err(e) => return self.failed(&uid, name, "CreateContainerError", e.to_string()),
        }
        match rt.start(&id).await {
            Ok(s) => {
                self.remember(&uid, &id, runtime, s.state);
                self.succeeded(&uid, name);
                tracing::info!(pod = %format!("{ns}/{pod_name}"), container = name, restart_count, pid = ?s.pid, "container started");
            }
            Err(e) => {
                // The failure is in the container's status (exited, StartError).
                tracing::warn!(pod = %format!("{ns}/{pod_name}"), container = name, error = %e, "container did not start");
                self.succeeded(&uid, name);
            }
        }
    }

    fn failed(&self, uid: &str, name: &str, reason: &str, message: String) {
        self.failed_with(uid, name, reason, message, None)
    }

    fn failed_with(
        &self,
        uid: &str,
        name: &str,
        reason: &str,
        message: String,
        retry_after: Option<Duration>,
    ) {
        tracing::warn!(pod_uid = uid, container = name, reason, message = %message, "container not created");
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let failures = w
            .get(&(uid.to_string(), name.to_string()))
            .map(|w| w.failures + 1)
            .unwrap_or(1);
        w.insert(
            (uid.to_string(), name.to_string()),
            Waiting {
                reason: reason.to_string(),
                message,
                at: SystemTime::now(),
                failures,
                retry_after,
            },
        );
    }

    fn succeeded(&self, uid: &str, name: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(uid.to_string(), name.to_string()));
    }

    #[allow(clippy::too_many_arguments)]
    async fn kill(
        &self,
        pod: &Value,
        observed: &[(String, ContainerStatus)],
        id: &str,
        container: &str,
        grace: Duration,
        pre_stop: bool,
        reason: &str,
    ) {
        let Some((runtime, status)) = observed.iter().find(|(_, c)| c.id.as_str() == id) else {
            return;
        };
        let Some(rt) = self.runtime(runtime) else {
            return;
        };
        let started = std::time::Instant::now();
        if pre_stop {
            if let Some(cmd) = sync::container_spec(pod, container).and_then(|(c, _)| {
                c["lifecycle"]["preStop"]["exec"]["command"]
                    .as_array()
                    .cloned()
            }) {
                let command: Vec<String> = cmd
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect();
                let request = ExecRequest {
                    command,
                    stdin: None,
                    env: Vec::new(),
                    timeout: grace.max(Duration::from_secs(1)),
                };
                match rt.exec(&status.id, request).await {
                    Ok(out) if out.exit_code == 0 => {}
                    Ok(out) => tracing::warn!(
                        container = id,
                        exit_code = out.exit_code,
                        "preStop hook failed"
                    ),
                    Err(e) => tracing::warn!(container = id, error = %e, "preStop hook failed"),
                }
            }
        }
        let left = grace.saturating_sub(started.elapsed());
        tracing::info!(
            container = id,
            reason,
            grace_seconds = left.as_secs(),
            "stopping container"
        );
        if let Err(e) = rt.stop(&status.id, left).await {
            tracing::warn!(container = id, error = %e, "container not stopped");
        }
    }

    async fn remove(&self, uid: &str, observed: &[(String, ContainerStatus)], id: &str) {
        let Some((runtime, status)) = observed.iter().find(|(_, c)| c.id.as_str() == id) else {
            return;
        };
        if let Some(rt) = self.runtime(runtime) {
            match rt.remove(&status.id).await {
                Ok(()) | Err(RuntimeError::NotFound { .. }) => self.forget(uid, &status.id),
                Err(e) => tracing::warn!(container = id, error = %e, "container not removed"),
            }
        }
    }

    async fn delete_pod(&self, key: &ObjectKey, uid: &str) -> Result<(), String> {
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(uid.to_string()).filter(|u| !u.is_empty()),
            ..DeleteOptions::default()
        };
        match self
            .client
            .delete(pods_kind(), key.namespace(), key.name(), &opts)
            .await
        {
            Ok(_) => {
                tracing::info!(pod = %key_text(key), "pod stopped and deleted");
                Ok(())
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(format!("pod not deleted: {e}")),
        }
    }

    /// The container event generator: every `pleg_period`, the state of every container
    /// that was not exited is read again, and a pod whose container changed is poked.
    pub async fn pleg_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.pleg_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let live: Vec<(String, ContainerId, Known)> = {
                let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
                index
                    .iter()
                    .flat_map(|(uid, m)| {
                        m.iter()
                            .filter(|(_, k)| k.state != ContainerState::Exited)
                            .map(|(id, k)| (uid.clone(), id.clone(), k.clone()))
                    })
                    .collect()
            };
            let mut changed = BTreeSet::new();
            for (uid, id, known) in live {
                let Some(rt) = self.runtime(&known.runtime) else {
                    continue;
                };
                if let Ok(s) = rt.status(&id).await {
                    if s.state != known.state {
                        self.remember(&uid, &id, &known.runtime, s.state);
                        changed.insert(uid);
                    }
                }
            }
            for pod in self.pods.list() {
                if changed.contains(&uid_of(&pod)) {
                    if let Some(key) = key_of(&pod) {
                        self.poke(&key).await;
                    }
                }
            }
        }
    }

    /// Removes the containers (and pod directories) of pods no longer bound to this node:
    /// once when the cache first synced (after an agent restart), then every `resync`.
    pub async fn cleanup_loop(self: Arc<Self>) {
        if self.pods.wait_synced().await.is_err() {
            return;
        }
        loop {
            let bound: BTreeSet<String> = self
                .pods
                .list()
                .iter()
                .filter(|p| p["spec"]["nodeName"].as_str() == Some(self.cfg.node.as_str()))
                .map(|p| uid_of(p))
                .collect();
            let known: Vec<String> = self
                .index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect();
            for uid in known.into_iter().filter(|u| !bound.contains(u)) {
                tracing::info!(pod_uid = %uid, "removing the containers of a pod no longer bound here");
                for (id, known) in self.known(&uid) {
                    if let Some(rt) = self.runtime(&known.runtime) {
                        let _ = rt.stop(&id, Duration::from_secs(2)).await;
                    }
                }
                self.teardown(&uid).await;
            }
            // Pod directories without containers or pods (an interrupted teardown).
            if let Ok(dirs) = std::fs::read_dir(self.cfg.root.join("pods")) {
                for d in dirs.flatten() {
                    let uid = d.file_name().to_string_lossy().to_string();
                    if !bound.contains(&uid) && self.known(&uid).is_empty() {
                        self.teardown(&uid).await;
                    }
                }
            }
            tokio::time::sleep(self.cfg.resync).await;
        }
    }

    /// Pokes every pod every `resync` (probes and back-offs have their own pokes; this
    /// catches anything missed).
    pub async fn resync_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.cfg.resync).await;
            for pod in self.pods.list() {
                if let Some(key) = key_of(&pod) {
                    self.poke(&key).await;
                }
            }
        }
    }
}

/// The actor key of a pod.
pub fn key_of(pod: &Value) -> Option<ObjectKey> {
    ObjectKey::namespaced(
        pod["metadata"]["namespace"].as_str()?,
        pod["metadata"]["name"].as_str()?,
    )
    .ok()
}

/// Kubernetes' eviction message for the first emptyDir on disk whose contents exceed its
/// `sizeLimit` (a Memory emptyDir is a tmpfs of that size: it cannot exceed it).
fn empty_dir_over_limit(pod: &Value, pod_dir: &Path) -> Option<String> {
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let e = &v["emptyDir"];
        let (Some(name), Some(limit)) = (v["name"].as_str(), e["sizeLimit"].as_str()) else {
            continue;
        };
        if e["medium"] == "Memory" {
            continue;
        }
        let Some(bytes) = navarch_model::validate::parse_quantity(limit).map(|n| n / 1_000_000_000)
        else {
            continue;
        };
        let used = volumes::disk_usage(&pod_dir.join("volumes").join(name));
        if i128::from(used) > bytes {
            return Some(format!(
                "Usage of EmptyDir volume \"{name}\" exceeds the limit \"{limit}\". "
            ));
        }
    }
    None
}

/// The host ports the pod's containers publish (`ports[].hostPort`), for `portmap`.
fn host_ports(pod: &Value) -> Vec<crate::network::cni::PortMapping> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            for p in c["ports"].as_array().into_iter().flatten() {
                let (Some(host), Some(port)) =
                    (p["hostPort"].as_u64(), p["containerPort"].as_u64())
                else {
                    continue;
                };
                if host == 0 || host > 65535 || port == 0 || port > 65535 {
                    continue;
                }
                out.push(crate::network::cni::PortMapping {
                    host_port: host as u16,
                    container_port: port as u16,
                    protocol: p["protocol"].as_str().unwrap_or("TCP").to_lowercase(),
                    host_ip: p["hostIP"]
                        .as_str()
                        .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0")
                        .map(str::to_string),
                });
            }
        }
    }
    out
}

/// The last `max` bytes of what a container wrote to its CRI-format log (prefixes stripped).
fn log_tail(path: &Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let mut content = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        if let Some(r) = navarch_runtime::logs::parse(line) {
            content.extend_from_slice(r.content);
            if !r.partial {
                content.push(b'\n');
            }
        }
    }
    let start = content.len().saturating_sub(max);
    String::from_utf8_lossy(&content[start..]).into_owned()
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_four_fifths_of_their_life_or_after_a_day() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = renew_at(now, now + Duration::from_secs(3600));
        assert_eq!(hour.duration_since(now).unwrap(), Duration::from_secs(2880));
        let week = renew_at(now, now + Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            week.duration_since(now).unwrap(),
            Duration::from_secs(24 * 3600)
        );
        // An expiry already past (clock skew): renewed on the next pass.
        assert_eq!(renew_at(now, now - Duration::from_secs(5)), now);
    }
}
