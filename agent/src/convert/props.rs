//! Properties of the request conversions. Every gRPC client is outside input: whatever a
//! request holds must become domain values or a [`FieldError`] whose path names a field the
//! request really has, so that a client can tell what to fix. Values the agent hands out must
//! come back as themselves when a client sends them back (`GetService` → `UpdateService`,
//! `Export` → `ApplyState`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_proto::v1 as pb;
use pb::table_command::Command as C;
use proptest::prelude::*;

use super::state::SpecInputError;
use super::{FieldError, config, ipvs, link, policy, state, stats, table};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every field name of the request messages the converters read.
const FIELDS: &[&str] = &[
    // ServiceKey, Service, ServiceOptions
    "protocol",
    "address",
    "port",
    "fwmark",
    "family",
    "key",
    "scheduler",
    "options",
    "destinations",
    "persistence_timeout",
    "ipv4_netmask",
    "ipv6_prefix_length",
    "one_packet",
    "sched_flag_1",
    "sched_flag_2",
    "sched_flag_3",
    "persistence_engine",
    // Destination, Tunnel
    "forwarding",
    "weight",
    "upper_threshold",
    "lower_threshold",
    "tunnel",
    "type",
    "checksum",
    // requests
    "service",
    "destination",
    "services",
    "prune",
    "dry_run",
    "commands",
    "mode",
    "command",
    "add_service",
    "edit_service",
    "delete_service",
    "clear",
    "add_destination",
    "edit_destination",
    "delete_destination",
    "zero",
    "links",
    "name",
    "addresses",
    "prefix_length",
    "attachments",
    "drift",
    "policy",
    "params",
    "interval",
    "quarantine_after",
    "policy_hash",
    "timeouts",
    "tcp",
    "tcp_fin",
    "udp",
    "daemon",
    "role",
    "interface",
    "sync_id",
    "sync_maxlen",
    "group",
    "ttl",
    "link",
    "up",
];

/// A refusal's path: `name` or `name[i]` segments, each a field of the messages, the first
/// one of `roots` (the request's own fields).
fn names_a_field(e: &FieldError, roots: &[&str]) -> Result<(), TestCaseError> {
    let segments: Vec<&str> = e.field.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        let name = match segment.split_once('[') {
            Some((name, index)) => {
                let digits = index.strip_suffix(']').unwrap_or("x");
                prop_assert!(
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                    "bad index in {:?}",
                    e.field
                );
                name
            }
            None => segment,
        };
        prop_assert!(
            FIELDS.contains(&name),
            "{:?} names no field: {}",
            e.field,
            e
        );
        if i == 0 {
            prop_assert!(
                roots.contains(&name),
                "{:?} is not under {:?}",
                e.field,
                roots
            );
        }
    }
    Ok(())
}

fn refusal<T>(result: &Result<T, FieldError>, roots: &[&str]) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) => names_a_field(e, roots),
    }
}

// ---- strategies -----------------------------------------------------------------------------

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        (0u8..3).prop_map(|b| IpAddr::V4(Ipv4Addr::new(10, 0, 0, b))),
    ]
}

/// Addresses mostly, then what clients get wrong: empty, near misses, garbage, huge.
fn arb_address() -> BoxedStrategy<String> {
    prop_oneof![
        4 => arb_ip().prop_map(|a| a.to_string()),
        1 => Just(String::new()),
        1 => "[0-9.:a-f%/]{1,20}",
        1 => "\\PC{0,16}",
        1 => (0usize..4000).prop_map(|n| "1".repeat(n)),
    ]
    .boxed()
}

fn arb_text() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-z0-9_]{0,16}",
        "\\PC{0,20}",
        "[\\x00-\\x20/:.]{0,4}",
        (0usize..3000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

fn arb_enum() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0i32..6, 1 => any::<i32>()]
}

fn arb_u32(common: u32) -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..=common, 1 => any::<u32>()]
}

fn arb_duration() -> BoxedStrategy<Option<prost_types::Duration>> {
    proptest::option::of(
        (
            prop_oneof![8 => 0i64..4000, 2 => any::<i64>(), 1 => Just(i64::MIN), 1 => Just(i64::MAX)],
            prop_oneof![3 => Just(0i32), 1 => 0i32..1_000_000_000, 1 => any::<i32>()],
        )
            .prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
    )
    .boxed()
}

fn arb_key() -> BoxedStrategy<pb::ServiceKey> {
    (
        arb_enum(),
        arb_address(),
        arb_u32(65535),
        prop_oneof![3 => Just(0u32), 1 => any::<u32>()],
        prop_oneof![3 => Just(0i32), 1 => arb_enum()],
    )
        .prop_map(|(protocol, address, port, fwmark, family)| pb::ServiceKey {
            protocol,
            address,
            port,
            fwmark,
            family,
        })
        .boxed()
}

fn arb_options() -> BoxedStrategy<pb::ServiceOptions> {
    (
        arb_duration(),
        prop_oneof![Just(String::new()), arb_address()],
        prop_oneof![Just(0u32), arb_u32(129)],
        any::<[bool; 4]>(),
        prop_oneof![Just(String::new()), arb_text()],
    )
        .prop_map(|(timeout, ipv4, ipv6, flags, pe)| pb::ServiceOptions {
            persistence_timeout: timeout,
            ipv4_netmask: ipv4,
            ipv6_prefix_length: ipv6,
            one_packet: flags[0],
            sched_flag_1: flags[1],
            sched_flag_2: flags[2],
            sched_flag_3: flags[3],
            persistence_engine: pe,
        })
        .boxed()
}

fn arb_dest() -> BoxedStrategy<pb::Destination> {
    let tunnel =
        (arb_enum(), arb_u32(65535), arb_enum()).prop_map(|(r#type, port, checksum)| pb::Tunnel {
            r#type,
            port,
            checksum,
        });
    (
        arb_address(),
        arb_u32(65535),
        arb_enum(),
        proptest::option::of(arb_u32(65536)),
        any::<[u32; 2]>(),
        proptest::option::of(tunnel),
    )
        .prop_map(
            |(address, port, forwarding, weight, [upper, lower], tunnel)| pb::Destination {
                address,
                port,
                forwarding,
                weight,
                upper_threshold: upper,
                lower_threshold: lower,
                tunnel,
                ..pb::Destination::default()
            },
        )
        .boxed()
}

fn arb_service() -> BoxedStrategy<pb::Service> {
    (
        proptest::option::of(arb_key()),
        prop_oneof![3 => 0i32..16, 1 => any::<i32>()],
        proptest::option::of(arb_options()),
        proptest::collection::vec(arb_dest(), 0..3),
    )
        .prop_map(|(key, scheduler, options, destinations)| pb::Service {
            key,
            scheduler,
            options,
            destinations,
            ..pb::Service::default()
        })
        .boxed()
}

fn arb_params() -> BoxedStrategy<Vec<pb::PolicyParam>> {
    proptest::collection::vec(
        (arb_text(), arb_text()).prop_map(|(key, value)| pb::PolicyParam { key, value }),
        0..3,
    )
    .boxed()
}

fn arb_dest_command() -> BoxedStrategy<pb::DestinationCommand> {
    (
        proptest::option::of(arb_key()),
        proptest::option::of(arb_dest()),
    )
        .prop_map(|(service, destination)| pb::DestinationCommand {
            service,
            destination,
        })
        .boxed()
}

fn arb_command() -> BoxedStrategy<pb::TableCommand> {
    let command = prop_oneof![
        arb_service().prop_map(C::AddService),
        arb_service().prop_map(C::EditService),
        arb_key().prop_map(C::DeleteService),
        Just(C::Clear(pb::ClearTable {})),
        arb_dest_command().prop_map(C::AddDestination),
        arb_dest_command().prop_map(C::EditDestination),
        arb_dest_command().prop_map(C::DeleteDestination),
        arb_key().prop_map(C::Zero),
    ];
    (any::<u32>(), proptest::option::of(command))
        .prop_map(|(line, command)| pb::TableCommand { line, command })
        .boxed()
}

fn arb_prefix() -> BoxedStrategy<pb::Prefix> {
    (arb_address(), arb_u32(129))
        .prop_map(|(address, prefix_length)| pb::Prefix {
            address,
            prefix_length,
        })
        .boxed()
}

fn arb_node_spec() -> BoxedStrategy<pb::NodeSpec> {
    let link = (
        prop_oneof!["dummy[0-2]", arb_text()],
        proptest::collection::vec(arb_prefix(), 0..3),
    )
        .prop_map(|(name, addresses)| pb::LinkSpec { name, addresses });
    let attachment = (
        prop_oneof!["[a-f0-9]{8}", arb_text()],
        proptest::collection::vec(arb_key(), 0..3),
        arb_params(),
        arb_duration(),
        arb_enum(),
        arb_u32(5),
    )
        .prop_map(
            |(policy, services, params, interval, mode, quarantine_after)| pb::AttachmentSpec {
                policy,
                services,
                params,
                interval,
                mode,
                quarantine_after,
            },
        );
    (
        proptest::collection::vec(link, 0..3),
        proptest::collection::vec(arb_service(), 0..3),
        proptest::collection::vec(attachment, 0..2),
        arb_enum(),
    )
        .prop_map(|(links, services, attachments, drift)| pb::NodeSpec {
            links,
            services,
            attachments,
            drift,
            checks: Vec::new(),
        })
        .boxed()
}

fn arb_daemon() -> BoxedStrategy<pb::Daemon> {
    (
        arb_enum(),
        prop_oneof!["[a-z0-9]{1,15}", arb_text()],
        arb_u32(256),
        arb_u32(70000),
        prop_oneof![
            Just(String::new()),
            "22[4-9]\\.0\\.0\\.[0-9]",
            arb_address()
        ],
        arb_u32(70000),
        arb_u32(256),
    )
        .prop_map(
            |(role, interface, sync_id, sync_maxlen, group, port, ttl)| pb::Daemon {
                role,
                interface,
                sync_id,
                sync_maxlen,
                group,
                port,
                ttl,
            },
        )
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Create, update, delete and name services; what converts goes back to itself.
    #[test]
    fn service_requests(service in proptest::option::of(arb_service()), key in proptest::option::of(arb_key())) {
        let create = ipvs::create_service(&pb::CreateServiceRequest { service: service.clone() });
        refusal(&create, &["service"])?;
        let update = ipvs::update_service(&pb::UpdateServiceRequest { service: service.clone() });
        refusal(&update, &["service"])?;
        refusal(&ipvs::key_field(key.as_ref(), "key"), &["key"])?;
        refusal(&ipvs::optional_key(key.as_ref(), "service"), &["service"])?;
        refusal(&stats::get_stats(&pb::GetStatsRequest { service: key.clone() }), &["service"])?;
        // Replies carry only what the kernel keeps: values that pass its rules come back.
        if let Some((svc, dests)) = create.ok().filter(|(svc, dests)| {
            svc.validate().is_ok() && dests.iter().all(|d| d.validate_for(&svc.key).is_ok())
        }) {
            let back = pb::Service {
                destinations: dests.iter().map(ipvs::dest_config_to_proto).collect(),
                ..ipvs::service_config_to_proto(&svc)
            };
            prop_assert_eq!(
                ipvs::create_service(&pb::CreateServiceRequest { service: Some(back) }),
                Ok((svc, dests))
            );
        }
        if let Ok(k) = ipvs::key_field(key.as_ref(), "key") {
            prop_assert_eq!(ipvs::service_key(&ipvs::key_to_proto(&k)), Ok(k));
        }
    }

    /// Add, update and delete real servers; the weight is given or kept.
    #[test]
    fn destination_requests(
        service in proptest::option::of(arb_key()),
        destination in proptest::option::of(arb_dest()),
    ) {
        let add = ipvs::add_destination(&pb::AddDestinationRequest {
            service: service.clone(),
            destination: destination.clone(),
        });
        refusal(&add, &["service", "destination"])?;
        let update = ipvs::update_destination(&pb::UpdateDestinationRequest {
            service: service.clone(),
            destination: destination.clone(),
        });
        refusal(&update, &["service", "destination"])?;
        prop_assert_eq!(&add, &update);
        let delete = ipvs::delete_destination(&pb::DeleteDestinationRequest {
            service: service.clone(),
            destination: destination.clone(),
        });
        refusal(&delete, &["service", "destination"])?;
        if let Ok(change) = add {
            prop_assert_eq!(
                change.weight_given,
                destination.as_ref().is_some_and(|d| d.weight.is_some())
            );
            prop_assert_eq!(
                delete,
                Ok((change.service, change.dest.addr, change.dest.port))
            );
            if change.dest.validate_for(&change.service).is_ok() {
                let back = ipvs::dest_config_to_proto(&change.dest);
                prop_assert_eq!(ipvs::destination(&back), Ok(change.dest));
            }
        }
    }

    /// The table's apply request, in both forms.
    #[test]
    fn table_apply_requests(
        services in proptest::collection::vec(arb_service(), 0..3),
        commands in proptest::collection::vec(arb_command(), 0..4),
        prune in any::<bool>(),
        dry_run in any::<bool>(),
        mode in arb_enum(),
        desired_form in any::<bool>(),
    ) {
        let req = pb::ApplyRequest {
            services,
            prune,
            dry_run,
            commands: if desired_form { vec![] } else { commands },
            mode,
        };
        let parsed = table::apply_request(&req);
        refusal(&parsed, &["services", "prune", "commands", "mode"])?;
        if let Ok(input) = parsed {
            prop_assert_eq!(input.dry_run, dry_run);
        }
    }

    /// The node spec of `ApplyState`; a spec the agent accepted and exports applies again
    /// as the same spec.
    #[test]
    fn node_specs(spec in arb_node_spec()) {
        match state::node_spec(&spec) {
            Ok(parsed) => {
                prop_assert_eq!(state::node_spec(&state::node_spec_to_proto(&parsed)), Ok(parsed));
            }
            Err(SpecInputError::Field(e)) => {
                names_a_field(&e, &["links", "services", "attachments", "drift"])?;
            }
            Err(SpecInputError::Spec(_)) => {}
        }
        let managed = state::managed(&spec);
        refusal(&managed, &["links", "services"])?;
        if let Ok(m) = managed {
            prop_assert_eq!(state::managed(&state::managed_to_proto(&m)), Ok(m));
        }
    }

    /// Links and addresses.
    #[test]
    fn link_requests(name in prop_oneof!["dummy[0-9]", arb_text()], prefix in arb_prefix(), up in any::<bool>()) {
        let created = link::create_dummy(&pb::CreateDummyRequest { name: name.clone() });
        refusal(&created, &["name"])?;
        prop_assert_eq!(&link::delete_link(&pb::DeleteLinkRequest { name: name.clone() }), &created);
        refusal(&link::set_link_state(&pb::SetLinkStateRequest { name: name.clone(), up }), &["name"])?;
        let add = link::add_address(&pb::AddAddressRequest {
            link: name.clone(),
            address: prefix.address.clone(),
            prefix_length: prefix.prefix_length,
        });
        refusal(&add, &["link", "address", "prefix_length"])?;
        let delete = link::delete_address(&pb::DeleteAddressRequest {
            link: name.clone(),
            address: prefix.address.clone(),
            prefix_length: prefix.prefix_length,
        });
        prop_assert_eq!(&add, &delete);
        refusal(&link::list_addresses(&pb::ListAddressesRequest { link: name }), &["link"])?;
        if let Ok((_, cidr)) = add {
            let back = link::prefix_to_proto(&cidr);
            prop_assert_eq!(link::prefix(&back.address, back.prefix_length), Ok(cidr));
        }
    }

    /// Timeouts and sync daemons.
    #[test]
    fn config_requests(
        timeouts in proptest::option::of(
            (arb_duration(), arb_duration(), arb_duration())
                .prop_map(|(tcp, tcp_fin, udp)| pb::Timeouts { tcp, tcp_fin, udp })
        ),
        daemon in proptest::option::of(arb_daemon()),
        role in arb_enum(),
    ) {
        let t = config::set_timeouts(&pb::SetTimeoutsRequest { timeouts });
        refusal(&t, &["timeouts"])?;
        if let Ok(t) = t {
            let back = pb::SetTimeoutsRequest { timeouts: Some(config::timeouts_to_proto(&t)) };
            prop_assert_eq!(config::set_timeouts(&back), Ok(t));
        }
        let d = config::start_daemon(&pb::StartDaemonRequest { daemon });
        refusal(&d, &["daemon"])?;
        if let Ok(d) = d {
            let back = pb::StartDaemonRequest { daemon: Some(config::daemon_to_proto(&d)) };
            prop_assert_eq!(config::start_daemon(&back), Ok(d));
        }
        refusal(&config::stop_daemon(&pb::StopDaemonRequest { role }), &["role"])?;
    }

    /// Policy attachments, and the stats watch.
    #[test]
    fn attach_and_watch_requests(
        policy_hash in arb_text(),
        services in proptest::collection::vec(arb_key(), 0..3),
        params in arb_params(),
        interval in arb_duration(),
        mode in arb_enum(),
        quarantine_after in arb_u32(5),
        service in proptest::option::of(arb_key()),
    ) {
        let req = pb::AttachRequest {
            policy_hash,
            services,
            params,
            interval,
            mode,
            quarantine_after,
        };
        let spec = policy::attach_spec(&req);
        refusal(&spec, &["services", "interval", "mode"])?;
        if let Ok(spec) = spec {
            let back = policy::attachment_to_proto("id", &spec);
            prop_assert_eq!(policy::attachment_spec(&back), Ok(spec));
        }
        let watch = stats::watch_stats(&pb::WatchStatsRequest { service, interval });
        refusal(&watch, &["service", "interval"])?;
        if let Ok((_, period)) = watch {
            prop_assert!(period >= stats::MIN_WATCH_INTERVAL && period <= stats::MAX_WATCH_INTERVAL);
        }
    }

    /// Timestamps from records: any value is a time, never a panic.
    #[test]
    fn record_times(seconds in any::<i64>(), nanos in any::<i32>()) {
        let t = state::time(Some(&prost_types::Timestamp { seconds, nanos }));
        if seconds >= 0 && (0..1_000_000_000).contains(&nanos) {
            prop_assert_eq!(state::time_to_proto(t), prost_types::Timestamp { seconds, nanos });
        }
    }
}
