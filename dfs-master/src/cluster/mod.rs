//! The chunkservers as the master sees them, and keeping their replicas healthy.
//!
//! * [`registry`] — who the chunkservers are, which are live, how full they are, and which
//!   replicas each must delete (garbage collection through heartbeat replies).
//! * [`replication`] — keeping every chunk at its replication factor: copies, trimming, and
//!   dropping dead, draining and corrupt replicas.
//! * [`balance`] — moving replicas from full servers to empty ones.
//! * [`throughput`] — the bytes the chunkservers move, from the totals in their heartbeats.
//! * [`witness`] — which chunk versions some replica is known to hold, so no cleanup deletes
//!   the last copy of a chunk whose version moved ahead of its replicas.

pub mod balance;
pub mod registry;
pub mod replication;
pub mod throughput;
pub mod witness;
