//! The `Xattrs` service: extended attributes of inodes.

use dfs_proto::pb::{self, xattrs_server};
use dfs_proto::time;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::service::{Calls, writable};

/// The `Xattrs` service of a master.
pub struct XattrsService {
    calls: Calls,
}

impl XattrsService {
    /// Serves `calls`' master.
    pub fn new(calls: Calls) -> XattrsService {
        XattrsService { calls }
    }
}

#[tonic::async_trait]
impl xattrs_server::Xattrs for XattrsService {
    async fn get_xattr(
        &self,
        request: Request<pb::XattrRequest>,
    ) -> Result<Response<pb::XattrValue>, Status> {
        let req = request.into_inner();
        self.calls.read(move |m| {
            m.namespace()
                .get_xattr(req.ino, &req.name)
                .map(convert::xattr_value)
        })
    }

    async fn set_xattr(
        &self,
        request: Request<pb::SetXattrRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let mode = convert::xattr_mode(req.mode());
        let now = time::now();
        self.calls.write(move |m| {
            m.namespace()
                .set_xattr(req.ino, &req.name, &req.value, mode, now)
                .map(convert::done)
        })
    }

    async fn list_xattrs(
        &self,
        request: Request<pb::GetAttrRequest>,
    ) -> Result<Response<pb::XattrNames>, Status> {
        let req = request.into_inner();
        self.calls
            .read(move |m| m.namespace().list_xattrs(req.ino).map(convert::xattr_names))
    }

    async fn remove_xattr(
        &self,
        request: Request<pb::XattrRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = time::now();
        self.calls.write(move |m| {
            m.namespace()
                .remove_xattr(req.ino, &req.name, now)
                .map(convert::done)
        })
    }
}
