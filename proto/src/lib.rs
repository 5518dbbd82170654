//! The ipvs-agent gRPC API, package `ipvs.agent.v1`: code generated from `ipvs/agent/v1/*.proto`.
//!
//! The `.proto` files are the API's reference; this crate compiles them, and holds the two
//! things both ends of the API share: the errno table ([`errno`]) and how an
//! [`ErrorDetail`](v1::ErrorDetail) rides on a status ([`details`]).

pub mod codec;
pub mod details;
pub mod errno;

/// Generated messages and services of `ipvs.agent.v1`.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("ipvs.agent.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ipvs_descriptor.bin"));
}
