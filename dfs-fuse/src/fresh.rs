//! [`FreshAttrs`]: attributes an open just fetched, kept to answer the kernel's next
//! `getattr` of the file without a master round trip.
//!
//! An open that marks atime (the first read of a file since it changed, by the relatime rule)
//! must drop the kernel's copy of the attributes, or `stat` would show the old atime. The
//! kernel then asks for them again before the read itself (`getattr` right after `open`):
//! one more master round trip per file for a reader of many small files. The open's reply
//! already carried the marked attributes, so they are kept here for that one question.
//!
//! An entry is as fresh as the kernel's own attribute cache would be (answered at most one
//! attribute TTL after the master sent it), is used once, and is dropped when this mount
//! changes the file (a write open, a commit, `setattr`, a name change) or closes its last
//! handle. Another mount's changes within the TTL go unseen, as with the kernel's cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::pb;

/// Attributes fetched by opens, by inode, with when they arrived.
#[derive(Debug, Default)]
pub struct FreshAttrs {
    // A std mutex: held only to insert, take or drop an entry.
    entries: Mutex<HashMap<u64, (pb::Attr, Instant)>>,
}

impl FreshAttrs {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (pb::Attr, Instant)>> {
        self.entries.lock().expect("fresh attributes poisoned")
    }

    /// Keeps the attributes an open of `attr.ino` was answered with at `now`.
    pub fn put(&self, attr: pb::Attr, now: Instant) {
        self.entries().insert(attr.ino, (attr, now));
    }

    /// The attributes kept for `ino` if they arrived at most `ttl` before `now`; the entry is
    /// gone either way.
    pub fn take(&self, ino: u64, ttl: Duration, now: Instant) -> Option<pb::Attr> {
        let mut entries = self.entries();
        if entries.is_empty() {
            return None;
        }
        let (attr, at) = entries.remove(&ino)?;
        (now.saturating_duration_since(at) <= ttl).then_some(attr)
    }

    /// Drops what is kept for `ino` (this mount changed or closed it).
    pub fn forget(&self, ino: u64) {
        let mut entries = self.entries();
        if !entries.is_empty() {
            entries.remove(&ino);
        }
    }

    /// Drops everything (a name change may change any file's link count or ctime).
    pub fn clear(&self) {
        let mut entries = self.entries();
        if !entries.is_empty() {
            entries.clear();
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
}
