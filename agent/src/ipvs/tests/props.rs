//! Properties of the message layer. Replies come from the kernel of whatever version the node
//! runs, so no byte sequence may panic the parser; and what the agent emits must read back as
//! itself, or a request would not say what the domain value meant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DefaultNla, ParseableParametrized};
use netlink_packet_generic::GenlHeader;
use proptest::prelude::*;
use proptest::sample::select;

use super::captured::*;
use super::genl;
use crate::ipvs::attr::{
    CmdAttr, DaemonAttr, DestAttr, InfoAttr, IpvsAttr, ServiceAttr, stats_attrs, stats64_attrs,
};
use crate::ipvs::cmd::Cmd;
use crate::ipvs::handle::{Msg, read};
use crate::ipvs::message::IpvsMessage;
use crate::ipvs::reply::{dest_from_attrs, service_from_attrs, service_key_from_attrs};
use crate::ipvs::request::{daemon_attrs, dest_attrs, service_attrs};
use crate::ipvs::types::*;

/// Every genl payload of the captures (the refusals are whole netlink messages).
const PAYLOADS: [&[u8]; 33] = [
    GET_INFO,
    NEW_SERVICE_TCP_RR,
    SET_SERVICE_WLC_PERSISTENT,
    NEW_DEST_MASQ,
    SET_DEST_WEIGHT,
    GET_SERVICE_DUMP,
    GET_DEST_DUMP,
    DEL_DEST,
    ZERO_SERVICE,
    ZERO_ALL,
    DEL_SERVICE,
    FLUSH,
    NEW_SERVICE_UDP6_PE,
    NEW_SERVICE_FWMARK_SH,
    NEW_SERVICE_FWMARK6,
    NEW_DEST_FWMARK_DR,
    GET_DEST_DUMP_FWMARK,
    NEW_DEST_GUE6,
    SET_CONFIG,
    GET_CONFIG,
    NEW_DAEMON,
    GET_DAEMON_DUMP,
    DEL_DAEMON,
    INFO_REPLY,
    SERVICE_WLC_PERSISTENT,
    DEST_MASQ,
    SERVICE_UDP6_PE,
    SERVICE_FWMARK_SH,
    SERVICE_FWMARK6,
    DEST_FWMARK_DR,
    DEST_GUE6,
    CONFIG_REPLY,
    SERVICE_WITH_STATS,
];

/// The captured requests: ipvsadm's bytes, which ours must equal.
const REQUESTS: usize = 23;

/// Captures not in [`PAYLOADS`] for want of room in one array.
const MORE_PAYLOADS: [&[u8]; 2] = [DEST_WITH_STATS, DAEMON_REPLY];

fn captures() -> impl Iterator<Item = &'static [u8]> {
    PAYLOADS.into_iter().chain(MORE_PAYLOADS)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `genlmsghdr` + attributes into a message, without the test helper's `expect`s.
fn try_parse(bytes: &[u8]) -> Option<Result<IpvsMessage, String>> {
    let (&cmd, rest) = bytes.split_first()?;
    let (&version, rest) = rest.split_first()?;
    let attrs = rest.get(2..)?;
    Some(
        IpvsMessage::parse_with_param(attrs, GenlHeader { cmd, version })
            .map_err(|e| e.to_string()),
    )
}

/// Every reader the handle applies to a reply; their answers do not matter, only that they
/// give one.
fn read_all(msg: &IpvsMessage) {
    let _ = msg.to_service_entry();
    let _ = msg.to_destination_entry(Family::Inet);
    let _ = msg.to_destination_entry(Family::Inet6);
    let _ = msg.to_info();
    let _ = msg.to_timeouts();
    let _ = msg.to_daemon();
}

/// A message that parsed must survive emit → parse → emit unchanged: the parser keeps
/// everything it accepted (unknown attributes included), and emitting what it kept never
/// fails. (Bytes, not messages, are compared: netlink-packet-core re-emits an unknown
/// attribute flagged both nested and network-order with the nested flag alone.)
fn reparses(msg: &IpvsMessage) -> Result<(), TestCaseError> {
    read_all(msg);
    let bytes = genl(msg);
    let again = try_parse(&bytes)
        .expect("a header")
        .map_err(|e| TestCaseError::fail(format!("{e}: {bytes:?}")))?;
    read_all(&again);
    prop_assert_eq!(genl(&again), bytes);
    Ok(())
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn arb_family() -> impl Strategy<Value = Family> {
    select(vec![Family::Inet, Family::Inet6])
}

fn arb_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (
            select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp]),
            arb_ip(),
            any::<u16>()
        )
            .prop_map(|(protocol, addr, port)| ServiceKey::Endpoint {
                protocol,
                addr,
                port
            }),
        (1..=u32::MAX, arb_family()).prop_map(|(mark, family)| ServiceKey::FwMark { mark, family }),
    ]
}

/// Known schedulers and names the kernel may report that this build does not know.
fn arb_scheduler() -> impl Strategy<Value = Scheduler> {
    prop_oneof![
        select(Scheduler::KNOWN.to_vec()),
        "[a-z0-9_]{1,15}".prop_map(|s| Scheduler::from_kernel(&s)),
    ]
}

fn arb_service() -> impl Strategy<Value = Service> {
    (
        arb_key(),
        arb_scheduler(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of("[a-z0-9_]{1,15}"),
    )
        .prop_map(
            |(key, scheduler, flags, timeout, netmask, pe_name)| Service {
                key,
                scheduler,
                flags: ServiceFlags(flags & !ServiceFlags::HASHED),
                timeout,
                netmask,
                pe_name,
            },
        )
}

fn arb_dest() -> impl Strategy<Value = Destination> {
    let forward = select(vec![
        ForwardMethod::Masquerade,
        ForwardMethod::Local,
        ForwardMethod::Tunnel,
        ForwardMethod::DirectRoute,
    ]);
    let tunnel = (
        select(vec![TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre]),
        any::<u16>(),
        select(vec![
            TunnelChecksum::None,
            TunnelChecksum::Csum,
            TunnelChecksum::RemCsum,
        ]),
    )
        .prop_map(|(kind, port, checksum)| Tunnel {
            kind,
            port,
            checksum,
        });
    (arb_ip(), any::<u16>(), forward, any::<[u32; 3]>(), tunnel).prop_map(
        |(addr, port, forward, [weight, upper, lower], tunnel)| Destination {
            addr,
            port,
            forward,
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
            // The kernel reports zeros for servers that do not tunnel.
            tunnel: if forward == ForwardMethod::Tunnel {
                tunnel
            } else {
                Tunnel::default()
            },
        },
    )
}

fn arb_stats() -> impl Strategy<Value = Stats> {
    any::<[u64; 10]>().prop_map(|v| Stats {
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
    })
}

fn arb_daemon() -> impl Strategy<Value = Daemon> {
    (
        select(vec![DaemonState::Master, DaemonState::Backup]),
        "[a-z0-9.]{0,15}",
        any::<u32>(),
        any::<Option<u16>>(),
        proptest::option::of(arb_ip()),
        any::<Option<u16>>(),
        any::<Option<u8>>(),
    )
        .prop_map(
            |(state, mcast_ifn, sync_id, sync_maxlen, mcast_group, mcast_port, mcast_ttl)| Daemon {
                state,
                mcast_ifn,
                sync_id,
                sync_maxlen,
                mcast_group,
                mcast_port,
                mcast_ttl,
            },
        )
}

/// An attribute a newer kernel might add: kept as it came.
fn arb_unknown() -> impl Strategy<Value = DefaultNla> {
    (
        100u16..0x4000,
        proptest::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(kind, value)| DefaultNla::new(kind, value))
}

/// A service dump entry as the kernel sends it: the configuration, both counter layouts and
/// maybe an attribute this build does not know.
fn service_reply(svc: &Service, stats: &Stats, extra: Option<DefaultNla>) -> IpvsMessage {
    let mut attrs = service_attrs(svc);
    attrs.push(ServiceAttr::Stats(stats_attrs(stats)));
    attrs.push(ServiceAttr::Stats64(stats64_attrs(stats)));
    attrs.extend(extra.map(ServiceAttr::Other));
    IpvsMessage::new(Cmd::NewService, vec![CmdAttr::Service(attrs)])
}

fn dest_reply(entry: &DestinationEntry, extra: Option<DefaultNla>) -> IpvsMessage {
    let mut attrs = dest_attrs(&entry.dest);
    attrs.extend([
        DestAttr::ActiveConns(entry.active_conns),
        DestAttr::InactConns(entry.inactive_conns),
        DestAttr::PersistConns(entry.persistent_conns),
        DestAttr::Stats(stats_attrs(&entry.stats)),
        DestAttr::Stats64(stats64_attrs(&entry.stats)),
    ]);
    attrs.extend(extra.map(DestAttr::Other));
    IpvsMessage::new(Cmd::NewDest, vec![CmdAttr::Dest(attrs)])
}

/// Emit → parse → emit: the same message, the same bytes.
fn round_trip(msg: &IpvsMessage) -> Result<IpvsMessage, TestCaseError> {
    let bytes = genl(msg);
    let parsed = try_parse(&bytes)
        .expect("a header")
        .map_err(TestCaseError::fail)?;
    prop_assert_eq!(&parsed, msg);
    prop_assert_eq!(genl(&parsed), bytes);
    Ok(parsed)
}

/// Flips, cuts and lengthens a capture; `lengths` overwrite `nla_len` fields.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Extend(Vec<u8>),
    Length(usize, u16),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..32).prop_map(Mutation::Extend),
        (any::<usize>(), any::<u16>()).prop_map(|(i, n)| Mutation::Length(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, x) => {
            let i = i % bytes.len();
            bytes[i] ^= x;
        }
        Mutation::Truncate(n) => bytes.truncate(n % bytes.len()),
        Mutation::Extend(tail) => bytes.extend(tail),
        // Attribute headers start 4-aligned after the 4-byte genlmsghdr.
        Mutation::Length(i, n) => {
            let at = (i % bytes.len()) & !3;
            if at + 2 <= bytes.len() {
                bytes[at..at + 2].copy_from_slice(&n.to_ne_bytes());
            }
        }
    }
}

/// Every capture parses, re-emits to a message that parses the same, and the requests
/// re-emit to ipvsadm's bytes exactly: the fixed cases of the round-trip properties.
#[test]
fn captures_round_trip() {
    for (i, bytes) in captures().enumerate() {
        let msg = try_parse(bytes)
            .expect("a header")
            .unwrap_or_else(|e| panic!("capture {i}: {e}"));
        reparses(&msg).unwrap_or_else(|e| panic!("capture {i}: {e}"));
        if i < REQUESTS {
            assert_eq!(genl(&msg), bytes, "capture {i}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary payloads under any command: a message or an error; what parsed re-emits.
    #[test]
    fn any_payload_parses_or_is_refused(
        cmd in any::<u8>(),
        attrs in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![cmd, 1, 0, 0];
        bytes.extend(attrs);
        if let Some(Ok(msg)) = try_parse(&bytes) {
            reparses(&msg)?;
        }
    }

    /// Arbitrary attribute streams built from plausible headers (lengths and types near the
    /// real ones), which random bytes rarely produce, nested up to three levels.
    #[test]
    fn plausible_attributes_parse_or_are_refused(
        cmd in 1u8..=17,
        nlas in proptest::collection::vec(
            (0u16..24, 0u16..20, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..12,
        ),
    ) {
        let mut bytes = vec![cmd, 1, 0, 0];
        // Each entry opens an attribute whose value holds the entries after it when `nest`.
        fn build(nlas: &[(u16, u16, bool, Vec<u8>)]) -> Vec<u8> {
            let Some(((kind, len_delta, nest, value), rest)) = nlas.split_first() else {
                return vec![];
            };
            let value = if *nest { build(rest) } else { value.clone() };
            let mut out = Vec::new();
            let len = (4 + value.len()) as u16;
            let len = len.wrapping_add(*len_delta).wrapping_sub(10);
            out.extend(len.to_ne_bytes());
            out.extend(((kind % 16) | if *nest { 0x8000 } else { 0 }).to_ne_bytes());
            out.extend(&value);
            out.resize(out.len().next_multiple_of(4), 0);
            if !*nest {
                out.extend(build(rest));
            }
            out
        }
        bytes.extend(build(&nlas));
        if let Some(Ok(msg)) = try_parse(&bytes) {
            reparses(&msg)?;
        }
    }

    /// The captures, damaged: never a panic, and what still parses re-emits.
    #[test]
    fn damaged_captures_parse_or_are_refused(
        which in 0..PAYLOADS.len() + MORE_PAYLOADS.len(),
        mutations in proptest::collection::vec(arb_mutation(), 1..6),
    ) {
        let mut bytes = captures().nth(which).expect("a capture").to_vec();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        if let Some(Ok(msg)) = try_parse(&bytes) {
            reparses(&msg)?;
        }
    }

    /// Whole netlink messages, as the handle receives them: any bytes that deserialize are
    /// read into a message or an error for the request.
    #[test]
    fn any_netlink_reply_is_read_or_refused(
        cmd in 1u8..=17,
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        header in any::<[u8; 16]>(),
        errno in any::<i32>(),
    ) {
        let cmd = Cmd::try_from(cmd).expect("a command");
        // A well-formed header in front of random payloads; then the bytes alone.
        let mut whole = header.to_vec();
        let len = (16 + bytes.len()) as u32;
        whole[..4].copy_from_slice(&len.to_ne_bytes());
        whole.extend(&bytes);
        let mut error = whole.clone();
        error[4..6].copy_from_slice(&2u16.to_ne_bytes());
        if error.len() >= 20 {
            error[16..20].copy_from_slice(&errno.to_ne_bytes());
        }
        for candidate in [&bytes, &whole, &error] {
            if let Ok(msg) = Msg::deserialize(candidate)
                && let Ok(Some(parsed)) = read(cmd, msg)
            {
                reparses(&parsed)?;
            }
        }
    }

    /// Services: domain → reply → bytes → reply → domain, with any attribute a newer kernel
    /// adds left alone; and the requests for them.
    #[test]
    fn services_round_trip(
        svc in arb_service(),
        stats in arb_stats(),
        extra in proptest::option::of(arb_unknown()),
    ) {
        let parsed = round_trip(&service_reply(&svc, &stats, extra))?;
        prop_assert_eq!(
            parsed.to_service_entry().ok(),
            Some(ServiceEntry { service: svc.clone(), stats })
        );
        for request in [IpvsMessage::new_service(&svc), IpvsMessage::set_service(&svc)] {
            let parsed = round_trip(&request)?;
            prop_assert_eq!(
                parsed.service_attrs().and_then(|a| service_from_attrs(a).ok()),
                Some(svc.clone())
            );
        }
        round_trip(&IpvsMessage::del_service(&svc.key))?;
        round_trip(&IpvsMessage::get_dests(&svc.key))?;
        round_trip(&IpvsMessage::zero(Some(&svc.key)))?;
    }

    /// Real servers, of either family under a service of either family.
    #[test]
    fn destinations_round_trip(
        key in arb_key(),
        dest in arb_dest(),
        conns in any::<[u32; 3]>(),
        stats in arb_stats(),
        extra in proptest::option::of(arb_unknown()),
    ) {
        let entry = DestinationEntry {
            dest,
            active_conns: conns[0],
            inactive_conns: conns[1],
            persistent_conns: conns[2],
            stats,
        };
        let parsed = round_trip(&dest_reply(&entry, extra))?;
        prop_assert_eq!(parsed.to_destination_entry(key.family()).ok(), Some(entry));
        for request in [IpvsMessage::new_dest(&key, &dest), IpvsMessage::set_dest(&key, &dest)] {
            let parsed = round_trip(&request)?;
            prop_assert_eq!(
                parsed.dest_attrs().and_then(|a| dest_from_attrs(a, key.family()).ok()),
                Some(dest)
            );
            prop_assert_eq!(
                parsed.service_attrs().and_then(|a| service_key_from_attrs(a).ok()),
                Some(key)
            );
        }
        round_trip(&IpvsMessage::del_dest(&key, dest.addr, dest.port))?;
    }

    /// Info, timeouts and daemons.
    #[test]
    fn info_config_and_daemons_round_trip(
        info in any::<[u32; 2]>(),
        timeouts in any::<[u32; 3]>(),
        daemon in arb_daemon(),
    ) {
        let msg = IpvsMessage {
            cmd: Cmd::SetInfo,
            attrs: vec![
                IpvsAttr::Info(InfoAttr::Version(info[0])),
                IpvsAttr::Info(InfoAttr::ConnTabSize(info[1])),
            ],
        };
        prop_assert_eq!(
            round_trip(&msg)?.to_info().ok(),
            Some(Info { version: info[0], conn_tab_size: info[1] })
        );
        let t = Timeouts { tcp: timeouts[0], tcp_fin: timeouts[1], udp: timeouts[2] };
        prop_assert_eq!(round_trip(&IpvsMessage::set_config(&t))?.to_timeouts(), t);
        let reply = IpvsMessage::new(Cmd::NewDaemon, vec![CmdAttr::Daemon(daemon_attrs(&daemon))]);
        prop_assert_eq!(round_trip(&reply)?.to_daemon().ok(), Some(daemon.clone()));
        round_trip(&IpvsMessage::new_daemon(&daemon))?;
        round_trip(&IpvsMessage::del_daemon(daemon.state))?;
        prop_assert!(matches!(
            round_trip(&reply)?.daemon_attrs(),
            Some([DaemonAttr::State(_), ..])
        ));
    }
}
