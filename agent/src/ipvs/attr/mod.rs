//! IPVS attributes, one enum per nesting level, each ending in `Other(DefaultNla)` so that
//! attributes a newer kernel adds still parse (and re-emit unchanged).
//!
//! ```text
//! genlmsghdr (cmd, version 1)
//! ├─ IPVS_CMD_ATTR_SERVICE (nested)  -> ServiceAttr ─┬─ IPVS_SVC_ATTR_STATS   -> StatsAttr
//! │                                                  └─ IPVS_SVC_ATTR_STATS64 -> Stats64Attr
//! ├─ IPVS_CMD_ATTR_DEST    (nested)  -> DestAttr    ─┬─ IPVS_DEST_ATTR_STATS   -> StatsAttr
//! │                                                  └─ IPVS_DEST_ATTR_STATS64 -> Stats64Attr
//! ├─ IPVS_CMD_ATTR_DAEMON  (nested)  -> DaemonAttr
//! └─ IPVS_CMD_ATTR_TIMEOUT_{TCP,TCP_FIN,UDP} (u32)
//! IPVS_CMD_SET_INFO replies carry InfoAttr at the top level instead.
//! ```
//!
//! The kernel nests its replies without `NLA_F_NESTED`; parsing never looks at the bit.
//! Requests set it, as libnl's `nla_nest_start` (and so ipvsadm) does.

mod daemon;
mod dest;
mod info;
mod service;
mod stats;
mod top;

pub use daemon::*;
pub use dest::*;
pub use info::*;
pub use service::*;
pub use stats::*;
pub use top::*;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DecodeError, ErrorContext, NlaBuffer, NlasIterator, Parseable};

use super::types::Family;

/// `union nf_inet_addr` as IPVS carries it: always 16 bytes, an IPv4 address in the first 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InetAddr(pub [u8; 16]);

impl InetAddr {
    pub const LEN: usize = 16;

    pub fn from_ip(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 16];
        match ip {
            IpAddr::V4(a) => bytes[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => bytes = a.octets(),
        }
        InetAddr(bytes)
    }

    /// The address, read as `family` (the union carries no family of its own).
    pub fn to_ip(&self, family: Family) -> IpAddr {
        match family {
            Family::Inet => IpAddr::V4(Ipv4Addr::new(self.0[0], self.0[1], self.0[2], self.0[3])),
            Family::Inet6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// Accepts the full 16-byte union, or a bare 4-byte IPv4 address (the kernel's policy
    /// only bounds the length); anything else is malformed.
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut bytes = [0u8; 16];
        match payload.len() {
            4 | 16 => bytes[..payload.len()].copy_from_slice(payload),
            n => {
                return Err(DecodeError::from(format!(
                    "nf_inet_addr must be 4 or 16 bytes, got {n}"
                )));
            }
        }
        Ok(InetAddr(bytes))
    }
}

/// Parses the attributes nested in `payload` (flag or no flag) into `T`.
pub(crate) fn parse_nested<T>(payload: &[u8], what: &str) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(payload)
        .map(|nla| nla.and_then(|nla| T::parse(&nla)))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("failed to parse {what}"))
}

/// Value length of a NUL-terminated string attribute.
pub(crate) fn string_len(s: &str) -> usize {
    s.len() + 1
}

/// Writes `s` and its terminating NUL.
pub(crate) fn emit_string(buffer: &mut [u8], s: &str) {
    buffer[..s.len()].copy_from_slice(s.as_bytes());
    buffer[s.len()] = 0;
}

/// A NUL-terminated string: the NUL is required (the kernel's policy is `NLA_NUL_STRING`)
/// and nothing may follow it.
pub(crate) fn parse_cstring(payload: &[u8], what: &str) -> Result<String, DecodeError> {
    let Some((&0, text)) = payload.split_last() else {
        return Err(DecodeError::from(format!("{what} is not NUL-terminated")));
    };
    if text.contains(&0) {
        return Err(DecodeError::from(format!("{what} has an embedded NUL")));
    }
    String::from_utf8(text.to_vec()).map_err(|e| DecodeError::from(format!("{what}: {e}")))
}

/// A big-endian u16 (ports).
pub(crate) fn parse_be16(payload: &[u8], what: &str) -> Result<u16, DecodeError> {
    let bytes: [u8; 2] = payload
        .try_into()
        .map_err(|_| DecodeError::from(format!("{what} must be 2 bytes, got {}", payload.len())))?;
    Ok(u16::from_be_bytes(bytes))
}

/// Fixed-size raw value.
pub(crate) fn parse_array<const N: usize>(
    payload: &[u8],
    what: &str,
) -> Result<[u8; N], DecodeError> {
    payload
        .try_into()
        .map_err(|_| DecodeError::from(format!("{what} must be {N} bytes, got {}", payload.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addr_layout() {
        let v4 = InetAddr::from_ip("192.168.100.1".parse().expect("ip"));
        assert_eq!(&v4.0[..4], &[192, 168, 100, 1]);
        assert_eq!(&v4.0[4..], &[0u8; 12]);
        assert_eq!(
            v4.to_ip(Family::Inet),
            "192.168.100.1".parse::<IpAddr>().expect("ip")
        );
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(InetAddr::from_ip(v6).to_ip(Family::Inet6), v6);
        assert_eq!(
            InetAddr::parse(&[10, 0, 0, 1])
                .map(|a| a.to_ip(Family::Inet))
                .ok(),
            Some("10.0.0.1".parse::<IpAddr>().expect("ip"))
        );
        assert_eq!(
            InetAddr::parse(&[1, 2, 3]).map_err(|e| e.to_string()),
            Err("nf_inet_addr must be 4 or 16 bytes, got 3".to_owned())
        );
    }

    #[test]
    fn strings_need_their_nul() {
        assert_eq!(parse_cstring(b"rr\0", "s").ok(), Some("rr".to_owned()));
        assert_eq!(
            parse_cstring(b"rr", "sched").map_err(|e| e.to_string()),
            Err("sched is not NUL-terminated".to_owned())
        );
        assert_eq!(
            parse_cstring(b"r\0r\0", "sched").map_err(|e| e.to_string()),
            Err("sched has an embedded NUL".to_owned())
        );
        assert_eq!(
            parse_cstring(b"", "sched").map_err(|e| e.to_string()),
            Err("sched is not NUL-terminated".to_owned())
        );
    }
}
