//! The node's kubelet endpoint: `kubelet.logs` and `kubelet.exec` on the node agent's own
//! QUIC endpoint, which masters dial to serve `pods/log` and `pods/exec` (Kubernetes' API
//! server proxies to the kubelet the same way; clients never reach a node), and the node's
//! actor views (`kubelet.debug.actors`, `kubelet.debug.messages`) for the inspector.
//!
//! The endpoint serves with the node's kubelet serving certificate
//! ([`navarch_net::pki::ClusterCa::issue_kubelet_serving`], CN `system:node:<name>`) and
//! answers only masters (O=`navarch:members`): anyone else is refused before anything is
//! read. What pods and containers exist is the agent's knowledge, behind two traits the
//! agent implements: [`LogLocator`] (a container's log file and whether it still runs) and
//! [`ContainerResolver`] (a container's runtime id, for exec through any
//! [`navarch_runtime::ContainerRuntime`] with [`RuntimeExecer`]); or [`Execer`] directly.
//! The reading of logs is [`logs`]'.

pub mod logs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use navarch_client::kubelet::{
    self, ExecInput, ExecItem, ExecRequest, LogsItem, LogsRequest, NodeError, MAX_CHUNK, MAX_STDIN,
};
use navarch_net::pki::{Identity, ORG_MEMBERS};
use navarch_net::{codec, CallContext, Endpoint, NetConfig, NetError, Router, RpcError, Service};
use navarch_runtime::{ContainerId, ContainerRuntime, ExecChunk, ExecIo, RuntimeError};

use self::logs::LogOptions;

/// The default port of the kubelet endpoint (Kubernetes' kubelet port).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Why a log or an exec cannot be served, in Kubernetes' words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// 400: the pod or container is not in a state to serve it, or the request is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such pod or container on this node.
    #[error("{0}")]
    NotFound(String),
    /// 500: the node failed.
    #[error("{0}")]
    Internal(String),
}

impl StreamError {
    /// `container "c" in pod "p" is waiting to start: <reason>`.
    pub fn waiting(container: &str, pod: &str, reason: Option<&str>) -> Self {
        let mut m = format!("container \"{container}\" in pod \"{pod}\" is waiting to start");
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            m.push_str(": ");
            m.push_str(r);
        }
        StreamError::BadRequest(m)
    }

    /// `previous terminated container "c" in pod "p" not found`.
    pub fn previous_not_found(container: &str, pod: &str) -> Self {
        StreamError::BadRequest(format!(
            "previous terminated container \"{container}\" in pod \"{pod}\" not found"
        ))
    }

    /// `a container name must be specified for pod p, choose one of: [a b]`.
    pub fn container_required(pod: &str, containers: &[&str]) -> Self {
        StreamError::BadRequest(format!(
            "a container name must be specified for pod {pod}, choose one of: [{}]",
            containers.join(" ")
        ))
    }

    /// `container c is not valid for pod p`.
    pub fn container_not_valid(container: &str, pod: &str) -> Self {
        StreamError::BadRequest(format!("container {container} is not valid for pod {pod}"))
    }

    /// `container "c" in pod "p" is not running` (exec into a container that is not).
    pub fn not_running(container: &str, pod: &str) -> Self {
        StreamError::BadRequest(format!(
            "container \"{container}\" in pod \"{pod}\" is not running"
        ))
    }

    /// The wire form.
    pub fn to_node_error(&self) -> NodeError {
        let (code, reason) = match self {
            StreamError::BadRequest(_) => (400, "BadRequest"),
            StreamError::NotFound(_) => (404, "NotFound"),
            StreamError::Internal(_) => (500, "InternalError"),
        };
        NodeError {
            code,
            reason: reason.to_string(),
            message: self.to_string(),
        }
    }
}

/// Whether a container still runs: a follow ends once this says false.
pub type StillRunning = Arc<dyn Fn() -> bool + Send + Sync>;

/// Where a container's log is.
#[derive(Clone)]
pub struct LogTarget {
    /// The CRI-format log file (`<root>/logs/<ns>_<pod>_<uid>/<container>/<restart>.log`),
    /// rotated into `<path>.1`, `<path>.2`, ... as runtime's `logs` module describes.
    pub path: PathBuf,
    /// Asked while following, from a blocking thread, every [`logs::FOLLOW_POLL`]: the
    /// follow ends (after a last read) once it says false. A terminated container's (a
    /// `previous` one) always says false.
    pub running: StillRunning,
}

impl std::fmt::Debug for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTarget")
            .field("path", &self.path)
            .field("running", &(self.running)())
            .finish()
    }
}

/// The agent's knowledge of its pods' logs: implemented by the kubelet.
pub trait LogLocator: Send + Sync + 'static {
    /// The log of `container` of the pod (the pod's only container when `None`, else
    /// [`StreamError::container_required`]); with `previous`, that of its last terminated
    /// run (restart count - 1, else [`StreamError::previous_not_found`]). A container that
    /// has not started is [`StreamError::waiting`].
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogTarget, StreamError>;
}

/// Runs commands in containers: implemented by the kubelet, or [`RuntimeExecer`] over a
/// runtime and a [`ContainerResolver`].
pub trait Execer: Send + Sync + 'static {
    /// Runs `command` in the container attached to `io` (stdin as it comes, a terminal
    /// with `io.tty`), sending its output to `io.output` as it comes; the exit code.
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: Vec<String>,
        io: ExecIo,
    ) -> BoxFuture<'static, Result<i32, StreamError>>;
}

/// The agent's knowledge of its pods' containers: implemented by the kubelet.
pub trait ContainerResolver: Send + Sync + 'static {
    /// The runtime id of the running `container` of the pod (the only one when `None`), or
    /// why not ([`StreamError::not_running`], [`StreamError::container_required`], ...).
    fn resolve(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ContainerId, StreamError>;
}

/// [`Execer`] over a [`ContainerRuntime`]: resolves the container, then `runtime.exec`.
pub struct RuntimeExecer {
    pub resolver: Arc<dyn ContainerResolver>,
    pub runtime: Arc<dyn ContainerRuntime>,
    /// How long a command may run (killed and reported as an error after).
    pub timeout: Duration,
}

impl Execer for RuntimeExecer {
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: Vec<String>,
        io: ExecIo,
    ) -> BoxFuture<'static, Result<i32, StreamError>> {
        let resolved = self.resolver.resolve(namespace, pod, container);
        let runtime = self.runtime.clone();
        let timeout = self.timeout;
        let (pod, container) = (pod.to_string(), container.unwrap_or("").to_string());
        Box::pin(async move {
            let id = resolved?;
            exec_in(&*runtime, &id, command, io, timeout, &pod, &container).await
        })
    }
}

/// Runs `command` in container `id` (of `container` in `pod`, for the errors) attached to
/// `io`; its exit code, or the runtime's refusal in Kubernetes' words.
pub async fn exec_in(
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    command: Vec<String>,
    io: ExecIo,
    timeout: Duration,
    pod: &str,
    container: &str,
) -> Result<i32, StreamError> {
    let mut req = navarch_runtime::ExecRequest::new(&[]);
    req.command = command;
    req.timeout = timeout;
    runtime
        .exec_attached(id, req, io)
        .await
        .map_err(|e| match e {
            RuntimeError::InvalidState { .. } | RuntimeError::NotFound { .. } => {
                StreamError::not_running(container, pod)
            }
            RuntimeError::ExecTimeout { timeout_ms, .. } => StreamError::Internal(format!(
                "the command did not finish within {timeout_ms} ms and was killed"
            )),
            other => StreamError::Internal(format!("exec: {other}")),
        })
}

/// Hands a master's exec input to the command as it comes; its end (the master finished
/// its side, or went away) is the end of the command's input. Input that cannot be decoded
/// ends it too.
async fn forward_input(
    mut input: BoxStream<'static, Result<Bytes, RpcError>>,
    to: tokio::sync::mpsc::Sender<navarch_runtime::ExecInput>,
) {
    use navarch_runtime::ExecInput as Run;
    while let Some(item) = input.next().await {
        let item = match item.map(|b| codec::decode::<ExecInput>(&b)) {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "undecodable exec input; ending the input");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "exec input ended by the link");
                return;
            }
        };
        let item = match item {
            ExecInput::Stdin(b) if b.len() > MAX_STDIN => {
                tracing::warn!(
                    size = b.len(),
                    max = MAX_STDIN,
                    "exec input over the limit; ending the input"
                );
                return;
            }
            ExecInput::Stdin(b) => Run::Stdin(b),
            ExecInput::CloseStdin => Run::CloseStdin,
            ExecInput::Resize { width, height } => Run::Resize { width, height },
        };
        if to.send(item).await.is_err() {
            return;
        }
    }
}

/// The `kubelet.*` service: mount it on the node's router at [`kubelet::PREFIX`].
#[derive(Clone)]
pub struct KubeletService {
    logs: Arc<dyn LogLocator>,
    exec: Arc<dyn Execer>,
    /// The node's actors and tap, for the inspector (`kubelet.debug.*`); `None`: refused.
    debug: Option<(navarch_actors::Registry, navarch_actors::MessageTap)>,
}

/// How long `kubelet.debug.actors` waits for actors to publish fresh summaries.
const DEBUG_REFRESH: Duration = Duration::from_millis(250);

impl KubeletService {
    pub fn new(logs: Arc<dyn LogLocator>, exec: Arc<dyn Execer>) -> Self {
        KubeletService {
            logs,
            exec,
            debug: None,
        }
    }

    /// Serves the node's actor views too, from this registry and tap.
    pub fn with_debug(
        mut self,
        registry: navarch_actors::Registry,
        tap: navarch_actors::MessageTap,
    ) -> Self {
        self.debug = Some((registry, tap));
        self
    }

    async fn debug_call(&self, method: &str, body: &[u8]) -> Result<String, RpcError> {
        let Some((registry, tap)) = &self.debug else {
            return Err(RpcError::Unsupported(format!(
                "{method}: this node serves no actor views"
            )));
        };
        let bad = |e: String| RpcError::Decode(format!("request of {method}: {e}"));
        let path = |p: Option<&str>| {
            navarch_actors::ActorPath::parse(p.unwrap_or("/")).map_err(|e| bad(e.to_string()))
        };
        let json = match method {
            kubelet::DEBUG_ACTORS => {
                let req: kubelet::DebugActorsRequest =
                    codec::decode(body).map_err(|e| bad(e.to_string()))?;
                let prefix = path(req.prefix.as_deref())?;
                registry.refresh(&prefix, DEBUG_REFRESH).await;
                serde_json::to_string(&registry.list(&prefix))
            }
            kubelet::DEBUG_KILL => {
                let req: kubelet::DebugKillRequest =
                    codec::decode(body).map_err(|e| bad(e.to_string()))?;
                let result = match (req.path.as_deref(), req.prefix.as_deref()) {
                    (Some(p), None) => registry.kill(&path(Some(p))?),
                    (None, Some(p)) => registry.kill_random(&path(Some(p))?),
                    _ => return Err(bad("give exactly one of path and prefix".into())),
                };
                let answer = match result {
                    Ok(killed) => {
                        tracing::warn!(actor = %killed, "actor killed through the kill switch");
                        serde_json::json!({ "killed": killed })
                    }
                    Err(e) => {
                        let (code, reason) = match e {
                            navarch_actors::KillError::NotFound { .. }
                            | navarch_actors::KillError::NoneUnder { .. } => (404, "NotFound"),
                            _ => (409, "Conflict"),
                        };
                        serde_json::json!({ "error": kubelet::NodeError {
                            code,
                            reason: reason.into(),
                            message: e.to_string(),
                        }})
                    }
                };
                serde_json::to_string(&answer)
            }
            _ => {
                let req: kubelet::DebugMessagesRequest =
                    codec::decode(body).map_err(|e| bad(e.to_string()))?;
                let correlation = req
                    .correlation
                    .as_deref()
                    .map(str::parse::<navarch_actors::CorrelationId>)
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?;
                let filter = navarch_actors::TapFilter {
                    prefix: req.prefix,
                    message_type: req.message_type,
                    correlation,
                    since: req.since,
                };
                serde_json::to_string(&tap.recent(&filter, req.limit))
            }
        };
        json.map_err(|e| RpcError::Remote(format!("{method}: {e}")))
    }
}

/// Only masters may read logs and run commands on a node.
fn check_master(ctx: &CallContext, method: &str) -> Result<(), RpcError> {
    match &ctx.peer {
        Some(p) if p.organizations.iter().any(|o| o == ORG_MEMBERS) => Ok(()),
        Some(p) => {
            tracing::warn!(method, caller = %p.common_name, remote = %ctx.remote, "kubelet call refused: not a master");
            Err(RpcError::Refused(format!(
                "{method} is served to masters only (O={ORG_MEMBERS}); CN={} O=[{}] may not",
                p.common_name,
                p.organizations.join(",")
            )))
        }
        None => Err(RpcError::Refused(format!(
            "{method} needs a master's certificate"
        ))),
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Bytes, RpcError> {
    codec::encode(v)
        .map(Bytes::from)
        .map_err(|e| RpcError::Decode(format!("encoding an item: {e}")))
}

/// `pods/log`'s since options as one time: `sinceSeconds` back from now, or `sinceTime`.
fn since_of(req: &LogsRequest) -> Result<Option<std::time::SystemTime>, StreamError> {
    if let Some(s) = req.since_seconds {
        let back = Duration::from_secs(s.max(0) as u64);
        return Ok(Some(
            std::time::SystemTime::now()
                .checked_sub(back)
                .unwrap_or(UNIX_EPOCH),
        ));
    }
    match &req.since_time {
        None => Ok(None),
        Some(t) => {
            let secs = navarch_model::time::parse_rfc3339(t).ok_or_else(|| {
                StreamError::BadRequest(format!("sinceTime {t:?} is not an RFC 3339 time"))
            })?;
            Ok(Some(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)))
        }
    }
}

impl KubeletService {
    fn logs_stream(&self, req: LogsRequest) -> Result<BoxStream<'static, LogsItem>, StreamError> {
        let target = self.logs.locate(
            &req.namespace,
            &req.pod,
            req.container.as_deref(),
            req.previous,
        )?;
        let opts = LogOptions {
            follow: req.follow,
            timestamps: req.timestamps,
            tail_lines: req.tail_lines.map(|n| n.max(0) as usize),
            since: since_of(&req)?,
            limit_bytes: req.limit_bytes.map(|n| n.max(0) as u64),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<LogsItem>(16);
        tokio::task::spawn_blocking(move || {
            let sent = logs::read_log(
                &target.path,
                &opts,
                &target.running,
                MAX_CHUNK,
                || !tx.is_closed(),
                |c| tx.blocking_send(LogsItem::Chunk(c)).is_ok(),
            );
            if let Err(e) = sent {
                tracing::warn!(path = %target.path.display(), error = %e, "reading a container log failed");
                let _ = tx.blocking_send(LogsItem::Failed(
                    StreamError::Internal(format!("reading the log: {e}")).to_node_error(),
                ));
            }
        });
        let items = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(futures::stream::iter([LogsItem::Ready])
            .chain(items)
            .boxed())
    }

    fn exec_stream(
        &self,
        req: ExecRequest,
        input: BoxStream<'static, Result<Bytes, RpcError>>,
    ) -> BoxStream<'static, ExecItem> {
        if req.command.is_empty() {
            let e = StreamError::BadRequest("you must specify at least 1 command".into());
            return futures::stream::iter([ExecItem::Failed(e.to_node_error())]).boxed();
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<ExecChunk>(16);
        let (in_tx, in_rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(forward_input(input, in_tx));
        let io = ExecIo {
            tty: req.tty,
            stdin: req.stdin,
            input: in_rx,
            output: tx,
        };
        let run = self.exec.exec(
            &req.namespace,
            &req.pod,
            req.container.as_deref(),
            req.command,
            io,
        );
        // The command runs on its own: a master that goes away stops reading, not the
        // command (which its timeout bounds).
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = done_tx.send(run.await);
        });
        let output =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
                .flat_map(|c| {
                    let items: Vec<ExecItem> = match c {
                        ExecChunk::Stdout(b) => b
                            .chunks(MAX_CHUNK)
                            .map(|c| ExecItem::Stdout(c.to_vec()))
                            .collect(),
                        ExecChunk::Stderr(b) => b
                            .chunks(MAX_CHUNK)
                            .map(|c| ExecItem::Stderr(c.to_vec()))
                            .collect(),
                    };
                    futures::stream::iter(items)
                });
        let end = futures::stream::once(async move {
            match done_rx.await {
                Ok(Ok(code)) => ExecItem::Exit(code),
                Ok(Err(e)) => ExecItem::Failed(e.to_node_error()),
                Err(_) => ExecItem::Failed(
                    StreamError::Internal("the exec ended without an exit code".into())
                        .to_node_error(),
                ),
            }
        });
        futures::stream::iter([ExecItem::Ready])
            .chain(output)
            .chain(end)
            .boxed()
    }
}

impl Service for KubeletService {
    fn call(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let this = self.clone();
        Box::pin(async move {
            match method.as_str() {
                kubelet::DEBUG_ACTORS | kubelet::DEBUG_MESSAGES | kubelet::DEBUG_KILL => {
                    check_master(&ctx, &method)?;
                    let json = this.debug_call(&method, &body).await?;
                    encode(&json)
                }
                _ => Err(RpcError::Unsupported(format!(
                    "{method} is not a unary method (kubelet.logs and kubelet.exec stream)"
                ))),
            }
        })
    }

    fn stream(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        let this = self.clone();
        Box::pin(async move {
            check_master(&ctx, &method)?;
            let bad = |e: navarch_net::codec::CodecError| {
                RpcError::Decode(format!("request of {method}: {e}"))
            };
            match method.as_str() {
                kubelet::LOGS => {
                    let req: LogsRequest = codec::decode(&body).map_err(bad)?;
                    tracing::debug!(namespace = %req.namespace, pod = %req.pod, follow = req.follow, "serving a log");
                    let items = match this.logs_stream(req) {
                        Ok(s) => s,
                        Err(e) => {
                            futures::stream::iter([LogsItem::Failed(e.to_node_error())]).boxed()
                        }
                    };
                    Ok(items.map(|i| encode(&i)).boxed())
                }
                other => Err(RpcError::Unsupported(format!(
                    "method {other} is not a server stream (kubelet.logs; kubelet.exec is duplex)"
                ))),
            }
        })
    }

    fn duplex(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
        input: BoxStream<'static, Result<Bytes, RpcError>>,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        let this = self.clone();
        Box::pin(async move {
            check_master(&ctx, &method)?;
            if method != kubelet::EXEC {
                return Err(RpcError::Unsupported(format!(
                    "method {method} takes no input (kubelet.exec does)"
                )));
            }
            let req: ExecRequest = codec::decode(&body)
                .map_err(|e| RpcError::Decode(format!("request of {method}: {e}")))?;
            tracing::debug!(namespace = %req.namespace, pod = %req.pod, tty = req.tty, "serving an exec");
            Ok(this.exec_stream(req, input).map(|i| encode(&i)).boxed())
        })
    }
}

/// Binds the node's kubelet endpoint on `addr` with its serving identity and mounts
/// `service` on it; the returned endpoint serves until closed.
pub fn serve(
    addr: SocketAddr,
    node: &str,
    identity: Identity,
    service: KubeletService,
) -> Result<Endpoint, NetError> {
    let router = Router::new();
    router
        .mount(kubelet::PREFIX, Arc::new(service))
        .expect("a fresh router takes the kubelet prefix");
    Endpoint::bind(
        addr,
        NetConfig::new(format!("kubelet-{node}"), identity),
        router,
    )
}
