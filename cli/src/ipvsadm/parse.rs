//! ipvsadm's command line: the same options, the same checks in the same order, the same
//! messages and exit codes, ending in a typed [`Command`].
//!
//! The parser follows ipvsadm 1.31's `parse_options` and `process_options` step by step:
//! options are read in order into one mutable record (a value depends on what came before it,
//! e.g. `-r host` takes the service's port, `-M` reads a mask by the service's family), each
//! option's value is checked when it is read, then the leftovers, the scheduler flags, the
//! command/option table and the per-command rules are checked, in that order. The first
//! failure is the one reported, as with ipvsadm.
//!
//! ipvsctl adds options that ipvsadm lacks, accepted anywhere on its own command line (not in
//! `-R` input, which [`parse_line`] reads with ipvsadm's grammar alone): `--agent ADDRESS`,
//! `--output text|json` (also `-o json`/`-o text`; a bare `-o` stays ipvsadm's `--ops`) and
//! `--dry-run` and `--replace` (for `-R`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_types::uapi::{
    IP_VS_IFNAME_MAXLEN, IP_VS_PENAME_MAXLEN, IP_VS_SCHEDNAME_MAXLEN, IP_VS_SVC_F_ONEPACKET,
    IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, IP_VS_SVC_F_SCHED3,
    IP_VS_TUNNEL_ENCAP_FLAG_CSUM, IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM,
};

use super::command::{
    Command, DaemonSpec, DaemonState, DestSpec, Forward, ListFormat, ListOther, ListView, Netmask,
    SchedFlags, ServiceKey, ServiceSpec, Tunnel, TunnelChecksum, TunnelType,
};
use super::cparse::{atoi, inet_aton, string_to_number, strtol_full};
use super::popt::{ArgKind, OptSpec, Popt, PoptError, Token};
use super::resolve::{L4, Resolve};
use crate::output::OutputFormat;

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// ipvsadm's `IPVS_SVC_PERSISTENT_TIMEOUT` (6 minutes), used by a bare `-p`.
const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
/// The scheduler ipvsadm sets when `-s` is not given.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm keeps this many bytes of `-s`.
const SCHEDNAME_KEEP: usize = IP_VS_SCHEDNAME_MAXLEN - 1;
/// ipvsadm keeps this many bytes of `--pe`.
const PENAME_KEEP: usize = IP_VS_PENAME_MAXLEN;
/// ipvsadm keeps this many bytes of `--mcast-interface`.
const IFNAME_KEEP: usize = IP_VS_IFNAME_MAXLEN - 1;
/// ipvsadm's `DEF_MCAST_IFN`, the sync daemon's interface when none is given.
pub const DEFAULT_MCAST_INTERFACE: &str = "eth0";

/// Options of ipvsadm's table, plus ipvsctl's global options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    Agent,
    Output,
    DryRun,
    Replace,
}

const fn opt(long: &'static str, short: Option<char>, arg: ArgKind, id: Opt) -> OptSpec<Opt> {
    OptSpec {
        long: Some(long),
        short,
        arg,
        id,
    }
}

use ArgKind::{None as NoArg, Optional, Required};

/// ipvsadm 1.31's popt table, in its order (`--list` is both `-L` and `-l`).
const TABLE: &[OptSpec<Opt>] = &[
    opt("add-service", Some('A'), NoArg, Opt::AddService),
    opt("edit-service", Some('E'), NoArg, Opt::EditService),
    opt("delete-service", Some('D'), NoArg, Opt::DeleteService),
    opt("clear", Some('C'), NoArg, Opt::Clear),
    opt("list", Some('L'), NoArg, Opt::List),
    opt("list", Some('l'), NoArg, Opt::List),
    opt("zero", Some('Z'), NoArg, Opt::Zero),
    opt("add-server", Some('a'), NoArg, Opt::AddServer),
    opt("edit-server", Some('e'), NoArg, Opt::EditServer),
    opt("delete-server", Some('d'), NoArg, Opt::DeleteServer),
    opt("set", None, NoArg, Opt::Set),
    opt("help", Some('h'), NoArg, Opt::Help),
    opt("version", Some('v'), NoArg, Opt::Version),
    opt("restore", Some('R'), NoArg, Opt::Restore),
    opt("save", Some('S'), NoArg, Opt::Save),
    opt("start-daemon", None, Required, Opt::StartDaemon),
    opt("stop-daemon", None, Required, Opt::StopDaemon),
    opt("tcp-service", Some('t'), Required, Opt::Tcp),
    opt("udp-service", Some('u'), Required, Opt::Udp),
    opt("sctp-service", None, Required, Opt::Sctp),
    opt("fwmark-service", Some('f'), Required, Opt::Fwmark),
    opt("scheduler", Some('s'), Required, Opt::Scheduler),
    opt("persistent", Some('p'), Optional, Opt::Persistent),
    opt("netmask", Some('M'), Required, Opt::Netmask),
    opt("real-server", Some('r'), Required, Opt::RealServer),
    opt("masquerading", Some('m'), NoArg, Opt::Masquerading),
    opt("ipip", Some('i'), NoArg, Opt::Ipip),
    opt("gatewaying", Some('g'), NoArg, Opt::Gatewaying),
    opt("weight", Some('w'), Required, Opt::Weight),
    opt("u-threshold", Some('x'), Required, Opt::UThreshold),
    opt("l-threshold", Some('y'), Required, Opt::LThreshold),
    opt("numeric", Some('n'), NoArg, Opt::Numeric),
    opt("connection", Some('c'), NoArg, Opt::Connection),
    opt("mcast-interface", None, Required, Opt::McastInterface),
    opt("syncid", None, Required, Opt::SyncId),
    opt("timeout", None, NoArg, Opt::Timeout),
    opt("daemon", None, NoArg, Opt::Daemon),
    opt("stats", None, NoArg, Opt::Stats),
    opt("rate", None, NoArg, Opt::Rate),
    opt("thresholds", None, NoArg, Opt::Thresholds),
    opt("persistent-conn", None, NoArg, Opt::PersistentConn),
    opt("nosort", None, NoArg, Opt::NoSort),
    opt("sort", None, NoArg, Opt::Sort),
    opt("exact", Some('X'), NoArg, Opt::Exact),
    opt("ipv6", Some('6'), NoArg, Opt::Ipv6),
    opt("ops", Some('o'), NoArg, Opt::Ops),
    opt("pe", None, Required, Opt::Pe),
    opt("sched-flags", Some('b'), Required, Opt::SchedFlags),
    opt("mcast-group", None, Required, Opt::McastGroup),
    opt("mcast-port", None, Required, Opt::McastPort),
    opt("mcast-ttl", None, Required, Opt::McastTtl),
    opt("sync-maxlen", None, Required, Opt::SyncMaxlen),
    opt("tun-info", None, NoArg, Opt::TunInfo),
    opt("tun-type", None, Required, Opt::TunType),
    opt("tun-port", None, Required, Opt::TunPort),
    opt("tun-nocsum", None, NoArg, Opt::TunNoCsum),
    opt("tun-csum", None, NoArg, Opt::TunCsum),
    opt("tun-remcsum", None, NoArg, Opt::TunRemCsum),
    opt("agent", None, Required, Opt::Agent),
    opt("output", None, Required, Opt::Output),
    opt("dry-run", None, NoArg, Opt::DryRun),
    opt("replace", None, NoArg, Opt::Replace),
];

/// How many entries at the end of [`TABLE`] are ipvsctl's own.
const IPVSCTL_OPTIONS: usize = 4;

/// ipvsadm's commands, in the order of its option table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

const CMD_NAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

/// ipvsadm's option bits (`OPTC_*`), in the order of its option table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Optc {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    PersistenceEngine,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
}

const OPT_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// Legal command/option combinations, ipvsadm's `commands_v_options`: `+` required, `x`
/// illegal, `1` at most one of these, ` ` optional.
const COMMANDS_V_OPTIONS: [&[u8; 34]; 14] = [
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b" 11xxxxxxxxx11       xxxxxxx xxxxx",
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

const TUN_NAMES: [&str; 3] = ["ipip", "gue", "gre"];
/// The tunnel options checked per tunnel type: tun-port, tun-nocsum, tun-csum, tun-remcsum.
const TUN_OPTS: [Optc; 4] = [
    Optc::TunPort,
    Optc::TunNoCsum,
    Optc::TunCsum,
    Optc::TunRemCsum,
];
/// ipvsadm's `tunnel_types_v_options`, rows ipip, gue, gre.
const TUNNEL_TYPES_V_OPTIONS: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];

/// How a command line failed, which decides the message and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No command came first: ipvsadm prints a hint and exits 255.
    TryHelp { program: String },
    /// popt rejected a word: `WORD: reason`, exit 255.
    Popt(PoptError),
    /// One of ipvsadm's own checks: its message, exit 2.
    Invalid(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TryHelp { program } => write!(
                f,
                "Try `{program} -h' or '{program} --help' for more information."
            ),
            ParseError::Popt(e) => e.fmt(f),
            ParseError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl ParseError {
    /// ipvsadm's exit status for this failure: 2 for its own checks, 255 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ParseError::Invalid(_) => crate::exit::USAGE,
            ParseError::TryHelp { .. } | ParseError::Popt(_) => crate::exit::REFUSED,
        }
    }
}

fn invalid(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}

/// ipvsctl's own options, valid with any command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Globals {
    /// `--agent ADDRESS`.
    pub agent: Option<String>,
    /// `--output`/`-o text|json`.
    pub output: Option<OutputFormat>,
    /// `--dry-run`: `-R` prints its plan and changes nothing.
    pub dry_run: bool,
    /// `--replace`: `-R` input is the whole table, as `ipvsadm-restore` takes it.
    pub replace: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub globals: Globals,
    pub command: Command,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// ipvsadm's `ipvs_service_t` as the parser fills it.
#[derive(Debug, Clone)]
struct Svc {
    af: u16,
    protocol: Option<L4>,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    sched_name: String,
    flags: u32,
    timeout: u32,
    /// An IPv4 mask (host order) or an IPv6 prefix length, as ipvsadm shares the field.
    netmask: u32,
    pe_name: String,
}

/// ipvsadm's `ipvs_dest_t` as the parser fills it.
#[derive(Debug, Clone)]
struct Dest {
    af: u16,
    addr: Option<IpAddr>,
    port: u16,
    forward: Forward,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
    tun_port: u16,
    tun_flags: u16,
}

/// ipvsadm's `ipvs_daemon_t` as the parser fills it.
#[derive(Debug, Clone, Default)]
struct Daemon {
    mcast_ifn: String,
    syncid: u8,
    sync_maxlen: Option<u16>,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
}

/// ipvsadm's `struct ipvs_command_entry` plus its option and format bits.
#[derive(Debug)]
struct Entry {
    cmd: Cmd,
    svc: Svc,
    dest: Dest,
    daemon: Option<DaemonState>,
    sync: Daemon,
    timeouts: (u32, u32, u32),
    options: u64,
    format: ListFormat,
}

/// What `parse_service` found: `SERVICE_ADDR` and `SERVICE_PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parsed {
    None,
    Addr,
    AddrPort,
}

fn str_is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// ipvsadm's `parse_service`: `host[:port]`, `[ipv6]:port` or a bare IPv6 address.
fn parse_service(buf: &str, svc: &mut Svc, names: &dyn Resolve) -> Parsed {
    if str_is_digit(buf) {
        return Parsed::None;
    }
    let (host, bracket_port) = match buf.strip_prefix('[') {
        Some(inner) => {
            let Some((host, after)) = inner.split_once(']') else {
                return Parsed::None;
            };
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Parsed::None,
            }
        }
        None => (buf, None),
    };
    let port = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        svc.addr = Some(IpAddr::V6(v6));
        svc.af = AF_INET6;
        svc.netmask = 128;
        bracket_port
    } else {
        // ipvsadm looks for the port again from the right, so a bracketed IPv4 address
        // loses its port ("[1.2.3.4]:80" is 1.2.3.4 with no port).
        let (host, port) = match host.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host, None),
        };
        let Some(v4) = inet_aton(host).or_else(|| names.host_to_ipv4(host)) else {
            return Parsed::None;
        };
        svc.addr = Some(IpAddr::V4(v4));
        svc.af = AF_INET;
        port
    };
    let Some(port) = port else {
        return Parsed::Addr;
    };
    let number = string_to_number(port, 0, 65535).and_then(|n| u16::try_from(n).ok());
    let named = || svc.protocol.and_then(|p| names.service_to_port(port, p));
    match number.or_else(named) {
        Some(n) => {
            svc.port = n;
            Parsed::AddrPort
        }
        None => Parsed::None,
    }
}

/// ipvsadm's `parse_timeout`: absent means the default persistence timeout.
fn parse_timeout(arg: Option<&str>, min: i64, max: i64) -> Result<u32, ParseError> {
    let Some(arg) = arg else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(arg, min, max)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid(format!("invalid timeout value `{arg}' specified")))
}

/// ipvsadm's `parse_fwmark`: 1..=UINT_MAX.
fn parse_fwmark(arg: &str) -> Result<u32, ParseError> {
    strtol_full(arg)
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid(format!("invalid fwmark value `{arg}' specified")))
}

/// ipvsadm's `parse_sched_flags`, for scheduler `sched`.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, ParseError> {
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    let mut any = false;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let (bit, needs) = match flag {
            "flag-1" => (IP_VS_SVC_F_SCHED1, None),
            "flag-2" => (IP_VS_SVC_F_SCHED2, None),
            "flag-3" => (IP_VS_SVC_F_SCHED3, None),
            "sh-fallback" => (IP_VS_SVC_F_SCHED1, Some("sh")),
            "sh-port" => (IP_VS_SVC_F_SCHED2, Some("sh")),
            "mh-fallback" => (IP_VS_SVC_F_SCHED1, Some("mh")),
            "mh-port" => (IP_VS_SVC_F_SCHED2, Some("mh")),
            _ => return Err(invalid(format!("invalid scheduler flag `{flag}'"))),
        };
        if needs.is_some_and(|s| s != sched) {
            return Err(invalid(format!("incompatible scheduler flag `{flag}'")));
        }
        flags |= bit;
    }
    if !any {
        // ipvsadm dereferences a null token here; refuse the empty list instead.
        return Err(invalid("invalid scheduler flag `'"));
    }
    Ok(flags)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Entry {
    fn new(cmd: Cmd) -> Self {
        Entry {
            cmd,
            svc: Svc {
                af: 0,
                protocol: None,
                addr: None,
                port: 0,
                fwmark: 0,
                sched_name: String::new(),
                flags: 0,
                timeout: 0,
                netmask: 0xffff_ffff,
                pe_name: String::new(),
            },
            dest: Dest {
                af: 0,
                addr: None,
                port: 0,
                forward: Forward::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tun_type: TunnelType::Ipip,
                tun_port: 0,
                tun_flags: 0,
            },
            daemon: None,
            sync: Daemon::default(),
            timeouts: (0, 0, 0),
            options: 0,
            format: ListFormat::default(),
        }
    }

    fn has(&self, o: Optc) -> bool {
        self.options & (1u64 << o as u32) != 0
    }

    /// ipvsadm's `set_option`: each option at most once.
    fn set_option(&mut self, o: Optc) -> Result<(), ParseError> {
        if self.has(o) {
            return Err(invalid(format!(
                "multiple '{}' options specified",
                OPT_NAMES[o as usize]
            )));
        }
        self.options |= 1u64 << o as u32;
        Ok(())
    }

    /// One option after the command: ipvsadm's `parse_options` loop body.
    fn apply(
        &mut self,
        id: Opt,
        arg: Option<String>,
        word: &str,
        sched_flags: &mut Option<String>,
        names: &dyn Resolve,
    ) -> Result<(), ParseError> {
        let given = arg.as_deref();
        let arg = given.unwrap_or_default().to_string();
        let number = |min: i64, max: i64, what: &str| {
            string_to_number(&arg, min, max)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(format!("illegal {what} specified")))
        };
        // Values checked against a range that fits the narrower type.
        let narrow = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        let byte = |n: u32| u8::try_from(n).unwrap_or(u8::MAX);
        match id {
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                self.set_option(Optc::Service)?;
                self.svc.protocol = Some(match id {
                    Opt::Tcp => L4::Tcp,
                    Opt::Udp => L4::Udp,
                    _ => L4::Sctp,
                });
                if parse_service(&arg, &mut self.svc, names) == Parsed::None {
                    return Err(invalid("illegal virtual server address[:port] specified"));
                }
            }
            Opt::Fwmark => {
                self.set_option(Optc::Service)?;
                self.svc.af = AF_INET;
                self.svc.protocol = Some(L4::Tcp);
                self.svc.fwmark = parse_fwmark(&arg)?;
            }
            Opt::Scheduler => {
                self.set_option(Optc::Scheduler)?;
                self.svc.sched_name = truncate(&arg, SCHEDNAME_KEEP);
            }
            Opt::Persistent => {
                self.set_option(Optc::Persistent)?;
                self.svc.flags |= IP_VS_SVC_F_PERSISTENT;
                self.svc.timeout = parse_timeout(given, 1, MAX_TIMEOUT)?;
            }
            Opt::Netmask => {
                self.set_option(Optc::Netmask)?;
                if self.svc.af != AF_INET6 {
                    let mask = inet_aton(&arg).or_else(|| names.host_to_ipv4(&arg));
                    self.svc.netmask = mask.map(u32::from).ok_or_else(|| {
                        invalid("illegal virtual server persistent mask specified")
                    })?;
                } else {
                    let prefix = atoi(&arg);
                    if !(1..=128).contains(&prefix) {
                        return Err(invalid("illegal ipv6 netmask specified"));
                    }
                    self.svc.netmask = u32::try_from(prefix).unwrap_or(128);
                }
            }
            Opt::RealServer => {
                self.set_option(Optc::Server)?;
                let mut target = self.svc.clone();
                let parsed = parse_service(&arg, &mut target, names);
                self.dest.af = target.af;
                self.dest.addr = target.addr;
                self.dest.port = target.port;
                match parsed {
                    Parsed::None => {
                        return Err(invalid("illegal real server address[:port] specified"));
                    }
                    Parsed::Addr => self.dest.port = self.svc.port,
                    Parsed::AddrPort => {}
                }
            }
            Opt::Ipip | Opt::Gatewaying | Opt::Masquerading => {
                self.set_option(Optc::Forward)?;
                self.dest.forward = match id {
                    Opt::Ipip => Forward::Tunnel,
                    Opt::Gatewaying => Forward::Route,
                    _ => Forward::Masq,
                };
            }
            Opt::Weight => {
                self.set_option(Optc::Weight)?;
                self.dest.weight = number(0, 65535, "weight")?;
            }
            Opt::UThreshold => {
                self.set_option(Optc::UThreshold)?;
                self.dest.u_threshold = number(0, i64::from(i32::MAX), "u_threshold")?;
            }
            Opt::LThreshold => {
                self.set_option(Optc::LThreshold)?;
                self.dest.l_threshold = number(0, i64::from(i32::MAX), "l_threshold")?;
            }
            Opt::Connection => self.set_option(Optc::Connection)?,
            Opt::Numeric => {
                self.set_option(Optc::Numeric)?;
                self.format.numeric = true;
            }
            Opt::McastInterface => {
                self.set_option(Optc::Mcast)?;
                self.sync.mcast_ifn = truncate(&arg, IFNAME_KEEP);
            }
            Opt::SyncId => {
                self.set_option(Optc::SyncId)?;
                self.sync.syncid = byte(number(0, 255, "syncid")?);
            }
            Opt::Timeout => self.set_option(Optc::Timeout)?,
            Opt::Daemon => self.set_option(Optc::Daemon)?,
            Opt::Stats => self.set_option(Optc::Stats)?,
            Opt::Rate => self.set_option(Optc::Rate)?,
            Opt::Thresholds => self.set_option(Optc::Thresholds)?,
            Opt::PersistentConn => self.set_option(Optc::PersistentConn)?,
            Opt::NoSort => {
                self.set_option(Optc::NoSort)?;
                self.format.nosort = true;
            }
            Opt::Sort => {}
            Opt::Exact => {
                self.set_option(Optc::Exact)?;
                self.format.exact = true;
            }
            Opt::Ipv6 => {
                if self.svc.fwmark == 0 {
                    // ipvsadm's message carries its own newline before fail() adds one.
                    return Err(invalid("-6 used before -f\n"));
                }
                self.svc.af = AF_INET6;
                self.svc.netmask = 128;
            }
            Opt::Ops => {
                self.set_option(Optc::OnePacket)?;
                self.svc.flags |= IP_VS_SVC_F_ONEPACKET;
            }
            Opt::Pe => {
                self.set_option(Optc::PersistenceEngine)?;
                self.svc.pe_name = truncate(&arg, PENAME_KEEP);
            }
            Opt::SchedFlags => {
                self.set_option(Optc::SchedFlags)?;
                *sched_flags = Some(truncate(&arg, 127));
            }
            Opt::McastGroup => {
                self.set_option(Optc::McastGroup)?;
                let group = if arg.contains(':') {
                    arg.parse::<Ipv6Addr>()
                        .ok()
                        .filter(Ipv6Addr::is_multicast)
                        .map(IpAddr::V6)
                        .ok_or_else(|| invalid(format!("invalid IPv6 mcast-group `{arg}'")))?
                } else {
                    arg.parse::<Ipv4Addr>()
                        .ok()
                        .filter(Ipv4Addr::is_multicast)
                        .map(IpAddr::V4)
                        .ok_or_else(|| invalid(format!("invalid IPv4 mcast-group `{arg}'")))?
                };
                self.sync.mcast_group = Some(group);
            }
            Opt::McastPort => {
                self.set_option(Optc::McastPort)?;
                self.sync.mcast_port = Some(narrow(number(1, 65535, "mcast-port")?));
            }
            Opt::McastTtl => {
                self.set_option(Optc::McastTtl)?;
                self.sync.mcast_ttl = Some(byte(number(1, 255, "mcast-ttl")?));
            }
            Opt::SyncMaxlen => {
                self.set_option(Optc::SyncMaxlen)?;
                self.sync.sync_maxlen = Some(narrow(number(1, 65535 - 20 - 8, "sync-maxlen")?));
            }
            Opt::TunInfo => self.set_option(Optc::TunInfo)?,
            Opt::TunType => {
                self.set_option(Optc::TunType)?;
                self.dest.tun_type = match arg.as_str() {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(invalid("illegal tunnel type specified")),
                };
            }
            Opt::TunPort => {
                self.set_option(Optc::TunPort)?;
                self.dest.tun_port = u16::try_from(number(1, 65535, "tunnel port")?).unwrap_or(0);
            }
            Opt::TunNoCsum => self.set_option(Optc::TunNoCsum)?,
            Opt::TunCsum => {
                self.set_option(Optc::TunCsum)?;
                self.dest.tun_flags |= IP_VS_TUNNEL_ENCAP_FLAG_CSUM;
            }
            Opt::TunRemCsum => {
                self.set_option(Optc::TunRemCsum)?;
                self.dest.tun_flags |= IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM;
            }
            Opt::AddService
            | Opt::EditService
            | Opt::DeleteService
            | Opt::Clear
            | Opt::List
            | Opt::Zero
            | Opt::AddServer
            | Opt::EditServer
            | Opt::DeleteServer
            | Opt::Set
            | Opt::Help
            | Opt::Version
            | Opt::Restore
            | Opt::Save
            | Opt::StartDaemon
            | Opt::StopDaemon
            | Opt::Agent
            | Opt::Output
            | Opt::DryRun
            | Opt::Replace => return Err(invalid(format!("invalid option `{word}'"))),
        }
        Ok(())
    }

    /// ipvsadm's `generic_opt_check`.
    fn generic_opt_check(&self) -> Result<(), ParseError> {
        let i = self.cmd as usize;
        let row = COMMANDS_V_OPTIONS[i];
        let mut first_exclusive: Option<usize> = None;
        for (j, rule) in row.iter().enumerate() {
            let set = self.options & (1u64 << j) != 0;
            match (set, rule) {
                (false, b'+') => {
                    return Err(invalid(format!(
                        "You need to supply the '{}' option for the '{}' command",
                        OPT_NAMES[j], CMD_NAMES[i]
                    )));
                }
                (true, b'x') => {
                    return Err(invalid(format!(
                        "Illegal '{}' option with the '{}' command",
                        OPT_NAMES[j], CMD_NAMES[i]
                    )));
                }
                (true, b'1') => match first_exclusive {
                    None => first_exclusive = Some(j),
                    Some(last) => {
                        return Err(invalid(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            OPT_NAMES[j], OPT_NAMES[last], CMD_NAMES[i]
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// ipvsadm's `tunnel_opt_check`.
    fn tunnel_opt_check(&self) -> Result<(), ParseError> {
        let i = self.dest.tun_type as usize;
        let mut first_exclusive: Option<usize> = None;
        for (j, optc) in TUN_OPTS.iter().enumerate() {
            let k = *optc as usize;
            let rule = TUNNEL_TYPES_V_OPTIONS[i][j];
            match (self.has(*optc), rule) {
                (false, b'+') => {
                    return Err(invalid(format!(
                        "You need to supply the '{}' option for the '{}' tunnel type",
                        OPT_NAMES[k], TUN_NAMES[i]
                    )));
                }
                (true, b'x') => {
                    return Err(invalid(format!(
                        "Illegal '{}' option with the '{}' tunnel type",
                        OPT_NAMES[k], TUN_NAMES[i]
                    )));
                }
                (true, b'1') => match first_exclusive {
                    None => first_exclusive = Some(k),
                    Some(last) => {
                        return Err(invalid(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                            OPT_NAMES[k], OPT_NAMES[last], TUN_NAMES[i]
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// ipvsadm's `process_options` checks after parsing.
    fn check(&mut self) -> Result<(), ParseError> {
        self.generic_opt_check()?;
        if matches!(self.cmd, Cmd::Add | Cmd::Edit) {
            if self.svc.fwmark == 0
                && self.svc.port == 0
                && self.svc.flags & IP_VS_SVC_F_PERSISTENT == 0
            {
                return Err(invalid("Zero port specified for non-persistent service"));
            }
            if self.svc.flags & IP_VS_SVC_F_ONEPACKET != 0
                && self.svc.fwmark == 0
                && self.svc.protocol != Some(L4::Udp)
            {
                return Err(invalid(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
            if self.svc.sched_name.is_empty() {
                self.svc.sched_name = DEFAULT_SCHEDULER.to_string();
            }
        }
        if matches!(self.cmd, Cmd::AddDest | Cmd::EditDest) {
            let fwd = self.dest.forward;
            if self.svc.fwmark == 0 && matches!(fwd, Forward::Tunnel | Forward::Route) {
                self.dest.port = self.svc.port;
            }
            if self.dest.af != self.svc.af && fwd != Forward::Tunnel {
                return Err(invalid(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            let tunnel_options = [
                Optc::TunType,
                Optc::TunPort,
                Optc::TunNoCsum,
                Optc::TunCsum,
                Optc::TunRemCsum,
            ];
            if tunnel_options.iter().any(|o| self.has(*o)) && fwd != Forward::Tunnel {
                return Err(invalid("Tunnel options conflict with forward method"));
            }
            self.tunnel_opt_check()?;
        }
        if self.cmd == Cmd::List {
            let other =
                self.has(Optc::Connection) || self.has(Optc::Timeout) || self.has(Optc::Daemon);
            let tables =
                self.has(Optc::Stats) || self.has(Optc::Rate) || self.has(Optc::Thresholds);
            let settings = self.has(Optc::Timeout) || self.has(Optc::Daemon);
            if (other && tables) || (settings && self.has(Optc::PersistentConn)) {
                return Err(invalid("options conflicts in the list command"));
            }
        }
        Ok(())
    }

    fn service_key(&self) -> Result<ServiceKey, ParseError> {
        if self.svc.fwmark != 0 {
            return Ok(ServiceKey::Fwmark {
                mark: self.svc.fwmark,
                ipv6: self.svc.af == AF_INET6,
            });
        }
        match (self.svc.protocol, self.svc.addr) {
            (Some(protocol), Some(addr)) => Ok(ServiceKey::Addr {
                protocol,
                addr,
                port: self.svc.port,
            }),
            _ => Err(invalid("illegal virtual server address[:port] specified")),
        }
    }

    fn service_spec(&self) -> Result<ServiceSpec, ParseError> {
        let key = self.service_key()?;
        let netmask = if self.svc.af == AF_INET6 {
            (self.svc.netmask != 128)
                .then(|| Netmask::V6Prefix(u8::try_from(self.svc.netmask).unwrap_or(128)))
        } else {
            (self.svc.netmask != 0xffff_ffff).then_some(Netmask::V4(self.svc.netmask))
        };
        Ok(ServiceSpec {
            key,
            scheduler: self.svc.sched_name.clone(),
            persistent: (self.svc.flags & IP_VS_SVC_F_PERSISTENT != 0).then_some(self.svc.timeout),
            netmask,
            one_packet: self.svc.flags & IP_VS_SVC_F_ONEPACKET != 0,
            sched_flags: SchedFlags {
                flag_1: self.svc.flags & IP_VS_SVC_F_SCHED1 != 0,
                flag_2: self.svc.flags & IP_VS_SVC_F_SCHED2 != 0,
                flag_3: self.svc.flags & IP_VS_SVC_F_SCHED3 != 0,
            },
            persistence_engine: (!self.svc.pe_name.is_empty()).then(|| self.svc.pe_name.clone()),
        })
    }

    fn dest_addr(&self) -> Result<IpAddr, ParseError> {
        self.dest
            .addr
            .ok_or_else(|| invalid("illegal real server address[:port] specified"))
    }

    fn dest_spec(&self) -> Result<DestSpec, ParseError> {
        let tunnel = (self.dest.forward == Forward::Tunnel).then(|| Tunnel {
            kind: self.dest.tun_type,
            port: self.has(Optc::TunPort).then_some(self.dest.tun_port),
            checksum: if self.dest.tun_flags & IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM != 0 {
                TunnelChecksum::RemCsum
            } else if self.dest.tun_flags & IP_VS_TUNNEL_ENCAP_FLAG_CSUM != 0 {
                TunnelChecksum::Csum
            } else {
                TunnelChecksum::None
            },
        });
        Ok(DestSpec {
            addr: self.dest_addr()?,
            port: self.dest.port,
            forward: self.dest.forward,
            tunnel,
            weight: self.dest.weight,
            upper_threshold: self.dest.u_threshold,
            lower_threshold: self.dest.l_threshold,
        })
    }

    fn list_view(&self) -> ListView {
        if self.has(Optc::Stats) {
            ListView::Stats
        } else if self.has(Optc::Rate) {
            ListView::Rate
        } else if self.has(Optc::Thresholds) {
            ListView::Thresholds
        } else if self.has(Optc::PersistentConn) {
            ListView::PersistentConn
        } else if self.has(Optc::TunInfo) {
            ListView::TunInfo
        } else {
            ListView::Plain
        }
    }

    fn into_command(mut self) -> Result<Command, ParseError> {
        self.format.view = self.list_view();
        Ok(match self.cmd {
            Cmd::Add => Command::AddService(self.service_spec()?),
            Cmd::Edit => Command::EditService(self.service_spec()?),
            Cmd::Del => Command::DeleteService(self.service_key()?),
            Cmd::Flush => Command::Flush,
            Cmd::List if self.has(Optc::Connection) => Command::ListOther(ListOther::Connections {
                numeric: self.format.numeric,
                persistent: self.has(Optc::PersistentConn),
            }),
            Cmd::List if self.has(Optc::Service) => Command::List {
                service: Some(self.service_key()?),
                format: self.format,
            },
            Cmd::List if self.has(Optc::Timeout) => Command::ListOther(ListOther::Timeout),
            Cmd::List if self.has(Optc::Daemon) => Command::ListOther(ListOther::Daemon),
            Cmd::List => Command::List {
                service: None,
                format: self.format,
            },
            Cmd::AddDest => Command::AddServer(self.service_key()?, self.dest_spec()?),
            Cmd::EditDest => Command::EditServer(self.service_key()?, self.dest_spec()?),
            Cmd::DelDest => {
                Command::DeleteServer(self.service_key()?, self.dest_addr()?, self.dest.port)
            }
            Cmd::Zero => Command::Zero(if self.has(Optc::Service) {
                Some(self.service_key()?)
            } else {
                None
            }),
            Cmd::Save => Command::Save {
                numeric: self.format.numeric,
            },
            Cmd::Restore => Command::Restore,
            Cmd::Timeout => Command::SetTimeout {
                tcp: self.timeouts.0,
                tcpfin: self.timeouts.1,
                udp: self.timeouts.2,
            },
            Cmd::StartDaemon => {
                let sync = self.sync;
                Command::StartDaemon(DaemonSpec {
                    state: self.daemon.unwrap_or(DaemonState::Master),
                    interface: if sync.mcast_ifn.is_empty() {
                        DEFAULT_MCAST_INTERFACE.to_string()
                    } else {
                        sync.mcast_ifn
                    },
                    sync_id: sync.syncid,
                    sync_maxlen: sync.sync_maxlen,
                    group: sync.mcast_group,
                    port: sync.mcast_port,
                    ttl: sync.mcast_ttl,
                })
            }
            Cmd::StopDaemon => Command::StopDaemon(self.daemon.unwrap_or(DaemonState::Master)),
        })
    }
}

fn set_global(globals: &mut Globals, id: Opt, arg: Option<String>) -> Result<bool, ParseError> {
    match id {
        Opt::Agent => globals.agent = arg,
        Opt::Output => {
            let value = arg.unwrap_or_default();
            globals.output =
                Some(value.parse().map_err(|_| {
                    invalid(format!("invalid output format `{value}' (text or json)"))
                })?);
        }
        Opt::DryRun => globals.dry_run = true,
        Opt::Replace => globals.replace = true,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parses an ipvsctl command line (`args` without the program name): ipvsadm's grammar plus
/// ipvsctl's own options. `program` is named in the usage hint, as ipvsadm names `argv[0]`;
/// `names` resolves host and service names.
pub fn parse(
    program: &str,
    args: &[String],
    names: &dyn Resolve,
) -> Result<Invocation, ParseError> {
    let popt = Popt::new(TABLE, args).with_value_short('o', Opt::Output, &["json", "text"]);
    parse_with(program, popt, names)
}

/// Parses one line of `-R` input with ipvsadm's grammar alone: ipvsctl's options are unknown
/// there, as they are to ipvsadm, and `-o` is always `--ops`.
pub fn parse_line(
    program: &str,
    args: &[String],
    names: &dyn Resolve,
) -> Result<Command, ParseError> {
    let ipvsadm = TABLE.get(..TABLE.len() - IPVSCTL_OPTIONS).unwrap_or(TABLE);
    parse_with(program, Popt::new(ipvsadm, args), names).map(|inv| inv.command)
}

fn parse_with(
    program: &str,
    mut popt: Popt<'_, Opt>,
    names: &dyn Resolve,
) -> Result<Invocation, ParseError> {
    let try_help = || ParseError::TryHelp {
        program: program.to_string(),
    };
    let mut globals = Globals::default();
    let mut leftovers: Vec<String> = Vec::new();

    // The first option must be the command; ipvsctl's own options may come before it.
    let (first, first_arg) = loop {
        match popt.next_token() {
            None if leftovers.is_empty() => {
                // No command at all: ipvsadm lists the table.
                return Ok(Invocation {
                    globals,
                    command: Command::List {
                        service: None,
                        format: ListFormat::default(),
                    },
                });
            }
            None | Some(Err(_)) => return Err(try_help()),
            Some(Ok(Token::Arg(a))) => leftovers.push(a),
            Some(Ok(Token::Opt { id, arg, .. })) => {
                if !set_global(&mut globals, id, arg.clone())? {
                    break (id, arg);
                }
            }
        }
    };
    let daemon_state = |arg: Option<String>, msg: &str| match arg.as_deref() {
        Some("master") => Ok(DaemonState::Master),
        Some("backup") => Ok(DaemonState::Backup),
        _ => Err(invalid(msg)),
    };
    let mut entry = Entry::new(match first {
        Opt::AddService => Cmd::Add,
        Opt::EditService => Cmd::Edit,
        Opt::DeleteService => Cmd::Del,
        Opt::AddServer => Cmd::AddDest,
        Opt::EditServer => Cmd::EditDest,
        Opt::DeleteServer => Cmd::DelDest,
        Opt::Clear => Cmd::Flush,
        Opt::List => Cmd::List,
        Opt::Zero => Cmd::Zero,
        Opt::Set => Cmd::Timeout,
        Opt::Restore => Cmd::Restore,
        Opt::Save => Cmd::Save,
        Opt::StartDaemon => Cmd::StartDaemon,
        Opt::StopDaemon => Cmd::StopDaemon,
        Opt::Help => {
            return Ok(Invocation {
                globals,
                command: Command::Help,
            });
        }
        Opt::Version => {
            return Ok(Invocation {
                globals,
                command: Command::Version,
            });
        }
        _ => return Err(try_help()),
    });
    match first {
        Opt::StartDaemon => {
            entry.daemon = Some(daemon_state(
                first_arg,
                "illegal start-daemon parameter specified",
            )?);
        }
        Opt::StopDaemon => {
            entry.daemon = Some(daemon_state(first_arg, "illegal start_daemon specified")?);
        }
        _ => {}
    }

    let mut sched_flags: Option<String> = None;
    while let Some(token) = popt.next_token() {
        match token.map_err(ParseError::Popt)? {
            Token::Arg(a) => leftovers.push(a),
            Token::Opt { id, arg, word } => {
                if !set_global(&mut globals, id, arg.clone())? {
                    entry.apply(id, arg, &word, &mut sched_flags, names)?;
                }
            }
        }
    }

    let mut leftovers = leftovers.into_iter();
    if entry.cmd == Cmd::Timeout {
        let (Some(tcp), Some(tcpfin), Some(udp)) =
            (leftovers.next(), leftovers.next(), leftovers.next())
        else {
            return Err(invalid("--set option requires 3 timeout values"));
        };
        entry.timeouts = (
            parse_timeout(Some(&tcp), 0, MAX_TIMEOUT)?,
            parse_timeout(Some(&tcpfin), 0, MAX_TIMEOUT)?,
            parse_timeout(Some(&udp), 0, MAX_TIMEOUT)?,
        );
    }
    if let Some(extra) = leftovers.next() {
        return Err(invalid(format!("unexpected argument {extra}")));
    }
    if let Some(arg) = sched_flags {
        entry.svc.flags &= !(IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2 | IP_VS_SVC_F_SCHED3);
        entry.svc.flags |= parse_sched_flags(&entry.svc.sched_name, &arg)?;
    }
    entry.check()?;
    Ok(Invocation {
        globals,
        command: entry.into_command()?,
    })
}

#[cfg(test)]
mod tests;
