//! Repair work the master asks for or needs to hear about: copying replicas from other
//! chunkservers on the master's command (re-replication), and the outcomes that the next
//! heartbeat carries back — copies finished, replicas found corrupt.
//!
//! A copy pulls the whole replica from its source with the ordinary `ReadChunk` (so the
//! source verifies every block it sends) into a fresh local replica of the commanded version,
//! synced before it is reported. At most `max_copies` run at once; a failed copy leaves
//! nothing behind and is reported as failed, so the master plans it again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use dfs_proto::pb::{ChunkReplicaReport, ReadChunkRequest, ReplicateCommand};
use tokio::sync::Semaphore;
use tokio::task;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::metrics::ChunkserverMetrics;
use crate::net::Peers;
use crate::store::ChunkStore;

/// What the next heartbeat tells the master about repairs. Clones share the same lists.
#[derive(Debug, Clone, Default)]
pub struct RepairReports {
    inner: Arc<Mutex<Outcomes>>,
}

/// Outcomes not yet reported.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Copies completed.
    pub replicated: Vec<ChunkReplicaReport>,
    /// Replicas found corrupt.
    pub corrupt: HashSet<u64>,
    /// Commanded copies that failed.
    pub failed: Vec<u64>,
}

impl RepairReports {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        // Held for a push or a swap only.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a finished copy.
    pub fn replicated(&self, report: ChunkReplicaReport) {
        self.lock().replicated.push(report);
    }

    /// Records a corrupt replica.
    pub fn corrupt(&self, chunk_id: u64) {
        self.lock().corrupt.insert(chunk_id);
    }

    /// Records a failed copy.
    pub fn failed(&self, chunk_id: u64) {
        self.lock().failed.push(chunk_id);
    }

    /// Takes every outcome not yet reported.
    pub fn take(&self) -> Outcomes {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back outcomes whose heartbeat failed, to go with the next one.
    pub fn restore(&self, outcomes: Outcomes) {
        let mut current = self.lock();
        current.replicated.extend(outcomes.replicated);
        current.corrupt.extend(outcomes.corrupt);
        current.failed.extend(outcomes.failed);
    }
}

/// Copies replicas from other chunkservers on the master's command.
#[derive(Debug, Clone)]
pub struct Copier {
    store: ChunkStore,
    peers: Arc<Peers>,
    slots: Arc<Semaphore>,
    reports: RepairReports,
    metrics: ChunkserverMetrics,
}

impl Copier {
    /// A copier into `store` running at most `max_copies` copies at once, counting the bytes
    /// it writes in `metrics`.
    pub fn new(
        store: ChunkStore,
        peers: Arc<Peers>,
        max_copies: usize,
        reports: RepairReports,
        metrics: ChunkserverMetrics,
    ) -> Copier {
        Copier {
            store,
            peers,
            slots: Arc::new(Semaphore::new(max_copies.max(1))),
            reports,
            metrics,
        }
    }

    /// Starts copying in the background; the outcome goes to the reports.
    pub fn start(&self, command: ReplicateCommand) {
        let copier = self.clone();
        tokio::spawn(async move {
            let Ok(_slot) = copier.slots.acquire().await else {
                return;
            };
            let chunk = format!("{:016x}", command.chunk_id);
            match copier.copy(&command).await {
                Ok(length) => {
                    info!(%chunk, source = %command.source, length, "replica copied");
                    copier.reports.replicated(ChunkReplicaReport {
                        chunk_id: command.chunk_id,
                        version: command.version,
                        length,
                    });
                }
                Err(err) => {
                    warn!(%chunk, source = %command.source, error = %err, "replica copy failed");
                    let store = copier.store.clone();
                    let _ = task::spawn_blocking(move || store.delete(command.chunk_id)).await;
                    copier.reports.failed(command.chunk_id);
                }
            }
        });
    }

    /// Pulls the replica from the source into a fresh local replica; returns its length.
    async fn copy(&self, command: &ReplicateCommand) -> Result<u64> {
        let _transfer = self.store.begin_transfer();
        let (chunk_id, version) = (command.chunk_id, command.version);
        let mut client = self.peers.client(&command.source)?;
        let downstream = |status: tonic::Status| Error::Downstream {
            addr: command.source.clone(),
            cause: dfs_proto::FsError::from_status(&status),
        };
        let request = ReadChunkRequest {
            chunk_id,
            version,
            offset: 0,
            length: self.store.options().chunk_size,
            token: command.token.clone(),
        };
        let mut stream = client
            .read_chunk(request)
            .await
            .map_err(downstream)?
            .into_inner();
        // Whatever this server held of the chunk before (a stale replica) is replaced whole.
        let writer = {
            let store = self.store.clone();
            task::spawn_blocking(move || {
                store.delete(chunk_id)?;
                store.open_writer(chunk_id, version)
            })
            .await??
        };
        let writer = Arc::new(writer);
        let mut offset = 0u64;
        while let Some(piece) = stream.message().await.map_err(downstream)? {
            let len = piece.data.len() as u64;
            let w = Arc::clone(&writer);
            task::spawn_blocking(move || w.write(offset, &piece.data)).await??;
            self.metrics.written(len);
            offset += len;
        }
        task::spawn_blocking(move || writer.commit(true)).await?
    }
}
