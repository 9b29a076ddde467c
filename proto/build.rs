//! Compiles `ecobench/v1/*.proto` with protox (no system `protoc`) and generates tonic code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "ecobench/v1/ecobench.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
