//! The master's one error type and its one mapping to `tonic::Status`.
//!
//! Errors a client is meant to act on (ENOENT, EEXIST, ENOSPC, ...) are [`FsError`]s and keep
//! their exact errno across the wire. Everything else (RocksDB failures, corrupt records, a
//! panicked worker thread) is the master's own fault: it is logged here and reaches the client
//! as an I/O error carrying the message.

use dfs_proto::FsError;
use tonic::Status;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the master.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A POSIX-level error the client sees as its errno.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The metadata database failed.
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// A stored record could not be decoded: the database is damaged or from an
    /// incompatible version.
    #[error("corrupt record in column family {cf}: {detail}")]
    Corrupt {
        /// The column family holding the record.
        cf: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The database was written in a newer storage schema than this build reads: it must
    /// not guess what the records mean, so it refuses to start.
    #[error(
        "the metadata database has storage schema {found}, newer than this dfs-master \
         supports (up to {supported}): run a dfs-master at least as new as the one that \
         wrote it"
    )]
    Schema {
        /// The schema recorded in the database.
        found: u64,
        /// The newest schema this build reads.
        supported: u64,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local file operation failed (data directory, address file).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// This master does not lead its group (or cannot serve as leader right now): the call
    /// goes to the leader, whose address is given when known.
    #[error("not the leader")]
    NotLeader(Option<String>),
    /// No majority of the group acknowledged a mutation within the time an election takes:
    /// this master is cut off from the others (or most of them are down). Whether the
    /// mutation takes effect is decided by the group once it is whole again.
    #[error("no majority of the masters answered within {0:?}: the group cannot commit")]
    NoQuorum(std::time::Duration),
    /// The consensus layer failed.
    #[error("raft: {0}")]
    Raft(String),
    /// A blocking metadata task panicked or was cancelled.
    #[error("metadata task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::Fs(fs) => fs.into(),
            Error::NotLeader(leader) => dfs_proto::masters::not_leader(leader.as_deref()),
            Error::NoQuorum(_) => FsError::Unavailable(err.to_string()).into(),
            internal => {
                tracing::error!(error = %internal, "internal error");
                FsError::Io(internal.to_string()).into()
            }
        }
    }
}
