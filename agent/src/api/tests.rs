//! The API end to end through gRPC: a real tonic client over a unix socket, the real server
//! wiring, and in-memory cores underneath.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipvs_proto::v1 as pb;
use pb::ipvs_service_client::IpvsServiceClient;
use pb::link_service_client::LinkServiceClient;
use pb::stats_service_client::StatsServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::ipvs::fake::{FakeIpvs, Write};
use crate::ipvs::{
    Destination, ForwardMethod, IpvsError, IpvsOps, Protocol, Scheduler, Service, ServiceFlags,
    ServiceKey, Stats,
};
use crate::server::ServerError;
use crate::shutdown::Shutdown;
use crate::testing::{Services, TestAgent};

/// The agent's routes over fake cores, served on a unix socket in a temp dir
/// ([`crate::testing`]), with a client channel to it.
pub(crate) struct TestServer {
    pub ipvs: Arc<FakeIpvs>,
    pub socket: PathBuf,
    pub channel: Channel,
    agent: TestAgent,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(false).await
    }

    /// With `policies`, also PolicyService over a real engine (no artifact cache).
    pub(crate) async fn start_with(policies: bool) -> Self {
        let agent = TestAgent::start(Services {
            policies,
            state: false,
        })
        .await;
        TestServer {
            ipvs: agent.ipvs.clone(),
            socket: agent.server.socket().to_owned(),
            channel: agent.channel().await,
            agent,
        }
    }

    pub(crate) fn ipvs_client(&self) -> IpvsServiceClient<Channel> {
        IpvsServiceClient::new(self.channel.clone())
    }

    pub(crate) fn stats_client(&self) -> StatsServiceClient<Channel> {
        StatsServiceClient::new(self.channel.clone())
    }

    pub(crate) fn link_client(&self) -> LinkServiceClient<Channel> {
        LinkServiceClient::new(self.channel.clone())
    }

    /// Stops the server as a signal would and waits for it to finish.
    pub(crate) async fn stop(self) -> Result<(), ServerError> {
        self.agent.stop().await
    }
}

fn v4(octets: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(octets).to_string()
}

/// A TCP service key as replies carry it (with its family).
fn tcp_key(octets: [u8; 4], port: u32) -> Option<pb::ServiceKey> {
    Some(pb::ServiceKey {
        protocol: pb::Protocol::Tcp.into(),
        address: v4(octets),
        port,
        family: pb::AddressFamily::Inet.into(),
        ..Default::default()
    })
}

const VIP: [u8; 4] = [192, 168, 100, 1];

fn vip_key() -> ServiceKey {
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: "192.168.100.1".parse().expect("vip"),
        port: 80,
    }
}

fn rr(key: Option<pb::ServiceKey>) -> pb::CreateServiceRequest {
    pb::CreateServiceRequest {
        service: Some(pb::Service {
            key,
            scheduler: pb::Scheduler::Rr.into(),
            ..Default::default()
        }),
    }
}

fn masq(octets: [u8; 4], port: u32, weight: Option<u32>) -> Option<pb::Destination> {
    Some(pb::Destination {
        address: v4(octets),
        port,
        forwarding: pb::ForwardingMethod::Masquerade.into(),
        weight,
        ..Default::default()
    })
}

fn add_dest(dest: Option<pb::Destination>) -> pb::AddDestinationRequest {
    pb::AddDestinationRequest {
        service: tcp_key(VIP, 80),
        destination: dest,
    }
}

/// Asserts the code and the exact message of a failed call.
fn refused<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>, code: Code, message: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} {message:?}, got {v:?}"),
        Err(s) => assert_eq!((s.code(), s.message()), (code, message), "{s:?}"),
    }
}

/// The seed scenario: a round-robin service and two NAT real servers.
async fn seed(server: &TestServer) {
    let mut ipvs = server.ipvs_client();
    ipvs.create_service(rr(tcp_key(VIP, 80)))
        .await
        .expect("create service");
    for port in [8081, 8082] {
        ipvs.add_destination(add_dest(masq([127, 0, 0, 1], port, None)))
            .await
            .expect("add destination");
    }
}

#[tokio::test]
async fn seed_scenario_reads_back_with_defaults() {
    let server = TestServer::start().await;
    let mut ipvs = server.ipvs_client();
    let created = ipvs
        .create_service(rr(tcp_key(VIP, 80)))
        .await
        .expect("create")
        .into_inner()
        .service
        .expect("service in reply");
    assert_eq!(created.key, tcp_key(VIP, 80));
    assert_eq!(created.scheduler, i32::from(pb::Scheduler::Rr));
    // The kernel's view: HASHED is set by the kernel, not by the request.
    assert_eq!(created.flags, ServiceFlags::HASHED);
    // Not persistent, default granularity: both left at their zero values.
    assert_eq!(
        created
            .options
            .map(|o| (o.persistence_timeout, o.ipv4_netmask, o.ipv6_prefix_length)),
        Some((None, String::new(), 0))
    );
    for port in [8081, 8082] {
        ipvs.add_destination(add_dest(masq([127, 0, 0, 1], port, None)))
            .await
            .expect("add destination");
    }

    let listed = list_services(&mut ipvs).await;
    let [svc] = listed.as_slice() else {
        panic!("one service expected: {listed:?}");
    };
    let dests: Vec<(String, u32, Option<u32>, i32)> = svc
        .destinations
        .iter()
        .map(|d| (d.address.clone(), d.port, d.weight, d.forwarding))
        .collect();
    let masq = i32::from(pb::ForwardingMethod::Masquerade);
    assert_eq!(
        dests,
        vec![
            (v4([127, 0, 0, 1]), 8081, Some(1), masq),
            (v4([127, 0, 0, 1]), 8082, Some(1), masq),
        ]
    );
    assert_eq!(server.ipvs.reads(), 2, "one read-back, one table dump");

    let got = ipvs
        .get_service(pb::GetServiceRequest {
            key: tcp_key(VIP, 80),
        })
        .await
        .expect("get")
        .into_inner()
        .service;
    assert_eq!(got.as_ref(), Some(svc));

    let info = ipvs
        .get_info(pb::GetInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!((info.version, info.connection_table_size), (0x010201, 4096));
}

#[tokio::test]
async fn malformed_requests_are_refused_before_the_core() {
    let server = TestServer::start().await;
    let mut ipvs = server.ipvs_client();
    let cases: Vec<(pb::CreateServiceRequest, &str)> = vec![
        (
            pb::CreateServiceRequest { service: None },
            "invalid service: is required",
        ),
        (rr(None), "invalid service.key: is required"),
        (
            rr(Some(pb::ServiceKey {
                address: "10.1.0".into(),
                port: 80,
                ..Default::default()
            })),
            "invalid service.key.address: \"10.1.0\" is not an IP address",
        ),
        (
            rr(Some(pb::ServiceKey {
                address: "x".repeat(4096),
                port: 80,
                ..Default::default()
            })),
            "invalid service.key.address: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"... (4096 bytes) is not an IP address",
        ),
        (
            rr(Some(pb::ServiceKey {
                address: v4(VIP),
                port: 80,
                family: pb::AddressFamily::Inet6.into(),
                ..Default::default()
            })),
            "invalid service.key.family: does not match the address \"192.168.100.1\"",
        ),
        (
            rr(Some(pb::ServiceKey {
                address: v4(VIP),
                fwmark: 7,
                ..Default::default()
            })),
            "invalid service.key.address: must be unset for a fwmark service",
        ),
        (
            rr(tcp_key(VIP, 65536)),
            "invalid service.key.port: 65536 is above the maximum 65535",
        ),
        (
            pb::CreateServiceRequest {
                service: Some(pb::Service {
                    key: tcp_key(VIP, 80),
                    scheduler: 99,
                    ..Default::default()
                }),
            },
            "invalid service.scheduler: 99 is not a known value",
        ),
        // Parsed, then refused by the domain's rules.
        (
            rr(tcp_key(VIP, 0)),
            "a service with port 0 must be persistent",
        ),
        (
            pb::CreateServiceRequest {
                service: Some(pb::Service {
                    key: tcp_key(VIP, 80),
                    scheduler: pb::Scheduler::Rr.into(),
                    options: Some(pb::ServiceOptions {
                        one_packet: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            "one-packet scheduling is only for UDP and fwmark services",
        ),
    ];
    for (req, message) in cases {
        refused(
            ipvs.create_service(req).await,
            Code::InvalidArgument,
            message,
        );
    }

    let dest_cases: Vec<(pb::AddDestinationRequest, &str)> = vec![
        (
            add_dest(masq([10, 2, 0, 2], 8080, Some(65536))),
            "invalid destination.weight: 65536 is above the maximum 65535",
        ),
        (
            add_dest(masq([10, 2, 0, 2], 65536, None)),
            "invalid destination.port: 65536 is above the maximum 65535",
        ),
        (
            add_dest(Some(pb::Destination {
                forwarding: 99,
                ..masq([10, 2, 0, 2], 8080, None).expect("dest")
            })),
            "invalid destination.forwarding: 99 is not a known value",
        ),
        (
            pb::AddDestinationRequest {
                service: None,
                destination: masq([10, 2, 0, 2], 8080, None),
            },
            "invalid service: is required",
        ),
        (
            add_dest(Some(pb::Destination {
                tunnel: Some(pb::Tunnel {
                    r#type: pb::TunnelType::Gue.into(),
                    port: 6080,
                    checksum: 0,
                }),
                ..masq([10, 2, 0, 2], 8080, None).expect("dest")
            })),
            "tunnel options are only for tunnel (-i) real servers",
        ),
    ];
    for (req, message) in dest_cases {
        refused(
            ipvs.add_destination(req).await,
            Code::InvalidArgument,
            message,
        );
    }
    assert_eq!(server.ipvs.writes(), vec![], "nothing reached the core");
}

/// A refusal by ipvsadm's rules keeps the rule's words and names its field in a
/// `google.rpc.BadRequest`, as a malformed field does.
#[tokio::test]
async fn rule_refusals_name_their_field() {
    let server = TestServer::start().await;
    let mut ipvs = server.ipvs_client();
    let gue_without_port = |octets, port| {
        Some(pb::Destination {
            forwarding: pb::ForwardingMethod::Tunnel.into(),
            tunnel: Some(pb::Tunnel {
                r#type: pb::TunnelType::Gue.into(),
                ..Default::default()
            }),
            ..masq(octets, port, None).expect("dest")
        })
    };
    let with_dests = pb::CreateServiceRequest {
        service: Some(pb::Service {
            destinations: vec![
                masq([10, 2, 0, 1], 8080, None).expect("dest"),
                gue_without_port([10, 2, 0, 2], 80).expect("dest"),
            ],
            ..rr(tcp_key(VIP, 80)).service.expect("service")
        }),
    };
    let cases: Vec<(Result<(), Status>, &str, &str)> = vec![
        (
            ipvs.create_service(rr(tcp_key(VIP, 0))).await.map(drop),
            "a service with port 0 must be persistent",
            "service.key.port",
        ),
        (
            ipvs.create_service(with_dests).await.map(drop),
            "real server 2 of 2 (10.2.0.2:80): a GUE tunnel needs a tunnel port",
            "service.destinations[1].tunnel.port",
        ),
    ];
    for (r, message, field) in cases {
        let s = r.expect_err(message);
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, message));
        let fields: Vec<String> = ipvs_proto::details::field_violations(&s)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, [field], "{message}");
    }
    seed(&server).await;
    let v6 = pb::Destination {
        address: "2001:db8::1".into(),
        ..masq([0; 4], 8080, None).expect("dest")
    };
    let s = ipvs
        .add_destination(add_dest(Some(v6)))
        .await
        .expect_err("a real server of another family");
    assert_eq!(
        ipvs_proto::details::field_violations(&s)
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect::<Vec<_>>(),
        [(
            "destination.address".to_owned(),
            "a real server of another address family is only allowed in tunnel mode".to_owned()
        )]
    );
}

#[tokio::test]
async fn kernel_refusals_keep_their_meaning() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut ipvs = server.ipvs_client();
    refused(
        ipvs.create_service(rr(tcp_key(VIP, 80))).await,
        Code::AlreadyExists,
        "Service already exists",
    );
    refused(
        ipvs.add_destination(add_dest(masq([127, 0, 0, 1], 8081, None)))
            .await,
        Code::AlreadyExists,
        "Destination already exists",
    );
    refused(
        ipvs.delete_service(pb::DeleteServiceRequest {
            key: tcp_key([10, 9, 9, 9], 80),
        })
        .await,
        Code::NotFound,
        "Service not defined",
    );
    // Every refusal names its reason, errno and object for programs.
    let err = ipvs
        .add_destination(pb::AddDestinationRequest {
            service: tcp_key([10, 9, 9, 9], 80),
            destination: masq([127, 0, 0, 1], 8081, None),
        })
        .await
        .expect_err("no such service");
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "Service not defined")
    );
    let detail = ipvs_proto::details::detail(&err).expect("a detail");
    assert_eq!(
        (
            detail.reason.as_str(),
            detail.errno,
            detail.errno_name.as_str(),
            detail.object.as_str()
        ),
        (
            "SERVICE_NOT_FOUND",
            libc::ESRCH,
            "ESRCH",
            "TCP 10.9.9.9:80 -> 127.0.0.1:8081"
        )
    );
    refused(
        ipvs.delete_destination(pb::DeleteDestinationRequest {
            service: tcp_key(VIP, 80),
            destination: Some(pb::Destination {
                address: v4([127, 0, 0, 9]),
                port: 8081,
                ..Default::default()
            }),
        })
        .await,
        Code::NotFound,
        "No such destination",
    );
    refused(
        ipvs.create_service(pb::CreateServiceRequest {
            service: Some(pb::Service {
                key: tcp_key([10, 1, 0, 2], 80),
                scheduler: pb::Scheduler::Twos.into(),
                ..Default::default()
            }),
        })
        .await,
        Code::FailedPrecondition,
        "Scheduler not found: twos",
    );
    server
        .ipvs
        .fail_next(IpvsError::Netlink("connection closed".into()));
    refused(
        ipvs.list_services(pb::ListServicesRequest {}).await,
        Code::Unavailable,
        "netlink: connection closed",
    );
    server.ipvs.fail_next(IpvsError::PermissionDenied);
    refused(
        ipvs.flush(pb::FlushRequest {}).await,
        Code::PermissionDenied,
        "permission denied (you must be root or have CAP_NET_ADMIN)",
    );
}

#[tokio::test]
async fn a_missing_scheduler_is_loaded_and_the_write_retried() {
    let server = TestServer::start().await;
    server.ipvs.make_loadable("twos");
    let mut ipvs = server.ipvs_client();
    let twos = |octets| pb::CreateServiceRequest {
        service: Some(pb::Service {
            key: tcp_key(octets, 80),
            scheduler: pb::Scheduler::Twos.into(),
            ..Default::default()
        }),
    };
    let created = ipvs
        .create_service(twos([10, 1, 0, 2]))
        .await
        .expect("created after loading ip_vs_twos")
        .into_inner();
    assert_eq!(
        created.service.map(|s| s.scheduler),
        Some(pb::Scheduler::Twos.into())
    );
    ipvs.create_service(twos([10, 1, 0, 3]))
        .await
        .expect("loaded now");
    assert_eq!(server.ipvs.loads(), vec!["twos".to_owned()], "loaded once");
    let writes = server.ipvs.writes();
    assert_eq!(
        writes.len(),
        3,
        "refused, retried, then the second: {writes:?}"
    );
}

#[tokio::test]
async fn tunnel_settings_an_old_kernel_drops_are_refused_and_taken_back() {
    let server = TestServer::start().await;
    seed(&server).await;
    server.ipvs.behave_like_an_old_kernel();
    let mut ipvs = server.ipvs_client();
    let gre = |weight| {
        Some(pb::Destination {
            address: v4([10, 2, 0, 1]),
            port: 80,
            forwarding: pb::ForwardingMethod::Tunnel.into(),
            weight,
            tunnel: Some(pb::Tunnel {
                r#type: pb::TunnelType::Gre.into(),
                port: 0,
                checksum: pb::TunnelChecksum::Csum.into(),
            }),
            ..Default::default()
        })
    };
    refused(
        ipvs.add_destination(add_dest(gre(None))).await,
        Code::FailedPrecondition,
        "the kernel ignored the tunnel settings of real server 10.2.0.1:80 of service TCP \
         192.168.100.1:80 (GUE and GRE tunnels need Linux 5.2 or later); the real server was \
         removed again",
    );
    let dests = ipvs
        .list_destinations(pb::ListDestinationsRequest {
            service: tcp_key(VIP, 80),
        })
        .await
        .expect("list")
        .into_inner()
        .destinations;
    assert_eq!(dests.len(), 2, "only the seed's: {dests:?}");

    // An update to GRE of a plain IPIP server: its settings go back.
    let ipip = Some(pb::Destination {
        tunnel: None,
        weight: Some(4),
        ..gre(None).unwrap_or_default()
    });
    ipvs.add_destination(add_dest(ipip.clone()))
        .await
        .expect("plain IPIP needs no read-back");
    refused(
        ipvs.update_destination(pb::UpdateDestinationRequest {
            service: tcp_key(VIP, 80),
            destination: gre(Some(9)),
        })
        .await,
        Code::FailedPrecondition,
        "the kernel ignored the tunnel settings of real server 10.2.0.1:80 of service TCP \
         192.168.100.1:80 (GUE and GRE tunnels need Linux 5.2 or later); its settings were \
         restored",
    );
    let weight = server
        .ipvs
        .destinations(&vip_key())
        .await
        .expect("dests")
        .iter()
        .find(|d| d.dest.port == 80)
        .map(|d| d.dest.weight);
    assert_eq!(weight, Some(4), "the weight went back too");
}

#[tokio::test]
async fn update_destination_keeps_the_weight_unless_given() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut ipvs = server.ipvs_client();
    let update = |weight, upper| pb::UpdateDestinationRequest {
        service: tcp_key(VIP, 80),
        destination: Some(pb::Destination {
            upper_threshold: upper,
            ..masq([127, 0, 0, 1], 8081, weight).expect("dest")
        }),
    };
    ipvs.update_destination(update(Some(5), 0))
        .await
        .expect("set weight 5");
    ipvs.update_destination(update(None, 100))
        .await
        .expect("set a threshold, weight unset");

    let mut want = Destination::new("127.0.0.1".parse().expect("addr"), 8081);
    want.forward = ForwardMethod::Masquerade;
    want.weight = 5;
    let kept = Destination {
        upper_threshold: 100,
        ..want
    };
    let sets: Vec<Write> = server
        .ipvs
        .writes()
        .into_iter()
        .filter(|w| matches!(w, Write::SetDest(..)))
        .collect();
    assert_eq!(
        sets,
        vec![
            Write::SetDest(vip_key(), want),
            Write::SetDest(vip_key(), kept)
        ]
    );

    refused(
        ipvs.update_destination(pb::UpdateDestinationRequest {
            service: tcp_key(VIP, 80),
            destination: masq([127, 0, 0, 9], 8081, None),
        })
        .await,
        Code::NotFound,
        "No such destination",
    );
}

#[tokio::test]
async fn direct_routing_takes_the_service_port() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut ipvs = server.ipvs_client();
    ipvs.add_destination(add_dest(Some(pb::Destination {
        forwarding: pb::ForwardingMethod::DirectRoute.into(),
        ..masq([10, 2, 0, 3], 8080, Some(2)).expect("dest")
    })))
    .await
    .expect("add DR server");
    let dests = ipvs
        .list_destinations(pb::ListDestinationsRequest {
            service: tcp_key(VIP, 80),
        })
        .await
        .expect("list")
        .into_inner()
        .destinations;
    let dr: Vec<(u32, Option<u32>)> = dests
        .iter()
        .filter(|d| d.address == v4([10, 2, 0, 3]))
        .map(|d| (d.port, d.weight))
        .collect();
    assert_eq!(dr, vec![(80, Some(2))]);
}

#[tokio::test]
async fn update_service_sends_the_full_configuration() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut ipvs = server.ipvs_client();
    let updated = ipvs
        .update_service(pb::UpdateServiceRequest {
            service: Some(pb::Service {
                key: tcp_key(VIP, 80),
                scheduler: pb::Scheduler::Sh.into(),
                options: Some(pb::ServiceOptions {
                    persistence_timeout: Some(prost_types::Duration {
                        seconds: 300,
                        nanos: 0,
                    }),
                    ipv4_netmask: "255.255.255.0".into(),
                    sched_flag_1: true,
                    ..Default::default()
                }),
                // Read-only fields sent back from a read are ignored.
                flags: 0xffff,
                ..Default::default()
            }),
        })
        .await
        .expect("update")
        .into_inner()
        .service
        .expect("service in reply");
    let want = Service {
        flags: ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1),
        timeout: 300,
        netmask: 0xffff_ff00,
        ..Service::new(vip_key(), Scheduler::Sh)
    };
    assert_eq!(server.ipvs.writes().last(), Some(&Write::SetService(want)));
    assert_eq!(updated.scheduler, i32::from(pb::Scheduler::Sh));
    assert_eq!(
        updated
            .options
            .map(|o| (o.persistence_timeout, o.ipv4_netmask, o.sched_flag_1)),
        Some((
            Some(prost_types::Duration {
                seconds: 300,
                nanos: 0
            }),
            "255.255.255.0".into(),
            true
        ))
    );

    refused(
        ipvs.update_service(pb::UpdateServiceRequest {
            service: rr(tcp_key([10, 9, 9, 9], 80)).service,
        })
        .await,
        Code::NotFound,
        "Service not defined",
    );
}

#[tokio::test]
async fn deletes_flush_and_zero() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut ipvs = server.ipvs_client();
    ipvs.delete_destination(pb::DeleteDestinationRequest {
        service: tcp_key(VIP, 80),
        destination: Some(pb::Destination {
            address: v4([127, 0, 0, 1]),
            port: 8082,
            ..Default::default()
        }),
    })
    .await
    .expect("delete destination");
    ipvs.zero(pb::ZeroRequest {
        service: tcp_key(VIP, 80),
    })
    .await
    .expect("zero one");
    ipvs.zero(pb::ZeroRequest { service: None })
        .await
        .expect("zero all");
    ipvs.delete_service(pb::DeleteServiceRequest {
        key: tcp_key(VIP, 80),
    })
    .await
    .expect("delete service");
    ipvs.flush(pb::FlushRequest {}).await.expect("flush");
    let writes = server.ipvs.writes();
    assert_eq!(
        writes[3..],
        [
            Write::DelDest(vip_key(), "127.0.0.1".parse().expect("addr"), 8082),
            Write::Zero(Some(vip_key())),
            Write::Zero(None),
            Write::DelService(vip_key()),
            Write::Flush,
        ]
    );
    refused(
        ipvs.delete_service(pb::DeleteServiceRequest { key: None })
            .await,
        Code::InvalidArgument,
        "invalid key: is required",
    );
}

/// Every message of a `StreamServices` call, then how it ended.
async fn streamed(
    ipvs: &mut IpvsServiceClient<Channel>,
) -> Result<(Vec<Vec<pb::Service>>, Option<Status>), Status> {
    let mut stream = ipvs
        .stream_services(pb::StreamServicesRequest {})
        .await?
        .into_inner();
    let mut batches = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(batch)) => batches.push(batch.services),
            Ok(None) => return Ok((batches, None)),
            Err(s) => return Ok((batches, Some(s))),
        }
    }
}

/// The whole table through the unary ListServices.
async fn list_services(ipvs: &mut IpvsServiceClient<Channel>) -> Vec<pb::Service> {
    ipvs.list_services(pb::ListServicesRequest {})
        .await
        .expect("list")
        .into_inner()
        .services
}

#[tokio::test]
async fn stream_services_lists_what_list_services_does_in_batches() {
    let server = TestServer::start().await;
    let mut ipvs = server.ipvs_client();
    let (batches, end) = streamed(&mut ipvs).await.expect("stream");
    assert!(
        batches.is_empty() && end.is_none(),
        "an empty table: no message"
    );
    for i in 0..300u16 {
        let [hi, lo] = i.to_be_bytes();
        let mut create = rr(tcp_key([10, 0, hi, lo], 80));
        if let Some(s) = create.service.as_mut() {
            s.destinations = masq([10, 1, hi, lo], 8080, Some(2)).into_iter().collect();
        }
        ipvs.create_service(create).await.expect("create");
    }
    let listed = list_services(&mut ipvs).await;
    let (batches, end) = streamed(&mut ipvs).await.expect("stream");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [128, 128, 44],
        "batches of STREAM_BATCH, then the rest"
    );
    assert_eq!(
        batches.concat(),
        listed,
        "the same services in the same order"
    );

    // A read failing half-way ends the stream after what was read, with ListServices' status.
    server
        .ipvs
        .cut_table(260, IpvsError::Netlink("connection closed".into()));
    let (batches, end) = streamed(&mut ipvs).await.expect("stream");
    assert_eq!(batches.concat(), listed[..260]);
    let end = end.expect("an error ends the stream");
    assert_eq!(
        (end.code(), end.message()),
        (Code::Unavailable, "netlink: connection closed")
    );
    // One failing from the start fails the call itself.
    server.ipvs.fail_next(IpvsError::PermissionDenied);
    refused(
        ipvs.stream_services(pb::StreamServicesRequest {}).await,
        Code::PermissionDenied,
        "permission denied (you must be root or have CAP_NET_ADMIN)",
    );
}

#[tokio::test]
async fn stats_snapshots() {
    let server = TestServer::start().await;
    seed(&server).await;
    server.ipvs.set_stats(
        &vip_key(),
        Stats {
            conns: 6,
            inpkts: 36,
            ..Stats::default()
        },
    );
    let mut stats = server.stats_client();
    let all = stats
        .get_stats(pb::GetStatsRequest { service: None })
        .await
        .expect("all")
        .into_inner()
        .services;
    let one = stats
        .get_stats(pb::GetStatsRequest {
            service: tcp_key(VIP, 80),
        })
        .await
        .expect("one")
        .into_inner()
        .services;
    assert_eq!(all, one);
    let [svc] = all.as_slice() else {
        panic!("one service expected: {all:?}");
    };
    assert_eq!(svc.key, tcp_key(VIP, 80));
    assert_eq!(
        svc.stats
            .and_then(|s| s.counters)
            .map(|c| (c.connections, c.in_packets)),
        Some((6, 36))
    );
    let ports: Vec<u32> = svc.destinations.iter().map(|d| d.port).collect();
    assert_eq!(ports, vec![8081, 8082]);
    refused(
        stats
            .get_stats(pb::GetStatsRequest {
                service: tcp_key([10, 9, 9, 9], 80),
            })
            .await,
        Code::NotFound,
        "Service not defined",
    );
}

/// A StatsService over a fake core holding the seed's service, called in process: with
/// the clock paused, a watch's timing shows exactly (over a socket, the paused clock jumps to
/// the next timer whenever the runtime waits for I/O).
async fn stats_in_process(
    shutdown: Option<Shutdown>,
) -> (Arc<FakeIpvs>, super::StatsApi<FakeIpvs>) {
    let ipvs = Arc::new(FakeIpvs::default());
    ipvs.new_service(&Service::new(vip_key(), Scheduler::Rr))
        .await
        .expect("service");
    let api = super::StatsApi::new(Arc::new(crate::kernel::Kernel::new(ipvs.clone())));
    let api = match shutdown {
        Some(s) => api.with_shutdown(s),
        None => api,
    };
    (ipvs, api)
}

fn every(millis: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: 0,
        nanos: millis * 1_000_000,
    })
}

#[tokio::test(start_paused = true)]
async fn watch_stats_samples_now_then_every_interval() {
    use pb::stats_service_server::StatsService;
    use tokio_stream::StreamExt;
    let (ipvs, api) = stats_in_process(None).await;
    let started = tokio::time::Instant::now();
    let mut stream = api
        .watch_stats(tonic::Request::new(pb::WatchStatsRequest {
            service: None,
            interval: every(200),
        }))
        .await
        .expect("watch")
        .into_inner();
    let first = stream.next().await.expect("a sample").expect("first");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "first sample is immediate"
    );
    assert_eq!(first.services.len(), 1);
    ipvs.set_stats(
        &vip_key(),
        Stats {
            conns: 3,
            ..Stats::default()
        },
    );
    let second = stream.next().await.expect("a sample").expect("second");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "waits one interval"
    );
    // Sample times are the wall clock's, which paused time does not move: only present.
    assert!(
        first.time.is_some() && second.time.is_some(),
        "{first:?} {second:?}"
    );
    let conns = second.services[0]
        .stats
        .and_then(|s| s.counters)
        .map(|c| c.connections);
    assert_eq!(conns, Some(3));

    // The client goes away: sampling stops.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads = ipvs.reads();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ipvs.reads(), reads, "still sampling after the client left");
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_a_watch_at_once() {
    use pb::stats_service_server::StatsService;
    use tokio_stream::StreamExt;
    let (trigger, shutdown) = Shutdown::new();
    let (_, api) = stats_in_process(Some(shutdown)).await;
    let mut stream = api
        .watch_stats(tonic::Request::new(pb::WatchStatsRequest {
            service: None,
            interval: None,
        }))
        .await
        .expect("watch")
        .into_inner();
    stream.next().await.expect("a sample").expect("first");
    let started = tokio::time::Instant::now();
    trigger.fire();
    assert!(stream.next().await.is_none(), "a sample after the stop");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the watch waited after the stop"
    );
}

#[tokio::test]
async fn watch_stats_refusals() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut stats = server.stats_client();
    refused(
        stats
            .watch_stats(pb::WatchStatsRequest {
                service: None,
                interval: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 50_000_000,
                }),
            })
            .await,
        Code::InvalidArgument,
        "invalid interval: 50ms is below the minimum 100ms",
    );
    refused(
        stats
            .watch_stats(pb::WatchStatsRequest {
                service: tcp_key([10, 9, 9, 9], 80),
                interval: None,
            })
            .await,
        Code::NotFound,
        "Service not defined",
    );
    // A service deleted while watched ends the stream with NOT_FOUND.
    let mut stream = stats
        .watch_stats(pb::WatchStatsRequest {
            service: tcp_key(VIP, 80),
            interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 100_000_000,
            }),
        })
        .await
        .expect("watch")
        .into_inner();
    stream.message().await.expect("first").expect("a sample");
    server
        .ipvs_client()
        .delete_service(pb::DeleteServiceRequest {
            key: tcp_key(VIP, 80),
        })
        .await
        .expect("delete");
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    match end {
        Err(s) => assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "Service not defined")
        ),
        Ok(None) => panic!("stream ended without the error"),
        Ok(Some(_)) => unreachable!("the loop only breaks on the end"),
    }
}

#[tokio::test]
async fn links_and_addresses() {
    let server = TestServer::start().await;
    let mut links = server.link_client();
    let created = links
        .create_dummy(pb::CreateDummyRequest {
            name: "dummy1".into(),
        })
        .await
        .expect("create")
        .into_inner()
        .link
        .expect("link in reply");
    assert_eq!(
        (created.name.as_str(), created.kind.as_str()),
        ("dummy1", "dummy")
    );
    let up = links
        .set_link_state(pb::SetLinkStateRequest {
            name: "dummy1".into(),
            up: true,
        })
        .await
        .expect("up")
        .into_inner()
        .link
        .expect("link in reply");
    assert!(up.up);
    links
        .add_address(pb::AddAddressRequest {
            link: "dummy1".into(),
            address: v4(VIP),
            prefix_length: 32,
        })
        .await
        .expect("add address");
    let addresses = links
        .list_addresses(pb::ListAddressesRequest {
            link: "dummy1".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .addresses;
    let got: Vec<(String, u32, &str)> = addresses
        .iter()
        .map(|a| (a.address.clone(), a.prefix_length, a.link.as_str()))
        .collect();
    assert_eq!(got, vec![(v4(VIP), 32, "dummy1")]);
    let names: Vec<String> = links
        .list_links(pb::ListLinksRequest {})
        .await
        .expect("list links")
        .into_inner()
        .links
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, vec!["dummy1", "lo"]);

    refused(
        links
            .create_dummy(pb::CreateDummyRequest {
                name: "averyverylongname".into(),
            })
            .await,
        Code::InvalidArgument,
        "invalid name: link name \"averyverylongname\" is longer than 15 bytes",
    );
    refused(
        links
            .create_dummy(pb::CreateDummyRequest {
                name: "dummy1".into(),
            })
            .await,
        Code::AlreadyExists,
        "link \"dummy1\" already exists",
    );
    refused(
        links
            .add_address(pb::AddAddressRequest {
                link: "nosuchlink".into(),
                address: v4(VIP),
                prefix_length: 32,
            })
            .await,
        Code::NotFound,
        "link \"nosuchlink\" not found",
    );
    refused(
        links
            .add_address(pb::AddAddressRequest {
                link: "dummy1".into(),
                address: v4(VIP),
                prefix_length: 33,
            })
            .await,
        Code::InvalidArgument,
        "invalid prefix_length: 33 is above the maximum 32",
    );
    refused(
        links
            .add_address(pb::AddAddressRequest {
                link: "dummy1".into(),
                address: v4(VIP),
                prefix_length: 32,
            })
            .await,
        Code::AlreadyExists,
        "address 192.168.100.1/32 already exists on link \"dummy1\"",
    );
    links
        .delete_address(pb::DeleteAddressRequest {
            link: "dummy1".into(),
            address: v4(VIP),
            prefix_length: 32,
        })
        .await
        .expect("delete address");
    refused(
        links
            .delete_address(pb::DeleteAddressRequest {
                link: "dummy1".into(),
                address: v4(VIP),
                prefix_length: 32,
            })
            .await,
        Code::NotFound,
        "address 192.168.100.1/32 not found on link \"dummy1\"",
    );
    links
        .delete_link(pb::DeleteLinkRequest {
            name: "dummy1".into(),
        })
        .await
        .expect("delete link");
    refused(
        links
            .delete_link(pb::DeleteLinkRequest {
                name: "dummy1".into(),
            })
            .await,
        Code::NotFound,
        "link \"dummy1\" not found",
    );
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "ipvs.agent.v1.ConfigService",
            "ipvs.agent.v1.IpvsService",
            "ipvs.agent.v1.LinkService",
            "ipvs.agent.v1.PolicyService",
            "ipvs.agent.v1.StateService",
            "ipvs.agent.v1.StatsService",
            "ipvs.agent.v1.TableService",
        ]
    );
}

#[tokio::test]
async fn stopping_ends_watches_and_removes_the_socket() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut stream = server
        .stats_client()
        .watch_stats(pb::WatchStatsRequest {
            service: None,
            interval: None,
        })
        .await
        .expect("watch")
        .into_inner();
    stream.message().await.expect("first").expect("a sample");
    let socket = server.socket.clone();
    assert!(socket.exists());
    server.stop().await.expect("clean stop");
    assert!(!socket.exists(), "socket left behind");
    // Ended cleanly by the stop: had the watch held the stop for its grace period, the server
    // would have dropped the connection (an error here) or left the stream sampling.
    match stream.message().await {
        Ok(None) => {}
        other => panic!("the watch was not ended by the stop: {other:?}"),
    }
}

#[tokio::test]
async fn stopping_ends_state_event_watches() {
    use pb::state_service_client::StateServiceClient;
    let agent = TestAgent::start(Services {
        policies: false,
        state: true,
    })
    .await;
    let mut client = StateServiceClient::new(agent.channel().await);
    let mut events = client
        .watch_state_events(pb::WatchStateEventsRequest {})
        .await
        .expect("watch")
        .into_inner();
    client
        .apply_state(pb::ApplyStateRequest {
            spec: Some(pb::NodeSpec::default()),
            ..Default::default()
        })
        .await
        .expect("apply");
    let applied = events.message().await.expect("an event").expect("open");
    assert!(
        matches!(
            applied.event,
            Some(pb::watch_state_events_response::Event::Applied(_))
        ),
        "{applied:?}"
    );
    agent.stop().await.expect("clean stop");
    // Ended cleanly by the stop. A watch the stop does not end outlives it (the connection
    // stays up after the grace period), so the wait is bounded to fail rather than hang.
    match tokio::time::timeout(Duration::from_secs(60), events.message()).await {
        Ok(Ok(None)) => {}
        other => panic!("the watch was not ended by the stop: {other:?}"),
    }
}

#[tokio::test]
async fn an_upload_larger_than_grpcs_default_limit_reaches_the_engine() {
    use pb::policy_service_client::PolicyServiceClient;
    let server = TestServer::start_with(true).await;
    let mut client = PolicyServiceClient::new(server.channel.clone());
    // 5 MiB of zeros: over gRPC's default 4 MiB, under the engine's 32 MiB.
    let err = client
        .upload_policy(pb::UploadPolicyRequest {
            component: vec![0; 5 << 20],
            name: "zeros".into(),
        })
        .await
        .expect_err("not a component");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // Over the engine's limit: refused from the first bytes, in the engine's words rather
    // than the transport's.
    let err = client
        .upload_policy(pb::UploadPolicyRequest {
            component: vec![0; 33 << 20],
            name: "huge".into(),
        })
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "policy is 34603008 bytes; the limit is 33554432"
    );
    // The service still answers on the same connection.
    let err = client
        .upload_policy(pb::UploadPolicyRequest {
            component: b"\0asm".to_vec(),
            name: "tiny".into(),
        })
        .await
        .expect_err("not a component");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn health_is_served_for_the_agent_and_each_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", "ipvs.agent.v1.IpvsService", "ipvs.agent.v1.LinkService"] {
        // The first probe of the kernel runs as the server starts: give it its moment.
        let mut reply = None;
        for _ in 0..100 {
            let check = health.check(HealthCheckRequest {
                service: service.into(),
            });
            match check.await {
                Ok(r) => {
                    reply = Some(r.into_inner());
                    break;
                }
                Err(e) if e.code() == Code::NotFound => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("check {service:?}: {e}"),
            }
        }
        let reply = reply.expect("a status within a second");
        assert_eq!(reply.status(), ServingStatus::Serving, "{service:?}");
    }
    // Only what this agent serves has a status: StateService is not wired here.
    let err = health
        .check(HealthCheckRequest {
            service: "ipvs.agent.v1.StateService".into(),
        })
        .await
        .expect_err("not served");
    assert_eq!(err.code(), Code::NotFound);
}
