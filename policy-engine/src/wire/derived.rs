//! Each version's `input` as the generated record, lowered by wasmtime's derived code: slower
//! than `fast`, but only through wasmtime's public API.

use crate::bindings::{to_v1_0, to_v1_1, v1_0, v1_1};
use crate::input::PolicyInput;

pub type InputV1_0 = v1_0::ipvs::policy::types::Input;
pub type InputV1_1 = v1_1::ipvs::policy::types::Input;

/// The contract's 1.0.0 `input` for `input`.
pub fn input_v1_0(input: &PolicyInput) -> InputV1_0 {
    to_v1_0::input(input)
}

/// The contract's 1.1.0 `input` for `input`.
pub fn input_v1_1(input: &PolicyInput) -> InputV1_1 {
    to_v1_1::input(input)
}

impl super::Input for InputV1_0 {
    fn server_names(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.name.as_str()).collect()
    }
}

impl super::Input for InputV1_1 {
    fn server_names(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.name.as_str()).collect()
    }
}
