//! Writer leases and hidden files of [`Client`]: taking and giving up a file's writer lease
//! (recovering a file whose previous writer died), and the last close of an open file, which
//! removes the hidden name of a file unlinked while open here.

use dfs_proto::FsError;
use dfs_proto::pb;

use super::Client;
use crate::lease;

impl Client {
    /// Acquires the writer lease of `ino` (waiting for another mount's for the configured
    /// time) and recovers the file if its previous writer died holding it.
    pub(super) async fn acquire_lease(&self, ino: u64) -> Result<(), FsError> {
        let leases = &self.shared.leases;
        let acquired = leases.acquire(self.master(), ino).await?;
        if acquired.recover {
            if let Err(err) = lease::recover(self.io(), ino, leases.holder()).await {
                self.release_lease(ino);
                return Err(err);
            }
        }
        Ok(())
    }

    pub(super) fn release_lease(&self, ino: u64) {
        self.shared.leases.release(self.master(), ino);
    }

    /// Drops one handle of `ino`; with the last one goes the inode's state and its lease —
    /// unless the file was opened again meanwhile (the kernel sends the release of a closed
    /// descriptor after `close` returned, so a new open can come first).
    pub(super) async fn close_inode(&self, ino: u64) {
        if self.shared.inodes.close(ino) {
            self.shared.fresh.forget(ino);
            let inodes = &self.shared.inodes;
            self.shared
                .leases
                .release_unless(self.master(), ino, || inodes.get(ino).is_some());
            let hidden = self
                .shared
                .hidden
                .lock()
                .expect("hidden lock poisoned")
                .remove(&ino);
            if let Some((parent, name)) = hidden {
                if let Err(err) = self.master().unlink(parent, &name).await.map(drop) {
                    tracing::warn!(ino, error = %err, "removing an unlinked file at its last close failed");
                }
            }
        }
    }

    /// `OpenFile` with this mount's writer lease (waiting for another mount's as
    /// [`MountLeases::acquire`](lease::MountLeases::acquire) does); a file whose previous
    /// writer died is recovered, then its recovered chunk map loaded.
    pub(super) async fn open_leased(
        &self,
        ino: u64,
        read: bool,
    ) -> Result<pb::OpenFileReply, FsError> {
        let leases = &self.shared.leases;
        let (acquired, reply) = leases
            .acquire_with(self.master(), || async {
                let reply = self
                    .master()
                    .open_file(ino, read, Some(leases.holder()))
                    .await?;
                Ok((ino, reply.lease.unwrap_or_default(), reply))
            })
            .await?;
        if !acquired.recover {
            return Ok(reply);
        }
        if let Err(err) = lease::recover(self.io(), ino, leases.holder()).await {
            self.release_lease(ino);
            return Err(err);
        }
        let recovered = self.master().open_file(ino, false, None).await?;
        Ok(pb::OpenFileReply {
            access_marked: reply.access_marked,
            ..recovered
        })
    }

    /// Creates (or, without `O_EXCL`, possibly finds) a regular file and opens it. A create
    /// Whether `ino` was unlinked while open here and lives on under a hidden name.
    pub(super) fn is_hidden(&self, ino: u64) -> bool {
        let hidden = self.shared.hidden.lock().expect("hidden lock poisoned");
        !hidden.is_empty() && hidden.contains_key(&ino)
    }
}
