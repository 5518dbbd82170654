//! `ipvs.agent.v1.StateService` over [`Declared`]: parse, call, convert back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use ipvs_proto::v1 as pb;
use pb::state_service_server::{StateService, StateServiceServer};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use super::audit::logged;
use crate::convert::ipvs::{destination_address, key_to_proto, service_key};
use crate::convert::state::{node_spec, node_spec_to_proto, time_to_proto};
use crate::convert::table::change_to_proto;
use crate::convert::{Field, FieldError, Problem, duration_or, duration_to_proto, nested};
use crate::declared::drain::{DrainRequest, Progress};
use crate::declared::health::HealthView;
use crate::declared::{ApplyOptions, Declared, EventKind, Outcome, Step, revision_info};
use crate::ipvs::IpvsOps;
use crate::link::LinkOps;
use crate::shutdown::Shutdown;
use crate::state::DriftMode;
use ipvs_health::check::State as HealthState;

/// A drain waits this long for active connections when the request does not say.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest a drain may wait: a year, longer than any use; its deadline is the clock
/// plus the timeout, which a longer one would overflow.
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Time between a drain's connection counts.
pub const DRAIN_POLL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct StateApi<I, L> {
    state: Arc<Declared<I, L>>,
    shutdown: Option<Shutdown>,
}

impl<I: IpvsOps, L: LinkOps> StateApi<I, L> {
    pub fn new(state: Arc<Declared<I, L>>) -> Self {
        StateApi {
            state,
            shutdown: None,
        }
    }

    /// Ends every WatchEvents stream when `shutdown` fires, so a stopping server need not wait
    /// for watchers. (A drain in progress is no watch: it goes on in the agent either way.)
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    pub fn into_server(self) -> StateServiceServer<Self> {
        StateServiceServer::new(self).max_decoding_message_size(super::MAX_TABLE_REQUEST_BYTES)
    }
}

fn step_to_proto(s: &Step) -> pb::StateChange {
    pb::StateChange {
        change: Some(match s {
            Step::Ipvs(c) => pb::state_change::Change::Ipvs(change_to_proto(c)),
            other => pb::state_change::Change::Node(pb::NodeChange {
                description: other.to_string(),
            }),
        }),
    }
}

fn outcome_to_proto(o: &Outcome) -> pb::ApplyStateResponse {
    pb::ApplyStateResponse {
        changes: o.steps.iter().map(step_to_proto).collect(),
        applied: o.applied,
        revision: o.revision,
        recorded: o.recorded,
    }
}

/// A rollback's outcome: an apply's, of the revision rolled back to.
fn rollback_to_proto(o: &Outcome) -> pb::RollbackResponse {
    let pb::ApplyStateResponse {
        changes,
        applied,
        revision,
        recorded,
    } = outcome_to_proto(o);
    pb::RollbackResponse {
        changes,
        applied,
        revision,
        recorded,
    }
}

fn drift_mode_to_proto(m: DriftMode) -> pb::DriftMode {
    match m {
        DriftMode::Report => pb::DriftMode::Report,
        DriftMode::Enforce => pb::DriftMode::Enforce,
    }
}

fn drifts(v: &[String]) -> Vec<pb::Drift> {
    v.iter()
        .map(|d| pb::Drift {
            description: d.clone(),
        })
        .collect()
}

fn drain_timeout(d: Option<&prost_types::Duration>) -> Result<Duration, Problem> {
    let value = duration_or(d, DEFAULT_DRAIN_TIMEOUT)?;
    if value > MAX_DRAIN_TIMEOUT {
        return Err(Problem::TooLong {
            value,
            max: MAX_DRAIN_TIMEOUT,
        });
    }
    Ok(value)
}

fn drain_request(r: &pb::DrainRequest) -> Result<DrainRequest, FieldError> {
    let (addr, port) = nested(r.destination.as_ref(), "destination", destination_address)?;
    Ok(DrainRequest {
        service: nested(r.service.as_ref(), "service", service_key)?,
        addr,
        port,
        timeout: drain_timeout(r.timeout.as_ref()).field("timeout")?,
        keep: r.keep,
        expected: r.expected_revision,
        poll: DRAIN_POLL,
    })
}

fn progress_to_proto(p: &Progress) -> pb::DrainResponse {
    match *p {
        Progress::WeightZero { previous } => pb::DrainResponse {
            phase: pb::DrainPhase::WeightZero.into(),
            previous_weight: previous,
            ..Default::default()
        },
        Progress::Waiting {
            active,
            inactive,
            elapsed,
        } => pb::DrainResponse {
            phase: pb::DrainPhase::Waiting.into(),
            active_connections: active,
            inactive_connections: inactive,
            elapsed: Some(duration_to_proto(elapsed)),
            ..Default::default()
        },
        Progress::Done {
            active,
            inactive,
            elapsed,
            timed_out,
            removed,
            revision,
        } => pb::DrainResponse {
            phase: pb::DrainPhase::Done.into(),
            active_connections: active,
            inactive_connections: inactive,
            elapsed: Some(duration_to_proto(elapsed)),
            timed_out,
            removed,
            revision,
            ..Default::default()
        },
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl<I: IpvsOps, L: LinkOps> StateService for StateApi<I, L> {
    async fn apply_state(
        &self,
        req: Request<pb::ApplyStateRequest>,
    ) -> Result<Response<pb::ApplyStateResponse>, Status> {
        let req = req.into_inner();
        let spec = node_spec(&req.spec.unwrap_or_default())?;
        let opts = ApplyOptions {
            prune: req.prune,
            dry_run: req.dry_run,
            expected: req.expected_revision,
        };
        let target = format!(
            "{} services{}{}",
            spec.table.len(),
            if opts.prune { ", prune" } else { "" },
            if opts.dry_run { ", dry run" } else { "" }
        );
        logged(
            "ApplyState",
            Ok(()),
            |_| target,
            |_| async { Ok(outcome_to_proto(&self.state.apply(spec, opts).await?)) },
        )
        .await
    }

    async fn get_state(
        &self,
        _req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let s = self.state.snapshot().await;
        Ok(Response::new(pb::GetStateResponse {
            revision: s.current.as_ref().map_or(0, |r| r.number),
            spec: s.current.as_ref().map(|r| node_spec_to_proto(&r.spec)),
            applied_at: s.current.as_ref().map(|r| time_to_proto(r.applied_at)),
            drift_mode: drift_mode_to_proto(s.drift_mode).into(),
            last_check: s.last_check.map(time_to_proto),
            drift: drifts(&s.drift),
            health: s.health.iter().map(health_to_proto).collect(),
        }))
    }

    async fn export(
        &self,
        _req: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        let spec = self.state.export().await?;
        Ok(Response::new(pb::ExportResponse {
            spec: Some(node_spec_to_proto(&spec)),
        }))
    }

    async fn rollback(
        &self,
        req: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let req = req.into_inner();
        logged(
            "Rollback",
            Ok(()),
            |_| format!("to {}", req.revision),
            |_| async {
                let o = self
                    .state
                    .rollback(req.revision, req.dry_run, req.expected_revision)
                    .await?;
                Ok(rollback_to_proto(&o))
            },
        )
        .await
    }

    async fn list_revisions(
        &self,
        _req: Request<pb::ListRevisionsRequest>,
    ) -> Result<Response<pb::ListRevisionsResponse>, Status> {
        Ok(Response::new(pb::ListRevisionsResponse {
            revisions: self
                .state
                .revisions()
                .await
                .iter()
                .map(revision_info)
                .collect(),
        }))
    }

    type DrainStream = Boxed<pb::DrainResponse>;

    async fn drain(
        &self,
        req: Request<pb::DrainRequest>,
    ) -> Result<Response<Self::DrainStream>, Status> {
        let r = drain_request(req.get_ref())?;
        let mut rx = self.state.drain(r).await?;
        let stream = async_stream(move |tx| async move {
            while let Some(p) = rx.recv().await {
                let item = p.map(|p| progress_to_proto(&p)).map_err(Status::from);
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(stream))
    }

    type WatchStateEventsStream = Boxed<pb::WatchStateEventsResponse>;

    async fn watch_state_events(
        &self,
        _req: Request<pb::WatchStateEventsRequest>,
    ) -> Result<Response<Self::WatchStateEventsStream>, Status> {
        let mut rx = self.state.subscribe();
        let shutdown = self.shutdown.clone();
        let stream = async_stream(move |tx| async move {
            let stopped = async {
                match shutdown {
                    Some(s) => s.requested().await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(stopped);
            loop {
                let received = tokio::select! {
                    () = &mut stopped => break,
                    () = tx.closed() => break,
                    e = rx.recv() => e,
                };
                let e = match received {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                use pb::watch_state_events_response::Event as E;
                let event = match e.kind {
                    EventKind::Applied { revision, origin } => E::Applied(pb::Revision {
                        revision,
                        applied_at: Some(time_to_proto(e.time)),
                        origin,
                    }),
                    EventKind::DriftFound(d) => E::DriftFound(pb::DriftFound { drift: drifts(&d) }),
                    EventKind::DriftRepaired(d) => {
                        E::DriftRepaired(pb::DriftRepaired { drift: drifts(&d) })
                    }
                    EventKind::Health(h) => E::HealthChanged(pb::HealthChanged {
                        health: Some(health_to_proto(&h)),
                    }),
                    EventKind::Quorum(q) => E::QuorumChanged(pb::QuorumChanged {
                        service: Some(key_to_proto(&q.service)),
                        lost: q.lost,
                        healthy_weight: q.healthy_weight,
                        quorum: q.quorum,
                    }),
                };
                let msg = pb::WatchStateEventsResponse {
                    time: Some(time_to_proto(e.time)),
                    event: Some(event),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// One real server's health, as `GetState` and `WatchStateEvents` give it.
fn health_to_proto(h: &HealthView) -> pb::ServerHealth {
    let st = &h.status;
    pb::ServerHealth {
        service: Some(key_to_proto(&h.service)),
        server: std::net::SocketAddr::new(h.server.0, h.server.1).to_string(),
        check: st.kind.to_owned(),
        target: st.addr.to_string(),
        state: match st.state {
            HealthState::Up => pb::HealthState::Up,
            HealthState::Down => pb::HealthState::Down,
        }
        .into(),
        since: Some(time_to_proto(st.since)),
        streak: st.streak,
        last_result: st
            .last
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default(),
        last_latency: st.last.as_ref().map(|r| duration_to_proto(r.latency)),
        weight: Some(h.weight),
    }
}

/// A response stream fed by a task; the task ends when the client goes away.
fn async_stream<T, F, Fut>(body: F) -> Boxed<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drain's deadline is the clock plus its timeout: a huge timeout overflowed it and
    /// panicked the request.
    #[test]
    fn drain_timeouts_the_clock_cannot_add_are_refused() {
        let request = |seconds| pb::DrainRequest {
            service: Some(pb::ServiceKey {
                address: "10.0.0.1".into(),
                port: 80,
                ..Default::default()
            }),
            destination: Some(pb::Destination {
                address: "10.0.1.1".into(),
                port: 80,
                ..Default::default()
            }),
            timeout: Some(prost_types::Duration { seconds, nanos: 0 }),
            ..Default::default()
        };
        assert_eq!(
            drain_request(&request(i64::MAX)).map(|r| r.timeout),
            Err(FieldError::new(
                "timeout",
                Problem::TooLong {
                    value: Duration::from_secs(i64::MAX as u64),
                    max: MAX_DRAIN_TIMEOUT,
                }
            ))
        );
        assert_eq!(
            drain_request(&request(600)).map(|r| r.timeout),
            Ok(Duration::from_secs(600))
        );
    }
}
