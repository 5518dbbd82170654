//! [`InterfaceAddress`]: what `ip addr show` reports, and iproute2's scope names.

use std::{collections::HashMap, net::IpAddr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};

/// An address assigned to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    /// Name of the link; empty if the link vanished between the two dumps.
    pub link: String,
    pub link_index: u32,
    /// Scope as iproute2 names it ("global", "host", "link", ...).
    pub scope: String,
}

/// Names a scope the way iproute2's `rt_scopes` table does; unknown values print as numbers.
pub fn scope_name(scope: u8) -> String {
    match scope {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        other => other.to_string(),
    }
}

impl InterfaceAddress {
    /// Converts one `RTM_NEWADDR`; `names` maps link indexes to names (addresses carry only the
    /// index). Returns `None` for a message without an address.
    pub fn from_message(msg: AddressMessage, names: &HashMap<u32, String>) -> Option<Self> {
        // Like iproute2: IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on
        // point-to-point links and equals IFA_LOCAL elsewhere (IPv6 often sends only IFA_ADDRESS).
        let (mut local, mut address) = (None, None);
        for attr in msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => address = Some(ip),
                _ => {}
            }
        }
        let index = msg.header.index;
        Some(Self {
            address: local.or(address)?,
            prefix_len: msg.header.prefix_len,
            link: names.get(&index).cloned().unwrap_or_default(),
            link_index: index,
            scope: scope_name(msg.header.scope.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::{AddressFamily, address::AddressScope};

    use super::*;

    #[test]
    fn scope_names_match_iproute2() {
        let cases = [
            (0, "global"),
            (200, "site"),
            (253, "link"),
            (254, "host"),
            (255, "nowhere"),
            (1, "1"),
            (100, "100"),
        ];
        for (scope, name) in cases {
            assert_eq!(scope_name(scope), name, "scope {scope}");
        }
    }

    fn message(
        family: AddressFamily,
        index: u32,
        prefix_len: u8,
        scope: AddressScope,
        attributes: Vec<AddressAttribute>,
    ) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = family;
        msg.header.index = index;
        msg.header.prefix_len = prefix_len;
        msg.header.scope = scope;
        msg.attributes = attributes;
        msg
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address parses")
    }

    #[test]
    fn converts_address_messages() {
        let names = HashMap::from([(1, "lo".to_string()), (5, "ptp0".to_string())]);
        let address =
            |address: &str, prefix_len, link: &str, link_index, scope: &str| InterfaceAddress {
                address: ip(address),
                prefix_len,
                link: link.into(),
                link_index,
                scope: scope.into(),
            };
        let cases = [
            (
                // 127.0.0.1/8 on lo.
                message(
                    AddressFamily::Inet,
                    1,
                    8,
                    AddressScope::Host,
                    vec![
                        AddressAttribute::Address(ip("127.0.0.1")),
                        AddressAttribute::Local(ip("127.0.0.1")),
                        AddressAttribute::Label("lo".into()),
                    ],
                ),
                Some(address("127.0.0.1", 8, "lo", 1, "host")),
            ),
            (
                // IPv6 sends IFA_ADDRESS only.
                message(
                    AddressFamily::Inet6,
                    1,
                    64,
                    AddressScope::Universe,
                    vec![AddressAttribute::Address(ip("2001:db8::1"))],
                ),
                Some(address("2001:db8::1", 64, "lo", 1, "global")),
            ),
            (
                // `ip addr add 10.0.0.1 peer 10.0.0.2/32 dev ptp0`: the local address wins.
                message(
                    AddressFamily::Inet,
                    5,
                    32,
                    AddressScope::Universe,
                    vec![
                        AddressAttribute::Address(ip("10.0.0.2")),
                        AddressAttribute::Local(ip("10.0.0.1")),
                    ],
                ),
                Some(address("10.0.0.1", 32, "ptp0", 5, "global")),
            ),
            (
                // Link-local on an index missing from the name map.
                message(
                    AddressFamily::Inet6,
                    9,
                    64,
                    AddressScope::Link,
                    vec![AddressAttribute::Address(ip("fe80::1"))],
                ),
                Some(address("fe80::1", 64, "", 9, "link")),
            ),
            (
                message(AddressFamily::Inet, 1, 24, AddressScope::Universe, vec![]),
                None,
            ),
        ];
        for (msg, expected) in cases {
            assert_eq!(InterfaceAddress::from_message(msg, &names), expected);
        }
    }
}
