//! The WASM policy host: runs untrusted WebAssembly components that read a service's live
//! state and return new weights and maybe a scheduler (contract: `policies/wit/policy.wit`,
//! world `ipvs:policy/policy@1.1.0`).
//!
//! Both versions of the contract run side by side: a component built against 1.0.0
//! (`policies/wit/v1.0.0/policy.wit`) keeps loading and gets the 1.0.0 input, and a 1.1.0 one
//! also gets each real server's health ([`PolicyInput::health`]). The version is read at
//! load from the component's imports of `ipvs:policy/types` and `ipvs:policy/host`
//! ([`contract::Shape::version`]), confirmed by the type of its `evaluate`, and kept in the
//! [`CompiledPolicy`] ([`CompiledPolicy::version`]).
//!
//! ```text
//!  upload ──▶ PolicyEngine::load ─▶ size cap ─▶ contract::check ─▶ compile or artifact store
//!                                   (imports/exports by name)        (sha256 + engine hash)
//!                                                   │
//!                                                   ▼
//!                                   Arc<CompiledPolicy> (InstancePre, cached)
//!                                                   │  per evaluation
//!  PolicyInput ──▶ PolicyEngine::evaluate[_async] ─▶ fresh Store: StoreLimits, fuel, epoch
//!  (ServiceEntry,                                    deadline, empty WASI sandbox
//!   DestinationEntry...)                                      │
//!                                                   output::validate against the live service
//!                                                             ▼
//!                                   Evaluation { outcome: Result<Decision, Failure>, logs, .. }
//!                                                             │
//!                                   health::Health::record ─▶ Verdict (apply / keep / quarantine)
//! ```
//!
//! Using it (the attach loop's view):
//!
//! ```text
//! let engine = PolicyEngine::new(Limits::default(), Some(ArtifactStore::open(dir)?))?;
//! let policy = engine.load_async(bytes).await?;           // LoadError names what is wrong
//! let mut health = Health::new(3);                         // per attachment
//! let mut state = Vec::new();
//! for sequence in 1.. {
//!     if health.is_quarantined() { break }
//!     let input = PolicyInput { service, servers, health: server_health.clone(),
//!                               now: SystemTime::now(), sequence, params: params.clone(),
//!                               state: state.clone(), schedulers };
//!     let eval = engine.evaluate_async(policy.clone(), input).await;
//!     match health.record(eval.outcome) {
//!         Verdict::Apply(d) => { /* write d.weights (full Destinations) and d.scheduler */
//!                                if let Some(s) = d.state { state = s } }
//!         Verdict::Failed { .. } | Verdict::Quarantined { .. } | Verdict::Ignored => {}
//!     }
//! }
//! ```
//!
//! - Engine-wide: one `wasmtime::Engine` (fuel, epoch interruption with a ticker thread that
//!   stops on drop, `max_wasm_stack`, pooling allocator, copy-on-write memory images) and one
//!   `Linker` (the `log` import and WASI 0.2 stubs). Evaluations run on tokio's blocking pool,
//!   at most [`Limits::concurrency`] at once.
//! - Per policy: [`PolicyEngine::load`] caps the size, refuses core modules, missing exports
//!   and imports outside [`contract::WASI_ALLOWED`] and the policy's own interfaces, then
//!   compiles once and keeps the artifact in an [`ArtifactStore`] by content hash.
//! - Per evaluation: a fresh `Store` (limits from [`Limits`]), WASI only if imported (no files,
//!   env, args or network; stdout/stderr kept up to [`Limits::output_bytes`]); the answer is
//!   validated by [`output::validate`] into a [`Decision`] that holds only changes. Failures
//!   are classified into [`Failure`].
//! - The input goes into the guest through `wire`, as the policy's contract version has it:
//!   each real server's fixed-size fields in one copy rather than one memory access per
//!   field, the generated type check unchanged (feature `fast-lowering`, on by default;
//!   without it, wasmtime's derived lowering).
//! - The answer comes out through `answer`: lists and strings are measured where they lie in
//!   the guest's memory and copied only within their caps (one weight change per real
//!   server, names, reason, state), so a hostile answer costs the host a bounded amount;
//!   wasmtime's hostcall fuel ([`Limits::hostcall_bytes()`]) bounds every call as a whole.
//! - stdout/stderr go into `pipe`s that keep the first [`Limits::output_bytes`] and accept
//!   and count the rest, so a chatty guest is cut, not broken.
//! - [`test_input::test_component`] runs one evaluation of a file against a JSON input with
//!   the same limits and no agent: the core of `ipvsctl policy test`.

mod answer;
pub mod artifacts;
mod bindings;
pub mod contract;
#[cfg(test)]
mod decision_props;
pub mod engine;
pub mod error;
pub mod health;
pub mod input;
pub mod limits;
pub mod output;
mod pipe;
pub mod test_input;
mod wire;

pub use artifacts::ArtifactStore;
pub use bindings::server_name;
pub use contract::Version;
pub use engine::{CompiledPolicy, Evaluation, LogLevel, LogLine, PolicyEngine};
pub use error::{EngineError, Failure, LoadError, OutputError};
pub use health::{Health, Verdict};
pub use input::{PolicyInput, ServerHealth};
pub use limits::Limits;
pub use output::{Decision, WeightChange};
pub use test_input::{TestError, TestReport, test_component};
