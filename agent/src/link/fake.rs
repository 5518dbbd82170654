//! Links and addresses in memory, for tests: they answer through [`LinkOps`] as the real
//! handle over rtnetlink does. A refusal is the errno the kernel returns for the same request,
//! named by the table the real handle uses ([`from_errno`]); the tests at the end pin each.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::LinkOps;
use super::error::{Op, from_errno};
use super::{Cidr, InterfaceAddress, Link, LinkError, LinkName};

/// `IFF_UP | IFF_RUNNING | IFF_LOWER_UP`: what a dummy link shows once up (its carrier is
/// always on).
const UP_FLAGS: u32 = 0x1 | 0x40 | 0x10000;

#[derive(Debug, Default)]
struct Links {
    links: BTreeMap<String, Link>,
    addresses: Vec<InterfaceAddress>,
}

/// Links and addresses in memory, with a loopback link to start from.
#[derive(Debug)]
pub struct FakeLinks(Mutex<Links>);

impl Default for FakeLinks {
    fn default() -> Self {
        let lo = Link {
            index: 1,
            name: "lo".into(),
            kind: None,
            up: true,
            lower_up: true,
            mtu: 65536,
            mac: vec![0; 6],
            flags: 0x10049,
            oper_state: "UNKNOWN".into(),
        };
        FakeLinks(Mutex::new(Links {
            links: BTreeMap::from([("lo".to_owned(), lo)]),
            addresses: Vec::new(),
        }))
    }
}

impl FakeLinks {
    fn state(&self) -> MutexGuard<'_, Links> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn link<'a>(l: &'a mut Links, op: Op<'_>, name: &LinkName) -> Result<&'a mut Link, LinkError> {
    l.links
        .get_mut(name.as_str())
        .ok_or_else(|| from_errno(op, libc::ENODEV))
}

/// The scope iproute2 and the real handle give an address: host for IPv4 loopback, link for
/// IPv6 link-local, global otherwise.
fn scope(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(a) if a.is_loopback() => "host",
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => "link",
        IpAddr::V6(a) if a.is_loopback() => "host",
        _ => "global",
    }
}

impl LinkOps for FakeLinks {
    async fn create_dummy(&self, name: &LinkName) -> Result<Link, LinkError> {
        let mut l = self.state();
        if l.links.contains_key(name.as_str()) {
            return Err(from_errno(Op::CreateDummy(name), libc::EEXIST));
        }
        let index = l.links.values().map(|k| k.index).max().unwrap_or(0) + 1;
        let new = Link {
            index,
            name: name.to_string(),
            kind: Some("dummy".into()),
            up: false,
            lower_up: false,
            mtu: 1500,
            mac: vec![2, 0, 0, 0, 0, u8::try_from(index % 256).unwrap_or(0)],
            flags: 0x82,
            oper_state: "DOWN".into(),
        };
        l.links.insert(name.to_string(), new.clone());
        Ok(new)
    }

    /// A link without a driver that can delete it (the loopback) is EOPNOTSUPP.
    async fn delete(&self, name: &LinkName) -> Result<(), LinkError> {
        let op = Op::Delete(name);
        let mut l = self.state();
        if link(&mut l, op, name)?.kind.is_none() {
            return Err(from_errno(op, libc::EOPNOTSUPP));
        }
        let gone = l
            .links
            .remove(name.as_str())
            .ok_or_else(|| from_errno(op, libc::ENODEV))?;
        l.addresses.retain(|a| a.link_index != gone.index);
        Ok(())
    }

    async fn set_up(&self, name: &LinkName, up: bool) -> Result<Link, LinkError> {
        let mut l = self.state();
        let link = link(&mut l, Op::SetState(name), name)?;
        link.up = up;
        link.lower_up = up;
        link.flags = if up {
            link.flags | UP_FLAGS
        } else {
            link.flags & !UP_FLAGS
        };
        link.oper_state = if up { "UNKNOWN" } else { "DOWN" }.into();
        Ok(link.clone())
    }

    async fn list(&self) -> Result<Vec<Link>, LinkError> {
        Ok(self.state().links.values().cloned().collect())
    }

    /// The kernel refuses an IPv4 address the link has with the same prefix length, and an
    /// IPv6 address the link has with any.
    async fn add_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let op = Op::AddAddress(name, cidr);
        let mut l = self.state();
        let index = link(&mut l, op, name)?.index;
        if l.addresses.iter().any(|a| {
            a.address == address
                && a.link_index == index
                && (address.is_ipv6() || a.prefix_len == prefix_len)
        }) {
            return Err(from_errno(op, libc::EEXIST));
        }
        l.addresses.push(InterfaceAddress {
            address,
            prefix_len,
            link: name.to_string(),
            link_index: index,
            scope: scope(address).into(),
        });
        Ok(())
    }

    async fn delete_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let op = Op::DeleteAddress(name, cidr);
        let mut l = self.state();
        let index = link(&mut l, op, name)?.index;
        let before = l.addresses.len();
        l.addresses.retain(|a| {
            !(a.address == address && a.prefix_len == prefix_len && a.link_index == index)
        });
        if l.addresses.len() == before {
            return Err(from_errno(op, libc::EADDRNOTAVAIL));
        }
        Ok(())
    }

    async fn list_addresses(
        &self,
        name: Option<&LinkName>,
    ) -> Result<Vec<InterfaceAddress>, LinkError> {
        let mut l = self.state();
        let only = name
            .map(|n| link(&mut l, Op::ListAddresses(name), n).map(|k| k.index))
            .transpose()?;
        Ok(l.addresses
            .iter()
            .filter(|a| only.is_none_or(|i| a.link_index == i))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> LinkName {
        LinkName::new(s).expect("name")
    }

    fn cidr(s: &str, len: u8) -> Cidr {
        Cidr::new(s.parse().expect("address"), len).expect("cidr")
    }

    /// Each mistake refused as the real handle refuses it: the kernel's errno for the request,
    /// through the same table.
    #[tokio::test]
    async fn refusals_are_the_kernels_errnos() {
        let links = FakeLinks::default();
        let d = name("dummy1");
        let nosuch = name("nosuch");
        let lo = name("lo");
        links.create_dummy(&d).await.expect("create");
        links
            .add_address(&d, "10.0.0.1".parse().expect("ip"), 32)
            .await
            .expect("v4");
        links
            .add_address(&d, "2001:db8::1".parse().expect("ip"), 64)
            .await
            .expect("v6");
        let v4 = cidr("10.0.0.1", 32);
        let cases: Vec<(&str, Result<(), LinkError>, Op<'_>, i32)> = vec![
            (
                "create an existing link",
                links.create_dummy(&d).await.map(|_| ()),
                Op::CreateDummy(&d),
                libc::EEXIST,
            ),
            (
                "delete a missing link",
                links.delete(&nosuch).await,
                Op::Delete(&nosuch),
                libc::ENODEV,
            ),
            (
                "delete the loopback",
                links.delete(&lo).await,
                Op::Delete(&lo),
                libc::EOPNOTSUPP,
            ),
            (
                "set a missing link up",
                links.set_up(&nosuch, true).await.map(|_| ()),
                Op::SetState(&nosuch),
                libc::ENODEV,
            ),
            (
                "an address on a missing link",
                links.add_address(&nosuch, v4.address(), 32).await,
                Op::AddAddress(&nosuch, v4),
                libc::ENODEV,
            ),
            (
                "an IPv4 address the link has",
                links.add_address(&d, v4.address(), 32).await,
                Op::AddAddress(&d, v4),
                libc::EEXIST,
            ),
            (
                "an IPv6 address the link has, with another prefix length",
                links
                    .add_address(&d, "2001:db8::1".parse().expect("ip"), 128)
                    .await,
                Op::AddAddress(&d, cidr("2001:db8::1", 128)),
                libc::EEXIST,
            ),
            (
                "delete an address with another prefix length",
                links.delete_address(&d, v4.address(), 24).await,
                Op::DeleteAddress(&d, cidr("10.0.0.1", 24)),
                libc::EADDRNOTAVAIL,
            ),
            (
                "list the addresses of a missing link",
                links.list_addresses(Some(&nosuch)).await.map(|_| ()),
                Op::ListAddresses(Some(&nosuch)),
                libc::ENODEV,
            ),
        ];
        for (what, got, op, errno) in cases {
            assert_eq!(got, Err(from_errno(op, errno)), "{what}");
        }
        // The same IPv4 address with another prefix length is another address.
        links
            .add_address(&d, v4.address(), 24)
            .await
            .expect("another prefix length");
    }

    #[tokio::test]
    async fn a_dummy_link_up_shows_as_the_kernel_shows_it() {
        let links = FakeLinks::default();
        let d = name("dummy1");
        let created = links.create_dummy(&d).await.expect("create");
        assert_eq!(
            (created.up, created.lower_up, created.flags),
            (false, false, 0x82)
        );
        let up = links.set_up(&d, true).await.expect("up");
        assert_eq!(
            (up.up, up.lower_up, up.flags, up.oper_state.as_str()),
            (true, true, 0x100c3, "UNKNOWN")
        );
        let down = links.set_up(&d, false).await.expect("down");
        assert_eq!((down.lower_up, down.flags), (false, 0x82));
        links
            .add_address(&name("lo"), "127.0.0.2".parse().expect("ip"), 8)
            .await
            .expect("loopback address");
        let scopes: Vec<String> = links
            .list_addresses(None)
            .await
            .expect("list")
            .into_iter()
            .map(|a| a.scope)
            .collect();
        assert_eq!(scopes, ["host"]);
    }
}
