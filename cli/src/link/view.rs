//! Links and addresses as iproute2 shows them: `ip link show`-like text (without the fields
//! the agent does not report: qdisc, mode, group, qlen, lifetimes) and `ip -j`-like JSON.

use std::fmt::Write;
use std::net::IpAddr;

use ipvs_proto::v1 as pb;
use serde::Serialize;

use crate::ipvsadm::format::inet_ntop6;
use crate::ipvsadm::view::{ViewError, ip_from_pb};

/// `IFF_*` bits in the order iproute2's `print_link_flags` prints them.
const IFF_NAMES: &[(u32, &str)] = &[
    (0x8, "LOOPBACK"),
    (0x2, "BROADCAST"),
    (0x10, "POINTOPOINT"),
    (0x1000, "MULTICAST"),
    (0x80, "NOARP"),
    (0x200, "ALLMULTI"),
    (0x100, "PROMISC"),
    (0x400, "MASTER"),
    (0x800, "SLAVE"),
    (0x4, "DEBUG"),
    (0x8000, "DYNAMIC"),
    (0x4000, "AUTOMEDIA"),
    (0x2000, "PORTSEL"),
    (0x20, "NOTRAILERS"),
    (0x1, "UP"),
    (0x10000, "LOWER_UP"),
    (0x20000, "DORMANT"),
    (0x40000, "ECHO"),
];
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x10000;

/// iproute2's flag list: `NO-CARRIER` first when up without carrier, `RUNNING` left out,
/// unknown bits in hex.
pub fn flag_names(flags: u32) -> Vec<String> {
    let mut names = Vec::new();
    if flags & IFF_UP != 0 && flags & IFF_RUNNING == 0 {
        names.push("NO-CARRIER".to_string());
    }
    let mut rest = flags & !IFF_RUNNING;
    for (bit, name) in IFF_NAMES {
        if rest & bit != 0 {
            rest &= !bit;
            names.push(name.to_string());
        }
    }
    if rest != 0 {
        names.push(format!("{rest:x}"));
    }
    names
}

/// An address on a link, as `ip -j addr` names the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrInfo {
    /// `inet` or `inet6`.
    pub family: &'static str,
    pub local: IpAddr,
    pub prefixlen: u32,
    pub scope: String,
    /// The link's name (IPv4 only, as iproute2 prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A link, as `ip -j link` names the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    pub ifindex: u32,
    pub ifname: String,
    pub flags: Vec<String>,
    pub mtu: u32,
    pub operstate: String,
    pub link_type: &'static str,
    /// The hardware address, `null` when there is none.
    pub address: Option<String>,
    /// The link kind (`dummy`, `veth`, ...), `null` when the kernel reports none.
    pub kind: Option<String>,
    /// Set by `addr show` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr_info: Option<Vec<AddrInfo>>,
}

fn mac(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

impl LinkView {
    pub fn from_pb(l: &pb::Link) -> Self {
        // Older agents may leave the raw flags out; rebuild what the booleans say.
        let mut flags = l.flags;
        if l.up {
            flags |= IFF_UP;
        }
        if l.lower_up {
            flags |= IFF_LOWER_UP | IFF_RUNNING;
        }
        let link_type = if flags & IFF_LOOPBACK != 0 {
            "loopback"
        } else if l.mac.len() == 6 {
            "ether"
        } else {
            "none"
        };
        LinkView {
            ifindex: l.index,
            ifname: l.name.clone(),
            flags: flag_names(flags),
            mtu: l.mtu,
            operstate: if l.oper_state.is_empty() {
                "UNKNOWN".to_string()
            } else {
                l.oper_state.clone()
            },
            link_type,
            address: mac(&l.mac),
            kind: (!l.kind.is_empty()).then(|| l.kind.clone()),
            addr_info: None,
        }
    }
}

impl AddrInfo {
    pub fn from_pb(a: &pb::InterfaceAddress) -> Result<Self, ViewError> {
        let local = ip_from_pb(&a.address)?.ok_or(ViewError::MissingAddress)?;
        Ok(AddrInfo {
            family: if local.is_ipv4() { "inet" } else { "inet6" },
            local,
            prefixlen: a.prefix_length,
            scope: if a.scope.is_empty() {
                "global".to_string()
            } else {
                a.scope.clone()
            },
            label: local.is_ipv4().then(|| a.link.clone()),
        })
    }
}

/// `ip link show`-like text.
pub fn link_text(links: &[LinkView]) -> String {
    let mut out = String::new();
    for l in links {
        let _ = writeln!(
            out,
            "{}: {}: <{}> mtu {} state {}",
            l.ifindex,
            l.ifname,
            l.flags.join(","),
            l.mtu,
            l.operstate
        );
        let broadcast = l.flags.iter().any(|f| f == "BROADCAST");
        match (&l.address, l.link_type) {
            (Some(mac), "ether") if broadcast => {
                let _ = writeln!(out, "    link/ether {mac} brd ff:ff:ff:ff:ff:ff");
            }
            (Some(mac), kind) => {
                let _ = writeln!(out, "    link/{kind} {mac}");
            }
            (None, kind) => {
                let _ = writeln!(out, "    link/{kind}");
            }
        }
        if let Some(kind) = &l.kind {
            let _ = writeln!(out, "    {kind}");
        }
        for a in l.addr_info.iter().flatten() {
            let local = match a.local {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => inet_ntop6(v6),
            };
            let _ = write!(
                out,
                "    {} {}/{} scope {}",
                a.family, local, a.prefixlen, a.scope
            );
            if let Some(label) = &a.label {
                let _ = write!(out, " {label}");
            }
            out.push('\n');
        }
    }
    out
}

/// Attaches each address to its link (by index, else by name), as `ip addr` groups them.
pub fn with_addresses(
    mut links: Vec<LinkView>,
    addrs: &[pb::InterfaceAddress],
) -> Result<Vec<LinkView>, ViewError> {
    for l in links.iter_mut() {
        l.addr_info = Some(Vec::new());
    }
    for a in addrs {
        let info = AddrInfo::from_pb(a)?;
        let owner = links.iter_mut().find(|l| {
            (a.link_index != 0 && l.ifindex == a.link_index)
                || (a.link_index == 0 && l.ifname == a.link)
        });
        if let Some(l) = owner {
            l.addr_info.get_or_insert_with(Vec::new).push(info);
        }
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy1() -> pb::Link {
        pb::Link {
            index: 12,
            name: "dummy1".into(),
            kind: "dummy".into(),
            up: true,
            lower_up: true,
            mtu: 1500,
            mac: vec![0x6a, 0x0b, 0x1c, 0x2d, 0x3e, 0x4f],
            flags: 0x2 | 0x80 | 0x1 | 0x40 | 0x10000,
            oper_state: "UNKNOWN".into(),
        }
    }

    #[test]
    fn flags_print_as_iproute2_prints_them() {
        let cases: &[(u32, &[&str])] = &[
            (
                0x2 | 0x80 | 0x1 | 0x40 | 0x10000,
                &["BROADCAST", "NOARP", "UP", "LOWER_UP"],
            ),
            (0x8 | 0x1 | 0x40 | 0x10000, &["LOOPBACK", "UP", "LOWER_UP"]),
            (
                0x2 | 0x1000 | 0x1,
                &["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"],
            ),
            (0x2 | 0x80, &["BROADCAST", "NOARP"]),
            (0x8000_0000, &["80000000"]),
        ];
        for (flags, want) in cases {
            assert_eq!(flag_names(*flags), *want, "flags {flags:#x}");
        }
    }

    #[test]
    fn seed_dummy_prints_like_ip_addr() {
        let links = vec![LinkView::from_pb(&dummy1())];
        let addrs = vec![pb::InterfaceAddress {
            address: "192.168.100.1".into(),
            prefix_length: 32,
            link: "dummy1".into(),
            link_index: 12,
            scope: "global".into(),
        }];
        let links = with_addresses(links, &addrs).expect("valid addresses");
        assert_eq!(
            link_text(&links),
            "12: dummy1: <BROADCAST,NOARP,UP,LOWER_UP> mtu 1500 state UNKNOWN\n\
             \x20   link/ether 6a:0b:1c:2d:3e:4f brd ff:ff:ff:ff:ff:ff\n\
             \x20   dummy\n\
             \x20   inet 192.168.100.1/32 scope global dummy1\n"
        );
        let json = serde_json::to_value(&links).expect("serialisable");
        assert_eq!(json[0]["ifname"], "dummy1");
        assert_eq!(json[0]["flags"][3], "LOWER_UP");
        assert_eq!(json[0]["addr_info"][0]["local"], "192.168.100.1");
        assert_eq!(json[0]["addr_info"][0]["prefixlen"], 32);
        assert_eq!(json[0]["addr_info"][0]["label"], "dummy1");
    }

    #[test]
    fn link_show_has_no_addresses() {
        let mut down = dummy1();
        down.up = false;
        down.lower_up = false;
        down.flags = 0x2 | 0x80;
        down.oper_state = "DOWN".into();
        down.kind = String::new();
        let text = link_text(&[LinkView::from_pb(&down)]);
        assert_eq!(
            text,
            "12: dummy1: <BROADCAST,NOARP> mtu 1500 state DOWN\n    link/ether 6a:0b:1c:2d:3e:4f brd ff:ff:ff:ff:ff:ff\n"
        );
        let json = serde_json::to_value([LinkView::from_pb(&down)]).expect("serialisable");
        assert!(json[0].get("addr_info").is_none());
        assert_eq!(json[0]["kind"], serde_json::Value::Null);
    }
}
