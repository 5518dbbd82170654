//! The node's one writer. Every change to the kernel's IPVS table and links is made during a
//! [`Turn`] of this core, one at a time, whoever asks: the table and link RPCs, `-R`, the
//! declared state (applies, rollbacks, drift repair, drains) and policy attachments. Reads
//! ([`Kernel::read`]) need no turn.
//!
//! The core also keeps the [`Ledger`]: which controller owns which field (drain > policy >
//! declaration), so the declared state measures drift against the effective state and a
//! policy that computed from an older snapshot writes only if what it owns has not moved
//! ([`Kernel::write_decision`]). `docs/ownership.md` has the rules.

pub mod drains;
pub mod edit;
pub mod ledger;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::Stream;
use ipvs_health::runner::Board;
use tokio::sync::Mutex as AsyncMutex;

use crate::ipvs::module::with_scheduler;
use crate::ipvs::{
    Connection, Daemon, DestinationEntry, Info, IpvsError, IpvsOp, IpvsOps, Scheduler,
    ServiceEntry, ServiceKey, TableRow, Timeouts,
};
use crate::state::desired::DestKey;
pub use drains::DrainStore;
pub use edit::EditError;
pub use ledger::{DrainRecord, Held, Ledger, Owner};

/// The node's IPVS table with its single write path.
#[derive(Debug)]
pub struct Kernel<I> {
    ipvs: Arc<I>,
    turn: AsyncMutex<()>,
    /// Never held across an await: attach and detach update it from inside a turn.
    ledger: Mutex<Ledger>,
    drains: Option<DrainStore>,
    /// What each real server's health check has found (written by the checks, read by
    /// policies for their input).
    health: Board<(ServiceKey, DestKey)>,
}

/// The right to write, held by one writer at a time; dropped, the next writer goes.
#[derive(Debug)]
pub struct Turn<'a, I> {
    kernel: &'a Kernel<I>,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

/// The read half of [`IpvsOps`]: what anyone may do without a turn.
#[derive(Debug)]
pub struct Reader<'a, I>(&'a I);

impl<'a, I: IpvsOps> Reader<'a, I> {
    pub async fn info(&self) -> Result<Info, IpvsError> {
        self.0.info().await
    }
    pub async fn services(&self) -> Result<Vec<ServiceEntry>, IpvsError> {
        self.0.services().await
    }
    pub async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, IpvsError> {
        self.0.service(key).await
    }
    pub async fn destinations(&self, key: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        self.0.destinations(key).await
    }
    #[allow(clippy::type_complexity)]
    pub async fn table(&self) -> Result<Vec<(ServiceEntry, Vec<DestinationEntry>)>, IpvsError> {
        self.0.table().await
    }
    pub fn table_stream(&self) -> impl Stream<Item = Result<TableRow, IpvsError>> + Send + 'a {
        self.0.table_stream()
    }
    pub async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        self.0.timeouts().await
    }
    pub async fn daemons(&self) -> Result<Vec<Daemon>, IpvsError> {
        self.0.daemons().await
    }
    pub async fn connections(&self) -> Result<Vec<Connection>, IpvsError> {
        self.0.connections().await
    }
}

/// A policy's decision for one service, with what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWrite {
    pub attachment: String,
    pub service: ServiceKey,
    /// Per real server: the weight the policy read, the weight it wants.
    pub weights: Vec<(DestKey, u32, u32)>,
    /// The scheduler the policy read, the one it wants.
    pub scheduler: Option<(Scheduler, Scheduler)>,
}

/// What a policy's write came to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    pub weights: usize,
    /// Servers left alone because a drain owns their weight, or health took them out.
    pub draining: Vec<DestKey>,
    /// Servers that left the service since the policy read it.
    pub gone: Vec<DestKey>,
}

/// Why a policy's decision was not written.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("attachment {attachment} does not steer service {service}")]
    NotHolder {
        attachment: String,
        service: ServiceKey,
    },
    /// Someone changed a field the policy owns after it read the service; nothing was
    /// written, the next evaluation decides again from the new values.
    #[error("the service changed while the policy ran ({0}); nothing was written")]
    Stale(String),
    #[error(transparent)]
    Kernel(#[from] IpvsError),
}

fn endpoint(dest: DestKey) -> String {
    std::net::SocketAddr::new(dest.0, dest.1).to_string()
}

impl<I> Kernel<I> {
    /// A core whose drains live in memory only.
    pub fn new(ipvs: Arc<I>) -> Self {
        Kernel {
            ipvs,
            turn: AsyncMutex::new(()),
            ledger: Mutex::new(Ledger::default()),
            drains: None,
            health: Board::default(),
        }
    }

    /// A core whose drains in progress are kept in `drains` (loaded now).
    pub fn open(ipvs: Arc<I>, drains: PathBuf) -> io::Result<Self> {
        let store = DrainStore::new(drains);
        let mut ledger = Ledger::default();
        for r in store.load()? {
            ledger.start_drain(r);
        }
        Ok(Kernel {
            ipvs,
            turn: AsyncMutex::new(()),
            ledger: Mutex::new(ledger),
            drains: Some(store),
            health: Board::default(),
        })
    }

    /// Reads, which need no turn.
    pub fn read(&self) -> Reader<'_, I> {
        Reader(&self.ipvs)
    }

    /// Waits for the right to write.
    pub async fn turn(&self) -> Turn<'_, I> {
        Turn {
            kernel: self,
            _guard: self.turn.lock().await,
        }
    }

    fn ledger_mut(&self) -> MutexGuard<'_, Ledger> {
        // The ledger is plain data updated in single steps: a panic elsewhere cannot leave it
        // half-changed.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of who owns what now.
    pub fn ledger(&self) -> Ledger {
        self.ledger_mut().clone()
    }

    /// What the real servers' health checks have found.
    pub fn health(&self) -> &Board<(ServiceKey, DestKey)> {
        &self.health
    }

    /// Changes the ledger in one step (health checks record what they hold this way).
    pub fn update_ledger<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        f(&mut self.ledger_mut())
    }

    /// Gives the weights (and the scheduler, once chosen) of `services` to an enforcing
    /// attachment; refused if another one steers any of them.
    pub fn hold(&self, attachment: &str, services: &[ServiceKey]) -> Result<(), Held> {
        self.ledger_mut().hold(attachment, services)
    }

    /// Gives back what `attachment` held.
    pub fn release(&self, attachment: &str) {
        self.ledger_mut().release(attachment);
    }

    /// Drains in progress.
    pub fn drains(&self) -> Vec<DrainRecord> {
        self.ledger_mut().drains().cloned().collect()
    }

    fn save_drains(&self, ledger: &Ledger) -> io::Result<()> {
        match &self.drains {
            Some(store) => store.save(ledger.drains()),
            None => Ok(()),
        }
    }
}

impl<'a, I> Turn<'a, I> {
    /// The table, to write.
    pub fn ipvs(&self) -> &'a I {
        &self.kernel.ipvs
    }

    /// Records a drain in progress, on disk first: if it cannot be kept, it is not started.
    pub fn start_drain(&self, record: DrainRecord) -> io::Result<()> {
        let mut ledger = self.kernel.ledger_mut();
        let mut next = ledger.clone();
        next.start_drain(record);
        self.kernel.save_drains(&next)?;
        *ledger = next;
        Ok(())
    }

    /// Ends a drain: its server's weight belongs to the declaration again.
    pub fn end_drain(&self, service: &ServiceKey, addr: IpAddr, port: u16) -> io::Result<()> {
        let mut ledger = self.kernel.ledger_mut();
        if ledger.end_drain(service, (addr, port)).is_some() {
            self.kernel.save_drains(&ledger)?;
        }
        Ok(())
    }
}

impl<I: IpvsOps> Kernel<I> {
    /// Writes a policy's decision if the attachment still steers the service and nothing it
    /// owns moved since it read the service (compare and set). Only the weights and the
    /// scheduler change: every other field is the table's as it is now, never the snapshot's.
    /// A server being drained, or down by its health check, keeps weight 0.
    pub async fn write_decision(&self, w: &PolicyWrite) -> Result<Written, DecisionError> {
        let turn = self.turn().await;
        let ipvs = turn.ipvs();
        let not_holder = || DecisionError::NotHolder {
            attachment: w.attachment.clone(),
            service: w.service,
        };
        let draining: Vec<DestKey> = {
            let ledger = self.ledger_mut();
            if ledger.holder(&w.service) != Some(w.attachment.as_str()) {
                return Err(not_holder());
            }
            w.weights
                .iter()
                .map(|(d, _, _)| *d)
                // A drained server, or one its health check took out, keeps its weight.
                .filter(|d| ledger.draining(&w.service, *d) || ledger.health_down(&w.service, *d))
                .collect()
        };
        let mut written = Written::default();
        let mut ops = Vec::new();
        let mut wants = Vec::new();
        if !w.weights.is_empty() {
            let now = ipvs.destinations(&w.service).await?;
            for &(dk, from, to) in &w.weights {
                let Some(cur) = now.iter().find(|d| (d.dest.addr, d.dest.port) == dk) else {
                    written.gone.push(dk);
                    continue;
                };
                if draining.contains(&dk) {
                    written.draining.push(dk);
                    continue;
                }
                if cur.dest.weight != from {
                    return Err(DecisionError::Stale(format!(
                        "real server {} has weight {}, not the {from} it was read with",
                        endpoint(dk),
                        cur.dest.weight
                    )));
                }
                let mut dest = cur.dest;
                dest.weight = to;
                ops.push(IpvsOp::SetDest(w.service, dest));
                wants.push((dk, to));
            }
        }
        let service = match &w.scheduler {
            Some((from, to)) => {
                let mut now = ipvs.service(&w.service).await?.service;
                if now.scheduler != *from {
                    return Err(DecisionError::Stale(format!(
                        "the scheduler is {}, not the {} it was read with",
                        now.scheduler.name(),
                        from.name()
                    )));
                }
                now.scheduler = to.clone();
                Some(now)
            }
            None => None,
        };
        let results = ipvs.apply(&ops).await;
        let mut failed = None;
        for ((dk, to), r) in wants.into_iter().zip(results) {
            match r {
                Ok(()) => {
                    self.ledger_mut().wrote_weight(&w.service, dk, to);
                    written.weights += 1;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        if let Some(svc) = service {
            with_scheduler(ipvs, || ipvs.set_service(&svc)).await?;
            self.ledger_mut()
                .wrote_scheduler(&w.service, svc.scheduler.clone());
        }
        drop(turn);
        Ok(written)
    }
}

#[cfg(test)]
mod tests;
