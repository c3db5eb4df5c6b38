//! When a member campaigns, and how a leader hands over: failure detection from the leader's
//! messages, pre-vote, heartbeats paced apart from openraft's AppendEntries deadline, and
//! leadership transfer. openraft runs the votes themselves; this module only decides when to
//! ask it to (`trigger().elect()`, `trigger().heartbeat()`), with openraft's own election
//! timer switched off.
//!
//! Why not openraft's timer: in openraft 0.9 one setting (`heartbeat_interval`) is both the
//! heartbeat period and the deadline of every AppendEntries (a follower's fsync included), and
//! a follower campaigns only after `election_timeout_max + election_timeout` without a
//! heartbeat; there is no pre-vote. Here the leader sends a heartbeat every
//! [`Timing::heartbeat`] while openraft's deadline stays long ([`Timing::append_deadline`]), a
//! follower that has heard nothing for a random [`Timing::election`] asks its peers first
//! (pre-vote, Raft thesis §9.6) and campaigns only if a majority would vote for it, so a
//! member that was paused, restarted or cut off cannot depose a healthy leader by raising its
//! term.
//!
//! The decisions are pure functions ([`prevote_granted`], [`campaign_due`]); [`Elections`] is
//! the thin task around them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use navarch_net::{Endpoint, ExpectedPeer};
use openraft::ServerState;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::log_store::LogStore;
use crate::raft_types::{LogId, MemberId, Raft};

/// The method a candidate asks its peers with before it campaigns.
pub const METHOD_PREVOTE: &str = "raft.prevote";
/// The method a leader that is stopping asks its successor to campaign with.
pub const METHOD_TIMEOUT_NOW: &str = "raft.timeout_now";

/// The member's Raft timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A leader sends a heartbeat at least this often.
    pub heartbeat: Duration,
    /// A follower that has heard nothing from a leader for a random time in
    /// `[election.0, election.1)` asks for pre-votes. `election.0` must exceed
    /// [`Timing::lease`] so that voters' leases have run out when the candidate asks.
    pub election: (Duration, Duration),
    /// A voter that heard from a leader within this time refuses pre-votes and (openraft's
    /// leader lease, `election_timeout_max`) votes.
    pub lease: Duration,
    /// openraft's deadline for one AppendEntries or read-index round (`heartbeat_interval`).
    pub append_deadline: Duration,
}

impl Default for Timing {
    /// 50 ms heartbeats; elections after 150-250 ms of silence (the Raft paper's 150-300 ms);
    /// a 1 s AppendEntries deadline, so a follower's slow fsync is not a lost heartbeat.
    fn default() -> Self {
        Self::from_heartbeat(Duration::from_millis(50))
    }
}

impl Timing {
    /// The timing derived from one heartbeat interval: a lease of 2.4 heartbeats, elections
    /// after 3-5 heartbeats of silence, a 1 s (at least 4 heartbeats) AppendEntries deadline.
    pub fn from_heartbeat(heartbeat: Duration) -> Self {
        let heartbeat = heartbeat.max(Duration::from_millis(5));
        Self {
            heartbeat,
            election: (heartbeat * 3, heartbeat * 5),
            lease: heartbeat * 12 / 5,
            append_deadline: (heartbeat * 4).max(Duration::from_secs(1)),
        }
    }

    /// Whether the timing is usable: heartbeats well inside the lease, the lease inside the
    /// election timeout.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat * 2 > self.lease {
            return Err(format!(
                "the lease ({:?}) must be at least two heartbeats ({:?})",
                self.lease, self.heartbeat
            ));
        }
        if self.election.0 <= self.lease + PREVOTE_MARGIN || self.election.1 <= self.election.0 {
            return Err(format!(
                "the election timeout {:?}..{:?} must start after the lease ({:?}) and be a range",
                self.election.0, self.election.1, self.lease
            ));
        }
        Ok(())
    }
}

/// Slack between a voter's own notion of "last heard from the leader" (taken when a message
/// arrives) and openraft's (taken a moment later, when it handles it).
const PREVOTE_MARGIN: Duration = Duration::from_millis(10);

/// A pre-vote request: "would you vote for me if I campaigned now?"
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: MemberId,
    pub last_log_id: Option<LogId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreVoteResponse {
    pub granted: bool,
}

/// What a voter knows when it answers a pre-vote.
#[derive(Clone, Copy, Debug)]
pub struct VoterView {
    pub is_leader: bool,
    /// Time since this voter last heard from a leader (or since it started).
    pub since_contact: Duration,
    pub last_log_id: Option<LogId>,
}

/// Whether a voter grants a pre-vote: it leads no one and has not heard from a leader within
/// its lease (plus a margin, so openraft's lease has run out too), and the candidate's log is
/// at least as up to date as its own (Raft's election restriction).
pub fn prevote_granted(voter: &VoterView, lease: Duration, req: &PreVoteRequest) -> bool {
    !voter.is_leader
        && voter.since_contact > lease + PREVOTE_MARGIN
        && req.last_log_id >= voter.last_log_id
}

/// Whether a follower should ask for pre-votes: it is a voter that is not leading and has
/// heard nothing from a leader for its current election timeout.
pub fn campaign_due(
    state: ServerState,
    is_voter: bool,
    since_contact: Duration,
    timeout: Duration,
) -> bool {
    is_voter
        && matches!(state, ServerState::Follower | ServerState::Candidate)
        && since_contact >= timeout
}

/// Whether `granted` pre-votes (the candidate's own included) out of `voters` are a majority.
pub fn majority(granted: usize, voters: usize) -> bool {
    voters > 0 && granted * 2 > voters
}

/// When this member last heard from a leader: touched by the Raft service when an
/// AppendEntries or snapshot from the current leader arrives (and by the election task while
/// this member leads). It also keeps the length of the last silence it ended, so that a
/// member can tell a leader that went quiet (a crash) from one that handed over.
#[derive(Debug)]
pub struct Contact {
    last: Mutex<(Instant, Duration)>,
}

impl Contact {
    pub fn new() -> Self {
        Self {
            last: Mutex::new((Instant::now(), Duration::ZERO)),
        }
    }

    pub fn touch_at(&self, at: Instant) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if at > last.0 {
            *last = (at, at - last.0);
        }
    }

    /// Time since the last contact.
    pub fn since(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .elapsed()
    }

    /// The longer of the current silence and the one the last contact ended.
    pub fn silence(&self) -> Duration {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.0.elapsed().max(last.1)
    }
}

impl Default for Contact {
    fn default() -> Self {
        Self::new()
    }
}

/// The election side of one member: its timing, when it last heard from a leader, and how to
/// read its last log id.
#[derive(Clone)]
pub struct Elections {
    pub(crate) id: MemberId,
    pub(crate) raft: Raft,
    pub(crate) timing: Timing,
    pub(crate) contact: Arc<Contact>,
    pub(crate) log: LogStore,
}

impl Elections {
    /// This member's answer to a pre-vote.
    pub(crate) async fn answer_prevote(&self, req: &PreVoteRequest) -> PreVoteResponse {
        let is_leader = self.raft.metrics().borrow().state == ServerState::Leader;
        let last_log_id = match self.log.last_log_id() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot read the last log id for a pre-vote");
                return PreVoteResponse { granted: false };
            }
        };
        let view = VoterView {
            is_leader,
            since_contact: self.contact.since(),
            last_log_id,
        };
        let granted = prevote_granted(&view, self.timing.lease, req);
        debug!(
            candidate = req.candidate,
            granted,
            since_contact_ms = view.since_contact.as_millis() as u64,
            "pre-vote"
        );
        PreVoteResponse { granted }
    }

    /// Runs until Raft shuts down: heartbeats while leading, pre-vote and campaign when the
    /// leader goes quiet.
    pub(crate) async fn run(self, endpoint: Endpoint) {
        let mut metrics = self.raft.metrics();
        let mut timeout = self.random_timeout();
        // A round of pre-votes restarts the wait without touching `contact`, which is what
        // this member answers other candidates by.
        let mut round_start = Instant::now();
        let mut next_heartbeat = Instant::now();
        let tick = (self.timing.heartbeat / 5).max(Duration::from_millis(2));
        loop {
            let m = metrics.borrow_and_update().clone();
            if m.state == ServerState::Shutdown || m.running_state.is_err() {
                return;
            }
            let now = Instant::now();
            if m.state == ServerState::Leader {
                self.contact.touch_at(now);
                if now >= next_heartbeat {
                    if self.raft.trigger().heartbeat().await.is_err() {
                        return;
                    }
                    next_heartbeat = now + self.timing.heartbeat;
                }
            } else {
                next_heartbeat = now;
                let is_voter = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == self.id);
                let silent = self.contact.since().min(round_start.elapsed());
                if campaign_due(m.state, is_voter, silent, timeout) {
                    let voters: Vec<MemberId> =
                        m.membership_config.membership().voter_ids().collect();
                    if self.prevote(&endpoint, &m, &voters).await {
                        info!(
                            term = m.current_term,
                            "leader silent and a majority agrees: campaigning"
                        );
                        if self.raft.trigger().elect().await.is_err() {
                            return;
                        }
                    }
                    // Whatever happened, wait a fresh random timeout before the next round.
                    round_start = Instant::now();
                    timeout = self.random_timeout();
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                r = metrics.changed() => if r.is_err() { return },
            }
        }
    }

    fn random_timeout(&self) -> Duration {
        let (lo, hi) = self.timing.election;
        rand::thread_rng().gen_range(lo..hi)
    }

    /// Asks every other voter for a pre-vote; true once a majority (this member included)
    /// grants.
    async fn prevote(
        &self,
        endpoint: &Endpoint,
        m: &openraft::RaftMetrics<MemberId, crate::raft_types::Member>,
        voters: &[MemberId],
    ) -> bool {
        let last_log_id = match self.log.last_log_id() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot read the last log id for a pre-vote");
                return false;
            }
        };
        let req = PreVoteRequest {
            candidate: self.id,
            last_log_id,
        };
        let mut granted = 1;
        if majority(granted, voters.len()) {
            return true;
        }
        let mut asks = futures::stream::FuturesUnordered::new();
        for id in voters.iter().copied().filter(|v| *v != self.id) {
            let Some(node) = m.membership_config.membership().get_node(&id) else {
                continue;
            };
            let Ok(addr) = node.addr.parse() else {
                continue;
            };
            let peer = endpoint.peer(&node.name, addr, ExpectedPeer::member(&node.name));
            let req = req.clone();
            let ttl = self.timing.election.0;
            asks.push(async move {
                peer.call_with_timeout::<_, PreVoteResponse>(METHOD_PREVOTE, &req, ttl)
                    .await
                    .map(|r| r.granted)
                    .unwrap_or(false)
            });
        }
        use futures::StreamExt;
        while let Some(yes) = asks.next().await {
            if yes {
                granted += 1;
                if majority(granted, voters.len()) {
                    return true;
                }
            }
        }
        debug!(granted, voters = voters.len(), "pre-vote lost");
        false
    }

    /// Hands leadership to the most up-to-date voter before this leader stops: new writes
    /// are held (see `Proposer::pause`), the successor catches up, is told to campaign at once
    /// and wins with this member's vote. Returns the successor once it leads, or `None` if this
    /// member does not lead, has no peer to hand over to, or the handover did not finish within
    /// `within` (the cluster then elects a leader as after a crash).
    pub(crate) async fn transfer(&self, endpoint: &Endpoint, within: Duration) -> Option<MemberId> {
        let deadline = Instant::now() + within;
        let mut metrics = self.raft.metrics();
        loop {
            let m = metrics.borrow_and_update().clone();
            if m.state != ServerState::Leader {
                return None;
            }
            let last = m.last_log_index;
            let voters: Vec<MemberId> = m
                .membership_config
                .membership()
                .voter_ids()
                .filter(|v| *v != self.id)
                .collect();
            if voters.is_empty() {
                return None;
            }
            let repl = m.replication.clone().unwrap_or_default();
            let best = voters
                .iter()
                .copied()
                .max_by_key(|v| repl.get(v).cloned().flatten().map(|l| l.index));
            let caught_up =
                best.filter(|b| repl.get(b).cloned().flatten().map(|l| l.index) >= last);
            if let Some(target) = caught_up {
                let node = m
                    .membership_config
                    .membership()
                    .get_node(&target)
                    .cloned()?;
                let Ok(addr) = node.addr.parse() else {
                    return None;
                };
                let peer = endpoint.peer(&node.name, addr, ExpectedPeer::member(&node.name));
                info!(successor = %node.name, last_log_index = ?last, "handing leadership over");
                let asked: Result<bool, _> = peer
                    .call_with_timeout(METHOD_TIMEOUT_NOW, &(), self.timing.append_deadline)
                    .await;
                if !matches!(asked, Ok(true)) {
                    warn!(successor = %node.name, ?asked, "successor did not campaign");
                }
                // Wait for this member to learn of the new leader (its vote request).
                loop {
                    let m = metrics.borrow_and_update().clone();
                    if m.state != ServerState::Leader {
                        return m.current_leader.filter(|l| *l != self.id).or(Some(target));
                    }
                    if tokio::time::timeout_at(deadline, metrics.changed())
                        .await
                        .is_err()
                    {
                        warn!("leadership handover timed out");
                        return None;
                    }
                }
            }
            // Not caught up yet: nudge replication and wait for the follower's progress.
            let _ = self.raft.trigger().heartbeat().await;
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    warn!("no follower caught up in time for a leadership handover");
                    return None;
                }
            }
        }
    }

    /// On the successor: campaign now, without waiting for an election timeout or a pre-vote
    /// (the leader asked, so it will vote for us).
    pub(crate) async fn timeout_now(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let is_voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id);
        if !is_voter || m.state == ServerState::Leader {
            return false;
        }
        info!(
            term = m.current_term,
            "asked by the leader to take over: campaigning"
        );
        self.raft.trigger().elect().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn default_timing_is_valid_and_fast() {
        let t = Timing::default();
        t.validate().unwrap();
        assert_eq!(t.heartbeat, ms(50));
        assert_eq!(t.election, (ms(150), ms(250)));
        assert_eq!(t.lease, ms(120));
        assert!(t.append_deadline >= Duration::from_secs(1));
        // Slow heartbeats keep a deadline at least four heartbeats long.
        assert_eq!(Timing::from_heartbeat(ms(500)).append_deadline, ms(2000));
        assert!(Timing::from_heartbeat(ms(500)).validate().is_ok());
    }

    #[test]
    fn invalid_timing_is_refused() {
        let short_lease = Timing {
            lease: ms(60),
            ..Timing::default()
        };
        assert!(short_lease.validate().is_err());
        let early_election = Timing {
            election: (ms(120), ms(300)),
            ..Timing::default()
        };
        assert!(early_election.validate().is_err());
        let no_range = Timing {
            election: (ms(200), ms(200)),
            ..Timing::default()
        };
        assert!(no_range.validate().is_err());
    }

    #[test]
    fn a_voter_that_hears_its_leader_refuses() {
        let req = PreVoteRequest {
            candidate: 2,
            last_log_id: log(3, 10),
        };
        let lease = ms(120);
        let fresh = VoterView {
            is_leader: false,
            since_contact: ms(40),
            last_log_id: log(3, 10),
        };
        assert!(!prevote_granted(&fresh, lease, &req));
        // Just past the lease but inside the margin: openraft's lease may still hold.
        let edge = VoterView {
            since_contact: ms(125),
            ..fresh
        };
        assert!(!prevote_granted(&edge, lease, &req));
        let silent = VoterView {
            since_contact: ms(200),
            ..fresh
        };
        assert!(prevote_granted(&silent, lease, &req));
        // A leader never grants: the candidate can reach it, so the leader is alive.
        let leader = VoterView {
            is_leader: true,
            ..silent
        };
        assert!(!prevote_granted(&leader, lease, &req));
    }

    #[test]
    fn a_candidate_behind_is_refused() {
        let lease = ms(120);
        let voter = VoterView {
            is_leader: false,
            since_contact: ms(500),
            last_log_id: log(3, 10),
        };
        let behind = PreVoteRequest {
            candidate: 2,
            last_log_id: log(3, 9),
        };
        assert!(!prevote_granted(&voter, lease, &behind));
        // A later term wins over a longer log of an older term.
        let newer_term = PreVoteRequest {
            candidate: 2,
            last_log_id: log(4, 5),
        };
        assert!(prevote_granted(&voter, lease, &newer_term));
        let empty = PreVoteRequest {
            candidate: 2,
            last_log_id: None,
        };
        assert!(!prevote_granted(&voter, lease, &empty));
    }

    #[test]
    fn campaigns_only_as_a_silent_voter() {
        let t = ms(150);
        assert!(campaign_due(ServerState::Follower, true, ms(151), t));
        assert!(campaign_due(ServerState::Candidate, true, ms(150), t));
        assert!(!campaign_due(ServerState::Follower, true, ms(149), t));
        assert!(!campaign_due(ServerState::Leader, true, ms(1000), t));
        assert!(!campaign_due(ServerState::Learner, false, ms(1000), t));
        assert!(!campaign_due(ServerState::Follower, false, ms(1000), t));
    }

    #[test]
    fn majorities() {
        assert!(majority(1, 1));
        assert!(!majority(1, 2));
        assert!(majority(2, 3));
        assert!(!majority(2, 4));
        assert!(majority(3, 5));
        assert!(!majority(0, 0));
    }

    #[test]
    fn contact_only_moves_forward_and_remembers_the_last_silence() {
        let c = Contact::new();
        let start = Instant::now();
        c.touch_at(start - ms(1000));
        assert!(c.since() < ms(1000));
        c.touch_at(start + ms(300));
        assert!(c.silence() >= ms(300), "the silence the contact ended");
        c.touch_at(start + ms(310));
        assert!(c.silence() < ms(300));
    }
}
