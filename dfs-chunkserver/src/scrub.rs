//! The scrubber: re-verifies every replica's checksums in the background, at a bounded rate,
//! so that bit rot on a replica nobody reads is found before the other replicas fail too.
//!
//! A pass walks the replicas in chunk id order and reads each through the store, which
//! verifies every block; reading is paced to `bytes_per_sec`. A corrupt replica goes to the
//! repair reports (the master drops it and has a good replica copied); it is reported once.
//! Replicas deleted or rewritten during the pass are skipped.

use std::collections::HashSet;
use std::time::Duration;

use dfs_proto::FsError;
use tokio::task;
use tokio::time::sleep;
use tracing::{debug, warn};

use crate::error::Error;
use crate::metrics::ChunkserverMetrics;
use crate::repair::RepairReports;
use crate::shutdown::Shutdown;
use crate::store::ChunkStore;

/// Bytes verified per read.
const PIECE: u64 = 1 << 20;
/// Bytes each replica read is charged at least: opening, checking and closing a small replica
/// costs the disk and CPU about what reading this much does, so a server holding many small
/// replicas is not scrubbed thousands of files a second.
const MIN_CHARGE: u64 = 256 << 10;
/// Pause between passes (and before the first), so an idle server with few replicas does
/// not spin.
const PASS_PAUSE: Duration = Duration::from_secs(1);

/// Scrubs `store` until shutdown, verifying at most `bytes_per_sec` (0 disables scrubbing),
/// and counts its progress and the corruption it finds in `metrics`.
pub async fn run(
    store: ChunkStore,
    reports: RepairReports,
    bytes_per_sec: u64,
    metrics: ChunkserverMetrics,
    mut shutdown: Shutdown,
) {
    if bytes_per_sec == 0 {
        return;
    }
    let mut reported: HashSet<u64> = HashSet::new();
    loop {
        tokio::select! {
            _ = sleep(PASS_PAUSE) => {}
            _ = shutdown.wait() => return,
        }
        let replicas = store.list();
        reported.retain(|id| replicas.iter().any(|r| r.chunk_id == *id));
        let mut verified = 0u64;
        for replica in replicas {
            if reported.contains(&replica.chunk_id) {
                continue;
            }
            let mut offset = 0;
            while offset < replica.length {
                let len = PIECE.min(replica.length - offset);
                let s = store.clone();
                let read = task::spawn_blocking(move || {
                    s.read(replica.chunk_id, replica.version, offset, len)
                })
                .await;
                match read {
                    Ok(Ok(_)) => {}
                    Ok(Err(Error::Fs(FsError::Corrupt(detail)))) => {
                        warn!(chunk = %format!("{:016x}", replica.chunk_id), %detail,
                            "scrubber found a corrupt replica");
                        metrics.checksum_failure();
                        reports.corrupt(replica.chunk_id);
                        reported.insert(replica.chunk_id);
                        break;
                    }
                    // Deleted, rewritten to a new version, or a task failure: skip it.
                    _ => break,
                }
                offset += len;
                verified += len;
                metrics.scrubbed(len);
                let charged = len.max(MIN_CHARGE);
                let pace = Duration::from_secs_f64(charged as f64 / bytes_per_sec as f64);
                tokio::select! {
                    _ = sleep(pace) => {}
                    _ = shutdown.wait() => return,
                }
            }
        }
        metrics.scrub_pass();
        debug!(verified, "scrub pass done");
    }
}
