//! A node's credentials: the certificate it joined with, kept in its data dir (`node.crt`,
//! `node.key` 0600, `ca.crt`) so that a restart reuses it instead of joining again, and the
//! join itself, polite to the masters' rate limits.
//!
//! Joins of many nodes in one process go through one [`JoinGate`]: at most a few at once,
//! and after a master refuses one for its rate limit (it says how long to wait), none of
//! them tries again before that delay has passed. A refused token or a CA other than the
//! pinned one is final.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use navarch_net::pki::{spki_sha256_of_pem, NODE_CN_PREFIX};
use navarch_net::{Identity, JoinError, RpcError};
use rand::Rng;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::AgentError;

/// The file stem of a node's certificate and key in its data dir.
pub const CREDENTIALS_NAME: &str = "node";
/// How long a node certificate is asked for (the master caps it).
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// How to join: the masters to try, the bootstrap token and the CA pin.
#[derive(Clone)]
pub struct JoinParams {
    pub masters: Vec<SocketAddr>,
    pub token: String,
    pub ca_hash: String,
}

impl std::fmt::Debug for JoinParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinParams")
            .field("masters", &self.masters)
            .field("token", &"<redacted>")
            .field("ca_hash", &self.ca_hash)
            .finish()
    }
}

/// Joins in flight in one process, and the earliest time the next may start.
#[derive(Debug)]
pub struct JoinGate {
    permits: Semaphore,
    not_before: Mutex<Instant>,
}

impl JoinGate {
    /// At most `parallel` joins at once.
    pub fn new(parallel: usize) -> JoinGate {
        JoinGate {
            permits: Semaphore::new(parallel.max(1)),
            not_before: Mutex::new(Instant::now()),
        }
    }

    async fn wait_turn(&self) {
        let at = *self.not_before.lock().await;
        tokio::time::sleep_until(at).await;
    }

    /// A master asked to wait `delay`: nobody here tries before then (with some jitter, so
    /// waiting joiners do not all come back at the same instant).
    async fn hold_off(&self, delay: Duration) {
        let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..250));
        let at = Instant::now() + delay + jitter;
        let mut nb = self.not_before.lock().await;
        if *nb < at {
            *nb = at;
        }
    }
}

fn normalized(hash: &str) -> String {
    hash.trim().to_ascii_lowercase()
}

/// The credentials stored in `dir` for `node`, if they are its (CN `system:node:<node>`)
/// and from the CA `ca_hash` pins; `None` if there are none or they are another's.
pub fn stored(dir: &Path, node: &str, ca_hash: &str) -> Option<Identity> {
    let id = Identity::load(dir, CREDENTIALS_NAME).ok()?;
    let who = id.peer_identity().ok()?;
    if who.common_name != format!("{NODE_CN_PREFIX}{node}") {
        tracing::warn!(node, dir = %dir.display(), cn = %who.common_name, "stored credentials are another node's; joining again");
        return None;
    }
    match spki_sha256_of_pem(&id.ca_pem) {
        Ok(h) if normalized(&h) == normalized(ca_hash) => Some(id),
        _ => {
            tracing::warn!(node, dir = %dir.display(), "stored credentials are from another CA than --ca-hash pins; joining again");
            None
        }
    }
}

/// Makes `dir` (and its parents) with mode 0700.
fn private_dir(dir: &Path) -> Result<(), AgentError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |e: std::io::Error| AgentError::Credentials {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

/// Whether a failed join may succeed through another master (or the same one later): it
/// could not reach one, not whether the token or the pin is wrong.
fn worth_another_master(e: &JoinError) -> bool {
    match e {
        JoinError::Connect { .. } | JoinError::Net(_) => true,
        JoinError::Rpc(r) => r.is_retryable() || *r == RpcError::Timeout,
        _ => false,
    }
}

/// The file stem of the node's kubelet serving certificate (same key as its client one).
pub const SERVING_NAME: &str = "node-serving";

/// The node's stored kubelet serving certificate, if it has one (nodes that joined before
/// serving certificates were handed out have none: they serve no logs nor exec).
pub fn stored_serving(dir: &Path, node: &str) -> Option<Identity> {
    let id = Identity::load(dir, SERVING_NAME).ok()?;
    let who = id.peer_identity().ok()?;
    (who.common_name == format!("{NODE_CN_PREFIX}{node}")).then_some(id)
}

/// Joins as `node` through the first master that answers, waiting out rate limits.
async fn join(
    node: &str,
    params: &JoinParams,
    gate: &JoinGate,
) -> Result<navarch_net::NodeCredentials, AgentError> {
    let _permit = gate
        .permits
        .acquire()
        .await
        .map_err(|_| AgentError::Stopped)?;
    let mut turn = 0usize;
    loop {
        gate.wait_turn().await;
        let master = params.masters[turn % params.masters.len()];
        match navarch_net::join_node(master, &params.token, &params.ca_hash, node, CERT_VALIDITY)
            .await
        {
            Ok(id) => return Ok(id),
            Err(JoinError::Rpc(RpcError::RateLimited { retry_after_ms })) => {
                tracing::debug!(node, %master, retry_after_ms, "join rate limited; waiting");
                gate.hold_off(Duration::from_millis(retry_after_ms.max(50)))
                    .await;
            }
            Err(e) if worth_another_master(&e) => {
                // That master is not reachable (or not serving yet): try the next one.
                tracing::warn!(node, %master, error = %e, "join failed; trying the next master");
                turn += 1;
                if turn.is_multiple_of(params.masters.len()) {
                    // Every master failed this round: wait longer each round, up to 30 s.
                    let rounds = turn / params.masters.len();
                    let pause =
                        Duration::from_secs(1 << rounds.min(5)).min(Duration::from_secs(30));
                    tokio::time::sleep(pause).await;
                }
            }
            Err(e) => {
                return Err(AgentError::Join {
                    node: node.to_string(),
                    source: e,
                })
            }
        }
    }
}

/// The node's stored credentials, or new ones from a join (then stored in `dir`). Says
/// whether it joined.
///
/// # Cancel safety
/// Dropping the future during a join loses that join only; nothing is stored half.
pub async fn load_or_join(
    dir: &Path,
    node: &str,
    params: &JoinParams,
    gate: &JoinGate,
) -> Result<(Identity, bool), AgentError> {
    if let Some(id) = stored(dir, node, &params.ca_hash) {
        return Ok((id, false));
    }
    if params.masters.is_empty() {
        return Err(AgentError::Config {
            what: "--master".into(),
            reason: "no master to join through".into(),
        });
    }
    let creds = join(node, params, gate).await?;
    private_dir(dir)?;
    let save_err = |e: navarch_net::PkiError| AgentError::Credentials {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    // The serving certificate first: stored client credentials mean a finished join.
    creds.serving.save(dir, SERVING_NAME).map_err(save_err)?;
    creds.client.save(dir, CREDENTIALS_NAME).map_err(save_err)?;
    let id = creds.client;
    tracing::info!(node, dir = %dir.display(), "joined: node certificate stored");
    Ok((id, true))
}

/// Where node `name` of a process keeps its credentials: the data dir itself for a single
/// node, a directory per node for several.
pub fn node_dir(data_dir: &Path, name: &str, several: bool) -> PathBuf {
    if several {
        data_dir.join(name)
    } else {
        data_dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_net::pki::{ClusterCa, ORG_NODES};

    #[test]
    fn stored_credentials_count_only_for_their_node_and_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ClusterCa::load_or_create(&dir.path().join("ca")).unwrap();
        let (other, _) = ClusterCa::load_or_create(&dir.path().join("other")).unwrap();
        let id = ca
            .issue_client("system:node:n1", &[ORG_NODES], Duration::from_secs(60))
            .unwrap();
        let home = dir.path().join("n1");
        private_dir(&home).unwrap();
        assert!(
            stored(&home, "n1", &ca.spki_sha256()).is_none(),
            "nothing yet"
        );
        id.save(&home, CREDENTIALS_NAME).unwrap();
        assert!(stored(&home, "n1", &ca.spki_sha256()).is_some());
        assert!(stored(&home, "n1", &ca.spki_sha256().to_uppercase()).is_some());
        assert!(
            stored(&home, "n2", &ca.spki_sha256()).is_none(),
            "another node's"
        );
        assert!(
            stored(&home, "n1", &other.spki_sha256()).is_none(),
            "another CA's"
        );
        assert_eq!(node_dir(dir.path(), "n1", true), home);
        assert_eq!(node_dir(dir.path(), "n1", false), dir.path());
    }
}
