//! Dummy links and their addresses, through rtnetlink: where the node's virtual IPs live.
//!
//! Domain types only; the gRPC layer converts them. [`LinkHandle`] holds one netlink socket,
//! validated inputs ([`LinkName`], [`Cidr`]) turn bad requests into precise [`LinkError`]s
//! before the kernel sees them, and kernel errnos are mapped to the same errors in one place.

mod address;
mod device;
mod error;
/// Links in memory that answer as the kernel does, for tests (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod handle;
mod ops;

pub use address::{InterfaceAddress, scope_name};
pub use device::Link;
pub use error::LinkError;
pub use handle::LinkHandle;
pub use ipvs_types::{Cidr, InvalidName, InvalidPrefix, LinkName, MAX_NAME_LEN, max_prefix_len};
pub use ops::LinkOps;
