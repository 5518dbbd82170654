//! The IPVS generic-netlink family.
//!
//! - [`types`]: the domain model, independent of netlink; [`error`]: what can go wrong.
//! - [`cmd`], [`attr`], [`message`]: the wire format, parse and emit with no I/O; [`request`]
//!   builds messages from domain values as ipvsadm does, [`reply`] reads the kernel's back;
//!   [`errno`] names the kernel's refusals.
//! - [`handle`]: [`IpvsHandle`], the async handle over long-lived, pipelined sockets
//!   ([`pipeline`] spreads the table's dumps over them); [`op`]: a write as a value, for
//!   batches; [`rule`]: a write in ipvsadm's words.
//! - [`conn`]: the connection table, which only `/proc` shows; [`module`]: scheduler modules
//!   loaded on demand.

pub mod attr;
pub mod cmd;
pub mod conn;
pub mod errno;
pub mod error;
/// An IPVS table in memory that answers as the kernel does, for tests (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod family;
mod frame;
pub mod handle;
pub mod message;
pub mod module;
pub mod op;
mod pipeline;
#[cfg(test)]
mod proc_props;
pub mod reply;
pub mod request;
pub mod rule;
pub mod schedulers;
/// The domain model lives in `ipvs-types`, shared with ipvsctl.
pub use ipvs_types::model as types;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::IpAddr;

use futures::{Stream, TryStreamExt};

pub use conn::Connection;
pub use error::{IpvsError, ValidationError};
pub use handle::IpvsHandle;
pub use message::IpvsMessage;
pub use module::ModuleError;
pub use op::IpvsOp;
pub use types::*;

/// A service of the table with its real servers.
pub type TableRow = (ServiceEntry, Vec<DestinationEntry>);

/// Every operation the agent performs on an IPVS table. The netlink handle implements it for
/// the real kernel; the API layer is generic over it so its adapters can be unit-tested.
pub trait IpvsOps: Send + Sync + 'static {
    /// Kernel IPVS version and connection table size (`ipvsadm` header line).
    fn info(&self) -> impl Future<Output = Result<Info, IpvsError>> + Send;
    /// Every service (one dump).
    fn services(&self) -> impl Future<Output = Result<Vec<ServiceEntry>, IpvsError>> + Send;
    /// One service; `ServiceNotFound` if missing.
    fn service(
        &self,
        key: &ServiceKey,
    ) -> impl Future<Output = Result<ServiceEntry, IpvsError>> + Send;
    /// The real servers of one service (one dump).
    fn destinations(
        &self,
        key: &ServiceKey,
    ) -> impl Future<Output = Result<Vec<DestinationEntry>, IpvsError>> + Send;
    /// The whole table: every service with its real servers (`ipvsadm -L`); the per-service
    /// destination dumps are pipelined, not issued one round trip at a time.
    fn table(
        &self,
    ) -> impl Future<Output = Result<Vec<(ServiceEntry, Vec<DestinationEntry>)>, IpvsError>> + Send;
    /// The table as [`IpvsOps::table`] reads it, in the same order, each service handed out
    /// as soon as its real servers are read; an error ends it. By default the whole table is
    /// read first.
    fn table_stream(&self) -> impl Stream<Item = Result<TableRow, IpvsError>> + Send + '_ {
        futures::stream::once(self.table())
            .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok)))
            .try_flatten()
    }
    /// `ipvsadm -A`.
    fn new_service(&self, svc: &Service) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -E`.
    fn set_service(&self, svc: &Service) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -D`.
    fn del_service(&self, key: &ServiceKey) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -a`.
    fn new_dest(
        &self,
        key: &ServiceKey,
        dest: &Destination,
    ) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -e`.
    fn set_dest(
        &self,
        key: &ServiceKey,
        dest: &Destination,
    ) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -d`.
    fn del_dest(
        &self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -C`.
    fn flush(&self) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -Z [service]`.
    fn zero(&self, key: Option<&ServiceKey>) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -L --timeout`.
    fn timeouts(&self) -> impl Future<Output = Result<Timeouts, IpvsError>> + Send;
    /// `ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged).
    fn set_timeouts(&self, t: &Timeouts) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -L --daemon`.
    fn daemons(&self) -> impl Future<Output = Result<Vec<Daemon>, IpvsError>> + Send;
    /// `ipvsadm --start-daemon`.
    fn new_daemon(&self, d: &Daemon) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm --stop-daemon`.
    fn del_daemon(&self, state: DaemonState) -> impl Future<Output = Result<(), IpvsError>> + Send;
    /// `ipvsadm -Lnc`: the connection table of the agent's network namespace.
    fn connections(&self) -> impl Future<Output = Result<Vec<Connection>, IpvsError>> + Send;
    /// `modprobe ip_vs_<name>`: loads a scheduler the kernel lacks.
    fn load_scheduler(&self, name: &str) -> impl Future<Output = Result<(), ModuleError>> + Send;

    /// One write.
    fn write(&self, op: &IpvsOp) -> impl Future<Output = Result<(), IpvsError>> + Send {
        async move {
            match op {
                IpvsOp::NewService(s) => self.new_service(s).await,
                IpvsOp::SetService(s) => self.set_service(s).await,
                IpvsOp::DelService(k) => self.del_service(k).await,
                IpvsOp::NewDest(k, d) => self.new_dest(k, d).await,
                IpvsOp::SetDest(k, d) => self.set_dest(k, d).await,
                IpvsOp::DelDest {
                    service,
                    addr,
                    port,
                } => self.del_dest(service, *addr, *port).await,
                IpvsOp::Zero(k) => self.zero(k.as_ref()).await,
                IpvsOp::Flush => self.flush().await,
                IpvsOp::SetTimeouts(t) => self.set_timeouts(t).await,
                IpvsOp::NewDaemon(d) => self.new_daemon(d).await,
                IpvsOp::DelDaemon(s) => self.del_daemon(*s).await,
            }
        }
    }

    /// Many writes in order, each attempted whatever became of the ones before it (as the
    /// kernel handles a pipelined batch); one result per write, in order. One at a time
    /// unless the core can do better ([`IpvsHandle::apply`] pipelines them).
    fn apply(&self, ops: &[IpvsOp]) -> impl Future<Output = Vec<Result<(), IpvsError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(self.write(op).await);
            }
            results
        }
    }
}
