//! What a mount's `/metrics` exposes of the kernel's requests: how many of each FUSE
//! operation, how long each took until its reply, the errors applications got (by errno
//! name), and the bytes read and written. The client library's own metrics (calls to the
//! cluster, caches) are registered next to these ([`dfs_client::Client::register_metrics`]).
//!
//! A request is timed from its dispatch (the entry of the `Filesystem` method) until its
//! reply. Most replies are sent from a task on the runtime, long after the method returned,
//! and deep inside the handler that builds them; rather than threading a timer through every
//! handler next to its reply, the request travels as context, like a call's request id on
//! the master: [`FuseMetrics::dispatch`] makes it the reading thread's current request, and
//! the one place tasks are spawned (`fs::reply`) moves it into the task ([`serving`]). It is
//! recorded when the last of them lets it go: the method, if it replied inline, or the task,
//! once its reply is sent. The one mapping to errno ([`crate::error::errno`]) notes an error
//! on the current request, and the read and write handlers note their bytes
//! ([`note_bytes`]).
//!
//! Counting costs a few atomic additions per request: the counters and histograms of every
//! operation are created up front, indexed by [`FuseOp`]; only an error looks its labels up.
//! A mount that serves no HTTP counts nothing ([`FuseMetrics::off`]).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds, in seconds, of the request duration buckets: 10 µs (a reply from the
/// mount's caches) to 20 s.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 20.0,
];

macro_rules! fuse_ops {
    ($($op:ident => $label:literal),* $(,)?) => {
        /// A FUSE operation the mount answers, as the `op` label names it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum FuseOp { $($op),* }

        impl FuseOp {
            /// Every operation, in discriminant order.
            pub const ALL: &'static [FuseOp] = &[$(FuseOp::$op),*];

            /// The `op` label: the kernel's name of the operation.
            pub fn label(self) -> &'static str {
                match self { $(FuseOp::$op => $label),* }
            }
        }
    };
}

fuse_ops! {
    Lookup => "lookup", Getattr => "getattr", Setattr => "setattr", Readlink => "readlink",
    Mknod => "mknod", Mkdir => "mkdir", Unlink => "unlink", Rmdir => "rmdir",
    Symlink => "symlink", Rename => "rename", Link => "link", Open => "open", Read => "read",
    Write => "write", Flush => "flush", Release => "release", Fsync => "fsync",
    Opendir => "opendir", Readdir => "readdir", Readdirplus => "readdirplus",
    Releasedir => "releasedir", Fsyncdir => "fsyncdir", Statfs => "statfs",
    Access => "access", Create => "create", Setxattr => "setxattr", Getxattr => "getxattr",
    Listxattr => "listxattr", Removexattr => "removexattr", Fallocate => "fallocate",
    Getlk => "getlk", Setlk => "setlk", Ioctl => "ioctl",
}

/// The labels of an error: the operation and the errno's name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    op: &'static str,
    errno: &'static str,
}

/// The `op` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// The mount's request metrics; a cheap shared handle.
#[derive(Debug, Clone)]
pub struct FuseMetrics {
    /// `None` when nothing is recorded.
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    /// Requests of each operation, by [`FuseOp`] discriminant.
    requests: Vec<Counter>,
    /// Durations of each operation, by [`FuseOp`] discriminant.
    durations: Vec<Histogram>,
    errors: Family<ErrorLabels, Counter>,
    read_bytes: Counter,
    written_bytes: Counter,
}

impl Default for FuseMetrics {
    /// Metrics no registry exposes; they count as usual.
    fn default() -> FuseMetrics {
        FuseMetrics::new(&mut Registry::default())
    }
}

impl FuseMetrics {
    /// The mount's metrics, registered in `registry` under the `dfs_fuse` prefix.
    pub fn new(registry: &mut Registry) -> FuseMetrics {
        let requests: Family<OpLabels, Counter> = Family::default();
        let durations: Family<OpLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        let inner = Inner {
            requests: FuseOp::ALL
                .iter()
                .map(|op| requests.get_or_create(&OpLabels { op: op.label() }).clone())
                .collect(),
            durations: FuseOp::ALL
                .iter()
                .map(|op| {
                    durations
                        .get_or_create(&OpLabels { op: op.label() })
                        .clone()
                })
                .collect(),
            errors: Family::default(),
            read_bytes: Counter::default(),
            written_bytes: Counter::default(),
        };
        let registry = registry.sub_registry_with_prefix("dfs_fuse");
        registry.register(
            "requests",
            "Kernel requests answered, by operation",
            requests,
        );
        registry.register(
            "request_duration_seconds",
            "Time from a kernel request to its reply, by operation",
            durations,
        );
        registry.register(
            "errors",
            "Errors returned to applications, by operation and errno",
            inner.errors.clone(),
        );
        registry.register(
            "read_bytes",
            "Bytes returned to applications' reads",
            inner.read_bytes.clone(),
        );
        registry.register(
            "written_bytes",
            "Bytes applications wrote",
            inner.written_bytes.clone(),
        );
        FuseMetrics {
            inner: Some(Arc::new(inner)),
        }
    }

    /// Metrics that record nothing, for a mount nobody can scrape: no request then pays for
    /// its timing.
    pub fn off() -> FuseMetrics {
        FuseMetrics { inner: None }
    }

    /// Starts a request of `op` on this thread; see the module documentation. The returned
    /// guard ends the dispatch: it records the request unless a task took it over.
    #[must_use = "the request is recorded when the guard drops"]
    pub fn dispatch(&self, op: FuseOp) -> Dispatch {
        let request = self.inner.as_ref().map(|inner| Request {
            metrics: Arc::clone(inner),
            op,
            started: Instant::now(),
            errno: None,
            bytes: 0,
        });
        DISPATCHING.with(|current| *current.borrow_mut() = request);
        Dispatch { _private: () }
    }
}

/// A request being served: recorded when dropped.
#[derive(Debug)]
pub struct Request {
    metrics: Arc<Inner>,
    op: FuseOp,
    started: Instant,
    /// The error the application got, if any.
    errno: Option<i32>,
    /// Bytes read or written.
    bytes: u64,
}

impl Drop for Request {
    fn drop(&mut self) {
        let metrics = &self.metrics;
        let index = self.op as usize;
        metrics.requests[index].inc();
        metrics.durations[index].observe(self.started.elapsed().as_secs_f64());
        if let Some(errno) = self.errno {
            let labels = ErrorLabels {
                op: self.op.label(),
                errno: errno_name(errno),
            };
            metrics.errors.get_or_create(&labels).inc();
        } else if self.bytes > 0 {
            match self.op {
                FuseOp::Read => metrics.read_bytes.inc_by(self.bytes),
                FuseOp::Write => metrics.written_bytes.inc_by(self.bytes),
                _ => 0,
            };
        }
    }
}

/// Ends a dispatch: records the request if it was answered inline (no task took it).
#[derive(Debug)]
pub struct Dispatch {
    _private: (),
}

impl Drop for Dispatch {
    fn drop(&mut self) {
        drop(take_dispatching());
    }
}

thread_local! {
    /// The request the `Filesystem` method running on this thread serves.
    static DISPATCHING: RefCell<Option<Request>> = const { RefCell::new(None) };
}

tokio::task_local! {
    /// The request a spawned task serves.
    static SERVING: RefCell<Option<Request>>;
}

/// Takes the request dispatched on this thread, for a task that will reply to it.
pub fn take_dispatching() -> Option<Request> {
    DISPATCHING.with(|current| current.borrow_mut().take())
}

/// `task`, serving `request`: it is recorded when the task ends (after its reply).
pub fn serving<F: Future>(request: Option<Request>, task: F) -> impl Future<Output = F::Output> {
    SERVING.scope(RefCell::new(request), task)
}

/// Applies `note` to the current request: the task's, or else the dispatching thread's.
fn with_current(note: impl FnOnce(&mut Request)) {
    let mut note = Some(note);
    let in_task = SERVING.try_with(|current| {
        if let (Some(request), Some(note)) = (current.borrow_mut().as_mut(), note.take()) {
            note(request);
        }
    });
    if in_task.is_err() {
        DISPATCHING.with(|current| {
            if let (Some(request), Some(note)) = (current.borrow_mut().as_mut(), note.take()) {
                note(request);
            }
        });
    }
}

/// Notes that the current request fails with `errno`.
pub fn note_error(errno: i32) {
    with_current(|request| request.errno = Some(errno));
}

/// Notes the bytes the current request (a read or a write) moved.
pub fn note_bytes(bytes: usize) {
    with_current(|request| request.bytes = bytes as u64);
}

/// The name of `errno`, as applications see it in `errno.h`.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOLCK => "ENOLCK",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ESTALE => "ESTALE",
        libc::EDQUOT => "EDQUOT",
        _ => "EOTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn a_request_answered_inline_is_recorded_when_its_dispatch_ends() {
        let mut registry = Registry::default();
        let metrics = FuseMetrics::new(&mut registry);
        {
            let _dispatch = metrics.dispatch(FuseOp::Lookup);
            note_error(libc::ENOENT);
        }
        {
            let _dispatch = metrics.dispatch(FuseOp::Read);
            note_bytes(4096);
        }
        let text = scrape(&registry);
        assert!(
            text.contains(r#"dfs_fuse_requests_total{op="lookup"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"dfs_fuse_errors_total{op="lookup",errno="ENOENT"} 1"#));
        assert!(text.contains("dfs_fuse_read_bytes_total 4096"));
        assert!(text.contains(r#"dfs_fuse_request_duration_seconds_count{op="read"} 1"#));
        assert!(text.contains(r#"dfs_fuse_requests_total{op="write"} 0"#));
    }

    #[tokio::test]
    async fn a_request_taken_by_a_task_is_recorded_when_the_task_ends() {
        let mut registry = Registry::default();
        let metrics = FuseMetrics::new(&mut registry);
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let task = {
            let _dispatch = metrics.dispatch(FuseOp::Write);
            tokio::spawn(serving(take_dispatching(), async move {
                let _ = wait.await;
                note_bytes(10);
            }))
        };
        let text = scrape(&registry);
        assert!(
            text.contains(r#"dfs_fuse_requests_total{op="write"} 0"#),
            "{text}"
        );
        go.send(()).unwrap();
        task.await.unwrap();
        let text = scrape(&registry);
        assert!(
            text.contains(r#"dfs_fuse_requests_total{op="write"} 1"#),
            "{text}"
        );
        assert!(text.contains("dfs_fuse_written_bytes_total 10"));
    }

    #[test]
    fn metrics_turned_off_give_no_request_to_note_on() {
        let metrics = FuseMetrics::off();
        let _dispatch = metrics.dispatch(FuseOp::Read);
        note_bytes(4096);
        assert!(take_dispatching().is_none());
    }

    #[test]
    fn errno_names_are_those_of_errno_h() {
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(libc::ENOTEMPTY), "ENOTEMPTY");
        assert_eq!(errno_name(4242), "EOTHER");
    }
}
