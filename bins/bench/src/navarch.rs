//! The navarch side of the benchmark: three `navarch-master` processes on 127.0.0.1-3 sharing
//! one cluster CA, and admin store clients over QUIC with mutual TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_net::pki::{ClusterCa, Identity};
use navarch_net::{Endpoint, ExpectedPeer, NetConfig};
use navarch_store::{ObjectKey, Op, StoreClient, Txn, TxnOutcome, ORG_ADMINS};
use serde_json::Value;

use super::failover::Cluster;
use super::procs::{free_port, wait_for, Procs};

const CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

struct Master {
    name: String,
    peer: SocketAddr,
    api: SocketAddr,
}

/// A running 3-member navarch store cluster; dropping it kills the masters.
pub(crate) struct NavarchCluster {
    procs: Procs,
    members: Vec<Master>,
    ca_dir: PathBuf,
    http: reqwest::Client,
    admin: Identity,
}

impl NavarchCluster {
    /// Starts `bin` three times (m1..m3 on 127.0.0.1..3) with data dirs and a shared CA under
    /// `dir`. `log_filter` is the masters' `RUST_LOG`.
    pub(crate) fn start(bin: &Path, dir: &Path, log_filter: &str) -> Result<NavarchCluster> {
        Self::start_with(bin, dir, log_filter, &[])
    }

    /// Like [`start`](Self::start), with more flags for every master.
    pub(crate) fn start_with(
        bin: &Path,
        dir: &Path,
        log_filter: &str,
        extra: &[&str],
    ) -> Result<NavarchCluster> {
        let ca_dir = dir.join("ca");
        let (ca, _) = ClusterCa::load_or_create(&ca_dir)
            .with_context(|| format!("cluster CA in {}", ca_dir.display()))?;
        let admin = ca.issue_client("bench-admin", &[ORG_ADMINS], Duration::from_secs(3600))?;
        let mut members = Vec::new();
        for i in 0..3 {
            let ip = format!("127.0.0.{}", i + 1);
            members.push(Master {
                name: format!("m{}", i + 1),
                peer: format!("{ip}:{}", free_port(&ip)?).parse()?,
                api: format!("{ip}:{}", free_port(&ip)?).parse()?,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut procs = Procs::default();
        for m in &members {
            let mut cmd = Command::new(bin);
            cmd.arg("--name")
                .arg(&m.name)
                .arg("--data-dir")
                .arg(dir.join(&m.name))
                .arg("--initial-cluster")
                .arg(&initial_cluster)
                .arg("--listen-api")
                .arg(m.api.to_string())
                .arg("--ca-dir")
                .arg(&ca_dir)
                // Dedicated masters: the benchmarks bring their own (hollow) nodes.
                .arg("--no-node")
                .args(extra)
                .env("RUST_LOG", log_filter)
                .env_remove("NAVARCH_LOG_FORMAT");
            procs.spawn(&m.name, cmd, &dir.join(format!("{}.log", m.name)))?;
            tracing::info!(member = %m.name, peer = %m.peer, api = %m.api, "started navarch master");
        }
        let http = crate::https_client(&admin, Duration::from_secs(2))?;
        Ok(NavarchCluster {
            procs,
            members,
            ca_dir,
            http,
            admin,
        })
    }

    /// `/debug/store` of member `i`, if it answers.
    async fn status(http: &reqwest::Client, api: SocketAddr) -> Option<Value> {
        let resp = http
            .get(format!("https://{api}/debug/store"))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Waits until the three masters name the same leader, opens one admin client per member
    /// (one QUIC connection each, shared by the benchmark clients bound to it), and checks that
    /// a write through each member commits.
    pub(crate) async fn connect_ready(&mut self, timeout: Duration) -> Result<Vec<StoreClient>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let leader = {
            let procs = &mut self.procs;
            let http = &self.http;
            let members = &self.members;
            wait_for(timeout, "the navarch masters to agree on a leader", || {
                let r = procs.check_running();
                async move {
                    r?;
                    let mut leader: Option<String> = None;
                    for m in members {
                        let Some(s) = Self::status(http, m.api).await else {
                            return Ok(None);
                        };
                        let Some(l) = s["leader"].as_str() else {
                            return Ok(None);
                        };
                        if leader.as_ref().is_some_and(|x| x != l) {
                            return Ok(None);
                        }
                        leader = Some(l.to_string());
                    }
                    Ok(leader)
                }
            })
            .await
            .map_err(|e| self.with_logs(e))?
        };
        tracing::info!(%leader, "navarch cluster has a leader");
        let ca = ClusterCa::load(&self.ca_dir)?;
        let id = ca
            .issue_client("bench-admin", &[ORG_ADMINS], CERT_VALIDITY)
            .context("issue the bench admin certificate")?;
        let ep = Endpoint::client(NetConfig::new("bench", id)).context("QUIC client endpoint")?;
        let clients: Vec<StoreClient> = self
            .members
            .iter()
            .map(|m| StoreClient::new(ep.peer(&m.name, m.peer, ExpectedPeer::member(&m.name))))
            .collect();
        for (i, c) in clients.iter().enumerate() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let key = ObjectKey::new("BenchProbe", "", format!("probe-{i}"));
            wait_for(left, "a first write through each navarch master", || {
                let txn = Txn::new(vec![Op::Put {
                    key: key.clone(),
                    value: b"probe".to_vec(),
                }]);
                async move {
                    Ok(matches!(c.txn(&txn).await, Ok(TxnOutcome::Committed { .. })).then_some(()))
                }
            })
            .await
            .map_err(|e| self.with_logs(e))?;
        }
        Ok(clients)
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "navarch cluster failed to start\n{}",
            self.procs.log_tails(15)
        ))
    }

    /// Fails if a master has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        self.procs.check_running()
    }

    /// The API server address (`host:port`, HTTPS) of each member, in member order.
    pub(crate) fn api_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.api).collect()
    }

    /// The QUIC address of each member (what nodes join and link to), in member order.
    pub(crate) fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.peer).collect()
    }

    /// What a node needs to join through the first master: its bootstrap token, the CA
    /// pin and every master's QUIC address, comma-separated (`--token`, `--ca-hash`,
    /// `--master`).
    pub(crate) fn node_join(&self) -> Result<(String, String, String)> {
        let m1 = self
            .ca_dir
            .parent()
            .context("the cluster's dir")?
            .join(&self.members[0].name);
        let read = |f: &str| {
            std::fs::read_to_string(m1.join(f))
                .map(|s| s.trim().to_string())
                .with_context(|| format!("{}'s {f}", self.members[0].name))
        };
        let masters = self
            .peer_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Ok((read("join-token")?, read("ca-hash")?, masters))
    }

    /// Starts one more process under the cluster's supervision (killed with it).
    pub(crate) fn spawn_extra(&mut self, name: &str, cmd: Command, log: &Path) -> Result<()> {
        self.procs.spawn(name, cmd, log)
    }

    /// The admin identity (group `system:masters`) issued from the cluster CA at start.
    pub(crate) fn admin(&self) -> &Identity {
        &self.admin
    }

    /// The masters' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.pids()
    }

    /// Kills the masters.
    pub(crate) fn stop(&mut self) {
        self.procs.kill_all();
    }
}

impl Cluster for NavarchCluster {
    fn procs(&mut self) -> &mut Procs {
        &mut self.procs
    }

    fn member_name(&self, i: usize) -> String {
        self.members[i].name.clone()
    }

    async fn leader(&self) -> Option<usize> {
        let mut leader: Option<String> = None;
        let mut answered = 0;
        for m in &self.members {
            let Some(s) = Self::status(&self.http, m.api).await else {
                continue;
            };
            answered += 1;
            let l = s["leader"].as_str()?.to_string();
            if leader.as_ref().is_some_and(|x| *x != l) {
                return None;
            }
            leader = Some(l);
        }
        let leader = leader.filter(|_| answered * 2 > self.members.len())?;
        self.members.iter().position(|m| m.name == leader)
    }

    /// Waits until member `i` names a leader and has applied what the leader had committed
    /// when the wait began.
    async fn wait_caught_up(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let http = self.http.clone();
        let apis: Vec<SocketAddr> = self.members.iter().map(|m| m.api).collect();
        let names: Vec<String> = self.members.iter().map(|m| m.name.clone()).collect();
        let target = wait_for(timeout, "a leader's committed index", || {
            let http = http.clone();
            let apis = apis.clone();
            let names = names.clone();
            async move {
                for (j, api) in apis.iter().enumerate() {
                    if let Some(s) = Self::status(&http, *api).await {
                        if s["leader"].as_str() == Some(names[j].as_str()) {
                            return Ok(s["committed"].as_u64());
                        }
                    }
                }
                Ok(None)
            }
        })
        .await?;
        let api = apis[i];
        wait_for(timeout, "the restarted master to catch up", || {
            let r = self.procs.check_running();
            let http = http.clone();
            async move {
                r?;
                let Some(me) = Self::status(&http, api).await else {
                    return Ok(None);
                };
                let follows = me["leader"].as_str().is_some();
                let applied = me["applied"].as_u64().unwrap_or(0);
                Ok((follows && applied >= target).then_some(()))
            }
        })
        .await
    }
}
