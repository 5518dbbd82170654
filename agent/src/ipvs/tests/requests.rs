//! Requests: our encoder against the bytes ipvsadm (libipvs 1.31 over libnl 3) produces,
//! and ipvsadm's bytes read back into domain values.
//!
//! Hand-built from `include/uapi/linux/ip_vs.h` and libipvs's `ipvs_nl_fill_*_attr`; to be
//! checked against captures of the real ipvsadm (`cargo xtask lab capture -- <command>`).

use std::net::IpAddr;

use super::{genl, parse};
use crate::ipvs::message::IpvsMessage;
use crate::ipvs::reply::{
    dest_from_attrs, dest_key_from_attrs, service_from_attrs, service_key_from_attrs,
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

/// `ipvsadm -A -t 192.168.100.1:80 -s rr`
const NEW_SERVICE_TCP_RR: &[u8] = &[
    0x01, 0x01, 0x00, 0x00, // IPVS_CMD_NEW_SERVICE, version 1, reserved
    0x54, 0x00, 0x01, 0x80, // len 84, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET (+2 pad)
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL: 6 tcp (+2 pad)
    0x14, 0x00, 0x03, 0x00, //   ADDR, 16 bytes:
    0xc0, 0xa8, 0x64, 0x01, //     192.168.100.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT: 80 big-endian (+2 pad)
    0x07, 0x00, 0x06, 0x00, b'r', b'r', 0x00, 0x00, //   SCHED_NAME "rr\0" (+1 pad)
    0x0c, 0x00, 0x07, 0x00, //   FLAGS:
    0x00, 0x00, 0x00, 0x00, //     flags 0
    0xff, 0xff, 0xff, 0xff, //     mask ~0
    0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, //   TIMEOUT 0
    0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, //   NETMASK 255.255.255.255
];

#[test]
fn new_service() {
    let svc = Service::new(tcp80(), Scheduler::Rr);
    assert_eq!(genl(&IpvsMessage::new_service(&svc)), NEW_SERVICE_TCP_RR);
    let theirs = parse(NEW_SERVICE_TCP_RR);
    assert_eq!(theirs, IpvsMessage::new_service(&svc));
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .transpose()
            .ok()
            .flatten(),
        Some(svc)
    );
}

/// `ipvsadm -E -u [2001:db8::1]:53 -s wlc -p 300 -M 64 -o --pe sip`
const SET_SERVICE_UDP6_PERSISTENT: &[u8] = &[
    0x02, 0x01, 0x00, 0x00, // IPVS_CMD_SET_SERVICE, version 1
    0x5c, 0x00, 0x01, 0x80, // len 92, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x00, //   AF: AF_INET6
    0x06, 0x00, 0x02, 0x00, 0x11, 0x00, 0x00, 0x00, //   PROTOCOL: 17 udp
    0x14, 0x00, 0x03, 0x00, //   ADDR 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, //
    0x06, 0x00, 0x04, 0x00, 0x00, 0x35, 0x00, 0x00, //   PORT 53
    0x08, 0x00, 0x06, 0x00, b'w', b'l', b'c', 0x00, //   SCHED_NAME "wlc\0"
    0x08, 0x00, 0x0b, 0x00, b's', b'i', b'p', 0x00, //   PE_NAME "sip\0"
    0x0c, 0x00, 0x07, 0x00, //   FLAGS:
    0x05, 0x00, 0x00, 0x00, //     PERSISTENT | ONEPACKET
    0xff, 0xff, 0xff, 0xff, //     mask ~0
    0x08, 0x00, 0x08, 0x00, 0x2c, 0x01, 0x00, 0x00, //   TIMEOUT 300
    0x08, 0x00, 0x09, 0x00, 0x40, 0x00, 0x00, 0x00, //   NETMASK: prefix length 64, host order
];

#[test]
fn set_service_ipv6_persistent_with_pe() {
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
    assert_eq!(
        genl(&IpvsMessage::set_service(&svc)),
        SET_SERVICE_UDP6_PERSISTENT
    );
    let theirs = parse(SET_SERVICE_UDP6_PERSISTENT);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .transpose()
            .ok()
            .flatten(),
        Some(svc)
    );
}

/// `ipvsadm -A -f 7 -s sh -b sh-port -p 60 -M 255.255.255.0`
const NEW_SERVICE_FWMARK_SH: &[u8] = &[
    0x01, 0x01, 0x00, 0x00, // IPVS_CMD_NEW_SERVICE, version 1
    0x38, 0x00, 0x01, 0x80, // len 56, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET
    0x08, 0x00, 0x05, 0x00, 0x07, 0x00, 0x00, 0x00, //   FWMARK 7
    0x07, 0x00, 0x06, 0x00, b's', b'h', 0x00, 0x00, //   SCHED_NAME "sh\0"
    0x0c, 0x00, 0x07, 0x00, //   FLAGS:
    0x11, 0x00, 0x00, 0x00, //     PERSISTENT | SCHED2 (sh-port)
    0xff, 0xff, 0xff, 0xff, //     mask ~0
    0x08, 0x00, 0x08, 0x00, 0x3c, 0x00, 0x00, 0x00, //   TIMEOUT 60
    0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0x00, //   NETMASK 255.255.255.0, network order
];

#[test]
fn new_service_fwmark() {
    let key = ServiceKey::fwmark(7, Family::Inet).expect("mark");
    let mut svc = Service::new(key, Scheduler::Sh);
    svc.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED2);
    svc.timeout = 60;
    svc.netmask = 0xffff_ff00;
    assert_eq!(genl(&IpvsMessage::new_service(&svc)), NEW_SERVICE_FWMARK_SH);
    let theirs = parse(NEW_SERVICE_FWMARK_SH);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_from_attrs)
            .transpose()
            .ok()
            .flatten(),
        Some(svc)
    );
}

/// `ipvsadm -D -t 192.168.100.1:80`: we send the key only (all the kernel reads); ipvsadm
/// adds the rest of its service structure, which the kernel ignores.
const DEL_SERVICE_KEY: &[u8] = &[
    0x03, 0x01, 0x00, 0x00, // IPVS_CMD_DEL_SERVICE, version 1
    0x30, 0x00, 0x01, 0x80, // len 48, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL: tcp
    0x14, 0x00, 0x03, 0x00, 0xc0, 0xa8, 0x64, 0x01, //   ADDR 192.168.100.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
];

#[test]
fn del_service_and_get_dests_carry_the_key() {
    assert_eq!(genl(&IpvsMessage::del_service(&tcp80())), DEL_SERVICE_KEY);
    let mut get_dests = DEL_SERVICE_KEY.to_vec();
    get_dests[0] = 8; // IPVS_CMD_GET_DEST
    assert_eq!(genl(&IpvsMessage::get_dests(&tcp80())), get_dests);
    let mut get_service = DEL_SERVICE_KEY.to_vec();
    get_service[0] = 4; // IPVS_CMD_GET_SERVICE
    assert_eq!(genl(&IpvsMessage::get_service(&tcp80())), get_service);
    let theirs = parse(DEL_SERVICE_KEY);
    assert_eq!(
        theirs
            .service_attrs()
            .map(service_key_from_attrs)
            .transpose()
            .ok()
            .flatten(),
        Some(tcp80())
    );
}

/// `ipvsadm -a -t 192.168.100.1:80 -r 10.0.0.2:8080 -m -w 2 -x 100 -y 10`
const NEW_DEST_MASQ: &[u8] = &[
    0x05, 0x01, 0x00, 0x00, // IPVS_CMD_NEW_DEST, version 1
    0x30, 0x00, 0x01, 0x80, // IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, len 48: the key
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL: tcp
    0x14, 0x00, 0x03, 0x00, 0xc0, 0xa8, 0x64, 0x01, //   ADDR 192.168.100.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
    0x48, 0x00, 0x02, 0x80, // len 72, IPVS_CMD_ATTR_DEST | NLA_F_NESTED
    0x06, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, //   ADDR_FAMILY: AF_INET
    0x14, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x02, //   ADDR 10.0.0.2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x02, 0x00, 0x1f, 0x90, 0x00, 0x00, //   PORT 8080 big-endian
    0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, //   FWD_METHOD: MASQ
    0x08, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, //   WEIGHT 2
    0x08, 0x00, 0x05, 0x00, 0x64, 0x00, 0x00, 0x00, //   U_THRESH 100
    0x08, 0x00, 0x06, 0x00, 0x0a, 0x00, 0x00, 0x00, //   L_THRESH 10
];

#[test]
fn new_dest_masquerade() {
    let mut d = Destination::new(ip("10.0.0.2"), 8080);
    d.forward = ForwardMethod::Masquerade;
    d.weight = 2;
    d.upper_threshold = 100;
    d.lower_threshold = 10;
    assert_eq!(genl(&IpvsMessage::new_dest(&tcp80(), &d)), NEW_DEST_MASQ);
    let theirs = parse(NEW_DEST_MASQ);
    let attrs = theirs.dest_attrs().expect("dest attrs");
    assert_eq!(dest_from_attrs(attrs, Family::Inet).ok(), Some(d));
    // SET_DEST is the same message under another command.
    let mut set = NEW_DEST_MASQ.to_vec();
    set[0] = 6;
    assert_eq!(genl(&IpvsMessage::set_dest(&tcp80(), &d)), set);
}

/// `ipvsadm -a -t 192.168.100.1:80 -r [2001:db8::2] -i --tun-type gue --tun-port 6080
/// --tun-nocsum`: an IPv6 tunnel real server behind an IPv4 service (only tunnel mode may
/// mix families); DR and tunnel servers take the service's port.
const NEW_DEST_GUE6: &[u8] = &[
    0x05, 0x01, 0x00, 0x00, // IPVS_CMD_NEW_DEST, version 1
    0x30, 0x00, 0x01, 0x80, // IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, len 48
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL: tcp
    0x14, 0x00, 0x03, 0x00, 0xc0, 0xa8, 0x64, 0x01, //   ADDR 192.168.100.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
    0x60, 0x00, 0x02, 0x80, // len 96, IPVS_CMD_ATTR_DEST | NLA_F_NESTED
    0x06, 0x00, 0x0b, 0x00, 0x0a, 0x00, 0x00, 0x00, //   ADDR_FAMILY: AF_INET6
    0x14, 0x00, 0x01, 0x00, //   ADDR 2001:db8::2
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, //
    0x06, 0x00, 0x02, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80 (the service's)
    0x08, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, //   FWD_METHOD: TUNNEL
    0x08, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, //   WEIGHT 1
    0x05, 0x00, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x00, //   TUN_TYPE: GUE (+3 pad)
    0x06, 0x00, 0x0e, 0x00, 0x17, 0xc0, 0x00, 0x00, //   TUN_PORT 6080 big-endian
    0x06, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, //   TUN_FLAGS: NOCSUM
    0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, //   U_THRESH 0
    0x08, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, //   L_THRESH 0
];

#[test]
fn new_dest_gue_tunnel_ipv6() {
    let mut d = Destination::new(ip("2001:db8::2"), 0);
    d.forward = ForwardMethod::Tunnel;
    d.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        checksum: TunnelChecksum::None,
    };
    let d = d.normalized_for(&tcp80());
    assert_eq!(d.validate_for(&tcp80()), Ok(()));
    assert_eq!(genl(&IpvsMessage::new_dest(&tcp80(), &d)), NEW_DEST_GUE6);
    let theirs = parse(NEW_DEST_GUE6);
    let attrs = theirs.dest_attrs().expect("dest attrs");
    assert_eq!(dest_from_attrs(attrs, Family::Inet).ok(), Some(d));
}

/// `ipvsadm -d -t 192.168.100.1:80 -r 10.0.0.2:8080`: the destination's key with its family.
const DEL_DEST: &[u8] = &[
    0x07, 0x01, 0x00, 0x00, // IPVS_CMD_DEL_DEST, version 1
    0x30, 0x00, 0x01, 0x80, // IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, len 48
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL: tcp
    0x14, 0x00, 0x03, 0x00, 0xc0, 0xa8, 0x64, 0x01, //   ADDR 192.168.100.1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
    0x28, 0x00, 0x02, 0x80, // len 40, IPVS_CMD_ATTR_DEST | NLA_F_NESTED
    0x06, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, //   ADDR_FAMILY: AF_INET
    0x14, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x02, //   ADDR 10.0.0.2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x06, 0x00, 0x02, 0x00, 0x1f, 0x90, 0x00, 0x00, //   PORT 8080
];

#[test]
fn del_dest() {
    let msg = IpvsMessage::del_dest(&tcp80(), ip("10.0.0.2"), 8080);
    assert_eq!(genl(&msg), DEL_DEST);
    let theirs = parse(DEL_DEST);
    let attrs = theirs.dest_attrs().expect("dest attrs");
    assert_eq!(
        dest_key_from_attrs(attrs, Family::Inet).ok(),
        Some((ip("10.0.0.2"), 8080))
    );
}

/// `ipvsadm --set 900 120 300`
const SET_CONFIG: &[u8] = &[
    0x0c, 0x01, 0x00, 0x00, // IPVS_CMD_SET_CONFIG, version 1
    0x08, 0x00, 0x04, 0x00, 0x84, 0x03, 0x00, 0x00, // TIMEOUT_TCP 900
    0x08, 0x00, 0x05, 0x00, 0x78, 0x00, 0x00, 0x00, // TIMEOUT_TCP_FIN 120
    0x08, 0x00, 0x06, 0x00, 0x2c, 0x01, 0x00, 0x00, // TIMEOUT_UDP 300
];

#[test]
fn set_config() {
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(genl(&IpvsMessage::set_config(&t)), SET_CONFIG);
    assert_eq!(parse(SET_CONFIG).to_timeouts(), t);
}

/// Commands without attributes: `ipvsadm -ln` (GET_INFO, then a GET_SERVICE dump),
/// `ipvsadm -L --timeout` (GET_CONFIG), `ipvsadm -L --daemon` (GET_DAEMON dump),
/// `ipvsadm -Z` (ZERO), `ipvsadm -C` (FLUSH).
#[test]
fn bare_commands() {
    let cases: [(IpvsMessage, u8); 6] = [
        (IpvsMessage::get_info(), 15),
        (IpvsMessage::get_services(), 4),
        (IpvsMessage::get_config(), 13),
        (IpvsMessage::get_daemons(), 11),
        (IpvsMessage::zero(None), 16),
        (IpvsMessage::flush(), 17),
    ];
    for (msg, cmd) in cases {
        assert_eq!(genl(&msg), vec![cmd, 0x01, 0x00, 0x00], "{msg:?}");
    }
}

/// `ipvsadm -Z -f 7`
const ZERO_FWMARK: &[u8] = &[
    0x10, 0x01, 0x00, 0x00, // IPVS_CMD_ZERO, version 1
    0x14, 0x00, 0x01, 0x80, // len 20, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF: AF_INET
    0x08, 0x00, 0x05, 0x00, 0x07, 0x00, 0x00, 0x00, //   FWMARK 7
];

#[test]
fn zero_one_service() {
    let key = ServiceKey::fwmark(7, Family::Inet).expect("mark");
    assert_eq!(genl(&IpvsMessage::zero(Some(&key))), ZERO_FWMARK);
}

/// `ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 5 --sync-maxlen 1400
/// --mcast-group 224.0.0.81 --mcast-port 8848 --mcast-ttl 2`
const NEW_DAEMON: &[u8] = &[
    0x09, 0x01, 0x00, 0x00, // IPVS_CMD_NEW_DAEMON, version 1
    0x40, 0x00, 0x03, 0x80, // len 64, IPVS_CMD_ATTR_DAEMON | NLA_F_NESTED
    0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   STATE: BACKUP
    0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'0', 0x00, 0x00, 0x00, 0x00, //   MCAST_IFN
    0x08, 0x00, 0x03, 0x00, 0x05, 0x00, 0x00, 0x00, //   SYNC_ID 5
    0x06, 0x00, 0x04, 0x00, 0x78, 0x05, 0x00, 0x00, //   SYNC_MAXLEN 1400
    0x06, 0x00, 0x07, 0x00, 0x90, 0x22, 0x00, 0x00, //   MCAST_PORT 8848, host order
    0x05, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, //   MCAST_TTL 2
    0x08, 0x00, 0x05, 0x00, 0xe0, 0x00, 0x00, 0x51, //   MCAST_GROUP 224.0.0.81
];

#[test]
fn new_daemon() {
    let d = Daemon {
        state: DaemonState::Backup,
        mcast_ifn: "eth0".into(),
        sync_id: 5,
        sync_maxlen: Some(1400),
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: Some(8848),
        mcast_ttl: Some(2),
    };
    assert_eq!(genl(&IpvsMessage::new_daemon(&d)), NEW_DAEMON);
    assert_eq!(parse(NEW_DAEMON).to_daemon().ok(), Some(d));
}

/// `ipvsadm --stop-daemon master`: the kernel reads the state only.
#[test]
fn del_daemon() {
    assert_eq!(
        genl(&IpvsMessage::del_daemon(DaemonState::Master)),
        vec![
            0x0a, 0x01, 0x00, 0x00, // IPVS_CMD_DEL_DAEMON, version 1
            0x0c, 0x00, 0x03, 0x80, // len 12, IPVS_CMD_ATTR_DAEMON | NLA_F_NESTED
            0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, //   STATE: MASTER
        ]
    );
}
