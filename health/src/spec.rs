//! A declared check (`ipvs.agent.v1.CheckSpec`) into a [`Check`], refusing what cannot run
//! and naming the field. Shared by the agent (API callers) and ipvsctl (node files), so both
//! refuse the same things with the same words.

use std::net::IpAddr;
use std::time::Duration;

use ipvs_proto::v1 as pb;

use crate::check::{
    BodyMatch, Check, Dns, DnsType, Exec, Grpc, Http, Kind, OnFailure, State, Tls, Udp,
};

/// A check's field that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// Relative to the check, e.g. `timeout`, `http.expect[1]`; empty for the check itself.
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The shortest interval: a probe every 10 ms is already more than any server needs.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Highest `rise`/`fall`.
pub const MAX_COUNT: u32 = 1000;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// `2s`, `500ms`, `1.5s`.
pub fn show(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:?}", d)
    }
}

fn duration(field: &str, d: Option<&prost_types::Duration>) -> Result<Option<Duration>, Invalid> {
    let Some(d) = d else { return Ok(None) };
    let n = d.clone().normalized();
    match (u64::try_from(n.seconds), u32::try_from(n.nanos)) {
        (Ok(s), Ok(ns)) => Ok(Some(Duration::new(s, ns)).filter(|d| !d.is_zero())),
        _ => Err(invalid(field, "is negative")),
    }
}

/// The check `s` declares (its service and server are the caller's to resolve).
pub fn check(s: &pb::CheckSpec) -> Result<Check, Invalid> {
    let kind = match &s.kind {
        None => {
            return Err(invalid(
                "",
                "says no kind of check (tcp, http, udp, dns, grpc or exec)",
            ));
        }
        Some(k) => kind(k)?,
    };
    let interval = duration("interval", s.interval.as_ref())?.unwrap_or(DEFAULT_INTERVAL);
    if interval < MIN_INTERVAL {
        return Err(invalid(
            "interval",
            format!(
                "{} is below the minimum {}",
                show(interval),
                show(MIN_INTERVAL)
            ),
        ));
    }
    let timeout = match duration("timeout", s.timeout.as_ref())? {
        Some(t) => t,
        None => DEFAULT_TIMEOUT.min(interval / 2),
    };
    if timeout >= interval {
        return Err(invalid(
            "timeout",
            format!(
                "{} is not below the interval {}",
                show(timeout),
                show(interval)
            ),
        ));
    }
    let jitter = duration("jitter", s.jitter.as_ref())?.unwrap_or_default();
    if jitter >= interval {
        return Err(invalid(
            "jitter",
            format!(
                "{} is not below the interval {}",
                show(jitter),
                show(interval)
            ),
        ));
    }
    let count = |field: &str, v: u32, default: u32| match v {
        0 => Ok(default),
        v if v > MAX_COUNT => Err(invalid(
            field,
            format!("{v} is above the maximum {MAX_COUNT}"),
        )),
        v => Ok(v),
    };
    let rise = count("rise", s.rise, 2)?;
    let fall = count("fall", s.fall, 3)?;
    let initial = match pb::HealthState::try_from(s.initial) {
        Ok(pb::HealthState::Unspecified | pb::HealthState::Up) => State::Up,
        Ok(pb::HealthState::Down) => State::Down,
        Err(_) => {
            return Err(invalid(
                "initial",
                format!("{} is not a known value", s.initial),
            ));
        }
    };
    let on_failure = match pb::FailureAction::try_from(s.on_failure) {
        Ok(pb::FailureAction::Unspecified | pb::FailureAction::Quiesce) => OnFailure::Quiesce,
        Ok(pb::FailureAction::Remove) => OnFailure::Remove,
        Err(_) => {
            return Err(invalid(
                "on_failure",
                format!("{} is not a known value", s.on_failure),
            ));
        }
    };
    let connect_ip = match s.connect_ip.as_str() {
        "" => None,
        t => Some(
            t.parse::<IpAddr>()
                .map_err(|_| invalid("connect_ip", format!("{t:?} is not an IP address")))?,
        ),
    };
    let connect_port = match s.connect_port {
        0 => None,
        p => Some(
            u16::try_from(p)
                .map_err(|_| invalid("connect_port", format!("{p} is above the maximum 65535")))?,
        ),
    };
    if !s.server.is_empty() && (s.sorry_server.is_some() || s.quorum != 0) {
        let field = if s.sorry_server.is_some() {
            "sorry_server"
        } else {
            "quorum"
        };
        return Err(invalid(
            field,
            "belongs to a service's default check (one without a server)",
        ));
    }
    Ok(Check {
        kind,
        interval,
        timeout,
        rise,
        fall,
        initial,
        jitter,
        connect_ip,
        connect_port,
        on_failure,
    })
}

fn kind(k: &pb::check_spec::Kind) -> Result<Kind, Invalid> {
    use pb::check_spec::Kind as K;
    Ok(match k {
        K::Tcp(_) => Kind::Tcp,
        K::Http(h) => Kind::Http(http(h)?),
        K::Udp(u) => Kind::Udp(Udp {
            send: u.send.clone(),
            expect: u.expect.clone(),
        }),
        K::Dns(d) => Kind::Dns(dns(d)?),
        K::Grpc(g) => Kind::Grpc(Grpc {
            service: g.service.clone(),
            tls: g.tls.as_ref().map(tls),
        }),
        K::Exec(e) => {
            if e.command.first().is_none_or(String::is_empty) {
                return Err(invalid("exec.command", "is empty: name a program to run"));
            }
            Kind::Exec(Exec {
                command: e.command.clone(),
            })
        }
    })
}

fn tls(t: &pb::TlsOptions) -> Tls {
    Tls {
        sni: Some(t.sni.clone()).filter(|s| !s.is_empty()),
        skip_verify: t.skip_verify,
        ca_file: Some(t.ca_file.clone()).filter(|s| !s.is_empty()),
    }
}

fn http(h: &pb::HttpCheck) -> Result<Http, Invalid> {
    let method = if h.method.is_empty() {
        "GET".to_owned()
    } else {
        h.method.clone()
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "http.method",
            format!("{method:?} is not an HTTP method (capital letters, e.g. GET, HEAD)"),
        ));
    }
    let path = if h.path.is_empty() {
        "/".to_owned()
    } else {
        h.path.clone()
    };
    if !path.starts_with('/')
        || path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid(
            "http.path",
            format!("{path:?} is not a request path (it starts with / and has no spaces)"),
        ));
    }
    if h.host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid(
            "http.host",
            format!("{:?} is not a host name", h.host),
        ));
    }
    let mut expect = Vec::new();
    for (i, r) in h.expect.iter().enumerate() {
        if !(100..=599).contains(&r.first) || !(100..=599).contains(&r.last) || r.first > r.last {
            return Err(invalid(
                format!("http.expect[{i}]"),
                format!(
                    "{}-{} is not a range of status codes (100..599, first <= last)",
                    r.first, r.last
                ),
            ));
        }
        expect.push((r.first as u16, r.last as u16));
    }
    if expect.is_empty() {
        expect.push((200, 399));
    }
    let body = match (h.body_contains.as_str(), h.body_regex.as_str()) {
        ("", "") => None,
        (s, "") => Some(BodyMatch::Contains(s.to_owned())),
        ("", r) => {
            regex::Regex::new(r).map_err(|e| {
                invalid(
                    "http.body_regex",
                    format!("does not compile: {}", one_line(&e.to_string())),
                )
            })?;
            Some(BodyMatch::Regex(r.to_owned()))
        }
        _ => {
            return Err(invalid(
                "http.body_regex",
                "give body_contains or body_regex, not both",
            ));
        }
    };
    Ok(Http {
        method,
        path,
        host: Some(h.host.clone()).filter(|s| !s.is_empty()),
        expect,
        body,
        tls: h.tls.as_ref().map(tls),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn dns(d: &pb::DnsCheck) -> Result<Dns, Invalid> {
    let name = d.name.trim_end_matches('.');
    if name.is_empty()
        || name.len() > 253
        || name
            .split('.')
            .any(|l| l.is_empty() || l.len() > 63 || !l.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(invalid(
            "dns.name",
            format!("{:?} is not a domain name", d.name),
        ));
    }
    let qtype = match pb::DnsType::try_from(d.r#type) {
        Ok(pb::DnsType::Unspecified | pb::DnsType::A) => DnsType::A,
        Ok(pb::DnsType::Aaaa) => DnsType::Aaaa,
        Err(_) => {
            return Err(invalid(
                "dns.type",
                format!("{} is not a known value", d.r#type),
            ));
        }
    };
    let mut expect = Vec::new();
    for (i, a) in d.expect.iter().enumerate() {
        let field = format!("dns.expect[{i}]");
        let ip: IpAddr = a
            .parse()
            .map_err(|_| invalid(&field, format!("{a:?} is not an IP address")))?;
        if ip.is_ipv4() != (qtype == DnsType::A) {
            return Err(invalid(
                field,
                format!(
                    "{ip} cannot be the answer to a query of type {}",
                    if qtype == DnsType::A { "A" } else { "AAAA" }
                ),
            ));
        }
        expect.push(ip);
    }
    Ok(Dns {
        name: name.to_owned(),
        qtype,
        expect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: i64::from(n / 1000),
            nanos: (n % 1000) * 1_000_000,
        })
    }

    fn tcp() -> pb::CheckSpec {
        pb::CheckSpec {
            kind: Some(pb::check_spec::Kind::Tcp(pb::TcpCheck {})),
            ..Default::default()
        }
    }

    fn http(h: pb::HttpCheck) -> pb::CheckSpec {
        pb::CheckSpec {
            kind: Some(pb::check_spec::Kind::Http(h)),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_what_a_declaration_leaves_out() {
        let c = check(&tcp()).expect("valid");
        assert_eq!(c, Check::default());
        // A short interval shortens the default timeout.
        let c = check(&pb::CheckSpec {
            interval: ms(1000),
            ..tcp()
        })
        .expect("valid");
        assert_eq!(c.timeout, Duration::from_millis(500));
        let c = check(&http(pb::HttpCheck::default())).expect("valid");
        let Kind::Http(h) = c.kind else {
            panic!("not http: {:?}", c.kind)
        };
        assert_eq!((h.method.as_str(), h.path.as_str()), ("GET", "/"));
        assert_eq!(h.expect, vec![(200, 399)]);
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        let exec = |command: &[&str]| pb::CheckSpec {
            kind: Some(pb::check_spec::Kind::Exec(pb::ExecCheck {
                command: command.iter().map(|s| s.to_string()).collect(),
            })),
            ..Default::default()
        };
        let dns = |name: &str, t: pb::DnsType, expect: &[&str]| pb::CheckSpec {
            kind: Some(pb::check_spec::Kind::Dns(pb::DnsCheck {
                name: name.into(),
                r#type: t.into(),
                expect: expect.iter().map(|s| s.to_string()).collect(),
            })),
            ..Default::default()
        };
        let cases: Vec<(pb::CheckSpec, &str)> = vec![
            (
                pb::CheckSpec::default(),
                ": says no kind of check (tcp, http, udp, dns, grpc or exec)",
            ),
            (
                pb::CheckSpec {
                    interval: ms(5),
                    ..tcp()
                },
                "interval: 5ms is below the minimum 10ms",
            ),
            (
                pb::CheckSpec {
                    interval: ms(2000),
                    timeout: ms(3000),
                    ..tcp()
                },
                "timeout: 3s is not below the interval 2s",
            ),
            (
                pb::CheckSpec {
                    interval: ms(2000),
                    timeout: ms(2000),
                    ..tcp()
                },
                "timeout: 2s is not below the interval 2s",
            ),
            (
                pb::CheckSpec {
                    jitter: ms(5000),
                    ..tcp()
                },
                "jitter: 5s is not below the interval 5s",
            ),
            (
                pb::CheckSpec {
                    timeout: Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    }),
                    ..tcp()
                },
                "timeout: is negative",
            ),
            (
                pb::CheckSpec {
                    rise: 1001,
                    ..tcp()
                },
                "rise: 1001 is above the maximum 1000",
            ),
            (
                pb::CheckSpec {
                    initial: 9,
                    ..tcp()
                },
                "initial: 9 is not a known value",
            ),
            (
                pb::CheckSpec {
                    connect_ip: "10.0.0".into(),
                    ..tcp()
                },
                "connect_ip: \"10.0.0\" is not an IP address",
            ),
            (
                pb::CheckSpec {
                    connect_port: 70000,
                    ..tcp()
                },
                "connect_port: 70000 is above the maximum 65535",
            ),
            (
                pb::CheckSpec {
                    server: "10.0.1.1:80".into(),
                    quorum: 2,
                    ..tcp()
                },
                "quorum: belongs to a service's default check (one without a server)",
            ),
            (
                http(pb::HttpCheck {
                    expect: vec![
                        pb::StatusRange {
                            first: 200,
                            last: 299,
                        },
                        pb::StatusRange {
                            first: 500,
                            last: 404,
                        },
                    ],
                    ..Default::default()
                }),
                "http.expect[1]: 500-404 is not a range of status codes (100..599, first <= last)",
            ),
            (
                http(pb::HttpCheck {
                    expect: vec![pb::StatusRange {
                        first: 99,
                        last: 200,
                    }],
                    ..Default::default()
                }),
                "http.expect[0]: 99-200 is not a range of status codes (100..599, first <= last)",
            ),
            (
                http(pb::HttpCheck {
                    body_regex: "ok(".into(),
                    ..Default::default()
                }),
                "http.body_regex: does not compile: regex parse error: ok( ^ error: unclosed group",
            ),
            (
                http(pb::HttpCheck {
                    body_regex: "ok".into(),
                    body_contains: "ok".into(),
                    ..Default::default()
                }),
                "http.body_regex: give body_contains or body_regex, not both",
            ),
            (
                http(pb::HttpCheck {
                    path: "healthz".into(),
                    ..Default::default()
                }),
                "http.path: \"healthz\" is not a request path (it starts with / and has no spaces)",
            ),
            (
                http(pb::HttpCheck {
                    method: "get".into(),
                    ..Default::default()
                }),
                "http.method: \"get\" is not an HTTP method (capital letters, e.g. GET, HEAD)",
            ),
            (exec(&[]), "exec.command: is empty: name a program to run"),
            (exec(&[""]), "exec.command: is empty: name a program to run"),
            (
                dns("", pb::DnsType::A, &[]),
                "dns.name: \"\" is not a domain name",
            ),
            (
                dns("a..b", pb::DnsType::A, &[]),
                "dns.name: \"a..b\" is not a domain name",
            ),
            (
                dns("example.org", pb::DnsType::A, &["2001:db8::1"]),
                "dns.expect[0]: 2001:db8::1 cannot be the answer to a query of type A",
            ),
            (
                dns("example.org", pb::DnsType::Aaaa, &["x"]),
                "dns.expect[0]: \"x\" is not an IP address",
            ),
        ];
        for (spec, want) in cases {
            let got = check(&spec).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_owned()), "{spec:?}");
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(show(Duration::from_secs(2)), "2s");
        assert_eq!(show(Duration::from_millis(500)), "500ms");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
    }
}
