//! [`OpenInodes`]: the table of open inodes, counting the open handles of each, so an inode's
//! client state lives exactly from its first `open` to its last `release`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::inode::OpenInode;

/// The open inodes of the mount, with the number of open handles of each.
#[derive(Debug, Default)]
pub struct OpenInodes {
    // A std mutex: held only to find, insert or remove an entry, never across an `.await`.
    inodes: Mutex<HashMap<u64, (Arc<OpenInode>, usize)>>,
}

impl OpenInodes {
    /// Registers one more open handle of `ino`, creating its state on the first.
    pub fn open(&self, ino: u64, buffer_bytes: usize) -> Arc<OpenInode> {
        let mut inodes = self.inodes.lock().expect("open inodes poisoned");
        let entry = inodes
            .entry(ino)
            .or_insert_with(|| (Arc::new(OpenInode::new(ino, buffer_bytes)), 0));
        entry.1 += 1;
        entry.0.clone()
    }

    /// The state of `ino` if it is open.
    pub fn get(&self, ino: u64) -> Option<Arc<OpenInode>> {
        self.inodes
            .lock()
            .expect("open inodes poisoned")
            .get(&ino)
            .map(|(inode, _)| inode.clone())
    }

    /// Unregisters one handle of `ino`; the state goes with the last one. Returns whether
    /// that was the last handle.
    pub fn close(&self, ino: u64) -> bool {
        let mut inodes = self.inodes.lock().expect("open inodes poisoned");
        if let Some(entry) = inodes.get_mut(&ino) {
            entry.1 -= 1;
            if entry.1 == 0 {
                inodes.remove(&ino);
                return true;
            }
        }
        false
    }

    /// Whether no inode is open (so an unlink cannot pull a file from under a handle).
    pub fn is_empty(&self) -> bool {
        self.inodes.lock().expect("open inodes poisoned").is_empty()
    }

    /// Every open inode (to flush them all when the filesystem is unmounted).
    pub fn all(&self) -> Vec<Arc<OpenInode>> {
        self.inodes
            .lock()
            .expect("open inodes poisoned")
            .values()
            .map(|(inode, _)| inode.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_state_lives_while_a_handle_is_open() {
        let inodes = OpenInodes::default();
        let a = inodes.open(7, 1 << 20);
        let b = inodes.open(7, 1 << 20);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!inodes.close(7));
        assert!(inodes.get(7).is_some());
        assert!(inodes.close(7));
        assert!(inodes.get(7).is_none());
        assert!(inodes.all().is_empty());
    }
}
