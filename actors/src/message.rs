//! What travels in a host actor's mailbox: an event wrapped in an [`Envelope`] with its
//! correlation id and sender, and the [`TapInfo`] every event type gives the tap.

use std::borrow::Cow;

use actix::Message;

use crate::correlation::{current_actor, current_correlation, CorrelationId};
use crate::error::HostError;
use crate::path::ActorPath;

/// What the tap learns about a message. The defaults name the type after the Rust type and
/// record no size and no summary.
pub trait TapInfo {
    /// The name the tap records and filters on.
    fn message_type(&self) -> Cow<'static, str>
    where
        Self: Sized,
    {
        Cow::Borrowed(short_type_name(std::any::type_name::<Self>()))
    }

    /// Bytes when encoded; 0 for messages that never leave the process.
    fn encoded_size(&self) -> usize {
        0
    }

    /// A short description of the payload. It is scrubbed of anything secret-looking before it
    /// is stored, but leave secrets out in the first place.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// `a::b::Ping<c::D>` -> `Ping`.
pub fn short_type_name(full: &'static str) -> &'static str {
    let head = full.split('<').next().unwrap_or(full);
    head.rsplit("::").next().unwrap_or(head)
}

/// Who sent a message and on behalf of which request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub correlation: Option<CorrelationId>,
    pub sender: Option<ActorPath>,
}

impl Meta {
    /// The correlation id and actor of the calling task, if any.
    pub fn current() -> Self {
        Meta {
            correlation: current_correlation(),
            sender: current_actor(),
        }
    }
}

/// An event on its way to a host actor.
#[derive(Debug)]
pub struct Envelope<E> {
    pub event: E,
    pub meta: Meta,
}

impl<E: 'static> Message for Envelope<E> {
    type Result = Result<(), HostError>;
}
