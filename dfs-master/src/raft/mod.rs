//! The masters of a cluster as a Raft group (openraft): one leader serves the metadata, every
//! member holds the same metadata in its own RocksDB, and a new leader takes over when the
//! leader fails.
//!
//! What dfs supplies to openraft, one module each:
//! * [`log_store`] — the Raft log and vote, in two column families of the master's RocksDB.
//! * [`state_machine`] — applies committed [`Command`]s to the metadata, builds and installs
//!   snapshots.
//! * [`network`] — the gRPC client of the `Raft` service of the other members.
//! * [`node`] — this master's membership in the group: starting Raft, proposing commands,
//!   following leadership (the metadata logic, a [`Master`](crate::Master), lives only on the
//!   leader).
//! * [`membership`] — `dfs masters`: the group's status, adding and removing members,
//!   handing the leadership over.
//!
//! The leader runs a mutation against its own store under the single writer lock, which
//! yields a [`Command`] (the key writes it decided, see [`crate::store::command`]); the
//! command is proposed, and the mutation's reply goes out once a majority has the entry in its
//! log and the leader has applied it. Followers apply the same commands in the same order.
//! A single master is a group of one on the same path.
//!
//! [`Command`]: crate::store::command::Command

// openraft's storage traits return its `StorageError` (a few hundred bytes) by value; the
// helpers here return what the traits do.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod membership;
pub mod network;
pub mod node;
pub mod state_machine;

use std::io::Cursor;

use crate::store::command::Command;

openraft::declare_raft_types!(
    /// The Raft types of the master group: log entries carry [`Command`]s, members are
    /// numbered `u64` and reached at a `host:port` (`BasicNode`).
    pub TypeConfig:
        D = Command,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A member's number in the group (`--node-id`).
pub type NodeId = u64;

/// The openraft handle of this member.
pub type Raft = openraft::Raft<TypeConfig>;

/// openraft's storage error, as the storage traits return it.
pub(crate) type StorageError = openraft::StorageError<NodeId>;

/// A storage failure of `what` (reading the log, writing the state machine, ...), in
/// openraft's terms.
pub(crate) fn storage_error(
    make: fn(openraft::AnyError) -> openraft::StorageIOError<NodeId>,
    err: impl std::fmt::Display,
) -> StorageError {
    make(openraft::AnyError::error(err.to_string())).into()
}
