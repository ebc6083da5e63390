//! Finding the leader of a group of masters, shared by every component that calls one (mounts,
//! chunkservers, the `dfs` command).
//!
//! Masters form a Raft group; only the leader serves metadata. A member that is not the leader
//! refuses a call with `Unavailable` and, when it knows the leader, names it in the
//! [`LEADER_HINT`] metadata of the refusal ([`not_leader`]). A caller holds the list of masters
//! it was given (`--master a,b,c`, [`parse_list`]), sends to the one it believes leads, and on a
//! refusal or a connection failure moves to the hinted leader or to the next address, waiting
//! [`Backoff`] between full rounds so an election in progress is not hammered.

use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::FsError;

/// Metadata key of a refusal that names the leader (`host:port`).
pub const LEADER_HINT: &str = "dfs-leader";

/// The message of a refusal by a master that is not the leader.
pub const NOT_LEADER: &str = "not the leader";

/// The refusal of a call by a master that is not the leader; `leader` is the leader's address,
/// when this member knows it.
pub fn not_leader(leader: Option<&str>) -> Status {
    let detail = match leader {
        Some(addr) => format!("{NOT_LEADER}; the leader is {addr}"),
        None => format!("{NOT_LEADER}; no leader is elected yet"),
    };
    let status: Status = FsError::Unavailable(detail).into();
    let Some(addr) = leader else { return status };
    let mut metadata = MetadataMap::new();
    if let Ok(value) = addr.parse() {
        metadata.insert(LEADER_HINT, value);
    }
    Status::with_metadata(status.code(), status.message().to_owned(), metadata)
}

/// The leader a refusal names, if any.
pub fn leader_hint(status: &Status) -> Option<String> {
    let value = status.metadata().get(LEADER_HINT)?.to_str().ok()?;
    (!value.is_empty()).then(|| value.to_owned())
}

/// Whether `status` is a refusal by a member that is not the leader (whether or not it names
/// one): the call was not applied and is safe to send to another master.
pub fn is_not_leader(status: &Status) -> bool {
    status.code() == tonic::Code::Unavailable && status.message().contains(NOT_LEADER)
}

/// Parses a list of master addresses, `host:port` separated by commas (spaces allowed), as
/// `--master` and `DFS_MASTER` take it. Duplicates are dropped; an empty list is an error.
pub fn parse_list(list: &str) -> Result<Vec<String>, String> {
    let mut addrs: Vec<String> = Vec::new();
    for addr in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let addr = addr
            .strip_prefix("http://")
            .unwrap_or(addr)
            .trim_end_matches('/');
        if !addr.contains(':') {
            return Err(format!("master address {addr:?} has no port (host:port)"));
        }
        if !addrs.iter().any(|a| a == addr) {
            addrs.push(addr.to_owned());
        }
    }
    if addrs.is_empty() {
        return Err("no master address given".to_owned());
    }
    Ok(addrs)
}

/// Exponential backoff with full jitter between rounds of tries: a caller that has found no
/// leader waits a random time up to `base * 2^round`, capped at `cap`. Jitter keeps many
/// clients that lost the same leader from retrying in lock step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    round: u32,
    state: u64,
}

impl Backoff {
    /// Starts at `base`, never waits more than `cap` at once.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        // Seeded per instance from the clock and the address of a stack value: two callers
        // starting at once draw different waits.
        let marker = 0u8;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (&marker as *const u8 as u64).rotate_left(32);
        Backoff {
            base,
            cap,
            round: 0,
            state: seed | 1,
        }
    }

    /// The defaults for master calls: 20 ms, doubling up to 500 ms (an election takes a few
    /// hundred milliseconds).
    pub fn for_masters() -> Backoff {
        Backoff::new(Duration::from_millis(20), Duration::from_millis(500))
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.round.min(16))
            .min(self.cap);
        self.round = self.round.saturating_add(1);
        // xorshift64*: plenty for spreading retries, no dependency for it.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let draw = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        // At least a tenth of the ceiling, so a retry never spins.
        Duration::from_nanos(nanos / 10 + draw % (nanos - nanos / 10).max(1))
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.round = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_leader_and_is_recognised() {
        let status = not_leader(Some("10.0.0.2:9000"));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(is_not_leader(&status));
        assert_eq!(leader_hint(&status).as_deref(), Some("10.0.0.2:9000"));
        assert!(matches!(
            FsError::from_status(&status),
            FsError::Unavailable(m) if m.contains("10.0.0.2:9000")
        ));

        let unknown = not_leader(None);
        assert!(is_not_leader(&unknown));
        assert_eq!(leader_hint(&unknown), None);
        assert!(!is_not_leader(&Status::unavailable("connection refused")));
    }

    #[test]
    fn lists_of_masters_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_list("a:1, b:2,,a:1,http://c:3/").unwrap(),
            ["a:1", "b:2", "c:3"]
        );
        assert!(parse_list(" , ").unwrap_err().contains("no master"));
        assert!(
            parse_list("a:1,b")
                .unwrap_err()
                .contains("\"b\" has no port")
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        let waits: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(waits[0] >= Duration::from_millis(1) && waits[0] <= Duration::from_millis(10));
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(80)));
        assert!(waits[5..].iter().all(|w| *w >= Duration::from_millis(8)));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(10));
    }
}
