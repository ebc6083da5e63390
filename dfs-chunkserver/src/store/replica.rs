//! One opened replica: its data file and its sidecar held in memory, and the byte-level
//! operations on them — write, truncate, verified read, persist.
//!
//! Invariants a [`Replica`] keeps:
//! * the data file is exactly `meta.length` bytes long, so bytes past the end of a write that
//!   extends the replica read as zeros (the file system fills the gap, sparsely);
//! * after every operation, `meta.checksums[i]` is the checksum (CRC32C, or SHA-256 for a
//!   replica created before CRC32C: see `meta`) of block `i` as it is in the data file — only
//!   the blocks an operation touched are recomputed;
//! * the sidecar on disk is only updated after the data it describes was written.
//!
//! The in-memory sidecar may be ahead of the one on disk between [`Replica::persist`] calls;
//! the store persists at the end of every write stream. Persisting updates the sidecar in
//! place: it writes only the checksum entries that changed since the last persist, then the
//! header (whose length is the commit point for a growing replica), then cuts the file if the
//! replica shrank — a few hundred bytes per stream instead of rewriting the whole sidecar.
//!
//! **Crashes.** Data is written before the checksums that describe it, so after a crash the
//! sidecar may lag the data or be torn (some entries new, some old). Either way a block whose
//! bytes and checksum disagree reads as `Corrupt`: the client falls back to another replica
//! and reports this one, and the master drops and re-replicates it (the scrubber finds such
//! blocks too). A sidecar longer than its header says (entries of a growth whose header never
//! made it) is accepted, the extra entries ignored; a shorter one fails to load as corrupt.
//! With `sync` (fsync), data, sidecar and directory are fsynced in that order.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::Bytes;
use dfs_proto::FsError;

use super::ReplicaInfo;
use super::direct::DirectWriter;
use super::meta::{Checksum, ChecksumKind, ChunkMeta, HEADER_LEN};
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

/// Where the bytes of a block whose checksum is recomputed come from.
enum BlockSource<'a> {
    /// Just written: hashed from memory.
    Memory(&'a [u8]),
    /// Known to be zeros (a gap a write or truncate left).
    Zeros,
    /// Anything else: read back from the data file.
    File,
}

/// A replica opened for reading and writing.
#[derive(Debug)]
pub(crate) struct Replica {
    chunk_id: u64,
    paths: ReplicaPaths,
    data: File,
    /// Writes large ranges of the data file past the page cache.
    direct: DirectWriter,
    meta: ChunkMeta,
    /// The in-memory sidecar differs from the one on disk.
    dirty: bool,
    /// Checksum entries changed since the last persist (written in place by the next).
    changed: Option<Range<usize>>,
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
            direct: DirectWriter::default(),
            meta: ChunkMeta::new(version, block_size, ChecksumKind::NEW),
            dirty: true,
            changed: None,
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
            direct: DirectWriter::default(),
            meta,
            dirty: false,
            changed: None,
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
        self.write_ranges(&[(offset, buf)])
    }

    /// Writes each `(offset, bytes)` piece, in order, like [`write_at`](Replica::write_at),
    /// then recomputes the checksum of every touched block once: a block several pieces
    /// touch is hashed once, a block one piece covers is hashed from memory, and only the
    /// others are read back. On a failed piece, the pieces before it stay written (with
    /// their checksums) and what the failed one appended is cut.
    pub fn write_ranges(&mut self, ranges: &[(u64, &[u8])]) -> Result<()> {
        let old_len = self.meta.length;
        let mut len = old_len;
        for (i, &(offset, buf)) in ranges.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            let end = offset + buf.len() as u64;
            let written = self
                .direct
                .write_all_at(&self.data, &self.paths.data, buf, offset);
            if let Err(e) = written {
                self.meta.set_length(len);
                self.dirty = true;
                self.recover_failed_write(offset, end, len);
                let _ = self.rehash_written(&ranges[..i], old_len);
                return Err(Error::io(format!("write chunk {:016x}", self.chunk_id), e));
            }
            len = len.max(end);
        }
        if len != old_len {
            self.meta.set_length(len);
        }
        self.dirty = true;
        self.rehash_written(ranges, old_len)
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
            if self.meta.checksum(block) != self.meta.checksums[index] {
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

    /// Brings the sidecar on disk up to date if it changed, in place (see the module docs):
    /// changed checksum entries, then the header, then a cut if the replica shrank. With
    /// `sync`, the data file is fsynced before and the sidecar and directory after, so the
    /// replica survives a machine crash.
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
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.paths.meta)
            .map_err(|e| Error::io(ctx("open sidecar"), e))?;
        let on_disk = file
            .metadata()
            .map_err(|e| Error::io(ctx("stat sidecar"), e))?
            .len();
        let entries = self.meta.checksums.len();
        // Entries past the old end are new even if no block hashed them this time.
        let entry_len = self.meta.kind.entry_len() as u64;
        let known = (on_disk.saturating_sub(HEADER_LEN as u64) / entry_len) as usize;
        let mut write = self.changed.take().unwrap_or(0..0);
        if known < entries {
            write = write.start.min(known)..entries;
        }
        let write = write.start.min(entries)..write.end.min(entries);
        if !write.is_empty() {
            let bytes = self.meta.encode_entries(write.clone());
            file.write_all_at(&bytes, self.meta.entry_offset(write.start))
                .map_err(|e| Error::io(ctx("write sidecar checksums"), e))?;
        }
        file.write_all_at(&self.meta.encode_header(), 0)
            .map_err(|e| Error::io(ctx("write sidecar header"), e))?;
        let file_len = self.meta.entry_offset(entries);
        if on_disk > file_len {
            file.set_len(file_len)
                .map_err(|e| Error::io(ctx("cut sidecar"), e))?;
        }
        if sync {
            file.sync_data()
                .map_err(|e| Error::io(ctx("fsync sidecar"), e))?;
            File::open(&self.paths.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| Error::io(ctx("fsync directory"), e))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Notes that checksum entry `block` changed.
    fn mark_changed(&mut self, block: usize) {
        self.changed = Some(match self.changed.take() {
            Some(r) => r.start.min(block)..r.end.max(block + 1),
            None => block..block + 1,
        });
    }

    /// Recomputes the checksums of the blocks the pieces of a [`write_ranges`] touched, and
    /// of the blocks between the old end `old_len` and the new one (zeros unless written).
    ///
    /// [`write_ranges`]: Replica::write_ranges
    fn rehash_written(&mut self, ranges: &[(u64, &[u8])], old_len: u64) -> Result<()> {
        let bs = self.meta.block_size;
        let len = self.meta.length;
        let mut pieces: Vec<(u64, &[u8])> = ranges
            .iter()
            .copied()
            .filter(|(offset, buf)| !buf.is_empty() && *offset < len)
            .collect();
        pieces.sort_by_key(|&(offset, _)| offset);
        // With overlapping pieces memory may not hold the final bytes: read everything back.
        let disjoint = pieces
            .windows(2)
            .all(|w| w[0].0 + w[0].1.len() as u64 <= w[1].0);
        let mut blocks: Vec<u64> = Vec::new();
        for &(offset, buf) in &pieces {
            let last = (offset + buf.len() as u64 - 1).min(len - 1) / bs;
            let first = (offset / bs).max(blocks.last().map_or(0, |b| b + 1));
            blocks.extend(first..=last);
        }
        if len > old_len {
            blocks.extend(old_len / bs..len.div_ceil(bs));
            blocks.sort_unstable();
            blocks.dedup();
        }
        let mut zero_block: Option<Checksum> = None;
        let mut scratch = Vec::new();
        for block in blocks {
            let start = block * bs;
            let end = (start + bs).min(len);
            // The last piece starting at or before the block, and whether one intersects it.
            let at = pieces.partition_point(|&(offset, _)| offset <= start);
            let covering = at
                .checked_sub(1)
                .map(|i| pieces[i])
                .filter(|&(offset, buf)| disjoint && offset + buf.len() as u64 >= end);
            let touched = pieces[at.saturating_sub(1)..]
                .iter()
                .take_while(|&&(offset, _)| offset < end)
                .any(|&(offset, buf)| offset + buf.len() as u64 > start);
            let source = if let Some((offset, buf)) = covering {
                BlockSource::Memory(&buf[(start - offset) as usize..(end - offset) as usize])
            } else if disjoint && !touched && start >= old_len {
                BlockSource::Zeros
            } else {
                BlockSource::File
            };
            let sum = self.block_checksum(start..end, source, &mut zero_block, &mut scratch)?;
            self.meta.checksums[block as usize] = sum;
            self.mark_changed(block as usize);
        }
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
            let source = if start >= fresh_start && end <= fresh_end {
                BlockSource::Memory(
                    &fresh[(start - fresh_start) as usize..(end - fresh_start) as usize],
                )
            } else if start >= hole.start && end <= hole.end {
                BlockSource::Zeros
            } else {
                BlockSource::File
            };
            let sum = self.block_checksum(start..end, source, &mut zero_block, &mut scratch)?;
            self.meta.checksums[block as usize] = sum;
            self.mark_changed(block as usize);
        }
        Ok(())
    }

    /// The checksum of the block at data bytes `range`, from `source`. A full block of zeros
    /// is hashed once per call site (`zero_block`); `scratch` is reused for read-backs.
    fn block_checksum(
        &self,
        range: Range<u64>,
        source: BlockSource<'_>,
        zero_block: &mut Option<Checksum>,
        scratch: &mut Vec<u8>,
    ) -> Result<Checksum> {
        let len = (range.end - range.start) as usize;
        Ok(match source {
            BlockSource::Memory(bytes) => self.meta.checksum(bytes),
            BlockSource::Zeros if len as u64 == self.meta.block_size => {
                *zero_block.get_or_insert_with(|| self.meta.checksum(&vec![0; len]))
            }
            BlockSource::Zeros => self.meta.checksum(&vec![0; len]),
            BlockSource::File => {
                scratch.resize(len, 0);
                self.data
                    .read_exact_at(scratch, range.start)
                    .map_err(|e| Error::io(format!("read back chunk {:016x}", self.chunk_id), e))?;
                self.meta.checksum(scratch)
            }
        })
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
