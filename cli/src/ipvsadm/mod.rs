//! The ipvsadm-compatible front end.
//!
//! `ipvsctl` accepts ipvsadm 1.31's command line and prints what ipvsadm prints, so scripts
//! and habits carry over; the IPVS table it reads and writes is the agent's node's.
//!
//! - [`parse`]: the command line (popt rules, ipvsadm's checks and messages) into a
//!   [`command::Command`].
//! - [`request`]: a command as the agent's request messages.
//! - [`view`], [`sort`], [`format`]: the agent's answer as ipvsadm's tables, in ipvsadm's order.
//! - [`errors`]: the agent's refusals in ipvsadm's words.
//! - [`run`]: the glue.
//!
//! Exit statuses are ipvsadm's (see [`crate::exit`]): 2 for an invalid command line, 255 for an
//! unknown option or a refused change, 1 for a failed listing.

pub mod command;
pub mod conn;
pub mod cparse;
pub mod errors;
pub mod format;
pub mod parse;
pub mod popt;
pub mod request;
pub mod resolve;
pub mod restore;
pub mod run;
pub mod settings;
pub mod sort;
pub mod usage;
pub mod view;

#[cfg(test)]
mod golden;
#[cfg(test)]
pub(crate) mod props;
