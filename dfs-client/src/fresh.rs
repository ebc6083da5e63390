//! [`FreshAttrs`]: what the master just answered about a file, kept to answer the kernel's
//! next question about it without a master round trip.
//!
//! * **Attributes an open fetched.** After an open that marks atime (the first read of a file
//!   since it changed, by the relatime rule) the kernel's copy of atime is stale: the kernel
//!   marks it so itself after each read it sends (the open drops the file's pages so that
//!   every read is sent; see `Client::open`), and asks again at the next `stat`: one more
//!   master round trip per file for a reader of many small files. The open's reply already
//!   carried the marked attributes, so they are kept for that one question. Such an entry is
//!   as fresh as the kernel's own attribute cache would be (answered at most one attribute
//!   TTL after the master sent it).
//! * **A chunk map a lookup brought.** The kernel looks a name up while resolving the path
//!   of an `open`, right before sending the open; the lookup asks for a small file's chunk
//!   map too (`open_ahead`), and a read-only open with no atime mark due is then answered
//!   from it. Close-to-open consistency asks that an open sees what another mount closed
//!   before the open began; a lookup made *during* the open's path walk is after that close,
//!   so its map is as fresh as the master's `OpenFile` answer. To use only such maps, an
//!   open takes a map only from a lookup by the same process (the FUSE request's pid) within
//!   [`OPEN_AHEAD_TTL`], and the kernel gets such a name with no entry lifetime: a `stat`
//!   followed by an `open` looks the name up twice, and the open uses the second map. A
//!   relatime mark the open calls for is made by the mount and sent in a batch (see
//!   `crate::marks`).
//!
//! * **A directory's attributes after a name change.** The kernel drops its copy of a
//!   directory's attributes whenever a name in it is created or removed, and asks for them
//!   again before its next permission check there: `rm -rf` and `tar -x` would pay a
//!   `GetAttr` of the directory per file. The call that changed the name answers them
//!   (`ChangedDirs`), so that `getattr` is answered from here. Two calls in one directory
//!   racing on this mount keep the newer answer (by ctime).
//!
//! Every entry is used once, and is dropped when this mount changes the file (a write open, a
//! commit, `setattr`, a name change) or closes its last handle. Another mount's changes
//! within the TTL go unseen, as with the kernel's cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::pb;

/// How long after a lookup its chunk map may answer an open (the kernel sends the open right
/// after the lookup, a few FUSE round trips later).
pub const OPEN_AHEAD_TTL: Duration = Duration::from_millis(10);

/// Chunk maps kept at most: lookups not followed by an open (`stat`, `ls -l`) leave entries
/// behind, which are useless after [`OPEN_AHEAD_TTL`] anyway.
const AHEAD_LIMIT: usize = 1024;

/// Attribute entries kept at most (opens and directory changes whose `getattr` never came).
const ATTRS_LIMIT: usize = 4096;

/// What a lookup brought for an open: attributes, chunk map, the process that looked the
/// name up, and when they arrived.
type Ahead = (pb::Attr, pb::GetChunksReply, u32, Instant);

/// Attributes fetched by opens and chunk maps fetched by lookups, by inode, with when they
/// arrived.
#[derive(Debug, Default)]
pub struct FreshAttrs {
    // A std mutex: held only to insert, take or drop an entry.
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    attrs: HashMap<u64, (pb::Attr, Instant)>,
    ahead: HashMap<u64, Ahead>,
}

impl Entries {
    fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.ahead.is_empty()
    }
}

impl FreshAttrs {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().expect("fresh attributes poisoned")
    }

    /// Keeps the chunk map (and attributes) that a lookup of `attr.ino` by process `pid`
    /// brought at `now`.
    pub fn put_ahead(&self, attr: pb::Attr, chunk_map: pb::GetChunksReply, pid: u32, now: Instant) {
        let mut entries = self.entries();
        if entries.ahead.len() >= AHEAD_LIMIT {
            entries.ahead.clear();
        }
        entries.ahead.insert(attr.ino, (attr, chunk_map, pid, now));
    }

    /// The attributes and chunk map a lookup by process `pid` brought for `ino`, if they
    /// arrived at most [`OPEN_AHEAD_TTL`] before `now`; the entry is gone either way.
    pub fn take_ahead(
        &self,
        ino: u64,
        pid: u32,
        now: Instant,
    ) -> Option<(pb::Attr, pb::GetChunksReply)> {
        let mut entries = self.entries();
        if entries.ahead.is_empty() {
            return None;
        }
        let (attr, chunk_map, looked_up_by, at) = entries.ahead.remove(&ino)?;
        let fresh = now.saturating_duration_since(at) <= OPEN_AHEAD_TTL;
        (fresh && looked_up_by == pid).then_some((attr, chunk_map))
    }

    /// Keeps the attributes of `attr.ino` the master answered at `now` (to an open, or to a
    /// change of a name in that directory), unless newer ones (by ctime) are kept already.
    pub fn put(&self, attr: pb::Attr, now: Instant) {
        let mut entries = self.entries();
        if entries.attrs.len() >= ATTRS_LIMIT {
            entries.attrs.clear();
        }
        let ctime = |attr: &pb::Attr| attr.ctime.map(|t| (t.secs, t.nanos));
        match entries.attrs.get(&attr.ino) {
            Some((kept, _)) if ctime(kept) > ctime(&attr) => {}
            _ => {
                entries.attrs.insert(attr.ino, (attr, now));
            }
        }
    }

    /// The attributes kept for `ino` if they arrived at most `ttl` before `now`; the entry is
    /// gone either way.
    pub fn take(&self, ino: u64, ttl: Duration, now: Instant) -> Option<pb::Attr> {
        let mut entries = self.entries();
        if entries.attrs.is_empty() {
            return None;
        }
        let (attr, at) = entries.attrs.remove(&ino)?;
        (now.saturating_duration_since(at) <= ttl).then_some(attr)
    }

    /// Drops what is kept for `ino` (this mount changed or closed it).
    pub fn forget(&self, ino: u64) {
        let mut entries = self.entries();
        if !entries.is_empty() {
            entries.attrs.remove(&ino);
            entries.ahead.remove(&ino);
        }
    }

    /// Drops everything (a name change may change any file's link count or ctime).
    pub fn clear(&self) {
        let mut entries = self.entries();
        if !entries.is_empty() {
            entries.attrs.clear();
            entries.ahead.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ino: u64) -> pb::Attr {
        pb::Attr {
            ino,
            size: 7,
            ..Default::default()
        }
    }

    #[test]
    fn kept_attributes_answer_once_within_the_ttl() {
        let fresh = FreshAttrs::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1);
        fresh.put(attr(3), t0);
        assert_eq!(fresh.take(4, ttl, t0), None);
        assert_eq!(fresh.take(3, ttl, t0 + ttl), Some(attr(3)));
        // Used once.
        assert_eq!(fresh.take(3, ttl, t0), None);
        // Too old: the kernel would have asked the master.
        fresh.put(attr(3), t0);
        assert_eq!(fresh.take(3, ttl, t0 + ttl * 2), None);
        // Forgotten when this mount changes the file.
        fresh.put(attr(3), t0);
        fresh.put(attr(5), t0);
        fresh.forget(3);
        assert_eq!(fresh.take(3, ttl, t0), None);
        fresh.clear();
        assert_eq!(fresh.take(5, ttl, t0), None);
    }

    fn dir_at(ino: u64, secs: i64, nlink: u32) -> pb::Attr {
        pb::Attr {
            ino,
            nlink,
            ctime: Some(pb::Timestamp { secs, nanos: 0 }),
            ..Default::default()
        }
    }

    #[test]
    fn racing_directory_changes_keep_the_newer_attributes() {
        let fresh = FreshAttrs::default();
        let (t0, ttl) = (Instant::now(), Duration::from_secs(1));
        // The later change's answer arrives first; the earlier one's must not replace it.
        fresh.put(dir_at(9, 20, 4), t0);
        fresh.put(dir_at(9, 10, 3), t0);
        assert_eq!(fresh.take(9, ttl, t0), Some(dir_at(9, 20, 4)));
        fresh.put(dir_at(9, 10, 3), t0);
        fresh.put(dir_at(9, 20, 4), t0);
        assert_eq!(fresh.take(9, ttl, t0), Some(dir_at(9, 20, 4)));
    }

    #[test]
    fn attributes_whose_getattr_never_came_are_bounded() {
        let fresh = FreshAttrs::default();
        let t0 = Instant::now();
        for ino in 0..(ATTRS_LIMIT as u64 * 3) {
            fresh.put(attr(ino), t0);
        }
        assert!(fresh.entries().attrs.len() <= ATTRS_LIMIT);
        let last = ATTRS_LIMIT as u64 * 3 - 1;
        assert_eq!(
            fresh.take(last, Duration::from_secs(1), t0),
            Some(attr(last))
        );
    }

    /// The process of the lookups and opens in these tests.
    const PID: u32 = 4242;

    fn map(length: u64) -> pb::GetChunksReply {
        pb::GetChunksReply {
            file_size: length,
            ..Default::default()
        }
    }

    #[test]
    fn a_looked_up_chunk_map_answers_one_open_right_after() {
        let fresh = FreshAttrs::default();
        let t0 = Instant::now();
        fresh.put_ahead(attr(3), map(7), PID, t0);
        assert_eq!(fresh.take_ahead(4, PID, t0), None);
        assert_eq!(
            fresh.take_ahead(3, PID, t0 + OPEN_AHEAD_TTL),
            Some((attr(3), map(7)))
        );
        // Used once.
        assert_eq!(fresh.take_ahead(3, PID, t0), None);
        // Too old: the open asks the master.
        fresh.put_ahead(attr(3), map(7), PID, t0);
        assert_eq!(fresh.take_ahead(3, PID, t0 + OPEN_AHEAD_TTL * 2), None);
        // Looked up by another process (a `stat` that was not this open's path walk).
        fresh.put_ahead(attr(3), map(7), PID + 1, t0);
        assert_eq!(fresh.take_ahead(3, PID, t0), None);
        // Forgotten when this mount changes the file, or any name changes.
        fresh.put_ahead(attr(3), map(7), PID, t0);
        fresh.put_ahead(attr(5), map(7), PID, t0);
        fresh.forget(3);
        assert_eq!(fresh.take_ahead(3, PID, t0), None);
        fresh.clear();
        assert_eq!(fresh.take_ahead(5, PID, t0), None);
    }

    #[test]
    fn lookups_without_opens_leave_a_bounded_number_of_maps() {
        let fresh = FreshAttrs::default();
        let t0 = Instant::now();
        for ino in 0..(AHEAD_LIMIT as u64 * 3) {
            fresh.put_ahead(attr(ino), map(1), PID, t0);
        }
        assert!(fresh.entries().ahead.len() <= AHEAD_LIMIT);
        // The newest is still there.
        let last = AHEAD_LIMIT as u64 * 3 - 1;
        assert!(fresh.take_ahead(last, PID, t0).is_some());
    }
}
