//! The store's client side: the wire method names and request types, [`StoreClient`] (typed
//! calls to one member, used by admins, benchmarks, tests and by followers forwarding to the
//! leader), and [`watch_resuming`], a watch that survives member failures.

use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use navarch_net::{PeerClient, RpcError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::debug;

use crate::member::StoreStatus;
use crate::membership::{MemberInfo, MemberList, MemberRequest};
use crate::raft_types::MemberId;
use crate::types::{
    Event, EventBatch, KeyRange, ListResult, Object, ObjectKey, ReadConsistency, Revision, Txn,
    TxnOutcome,
};
use crate::StoreError;

/// Method names on the wire, all under the `store.*` prefix.
pub mod methods {
    pub const TXN: &str = "store.txn";
    pub const GET: &str = "store.get";
    pub const LIST: &str = "store.list";
    pub const WATCH: &str = "store.watch";
    pub const BACKUP: &str = "store.backup";
    pub const STATUS: &str = "store.status";
    pub const READ_INDEX: &str = "store.read_index";
    pub const MEMBER_LIST: &str = "store.member_list";
    pub const MEMBER_ADD: &str = "store.member_add";
    pub const MEMBER_JOIN: &str = "store.member_join";
    pub const MEMBER_PROMOTE: &str = "store.member_promote";
    pub const MEMBER_REMOVE: &str = "store.member_remove";
    pub const MEMBER_REMOVED: &str = "store.member_removed";
}

#[derive(Serialize, Deserialize)]
pub struct GetRequest {
    pub key: ObjectKey,
    pub consistency: ReadConsistency,
}

#[derive(Serialize, Deserialize)]
pub struct ListRequest {
    pub range: KeyRange,
    pub consistency: ReadConsistency,
}

#[derive(Serialize, Deserialize)]
pub struct WatchRequest {
    pub range: KeyRange,
    pub after: Option<Revision>,
}

/// A typed client of one member's store service.
#[derive(Clone)]
pub struct StoreClient {
    peer: PeerClient,
    timeout: Duration,
}

fn rpc_to_store(e: RpcError) -> StoreError {
    match e {
        RpcError::Unreachable(m) | RpcError::Unavailable(m) => StoreError::Unavailable(m),
        RpcError::Timeout => StoreError::Timeout(Duration::ZERO),
        RpcError::Refused(m) => StoreError::Forbidden(m),
        other => StoreError::Network(other.to_string()),
    }
}

impl StoreClient {
    pub fn new(peer: PeerClient) -> Self {
        // Longer than a member's own request timeout, so a forwarded request's own error
        // comes back rather than a transport timeout.
        Self {
            peer,
            timeout: Duration::from_secs(8),
        }
    }

    /// The same client with another transport timeout per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, StoreError> {
        self.call_within(method, req, self.timeout).await
    }

    async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, StoreError> {
        let reply: Result<Resp, StoreError> = self
            .peer
            .call_with_timeout(method, req, timeout)
            .await
            .map_err(rpc_to_store)?;
        reply
    }

    /// Membership changes wait for joint consensus and a quorum probe: longer than the
    /// member's own deadline for them.
    async fn member_call<Resp: DeserializeOwned>(
        &self,
        method: &str,
        name: &str,
        peer_addr: Option<&str>,
    ) -> Result<Resp, StoreError> {
        let req = MemberRequest {
            name: name.to_string(),
            peer_addr: peer_addr.map(str::to_string),
        };
        self.call_within(method, &req, self.timeout.max(Duration::from_secs(15)))
            .await
    }

    /// Every member, its role and (from the leader) its progress.
    pub async fn member_list(&self) -> Result<MemberList, StoreError> {
        self.call(methods::MEMBER_LIST, &()).await
    }

    /// Pre-registers `name` at `peer_addr` as a learner.
    pub async fn member_add(&self, name: &str, peer_addr: &str) -> Result<MemberInfo, StoreError> {
        self.member_call(methods::MEMBER_ADD, name, Some(peer_addr))
            .await
    }

    /// A joining master (its member certificate's CN = `name`) asks to be added as a learner;
    /// answers its id.
    pub async fn member_join(&self, name: &str, peer_addr: &str) -> Result<MemberId, StoreError> {
        self.member_call(methods::MEMBER_JOIN, name, Some(peer_addr))
            .await
    }

    /// Makes the caught-up learner `name` a voter.
    pub async fn member_promote(&self, name: &str) -> Result<MemberList, StoreError> {
        self.member_call(methods::MEMBER_PROMOTE, name, None).await
    }

    /// The leader tells a member it has just removed it (the member then checks for itself).
    pub(crate) async fn member_removed(&self) -> Result<(), StoreError> {
        self.call(methods::MEMBER_REMOVED, &()).await
    }

    /// Removes `name` from the cluster, unless that would lose quorum.
    pub async fn member_remove(&self, name: &str) -> Result<MemberList, StoreError> {
        self.member_call(methods::MEMBER_REMOVE, name, None).await
    }

    pub async fn txn(&self, txn: &Txn) -> Result<TxnOutcome, StoreError> {
        self.call(methods::TXN, txn).await
    }

    /// Connects to the member (see `PeerClient::connect`): nothing is sent yet.
    pub(crate) async fn connect(&self) -> Result<(), RpcError> {
        self.peer.connect().await
    }

    /// [`StoreClient::txn`] keeping the transport's error apart from the member's answer, so
    /// a forwarding member can tell "not written" from "outcome unknown".
    pub(crate) async fn txn_forwarded(
        &self,
        txn: &Txn,
    ) -> Result<Result<TxnOutcome, StoreError>, RpcError> {
        self.peer
            .call_with_timeout(methods::TXN, txn, self.timeout)
            .await
    }

    pub(crate) async fn read_index(&self) -> Result<u64, StoreError> {
        self.call(methods::READ_INDEX, &()).await
    }

    pub async fn get(
        &self,
        key: &ObjectKey,
        consistency: ReadConsistency,
    ) -> Result<Option<Object>, StoreError> {
        self.call(
            methods::GET,
            &GetRequest {
                key: key.clone(),
                consistency,
            },
        )
        .await
    }

    pub async fn list(
        &self,
        range: &KeyRange,
        consistency: ReadConsistency,
    ) -> Result<ListResult, StoreError> {
        self.call(
            methods::LIST,
            &ListRequest {
                range: range.clone(),
                consistency,
            },
        )
        .await
    }

    pub async fn backup(&self) -> Result<Vec<u8>, StoreError> {
        self.call(methods::BACKUP, &()).await
    }

    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        self.call(methods::STATUS, &()).await
    }

    /// One watch on this member: the changes of each revision after `after`, ending with an
    /// error if the member or the link goes away.
    pub async fn watch(
        &self,
        range: &KeyRange,
        after: Option<Revision>,
    ) -> Result<BoxStream<'static, Result<EventBatch, StoreError>>, StoreError> {
        let req = WatchRequest {
            range: range.clone(),
            after,
        };
        let s = self
            .peer
            .stream::<_, Result<EventBatch, StoreError>>(methods::WATCH, &req)
            .await
            .map_err(rpc_to_store)?;
        Ok(s.map(|item| item.map_err(rpc_to_store).and_then(|r| r))
            .boxed())
    }
}

/// A watch that survives member and link failures: on an error it reconnects to the next
/// member and resumes after the last revision it delivered, so the receiver sees every change
/// exactly once and in order. Ends only with `Expired` (the history moved past it) or when
/// the receiver is dropped.
pub fn watch_resuming(
    members: Vec<StoreClient>,
    range: KeyRange,
    after: Revision,
) -> mpsc::Receiver<Result<Event, StoreError>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut last = after;
        let mut i = 0usize;
        let mut backoff = Duration::from_millis(50);
        loop {
            let client = &members[i % members.len()];
            i += 1;
            match client.watch(&range, Some(last)).await {
                Ok(mut s) => {
                    while let Some(item) = s.next().await {
                        match item {
                            Ok(batch) => {
                                for ev in batch.events {
                                    if tx.send(Ok(ev)).await.is_err() {
                                        return;
                                    }
                                }
                                // Batches are never split, so resuming after this revision
                                // neither repeats nor skips a change.
                                last = batch.revision;
                                backoff = Duration::from_millis(50);
                            }
                            Err(e @ StoreError::Expired { .. }) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                            Err(e) => {
                                debug!(error = %e, after = last.0, "watch interrupted, resuming");
                                break;
                            }
                        }
                    }
                }
                Err(e @ StoreError::Expired { .. }) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => debug!(error = %e, "watch connect failed"),
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    });
    rx
}
