//! Compiles `proto/dfs.proto` into Rust with tonic/prost (needs `protoc` on the PATH).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/dfs.proto");
    tonic_prost_build::configure()
        .bytes(".dfs.WriteChunkRequest.data")
        .bytes(".dfs.WriteRange.data")
        .bytes(".dfs.ReadChunkReply.data")
        .compile_protos(&["proto/dfs.proto"], &["proto"])?;
    Ok(())
}
