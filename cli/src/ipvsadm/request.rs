//! Parsed commands as the agent's request messages.

use std::net::IpAddr;

use ipvs_proto::v1 as pb;

use super::command::{
    DestSpec, Forward, Netmask, ServiceKey, ServiceSpec, TunnelChecksum, TunnelType,
};
use super::resolve::L4;

/// The kernel's answer to an unknown scheduler or persistence engine, in ipvsadm's words.
/// ipvsctl gives it before asking the agent, whose API only knows the kernel's schedulers.
pub const UNKNOWN_SCHEDULER: &str = "Scheduler or persistence engine not found";

pub fn ip(addr: IpAddr) -> pb::IpAddress {
    pb::IpAddress {
        ip: Some(match addr {
            IpAddr::V4(a) => pb::ip_address::Ip::V4(a.octets().to_vec()),
            IpAddr::V6(a) => pb::ip_address::Ip::V6(a.octets().to_vec()),
        }),
    }
}

pub fn protocol(p: L4) -> pb::Protocol {
    match p {
        L4::Tcp => pb::Protocol::Tcp,
        L4::Udp => pb::Protocol::Udp,
        L4::Sctp => pb::Protocol::Sctp,
    }
}

pub fn service_key(key: &ServiceKey) -> pb::ServiceKey {
    use pb::service_key::Key;
    pb::ServiceKey {
        key: Some(match *key {
            ServiceKey::Addr {
                protocol: p,
                addr,
                port,
            } => Key::Endpoint(pb::Endpoint {
                protocol: protocol(p) as i32,
                address: Some(ip(addr)),
                port: u32::from(port),
            }),
            ServiceKey::Fwmark { mark, ipv6 } => Key::Fwmark(pb::FirewallMark {
                mark,
                family: if ipv6 {
                    pb::AddressFamily::Inet6
                } else {
                    pb::AddressFamily::Inet
                } as i32,
            }),
        }),
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
/// left out is left unset, which the agent reads as the default (/32 or /128), as ipvsadm does.
pub fn service(spec: &ServiceSpec) -> Result<pb::Service, &'static str> {
    let sched = scheduler(&spec.scheduler).ok_or(UNKNOWN_SCHEDULER)?;
    Ok(pb::Service {
        key: Some(service_key(&spec.key)),
        scheduler: sched as i32,
        options: Some(pb::ServiceOptions {
            persistence_timeout: spec.persistent.unwrap_or(0),
            netmask: spec.netmask.map(|m| match m {
                Netmask::V4(mask) => mask,
                Netmask::V6Prefix(len) => u32::from(len),
            }),
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
        address: Some(ip(d.addr)),
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
                key: Some(pb::service_key::Key::Fwmark(pb::FirewallMark {
                    mark: 9,
                    family: pb::AddressFamily::Inet6 as i32
                }))
            })
        );
        assert_eq!(
            s.options,
            Some(pb::ServiceOptions {
                persistence_timeout: 60,
                netmask: Some(64),
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
            (Some(Netmask::V4(0)), Some(0)),
            (Some(Netmask::V4(0xffff_ff00)), Some(0xffff_ff00)),
            (None, None),
        ] {
            let s = service(&v4(mask)).expect("known scheduler");
            assert_eq!(s.options.and_then(|o| o.netmask), want, "{mask:?}");
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
