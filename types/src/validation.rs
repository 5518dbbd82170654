//! Input refused before anything reaches the kernel.

use thiserror::Error;

/// Input that breaks ipvsadm's rules; nothing was sent to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("unknown scheduler {}", crate::quote(.0))]
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
    #[error("invalid persistence engine name {}", crate::quote(.0))]
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
