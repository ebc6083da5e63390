//! Attribute changes as the master applies them and the mount previews them: one rule for
//! which fields of a `setattr` land where.

use crate::pb;

impl pb::SetAttrRequest {
    /// Lays the permission bits, owner, group and times this request gives over `attr`
    /// (size, access marks and ctime are the caller's). The kernel checked that the caller
    /// may make them (`default_permissions`) and folded in their side effects (a `chown`
    /// clearing setuid arrives as a mode change).
    pub fn apply_to(&self, attr: &mut pb::Attr) {
        if let Some(perm) = self.perm {
            attr.perm = perm & 0o7777;
        }
        if let Some(uid) = self.uid {
            attr.uid = uid;
        }
        if let Some(gid) = self.gid {
            attr.gid = gid;
        }
        if let Some(atime) = self.atime {
            attr.atime = Some(atime);
        }
        if let Some(mtime) = self.mtime {
            attr.mtime = Some(mtime);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pb;

    #[test]
    fn only_the_given_fields_change() {
        let ts = |secs| Some(pb::Timestamp { secs, nanos: 0 });
        let mut attr = pb::Attr {
            perm: 0o755,
            uid: 1,
            gid: 2,
            size: 9,
            atime: ts(1),
            mtime: ts(1),
            ctime: ts(1),
            ..Default::default()
        };
        let chmod = pb::SetAttrRequest {
            perm: Some(0o104640),
            mtime: ts(5),
            size: Some(0),
            ..Default::default()
        };
        chmod.apply_to(&mut attr);
        assert_eq!(
            (attr.perm, attr.uid, attr.gid, attr.size),
            (0o4640, 1, 2, 9)
        );
        assert_eq!((attr.atime, attr.mtime, attr.ctime), (ts(1), ts(5), ts(1)));
    }
}
