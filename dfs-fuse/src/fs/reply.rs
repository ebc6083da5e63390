//! Reply plumbing of the adapter: running a request's operation on the runtime and answering
//! the kernel from there, mapping errors to errno, and copying arguments out of the request.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use dfs_proto::FsError;
use fuser::{ReplyAttr, ReplyEmpty, ReplyEntry, Request};

use super::{DfsFs, GENERATION};
use dfs_client::{Attr, Caller, Client};

use crate::attr::file_attr;
use crate::error::errno;
use crate::metrics;

pub(super) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// Copies a name out of the request buffer.
pub(super) fn name_of(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

impl DfsFs {
    /// Runs the task `op` builds from a clone of the client on the runtime, serving the
    /// request dispatched on this thread (it is recorded when the task ends, after its reply).
    /// Every task of a request is spawned here.
    pub(super) fn spawn<Fut>(&self, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let request = metrics::take_dispatching();
        self.runtime
            .spawn(metrics::serving(request, op(self.client.clone())));
    }

    /// Runs an operation that answers with a new or found entry.
    pub(super) fn reply_entry<Fut>(&self, reply: ReplyEntry, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = Result<Attr, FsError>> + Send + 'static,
    {
        let (attr_ttl, entry_ttl) = (self.attr_ttl, self.entry_ttl);
        let op = op(self.client.clone());
        self.spawn(|_| async move {
            match op.await {
                Ok(attr) => {
                    let attr = file_attr(&attr);
                    reply.entry_with_ttls(&attr_ttl, &entry_ttl, &attr, GENERATION);
                }
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// Runs an operation that answers with nothing.
    pub(super) fn reply_empty<Fut>(&self, reply: ReplyEmpty, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = Result<(), FsError>> + Send + 'static,
    {
        let op = op(self.client.clone());
        self.spawn(|_| async move {
            match op.await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// Runs an operation that answers with attributes.
    pub(super) fn reply_attr<Fut>(&self, reply: ReplyAttr, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = Result<Attr, FsError>> + Send + 'static,
    {
        let ttl = self.attr_ttl;
        let op = op(self.client.clone());
        self.spawn(|_| async move {
            match op.await {
                Ok(attr) => reply.attr(&ttl, &file_attr(&attr)),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }
}
