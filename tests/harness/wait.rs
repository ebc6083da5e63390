//! Hang detectors: bounded waits for a call to return or a condition to hold. Limits are
//! generous; they catch a stuck test, they are not performance targets.

use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on another thread and fails the test if it has not returned within `limit`: a
/// hang detector for calls that must fail rather than block forever (not a performance target).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("call still blocked after {limit:?}"))
}

/// Polls `condition` every 200 ms until it holds; fails the test (showing `what`) if it does
/// not within `limit`. A hang detector, not a performance target: limits are generous.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Whether thread `tid` of this process is blocked in system call `nr` (as `/proc` reports
/// it): an observable sign that a request has reached a server that cannot answer it.
pub fn in_syscall(tid: i32, nr: i64) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|line| line.split_whitespace().next()?.parse::<i64>().ok())
        == Some(nr)
}
