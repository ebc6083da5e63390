//! Changes to the replica list of an existing chunk that the data path asks for: replacing
//! replicas that failed during a write, and dropping replicas a reader found bad.
//!
//! A chain write that loses a server must still complete for the application. The writer tells the
//! master which servers failed; the master drops them and answers with the next version, so the
//! writer can rewrite its data on the survivors (which adopt the newer version on write) and the
//! dropped replicas, left at the old version, are recognisable as stale wherever they turn up
//! again. The record itself moves to the new version only with the writer's commit, once the
//! survivors hold it (as a lease holder's stamps do): if the rewrite never lands (the writer dies,
//! or the survivors fail too) the record still names the version the survivors hold, so the chunk
//! stays readable and nothing deletes them. No fresh server is added: it would not hold the bytes
//! written to the chunk before, and healing under-replicated chunks is re-replication's job.
//!
//! Both operations are deterministic functions of their request and the store, each applied
//! as one write batch.

use dfs_proto::FsError;
use dfs_proto::pb;

use crate::chunks::Chunk;
use crate::error::Result;
use crate::store::txn::Writer;

/// What happened to a reported bad replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReplicaOutcome {
    /// Dropped from the chunk's replicas and queued for deletion.
    Dropped,
    /// Kept: it is the chunk's last replica, so dropping it would lose the chunk.
    KeptLast,
    /// Nothing to do: the chunk is gone, the server no longer holds a listed replica, or the
    /// reader had an older version than the master (the reader was stale, not the replica).
    Ignored,
}

/// Replica-list changes of the chunk map.
pub struct ReplicaChanges {
    writer: Writer,
    min_replication: usize,
}

impl ReplicaChanges {
    /// Changes over `writer`'s store; a chain is never shrunk below `min_replication`.
    pub fn new(writer: Writer, min_replication: usize) -> ReplicaChanges {
        ReplicaChanges {
            writer,
            min_replication: min_replication.max(1),
        }
    }

    /// Drops the `failed` servers from the chunk a writer wrote with `version` and answers with the
    /// next version for the rewrite (recorded when the rewrite is committed). If the master already
    /// has a newer version (another writer replaced the chain first) or none of `failed` is a
    /// replica, the current chunk is returned unchanged. Fails with `ESTALE` if the chunk is gone
    /// or was replaced by another chunk, and with `ENOSPC` if fewer than the minimum replication
    /// would survive.
    pub fn replace_replicas(&self, req: &pb::ReplaceReplicasRequest) -> Result<Chunk> {
        let mut txn = self.writer.begin();
        let mut chunk = txn
            .store()
            .chunk(req.ino, req.index)?
            .filter(|c| c.chunk_id == req.chunk_id)
            .ok_or_else(|| {
                FsError::Stale(format!(
                    "chunk {} (index {}) of inode {} no longer exists",
                    req.chunk_id, req.index, req.ino
                ))
            })?;
        if chunk.version > req.version || !chunk.replicas.iter().any(|r| req.failed.contains(r)) {
            // Another writer of the file replaced the chain first: rewrite with its version.
            chunk.version = chunk.version.max(chunk.issued_version);
            return Ok(chunk);
        }
        let (failed, survivors): (Vec<u64>, Vec<u64>) = chunk
            .replicas
            .iter()
            .partition(|server| req.failed.contains(server));
        if survivors.len() < self.min_replication {
            tracing::warn!(
                chunk_id = chunk.chunk_id,
                survivors = survivors.len(),
                min = self.min_replication,
                "too few replicas survive a failed write"
            );
            return Err(FsError::NoSpace.into());
        }
        for &server_id in &failed {
            txn.queue_deletion(server_id, chunk.chunk_id);
        }
        chunk.replicas = survivors;
        // Recorded as the version by the commit of the rewrite (see the module documentation);
        // remembered as issued so that a lease takeover stamps above it.
        chunk.issued_version = chunk.version.max(chunk.issued_version).max(req.version) + 1;
        txn.put_chunk(req.ino, req.index, &chunk);
        txn.commit()?;
        chunk.version = chunk.issued_version;
        tracing::info!(
            chunk_id = chunk.chunk_id,
            version = chunk.version,
            ?failed,
            "replaced failed replicas"
        );
        Ok(chunk)
    }

    /// Drops the replica of `req.chunk_id` on `req.server_id` that a reader found corrupt or
    /// stale, and queues its deletion; the last replica of a chunk is kept.
    pub fn report_bad_replica(
        &self,
        req: &pb::ReportBadReplicaRequest,
    ) -> Result<BadReplicaOutcome> {
        let mut txn = self.writer.begin();
        let Some((ino, index)) = txn.store().chunk_owner(req.chunk_id)? else {
            return Ok(BadReplicaOutcome::Ignored);
        };
        let Some(mut chunk) = txn
            .store()
            .chunk(ino, index)?
            .filter(|c| c.chunk_id == req.chunk_id)
        else {
            return Ok(BadReplicaOutcome::Ignored);
        };
        if req.version < chunk.version || !chunk.replicas.contains(&req.server_id) {
            return Ok(BadReplicaOutcome::Ignored);
        }
        if chunk.replicas.len() == 1 {
            return Ok(BadReplicaOutcome::KeptLast);
        }
        chunk.replicas.retain(|&server| server != req.server_id);
        txn.put_chunk(ino, index, &chunk);
        txn.queue_deletion(req.server_id, chunk.chunk_id);
        txn.commit()?;
        tracing::warn!(
            chunk_id = chunk.chunk_id,
            server_id = req.server_id,
            reason = %req.reason,
            "dropped a bad replica"
        );
        Ok(BadReplicaOutcome::Dropped)
    }
}
