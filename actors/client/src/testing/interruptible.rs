//! [`Interruptible`]: a [`Client`] decorator that cuts the watches it carries on demand (each
//! ends with `ClientError::Transport`, as a broken connection does), holds new watch requests
//! back, and fails the next ones, over any client: the fake, the in-process one, or HTTPS to
//! a real cluster. Holding watches while the server compacts its history is how a test makes
//! a cache meet 410 on a real master.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
use serde_json::Value;
use tokio::sync::watch;

use crate::{Client, ClientError, ObjectList, Result, Subresource, WatchStream, Written};

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    epoch: u64,
    held: bool,
}

/// Wraps a client; see the module documentation.
pub struct Interruptible {
    inner: Arc<dyn Client>,
    /// The cut epoch and the number of open watches; waiters are woken on every change.
    state: Arc<watch::Sender<Counts>>,
    fail_watches: Mutex<VecDeque<ClientError>>,
    watch_requests: AtomicU64,
}

impl std::fmt::Debug for Interruptible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interruptible")
            .field("open_watches", &self.open_watches())
            .finish_non_exhaustive()
    }
}

struct OpenGuard(Arc<watch::Sender<Counts>>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.send_modify(|c| c.open -= 1);
    }
}

impl Interruptible {
    pub fn new(inner: Arc<dyn Client>) -> Interruptible {
        Interruptible {
            inner,
            state: Arc::new(watch::Sender::new(Counts::default())),
            fail_watches: Mutex::new(VecDeque::new()),
            watch_requests: AtomicU64::new(0),
        }
    }

    /// Ends every watch open now with a transport error.
    pub fn cut_watches(&self) {
        self.state.send_modify(|c| c.epoch += 1);
    }

    /// While held, watch requests wait before reaching the inner client, until released.
    pub fn hold_watches(&self, hold: bool) {
        self.state.send_modify(|c| c.held = hold);
    }

    /// The next watch request fails with `e` without reaching the inner client.
    pub fn fail_next_watch(&self, e: ClientError) {
        self.fail_watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(e);
    }

    /// Watch streams open now.
    pub fn open_watches(&self) -> usize {
        self.state.borrow().open
    }

    /// Watch requests made so far (failed ones included).
    pub fn watch_requests(&self) -> u64 {
        self.watch_requests.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` watches are open (wrap it in a timeout).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_open_watches(&self, n: usize) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|c| c.open >= n).await;
    }
}

impl Client for Interruptible {
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a GetOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        self.inner.get(kind, namespace, name, opts)
    }

    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        self.inner.list(kind, namespace, opts)
    }

    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        async move {
            self.watch_requests.fetch_add(1, Ordering::Relaxed);
            let injected = self
                .fail_watches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            if let Some(e) = injected {
                return Err(e);
            }
            let mut rx = self.state.subscribe();
            let _ = rx.wait_for(|c| !c.held).await;
            let epoch = rx.borrow_and_update().epoch;
            let inner = self.inner.watch(kind, namespace, opts).await?;
            self.state.send_modify(|c| c.open += 1);
            let guard = OpenGuard(self.state.clone());
            // A cut between the request and now still ends this watch.
            let cut_early = rx.borrow().epoch != epoch;
            let stream = futures::stream::unfold(
                (inner, rx, epoch, guard, cut_early, false),
                |(mut inner, mut rx, epoch, guard, cut, done)| async move {
                    if done {
                        return None;
                    }
                    let cut_err = || Err(ClientError::Transport("the watch was cut (test)".into()));
                    if cut {
                        return Some((cut_err(), (inner, rx, epoch, guard, false, true)));
                    }
                    let next = tokio::select! {
                        biased;
                        _ = rx.wait_for(|c| c.epoch != epoch) => None,
                        item = inner.next() => Some(item),
                    };
                    match next {
                        None => Some((cut_err(), (inner, rx, epoch, guard, false, true))),
                        Some(item) => {
                            let item = item?;
                            let end = item.is_err();
                            Some((item, (inner, rx, epoch, guard, false, end)))
                        }
                    }
                },
            );
            Ok(stream.boxed())
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        self.inner.create(kind, namespace, object, opts)
    }

    fn update<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        self.inner
            .update(kind, namespace, name, subresource, object, opts)
    }

    fn patch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        patch: Patch,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        self.inner
            .patch(kind, namespace, name, subresource, patch, opts)
    }

    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        self.inner.delete(kind, namespace, name, opts)
    }

    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value>> {
        self.inner.get_scale(kind, namespace, name)
    }

    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.bind(namespace, pod, node)
    }

    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, Result<Value>> {
        self.inner.create_token(namespace, service_account, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeClient;
    use std::time::Duration;

    #[tokio::test]
    async fn cuts_open_watches_and_fails_the_next_ones() {
        let fake = Arc::new(FakeClient::new());
        let c = Interruptible::new(fake.clone());
        let pods = crate::kind("", "v1", "pods");
        let opts = WatchOptions::default();
        let mut w = c.watch(pods, None, &opts).await.unwrap();
        assert_eq!(c.open_watches(), 1);
        c.cut_watches();
        let got = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap();
        assert!(matches!(got, Some(Err(ClientError::Transport(_)))));
        assert!(w.next().await.is_none());
        drop(w);
        assert_eq!(c.open_watches(), 0);
        c.fail_next_watch(ClientError::Transport("refused (test)".into()));
        assert!(c.watch(pods, None, &opts).await.is_err());
        assert!(c.watch(pods, None, &opts).await.is_ok());
        assert_eq!(c.watch_requests(), 3);
    }
}
