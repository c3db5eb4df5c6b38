//! The supervised actor kit on actix: one actor per object under a supervisor per kind, with
//! panic containment and restarts, an actor registry, a message tap and a kill switch.
//!
//! Where to start reading:
//! - [`ObjectLogic`] (`logic.rs`): the pure decisions of one kind, tested without actix;
//! - [`ObjectHost`] and [`ChildRef`] (`host.rs`): the thin actor around that logic;
//! - [`KindSupervisor`] (`supervisor.rs`): children per object, restarts, escalation;
//! - [`Root`] (`root.rs`): one per process, owns the [`Registry`] and the [`MessageTap`].
//!
//! ```text
//! Root /master ── KindSupervisor /master/controllers/deployment ── ObjectHost .../default/web
//!   │                                                          └─ ObjectHost .../default/api
//!   ├─ Registry   (path -> kind, supervisor, summary, mailbox, handled, restarts, last error)
//!   └─ MessageTap (ring of TapRecord; also the QUIC layer's WireTap)
//! ```
//!
//! Architecture invariants:
//! - State is never carried over a restart: each incarnation rebuilds it from its [`Source`].
//! - A panic anywhere in a host ends that incarnation only; other actors, on the same arbiter
//!   or not, keep running.
//! - Senders hold [`ChildRef`]s, never actix addresses, so restarts are invisible to them.
//! - Every message a host handles carries a [`Meta`] (correlation id, sender) and runs its
//!   effects with the correlation id in the task-local scope `navarch_net::trace` defines.

pub mod clock;
pub mod correlation;
pub mod error;
pub mod host;
pub mod logic;
pub mod message;
pub mod path;
pub mod policy;
pub mod redact;
pub mod registry;
pub mod root;
pub mod source;
pub mod supervisor;
pub mod tap;

pub use clock::{Clock, ManualClock, SystemClock};
pub use correlation::{
    current_actor, current_correlation, in_actor_scope, with_correlation, CorrelationId,
};
pub use error::{HostError, SupervisorError};
pub use host::{ChildRef, ExitReason, ObjectHost};
pub use logic::{Decision, EffectError, Effects, Fatal, NoEffects, ObjectLogic};
pub use message::{Envelope, Meta, TapInfo};
pub use path::{ActorPath, ObjectKey, PathError};
pub use policy::{Backoff, Escalation, Intensity, RestartPolicy};
pub use registry::{ActorInfo, KillError, Registry, Role, Status};
pub use root::Root;
pub use source::{Source, SourceError};
pub use supervisor::{
    EscalationAction, EscalationReport, KindConfig, KindHandle, KindSpec, KindSupervisor,
};
pub use tap::{FollowItem, MessageTap, TapConfig, TapFilter, TapRecord, Via};
