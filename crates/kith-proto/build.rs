//! Generates the protobuf types with protox (a pure-Rust protobuf compiler), so
//! building kith needs no system `protoc`; with the `json` feature, also
//! their serde implementations in the standard protobuf JSON mapping
//! (pbjson).

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = format!("{proto_dir}/kith.proto");
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([&file], [proto_dir])?;
    if std::env::var_os("CARGO_FEATURE_JSON").is_some() {
        pbjson_build::Builder::new()
            .register_descriptors(&descriptors.encode_to_vec())?
            .build(&[".kith.v1"])?;
    }
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
