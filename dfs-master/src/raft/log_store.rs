//! The Raft log of one member, in the master's own RocksDB: entries in `raft_log` keyed by
//! index (big-endian, so iteration is log order), the vote and the log bounds in `raft_state`.
//!
//! Sharing the database with the metadata means one write-ahead log for both: an entry synced
//! here also syncs every metadata batch applied before it. An entry is synced before openraft
//! is told it is stored when its command asks for it (everything but the mutations
//! [`SyncPolicy::Deferred`](crate::store::SyncPolicy::Deferred) lets wait) and for membership
//! changes; the others are written to the WAL at once (a killed process loses none) and synced
//! by the member's periodic log sync. The vote is always synced: a member must never vote
//! twice in a term, even across a power cut.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, EntryPayload, LogId, OptionalSend, StorageIOError, Vote};
use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::raft::{NodeId, StorageError, TypeConfig, storage_error};
use crate::store::{CF_RAFT_LOG, CF_RAFT_STATE, Store};

/// `raft_state` key of the vote.
pub(crate) const VOTE: &[u8] = b"vote";
/// `raft_state` key of the last log id known committed.
const COMMITTED: &[u8] = b"committed";
/// `raft_state` key of the last purged log id.
pub(crate) const PURGED: &[u8] = b"purged";

/// This member's Raft log over the master's store. Cheap to clone (openraft takes a reader
/// apart from the writer).
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
}

impl LogStore {
    /// The log kept in `store`.
    pub fn new(store: Arc<Store>) -> LogStore {
        LogStore { store }
    }

    fn state<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let bytes = self
            .store
            .raw(CF_RAFT_STATE, key)
            .map_err(|e| storage_error(StorageIOError::read, e))?;
        bytes
            .map(|b| postcard::from_bytes(&b))
            .transpose()
            .map_err(|e| storage_error(StorageIOError::read, e))
    }

    fn set_state<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let bytes =
            postcard::to_allocvec(value).map_err(|e| storage_error(StorageIOError::write, e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.store.cf(CF_RAFT_STATE), key, bytes);
        self.store
            .write_uncounted(batch, sync)
            .map_err(|e| storage_error(StorageIOError::write, e))
    }
}

/// Decodes one stored entry.
fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| storage_error(StorageIOError::read_logs, e))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        let end = end.map(u64::to_be_bytes);
        let entries = self
            .store
            .raw_range(
                CF_RAFT_LOG,
                &start.to_be_bytes(),
                end.as_ref().map(|e| &e[..]),
            )
            .map_err(|e| storage_error(StorageIOError::read_logs, e))?;
        entries
            .iter()
            .map(|(_, value)| decode_entry(value))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.state(PURGED)?;
        let last = self
            .store
            .raw_last(CF_RAFT_LOG)
            .map_err(|e| storage_error(StorageIOError::read_logs, e))?;
        let last_log_id = match last {
            Some((_, value)) => Some(decode_entry(&value)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.set_state(VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.state(VOTE)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        // Unsynced: a member that forgets how far it knew the log committed learns it again
        // from the leader.
        self.set_state(COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.state::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut sync = false;
        for entry in entries {
            sync |= match &entry.payload {
                EntryPayload::Normal(command) => command.sync,
                EntryPayload::Membership(_) => true,
                EntryPayload::Blank => false,
            };
            let bytes = postcard::to_allocvec(&entry)
                .map_err(|e| storage_error(StorageIOError::write_logs, e))?;
            batch.put_cf(
                self.store.cf(CF_RAFT_LOG),
                entry.log_id.index.to_be_bytes(),
                bytes,
            );
        }
        let written = if sync {
            self.store.write_uncounted(batch, true)
        } else {
            self.store.write_with(batch, false)
        };
        let result = written.map_err(|e| std::io::Error::other(e.to_string()));
        let failed = result.as_ref().err().map(ToString::to_string);
        callback.log_io_completed(result);
        match failed {
            Some(err) => Err(storage_error(StorageIOError::write_logs, err)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.store.cf(CF_RAFT_LOG),
            log_id.index.to_be_bytes(),
            u64::MAX.to_be_bytes(),
        );
        batch.delete_cf(self.store.cf(CF_RAFT_LOG), u64::MAX.to_be_bytes());
        self.store
            .write_uncounted(batch, true)
            .map_err(|e| storage_error(StorageIOError::write_logs, e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        // The bound first: a crash between the two leaves entries below it, which are never
        // read again and go with the next purge.
        self.set_state(PURGED, &log_id, true)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.store.cf(CF_RAFT_LOG),
            0u64.to_be_bytes(),
            (log_id.index + 1).to_be_bytes(),
        );
        self.store
            .write_uncounted(batch, false)
            .map_err(|e| storage_error(StorageIOError::write_logs, e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;
    use crate::store::SyncPolicy;
    use crate::store::command::Command;

    fn entry(term: u64, index: u64, sync: bool) -> Entry<TypeConfig> {
        let mut command = Command::default();
        command.put(
            crate::store::CF_META,
            format!("k{index}").into_bytes(),
            index.to_be_bytes(),
        );
        command.sync = sync;
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(command),
        }
    }

    async fn append(log: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
        log.blocking_append(entries).await.unwrap();
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn entries_are_read_back_in_order_then_truncated_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), SyncPolicy::Always).unwrap());
        let mut log = LogStore::new(Arc::clone(&store));
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, None);

        append(&mut log, (1..=5).map(|i| entry(1, i, i % 2 == 0)).collect()).await;
        assert_eq!(
            indexes(&log.try_get_log_entries(2..4).await.unwrap()),
            [2, 3]
        );
        assert_eq!(
            indexes(&log.try_get_log_entries(4..).await.unwrap()),
            [4, 5]
        );
        assert_eq!(
            log.try_get_log_entries(..).await.unwrap()[2],
            entry(1, 3, false)
        );

        // A new leader's entries replace a conflicting tail.
        log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4))
            .await
            .unwrap();
        append(&mut log, vec![entry(2, 4, true)]).await;
        let state = log.get_log_state().await.unwrap();
        assert_eq!(
            state.last_log_id,
            Some(LogId::new(CommittedLeaderId::new(2, 1), 4))
        );

        let purged = LogId::new(CommittedLeaderId::new(1, 1), 2);
        log.purge(purged).await.unwrap();
        assert_eq!(indexes(&log.try_get_log_entries(..).await.unwrap()), [3, 4]);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(purged));

        // A purged log keeps its bound even when no entry is left.
        log.purge(LogId::new(CommittedLeaderId::new(2, 1), 4))
            .await
            .unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, state.last_purged_log_id);
    }

    #[tokio::test]
    async fn the_vote_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new(7, 2);
        {
            let store = Arc::new(Store::open(dir.path(), SyncPolicy::Always).unwrap());
            let mut log = LogStore::new(store);
            assert_eq!(log.read_vote().await.unwrap(), None);
            log.save_vote(&vote).await.unwrap();
        }
        let store = Arc::new(Store::open(dir.path(), SyncPolicy::Always).unwrap());
        assert_eq!(LogStore::new(store).read_vote().await.unwrap(), Some(vote));
    }
}
