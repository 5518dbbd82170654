//! `ipvs.agent.v1` services and real servers ↔ the [`crate::ipvs`] domain model.
//!
//! Parsing checks only what the wire format leaves open (lengths, ranges, enum values, required
//! fields); ipvsadm's rules stay in [`Service::validate`] and [`Destination::validate_for`].
//! Read-only fields (flags, counters, connection counts) are ignored on input, so a service read
//! with `GetService` can be edited and sent back to `UpdateService`.

use std::net::{IpAddr, Ipv4Addr};

use ipvs_proto::v1 as pb;

use super::{
    At, Field, FieldError, Problem, ip_address, nested, optional, quote, seconds_to_proto,
    u16_field, whole_seconds,
};
use crate::ipvs::{
    Destination, DestinationEntry, Family, ForwardMethod, Info, MAX_WEIGHT, Protocol, Scheduler,
    Service, ServiceEntry, ServiceFlags, ServiceKey, Stats, Tunnel, TunnelChecksum, TunnelType,
    default_netmask,
};

/// Every scheduler the API names, with its domain value.
const SCHEDULERS: [(pb::Scheduler, Scheduler); 14] = [
    (pb::Scheduler::Rr, Scheduler::Rr),
    (pb::Scheduler::Wrr, Scheduler::Wrr),
    (pb::Scheduler::Lc, Scheduler::Lc),
    (pb::Scheduler::Wlc, Scheduler::Wlc),
    (pb::Scheduler::Lblc, Scheduler::Lblc),
    (pb::Scheduler::Lblcr, Scheduler::Lblcr),
    (pb::Scheduler::Dh, Scheduler::Dh),
    (pb::Scheduler::Sh, Scheduler::Sh),
    (pb::Scheduler::Sed, Scheduler::Sed),
    (pb::Scheduler::Nq, Scheduler::Nq),
    (pb::Scheduler::Fo, Scheduler::Fo),
    (pb::Scheduler::Ovf, Scheduler::Ovf),
    (pb::Scheduler::Mh, Scheduler::Mh),
    (pb::Scheduler::Twos, Scheduler::Twos),
];

/// A write to one real server of one service, as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationChange {
    pub service: ServiceKey,
    /// The real server; its weight is 1 when the request left it unset.
    pub dest: Destination,
    /// Whether the request set the weight (an update without one keeps the current weight).
    pub weight_given: bool,
}

// ---- requests -------------------------------------------------------------------------------

/// `CreateServiceRequest`: the service to create and the real servers to add with it.
pub fn create_service(
    req: &pb::CreateServiceRequest,
) -> Result<(Service, Vec<Destination>), FieldError> {
    nested(req.service.as_ref(), "service", |s| {
        let dests = s
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| destination(d).at(&format!("destinations[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((service(s)?, dests))
    })
}

/// `UpdateServiceRequest`: the full configuration to replace the current one with (the kernel
/// takes no partial update). Real servers are not touched, so none may be given.
pub fn update_service(req: &pb::UpdateServiceRequest) -> Result<Service, FieldError> {
    nested(req.service.as_ref(), "service", |s| {
        if !s.destinations.is_empty() {
            return Err(FieldError::new(
                "destinations",
                Problem::ReadOnly("change real servers with UpdateDestination"),
            ));
        }
        service(s)
    })
}

/// A required service key under `field`.
pub fn key_field(key: Option<&pb::ServiceKey>, field: &str) -> Result<ServiceKey, FieldError> {
    nested(key, field, service_key)
}

/// An optional service key under `field` (unset = every service).
pub fn optional_key(
    key: Option<&pb::ServiceKey>,
    field: &str,
) -> Result<Option<ServiceKey>, FieldError> {
    optional(key, field, service_key)
}

pub fn add_destination(req: &pb::AddDestinationRequest) -> Result<DestinationChange, FieldError> {
    destination_change(req.service.as_ref(), req.destination.as_ref())
}

pub fn update_destination(
    req: &pb::UpdateDestinationRequest,
) -> Result<DestinationChange, FieldError> {
    destination_change(req.service.as_ref(), req.destination.as_ref())
}

fn destination_change(
    service: Option<&pb::ServiceKey>,
    dest: Option<&pb::Destination>,
) -> Result<DestinationChange, FieldError> {
    Ok(DestinationChange {
        service: key_field(service, "service")?,
        dest: nested(dest, "destination", destination)?,
        weight_given: dest.is_some_and(|d| d.weight.is_some()),
    })
}

/// `DeleteDestinationRequest`: the service and the real server's address and port.
pub fn delete_destination(
    req: &pb::DeleteDestinationRequest,
) -> Result<(ServiceKey, IpAddr, u16), FieldError> {
    let service = key_field(req.service.as_ref(), "service")?;
    let (addr, port) = nested(req.destination.as_ref(), "destination", destination_address)?;
    Ok((service, addr, port))
}

/// A real server's address and port alone, for a request that names one.
pub fn destination_address(d: &pb::Destination) -> Result<(IpAddr, u16), FieldError> {
    Ok((
        ip_address(&d.address).field("address")?,
        u16_field(d.port).field("port")?,
    ))
}

// ---- messages -------------------------------------------------------------------------------

/// A service key: a fwmark and a family, or a protocol, an address and a port.
pub fn service_key(k: &pb::ServiceKey) -> Result<ServiceKey, FieldError> {
    let family = address_family(k.family).field("family")?;
    if k.fwmark != 0 {
        let unused = |field: &str| {
            FieldError::new(field, Problem::Invalid("must be unset for a fwmark service".into()))
        };
        if k.protocol != 0 {
            return Err(unused("protocol"));
        }
        if !k.address.is_empty() {
            return Err(unused("address"));
        }
        if k.port != 0 {
            return Err(unused("port"));
        }
        let family = family.unwrap_or(Family::Inet);
        return ServiceKey::fwmark(k.fwmark, family)
            .map_err(|_| FieldError::new("fwmark", Problem::Zero));
    }
    let addr = ip_address(&k.address).field("address")?;
    if let Some(family) = family {
        if family != Family::of(&addr) {
            return Err(FieldError::new(
                "family",
                Problem::Invalid(format!("does not match the address {}", quote(&k.address))),
            ));
        }
    }
    Ok(ServiceKey::Endpoint {
        protocol: protocol(k.protocol).field("protocol")?,
        addr,
        port: u16_field(k.port).field("port")?,
    })
}

/// A family, if one was given.
fn address_family(v: i32) -> Result<Option<Family>, Problem> {
    match pb::AddressFamily::try_from(v) {
        Ok(pb::AddressFamily::Unspecified) => Ok(None),
        Ok(pb::AddressFamily::Inet) => Ok(Some(Family::Inet)),
        Ok(pb::AddressFamily::Inet6) => Ok(Some(Family::Inet6)),
        Err(_) => Err(Problem::UnknownEnum(v)),
    }
}

/// TCP when unspecified.
fn protocol(v: i32) -> Result<Protocol, Problem> {
    match pb::Protocol::try_from(v) {
        Ok(pb::Protocol::Tcp | pb::Protocol::Unspecified) => Ok(Protocol::Tcp),
        Ok(pb::Protocol::Udp) => Ok(Protocol::Udp),
        Ok(pb::Protocol::Sctp) => Ok(Protocol::Sctp),
        Err(_) => Err(Problem::UnknownEnum(v)),
    }
}

/// Weighted least connection, the kernel's default, when unspecified.
fn scheduler(v: i32) -> Result<Scheduler, Problem> {
    match pb::Scheduler::try_from(v) {
        Ok(pb::Scheduler::Unspecified) => Ok(Scheduler::Wlc),
        Ok(wire) => SCHEDULERS
            .iter()
            .find(|(w, _)| *w == wire)
            .map(|(_, s)| s.clone())
            .ok_or(Problem::UnknownEnum(v)),
        Err(_) => Err(Problem::UnknownEnum(v)),
    }
}

/// A service's configuration; options left unset take the kernel's defaults.
pub fn service(s: &pb::Service) -> Result<Service, FieldError> {
    let key = nested(s.key.as_ref(), "key", service_key)?;
    let mut svc = Service::new(key, scheduler(s.scheduler).field("scheduler")?);
    let Some(o) = &s.options else {
        return Ok(svc);
    };
    svc.timeout = whole_seconds(o.persistence_timeout.as_ref())
        .field("persistence_timeout")
        .at("options")?;
    svc.flags = ServiceFlags::default()
        .with(ServiceFlags::PERSISTENT, svc.timeout > 0)
        .with(ServiceFlags::ONEPACKET, o.one_packet)
        .with(ServiceFlags::SCHED1, o.sched_flag_1)
        .with(ServiceFlags::SCHED2, o.sched_flag_2)
        .with(ServiceFlags::SCHED3, o.sched_flag_3);
    svc.netmask = netmask(key.family(), o).at("options")?;
    svc.pe_name = (!o.persistence_engine.is_empty()).then(|| o.persistence_engine.clone());
    Ok(svc)
}

/// Persistence granularity, as the kernel keeps it: an IPv4 netmask as a host-order integer,
/// or an IPv6 prefix length. Empty or zero is the kernel's default; IPv4 takes any netmask
/// ("0.0.0.0" makes one template for all clients), IPv6 a prefix length of 1..128.
fn netmask(family: Family, o: &pb::ServiceOptions) -> Result<u32, FieldError> {
    let other_family = |field: &str, family: &str| {
        FieldError::new(field, Problem::Invalid(format!("is for {family} services only")))
    };
    match family {
        Family::Inet => {
            if o.ipv6_prefix_length != 0 {
                return Err(other_family("ipv6_prefix_length", "IPv6"));
            }
            if o.ipv4_netmask.is_empty() {
                return Ok(default_netmask(family));
            }
            match o.ipv4_netmask.parse::<Ipv4Addr>() {
                Ok(mask) => Ok(u32::from(mask)),
                Err(_) => Err(FieldError::new(
                    "ipv4_netmask",
                    Problem::Invalid(format!("{} is not a netmask", quote(&o.ipv4_netmask))),
                )),
            }
        }
        Family::Inet6 => {
            if !o.ipv4_netmask.is_empty() {
                return Err(other_family("ipv4_netmask", "IPv4"));
            }
            match o.ipv6_prefix_length {
                0 => Ok(default_netmask(family)),
                v if v > 128 => Err(FieldError::new(
                    "ipv6_prefix_length",
                    Problem::TooLarge {
                        value: v.into(),
                        max: 128,
                    },
                )),
                v => Ok(v),
            }
        }
    }
}

/// Direct routing, the kernel's default, when unspecified.
fn forwarding(v: i32) -> Result<ForwardMethod, Problem> {
    match pb::ForwardingMethod::try_from(v) {
        Ok(pb::ForwardingMethod::Masquerade) => Ok(ForwardMethod::Masquerade),
        Ok(pb::ForwardingMethod::Local) => Ok(ForwardMethod::Local),
        Ok(pb::ForwardingMethod::Tunnel) => Ok(ForwardMethod::Tunnel),
        Ok(pb::ForwardingMethod::DirectRoute | pb::ForwardingMethod::Unspecified) => {
            Ok(ForwardMethod::DirectRoute)
        }
        Err(_) => Err(Problem::UnknownEnum(v)),
    }
}

/// A real server; an unset weight becomes ipvsadm's default, 1.
pub fn destination(d: &pb::Destination) -> Result<Destination, FieldError> {
    let (addr, port) = destination_address(d)?;
    let mut dest = Destination::new(addr, port);
    dest.forward = forwarding(d.forwarding).field("forwarding")?;
    if let Some(weight) = d.weight {
        if weight > MAX_WEIGHT {
            return Err(FieldError::new(
                "weight",
                Problem::TooLarge {
                    value: weight.into(),
                    max: MAX_WEIGHT.into(),
                },
            ));
        }
        dest.weight = weight;
    }
    dest.upper_threshold = d.upper_threshold;
    dest.lower_threshold = d.lower_threshold;
    dest.tunnel = optional(d.tunnel.as_ref(), "tunnel", tunnel)?.unwrap_or_default();
    Ok(dest)
}

fn tunnel(t: &pb::Tunnel) -> Result<Tunnel, FieldError> {
    let kind = match pb::TunnelType::try_from(t.r#type) {
        Ok(pb::TunnelType::Ipip | pb::TunnelType::Unspecified) => TunnelType::Ipip,
        Ok(pb::TunnelType::Gue) => TunnelType::Gue,
        Ok(pb::TunnelType::Gre) => TunnelType::Gre,
        Err(_) => return Err(FieldError::new("type", Problem::UnknownEnum(t.r#type))),
    };
    let checksum = match pb::TunnelChecksum::try_from(t.checksum) {
        Ok(pb::TunnelChecksum::None | pb::TunnelChecksum::Unspecified) => TunnelChecksum::None,
        Ok(pb::TunnelChecksum::Csum) => TunnelChecksum::Csum,
        Ok(pb::TunnelChecksum::Remcsum) => TunnelChecksum::RemCsum,
        Err(_) => {
            return Err(FieldError::new(
                "checksum",
                Problem::UnknownEnum(t.checksum),
            ));
        }
    };
    Ok(Tunnel {
        kind,
        port: u16_field(t.port).field("port")?,
        checksum,
    })
}

// ---- replies --------------------------------------------------------------------------------

fn family_to_proto(family: Family) -> pb::AddressFamily {
    match family {
        Family::Inet => pb::AddressFamily::Inet,
        Family::Inet6 => pb::AddressFamily::Inet6,
    }
}

pub fn key_to_proto(key: &ServiceKey) -> pb::ServiceKey {
    match *key {
        ServiceKey::Endpoint {
            protocol,
            addr,
            port,
        } => pb::ServiceKey {
            protocol: match protocol {
                Protocol::Tcp => pb::Protocol::Tcp,
                Protocol::Udp => pb::Protocol::Udp,
                Protocol::Sctp => pb::Protocol::Sctp,
            }
            .into(),
            address: addr.to_string(),
            port: port.into(),
            fwmark: 0,
            family: family_to_proto(Family::of(&addr)).into(),
        },
        ServiceKey::FwMark { mark, family } => pb::ServiceKey {
            fwmark: mark,
            family: family_to_proto(family).into(),
            ..pb::ServiceKey::default()
        },
    }
}

/// A scheduler the API does not name (a newer kernel's) reads as `SCHEDULER_UNSPECIFIED`.
pub fn scheduler_to_proto(s: &Scheduler) -> pb::Scheduler {
    SCHEDULERS
        .iter()
        .find(|(_, d)| d == s)
        .map_or(pb::Scheduler::Unspecified, |(w, _)| *w)
}

/// A service as the kernel reports it, with `dests` as its real servers.
pub fn service_to_proto(entry: &ServiceEntry, dests: &[DestinationEntry]) -> pb::Service {
    pb::Service {
        stats: Some(stats_to_proto(&entry.stats)),
        destinations: dests.iter().map(destination_to_proto).collect(),
        ..service_config_to_proto(&entry.service)
    }
}

/// A service's configuration alone: no counters, no real servers.
pub fn service_config_to_proto(svc: &Service) -> pb::Service {
    pb::Service {
        key: Some(key_to_proto(&svc.key)),
        scheduler: scheduler_to_proto(&svc.scheduler).into(),
        options: Some(pb::ServiceOptions {
            persistence_timeout: (svc.timeout > 0).then(|| seconds_to_proto(svc.timeout)),
            ipv4_netmask: match svc.key.family() {
                Family::Inet if svc.netmask != default_netmask(Family::Inet) => {
                    Ipv4Addr::from(svc.netmask).to_string()
                }
                _ => String::new(),
            },
            ipv6_prefix_length: match svc.key.family() {
                Family::Inet6 if svc.netmask != default_netmask(Family::Inet6) => svc.netmask,
                _ => 0,
            },
            one_packet: svc.flags.contains(ServiceFlags::ONEPACKET),
            sched_flag_1: svc.flags.contains(ServiceFlags::SCHED1),
            sched_flag_2: svc.flags.contains(ServiceFlags::SCHED2),
            sched_flag_3: svc.flags.contains(ServiceFlags::SCHED3),
            persistence_engine: svc.pe_name.clone().unwrap_or_default(),
        }),
        flags: svc.flags.0,
        stats: None,
        destinations: Vec::new(),
    }
}

pub fn destination_to_proto(entry: &DestinationEntry) -> pb::Destination {
    pb::Destination {
        active_connections: entry.active_conns,
        inactive_connections: entry.inactive_conns,
        persistent_connections: entry.persistent_conns,
        stats: Some(stats_to_proto(&entry.stats)),
        ..dest_config_to_proto(&entry.dest)
    }
}

/// A real server's configuration alone: no connection counts, no counters.
pub fn dest_config_to_proto(d: &Destination) -> pb::Destination {
    let tunnel = (d.forward == ForwardMethod::Tunnel).then(|| pb::Tunnel {
        r#type: match d.tunnel.kind {
            TunnelType::Ipip => pb::TunnelType::Ipip,
            TunnelType::Gue => pb::TunnelType::Gue,
            TunnelType::Gre => pb::TunnelType::Gre,
        }
        .into(),
        port: d.tunnel.port.into(),
        checksum: match d.tunnel.checksum {
            TunnelChecksum::None => pb::TunnelChecksum::None,
            TunnelChecksum::Csum => pb::TunnelChecksum::Csum,
            TunnelChecksum::RemCsum => pb::TunnelChecksum::Remcsum,
        }
        .into(),
    });
    pb::Destination {
        address: d.addr.to_string(),
        port: d.port.into(),
        forwarding: match d.forward {
            ForwardMethod::Masquerade => pb::ForwardingMethod::Masquerade,
            ForwardMethod::Local => pb::ForwardingMethod::Local,
            ForwardMethod::Tunnel => pb::ForwardingMethod::Tunnel,
            ForwardMethod::DirectRoute => pb::ForwardingMethod::DirectRoute,
        }
        .into(),
        weight: Some(d.weight),
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        tunnel,
        active_connections: 0,
        inactive_connections: 0,
        persistent_connections: 0,
        stats: None,
    }
}

pub fn stats_to_proto(s: &Stats) -> pb::Stats {
    pb::Stats {
        counters: Some(pb::Counters {
            connections: s.conns,
            in_packets: s.inpkts,
            out_packets: s.outpkts,
            in_bytes: s.inbytes,
            out_bytes: s.outbytes,
        }),
        rates: Some(pb::Rates {
            connections_per_second: s.cps,
            in_packets_per_second: s.inpps,
            out_packets_per_second: s.outpps,
            in_bytes_per_second: s.inbps,
            out_bytes_per_second: s.outbps,
        }),
    }
}

pub fn info_to_proto(info: &Info) -> pb::GetInfoResponse {
    pb::GetInfoResponse {
        version: info.version,
        connection_table_size: info.conn_tab_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(octets: &[u8]) -> Option<pb::IpAddress> {
        Some(pb::IpAddress {
            ip: Some(Ip::V4(octets.to_vec())),
        })
    }

    fn tcp_key(port: u32) -> pb::ServiceKey {
        pb::ServiceKey {
            key: Some(Key::Endpoint(pb::Endpoint {
                protocol: pb::Protocol::Tcp.into(),
                address: v4(&[192, 168, 100, 1]),
                port,
            })),
        }
    }

    fn domain_tcp(port: u16) -> ServiceKey {
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 168, 100, 1)),
            port,
        }
    }

    fn rr_service(key: pb::ServiceKey) -> pb::Service {
        pb::Service {
            key: Some(key),
            scheduler: pb::Scheduler::Rr.into(),
            ..Default::default()
        }
    }

    fn masq(port: u32) -> pb::Destination {
        pb::Destination {
            address: v4(&[127, 0, 0, 1]),
            port,
            forwarding: pb::ForwardingMethod::Masquerade.into(),
            ..Default::default()
        }
    }

    fn err(field: &str, problem: Problem) -> FieldError {
        FieldError::new(field, problem)
    }

    #[test]
    fn addresses() {
        let cases: Vec<(pb::IpAddress, Result<IpAddr, FieldError>)> = vec![
            (
                pb::IpAddress {
                    ip: Some(Ip::V4(vec![10, 0, 0, 1])),
                },
                Ok(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            ),
            (
                pb::IpAddress {
                    ip: Some(Ip::V6(Ipv6Addr::LOCALHOST.octets().to_vec())),
                },
                Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ),
            (pb::IpAddress { ip: None }, Err(err("", Problem::Missing))),
            (
                pb::IpAddress {
                    ip: Some(Ip::V4(vec![10, 0, 0])),
                },
                Err(err("v4", Problem::AddressLength(3))),
            ),
            (
                pb::IpAddress {
                    ip: Some(Ip::V4(vec![0; 16])),
                },
                Err(err("v4", Problem::AddressLength(16))),
            ),
            (
                pb::IpAddress {
                    ip: Some(Ip::V6(vec![0; 4])),
                },
                Err(err("v6", Problem::AddressLength(4))),
            ),
            (
                pb::IpAddress {
                    ip: Some(Ip::V6(Vec::new())),
                },
                Err(err("v6", Problem::AddressLength(0))),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ip_address(&input), want, "{input:?}");
        }
    }

    #[test]
    fn create_service_requests() {
        let with_key = |key: Option<Key>| pb::CreateServiceRequest {
            service: Some(rr_service(pb::ServiceKey { key })),
        };
        let endpoint = |protocol: i32, address: Option<pb::IpAddress>, port: u32| {
            with_key(Some(Key::Endpoint(pb::Endpoint {
                protocol,
                address,
                port,
            })))
        };
        let tcp = pb::Protocol::Tcp as i32;
        let with_service = |f: &dyn Fn(&mut pb::Service)| {
            let mut s = rr_service(tcp_key(80));
            f(&mut s);
            pb::CreateServiceRequest { service: Some(s) }
        };
        let with_options = |o: pb::ServiceOptions| with_service(&|s| s.options = Some(o.clone()));
        let persistent = |mut s: Service, timeout: u32, netmask: u32| {
            s.flags = s.flags.with(ServiceFlags::PERSISTENT, true);
            s.timeout = timeout;
            s.netmask = netmask;
            s
        };

        let v6_mark = ServiceKey::FwMark {
            mark: 1,
            family: Family::Inet6,
        };
        let v6_options = |netmask: Option<u32>| pb::CreateServiceRequest {
            service: Some(pb::Service {
                key: Some(pb::ServiceKey {
                    key: Some(Key::Fwmark(pb::FirewallMark {
                        mark: 1,
                        family: pb::AddressFamily::Inet6.into(),
                    })),
                }),
                scheduler: pb::Scheduler::Sh.into(),
                options: Some(pb::ServiceOptions {
                    persistence_timeout: 60,
                    netmask,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };

        let cases: Vec<(&str, pb::CreateServiceRequest, Result<Service, FieldError>)> = vec![
            (
                "minimal",
                with_service(&|_| {}),
                Ok(Service::new(domain_tcp(80), Scheduler::Rr)),
            ),
            (
                "no service",
                pb::CreateServiceRequest { service: None },
                Err(err("service", Problem::Missing)),
            ),
            (
                "no key",
                with_service(&|s| s.key = None),
                Err(err("service.key", Problem::Missing)),
            ),
            (
                "empty key",
                with_key(None),
                Err(err("service.key", Problem::Missing)),
            ),
            (
                "unspecified protocol",
                endpoint(0, v4(&[10, 0, 0, 1]), 80),
                Err(err(
                    "service.key.endpoint.protocol",
                    Problem::Unspecified("PROTOCOL_UNSPECIFIED"),
                )),
            ),
            (
                "unknown protocol",
                endpoint(9, v4(&[10, 0, 0, 1]), 80),
                Err(err(
                    "service.key.endpoint.protocol",
                    Problem::UnknownEnum(9),
                )),
            ),
            (
                "no address",
                endpoint(tcp, None, 80),
                Err(err("service.key.endpoint.address", Problem::Missing)),
            ),
            (
                "malformed address",
                endpoint(tcp, v4(&[10, 1, 0]), 80),
                Err(err(
                    "service.key.endpoint.address.v4",
                    Problem::AddressLength(3),
                )),
            ),
            (
                "port above 65535",
                endpoint(tcp, v4(&[10, 0, 0, 1]), 65536),
                Err(err(
                    "service.key.endpoint.port",
                    Problem::TooLarge {
                        value: 65536,
                        max: 65535,
                    },
                )),
            ),
            (
                "fwmark 0",
                with_key(Some(Key::Fwmark(pb::FirewallMark { mark: 0, family: 0 }))),
                Err(err("service.key.fwmark.mark", Problem::Zero)),
            ),
            (
                "fwmark of unknown family",
                with_key(Some(Key::Fwmark(pb::FirewallMark { mark: 1, family: 7 }))),
                Err(err("service.key.fwmark.family", Problem::UnknownEnum(7))),
            ),
            (
                "fwmark defaults to IPv4",
                with_key(Some(Key::Fwmark(pb::FirewallMark { mark: 7, family: 0 }))),
                Ok(Service::new(
                    ServiceKey::FwMark {
                        mark: 7,
                        family: Family::Inet,
                    },
                    Scheduler::Rr,
                )),
            ),
            (
                "IPv6 fwmark",
                with_key(Some(Key::Fwmark(pb::FirewallMark {
                    mark: 7,
                    family: pb::AddressFamily::Inet6.into(),
                }))),
                Ok(Service::new(
                    ServiceKey::FwMark {
                        mark: 7,
                        family: Family::Inet6,
                    },
                    Scheduler::Rr,
                )),
            ),
            (
                "unspecified scheduler",
                with_service(&|s| s.scheduler = 0),
                Err(err(
                    "service.scheduler",
                    Problem::Unspecified("SCHEDULER_UNSPECIFIED"),
                )),
            ),
            (
                "unknown scheduler",
                with_service(&|s| s.scheduler = 99),
                Err(err("service.scheduler", Problem::UnknownEnum(99))),
            ),
            (
                "real servers on create",
                with_service(&|s| s.destinations = vec![masq(8080)]),
                Err(err(
                    "service.destinations",
                    Problem::ReadOnly("add real servers with AddDestination"),
                )),
            ),
            (
                "persistent with a /24 granularity",
                with_options(pb::ServiceOptions {
                    persistence_timeout: 300,
                    netmask: Some(0xffff_ff00),
                    ..Default::default()
                }),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    300,
                    0xffff_ff00,
                )),
            ),
            (
                "an unset netmask is the default",
                with_options(pb::ServiceOptions {
                    persistence_timeout: 60,
                    ..Default::default()
                }),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    60,
                    u32::MAX,
                )),
            ),
            (
                "IPv4 netmask 0.0.0.0: one template for all clients",
                with_options(pb::ServiceOptions {
                    persistence_timeout: 60,
                    netmask: Some(0),
                    ..Default::default()
                }),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    60,
                    0,
                )),
            ),
            (
                "non-contiguous IPv4 netmask",
                with_options(pb::ServiceOptions {
                    persistence_timeout: 60,
                    netmask: Some(0xff00_ff00),
                    ..Default::default()
                }),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    60,
                    0xff00_ff00,
                )),
            ),
            (
                "unset IPv6 netmask is /128",
                v6_options(None),
                Ok(persistent(Service::new(v6_mark, Scheduler::Sh), 60, 128)),
            ),
            (
                "IPv6 prefix 1",
                v6_options(Some(1)),
                Ok(persistent(Service::new(v6_mark, Scheduler::Sh), 60, 1)),
            ),
            (
                "IPv6 prefix 0",
                v6_options(Some(0)),
                Err(err("service.options.netmask", Problem::Zero)),
            ),
            (
                "IPv6 prefix above 128",
                v6_options(Some(129)),
                Err(err(
                    "service.options.netmask",
                    Problem::TooLarge {
                        value: 129,
                        max: 128,
                    },
                )),
            ),
            (
                "flags and persistence engine",
                with_options(pb::ServiceOptions {
                    one_packet: true,
                    sched_flag_1: true,
                    sched_flag_2: true,
                    sched_flag_3: true,
                    persistence_engine: "sip".into(),
                    ..Default::default()
                }),
                Ok(Service {
                    flags: ServiceFlags(
                        ServiceFlags::ONEPACKET
                            | ServiceFlags::SCHED1
                            | ServiceFlags::SCHED2
                            | ServiceFlags::SCHED3,
                    ),
                    pe_name: Some("sip".into()),
                    ..Service::new(domain_tcp(80), Scheduler::Rr)
                }),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(create_service(&req), want, "{what}");
        }
    }

    #[test]
    fn every_scheduler_round_trips() {
        for (wire, domain) in SCHEDULERS {
            assert_eq!(scheduler(wire.into()), Ok(domain.clone()));
            assert_eq!(scheduler_to_proto(&domain), wire);
        }
        assert_eq!(
            scheduler_to_proto(&Scheduler::Other("new".into())),
            pb::Scheduler::Unspecified
        );
    }

    #[test]
    fn destination_requests() {
        let add = |d: pb::Destination| pb::AddDestinationRequest {
            service: Some(tcp_key(80)),
            destination: Some(d),
        };
        let with = |f: &dyn Fn(&mut pb::Destination)| {
            let mut d = masq(8081);
            f(&mut d);
            add(d)
        };
        let want = |f: &dyn Fn(&mut Destination), weight_given: bool| {
            let mut dest = Destination::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
            dest.forward = ForwardMethod::Masquerade;
            f(&mut dest);
            Ok(DestinationChange {
                service: domain_tcp(80),
                dest,
                weight_given,
            })
        };
        let tunnel = |t: pb::Tunnel| {
            with(&|d| {
                d.forwarding = pb::ForwardingMethod::Tunnel.into();
                d.tunnel = Some(t);
            })
        };
        let cases: Vec<(
            &str,
            pb::AddDestinationRequest,
            Result<DestinationChange, FieldError>,
        )> = vec![
            ("weight unset is 1", with(&|_| {}), want(&|_| {}, false)),
            (
                "weight 0 quiesces",
                with(&|d| d.weight = Some(0)),
                want(&|d| d.weight = 0, true),
            ),
            (
                "weight 65535",
                with(&|d| d.weight = Some(65535)),
                want(&|d| d.weight = 65535, true),
            ),
            (
                "weight above 65535",
                with(&|d| d.weight = Some(65536)),
                Err(err(
                    "destination.weight",
                    Problem::TooLarge {
                        value: 65536,
                        max: 65535,
                    },
                )),
            ),
            (
                "no service key",
                pb::AddDestinationRequest {
                    service: None,
                    destination: Some(masq(1)),
                },
                Err(err("service", Problem::Missing)),
            ),
            (
                "no destination",
                pb::AddDestinationRequest {
                    service: Some(tcp_key(80)),
                    destination: None,
                },
                Err(err("destination", Problem::Missing)),
            ),
            (
                "no address",
                with(&|d| d.address = None),
                Err(err("destination.address", Problem::Missing)),
            ),
            (
                "malformed address",
                with(&|d| {
                    d.address = Some(pb::IpAddress {
                        ip: Some(Ip::V6(vec![1, 2, 3])),
                    })
                }),
                Err(err("destination.address.v6", Problem::AddressLength(3))),
            ),
            (
                "port above 65535",
                with(&|d| d.port = 70000),
                Err(err(
                    "destination.port",
                    Problem::TooLarge {
                        value: 70000,
                        max: 65535,
                    },
                )),
            ),
            (
                "unspecified forwarding",
                with(&|d| d.forwarding = 0),
                Err(err(
                    "destination.forwarding",
                    Problem::Unspecified("FORWARDING_METHOD_UNSPECIFIED"),
                )),
            ),
            (
                "unknown forwarding",
                with(&|d| d.forwarding = 5),
                Err(err("destination.forwarding", Problem::UnknownEnum(5))),
            ),
            (
                "thresholds",
                with(&|d| {
                    d.upper_threshold = 100;
                    d.lower_threshold = 10;
                }),
                want(
                    &|d| {
                        d.upper_threshold = 100;
                        d.lower_threshold = 10;
                    },
                    false,
                ),
            ),
            (
                "GUE tunnel",
                tunnel(pb::Tunnel {
                    r#type: pb::TunnelType::Gue.into(),
                    port: 6080,
                    checksum: pb::TunnelChecksum::Remcsum.into(),
                }),
                want(
                    &|d| {
                        d.forward = ForwardMethod::Tunnel;
                        d.tunnel = Tunnel {
                            kind: TunnelType::Gue,
                            port: 6080,
                            checksum: TunnelChecksum::RemCsum,
                        };
                    },
                    false,
                ),
            ),
            (
                "tunnel port above 65535",
                tunnel(pb::Tunnel {
                    r#type: pb::TunnelType::Gue.into(),
                    port: 65536,
                    checksum: 0,
                }),
                Err(err(
                    "destination.tunnel.port",
                    Problem::TooLarge {
                        value: 65536,
                        max: 65535,
                    },
                )),
            ),
            (
                "unknown tunnel type",
                tunnel(pb::Tunnel {
                    r#type: 3,
                    port: 0,
                    checksum: 0,
                }),
                Err(err("destination.tunnel.type", Problem::UnknownEnum(3))),
            ),
            (
                "unknown tunnel checksum",
                tunnel(pb::Tunnel {
                    r#type: 0,
                    port: 0,
                    checksum: 3,
                }),
                Err(err("destination.tunnel.checksum", Problem::UnknownEnum(3))),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(add_destination(&req), want, "{what}");
        }
    }

    #[test]
    fn update_destination_keeps_the_weight_unless_given() {
        let req = |weight| pb::UpdateDestinationRequest {
            service: Some(tcp_key(80)),
            destination: Some(pb::Destination {
                weight,
                ..masq(8081)
            }),
        };
        assert_eq!(
            update_destination(&req(None)).map(|c| c.weight_given),
            Ok(false)
        );
        assert_eq!(
            update_destination(&req(Some(3))).map(|c| (c.weight_given, c.dest.weight)),
            Ok((true, 3))
        );
    }

    #[test]
    fn delete_destination_requests() {
        let req = |address, port| pb::DeleteDestinationRequest {
            service: Some(tcp_key(80)),
            address,
            port,
        };
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            delete_destination(&req(v4(&[127, 0, 0, 1]), 8081)),
            Ok((domain_tcp(80), lo, 8081))
        );
        assert_eq!(
            delete_destination(&req(None, 8081)),
            Err(err("address", Problem::Missing))
        );
        assert_eq!(
            delete_destination(&req(v4(&[127, 0, 0, 1]), 65536)),
            Err(err(
                "port",
                Problem::TooLarge {
                    value: 65536,
                    max: 65535
                }
            ))
        );
    }

    #[test]
    fn messages_name_the_field() {
        let req = pb::CreateServiceRequest {
            service: Some(rr_service(pb::ServiceKey {
                key: Some(Key::Endpoint(pb::Endpoint {
                    protocol: pb::Protocol::Tcp.into(),
                    address: v4(&[10, 1, 0]),
                    port: 80,
                })),
            })),
        };
        assert_eq!(
            create_service(&req).map_err(|e| e.to_string()),
            Err(
                "invalid service.key.endpoint.address.v4: must be 4 bytes (IPv4) or 16 bytes (IPv6), got 3"
                    .to_owned()
            )
        );
        let req = pb::CreateServiceRequest {
            service: Some(pb::Service {
                scheduler: 0,
                ..rr_service(tcp_key(80))
            }),
        };
        assert_eq!(
            create_service(&req).map_err(|e| e.to_string()),
            Err(
                "invalid service.scheduler: must be set (SCHEDULER_UNSPECIFIED is not a choice)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn every_netmask_reads_back_as_written() {
        let v4 = domain_tcp(80);
        let v6 = ServiceKey::FwMark {
            mark: 7,
            family: Family::Inet6,
        };
        for (key, mask) in [
            (v4, 0),
            (v4, 0xffff_ff00),
            (v4, 0xff00_ff00),
            (v4, u32::MAX),
            (v6, 1),
            (v6, 64),
            (v6, 128),
        ] {
            let mut svc = Service::new(key, Scheduler::Rr);
            svc.netmask = mask;
            let wire = service_config_to_proto(&svc);
            assert_eq!(wire.options.as_ref().and_then(|o| o.netmask), Some(mask));
            assert_eq!(service(&wire), Ok(svc), "{key:?} {mask:#x}");
        }
    }

    #[test]
    fn services_read_back_as_written() {
        let mut svc = Service::new(
            ServiceKey::Endpoint {
                protocol: Protocol::Udp,
                addr: "2001:db8::1".parse().expect("test address"),
                port: 53,
            },
            Scheduler::Sh,
        );
        svc.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1);
        svc.timeout = 120;
        svc.netmask = 64;
        svc.pe_name = Some("sip".into());
        let mut dest = Destination::new("2001:db8::2".parse().expect("test address"), 53);
        dest.forward = ForwardMethod::Tunnel;
        dest.tunnel = Tunnel {
            kind: TunnelType::Gre,
            port: 0,
            checksum: TunnelChecksum::Csum,
        };
        dest.weight = 7;
        let entry = ServiceEntry {
            service: svc.clone(),
            stats: Stats {
                conns: 6,
                inbytes: 1 << 40,
                ..Stats::default()
            },
        };
        let dest_entry = DestinationEntry {
            dest,
            active_conns: 1,
            inactive_conns: 2,
            persistent_conns: 3,
            stats: Stats {
                conns: 3,
                ..Stats::default()
            },
        };
        let wire = service_to_proto(&entry, std::slice::from_ref(&dest_entry));
        assert_eq!(service(&wire), Ok(svc));
        assert_eq!(wire.flags, 0x9);
        assert_eq!(
            wire.stats
                .and_then(|s| s.counters)
                .map(|c| (c.connections, c.in_bytes)),
            Some((6, 1 << 40))
        );
        let [d] = wire.destinations.as_slice() else {
            panic!("one destination expected: {:?}", wire.destinations);
        };
        assert_eq!(destination(d), Ok(dest));
        assert_eq!(
            (
                d.active_connections,
                d.inactive_connections,
                d.persistent_connections
            ),
            (1, 2, 3)
        );
    }

    #[test]
    fn keys_round_trip() {
        let keys = [
            domain_tcp(80),
            ServiceKey::Endpoint {
                protocol: Protocol::Sctp,
                addr: "::1".parse().expect("test address"),
                port: 9,
            },
            ServiceKey::FwMark {
                mark: 42,
                family: Family::Inet6,
            },
        ];
        for key in keys {
            assert_eq!(service_key(&key_to_proto(&key)), Ok(key));
        }
    }
}
