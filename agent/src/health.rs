//! `grpc.health.v1`: what load balancers and probes ask before they send a call.
//!
//! The agent is SERVING while it can read the kernel's IPVS table and NOT_SERVING while it
//! cannot (no IPVS module, netlink gone): every one of its services needs the kernel, so each
//! `ipvs.agent.v1` service, and the server as a whole (""), has that one status. The kernel is
//! asked at start and then every [`PROBE_INTERVAL`]; a change is logged once.

use std::sync::Arc;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::{HealthReporter, health_reporter};

use crate::ipvs::IpvsOps;
use crate::kernel::Kernel;
use crate::shutdown::Shutdown;

/// How often the kernel is asked.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The health service, and a task that keeps its statuses for `services` (full gRPC names)
/// up to date until `shutdown`.
pub fn serve<I: IpvsOps>(
    kernel: Arc<Kernel<I>>,
    services: Vec<&'static str>,
    shutdown: Shutdown,
) -> HealthServer<impl Health> {
    let (reporter, server) = health_reporter();
    tokio::spawn(probe(kernel, reporter, services, shutdown));
    server
}

async fn probe<I: IpvsOps>(
    kernel: Arc<Kernel<I>>,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    shutdown: Shutdown,
) {
    let mut last = None;
    loop {
        let status = match kernel.read().info().await {
            Ok(_) => ServingStatus::Serving,
            Err(e) => {
                if last != Some(ServingStatus::NotServing) {
                    tracing::warn!(error = %e, "health: the kernel's IPVS table cannot be read");
                }
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            if last.is_some() {
                tracing::info!(%status, "health changed");
            }
            for name in std::iter::once("").chain(services.iter().copied()) {
                reporter.set_service_status(name, status).await;
            }
            last = Some(status);
        }
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            () = shutdown.clone().requested() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Request;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::{HealthCheckRequest, health_server::Health as _};
    use tonic_health::server::HealthService;

    use super::*;
    use crate::ipvs::IpvsError;
    use crate::ipvs::fake::FakeIpvs;

    async fn status(health: &HealthService, service: &str) -> Wire {
        let reply = health
            .check(Request::new(HealthCheckRequest {
                service: service.into(),
            }))
            .await
            .expect("a known service");
        reply.into_inner().status()
    }

    #[tokio::test(start_paused = true)]
    async fn every_service_follows_the_kernel() {
        let ipvs = Arc::new(FakeIpvs::default());
        let kernel = Arc::new(Kernel::new(ipvs.clone()));
        let (reporter, _) = health_reporter();
        let health = HealthService::from_health_reporter(reporter.clone());
        let (trigger, shutdown) = Shutdown::new();
        let names = ["", "ipvs.agent.v1.IpvsService"];
        ipvs.fail_next(IpvsError::Unavailable);
        let task = tokio::spawn(probe(kernel, reporter, vec![names[1]], shutdown));
        tokio::time::sleep(Duration::from_millis(1)).await;
        for name in names {
            assert_eq!(status(&health, name).await, Wire::NotServing, "{name:?}");
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
        for name in names {
            assert_eq!(status(&health, name).await, Wire::Serving, "{name:?}");
        }
        trigger.fire();
        task.await.expect("the probe stops");
    }
}
