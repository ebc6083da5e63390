//! `dfs put` and `dfs get`: copy files and whole trees (`-r`) into the cluster or out of it
//! without a mount, through the client library's data path: writes stream down the replica
//! chain and are synced on every replica and committed before the file is closed; reads verify
//! checksums and fall back to another replica.
//!
//! They follow `cp`'s rules: a destination that is an existing directory receives the source
//! under its own name; a directory source needs `-r`. A progress bar (bytes, rate, time left)
//! goes to standard error when it is a terminal; the summary goes to standard output.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use dfs_client::{Client, FileKind, OpenFlags};
use dfs_proto::FsError;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{Failures, quote};

/// Bytes moved per call.
const PIECE: usize = 4 << 20;

/// One file or directory to copy: where from and where to.
#[derive(Debug)]
enum Step<S, D> {
    Dir(D),
    File(S, D, u64),
}

/// The progress of a whole copy, drawn only on a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("a valid progress template");
    bar.set_style(style);
    bar
}

/// The last name of `path` (local or cluster).
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// `cluster_dir/name`.
fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// `dfs put [-r] LOCAL PATH`.
pub async fn put(
    client: &Client,
    local: &Path,
    remote: &str,
    recursive: bool,
    out: &mut impl Write,
) -> Failures {
    let mut failures = Failures::new("put");
    let meta = match fs::metadata(local) {
        Ok(meta) => meta,
        Err(err) => {
            failures.local(
                format!("cannot stat {}", quote(&local.display().to_string())),
                &err,
            );
            return failures;
        }
    };
    if meta.is_dir() && !recursive {
        failures.message(format!(
            "-r not specified; omitting directory {}",
            quote(&local.display().to_string())
        ));
        return failures;
    }
    let target = match client.stat_path(remote).await {
        Ok(attr) if attr.kind == FileKind::Directory => {
            join(remote, base_name(&local.to_string_lossy()))
        }
        _ => remote.to_string(),
    };
    let steps = match local_steps(local, &target) {
        Ok(steps) => steps,
        Err(err) => {
            failures.local(
                format!("cannot read {}", quote(&local.display().to_string())),
                &err,
            );
            return failures;
        }
    };
    let bar = progress_bar(total_bytes(&steps));
    let mut copied = Tally::default();
    for step in steps {
        match step {
            Step::Dir(dir) => match client.mkdir_path(&dir, 0o755).await {
                Ok(_) => {}
                Err(FsError::Exists) if is_dir(client, &dir).await => {}
                Err(err) => failures.fail(format!("cannot create directory {}", quote(&dir)), &err),
            },
            Step::File(from, to, _) => match put_file(client, &from, &to, &bar).await {
                Ok(len) => copied.add(len),
                Err(Failed::Local(err)) => failures.local(
                    format!("cannot read {}", quote(&from.display().to_string())),
                    &err,
                ),
                Err(Failed::Cluster(err)) => {
                    failures.fail(format!("cannot write {}", quote(&to)), &err)
                }
            },
        }
    }
    bar.finish_and_clear();
    let _ = writeln!(out, "{} -> {target}: {}", local.display(), copied.summary());
    failures
}

/// `dfs get [-r] PATH LOCAL`.
pub async fn get(
    client: &Client,
    remote: &str,
    local: &Path,
    recursive: bool,
    out: &mut impl Write,
) -> Failures {
    let mut failures = Failures::new("get");
    let attr = match client.stat_path(remote).await {
        Ok(attr) => attr,
        Err(err) => {
            failures.fail(format!("cannot stat {}", quote(remote)), &err);
            return failures;
        }
    };
    if attr.kind == FileKind::Directory && !recursive {
        failures.message(format!(
            "-r not specified; omitting directory {}",
            quote(remote)
        ));
        return failures;
    }
    let target = if local.is_dir() {
        local.join(base_name(remote))
    } else {
        local.to_path_buf()
    };
    let steps = match cluster_steps(client, remote, attr.kind, attr.size, &target).await {
        Ok(steps) => steps,
        Err(err) => {
            failures.fail(format!("cannot read {}", quote(remote)), &err);
            return failures;
        }
    };
    let bar = progress_bar(total_bytes(&steps));
    let mut copied = Tally::default();
    for step in steps {
        match step {
            Step::Dir(dir) => {
                if let Err(err) = fs::create_dir_all(&dir) {
                    failures.local(
                        format!(
                            "cannot create directory {}",
                            quote(&dir.display().to_string())
                        ),
                        &err,
                    );
                }
            }
            Step::File(from, to, _) => match get_file(client, &from, &to, &bar).await {
                Ok(len) => copied.add(len),
                Err(Failed::Local(err)) => failures.local(
                    format!("cannot write {}", quote(&to.display().to_string())),
                    &err,
                ),
                Err(Failed::Cluster(err)) => {
                    failures.fail(format!("cannot read {}", quote(&from)), &err)
                }
            },
        }
    }
    bar.finish_and_clear();
    let _ = writeln!(
        out,
        "{remote} -> {}: {}",
        target.display(),
        copied.summary()
    );
    failures
}

/// The bytes of every file a copy takes.
fn total_bytes<S, D>(steps: &[Step<S, D>]) -> u64 {
    steps
        .iter()
        .map(|s| {
            if let Step::File(_, _, len) = s {
                *len
            } else {
                0
            }
        })
        .sum()
}

/// What a copy has moved so far.
#[derive(Debug, Default)]
struct Tally {
    files: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, len: u64) {
        self.files += 1;
        self.bytes += len;
    }

    /// `N bytes` for one file, `N files, M bytes` for more.
    fn summary(&self) -> String {
        if self.files == 1 {
            format!("{} bytes", self.bytes)
        } else {
            format!("{} files, {} bytes", self.files, self.bytes)
        }
    }
}

/// Why copying one file failed: on this machine's side or the cluster's.
enum Failed {
    Local(std::io::Error),
    Cluster(FsError),
}

async fn is_dir(client: &Client, path: &str) -> bool {
    client
        .stat_path(path)
        .await
        .is_ok_and(|a| a.kind == FileKind::Directory)
}

/// What copying local `from` to cluster path `to` takes, parents before children.
fn local_steps(from: &Path, to: &str) -> std::io::Result<Vec<Step<PathBuf, String>>> {
    let meta = fs::metadata(from)?;
    if !meta.is_dir() {
        return Ok(vec![Step::File(
            from.to_path_buf(),
            to.to_string(),
            meta.len(),
        )]);
    }
    let mut steps = vec![Step::Dir(to.to_string())];
    let mut entries: Vec<_> = fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        steps.extend(local_steps(&entry.path(), &join(to, &name))?);
    }
    Ok(steps)
}

/// What copying cluster path `from` (of `kind`, `size` bytes) to local `to` takes.
async fn cluster_steps(
    client: &Client,
    from: &str,
    kind: FileKind,
    size: u64,
    to: &Path,
) -> Result<Vec<Step<String, PathBuf>>, FsError> {
    if kind != FileKind::Directory {
        return Ok(vec![Step::File(from.to_string(), to.to_path_buf(), size)]);
    }
    let mut steps = Vec::new();
    // Directories still to list, with where they go.
    let mut pending = vec![(from.to_string(), to.to_path_buf())];
    while let Some((dir, local)) = pending.pop() {
        steps.push(Step::Dir(local.clone()));
        let mut subdirs = Vec::new();
        for entry in client.list_path(&dir).await? {
            let name = String::from_utf8_lossy(&entry.name).into_owned();
            let (child, local_child) = (join(&dir, &name), local.join(&name));
            match entry.attr.kind {
                FileKind::Directory => subdirs.push((child, local_child)),
                FileKind::Regular => {
                    steps.push(Step::File(child, local_child, entry.attr.size));
                }
                // Only regular files and directories are copied, as `cp -r` without `-a`
                // would copy symlinks' targets; dfs leaves them to a mount.
                _ => {}
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(steps)
}

/// Copies local file `from` to cluster path `to` (created or replaced), synced on every
/// replica; returns its length.
async fn put_file(
    client: &Client,
    from: &Path,
    to: &str,
    bar: &ProgressBar,
) -> Result<u64, Failed> {
    let mut local = fs::File::open(from).map_err(Failed::Local)?;
    let file = client
        .create_path(to, 0o644)
        .await
        .map_err(Failed::Cluster)?;
    let mut buf = vec![0u8; PIECE];
    let mut offset = 0u64;
    let copied = async {
        loop {
            let n = local.read(&mut buf).map_err(Failed::Local)?;
            if n == 0 {
                break;
            }
            file.write(offset, &buf[..n])
                .await
                .map_err(Failed::Cluster)?;
            offset += n as u64;
            bar.inc(n as u64);
        }
        file.fsync().await.map_err(Failed::Cluster)
    }
    .await;
    let closed = file.close().await.map_err(Failed::Cluster);
    copied.and(closed)?;
    Ok(offset)
}

/// Copies cluster file `from` to local file `to`, synced; returns its length.
async fn get_file(
    client: &Client,
    from: &str,
    to: &Path,
    bar: &ProgressBar,
) -> Result<u64, Failed> {
    let file = client
        .open_path(from, OpenFlags::READ)
        .await
        .map_err(Failed::Cluster)?;
    let copied = async {
        let mut local = fs::File::create(to).map_err(Failed::Local)?;
        let mut offset = 0u64;
        loop {
            let data = file
                .read(offset, PIECE as u32)
                .await
                .map_err(Failed::Cluster)?;
            if data.is_empty() {
                break;
            }
            local.write_all(&data).map_err(Failed::Local)?;
            offset += data.len() as u64;
            bar.inc(data.len() as u64);
        }
        local.sync_all().map_err(Failed::Local)?;
        Ok(offset)
    }
    .await;
    let closed = file.close().await.map_err(Failed::Cluster);
    let len = copied?;
    closed?;
    Ok(len)
}
