//! Balancing: when disk usage across the active chunkservers differs by more than a
//! configured spread (an empty server joined, say), replicas move from the fullest server to
//! the emptiest, a few at a time.
//!
//! A move is an ordinary re-replication copy to the emptiest server; once it is reported, the chunk
//! has one replica too many, and the replication check trims the surplus replica from the fullest
//! server (see [`replication`](crate::cluster::replication)). Balancing only runs while nothing is
//! under-replicated or being copied, so repairs always come first; and each round plans only as
//! many moves as half the usage gap allows, so it converges instead of overshooting.

use std::collections::HashMap;

use crate::chunks::Chunk;
use crate::cluster::registry::{ServerState, ServerView};

/// One planned move: copy `chunk_id` from `source` (which will lose it) to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The chunk to move.
    pub chunk_id: u64,
    /// Its version, which the copy must carry.
    pub version: u64,
    /// The full server holding it.
    pub source: u64,
    /// The empty server receiving it.
    pub target: u64,
}

/// Fraction of a server's capacity in use, or `None` if it reported no capacity.
fn usage(view: &ServerView) -> Option<f64> {
    (view.capacity_bytes > 0)
        .then(|| 1.0 - view.free_bytes.min(view.capacity_bytes) as f64 / view.capacity_bytes as f64)
}

/// The moves that bring the fullest and the emptiest active server closer, at most
/// `max_moves` of them, or none when their usage differs by `spread` (a fraction) or less.
/// `chunks` are the chunks to choose from; `chunk_size` estimates what one move shifts.
pub fn plan_moves<'a>(
    servers: &[ServerView],
    chunks: impl IntoIterator<Item = &'a Chunk>,
    spread: f64,
    chunk_size: u64,
    max_moves: usize,
) -> Vec<Move> {
    let active: Vec<(&ServerView, f64)> = servers
        .iter()
        .filter(|s| s.state == ServerState::Active)
        .filter_map(|s| usage(s).map(|u| (s, u)))
        .collect();
    let fullest = active.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let emptiest = active.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let (Some(&(full, full_use)), Some(&(empty, empty_use))) = (fullest, emptiest) else {
        return Vec::new();
    };
    if full_use - empty_use <= spread || full.server_id == empty.server_id {
        return Vec::new();
    }
    // Half the gap, in bytes of the smaller server, in chunks: enough to close it from both ends.
    let capacity = full.capacity_bytes.min(empty.capacity_bytes) as f64;
    let gap_chunks = ((full_use - empty_use) / 2.0 * capacity / chunk_size.max(1) as f64) as usize;
    let budget = gap_chunks.clamp(1, max_moves.max(1));
    let racks: HashMap<u64, &str> = servers
        .iter()
        .map(|s| (s.server_id, s.rack.as_str()))
        .collect();
    chunks
        .into_iter()
        .filter(|c| c.replicas.contains(&full.server_id) && !c.replicas.contains(&empty.server_id))
        // Keep racks distinct: the target's rack must not hold another replica already.
        .filter(|c| {
            c.replicas
                .iter()
                .filter(|&&id| id != full.server_id)
                .all(|id| {
                    racks
                        .get(id)
                        .is_none_or(|r| r.is_empty() || *r != empty.rack)
                })
        })
        .take(budget)
        .map(|c| Move {
            chunk_id: c.chunk_id,
            version: c.version,
            source: full.server_id,
            target: empty.server_id,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(server_id: u64, used: u64, rack: &str) -> ServerView {
        ServerView {
            server_id,
            addr: format!("s{server_id}"),
            rack: rack.into(),
            state: ServerState::Active,
            capacity_bytes: 100,
            free_bytes: 100 - used,
            active_transfers: 0,
            since_heartbeat: None,
        }
    }

    fn chunk(chunk_id: u64, replicas: &[u64]) -> Chunk {
        Chunk {
            chunk_id,
            version: 1,
            length: 10,
            replicas: replicas.to_vec(),
            issued_version: 0,
        }
    }

    #[test]
    fn moves_go_from_the_fullest_to_the_emptiest_within_half_the_gap() {
        let servers = [server(1, 60, ""), server(2, 50, ""), server(3, 0, "")];
        let chunks: Vec<_> = (1..=6).map(|id| chunk(id, &[1, 2])).collect();
        // Gap 60 %, half of it is 30 bytes = 3 chunks of 10.
        let moves = plan_moves(&servers, &chunks, 0.1, 10, 8);
        assert_eq!(moves.len(), 3);
        assert!(moves.iter().all(|m| m.source == 1 && m.target == 3));
        // Within the spread: nothing to do.
        let even = [server(1, 50, ""), server(2, 45, "")];
        assert!(plan_moves(&even, &chunks, 0.1, 10, 8).is_empty());
    }

    #[test]
    fn a_move_never_puts_two_replicas_on_one_rack() {
        let servers = [server(1, 80, "a"), server(2, 50, "b"), server(3, 0, "b")];
        let chunks = [chunk(1, &[1, 2]), chunk(2, &[1])];
        let moves = plan_moves(&servers, &chunks, 0.1, 10, 8);
        assert_eq!(
            moves,
            [Move {
                chunk_id: 2,
                version: 1,
                source: 1,
                target: 3
            }]
        );
    }
}
