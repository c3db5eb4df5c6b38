//! The wire of a node's kubelet endpoint (`kubelet.*` on the node agent's QUIC endpoint):
//! what a master sends to read a container's log or run a command in it on behalf of a
//! `pods/log` or `pods/exec` request, and what the node streams back.
//!
//! A log is a server stream. Its first item says whether the node took the request
//! (`Ready`) or why not (`Failed`, with Kubernetes' code, reason and words), so the master
//! can answer its client with the right `Status` before it has sent a byte of the body.
//! An exec is a duplex stream: the master sends the client's stdin, its closing and its
//! terminal's resizes ([`ExecInput`]) as they come, while the node sends `Ready` at once,
//! then the output as the command writes it, and ends with `Exit` or with `Failed` (the
//! container could not be found or run). With a TTY, the end of the input (the client gone)
//! hangs the terminal up: the command is killed.
//!
//! The node's actor views are unary calls for the inspector: its actors (`kubelet.debug.
//! actors`) and the latest messages of its tap (`kubelet.debug.messages`), answered as the
//! JSON the masters' `/debug/actors` and `/debug/messages` give, and its kill switch
//! (`kubelet.debug.kill`, for the chaos suite).

use serde::{Deserialize, Serialize};

/// The method prefix the node agent mounts its kubelet service on.
pub const PREFIX: &str = "kubelet";
/// Streams a container's log: [`LogsRequest`] in, [`LogsItem`]s out.
pub const LOGS: &str = "kubelet.logs";
/// Runs a command in a container (duplex): [`ExecRequest`] and [`ExecInput`]s in,
/// [`ExecItem`]s out.
pub const EXEC: &str = "kubelet.exec";
/// The node's actor registry under a prefix: [`DebugActorsRequest`] in, JSON text out.
pub const DEBUG_ACTORS: &str = "kubelet.debug.actors";
/// The latest messages of the node's tap: [`DebugMessagesRequest`] in, JSON text out.
pub const DEBUG_MESSAGES: &str = "kubelet.debug.messages";
/// The node's kill switch: [`DebugKillRequest`] in, JSON text out (`{"killed": PATH}`, or
/// `{"error": NodeError}` when nothing was killed).
pub const DEBUG_KILL: &str = "kubelet.debug.kill";
/// The largest piece of stdin one input item carries.
pub const MAX_STDIN: usize = 4 * 1024 * 1024;
/// The largest chunk of bytes one item carries.
pub const MAX_CHUNK: usize = 64 * 1024;

/// `pods/log`'s options (Kubernetes' `PodLogOptions`), for one container of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    pub namespace: String,
    pub pod: String,
    /// The container; `None` when the client named none (the node picks the only one).
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// RFC 3339; wins over nothing, loses to `since_seconds` if both came (the API server
    /// refuses both at once, as Kubernetes does).
    pub since_time: Option<String>,
    pub limit_bytes: Option<i64>,
}

/// A refusal of the node, as Kubernetes words it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeError {
    /// The HTTP code the API server answers with (400, 404, 500).
    pub code: u16,
    /// The `Status` reason (`BadRequest`, `NotFound`, `InternalError`).
    pub reason: String,
    pub message: String,
}

/// One item of a log stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogsItem {
    /// The first item of a taken request: the log follows.
    Ready,
    /// Log bytes, prefixes stripped (and timestamps added when asked).
    Chunk(Vec<u8>),
    /// The request cannot be served (first item), or reading failed later.
    Failed(NodeError),
}

/// `pods/exec`'s request, for one container of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub command: Vec<String>,
    /// The client attached stdin: [`ExecInput::Stdin`] follows. Without it (and without a
    /// TTY) the command's stdin is `/dev/null`.
    pub stdin: bool,
    /// Run the command on a terminal: stdout and stderr are one stream (`Stdout`).
    pub tty: bool,
}

/// What the master sends on an exec after its request, as the client sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    /// The client closed stdin (v5's close message): end of file, without a TTY.
    CloseStdin,
    /// The client's terminal size (channel 4), in columns and rows.
    Resize {
        width: u16,
        height: u16,
    },
}

/// One item of an exec stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecItem {
    /// The first item of a taken request.
    Ready,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command ended with this code (the last item).
    Exit(i32),
    /// The request cannot be served, or the command could not be run.
    Failed(NodeError),
}

/// Which of the node's actors to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugActorsRequest {
    /// An actor path (`/node/n1/kubelet`); `None`: all.
    pub prefix: Option<String>,
}

/// Which of the node's actors to kill: exactly one of `path` (that actor) and `prefix` (a
/// random running actor under it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugKillRequest {
    pub path: Option<String>,
    pub prefix: Option<String>,
}

/// Which of the node's tapped messages to give (the masters' `/debug/messages` filters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugMessagesRequest {
    pub prefix: Option<String>,
    pub message_type: Option<String>,
    /// A correlation id, 32 hex digits.
    pub correlation: Option<String>,
    /// Only records with a sequence number above this.
    pub since: Option<u64>,
    pub limit: usize,
}
