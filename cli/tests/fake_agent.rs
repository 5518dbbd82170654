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
use ipvs_proto::v1::config_service_server::{ConfigService, ConfigServiceServer};
use ipvs_proto::v1::ipvs_service_server::{IpvsService, IpvsServiceServer};
use ipvs_proto::v1::link_service_server::{LinkService, LinkServiceServer};
use ipvs_proto::v1::table_service_server::{TableService, TableServiceServer};
use tokio::io::AsyncWriteExt;
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
    /// Calls that fail: code, message, and the reason and errno of the agent's detail (none
    /// when both are empty, as from an agent too old to send one).
    failures: Vec<(&'static str, Code, &'static str, &'static str, i32)>,
    links: Vec<pb::Link>,
    addresses: Vec<pb::InterfaceAddress>,
    timeouts: pb::Timeouts,
    daemons: Vec<pb::Daemon>,
    connections: Vec<pb::Connection>,
    /// The plan `Apply` answers with.
    plan: Vec<pb::Change>,
    /// The detail of a failing `Apply` (the refused command, its errno or cause).
    apply_detail: Option<pb::ErrorDetail>,
    /// Answer `Apply` as an agent from before `commands`: ignore them.
    without_commands: bool,
    /// Serve only the IPVS and link services, as an agent from before the settings API.
    without_settings: bool,
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
        match self.failures.iter().find(|(c, _, _, _, _)| *c == call) {
            Some((_, code, msg, "", 0)) if call != "Apply" || self.apply_detail.is_none() => {
                Err(Status::new(*code, *msg))
            }
            Some((_, code, msg, reason, errno)) => {
                let detail = match (call, &self.apply_detail) {
                    ("Apply", Some(d)) => d.clone(),
                    _ => pb::ErrorDetail {
                        reason: (*reason).to_owned(),
                        errno: *errno,
                        ..Default::default()
                    },
                };
                Err(ipvs_proto::details::status(
                    *code,
                    (*msg).to_owned(),
                    &detail,
                ))
            }
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
impl ConfigService for Fake {
    async fn get_timeouts(
        &self,
        r: Request<pb::GetTimeoutsRequest>,
    ) -> Result<Response<pb::GetTimeoutsResponse>, Status> {
        let timeouts = Some(self.timeouts);
        self.answer("GetTimeouts", r, pb::GetTimeoutsResponse { timeouts })
    }
    async fn set_timeouts(
        &self,
        r: Request<pb::SetTimeoutsRequest>,
    ) -> Result<Response<pb::SetTimeoutsResponse>, Status> {
        let timeouts = r.get_ref().timeouts;
        self.answer("SetTimeouts", r, pb::SetTimeoutsResponse { timeouts })
    }
    async fn start_daemon(
        &self,
        r: Request<pb::StartDaemonRequest>,
    ) -> Result<Response<pb::StartDaemonResponse>, Status> {
        self.answer("StartDaemon", r, pb::StartDaemonResponse {})
    }
    async fn stop_daemon(
        &self,
        r: Request<pb::StopDaemonRequest>,
    ) -> Result<Response<pb::StopDaemonResponse>, Status> {
        self.answer("StopDaemon", r, pb::StopDaemonResponse {})
    }
    async fn list_daemons(
        &self,
        r: Request<pb::ListDaemonsRequest>,
    ) -> Result<Response<pb::ListDaemonsResponse>, Status> {
        let daemons = self.daemons.clone();
        self.answer("ListDaemons", r, pb::ListDaemonsResponse { daemons })
    }
    async fn list_connections(
        &self,
        r: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let connections = self.connections.clone();
        self.answer(
            "ListConnections",
            r,
            pb::ListConnectionsResponse { connections },
        )
    }
}

#[tonic::async_trait]
impl TableService for Fake {
    async fn apply(
        &self,
        r: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let applied = !r.get_ref().dry_run;
        let changes = self.plan.clone();
        let commands_run = if self.without_commands {
            0
        } else {
            u32::try_from(r.get_ref().commands.len()).unwrap_or(u32::MAX)
        };
        let reply = pb::ApplyResponse {
            changes,
            applied,
            commands_run,
        };
        self.answer("Apply", r, reply)
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
        let settings = (!fake.without_settings).then(|| {
            (
                ConfigServiceServer::new(fake.clone()),
                TableServiceServer::new(fake.clone()),
            )
        });
        let (config, table) = settings.unzip();
        let _ = tonic::transport::Server::builder()
            .add_service(IpvsServiceServer::new(fake.clone()))
            .add_service(LinkServiceServer::new(fake))
            .add_optional_service(config)
            .add_optional_service(table)
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

/// Runs `ipvsctl` with `input` on its stdin.
async fn ipvsctl_stdin(agent: &str, args: &[&str], input: &str) -> Output {
    ipvsctl_named("ipvsctl", agent, args, input).await
}

/// Runs `ipvsctl` under the name `arg0` with `input` on its stdin.
async fn ipvsctl_named(arg0: &str, agent: &str, args: &[&str], input: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .arg0(arg0)
        .args(args)
        .env("IPVSCTL_AGENT", agent)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ipvsctl");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
    }
    child.wait_with_output().await.expect("wait for ipvsctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn v4(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
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
            protocol: pb::Protocol::Tcp as i32,
            address: v4([192, 168, 100, 1]),
            port: 80,
            fwmark: 0,
            family: pb::AddressFamily::Inet as i32,
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
        "-E -t 192.168.100.1:80 -s wrr -p 60 -M 0.0.0.0",
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
    let vip = "service: Some(ServiceKey { protocol: Tcp, address: \"192.168.100.1\", port: 80, fwmark: 0, family: Inet })";
    let key = "key: Some(ServiceKey { protocol: Tcp, address: \"192.168.100.1\", port: 80, fwmark: 0, family: Inet })";
    let calls = agent.calls();
    let want_prefixes = [
        "CreateService CreateServiceRequest { service: Some(Service { key: Some(ServiceKey { protocol: Tcp, address: \"192.168.100.1\", port: 80, fwmark: 0, family: Inet }),",
        &format!(
            "AddDestination AddDestinationRequest {{ {vip}, destination: Some(Destination {{ address: \"127.0.0.1\", port: 8081, forwarding: Masquerade, weight: Some(1),"
        ),
        &format!(
            "UpdateDestination UpdateDestinationRequest {{ {vip}, destination: Some(Destination {{ address: \"127.0.0.1\", port: 8081, forwarding: Masquerade, weight: Some(0),"
        ),
        &format!(
            "DeleteDestination DeleteDestinationRequest {{ {vip}, destination: Some(Destination {{ address: \"127.0.0.1\", port: 8081, forwarding: Unspecified, weight: None, upper_threshold: 0, lower_threshold: 0, tunnel: None, active_connections: 0, inactive_connections: 0, persistent_connections: 0, stats: None }}) }}"
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
    // No -M leaves the mask empty (the default); -M 0.0.0.0 is sent as such.
    assert!(
        calls[0].contains("scheduler: Rr")
            && calls[0]
                .contains("persistence_timeout: None, ipv4_netmask: \"\", ipv6_prefix_length: 0,"),
        "{}",
        calls[0]
    );
    assert!(
        calls[4].contains("scheduler: Wrr")
            && calls[4].contains(
                "persistence_timeout: Some(Duration { seconds: 60, nanos: 0 }), ipv4_netmask: \"0.0.0.0\", ipv6_prefix_length: 0,"
            ),
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
                    "",
                    0,
                ),
                (
                    "CreateService",
                    Code::AlreadyExists,
                    "service exists",
                    "",
                    0,
                ),
                (
                    "DeleteDestination",
                    Code::NotFound,
                    "destination 10.1.0.1:80 not found",
                    "DESTINATION_NOT_FOUND",
                    2,
                ),
                ("GetService", Code::NotFound, "no such service", "", 0),
                (
                    "GetInfo",
                    Code::Unavailable,
                    "IPVS is not available in this kernel (generic netlink family \"IPVS\" not found)",
                    "IPVS_UNAVAILABLE",
                    0,
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
            "-A -t [2001:db8::1]:80 -p -M 0",
            2,
            "illegal ipv6 netmask specified\n",
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
        ("--set 1 2", 2, "--set option requires 3 timeout values\n"),
        (
            "-A -u 10.0.0.1:53 -o json",
            2,
            "ipvsctl: -o json applies to listings (-L, -S) and -R; a bare -o is --ops\n",
        ),
        ("-ln --dry-run", 2, "ipvsctl: --dry-run applies to -R\n"),
        ("-ln --replace", 2, "ipvsctl: --replace applies to -R\n"),
        (
            "-L --timeout --stats",
            2,
            "options conflicts in the list command\n",
        ),
        (
            "--start-daemon primary",
            2,
            "illegal start-daemon parameter specified\n",
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
            failures: vec![("DeleteLink", Code::NotFound, "link nosuch not found", "", 0)],
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
        "AddAddress AddAddressRequest { link: \"dummy1\", address: \"192.168.100.1\", prefix_length: 32 }"
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

const TIMEOUT: &str = include_str!("../testdata/ipvsadm/timeout.txt");
const DAEMON: &str = include_str!("../testdata/ipvsadm/daemon.txt");

#[tokio::test(flavor = "multi_thread")]
async fn settings_send_the_right_requests_and_list_like_ipvsadm() {
    let dir = TempDir::new("settings");
    let agent = start(
        &dir.0,
        Fake {
            timeouts: pb::Timeouts {
                tcp: secs(900),
                tcp_fin: secs(120),
                udp: secs(300),
            },
            daemons: vec![
                pb::Daemon {
                    role: pb::DaemonRole::Backup as i32,
                    interface: "dummy1".into(),
                    sync_id: 255,
                    ..Default::default()
                },
                pb::Daemon {
                    role: pb::DaemonRole::Master as i32,
                    interface: "eth0".into(),
                    sync_id: 5,
                    ..Default::default()
                },
            ],
            connections: vec![pb::Connection {
                protocol: "TCP".into(),
                client_address: v4([127, 0, 0, 1]),
                client_port: 41000,
                virtual_address: v4([192, 168, 100, 1]),
                virtual_port: 80,
                destination_address: v4([127, 0, 0, 1]),
                destination_port: 8081,
                state: "ESTABLISHED".into(),
                expires: secs(899),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let cases: &[(&str, &str)] = &[
        ("--set 900 120 300", ""),
        (
            "--start-daemon backup --mcast-interface dummy1 --syncid 255 --mcast-group 239.1.1.1 --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1400",
            "",
        ),
        ("--start-daemon master", ""),
        ("--stop-daemon backup", ""),
        ("-L --timeout", TIMEOUT),
        ("-L --daemon", DAEMON),
        (
            "-Lcn",
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED 127.0.0.1:41000    192.168.100.1:80   127.0.0.1:8081\n",
        ),
    ];
    for (line, stdout) in cases {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&agent.socket), &args).await;
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(0), stdout.to_string(), String::new()),
            "{line}"
        );
    }
    assert_eq!(
        agent.calls(),
        vec![
            "SetTimeoutsRequest { timeouts: Some(Timeouts { tcp: Some(Duration { seconds: 900, nanos: 0 }), tcp_fin: Some(Duration { seconds: 120, nanos: 0 }), udp: Some(Duration { seconds: 300, nanos: 0 }) }) }",
            "StartDaemonRequest { daemon: Some(Daemon { role: Backup, interface: \"dummy1\", sync_id: 255, sync_maxlen: 1400, group: \"239.1.1.1\", port: 8849, ttl: 2 }) }",
            "StartDaemonRequest { daemon: Some(Daemon { role: Master, interface: \"eth0\", sync_id: 0, sync_maxlen: 0, group: \"\", port: 0, ttl: 0 }) }",
            "StopDaemonRequest { role: Backup }",
            "GetTimeoutsRequest",
            "ListDaemonsRequest",
            "ListConnectionsRequest",
        ]
        .into_iter()
        .zip(["SetTimeouts", "StartDaemon", "StartDaemon", "StopDaemon", "GetTimeouts", "ListDaemons", "ListConnections"])
        .map(|(req, call)| format!("{call} {req}"))
        .collect::<Vec<_>>()
    );
    // The same reads as JSON.
    let json = |args: &'static [&'static str]| {
        let socket = agent.socket.clone();
        async move {
            let out = ipvsctl(Some(&socket), args).await;
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON on stdout")
        }
    };
    let t = json(&["-L", "--timeout", "-o", "json"]).await;
    assert_eq!(
        (&t["tcp"], &t["tcp_fin"], &t["udp"]),
        (&900.into(), &120.into(), &300.into())
    );
    let d = json(&["-L", "--daemon", "-o", "json"]).await;
    assert_eq!(
        (
            &d[0]["role"],
            &d[0]["interface"],
            &d[1]["role"],
            &d[1]["sync_id"]
        ),
        (
            &"master".into(),
            &"eth0".into(),
            &"backup".into(),
            &255.into()
        )
    );
    let c = json(&["-Lc", "-o", "json"]).await;
    assert_eq!(
        (
            &c[0]["protocol"],
            &c[0]["client_address"],
            &c[0]["destination_port"],
            &c[0]["expires_seconds"],
            &c[0]["pe_name"]
        ),
        (
            &"TCP".into(),
            &"127.0.0.1".into(),
            &8081.into(),
            &899.into(),
            &serde_json::Value::Null
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_refusals_use_ipvsadm_words_and_status() {
    let dir = TempDir::new("settings-refusals");
    let agent = start(
        &dir.0,
        Fake {
            failures: vec![
                (
                    "StartDaemon",
                    Code::AlreadyExists,
                    "the master daemon already runs",
                    "",
                    0,
                ),
                ("StopDaemon", Code::NotFound, "no backup daemon runs", "", 0),
                (
                    "GetTimeouts",
                    Code::Internal,
                    "netlink socket closed",
                    "",
                    0,
                ),
                (
                    "ListDaemons",
                    Code::PermissionDenied,
                    "permission denied",
                    "",
                    0,
                ),
                (
                    "ListConnections",
                    Code::Internal,
                    "cannot read /proc/net/ip_vs_conn",
                    "",
                    0,
                ),
                (
                    "SetTimeouts",
                    Code::InvalidArgument,
                    "set timeouts: Invalid argument (errno 22)",
                    "KERNEL",
                    22,
                ),
            ],
            ..Default::default()
        },
    );
    let cases: &[(&str, i32, &str)] = &[
        ("--start-daemon master", 255, "Daemon has already run\n"),
        ("--stop-daemon backup", 255, "No daemon is running\n"),
        // ipvsadm exits 1 without a word when it cannot read these.
        ("-L --timeout", 1, ""),
        ("-L --daemon", 1, ""),
        ("-Lcn", 1, "cannot open file /proc/net/ip_vs_conn\n"),
        (
            "--set 1 2 3",
            255,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
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
async fn an_agent_without_the_settings_api_is_named() {
    let dir = TempDir::new("old-agent");
    let agent = start(
        &dir.0,
        Fake {
            without_settings: true,
            ..Default::default()
        },
    );
    let out = ipvsctl(Some(&agent.socket), &["-L", "--timeout"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("ipvsctl: the agent does not implement GetTimeouts"),
        "{}",
        text(&out.stderr)
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R"], "-A -t 10.0.0.1:80\n").await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("ipvsctl: the agent does not implement Apply"),
        "{}",
        text(&out.stderr)
    );
}

/// `ipvsadm -Sn` of a small table, plus settings lines.
const RESTORE_INPUT: &str = "--set 900 120 300\n\
    -A -t 10.0.0.1:80 -s rr\n\
    -a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3\n\
    # the DNS service\n\
    -A -u 10.0.0.2:53 -s wlc\n\
    -Z -u 10.0.0.2:53\n\
    --start-daemon master --mcast-interface dummy1\n";

fn change(kind: pb::ChangeKind, description: &str) -> pb::Change {
    pb::Change {
        kind: kind as i32,
        description: description.into(),
        ..Default::default()
    }
}

/// `-R`: the table lines go to the agent in order, with their line numbers, to run on top of
/// its table; the other lines run after, in input order.
#[tokio::test(flavor = "multi_thread")]
async fn restore_sends_its_lines_to_run_on_top_then_the_settings() {
    let dir = TempDir::new("restore-on-top");
    let agent = start(
        &dir.0,
        Fake {
            plan: vec![change(
                pb::ChangeKind::CreateService,
                "-A -u 10.0.0.2:53 -s wlc",
            )],
            ..Default::default()
        },
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R"], RESTORE_INPUT).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), String::new(), String::new())
    );
    let calls = agent.calls();
    let names: Vec<&str> = calls
        .iter()
        .map(|c| c.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        vec!["Apply", "SetTimeouts", "Zero", "StartDaemon"],
        "{calls:#?}"
    );
    let apply = &calls[0];
    assert!(
        apply.starts_with("Apply ApplyRequest { services: [], prune: false, dry_run: false,"),
        "{apply}"
    );
    assert!(apply.ends_with("mode: OnTop }"), "{apply}");
    let lines: Vec<&str> = apply.matches("TableCommand { line: ").collect();
    assert_eq!(lines.len(), 4, "{apply}");
    for (line, what) in [
        (2, "AddService"),
        (3, "AddDestination"),
        (5, "AddService"),
        (6, "Zero"),
    ] {
        assert!(
            apply.contains(&format!(
                "TableCommand {{ line: {line}, command: Some({what}("
            )),
            "line {line}: {apply}"
        );
    }
}

/// `-R --replace` (and `ipvsctl-restore`): the input's table as the whole desired table.
#[tokio::test(flavor = "multi_thread")]
async fn restore_replace_sends_the_whole_table_then_the_settings() {
    let dir = TempDir::new("restore");
    let agent = start(
        &dir.0,
        Fake {
            plan: vec![
                change(pb::ChangeKind::CreateService, "-A -u 10.0.0.2:53 -s wlc"),
                change(pb::ChangeKind::DeleteService, "-D -t 10.0.0.9:80"),
            ],
            ..Default::default()
        },
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R", "--replace"], RESTORE_INPUT).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), String::new(), String::new())
    );
    let calls = agent.calls();
    let names: Vec<&str> = calls
        .iter()
        .map(|c| c.split(' ').next().unwrap_or_default())
        .collect();
    // The table first, as one request; then the other lines in input order.
    assert_eq!(
        names,
        vec!["Apply", "SetTimeouts", "Zero", "StartDaemon"],
        "{calls:#?}"
    );
    let apply = &calls[0];
    assert!(
        apply.contains("prune: true, dry_run: false, commands: [], mode: Unspecified }"),
        "{apply}"
    );
    assert!(
        apply.contains(
            "ServiceKey { protocol: Tcp, address: \"10.0.0.1\", port: 80, fwmark: 0, family: Inet }"
        ),
        "{apply}"
    );
    assert!(
        apply.contains("destinations: [Destination { address: \"10.0.1.1\", port: 8080, forwarding: Masquerade, weight: Some(3),"),
        "{apply}"
    );
    assert!(apply.contains("scheduler: Wlc"), "{apply}");
    assert_eq!(apply.matches("Service { key:").count(), 2, "{apply}");
    assert!(calls[2].contains("address: \"10.0.0.2\""), "{}", calls[2]);

    // Run as ipvsctl-restore, the same request.
    let out = ipvsctl_named("ipvsctl-restore", &agent.socket, &[], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(agent.calls().get(4), Some(apply));

    // The plan as JSON.
    let out = ipvsctl_stdin(&agent.socket, &["-R", "-o", "json"], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (&v["dry_run"], &v["applied"]),
        (&false.into(), &true.into())
    );
    assert_eq!(v["changes"][1]["kind"], "delete_service");
    assert_eq!(v["changes"][1]["description"], "-D -t 10.0.0.9:80");
    assert_eq!(v["then"][0], "--set 900 120 300");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_dry_run_prints_the_plan_and_changes_nothing() {
    let dir = TempDir::new("dry-run");
    let agent = start(
        &dir.0,
        Fake {
            plan: vec![
                change(pb::ChangeKind::CreateService, "-A -u 10.0.0.2:53 -s wlc"),
                change(
                    pb::ChangeKind::UpdateDestination,
                    "-e -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3",
                ),
            ],
            ..Default::default()
        },
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R", "--dry-run"], RESTORE_INPUT).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(0),
            "-A -u 10.0.0.2:53 -s wlc\n\
             -e -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3\n\
             --set 900 120 300\n\
             -Z -u 10.0.0.2:53\n\
             --start-daemon master --mcast-interface dummy1\n"
                .to_string(),
            String::new()
        )
    );
    let calls = agent.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(
        calls[0].contains("dry_run: true, commands: [TableCommand {"),
        "{}",
        calls[0]
    );
    // The same with --replace, as the whole table.
    let out = ipvsctl_stdin(
        &agent.socket,
        &["-R", "--replace", "--dry-run"],
        RESTORE_INPUT,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let calls = agent.calls();
    assert!(
        calls[1].ends_with("prune: true, dry_run: true, commands: [], mode: Unspecified }"),
        "{}",
        calls[1]
    );
    let out = ipvsctl_stdin(
        &agent.socket,
        &["--dry-run", "-R", "-o", "json"],
        RESTORE_INPUT,
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (&v["dry_run"], &v["applied"]),
        (&true.into(), &false.into())
    );
    assert_eq!(v["changes"][1]["kind"], "update_destination");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_a_bad_input_before_touching_anything() {
    let dir = TempDir::new("restore-bad");
    let agent = start(&dir.0, Fake::default());
    let cases: &[(&str, i32, &str)] = &[
        (
            "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w 70000\n",
            2,
            "line 2: illegal weight specified\n",
        ),
        (
            "-A -t 10.0.0.1:80 --bogus\n",
            255,
            "line 1: --bogus: unknown option\n",
        ),
    ];
    for (input, status, stderr) in cases {
        let out = ipvsctl_stdin(&agent.socket, &["-R"], input).await;
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(*status), String::new(), stderr.to_string()),
            "{input}"
        );
    }
    // Options of ipvsadm's own -R command are checked too.
    let out = ipvsctl_stdin(&agent.socket, &["-R", "-n"], "").await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(2),
            "Illegal 'numeric' option with the 'restore' command\n".to_string()
        )
    );
    // With --replace the whole input is run here, on an empty table.
    let out = ipvsctl_stdin(
        &agent.socket,
        &["-R", "--replace"],
        "-A -t 10.0.0.1:80\n\n-a -t 10.0.0.2:80 -r 10.0.1.1\n",
    )
    .await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(255), "line 3: Service not defined\n".to_string())
    );
    // The lines before a bad one were only checked, with a dry run.
    let calls = agent.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(
        calls[0].starts_with("Apply ApplyRequest { services: [], prune: false, dry_run: true,"),
        "{}",
        calls[0]
    );
}

/// The detail of an agent's refusal of command `command` (from 1), from line `line`.
fn refused(command: u32, line: u32, errno: i32, cause: &str) -> pb::ErrorDetail {
    pb::ErrorDetail {
        command,
        line,
        errno,
        cause: cause.into(),
        ..Default::default()
    }
}

/// The agent's refusal of a line, in ipvsadm's words with the line's number; a line before a
/// bad one that the table refuses is reported first.
#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_the_line_the_table_refuses() {
    let input = "-A -t 10.0.0.1:80\n# comment\n-A -t 10.0.0.2:80\n-a -t 10.0.0.2:80 -r 10.0.1.1\n";
    /// The agent's code and detail, the input, then ipvsctl's stderr and exit status.
    type Case<'a> = (Code, pb::ErrorDetail, &'a str, &'a str, i32);
    let cases: &[Case] = &[
        (
            Code::AlreadyExists,
            refused(2, 3, 17, ""),
            input,
            "line 3: Service already exists\n",
            255,
        ),
        (
            Code::FailedPrecondition,
            refused(3, 4, 3, ""),
            input,
            "line 4: Service not defined\n",
            255,
        ),
        (
            Code::AlreadyExists,
            refused(3, 4, 17, ""),
            input,
            "line 4: Destination already exists\n",
            255,
        ),
        (
            Code::InvalidArgument,
            refused(
                3,
                4,
                0,
                "a real server of another address family is only allowed in tunnel mode",
            ),
            input,
            "line 4: a real server of another address family is only allowed in tunnel mode\n",
            255,
        ),
        // Line 1 is refused by the table before line 2 is refused here.
        (
            Code::AlreadyExists,
            refused(1, 1, 17, ""),
            "-A -t 10.0.0.1:80\n-A -t 10.0.0.3:0\n",
            "line 1: Service already exists\n",
            255,
        ),
        // An unknown scheduler: the service's lookup decides.
        (
            Code::AlreadyExists,
            refused(2, 2, 17, ""),
            "-D -t 10.0.0.9:80\n-A -t 10.0.0.1:80 -s nosuch\n",
            "line 2: Service already exists\n",
            255,
        ),
        (
            Code::NotFound,
            refused(1, 1, 3, ""),
            "-E -t 10.0.0.1:80 -s nosuch\n",
            "line 1: No such service\n",
            255,
        ),
    ];
    for (code, detail, input, stderr, status) in cases {
        let dir = TempDir::new("restore-refused");
        let agent = start(
            &dir.0,
            Fake {
                failures: vec![("Apply", *code, "commands[n] (line n): refused", "", 0)],
                apply_detail: Some(detail.clone()),
                ..Default::default()
            },
        );
        let out = ipvsctl_stdin(&agent.socket, &["-R"], input).await;
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(*status), String::new(), stderr.to_string()),
            "{input} {detail:?}"
        );
        // Nothing runs after a refused table.
        assert_eq!(agent.calls().len(), 1);
    }
    // When the agent accepts the lines before, the line's own refusal stands.
    let dir = TempDir::new("restore-own");
    let agent = start(&dir.0, Fake::default());
    for (input, stderr) in [
        (
            "-A -t 10.0.0.1:80\n-A -t 10.0.0.3:0\n",
            "line 2: Zero port specified for non-persistent service\n",
        ),
        (
            "-A -t 10.0.0.1:80 -s nosuch\n",
            "line 1: Scheduler or persistence engine not found\n",
        ),
    ] {
        let out = ipvsctl_stdin(&agent.socket, &["-R"], input).await;
        assert_eq!(text(&out.stderr), stderr, "{input}");
    }
}

/// An agent from before `commands` ignores them and changes nothing: ipvsctl says so.
#[tokio::test(flavor = "multi_thread")]
async fn restore_on_an_agent_without_commands_is_named() {
    let dir = TempDir::new("restore-old");
    let agent = start(
        &dir.0,
        Fake {
            without_commands: true,
            ..Default::default()
        },
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R"], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nothing was changed. -R --replace works with it."),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(agent.calls().len(), 1, "the settings lines did not run");
    let out = ipvsctl_stdin(&agent.socket, &["-R", "--replace"], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_what_the_agent_undid() {
    let dir = TempDir::new("restore-abort");
    let msg = "change 2 of 3 (-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3) failed: Invalid argument; the 1 change made before it was undone: the table is as it was";
    let agent = start(
        &dir.0,
        Fake {
            failures: vec![
                ("Apply", Code::Aborted, msg, "", 0),
                ("Zero", Code::NotFound, "", "", 0),
            ],
            ..Default::default()
        },
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R"], RESTORE_INPUT).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(255), String::new(), format!("{msg}\n"))
    );
    // Nothing runs after a failed table.
    assert_eq!(agent.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_each_failed_setting_line() {
    let dir = TempDir::new("restore-late");
    let agent = start(
        &dir.0,
        Fake {
            failures: vec![
                ("Zero", Code::NotFound, "service not found", "", 0),
                (
                    "StartDaemon",
                    Code::AlreadyExists,
                    "master daemon already runs",
                    "",
                    0,
                ),
            ],
            ..Default::default()
        },
    );
    let out = ipvsctl_stdin(&agent.socket, &["-R"], RESTORE_INPUT).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(255),
            String::new(),
            "line 6: No such service\nline 7: Daemon has already run\n".to_string()
        )
    );
    let names: Vec<String> = agent
        .calls()
        .iter()
        .map(|c| c.split(' ').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, vec!["Apply", "SetTimeouts", "Zero", "StartDaemon"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_scheduler_is_named_after_the_service_lookup() {
    // The kernel looks the service up before the scheduler; so does ipvsctl.
    let cases: &[(bool, &str, &str)] = &[
        (false, "-A", "Scheduler or persistence engine not found\n"),
        (false, "-E", "No such service\n"),
        (true, "-A", "Service already exists\n"),
        (true, "-E", "Scheduler or persistence engine not found\n"),
    ];
    for (exists, cmd, stderr) in cases {
        let dir = TempDir::new("unknown-sched");
        let agent = start(
            &dir.0,
            Fake {
                services: if *exists {
                    vec![seed_service()]
                } else {
                    Vec::new()
                },
                failures: if *exists {
                    Vec::new()
                } else {
                    vec![("GetService", Code::NotFound, "Service not defined", "", 0)]
                },
                ..Default::default()
            },
        );
        let out = ipvsctl(
            Some(&agent.socket),
            &[cmd, "-t", "192.168.100.1:80", "-s", "nosuch"],
        )
        .await;
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(255), stderr.to_string()),
            "{cmd} exists={exists}"
        );
        let calls = agent.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0].starts_with("GetService "), "{calls:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_larger_than_grpc_default_message_limit_lists() {
    // 15,000 services of 10 real servers with counters: above tonic's default 4 MiB.
    let services: Vec<pb::Service> = (0..15000u32)
        .map(|i| {
            let mut s = seed_service();
            let b = i.to_be_bytes();
            if let Some(k) = s.key.as_mut() {
                k.address = v4([10, b[1], b[2], b[3]]);
            }
            let real = s.destinations[0].clone();
            s.destinations = (0..10u32)
                .map(|j| pb::Destination {
                    port: 8000 + j,
                    ..real.clone()
                })
                .collect();
            s
        })
        .collect();
    let size: usize = services.iter().map(prost::Message::encoded_len).sum();
    assert!(size > 4 << 20, "{size} bytes");
    let dir = TempDir::new("big");
    let agent = start(
        &dir.0,
        Fake {
            services,
            ..Default::default()
        },
    );
    let out = ipvsctl(Some(&agent.socket), &["-Sn"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 15000 * 11);
}
