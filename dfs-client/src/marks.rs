//! [`AccessMarks`]: relatime atime marks of opens this mount answered without the master,
//! sent to it in batches.
//!
//! A read-only open right after its lookup needs nothing more from the master (see
//! `crate::fresh`), except, on the first read of a file since it changed, the relatime mark of
//! its atime. Reading a tree of fresh small files would pay a master round trip per file for
//! that mark alone; sending it in the background one by one saved nothing, since each mark's
//! round trip then delayed the next file's lookup. So the open stamps atime itself and the
//! marks wait up to [`BATCH_DELAY`] to go in one `MarkAccess` call.
//!
//! Until the master has a mark, this mount shows it: [`overlay`](AccessMarks::overlay) moves
//! the atime of every attribute it hands the kernel forward to its pending mark, so a `stat`
//! after the read sees the access, and a second open does not mark again. An explicit atime
//! (`utimensat`) waits for the file's pending mark first ([`settle`](AccessMarks::settle)),
//! so the late mark can never overwrite it. Other mounts see the mark once its batch lands,
//! within a few milliseconds; a mount killed before that loses it, as a master crash loses an
//! unsynced mark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dfs_proto::pb;
use dfs_proto::time::time_or_epoch;

use crate::master::MasterClient;

/// How long a mark waits for others to share its call.
pub const BATCH_DELAY: Duration = Duration::from_millis(10);

/// Marks sent at once at most; more are sent without waiting out the delay.
const BATCH_LIMIT: usize = 1024;

/// The marks this mount has not yet seen the master take.
#[derive(Debug)]
pub struct AccessMarks {
    master: MasterClient,
    // A std mutex: held only to add, look up or take marks, never across an `.await`.
    state: Mutex<State>,
    /// Held while a batch is in flight: one call at a time, so a `settle` that holds it knows
    /// no earlier batch is still on its way.
    sending: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Not sent yet: ino → atime.
    pending: HashMap<u64, SystemTime>,
    /// Sent, not yet acknowledged: still shown by `overlay`.
    in_flight: HashMap<u64, SystemTime>,
    /// A batch is due to leave after the delay.
    scheduled: bool,
    /// A batch is due to leave at once (the pending marks reached `BATCH_LIMIT`).
    rushed: bool,
}

impl AccessMarks {
    /// Marks for the master behind `master`.
    pub fn new(master: MasterClient) -> Arc<AccessMarks> {
        Arc::new(AccessMarks {
            master,
            state: Mutex::default(),
            sending: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("access marks poisoned")
    }

    /// Records a read access of `ino` at `atime`, sent with the next batch. Call it within a
    /// tokio runtime: it may start the batch.
    pub fn mark(self: &Arc<Self>, ino: u64, atime: SystemTime) {
        let start = {
            let mut state = self.state();
            let entry = state.pending.entry(ino).or_insert(atime);
            *entry = (*entry).max(atime);
            // One batch scheduled after the delay, and one more at once when it fills up.
            let rush = state.pending.len() >= BATCH_LIMIT && !state.rushed;
            let start = !state.scheduled || rush;
            state.scheduled = true;
            state.rushed |= rush;
            start.then_some(if rush { Duration::ZERO } else { BATCH_DELAY })
        };
        if let Some(delay) = start {
            let marks = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                marks.send().await;
            });
        }
    }

    /// Moves `attr.atime` forward to this mount's unacknowledged mark of the file, if any.
    pub fn overlay(&self, attr: &mut pb::Attr) {
        let state = self.state();
        if state.pending.is_empty() && state.in_flight.is_empty() {
            return;
        }
        let mark = [&state.pending, &state.in_flight]
            .into_iter()
            .filter_map(|marks| marks.get(&attr.ino))
            .max();
        if let Some(&mark) = mark {
            if mark > time_or_epoch(attr.atime) {
                attr.atime = Some(mark.into());
            }
        }
    }

    /// Whether a mark of `ino` has not reached the master yet.
    pub fn is_pending(&self, ino: u64) -> bool {
        let state = self.state();
        state.pending.contains_key(&ino) || state.in_flight.contains_key(&ino)
    }

    /// Returns once the master has every mark of `ino` made so far (sending them now).
    pub async fn settle(&self, ino: u64) {
        if !self.is_pending(ino) {
            return;
        }
        // Waits out any batch in flight, then sends what is left.
        let _sending = self.sending.lock().await;
        if self.state().pending.contains_key(&ino) {
            self.send_locked().await;
        }
    }

    /// Sends every pending mark (at unmount).
    pub async fn send(&self) {
        let _sending = self.sending.lock().await;
        self.send_locked().await;
    }

    /// Sends the pending marks as one call; the caller holds `sending`.
    async fn send_locked(&self) {
        let batch: Vec<(u64, SystemTime)> = {
            let mut state = self.state();
            state.scheduled = false;
            state.rushed = false;
            let batch = std::mem::take(&mut state.pending);
            state
                .in_flight
                .extend(batch.iter().map(|(&ino, &at)| (ino, at)));
            batch.into_iter().collect()
        };
        if batch.is_empty() {
            return;
        }
        let marks = batch
            .iter()
            .map(|&(ino, at)| pb::AccessMark {
                ino,
                atime: Some(at.into()),
            })
            .collect();
        if let Err(err) = self.master.mark_access(marks).await {
            // Atime is best effort, as relatime itself: the marks are dropped, not retried.
            tracing::warn!(marks = batch.len(), error = %err, "atime marks lost");
        }
        let mut state = self.state();
        for (ino, at) in batch {
            if state.in_flight.get(&ino) == Some(&at) {
                state.in_flight.remove(&ino);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks() -> Arc<AccessMarks> {
        let master = MasterClient::new("http://127.0.0.1:1", Duration::from_millis(50)).unwrap();
        AccessMarks::new(master)
    }

    fn attr(ino: u64, atime_secs: i64) -> pb::Attr {
        pb::Attr {
            ino,
            atime: Some(pb::Timestamp {
                secs: atime_secs,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    fn at(secs: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn pending_marks_move_atime_forward_only_for_their_file() {
        let marks = marks();
        marks.mark(7, at(100));
        let mut marked = attr(7, 50);
        marks.overlay(&mut marked);
        assert_eq!(marked.atime.unwrap().secs, 100);
        // A newer atime from the master is kept; other files are untouched.
        let mut newer = attr(7, 200);
        marks.overlay(&mut newer);
        assert_eq!(newer.atime.unwrap().secs, 200);
        let mut other = attr(8, 50);
        marks.overlay(&mut other);
        assert_eq!(other.atime.unwrap().secs, 50);
    }

    #[tokio::test]
    async fn a_failed_batch_drops_its_marks_and_settle_returns() {
        // No master listens: the call fails, the marks are dropped (atime is best effort).
        let marks = marks();
        marks.mark(7, at(100));
        marks.settle(7).await;
        let mut after = attr(7, 50);
        marks.overlay(&mut after);
        assert_eq!(after.atime.unwrap().secs, 50);
        assert!(marks.state().pending.is_empty() && marks.state().in_flight.is_empty());
    }
}
