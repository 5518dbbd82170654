//! Counters nested in a service or destination: `IPVS_SVC_ATTR_STATS` / `IPVS_DEST_ATTR_STATS`
//! (the original layout: packet and connection counters and rates are u32, byte counters u64)
//! and `*_STATS64` (everything u64, kernel ≥ 4.1). Both use `IPVS_STATS_ATTR_*` numbers.

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, parse_u32, parse_u64,
};

use crate::ipvs::types::Stats;

pub const IPVS_STATS_ATTR_CONNS: u16 = 1;
pub const IPVS_STATS_ATTR_INPKTS: u16 = 2;
pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
pub const IPVS_STATS_ATTR_CPS: u16 = 6;
pub const IPVS_STATS_ATTR_INPPS: u16 = 7;
pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
pub const IPVS_STATS_ATTR_INBPS: u16 = 9;
pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
/// Alignment padding before a u64 on architectures without cheap unaligned access; it
/// carries nothing and lands in `Other`.
pub const IPVS_STATS_ATTR_PAD: u16 = 11;

/// One counter of `IPVS_*_ATTR_STATS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsAttr {
    Conns(u32),
    InPkts(u32),
    OutPkts(u32),
    InBytes(u64),
    OutBytes(u64),
    Cps(u32),
    InPps(u32),
    OutPps(u32),
    InBps(u32),
    OutBps(u32),
    Other(DefaultNla),
}

/// One counter of `IPVS_*_ATTR_STATS64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stats64Attr {
    Conns(u64),
    InPkts(u64),
    OutPkts(u64),
    InBytes(u64),
    OutBytes(u64),
    Cps(u64),
    InPps(u64),
    OutPps(u64),
    InBps(u64),
    OutBps(u64),
    Other(DefaultNla),
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::InBytes(_) | StatsAttr::OutBytes(_) => 8,
            StatsAttr::Other(nla) => nla.value_len(),
            _ => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            StatsAttr::Conns(_) => IPVS_STATS_ATTR_CONNS,
            StatsAttr::InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            StatsAttr::OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            StatsAttr::InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            StatsAttr::OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            StatsAttr::Cps(_) => IPVS_STATS_ATTR_CPS,
            StatsAttr::InPps(_) => IPVS_STATS_ATTR_INPPS,
            StatsAttr::OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            StatsAttr::InBps(_) => IPVS_STATS_ATTR_INBPS,
            StatsAttr::OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            StatsAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            StatsAttr::Conns(v)
            | StatsAttr::InPkts(v)
            | StatsAttr::OutPkts(v)
            | StatsAttr::Cps(v)
            | StatsAttr::InPps(v)
            | StatsAttr::OutPps(v)
            | StatsAttr::InBps(v)
            | StatsAttr::OutBps(v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            StatsAttr::InBytes(v) | StatsAttr::OutBytes(v) => {
                buffer[..8].copy_from_slice(&v.to_ne_bytes())
            }
            StatsAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        let kind = buf.kind();
        let what = || format!("IPVS_STATS_ATTR {kind}");
        Ok(match kind {
            IPVS_STATS_ATTR_CONNS => StatsAttr::Conns(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_INPKTS => StatsAttr::InPkts(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_OUTPKTS => StatsAttr::OutPkts(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_INBYTES => StatsAttr::InBytes(parse_u64(payload).with_context(what)?),
            IPVS_STATS_ATTR_OUTBYTES => StatsAttr::OutBytes(parse_u64(payload).with_context(what)?),
            IPVS_STATS_ATTR_CPS => StatsAttr::Cps(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_INPPS => StatsAttr::InPps(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_OUTPPS => StatsAttr::OutPps(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_INBPS => StatsAttr::InBps(parse_u32(payload).with_context(what)?),
            IPVS_STATS_ATTR_OUTBPS => StatsAttr::OutBps(parse_u32(payload).with_context(what)?),
            _ => StatsAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for Stats64Attr {
    fn value_len(&self) -> usize {
        match self {
            Stats64Attr::Other(nla) => nla.value_len(),
            _ => 8,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Stats64Attr::Conns(_) => IPVS_STATS_ATTR_CONNS,
            Stats64Attr::InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            Stats64Attr::OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            Stats64Attr::InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            Stats64Attr::OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            Stats64Attr::Cps(_) => IPVS_STATS_ATTR_CPS,
            Stats64Attr::InPps(_) => IPVS_STATS_ATTR_INPPS,
            Stats64Attr::OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            Stats64Attr::InBps(_) => IPVS_STATS_ATTR_INBPS,
            Stats64Attr::OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            Stats64Attr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Stats64Attr::Conns(v)
            | Stats64Attr::InPkts(v)
            | Stats64Attr::OutPkts(v)
            | Stats64Attr::InBytes(v)
            | Stats64Attr::OutBytes(v)
            | Stats64Attr::Cps(v)
            | Stats64Attr::InPps(v)
            | Stats64Attr::OutPps(v)
            | Stats64Attr::InBps(v)
            | Stats64Attr::OutBps(v) => buffer[..8].copy_from_slice(&v.to_ne_bytes()),
            Stats64Attr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for Stats64Attr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        let kind = buf.kind();
        let value = || parse_u64(payload).with_context(|| format!("IPVS_STATS_ATTR {kind}"));
        Ok(match kind {
            IPVS_STATS_ATTR_CONNS => Stats64Attr::Conns(value()?),
            IPVS_STATS_ATTR_INPKTS => Stats64Attr::InPkts(value()?),
            IPVS_STATS_ATTR_OUTPKTS => Stats64Attr::OutPkts(value()?),
            IPVS_STATS_ATTR_INBYTES => Stats64Attr::InBytes(value()?),
            IPVS_STATS_ATTR_OUTBYTES => Stats64Attr::OutBytes(value()?),
            IPVS_STATS_ATTR_CPS => Stats64Attr::Cps(value()?),
            IPVS_STATS_ATTR_INPPS => Stats64Attr::InPps(value()?),
            IPVS_STATS_ATTR_OUTPPS => Stats64Attr::OutPps(value()?),
            IPVS_STATS_ATTR_INBPS => Stats64Attr::InBps(value()?),
            IPVS_STATS_ATTR_OUTBPS => Stats64Attr::OutBps(value()?),
            _ => Stats64Attr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Collects counters; each one must be present (as libipvs requires).
#[derive(Default)]
struct Collect([Option<u64>; 10]);

impl Collect {
    fn set(&mut self, kind: u16, v: u64) {
        if let Some(slot) = self.0.get_mut(usize::from(kind).wrapping_sub(1)) {
            *slot = Some(v);
        }
    }

    fn finish(self, what: &str) -> Result<Stats, DecodeError> {
        const NAMES: [&str; 10] = [
            "CONNS", "INPKTS", "OUTPKTS", "INBYTES", "OUTBYTES", "CPS", "INPPS", "OUTPPS", "INBPS",
            "OUTBPS",
        ];
        let mut v = [0u64; 10];
        for (i, slot) in self.0.iter().enumerate() {
            v[i] = slot.ok_or_else(|| {
                DecodeError::from(format!("{what} lacks IPVS_STATS_ATTR_{}", NAMES[i]))
            })?;
        }
        Ok(Stats {
            conns: v[0],
            inpkts: v[1],
            outpkts: v[2],
            inbytes: v[3],
            outbytes: v[4],
            cps: v[5],
            inpps: v[6],
            outpps: v[7],
            inbps: v[8],
            outbps: v[9],
        })
    }
}

/// The domain counters from `*_STATS` (the 32-bit ones widened).
pub fn stats_from_attrs(attrs: &[StatsAttr]) -> Result<Stats, DecodeError> {
    let mut c = Collect::default();
    for a in attrs {
        let v = match a {
            StatsAttr::Conns(v)
            | StatsAttr::InPkts(v)
            | StatsAttr::OutPkts(v)
            | StatsAttr::Cps(v)
            | StatsAttr::InPps(v)
            | StatsAttr::OutPps(v)
            | StatsAttr::InBps(v)
            | StatsAttr::OutBps(v) => u64::from(*v),
            StatsAttr::InBytes(v) | StatsAttr::OutBytes(v) => *v,
            StatsAttr::Other(_) => continue,
        };
        c.set(a.kind(), v);
    }
    c.finish("STATS")
}

/// The domain counters from `*_STATS64`.
pub fn stats64_from_attrs(attrs: &[Stats64Attr]) -> Result<Stats, DecodeError> {
    let mut c = Collect::default();
    for a in attrs {
        let v = match a {
            Stats64Attr::Conns(v)
            | Stats64Attr::InPkts(v)
            | Stats64Attr::OutPkts(v)
            | Stats64Attr::InBytes(v)
            | Stats64Attr::OutBytes(v)
            | Stats64Attr::Cps(v)
            | Stats64Attr::InPps(v)
            | Stats64Attr::OutPps(v)
            | Stats64Attr::InBps(v)
            | Stats64Attr::OutBps(v) => *v,
            Stats64Attr::Other(_) => continue,
        };
        c.set(a.kind(), v);
    }
    c.finish("STATS64")
}

/// The counters as `*_STATS64` attributes, in the kernel's order.
pub fn stats64_attrs(s: &Stats) -> Vec<Stats64Attr> {
    vec![
        Stats64Attr::Conns(s.conns),
        Stats64Attr::InPkts(s.inpkts),
        Stats64Attr::OutPkts(s.outpkts),
        Stats64Attr::InBytes(s.inbytes),
        Stats64Attr::OutBytes(s.outbytes),
        Stats64Attr::Cps(s.cps),
        Stats64Attr::InPps(s.inpps),
        Stats64Attr::OutPps(s.outpps),
        Stats64Attr::InBps(s.inbps),
        Stats64Attr::OutBps(s.outbps),
    ]
}

/// The counters as `*_STATS` attributes (truncated to 32 bits where the layout is 32-bit,
/// as the kernel does), in the kernel's order.
pub fn stats_attrs(s: &Stats) -> Vec<StatsAttr> {
    let lo = |v: u64| v as u32;
    vec![
        StatsAttr::Conns(lo(s.conns)),
        StatsAttr::InPkts(lo(s.inpkts)),
        StatsAttr::OutPkts(lo(s.outpkts)),
        StatsAttr::InBytes(s.inbytes),
        StatsAttr::OutBytes(s.outbytes),
        StatsAttr::Cps(lo(s.cps)),
        StatsAttr::InPps(lo(s.inpps)),
        StatsAttr::OutPps(lo(s.outpps)),
        StatsAttr::InBps(lo(s.inbps)),
        StatsAttr::OutBps(lo(s.outbps)),
    ]
}
