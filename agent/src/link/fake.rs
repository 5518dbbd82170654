//! Links and addresses in memory, for tests: they answer as the kernel does (the same errors
//! for the same mistakes) through [`LinkOps`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::LinkOps;
use super::{Cidr, InterfaceAddress, Link, LinkError, LinkName};

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

fn link<'a>(l: &'a mut Links, name: &LinkName) -> Result<&'a mut Link, LinkError> {
    l.links
        .get_mut(name.as_str())
        .ok_or_else(|| LinkError::LinkNotFound(name.to_string()))
}

impl LinkOps for FakeLinks {
    async fn create_dummy(&self, name: &LinkName) -> Result<Link, LinkError> {
        let mut l = self.state();
        if l.links.contains_key(name.as_str()) {
            return Err(LinkError::LinkExists(name.to_string()));
        }
        let index = l.links.values().map(|k| k.index).max().unwrap_or(0) + 1;
        let new = Link {
            index,
            name: name.to_string(),
            kind: Some("dummy".into()),
            up: false,
            lower_up: false,
            mtu: 1500,
            mac: vec![2, 0, 0, 0, 0, 1],
            flags: 0x82,
            oper_state: "DOWN".into(),
        };
        l.links.insert(name.to_string(), new.clone());
        Ok(new)
    }

    async fn delete(&self, name: &LinkName) -> Result<(), LinkError> {
        let mut l = self.state();
        let gone = l
            .links
            .remove(name.as_str())
            .ok_or_else(|| LinkError::LinkNotFound(name.to_string()))?;
        l.addresses.retain(|a| a.link_index != gone.index);
        Ok(())
    }

    async fn set_up(&self, name: &LinkName, up: bool) -> Result<Link, LinkError> {
        let mut l = self.state();
        let link = link(&mut l, name)?;
        link.up = up;
        link.oper_state = if up { "UNKNOWN" } else { "DOWN" }.into();
        Ok(link.clone())
    }

    async fn list(&self) -> Result<Vec<Link>, LinkError> {
        Ok(self.state().links.values().cloned().collect())
    }

    async fn add_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let mut l = self.state();
        let index = link(&mut l, name)?.index;
        if l.addresses
            .iter()
            .any(|a| a.address == address && a.link_index == index)
        {
            return Err(LinkError::AddressExists {
                link: name.to_string(),
                cidr,
            });
        }
        l.addresses.push(InterfaceAddress {
            address,
            prefix_len,
            link: name.to_string(),
            link_index: index,
            scope: "global".into(),
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
        let mut l = self.state();
        let index = link(&mut l, name)?.index;
        let before = l.addresses.len();
        l.addresses.retain(|a| {
            !(a.address == address && a.prefix_len == prefix_len && a.link_index == index)
        });
        if l.addresses.len() == before {
            return Err(LinkError::AddressNotFound {
                link: name.to_string(),
                cidr,
            });
        }
        Ok(())
    }

    async fn list_addresses(
        &self,
        name: Option<&LinkName>,
    ) -> Result<Vec<InterfaceAddress>, LinkError> {
        let mut l = self.state();
        let only = name.map(|n| link(&mut l, n).map(|k| k.index)).transpose()?;
        Ok(l.addresses
            .iter()
            .filter(|a| only.is_none_or(|i| a.link_index == i))
            .cloned()
            .collect())
    }
}
