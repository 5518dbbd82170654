//! `ipvs.agent.v1.StateService` node specs and revisions ↔ the [`crate::state`] model. The
//! agent also keeps its revisions on disk in this form.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipvs_proto::v1 as pb;

use super::ipvs::{
    dest_config_to_proto, destination, destination_address, key_to_proto, service,
    service_config_to_proto, service_key,
};
use super::link::{link_name, prefix, prefix_to_proto};
use super::{At, Field, FieldError, Problem, duration_to_proto};
use crate::attach::{DEFAULT_QUARANTINE_AFTER, Mode};
use crate::ipvs::ServiceKey;
use crate::link::Cidr;
use crate::state::{
    AttachmentSpec, CheckDecl, DesiredTable, DriftMode, Managed, NodeSpec, SpecError,
};

/// Why a spec from a request or a record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecInputError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

fn drift_mode(v: i32) -> Result<Option<DriftMode>, Problem> {
    match pb::DriftMode::try_from(v) {
        Ok(pb::DriftMode::Unspecified) => Ok(None),
        Ok(pb::DriftMode::Report) => Ok(Some(DriftMode::Report)),
        Ok(pb::DriftMode::Enforce) => Ok(Some(DriftMode::Enforce)),
        Err(_) => Err(Problem::UnknownEnum(v)),
    }
}

pub fn drift_to_proto(m: Option<DriftMode>) -> pb::DriftMode {
    match m {
        None => pb::DriftMode::Unspecified,
        Some(DriftMode::Report) => pb::DriftMode::Report,
        Some(DriftMode::Enforce) => pb::DriftMode::Enforce,
    }
}

fn attachment(a: &pb::AttachmentSpec) -> Result<AttachmentSpec, FieldError> {
    if a.policy.is_empty() {
        return Err(FieldError::new("policy", Problem::Missing));
    }
    let services = a
        .services
        .iter()
        .enumerate()
        .map(|(i, k)| service_key(k).at(&format!("services[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mode = match pb::PolicyMode::try_from(a.mode) {
        Ok(pb::PolicyMode::Unspecified | pb::PolicyMode::Enforce) => Mode::Enforce,
        Ok(pb::PolicyMode::DryRun) => Mode::DryRun,
        Err(_) => return Err(FieldError::new("mode", Problem::UnknownEnum(a.mode))),
    };
    Ok(AttachmentSpec {
        policy: a.policy.clone(),
        services,
        params: a
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        interval: super::policy::interval(a.interval.as_ref()).field("interval")?,
        mode,
        quarantine_after: match a.quarantine_after {
            0 => DEFAULT_QUARANTINE_AFTER,
            n => n,
        },
    })
}

/// A node spec, every field checked (`links[1].addresses[0]`), then the whole.
pub fn node_spec(s: &pb::NodeSpec) -> Result<NodeSpec, SpecInputError> {
    let mut links = Vec::new();
    for (i, l) in s.links.iter().enumerate() {
        let at = format!("links[{i}]");
        let name = link_name(&l.name, "name").at(&at)?;
        let addresses = l
            .addresses
            .iter()
            .enumerate()
            .map(|(j, a)| prefix(&a.address, a.prefix_length).at(&format!("{at}.addresses[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        links.push((name, addresses));
    }
    let services = s
        .services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let at = format!("services[{i}]");
            let parsed = service(svc).at(&at)?;
            let dests = svc
                .destinations
                .iter()
                .enumerate()
                .map(|(j, d)| destination(d).at(&format!("{at}.destinations[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((parsed, dests))
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    let table = DesiredTable::new(services).map_err(SpecError::from)?;
    let attachments = s
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| attachment(a).at(&format!("attachments[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let drift = drift_mode(s.drift).map_err(|p| FieldError::new("drift", p))?;
    let checks = s
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| check(c).at(&format!("checks[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeSpec::new(links, table, attachments, drift)?.with_checks(checks)?)
}

/// A declared health check, its kind and timings checked by the health crate's rules.
fn check(c: &pb::CheckSpec) -> Result<CheckDecl, FieldError> {
    let service = super::nested(c.service.as_ref(), "service", service_key)?;
    let server = match c.server.as_str() {
        "" => None,
        t => {
            let sa: std::net::SocketAddr = t.parse().map_err(|_| {
                FieldError::new(
                    "server",
                    Problem::Invalid(format!(
                        "{t:?} is not ADDR:PORT (\"10.0.1.1:80\", \"[2001:db8::1]:80\")"
                    )),
                )
            })?;
            Some((sa.ip(), sa.port()))
        }
    };
    let checked = ipvs_health::spec::check(c)
        .map_err(|e| FieldError::new(e.field, Problem::Invalid(e.reason)))?;
    let sorry = c
        .sorry_server
        .as_ref()
        .map(destination)
        .transpose()
        .at("sorry_server")?;
    Ok(CheckDecl {
        service,
        server,
        check: checked,
        sorry,
        quorum: c.quorum.max(1),
        spec: c.clone(),
    })
}

pub fn attachment_to_proto(a: &AttachmentSpec) -> pb::AttachmentSpec {
    pb::AttachmentSpec {
        policy: a.policy.clone(),
        services: a.services.iter().map(key_to_proto).collect(),
        params: a
            .params
            .iter()
            .map(|(k, v)| pb::PolicyParam {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        interval: Some(duration_to_proto(a.interval)),
        mode: match a.mode {
            Mode::Enforce => pb::PolicyMode::Enforce,
            Mode::DryRun => pb::PolicyMode::DryRun,
        }
        .into(),
        quarantine_after: a.quarantine_after,
    }
}

fn links_to_proto<'a>(
    links: impl Iterator<Item = (&'a crate::link::LinkName, &'a BTreeSet<Cidr>)>,
) -> Vec<pb::LinkSpec> {
    links
        .map(|(name, addresses)| pb::LinkSpec {
            name: name.as_str().to_owned(),
            addresses: addresses.iter().map(prefix_to_proto).collect(),
        })
        .collect()
}

pub fn node_spec_to_proto(s: &NodeSpec) -> pb::NodeSpec {
    pb::NodeSpec {
        links: links_to_proto(s.links.iter()),
        services: s
            .table
            .services()
            .map(|d| pb::Service {
                destinations: d.dests.values().map(dest_config_to_proto).collect(),
                ..service_config_to_proto(&d.service)
            })
            .collect(),
        attachments: s.attachments.iter().map(attachment_to_proto).collect(),
        drift: drift_to_proto(s.drift).into(),
        checks: s.checks.iter().map(|c| c.spec.clone()).collect(),
    }
}

/// The managed set as a spec of bare keys: services with real-server addresses, links with
/// addresses.
pub fn managed_to_proto(m: &Managed) -> pb::NodeSpec {
    let mut links: BTreeMap<_, BTreeSet<Cidr>> = m
        .links
        .iter()
        .map(|n| (n.clone(), BTreeSet::new()))
        .collect();
    for (n, a) in &m.addresses {
        links.entry(n.clone()).or_default().insert(*a);
    }
    // One pass over the real servers, grouped by service: a scan per service would make a
    // revision's encoding grow with the square of the table.
    let mut by_service: BTreeMap<&ServiceKey, Vec<pb::Destination>> =
        m.services.iter().map(|k| (k, Vec::new())).collect();
    for (k, (addr, port)) in &m.dests {
        by_service.entry(k).or_default().push(pb::Destination {
            address: addr.to_string(),
            port: (*port).into(),
            ..Default::default()
        });
    }
    let services = by_service
        .into_iter()
        .map(|(k, destinations)| pb::Service {
            key: Some(key_to_proto(k)),
            destinations,
            ..Default::default()
        })
        .collect();
    pb::NodeSpec {
        links: links_to_proto(links.iter()),
        services,
        ..Default::default()
    }
}

/// The managed set back from its record. A service listed only for its real servers is not
/// itself managed: records list every managed service with `scheduler` set to 1.
pub fn managed(s: &pb::NodeSpec) -> Result<Managed, FieldError> {
    let mut m = Managed::default();
    for (i, l) in s.links.iter().enumerate() {
        let at = format!("links[{i}]");
        let name = link_name(&l.name, "name").at(&at)?;
        for (j, a) in l.addresses.iter().enumerate() {
            let c = prefix(&a.address, a.prefix_length).at(&format!("{at}.addresses[{j}]"))?;
            m.addresses.insert((name.clone(), c));
        }
        m.links.insert(name);
    }
    for (i, svc) in s.services.iter().enumerate() {
        let at = format!("services[{i}]");
        let key = super::nested(svc.key.as_ref(), "key", service_key).at(&at)?;
        m.services.insert(key);
        for (j, d) in svc.destinations.iter().enumerate() {
            let dest = destination_address(d).at(&format!("{at}.destinations[{j}]"))?;
            m.dests.insert((key, dest));
        }
    }
    Ok(m)
}

pub fn time_to_proto(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn time(t: Option<&prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| {
        let secs = u64::try_from(t.seconds).ok()?;
        let nanos = u32::try_from(t.nanos).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    })
    .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::DEFAULT_INTERVAL;

    fn key(last: u8) -> pb::ServiceKey {
        pb::ServiceKey {
            protocol: pb::Protocol::Tcp.into(),
            address: format!("10.0.0.{last}"),
            port: 80,
            ..Default::default()
        }
    }

    fn prefix(address: &str, prefix_length: u32) -> pb::Prefix {
        pb::Prefix {
            address: address.into(),
            prefix_length,
        }
    }

    fn millis(ms: u64) -> Option<prost_types::Duration> {
        Some(duration_to_proto(Duration::from_millis(ms)))
    }

    fn spec() -> pb::NodeSpec {
        pb::NodeSpec {
            links: vec![pb::LinkSpec {
                name: "ipvs0".into(),
                addresses: vec![prefix("10.0.0.1", 32), prefix("2001:db8::1", 128)],
            }],
            services: vec![pb::Service {
                key: Some(key(1)),
                scheduler: pb::Scheduler::Wrr.into(),
                destinations: vec![pb::Destination {
                    address: "10.0.1.1".into(),
                    port: 80,
                    forwarding: pb::ForwardingMethod::Masquerade.into(),
                    weight: Some(3),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            attachments: vec![pb::AttachmentSpec {
                policy: "lc".into(),
                services: vec![key(1)],
                interval: millis(500),
                ..Default::default()
            }],
            drift: pb::DriftMode::Enforce.into(),
            checks: vec![pb::CheckSpec {
                service: Some(key(1)),
                kind: Some(pb::check_spec::Kind::Http(pb::HttpCheck {
                    path: "/healthz".into(),
                    ..Default::default()
                })),
                interval: millis(1000),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_spec_survives_the_round_trip() {
        let parsed = node_spec(&spec()).expect("spec");
        assert_eq!(parsed.links.len(), 1);
        assert_eq!(parsed.attachments[0].interval, Duration::from_millis(500));
        assert_eq!(parsed.drift, Some(DriftMode::Enforce));
        assert_eq!(parsed.checks[0].check.timeout, Duration::from_millis(500));
        assert_eq!(parsed.check_targets()[0].addr.to_string(), "10.0.1.1:80");
        let wire = node_spec_to_proto(&parsed);
        assert_eq!(wire.links, spec().links);
        assert_eq!(wire.checks, spec().checks);
        assert_eq!(wire.attachments[0].interval, millis(500));
        assert_eq!(
            wire.services[0].key.as_ref().map(|k| k.family),
            Some(pb::AddressFamily::Inet.into())
        );
        let back = node_spec(&wire).expect("again");
        assert_eq!(back, parsed);
        let m = Managed::declared_by(&parsed);
        let wire = managed_to_proto(&m);
        assert_eq!(wire.links, spec().links);
        assert_eq!(wire.services[0].destinations[0].address, "10.0.1.1");
        assert_eq!(managed(&wire).expect("managed"), m);
    }

    #[test]
    fn zero_values_are_defaults() {
        type Tweak = fn(&mut pb::NodeSpec);
        type Check = fn(&NodeSpec);
        let cases: Vec<(&str, Tweak, Check)> = vec![
            (
                "a prefix length of 0 is the whole IPv4 address",
                |s| s.links[0].addresses[0].prefix_length = 0,
                |n| {
                    let want = Cidr::new([10, 0, 0, 1].into(), 32).expect("cidr");
                    assert!(n.links.values().any(|a| a.contains(&want)), "{n:?}");
                },
            ),
            (
                "an unset interval is 2 s",
                |s| s.attachments[0].interval = None,
                |n| assert_eq!(n.attachments[0].interval, DEFAULT_INTERVAL),
            ),
            (
                "a zero interval is 2 s",
                |s| s.attachments[0].interval = millis(0),
                |n| assert_eq!(n.attachments[0].interval, DEFAULT_INTERVAL),
            ),
            (
                "an unset quarantine threshold is the default",
                |s| s.attachments[0].quarantine_after = 0,
                |n| assert_eq!(n.attachments[0].quarantine_after, DEFAULT_QUARANTINE_AFTER),
            ),
            (
                "an unspecified policy mode enforces",
                |s| s.attachments[0].mode = 0,
                |n| assert_eq!(n.attachments[0].mode, Mode::Enforce),
            ),
            (
                "an unspecified drift mode is none",
                |s| s.drift = 0,
                |n| assert_eq!(n.drift, None),
            ),
        ];
        for (what, tweak, check) in cases {
            let mut s = spec();
            tweak(&mut s);
            let parsed = node_spec(&s).expect(what);
            check(&parsed);
        }
    }

    #[test]
    fn refusals_name_the_field() {
        type Breaker = fn(&mut pb::NodeSpec);
        let cases: Vec<(Breaker, &str)> = vec![
            (
                |s| s.links[0].addresses[1] = prefix("10.0.0.2/32", 0),
                r#"invalid links[0].addresses[1].address: "10.0.0.2/32" is not an IP address"#,
            ),
            (
                |s| s.links[0].addresses[1] = prefix("", 32),
                "invalid links[0].addresses[1].address: is required",
            ),
            (
                |s| s.links[0].addresses[0] = prefix("10.0.0.2", 33),
                "invalid links[0].addresses[0].prefix_length: 33 is above the maximum 32",
            ),
            (
                |s| s.links[0].name.clear(),
                r#"invalid links[0].name: link name "" is empty"#,
            ),
            (
                |s| s.services[0].destinations[0].weight = Some(70000),
                "invalid services[0].destinations[0].weight: 70000 is above the maximum 65535",
            ),
            (
                |s| s.services[0].destinations[0].address = "10.0.1".into(),
                r#"invalid services[0].destinations[0].address: "10.0.1" is not an IP address"#,
            ),
            (
                |s| {
                    if let Some(k) = s.services[0].key.as_mut() {
                        k.family = pb::AddressFamily::Inet6.into();
                    }
                },
                r#"invalid services[0].key.family: does not match the address "10.0.0.1""#,
            ),
            (
                |s| s.attachments[0].services[0] = key(9),
                "attachment 0 (lc): service TCP 10.0.0.9:80 is not declared in the spec",
            ),
            (
                |s| s.attachments[0].services[0].address = "ten".into(),
                r#"invalid attachments[0].services[0].address: "ten" is not an IP address"#,
            ),
            (
                |s| s.attachments[0].policy.clear(),
                "invalid attachments[0].policy: is required",
            ),
            (
                |s| s.checks[0].timeout = millis(3000),
                "invalid checks[0].timeout: 3s is not below the interval 1s",
            ),
            (
                |s| s.checks[0].kind = None,
                "invalid checks[0]: says no kind of check (tcp, http, udp, dns, grpc or exec)",
            ),
            (
                |s| s.checks[0].service = Some(key(9)),
                "checks[0]: service TCP 10.0.0.9:80 is not declared in the spec",
            ),
            (
                |s| s.checks[0].server = "10.0.1.2:80".into(),
                "checks[0]: 10.0.1.2:80 is not a real server of service TCP 10.0.0.1:80 in the spec",
            ),
            (
                |s| s.checks[0].server = "10.0.1.1".into(),
                r#"invalid checks[0].server: "10.0.1.1" is not ADDR:PORT ("10.0.1.1:80", "[2001:db8::1]:80")"#,
            ),
            (
                |s| s.checks.push(s.checks[0].clone()),
                "checks[1]: service TCP 10.0.0.1:80 already has a check, at checks[0]",
            ),
            (
                |s| {
                    s.checks[0].sorry_server = Some(pb::Destination {
                        address: "10.0.1.1".into(),
                        port: 80,
                        ..Default::default()
                    })
                },
                "checks[0].sorry_server: 10.0.1.1:80 is a declared real server of service TCP 10.0.0.1:80",
            ),
            (
                |s| {
                    s.attachments[0].interval = Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    });
                },
                "invalid attachments[0].interval: -1s is not a non-negative duration",
            ),
            (
                |s| s.attachments[0].mode = 9,
                "invalid attachments[0].mode: 9 is not a known value",
            ),
            (|s| s.drift = 7, "invalid drift: 7 is not a known value"),
        ];
        for (break_it, want) in cases {
            let mut s = spec();
            break_it(&mut s);
            assert_eq!(node_spec(&s).expect_err(want).to_string(), want);
        }
    }

    #[test]
    fn managed_records_name_the_field() {
        type Breaker = fn(&mut pb::NodeSpec);
        let cases: Vec<(Breaker, &str)> = vec![
            (
                |s| s.links[0].addresses[0].address = "10.0.0.1/32".into(),
                r#"invalid links[0].addresses[0].address: "10.0.0.1/32" is not an IP address"#,
            ),
            (
                |s| s.services[0].key = None,
                "invalid services[0].key: is required",
            ),
            (
                |s| s.services[0].destinations[0].address.clear(),
                "invalid services[0].destinations[0].address: is required",
            ),
            (
                |s| s.services[0].destinations[0].port = 65536,
                "invalid services[0].destinations[0].port: 65536 is above the maximum 65535",
            ),
        ];
        for (break_it, want) in cases {
            let mut s = spec();
            break_it(&mut s);
            assert_eq!(managed(&s).expect_err(want).to_string(), want);
        }
    }
}
