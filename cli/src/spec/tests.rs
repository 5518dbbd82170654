//! Node files in both formats: what they mean, what they refuse (exact messages), and round
//! trips from a spec to a file and back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_proto::v1 as pb;

use super::{Format, SpecError, parse, render};
use crate::ipvsadm::command::Command;
use crate::ipvsadm::parse::parse_line;
use crate::ipvsadm::request::{self, ip};
use crate::ipvsadm::resolve::NoNames;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn endpoint(protocol: pb::Protocol, addr: IpAddr, port: u32) -> pb::ServiceKey {
    pb::ServiceKey {
        protocol: protocol.into(),
        address: ip(addr),
        port,
        fwmark: 0,
        family: if addr.is_ipv6() {
            pb::AddressFamily::Inet6
        } else {
            pb::AddressFamily::Inet
        }
        .into(),
    }
}

fn fwmark(mark: u32, family: pb::AddressFamily) -> pb::ServiceKey {
    pb::ServiceKey {
        fwmark: mark,
        family: family.into(),
        ..Default::default()
    }
}

fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
    })
}

fn prefix(address: &str, prefix_length: u32) -> pb::Prefix {
    pb::Prefix {
        address: address.into(),
        prefix_length,
    }
}

/// A tunnel as the file produces it: every setting explicit.
fn tunnel(kind: pb::TunnelType, port: u32, checksum: pb::TunnelChecksum) -> pb::Tunnel {
    pb::Tunnel {
        r#type: kind.into(),
        port,
        checksum: checksum.into(),
    }
}

/// A service as the file produces it: every option present, read-only fields empty.
fn service(key: pb::ServiceKey, scheduler: pb::Scheduler) -> pb::Service {
    pb::Service {
        key: Some(key),
        scheduler: scheduler.into(),
        options: Some(pb::ServiceOptions::default()),
        ..Default::default()
    }
}

fn dest(addr: IpAddr, port: u32, forwarding: pb::ForwardingMethod, weight: u32) -> pb::Destination {
    pb::Destination {
        address: ip(addr),
        port,
        forwarding: forwarding.into(),
        weight: Some(weight),
        tunnel: (forwarding == pb::ForwardingMethod::Tunnel)
            .then(|| tunnel(pb::TunnelType::Ipip, 0, pb::TunnelChecksum::None)),
        ..Default::default()
    }
}

const EXAMPLE_YAML: &str = r#"
drift: enforce
links:
  - name: ipvs0
    addresses: [10.0.0.1/32, "2001:db8::1/128", 10.0.0.2]
services:
  - tcp: 10.0.0.1:80
    scheduler: sh
    persistent: 300
    netmask: 255.255.255.0
    sched-flags: [sh-fallback, sh-port]
    pe: sip
    servers:
      - address: 10.0.1.1:8080
        forward: masq
        weight: 5
        upper: 100
        lower: 10
      - address: 10.0.1.2
      - address: "2001:db8::10"
        forward: tunnel
        tunnel: {type: gue, port: 6080, checksum: remcsum}
  - udp: "[2001:db8::1]:53"
    one-packet: true
    netmask: 64
    persistent: true
  - fwmark: 7
    family: inet6
    scheduler: rr
    servers:
      - address: "2001:db8::20"
        forward: local
        weight: 0
attachments:
  - policy: least-conn
    services: ["tcp:10.0.0.1:80", "fwmark6:7"]
    params: {min: "1", alpha: 2, on: true}
    interval: 500ms
    mode: dry-run
    quarantine-after: 5
"#;

const EXAMPLE_TOML: &str = r#"
drift = "enforce"

[[links]]
name = "ipvs0"
addresses = ["10.0.0.1/32", "2001:db8::1/128", "10.0.0.2"]

[[services]]
tcp = "10.0.0.1:80"
scheduler = "sh"
persistent = 300
netmask = "255.255.255.0"
sched-flags = ["sh-fallback", "sh-port"]
pe = "sip"

[[services.servers]]
address = "10.0.1.1:8080"
forward = "masq"
weight = 5
upper = 100
lower = 10

[[services.servers]]
address = "10.0.1.2"

[[services.servers]]
address = "2001:db8::10"
forward = "tunnel"
tunnel = { type = "gue", port = 6080, checksum = "remcsum" }

[[services]]
udp = "[2001:db8::1]:53"
one-packet = true
netmask = 64
persistent = true

[[services]]
fwmark = 7
family = "inet6"
scheduler = "rr"
servers = [{ address = "2001:db8::20", forward = "local", weight = 0 }]

[[attachments]]
policy = "least-conn"
services = ["tcp:10.0.0.1:80", "fwmark6:7"]
params = { min = "1", alpha = 2, on = true }
interval = "500ms"
mode = "dry-run"
quarantine-after = 5
"#;

/// What both examples mean.
fn example_spec() -> pb::NodeSpec {
    let tcp = endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 1), 80);
    let fw6 = fwmark(7, pb::AddressFamily::Inet6);
    let mut web = service(tcp.clone(), pb::Scheduler::Sh);
    web.options = Some(pb::ServiceOptions {
        persistence_timeout: secs(300),
        ipv4_netmask: "255.255.255.0".into(),
        sched_flag_1: true,
        sched_flag_2: true,
        persistence_engine: "sip".into(),
        ..Default::default()
    });
    web.destinations = vec![
        pb::Destination {
            upper_threshold: 100,
            lower_threshold: 10,
            ..dest(v4(10, 0, 1, 1), 8080, pb::ForwardingMethod::Masquerade, 5)
        },
        dest(v4(10, 0, 1, 2), 80, pb::ForwardingMethod::DirectRoute, 1),
        pb::Destination {
            tunnel: Some(tunnel(
                pb::TunnelType::Gue,
                6080,
                pb::TunnelChecksum::Remcsum,
            )),
            ..dest(v6(0x10), 80, pb::ForwardingMethod::Tunnel, 1)
        },
    ];
    let mut dns = service(endpoint(pb::Protocol::Udp, v6(1), 53), pb::Scheduler::Wlc);
    dns.options = Some(pb::ServiceOptions {
        persistence_timeout: secs(360),
        ipv6_prefix_length: 64,
        one_packet: true,
        ..Default::default()
    });
    let mut marked = service(fw6.clone(), pb::Scheduler::Rr);
    marked.destinations = vec![dest(v6(0x20), 0, pb::ForwardingMethod::Local, 0)];
    pb::NodeSpec {
        links: vec![pb::LinkSpec {
            name: "ipvs0".into(),
            addresses: vec![
                prefix("10.0.0.1", 32),
                prefix("2001:db8::1", 128),
                prefix("10.0.0.2", 32),
            ],
        }],
        services: vec![web, dns, marked],
        attachments: vec![pb::AttachmentSpec {
            policy: "least-conn".into(),
            services: vec![tcp, fw6],
            params: [("min", "1"), ("alpha", "2"), ("on", "true")]
                .iter()
                .map(|(k, v)| pb::PolicyParam {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 500_000_000,
            }),
            mode: pb::PolicyMode::DryRun.into(),
            quarantine_after: 5,
        }],
        drift: pb::DriftMode::Enforce.into(),
        checks: vec![],
    }
}

#[test]
fn the_example_means_the_same_in_both_formats() {
    assert_eq!(
        parse("node.yaml", EXAMPLE_YAML, Format::Yaml),
        Ok(example_spec())
    );
    assert_eq!(
        parse("node.toml", EXAMPLE_TOML, Format::Toml),
        Ok(example_spec())
    );
}

#[test]
fn an_empty_file_declares_nothing() {
    for (text, format) in [
        ("", Format::Yaml),
        ("# nothing yet\n", Format::Yaml),
        ("", Format::Toml),
        ("{}", Format::Yaml),
    ] {
        assert_eq!(
            parse("node", text, format),
            Ok(pb::NodeSpec::default()),
            "{text:?}"
        );
    }
}

/// Specs in the form the file produces, each field away from its default somewhere.
fn canonical_specs() -> Vec<pb::NodeSpec> {
    let mut persistent_any_port = service(
        endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 3), 0),
        pb::Scheduler::Lblc,
    );
    persistent_any_port.options = Some(pb::ServiceOptions {
        persistence_timeout: secs(60),
        ..Default::default()
    });
    let mut sctp = service(
        endpoint(pb::Protocol::Sctp, v4(10, 0, 0, 4), 9),
        pb::Scheduler::Mh,
    );
    sctp.options = Some(pb::ServiceOptions {
        sched_flag_2: true,
        sched_flag_3: true,
        ..Default::default()
    });
    sctp.destinations = vec![
        pb::Destination {
            tunnel: Some(tunnel(pb::TunnelType::Gre, 0, pb::TunnelChecksum::Csum)),
            ..dest(v4(10, 0, 2, 1), 9, pb::ForwardingMethod::Tunnel, 3)
        },
        // A masquerading server on port 0 of a service with a port keeps its port 0.
        dest(v4(10, 0, 2, 2), 0, pb::ForwardingMethod::Masquerade, 1),
    ];
    let mut fw = service(fwmark(1, pb::AddressFamily::Inet), pb::Scheduler::Wlc);
    fw.options = Some(pb::ServiceOptions {
        one_packet: true,
        sched_flag_1: true,
        ..Default::default()
    });
    fw.destinations = vec![
        dest(v4(10, 0, 3, 1), 0, pb::ForwardingMethod::DirectRoute, 65535),
        dest(v4(10, 0, 3, 2), 8080, pb::ForwardingMethod::Masquerade, 1),
    ];
    vec![
        pb::NodeSpec::default(),
        example_spec(),
        checks_spec(),
        pb::NodeSpec {
            drift: pb::DriftMode::Report.into(),
            links: vec![pb::LinkSpec {
                name: "empty".into(),
                addresses: vec![],
            }],
            services: vec![persistent_any_port, sctp, fw.clone()],
            attachments: vec![pb::AttachmentSpec {
                policy: "0123abcd".into(),
                services: fw.key.into_iter().collect(),
                params: vec![],
                interval: secs(120),
                mode: pb::PolicyMode::Enforce.into(),
                quarantine_after: 0,
            }],
            checks: vec![],
        },
    ]
}

#[test]
fn specs_round_trip_through_both_formats() {
    for (i, spec) in canonical_specs().into_iter().enumerate() {
        for format in [Format::Yaml, Format::Toml] {
            let text = render(&spec, format).expect("renders");
            assert_eq!(
                parse("exported", &text, format),
                Ok(spec.clone()),
                "spec {i} as {format}:\n{text}"
            );
        }
    }
}

#[test]
fn exports_leave_defaults_out() {
    let mut svc = service(
        endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 1), 80),
        pb::Scheduler::Wlc,
    );
    svc.destinations = vec![dest(
        v4(10, 0, 1, 1),
        80,
        pb::ForwardingMethod::DirectRoute,
        1,
    )];
    let spec = pb::NodeSpec {
        services: vec![svc],
        ..Default::default()
    };
    assert_eq!(
        render(&spec, Format::Yaml),
        Ok("services:\n- tcp: 10.0.0.1:80\n  servers:\n  - address: 10.0.1.1:80\n".into())
    );
    assert_eq!(
        render(&spec, Format::Toml),
        Ok("[[services]]\ntcp = \"10.0.0.1:80\"\n\n[[services.servers]]\naddress = \"10.0.1.1:80\"\n".into())
    );
    assert_eq!(
        render(&pb::NodeSpec::default(), Format::Yaml),
        Ok("{}\n".into())
    );
    assert_eq!(
        render(&pb::NodeSpec::default(), Format::Toml),
        Ok("".into())
    );
}

#[test]
fn the_agents_form_exports_to_the_canonical_form() {
    // What the agent reports: the kernel's full netmask, raw flags, counters, no options on a
    // bare service, a tunnel message on a server that is not tunnelled.
    let mut reported = pb::Service {
        key: Some(endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 1), 80)),
        scheduler: pb::Scheduler::Wlc.into(),
        options: Some(pb::ServiceOptions {
            ipv4_netmask: "255.255.255.255".into(),
            ..Default::default()
        }),
        flags: 0x2,
        stats: Some(pb::Stats::default()),
        destinations: vec![pb::Destination {
            address: ip(v4(10, 0, 1, 1)),
            port: 80,
            forwarding: pb::ForwardingMethod::Masquerade.into(),
            weight: None,
            active_connections: 4,
            stats: Some(pb::Stats::default()),
            tunnel: Some(pb::Tunnel::default()),
            ..Default::default()
        }],
    };
    let bare = pb::Service {
        key: Some(fwmark(3, pb::AddressFamily::Inet6)),
        scheduler: pb::Scheduler::Rr.into(),
        options: None,
        ..Default::default()
    };
    let spec = pb::NodeSpec {
        services: vec![reported.clone(), bare],
        ..Default::default()
    };
    reported.options = Some(pb::ServiceOptions::default());
    reported.flags = 0;
    reported.stats = None;
    reported.destinations = vec![dest(
        v4(10, 0, 1, 1),
        80,
        pb::ForwardingMethod::Masquerade,
        1,
    )];
    let want = pb::NodeSpec {
        services: vec![
            reported,
            service(fwmark(3, pb::AddressFamily::Inet6), pb::Scheduler::Rr),
        ],
        ..Default::default()
    };
    for format in [Format::Yaml, Format::Toml] {
        let text = render(&spec, format).expect("renders");
        assert_eq!(parse("x", &text, format), Ok(want.clone()), "{text}");
    }
}

#[test]
fn a_whole_address_exports_with_its_length() {
    // The agent may leave a link address's prefix length 0: the whole address.
    let spec = pb::NodeSpec {
        links: vec![pb::LinkSpec {
            name: "ipvs0".into(),
            addresses: vec![prefix("10.0.0.1", 0), prefix("2001:db8::1", 0)],
        }],
        ..Default::default()
    };
    assert_eq!(
        render(&spec, Format::Yaml),
        Ok("links:\n- name: ipvs0\n  addresses:\n  - 10.0.0.1/32\n  - 2001:db8::1/128\n".into())
    );
}

#[test]
fn what_a_file_cannot_say_is_refused_on_export() {
    let unknown_scheduler = pb::NodeSpec {
        services: vec![pb::Service {
            scheduler: 99,
            ..service(
                endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 1), 80),
                pb::Scheduler::Wlc,
            )
        }],
        ..Default::default()
    };
    assert_eq!(
        render(&unknown_scheduler, Format::Yaml).map_err(|e| e.to_string()),
        Err("cannot write the spec as a node file: services[0].scheduler: scheduler 99 is unknown to this ipvsctl".into())
    );
    let keyless = pb::NodeSpec {
        services: vec![pb::Service::default()],
        ..Default::default()
    };
    assert_eq!(
        render(&keyless, Format::Toml).map_err(|e| e.to_string()),
        Err("cannot write the spec as a node file: services[0]: no service key".into())
    );
}

/// `services:` with one service `entry` (YAML lines indented under `- `).
fn one_service(entry: &str) -> String {
    format!("services:\n  - {}\n", entry.replace('\n', "\n    "))
}

#[test]
fn bad_files_are_refused_with_the_place_and_the_reason() {
    let cases: Vec<(String, &str)> = vec![
        // Syntax and types: line and column.
        ("services: [\n".into(), "node.yaml:2:1: did not find expected node content, while parsing a flow node"),
        ("drift: sometimes\n".into(), "node.yaml:1:8: drift: unknown variant `sometimes`, expected `report` or `enforce`"),
        ("drift: [enforce]\n".into(), "node.yaml:1:8: drift: invalid type: sequence, expected `report` or `enforce`"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    forward: nat"), "node.yaml:5:18: services[0].servers[0].forward: unknown variant `nat`, expected one of `masq`, `route`, `tunnel`, `local`"),
        ("services:\n  - tcp: 10.0.0.1:80\n    weight: 3\n".into(), "node.yaml:3:5: services[0]: unknown field `weight`, expected one of `tcp`, `udp`, `sctp`, `fwmark`, `family`, `scheduler`, `persistent`, `netmask`, `one-packet`, `sched-flags`, `pe`, `check`, `sorry-server`, `quorum`, `servers`"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    weight: heavy"), "node.yaml:5:17: services[0].servers[0].weight: invalid type: string \"heavy\", expected u32"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - weight: 2"), "node.yaml:4:9: services[0].servers[0]: missing field `address`"),
        ("links:\n  - addresses: [10.0.0.1/32]\n".into(), "node.yaml:2:5: links[0]: missing field `name`"),
        ("attachments:\n  - policy: p\n    services: [\"fwmark:1\"]\n    params: {a: 1, a: 2}\n".into(), "node.yaml:4:13: attachments[0].params: duplicate parameter `a`"),
        ("---\n---\n".into(), "node.yaml: deserializing from YAML containing more than one document is not supported"),
        // Rules: the path.
        (one_service("scheduler: rr"), "node.yaml: services[0]: needs one of tcp, udp, sctp or fwmark"),
        (one_service("tcp: 10.0.0.1:80\nudp: 10.0.0.1:53"), "node.yaml: services[0]: has both tcp and udp; a service has one key"),
        (one_service("tcp: web:80"), "node.yaml: services[0].tcp: invalid address `web:80' (expected ADDR:PORT, [IPv6]:PORT or ADDR)"),
        (one_service("tcp: 10.0.0.1:80\nfamily: inet6"), "node.yaml: services[0].family: is only for fwmark services (an address has its own family)"),
        (one_service("fwmark: 0"), "node.yaml: services[0].fwmark: must be above 0"),
        (one_service("tcp: 10.0.0.1:80\nscheduler: fastest"), "node.yaml: services[0].scheduler: unknown scheduler `fastest' (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos)"),
        (one_service("tcp: 10.0.0.1"), "node.yaml: services[0].tcp: port 0 is only for persistent services"),
        (one_service("tcp: 10.0.0.1:80\npersistent: 0"), "node.yaml: services[0].persistent: 0 is out of range 1..2678400"),
        (one_service("tcp: 10.0.0.1:80\npersistent: 2678401"), "node.yaml: services[0].persistent: 2678401 is out of range 1..2678400"),
        (one_service("tcp: 10.0.0.1:80\npersistent: forever"), "node.yaml: services[0].persistent: expected a number of seconds or true, not `forever'"),
        (one_service("tcp: 10.0.0.1:80\nnetmask: 24"), "node.yaml: services[0].netmask: `24' is not an IPv4 netmask (e.g. 255.255.255.0)"),
        (one_service("tcp: \"[2001:db8::1]:80\"\nnetmask: 129"), "node.yaml: services[0].netmask: `129' is not an IPv6 prefix length (1..128)"),
        (one_service("fwmark: 1\nfamily: inet6\nnetmask: 255.255.255.0"), "node.yaml: services[0].netmask: `255.255.255.0' is not an IPv6 prefix length (1..128)"),
        (one_service("tcp: 10.0.0.1:80\none-packet: true"), "node.yaml: services[0].one-packet: is only for UDP and fwmark services"),
        (one_service("tcp: 10.0.0.1:80\nsched-flags: [sh-port]"), "node.yaml: services[0].sched-flags[0]: `sh-port' is a flag of scheduler sh, not wlc"),
        (one_service("tcp: 10.0.0.1:80\nscheduler: sh\nsched-flags: [sh-port, mh-port]"), "node.yaml: services[0].sched-flags[1]: `mh-port' is a flag of scheduler mh, not sh"),
        (one_service("tcp: 10.0.0.1:80\nsched-flags: [flag-4]"), "node.yaml: services[0].sched-flags[0]: unknown scheduler flag `flag-4' (flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback, mh-port)"),
        (one_service("tcp: 10.0.0.1:80\npe: \"\""), "node.yaml: services[0].pe: is empty"),
        ("services:\n  - tcp: 10.0.0.1:80\n  - tcp: 10.0.0.1:80\n".into(), "node.yaml: services[1]: tcp:10.0.0.1:80 is already declared at services[0]"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1:99999"), "node.yaml: services[0].servers[0].address: invalid address `10.0.1.1:99999' (expected ADDR:PORT, [IPv6]:PORT or ADDR)"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 2001:db8::5"), "node.yaml: services[0].servers[0].address: is IPv6 but the service is IPv4; only tunnel servers may differ"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    weight: 70000"), "node.yaml: services[0].servers[0].weight: 70000 is out of range 0..65535"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    upper: 2147483648"), "node.yaml: services[0].servers[0].upper: 2147483648 is out of range 0..2147483647"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    tunnel: {type: gue, port: 1}"), "node.yaml: services[0].servers[0].tunnel: is only for tunnel servers (forward: tunnel)"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    forward: tunnel\n    tunnel: {type: gue}"), "node.yaml: services[0].servers[0].tunnel: a gue tunnel needs a port"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    forward: tunnel\n    tunnel: {type: gre, port: 5}"), "node.yaml: services[0].servers[0].tunnel.port: is only for gue tunnels"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    forward: tunnel\n    tunnel: {type: gre, checksum: remcsum}"), "node.yaml: services[0].servers[0].tunnel.checksum: remcsum is not available with gre tunnels"),
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    forward: tunnel\n    tunnel: {type: ipip, checksum: csum}"), "node.yaml: services[0].servers[0].tunnel.checksum: is only for gue and gre tunnels"),
        // Direct routing takes the service's port, so these two are one server.
        (one_service("tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1:80\n  - address: 10.0.1.1:8080"), "node.yaml: services[0].servers[1]: 10.0.1.1:80 is already declared at services[0].servers[0]"),
        ("links:\n  - name: this-name-is-too-long\n".into(), "node.yaml: links[0].name: link name \"this-name-is-too-long\" is longer than 15 bytes"),
        ("links:\n  - name: a\n  - name: a\n".into(), "node.yaml: links[1].name: link a is already declared at links[0]"),
        ("links:\n  - name: a\n    addresses: [10.0.0.1/33]\n".into(), "node.yaml: links[0].addresses[0]: prefix length 33 is invalid for 10.0.0.1: the maximum is 32"),
        ("links:\n  - name: a\n    addresses: [10.0.0.1/0]\n".into(), "node.yaml: links[0].addresses[0]: prefix length 0 is not supported (the agent reads 0 as /32)"),
        ("links:\n  - name: a\n    addresses: [10.0.0.1/x]\n".into(), "node.yaml: links[0].addresses[0]: invalid address `10.0.0.1/x' (expected ADDR/LEN)"),
        ("links:\n  - name: a\n    addresses: [10.0.0.1]\n  - name: b\n    addresses: [10.0.0.1/32]\n".into(), "node.yaml: links[1].addresses[0]: 10.0.0.1/32 is already declared at links[0].addresses[0]"),
        ("attachments:\n  - policy: \"\"\n    services: [\"fwmark:1\"]\n".into(), "node.yaml: attachments[0].policy: is empty"),
        ("attachments:\n  - policy: p\n".into(), "node.yaml: attachments[0].services: names no service"),
        ("attachments:\n  - policy: p\n    services: [\"10.0.0.1:80\"]\n".into(), "node.yaml: attachments[0].services[0]: invalid service reference `10.0.0.1:80' (expected tcp:ADDR:PORT, udp:ADDR:PORT, sctp:ADDR:PORT, fwmark:N or fwmark6:N)"),
        ("attachments:\n  - policy: p\n    services: [\"tcp:10.0.0.1:80\"]\n".into(), "node.yaml: attachments[0].services[0]: tcp:10.0.0.1:80 is not a service of this file"),
        ("services:\n  - fwmark: 1\nattachments:\n  - policy: p\n    services: [\"fwmark:1\"]\n    interval: 2h\n".into(), "node.yaml: attachments[0].interval: invalid interval \"2h\" (e.g. 2s, 500ms, 1m)"),
        ("services:\n  - fwmark: 1\nattachments:\n  - policy: p\n    services: [\"fwmark:1\"]\n    interval: true\n".into(), "node.yaml: attachments[0].interval: expected an interval such as 2s, not `true'"),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse("node.yaml", &text, Format::Yaml).map_err(|e| e.to_string()),
            Err(want.to_string()),
            "{text}"
        );
    }
}

#[test]
fn toml_errors_name_the_line_and_column() {
    let cases = [
        (
            "drift = \n",
            "node.toml:1:9: string values must be quoted, expected literal string",
        ),
        (
            "[[services]]\ntcp = \"10.0.0.1:80\"\nbogus = 1\n",
            "node.toml:3:1: unknown field `bogus`, expected one of `tcp`, `udp`, `sctp`, `fwmark`, `family`, `scheduler`, `persistent`, `netmask`, `one-packet`, `sched-flags`, `pe`, `check`, `sorry-server`, `quorum`, `servers`",
        ),
        (
            "[[services]]\ntcp = \"10.0.0.1:80\"\n[[services.servers]]\naddress = \"10.0.1.1\"\nweight = -1\n",
            "node.toml:5:10: invalid value: integer `-1`, expected u32",
        ),
        (
            "[[services]]\nudp = \"10.0.0.1:53\"\nservers = [{ address = \"10.0.1.1\", weight = 70000 }]\n",
            "node.toml: services[0].servers[0].weight: 70000 is out of range 0..65535",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse("node.toml", text, Format::Toml).map_err(|e| e.to_string()),
            Err(want.to_string()),
            "{text}"
        );
    }
}

/// The service and real server that ipvsadm builds from `line`.
fn ipvsadm_service(service_line: &str, server_line: Option<&str>) -> pb::Service {
    let args = |l: &str| -> Vec<String> { l.split(' ').map(String::from).collect() };
    let Ok(Command::AddService(spec)) = parse_line("ipvsadm", &args(service_line), &NoNames) else {
        panic!("not an ipvsadm -A line: {service_line}");
    };
    let mut svc = request::service(&spec).expect("known scheduler");
    if let Some(line) = server_line {
        let Ok(Command::AddServer(_, d)) = parse_line("ipvsadm", &args(line), &NoNames) else {
            panic!("not an ipvsadm -a line: {line}");
        };
        svc.destinations.push(request::destination(&d));
    }
    svc
}

#[test]
fn words_mean_what_the_ipvsadm_options_mean() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("tcp: 10.0.0.1:80", "-A -t 10.0.0.1:80", None),
        ("tcp: 10.0.0.1\npersistent: true", "-A -t 10.0.0.1 -p", None),
        (
            "tcp: 10.0.0.1:80\npersistent: true",
            "-A -t 10.0.0.1:80 -p",
            None,
        ),
        (
            "tcp: 10.0.0.1:80\npersistent: 30\nnetmask: 255.255.0.0",
            "-A -t 10.0.0.1:80 -p 30 -M 255.255.0.0",
            None,
        ),
        (
            "tcp: 10.0.0.1:80\nnetmask: 255.255.255.255",
            "-A -t 10.0.0.1:80",
            None,
        ),
        (
            "udp: \"[2001:db8::1]:53\"\nnetmask: 48\none-packet: true",
            "-A -u [2001:db8::1]:53 -M 48 -o",
            None,
        ),
        (
            "fwmark: 9\nfamily: inet6\nscheduler: mh\nsched-flags: [mh-fallback, mh-port]",
            "-A -f 9 -6 -s mh -b mh-fallback,mh-port",
            None,
        ),
        (
            "fwmark: 9\nsched-flags: [flag-3]\npe: sip",
            "-A -f 9 -b flag-3 --pe sip",
            None,
        ),
        (
            "tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1",
            "-A -t 10.0.0.1:80",
            Some("-a -t 10.0.0.1:80 -r 10.0.1.1"),
        ),
        (
            "tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1:8080",
            "-A -t 10.0.0.1:80",
            Some("-a -t 10.0.0.1:80 -r 10.0.1.1:8080"),
        ),
        (
            "tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1:8080\n    forward: masq\n    weight: 3\n    upper: 9\n    lower: 2",
            "-A -t 10.0.0.1:80",
            Some("-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3 -x 9 -y 2"),
        ),
        (
            "tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    forward: tunnel",
            "-A -t 10.0.0.1:80",
            Some("-a -t 10.0.0.1:80 -r 10.0.1.1 -i"),
        ),
        (
            "tcp: 10.0.0.1:80\nservers:\n  - address: \"[2001:db8::9]:80\"\n    forward: tunnel\n    tunnel: {type: gue, port: 6080, checksum: csum}",
            "-A -t 10.0.0.1:80",
            Some(
                "-a -t 10.0.0.1:80 -r [2001:db8::9]:80 -i --tun-type gue --tun-port 6080 --tun-csum",
            ),
        ),
        (
            "fwmark: 4\nservers:\n  - address: 10.0.1.1",
            "-A -f 4",
            Some("-a -f 4 -r 10.0.1.1"),
        ),
    ];
    for (entry, service_line, server_line) in cases {
        let spec = parse("node.yaml", &one_service(entry), Format::Yaml).expect(entry);
        assert_eq!(
            spec.services,
            vec![ipvsadm_service(service_line, *server_line)],
            "{entry}"
        );
    }
}

#[test]
fn errors_name_the_file_they_are_about() {
    let e = parse("/etc/ipvs/node.yaml", "drift: [", Format::Yaml).expect_err("bad");
    assert!(
        matches!(&e, SpecError::Syntax { file, line: 1, .. } if file == "/etc/ipvs/node.yaml"),
        "{e:?}"
    );
}

/// The first fenced block of `lang` in `doc`.
fn fenced<'a>(doc: &'a str, lang: &str) -> &'a str {
    let open = format!("```{lang}\n");
    doc.split_once(&open)
        .and_then(|(_, rest)| rest.split_once("```"))
        .map_or("", |(block, _)| block)
}

#[test]
fn the_documented_example_parses_the_same_in_both_formats() {
    let doc = include_str!("../../../docs/node-file.md");
    let mut want = example_spec();
    for a in &mut want.attachments {
        a.params.retain(|p| p.key != "on");
    }
    assert_eq!(
        parse("node.yaml", fenced(doc, "yaml"), Format::Yaml),
        Ok(want.clone())
    );
    assert_eq!(
        parse("node.toml", fenced(doc, "toml"), Format::Toml),
        Ok(want)
    );
}

fn ms(n: u64) -> Option<prost_types::Duration> {
    crate::durations::from_millis(n)
}

const CHECKS_YAML: &str = r#"
services:
  - tcp: 10.0.0.1:80
    check:
      http: {path: /healthz, expect: ["200-299", 301]}
      interval: 1s
      timeout: 500ms
      rise: 2
      fall: 3
    sorry-server: {address: 10.0.9.9:80, forward: masq}
    quorum: 2
    servers:
      - address: 10.0.1.1:8080
        forward: masq
      - address: 10.0.1.2:8080
        check:
          tcp: {}
          connect-port: 9000
          initial: down
          on-failure: remove
          jitter: 100ms
      - address: 10.0.1.3:8080
        forward: masq
        check:
          https: {method: HEAD, host: web, sni: web.example, skip-verify: true, ca-file: /etc/ca.pem, body-regex: "ok|fine"}
          interval: 1m
  - udp: 10.0.0.1:53
    check:
      dns: {name: example.org, type: AAAA, expect: ["2001:db8::53"]}
    sorry-server: 10.0.9.10
    servers:
      - address: 10.0.2.1
        check:
          udp: {send: ping, expect: pong}
          connect-ip: 10.0.2.100
  - fwmark: 3
    check:
      grpc: {service: web, tls: true, sni: grpc.example}
      connect-port: 50051
    servers:
      - address: 10.0.3.1
        check:
          exec: {command: [/usr/local/bin/check, --fast]}
          connect-port: 8080
      - address: 10.0.3.2
        check:
          http: {body: ok, expect: 204}
          connect-port: 80
"#;

/// What CHECKS_YAML means.
fn checks_spec() -> pb::NodeSpec {
    use pb::check_spec::Kind;
    let web = endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 1), 80);
    let dns = endpoint(pb::Protocol::Udp, v4(10, 0, 0, 1), 53);
    let fw = fwmark(3, pb::AddressFamily::Inet);
    let mut web_svc = service(web.clone(), pb::Scheduler::Wlc);
    web_svc.destinations = vec![
        dest(v4(10, 0, 1, 1), 8080, pb::ForwardingMethod::Masquerade, 1),
        // Direct routing: the service's port.
        dest(v4(10, 0, 1, 2), 80, pb::ForwardingMethod::DirectRoute, 1),
        dest(v4(10, 0, 1, 3), 8080, pb::ForwardingMethod::Masquerade, 1),
    ];
    let mut dns_svc = service(dns.clone(), pb::Scheduler::Wlc);
    dns_svc.destinations = vec![dest(
        v4(10, 0, 2, 1),
        53,
        pb::ForwardingMethod::DirectRoute,
        1,
    )];
    let mut fw_svc = service(fw.clone(), pb::Scheduler::Wlc);
    fw_svc.destinations = vec![
        dest(v4(10, 0, 3, 1), 0, pb::ForwardingMethod::DirectRoute, 1),
        dest(v4(10, 0, 3, 2), 0, pb::ForwardingMethod::DirectRoute, 1),
    ];
    let range = |first, last| pb::StatusRange { first, last };
    pb::NodeSpec {
        services: vec![web_svc, dns_svc, fw_svc],
        checks: vec![
            pb::CheckSpec {
                service: Some(web.clone()),
                kind: Some(Kind::Http(pb::HttpCheck {
                    path: "/healthz".into(),
                    expect: vec![range(200, 299), range(301, 301)],
                    ..Default::default()
                })),
                interval: ms(1000),
                timeout: ms(500),
                rise: 2,
                fall: 3,
                sorry_server: Some(dest(
                    v4(10, 0, 9, 9),
                    80,
                    pb::ForwardingMethod::Masquerade,
                    1,
                )),
                quorum: 2,
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(web.clone()),
                server: "10.0.1.2:80".into(),
                kind: Some(Kind::Tcp(pb::TcpCheck {})),
                connect_port: 9000,
                initial: pb::HealthState::Down.into(),
                on_failure: pb::FailureAction::Remove.into(),
                jitter: ms(100),
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(web),
                server: "10.0.1.3:8080".into(),
                kind: Some(Kind::Http(pb::HttpCheck {
                    method: "HEAD".into(),
                    host: "web".into(),
                    body_regex: "ok|fine".into(),
                    tls: Some(pb::TlsOptions {
                        sni: "web.example".into(),
                        skip_verify: true,
                        ca_file: "/etc/ca.pem".into(),
                    }),
                    ..Default::default()
                })),
                interval: ms(60_000),
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(dns.clone()),
                kind: Some(Kind::Dns(pb::DnsCheck {
                    name: "example.org".into(),
                    r#type: pb::DnsType::Aaaa.into(),
                    expect: vec!["2001:db8::53".into()],
                })),
                sorry_server: Some(dest(
                    v4(10, 0, 9, 10),
                    53,
                    pb::ForwardingMethod::DirectRoute,
                    1,
                )),
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(dns),
                server: "10.0.2.1:53".into(),
                kind: Some(Kind::Udp(pb::UdpCheck {
                    send: b"ping".to_vec(),
                    expect: Some(b"pong".to_vec()),
                })),
                connect_ip: "10.0.2.100".into(),
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(fw.clone()),
                kind: Some(Kind::Grpc(pb::GrpcCheck {
                    service: "web".into(),
                    tls: Some(pb::TlsOptions {
                        sni: "grpc.example".into(),
                        ..Default::default()
                    }),
                })),
                connect_port: 50051,
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(fw.clone()),
                server: "10.0.3.1:0".into(),
                kind: Some(Kind::Exec(pb::ExecCheck {
                    command: vec!["/usr/local/bin/check".into(), "--fast".into()],
                })),
                connect_port: 8080,
                ..Default::default()
            },
            pb::CheckSpec {
                service: Some(fw),
                server: "10.0.3.2:0".into(),
                kind: Some(Kind::Http(pb::HttpCheck {
                    body_contains: "ok".into(),
                    expect: vec![range(204, 204)],
                    ..Default::default()
                })),
                connect_port: 80,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

#[test]
fn checks_mean_their_check_specs_and_round_trip() {
    let spec = parse("node.yaml", CHECKS_YAML, Format::Yaml).expect("parses");
    assert_eq!(spec, checks_spec());
    for format in [Format::Yaml, Format::Toml] {
        let text = render(&spec, format).expect("renders");
        assert_eq!(
            parse("exported", &text, format),
            Ok(spec.clone()),
            "{format}:\n{text}"
        );
    }
    // Exported, a check says only what differs from the defaults.
    let one = pb::NodeSpec {
        services: vec![spec.services[1].clone()],
        checks: spec.checks[3..5].to_vec(),
        ..Default::default()
    };
    assert_eq!(
        render(&one, Format::Yaml).expect("renders"),
        "services:\n\
         - udp: 10.0.0.1:53\n  \
           check:\n    \
             dns:\n      \
               name: example.org\n      \
               type: AAAA\n      \
               expect:\n      \
               - 2001:db8::53\n  \
           sorry-server: 10.0.9.10:53\n  \
           servers:\n  \
           - address: 10.0.2.1:53\n    \
             check:\n      \
               udp:\n        \
                 send: ping\n        \
                 expect: pong\n      \
               connect-ip: 10.0.2.100\n"
    );
}

#[test]
fn checks_the_file_cannot_place_are_refused_on_export() {
    let mut spec = checks_spec();
    spec.checks[1].server = "10.0.1.9:80".into();
    assert_eq!(
        render(&spec, Format::Yaml).map_err(|e| e.to_string()),
        Err("cannot write the spec as a node file: checks[1].server: 10.0.1.9:80 is not a real server of services[0]".into())
    );
    let mut spec = checks_spec();
    spec.checks[1].server = String::new();
    assert_eq!(
        render(&spec, Format::Yaml).map_err(|e| e.to_string()),
        Err("cannot write the spec as a node file: checks[1]: a second check of service services[0]".into())
    );
    let mut spec = checks_spec();
    spec.checks[0].service = Some(endpoint(pb::Protocol::Tcp, v4(10, 0, 0, 9), 80));
    assert_eq!(
        render(&spec, Format::Yaml).map_err(|e| e.to_string()),
        Err("cannot write the spec as a node file: checks[0].service: tcp:10.0.0.9:80 is not a service of the spec".into())
    );
}

#[test]
fn bad_checks_are_refused_with_the_place_and_the_reason() {
    let with = |check: &str| {
        one_service(&format!(
            "tcp: 10.0.0.1:80\nservers:\n  - address: 10.0.1.1\n    check: {check}"
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with("{tcpp: {}}"),
            "node.yaml:5:17: services[0].servers[0].check: unknown field `tcpp`, expected one of `tcp`, `http`, `https`, `udp`, `dns`, `grpc`, `exec`, `interval`, `timeout`, `rise`, `fall`, `initial`, `jitter`, `connect-ip`, `connect-port`, `on-failure`",
        ),
        (
            with("{interval: 2s}"),
            "node.yaml: services[0].servers[0].check: needs one of tcp, http, https, udp, dns, grpc or exec",
        ),
        (
            with("{tcp: {}, http: {}}"),
            "node.yaml: services[0].servers[0].check: has both tcp and http; a check has one kind",
        ),
        (
            with("{tcp: {port: 1}}"),
            "node.yaml:5:23: services[0].servers[0].check.tcp: unknown field `port`, there are no fields",
        ),
        (
            with("{tcp: {}, interval: 0}"),
            "node.yaml: services[0].servers[0].check.interval: 0 is below the minimum 10ms",
        ),
        (
            with("{tcp: {}, interval: 5ms}"),
            "node.yaml: services[0].servers[0].check.interval: 5ms is below the minimum 10ms",
        ),
        (
            with("{tcp: {}, interval: soon}"),
            "node.yaml: services[0].servers[0].check.interval: invalid duration \"soon\" (e.g. 2s, 500ms, 1m)",
        ),
        (
            with("{tcp: {}, interval: 2s, timeout: 2s}"),
            "node.yaml: services[0].servers[0].check.timeout: 2s is not below the interval 2s",
        ),
        (
            with("{tcp: {}, timeout: 6}"),
            "node.yaml: services[0].servers[0].check.timeout: 6s is not below the interval 5s",
        ),
        (
            with("{tcp: {}, timeout: 0}"),
            "node.yaml: services[0].servers[0].check.timeout: 0 is under 1ms (leave it out for the default)",
        ),
        (
            with("{tcp: {}, jitter: 5s}"),
            "node.yaml: services[0].servers[0].check.jitter: 5s is not below the interval 5s",
        ),
        (
            with("{tcp: {}, rise: 1001}"),
            "node.yaml: services[0].servers[0].check.rise: 1001 is above the maximum 1000",
        ),
        (
            with("{tcp: {}, fall: 0}"),
            "node.yaml: services[0].servers[0].check.fall: must be above 0 (leave it out for the default)",
        ),
        (
            with("{tcp: {}, initial: sideways}"),
            "node.yaml:5:35: services[0].servers[0].check.initial: unknown variant `sideways`, expected `up` or `down`",
        ),
        (
            with("{tcp: {}, connect-ip: 10.0.0}"),
            "node.yaml: services[0].servers[0].check.connect-ip: \"10.0.0\" is not an IP address",
        ),
        (
            with("{tcp: {}, connect-port: 70000}"),
            "node.yaml: services[0].servers[0].check.connect-port: 70000 is above the maximum 65535",
        ),
        (
            with("{http: {expect: [\"200-299\", \"500-404\"]}}"),
            "node.yaml: services[0].servers[0].check.http.expect[1]: 500-404 is not a range of status codes (100..599, first <= last)",
        ),
        (
            with("{https: {expect: 700}}"),
            "node.yaml: services[0].servers[0].check.https.expect[0]: 700-700 is not a range of status codes (100..599, first <= last)",
        ),
        (
            with("{http: {expect: [ok]}}"),
            "node.yaml: services[0].servers[0].check.http.expect[0]: `ok' is not a status code or range (e.g. 200, \"200-299\")",
        ),
        (
            with("{http: {body-regex: \"ok(\"}}"),
            "node.yaml: services[0].servers[0].check.http.body-regex: does not compile: regex parse error: ok( ^ error: unclosed group",
        ),
        (
            with("{http: {body: ok, body-regex: ok}}"),
            "node.yaml: services[0].servers[0].check.http.body-regex: give body or body-regex, not both",
        ),
        (
            with("{http: {path: healthz}}"),
            "node.yaml: services[0].servers[0].check.http.path: \"healthz\" is not a request path (it starts with / and has no spaces)",
        ),
        (
            with("{http: {skip-verify: true}}"),
            "node.yaml: services[0].servers[0].check.http.skip-verify: is only for https checks",
        ),
        (
            with("{grpc: {sni: x}}"),
            "node.yaml: services[0].servers[0].check.grpc.sni: is only with tls: true",
        ),
        (
            with("{exec: {command: []}}"),
            "node.yaml: services[0].servers[0].check.exec.command: is empty: name a program to run",
        ),
        (
            with("{dns: {name: \"a..b\"}}"),
            "node.yaml: services[0].servers[0].check.dns.name: \"a..b\" is not a domain name",
        ),
        (
            with("{dns: {name: example.org, expect: [\"2001:db8::1\"]}}"),
            "node.yaml: services[0].servers[0].check.dns.expect[0]: 2001:db8::1 cannot be the answer to a query of type A",
        ),
        (
            one_service("tcp: 10.0.0.1:80\nquorum: 1"),
            "node.yaml: services[0].quorum: is only for a service with a check of its own (check: on the service)",
        ),
        (
            one_service(
                "tcp: 10.0.0.1:80\nsorry-server: 10.0.9.9\nservers:\n  - address: 10.0.1.1\n    check: {tcp: {}}",
            ),
            "node.yaml: services[0].sorry-server: is only for a service with a check of its own (check: on the service)",
        ),
        (
            one_service("tcp: 10.0.0.1:80\ncheck: {tcp: {}}\nquorum: 0"),
            "node.yaml: services[0].quorum: must be at least 1 (leave it out for 1)",
        ),
        (
            one_service(
                "tcp: 10.0.0.1:80\ncheck: {tcp: {}}\nsorry-server: {address: 10.0.9.9, weight: 70000}",
            ),
            "node.yaml: services[0].sorry-server.weight: 70000 is out of range 0..65535",
        ),
        (
            one_service(
                "tcp: 10.0.0.1:80\ncheck: {tcp: {}}\nsorry-server: 10.0.1.1\nservers:\n  - address: 10.0.1.1",
            ),
            "node.yaml: services[0].sorry-server: is the real server declared at services[0].servers[0]",
        ),
        (
            one_service("tcp: 10.0.0.1:80\ncheck: {tcp: {}}\nsorry-server: [10.0.9.9]"),
            "node.yaml:4:19: services[0].sorry-server: invalid type: sequence, expected an address or a server entry ({address, forward, weight, ...})",
        ),
        (
            one_service("fwmark: 1\ncheck: {tcp: {}}\nservers:\n  - address: 10.0.1.1"),
            "node.yaml: services[0].check.connect-port: is needed: real server 10.0.1.1 (services[0].servers[0]) has no port to probe",
        ),
    ];
    let mut bad = Vec::new();
    for (text, want) in &cases {
        let got = parse("node.yaml", text, Format::Yaml).map_err(|e| e.to_string());
        if got != Err(want.to_string()) {
            bad.push(format!("{got:?}\n{want:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}
