//! Tests of replicas whose sidecars use the older format: SHA-256 entries (format 1), as
//! every replica written before CRC32C has. They must keep verifying, stay in their format
//! when rewritten, and show damage as corruption like new replicas do.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use dfs_proto::FsError;
use tempfile::TempDir;

use super::meta::{ChecksumKind, ChunkMeta};
use super::*;

const BLOCK: u64 = 64;

fn open(dir: &TempDir) -> ChunkStore {
    let options = StoreOptions {
        block_size: BLOCK,
        chunk_size: 64 * BLOCK,
        capacity_limit: None,
    };
    ChunkStore::open(dir.path(), options).unwrap()
}

fn data_path(dir: &TempDir, chunk_id: u64) -> PathBuf {
    dir.path().join(format!(
        "chunks/{:02x}/{chunk_id:016x}.data",
        chunk_id & 0xff
    ))
}

fn corrupt(result: Result<Bytes>) -> bool {
    matches!(result, Err(Error::Fs(FsError::Corrupt(_))))
}

/// Writes a replica of `data` at chunk version `version` in the format-1 layout (SHA-256 block
/// checksums): the data file and its sidecar, as a chunkserver upgraded in place finds it.
fn write_sha256_replica(dir: &TempDir, chunk_id: u64, version: u64, data: &[u8]) {
    let path = data_path(dir, chunk_id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    let mut meta = ChunkMeta::new(version, BLOCK, ChecksumKind::Sha256);
    meta.set_length(data.len() as u64);
    for (i, block) in data.chunks(BLOCK as usize).enumerate() {
        meta.checksums[i] = meta.checksum(block);
    }
    fs::write(path.with_extension("meta"), meta.encode()).unwrap();
}

fn sidecar(dir: &TempDir, chunk_id: u64) -> ChunkMeta {
    let bytes = fs::read(data_path(dir, chunk_id).with_extension("meta")).unwrap();
    ChunkMeta::decode(&bytes).unwrap()
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31) ^ (i as u8))
        .collect()
}

#[test]
fn new_replicas_get_crc32c_sidecars() {
    let dir = TempDir::new().unwrap();
    open(&dir).write(1, 1, 0, &pattern(1, 300)).unwrap();
    let meta = sidecar(&dir, 1);
    assert_eq!(meta.kind, ChecksumKind::Crc32c);
    let on_disk = fs::metadata(data_path(&dir, 1).with_extension("meta")).unwrap();
    assert_eq!(on_disk.len(), 32 + 4 * 5);
}

#[test]
fn sha256_replicas_verify_and_stay_sha256_when_rewritten() {
    let dir = TempDir::new().unwrap();
    let mut model = pattern(2, 5 * BLOCK as usize + 9);
    write_sha256_replica(&dir, 2, 3, &model);
    let store = open(&dir);
    assert_eq!(store.replica(2).unwrap().length, model.len() as u64);
    assert_eq!(&store.read(2, 3, 0, 1 << 20).unwrap()[..], &model[..]);

    // A rewrite across a block boundary and a growth, then a reopen: the sidecar was updated
    // in place and still holds SHA-256 entries that match the data.
    let piece = pattern(9, BLOCK as usize);
    store.write(2, 3, BLOCK + 10, &piece).unwrap();
    model[(BLOCK + 10) as usize..(2 * BLOCK + 10) as usize].copy_from_slice(&piece);
    store.write(2, 3, model.len() as u64, &piece).unwrap();
    model.extend_from_slice(&piece);
    drop(store);
    assert_eq!(sidecar(&dir, 2).kind, ChecksumKind::Sha256);
    let store = open(&dir);
    assert_eq!(&store.read(2, 3, 0, 1 << 20).unwrap()[..], &model[..]);
}

#[test]
fn a_flipped_byte_in_a_sha256_replica_is_detected() {
    let dir = TempDir::new().unwrap();
    let data = pattern(3, 4 * BLOCK as usize);
    write_sha256_replica(&dir, 3, 1, &data);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(data_path(&dir, 3))
        .unwrap();
    file.write_all_at(&[data[130] ^ 0x20], 130).unwrap();
    let store = open(&dir);
    assert!(corrupt(store.read(3, 1, 2 * BLOCK, 1)));
    assert_eq!(
        &store.read(3, 1, 0, 2 * BLOCK).unwrap()[..],
        &data[..2 * BLOCK as usize]
    );
}

#[test]
fn a_torn_sidecar_of_either_format_reads_as_corrupt() {
    let dir = TempDir::new().unwrap();
    let data = pattern(4, 3 * BLOCK as usize);
    write_sha256_replica(&dir, 4, 1, &data);
    open(&dir).write(5, 1, 0, &data).unwrap();
    for chunk_id in [4, 5] {
        // The checksum entry of block 1 is half old, half new: its data was rewritten and a
        // crash cut the sidecar update short.
        let meta_path = data_path(&dir, chunk_id).with_extension("meta");
        let meta = sidecar(&dir, chunk_id);
        let entry = meta.entry_offset(1);
        let file = fs::OpenOptions::new().write(true).open(&meta_path).unwrap();
        file.write_all_at(&[0xee, 0xee], entry).unwrap();
        let store = open(&dir);
        assert!(
            corrupt(store.read(chunk_id, 1, BLOCK, 1)),
            "chunk {chunk_id}"
        );
        assert_eq!(
            &store.read(chunk_id, 1, 2 * BLOCK, BLOCK).unwrap()[..],
            &data[2 * BLOCK as usize..]
        );
        // A sidecar cut inside its entries fails to load, as corruption.
        let len = fs::metadata(&meta_path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&meta_path)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert!(
            corrupt(open(&dir).read(chunk_id, 1, 0, 1)),
            "chunk {chunk_id}"
        );
    }
}
