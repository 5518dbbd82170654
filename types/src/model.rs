//! Domain model of the IPVS table: what a service and a real server are, independent of
//! netlink and of gRPC. Constructors and `validate` apply ipvsadm's rules so that bad input is
//! refused before anything reaches the kernel.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::ValidationError;
use crate::uapi::*;

/// Layer-4 protocol of an address-based service (`IPVS_SVC_ATTR_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// IP protocol number as the kernel carries it.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// Address family (`AF_INET` / `AF_INET6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub const AF_INET: u16 = 2;
    pub const AF_INET6: u16 = 10;

    pub fn number(self) -> u16 {
        match self {
            Family::Inet => Self::AF_INET,
            Family::Inet6 => Self::AF_INET6,
        }
    }

    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            Self::AF_INET => Some(Family::Inet),
            Self::AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }

    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

/// A service's identity. A service is either protocol + address + port or a firewall mark:
/// never both, which the enum makes unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Endpoint {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    FwMark {
        mark: u32,
        family: Family,
    },
}

impl ServiceKey {
    /// A firewall-mark key; the kernel treats mark 0 as "no fwmark", so it is refused.
    pub fn fwmark(mark: u32, family: Family) -> Result<Self, ValidationError> {
        if mark == 0 {
            return Err(ValidationError::ZeroFwMark);
        }
        Ok(ServiceKey::FwMark { mark, family })
    }

    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Endpoint { addr, .. } => Family::of(addr),
            ServiceKey::FwMark { family, .. } => *family,
        }
    }

    /// The service port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Endpoint { port, .. } => *port,
            ServiceKey::FwMark { .. } => 0,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// ipvsadm's notation: `TCP 192.168.100.1:80`, `UDP [2001:db8::1]:53`, `FWM 7`, `FWM 7 IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Endpoint {
                protocol,
                addr,
                port,
            } => {
                let p = match protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                    Protocol::Sctp => "SCTP",
                };
                match addr {
                    IpAddr::V4(a) => write!(f, "{p} {a}:{port}"),
                    IpAddr::V6(a) => write!(f, "{p} [{a}]:{port}"),
                }
            }
            ServiceKey::FwMark { mark, family } => match family {
                Family::Inet => write!(f, "FWM {mark}"),
                Family::Inet6 => write!(f, "FWM {mark} IPv6"),
            },
        }
    }
}

/// A scheduler, named as the kernel names it (module `ip_vs_<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
    Twos,
    /// A scheduler the kernel reported that this build does not know (read side only).
    Other(String),
}

impl Scheduler {
    /// Every scheduler the kernel tree has, in ipvsadm's documentation order.
    pub const KNOWN: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Twos,
    ];

    pub fn name(&self) -> &str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
            Scheduler::Other(name) => name,
        }
    }

    /// Parses a name the kernel reported; unknown names are kept as `Other`.
    pub fn from_kernel(name: &str) -> Self {
        name.parse()
            .unwrap_or_else(|_| Scheduler::Other(name.to_owned()))
    }
}

impl FromStr for Scheduler {
    type Err = ValidationError;

    /// Parses a user-supplied name: only known schedulers are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::KNOWN
            .iter()
            .find(|k| k.name() == s)
            .cloned()
            .ok_or_else(|| ValidationError::UnknownScheduler(s.to_owned()))
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Service flags (`IP_VS_SVC_F_*`), a plain bit set as the kernel defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    pub const PERSISTENT: u32 = IP_VS_SVC_F_PERSISTENT;
    pub const HASHED: u32 = IP_VS_SVC_F_HASHED;
    pub const ONEPACKET: u32 = IP_VS_SVC_F_ONEPACKET;
    pub const SCHED1: u32 = IP_VS_SVC_F_SCHED1;
    pub const SCHED2: u32 = IP_VS_SVC_F_SCHED2;
    pub const SCHED3: u32 = IP_VS_SVC_F_SCHED3;
    /// The flags a client may set; HASHED is kernel-owned.
    pub const USER_MASK: u32 =
        Self::PERSISTENT | Self::ONEPACKET | Self::SCHED1 | Self::SCHED2 | Self::SCHED3;

    pub fn contains(self, bit: u32) -> bool {
        self.0 & bit == bit
    }

    pub fn with(self, bit: u32, on: bool) -> Self {
        if on {
            ServiceFlags(self.0 | bit)
        } else {
            ServiceFlags(self.0 & !bit)
        }
    }
}

/// A virtual service's configuration (what `ipvsadm -A/-E` sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    /// `IP_VS_SVC_F_*`; PERSISTENT is derived from `timeout` by [`Service::new`]-style callers.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds; 0 when not persistent.
    pub timeout: u32,
    /// IPv4: the netmask as a host-order u32 (0xffffffff = /32). IPv6: a prefix length (128).
    pub netmask: u32,
    /// Persistence engine, e.g. "sip".
    pub pe_name: Option<String>,
}

impl Service {
    /// A non-persistent service with default options, as `ipvsadm -A <key> -s <sched>` makes it.
    pub fn new(key: ServiceKey, scheduler: Scheduler) -> Self {
        Service {
            key,
            scheduler,
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: default_netmask(key.family()),
            pe_name: None,
        }
    }

    pub fn is_persistent(&self) -> bool {
        self.flags.contains(ServiceFlags::PERSISTENT)
    }

    /// ipvsadm's rules for a service, checked before any write.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let ServiceKey::FwMark { mark: 0, .. } = self.key {
            return Err(ValidationError::ZeroFwMark);
        }
        if let ServiceKey::Endpoint { port: 0, .. } = self.key
            && !self.is_persistent()
        {
            return Err(ValidationError::ZeroPortNotPersistent);
        }
        if self.flags.contains(ServiceFlags::ONEPACKET)
            && matches!(
                self.key,
                ServiceKey::Endpoint {
                    protocol: Protocol::Tcp | Protocol::Sctp,
                    ..
                }
            )
        {
            return Err(ValidationError::OnePacketProtocol);
        }
        if self.is_persistent() != (self.timeout > 0) {
            return Err(ValidationError::PersistenceTimeout);
        }
        match self.key.family() {
            Family::Inet6 if self.netmask > 128 || self.netmask == 0 => {
                return Err(ValidationError::Netmask(self.netmask));
            }
            _ => {}
        }
        if let Scheduler::Other(name) = &self.scheduler {
            return Err(ValidationError::UnknownScheduler(name.clone()));
        }
        if let Some(pe) = &self.pe_name
            && (pe.is_empty()
                || pe.len() > 15
                || !pe.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(ValidationError::PersistenceEngine(pe.clone()));
        }
        Ok(())
    }
}

/// The kernel's default persistence granularity: one client address.
pub fn default_netmask(family: Family) -> u32 {
    match family {
        Family::Inet => u32::MAX,
        Family::Inet6 => 128,
    }
}

/// How packets reach a real server (`IP_VS_CONN_F_*` forwarding bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ForwardMethod {
    Masquerade,
    Local,
    Tunnel,
    /// Direct routing ("gatewaying"), ipvsadm's default.
    #[default]
    DirectRoute,
}

impl ForwardMethod {
    pub fn number(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => IP_VS_CONN_F_MASQ,
            ForwardMethod::Local => IP_VS_CONN_F_LOCALNODE,
            ForwardMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            ForwardMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
        }
    }

    /// Decodes the low three bits (`IP_VS_CONN_F_FWD_MASK`).
    pub fn from_number(n: u32) -> Option<Self> {
        match n & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => Some(ForwardMethod::Masquerade),
            IP_VS_CONN_F_LOCALNODE => Some(ForwardMethod::Local),
            IP_VS_CONN_F_TUNNEL => Some(ForwardMethod::Tunnel),
            IP_VS_CONN_F_DROUTE => Some(ForwardMethod::DirectRoute),
            _ => None,
        }
    }
}

/// Tunnel encapsulation (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub fn number(self) -> u8 {
        match self {
            TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => Some(TunnelType::Ipip),
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => Some(TunnelType::Gue),
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => Some(TunnelType::Gre),
            _ => None,
        }
    }
}

/// Tunnel checksum mode (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelChecksum {
    #[default]
    None,
    Csum,
    RemCsum,
}

impl TunnelChecksum {
    /// The kernel's flag bits.
    pub fn bits(self) -> u16 {
        match self {
            TunnelChecksum::None => IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM,
            TunnelChecksum::Csum => IP_VS_TUNNEL_ENCAP_FLAG_CSUM,
            TunnelChecksum::RemCsum => IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
        }
    }

    pub fn from_bits(bits: u16) -> Self {
        if bits & IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM != 0 {
            TunnelChecksum::RemCsum
        } else if bits & IP_VS_TUNNEL_ENCAP_FLAG_CSUM != 0 {
            TunnelChecksum::Csum
        } else {
            TunnelChecksum::None
        }
    }
}

/// Tunnel settings of a TUNNEL real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    pub kind: TunnelType,
    /// UDP port, GUE only.
    pub port: u16,
    pub checksum: TunnelChecksum,
}

/// A real server's configuration (what `ipvsadm -a/-e` sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: ForwardMethod,
    /// 0..=65535 (ipvsadm's range); 0 quiesces the server.
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    pub tunnel: Tunnel,
}

/// ipvsadm's highest weight.
pub const MAX_WEIGHT: u32 = 65535;

impl Destination {
    /// A real server with ipvsadm's defaults: direct routing, weight 1, no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Destination {
            addr,
            port,
            forward: ForwardMethod::DirectRoute,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Tunnel::default(),
        }
    }

    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// ipvsadm's rules for a real server of `service`, checked before any write. DR and tunnel
    /// servers must use the service's port: callers normalise with [`Destination::normalized_for`].
    pub fn validate_for(&self, service: &ServiceKey) -> Result<(), ValidationError> {
        if self.weight > MAX_WEIGHT {
            return Err(ValidationError::Weight(self.weight));
        }
        if self.family() != service.family() && self.forward != ForwardMethod::Tunnel {
            return Err(ValidationError::MixedFamily);
        }
        if self.forward == ForwardMethod::Tunnel {
            match self.tunnel.kind {
                TunnelType::Gue if self.tunnel.port == 0 => {
                    return Err(ValidationError::GuePortMissing);
                }
                TunnelType::Gre if self.tunnel.checksum == TunnelChecksum::RemCsum => {
                    return Err(ValidationError::GreRemoteChecksum);
                }
                TunnelType::Ipip if self.tunnel != Tunnel::default() => {
                    return Err(ValidationError::TunnelOptionsWithoutType);
                }
                _ => {}
            }
        } else if self.tunnel != Tunnel::default() {
            return Err(ValidationError::TunnelOptionsWithoutTunnel);
        }
        Ok(())
    }

    /// ipvsadm forces the real port of DR and tunnel servers to the service port (fwmark
    /// services carry no port: the kernel then keeps the packet's own).
    pub fn normalized_for(mut self, service: &ServiceKey) -> Self {
        if matches!(service, ServiceKey::Endpoint { .. })
            && matches!(
                self.forward,
                ForwardMethod::DirectRoute | ForwardMethod::Tunnel
            )
        {
            self.port = service.port();
        }
        self
    }
}

/// Counters (64-bit) and rates of a service or real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A service as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
}

/// A real server as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationEntry {
    pub dest: Destination,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Stats,
}

/// Kernel IPVS info (`IPVS_CMD_GET_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// 0x010201 = 1.2.1.
    pub version: u32,
    pub conn_tab_size: u32,
}

/// Connection timeouts in seconds (`IPVS_CMD_SET_CONFIG`); 0 leaves a value unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Sync daemon role (`IP_VS_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn number(self) -> u32 {
        match self {
            DaemonState::Master => IP_VS_STATE_MASTER,
            DaemonState::Backup => IP_VS_STATE_BACKUP,
        }
    }

    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            IP_VS_STATE_MASTER => Some(DaemonState::Master),
            IP_VS_STATE_BACKUP => Some(DaemonState::Backup),
            _ => None,
        }
    }
}

/// A connection sync daemon (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub state: DaemonState,
    pub mcast_ifn: String,
    pub sync_id: u32,
    pub sync_maxlen: Option<u16>,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn tcp(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: addr.parse().expect("test address"),
            port,
        }
    }

    #[test]
    fn scheduler_names_round_trip_and_unknown_is_refused() {
        for s in Scheduler::KNOWN {
            assert_eq!(s.name().parse::<Scheduler>(), Ok(s.clone()));
        }
        assert_eq!(
            "bogus".parse::<Scheduler>(),
            Err(ValidationError::UnknownScheduler("bogus".into()))
        );
        assert_eq!(
            Scheduler::from_kernel("mine"),
            Scheduler::Other("mine".into())
        );
    }

    #[test]
    fn service_rules() {
        let persistent = |mut s: Service| {
            s.flags = s.flags.with(ServiceFlags::PERSISTENT, true);
            s.timeout = 300;
            s
        };
        let udp = ServiceKey::Endpoint {
            protocol: Protocol::Udp,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 53,
        };
        let mut one_packet_tcp = Service::new(tcp("10.0.0.1", 80), Scheduler::Rr);
        one_packet_tcp.flags = one_packet_tcp.flags.with(ServiceFlags::ONEPACKET, true);
        let mut one_packet_udp = Service::new(udp, Scheduler::Rr);
        one_packet_udp.flags = one_packet_udp.flags.with(ServiceFlags::ONEPACKET, true);
        let mut bad_mask = persistent(Service::new(tcp("10.0.0.1", 80), Scheduler::Rr));
        bad_mask.netmask = 0xff00ff00;
        let mut timeout_only = Service::new(tcp("10.0.0.1", 80), Scheduler::Rr);
        timeout_only.timeout = 10;
        let mut bad_pe = Service::new(tcp("10.0.0.1", 80), Scheduler::Rr);
        bad_pe.pe_name = Some("s i p".into());
        let cases: Vec<(Service, Result<(), ValidationError>)> = vec![
            (
                Service::new(tcp("192.168.100.1", 80), Scheduler::Rr),
                Ok(()),
            ),
            (
                Service::new(tcp("192.168.100.1", 0), Scheduler::Rr),
                Err(ValidationError::ZeroPortNotPersistent),
            ),
            (
                persistent(Service::new(tcp("192.168.100.1", 0), Scheduler::Rr)),
                Ok(()),
            ),
            (one_packet_tcp, Err(ValidationError::OnePacketProtocol)),
            (one_packet_udp, Ok(())),
            (bad_mask, Ok(())),
            (timeout_only, Err(ValidationError::PersistenceTimeout)),
            (
                bad_pe,
                Err(ValidationError::PersistenceEngine("s i p".into())),
            ),
            (
                Service::new(
                    ServiceKey::FwMark {
                        mark: 0,
                        family: Family::Inet,
                    },
                    Scheduler::Rr,
                ),
                Err(ValidationError::ZeroFwMark),
            ),
            (
                Service::new(tcp("::1", 80), Scheduler::Other("x".into())),
                Err(ValidationError::UnknownScheduler("x".into())),
            ),
        ];
        for (svc, want) in cases {
            assert_eq!(svc.validate(), want, "{svc:?}");
        }
    }

    #[test]
    fn destination_rules() {
        let svc = tcp("192.168.100.1", 80);
        let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let with = |f: &dyn Fn(&mut Destination)| {
            let mut d = Destination::new(v4, 8081);
            f(&mut d);
            d
        };
        let cases: Vec<(Destination, Result<(), ValidationError>)> = vec![
            (with(&|d| d.forward = ForwardMethod::Masquerade), Ok(())),
            (with(&|d| d.weight = 65535), Ok(())),
            (
                with(&|d| d.weight = 65536),
                Err(ValidationError::Weight(65536)),
            ),
            (
                with(&|d| {
                    d.upper_threshold = 5;
                    d.lower_threshold = 6
                }),
                // The kernel refuses it (ERANGE) atomically, in ipvsadm's words.
                Ok(()),
            ),
            (Destination::new(v6, 80), Err(ValidationError::MixedFamily)),
            (
                {
                    let mut d = Destination::new(v6, 80);
                    d.forward = ForwardMethod::Tunnel;
                    d
                },
                Ok(()),
            ),
            (
                with(&|d| {
                    d.forward = ForwardMethod::Tunnel;
                    d.tunnel.kind = TunnelType::Gue
                }),
                Err(ValidationError::GuePortMissing),
            ),
            (
                with(&|d| {
                    d.forward = ForwardMethod::Tunnel;
                    d.tunnel.kind = TunnelType::Gre;
                    d.tunnel.checksum = TunnelChecksum::RemCsum
                }),
                Err(ValidationError::GreRemoteChecksum),
            ),
            (
                with(&|d| d.tunnel.port = 6080),
                Err(ValidationError::TunnelOptionsWithoutTunnel),
            ),
        ];
        for (dest, want) in cases {
            assert_eq!(dest.validate_for(&svc), want, "{dest:?}");
        }
    }

    #[test]
    fn dr_and_tunnel_take_the_service_port() {
        let svc = tcp("192.168.100.1", 80);
        let mut d = Destination::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
        assert_eq!(d.normalized_for(&svc).port, 80);
        // A fwmark service has no port: the real server keeps its own, as with ipvsadm.
        let fwm = ServiceKey::FwMark {
            mark: 274,
            family: Family::Inet,
        };
        assert_eq!(d.normalized_for(&fwm).port, 8081);
        d.forward = ForwardMethod::Masquerade;
        assert_eq!(d.normalized_for(&svc).port, 8081);
    }

    #[test]
    fn key_display_matches_ipvsadm() {
        assert_eq!(tcp("192.168.100.1", 80).to_string(), "TCP 192.168.100.1:80");
        assert_eq!(tcp("2001:db8::1", 443).to_string(), "TCP [2001:db8::1]:443");
        assert_eq!(
            ServiceKey::fwmark(7, Family::Inet6).map(|k| k.to_string()),
            Ok("FWM 7 IPv6".to_owned())
        );
        assert_eq!(
            ServiceKey::fwmark(0, Family::Inet),
            Err(ValidationError::ZeroFwMark)
        );
    }
}
