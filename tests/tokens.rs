//! Chunk tokens with real processes: the master hands a token out with every chunk map, the
//! chunkservers check it, and a mount whose tokens expired while a file stayed open asks the
//! master again without the application seeing anything. A token the master issued opens its
//! own chunk only, and not after it expired.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::Duration;

use dfs_proto::FsError;
use dfs_proto::pb;
use dfs_tests::{Cluster, ClusterOptions, drop_pages, pseudo_random_bytes};

/// Lifetime of the tokens of these tests' masters.
const LIFETIME: Duration = Duration::from_secs(2);

fn cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        master_args: vec!["--chunk-token-lifetime-secs".into(), "2".into()],
        ..Default::default()
    })
}

/// Reads chunk `chunk` (all of its first replica's bytes) with `token`.
fn read_with(chunk: &pb::ChunkInfo, token: Option<pb::ChunkToken>) -> Result<Vec<u8>, FsError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = format!("http://{}", chunk.replicas[0].addr);
    runtime
        .block_on(async move {
            let mut client = pb::chunkserver_client::ChunkserverClient::connect(addr)
                .await
                .unwrap();
            let request = pb::ReadChunkRequest {
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                offset: 0,
                length: chunk.length,
                token,
            };
            let mut stream = client.read_chunk(request).await?.into_inner();
            let mut out = Vec::new();
            while let Some(piece) = stream.message().await? {
                out.extend_from_slice(&piece.data);
            }
            Ok(out)
        })
        .map_err(|status: tonic::Status| FsError::from_status(&status))
}

#[test]
fn a_file_held_open_past_its_tokens_lifetime_reads_and_writes_on() {
    let cluster = cluster();
    // No block cache: every read after the kernel's pages are dropped reaches a chunkserver.
    let mount = cluster.mount_with(&["--cache-bytes", "0"]);
    let path = mount.join("f");
    let mut data = pseudo_random_bytes(11, 3 << 20);
    fs::write(&path, &data).unwrap();

    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut head = vec![0u8; 4096];
    file.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..4096]);
    thread::sleep(LIFETIME + Duration::from_secs(1));

    // The tokens of the open file's chunk map expired: a read from a chunkserver and a
    // synced write both go through.
    drop_pages(&file);
    file.seek(SeekFrom::Start(1 << 20)).unwrap();
    let mut middle = vec![0u8; 65536];
    file.read_exact(&mut middle).unwrap();
    assert_eq!(middle, data[1 << 20..(1 << 20) + 65536]);
    thread::sleep(LIFETIME + Duration::from_secs(1));
    file.seek(SeekFrom::Start(2 << 20)).unwrap();
    file.write_all(b"written after expiry").unwrap();
    file.sync_all().unwrap();
    drop(file);
    data[2 << 20..(2 << 20) + 20].copy_from_slice(b"written after expiry");

    let other = cluster.mount_with(&["--cache-bytes", "0"]);
    assert_eq!(fs::read(other.join("f")).unwrap(), data);
}

#[test]
fn a_token_from_the_master_opens_its_own_chunk_only_and_not_after_it_expired() {
    let cluster = cluster();
    let mount = cluster.mount();
    fs::write(mount.join("a"), b"alpha bytes").unwrap();
    fs::write(mount.join("b"), b"bravo bytes").unwrap();
    let ino = |name: &str| fs::metadata(mount.join(name)).unwrap().ino();
    let [a] = cluster.chunks_of(ino("a")).try_into().unwrap();
    let [b] = cluster.chunks_of(ino("b")).try_into().unwrap();

    assert_eq!(read_with(&a, a.token.clone()).unwrap(), b"alpha bytes");
    let refused = |result: Result<Vec<u8>, FsError>, says: &str| match result {
        Err(FsError::TokenRefused(message)) => assert!(message.contains(says), "{message}"),
        other => panic!("not refused for its token ({says}): {other:?}"),
    };
    refused(read_with(&b, a.token.clone()), "is for chunk");
    refused(read_with(&b, None), "no chunk token");
    thread::sleep(LIFETIME + Duration::from_secs(1));
    refused(read_with(&a, a.token.clone()), "expired");
    // A fresh chunk map brings a fresh token.
    let [again] = cluster.chunks_of(ino("a")).try_into().unwrap();
    assert_eq!(read_with(&a, again.token).unwrap(), b"alpha bytes");
}
