//! The on-disk form of the master's metadata: versioned storage records, and their conversions
//! to and from the master's own types.
//!
//! Records are protobuf messages from the master's private `proto/records.proto`, compiled by
//! `build.rs`; they are not the wire contract. The master's logic works with its own types
//! ([`Inode`], [`Chunk`], [`ServerIdentity`], [`GrantedLease`], [`HeldLock`]) and never sees a
//! record: the store converts on every read and write, here. So the protocol and the storage
//! format change independently: a new field on the wire need not reach the disk, and a new
//! storage layout needs no protocol change.
//!
//! [`SCHEMA_VERSION`] names the format, and the `meta` column family records the version a
//! database was written in. [`Store::open`](super::Store::open) checks it before anything
//! reads a record: a database of a newer schema than this build's is refused, one without a
//! recorded version is schema 1. Schema 1 keeps the field numbers of the wire messages the
//! first masters stored, so their data directories open unchanged (the tests below pin those
//! bytes). A record that fails to decode is [`Error::Corrupt`], naming its column family.

use dfs_proto::pb::{Attr, FileKind, Timestamp};
use prost::Message;

use crate::chunks::Chunk;
use crate::chunks::leases::GrantedLease;
use crate::cluster::registry::ServerIdentity;
use crate::error::{Error, Result};
use crate::locks::{HeldLock, LockKind, Owner};
use crate::namespace::Inode;

/// The storage messages generated from `proto/records.proto`.
#[allow(missing_docs, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/dfs.master.records.rs"));
}

pub use generated::{
    AttrRecord, ChunkRecord, InodeKind, InodeRecord, LeaseRecord, LockRecord, LockRecords,
    ServerRecord, TimeRecord,
};

/// The storage format this build reads and writes. Raise it (and teach [`Store::open`] to
/// migrate from the previous one) for any change that a master of the previous version could
/// not read correctly.
///
/// [`Store::open`]: super::Store::open
pub const SCHEMA_VERSION: u64 = 1;

/// Decodes the record `bytes` read from column family `cf`.
pub(crate) fn decode<R: Message + Default>(cf: &'static str, bytes: &[u8]) -> Result<R> {
    R::decode(bytes).map_err(|e| Error::Corrupt {
        cf,
        detail: e.to_string(),
    })
}

/// The byte that stands for `kind` in a directory entry's value (the [`InodeKind`] number).
pub(crate) fn kind_byte(kind: FileKind) -> u8 {
    kind_record(kind) as u8
}

/// The kind a directory entry's kind byte stands for; `None` for a byte no kind has.
pub(crate) fn kind_of_byte(byte: u8) -> Option<FileKind> {
    InodeKind::try_from(i32::from(byte)).ok().map(file_kind)
}

fn kind_record(kind: FileKind) -> InodeKind {
    match kind {
        FileKind::Unspecified => InodeKind::Unspecified,
        FileKind::Regular => InodeKind::Regular,
        FileKind::Directory => InodeKind::Directory,
        FileKind::Symlink => InodeKind::Symlink,
        FileKind::Fifo => InodeKind::Fifo,
        FileKind::CharDevice => InodeKind::CharDevice,
        FileKind::BlockDevice => InodeKind::BlockDevice,
        FileKind::Socket => InodeKind::Socket,
    }
}

fn file_kind(kind: InodeKind) -> FileKind {
    match kind {
        InodeKind::Unspecified => FileKind::Unspecified,
        InodeKind::Regular => FileKind::Regular,
        InodeKind::Directory => FileKind::Directory,
        InodeKind::Symlink => FileKind::Symlink,
        InodeKind::Fifo => FileKind::Fifo,
        InodeKind::CharDevice => FileKind::CharDevice,
        InodeKind::BlockDevice => FileKind::BlockDevice,
        InodeKind::Socket => FileKind::Socket,
    }
}

fn time_record(t: Timestamp) -> TimeRecord {
    TimeRecord {
        secs: t.secs,
        nanos: t.nanos,
    }
}

fn timestamp(t: TimeRecord) -> Timestamp {
    Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

impl From<&Inode> for InodeRecord {
    fn from(inode: &Inode) -> InodeRecord {
        let a = &inode.attr;
        let attr = AttrRecord {
            ino: a.ino,
            kind: kind_record(a.kind()) as i32,
            perm: a.perm,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            nlink: a.nlink,
            atime: a.atime.map(time_record),
            mtime: a.mtime.map(time_record),
            ctime: a.ctime.map(time_record),
            crtime: a.crtime.map(time_record),
            rdev: a.rdev,
        };
        InodeRecord {
            attr: Some(attr),
            parent: inode.parent,
        }
    }
}

impl From<InodeRecord> for Inode {
    fn from(record: InodeRecord) -> Inode {
        // Schema 1 always writes the attributes; a record without them reads as empty ones,
        // as the first masters read it.
        let a = record.attr.unwrap_or_default();
        let attr = Attr {
            ino: a.ino,
            kind: file_kind(a.kind()) as i32,
            perm: a.perm,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            nlink: a.nlink,
            atime: a.atime.map(timestamp),
            mtime: a.mtime.map(timestamp),
            ctime: a.ctime.map(timestamp),
            crtime: a.crtime.map(timestamp),
            rdev: a.rdev,
        };
        Inode {
            attr,
            parent: record.parent,
        }
    }
}

impl From<&Chunk> for ChunkRecord {
    fn from(chunk: &Chunk) -> ChunkRecord {
        ChunkRecord {
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            length: chunk.length,
            replicas: chunk.replicas.clone(),
            issued_version: chunk.issued_version,
        }
    }
}

impl From<ChunkRecord> for Chunk {
    fn from(record: ChunkRecord) -> Chunk {
        Chunk {
            chunk_id: record.chunk_id,
            version: record.version,
            length: record.length,
            replicas: record.replicas,
            issued_version: record.issued_version,
        }
    }
}

impl From<&ServerIdentity> for ServerRecord {
    fn from(server: &ServerIdentity) -> ServerRecord {
        ServerRecord {
            addr: server.addr.clone(),
            storage_uuid: server.storage_uuid.clone(),
            rack: server.rack.clone(),
            draining: server.draining,
        }
    }
}

impl From<ServerRecord> for ServerIdentity {
    fn from(record: ServerRecord) -> ServerIdentity {
        ServerIdentity {
            addr: record.addr,
            storage_uuid: record.storage_uuid,
            rack: record.rack,
            draining: record.draining,
        }
    }
}

impl From<&GrantedLease> for LeaseRecord {
    fn from(lease: &GrantedLease) -> LeaseRecord {
        LeaseRecord {
            holder: lease.holder.clone(),
            generation: lease.generation,
        }
    }
}

impl From<LeaseRecord> for GrantedLease {
    fn from(record: LeaseRecord) -> GrantedLease {
        GrantedLease {
            holder: record.holder,
            generation: record.generation,
        }
    }
}

impl From<&[HeldLock]> for LockRecords {
    fn from(locks: &[HeldLock]) -> LockRecords {
        let locks = locks
            .iter()
            .map(|held| LockRecord {
                session: held.owner.session.clone(),
                owner: held.owner.owner,
                start: held.start,
                end: held.end,
                write: held.kind == LockKind::Write,
                pid: held.pid,
            })
            .collect();
        LockRecords { locks }
    }
}

impl From<LockRecords> for Vec<HeldLock> {
    fn from(records: LockRecords) -> Vec<HeldLock> {
        records
            .locks
            .into_iter()
            .map(|record| HeldLock {
                owner: Owner {
                    session: record.session,
                    owner: record.owner,
                },
                start: record.start,
                end: record.end,
                kind: if record.write {
                    LockKind::Write
                } else {
                    LockKind::Read
                },
                pid: record.pid,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ts(secs: i64, nanos: u32) -> Option<Timestamp> {
        Some(Timestamp { secs, nanos })
    }

    /// A regular file's inode as the first masters wrote it (the wire `Attr` inside its
    /// record): ino 7, perm 0o644, uid and gid 1000, size 5, one link, times at 10 s (and
    /// 5 ns), 20, 30 and 40 s.
    const FILE_V1: &str =
        "0a230807100118a40320e80728e807300538014204080a10054a0208145202081e5a020828";

    #[test]
    fn inodes_written_by_schema_1_masters_read_back_and_encode_the_same() {
        let file = Inode {
            attr: Attr {
                ino: 7,
                kind: FileKind::Regular as i32,
                perm: 0o644,
                uid: 1000,
                gid: 1000,
                size: 5,
                nlink: 1,
                atime: ts(10, 5),
                mtime: ts(20, 0),
                ctime: ts(30, 0),
                crtime: ts(40, 0),
                rdev: 0,
            },
            parent: 0,
        };
        let stored = unhex(FILE_V1);
        let read: Inode = decode::<InodeRecord>("inodes", &stored).unwrap().into();
        assert_eq!(read, file);
        assert_eq!(hex(&InodeRecord::from(&file).encode_to_vec()), FILE_V1);
    }

    #[test]
    fn chunks_servers_leases_and_locks_keep_their_schema_1_bytes() {
        let chunk = Chunk {
            chunk_id: 300,
            version: 2,
            length: 4096,
            replicas: vec![1, 2, 3],
            issued_version: 0,
        };
        let bytes = ChunkRecord::from(&chunk).encode_to_vec();
        assert_eq!(hex(&bytes), "08ac0210021880202203010203");
        let back: Chunk = decode::<ChunkRecord>("chunks", &bytes).unwrap().into();
        assert_eq!(back, chunk);

        let server = ServerIdentity {
            addr: "a:1".into(),
            storage_uuid: "u".into(),
            rack: String::new(),
            draining: true,
        };
        let bytes = ServerRecord::from(&server).encode_to_vec();
        assert_eq!(hex(&bytes), "0a03613a311201752001");
        assert_eq!(
            ServerIdentity::from(decode::<ServerRecord>("servers", &bytes).unwrap()),
            server
        );

        let lease = GrantedLease {
            holder: "m".into(),
            generation: 9,
        };
        let bytes = LeaseRecord::from(&lease).encode_to_vec();
        assert_eq!(hex(&bytes), "0a016d1009");
        assert_eq!(
            GrantedLease::from(decode::<LeaseRecord>("leases", &bytes).unwrap()),
            lease
        );

        let locks = vec![HeldLock {
            owner: Owner {
                session: "s".into(),
                owner: 4,
            },
            start: 0,
            end: 9,
            kind: LockKind::Write,
            pid: 77,
        }];
        let bytes = LockRecords::from(locks.as_slice()).encode_to_vec();
        assert_eq!(hex(&bytes), "0a0b0a0173100420092801304d");
        let back: Vec<HeldLock> = decode::<LockRecords>("locks", &bytes).unwrap().into();
        assert_eq!(back, locks);
    }

    #[test]
    fn every_kind_keeps_its_number_on_disk() {
        for (kind, byte) in [
            (FileKind::Regular, 1),
            (FileKind::Directory, 2),
            (FileKind::Symlink, 3),
            (FileKind::Fifo, 4),
            (FileKind::CharDevice, 5),
            (FileKind::BlockDevice, 6),
            (FileKind::Socket, 7),
        ] {
            assert_eq!(kind_byte(kind), byte);
            assert_eq!(kind_of_byte(byte), Some(kind));
        }
        assert_eq!(kind_of_byte(200), None);
    }
}
