//! The wasmtime host: one `Engine` and `Linker` per process, a compiled policy per uploaded
//! component, a fresh `Store` per evaluation.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, Instance, InstancePre, Linker, ResourceTable,
    TypedFunc,
};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, StoreLimits, Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::answer::{self, Caps, LogMessage};
use super::artifacts::{ArtifactKey, ArtifactStore, Hash, hex, sha256};
use super::bindings::{v1_0, v1_1};
use super::contract::{self, Version};
use super::error::{EngineError, Failure, LoadError, OutputError};
use super::input::PolicyInput;
use super::limits::Limits;
use super::output::{self, Decision};
use super::pipe::CappedPipe;
use super::wire;

/// A level of the policy's `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line a policy logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// Everything one evaluation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub outcome: Result<Decision, Failure>,
    pub logs: Vec<LogLine>,
    /// Log lines dropped past [`Limits::output_bytes`].
    pub logs_dropped: usize,
    /// What the guest wrote to WASI stdout/stderr, the first [`Limits::output_bytes`] of each.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes written past [`Limits::output_bytes`]: accepted from the guest, then dropped.
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    /// Fuel consumed. When the deadline stopped the guest this is a lower bound: fuel is
    /// counted up to the guest's last check, not to the instruction it was stopped at.
    pub fuel_used: u64,
    pub elapsed: Duration,
}

impl Evaluation {
    /// True when some of the guest's output (stdout, stderr or `log`) was dropped.
    pub fn output_truncated(&self) -> bool {
        self.logs_dropped > 0 || self.stdout_dropped > 0 || self.stderr_dropped > 0
    }
}

/// A validated, compiled policy, ready to instantiate.
#[derive(Clone)]
pub struct CompiledPolicy {
    hash: Hash,
    imports: Vec<String>,
    uses_wasi: bool,
    from_cache: bool,
    /// The contract version the component was built against, whose `input` it is given.
    version: Version,
    /// Type-checked at load against the world of `version`.
    pre: InstancePre<HostState>,
    /// The `evaluate` export, type-checked against `version`'s `input` at load.
    evaluate: ComponentExportIndex,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("hash", &self.hash_hex())
            .field("imports", &self.imports)
            .field("version", &self.version)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

impl CompiledPolicy {
    /// SHA-256 of the component's bytes: the policy's identity.
    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }

    /// The component's top-level imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// True when the compiled code came from the artifact store rather than the compiler.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The contract version the component was built against (`ipvs:policy@1.0.0` components
    /// are given no health).
    pub fn version(&self) -> Version {
        self.version
    }
}

/// The policy engine. Cheap to clone; the epoch ticker stops when the last clone drops.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("limits", &self.inner.limits)
            .field("artifacts", &self.inner.artifacts)
            .finish_non_exhaustive()
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    artifacts: Option<ArtifactStore>,
    engine_hash: Hash,
    permits: Arc<Semaphore>,
    _ticker: Ticker,
}

impl PolicyEngine {
    /// Builds the engine for `limits`, keeping compiled policies in `artifacts` if given.
    pub fn new(limits: Limits, artifacts: Option<ArtifactStore>) -> Result<Self, EngineError> {
        let engine =
            Engine::new(&config(&limits)).map_err(|e| EngineError::Config(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        add_policy_imports(&mut linker).map_err(|e| EngineError::Config(e.to_string()))?;
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| EngineError::Config(e.to_string()))?;
        let engine_hash = engine_hash(&engine);
        let ticker = Ticker::start(engine.clone(), limits.epoch_tick).map_err(|source| {
            EngineError::Config(format!("starting the epoch ticker: {source}"))
        })?;
        Ok(PolicyEngine {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
                engine,
                linker,
                limits,
                artifacts,
                engine_hash,
                _ticker: ticker,
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Validates and compiles a component (or takes it from the artifact store). Blocking and
    /// CPU-heavy on a cache miss: call it from a blocking context, or use [`Self::load_async`].
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<CompiledPolicy>, LoadError> {
        let limits = &self.inner.limits;
        if bytes.len() > limits.component_bytes {
            return Err(LoadError::TooLarge {
                len: bytes.len(),
                limit: limits.component_bytes,
            });
        }
        let shape = contract::shape(bytes)?;
        contract::check(&shape)?;
        let named = shape.version()?;
        if shape.memory_min_bytes > limits.memory_bytes as u64 {
            return Err(LoadError::MemoryTooLarge {
                needs: shape.memory_min_bytes,
                limit: limits.memory_bytes as u64,
            });
        }
        let key = ArtifactKey {
            component: sha256(bytes),
            engine: self.inner.engine_hash,
        };
        let cached = self
            .inner
            .artifacts
            .as_ref()
            .and_then(|store| store.load(&key))
            .and_then(|artifact| deserialize(&self.inner.engine, &artifact));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::new(&self.inner.engine, bytes)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                if let Some(store) = &self.inner.artifacts {
                    match c.serialize() {
                        Ok(artifact) => {
                            if let Err(e) = store.save(&key, &artifact) {
                                tracing::warn!(error = %e, "could not store a compiled policy");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not serialize a policy"),
                    }
                }
                c
            }
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Contract(format!("{e:#}")))?;
        let version = matching_version(&pre, named)?;
        let evaluate = component
            .get_export_index(None, "evaluate")
            .ok_or_else(|| LoadError::MissingExport("evaluate".into()))?;
        Ok(Arc::new(CompiledPolicy {
            hash: key.component,
            uses_wasi: shape.uses_wasi(),
            imports: shape.imports,
            from_cache,
            version,
            pre,
            evaluate,
        }))
    }

    /// [`Self::load`] on tokio's blocking pool.
    pub async fn load_async(&self, bytes: Vec<u8>) -> Result<Arc<CompiledPolicy>, LoadError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || engine.load(&bytes))
            .await
            .unwrap_or_else(|e| Err(LoadError::Compile(format!("compile task failed: {e}"))))
    }

    /// Runs one evaluation on this thread, waiting for a concurrency slot first. Blocking:
    /// from async code use [`Self::evaluate_async`].
    pub fn evaluate(&self, policy: &CompiledPolicy, input: &PolicyInput) -> Evaluation {
        let permit = futures::executor::block_on(self.inner.permits.acquire());
        match permit {
            Ok(_permit) => self.run(policy, input),
            Err(_) => failed(Failure::Instantiate("the engine is shutting down".into())),
        }
    }

    /// Runs one evaluation on tokio's blocking pool, at most [`Limits::concurrency`] at once.
    pub async fn evaluate_async(
        &self,
        policy: Arc<CompiledPolicy>,
        input: PolicyInput,
    ) -> Evaluation {
        let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
            return failed(Failure::Instantiate("the engine is shutting down".into()));
        };
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            engine.run(&policy, &input)
        })
        .await
        .unwrap_or_else(|e| failed(Failure::Trap(format!("evaluation task failed: {e}"))))
    }

    fn run(&self, policy: &CompiledPolicy, input: &PolicyInput) -> Evaluation {
        let started = Instant::now();
        let limits = &self.inner.limits;
        let stdout = CappedPipe::new(limits.output_bytes);
        let stderr = CappedPipe::new(limits.output_bytes);
        let wasi = policy.uses_wasi.then(|| {
            WasiCtx::builder()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .build()
        });
        let mut store = Store::new(
            &self.inner.engine,
            HostState {
                limiter: Limiter {
                    inner: limits.store_limits(),
                    memory_hit: false,
                },
                wasi,
                table: ResourceTable::new(),
                log: LogBuffer::new(limits.output_bytes),
            },
        );
        store.limiter(|s| &mut s.limiter);
        // Each call from the guest (a `log` line, a WASI write) and the answer may have the
        // host copy at most this much out of the guest's memory.
        store.set_hostcall_fuel(limits.hostcall_bytes(input.servers.len()));
        let outcome = match store.set_fuel(limits.fuel) {
            Ok(()) => {
                store.set_epoch_deadline(limits.deadline_ticks());
                store.epoch_deadline_trap();
                let caps = Caps::new(limits, input.servers.len());
                answer::with_caps(caps, || call(&mut store, policy, input, limits))
            }
            Err(e) => Err(Failure::Instantiate(format!("setting fuel: {e}"))),
        };
        // After a deadline stop this is the count at the guest's last check: a lower bound.
        let fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let outcome = outcome.map_err(|f| match f {
            Failure::Deadline { deadline, .. } => Failure::Deadline {
                deadline,
                fuel_at_least: fuel,
            },
            f => f,
        });
        let log = std::mem::replace(&mut store.data_mut().log, LogBuffer::new(0));
        drop(store);
        let (stdout, stderr) = (stdout.take(), stderr.take());
        Evaluation {
            outcome,
            logs: log.lines,
            logs_dropped: log.dropped,
            stdout: stdout.kept,
            stderr: stderr.kept,
            stdout_dropped: stdout.dropped,
            stderr_dropped: stderr.dropped,
            fuel_used: fuel,
            elapsed: started.elapsed(),
        }
    }
}

/// Instantiates and calls `evaluate`, then validates the answer.
fn call(
    store: &mut Store<HostState>,
    policy: &CompiledPolicy,
    input: &PolicyInput,
    limits: &Limits,
) -> Result<Decision, Failure> {
    let instance = match policy.pre.instantiate(&mut *store) {
        Ok(i) => i,
        Err(e) => return Err(classify(e, store, limits, Stage::Instantiate)),
    };
    match policy.version {
        Version::V1_0 => call_with(
            store,
            instance,
            policy,
            &wire::input_v1_0(input),
            input,
            limits,
        ),
        Version::V1_1 => call_with(
            store,
            instance,
            policy,
            &wire::input_v1_1(input),
            input,
            limits,
        ),
    }
}

/// Calls `evaluate` with `wire_input`, the `input` of the policy's version, then validates
/// the answer.
fn call_with<I: wire::Input>(
    store: &mut Store<HostState>,
    instance: Instance,
    policy: &CompiledPolicy,
    wire_input: &I,
    input: &PolicyInput,
    limits: &Limits,
) -> Result<Decision, Failure> {
    let evaluate: Evaluate<'_, I> = match instance.get_typed_func(&mut *store, policy.evaluate) {
        Ok(f) => f,
        Err(e) => return Err(Failure::Instantiate(format!("{e:#}"))),
    };
    let answer = match evaluate.call(&mut *store, (wire_input,)) {
        Ok((a,)) => a,
        Err(e) => return Err(classify(e, store, limits, Stage::Call)),
    };
    // The names the policy was given are the ones its weights must use.
    let names = wire_input.server_names();
    match answer {
        Ok(d) => {
            let raw = d.into_raw(names.len(), limits)?;
            output::validate_named(
                raw,
                &input.service,
                &input.servers,
                &names,
                &input.schedulers,
                limits,
            )
            .map_err(Failure::InvalidOutput)
        }
        Err(message) => Err(Failure::Policy(output::clip(
            &message.text,
            limits.reason_bytes,
        ))),
    }
}

/// `evaluate` with the input lowered by [`wire`] and the answer lifted by [`answer`].
type Evaluate<'a, I> = TypedFunc<(&'a I,), (answer::Answer,)>;

/// The contract version whose world the linked component matches: the one its imports name
/// or, when they name none, the newest whose `evaluate` has its type. The generated `*Pre`
/// type-checks the `evaluate` export.
fn matching_version(
    pre: &InstancePre<HostState>,
    named: Option<Version>,
) -> Result<Version, LoadError> {
    let check = |version: Version| match version {
        Version::V1_0 => v1_0::PolicyPre::new(pre.clone()).map(drop),
        Version::V1_1 => v1_1::PolicyPre::new(pre.clone()).map(drop),
    };
    let candidates = match named {
        Some(v) => vec![v],
        None => Version::ALL.to_vec(),
    };
    let mut first_error = None;
    for version in candidates {
        match check(version) {
            Ok(()) => return Ok(version),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(LoadError::Contract(match first_error {
        Some(e) => format!("{e:#}"),
        None => "no contract version to check against".into(),
    }))
}

/// The policy's own imports, for every contract version: the contract's types and the `log`
/// function. `log` is defined here rather than through the generated bindings so that its
/// message is lifted with a cap ([`LogMessage`]): a line longer than the whole log budget is
/// measured and dropped, never copied.
fn add_policy_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    v1_0::ipvs::policy::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v1_1::ipvs::policy::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    linker.instance("ipvs:policy/host@1.0.0")?.func_wrap(
        "log",
        |store: StoreContextMut<'_, HostState>,
         (level, message): (v1_0::ipvs::policy::host::Level, LogMessage)| {
            use v1_0::ipvs::policy::host::Level;
            let level = match level {
                Level::Debug => LogLevel::Debug,
                Level::Info => LogLevel::Info,
                Level::Warn => LogLevel::Warn,
                Level::Error => LogLevel::Error,
            };
            log(store, level, message);
            Ok(())
        },
    )?;
    linker.instance("ipvs:policy/host@1.1.0")?.func_wrap(
        "log",
        |store: StoreContextMut<'_, HostState>,
         (level, message): (v1_1::ipvs::policy::host::Level, LogMessage)| {
            use v1_1::ipvs::policy::host::Level;
            let level = match level {
                Level::Debug => LogLevel::Debug,
                Level::Info => LogLevel::Info,
                Level::Warn => LogLevel::Warn,
                Level::Error => LogLevel::Error,
            };
            log(store, level, message);
            Ok(())
        },
    )?;
    Ok(())
}

/// The `log` import: keeps a whole line within the budget, counts any other as dropped.
fn log(mut store: StoreContextMut<'_, HostState>, level: LogLevel, message: LogMessage) {
    let log = &mut store.data_mut().log;
    if message.whole {
        log.push(level, &message.text);
    } else {
        log.dropped += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Instantiate,
    Call,
}

/// Names a failure: the limit that stopped the guest, its trap, or what was malformed.
fn classify(
    err: wasmtime::Error,
    store: &Store<HostState>,
    limits: &Limits,
    stage: Stage,
) -> Failure {
    if store.data().limiter.memory_hit {
        return Failure::MemoryLimit {
            limit: limits.memory_bytes,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel { fuel: limits.fuel },
        // The fuel is filled in once the store can be read.
        Some(Trap::Interrupt) => Failure::Deadline {
            deadline: limits.deadline,
            fuel_at_least: 0,
        },
        Some(Trap::StackOverflow) => Failure::StackOverflow,
        Some(trap) => Failure::Trap(trap.to_string()),
        None => match stage {
            Stage::Instantiate => Failure::Instantiate(format!("{err:#}")),
            // Not a trap: lifting the result failed (bad UTF-8, a list outside memory, ...).
            Stage::Call => Failure::InvalidOutput(OutputError::Malformed(format!("{err:#}"))),
        },
    }
}

fn failed(failure: Failure) -> Evaluation {
    Evaluation {
        outcome: Err(failure),
        logs: Vec::new(),
        logs_dropped: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        stdout_dropped: 0,
        stderr_dropped: 0,
        fuel_used: 0,
        elapsed: Duration::ZERO,
    }
}

fn config(limits: &Limits) -> Config {
    // Each evaluation holds one component instance; a little slack covers stores being
    // dropped while the next evaluation starts.
    let slots = u32::try_from(limits.concurrency.max(1) + 2).unwrap_or(u32::MAX);
    let per = |n: usize| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    // Where the kernel reports which pages an instance wrote (PAGEMAP_SCAN, Linux 6.7+), a
    // freed slot has just those pages copied back from the image or zeroed, and they stay
    // resident: no madvise and no page faults for the next evaluation. Without it the low
    // addresses are memset whether written or not, so little is kept that way.
    let scan = PoolingAllocationConfig::is_pagemap_scan_available();
    let (memory_resident, table_resident) = if scan {
        (1 << 20, 1 << 18)
    } else {
        (64 << 10, 1 << 16)
    };
    let mut pool = PoolingAllocationConfig::default();
    pool.pagemap_scan(if scan { Enabled::Yes } else { Enabled::No })
        .total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(per(limits.instances)))
        .total_memories(slots.saturating_mul(per(limits.memories)))
        .total_tables(slots.saturating_mul(per(limits.tables)))
        .max_core_instances_per_component(per(limits.instances))
        .max_memories_per_component(per(limits.memories))
        .max_tables_per_component(per(limits.tables))
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements)
        .linear_memory_keep_resident(memory_resident)
        .table_keep_resident(table_resident);
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.stack_bytes)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// The engine's compatibility hash as a stable digest (part of every artifact's name).
fn engine_hash(engine: &Engine) -> Hash {
    use sha2::Digest;
    use std::hash::{Hash as _, Hasher};
    struct Sha(sha2::Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = Sha(sha2::Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().into()
}

/// Loads an artifact from the agent's own store.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> Option<Component> {
    // SAFETY: `ArtifactStore::load` only returns bytes this agent serialized itself: from a
    // 0700 directory it owns, a file of its own user that no one else can write, whose header
    // names the component's digest and whose body matches the digest written with it.
    let component = unsafe { Component::deserialize(engine, artifact) };
    match component {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "recompiling a policy whose stored artifact did not load");
            None
        }
    }
}

/// Per-evaluation host state.
pub struct HostState {
    limiter: Limiter,
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    log: LogBuffer,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("memory_hit", &self.limiter.memory_hit)
            .field("wasi", &self.wasi.is_some())
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Only components that import WASI reach here, and they got a context; the fallback
        // is the same empty sandbox.
        let ctx = self.wasi.get_or_insert_with(|| WasiCtx::builder().build());
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl v1_0::ipvs::policy::types::Host for HostState {}
impl v1_1::ipvs::policy::types::Host for HostState {}

/// The evaluation's log, bounded in bytes.
#[derive(Debug)]
struct LogBuffer {
    lines: Vec<LogLine>,
    left: usize,
    dropped: usize,
}

impl LogBuffer {
    fn new(bytes: usize) -> Self {
        LogBuffer {
            lines: Vec::new(),
            left: bytes,
            dropped: 0,
        }
    }

    fn push(&mut self, level: LogLevel, message: &str) {
        if message.len() > self.left {
            self.dropped += 1;
            return;
        }
        self.left -= message.len();
        self.lines.push(LogLine {
            level,
            message: output::sanitize(message),
        });
    }
}

/// `StoreLimits` that remembers when memory growth was refused, to name the failure.
struct Limiter {
    inner: StoreLimits,
    memory_hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.inner.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.memory_hit = true;
        }
        r
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Advances the engine's epoch every tick; stops and joins when dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let (stop, rx) = mpsc::channel::<()>();
        let tick = tick.max(Duration::from_micros(100));
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buffer_is_bounded() {
        let mut log = LogBuffer::new(10);
        log.push(LogLevel::Info, "12345");
        log.push(LogLevel::Warn, "123456");
        log.push(LogLevel::Error, "a\nb");
        assert_eq!(
            log.lines,
            [
                LogLine {
                    level: LogLevel::Info,
                    message: "12345".into()
                },
                LogLine {
                    level: LogLevel::Error,
                    message: "a b".into()
                }
            ]
        );
        assert_eq!(log.dropped, 1);
    }

    #[test]
    fn ticker_stops_on_drop() -> Result<(), EngineError> {
        let engine = Engine::new(&config(&Limits::default()))
            .map_err(|e| EngineError::Config(e.to_string()))?;
        let ticker = Ticker::start(engine.clone(), Duration::from_millis(1))
            .map_err(|e| EngineError::Config(e.to_string()))?;
        let started = Instant::now();
        drop(ticker);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "drop joins promptly"
        );
        Ok(())
    }

    /// The WIT directory of contract `version`.
    fn wit_dir(version: Version) -> std::path::PathBuf {
        let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/wit");
        match version {
            Version::V1_0 => wit.join("v1.0.0"),
            Version::V1_1 => wit,
        }
    }

    /// A component of contract `version` whose `evaluate` answers with its first 32 KiB of
    /// memory as the state: everything the host lowered into it, byte for byte.
    fn memory_dump_component(version: Version) -> Vec<u8> {
        let mut ret = [0u8; 44];
        ret[24] = 1;
        ret[32..36].copy_from_slice(&32768u32.to_le_bytes());
        let ret: String = ret.iter().map(|b| format!("\\{b:02x}")).collect();
        let wat = format!(
            r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "evaluate") (param i32) (result i32)
    (i32.const 1024))
  (data (i32.const 1024) "{ret}"))"#
        );
        let mut resolve = wit_parser::Resolve::default();
        let (pkg, _) = resolve
            .push_dir(wit_dir(version))
            .expect("the policy WIT parses");
        let world = resolve
            .select_world(&[pkg], Some("policy"))
            .expect("world policy");
        let mut module = wat::parse_str(&wat).expect("fixture WAT parses");
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .expect("metadata embeds");
        wit_component::ComponentEncoder::default()
            .module(&module)
            .expect("module accepted")
            .validate(true)
            .encode()
            .expect("component encodes")
    }

    /// Servers of every shape: both families, every forwarding method, distinct values in
    /// every field, health of every shape (none, up, down, probed or not, with and without a
    /// latency, reasons of all lengths).
    fn varied_input() -> PolicyInput {
        use ipvs_types::{
            Destination, DestinationEntry, ForwardMethod, Protocol, Scheduler, Service,
            ServiceEntry, ServiceKey, Stats,
        };
        let stats = |k: u64| Stats {
            conns: k,
            inpkts: k << 8 | 1,
            outpkts: k << 16 | 2,
            inbytes: k << 24 | 3,
            outbytes: k << 32 | 4,
            cps: k << 40 | 5,
            inpps: k << 48 | 6,
            outpps: u64::MAX - k,
            inbps: 7 + k,
            outbps: 8 * k,
        };
        let methods = [
            ForwardMethod::Masquerade,
            ForwardMethod::Local,
            ForwardMethod::Tunnel,
            ForwardMethod::DirectRoute,
        ];
        let servers = (0..20u16)
            .map(|i| {
                let addr: std::net::IpAddr = if i % 3 == 0 {
                    std::net::Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0xffff, 1, 2, i).into()
                } else {
                    std::net::Ipv4Addr::new(10, 1, i as u8, 200 + i as u8).into()
                };
                let mut dest = Destination::new(addr, 1000 + i);
                dest.forward = methods[usize::from(i) % 4];
                dest.weight = u32::from(i) * 3;
                dest.upper_threshold = u32::from(i) + 100;
                dest.lower_threshold = u32::from(i) + 50;
                DestinationEntry {
                    dest,
                    active_conns: u32::from(i) * 7,
                    inactive_conns: u32::from(i) * 11,
                    persistent_conns: u32::from(i) * 13,
                    stats: stats(u64::from(i) + 1),
                }
            })
            .collect::<Vec<DestinationEntry>>();
        let health = servers
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 != 1)
            .map(|(i, s)| {
                let i = i as u32;
                let health = crate::input::ServerHealth {
                    up: !i.is_multiple_of(3),
                    last_passed: i.is_multiple_of(2),
                    consecutive: i * 5,
                    last_latency: (!i.is_multiple_of(5))
                        .then(|| Duration::from_micros(u64::from(i) * 977)),
                    since: Duration::from_millis(u64::from(i) << 33 | 9),
                    reason: "x".repeat(i as usize * 9),
                };
                ((s.dest.addr, s.dest.port), health)
            })
            .collect();
        PolicyInput {
            service: ServiceEntry {
                service: Service::new(
                    ServiceKey::Endpoint {
                        protocol: Protocol::Udp,
                        addr: "10.0.0.1".parse().expect("addr"),
                        port: 53,
                    },
                    Scheduler::Wlc,
                ),
                stats: stats(99),
            },
            servers,
            health,
            now: std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            sequence: 7,
            params: vec![("k".into(), "v".into())],
            state: vec![1, 2, 3],
            schedulers: Vec::new(),
        }
    }

    /// The engine's `evaluate` (`wire`: the fast lowering with `fast-lowering`, the derived
    /// one without) and the engine's call with the derived lowering, against the generated
    /// bindings' `call_evaluate`, for each contract version: the guest must be handed the
    /// same bytes every way.
    #[test]
    fn the_engine_lowers_the_input_as_the_bindings_do() {
        for version in Version::ALL {
            lowers_as_the_bindings_do(version);
        }
    }

    fn lowers_as_the_bindings_do(version: Version) {
        let engine = PolicyEngine::new(Limits::default(), None).expect("engine");
        let policy = engine
            .load(&memory_dump_component(version))
            .expect("fixture loads");
        assert_eq!(policy.version(), version);
        let input = varied_input();
        let engine_side = engine.evaluate(&policy, &input);
        let engine_side = engine_side
            .outcome
            .expect("a decision")
            .state
            .expect("the memory dump");

        // The same call through the generated bindings.
        let limits = &engine.inner.limits;
        let new_store = || {
            let mut store = Store::new(
                &engine.inner.engine,
                HostState {
                    limiter: Limiter {
                        inner: limits.store_limits(),
                        memory_hit: false,
                    },
                    wasi: None,
                    table: ResourceTable::new(),
                    log: LogBuffer::new(0),
                },
            );
            store.set_fuel(limits.fuel).expect("fuel");
            store.set_epoch_deadline(limits.deadline_ticks());
            store
        };
        let mut store = new_store();
        let bindings_side = match version {
            Version::V1_0 => {
                v1_0::PolicyPre::new(policy.pre.clone())
                    .expect("a 1.0.0 component")
                    .instantiate(&mut store)
                    .expect("instantiates")
                    .call_evaluate(&mut store, &crate::bindings::to_v1_0::input(&input))
                    .expect("calls")
                    .expect("a decision")
                    .state
            }
            Version::V1_1 => {
                v1_1::PolicyPre::new(policy.pre.clone())
                    .expect("a 1.1.0 component")
                    .instantiate(&mut store)
                    .expect("instantiates")
                    .call_evaluate(&mut store, &crate::bindings::to_v1_1::input(&input))
                    .expect("calls")
                    .expect("a decision")
                    .state
            }
        };
        let bindings_side = bindings_side.expect("the memory dump");
        assert_eq!(engine_side.len(), 32768);
        // The servers are in there: 20 of 136 (1.0.0) or 184 (1.1.0) bytes, and their names;
        // with 1.1.0, the health reasons too (the longest cut to 128 bytes).
        let nonzero = bindings_side.iter().filter(|&&b| b != 0).count();
        assert!(nonzero > 20 * 40, "{version}: {nonzero}");
        let longest_reason = bindings_side
            .windows(129)
            .map(|w| w.iter().take_while(|&&b| b == b'x').count())
            .max()
            .unwrap_or(0);
        match version {
            // No reasons: only the odd 'x' (0x78) among the numbers.
            Version::V1_0 => assert!(longest_reason < 8, "{version}: {longest_reason}"),
            Version::V1_1 => assert_eq!(longest_reason, 128, "{version}"),
        }
        let first_difference = engine_side
            .iter()
            .zip(&bindings_side)
            .position(|(a, b)| a != b);
        assert_eq!(first_difference, None);

        // The derived lowering (`wire::derived`, all a build without `fast-lowering` has)
        // through the engine's own call and answer checks: the same bytes again.
        let mut store = new_store();
        let instance = policy.pre.instantiate(&mut store).expect("instantiates");
        let caps = Caps::new(limits, input.servers.len());
        let derived = answer::with_caps(caps, || match version {
            Version::V1_0 => {
                let wire_input = wire::derived::input_v1_0(&input);
                call_with(&mut store, instance, &policy, &wire_input, &input, limits)
            }
            Version::V1_1 => {
                let wire_input = wire::derived::input_v1_1(&input);
                call_with(&mut store, instance, &policy, &wire_input, &input, limits)
            }
        });
        let derived_side = derived.expect("a decision").state.expect("the memory dump");
        let first_difference = derived_side
            .iter()
            .zip(&bindings_side)
            .position(|(a, b)| a != b);
        assert_eq!((derived_side.len(), first_difference), (32768, None));
    }

    #[test]
    fn engine_hash_is_stable_per_configuration() -> Result<(), EngineError> {
        let a = PolicyEngine::new(Limits::default(), None)?;
        let b = PolicyEngine::new(Limits::default(), None)?;
        assert_eq!(a.inner.engine_hash, b.inner.engine_hash);
        // An engine compiled differently (no fuel, no epochs) gets other artifacts.
        let plain = Engine::new(&Config::new()).map_err(|e| EngineError::Config(e.to_string()))?;
        assert_ne!(a.inner.engine_hash, engine_hash(&plain));
        Ok(())
    }
}
