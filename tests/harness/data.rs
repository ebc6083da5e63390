//! Test data: deterministic pseudo-random bytes and SHA-256 of files, so a failing test can be
//! reproduced and large files compared without holding them in memory.

use std::fs;
use std::io::Read;
use std::path::Path;

/// Deterministic pseudo-random bytes (xorshift), so a failing test can be reproduced.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tiny deterministic PRNG for tests (the one the fuzz tests use).
pub use dfs_proto::fuzz::Rng as XorShift;

/// Hex SHA-256 of a file's contents, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
