//! Compiles the API's .proto files with protox (pure Rust: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "ipvs/agent/v1/types.proto",
        "ipvs/agent/v1/errors.proto",
        "ipvs/agent/v1/ipvs.proto",
        "ipvs/agent/v1/link.proto",
        "ipvs/agent/v1/stats.proto",
        "ipvs/agent/v1/config.proto",
        "ipvs/agent/v1/table.proto",
        "ipvs/agent/v1/policy.proto",
        "ipvs/agent/v1/health.proto",
        "ipvs/agent/v1/state.proto",
    ];
    let fds = protox::compile(files, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("ipvs_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Message names for the codec, which tells requests from responses by them.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .codec_path("crate::codec::ApiCodec")
        .compile_fds_with_config(fds, config)?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
