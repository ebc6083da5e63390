//! A mutation as the masters of a group agree on it: the exact key writes the leader decided.
//!
//! The leader runs every mutation against its store under the single writer lock ([`Txn`]):
//! it reads what it needs, makes every non-deterministic choice (the time, new inode and chunk
//! ids, replica placement, credentials), and ends with a list of puts and deletes. That list is
//! the [`Command`] the group replicates; every member, the leader included, applies it to its
//! own store in log order, in one atomic batch ([`Store::apply`]). Applying a command is pure
//! key-value work, so every member ends with the same bytes whatever its clock or its view of
//! the chunkservers.
//!
//! Column families are named by their index in [`STATE_CFS`], which is part of the log's
//! format: a new column family is added at the end, never in between.
//!
//! [`Txn`]: crate::store::Txn

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{STATE_CFS, Store};

/// One replicated mutation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The writes, applied together or not at all.
    pub ops: Vec<Op>,
    /// Whether each member syncs its log to disk before acknowledging this entry. Mutations
    /// that may be acknowledged before the sync (see [`crate::store::SyncPolicy::Deferred`])
    /// are written to the log at once and synced within the sync interval.
    pub sync: bool,
}

/// One write of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key` in the column family `STATE_CFS[cf]` to `value`.
    Put {
        /// Index of the column family in [`STATE_CFS`].
        cf: u8,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Deletes `key` from the column family `STATE_CFS[cf]`.
    Delete {
        /// Index of the column family in [`STATE_CFS`].
        cf: u8,
        /// The key.
        key: Vec<u8>,
    },
    /// Deletes every key of `STATE_CFS[cf]` in `[from, to)`.
    DeleteRange {
        /// Index of the column family in [`STATE_CFS`].
        cf: u8,
        /// First key deleted.
        from: Vec<u8>,
        /// First key kept.
        to: Vec<u8>,
    },
}

impl Command {
    /// A command that writes nothing and is synced: once the group acknowledges it, every
    /// entry before it is on the disk of a majority (a client's `fsync`).
    pub fn sync_marker() -> Command {
        Command {
            ops: Vec::new(),
            sync: true,
        }
    }

    /// Adds a put to `cf` (one of [`STATE_CFS`]).
    pub fn put(&mut self, cf: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            cf: cf_index(cf),
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a delete from `cf` (one of [`STATE_CFS`]).
    pub fn delete(&mut self, cf: &str, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            cf: cf_index(cf),
            key: key.into(),
        });
    }

    /// Adds a delete of every key of `cf` in `[from, to)`.
    pub fn delete_range(&mut self, cf: &str, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(Op::DeleteRange {
            cf: cf_index(cf),
            from: from.into(),
            to: to.into(),
        });
    }

    /// Whether the command writes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The index of `cf` in [`STATE_CFS`]. Every caller names one of the constants, so a miss is
/// a programming error.
fn cf_index(cf: &str) -> u8 {
    let index = STATE_CFS
        .iter()
        .position(|name| *name == cf)
        .unwrap_or_else(|| panic!("{cf} is not a state column family"));
    u8::try_from(index).expect("fewer than 256 column families")
}

impl Store {
    /// The batch that applies `command`.
    pub(crate) fn batch_of(&self, command: &Command) -> Result<WriteBatch> {
        let mut batch = WriteBatch::default();
        self.append_command(&mut batch, command)?;
        Ok(batch)
    }

    /// Adds the writes of `command` to `batch` (which may hold other commands and the applied
    /// log position, to be written as one). A column family index this build does not know
    /// means the log was written by a newer master: refused, never guessed at.
    pub(crate) fn append_command(&self, batch: &mut WriteBatch, command: &Command) -> Result<()> {
        for op in &command.ops {
            let (Op::Put { cf, .. } | Op::Delete { cf, .. } | Op::DeleteRange { cf, .. }) = op;
            let name = STATE_CFS
                .get(usize::from(*cf))
                .ok_or_else(|| Error::Corrupt {
                    cf: "raft_log",
                    detail: format!("a command names column family {cf}, unknown to this build"),
                })?;
            let handle = self.cf(name);
            match op {
                Op::Put { key, value, .. } => batch.put_cf(handle, key, value),
                Op::Delete { key, .. } => batch.delete_cf(handle, key),
                Op::DeleteRange { from, to, .. } => batch.delete_range_cf(handle, from, to),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CF_INODES, CF_META, SyncPolicy};

    #[test]
    fn a_command_round_trips_and_applies_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SyncPolicy::Never).unwrap();
        let mut command = Command::default();
        command.put(CF_META, b"k".to_vec(), 7u64.to_be_bytes());
        command.put(CF_INODES, b"gone".to_vec(), b"x".to_vec());
        command.delete(CF_INODES, b"gone".to_vec());
        let bytes = postcard::to_allocvec(&command).unwrap();
        let decoded: Command = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, command);

        store
            .write_with(store.batch_of(&decoded).unwrap(), false)
            .unwrap();
        assert_eq!(store.meta(b"k").unwrap(), Some(7));
        assert!(store.raw(CF_INODES, b"gone").unwrap().is_none());
    }

    #[test]
    fn a_command_naming_an_unknown_column_family_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SyncPolicy::Never).unwrap();
        let command = Command {
            ops: vec![Op::Delete {
                cf: 200,
                key: b"k".to_vec(),
            }],
            sync: false,
        };
        let Err(err) = store.batch_of(&command) else {
            panic!("a command naming column family 200 was accepted");
        };
        assert!(err.to_string().contains("column family 200"), "{err}");
    }
}
