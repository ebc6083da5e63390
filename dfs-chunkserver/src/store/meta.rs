//! The `.meta` sidecar of a replica: what version and length it has, and the SHA-256 of every
//! block of its data.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  magic "DFSCHUNK"
//!      8     4  format version (1)
//!     12     4  block size in bytes
//!     16     8  chunk version
//!     24     8  replica length in bytes
//!     32  32*n  SHA-256 of each block, n = ceil(length / block size)
//! ```
//!
//! Block `i` covers data bytes `[i * block_size, min((i + 1) * block_size, length))`, so the
//! last block's checksum covers only the bytes that exist. The block size is recorded per
//! replica: a sidecar can be verified without knowing the cluster's configuration.

use sha2::{Digest, Sha256};

/// SHA-256 of one block.
pub(crate) type Checksum = [u8; 32];

/// Bytes before the first checksum.
pub(crate) const HEADER_LEN: usize = 32;

const MAGIC: &[u8; 8] = b"DFSCHUNK";
const FORMAT_VERSION: u32 = 1;

/// The checksum of `data`.
pub(crate) fn checksum(data: &[u8]) -> Checksum {
    Sha256::digest(data).into()
}

/// The fixed-size start of a sidecar: enough for a block report without reading checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Chunk version the replica holds.
    pub version: u64,
    /// Replica length in bytes.
    pub length: u64,
    /// Bytes per checksum block.
    pub block_size: u64,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes of a sidecar.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "sidecar is {} bytes, shorter than its header",
                bytes.len()
            ));
        }
        if &bytes[0..8] != MAGIC {
            return Err("sidecar has no DFSCHUNK magic".into());
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if format != FORMAT_VERSION {
            return Err(format!("unknown sidecar format version {format}"));
        }
        let block_size = u64::from(u32::from_le_bytes(
            bytes[12..16].try_into().expect("4 bytes"),
        ));
        if block_size == 0 {
            return Err("sidecar has block size 0".into());
        }
        let version = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let length = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
        Ok(Header {
            version,
            length,
            block_size,
        })
    }

    /// Number of checksum blocks a replica of this length has.
    pub fn block_count(&self) -> usize {
        self.length.div_ceil(self.block_size) as usize
    }

    /// Size of the whole sidecar file for this header.
    pub fn file_len(&self) -> u64 {
        (HEADER_LEN + self.block_count() * size_of::<Checksum>()) as u64
    }
}

/// Everything a sidecar holds, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    /// Chunk version the replica holds.
    pub version: u64,
    /// Replica length in bytes; the data file is exactly this long.
    pub length: u64,
    /// Bytes per checksum block.
    pub block_size: u64,
    /// One checksum per block, `ceil(length / block_size)` of them.
    pub checksums: Vec<Checksum>,
}

impl ChunkMeta {
    /// The metadata of a new, empty replica.
    pub fn new(version: u64, block_size: u64) -> ChunkMeta {
        assert!(
            block_size > 0 && block_size <= u64::from(u32::MAX),
            "block size {block_size}"
        );
        ChunkMeta {
            version,
            length: 0,
            block_size,
            checksums: Vec::new(),
        }
    }

    /// Sets the length and resizes the checksum list to match. Checksums of new blocks are
    /// placeholders: the caller recomputes every block the change touched.
    pub fn set_length(&mut self, length: u64) {
        self.length = length;
        let blocks = length.div_ceil(self.block_size) as usize;
        self.checksums.resize(blocks, [0; 32]);
    }

    /// Serialises the header alone (the replica updates its sidecar in place).
    pub fn encode_header(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(self.block_size as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.version.to_le_bytes());
        out[24..32].copy_from_slice(&self.length.to_le_bytes());
        out
    }

    /// Serialises the sidecar.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.checksums.len() * 32);
        out.extend_from_slice(&self.encode_header());
        for sum in &self.checksums {
            out.extend_from_slice(sum);
        }
        out
    }

    /// Parses a whole sidecar, checking that it holds a checksum for every block. Entries
    /// past the header's length (a growth whose header update a crash cut off) are ignored.
    pub fn decode(bytes: &[u8]) -> Result<ChunkMeta, String> {
        let header = Header::decode(bytes)?;
        if (bytes.len() as u64) < header.file_len() {
            return Err(format!(
                "sidecar is {} bytes, but a replica of {} bytes needs {}",
                bytes.len(),
                header.length,
                header.file_len()
            ));
        }
        let checksums = bytes[HEADER_LEN..header.file_len() as usize]
            .chunks_exact(32)
            .map(|sum| sum.try_into().expect("32 bytes"))
            .collect();
        Ok(ChunkMeta {
            version: header.version,
            length: header.length,
            block_size: header.block_size,
            checksums,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_round_trips() {
        let mut meta = ChunkMeta::new(7, 4096);
        meta.set_length(10_000);
        meta.checksums[0] = checksum(b"a");
        meta.checksums[2] = checksum(b"c");
        let bytes = meta.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 3 * 32);
        assert_eq!(ChunkMeta::decode(&bytes).unwrap(), meta);
        let header = Header::decode(&bytes[..HEADER_LEN]).unwrap();
        assert_eq!(
            header,
            Header {
                version: 7,
                length: 10_000,
                block_size: 4096
            }
        );
    }

    #[test]
    fn damaged_sidecars_are_rejected() {
        let mut meta = ChunkMeta::new(1, 4096);
        meta.set_length(5000);
        let bytes = meta.encode();
        assert!(ChunkMeta::decode(&bytes[..bytes.len() - 1]).is_err());
        // Entries past the recorded length are ignored.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[7; 32]);
        assert_eq!(ChunkMeta::decode(&longer).unwrap(), meta);
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'X';
        assert!(ChunkMeta::decode(&bad_magic).is_err());
        assert!(Header::decode(&bytes[..10]).is_err());
    }
}
