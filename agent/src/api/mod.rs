//! The gRPC edge: tonic services for `ipvs.agent.v1`, thin adapters over the cores.
//!
//! Each RPC parses its request into domain types ([`crate::convert`]), applies the domain's rules, calls
//! the node core ([`Kernel`](crate::kernel::Kernel), [`LinkOps`](crate::link::LinkOps)) and converts the answer back. Every
//! error becomes a status in one place ([`status`]); every write is logged once ([`audit`]).

pub mod audit;
pub mod config;
pub mod ipvs;
pub mod link;
pub mod policy;
pub mod state;
pub mod stats;
pub mod status;
pub mod table;
pub mod upload;

#[cfg(test)]
pub(crate) mod policy_tests;
#[cfg(test)]
pub(crate) mod tests;

/// Largest whole-table or node-spec request (`TableService.Apply`, `StateService.Apply`):
/// gRPC's default of 4 MiB would refuse a table of some 40 000 real servers.
pub const MAX_TABLE_REQUEST_BYTES: usize = 64 << 20;

/// What a request may carry beyond an uploaded component's bytes (name, framing).
pub const UPLOAD_OVERHEAD_BYTES: usize = 64 << 10;

pub use config::ConfigApi;
pub use ipvs::IpvsApi;
pub use link::LinkApi;
pub use policy::PolicyApi;
pub use state::StateApi;
pub use stats::StatsApi;
pub use table::TableApi;
