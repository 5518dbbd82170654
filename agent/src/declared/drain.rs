//! Graceful drain of a real server: weight 0 at once (no new connections are scheduled to
//! it), then wait until its active connections end or the timeout passes, then remove it. The
//! drain runs as its own task, so it finishes even if the client that asked goes away; the
//! revision lock and the core's turn are held only for the short steps, never while waiting.
//!
//! While it runs, the drain owns the server's weight ([`crate::kernel::Ledger`]): drift repair
//! and policies leave it at 0. It is kept on disk from the moment it starts, so an agent
//! restarted in the middle neither gives the server its weight back nor forgets to finish:
//! [`Declared::resume_drains`] carries on until the same deadline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::{Declared, StateError};
use crate::ipvs::{IpvsError, IpvsOp, IpvsOps, ServiceKey};
use crate::kernel::{DrainRecord, Turn};
use crate::link::LinkOps;

/// What a drain reports: its progress, ending with `Done`, or the error that stopped it.
pub type Report = Result<Progress, StateError>;

/// A drain's write the kernel refused, in ipvsadm's words.
fn refused(op: &IpvsOp, e: IpvsError) -> StateError {
    StateError::DrainRefused {
        op: op.to_string(),
        error: e,
    }
}
use crate::state::{DesiredTable, NodeSpec};

/// What to drain and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainRequest {
    pub service: ServiceKey,
    pub addr: IpAddr,
    pub port: u16,
    pub timeout: Duration,
    /// Leave it in place at weight 0.
    pub keep: bool,
    pub expected: Option<u64>,
    /// Time between connection counts.
    pub poll: Duration,
}

/// One progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    WeightZero {
        previous: u32,
    },
    Waiting {
        active: u32,
        inactive: u32,
        elapsed: Duration,
    },
    Done {
        active: u32,
        inactive: u32,
        elapsed: Duration,
        timed_out: bool,
        removed: bool,
        revision: u64,
    },
}

/// The spec without one real server (or with it at weight 0 when kept), if it declared it.
fn without(spec: &NodeSpec, r: &DrainRequest) -> Option<NodeSpec> {
    let declared = spec.table.get(&r.service)?;
    if !declared.dests.contains_key(&(r.addr, r.port)) {
        return None;
    }
    let services = spec
        .table
        .services()
        .map(|s| {
            let dests = s
                .dests
                .values()
                .filter(|d| {
                    !(s.service.key == r.service && (d.addr, d.port) == (r.addr, r.port) && !r.keep)
                })
                .map(|d| {
                    let mut d = *d;
                    if s.service.key == r.service && (d.addr, d.port) == (r.addr, r.port) {
                        d.weight = 0;
                    }
                    d
                })
                .collect();
            (s.service.clone(), dests)
        })
        .collect();
    let table = DesiredTable::new(services).ok()?;
    Some(NodeSpec {
        table,
        ..spec.clone()
    })
}

fn not_found(service: ServiceKey) -> impl Fn(IpvsError) -> StateError {
    move |e| match e {
        IpvsError::ServiceNotFound
        | IpvsError::Kernel {
            errno: libc::ESRCH, ..
        } => StateError::ServiceNotFound(service),
        e => StateError::ReadIpvs(e),
    }
}

/// Sets the server's weight to 0, the rest as the table holds it now; its weight before.
async fn zero<I: IpvsOps>(turn: &Turn<'_, I>, r: &DrainRequest) -> Result<u32, StateError> {
    let dests = turn
        .ipvs()
        .destinations(&r.service)
        .await
        .map_err(not_found(r.service))?;
    let entry = dests
        .iter()
        .find(|d| (d.dest.addr, d.dest.port) == (r.addr, r.port))
        .ok_or(StateError::DestNotFound {
            service: r.service,
            addr: r.addr,
            port: r.port,
        })?;
    if entry.dest.weight != 0 {
        let mut dest = entry.dest;
        dest.weight = 0;
        let op = IpvsOp::SetDest(r.service, dest);
        turn.ipvs().write(&op).await.map_err(|e| refused(&op, e))?;
    }
    Ok(entry.dest.weight)
}

impl<I: IpvsOps, L: LinkOps> Declared<I, L> {
    /// Starts a drain; progress comes on the returned channel, ending with `Done` or with the
    /// error that stopped the drain. Nothing changes unless the drain could be kept on disk.
    pub async fn drain(
        self: &Arc<Self>,
        r: DrainRequest,
    ) -> Result<mpsc::Receiver<Report>, StateError> {
        let previous = {
            let inner = self.inner.lock().await;
            inner.check(r.expected)?;
            let turn = self.kernel.turn().await;
            let now = turn
                .ipvs()
                .destinations(&r.service)
                .await
                .map_err(not_found(r.service))?;
            let weight = now
                .iter()
                .find(|d| (d.dest.addr, d.dest.port) == (r.addr, r.port))
                .map(|d| d.dest.weight)
                .ok_or(StateError::DestNotFound {
                    service: r.service,
                    addr: r.addr,
                    port: r.port,
                })?;
            let record = DrainRecord {
                service: r.service,
                dest: (r.addr, r.port),
                keep: r.keep,
                deadline: SystemTime::now() + r.timeout,
                poll: r.poll,
                previous: weight,
            };
            turn.start_drain(record)
                .map_err(|error| StateError::DrainNotKept { error })?;
            if let Err(e) = zero(&turn, &r).await {
                // Not started after all: a failure to forget it only leaves a drain that the
                // next start finds finished.
                let _ = turn.end_drain(&r.service, r.addr, r.port);
                return Err(e);
            }
            weight
        };
        tracing::info!(service = %r.service, server = %r.addr, port = r.port, "drain started");
        Ok(self.run(r, Some(previous)))
    }

    /// Carries on the drains an earlier process started (their weight stays 0, they end at
    /// the same deadline); returns how many. Progress goes to the log.
    pub async fn resume_drains(self: &Arc<Self>) -> usize {
        let drains = self.kernel.drains();
        for d in &drains {
            let r = DrainRequest {
                service: d.service,
                addr: d.dest.0,
                port: d.dest.1,
                timeout: d
                    .deadline
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
                keep: d.keep,
                expected: None,
                poll: d.poll,
            };
            let zeroed = {
                let _inner = self.inner.lock().await;
                let turn = self.kernel.turn().await;
                zero(&turn, &r).await
            };
            match zeroed {
                Ok(_) => {
                    tracing::info!(service = %r.service, server = %r.addr, port = r.port, left = ?r.timeout, "drain resumed");
                    drop(self.run(r, None));
                }
                // Gone meanwhile: nothing left to drain.
                Err(e) => {
                    tracing::warn!(service = %r.service, server = %r.addr, error = %e, "drain not resumed");
                    let _inner = self.inner.lock().await;
                    let turn = self.kernel.turn().await;
                    if let Err(e) = turn.end_drain(&r.service, r.addr, r.port) {
                        tracing::warn!(error = %e, "cannot forget the finished drain");
                    }
                }
            }
        }
        drains.len()
    }

    /// The task that waits and finishes; `previous` is reported first when known.
    fn run(self: &Arc<Self>, r: DrainRequest, previous: Option<u32>) -> mpsc::Receiver<Report> {
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(async move {
            // A client that went away stops reading, not the drain.
            if let Some(previous) = previous {
                let _ = tx.send(Ok(Progress::WeightZero { previous })).await;
            }
            let done = this.wait_and_finish(&r, &tx).await;
            match done {
                Ok(p) => {
                    tracing::info!(service = %r.service, server = %r.addr, ?p, "drain done");
                    let _ = tx.send(Ok(p)).await;
                }
                Err(e) => {
                    tracing::warn!(service = %r.service, server = %r.addr, error = %e, "drain failed");
                    let _inner = this.inner.lock().await;
                    let turn = this.kernel.turn().await;
                    if let Err(e) = turn.end_drain(&r.service, r.addr, r.port) {
                        tracing::warn!(error = %e, "cannot forget the failed drain");
                    }
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        rx
    }

    async fn counts(&self, r: &DrainRequest) -> Result<Option<(u32, u32)>, StateError> {
        let dests = match self.kernel.read().destinations(&r.service).await {
            Ok(d) => d,
            Err(
                IpvsError::ServiceNotFound
                | IpvsError::Kernel {
                    errno: libc::ESRCH, ..
                },
            ) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(dests
            .iter()
            .find(|d| (d.dest.addr, d.dest.port) == (r.addr, r.port))
            .map(|d| (d.active_conns, d.inactive_conns)))
    }

    async fn wait_and_finish(
        &self,
        r: &DrainRequest,
        tx: &mpsc::Sender<Report>,
    ) -> Result<Progress, StateError> {
        // The runtime's clock, like the sleeps between counts: tests pause it.
        let start = tokio::time::Instant::now();
        let (mut active, mut inactive);
        loop {
            match self.counts(r).await? {
                // Someone else removed it: nothing left to wait for.
                None => {
                    let inner = self.inner.lock().await;
                    let turn = self.kernel.turn().await;
                    turn.end_drain(&r.service, r.addr, r.port)
                        .map_err(|error| StateError::DrainNotKept { error })?;
                    return Ok(Progress::Done {
                        active: 0,
                        inactive: 0,
                        elapsed: start.elapsed(),
                        timed_out: false,
                        removed: false,
                        revision: inner.number(),
                    });
                }
                Some((a, i)) => (active, inactive) = (a, i),
            }
            let elapsed = start.elapsed();
            if active == 0 || elapsed >= r.timeout {
                break;
            }
            let _ = tx
                .send(Ok(Progress::Waiting {
                    active,
                    inactive,
                    elapsed,
                }))
                .await;
            tokio::time::sleep(r.poll.min(r.timeout.saturating_sub(elapsed))).await;
        }
        let timed_out = active > 0;
        let mut inner = self.inner.lock().await;
        let turn = self.kernel.turn().await;
        if !r.keep {
            let op = IpvsOp::DelDest {
                service: r.service,
                addr: r.addr,
                port: r.port,
            };
            turn.ipvs().write(&op).await.map_err(|e| refused(&op, e))?;
        }
        let mut revision = inner.number();
        if let Some(current) = inner.current().cloned()
            && let Some(spec) = without(&current.spec, r)
        {
            let mut managed = current.managed.clone();
            if !r.keep {
                managed.dests.remove(&(r.service, (r.addr, r.port)));
            }
            revision = self.commit(&mut inner, spec, managed, "drain".to_owned())?;
        }
        // The declaration owns the weight again: the revision just recorded leaves the server
        // out, or keeps it at 0.
        turn.end_drain(&r.service, r.addr, r.port)
            .map_err(|error| StateError::DrainNotKept { error })?;
        Ok(Progress::Done {
            active,
            inactive,
            elapsed: start.elapsed(),
            timed_out,
            removed: !r.keep,
            revision,
        })
    }
}
