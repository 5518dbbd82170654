//! `wire::Input` as the generated `input` record, lowered by wasmtime's derived code: slower
//! than `fast`, but only through wasmtime's public API.

use crate::bindings::{self, ipvs::policy::types as wit};
use crate::input::PolicyInput;

pub type Input = wit::Input;

/// The contract's `input` for `input`.
pub fn input(input: &PolicyInput) -> Input {
    bindings::to_wit(input)
}

/// The real servers' names, in the order the policy is given them.
pub fn server_names(input: &Input) -> Vec<&str> {
    input.servers.iter().map(|s| s.name.as_str()).collect()
}
