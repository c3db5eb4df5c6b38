//! The `ContainerRuntime` trait: what the node agent asks of any runtime (`process`, and
//! `oci` through runc), object-safe so the agent holds a `Box<dyn ContainerRuntime>`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::attach::ExecIo;
use crate::spec::{ContainerId, ContainerSpec, ExecChunk, ExecOutput, ExecRequest};
use crate::status::ContainerStatus;
use crate::RuntimeError;

/// The future every runtime method returns.
pub type RuntimeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RuntimeError>> + Send + 'a>>;

/// Whether a runtime's containers are isolated from the host (the Node reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces, a root filesystem from the image, cgroup limits.
    Isolated,
    /// Plain supervised children: no namespaces, no root filesystem change, no limits.
    NotIsolated { reason: String },
}

impl Isolation {
    pub fn is_isolated(&self) -> bool {
        matches!(self, Isolation::Isolated)
    }
}

/// A container runtime. Its state lives in a state dir, not in the value: a new instance
/// over the same dir (after the agent restarted) sees every container again, running ones
/// with the same pids, and manages them as the old one did.
///
/// Cancelling a returned future leaves the container in a state `status` reports
/// truthfully: a cancelled `stop` may have sent SIGTERM (recorded) without waiting; a
/// cancelled `create` may leave a created container behind that `remove` cleans up.
pub trait ContainerRuntime: Send + Sync {
    /// The runtime's name as a RuntimeClass handler names it (`process`, `oci`).
    fn name(&self) -> &'static str;

    /// Whether containers are isolated.
    fn isolation(&self) -> Isolation;

    /// Prepares a container (image resolved, root filesystem, cgroup, state), not started.
    /// An unknown image is [`RuntimeError::ImageNotFound`].
    fn create(&self, spec: ContainerSpec) -> RuntimeFuture<'_, ContainerStatus>;

    /// Starts a created container's process; returns once it runs (or failed to start, as
    /// [`RuntimeError::StartFailed`], with the failure also in its status).
    fn start<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ContainerStatus>;

    /// Sends SIGTERM, waits up to `grace` for the exit, then sends SIGKILL; returns the
    /// exited status. Stopping an exited or created container is a no-op.
    fn stop<'a>(
        &'a self,
        id: &'a ContainerId,
        grace: Duration,
    ) -> RuntimeFuture<'a, ContainerStatus>;

    /// The container's status now.
    fn status<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ContainerStatus>;

    /// Every container in the state dir, for re-adoption after an agent restart.
    fn list(&self) -> RuntimeFuture<'_, Vec<ContainerStatus>>;

    /// Runs a command inside a running container (its namespaces, root and cgroup),
    /// collecting its output; with `request.stdin`, that is its whole stdin.
    fn exec<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
    ) -> RuntimeFuture<'a, ExecOutput>;

    /// [`exec`](Self::exec), its output sent to `output` as the command writes it; returns
    /// the exit code. A closed `output` drops the rest of the output, not the command. The
    /// default collects (the output arrives when the command ends); `process` streams.
    fn exec_streaming<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
        output: tokio::sync::mpsc::Sender<ExecChunk>,
    ) -> RuntimeFuture<'a, i32> {
        Box::pin(async move {
            let out = self.exec(id, request).await?;
            if !out.stdout.is_empty() {
                let _ = output.send(ExecChunk::Stdout(out.stdout)).await;
            }
            if !out.stderr.is_empty() {
                let _ = output.send(ExecChunk::Stderr(out.stderr)).await;
            }
            Ok(out.exit_code)
        })
    }

    /// Runs a command inside a running container attached to its caller: stdin as `io`'s
    /// input brings it, output sent as the command writes it, on a pseudo-terminal with
    /// `io.tty` (whose size follows the input's resizes); returns the exit code.
    /// `request.stdin` is not read. The default refuses: a runtime that cannot attach.
    fn exec_attached<'a>(
        &'a self,
        id: &'a ContainerId,
        request: ExecRequest,
        io: ExecIo,
    ) -> RuntimeFuture<'a, i32> {
        let _ = (id, request, io);
        Box::pin(async move {
            Err(RuntimeError::Unavailable {
                runtime: self.name(),
                reason: "it cannot attach to an exec".into(),
            })
        })
    }

    /// Removes a container: a running one is killed first; its root filesystem, cgroup and
    /// state go (a log file outside the state dir stays, for `logs --previous`).
    fn remove<'a>(&'a self, id: &'a ContainerId) -> RuntimeFuture<'a, ()>;
}
