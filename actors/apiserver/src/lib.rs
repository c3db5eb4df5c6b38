//! navarch's API server as a library: the one request pipeline every caller goes through
//! (users over HTTPS, controllers and the scheduler in process, node agents over their QUIC
//! link), and the only code that touches the objects of the store.
//!
//! Start reading at [`ApiServer`]: [`ApiServer::authorize`] then [`ApiServer::execute`]
//! (or [`ApiServer::handle`], the two in one) run, in this order, authentication,
//! authorization, admission, decoding, defaulting, validation, the verb on the store
//! (`storage`), and the audit record (`audit`). Around it:
//!
//! - `request`: the transport-free request head, body and reply;
//! - `inprocess`: the in-process [`navarch_client::Client`], which runs the pipeline under a
//!   component's identity;
//! - `nodelink`: the `node.*` QUIC service, which runs node agents' requests through the
//!   pipeline as their certificate identity;
//! - `http`: the actix-web layer, which only turns HTTP into requests and replies into HTTP
//!   (TLS, the in-flight limits, content negotiation, chunked watches);
//! - `storage`, `gc`, `reservations`: the verbs on the store; `watch`: typed watch streams
//!   from the store's apply path; `nonresource`: discovery, OpenAPI, health, debug views.
//!
//! Architecture invariants:
//! - No caller reaches `storage` but through `execute`, after authorization (authentication
//!   only reads the account and pod a service-account token names).
//! - A request is authorized on its head (verb, target, query) before its body is read.
//! - Every request, refused or not, leaves exactly one audit record.

pub mod audit;
pub mod authn;
mod authorizer;
pub mod debug;
mod decode;
pub mod encryption;
mod fanout;
mod fence;
mod gc;
pub mod http;
pub mod inprocess;
pub mod kubelet;
pub mod masterservice;
mod metrics;
pub mod nodelink;
mod nonresource;
pub mod request;
pub mod reservations;
mod resource;
pub mod satoken;
mod serviceaccounts;
mod storage;
mod time;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

use navarch_actors::{MessageTap, Registry};
use navarch_model::admission::DefaultTolerationSeconds;
use navarch_model::authz::{Attributes, Binding, Decision, User};
use navarch_model::ApiError;
use navarch_net::fault::FaultInjector;
use navarch_net::trace::with_correlation;
use navarch_store::Member;

pub use authn::{Credentials, TokenFile};
pub use inprocess::InProcessClient;
pub use metrics::GaugeGuard;
pub use nodelink::{NodeLink, NodeLinkLimits};
pub use request::{Body, Origin, Reply, RequestHead, Target, Transport};
pub use storage::SYSTEM_NAMESPACES;

use crate::audit::{AuditLog, Record};
use crate::authorizer::Authorizer;
use crate::encryption::SecretsKey;
use crate::storage::Storage;

/// What the debug endpoints (`/debug/actors`, `/debug/messages`, `/debug/kill`,
/// `/debug/faults`) look into.
#[derive(Clone)]
pub struct DebugHooks {
    pub registry: Registry,
    pub tap: MessageTap,
    pub faults: FaultInjector,
    /// More read-only JSON views, each served at `GET /debug/<name>` (the binary adds the
    /// control plane's activation as `controlplane`).
    pub views: Vec<(&'static str, DebugView)>,
}

/// A read-only debug view: called on each request, answers a JSON document.
pub type DebugView = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// How to build an [`ApiServer`].
pub struct ApiServerConfig {
    /// The store member of this master.
    pub member: Arc<Member>,
    /// The runtime the store runs on; requests are carried out there.
    pub runtime: tokio::runtime::Handle,
    pub tokens: TokenFile,
    /// Extra role bindings (`--authorization-policy-file`).
    pub bindings: Vec<Binding>,
    pub audit: Option<Arc<AuditLog>>,
    pub debug: Option<DebugHooks>,
    /// `host:port` clients reach this server at (for `/api`'s address list).
    pub server_address: String,
    /// Requests of in-process clients in flight at once (apart from HTTP's own limits).
    pub in_process_limit: usize,
    /// DefaultTolerationSeconds: how long a pod tolerates the `node.kubernetes.io/not-ready`
    /// NoExecute taint unless it says otherwise (`--default-not-ready-toleration-seconds`).
    pub default_not_ready_toleration_seconds: i64,
    /// The same for `node.kubernetes.io/unreachable`
    /// (`--default-unreachable-toleration-seconds`).
    pub default_unreachable_toleration_seconds: i64,
    /// What Secrets are sealed with in the store: every master of a cluster must use the
    /// same one ([`SecretsKey::from_ca_key`]); the default, a random key, suits only a
    /// store no other API server reads.
    pub secrets_key: Arc<SecretsKey>,
    /// The master's QUIC endpoint, which dials the kubelet endpoints of nodes for
    /// `pods/log` and `pods/exec` (as the master's identity); `None`: those answer 503.
    pub kubelet_dialer: Option<navarch_net::Endpoint>,
    /// Where Services' cluster IPs come from (`--service-cluster-ip-range`).
    pub service_range: reservations::ServiceRange,
    /// What service-account tokens are signed with: every master of a cluster must use the
    /// same one ([`satoken::TokenKey::from_ca_key`]); the default, a random key, suits
    /// only a server alone.
    pub token_key: Arc<satoken::TokenKey>,
}

impl ApiServerConfig {
    pub fn new(member: Arc<Member>, runtime: tokio::runtime::Handle) -> Self {
        ApiServerConfig {
            member,
            runtime,
            tokens: TokenFile::default(),
            bindings: Vec::new(),
            audit: None,
            debug: None,
            server_address: String::new(),
            in_process_limit: 1000,
            default_not_ready_toleration_seconds: DefaultTolerationSeconds::default().not_ready,
            default_unreachable_toleration_seconds: DefaultTolerationSeconds::default().unreachable,
            secrets_key: Arc::new(SecretsKey::random()),
            kubelet_dialer: None,
            service_range: reservations::ServiceRange::default(),
            token_key: Arc::new(satoken::TokenKey::random()),
        }
    }
}

struct Inner {
    storage: Storage,
    runtime: tokio::runtime::Handle,
    tokens: TokenFile,
    authorizer: Arc<Authorizer>,
    audit: Option<Arc<AuditLog>>,
    debug: Option<DebugHooks>,
    server_address: String,
    in_process: Arc<tokio::sync::Semaphore>,
    /// Starts the RBAC snapshot's feed from the store, once.
    rbac_feed: std::sync::Once,
    metrics: metrics::Metrics,
    kubelet_dialer: Option<navarch_net::Endpoint>,
    token_key: Arc<satoken::TokenKey>,
}

/// The API server: cheap to clone, shared by every transport of a master.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

/// A request whose head passed authentication and authorization; its body has not been
/// read. [`ApiServer::execute`] carries it out; [`ApiServer::refuse`] records why it could
/// not be (a body that was too large or too slow).
#[derive(Debug)]
pub struct Authorized {
    user: User,
    head: RequestHead,
    started: Instant,
    /// Set when the authorizer allowed a node only for pods bound to it.
    pod_on_node: Option<String>,
}

impl Authorized {
    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn head(&self) -> &RequestHead {
        &self.head
    }
}

/// The group of unauthenticated requests.
const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";

fn anonymous() -> User {
    User::new("system:anonymous", vec![GROUP_UNAUTHENTICATED.into()])
}

/// Paths anyone may read without credentials.
fn is_public(head: &RequestHead) -> bool {
    let Target::NonResource { path } = &head.target else {
        return false;
    };
    head.verb == "get"
        && ["/healthz", "/livez", "/readyz", "/version"]
            .iter()
            .any(|pre| path == pre || path.starts_with(&format!("{pre}/")))
}

impl ApiServer {
    /// Builds the server. Its RBAC snapshot holds the bootstrap policy until
    /// [`ensure_bootstrap`](Self::ensure_bootstrap) has written that policy to the store and
    /// the snapshot follows the store from then on.
    pub fn start(cfg: ApiServerConfig) -> ApiServer {
        let metrics =
            metrics::Metrics::new(&cfg.member, cfg.debug.as_ref().map(|d| d.registry.clone()));
        ApiServer {
            inner: Arc::new(Inner {
                metrics,
                storage: Storage::new(
                    cfg.member,
                    DefaultTolerationSeconds {
                        not_ready: cfg.default_not_ready_toleration_seconds,
                        unreachable: cfg.default_unreachable_toleration_seconds,
                    },
                    cfg.secrets_key,
                    cfg.service_range,
                ),
                runtime: cfg.runtime,
                tokens: cfg.tokens,
                authorizer: Arc::new(Authorizer::new(cfg.bindings)),
                audit: cfg.audit,
                debug: cfg.debug,
                server_address: cfg.server_address,
                in_process: Arc::new(tokio::sync::Semaphore::new(cfg.in_process_limit.max(1))),
                rbac_feed: std::sync::Once::new(),
                kubelet_dialer: cfg.kubelet_dialer,
                token_key: cfg.token_key,
            }),
        }
    }

    /// The in-process client acting as `user` (a component's identity).
    pub fn client(&self, user: User) -> InProcessClient {
        InProcessClient::new(self.clone(), user)
    }

    /// Authenticates and authorizes a request on its head alone (a service-account token's
    /// account and pod are looked up in this master's copy of the store). A refusal (401,
    /// 403) is audited here.
    pub async fn authorize(
        &self,
        creds: &Credentials,
        head: RequestHead,
    ) -> Result<Authorized, ApiError> {
        let started = Instant::now();
        let (user, token) =
            match authn::authenticate(creds, &self.inner.tokens, &self.inner.token_key) {
                Ok(Some(a)) => (a.user, a.token),
                Ok(None) if is_public(&head) => (anonymous(), None),
                Ok(None) | Err(_) => {
                    let e = ApiError::unauthorized();
                    self.audit(&anonymous(), &head, started, e.code);
                    return Err(e);
                }
            };
        // A service-account token is good only while its account and pod are: part of
        // authentication, so a revoked token is a 401 whatever RBAC would say.
        if let Some(claims) = &token {
            if let Err(e) = serviceaccounts::confirm_bound(self.storage(), claims).await {
                tracing::debug!(user = %user.name, error = %e, "service-account token refused");
                let e = ApiError::unauthorized();
                self.audit(&anonymous(), &head, started, e.code);
                return Err(e);
            }
        }
        let user = match creds.impersonation() {
            None => user,
            Some(imp) => match self.impersonate(&user, imp) {
                Ok(u) => u,
                Err(e) => {
                    self.audit(&user, &head, started, e.code);
                    return Err(e);
                }
            },
        };
        let (group, resource, sub, ns, name, path) = match &head.target {
            Target::Resource {
                kind,
                namespace,
                name,
                subresource,
            } => (
                kind.group,
                kind.plural,
                subresource.as_deref().unwrap_or(""),
                namespace.as_deref().unwrap_or(""),
                name.as_deref().unwrap_or(""),
                "",
            ),
            Target::NonResource { path } => ("", "", "", "", "", path.as_str()),
        };
        let attrs = Attributes {
            verb: head.verb,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
            path,
        };
        // Health and version are public, whatever the authorization policy says.
        let decision = if is_public(&head) {
            Decision::Allow
        } else {
            self.inner.authorizer.authorize(&user, &attrs)
        };
        let pod_on_node = match decision {
            Decision::Allow => None,
            Decision::AllowIfPodOnNode(node) => Some(node),
            Decision::Deny(m) => {
                let e = ApiError::forbidden(m).about(resource, group, name);
                self.audit(&user, &head, started, e.code);
                return Err(e);
            }
        };
        Ok(Authorized {
            user,
            head,
            started,
            pod_on_node,
        })
    }

    /// Kubernetes' impersonation: `user` may act as `imp` only with the `impersonate` verb on
    /// each of the users, groups and uid it names.
    fn impersonate(&self, user: &User, imp: &authn::Impersonation) -> Result<User, ApiError> {
        if imp.user.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups or a uid without impersonating a user",
            ));
        }
        let mut asks: Vec<(&str, &str)> = vec![("users", imp.user.as_str())];
        asks.extend(imp.groups.iter().map(|g| ("groups", g.as_str())));
        if let Some(uid) = &imp.uid {
            asks.push(("uids", uid.as_str()));
        }
        for (resource, name) in asks {
            let attrs = Attributes {
                verb: "impersonate",
                group: "",
                resource,
                subresource: "",
                namespace: "",
                name,
                path: "",
            };
            if let Decision::Deny(m) = self.inner.authorizer.authorize(user, &attrs) {
                return Err(ApiError::forbidden(m).about(resource, "", name));
            }
        }
        let mut groups = imp.groups.clone();
        let authenticated = navarch_model::authz::GROUP_AUTHENTICATED;
        if imp.user != "system:anonymous" && !groups.iter().any(|g| g == authenticated) {
            groups.push(authenticated.to_string());
        }
        let mut u = User::new(imp.user.clone(), groups);
        if let Some(uid) = &imp.uid {
            u.uid = uid.clone();
        }
        tracing::debug!(user = %user.name, as_user = %u.name, "impersonating");
        Ok(u)
    }

    /// Carries out an authorized request with its body: admission, decoding, defaulting,
    /// validation, the verb on the store. The outcome is audited.
    pub async fn execute(&self, authorized: Authorized, body: Body) -> Result<Reply, ApiError> {
        let Authorized {
            user,
            head,
            started,
            pod_on_node,
        } = authorized;
        let this = self.clone();
        let (u, h) = (user.clone(), head.clone());
        let work = async move {
            match &h.target {
                Target::Resource { .. } => {
                    resource::serve(&this, &u, &h, pod_on_node.as_deref(), body).await
                }
                Target::NonResource { path } => nonresource::serve(&this, &h, path, body).await,
            }
        };
        let task = match head.origin.correlation {
            Some(id) => self.inner.runtime.spawn(with_correlation(id, work)),
            None => self.inner.runtime.spawn(work),
        };
        let result = match task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, verb = head.verb, "request task failed");
                Err(ApiError::internal(format!("request task failed: {e}")))
            }
        };
        let code = match &result {
            Ok(r) => r.code(),
            Err(e) => e.code,
        };
        self.audit(&user, &head, started, code);
        result
    }

    /// Records that an authorized request could not be carried out (its body could not be
    /// read) and returns the error.
    pub fn refuse(&self, authorized: Authorized, e: ApiError) -> ApiError {
        self.audit(
            &authorized.user,
            &authorized.head,
            authorized.started,
            e.code,
        );
        e
    }

    /// Records a request turned away before authorization (the in-flight limit).
    pub fn reject(&self, creds: &Credentials, head: &RequestHead, e: ApiError) -> ApiError {
        let user = authn::authenticate(creds, &self.inner.tokens, &self.inner.token_key)
            .ok()
            .flatten()
            .map(|a| a.user)
            .unwrap_or_else(anonymous);
        self.audit(&user, head, Instant::now(), e.code);
        e
    }

    /// The whole pipeline for a request whose body is at hand.
    pub async fn handle(
        &self,
        creds: &Credentials,
        head: RequestHead,
        body: Body,
    ) -> Result<Reply, ApiError> {
        let a = self.authorize(creds, head).await?;
        self.execute(a, body).await
    }

    fn audit(&self, user: &User, head: &RequestHead, started: Instant, code: u16) {
        let (resource, sub, ns, name) = match &head.target {
            Target::Resource {
                kind,
                namespace,
                name,
                subresource,
            } => (
                kind.plural,
                subresource.as_deref().unwrap_or(""),
                namespace.as_deref().unwrap_or(""),
                name.as_deref().unwrap_or(""),
            ),
            Target::NonResource { .. } => ("", "", "", ""),
        };
        let elapsed = started.elapsed();
        self.inner
            .metrics
            .api
            .request(head.verb, resource, sub, code, elapsed.as_secs_f64());
        let Some(log) = &self.inner.audit else { return };
        let now = time::now_rfc3339();
        let correlation = head
            .origin
            .correlation
            .map(|c| c.to_string())
            .unwrap_or_default();
        log.write(&Record {
            time: &now,
            user: &user.name,
            groups: &user.groups,
            verb: head.verb,
            resource,
            subresource: sub,
            namespace: ns,
            name,
            path: &head.origin.path,
            code,
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            correlation_id: &correlation,
            source_ip: &head.origin.source_ip,
            user_agent: &head.origin.user_agent,
            transport: head.origin.transport.as_str(),
        });
    }

    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Counts a request of the HTTP layer in flight until the guard is dropped.
    pub fn in_flight(&self, mutating: bool) -> metrics::GaugeGuard {
        self.inner.metrics.api.in_flight(mutating)
    }

    /// The endpoint that dials kubelets, and the runtime it lives on.
    pub(crate) fn kubelet_dialer(
        &self,
    ) -> (Option<&navarch_net::Endpoint>, &tokio::runtime::Handle) {
        (self.inner.kubelet_dialer.as_ref(), &self.inner.runtime)
    }

    pub(crate) fn authorizer(&self) -> &Authorizer {
        &self.inner.authorizer
    }

    pub(crate) fn token_key(&self) -> &satoken::TokenKey {
        &self.inner.token_key
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    pub(crate) fn debug_hooks(&self) -> Option<&DebugHooks> {
        self.inner.debug.as_ref()
    }

    pub(crate) fn server_address(&self) -> &str {
        &self.inner.server_address
    }

    pub(crate) fn in_process_permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.in_process
    }

    /// The API server's own identity, for what it writes itself.
    fn own_identity() -> User {
        User::new(
            "system:apiserver",
            vec![navarch_model::authz::GROUP_MASTERS.to_string()],
        )
    }

    /// Makes sure what every cluster has exists: the built-in RuntimeClasses, the system
    /// namespaces and the bootstrap RBAC policy (every master does this at start, through
    /// the pipeline as the API server's own identity; creating what exists is a harmless
    /// conflict).
    pub async fn ensure_bootstrap(&self) -> Result<(), ApiError> {
        // The RuntimeClasses first: once `default` exists, pods naming them are admitted.
        self.ensure_runtime_classes().await?;
        self.ensure_system_namespaces().await?;
        self.reconcile_bootstrap_policy().await?;
        // The store holds the policy now: from here on the snapshot is the store's.
        self.inner.rbac_feed.call_once(|| {
            let (storage, authorizer) = (self.inner.storage.clone(), self.inner.authorizer.clone());
            self.inner
                .runtime
                .spawn(authorizer::feed(storage, authorizer));
        });
        Ok(())
    }

    async fn reconcile_bootstrap_policy(&self) -> Result<(), ApiError> {
        use navarch_client::{Client, ClientError};
        use navarch_model::rbac::reconcile::{reconcile_bootstrap_policy, ReconcileOperation};
        let client = self.client(Self::own_identity());
        let api_err = |e: ClientError| match e {
            ClientError::Api(e) => e,
            other => ApiError::internal(other.to_string()),
        };
        let roles = navarch_client::kind("rbac.authorization.k8s.io", "v1", "clusterroles");
        let bindings =
            navarch_client::kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings");
        let mut existing = Vec::new();
        for k in [roles, bindings] {
            existing.extend(
                client
                    .list(k, None, &Default::default())
                    .await
                    .map_err(api_err)?
                    .items,
            );
        }
        for action in reconcile_bootstrap_policy(&existing) {
            let kind = match action.kind {
                navarch_model::rbac::RbacKind::ClusterRole => roles,
                _ => bindings,
            };
            let w = Default::default();
            let r = match action.operation {
                ReconcileOperation::Create => client
                    .create(kind, None, action.object, &w)
                    .await
                    .map(|_| ()),
                ReconcileOperation::Update => client
                    .update(kind, None, &action.name, None, action.object, &w)
                    .await
                    .map(|_| ()),
                ReconcileOperation::Recreate => {
                    match client
                        .delete(kind, None, &action.name, &Default::default())
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(api_err(e)),
                    }
                    client
                        .create(kind, None, action.object, &w)
                        .await
                        .map(|_| ())
                }
            };
            match r {
                Ok(()) => {
                    tracing::info!(kind = kind.kind, name = %action.name, "bootstrap policy written")
                }
                // Another master wrote it first.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(api_err(e)),
            }
        }
        Ok(())
    }

    /// Creates the built-in RuntimeClasses (`process`, `oci`) that are missing. One that
    /// exists is left as it is, whatever a user made of it.
    async fn ensure_runtime_classes(&self) -> Result<(), ApiError> {
        use navarch_client::Client;
        use navarch_model::admission::{builtin_runtime_class, BUILTIN_RUNTIME_CLASSES};
        let client = self.client(Self::own_identity());
        let rc = navarch_client::kind("node.k8s.io", "v1", "runtimeclasses");
        for handler in BUILTIN_RUNTIME_CLASSES {
            let body = builtin_runtime_class(handler);
            match client.create(rc, None, body, &Default::default()).await {
                Ok(_) => tracing::info!(runtime_class = handler, "created built-in RuntimeClass"),
                Err(e) if e.is_conflict() => {}
                Err(navarch_client::ClientError::Api(e)) => return Err(e),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Ok(())
    }

    async fn ensure_system_namespaces(&self) -> Result<(), ApiError> {
        use navarch_client::Client;
        let client = self.client(Self::own_identity());
        let ns = navarch_client::kind("", "v1", "namespaces");
        for name in SYSTEM_NAMESPACES {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match client.create(ns, None, body, &Default::default()).await {
                Ok(_) => tracing::info!(namespace = name, "created system namespace"),
                Err(e) if e.is_conflict() => {}
                Err(navarch_client::ClientError::Api(e)) => return Err(e),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Ok(())
    }
}
