//! Regular files of [`Client`]: open and create, read (with read-ahead), write, flush, fsync
//! and release.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::pb::{self, FileKind};
use dfs_proto::time::access_due;

use super::namespace::node_request;
use super::{Caller, Client, NewNode, Opened, check_name};
use crate::attr::{Attr, OpenFlags, creation_perm};
use crate::inode::OpenInode;
use crate::lease;
use crate::read;

impl Client {
    /// Opens a regular file: takes its writer lease when opened for writing, loads its chunk
    /// map fresh from the master (close-to-open consistency) and truncates it for `O_TRUNC`.
    /// One master call does all that and the relatime atime mark (`OpenFile`), unless the
    /// previous writer died holding the lease and the file must be recovered first, or the
    /// lookup that process `pid` (if known) made of the name just now brought what the open
    /// needs.
    pub async fn open(
        &self,
        ino: u64,
        flags: OpenFlags,
        pid: Option<u32>,
    ) -> Result<Opened, FsError> {
        let inode = self.shared.inodes.open(ino, self.shared.write_buffer_bytes);
        let result = async {
            let (writing, truncating, read) = (flags.changes(), flags.truncate, flags.reads());
            // What this process's lookup of the name just brought, for an open that only reads.
            let looked_up = pid
                .filter(|_| !(writing || truncating))
                .and_then(|pid| self.shared.fresh.take_ahead(ino, pid, Instant::now()));
            let seen = looked_up.as_ref().map(|(attr, _)| *attr);
            let reply = if writing && !self.shared.leases.holds(ino) {
                self.open_leased(ino, read).await?
            } else if let Some(ahead) = looked_up {
                self.opened_ahead(ahead, read)
            } else {
                if read {
                    // The master marks by what it has: a mark of this mount's first.
                    self.shared.marks.settle(ino).await;
                }
                self.master().open_file(ino, read, None).await?
            };
            if writing {
                let holder = self.shared.leases.holder().to_string();
                inode.set_lease_holder(holder).await;
            }
            let attr = reply
                .attr
                .ok_or_else(|| FsError::Io("master opened a file without attributes".into()))?;
            let chunk_ids = inode
                .opened(reply.chunk_map.unwrap_or_default(), attr)
                .await;
            let unchanged = self.note_open(attr, writing, reply.access_marked, chunk_ids);
            if truncating && attr.size > 0 {
                let req = truncate_request(ino);
                let attr = inode.resize(self.io(), req, 0).await?;
                self.note_version(&attr);
                return Ok((false, true));
            }
            Ok(open_decision(unchanged, reply.access_marked, seen, &attr))
        }
        .await;
        match result {
            Ok((keep_cache, attrs_stale)) => Ok(Opened {
                fh: self.next_fh(),
                keep_cache,
                attrs_stale,
            }),
            Err(err) => {
                self.close_inode(ino).await;
                Err(err)
            }
        }
    }

    /// [`open`](Client::open) without waiting, for the thread that received the request: a
    /// read-only open of a file not open here, answered from what process `pid`'s lookup of
    /// the name just brought. `None` means: call `open` (nothing was taken or changed).
    /// Must run inside the runtime's context (an atime mark may start its batch).
    pub fn open_now(&self, ino: u64, flags: OpenFlags, pid: u32) -> Option<Opened> {
        if flags.changes() || self.shared.inodes.get(ino).is_some() {
            return None;
        }
        let fresh = &self.shared.fresh;
        let (seen, chunk_map) = fresh.take_ahead(ino, pid, Instant::now())?;
        let inode = self.shared.inodes.open(ino, self.shared.write_buffer_bytes);
        // Only another open of the same file at this very moment holds the new state.
        let mut ahead = Some((chunk_map, seen));
        let Some(chunk_ids) = inode.try_opened(&mut ahead) else {
            self.shared.inodes.close(ino);
            if let Some((chunk_map, seen)) = ahead {
                fresh.put_ahead(seen, chunk_map, pid, Instant::now());
            }
            return None;
        };
        let (attr, access_marked) = self.mark_access(seen, true);
        let unchanged = self.note_open(attr, false, access_marked, chunk_ids);
        let (keep_cache, attrs_stale) = open_decision(unchanged, access_marked, Some(seen), &attr);
        Some(Opened {
            fh: self.next_fh(),
            keep_cache,
            attrs_stale,
        })
    }

    /// Records what an open learned of file `attr.ino` (whose chunks are `chunk_ids`):
    /// answers whether the file is as this mount last saw it.
    fn note_open(
        &self,
        attr: pb::Attr,
        writing: bool,
        access_marked: bool,
        chunk_ids: Vec<u64>,
    ) -> bool {
        let unchanged = self.note_version(&attr);
        if writing {
            self.shared.fresh.forget(attr.ino);
        } else if access_marked {
            // The kernel's copy goes stale (atime); it asks again after the read.
            self.shared.fresh.put(attr, Instant::now());
        }
        if !unchanged {
            // Another mount may have rewritten blocks this mount still caches.
            self.io()
                .cache
                .invalidate_chunks(&chunk_ids.into_iter().collect());
        }
        unchanged
    }

    /// Creates the regular file `name` in `parent` (or finds it, without `O_EXCL`) and opens
    /// it; an open for writing takes the file's writer lease in the same master call
    /// (`CreateFile`).
    pub async fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: OpenFlags,
    ) -> Result<(Attr, Opened), FsError> {
        check_name(name)?;
        let node = NewNode {
            parent,
            name,
            kind: FileKind::Regular,
            perm: creation_perm(mode, umask),
            rdev: 0,
            symlink_target: &[],
            exclusive: flags.exclusive,
        };
        let req = node_request(caller, node);
        let leases = &self.shared.leases;
        let writing = flags.changes();
        let mut placed = None;
        let attr = if writing {
            let (acquired, (attr, first_chunk)) = leases
                .acquire_with(self.master(), || async {
                    let mut reply = self
                        .master()
                        .create_file(req.clone(), Some(leases.holder()))
                        .await?;
                    self.note_changed_dirs(std::mem::take(&mut reply.changed_dirs));
                    let attr = reply.attr.ok_or_else(|| {
                        FsError::Io("master created a file without attributes".into())
                    })?;
                    let ino = attr.ino;
                    Ok((
                        ino,
                        reply.lease.unwrap_or_default(),
                        (attr, reply.first_chunk),
                    ))
                })
                .await?;
            placed = first_chunk;
            if acquired.recover {
                // An existing file whose previous writer died holding the lease.
                if let Err(err) = lease::recover(self.io(), attr.ino, leases.holder()).await {
                    self.release_lease(attr.ino);
                    return Err(err);
                }
            }
            attr
        } else {
            let (attr, dirs) = self.master().make_node(req).await?;
            self.note_changed_dirs(dirs);
            attr
        };
        if attr.size > 0 {
            // An existing file: opened like any other (its lease, if taken, is held now).
            let opened = self.open(attr.ino, flags, None).await?;
            return Ok((self.getattr(attr.ino).await?, opened));
        }
        // A new (or empty) file has no chunks to load.
        let inode = self
            .shared
            .inodes
            .open(attr.ino, self.shared.write_buffer_bytes);
        inode.note_attr(attr).await;
        if writing {
            // Chunk 0 as the master placed it: the first flush writes there directly.
            inode
                .start_writing(leases.holder().to_string(), placed)
                .await;
        }
        self.note_version(&attr);
        Ok((
            self.present(&attr),
            Opened {
                fh: self.next_fh(),
                keep_cache: false,
                attrs_stale: true,
            },
        ))
    }

    /// Reads up to `len` bytes at `offset`.
    pub async fn read(&self, ino: u64, offset: u64, len: u32) -> Result<Bytes, FsError> {
        let inode = self.open_inode(ino)?;
        let data = read::read(self.io(), &inode, offset, u64::from(len)).await?;
        self.read_ahead(inode, offset, len);
        Ok(data)
    }

    /// Reads up to `len` bytes at `offset` if that needs no waiting (see
    /// `read::read_from_cache`); `None` means: call `read`. Call it inside
    /// the runtime's context: it may start read-ahead.
    pub fn read_now(&self, ino: u64, offset: u64, len: u32) -> Option<Bytes> {
        let inode = self.shared.inodes.get(ino)?;
        let data = read::read_from_cache(self.io(), &inode, offset, u64::from(len))?;
        self.read_ahead(inode, offset, len);
        Some(data)
    }

    /// Starts read-ahead if `inode`'s reader is sequential.
    fn read_ahead(&self, inode: Arc<OpenInode>, offset: u64, len: u32) {
        if let Some((from, len)) =
            inode
                .readahead
                .on_read(offset, u64::from(len), self.shared.read_ahead_bytes)
        {
            tokio::spawn(read::read_ahead(self.io().clone(), inode, from, len));
        }
    }

    /// Buffers a write; returns the bytes accepted.
    pub async fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let inode = self.open_inode(ino)?;
        inode.write(self.io(), offset, data).await?;
        Ok(data.len() as u32)
    }

    /// Buffers a write from the thread that received it if that needs no waiting (see
    /// `OpenInode::try_write`); `None` means: take `write` instead.
    pub fn try_write(&self, ino: u64, offset: u64, data: &[u8]) -> Option<Result<u32, FsError>> {
        let inode = self.shared.inodes.get(ino)?;
        let written = inode.try_write(self.io(), offset, data)?;
        Some(written.map(|()| data.len() as u32))
    }

    /// Sends and commits this inode's writes (at every `close`).
    pub async fn flush(&self, ino: u64) -> Result<(), FsError> {
        let Some(inode) = self.shared.inodes.get(ino) else {
            return Ok(());
        };
        if let Some(attr) = inode.flush(self.io()).await? {
            self.shared.fresh.forget(ino);
            self.note_version(&attr);
        }
        Ok(())
    }

    /// Flushes `ino` from the calling thread if there is nothing to flush (no write of this
    /// mount is buffered, in flight or uncommitted, and no earlier failure is owed); `false`
    /// means: call [`flush`](Client::flush).
    pub fn flush_now(&self, ino: u64) -> bool {
        self.shared
            .inodes
            .get(ino)
            .is_none_or(|inode| inode.try_is_flushed() == Some(true))
    }

    /// Drops one handle of `ino` from the calling thread if that needs no master call: nothing
    /// to flush, no writer lease to give back, no hidden name to remove. `false` means: call
    /// [`release`](Client::release).
    pub fn release_now(&self, ino: u64) -> bool {
        if !self.flush_now(ino) || self.shared.leases.holds(ino) || self.is_hidden(ino) {
            return false;
        }
        // A writer opening meanwhile registers its handle before taking the lease, so this
        // is not the last handle then, and the lease stays with the writer's handle.
        if self.shared.inodes.close(ino) {
            self.shared.fresh.forget(ino);
        }
        true
    }

    /// The attributes of `ino` if an open fetched them at most `ttl` ago and this mount did
    /// not change the file since (see `FreshAttrs`), or if this
    /// mount is writing the file and had its attributes from the master at most `ttl` ago
    /// (see `OpenInode::recent_attr`); `None` means: ask the master
    /// ([`getattr`](Client::getattr)).
    pub fn getattr_now(&self, ino: u64, ttl: Duration) -> Option<Attr> {
        if self.shared.leases.holds(ino) {
            self.shared.fresh.forget(ino);
            let inode = self.shared.inodes.get(ino)?;
            return inode
                .recent_attr(ttl, Instant::now())
                .map(|attr| self.present(&attr));
        }
        let attr = self.shared.fresh.take(ino, ttl, Instant::now())?;
        Some(self.present(&attr))
    }

    /// Sends, syncs on every replica, and commits; then has the master sync its log, since
    /// it acknowledges changes of names and lengths (this file's create, its last commit)
    /// before they reach its disk.
    pub async fn fsync(&self, ino: u64) -> Result<(), FsError> {
        if let Some(inode) = self.shared.inodes.get(ino) {
            if let Some(attr) = inode.fsync(self.io()).await? {
                self.shared.fresh.forget(ino);
                self.note_version(&attr);
            }
        }
        self.master().sync_metadata().await
    }

    /// `fsync` of a directory: the names in it (and everything else the master acknowledged)
    /// reach the master's disk.
    pub async fn fsyncdir(&self) -> Result<(), FsError> {
        self.master().sync_metadata().await
    }

    /// Drops one handle; the last one flushes and forgets the inode's state.
    pub async fn release(&self, ino: u64) -> Result<(), FsError> {
        let result = self.flush(ino).await;
        if let Err(err) = &result {
            tracing::error!(ino, error = %err, "flush at release failed");
        }
        self.close_inode(ino).await;
        result
    }

    /// What the master's `OpenFile` would answer a read-only open, from the attributes and
    /// chunk map this process's lookup of the file just brought. A relatime mark the open
    /// calls for is stamped here and sent to the master in a batch (see `crate::marks`).
    fn opened_ahead(
        &self,
        (attr, chunk_map): (pb::Attr, pb::GetChunksReply),
        read: bool,
    ) -> pb::OpenFileReply {
        let (attr, access_marked) = self.mark_access(attr, read);
        pb::OpenFileReply {
            attr: Some(attr),
            chunk_map: Some(chunk_map),
            access_marked,
            lease: None,
        }
    }

    /// `attr` after this mount's pending atime marks, and after the relatime mark a read
    /// (`read`) calls for, which is made here (see `crate::marks`); and whether it marked.
    fn mark_access(&self, mut attr: pb::Attr, read: bool) -> (pb::Attr, bool) {
        self.shared.marks.overlay(&mut attr);
        let now = SystemTime::now();
        let marked = read && access_due(&attr, now);
        if marked {
            attr.atime = Some(now.into());
            self.shared.marks.mark(attr.ino, now);
        }
        (attr, marked)
    }

    /// Flushes every open inode, gives up every lease and sends the pending atime marks (when
    /// the filesystem goes away, possibly with files still open). A program must call it
    /// before it exits: lease releases and atime marks wait a few milliseconds to go to the
    /// masters in batches, and a release that never arrives holds the file from other
    /// writers until its lease expires.
    pub async fn flush_all(&self) {
        for inode in self.shared.inodes.all() {
            if let Err(err) = inode.flush(self.io()).await {
                tracing::error!(ino = inode.ino, error = %err, "flush at unmount failed");
            }
        }
        self.shared.leases.release_all(self.master()).await;
        self.shared.marks.send().await;
    }
}

/// A `SetAttr` that truncates a file to zero, as `open(O_TRUNC)` does (and so updates mtime).
fn truncate_request(ino: u64) -> pb::SetAttrRequest {
    pb::SetAttrRequest {
        ino,
        size: Some(0),
        mtime: Some(dfs_proto::time::now()),
        ..Default::default()
    }
}

/// `(keep_cache, attrs_stale)` for an open of a file that is `unchanged` since this mount
/// last saw it, answered with `attr` (after an atime mark if `access_marked`), whose name the
/// kernel looked up just before with attributes `seen`, if known.
///
/// An open that marked atime lets the kernel drop the file's pages rather than its
/// attributes: every read then reaches this mount, and the kernel marks its own copy of atime
/// stale after each, so the `stat` after the read asks again while the read itself needs no
/// `getattr` first. A read of an empty file reaches no one, so there the attributes go. A
/// file changed since this mount last read it needs the kernel's attributes dropped, unless
/// they came from the lookup just made and still hold.
fn open_decision(
    unchanged: bool,
    access_marked: bool,
    seen: Option<pb::Attr>,
    attr: &pb::Attr,
) -> (bool, bool) {
    let keep_cache = unchanged && !access_marked;
    let kernel_current = seen.is_some_and(|seen| same_version(&seen, attr));
    let attrs_stale = (!unchanged && !kernel_current) || (access_marked && attr.size == 0);
    (keep_cache, attrs_stale)
}

/// Whether `a` and `b` show one version of a file's data and attributes (an atime mark in
/// between changes neither).
fn same_version(a: &pb::Attr, b: &pb::Attr) -> bool {
    (a.size, a.mtime, a.ctime, a.perm, a.uid, a.gid, a.nlink)
        == (b.size, b.mtime, b.ctime, b.perm, b.uid, b.gid, b.nlink)
}
