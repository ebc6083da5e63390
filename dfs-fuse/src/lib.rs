//! `dfs-fuse`: mounts a dfs cluster as a POSIX directory.
//!
//! The crate is the kernel adapter only: everything a filesystem operation means (the data
//! path, caches, leases, consistency) lives in the client library, [`dfs_client`]. Here:
//!
//! * [`fs`] — the `fuser::Filesystem` adapter. Every kernel request is copied into a task on
//!   the tokio runtime and replied to from there, so the threads reading `/dev/fuse` never
//!   wait on the network; the attribute and entry TTLs the kernel is given are decided there.
//! * [`locks`] — advisory locks (`fcntl`, `flock`) held through the master under the
//!   kernel's lock owners, so every mount honours them; released at close, and by the master
//!   when a mount dies.
//! * [`metrics`] — what `/metrics` exposes of the kernel's requests (with the client
//!   library's own metrics beside them).
//! * [`readdir`] — directory handles: listing snapshots, and the offset cookies the kernel
//!   hands back to continue a listing.
//! * [`xattr`] — which extended attribute namespaces are stored, and what the kernel is told
//!   for the others.
//! * [`attr`] — conversions between the client's types and the kernel's; [`error`] — the
//!   crate's one error type and its one mapping to errno; [`config`] — the command-line
//!   options (the client's, flattened in, and the mount's own).
//!
//! Consistency is close-to-open, as NFS: `close` commits a file's writes to the master, and
//! `open` loads the chunk map fresh, keeping the kernel's page cache only when the file's
//! version (mtime, size) is the one this mount saw last. A file has one writing mount at a
//! time, the holder of its writer lease.
//!
//! [`run`] is the one entry point; `main` only parses options and sets up logging.

pub mod attr;
pub mod config;
pub mod error;
pub mod fs;
pub mod locks;
pub mod metrics;
pub mod readdir;
pub mod xattr;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use fuser::{MountOption, Session, SessionACL};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use dfs_client::Client;

pub use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::fs::DfsFs;
use crate::metrics::FuseMetrics;

/// The fuser session options of a mount: of type `fuse.dfs` with the masters' addresses as its
/// source (as `host:/export` for NFS, so `mount -a` recognises an fstab line as mounted),
/// permission bits checked by the kernel,
/// unmounted by `fusermount3` when the daemon dies (even by `kill -9`), several request loops.
fn session_config(config: &Config) -> fuser::Config {
    let mut session = fuser::Config::default();
    session.mount_options = vec![
        MountOption::FSName(fsname(&config.client.master)),
        MountOption::Subtype("dfs".into()),
        MountOption::DefaultPermissions,
        MountOption::AutoUnmount,
    ];
    if config.read_only {
        session.mount_options.push(MountOption::RO);
    }
    // `auto_unmount` needs the kernel's `allow_other`; without `--allow-other`, fuser itself
    // refuses requests from anyone but the mounting user and root.
    session.acl = if config.allow_other() {
        SessionACL::All
    } else {
        SessionACL::RootAndOwner
    };
    session.n_threads = Some(config.fuse_threads.max(1));
    session.clone_fd = true;
    session
}

/// The source of the mount, `--master` as given, escaped for the `-o fsname=` option fuser
/// hands to `fusermount3` (the session always mounts through it, for `auto_unmount`).
/// fusermount3 splits its options at commas, which also separate the masters of a list, and
/// takes a backslash as escaping the next character; escaped, the whole list reaches the
/// kernel as the source, and `/proc/self/mountinfo`, `mount -a` and `df` show it as given.
fn fsname(masters: &str) -> String {
    masters.replace('\\', "\\\\").replace(',', "\\,")
}

/// Mounts the cluster at the configured mount point and serves it until `shutdown` completes
/// (then unmounts) or the filesystem is unmounted from outside. Must be called on a
/// multi-threaded tokio runtime, which serves the filesystem's requests.
///
/// Fails before mounting if the master cannot be reached within the RPC timeout.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = Client::connect(&config.client).await?;
    let http = config.http.bind().await.map_err(Error::Http)?;
    // Metrics are recorded only where something can read them.
    let mut registry = Registry::default();
    let metrics = if http.is_some() {
        client.register_metrics(&mut registry);
        FuseMetrics::new(&mut registry)
    } else {
        FuseMetrics::off()
    };
    let registry = Arc::new(registry);
    let (http_stop, http_stopped) = oneshot::channel::<()>();
    let http_server = http.map(|listener| {
        let router = dfs_proto::http::metrics_router(Arc::clone(&registry));
        tokio::spawn(dfs_proto::http::serve(listener, router, async move {
            let _ = http_stopped.await;
        }))
    });
    let served = mount_and_serve(&config, client, metrics, shutdown).await;
    let _ = http_stop.send(());
    if let Some(http_server) = http_server {
        match http_server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "HTTP service failed"),
            Err(err) => tracing::warn!(error = %err, "HTTP service panicked"),
        }
    }
    served
}

/// Mounts with `client` and serves the session until `shutdown` or an unmount from outside.
async fn mount_and_serve(
    config: &Config,
    client: Client,
    metrics: FuseMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mountpoint = config.mountpoint().clone();
    let mount_error = |source| Error::Mount {
        mountpoint: mountpoint.display().to_string(),
        source,
    };
    let fs = DfsFs::new(
        client,
        tokio::runtime::Handle::current(),
        config.attr_ttl(),
        config.entry_ttl(),
    )
    .with_metrics(metrics);
    let notifier = fs.notifier_slot();
    let options = session_config(config);

    // The session blocks a thread: mount + handshake, then the request loops until unmount.
    let (mounted_tx, mounted_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let session_mountpoint = mountpoint.clone();
    std::thread::Builder::new()
        .name("dfs-fuse-session".into())
        .spawn(move || {
            serve(
                fs,
                &session_mountpoint,
                &options,
                &notifier,
                mounted_tx,
                done_tx,
            )
        })
        .map_err(mount_error)?;
    let unmounter = match mounted_rx.await {
        Ok(Ok(unmounter)) => unmounter,
        Ok(Err(err)) => return Err(mount_error(err)),
        Err(_) => return Err(mount_error(std::io::Error::other("session thread died"))),
    };
    tracing::info!(mountpoint = %mountpoint.display(), master = %config.client.master, "mounted");
    if config.read_ahead_kb > 0 {
        let (mountpoint, kb) = (mountpoint.clone(), config.read_ahead_kb);
        // Stats the mount root, which the session (now running) answers.
        match tokio::task::spawn_blocking(move || set_read_ahead(&mountpoint, kb)).await {
            Ok(Ok(())) => tracing::info!(kb, "kernel readahead raised"),
            Ok(Err(err)) => tracing::info!(error = %err, "kernel readahead left at its default"),
            Err(err) => tracing::warn!(error = %err, "readahead task failed"),
        }
    }

    let mut done_rx = done_rx;
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down: unmounting");
            let mountpoint = mountpoint.clone();
            let unmount = tokio::task::spawn_blocking(move || unmount(&mountpoint, unmounter));
            match unmount.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "unmount failed"),
                Err(err) => tracing::warn!(error = %err, "unmount task failed"),
            }
        }
        _ = &mut done_rx => {
            tracing::info!("unmounted from outside");
            return Ok(());
        }
    }
    match done_rx.await {
        Ok(result) => result.map_err(mount_error),
        Err(_) => Err(mount_error(std::io::Error::other("session thread died"))),
    }
}

/// Sets the kernel readahead of the mount at `mountpoint` (its backing device info is named
/// after the mount's anonymous device number, `0:<minor>`).
fn set_read_ahead(mountpoint: &Path, kb: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(mountpoint)?.dev();
    let bdi = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    std::fs::write(&bdi, kb.to_string())
        .map_err(|err| std::io::Error::new(err.kind(), format!("{bdi}: {err}")))
}

/// Unmounts lazily: the mount disappears from the namespace at once, and files still open keep
/// the session alive until they are closed.
///
/// fuser's own unmount cannot be relied on here: with `auto_unmount` it only closes the socket
/// of the `fusermount3` watcher, which unmounts only a filesystem whose daemon is gone (it
/// checks for ENOTCONN) and otherwise just exits. So detach explicitly with `fusermount3 -u
/// -z` (which works for root and for the mounting user alike), then release the watcher.
fn unmount(mountpoint: &Path, mut unmounter: fuser::SessionUnmounter) -> std::io::Result<()> {
    let detached = std::process::Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(mountpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    let released = unmounter.unmount();
    let output = detached?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "fusermount3 -u failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    released
}

/// The session thread: mounts, reports the unmount handle, serves until unmounted.
fn serve(
    fs: DfsFs,
    mountpoint: &Path,
    options: &fuser::Config,
    notifier: &OnceLock<fuser::Notifier>,
    mounted: oneshot::Sender<std::io::Result<fuser::SessionUnmounter>>,
    done: oneshot::Sender<std::io::Result<()>>,
) {
    let mut session = match Session::new(fs, mountpoint, options) {
        Ok(session) => session,
        Err(err) => {
            let _ = mounted.send(Err(err));
            return;
        }
    };
    // Before the request loops start: no request can need the notifier earlier.
    let _ = notifier.set(session.notifier());
    let _ = mounted.send(Ok(session.unmount_callable()));
    let result = session.run();
    tracing::info!("FUSE session ended");
    let _ = done.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_masters_stays_one_fsname() {
        assert_eq!(fsname("10.0.0.1:9400"), "10.0.0.1:9400");
        assert_eq!(fsname("a:1,b:2,c:3"), r"a:1\,b:2\,c:3");
        assert_eq!(fsname(r"odd\name:1"), r"odd\\name:1");
    }
}
