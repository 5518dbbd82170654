//! Real-server health checks: what a check is ([`check`]), how one probe runs ([`probe`]),
//! and how results become a state that changes only after `rise`/`fall` agreeing results
//! ([`machine`]).
//!
//! Nothing here writes the kernel: the agent turns state changes into weights through its
//! node core, where health is one owner among the declaration, policies and drains.

pub mod check;
pub mod machine;
pub mod probe;
pub mod runner;
pub mod spec;

pub use check::{Check, Kind};
pub use probe::{Outcome, ProbeResult};
