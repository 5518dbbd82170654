//! Attributes nested in `IPVS_CMD_ATTR_DEST` (`IPVS_DEST_ATTR_*`).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, Parseable, parse_u8,
    parse_u16, parse_u32,
};

use super::{InetAddr, Stats64Attr, StatsAttr, parse_be16, parse_nested};

pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

/// One attribute of a destination (real server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    Addr(InetAddr),
    /// Host order here; big-endian on the wire.
    Port(u16),
    /// `IP_VS_CONN_F_*` forwarding bits (mask 0x7).
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    /// Counters; only the kernel sends these (nested without `NLA_F_NESTED`).
    Stats(Vec<StatsAttr>),
    /// `AF_INET` / `AF_INET6` of the destination (≥ 3.18; may differ from the service's).
    AddrFamily(u16),
    Stats64(Vec<Stats64Attr>),
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
    TunType(u8),
    /// Host order here; big-endian on the wire.
    TunPort(u16),
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(_) => InetAddr::LEN,
            DestAttr::Port(_)
            | DestAttr::AddrFamily(_)
            | DestAttr::TunPort(_)
            | DestAttr::TunFlags(_) => 2,
            DestAttr::TunType(_) => 1,
            DestAttr::FwdMethod(_)
            | DestAttr::Weight(_)
            | DestAttr::UThresh(_)
            | DestAttr::LThresh(_)
            | DestAttr::ActiveConns(_)
            | DestAttr::InactConns(_)
            | DestAttr::PersistConns(_) => 4,
            DestAttr::Stats(a) => a.as_slice().buffer_len(),
            DestAttr::Stats64(a) => a.as_slice().buffer_len(),
            DestAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => IPVS_DEST_ATTR_ADDR,
            DestAttr::Port(_) => IPVS_DEST_ATTR_PORT,
            DestAttr::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            DestAttr::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            DestAttr::UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            DestAttr::LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            DestAttr::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            DestAttr::InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            DestAttr::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            DestAttr::Stats(_) => IPVS_DEST_ATTR_STATS,
            DestAttr::AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            DestAttr::Stats64(_) => IPVS_DEST_ATTR_STATS64,
            DestAttr::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            DestAttr::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            DestAttr::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            DestAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            DestAttr::Addr(a) => buffer[..InetAddr::LEN].copy_from_slice(&a.0),
            DestAttr::Port(v) | DestAttr::TunPort(v) => {
                buffer[..2].copy_from_slice(&v.to_be_bytes())
            }
            DestAttr::AddrFamily(v) | DestAttr::TunFlags(v) => {
                buffer[..2].copy_from_slice(&v.to_ne_bytes())
            }
            DestAttr::TunType(v) => buffer[0] = *v,
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            DestAttr::Stats(a) => a.as_slice().emit(buffer),
            DestAttr::Stats64(a) => a.as_slice().emit(buffer),
            DestAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        let kind = buf.kind();
        let u32_value = || parse_u32(payload).with_context(|| format!("IPVS_DEST_ATTR {kind}"));
        Ok(match kind {
            IPVS_DEST_ATTR_ADDR => {
                DestAttr::Addr(InetAddr::parse(payload).context("invalid IPVS_DEST_ATTR_ADDR")?)
            }
            IPVS_DEST_ATTR_PORT => DestAttr::Port(parse_be16(payload, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => DestAttr::FwdMethod(u32_value()?),
            IPVS_DEST_ATTR_WEIGHT => DestAttr::Weight(u32_value()?),
            IPVS_DEST_ATTR_U_THRESH => DestAttr::UThresh(u32_value()?),
            IPVS_DEST_ATTR_L_THRESH => DestAttr::LThresh(u32_value()?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => DestAttr::ActiveConns(u32_value()?),
            IPVS_DEST_ATTR_INACT_CONNS => DestAttr::InactConns(u32_value()?),
            IPVS_DEST_ATTR_PERSIST_CONNS => DestAttr::PersistConns(u32_value()?),
            IPVS_DEST_ATTR_STATS => DestAttr::Stats(parse_nested(payload, "IPVS_DEST_ATTR_STATS")?),
            IPVS_DEST_ATTR_ADDR_FAMILY => DestAttr::AddrFamily(
                parse_u16(payload).context("invalid IPVS_DEST_ATTR_ADDR_FAMILY")?,
            ),
            IPVS_DEST_ATTR_STATS64 => {
                DestAttr::Stats64(parse_nested(payload, "IPVS_DEST_ATTR_STATS64")?)
            }
            IPVS_DEST_ATTR_TUN_TYPE => {
                DestAttr::TunType(parse_u8(payload).context("invalid IPVS_DEST_ATTR_TUN_TYPE")?)
            }
            IPVS_DEST_ATTR_TUN_PORT => {
                DestAttr::TunPort(parse_be16(payload, "IPVS_DEST_ATTR_TUN_PORT")?)
            }
            IPVS_DEST_ATTR_TUN_FLAGS => {
                DestAttr::TunFlags(parse_u16(payload).context("invalid IPVS_DEST_ATTR_TUN_FLAGS")?)
            }
            _ => DestAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}
