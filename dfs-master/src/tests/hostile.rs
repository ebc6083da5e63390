//! Hostile input to the namespace's handlers: random operations with names no filesystem
//! allows, inode numbers that do not exist or name the wrong kind of node, flags out of range
//! and sizes at the edge, thousands of them against a real RocksDB. Each call answers or fails
//! with an error; none panics, and the tree stays whole: every name listed leads to an inode
//! that exists, of the kind the entry says, and the inode count matches what can be reached.
//!
//! `DFS_FUZZ_ITERATIONS` runs longer; the seed is printed and `DFS_FUZZ_SEED` replays it.

use std::collections::HashSet;

use dfs_proto::fuzz::Rng;
use dfs_proto::pb::{self, FileKind};
use dfs_proto::{MAX_NAME_LEN, ROOT_INO};

use super::{Fixture, ts};
use crate::namespace::xattrs::XattrMode;

/// Names and inode numbers for the calls.
trait Hostile {
    /// A name: mostly a few short ones (so operations meet), sometimes one no filesystem
    /// allows.
    fn name(&mut self) -> Vec<u8>;
    /// An inode number: mostly one that exists, sometimes one that does not.
    fn ino(&mut self, known: &[u64]) -> u64;
}

impl Hostile for Rng {
    fn name(&mut self) -> Vec<u8> {
        match self.below(12) {
            0 => Vec::new(),
            1 => b".".to_vec(),
            2 => b"..".to_vec(),
            3 => b"a/b".to_vec(),
            4 => b"nul\0".to_vec(),
            5 => vec![b'n'; MAX_NAME_LEN + self.below(3) as usize],
            6 => (0..self.below(20)).map(|_| self.next_u64() as u8).collect(),
            _ => format!("n{}", self.below(6)).into_bytes(),
        }
    }

    fn ino(&mut self, known: &[u64]) -> u64 {
        match self.below(8) {
            0 => self.next_u64(),
            1 => 0,
            2 => u64::MAX,
            _ => known[self.below(known.len() as u64) as usize],
        }
    }
}

/// Every inode reachable from the root, checking each listed entry on the way.
fn walk(fx: &Fixture) -> HashSet<u64> {
    let mut seen = HashSet::from([ROOT_INO]);
    let mut dirs = vec![ROOT_INO];
    while let Some(dir) = dirs.pop() {
        let mut after = Vec::new();
        loop {
            let page = fx
                .ns()
                .readdir(dir, &after, 100)
                .expect("a listed directory lists");
            for entry in &page.entries {
                let listed = entry.attr.as_ref().expect("a listed entry has attributes");
                let attr = fx.ns().getattr(listed.ino).unwrap_or_else(|e| {
                    panic!("entry {:?} of {dir} leads nowhere: {e}", entry.name)
                });
                assert_eq!(attr.kind, listed.kind, "entry {:?} of {dir}", entry.name);
                if seen.insert(listed.ino) && attr.kind() == FileKind::Directory {
                    dirs.push(listed.ino);
                }
            }
            match page.entries.last() {
                Some(last) if page.more => after = last.name.clone(),
                _ => break,
            }
        }
    }
    seen
}

#[test]
fn random_hostile_namespace_calls_fail_cleanly_and_leave_the_tree_whole() {
    let (mut rng, iterations) = dfs_proto::fuzz::setup("namespace calls", 20_000);
    let fx = Fixture::new();
    let mut known = vec![ROOT_INO];
    let mut answered = 0;
    for i in 0..iterations {
        let now = ts(100 + i as i64);
        let ns = fx.ns();
        let result = match rng.below(9) {
            0 | 1 => {
                let kinds = [
                    FileKind::Regular,
                    FileKind::Directory,
                    FileKind::Symlink,
                    FileKind::Unspecified,
                ];
                let req = pb::MakeNodeRequest {
                    parent: rng.ino(&known),
                    name: rng.name(),
                    kind: kinds[rng.below(4) as usize] as i32 + (rng.below(20) == 0) as i32 * 40,
                    perm: rng.next_u64() as u32,
                    uid: rng.next_u64() as u32,
                    gid: rng.next_u64() as u32,
                    exclusive: rng.below(2) == 0,
                    symlink_target: rng.name(),
                    ..Default::default()
                };
                ns.make_node(&req, now).map(|attr| known.push(attr.ino))
            }
            2 => ns.unlink(rng.ino(&known), &rng.name(), now),
            3 => ns.rmdir(rng.ino(&known), &rng.name(), now),
            4 => {
                let (from, to) = (rng.ino(&known), rng.ino(&known));
                let flags = [0, 1, 2, 3, rng.next_u64() as u32][rng.below(5) as usize];
                ns.rename(from, &rng.name(), to, &rng.name(), flags, now)
            }
            5 => ns
                .link(rng.ino(&known), rng.ino(&known), &rng.name(), now)
                .map(drop),
            6 => {
                let req = pb::SetAttrRequest {
                    ino: rng.ino(&known),
                    perm: (rng.below(2) == 0).then(|| rng.next_u64() as u32),
                    uid: (rng.below(3) == 0).then(|| rng.next_u64() as u32),
                    size: (rng.below(3) == 0).then(|| rng.next_u64() >> rng.below(64)),
                    ..Default::default()
                };
                ns.setattr(&req, now).map(drop)
            }
            7 => {
                let value = vec![7u8; rng.below(70_000) as usize];
                ns.set_xattr(rng.ino(&known), &rng.name(), &value, XattrMode::Upsert, now)
            }
            _ => ns.readlink(rng.ino(&known)).map(drop),
        };
        // Errors are fine; what is checked is that there was an answer, and the tree below.
        answered += usize::from(result.is_ok());
    }
    // Enough calls succeed for the tree to be worth checking.
    assert!(
        answered > iterations / 20,
        "only {answered} calls succeeded"
    );
    let reachable = walk(&fx);
    println!(
        "{answered} calls succeeded; {} inodes reachable",
        reachable.len()
    );
    let count = fx.ns().inode_count().unwrap();
    assert_eq!(
        count,
        reachable.len() as u64,
        "inodes counted but not reachable"
    );
}
