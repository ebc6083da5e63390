//! [`KnownNames`]: directories whose every name this mount knows, so that a lookup of a name
//! that is not there is answered `ENOENT` without asking the master.
//!
//! `tar -x`, `cp -r` and `git checkout` look up every name before creating it, and the answer
//! is almost always "no such name": one master round trip per file for nothing. A directory
//! this mount creates starts empty, and the master numbers the name changes of every
//! directory (`Attr.entry_changes`, answered after each change in `ChangedDirs`). While each
//! change this mount makes in the directory comes back numbered one past the last one it saw,
//! no other mount changed a name there in between, so the set of names this mount kept is
//! the directory's. Any other number (another mount's change, two of this mount's own
//! changes answered out of order) forgets the directory, and so does a rename in it (which
//! numbers two changes in one call).
//!
//! An absent name is answered locally only within the entry TTL after the last confirmation:
//! another mount's create after it goes unseen at most that long, as a negative entry the
//! kernel cached would. A create of such a name still reaches the master, which answers
//! `EEXIST` (or the existing file) as it should.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::pb;

/// Directories followed at most; past it the oldest knowledge is dropped wholesale.
const DIRS_LIMIT: usize = 1024;

/// Names kept at most per directory; a larger directory is forgotten (its lookups ask the
/// master, as every lookup did before).
const NAMES_LIMIT: usize = 1 << 16;

/// What this mount did to one name of a directory, as the master's reply confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameChange<'a> {
    /// `name` was created in `dir` (create, mkdir, mknod, symlink, link).
    Added { dir: u64, name: &'a [u8] },
    /// `name` was removed from `dir` (unlink, rmdir).
    Removed { dir: u64, name: &'a [u8] },
    /// Anything else (a rename): the directories it changed are forgotten.
    Other,
}

/// The names of one directory as this mount last confirmed them.
#[derive(Debug)]
struct Known {
    names: HashSet<Vec<u8>>,
    /// The directory's `entry_changes` that `names` reflects.
    changes: u64,
    /// When the master last confirmed that no other mount changed a name here.
    confirmed: Instant,
}

/// The directories whose every name this mount knows (see the module documentation).
#[derive(Debug, Default)]
pub struct KnownNames {
    // A std mutex: held only to look up or update one entry.
    dirs: Mutex<HashMap<u64, Known>>,
}

impl KnownNames {
    fn dirs(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Known>> {
        self.dirs.lock().expect("known names poisoned")
    }

    /// This mount created directory `attr`: empty, as of the master's answer at `now`.
    pub fn created(&self, attr: &pb::Attr, now: Instant) {
        let mut dirs = self.dirs();
        if dirs.len() >= DIRS_LIMIT {
            dirs.clear();
        }
        dirs.insert(
            attr.ino,
            Known {
                names: HashSet::new(),
                changes: attr.entry_changes,
                confirmed: now,
            },
        );
    }

    /// This mount's `change` succeeded, and the master answered the changed directories'
    /// attributes `dirs` at `now`. A directory whose count moved by exactly one takes the
    /// change; any other directory it names is forgotten.
    pub fn changed(&self, change: NameChange<'_>, dirs: &[pb::Attr], now: Instant) {
        let mut known = self.dirs();
        if known.is_empty() {
            return;
        }
        for attr in dirs {
            let Some(entry) = known.get_mut(&attr.ino) else {
                continue;
            };
            let applied = attr.entry_changes == entry.changes + 1
                && match change {
                    NameChange::Added { dir, name } if dir == attr.ino => {
                        entry.names.len() < NAMES_LIMIT && entry.names.insert(name.to_vec())
                    }
                    NameChange::Removed { dir, name } if dir == attr.ino => {
                        entry.names.remove(name)
                    }
                    _ => false,
                };
            if applied {
                entry.changes = attr.entry_changes;
                entry.confirmed = now;
            } else {
                known.remove(&attr.ino);
            }
        }
    }

    /// Whether `name` is known to be absent from directory `dir`: the directory is followed
    /// and was confirmed at most `ttl` before `now`.
    pub fn absent(&self, dir: u64, name: &[u8], ttl: Duration, now: Instant) -> bool {
        let known = self.dirs();
        known.get(&dir).is_some_and(|entry| {
            now.saturating_duration_since(entry.confirmed) <= ttl && !entry.names.contains(name)
        })
    }

    /// Forgets directory `dir` (a change this mount cannot follow, or one that failed in a
    /// way that leaves the directory's names in doubt).
    pub fn forget(&self, dir: u64) {
        let mut known = self.dirs();
        if !known.is_empty() {
            known.remove(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(ino: u64, entry_changes: u64) -> pb::Attr {
        pb::Attr {
            ino,
            entry_changes,
            ..Default::default()
        }
    }

    const TTL: Duration = Duration::from_secs(1);

    #[test]
    fn a_created_directory_knows_its_names_through_this_mounts_changes() {
        let known = KnownNames::default();
        let t0 = Instant::now();
        known.created(&dir(7, 0), t0);
        assert!(known.absent(7, b"a", TTL, t0));
        // Not followed: ask the master.
        assert!(!known.absent(8, b"a", TTL, t0));
        let added = NameChange::Added { dir: 7, name: b"a" };
        known.changed(added, &[dir(7, 1)], t0);
        assert!(!known.absent(7, b"a", TTL, t0));
        assert!(known.absent(7, b"b", TTL, t0));
        let removed = NameChange::Removed { dir: 7, name: b"a" };
        known.changed(removed, &[dir(7, 2)], t0);
        assert!(known.absent(7, b"a", TTL, t0));
    }

    #[test]
    fn another_mounts_change_or_a_rename_forgets_the_directory() {
        let known = KnownNames::default();
        let t0 = Instant::now();
        known.created(&dir(7, 0), t0);
        // The count moved by two: someone else changed a name in between.
        let added = NameChange::Added { dir: 7, name: b"a" };
        known.changed(added, &[dir(7, 2)], t0);
        assert!(!known.absent(7, b"b", TTL, t0));

        known.created(&dir(7, 0), t0);
        known.created(&dir(9, 0), t0);
        known.changed(NameChange::Other, &[dir(7, 1), dir(9, 1)], t0);
        assert!(!known.absent(7, b"b", TTL, t0));
        assert!(!known.absent(9, b"b", TTL, t0));

        // A reply that repeats a count (answered out of order) forgets it too.
        known.created(&dir(7, 0), t0);
        let added = NameChange::Added { dir: 7, name: b"a" };
        known.changed(added, &[dir(7, 0)], t0);
        assert!(!known.absent(7, b"b", TTL, t0));
    }

    #[test]
    fn absence_is_answered_only_within_the_ttl_of_the_last_confirmation() {
        let known = KnownNames::default();
        let t0 = Instant::now();
        known.created(&dir(7, 0), t0);
        assert!(known.absent(7, b"a", TTL, t0 + TTL));
        assert!(!known.absent(7, b"a", TTL, t0 + TTL * 2));
        // Each confirmed change of this mount renews it.
        let added = NameChange::Added { dir: 7, name: b"x" };
        known.changed(added, &[dir(7, 1)], t0 + TTL * 2);
        assert!(known.absent(7, b"a", TTL, t0 + TTL * 2));
        known.forget(7);
        assert!(!known.absent(7, b"a", TTL, t0 + TTL * 2));
    }

    #[test]
    fn followed_directories_and_their_names_are_bounded() {
        let known = KnownNames::default();
        let t0 = Instant::now();
        for ino in 0..(DIRS_LIMIT as u64 * 2) {
            known.created(&dir(ino, 0), t0);
        }
        assert!(known.dirs().len() <= DIRS_LIMIT);
        let last = DIRS_LIMIT as u64 * 2 - 1;
        assert!(known.absent(last, b"a", TTL, t0));

        known.created(&dir(1, 0), t0);
        for i in 0..NAMES_LIMIT as u64 {
            let name = i.to_be_bytes();
            let added = NameChange::Added {
                dir: 1,
                name: &name,
            };
            known.changed(added, &[dir(1, i + 1)], t0);
        }
        assert!(!known.absent(1, &0u64.to_be_bytes(), TTL, t0));
        // One name more than it keeps: forgotten rather than half known.
        let name = u64::MAX.to_be_bytes();
        let added = NameChange::Added {
            dir: 1,
            name: &name,
        };
        known.changed(added, &[dir(1, NAMES_LIMIT as u64 + 1)], t0);
        assert!(!known.absent(1, b"zzz", TTL, t0));
    }
}
