//! The leader's background work: the periodic replication check (re-replication, balancing,
//! garbage collection of replicas), and forgetting the request ids of old mutations.
//!
//! The leader ([`crate::raft::node`]) starts it when it takes office and stops it when it
//! leaves. (The log sync runs on every member, see [`crate::raft::node`].) Like the service handlers, they read the clock and draw placement seeds
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
    /// Starts the replication check every `check_every`.
    pub fn start(master: &Arc<Master>, check_every: Duration) -> Background {
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(replication_loop(
                Arc::clone(master),
                check_every,
                stopped.clone(),
            )),
            tokio::spawn(forget_loop(Arc::clone(master), stopped)),
        ];
        Background { stop, tasks }
    }

    /// Stops every task and waits for it: a run in progress finishes first, so nothing holds
    /// the master once this returns.
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
    periodically(master, every, stop, "replication check", check).await;
}

/// How long the request id of an applied mutation is remembered: far longer than any client
/// retries a call (its RPC timeout).
const REMEMBER_REQUESTS: Duration = Duration::from_secs(600);

/// Forgets request ids older than [`REMEMBER_REQUESTS`], once a minute.
async fn forget_loop(master: Arc<Master>, stop: watch::Receiver<bool>) {
    let forget = |m: &Master| {
        let cutoff = dfs_proto::time::unix_millis()
            .saturating_sub(u64::try_from(REMEMBER_REQUESTS.as_millis()).unwrap_or(u64::MAX));
        m.writer().forget_replies_before(cutoff).map(drop)
    };
    let every = Duration::from_secs(60);
    periodically(master, every, stop, "forgetting old request ids", forget).await;
}

/// Every `every`, runs `op` on a blocking thread, until `stop` turns true. A run in progress
/// always finishes first.
async fn periodically(
    master: Arc<Master>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    op: fn(&Master) -> Result<()>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.wait_for(|&stopped| stopped) => true,
        };
        if stopped {
            return;
        }
        let master = Arc::clone(&master);
        match tokio::task::spawn_blocking(move || op(&master)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "{what} failed"),
            Err(err) => tracing::warn!(error = %err, "{what} panicked"),
        }
    }
}
