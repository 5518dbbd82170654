//! Attributes nested in `IPVS_CMD_ATTR_SERVICE` (`IPVS_SVC_ATTR_*`).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, Parseable, parse_u16,
    parse_u32,
};

use super::{
    InetAddr, Stats64Attr, StatsAttr, emit_string, parse_array, parse_be16, parse_cstring,
    parse_nested, string_len,
};

pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

/// `struct ip_vs_flags`: the kernel applies `(old & !mask) | (flags & mask)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpvsFlags {
    pub flags: u32,
    pub mask: u32,
}

/// One attribute of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAttr {
    /// `AF_INET` / `AF_INET6`.
    Af(u16),
    /// IP protocol number.
    Protocol(u16),
    Addr(InetAddr),
    /// Host order here; big-endian on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags(IpvsFlags),
    /// Persistence timeout, seconds.
    Timeout(u32),
    /// The raw `__be32`: an IPv4 mask in network order, or an IPv6 prefix length that the
    /// kernel (and ipvsadm) store as a host-order number in the same field.
    Netmask([u8; 4]),
    /// Counters; only the kernel sends these, nested without `NLA_F_NESTED`, and they are
    /// emitted the same way.
    Stats(Vec<StatsAttr>),
    PeName(String),
    Stats64(Vec<Stats64Attr>),
    Other(DefaultNla),
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        match self {
            ServiceAttr::Af(_) | ServiceAttr::Protocol(_) | ServiceAttr::Port(_) => 2,
            ServiceAttr::Addr(_) => InetAddr::LEN,
            ServiceAttr::Fwmark(_) | ServiceAttr::Timeout(_) | ServiceAttr::Netmask(_) => 4,
            ServiceAttr::SchedName(s) | ServiceAttr::PeName(s) => string_len(s),
            ServiceAttr::Flags(_) => 8,
            ServiceAttr::Stats(a) => a.as_slice().buffer_len(),
            ServiceAttr::Stats64(a) => a.as_slice().buffer_len(),
            ServiceAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            ServiceAttr::Af(_) => IPVS_SVC_ATTR_AF,
            ServiceAttr::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            ServiceAttr::Addr(_) => IPVS_SVC_ATTR_ADDR,
            ServiceAttr::Port(_) => IPVS_SVC_ATTR_PORT,
            ServiceAttr::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            ServiceAttr::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            ServiceAttr::Flags(_) => IPVS_SVC_ATTR_FLAGS,
            ServiceAttr::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            ServiceAttr::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            ServiceAttr::Stats(_) => IPVS_SVC_ATTR_STATS,
            ServiceAttr::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            ServiceAttr::Stats64(_) => IPVS_SVC_ATTR_STATS64,
            ServiceAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            ServiceAttr::Af(v) | ServiceAttr::Protocol(v) => {
                buffer[..2].copy_from_slice(&v.to_ne_bytes())
            }
            ServiceAttr::Port(v) => buffer[..2].copy_from_slice(&v.to_be_bytes()),
            ServiceAttr::Addr(a) => buffer[..InetAddr::LEN].copy_from_slice(&a.0),
            ServiceAttr::Fwmark(v) | ServiceAttr::Timeout(v) => {
                buffer[..4].copy_from_slice(&v.to_ne_bytes())
            }
            ServiceAttr::Netmask(b) => buffer[..4].copy_from_slice(b),
            ServiceAttr::SchedName(s) | ServiceAttr::PeName(s) => emit_string(buffer, s),
            ServiceAttr::Flags(f) => {
                buffer[..4].copy_from_slice(&f.flags.to_ne_bytes());
                buffer[4..8].copy_from_slice(&f.mask.to_ne_bytes());
            }
            ServiceAttr::Stats(a) => a.as_slice().emit(buffer),
            ServiceAttr::Stats64(a) => a.as_slice().emit(buffer),
            ServiceAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for ServiceAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => {
                ServiceAttr::Af(parse_u16(payload).context("invalid IPVS_SVC_ATTR_AF")?)
            }
            IPVS_SVC_ATTR_PROTOCOL => {
                ServiceAttr::Protocol(parse_u16(payload).context("invalid IPVS_SVC_ATTR_PROTOCOL")?)
            }
            IPVS_SVC_ATTR_ADDR => {
                ServiceAttr::Addr(InetAddr::parse(payload).context("invalid IPVS_SVC_ATTR_ADDR")?)
            }
            IPVS_SVC_ATTR_PORT => ServiceAttr::Port(parse_be16(payload, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => {
                ServiceAttr::Fwmark(parse_u32(payload).context("invalid IPVS_SVC_ATTR_FWMARK")?)
            }
            IPVS_SVC_ATTR_SCHED_NAME => {
                ServiceAttr::SchedName(parse_cstring(payload, "IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                let raw: [u8; 8] = parse_array(payload, "IPVS_SVC_ATTR_FLAGS")?;
                let (flags, mask) = raw.split_at(4);
                ServiceAttr::Flags(IpvsFlags {
                    flags: parse_u32(flags)?,
                    mask: parse_u32(mask)?,
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => {
                ServiceAttr::Timeout(parse_u32(payload).context("invalid IPVS_SVC_ATTR_TIMEOUT")?)
            }
            IPVS_SVC_ATTR_NETMASK => {
                ServiceAttr::Netmask(parse_array(payload, "IPVS_SVC_ATTR_NETMASK")?)
            }
            IPVS_SVC_ATTR_STATS => {
                ServiceAttr::Stats(parse_nested(payload, "IPVS_SVC_ATTR_STATS")?)
            }
            IPVS_SVC_ATTR_PE_NAME => {
                ServiceAttr::PeName(parse_cstring(payload, "IPVS_SVC_ATTR_PE_NAME")?)
            }
            IPVS_SVC_ATTR_STATS64 => {
                ServiceAttr::Stats64(parse_nested(payload, "IPVS_SVC_ATTR_STATS64")?)
            }
            _ => ServiceAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}
