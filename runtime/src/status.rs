//! A container's observed state, folded from the records its state dir holds: the pure
//! decision of what a container is (created, running, exited and why), tested on its own.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::spec::ContainerId;

/// Written by the shim once the container's process runs (`started.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedRecord {
    /// The container's first process, as the host sees it.
    pub pid: i32,
    /// Its start time in clock ticks (`/proc/<pid>/stat` field 22): with the pid, it tells
    /// the process from a later one that reused the pid.
    pub pid_start_ticks: u64,
    /// The supervising shim, and its start time in clock ticks.
    pub shim_pid: i32,
    pub shim_start_ticks: u64,
    pub started_at: SystemTime,
}

/// Written by the shim once the container's process has been reaped (`exit.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, 128 + the signal when a signal ended it.
    pub exit_code: i32,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub finished_at: SystemTime,
    /// OOM kills the container's memory cgroup counted.
    pub oom_kills: u64,
    /// Set when the process never ran its command (exec failed, a mount failed).
    pub start_error: Option<String>,
}

/// Written by the runtime as it stops a container (`stop.json`): which signals it sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecord {
    pub term_sent_at: Option<SystemTime>,
    pub kill_sent_at: Option<SystemTime>,
}

impl StopRecord {
    /// Notes that SIGKILL (`kill`) or SIGTERM was sent now.
    pub fn sent(&mut self, kill: bool) {
        let at = Some(SystemTime::now());
        if kill {
            self.kill_sent_at = at;
        } else {
            self.term_sent_at = at;
        }
    }
}

/// Why a container is no longer running, as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    Completed,
    Error,
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// The command never ran.
    StartError,
    /// The process is gone and no exit was recorded (its shim was killed).
    #[serde(rename = "ContainerStatusUnknown")]
    Unknown,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Completed => "Completed",
            Reason::Error => "Error",
            Reason::OomKilled => "OOMKilled",
            Reason::StartError => "StartError",
            Reason::Unknown => "ContainerStatusUnknown",
        }
    }
}

/// Where a container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
        }
    }
}

/// A container as a runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: ContainerId,
    pub state: ContainerState,
    pub image: String,
    /// The container's first process on the host, while it runs (and after, for the record).
    pub pid: Option<i32>,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub reason: Option<Reason>,
    pub message: Option<String>,
    /// The signals a stop sent.
    pub stop: StopRecord,
    /// The current log file (rotated ones are `<path>.1`, `<path>.2`, ...).
    pub log_path: PathBuf,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Kubernetes' exit code when a container's fate is unknown.
pub const UNKNOWN_EXIT_CODE: i32 = 137;

/// The reason for an exit record.
pub fn reason(exit: &ExitRecord) -> Reason {
    if exit.start_error.is_some() {
        Reason::StartError
    } else if exit.oom_kills > 0 && exit.exit_code != 0 {
        Reason::OomKilled
    } else if exit.exit_code == 0 {
        Reason::Completed
    } else {
        Reason::Error
    }
}

/// What a container's records say about it. `alive` says whether the started process (or
/// its shim, which may be about to write its exit) still runs; it is only asked when there
/// is a start and no exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Created,
    Running {
        pid: i32,
    },
    Exited {
        reason: Reason,
        exit_code: i32,
        signal: Option<i32>,
        finished_at: Option<SystemTime>,
        message: Option<String>,
    },
}

pub fn observe(
    started: Option<&StartedRecord>,
    exit: Option<&ExitRecord>,
    alive: impl FnOnce(&StartedRecord) -> bool,
) -> Observed {
    match (started, exit) {
        (_, Some(exit)) => Observed::Exited {
            reason: reason(exit),
            exit_code: exit.exit_code,
            signal: exit.signal,
            finished_at: Some(exit.finished_at),
            message: exit.start_error.clone(),
        },
        (Some(started), None) if alive(started) => Observed::Running { pid: started.pid },
        (Some(_), None) => Observed::Exited {
            reason: Reason::Unknown,
            exit_code: UNKNOWN_EXIT_CODE,
            signal: None,
            finished_at: None,
            message: Some(
                "the container's process and its shim are gone and no exit was recorded".into(),
            ),
        },
        (None, None) => Observed::Created,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32, signal: Option<i32>, oom: u64) -> ExitRecord {
        ExitRecord {
            exit_code: code,
            signal,
            finished_at: SystemTime::UNIX_EPOCH,
            oom_kills: oom,
            start_error: None,
        }
    }

    #[test]
    fn reasons_follow_kubernetes() {
        assert_eq!(reason(&exit(0, None, 0)), Reason::Completed);
        assert_eq!(reason(&exit(3, None, 0)), Reason::Error);
        assert_eq!(reason(&exit(137, Some(9), 0)), Reason::Error);
        assert_eq!(reason(&exit(137, Some(9), 1)), Reason::OomKilled);
        // A child was OOM-killed but the container's command exited cleanly.
        assert_eq!(reason(&exit(0, None, 1)), Reason::Completed);
        let mut e = exit(128, None, 0);
        e.start_error = Some("no such file".into());
        assert_eq!(reason(&e), Reason::StartError);
    }

    #[test]
    fn a_start_without_exit_is_running_only_while_alive() {
        let s = StartedRecord {
            pid: 42,
            pid_start_ticks: 7,
            shim_pid: 41,
            shim_start_ticks: 1,
            started_at: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(observe(None, None, |_| true), Observed::Created);
        assert_eq!(
            observe(Some(&s), None, |_| true),
            Observed::Running { pid: 42 }
        );
        assert!(matches!(
            observe(Some(&s), None, |_| false),
            Observed::Exited {
                reason: Reason::Unknown,
                exit_code: 137,
                ..
            }
        ));
        let e = exit(3, None, 0);
        assert!(matches!(
            observe(Some(&s), Some(&e), |_| unreachable!()),
            Observed::Exited {
                reason: Reason::Error,
                exit_code: 3,
                ..
            }
        ));
    }
}
