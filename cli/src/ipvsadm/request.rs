//! Parsed commands as the agent's request messages.

use std::net::{IpAddr, Ipv4Addr};

use ipvs_proto::v1 as pb;

use super::command::{
    DestSpec, Forward, Netmask, ServiceKey, ServiceSpec, TunnelChecksum, TunnelType,
};
use super::resolve::L4;
use crate::durations;

/// The kernel's answer to an unknown scheduler or persistence engine, in ipvsadm's words.
/// ipvsctl gives it before asking the agent, whose API only knows the kernel's schedulers.
pub const UNKNOWN_SCHEDULER: &str = "Scheduler or persistence engine not found";

/// An address as the API writes it: `192.168.100.1`, `2001:db8::1`.
pub fn ip(addr: IpAddr) -> String {
    addr.to_string()
}

fn family(ipv6: bool) -> pb::AddressFamily {
    if ipv6 {
        pb::AddressFamily::Inet6
    } else {
        pb::AddressFamily::Inet
    }
}

pub fn protocol(p: L4) -> pb::Protocol {
    match p {
        L4::Tcp => pb::Protocol::Tcp,
        L4::Udp => pb::Protocol::Udp,
        L4::Sctp => pb::Protocol::Sctp,
    }
}

/// A service key with every field the agent's replies set, so that keys compare equal.
pub fn service_key(key: &ServiceKey) -> pb::ServiceKey {
    match *key {
        ServiceKey::Addr {
            protocol: p,
            addr,
            port,
        } => pb::ServiceKey {
            protocol: protocol(p).into(),
            address: ip(addr),
            port: u32::from(port),
            fwmark: 0,
            family: family(addr.is_ipv6()).into(),
        },
        ServiceKey::Fwmark { mark, ipv6 } => pb::ServiceKey {
            fwmark: mark,
            family: family(ipv6).into(),
            ..Default::default()
        },
    }
}

/// The scheduler named `name`, as the kernel names its modules (`ip_vs_<name>`).
pub fn scheduler(name: &str) -> Option<pb::Scheduler> {
    use pb::Scheduler as S;
    Some(match name {
        "rr" => S::Rr,
        "wrr" => S::Wrr,
        "lc" => S::Lc,
        "wlc" => S::Wlc,
        "lblc" => S::Lblc,
        "lblcr" => S::Lblcr,
        "dh" => S::Dh,
        "sh" => S::Sh,
        "sed" => S::Sed,
        "nq" => S::Nq,
        "fo" => S::Fo,
        "ovf" => S::Ovf,
        "mh" => S::Mh,
        "twos" => S::Twos,
        _ => return None,
    })
}

/// `-A`/`-E` as a service; `Err` carries ipvsadm's message for an unknown scheduler. A netmask
/// left out is left empty (0 for IPv6), which the agent reads as the default (/32 or /128), as
/// ipvsadm does.
pub fn service(spec: &ServiceSpec) -> Result<pb::Service, &'static str> {
    let sched = scheduler(&spec.scheduler).ok_or(UNKNOWN_SCHEDULER)?;
    Ok(pb::Service {
        key: Some(service_key(&spec.key)),
        scheduler: sched as i32,
        options: Some(pb::ServiceOptions {
            persistence_timeout: durations::from_secs(spec.persistent.unwrap_or(0)),
            ipv4_netmask: match spec.netmask {
                Some(Netmask::V4(mask)) => Ipv4Addr::from(mask).to_string(),
                _ => String::new(),
            },
            ipv6_prefix_length: match spec.netmask {
                Some(Netmask::V6Prefix(len)) => u32::from(len),
                _ => 0,
            },
            one_packet: spec.one_packet,
            sched_flag_1: spec.sched_flags.flag_1,
            sched_flag_2: spec.sched_flags.flag_2,
            sched_flag_3: spec.sched_flags.flag_3,
            persistence_engine: spec.persistence_engine.clone().unwrap_or_default(),
        }),
        ..Default::default()
    })
}

/// `-a`/`-e` as a real server.
pub fn destination(d: &DestSpec) -> pb::Destination {
    let tunnel = d.tunnel.map(|t| pb::Tunnel {
        r#type: match t.kind {
            TunnelType::Ipip => pb::TunnelType::Ipip,
            TunnelType::Gue => pb::TunnelType::Gue,
            TunnelType::Gre => pb::TunnelType::Gre,
        } as i32,
        port: t.port.map(u32::from).unwrap_or(0),
        checksum: match t.checksum {
            TunnelChecksum::None => pb::TunnelChecksum::None,
            TunnelChecksum::Csum => pb::TunnelChecksum::Csum,
            TunnelChecksum::RemCsum => pb::TunnelChecksum::Remcsum,
        } as i32,
    });
    pb::Destination {
        address: ip(d.addr),
        port: u32::from(d.port),
        forwarding: match d.forward {
            Forward::Route => pb::ForwardingMethod::DirectRoute,
            Forward::Tunnel => pb::ForwardingMethod::Tunnel,
            Forward::Masq => pb::ForwardingMethod::Masquerade,
        } as i32,
        weight: Some(d.weight),
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        tunnel,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::ipvsadm::command::{SchedFlags, Tunnel};

    #[test]
    fn every_scheduler_of_the_api_has_its_kernel_name() {
        for name in [
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
            "twos",
        ] {
            let s = scheduler(name).expect("known scheduler");
            assert_eq!(crate::ipvsadm::view::scheduler_name(s), name);
        }
        assert_eq!(scheduler("RR"), None);
        assert_eq!(scheduler("foo"), None);
    }

    #[test]
    fn service_carries_every_option() {
        let spec = ServiceSpec {
            key: ServiceKey::Fwmark {
                mark: 9,
                ipv6: true,
            },
            scheduler: "mh".into(),
            persistent: Some(60),
            netmask: Some(Netmask::V6Prefix(64)),
            one_packet: true,
            sched_flags: SchedFlags {
                flag_1: true,
                flag_2: false,
                flag_3: true,
            },
            persistence_engine: Some("sip".into()),
        };
        let s = service(&spec).expect("known scheduler");
        assert_eq!(s.scheduler, pb::Scheduler::Mh as i32);
        assert_eq!(
            s.key,
            Some(pb::ServiceKey {
                fwmark: 9,
                family: pb::AddressFamily::Inet6 as i32,
                ..Default::default()
            })
        );
        assert_eq!(
            s.options,
            Some(pb::ServiceOptions {
                persistence_timeout: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0
                }),
                ipv4_netmask: String::new(),
                ipv6_prefix_length: 64,
                one_packet: true,
                sched_flag_1: true,
                sched_flag_2: false,
                sched_flag_3: true,
                persistence_engine: "sip".into(),
            })
        );
        let unknown = ServiceSpec {
            scheduler: "bogus".into(),
            ..spec
        };
        assert_eq!(service(&unknown), Err(UNKNOWN_SCHEDULER));
        // 0.0.0.0 is a mask like any other (one template for all clients); no mask is unset.
        let v4 = |netmask| ServiceSpec {
            scheduler: "rr".into(),
            key: ServiceKey::Fwmark {
                mark: 9,
                ipv6: false,
            },
            netmask,
            ..unknown.clone()
        };
        for (mask, want) in [
            (Some(Netmask::V4(0)), "0.0.0.0"),
            (Some(Netmask::V4(0xffff_ff00)), "255.255.255.0"),
            (None, ""),
        ] {
            let o = service(&v4(mask))
                .expect("known scheduler")
                .options
                .unwrap_or_default();
            assert_eq!(
                (o.ipv4_netmask.as_str(), o.ipv6_prefix_length),
                (want, 0),
                "{mask:?}"
            );
        }
    }

    #[test]
    fn destination_carries_tunnel_settings() {
        let d = destination(&DestSpec {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 80,
            forward: Forward::Tunnel,
            tunnel: Some(Tunnel {
                kind: TunnelType::Gue,
                port: Some(6080),
                checksum: TunnelChecksum::Csum,
            }),
            weight: 0,
            upper_threshold: 10,
            lower_threshold: 5,
        });
        assert_eq!(d.forwarding, pb::ForwardingMethod::Tunnel as i32);
        assert_eq!(d.weight, Some(0));
        assert_eq!(
            d.tunnel,
            Some(pb::Tunnel {
                r#type: pb::TunnelType::Gue as i32,
                port: 6080,
                checksum: pb::TunnelChecksum::Csum as i32
            })
        );
        assert_eq!((d.upper_threshold, d.lower_threshold), (10, 5));
    }
}
