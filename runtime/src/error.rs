//! `RuntimeError`: what a runtime operation failed on, and whether retrying can help.

use std::path::PathBuf;

use crate::spec::ContainerId;

/// A runtime operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not in the node's image store: the agent reports `ErrImagePull`.
    /// Retrying helps only once someone imports it.
    #[error("image {image} not found in the image store")]
    ImageNotFound { image: String },
    /// An import under a name that already exists.
    #[error("image {image} already exists")]
    ImageExists { image: String },
    /// The image on disk is unusable (bad config, not a directory, dynamic busybox).
    #[error("image {image} is invalid: {reason}")]
    InvalidImage { image: String, reason: String },
    /// The spec cannot be run as given; retrying the same spec cannot help.
    #[error("invalid container spec for {id}: {reason}")]
    InvalidSpec { id: String, reason: String },
    #[error("container {id} already exists")]
    AlreadyExists { id: ContainerId },
    #[error("container {id} not found")]
    NotFound { id: ContainerId },
    /// The operation needs another state (start of a running container, exec in an
    /// exited one).
    #[error("container {id} is {state}, cannot {op}")]
    InvalidState {
        id: ContainerId,
        state: &'static str,
        op: &'static str,
    },
    /// The container's process could not be started (command not found, a mount failed):
    /// the agent reports `StartError`/`CrashLoopBackOff`.
    #[error("container {id} failed to start: {reason}")]
    StartFailed { id: ContainerId, reason: String },
    /// The supervising shim failed or answered something unreadable.
    #[error("shim for container {id} failed: {reason}")]
    Shim { id: ContainerId, reason: String },
    /// A stop did not see the process exit even after SIGKILL.
    #[error("container {id} did not exit within {waited_ms} ms of {signal}")]
    StopTimeout {
        id: ContainerId,
        signal: &'static str,
        waited_ms: u64,
    },
    /// An exec ran past its timeout; its command was killed.
    #[error("exec in container {id} ran past its timeout of {timeout_ms} ms")]
    ExecTimeout { id: ContainerId, timeout_ms: u64 },
    /// The runtime cannot run on this machine (its tool is missing, it needs root).
    #[error("the {runtime} runtime is unavailable: {reason}")]
    Unavailable {
        runtime: &'static str,
        reason: String,
    },
    /// A file of the state dir could not be parsed.
    #[error("state file {path} is corrupt: {reason}")]
    CorruptState { path: PathBuf, reason: String },
    /// A file system or process operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::errno::Errno,
    },
}

impl RuntimeError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { op, path, source }
    }

    pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Self {
        let op = op.into();
        move |source| RuntimeError::Sys { op, source }
    }

    /// Whether the agent should report the failure as `ErrImagePull`.
    pub fn is_image_pull(&self) -> bool {
        matches!(self, RuntimeError::ImageNotFound { .. })
    }
}
