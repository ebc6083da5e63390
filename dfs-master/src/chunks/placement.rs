//! Placement: which chunkservers get the replicas of a new chunk.
//!
//! Replicas go to distinct servers, on distinct racks while unused racks remain (an empty
//! rack label means "not configured" and counts as one rack), chosen at random weighted by
//! free space so that emptier servers fill up faster. Servers without room for a whole chunk
//! are never chosen. The choice is a pure function of the candidates, the policy and a seed the
//! caller passes in: tests can check it, and a replicated master can decide placement before it
//! applies (and replicates) the allocation.

use std::collections::HashSet;

use dfs_proto::FsError;

/// A live chunkserver that could hold a new replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The server's id.
    pub server_id: u64,
    /// Free bytes the server reported in its last heartbeat.
    pub free_bytes: u64,
    /// The server's rack label (empty when racks are not configured).
    pub rack: String,
}

/// How many replicas a chunk wants and needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementPolicy {
    /// Replicas to aim for.
    pub replication: usize,
    /// Fewest replicas an allocation accepts; with fewer eligible servers it fails.
    pub min_replication: usize,
    /// Bytes a server needs free to be eligible.
    pub chunk_size: u64,
}

/// Chooses the servers for a new chunk's replicas, in write-chain order: up to
/// `policy.replication` distinct eligible candidates, or `ENOSPC` if fewer than
/// `policy.min_replication` servers are eligible.
pub fn choose_replicas(
    candidates: &[Candidate],
    policy: &PlacementPolicy,
    seed: u64,
) -> Result<Vec<u64>, FsError> {
    let mut pool = eligible(candidates, policy);
    if pool.len() < policy.min_replication.max(1) {
        return Err(FsError::NoSpace);
    }

    let mut rng = SplitMix64(seed);
    let mut used_racks: HashSet<&str> = HashSet::new();
    let mut chosen = Vec::with_capacity(policy.replication);
    while chosen.len() < policy.replication && !pool.is_empty() {
        let pick = pick_one(&pool, |rack| used_racks.contains(rack), &mut rng);
        let server = pool.remove(pick);
        used_racks.insert(server.rack.as_str());
        chosen.push(server.server_id);
    }
    Ok(chosen)
}

/// Chooses the server for one more replica of an existing chunk (re-replication): an
/// eligible candidate on a rack not in `used_racks` if there is one, weighted by free space.
/// The caller leaves servers that already hold the chunk out of `candidates`.
pub fn choose_extra_replica(
    candidates: &[Candidate],
    used_racks: &[&str],
    policy: &PlacementPolicy,
    seed: u64,
) -> Option<u64> {
    let pool = eligible(candidates, policy);
    if pool.is_empty() {
        return None;
    }
    let pick = pick_one(
        &pool,
        |rack| used_racks.contains(&rack),
        &mut SplitMix64(seed),
    );
    Some(pool[pick].server_id)
}

/// The candidates with room for a whole chunk, each once, ordered by id: sorting makes the
/// result independent of the order the registry listed servers in, and dedup guarantees
/// distinct servers even if a caller listed one twice.
fn eligible<'a>(candidates: &'a [Candidate], policy: &PlacementPolicy) -> Vec<&'a Candidate> {
    let mut pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.free_bytes >= policy.chunk_size.max(1))
        .collect();
    pool.sort_by_key(|c| c.server_id);
    pool.dedup_by_key(|c| c.server_id);
    pool
}

/// Picks one index of `pool`, weighted by free space, among the servers on a rack not yet
/// `used` if there is any, else among all.
fn pick_one(pool: &[&Candidate], used: impl Fn(&str) -> bool, rng: &mut SplitMix64) -> usize {
    let on_new_rack: Vec<usize> = (0..pool.len())
        .filter(|&i| !used(pool[i].rack.as_str()))
        .collect();
    let group = if on_new_rack.is_empty() {
        (0..pool.len()).collect()
    } else {
        on_new_rack
    };
    weighted_pick(&group, |i| pool[i].free_bytes, rng)
}

/// Picks one index of `group` with probability proportional to `weight(index)`.
fn weighted_pick(group: &[usize], weight: impl Fn(usize) -> u64, rng: &mut SplitMix64) -> usize {
    let total: u128 = group.iter().map(|&i| u128::from(weight(i))).sum();
    let mut target = u128::from(rng.next()) % total.max(1);
    for &i in group {
        let w = u128::from(weight(i));
        if target < w {
            return i;
        }
        target -= w;
    }
    group[group.len() - 1]
}

/// SplitMix64: a tiny, well-distributed deterministic generator (Steele et al., 2014); ample
/// for spreading replicas, and it spares the build a random-number crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(server_id: u64, free_bytes: u64, rack: &str) -> Candidate {
        Candidate {
            server_id,
            free_bytes,
            rack: rack.into(),
        }
    }

    const POLICY: PlacementPolicy = PlacementPolicy {
        replication: 3,
        min_replication: 1,
        chunk_size: 64,
    };

    #[test]
    fn replicas_are_distinct_and_deterministic() {
        let servers: Vec<_> = (1..=5).map(|id| server(id, 1000 * id, "")).collect();
        for seed in 0..200 {
            let chosen = choose_replicas(&servers, &POLICY, seed).unwrap();
            assert_eq!(chosen.len(), 3);
            let distinct: HashSet<_> = chosen.iter().collect();
            assert_eq!(distinct.len(), 3, "seed {seed}: {chosen:?}");
            assert_eq!(chosen, choose_replicas(&servers, &POLICY, seed).unwrap());
        }
        // The same servers listed in another order (and twice) give the same choice.
        let mut shuffled = servers.clone();
        shuffled.reverse();
        shuffled.push(servers[0].clone());
        assert_eq!(
            choose_replicas(&servers, &POLICY, 7).unwrap(),
            choose_replicas(&shuffled, &POLICY, 7).unwrap()
        );
    }

    #[test]
    fn full_servers_are_skipped_and_too_few_is_enospc() {
        let servers = vec![server(1, 10, ""), server(2, 1000, ""), server(3, 63, "")];
        assert_eq!(choose_replicas(&servers, &POLICY, 1).unwrap(), vec![2]);
        let strict = PlacementPolicy {
            min_replication: 2,
            ..POLICY
        };
        assert_eq!(choose_replicas(&servers, &strict, 1), Err(FsError::NoSpace));
        assert_eq!(choose_replicas(&[], &POLICY, 1), Err(FsError::NoSpace));
    }

    #[test]
    fn weighted_by_free_space() {
        let servers = vec![server(1, 100, ""), server(2, 900, "")];
        let one = PlacementPolicy {
            replication: 1,
            ..POLICY
        };
        let firsts = (0..1000)
            .filter(|&seed| choose_replicas(&servers, &one, seed).unwrap() == vec![2])
            .count();
        assert!(
            (820..=970).contains(&firsts),
            "server 2 chosen {firsts}/1000 times"
        );
    }

    #[test]
    fn an_extra_replica_goes_to_an_unused_rack() {
        let servers = vec![server(1, 1000, "a"), server(2, 100, "b"), server(3, 10, "")];
        for seed in 0..50 {
            let extra = choose_extra_replica(&servers, &["a", ""], &POLICY, seed);
            assert_eq!(extra, Some(2), "seed {seed}");
        }
        assert_eq!(choose_extra_replica(&servers[2..], &[], &POLICY, 1), None);
    }

    #[test]
    fn racks_are_spread_before_reused() {
        let servers = vec![
            server(1, 1000, "a"),
            server(2, 1000, "a"),
            server(3, 1000, "a"),
            server(4, 100, "b"),
        ];
        for seed in 0..50 {
            let chosen = choose_replicas(&servers, &POLICY, seed).unwrap();
            assert!(
                chosen.contains(&4),
                "seed {seed}: rack b unused in {chosen:?}"
            );
        }
    }
}
