//! `ipvs.agent.v1.StatsService` over any [`IpvsOps`]: snapshots, and a stream of them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipvs_proto::v1 as pb;
use pb::stats_service_server::{StatsService, StatsServiceServer};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert::{self, state::time_to_proto, stats::service_stats_to_proto};
use crate::ipvs::{IpvsOps, ServiceKey};
use crate::kernel::{Kernel, Reader};
use crate::shutdown::Shutdown;

/// Samples a watcher may have queued before the sampler waits for it: a slow client delays its
/// own stream, never the agent.
const WATCH_BUFFER: usize = 4;

/// The statistics service, generic over the core so tests can run it on a fake table.
#[derive(Debug)]
pub struct StatsApi<I> {
    kernel: Arc<Kernel<I>>,
    shutdown: Option<Shutdown>,
}

impl<I: IpvsOps> StatsApi<I> {
    pub fn new(kernel: Arc<Kernel<I>>) -> Self {
        StatsApi {
            kernel,
            shutdown: None,
        }
    }

    /// Ends every watch when `shutdown` fires, so a stopping server need not wait for watchers.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    pub fn into_server(self) -> StatsServiceServer<Self> {
        StatsServiceServer::new(self)
    }
}

/// One snapshot: `key`'s service, or the whole table (one `table()` call).
async fn snapshot<I: IpvsOps>(
    ipvs: Reader<'_, I>,
    key: Option<&ServiceKey>,
) -> Result<Vec<pb::ServiceStats>, Status> {
    match key {
        Some(key) => {
            let entry = ipvs.service(key).await?;
            let dests = ipvs.destinations(key).await?;
            Ok(vec![service_stats_to_proto(&entry, &dests)])
        }
        None => Ok(ipvs
            .table()
            .await?
            .iter()
            .map(|(svc, dests)| service_stats_to_proto(svc, dests))
            .collect()),
    }
}

async fn sample<I: IpvsOps>(
    ipvs: Reader<'_, I>,
    key: Option<&ServiceKey>,
) -> Result<pb::WatchStatsResponse, Status> {
    let services = snapshot(ipvs, key).await?;
    Ok(pb::WatchStatsResponse {
        time: Some(time_to_proto(SystemTime::now())),
        services,
    })
}

/// Sends a sample every `period` until the client goes away (the receiver is dropped), a
/// sample fails (the error ends the stream) or the server stops (the stream ends cleanly).
async fn watch<I: IpvsOps>(
    kernel: Arc<Kernel<I>>,
    key: Option<ServiceKey>,
    period: Duration,
    tx: mpsc::Sender<Result<pb::WatchStatsResponse, Status>>,
    shutdown: Option<Shutdown>,
) {
    let stop = async {
        match shutdown {
            Some(s) => s.requested().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tx.closed() => return,
            () = &mut stop => return,
            _ = ticker.tick() => {}
        }
        let next = sample(kernel.read(), key.as_ref()).await;
        let failed = next.is_err();
        if tx.send(next).await.is_err() || failed {
            return;
        }
    }
}

#[tonic::async_trait]
impl<I: IpvsOps> StatsService for StatsApi<I> {
    async fn get_stats(
        &self,
        request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let key = convert::stats::get_stats(request.get_ref())?;
        Ok(Response::new(pb::GetStatsResponse {
            services: snapshot(self.kernel.read(), key.as_ref()).await?,
        }))
    }

    type WatchStatsStream = ReceiverStream<Result<pb::WatchStatsResponse, Status>>;

    /// The first sample is taken before the call returns, so a bad key fails the call itself.
    async fn watch_stats(
        &self,
        request: Request<pb::WatchStatsRequest>,
    ) -> Result<Response<Self::WatchStatsStream>, Status> {
        let (key, period) = convert::stats::watch_stats(request.get_ref())?;
        let first = sample(self.kernel.read(), key.as_ref()).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tx.try_send(Ok(first))
            .map_err(|e| super::status::internal(format!("watch buffer: {e}")))?;
        tokio::spawn(watch(
            self.kernel.clone(),
            key,
            period,
            tx,
            self.shutdown.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
