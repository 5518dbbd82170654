//! The real `ipvsctl` binary's ipvsadm and iproute2 commands against the real agent's routes
//! over its in-memory IPVS table and links (`ipvs_agent::testing`), on a unix socket.
//!
//! They check that ipvsctl prints the right bytes, maps the agent's refusals to ipvsadm's
//! words and exit statuses, reports an unreachable agent, and that what it asks for is what
//! reaches the table: the writes the fake kernel saw, in ipvsadm's words. Behaviour against a
//! real kernel is the lab VM end-to-end tests' business.

mod support;

use std::net::IpAddr;

use ipvs_agent::api::{IpvsApi, LinkApi, TableApi};
use ipvs_agent::ipvs::{
    Connection, Daemon, DaemonState, Destination, ForwardMethod, IpvsError, IpvsOps, Protocol,
    Scheduler, Service, ServiceKey, Stats,
};
use ipvs_agent::testing::TestNode;
use ipvs_proto::v1 as pb;
use ipvs_proto::v1::table_service_server::TableService;
use support::{
    PROGRAM, Services, TestAgent, agent, ipvsctl, ipvsctl_stdin, ok, restore, result, run, text,
};
use tonic::service::Routes;

fn tcp(addr: &str) -> ServiceKey {
    let a: std::net::SocketAddr = addr.parse().expect("address");
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: a.ip(),
        port: a.port(),
    }
}

fn udp(addr: &str) -> ServiceKey {
    let a: std::net::SocketAddr = addr.parse().expect("address");
    ServiceKey::Endpoint {
        protocol: Protocol::Udp,
        addr: a.ip(),
        port: a.port(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn counters(c: [u64; 5]) -> Stats {
    Stats {
        conns: c[0],
        inpkts: c[1],
        outpkts: c[2],
        inbytes: c[3],
        outbytes: c[4],
        ..Stats::default()
    }
}

const VIP: &str = "192.168.100.1:80";

/// The seed scenario, straight into the agent's table: a round-robin service and two NAT real
/// servers, with the counters some traffic left.
async fn seed(agent: &TestAgent) {
    let key = tcp(VIP);
    let ipvs = &agent.ipvs;
    round_robin_with_two_backends(ipvs, key).await;
    ipvs.set_stats(&key, counters([6, 38, 35, 2486, 3248]));
    ipvs.set_dest_stats(
        &key,
        ip("127.0.0.1"),
        8082,
        counters([3, 19, 18, 1243, 1662]),
    );
    ipvs.set_dest_stats(
        &key,
        ip("127.0.0.1"),
        8081,
        counters([3, 19, 17, 1243, 1586]),
    );
}

const SEED_LN: &str = include_str!("../testdata/ipvsadm/seed-ln.txt");
const SEED_LN_STATS: &str = include_str!("../testdata/ipvsadm/seed-ln-stats.txt");

#[tokio::test(flavor = "multi_thread")]
async fn seed_listings_are_ipvsadm_bytes() {
    let agent = agent().await;
    seed(&agent).await;
    let address = agent.address();
    let out = ipvsctl(Some(&address), &["-ln"]).await;
    assert_eq!(result(&out), ok(SEED_LN));
    let out = ipvsctl(None, &["--agent", &address, "-ln", "--stats"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), SEED_LN_STATS.to_string())
    );
    // Per listing, one dump of the table: not a call per service. (The kernel's info, which
    // the header needs, is not counted as a table read.)
    assert_eq!(agent.ipvs.reads(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_listing_has_stable_fields() {
    let agent = agent().await;
    seed(&agent).await;
    let out = ipvsctl(Some(&agent.address()), &["-ln", "-o", "json"]).await;
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
    // Sorted as ipvsadm sorts: 8081 before 8082, which the table holds first.
    assert_eq!(s["destinations"][0]["port"], 8081);
    assert_eq!(s["destinations"][0]["forwarding"], "masq");
    assert_eq!(s["destinations"][1]["stats"]["out_bytes"], 1662);
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_changes_send_the_right_requests() {
    let agent = agent().await;
    let address = agent.address();
    let service = "-A -t 192.168.100.1:80 -s rr";
    // Each line, then the table it leaves.
    let steps: &[(&str, &[&str])] = &[
        ("-A -t 192.168.100.1:80 -s rr", &[service]),
        (
            "-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m",
            &[service, "-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 1"],
        ),
        (
            "-e -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 0",
            &[service, "-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 0"],
        ),
        ("-d -t 192.168.100.1:80 -r 127.0.0.1:8081", &[service]),
        // -M 0.0.0.0 is a netmask of 0, not the default (no -M: /32).
        (
            "-E -t 192.168.100.1:80 -s wrr -p 60 -M 0.0.0.0",
            &["-A -t 192.168.100.1:80 -s wrr -p 60 -M 0.0.0.0"],
        ),
        ("-Z", &["-A -t 192.168.100.1:80 -s wrr -p 60 -M 0.0.0.0"]),
        ("-D -t 192.168.100.1:80", &[]),
        ("-C", &[]),
    ];
    for (line, table) in steps {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&address), &args).await;
        assert_eq!(result(&out), ok(""), "{line}");
        assert_eq!(agent.ipvs.rules(), *table, "after {line}");
    }
    // One write each, and nothing else written.
    assert_eq!(
        agent.ipvs.written(),
        [
            "-A -t 192.168.100.1:80 -s rr",
            "-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 1",
            "-e -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 0",
            "-d -t 192.168.100.1:80 -r 127.0.0.1:8081",
            "-E -t 192.168.100.1:80 -s wrr -p 60 -M 0.0.0.0",
            "-Z",
            "-D -t 192.168.100.1:80",
            "-C",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_use_ipvsadm_words_and_status() {
    let agent = agent().await;
    let address = agent.address();
    let refused = |line: &'static str, status: i32, stderr: &'static str| {
        let address = address.clone();
        async move {
            let args: Vec<&str> = line.split(' ').collect();
            let out = ipvsctl(Some(&address), &args).await;
            assert_eq!(
                result(&out),
                (Some(status), String::new(), stderr.to_string()),
                "{line}"
            );
        }
    };
    // No service yet.
    refused(
        "-a -t 10.0.0.1:80 -r 10.1.0.1",
        255,
        "Service not defined\n",
    )
    .await;
    refused("-Ln -t 10.0.0.1:80", 1, "No such service\n").await;
    // The service, without that real server.
    restore(&agent, "-A -t 10.0.0.1:80\n").await;
    refused("-A -t 10.0.0.1:80", 255, "Service already exists\n").await;
    refused(
        "-d -t 10.0.0.1:80 -r 10.1.0.1",
        255,
        "No such destination\n",
    )
    .await;
    // A node without IPVS.
    agent.ipvs.fail_next(IpvsError::Unavailable);
    refused(
        "-ln",
        2,
        "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
    )
    .await;
    assert_eq!(agent.ipvs.rules(), ["-A -t 10.0.0.1:80 -s wlc"]);
}

/// The agent streams a listing as it reads it; a read failing after some services were sent
/// fails the listing exactly as one failing from the start does, with nothing printed.
#[tokio::test(flavor = "multi_thread")]
async fn a_listing_failing_half_way_fails_as_a_whole() {
    let agent = agent().await;
    let address = agent.address();
    restore(&agent, "-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n").await;
    for line in ["-Ln", "-Sn", "-L --nosort"] {
        let args: Vec<&str> = line.split(' ').collect();
        let mut outs = Vec::new();
        for after in [0, 1] {
            agent
                .ipvs
                .cut_table(after, IpvsError::Netlink("connection closed".into()));
            outs.push(result(&ipvsctl(Some(&address), &args).await));
        }
        assert_eq!(
            outs[0],
            (
                Some(1),
                String::new(),
                "netlink: connection closed\n".into()
            ),
            "{line}"
        );
        assert_eq!(outs[1], outs[0], "{line}");
    }
}

/// The IPVS service of an agent from before `StreamServices`: that call is UNIMPLEMENTED, as
/// tonic answers a method it does not know.
#[derive(Clone)]
struct WithoutStreamServices<S>(S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for WithoutStreamServices<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>>
    for WithoutStreamServices<S>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<tonic::body::Body>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tonic::codegen::BoxFuture<S::Response, S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path().ends_with("/StreamServices") {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        Box::pin(self.0.call(req))
    }
}

/// An agent older than `StreamServices` lists through `ListServices`, with the same bytes
/// and the same refusals.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_without_streamed_listings_lists_in_one_reply() {
    let current = agent().await;
    let old = TestNode::new(Services::default())
        .await
        .serve_with(|node, _| {
            Ok(Routes::new(WithoutStreamServices(
                IpvsApi::new(node.kernel.clone()).into_server(),
            )))
        });
    for a in [&current.ipvs, &old.ipvs] {
        seed_table(a).await;
    }
    for line in ["-Ln", "-Sn", "-L --nosort --stats"] {
        let args: Vec<&str> = line.split(' ').collect();
        let want = ipvsctl(Some(&current.address()), &args).await;
        assert_eq!(want.status.code(), Some(0), "{}", text(&want.stderr));
        let got = ipvsctl(Some(&old.address()), &args).await;
        assert_eq!(result(&got), result(&want), "{line}");
    }
    old.ipvs
        .fail_next(IpvsError::Netlink("connection closed".into()));
    assert_eq!(
        result(&ipvsctl(Some(&old.address()), &["-Sn"]).await),
        (
            Some(1),
            String::new(),
            "netlink: connection closed\n".into()
        )
    );
}

/// A few services with real servers, in an order the listing sorts.
async fn seed_table(ipvs: &ipvs_agent::ipvs::fake::FakeIpvs) {
    for vip in ["10.0.0.3:80", "10.0.0.1:443", "10.0.0.2:80"] {
        round_robin_with_two_backends(ipvs, tcp(vip)).await;
    }
}

/// A round-robin service at `key` with NAT real servers 127.0.0.1:8082 and :8081.
async fn round_robin_with_two_backends(ipvs: &ipvs_agent::ipvs::fake::FakeIpvs, key: ServiceKey) {
    ipvs.new_service(&Service::new(key, Scheduler::Rr))
        .await
        .expect("service");
    for port in [8082, 8081] {
        let real = Destination {
            forward: ForwardMethod::Masquerade,
            ..Destination::new(ip("127.0.0.1"), port)
        };
        ipvs.new_dest(&key, &real).await.expect("real server");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_never_reach_the_agent() {
    let agent = agent().await;
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
    for (line, status, stderr) in cases {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&agent.address()), &args).await;
        let stderr = stderr.replace("IPVSCTL", PROGRAM);
        assert_eq!(
            result(&out),
            (Some(*status), String::new(), stderr),
            "{line}"
        );
    }
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
    assert_eq!(agent.ipvs.reads(), 0, "nothing was even read");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_agent_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = format!("unix:{}", dir.path().join("nobody.sock").display());
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
    let agent = agent().await;
    seed(&agent).await;
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let status = tokio::process::Command::new(PROGRAM)
        .args(["--agent", &agent.address(), "-ln"])
        .stdout(writer)
        .status()
        .await
        .expect("run ipvsctl");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn link_and_addr_commands() {
    use ipvs_agent::link::{LinkName, LinkOps};
    let agent = agent().await;
    let address = agent.address();
    for line in [
        "link add dummy1 type dummy",
        "addr add 192.168.100.1/32 dev dummy1",
        "link set dummy1 up",
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&address), &args).await;
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(0), String::new()),
            "{line}"
        );
    }
    // What reached the links: a dummy link, up, with the address.
    let dummy1 = LinkName::new("dummy1").expect("name");
    let links = agent.links.list().await.expect("links");
    let link = links.iter().find(|l| l.name == "dummy1").expect("dummy1");
    assert_eq!(
        (link.kind.as_deref(), link.up, link.lower_up),
        (Some("dummy"), true, true)
    );
    let addresses = agent
        .links
        .list_addresses(Some(&dummy1))
        .await
        .expect("addresses");
    let addresses: Vec<(IpAddr, u8)> = addresses
        .iter()
        .map(|a| (a.address, a.prefix_len))
        .collect();
    assert_eq!(addresses, [(ip("192.168.100.1"), 32)]);

    let out = ipvsctl(Some(&address), &["addr", "show", "dev", "dummy1"]).await;
    let mac: Vec<String> = link.mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}: dummy1: <BROADCAST,NOARP,UP,LOWER_UP> mtu 1500 state UNKNOWN\n    link/ether {} brd ff:ff:ff:ff:ff:ff\n    dummy\n    inet 192.168.100.1/32 scope global dummy1\n",
            link.index,
            mac.join(":")
        )
    );
    let out = ipvsctl(Some(&address), &["-o", "json", "link", "show"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (&v[0]["ifname"], &v[0]["kind"]),
        (&"dummy1".into(), &"dummy".into())
    );
    let out = ipvsctl(Some(&address), &["link", "del", "nosuch"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(1), "Cannot find device \"nosuch\"\n".to_string())
    );
}

const TIMEOUT: &str = include_str!("../testdata/ipvsadm/timeout.txt");

fn connection() -> Connection {
    Connection {
        protocol: "TCP".into(),
        client: "127.0.0.1:41000".parse().expect("client"),
        vip: VIP.parse().expect("vip"),
        dest: "127.0.0.1:8081".parse().expect("dest"),
        state: "ESTABLISHED".into(),
        expires: 899,
        pe: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_send_the_right_requests_and_list_like_ipvsadm() {
    let agent = agent().await;
    let address = agent.address();
    agent.ipvs.set_connections(vec![connection()]);
    let changes = [
        "--set 900 120 30",
        "--start-daemon backup --mcast-interface dummy1 --syncid 255 --mcast-group 239.1.1.1 --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1400",
        "--start-daemon master",
        "--stop-daemon backup",
        // The daemons ipvsadm's listing below shows.
        "--stop-daemon master",
        "--start-daemon master --syncid 5",
        "--start-daemon backup --mcast-interface dummy1 --syncid 255",
        "--set 900 120 300",
    ];
    for line in changes {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&address), &args).await;
        assert_eq!(result(&out), ok(""), "{line}");
    }
    // Each line reached the kernel as that line: a daemon started without options is eth0's,
    // with sync id 0 and the kernel's defaults for the rest.
    assert_eq!(
        agent.ipvs.written(),
        [
            "--set 900 120 30",
            "--start-daemon backup --mcast-interface dummy1 --syncid 255 --sync-maxlen 1400 --mcast-group 239.1.1.1 --mcast-port 8849 --mcast-ttl 2",
            "--start-daemon master --mcast-interface eth0 --syncid 0",
            "--stop-daemon backup",
            "--stop-daemon master",
            "--start-daemon master --mcast-interface eth0 --syncid 5",
            "--start-daemon backup --mcast-interface dummy1 --syncid 255",
            "--set 900 120 300",
        ]
    );
    let reads: &[(&str, &str)] = &[
        ("-L --timeout", TIMEOUT),
        // With the values a kernel since 4.3 reports for what was not given.
        (
            "-L --daemon",
            "master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
             backup sync daemon (mcast=dummy1, syncid=255, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
        ),
        (
            "-Lcn",
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED 127.0.0.1:41000    192.168.100.1:80   127.0.0.1:8081\n",
        ),
    ];
    for (line, stdout) in reads {
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&address), &args).await;
        assert_eq!(result(&out), ok(stdout), "{line}");
    }
    // The same reads as JSON.
    let json = |args: &'static [&'static str]| {
        let address = address.clone();
        async move {
            let out = ipvsctl(Some(&address), args).await;
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
    let agent = agent().await;
    let address = agent.address();
    let master = Daemon {
        state: DaemonState::Master,
        mcast_ifn: "eth0".into(),
        sync_id: 0,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    agent.ipvs.new_daemon(&master).await.expect("master daemon");
    // Each line, and how the node fails it (the table itself refuses the first two).
    type Fail = Option<Box<dyn Fn(&TestAgent)>>;
    let cases: Vec<(&str, Fail, i32, &str)> = vec![
        (
            "--start-daemon master",
            None,
            255,
            "Daemon has already run\n",
        ),
        ("--stop-daemon backup", None, 255, "No daemon is running\n"),
        // ipvsadm exits 1 without a word when it cannot read these.
        (
            "-L --timeout",
            Some(Box::new(|a: &TestAgent| {
                a.ipvs
                    .fail_next(IpvsError::Netlink("netlink socket closed".into()))
            })),
            1,
            "",
        ),
        (
            "-L --daemon",
            Some(Box::new(|a: &TestAgent| {
                a.ipvs.fail_next(IpvsError::PermissionDenied)
            })),
            1,
            "",
        ),
        (
            "-Lcn",
            Some(Box::new(|a: &TestAgent| {
                a.ipvs.fail_next(IpvsError::ConnTable(
                    "cannot read /proc/net/ip_vs_conn".into(),
                ))
            })),
            1,
            "cannot open file /proc/net/ip_vs_conn\n",
        ),
        (
            "--set 1 2 3",
            Some(Box::new(|a: &TestAgent| {
                a.ipvs.refuse_nth_write(1, ipvs_proto::errno::EINVAL)
            })),
            255,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
    ];
    for (line, fail, status, stderr) in cases {
        if let Some(fail) = fail {
            fail(&agent);
        }
        let args: Vec<&str> = line.split(' ').collect();
        let out = ipvsctl(Some(&address), &args).await;
        assert_eq!(
            result(&out),
            (Some(status), String::new(), stderr.to_string()),
            "{line}"
        );
    }
    assert_eq!(agent.ipvs.running_daemons(), [master_as_dumped(master)]);
}

/// A daemon as the kernel's dump reports it: its defaults filled in.
fn master_as_dumped(d: Daemon) -> Daemon {
    Daemon {
        sync_maxlen: Some(1472),
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: Some(8848),
        mcast_ttl: Some(1),
        ..d
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_without_the_settings_api_is_named() {
    // An agent from before ConfigService and TableService: the real IPVS and link services
    // only.
    let agent = TestNode::new(Services::default())
        .await
        .serve_with(|node, _| {
            Ok(Routes::new(IpvsApi::new(node.kernel.clone()).into_server())
                .add_service(LinkApi::new(node.kernel.clone(), node.links.clone()).into_server()))
        });
    let address = agent.address();
    let out = ipvsctl(Some(&address), &["-L", "--timeout"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("ipvsctl: the agent does not implement GetTimeouts"),
        "{}",
        text(&out.stderr)
    );
    let out = ipvsctl_stdin(&address, &["-R"], "-A -t 10.0.0.1:80\n").await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("ipvsctl: the agent does not implement Apply"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
}

/// `ipvsadm -Sn` of a small table, plus settings lines.
const RESTORE_INPUT: &str = "--set 900 120 300\n\
    -A -t 10.0.0.1:80 -s rr\n\
    -a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3\n\
    # the DNS service\n\
    -A -u 10.0.0.2:53 -s wlc\n\
    -Z -u 10.0.0.2:53\n\
    --start-daemon master --mcast-interface dummy1\n";

/// What RESTORE_INPUT leaves in the table.
const RESTORED: [&str; 3] = [
    "-A -t 10.0.0.1:80 -s rr",
    "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3",
    "-A -u 10.0.0.2:53 -s wlc",
];

/// The settings lines of RESTORE_INPUT as they reach the kernel, after the table.
const SETTINGS: [&str; 3] = [
    "--set 900 120 300",
    "-Z -u 10.0.0.2:53",
    "--start-daemon master --mcast-interface dummy1 --syncid 0",
];

/// `-R`: the table lines run on top of the agent's table, in order; the other lines run
/// after, in input order.
#[tokio::test(flavor = "multi_thread")]
async fn restore_sends_its_lines_to_run_on_top_then_the_settings() {
    let agent = agent().await;
    restore(&agent, "-A -t 10.0.0.9:80 -s sh\n").await;
    let before = agent.ipvs.written().len();
    let out = ipvsctl_stdin(&agent.address(), &["-R"], RESTORE_INPUT).await;
    assert_eq!(result(&out), ok(""));
    // On top: what was there stays; the table's lines first, then the others.
    let mut table = vec!["-A -t 10.0.0.9:80 -s sh"];
    table.extend(RESTORED);
    table.sort();
    let mut rules = agent.ipvs.rules();
    rules.sort();
    assert_eq!(rules, table);
    let mut written = RESTORED.to_vec();
    written.extend(SETTINGS);
    assert_eq!(agent.ipvs.written()[before..], written);
}

/// `-R --replace` (and `ipvsctl-restore`): the input's table as the whole desired table.
#[tokio::test(flavor = "multi_thread")]
async fn restore_replace_sends_the_whole_table_then_the_settings() {
    // An agent whose table holds what the input drops, and part of what it declares.
    let start = || async {
        let agent = agent().await;
        restore(&agent, "-A -t 10.0.0.9:80\n-A -t 10.0.0.1:80 -s rr\n").await;
        let before = agent.ipvs.written().len();
        (agent, before)
    };
    let (agent, before) = start().await;
    let out = ipvsctl_stdin(&agent.address(), &["-R", "--replace"], RESTORE_INPUT).await;
    assert_eq!(result(&out), ok(""));
    let mut table = agent.ipvs.rules();
    table.sort();
    let mut want = RESTORED.to_vec();
    want.sort();
    assert_eq!(table, want);
    // Only what differs is written, then the other lines in input order.
    let written = agent.ipvs.written()[before..].to_vec();
    let mut changes = written[..3].to_vec();
    changes.sort();
    assert_eq!(
        changes,
        [
            "-A -u 10.0.0.2:53 -s wlc",
            "-D -t 10.0.0.9:80",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3",
        ]
    );
    assert_eq!(written[3..], SETTINGS);

    // Run as ipvsctl-restore on an agent in the same state: the same writes.
    let (same, before_same) = start().await;
    let out = run(
        Some("ipvsctl-restore"),
        Some(&same.address()),
        &[],
        RESTORE_INPUT,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(same.ipvs.written()[before_same..], written);

    // The plan as JSON.
    let json = support::agent().await;
    let out = ipvsctl_stdin(&json.address(), &["-R", "-o", "json"], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (&v["dry_run"], &v["applied"]),
        (&false.into(), &true.into())
    );
    let out = ipvsctl_stdin(
        &json.address(),
        &["-R", "--replace", "-o", "json"],
        "-A -t 10.0.0.1:80 -s rr\n--set 900 120 300\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let deleted = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["kind"] == "delete_service")
        .cloned();
    assert_eq!(
        deleted,
        Some(serde_json::json!({"kind": "delete_service", "description": "-D -u 10.0.0.2:53"}))
    );
    assert_eq!(v["then"][0], "--set 900 120 300");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_dry_run_prints_the_plan_and_changes_nothing() {
    let agent = agent().await;
    let out = ipvsctl_stdin(&agent.address(), &["-R", "--dry-run"], RESTORE_INPUT).await;
    assert_eq!(
        result(&out),
        ok("-A -t 10.0.0.1:80 -s rr\n\
            -a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3\n\
            -A -u 10.0.0.2:53 -s wlc\n\
            --set 900 120 300\n\
            -Z -u 10.0.0.2:53\n\
            --start-daemon master --mcast-interface dummy1\n")
    );
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());

    // The same with --replace, as the whole table, on a table that holds part of it.
    restore(
        &agent,
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m\n",
    )
    .await;
    let before = agent.ipvs.written();
    let out = ipvsctl_stdin(
        &agent.address(),
        &["-R", "--replace", "--dry-run"],
        RESTORE_INPUT,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut plan: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    plan[..2].sort();
    assert_eq!(
        plan,
        [
            "-A -u 10.0.0.2:53 -s wlc",
            "-e -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3",
            "--set 900 120 300",
            "-Z -u 10.0.0.2:53",
            "--start-daemon master --mcast-interface dummy1",
        ]
    );
    let out = ipvsctl_stdin(
        &agent.address(),
        &["--dry-run", "-R", "--replace", "-o", "json"],
        RESTORE_INPUT,
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        (&v["dry_run"], &v["applied"]),
        (&true.into(), &false.into())
    );
    let kinds: Vec<&str> = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"update_destination"), "{v}");
    assert_eq!(agent.ipvs.written(), before, "a dry run wrote");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_a_bad_input_before_touching_anything() {
    let agent = agent().await;
    let address = agent.address();
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
        let out = ipvsctl_stdin(&address, &["-R"], input).await;
        assert_eq!(
            result(&out),
            (Some(*status), String::new(), stderr.to_string()),
            "{input}"
        );
    }
    // Options of ipvsadm's own -R command are checked too.
    let out = ipvsctl_stdin(&address, &["-R", "-n"], "").await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(2),
            "Illegal 'numeric' option with the 'restore' command\n".to_string()
        )
    );
    // With --replace the whole input is run here, on an empty table.
    let out = ipvsctl_stdin(
        &address,
        &["-R", "--replace"],
        "-A -t 10.0.0.1:80\n\n-a -t 10.0.0.2:80 -r 10.0.1.1\n",
    )
    .await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(255), "line 3: Service not defined\n".to_string())
    );
    // The lines before a bad one were only checked against the table (one dry run, one read
    // of the table), and nothing was written.
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
    assert_eq!(agent.ipvs.reads(), 1);
}

/// The agent's refusal of a line, in ipvsadm's words with the line's number; a line before a
/// bad one that the table refuses is reported first.
#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_the_line_the_table_refuses() {
    let head = "-A -t 10.0.0.1:80\n# comment\n-A -t 10.0.0.2:80\n";
    // The table, the input, then ipvsctl's stderr (it exits 255).
    let cases: &[(&str, String, &str)] = &[
        (
            "-A -t 10.0.0.2:80\n",
            format!("{head}-a -t 10.0.0.2:80 -r 10.0.1.1\n"),
            "line 3: Service already exists\n",
        ),
        (
            "",
            format!("{head}-a -t 10.0.0.3:80 -r 10.0.1.1\n"),
            "line 4: Service not defined\n",
        ),
        (
            "-A -t 10.0.0.3:80\n-a -t 10.0.0.3:80 -r 10.0.1.1\n",
            format!("{head}-a -t 10.0.0.3:80 -r 10.0.1.1\n"),
            "line 4: Destination already exists\n",
        ),
        (
            "",
            format!("{head}-E -t 10.0.0.2:80 -p 60 --pe s-i-p\n"),
            "line 4: invalid persistence engine name \"s-i-p\"\n",
        ),
        // Line 1 is refused by the table before line 2 is refused here.
        (
            "-A -t 10.0.0.1:80\n",
            "-A -t 10.0.0.1:80\n-A -t 10.0.0.3:0\n".into(),
            "line 1: Service already exists\n",
        ),
        // An unknown scheduler: the service's lookup decides.
        (
            "-A -t 10.0.0.9:80\n-A -t 10.0.0.1:80\n",
            "-D -t 10.0.0.9:80\n-A -t 10.0.0.1:80 -s nosuch\n".into(),
            "line 2: Service already exists\n",
        ),
        (
            "",
            "-E -t 10.0.0.1:80 -s nosuch\n".into(),
            "line 1: No such service\n",
        ),
    ];
    for (table, input, stderr) in cases {
        let agent = agent().await;
        if !table.is_empty() {
            restore(&agent, table).await;
        }
        let before = agent.ipvs.written();
        let out = ipvsctl_stdin(&agent.address(), &["-R"], input).await;
        assert_eq!(
            result(&out),
            (Some(255), String::new(), stderr.to_string()),
            "{table}then {input}"
        );
        // Nothing runs after a refused table.
        assert_eq!(agent.ipvs.written(), before, "{table}then {input}");
    }
    // When the agent accepts the lines before, the line's own refusal stands.
    let agent = agent().await;
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
        let out = ipvsctl_stdin(&agent.address(), &["-R"], input).await;
        assert_eq!(text(&out.stderr), stderr, "{input}");
    }
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
}

/// TableService of an agent from before `commands`: it does not know the field, so it reads
/// an ApplyRequest without it (no services, no prune: nothing to do), and its answer has no
/// `commands_run`. The real TableApi does the rest.
struct WithoutCommands(TableApi<ipvs_agent::testing::FakeIpvs>);

#[tonic::async_trait]
impl TableService for WithoutCommands {
    async fn apply(
        &self,
        request: tonic::Request<pb::ApplyRequest>,
    ) -> Result<tonic::Response<pb::ApplyResponse>, tonic::Status> {
        let old = pb::ApplyRequest {
            commands: Vec::new(),
            mode: 0,
            ..request.into_inner()
        };
        let mut answer = self.0.apply(tonic::Request::new(old)).await?;
        answer.get_mut().commands_run = 0;
        Ok(answer)
    }
}

/// An agent from before `commands` ignores them and changes nothing: ipvsctl says so.
#[tokio::test(flavor = "multi_thread")]
async fn restore_on_an_agent_without_commands_is_named() {
    use ipvs_proto::v1::table_service_server::TableServiceServer;
    let agent = TestNode::new(Services::default())
        .await
        .serve_with(|node, _| {
            // The agent's routes, but TableService.
            let mut routes = Routes::new(IpvsApi::new(node.kernel.clone()).into_server())
                .add_service(ipvs_agent::api::ConfigApi::new(node.kernel.clone()).into_server())
                .add_service(LinkApi::new(node.kernel.clone(), node.links.clone()).into_server());
            routes = routes.add_service(TableServiceServer::new(WithoutCommands(TableApi::new(
                node.kernel.clone(),
            ))));
            Ok(routes)
        });
    let out = ipvsctl_stdin(&agent.address(), &["-R"], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nothing was changed. -R --replace works with it."),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        agent.ipvs.written(),
        Vec::<String>::new(),
        "the settings lines did not run"
    );
    let out = ipvsctl_stdin(&agent.address(), &["-R", "--replace"], RESTORE_INPUT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut rules = agent.ipvs.rules();
    rules.sort();
    let mut want = RESTORED.to_vec();
    want.sort();
    assert_eq!(rules, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_what_the_agent_undid() {
    let agent = agent().await;
    // The kernel refuses the second change of the table.
    agent.ipvs.refuse_nth_write(2, ipvs_proto::errno::EINVAL);
    let out = ipvsctl_stdin(&agent.address(), &["-R"], RESTORE_INPUT).await;
    assert_eq!(
        result(&out),
        (
            Some(255),
            String::new(),
            "change 2 of 3 failed: \"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3\": add \
             destination: Invalid argument (errno 22); the 2 changes made were undone: the table \
             is as it was\n"
                .to_string()
        )
    );
    // The changes after the refused one were made too, as the kernel runs a batch; all were
    // undone, newest first, and nothing runs after a failed table.
    assert_eq!(
        agent.ipvs.written(),
        [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3",
            "-A -u 10.0.0.2:53 -s wlc",
            "-D -u 10.0.0.2:53",
            "-D -t 10.0.0.1:80",
        ]
    );
    assert_eq!(agent.ipvs.rules(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_reports_each_failed_setting_line() {
    let agent = agent().await;
    // The service is gone by the time its -Z runs; a master daemon already runs.
    agent.ipvs.refuse_write(
        ipvs_agent::testing::Write::Zero(Some(udp("10.0.0.2:53"))),
        ipvs_proto::errno::ESRCH,
    );
    restore(&agent, "--start-daemon master --mcast-interface dummy1\n").await;
    let before = agent.ipvs.written().len();
    let out = ipvsctl_stdin(&agent.address(), &["-R"], RESTORE_INPUT).await;
    assert_eq!(
        result(&out),
        (
            Some(255),
            String::new(),
            "line 6: No such service\nline 7: Daemon has already run\n".to_string()
        )
    );
    // Every settings line was tried, after the table.
    let mut written = RESTORED.to_vec();
    written.extend(SETTINGS);
    assert_eq!(agent.ipvs.written()[before..], written);
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
        let agent = agent().await;
        if *exists {
            seed(&agent).await;
        }
        let before = agent.ipvs.written();
        let out = ipvsctl(Some(&agent.address()), &[cmd, "-t", VIP, "-s", "nosuch"]).await;
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(255), stderr.to_string()),
            "{cmd} exists={exists}"
        );
        // The service looked up, nothing written.
        assert!(agent.ipvs.reads() > 0, "{cmd} exists={exists}");
        assert_eq!(agent.ipvs.written(), before, "{cmd} exists={exists}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_larger_than_grpc_default_message_limit_lists() {
    use prost::Message;
    // 15,000 services of 10 real servers with counters: above tonic's default 4 MiB.
    let agent = agent().await;
    let ipvs = &agent.ipvs;
    for i in 0..15000u32 {
        let b = i.to_be_bytes();
        let key = tcp(&format!("10.{}.{}.{}:80", b[1], b[2], b[3]));
        ipvs.new_service(&Service::new(key, Scheduler::Rr))
            .await
            .expect("service");
        ipvs.set_stats(&key, counters([6, 38, 35, 2486, 3248]));
        for port in 8000..8010 {
            let real = Destination {
                forward: ForwardMethod::Masquerade,
                ..Destination::new(ip("127.0.0.1"), port)
            };
            ipvs.new_dest(&key, &real).await.expect("real server");
            ipvs.set_dest_stats(
                &key,
                ip("127.0.0.1"),
                port,
                counters([3, 19, 17, 1243, 1586]),
            );
        }
    }
    let listed = pb::ipvs_service_client::IpvsServiceClient::new(agent.channel().await)
        .max_decoding_message_size(usize::MAX)
        .list_services(pb::ListServicesRequest {})
        .await
        .expect("list")
        .into_inner();
    let size = listed.encoded_len();
    assert!(size > 4 << 20, "{size} bytes");
    let out = ipvsctl(Some(&agent.address()), &["-Sn"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 15000 * 11);
}
