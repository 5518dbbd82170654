//! The link operations the agent performs, as a trait: [`LinkHandle`] implements it for the
//! kernel; the declared state and the API are generic over it so they can be tested on fakes.

use std::future::Future;
use std::net::IpAddr;

use super::{InterfaceAddress, Link, LinkError, LinkHandle, LinkName};

/// Every operation the agent performs on links and addresses.
pub trait LinkOps: Send + Sync + 'static {
    /// `ip link add NAME type dummy`
    fn create_dummy(&self, name: &LinkName)
    -> impl Future<Output = Result<Link, LinkError>> + Send;
    /// `ip link del NAME`
    fn delete(&self, name: &LinkName) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// `ip link set NAME up|down`
    fn set_up(
        &self,
        name: &LinkName,
        up: bool,
    ) -> impl Future<Output = Result<Link, LinkError>> + Send;
    /// `ip link show`
    fn list(&self) -> impl Future<Output = Result<Vec<Link>, LinkError>> + Send;
    /// `ip addr add ADDRESS/PREFIX dev NAME`
    fn add_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// `ip addr del ADDRESS/PREFIX dev NAME`
    fn delete_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// `ip addr show [dev NAME]`
    fn list_addresses(
        &self,
        name: Option<&LinkName>,
    ) -> impl Future<Output = Result<Vec<InterfaceAddress>, LinkError>> + Send;
}

impl LinkOps for LinkHandle {
    fn create_dummy(
        &self,
        name: &LinkName,
    ) -> impl Future<Output = Result<Link, LinkError>> + Send {
        LinkHandle::create_dummy(self, name)
    }

    fn delete(&self, name: &LinkName) -> impl Future<Output = Result<(), LinkError>> + Send {
        LinkHandle::delete(self, name)
    }

    fn set_up(
        &self,
        name: &LinkName,
        up: bool,
    ) -> impl Future<Output = Result<Link, LinkError>> + Send {
        LinkHandle::set_up(self, name, up)
    }

    fn list(&self) -> impl Future<Output = Result<Vec<Link>, LinkError>> + Send {
        LinkHandle::list(self)
    }

    fn add_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> impl Future<Output = Result<(), LinkError>> + Send {
        LinkHandle::add_address(self, name, address, prefix_len)
    }

    fn delete_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> impl Future<Output = Result<(), LinkError>> + Send {
        LinkHandle::delete_address(self, name, address, prefix_len)
    }

    fn list_addresses(
        &self,
        name: Option<&LinkName>,
    ) -> impl Future<Output = Result<Vec<InterfaceAddress>, LinkError>> + Send {
        LinkHandle::list_addresses(self, name)
    }
}
