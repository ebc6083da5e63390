//! The client library (`dfs-client`) against an in-process cluster: path-level calls, the
//! bytes they move, the errors they return, close-to-open between two clients, and reads that
//! survive a corrupt replica or a stopped chunkserver. No FUSE, no root.

use dfs_client::{Caller, Client, FileKind, OpenFlags};
use dfs_proto::FsError;
use dfs_tests::{LocalCluster, pseudo_random_bytes};

/// Small chunks, so a few MiB cross several chunk boundaries.
const CHUNK: u64 = 1 << 20;

fn cluster() -> LocalCluster {
    LocalCluster::start(3, 3, CHUNK)
}

/// Writes `data` to `path` through `client` (created or truncated) and closes it.
async fn write_file(client: &Client, path: &str, data: &[u8]) {
    let file = client.create_path(path, 0o644).await.expect("create");
    // Pieces of odd sizes, so writes straddle blocks and chunks.
    let mut offset = 0;
    for piece in data.chunks(300_001) {
        file.write(offset, piece).await.expect("write");
        offset += piece.len() as u64;
    }
    file.close().await.expect("close");
}

/// The whole content of `path`, read in pieces through `client`.
async fn read_file(client: &Client, path: &str) -> Result<Vec<u8>, FsError> {
    let file = client.open_path(path, OpenFlags::READ).await?;
    let mut data = Vec::new();
    loop {
        let piece = file.read(data.len() as u64, 256 << 10).await?;
        if piece.is_empty() {
            break;
        }
        data.extend_from_slice(&piece);
    }
    file.close().await?;
    Ok(data)
}

#[test]
fn files_written_by_path_read_back_byte_for_byte_across_chunks() {
    let cluster = cluster();
    let (writer, reader) = (cluster.client(), cluster.client());
    let data = pseudo_random_bytes(7, 3 * CHUNK as usize + 12_345);
    cluster.block_on(async {
        writer.mkdir_path("/d", 0o750).await.unwrap();
        write_file(&writer, "/d/f", &data).await;
        let attr = reader.stat_path("/d/f").await.unwrap();
        assert_eq!(
            (attr.kind, attr.size, attr.perm),
            (FileKind::Regular, data.len() as u64, 0o644)
        );
        assert!(read_file(&reader, "/d/f").await.unwrap() == data);
        // A read past the end is empty, one across it is short.
        let file = reader.open_path("/d/f", OpenFlags::READ).await.unwrap();
        let end = data.len() as u64;
        assert_eq!(file.read(end + 10, 100).await.unwrap().len(), 0);
        assert_eq!(
            &file.read(end - 5, 100).await.unwrap()[..],
            &data[data.len() - 5..]
        );
        file.close().await.unwrap();
        let dir = reader.stat_path("/d").await.unwrap();
        assert_eq!((dir.kind, dir.perm), (FileKind::Directory, 0o750));
    });
}

#[test]
fn listings_renames_and_removals_by_path() {
    let cluster = cluster();
    let client = cluster.client();
    cluster.block_on(async {
        client.mkdir_path("/a", 0o755).await.unwrap();
        client.mkdir_path("/a/sub", 0o755).await.unwrap();
        for name in ["c", "b", "a"] {
            write_file(&client, &format!("/a/{name}"), name.as_bytes()).await;
        }
        let names = |entries: Vec<dfs_client::DirEntry>| -> Vec<String> {
            entries
                .into_iter()
                .map(|e| String::from_utf8(e.name).unwrap())
                .collect()
        };
        assert_eq!(
            names(client.list_path("/a").await.unwrap()),
            ["a", "b", "c", "sub"]
        );

        client.rename_path("/a/b", "/a/sub/moved").await.unwrap();
        assert_eq!(read_file(&client, "/a/sub/moved").await.unwrap(), b"b");
        // A rename replaces its target, as rename(2).
        client.rename_path("/a/c", "/a/a").await.unwrap();
        assert_eq!(read_file(&client, "/a/a").await.unwrap(), b"c");
        assert_eq!(names(client.list_path("/a").await.unwrap()), ["a", "sub"]);

        client.unlink_path("/a/a").await.unwrap();
        client.unlink_path("/a/sub/moved").await.unwrap();
        client.rmdir_path("/a/sub").await.unwrap();
        assert!(client.list_path("/a").await.unwrap().is_empty());
        assert_eq!(
            client.stat_path("/a/sub").await.unwrap_err(),
            FsError::NotFound
        );
    });
}

#[test]
fn path_errors_carry_the_errno_a_kernel_would_return() {
    let cluster = cluster();
    let client = cluster.client();
    cluster.block_on(async {
        client.mkdir_path("/d", 0o755).await.unwrap();
        write_file(&client, "/d/f", b"x").await;
        let errno = |err: FsError| err.errno();
        assert_eq!(
            errno(client.stat_path("/nope").await.unwrap_err()),
            libc::ENOENT
        );
        assert_eq!(
            errno(client.mkdir_path("/d", 0o755).await.unwrap_err()),
            libc::EEXIST
        );
        assert_eq!(
            errno(client.rmdir_path("/d").await.unwrap_err()),
            libc::ENOTEMPTY
        );
        assert_eq!(
            errno(client.list_path("/d/f").await.unwrap_err()),
            libc::ENOTDIR
        );
        assert_eq!(
            errno(client.stat_path("/d/f/x").await.unwrap_err()),
            libc::ENOTDIR
        );
        assert_eq!(
            errno(client.open_path("/d", OpenFlags::READ).await.unwrap_err()),
            libc::EISDIR
        );
        assert_eq!(
            errno(client.create_path("/missing/f", 0o644).await.unwrap_err()),
            libc::ENOENT
        );
        let long = format!("/{}", "n".repeat(300));
        assert_eq!(
            errno(client.mkdir_path(&long, 0o755).await.unwrap_err()),
            libc::ENAMETOOLONG
        );
        // Nothing was changed by the failures.
        assert_eq!(read_file(&client, "/d/f").await.unwrap(), b"x");
        assert_eq!(client.list_path("/").await.unwrap().len(), 1);
    });
}

#[test]
fn symlinks_in_the_middle_of_a_path_are_followed() {
    let cluster = cluster();
    let client = cluster.client();
    let root = Caller { uid: 0, gid: 0 };
    cluster.block_on(async {
        client.mkdir_path("/real", 0o755).await.unwrap();
        write_file(&client, "/real/f", b"through the link").await;
        let dir = client.stat_path("/").await.unwrap();
        client
            .make_node(
                root,
                dir.ino,
                b"link",
                FileKind::Symlink,
                0o777,
                0,
                0,
                b"real",
            )
            .await
            .unwrap();
        client
            .make_node(
                root,
                dir.ino,
                b"abs",
                FileKind::Symlink,
                0o777,
                0,
                0,
                b"/real/f",
            )
            .await
            .unwrap();
        assert_eq!(
            read_file(&client, "/link/f").await.unwrap(),
            b"through the link"
        );
        // The last component is followed by open, not by stat (as lstat).
        assert_eq!(
            read_file(&client, "/abs").await.unwrap(),
            b"through the link"
        );
        assert_eq!(
            client.stat_path("/abs").await.unwrap().kind,
            FileKind::Symlink
        );
        assert_eq!(client.readlink_path("/abs").await.unwrap(), b"/real/f");
        // `..` after a followed link goes up from where the link led.
        assert_eq!(
            read_file(&client, "/link/../real/f").await.unwrap(),
            b"through the link"
        );
    });
}

#[test]
fn another_client_sees_a_file_as_of_its_last_close() {
    let cluster = cluster();
    let (writer, reader) = (cluster.client(), cluster.client());
    cluster.block_on(async {
        write_file(&writer, "/f", b"first version").await;
        assert_eq!(read_file(&reader, "/f").await.unwrap(), b"first version");

        // Written but not closed: the other client still reads the committed version.
        let file = writer.create_path("/f", 0o644).await.unwrap();
        file.write(0, b"second, longer version").await.unwrap();
        assert_eq!(read_file(&reader, "/f").await.unwrap(), b"");
        file.close().await.unwrap();
        assert_eq!(
            read_file(&reader, "/f").await.unwrap(),
            b"second, longer version"
        );
    });
}

/// Flips every byte of every replica file on chunkserver `i`; answers how many there were.
fn corrupt_replicas(cluster: &LocalCluster, i: usize) -> usize {
    let files = replica_files(&cluster.chunkserver_dir(i));
    for path in &files {
        let mut bytes = std::fs::read(path).unwrap();
        bytes.iter_mut().for_each(|b| *b ^= 0xff);
        std::fs::write(path, bytes).unwrap();
    }
    files.len()
}

#[test]
fn reads_fall_back_from_corrupt_replicas_to_a_good_one() {
    let cluster = cluster();
    let data = pseudo_random_bytes(11, 2 * CHUNK as usize + 777);
    let writer = cluster.client();
    cluster.block_on(write_file(&writer, "/f", &data));
    // Two of the three replicas of each of the 3 chunks no longer match their checksums.
    assert_eq!(corrupt_replicas(&cluster, 0), 3);
    assert_eq!(corrupt_replicas(&cluster, 1), 3);
    let reader = cluster.client();
    assert!(cluster.block_on(read_file(&reader, "/f")).unwrap() == data);
}

#[test]
fn a_file_with_no_good_replica_fails_with_eio_rather_than_bad_bytes() {
    let cluster = cluster();
    let writer = cluster.client();
    cluster.block_on(write_file(&writer, "/f", &pseudo_random_bytes(5, 100_000)));
    for i in 0..3 {
        assert_eq!(corrupt_replicas(&cluster, i), 1);
    }
    let reader = cluster.client();
    let err = cluster.block_on(read_file(&reader, "/f")).unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err:?}");
}

#[test]
fn reads_and_writes_go_on_with_a_chunkserver_stopped() {
    let mut cluster = LocalCluster::start(4, 3, CHUNK);
    let data = pseudo_random_bytes(13, CHUNK as usize + 4096);
    let client = cluster.client();
    cluster.block_on(write_file(&client, "/before", &data));
    cluster.stop_chunkserver(0);
    let other = cluster.client();
    cluster.block_on(async {
        assert!(read_file(&other, "/before").await.unwrap() == data);
        write_file(&other, "/after", &data).await;
        assert!(read_file(&client, "/after").await.unwrap() == data);
    });
}

/// The replica data files under a chunkserver's data directory.
fn replica_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "data") {
                files.push(path);
            }
        }
    }
    files
}
