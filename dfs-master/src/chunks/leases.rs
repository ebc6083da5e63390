//! Writer leases: at most one mount writes a file at a time.
//!
//! A mount that opens a file for writing asks for the file's lease, names itself with a
//! holder id, and renews the lease while any of its handles is open; the last close releases
//! it. Another holder asking meanwhile is refused with `EBUSY` (the client waits and asks
//! again, for a bounded time). A lease that is neither renewed nor released within its
//! time-to-live has expired: its holder is presumed dead, and the next writer gets the lease
//! with `recover` set, telling it to reconcile the file's last chunk across its replicas
//! before writing.
//!
//! Each grant has a cluster-unique generation. A holder that took an expired lease over moves
//! the file's chunks to new versions (it stamps them on the replicas, then the master records
//! them, see [`crate::chunks::ChunkMap::raise_version`]), so replicas written by an earlier
//! holder are recognisably stale; and commits name their holder, so a holder that lost its
//! lease cannot commit.
//!
//! Grants are persisted in one synced batch, releases in one unsynced batch (losing one in a
//! machine crash only makes the lease expire instead); renewals are not persisted, since they
//! only move an expiry. Expiries live on this process's monotonic clock: a restarted master
//! treats every recorded lease as renewed at the moment it started, so it never hands a lease
//! that may still be live to a second writer before a full time-to-live has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::FsError;

use crate::chunks::regular_file;
use crate::error::Result;
use crate::store::meta;
use crate::store::txn::{Txn, Writer};

/// The first generation handed out.
const FIRST_GENERATION: u64 = 1;

/// A lease as granted, and as recorded: to whom, and which grant. Its expiry is not recorded;
/// a restarted master lets every recorded lease run a full time-to-live from its start, so it
/// never hands a lease that may still be live to a second writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedLease {
    /// The mount holding the lease.
    pub holder: String,
    /// Cluster-unique number of this grant.
    pub generation: u64,
}

/// One live (or expired but not yet taken over) lease.
#[derive(Debug, Clone)]
struct Lease {
    holder: String,
    generation: u64,
    expires: Instant,
}

/// What a holder gets when a lease is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Cluster-unique number of the grant.
    pub generation: u64,
    /// The previous holder died holding the lease: reconcile before writing.
    pub recover: bool,
}

/// The writer leases of one master.
pub struct Leases {
    writer: Writer,
    ttl: Duration,
    // A std mutex: held for a map operation plus at most one metadata batch, on a blocking
    // thread, never across an `.await`. Always taken before the writer lock.
    table: Mutex<HashMap<u64, Lease>>,
}

impl Leases {
    /// Leases recorded now: held, or expired and not yet taken over (a gauge of `/metrics`).
    pub fn count(&self) -> usize {
        self.table().len()
    }

    /// Loads the recorded leases; each counts as renewed at `now`.
    pub fn open(writer: Writer, ttl: Duration, now: Instant) -> Result<Leases> {
        let table = writer
            .store()
            .leases()?
            .into_iter()
            .map(|(ino, granted)| {
                let lease = Lease {
                    holder: granted.holder,
                    generation: granted.generation,
                    expires: now + ttl,
                };
                (ino, lease)
            })
            .collect();
        Ok(Leases {
            writer,
            ttl,
            table: Mutex::new(table),
        })
    }

    /// How long a lease lives without a renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Lease>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grants the lease of file `ino` to `holder`, or renews it if `holder` has it already.
    /// Fails with `EBUSY` while another holder's lease is live.
    pub fn acquire(&self, ino: u64, holder: &str, now: Instant) -> Result<Grant> {
        let (grant, ()) = self.acquire_with(holder, now, |_| Ok((ino, ())))?;
        Ok(grant)
    }

    /// Like [`acquire`](Leases::acquire), for the file `also` names: `also` runs first in the
    /// same transaction (it may create the file, or mark its atime), so its changes and the
    /// grant land in one synced batch, or neither does (`EBUSY` discards `also`'s changes).
    pub fn acquire_with<T>(
        &self,
        holder: &str,
        now: Instant,
        also: impl FnOnce(&mut Txn<'_>) -> Result<(u64, T)>,
    ) -> Result<(Grant, T)> {
        if holder.is_empty() {
            return Err(FsError::Invalid("a lease needs a holder id".into()).into());
        }
        let mut table = self.table();
        let mut txn = self.writer.begin();
        let (ino, value) = also(&mut txn)?;
        let previous = table.get(&ino).cloned();
        let grant = match &previous {
            Some(lease) if lease.holder == holder => Grant {
                generation: lease.generation,
                recover: false,
            },
            Some(lease) if lease.expires > now => return Err(FsError::Busy.into()),
            _ => {
                if let Some(lease) = &previous {
                    tracing::info!(
                        ino,
                        expired = %lease.holder,
                        new = holder,
                        "lease expired without a release; the new holder recovers the file"
                    );
                }
                regular_file(txn.inode(ino)?)?;
                let generation = txn.next_id(meta::NEXT_LEASE_GENERATION, FIRST_GENERATION)?;
                let granted = GrantedLease {
                    holder: holder.to_string(),
                    generation,
                };
                txn.put_lease(ino, &granted);
                Grant {
                    generation,
                    recover: previous.is_some(),
                }
            }
        };
        // A renewal alone writes nothing (the batch is empty).
        txn.commit()?;
        table.insert(ino, self.lease(holder, grant.generation, now));
        Ok((grant, value))
    }

    fn lease(&self, holder: &str, generation: u64, now: Instant) -> Lease {
        Lease {
            holder: holder.to_string(),
            generation,
            expires: now + self.ttl,
        }
    }

    /// Extends `holder`'s lease of `ino` by a time-to-live from `now`. Fails with `ESTALE` if
    /// the lease was released or taken over (the holder must stop writing).
    pub fn renew(&self, ino: u64, holder: &str, now: Instant) -> Result<()> {
        let mut table = self.table();
        match table.get_mut(&ino) {
            // An expired lease nobody took over is still the holder's to renew.
            Some(lease) if lease.holder == holder => {
                lease.expires = now + self.ttl;
                Ok(())
            }
            _ => Err(lost(ino, holder).into()),
        }
    }

    /// Ends `holder`'s lease of `ino`; releasing a lease one does not hold is a no-op.
    pub fn release(&self, ino: u64, holder: &str) -> Result<()> {
        self.release_many(&[ino], holder)
    }

    /// Ends `holder`'s leases of `inos` in one commit; those it does not hold are left alone.
    pub fn release_many(&self, inos: &[u64], holder: &str) -> Result<()> {
        let mut table = self.table();
        let held: Vec<u64> = inos
            .iter()
            .copied()
            .filter(|ino| table.get(ino).is_some_and(|lease| lease.holder == holder))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let mut txn = self.writer.begin();
        for &ino in &held {
            txn.delete_lease(ino);
        }
        // Losing the release in a machine crash only makes the leases expire instead.
        txn.commit_unsynced()?;
        for ino in held {
            table.remove(&ino);
        }
        Ok(())
    }

    /// The generation of `holder`'s lease of `ino`, or `ESTALE` if it holds none (a lease that
    /// expired but was not taken over still counts: nobody else writes).
    pub fn generation(&self, ino: u64, holder: &str) -> Result<u64> {
        match self.table().get(&ino) {
            Some(lease) if lease.holder == holder => Ok(lease.generation),
            _ => Err(lost(ino, holder).into()),
        }
    }

    /// Whether a writer naming itself `holder` (empty: a writer without a lease) may still
    /// change the chunks of `ino`: a holder must hold the lease (`ESTALE` once it was taken
    /// over, as for commits); a writer without one is refused (`ESTALE`) while another
    /// holder's lease is live, so it cannot write over that holder's versions.
    pub fn check_writer(&self, ino: u64, holder: &str, now: Instant) -> Result<()> {
        if !holder.is_empty() {
            return self.generation(ino, holder).map(drop);
        }
        match self.table().get(&ino) {
            Some(lease) if lease.expires > now => Err(FsError::Stale(format!(
                "{} holds the lease of inode {ino}",
                lease.holder
            ))
            .into()),
            _ => Ok(()),
        }
    }
}

fn lost(ino: u64, holder: &str) -> FsError {
    FsError::Stale(format!("{holder} does not hold the lease of inode {ino}"))
}
