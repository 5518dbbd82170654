//! The imperative writes of one service or real server (ipvsadm -A, -E, -a, -e), with what
//! the kernel needs around them, so that every front end gets the same: rules checked before
//! the kernel sees anything, the scheduler's module loaded on demand, a write the kernel may
//! silently cut short read back and taken back, an update without a weight keeping the
//! current one, and a new service's real servers made with it or not at all.

use std::net::SocketAddr;

use super::Turn;
use crate::ipvs::module::with_scheduler;
use crate::ipvs::{Destination, IpvsError, IpvsOp, IpvsOps, Service, ServiceKey};
use crate::state::readback::{self, Ignored};

/// Why an edit did not happen, or happened only in part.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Kernel(#[from] IpvsError),
    /// The kernel accepted the write but dropped part of it; `outcome` says what became of it.
    #[error("{ignored}; {outcome}")]
    Ignored { ignored: Ignored, outcome: String },
    /// A real server of a new service was refused (`change` counts the service as 1).
    #[error("real server {index} of {total} ({dest}): {cause}{outcome}", index = change - 1)]
    Destination {
        change: usize,
        total: usize,
        dest: SocketAddr,
        cause: Box<EditError>,
        /// What became of the service: empty when nothing had been written yet.
        outcome: String,
    },
}

fn at(dest: &Destination) -> SocketAddr {
    SocketAddr::new(dest.addr, dest.port)
}

impl<I: IpvsOps> Turn<'_, I> {
    /// Creates `svc`, then adds `dests` (ipvsadm -A, then -a for each). Everything is checked
    /// first; if the kernel refuses a real server, the service is deleted again.
    pub async fn create_service(
        &self,
        svc: &Service,
        dests: &[Destination],
    ) -> Result<(), EditError> {
        svc.validate().map_err(IpvsError::from)?;
        let dests: Vec<_> = dests.iter().map(|d| d.normalized_for(&svc.key)).collect();
        let refused = |i: usize, dest: &Destination, cause: EditError, outcome: String| {
            EditError::Destination {
                change: i + 2,
                total: dests.len(),
                dest: at(dest),
                cause: Box::new(cause),
                outcome,
            }
        };
        for (i, d) in dests.iter().enumerate() {
            d.validate_for(&svc.key)
                .map_err(|e| refused(i, d, IpvsError::from(e).into(), String::new()))?;
        }
        let ipvs = self.ipvs();
        with_scheduler(ipvs, || ipvs.new_service(svc)).await?;
        for (i, dest) in dests.iter().enumerate() {
            let cause = match self.add_checked(&svc.key, dest).await {
                Ok(()) => continue,
                Err(e) => e,
            };
            let outcome = match ipvs.del_service(&svc.key).await {
                Ok(()) => "; the service was removed again".to_owned(),
                Err(e) => format!("; removing the service again failed: {e}"),
            };
            return Err(refused(i, dest, cause, outcome));
        }
        Ok(())
    }

    /// Replaces a service's scheduler and options (ipvsadm -E).
    pub async fn update_service(&self, svc: &Service) -> Result<(), EditError> {
        svc.validate().map_err(IpvsError::from)?;
        let ipvs = self.ipvs();
        with_scheduler(ipvs, || ipvs.set_service(svc)).await?;
        Ok(())
    }

    /// Adds a real server (ipvsadm -a).
    pub async fn add_destination(
        &self,
        key: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), EditError> {
        let dest = dest.normalized_for(key);
        dest.validate_for(key).map_err(IpvsError::from)?;
        self.add_checked(key, &dest).await
    }

    async fn add_checked(&self, key: &ServiceKey, dest: &Destination) -> Result<(), EditError> {
        self.ipvs().new_dest(key, dest).await?;
        if readback::needs_readback(key, dest) {
            let undo = IpvsOp::DelDest {
                service: *key,
                addr: dest.addr,
                port: dest.port,
            };
            self.verify(key, dest, undo, "the real server was removed again")
                .await?;
        }
        Ok(())
    }

    /// Replaces a real server's settings (ipvsadm -e); with `keep_weight`, its weight stays
    /// what the kernel has now.
    pub async fn update_destination(
        &self,
        key: &ServiceKey,
        dest: &Destination,
        keep_weight: bool,
    ) -> Result<(), EditError> {
        let mut dest = dest.normalized_for(key);
        let check = readback::needs_readback(key, &dest);
        let ipvs = self.ipvs();
        // SET_DEST needs a weight, and a write the kernel may cut short needs the settings to
        // go back to.
        let previous = if keep_weight || check {
            let found = ipvs
                .destinations(key)
                .await?
                .into_iter()
                .find(|d| d.dest.addr == dest.addr && d.dest.port == dest.port)
                .map(|d| d.dest)
                .ok_or(IpvsError::DestinationNotFound)?;
            Some(found)
        } else {
            None
        };
        if let (true, Some(p)) = (keep_weight, &previous) {
            dest.weight = p.weight;
        }
        dest.validate_for(key).map_err(IpvsError::from)?;
        ipvs.set_dest(key, &dest).await?;
        if let (true, Some(p)) = (check, previous) {
            self.verify(
                key,
                &dest,
                IpvsOp::SetDest(*key, p),
                "its settings were restored",
            )
            .await?;
        }
        Ok(())
    }

    /// Reads `dest` back; if the kernel dropped part of it, takes the write back with `undo`.
    /// A read-back that fails is no reason to fail a write that succeeded.
    async fn verify(
        &self,
        key: &ServiceKey,
        dest: &Destination,
        undo: IpvsOp,
        undone: &str,
    ) -> Result<(), EditError> {
        let ipvs = self.ipvs();
        let back = match ipvs.destinations(key).await {
            Ok(back) => back,
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read back real server");
                return Ok(());
            }
        };
        let Err(ignored) = readback::check(key, dest, &back) else {
            return Ok(());
        };
        let outcome = match ipvs.write(&undo).await {
            Ok(()) => undone.to_owned(),
            Err(e) => format!("taking the write back (\"{undo}\") failed: {e}"),
        };
        Err(EditError::Ignored { ignored, outcome })
    }
}
