//! Attributes nested in `IPVS_CMD_ATTR_DAEMON` (`IPVS_DAEMON_ATTR_*`): a connection
//! synchronisation daemon.

use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, parse_u8, parse_u16,
    parse_u32,
};

use super::{emit_string, parse_array, parse_cstring, string_len};

pub const IPVS_DAEMON_ATTR_STATE: u16 = 1;
pub const IPVS_DAEMON_ATTR_MCAST_IFN: u16 = 2;
pub const IPVS_DAEMON_ATTR_SYNC_ID: u16 = 3;
pub const IPVS_DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
pub const IPVS_DAEMON_ATTR_MCAST_GROUP: u16 = 5;
pub const IPVS_DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
pub const IPVS_DAEMON_ATTR_MCAST_PORT: u16 = 7;
pub const IPVS_DAEMON_ATTR_MCAST_TTL: u16 = 8;

/// One attribute of a sync daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAttr {
    /// `IP_VS_STATE_MASTER` (1) / `IP_VS_STATE_BACKUP` (2).
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxlen(u16),
    /// Network order on the wire (`in_addr`).
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// Host order (unlike service and destination ports).
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            DaemonAttr::State(_) | DaemonAttr::SyncId(_) | DaemonAttr::McastGroup(_) => 4,
            DaemonAttr::McastIfn(s) => string_len(s),
            DaemonAttr::SyncMaxlen(_) | DaemonAttr::McastPort(_) => 2,
            DaemonAttr::McastGroup6(_) => 16,
            DaemonAttr::McastTtl(_) => 1,
            DaemonAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DaemonAttr::State(_) => IPVS_DAEMON_ATTR_STATE,
            DaemonAttr::McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            DaemonAttr::SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            DaemonAttr::SyncMaxlen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            DaemonAttr::McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            DaemonAttr::McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            DaemonAttr::McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            DaemonAttr::McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            DaemonAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            DaemonAttr::State(v) | DaemonAttr::SyncId(v) => {
                buffer[..4].copy_from_slice(&v.to_ne_bytes())
            }
            DaemonAttr::McastIfn(s) => emit_string(buffer, s),
            DaemonAttr::SyncMaxlen(v) | DaemonAttr::McastPort(v) => {
                buffer[..2].copy_from_slice(&v.to_ne_bytes())
            }
            DaemonAttr::McastGroup(a) => buffer[..4].copy_from_slice(&a.octets()),
            DaemonAttr::McastGroup6(a) => buffer[..16].copy_from_slice(&a.octets()),
            DaemonAttr::McastTtl(v) => buffer[0] = *v,
            DaemonAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_DAEMON_ATTR_STATE => {
                DaemonAttr::State(parse_u32(payload).context("invalid IPVS_DAEMON_ATTR_STATE")?)
            }
            IPVS_DAEMON_ATTR_MCAST_IFN => {
                DaemonAttr::McastIfn(parse_cstring(payload, "IPVS_DAEMON_ATTR_MCAST_IFN")?)
            }
            IPVS_DAEMON_ATTR_SYNC_ID => {
                DaemonAttr::SyncId(parse_u32(payload).context("invalid IPVS_DAEMON_ATTR_SYNC_ID")?)
            }
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => DaemonAttr::SyncMaxlen(
                parse_u16(payload).context("invalid IPVS_DAEMON_ATTR_SYNC_MAXLEN")?,
            ),
            IPVS_DAEMON_ATTR_MCAST_GROUP => DaemonAttr::McastGroup(Ipv4Addr::from(
                parse_array::<4>(payload, "IPVS_DAEMON_ATTR_MCAST_GROUP")?,
            )),
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => DaemonAttr::McastGroup6(Ipv6Addr::from(
                parse_array::<16>(payload, "IPVS_DAEMON_ATTR_MCAST_GROUP6")?,
            )),
            IPVS_DAEMON_ATTR_MCAST_PORT => DaemonAttr::McastPort(
                parse_u16(payload).context("invalid IPVS_DAEMON_ATTR_MCAST_PORT")?,
            ),
            IPVS_DAEMON_ATTR_MCAST_TTL => DaemonAttr::McastTtl(
                parse_u8(payload).context("invalid IPVS_DAEMON_ATTR_MCAST_TTL")?,
            ),
            _ => DaemonAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}
