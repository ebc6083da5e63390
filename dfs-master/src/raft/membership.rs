//! The group's membership as operators see and change it: `dfs masters` (each member's
//! role, log position, lag and last contact), adding and removing members through openraft's
//! membership changes, and handing the leadership to another voter.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dfs_proto::pb;
use dfs_proto::tls::Tls;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};

use crate::error::{Error, Result};
use crate::raft::NodeId;
use crate::raft::node::Node;

impl Node {
    /// The group as this member sees it, for `dfs masters`.
    pub fn status(&self) -> pb::MastersReply {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let leader_id = metrics.current_leader.unwrap_or(0);
        let leader_last = metrics.last_log_index.unwrap_or(0);
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let mut status = pb::MasterStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    ..Default::default()
                };
                if *id == self.id {
                    status.role = role_of(metrics.state) as i32;
                    status.term = metrics.current_term;
                    status.last_log_index = metrics.last_log_index.unwrap_or(0);
                    status.applied_index = metrics.last_applied.map_or(0, |l| l.index);
                    if *id == leader_id {
                        status.last_contact_ms = Some(0);
                    }
                } else if let Some(replication) = &metrics.replication {
                    // The leader knows how far each member's log matches its own.
                    let matched = replication
                        .get(id)
                        .copied()
                        .flatten()
                        .map_or(0, |l| l.index);
                    status.role = if voters.contains(id) {
                        pb::MasterRole::Follower
                    } else {
                        pb::MasterRole::Learner
                    } as i32;
                    status.term = metrics.current_term;
                    status.last_log_index = matched;
                    status.lag = leader_last.saturating_sub(matched);
                    status.last_contact_ms = self
                        .contacts
                        .since(*id)
                        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
                } else {
                    status.role = if *id == leader_id {
                        pb::MasterRole::Leader
                    } else {
                        pb::MasterRole::Unknown
                    } as i32;
                }
                status
            })
            .collect();
        pb::MastersReply {
            answered_by: self.id,
            leader_id,
            term: metrics.current_term,
            members,
        }
    }

    /// Adds the master at `addr` with node id `id` to the group: a learner first, which
    /// receives the log (or a snapshot), then a voter once it has caught up.
    pub async fn add_member(&self, id: NodeId, addr: String) -> Result<()> {
        let raft = self.raft.clone();
        let node = BasicNode::new(addr);
        let added = self
            .raft_handle
            .spawn(async move {
                raft.add_learner(id, node, true).await?;
                let voters = BTreeSet::from([id]);
                raft.change_membership(ChangeMembers::AddVoterIds(voters), false)
                    .await
            })
            .await?;
        added.map(drop).map_err(|e| self.membership_error(e))
    }

    /// Removes member `id` from the group.
    pub async fn remove_member(&self, id: NodeId) -> Result<()> {
        let raft = self.raft.clone();
        let removed = self
            .raft_handle
            .spawn(async move {
                let voters = BTreeSet::from([id]);
                raft.change_membership(ChangeMembers::RemoveVoters(voters), false)
                    .await?;
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await
            })
            .await?;
        removed.map(drop).map_err(|e| self.membership_error(e))
    }

    /// Hands the leadership to voter `to`. openraft 0.9 has no transfer of its own, so this
    /// leader stops its heartbeats, which lets the followers' lease on it run out, and asks
    /// `to` to stand for election the moment it has: `to` is then the first candidate the
    /// others may vote for. Returns once this member no longer leads (another follower may win
    /// the race; `dfs masters` shows who did).
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<()> {
        let metrics = self.raft.metrics().borrow().clone();
        let target = metrics
            .membership_config
            .membership()
            .get_node(&to)
            .cloned()
            .filter(|_| metrics.membership_config.voter_ids().any(|v| v == to));
        let Some(target) = target.filter(|_| to != self.id) else {
            return Err(Error::Config(format!(
                "master {to} is not another voter of the group"
            )));
        };
        let caught_up = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&to).copied().flatten());
        if caught_up.map(|l| l.index) != metrics.last_log_index {
            return Err(Error::Config(format!(
                "master {to} has not caught up with the log yet; try again in a moment"
            )));
        }
        // The followers' lease runs out one maximal election timeout after the last heartbeat.
        let lease = Duration::from_millis(self.config.election_timeout_ms * 2 + 50);
        self.transferring.store(true, Ordering::Release);
        self.raft.runtime_config().heartbeat(false);
        let asked = ask_to_elect(&target.addr, self.tls(), lease).await;
        let deadline = Instant::now() + lease * 3;
        let mut stepped_down = false;
        while asked.is_ok() && Instant::now() < deadline {
            let metrics = self.raft.metrics().borrow().clone();
            if metrics.current_leader.is_some_and(|l| l != self.id) {
                stepped_down = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.raft.runtime_config().heartbeat(true);
        self.transferring.store(false, Ordering::Release);
        asked?;
        if stepped_down {
            Ok(())
        } else {
            Err(Error::Raft(
                "no other master took over in time; this one still leads".into(),
            ))
        }
    }

    fn membership_error(
        &self,
        err: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    ) -> Error {
        match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => self.not_leader(),
            other => Error::Config(format!("membership change refused: {other}")),
        }
    }
}

/// The wire role of a member in `state`.
fn role_of(state: ServerState) -> pb::MasterRole {
    match state {
        ServerState::Leader => pb::MasterRole::Leader,
        ServerState::Follower => pb::MasterRole::Follower,
        ServerState::Candidate => pb::MasterRole::Candidate,
        ServerState::Learner => pb::MasterRole::Learner,
        ServerState::Shutdown => pb::MasterRole::Unknown,
    }
}

/// Asks the master at `addr` to stand for election after `delay`.
async fn ask_to_elect(addr: &str, tls: Option<&Tls>, delay: Duration) -> Result<()> {
    let unreachable = |e: &dyn std::fmt::Display| {
        Error::Raft(format!(
            "cannot reach master {addr} to hand it the leadership: {e}"
        ))
    };
    let endpoint = dfs_proto::tls::endpoint(addr, tls)
        .map_err(|e| unreachable(&e))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    pb::raft_client::RaftClient::new(channel)
        .start_election(pb::StartElectionRequest { delay_ms })
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(())
}
