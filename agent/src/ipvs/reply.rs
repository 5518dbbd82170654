//! Reply parsers: [`IpvsMessage`]s to domain values. Missing or impossible fields are
//! errors, never panics. The same functions read requests (ipvsadm's, in tests).

use std::net::IpAddr;

use netlink_packet_core::DecodeError;

use super::attr::{
    CmdAttr, DaemonAttr, DestAttr, InfoAttr, ServiceAttr, stats_from_attrs, stats64_from_attrs,
};
use super::message::IpvsMessage;
use super::types::{
    Daemon, DaemonState, Destination, DestinationEntry, Family, ForwardMethod, Info, Protocol,
    Scheduler, Service, ServiceEntry, ServiceFlags, ServiceKey, Stats, Timeouts, Tunnel,
    TunnelChecksum, TunnelType,
};

fn missing(what: &str) -> DecodeError {
    DecodeError::from(format!("missing {what}"))
}

fn family(n: u16, what: &str) -> Result<Family, DecodeError> {
    Family::from_number(n)
        .ok_or_else(|| DecodeError::from(format!("{what}: unknown address family {n}")))
}

/// The service's identity: AF + FWMARK, or AF + PROTOCOL + ADDR + PORT.
pub fn service_key_from_attrs(attrs: &[ServiceAttr]) -> Result<ServiceKey, DecodeError> {
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    for a in attrs {
        match a {
            ServiceAttr::Af(v) => af = Some(*v),
            ServiceAttr::Protocol(v) => protocol = Some(*v),
            ServiceAttr::Addr(v) => addr = Some(*v),
            ServiceAttr::Port(v) => port = Some(*v),
            ServiceAttr::Fwmark(v) => fwmark = Some(*v),
            _ => {}
        }
    }
    let family = family(af.ok_or_else(|| missing("IPVS_SVC_ATTR_AF"))?, "service")?;
    if let Some(mark) = fwmark {
        return ServiceKey::fwmark(mark, family)
            .map_err(|e| DecodeError::from(format!("service: {e}")));
    }
    let number =
        protocol.ok_or_else(|| missing("IPVS_SVC_ATTR_PROTOCOL or IPVS_SVC_ATTR_FWMARK"))?;
    let protocol = Protocol::from_number(number)
        .ok_or_else(|| DecodeError::from(format!("service: unsupported protocol {number}")))?;
    Ok(ServiceKey::Endpoint {
        protocol,
        addr: addr
            .ok_or_else(|| missing("IPVS_SVC_ATTR_ADDR"))?
            .to_ip(family),
        port: port.ok_or_else(|| missing("IPVS_SVC_ATTR_PORT"))?,
    })
}

/// The wire netmask back to the domain's form (see [`super::request::netmask_bytes`]).
fn netmask(family: Family, bytes: [u8; 4]) -> u32 {
    match family {
        Family::Inet => u32::from_be_bytes(bytes),
        Family::Inet6 => u32::from_ne_bytes(bytes),
    }
}

/// A full service (`NEW_SERVICE`/`SET_SERVICE` requests, dump replies). The effective flags
/// are `flags & mask`, minus the kernel-owned HASHED bit that every listed service carries.
pub fn service_from_attrs(attrs: &[ServiceAttr]) -> Result<Service, DecodeError> {
    let key = service_key_from_attrs(attrs)?;
    let (mut sched, mut flags, mut timeout, mut mask, mut pe) = (None, None, None, None, None);
    for a in attrs {
        match a {
            ServiceAttr::SchedName(v) => sched = Some(v),
            ServiceAttr::Flags(v) => flags = Some(*v),
            ServiceAttr::Timeout(v) => timeout = Some(*v),
            ServiceAttr::Netmask(v) => mask = Some(*v),
            ServiceAttr::PeName(v) => pe = Some(v.clone()),
            _ => {}
        }
    }
    let flags = flags.ok_or_else(|| missing("IPVS_SVC_ATTR_FLAGS"))?;
    Ok(Service {
        key,
        scheduler: Scheduler::from_kernel(
            sched.ok_or_else(|| missing("IPVS_SVC_ATTR_SCHED_NAME"))?,
        ),
        flags: ServiceFlags(flags.flags & flags.mask & !ServiceFlags::HASHED),
        timeout: timeout.ok_or_else(|| missing("IPVS_SVC_ATTR_TIMEOUT"))?,
        netmask: netmask(
            key.family(),
            mask.ok_or_else(|| missing("IPVS_SVC_ATTR_NETMASK"))?,
        ),
        pe_name: pe,
    })
}

/// Counters: STATS64 when present, else STATS (kernels before 4.1), else none reported.
fn stats(
    s32: Option<Result<Stats, DecodeError>>,
    s64: Option<Result<Stats, DecodeError>>,
) -> Result<Stats, DecodeError> {
    match (s64, s32) {
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => Ok(Stats::default()),
    }
}

/// A service with its counters, from a `NEW_SERVICE` reply.
pub fn service_entry_from_attrs(attrs: &[ServiceAttr]) -> Result<ServiceEntry, DecodeError> {
    let service = service_from_attrs(attrs)?;
    let s32 = attrs.iter().find_map(|a| match a {
        ServiceAttr::Stats(s) => Some(stats_from_attrs(s)),
        _ => None,
    });
    let s64 = attrs.iter().find_map(|a| match a {
        ServiceAttr::Stats64(s) => Some(stats64_from_attrs(s)),
        _ => None,
    });
    Ok(ServiceEntry {
        service,
        stats: stats(s32, s64)?,
    })
}

/// A destination's identity: its address (read in ADDR_FAMILY, or the service's family on
/// kernels before 3.18) and port.
pub fn dest_key_from_attrs(
    attrs: &[DestAttr],
    service_family: Family,
) -> Result<(IpAddr, u16), DecodeError> {
    let (mut addr, mut port, mut af) = (None, None, None);
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::AddrFamily(v) => af = Some(*v),
            _ => {}
        }
    }
    let family = match af {
        Some(n) => family(n, "destination")?,
        None => service_family,
    };
    Ok((
        addr.ok_or_else(|| missing("IPVS_DEST_ATTR_ADDR"))?
            .to_ip(family),
        port.ok_or_else(|| missing("IPVS_DEST_ATTR_PORT"))?,
    ))
}

/// A full destination (`NEW_DEST`/`SET_DEST` requests, dump replies). Tunnel settings count
/// only for tunnel servers: the kernel reports zeros for the others.
pub fn dest_from_attrs(
    attrs: &[DestAttr],
    service_family: Family,
) -> Result<Destination, DecodeError> {
    let (addr, port) = dest_key_from_attrs(attrs, service_family)?;
    let (mut fwd, mut weight, mut upper, mut lower) = (None, None, None, None);
    let (mut tun_type, mut tun_port, mut tun_flags) = (0u8, 0u16, 0u16);
    for a in attrs {
        match a {
            DestAttr::FwdMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => weight = Some(*v),
            DestAttr::UThresh(v) => upper = Some(*v),
            DestAttr::LThresh(v) => lower = Some(*v),
            DestAttr::TunType(v) => tun_type = *v,
            DestAttr::TunPort(v) => tun_port = *v,
            DestAttr::TunFlags(v) => tun_flags = *v,
            _ => {}
        }
    }
    let fwd = fwd.ok_or_else(|| missing("IPVS_DEST_ATTR_FWD_METHOD"))?;
    let forward = ForwardMethod::from_number(fwd).ok_or_else(|| {
        DecodeError::from(format!("destination: unknown forwarding method {fwd}"))
    })?;
    let tunnel = if forward == ForwardMethod::Tunnel {
        Tunnel {
            kind: TunnelType::from_number(tun_type).ok_or_else(|| {
                DecodeError::from(format!("destination: unknown tunnel type {tun_type}"))
            })?,
            port: tun_port,
            checksum: TunnelChecksum::from_bits(tun_flags),
        }
    } else {
        Tunnel::default()
    };
    Ok(Destination {
        addr,
        port,
        forward,
        weight: weight.ok_or_else(|| missing("IPVS_DEST_ATTR_WEIGHT"))?,
        upper_threshold: upper.ok_or_else(|| missing("IPVS_DEST_ATTR_U_THRESH"))?,
        lower_threshold: lower.ok_or_else(|| missing("IPVS_DEST_ATTR_L_THRESH"))?,
        tunnel,
    })
}

/// A destination with its connection counts and counters, from a `NEW_DEST` reply.
pub fn dest_entry_from_attrs(
    attrs: &[DestAttr],
    service_family: Family,
) -> Result<DestinationEntry, DecodeError> {
    let dest = dest_from_attrs(attrs, service_family)?;
    let (mut active, mut inactive, mut persistent) = (None, None, None);
    let (mut s32, mut s64) = (None, None);
    for a in attrs {
        match a {
            DestAttr::ActiveConns(v) => active = Some(*v),
            DestAttr::InactConns(v) => inactive = Some(*v),
            DestAttr::PersistConns(v) => persistent = Some(*v),
            DestAttr::Stats(s) => s32 = Some(stats_from_attrs(s)),
            DestAttr::Stats64(s) => s64 = Some(stats64_from_attrs(s)),
            _ => {}
        }
    }
    Ok(DestinationEntry {
        dest,
        active_conns: active.ok_or_else(|| missing("IPVS_DEST_ATTR_ACTIVE_CONNS"))?,
        inactive_conns: inactive.ok_or_else(|| missing("IPVS_DEST_ATTR_INACT_CONNS"))?,
        persistent_conns: persistent.ok_or_else(|| missing("IPVS_DEST_ATTR_PERSIST_CONNS"))?,
        stats: stats(s32, s64)?,
    })
}

/// A sync daemon, from a `NEW_DAEMON` message.
pub fn daemon_from_attrs(attrs: &[DaemonAttr]) -> Result<Daemon, DecodeError> {
    let (mut state, mut ifn, mut sync_id) = (None, None, None);
    let mut d = Daemon {
        state: DaemonState::Master,
        mcast_ifn: String::new(),
        sync_id: 0,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    for a in attrs {
        match a {
            DaemonAttr::State(v) => state = Some(*v),
            DaemonAttr::McastIfn(v) => ifn = Some(v.clone()),
            DaemonAttr::SyncId(v) => sync_id = Some(*v),
            DaemonAttr::SyncMaxlen(v) => d.sync_maxlen = Some(*v),
            DaemonAttr::McastGroup(v) => d.mcast_group = Some(IpAddr::V4(*v)),
            DaemonAttr::McastGroup6(v) => d.mcast_group = Some(IpAddr::V6(*v)),
            DaemonAttr::McastPort(v) => d.mcast_port = Some(*v),
            DaemonAttr::McastTtl(v) => d.mcast_ttl = Some(*v),
            DaemonAttr::Other(_) => {}
        }
    }
    let state = state.ok_or_else(|| missing("IPVS_DAEMON_ATTR_STATE"))?;
    d.state = DaemonState::from_number(state)
        .ok_or_else(|| DecodeError::from(format!("daemon: unknown state {state}")))?;
    d.mcast_ifn = ifn.ok_or_else(|| missing("IPVS_DAEMON_ATTR_MCAST_IFN"))?;
    d.sync_id = sync_id.ok_or_else(|| missing("IPVS_DAEMON_ATTR_SYNC_ID"))?;
    Ok(d)
}

impl IpvsMessage {
    /// The nested service attributes, if any.
    pub fn service_attrs(&self) -> Option<&[ServiceAttr]> {
        self.cmd_attrs().find_map(|a| match a {
            CmdAttr::Service(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// The nested destination attributes, if any.
    pub fn dest_attrs(&self) -> Option<&[DestAttr]> {
        self.cmd_attrs().find_map(|a| match a {
            CmdAttr::Dest(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// The nested daemon attributes, if any.
    pub fn daemon_attrs(&self) -> Option<&[DaemonAttr]> {
        self.cmd_attrs().find_map(|a| match a {
            CmdAttr::Daemon(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// A service dump entry or `GET_SERVICE` reply.
    pub fn to_service_entry(&self) -> Result<ServiceEntry, DecodeError> {
        service_entry_from_attrs(
            self.service_attrs()
                .ok_or_else(|| missing("IPVS_CMD_ATTR_SERVICE"))?,
        )
    }

    /// A destination dump entry of a service of `service_family`.
    pub fn to_destination_entry(
        &self,
        service_family: Family,
    ) -> Result<DestinationEntry, DecodeError> {
        dest_entry_from_attrs(
            self.dest_attrs()
                .ok_or_else(|| missing("IPVS_CMD_ATTR_DEST"))?,
            service_family,
        )
    }

    /// The `SET_INFO` reply to `GET_INFO`.
    pub fn to_info(&self) -> Result<Info, DecodeError> {
        let (mut version, mut size) = (None, None);
        for a in self.info_attrs() {
            match a {
                InfoAttr::Version(v) => version = Some(*v),
                InfoAttr::ConnTabSize(v) => size = Some(*v),
                InfoAttr::Other(_) => {}
            }
        }
        Ok(Info {
            version: version.ok_or_else(|| missing("IPVS_INFO_ATTR_VERSION"))?,
            conn_tab_size: size.ok_or_else(|| missing("IPVS_INFO_ATTR_CONN_TAB_SIZE"))?,
        })
    }

    /// The `SET_CONFIG` reply to `GET_CONFIG` (a timeout whose protocol the kernel lacks is
    /// absent and reads as 0).
    pub fn to_timeouts(&self) -> Timeouts {
        let mut t = Timeouts::default();
        for a in self.cmd_attrs() {
            match a {
                CmdAttr::TimeoutTcp(v) => t.tcp = *v,
                CmdAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
                CmdAttr::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        t
    }

    /// A daemon dump entry.
    pub fn to_daemon(&self) -> Result<Daemon, DecodeError> {
        daemon_from_attrs(
            self.daemon_attrs()
                .ok_or_else(|| missing("IPVS_CMD_ATTR_DAEMON"))?,
        )
    }
}
