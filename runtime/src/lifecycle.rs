//! What both runtimes do alike with a container's state dir: read its records, report its
//! status from them, claim its one start, and stop it (SIGTERM, the grace period, SIGKILL).

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use crate::process::alive;
use crate::spec::{ContainerId, ContainerSpec};
use crate::state::{self, read_json};
use crate::status::{
    observe, ContainerState, ContainerStatus, ExitRecord, Observed, StartedRecord, StopRecord,
};
use crate::RuntimeError;

/// A runtime's launch plan, as far as a status needs it.
pub(crate) trait Plan: DeserializeOwned {
    fn created_at(&self) -> SystemTime;
    fn log_path(&self) -> PathBuf;
}

/// A container's records in its state dir; `P` is its runtime's launch plan.
pub(crate) struct Records<P> {
    pub spec: ContainerSpec,
    pub plan: P,
    pub started: Option<StartedRecord>,
    pub exit: Option<ExitRecord>,
    pub stop: StopRecord,
}

impl<P: Plan> Records<P> {
    /// Reads the records of `id` from `dir`, its plan from `plan_file`.
    pub fn read(dir: &Path, plan_file: &str, id: &ContainerId) -> Result<Self, RuntimeError> {
        let not_found = || RuntimeError::NotFound { id: id.clone() };
        Ok(Records {
            spec: read_json(&dir.join(state::SPEC))?.ok_or_else(not_found)?,
            plan: read_json(&dir.join(plan_file))?.ok_or_else(not_found)?,
            started: read_json(&dir.join(state::STARTED))?,
            exit: read_json(&dir.join(state::EXIT))?,
            stop: read_json(&dir.join(state::STOP))?.unwrap_or_default(),
        })
    }

    /// The status these records (read from `dir`) describe: running while the process or
    /// its shim lives.
    pub fn status(mut self, id: &ContainerId, dir: &Path) -> Result<ContainerStatus, RuntimeError> {
        let live = |s: &StartedRecord| {
            alive(s.pid, s.pid_start_ticks) || alive(s.shim_pid, s.shim_start_ticks)
        };
        // Liveness is asked once: a shim records the exit before it exits, so once it is
        // seen gone, an exit written after the records were read is on disk now.
        let running = self.exit.is_none() && self.started.as_ref().is_some_and(live);
        if self.exit.is_none() && self.started.is_some() && !running {
            self.exit = read_json(&dir.join(state::EXIT))?;
        }
        let observed = observe(self.started.as_ref(), self.exit.as_ref(), |_| running);
        let mut st = ContainerStatus {
            id: id.clone(),
            state: ContainerState::Created,
            image: self.spec.image,
            pid: self.started.as_ref().map(|s| s.pid),
            created_at: self.plan.created_at(),
            started_at: self.started.as_ref().map(|s| s.started_at),
            finished_at: None,
            exit_code: None,
            signal: None,
            reason: None,
            message: None,
            stop: self.stop,
            log_path: self.plan.log_path(),
            labels: self.spec.labels,
        };
        match observed {
            Observed::Created => {}
            Observed::Running { .. } => st.state = ContainerState::Running,
            Observed::Exited {
                reason,
                exit_code,
                signal,
                finished_at,
                message,
            } => {
                st.state = ContainerState::Exited;
                st.reason = Some(reason);
                st.exit_code = Some(exit_code);
                st.signal = signal;
                st.finished_at = finished_at;
                st.message = message;
            }
        }
        Ok(st)
    }
}

/// Claims the one start of a container in `state`: only a created one, and only once, even
/// when two starts race (the first to make `dir/start.lock` wins).
pub(crate) fn claim_start(
    dir: &Path,
    id: &ContainerId,
    state: ContainerState,
) -> Result<(), RuntimeError> {
    let claimed = state == ContainerState::Created
        && fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join("start.lock"))
            .is_ok();
    if claimed {
        Ok(())
    } else {
        Err(RuntimeError::InvalidState {
            id: id.clone(),
            state: state.as_str(),
            op: "start",
        })
    }
}

/// How often a stop looks whether the container exited.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long a stop waits for the exit after SIGKILL before it reports a timeout.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(10);

/// The stop both runtimes make of a started container: `signal(false)` sends (and records)
/// SIGTERM, then up to `grace` for the exit, then `signal(true)` sends SIGKILL and up to
/// [`KILL_WAIT`]; `status` reads the container's status. The exited status, or
/// [`RuntimeError::StopTimeout`].
pub(crate) async fn stop_sequence<S, SF, K, KF>(
    id: &ContainerId,
    grace: Duration,
    status: S,
    signal: K,
) -> Result<ContainerStatus, RuntimeError>
where
    S: Fn() -> SF,
    SF: Future<Output = Result<ContainerStatus, RuntimeError>>,
    K: Fn(bool) -> KF,
    KF: Future<Output = Result<bool, RuntimeError>>,
{
    let running = |st: &ContainerStatus| st.state == ContainerState::Running;
    let wait = |limit: Duration| {
        let status = &status;
        async move {
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let st = status().await?;
                if !running(&st) || tokio::time::Instant::now() >= deadline {
                    return Ok::<_, RuntimeError>(st);
                }
                tokio::time::sleep(STOP_POLL).await;
            }
        }
    };
    let sent = signal(false).await?;
    tracing::info!(container = %id, sent, grace_ms = grace.as_millis() as u64, "container stopping");
    let st = wait(grace).await?;
    if !running(&st) {
        return Ok(st);
    }
    signal(true).await?;
    tracing::info!(container = %id, "container killed after its grace period");
    let st = wait(KILL_WAIT).await?;
    if running(&st) {
        return Err(RuntimeError::StopTimeout {
            id: id.clone(),
            signal: "SIGKILL",
            waited_ms: KILL_WAIT.as_millis() as u64,
        });
    }
    Ok(st)
}
