//! Compiles the `.proto` schemas with protox (pure Rust: no system `protoc`)
//! and generates tonic/prost code with `bytes` fields as `bytes::Bytes`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/strata/v1/strata.proto", "proto/strata/v1/controller.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
