//! A `NodeSpec` as a node file document, with defaults left out so an exported file holds
//! only what differs from ipvsadm's defaults. Services are read through ipvsctl's listing
//! view ([`ServiceView`]), so scheduler flags, netmasks and forwarding methods are named as
//! `ipvsadm -L` names them.

use std::net::{IpAddr, SocketAddr};

use ipvs_proto::v1 as pb;

use super::document::{
    AttachmentEntry, CheckEntry, ChecksumWord, DnsEntry, DnsWord, DriftWord, Empty, ExecEntry,
    FailureWord, FamilyWord, ForwardWord, GrpcEntry, HealthWord, HttpEntry, LinkEntry, ModeWord,
    NodeFile, ServerEntry, ServiceEntry, SorryEntry, TunnelEntry, TunnelWord, UdpEntry,
};
use super::error::Invalid;
use super::scalar::{OneOrMany, Params, Scalar};
use super::text;
use crate::durations;
use crate::ipvsadm::command::ServiceKey;
use crate::ipvsadm::parse::DEFAULT_SCHEDULER;
use crate::ipvsadm::resolve::L4;
use crate::ipvsadm::view::{
    Checksum, DestView, Family, Forwarding, ServiceView, TunnelKind, TunnelView,
};

/// The whole spec as a document.
pub fn node(spec: &pb::NodeSpec) -> Result<NodeFile, Invalid> {
    // Each check goes to its service, found by key.
    let mut keys = Vec::new();
    for (i, s) in spec.services.iter().enumerate() {
        keys.push(
            text::key_from_pb(s.key.as_ref())
                .map_err(|r| Invalid::new(format!("services[{i}]"), r))?,
        );
    }
    let mut checks: Vec<Vec<(usize, &pb::CheckSpec)>> = vec![Vec::new(); keys.len()];
    for (k, c) in spec.checks.iter().enumerate() {
        let key = text::key_from_pb(c.service.as_ref())
            .map_err(|r| Invalid::new(format!("checks[{k}].service"), r))?;
        let Some(i) = keys.iter().position(|s| *s == key) else {
            return Err(Invalid::new(
                format!("checks[{k}].service"),
                format!(
                    "{} is not a service of the spec",
                    text::reference_text(&key)
                ),
            ));
        };
        if let Some(list) = checks.get_mut(i) {
            list.push((k, c));
        }
    }
    Ok(NodeFile {
        drift: match pb::DriftMode::try_from(spec.drift) {
            Ok(pb::DriftMode::Report) => Some(DriftWord::Report),
            Ok(pb::DriftMode::Enforce) => Some(DriftWord::Enforce),
            _ => None,
        },
        links: spec
            .links
            .iter()
            .map(|l| LinkEntry {
                name: l.name.clone(),
                addresses: l.addresses.iter().map(prefix_text).collect(),
            })
            .collect(),
        services: spec
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let own = checks.get(i).map(Vec::as_slice).unwrap_or_default();
                service(&format!("services[{i}]"), s, own)
            })
            .collect::<Result<_, _>>()?,
        attachments: spec
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| attachment(&format!("attachments[{i}]"), a))
            .collect::<Result<_, _>>()?,
    })
}

/// `ADDR/LEN`, as the node file writes an address; length 0 is the whole address.
fn prefix_text(p: &pb::Prefix) -> String {
    match p.address.parse::<IpAddr>() {
        Ok(addr) if p.prefix_length == 0 => {
            format!("{addr}/{}", ipvs_types::max_prefix_len(addr))
        }
        Ok(addr) => format!("{addr}/{}", p.prefix_length),
        // Not an address: written as sent, for the reader of the file to see.
        Err(_) => format!("{}/{}", p.address, p.prefix_length),
    }
}

fn service(
    at: &str,
    s: &pb::Service,
    checks: &[(usize, &pb::CheckSpec)],
) -> Result<ServiceEntry, Invalid> {
    let key = text::key_from_pb(s.key.as_ref()).map_err(|r| Invalid::new(at, r))?;
    let view = ServiceView::from_pb(s).map_err(|e| Invalid::new(at, e.to_string()))?;
    if view.scheduler.is_empty() {
        return Err(Invalid::new(
            format!("{at}.scheduler"),
            format!("scheduler {} is unknown to this ipvsctl", s.scheduler),
        ));
    }
    let o = s.options.clone().unwrap_or_default();
    let timeout = durations::secs(o.persistence_timeout.as_ref());
    let mut entry = ServiceEntry {
        scheduler: (view.scheduler != DEFAULT_SCHEDULER).then(|| view.scheduler.clone()),
        persistent: (timeout > 0).then(|| Scalar::Int(timeout.into())),
        netmask: view.netmask.as_ref().map(|m| match view.family {
            Family::Inet => Scalar::Text(m.clone()),
            // The view prints the prefix length as a number already.
            Family::Inet6 => m
                .parse()
                .map_or_else(|_| Scalar::Text(m.clone()), Scalar::Int),
        }),
        one_packet: o.one_packet,
        sched_flags: sched_flag_words(&view.scheduler, &o),
        pe: (!o.persistence_engine.is_empty()).then(|| o.persistence_engine.clone()),
        ..Default::default()
    };
    let service_port = match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let t = Some(text::endpoint_text(addr, port));
            match protocol {
                L4::Tcp => entry.tcp = t,
                L4::Udp => entry.udp = t,
                L4::Sctp => entry.sctp = t,
            }
            port
        }
        ServiceKey::Fwmark { mark, ipv6 } => {
            entry.fwmark = Some(mark);
            entry.family = ipv6.then_some(FamilyWord::Inet6);
            0
        }
    };
    entry.servers = view
        .destinations
        .iter()
        .enumerate()
        .map(|(j, d)| server(&format!("{at}.servers[{j}]"), service_port, d))
        .collect::<Result<_, _>>()?;
    // The service's default check, then each server's own.
    for (k, c) in checks {
        let path = format!("checks[{k}]");
        let twice = |what: String| Invalid::new(path.clone(), format!("a second check of {what}"));
        if c.server.is_empty() {
            if entry.check.is_some() {
                return Err(twice(format!("service {at}")));
            }
            entry.check = Some(check(&path, c)?);
            entry.sorry_server = c
                .sorry_server
                .as_ref()
                .map(|d| sorry(&format!("{path}.sorry_server"), service_port, d))
                .transpose()?;
            entry.quorum = (c.quorum != 0).then_some(c.quorum);
            continue;
        }
        let target: Option<SocketAddr> = c.server.parse().ok();
        let Some(j) = view
            .destinations
            .iter()
            .position(|d| Some(SocketAddr::new(d.address, d.port)) == target)
        else {
            return Err(Invalid::new(
                format!("{path}.server"),
                format!("{} is not a real server of {at}", c.server),
            ));
        };
        if c.sorry_server.is_some() || c.quorum != 0 {
            return Err(Invalid::new(
                path,
                "a server's own check has no sorry server or quorum",
            ));
        }
        let Some(e) = entry.servers.get_mut(j) else {
            continue;
        };
        if e.check.is_some() {
            return Err(twice(format!("{at}.servers[{j}]")));
        }
        e.check = Some(Box::new(check(&path, c)?));
    }
    Ok(entry)
}

/// A sorry server as written: just its address when the rest is the default.
fn sorry(at: &str, service_port: u16, d: &pb::Destination) -> Result<SorryEntry, Invalid> {
    let view = DestView::from_pb(d).map_err(|e| Invalid::new(at, e.to_string()))?;
    let e = server(at, service_port, &view)?;
    let plain = e.forward.is_none()
        && e.weight.is_none()
        && e.upper.is_none()
        && e.lower.is_none()
        && e.tunnel.is_none();
    Ok(if plain {
        SorryEntry::Address(e.address)
    } else {
        SorryEntry::Server(e)
    })
}

fn duration_text(d: Option<&prost_types::Duration>) -> Option<Scalar> {
    match durations::millis(d) {
        0 => None,
        ms => Some(Scalar::Text(text::interval_text(ms))),
    }
}

fn utf8(at: &str, bytes: &[u8]) -> Result<String, Invalid> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Invalid::new(at, "is not text (the node file holds UTF-8 text only)"))
}

fn tls_fields(t: Option<&pb::TlsOptions>) -> (Option<String>, bool, Option<String>) {
    let t = t.cloned().unwrap_or_default();
    (
        (!t.sni.is_empty()).then_some(t.sni),
        t.skip_verify,
        (!t.ca_file.is_empty()).then_some(t.ca_file),
    )
}

fn status_range(r: &pb::StatusRange) -> Scalar {
    if r.first == r.last {
        Scalar::Int(r.first.into())
    } else {
        Scalar::Text(format!("{}-{}", r.first, r.last))
    }
}

/// A check as a `check:` (its service, server, sorry server and quorum are the caller's).
fn check(at: &str, c: &pb::CheckSpec) -> Result<CheckEntry, Invalid> {
    use pb::check_spec::Kind;
    let mut entry = CheckEntry::default();
    match &c.kind {
        None => return Err(Invalid::new(at, "says no kind of check")),
        Some(Kind::Tcp(_)) => entry.tcp = Some(Empty {}),
        Some(Kind::Http(h)) => {
            let (sni, skip_verify, ca_file) = tls_fields(h.tls.as_ref());
            let http = HttpEntry {
                method: (!h.method.is_empty()).then(|| h.method.clone()),
                path: (!h.path.is_empty()).then(|| h.path.clone()),
                host: (!h.host.is_empty()).then(|| h.host.clone()),
                expect: OneOrMany(h.expect.iter().map(status_range).collect()),
                body: (!h.body_contains.is_empty()).then(|| h.body_contains.clone()),
                body_regex: (!h.body_regex.is_empty()).then(|| h.body_regex.clone()),
                sni,
                skip_verify,
                ca_file,
            };
            if h.tls.is_some() {
                entry.https = Some(http);
            } else {
                entry.http = Some(http);
            }
        }
        Some(Kind::Udp(u)) => {
            entry.udp = Some(UdpEntry {
                send: (!u.send.is_empty())
                    .then(|| utf8(&format!("{at}.udp.send"), &u.send))
                    .transpose()?,
                expect: u
                    .expect
                    .as_ref()
                    .map(|e| utf8(&format!("{at}.udp.expect"), e))
                    .transpose()?,
            })
        }
        Some(Kind::Dns(d)) => {
            entry.dns = Some(DnsEntry {
                name: d.name.clone(),
                kind: match pb::DnsType::try_from(d.r#type) {
                    Ok(pb::DnsType::Unspecified) => None,
                    Ok(pb::DnsType::A) => Some(DnsWord::A),
                    Ok(pb::DnsType::Aaaa) => Some(DnsWord::Aaaa),
                    Err(_) => {
                        return Err(Invalid::new(
                            format!("{at}.dns.type"),
                            format!("{} is unknown to this ipvsctl", d.r#type),
                        ));
                    }
                },
                expect: d.expect.clone(),
            })
        }
        Some(Kind::Grpc(g)) => {
            let (sni, skip_verify, ca_file) = tls_fields(g.tls.as_ref());
            entry.grpc = Some(GrpcEntry {
                service: (!g.service.is_empty()).then(|| g.service.clone()),
                tls: g.tls.is_some(),
                sni,
                skip_verify,
                ca_file,
            })
        }
        Some(Kind::Exec(e)) => {
            entry.exec = Some(ExecEntry {
                command: e.command.clone(),
            })
        }
    }
    entry.interval = duration_text(c.interval.as_ref());
    entry.timeout = duration_text(c.timeout.as_ref());
    entry.jitter = duration_text(c.jitter.as_ref());
    entry.rise = (c.rise != 0).then_some(c.rise);
    entry.fall = (c.fall != 0).then_some(c.fall);
    entry.initial = match pb::HealthState::try_from(c.initial) {
        Ok(pb::HealthState::Unspecified) => None,
        Ok(pb::HealthState::Up) => Some(HealthWord::Up),
        Ok(pb::HealthState::Down) => Some(HealthWord::Down),
        Err(_) => {
            return Err(Invalid::new(
                format!("{at}.initial"),
                format!("{} is unknown to this ipvsctl", c.initial),
            ));
        }
    };
    entry.connect_ip = (!c.connect_ip.is_empty()).then(|| c.connect_ip.clone());
    entry.connect_port = (c.connect_port != 0).then_some(c.connect_port);
    entry.on_failure = match pb::FailureAction::try_from(c.on_failure) {
        Ok(pb::FailureAction::Unspecified) => None,
        Ok(pb::FailureAction::Quiesce) => Some(FailureWord::Quiesce),
        Ok(pb::FailureAction::Remove) => Some(FailureWord::Remove),
        Err(_) => {
            return Err(Invalid::new(
                format!("{at}.on_failure"),
                format!("{} is unknown to this ipvsctl", c.on_failure),
            ));
        }
    };
    Ok(entry)
}

/// The `-b` words for the flags set: sh and mh name their first two flags, as ipvsadm
/// prints them; any other flag is `flag-N`.
fn sched_flag_words(scheduler: &str, o: &pb::ServiceOptions) -> Vec<String> {
    let named = matches!(scheduler, "sh" | "mh");
    [
        (o.sched_flag_1, "fallback", "flag-1"),
        (o.sched_flag_2, "port", "flag-2"),
        (o.sched_flag_3, "", "flag-3"),
    ]
    .iter()
    .filter(|(set, _, _)| *set)
    .map(|(_, name, plain)| {
        if named && !name.is_empty() {
            format!("{scheduler}-{name}")
        } else {
            (*plain).to_string()
        }
    })
    .collect()
}

fn tunnel(t: &TunnelView) -> Option<TunnelEntry> {
    let checksum = match t.checksum {
        Checksum::None => None,
        Checksum::Csum => Some(ChecksumWord::Csum),
        Checksum::Remcsum => Some(ChecksumWord::Remcsum),
    };
    let kind = match t.kind {
        // Plain IP-in-IP is what a tunnel server without settings gets.
        TunnelKind::Ipip if checksum.is_none() => return None,
        TunnelKind::Ipip => TunnelWord::Ipip,
        TunnelKind::Gue => TunnelWord::Gue,
        TunnelKind::Gre => TunnelWord::Gre,
    };
    Some(TunnelEntry {
        kind,
        port: t.port,
        checksum,
    })
}

fn server(at: &str, service_port: u16, d: &DestView) -> Result<ServerEntry, Invalid> {
    let forward = match d.forwarding {
        Forwarding::Route => None,
        Forwarding::Masq => Some(ForwardWord::Masq),
        Forwarding::Tunnel => Some(ForwardWord::Tunnel),
        Forwarding::Local => Some(ForwardWord::Local),
        Forwarding::Unknown => {
            return Err(Invalid::new(
                format!("{at}.forward"),
                "forwarding method unknown to this ipvsctl",
            ));
        }
    };
    // A fwmark service's servers usually carry no port: write the bare address then.
    let address = if d.port == 0 && service_port == 0 {
        d.address.to_string()
    } else {
        text::endpoint_text(d.address, d.port)
    };
    Ok(ServerEntry {
        address,
        forward,
        weight: (d.weight != 1).then_some(d.weight),
        upper: (d.upper_threshold != 0).then_some(d.upper_threshold),
        lower: (d.lower_threshold != 0).then_some(d.lower_threshold),
        tunnel: d.tunnel.as_ref().and_then(tunnel),
        check: None,
    })
}

fn attachment(at: &str, a: &pb::AttachmentSpec) -> Result<AttachmentEntry, Invalid> {
    let services = a
        .services
        .iter()
        .enumerate()
        .map(|(j, k)| {
            text::key_from_pb(Some(k))
                .map(|k| text::reference_text(&k))
                .map_err(|r| Invalid::new(format!("{at}.services[{j}]"), r))
        })
        .collect::<Result<_, _>>()?;
    Ok(AttachmentEntry {
        policy: a.policy.clone(),
        services,
        params: Params(
            a.params
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        ),
        interval: match durations::millis(a.interval.as_ref()) {
            0 => None,
            ms => Some(Scalar::Text(text::interval_text(ms))),
        },
        mode: match pb::PolicyMode::try_from(a.mode) {
            Ok(pb::PolicyMode::Enforce) => Some(ModeWord::Enforce),
            Ok(pb::PolicyMode::DryRun) => Some(ModeWord::DryRun),
            _ => None,
        },
        quarantine_after: (a.quarantine_after != 0).then_some(a.quarantine_after),
    })
}
