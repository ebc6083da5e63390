//! The master over gRPC: `run` on a loopback port, real tonic clients of its services, errors
//! crossing the wire as errnos, a restart, and the binary's `--addr-file` and SIGTERM handling.

use std::path::Path;
use std::time::Duration;

use dfs_master::{Config, run};
use dfs_proto::pb::files_client::FilesClient;
use dfs_proto::pb::namespace_client::NamespaceClient;
use dfs_proto::pb::registry_client::RegistryClient;
use dfs_proto::pb::{self, FileKind};
use dfs_proto::{FsError, ROOT_INO};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Waits until a server has written its address to `path` (it does so once it is ready).
async fn wait_for_addr(path: &Path) -> String {
    for _ in 0..600 {
        if let Ok(addr) = std::fs::read_to_string(path) {
            return addr.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no address in {} after 30 s", path.display());
}

/// A client of each master service these tests call, over one channel.
#[derive(Clone)]
struct Clients {
    namespace: NamespaceClient<Channel>,
    files: FilesClient<Channel>,
    registry: RegistryClient<Channel>,
}

impl Clients {
    async fn connect(addr: &str) -> Clients {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Clients {
            namespace: NamespaceClient::new(channel.clone()),
            files: FilesClient::new(channel.clone()),
            registry: RegistryClient::new(channel),
        }
    }
}

/// A master started with `run` in this process.
struct Running {
    client: Clients,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<dfs_master::Result<()>>,
}

async fn start(config: &Config) -> Running {
    let addr_file = config.addr_file.clone().expect("addr file");
    let _ = std::fs::remove_file(&addr_file);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(config.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let addr = wait_for_addr(&addr_file).await;
    let client = Clients::connect(&addr).await;
    Running { client, stop, task }
}

impl Running {
    /// Stops the master while the client stays connected: a shutdown must not wait for
    /// clients to hang up.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn mknod(parent: u64, name: &str, kind: FileKind) -> pb::MakeNodeRequest {
    pb::MakeNodeRequest {
        parent,
        name: name.into(),
        kind: kind as i32,
        perm: 0o755,
        uid: 1000,
        gid: 1000,
        exclusive: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metadata_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.tls = dfs_proto::tls::TlsOptions::insecure();
    config.chunk_size = 1 << 20;
    config.replication = 2;
    config.addr_file = Some(dir.path().join("master.addr"));

    let mut m = start(&config).await;
    let c = &mut m.client;
    let cluster = c
        .namespace
        .get_cluster_config(pb::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((cluster.chunk_size, cluster.replication), (1 << 20, 2));

    let d = c
        .namespace
        .make_node(mknod(ROOT_INO, "dir", FileKind::Directory))
        .await
        .unwrap()
        .into_inner();
    let d = d.attr.unwrap().ino;
    let f = c
        .namespace
        .make_node(mknod(d, "file", FileKind::Regular))
        .await
        .unwrap()
        .into_inner();
    let f = f.attr.unwrap().ino;

    // Errors arrive as the errno the master meant.
    let status = c
        .namespace
        .make_node(mknod(d, "file", FileKind::Regular))
        .await
        .unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::Exists);
    let lookup = pb::LookupRequest {
        parent: d,
        name: b"missing".to_vec(),
        ..Default::default()
    };
    let status = c.namespace.lookup(lookup).await.unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NotFound);
    let rmdir = pb::RemoveRequest {
        parent: ROOT_INO,
        name: b"dir".to_vec(),
    };
    let status = c.namespace.rmdir(rmdir).await.unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NotEmpty);

    // Without chunkservers there is no room for data.
    let allocate = pb::AllocateChunkRequest { ino: f, index: 0 };
    let status = c.files.allocate_chunk(allocate).await.unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NoSpace);
    let mut server_ids = Vec::new();
    for i in 0..2 {
        let register = pb::RegisterChunkserverRequest {
            addr: format!("127.0.0.1:{}", 7100 + i),
            storage_uuid: format!("uuid-{i}"),
            capacity_bytes: 1 << 30,
            free_bytes: 1 << 30,
            ..Default::default()
        };
        server_ids.push(
            c.registry
                .register_chunkserver(register)
                .await
                .unwrap()
                .into_inner()
                .server_id,
        );
    }
    let chunk = c.files.allocate_chunk(allocate).await.unwrap().into_inner();
    assert_eq!(chunk.replicas.len(), 2);
    let commit = pb::CommitWriteRequest {
        ino: f,
        chunks: vec![pb::ChunkCommit {
            index: 0,
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            length: 4096,
            placed_servers: Vec::new(),
        }],
        size: 4096,
        mtime: None,
        ..Default::default()
    };
    let attr = c
        .files
        .commit_write(commit)
        .await
        .unwrap()
        .into_inner()
        .attr
        .unwrap();
    assert_eq!(attr.size, 4096);
    let stat = c
        .namespace
        .stat_fs(pb::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stat.files, stat.live_servers, stat.total_bytes),
        (3, 2, 2 << 30)
    );
    let heartbeat = pb::HeartbeatRequest {
        server_id: server_ids[0],
        ..Default::default()
    };
    assert!(
        !c.registry
            .heartbeat(heartbeat)
            .await
            .unwrap()
            .into_inner()
            .reregister
    );
    m.stop().await;

    // A restarted master (on another port) knows everything it acknowledged.
    let mut m = start(&config).await;
    let c = &mut m.client;
    // A lookup for an open brings a small file's chunk map along.
    let lookup = pb::LookupRequest {
        parent: d,
        name: b"file".to_vec(),
        open_ahead: true,
    };
    let reply = c.namespace.lookup(lookup).await.unwrap().into_inner();
    let attr = reply.attr.unwrap();
    assert_eq!((attr.ino, attr.size), (f, 4096));
    let ahead = reply.chunk_map.expect("a small file's chunk map");
    assert_eq!(ahead.chunks.len(), 1);
    assert_eq!(ahead.chunks[0].chunk_id, chunk.chunk_id);
    let chunks = c
        .files
        .get_chunks(pb::GetChunksRequest {
            ino: f,
            first_index: 0,
            count: 0,
        })
        .await
        .unwrap();
    let chunks = chunks.into_inner();
    assert_eq!(chunks.chunks.len(), 1);
    assert_eq!(
        (chunks.chunks[0].chunk_id, chunks.chunks[0].length),
        (chunk.chunk_id, 4096)
    );
    let page = c
        .namespace
        .read_dir(pb::ReadDirRequest {
            ino: ROOT_INO,
            after: vec![],
            limit: 0,
            open: false,
        })
        .await
        .unwrap();
    let names: Vec<_> = page
        .into_inner()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b"dir".to_vec()]);
    m.stop().await;
}

/// Kills the child process if a test fails before it exits by itself.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_change_names_answer_the_directories_they_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.tls = dfs_proto::tls::TlsOptions::insecure();
    config.addr_file = Some(dir.path().join("master.addr"));
    let mut m = start(&config).await;
    let c = &mut m.client;
    // Each answer carries the directory as `GetAttr` would show it right after the call.
    let getattr = |c: &mut Clients, ino: u64| {
        let mut c = c.clone();
        async move {
            let req = pb::GetAttrRequest { ino };
            c.namespace
                .get_attr(req)
                .await
                .unwrap()
                .into_inner()
                .attr
                .unwrap()
        }
    };
    let made = c
        .namespace
        .make_node(mknod(ROOT_INO, "a", FileKind::Directory))
        .await
        .unwrap()
        .into_inner();
    let a = made.attr.unwrap().ino;
    let root_now = getattr(c, ROOT_INO).await;
    assert_eq!(made.changed_dirs, vec![root_now]);
    assert_eq!(root_now.nlink, 3, "a subdirectory's '..' counts");

    let b = c
        .namespace
        .make_node(mknod(ROOT_INO, "b", FileKind::Directory))
        .await
        .unwrap()
        .into_inner()
        .attr
        .unwrap()
        .ino;
    let file = c
        .namespace
        .make_node(mknod(a, "f", FileKind::Regular))
        .await
        .unwrap();
    assert_eq!(file.into_inner().changed_dirs, vec![getattr(c, a).await]);

    // A rename between two directories answers both, each once; within one, that one.
    let rename = |from: u64, to: u64| pb::RenameRequest {
        parent: from,
        name: b"f".to_vec(),
        new_parent: to,
        new_name: b"f".to_vec(),
        flags: 0,
    };
    let moved = c.namespace.rename(rename(a, b)).await.unwrap().into_inner();
    assert_eq!(moved.dirs, vec![getattr(c, a).await, getattr(c, b).await]);
    let within = pb::RenameRequest {
        new_name: b"g".to_vec(),
        ..rename(b, b)
    };
    let renamed = c.namespace.rename(within).await.unwrap().into_inner();
    assert_eq!(renamed.dirs, vec![getattr(c, b).await]);

    let link = pb::LinkRequest {
        ino: getattr(c, ROOT_INO).await.ino,
        new_parent: a,
        new_name: b"x".to_vec(),
    };
    // (Directories cannot be linked: an error answers nothing.)
    assert!(c.namespace.link(link).await.is_err());

    let remove = |parent: u64, name: &str| pb::RemoveRequest {
        parent,
        name: name.into(),
    };
    let unlinked = c
        .namespace
        .unlink(remove(b, "g"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unlinked.dirs, vec![getattr(c, b).await]);
    let removed = c
        .namespace
        .rmdir(remove(ROOT_INO, "a"))
        .await
        .unwrap()
        .into_inner();
    let root_now = getattr(c, ROOT_INO).await;
    assert_eq!(removed.dirs, vec![root_now]);
    assert_eq!(root_now.nlink, 3);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_writes_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dfs-master"))
        .arg("--insecure")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--addr-file")
        .arg(&addr_file)
        .env("DFS_MASTER_DATA_DIR", dir.path().join("data"))
        .env("DFS_MASTER_SYNC", "false")
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addr = wait_for_addr(&addr_file).await;
    let mut client = NamespaceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let root = client
        .get_attr(pb::GetAttrRequest { ino: ROOT_INO })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(root.attr.unwrap().perm, 0o755);
    drop(client);

    let mut child = guard.0.take().unwrap();
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
