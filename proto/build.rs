//! Compiles the wire contract in `proto/` (one file per service plus the shared types, all in
//! package `dfs`) into Rust with tonic/prost (needs `protoc` on the PATH).

/// Every file of the contract; `types.proto` first, the services after it.
const PROTOS: [&str; 9] = [
    "proto/types.proto",
    "proto/namespace.proto",
    "proto/files.proto",
    "proto/xattrs.proto",
    "proto/locks.proto",
    "proto/registry.proto",
    "proto/admin.proto",
    "proto/chunkserver.proto",
    "proto/raft.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .bytes(".dfs.WriteChunkRequest.data")
        .bytes(".dfs.WriteRange.data")
        .bytes(".dfs.ReadChunkReply.data")
        .compile_protos(&PROTOS, &["proto"])?;
    Ok(())
}
