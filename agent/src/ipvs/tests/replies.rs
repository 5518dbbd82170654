//! Replies: kernel messages (6.1 layout, `net/netfilter/ipvs/ip_vs_ctl.c`) read into
//! domain values. The kernel nests without `NLA_F_NESTED`, puts ports in network order,
//! and sends both STATS and STATS64 (≥ 4.1).
//!
//! Built from the kernel's `ip_vs_genl_fill_*` functions, attribute by attribute; to be
//! checked against captures of `ipvsadm -ln` replies (`cargo xtask lab capture`).

use std::net::IpAddr;

use netlink_packet_core::DefaultNla;

use super::parse;
use crate::ipvs::attr::{CmdAttr, IpvsAttr, ServiceAttr, StatsAttr};
use crate::ipvs::message::IpvsMessage;
use crate::ipvs::types::*;

/// One attribute: `nla_len`, `nla_type`, value, zero padding to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + value.len()).expect("small attribute");
    let mut out = [&len.to_ne_bytes()[..], &kind.to_ne_bytes(), value].concat();
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

fn u16_(v: u16) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}
fn u32_(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}
fn u64_(v: u64) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// `nf_inet_addr` of an IPv4 address.
fn inet4(a: [u8; 4]) -> Vec<u8> {
    [&a[..], &[0u8; 12]].concat()
}

/// `ip_vs_genl_fill_stats`: CONNS, INPKTS, OUTPKTS u32; INBYTES, OUTBYTES u64; rates u32.
fn stats32(v: [u64; 10]) -> Vec<u8> {
    (0..10)
        .flat_map(|i| {
            let kind = u16::try_from(i + 1).expect("kind");
            if i == 3 || i == 4 {
                nla(kind, &u64_(v[i]))
            } else {
                nla(kind, &u32_(v[i] as u32))
            }
        })
        .collect()
}

/// `ip_vs_genl_fill_stats64`: all ten u64 (no PAD attribute on x86-64).
fn stats64(v: [u64; 10]) -> Vec<u8> {
    (0..10)
        .flat_map(|i| nla(u16::try_from(i + 1).expect("kind"), &u64_(v[i])))
        .collect()
}

fn reply(cmd: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    [vec![cmd, 1, 0, 0], attrs.concat()].concat()
}

/// Counters of the seed scenario: 6 connections, in/out packets and bytes, and rates.
/// INPKTS is past 2^32 so that STATS64 and the truncated STATS differ.
const COUNTERS: [u64; 10] = [6, (1 << 32) + 36, 24, 2304, 3104, 1, 5, 4, 300, 400];

fn counters() -> Stats {
    let v = COUNTERS;
    Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
        cps: v[5],
        inpps: v[6],
        outpps: v[7],
        inbps: v[8],
        outbps: v[9],
    }
}

/// The attributes of `TCP 192.168.100.1:80 rr` in a service dump (`ipvsadm -ln`), as
/// `ip_vs_genl_fill_service` writes them.
fn service_tcp_rr(with_stats64: bool) -> Vec<u8> {
    let mut svc = [
        nla(1, &u16_(2)),                        // AF: AF_INET
        nla(2, &u16_(6)),                        // PROTOCOL: tcp
        nla(3, &inet4([192, 168, 100, 1])),      // ADDR
        nla(4, &80u16.to_be_bytes()),            // PORT 80, network order
        nla(6, b"rr\0"),                         // SCHED_NAME
        nla(7, &[u32_(0x2), u32_(!0)].concat()), // FLAGS: HASHED, mask ~0
        nla(8, &u32_(0)),                        // TIMEOUT
        nla(9, &[0xff, 0xff, 0xff, 0xff]),       // NETMASK, network order
        nla(10, &stats32(COUNTERS)),             // STATS (no NLA_F_NESTED)
    ]
    .concat();
    if with_stats64 {
        svc.extend(nla(12, &stats64(COUNTERS))); // STATS64
    }
    // IPVS_CMD_NEW_SERVICE: IPVS_CMD_ATTR_SERVICE, nested without NLA_F_NESTED.
    reply(1, &[nla(1, &svc)])
}

#[test]
fn service_dump_entry_prefers_stats64() {
    let msg = parse(&service_tcp_rr(true));
    let want = ServiceEntry {
        service: Service::new(
            ServiceKey::Endpoint {
                protocol: Protocol::Tcp,
                addr: "192.168.100.1".parse().expect("ip"),
                port: 80,
            },
            Scheduler::Rr,
        ),
        stats: counters(),
    };
    assert_eq!(msg.to_service_entry().ok(), Some(want));
}

#[test]
fn service_before_stats64_uses_stats() {
    let entry = parse(&service_tcp_rr(false))
        .to_service_entry()
        .expect("entry");
    let mut want = counters();
    want.inpkts = 36; // what the 32-bit layout can hold
    assert_eq!(entry.stats, want);
}

/// `FWM 7 IPv6 sh` persistent 60 s per /64 with the SIP engine, HASHED set by the kernel.
#[test]
fn fwmark_ipv6_persistent_service() {
    let svc = [
        nla(1, &u16_(10)),                                   // AF: AF_INET6
        nla(5, &u32_(7)),                                    // FWMARK 7
        nla(6, b"sh\0"),                                     // SCHED_NAME
        nla(11, b"sip\0"),                                   // PE_NAME
        nla(7, &[u32_(0x2 | 0x1 | 0x8), u32_(!0)].concat()), // FLAGS: HASHED PERSISTENT SCHED1
        nla(8, &u32_(60)),                                   // TIMEOUT 60
        nla(9, &u32_(64)),                                   // NETMASK: prefix 64, host order
        nla(10, &stats32([0; 10])),                          // STATS
        nla(12, &stats64([0; 10])),                          // STATS64
    ]
    .concat();
    let entry = parse(&reply(1, &[nla(1, &svc)]))
        .to_service_entry()
        .expect("entry");
    let mut want = Service::new(
        ServiceKey::fwmark(7, Family::Inet6).expect("mark"),
        Scheduler::Sh,
    );
    want.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1);
    want.timeout = 60;
    want.netmask = 64;
    want.pe_name = Some("sip".into());
    assert_eq!(entry.service, want);
    assert_eq!(entry.stats, Stats::default());
}

/// One real server of `TCP 192.168.100.1:80` in a destination dump, as
/// `ip_vs_genl_fill_dest` writes it: `-> 10.0.0.2:8080 Masq 2 1 3` with the counters.
fn dest_masq() -> Vec<u8> {
    let dest = [
        nla(1, &inet4([10, 0, 0, 2])),  // ADDR
        nla(2, &8080u16.to_be_bytes()), // PORT 8080, network order
        nla(3, &u32_(0)),               // FWD_METHOD: MASQ
        nla(4, &u32_(2)),               // WEIGHT 2
        nla(13, &[0]),                  // TUN_TYPE: IPIP (unused)
        nla(14, &0u16.to_be_bytes()),   // TUN_PORT 0
        nla(15, &u16_(0)),              // TUN_FLAGS 0
        nla(5, &u32_(100)),             // U_THRESH 100
        nla(6, &u32_(10)),              // L_THRESH 10
        nla(7, &u32_(1)),               // ACTIVE_CONNS 1
        nla(8, &u32_(3)),               // INACT_CONNS 3
        nla(9, &u32_(0)),               // PERSIST_CONNS 0
        nla(11, &u16_(2)),              // ADDR_FAMILY: AF_INET
        nla(10, &stats32(COUNTERS)),    // STATS
        nla(12, &stats64(COUNTERS)),    // STATS64
    ]
    .concat();
    // IPVS_CMD_NEW_DEST: IPVS_CMD_ATTR_DEST, nested without NLA_F_NESTED.
    reply(5, &[nla(2, &dest)])
}

#[test]
fn dest_dump_entry() {
    let entry = parse(&dest_masq())
        .to_destination_entry(Family::Inet)
        .expect("entry");
    let mut dest = Destination::new("10.0.0.2".parse().expect("ip"), 8080);
    dest.forward = ForwardMethod::Masquerade;
    dest.weight = 2;
    dest.upper_threshold = 100;
    dest.lower_threshold = 10;
    assert_eq!(
        entry,
        DestinationEntry {
            dest,
            active_conns: 1,
            inactive_conns: 3,
            persistent_conns: 0,
            stats: counters(),
        }
    );
}

/// An IPv6 GUE tunnel server behind an IPv4 service: ADDR_FAMILY says how to read ADDR.
#[test]
fn dest_of_the_other_family() {
    let v6: IpAddr = "2001:db8::2".parse().expect("ip");
    let IpAddr::V6(octets) = v6 else {
        unreachable!("literal is IPv6")
    };
    let dest = [
        nla(1, &octets.octets()),        // ADDR 2001:db8::2
        nla(2, &80u16.to_be_bytes()),    // PORT 80
        nla(3, &u32_(2)),                // FWD_METHOD: TUNNEL
        nla(4, &u32_(1)),                // WEIGHT 1
        nla(13, &[1]),                   // TUN_TYPE: GUE
        nla(14, &6080u16.to_be_bytes()), // TUN_PORT 6080
        nla(15, &u16_(1)),               // TUN_FLAGS: CSUM
        nla(5, &u32_(0)),                // U_THRESH
        nla(6, &u32_(0)),                // L_THRESH
        nla(7, &u32_(0)),                // ACTIVE_CONNS
        nla(8, &u32_(0)),                // INACT_CONNS
        nla(9, &u32_(0)),                // PERSIST_CONNS
        nla(11, &u16_(10)),              // ADDR_FAMILY: AF_INET6
        nla(10, &stats32([0; 10])),      // STATS
        nla(12, &stats64([0; 10])),      // STATS64
    ]
    .concat();
    let entry = parse(&reply(5, &[nla(2, &dest)]))
        .to_destination_entry(Family::Inet)
        .expect("entry");
    assert_eq!(entry.dest.addr, v6);
    assert_eq!(entry.dest.forward, ForwardMethod::Tunnel);
    assert_eq!(
        entry.dest.tunnel,
        Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            checksum: TunnelChecksum::Csum,
        }
    );
}

/// `ipvsadm -ln` header: `IPVS_CMD_SET_INFO` answering GET_INFO, info attributes at the top
/// level (their numbers overlap SERVICE and DEST).
#[test]
fn info_reply() {
    let bytes = reply(14, &[nla(1, &u32_(0x010201)), nla(2, &u32_(4096))]);
    assert_eq!(
        parse(&bytes).to_info().ok(),
        Some(Info {
            version: 0x010201,
            conn_tab_size: 4096,
        })
    );
}

/// `ipvsadm -L --timeout`: `IPVS_CMD_SET_CONFIG` answering GET_CONFIG.
#[test]
fn config_reply() {
    let bytes = reply(
        12,
        &[nla(4, &u32_(900)), nla(5, &u32_(120)), nla(6, &u32_(300))],
    );
    assert_eq!(
        parse(&bytes).to_timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    );
}

/// `ipvsadm -L --daemon`: one `IPVS_CMD_NEW_DAEMON` per running daemon, as
/// `ip_vs_genl_fill_daemon` writes it.
#[test]
fn daemon_reply() {
    let d = [
        nla(1, &u32_(1)),         // STATE: MASTER
        nla(2, b"eth0\0"),        // MCAST_IFN
        nla(3, &u32_(5)),         // SYNC_ID
        nla(4, &u16_(1472)),      // SYNC_MAXLEN
        nla(7, &u16_(8848)),      // MCAST_PORT, host order
        nla(8, &[1]),             // MCAST_TTL
        nla(5, &[224, 0, 0, 81]), // MCAST_GROUP, network order
    ]
    .concat();
    assert_eq!(
        parse(&reply(9, &[nla(3, &d)])).to_daemon().ok(),
        Some(Daemon {
            state: DaemonState::Master,
            mcast_ifn: "eth0".into(),
            sync_id: 5,
            sync_maxlen: Some(1472),
            mcast_group: Some("224.0.0.81".parse().expect("ip")),
            mcast_port: Some(8848),
            mcast_ttl: Some(1),
        })
    );
}

/// Attributes a newer kernel might add are kept, at every level, and do not disturb the
/// known ones.
#[test]
fn unknown_attributes_are_kept_as_other() {
    let mut svc = service_tcp_rr(true)[8..].to_vec(); // the service's attributes
    svc.extend(nla(42, &[1, 2, 3, 4])); // unknown service attribute
    let stats = [stats32(COUNTERS), nla(11, &[]), nla(77, &u32_(9))].concat(); // PAD, unknown
    svc.extend(nla(10, &stats));
    let bytes = reply(1, &[nla(1, &svc), nla(99, &[7, 7])]);
    let msg = parse(&bytes);
    assert!(
        msg.attrs
            .contains(&IpvsAttr::Cmd(CmdAttr::Other(DefaultNla::new(
                99,
                vec![7, 7]
            ))))
    );
    let attrs = msg.service_attrs().expect("service");
    assert!(attrs.contains(&ServiceAttr::Other(DefaultNla::new(42, vec![1, 2, 3, 4]))));
    let Some(ServiceAttr::Stats(last)) = attrs
        .iter()
        .rev()
        .find(|a| matches!(a, ServiceAttr::Stats(_)))
    else {
        panic!("no second STATS");
    };
    assert!(last.contains(&StatsAttr::Other(DefaultNla::new(11, vec![]))));
    assert!(last.contains(&StatsAttr::Other(DefaultNla::new(77, u32_(9)))));
    assert_eq!(
        msg.to_service_entry().map(|e| e.stats).ok(),
        Some(counters())
    );
}

/// Bad input is an error naming what is wrong, never a panic.
#[test]
fn malformed_replies_are_errors() {
    use netlink_packet_core::ParseableParametrized;
    use netlink_packet_generic::GenlHeader;

    let parse_err = |bytes: &[u8]| {
        let header = GenlHeader::parse(bytes).expect("genlmsghdr");
        IpvsMessage::parse_with_param(&bytes[4..], header)
            .expect_err("must not parse")
            .to_string()
    };
    // AF of 3 bytes.
    let bad_af = reply(1, &[nla(1, &nla(1, &[2, 0, 0]))]);
    assert!(
        parse_err(&bad_af).contains("invalid IPVS_SVC_ATTR_AF"),
        "{}",
        parse_err(&bad_af)
    );
    // A port of 4 bytes.
    let bad_port = reply(1, &[nla(1, &nla(4, &u32_(80)))]);
    assert!(parse_err(&bad_port).contains("IPVS_SVC_ATTR_PORT must be 2 bytes, got 4"));
    // A scheduler name without its NUL.
    let bad_sched = reply(1, &[nla(1, &nla(6, b"rr"))]);
    assert!(parse_err(&bad_sched).contains("IPVS_SVC_ATTR_SCHED_NAME is not NUL-terminated"));
    // An attribute whose length runs past the buffer.
    let mut truncated = service_tcp_rr(true);
    truncated.truncate(truncated.len() - 6);
    assert!(parse_err(&truncated).contains("failed to parse IPVS NewService attributes"));
    // An unknown command.
    assert_eq!(parse_err(&[200, 1, 0, 0]), "unknown IPVS command 200");

    // Well-formed attributes that do not make a service.
    let no_sched = reply(1, &[nla(1, &[nla(1, &u16_(2)), nla(5, &u32_(7))].concat())]);
    assert_eq!(
        parse(&no_sched)
            .to_service_entry()
            .map_err(|e| e.to_string()),
        Err("missing IPVS_SVC_ATTR_FLAGS".to_owned())
    );
    let odd_family = reply(1, &[nla(1, &[nla(1, &u16_(7)), nla(5, &u32_(7))].concat())]);
    assert_eq!(
        parse(&odd_family)
            .to_service_entry()
            .map_err(|e| e.to_string()),
        Err("service: unknown address family 7".to_owned())
    );
    let ah = reply(
        1,
        &[nla(
            1,
            &[
                nla(1, &u16_(2)),
                nla(2, &u16_(51)),
                nla(3, &inet4([1, 1, 1, 1])),
                nla(4, &[0, 0]),
            ]
            .concat(),
        )],
    );
    assert_eq!(
        parse(&ah).to_service_entry().map_err(|e| e.to_string()),
        Err("service: unsupported protocol 51".to_owned())
    );
    let bogus_forward = reply(
        5,
        &[nla(
            2,
            &[
                nla(1, &inet4([10, 0, 0, 2])),
                nla(2, &[0, 80]),
                nla(3, &u32_(7)),
            ]
            .concat(),
        )],
    );
    assert_eq!(
        parse(&bogus_forward)
            .to_destination_entry(Family::Inet)
            .map_err(|e| e.to_string()),
        Err("destination: unknown forwarding method 7".to_owned())
    );
    let short_stats = reply(
        1,
        &[nla(
            1,
            &[
                service_tcp_rr(false)[8..].to_vec(),
                nla(12, &nla(1, &u64_(1))),
            ]
            .concat(),
        )],
    );
    assert_eq!(
        parse(&short_stats)
            .to_service_entry()
            .map_err(|e| e.to_string()),
        Err("STATS64 lacks IPVS_STATS_ATTR_INPKTS".to_owned())
    );
}
