//! Request builders: domain values to [`IpvsMessage`]s, encoded as ipvsadm (libipvs) encodes
//! them. Netlink header flags (dump, ack) are the handle's business.

use std::net::IpAddr;

use super::attr::{CmdAttr, DaemonAttr, DestAttr, InetAddr, IpvsFlags, ServiceAttr};
use super::cmd::Cmd;
use super::message::IpvsMessage;
use super::types::{
    Daemon, DaemonState, Destination, Family, ForwardMethod, Service, ServiceFlags, ServiceKey,
    Timeouts, Tunnel,
};

/// The attributes that identify a service: AF + PROTOCOL + ADDR + PORT, or AF + FWMARK.
pub fn service_key_attrs(key: &ServiceKey) -> Vec<ServiceAttr> {
    let mut attrs = vec![ServiceAttr::Af(key.family().number())];
    match key {
        ServiceKey::Endpoint {
            protocol,
            addr,
            port,
        } => {
            attrs.push(ServiceAttr::Protocol(protocol.number()));
            attrs.push(ServiceAttr::Addr(InetAddr::from_ip(*addr)));
            attrs.push(ServiceAttr::Port(*port));
        }
        ServiceKey::FwMark { mark, .. } => attrs.push(ServiceAttr::Fwmark(*mark)),
    }
    attrs
}

/// The wire form of a persistence netmask: IPv4 masks travel in network order, IPv6 prefix
/// lengths as a host-order number in the same `__be32` field (what ipvsadm sends and the
/// kernel compares against 1..=128).
pub fn netmask_bytes(family: Family, netmask: u32) -> [u8; 4] {
    match family {
        Family::Inet => netmask.to_be_bytes(),
        Family::Inet6 => netmask.to_ne_bytes(),
    }
}

/// A full service, as `NEW_SERVICE`/`SET_SERVICE` need it (no partial update exists). The
/// flags go with mask `!0`, as ipvsadm sends them: the kernel replaces every flag, and sets
/// the kernel-owned HASHED bit itself.
pub fn service_attrs(svc: &Service) -> Vec<ServiceAttr> {
    let mut attrs = service_key_attrs(&svc.key);
    attrs.push(ServiceAttr::SchedName(svc.scheduler.name().to_owned()));
    if let Some(pe) = &svc.pe_name {
        attrs.push(ServiceAttr::PeName(pe.clone()));
    }
    attrs.push(ServiceAttr::Flags(IpvsFlags {
        flags: svc.flags.0 & !ServiceFlags::HASHED,
        mask: u32::MAX,
    }));
    attrs.push(ServiceAttr::Timeout(svc.timeout));
    attrs.push(ServiceAttr::Netmask(netmask_bytes(
        svc.key.family(),
        svc.netmask,
    )));
    attrs
}

/// The attributes that identify a destination within its service; the family goes along so
/// that a real server of the other family is found too.
pub fn dest_key_attrs(addr: IpAddr, port: u16) -> Vec<DestAttr> {
    vec![
        DestAttr::AddrFamily(Family::of(&addr).number()),
        DestAttr::Addr(InetAddr::from_ip(addr)),
        DestAttr::Port(port),
    ]
}

/// A full destination, as `NEW_DEST`/`SET_DEST` need it. The tunnel attributes always go
/// along, zero unless in tunnel mode, as ipvsadm sends them (kernels before 5.2 ignore them).
pub fn dest_attrs(dest: &Destination) -> Vec<DestAttr> {
    let tunnel = if dest.forward == ForwardMethod::Tunnel {
        dest.tunnel
    } else {
        Tunnel::default()
    };
    let mut attrs = dest_key_attrs(dest.addr, dest.port);
    attrs.extend([
        DestAttr::FwdMethod(dest.forward.number()),
        DestAttr::Weight(dest.weight),
        DestAttr::TunType(tunnel.kind.number()),
        DestAttr::TunPort(tunnel.port),
        DestAttr::TunFlags(tunnel.checksum.bits()),
        DestAttr::UThresh(dest.upper_threshold),
        DestAttr::LThresh(dest.lower_threshold),
    ]);
    attrs
}

/// A sync daemon, with the optional settings only when set (as ipvsadm sends them).
pub fn daemon_attrs(d: &Daemon) -> Vec<DaemonAttr> {
    let mut attrs = vec![
        DaemonAttr::State(d.state.number()),
        DaemonAttr::McastIfn(d.mcast_ifn.clone()),
        DaemonAttr::SyncId(d.sync_id),
    ];
    if let Some(v) = d.sync_maxlen {
        attrs.push(DaemonAttr::SyncMaxlen(v));
    }
    if let Some(v) = d.mcast_port {
        attrs.push(DaemonAttr::McastPort(v));
    }
    if let Some(v) = d.mcast_ttl {
        attrs.push(DaemonAttr::McastTtl(v));
    }
    match d.mcast_group {
        Some(IpAddr::V4(a)) => attrs.push(DaemonAttr::McastGroup(a)),
        Some(IpAddr::V6(a)) => attrs.push(DaemonAttr::McastGroup6(a)),
        None => {}
    }
    attrs
}

impl IpvsMessage {
    /// `ipvsadm` header line (`IPVS_CMD_GET_INFO`).
    pub fn get_info() -> Self {
        IpvsMessage::new(Cmd::GetInfo, vec![])
    }

    /// Every service: send as a dump.
    pub fn get_services() -> Self {
        IpvsMessage::new(Cmd::GetService, vec![])
    }

    /// One service.
    pub fn get_service(key: &ServiceKey) -> Self {
        IpvsMessage::new(
            Cmd::GetService,
            vec![CmdAttr::Service(service_key_attrs(key))],
        )
    }

    /// `ipvsadm -A`.
    pub fn new_service(svc: &Service) -> Self {
        IpvsMessage::new(Cmd::NewService, vec![CmdAttr::Service(service_attrs(svc))])
    }

    /// `ipvsadm -E`.
    pub fn set_service(svc: &Service) -> Self {
        IpvsMessage::new(Cmd::SetService, vec![CmdAttr::Service(service_attrs(svc))])
    }

    /// `ipvsadm -D`.
    pub fn del_service(key: &ServiceKey) -> Self {
        IpvsMessage::new(
            Cmd::DelService,
            vec![CmdAttr::Service(service_key_attrs(key))],
        )
    }

    /// The real servers of one service: send as a dump.
    pub fn get_dests(key: &ServiceKey) -> Self {
        IpvsMessage::new(Cmd::GetDest, vec![CmdAttr::Service(service_key_attrs(key))])
    }

    /// `ipvsadm -a`.
    pub fn new_dest(key: &ServiceKey, dest: &Destination) -> Self {
        IpvsMessage::new(
            Cmd::NewDest,
            vec![
                CmdAttr::Service(service_key_attrs(key)),
                CmdAttr::Dest(dest_attrs(dest)),
            ],
        )
    }

    /// `ipvsadm -e`.
    pub fn set_dest(key: &ServiceKey, dest: &Destination) -> Self {
        IpvsMessage::new(
            Cmd::SetDest,
            vec![
                CmdAttr::Service(service_key_attrs(key)),
                CmdAttr::Dest(dest_attrs(dest)),
            ],
        )
    }

    /// `ipvsadm -d`.
    pub fn del_dest(key: &ServiceKey, addr: IpAddr, port: u16) -> Self {
        IpvsMessage::new(
            Cmd::DelDest,
            vec![
                CmdAttr::Service(service_key_attrs(key)),
                CmdAttr::Dest(dest_key_attrs(addr, port)),
            ],
        )
    }

    /// `ipvsadm -Z [service]`: without a service, every counter.
    pub fn zero(key: Option<&ServiceKey>) -> Self {
        let attrs = key
            .map(|k| vec![CmdAttr::Service(service_key_attrs(k))])
            .unwrap_or_default();
        IpvsMessage::new(Cmd::Zero, attrs)
    }

    /// `ipvsadm -C`.
    pub fn flush() -> Self {
        IpvsMessage::new(Cmd::Flush, vec![])
    }

    /// `ipvsadm -L --timeout`.
    pub fn get_config() -> Self {
        IpvsMessage::new(Cmd::GetConfig, vec![])
    }

    /// `ipvsadm --set tcp tcpfin udp`.
    pub fn set_config(t: &Timeouts) -> Self {
        IpvsMessage::new(
            Cmd::SetConfig,
            vec![
                CmdAttr::TimeoutTcp(t.tcp),
                CmdAttr::TimeoutTcpFin(t.tcp_fin),
                CmdAttr::TimeoutUdp(t.udp),
            ],
        )
    }

    /// `ipvsadm -L --daemon`: send as a dump.
    pub fn get_daemons() -> Self {
        IpvsMessage::new(Cmd::GetDaemon, vec![])
    }

    /// `ipvsadm --start-daemon`.
    pub fn new_daemon(d: &Daemon) -> Self {
        IpvsMessage::new(Cmd::NewDaemon, vec![CmdAttr::Daemon(daemon_attrs(d))])
    }

    /// `ipvsadm --stop-daemon`: the kernel needs only the state.
    pub fn del_daemon(state: DaemonState) -> Self {
        IpvsMessage::new(
            Cmd::DelDaemon,
            vec![CmdAttr::Daemon(vec![DaemonAttr::State(state.number())])],
        )
    }
}
