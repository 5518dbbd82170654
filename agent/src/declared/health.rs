//! Health checks of the declared real servers: the current revision's checks run in a
//! [`Runner`]; each change of state is recorded in the node core's ledger (health is an owner
//! of the weight, below a drain, see `docs/ownership.md`), announced as an event, and written
//! to the kernel for the services it touches, during a turn. A health-driven weight is part of
//! the effective state, so drift checks never report or undo it.
//!
//! A service whose healthy weight (the weights of its up servers, unchecked servers counted as
//! up) falls below its quorum gets its sorry server, if it declares one, until it is back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use ipvs_health::check::{OnFailure, State};
use ipvs_health::machine::Effect;
use ipvs_health::probe::Prober;
use ipvs_health::runner::{Board, Runner, Status, Target, Transition};
use tokio::sync::mpsc;

use super::{Declared, EventKind, StateError};
use crate::ipvs::{Destination, IpvsOps, ServiceKey};
use crate::kernel::ledger::HealthHold;
use crate::link::LinkOps;
use crate::state::{self, Change, DesiredTable, NodeSpec, desired::DestKey};

/// A checked real server.
pub type CheckId = (ServiceKey, DestKey);

/// Probes in flight at once, node-wide.
pub const MAX_IN_FLIGHT: usize = 256;
/// Exec checks running at once, node-wide.
pub const MAX_EXEC: usize = 16;

/// The runtime the probes run on: one thread named `health` with a current-thread runtime,
/// shared by every node core of the process. Probes then neither wait behind API calls nor
/// delay them, and cost less than on the multi-thread runtime (the `checks` bench: 10,000
/// http checks at 1 s, 35 % of one core against 47 %). `None` (logged) if the thread cannot
/// be made: the checks then run on the caller's runtime.
fn probe_runtime() -> Option<tokio::runtime::Handle> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let start = || -> std::io::Result<tokio::runtime::Handle> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = rt.handle().clone();
                std::thread::Builder::new()
                    .name("health".into())
                    .spawn(move || rt.block_on(std::future::pending::<()>()))?;
                Ok(handle)
            };
            start()
                .inspect_err(|e| tracing::warn!("health checks run on the main runtime: {e}"))
                .ok()
        })
        .clone()
}

/// What one real server's check has found, as `GetState` and events show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthView {
    pub service: ServiceKey,
    pub server: DestKey,
    pub status: Status,
    /// The weight it has because of its health: 0 when down, else the declared (or the exec
    /// check's) weight.
    pub weight: u32,
}

/// A service's quorum, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumView {
    pub service: ServiceKey,
    pub lost: bool,
    pub healthy_weight: u32,
    pub quorum: u32,
}

/// What the checks need to know of a service besides the probes.
#[derive(Debug, Clone, Default)]
struct ServiceInfo {
    /// Declared weights of all its real servers.
    weights: BTreeMap<DestKey, u32>,
    on_failure: BTreeMap<DestKey, OnFailure>,
    sorry: Option<Destination>,
    quorum: u32,
}

/// The health checks of one node.
#[derive(Debug)]
pub struct Checks {
    runner: Runner<CheckId>,
    transitions: Mutex<Option<mpsc::UnboundedReceiver<Transition<CheckId>>>>,
    dirty_tx: mpsc::UnboundedSender<BTreeSet<ServiceKey>>,
    dirty_rx: Mutex<Option<mpsc::UnboundedReceiver<BTreeSet<ServiceKey>>>>,
    services: Mutex<BTreeMap<ServiceKey, ServiceInfo>>,
    lost: Mutex<BTreeSet<ServiceKey>>,
}

impl Checks {
    /// Checks whose statuses go on `board`.
    pub fn new(board: Board<CheckId>) -> Self {
        let (mut runner, rx) =
            Runner::with_board(Arc::new(Prober::new(MAX_EXEC)), MAX_IN_FLIGHT, board);
        if let Some(rt) = probe_runtime() {
            runner = runner.on_runtime(rt);
        }
        let (dirty_tx, dirty_rx) = mpsc::unbounded_channel();
        Checks {
            runner,
            transitions: Mutex::new(Some(rx)),
            dirty_tx,
            dirty_rx: Mutex::new(Some(dirty_rx)),
            services: Mutex::new(BTreeMap::new()),
            lost: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn status(&self, id: &CheckId) -> Option<Status> {
        self.runner.status(id)
    }

    fn views(&self) -> Vec<HealthView> {
        let services = lock(&self.services);
        let mut out: Vec<HealthView> = self
            .runner
            .statuses()
            .into_iter()
            .map(|((service, server), status)| {
                let declared = services
                    .get(&service)
                    .and_then(|s| s.weights.get(&server).copied())
                    .unwrap_or(1);
                view(service, server, status, declared)
            })
            .collect();
        out.sort_by_key(|v| (v.service, v.server));
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn view(service: ServiceKey, server: DestKey, status: Status, declared: u32) -> HealthView {
    let weight = match status.state {
        State::Down => 0,
        State::Up => status.weight.unwrap_or(declared),
    };
    HealthView {
        service,
        server,
        status,
        weight,
    }
}

fn hold(state: State, weight: Option<u32>, on_failure: OnFailure) -> Option<HealthHold> {
    match (state, weight) {
        (State::Down, _) => Some(HealthHold::Down {
            remove: on_failure == OnFailure::Remove,
        }),
        (State::Up, Some(w)) => Some(HealthHold::Weight(w)),
        (State::Up, None) => None,
    }
}

impl<I: IpvsOps, L: LinkOps> Declared<I, L> {
    /// Starts the current revision's checks and the task that acts on their results.
    pub async fn start_checks(self: &Arc<Self>) {
        let (Some(mut transitions), Some(mut dirty)) = (
            lock(&self.checks.transitions).take(),
            lock(&self.checks.dirty_rx).take(),
        ) else {
            return;
        };
        if let Some(spec) = self.inner.lock().await.current().map(|r| r.spec.clone()) {
            self.sync_checks(&spec);
        }
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let mut pending = Vec::new();
                let mut services = BTreeSet::new();
                tokio::select! {
                    t = transitions.recv() => match t {
                        Some(t) => pending.push(t),
                        None => return,
                    },
                    s = dirty.recv() => match s {
                        Some(s) => services.extend(s),
                        None => return,
                    },
                }
                let Some(this) = this.upgrade() else { return };
                // Everything already waiting goes into the same write.
                while let Ok(t) = transitions.try_recv() {
                    pending.push(t);
                }
                while let Ok(s) = dirty.try_recv() {
                    services.extend(s);
                }
                for t in pending {
                    services.insert(t.id.0);
                    this.on_transition(t);
                }
                this.converge_health(services).await;
            }
        });
    }

    /// Records a transition in the ledger and announces it.
    fn on_transition(&self, t: Transition<CheckId>) {
        let (service, server) = t.id;
        let (on_failure, declared) = {
            let services = lock(&self.checks.services);
            let info = services.get(&service);
            (
                info.and_then(|i| i.on_failure.get(&server).copied())
                    .unwrap_or_default(),
                info.and_then(|i| i.weights.get(&server).copied())
                    .unwrap_or(1),
            )
        };
        let (state, weight) = match t.effect {
            Effect::Went { to, weight } => (to, weight),
            Effect::Reweighted(w) => (State::Up, w),
        };
        self.kernel
            .update_ledger(|l| l.set_health(&service, server, hold(state, weight, on_failure)));
        if let Some(status) = self.checks.status(&t.id) {
            if matches!(t.effect, Effect::Went { .. }) {
                tracing::info!(
                    service = %service,
                    server = %state::node::endpoint(server),
                    state = state.as_str(),
                    reason = %t.result.reason,
                    "health: real server went {}", state.as_str()
                );
            }
            self.emit(EventKind::Health(view(service, server, status, declared)));
        }
    }

    /// Runs `spec`'s checks from now on: unchanged ones keep their state, new and changed ones
    /// start from their initial state; the services they touch are written again.
    pub(super) fn sync_checks(&self, spec: &NodeSpec) {
        let targets = spec.check_targets();
        let mut services: BTreeMap<ServiceKey, ServiceInfo> = BTreeMap::new();
        for t in &targets {
            let info = services.entry(t.service).or_default();
            info.on_failure.insert(t.server, t.decl.check.on_failure);
        }
        for (key, info) in services.iter_mut() {
            if let Some(svc) = spec.table.get(key) {
                info.weights = svc.dests.iter().map(|(k, d)| (*k, d.weight)).collect();
            }
            if let Some(c) = spec.service_check(key) {
                info.sorry = c.sorry;
                info.quorum = c.quorum;
            }
        }
        let wanted: BTreeSet<CheckId> = targets.iter().map(|t| (t.service, t.server)).collect();
        // Keyed: a scan of the targets per started check would grow with the square of them.
        let initial: BTreeMap<CheckId, State> = targets
            .iter()
            .map(|t| ((t.service, t.server), t.decl.check.initial))
            .collect();
        let started = self.checks.runner.set(
            targets
                .iter()
                .map(|t| Target {
                    id: (t.service, t.server),
                    check: t.decl.check.clone(),
                    addr: t.addr,
                })
                .collect(),
        );
        let mut touched: BTreeSet<ServiceKey> = BTreeSet::new();
        let before: BTreeSet<ServiceKey> = lock(&self.checks.services).keys().copied().collect();
        self.kernel.update_ledger(|l| {
            for id in &started {
                let on_failure = services
                    .get(&id.0)
                    .and_then(|i| i.on_failure.get(&id.1).copied())
                    .unwrap_or_default();
                let initial = initial.get(id).copied().unwrap_or(State::Up);
                l.set_health(&id.0, id.1, hold(initial, None, on_failure));
                touched.insert(id.0);
            }
            for id in l.health_holds() {
                if !wanted.contains(&id) {
                    l.set_health(&id.0, id.1, None);
                    touched.insert(id.0);
                }
            }
            for s in before.difference(&services.keys().copied().collect()) {
                l.set_sorry(s, None);
                touched.insert(*s);
            }
        });
        touched.extend(services.keys().copied());
        lock(&self.checks.lost).retain(|s| services.contains_key(s));
        *lock(&self.checks.services) = services;
        let _ = self.checks.dirty_tx.send(touched);
    }

    /// Every checked real server's health.
    pub fn health(&self) -> Vec<HealthView> {
        self.checks.views()
    }

    /// Updates the quorum of `service` (sorry server in or out); announces a change.
    fn quorum(&self, service: &ServiceKey) {
        let Some(info) = lock(&self.checks.services).get(service).cloned() else {
            return;
        };
        // Read in place: a copy of the whole ledger per service would grow with the node.
        let healthy: u32 = self.kernel.update_ledger(|ledger| {
            info.weights
                .iter()
                .map(|(dk, w)| match ledger.health(service, *dk) {
                    Some(HealthHold::Down { .. }) => 0,
                    Some(HealthHold::Weight(w)) => w,
                    None => *w,
                })
                .sum()
        });
        let lost = healthy < info.quorum.max(1);
        let was = lock(&self.checks.lost).contains(service);
        if lost != was {
            if lost {
                lock(&self.checks.lost).insert(*service);
                tracing::warn!(service = %service, healthy, quorum = info.quorum, "health: quorum lost");
            } else {
                lock(&self.checks.lost).remove(service);
                tracing::info!(service = %service, healthy, quorum = info.quorum, "health: quorum back");
            }
            self.emit(EventKind::Quorum(QuorumView {
                service: *service,
                lost,
                healthy_weight: healthy,
                quorum: info.quorum.max(1),
            }));
        }
        let sorry = if lost { info.sorry } else { None };
        self.kernel.update_ledger(|l| l.set_sorry(service, sorry));
    }

    /// Writes the effective weights (and health removals, sorry servers) of `services` to the
    /// kernel, during a turn. Only real-server changes are made: anything else that differs
    /// is drift, for the drift check to report.
    async fn converge_health(&self, services: BTreeSet<ServiceKey>) {
        for s in &services {
            self.quorum(s);
        }
        if let Err(e) = self.write_health(&services).await {
            tracing::warn!(error = %e, "health: cannot write the weights health asks for");
        }
    }

    async fn write_health(&self, services: &BTreeSet<ServiceKey>) -> Result<(), StateError> {
        let inner = self.inner.lock().await;
        let Some(current) = inner.current() else {
            return Ok(());
        };
        let turn = self.kernel.turn().await;
        let mut observed = Vec::new();
        let mut wanted = Vec::new();
        for key in services {
            let Some(svc) = current.spec.table.get(key) else {
                continue;
            };
            let Ok(entry) = self.kernel.read().service(key).await else {
                // Not in the kernel: the drift check's business.
                continue;
            };
            let dests = self.kernel.read().destinations(key).await?;
            observed.push((entry, dests));
            wanted.push((
                svc.service.clone(),
                svc.dests.values().copied().collect::<Vec<_>>(),
            ));
        }
        let declared = DesiredTable::new(wanted).map_err(|e| StateError::Export(e.to_string()))?;
        // Only the touched services: no copy of the whole ledger per write.
        let effective = self
            .kernel
            .update_ledger(|l| l.effective(&declared, &observed));
        let changes: Vec<Change> = state::plan_with(&observed, &effective, |k, d| {
            // A declared server health took out, or a sorry server no longer needed.
            d.is_some_and(|d| {
                current
                    .spec
                    .table
                    .get(k)
                    .is_some_and(|s| s.dests.contains_key(d))
                    || current
                        .spec
                        .service_check(k)
                        .and_then(|c| c.sorry)
                        .is_some_and(|s| (s.addr, s.port) == *d)
            })
        })
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                Change::AddDestination { .. }
                    | Change::UpdateDestination { .. }
                    | Change::DeleteDestination { .. }
            )
        })
        .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let words: Vec<String> = changes.iter().map(Change::description).collect();
        state::apply(turn.ipvs(), &changes)
            .await
            .map_err(|e| StateError::Refused {
                number: 0,
                total: changes.len(),
                message: e.to_string(),
            })?;
        tracing::info!(changes = ?words, "health: weights written");
        Ok(())
    }
}
