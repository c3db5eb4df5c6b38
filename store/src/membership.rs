//! Dynamic membership: the member list with each member's role and progress; adding a learner
//! (an admin pre-registering one, or a master joining with the server token); promoting a
//! caught-up learner to voter; removing a member. Every change goes through Raft on the leader
//! (openraft's `change_membership`: joint consensus, then the new configuration), one at a
//! time, and is refused when it would lose quorum. A member that finds itself removed says so
//! and resolves [`Member::removed`], so its binary stops serving; the leader tells a member
//! it removed (`store.member_removed`) so that it checks at once.
//!
//! Ids: a member of `--initial-cluster` has its position; a member added later gets one more
//! than the highest id any membership this member applied has held, so ids of removed members
//! are not handed out again. A member's name and address are in Raft's membership, and every
//! member resolves its peers from there.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use navarch_net::ExpectedPeer;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info};

use crate::client::StoreClient;
use crate::member::Member;
use crate::raft_types::{Member as RaftMember, MemberId};
use crate::StoreError;

/// A learner is caught up (may be promoted) when it holds all but at most this many of the
/// leader's log entries.
pub const CAUGHT_UP_LAG: u64 = 64;

/// How long the leader waits for a voter to answer before counting it unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a member whose latest membership does not hold it (or that knows no leader, or
/// hears nothing from the one it knows) asks its peers whether it was removed.
const REMOVAL_CHECK_EVERY: Duration = Duration::from_secs(2);

/// One member as `navctl member list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: MemberId,
    pub name: String,
    pub peer_addr: String,
    /// A voter (counts for quorum) or a learner (only replicated to).
    pub voter: bool,
    pub leader: bool,
    /// The last log index the leader knows this member holds (the leader: its own last).
    pub matched: Option<u64>,
    /// Within [`CAUGHT_UP_LAG`] entries of the leader's log (only the leader knows).
    pub caught_up: bool,
}

/// The cluster's membership as one member (the leader, unless none is known) sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    pub leader: Option<MemberId>,
    /// The member that answered.
    pub answered_by: MemberId,
    pub last_log_index: u64,
    /// The log index of this membership, and whether it is applied (so committed) there.
    pub membership_index: Option<u64>,
    pub committed: bool,
    /// Two voter sets while a change is under way (joint consensus).
    pub joint: bool,
    pub members: Vec<MemberInfo>,
}

impl MemberList {
    pub fn by_name(&self, name: &str) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// Body of the `store.member_*` methods that name a member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberRequest {
    pub name: String,
    /// The member's QUIC address (add and join only).
    pub peer_addr: Option<String>,
}

type ChangeError = RaftError<MemberId, ClientWriteError<MemberId, RaftMember>>;

fn change_error(e: ChangeError) -> StoreError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            StoreError::Unavailable("leadership changed during the membership change".into())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            StoreError::Membership(e.to_string())
        }
        RaftError::Fatal(_) => StoreError::ShuttingDown,
    }
}

fn majority(n: usize) -> usize {
    n / 2 + 1
}

impl Member {
    /// Runs `local` if this member leads, otherwise `remote` with a client of the leader.
    async fn at_leader<T, L, R, RF>(&self, local: L, remote: R) -> Result<T, StoreError>
    where
        L: Future<Output = Result<T, StoreError>>,
        R: FnOnce(StoreClient) -> RF,
        RF: Future<Output = Result<T, StoreError>>,
    {
        let leader = self.wait_leader().await?;
        if leader == self.id {
            local.await
        } else {
            remote(self.leader_client(leader)?).await
        }
    }

    /// Every member with its role and, from the leader's replication, its progress
    /// (answered by the leader).
    pub async fn member_list(&self) -> Result<MemberList, StoreError> {
        self.at_leader(async { Ok(self.local_member_list()) }, |c| async move {
            c.member_list().await
        })
        .await
    }

    /// The membership as this member sees it; progress is known only on the leader.
    pub fn local_member_list(&self) -> MemberList {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let leading = m.state == ServerState::Leader;
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = if *id == self.id && leading {
                    Some(last)
                } else {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(id).copied().flatten())
                        .map(|l| l.index)
                };
                MemberInfo {
                    id: *id,
                    name: node.name.clone(),
                    peer_addr: node.addr.clone(),
                    voter: voters.contains(id),
                    leader: m.current_leader == Some(*id),
                    matched,
                    caught_up: leading && matched.is_some_and(|x| x + CAUGHT_UP_LAG >= last),
                }
            })
            .collect();
        let membership_index = m.membership_config.log_id().map(|l| l.index);
        let applied = m.last_applied.map(|l| l.index);
        MemberList {
            leader: m.current_leader,
            answered_by: self.id,
            last_log_index: last,
            membership_index,
            committed: membership_index.is_some() && applied >= membership_index,
            joint: membership.get_joint_config().len() > 1,
            members,
        }
    }

    /// Whether `name` is a member (voter or learner) in this member's current membership.
    pub fn has_member_named(&self, name: &str) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .any(|(_, n)| n.name == name)
    }

    /// Adds `name` at `peer_addr` as a learner (an admin pre-registering a master); the same
    /// name at the same address again answers the existing member.
    pub async fn member_add(&self, name: &str, peer_addr: &str) -> Result<MemberInfo, StoreError> {
        check_new_member(name, peer_addr)?;
        self.at_leader(self.add_learner_here(name, peer_addr), |c| async move {
            c.member_add(name, peer_addr).await
        })
        .await
    }

    /// A master joining with the server token: adds it as a learner like [`Member::member_add`]
    /// and answers its id (the same id again when it retries).
    pub async fn member_join(&self, name: &str, peer_addr: &str) -> Result<MemberId, StoreError> {
        check_new_member(name, peer_addr)?;
        self.at_leader(
            async { self.add_learner_here(name, peer_addr).await.map(|i| i.id) },
            |c| async move { c.member_join(name, peer_addr).await },
        )
        .await
    }

    /// Makes the learner `name` a voter, if it has caught up and the new voter set has a
    /// reachable majority. A voter already is one: the answer is the list.
    pub async fn member_promote(&self, name: &str) -> Result<MemberList, StoreError> {
        self.at_leader(self.promote_here(name), |c| async move {
            c.member_promote(name).await
        })
        .await
    }

    /// Removes `name` (voter or learner), unless that would lose quorum: the remaining
    /// reachable voters must be a majority of the current and of the new voter set, and
    /// the last voter is never removed.
    pub async fn member_remove(&self, name: &str) -> Result<MemberList, StoreError> {
        self.at_leader(self.remove_here(name), |c| async move {
            c.member_remove(name).await
        })
        .await
    }

    async fn add_learner_here(&self, name: &str, addr: &str) -> Result<MemberInfo, StoreError> {
        let _one_at_a_time = self.membership_lock.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let info = |id: MemberId, voter: bool| MemberInfo {
            id,
            name: name.to_string(),
            peer_addr: addr.to_string(),
            voter,
            leader: id == self.id,
            matched: None,
            caught_up: false,
        };
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        if let Some((id, node)) = membership.nodes().find(|(_, n)| n.name == name) {
            if node.addr == addr {
                return Ok(info(*id, voters.contains(id)));
            }
            return Err(StoreError::Membership(format!(
                "the name {name} is taken by member {id} at {}",
                node.addr
            )));
        }
        if let Some((id, node)) = membership.nodes().find(|(_, n)| n.addr == addr) {
            return Err(StoreError::Membership(format!(
                "the address {addr} is member {id}'s ({})",
                node.name
            )));
        }
        let highest = membership.nodes().map(|(id, _)| *id).max().unwrap_or(0);
        let id = highest.max(self.progress.max_member_id.load(Ordering::SeqCst)) + 1;
        let node = RaftMember {
            name: name.to_string(),
            addr: addr.to_string(),
        };
        self.changing(|| self.raft.add_learner(id, node.clone(), false))
            .await?;
        info!(member = name, id, addr, "added a learner");
        Ok(info(id, false))
    }

    async fn promote_here(&self, name: &str) -> Result<MemberList, StoreError> {
        let _one_at_a_time = self.membership_lock.lock().await;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let id = find(membership.nodes(), name)?;
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        if voters.contains(&id) {
            return Ok(self.local_member_list());
        }
        let last = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).copied().flatten())
            .map(|l| l.index);
        if matched.is_none_or(|x| x + CAUGHT_UP_LAG < last) {
            return Err(StoreError::Membership(format!(
                "{name} is not caught up: it holds {} of the leader's {last} log entries",
                matched.map_or("none".to_string(), |x| x.to_string())
            )));
        }
        let mut new_voters = voters.clone();
        new_voters.insert(id);
        self.check_quorum(&voters, &new_voters).await?;
        self.changing(|| {
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        })
        .await?;
        info!(member = name, id, "promoted a learner to voter");
        Ok(self.local_member_list())
    }

    async fn remove_here(&self, name: &str) -> Result<MemberList, StoreError> {
        let _one_at_a_time = self.membership_lock.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let id = find(membership.nodes(), name)?;
        let node = membership.get_node(&id).cloned();
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            let mut new_voters = voters.clone();
            new_voters.remove(&id);
            if new_voters.is_empty() {
                return Err(StoreError::Membership(format!(
                    "{name} is the last voter: removing it would leave no cluster"
                )));
            }
            self.check_quorum(&voters, &new_voters).await?;
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.changing(|| self.raft.change_membership(change.clone(), false))
            .await?;
        info!(member = name, id, "removed a member");
        if let Some(node) = node.filter(|_| id != self.id) {
            self.tell_removed(node);
        }
        Ok(self.local_member_list())
    }

    /// Runs one membership change with a deadline (its outcome is unknown past it), again
    /// while an earlier change (one not made here: a leader before this one) is finishing.
    async fn changing<T, F>(&self, change: impl Fn() -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, ChangeError>>,
    {
        let limit = self.request_timeout * 2;
        let attempts = async {
            loop {
                match change().await {
                    Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                        ChangeMembershipError::InProgress(e),
                    ))) => {
                        debug!(error = %e, "a membership change is in progress; waiting");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => return other,
                }
            }
        };
        tokio::time::timeout(limit, attempts)
            .await
            .map_err(|_| StoreError::Timeout(limit))?
            .map_err(change_error)
    }

    /// Refuses a change from `old` to `new` voters unless a majority of each is reachable
    /// now (this member, and the others that answer a status call within a second).
    async fn check_quorum(
        &self,
        old: &BTreeSet<MemberId>,
        new: &BTreeSet<MemberId>,
    ) -> Result<(), StoreError> {
        let reachable = self.reachable(old.union(new).copied().collect()).await;
        for (set, which) in [(old, "current"), (new, "new")] {
            let up: Vec<MemberId> = set.intersection(&reachable).copied().collect();
            if up.len() < majority(set.len()) {
                return Err(StoreError::Membership(format!(
                    "the change would lose quorum: {} of the {which} voters [{}] are \
                     reachable ([{}]), {} needed",
                    up.len(),
                    self.names(set.iter().copied()),
                    self.names(up.iter().copied()),
                    majority(set.len())
                )));
            }
        }
        Ok(())
    }

    fn names(&self, ids: impl Iterator<Item = MemberId>) -> String {
        ids.map(|id| self.member_by_id(id).map_or(id.to_string(), |m| m.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The members of `ids` that answer now: this one, and those whose `store.status`
    /// answers within [`PROBE_TIMEOUT`].
    async fn reachable(&self, ids: BTreeSet<MemberId>) -> BTreeSet<MemberId> {
        let probes = ids.into_iter().map(|id| async move {
            if id == self.id {
                return Some(id);
            }
            let node = self.member_by_id(id)?;
            let addr: SocketAddr = node.addr.parse().ok()?;
            let client = StoreClient::new(self.endpoint.peer(
                &node.name,
                addr,
                ExpectedPeer::member(&node.name),
            ))
            .with_timeout(PROBE_TIMEOUT);
            let ok = tokio::time::timeout(PROBE_TIMEOUT, client.status())
                .await
                .is_ok_and(|r| r.is_ok());
            ok.then_some(id)
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Tells a member just removed, best effort, so that it checks its membership now rather
    /// than when it next misses a leader.
    fn tell_removed(&self, node: RaftMember) {
        let Ok(addr) = node.addr.parse::<SocketAddr>() else {
            return;
        };
        let client = StoreClient::new(self.endpoint.peer(
            &node.name,
            addr,
            ExpectedPeer::member(&node.name),
        ))
        .with_timeout(PROBE_TIMEOUT);
        tokio::spawn(async move {
            if let Err(e) = client.member_removed().await {
                debug!(member = %node.name, error = %e, "the removed member was not told");
            }
        });
    }

    /// The leader says it removed this member: check the membership now.
    pub(crate) fn recheck_membership(&self) {
        self.recheck.notify_one();
    }

    /// Whether this member has been removed from the cluster.
    pub fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }

    /// Resolves once this member finds it was removed from the cluster: the binary stops
    /// serving then.
    pub async fn removed(&self) {
        let mut rx = self.removed.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    fn mark_removed(&self) {
        error!(member = %self.name, id = self.id, "this member was removed from the cluster");
        self.removed.send_replace(true);
    }

    /// Asks the other members of this member's latest membership for the cluster's list: the
    /// first answer with a committed membership decides.
    async fn confirmed_removed(&self) -> bool {
        let peers: Vec<RaftMember> = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.id)
                .map(|(_, n)| n.clone())
                .collect()
        };
        for node in peers {
            let Ok(addr) = node.addr.parse::<SocketAddr>() else {
                continue;
            };
            let client = StoreClient::new(self.endpoint.peer(
                &node.name,
                addr,
                ExpectedPeer::member(&node.name),
            ))
            .with_timeout(Duration::from_secs(3));
            match client.member_list().await {
                Ok(list) if list.committed => {
                    return !list.members.iter().any(|m| m.id == self.id);
                }
                Ok(_) => {}
                Err(e) => debug!(peer = %node.name, error = %e, "membership check failed"),
            }
        }
        false
    }
}

fn find<'a>(
    mut nodes: impl Iterator<Item = (&'a MemberId, &'a RaftMember)>,
    name: &str,
) -> Result<MemberId, StoreError> {
    nodes
        .find(|(_, n)| n.name == name)
        .map(|(id, _)| *id)
        .ok_or_else(|| StoreError::Membership(format!("no member is named {name}")))
}

fn check_new_member(name: &str, peer_addr: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_control()) {
        return Err(StoreError::InvalidKey(format!(
            "invalid member name {name:?}"
        )));
    }
    peer_addr.parse::<SocketAddr>().map_err(|e| {
        StoreError::InvalidKey(format!("peer address {peer_addr:?} is not ip:port: {e}"))
    })?;
    Ok(())
}

/// Watches this member's membership: once the cluster's committed membership no longer
/// holds it, it is marked removed. Evidence is checked locally when the member has applied
/// a membership without itself after being in one; otherwise (a learner still catching up
/// replays memberships from before it joined, a removed member may never hear of its
/// removal) its peers are asked, at most every [`REMOVAL_CHECK_EVERY`].
pub(crate) async fn watch_removal(member: Weak<Member>, recheck: Arc<tokio::sync::Notify>) {
    let Some(mut rx) = member.upgrade().map(|m| m.raft.metrics()) else {
        return;
    };
    let mut seen_self = false;
    let mut last_check: Option<Instant> = None;
    let mut tick = tokio::time::interval(REMOVAL_CHECK_EVERY);
    loop {
        let told = tokio::select! {
            changed = rx.changed() => if changed.is_err() { return } else { false },
            _ = tick.tick() => false,
            _ = recheck.notified() => true,
        };
        let Some(m) = member.upgrade() else {
            return;
        };
        if m.is_removed() {
            return;
        }
        // Read what is needed under the borrow: metrics change on every append.
        let (at, holds_me, leader_known, applied) = {
            let metrics = rx.borrow_and_update();
            let stored = &metrics.membership_config;
            (
                stored.log_id().map(|l| l.index),
                stored.membership().get_node(&m.id).is_some(),
                metrics.current_leader.is_some(),
                metrics.last_applied.map_or(0, |l| l.index),
            )
        };
        let Some(at) = at else {
            continue;
        };
        if holds_me {
            seen_self = true;
            // A leader this member still hears from would have told it; a removed member
            // keeps its old view of the leader but hears from nobody.
            let hears_leader = m.elections.contact.since() < m.elections.timing.election.1;
            if leader_known && hears_leader && !told {
                continue;
            }
        }
        if !holds_me && seen_self && at <= applied {
            m.mark_removed();
            return;
        }
        if !told && last_check.is_some_and(|t| t.elapsed() < REMOVAL_CHECK_EVERY) {
            continue;
        }
        last_check = Some(Instant::now());
        if m.confirmed_removed().await {
            m.mark_removed();
            return;
        }
    }
}

/// A joined member asks its leader to make it a voter until it is one (the leader refuses
/// while it is still catching up).
pub(crate) async fn promote_when_caught_up(member: Weak<Member>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(m) = member.upgrade() else {
            return;
        };
        if m.is_removed() {
            return;
        }
        let voter = m
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == m.id);
        if voter {
            debug!(member = %m.name, "a voter");
            return;
        }
        match m.member_promote(&m.name).await {
            Ok(_) => {
                info!(member = %m.name, id = m.id, "promoted to voter");
                return;
            }
            Err(e) => debug!(member = %m.name, error = %e, "not promoted yet"),
        }
        drop(m);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
