//! Replies: the kernel's captured answers read into the domain values ipvsadm printed for
//! them; then what the captures cannot show (kernels without STATS64, counters past 2^32,
//! attributes from newer kernels, malformed input), built attribute by attribute.

use std::net::IpAddr;

use netlink_packet_core::DefaultNla;

use super::captured::*;
use super::parse;
use crate::ipvs::attr::{CmdAttr, IpvsAttr, ServiceAttr, StatsAttr};
use crate::ipvs::message::IpvsMessage;
use crate::ipvs::types::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn tcp80() -> ServiceKey {
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: ip("192.168.100.1"),
        port: 80,
    }
}

#[test]
fn info() {
    assert_eq!(
        parse(INFO_REPLY).to_info().ok(),
        Some(Info {
            version: 0x010201,
            conn_tab_size: 4096,
        })
    );
}

/// `TCP  192.168.100.1:80 wlc persistent 300 mask 255.255.255.0`: the kernel's HASHED flag
/// is not part of the service.
#[test]
fn persistent_service() {
    let mut want = Service::new(tcp80(), Scheduler::Wlc);
    want.flags = ServiceFlags(ServiceFlags::PERSISTENT);
    want.timeout = 300;
    want.netmask = 0xffff_ff00;
    assert_eq!(
        parse(SERVICE_WLC_PERSISTENT).to_service_entry().ok(),
        Some(ServiceEntry {
            service: want,
            stats: Stats::default(),
        })
    );
}

/// `UDP  [2001:db8::1]:53 wlc persistent 300 mask 64 pe sip ops`,
/// `FWM  7 sh (sh-port) persistent 60 mask 255.255.255.0` and `FWM  8 IPv6 rr`.
#[test]
fn ipv6_and_fwmark_services() {
    let mut udp6 = Service::new(
        ServiceKey::Endpoint {
            protocol: Protocol::Udp,
            addr: ip("2001:db8::1"),
            port: 53,
        },
        Scheduler::Wlc,
    );
    udp6.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::ONEPACKET);
    udp6.timeout = 300;
    udp6.netmask = 64;
    udp6.pe_name = Some("sip".into());
    let mut sh = Service::new(
        ServiceKey::fwmark(7, Family::Inet).expect("mark"),
        Scheduler::Sh,
    );
    sh.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED2);
    sh.timeout = 60;
    sh.netmask = 0xffff_ff00;
    let fwm6 = Service::new(
        ServiceKey::fwmark(8, Family::Inet6).expect("mark"),
        Scheduler::Rr,
    );
    for (bytes, want) in [
        (SERVICE_UDP6_PE, udp6),
        (SERVICE_FWMARK_SH, sh),
        (SERVICE_FWMARK6, fwm6),
    ] {
        assert_eq!(
            parse(bytes).to_service_entry().map(|e| e.service).ok(),
            Some(want)
        );
    }
}

/// `-> 10.0.0.2:8080 Masq 5 0 0`.
#[test]
fn masquerade_dest() {
    let mut dest = Destination::new(ip("10.0.0.2"), 8080);
    dest.forward = ForwardMethod::Masquerade;
    dest.weight = 5;
    assert_eq!(
        parse(DEST_MASQ).to_destination_entry(Family::Inet).ok(),
        Some(DestinationEntry {
            dest,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        })
    );
}

/// `-> 10.0.0.5:0 Route 1 0 0` under `FWM 7`.
#[test]
fn direct_routing_dest_of_a_fwmark() {
    assert_eq!(
        parse(DEST_FWMARK_DR)
            .to_destination_entry(Family::Inet)
            .map(|e| e.dest)
            .ok(),
        Some(Destination::new(ip("10.0.0.5"), 0))
    );
}

/// `-> [2001:db8::2]:80 Tunnel 1 0 0` under an IPv4 service: ADDR_FAMILY says how to read
/// the address.
#[test]
fn gue_tunnel_dest_of_the_other_family() {
    let mut dest = Destination::new(ip("2001:db8::2"), 80);
    dest.forward = ForwardMethod::Tunnel;
    dest.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        checksum: TunnelChecksum::None,
    };
    assert_eq!(
        parse(DEST_GUE6)
            .to_destination_entry(Family::Inet)
            .map(|e| e.dest)
            .ok(),
        Some(dest)
    );
}

/// `ipvsadm -ln --stats`: `TCP 192.168.100.1:80  3  21  15  1344  1434`, the same on its one
/// real server, which holds 3 inactive connections.
#[test]
fn counters_after_traffic() {
    let want = Stats {
        conns: 3,
        inpkts: 21,
        outpkts: 15,
        inbytes: 1344,
        outbytes: 1434,
        cps: 0,
        inpps: 2,
        outpps: 1,
        inbps: 126,
        outbps: 134,
    };
    let svc = parse(SERVICE_WITH_STATS)
        .to_service_entry()
        .expect("service");
    assert_eq!(svc.service, Service::new(tcp80(), Scheduler::Rr));
    assert_eq!(svc.stats, want);
    let dest = parse(DEST_WITH_STATS)
        .to_destination_entry(Family::Inet)
        .expect("dest");
    let mut masq = Destination::new(ip("127.0.0.1"), 8081);
    masq.forward = ForwardMethod::Masquerade;
    assert_eq!(
        dest,
        DestinationEntry {
            dest: masq,
            active_conns: 0,
            inactive_conns: 3,
            persistent_conns: 0,
            stats: want,
        }
    );
}

/// `Timeout (tcp tcpfin udp): 900 120 300`.
#[test]
fn timeouts() {
    assert_eq!(
        parse(CONFIG_REPLY).to_timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    );
}

/// `master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848,
/// ttl=1)`: the kernel reports its defaults for what was not given.
#[test]
fn daemon() {
    assert_eq!(
        parse(DAEMON_REPLY).to_daemon().ok(),
        Some(Daemon {
            state: DaemonState::Master,
            mcast_ifn: "lo".into(),
            sync_id: 5,
            sync_maxlen: Some(1472),
            mcast_group: Some(ip("224.0.0.81")),
            mcast_port: Some(8848),
            mcast_ttl: Some(1),
        })
    );
}

/// One attribute: `nla_len`, `nla_type`, value, zero padding to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + value.len()).expect("small attribute");
    let mut out = [&len.to_ne_bytes()[..], &kind.to_ne_bytes(), value].concat();
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// A captured service reply rebuilt with its service attributes passed through `edit`.
fn edited_service(mut edit: impl FnMut(&mut Vec<ServiceAttr>)) -> IpvsMessage {
    let mut msg = parse(SERVICE_WITH_STATS);
    for attr in &mut msg.attrs {
        if let IpvsAttr::Cmd(CmdAttr::Service(a)) = attr {
            edit(a);
        }
    }
    msg
}

/// Kernels before 4.1 send STATS only; its 32-bit counters are read as they are.
#[test]
fn stats_without_stats64() {
    let msg = edited_service(|a| a.retain(|x| !matches!(x, ServiceAttr::Stats64(_))));
    let stats = msg.to_service_entry().expect("entry").stats;
    assert_eq!((stats.conns, stats.inbytes, stats.outbps), (3, 1344, 134));
}

/// Where both are sent, STATS64 wins: past 2^32 the 32-bit STATS counters have wrapped.
#[test]
fn stats64_is_preferred() {
    let msg = edited_service(|a| {
        for x in a.iter_mut() {
            if let ServiceAttr::Stats64(s) = x {
                s[1] = crate::ipvs::attr::Stats64Attr::InPkts((1 << 32) + 21);
            }
        }
    });
    assert_eq!(
        msg.to_service_entry().map(|e| e.stats.inpkts).ok(),
        Some((1 << 32) + 21)
    );
}

/// Attributes a newer kernel might add are kept, at every level, and do not disturb the
/// known ones.
#[test]
fn unknown_attributes_are_kept_as_other() {
    let svc = &SERVICE_WITH_STATS[8..]; // the service's attributes
    let extra_stats = [
        nla(1, &3u32.to_ne_bytes()),
        nla(11, &[]),
        nla(77, &[9, 0, 0, 0]),
    ]
    .concat();
    let bytes = [
        &SERVICE_WITH_STATS[..4],
        &nla(
            1,
            &[svc, &nla(42, &[1, 2, 3, 4]), &nla(10, &extra_stats)].concat(),
        ),
        &nla(99, &[7, 7]),
    ]
    .concat();
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
    let Some(ServiceAttr::Stats(last)) = attrs.last() else {
        panic!("the extra STATS is last: {attrs:?}");
    };
    assert_eq!(
        last,
        &[
            StatsAttr::Conns(3),
            StatsAttr::Other(DefaultNla::new(11, vec![])), // IPVS_STATS_ATTR_PAD
            StatsAttr::Other(DefaultNla::new(77, vec![9, 0, 0, 0])),
        ]
    );
    // The service still reads as captured (STATS64 first in line).
    assert_eq!(
        msg.to_service_entry().map(|e| e.stats.inbps).ok(),
        Some(126)
    );
}

/// Bad input is an error naming what is wrong, never a panic.
#[test]
fn malformed_replies_are_errors() {
    use netlink_packet_core::ParseableParametrized;
    use netlink_packet_generic::GenlHeader;

    let reply = |cmd: u8, attrs: &[Vec<u8>]| [vec![cmd, 1, 0, 0], attrs.concat()].concat();
    let parse_err = |bytes: &[u8]| {
        let header = GenlHeader::parse(bytes).expect("genlmsghdr");
        IpvsMessage::parse_with_param(&bytes[4..], header)
            .expect_err("must not parse")
            .to_string()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            reply(1, &[nla(1, &nla(1, &[2, 0, 0]))]),
            "invalid IPVS_SVC_ATTR_AF",
        ),
        (
            reply(1, &[nla(1, &nla(4, &80u32.to_ne_bytes()))]),
            "IPVS_SVC_ATTR_PORT must be 2 bytes, got 4",
        ),
        (
            reply(1, &[nla(1, &nla(6, b"rr"))]),
            "IPVS_SVC_ATTR_SCHED_NAME is not NUL-terminated",
        ),
        (
            reply(1, &[nla(1, &nla(3, &[10, 0, 0]))]),
            "nf_inet_addr must be 4 or 16 bytes, got 3",
        ),
        (
            reply(5, &[nla(2, &nla(13, &[1, 0]))]),
            "invalid IPVS_DEST_ATTR_TUN_TYPE",
        ),
        (
            SERVICE_WITH_STATS[..SERVICE_WITH_STATS.len() - 6].to_vec(),
            "failed to parse IPVS NewService attributes",
        ),
        (vec![200, 1, 0, 0], "unknown IPVS command 200"),
    ];
    for (bytes, want) in cases {
        let err = parse_err(&bytes);
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }

    // Well-formed attributes that do not make a service or a real server.
    let u16_ = |v: u16| v.to_ne_bytes().to_vec();
    let u32_ = |v: u32| v.to_ne_bytes().to_vec();
    let no_flags = reply(1, &[nla(1, &[nla(1, &u16_(2)), nla(5, &u32_(7))].concat())]);
    let odd_family = reply(1, &[nla(1, &[nla(1, &u16_(7)), nla(5, &u32_(7))].concat())]);
    let zero_mark = reply(1, &[nla(1, &[nla(1, &u16_(2)), nla(5, &u32_(0))].concat())]);
    let ah = reply(
        1,
        &[nla(
            1,
            &[
                nla(1, &u16_(2)),
                nla(2, &u16_(51)),
                nla(3, &[0; 16]),
                nla(4, &[0, 0]),
            ]
            .concat(),
        )],
    );
    for (bytes, want) in [
        (no_flags, "missing IPVS_SVC_ATTR_FLAGS"),
        (odd_family, "service: unknown address family 7"),
        (zero_mark, "service: fwmark must be a non-zero number"),
        (ah, "service: unsupported protocol 51"),
    ] {
        assert_eq!(
            parse(&bytes).to_service_entry().map_err(|e| e.to_string()),
            Err(want.to_owned())
        );
    }
    let bypass = reply(
        5,
        &[nla(
            2,
            &[nla(1, &[0; 16]), nla(2, &[0, 80]), nla(3, &u32_(4))].concat(),
        )],
    );
    assert_eq!(
        parse(&bypass)
            .to_destination_entry(Family::Inet)
            .map_err(|e| e.to_string()),
        Err("destination: unknown forwarding method 4".to_owned())
    );
    let short_stats = edited_service(|a| {
        for x in a.iter_mut() {
            if let ServiceAttr::Stats64(s) = x {
                s.retain(|c| !matches!(c, crate::ipvs::attr::Stats64Attr::OutBps(_)));
            }
        }
    });
    assert_eq!(
        short_stats.to_service_entry().map_err(|e| e.to_string()),
        Err("STATS64 lacks IPVS_STATS_ATTR_OUTBPS".to_owned())
    );
    assert_eq!(
        parse(INFO_REPLY)
            .to_service_entry()
            .map_err(|e| e.to_string()),
        Err("missing IPVS_CMD_ATTR_SERVICE".to_owned())
    );
}
