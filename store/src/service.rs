//! The store's QUIC service and client: Raft RPCs between members, and the store operations
//! (transactions, reads, watches, backup, status) for other members and admin clients.
//!
//! Authorization is by the caller's certificate: Raft RPCs and read-index requests only from
//! members (O=`navarch:members`); store operations from members and admins
//! (O=`system:masters`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use navarch_net::{codec, CallContext, PeerClient, RpcError, Service};
use rocksdb::DB;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::member::{Member, StoreStatus};
use crate::network::{METHOD_APPEND, METHOD_SNAPSHOT, METHOD_VOTE};
use crate::rocks::{cf, CF_OBJECTS};
use crate::types::{
    Event, EventBatch, KeyRange, ListResult, Object, ObjectKey, ReadConsistency, Revision,
    StoredRecord, Txn, TxnOutcome,
};
use crate::StoreError;

/// The certificate organization of store members.
pub const ORG_MEMBERS: &str = "navarch:members";
/// The certificate organization of cluster administrators.
pub const ORG_ADMINS: &str = "system:masters";

/// Method names on the wire.
pub mod methods {
    pub const TXN: &str = "store.txn";
    pub const GET: &str = "store.get";
    pub const LIST: &str = "store.list";
    pub const WATCH: &str = "store.watch";
    pub const BACKUP: &str = "store.backup";
    pub const STATUS: &str = "store.status";
    pub const READ_INDEX: &str = "store.read_index";
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

pub(crate) fn read_object(db: &DB, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
    let raw = db
        .get_cf(cf(db, CF_OBJECTS), key.encode())
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    raw.map(|raw| {
        let rec: StoredRecord =
            codec::decode(&raw).map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(Object {
            key: key.clone(),
            value: rec.value,
            create_revision: rec.create_revision,
            mod_revision: rec.mod_revision,
        })
    })
    .transpose()
}

/// Lists `range` from one point-in-time view, with the revision of that view.
pub(crate) fn read_range(db: &DB, range: &KeyRange) -> Result<ListResult, StoreError> {
    let snap = db.snapshot();
    let err = |e: rocksdb::Error| StoreError::Storage(e.to_string());
    let revision = snap
        .get_cf(cf(db, crate::rocks::CF_SM), b"revision")
        .map_err(err)?
        .map(|r| codec::decode::<u64>(&r))
        .transpose()
        .map_err(|e| StoreError::Storage(e.to_string()))?
        .unwrap_or(0);
    let prefix = range.prefix();
    let mut it = snap.raw_iterator_cf(cf(db, CF_OBJECTS));
    it.seek(&prefix);
    let mut objects = Vec::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !k.starts_with(&prefix) {
            break;
        }
        let key =
            ObjectKey::decode(k).ok_or_else(|| StoreError::Storage("undecodable key".into()))?;
        let rec: StoredRecord = codec::decode(v).map_err(|e| StoreError::Storage(e.to_string()))?;
        objects.push(Object {
            key,
            value: rec.value,
            create_revision: rec.create_revision,
            mod_revision: rec.mod_revision,
        });
        it.next();
    }
    it.status().map_err(err)?;
    Ok(ListResult {
        objects,
        revision: Revision(revision),
    })
}

/// Serves the member's QUIC methods. Bound before the member exists, so it holds a slot.
pub(crate) struct StoreService {
    member: Arc<OnceLock<Arc<Member>>>,
}

impl StoreService {
    pub(crate) fn new(member: Arc<OnceLock<Arc<Member>>>) -> Self {
        Self { member }
    }
}

fn has_org(ctx: &CallContext, org: &str) -> bool {
    ctx.peer
        .as_ref()
        .is_some_and(|p| p.organizations.iter().any(|o| o == org))
}

fn authorize(ctx: &CallContext, method: &str) -> Result<(), RpcError> {
    let member = has_org(ctx, ORG_MEMBERS);
    let allowed = match method {
        METHOD_APPEND | METHOD_VOTE | METHOD_SNAPSHOT | methods::READ_INDEX => member,
        _ => member || has_org(ctx, ORG_ADMINS),
    };
    if allowed {
        Ok(())
    } else {
        let who = ctx
            .peer
            .as_ref()
            .map(|p| p.common_name.clone())
            .unwrap_or_else(|| "anonymous".into());
        warn!(caller = %who, remote = %ctx.remote, method, "store call refused");
        Err(RpcError::Refused(format!("{who} may not call {method}")))
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    codec::decode(body).map_err(|e| RpcError::Decode(e.to_string()))
}

fn encode<T: Serialize>(v: &T) -> Result<Bytes, RpcError> {
    codec::encode(v)
        .map(Bytes::from)
        .map_err(|e| RpcError::Remote(e.to_string()))
}

impl Service for StoreService {
    fn call(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let member = self.member.get().cloned();
        Box::pin(async move {
            authorize(&ctx, &method)?;
            let m = member.ok_or(RpcError::Unreachable("store member is starting".into()))?;
            match method.as_str() {
                METHOD_APPEND => encode(&m.raft.append_entries(decode(&body)?).await),
                METHOD_VOTE => encode(&m.raft.vote(decode(&body)?).await),
                METHOD_SNAPSHOT => encode(&m.raft.install_snapshot(decode(&body)?).await),
                methods::READ_INDEX => encode(&m.read_index().await),
                methods::TXN => {
                    let txn: Txn = decode(&body)?;
                    encode(&m.write(txn).await)
                }
                methods::GET => {
                    let req: GetRequest = decode(&body)?;
                    encode(&m.get(&req.key, req.consistency).await)
                }
                methods::LIST => {
                    let req: ListRequest = decode(&body)?;
                    encode(&m.list(&req.range, req.consistency).await)
                }
                methods::BACKUP => encode(&m.backup().await),
                methods::STATUS => encode(&Ok::<_, StoreError>(m.status())),
                other => Err(RpcError::Unsupported(other.to_string())),
            }
        })
    }

    fn stream(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError>> {
        let member = self.member.get().cloned();
        Box::pin(async move {
            authorize(&ctx, &method)?;
            let m = member.ok_or(RpcError::Unreachable("store member is starting".into()))?;
            if method != methods::WATCH {
                return Err(RpcError::Unsupported(method));
            }
            let req: WatchRequest = decode(&body)?;
            let first: Option<Result<EventBatch, StoreError>>;
            let rx = match m.watch(req.range, req.after) {
                Ok(rx) => {
                    first = None;
                    Some(rx)
                }
                Err(e) => {
                    first = Some(Err(e));
                    None
                }
            };
            debug!(caller = ?ctx.peer.as_ref().map(|p| &p.common_name), "watch opened");
            let head = futures::stream::iter(first);
            let tail = futures::stream::unfold(rx, |rx| async move {
                let mut rx = rx?;
                let item = rx.recv().await?;
                Some((item, Some(rx)))
            });
            Ok(head.chain(tail).map(|item| encode(&item)).boxed())
        })
    }
}

/// A typed client of one member's store service.
#[derive(Clone)]
pub struct StoreClient {
    peer: PeerClient,
    timeout: Duration,
}

fn rpc_to_store(e: RpcError) -> StoreError {
    match e {
        RpcError::Unreachable(m) => StoreError::Unavailable(m),
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

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, StoreError> {
        let reply: Result<Resp, StoreError> = self
            .peer
            .call_with_timeout(method, req, self.timeout)
            .await
            .map_err(rpc_to_store)?;
        reply
    }

    pub async fn txn(&self, txn: &Txn) -> Result<TxnOutcome, StoreError> {
        self.call(methods::TXN, txn).await
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
