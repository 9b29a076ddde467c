//! The `ecobench.v1` gRPC surface and its conversions to the domain types of
//! `ecobench-shared`, so that nothing else handles prost types.
//!
//! The generated code lives in `OUT_DIR` (see `build.rs`) and is never edited.

pub mod artifact;
pub mod auth;
mod convert;
pub mod tls;

pub use convert::WireError;

/// The encoded `FileDescriptorSet` of `ecobench.v1` (with its imports), written by `build.rs`:
/// what gRPC server reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ecobench_descriptor.bin"));

/// Generated messages, clients and servers of `ecobench.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod pb {
    tonic::include_proto!("ecobench.v1");
}
