//! Rendering from hand-built answers, text and JSON.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_proto::v1 as pb;
use serde_json::json;

use super::*;
use crate::output::to_json;

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// 2026-11-25T10:00:00Z.
const T0: i64 = 1_795_600_800;

fn ipvs_change(kind: pb::ChangeKind, description: &str) -> pb::StateChange {
    pb::StateChange {
        change: Some(pb::state_change::Change::Ipvs(pb::Change {
            kind: kind.into(),
            description: description.into(),
            ..Default::default()
        })),
    }
}

fn node_change(description: &str) -> pb::StateChange {
    pb::StateChange {
        change: Some(pb::state_change::Change::Node(pb::NodeChange {
            description: description.into(),
        })),
    }
}

fn plan(applied: bool, revision: u64) -> pb::ApplyStateResponse {
    pb::ApplyStateResponse {
        changes: vec![
            node_change("ip link add ipvs0 type dummy"),
            node_change("ip addr add 10.0.0.1/32 dev ipvs0"),
            ipvs_change(pb::ChangeKind::CreateService, "-A -t 10.0.0.1:80 -s wlc"),
            ipvs_change(
                pb::ChangeKind::AddDestination,
                "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
            ),
            pb::StateChange { change: None },
        ],
        applied,
        revision,
        recorded: applied,
    }
}

#[test]
fn applies_print_changes_then_the_revision() {
    assert_eq!(
        apply_text(&ApplyView::from(&plan(true, 7))),
        "ip link add ipvs0 type dummy\n\
         ip addr add 10.0.0.1/32 dev ipvs0\n\
         -A -t 10.0.0.1:80 -s wlc\n\
         -a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1\n\
         \n\
         revision 7\n"
    );
    assert_eq!(
        apply_text(&ApplyView::from(&plan(false, 6))),
        "would: ip link add ipvs0 type dummy\n\
         would: ip addr add 10.0.0.1/32 dev ipvs0\n\
         would: -A -t 10.0.0.1:80 -s wlc\n\
         would: -a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1\n\
         would: \n\
         dry run against revision 6\n"
    );
    let nothing = pb::ApplyStateResponse {
        changes: vec![],
        applied: true,
        revision: 6,
        recorded: false,
    };
    assert_eq!(
        apply_text(&ApplyView::from(&nothing)),
        "no changes (revision 6)\n"
    );
    let declared_only = pb::ApplyStateResponse {
        recorded: true,
        revision: 7,
        ..nothing
    };
    assert_eq!(
        apply_text(&ApplyView::from(&declared_only)),
        "no changes to the node; the declaration is recorded as revision 7\n"
    );
}

#[test]
fn apply_json_names_each_change_kind() {
    let v = serde_json::to_value(ApplyView::from(&plan(true, 7))).expect("serialises");
    assert_eq!(
        v,
        json!({
            "revision": 7,
            "applied": true,
            "recorded": true,
            "changes": [
                {"kind": "node", "description": "ip link add ipvs0 type dummy"},
                {"kind": "node", "description": "ip addr add 10.0.0.1/32 dev ipvs0"},
                {"kind": "create-service", "description": "-A -t 10.0.0.1:80 -s wlc"},
                {"kind": "add-destination", "description": "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1"},
                {"kind": "unknown", "description": ""},
            ],
        })
    );
    let kinds = [
        (pb::ChangeKind::UpdateService, "update-service"),
        (pb::ChangeKind::DeleteService, "delete-service"),
        (pb::ChangeKind::UpdateDestination, "update-destination"),
        (pb::ChangeKind::DeleteDestination, "delete-destination"),
        (pb::ChangeKind::Unspecified, "ipvs"),
    ];
    for (kind, word) in kinds {
        assert_eq!(ChangeView::from_pb(&ipvs_change(kind, "x")).kind, word);
    }
}

#[test]
fn diff_prints_the_plan_and_json_has_exactly_revision_and_changes() {
    let r = pb::ApplyStateResponse {
        changes: vec![node_change("ip addr del 10.0.0.9/32 dev ipvs0")],
        applied: false,
        revision: 3,
        recorded: false,
    };
    assert_eq!(
        diff_text(&DiffView::from(&r)),
        "ip addr del 10.0.0.9/32 dev ipvs0\n"
    );
    assert_eq!(
        to_json(&DiffView::from(&r)),
        "{\n  \"revision\": 3,\n  \"changes\": [\n    {\n      \"kind\": \"node\",\n      \"description\": \"ip addr del 10.0.0.9/32 dev ipvs0\"\n    }\n  ]\n}\n"
    );
    let same = pb::ApplyStateResponse {
        changes: vec![],
        applied: false,
        revision: 3,
        recorded: false,
    };
    assert_eq!(
        diff_text(&DiffView::from(&same)),
        "no changes (revision 3)\n"
    );
    assert_eq!(
        serde_json::to_value(DiffView::from(&same)).expect("serialises"),
        json!({"revision": 3, "changes": []})
    );
}

fn declared() -> pb::NodeSpec {
    pb::NodeSpec {
        links: vec![pb::LinkSpec {
            name: "ipvs0".into(),
            addresses: vec![pb::Prefix {
                address: "10.0.0.1".into(),
                prefix_length: 32,
            }],
        }],
        services: vec![pb::Service {
            key: Some(crate::ipvsadm::request::service_key(
                &crate::ipvsadm::command::ServiceKey::Fwmark {
                    mark: 1,
                    ipv6: false,
                },
            )),
            scheduler: pb::Scheduler::Rr.into(),
            ..Default::default()
        }],
        attachments: vec![],
        drift: pb::DriftMode::Enforce.into(),
        checks: vec![],
    }
}

#[test]
fn state_shows_revision_drift_mode_and_last_check() {
    let mut s = pb::GetStateResponse {
        revision: 7,
        spec: Some(declared()),
        applied_at: at(T0),
        drift_mode: pb::DriftMode::Enforce.into(),
        last_check: at(T0 + 59),
        drift: vec![],
        health: vec![],
    };
    assert_eq!(
        state_text(&s),
        "revision 7, applied 2026-11-25T10:00:00Z\n\
         declared: 1 link, 1 service, 0 attachments\n\
         drift mode: enforce\n\
         last check: 2026-11-25T10:00:59Z: no drift\n"
    );
    s.drift = vec![
        pb::Drift {
            description: "ip addr add 10.0.0.1/32 dev ipvs0".into(),
        },
        pb::Drift {
            description: "-e -f 1 -r 10.0.1.1 -g -w 1".into(),
        },
    ];
    s.drift_mode = pb::DriftMode::Report.into();
    assert_eq!(
        state_text(&s),
        "revision 7, applied 2026-11-25T10:00:00Z\n\
         declared: 1 link, 1 service, 0 attachments\n\
         drift mode: report\n\
         last check: 2026-11-25T10:00:59Z: 2 differences\n\
         \x20 ip addr add 10.0.0.1/32 dev ipvs0\n\
         \x20 -e -f 1 -r 10.0.1.1 -g -w 1\n"
    );
    assert_eq!(
        state_json(&s),
        json!({
            "revision": 7,
            "applied_at": "2026-11-25T10:00:00Z",
            "drift_mode": "report",
            "last_check": "2026-11-25T10:00:59Z",
            "drift": ["ip addr add 10.0.0.1/32 dev ipvs0", "-e -f 1 -r 10.0.1.1 -g -w 1"],
            "spec": {
                "drift": "enforce",
                "links": [{"name": "ipvs0", "addresses": ["10.0.0.1/32"]}],
                "services": [{"fwmark": 1, "scheduler": "rr"}],
            },
        })
    );
    let fresh = pb::GetStateResponse::default();
    assert_eq!(
        state_text(&fresh),
        "revision 0 (nothing applied yet)\n\
         declared: 0 links, 0 services, 0 attachments\n\
         drift mode: agent default\n\
         last check: never\n"
    );
    assert_eq!(
        state_json(&fresh),
        json!({
            "revision": 0,
            "applied_at": null,
            "drift_mode": null,
            "last_check": null,
            "drift": [],
            "spec": null,
        })
    );
}

#[test]
fn revisions_print_as_a_table_newest_first() {
    let list: Vec<RevisionView> = [
        pb::Revision {
            revision: 12,
            applied_at: at(T0 + 60),
            origin: "drain".into(),
        },
        pb::Revision {
            revision: 11,
            applied_at: at(T0),
            origin: "apply".into(),
        },
        pb::Revision {
            revision: 10,
            applied_at: None,
            origin: "rollback".into(),
        },
    ]
    .iter()
    .map(RevisionView::from)
    .collect();
    assert_eq!(
        revisions_text(&list),
        "REVISION  APPLIED AT            ORIGIN\n\
         \x20     12  2026-11-25T10:01:00Z  drain\n\
         \x20     11  2026-11-25T10:00:00Z  apply\n\
         \x20     10  -                     rollback\n"
    );
    assert_eq!(
        serde_json::to_value(&list[..2]).expect("serialises"),
        json!([
            {"revision": 12, "applied_at": "2026-11-25T10:01:00Z", "origin": "drain"},
            {"revision": 11, "applied_at": "2026-11-25T10:00:00Z", "origin": "apply"},
        ])
    );
}

#[test]
fn events_print_one_line_each() {
    use pb::watch_state_events_response::Event;
    let drift = |d: &[&str]| {
        d.iter()
            .map(|s| pb::Drift {
                description: (*s).into(),
            })
            .collect()
    };
    let cases = [
        (
            pb::WatchStateEventsResponse {
                time: at(T0),
                event: Some(Event::Applied(pb::Revision {
                    revision: 7,
                    applied_at: at(T0),
                    origin: "apply".into(),
                })),
            },
            "2026-11-25T10:00:00Z applied revision 7 (apply)\n",
            "{\"event\":\"applied\",\"origin\":\"apply\",\"revision\":7,\"time\":\"2026-11-25T10:00:00Z\"}\n",
        ),
        (
            pb::WatchStateEventsResponse {
                time: at(T0 + 1),
                event: Some(Event::DriftFound(pb::DriftFound {
                    drift: drift(&["ip link add ipvs0 type dummy", "-A -f 1 -s rr"]),
                })),
            },
            "2026-11-25T10:00:01Z drift found: ip link add ipvs0 type dummy; -A -f 1 -s rr\n",
            "{\"drift\":[\"ip link add ipvs0 type dummy\",\"-A -f 1 -s rr\"],\"event\":\"drift-found\",\"time\":\"2026-11-25T10:00:01Z\"}\n",
        ),
        (
            pb::WatchStateEventsResponse {
                time: at(T0 + 2),
                event: Some(Event::DriftRepaired(pb::DriftRepaired {
                    drift: drift(&["-A -f 1 -s rr"]),
                })),
            },
            "2026-11-25T10:00:02Z drift repaired: -A -f 1 -s rr\n",
            "{\"drift\":[\"-A -f 1 -s rr\"],\"event\":\"drift-repaired\",\"time\":\"2026-11-25T10:00:02Z\"}\n",
        ),
        (
            pb::WatchStateEventsResponse {
                time: None,
                event: None,
            },
            "- unknown event\n",
            "{\"event\":\"unknown\",\"time\":null}\n",
        ),
    ];
    for (e, text, json) in cases {
        assert_eq!(event_text(&e), text);
        assert_eq!(event_json(&e), json);
    }
}

fn progress(phase: pb::DrainPhase) -> pb::DrainResponse {
    pb::DrainResponse {
        phase: phase.into(),
        ..Default::default()
    }
}

#[test]
fn drains_print_each_step() {
    let s = server_text(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)), 80);
    let cases = [
        (
            pb::DrainResponse {
                previous_weight: 5,
                ..progress(pb::DrainPhase::WeightZero)
            },
            "draining 10.0.1.1:80: weight 0 (was 5)\n",
        ),
        (
            pb::DrainResponse {
                active_connections: 2,
                inactive_connections: 1,
                elapsed: crate::durations::from_millis(12_400),
                ..progress(pb::DrainPhase::Waiting)
            },
            "10.0.1.1:80: 2 active, 1 inactive, 12 s\n",
        ),
        (
            pb::DrainResponse {
                elapsed: crate::durations::from_millis(31_000),
                removed: true,
                revision: 7,
                ..progress(pb::DrainPhase::Done)
            },
            "10.0.1.1:80: drained in 31 s, removed (revision 7)\n",
        ),
        (
            pb::DrainResponse {
                elapsed: crate::durations::from_millis(300_000),
                active_connections: 2,
                timed_out: true,
                removed: true,
                revision: 8,
                ..progress(pb::DrainPhase::Done)
            },
            "10.0.1.1:80: timed out after 300 s with 2 active; removed (revision 8)\n",
        ),
        (
            pb::DrainResponse {
                elapsed: crate::durations::from_millis(4_000),
                removed: false,
                revision: 7,
                ..progress(pb::DrainPhase::Done)
            },
            "10.0.1.1:80: drained in 4 s, kept at weight 0 (revision 7)\n",
        ),
    ];
    for (p, want) in cases {
        assert_eq!(drain_text(&s, &p), want);
    }
    let done = pb::DrainResponse {
        elapsed: crate::durations::from_millis(31_000),
        removed: true,
        revision: 7,
        ..progress(pb::DrainPhase::Done)
    };
    assert_eq!(
        drain_json(&s, &done),
        "{\"active_connections\":0,\"elapsed_ms\":31000,\"inactive_connections\":0,\"phase\":\"done\",\"previous_weight\":0,\"removed\":true,\"revision\":7,\"server\":\"10.0.1.1:80\",\"timed_out\":false}\n"
    );
    assert_eq!(server_text(IpAddr::V6(Ipv6Addr::LOCALHOST), 80), "[::1]:80");
    assert_eq!(server_text(IpAddr::V6(Ipv6Addr::LOCALHOST), 0), "::1");
}

fn tcp_key(port: u32) -> pb::ServiceKey {
    pb::ServiceKey {
        protocol: pb::Protocol::Tcp.into(),
        address: "10.0.0.1".into(),
        port,
        family: pb::AddressFamily::Inet.into(),
        fwmark: 0,
    }
}

fn server_health(
    server: &str,
    check: &str,
    state: pb::HealthState,
    since: i64,
    last: &str,
    latency_us: Option<i32>,
) -> pb::ServerHealth {
    pb::ServerHealth {
        service: Some(tcp_key(80)),
        server: server.into(),
        check: check.into(),
        target: server.into(),
        state: state.into(),
        since: at(since),
        streak: 3,
        last_result: last.into(),
        last_latency: latency_us.map(|us| prost_types::Duration {
            seconds: 0,
            nanos: us * 1000,
        }),
        weight: Some(if state == pb::HealthState::Up { 1 } else { 0 }),
    }
}

#[test]
fn health_events_print_one_line_each() {
    use pb::watch_state_events_response::Event;
    let down = pb::WatchStateEventsResponse {
        time: at(T0),
        event: Some(Event::HealthChanged(pb::HealthChanged {
            health: Some(server_health(
                "10.0.1.1:8080",
                "http",
                pb::HealthState::Down,
                T0,
                "http 503",
                Some(1200),
            )),
        })),
    };
    assert_eq!(
        event_text(&down),
        "2026-11-25T10:00:00Z health TCP 10.0.0.1:80 10.0.1.1:8080 down (http 503)\n"
    );
    assert_eq!(
        event_json(&down),
        "{\"check\":\"http\",\"event\":\"health-changed\",\"last_result\":\"http 503\",\"latency_ms\":1.2,\"server\":\"10.0.1.1:8080\",\"service\":\"TCP 10.0.0.1:80\",\"since\":\"2026-11-25T10:00:00Z\",\"state\":\"down\",\"streak\":3,\"target\":\"10.0.1.1:8080\",\"time\":\"2026-11-25T10:00:00Z\",\"weight\":0}\n"
    );
    // Before any probe (initial: down) there is no result to give.
    let unprobed = pb::WatchStateEventsResponse {
        time: at(T0),
        event: Some(Event::HealthChanged(pb::HealthChanged {
            health: Some(server_health(
                "10.0.1.2:8080",
                "tcp",
                pb::HealthState::Up,
                T0,
                "",
                None,
            )),
        })),
    };
    assert_eq!(
        event_text(&unprobed),
        "2026-11-25T10:00:00Z health TCP 10.0.0.1:80 10.0.1.2:8080 up\n"
    );
    let quorum = |lost: bool, healthy_weight: u32| pb::WatchStateEventsResponse {
        time: at(T0 + 1),
        event: Some(Event::QuorumChanged(pb::QuorumChanged {
            service: Some(tcp_key(80)),
            lost,
            healthy_weight,
            quorum: 1,
        })),
    };
    assert_eq!(
        event_text(&quorum(true, 0)),
        "2026-11-25T10:00:01Z quorum TCP 10.0.0.1:80 lost (healthy weight 0 < quorum 1)\n"
    );
    assert_eq!(
        event_text(&quorum(false, 2)),
        "2026-11-25T10:00:01Z quorum TCP 10.0.0.1:80 back (healthy weight 2 >= quorum 1)\n"
    );
    assert_eq!(
        event_json(&quorum(true, 0)),
        "{\"event\":\"quorum-changed\",\"healthy_weight\":0,\"lost\":true,\"quorum\":1,\"service\":\"TCP 10.0.0.1:80\",\"time\":\"2026-11-25T10:00:01Z\"}\n"
    );
}

#[test]
fn services_latencies_and_ages_read_short() {
    assert_eq!(service_text(Some(&tcp_key(80))), "TCP 10.0.0.1:80");
    let fw6 = pb::ServiceKey {
        fwmark: 7,
        family: pb::AddressFamily::Inet6.into(),
        ..Default::default()
    };
    assert_eq!(service_text(Some(&fw6)), "FWM 7 IPv6");
    assert_eq!(service_text(None), "(no service key)");
    let d = std::time::Duration::from_micros;
    assert_eq!(latency_text(d(350)), "0.3ms");
    assert_eq!(latency_text(d(1200)), "1.2ms");
    assert_eq!(latency_text(d(35_400)), "35ms");
    assert_eq!(latency_text(d(1_500_000)), "1.5s");
    let t = |s| prost_types::Timestamp {
        seconds: s,
        nanos: 0,
    };
    for (since, want) in [
        (T0, "0s"),
        (T0 - 12, "12s"),
        (T0 - 200, "3m"),
        (T0 - 7300, "2h"),
        (T0 - 3 * 86_400, "3d"),
        (T0 + 5, "0s"),
    ] {
        assert_eq!(age_text(&t(since), T0), want, "{since}");
    }
}

fn checked() -> pb::GetStateResponse {
    let mut spec = declared();
    spec.checks = vec![pb::CheckSpec {
        service: Some(tcp_key(80)),
        kind: Some(pb::check_spec::Kind::Tcp(pb::TcpCheck {})),
        ..Default::default()
    }];
    pb::GetStateResponse {
        revision: 4,
        spec: Some(spec),
        health: vec![
            server_health(
                "10.0.1.1:8080",
                "http",
                pb::HealthState::Up,
                T0 - 12,
                "http 200",
                Some(1200),
            ),
            server_health(
                "10.0.1.2:8080",
                "tcp",
                pb::HealthState::Down,
                T0 - 200,
                "connect refused",
                Some(350),
            ),
            pb::ServerHealth {
                service: Some(tcp_key(443)),
                ..server_health("10.0.1.3:443", "https", pb::HealthState::Up, T0, "", None)
            },
        ],
        ..Default::default()
    }
}

#[test]
fn health_prints_a_table_per_service() {
    assert_eq!(
        health_text(&checked(), T0),
        "SERVICE / SERVER           CHECK  STATE  SINCE  LAST RESULT               LATENCY\n\
         TCP 10.0.0.1:80\n  \
           10.0.1.1:8080            http   up       12s  http 200                    1.2ms\n  \
           10.0.1.2:8080            tcp    down      3m  connect refused             0.3ms\n\
         TCP 10.0.0.1:443\n  \
           10.0.1.3:443             https  up        0s  -                               -\n"
    );
    let none = pb::GetStateResponse {
        spec: Some(declared()),
        ..Default::default()
    };
    assert_eq!(health_text(&none, T0), "no health checks are declared\n");
    let unchecked = pb::GetStateResponse {
        health: vec![],
        ..checked()
    };
    assert_eq!(
        health_text(&unchecked, T0),
        "1 health check declared, no real server checked\n"
    );
}

#[test]
fn health_json_has_one_object_per_checked_server() {
    assert_eq!(
        health_json(&checked()),
        json!({
            "declared_checks": 1,
            "servers": [
                {
                    "service": "TCP 10.0.0.1:80",
                    "server": "10.0.1.1:8080",
                    "check": "http",
                    "target": "10.0.1.1:8080",
                    "state": "up",
                    "since": "2026-11-25T09:59:48Z",
                    "streak": 3,
                    "last_result": "http 200",
                    "latency_ms": 1.2,
                    "weight": 1,
                },
                {
                    "service": "TCP 10.0.0.1:80",
                    "server": "10.0.1.2:8080",
                    "check": "tcp",
                    "target": "10.0.1.2:8080",
                    "state": "down",
                    "since": "2026-11-25T09:56:40Z",
                    "streak": 3,
                    "last_result": "connect refused",
                    "latency_ms": 0.35,
                    "weight": 0,
                },
                {
                    "service": "TCP 10.0.0.1:443",
                    "server": "10.0.1.3:443",
                    "check": "https",
                    "target": "10.0.1.3:443",
                    "state": "up",
                    "since": "2026-11-25T10:00:00Z",
                    "streak": 3,
                    "last_result": "",
                    "latency_ms": null,
                    "weight": 1,
                },
            ],
        })
    );
    let none = pb::GetStateResponse::default();
    assert_eq!(
        to_json(&health_json(&none)),
        "{\n  \"declared_checks\": 0,\n  \"servers\": []\n}\n"
    );
}
