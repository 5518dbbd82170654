//! ipvs-agent: owns one node's IPVS table and the links that hold its virtual IPs, and serves
//! them over gRPC. The `ipvs` and `link` modules talk netlink; `kernel` is the one write path
//! to them and the ledger of who owns which field; `api` adapts it to tonic; `state` turns a
//! desired table into the changes that make the kernel match it; `declared` keeps the declared
//! revisions; `attach` runs policies.

pub mod api;
pub mod attach;
pub mod config;
pub mod convert;
pub mod declared;
pub mod health;
pub mod ipvs;
pub mod kernel;
pub mod link;
pub mod server;
pub mod shutdown;
pub mod state;
/// The agent over in-memory cores, for tests (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

/// The policy engine: a crate of its own so that ipvsctl can run it without the agent.
pub use ipvs_policy as policy;
/// Crash-safe file replacement, shared with the policy engine.
pub use ipvs_types::durable;
