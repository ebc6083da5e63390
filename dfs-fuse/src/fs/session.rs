//! The start of a FUSE session: the request sizes, readahead and capabilities asked of the
//! kernel.

use fuser::{InitFlags, KernelConfig};

use super::{MAX_READAHEAD_BYTES, MAX_REQUEST_BYTES};

/// Negotiates the session with the kernel at `init`, settling for what it grants.
pub(super) fn configure(config: &mut KernelConfig) {
    if let Err(max) = config.set_max_write(MAX_REQUEST_BYTES) {
        let _ = config.set_max_write(max);
    }
    if let Err(max) = config.set_max_readahead(MAX_READAHEAD_BYTES) {
        let _ = config.set_max_readahead(max);
    }
    // Room for parallel readahead and async reads in flight.
    let _ = config.set_max_background(64);
    let _ = config.set_congestion_threshold(48);
    // Not FUSE_WRITEBACK_CACHE: it trades cross-mount consistency for small-write speed.
    for flag in [
        InitFlags::FUSE_ASYNC_READ,
        InitFlags::FUSE_BIG_WRITES,
        InitFlags::FUSE_MAX_PAGES,
        InitFlags::FUSE_PARALLEL_DIROPS,
        InitFlags::FUSE_DO_READDIRPLUS,
        InitFlags::FUSE_READDIRPLUS_AUTO,
        InitFlags::FUSE_ATOMIC_O_TRUNC,
        InitFlags::FUSE_CACHE_SYMLINKS,
        // Advisory locks go to the master (see `crate::locks`), not the local kernel.
        InitFlags::FUSE_POSIX_LOCKS,
        InitFlags::FUSE_FLOCK_LOCKS,
    ] {
        if let Err(missing) = config.add_capabilities(flag) {
            tracing::info!(?missing, "kernel lacks a FUSE capability");
        }
    }
    tracing::info!(abi = ?config.kernel_abi(), "FUSE session initialised");
}
