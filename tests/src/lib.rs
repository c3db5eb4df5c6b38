//! Test harness for multi-process tests: starts the real navarch binaries on loopback
//! addresses with temporary data dirs, kills and restarts them, and gives tests admin clients.
//!
//! The binaries must be built first (`cargo build --bins`); the README's test command does.
//! Every process a [`Cluster`] starts is killed when it is dropped; unless the test called
//! [`Cluster::passed`], the tail of each member's log is printed.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_net::pki::ClusterCa;
use navarch_net::{Endpoint, NetConfig};
use navarch_store::{StoreClient, ORG_ADMINS};
use serde_json::Value;

/// The path of a binary built from this workspace, next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

/// A port free on `ip` for both UDP (QUIC) and TCP (HTTP) at the time of the call.
pub fn free_port(ip: &str) -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// Polls `cond` until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut cond: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One master process.
pub struct MasterProc {
    pub name: String,
    pub peer: SocketAddr,
    pub api: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl MasterProc {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A cluster of master processes on 127.0.0.x.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ca_dir: PathBuf,
    pub members: Vec<MasterProc>,
    initial_cluster: String,
    extra_args: Vec<String>,
    http: reqwest::Client,
    passed: bool,
}

impl Cluster {
    /// Starts `n` masters (m1 on 127.0.0.1, m2 on 127.0.0.2, ...) with extra flags, and
    /// waits until they agree on a leader.
    pub async fn start(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let mut c = Self::create(n, extra_args)?;
        for i in 0..n {
            c.spawn(i, false)?;
        }
        c.wait_leader(Duration::from_secs(30)).await?;
        Ok(c)
    }

    /// Lays out data dirs, ports and the shared CA without starting anything.
    pub fn create(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let ca_dir = dir.path().join("ca");
        ClusterCa::load_or_create(&ca_dir)?;
        let members: Vec<MasterProc> = (0..n)
            .map(|i| {
                let ip = format!("127.0.0.{}", i + 1);
                let name = format!("m{}", i + 1);
                MasterProc {
                    peer: format!("{ip}:{}", free_port(&ip)).parse().unwrap(),
                    api: format!("{ip}:{}", free_port(&ip)).parse().unwrap(),
                    data_dir: dir.path().join(&name),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Cluster {
            dir,
            ca_dir,
            members,
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            passed: false,
        })
    }

    /// Starts member `i`; `existing` starts it with `--initial-cluster-state existing`.
    pub fn spawn(&mut self, i: usize, existing: bool) -> Result<()> {
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "{} is already running", m.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let mut cmd = Command::new(bin("navarch-master"));
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--listen-api")
            .arg(m.api.to_string())
            .arg("--ca-dir")
            .arg(&self.ca_dir)
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("NAVARCH_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if existing {
            cmd.arg("--initial-cluster-state").arg("existing");
        }
        m.child = Some(cmd.spawn().with_context(|| format!("spawn {}", m.name))?);
        Ok(())
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills member `i` and deletes its data dir.
    pub fn wipe(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        std::fs::remove_dir_all(&self.members[i].data_dir).ok();
        Ok(())
    }

    /// `/debug/store` of member `i`, if it answers.
    pub async fn status(&self, i: usize) -> Option<Value> {
        let url = format!("http://{}/debug/store", self.members[i].api);
        let resp = self.http.get(url).send().await.ok()?;
        resp.json().await.ok()
    }

    /// Waits until every running member names the same leader, and returns its index.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<usize> {
        wait_for(
            timeout,
            "a leader every running member agrees on",
            || async {
                let mut leader: Option<String> = None;
                for (i, m) in self.members.iter().enumerate() {
                    if !m.is_running() {
                        continue;
                    }
                    let s = self.status(i).await?;
                    let l = s["leader"].as_str()?.to_string();
                    if leader.as_ref().is_some_and(|x| *x != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                let l = leader?;
                let idx = self.members.iter().position(|m| m.name == l)?;
                self.members[idx].is_running().then_some(idx)
            },
        )
        .await
    }

    /// An admin client of member `i` over QUIC with mutual TLS.
    pub fn client(&self, i: usize) -> Result<StoreClient> {
        let ca = ClusterCa::load(&self.ca_dir)?;
        let id = ca.issue("test-admin", &[ORG_ADMINS], Duration::from_secs(3600))?;
        let ep = Endpoint::client(NetConfig::new("test-client", id))?;
        Ok(StoreClient::new(
            ep.peer(&self.members[i].name, self.members[i].peer),
        ))
    }

    /// Posts a fault rule (JSON) to member `i`'s fault layer.
    pub async fn fault(&self, i: usize, rule: Value) -> Result<()> {
        let url = format!("http://{}/debug/faults", self.members[i].api);
        let r = self.http.post(url).json(&rule).send().await?;
        anyhow::ensure!(
            r.status().is_success(),
            "fault rule refused: {}",
            r.text().await?
        );
        Ok(())
    }

    pub async fn clear_faults(&self, i: usize) -> Result<()> {
        let url = format!("http://{}/debug/faults", self.members[i].api);
        let r = self.http.delete(url).send().await?;
        anyhow::ensure!(r.status().is_success(), "clear faults failed");
        Ok(())
    }

    /// Marks the test as passed: the members' logs are printed on drop unless this was called.
    pub fn passed(&mut self) {
        self.passed = true;
    }

    pub fn initial_cluster(&self) -> &str {
        &self.initial_cluster
    }

    fn print_logs(&self) {
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- last lines of {} ({}) -----", m.name, m.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if std::thread::panicking() || !self.passed {
            self.print_logs();
        }
    }
}
