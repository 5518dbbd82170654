//! Policies attached to services: one tokio task per attachment that, on its interval, reads
//! each live service, evaluates the policy, records its health and (in ENFORCE mode) writes
//! only the weights and scheduler that change.
//!
//! ```text
//! tick ─▶ Kernel::read service + destinations ─▶ PolicyInput ─▶ engine ─▶ Health::record
//!                                                                         │
//!        Apply (ENFORCE): Kernel::write_decision (compare and set on the owned fields)
//!        Failed: keep weights      Quarantined: keep weights, stop the task
//!                                                                         │
//!                                                 Event ─▶ broadcast ─▶ WatchEvents
//! ```
//!
//! An enforcing attachment owns the weights (and, once it chose one, the scheduler) of its
//! services ([`Kernel::hold`]): one per service, released on detach. A service that cannot be
//! read, a write the kernel refuses, or a decision made stale by another writer while the
//! policy ran ("stale": nothing is written, the next evaluation decides again) is reported but
//! does not count toward quarantine: it is not the policy's fault.
//!
//! A decision may switch only to a scheduler the node's kernel offers
//! ([`KernelSchedulers`]: loaded, loadable from `/lib/modules` or built in); one that is not
//! loaded yet has its module loaded when the decision is written.

pub mod saved;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;

use crate::ipvs::schedulers::KernelSchedulers;
use crate::ipvs::types::{Scheduler, ServiceKey};
use crate::ipvs::{IpvsError, IpvsOps};
use crate::kernel::{DecisionError, Held, Kernel, PolicyWrite, Written};
use crate::policy::{Decision, Health, PolicyEngine, PolicyInput, Verdict, server_name};

pub use saved::{SaveError, SavedAttachments};
pub use store::{PolicyStore, StoreError, StoredPolicy};

/// Time between evaluations when an attach request gives none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval accepted: a year, longer than any use; the timer adds it to the
/// clock, which a longer one would overflow.
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Consecutive failures that quarantine an attachment when the request gives none.
pub const DEFAULT_QUARANTINE_AFTER: u32 = 3;
/// Events a slow watcher may lag behind before it misses some.
const EVENT_BUFFER: usize = 1024;

/// Whether decisions reach the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    DryRun,
}

/// What an attachment was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub policy: String,
    pub services: Vec<ServiceKey>,
    pub params: Vec<(String, String)>,
    pub interval: Duration,
    pub mode: Mode,
    pub quarantine_after: u32,
}

/// One weight a decision changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightDelta {
    pub server: String,
    pub from: u32,
    pub to: u32,
}

/// A decision for one service, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    pub service: ServiceKey,
    pub weights: Vec<WeightDelta>,
    pub scheduler: Option<Scheduler>,
    pub reason: String,
    pub applied: bool,
}

/// Why an evaluation failed, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    pub service: Option<ServiceKey>,
    /// [`crate::policy::Failure::kind`], or "service" / "apply" / "stale" for the agent's side.
    pub kind: String,
    pub message: String,
}

/// One evaluation of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub time: SystemTime,
    pub duration: Duration,
    pub fuel_used: u64,
    /// Some of the policy's stdout, stderr or log went past its limit and was dropped.
    pub output_truncated: bool,
    pub outcome: Result<DecisionRecord, FailureRecord>,
}

/// What WatchEvents streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub attachment: String,
    pub run: RunRecord,
    /// This failure quarantined the attachment.
    pub quarantined: bool,
}

/// An attachment's health, as GetStatus reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: String,
    pub spec: Spec,
    pub last: Option<RunRecord>,
    pub last_decision: Option<DecisionRecord>,
    pub consecutive_failures: u32,
    pub quarantined: bool,
    pub evaluations: u64,
}

/// Why a request on attachments was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no attachment {}", ipvs_types::quote(.0))]
    NotFound(String),
    #[error("policy {hash} is attached ({ids}); detach it first")]
    Attached { hash: String, ids: String },
    #[error("attachment {0} is quarantined; detach and attach it again")]
    Quarantined(String),
    #[error("an attachment needs at least one service")]
    NoService,
    #[error("interval {0:?} is shorter than the minimum of 100ms")]
    Interval(Duration),
    #[error(transparent)]
    Save(#[from] SaveError),
    /// One enforcing attachment per service: two would overwrite each other's weights.
    #[error(transparent)]
    Held(#[from] Held),
}

/// Per-attachment evaluation state, behind one lock so a tick and an on-demand run never
/// overlap.
#[derive(Debug)]
struct RunState {
    health: Health,
    last: Option<RunRecord>,
    last_decision: Option<DecisionRecord>,
    evaluations: u64,
    /// Per service: the last sequence number and the state the policy returned.
    memory: HashMap<ServiceKey, (u64, Vec<u8>)>,
}

struct Attached {
    spec: Spec,
    state: Arc<Mutex<RunState>>,
    task: JoinHandle<()>,
    /// Made through the API and kept in [`SavedAttachments`].
    saved: bool,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything an evaluation needs, shared by the task and on-demand runs.
struct Runner<I> {
    id: String,
    spec: Spec,
    policy: StoredPolicy,
    engine: PolicyEngine,
    kernel: Arc<Kernel<I>>,
    schedulers: Arc<KernelSchedulers>,
    events: broadcast::Sender<Event>,
    state: Arc<Mutex<RunState>>,
}

/// The policies and their attachments.
pub struct Attachments<I> {
    engine: PolicyEngine,
    kernel: Arc<Kernel<I>>,
    schedulers: Arc<KernelSchedulers>,
    store: Mutex<PolicyStore>,
    attached: Mutex<BTreeMap<u64, Attached>>,
    next_id: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<Event>,
    saved: Option<SavedAttachments>,
}

impl<I> std::fmt::Debug for Attachments<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachments").finish_non_exhaustive()
    }
}

fn parse_id(id: &str) -> Option<u64> {
    id.strip_prefix('a')?.parse().ok()
}

impl<I: IpvsOps> Attachments<I> {
    /// Attachments whose decisions may name the schedulers this node's kernel offers.
    pub fn new(engine: PolicyEngine, store: PolicyStore, kernel: Arc<Kernel<I>>) -> Self {
        Self::with_schedulers(engine, store, kernel, KernelSchedulers::node())
    }

    /// Attachments whose decisions may name `schedulers`.
    pub fn with_schedulers(
        engine: PolicyEngine,
        store: PolicyStore,
        kernel: Arc<Kernel<I>>,
        schedulers: KernelSchedulers,
    ) -> Self {
        Attachments {
            engine,
            kernel,
            schedulers: Arc::new(schedulers),
            store: Mutex::new(store),
            attached: Mutex::new(BTreeMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            events: broadcast::channel(EVENT_BUFFER).0,
            saved: None,
        }
    }

    /// Keeps the attachments made with [`Self::attach_saved`] in `saved`.
    pub fn with_saved(mut self, saved: SavedAttachments) -> Self {
        self.saved = Some(saved);
        self
    }

    /// Attaches again what [`Self::attach_saved`] kept, with the same ids; returns how many.
    /// One whose policy is no longer stored is left out (and dropped from the file at the
    /// next save), with a warning.
    pub async fn restore(&self) -> Result<usize, SaveError> {
        let Some(saved) = &self.saved else {
            return Ok(0);
        };
        let list = saved.load()?;
        let mut attached = self.attached.lock().await;
        for (n, spec) in list {
            let policy = match self.store.lock().await.get(&spec.policy) {
                Ok(p) => p.clone(),
                Err(e) => {
                    let id = format!("a{n}");
                    tracing::warn!(%id, error = %e, "a saved attachment is not attached again");
                    continue;
                }
            };
            self.next_id
                .fetch_max(n + 1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = self.hold(n, &spec) {
                tracing::warn!(id = %format!("a{n}"), error = %e, "a saved attachment is not attached again");
                continue;
            }
            let a = self.start(n, spec, policy, true);
            attached.insert(n, a);
        }
        Ok(attached.len())
    }

    /// Largest component an upload may carry.
    pub fn component_bytes(&self) -> usize {
        self.engine.limits().component_bytes
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Compiles `bytes` (slow: outside the store's lock, so reads go on meanwhile) and
    /// stores them.
    pub async fn upload(&self, bytes: Vec<u8>, name: String) -> Result<StoredPolicy, StoreError> {
        let compiled = self.engine.load_async(bytes.clone()).await?;
        self.store.lock().await.add(&bytes, compiled, name)
    }

    pub async fn policies(&self) -> Vec<StoredPolicy> {
        self.store.lock().await.list()
    }

    pub async fn delete(&self, hash: &str) -> Result<(), AttachError> {
        let attached = self.attached.lock().await;
        let ids: Vec<String> = attached
            .iter()
            .filter(|(_, a)| a.spec.policy == hash)
            .map(|(n, _)| format!("a{n}"))
            .collect();
        if !ids.is_empty() {
            return Err(AttachError::Attached {
                hash: hash.to_owned(),
                ids: ids.join(", "),
            });
        }
        self.store.lock().await.remove(hash)?;
        Ok(())
    }

    /// Starts evaluating `spec`; the first evaluation comes after one interval. It lasts as
    /// long as the process (a node file's attachments come back with its revision).
    pub async fn attach(&self, spec: Spec) -> Result<String, AttachError> {
        self.attach_as(spec, false).await
    }

    /// [`Self::attach`], kept on disk so a restart attaches it again. Nothing starts unless
    /// it is saved.
    pub async fn attach_saved(&self, spec: Spec) -> Result<String, AttachError> {
        self.attach_as(spec, self.saved.is_some()).await
    }

    async fn attach_as(&self, spec: Spec, save: bool) -> Result<String, AttachError> {
        if spec.services.is_empty() {
            return Err(AttachError::NoService);
        }
        if spec.interval < MIN_INTERVAL {
            return Err(AttachError::Interval(spec.interval));
        }
        let policy = self.store.lock().await.get(&spec.policy)?.clone();
        let mut attached = self.attached.lock().await;
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.hold(n, &spec)?;
        if let (true, Some(saved)) = (save, &self.saved) {
            let mut list = saved_list(&attached);
            list.push((n, &spec));
            if let Err(e) = saved.save(&list) {
                self.kernel.release(&format!("a{n}"));
                return Err(e.into());
            }
        }
        attached.insert(n, self.start(n, spec, policy, save));
        Ok(format!("a{n}"))
    }

    /// An enforcing attachment takes the weights of its services ([`Kernel::hold`]).
    fn hold(&self, n: u64, spec: &Spec) -> Result<(), Held> {
        match spec.mode {
            Mode::Enforce => self.kernel.hold(&format!("a{n}"), &spec.services),
            Mode::DryRun => Ok(()),
        }
    }

    /// Starts the task evaluating attachment `n`.
    fn start(&self, n: u64, spec: Spec, policy: StoredPolicy, saved: bool) -> Attached {
        let id = format!("a{n}");
        let state = Arc::new(Mutex::new(RunState {
            health: Health::new(spec.quarantine_after),
            last: None,
            last_decision: None,
            evaluations: 0,
            memory: HashMap::new(),
        }));
        let runner = Arc::new(Runner {
            id: id.clone(),
            spec: spec.clone(),
            policy,
            engine: self.engine.clone(),
            kernel: self.kernel.clone(),
            schedulers: self.schedulers.clone(),
            events: self.events.clone(),
            state: state.clone(),
        });
        let task = tokio::spawn(run_loop(runner));
        tracing::info!(id = %id, policy = %spec.policy, mode = ?spec.mode, saved, "policy attached");
        Attached {
            spec,
            state,
            task,
            saved,
        }
    }

    /// Stops attachment `id`; a saved one is removed from the file first, and stays attached
    /// if that fails.
    pub async fn detach(&self, id: &str) -> Result<(), AttachError> {
        let not_found = || AttachError::NotFound(id.to_owned());
        let n = parse_id(id).ok_or_else(not_found)?;
        let mut attached = self.attached.lock().await;
        let a = attached.get(&n).ok_or_else(not_found)?;
        if let (true, Some(saved)) = (a.saved, &self.saved) {
            let list: Vec<_> = saved_list(&attached)
                .into_iter()
                .filter(|(m, _)| *m != n)
                .collect();
            saved.save(&list)?;
        }
        attached.remove(&n);
        self.kernel.release(id);
        tracing::info!(id = %id, "policy detached");
        Ok(())
    }

    /// Every attachment's id and spec, in attach order.
    pub async fn list(&self) -> Vec<(String, Spec)> {
        self.attached
            .lock()
            .await
            .iter()
            .map(|(n, a)| (format!("a{n}"), a.spec.clone()))
            .collect()
    }

    pub async fn status(&self, id: &str) -> Result<Status, AttachError> {
        let (spec, state) = self.find(id).await?;
        let s = state.lock().await;
        Ok(Status {
            id: id.to_owned(),
            spec,
            last: s.last.clone(),
            last_decision: s.last_decision.clone(),
            consecutive_failures: s.health.consecutive_failures(),
            quarantined: s.health.is_quarantined(),
            evaluations: s.evaluations,
        })
    }

    /// Evaluates attachment `id` once now.
    pub async fn evaluate(&self, id: &str) -> Result<Vec<RunRecord>, AttachError> {
        let n = parse_id(id).ok_or_else(|| AttachError::NotFound(id.to_owned()))?;
        let (spec, state) = self.find(id).await?;
        let policy = self.store.lock().await.get(&spec.policy)?.clone();
        let runner = Runner {
            id: format!("a{n}"),
            spec,
            policy,
            engine: self.engine.clone(),
            kernel: self.kernel.clone(),
            schedulers: self.schedulers.clone(),
            events: self.events.clone(),
            state,
        };
        runner
            .run_once()
            .await
            .ok_or(AttachError::Quarantined(id.to_owned()))
    }

    async fn find(&self, id: &str) -> Result<(Spec, Arc<Mutex<RunState>>), AttachError> {
        let not_found = || AttachError::NotFound(id.to_owned());
        let n = parse_id(id).ok_or_else(not_found)?;
        let attached = self.attached.lock().await;
        let a = attached.get(&n).ok_or_else(not_found)?;
        Ok((a.spec.clone(), a.state.clone()))
    }
}

/// The saved attachments among `attached`, as [`SavedAttachments::save`] takes them.
fn saved_list(attached: &BTreeMap<u64, Attached>) -> Vec<(u64, &Spec)> {
    attached
        .iter()
        .filter(|(_, a)| a.saved)
        .map(|(n, a)| (*n, &a.spec))
        .collect()
}

async fn run_loop<I: IpvsOps>(runner: Arc<Runner<I>>) {
    let mut ticks = tokio::time::interval(runner.spec.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if runner.run_once().await.is_none() {
            tracing::warn!(id = %runner.id, "policy quarantined; no longer evaluating");
            return;
        }
        if runner.state.lock().await.health.is_quarantined() {
            tracing::warn!(id = %runner.id, "policy quarantined; no longer evaluating");
            return;
        }
    }
}

impl<I: IpvsOps> Runner<I> {
    /// One evaluation per service; `None` if the attachment is quarantined.
    async fn run_once(&self) -> Option<Vec<RunRecord>> {
        let mut state = self.state.lock().await;
        if state.health.is_quarantined() {
            return None;
        }
        let mut records = Vec::with_capacity(self.spec.services.len());
        for key in &self.spec.services {
            let (record, quarantined) = self.run_service(&mut state, key).await;
            state.evaluations += 1;
            if let Ok(d) = &record.outcome {
                state.last_decision = Some(d.clone());
            }
            state.last = Some(record.clone());
            let _ = self.events.send(Event {
                attachment: self.id.clone(),
                run: record.clone(),
                quarantined,
            });
            records.push(record);
            if quarantined {
                break;
            }
        }
        Some(records)
    }

    async fn run_service(&self, state: &mut RunState, key: &ServiceKey) -> (RunRecord, bool) {
        let time = SystemTime::now();
        let failed = |kind: &str, message: String| RunRecord {
            time,
            duration: Duration::ZERO,
            fuel_used: 0,
            output_truncated: false,
            outcome: Err(FailureRecord {
                service: Some(*key),
                kind: kind.to_owned(),
                message,
            }),
        };
        let live = async {
            let service = self.kernel.read().service(key).await?;
            let servers = self.kernel.read().destinations(key).await?;
            Ok::<_, IpvsError>((service, servers))
        };
        let (service, servers) = match live.await {
            Ok(live) => live,
            Err(e) => return (failed("service", e.to_string()), false),
        };
        let (sequence, memory) = state.memory.get(key).cloned().unwrap_or_default();
        let input = PolicyInput {
            service: service.clone(),
            servers,
            // Servers without a check are not in it: policies see `health: none`.
            health: health_input(self.kernel.health(), key, time),
            now: time,
            sequence: sequence + 1,
            params: self.spec.params.clone(),
            state: memory.clone(),
            schedulers: self.schedulers.get().to_vec(),
        };
        let eval = self
            .engine
            .evaluate_async(self.policy.compiled.clone(), input)
            .await;
        let mut record = RunRecord {
            time,
            duration: eval.elapsed,
            fuel_used: eval.fuel_used,
            output_truncated: eval.output_truncated(),
            outcome: Err(FailureRecord {
                service: Some(*key),
                kind: String::new(),
                message: String::new(),
            }),
        };
        let failure = eval.outcome.as_ref().err().cloned();
        match state.health.record(eval.outcome) {
            Verdict::Apply(decision) => {
                state.memory.insert(
                    *key,
                    (sequence + 1, decision.state.clone().unwrap_or(memory)),
                );
                let enforce = self.spec.mode == Mode::Enforce && !decision.changes_nothing();
                let applied = if enforce {
                    match self.apply(key, &service.service, &decision).await {
                        Ok(_) => true,
                        Err(e) => {
                            let kind = match e {
                                DecisionError::Stale(_) => "stale",
                                _ => "apply",
                            };
                            record.outcome = Err(FailureRecord {
                                service: Some(*key),
                                kind: kind.into(),
                                message: e.to_string(),
                            });
                            return (record, false);
                        }
                    }
                } else {
                    false
                };
                record.outcome = Ok(decision_record(key, &decision, applied));
                (record, false)
            }
            verdict => {
                state.memory.insert(*key, (sequence + 1, memory));
                let (kind, message) = failure
                    .map(|f| (f.kind().to_owned(), f.to_string()))
                    .unwrap_or_default();
                record.outcome = Err(FailureRecord {
                    service: Some(*key),
                    kind,
                    message,
                });
                (record, matches!(verdict, Verdict::Quarantined { .. }))
            }
        }
    }

    /// Writes the changed weights and the scheduler through the node core, which checks
    /// that nothing the policy owns moved since it read the service and takes every other
    /// field from the table as it is at write time.
    async fn apply(
        &self,
        key: &ServiceKey,
        service: &crate::ipvs::types::Service,
        decision: &Decision,
    ) -> Result<Written, DecisionError> {
        let write = PolicyWrite {
            attachment: self.id.clone(),
            service: *key,
            weights: decision
                .weights
                .iter()
                .map(|c| ((c.dest.addr, c.dest.port), c.from, c.dest.weight))
                .collect(),
            scheduler: decision
                .scheduler
                .clone()
                .map(|s| (service.scheduler.clone(), s)),
        };
        let written = self.kernel.write_decision(&write).await?;
        tracing::info!(
            id = %self.id,
            weights = written.weights,
            draining = written.draining.len(),
            scheduler = ?decision.scheduler.as_ref().map(|s| s.name()),
            reason = %decision.reason,
            "policy decision applied"
        );
        Ok(written)
    }
}

fn decision_record(key: &ServiceKey, d: &Decision, applied: bool) -> DecisionRecord {
    DecisionRecord {
        service: *key,
        weights: d
            .weights
            .iter()
            .map(|w| WeightDelta {
                server: server_name(&w.dest),
                from: w.from,
                to: w.dest.weight,
            })
            .collect(),
        scheduler: d.scheduler.clone(),
        reason: d.reason.clone(),
        applied,
    }
}

/// What the health checks of `service`'s real servers have found, as a policy sees it.
fn health_input(
    board: &ipvs_health::runner::Board<(ServiceKey, crate::state::desired::DestKey)>,
    service: &ServiceKey,
    now: SystemTime,
) -> std::collections::HashMap<(std::net::IpAddr, u16), crate::policy::ServerHealth> {
    board
        .select(|(s, _)| s == service)
        .into_iter()
        .map(|((_, server), st)| {
            let health = crate::policy::ServerHealth {
                up: st.state == ipvs_health::check::State::Up,
                last_passed: st.last.as_ref().is_some_and(|r| r.outcome.is_up()),
                consecutive: st.streak,
                last_latency: st.last.as_ref().map(|r| r.latency),
                since: now.duration_since(st.since).unwrap_or_default(),
                reason: st.last.map(|r| r.reason).unwrap_or_default(),
            };
            (server, health)
        })
        .collect()
}
