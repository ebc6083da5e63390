//! The metadata as openraft's state machine: committed entries are applied to the master's
//! store, and snapshots carry the whole metadata to a member that is too far behind.
//!
//! The position of the last applied entry and the group's membership live in the `meta`
//! column family and are written in the same batch as the entries' commands, so after a crash
//! the store is exactly as of some applied entry and openraft re-applies the rest from the log.
//! Applied batches are not synced: the log holds every entry, and is synced as
//! [`log_store`](crate::raft::log_store) says.
//!
//! A snapshot is a point-in-time view of every metadata column family (a RocksDB snapshot, so
//! it is consistent while entries keep being applied), encoded as one stream of key-value
//! pairs. Installing one replaces the metadata of this member in one atomic batch.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, StorageIOError, StoredMembership,
};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::raft::{NodeId, StorageError, TypeConfig, storage_error};
use crate::store::{CF_META, STATE_CFS, Store};

use crate::store::meta::{RAFT_APPLIED as APPLIED, RAFT_MEMBERSHIP as MEMBERSHIP};

/// Membership as the state machine stores it.
type Membership = StoredMembership<NodeId, BasicNode>;

/// The key-value pairs of one column family.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The contents of a snapshot: every metadata column family, by its index in [`STATE_CFS`].
#[derive(Serialize, Deserialize)]
struct SnapshotContents {
    column_families: Vec<(u8, Entries)>,
}

/// A snapshot as kept in memory: its metadata and its encoded contents.
type Kept = (SnapshotMeta<NodeId, BasicNode>, Vec<u8>);

/// The metadata of this member as openraft applies to it. Cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    /// The last snapshot built or installed, kept for members that need it.
    current: Arc<std::sync::Mutex<Option<Kept>>>,
}

impl StateMachine {
    /// The state machine over `store`.
    pub fn new(store: Arc<Store>) -> StateMachine {
        StateMachine {
            store,
            current: Arc::default(),
        }
    }

    /// The last applied log id and membership, as stored.
    pub fn applied(&self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        let read = |key| {
            self.store
                .raw(CF_META, key)
                .map_err(|e| storage_error(StorageIOError::read_state_machine, e))
        };
        let decode_error = |e| storage_error(StorageIOError::read_state_machine, e);
        let applied = match read(APPLIED)? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_error)?,
            None => None,
        };
        let membership = match read(MEMBERSHIP)? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_error)?,
            None => Membership::default(),
        };
        Ok((applied, membership))
    }

    /// Builds a snapshot of the metadata as it is now.
    fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let error = |e: crate::Error| storage_error(StorageIOError::read_state_machine, e);
        let view = self.store.snapshot();
        let mut column_families = Vec::with_capacity(STATE_CFS.len());
        for (index, cf) in STATE_CFS.iter().enumerate() {
            let entries = self.store.snapshot_entries(&view, cf).map_err(error)?;
            column_families.push((index as u8, entries));
        }
        drop(view);
        // The applied position and membership are among the `meta` entries just read.
        let find = |key: &[u8]| {
            column_families
                .iter()
                .find(|(i, _)| STATE_CFS[usize::from(*i)] == CF_META)
                .and_then(|(_, entries)| entries.iter().find(|(k, _)| k == key))
                .map(|(_, v)| v.clone())
        };
        let decode_error = |e| storage_error(StorageIOError::read_state_machine, e);
        let last_log_id: Option<LogId<NodeId>> = match find(APPLIED) {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_error)?,
            None => None,
        };
        let last_membership: Membership = match find(MEMBERSHIP) {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_error)?,
            None => Membership::default(),
        };
        let bytes = postcard::to_allocvec(&SnapshotContents { column_families })
            .map_err(|e| storage_error(StorageIOError::read_state_machine, e))?;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, bytes.len()),
            None => format!("empty-{}", bytes.len()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        tracing::info!(snapshot = %meta.snapshot_id, bytes = bytes.len(), "built a metadata snapshot");
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }

    /// Replaces this member's metadata with a snapshot's, in one atomic batch.
    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        bytes: Vec<u8>,
    ) -> Result<(), StorageError> {
        let write_error = |e: crate::Error| storage_error(StorageIOError::write_state_machine, e);
        let contents: SnapshotContents =
            postcard::from_bytes(&bytes).map_err(|e| storage_error(StorageIOError::read, e))?;
        let mut batch = WriteBatch::default();
        for cf in STATE_CFS {
            for (key, _) in self.store.raw_range(cf, &[], None).map_err(write_error)? {
                batch.delete_cf(self.store.cf(cf), key);
            }
        }
        for (index, entries) in &contents.column_families {
            let Some(cf) = STATE_CFS.get(usize::from(*index)) else {
                return Err(storage_error(
                    StorageIOError::read,
                    format!("snapshot has column family {index}, unknown to this build"),
                ));
            };
            for (key, value) in entries {
                batch.put_cf(self.store.cf(cf), key, value);
            }
        }
        put_position(
            &mut batch,
            &self.store,
            meta.last_log_id.as_ref(),
            Some(&meta.last_membership),
        )?;
        self.store
            .write_uncounted(batch, true)
            .map_err(write_error)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = bytes.len(), "installed a metadata snapshot");
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), bytes));
        Ok(())
    }
}

/// Adds the applied position (and a new membership) to `batch`.
fn put_position(
    batch: &mut WriteBatch,
    store: &Store,
    applied: Option<&LogId<NodeId>>,
    membership: Option<&Membership>,
) -> Result<(), StorageError> {
    let encode_error = |e| storage_error(StorageIOError::write_state_machine, e);
    let applied = postcard::to_allocvec(&applied).map_err(encode_error)?;
    batch.put_cf(store.cf(CF_META), APPLIED, applied);
    if let Some(membership) = membership {
        let membership = postcard::to_allocvec(membership).map_err(encode_error)?;
        batch.put_cf(store.cf(CF_META), MEMBERSHIP, membership);
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let machine = self.clone();
        tokio::task::spawn_blocking(move || machine.build())
            .await
            .map_err(|e| storage_error(StorageIOError::read_state_machine, e))?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        self.applied()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    self.store
                        .append_command(&mut batch, &command)
                        .map_err(|e| storage_error(StorageIOError::write_state_machine, e))?;
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                }
            }
            last = Some(entry.log_id);
            replies.push(());
        }
        put_position(&mut batch, &self.store, last.as_ref(), membership.as_ref())?;
        self.store
            .write_uncounted(batch, false)
            .map_err(|e| storage_error(StorageIOError::write_state_machine, e))?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let machine = self.clone();
        let meta = meta.clone();
        let bytes = snapshot.into_inner();
        tokio::task::spawn_blocking(move || machine.install(&meta, bytes))
            .await
            .map_err(|e| storage_error(StorageIOError::write_state_machine, e))?
    }

    /// The last snapshot built or installed (kept in memory only). None after a restart:
    /// openraft then builds one at start-up if its log has been compacted, the only case in
    /// which a member can need one, so a master whose log is whole starts without copying its
    /// metadata.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(current.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::{CommittedLeaderId, Membership as RaftMembership};

    use super::*;
    use crate::store::command::Command;
    use crate::store::{CF_INODES, SyncPolicy};

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn put(index: u64, key: &str) -> Entry<TypeConfig> {
        let mut command = Command::default();
        command.put(CF_INODES, key.as_bytes().to_vec(), index.to_be_bytes());
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(command),
        }
    }

    fn open(dir: &std::path::Path) -> (Arc<Store>, StateMachine) {
        let store = Arc::new(Store::open(dir, SyncPolicy::Never).unwrap());
        (Arc::clone(&store), StateMachine::new(store))
    }

    #[tokio::test]
    async fn applied_entries_and_their_position_land_together() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut machine) = open(dir.path());
        assert_eq!(machine.applied_state().await.unwrap().0, None);

        let members = BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]);
        let membership = Entry {
            log_id: log_id(1),
            payload: EntryPayload::Membership(RaftMembership::new(vec![[1].into()], members)),
        };
        let replies = machine
            .apply(vec![membership, put(2, "a"), put(3, "b")])
            .await
            .unwrap();
        assert_eq!(replies.len(), 3);
        let (applied, membership) = machine.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(3)));
        assert_eq!(membership.log_id(), &Some(log_id(1)));
        assert_eq!(
            store.raw(CF_INODES, b"b").unwrap(),
            Some(3u64.to_be_bytes().to_vec())
        );
    }

    #[tokio::test]
    async fn a_snapshot_replaces_the_metadata_of_a_member_that_lags() {
        let leader_dir = tempfile::tempdir().unwrap();
        let (_, mut leader) = open(leader_dir.path());
        leader
            .apply(vec![put(1, "kept"), put(2, "new")])
            .await
            .unwrap();
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2)));

        let lagging_dir = tempfile::tempdir().unwrap();
        let (lagging_store, mut lagging) = open(lagging_dir.path());
        lagging
            .apply(vec![put(1, "stale-only-here")])
            .await
            .unwrap();
        lagging
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();

        assert_eq!(lagging.applied_state().await.unwrap().0, Some(log_id(2)));
        assert!(lagging_store.raw(CF_INODES, b"new").unwrap().is_some());
        assert!(
            lagging_store
                .raw(CF_INODES, b"stale-only-here")
                .unwrap()
                .is_none()
        );
        let current = lagging.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(2)));
    }
}
