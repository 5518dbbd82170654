//! Errors of the IPVS layer: input refused before the kernel, and the kernel's own refusals,
//! named after what they mean (libipvs's `ipvs_strerror` table) rather than a bare errno.

use thiserror::Error;

/// Input that breaks ipvsadm's rules; nothing was sent to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("unknown scheduler {0:?}")]
    UnknownScheduler(String),
    #[error("fwmark must be a non-zero number")]
    ZeroFwMark,
    #[error("a service with port 0 must be persistent")]
    ZeroPortNotPersistent,
    #[error("one-packet scheduling is only for UDP and fwmark services")]
    OnePacketProtocol,
    #[error("a persistent service needs a timeout above 0, and only a persistent one has one")]
    PersistenceTimeout,
    #[error("invalid persistence netmask {0:#x}")]
    Netmask(u32),
    #[error("invalid persistence engine name {0:?}")]
    PersistenceEngine(String),
    #[error("weight {0} is out of range 0..65535")]
    Weight(u32),
    #[error("lower threshold {lower} is above upper threshold {upper}")]
    Thresholds { upper: u32, lower: u32 },
    #[error("a real server of another address family is only allowed in tunnel mode")]
    MixedFamily,
    #[error("a GUE tunnel needs a tunnel port")]
    GuePortMissing,
    #[error("a GRE tunnel does not support remote checksum offload")]
    GreRemoteChecksum,
    #[error("tunnel port and checksum options need --tun-type gue or gre")]
    TunnelOptionsWithoutType,
    #[error("tunnel options are only for tunnel (-i) real servers")]
    TunnelOptionsWithoutTunnel,
    #[error("{field} is out of range: {value}")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("missing {0}")]
    Missing(&'static str),
}

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
