//! `dfs-client`: the client library of a dfs cluster — metadata through the master, data
//! straight to and from chunkservers, and the client-side state that makes both fast.
//!
//! The mount (`dfs-fuse`) and the `dfs` command are both built on it; any program can use it
//! to reach a cluster without a mount.
//!
//! ```no_run
//! # async fn example() -> dfs_client::Result<()> {
//! use dfs_client::{Client, Config, OpenFlags};
//!
//! let client = Client::connect(&Config::new("127.0.0.1:9400")).await?;
//! client.mkdir_path("/logs", 0o755).await?;
//! let file = client.create_path("/logs/today", 0o644).await?;
//! file.write(0, b"hello\n").await?;
//! file.close().await?;
//! let file = client.open_path("/logs/today", OpenFlags::READ).await?;
//! assert_eq!(&file.read(0, 6).await?[..], b"hello\n");
//! file.close().await?;
//! // Before the program exits: lease releases and atime marks go in batches.
//! client.flush_all().await;
//! # Ok(())
//! # }
//! ```
//!
//! A tour, from the API inwards:
//!
//! * [`Client`] — every filesystem operation as an async method, by inode (what a kernel
//!   adapter needs: lookup, getattr, open, read, write, flush, release, read_dir, …) and by path
//!   (`stat_path`, `list_path`, `mkdir_path`, `create_path`, `open_path`, `rename_path`,
//!   `unlink_path`, `rmdir_path`; a [`File`] is an open regular file). The domain types it
//!   speaks are in [`attr`]: [`Attr`], [`FileKind`], [`SetAttr`], [`OpenFlags`].
//! * `inode` — the state of an open inode, shared by its handles: the cached chunk map, the
//!   write-back buffer of dirty ranges and its background sender (`writebuf`), writes awaiting
//!   their commit, and the sticky write error; `handles` counts the open handles that keep it
//!   alive. `read` is the read path (holes and short replicas read as zeros), planned by
//!   `readplan`; `datapath` bundles what both talk to, with the block cache (`blockcache`) and
//!   read-ahead (`readahead`).
//! * `lease` — the writer leases the client holds (one writing client per file), their
//!   renewal, and the recovery of a file whose previous writer died.
//! * `fresh` and `marks` — what the master just answered, kept for the next question about
//!   the same file, and relatime atime marks sent in batches.
//! * [`MasterClient`] and `chunkio` — the wire: metadata RPCs to the leader of the masters,
//!   streaming chunk reads and chain-replicated writes to chunkservers, on lazily
//!   (re)connecting channels with timeouts, so a dead server means EIO within the timeout,
//!   never a hang.
//! * [`metrics`] — call durations and cache figures, which the embedding program exposes in
//!   its own registry ([`Client::register_metrics`]).
//! * [`config`] — the client's options; [`Error`] — the crate's one error type.
//!
//! Consistency is close-to-open, as NFS: closing a file commits its writes to the master, and
//! opening one loads its chunk map fresh. A file has one writing client at a time, the holder
//! of its writer lease.

pub mod attr;
mod blockcache;
mod chunkio;
mod client;
pub mod config;
mod datapath;
mod error;
mod fresh;
mod handles;
mod inode;
mod lease;
mod marks;
mod master;
pub mod metrics;
mod path;
mod prealloc;
mod read;
mod readahead;
mod readplan;
mod writebuf;

pub use crate::attr::{Attr, FileKind, OpenFlags, PREFERRED_IO_SIZE, SetAttr};
pub use crate::blockcache::CacheStats;
pub use crate::client::{
    Caller, Client, DirEntry, DirPage, Opened, STATFS_BLOCK_SIZE, StatFs, XattrMode,
};
pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use crate::master::MasterClient;
pub use crate::path::File;
