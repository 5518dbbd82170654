//! A node file document into a `NodeSpec`, checked with ipvsadm's rules so that a bad file is
//! refused here, naming the place (`services[2].servers[0].weight`), before the agent sees it.
//!
//! Services and real servers are built the way ipvsadm's command line builds them (through
//! [`ServiceSpec`] and [`DestSpec`]), so every word means what the ipvsadm option means: no
//! scheduler is `wlc`, `persistent: true` is `-p` alone (360 s), a netmask of
//! 255.255.255.255 (or /128) is the default, a real server without a port takes the service's,
//! and direct-routing and tunnel servers always take the service's port.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ipvs_proto::v1 as pb;
use ipvs_types::{Cidr, LinkName};

use super::document::{
    AttachmentEntry, CheckEntry, ChecksumWord, DnsWord, DriftWord, FailureWord, FamilyWord,
    ForwardWord, HealthWord, HttpEntry, LinkEntry, ModeWord, NodeFile, ServerEntry, ServiceEntry,
    SorryEntry, TunnelEntry, TunnelWord,
};
use super::error::Invalid;
use super::scalar::Scalar;
use super::text;
use crate::durations;
use crate::ipvsadm::command::{
    DestSpec, Forward, Netmask, SchedFlags, ServiceKey, ServiceSpec, Tunnel, TunnelChecksum,
    TunnelType,
};
use crate::ipvsadm::parse::DEFAULT_SCHEDULER;
use crate::ipvsadm::request;
use crate::ipvsadm::resolve::L4;

/// ipvsadm's `MAX_TIMEOUT` for `-p`: 31 days.
const MAX_PERSISTENT: i64 = 86400 * 31;
/// ipvsadm's timeout for `-p` without a value.
const DEFAULT_PERSISTENT: u32 = 360;
/// ipvsadm's highest weight.
const MAX_WEIGHT: u32 = 65535;
/// ipvsadm's highest connection threshold (`-x`, `-y`).
const MAX_THRESHOLD: u32 = i32::MAX as u32;
/// The kernel's schedulers, as the error for an unknown one lists them.
const SCHEDULERS: &str = "rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos";

/// ipvsadm's `-b` words: the flag each sets and the scheduler it belongs to.
const SCHED_FLAGS: &[(&str, u8, Option<&str>)] = &[
    ("flag-1", 1, None),
    ("flag-2", 2, None),
    ("flag-3", 3, None),
    ("sh-fallback", 1, Some("sh")),
    ("sh-port", 2, Some("sh")),
    ("mh-fallback", 1, Some("mh")),
    ("mh-port", 2, Some("mh")),
];

fn out_of_range(path: String, value: impl std::fmt::Display, range: &str) -> Invalid {
    Invalid::new(path, format!("{value} is out of range {range}"))
}

/// The whole document, checked: the first problem found is the error.
pub fn node(doc: &NodeFile) -> Result<pb::NodeSpec, Invalid> {
    let links = links(&doc.links)?;
    // Where each key was declared: a scan per service would grow with the square of the file.
    let mut declared_at: HashMap<ServiceKey, usize> = HashMap::new();
    let mut services = Vec::new();
    let mut checks = Vec::new();
    for (i, entry) in doc.services.iter().enumerate() {
        let (key, svc) = service(&format!("services[{i}]"), entry, &mut checks)?;
        if let Some(&j) = declared_at.get(&key) {
            return Err(Invalid::new(
                format!("services[{i}]"),
                format!(
                    "{} is already declared at services[{j}]",
                    text::reference_text(&key)
                ),
            ));
        }
        declared_at.insert(key, i);
        services.push(svc);
    }
    let attachments = doc
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| attachment(&format!("attachments[{i}]"), a, &declared_at))
        .collect::<Result<_, _>>()?;
    Ok(pb::NodeSpec {
        links,
        services,
        attachments,
        drift: match doc.drift {
            None => pb::DriftMode::Unspecified,
            Some(DriftWord::Report) => pb::DriftMode::Report,
            Some(DriftWord::Enforce) => pb::DriftMode::Enforce,
        }
        .into(),
        checks,
    })
}

/// `ADDR/LEN`, or a bare address for a host route, as `ip addr add` reads it. Length 0 is
/// refused: the API reads a prefix length of 0 as the host route.
fn cidr(text: &str) -> Result<Cidr, String> {
    let bad = || format!("invalid address `{text}' (expected ADDR/LEN)");
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len = match len {
        None => ipvs_types::max_prefix_len(addr),
        Some(l) => l.parse::<u8>().map_err(|_| bad())?,
    };
    if len == 0 {
        return Err(format!(
            "prefix length 0 is not supported (the agent reads 0 as /{})",
            ipvs_types::max_prefix_len(addr)
        ));
    }
    Cidr::new(addr, len).map_err(|e| e.to_string())
}

fn links(entries: &[LinkEntry]) -> Result<Vec<pb::LinkSpec>, Invalid> {
    let mut out: Vec<pb::LinkSpec> = Vec::new();
    // Every address with where it was declared: one address belongs to one link.
    let mut seen: Vec<(Cidr, String)> = Vec::new();
    for (i, l) in entries.iter().enumerate() {
        let at = format!("links[{i}]");
        LinkName::new(l.name.clone())
            .map_err(|e| Invalid::new(format!("{at}.name"), e.to_string()))?;
        if let Some(j) = out.iter().position(|o| o.name == l.name) {
            return Err(Invalid::new(
                format!("{at}.name"),
                format!("link {} is already declared at links[{j}]", l.name),
            ));
        }
        let mut addresses = Vec::new();
        for (j, a) in l.addresses.iter().enumerate() {
            let path = format!("{at}.addresses[{j}]");
            let c = cidr(a).map_err(|r| Invalid::new(path.clone(), r))?;
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == c) {
                return Err(Invalid::new(
                    path,
                    format!("{c} is already declared at {first}"),
                ));
            }
            seen.push((c, path));
            addresses.push(pb::Prefix {
                address: c.address().to_string(),
                prefix_length: u32::from(c.prefix_len()),
            });
        }
        out.push(pb::LinkSpec {
            name: l.name.clone(),
            addresses,
        });
    }
    Ok(out)
}

/// The service's key from whichever of tcp/udp/sctp/fwmark is given.
fn service_key(at: &str, s: &ServiceEntry) -> Result<ServiceKey, Invalid> {
    let given: Vec<&str> = [
        ("tcp", s.tcp.is_some()),
        ("udp", s.udp.is_some()),
        ("sctp", s.sctp.is_some()),
        ("fwmark", s.fwmark.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    match given.as_slice() {
        [] => {
            return Err(Invalid::new(at, "needs one of tcp, udp, sctp or fwmark"));
        }
        [_] => {}
        [a, b, ..] => {
            return Err(Invalid::new(
                at,
                format!("has both {a} and {b}; a service has one key"),
            ));
        }
    }
    let addr_key = |field: &str, protocol: L4, text: &str| {
        if s.family.is_some() {
            return Err(Invalid::new(
                format!("{at}.family"),
                "is only for fwmark services (an address has its own family)",
            ));
        }
        let (addr, port) =
            text::endpoint(text).map_err(|r| Invalid::new(format!("{at}.{field}"), r))?;
        Ok(ServiceKey::Addr {
            protocol,
            addr,
            port,
        })
    };
    match (&s.tcp, &s.udp, &s.sctp, s.fwmark) {
        (Some(t), _, _, _) => addr_key("tcp", L4::Tcp, t),
        (_, Some(u), _, _) => addr_key("udp", L4::Udp, u),
        (_, _, Some(c), _) => addr_key("sctp", L4::Sctp, c),
        (_, _, _, Some(0)) => Err(Invalid::new(format!("{at}.fwmark"), "must be above 0")),
        (_, _, _, Some(mark)) => Ok(ServiceKey::Fwmark {
            mark,
            ipv6: s.family == Some(FamilyWord::Inet6),
        }),
        (None, None, None, None) => Err(Invalid::new(at, "needs one of tcp, udp, sctp or fwmark")),
    }
}

fn is_ipv6(key: &ServiceKey) -> bool {
    match key {
        ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
        ServiceKey::Fwmark { ipv6, .. } => *ipv6,
    }
}

/// The field that holds the key, for errors about the key.
fn key_field(key: &ServiceKey) -> &'static str {
    match key {
        ServiceKey::Addr {
            protocol: L4::Tcp, ..
        } => "tcp",
        ServiceKey::Addr {
            protocol: L4::Udp, ..
        } => "udp",
        ServiceKey::Addr {
            protocol: L4::Sctp, ..
        } => "sctp",
        ServiceKey::Fwmark { .. } => "fwmark",
    }
}

/// `-p`: seconds, or `true` for ipvsadm's default.
fn persistent(path: String, value: Option<&Scalar>) -> Result<Option<u32>, Invalid> {
    match value {
        None | Some(Scalar::Bool(false)) => Ok(None),
        Some(Scalar::Bool(true)) => Ok(Some(DEFAULT_PERSISTENT)),
        Some(Scalar::Int(n)) => u32::try_from(*n)
            .ok()
            .filter(|n| (1..=MAX_PERSISTENT).contains(&i64::from(*n)))
            .map(Some)
            .ok_or_else(|| out_of_range(path, n, &format!("1..{MAX_PERSISTENT}"))),
        Some(Scalar::Text(t)) => Err(Invalid::new(
            path,
            format!("expected a number of seconds or true, not `{t}'"),
        )),
    }
}

/// `-M`: a dotted mask for IPv4 services, a prefix length for IPv6 ones; the family's full
/// mask is the default.
fn netmask(path: String, ipv6: bool, value: Option<&Scalar>) -> Result<Option<Netmask>, Invalid> {
    let Some(value) = value else {
        return Ok(None);
    };
    if ipv6 {
        let prefix = match value {
            Scalar::Int(n) => Some(*n),
            Scalar::Text(t) => t.parse::<i64>().ok(),
            Scalar::Bool(_) => None,
        };
        return match prefix.and_then(|p| u8::try_from(p).ok()) {
            Some(128) => Ok(None),
            Some(p @ 1..=127) => Ok(Some(Netmask::V6Prefix(p))),
            _ => Err(Invalid::new(
                path,
                format!("`{value}' is not an IPv6 prefix length (1..128)"),
            )),
        };
    }
    let mask = match value {
        Scalar::Text(t) => t.parse::<Ipv4Addr>().ok().map(u32::from),
        Scalar::Int(_) | Scalar::Bool(_) => None,
    };
    match mask {
        Some(u32::MAX) => Ok(None),
        Some(m) => Ok(Some(Netmask::V4(m))),
        None => Err(Invalid::new(
            path,
            format!("`{value}' is not an IPv4 netmask (e.g. 255.255.255.0)"),
        )),
    }
}

/// `-b`: each word sets one flag, and the sh/mh words only go with their scheduler.
fn sched_flags(at: &str, scheduler: &str, words: &[String]) -> Result<SchedFlags, Invalid> {
    let mut flags = SchedFlags::default();
    for (j, word) in words.iter().enumerate() {
        let path = format!("{at}.sched-flags[{j}]");
        let Some((_, bit, needs)) = SCHED_FLAGS.iter().find(|(w, _, _)| w == word) else {
            let known: Vec<&str> = SCHED_FLAGS.iter().map(|(w, _, _)| *w).collect();
            return Err(Invalid::new(
                path,
                format!("unknown scheduler flag `{word}' ({})", known.join(", ")),
            ));
        };
        if let Some(needs) = needs.filter(|s| *s != scheduler) {
            return Err(Invalid::new(
                path,
                format!("`{word}' is a flag of scheduler {needs}, not {scheduler}"),
            ));
        }
        match bit {
            1 => flags.flag_1 = true,
            2 => flags.flag_2 = true,
            _ => flags.flag_3 = true,
        }
    }
    Ok(flags)
}

fn service(
    at: &str,
    s: &ServiceEntry,
    checks: &mut Vec<pb::CheckSpec>,
) -> Result<(ServiceKey, pb::Service), Invalid> {
    let key = service_key(at, s)?;
    let scheduler = s.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER);
    if request::scheduler(scheduler).is_none() {
        return Err(Invalid::new(
            format!("{at}.scheduler"),
            format!("unknown scheduler `{scheduler}' ({SCHEDULERS})"),
        ));
    }
    let persistent = persistent(format!("{at}.persistent"), s.persistent.as_ref())?;
    if let ServiceKey::Addr { port: 0, .. } = key
        && persistent.is_none()
    {
        return Err(Invalid::new(
            format!("{at}.{}", key_field(&key)),
            "port 0 is only for persistent services",
        ));
    }
    let netmask = netmask(format!("{at}.netmask"), is_ipv6(&key), s.netmask.as_ref())?;
    if s.one_packet
        && matches!(
            key,
            ServiceKey::Addr {
                protocol: L4::Tcp | L4::Sctp,
                ..
            }
        )
    {
        return Err(Invalid::new(
            format!("{at}.one-packet"),
            "is only for UDP and fwmark services",
        ));
    }
    let flags = sched_flags(at, scheduler, &s.sched_flags)?;
    if s.pe.as_deref() == Some("") {
        return Err(Invalid::new(format!("{at}.pe"), "is empty"));
    }
    let spec = ServiceSpec {
        key,
        scheduler: scheduler.to_string(),
        persistent,
        netmask,
        one_packet: s.one_packet,
        sched_flags: flags,
        persistence_engine: s.pe.clone(),
    };
    let mut svc = request::service(&spec).map_err(|r| Invalid::new(at, r))?;
    let pb_key = request::service_key(&key);
    let mut default_check = match &s.check {
        Some(c) => Some(check(&format!("{at}.check"), c)?),
        None => {
            for (field, given) in [
                ("sorry-server", s.sorry_server.is_some()),
                ("quorum", s.quorum.is_some()),
            ] {
                if given {
                    return Err(Invalid::new(
                        format!("{at}.{field}"),
                        "is only for a service with a check of its own (check: on the service)",
                    ));
                }
            }
            None
        }
    };
    let mut server_checks = Vec::new();
    let mut seen: Vec<(IpAddr, u32)> = Vec::new();
    for (j, entry) in s.servers.iter().enumerate() {
        let path = format!("{at}.servers[{j}]");
        let (addr, dest) = server(&path, &key, entry)?;
        let port = u16::try_from(dest.port).unwrap_or(u16::MAX);
        if let Some(c) = &entry.check {
            let mut spec = check(&format!("{path}.check"), c)?;
            spec.service = Some(pb_key.clone());
            spec.server = text::endpoint_text(addr, port);
            server_checks.push(spec);
        }
        if let Some(k) = seen.iter().position(|d| *d == (addr, dest.port)) {
            let port = u16::try_from(dest.port).unwrap_or(u16::MAX);
            return Err(Invalid::new(
                path,
                format!(
                    "{} is already declared at {at}.servers[{k}]",
                    text::endpoint_text(addr, port)
                ),
            ));
        }
        seen.push((addr, dest.port));
        svc.destinations.push(dest);
    }
    // A server without a port (of a fwmark service) is probed on the check's connect-port.
    for (j, (&(addr, port), entry)) in seen.iter().zip(&s.servers).enumerate() {
        if port != 0 {
            continue;
        }
        let (path, connect_port) = match &entry.check {
            Some(_) => {
                let server = text::endpoint_text(addr, 0);
                let c = server_checks.iter().find(|c| c.server == server);
                (
                    format!("{at}.servers[{j}].check"),
                    c.map(|c| c.connect_port),
                )
            }
            None => (
                format!("{at}.check"),
                default_check.as_ref().map(|c| c.connect_port),
            ),
        };
        if connect_port == Some(0) {
            return Err(Invalid::new(
                format!("{path}.connect-port"),
                format!("is needed: real server {addr} ({at}.servers[{j}]) has no port to probe"),
            ));
        }
    }
    if let Some(c) = &mut default_check {
        c.service = Some(pb_key);
        if let Some(sorry) = &s.sorry_server {
            let path = format!("{at}.sorry-server");
            let entry = match sorry {
                SorryEntry::Address(a) => ServerEntry {
                    address: a.clone(),
                    forward: None,
                    weight: None,
                    upper: None,
                    lower: None,
                    tunnel: None,
                    check: None,
                },
                SorryEntry::Server(e) => e.clone(),
            };
            if entry.check.is_some() {
                return Err(Invalid::new(
                    format!("{path}.check"),
                    "a sorry server is not checked",
                ));
            }
            let (addr, dest) = server(&path, &key, &entry)?;
            if let Some(k) = seen.iter().position(|d| *d == (addr, dest.port)) {
                return Err(Invalid::new(
                    path,
                    format!("is the real server declared at {at}.servers[{k}]"),
                ));
            }
            c.sorry_server = Some(dest);
        }
        match s.quorum {
            Some(0) => {
                return Err(Invalid::new(
                    format!("{at}.quorum"),
                    "must be at least 1 (leave it out for 1)",
                ));
            }
            Some(q) => c.quorum = q,
            None => {}
        }
    }
    checks.extend(default_check);
    checks.extend(server_checks);
    Ok((key, svc))
}

/// A check's duration: as an attachment's interval, in whole milliseconds.
fn check_duration(path: &str, value: &Scalar) -> Result<u64, Invalid> {
    let text = match value {
        Scalar::Text(t) => t.clone(),
        Scalar::Int(n) => n.to_string(),
        Scalar::Bool(b) => {
            return Err(Invalid::new(
                path,
                format!("expected a duration such as 2s, not `{b}'"),
            ));
        }
    };
    let d = crate::policy::parse_interval(&text).map_err(|_| {
        Invalid::new(
            path,
            format!("invalid duration {text:?} (e.g. 2s, 500ms, 1m)"),
        )
    })?;
    u64::try_from(d.as_millis())
        .map_err(|_| Invalid::new(path, format!("duration {text:?} is too long")))
}

/// A status code or range of `expect`: `200`, `"200"`, `"200-299"`.
fn status_range(path: &str, value: &Scalar) -> Result<pb::StatusRange, Invalid> {
    let bad = || {
        Invalid::new(
            path,
            format!("`{value}' is not a status code or range (e.g. 200, \"200-299\")"),
        )
    };
    let code = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
    match value {
        Scalar::Int(n) => {
            let n = u32::try_from(*n).map_err(|_| bad())?;
            Ok(pb::StatusRange { first: n, last: n })
        }
        Scalar::Text(t) => match t.split_once('-') {
            Some((a, b)) => Ok(pb::StatusRange {
                first: code(a)?,
                last: code(b)?,
            }),
            None => {
                let n = code(t)?;
                Ok(pb::StatusRange { first: n, last: n })
            }
        },
        Scalar::Bool(_) => Err(bad()),
    }
}

fn tls_options(
    sni: &Option<String>,
    skip_verify: bool,
    ca_file: &Option<String>,
) -> pb::TlsOptions {
    pb::TlsOptions {
        sni: sni.clone().unwrap_or_default(),
        skip_verify,
        ca_file: ca_file.clone().unwrap_or_default(),
    }
}

fn http_check(at: &str, h: &HttpEntry, tls: bool) -> Result<pb::HttpCheck, Invalid> {
    if !tls {
        for (field, given) in [
            ("sni", h.sni.is_some()),
            ("skip-verify", h.skip_verify),
            ("ca-file", h.ca_file.is_some()),
        ] {
            if given {
                return Err(Invalid::new(
                    format!("{at}.{field}"),
                    "is only for https checks",
                ));
            }
        }
    }
    if h.body.is_some() && h.body_regex.is_some() {
        return Err(Invalid::new(
            format!("{at}.body-regex"),
            "give body or body-regex, not both",
        ));
    }
    let expect = h
        .expect
        .0
        .iter()
        .enumerate()
        .map(|(i, v)| status_range(&format!("{at}.expect[{i}]"), v))
        .collect::<Result<_, _>>()?;
    Ok(pb::HttpCheck {
        method: h.method.clone().unwrap_or_default(),
        path: h.path.clone().unwrap_or_default(),
        host: h.host.clone().unwrap_or_default(),
        expect,
        body_contains: h.body.clone().unwrap_or_default(),
        body_regex: h.body_regex.clone().unwrap_or_default(),
        tls: tls.then(|| tls_options(&h.sni, h.skip_verify, &h.ca_file)),
    })
}

/// The node file's name of a `CheckSpec` field the health crate refused, under `at` (the
/// check's path); `kind` is the kind key written (`https` for an HTTP check over TLS).
fn check_field(at: &str, kind: &str, field: &str) -> String {
    if field.is_empty() {
        return at.to_owned();
    }
    let field = field.replace("body_contains", "body").replace('_', "-");
    let field = match field.strip_prefix("http.") {
        Some(rest) => format!("{kind}.{rest}"),
        None => field,
    };
    format!("{at}.{field}")
}

/// A `check:` as a `CheckSpec` of no service yet, refused as the agent would refuse it.
fn check(at: &str, c: &CheckEntry) -> Result<pb::CheckSpec, Invalid> {
    use pb::check_spec::Kind;
    let given: Vec<&str> = [
        ("tcp", c.tcp.is_some()),
        ("http", c.http.is_some()),
        ("https", c.https.is_some()),
        ("udp", c.udp.is_some()),
        ("dns", c.dns.is_some()),
        ("grpc", c.grpc.is_some()),
        ("exec", c.exec.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    let kind_word = match given.as_slice() {
        [] => {
            return Err(Invalid::new(
                at,
                "needs one of tcp, http, https, udp, dns, grpc or exec",
            ));
        }
        [one] => *one,
        [a, b, ..] => {
            return Err(Invalid::new(
                at,
                format!("has both {a} and {b}; a check has one kind"),
            ));
        }
    };
    let kind = if c.tcp.is_some() {
        Kind::Tcp(pb::TcpCheck {})
    } else if let Some(h) = &c.http {
        Kind::Http(http_check(&format!("{at}.http"), h, false)?)
    } else if let Some(h) = &c.https {
        Kind::Http(http_check(&format!("{at}.https"), h, true)?)
    } else if let Some(u) = &c.udp {
        Kind::Udp(pb::UdpCheck {
            send: u.send.clone().unwrap_or_default().into_bytes(),
            expect: u.expect.clone().map(String::into_bytes),
        })
    } else if let Some(d) = &c.dns {
        Kind::Dns(pb::DnsCheck {
            name: d.name.clone(),
            r#type: match d.kind {
                None => pb::DnsType::Unspecified,
                Some(DnsWord::A) => pb::DnsType::A,
                Some(DnsWord::Aaaa) => pb::DnsType::Aaaa,
            }
            .into(),
            expect: d.expect.clone(),
        })
    } else if let Some(g) = &c.grpc {
        if !g.tls {
            for (field, given) in [
                ("sni", g.sni.is_some()),
                ("skip-verify", g.skip_verify),
                ("ca-file", g.ca_file.is_some()),
            ] {
                if given {
                    return Err(Invalid::new(
                        format!("{at}.grpc.{field}"),
                        "is only with tls: true",
                    ));
                }
            }
        }
        Kind::Grpc(pb::GrpcCheck {
            service: g.service.clone().unwrap_or_default(),
            tls: g
                .tls
                .then(|| tls_options(&g.sni, g.skip_verify, &g.ca_file)),
        })
    } else if let Some(e) = &c.exec {
        Kind::Exec(pb::ExecCheck {
            command: e.command.clone(),
        })
    } else {
        return Err(Invalid::new(
            at,
            "needs one of tcp, http, https, udp, dns, grpc or exec",
        ));
    };
    fn duration<'a>(
        at: &str,
        field: &str,
        value: Option<&'a Scalar>,
    ) -> Result<Option<(&'a Scalar, u64)>, Invalid> {
        value
            .map(|v| check_duration(&format!("{at}.{field}"), v).map(|ms| (v, ms)))
            .transpose()
    }
    let interval = match duration(at, "interval", c.interval.as_ref())? {
        Some((v, ms)) if u128::from(ms) < ipvs_health::spec::MIN_INTERVAL.as_millis() => {
            return Err(Invalid::new(
                format!("{at}.interval"),
                format!(
                    "{v} is below the minimum {}",
                    ipvs_health::spec::show(ipvs_health::spec::MIN_INTERVAL)
                ),
            ));
        }
        Some((_, ms)) => durations::from_millis(ms),
        None => None,
    };
    let timeout = match duration(at, "timeout", c.timeout.as_ref())? {
        Some((v, 0)) => {
            return Err(Invalid::new(
                format!("{at}.timeout"),
                format!("{v} is under 1ms (leave it out for the default)"),
            ));
        }
        Some((_, ms)) => durations::from_millis(ms),
        None => None,
    };
    let jitter =
        duration(at, "jitter", c.jitter.as_ref())?.and_then(|(_, ms)| durations::from_millis(ms));
    let spec = pb::CheckSpec {
        service: None,
        server: String::new(),
        kind: Some(kind),
        interval,
        timeout,
        rise: c.rise.unwrap_or(0),
        fall: c.fall.unwrap_or(0),
        initial: match c.initial {
            None => pb::HealthState::Unspecified,
            Some(HealthWord::Up) => pb::HealthState::Up,
            Some(HealthWord::Down) => pb::HealthState::Down,
        }
        .into(),
        jitter,
        connect_ip: c.connect_ip.clone().unwrap_or_default(),
        connect_port: c.connect_port.unwrap_or(0),
        on_failure: match c.on_failure {
            None => pb::FailureAction::Unspecified,
            Some(FailureWord::Quiesce) => pb::FailureAction::Quiesce,
            Some(FailureWord::Remove) => pb::FailureAction::Remove,
        }
        .into(),
        sorry_server: None,
        quorum: 0,
    };
    for (field, value) in [
        ("rise", c.rise),
        ("fall", c.fall),
        ("connect-port", c.connect_port),
    ] {
        if value == Some(0) {
            return Err(Invalid::new(
                format!("{at}.{field}"),
                "must be above 0 (leave it out for the default)",
            ));
        }
    }
    if c.connect_ip.as_deref() == Some("") {
        return Err(Invalid::new(format!("{at}.connect-ip"), "is empty"));
    }
    ipvs_health::spec::check(&spec)
        .map_err(|e| Invalid::new(check_field(at, kind_word, &e.field), e.reason))?;
    Ok(spec)
}

fn family_name(ipv6: bool) -> &'static str {
    if ipv6 { "IPv6" } else { "IPv4" }
}

/// A tunnel's settings, with ipvsadm's rules per tunnel type.
fn tunnel(at: &str, t: Option<&TunnelEntry>) -> Result<Tunnel, Invalid> {
    let Some(t) = t else {
        return Ok(Tunnel {
            kind: TunnelType::Ipip,
            port: None,
            checksum: TunnelChecksum::None,
        });
    };
    let at = format!("{at}.tunnel");
    let checksum = match t.checksum {
        None | Some(ChecksumWord::None) => TunnelChecksum::None,
        Some(ChecksumWord::Csum) => TunnelChecksum::Csum,
        Some(ChecksumWord::Remcsum) => TunnelChecksum::RemCsum,
    };
    let kind = match t.kind {
        TunnelWord::Ipip => TunnelType::Ipip,
        TunnelWord::Gue => TunnelType::Gue,
        TunnelWord::Gre => TunnelType::Gre,
    };
    match (kind, t.port) {
        (TunnelType::Gue, None) => {
            return Err(Invalid::new(at, "a gue tunnel needs a port"));
        }
        (TunnelType::Gue, Some(0)) => {
            return Err(out_of_range(format!("{at}.port"), 0, "1..65535"));
        }
        (TunnelType::Ipip | TunnelType::Gre, Some(_)) => {
            return Err(Invalid::new(
                format!("{at}.port"),
                "is only for gue tunnels",
            ));
        }
        _ => {}
    }
    match (kind, checksum) {
        (TunnelType::Ipip, TunnelChecksum::Csum | TunnelChecksum::RemCsum) => Err(Invalid::new(
            format!("{at}.checksum"),
            "is only for gue and gre tunnels",
        )),
        (TunnelType::Gre, TunnelChecksum::RemCsum) => Err(Invalid::new(
            format!("{at}.checksum"),
            "remcsum is not available with gre tunnels",
        )),
        _ => Ok(Tunnel {
            kind,
            port: t.port,
            checksum,
        }),
    }
}

fn server(
    at: &str,
    key: &ServiceKey,
    s: &ServerEntry,
) -> Result<(IpAddr, pb::Destination), Invalid> {
    let (addr, port) =
        text::address(&s.address).map_err(|r| Invalid::new(format!("{at}.address"), r))?;
    let forward = s.forward.unwrap_or(ForwardWord::Route);
    if addr.is_ipv6() != is_ipv6(key) && forward != ForwardWord::Tunnel {
        return Err(Invalid::new(
            format!("{at}.address"),
            format!(
                "is {} but the service is {}; only tunnel servers may differ",
                family_name(addr.is_ipv6()),
                family_name(is_ipv6(key))
            ),
        ));
    }
    let service_port = match key {
        ServiceKey::Addr { port, .. } => *port,
        ServiceKey::Fwmark { .. } => 0,
    };
    // ipvsadm gives direct-routing and tunnel servers the service's port.
    let port = match (key, forward) {
        (ServiceKey::Addr { .. }, ForwardWord::Route | ForwardWord::Tunnel) => service_port,
        _ => port.unwrap_or(service_port),
    };
    let weight = s.weight.unwrap_or(1);
    if weight > MAX_WEIGHT {
        return Err(out_of_range(
            format!("{at}.weight"),
            weight,
            &format!("0..{MAX_WEIGHT}"),
        ));
    }
    for (field, value) in [("upper", s.upper), ("lower", s.lower)] {
        if let Some(v) = value.filter(|v| *v > MAX_THRESHOLD) {
            return Err(out_of_range(
                format!("{at}.{field}"),
                v,
                &format!("0..{MAX_THRESHOLD}"),
            ));
        }
    }
    if s.tunnel.is_some() && forward != ForwardWord::Tunnel {
        return Err(Invalid::new(
            format!("{at}.tunnel"),
            "is only for tunnel servers (forward: tunnel)",
        ));
    }
    let spec = DestSpec {
        addr,
        port,
        forward: match forward {
            ForwardWord::Masq => Forward::Masq,
            ForwardWord::Tunnel => Forward::Tunnel,
            // ipvsadm has no word for local: it is set below.
            ForwardWord::Route | ForwardWord::Local => Forward::Route,
        },
        tunnel: match forward {
            ForwardWord::Tunnel => Some(tunnel(at, s.tunnel.as_ref())?),
            _ => None,
        },
        weight,
        upper_threshold: s.upper.unwrap_or(0),
        lower_threshold: s.lower.unwrap_or(0),
    };
    let mut dest = request::destination(&spec);
    if forward == ForwardWord::Local {
        dest.forwarding = pb::ForwardingMethod::Local.into();
    }
    Ok((addr, dest))
}

fn attachment(
    at: &str,
    a: &AttachmentEntry,
    declared: &HashMap<ServiceKey, usize>,
) -> Result<pb::AttachmentSpec, Invalid> {
    if a.policy.is_empty() {
        return Err(Invalid::new(format!("{at}.policy"), "is empty"));
    }
    if a.services.is_empty() {
        return Err(Invalid::new(format!("{at}.services"), "names no service"));
    }
    let mut services = Vec::new();
    for (j, r) in a.services.iter().enumerate() {
        let path = format!("{at}.services[{j}]");
        let key = text::reference(r).map_err(|e| Invalid::new(path.clone(), e))?;
        if !declared.contains_key(&key) {
            return Err(Invalid::new(
                path,
                format!("{r} is not a service of this file"),
            ));
        }
        services.push(request::service_key(&key));
    }
    let interval = match &a.interval {
        None => Ok(0),
        Some(Scalar::Text(t)) => text::interval_ms(t),
        Some(Scalar::Int(n)) => text::interval_ms(&n.to_string()),
        Some(Scalar::Bool(b)) => Err(format!("expected an interval such as 2s, not `{b}'")),
    }
    .map_err(|r| Invalid::new(format!("{at}.interval"), r))?;
    Ok(pb::AttachmentSpec {
        policy: a.policy.clone(),
        services,
        params: a
            .params
            .0
            .iter()
            .map(|(key, value)| pb::PolicyParam {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        interval: durations::from_millis(interval),
        mode: match a.mode {
            None => pb::PolicyMode::Unspecified,
            Some(ModeWord::Enforce) => pb::PolicyMode::Enforce,
            Some(ModeWord::DryRun) => pb::PolicyMode::DryRun,
        }
        .into(),
        quarantine_after: a.quarantine_after.unwrap_or(0),
    })
}
