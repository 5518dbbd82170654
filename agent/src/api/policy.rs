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
use std::time::{Duration, UNIX_EPOCH};

use futures::Stream;
use ipvs_proto::v1 as pb;
use pb::policy_service_server::{PolicyService, PolicyServiceServer};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use super::convert::{FieldError, Problem, ipvs::key_to_proto, ipvs::service_key};
use super::upload::UploadLimit;
use crate::attach::{
    Attachments, DEFAULT_INTERVAL, DEFAULT_QUARANTINE_AFTER, DecisionRecord, Event, Mode,
    RunRecord, Spec, StoredPolicy,
};
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

    /// Ends every WatchEvents stream when `shutdown` fires.
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

fn policy_to_proto(p: &StoredPolicy) -> pb::Policy {
    pb::Policy {
        hash: p.hash.clone(),
        name: p.name.clone(),
        size: p.size,
    }
}

fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn mode_to_proto(m: Mode) -> pb::PolicyMode {
    match m {
        Mode::Enforce => pb::PolicyMode::Enforce,
        Mode::DryRun => pb::PolicyMode::DryRun,
    }
}

/// An attach request as a [`Spec`].
pub fn attach_spec(req: &pb::AttachRequest) -> Result<Spec, FieldError> {
    let field = |field: &str, problem| FieldError {
        field: field.into(),
        problem,
    };
    let services = req
        .services
        .iter()
        .enumerate()
        .map(|(i, k)| {
            service_key(k).map_err(|e| FieldError {
                field: format!("services[{i}].{}", e.field),
                problem: e.problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let interval = match &req.interval {
        None => DEFAULT_INTERVAL,
        Some(d) => {
            let secs = u64::try_from(d.seconds);
            let nanos = u32::try_from(d.nanos);
            match (secs, nanos) {
                (Ok(s), Ok(n)) if n < 1_000_000_000 => Duration::new(s, n),
                _ => {
                    return Err(field(
                        "interval",
                        Problem::Invalid("must be a non-negative duration".into()),
                    ));
                }
            }
        }
    };
    let mode = match pb::PolicyMode::try_from(req.mode) {
        Ok(pb::PolicyMode::Unspecified | pb::PolicyMode::Enforce) => Mode::Enforce,
        Ok(pb::PolicyMode::DryRun) => Mode::DryRun,
        Err(_) => return Err(field("mode", Problem::UnknownEnum(req.mode))),
    };
    Ok(Spec {
        policy: req.policy_hash.clone(),
        services,
        params: req
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        interval,
        mode,
        quarantine_after: match req.quarantine_after {
            0 => DEFAULT_QUARANTINE_AFTER,
            n => n,
        },
    })
}

/// A saved attachment (its id aside) as a [`Spec`]: the same checks as an attach request.
pub fn attachment_spec(a: &pb::Attachment) -> Result<Spec, FieldError> {
    attach_spec(&pb::AttachRequest {
        policy_hash: a.policy_hash.clone(),
        services: a.services.clone(),
        params: a.params.clone(),
        interval: a.interval,
        mode: a.mode,
        quarantine_after: a.quarantine_after,
    })
}

pub fn attachment_to_proto(id: &str, s: &Spec) -> pb::Attachment {
    pb::Attachment {
        id: id.to_owned(),
        policy_hash: s.policy.clone(),
        services: s.services.iter().map(key_to_proto).collect(),
        params: s
            .params
            .iter()
            .map(|(k, v)| pb::PolicyParam {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        interval: Some(duration_to_proto(s.interval)),
        mode: mode_to_proto(s.mode).into(),
        quarantine_after: s.quarantine_after,
    }
}

fn decision_to_proto(d: &DecisionRecord) -> pb::PolicyDecision {
    pb::PolicyDecision {
        service: Some(key_to_proto(&d.service)),
        weights: d
            .weights
            .iter()
            .map(|w| pb::WeightChange {
                server: w.server.clone(),
                from: w.from,
                to: w.to,
            })
            .collect(),
        scheduler: d
            .scheduler
            .as_ref()
            .map(|s| s.name().to_owned())
            .unwrap_or_default(),
        reason: d.reason.clone(),
        applied: d.applied,
    }
}

fn run_to_proto(r: &RunRecord) -> pb::EvaluationResult {
    let since = r.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let outcome = match &r.outcome {
        Ok(d) => pb::evaluation_result::Outcome::Decision(decision_to_proto(d)),
        Err(f) => pb::evaluation_result::Outcome::Failure(pb::PolicyFailure {
            service: f.service.as_ref().map(key_to_proto),
            kind: f.kind.clone(),
            message: f.message.clone(),
        }),
    };
    pb::EvaluationResult {
        time: Some(prost_types::Timestamp {
            seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
        }),
        duration: Some(duration_to_proto(r.duration)),
        fuel_used: r.fuel_used,
        output_truncated: r.output_truncated,
        outcome: Some(outcome),
    }
}

fn event_to_proto(e: &Event, missed: u64) -> pb::PolicyEvent {
    pb::PolicyEvent {
        attachment_id: e.attachment.clone(),
        result: Some(run_to_proto(&e.run)),
        quarantined: e.quarantined,
        missed,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::PolicyEvent, Status>> + Send>>;

#[tonic::async_trait]
impl<I: IpvsOps> PolicyService for PolicyApi<I> {
    async fn upload_policy(
        &self,
        req: Request<pb::UploadPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        let req = req.into_inner();
        let p = self.attachments.upload(req.component, req.name).await?;
        tracing::info!(hash = %p.hash, name = %p.name, size = p.size, "policy uploaded");
        Ok(Response::new(policy_to_proto(&p)))
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
    ) -> Result<Response<pb::Attachment>, Status> {
        let spec = attach_spec(req.get_ref())?;
        let id = self.attachments.attach_saved(spec.clone()).await?;
        Ok(Response::new(attachment_to_proto(&id, &spec)))
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
    ) -> Result<Response<pb::AttachmentStatus>, Status> {
        let s = self.attachments.status(&req.get_ref().id).await?;
        Ok(Response::new(pb::AttachmentStatus {
            attachment: Some(attachment_to_proto(&s.id, &s.spec)),
            last: s.last.as_ref().map(run_to_proto),
            last_decision: s.last_decision.as_ref().map(decision_to_proto),
            consecutive_failures: s.consecutive_failures,
            quarantined: s.quarantined,
            evaluations: s.evaluations,
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

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
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
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::PolicyEvent, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(task(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
