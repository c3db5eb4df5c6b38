//! The pure side of a supervised object actor: its decisions, and the port its actions go out
//! through.
//!
//! An [`ObjectLogic`] turns state and an event into new state and a list of actions. It knows
//! nothing of actix, mailboxes or restarts, so it is tested with plain function calls; the
//! [`ObjectHost`](crate::ObjectHost) actor feeds it and hands its actions to an [`Effects`].

use futures::future::BoxFuture;

use crate::message::TapInfo;
use crate::path::{ActorPath, ObjectKey};

/// A decision the logic cannot recover from; the host stops and its supervisor restarts it
/// from its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// The actions a step decided on, or a fatal error.
pub type Decision<A> = Result<Vec<A>, Fatal>;

/// The decisions of one object kind, as pure functions.
///
/// Every method may panic or fail; the host contains either and restarts the actor. State is
/// never carried over a restart: it is rebuilt with [`rebuild`](ObjectLogic::rebuild) from the
/// object as the [`Source`](crate::Source) has it.
pub trait ObjectLogic: Send + Sync + 'static {
    /// The object as stored (the source of truth).
    type Object: Send + 'static;
    /// What the actor remembers between messages.
    type State: 'static;
    /// The messages the actor handles.
    type Event: TapInfo + Send + 'static;
    /// What the logic asks the outside world to do.
    type Action: Send + 'static;

    /// The state of a fresh incarnation, from the stored object.
    fn rebuild(&self, key: &ObjectKey, object: Self::Object) -> Self::State;

    /// Actions to take when an incarnation starts (a level-triggered controller reconciles here).
    fn on_start(&self, _state: &mut Self::State) -> Decision<Self::Action> {
        Ok(Vec::new())
    }

    /// The stored object changed.
    fn on_change(&self, state: &mut Self::State, object: Self::Object) -> Decision<Self::Action>;

    /// A message arrived.
    fn handle(&self, state: &mut Self::State, event: Self::Event) -> Decision<Self::Action>;

    /// One line for the registry (`replicas 3/3, revision 7`), computed when an incarnation
    /// starts and whenever the registry is refreshed, never per message. Never include secrets.
    fn summary(&self, state: &Self::State) -> String;
}

/// Why carrying out actions failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EffectError {
    pub message: String,
    /// A fatal failure restarts the actor; any other is reported to the sender and logged.
    pub fatal: bool,
}

/// Carries out the actions an object's logic decided on (store writes, RPCs, other actors).
///
/// The future runs inside the host actor, which handles nothing else until it completes, with
/// the message's correlation id and the actor's path in scope (see
/// [`current_correlation`](crate::current_correlation)), so whatever it sends carries them.
pub trait Effects<A>: Send + Sync + 'static {
    fn perform(
        &self,
        actor: &ActorPath,
        actions: Vec<A>,
    ) -> BoxFuture<'static, Result<(), EffectError>>;
}

/// Effects that drop every action: for kinds whose logic only keeps state, and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEffects;

impl<A: Send + 'static> Effects<A> for NoEffects {
    fn perform(&self, _: &ActorPath, _: Vec<A>) -> BoxFuture<'static, Result<(), EffectError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
