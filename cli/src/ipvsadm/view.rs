//! The IPVS table as ipvsctl shows it: plain structs built from the agent's messages, printed
//! as ipvsadm's tables by `format` or serialised as JSON (stable field names, numeric
//! addresses, no name lookups).

use std::net::{IpAddr, Ipv4Addr};

use ipvs_proto::v1 as pb;
use ipvs_types::uapi::{
    IP_VS_SVC_F_ONEPACKET, IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2,
    IP_VS_SVC_F_SCHED3,
};
use serde::Serialize;

use super::resolve::L4;
use crate::durations;

/// The agent sent something that cannot be shown, e.g. an address that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("the agent sent an invalid address `{0}'")]
    BadAddress(String),
    #[error("the agent sent an invalid IPv4 netmask `{0}'")]
    BadNetmask(String),
    #[error("the agent sent a service without a key")]
    MissingKey,
    #[error("the agent sent a real server without an address")]
    MissingAddress,
}

/// `IP Virtual Server version 1.2.1 (size=4096)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Info {
    /// `major.minor.patch`.
    pub version: String,
    pub connection_table_size: u32,
}

impl From<&pb::GetInfoResponse> for Info {
    fn from(r: &pb::GetInfoResponse) -> Self {
        let v = r.version;
        Info {
            version: format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff),
            connection_table_size: r.connection_table_size,
        }
    }
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

/// Counters of a service or real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub connections: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Rates of a service or real server, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rates {
    pub connections: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// How packets reach a real server, as ipvsadm names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    Masq,
    Local,
    Tunnel,
    Route,
    /// A method this client does not know.
    Unknown,
}

/// Tunnel encapsulation of a tunnel real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TunnelView {
    #[serde(rename = "type")]
    pub kind: TunnelKind,
    /// UDP port, GUE only.
    pub port: Option<u16>,
    pub checksum: Checksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    Ipip,
    Gue,
    Gre,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    None,
    Csum,
    Remcsum,
}

/// A real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestView {
    pub address: IpAddr,
    pub port: u16,
    pub forwarding: Forwarding,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    pub active_connections: u32,
    pub inactive_connections: u32,
    pub persistent_connections: u32,
    /// Set for tunnel servers only.
    pub tunnel: Option<TunnelView>,
    pub stats: Counters,
    pub rates: Rates,
}

/// A virtual service with its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    pub family: Family,
    /// `tcp`, `udp` or `sctp`; null for a firewall-mark service.
    pub protocol: Option<L4>,
    /// Null for a firewall-mark service.
    pub address: Option<IpAddr>,
    /// Null for a firewall-mark service.
    pub port: Option<u16>,
    /// Null for an address service.
    pub fwmark: Option<u32>,
    pub scheduler: String,
    /// Scheduler flags as ipvsadm names them for this scheduler (`sh-port`, `flag-3`, ...).
    pub sched_flags: Vec<String>,
    /// Persistence timeout in seconds; null when not persistent.
    pub persistent: Option<u32>,
    /// Persistence granularity when not the default: a dotted mask (IPv4) or a prefix
    /// length (IPv6).
    pub netmask: Option<String>,
    pub persistence_engine: Option<String>,
    pub one_packet: bool,
    pub stats: Counters,
    pub rates: Rates,
    pub destinations: Vec<DestView>,
}

/// What `-L` shows: the header (for the whole table) and the services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub ipvs: Option<Info>,
    pub services: Vec<ServiceView>,
}

impl Serialize for L4 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Sctp => "sctp",
        })
    }
}

/// The kernel's name of a scheduler.
pub fn scheduler_name(s: pb::Scheduler) -> &'static str {
    use pb::Scheduler as S;
    match s {
        // The API's default, which a reply never leaves unset.
        S::Unspecified | S::Wlc => "wlc",
        S::Rr => "rr",
        S::Wrr => "wrr",
        S::Lc => "lc",
        S::Lblc => "lblc",
        S::Lblcr => "lblcr",
        S::Dh => "dh",
        S::Sh => "sh",
        S::Sed => "sed",
        S::Nq => "nq",
        S::Fo => "fo",
        S::Ovf => "ovf",
        S::Mh => "mh",
        S::Twos => "twos",
    }
}

/// An address the agent sent: none when empty.
pub fn ip_from_pb(a: &str) -> Result<Option<IpAddr>, ViewError> {
    if a.is_empty() {
        return Ok(None);
    }
    a.parse()
        .map(Some)
        .map_err(|_| ViewError::BadAddress(a.to_string()))
}

fn port16(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(u16::MAX)
}

fn stats(s: Option<&pb::Stats>) -> (Counters, Rates) {
    let c = s.and_then(|s| s.counters).unwrap_or_default();
    let r = s.and_then(|s| s.rates).unwrap_or_default();
    (
        Counters {
            connections: c.connections,
            in_packets: c.in_packets,
            out_packets: c.out_packets,
            in_bytes: c.in_bytes,
            out_bytes: c.out_bytes,
        },
        Rates {
            connections: r.connections_per_second,
            in_packets: r.in_packets_per_second,
            out_packets: r.out_packets_per_second,
            in_bytes: r.in_bytes_per_second,
            out_bytes: r.out_bytes_per_second,
        },
    )
}

/// ipvsadm's `print_sched_flags`: named flags for sh and mh, numbered otherwise.
fn sched_flag_names(scheduler: &str, flags: u32) -> Vec<String> {
    let names: [(u32, &str); 3] = match scheduler {
        "sh" => [
            (IP_VS_SVC_F_SCHED1, "sh-fallback"),
            (IP_VS_SVC_F_SCHED2, "sh-port"),
            (0, ""),
        ],
        "mh" => [
            (IP_VS_SVC_F_SCHED1, "mh-fallback"),
            (IP_VS_SVC_F_SCHED2, "mh-port"),
            (0, ""),
        ],
        _ => [
            (IP_VS_SVC_F_SCHED1, "flag-1"),
            (IP_VS_SVC_F_SCHED2, "flag-2"),
            (IP_VS_SVC_F_SCHED3, "flag-3"),
        ],
    };
    names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

impl DestView {
    pub fn from_pb(d: &pb::Destination) -> Result<Self, ViewError> {
        let address = ip_from_pb(&d.address)?.ok_or(ViewError::MissingAddress)?;
        let forwarding = match pb::ForwardingMethod::try_from(d.forwarding) {
            Ok(pb::ForwardingMethod::Masquerade) => Forwarding::Masq,
            Ok(pb::ForwardingMethod::Local) => Forwarding::Local,
            Ok(pb::ForwardingMethod::Tunnel) => Forwarding::Tunnel,
            Ok(pb::ForwardingMethod::DirectRoute | pb::ForwardingMethod::Unspecified) => {
                Forwarding::Route
            }
            Err(_) => Forwarding::Unknown,
        };
        let tunnel = match (forwarding, &d.tunnel) {
            (Forwarding::Tunnel, t) => {
                let t = t.unwrap_or_default();
                let kind = match pb::TunnelType::try_from(t.r#type) {
                    Ok(pb::TunnelType::Gue) => TunnelKind::Gue,
                    Ok(pb::TunnelType::Gre) => TunnelKind::Gre,
                    _ => TunnelKind::Ipip,
                };
                Some(TunnelView {
                    kind,
                    port: (kind == TunnelKind::Gue).then_some(port16(t.port)),
                    checksum: match pb::TunnelChecksum::try_from(t.checksum) {
                        Ok(pb::TunnelChecksum::Csum) => Checksum::Csum,
                        Ok(pb::TunnelChecksum::Remcsum) => Checksum::Remcsum,
                        _ => Checksum::None,
                    },
                })
            }
            _ => None,
        };
        let (stats, rates) = stats(d.stats.as_ref());
        Ok(DestView {
            address,
            port: port16(d.port),
            forwarding,
            weight: d.weight.unwrap_or(1),
            upper_threshold: d.upper_threshold,
            lower_threshold: d.lower_threshold,
            active_connections: d.active_connections,
            inactive_connections: d.inactive_connections,
            persistent_connections: d.persistent_connections,
            tunnel,
            stats,
            rates,
        })
    }
}

impl ServiceView {
    pub fn from_pb(s: &pb::Service) -> Result<Self, ViewError> {
        let key = s.key.as_ref().ok_or(ViewError::MissingKey)?;
        let (family, protocol, address, port, fwmark) = if key.fwmark != 0 {
            let family = if key.family == pb::AddressFamily::Inet6 as i32 {
                Family::Inet6
            } else {
                Family::Inet
            };
            (family, None, None, None, Some(key.fwmark))
        } else {
            let addr = ip_from_pb(&key.address)?.ok_or(ViewError::MissingKey)?;
            let protocol = match pb::Protocol::try_from(key.protocol) {
                Ok(pb::Protocol::Udp) => L4::Udp,
                Ok(pb::Protocol::Sctp) => L4::Sctp,
                _ => L4::Tcp,
            };
            let family = if addr.is_ipv6() {
                Family::Inet6
            } else {
                Family::Inet
            };
            (
                family,
                Some(protocol),
                Some(addr),
                Some(port16(key.port)),
                None,
            )
        };
        let scheduler = pb::Scheduler::try_from(s.scheduler)
            .map(scheduler_name)
            .unwrap_or_default()
            .to_string();
        let o = s.options.clone().unwrap_or_default();
        let timeout = durations::secs(o.persistence_timeout.as_ref());
        let mut flags = s.flags;
        if timeout > 0 {
            flags |= IP_VS_SVC_F_PERSISTENT;
        }
        if o.one_packet {
            flags |= IP_VS_SVC_F_ONEPACKET;
        }
        for (set, bit) in [
            (o.sched_flag_1, IP_VS_SVC_F_SCHED1),
            (o.sched_flag_2, IP_VS_SVC_F_SCHED2),
            (o.sched_flag_3, IP_VS_SVC_F_SCHED3),
        ] {
            if set {
                flags |= bit;
            }
        }
        // Shown unless it is the default, as ipvsadm does; 0.0.0.0 is shown.
        let netmask = match family {
            Family::Inet if o.ipv4_netmask.is_empty() => None,
            Family::Inet => match o.ipv4_netmask.parse::<Ipv4Addr>() {
                Ok(Ipv4Addr::BROADCAST) => None,
                Ok(m) => Some(m.to_string()),
                Err(_) => return Err(ViewError::BadNetmask(o.ipv4_netmask)),
            },
            Family::Inet6 => match o.ipv6_prefix_length {
                0 | 128 => None,
                len => Some(len.to_string()),
            },
        };
        let (stats, rates) = stats(s.stats.as_ref());
        Ok(ServiceView {
            family,
            protocol,
            address,
            port,
            fwmark,
            sched_flags: sched_flag_names(&scheduler, flags),
            scheduler,
            persistent: (flags & IP_VS_SVC_F_PERSISTENT != 0).then_some(timeout),
            netmask,
            persistence_engine: (!o.persistence_engine.is_empty()).then_some(o.persistence_engine),
            one_packet: flags & IP_VS_SVC_F_ONEPACKET != 0,
            stats,
            rates,
            destinations: s
                .destinations
                .iter()
                .map(DestView::from_pb)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: n,
            nanos: 0,
        })
    }

    #[test]
    fn info_decodes_the_kernel_version() {
        let info = Info::from(&pb::GetInfoResponse {
            version: 0x010201,
            connection_table_size: 4096,
        });
        assert_eq!(info.version, "1.2.1");
        assert_eq!(info.connection_table_size, 4096);
    }

    #[test]
    fn service_view_takes_flags_from_options_and_raw_flags() {
        let s = pb::Service {
            key: Some(pb::ServiceKey {
                protocol: pb::Protocol::Udp as i32,
                address: "10.0.0.1".into(),
                port: 53,
                family: pb::AddressFamily::Inet as i32,
                ..Default::default()
            }),
            scheduler: pb::Scheduler::Sh as i32,
            options: Some(pb::ServiceOptions {
                persistence_timeout: secs(60),
                ipv4_netmask: "255.255.255.0".into(),
                sched_flag_2: true,
                ..Default::default()
            }),
            flags: IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_ONEPACKET,
            ..Default::default()
        };
        let v = ServiceView::from_pb(&s).expect("valid service");
        assert_eq!(v.protocol, Some(L4::Udp));
        assert_eq!(v.address, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!((v.port, v.fwmark, v.family), (Some(53), None, Family::Inet));
        assert_eq!(v.scheduler, "sh");
        assert_eq!(v.sched_flags, vec!["sh-fallback", "sh-port"]);
        assert_eq!(v.persistent, Some(60));
        assert_eq!(v.netmask.as_deref(), Some("255.255.255.0"));
        assert!(v.one_packet);
    }

    #[test]
    fn zero_values_are_the_apis_defaults() {
        // A key with only an address is TCP; no scheduler is wlc; no forwarding method is
        // direct routing; a tunnel without settings is plain IP-in-IP.
        let s = pb::Service {
            key: Some(pb::ServiceKey {
                address: "2001:db8::1".into(),
                port: 80,
                ..Default::default()
            }),
            destinations: vec![pb::Destination {
                address: "2001:db8::2".into(),
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = ServiceView::from_pb(&s).expect("valid service");
        assert_eq!(
            (v.protocol, v.family, v.scheduler.as_str()),
            (Some(L4::Tcp), Family::Inet6, "wlc")
        );
        assert_eq!((v.persistent, v.netmask.as_deref()), (None, None));
        let d = &v.destinations[0];
        assert_eq!(
            (d.forwarding, d.weight, d.tunnel),
            (Forwarding::Route, 1, None)
        );
        let tunnel = DestView::from_pb(&pb::Destination {
            address: "10.0.0.2".into(),
            forwarding: pb::ForwardingMethod::Tunnel as i32,
            ..Default::default()
        })
        .expect("valid destination");
        assert_eq!(
            tunnel.tunnel,
            Some(TunnelView {
                kind: TunnelKind::Ipip,
                port: None,
                checksum: Checksum::None
            })
        );
        let unknown = DestView::from_pb(&pb::Destination {
            address: "10.0.0.2".into(),
            forwarding: 99,
            ..Default::default()
        })
        .expect("valid destination");
        assert_eq!(unknown.forwarding, Forwarding::Unknown);
    }

    #[test]
    fn tunnel_settings_are_read() {
        for (kind, port, checksum, want) in [
            (
                pb::TunnelType::Ipip,
                0,
                pb::TunnelChecksum::None,
                (TunnelKind::Ipip, None, Checksum::None),
            ),
            (
                pb::TunnelType::Gue,
                6080,
                pb::TunnelChecksum::Remcsum,
                (TunnelKind::Gue, Some(6080), Checksum::Remcsum),
            ),
            (
                pb::TunnelType::Gre,
                0,
                pb::TunnelChecksum::Csum,
                (TunnelKind::Gre, None, Checksum::Csum),
            ),
        ] {
            let d = DestView::from_pb(&pb::Destination {
                address: "10.0.0.2".into(),
                forwarding: pb::ForwardingMethod::Tunnel as i32,
                tunnel: Some(pb::Tunnel {
                    r#type: kind as i32,
                    port,
                    checksum: checksum as i32,
                }),
                ..Default::default()
            })
            .expect("valid destination");
            let t = d.tunnel.expect("a tunnel server has tunnel settings");
            assert_eq!((t.kind, t.port, t.checksum), want, "{kind:?}");
        }
    }

    #[test]
    fn netmasks_show_unless_they_are_the_default() {
        let mark =
            |family: pb::AddressFamily, ipv4_netmask: &str, ipv6_prefix_length| pb::Service {
                key: Some(pb::ServiceKey {
                    fwmark: 1,
                    family: family as i32,
                    ..Default::default()
                }),
                scheduler: pb::Scheduler::Rr as i32,
                options: Some(pb::ServiceOptions {
                    persistence_timeout: secs(60),
                    ipv4_netmask: ipv4_netmask.into(),
                    ipv6_prefix_length,
                    ..Default::default()
                }),
                ..Default::default()
            };
        use pb::AddressFamily::{Inet, Inet6};
        for (family, v4, v6, want) in [
            (Inet, "0.0.0.0", 0, Some("0.0.0.0")),
            (Inet, "255.255.0.0", 0, Some("255.255.0.0")),
            (Inet, "255.255.255.255", 0, None),
            (Inet, "", 0, None),
            (Inet6, "", 64, Some("64")),
            (Inet6, "", 1, Some("1")),
            (Inet6, "", 128, None),
            (Inet6, "", 0, None),
        ] {
            let v = ServiceView::from_pb(&mark(family, v4, v6)).expect("valid service");
            assert_eq!(v.netmask.as_deref(), want, "{family:?} {v4:?} {v6}");
        }
        assert_eq!(
            ServiceView::from_pb(&mark(Inet, "255.255.255.0/24", 0)),
            Err(ViewError::BadNetmask("255.255.255.0/24".into()))
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let s = pb::Service::default();
        assert_eq!(ServiceView::from_pb(&s), Err(ViewError::MissingKey));
        let d = pb::Destination {
            address: "1.2.3".into(),
            ..Default::default()
        };
        assert_eq!(
            DestView::from_pb(&d),
            Err(ViewError::BadAddress("1.2.3".into()))
        );
        assert_eq!(
            DestView::from_pb(&pb::Destination::default()),
            Err(ViewError::MissingAddress)
        );
    }
}
