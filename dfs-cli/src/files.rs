//! The file commands — `ls`, `stat`, `mkdir`, `rm`, `rmdir`, `mv`, `cat` — over the client
//! library's path-level calls, for machines without a mount and for scripts.
//!
//! Each behaves as its coreutils namesake does on a mount of the same tree: the same listing
//! order (byte order, as in the C locale), the same error messages (`cannot access 'x': No
//! such file or directory`, prefixed `dfs ls:` instead of `ls:`), going on past an operand
//! that fails, and the same exit codes (1 when an operand failed; `ls` exits 2 when a
//! command-line operand cannot be reached, as GNU `ls` does). Listings print one name per
//! line, as `ls` does when its output is not a terminal.

use std::io::Write;

use dfs_client::{Attr, Client, DirEntry, FileKind};
use dfs_proto::{FsError, ROOT_INO};

use crate::format::{Columns, long_line, stat_report};
use crate::{Failures, quote};

/// Bytes read per call by `cat`.
const CAT_PIECE: u32 = 1 << 20;

/// Options of `ls`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LsOptions {
    /// `-l`: long format.
    pub long: bool,
    /// `-R`: list subdirectories recursively.
    pub recursive: bool,
}

/// `ls [-l] [-R] PATH...`.
pub async fn ls(
    client: &Client,
    paths: &[String],
    options: LsOptions,
    out: &mut impl Write,
) -> Failures {
    let mut failures = Failures::new("ls");
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for path in paths {
        // A symlink operand is followed, except in the long format (as GNU ls).
        let attr = if options.long {
            client.stat_path(path).await
        } else {
            match client.stat_path(path).await {
                Ok(attr) if attr.kind == FileKind::Symlink => {
                    follow(client, path).await.or(Ok(attr))
                }
                other => other,
            }
        };
        match attr {
            Ok(attr) if attr.kind == FileKind::Directory => dirs.push(path.clone()),
            Ok(attr) => files.push((path.clone(), attr)),
            Err(err) => failures.serious(format!("cannot access {}", quote(path)), &err),
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort();
    let entries: Vec<(Vec<u8>, Attr)> = files
        .into_iter()
        .map(|(path, attr)| (path.into_bytes(), attr))
        .collect();
    print_entries(client, &entries, options.long, "", out).await;
    let headers = paths.len() > 1 || options.recursive;
    let mut first = entries.is_empty();
    let mut pending: Vec<String> = dirs.into_iter().rev().collect();
    while let Some(dir) = pending.pop() {
        let listing = match client.list_path(&dir).await {
            Ok(listing) => listing,
            Err(err) => {
                failures.fail(format!("cannot open directory {}", quote(&dir)), &err);
                continue;
            }
        };
        if !first {
            let _ = writeln!(out);
        }
        first = false;
        if headers {
            let _ = writeln!(out, "{dir}:");
        }
        let entries: Vec<(Vec<u8>, Attr)> = listing
            .iter()
            .map(|DirEntry { name, attr }| (name.clone(), *attr))
            .collect();
        if options.long {
            // In 1 KiB units, rounded up once for the whole listing, as GNU ls does.
            let total = entries
                .iter()
                .map(|(_, a)| a.blocks())
                .sum::<u64>()
                .div_ceil(2);
            let _ = writeln!(out, "total {total}");
        }
        print_entries(client, &entries, options.long, &dir, out).await;
        if options.recursive {
            // Depth first, in name order: children go on the stack last first.
            for DirEntry { name, attr } in listing.iter().rev() {
                if attr.kind == FileKind::Directory {
                    let name = String::from_utf8_lossy(name);
                    pending.push(format!("{}/{name}", dir.trim_end_matches('/')));
                }
            }
        }
    }
    failures
}

/// What a symlink operand points to, for `ls` without `-l`.
async fn follow(client: &Client, path: &str) -> Result<Attr, FsError> {
    let target = client.readlink_path(path).await?;
    let target = String::from_utf8_lossy(&target).into_owned();
    let resolved = if target.starts_with('/') {
        target
    } else {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        format!("{parent}/{target}")
    };
    client.stat_path(&resolved).await
}

/// Prints names (and with `long`, their attributes) of entries in directory `dir`.
async fn print_entries(
    client: &Client,
    entries: &[(Vec<u8>, Attr)],
    long: bool,
    dir: &str,
    out: &mut impl Write,
) {
    if !long {
        for (name, _) in entries {
            let _ = out.write_all(name);
            let _ = writeln!(out);
        }
        return;
    }
    let columns = Columns::of(entries.iter().map(|(_, attr)| attr));
    for (name, attr) in entries {
        let target = if attr.kind == FileKind::Symlink {
            let name = String::from_utf8_lossy(name);
            let path = if dir.is_empty() {
                name.into_owned()
            } else {
                format!("{}/{name}", dir.trim_end_matches('/'))
            };
            client.readlink_path(&path).await.ok()
        } else {
            None
        };
        let _ = out.write_all(&long_line(&columns, attr, name, target.as_deref()));
        let _ = writeln!(out);
    }
}

/// `stat PATH...`.
pub async fn stat(client: &Client, paths: &[String], out: &mut impl Write) -> Failures {
    let mut failures = Failures::new("stat");
    for path in paths {
        match client.stat_path(path).await {
            Ok(attr) => {
                let target = if attr.kind == FileKind::Symlink {
                    client.readlink_path(path).await.ok()
                } else {
                    None
                };
                let _ = out.write_all(stat_report(path, &attr, target.as_deref()).as_bytes());
            }
            Err(err) => failures.fail(format!("cannot statx {}", quote(path)), &err),
        }
    }
    failures
}

/// `mkdir [-p] PATH...`.
pub async fn mkdir(client: &Client, paths: &[String], parents: bool) -> Failures {
    let mut failures = Failures::new("mkdir");
    for path in paths {
        let made = if parents {
            mkdir_parents(client, path).await
        } else {
            client.mkdir_path(path, 0o755).await.map(drop)
        };
        if let Err(err) = made {
            failures.fail(format!("cannot create directory {}", quote(path)), &err);
        }
    }
    failures
}

/// `mkdir -p`: every missing directory of `path`; existing directories are fine.
async fn mkdir_parents(client: &Client, path: &str) -> Result<(), FsError> {
    let mut prefix = String::new();
    for component in path.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(component);
        match client.mkdir_path(&prefix, 0o755).await {
            Ok(_) => {}
            Err(FsError::Exists) => {
                if client.stat_path(&prefix).await?.kind != FileKind::Directory {
                    return Err(FsError::NotDir);
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// `rmdir PATH...`.
pub async fn rmdir(client: &Client, paths: &[String]) -> Failures {
    let mut failures = Failures::new("rmdir");
    for path in paths {
        if let Err(err) = client.rmdir_path(path).await {
            failures.fail(format!("failed to remove {}", quote(path)), &err);
        }
    }
    failures
}

/// Options of `rm`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RmOptions {
    /// `-r`: remove directories and their contents.
    pub recursive: bool,
    /// `-f`: ignore names that do not exist.
    pub force: bool,
}

/// `rm [-r] [-f] PATH...`.
pub async fn rm(client: &Client, paths: &[String], options: RmOptions) -> Failures {
    let mut failures = Failures::new("rm");
    for path in paths {
        let attr = match client.stat_path(path).await {
            Ok(attr) => attr,
            Err(FsError::NotFound) if options.force => continue,
            Err(err) => {
                failures.fail(format!("cannot remove {}", quote(path)), &err);
                continue;
            }
        };
        if attr.kind != FileKind::Directory {
            if let Err(err) = client.unlink_path(path).await {
                failures.fail(format!("cannot remove {}", quote(path)), &err);
            }
        } else if !options.recursive {
            failures.fail(format!("cannot remove {}", quote(path)), &FsError::IsDir);
        } else if attr.ino == ROOT_INO {
            // As GNU rm's --preserve-root, which dfs does not let one turn off.
            failures.message(format!(
                "it is dangerous to operate recursively on {}",
                quote(path)
            ));
        } else {
            remove_tree(client, path, &mut failures).await;
        }
    }
    failures
}

/// Removes directory `path` and everything under it, depth first, reporting what fails.
async fn remove_tree(client: &Client, path: &str, failures: &mut Failures) {
    // (directory, whether its entries were removed already)
    let mut stack = vec![(path.to_string(), false)];
    while let Some((dir, emptied)) = stack.pop() {
        if emptied {
            if let Err(err) = client.rmdir_path(&dir).await {
                failures.fail(format!("cannot remove {}", quote(&dir)), &err);
            }
            continue;
        }
        let entries = match client.list_path(&dir).await {
            Ok(entries) => entries,
            Err(err) => {
                failures.fail(format!("cannot remove {}", quote(&dir)), &err);
                continue;
            }
        };
        stack.push((dir.clone(), true));
        for DirEntry { name, attr } in entries {
            let child = format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                String::from_utf8_lossy(&name)
            );
            if attr.kind == FileKind::Directory {
                stack.push((child, false));
            } else if let Err(err) = client.unlink_path(&child).await {
                failures.fail(format!("cannot remove {}", quote(&child)), &err);
            }
        }
    }
}

/// `mv SRC DST`: renames; into DST when it is a directory, as `mv` does.
pub async fn mv(client: &Client, from: &str, to: &str) -> Failures {
    let mut failures = Failures::new("mv");
    if let Err(err) = client.stat_path(from).await {
        failures.fail(format!("cannot stat {}", quote(from)), &err);
        return failures;
    }
    let target = match client.stat_path(to).await {
        Ok(attr) if attr.kind == FileKind::Directory => {
            let name = from
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(from);
            format!("{}/{name}", to.trim_end_matches('/'))
        }
        _ => to.to_string(),
    };
    if let Err(err) = client.rename_path(from, &target).await {
        let what = format!("cannot move {} to {}", quote(from), quote(&target));
        failures.fail(what, &err);
    }
    failures
}

/// `cat PATH...`: the files' bytes, in order, to `out`.
pub async fn cat(client: &Client, paths: &[String], out: &mut impl Write) -> Failures {
    let mut failures = Failures::new("cat");
    for path in paths {
        if let Err(err) = cat_one(client, path, out).await {
            // `cat` names its operands unquoted.
            failures.fail(path.clone(), &err);
        }
    }
    let _ = out.flush();
    failures
}

async fn cat_one(client: &Client, path: &str, out: &mut impl Write) -> Result<(), FsError> {
    let file = client.open_path(path, dfs_client::OpenFlags::READ).await?;
    let mut offset = 0u64;
    let copied = async {
        loop {
            let data = file.read(offset, CAT_PIECE).await?;
            if data.is_empty() {
                return Ok(());
            }
            out.write_all(&data)
                .map_err(|err| FsError::Io(format!("standard output: {err}")))?;
            offset += data.len() as u64;
        }
    }
    .await;
    file.close().await?;
    copied
}
