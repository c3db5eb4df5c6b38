//! Errors a sender sees when it messages a supervised actor or its supervisor.

/// Why a message to an object actor was not handled successfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No incarnation is running (it is between restarts, failed, or was removed). Retrying
    /// after the backoff may help.
    #[error("actor {path} is not running")]
    Unavailable { path: String },
    /// `try_send` found the mailbox full.
    #[error("mailbox of actor {path} is full")]
    MailboxFull { path: String },
    /// The incarnation died before it answered; the message may or may not have been handled.
    #[error("actor {path} stopped before answering")]
    Lost { path: String },
    /// Handling this message panicked; the actor is being restarted.
    #[error("actor {path} panicked: {message}")]
    Panicked { path: String, message: String },
    /// The logic or its effects failed fatally; the actor is being restarted.
    #[error("actor {path} failed: {message}")]
    Fatal { path: String, message: String },
    /// Carrying out the actions failed; the actor keeps running.
    #[error("actor {path} could not carry out its actions: {message}")]
    Effect { path: String, message: String },
    /// The actor was killed by the kill switch; it is being restarted.
    #[error("actor {path} was killed")]
    Killed { path: String },
}

/// Why a request to a supervisor (kind, singleton or group) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// The supervisor gave up (restart intensity exceeded) with nobody above to restart it, or
    /// was shut down. Retrying will not help.
    #[error("supervisor {path} is not running")]
    Stopped { path: String },
    /// No incarnation runs now: its group stopped it (a controller manager on a master that is
    /// not the leader) or is restarting it. Retrying later may help.
    #[error("supervisor {path} is not running now (stopped or restarting)")]
    Unavailable { path: String },
    /// Another actor already has the supervisor's path.
    #[error("an actor is already registered at {path}")]
    Duplicate { path: String },
    /// The supervisor's path could not be built.
    #[error(transparent)]
    Path(#[from] crate::path::PathError),
}
