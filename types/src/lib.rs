//! ipvs-types: what the agent and ipvsctl both need to agree on, without the agent's netlink,
//! tokio or WebAssembly runtime: the IPVS domain model ([`model`]) and its [`ValidationError`],
//! checked link names and addresses ([`LinkName`], [`Cidr`]), the kernel's IPVS constants
//! ([`uapi`]), and crash-safe file replacement ([`durable`]).

pub mod cidr;
pub mod durable;
pub mod link_name;
pub mod model;
#[cfg(test)]
mod props;
pub mod quote;
pub mod uapi;
pub mod validation;

pub use cidr::{Cidr, InvalidPrefix, max_prefix_len};
pub use link_name::{InvalidName, LinkName, MAX_NAME_LEN};
pub use model::*;
pub use quote::{QUOTE_BYTES, quote};
pub use validation::ValidationError;
