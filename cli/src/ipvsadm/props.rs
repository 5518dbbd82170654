//! Properties of the parsers that read ipvsadm input: the command line, `-R` input, the
//! services database and C's number and address parsers. Any input gives a result or
//! ipvsadm's error, never a panic; a table saved with `-S -n` reads back as itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::command::{
    DestSpec, Forward, Netmask, SchedFlags, ServiceKey, ServiceSpec, Tunnel, TunnelChecksum,
    TunnelType,
};
use super::cparse;
use super::format;
use super::parse::{ParseError, parse, parse_line};
use super::request;
use super::resolve::{L4, NoNames, Services, test_names};
use super::restore::{self, Mode, Table};
use super::view::ServiceView;

/// Words ipvsadm knows, as options and as their values.
const WORDS: &[&str] = &[
    "-A",
    "-E",
    "-D",
    "-a",
    "-e",
    "-d",
    "-C",
    "-R",
    "-S",
    "-L",
    "-l",
    "-Z",
    "-h",
    "-v",
    "-V",
    "--set",
    "--start-daemon",
    "--stop-daemon",
    "-t",
    "-u",
    "-f",
    "--sctp-service",
    "-s",
    "-p",
    "-M",
    "-r",
    "-g",
    "-m",
    "-i",
    "-w",
    "-x",
    "-y",
    "-n",
    "-c",
    "--stats",
    "--rate",
    "--exact",
    "--thresholds",
    "--persistent-conn",
    "--tun-info",
    "--sort",
    "-6",
    "-o",
    "--ops",
    "--pe",
    "-b",
    "--tun-type",
    "--tun-port",
    "--tun-nocsum",
    "--tun-csum",
    "--tun-remcsum",
    "--mcast-interface",
    "--syncid",
    "--sync-maxlen",
    "--mcast-group",
    "--mcast-port",
    "--mcast-ttl",
    "--add-service",
    "--edit-service",
    "--delete-service",
    "--clear",
    "--list",
    "--numeric",
    "--connection",
    "--timeout",
    "--daemon",
    "--scheduler",
    "--persistent",
    "--netmask",
    "--real-server",
    "--gatewaying",
    "--masquerading",
    "--ipip",
    "--weight",
    "--u-threshold",
    "--l-threshold",
    "--sched-flags",
    "--help",
    "--version",
    "--replace",
    "--dry-run",
    "json",
    "text",
    "-o",
    "-tnL",
    "-Ln",
    "-At",
    "10.0.0.1:80",
    "10.0.0.1",
    "10.0.0.2:8080",
    "[2001:db8::1]:80",
    "[::1]",
    "2001:db8::1",
    "localhost",
    "localhost:http",
    "localhost:https",
    "10.0.0.1:domain",
    "1.2.3.4:0",
    "0x10",
    "010",
    "-1",
    "0",
    "1",
    "7",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "99999999999999999999999",
    "rr",
    "wrr",
    "lc",
    "wlc",
    "sh",
    "mh",
    "sed",
    "nq",
    "fo",
    "ovf",
    "twos",
    "bogus",
    "sip",
    "master",
    "backup",
    "eth0",
    "gre",
    "gue",
    "ipip",
    "300",
    "255.255.255.0",
    "24",
    "64",
    "128",
    "sh-fallback,sh-port",
    "mh-port",
    "flag-1,flag-3",
    "tcp",
    "udp",
    "sctp",
    "-",
    "--",
    "",
    " ",
    "=",
    "--set=1",
    "--weight=3",
    "-w3",
    "-p=10",
    "-tx",
    "-t10.0.0.1:80",
];

/// A word of the vocabulary or anything at all.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(WORDS).prop_map(String::from),
        1 => any::<String>(),
        1 => "[-0-9a-z:.\\[\\],=x]{0,24}",
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{1,60}",
    ]
}

/// Any words, or a command with a service first so that more lines get past the first checks.
fn argv() -> impl Strategy<Value = Vec<String>> {
    let command = proptest::sample::select(&["-A", "-E", "-D", "-a", "-e", "-d", "-L", "-Z"][..]);
    let service = proptest::sample::select(&["-t", "-u", "--sctp-service", "-f"][..]);
    let target = proptest::sample::select(
        &[
            "10.0.0.1:80",
            "[2001:db8::1]:443",
            "localhost:http",
            "1",
            "4294967295",
            "10.0.0.1",
        ][..],
    );
    prop_oneof![
        proptest::collection::vec(word(), 0..14),
        (
            command,
            service,
            target,
            proptest::collection::vec(word(), 0..10)
        )
            .prop_map(|(c, s, t, rest)| {
                [c, s, t]
                    .into_iter()
                    .map(String::from)
                    .chain(rest)
                    .collect()
            }),
    ]
}

/// An error the way ipvsadm reports it: a message and its exit status.
fn check_error(e: &ParseError) -> Result<(), TestCaseError> {
    prop_assert!(!e.to_string().is_empty(), "empty message for {e:?}");
    prop_assert!(
        matches!(e.exit_code(), 2 | 255),
        "exit status {} for {e:?}",
        e.exit_code()
    );
    Ok(())
}

/// `-R` input lines: vocabulary lines, comments, blanks, garbage and long lines.
fn restore_line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => argv().prop_map(|words| words.join(" ")),
        1 => "#[ -~]{0,30}",
        1 => "[ \t\r]{0,4}",
        1 => any::<String>(),
        1 => ("[a-z -]{1,8}", 1usize..3000).prop_map(|(s, n)| s.repeat(n)),
        1 => argv().prop_map(|w| format!("ipvsadm {}", w.join("\t"))),
    ]
}

fn scheduler() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
            "twos",
        ][..],
    )
}

fn ipv4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn ipv6(i: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        0,
        0,
        0,
        0,
        (i >> 16) as u16,
        i as u16,
    ))
}

/// A service generated from raw choices; `i` keeps keys unique.
#[allow(clippy::too_many_arguments)]
fn service_spec(
    i: u32,
    kind: u8,
    ipv6_key: bool,
    port: u16,
    sched: &str,
    persistent: Option<u32>,
    mask: u8,
    one_packet: bool,
    flags: (bool, bool, bool),
    pe: bool,
) -> ServiceSpec {
    let addr = if ipv6_key { ipv6(i) } else { ipv4(i) };
    let key = match kind {
        0 => ServiceKey::Addr {
            protocol: L4::Tcp,
            addr,
            port,
        },
        1 => ServiceKey::Addr {
            protocol: L4::Udp,
            addr,
            port,
        },
        2 => ServiceKey::Addr {
            protocol: L4::Sctp,
            addr,
            port,
        },
        _ => ServiceKey::Fwmark {
            mark: i + 1,
            ipv6: ipv6_key,
        },
    };
    let udp = matches!(
        key,
        ServiceKey::Addr {
            protocol: L4::Udp,
            ..
        }
    );
    let netmask = persistent.and(match (mask, ipv6_key) {
        (0, _) => None,
        (m, false) => Some(Netmask::V4(u32::MAX << (32 - u32::from(m % 32 + 1)))),
        (m, true) => Some(Netmask::V6Prefix(m % 128 + 1)),
    });
    let (f1, f2, f3) = flags;
    ServiceSpec {
        key,
        scheduler: sched.to_string(),
        persistent,
        netmask,
        one_packet: one_packet && udp,
        sched_flags: SchedFlags {
            flag_1: f1,
            flag_2: f2,
            flag_3: f3 && !matches!(sched, "sh" | "mh"),
        },
        persistence_engine: (pe && persistent.is_some()).then(|| "sip".to_string()),
    }
}

/// A real server of `key`; `j` keeps addresses unique within the service.
fn dest_spec(
    key: &ServiceKey,
    j: u32,
    forward: u8,
    other_family: bool,
    port: u16,
    tunnel: (u8, u16, u8),
    (weight, upper_threshold, lower_threshold): (u32, u32, u32),
) -> DestSpec {
    let forward = match forward {
        0 => Forward::Route,
        1 => Forward::Masq,
        _ => Forward::Tunnel,
    };
    let service_ipv6 = match key {
        ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
        ServiceKey::Fwmark { ipv6, .. } => *ipv6,
    };
    // Only tunnelling servers may be of the other family.
    let ipv6_dest = service_ipv6 ^ (other_family && forward == Forward::Tunnel);
    let addr = if ipv6_dest {
        ipv6(0x10000 + j)
    } else {
        ipv4(0x10000 + j)
    };
    // Direct routing and tunnelling keep the service's port.
    let port = match key {
        ServiceKey::Addr { port: p, .. } if forward != Forward::Masq => *p,
        _ => port,
    };
    let (kind, tun_port, checksum) = tunnel;
    let checksum = match checksum % 3 {
        0 => TunnelChecksum::None,
        1 => TunnelChecksum::Csum,
        _ => TunnelChecksum::RemCsum,
    };
    let tunnel = (forward == Forward::Tunnel).then_some(match kind % 3 {
        0 => Tunnel {
            kind: TunnelType::Ipip,
            port: None,
            checksum: TunnelChecksum::None,
        },
        1 => Tunnel {
            kind: TunnelType::Gue,
            port: Some(tun_port.max(1)),
            checksum,
        },
        // GRE has no remote checksum offload.
        _ => Tunnel {
            kind: TunnelType::Gre,
            port: None,
            checksum: match checksum {
                TunnelChecksum::RemCsum => TunnelChecksum::Csum,
                c => c,
            },
        },
    });
    DestSpec {
        addr,
        port,
        forward,
        tunnel,
        weight,
        upper_threshold,
        lower_threshold,
    }
}

type DestChoice = (u8, bool, u16, (u8, u16, u8), (u32, u32, u32));

fn dest_choice() -> impl Strategy<Value = DestChoice> {
    (
        0u8..3,
        any::<bool>(),
        any::<u16>(),
        (any::<u8>(), any::<u16>(), any::<u8>()),
        (0u32..=65535, 0u32..=65535, 0u32..=65535),
    )
}

/// A valid table: services of every kind, each with its real servers.
pub(crate) fn table() -> impl Strategy<Value = Vec<(ServiceSpec, Vec<DestSpec>)>> {
    let service = (
        (0u8..4, any::<bool>(), 1u16..=65535, scheduler()),
        (
            proptest::option::of(1u32..=2_678_400),
            any::<u8>(),
            any::<bool>(),
            any::<(bool, bool, bool)>(),
            any::<bool>(),
        ),
        proptest::collection::vec(dest_choice(), 0..4),
    );
    proptest::collection::vec(service, 0..6).prop_map(|services| {
        services
            .into_iter()
            .enumerate()
            .map(
                |(i, ((kind, v6, port, sched), (pers, mask, op, flags, pe), dests))| {
                    let spec =
                        service_spec(i as u32, kind, v6, port, sched, pers, mask, op, flags, pe);
                    let dests = dests
                        .into_iter()
                        .enumerate()
                        .map(|(j, (fwd, other, port, tunnel, weight))| {
                            dest_spec(&spec.key, j as u32, fwd, other, port, tunnel, weight)
                        })
                        .collect();
                    (spec, dests)
                },
            )
            .collect()
    })
}

/// `ipvsadm -S -n` of the agent's table.
fn save(services: &[ipvs_proto::v1::Service]) -> Result<String, TestCaseError> {
    let views = services
        .iter()
        .map(ServiceView::from_pb)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestCaseError::fail(format!("not a table: {e:?}")))?;
    Ok(format::rules(&views, true, &NoNames))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Any command line parses or fails with ipvsadm's message and status.
    #[test]
    fn any_command_line_parses_or_fails_like_ipvsadm(args in argv()) {
        if let Err(e) = parse("ipvsctl", &args, &test_names()) {
            check_error(&e)?;
        }
        if let Err(e) = parse_line("ipvsctl", &args, &test_names()) {
            check_error(&e)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any `-R` input reads, or is refused naming one of its lines.
    #[test]
    fn any_restore_input_reads_or_names_its_bad_line(
        lines in proptest::collection::vec(restore_line(), 0..12),
    ) {
        let input = lines.join("\n");
        let count = input.split('\n').count();
        for mode in [Mode::OnTop, Mode::Replace] {
            if let Err(r) = restore::read("ipvsctl", &input, &test_names(), mode) {
                prop_assert!((1..=count).contains(&r.error.line), "line {} of {count}", r.error.line);
                prop_assert!(!r.error.message.is_empty());
                prop_assert!(matches!(r.error.code, 2 | 255), "status {}", r.error.code);
            }
        }
    }

    /// A table saved with `-S -n` and read back with `--replace` saves as the same text.
    #[test]
    fn save_restore_save_is_the_identity(table in table()) {
        let services = table
            .iter()
            .map(|(spec, dests)| {
                let service = request::service(spec).map_err(TestCaseError::fail)?;
                Ok(ipvs_proto::v1::Service {
                    destinations: dests.iter().map(request::destination).collect(),
                    ..service
                })
            })
            .collect::<Result<Vec<_>, TestCaseError>>()?;
        let saved = save(&services)?;
        let restored = restore::read("ipvsctl", &saved, &NoNames, Mode::Replace)
            .map_err(|r| TestCaseError::fail(format!("{saved}refused: {:?}", r.error)))?;
        let table = match restored.table {
            Table::Replace(t) => t,
            Table::Untouched => Vec::new(),
            Table::OnTop(_) => return Err(TestCaseError::fail("not a replacement")),
        };
        prop_assert_eq!(&save(&table)?, &saved);
        prop_assert!(restored.deferred.is_empty());
        // On top of the current table, every line is one command for the agent.
        let lines = saved.lines().count();
        match restore::read("ipvsctl", &saved, &NoNames, Mode::OnTop) {
            Ok(r) => match r.table {
                Table::OnTop(commands) => prop_assert_eq!(commands.len(), lines),
                Table::Untouched => prop_assert_eq!(lines, 0),
                Table::Replace(_) => prop_assert!(false, "a replacement on top"),
            },
            Err(r) => prop_assert!(false, "{saved}refused on top: {:?}", r.error),
        }
    }

    /// Any services database reads; the names of well-formed lines resolve.
    #[test]
    fn services_database_reads_anything(
        garbage in proptest::collection::vec(any::<String>(), 0..6),
        name in "[a-z][a-z0-9-]{0,12}",
        port in any::<u16>(),
        proto in proptest::sample::select(&["tcp", "udp", "sctp"][..]),
    ) {
        let text = format!("{name}\t{port}/{proto}\t# comment\n{}", garbage.join("\n"));
        let db = Services::parse(&text);
        let l4 = match proto {
            "tcp" => L4::Tcp,
            "udp" => L4::Udp,
            _ => L4::Sctp,
        };
        prop_assert_eq!(db.port(&name, l4), Some(port));
        prop_assert_eq!(db.name(port, l4), Some(name));
    }

    /// C's number and address parsers take any text; what they print reads back.
    #[test]
    fn c_parsers_take_any_text(s in any::<String>(), n in any::<i64>(), a in any::<u32>()) {
        let _ = cparse::strtol_full(&s);
        let _ = cparse::atoi(&s);
        let _ = cparse::inet_aton(&s);
        if let Some(v) = cparse::string_to_number(&s, 0, 65535) {
            prop_assert!((0..=65535).contains(&v));
        }
        prop_assert_eq!(cparse::strtol_full(&n.to_string()), Some(n));
        let addr = Ipv4Addr::from(a);
        prop_assert_eq!(cparse::inet_aton(&addr.to_string()), Some(addr));
    }
}
