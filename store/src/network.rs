//! Raft's network over QUIC, both sides: openraft's `RaftNetworkFactory` and `RaftNetwork` on
//! top of `navarch_net`'s mutual-TLS RPC (one QUIC stream per RPC), and [`RaftService`], which
//! serves `raft.*` to members only.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use navarch_net::{CallContext, Endpoint, ExpectedPeer, PeerClient, RpcError, Service};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::time::Instant;

use crate::election::{Elections, PreVoteRequest, METHOD_PREVOTE, METHOD_TIMEOUT_NOW};
use crate::raft_types::{Member, MemberId, Raft, TypeConfig};
use crate::service::{decode, encode, has_org, refuse, ORG_MEMBERS};

pub const METHOD_APPEND: &str = "raft.append";
pub const METHOD_VOTE: &str = "raft.vote";
pub const METHOD_SNAPSHOT: &str = "raft.snapshot";

pub struct RaftNet {
    pub endpoint: Endpoint,
}

impl RaftNetworkFactory<TypeConfig> for RaftNet {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> RaftPeer {
        let client = node.addr.parse::<SocketAddr>().map(|addr| {
            self.endpoint
                .peer(&node.name, addr, ExpectedPeer::member(&node.name))
        });
        RaftPeer {
            target,
            addr: node.addr.clone(),
            client,
        }
    }
}

pub struct RaftPeer {
    target: MemberId,
    addr: String,
    client: Result<PeerClient, std::net::AddrParseError>,
}

type RpcResult<T, E> = Result<T, RPCError<MemberId, Member, RaftError<MemberId, E>>>;

impl RaftPeer {
    async fn send<Req, Resp, E>(&self, method: &str, req: &Req, ttl: Duration) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let client = self
            .client
            .as_ref()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(e)))?;
        let reply: Result<Result<Resp, RaftError<MemberId, E>>, RpcError> =
            client.call_with_timeout(method, req, ttl).await;
        match reply {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(
                e @ (RpcError::Unreachable(_)
                | RpcError::Unavailable(_)
                | RpcError::WrongPeer(_)
                | RpcError::Refused(_)
                | RpcError::Closed),
            ) => {
                tracing::trace!(target_member = self.target, addr = %self.addr, error = %e, "raft peer unreachable");
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>, openraft::error::Infallible> {
        self.send(METHOD_APPEND, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<MemberId>, InstallSnapshotError> {
        self.send(METHOD_SNAPSHOT, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>, openraft::error::Infallible> {
        self.send(METHOD_VOTE, &rpc, option.hard_ttl()).await
    }
}

/// Serves `raft.*` (append, vote, snapshot, pre-vote, timeout-now) to other members; anyone
/// else is refused. A message from the current leader counts as contact for the election
/// timer.
pub struct RaftService {
    raft: Raft,
    elections: Elections,
}

impl RaftService {
    pub(crate) fn new(elections: Elections) -> Self {
        Self {
            raft: elections.raft.clone(),
            elections,
        }
    }
}

impl Service for RaftService {
    fn call(
        &self,
        ctx: CallContext,
        method: String,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let raft = self.raft.clone();
        let elections = self.elections.clone();
        Box::pin(async move {
            if !has_org(&ctx, ORG_MEMBERS) {
                return Err(refuse(&ctx, &method));
            }
            let arrived = Instant::now();
            match method.as_str() {
                METHOD_APPEND => {
                    let resp = raft.append_entries(decode(&body)?).await;
                    // From a leader this member accepts (a deposed one gets `HigherVote`).
                    if matches!(&resp, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_)))
                    {
                        elections.contact.touch_at(arrived);
                    }
                    encode(&resp)
                }
                METHOD_VOTE => encode(&raft.vote(decode(&body)?).await),
                METHOD_SNAPSHOT => {
                    let req: InstallSnapshotRequest<TypeConfig> = decode(&body)?;
                    let current = req.vote;
                    let resp = raft.install_snapshot(req).await;
                    if matches!(&resp, Ok(r) if r.vote == current) {
                        elections.contact.touch_at(arrived);
                    }
                    encode(&resp)
                }
                METHOD_PREVOTE => {
                    let req: PreVoteRequest = decode(&body)?;
                    encode(&elections.answer_prevote(&req).await)
                }
                METHOD_TIMEOUT_NOW => encode(&elections.timeout_now().await),
                other => Err(RpcError::Unsupported(other.to_string())),
            }
        })
    }
}
