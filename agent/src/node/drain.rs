//! Graceful drain of a real server: weight 0 at once (no new connections are scheduled to
//! it), then wait until its active connections end or the timeout passes, then remove it. The
//! drain runs as its own task, so it finishes even if the client that asked goes away; the
//! revision lock is held only for the short steps, never while waiting.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Declared, StateError};
use crate::api::LinkOps;
use crate::ipvs::{IpvsError, IpvsOp, IpvsOps, ServiceKey};

/// What a drain reports: its progress, ending with `Done`, or the error that stopped it.
pub type Report = Result<Progress, StateError>;

/// A drain's write the kernel refused, in ipvsadm's words.
fn refused(op: &IpvsOp, e: IpvsError) -> StateError {
    StateError::Refused(format!("\"{op}\" failed: {e}"))
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

impl<I: IpvsOps, L: LinkOps> Declared<I, L> {
    /// Starts a drain; progress comes on the returned channel, ending with `Done` or with the
    /// error that stopped the drain.
    pub async fn drain(
        self: &Arc<Self>,
        r: DrainRequest,
    ) -> Result<mpsc::Receiver<Report>, StateError> {
        let previous = {
            let mut inner = self.inner.lock().await;
            inner.check(r.expected)?;
            let dests = self
                .ipvs
                .destinations(&r.service)
                .await
                .map_err(|e| match e {
                    IpvsError::ServiceNotFound => StateError::ServiceNotFound(r.service),
                    IpvsError::Kernel {
                        errno: libc::ESRCH, ..
                    } => StateError::ServiceNotFound(r.service),
                    e => StateError::ReadIpvs(e),
                })?;
            let entry = dests
                .iter()
                .find(|d| (d.dest.addr, d.dest.port) == (r.addr, r.port))
                .ok_or(StateError::DestNotFound {
                    service: r.service,
                    addr: r.addr,
                    port: r.port,
                })?;
            let mut zero = entry.dest;
            zero.weight = 0;
            let op = IpvsOp::SetDest(r.service, zero);
            self.ipvs.write(&op).await.map_err(|e| refused(&op, e))?;
            inner.draining.insert((r.service, (r.addr, r.port)));
            entry.dest.weight
        };
        tracing::info!(service = %r.service, server = %r.addr, port = r.port, "drain started");
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(async move {
            // A client that went away stops reading, not the drain.
            let _ = tx.send(Ok(Progress::WeightZero { previous })).await;
            let done = this.wait_and_finish(&r, &tx).await;
            this.inner
                .lock()
                .await
                .draining
                .remove(&(r.service, (r.addr, r.port)));
            match done {
                Ok(p) => {
                    tracing::info!(service = %r.service, server = %r.addr, ?p, "drain done");
                    let _ = tx.send(Ok(p)).await;
                }
                Err(e) => {
                    tracing::warn!(service = %r.service, server = %r.addr, error = %e, "drain failed");
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Ok(rx)
    }

    async fn counts(&self, r: &DrainRequest) -> Result<Option<(u32, u32)>, StateError> {
        let dests = match self.ipvs.destinations(&r.service).await {
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
        let start = Instant::now();
        let (mut active, mut inactive);
        loop {
            match self.counts(r).await? {
                // Someone else removed it: nothing left to wait for.
                None => {
                    return Ok(Progress::Done {
                        active: 0,
                        inactive: 0,
                        elapsed: start.elapsed(),
                        timed_out: false,
                        removed: false,
                        revision: self.inner.lock().await.number(),
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
        if !r.keep {
            let op = IpvsOp::DelDest {
                service: r.service,
                addr: r.addr,
                port: r.port,
            };
            self.ipvs.write(&op).await.map_err(|e| refused(&op, e))?;
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
