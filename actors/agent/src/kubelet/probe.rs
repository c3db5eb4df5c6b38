//! A container's liveness, readiness and startup probes, as the kubelet's prober runs them.
//!
//! Two parts. The pure one: [`ProbeSpec::parse`] reads a probe of the PodSpec, and a
//! [`ProbeWorker`] per probe and a [`ProbeSet`] per container fold results, with the clock
//! passed in, into what the kubelet decides. The semantics followed (the kubelet's
//! `prober/worker.go` and `prober_manager.go`):
//! - a probe first runs `initialDelaySeconds` after the container started, then every
//!   `periodSeconds` after the previous attempt;
//! - consecutive equal results count; a result changes the probe's published state only
//!   once `successThreshold` successes or `failureThreshold` failures are in a row;
//! - readiness starts not ready, liveness starts passing, startup starts unknown;
//! - while a startup probe has not succeeded, liveness and readiness do not run, and the
//!   container is neither started nor ready; once it succeeds it no longer runs;
//! - a liveness or startup probe reaching `failureThreshold` means the container is
//!   restarted (reasons `Liveness probe failed` / `Startup probe failed`), with the
//!   probe-level `terminationGracePeriodSeconds` when set; that probe then stops ("on
//!   hold") until the container is replaced (a new [`ProbeSet`]);
//! - a container is ready when it is started and its readiness probe (if any) passes;
//! - a result the prober could not get (the runtime failed, not the check:
//!   [`ProbeStatus::Unknown`]) is thrown away, as the kubelet throws away prober errors.
//!
//! The executor: [`run`] carries out one attempt: `exec` through the runtime (exit 0
//! passes; past `timeoutSeconds` fails), `httpGet` as a hand-written HTTP/1.1 GET with
//! `User-Agent: kube-probe/1.37` (status 200-399 passes; redirects are not followed, so a
//! 3xx passes), `tcpSocket` a connect; each bounded by `timeoutSeconds`. `grpc` probes and
//! `httpGet` with scheme `HTTPS` are refused at parse time ([`ProbeError::Unsupported`]).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use navarch_runtime::{ContainerId, ContainerRuntime, ExecRequest, RuntimeError};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::env::{array, str_at};

/// The User-Agent the kubelet's HTTP probes send (`kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.37";

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// The container field the probe is read from.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Startup => "startupProbe",
        }
    }

    /// How the kubelet's events name it (`Liveness`, `Readiness`, `Startup`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    /// The `Unhealthy` event's message for a failed attempt, worded as the kubelet's
    /// (`Liveness probe failed: HTTP probe failed with statuscode: 500`).
    pub fn failure_message(self, result: &ProbeResult) -> String {
        format!("{} probe failed: {}", self.label(), result.message)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a probe cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("{kind} probe: {reason}")]
    Invalid { kind: Kind, reason: String },
    /// A handler navarch does not run (grpc, HTTPS).
    #[error("{kind} probe: {what} is not supported")]
    Unsupported { kind: Kind, what: String },
}

/// What one attempt runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// A command in the container; exit code 0 passes.
    Exec { command: Vec<String> },
    /// An HTTP GET; `host` `None` is the pod's IP.
    HttpGet {
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connect; `host` `None` is the pod's IP.
    TcpSocket { host: Option<String>, port: u16 },
}

/// One probe of a container, parsed with the API's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: Kind,
    pub handler: Handler,
    /// `initialDelaySeconds` (0).
    pub initial_delay: Duration,
    /// `periodSeconds` (10, at least 1).
    pub period: Duration,
    /// `timeoutSeconds` (1, at least 1).
    pub timeout: Duration,
    /// `successThreshold` (1; must be 1 for liveness and startup).
    pub success_threshold: u32,
    /// `failureThreshold` (3).
    pub failure_threshold: u32,
    /// The probe-level `terminationGracePeriodSeconds` (liveness and startup only), which
    /// overrides the pod's when the probe's failure kills the container.
    pub termination_grace_period: Option<Duration>,
}

impl ProbeSpec {
    /// Parses `probe` (a container's `livenessProbe`, `readinessProbe` or `startupProbe`)
    /// of `container` (whose `ports[]` resolve a named `port`).
    pub fn parse(kind: Kind, probe: &Value, container: &Value) -> Result<ProbeSpec, ProbeError> {
        let invalid = |reason: String| ProbeError::Invalid { kind, reason };
        let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
            .into_iter()
            .filter(|h| probe.get(h).is_some_and(|v| !v.is_null()))
            .collect();
        let handler = match handlers.as_slice() {
            ["exec"] => {
                let command: Vec<String> = array(&probe["exec"], "command")
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                if command.is_empty() {
                    return Err(invalid("exec.command is empty".into()));
                }
                Handler::Exec { command }
            }
            ["httpGet"] => {
                let h = &probe["httpGet"];
                let scheme = str_at(h, "scheme").unwrap_or("HTTP");
                if scheme.eq_ignore_ascii_case("HTTPS") {
                    return Err(ProbeError::Unsupported {
                        kind,
                        what: "httpGet with scheme HTTPS".into(),
                    });
                }
                if !scheme.eq_ignore_ascii_case("HTTP") {
                    return Err(invalid(format!("unknown scheme {scheme:?}")));
                }
                let path = match str_at(h, "path").unwrap_or("") {
                    "" => "/".to_string(),
                    p if p.starts_with('/') => p.to_string(),
                    p => format!("/{p}"),
                };
                if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                    return Err(invalid(format!("invalid path {path:?}")));
                }
                let mut headers = Vec::new();
                for hdr in array(h, "httpHeaders") {
                    let name = str_at(hdr, "name").unwrap_or("");
                    let value = str_at(hdr, "value").unwrap_or("");
                    let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
                    if name.is_empty() || bad(name) || bad(value) || name.contains(':') {
                        return Err(invalid(format!("invalid header {name:?}")));
                    }
                    headers.push((name.to_string(), value.to_string()));
                }
                Handler::HttpGet {
                    host: host_of(h),
                    port: resolve_port(h.get("port"), container).map_err(invalid)?,
                    path,
                    headers,
                }
            }
            ["tcpSocket"] => {
                let t = &probe["tcpSocket"];
                Handler::TcpSocket {
                    host: host_of(t),
                    port: resolve_port(t.get("port"), container).map_err(invalid)?,
                }
            }
            ["grpc"] => {
                return Err(ProbeError::Unsupported {
                    kind,
                    what: "grpc".into(),
                })
            }
            [] => return Err(invalid("no handler (exec, httpGet, tcpSocket)".into())),
            many => {
                return Err(invalid(format!(
                    "more than one handler: {}",
                    many.join(", ")
                )))
            }
        };
        let seconds = |field: &str, default: u64, min: u64| -> Result<u64, ProbeError> {
            match probe.get(field) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => match v.as_i64() {
                    Some(0) if min > 0 => Ok(default),
                    Some(n) if n >= min as i64 => Ok(n as u64),
                    _ => Err(invalid(format!("{field} must be at least {min}, got {v}"))),
                },
            }
        };
        let success_threshold = seconds("successThreshold", 1, 1)? as u32;
        if kind != Kind::Readiness && success_threshold != 1 {
            return Err(invalid("successThreshold must be 1".into()));
        }
        let termination_grace_period = match probe.get("terminationGracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(v) => {
                if kind == Kind::Readiness {
                    return Err(invalid(
                        "terminationGracePeriodSeconds is for liveness and startup probes".into(),
                    ));
                }
                match v.as_i64() {
                    Some(n) if n >= 1 => Some(Duration::from_secs(n as u64)),
                    _ => {
                        return Err(invalid(format!(
                            "terminationGracePeriodSeconds must be at least 1, got {v}"
                        )))
                    }
                }
            }
        };
        Ok(ProbeSpec {
            kind,
            handler,
            initial_delay: Duration::from_secs(seconds("initialDelaySeconds", 0, 0)?),
            period: Duration::from_secs(seconds("periodSeconds", 10, 1)?),
            timeout: Duration::from_secs(seconds("timeoutSeconds", 1, 1)?),
            success_threshold,
            failure_threshold: seconds("failureThreshold", 3, 1)? as u32,
            termination_grace_period,
        })
    }
}

fn host_of(handler: &Value) -> Option<String> {
    str_at(handler, "host")
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// A probe's `port`: a number, or the name of one of the container's `ports[]`.
fn resolve_port(port: Option<&Value>, container: &Value) -> Result<u16, String> {
    let in_range = |n: i64| {
        u16::try_from(n)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {n} is out of range"))
    };
    match port {
        Some(Value::Number(n)) => in_range(n.as_i64().unwrap_or(-1)),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => in_range(s.parse().unwrap_or(-1)),
        Some(Value::String(name)) => array(container, "ports")
            .iter()
            .find(|p| str_at(p, "name") == Some(name.as_str()))
            .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
            .map(in_range)
            .unwrap_or_else(|| {
                Err(format!(
                    "couldn't find port {name:?} in the container's ports"
                ))
            }),
        _ => Err("port is missing".into()),
    }
}

/// Every probe of `container`, parsed: (liveness, readiness, startup).
pub fn parse_container_probes(container: &Value) -> Result<[Option<ProbeSpec>; 3], ProbeError> {
    let one = |kind: Kind| -> Result<Option<ProbeSpec>, ProbeError> {
        match container.get(kind.field()) {
            None | Some(Value::Null) => Ok(None),
            Some(p) => ProbeSpec::parse(kind, p, container).map(Some),
        }
    };
    Ok([
        one(Kind::Liveness)?,
        one(Kind::Readiness)?,
        one(Kind::Startup)?,
    ])
}

// ---------------------------------------------------------------------------------------
// Results and the state machine.
// ---------------------------------------------------------------------------------------

/// What one attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStatus {
    Success,
    Failure,
    /// The prober could not tell (the runtime failed): the result is thrown away.
    Unknown,
}

/// One attempt's result, with the short message events carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub status: ProbeStatus,
    pub message: String,
}

impl ProbeResult {
    pub fn success() -> Self {
        ProbeResult {
            status: ProbeStatus::Success,
            message: String::new(),
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        ProbeResult {
            status: ProbeStatus::Failure,
            message: message.into(),
        }
    }

    pub fn unknown(message: impl Into<String>) -> Self {
        ProbeResult {
            status: ProbeStatus::Unknown,
            message: message.into(),
        }
    }
}

/// A change of one probe's published state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The probe now passes (reached `successThreshold`).
    Passed,
    /// The probe now fails (reached `failureThreshold`); `message` is the last attempt's.
    Failed { message: String },
}

/// One probe's state (the kubelet's per-probe worker), pure: times are passed in.
#[derive(Clone, Debug)]
pub struct ProbeWorker {
    spec: ProbeSpec,
    /// The published state: `None` unknown (startup before its first verdict).
    state: Option<bool>,
    last: Option<ProbeStatus>,
    run: u32,
    next: Instant,
    on_hold: bool,
}

impl ProbeWorker {
    /// A worker for a container that started at `started`.
    pub fn new(spec: ProbeSpec, started: Instant) -> Self {
        let state = match spec.kind {
            Kind::Liveness => Some(true),
            Kind::Readiness => Some(false),
            Kind::Startup => None,
        };
        let next = started + spec.initial_delay;
        ProbeWorker {
            spec,
            state,
            last: None,
            run: 0,
            next,
            on_hold: false,
        }
    }

    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }

    /// When the next attempt is due (`initialDelaySeconds` after the start, then
    /// `periodSeconds` after each attempt).
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Whether an attempt is due at `now` (never once the worker is on hold).
    pub fn is_due(&self, now: Instant) -> bool {
        !self.on_hold && now >= self.next
    }

    /// The published state: `Some(true)` passing, `Some(false)` failing, `None` unknown.
    pub fn state(&self) -> Option<bool> {
        self.state
    }

    /// Whether the worker stopped (a liveness or startup failure: the container is to be
    /// restarted).
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// Folds an attempt's result (made at `now`) in; returns the published state's change,
    /// if any. A liveness or startup [`ProbeOutcome::Failed`] puts the worker on hold.
    pub fn record(&mut self, now: Instant, result: &ProbeResult) -> Option<ProbeOutcome> {
        if self.on_hold {
            return None;
        }
        self.next = now + self.spec.period;
        let status = result.status;
        if status == ProbeStatus::Unknown {
            return None;
        }
        if self.last == Some(status) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(status);
            self.run = 1;
        }
        let passed = status == ProbeStatus::Success;
        let threshold = if passed {
            self.spec.success_threshold
        } else {
            self.spec.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let changed = self.state != Some(passed);
        self.state = Some(passed);
        if !passed && self.spec.kind != Kind::Readiness {
            self.on_hold = true;
            self.run = 0;
        }
        match (changed, passed) {
            (false, _) => None,
            (true, true) => Some(ProbeOutcome::Passed),
            (true, false) => Some(ProbeOutcome::Failed {
                message: result.message.clone(),
            }),
        }
    }

    /// Pushes the next attempt to no earlier than `at` (liveness and readiness are held
    /// back while the startup probe runs).
    fn not_before(&mut self, at: Instant) {
        self.next = self.next.max(at);
    }
}

/// Why a probe wants its container restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartReason {
    LivenessFailed,
    StartupFailed,
}

impl RestartReason {
    /// The kubelet's wording (`Liveness probe failed`, `Startup probe failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::LivenessFailed => "Liveness probe failed",
            RestartReason::StartupFailed => "Startup probe failed",
        }
    }
}

impl fmt::Display for RestartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the Pod actor does after a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    /// The container's `ready` changed.
    Ready(bool),
    /// The startup probe passed: the container is `started`.
    Started,
    /// Kill and restart the container (as its restartPolicy allows), with the probe's
    /// `terminationGracePeriodSeconds` when it sets one (else the pod's).
    Restart {
        reason: RestartReason,
        message: String,
        grace: Option<Duration>,
    },
}

/// The probes of one running container. Make a new one for each new container (restart).
#[derive(Clone, Debug)]
pub struct ProbeSet {
    liveness: Option<ProbeWorker>,
    readiness: Option<ProbeWorker>,
    startup: Option<ProbeWorker>,
}

impl ProbeSet {
    /// The probes of a container that started at `started`.
    pub fn new(
        liveness: Option<ProbeSpec>,
        readiness: Option<ProbeSpec>,
        startup: Option<ProbeSpec>,
        started: Instant,
    ) -> Self {
        let worker = |s: Option<ProbeSpec>| s.map(|s| ProbeWorker::new(s, started));
        ProbeSet {
            liveness: worker(liveness),
            readiness: worker(readiness),
            startup: worker(startup),
        }
    }

    /// Parses `container`'s probes and makes its set.
    pub fn for_container(container: &Value, started: Instant) -> Result<Self, ProbeError> {
        let [l, r, s] = parse_container_probes(container)?;
        Ok(ProbeSet::new(l, r, s, started))
    }

    pub fn spec(&self, kind: Kind) -> Option<&ProbeSpec> {
        self.worker(kind).map(ProbeWorker::spec)
    }

    fn worker(&self, kind: Kind) -> Option<&ProbeWorker> {
        match kind {
            Kind::Liveness => self.liveness.as_ref(),
            Kind::Readiness => self.readiness.as_ref(),
            Kind::Startup => self.startup.as_ref(),
        }
    }

    fn worker_mut(&mut self, kind: Kind) -> Option<&mut ProbeWorker> {
        match kind {
            Kind::Liveness => self.liveness.as_mut(),
            Kind::Readiness => self.readiness.as_mut(),
            Kind::Startup => self.startup.as_mut(),
        }
    }

    /// `None` without a startup probe (the container counts as started once running),
    /// else whether it passed.
    pub fn started(&self) -> Option<bool> {
        self.startup.as_ref().map(|w| w.state() == Some(true))
    }

    fn is_started(&self) -> bool {
        self.started().unwrap_or(true)
    }

    /// Whether the container is ready: started, and its readiness probe (if any) passes.
    pub fn ready(&self) -> bool {
        self.is_started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|w| w.state() == Some(true))
    }

    /// The probes to run at `now`: only the startup probe until it passed, then liveness
    /// and readiness.
    pub fn due(&self, now: Instant) -> Vec<Kind> {
        if !self.is_started() {
            return self
                .startup
                .as_ref()
                .filter(|w| w.is_due(now))
                .map(|_| vec![Kind::Startup])
                .unwrap_or_default();
        }
        [Kind::Liveness, Kind::Readiness]
            .into_iter()
            .filter(|k| self.worker(*k).is_some_and(|w| w.is_due(now)))
            .collect()
    }

    /// When the next probe is due, for the actor's timer; `None` when none will run.
    pub fn next_due(&self) -> Option<Instant> {
        let kinds: &[Kind] = if self.is_started() {
            &[Kind::Liveness, Kind::Readiness]
        } else {
            &[Kind::Startup]
        };
        kinds
            .iter()
            .filter_map(|k| self.worker(*k))
            .filter(|w| !w.on_hold())
            .map(ProbeWorker::next_due)
            .min()
    }

    /// Folds the result of a `kind` attempt made at `now` in; returns what the Pod actor
    /// is to do.
    pub fn record(
        &mut self,
        kind: Kind,
        now: Instant,
        result: &ProbeResult,
    ) -> Option<ProbeAction> {
        let was_ready = self.ready();
        let grace = self.spec(kind)?.termination_grace_period;
        let outcome = self.worker_mut(kind)?.record(now, result)?;
        match (kind, outcome) {
            (Kind::Startup, ProbeOutcome::Passed) => {
                for k in [Kind::Liveness, Kind::Readiness] {
                    if let Some(w) = self.worker_mut(k) {
                        w.not_before(now);
                    }
                }
                // Without a readiness probe the container is ready from now on: the Pod
                // actor reads `ready()` on `Started`.
                Some(ProbeAction::Started)
            }
            (Kind::Startup, ProbeOutcome::Failed { message }) => Some(ProbeAction::Restart {
                reason: RestartReason::StartupFailed,
                message,
                grace,
            }),
            (Kind::Liveness, ProbeOutcome::Failed { message }) => Some(ProbeAction::Restart {
                reason: RestartReason::LivenessFailed,
                message,
                grace,
            }),
            (Kind::Liveness, ProbeOutcome::Passed) => None,
            (Kind::Readiness, _) => {
                let ready = self.ready();
                (ready != was_ready).then_some(ProbeAction::Ready(ready))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The executor.
// ---------------------------------------------------------------------------------------

/// What an attempt runs against.
pub struct ProbeTarget<'a> {
    /// The host httpGet and tcpSocket reach when the probe names none.
    pub pod_ip: IpAddr,
    pub runtime: &'a dyn ContainerRuntime,
    pub container: &'a ContainerId,
}

impl fmt::Debug for ProbeTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("pod_ip", &self.pod_ip)
            .field("runtime", &self.runtime.name())
            .field("container", &self.container)
            .finish()
    }
}

/// Runs one attempt of `spec` against `target`, bounded by the probe's timeout.
pub async fn run(spec: &ProbeSpec, target: &ProbeTarget<'_>) -> ProbeResult {
    let result = match &spec.handler {
        Handler::Exec { command } => exec_probe(command, spec.timeout, target).await,
        Handler::HttpGet {
            host,
            port,
            path,
            headers,
        } => {
            let host = host.clone().unwrap_or_else(|| target.pod_ip.to_string());
            http_get(&host, *port, path, headers, spec.timeout).await
        }
        Handler::TcpSocket { host, port } => {
            let host = host.clone().unwrap_or_else(|| target.pod_ip.to_string());
            tcp_socket(&host, *port, spec.timeout).await
        }
    };
    if result.status != ProbeStatus::Success {
        tracing::debug!(
            probe = %spec.kind,
            container = %target.container,
            status = ?result.status,
            message = %result.message,
            "probe attempt did not pass"
        );
    }
    result
}

async fn exec_probe(
    command: &[String],
    timeout: Duration,
    target: &ProbeTarget<'_>,
) -> ProbeResult {
    let request = ExecRequest {
        command: command.to_vec(),
        stdin: None,
        env: Vec::new(),
        timeout,
    };
    // The runtime enforces the timeout; the outer bound only guards a runtime that hangs.
    let exec = target.runtime.exec(target.container, request);
    let timed_out = || ProbeResult::failure(format!("command {command:?} timed out"));
    match tokio::time::timeout(timeout + Duration::from_secs(1), exec).await {
        Err(_) => timed_out(),
        Ok(Err(RuntimeError::ExecTimeout { .. })) => timed_out(),
        Ok(Err(e)) => ProbeResult::unknown(e.to_string()),
        Ok(Ok(out)) if out.exit_code == 0 => ProbeResult::success(),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim();
            if text.is_empty() {
                ProbeResult::failure(format!("command {command:?} exited with {}", out.exit_code))
            } else {
                ProbeResult::failure(text.chars().take(1024).collect::<String>())
            }
        }
    }
}

/// `host:port` with IPv6 literals bracketed.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The connect error as Go's net package words it (`connect: connection refused`).
fn dial_error(address: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {address}: {what}")
}

async fn tcp_socket(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    let address = host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(address.as_str())).await {
        Ok(Ok(_)) => ProbeResult::success(),
        Ok(Err(e)) => ProbeResult::failure(dial_error(&address, &e)),
        Err(_) => ProbeResult::failure(format!("dial tcp {address}: i/o timeout")),
    }
}

/// An HTTP/1.1 GET; only the status line of the answer is read.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> ProbeResult {
    let address = host_port(host, port);
    let url = format!("http://{address}{path}");
    let attempt = async {
        let mut stream = TcpStream::connect(address.as_str())
            .await
            .map_err(|e| dial_error(&address, &e))?;
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        if !has("Host") {
            request.push_str(&format!("Host: {address}\r\n"));
        }
        if !has("User-Agent") {
            request.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
        }
        if !has("Accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        let line_end = loop {
            if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                break at;
            }
            if buf.len() > 8192 {
                return Err("malformed HTTP response: status line too long".to_string());
            }
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("EOF".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let mut parts = line.splitn(3, ' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(format!("malformed HTTP response {line:?}"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(format!("malformed HTTP response {line:?}"));
        }
        code.parse::<u16>()
            .map_err(|_| format!("malformed HTTP status code {code:?}"))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(code)) if (200..400).contains(&code) => ProbeResult::success(),
        Ok(Ok(code)) => ProbeResult::failure(format!("HTTP probe failed with statuscode: {code}")),
        Ok(Err(e)) => ProbeResult::failure(format!("Get {url:?}: {e}")),
        Err(_) => ProbeResult::failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;
    use tokio::net::TcpListener;

    fn http_container() -> Value {
        json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]})
    }

    fn spec(kind: Kind, probe: Value) -> ProbeSpec {
        ProbeSpec::parse(kind, &probe, &http_container()).unwrap()
    }

    fn tcp(kind: Kind, timing: Value) -> ProbeSpec {
        let mut probe = json!({"tcpSocket": {"port": 80}});
        for (k, v) in timing.as_object().unwrap() {
            probe[k] = v.clone();
        }
        spec(kind, probe)
    }

    #[test]
    fn parse_defaults_and_fields() {
        let s = spec(
            Kind::Liveness,
            json!({"httpGet": {"path": "healthz", "port": "http",
                "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                "terminationGracePeriodSeconds": 5}),
        );
        assert_eq!(
            s.handler,
            Handler::HttpGet {
                host: None,
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-Probe".into(), "1".into())]
            }
        );
        assert_eq!(s.initial_delay, Duration::ZERO);
        assert_eq!(s.period, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        assert_eq!(s.termination_grace_period, Some(Duration::from_secs(5)));

        let s = spec(
            Kind::Readiness,
            json!({"exec": {"command": ["cat", "/ready"]}, "initialDelaySeconds": 3,
                "periodSeconds": 2, "timeoutSeconds": 4, "successThreshold": 2,
                "failureThreshold": 5}),
        );
        assert_eq!(
            s.handler,
            Handler::Exec {
                command: vec!["cat".into(), "/ready".into()]
            }
        );
        assert_eq!(
            (s.initial_delay, s.period, s.timeout),
            (
                Duration::from_secs(3),
                Duration::from_secs(2),
                Duration::from_secs(4)
            )
        );
        assert_eq!((s.success_threshold, s.failure_threshold), (2, 5));
        let s = spec(
            Kind::Startup,
            json!({"tcpSocket": {"port": 9000, "host": "10.0.0.9"}}),
        );
        assert_eq!(
            s.handler,
            Handler::TcpSocket {
                host: Some("10.0.0.9".into()),
                port: 9000
            }
        );
    }

    #[test]
    fn parse_refusals() {
        let err = |kind: Kind, probe: Value| {
            ProbeSpec::parse(kind, &probe, &http_container())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(Kind::Liveness, json!({"grpc": {"port": 9090}})),
            "Liveness probe: grpc is not supported"
        );
        assert_eq!(
            err(
                Kind::Readiness,
                json!({"httpGet": {"port": 80, "scheme": "HTTPS"}})
            ),
            "Readiness probe: httpGet with scheme HTTPS is not supported"
        );
        assert_eq!(
            err(
                Kind::Liveness,
                json!({"tcpSocket": {"port": 80}, "successThreshold": 2})
            ),
            "Liveness probe: successThreshold must be 1"
        );
        assert_eq!(
            err(
                Kind::Startup,
                json!({"tcpSocket": {"port": 80}, "successThreshold": 3})
            ),
            "Startup probe: successThreshold must be 1"
        );
        assert!(err(Kind::Readiness, json!({"periodSeconds": 1})).contains("no handler"));
        assert!(err(
            Kind::Readiness,
            json!({"tcpSocket": {"port": 1}, "exec": {"command": ["x"]}})
        )
        .contains("more than one handler"));
        assert!(
            err(Kind::Readiness, json!({"tcpSocket": {"port": "metrics"}}))
                .contains("couldn't find port \"metrics\"")
        );
        assert!(
            err(Kind::Readiness, json!({"tcpSocket": {"port": 70000}})).contains("out of range")
        );
        assert!(err(
            Kind::Readiness,
            json!({"tcpSocket": {"port": 1}, "periodSeconds": -1})
        )
        .contains("periodSeconds must be at least 1"));
        assert!(err(
            Kind::Readiness,
            json!({"tcpSocket": {"port": 1}, "terminationGracePeriodSeconds": 3})
        )
        .contains("liveness and startup"));
    }

    fn ok() -> ProbeResult {
        ProbeResult::success()
    }

    fn bad() -> ProbeResult {
        ProbeResult::failure("HTTP probe failed with statuscode: 500")
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn readiness_starts_not_ready_and_follows_thresholds() {
        let t0 = Instant::now();
        let mut w = ProbeWorker::new(
            tcp(
                Kind::Readiness,
                json!({"successThreshold": 2, "failureThreshold": 2}),
            ),
            t0,
        );
        // (result, published change expected, state after)
        let table = [
            (ok(), None, Some(false)),
            (ok(), Some(ProbeOutcome::Passed), Some(true)),
            (ok(), None, Some(true)),
            (bad(), None, Some(true)),
            (ok(), None, Some(true)),
            (bad(), None, Some(true)),
            (ProbeResult::unknown("runtime down"), None, Some(true)),
            (
                bad(),
                Some(ProbeOutcome::Failed {
                    message: bad().message,
                }),
                Some(false),
            ),
            (bad(), None, Some(false)),
            (ok(), None, Some(false)),
            (ok(), Some(ProbeOutcome::Passed), Some(true)),
        ];
        assert_eq!(w.state(), Some(false));
        for (i, (result, change, state)) in table.into_iter().enumerate() {
            assert_eq!(w.record(secs(t0, i as u64), &result), change, "step {i}");
            assert_eq!(w.state(), state, "step {i}");
            assert!(!w.on_hold());
        }
    }

    #[test]
    fn timing_initial_delay_then_period_after_each_attempt() {
        let t0 = Instant::now();
        let mut w = ProbeWorker::new(
            tcp(
                Kind::Readiness,
                json!({"initialDelaySeconds": 5, "periodSeconds": 3}),
            ),
            t0,
        );
        assert_eq!(w.next_due(), secs(t0, 5));
        assert!(!w.is_due(secs(t0, 4)));
        assert!(w.is_due(secs(t0, 5)));
        w.record(secs(t0, 6), &ok());
        assert_eq!(w.next_due(), secs(t0, 9));
        assert!(!w.is_due(secs(t0, 8)));
        w.record(secs(t0, 9), &ProbeResult::unknown("x"));
        assert_eq!(w.next_due(), secs(t0, 12));
    }

    #[test]
    fn liveness_starts_passing_and_restarts_at_failure_threshold() {
        let t0 = Instant::now();
        let mut set = ProbeSet::new(
            Some(tcp(
                Kind::Liveness,
                json!({"terminationGracePeriodSeconds": 7}),
            )),
            None,
            None,
            t0,
        );
        assert_eq!(set.started(), None);
        assert!(set.ready());
        assert_eq!(set.due(t0), vec![Kind::Liveness]);
        assert_eq!(set.record(Kind::Liveness, secs(t0, 0), &bad()), None);
        assert_eq!(set.record(Kind::Liveness, secs(t0, 10), &ok()), None);
        assert_eq!(set.record(Kind::Liveness, secs(t0, 20), &bad()), None);
        assert_eq!(set.record(Kind::Liveness, secs(t0, 30), &bad()), None);
        let action = set.record(Kind::Liveness, secs(t0, 40), &bad());
        assert_eq!(
            action,
            Some(ProbeAction::Restart {
                reason: RestartReason::LivenessFailed,
                message: bad().message,
                grace: Some(Duration::from_secs(7)),
            })
        );
        assert_eq!(
            RestartReason::LivenessFailed.to_string(),
            "Liveness probe failed"
        );
        // On hold until the container is replaced.
        assert!(set.due(secs(t0, 1000)).is_empty());
        assert_eq!(set.next_due(), None);
        assert_eq!(set.record(Kind::Liveness, secs(t0, 50), &bad()), None);
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let t0 = Instant::now();
        let mut set = ProbeSet::new(
            Some(tcp(Kind::Liveness, json!({"initialDelaySeconds": 1}))),
            Some(tcp(Kind::Readiness, json!({}))),
            Some(tcp(
                Kind::Startup,
                json!({"periodSeconds": 1, "failureThreshold": 30}),
            )),
            t0,
        );
        assert_eq!(set.started(), Some(false));
        assert!(!set.ready());
        assert_eq!(set.due(secs(t0, 5)), vec![Kind::Startup]);
        for s in 0..5 {
            assert_eq!(set.record(Kind::Startup, secs(t0, s), &bad()), None);
            assert_eq!(set.due(secs(t0, s) + Duration::from_millis(500)), vec![]);
        }
        assert_eq!(set.next_due(), Some(secs(t0, 5)));
        assert_eq!(
            set.record(Kind::Startup, secs(t0, 5), &ok()),
            Some(ProbeAction::Started)
        );
        assert_eq!(set.started(), Some(true));
        assert!(!set.ready(), "readiness has not passed yet");
        // Liveness and readiness run from the moment startup passed, startup no more.
        assert_eq!(set.due(secs(t0, 5)), vec![Kind::Liveness, Kind::Readiness]);
        assert_eq!(
            set.record(Kind::Readiness, secs(t0, 5), &ok()),
            Some(ProbeAction::Ready(true))
        );
        assert!(set.ready());
        assert_eq!(set.due(secs(t0, 6)), vec![Kind::Liveness]);
        assert_eq!(set.next_due(), Some(secs(t0, 5)));
    }

    #[test]
    fn startup_without_readiness_makes_ready_once_started() {
        let t0 = Instant::now();
        let mut set = ProbeSet::new(None, None, Some(tcp(Kind::Startup, json!({}))), t0);
        assert!(!set.ready());
        assert_eq!(
            set.record(Kind::Startup, t0, &ok()),
            Some(ProbeAction::Started)
        );
        assert!(set.ready());
        assert!(set.due(secs(t0, 100)).is_empty());
        assert_eq!(set.next_due(), None);
    }

    #[test]
    fn startup_failing_its_threshold_restarts() {
        let t0 = Instant::now();
        let mut set = ProbeSet::new(
            Some(tcp(Kind::Liveness, json!({}))),
            None,
            Some(tcp(Kind::Startup, json!({"failureThreshold": 2}))),
            t0,
        );
        assert_eq!(set.record(Kind::Startup, secs(t0, 0), &bad()), None);
        assert_eq!(
            set.record(Kind::Startup, secs(t0, 10), &bad()),
            Some(ProbeAction::Restart {
                reason: RestartReason::StartupFailed,
                message: bad().message,
                grace: None
            })
        );
        assert_eq!(set.started(), Some(false));
        assert!(set.due(secs(t0, 100)).is_empty());
    }

    #[test]
    fn a_containers_probes_make_its_set() {
        let t0 = Instant::now();
        let c = json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http"}, "initialDelaySeconds": 2},
            "livenessProbe": {"tcpSocket": {"port": 8080}}});
        let set = ProbeSet::for_container(&c, t0).unwrap();
        assert_eq!(set.started(), None);
        assert!(!set.ready());
        assert_eq!(set.due(t0), vec![Kind::Liveness]);
        assert_eq!(set.due(secs(t0, 2)), vec![Kind::Liveness, Kind::Readiness]);
        assert!(set.spec(Kind::Startup).is_none());
        let grpc = json!({"name": "g", "livenessProbe": {"grpc": {"port": 9090}}});
        assert!(matches!(
            ProbeSet::for_container(&grpc, t0),
            Err(ProbeError::Unsupported { .. })
        ));
    }

    #[test]
    fn event_messages() {
        assert_eq!(
            Kind::Liveness.failure_message(&bad()),
            "Liveness probe failed: HTTP probe failed with statuscode: 500"
        );
    }

    // ---- executor ----

    /// What the HTTP test server answers.
    #[derive(Clone, Copy)]
    enum Answer {
        Status(u16),
        Never,
    }

    /// An HTTP server on 127.0.0.1 answering every request with `answer`; returns its port
    /// and the requests it read (a `Never` server keeps its connections open, unanswered).
    async fn http_server(answer: Answer) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                match answer {
                    Answer::Never => held.push(stream),
                    Answer::Status(code) => {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = stream.read(&mut chunk).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                        let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                        let _ = stream.write_all(reply.as_bytes()).await;
                    }
                }
            }
        });
        (port, rx)
    }

    /// A port on 127.0.0.1 nothing listens on (bound, then released).
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    fn http_spec(port: u16, timeout: u64) -> ProbeSpec {
        spec(
            Kind::Liveness,
            json!({"httpGet": {"path": "/healthz", "port": port,
                "httpHeaders": [{"name": "X-Probe", "value": "yes"}]},
                "timeoutSeconds": timeout}),
        )
    }

    /// A test double of [`ContainerRuntime`]: `exec` answers with a fixed result and
    /// records the request; every other method fails.
    struct ExecTestDouble {
        answer: fn(&ContainerId) -> Result<navarch_runtime::ExecOutput, RuntimeError>,
        requests: Mutex<Vec<ExecRequest>>,
    }

    impl ExecTestDouble {
        fn new(
            answer: fn(&ContainerId) -> Result<navarch_runtime::ExecOutput, RuntimeError>,
        ) -> Self {
            ExecTestDouble {
                answer,
                requests: Mutex::new(Vec::new()),
            }
        }
    }

    fn unavailable<T>() -> navarch_runtime::RuntimeFuture<'static, T> {
        Box::pin(async {
            Err(RuntimeError::Unavailable {
                runtime: "exec-test-double",
                reason: "only exec".into(),
            })
        })
    }

    impl ContainerRuntime for ExecTestDouble {
        fn name(&self) -> &'static str {
            "exec-test-double"
        }
        fn isolation(&self) -> navarch_runtime::Isolation {
            navarch_runtime::Isolation::NotIsolated {
                reason: "test double".into(),
            }
        }
        fn create(
            &self,
            _: navarch_runtime::ContainerSpec,
        ) -> navarch_runtime::RuntimeFuture<'_, navarch_runtime::ContainerStatus> {
            unavailable()
        }
        fn start<'a>(
            &'a self,
            _: &'a ContainerId,
        ) -> navarch_runtime::RuntimeFuture<'a, navarch_runtime::ContainerStatus> {
            unavailable()
        }
        fn stop<'a>(
            &'a self,
            _: &'a ContainerId,
            _: Duration,
        ) -> navarch_runtime::RuntimeFuture<'a, navarch_runtime::ContainerStatus> {
            unavailable()
        }
        fn status<'a>(
            &'a self,
            _: &'a ContainerId,
        ) -> navarch_runtime::RuntimeFuture<'a, navarch_runtime::ContainerStatus> {
            unavailable()
        }
        fn list(
            &self,
        ) -> navarch_runtime::RuntimeFuture<'_, Vec<navarch_runtime::ContainerStatus>> {
            unavailable()
        }
        fn exec<'a>(
            &'a self,
            id: &'a ContainerId,
            request: ExecRequest,
        ) -> navarch_runtime::RuntimeFuture<'a, navarch_runtime::ExecOutput> {
            self.requests.lock().unwrap().push(request);
            let result = (self.answer)(id);
            Box::pin(async move { result })
        }
        fn remove<'a>(&'a self, _: &'a ContainerId) -> navarch_runtime::RuntimeFuture<'a, ()> {
            unavailable()
        }
    }

    fn never_exec(_: &ContainerId) -> Result<navarch_runtime::ExecOutput, RuntimeError> {
        unreachable!("no exec expected")
    }

    async fn run_against(spec: &ProbeSpec, runtime: &dyn ContainerRuntime) -> ProbeResult {
        let id = ContainerId::new("c1").unwrap();
        let target = ProbeTarget {
            pod_ip: IpAddr::from([127, 0, 0, 1]),
            runtime,
            container: &id,
        };
        run(spec, &target).await
    }

    #[tokio::test]
    async fn http_get_passes_on_200_with_kubelets_headers() {
        let (port, mut requests) = http_server(Answer::Status(200)).await;
        let double = ExecTestDouble::new(never_exec);
        let result = run_against(&http_spec(port, 1), &double).await;
        assert_eq!(result, ProbeResult::success());
        let request = requests.recv().await.unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\nUser-Agent: kube-probe/1.37\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nX-Probe: yes\r\n"), "{request}");
        assert!(
            request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn http_get_3xx_passes_and_500_fails() {
        let double = ExecTestDouble::new(never_exec);
        let (port, _r) = http_server(Answer::Status(302)).await;
        assert_eq!(
            run_against(&http_spec(port, 1), &double).await.status,
            ProbeStatus::Success
        );
        let (port, _r) = http_server(Answer::Status(500)).await;
        assert_eq!(
            run_against(&http_spec(port, 1), &double).await,
            ProbeResult::failure("HTTP probe failed with statuscode: 500")
        );
    }

    #[tokio::test]
    async fn http_get_refused_fails() {
        let double = ExecTestDouble::new(never_exec);
        let port = closed_port().await;
        let result = run_against(&http_spec(port, 1), &double).await;
        assert_eq!(result.status, ProbeStatus::Failure);
        assert_eq!(
            result.message,
            format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }

    #[tokio::test]
    async fn http_get_unanswered_fails_within_its_timeout() {
        let double = ExecTestDouble::new(never_exec);
        let (port, _r) = http_server(Answer::Never).await;
        let started = Instant::now();
        let result = run_against(&http_spec(port, 1), &double).await;
        let took = started.elapsed();
        assert_eq!(result.status, ProbeStatus::Failure);
        assert!(
            result.message.contains("context deadline exceeded"),
            "{}",
            result.message
        );
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[tokio::test]
    async fn tcp_socket_connects_or_fails() {
        let double = ExecTestDouble::new(never_exec);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = spec(Kind::Readiness, json!({"tcpSocket": {"port": port}}));
        assert_eq!(run_against(&s, &double).await, ProbeResult::success());
        drop(listener);
        let s = spec(
            Kind::Readiness,
            json!({"tcpSocket": {"port": port, "host": "127.0.0.1"}}),
        );
        assert_eq!(
            run_against(&s, &double).await,
            ProbeResult::failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    fn exec_spec() -> ProbeSpec {
        spec(
            Kind::Liveness,
            json!({"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 2}),
        )
    }

    #[tokio::test]
    async fn exec_exit_zero_passes_and_carries_the_timeout() {
        let double = ExecTestDouble::new(|_| {
            Ok(navarch_runtime::ExecOutput {
                stdout: b"ok\n".to_vec(),
                stderr: Vec::new(),
                exit_code: 0,
            })
        });
        assert_eq!(
            run_against(&exec_spec(), &double).await,
            ProbeResult::success()
        );
        let requests = double.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].command, ["cat", "/tmp/healthy"]);
        assert_eq!(requests[0].timeout, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn exec_nonzero_fails_with_its_output() {
        let double = ExecTestDouble::new(|_| {
            Ok(navarch_runtime::ExecOutput {
                stdout: Vec::new(),
                stderr: b"cat: /tmp/healthy: No such file or directory\n".to_vec(),
                exit_code: 1,
            })
        });
        assert_eq!(
            run_against(&exec_spec(), &double).await,
            ProbeResult::failure("cat: /tmp/healthy: No such file or directory")
        );
    }

    #[tokio::test]
    async fn exec_timeout_fails_and_runtime_errors_are_unknown() {
        let double = ExecTestDouble::new(|id| {
            Err(RuntimeError::ExecTimeout {
                id: id.clone(),
                timeout_ms: 2000,
            })
        });
        let result = run_against(&exec_spec(), &double).await;
        assert_eq!(result.status, ProbeStatus::Failure);
        assert!(result.message.contains("timed out"), "{}", result.message);
        let double = ExecTestDouble::new(|id| Err(RuntimeError::NotFound { id: id.clone() }));
        assert_eq!(
            run_against(&exec_spec(), &double).await.status,
            ProbeStatus::Unknown
        );
    }
}
