//! `ipvs.agent.v1.IpvsService` over the node core: parse, validate, write during a turn of
//! the core ([`Kernel`]), convert back.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use ipvs_proto::v1 as pb;
use pb::ipvs_service_server::{IpvsService, IpvsServiceServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::audit::logged;
use super::status::edit_refused;
use crate::convert::{self, ipvs::DestinationChange};
use crate::ipvs::{Destination, IpvsOps, Service, ServiceKey};
use crate::kernel::Kernel;

/// The IPVS table service, generic over the core so tests can run it on a fake table.
#[derive(Debug)]
pub struct IpvsApi<I> {
    kernel: Arc<Kernel<I>>,
}

impl<I: IpvsOps> IpvsApi<I> {
    pub fn new(kernel: Arc<Kernel<I>>) -> Self {
        IpvsApi { kernel }
    }

    pub fn into_server(self) -> IpvsServiceServer<Self> {
        IpvsServiceServer::new(self)
    }

    /// The service as the kernel now holds it; the requested configuration if it cannot be read
    /// back (the write itself succeeded, so failing the call would invite a wrong retry).
    /// The service as the kernel has it now; its real servers are read only when it may
    /// have some (`with_dests`), so creating an empty service costs one read.
    async fn read_back(&self, requested: &Service, with_dests: bool) -> pb::Service {
        match self.kernel.read().service(&requested.key).await {
            Ok(entry) => {
                let dests = if with_dests {
                    self.kernel
                        .read()
                        .destinations(&requested.key)
                        .await
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                convert::ipvs::service_to_proto(&entry, &dests)
            }
            Err(e) => {
                tracing::warn!(key = %requested.key, error = %e, "cannot read back service");
                convert::ipvs::service_to_proto(
                    &crate::ipvs::ServiceEntry {
                        service: requested.clone(),
                        stats: Default::default(),
                    },
                    &[],
                )
            }
        }
    }

    async fn create(
        &self,
        (svc, dests): (Service, Vec<Destination>),
    ) -> Result<pb::CreateServiceResponse, Status> {
        self.kernel
            .turn()
            .await
            .create_service(&svc, &dests)
            .await
            .map_err(|e| edit_refused(e, "service"))?;
        Ok(pb::CreateServiceResponse {
            service: Some(self.read_back(&svc, !dests.is_empty()).await),
        })
    }

    async fn update(&self, svc: Service) -> Result<pb::UpdateServiceResponse, Status> {
        self.kernel
            .turn()
            .await
            .update_service(&svc)
            .await
            .map_err(|e| edit_refused(e, "service"))?;
        Ok(pb::UpdateServiceResponse {
            service: Some(self.read_back(&svc, true).await),
        })
    }
}

/// Services per `StreamServices` message (the last may hold fewer). Sending whatever has been
/// read instead made messages of a service or two when the client kept up, and the cost of a
/// message on each side (framing, a wake-up) then made the stream slower than one message.
const STREAM_BATCH: usize = 128;

/// `StreamServices` messages read ahead of a slow client.
const STREAM_BUFFER: usize = 4;

type ServiceStream = Pin<Box<dyn Stream<Item = Result<pb::StreamServicesResponse, Status>> + Send>>;

/// Reads the table into `tx` in batches; the first error is the last message. Returns when
/// the table is sent or the client went away.
async fn send_table<I: IpvsOps>(
    kernel: Arc<Kernel<I>>,
    tx: mpsc::Sender<Result<pb::StreamServicesResponse, Status>>,
) {
    let reader = kernel.read();
    let mut batches = std::pin::pin!(reader.table_stream().chunks(STREAM_BATCH));
    while let Some(batch) = batches.next().await {
        let mut services = Vec::with_capacity(batch.len());
        let mut failed = None;
        for row in batch {
            match row {
                Ok((svc, dests)) => services.push(convert::ipvs::service_to_proto(&svc, &dests)),
                Err(e) => {
                    failed = Some(Status::from(e));
                    break;
                }
            }
        }
        if !services.is_empty()
            && tx
                .send(Ok(pb::StreamServicesResponse { services }))
                .await
                .is_err()
        {
            return;
        }
        if let Some(status) = failed {
            let _ = tx.send(Err(status)).await;
            return;
        }
    }
}

/// The log target of a destination write: `TCP 192.168.100.1:80 -> 127.0.0.1:8081`.
fn dest_target(c: &DestinationChange) -> String {
    format!("{} -> {}", c.service, endpoint(c.dest.addr, c.dest.port))
}

fn endpoint(addr: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

#[tonic::async_trait]
impl<I: IpvsOps> IpvsService for IpvsApi<I> {
    async fn create_service(
        &self,
        request: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        let parsed = convert::ipvs::create_service(request.get_ref());
        logged(
            "CreateService",
            parsed,
            |(s, _)| s.key.to_string(),
            |s| self.create(s),
        )
        .await
    }

    async fn update_service(
        &self,
        request: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::UpdateServiceResponse>, Status> {
        let parsed = convert::ipvs::update_service(request.get_ref());
        logged(
            "UpdateService",
            parsed,
            |s| s.key.to_string(),
            |s| self.update(s),
        )
        .await
    }

    async fn delete_service(
        &self,
        request: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<pb::DeleteServiceResponse>, Status> {
        let parsed = convert::ipvs::key_field(request.get_ref().key.as_ref(), "key");
        logged(
            "DeleteService",
            parsed,
            ServiceKey::to_string,
            |key| async move {
                self.kernel.turn().await.ipvs().del_service(&key).await?;
                Ok(pb::DeleteServiceResponse {})
            },
        )
        .await
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        let key = convert::ipvs::key_field(request.get_ref().key.as_ref(), "key")?;
        let entry = self.kernel.read().service(&key).await?;
        let dests = self.kernel.read().destinations(&key).await?;
        Ok(Response::new(pb::GetServiceResponse {
            service: Some(convert::ipvs::service_to_proto(&entry, &dests)),
        }))
    }

    async fn list_services(
        &self,
        _request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let table = self.kernel.read().table().await?;
        Ok(Response::new(pb::ListServicesResponse {
            services: table
                .iter()
                .map(|(svc, dests)| convert::ipvs::service_to_proto(svc, dests))
                .collect(),
        }))
    }

    type StreamServicesStream = ServiceStream;

    /// The first batch is awaited before the call returns, so a table that cannot be read at
    /// all fails the call itself, as `ListServices` would.
    async fn stream_services(
        &self,
        _request: Request<pb::StreamServicesRequest>,
    ) -> Result<Response<Self::StreamServicesStream>, Status> {
        let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(send_table(self.kernel.clone(), tx));
        let first = rx.recv().await.transpose()?;
        let rest = ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(
            futures::stream::iter(first.map(Ok)).chain(rest),
        )))
    }

    async fn add_destination(
        &self,
        request: Request<pb::AddDestinationRequest>,
    ) -> Result<Response<pb::AddDestinationResponse>, Status> {
        let parsed = convert::ipvs::add_destination(request.get_ref());
        logged("AddDestination", parsed, dest_target, |c| async move {
            let turn = self.kernel.turn().await;
            turn.add_destination(&c.service, &c.dest)
                .await
                .map_err(|e| edit_refused(e, "destination"))?;
            Ok(pb::AddDestinationResponse {})
        })
        .await
    }

    async fn update_destination(
        &self,
        request: Request<pb::UpdateDestinationRequest>,
    ) -> Result<Response<pb::UpdateDestinationResponse>, Status> {
        let parsed = convert::ipvs::update_destination(request.get_ref());
        logged("UpdateDestination", parsed, dest_target, |c| async move {
            let turn = self.kernel.turn().await;
            turn.update_destination(&c.service, &c.dest, !c.weight_given)
                .await
                .map_err(|e| edit_refused(e, "destination"))?;
            Ok(pb::UpdateDestinationResponse {})
        })
        .await
    }

    async fn delete_destination(
        &self,
        request: Request<pb::DeleteDestinationRequest>,
    ) -> Result<Response<pb::DeleteDestinationResponse>, Status> {
        let parsed = convert::ipvs::delete_destination(request.get_ref());
        logged(
            "DeleteDestination",
            parsed,
            |(key, addr, port)| format!("{key} -> {}", endpoint(*addr, *port)),
            |(key, addr, port)| async move {
                self.kernel
                    .turn()
                    .await
                    .ipvs()
                    .del_dest(&key, addr, port)
                    .await?;
                Ok(pb::DeleteDestinationResponse {})
            },
        )
        .await
    }

    async fn list_destinations(
        &self,
        request: Request<pb::ListDestinationsRequest>,
    ) -> Result<Response<pb::ListDestinationsResponse>, Status> {
        let key = convert::ipvs::key_field(request.get_ref().service.as_ref(), "service")?;
        let dests = self.kernel.read().destinations(&key).await?;
        Ok(Response::new(pb::ListDestinationsResponse {
            destinations: dests
                .iter()
                .map(convert::ipvs::destination_to_proto)
                .collect(),
        }))
    }

    async fn flush(
        &self,
        _request: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        logged(
            "Flush",
            Ok(()),
            |_| "all services".to_owned(),
            |_| async {
                self.kernel.turn().await.ipvs().flush().await?;
                Ok(pb::FlushResponse {})
            },
        )
        .await
    }

    async fn zero(
        &self,
        request: Request<pb::ZeroRequest>,
    ) -> Result<Response<pb::ZeroResponse>, Status> {
        let parsed = convert::ipvs::optional_key(request.get_ref().service.as_ref(), "service");
        logged(
            "Zero",
            parsed,
            |key| key.map_or_else(|| "all services".to_owned(), |k| k.to_string()),
            |key| async move {
                self.kernel.turn().await.ipvs().zero(key.as_ref()).await?;
                Ok(pb::ZeroResponse {})
            },
        )
        .await
    }

    async fn get_info(
        &self,
        _request: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::GetInfoResponse>, Status> {
        let info = self.kernel.read().info().await?;
        Ok(Response::new(convert::ipvs::info_to_proto(&info)))
    }
}
