//! A master joining a running cluster (`navarch-master --join ADDR --token TOKEN`): fetch the
//! cluster CA and a member certificate with the server token (`net.join_master`), then, once
//! this master's endpoint is bound, ask to be added as a learner (`store.member_join`) and keep
//! the id the leader assigned in `member.json`, so a restart needs no `--join`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_net::{Endpoint, ExpectedPeer, JoinError, RpcError};
use navarch_store::raft_types::MemberId;
use navarch_store::{StoreClient, StoreError};
use serde::{Deserialize, Serialize};

use crate::credentials;
use crate::private::write_private;

/// The file of a master that joined: who it is in the cluster.
pub const MEMBER_FILE: &str = "member.json";

/// What `member.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedMember {
    /// The Raft id the leader assigned.
    pub id: MemberId,
    /// The member name (its certificate's CN).
    pub name: String,
    /// The QUIC address the other masters reach it at.
    pub peer_addr: SocketAddr,
}

impl JoinedMember {
    /// The record in `data_dir`, if this master joined a cluster.
    pub fn load(data_dir: &Path) -> Result<Option<JoinedMember>> {
        let path = data_dir.join(MEMBER_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .with_context(|| format!("{} is corrupt", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    fn save(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join(MEMBER_FILE);
        let tmp = data_dir.join(format!("{MEMBER_FILE}.partial"));
        write_private(&tmp, &serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))
    }
}

/// Fetches the CA and a member certificate from `via` with the server `token` into
/// `data_dir`, unless an earlier attempt already did. Refuses a data dir that holds a store.
/// Retries for a minute while `via` cannot be reached or rate-limits us (masters started
/// together); a refusal (a wrong token) ends it at once.
pub async fn fetch_credentials(
    data_dir: &Path,
    via: SocketAddr,
    token: &str,
    name: &str,
) -> Result<()> {
    if data_dir.join("db").exists() {
        bail!(
            "{} already holds a store: --join needs an empty data dir (a master that joined \
             restarts without --join)",
            data_dir.display()
        );
    }
    if data_dir.join("pki/ca.key").exists() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let joined = loop {
        let wait = match navarch_net::join_master(via, token, name).await {
            Ok(j) => break j,
            Err(JoinError::Rpc(RpcError::RateLimited { retry_after_ms })) => {
                Duration::from_millis(retry_after_ms)
            }
            Err(JoinError::Connect { .. } | JoinError::Rpc(RpcError::Timeout)) => {
                Duration::from_millis(500)
            }
            Err(e) => return Err(e).with_context(|| format!("join the cluster through {via}")),
        };
        if tokio::time::Instant::now() + wait > deadline {
            bail!("join the cluster through {via}: no answer within a minute");
        }
        tracing::info!(%via, wait_ms = wait.as_millis() as u64, "the master cannot take the join yet; retrying");
        tokio::time::sleep(wait).await;
    };
    credentials::install_joined(data_dir, &joined, token)?;
    tracing::info!(%via, name, "received the cluster ca and this master's certificate");
    Ok(())
}

/// Asks the cluster, through `via`, to add this master (`name` at `peer_addr`) as a learner,
/// retrying while no leader answers; records the id it gets in `data_dir`.
pub async fn register(
    endpoint: &Endpoint,
    data_dir: &Path,
    via: SocketAddr,
    name: &str,
    peer_addr: SocketAddr,
) -> Result<JoinedMember> {
    let client = StoreClient::new(endpoint.peer("join", via, ExpectedPeer::Master));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let id = loop {
        match client.member_join(name, &peer_addr.to_string()).await {
            Ok(id) => break id,
            Err(e @ (StoreError::Unavailable(_) | StoreError::Timeout(_)))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(error = %e, "no leader to add this master yet");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e).context("add this master to the cluster"),
        }
    };
    let record = JoinedMember {
        id,
        name: name.to_string(),
        peer_addr,
    };
    record.save(data_dir)?;
    tracing::info!(id, name, %peer_addr, "added to the cluster as a learner");
    Ok(record)
}
