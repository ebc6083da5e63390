//! Finding the leader of a group of masters, shared by every component that calls one (mounts,
//! chunkservers, the `dfs` command).
//!
//! Masters form a Raft group; only the leader serves metadata. A member that is not the leader
//! refuses a call with `Unavailable` and, when it knows the leader, names it in the
//! [`LEADER_HINT`] metadata of the refusal ([`not_leader`]). A caller holds the list of masters
//! it was given (`--master a,b,c`, [`parse_list`]), sends to the one it believes leads, and on a
//! refusal or a connection failure moves to the hinted leader or to the next address, waiting
//! [`Backoff`] between full rounds so an election in progress is not hammered.
//!
//! [`MasterGroup`] is that caller: the mounts, the `dfs` command and the chunkservers all send
//! their master calls through its one retry path ([`MasterGroup::call`]), each with the
//! generated client of the service it needs.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::FsError;

/// Metadata key of a refusal that names the leader (`host:port`).
pub const LEADER_HINT: &str = "dfs-leader";

/// Metadata key of a call's request id: the same on every retry of one call, so that the
/// group applies a retried mutation once (see dfs-master's `service::request_id`).
pub const REQUEST_ID: &str = "dfs-request-id";

/// Names a caller's calls for [`REQUEST_ID`]: a random prefix for the caller (so that two
/// callers, or one restarted, never reuse an id) and a counter.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    next: std::sync::atomic::AtomicU64,
}

impl RequestIds {
    /// Ids with a fresh random prefix.
    pub fn new() -> RequestIds {
        use std::hash::{BuildHasher, RandomState};
        // std's hasher keys are drawn from the OS's random source.
        let prefix =
            RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
        RequestIds {
            prefix,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The id of the next call, as metadata.
    pub fn next(&self) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:016x}-{n:x}", self.prefix)
            .parse()
            .expect("hex digits are valid metadata")
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

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

/// What a caller does after a master failed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failover {
    /// Not the leader: ask the leader it named, or the next master if it named none.
    NotLeader(Option<String>),
    /// No answer from the master (connection refused or reset, timeout): the call may not
    /// have reached it; ask the next one.
    Unreachable,
    /// The master's own answer (ENOENT, EEXIST, its own `Unavailable`...): the caller's.
    Answer,
}

/// How to treat a failed call. A master's answers carry their errno on the wire (see
/// [`FsError::from_status`]); a status without one was made by the transport on this side.
/// Transport statuses that are not about reaching the peer (a message too large to decode, a
/// service the peer does not serve) are answers too: another master would fail them alike.
pub fn failover(status: &Status) -> Failover {
    if is_not_leader(status) {
        return Failover::NotLeader(leader_hint(status));
    }
    if FsError::carries_errno(status) {
        return Failover::Answer;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            Failover::Unreachable
        }
        _ => Failover::Answer,
    }
}

/// The TLS failure behind `status`, if the connection failed in the handshake (a
/// certificate the other side does not trust, or a fatal alert): retrying cannot heal it,
/// so a caller that meets it at every master stops at once rather than at its timeout.
pub fn tls_failure(status: &Status) -> Option<String> {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let text = err.to_string();
        if text.contains("invalid peer certificate") || text.contains("received fatal alert") {
            return Some(text);
        }
        source = err.source();
    }
    None
}

/// The connect timeout of a channel to a master: short next to the call's budget, so a master
/// whose host is down (a connect that is never refused) leaves time to try the others.
pub fn connect_timeout(rpc_timeout: Duration) -> Duration {
    rpc_timeout.min(Duration::from_secs(2))
}

/// Parses a list of master addresses, `host:port` separated by commas (spaces allowed), as
/// `--master` and `DFS_MASTER` take it. Duplicates are dropped; an empty list is an error.
pub fn parse_list(list: &str) -> Result<Vec<String>, String> {
    let mut addrs: Vec<String> = Vec::new();
    for addr in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let addr = normalize(addr);
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

/// An address as lists hold it: `host:port`, without the `http://` a URI form adds.
fn normalize(addr: &str) -> &str {
    addr.strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/')
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

/// Opens a lazily connecting channel to the master at `host:port` (with the caller's
/// timeouts and window sizes), or says why the address is unusable.
pub type Connect = Box<dyn Fn(&str) -> Result<Channel, String> + Send + Sync>;

/// A group of masters as one caller sees it: a lazily connected channel to each and the one it
/// believes leads. Shared by every task of the caller (behind an `Arc`), so that one call that
/// finds the new leader moves all the others there.
pub struct MasterGroup {
    /// A std mutex: held only to read or move the belief, never across an await.
    members: Mutex<Members>,
    connect: Connect,
}

/// The masters known and the belief about them.
struct Members {
    /// Every master known: those given, then leaders that refusals named.
    addrs: Vec<String>,
    channels: Vec<Channel>,
    /// Index of the master believed to lead: every call goes there first.
    leader: usize,
    /// Index of the last master that answered, to log a change of leader once.
    answered: Option<usize>,
    /// When each master last left a call unanswered (a frozen or cut-off leader): for
    /// [`SUSPECT_FOR`] after that, a refusal naming it as the leader is not followed, since
    /// the others name it only until they have elected another.
    silent_since: Vec<Option<Instant>>,
}

/// How long a master that left a call unanswered is not taken for the leader on hearsay.
const SUSPECT_FOR: Duration = Duration::from_secs(5);

/// How long one try at one master of several may take before the call moves on to the
/// next: a quarter of the call's timeout, at least two seconds. A master that does not answer
/// within that (frozen, or cut off after accepting the connection) must not hold the call
/// until its whole timeout is gone while another master could serve it.
fn try_timeout(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_secs(2)).min(timeout)
}

impl std::fmt::Debug for MasterGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members = self.members();
        f.debug_struct("MasterGroup")
            .field("addrs", &members.addrs)
            .field("leader", &members.addrs[members.leader])
            .finish()
    }
}

impl MasterGroup {
    /// A group of the masters in `list` (as [`parse_list`] takes it), each reached through
    /// `connect`; connects to none yet. The first one is believed to lead until a call learns
    /// otherwise.
    pub fn new(list: &str, connect: Connect) -> Result<MasterGroup, String> {
        let addrs = parse_list(list)?;
        let channels = addrs
            .iter()
            .map(|addr| connect(addr))
            .collect::<Result<Vec<_>, _>>()?;
        let members = Members {
            silent_since: vec![None; addrs.len()],
            addrs,
            channels,
            leader: 0,
            answered: None,
        };
        Ok(MasterGroup {
            members: Mutex::new(members),
            connect,
        })
    }

    /// The master believed to lead (`host:port`): the one the next call goes to first.
    pub fn leader_addr(&self) -> String {
        let members = self.members();
        members.addrs[members.leader].clone()
    }

    /// Every master known, in the order they are tried: those given, then those that
    /// refusals named.
    pub fn addrs(&self) -> Vec<String> {
        self.members().addrs.clone()
    }

    /// Sends a call, built by `rpc` from a master's channel, to the leader, following it
    /// through refusals and failures for up to `timeout` in all.
    ///
    /// A refusal by a member that is not the leader goes to the leader it names (added to the
    /// group if it was not in it) or to the next master; a master that cannot be reached is
    /// skipped for the next; after a round of tries without an answer the call waits
    /// [`Backoff`] and goes round again. The first answer of a master, success or error, is
    /// the call's; past `timeout` it fails with [`FsError::Unavailable`].
    pub async fn call<T, F, Fut>(&self, timeout: Duration, mut rpc: F) -> Result<T, FsError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::for_masters();
        let mut tries = 0usize;
        // Tries of this round that failed in the TLS handshake, and the last such failure.
        let mut untrusted = 0usize;
        let mut tls_error = None;
        loop {
            let (index, addr, channel) = self.current();
            let try_deadline = match self.members().addrs.len() {
                1 => deadline,
                _ => (Instant::now() + try_timeout(timeout)).min(deadline),
            };
            let status = match tokio::time::timeout_at(try_deadline, rpc(channel)).await {
                Ok(Ok(reply)) => {
                    self.answered(index);
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => status,
                Err(_) => {
                    self.members().silent_since[index] = Some(Instant::now());
                    Status::deadline_exceeded("no answer within the time for one try")
                }
            };
            match failover(&status) {
                Failover::Answer => {
                    self.answered(index);
                    return Err(FsError::from_status(&status));
                }
                Failover::NotLeader(Some(leader)) => self.follow(index, &leader),
                Failover::NotLeader(None) | Failover::Unreachable => {
                    tracing::debug!(master = %addr, error = %status.message(),
                        "master did not serve the call; trying the next");
                    if let Some(failure) = tls_failure(&status) {
                        untrusted += 1;
                        tls_error = Some(format!("TLS with {addr} failed: {failure}"));
                    }
                    self.skip(index);
                }
            }
            tries += 1;
            if untrusted >= self.members().addrs.len() {
                if let Some(error) = tls_error {
                    return Err(FsError::Unavailable(error));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FsError::Unavailable(format!(
                    "no master answered within {} ms (last tried {addr}: {})",
                    timeout.as_millis(),
                    status.message()
                )));
            }
            if tries >= self.members().addrs.len() {
                tries = 0;
                untrusted = 0;
                tokio::time::sleep_until((now + backoff.next_delay()).min(deadline)).await;
            }
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The master believed to lead: its index, address and channel.
    fn current(&self) -> (usize, String, Channel) {
        let members = self.members();
        let index = members.leader;
        (
            index,
            members.addrs[index].clone(),
            members.channels[index].clone(),
        )
    }

    /// Master `index` answered: it leads. Logs the change when another master answered
    /// before.
    fn answered(&self, index: usize) {
        let mut members = self.members();
        members.leader = index;
        members.silent_since[index] = None;
        if let Some(previous) = members.answered.replace(index)
            && previous != index
        {
            tracing::info!(leader = %members.addrs[index], previous = %members.addrs[previous],
                "another master leads now; following it");
        }
    }

    /// Master `tried` refused and named `leader`: the next call goes there.
    fn follow(&self, tried: usize, leader: &str) {
        let leader = normalize(leader);
        let mut members = self.members();
        let index = match members.addrs.iter().position(|a| a == leader) {
            Some(index) => index,
            None => match (self.connect)(leader) {
                Ok(channel) => {
                    tracing::info!(master = %leader,
                        "a master named a leader that is not in the list; adding it");
                    members.addrs.push(leader.to_owned());
                    members.channels.push(channel);
                    members.silent_since.push(None);
                    members.addrs.len() - 1
                }
                Err(why) => {
                    tracing::warn!(master = %leader, %why, "a master named an unusable leader");
                    drop(members);
                    return self.skip(tried);
                }
            },
        };
        let silent = members.silent_since[index].is_some_and(|t| t.elapsed() < SUSPECT_FOR);
        if index == tried || silent {
            // A member that names itself while refusing is between terms; one that names a
            // leader which just left a call unanswered has not heard of the next election
            // yet: try the others.
            drop(members);
            return self.skip(tried);
        }
        members.leader = index;
    }

    /// Master `tried` did not serve the call: the next call goes to the master after it,
    /// unless another call already moved on.
    fn skip(&self, tried: usize) {
        let mut members = self.members();
        if members.leader == tried {
            members.leader = (tried + 1) % members.addrs.len();
        }
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
    fn refusals_failures_and_answers_are_told_apart() {
        assert_eq!(
            failover(&not_leader(Some("b:2"))),
            Failover::NotLeader(Some("b:2".into()))
        );
        assert_eq!(failover(&not_leader(None)), Failover::NotLeader(None));
        assert_eq!(
            failover(&Status::unavailable("tcp connect error")),
            Failover::Unreachable
        );
        assert_eq!(
            failover(&Status::cancelled("Timeout expired")),
            Failover::Unreachable
        );
        // The master's own `Unavailable` (a deferred allocation) is its answer.
        let deferred: Status = FsError::Unavailable("allocation deferred".into()).into();
        assert_eq!(failover(&deferred), Failover::Answer);
        assert_eq!(failover(&FsError::NotFound.into()), Failover::Answer);
        assert_eq!(
            failover(&Status::unimplemented("unknown service")),
            Failover::Answer
        );
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
