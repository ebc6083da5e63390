//! Extended attributes as the kernel sees them (the logic is in `crate::xattr`): answering
//! for the caller's buffer size, and the names never stored answered without a hand-off.

use fuser::{Errno, INodeNo, ReplyEmpty, ReplyXattr};

use super::DfsFs;
use crate::error::errno;
use crate::xattr::{self, Sized};

/// Answers `getxattr`/`listxattr` for a caller's buffer of `size` bytes.
fn reply_sized(reply: ReplyXattr, bytes: Result<Vec<u8>, Errno>, size: u32) {
    match bytes.map(|bytes| xattr::fit(bytes, size)) {
        Ok(Ok(Sized::Len(len))) => reply.size(len),
        Ok(Ok(Sized::Data(data))) => reply.data(&data),
        Ok(Err(code)) => reply.error(Errno::from_i32(code)),
        Err(err) => reply.error(err),
    }
}

impl DfsFs {
    /// `setxattr`: sets attribute `name` of `ino` as `flags` (create/replace) allow.
    pub(super) fn set_xattr(
        &self,
        ino: INodeNo,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: i32,
        reply: ReplyEmpty,
    ) {
        if !xattr::stored(&name) {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        let mode = match xattr::mode(flags) {
            Ok(mode) => mode,
            Err(code) => return reply.error(Errno::from_i32(code)),
        };
        self.reply_empty(reply, |client| async move {
            client.set_xattr(ino.0, &name, &value, mode).await
        });
    }

    /// `getxattr`: the value of attribute `name` of `ino`, or its size.
    pub(super) fn get_xattr(&self, ino: INodeNo, name: Vec<u8>, size: u32, reply: ReplyXattr) {
        if !xattr::stored(&name) {
            // The kernel asks for `security.capability` before every write, and `ls -l` for
            // `security.selinux` of every file: answered right here, without a hand-off to
            // the runtime, as not supported (which `ls` remembers for the whole filesystem).
            reply.error(Errno::from_i32(libc::EOPNOTSUPP));
            return;
        }
        self.spawn(|client| async move {
            let value = client.get_xattr(ino.0, &name).await;
            let value = value.map_err(|err| errno(&err));
            reply_sized(reply, value, size);
        });
    }

    /// `listxattr`: the attribute names of `ino`, or their size.
    pub(super) fn list_xattrs(&self, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.spawn(|client| async move {
            let list = client.list_xattrs(ino.0).await;
            let list = list.map(xattr::name_list).map_err(|err| errno(&err));
            reply_sized(reply, list, size);
        });
    }

    /// `removexattr`: removes attribute `name` of `ino`.
    pub(super) fn remove_xattr(&self, ino: INodeNo, name: Vec<u8>, reply: ReplyEmpty) {
        if !xattr::stored(&name) {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        self.reply_empty(reply, |client| async move {
            client.remove_xattr(ino.0, &name).await
        });
    }
}
