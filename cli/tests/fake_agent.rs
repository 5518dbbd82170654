//! Wiring tests: the real `ipvsctl` binary against an in-process fake agent on a Unix socket.
//!
//! The fake records what it is asked and answers from a script; it checks that ipvsctl sends
//! the right requests, prints the right bytes, maps refusals to the right words and exit
//! statuses, and reports an unreachable agent. Behaviour against a real kernel is the lab VM
//! end-to-end tests' business.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use ipvs_proto::v1 as pb;
use ipvs_proto::v1::ipvs_service_server::{IpvsService, IpvsServiceServer};
use ipvs_proto::v1::link_service_server::{LinkService, LinkServiceServer};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

/// What the fake was asked, as `Debug` text of the request message, prefixed by the call.
type Log = Arc<Mutex<Vec<String>>>;

#[derive(Clone, Default)]
struct Fake {
    log: Log,
    services: Vec<pb::Service>,
    /// Calls that fail, with the status they fail with.
    failures: Vec<(&'static str, Code, &'static str)>,
    links: Vec<pb::Link>,
    addresses: Vec<pb::InterfaceAddress>,
}

impl Fake {
    fn answer<T, R: std::fmt::Debug>(
        &self,
        call: &'static str,
        req: Request<R>,
        ok: T,
    ) -> Result<Response<T>, Status> {
        if let Ok(mut log) = self.log.lock() {
            log.push(format!("{call} {:?}", req.get_ref()));
        }
        match self.failures.iter().find(|(c, _, _)| *c == call) {
            Some((_, code, msg)) => Err(Status::new(*code, *msg)),
            None => Ok(Response::new(ok)),
        }
    }
}

#[tonic::async_trait]
impl IpvsService for Fake {
    async fn create_service(
        &self,
        r: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        self.answer("CreateService", r, pb::CreateServiceResponse::default())
    }
    async fn update_service(
        &self,
        r: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::UpdateServiceResponse>, Status> {
        self.answer("UpdateService", r, pb::UpdateServiceResponse::default())
    }
    async fn delete_service(
        &self,
        r: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<pb::DeleteServiceResponse>, Status> {
        self.answer("DeleteService", r, pb::DeleteServiceResponse::default())
    }
    async fn get_service(
        &self,
        r: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        let service = self.services.first().cloned();
        self.answer("GetService", r, pb::GetServiceResponse { service })
    }
    async fn list_services(
        &self,
        r: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let services = self.services.clone();
        self.answer("ListServices", r, pb::ListServicesResponse { services })
    }
    async fn add_destination(
        &self,
        r: Request<pb::AddDestinationRequest>,
    ) -> Result<Response<pb::AddDestinationResponse>, Status> {
        self.answer("AddDestination", r, pb::AddDestinationResponse::default())
    }
    async fn update_destination(
        &self,
        r: Request<pb::UpdateDestinationRequest>,
    ) -> Result<Response<pb::UpdateDestinationResponse>, Status> {
        self.answer(
            "UpdateDestination",
            r,
            pb::UpdateDestinationResponse::default(),
        )
    }
    async fn delete_destination(
        &self,
        r: Request<pb::DeleteDestinationRequest>,
    ) -> Result<Response<pb::DeleteDestinationResponse>, Status> {
        self.answer(
            "DeleteDestination",
            r,
            pb::DeleteDestinationResponse::default(),
        )
    }
    async fn list_destinations(
        &self,
        r: Request<pb::ListDestinationsRequest>,
    ) -> Result<Response<pb::ListDestinationsResponse>, Status> {
        self.answer(
            "ListDestinations",
            r,
            pb::ListDestinationsResponse::default(),
        )
    }
    async fn flush(
        &self,
        r: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        self.answer("Flush", r, pb::FlushResponse::default())
    }
    async fn zero(
        &self,
        r: Request<pb::ZeroRequest>,
    ) -> Result<Response<pb::ZeroResponse>, Status> {
        self.answer("Zero", r, pb::ZeroResponse::default())
    }
    async fn get_info(
        &self,
        r: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::GetInfoResponse>, Status> {
        let info = pb::GetInfoResponse {
            version: 0x010201,
            connection_table_size: 4096,
        };
        self.answer("GetInfo", r, info)
    }
}

#[tonic::async_trait]
impl LinkService for Fake {
    async fn create_dummy(
        &self,
        r: Request<pb::CreateDummyRequest>,
    ) -> Result<Response<pb::CreateDummyResponse>, Status> {
        self.answer("CreateDummy", r, pb::CreateDummyResponse::default())
    }
    async fn delete_link(
        &self,
        r: Request<pb::DeleteLinkRequest>,
    ) -> Result<Response<pb::DeleteLinkResponse>, Status> {
        self.answer("DeleteLink", r, pb::DeleteLinkResponse::default())
    }
    async fn set_link_state(
        &self,
        r: Request<pb::SetLinkStateRequest>,
    ) -> Result<Response<pb::SetLinkStateResponse>, Status> {
        self.answer("SetLinkState", r, pb::SetLinkStateResponse::default())
    }
    async fn list_links(
        &self,
        r: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        let links = self.links.clone();
        self.answer("ListLinks", r, pb::ListLinksResponse { links })
    }
    async fn add_address(
        &self,
        r: Request<pb::AddAddressRequest>,
    ) -> Result<Response<pb::AddAddressResponse>, Status> {
        self.answer("AddAddress", r, pb::AddAddressResponse::default())
    }
    async fn delete_address(
        &self,
        r: Request<pb::DeleteAddressRequest>,
    ) -> Result<Response<pb::DeleteAddressResponse>, Status> {
        self.answer("DeleteAddress", r, pb::DeleteAddressResponse::default())
    }
    async fn list_addresses(
        &self,
        r: Request<pb::ListAddressesRequest>,
    ) -> Result<Response<pb::ListAddressesResponse>, Status> {
        let addresses = self.addresses.clone();
        self.answer("ListAddresses", r, pb::ListAddressesResponse { addresses })
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ipvsctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake agent serving on `dir/agent.sock` until dropped.
struct Agent {
    socket: String,
    log: Log,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn start(dir: &Path, fake: Fake) -> Agent {
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind the fake agent's socket");
    let log = fake.log.clone();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(IpvsServiceServer::new(fake.clone()))
            .add_service(LinkServiceServer::new(fake))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await;
    });
    Agent {
        socket: format!("unix:{}", path.display()),
        log,
        server,
    }
}

impl Agent {
    fn calls(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

async fn ipvsctl(agent: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"));
    cmd.args(args).env_remove("IPVSCTL_AGENT");
    if let Some(a) = agent {
        cmd.env("IPVSCTL_AGENT", a);
    }
    cmd.output().await.expect("run ipvsctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn v4(a: [u8; 4]) -> Option<pb::IpAddress> {
    Some(pb::IpAddress {
        ip: Some(pb::ip_address::Ip::V4(a.to_vec())),
    })
}

fn seed_service() -> pb::Service {
    let stats = |c: [u64; 5]| {
        Some(pb::Stats {
            counters: Some(pb::Counters {
                connections: c[0],
                in_packets: c[1],
                out_packets: c[2],
                in_bytes: c[3],
                out_bytes: c[4],
            }),
            rates: None,
        })
    };
    let real = |port, c| pb::Destination {
        address: v4([127, 0, 0, 1]),
        port,
        forwarding: pb::ForwardingMethod::Masquerade as i32,
        weight: Some(1),
        stats: stats(c),
        ..Default::default()
    };
    pb::Service {
        key: Some(pb::ServiceKey {
            key: Some(pb::service_key::Key::Endpoint(pb::Endpoint {
                protocol: pb::Protocol::Tcp as i32,
                address: v4([192, 168, 100, 1]),
                port: 80,
            })),
        }),
        scheduler: pb::Scheduler::Rr as i32,
        stats: stats([6, 38, 35, 2486, 3248]),
        destinations: vec![
            real(8082, [3, 19, 18, 1243, 1662]),
            real(8081, [3, 19, 17, 1243, 1586]),
        ],
        ..Default::default()
    }
}

const SEED_LN: &str = include_str!("../testdata/ipvsadm/seed-ln.txt");
const SEED_LN_STATS: &str = include_str!("../testdata/ipvsadm/seed-ln-stats.txt");

#[tokio::test(flavor = "multi_thread")]
async fn seed_listings_are_ipvsadm_bytes() {
    let dir = TempDir::new("seed");
    let agent = start(
        &dir.0,
        Fake {
            services: vec![seed_service()],
            ..Default::default()
        },
    );
    let out = ipvsctl(Some(&agent.socket), &["-ln"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), SEED_LN.to_string(), String::new())
    );
    let out = ipvsctl(None, &["--agent", &agent.socket, "-ln", "--stats"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), SEED_LN_STATS.to_string())
    );
    assert_eq!(
        agent.calls(),
        vec![
            "GetInfo GetInfoRequest",
            "ListServices ListServicesRequest",
            "GetInfo GetInfoRequest",
            "ListServices ListServicesRequest"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_listing_has_stable_fields() {
    let dir = TempDir::new("json");
    let agent = start(
        &dir.0,
        Fake {
            services: vec![seed_service()],
            ..Default::default()
        },
    );
    let out = ipvsctl(Some(&agent.socket), &["-ln", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ipvs"]["version"], "1.2.1");
    assert_eq!(v["ipvs"]["connection_table_size"], 4096);
    let s = &v["services"][0];
    assert_eq!(
        (&s["protocol"], &s["address"], &s["port"], &s["scheduler"]),
        (
            &"tcp".into(),
            &"192.168.100.1".into(),
            &80.into(),
            &"rr".into()
        )
    );
    assert_eq!(s["stats"]["connections"], 6);
    // Sorted as ipvsadm sorts: 8081 before 8082.
    assert_eq!(s["destinations"][0]["port"], 8081);
    assert_eq!(s["destinations"][0]["forwarding"], "masq");
    assert_eq!(s["destinations"][1]["stats"]["out_bytes"], 1662);
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_changes_send_the_right_requests() {
    let dir = TempDir::new("changes");
    let agent = start(&dir.0, Fake::default());
    for line in [
        "-A -t 192.168.100.1:80 -s rr",
        "-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m",
        "-e -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 0",
        "-d -t 192.168.100.1:80 -r 127.0.0.1:8081",
        "-E -t 192.168.100.1:80 -s wrr -p 60",
        "-Z",
        "-D -t 192.168.100.1:80",
        "-C",
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&agent.socket), &args).await;
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(0), String::new(), String::new()),
            "{line}"
        );
    }
    let vip = "service: Some(ServiceKey { key: Some(Endpoint(Endpoint { protocol: Tcp, address: Some(IpAddress { ip: Some(V4([192, 168, 100, 1])) }), port: 80 })) })";
    let key = "key: Some(ServiceKey { key: Some(Endpoint(Endpoint { protocol: Tcp, address: Some(IpAddress { ip: Some(V4([192, 168, 100, 1])) }), port: 80 })) })";
    let calls = agent.calls();
    let want_prefixes = [
        "CreateService CreateServiceRequest { service: Some(Service { key: Some(ServiceKey { key: Some(Endpoint(",
        &format!(
            "AddDestination AddDestinationRequest {{ {vip}, destination: Some(Destination {{ address: Some(IpAddress {{ ip: Some(V4([127, 0, 0, 1])) }}), port: 8081, forwarding: Masquerade, weight: Some(1),"
        ),
        &format!(
            "UpdateDestination UpdateDestinationRequest {{ {vip}, destination: Some(Destination {{ address: Some(IpAddress {{ ip: Some(V4([127, 0, 0, 1])) }}), port: 8081, forwarding: Masquerade, weight: Some(0),"
        ),
        &format!(
            "DeleteDestination DeleteDestinationRequest {{ {vip}, address: Some(IpAddress {{ ip: Some(V4([127, 0, 0, 1])) }}), port: 8081 }}"
        ),
        "UpdateService UpdateServiceRequest { service: Some(Service {",
        "Zero ZeroRequest { service: None }",
        &format!("DeleteService DeleteServiceRequest {{ {key} }}"),
        "Flush FlushRequest",
    ];
    assert_eq!(calls.len(), want_prefixes.len(), "{calls:#?}");
    for (call, want) in calls.iter().zip(want_prefixes.iter()) {
        assert!(
            call.starts_with(want),
            "call {call}\nshould start with {want}"
        );
    }
    assert!(calls[0].contains("scheduler: Rr"), "{}", calls[0]);
    assert!(
        calls[4].contains("scheduler: Wrr") && calls[4].contains("persistence_timeout: 60"),
        "{}",
        calls[4]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_use_ipvsadm_words_and_status() {
    let dir = TempDir::new("refusals");
    let agent = start(
        &dir.0,
        Fake {
            failures: vec![
                (
                    "AddDestination",
                    Code::NotFound,
                    "service TCP 10.0.0.1:80 not found",
                ),
                ("CreateService", Code::AlreadyExists, "service exists"),
                (
                    "DeleteDestination",
                    Code::NotFound,
                    "destination 10.1.0.1:80 not found",
                ),
                ("GetService", Code::NotFound, "no such service"),
                (
                    "GetInfo",
                    Code::Unavailable,
                    "IPVS is not available in this kernel (generic netlink family \"IPVS\" not found)",
                ),
            ],
            ..Default::default()
        },
    );
    let cases: &[(&str, i32, &str)] = &[
        (
            "-a -t 10.0.0.1:80 -r 10.1.0.1",
            255,
            "Service not defined\n",
        ),
        ("-A -t 10.0.0.1:80", 255, "Service already exists\n"),
        (
            "-d -t 10.0.0.1:80 -r 10.1.0.1",
            255,
            "No such destination\n",
        ),
        ("-Ln -t 10.0.0.1:80", 1, "No such service\n"),
        (
            "-ln",
            2,
            "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
        ),
    ];
    for (line, status, stderr) in cases {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&agent.socket), &args).await;
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(*status), String::new(), stderr.to_string()),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_never_reach_the_agent() {
    let dir = TempDir::new("bad");
    let agent = start(&dir.0, Fake::default());
    let cases: &[(&str, i32, &str)] = &[
        (
            "-A -t 10.0.0.1:80 -s nosuch",
            255,
            "Scheduler or persistence engine not found\n",
        ),
        (
            "-A -t 10.0.0.1:0",
            2,
            "Zero port specified for non-persistent service\n",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.1.0.1 -w 65536",
            2,
            "illegal weight specified\n",
        ),
        (
            "-A -t 10.0.0.1:65536",
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            "-A -t 300.0.0.1:80",
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            "-n -L",
            255,
            "Try `IPVSCTL -h' or 'IPVSCTL --help' for more information.\n",
        ),
        ("-L --bogus", 255, "--bogus: unknown option\n"),
        (
            "--set 1 2 3",
            4,
            "ipvsctl: --set is not available: the agent's API has no such operation\n",
        ),
        (
            "-A -u 10.0.0.1:53 -o json",
            2,
            "ipvsctl: -o json applies to listings (-L, -S); a bare -o is --ops\n",
        ),
    ];
    let program = env!("CARGO_BIN_EXE_ipvsctl");
    for (line, status, stderr) in cases {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&agent.socket), &args).await;
        let stderr = stderr.replace("IPVSCTL", program);
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(*status), String::new(), stderr),
            "{line}"
        );
    }
    assert_eq!(agent.calls(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_agent_is_named() {
    let dir = TempDir::new("unreachable");
    let socket = format!("unix:{}", dir.0.join("nobody.sock").display());
    let out = ipvsctl(Some(&socket), &["-ln"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "ipvsctl: cannot reach agent at {socket}: No such file or directory (os error 2)\n"
        )
    );
    let out = ipvsctl(None, &["--agent", "ftp://x", "-ln"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(2),
            "ipvsctl: invalid agent address `ftp://x': expected unix:/path or http://host:port\n"
                .to_string()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_is_not_an_error() {
    let dir = TempDir::new("pipe");
    let agent = start(
        &dir.0,
        Fake {
            services: vec![seed_service()],
            ..Default::default()
        },
    );
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .args(["--agent", &agent.socket, "-ln"])
        .stdout(writer)
        .status()
        .await
        .expect("run ipvsctl");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn link_and_addr_commands() {
    let dir = TempDir::new("link");
    let agent = start(
        &dir.0,
        Fake {
            links: vec![pb::Link {
                index: 12,
                name: "dummy1".into(),
                kind: "dummy".into(),
                up: true,
                lower_up: true,
                mtu: 1500,
                mac: vec![0x6a, 0x0b, 0x1c, 0x2d, 0x3e, 0x4f],
                flags: 0x2 | 0x80 | 0x1 | 0x40 | 0x10000,
                oper_state: "UNKNOWN".into(),
            }],
            addresses: vec![pb::InterfaceAddress {
                address: v4([192, 168, 100, 1]),
                prefix_length: 32,
                link: "dummy1".into(),
                link_index: 12,
                scope: "global".into(),
            }],
            failures: vec![("DeleteLink", Code::NotFound, "link nosuch not found")],
            ..Default::default()
        },
    );
    for line in [
        "link add dummy1 type dummy",
        "addr add 192.168.100.1/32 dev dummy1",
        "link set dummy1 up",
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&agent.socket), &args).await;
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(0), String::new()),
            "{line}"
        );
    }
    let out = ipvsctl(Some(&agent.socket), &["addr", "show", "dev", "dummy1"]).await;
    assert_eq!(
        text(&out.stdout),
        "12: dummy1: <BROADCAST,NOARP,UP,LOWER_UP> mtu 1500 state UNKNOWN\n    link/ether 6a:0b:1c:2d:3e:4f brd ff:ff:ff:ff:ff:ff\n    dummy\n    inet 192.168.100.1/32 scope global dummy1\n"
    );
    let out = ipvsctl(Some(&agent.socket), &["-o", "json", "link", "show"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (&v[0]["ifname"], &v[0]["kind"]),
        (&"dummy1".into(), &"dummy".into())
    );
    let out = ipvsctl(Some(&agent.socket), &["link", "del", "nosuch"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(1), "Cannot find device \"nosuch\"\n".to_string())
    );
    let calls = agent.calls();
    assert_eq!(
        calls[0],
        "CreateDummy CreateDummyRequest { name: \"dummy1\" }"
    );
    assert_eq!(
        calls[1],
        "AddAddress AddAddressRequest { link: \"dummy1\", address: Some(IpAddress { ip: Some(V4([192, 168, 100, 1])) }), prefix_length: 32 }"
    );
    assert_eq!(
        calls[2],
        "SetLinkState SetLinkStateRequest { name: \"dummy1\", up: true }"
    );
    assert_eq!(calls[3], "ListLinks ListLinksRequest");
    assert_eq!(
        calls[4],
        "ListAddresses ListAddressesRequest { link: \"dummy1\" }"
    );
}
