//! The dfs wire contract and the small types every dfs crate shares.
//!
//! * [`pb`] — the gRPC messages and services generated from `proto/*.proto`. The master
//!   serves six services, split by who calls them and why: `Namespace` (names and attributes),
//!   `Files` (the clients' data path: open, create, chunk map, leases), `Xattrs`, `Locks`
//!   (clients), `Registry` (chunkservers) and `Admin` (the `dfs` command); each chunkserver
//!   serves `Chunkserver` (streaming chunk reads and chain-replicated writes).
//! * [`FsError`] — the POSIX-flavoured error every component speaks, carried across gRPC in
//!   one well-defined way so that a client maps it to exactly the errno the master meant.
//! * [`chunk`] — chunk arithmetic: which chunks and blocks a byte range of a file touches.
//! * [`time`] — conversions between wire timestamps and `SystemTime`.
//! * [`masters`] — lists of masters and following their leader: the refusal a non-leader
//!   sends, its hint, the backoff between tries.
//! * [`http`] — the HTTP address every process serves (`/metrics`, and on a master its API
//!   and dashboard).
//! * [`process`] — logging setup and the shutdown signal every dfs binary shares.
//! * [`attrs`] — which fields of a `setattr` change an inode's attributes, and how.

pub mod attrs;
pub mod chunk;
pub mod error;
pub mod fuzz;
pub mod http;
pub mod masters;
pub mod process;
pub mod time;
pub mod tls;
pub mod token;

pub use error::FsError;

/// Generated protobuf messages and tonic clients/servers for `package dfs`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dfs");
}

/// The inode number of the root directory (the kernel's FUSE root is 1 as well).
pub const ROOT_INO: u64 = 1;

/// Longest name of one directory entry, in bytes (as on ext4).
pub const MAX_NAME_LEN: usize = 255;

/// Default chunk size: 64 MiB, as in GFS and MooseFS.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;

/// Default checksum block size: a 4 KiB random read verifies 64 KiB, not a whole chunk.
pub const DEFAULT_BLOCK_SIZE: u32 = 64 << 10;
