//! Attribute changes made while writes are buffered: `tar -x`, `cp -p` and `rsync` set the
//! times, owner and mode of a file through its open descriptor right after writing it and
//! before closing it. Each would be a master call of its own (after a commit of the writes,
//! so the commit's mtime does not undo `utimens`). Instead, a change arriving while this
//! mount holds the file's writer lease and has writes the master does not know of yet is
//! kept here and carried by the commit that publishes those writes (`CommitWrite.attrs`):
//! one call for the data and every attribute, applied in one batch, so another mount never
//! sees the new bytes under the old mode, nor the new mode before the bytes.
//!
//! Until then, the mount answers the change, and every later `stat` of the file, with the
//! attributes it last had from the master with the kept changes laid over them. A write
//! after a kept `utimens` drops its mtime (the write sets mtime again, as on any file).
//! The kernel checked the caller may make the changes (`default_permissions`) before sending
//! them. A change another mount makes to the same attribute meanwhile is overwritten at the
//! commit, as if it had come first; a commit that fails keeps the changes for the next one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::pb;

use super::{InodeState, MAX_QUEUED, OpenInode};
use crate::datapath::DataPath;

/// The permission bits, owner and times a `setattr` changes (never size or an access mark,
/// which go to the master at once).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AttrChanges {
    perm: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    atime: Option<pb::Timestamp>,
    mtime: Option<pb::Timestamp>,
}

impl AttrChanges {
    /// The changes `req` makes, if it changes nothing but permission bits, owner and times.
    pub fn of(req: &pb::SetAttrRequest) -> Option<AttrChanges> {
        if req.size.is_some() || req.mark_access {
            return None;
        }
        Some(AttrChanges {
            perm: req.perm,
            uid: req.uid,
            gid: req.gid,
            atime: req.atime,
            mtime: req.mtime,
        })
    }

    /// These changes followed by `later` ones.
    fn then(self, later: AttrChanges) -> AttrChanges {
        AttrChanges {
            perm: later.perm.or(self.perm),
            uid: later.uid.or(self.uid),
            gid: later.gid.or(self.gid),
            atime: later.atime.or(self.atime),
            mtime: later.mtime.or(self.mtime),
        }
    }

    /// Lays the changes over `attr` as the master will (ctime is the caller's).
    pub fn apply(&self, attr: &mut pb::Attr) {
        self.request(attr.ino).apply_to(attr);
    }

    /// The changes as the commit carries them.
    pub fn request(&self, ino: u64) -> pb::SetAttrRequest {
        pb::SetAttrRequest {
            ino,
            perm: self.perm,
            uid: self.uid,
            gid: self.gid,
            atime: self.atime,
            mtime: self.mtime,
            ..Default::default()
        }
    }
}

impl InodeState {
    /// A write happened: a kept mtime no longer holds (the commit stamps the write's time).
    pub(super) fn written(&mut self) {
        if let Some(changes) = &mut self.deferred {
            changes.mtime = None;
        }
    }
}

impl OpenInode {
    /// Keeps `changes` for the next commit if this mount holds the writer lease, has writes
    /// to commit and knows the file's attributes; answers the attributes after the change
    /// (stamped with ctime `now`). `None`: nothing kept, the caller sends the change itself.
    ///
    /// A program that sets a file's mode, owner or times through the open file has written
    /// its bytes (tar, cp -p and rsync do it right before `close`), so buffered bytes go to
    /// the background sender now: the chain write runs while the remaining attribute calls
    /// are answered, and the close is left waiting only for the rest of it and the commit.
    pub async fn defer(
        self: &Arc<Self>,
        io: &DataPath,
        changes: AttrChanges,
        now: pb::Timestamp,
    ) -> Option<pb::Attr> {
        let mut state = self.state.lock().await;
        self.keep(io, &mut state, changes, now)
    }

    /// [`defer`](OpenInode::defer) without waiting, for the thread that received the
    /// request: `None` also when the state is busy (the caller then takes `defer`). Must
    /// run inside the runtime's context (it may start the background sender).
    pub fn try_defer(
        self: &Arc<Self>,
        io: &DataPath,
        changes: AttrChanges,
        now: pb::Timestamp,
    ) -> Option<pb::Attr> {
        let mut state = self.state.try_lock().ok()?;
        self.keep(io, &mut state, changes, now)
    }

    /// The work of [`defer`](OpenInode::defer), with the state locked.
    fn keep(
        self: &Arc<Self>,
        io: &DataPath,
        state: &mut InodeState,
        changes: AttrChanges,
        now: pb::Timestamp,
    ) -> Option<pb::Attr> {
        let (known, _) = state.known_attr?;
        if state.lease_holder.is_none() || !state.has_uncommitted() {
            return None;
        }
        let kept = state.deferred.unwrap_or_default().then(changes);
        state.deferred = Some(kept);
        if state.queue.len() < MAX_QUEUED && state.refused_write().is_none() {
            self.queue(io, state, None);
        }
        let mut attr = known;
        kept.apply(&mut attr);
        attr.size = state.size();
        attr.ctime = Some(now);
        self.publish(state);
        Some(attr)
    }

    /// Remembers the attributes the master answered for the file (at open or create).
    pub async fn note_attr(&self, attr: pb::Attr) {
        self.state.lock().await.known_attr = Some((attr, Instant::now()));
    }

    /// Forgets the attributes the master last answered (a change made elsewhere, such as a
    /// new link, moved them on): until the next commit, changes are sent at once again.
    pub async fn forget_attr(&self) {
        self.state.lock().await.known_attr = None;
    }

    /// The file's attributes without asking the master, for a mount in the middle of writing
    /// it (writes or attribute changes not committed yet): what the master answered at most
    /// `ttl` before `now` (open, create, the last commit or attribute change), with the local
    /// size; `None` otherwise, or if the state is busy. The kernel asks for them right before
    /// a `chown` (to recompute the setuid bits it clears), which a tar extract makes for
    /// every file between its write and its close. No staler than the kernel's own attribute
    /// cache (a rename's new ctime may show up to `ttl` late); the writer lease keeps other
    /// mounts from the data.
    pub fn recent_attr(&self, ttl: Duration, now: Instant) -> Option<pb::Attr> {
        let state = self.state.try_lock().ok()?;
        let (attr, at) = state.known_attr?;
        let writing = state.has_uncommitted() || state.deferred.is_some();
        if state.lease_holder.is_none() || !writing || now.saturating_duration_since(at) > ttl {
            return None;
        }
        Some(pb::Attr {
            size: state.size(),
            ..attr
        })
    }

    /// Lays the kept changes (if any) over attributes of this file from the master.
    pub fn overlay(&self, attr: &mut pb::Attr) {
        let kept = *self.deferred.lock().expect("kept changes poisoned");
        if let Some(changes) = kept {
            changes.apply(attr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> pb::Timestamp {
        pb::Timestamp { secs, nanos: 0 }
    }

    #[test]
    fn later_changes_win_and_only_set_fields_apply() {
        let utimens = pb::SetAttrRequest {
            mtime: Some(ts(5)),
            ..Default::default()
        };
        let chown = pb::SetAttrRequest {
            uid: Some(7),
            gid: Some(8),
            ..Default::default()
        };
        let chmod = pb::SetAttrRequest {
            perm: Some(0o100600),
            ..Default::default()
        };
        let again = pb::SetAttrRequest {
            perm: Some(0o644),
            ..Default::default()
        };
        let kept = [utimens, chown, chmod, again]
            .iter()
            .map(|req| AttrChanges::of(req).unwrap())
            .fold(AttrChanges::default(), AttrChanges::then);
        let mut attr = pb::Attr {
            perm: 0o755,
            uid: 1,
            gid: 2,
            atime: Some(ts(1)),
            mtime: Some(ts(1)),
            ..Default::default()
        };
        kept.apply(&mut attr);
        assert_eq!((attr.perm, attr.uid, attr.gid), (0o644, 7, 8));
        assert_eq!((attr.atime, attr.mtime), (Some(ts(1)), Some(ts(5))));
        let req = kept.request(3);
        assert_eq!((req.ino, req.perm, req.size), (3, Some(0o644), None));
    }

    #[test]
    fn size_changes_and_access_marks_are_never_kept() {
        let truncate = pb::SetAttrRequest {
            size: Some(0),
            perm: Some(0o600),
            ..Default::default()
        };
        let mark = pb::SetAttrRequest {
            mark_access: true,
            ..Default::default()
        };
        assert_eq!(AttrChanges::of(&truncate), None);
        assert_eq!(AttrChanges::of(&mark), None);
    }
}
