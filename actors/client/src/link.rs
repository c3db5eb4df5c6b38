//! [`LinkClient`]: the [`Client`] over the node link, the QUIC connection a node agent keeps
//! to a master (mutual TLS with its node certificate). Every call is one `node.call`
//! request ([`wire`]), every watch one `node.watch` server stream of watch events; the
//! master runs each through the API pipeline as the node's certificate identity, so the
//! node sees exactly what an HTTPS client with that certificate would.
//!
//! The client knows several masters and talks to one at a time ([`failover`]): while the
//! current master answers, every call goes to it over one connection; a transport failure
//! moves the link to the next master (the old connection is closed). A read that failed in
//! transport, or any call that was never sent, is tried on the next master at once; a
//! write that may have arrived is not repeated: it fails with
//! [`ClientError::Transport`] (outcome unknown), and the next call goes to the next master.
//!
//! A watch ends with `Err(ClientError::Transport)` when its stream breaks (the master died,
//! the link was cut); the watch caches resume from the last revision they saw, on whichever
//! master is current then.

pub mod failover;
pub mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
use navarch_net::{Endpoint, ExpectedPeer, PeerClient, RpcError};
use serde_json::{json, Value};

use crate::{Client, ClientError, ObjectList, Result, Subresource, WatchStream, Written};
use failover::{after_failure, is_transport, After, Failover};
use wire::{
    frame_event, status_error, KindRef, LinkBody, LinkReply, LinkRequest, Verb, WatchFrame,
    CALL_METHOD, WATCH_METHOD,
};

/// How long a master may take to accept or refuse a watch once its stream is open.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a [`LinkClient`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("no master address given")]
    NoMaster,
}

struct Inner {
    masters: Vec<PeerClient>,
    failover: Mutex<Failover>,
    user_agent: String,
}

impl Inner {
    fn choice(&self) -> std::sync::MutexGuard<'_, Failover> {
        self.failover.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call to master `idx` failed in transport: move on, closing the connection to it.
    async fn failed(&self, idx: usize, e: &RpcError) {
        let moved = self.choice().failed(idx);
        if moved {
            let (from, to) = (&self.masters[idx], &self.masters[self.choice().current()]);
            tracing::info!(from = %from.addr(), to = %to.addr(), error = %e, "node link moves to another master");
            from.disconnect().await;
        }
    }

    /// Master `idx` answered: it is the current master; the connection to the one it
    /// replaces is closed.
    async fn answered(&self, idx: usize) {
        let replaced = self.choice().answered(idx);
        if let Some(old) = replaced {
            tracing::info!(from = %self.masters[old].addr(), to = %self.masters[idx].addr(), "node link moved to another master");
            self.masters[old].disconnect().await;
        }
    }

    /// Runs `f` on the current master, then, while the failure allows it, on the others.
    async fn attempt<T, F, Fut>(&self, read: bool, f: F) -> Result<(usize, T)>
    where
        F: Fn(PeerClient) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RpcError>>,
    {
        let order = self.choice().order();
        let mut last: Option<(SocketAddr, RpcError)> = None;
        for idx in order {
            let peer = self.masters[idx].clone();
            // Connected first, a failure after is one of a request that may have left.
            if let Err(e) = peer.connect().await {
                self.failed(idx, &e).await;
                last = Some((peer.addr(), e));
                continue;
            }
            match f(peer.clone()).await {
                Ok(v) => {
                    self.answered(idx).await;
                    return Ok((idx, v));
                }
                Err(e) => {
                    if is_transport(&e) {
                        self.failed(idx, &e).await;
                    }
                    let stop = after_failure(&e, true, read) == After::Stop;
                    last = Some((peer.addr(), e));
                    if stop {
                        break;
                    }
                }
            }
        }
        Err(match last {
            Some((_, RpcError::Decode(m))) => ClientError::Decode(m),
            Some((addr, e)) => ClientError::Transport(format!("node link to {addr}: {e}")),
            None => ClientError::Transport("no master to call".into()),
        })
    }
}

/// The API over the node link. Cheap to clone; clones share the connection and the choice
/// of master.
#[derive(Clone)]
pub struct LinkClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LinkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkClient")
            .field("masters", &self.masters())
            .field("current", &self.current_master())
            .finish()
    }
}

fn sub_str(s: Option<Subresource>) -> Option<String> {
    s.map(|s| s.as_str().to_string())
}

impl LinkClient {
    /// A client calling `masters` (QUIC addresses, tried in this order) from `endpoint`,
    /// whose identity is the one the masters authenticate, sending `user_agent` (recorded
    /// in the masters' audit logs). Nothing is dialed until the first call.
    pub fn new(
        endpoint: &Endpoint,
        masters: &[SocketAddr],
        user_agent: impl Into<String>,
    ) -> Result<LinkClient, LinkError> {
        if masters.is_empty() {
            return Err(LinkError::NoMaster);
        }
        let peers = masters
            .iter()
            .map(|a| endpoint.peer(&format!("master@{a}"), *a, ExpectedPeer::Master))
            .collect();
        Ok(LinkClient {
            inner: Arc::new(Inner {
                masters: peers,
                failover: Mutex::new(Failover::new(masters.len())),
                user_agent: user_agent.into(),
            }),
        })
    }

    /// The masters, in the order given.
    pub fn masters(&self) -> Vec<SocketAddr> {
        self.inner.masters.iter().map(PeerClient::addr).collect()
    }

    /// The master calls go to now.
    pub fn current_master(&self) -> SocketAddr {
        self.inner.masters[self.inner.choice().current()].addr()
    }

    /// Closes the connection to the current master (calls in flight on it fail).
    pub async fn disconnect(&self) {
        let idx = self.inner.choice().current();
        self.inner.masters[idx].disconnect().await;
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        verb: Verb,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<String>,
        query: Vec<(String, String)>,
        body: Option<LinkBody>,
    ) -> LinkRequest {
        LinkRequest {
            verb,
            kind: KindRef::of(kind),
            namespace: namespace.filter(|_| kind.namespaced).map(str::to_string),
            name: name.map(str::to_string),
            subresource,
            query,
            body,
            user_agent: self.inner.user_agent.clone(),
        }
    }

    async fn call(&self, req: LinkRequest) -> Result<LinkReply> {
        let req = &req;
        let (_, reply) = self
            .inner
            .attempt(req.verb.is_read(), |peer| async move {
                peer.call::<LinkRequest, LinkReply>(CALL_METHOD, req).await
            })
            .await?;
        Ok(reply)
    }

    async fn watch_stream(&self, req: LinkRequest) -> Result<WatchStream> {
        let req = &req;
        let (idx, opened) = self
            .inner
            .attempt(true, |peer| async move {
                let mut frames = peer
                    .stream::<LinkRequest, WatchFrame>(WATCH_METHOD, req)
                    .await?;
                match tokio::time::timeout(ACCEPT_TIMEOUT, frames.next()).await {
                    Err(_) => Err(RpcError::Timeout),
                    Ok(None) => Err(RpcError::Closed),
                    Ok(Some(Err(e))) => Err(e),
                    Ok(Some(Ok(WatchFrame::Accepted))) => Ok(Ok(frames)),
                    Ok(Some(Ok(WatchFrame::Refused { status }))) => Ok(Err(status)),
                    Ok(Some(Ok(WatchFrame::Event { .. }))) => Err(RpcError::Decode(
                        "a watch event before the watch was accepted".into(),
                    )),
                }
            })
            .await?;
        let frames = opened.map_err(|status| status_error(&status))?;
        let inner = self.inner.clone();
        let addr = inner.masters[idx].addr();
        // Events until the server ends the stream; a broken stream is one transport error,
        // after which the link moves on and the stream ends.
        let events = futures::stream::unfold(
            (frames, inner, false),
            move |(mut frames, inner, done)| async move {
                if done {
                    return None;
                }
                match frames.next().await? {
                    Ok(frame) => {
                        let item = frame_event(frame);
                        let done = item.is_err();
                        Some((item, (frames, inner, done)))
                    }
                    Err(e) => {
                        if is_transport(&e) {
                            inner.failed(idx, &e).await;
                        }
                        let err =
                            ClientError::Transport(format!("the watch from {addr} broke: {e}"));
                        Some((Err(err), (frames, inner, true)))
                    }
                }
            },
        );
        Ok(events.boxed())
    }
}

impl Client for LinkClient {
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a GetOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let req = self.request(
                Verb::Get,
                kind,
                namespace,
                Some(name),
                None,
                opts.to_query(),
                None,
            );
            Ok(self.call(req).await?.into_written()?.object)
        }
        .boxed()
    }

    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        async move {
            let req = self.request(
                Verb::List,
                kind,
                namespace,
                None,
                None,
                opts.to_query(),
                None,
            );
            self.call(req).await?.into_list()
        }
        .boxed()
    }

    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        async move {
            let mut query = opts.to_query();
            query.retain(|(k, _)| k != "watch");
            let req = self.request(Verb::Watch, kind, namespace, None, None, query, None);
            self.watch_stream(req).await
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
        async move {
            let ns = namespace
                .map(str::to_string)
                .or_else(|| object["metadata"]["namespace"].as_str().map(str::to_string));
            let req = self.request(
                Verb::Create,
                kind,
                ns.as_deref(),
                None,
                None,
                opts.to_query(),
                Some(LinkBody::json(&object)),
            );
            self.call(req).await?.into_written()
        }
        .boxed()
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
        async move {
            let req = self.request(
                Verb::Update,
                kind,
                namespace,
                Some(name),
                sub_str(subresource),
                opts.to_query(),
                Some(LinkBody::json(&object)),
            );
            self.call(req).await?.into_written()
        }
        .boxed()
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
        async move {
            let body = LinkBody {
                content_type: patch.ty.content_type().to_string(),
                data: patch.body.to_string(),
            };
            let req = self.request(
                Verb::Patch,
                kind,
                namespace,
                Some(name),
                sub_str(subresource),
                opts.to_query(),
                Some(body),
            );
            self.call(req).await?.into_written()
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let req = self.request(
                Verb::Delete,
                kind,
                namespace,
                Some(name),
                None,
                Vec::new(),
                Some(LinkBody::json(&opts.to_json())),
            );
            Ok(self.call(req).await?.into_written()?.object)
        }
        .boxed()
    }

    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let req = self.request(
                Verb::Get,
                kind,
                Some(namespace),
                Some(name),
                Some("scale".into()),
                Vec::new(),
                None,
            );
            Ok(self.call(req).await?.into_written()?.object)
        }
        .boxed()
    }

    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let pods = crate::kind("", "v1", "pods");
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let req = self.request(
                Verb::Create,
                pods,
                Some(namespace),
                Some(pod),
                Some("binding".into()),
                Vec::new(),
                Some(LinkBody::json(&binding)),
            );
            self.call(req).await?.into_written().map(|_| ())
        }
        .boxed()
    }

    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, Result<Value>> {
        async move {
            let req = self.request(
                Verb::Create,
                crate::kind("", "v1", "serviceaccounts"),
                Some(namespace),
                Some(service_account),
                Some("token".into()),
                Vec::new(),
                Some(LinkBody::json(&request)),
            );
            Ok(self.call(req).await?.into_written()?.object)
        }
        .boxed()
    }
}
