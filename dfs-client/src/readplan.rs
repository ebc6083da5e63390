//! Planning a read: which chunks a byte range of a file touches, clipped to the file size,
//! with the holes (chunks never allocated) that read as zeros. Pure arithmetic over a chunk
//! map, shared by the open inode (which owns the map) and the read path (which fetches).

use std::collections::BTreeMap;

use dfs_proto::chunk::{ChunkLayout, ChunkSpan};
use dfs_proto::pb;

/// The chunks a read touches, in order, clipped to the file size.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    /// Bytes the reply carries (the request clipped at end of file).
    pub len: u64,
    /// Each span with its chunk, `None` for a hole (reads as zeros).
    pub spans: Vec<(ChunkSpan, Option<pb::ChunkInfo>)>,
}

/// Plans a read of `len` bytes at `offset` of a file of `file_size` bytes.
pub fn plan_read(
    layout: &ChunkLayout,
    chunks: &BTreeMap<u64, pb::ChunkInfo>,
    file_size: u64,
    offset: u64,
    len: u64,
) -> ReadPlan {
    let len = len.min(file_size.saturating_sub(offset));
    let spans = layout
        .split(offset, len)
        .map(|span| (span, chunks.get(&span.index).cloned()))
        .collect();
    ReadPlan { len, spans }
}

/// A small layout and chunks of it, for the tests of the modules that plan and track reads
/// and writes.
#[cfg(test)]
pub(crate) mod fixtures {
    use dfs_proto::chunk::ChunkLayout;
    use dfs_proto::pb;

    /// Chunks of 100 bytes in blocks of 10.
    pub fn layout() -> ChunkLayout {
        ChunkLayout::new(100, 10)
    }

    /// Chunk `index` (id `10 + index`, version 1) holding `length` bytes, with no replicas.
    pub fn chunk(index: u64, length: u64) -> pb::ChunkInfo {
        pb::ChunkInfo {
            index,
            chunk_id: 10 + index,
            version: 1,
            length,
            replicas: Vec::new(),
            issued_version: 0,
            token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{chunk, layout};
    use super::*;

    #[test]
    fn reads_are_clipped_to_the_file_and_see_holes() {
        let chunks: BTreeMap<u64, pb::ChunkInfo> = [(0, chunk(0, 100)), (2, chunk(2, 40))]
            .into_iter()
            .collect();
        let plan = plan_read(&layout(), &chunks, 240, 90, 1000);
        assert_eq!(plan.len, 150);
        let shape: Vec<(u64, u64, u64, Option<u64>)> = plan
            .spans
            .iter()
            .map(|(s, c)| (s.index, s.offset, s.len, c.as_ref().map(|c| c.chunk_id)))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 90, 10, Some(10)),
                (1, 0, 100, None),
                (2, 0, 40, Some(12))
            ]
        );
        assert_eq!(plan_read(&layout(), &chunks, 240, 240, 10).len, 0);
        assert_eq!(
            plan_read(&layout(), &chunks, 240, 500, 10).spans,
            Vec::new()
        );
    }
}
