//! Requests: for every captured ipvsadm request, the domain value it reads as, and our
//! encoding of that value, byte for byte.
//!
//! Where ipvsadm sends more than the kernel reads, ours is compared with ipvsadm's minus
//! those attributes, and the test names them: with destination, delete and zero commands
//! libipvs fills in its whole service structure (an empty scheduler name, flags 0 under mask
//! ~0, timeout 0, the default netmask) although the kernel looks only at the service's key;
//! it sends a whole real server to delete one, and an interface and sync id to stop a daemon.

use std::net::IpAddr;

use super::captured::*;
use super::{genl, parse};
use crate::ipvs::attr::{CmdAttr, DaemonAttr, DestAttr, IpvsAttr, IpvsFlags, ServiceAttr};
use crate::ipvs::message::IpvsMessage;
use crate::ipvs::reply::{
    daemon_from_attrs, dest_from_attrs, dest_key_from_attrs, service_from_attrs,
    service_key_from_attrs,
};
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

fn fwm7() -> ServiceKey {
    ServiceKey::fwmark(7, Family::Inet).expect("mark")
}

/// Ours is ipvsadm's, byte for byte, and ipvsadm's parses back to ours.
fn same(ours: &IpvsMessage, theirs: &[u8]) {
    assert_eq!(genl(ours), theirs, "{ours:?}");
    assert_eq!(&parse(theirs), ours);
}

/// Keeps the attributes `keep` accepts in every nest of `msg`; returns the others.
fn strip(
    msg: &mut IpvsMessage,
    svc: fn(&ServiceAttr) -> bool,
    dest: fn(&DestAttr) -> bool,
    daemon: fn(&DaemonAttr) -> bool,
) -> (Vec<ServiceAttr>, Vec<DestAttr>, Vec<DaemonAttr>) {
    let mut dropped = (vec![], vec![], vec![]);
    for attr in &mut msg.attrs {
        match attr {
            IpvsAttr::Cmd(CmdAttr::Service(a)) => {
                dropped.0.extend(a.extract_if(.., |x| !svc(x)));
            }
            IpvsAttr::Cmd(CmdAttr::Dest(a)) => dropped.1.extend(a.extract_if(.., |x| !dest(x))),
            IpvsAttr::Cmd(CmdAttr::Daemon(a)) => dropped.2.extend(a.extract_if(.., |x| !daemon(x))),
            _ => {}
        }
    }
    dropped
}

fn service_key(a: &ServiceAttr) -> bool {
    matches!(
        a,
        ServiceAttr::Af(_)
            | ServiceAttr::Protocol(_)
            | ServiceAttr::Addr(_)
            | ServiceAttr::Port(_)
            | ServiceAttr::Fwmark(_)
    )
}

fn dest_key(a: &DestAttr) -> bool {
    matches!(
        a,
        DestAttr::AddrFamily(_) | DestAttr::Addr(_) | DestAttr::Port(_)
    )
}

fn all<T>(_: &T) -> bool {
    true
}

/// What libipvs adds to the key of a service it only names.
fn ipvsadm_service_filler() -> Vec<ServiceAttr> {
    vec![
        ServiceAttr::SchedName(String::new()),
        ServiceAttr::Flags(IpvsFlags { flags: 0, mask: !0 }),
        ServiceAttr::Timeout(0),
        ServiceAttr::Netmask([0xff; 4]),
    ]
}

#[test]
fn bare_requests() {
    same(&IpvsMessage::get_info(), GET_INFO);
    same(&IpvsMessage::get_services(), GET_SERVICE_DUMP);
    same(&IpvsMessage::zero(None), ZERO_ALL);
    same(&IpvsMessage::flush(), FLUSH);
    same(&IpvsMessage::get_config(), GET_CONFIG);
    same(&IpvsMessage::get_daemons(), GET_DAEMON_DUMP);
}

#[test]
fn new_service() {
    let svc = Service::new(tcp80(), Scheduler::Rr);
    same(&IpvsMessage::new_service(&svc), NEW_SERVICE_TCP_RR);
    let theirs = parse(NEW_SERVICE_TCP_RR);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .and_then(Result::ok),
        Some(svc)
    );
}

#[test]
fn set_service_persistent() {
    let mut svc = Service::new(tcp80(), Scheduler::Wlc);
    svc.flags = ServiceFlags(ServiceFlags::PERSISTENT);
    svc.timeout = 300;
    svc.netmask = 0xffff_ff00;
    same(&IpvsMessage::set_service(&svc), SET_SERVICE_WLC_PERSISTENT);
    let theirs = parse(SET_SERVICE_WLC_PERSISTENT);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .and_then(Result::ok),
        Some(svc)
    );
}

#[test]
fn new_service_ipv6_one_packet_with_pe() {
    let mut svc = Service::new(
        ServiceKey::Endpoint {
            protocol: Protocol::Udp,
            addr: ip("2001:db8::1"),
            port: 53,
        },
        Scheduler::Wlc,
    );
    svc.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::ONEPACKET);
    svc.timeout = 300;
    svc.netmask = 64;
    svc.pe_name = Some("sip".into());
    assert_eq!(svc.validate(), Ok(()));
    same(&IpvsMessage::new_service(&svc), NEW_SERVICE_UDP6_PE);
    let theirs = parse(NEW_SERVICE_UDP6_PE);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .and_then(Result::ok),
        Some(svc)
    );
}

#[test]
fn new_service_fwmark() {
    let mut sh = Service::new(fwm7(), Scheduler::Sh);
    sh.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED2);
    sh.timeout = 60;
    sh.netmask = 0xffff_ff00;
    same(&IpvsMessage::new_service(&sh), NEW_SERVICE_FWMARK_SH);

    let v6 = Service::new(
        ServiceKey::fwmark(8, Family::Inet6).expect("mark"),
        Scheduler::Rr,
    );
    same(&IpvsMessage::new_service(&v6), NEW_SERVICE_FWMARK6);
    let theirs = parse(NEW_SERVICE_FWMARK6);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .and_then(Result::ok),
        Some(v6)
    );
}

#[test]
fn new_and_set_dest() {
    let mut d = Destination::new(ip("10.0.0.2"), 8080);
    d.forward = ForwardMethod::Masquerade;
    d.weight = 2;
    d.upper_threshold = 100;
    d.lower_threshold = 10;
    let mut theirs = parse(NEW_DEST_MASQ);
    assert_eq!(
        theirs
            .dest_attrs()
            .map(|a| dest_from_attrs(a, Family::Inet))
            .and_then(Result::ok),
        Some(d)
    );
    let dropped = strip(&mut theirs, service_key, all, all);
    assert_eq!(dropped.0, ipvsadm_service_filler());
    assert_eq!(genl(&IpvsMessage::new_dest(&tcp80(), &d)), genl(&theirs));

    // `-e -w 5` without -x/-y: the thresholds go back to 0.
    let mut e = d;
    e.weight = 5;
    e.upper_threshold = 0;
    e.lower_threshold = 0;
    let mut theirs = parse(SET_DEST_WEIGHT);
    strip(&mut theirs, service_key, all, all);
    assert_eq!(genl(&IpvsMessage::set_dest(&tcp80(), &e)), genl(&theirs));
}

#[test]
fn new_dest_direct_routing_on_a_fwmark() {
    // A fwmark service has no port; DR servers take the service's, so 0.
    let d = Destination::new(ip("10.0.0.5"), 0).normalized_for(&fwm7());
    let mut theirs = parse(NEW_DEST_FWMARK_DR);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_key_from_attrs)
            .and_then(Result::ok),
        Some(fwm7())
    );
    assert_eq!(
        theirs
            .dest_attrs()
            .map(|a| dest_from_attrs(a, Family::Inet))
            .and_then(Result::ok),
        Some(d)
    );
    assert_eq!(
        strip(&mut theirs, service_key, all, all).0,
        ipvsadm_service_filler()
    );
    assert_eq!(genl(&IpvsMessage::new_dest(&fwm7(), &d)), genl(&theirs));
}

#[test]
fn new_dest_gue_tunnel_of_the_other_family() {
    let mut d = Destination::new(ip("2001:db8::2"), 80);
    d.forward = ForwardMethod::Tunnel;
    d.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        checksum: TunnelChecksum::None,
    };
    assert_eq!(d.validate_for(&tcp80()), Ok(()));
    let mut theirs = parse(NEW_DEST_GUE6);
    assert_eq!(
        theirs
            .dest_attrs()
            .map(|a| dest_from_attrs(a, Family::Inet))
            .and_then(Result::ok),
        Some(d)
    );
    strip(&mut theirs, service_key, all, all);
    assert_eq!(genl(&IpvsMessage::new_dest(&tcp80(), &d)), genl(&theirs));
}

#[test]
fn del_dest() {
    let mut theirs = parse(DEL_DEST);
    assert_eq!(
        theirs
            .dest_attrs()
            .map(|a| dest_key_from_attrs(a, Family::Inet))
            .and_then(Result::ok),
        Some((ip("10.0.0.2"), 8080))
    );
    let (svc, dest, _) = strip(&mut theirs, service_key, dest_key, all);
    assert_eq!(svc, ipvsadm_service_filler());
    // ipvsadm's defaults for a real server: direct routing, weight 1, no tunnel, no limits.
    assert_eq!(
        dest,
        [
            DestAttr::FwdMethod(3),
            DestAttr::Weight(1),
            DestAttr::TunType(0),
            DestAttr::TunPort(0),
            DestAttr::TunFlags(0),
            DestAttr::UThresh(0),
            DestAttr::LThresh(0),
        ]
    );
    assert_eq!(
        genl(&IpvsMessage::del_dest(&tcp80(), ip("10.0.0.2"), 8080)),
        genl(&theirs)
    );
}

#[test]
fn service_key_only_commands() {
    let cases: [(IpvsMessage, &[u8]); 2] = [
        (IpvsMessage::del_service(&tcp80()), DEL_SERVICE),
        (IpvsMessage::zero(Some(&tcp80())), ZERO_SERVICE),
    ];
    for (ours, theirs) in cases {
        let mut theirs = parse(theirs);
        assert_eq!(
            theirs
                .service_attrs()
                .map(service_key_from_attrs)
                .and_then(Result::ok),
            Some(tcp80())
        );
        assert_eq!(
            strip(&mut theirs, service_key, all, all).0,
            ipvsadm_service_filler()
        );
        assert_eq!(genl(&ours), genl(&theirs));
    }
    // The destination dumps carry the key alone in ipvsadm's requests too.
    same(&IpvsMessage::get_dests(&tcp80()), GET_DEST_DUMP);
    same(&IpvsMessage::get_dests(&fwm7()), GET_DEST_DUMP_FWMARK);
}

#[test]
fn set_config() {
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    same(&IpvsMessage::set_config(&t), SET_CONFIG);
    assert_eq!(parse(SET_CONFIG).to_timeouts(), t);
}

#[test]
fn daemons() {
    let master = Daemon {
        state: DaemonState::Master,
        mcast_ifn: "lo".into(),
        sync_id: 5,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    same(&IpvsMessage::new_daemon(&master), NEW_DAEMON);
    assert_eq!(
        parse(NEW_DAEMON)
            .daemon_attrs()
            .map(daemon_from_attrs)
            .and_then(Result::ok),
        Some(master)
    );
    let mut theirs = parse(DEL_DAEMON);
    let dropped = strip(&mut theirs, all, all, |a| matches!(a, DaemonAttr::State(_))).2;
    assert_eq!(
        dropped,
        [DaemonAttr::McastIfn(String::new()), DaemonAttr::SyncId(0)]
    );
    assert_eq!(
        genl(&IpvsMessage::del_daemon(DaemonState::Master)),
        genl(&theirs)
    );
}

/// The optional sync settings, in ipvsadm's order (not in the captures: ipvsadm was run
/// without them).
#[test]
fn daemon_with_every_setting() {
    let d = Daemon {
        state: DaemonState::Backup,
        mcast_ifn: "eth0".into(),
        sync_id: 5,
        sync_maxlen: Some(1400),
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: Some(8848),
        mcast_ttl: Some(2),
    };
    let want: &[u8] = &[
        0x09, 0x01, 0x00, 0x00, // IPVS_CMD_NEW_DAEMON, version 1
        0x40, 0x00, 0x03, 0x80, // len 64, DAEMON | NLA_F_NESTED
        0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   STATE: BACKUP
        0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'0', //   MCAST_IFN "eth0\0"
        0x00, 0x00, 0x00, 0x00, //     (+3 pad)
        0x08, 0x00, 0x03, 0x00, 0x05, 0x00, 0x00, 0x00, //   SYNC_ID 5
        0x06, 0x00, 0x04, 0x00, 0x78, 0x05, 0x00, 0x00, //   SYNC_MAXLEN 1400
        0x06, 0x00, 0x07, 0x00, 0x90, 0x22, 0x00, 0x00, //   MCAST_PORT 8848, host order
        0x05, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, //   MCAST_TTL 2
        0x08, 0x00, 0x05, 0x00, 0xe0, 0x00, 0x00, 0x51, //   MCAST_GROUP 224.0.0.81
    ];
    same(&IpvsMessage::new_daemon(&d), want);
    assert_eq!(parse(want).to_daemon().ok(), Some(d));
}
