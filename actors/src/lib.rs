//! The supervised actor kit on actix: one actor per object under a supervisor per kind,
//! singletons beside them, groups of supervisors above them, with panic containment and
//! restarts, an actor registry, a message tap, a kill switch, typed senders and a clock that
//! tests control.
//!
//! Where to start reading:
//! - [`ObjectLogic`] (`logic.rs`): the pure decisions of one kind, tested without actix;
//! - [`ObjectHost`] and [`ChildRef`] (`host.rs`): the thin actor around that logic;
//! - [`KindSupervisor`] (`supervisor.rs`): children per object, restarts, escalation;
//! - [`SingletonLogic`] and [`SingletonRef`] (`singleton.rs`): the one actor of its kind;
//! - [`GroupHandle`] (`group.rs`): a supervisor of supervisors, stopped and started together;
//! - [`Sender`] (`sender.rs`): what components hold to send a message type, whoever receives;
//! - [`Clock`] (`clock.rs`): the only source of time, [`ManualClock`] in tests;
//! - [`Root`] (`root.rs`): one per process, owns the [`Registry`], the [`MessageTap`] and the
//!   clock.
//!
//! ```text
//! Root /master ── Group /master/controllers ── KindSupervisor .../deployment ── ObjectHost .../default/web
//!   │                                       ├─ Singleton .../scheduler        └─ ObjectHost .../default/api
//!   │                                       └─ Group .../nodes ── KindSupervisor .../nodes/node ── ...
//!   ├─ Registry   (path -> role, kind, supervisor, status, summary, mailbox, handled, restarts, last error)
//!   ├─ MessageTap (ring of TapRecord; also the QUIC layer's WireTap)
//!   └─ Clock      (SystemClock; ManualClock in tests and simulations)
//! ```
//!
//! Architecture invariants:
//! - State is never carried over a restart: each incarnation rebuilds it from its [`Source`]
//!   (a singleton from its [`SnapshotSource`]); a kind supervisor started again lists its
//!   source rather than remembering its keys.
//! - A panic anywhere in a host ends that incarnation only; other actors, on the same arbiter
//!   or not, keep running. A supervisor that gives up ends its own subtree only, and its parent
//!   decides: a group restarts it, the root records it.
//! - Senders hold [`ChildRef`]s, [`SingletonRef`]s, supervisor handles or [`Sender`]s, never
//!   actix addresses, so restarts (of an actor or of the supervisor above it) are invisible to
//!   them.
//! - Every message a host handles carries a [`Meta`] (correlation id, sender) and runs its
//!   effects with the correlation id in the task-local scope `navarch_net::trace` defines.
//! - Nothing in the kit reads time or sleeps except through the root's [`Clock`].

pub mod clock;
pub mod correlation;
pub mod error;
pub mod group;
pub mod host;
mod incarnation;
pub mod logic;
pub mod message;
pub mod path;
pub mod policy;
pub mod redact;
pub mod registry;
pub mod root;
pub mod sender;
pub mod singleton;
pub mod source;
pub mod supervisor;
pub mod tap;
mod tree;

pub use clock::{Clock, ManualClock, SystemClock};
pub use correlation::{
    current_actor, current_correlation, in_actor_scope, with_correlation, with_correlation_if,
    CorrelationId,
};
pub use error::{HostError, SupervisorError};
pub use group::{GroupConfig, GroupHandle, GroupSpec, GroupSupervisor};
pub use host::{ChildRef, ExitReason, ObjectHost};
pub use logic::{Decision, EffectError, Effects, Fatal, NoEffects, ObjectLogic};
pub use message::{Envelope, Meta, TapInfo};
pub use path::{ActorPath, ObjectKey, PathError};
pub use policy::{Backoff, Escalation, Intensity, RestartPolicy};
pub use registry::{ActorInfo, KillError, Registry, Role, Status};
pub use root::Root;
pub use sender::{CanSend, Inbox, Sender};
pub use singleton::{
    SingletonConfig, SingletonLogic, SingletonRef, SingletonSpec, SingletonSupervisor,
    SnapshotSource,
};
pub use source::{Source, SourceError};
pub use supervisor::{
    EscalationAction, EscalationReport, KindConfig, KindHandle, KindSpec, KindSupervisor,
};
pub use tap::{FollowItem, MessageTap, TapConfig, TapFilter, TapRecord, Via};
