//! [`LinkHandle`]: link and address requests over one long-lived rtnetlink socket.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressMessage, AddressScope};
use rtnetlink::{AddressMessageBuilder, LinkDummy, LinkUnspec};

use super::{
    Cidr, InterfaceAddress, Link, LinkError, LinkName,
    error::{Op, from_rtnetlink},
};

/// Requests links and addresses from the kernel of the network namespace it was created in.
///
/// Cheap to clone: clones share the socket.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    rt: rtnetlink::Handle,
}

impl LinkHandle {
    /// Opens the netlink socket and spawns its connection task on the current tokio runtime.
    ///
    /// The socket belongs to the calling thread's network namespace.
    pub fn new() -> Result<Self, LinkError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| LinkError::Connection(format!("no tokio runtime: {e}")))?;
        let (connection, rt, _) = rtnetlink::new_connection()
            .map_err(|e| LinkError::Connection(format!("cannot open netlink socket: {e}")))?;
        runtime.spawn(connection);
        Ok(Self { rt })
    }

    /// `ip link add NAME type dummy`
    pub async fn create_dummy(&self, name: &LinkName) -> Result<Link, LinkError> {
        let op = Op::CreateDummy(name);
        let message = LinkDummy::new(name.as_str()).build();
        self.rt
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| from_rtnetlink(op, e))?;
        self.fetch(op, name).await
    }

    /// `ip link del NAME`
    pub async fn delete(&self, name: &LinkName) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_name(name.as_str()).build();
        self.rt
            .link()
            .del_with_message(message)
            .execute()
            .await
            .map_err(|e| from_rtnetlink(Op::Delete(name), e))
    }

    /// `ip link set NAME up` or `ip link set NAME down`
    pub async fn set_up(&self, name: &LinkName, up: bool) -> Result<Link, LinkError> {
        let op = Op::SetState(name);
        let builder = LinkUnspec::new_with_name(name.as_str());
        let message = if up { builder.up() } else { builder.down() }.build();
        self.rt
            .link()
            .change(message)
            .execute()
            .await
            .map_err(|e| from_rtnetlink(op, e))?;
        self.fetch(op, name).await
    }

    /// `ip link show`
    pub async fn list(&self) -> Result<Vec<Link>, LinkError> {
        self.rt
            .link()
            .get()
            .execute()
            .map_ok(Link::from)
            .try_collect()
            .await
            .map_err(|e| from_rtnetlink(Op::List, e))
    }

    /// `ip link show NAME`
    pub async fn get(&self, name: &LinkName) -> Result<Link, LinkError> {
        self.fetch(Op::Get(name), name).await
    }

    /// `ip addr add ADDRESS/PREFIX dev NAME`
    pub async fn add_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let op = Op::AddAddress(name, cidr);
        let index = self.fetch(op, name).await?.index;
        let mut request = self.rt.address().add(index, address, prefix_len);
        // iproute2 gives 127.0.0.0/8 host scope unless told otherwise; so do we.
        if matches!(address, IpAddr::V4(v4) if v4.is_loopback()) {
            request.message_mut().header.scope = AddressScope::Host;
        }
        request.execute().await.map_err(|e| from_rtnetlink(op, e))
    }

    /// `ip addr del ADDRESS/PREFIX dev NAME`
    pub async fn delete_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let op = Op::DeleteAddress(name, cidr);
        let index = self.fetch(op, name).await?.index;
        self.rt
            .address()
            .del(address_message(index, cidr))
            .execute()
            .await
            .map_err(|e| from_rtnetlink(op, e))
    }

    /// `ip addr show [dev NAME]`
    ///
    /// Two dumps whatever the number of links: links (for names), then addresses.
    pub async fn list_addresses(
        &self,
        name: Option<&LinkName>,
    ) -> Result<Vec<InterfaceAddress>, LinkError> {
        let op = Op::ListAddresses(name);
        let links = match name {
            Some(name) => vec![self.fetch(op, name).await?],
            None => self.list().await?,
        };
        let only = name.and(links.first().map(|l| l.index));
        let names: HashMap<u32, String> = links.into_iter().map(|l| (l.index, l.name)).collect();
        let mut request = self.rt.address().get();
        if let Some(index) = only {
            request = request.set_link_index_filter(index);
        }
        let messages: Vec<AddressMessage> = request
            .execute()
            .try_collect()
            .await
            .map_err(|e| from_rtnetlink(op, e))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| InterfaceAddress::from_message(m, &names))
            .collect())
    }

    /// One link by name (a single `RTM_GETLINK`, not a dump), errors reported as part of `op`.
    async fn fetch(&self, op: Op<'_>, name: &LinkName) -> Result<Link, LinkError> {
        self.rt
            .link()
            .get()
            .match_name(name.as_str())
            .execute()
            .try_next()
            .await
            .map_err(|e| from_rtnetlink(op, e))?
            .map(Link::from)
            .ok_or_else(|| LinkError::LinkNotFound(name.to_string()))
    }
}

/// The `RTM_DELADDR` body `ip addr del` sends: family, prefix, IFA_LOCAL and IFA_ADDRESS.
fn address_message(index: u32, cidr: Cidr) -> AddressMessage {
    match cidr.address() {
        IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, cidr.prefix_len())
            .build(),
        IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(ip, cidr.prefix_len())
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_outside_a_runtime_is_an_error_not_a_panic() {
        let got = LinkHandle::new().map(|_| ());
        assert!(
            matches!(&got, Err(LinkError::Connection(m)) if m.starts_with("no tokio runtime: ")),
            "{got:?}"
        );
    }
}
