//! Properties of node files: any YAML or TOML document is read or refused with an error that
//! names where, never a panic; and a spec written, read back and written again is the same
//! text in both formats.

use ipvs_proto::v1 as pb;
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{Format, SpecError, parse, render};
use crate::durations;
use crate::ipvsadm::props::table;
use crate::ipvsadm::request;

/// Keys the node file knows, at any level.
const KEYS: &[&str] = &[
    "drift",
    "links",
    "name",
    "addresses",
    "services",
    "tcp",
    "udp",
    "sctp",
    "fwmark",
    "family",
    "scheduler",
    "persistent",
    "netmask",
    "one-packet",
    "sched-flags",
    "pe",
    "servers",
    "address",
    "forward",
    "weight",
    "upper",
    "lower",
    "tunnel",
    "type",
    "port",
    "checksum",
    "attachments",
    "policy",
    "params",
    "interval",
    "mode",
    "quarantine-after",
    "check",
    "sorry-server",
    "quorum",
    "http",
    "https",
    "dns",
    "grpc",
    "exec",
    "command",
    "expect",
    "path",
    "timeout",
    "rise",
    "fall",
    "initial",
    "jitter",
    "connect-port",
    "on-failure",
    "body-regex",
    "bogus",
    "",
];

/// Values the node file knows, as text.
const TEXTS: &[&str] = &[
    "report",
    "enforce",
    "dry-run",
    "eth0",
    "lo",
    "10.0.0.1/24",
    "10.0.0.1",
    "2001:db8::1/64",
    "10.0.0.1/0",
    "10.0.0.1/33",
    "10.0.0.1:80",
    "[2001:db8::1]:80",
    "[::1]",
    "10.0.0.1:0",
    "10.0.0.1:65536",
    "inet",
    "inet6",
    "rr",
    "wrr",
    "sh",
    "mh",
    "bogus",
    "sh-port",
    "sh-fallback",
    "flag-1",
    "flag-3",
    "sip",
    "masq",
    "route",
    "tunnel",
    "local",
    "ipip",
    "gue",
    "gre",
    "none",
    "csum",
    "remcsum",
    "tcp:10.0.0.1:80",
    "udp:[2001:db8::1]:53",
    "fwmark:1",
    "fwmark6:7",
    "fwmark:0",
    "2s",
    "500ms",
    "1m",
    "0s",
    "0.5ms",
    "99999999999h",
    "255.255.255.0",
    "24",
    "128",
    "300",
    "-1",
    "",
    " ",
    "\u{0}",
    "é",
];

/// A value of any shape, leaning on the node file's keys and words.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => proptest::sample::select(TEXTS).prop_map(|s| Value::String(s.into())),
        1 => any::<String>().prop_map(Value::String),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        4 => proptest::sample::select(KEYS).prop_map(String::from),
                        1 => any::<String>(),
                    ],
                    inner,
                ),
                0..5,
            )
            .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A document: mostly the node file's top level with values of any shape.
fn document() -> impl Strategy<Value = Value> {
    let top = proptest::collection::vec(
        (
            proptest::sample::select(&["drift", "links", "services", "attachments", "bogus"][..]),
            value(),
        ),
        0..4,
    )
    .prop_map(|kvs| {
        Value::Object(
            kvs.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Map<_, _>>(),
        )
    });
    prop_oneof![3 => top, 1 => value()]
}

/// Text of either format that is not made from a document: garbage and deep nesting.
fn raw_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-\\[\\]{}:=,\"' \n\ta-z0-9.#]{0,80}",
        (
            1usize..5000,
            proptest::sample::select(&["[", "{", "- ", "a: ", "[[", "a = ["][..])
        )
            .prop_map(|(n, s)| s.repeat(n)),
        (1usize..200).prop_map(|n| format!("services:\n{}", "  - servers:\n".repeat(n))),
    ]
}

/// A read either succeeds or fails with an error that says where.
fn check_read(text: &str, format: Format) -> Result<(), TestCaseError> {
    match parse("node.yaml", text, format) {
        Ok(_) => {}
        Err(SpecError::Syntax {
            line,
            column,
            message,
            ..
        }) => {
            prop_assert!(line >= 1 && column >= 1, "{line}:{column} for {text:?}");
            prop_assert!(!message.is_empty());
        }
        Err(SpecError::Invalid { path, reason, .. }) => {
            prop_assert!(!path.is_empty(), "no path for {reason:?} in {text:?}");
            prop_assert!(!reason.is_empty());
        }
        Err(SpecError::Unplaced { message, .. }) => prop_assert!(!message.is_empty()),
        Err(e) => prop_assert!(false, "{e:?} from reading {text:?}"),
    }
    Ok(())
}

/// A valid check of no service yet: a kind, timings, and a port to probe (fwmark services'
/// servers may have none).
fn check() -> impl Strategy<Value = pb::CheckSpec> {
    use pb::check_spec::Kind;
    let kind = prop_oneof![
        Just(Kind::Tcp(pb::TcpCheck {})),
        (
            proptest::sample::select(&["", "GET", "HEAD"][..]),
            proptest::collection::vec((100u32..=599, 0u32..50), 0..3),
            any::<bool>(),
        )
            .prop_map(|(method, expect, tls)| Kind::Http(pb::HttpCheck {
                method: method.into(),
                expect: expect
                    .into_iter()
                    .map(|(first, span)| pb::StatusRange {
                        first,
                        last: (first + span).min(599),
                    })
                    .collect(),
                tls: tls.then(pb::TlsOptions::default),
                ..Default::default()
            })),
        Just(Kind::Exec(pb::ExecCheck {
            command: vec!["/bin/true".into()],
        })),
    ];
    (
        kind,
        10u64..100_000,
        0u32..5,
        0u32..5,
        0i32..3,
        0i32..3,
        1u32..65536,
    )
        .prop_map(
            |(kind, interval, rise, fall, initial, on_failure, connect_port)| pb::CheckSpec {
                kind: Some(kind),
                interval: durations::from_millis(interval),
                rise,
                fall,
                initial,
                on_failure,
                connect_port,
                ..Default::default()
            },
        )
}

/// A valid spec: an ipvsadm table with links, attachments and a drift mode.
fn spec() -> impl Strategy<Value = pb::NodeSpec> {
    let links = proptest::collection::vec(proptest::collection::btree_set(1u32..=32, 0..3), 0..3);
    let attachment = (
        any::<u32>(),
        proptest::collection::btree_map("[a-z][a-z0-9_-]{0,8}", "[ -~]{0,12}", 0..3),
        proptest::option::of(1u64..100_000_000),
        0i32..3,
        any::<u32>(),
    );
    (
        table(),
        any::<Vec<bool>>(),
        links,
        proptest::collection::vec(attachment, 0..3),
        0i32..3,
        proptest::collection::vec(
            (
                proptest::option::of(check()),
                proptest::option::of(check()),
                0u32..3,
            ),
            0..4,
        ),
    )
        .prop_map(|(table, local, links, attachments, drift, checked)| {
            let services: Vec<pb::Service> = table
                .iter()
                .zip(local.iter().chain(std::iter::repeat(&false)))
                .map(|((s, dests), local)| {
                    let mut service = request::service(s).unwrap_or_default();
                    service.destinations = dests.iter().map(request::destination).collect();
                    // Directly routed servers may be local instead.
                    for d in &mut service.destinations {
                        if *local && d.forwarding == pb::ForwardingMethod::DirectRoute as i32 {
                            d.forwarding = pb::ForwardingMethod::Local as i32;
                        }
                    }
                    service
                })
                .collect();
            let keys: Vec<pb::ServiceKey> = table
                .iter()
                .map(|(s, _)| request::service_key(&s.key))
                .collect();
            // The first services get a default check and one for their first server.
            let mut checks = Vec::new();
            for ((service, key), (default, own, quorum)) in services.iter().zip(&keys).zip(checked)
            {
                if let Some(c) = default {
                    checks.push(pb::CheckSpec {
                        service: Some(key.clone()),
                        quorum,
                        ..c
                    });
                }
                if let (Some(c), Some(d)) = (own, service.destinations.first()) {
                    let addr: std::net::IpAddr = d
                        .address
                        .parse()
                        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                    checks.push(pb::CheckSpec {
                        service: Some(key.clone()),
                        server: std::net::SocketAddr::new(addr, u16::try_from(d.port).unwrap_or(0))
                            .to_string(),
                        ..c
                    });
                }
            }
            pb::NodeSpec {
                links: links
                    .into_iter()
                    .enumerate()
                    .map(|(i, lens)| pb::LinkSpec {
                        name: format!("vip{i}"),
                        addresses: lens
                            .into_iter()
                            .map(|len| pb::Prefix {
                                address: format!("192.168.{i}.{len}"),
                                prefix_length: len,
                            })
                            .collect(),
                    })
                    .collect(),
                attachments: if keys.is_empty() {
                    Vec::new()
                } else {
                    attachments
                        .into_iter()
                        .enumerate()
                        .map(
                            |(i, (pick, params, interval, mode, quarantine))| pb::AttachmentSpec {
                                policy: format!("policy-{i}"),
                                services: vec![keys[pick as usize % keys.len()].clone()],
                                params: params
                                    .into_iter()
                                    .map(|(key, value)| pb::PolicyParam { key, value })
                                    .collect(),
                                interval: interval.and_then(durations::from_millis),
                                mode,
                                quarantine_after: quarantine,
                            },
                        )
                        .collect()
                },
                services,
                drift,
                checks,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any document, as YAML and as TOML, is read or refused with its line or its path.
    #[test]
    fn any_document_reads_or_names_where(doc in document()) {
        if let Ok(yaml) = serde_norway::to_string(&doc) {
            check_read(&yaml, Format::Yaml)?;
        }
        if let Ok(toml) = toml::to_string(&doc) {
            check_read(&toml, Format::Toml)?;
        }
        let json = doc.to_string();
        check_read(&json, Format::Yaml)?;
    }

    /// Any text is read or refused with where, in both formats.
    #[test]
    fn any_text_reads_or_names_where(text in raw_text()) {
        check_read(&text, Format::Yaml)?;
        check_read(&text, Format::Toml)?;
    }

    /// A spec written, read back and written again gives the same text and the same spec.
    #[test]
    fn encode_decode_encode_is_the_identity(spec in spec()) {
        for format in [Format::Yaml, Format::Toml] {
            let text = render(&spec, format)
                .map_err(|e| TestCaseError::fail(format!("cannot write {spec:?}: {e}")))?;
            let read = parse("node", &text, format)
                .map_err(|e| TestCaseError::fail(format!("{text}\nrefused: {e}")))?;
            let again = render(&read, format)
                .map_err(|e| TestCaseError::fail(format!("cannot write {read:?}: {e}")))?;
            prop_assert_eq!(&again, &text);
            prop_assert_eq!(parse("node", &again, format).ok(), Some(read));
        }
    }
}

/// Words of the node file: what [`text`] writes it reads back, and any text is read or
/// refused with a message.
mod words {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use crate::ipvsadm::command::ServiceKey;
    use crate::ipvsadm::resolve::L4;
    use crate::spec::text;

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        ]
    }

    fn key() -> impl Strategy<Value = ServiceKey> {
        let protocol = proptest::sample::select(&[L4::Tcp, L4::Udp, L4::Sctp][..]);
        prop_oneof![
            (protocol, ip(), any::<u16>()).prop_map(|(protocol, addr, port)| ServiceKey::Addr {
                protocol,
                addr,
                port
            }),
            (1u32.., any::<bool>()).prop_map(|(mark, ipv6)| ServiceKey::Fwmark { mark, ipv6 }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Addresses, references and intervals read back as written.
        #[test]
        fn words_read_back_as_written(
            addr in ip(),
            port in any::<u16>(),
            key in key(),
            ms in 1u64..=u64::from(u32::MAX) * 1000,
        ) {
            let written = text::endpoint_text(addr, port);
            prop_assert_eq!(text::address(&written), Ok((addr, Some(port))));
            prop_assert_eq!(text::address(&addr.to_string()), Ok((addr, None)));
            prop_assert_eq!(text::reference(&text::reference_text(&key)), Ok(key));
            prop_assert_eq!(text::interval_ms(&text::interval_text(ms)), Ok(ms));
        }

        /// Any text is a word or refused with a message.
        #[test]
        fn any_word_is_read_or_refused(
            s in prop_oneof![
                any::<String>(),
                "(tcp|udp|sctp|fwmark|fwmark6)?:?[0-9a-f:.\\[\\]]{0,40}",
                "[0-9.]{0,400}(ms|s|m|h|)",
            ],
        ) {
            for r in [
                text::address(&s).map(|_| ()),
                text::reference(&s).map(|_| ()),
                text::interval_ms(&s).map(|_| ()),
            ] {
                if let Err(e) = r {
                    prop_assert!(!e.is_empty());
                }
            }
        }
    }
}

/// The API's durations, which specs carry as persistence timeouts and intervals: any value
/// the agent sends converts without a panic, and what ipvsctl sends converts back.
mod api_durations {
    use proptest::prelude::*;

    use crate::durations;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn durations_convert_both_ways(
            seconds in any::<i64>(),
            nanos in any::<i32>(),
            secs in any::<u32>(),
            ms in any::<u64>(),
        ) {
            let d = prost_types::Duration { seconds, nanos };
            let whole = durations::secs(Some(&d));
            if seconds <= 0 {
                prop_assert_eq!(whole, 0);
            }
            let _ = durations::millis(Some(&d));
            prop_assert_eq!(durations::secs(durations::from_secs(secs).as_ref()), secs);
            prop_assert_eq!(durations::millis(durations::from_millis(ms).as_ref()), ms);
        }
    }
}
