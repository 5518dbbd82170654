//! Runs every check of a node on the async runtime: one task per check, sleeping between
//! probes (no thread per check), at most `max_in_flight` probes at once, first probes spread
//! over the interval and each later one delayed by up to the check's jitter, so thousands of
//! checks declared together do not probe together.
//!
//! Changes of state go out on a channel; the latest status of every check can be read at any
//! time. [`Runner::set`] replaces the set of checks: unchanged checks keep running with their
//! state, changed ones restart from their initial state, removed ones stop at once.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::check::{Check, State};
use crate::machine::{Effect, Machine};
use crate::probe::{ProbeResult, Prober};

/// One check to run, of the server `id` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<K> {
    pub id: K,
    pub check: Check,
    /// Where the probe goes.
    pub addr: SocketAddr,
}

/// A change the weight's owner must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition<K> {
    pub id: K,
    pub effect: Effect,
    /// The probe result that made it.
    pub result: ProbeResult,
    pub at: SystemTime,
}

/// What a check has found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub kind: &'static str,
    pub addr: SocketAddr,
    pub state: State,
    /// Results in a row agreeing with the last one.
    pub streak: u32,
    /// When the state last changed (or the check started).
    pub since: SystemTime,
    /// The last probe's result; `None` before the first.
    pub last: Option<ProbeResult>,
    /// The weight an up server asks for (exec checks); `None`: its declared one.
    pub weight: Option<u32>,
}

type Statuses<K> = Arc<Mutex<HashMap<K, Status>>>;

/// The latest status of every check, shared: a runner writes it, anyone may read it (the
/// policies read it for their input).
#[derive(Debug)]
pub struct Board<K>(Statuses<K>);

impl<K> Clone for Board<K> {
    fn clone(&self) -> Self {
        Board(self.0.clone())
    }
}

impl<K> Default for Board<K> {
    fn default() -> Self {
        Board(Arc::new(Mutex::new(HashMap::new())))
    }
}

impl<K: Clone + Eq + Hash> Board<K> {
    pub fn get(&self, id: &K) -> Option<Status> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The statuses whose id `keep` accepts.
    pub fn select(&self, keep: impl Fn(&K) -> bool) -> Vec<(K, Status)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }
}

/// The checks of a node.
#[derive(Debug)]
pub struct Runner<K> {
    prober: Arc<Prober>,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<K, (Target<K>, AbortHandle)>>,
    statuses: Statuses<K>,
    tx: mpsc::UnboundedSender<Transition<K>>,
    /// Where the checks' tasks run; the caller's runtime when `None`.
    runtime: Option<tokio::runtime::Handle>,
}

impl<K> Runner<K>
where
    K: Clone + Eq + Hash + Debug + Send + Sync + 'static,
{
    /// A runner with no checks yet, and the receiver of its transitions.
    pub fn new(
        prober: Arc<Prober>,
        max_in_flight: usize,
    ) -> (Self, mpsc::UnboundedReceiver<Transition<K>>) {
        Runner::with_board(prober, max_in_flight, Board::default())
    }

    /// As [`Runner::new`], keeping the statuses on `board`.
    pub fn with_board(
        prober: Arc<Prober>,
        max_in_flight: usize,
        board: Board<K>,
    ) -> (Self, mpsc::UnboundedReceiver<Transition<K>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = Runner {
            prober,
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            running: Mutex::new(HashMap::new()),
            statuses: board.0,
            tx,
            runtime: None,
        };
        (runner, rx)
    }

    /// Runs the checks started from now on on `runtime` (a runtime of their own keeps probes
    /// and the caller's other work from delaying each other).
    pub fn on_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Runs exactly `targets` from now on. Returns the ids that (re)started, whose state is
    /// their check's initial one.
    pub fn set(&self, targets: Vec<Target<K>>) -> Vec<K> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: HashMap<K, Target<K>> =
            targets.into_iter().map(|t| (t.id.clone(), t)).collect();
        running.retain(|id, (t, handle)| {
            let keep = wanted.get(id) == Some(t);
            if !keep {
                handle.abort();
                statuses.remove(id);
            }
            keep
        });
        let mut started = Vec::new();
        for (id, t) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            statuses.insert(
                id.clone(),
                Status {
                    kind: t.check.kind.name(),
                    addr: t.addr,
                    state: t.check.initial,
                    streak: 0,
                    since: SystemTime::now(),
                    last: None,
                    weight: None,
                },
            );
            let task = run(
                t.clone(),
                self.prober.clone(),
                self.slots.clone(),
                self.statuses.clone(),
                self.tx.clone(),
            );
            let handle = match &self.runtime {
                Some(rt) => rt.spawn(task),
                None => tokio::spawn(task),
            }
            .abort_handle();
            started.push(id.clone());
            running.insert(id, (t, handle));
        }
        started
    }

    /// The status of every running check.
    pub fn statuses(&self) -> HashMap<K, Status> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The status of one check.
    pub fn status(&self, id: &K) -> Option<Status> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// How many checks run.
    pub fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K> Drop for Runner<K> {
    fn drop(&mut self) {
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, handle) in running.values() {
            handle.abort();
        }
    }
}

/// A small random-looking stream per check, seeded by its id: enough to spread probes, no
/// dependency on a random source.
#[derive(Debug)]
struct Spread(u64);

impl Spread {
    fn new<K: Hash>(id: &K) -> Self {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        Spread(h.finish() | 1)
    }

    /// A duration in `[0, max)`.
    fn within(&mut self, max: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let nanos = max.as_nanos() as u64;
        if nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.0 % nanos)
        }
    }
}

async fn run<K>(
    t: Target<K>,
    prober: Arc<Prober>,
    slots: Arc<Semaphore>,
    statuses: Statuses<K>,
    tx: mpsc::UnboundedSender<Transition<K>>,
) where
    K: Clone + Eq + Hash + Debug,
{
    let check = &t.check;
    let mut spread = Spread::new(&t.id);
    let start = Instant::now();
    let mut machine = Machine::new(check.initial, start.into_std());
    let mut next = start + spread.within(check.interval);
    loop {
        tokio::time::sleep_until(next).await;
        let result = {
            let Ok(_permit) = slots.acquire().await else {
                return;
            };
            prober.probe(&check.kind, t.addr, check.timeout).await
        };
        let now = Instant::now();
        next += check.interval + spread.within(check.jitter);
        if next < now {
            // Behind (a long wait for a slot): skip the slots missed rather than burst.
            next = now + check.interval;
        }
        // The result moves into the machine; the status copies it in place (its reason's
        // buffer reused) and only a transition, rare, clones it: no allocation per probe
        // beyond the probe's own.
        let effect = machine.record(check.rise, check.fall, result, now.into_std());
        let Some(result) = machine.last() else {
            continue;
        };
        let wall = effect.as_ref().map(|_| SystemTime::now());
        if let Some(s) = statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&t.id)
        {
            if let (Some(Effect::Went { .. }), Some(wall)) = (&effect, wall) {
                s.since = wall;
            }
            s.state = machine.state();
            s.streak = machine.streak();
            match &mut s.last {
                Some(last) => {
                    last.outcome = result.outcome;
                    last.reason.clone_from(&result.reason);
                    last.latency = result.latency;
                }
                None => s.last = Some(result.clone()),
            }
            s.weight = machine.weight();
        }
        if let (Some(effect), Some(wall)) = (effect, wall)
            && tx
                .send(Transition {
                    id: t.id.clone(),
                    effect,
                    result: result.clone(),
                    at: wall,
                })
                .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
