//! The node file's shape. Keys are kebab-case, unknown keys are refused, and everything but
//! an object's identity (a link's name, a service's key, a server's address, an attachment's
//! policy) may be left out; what is left out takes ipvsadm's default, or the agent's.
//!
//! Values stay as written here; [`super::decode`] checks them and [`super::encode`] fills
//! them from a spec, leaving defaults out.

use serde::{Deserialize, Serialize};

use super::scalar::{OneOrMany, Params, Scalar};

/// A closed set of words (`drift: enforce`), read from strings only so that a value of the
/// wrong type is reported with the words expected.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            pub fn word(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.word())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Word;
                impl serde::de::Visitor<'_> for Word {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(&expected_words($name::WORDS))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        match v {
                            $($word => Ok($name::$variant),)+
                            _ => Err(E::unknown_variant(v, $name::WORDS)),
                        }
                    }
                }
                d.deserialize_str(Word)
            }
        }
    };
}

/// serde's way of listing expected words: "`a` or `b`", "one of `a`, `b`, `c`".
fn expected_words(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.as_slice() {
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

/// A whole node file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NodeFile {
    /// What the agent does about drift; absent: its default (`--drift`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftWord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentEntry>,
}

words! {
    /// `drift:`.
    DriftWord { Report = "report", Enforce = "enforce" }
}

/// A dummy link and the addresses it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LinkEntry {
    pub name: String,
    /// `ADDR/LEN`, or a bare address for a host route (/32, /128).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// A virtual service: exactly one of `tcp`, `udp`, `sctp` or `fwmark` is its key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServiceEntry {
    /// `ADDR:PORT` or `[IPv6]:PORT` (ipvsadm -t).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// ipvsadm -u.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<String>,
    /// ipvsadm --sctp-service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<String>,
    /// ipvsadm -f.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Of a fwmark service: `inet` (default) or `inet6` (ipvsadm -6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<FamilyWord>,
    /// ipvsadm -s; `wlc` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// ipvsadm -p: seconds, or `true` for ipvsadm's 360; absent or `false`: not persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<Scalar>,
    /// ipvsadm -M: a dotted mask for IPv4 services, a prefix length for IPv6 ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Scalar>,
    /// ipvsadm -o.
    #[serde(default, skip_serializing_if = "is_false")]
    pub one_packet: bool,
    /// ipvsadm -b, one flag per item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sched_flags: Vec<String>,
    /// ipvsadm --pe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<String>,
    /// The health check of each real server without a check of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckEntry>,
    /// Added while the service is below its quorum; needs `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryEntry>,
    /// The least healthy weight; 1 when absent; needs `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerEntry>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

words! {
    /// A fwmark service's `family:`.
    FamilyWord { Inet = "inet", Inet6 = "inet6" }
}

/// A real server (ipvsadm -a).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerEntry {
    /// `ADDR:PORT`, `[IPv6]:PORT`, or a bare address for the service's port (ipvsadm -r).
    pub address: String,
    /// `route` when absent (ipvsadm -g).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardWord>,
    /// ipvsadm -w; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// ipvsadm -x; 0 (none) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<u32>,
    /// ipvsadm -y; 0 (none) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<u32>,
    /// Encapsulation of a `tunnel` server; plain IP-in-IP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelEntry>,
    /// This server's health check, instead of the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Box<CheckEntry>>,
}

/// A service's `sorry-server`: a real server entry, or just its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SorryEntry {
    Address(String),
    Server(ServerEntry),
}

impl Serialize for SorryEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SorryEntry::Address(a) => s.serialize_str(a),
            SorryEntry::Server(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SorryEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Sorry;
        impl<'de> serde::de::Visitor<'de> for Sorry {
            type Value = SorryEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address or a server entry ({address, forward, weight, ...})")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SorryEntry, E> {
                Ok(SorryEntry::Address(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SorryEntry, A::Error> {
                ServerEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SorryEntry::Server)
            }
        }
        d.deserialize_any(Sorry)
    }
}

/// A health check (docs/health.md): exactly one kind key and the common settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckEntry {
    /// `{}`: a TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpEntry>,
    /// `http` over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecEntry>,
    /// Durations as an attachment's `interval`: `500ms`, `2s`, `1m`, or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<HealthWord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FailureWord>,
}

/// `tcp: {}`: a kind without settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

words! {
    /// A check's `initial:`.
    HealthWord { Up = "up", Down = "down" }
}

words! {
    /// A check's `on-failure:`.
    FailureWord { Quiesce = "quiesce", Remove = "remove" }
}

/// `http:` / `https:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Status codes: `200`, `"200-299"`, or a list of them.
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub expect: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_regex: Option<String>,
    /// `https` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// `udp:`: text sent, text the reply must contain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UdpEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// `dns:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DnsEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<DnsWord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<String>,
}

words! {
    /// `dns: {type: ...}`.
    DnsWord { A = "A", Aaaa = "AAAA" }
}

/// `grpc:`: `sni`, `skip-verify` and `ca-file` go with `tls: true`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GrpcEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// `exec: {command: [PROGRAM, ARG, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExecEntry {
    #[serde(default)]
    pub command: Vec<String>,
}

words! {
    /// `forward:`: masq is ipvsadm -m, route -g, tunnel -i; local is the node itself.
    ForwardWord { Masq = "masq", Route = "route", Tunnel = "tunnel", Local = "local" }
}

/// ipvsadm --tun-type, --tun-port and --tun-nocsum/--tun-csum/--tun-remcsum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TunnelEntry {
    #[serde(rename = "type")]
    pub kind: TunnelWord,
    /// The UDP port, GUE only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `none` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumWord>,
}

words! {
    /// `tunnel: {type: ...}` (ipvsadm --tun-type).
    TunnelWord { Ipip = "ipip", Gue = "gue", Gre = "gre" }
}

words! {
    /// `tunnel: {checksum: ...}` (ipvsadm --tun-nocsum, --tun-csum, --tun-remcsum).
    ChecksumWord { None = "none", Csum = "csum", Remcsum = "remcsum" }
}

/// A policy attached to services of this file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AttachmentEntry {
    /// An uploaded policy's name or hash.
    pub policy: String,
    /// Service references: `tcp:ADDR:PORT`, `udp:...`, `sctp:...`, `fwmark:N`, `fwmark6:N`.
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
    /// `500ms`, `2s`, `1m`, or a number of seconds; the agent's 2 s when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Scalar>,
    /// `enforce` (the default) or `dry-run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ModeWord>,
    /// Consecutive failures that quarantine it; the agent's default (3) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_after: Option<u32>,
}

words! {
    /// An attachment's `mode:`.
    ModeWord { Enforce = "enforce", DryRun = "dry-run" }
}
