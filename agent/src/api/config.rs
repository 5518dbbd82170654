//! `ipvs.agent.v1.ConfigService` over the node core: timeouts, sync daemons, connections.

use std::sync::Arc;

use ipvs_proto::v1 as pb;
use pb::config_service_server::{ConfigService, ConfigServiceServer};
use tonic::{Request, Response, Status};

use super::audit::logged;
use crate::convert::config::{
    connection_to_proto, daemon_to_proto, set_timeouts, start_daemon, stop_daemon,
    timeouts_to_proto,
};
use crate::ipvs::{IpvsOp, IpvsOps};
use crate::kernel::Kernel;

/// The node-wide settings service, generic over the core so tests can run it on a fake.
#[derive(Debug)]
pub struct ConfigApi<I> {
    kernel: Arc<Kernel<I>>,
}

impl<I: IpvsOps> ConfigApi<I> {
    pub fn new(kernel: Arc<Kernel<I>>) -> Self {
        ConfigApi { kernel }
    }

    pub fn into_server(self) -> ConfigServiceServer<Self> {
        ConfigServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl<I: IpvsOps> ConfigService for ConfigApi<I> {
    async fn get_timeouts(
        &self,
        _request: Request<pb::GetTimeoutsRequest>,
    ) -> Result<Response<pb::GetTimeoutsResponse>, Status> {
        let t = self.kernel.read().timeouts().await?;
        Ok(Response::new(pb::GetTimeoutsResponse {
            timeouts: Some(timeouts_to_proto(&t)),
        }))
    }

    /// Answers with the timeouts now in force, the unchanged ones included.
    async fn set_timeouts(
        &self,
        request: Request<pb::SetTimeoutsRequest>,
    ) -> Result<Response<pb::SetTimeoutsResponse>, Status> {
        let parsed = set_timeouts(request.get_ref());
        logged(
            "SetTimeouts",
            parsed,
            |t| IpvsOp::SetTimeouts(*t).to_string(),
            |t| async move {
                self.kernel.turn().await.ipvs().set_timeouts(&t).await?;
                let now = self.kernel.read().timeouts().await?;
                Ok(pb::SetTimeoutsResponse {
                    timeouts: Some(timeouts_to_proto(&now)),
                })
            },
        )
        .await
    }

    async fn start_daemon(
        &self,
        request: Request<pb::StartDaemonRequest>,
    ) -> Result<Response<pb::StartDaemonResponse>, Status> {
        let parsed = start_daemon(request.get_ref());
        logged(
            "StartDaemon",
            parsed,
            |d| IpvsOp::NewDaemon(d.clone()).to_string(),
            |d| async move {
                self.kernel.turn().await.ipvs().new_daemon(&d).await?;
                Ok(pb::StartDaemonResponse {})
            },
        )
        .await
    }

    async fn stop_daemon(
        &self,
        request: Request<pb::StopDaemonRequest>,
    ) -> Result<Response<pb::StopDaemonResponse>, Status> {
        let parsed = stop_daemon(request.get_ref());
        logged(
            "StopDaemon",
            parsed,
            |s| IpvsOp::DelDaemon(*s).to_string(),
            |s| async move {
                self.kernel.turn().await.ipvs().del_daemon(s).await?;
                Ok(pb::StopDaemonResponse {})
            },
        )
        .await
    }

    async fn list_daemons(
        &self,
        _request: Request<pb::ListDaemonsRequest>,
    ) -> Result<Response<pb::ListDaemonsResponse>, Status> {
        let daemons = self.kernel.read().daemons().await?;
        Ok(Response::new(pb::ListDaemonsResponse {
            daemons: daemons.iter().map(daemon_to_proto).collect(),
        }))
    }

    async fn list_connections(
        &self,
        _request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let conns = self.kernel.read().connections().await?;
        Ok(Response::new(pb::ListConnectionsResponse {
            connections: conns.iter().map(connection_to_proto).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use pb::config_service_client::ConfigServiceClient;
    use tonic::Code;
    use tonic::transport::Channel;

    use super::*;
    use crate::api::tests::TestServer;
    use crate::ipvs::conn::parse_line;
    use crate::ipvs::fake::Write;
    use crate::ipvs::{Daemon, DaemonState, Timeouts};

    fn client(server: &TestServer) -> ConfigServiceClient<Channel> {
        ConfigServiceClient::new(server.channel.clone())
    }

    fn refused<T: std::fmt::Debug>(r: Result<Response<T>, Status>, code: Code, message: &str) {
        match r {
            Ok(v) => panic!("expected {code:?} {message:?}, got {v:?}"),
            Err(s) => assert_eq!((s.code(), s.message()), (code, message), "{s:?}"),
        }
    }

    #[tokio::test]
    async fn timeouts_set_only_what_is_given() {
        let server = TestServer::start().await;
        let mut config = client(&server);
        let got = config
            .get_timeouts(pb::GetTimeoutsRequest {})
            .await
            .expect("get")
            .into_inner()
            .timeouts;
        let secs = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        let t = |tcp, tcp_fin, udp| {
            Some(pb::Timeouts {
                tcp: secs(tcp),
                tcp_fin: secs(tcp_fin),
                udp: secs(udp),
            })
        };
        assert_eq!(got, t(900, 120, 300));
        let set = config
            .set_timeouts(pb::SetTimeoutsRequest {
                timeouts: t(3600, 0, 60),
            })
            .await
            .expect("set")
            .into_inner()
            .timeouts;
        assert_eq!(set, t(3600, 120, 60), "0 keeps tcpfin");
        assert_eq!(
            server.ipvs.writes(),
            vec![Write::SetTimeouts(Timeouts {
                tcp: 3600,
                tcp_fin: 0,
                udp: 60
            })]
        );
        refused(
            config
                .set_timeouts(pb::SetTimeoutsRequest { timeouts: None })
                .await,
            Code::InvalidArgument,
            "invalid timeouts: is required",
        );
    }

    #[tokio::test]
    async fn daemons_start_list_and_stop() {
        let server = TestServer::start().await;
        let mut config = client(&server);
        let master = pb::Daemon {
            role: pb::DaemonRole::Master.into(),
            interface: "lo".into(),
            sync_id: 7,
            ..Default::default()
        };
        config
            .start_daemon(pb::StartDaemonRequest {
                daemon: Some(master.clone()),
            })
            .await
            .expect("start");
        refused(
            config
                .start_daemon(pb::StartDaemonRequest {
                    daemon: Some(master.clone()),
                })
                .await,
            Code::AlreadyExists,
            "sync daemon already running",
        );
        let listed = config
            .list_daemons(pb::ListDaemonsRequest {})
            .await
            .expect("list")
            .into_inner()
            .daemons;
        // The kernel reports its defaults for what was left unset.
        assert_eq!(
            listed,
            vec![pb::Daemon {
                sync_maxlen: 1472,
                group: "224.0.0.81".into(),
                port: 8848,
                ttl: 1,
                ..master
            }]
        );
        refused(
            config
                .stop_daemon(pb::StopDaemonRequest {
                    role: pb::DaemonRole::Backup.into(),
                })
                .await,
            Code::NotFound,
            "no sync daemon running",
        );
        config
            .stop_daemon(pb::StopDaemonRequest {
                role: pb::DaemonRole::Master.into(),
            })
            .await
            .expect("stop");
        refused(
            config
                .start_daemon(pb::StartDaemonRequest {
                    daemon: Some(pb::Daemon {
                        role: pb::DaemonRole::Backup.into(),
                        ..Default::default()
                    }),
                })
                .await,
            Code::InvalidArgument,
            "invalid daemon.interface: is required",
        );
        assert_eq!(
            server.ipvs.writes(),
            vec![
                Write::NewDaemon(Daemon {
                    state: DaemonState::Master,
                    mcast_ifn: "lo".into(),
                    sync_id: 7,
                    sync_maxlen: None,
                    mcast_group: None,
                    mcast_port: None,
                    mcast_ttl: None,
                }),
                Write::NewDaemon(Daemon {
                    state: DaemonState::Master,
                    mcast_ifn: "lo".into(),
                    sync_id: 7,
                    sync_maxlen: None,
                    mcast_group: None,
                    mcast_port: None,
                    mcast_ttl: None,
                }),
                Write::DelDaemon(DaemonState::Backup),
                Write::DelDaemon(DaemonState::Master),
            ],
            "the invalid request never reached the core"
        );
        assert!(
            config
                .list_daemons(pb::ListDaemonsRequest {})
                .await
                .expect("list")
                .into_inner()
                .daemons
                .is_empty()
        );
    }

    #[tokio::test]
    async fn connections_are_listed() {
        let server = TestServer::start().await;
        let lines = [
            "TCP C0A86401 D4C2 C0A86401 0050 7F000001 1F91 TIME_WAIT       119",
            "TCP 2001:0db8:0000:0000:0000:0000:0000:0009 C350 \
             2001:0db8:0000:0000:0000:0000:0000:0001 01BB \
             2001:0db8:0000:0000:0000:0000:0001:0001 01BB SYN_RECV         59",
        ];
        server.ipvs.set_connections(
            lines
                .iter()
                .map(|l| parse_line(l).expect("test line"))
                .collect(),
        );
        let conns = client(&server)
            .list_connections(pb::ListConnectionsRequest {})
            .await
            .expect("list")
            .into_inner()
            .connections;
        let rows: Vec<(String, u32, u32, String, i64)> = conns
            .into_iter()
            .map(|c| {
                (
                    c.protocol,
                    c.client_port,
                    c.destination_port,
                    c.state,
                    c.expires.map_or(-1, |e| e.seconds),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("TCP".into(), 54466, 8081, "TIME_WAIT".into(), 119),
                ("TCP".into(), 50000, 443, "SYN_RECV".into(), 59),
            ]
        );
        server.ipvs.fail_next(crate::ipvs::IpvsError::Unavailable);
        let err = client(&server)
            .list_connections(pb::ListConnectionsRequest {})
            .await
            .expect_err("no IPVS");
        assert_eq!(err.code(), Code::Unavailable);
    }
}
