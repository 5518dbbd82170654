//! Top-level attributes (`IPVS_CMD_ATTR_*`).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, NLA_F_NESTED, Nla, NlaBuffer, Parseable,
    parse_u32,
};

use super::{DaemonAttr, DestAttr, InfoAttr, ServiceAttr, parse_nested};

pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
pub const IPVS_CMD_ATTR_DAEMON: u16 = 3;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

/// A command attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<ServiceAttr>),
    Dest(Vec<DestAttr>),
    Daemon(Vec<DaemonAttr>),
    /// Seconds; 0 leaves the value unchanged.
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    Other(DefaultNla),
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            CmdAttr::Service(a) => a.as_slice().buffer_len(),
            CmdAttr::Dest(a) => a.as_slice().buffer_len(),
            CmdAttr::Daemon(a) => a.as_slice().buffer_len(),
            CmdAttr::TimeoutTcp(_) | CmdAttr::TimeoutTcpFin(_) | CmdAttr::TimeoutUdp(_) => 4,
            CmdAttr::Other(nla) => nla.value_len(),
        }
    }

    /// Nests carry `NLA_F_NESTED`, as libnl's `nla_nest_start` sets it on ipvsadm's requests.
    fn kind(&self) -> u16 {
        match self {
            CmdAttr::Service(_) => IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED,
            CmdAttr::Dest(_) => IPVS_CMD_ATTR_DEST | NLA_F_NESTED,
            CmdAttr::Daemon(_) => IPVS_CMD_ATTR_DAEMON | NLA_F_NESTED,
            CmdAttr::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            CmdAttr::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            CmdAttr::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            CmdAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CmdAttr::Service(a) => a.as_slice().emit(buffer),
            CmdAttr::Dest(a) => a.as_slice().emit(buffer),
            CmdAttr::Daemon(a) => a.as_slice().emit(buffer),
            CmdAttr::TimeoutTcp(v) | CmdAttr::TimeoutTcpFin(v) | CmdAttr::TimeoutUdp(v) => {
                buffer[..4].copy_from_slice(&v.to_ne_bytes())
            }
            CmdAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CmdAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_CMD_ATTR_SERVICE => {
                CmdAttr::Service(parse_nested(payload, "IPVS_CMD_ATTR_SERVICE")?)
            }
            IPVS_CMD_ATTR_DEST => CmdAttr::Dest(parse_nested(payload, "IPVS_CMD_ATTR_DEST")?),
            IPVS_CMD_ATTR_DAEMON => CmdAttr::Daemon(parse_nested(payload, "IPVS_CMD_ATTR_DAEMON")?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => CmdAttr::TimeoutTcp(
                parse_u32(payload).context("invalid IPVS_CMD_ATTR_TIMEOUT_TCP")?,
            ),
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => CmdAttr::TimeoutTcpFin(
                parse_u32(payload).context("invalid IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?,
            ),
            IPVS_CMD_ATTR_TIMEOUT_UDP => CmdAttr::TimeoutUdp(
                parse_u32(payload).context("invalid IPVS_CMD_ATTR_TIMEOUT_UDP")?,
            ),
            _ => CmdAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A top-level attribute: command attributes, except in the `SET_INFO` reply, whose top
/// level holds info attributes under overlapping numbers (so the command decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsAttr {
    Cmd(CmdAttr),
    Info(InfoAttr),
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        match self {
            IpvsAttr::Cmd(a) => a.value_len(),
            IpvsAttr::Info(a) => a.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            IpvsAttr::Cmd(a) => a.kind(),
            IpvsAttr::Info(a) => a.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            IpvsAttr::Cmd(a) => a.emit_value(buffer),
            IpvsAttr::Info(a) => a.emit_value(buffer),
        }
    }
}

impl From<CmdAttr> for IpvsAttr {
    fn from(a: CmdAttr) -> Self {
        IpvsAttr::Cmd(a)
    }
}

impl From<InfoAttr> for IpvsAttr {
    fn from(a: InfoAttr) -> Self {
        IpvsAttr::Info(a)
    }
}
