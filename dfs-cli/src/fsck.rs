//! `dfs fsck PATH`: walks a subtree one directory per master call, adding up the health of
//! every file, with a progress line on standard error (when it is a terminal) so an operator
//! checking a large tree sees it move.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use dfs_proto::FsError;
use dfs_proto::pb::{self, admin_client::AdminClient};
use tonic::transport::Channel;

use crate::Error;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The health of every file under `path`, the sum of one `Fsck` call per directory.
pub async fn walk(master: &mut AdminClient<Channel>, path: &str) -> Result<pb::FsckReply, Error> {
    let mut total = pb::FsckReply::default();
    let mut pending = VecDeque::from([path.to_string()]);
    let progress = std::io::stderr().is_terminal();
    let mut last_drawn = Instant::now();
    while let Some(dir) = pending.pop_front() {
        let reply = match master.fsck(pb::PathRequest { path: dir }).await {
            Ok(reply) => reply.into_inner(),
            // Removed since its parent was listed: nothing left to check there.
            Err(status) if FsError::from_status(&status) == FsError::NotFound => continue,
            Err(status) => return Err(Error::Master(FsError::from_status(&status))),
        };
        add(&mut total, reply, &mut pending);
        if progress && last_drawn.elapsed() >= PROGRESS_EVERY {
            last_drawn = Instant::now();
            eprint!(
                "\rfsck: {} directories, {} files, {} chunks checked, {} to go ",
                total.directories,
                total.files,
                total.chunks,
                pending.len()
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    total.damaged_files.sort();
    Ok(total)
}

/// Adds one directory's reply to the running total and queues its subdirectories.
fn add(total: &mut pb::FsckReply, reply: pb::FsckReply, pending: &mut VecDeque<String>) {
    total.directories += reply.directories;
    total.files += reply.files;
    total.chunks += reply.chunks;
    total.healthy_chunks += reply.healthy_chunks;
    total.under_replicated += reply.under_replicated;
    total.missing += reply.missing;
    total.damaged_files.extend(reply.damaged_files);
    pending.extend(reply.subdirectories);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_add_up_and_queue_subdirectories() {
        let mut total = pb::FsckReply::default();
        let mut pending = VecDeque::new();
        let level = |dirs: &[&str], damaged: &[&str]| pb::FsckReply {
            directories: 1,
            files: 2,
            chunks: 3,
            healthy_chunks: 2,
            under_replicated: 1,
            missing: 0,
            damaged_files: damaged.iter().map(|s| s.to_string()).collect(),
            subdirectories: dirs.iter().map(|s| s.to_string()).collect(),
        };
        add(&mut total, level(&["a", "b"], &["x"]), &mut pending);
        add(&mut total, level(&["a/c"], &["a/y"]), &mut pending);
        assert_eq!(pending, ["a", "b", "a/c"]);
        assert_eq!((total.directories, total.files, total.chunks), (2, 4, 6));
        assert_eq!((total.healthy_chunks, total.under_replicated), (4, 2));
        assert_eq!(total.damaged_files, ["x", "a/y"]);
        assert!(total.subdirectories.is_empty());
    }
}
