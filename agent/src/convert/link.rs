//! `ipvs.agent.v1` links and addresses ↔ the [`crate::link`] domain types.

use ipvs_proto::v1 as pb;

use super::{Field, FieldError, Problem, ip_address};
use crate::link::{Cidr, InterfaceAddress, Link, LinkName, max_prefix_len};

/// A link name under `field`, checked as the kernel checks it.
pub fn link_name(name: &str, field: &str) -> Result<LinkName, FieldError> {
    LinkName::new(name).map_err(|e| FieldError::new(field, Problem::Invalid(e.to_string())))
}

pub fn create_dummy(req: &pb::CreateDummyRequest) -> Result<LinkName, FieldError> {
    link_name(&req.name, "name")
}

pub fn delete_link(req: &pb::DeleteLinkRequest) -> Result<LinkName, FieldError> {
    link_name(&req.name, "name")
}

pub fn set_link_state(req: &pb::SetLinkStateRequest) -> Result<(LinkName, bool), FieldError> {
    Ok((link_name(&req.name, "name")?, req.up))
}

pub fn add_address(req: &pb::AddAddressRequest) -> Result<(LinkName, Cidr), FieldError> {
    link_address(&req.link, &req.address, req.prefix_length)
}

pub fn delete_address(req: &pb::DeleteAddressRequest) -> Result<(LinkName, Cidr), FieldError> {
    link_address(&req.link, &req.address, req.prefix_length)
}

/// `ListAddressesRequest`: one link, or every link when the name is empty.
pub fn list_addresses(req: &pb::ListAddressesRequest) -> Result<Option<LinkName>, FieldError> {
    if req.link.is_empty() {
        return Ok(None);
    }
    link_name(&req.link, "link").map(Some)
}

fn link_address(
    link: &str,
    address: &str,
    prefix_length: u32,
) -> Result<(LinkName, Cidr), FieldError> {
    let name = link_name(link, "link")?;
    Ok((name, prefix(address, prefix_length)?))
}

/// An address and its prefix length; 0 is the whole address (/32, /128).
pub fn prefix(address: &str, prefix_length: u32) -> Result<Cidr, FieldError> {
    let address = ip_address(address).field("address")?;
    let max = max_prefix_len(address);
    let prefix_length = match prefix_length {
        0 => max.into(),
        p => p,
    };
    let prefix = u8::try_from(prefix_length)
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| {
            FieldError::new(
                "prefix_length",
                Problem::TooLarge {
                    value: prefix_length.into(),
                    max: max.into(),
                },
            )
        })?;
    Cidr::new(address, prefix)
        .map_err(|e| FieldError::new("prefix_length", Problem::Invalid(e.to_string())))
}

pub fn prefix_to_proto(c: &Cidr) -> pb::Prefix {
    pb::Prefix {
        address: c.address().to_string(),
        prefix_length: c.prefix_len().into(),
    }
}

pub fn link_to_proto(link: &Link) -> pb::Link {
    pb::Link {
        index: link.index,
        name: link.name.clone(),
        kind: link.kind.clone().unwrap_or_default(),
        up: link.up,
        lower_up: link.lower_up,
        mtu: link.mtu,
        mac: link.mac.clone(),
        flags: link.flags,
        oper_state: link.oper_state.clone(),
    }
}

pub fn address_to_proto(a: &InterfaceAddress) -> pb::InterfaceAddress {
    pb::InterfaceAddress {
        address: a.address.to_string(),
        prefix_length: a.prefix_len.into(),
        link: a.link.clone(),
        link_index: a.link_index,
        scope: a.scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::convert::quote;

    fn add(link: &str, address: &str, prefix_length: u32) -> pb::AddAddressRequest {
        pb::AddAddressRequest {
            link: link.into(),
            address: address.into(),
            prefix_length,
        }
    }

    fn cidr(s: &str, prefix: u8) -> Cidr {
        let addr: IpAddr = s.parse().expect("test address");
        Cidr::new(addr, prefix).expect("test cidr")
    }

    fn name(s: &str) -> LinkName {
        LinkName::new(s).expect("test name")
    }

    #[test]
    fn address_requests() {
        let too_large = |value, max| Problem::TooLarge { value, max };
        let not_an_address = |s: &str| Problem::NotAnAddress(quote(s));
        let garbage = "1".repeat(4096);
        type Parsed = Result<(LinkName, Cidr), FieldError>;
        let cases: Vec<(&str, pb::AddAddressRequest, Parsed)> = vec![
            (
                "IPv4 /32",
                add("dummy1", "192.168.100.1", 32),
                Ok((name("dummy1"), cidr("192.168.100.1", 32))),
            ),
            (
                "IPv4 /24",
                add("dummy1", "192.168.100.1", 24),
                Ok((name("dummy1"), cidr("192.168.100.1", 24))),
            ),
            (
                "IPv4 /1",
                add("dummy1", "192.168.100.1", 1),
                Ok((name("dummy1"), cidr("192.168.100.1", 1))),
            ),
            (
                "IPv6 /128",
                add("dummy1", "2001:db8::1", 128),
                Ok((name("dummy1"), cidr("2001:db8::1", 128))),
            ),
            (
                "prefix length 0 is the whole IPv4 address",
                add("dummy1", "192.168.100.1", 0),
                Ok((name("dummy1"), cidr("192.168.100.1", 32))),
            ),
            (
                "prefix length 0 is the whole IPv6 address",
                add("dummy1", "2001:db8::1", 0),
                Ok((name("dummy1"), cidr("2001:db8::1", 128))),
            ),
            (
                "IPv4 prefix above 32",
                add("dummy1", "192.168.100.1", 33),
                Err(FieldError::new("prefix_length", too_large(33, 32))),
            ),
            (
                "IPv6 prefix above 128",
                add("dummy1", "2001:db8::1", 129),
                Err(FieldError::new("prefix_length", too_large(129, 128))),
            ),
            (
                "prefix length beyond a byte",
                add("dummy1", "192.168.100.1", 256),
                Err(FieldError::new("prefix_length", too_large(256, 32))),
            ),
            (
                "no address",
                add("dummy1", "", 32),
                Err(FieldError::new("address", Problem::Missing)),
            ),
            (
                "unparsable address",
                add("dummy1", "1.2.3.4.5", 32),
                Err(FieldError::new("address", not_an_address("1.2.3.4.5"))),
            ),
            (
                "the prefix goes in its own field",
                add("dummy1", "192.168.100.1/24", 0),
                Err(FieldError::new(
                    "address",
                    not_an_address("192.168.100.1/24"),
                )),
            ),
            (
                "a 4 KB garbage address is quoted short",
                add("dummy1", &garbage, 32),
                Err(FieldError::new(
                    "address",
                    Problem::NotAnAddress(format!("{:?}... (4096 bytes)", &garbage[..48])),
                )),
            ),
            (
                "no link",
                add("", "192.168.100.1", 32),
                Err(FieldError::new(
                    "link",
                    Problem::Invalid(r#"link name "" is empty"#.into()),
                )),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(add_address(&req), want, "{what}");
            let delete = pb::DeleteAddressRequest {
                link: req.link,
                address: req.address,
                prefix_length: req.prefix_length,
            };
            assert_eq!(delete_address(&delete), want, "{what} (delete)");
        }
    }

    #[test]
    fn prefixes_read_back_as_written() {
        let cases = [
            (cidr("10.0.0.1", 32), "10.0.0.1", 32),
            (cidr("10.0.0.1", 24), "10.0.0.1", 24),
            (cidr("2001:db8::1", 128), "2001:db8::1", 128),
            (cidr("2001:db8::1", 64), "2001:db8::1", 64),
            // A /0 goes out as it is, even though a request cannot ask for one.
            (cidr("0.0.0.0", 0), "0.0.0.0", 0),
        ];
        for (c, address, prefix_length) in cases {
            let wire = prefix_to_proto(&c);
            assert_eq!(
                (wire.address.as_str(), wire.prefix_length),
                (address, prefix_length),
                "{c}"
            );
            if prefix_length > 0 {
                assert_eq!(prefix(&wire.address, wire.prefix_length), Ok(c), "{c}");
            }
        }
        // Replies write the address as people do, whatever the request wrote.
        let c = prefix("2001:0DB8:0000::0001", 0).expect("prefix");
        assert_eq!(
            prefix_to_proto(&c),
            pb::Prefix {
                address: "2001:db8::1".into(),
                prefix_length: 128,
            }
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            create_dummy(&pb::CreateDummyRequest {
                name: "averyverylongname".into()
            })
            .map_err(|e| e.to_string()),
            Err(r#"invalid name: link name "averyverylongname" is longer than 15 bytes"#.into())
        );
        assert_eq!(
            delete_link(&pb::DeleteLinkRequest {
                name: "eth0:1".into()
            })
            .map_err(|e| e.to_string()),
            Err(r#"invalid name: link name "eth0:1" contains ':'"#.into())
        );
        let long = "n".repeat(4096);
        assert_eq!(
            create_dummy(&pb::CreateDummyRequest { name: long.clone() }).map_err(|e| e.to_string()),
            Err(format!(
                "invalid name: link name {:?}... (4096 bytes) is longer than 15 bytes",
                &long[..48]
            ))
        );
        assert_eq!(
            set_link_state(&pb::SetLinkStateRequest {
                name: "dummy1".into(),
                up: true
            }),
            Ok((name("dummy1"), true))
        );
        assert_eq!(
            list_addresses(&pb::ListAddressesRequest {
                link: String::new()
            }),
            Ok(None)
        );
        assert_eq!(
            list_addresses(&pb::ListAddressesRequest { link: "lo".into() }),
            Ok(Some(name("lo")))
        );
    }

    #[test]
    fn replies() {
        let link = Link {
            index: 3,
            name: "dummy1".into(),
            kind: None,
            up: true,
            lower_up: false,
            mtu: 1500,
            mac: vec![2, 0, 0, 0, 0, 1],
            flags: 0x83,
            oper_state: "UNKNOWN".into(),
        };
        let wire = link_to_proto(&link);
        assert_eq!(
            (
                wire.index,
                wire.name.as_str(),
                wire.kind.as_str(),
                wire.up,
                wire.mtu,
                wire.flags
            ),
            (3, "dummy1", "", true, 1500, 0x83)
        );
        let addr = InterfaceAddress {
            address: "2001:db8::1".parse().expect("test address"),
            prefix_len: 64,
            link: "dummy1".into(),
            link_index: 3,
            scope: "global".into(),
        };
        assert_eq!(
            address_to_proto(&addr),
            pb::InterfaceAddress {
                address: "2001:db8::1".into(),
                prefix_length: 64,
                link: "dummy1".into(),
                link_index: 3,
                scope: "global".into(),
            }
        );
    }
}
