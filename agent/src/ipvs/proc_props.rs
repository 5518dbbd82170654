//! Properties of the `/proc` readers: the connection table and the module lists are whatever
//! the node's kernel (or a file put in their place) says, so any text gives entries or a typed
//! error, and a table printed as the kernel prints it reads back as what was printed.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use proptest::sample::select;

use super::conn::{ConnTableError, Connection, PeData, parse_line, parse_table};
use super::schedulers::{indexed, loaded, offered, scheduler_of};
use super::types::Scheduler;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text as a file might hold it: lossy UTF-8 of any bytes, table-like tokens, long lines.
fn arb_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("TCP".to_owned()),
        Just("Pro FromIP".to_owned()),
        "[0-9A-F]{1,9}",
        "[0-9a-f:]{1,40}",
        "[ \t\r\n]{1,3}",
        "\\PC{0,12}",
        (1usize..5000).prop_map(|n| "F".repeat(n)),
        Just("ip_vs_rr 12288 2 - Live 0x0".to_owned()),
        Just("kernel/net/netfilter/ipvs/ip_vs_wlc.ko.xz: kernel/x.ko".to_owned()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::collection::vec(token, 0..40).prop_map(|t| t.join(" ")),
    ]
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

/// Connection entries as the kernel can show them: the family of the client and virtual
/// address agree, the real server's may differ.
fn arb_connection() -> impl Strategy<Value = Connection> {
    let addrs = (any::<bool>(), arb_ip(), any::<[u128; 2]>()).prop_map(|(v6, dest, [a, b])| {
        let ip = |n: u128| {
            if v6 {
                IpAddr::V6(Ipv6Addr::from(n))
            } else {
                IpAddr::V4(Ipv4Addr::from(n as u32))
            }
        };
        (ip(a), ip(b), dest)
    });
    let pe = proptest::option::of(("[a-z]{1,8}", "[ -~]{0,40}"))
        .prop_map(|pe| pe.map(|(name, data)| PeData { name, data }));
    (
        select(vec!["TCP", "UDP", "SCTP", "IP", "IP_47"]),
        addrs,
        any::<[u16; 3]>(),
        select(vec![
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK",
            "UDP",
            "ICMP",
            "COOKIE_ECHOED",
            "SHUTDOWN_ACK_SENT",
        ]),
        any::<u32>(),
        pe,
    )
        .prop_map(
            |(protocol, (client, vip, dest), [cp, vp, dp], state, expires, pe)| Connection {
                protocol: protocol.to_owned(),
                client: SocketAddr::new(client, cp),
                vip: SocketAddr::new(vip, vp),
                dest: SocketAddr::new(dest, dp),
                state: state.to_owned(),
                expires,
                pe,
            },
        )
}

/// `%08X` of a host-order IPv4 address, or `%pI6` (eight groups of four hex digits).
fn kernel_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{:08X}", u32::from(a)),
        IpAddr::V6(a) => a
            .segments()
            .iter()
            .map(|s| format!("{s:04x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// A line as `ip_vs_conn_seq_show` prints it.
fn kernel_line(c: &Connection) -> String {
    let mut line = format!(
        "{:<3} {} {:04X} {} {:04X} {} {:04X} {:<11} {:>7}",
        c.protocol,
        kernel_addr(c.client.ip()),
        c.client.port(),
        kernel_addr(c.vip.ip()),
        c.vip.port(),
        kernel_addr(c.dest.ip()),
        c.dest.port(),
        c.state,
        c.expires,
    );
    if let Some(pe) = &c.pe {
        let _ = write!(line, " {} {}", pe.name, pe.data);
    }
    line
}

const HEADER: &str =
    "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData";

/// A refusal names a line of the text, and quotes that line.
fn check_table(text: &str) -> Result<(), TestCaseError> {
    match parse_table(text) {
        Ok(entries) => prop_assert!(entries.len() <= text.lines().count()),
        Err(ConnTableError {
            line,
            text: quoted,
            problem,
        }) => {
            prop_assert!(!problem.is_empty());
            prop_assert_eq!(text.lines().nth(line - 1), Some(quoted.as_str()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_a_table_or_a_refusal(text in arb_text()) {
        check_table(&text)?;
        for line in text.lines() {
            let _ = parse_line(line);
        }
    }

    /// Valid lines with one field damaged, many lines, and very long ones.
    #[test]
    fn damaged_tables_are_refused_by_line(
        conns in proptest::collection::vec(arb_connection(), 0..40),
        cut in any::<usize>(),
        junk in "\\PC{0,20}",
    ) {
        let mut text = format!("{HEADER}\n");
        for c in &conns {
            text.push_str(&kernel_line(c));
            text.push('\n');
        }
        let mut at = cut % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, &junk);
        check_table(&text)?;
        check_table(&text.repeat(3))?;
    }

    /// The kernel's format reads back as the entries printed, header or not.
    #[test]
    fn printed_tables_read_back(
        conns in proptest::collection::vec(arb_connection(), 0..40),
        header in any::<bool>(),
    ) {
        let mut text = if header { format!("{HEADER}\n") } else { String::new() };
        for c in &conns {
            prop_assert_eq!(parse_line(&kernel_line(c)), Ok(c.clone()));
            text.push_str(&kernel_line(c));
            text.push('\n');
        }
        prop_assert_eq!(parse_table(&text), Ok(conns));
    }

    /// Module lists: any text gives a set of schedulers, each one a module of the text.
    #[test]
    fn module_lists_name_only_their_modules(text in arb_text()) {
        let names = text.replace('-', "_");
        for s in loaded(&text).iter().chain(&indexed(&text)) {
            prop_assert!(names.contains(&format!("ip_vs_{}", s.name())), "{}", s.name());
        }
        let all = offered(Some(&text), &[Some(&text), None]);
        prop_assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    /// `/proc/modules` and `modules.dep` lines of scheduler modules give those schedulers.
    #[test]
    fn module_lists_read_back(
        schedulers in proptest::collection::btree_set(
            prop_oneof![
                select(Scheduler::KNOWN.to_vec()),
                "[a-z][a-z0-9]{0,10}".prop_filter("not IPVS's other modules", |s| {
                    s != "ftp" && !s.starts_with("pe_")
                }).prop_map(|s| Scheduler::from_kernel(&s)),
            ],
            0..10,
        ),
    ) {
        let mut proc_modules = String::from("ip_vs 200000 3 ip_vs_rr, Live 0x0\n");
        let mut dep = String::from("kernel/net/netfilter/ipvs/ip_vs_ftp.ko.xz: kernel/x.ko\n");
        for s in &schedulers {
            let _ = writeln!(proc_modules, "ip_vs_{} 12288 2 - Live 0x0000000000000000", s.name());
            let _ = writeln!(dep, "kernel/net/netfilter/ipvs/ip_vs_{}.ko.zst: ", s.name());
            prop_assert_eq!(scheduler_of(&format!("ip_vs_{}", s.name())), Some(s.clone()));
        }
        proc_modules.push_str("ip_vs_gone 12288 0 - Unloading 0x0\n");
        prop_assert_eq!(&loaded(&proc_modules), &schedulers);
        prop_assert_eq!(&indexed(&dep), &schedulers);
    }
}
