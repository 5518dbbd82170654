//! The `evaluate` call's argument as it is lowered into the guest, for each contract version
//! the engine runs (`contract::Version`): a 1.0.0 component gets the 1.0.0 `input`, a 1.1.0
//! one the 1.1.0 `input` with each real server's health.
//!
//! With the `fast-lowering` feature (on by default) each real server's fixed-size fields go
//! into the guest in one copy (`fast`), through `wasmtime::component::__internal`, which has
//! no stability promise; without it the generated record is lowered by wasmtime's derived
//! code (`derived`): slower, but on wasmtime's public API only, for when `__internal` has
//! changed under a wasmtime bump. Both have the generated type check and write the same
//! bytes (`the_engine_lowers_the_input_as_the_bindings_do` in `engine.rs`, for each version,
//! runs both through the engine's call in the default build), so a policy sees no difference.

use wasmtime::component::{ComponentType, Lower};

// Also in test builds with `fast-lowering`, where the engine's tests hold it to the same bytes.
#[cfg(any(test, not(feature = "fast-lowering")))]
pub(crate) mod derived;
#[cfg(feature = "fast-lowering")]
mod fast;

#[cfg(not(feature = "fast-lowering"))]
pub use derived::{input_v1_0, input_v1_1};
#[cfg(feature = "fast-lowering")]
pub use fast::{input_v1_0, input_v1_1};

/// An `input` record of some version, ready to lower.
pub trait Input: ComponentType + Lower {
    /// The real servers' names, in the order the policy is given them.
    fn server_names(&self) -> Vec<&str>;
}
