//! The data service over real gRPC: three chunkservers in this process on loopback, no
//! master. Chain writes reach every replica, reads stream them back, and a broken chain
//! fails in bounded time instead of hanging.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_chunkserver::chain::INLINE_WRITE;
use dfs_chunkserver::{ChainTimeouts, ChunkStore, StoreOptions};
use dfs_proto::FsError;
use dfs_proto::pb::ChunkToken;
use dfs_proto::pb::chunkserver_client::ChunkserverClient;
use dfs_proto::pb::write_chunk_request::Msg;
use dfs_proto::pb::{
    ReadChunkRequest, WriteChunkReply, WriteChunkRequest, WriteHeader, WriteRange, WriteRanges,
};
use dfs_proto::token::{self, TokenSigner, TokenVerifier};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::Channel;

const BLOCK: u64 = 64 << 10;
const CHUNK: u64 = 64 << 20;
const TIMEOUTS: ChainTimeouts = ChainTimeouts {
    rpc: Duration::from_millis(1000),
    idle: Duration::from_secs(5),
};

/// The master's side of chunk tokens, as a test cluster's master would hold it.
static SIGNER: LazyLock<TokenSigner> =
    LazyLock::new(|| TokenSigner::new(&token::new_secret(), token::DEFAULT_LIFETIME));

/// A read-write token for `chunk_id` up to `version`, signed now.
fn token_for(chunk_id: u64, version: u64) -> Option<ChunkToken> {
    let access = token::READ | token::WRITE;
    Some(SIGNER.issue(chunk_id, version, access, token::unix_ms_now()))
}

/// One chunkserver data service on `127.0.0.1:0`, stopped on drop.
struct TestServer {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    dir: TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        TestServer::start_with(TIMEOUTS).await
    }

    async fn start_with(timeouts: ChainTimeouts) -> TestServer {
        TestServer::start_store(timeouts, None).await
    }

    /// A server storing at most `capacity` replica bytes.
    async fn start_limited(capacity: u64) -> TestServer {
        TestServer::start_store(TIMEOUTS, Some(capacity)).await
    }

    async fn start_store(timeouts: ChainTimeouts, capacity_limit: Option<u64>) -> TestServer {
        let dir = TempDir::new().unwrap();
        let options = StoreOptions {
            capacity_limit,
            ..store_options()
        };
        let store = ChunkStore::open(dir.path(), options).unwrap();
        // Bound before serving: connections queue in the backlog, so the address is usable
        // right away and no readiness wait is needed.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let tokens = Arc::new(TokenVerifier::default());
        tokens.update(&SIGNER.keys(token::unix_ms_now()));
        tokio::spawn(dfs_chunkserver::serve(
            store,
            timeouts,
            tokens,
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(stop),
            dir,
        }
    }
}

fn store_options() -> StoreOptions {
    StoreOptions {
        block_size: BLOCK,
        chunk_size: CHUNK,
        capacity_limit: None,
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn client(addr: &str) -> ChunkserverClient<Channel> {
    ChunkserverClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20)
}

fn header(chunk_id: u64, version: u64, offset: u64, downstream: &[&TestServer]) -> WriteHeader {
    WriteHeader {
        chunk_id,
        version,
        offset,
        downstream: downstream.iter().map(|s| s.addr.clone()).collect(),
        sync: false,
        truncate: false,
        token: token_for(chunk_id, version),
    }
}

/// Streams `header` and then `data` in pieces of `piece` bytes.
async fn write(
    addr: &str,
    header: WriteHeader,
    data: &[u8],
    piece: usize,
) -> Result<WriteChunkReply, Status> {
    let pieces = data
        .chunks(piece)
        .map(|c| Msg::Data(Bytes::copy_from_slice(c)));
    write_messages(addr, header, pieces.collect()).await
}

/// Streams `header` and then `messages`.
async fn write_messages(
    addr: &str,
    header: WriteHeader,
    messages: Vec<Msg>,
) -> Result<WriteChunkReply, Status> {
    let messages = std::iter::once(Msg::Header(header))
        .chain(messages)
        .map(|msg| WriteChunkRequest { msg: Some(msg) });
    let mut client = client(addr).await;
    client
        .write_chunk(tokio_stream::iter(messages.collect::<Vec<_>>()))
        .await
        .map(tonic::Response::into_inner)
}

/// Reads a whole replica, checking that no piece is larger than 1 MiB.
async fn read_all(addr: &str, chunk_id: u64, version: u64) -> Result<Vec<u8>, Status> {
    let request = ReadChunkRequest {
        chunk_id,
        version,
        offset: 0,
        length: u64::MAX,
        token: token_for(chunk_id, version),
    };
    let mut stream = client(addr).await.read_chunk(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(piece) = stream.message().await? {
        assert!(
            piece.data.len() <= 1 << 20,
            "read piece of {} bytes",
            piece.data.len()
        );
        out.extend_from_slice(&piece.data);
    }
    Ok(out)
}

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_write_reaches_every_replica() {
    let (a, b, c) = (
        TestServer::start().await,
        TestServer::start().await,
        TestServer::start().await,
    );
    // Not a multiple of the block size or of the piece size.
    let data = pseudo_random(1, (3 << 20) + 12_345);
    let mut head = header(0x42, 1, 0, &[&b, &c]);
    head.sync = true;
    let reply = write(&a.addr, head, &data, 300_000).await.unwrap();
    assert_eq!(
        reply,
        WriteChunkReply {
            length: data.len() as u64,
            replicas_written: 3
        }
    );
    for server in [&a, &b, &c] {
        assert!(
            read_all(&server.addr, 0x42, 1).await.unwrap() == data,
            "{}",
            server.addr
        );
    }

    // Overwrite a range across a block boundary, then cut the replicas where it ends.
    let patch = pseudo_random(2, 100_000);
    let offset = BLOCK - 10;
    let mut head = header(0x42, 1, offset, &[&b, &c]);
    head.truncate = true;
    let reply = write(&a.addr, head, &patch, 40_000).await.unwrap();
    let mut expected = data[..offset as usize].to_vec();
    expected.extend_from_slice(&patch);
    assert_eq!(
        reply,
        WriteChunkReply {
            length: expected.len() as u64,
            replicas_written: 3
        }
    );
    for server in [&a, &b, &c] {
        assert!(
            read_all(&server.addr, 0x42, 1).await.unwrap() == expected,
            "{}",
            server.addr
        );
    }

    // A ranged read returns exactly the range.
    let request = ReadChunkRequest {
        chunk_id: 0x42,
        version: 1,
        offset: 1000,
        length: 70_000,
        token: token_for(0x42, 1),
    };
    let mut stream = client(&c.addr)
        .await
        .read_chunk(request)
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(piece) = stream.message().await.unwrap() {
        got.extend_from_slice(&piece.data);
    }
    assert!(got == expected[1000..71_000]);
}

/// Checks that every server holds `expected` as chunk `chunk_id`, both as it serves it and as
/// a store reopened from its files finds it (so the sidecar on disk describes the data).
async fn assert_replicas(servers: &[&TestServer], chunk_id: u64, expected: &[u8]) {
    for server in servers {
        let served = read_all(&server.addr, chunk_id, 1).await.unwrap();
        assert!(served == expected, "{} serves other bytes", server.addr);
        let reopened = ChunkStore::open(server.dir.path(), store_options()).unwrap();
        let on_disk = reopened.read(chunk_id, 1, 0, CHUNK).unwrap();
        assert!(on_disk == expected, "{} stored other bytes", server.addr);
    }
}

/// Small streams are written on the serving task, larger ones move to a blocking thread half
/// way, and streams with flags finish there: every replica ends up with the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_crossing_streams_reach_every_replica() {
    let (a, b, c) = (
        TestServer::start().await,
        TestServer::start().await,
        TestServer::start().await,
    );
    // A small file: one piece, new replicas created inline on every hop.
    let small = pseudo_random(11, 5000);
    let reply = write(&a.addr, header(0x50, 1, 0, &[&b, &c]), &small, 1 << 20)
        .await
        .unwrap();
    assert_eq!((reply.length, reply.replicas_written), (5000, 3));
    assert_replicas(&[&a, &b, &c], 0x50, &small).await;

    // Pieces of 20 000 bytes: the first three inline, then the rest on a blocking thread,
    // which also does the fsync.
    let crossing = pseudo_random(12, 150_000);
    const { assert!(3 * 20_000 <= INLINE_WRITE && 4 * 20_000 > INLINE_WRITE) };
    let mut head = header(0x51, 1, 0, &[&b, &c]);
    head.sync = true;
    let reply = write(&a.addr, head, &crossing, 20_000).await.unwrap();
    assert_eq!(reply.length, crossing.len() as u64);
    assert_replicas(&[&a, &b, &c], 0x51, &crossing).await;

    // A small overwrite that cuts the replicas where it ends.
    let patch = pseudo_random(13, 3000);
    let mut head = header(0x50, 1, 1000, &[&b, &c]);
    head.truncate = true;
    let reply = write(&a.addr, head, &patch, 1 << 20).await.unwrap();
    assert_eq!(reply.length, 4000);
    let mut expected = small[..1000].to_vec();
    expected.extend_from_slice(&patch);
    assert_replicas(&[&a, &b, &c], 0x50, &expected).await;

    // Scattered pieces (a write-back's dirty ranges) leaving a hole of zeros, in one message.
    let ranges = WriteRanges {
        ranges: vec![
            WriteRange {
                offset: 0,
                data: Bytes::from_static(b"head"),
            },
            WriteRange {
                offset: 70_000,
                data: Bytes::from_static(b"tail"),
            },
        ],
    };
    let reply = write_messages(
        &a.addr,
        header(0x52, 1, 0, &[&b, &c]),
        vec![Msg::Ranges(ranges)],
    )
    .await
    .unwrap();
    assert_eq!(reply.length, 70_004);
    let mut expected = vec![0; 70_004];
    expected[..4].copy_from_slice(b"head");
    expected[70_000..].copy_from_slice(b"tail");
    assert_replicas(&[&a, &b, &c], 0x52, &expected).await;
}

/// The errors of a small write are the same whether it fails on the first hop or further
/// down: a full disk is ENOSPC, a write past the chunk end is invalid, and what was stored
/// before stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_writes_report_a_full_disk_and_a_chunk_overrun() {
    let a = TestServer::start().await;
    let full = TestServer::start_limited(10_000).await;
    let kept = pseudo_random(14, 8000);
    write(&full.addr, header(1, 1, 0, &[]), &kept, 1 << 20)
        .await
        .unwrap();

    let status = write(&full.addr, header(2, 1, 0, &[]), &[7; 4000], 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NoSpace);
    // Through a chain whose second hop is full: ENOSPC, naming that hop.
    let status = write(&a.addr, header(3, 1, 0, &[&full]), &[7; 4000], 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NoSpace);
    assert!(status.message().contains(&full.addr), "{status:?}");

    let status = write(
        &full.addr,
        header(1, 1, CHUNK - 10, &[]),
        &[7; 100],
        1 << 20,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(FsError::from_status(&status), FsError::Invalid(_)),
        "{status:?}"
    );
    assert_eq!(read_all(&full.addr, 1, 1).await.unwrap(), kept);
    // The refused write stored nothing (its replica was created, and stays empty).
    assert_eq!(read_all(&full.addr, 2, 1).await.unwrap(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_report_errors_with_their_errno() {
    let a = TestServer::start().await;
    let status = read_all(&a.addr, 7, 1).await.unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NotFound);

    write(&a.addr, header(7, 3, 0, &[]), b"v3", 1024)
        .await
        .unwrap();
    let status = write(&a.addr, header(7, 2, 0, &[]), b"v2", 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(FsError::from_status(&status), FsError::Stale(_)),
        "{status:?}"
    );
    // Reading with an older version sees the newer data; a newer version is refused.
    assert_eq!(read_all(&a.addr, 7, 2).await.unwrap(), b"v3");
    let status = read_all(&a.addr, 7, 4).await.unwrap_err();
    assert!(
        matches!(FsError::from_status(&status), FsError::Stale(_)),
        "{status:?}"
    );

    // A stream without a header is refused.
    let mut client = client(&a.addr).await;
    let data_only = vec![WriteChunkRequest {
        msg: Some(Msg::Data(Bytes::from_static(b"x"))),
    }];
    let status = client
        .write_chunk(tokio_stream::iter(data_only))
        .await
        .unwrap_err();
    assert!(
        matches!(FsError::from_status(&status), FsError::Invalid(_)),
        "{status:?}"
    );

    // A damaged replica is reported as corrupt.
    write(
        &a.addr,
        header(8, 1, 0, &[]),
        &pseudo_random(3, 200_000),
        65_536,
    )
    .await
    .unwrap();
    let path = a.dir.path().join("chunks/08/0000000000000008.data");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[150_000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let status = read_all(&a.addr, 8, 1).await.unwrap_err();
    assert!(
        matches!(FsError::from_status(&status), FsError::Corrupt(_)),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_downstream_fails_the_write_in_bounded_time() {
    let a = TestServer::start().await;
    // An address nothing listens on: connections are refused.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut head = header(9, 1, 0, &[]);
    head.downstream = vec![dead.clone()];
    let started = Instant::now();
    let status = write(&a.addr, head, &pseudo_random(4, 1 << 20), 256 << 10)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        status.message().contains(&dead),
        "error does not name {dead}: {status:?}"
    );
    assert!(
        FsError::from_status(&status).is_replica_fault(),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_downstream_fails_the_write_in_bounded_time() {
    let a = TestServer::start().await;
    // Accepts connections but never speaks HTTP/2.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    for len in [100, 8 << 20] {
        let mut head = header(10, 1, 0, &[]);
        head.downstream = vec![silent_addr.clone()];
        let started = Instant::now();
        let status = write(&a.addr, head, &pseudo_random(5, len), 1 << 20)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "took {:?}",
            started.elapsed()
        );
        assert!(status.message().contains(&silent_addr), "{status:?}");
    }
    accepted.abort();
}

/// Starts a truncating write of 100 bytes at offset 0 through `chain[0]` and returns the
/// sender for more messages and the call.
async fn start_truncating_write(
    chain: &[&TestServer],
) -> (
    mpsc::Sender<WriteChunkRequest>,
    JoinHandle<Result<WriteChunkReply, Status>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let mut head = header(11, 1, 0, &chain[1..]);
    head.truncate = true;
    tx.send(WriteChunkRequest {
        msg: Some(Msg::Header(head)),
    })
    .await
    .unwrap();
    tx.send(WriteChunkRequest {
        msg: Some(Msg::Data(vec![0xee; 100].into())),
    })
    .await
    .unwrap();
    let mut writer = client(&chain[0].addr).await;
    let call = tokio::spawn(async move {
        writer
            .write_chunk(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
    });
    (tx, call)
}

/// Every replica holds the aborted write's piece, and still its old length: the flags of a
/// write that did not arrive whole were not applied anywhere.
async fn assert_piece_kept_without_truncate(chain: &[&TestServer], original: &[u8]) {
    let mut expected = original.to_vec();
    expected[..100].fill(0xee);
    for server in chain {
        let got = read_all(&server.addr, 11, 1).await.unwrap();
        assert_eq!(got.len(), original.len(), "{} was truncated", server.addr);
        assert!(got == expected, "{} holds other bytes", server.addr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_aborted_by_its_client_applies_no_flags_anywhere() {
    let (a, b, c) = (
        TestServer::start().await,
        TestServer::start().await,
        TestServer::start().await,
    );
    let original = pseudo_random(6, 1 << 20);
    write(&a.addr, header(11, 1, 0, &[&b, &c]), &original, 1 << 18)
        .await
        .unwrap();

    let (tx, call) = start_truncating_write(&[&a, &b, &c]).await;
    // The abort message: a request without `msg`.
    tx.send(WriteChunkRequest { msg: None }).await.unwrap();
    let status = call.await.unwrap().unwrap_err();
    assert!(
        matches!(FsError::from_status(&status), FsError::Invalid(_)),
        "{status:?}"
    );
    // The reply came after the whole chain had failed the write.
    assert_piece_kept_without_truncate(&[&a, &b, &c], &original).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_silent_is_abandoned_without_applying_flags() {
    let quick = ChainTimeouts {
        rpc: Duration::from_secs(1),
        idle: Duration::from_millis(500),
    };
    let a = TestServer::start_with(quick).await;
    let (b, c) = (TestServer::start().await, TestServer::start().await);
    let original = pseudo_random(7, 1 << 20);
    write(&a.addr, header(11, 1, 0, &[&b, &c]), &original, 1 << 18)
        .await
        .unwrap();

    // The client sends a piece and then nothing, without ending its stream.
    let started = Instant::now();
    let (tx, call) = start_truncating_write(&[&a, &b, &c]).await;
    let status = call.await.unwrap().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(FsError::from_status(&status), FsError::Unavailable(_)),
        "{status:?}"
    );
    assert_piece_kept_without_truncate(&[&a, &b, &c], &original).await;
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_for_their_chunk_are_refused_and_change_nothing() {
    let a = TestServer::start().await;
    write(&a.addr, header(9, 1, 0, &[]), b"kept", 1024)
        .await
        .unwrap();
    let now = token::unix_ms_now();
    let hour_ago = now - 3_600_000;
    let refused = |status: Status, what: &str| {
        assert_eq!(
            status.code(),
            tonic::Code::PermissionDenied,
            "{what}: {status:?}"
        );
        assert!(
            matches!(FsError::from_status(&status), FsError::TokenRefused(_)),
            "{what}: {status:?}"
        );
        status.message().to_string()
    };
    let cases: [(&str, Option<ChunkToken>, &str); 5] = [
        ("no token", None, "no chunk token"),
        ("another chunk's", token_for(10, 1), "is for chunk 10"),
        ("an older version's", token_for(9, 0), "allows version 0"),
        (
            "an expired one",
            Some(SIGNER.issue(9, 1, token::READ | token::WRITE, hour_ago)),
            "expired",
        ),
        (
            "a read-only one",
            Some(SIGNER.issue(9, 1, token::READ, now)),
            "does not allow writing",
        ),
    ];
    for (what, token, says) in cases {
        let mut overwrite = header(9, 1, 0, &[]);
        overwrite.token = token;
        let status = write(&a.addr, overwrite, b"lost", 1024).await.unwrap_err();
        let message = refused(status, what);
        assert!(message.contains(says), "{what}: {message}");
    }
    // A forged signature, and a read without a token.
    let mut forged = header(9, 1, 0, &[]);
    forged.token.as_mut().unwrap().mac[0] ^= 1;
    let status = write(&a.addr, forged, b"lost", 1024).await.unwrap_err();
    assert!(refused(status, "forged").contains("signature"));
    let bare = ReadChunkRequest {
        chunk_id: 9,
        version: 1,
        offset: 0,
        length: 4,
        token: None,
    };
    let status = client(&a.addr).await.read_chunk(bare).await.unwrap_err();
    refused(status, "read without a token");
    // A new chunk was not created, and the old one holds its bytes.
    let status = read_all(&a.addr, 11, 1).await.unwrap_err();
    assert_eq!(FsError::from_status(&status), FsError::NotFound);
    assert!(
        !a.dir
            .path()
            .join("chunks/0b/000000000000000b.data")
            .exists()
    );
    assert_eq!(read_all(&a.addr, 9, 1).await.unwrap(), b"kept");
}
