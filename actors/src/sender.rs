//! Typed senders: [`Sender<M>`] is what a component holds to send `M`, whoever receives it.
//!
//! A controller that tells the scheduler about pods holds a `Sender<SchedulerEvent>`, not a
//! `SingletonRef<Scheduler>` nor an actix address: the receiver's logic type stays out of the
//! sender's signature, the receiver can be swapped (an object actor, a singleton, a plain
//! channel in a test, a deterministic loop in a simulation), and restarts stay invisible as
//! with [`ChildRef`]. Anything that implements [`CanSend<M>`] makes one; [`ChildRef<L>`] and
//! [`SingletonRef`](crate::SingletonRef) convert with `.sender()` or `.into()`, a channel with
//! [`Sender::channel`], a closure with [`Sender::from_fn`], and [`Sender::adapt`] wraps a
//! sender of a bigger message type into one of a smaller one.
//!
//! Every send carries a [`Meta`] (correlation id, sending actor), taken from the calling task
//! exactly as [`ChildRef::send`] takes it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::error::HostError;
use crate::host::ChildRef;
use crate::logic::ObjectLogic;
use crate::message::Meta;

/// Something that takes messages of type `M`.
pub trait CanSend<M>: Send + Sync + 'static {
    /// Delivers `message` with `meta`; resolves once the receiver has handled it (a channel:
    /// once it is queued).
    fn send_with(&self, message: M, meta: Meta) -> BoxFuture<'static, Result<(), HostError>>;

    /// Queues `message` without waiting, even past a mailbox's capacity.
    fn do_send_with(&self, message: M, meta: Meta) -> Result<(), HostError>;

    /// Queues `message` without waiting, failing if the mailbox is full.
    fn try_send_with(&self, message: M, meta: Meta) -> Result<(), HostError> {
        self.do_send_with(message, meta)
    }

    /// Who receives: an actor path, or a description.
    fn target(&self) -> String;
}

/// A cloneable handle that sends `M` to whatever is behind it.
pub struct Sender<M: 'static> {
    inner: Arc<dyn CanSend<M>>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
        }
    }
}

impl<M> fmt::Debug for Sender<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Sender").field(&self.inner.target()).finish()
    }
}

impl<M: Send + 'static> Sender<M> {
    /// A sender to `target`.
    pub fn new(target: impl CanSend<M>) -> Self {
        Sender {
            inner: Arc::new(target),
        }
    }

    /// A sender to a shared `target`.
    pub fn from_arc(target: Arc<dyn CanSend<M>>) -> Self {
        Sender { inner: target }
    }

    /// A sender that calls `f` for each message (a test's recorder, a simulation's loop).
    /// Every kind of send calls it once and returns what it returns.
    pub fn from_fn(
        target: &str,
        f: impl Fn(M, Meta) -> Result<(), HostError> + Send + Sync + 'static,
    ) -> Self {
        Sender::new(FnSender {
            target: target.to_owned(),
            f,
        })
    }

    /// A sender into an unbounded channel, and the channel's receiving end. Sends complete
    /// once the message is queued; they fail with [`HostError::Unavailable`] once the
    /// [`Inbox`] is dropped.
    pub fn channel(target: &str) -> (Self, Inbox<M>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sender = Sender::new(ChannelSender {
            target: target.to_owned(),
            tx,
        });
        (sender, Inbox { rx })
    }

    /// Who receives.
    pub fn target(&self) -> String {
        self.inner.target()
    }

    /// Sends `message` and waits until it is handled. The message carries the correlation id
    /// and actor path in scope where the future is first polled, as with [`ChildRef::send`].
    ///
    /// # Cancel safety
    /// Dropping the future after its first poll does not unqueue the message.
    pub fn send(&self, message: M) -> impl Future<Output = Result<(), HostError>> + Send + 'static {
        let inner = self.inner.clone();
        async move { inner.send_with(message, Meta::current()).await }
    }

    /// Like [`send`](Self::send) with explicit metadata.
    pub fn send_with(&self, message: M, meta: Meta) -> BoxFuture<'static, Result<(), HostError>> {
        self.inner.send_with(message, meta)
    }

    /// Queues `message` without waiting, with the calling task's metadata.
    pub fn do_send(&self, message: M) -> Result<(), HostError> {
        self.inner.do_send_with(message, Meta::current())
    }

    /// Queues `message` without waiting, failing if the mailbox is full.
    pub fn try_send(&self, message: M) -> Result<(), HostError> {
        self.inner.try_send_with(message, Meta::current())
    }

    /// A sender of `N` that converts each message with `f` and sends it here: a component
    /// that only emits `PodEvent` holds a `Sender<PodEvent>` even if the receiver takes a
    /// bigger enum.
    pub fn adapt<N: Send + 'static>(
        &self,
        f: impl Fn(N) -> M + Send + Sync + 'static,
    ) -> Sender<N> {
        Sender::new(Adapted {
            inner: self.inner.clone(),
            f,
        })
    }
}

impl<L: ObjectLogic> CanSend<L::Event> for ChildRef<L> {
    fn send_with(
        &self,
        message: L::Event,
        meta: Meta,
    ) -> BoxFuture<'static, Result<(), HostError>> {
        Box::pin(ChildRef::send_with(self, message, meta))
    }

    fn do_send_with(&self, message: L::Event, meta: Meta) -> Result<(), HostError> {
        self.do_send_meta(message, meta)
    }

    fn try_send_with(&self, message: L::Event, meta: Meta) -> Result<(), HostError> {
        self.try_send_meta(message, meta)
    }

    fn target(&self) -> String {
        self.path().to_string()
    }
}

impl<L: ObjectLogic> From<ChildRef<L>> for Sender<L::Event> {
    fn from(child: ChildRef<L>) -> Self {
        Sender::new(child)
    }
}

impl<L: ObjectLogic> ChildRef<L> {
    /// A typed sender to this actor.
    pub fn sender(&self) -> Sender<L::Event> {
        Sender::new(self.clone())
    }
}

/// The receiving end of [`Sender::channel`].
#[derive(Debug)]
pub struct Inbox<M> {
    rx: mpsc::UnboundedReceiver<(M, Meta)>,
}

impl<M> Inbox<M> {
    /// The next message, waiting for one; `None` once every sender is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is never lost by dropping the future.
    pub async fn recv(&mut self) -> Option<(M, Meta)> {
        self.rx.recv().await
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<(M, Meta)> {
        self.rx.try_recv().ok()
    }

    /// Every message queued now.
    pub fn drain(&mut self) -> Vec<(M, Meta)> {
        std::iter::from_fn(|| self.try_recv()).collect()
    }
}

struct ChannelSender<M> {
    target: String,
    tx: mpsc::UnboundedSender<(M, Meta)>,
}

impl<M: Send + 'static> CanSend<M> for ChannelSender<M> {
    fn send_with(&self, message: M, meta: Meta) -> BoxFuture<'static, Result<(), HostError>> {
        Box::pin(std::future::ready(self.do_send_with(message, meta)))
    }

    fn do_send_with(&self, message: M, meta: Meta) -> Result<(), HostError> {
        self.tx
            .send((message, meta))
            .map_err(|_| HostError::Unavailable {
                path: self.target.clone(),
            })
    }

    fn target(&self) -> String {
        self.target.clone()
    }
}

struct FnSender<F> {
    target: String,
    f: F,
}

impl<M, F> CanSend<M> for FnSender<F>
where
    M: Send + 'static,
    F: Fn(M, Meta) -> Result<(), HostError> + Send + Sync + 'static,
{
    fn send_with(&self, message: M, meta: Meta) -> BoxFuture<'static, Result<(), HostError>> {
        Box::pin(std::future::ready((self.f)(message, meta)))
    }

    fn do_send_with(&self, message: M, meta: Meta) -> Result<(), HostError> {
        (self.f)(message, meta)
    }

    fn target(&self) -> String {
        self.target.clone()
    }
}

struct Adapted<M: 'static, F> {
    inner: Arc<dyn CanSend<M>>,
    f: F,
}

impl<M, N, F> CanSend<N> for Adapted<M, F>
where
    M: Send + 'static,
    N: Send + 'static,
    F: Fn(N) -> M + Send + Sync + 'static,
{
    fn send_with(&self, message: N, meta: Meta) -> BoxFuture<'static, Result<(), HostError>> {
        self.inner.send_with((self.f)(message), meta)
    }

    fn do_send_with(&self, message: N, meta: Meta) -> Result<(), HostError> {
        self.inner.do_send_with((self.f)(message), meta)
    }

    fn try_send_with(&self, message: N, meta: Meta) -> Result<(), HostError> {
        self.inner.try_send_with((self.f)(message), meta)
    }

    fn target(&self) -> String {
        self.inner.target()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlation::{with_correlation, CorrelationId};
    use futures::FutureExt;

    #[derive(Debug, PartialEq)]
    enum Big {
        Small(u32),
    }

    #[test]
    fn a_channel_sender_carries_the_callers_correlation_id() {
        let (tx, mut inbox) = Sender::<u32>::channel("test inbox");
        let id = CorrelationId(9);
        with_correlation(id, tx.send(1))
            .now_or_never()
            .unwrap()
            .unwrap();
        tx.do_send(2).unwrap();
        let got = inbox.drain();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1.correlation), (1, Some(id)));
        assert_eq!((got[1].0, got[1].1.correlation), (2, None));
        drop(inbox);
        assert!(
            matches!(tx.try_send(3), Err(HostError::Unavailable { path }) if path == "test inbox")
        );
    }

    #[test]
    fn adapted_and_closure_senders_convert_and_pass_meta_through() {
        let (big, mut inbox) = Sender::<Big>::channel("big");
        let small: Sender<u32> = big.adapt(Big::Small);
        assert_eq!(small.target(), "big");
        let meta = Meta {
            correlation: Some(CorrelationId(5)),
            sender: None,
        };
        small
            .send_with(7, meta.clone())
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(inbox.try_recv(), Some((Big::Small(7), meta)));

        let refuse = Sender::<u32>::from_fn("full", |n, _| {
            if n > 1 {
                Err(HostError::MailboxFull {
                    path: "full".into(),
                })
            } else {
                Ok(())
            }
        });
        assert!(refuse.do_send(1).is_ok());
        assert!(matches!(
            refuse.try_send(2),
            Err(HostError::MailboxFull { .. })
        ));
        assert_eq!(format!("{refuse:?}"), "Sender(\"full\")");
    }
}
