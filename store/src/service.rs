//! The store's QUIC service: the `store.*` methods (transactions, reads, watches, backup,
//! status for members and admins; the read index for members only), built from a started
//! [`Member`] and mounted on the endpoint's router with [`mount`], next to the Raft RPCs
//! (`raft.*`, [`crate::network::RaftService`]).
//!
//! Authorization is by the caller's certificate: the read index only for members
//! (O=`navarch:members`); store operations for members (forwarded writes and reads) and admins
//! (O=`system:masters`). Membership: `store.member_join` only for members (a master that
//! joined with the server token asks for itself); the other `store.member_*` methods for
//! admins and members. A member may name only itself, unless it is in the membership (a
//! master forwarding to the leader).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use navarch_net::{codec, CallContext, MountError, Router, RpcError, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, warn};

use crate::client::{methods, GetRequest, ListRequest, WatchRequest};
use crate::member::Member;
use crate::membership::MemberRequest;
use crate::network::RaftService;
use crate::types::{EventBatch, Txn};
use crate::StoreError;

pub use navarch_net::pki::{ORG_ADMINS, ORG_MEMBERS};

/// The method prefix of the store operations.
pub const STORE_PREFIX: &str = "store";
/// The method prefix of the Raft RPCs.
pub const RAFT_PREFIX: &str = "raft";

/// Mounts `member`'s services on `router`: `store.*` and `raft.*`. Until this is done the
/// member's peers get a retryable `Unavailable` for their Raft RPCs.
pub fn mount(router: &Router, member: &Arc<Member>) -> Result<(), MountError> {
    router.mount(
        RAFT_PREFIX,
        Arc::new(RaftService::new(member.elections.clone())),
    )?;
    if let Err(e) = router.mount(STORE_PREFIX, Arc::new(StoreService::new(member.clone()))) {
        router.unmount(RAFT_PREFIX);
        return Err(e);
    }
    Ok(())
}

/// Serves `store.*` from one started member.
pub struct StoreService {
    member: Arc<Member>,
}

impl StoreService {
    pub fn new(member: Arc<Member>) -> Self {
        Self { member }
    }
}

pub(crate) fn has_org(ctx: &CallContext, org: &str) -> bool {
    ctx.peer
        .as_ref()
        .is_some_and(|p| p.organizations.iter().any(|o| o == org))
}

/// The refusal of `method` to the caller of `ctx`, logged.
pub(crate) fn refuse(ctx: &CallContext, method: &str) -> RpcError {
    let who = ctx
        .peer
        .as_ref()
        .map(|p| p.common_name.clone())
        .unwrap_or_else(|| "anonymous".into());
    warn!(caller = %who, remote = %ctx.remote, method, "store call refused");
    RpcError::Refused(format!("{who} may not call {method}"))
}

fn authorize(ctx: &CallContext, method: &str) -> Result<(), RpcError> {
    let member = has_org(ctx, ORG_MEMBERS);
    let allowed = match method {
        methods::READ_INDEX | methods::MEMBER_JOIN | methods::MEMBER_REMOVED => member,
        _ => member || has_org(ctx, ORG_ADMINS),
    };
    if allowed {
        Ok(())
    } else {
        Err(refuse(ctx, method))
    }
}

/// A membership change named `name`: an admin may name anyone; a member only itself, unless
/// it is in the cluster's membership (forwarding for another master).
fn authorize_member_change(
    ctx: &CallContext,
    method: &str,
    m: &Member,
    name: &str,
) -> Result<(), RpcError> {
    if has_org(ctx, ORG_ADMINS) && method != methods::MEMBER_JOIN {
        return Ok(());
    }
    let caller = ctx.peer.as_ref().map(|p| p.common_name.as_str());
    if caller == Some(name) || caller.is_some_and(|c| m.has_member_named(c)) {
        Ok(())
    } else {
        Err(refuse(ctx, method))
    }
}

pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    codec::decode(body).map_err(|e| RpcError::Decode(e.to_string()))
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Bytes, RpcError> {
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
        let m = self.member.clone();
        Box::pin(async move {
            authorize(&ctx, &method)?;
            let _serving = m.serving();
            match method.as_str() {
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
                methods::MEMBER_LIST => encode(&m.member_list().await),
                methods::MEMBER_REMOVED => {
                    m.recheck_membership();
                    encode(&Ok::<_, StoreError>(()))
                }
                methods::MEMBER_ADD
                | methods::MEMBER_JOIN
                | methods::MEMBER_PROMOTE
                | methods::MEMBER_REMOVE => {
                    let req: MemberRequest = decode(&body)?;
                    authorize_member_change(&ctx, &method, &m, &req.name)?;
                    let addr = req.peer_addr.as_deref().unwrap_or_default();
                    match method.as_str() {
                        methods::MEMBER_ADD => encode(&m.member_add(&req.name, addr).await),
                        methods::MEMBER_JOIN => encode(&m.member_join(&req.name, addr).await),
                        methods::MEMBER_PROMOTE => encode(&m.member_promote(&req.name).await),
                        _ => encode(&m.member_remove(&req.name).await),
                    }
                }
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
        let m = self.member.clone();
        Box::pin(async move {
            authorize(&ctx, &method)?;
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
