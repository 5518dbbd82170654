//! Top-level attributes of the `IPVS_CMD_SET_INFO` reply to `IPVS_CMD_GET_INFO`
//! (`IPVS_INFO_ATTR_*`; their numbers overlap the command attributes').

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, parse_u32,
};

pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoAttr {
    /// `IP_VS_VERSION_CODE`, e.g. 0x010201 for 1.2.1.
    Version(u32),
    /// Size of the connection hash table.
    ConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for InfoAttr {
    fn value_len(&self) -> usize {
        match self {
            InfoAttr::Version(_) | InfoAttr::ConnTabSize(_) => 4,
            InfoAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            InfoAttr::Version(_) => IPVS_INFO_ATTR_VERSION,
            InfoAttr::ConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            InfoAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            InfoAttr::Version(v) | InfoAttr::ConnTabSize(v) => {
                buffer[..4].copy_from_slice(&v.to_ne_bytes())
            }
            InfoAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for InfoAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_INFO_ATTR_VERSION => {
                InfoAttr::Version(parse_u32(payload).context("invalid IPVS_INFO_ATTR_VERSION")?)
            }
            IPVS_INFO_ATTR_CONN_TAB_SIZE => InfoAttr::ConnTabSize(
                parse_u32(payload).context("invalid IPVS_INFO_ATTR_CONN_TAB_SIZE")?,
            ),
            _ => InfoAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}
