//! The `Namespace` service: what clients ask about names and attributes.
//!
//! A call that adds or removes names answers with the directories it changed, read after the
//! change ([`Namespace::changed_dirs`](crate::namespace::Namespace::changed_dirs)), so the
//! mount needs no `GetAttr` before its next permission check there.

use std::time::Instant;

use dfs_proto::pb::{self, namespace_server};
use dfs_proto::time;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::Result;
use crate::master::Master;
use crate::service::{Calls, writable};

/// The `Namespace` service of a master.
pub struct NamespaceService {
    calls: Calls,
}

impl NamespaceService {
    /// Serves `calls`' master.
    pub fn new(calls: Calls) -> NamespaceService {
        NamespaceService { calls }
    }
}

#[tonic::async_trait]
impl namespace_server::Namespace for NamespaceService {
    async fn get_cluster_config(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterConfig>, Status> {
        self.calls
            .read(|m| Ok(convert::cluster_config(m.cluster_config())))
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let reader = dfs_proto::tls::peer_is_read_only(&request);
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.read(move |m| {
            let mut reply = m.lookup(&req, now)?;
            if let Some(map) = reply.chunk_map.as_mut().filter(|_| reader) {
                m.read_only_tokens(&mut map.chunks);
            }
            Ok(reply)
        })
    }

    async fn get_attr(
        &self,
        request: Request<pb::GetAttrRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        self.calls
            .read(move |m| m.namespace().getattr(req.ino).map(convert::attr_reply))
    }

    async fn set_attr(
        &self,
        request: Request<pb::SetAttrRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = time::now();
        self.calls
            .write(move |m| m.namespace().setattr(&req, now).map(convert::attr_reply))
    }

    async fn make_node(
        &self,
        request: Request<pb::MakeNodeRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = time::now();
        let (parent, name) = (req.parent, req.name.clone());
        self.calls.write_once(
            move |m| {
                let attr = m.namespace().make_node(&req, now)?;
                let dirs = m.namespace().changed_dirs(&[req.parent])?;
                Ok(convert::attr_in_dirs(attr, dirs))
            },
            // A retry of an applied create answers what the name holds.
            move |m| named(m, parent, &name),
        )
    }

    async fn unlink(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::ChangedDirs>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = time::now();
        let parent = req.parent;
        self.calls.write_once(
            move |m| {
                m.namespace().unlink(req.parent, &req.name, now)?;
                let dirs = m.namespace().changed_dirs(&[req.parent])?;
                Ok(convert::changed_dirs(dirs))
            },
            move |m| changed(m, &[parent]),
        )
    }

    async fn rmdir(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::ChangedDirs>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = time::now();
        let parent = req.parent;
        self.calls.write_once(
            move |m| {
                m.namespace().rmdir(req.parent, &req.name, now)?;
                let dirs = m.namespace().changed_dirs(&[req.parent])?;
                Ok(convert::changed_dirs(dirs))
            },
            move |m| changed(m, &[parent]),
        )
    }

    async fn rename(
        &self,
        request: Request<pb::RenameRequest>,
    ) -> Result<Response<pb::ChangedDirs>, Status> {
        writable(&request)?;
        let r = request.into_inner();
        let now = time::now();
        let dirs = [r.parent, r.new_parent];
        self.calls.write_once(
            move |m| {
                let ns = m.namespace();
                ns.rename(r.parent, &r.name, r.new_parent, &r.new_name, r.flags, now)?;
                let dirs = ns.changed_dirs(&[r.parent, r.new_parent])?;
                Ok(convert::changed_dirs(dirs))
            },
            move |m| changed(m, &dirs),
        )
    }

    async fn link(
        &self,
        request: Request<pb::LinkRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = time::now();
        let (parent, name) = (req.new_parent, req.new_name.clone());
        self.calls.write_once(
            move |m| {
                let ns = m.namespace();
                let attr = ns.link(req.ino, req.new_parent, &req.new_name, now)?;
                let dirs = ns.changed_dirs(&[req.new_parent])?;
                Ok(convert::attr_in_dirs(attr, dirs))
            },
            move |m| named(m, parent, &name),
        )
    }

    async fn read_link(
        &self,
        request: Request<pb::ReadLinkRequest>,
    ) -> Result<Response<pb::ReadLinkReply>, Status> {
        let req = request.into_inner();
        self.calls
            .read(move |m| m.namespace().readlink(req.ino).map(convert::link_target))
    }

    async fn read_dir(
        &self,
        request: Request<pb::ReadDirRequest>,
    ) -> Result<Response<pb::ReadDirReply>, Status> {
        let req = request.into_inner();
        let now = time::now();
        // A mutation: the first page of a listing may mark the directory's atime.
        self.calls.write(move |m| m.read_dir(&req, now))
    }

    async fn stat_fs(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::StatFsReply>, Status> {
        let now = Instant::now();
        self.calls.read(move |m| m.statfs(now).map(convert::statfs))
    }

    async fn mark_access(
        &self,
        request: Request<pb::MarkAccessRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.calls
            .write(move |m| m.mark_accesses(&req).map(convert::done))
    }

    async fn sync_metadata(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.calls.write(|m| m.sync_metadata().map(convert::done))
    }
}

/// The answer to a create or link whose first try was applied: the node `name` in `parent`
/// names now, and the directory.
fn named(m: &Master, parent: u64, name: &[u8]) -> Result<pb::AttrReply> {
    let attr = m.namespace().lookup(parent, name)?;
    let dirs = m.namespace().changed_dirs(&[parent])?;
    Ok(convert::attr_in_dirs(attr, dirs))
}

/// The answer to a removal or rename whose first try was applied: the directories as they are.
fn changed(m: &Master, dirs: &[u64]) -> Result<pb::ChangedDirs> {
    Ok(convert::changed_dirs(m.namespace().changed_dirs(dirs)?))
}
