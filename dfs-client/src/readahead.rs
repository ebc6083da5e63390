//! [`ReadAhead`]: recognises a sequential reader of an open file and says which range to
//! fetch into the block cache before it is asked for.
//!
//! The kernel's own readahead issues its requests a few at a time and not always in order, so
//! a read counts as sequential when it starts near where the reader was (within
//! [`SLACK`]). The window is refilled when less than half of it is left ahead of the reader,
//! so fetching stays ahead without re-asking for what is already on its way.

use std::sync::Mutex;

/// How far from the previous read's end a read may start and still count as sequential.
pub const SLACK: u64 = 2 << 20;

/// Read-ahead state of one open inode.
#[derive(Debug, Default)]
pub struct ReadAhead {
    // A std mutex: held for a few comparisons, never across an `.await`.
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// End of the furthest read so far.
    next: u64,
    /// End of what has been fetched (or is being fetched) ahead of the reader.
    ahead: u64,
}

impl ReadAhead {
    /// Records a read of `len` bytes at `offset`; returns `(offset, len)` of the range to
    /// fetch ahead, if the reader is sequential and less than half of `window` is ahead.
    pub fn on_read(&self, offset: u64, len: u64, window: u64) -> Option<(u64, u64)> {
        let mut w = self.state.lock().expect("read-ahead state poisoned");
        let end = offset + len;
        let sequential = offset <= w.next + SLACK && end + SLACK >= w.next;
        if !sequential || window == 0 {
            w.next = end;
            w.ahead = end;
            return None;
        }
        w.next = w.next.max(end);
        w.ahead = w.ahead.max(w.next);
        if w.ahead - w.next >= window / 2 {
            return None;
        }
        let from = w.ahead;
        w.ahead = w.next + window;
        Some((from, w.ahead - from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_readers_get_the_window_refilled_at_half() {
        let ra = ReadAhead::default();
        assert_eq!(ra.on_read(0, 100, 1000), Some((100, 1000)));
        // Plenty left ahead: nothing new.
        assert_eq!(ra.on_read(100, 300, 1000), None);
        // Less than half ahead (1100 - 700 = 400 < 500): refill from where fetching stopped.
        assert_eq!(ra.on_read(400, 300, 1000), Some((1100, 600)));
        // Reordered requests near the reader still count as sequential.
        assert_eq!(ra.on_read(650, 50, 1000), None);
    }

    #[test]
    fn a_jump_resets_the_window() {
        let ra = ReadAhead::default();
        assert!(ra.on_read(0, 100, 1000).is_some());
        assert_eq!(ra.on_read(100 << 20, 100, 1000), None);
        // Sequential again from the new position.
        assert_eq!(
            ra.on_read((100 << 20) + 100, 100, 1000),
            Some(((100 << 20) + 200, 1000))
        );
        // A window of 0 disables read-ahead.
        assert_eq!(ra.on_read((100 << 20) + 200, 100, 0), None);
    }
}
