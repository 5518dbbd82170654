//! `ipvs.agent.v1.PolicyService` over [`Attachments`]: uploads, attachments, their health and
//! a stream of their decisions.
//!
//! | error | code |
//! |---|---|
//! | a component refused by the engine, a bad service key, interval or hash | `INVALID_ARGUMENT` |
//! | unknown policy or attachment | `NOT_FOUND` |
//! | deleting an attached policy, evaluating a quarantined attachment | `FAILED_PRECONDITION` |
//! | the state directory cannot be written | `INTERNAL` |

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use ipvs_proto::v1 as pb;
use pb::policy_service_server::{PolicyService, PolicyServiceServer};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use super::upload::UploadLimit;
use crate::attach::Attachments;
use crate::convert::policy::*;
use crate::ipvs::IpvsOps;
use crate::shutdown::Shutdown;

/// The policy service, generic over the core so tests can run it on a fake table.
#[derive(Debug)]
pub struct PolicyApi<I> {
    attachments: Arc<Attachments<I>>,
    shutdown: Option<Shutdown>,
}

impl<I: IpvsOps> PolicyApi<I> {
    pub fn new(attachments: Arc<Attachments<I>>) -> Self {
        PolicyApi {
            attachments,
            shutdown: None,
        }
    }

    /// Ends every WatchPolicyEvents stream when `shutdown` fires.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Uploads up to the engine's component limit get through gRPC; an oversized one is
    /// refused from its first bytes with the engine's message that names the limit
    /// ([`UploadLimit`]), and the transport's own limit stays just above it.
    pub fn into_server(self) -> UploadLimit<PolicyServiceServer<Self>> {
        let component = self.attachments.component_bytes();
        let limit = component + super::UPLOAD_OVERHEAD_BYTES;
        UploadLimit::new(
            PolicyServiceServer::new(self).max_decoding_message_size(limit),
            component,
        )
    }
}

type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchPolicyEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<I: IpvsOps> PolicyService for PolicyApi<I> {
    async fn upload_policy(
        &self,
        req: Request<pb::UploadPolicyRequest>,
    ) -> Result<Response<pb::UploadPolicyResponse>, Status> {
        let req = req.into_inner();
        let p = self.attachments.upload(req.component, req.name).await?;
        tracing::info!(hash = %p.hash, name = %p.name, size = p.size, "policy uploaded");
        Ok(Response::new(pb::UploadPolicyResponse {
            policy: Some(policy_to_proto(&p)),
        }))
    }

    async fn list_policies(
        &self,
        _req: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let policies = self.attachments.policies().await;
        Ok(Response::new(pb::ListPoliciesResponse {
            policies: policies.iter().map(policy_to_proto).collect(),
        }))
    }

    async fn delete_policy(
        &self,
        req: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let hash = req.into_inner().hash;
        self.attachments.delete(&hash).await?;
        tracing::info!(hash = %hash, "policy deleted");
        Ok(Response::new(pb::DeletePolicyResponse {}))
    }

    async fn attach(
        &self,
        req: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachResponse>, Status> {
        let spec = attach_spec(req.get_ref())?;
        let id = self.attachments.attach_saved(spec.clone()).await?;
        Ok(Response::new(pb::AttachResponse {
            attachment: Some(attachment_to_proto(&id, &spec)),
        }))
    }

    async fn detach(
        &self,
        req: Request<pb::DetachRequest>,
    ) -> Result<Response<pb::DetachResponse>, Status> {
        self.attachments.detach(&req.get_ref().id).await?;
        Ok(Response::new(pb::DetachResponse {}))
    }

    async fn list_attachments(
        &self,
        _req: Request<pb::ListAttachmentsRequest>,
    ) -> Result<Response<pb::ListAttachmentsResponse>, Status> {
        let list = self.attachments.list().await;
        Ok(Response::new(pb::ListAttachmentsResponse {
            attachments: list
                .iter()
                .map(|(id, s)| attachment_to_proto(id, s))
                .collect(),
        }))
    }

    async fn get_status(
        &self,
        req: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let s = self.attachments.status(&req.get_ref().id).await?;
        let status = pb::AttachmentStatus {
            attachment: Some(attachment_to_proto(&s.id, &s.spec)),
            last: s.last.as_ref().map(run_to_proto),
            last_decision: s.last_decision.as_ref().map(decision_to_proto),
            consecutive_failures: s.consecutive_failures,
            quarantined: s.quarantined,
            evaluations: s.evaluations,
        };
        Ok(Response::new(pb::GetStatusResponse {
            status: Some(status),
        }))
    }

    async fn evaluate(
        &self,
        req: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let runs = self.attachments.evaluate(&req.get_ref().id).await?;
        Ok(Response::new(pb::EvaluateResponse {
            results: runs.iter().map(run_to_proto).collect(),
        }))
    }

    type WatchPolicyEventsStream = EventStream;

    async fn watch_policy_events(
        &self,
        req: Request<pb::WatchPolicyEventsRequest>,
    ) -> Result<Response<Self::WatchPolicyEventsStream>, Status> {
        let only = req.into_inner().id;
        let mut events = self.attachments.subscribe();
        let shutdown = self.shutdown.clone();
        let stream = async_stream_events(move |tx| async move {
            let mut missed = 0u64;
            let stopped = async {
                match shutdown {
                    Some(s) => s.requested().await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(stopped);
            loop {
                let event = tokio::select! {
                    () = &mut stopped => return,
                    () = tx.closed() => return,
                    e = events.recv() => e,
                };
                match event {
                    Ok(e) if only.is_empty() || e.attachment == only => {
                        if tx.send(Ok(event_to_proto(&e, missed))).await.is_err() {
                            return;
                        }
                        missed = 0;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => missed += n,
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task that stops when the client goes away.
fn async_stream_events<F, Fut>(task: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::WatchPolicyEventsResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(task(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
