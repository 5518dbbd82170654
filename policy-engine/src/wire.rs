//! The `evaluate` call's argument as it is lowered into the guest.
//!
//! With the `fast-lowering` feature (on by default) each real server's fixed-size fields go
//! into the guest in one copy (`fast`), through `wasmtime::component::__internal`, which has
//! no stability promise; without it the generated record is lowered by wasmtime's derived
//! code (`derived`): slower, but on wasmtime's public API only, for when `__internal` has
//! changed under a wasmtime bump. Both have the generated type check and write the same
//! bytes (`the_engine_lowers_the_input_as_the_bindings_do` in `engine.rs`), so a policy sees
//! no difference.

#[cfg(not(feature = "fast-lowering"))]
mod derived;
#[cfg(feature = "fast-lowering")]
mod fast;

#[cfg(not(feature = "fast-lowering"))]
pub use derived::{Input, input, server_names};
#[cfg(feature = "fast-lowering")]
pub use fast::{Input, input, server_names};
