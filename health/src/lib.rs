//! Real-server health checks: what a check is ([`check`]), how one probe runs ([`probe`]),
//! and how results become a state that changes only after `rise`/`fall` agreeing results
//! ([`machine`]).
//!
//! Nothing here writes the kernel: the agent turns state changes into weights through its
//! node core, where health is one owner among the declaration, policies and drains.
//!
//! Without the default feature `probes`, only [`check`] and [`spec`] are built: what a check
//! is and how a declaration is checked, for clients that check declarations before sending
//! them.

pub mod check;
#[cfg(feature = "probes")]
pub mod machine;
#[cfg(feature = "probes")]
pub mod probe;
#[cfg(feature = "probes")]
pub mod runner;
pub mod spec;

pub use check::{Check, Kind};
#[cfg(feature = "probes")]
pub use probe::{Outcome, ProbeResult};
