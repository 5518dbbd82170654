//! Fleet mode: one ipvsctl command run on many nodes.

// Used once the fan-out is wired in.
#![allow(dead_code)]

mod args;
mod command;
mod inventory;
mod merge;
mod rollout;
mod runner;
mod select;
