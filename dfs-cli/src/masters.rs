//! `dfs masters`: the group of masters — every member with its role, term and how far its log
//! is — and changes to it: `add ADDR [--id N]`, `remove ID`, `transfer-leader ID`.
//!
//! Any member answers the listing, leader or not, so it also works while the group has no
//! leader (the member that answered is marked); changes go to the leader.

use std::fmt::Write as _;
use std::time::Duration;

use dfs_client::MasterClient;
use dfs_proto::pb::{self, MasterRole};

use crate::Error;

/// What to do with the group of masters (nothing: list it).
#[derive(Debug, clap::Subcommand)]
pub enum MastersCommand {
    /// Add a master, started with an empty data directory: a learner until it has caught up,
    /// then a voter.
    Add {
        /// Its address, `host:port`, as clients and the other masters reach it.
        addr: String,
        /// Its node id (default: the leader picks the next free one).
        #[arg(long, default_value_t = 0)]
        id: u64,
    },
    /// Remove a master from the group (stop it afterwards).
    Remove {
        /// Its id, as `dfs masters` lists it.
        id: u64,
    },
    /// Hand the leadership to another voter.
    TransferLeader {
        /// The id of the voter to lead, as `dfs masters` lists it.
        id: u64,
    },
}

/// The leader's view of the group if `reply` came from another member that knows the leader:
/// only the leader knows how far each member's log is. Falls back to `reply`.
async fn from_the_leader(master: &MasterClient, reply: pb::MastersReply) -> pb::MastersReply {
    let leader = reply
        .members
        .iter()
        .find(|m| m.id == reply.leader_id && m.id != reply.answered_by);
    let Some(leader) = leader else { return reply };
    let Ok(client) = master.other(&leader.addr, master.timeout()) else {
        return reply;
    };
    client.masters().await.unwrap_or(reply)
}

/// Fills in each other member's applied index, which only that member knows (the leader
/// knows how far each log matches its own, not how far each member has applied it): asks every
/// member at once, each within a short timeout. A member that does not answer keeps 0, which
/// the table shows as unknown.
async fn with_applied_indexes(
    master: &MasterClient,
    mut reply: pb::MastersReply,
) -> pb::MastersReply {
    let timeout = master.timeout().min(Duration::from_secs(2));
    let asks = reply
        .members
        .iter()
        .filter(|m| m.id != reply.answered_by)
        .map(|m| async move {
            let client = master.other(&m.addr, timeout).ok()?;
            let own = client.masters().await.ok()?;
            let row = own
                .members
                .into_iter()
                .find(|row| row.id == own.answered_by)?;
            Some((row.id, row.applied_index))
        });
    for (id, applied) in futures::future::join_all(asks).await.into_iter().flatten() {
        if let Some(member) = reply.members.iter_mut().find(|m| m.id == id) {
            member.applied_index = applied;
        }
    }
    reply
}

/// Runs `dfs masters [ACTION]`: its report.
pub async fn run(master: &MasterClient, action: Option<MastersCommand>) -> Result<String, Error> {
    let (headline, reply) = match action {
        None => {
            let reply = from_the_leader(master, master.masters().await?).await;
            (String::new(), with_applied_indexes(master, reply).await)
        }
        Some(MastersCommand::Add { addr, id }) => {
            let reply = master.add_master(&addr, id).await?;
            let added = reply.members.iter().find(|m| m.addr == addr);
            let headline = match added {
                Some(m) => format!(
                    "added master {} ({addr}) as a {}\n",
                    m.id,
                    role_name(m.role)
                ),
                None => format!("added master {addr}\n"),
            };
            (headline, reply)
        }
        Some(MastersCommand::Remove { id }) => {
            let reply = master.remove_master(id).await?;
            (format!("removed master {id}\n"), reply)
        }
        Some(MastersCommand::TransferLeader { id }) => {
            let reply = master.transfer_leader(id).await?;
            (format!("handed the leadership to master {id}\n"), reply)
        }
    };
    Ok(headline + &format_masters(&reply))
}

/// The name of a master's role as the CLI prints it.
pub fn role_name(role: i32) -> &'static str {
    match MasterRole::try_from(role).unwrap_or(MasterRole::Unspecified) {
        MasterRole::Leader => "leader",
        MasterRole::Follower => "follower",
        MasterRole::Candidate => "candidate",
        MasterRole::Learner => "learner",
        MasterRole::Unknown | MasterRole::Unspecified => "unknown",
    }
}

/// The `dfs masters` report: a summary, then one line per member, `*` marking the leader and
/// `>` the member that answered.
pub fn format_masters(reply: &pb::MastersReply) -> String {
    let id_and_addr = |id: u64| {
        let addr = reply.members.iter().find(|m| m.id == id).map(|m| &m.addr);
        match addr {
            Some(addr) => format!("{id} ({addr})"),
            None => id.to_string(),
        }
    };
    let mut out = String::new();
    let voters = reply.members.iter().filter(|m| m.voter).count();
    let _ = writeln!(out, "masters: {} ({voters} voters)", reply.members.len());
    let leader = match reply.leader_id {
        0 => "none elected".to_string(),
        id => id_and_addr(id),
    };
    let _ = writeln!(out, "leader: {leader}");
    let _ = writeln!(out, "term: {}", reply.term);
    let _ = writeln!(out, "answered by: {}", id_and_addr(reply.answered_by));
    let _ = writeln!(
        out,
        "    {:>4}  {:<22} {:<9} {:<5} {:>6} {:>10} {:>10} {:>8} {:>12}",
        "ID", "ADDR", "ROLE", "VOTER", "TERM", "LAST-LOG", "APPLIED", "LAG", "LAST-CONTACT"
    );
    for m in &reply.members {
        let leads = if m.id == reply.leader_id { '*' } else { ' ' };
        let answered = if m.id == reply.answered_by { '>' } else { ' ' };
        let contact = match m.last_contact_ms {
            Some(ms) => format!("{ms}ms"),
            None => "-".to_string(),
        };
        // Only the member itself knows how far it has applied its log.
        let applied = match m.applied_index {
            0 if m.id != reply.answered_by => "-".to_string(),
            index => index.to_string(),
        };
        let _ = writeln!(
            out,
            "{leads}{answered}  {:>4}  {:<22} {:<9} {:<5} {:>6} {:>10} {:>10} {:>8} {:>12}",
            m.id,
            m.addr,
            role_name(m.role),
            if m.voter { "yes" } else { "no" },
            m.term,
            m.last_log_index,
            applied,
            m.lag,
            contact,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, role: MasterRole, voter: bool, lag: u64) -> pb::MasterStatus {
        pb::MasterStatus {
            id,
            addr: format!("10.0.0.{id}:9400"),
            role: role as i32,
            voter,
            term: 7,
            last_log_index: 1200 - lag,
            applied_index: 1190 - lag,
            lag,
            last_contact_ms: (id != 1).then_some(15 * id),
        }
    }

    #[test]
    fn the_table_marks_the_leader_and_the_member_that_answered() {
        let reply = pb::MastersReply {
            answered_by: 2,
            leader_id: 1,
            term: 7,
            members: vec![
                member(1, MasterRole::Leader, true, 0),
                member(2, MasterRole::Follower, true, 3),
                member(4, MasterRole::Learner, false, 900),
            ],
        };
        let text = format_masters(&reply);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "masters: 3 (2 voters)");
        assert_eq!(lines[1], "leader: 1 (10.0.0.1:9400)");
        assert_eq!(lines[2], "term: 7");
        assert_eq!(lines[3], "answered by: 2 (10.0.0.2:9400)");
        let header: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "ID",
                "ADDR",
                "ROLE",
                "VOTER",
                "TERM",
                "LAST-LOG",
                "APPLIED",
                "LAG",
                "LAST-CONTACT"
            ]
        );
        let row = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert!(lines[5].starts_with("*   "), "{}", lines[5]);
        assert_eq!(
            row(lines[5]),
            [
                "*",
                "1",
                "10.0.0.1:9400",
                "leader",
                "yes",
                "7",
                "1200",
                "1190",
                "0",
                "-"
            ]
        );
        assert!(lines[6].starts_with(" >  "), "{}", lines[6]);
        assert_eq!(
            row(lines[6]),
            [
                ">",
                "2",
                "10.0.0.2:9400",
                "follower",
                "yes",
                "7",
                "1197",
                "1187",
                "3",
                "30ms"
            ]
        );
        assert_eq!(
            row(lines[7]),
            [
                "4",
                "10.0.0.4:9400",
                "learner",
                "no",
                "7",
                "300",
                "290",
                "900",
                "60ms"
            ]
        );
        // Columns line up under the header.
        let column = |line: &str, word: &str| line.find(word).unwrap() + word.len();
        assert_eq!(column(lines[4], "LAG"), column(lines[7], "900"));
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn a_group_without_a_leader_says_so() {
        let reply = pb::MastersReply {
            answered_by: 3,
            leader_id: 0,
            term: 9,
            members: vec![
                member(3, MasterRole::Candidate, true, 0),
                pb::MasterStatus {
                    applied_index: 0,
                    ..member(1, MasterRole::Follower, true, 0)
                },
            ],
        };
        let text = format_masters(&reply);
        assert!(text.contains("leader: none elected\n"), "{text}");
        assert!(text.lines().nth(5).unwrap().starts_with(" >  "), "{text}");
        assert!(text.contains(" candidate "), "{text}");
        let unknown = text.lines().nth(6).unwrap();
        assert_eq!(unknown.split_whitespace().nth(6), Some("-"), "{text}");
    }
}
