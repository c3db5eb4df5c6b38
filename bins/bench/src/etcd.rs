//! The etcd side of the benchmark: a 3-member etcd cluster on 127.0.0.1 (mutual TLS on client
//! and peer URLs, or plain HTTP on request) and a minimal client of etcd's gRPC API — `KV/Put`
//! and `Maintenance/Status` — with the few protobuf messages declared by hand from etcd's
//! `api/etcdserverpb/rpc.proto`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_net::pki::{AltName, CertProfile, ClusterCa};
use tonic::codec::ProstCodec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::failover::Cluster;
use super::procs::{free_port, wait_for, Procs};

const PUT: &str = "/etcdserverpb.KV/Put";
const STATUS: &str = "/etcdserverpb.Maintenance/Status";
const CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// `etcdserverpb.PutRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub lease: i64,
    #[prost(bool, tag = "4")]
    pub prev_kv: bool,
    #[prost(bool, tag = "5")]
    pub ignore_value: bool,
    #[prost(bool, tag = "6")]
    pub ignore_lease: bool,
}

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `etcdserverpb.PutResponse` (without `prev_kv`, tag 2, which is never requested).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusRequest {}

/// `etcdserverpb.StatusResponse`, the fields up to `raftTerm`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(int64, tag = "3")]
    pub db_size: i64,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
    #[prost(uint64, tag = "5")]
    pub raft_index: u64,
    #[prost(uint64, tag = "6")]
    pub raft_term: u64,
}

/// etcd members serve clients and peers and authenticate to peers, as `localhost` and
/// 127.0.0.1.
fn etcd_peer_profile() -> CertProfile {
    CertProfile::Peer(vec![
        AltName::Dns("localhost".into()),
        AltName::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
    ])
}

/// A gRPC client of one etcd member. Clones share the member's HTTP/2 connection.
#[derive(Clone)]
pub(crate) struct EtcdKv {
    grpc: tonic::client::Grpc<Channel>,
}

impl EtcdKv {
    async fn connect(url: &str, tls: Option<&ClientTls>) -> Result<EtcdKv> {
        let mut ep = Channel::from_shared(url.to_string())
            .with_context(|| format!("etcd url {url}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        if let Some(t) = tls {
            let cfg = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&t.ca_pem))
                .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
                .domain_name("localhost");
            ep = ep.tls_config(cfg).context("etcd client TLS config")?;
        }
        let channel = ep
            .connect()
            .await
            .with_context(|| format!("connect to etcd at {url}"))?;
        Ok(EtcdKv {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    async fn unary<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("etcd channel not ready: {e}")))?;
        let codec: ProstCodec<Req, Resp> = ProstCodec::default();
        let resp = grpc
            .unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await?;
        Ok(resp.into_inner())
    }

    /// `KV/Put` of one key.
    pub(crate) async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), tonic::Status> {
        let req = PutRequest {
            key,
            value,
            lease: 0,
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        };
        let _: PutResponse = self.unary(PUT, req).await?;
        Ok(())
    }

    async fn status(&self) -> Result<StatusResponse, tonic::Status> {
        self.unary(STATUS, StatusRequest {}).await
    }
}

struct ClientTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

struct EtcdMember {
    name: String,
    client_url: String,
}

/// A running 3-member etcd cluster; dropping it kills the members.
pub(crate) struct EtcdCluster {
    procs: Procs,
    members: Vec<EtcdMember>,
    tls: Option<ClientTls>,
    pub version: String,
}

/// The version line of the etcd binary (`etcd Version: 3.4.23`).
fn etcd_version(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "run {} --version (install etcd-server: scripts/install-deps.sh)",
                bin.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("unexpected output of {} --version: {text}", bin.display()))?;
    Ok(version)
}

impl EtcdCluster {
    /// Starts 3 members under `dir` with etcd's default durability (WAL fsync on every
    /// commit); with `ca`, every client and peer URL is HTTPS with client certificates.
    pub(crate) async fn start(
        bin: &Path,
        dir: &Path,
        ca: Option<&ClusterCa>,
    ) -> Result<EtcdCluster> {
        let version = etcd_version(bin)?;
        let scheme = if ca.is_some() { "https" } else { "http" };
        let ip = "127.0.0.1";
        let mut ports = Vec::new();
        for _ in 0..3 {
            ports.push((free_port(ip)?, free_port(ip)?));
        }
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{}={scheme}://{ip}:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let pki = dir.join("etcd-pki");
        let mut tls = None;
        if let Some(ca) = ca {
            std::fs::create_dir_all(&pki)?;
            let client = ca
                .issue_client("bench-etcd-client", &[], CERT_VALIDITY)
                .context("issue etcd client certificate")?;
            tls = Some(ClientTls {
                ca_pem: client.ca_pem,
                cert_pem: client.cert_pem,
                key_pem: client.key_pem,
            });
        }
        let token = format!("navarch-bench-{}", std::process::id());
        let mut procs = Procs::default();
        let mut members = Vec::new();
        for (i, (client_port, peer_port)) in ports.iter().enumerate() {
            let name = format!("e{}", i + 1);
            let client_url = format!("{scheme}://{ip}:{client_port}");
            let peer_url = format!("{scheme}://{ip}:{peer_port}");
            let mut cmd = Command::new(bin);
            cmd.arg("--name")
                .arg(&name)
                .arg("--data-dir")
                .arg(dir.join(&name))
                .arg("--listen-client-urls")
                .arg(&client_url)
                .arg("--advertise-client-urls")
                .arg(&client_url)
                .arg("--listen-peer-urls")
                .arg(&peer_url)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer_url)
                .arg("--initial-cluster")
                .arg(&initial_cluster)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(&token)
                .arg("--logger")
                .arg("zap")
                .arg("--log-outputs")
                .arg("stderr")
                .arg("--log-level")
                .arg("warn");
            if let Some(ca) = ca {
                let id = ca
                    .issue(&name, &[], CERT_VALIDITY, &etcd_peer_profile())
                    .with_context(|| format!("issue {name} certificate"))?;
                id.save(&pki, &name)
                    .with_context(|| format!("save {name} certificate"))?;
                let cert = pki.join(format!("{name}.crt"));
                let key = pki.join(format!("{name}.key"));
                let ca_file = pki.join("ca.crt");
                cmd.arg("--cert-file")
                    .arg(&cert)
                    .arg("--key-file")
                    .arg(&key)
                    .arg("--trusted-ca-file")
                    .arg(&ca_file)
                    .arg("--client-cert-auth")
                    .arg("--peer-cert-file")
                    .arg(&cert)
                    .arg("--peer-key-file")
                    .arg(&key)
                    .arg("--peer-trusted-ca-file")
                    .arg(&ca_file)
                    .arg("--peer-client-cert-auth");
            }
            let log = dir.join(format!("{name}.log"));
            procs.spawn(&name, cmd, &log)?;
            tracing::info!(member = %name, client = %client_url, peer = %peer_url, "started etcd member");
            members.push(EtcdMember { name, client_url });
        }
        let cluster = EtcdCluster {
            procs,
            members,
            tls,
            version,
        };
        Ok(cluster)
    }

    /// Connects one client per member, waits until all three report the same leader, and
    /// checks that a write through each member commits.
    pub(crate) async fn connect_ready(&mut self, timeout: Duration) -> Result<Vec<EtcdKv>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut kvs = Vec::new();
        for m in &self.members {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let tls = self.tls.as_ref();
            let procs = &mut self.procs;
            let kv = wait_for(
                left,
                &format!("etcd member {} to accept connections", m.name),
                || {
                    let r = procs.check_running();
                    async move {
                        r?;
                        Ok(EtcdKv::connect(&m.client_url, tls).await.ok())
                    }
                },
            )
            .await
            .map_err(|e| self.with_logs(e))?;
            kvs.push(kv);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let leader = {
            let procs = &mut self.procs;
            let kvs = &kvs;
            wait_for(left, "the etcd members to agree on a leader", || {
                let r = procs.check_running();
                async move {
                    r?;
                    let mut leader = None;
                    for kv in kvs {
                        let Ok(s) = kv.status().await else {
                            return Ok(None);
                        };
                        if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                            return Ok(None);
                        }
                        leader = Some(s.leader);
                    }
                    Ok(leader)
                }
            })
            .await
            .map_err(|e| self.with_logs(e))?
        };
        tracing::info!(leader = format!("{leader:x}"), "etcd cluster has a leader");
        for (i, kv) in kvs.iter().enumerate() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let key = format!("/bench-probe/{i}").into_bytes();
            wait_for(left, "a first write through each etcd member", || {
                let key = key.clone();
                async move { Ok(kv.put(key, b"probe".to_vec()).await.ok()) }
            })
            .await
            .map_err(|e| self.with_logs(e))?;
        }
        Ok(kvs)
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "etcd cluster failed to start\n{}",
            self.procs.log_tails(15)
        ))
    }

    /// Fails if a member has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        self.procs.check_running()
    }

    /// The members' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.pids()
    }

    /// Kills the members.
    pub(crate) fn stop(&mut self) {
        self.procs.kill_all();
    }

    /// `Maintenance/Status` of member `i` over a fresh connection, within a second.
    async fn member_status(&self, i: usize) -> Option<StatusResponse> {
        let m = &self.members[i];
        let ask = async {
            let kv = EtcdKv::connect(&m.client_url, self.tls.as_ref())
                .await
                .ok()?;
            kv.status().await.ok()
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    }
}

impl Cluster for EtcdCluster {
    fn procs(&mut self) -> &mut Procs {
        &mut self.procs
    }

    fn member_name(&self, i: usize) -> String {
        self.members[i].name.clone()
    }

    async fn leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for i in 0..self.members.len() {
            match self.member_status(i).await {
                Some(s) => {
                    if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                        return None;
                    }
                    leader = Some(s.leader);
                    ids.push(s.header.map(|h| h.member_id));
                }
                None => ids.push(None),
            }
        }
        let leader = leader?;
        ids.iter().position(|id| *id == Some(leader))
    }

    /// Waits until member `i` names a leader and has applied the Raft index the leader had
    /// when the wait began.
    async fn wait_caught_up(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut target = None;
        while target.is_none() {
            for j in 0..self.members.len() {
                if let Some(s) = self.member_status(j).await {
                    if s.leader != 0 && s.header.as_ref().map(|h| h.member_id) == Some(s.leader) {
                        target = Some(s.raft_index);
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no etcd leader within {timeout:?}");
            }
        }
        let target = target.unwrap_or(0);
        loop {
            self.procs.check_running()?;
            if let Some(s) = self.member_status(i).await {
                if s.leader != 0 && s.raft_index >= target {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "etcd member {} did not catch up within {timeout:?}",
                    self.members[i].name
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Fails early with a clear message if the etcd binary is missing.
pub(crate) fn check_binary(bin: &Path) -> Result<PathBuf> {
    if !bin.is_file() {
        bail!("etcd not found at {}: install Debian's etcd-server (scripts/install-deps.sh) or pass --etcd PATH", bin.display());
    }
    Ok(bin.to_path_buf())
}
