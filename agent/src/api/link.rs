//! `ipvs.agent.v1.LinkService` over any [`LinkOps`]: parse, call, convert back.

use std::sync::Arc;

use ipvs_proto::v1 as pb;
use pb::link_service_server::{LinkService, LinkServiceServer};
use tonic::{Request, Response, Status};

use super::audit::logged;
use crate::convert;
use crate::ipvs::IpvsOps;
use crate::kernel::Kernel;
use crate::link::{LinkName, LinkOps};

/// The link service, generic over the core so tests can run it on fake links. Its writes
/// take a turn of the node core, like every other write (a declared apply makes links too).
#[derive(Debug)]
pub struct LinkApi<I, L> {
    kernel: Arc<Kernel<I>>,
    links: Arc<L>,
}

impl<I: IpvsOps, L: LinkOps> LinkApi<I, L> {
    pub fn new(kernel: Arc<Kernel<I>>, links: Arc<L>) -> Self {
        LinkApi { kernel, links }
    }

    pub fn into_server(self) -> LinkServiceServer<Self> {
        LinkServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl<I: IpvsOps, L: LinkOps> LinkService for LinkApi<I, L> {
    async fn create_dummy(
        &self,
        request: Request<pb::CreateDummyRequest>,
    ) -> Result<Response<pb::CreateDummyResponse>, Status> {
        let parsed = convert::link::create_dummy(request.get_ref());
        logged(
            "CreateDummy",
            parsed,
            LinkName::to_string,
            |name| async move {
                let _turn = self.kernel.turn().await;
                let link = self.links.create_dummy(&name).await?;
                Ok(pb::CreateDummyResponse {
                    link: Some(convert::link::link_to_proto(&link)),
                })
            },
        )
        .await
    }

    async fn delete_link(
        &self,
        request: Request<pb::DeleteLinkRequest>,
    ) -> Result<Response<pb::DeleteLinkResponse>, Status> {
        let parsed = convert::link::delete_link(request.get_ref());
        logged(
            "DeleteLink",
            parsed,
            LinkName::to_string,
            |name| async move {
                let _turn = self.kernel.turn().await;
                self.links.delete(&name).await?;
                Ok(pb::DeleteLinkResponse {})
            },
        )
        .await
    }

    async fn set_link_state(
        &self,
        request: Request<pb::SetLinkStateRequest>,
    ) -> Result<Response<pb::SetLinkStateResponse>, Status> {
        let parsed = convert::link::set_link_state(request.get_ref());
        logged(
            "SetLinkState",
            parsed,
            |(name, up)| format!("{name} {}", if *up { "up" } else { "down" }),
            |(name, up)| async move {
                let _turn = self.kernel.turn().await;
                let link = self.links.set_up(&name, up).await?;
                Ok(pb::SetLinkStateResponse {
                    link: Some(convert::link::link_to_proto(&link)),
                })
            },
        )
        .await
    }

    async fn list_links(
        &self,
        _request: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        let links = self.links.list().await?;
        Ok(Response::new(pb::ListLinksResponse {
            links: links.iter().map(convert::link::link_to_proto).collect(),
        }))
    }

    async fn add_address(
        &self,
        request: Request<pb::AddAddressRequest>,
    ) -> Result<Response<pb::AddAddressResponse>, Status> {
        let parsed = convert::link::add_address(request.get_ref());
        logged(
            "AddAddress",
            parsed,
            |(name, cidr)| format!("{cidr} dev {name}"),
            |(name, cidr)| async move {
                let _turn = self.kernel.turn().await;
                self.links
                    .add_address(&name, cidr.address(), cidr.prefix_len())
                    .await?;
                Ok(pb::AddAddressResponse {})
            },
        )
        .await
    }

    async fn delete_address(
        &self,
        request: Request<pb::DeleteAddressRequest>,
    ) -> Result<Response<pb::DeleteAddressResponse>, Status> {
        let parsed = convert::link::delete_address(request.get_ref());
        logged(
            "DeleteAddress",
            parsed,
            |(name, cidr)| format!("{cidr} dev {name}"),
            |(name, cidr)| async move {
                let _turn = self.kernel.turn().await;
                self.links
                    .delete_address(&name, cidr.address(), cidr.prefix_len())
                    .await?;
                Ok(pb::DeleteAddressResponse {})
            },
        )
        .await
    }

    async fn list_addresses(
        &self,
        request: Request<pb::ListAddressesRequest>,
    ) -> Result<Response<pb::ListAddressesResponse>, Status> {
        let name = convert::link::list_addresses(request.get_ref())?;
        let addresses = self.links.list_addresses(name.as_ref()).await?;
        Ok(Response::new(pb::ListAddressesResponse {
            addresses: addresses
                .iter()
                .map(convert::link::address_to_proto)
                .collect(),
        }))
    }
}
