//! Mutual TLS between the masters, the chunkservers and clients, with certificates made by
//! `dfs ca init` and `dfs cert issue`: a group of three masters, its chunkservers (chain
//! writes between them included) and a mount work over it, and what lacks a certificate of
//! the cluster's CA, or the role a service asks for, is refused with a clear error and
//! changes nothing.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use dfs_proto::tls::{Role, TlsOptions};
use dfs_tests::{Cluster, ClusterOptions, binary, expect_errno, pseudo_random_bytes, tls_args};

/// Runs `dfs ARGS`, which must succeed.
fn dfs_ok(args: &[&str]) {
    let out = Command::new(binary("dfs")).args(args).output().unwrap();
    assert!(out.status.success(), "dfs {args:?}: {}", text(&out));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The CA in `dir/NAME-ca` and a certificate of `role` named `name` signed by it; the options
/// that present it, trusting the CA `trusted`.
fn certificate(dir: &Path, ca: &str, trusted: &str, role: Role, name: &str) -> TlsOptions {
    issue(dir, ca, trusted, role, name, &[])
}

/// [`certificate`] with more options of `dfs cert issue` (`--read-only`).
fn issue(
    dir: &Path,
    ca: &str,
    trusted: &str,
    role: Role,
    name: &str,
    extra: &[&str],
) -> TlsOptions {
    let ca_dir = dir.join(ca);
    if !ca_dir.join("ca.pem").exists() {
        dfs_ok(&["ca", "init", ca_dir.to_str().unwrap()]);
    }
    let certs = dir.join("certs");
    let (ca_str, certs_str) = (ca_dir.to_str().unwrap(), certs.to_str().unwrap());
    let args = [
        "cert",
        "issue",
        "--role",
        role.name(),
        name,
        "--ca",
        ca_str,
        "--out",
        certs_str,
    ];
    dfs_ok(&[&args[..], extra].concat());
    TlsOptions {
        ca: Some(dir.join(trusted).join("ca.pem")),
        cert: Some(certs.join(format!("{name}.pem"))),
        key: Some(certs.join(format!("{name}.key"))),
        insecure: false,
    }
}

/// `dfs` with the TLS arguments `tls` against `cluster`: its output and exit code.
fn dfs_with(cluster: &Cluster, tls: &[String], args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary("dfs"))
        .args(tls)
        .args(["--master", &cluster.master_addr()])
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

/// Runs `call` on a channel to `addr` presenting `tls` (plaintext without), on a runtime of
/// its own; `None` if no connection could be made.
fn with_channel<T, Fut>(
    addr: &str,
    tls: Option<&TlsOptions>,
    call: impl FnOnce(tonic::transport::Channel) -> Fut,
) -> Option<T>
where
    Fut: std::future::Future<Output = T>,
{
    let tls = tls.map(|tls| tls.load().unwrap().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endpoint = dfs_proto::tls::endpoint(addr, tls.as_ref()).unwrap();
        let channel = endpoint.connect().await.ok()?;
        Some(call(channel).await)
    })
}

/// The code of a call's answer.
fn code<T>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.map_or_else(|status| status.code(), |_| tonic::Code::Ok)
}

/// The status of a `get_cluster_config` call to the Registry service of `addr` (chunkservers
/// only) and of a `vote` to its Raft service (masters only), presenting `tls`.
fn registry_and_raft(addr: &str, tls: &TlsOptions) -> (tonic::Code, tonic::Code) {
    with_channel(addr, Some(tls), |channel| async move {
        let mut registry = dfs_proto::pb::registry_client::RegistryClient::new(channel.clone());
        let registry = code(registry.get_cluster_config(dfs_proto::pb::Empty {}).await);
        let mut raft = dfs_proto::pb::raft_client::RaftClient::new(channel);
        let raft = code(raft.vote(dfs_proto::pb::RaftMessage::default()).await);
        (registry, raft)
    })
    .expect("a connection")
}

/// The status of a `StatReplica` without a chunk token, asked of the chunkserver at `addr`
/// presenting `tls` (plaintext without): `PermissionDenied` (no token) means the server
/// admitted the caller over TLS and then checked the token.
fn stat_missing_replica(addr: &str, tls: Option<&TlsOptions>) -> tonic::Code {
    with_channel(addr, tls, |channel| async move {
        let mut chunkserver = dfs_proto::pb::chunkserver_client::ChunkserverClient::new(channel);
        let request = dfs_proto::pb::StatReplicaRequest {
            chunk_id: u64::MAX,
            token: None,
        };
        code(chunkserver.stat_replica(request).await)
    })
    .unwrap_or(tonic::Code::Unavailable)
}

#[test]
fn a_cluster_over_mutual_tls_serves_its_members_and_refuses_everyone_else() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let master = certificate(dir, "ca", "ca", Role::Master, "master");
    let chunkserver = certificate(dir, "ca", "ca", Role::Chunkserver, "cs");
    let alice = certificate(dir, "ca", "ca", Role::Client, "alice");
    let mallory = certificate(dir, "other-ca", "ca", Role::Client, "mallory");

    let cluster = Cluster::start(ClusterOptions {
        masters: 3,
        master_args: tls_args(&master),
        chunkserver_args: tls_args(&chunkserver),
        client_tls: Some(alice.clone()),
        ..Default::default()
    });

    // Members and clients with the cluster's certificates: the group, its chunkservers and
    // a mount work as without TLS.
    let mount = cluster.mount();
    let data = pseudo_random_bytes(7, 3 << 20);
    fs::write(mount.join("f"), &data).unwrap();
    assert_eq!(fs::read(mount.join("f")).unwrap(), data);
    let listing = cluster.dfs(&["ls", "/"]);
    assert_eq!(listing, "f\n");

    // Plaintext, and a certificate of another CA: no connection, nothing made.
    let plain = dfs_with(&cluster, &["--insecure".into()], &["mkdir", "/plain"]);
    let stranger = dfs_with(&cluster, &tls_args(&mallory), &["mkdir", "/stranger"]);
    for (code, out) in [&plain, &stranger] {
        assert_eq!(*code, Some(2), "{out}");
        assert!(out.contains("unreachable"), "{out}");
    }
    // A certificate the masters do not trust fails at once, and says why.
    assert!(
        stranger.1.contains("TLS with") && stranger.1.contains("alert"),
        "{}",
        stranger.1
    );
    assert_eq!(cluster.dfs(&["ls", "/"]), "f\n");

    // A client's certificate may not register as a chunkserver or speak Raft; the members'
    // certificates may, each its own service.
    let leader = cluster.master_addr_at(cluster.leader());
    assert_eq!(
        registry_and_raft(&leader, &alice),
        (tonic::Code::PermissionDenied, tonic::Code::PermissionDenied)
    );
    let (registry, raft) = registry_and_raft(&leader, &chunkserver);
    assert_eq!(registry, tonic::Code::Ok);
    assert_eq!(raft, tonic::Code::PermissionDenied);
    let (registry, raft) = registry_and_raft(&leader, &master);
    assert_eq!(registry, tonic::Code::PermissionDenied);
    assert_ne!(raft, tonic::Code::PermissionDenied, "a master speaks Raft");

    // The chunkservers' data service admits the cluster's certificates only.
    let chunkserver_addr = cluster.chunkserver_addr_at(0);
    assert_eq!(
        stat_missing_replica(&chunkserver_addr, Some(&alice)),
        tonic::Code::PermissionDenied
    );
    assert_ne!(
        stat_missing_replica(&chunkserver_addr, None),
        tonic::Code::PermissionDenied,
        "plaintext reached a chunkserver"
    );
    assert_ne!(
        stat_missing_replica(&chunkserver_addr, Some(&mallory)),
        tonic::Code::PermissionDenied,
        "another CA's certificate reached a chunkserver"
    );
}

#[test]
fn without_certificates_nothing_starts_unless_told_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let (data, mnt) = (data.to_str().unwrap(), mnt.to_str().unwrap());
    let listen = ["--listen", "127.0.0.1:0"];
    let cases: [(&str, Vec<&str>); 4] = [
        ("dfs-master", [&listen[..], &["--data-dir", data]].concat()),
        (
            "dfs-chunkserver",
            [
                &listen[..],
                &["--data-dir", data, "--master", "127.0.0.1:1"],
            ]
            .concat(),
        ),
        ("dfs-fuse", vec!["--master", "127.0.0.1:1", mnt]),
        ("dfs", vec!["--master", "127.0.0.1:1", "ls", "/"]),
    ];
    for (bin, args) in cases {
        let out = Command::new(binary(bin))
            .args(&args)
            // No default client certificates either.
            .env("DFS_TLS_DIR", dir.path())
            .output()
            .unwrap();
        let said = text(&out);
        assert!(!out.status.success(), "{bin}: {said}");
        assert!(
            said.contains("no certificates") && said.contains("--insecure"),
            "{bin}: {said}"
        );
    }
    // Nothing was created on the way out.
    assert!(!dir.path().join("data").exists());

    // --insecure with certificates is a contradiction, refused before anything starts.
    let out = Command::new(binary("dfs"))
        .args(["--insecure", "--tls-ca", "ca.pem", "--tls-cert", "c.pem"])
        .args(["--tls-key", "c.key", "ls", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--insecure contradicts"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_client_finds_its_certificates_in_the_default_directory() {
    let dir = tempfile::tempdir().unwrap();
    let master = certificate(dir.path(), "ca", "ca", Role::Master, "m1");
    let chunkserver = certificate(dir.path(), "ca", "ca", Role::Chunkserver, "cs");
    let client = certificate(dir.path(), "ca", "ca", Role::Client, "client");
    let cluster = Cluster::start(ClusterOptions {
        master_args: tls_args(&master),
        chunkserver_args: tls_args(&chunkserver),
        client_tls: Some(client.clone()),
        ..Default::default()
    });
    // ca.pem, client.pem and client.key in one directory, as `scripts/dfs-up` leaves them.
    let default = dir.path().join("default");
    fs::create_dir(&default).unwrap();
    for (from, to) in [
        (&client.ca, "ca.pem"),
        (&client.cert, "client.pem"),
        (&client.key, "client.key"),
    ] {
        fs::copy(from.as_ref().unwrap(), default.join(to)).unwrap();
    }
    let out = Command::new(binary("dfs"))
        .args(["--master", &cluster.master_addr(), "mkdir", "/made"])
        .env("DFS_TLS_DIR", &default)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(cluster.dfs(&["ls", "/"]), "made\n");
}

/// Writes `data` to chunk `chunk` at the chunkserver of its first replica, presenting `tls`
/// and the chunk's own token: the code the chunkserver answers.
fn write_chunk_with(chunk: &dfs_proto::pb::ChunkInfo, tls: &TlsOptions) -> (tonic::Code, String) {
    use dfs_proto::pb::{WriteChunkRequest, WriteHeader, write_chunk_request::Msg};
    let header = WriteHeader {
        chunk_id: chunk.chunk_id,
        version: chunk.version,
        token: chunk.token.clone(),
        ..Default::default()
    };
    let messages = [
        WriteChunkRequest {
            msg: Some(Msg::Header(header)),
        },
        WriteChunkRequest {
            msg: Some(Msg::Data(b"overwritten".to_vec().into())),
        },
    ];
    with_channel(&chunk.replicas[0].addr, Some(tls), |channel| async move {
        let mut chunkserver = dfs_proto::pb::chunkserver_client::ChunkserverClient::new(channel);
        match chunkserver.write_chunk(tokio_stream::iter(messages)).await {
            Ok(_) => (tonic::Code::Ok, String::new()),
            Err(status) => (status.code(), status.message().to_string()),
        }
    })
    .expect("a connection")
}

/// The chunk map of file `ino` as the master answers a client presenting `tls`.
fn chunks_as(cluster: &Cluster, ino: u64, tls: &TlsOptions) -> Vec<dfs_proto::pb::ChunkInfo> {
    let request = dfs_proto::pb::GetChunksRequest {
        ino,
        first_index: 0,
        count: 0,
    };
    with_channel(&cluster.master_addr(), Some(tls), |channel| async move {
        let mut files = dfs_proto::pb::files_client::FilesClient::new(channel);
        files.get_chunks(request).await.unwrap().into_inner().chunks
    })
    .expect("a connection")
}

#[test]
fn a_read_only_certificate_reads_and_every_change_it_asks_for_is_refused() {
    use std::os::unix::fs::MetadataExt;

    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let master = certificate(dir, "ca", "ca", Role::Master, "master");
    let chunkserver = certificate(dir, "ca", "ca", Role::Chunkserver, "cs");
    let writer = certificate(dir, "ca", "ca", Role::Client, "writer");
    let reader = issue(dir, "ca", "ca", Role::Client, "reader", &["--read-only"]);
    // The harness's own calls and its mounts are the reader's.
    let cluster = Cluster::start(ClusterOptions {
        master_args: tls_args(&master),
        chunkserver_args: tls_args(&chunkserver),
        client_tls: Some(reader.clone()),
        ..Default::default()
    });
    let local = dir.join("f");
    let data = pseudo_random_bytes(5, 200_000);
    fs::write(&local, &data).unwrap();
    let put = dfs_with(
        &cluster,
        &tls_args(&writer),
        &["put", local.to_str().unwrap(), "/f"],
    );
    assert_eq!(put.0, Some(0), "{}", put.1);

    // It reads, through a mount and the dfs command.
    let mount = cluster.mount();
    assert_eq!(fs::read(mount.join("f")).unwrap(), data);
    let (code, listing) = dfs_with(&cluster, &tls_args(&reader), &["ls", "/"]);
    assert_eq!((code, listing.as_str()), (Some(0), "f\n"));

    // Every change is refused with EROFS, from the mount and from the dfs command alike.
    expect_errno(fs::write(mount.join("g"), b"new"), libc::EROFS, "create");
    expect_errno(
        fs::OpenOptions::new().write(true).open(mount.join("f")),
        libc::EROFS,
        "open for writing",
    );
    expect_errno(fs::create_dir(mount.join("d")), libc::EROFS, "mkdir");
    expect_errno(fs::remove_file(mount.join("f")), libc::EROFS, "unlink");
    expect_errno(
        fs::rename(mount.join("f"), mount.join("moved")),
        libc::EROFS,
        "rename",
    );
    let (code, said) = dfs_with(&cluster, &tls_args(&reader), &["mkdir", "/d"]);
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("Read-only file system"), "{said}");

    // Its chunk tokens allow reading only: a chunkserver refuses its write too.
    let ino = fs::metadata(mount.join("f")).unwrap().ino();
    let [chunk] = chunks_as(&cluster, ino, &reader).try_into().unwrap();
    let (code, message) = write_chunk_with(&chunk, &reader);
    assert_eq!(code, tonic::Code::PermissionDenied, "{message}");
    assert!(message.contains("does not allow writing"), "{message}");

    // Nothing changed.
    let (_, listing) = dfs_with(&cluster, &tls_args(&writer), &["ls", "/"]);
    assert_eq!(listing, "f\n");
    assert_eq!(fs::read(mount.join("f")).unwrap(), data);
}
