//! A `NodeSpec` as a node file document, with defaults left out so an exported file holds
//! only what differs from ipvsadm's defaults. Services are read through ipvsctl's listing
//! view ([`ServiceView`]), so scheduler flags, netmasks and forwarding methods are named as
//! `ipvsadm -L` names them.

use std::net::IpAddr;

use ipvs_proto::v1 as pb;

use super::document::{
    AttachmentEntry, ChecksumWord, DriftWord, FamilyWord, ForwardWord, LinkEntry, ModeWord,
    NodeFile, ServerEntry, ServiceEntry, TunnelEntry, TunnelWord,
};
use super::error::Invalid;
use super::scalar::{Params, Scalar};
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
            .map(|(i, s)| service(&format!("services[{i}]"), s))
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

fn service(at: &str, s: &pb::Service) -> Result<ServiceEntry, Invalid> {
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
