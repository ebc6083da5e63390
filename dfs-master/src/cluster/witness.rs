//! Which chunk versions some replica is known to hold: the guard against deleting every copy
//! of a chunk whose version moved ahead of its replicas.
//!
//! The master raises a chunk's version before any replica holds it in one place:
//! `ReplaceReplicas` bumps the version, then the writer rewrites the span on the survivors.
//! Until that rewrite lands, every replica is older than the record, so stale-replica cleanup
//! (a block report's version check, a queued deletion of a dropped replica) would delete all
//! of them if the writer died in between. So a replica of a live chunk is deleted only once a
//! replica at the record's current version is known to exist: seen in a block report, written
//! by a chain write whose commit named that version, stamped by a lease holder, or made by a
//! completed copy. Until then the stale replicas stay on disk (unreadable to readers at the
//! new version, but recoverable).
//!
//! The witness is in memory: after a master restart it starts empty and fills from the first
//! full block reports, so a restart only delays deletions, never causes one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The highest version of each chunk some replica is known to hold.
#[derive(Debug, Default)]
pub struct VersionWitness {
    // A std mutex: held for one map operation, never across an `.await` or the store writer.
    held: Mutex<HashMap<u64, u64>>,
}

impl VersionWitness {
    fn held(&self) -> MutexGuard<'_, HashMap<u64, u64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a replica of `chunk_id` at `version` exists.
    pub fn confirm(&self, chunk_id: u64, version: u64) {
        let mut held = self.held();
        let known = held.entry(chunk_id).or_insert(version);
        *known = (*known).max(version);
    }

    /// Whether a replica of `chunk_id` at `version` or newer is known to exist, so older
    /// replicas may go.
    pub fn is_confirmed(&self, chunk_id: u64, version: u64) -> bool {
        self.held().get(&chunk_id).is_some_and(|&v| v >= version)
    }

    /// Forgets a chunk that no file references any more.
    pub fn forget(&self, chunk_id: u64) {
        self.held().remove(&chunk_id);
    }
}
