//! `memfs MOUNTPOINT`: an in-memory FUSE filesystem that answers every request on the thread
//! that read it, mounted with the session options of a dfs mount.
//!
//! It is the floor of what any FUSE filesystem can reach on a machine: each system call that
//! reaches it costs only the kernel's hand-off to the daemon and back, no network, no disk.
//! `scripts/bench` runs its small-file workload here too, so the table shows how much of each
//! figure is the FUSE transport and how much is dfs. Not a filesystem to keep data in: it holds
//! everything in memory, checks no permissions beyond the kernel's `default_permissions`, and
//! forgets everything at unmount.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, Session, TimeOrNow, WriteFlags,
};

/// The same attribute and entry lifetimes as a dfs mount's defaults, so the kernel asks as often.
const TTL: Duration = Duration::from_secs(1);

struct Node {
    attr: FileAttr,
    data: Vec<u8>,
    /// Names in a directory, in listing order.
    children: BTreeMap<OsString, INodeNo>,
}

struct Tree {
    nodes: HashMap<INodeNo, Node>,
    next_ino: u64,
}

struct MemFs {
    tree: Mutex<Tree>,
}

fn new_attr(ino: INodeNo, kind: FileType, perm: u16, req: &Request) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino,
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: req.uid(),
        gid: req.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn time_of(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Tree {
    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<INodeNo, Errno> {
        let dir = self.nodes.get(&parent).ok_or(Errno::ENOENT)?;
        dir.children.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn add(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        kind: FileType,
        perm: u16,
        req: &Request,
    ) -> Result<FileAttr, Errno> {
        let ino = INodeNo(self.next_ino);
        let dir = self.nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        if dir.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        dir.children.insert(name.to_owned(), ino);
        if kind == FileType::Directory {
            dir.attr.nlink += 1;
        }
        self.next_ino += 1;
        let attr = new_attr(ino, kind, perm, req);
        let children = BTreeMap::new();
        let data = Vec::new();
        self.nodes.insert(
            ino,
            Node {
                attr,
                data,
                children,
            },
        );
        Ok(attr)
    }

    fn remove(&mut self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        let node = &self.nodes[&ino];
        match (dir, node.attr.kind == FileType::Directory) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !node.children.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.nodes.remove(&ino);
        let parent = self.nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        parent.children.remove(name);
        if dir {
            parent.attr.nlink -= 1;
        }
        Ok(())
    }
}

impl MemFs {
    fn new() -> MemFs {
        let root = INodeNo(1);
        let now = SystemTime::now();
        let attr = FileAttr {
            ino: root,
            size: 0,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        let node = Node {
            attr,
            data: Vec::new(),
            children: BTreeMap::new(),
        };
        MemFs {
            tree: Mutex::new(Tree {
                nodes: HashMap::from([(root, node)]),
                next_ino: 2,
            }),
        }
    }

    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Filesystem for MemFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let tree = self.tree();
        match tree.child(parent, name) {
            Ok(ino) => reply.entry(&TTL, &tree.nodes[&ino].attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree().nodes.get(&ino) {
            Some(node) => reply.attr(&TTL, &node.attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut tree = self.tree();
        let Some(node) = tree.nodes.get_mut(&ino) else {
            return reply.error(Errno::ENOENT);
        };
        let attr = &mut node.attr;
        if let Some(mode) = mode {
            attr.perm = (mode & 0o7777) as u16;
        }
        attr.uid = uid.unwrap_or(attr.uid);
        attr.gid = gid.unwrap_or(attr.gid);
        if let Some(size) = size {
            node.data.resize(size as usize, 0);
            attr.size = size;
        }
        attr.atime = atime.map_or(attr.atime, time_of);
        attr.mtime = mtime.map_or(attr.mtime, time_of);
        attr.ctime = SystemTime::now();
        reply.attr(&TTL, attr);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        match self
            .tree()
            .add(parent, name, FileType::Directory, perm, req)
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        match self
            .tree()
            .add(parent, name, FileType::RegularFile, perm, req)
        {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(errno) => reply.error(errno),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.tree().remove(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.tree().remove(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let tree = self.tree();
        let Some(node) = tree.nodes.get(&ino) else {
            return reply.error(Errno::ENOENT);
        };
        let start = (offset as usize).min(node.data.len());
        let end = (start + size as usize).min(node.data.len());
        reply.data(&node.data[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut tree = self.tree();
        let Some(node) = tree.nodes.get_mut(&ino) else {
            return reply.error(Errno::ENOENT);
        };
        let end = offset as usize + data.len();
        if node.data.len() < end {
            node.data.resize(end, 0);
        }
        node.data[offset as usize..end].copy_from_slice(data);
        node.attr.size = node.data.len() as u64;
        node.attr.blocks = node.attr.size.div_ceil(512);
        node.attr.mtime = SystemTime::now();
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let tree = self.tree();
        let Some(dir) = tree.nodes.get(&ino) else {
            return reply.error(Errno::ENOENT);
        };
        // Offsets count entries; "." and ".." are the first two.
        let dots = [
            (ino, FileType::Directory, OsStr::new(".")),
            (ino, FileType::Directory, OsStr::new("..")),
        ];
        let names = dir
            .children
            .iter()
            .map(|(name, child)| (*child, tree.nodes[child].attr.kind, name.as_os_str()));
        for (index, (child, kind, name)) in dots
            .into_iter()
            .chain(names)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(child, index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.tree().nodes.len() as u64;
        reply.statfs(1 << 30, 1 << 30, 1 << 30, files, 1 << 30, 4096, 255, 4096);
    }
}

fn main() -> std::io::Result<()> {
    let Some(mountpoint) = std::env::args_os().nth(1) else {
        eprintln!("usage: memfs MOUNTPOINT (unmount with fusermount3 -u MOUNTPOINT)");
        std::process::exit(2);
    };
    // As `dfs_fuse::session_config`: the same options, threads and per-thread descriptors.
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("memfs".into()),
        MountOption::DefaultPermissions,
        MountOption::AutoUnmount,
    ];
    config.acl = fuser::SessionACL::RootAndOwner;
    config.n_threads = Some(4);
    config.clone_fd = true;
    Session::new(MemFs::new(), &mountpoint, &config)?.run()
}
