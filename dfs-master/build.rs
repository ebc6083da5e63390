//! Compiles the master's storage records (`proto/records.proto`) with prost (needs `protoc` on
//! the PATH). They are the on-disk format of the metadata, private to the master and apart
//! from the wire contract in `dfs-proto`, so either can change without the other.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/records.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_protos(&["proto/records.proto"], &["proto"])?;
    Ok(())
}
