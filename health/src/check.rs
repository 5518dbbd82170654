//! What a check is, once validated. Built by the agent from the declaration; every value here
//! is already in range (`Check::validate` says which field is not).

use std::net::IpAddr;
use std::time::Duration;

/// One check of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub kind: Kind,
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// How long one probe may take; below `interval`.
    pub timeout: Duration,
    /// Agreeing successes that bring a down server up.
    pub rise: u32,
    /// Agreeing failures that take an up server down.
    pub fall: u32,
    /// The state before the first verdict.
    pub initial: State,
    /// Each probe starts up to this much later than `interval` says, at random, so that
    /// thousands of checks declared together do not probe together.
    pub jitter: Duration,
    /// The address to probe, when not the real server's (DR/TUN, a side-car port).
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    /// What a down server's weight becomes.
    pub on_failure: OnFailure,
}

/// Defaults a declaration leaves out: 5 s / 2 s, rise 2, fall 3, up at start.
impl Default for Check {
    fn default() -> Self {
        Check {
            kind: Kind::Tcp,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            initial: State::Up,
            jitter: Duration::ZERO,
            connect_ip: None,
            connect_port: None,
            on_failure: OnFailure::Quiesce,
        }
    }
}

/// A server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Up,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
        }
    }
}

/// What happens to a real server that goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Weight 0: no new connections, existing ones finish.
    #[default]
    Quiesce,
    /// Taken out of the table until it is up again.
    Remove,
}

/// How to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A TCP connect.
    Tcp,
    /// An HTTP/1.1 request, over TLS when `tls` is set.
    Http(Http),
    /// A datagram, and the reply it should get.
    Udp(Udp),
    /// A DNS query over UDP.
    Dns(Dns),
    /// `grpc.health.v1.Health/Check`.
    Grpc(Grpc),
    /// A command: exit 0 up, 1 down, 2..=255 up with weight `code - 2` (keepalived's
    /// `misc_dynamic`).
    Exec(Exec),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Http(h) if h.tls.is_some() => "https",
            Kind::Http(_) => "http",
            Kind::Udp(_) => "udp",
            Kind::Dns(_) => "dns",
            Kind::Grpc(_) => "grpc",
            Kind::Exec(_) => "exec",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// `GET` unless given.
    pub method: String,
    /// Starts with `/`.
    pub path: String,
    /// The `Host` header; the probed address when `None`.
    pub host: Option<String>,
    /// Status codes that mean up, as inclusive ranges; `[200..=399]` unless given.
    pub expect: Vec<(u16, u16)>,
    /// What the body must contain.
    pub body: Option<BodyMatch>,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyMatch {
    Contains(String),
    /// A `regex` crate pattern, already known to compile.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// The server name to send and verify; the `Host` (or the address) when `None`.
    pub sni: Option<String>,
    /// Accept any certificate. Off unless asked for.
    pub skip_verify: bool,
    /// PEM file of the CAs to trust instead of the built-in web roots.
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    /// The datagram to send (may be empty).
    pub send: Vec<u8>,
    /// Bytes the reply must contain; `None`: any reply is up, and silence too unless the
    /// port is unreachable (keepalived's `UDP_CHECK` without `require_reply`).
    pub expect: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// The name to ask for.
    pub name: String,
    pub qtype: DnsType,
    /// Addresses one of which the answer must hold; empty: any NOERROR answer with a record.
    pub expect: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsType {
    A,
    Aaaa,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grpc {
    /// The service name asked about; "" is the server as a whole.
    pub service: String,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Program and arguments, run without a shell; not empty. The probed address is in
    /// `$IPVS_CHECK_IP` and `$IPVS_CHECK_PORT`.
    pub command: Vec<String>,
}
