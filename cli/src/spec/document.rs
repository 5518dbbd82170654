//! The node file's shape. Keys are kebab-case, unknown keys are refused, and everything but
//! an object's identity (a link's name, a service's key, a server's address, an attachment's
//! policy) may be left out; what is left out takes ipvsadm's default, or the agent's.
//!
//! Values stay as written here; [`super::decode`] checks them and [`super::encode`] fills
//! them from a spec, leaving defaults out.

use serde::{Deserialize, Serialize};

use super::scalar::{Params, Scalar};

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
