//! A seeded generator for the tests of every crate: the fuzz tests (`dfs-proto`'s
//! `hostile_input`, `dfs-master`'s `hostile`), the nemesis and the test data of `tests/`.
//! Deterministic, so a failing run replays from the seed it printed, and small enough not to
//! need a fuzzing framework.

use std::time::{SystemTime, UNIX_EPOCH};

/// A xorshift generator.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; spread so that near seeds give unrelated runs).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound` (0 for a bound of 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// An index in `0..len` (0 for a length of 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// The generator of fuzz run `name` and how many inputs it tries: the seed from `DFS_FUZZ_SEED`
/// (a replay) or the clock, printed; the count from `DFS_FUZZ_ITERATIONS`, else
/// `default_iterations`.
pub fn setup(name: &str, default_iterations: usize) -> (Rng, usize) {
    let seed = std::env::var("DFS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let iterations = std::env::var("DFS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_iterations);
    println!("{name}: seed {seed} (replay with DFS_FUZZ_SEED={seed}), {iterations} inputs");
    (Rng::new(seed), iterations)
}
