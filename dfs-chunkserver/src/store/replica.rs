//! One opened replica: its data file and its sidecar held in memory, and the byte-level
//! operations on them — write, truncate, verified read, persist.
//!
//! Invariants a [`Replica`] keeps:
//! * the data file is exactly `meta.length` bytes long, so bytes past the end of a write that
//!   extends the replica read as zeros (the file system fills the gap, sparsely);
//! * after every operation, `meta.checksums[i]` is the SHA-256 of block `i` as it is in the
//!   data file — only the blocks an operation touched are recomputed;
//! * the sidecar on disk is only replaced (tmp + rename) after the data it describes was
//!   written, so a crash never leaves checksums for data that never reached the file.
//!
//! The in-memory sidecar may be ahead of the one on disk between [`Replica::persist`] calls;
//! the store persists at the end of every write stream.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::Bytes;
use dfs_proto::FsError;

use super::ReplicaInfo;
use super::meta::{Checksum, ChunkMeta, checksum};
use crate::error::{Error, Result};

/// Where the files of one replica live.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaPaths {
    /// The directory holding both files (`chunks/<last two hex digits>`).
    pub dir: PathBuf,
    /// `<chunk id>.data`.
    pub data: PathBuf,
    /// `<chunk id>.meta`.
    pub meta: PathBuf,
}

impl ReplicaPaths {
    /// The temporary name a new sidecar is written under before it replaces the old one.
    pub fn meta_tmp(&self) -> PathBuf {
        self.meta.with_extension("meta.tmp")
    }
}

/// A replica opened for reading and writing.
#[derive(Debug)]
pub(crate) struct Replica {
    chunk_id: u64,
    paths: ReplicaPaths,
    data: File,
    meta: ChunkMeta,
    /// The in-memory sidecar differs from the one on disk.
    dirty: bool,
}

impl Replica {
    /// Creates an empty replica, replacing any leftover data file of an interrupted creation.
    /// Its sidecar is written at the end of the first write stream (`persist`), not here: a
    /// crash before that leaves a data file without sidecar, which the next start removes.
    pub fn create(
        chunk_id: u64,
        paths: ReplicaPaths,
        version: u64,
        block_size: u64,
    ) -> Result<Replica> {
        let ctx = |what: &str| format!("{what} for new chunk {chunk_id:016x}");
        fs::create_dir_all(&paths.dir).map_err(|e| Error::io(ctx("create directory"), e))?;
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&paths.data)
            .map_err(|e| Error::io(ctx("create data file"), e))?;
        let replica = Replica {
            chunk_id,
            paths,
            data,
            meta: ChunkMeta::new(version, block_size),
            dirty: true,
        };
        Ok(replica)
    }

    /// Opens the replica if its sidecar exists. Data past the recorded length (left by a write
    /// that crashed before its sidecar was replaced) is cut off.
    pub fn load(chunk_id: u64, paths: ReplicaPaths) -> Result<Option<Replica>> {
        let ctx = |what: &str| format!("{what} of chunk {chunk_id:016x}");
        let bytes = match fs::read(&paths.meta) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(ctx("read sidecar"), e)),
        };
        let meta = ChunkMeta::decode(&bytes)
            .map_err(|e| FsError::Corrupt(format!("chunk {chunk_id:016x}: {e}")))?;
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.data)
            .map_err(|e| Error::io(ctx("open data file"), e))?;
        let size = data
            .metadata()
            .map_err(|e| Error::io(ctx("stat data file"), e))?
            .len();
        if size > meta.length {
            data.set_len(meta.length)
                .map_err(|e| Error::io(ctx("trim data file"), e))?;
        }
        Ok(Some(Replica {
            chunk_id,
            paths,
            data,
            meta,
            dirty: false,
        }))
    }

    /// Version, length and id, as a block report states them.
    pub fn info(&self) -> ReplicaInfo {
        ReplicaInfo {
            chunk_id: self.chunk_id,
            version: self.meta.version,
            length: self.meta.length,
        }
    }

    /// The chunk version this replica holds.
    pub fn version(&self) -> u64 {
        self.meta.version
    }

    /// Replica length in bytes.
    pub fn length(&self) -> u64 {
        self.meta.length
    }

    /// Takes on a newer chunk version (a new writer was granted the chunk).
    pub fn set_version(&mut self, version: u64) {
        self.meta.version = version;
        self.dirty = true;
    }

    /// Writes `buf` at `offset`, extending the replica if it ends past the current length
    /// (a gap between the old end and `offset` reads as zeros), and recomputes the checksums
    /// of every block the write touched.
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let old_len = self.meta.length;
        let end = offset + buf.len() as u64;
        if let Err(e) = self.data.write_all_at(buf, offset) {
            self.recover_failed_write(offset, end, old_len);
            return Err(Error::io(format!("write chunk {:016x}", self.chunk_id), e));
        }
        self.meta.set_length(old_len.max(end));
        self.dirty = true;
        // Blocks from the old end on changed too when the write leaves a gap: the old last
        // block grows with zeros, and the gap's blocks are new.
        let hole = old_len..offset.max(old_len);
        self.rehash(offset.min(old_len)..end, (offset, buf), hole)
    }

    /// Cuts or extends (with zeros) the replica to `len` bytes.
    pub fn truncate(&mut self, len: u64) -> Result<()> {
        let old_len = self.meta.length;
        if len == old_len {
            return Ok(());
        }
        self.data
            .set_len(len)
            .map_err(|e| Error::io(format!("truncate chunk {:016x}", self.chunk_id), e))?;
        self.meta.set_length(len);
        self.dirty = true;
        if len < old_len {
            // Only the new last block can have changed: it lost its tail.
            let last_start = len - len % self.meta.block_size;
            self.rehash(last_start..len, (len, &[]), len..len)
        } else {
            self.rehash(old_len..len, (len, &[]), old_len..len)
        }
    }

    /// Reads up to `len` bytes at `offset`, verifying the checksum of every block the range
    /// touches. Bytes past the replica's end are not returned (a short or empty result).
    ///
    /// A replica older than `version` is stale (it missed writes) and refused. A newer one is
    /// read: the reader's chunk map predates a new writer, whose bytes are the current ones.
    /// A writer stamps its new version on the replicas before the master records it, so a
    /// reader never finds every replica of a chunk older than the master says.
    pub fn read(&self, version: u64, offset: u64, len: u64) -> Result<Bytes> {
        if self.meta.version < version {
            return Err(FsError::Stale(format!(
                "chunk {:016x}: replica has version {}, reader expects {version}",
                self.chunk_id, self.meta.version
            ))
            .into());
        }
        let end = offset.saturating_add(len).min(self.meta.length);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let bs = self.meta.block_size;
        let first_block = offset / bs;
        let start = first_block * bs;
        let stop = end.div_ceil(bs).saturating_mul(bs).min(self.meta.length);
        let mut buf = vec![0u8; (stop - start) as usize];
        self.data.read_exact_at(&mut buf, start).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::from(FsError::Corrupt(format!(
                    "chunk {:016x}: data file is shorter than the replica length {}",
                    self.chunk_id, self.meta.length
                )))
            } else {
                Error::io(format!("read chunk {:016x}", self.chunk_id), e)
            }
        })?;
        for (i, block) in buf.chunks(bs as usize).enumerate() {
            let index = first_block as usize + i;
            if checksum(block) != self.meta.checksums[index] {
                return Err(FsError::Corrupt(format!(
                    "chunk {:016x} block {index} does not match its checksum",
                    self.chunk_id
                ))
                .into());
            }
        }
        let skip = (offset - start) as usize;
        Ok(Bytes::from(buf).slice(skip..skip + (end - offset) as usize))
    }

    /// Writes the sidecar to disk if it changed: to a temporary file, then renamed over the
    /// old one. With `sync`, the data file, the sidecar and the directory are fsynced first,
    /// so the replica survives a machine crash.
    pub fn persist(&mut self, sync: bool) -> Result<()> {
        let ctx = |what: &str| format!("{what} of chunk {:016x}", self.chunk_id);
        if sync {
            self.data
                .sync_data()
                .map_err(|e| Error::io(ctx("fsync data"), e))?;
        }
        if !self.dirty && !sync {
            return Ok(());
        }
        let tmp = self.paths.meta_tmp();
        let mut file = File::create(&tmp).map_err(|e| Error::io(ctx("create sidecar"), e))?;
        file.write_all(&self.meta.encode())
            .map_err(|e| Error::io(ctx("write sidecar"), e))?;
        if sync {
            file.sync_all()
                .map_err(|e| Error::io(ctx("fsync sidecar"), e))?;
        }
        drop(file);
        fs::rename(&tmp, &self.paths.meta).map_err(|e| Error::io(ctx("rename sidecar"), e))?;
        if sync {
            File::open(&self.paths.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| Error::io(ctx("fsync directory"), e))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Recomputes the checksums of the blocks touched by `range`. `fresh` is data just
    /// written at an offset (hashed from memory instead of read back); `hole` is a range
    /// known to be zeros. Other blocks, e.g. a partially written one, are read back from the
    /// data file.
    fn rehash(&mut self, range: Range<u64>, fresh: (u64, &[u8]), hole: Range<u64>) -> Result<()> {
        let bs = self.meta.block_size;
        let (fresh_start, fresh) = fresh;
        let fresh_end = fresh_start + fresh.len() as u64;
        let mut zero_block: Option<Checksum> = None;
        let mut scratch = Vec::new();
        for block in range.start / bs..range.end.div_ceil(bs) {
            let start = block * bs;
            let end = (start + bs).min(self.meta.length);
            if start >= end {
                break;
            }
            let sum = if start >= fresh_start && end <= fresh_end {
                checksum(&fresh[(start - fresh_start) as usize..(end - fresh_start) as usize])
            } else if start >= hole.start && end <= hole.end {
                if end - start == bs {
                    *zero_block.get_or_insert_with(|| checksum(&vec![0; bs as usize]))
                } else {
                    checksum(&vec![0; (end - start) as usize])
                }
            } else {
                scratch.resize((end - start) as usize, 0);
                self.data
                    .read_exact_at(&mut scratch, start)
                    .map_err(|e| Error::io(format!("read back chunk {:016x}", self.chunk_id), e))?;
                checksum(&scratch)
            };
            self.meta.checksums[block as usize] = sum;
        }
        Ok(())
    }

    /// Best-effort repair after a failed write: cut what it appended, and re-checksum what it
    /// may have overwritten so that the sidecar describes the file as it now is.
    fn recover_failed_write(&mut self, offset: u64, end: u64, old_len: u64) {
        if end > old_len {
            let _ = self.data.set_len(old_len);
        }
        if offset < old_len {
            let overwritten = offset..end.min(old_len);
            self.dirty = true;
            let _ = self.rehash(overwritten, (0, &[]), 0..0);
        }
    }
}
