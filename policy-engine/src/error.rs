//! Why a policy was refused at upload, why an evaluation failed, and why its output was
//! rejected. The messages are written for the operator who uploaded the policy.

use std::time::Duration;

/// A component refused before or while compiling it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("policy is {len} bytes; the limit is {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("not WebAssembly: the file does not start with \"\\0asm\"")]
    NotWasm,
    #[error(
        "not a component: this is a core WebAssembly module; build for wasm32-wasip2 or use \
         wasm-tools component new"
    )]
    NotAComponent,
    #[error("malformed component: {0}")]
    Malformed(String),
    #[error("not an ipvs:policy/policy component (1.0.0 or 1.1.0): missing export `{0}`")]
    MissingExport(String),
    #[error(
        "import `{0}` is not allowed: a policy may import ipvs:policy/host (1.0.0 or 1.1.0) \
         and the WASI interfaces of an empty sandbox (cli, io, clocks, filesystem, random)"
    )]
    DisallowedImport(String),
    #[error("does not match the ipvs:policy/policy world (1.0.0 or 1.1.0): {0}")]
    Contract(String),
    #[error("compiling the component: {0}")]
    Compile(String),
    /// A core module's memory starts larger than an instance may ever grow.
    #[error(
        "needs {} of linear memory, the limit is {} (--policy-memory-bytes)",
        size(*needs),
        size(*limit)
    )]
    MemoryTooLarge { needs: u64, limit: u64 },
}

/// `bytes` in MiB when it is a whole number of them, else in bytes.
fn size(bytes: u64) -> String {
    if bytes > 0 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// The engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("configuring wasmtime: {0}")]
    Config(String),
    #[error("artifact store {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact store {0} is not private to this user (it must be a 0700 directory we own)")]
    StoreNotPrivate(std::path::PathBuf),
}

/// One failed evaluation. Every variant counts toward quarantine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("ran out of fuel ({fuel} units)")]
    OutOfFuel { fuel: u64 },
    /// Fuel is counted up to the guest's last check before the deadline stopped it, so
    /// `fuel_at_least` is a lower bound of the work done, not the total.
    #[error(
        "stopped by its wall-clock deadline of {deadline:?} (fuel used: at least {fuel_at_least})"
    )]
    Deadline {
        deadline: Duration,
        fuel_at_least: u64,
    },
    #[error("overflowed its stack")]
    StackOverflow,
    #[error("exceeded its memory limit of {limit} bytes")]
    MemoryLimit { limit: usize },
    #[error("trapped: {0}")]
    Trap(String),
    #[error("invalid output: {0}")]
    InvalidOutput(#[from] OutputError),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The policy returned `err(message)`.
    #[error("reported an error: {0}")]
    Policy(String),
}

/// A decision that does not fit the live service or the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("real server {0} is not in the service")]
    UnknownServer(String),
    #[error("{len} weight changes for a service of {servers} real servers")]
    TooManyWeights { len: usize, servers: usize },
    #[error("real server {0} is given a weight twice")]
    DuplicateServer(String),
    #[error("weight {weight} for {server} is out of range 0..=65535")]
    Weight { server: String, weight: u32 },
    #[error("scheduler {0:?} is not available in the kernel")]
    UnknownScheduler(String),
    #[error("state is {len} bytes; the limit is {limit}")]
    StateTooLarge { len: usize, limit: usize },
    #[error("reason is {len} bytes; the limit is {limit}")]
    ReasonTooLarge { len: usize, limit: usize },
    /// The guest broke the canonical ABI: bad UTF-8, a list outside its memory, a bad
    /// discriminant.
    #[error("malformed: {0}")]
    Malformed(String),
}
