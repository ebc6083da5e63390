//! The master's background work: the periodic replication check and the metadata log sync.
//!
//! [`run`](crate::run) spawns both next to the gRPC services and stops them after the services
//! have drained. Like the service handlers, they read the clock and draw placement seeds
//! here and pass them down, so the logic they drive stays deterministic. Each run goes to a
//! blocking thread: it reads or syncs the database, which the requests served inline on the
//! runtime must not wait for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::Result;
use crate::master::Master;
use crate::service::placement_seed;

/// The background tasks of one master; [`Background::stop`] ends them.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Starts the replication check every `check_every` and the log sync every `sync_every`.
    pub fn start(master: &Arc<Master>, check_every: Duration, sync_every: Duration) -> Background {
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(replication_loop(
                Arc::clone(master),
                check_every,
                stopped.clone(),
            )),
            tokio::spawn(metadata_sync_loop(Arc::clone(master), sync_every, stopped)),
        ];
        Background { stop, tasks }
    }

    /// Stops every task and waits for it: a run in progress finishes first, and the log sync
    /// runs once more, so nothing acknowledged is left unsynced and nothing holds the master
    /// (and its database) once this returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Runs a replication check every `every` until `stop` turns true (see
/// [`crate::cluster::replication`]).
async fn replication_loop(master: Arc<Master>, every: Duration, stop: watch::Receiver<bool>) {
    let check = |m: &Master| m.check_replication(Instant::now(), placement_seed());
    let always = |_: &Master| true;
    let what = "replication check";
    periodically(master, every, stop, what, always, check, false).await;
}

/// Syncs the master's log every `every` while a deferred mutation waits for it, until
/// `stop` turns true; then once more, so nothing acknowledged is left unsynced at shutdown.
async fn metadata_sync_loop(master: Arc<Master>, every: Duration, stop: watch::Receiver<bool>) {
    let (due, sync) = (Master::has_unsynced_metadata, Master::sync_metadata);
    periodically(master, every, stop, "metadata log sync", due, sync, true).await;
}

/// Every `every`, runs `op` on a blocking thread if `due` says there is work, until `stop`
/// turns true; with `at_stop`, once more after that. A run in progress always finishes
/// first.
async fn periodically(
    master: Arc<Master>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    due: fn(&Master) -> bool,
    op: fn(&Master) -> Result<()>,
    at_stop: bool,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.wait_for(|&stopped| stopped) => true,
        };
        if stopped && !at_stop {
            return;
        }
        if due(&master) {
            let master = Arc::clone(&master);
            match tokio::task::spawn_blocking(move || op(&master)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "{what} failed"),
                Err(err) => tracing::warn!(error = %err, "{what} panicked"),
            }
        }
        if stopped {
            return;
        }
    }
}
