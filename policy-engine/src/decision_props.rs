//! Properties of what the engine makes of a guest's answer. The guest is untrusted: whatever
//! it returns (names of servers that do not exist, twice, huge weights, control characters,
//! oversized state) must become a decision about the live service's servers or a typed
//! refusal, and the component bytes it comes as are read without trusting them either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_types::{
    Destination, DestinationEntry, MAX_WEIGHT, Protocol, Scheduler, Service, ServiceEntry,
    ServiceKey, Stats,
};
use proptest::prelude::*;
use proptest::sample::select;

use crate::answer::{self, Capped, State, WeightEntry, Weights};
use crate::contract::{check, shape};
use crate::error::OutputError;
use crate::limits::Limits;
use crate::output::{RawDecision, clip, sanitize, validate, validate_named};
use crate::server_name;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        // Few distinct addresses, so that servers and answers collide.
        (0u8..4).prop_map(|b| IpAddr::V4(Ipv4Addr::new(10, 0, 0, b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn arb_servers() -> impl Strategy<Value = Vec<DestinationEntry>> {
    // A service holds each real server once.
    proptest::collection::btree_map((arb_ip(), 0u16..3), any::<u32>(), 0..12).prop_map(|v| {
        v.into_iter()
            .map(|((addr, port), weight)| DestinationEntry {
                dest: Destination {
                    weight,
                    ..Destination::new(addr, port)
                },
                active_conns: 0,
                inactive_conns: 0,
                persistent_conns: 0,
                stats: Stats::default(),
            })
            .collect()
    })
}

fn arb_name(servers: &[DestinationEntry]) -> BoxedStrategy<String> {
    let known: Vec<String> = servers.iter().map(|s| server_name(&s.dest)).collect();
    let odd = prop_oneof![
        "\\PC{0,20}",
        "[\\x00-\\x1f\\x7f]{0,8}",
        (0usize..2000).prop_map(|n| "9".repeat(n)),
        arb_ip().prop_map(|a| format!("{a}:0")),
    ];
    if known.is_empty() {
        odd.boxed()
    } else {
        prop_oneof![3 => select(known), 1 => odd].boxed()
    }
}

fn arb_weight() -> impl Strategy<Value = u32> {
    prop_oneof![0..=MAX_WEIGHT, any::<u32>(), Just(MAX_WEIGHT + 1)]
}

fn arb_scheduler_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(Scheduler::KNOWN.to_vec()).prop_map(|s| s.name().to_owned()),
        "\\PC{0,12}",
        (0usize..5000).prop_map(|n| "r".repeat(n)),
    ]
}

/// A service, its servers and an answer about them.
fn arb_case() -> impl Strategy<Value = (Vec<DestinationEntry>, RawDecision, Vec<Scheduler>)> {
    arb_servers().prop_flat_map(|servers| {
        let answer = (
            proptest::collection::vec((arb_name(&servers), arb_weight()), 0..16),
            proptest::option::of(arb_scheduler_name()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            prop_oneof!["\\PC{0,24}", "[\\x00-\\x1f a-z]{0,24}"],
        )
            .prop_map(|(weights, scheduler, state, reason)| RawDecision {
                weights,
                scheduler,
                state,
                reason,
            });
        let schedulers = proptest::sample::subsequence(Scheduler::KNOWN.to_vec(), 0..=14);
        (Just(servers), answer, schedulers)
    })
}

fn service() -> ServiceEntry {
    ServiceEntry {
        service: Service::new(
            ServiceKey::Endpoint {
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                port: 80,
            },
            Scheduler::Wlc,
        ),
        stats: Stats::default(),
    }
}

fn limits() -> Limits {
    Limits {
        state_bytes: 32,
        reason_bytes: 16,
        ..Limits::default()
    }
}

/// The decision names only the service's servers, each once, and only with weights that
/// change; the scheduler is one the kernel has; the text is free of control characters.
fn check_decision(
    servers: &[DestinationEntry],
    raw: &RawDecision,
    schedulers: &[Scheduler],
    result: Result<crate::output::Decision, OutputError>,
) -> Result<(), TestCaseError> {
    let limits = limits();
    match result {
        Ok(d) => {
            for (i, change) in d.weights.iter().enumerate() {
                prop_assert!(
                    servers.iter().any(|s| s.dest
                        == Destination {
                            weight: change.from,
                            ..change.dest
                        }),
                    "{:?} is not a server",
                    change.dest
                );
                prop_assert!(change.dest.weight <= MAX_WEIGHT);
                prop_assert_ne!(change.dest.weight, change.from);
                prop_assert!(
                    d.weights[..i]
                        .iter()
                        .all(|c| (c.dest.addr, c.dest.port) != (change.dest.addr, change.dest.port))
                );
            }
            if let Some(s) = &d.scheduler {
                prop_assert!(schedulers.contains(s));
                prop_assert_ne!(s, &Scheduler::Wlc);
            }
            prop_assert!(!d.reason.chars().any(char::is_control));
            prop_assert!(d.reason.len() <= limits.reason_bytes);
            prop_assert!(
                d.state
                    .as_ref()
                    .is_none_or(|s| s.len() <= limits.state_bytes)
            );
            prop_assert!(raw.weights.len() <= servers.len());
        }
        Err(OutputError::UnknownServer(name)) => {
            prop_assert!(name.len() <= 256);
            prop_assert!(!name.chars().any(char::is_control));
        }
        Err(OutputError::UnknownScheduler(name)) => {
            prop_assert!(name.len() <= limits.reason_bytes);
        }
        Err(OutputError::DuplicateServer(name)) | Err(OutputError::Weight { server: name, .. }) => {
            prop_assert!(servers.iter().any(|s| server_name(&s.dest) == name));
        }
        Err(OutputError::StateTooLarge { len, limit })
        | Err(OutputError::ReasonTooLarge { len, limit }) => {
            prop_assert!(len > limit);
        }
        Err(e) => return Err(TestCaseError::fail(format!("unexpected refusal {e}"))),
    }
    Ok(())
}

fn capped<const F: u8>(text: String, whole: bool) -> Capped<F> {
    Capped {
        len: text.len(),
        text,
        whole,
    }
}

proptest! {
    #![proptest_config(config())]

    /// Raw answers against the live servers.
    #[test]
    fn answers_name_only_live_servers((servers, raw, schedulers) in arb_case()) {
        let result = validate(raw.clone(), &service(), &servers, &schedulers, &limits());
        check_decision(&servers, &raw, &schedulers, result)?;
    }

    /// The lifted answer, caps and all, through to validation.
    #[test]
    fn lifted_answers_are_decided_or_refused(
        (servers, raw, schedulers) in arb_case(),
        too_many in proptest::option::of(any::<usize>()),
        whole in any::<[bool; 3]>(),
        over in any::<usize>(),
    ) {
        let limits = limits();
        let decision = answer::Decision {
            weights: match too_many {
                Some(len) => Weights::TooMany { len },
                None => Weights::Within(
                    raw.weights
                        .iter()
                        .zip(whole.iter().cycle())
                        .map(|((name, weight), whole)| WeightEntry {
                            server: capped(name.clone(), *whole),
                            weight: *weight,
                        })
                        .collect(),
                ),
            },
            scheduler: raw.scheduler.clone().map(|s| capped(s, whole[1])),
            state: raw.state.clone().map(|s| {
                if whole[2] { State::Within(s) } else { State::Over { len: over } }
            }),
            reason: capped(raw.reason.clone(), whole[0]),
        };
        let names: Vec<String> = servers.iter().map(|s| server_name(&s.dest)).collect();
        match decision.into_raw(servers.len(), &limits) {
            Ok(lifted) => {
                let result = validate_named(lifted.clone(), &service(), &servers, &names, &schedulers, &limits);
                check_decision(&servers, &lifted, &schedulers, result)?;
            }
            Err(OutputError::TooManyWeights { len, servers: n }) => {
                prop_assert_eq!(Some(len), too_many);
                prop_assert_eq!(n, servers.len());
            }
            Err(OutputError::ReasonTooLarge { .. }) => prop_assert!(!whole[0]),
            Err(OutputError::StateTooLarge { len, .. }) => prop_assert_eq!(len, over),
            Err(e) => return Err(TestCaseError::fail(format!("unexpected refusal {e}"))),
        }
    }

    /// A server's name is how the policy is told it: its socket address.
    #[test]
    fn server_names_are_socket_addresses(addr in arb_ip(), port in any::<u16>()) {
        let name = server_name(&Destination::new(addr, port));
        prop_assert_eq!(name, std::net::SocketAddr::new(addr, port).to_string());
    }

    /// Log lines and reasons: bounded, on a character boundary, no control characters.
    #[test]
    fn text_is_clipped_and_sanitized(text in "\\PC{0,64}|[\\x00-\\x7f]{0,64}", limit in 0usize..80) {
        let clipped = clip(&text, limit);
        prop_assert!(clipped.len() <= limit);
        prop_assert!(!clipped.chars().any(char::is_control));
        prop_assert_eq!(sanitize(&text).chars().count(), text.chars().count());
    }

    /// Component bytes: any file is a shape or a load error.
    #[test]
    fn any_component_bytes_are_read_or_refused(
        layer in prop_oneof![Just([0x0du8, 0, 1, 0]), Just([1, 0, 0, 0]), any::<[u8; 4]>()],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = b"\0asm".to_vec();
        bytes.extend(layer);
        bytes.extend(body);
        if let Ok(s) = shape(&bytes) {
            let _ = check(&s);
            prop_assert_eq!(layer, [0x0d, 0, 1, 0], "only components have a shape");
        }
    }
}
