//! Errors of the IPVS layer: input refused before the kernel, and the kernel's own refusals,
//! named after what they mean (libipvs's `ipvs_strerror` table) rather than a bare errno.

use thiserror::Error;

pub use ipvs_types::ValidationError;

/// An IPVS operation the kernel (or the netlink connection) refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpvsError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The kernel has no IPVS generic-netlink family (module not loaded / not built).
    #[error(
        "IPVS is not available in this kernel (generic netlink family \"IPVS\" not found); load it with `modprobe ip_vs`"
    )]
    Unavailable,
    #[error("Service not defined")]
    ServiceNotFound,
    #[error("Service already exists")]
    ServiceExists,
    #[error("No such destination")]
    DestinationNotFound,
    #[error("Destination already exists")]
    DestinationExists,
    #[error("Scheduler not found: {0}")]
    SchedulerNotFound(String),
    #[error("Persistence engine not found: {0}")]
    PersistenceEngineNotFound(String),
    #[error("sync daemon already running")]
    DaemonRunning,
    #[error("no sync daemon running")]
    DaemonNotRunning,
    #[error("permission denied (you must be root or have CAP_NET_ADMIN)")]
    PermissionDenied,
    /// Any other kernel refusal, with the operation and errno.
    #[error("{op}: {message} (errno {errno})")]
    Kernel {
        op: &'static str,
        errno: i32,
        message: String,
    },
    /// The netlink socket failed or a reply could not be parsed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The connection table (`/proc/net/ip_vs_conn`) could not be read or understood.
    #[error("connection table: {0}")]
    ConnTable(String),
}
