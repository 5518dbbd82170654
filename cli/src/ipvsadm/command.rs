//! What an ipvsadm command line asks for, once parsed and checked.
//!
//! Every value here already passed ipvsadm's checks, so running a command only has to turn it
//! into requests; impossible combinations (a service with both a port and a firewall mark, a
//! tunnel port on a masquerading server) cannot be written down.

use std::net::IpAddr;

use super::resolve::L4;

/// A virtual service's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t`, `-u` or `--sctp-service` `host[:port]`.
    Addr {
        protocol: L4,
        addr: IpAddr,
        port: u16,
    },
    /// `-f mark`, with `-6` for IPv6.
    Fwmark { mark: u32, ipv6: bool },
}

/// Persistence granularity (`-M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netmask {
    /// A dotted-quad mask, as a host-order 32-bit value.
    V4(u32),
    /// An IPv6 prefix length, 1..=128.
    V6Prefix(u8),
}

/// Scheduler flags (`-b`), as the kernel's `IP_VS_SVC_F_SCHED1..3` bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedFlags {
    pub flag_1: bool,
    pub flag_2: bool,
    pub flag_3: bool,
}

/// `-A`/`-E`: a service with its scheduler and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    /// The scheduler's name as typed (`wlc` when not given); the kernel decides if it exists.
    pub scheduler: String,
    /// `-p [timeout]`: persistence timeout in seconds.
    pub persistent: Option<u32>,
    pub netmask: Option<Netmask>,
    /// `-o`/`--ops`.
    pub one_packet: bool,
    pub sched_flags: SchedFlags,
    /// `--pe name`.
    pub persistence_engine: Option<String>,
}

/// How packets reach a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// `-g`, the default.
    Route,
    /// `-i`.
    Tunnel,
    /// `-m`.
    Masq,
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelType {
    Ipip,
    Gue,
    Gre,
}

/// Tunnel checksum mode (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelChecksum {
    None,
    Csum,
    RemCsum,
}

/// Tunnel settings of a `-i` real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: TunnelType,
    /// `--tun-port`, given for GUE only.
    pub port: Option<u16>,
    pub checksum: TunnelChecksum,
}

/// `-a`/`-e`: a real server with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    /// Only for `Forward::Tunnel`.
    pub tunnel: Option<Tunnel>,
    pub weight: u32,
    /// `-x`, 0 = none.
    pub upper_threshold: u32,
    /// `-y`, 0 = none.
    pub lower_threshold: u32,
}

/// Which table `-L` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListView {
    /// Scheduler, forwarding, weight and connection counts.
    #[default]
    Plain,
    /// `--stats`: counters.
    Stats,
    /// `--rate`: rates.
    Rate,
    /// `--thresholds`.
    Thresholds,
    /// `--persistent-conn`.
    PersistentConn,
    /// `--tun-info`.
    TunInfo,
}

/// How `-L` and `-S` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListFormat {
    pub view: ListView,
    /// `-n`: no name lookups.
    pub numeric: bool,
    /// `--exact`: full numbers instead of K/M/G/T.
    pub exact: bool,
    /// `--nosort`: the agent's order.
    pub nosort: bool,
}

/// What `-L` lists besides the service table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOther {
    /// `-c`: the connection table; `-n` for numbers, `--persistent-conn` for the persistence
    /// engine's columns.
    Connections { numeric: bool, persistent: bool },
    /// `--timeout`.
    Timeout,
    /// `--daemon`.
    Daemon,
}

/// Sync daemon role (`--start-daemon`/`--stop-daemon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonState {
    Master,
    Backup,
}

/// `--start-daemon`: a sync daemon with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    pub state: DaemonState,
    /// `--mcast-interface` (at most 15 bytes kept), `eth0` when not given, as ipvsadm does.
    pub interface: String,
    /// `--syncid`, 0..=255; 0 when not given.
    pub sync_id: u8,
    /// `--sync-maxlen`.
    pub sync_maxlen: Option<u16>,
    /// `--mcast-group`: a multicast address.
    pub group: Option<IpAddr>,
    /// `--mcast-port`.
    pub port: Option<u16>,
    /// `--mcast-ttl`.
    pub ttl: Option<u8>,
}

/// An ipvsadm command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-h`.
    Help,
    /// `-v`.
    Version,
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E`.
    EditService(ServiceSpec),
    /// `-D`.
    DeleteService(ServiceKey),
    /// `-C`.
    Flush,
    /// `-L`/`-l` (or no arguments): all services, or one.
    List {
        service: Option<ServiceKey>,
        format: ListFormat,
    },
    /// `-L -c`, `-L --timeout`, `-L --daemon`.
    ListOther(ListOther),
    /// `-a`.
    AddServer(ServiceKey, DestSpec),
    /// `-e`.
    EditServer(ServiceKey, DestSpec),
    /// `-d`.
    DeleteServer(ServiceKey, IpAddr, u16),
    /// `-Z`: one service or all.
    Zero(Option<ServiceKey>),
    /// `-S`.
    Save { numeric: bool },
    /// `-R`.
    Restore,
    /// `--set tcp tcpfin udp`.
    SetTimeout { tcp: u32, tcpfin: u32, udp: u32 },
    /// `--start-daemon`.
    StartDaemon(DaemonSpec),
    /// `--stop-daemon`.
    StopDaemon(DaemonState),
}
