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
    ValidationError, default_netmask,
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
            FieldError::new(
                field,
                Problem::Invalid("must be unset for a fwmark service".into()),
            )
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
    if let Some(family) = family
        && family != Family::of(&addr)
    {
        return Err(FieldError::new(
            "family",
            Problem::Invalid(format!("does not match the address {}", quote(&k.address))),
        ));
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
        FieldError::new(
            field,
            Problem::Invalid(format!("is for {family} services only")),
        )
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

/// The field an ipvsadm rule refused, relative to the `Service` or `Destination` message it
/// was checked in, so that a refusal by the rules names its field as a parse error does.
pub fn rule_field(e: &ValidationError) -> Option<&'static str> {
    use ValidationError as V;
    Some(match e {
        V::UnknownScheduler(_) => "scheduler",
        V::ZeroFwMark => "key.fwmark",
        V::ZeroPortNotPersistent => "key.port",
        V::OnePacketProtocol => "options.one_packet",
        V::PersistenceTimeout => "options.persistence_timeout",
        V::Netmask(_) => "options.ipv4_netmask",
        V::PersistenceEngine(_) => "options.persistence_engine",
        V::Weight(_) => "weight",
        V::Thresholds { .. } => "lower_threshold",
        V::MixedFamily => "address",
        V::GuePortMissing => "tunnel.port",
        V::GreRemoteChecksum => "tunnel.checksum",
        V::TunnelOptionsWithoutType => "tunnel.type",
        V::TunnelOptionsWithoutTunnel => "forwarding",
        V::OutOfRange { .. } | V::Missing(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: &str = "192.168.100.1";

    fn key(protocol: pb::Protocol, address: &str, port: u32) -> pb::ServiceKey {
        pb::ServiceKey {
            protocol: protocol.into(),
            address: address.into(),
            port,
            ..Default::default()
        }
    }

    fn tcp_key(port: u32) -> pb::ServiceKey {
        key(pb::Protocol::Tcp, VIP, port)
    }

    fn fwmark_key(fwmark: u32, family: pb::AddressFamily) -> pb::ServiceKey {
        pb::ServiceKey {
            fwmark,
            family: family.into(),
            ..Default::default()
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
            address: "127.0.0.1".into(),
            port,
            forwarding: pb::ForwardingMethod::Masquerade.into(),
            ..Default::default()
        }
    }

    fn err(field: &str, problem: Problem) -> FieldError {
        FieldError::new(field, problem)
    }

    fn not_an_address(s: &str) -> Problem {
        Problem::NotAnAddress(quote(s))
    }

    fn invalid(message: &str) -> Problem {
        Problem::Invalid(message.into())
    }

    fn seconds(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn create_service_requests() {
        let with_key = |key: pb::ServiceKey| pb::CreateServiceRequest {
            service: Some(rr_service(key)),
        };
        let tcp = pb::Protocol::Tcp;
        let with_service = |f: &dyn Fn(&mut pb::Service)| {
            let mut s = rr_service(tcp_key(80));
            f(&mut s);
            pb::CreateServiceRequest { service: Some(s) }
        };
        let with_family = |mut k: pb::ServiceKey, family: i32| {
            k.family = family;
            with_key(k)
        };
        let with_options = |o: pb::ServiceOptions| with_service(&|s| s.options = Some(o.clone()));
        let persistent = |mut s: Service, timeout: u32, netmask: u32| {
            s.flags = s.flags.with(ServiceFlags::PERSISTENT, true);
            s.timeout = timeout;
            s.netmask = netmask;
            s
        };
        let rr = |key: ServiceKey| Ok(Service::new(key, Scheduler::Rr));
        let mark = |mark: u32, family: Family| ServiceKey::FwMark { mark, family };
        let v6_key = ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: "2001:db8::1".parse().expect("test address"),
            port: 80,
        };
        let unused = || invalid("must be unset for a fwmark service");
        let garbage = "x".repeat(4096);

        let v6_mark = mark(1, Family::Inet6);
        let v6_options = |prefix_length: u32| pb::CreateServiceRequest {
            service: Some(pb::Service {
                key: Some(fwmark_key(1, pb::AddressFamily::Inet6)),
                scheduler: pb::Scheduler::Sh.into(),
                options: Some(pb::ServiceOptions {
                    persistence_timeout: seconds(60, 0),
                    ipv6_prefix_length: prefix_length,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let timeout = |d: Option<prost_types::Duration>| {
            with_options(pb::ServiceOptions {
                persistence_timeout: d,
                ..Default::default()
            })
        };

        let cases: Vec<(&str, pb::CreateServiceRequest, Result<Service, FieldError>)> = vec![
            ("minimal", with_service(&|_| {}), rr(domain_tcp(80))),
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
                "empty key: no fwmark, so an address is required",
                with_key(pb::ServiceKey::default()),
                Err(err("service.key.address", Problem::Missing)),
            ),
            (
                "unspecified protocol is TCP",
                with_key(key(pb::Protocol::Unspecified, VIP, 80)),
                rr(domain_tcp(80)),
            ),
            (
                "unknown protocol",
                with_key(pb::ServiceKey {
                    protocol: 9,
                    ..tcp_key(80)
                }),
                Err(err("service.key.protocol", Problem::UnknownEnum(9))),
            ),
            (
                "no address",
                with_key(key(tcp, "", 80)),
                Err(err("service.key.address", Problem::Missing)),
            ),
            (
                "unparsable address",
                with_key(key(tcp, "10.1.0", 80)),
                Err(err("service.key.address", not_an_address("10.1.0"))),
            ),
            (
                "an address with a prefix is not an address",
                with_key(key(tcp, "10.1.0.1/32", 80)),
                Err(err("service.key.address", not_an_address("10.1.0.1/32"))),
            ),
            (
                "an address with spaces is not an address",
                with_key(key(tcp, " 10.1.0.1", 80)),
                Err(err("service.key.address", not_an_address(" 10.1.0.1"))),
            ),
            (
                "a 4 KB garbage address is quoted short",
                with_key(key(tcp, &garbage, 80)),
                Err(err(
                    "service.key.address",
                    Problem::NotAnAddress(format!("{:?}... (4096 bytes)", &garbage[..48])),
                )),
            ),
            (
                "port above 65535",
                with_key(tcp_key(65536)),
                Err(err(
                    "service.key.port",
                    Problem::TooLarge {
                        value: 65536,
                        max: 65535,
                    },
                )),
            ),
            (
                "IPv6 address",
                with_key(key(tcp, "2001:db8::1", 80)),
                rr(v6_key),
            ),
            (
                "a family that matches the address",
                with_family(tcp_key(80), pb::AddressFamily::Inet.into()),
                rr(domain_tcp(80)),
            ),
            (
                "an IPv6 family that matches the address",
                with_family(key(tcp, "2001:db8::1", 80), pb::AddressFamily::Inet6.into()),
                rr(v6_key),
            ),
            (
                "IPv6 family, IPv4 address",
                with_family(tcp_key(80), pb::AddressFamily::Inet6.into()),
                Err(err(
                    "service.key.family",
                    invalid("does not match the address \"192.168.100.1\""),
                )),
            ),
            (
                "IPv4 family, IPv6 address",
                with_family(key(tcp, "2001:db8::1", 80), pb::AddressFamily::Inet.into()),
                Err(err(
                    "service.key.family",
                    invalid("does not match the address \"2001:db8::1\""),
                )),
            ),
            (
                "unknown family of an address service",
                with_family(tcp_key(80), 7),
                Err(err("service.key.family", Problem::UnknownEnum(7))),
            ),
            (
                "fwmark 0 is no fwmark: an address is required",
                with_key(fwmark_key(0, pb::AddressFamily::Inet6)),
                Err(err("service.key.address", Problem::Missing)),
            ),
            (
                "fwmark of unknown family",
                with_family(fwmark_key(1, pb::AddressFamily::Unspecified), 7),
                Err(err("service.key.family", Problem::UnknownEnum(7))),
            ),
            (
                "fwmark defaults to IPv4",
                with_key(fwmark_key(7, pb::AddressFamily::Unspecified)),
                rr(mark(7, Family::Inet)),
            ),
            (
                "IPv4 fwmark",
                with_key(fwmark_key(7, pb::AddressFamily::Inet)),
                rr(mark(7, Family::Inet)),
            ),
            (
                "IPv6 fwmark",
                with_key(fwmark_key(7, pb::AddressFamily::Inet6)),
                rr(mark(7, Family::Inet6)),
            ),
            (
                "fwmark with a protocol",
                with_key(pb::ServiceKey {
                    fwmark: 7,
                    protocol: tcp.into(),
                    ..Default::default()
                }),
                Err(err("service.key.protocol", unused())),
            ),
            (
                "fwmark with an address",
                with_key(pb::ServiceKey {
                    fwmark: 7,
                    address: VIP.into(),
                    ..Default::default()
                }),
                Err(err("service.key.address", unused())),
            ),
            (
                "fwmark with an unparsable address",
                with_key(pb::ServiceKey {
                    fwmark: 7,
                    address: "nonsense".into(),
                    ..Default::default()
                }),
                Err(err("service.key.address", unused())),
            ),
            (
                "fwmark with a port",
                with_key(pb::ServiceKey {
                    fwmark: 7,
                    port: 80,
                    ..Default::default()
                }),
                Err(err("service.key.port", unused())),
            ),
            (
                "unspecified scheduler is wlc",
                with_service(&|s| s.scheduler = 0),
                Ok(Service::new(domain_tcp(80), Scheduler::Wlc)),
            ),
            (
                "unknown scheduler",
                with_service(&|s| s.scheduler = 99),
                Err(err("service.scheduler", Problem::UnknownEnum(99))),
            ),
            (
                "persistent with a /24 granularity",
                with_options(pb::ServiceOptions {
                    persistence_timeout: seconds(300, 0),
                    ipv4_netmask: "255.255.255.0".into(),
                    ..Default::default()
                }),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    300,
                    0xffff_ff00,
                )),
            ),
            (
                "an empty netmask is the default",
                timeout(seconds(60, 0)),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    60,
                    u32::MAX,
                )),
            ),
            (
                "IPv4 netmask 0.0.0.0: one template for all clients",
                with_options(pb::ServiceOptions {
                    persistence_timeout: seconds(60, 0),
                    ipv4_netmask: "0.0.0.0".into(),
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
                    persistence_timeout: seconds(60, 0),
                    ipv4_netmask: "255.0.255.0".into(),
                    ..Default::default()
                }),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    60,
                    0xff00_ff00,
                )),
            ),
            (
                "a prefix length is not an IPv4 netmask",
                with_options(pb::ServiceOptions {
                    ipv4_netmask: "24".into(),
                    ..Default::default()
                }),
                Err(err(
                    "service.options.ipv4_netmask",
                    invalid("\"24\" is not a netmask"),
                )),
            ),
            (
                "an IPv6 prefix length on an IPv4 service",
                with_options(pb::ServiceOptions {
                    ipv6_prefix_length: 64,
                    ..Default::default()
                }),
                Err(err(
                    "service.options.ipv6_prefix_length",
                    invalid("is for IPv6 services only"),
                )),
            ),
            (
                "an IPv4 netmask on an IPv6 service",
                pb::CreateServiceRequest {
                    service: Some(pb::Service {
                        options: Some(pb::ServiceOptions {
                            ipv4_netmask: "255.255.255.0".into(),
                            ..Default::default()
                        }),
                        ..rr_service(key(tcp, "2001:db8::1", 80))
                    }),
                },
                Err(err(
                    "service.options.ipv4_netmask",
                    invalid("is for IPv4 services only"),
                )),
            ),
            (
                "a zero persistence timeout is not persistent",
                timeout(seconds(0, 0)),
                rr(domain_tcp(80)),
            ),
            (
                "the longest persistence timeout",
                timeout(seconds(u32::MAX.into(), 0)),
                Ok(persistent(
                    Service::new(domain_tcp(80), Scheduler::Rr),
                    u32::MAX,
                    u32::MAX,
                )),
            ),
            (
                "a fractional persistence timeout",
                timeout(seconds(1, 500_000_000)),
                Err(err(
                    "service.options.persistence_timeout",
                    invalid("1.500s is not a whole number of seconds"),
                )),
            ),
            (
                "a persistence timeout under a second",
                timeout(seconds(0, 1)),
                Err(err(
                    "service.options.persistence_timeout",
                    invalid("0.000000001s is not a whole number of seconds"),
                )),
            ),
            (
                "a negative persistence timeout",
                timeout(seconds(-1, 0)),
                Err(err(
                    "service.options.persistence_timeout",
                    invalid("-1s is not a non-negative duration"),
                )),
            ),
            (
                "a persistence timeout above u32",
                timeout(seconds(1 << 32, 0)),
                Err(err(
                    "service.options.persistence_timeout",
                    Problem::TooLarge {
                        value: 1 << 32,
                        max: u32::MAX.into(),
                    },
                )),
            ),
            (
                "IPv6 prefix length 0 is /128",
                v6_options(0),
                Ok(persistent(Service::new(v6_mark, Scheduler::Sh), 60, 128)),
            ),
            (
                "IPv6 prefix length 1",
                v6_options(1),
                Ok(persistent(Service::new(v6_mark, Scheduler::Sh), 60, 1)),
            ),
            (
                "IPv6 prefix length 128",
                v6_options(128),
                Ok(persistent(Service::new(v6_mark, Scheduler::Sh), 60, 128)),
            ),
            (
                "IPv6 prefix length above 128",
                v6_options(129),
                Err(err(
                    "service.options.ipv6_prefix_length",
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
            let got = create_service(&req).map(|(svc, dests)| {
                assert_eq!(dests, [], "{what}");
                svc
            });
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn create_service_takes_real_servers_inline() {
        let with_dests = |dests: Vec<pb::Destination>| pb::CreateServiceRequest {
            service: Some(pb::Service {
                destinations: dests,
                ..rr_service(tcp_key(80))
            }),
        };
        let masq_dest = |port: u16, weight: u32| Destination {
            forward: ForwardMethod::Masquerade,
            weight,
            ..Destination::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        };
        let svc = Service::new(domain_tcp(80), Scheduler::Rr);
        type Parsed = Result<(Service, Vec<Destination>), FieldError>;
        let cases: Vec<(&str, pb::CreateServiceRequest, Parsed)> = vec![
            ("none", with_dests(vec![]), Ok((svc.clone(), vec![]))),
            (
                "two, in order, an unset weight 1",
                with_dests(vec![
                    masq(8080),
                    pb::Destination {
                        weight: Some(0),
                        ..masq(8081)
                    },
                ]),
                Ok((svc.clone(), vec![masq_dest(8080, 1), masq_dest(8081, 0)])),
            ),
            (
                "an unset forwarding method is direct routing",
                with_dests(vec![pb::Destination {
                    forwarding: 0,
                    ..masq(80)
                }]),
                Ok((
                    svc.clone(),
                    vec![Destination::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80)],
                )),
            ),
            (
                "a bad one is named by its index",
                with_dests(vec![
                    masq(8080),
                    pb::Destination {
                        weight: Some(70000),
                        ..masq(8081)
                    },
                ]),
                Err(err(
                    "service.destinations[1].weight",
                    Problem::TooLarge {
                        value: 70000,
                        max: 65535,
                    },
                )),
            ),
            (
                "an unparsable address",
                with_dests(vec![pb::Destination {
                    address: "127.0.0.1:80".into(),
                    ..masq(80)
                }]),
                Err(err(
                    "service.destinations[0].address",
                    not_an_address("127.0.0.1:80"),
                )),
            ),
            (
                "no address",
                with_dests(vec![pb::Destination {
                    address: String::new(),
                    ..masq(80)
                }]),
                Err(err("service.destinations[0].address", Problem::Missing)),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(create_service(&req), want, "{what}");
        }
    }

    #[test]
    fn update_service_requests() {
        let with = |f: &dyn Fn(&mut pb::Service)| {
            let mut s = rr_service(tcp_key(80));
            f(&mut s);
            pb::UpdateServiceRequest { service: Some(s) }
        };
        let cases: Vec<(&str, pb::UpdateServiceRequest, Result<Service, FieldError>)> = vec![
            (
                "the whole configuration",
                with(&|_| {}),
                Ok(Service::new(domain_tcp(80), Scheduler::Rr)),
            ),
            (
                "unspecified scheduler is wlc",
                with(&|s| s.scheduler = 0),
                Ok(Service::new(domain_tcp(80), Scheduler::Wlc)),
            ),
            (
                "no service",
                pb::UpdateServiceRequest { service: None },
                Err(err("service", Problem::Missing)),
            ),
            (
                "real servers are not changed here",
                with(&|s| s.destinations = vec![masq(8080)]),
                Err(err(
                    "service.destinations",
                    Problem::ReadOnly("change real servers with UpdateDestination"),
                )),
            ),
            (
                "key fields are checked as on create",
                with(&|s| s.key = Some(key(pb::Protocol::Tcp, "10.1.0", 80))),
                Err(err("service.key.address", not_an_address("10.1.0"))),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(update_service(&req), want, "{what}");
        }
    }

    #[test]
    fn every_scheduler_round_trips() {
        for (wire, domain) in SCHEDULERS {
            assert_eq!(scheduler(wire.into()), Ok(domain.clone()));
            assert_eq!(scheduler_to_proto(&domain), wire);
        }
        assert_eq!(scheduler(0), Ok(Scheduler::Wlc));
        assert_eq!(scheduler(15), Err(Problem::UnknownEnum(15)));
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
        let want_tunnel = |t: Tunnel| {
            want(
                &|d| {
                    d.forward = ForwardMethod::Tunnel;
                    d.tunnel = t;
                },
                false,
            )
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
                "a bad service key",
                pb::AddDestinationRequest {
                    service: Some(key(pb::Protocol::Udp, "", 53)),
                    destination: Some(masq(1)),
                },
                Err(err("service.address", Problem::Missing)),
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
                with(&|d| d.address.clear()),
                Err(err("destination.address", Problem::Missing)),
            ),
            (
                "unparsable address",
                with(&|d| d.address = "1:2:3".into()),
                Err(err("destination.address", not_an_address("1:2:3"))),
            ),
            (
                "IPv6 address",
                with(&|d| d.address = "2001:db8::2".into()),
                want(
                    &|d| d.addr = "2001:db8::2".parse().expect("test address"),
                    false,
                ),
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
                "unspecified forwarding is direct routing",
                with(&|d| d.forwarding = 0),
                want(&|d| d.forward = ForwardMethod::DirectRoute, false),
            ),
            (
                "direct routing",
                with(&|d| d.forwarding = pb::ForwardingMethod::DirectRoute.into()),
                want(&|d| d.forward = ForwardMethod::DirectRoute, false),
            ),
            (
                "local",
                with(&|d| d.forwarding = pb::ForwardingMethod::Local.into()),
                want(&|d| d.forward = ForwardMethod::Local, false),
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
                want_tunnel(Tunnel {
                    kind: TunnelType::Gue,
                    port: 6080,
                    checksum: TunnelChecksum::RemCsum,
                }),
            ),
            (
                "GRE tunnel with checksums",
                tunnel(pb::Tunnel {
                    r#type: pb::TunnelType::Gre.into(),
                    port: 0,
                    checksum: pb::TunnelChecksum::Csum.into(),
                }),
                want_tunnel(Tunnel {
                    kind: TunnelType::Gre,
                    port: 0,
                    checksum: TunnelChecksum::Csum,
                }),
            ),
            (
                "explicit IPIP, no checksum",
                tunnel(pb::Tunnel {
                    r#type: pb::TunnelType::Ipip.into(),
                    port: 0,
                    checksum: pb::TunnelChecksum::None.into(),
                }),
                want_tunnel(Tunnel {
                    kind: TunnelType::Ipip,
                    port: 0,
                    checksum: TunnelChecksum::None,
                }),
            ),
            (
                "unspecified tunnel type and checksum are IPIP without checksum",
                tunnel(pb::Tunnel::default()),
                want_tunnel(Tunnel {
                    kind: TunnelType::Ipip,
                    port: 0,
                    checksum: TunnelChecksum::None,
                }),
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
                    r#type: 4,
                    port: 0,
                    checksum: 0,
                }),
                Err(err("destination.tunnel.type", Problem::UnknownEnum(4))),
            ),
            (
                "unknown tunnel checksum",
                tunnel(pb::Tunnel {
                    r#type: 0,
                    port: 0,
                    checksum: 4,
                }),
                Err(err("destination.tunnel.checksum", Problem::UnknownEnum(4))),
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
        let req = |address: &str, port| pb::DeleteDestinationRequest {
            service: Some(tcp_key(80)),
            destination: Some(pb::Destination {
                address: address.into(),
                port,
                ..Default::default()
            }),
        };
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        type Parsed = Result<(ServiceKey, IpAddr, u16), FieldError>;
        let cases: Vec<(&str, pb::DeleteDestinationRequest, Parsed)> = vec![
            (
                "address and port",
                req("127.0.0.1", 8081),
                Ok((domain_tcp(80), lo, 8081)),
            ),
            (
                "the rest of the real server is not read",
                pb::DeleteDestinationRequest {
                    service: Some(tcp_key(80)),
                    destination: Some(pb::Destination {
                        weight: Some(70000),
                        forwarding: 99,
                        tunnel: Some(pb::Tunnel {
                            r#type: 99,
                            ..Default::default()
                        }),
                        ..masq(8081)
                    }),
                },
                Ok((domain_tcp(80), lo, 8081)),
            ),
            (
                "IPv6",
                req("2001:db8::2", 53),
                Ok((domain_tcp(80), "2001:db8::2".parse().expect("v6"), 53)),
            ),
            (
                "no service",
                pb::DeleteDestinationRequest {
                    service: None,
                    ..req("127.0.0.1", 8081)
                },
                Err(err("service", Problem::Missing)),
            ),
            (
                "no destination",
                pb::DeleteDestinationRequest {
                    destination: None,
                    ..req("127.0.0.1", 8081)
                },
                Err(err("destination", Problem::Missing)),
            ),
            (
                "no address",
                req("", 8081),
                Err(err("destination.address", Problem::Missing)),
            ),
            (
                "unparsable address",
                req("localhost", 8081),
                Err(err("destination.address", not_an_address("localhost"))),
            ),
            (
                "port above 65535",
                req("127.0.0.1", 65536),
                Err(err(
                    "destination.port",
                    Problem::TooLarge {
                        value: 65536,
                        max: 65535,
                    },
                )),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(delete_destination(&req), want, "{what}");
        }
    }

    #[test]
    fn messages_name_the_field() {
        let create = |key: pb::ServiceKey| {
            create_service(&pb::CreateServiceRequest {
                service: Some(rr_service(key)),
            })
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            create(key(pb::Protocol::Tcp, "10.1.0", 80)),
            Err(r#"invalid service.key.address: "10.1.0" is not an IP address"#.to_owned())
        );
        assert_eq!(
            create(pb::ServiceKey {
                family: pb::AddressFamily::Inet6.into(),
                ..tcp_key(80)
            }),
            Err(
                r#"invalid service.key.family: does not match the address "192.168.100.1""#
                    .to_owned()
            )
        );
        assert_eq!(
            create(pb::ServiceKey {
                port: 80,
                ..fwmark_key(1, pb::AddressFamily::Inet)
            }),
            Err("invalid service.key.port: must be unset for a fwmark service".to_owned())
        );
        // A hostile value is quoted short: 48 bytes of it, escaped, whatever was sent.
        let garbage = "\u{7f}".repeat(4096);
        let message = create(key(pb::Protocol::Tcp, &garbage, 80)).expect_err("garbage");
        let quoted = format!("{:?}", &garbage[..48]);
        assert_eq!(
            message,
            format!("invalid service.key.address: {quoted}... (4096 bytes) is not an IP address")
        );
        assert!(message.len() < 400, "{} bytes", message.len());
    }

    #[test]
    fn every_netmask_reads_back_as_written() {
        let v4 = domain_tcp(80);
        let v6 = ServiceKey::FwMark {
            mark: 7,
            family: Family::Inet6,
        };
        // What a reply says: the default is left empty (IPv4) or 0 (IPv6).
        for (key, mask, ipv4_netmask, ipv6_prefix_length) in [
            (v4, 0, "0.0.0.0", 0),
            (v4, 0xffff_ff00, "255.255.255.0", 0),
            (v4, 0xff00_ff00, "255.0.255.0", 0),
            (v4, u32::MAX, "", 0),
            (v6, 1, "", 1),
            (v6, 64, "", 64),
            (v6, 128, "", 0),
        ] {
            let mut svc = Service::new(key, Scheduler::Rr);
            svc.netmask = mask;
            let wire = service_config_to_proto(&svc);
            let options = wire.options.clone().expect("options");
            assert_eq!(
                (options.ipv4_netmask.as_str(), options.ipv6_prefix_length),
                (ipv4_netmask, ipv6_prefix_length),
                "{key:?} {mask:#x}"
            );
            assert_eq!(service(&wire), Ok(svc), "{key:?} {mask:#x}");
        }
    }

    #[test]
    fn persistence_timeouts_read_back_as_written() {
        for (timeout, wire_timeout) in [(0, None), (1, seconds(1, 0)), (3600, seconds(3600, 0))] {
            let mut svc = Service::new(domain_tcp(80), Scheduler::Rr);
            svc.flags = svc.flags.with(ServiceFlags::PERSISTENT, timeout > 0);
            svc.timeout = timeout;
            let wire = service_config_to_proto(&svc);
            assert_eq!(
                wire.options.as_ref().map(|o| o.persistence_timeout),
                Some(wire_timeout),
                "{timeout}"
            );
            assert_eq!(service(&wire), Ok(svc), "{timeout}");
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
            wire.key.as_ref().map(|k| (k.address.as_str(), k.family)),
            Some(("2001:db8::1", pb::AddressFamily::Inet6.into()))
        );
        assert_eq!(
            wire.options.as_ref().map(|o| o.persistence_timeout),
            Some(seconds(120, 0))
        );
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
        assert_eq!(d.address, "2001:db8::2");
        assert_eq!(
            d.tunnel,
            Some(pb::Tunnel {
                r#type: pb::TunnelType::Gre.into(),
                port: 0,
                checksum: pb::TunnelChecksum::Csum.into(),
            })
        );
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
        let cases = [
            (
                domain_tcp(80),
                pb::ServiceKey {
                    family: pb::AddressFamily::Inet.into(),
                    ..tcp_key(80)
                },
            ),
            (
                ServiceKey::Endpoint {
                    protocol: Protocol::Sctp,
                    addr: "::1".parse().expect("test address"),
                    port: 9,
                },
                pb::ServiceKey {
                    family: pb::AddressFamily::Inet6.into(),
                    ..key(pb::Protocol::Sctp, "::1", 9)
                },
            ),
            (
                ServiceKey::FwMark {
                    mark: 42,
                    family: Family::Inet6,
                },
                fwmark_key(42, pb::AddressFamily::Inet6),
            ),
            (
                ServiceKey::FwMark {
                    mark: 42,
                    family: Family::Inet,
                },
                fwmark_key(42, pb::AddressFamily::Inet),
            ),
        ];
        for (key, wire) in cases {
            assert_eq!(key_to_proto(&key), wire, "{key:?}");
            assert_eq!(service_key(&wire), Ok(key));
        }
    }

    #[test]
    fn replies_write_addresses_canonically() {
        let wire = key(pb::Protocol::Udp, "2001:0DB8:0000::0001", 53);
        let key = service_key(&wire).expect("key");
        assert_eq!(key_to_proto(&key).address, "2001:db8::1");
        let dest = destination(&pb::Destination {
            address: "::FFFF:10.0.0.1".into(),
            ..masq(80)
        })
        .expect("destination");
        assert_eq!(dest_config_to_proto(&dest).address, "::ffff:10.0.0.1");
    }
}
