//! [`Link`]: what `ip link show` reports about one interface.

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};

/// A network interface as the kernel describes it in `RTM_NEWLINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` ("dummy", "veth", ...); `None` for links without a driver kind, like `lo`.
    pub kind: Option<String>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    pub mtu: u32,
    /// Hardware address; empty when the link has none.
    pub mac: Vec<u8>,
    /// Raw `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_OPERSTATE` as iproute2 prints it ("UP", "DOWN", "UNKNOWN", ...).
    pub oper_state: String,
}

impl From<LinkMessage> for Link {
    fn from(msg: LinkMessage) -> Self {
        let flags = msg.header.flags;
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            mtu: 0,
            mac: Vec::new(),
            flags: flags.bits(),
            oper_state: State::Unknown.to_string(),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::Address(mac) => link.mac = mac,
                LinkAttribute::OperState(state) => link.oper_state = state.to_string(),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.into_iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::InfoKind;

    use super::*;

    fn message(index: u32, flags: LinkFlags, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = flags;
        msg.attributes = attributes;
        msg
    }

    #[test]
    fn converts_link_messages() {
        let mac = vec![0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
        let cases = [
            (
                // `ip link show lo` after `ip link set lo up`.
                message(
                    1,
                    LinkFlags::Up | LinkFlags::Loopback | LinkFlags::Running | LinkFlags::LowerUp,
                    vec![
                        LinkAttribute::IfName("lo".into()),
                        LinkAttribute::Mtu(65536),
                        LinkAttribute::Address(vec![0; 6]),
                        LinkAttribute::OperState(State::Unknown),
                    ],
                ),
                Link {
                    index: 1,
                    name: "lo".into(),
                    kind: None,
                    up: true,
                    lower_up: true,
                    mtu: 65536,
                    mac: vec![0; 6],
                    flags: 0x1_0049,
                    oper_state: "UNKNOWN".into(),
                },
            ),
            (
                // A fresh `ip link add dummy1 type dummy`: down, no carrier reported yet.
                message(
                    7,
                    LinkFlags::Broadcast | LinkFlags::Noarp,
                    vec![
                        LinkAttribute::IfName("dummy1".into()),
                        LinkAttribute::Mtu(1500),
                        LinkAttribute::Address(mac.clone()),
                        LinkAttribute::OperState(State::Down),
                        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Dummy)]),
                    ],
                ),
                Link {
                    index: 7,
                    name: "dummy1".into(),
                    kind: Some("dummy".into()),
                    up: false,
                    lower_up: false,
                    mtu: 1500,
                    mac,
                    flags: 0x82,
                    oper_state: "DOWN".into(),
                },
            ),
            (
                // Attributes missing entirely: defaults, no panic.
                message(3, LinkFlags::Up, vec![LinkAttribute::LinkInfo(vec![])]),
                Link {
                    index: 3,
                    name: String::new(),
                    kind: None,
                    up: true,
                    lower_up: false,
                    mtu: 0,
                    mac: vec![],
                    flags: 0x1,
                    oper_state: "UNKNOWN".into(),
                },
            ),
            (
                message(
                    4,
                    LinkFlags::Up | LinkFlags::LowerUp,
                    vec![
                        LinkAttribute::OperState(State::LowerLayerDown),
                        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Other(
                            "vendorx".into(),
                        ))]),
                    ],
                ),
                Link {
                    index: 4,
                    name: String::new(),
                    kind: Some("vendorx".into()),
                    up: true,
                    lower_up: true,
                    mtu: 0,
                    mac: vec![],
                    flags: 0x1_0001,
                    oper_state: "LOWERLAYERDOWN".into(),
                },
            ),
        ];
        for (msg, expected) in cases {
            assert_eq!(Link::from(msg), expected);
        }
    }
}
