//! `ipvsctl`: a remote client of ipvs-agent that speaks ipvsadm's command line, plus
//! iproute2-style `link` and `addr` commands for the interfaces that hold virtual IPs.
//!
//! The binary (`main.rs`) only hands its arguments to [`main`]. The modules stay private: the
//! library exists so that the fuzz targets (`fuzz/`) can reach the parsers, through
//! [`fuzzing`] alone.
//!
//! Exit statuses are listed in `exit` and in `ipvsctl --help`.

mod app;
mod client;
mod durations;
mod exit;
mod fleet;
#[doc(hidden)]
pub mod fuzzing;
mod ipvsadm;
mod link;
mod output;
mod policy;
mod spec;
mod state;

pub use app::main;
