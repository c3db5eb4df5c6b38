//! One store member: opens RocksDB, runs openraft over QUIC, and serves writes (forwarded to
//! the leader from any member), linearizable and at-least-revision reads, watches and backups.
//!
//! The member dials its peers through an endpoint the binary bound; it serves them once the
//! binary mounts its services on that endpoint's router (`crate::mount`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use navarch_net::{Endpoint, ExpectedPeer, RpcError};
use openraft::error::RaftError;
use openraft::{Config, ServerState, SnapshotPolicy};
use prometheus_client::registry::Registry;
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::client::StoreClient;
use crate::election::{Contact, Elections, Timing};
use crate::log_store::LogStore;
use crate::metrics::{self, StoreMetrics};
use crate::network::RaftNet;
use crate::proposer::{ProposeError, Proposer};
use crate::raft_types::{Member as RaftMember, MemberId, Raft};
use crate::state_machine::{dump_state, HistoryLimits, Progress, StateMachine};
use crate::types::{
    KeyRange, ListResult, Object, ObjectKey, ReadConsistency, Revision, Txn, TxnOutcome,
};
use crate::watch::{WatchHub, WatchReceiver};
use crate::{backup, read, rocks, StoreError};

/// Whether this member may create a new cluster (etcd's `--initial-cluster-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    /// The first member of the list initializes the cluster if its data dir is new.
    New,
    /// Join an existing cluster: never initialize (a member whose data dir was wiped).
    Existing,
}

/// How to run one member.
pub struct MemberConfig {
    /// This member's name; must appear in `initial_cluster` unless `joined` is set.
    pub name: String,
    pub data_dir: PathBuf,
    /// Every member, in a fixed order: `(name, QUIC address)`. A member's Raft id is its
    /// position, from 1.
    pub initial_cluster: Vec<(String, SocketAddr)>,
    pub initial_state: InitialState,
    /// Set for a member that joined a running cluster: the id the leader assigned it
    /// ([`Member::member_join`]). `initial_cluster` is then unused, the member never
    /// initializes a cluster, and it asks to be promoted to voter once it has caught up.
    pub joined: Option<MemberId>,
    pub history: HistoryLimits,
    /// Build a snapshot (and purge the log behind it) every this many applied entries.
    pub snapshot_every: u64,
    /// Heartbeats, election timeouts, the lease and the AppendEntries deadline.
    pub timing: Timing,
    /// How long a write or read may wait for a leader and a quorum.
    pub request_timeout: Duration,
}

impl MemberConfig {
    pub fn new(
        name: impl Into<String>,
        data_dir: PathBuf,
        initial_cluster: Vec<(String, SocketAddr)>,
    ) -> Self {
        Self {
            name: name.into(),
            data_dir,
            initial_cluster,
            initial_state: InitialState::New,
            joined: None,
            history: HistoryLimits::default(),
            snapshot_every: 100_000,
            timing: Timing::default(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A member's role as `/debug/store` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// A member's view of the cluster, for `/debug/store` and readiness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub name: String,
    pub id: MemberId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<String>,
    pub applied: u64,
    pub committed: u64,
    pub revision: u64,
    pub compacted: u64,
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    pub members: Vec<String>,
}

/// What came of a write forwarded to the leader.
enum Forwarded {
    /// The leader answered (or the outcome is unknown: `StoreError::Timeout`).
    Done(Result<TxnOutcome, StoreError>),
    /// Nothing was written: the leader was not (any more) one, or did not serve the store.
    NotWritten,
}

/// One running store member.
pub struct Member {
    pub(crate) name: String,
    pub(crate) id: MemberId,
    pub(crate) raft: Raft,
    proposer: Proposer,
    pub(crate) endpoint: Endpoint,
    pub(crate) db: Arc<DB>,
    pub(crate) watch: WatchHub,
    pub(crate) progress: Arc<Progress>,
    pub(crate) committed: Arc<AtomicU64>,
    pub(crate) request_timeout: Duration,
    metrics: StoreMetrics,
    pub(crate) elections: Elections,
    /// `store.*` calls being served now (forwarded writes among them).
    serving: Arc<tokio::sync::watch::Sender<usize>>,
    /// Membership changes made through this member while it leads, one at a time.
    pub(crate) membership_lock: tokio::sync::Mutex<()>,
    /// Set once the committed membership no longer holds this member.
    pub(crate) removed: tokio::sync::watch::Sender<bool>,
    /// Woken when the leader says it removed this member: check now.
    pub(crate) recheck: Arc<tokio::sync::Notify>,
}

/// Counts one served call while it lives.
pub(crate) struct Serving(Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Member {
    /// Opens the data dir and starts Raft, dialing peers through `endpoint`. The endpoint is
    /// the one the binary bound on this member's address (in `initial_cluster`, or the one it
    /// joined with); peers reach this
    /// member once its services are mounted on that endpoint's router ([`crate::mount`]).
    pub async fn start(cfg: MemberConfig, endpoint: Endpoint) -> Result<Arc<Member>, StoreError> {
        // A joined member's id comes from its leader; an initial member's is its position.
        // Either way, peers' names and addresses come from Raft's membership, not from here.
        let (id, listen, initial) = match cfg.joined {
            Some(id) => (id, None, None),
            None => {
                let pos = cfg
                    .initial_cluster
                    .iter()
                    .position(|(n, _)| *n == cfg.name)
                    .ok_or_else(|| {
                        StoreError::InvalidKey(format!(
                            "member {} is not in the initial cluster",
                            cfg.name
                        ))
                    })?;
                let members: BTreeMap<MemberId, RaftMember> = cfg
                    .initial_cluster
                    .iter()
                    .enumerate()
                    .map(|(i, (n, a))| {
                        (
                            i as MemberId + 1,
                            RaftMember {
                                name: n.clone(),
                                addr: a.to_string(),
                            },
                        )
                    })
                    .collect();
                let first = pos == 0 && cfg.initial_state == InitialState::New;
                (
                    pos as MemberId + 1,
                    Some(cfg.initial_cluster[pos].1),
                    first.then_some(members),
                )
            }
        };

        let db_dir = cfg.data_dir.join("db");
        let db = rocks::open(&db_dir)?;
        let watch = WatchHub::new(db.clone());
        let committed = Arc::new(AtomicU64::new(0));
        let log = LogStore::new(db.clone(), committed.clone());
        let metrics = StoreMetrics::new();
        let sm = StateMachine::open(
            db.clone(),
            watch.clone(),
            cfg.history,
            metrics.apply_latency.clone(),
        )
        .map_err(storage)?;
        let progress = sm.progress();

        if let (Ok(local), Some(listen)) = (endpoint.local_addr(), listen) {
            if local.port() != listen.port()
                || (!local.ip().is_unspecified() && local.ip() != listen.ip())
            {
                warn!(member = %cfg.name, %listen, %local, "the endpoint is not bound on this member's address in the initial cluster");
            }
        }

        cfg.timing.validate().map_err(StoreError::InvalidKey)?;
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        // openraft's own election timer is off: `election` decides when to campaign, with a
        // pre-vote, and paces the leader's heartbeats. What remains of openraft's timing:
        // `heartbeat_interval` is its deadline for one AppendEntries (and its backstop
        // heartbeat), `election_timeout_max` the leader lease in which voters refuse to vote,
        // `election_timeout_min` the deadline of a vote request. openraft's `validate` wants
        // the election timeout above the heartbeat, which is what this separates, so the
        // config is checked by `Timing::validate` instead.
        let raft_config = Config {
            cluster_name: "navarch".into(),
            heartbeat_interval: ms(cfg.timing.append_deadline),
            election_timeout_min: ms(cfg.timing.lease * 5 / 6),
            election_timeout_max: ms(cfg.timing.lease),
            enable_elect: false,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            // Log kept behind a snapshot, so a briefly lagging follower catches up from the log.
            max_in_snapshot_log_to_keep: cfg.snapshot_every.min(5000),
            install_snapshot_timeout: 10_000,
            max_payload_entries: crate::proposer::MAX_ENTRIES_PER_APPEND,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config);
        let raft = Raft::new(
            id,
            raft_config,
            RaftNet {
                endpoint: endpoint.clone(),
            },
            log.clone(),
            sm,
        )
        .await
        .map_err(|e| StoreError::Storage(e.to_string()))?;
        let elections = Elections {
            id,
            raft: raft.clone(),
            timing: cfg.timing,
            contact: Arc::new(Contact::new()),
            log,
        };
        tokio::spawn(elections.clone().run(endpoint.clone()));

        tokio::spawn(metrics::count_leader_changes(raft.clone(), metrics.clone()));
        let member = Arc::new(Member {
            name: cfg.name.clone(),
            id,
            proposer: Proposer::start(raft.clone()),
            raft,
            endpoint,
            db,
            watch,
            progress,
            committed,
            request_timeout: cfg.request_timeout,
            metrics,
            elections,
            serving: Arc::new(tokio::sync::watch::channel(0).0),
            membership_lock: tokio::sync::Mutex::new(()),
            removed: tokio::sync::watch::channel(false).0,
            recheck: Arc::new(tokio::sync::Notify::new()),
        });

        let initialized = member
            .raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        // A new cluster is created once, by the first listed member; a member whose data dir
        // was wiped must be started with `InitialState::Existing` and catches up from the leader.
        if let (false, Some(members)) = (initialized, initial) {
            info!(member = %cfg.name, members = members.len(), "initializing a new cluster");
            if let Err(e) = member.raft.initialize(members).await {
                warn!(error = %e, "initialize failed");
            }
        }
        tokio::spawn(crate::membership::watch_removal(
            Arc::downgrade(&member),
            member.recheck.clone(),
        ));
        if cfg.joined.is_some() {
            tokio::spawn(crate::membership::promote_when_caught_up(Arc::downgrade(
                &member,
            )));
        }
        info!(member = %cfg.name, id, listen = ?listen, joined = cfg.joined.is_some(), "store member started");
        Ok(member)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint this member dials its peers through (the binary's).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Registers this member's metrics into `registry`, prefixed `navarch_store_`: commit,
    /// apply and read-index latencies, leader changes, and (read at each scrape) the Raft term,
    /// whether it leads, the last log, committed, applied, snapshot and purged indexes, the
    /// revision and the compacted revision. Call it once per registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(
            registry.sub_registry_with_prefix("navarch_store"),
            self.raft.clone(),
            self.progress.clone(),
            self.committed.clone(),
        );
    }

    /// This member's Raft id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// Member `id`'s name and address, from Raft's current membership.
    pub(crate) fn member_by_id(&self, id: MemberId) -> Option<RaftMember> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    pub(crate) fn leader_client(&self, leader: MemberId) -> Result<StoreClient, StoreError> {
        let m = self
            .member_by_id(leader)
            .ok_or_else(|| StoreError::Unavailable(format!("unknown leader {leader}")))?;
        let addr: SocketAddr = m
            .addr
            .parse()
            .map_err(|e| StoreError::Network(format!("{}: {e}", m.addr)))?;
        Ok(StoreClient::new(self.endpoint.peer(
            &m.name,
            addr,
            ExpectedPeer::member(&m.name),
        )))
    }

    /// The current leader, waiting up to the request timeout for one to be elected.
    pub(crate) async fn wait_leader(&self) -> Result<MemberId, StoreError> {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        loop {
            if let Some(l) = rx.borrow().current_leader {
                return Ok(l);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(StoreError::Unavailable("no leader elected".into()));
            }
        }
    }

    /// Commits `txn` through Raft: on the leader it joins the next batched proposal; on a
    /// follower it is forwarded to the leader over QUIC.
    pub async fn write(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        txn.validate()?;
        let started = Instant::now();
        let outcome = self.write_validated(txn).await;
        self.metrics
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    async fn write_validated(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let timeout = self.request_timeout;
        let attempt = async {
            // Retried only while nothing was written: no leader yet, a leader that refused
            // before proposing, a leader that is not one any more. A write whose outcome is
            // unknown (sent to a leader that then went away) is not retried: it may commit.
            for _ in 0..16 {
                let leader = self.live_leader().await?;
                if leader != self.id {
                    match self.forward(leader, &txn).await? {
                        Forwarded::Done(outcome) => return outcome,
                        Forwarded::NotWritten => {
                            self.wait_leader_change(leader).await;
                            continue;
                        }
                    }
                }
                match self.proposer.propose(txn.clone()).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(ProposeError::NotLeader(hint)) => {
                        debug!(?hint, "lost leadership before proposing; retrying");
                        self.wait_leader_change(self.id).await
                    }
                    Err(ProposeError::Failed(e)) => return Err(e),
                }
            }
            Err(StoreError::Unavailable("leadership kept changing".into()))
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
    }

    /// Sends `txn` to `leader`. Once this member learns of another leader it waits a little
    /// longer only if the old one handed over (it answers at once: it passes what it held on
    /// to its successor); a leader that went silent first never does, and the transport
    /// would take its own timeout.
    async fn forward(&self, leader: MemberId, txn: &Txn) -> Result<Forwarded, StoreError> {
        let client = self.leader_client(leader)?;
        // A leader that cannot be reached (it stopped, or is stopping) got nothing.
        if let Err(e) = client.connect().await {
            debug!(leader, error = %e, "leader not reachable; the write was not sent");
            return Ok(Forwarded::NotWritten);
        }
        let sent = Instant::now();
        let reply = client.txn_forwarded(txn);
        tokio::pin!(reply);
        tokio::select! {
            r = &mut reply => return Ok(classify_forwarded(r, leader, sent)),
            _ = self.leader_moves_from(leader) => {}
        }
        // A successor elected after a silence longer than the lease means the old leader
        // went quiet (crashed, or cut off): no answer is coming.
        let grace = if self.elections.contact.silence() > self.elections.timing.lease {
            Duration::ZERO
        } else {
            self.elections.timing.election.1
        };
        match tokio::time::timeout(grace, reply).await {
            Ok(r) => Ok(classify_forwarded(r, leader, sent)),
            Err(_) => {
                warn!(
                    leader,
                    "the leader changed while a forwarded write was in flight; outcome unknown"
                );
                Ok(Forwarded::Done(Err(StoreError::Timeout(sent.elapsed()))))
            }
        }
    }

    /// Resolves once Raft's view of the leader satisfies `done` (or Raft stops).
    fn leader_until(
        &self,
        done: impl Fn(Option<MemberId>) -> bool,
    ) -> impl std::future::Future<Output = ()> {
        let mut metrics = self.raft.metrics();
        async move {
            while !done(metrics.borrow_and_update().current_leader) {
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    /// Whether this member leads, and in which Raft term: what the control plane follows
    /// (it runs on the leader, its writes fenced to that term).
    pub fn leadership(&self) -> Leadership {
        Leadership {
            metrics: self.raft.metrics(),
            id: self.id,
        }
    }

    /// Resolves once this member's view of the leader is not `leader` any more.
    fn leader_moves_from(&self, leader: MemberId) -> impl std::future::Future<Output = ()> {
        self.leader_until(move |current| current != Some(leader))
    }

    /// The leader, once there is one this member has heard from lately. While the leader is
    /// silent (dead, or cut off) writes wait here rather than go to it: either its messages
    /// resume or another leader is elected, and either way nothing was sent in between.
    async fn live_leader(&self) -> Result<MemberId, StoreError> {
        let fresh = self.elections.timing.heartbeat * 2;
        let mut rx = self.raft.metrics();
        loop {
            let leader = self.wait_leader().await?;
            if leader == self.id || self.elections.contact.since() <= fresh {
                return Ok(leader);
            }
            drop(rx.borrow_and_update());
            let _ = tokio::time::timeout(self.elections.timing.heartbeat / 5, rx.changed()).await;
        }
    }

    /// Waits (briefly) for Raft's view of the leader to move away from `from`.
    async fn wait_leader_change(&self, from: MemberId) {
        let elected = self.leader_until(move |current| current.is_some_and(|l| l != from));
        let _ = tokio::time::timeout(self.elections.timing.election.1 * 2, elected).await;
    }

    /// Waits until a read here reflects every write committed before the call (read index).
    pub async fn linearize(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let done = self.linearize_once().await;
        self.metrics
            .read_index_latency
            .observe(started.elapsed().as_secs_f64());
        done
    }

    async fn linearize_once(&self) -> Result<(), StoreError> {
        let timeout = self.request_timeout;
        let wait = async {
            // A read index is safe to ask again: retried while the leader changes.
            loop {
                let leader = self.live_leader().await?;
                let index = if leader == self.id {
                    self.read_index().await
                } else {
                    let client = self.leader_client(leader)?;
                    tokio::select! {
                        r = client.read_index() => r,
                        _ = self.leader_moves_from(leader) => {
                            Err(StoreError::Unavailable("the leader changed".into()))
                        }
                    }
                };
                match index {
                    Ok(index) => return self.wait_applied(index, timeout).await,
                    Err(StoreError::Unavailable(_) | StoreError::Timeout(_)) => {
                        self.wait_leader_change(leader).await
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| StoreError::Unavailable("read index timed out".into()))?
    }

    /// On the leader: confirms leadership with a quorum and returns the index a read must see.
    pub(crate) async fn read_index(&self) -> Result<u64, StoreError> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(e)) => Err(StoreError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(_)) => Err(StoreError::ShuttingDown),
        }
    }

    async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), StoreError> {
        if self.progress.applied_index.load(Ordering::SeqCst) >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn wait_revision(&self, rev: Revision) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let mut rx = self.raft.metrics();
        while self.progress.revision.load(Ordering::SeqCst) < rev.0 {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(StoreError::Unavailable(format!(
                    "revision {rev} not reached here"
                )));
            }
        }
        Ok(())
    }

    async fn prepare_read(&self, consistency: ReadConsistency) -> Result<(), StoreError> {
        match consistency {
            ReadConsistency::Linearizable => self.linearize().await,
            ReadConsistency::AtLeast(rev) => self.wait_revision(rev).await,
        }
    }

    pub async fn get(
        &self,
        key: &ObjectKey,
        consistency: ReadConsistency,
    ) -> Result<Option<Object>, StoreError> {
        key.validate()?;
        self.prepare_read(consistency).await?;
        read::read_object(&self.db, key)
    }

    pub async fn list(
        &self,
        range: &KeyRange,
        consistency: ReadConsistency,
    ) -> Result<ListResult, StoreError> {
        self.prepare_read(consistency).await?;
        read::read_range(&self.db, range)
    }

    /// Watches `range` for changes after `after` (`None`: after the current revision).
    pub fn watch(
        &self,
        range: KeyRange,
        after: Option<Revision>,
    ) -> Result<WatchReceiver, StoreError> {
        let after = after.unwrap_or(Revision(self.progress.revision.load(Ordering::SeqCst)));
        self.watch.watch(range, after)
    }

    /// A consistent backup of every object and the revision, after a linearizable barrier.
    pub async fn backup(&self) -> Result<Vec<u8>, StoreError> {
        self.linearize().await?;
        let (payload, _, _) = dump_state(&self.db).map_err(storage)?;
        backup::encode(&payload)
    }

    pub fn status(&self) -> StoreStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        StoreStatus {
            name: self.name.clone(),
            id: self.id,
            role,
            term: m.current_term,
            leader: m
                .current_leader
                .and_then(|l| m.membership_config.membership().get_node(&l))
                .map(|m| m.name.clone()),
            applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            committed: self.committed.load(Ordering::Relaxed),
            revision: self.progress.revision.load(Ordering::SeqCst),
            compacted: self.progress.compacted.load(Ordering::SeqCst),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            members: m
                .membership_config
                .membership()
                .nodes()
                .map(|(_, n)| n.name.clone())
                .collect(),
        }
    }

    /// Before a planned stop: if this member leads, hands leadership to an up-to-date voter
    /// (new writes wait meanwhile, then go to the successor) and returns its name. `None` if
    /// this member does not lead or no handover finished within `within`; the others then
    /// elect a leader as after a crash, once this member has stopped.
    pub async fn transfer_leadership(&self, within: Duration) -> Option<String> {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return None;
        }
        let deadline = tokio::time::Instant::now() + within;
        let paused = tokio::time::timeout_at(deadline, self.proposer.pause()).await;
        let Ok(_paused) = paused else {
            warn!("writes in flight did not finish in time for a leadership handover");
            return None;
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let successor = self.elections.transfer(&self.endpoint, left).await?;
        let name = self.member_by_id(successor).map(|m| m.name.clone());
        info!(successor = ?name, "leadership handed over");
        name
    }

    /// Counts a `store.*` call as served until the guard drops (see [`Member::drain`]).
    pub(crate) fn serving(&self) -> Serving {
        self.serving.send_modify(|n| *n += 1);
        Serving(self.serving.clone())
    }

    /// Before a planned stop: waits up to `within` for the `store.*` calls being served to
    /// finish, so writes forwarded here (and passed on to a successor) get their answers.
    pub async fn drain(&self, within: Duration) {
        let mut rx = self.serving.subscribe();
        if tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            warn!(
                calls = *rx.borrow(),
                "store calls still in flight at shutdown"
            );
        }
    }

    /// Asks Raft to build a snapshot now (and purge the log behind it).
    pub async fn trigger_snapshot(&self) -> Result<(), StoreError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| StoreError::Storage(e.to_string()))
    }

    /// Stops Raft. The endpoint is the binary's: it closes it after unmounting the services.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        // Make what was written durable and stop RocksDB's flush and compaction threads: a
        // process that exits while they run aborts in their mutexes ("pthread lock: Invalid
        // argument") as static destructors run.
        if let Err(e) = self.db.flush_wal(true) {
            warn!(error = %e, "wal sync at shutdown");
        }
        self.db.cancel_all_background_work(true);
    }
}

/// What the answer to a forwarded write says about it.
fn classify_forwarded(
    reply: Result<Result<TxnOutcome, StoreError>, RpcError>,
    leader: MemberId,
    sent: Instant,
) -> Forwarded {
    match reply {
        Ok(Err(StoreError::Unavailable(_))) => Forwarded::NotWritten,
        Ok(outcome) => Forwarded::Done(outcome),
        // Refused before anything was read: the peer is not the member we expected, or
        // nothing serves the store there (yet).
        Err(RpcError::WrongPeer(_) | RpcError::Unavailable(_)) => Forwarded::NotWritten,
        Err(RpcError::Refused(m)) => Forwarded::Done(Err(StoreError::Forbidden(m))),
        Err(e) => {
            warn!(leader, error = %e, "forwarded write lost with its leader; outcome unknown");
            Forwarded::Done(Err(StoreError::Timeout(sent.elapsed())))
        }
    }
}

fn storage(e: openraft::StorageError<MemberId>) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// This member's leadership as it changes: `Some(term)` while it leads in `term`.
pub struct Leadership {
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<MemberId, RaftMember>>,
    id: MemberId,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("term", &self.term())
            .finish()
    }
}

impl Leadership {
    /// The term this member leads in now, if it leads.
    pub fn term(&self) -> Option<u64> {
        let m = self.metrics.borrow();
        (m.state == ServerState::Leader && m.current_leader == Some(self.id))
            .then_some(m.current_term)
    }

    /// Waits until [`term`](Self::term) differs from `from`, and returns it. Returns
    /// `None` at once if Raft has stopped.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed that a later call would miss.
    pub async fn changed_from(&mut self, from: Option<u64>) -> Option<u64> {
        loop {
            let now = self.term();
            if now != from {
                return now;
            }
            if self.metrics.changed().await.is_err() {
                return None;
            }
        }
    }
}
