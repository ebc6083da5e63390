//! `dfs put` and `dfs get`: copy a local file into the cluster or out of it without a mount,
//! through the same data path the FUSE daemon uses ([`dfs_fuse::Client`]): writes stream down
//! the replica chain and are synced on every replica and committed at the end; reads verify
//! checksums and fall back to another replica.
//!
//! Progress goes to standard error: a live line on a terminal, one summary line otherwise.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use dfs_fuse::client::Caller;
use dfs_fuse::master::MasterClient;
use dfs_proto::pb::FileKind;
use dfs_proto::{FsError, ROOT_INO};

use crate::{Error, human_bytes};

/// Bytes moved per call.
const PIECE: usize = 4 << 20;
/// Timeout of every call to the master or a chunkserver.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Shows how far a copy has come.
struct Progress {
    what: String,
    total: u64,
    started: Instant,
    live: bool,
}

impl Progress {
    fn new(what: String, total: u64) -> Progress {
        Progress {
            what,
            total,
            started: Instant::now(),
            live: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let percent = (done * 100).checked_div(self.total).unwrap_or(100);
        format!(
            "{}: {} / {} ({percent}%), {}/s",
            self.what,
            human_bytes(done),
            human_bytes(self.total),
            human_bytes((done as f64 / secs) as u64)
        )
    }

    fn update(&self, done: u64) {
        if self.live {
            eprint!("\r{}", self.line(done));
        }
    }

    fn finish(&self, done: u64) {
        if self.live {
            eprintln!("\r{}", self.line(done));
        } else {
            eprintln!("{}", self.line(done));
        }
    }
}

/// The cluster's data path, connected.
async fn connect(master: &str) -> Result<(dfs_fuse::Client, MasterClient), Error> {
    let mut config = dfs_fuse::Config::new(master, "/");
    config.rpc_timeout_ms = RPC_TIMEOUT.as_millis() as u64;
    let client = dfs_fuse::Client::connect(&config)
        .await
        .map_err(|e| Error::Master(FsError::Unavailable(e.to_string())))?;
    let meta = MasterClient::new(&config.master_uri(), RPC_TIMEOUT).map_err(Error::Master)?;
    Ok((client, meta))
}

/// The directory holding `path` and the last component's name.
async fn resolve_parent(meta: &MasterClient, path: &str) -> Result<(u64, Vec<u8>), Error> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some((name, dirs)) = components.split_last() else {
        return Err(Error::Master(FsError::Invalid(
            "a file path is needed".into(),
        )));
    };
    let mut parent = ROOT_INO;
    for dir in dirs {
        parent = meta
            .lookup(parent, dir.as_bytes())
            .await
            .map_err(Error::Master)?
            .ino;
    }
    Ok((parent, name.as_bytes().to_vec()))
}

/// Copies the local file `local` to `remote` (created or replaced).
pub async fn put(master: &str, local: &Path, remote: &str) -> Result<String, Error> {
    let local_io = |e| Error::Local(local.display().to_string(), e);
    let mut file = File::open(local).map_err(local_io)?;
    let total = file.metadata().map_err(local_io)?.len();
    let (client, meta) = connect(master).await?;
    let (parent, name) = resolve_parent(&meta, remote).await?;
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let caller = unsafe {
        Caller {
            uid: libc::getuid(),
            gid: libc::getgid(),
        }
    };
    let flags = libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY;
    client
        .create(caller, parent, &name, 0o644, 0o022, flags)
        .await
        .map_err(Error::Master)?;
    let ino = meta.lookup(parent, &name).await.map_err(Error::Master)?.ino;
    let progress = Progress::new(format!("put {remote}"), total);
    let mut buf = vec![0u8; PIECE];
    let mut offset = 0u64;
    let copied = async {
        loop {
            let n = file.read(&mut buf).map_err(local_io)?;
            if n == 0 {
                break;
            }
            client
                .write(ino, offset, &buf[..n])
                .await
                .map_err(Error::Master)?;
            offset += n as u64;
            progress.update(offset);
        }
        client.fsync(ino).await.map_err(Error::Master)
    }
    .await;
    let released = client.release(ino).await.map_err(Error::Master);
    copied.and(released)?;
    progress.finish(offset);
    Ok(format!("{} -> {remote}: {offset} bytes\n", local.display()))
}

/// Copies the cluster file `remote` to the local file `local`.
pub async fn get(master: &str, remote: &str, local: &Path) -> Result<String, Error> {
    let (client, meta) = connect(master).await?;
    let (parent, name) = resolve_parent(&meta, remote).await?;
    let attr = meta.lookup(parent, &name).await.map_err(Error::Master)?;
    if attr.kind() != FileKind::Regular {
        return Err(Error::Master(FsError::IsDir));
    }
    let local_io = |e| Error::Local(local.display().to_string(), e);
    let mut out = File::create(local).map_err(local_io)?;
    client
        .open(attr.ino, libc::O_RDONLY, None)
        .await
        .map_err(Error::Master)?;
    let progress = Progress::new(format!("get {remote}"), attr.size);
    let mut offset = 0u64;
    let copied = async {
        while offset < attr.size {
            let len = (attr.size - offset).min(PIECE as u64) as u32;
            let data = client
                .read(attr.ino, offset, len)
                .await
                .map_err(Error::Master)?;
            if data.is_empty() {
                break;
            }
            out.write_all(&data).map_err(local_io)?;
            offset += data.len() as u64;
            progress.update(offset);
        }
        out.sync_all().map_err(local_io)
    }
    .await;
    let _ = client.release(attr.ino).await;
    copied?;
    progress.finish(offset);
    Ok(format!("{remote} -> {}: {offset} bytes\n", local.display()))
}
