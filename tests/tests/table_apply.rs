//! `TableService.Apply` and `ConfigService` against the real kernel, with the real `ipvsadm`
//! as the reference: a declared table ends up exactly as ipvsadm builds it, a second apply has
//! nothing to do, updates happen in place (connections and counters survive), and a kernel
//! refusal half-way leaves the table as it was. ipvsadm's lines run on top of the live table,
//! refused whole when the table refuses one.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ipvs_e2e::api::{endpoint, seconds, whole_seconds};
use ipvs_e2e::{Agent, Backend, Netns, http_get, ipvsadm, run, run_ok, table_snapshot, wait_for};
use ipvs_proto::details::field_violations;
use ipvs_proto::v1::config_service_client::ConfigServiceClient;
use ipvs_proto::v1::ipvs_service_client::IpvsServiceClient;
use ipvs_proto::v1::table_service_client::TableServiceClient;
use ipvs_proto::v1::{
    AddressFamily, ApplyMode, ApplyRequest, ApplyResponse, ChangeKind, Daemon, DaemonRole,
    Destination, DestinationCommand, ForwardingMethod, GetTimeoutsRequest, ListConnectionsRequest,
    ListDaemonsRequest, ListServicesRequest, Protocol, Scheduler, Service, ServiceKey,
    ServiceOptions, SetTimeoutsRequest, StartDaemonRequest, StopDaemonRequest, TableCommand,
    Timeouts, Tunnel, TunnelChecksum, TunnelType, table_command,
};
use tonic::Code;
use tonic::transport::Channel;

fn service(key: Option<ServiceKey>, scheduler: Scheduler, dests: Vec<Destination>) -> Service {
    Service {
        key,
        scheduler: scheduler.into(),
        destinations: dests,
        ..Default::default()
    }
}

fn with_options(mut s: Service, options: ServiceOptions) -> Service {
    s.options = Some(options);
    s
}

fn dest(at: &str, forwarding: ForwardingMethod, weight: u32) -> Destination {
    let sa: SocketAddr = at.parse().expect("test address");
    Destination {
        address: sa.ip().to_string(),
        port: sa.port().into(),
        forwarding: forwarding.into(),
        weight: Some(weight),
        ..Default::default()
    }
}

fn request(services: Vec<Service>, prune: bool, dry_run: bool) -> ApplyRequest {
    ApplyRequest {
        services,
        prune,
        dry_run,
        ..Default::default()
    }
}

async fn apply(channel: &Channel, req: ApplyRequest) -> Result<ApplyResponse, tonic::Status> {
    TableServiceClient::new(channel.clone())
        .apply(req)
        .await
        .map(tonic::Response::into_inner)
}

fn words(r: &ApplyResponse) -> Vec<&str> {
    r.changes.iter().map(|c| c.description.as_str()).collect()
}

fn ipvsadm_ok(args: &[&str]) -> Result<()> {
    let out = ipvsadm(args)?;
    ensure!(
        out.status.success(),
        "ipvsadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A table using most of what IPVS offers, as ipvsadm commands...
const RICH: &[&[&str]] = &[
    &["-A", "-t", "10.10.0.1:80", "-s", "rr"],
    &[
        "-a",
        "-t",
        "10.10.0.1:80",
        "-r",
        "10.10.1.1:8080",
        "-m",
        "-w",
        "1",
    ],
    &[
        "-a",
        "-t",
        "10.10.0.1:80",
        "-r",
        "10.10.1.2:8080",
        "-m",
        "-w",
        "3",
    ],
    &[
        "-A",
        "-t",
        "10.10.0.2:443",
        "-s",
        "wlc",
        "-p",
        "600",
        "-M",
        "255.255.255.0",
    ],
    &[
        "-a",
        "-t",
        "10.10.0.2:443",
        "-r",
        "10.10.1.3:443",
        "-g",
        "-w",
        "2",
    ],
    &[
        "-A",
        "-u",
        "10.10.0.3:53",
        "-s",
        "sh",
        "-o",
        "-b",
        "sh-fallback,sh-port",
    ],
    &[
        "-a",
        "-u",
        "10.10.0.3:53",
        "-r",
        "10.10.1.4:53",
        "-m",
        "-x",
        "100",
        "-y",
        "10",
    ],
    &[
        "-A",
        "-u",
        "10.10.0.4:5060",
        "-s",
        "rr",
        "-p",
        "60",
        "--pe",
        "sip",
    ],
    &["-A", "-f", "7", "-s", "mh", "-b", "mh-port"],
    &["-a", "-f", "7", "-r", "10.10.1.5:0", "-g", "-w", "1"],
    &["-A", "-t", "[2001:db8::1]:80", "-s", "wrr"],
    &[
        "-a",
        "-t",
        "[2001:db8::1]:80",
        "-r",
        "[2001:db8::2]:8080",
        "-m",
        "-w",
        "5",
    ],
    &["-A", "--sctp-service", "10.10.0.9:9999", "-s", "lc"],
    &["-A", "-t", "10.10.0.8:80", "-s", "rr"],
    &[
        "-a",
        "-t",
        "10.10.0.8:80",
        "-r",
        "10.10.1.11:80",
        "-i",
        "-w",
        "1",
        "--tun-type",
        "gue",
        "--tun-port",
        "6080",
        "--tun-csum",
    ],
    &[
        "-a",
        "-t",
        "10.10.0.8:80",
        "-r",
        "[2001:db8::9]:80",
        "-i",
        "-w",
        "1",
    ],
];

/// ...and as a declared table.
fn rich() -> Vec<Service> {
    use ForwardingMethod::{DirectRoute, Masquerade, Tunnel as Tun};
    let mut thresholds = dest("10.10.1.4:53", Masquerade, 1);
    thresholds.upper_threshold = 100;
    thresholds.lower_threshold = 10;
    let mut gue = dest("10.10.1.11:80", Tun, 1);
    gue.tunnel = Some(Tunnel {
        r#type: TunnelType::Gue.into(),
        port: 6080,
        checksum: TunnelChecksum::Csum.into(),
    });
    vec![
        service(
            endpoint(Protocol::Tcp, "10.10.0.1:80"),
            Scheduler::Rr,
            vec![
                dest("10.10.1.2:8080", Masquerade, 3),
                dest("10.10.1.1:8080", Masquerade, 1),
            ],
        ),
        with_options(
            service(
                endpoint(Protocol::Tcp, "10.10.0.2:443"),
                Scheduler::Wlc,
                vec![dest("10.10.1.3:443", DirectRoute, 2)],
            ),
            ServiceOptions {
                persistence_timeout: seconds(600),
                ipv4_netmask: "255.255.255.0".into(),
                ..Default::default()
            },
        ),
        with_options(
            service(
                endpoint(Protocol::Udp, "10.10.0.3:53"),
                Scheduler::Sh,
                vec![thresholds],
            ),
            ServiceOptions {
                one_packet: true,
                sched_flag_1: true,
                sched_flag_2: true,
                ..Default::default()
            },
        ),
        with_options(
            service(
                endpoint(Protocol::Udp, "10.10.0.4:5060"),
                Scheduler::Rr,
                vec![],
            ),
            ServiceOptions {
                persistence_timeout: seconds(60),
                persistence_engine: "sip".into(),
                ..Default::default()
            },
        ),
        with_options(
            service(
                Some(ServiceKey {
                    fwmark: 7,
                    family: AddressFamily::Inet.into(),
                    ..Default::default()
                }),
                Scheduler::Mh,
                vec![dest("10.10.1.5:0", DirectRoute, 1)],
            ),
            ServiceOptions {
                sched_flag_2: true,
                ..Default::default()
            },
        ),
        service(
            endpoint(Protocol::Tcp, "[2001:db8::1]:80"),
            Scheduler::Wrr,
            vec![dest("[2001:db8::2]:8080", Masquerade, 5)],
        ),
        service(
            endpoint(Protocol::Sctp, "10.10.0.9:9999"),
            Scheduler::Lc,
            vec![],
        ),
        service(
            endpoint(Protocol::Tcp, "10.10.0.8:80"),
            Scheduler::Rr,
            vec![gue, dest("[2001:db8::9]:80", Tun, 1)],
        ),
    ]
}

/// Every view of the table that could tell two tables apart.
fn views() -> Result<Vec<String>> {
    Ok(vec![
        table_snapshot()?,
        run_ok("ipvsadm", &["-Ln", "--thresholds"])?,
        run_ok("ipvsadm", &["-Ln", "--tun-info"])?,
    ])
}

#[tokio::test]
async fn apply_builds_what_ipvsadm_builds_and_then_has_nothing_to_do() -> Result<()> {
    // The reference: ipvsadm's own table. Applying the same declaration to it changes nothing.
    let reference = {
        let _ns = Netns::new()?;
        for cmd in RICH {
            ipvsadm_ok(cmd)?;
        }
        let agent = Agent::start()?;
        let on_ipvsadm_table = apply(&agent.channel().await?, request(rich(), true, false))
            .await
            .with_context(|| agent.log())?;
        assert_eq!(words(&on_ipvsadm_table), Vec::<&str>::new());
        views()?
    };
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let first = apply(&channel, request(rich(), true, false))
        .await
        .with_context(|| agent.log())?;
    assert!(first.applied);
    assert_eq!(first.changes.len(), 16, "{:#?}", words(&first));
    assert_eq!(views()?, reference);
    let second = apply(&channel, request(rich(), true, false)).await?;
    assert!(second.applied);
    assert_eq!(words(&second), Vec::<&str>::new());
    Ok(())
}

/// The VIPs of the traffic tests, on a dummy link, with the seed's two backends.
fn vips() -> Result<()> {
    run_ok("ip", &["link", "add", "dummy1", "type", "dummy"])?;
    run_ok("ip", &["addr", "add", "192.168.100.1/32", "dev", "dummy1"])?;
    run_ok("ip", &["addr", "add", "192.168.100.2/32", "dev", "dummy1"])?;
    run_ok("ip", &["link", "set", "dummy1", "up"])?;
    Ok(())
}

fn backends() -> Result<(Backend, Backend)> {
    Ok((
        Backend::start("127.0.0.1:8081".parse()?, "backend 1\n")?,
        Backend::start("127.0.0.1:8082".parse()?, "backend 2\n")?,
    ))
}

fn traffic_table(a_scheduler: Scheduler, weight_2: u32) -> Vec<Service> {
    use ForwardingMethod::Masquerade;
    let two = |vip: &str, sched, w2| {
        service(
            endpoint(Protocol::Tcp, vip),
            sched,
            vec![
                dest("127.0.0.1:8081", Masquerade, 1),
                dest("127.0.0.1:8082", Masquerade, w2),
            ],
        )
    };
    vec![
        two("192.168.100.1:80", a_scheduler, weight_2),
        two("192.168.100.2:80", Scheduler::Rr, 1),
    ]
}

/// Connections scheduled per virtual address, as the agent reports them, sorted.
async fn conns(channel: &Channel) -> Result<Vec<(String, u64)>> {
    let services = IpvsServiceClient::new(channel.clone())
        .list_services(ListServicesRequest {})
        .await?
        .into_inner()
        .services;
    let mut out: Vec<(String, u64)> = services
        .into_iter()
        .map(|s| {
            let c = s
                .stats
                .and_then(|st| st.counters)
                .map_or(0, |c| c.connections);
            (format!("{:?}", s.key), c)
        })
        .collect();
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn updates_in_place_keep_connections_and_counters() -> Result<()> {
    let _ns = Netns::new()?;
    vips()?;
    let _backends = backends()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    apply(
        &channel,
        request(traffic_table(Scheduler::Rr, 1), false, false),
    )
    .await?;
    for vip in ["192.168.100.1:80", "192.168.100.2:80"] {
        for _ in 0..4 {
            let body = http_get(vip.parse()?)?;
            ensure!(body.starts_with("backend"), "{vip}: {body:?}");
        }
    }
    let mut counted = vec![
        (
            format!("{:?}", endpoint(Protocol::Tcp, "192.168.100.1:80")),
            4,
        ),
        (
            format!("{:?}", endpoint(Protocol::Tcp, "192.168.100.2:80")),
            4,
        ),
    ];
    counted.sort();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while conns(&channel).await? != counted {
        ensure!(
            std::time::Instant::now() < deadline,
            "counters: {:?}",
            conns(&channel).await?
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let before = read_conn_table()?;

    // The connection table, through the agent, as the kernel has it.
    let listed = ConfigServiceClient::new(channel.clone())
        .list_connections(ListConnectionsRequest {})
        .await?
        .into_inner()
        .connections;
    println!("ip_vs_conn:\n{before}");
    let rows = before.lines().skip(1).count();
    ensure!(rows >= 8, "8 connections expected:\n{before}");
    assert_eq!(listed.len(), rows, "{listed:#?}");
    for c in &listed {
        assert_eq!(c.protocol, "TCP");
        assert!(
            ["192.168.100.1", "192.168.100.2"].contains(&c.virtual_address.as_str()),
            "{c:?}"
        );
        assert_eq!(c.virtual_port, 80);
        assert_eq!(c.destination_address, "127.0.0.1");
        assert!([8081, 8082].contains(&c.destination_port), "{c:?}");
        assert!(whole_seconds(c.expires.as_ref()) > 0, "{c:?}");
    }

    // A new scheduler and weight for the first service, nothing for the second: both updated
    // in place, so every connection entry and counter is still there.
    let changed = apply(
        &channel,
        request(traffic_table(Scheduler::Wrr, 2), false, false),
    )
    .await
    .with_context(|| agent.log())?;
    assert_eq!(
        words(&changed),
        vec![
            "-E -t 192.168.100.1:80 -s wrr",
            "-e -t 192.168.100.1:80 -r 127.0.0.1:8082 -m -w 2",
        ]
    );
    assert_eq!(
        changed.changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
        vec![
            i32::from(ChangeKind::UpdateService),
            i32::from(ChangeKind::UpdateDestination)
        ]
    );
    assert_eq!(conns(&channel).await?, counted);
    let after = read_conn_table()?;
    assert_eq!(
        after.lines().skip(1).count(),
        rows,
        "connection entries lost:\nbefore:\n{before}\nafter:\n{after}"
    );
    let listing = run_ok("ipvsadm", &["-Ln"])?;
    assert!(listing.contains("TCP  192.168.100.1:80 wrr"), "{listing}");
    Ok(())
}

/// The calling thread's network namespace's connection table.
fn read_conn_table() -> Result<String> {
    std::fs::read_to_string("/proc/thread-self/net/ip_vs_conn").context("read ip_vs_conn")
}

/// A base table built with ipvsadm.
fn base() -> Result<()> {
    for cmd in [
        &["-A", "-t", "10.20.0.1:80", "-s", "rr"][..],
        &[
            "-a",
            "-t",
            "10.20.0.1:80",
            "-r",
            "10.20.1.1:80",
            "-m",
            "-w",
            "1",
        ],
        &[
            "-a",
            "-t",
            "10.20.0.1:80",
            "-r",
            "10.20.1.2:80",
            "-m",
            "-w",
            "1",
        ],
        &["-A", "-t", "10.20.0.5:80", "-s", "wlc"],
    ] {
        ipvsadm_ok(cmd)?;
    }
    Ok(())
}

fn base_service(scheduler: Scheduler, dests: &[&str]) -> Service {
    service(
        endpoint(Protocol::Tcp, "10.20.0.1:80"),
        scheduler,
        dests
            .iter()
            .map(|d| dest(d, ForwardingMethod::Masquerade, 1))
            .collect(),
    )
}

#[tokio::test]
async fn dry_run_and_prune() -> Result<()> {
    let _ns = Netns::new()?;
    base()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let before = table_snapshot()?;
    let desired = vec![base_service(
        Scheduler::Rr,
        &["10.20.1.2:80", "10.20.1.3:80"],
    )];

    let dry = apply(&channel, request(desired.clone(), true, true)).await?;
    assert!(!dry.applied);
    assert_eq!(
        words(&dry),
        vec![
            "-a -t 10.20.0.1:80 -r 10.20.1.3:80 -m -w 1",
            "-d -t 10.20.0.1:80 -r 10.20.1.1:80",
            "-D -t 10.20.0.5:80",
        ]
    );
    assert_eq!(table_snapshot()?, before, "a dry run changed the table");

    // Without prune the unlisted service stays, but the listed one loses its unlisted server.
    let kept = apply(&channel, request(desired.clone(), false, false)).await?;
    assert_eq!(
        words(&kept),
        vec![
            "-a -t 10.20.0.1:80 -r 10.20.1.3:80 -m -w 1",
            "-d -t 10.20.0.1:80 -r 10.20.1.1:80",
        ]
    );
    let pruned = apply(&channel, request(desired, true, false)).await?;
    assert_eq!(words(&pruned), vec!["-D -t 10.20.0.5:80"]);
    assert_eq!(
        table_snapshot()?,
        "-A -t 10.20.0.1:80 -s rr\n\
         -a -t 10.20.0.1:80 -r 10.20.1.2:80 -m -w 1\n\
         -a -t 10.20.0.1:80 -r 10.20.1.3:80 -m -w 1\n"
    );
    // An empty declaration with prune empties the table.
    let emptied = apply(&channel, request(vec![], true, false)).await?;
    assert_eq!(words(&emptied), vec!["-D -t 10.20.0.1:80"]);
    assert_eq!(table_snapshot()?, "");
    Ok(())
}

fn command(line: u32, c: table_command::Command) -> TableCommand {
    TableCommand {
        line,
        command: Some(c),
    }
}

fn on_top(commands: Vec<TableCommand>, dry_run: bool) -> ApplyRequest {
    ApplyRequest {
        commands,
        dry_run,
        ..Default::default()
    }
}

fn dest_command(service: &str, d: Destination) -> DestinationCommand {
    DestinationCommand {
        service: endpoint(Protocol::Tcp, service),
        destination: Some(d),
    }
}

/// ipvsadm's lines on top of the live table: only what they change is written, and a line the
/// table refuses, even because of a change made behind the agent's back, fails the whole call
/// with a precise code and changes nothing.
#[tokio::test]
async fn commands_run_on_top_of_the_live_table() -> Result<()> {
    use table_command::Command as C;
    let _ns = Netns::new()?;
    base()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let lines = vec![
        command(
            1,
            C::AddService(service(
                endpoint(Protocol::Tcp, "10.20.0.6:80"),
                Scheduler::Wrr,
                vec![],
            )),
        ),
        command(
            2,
            C::AddDestination(dest_command(
                "10.20.0.6:80",
                dest("10.20.1.6:80", ForwardingMethod::Masquerade, 2),
            )),
        ),
        command(
            3,
            C::EditDestination(dest_command(
                "10.20.0.1:80",
                dest("10.20.1.1:80", ForwardingMethod::Masquerade, 4),
            )),
        ),
    ];
    let done = apply(&channel, on_top(lines, false)).await?;
    assert_eq!(
        (words(&done), done.commands_run),
        (
            vec![
                "-e -t 10.20.0.1:80 -r 10.20.1.1:80 -m -w 4",
                "-A -t 10.20.0.6:80 -s wrr",
                "-a -t 10.20.0.6:80 -r 10.20.1.6:80 -m -w 2",
            ],
            3
        )
    );
    assert_eq!(
        table_snapshot()?,
        "-A -t 10.20.0.1:80 -s rr\n\
         -a -t 10.20.0.1:80 -r 10.20.1.1:80 -m -w 4\n\
         -a -t 10.20.0.1:80 -r 10.20.1.2:80 -m -w 1\n\
         -A -t 10.20.0.5:80 -s wlc\n\
         -A -t 10.20.0.6:80 -s wrr\n\
         -a -t 10.20.0.6:80 -r 10.20.1.6:80 -m -w 2\n"
    );

    // Another tool adds a service; lines that would add it again are refused.
    ipvsadm_ok(&["-A", "-t", "10.20.0.7:80", "-s", "sh"])?;
    let before = table_snapshot()?;
    let key = |at| endpoint(Protocol::Tcp, at).context("key");
    let cases: Vec<(Vec<TableCommand>, Code, &str)> = vec![
        (
            vec![
                command(1, C::DeleteService(key("10.20.0.5:80")?)),
                command(
                    2,
                    C::AddService(service(
                        endpoint(Protocol::Tcp, "10.20.0.7:80"),
                        Scheduler::Rr,
                        vec![],
                    )),
                ),
            ],
            Code::AlreadyExists,
            "commands[1] (line 2): \"-A -t 10.20.0.7:80 -s rr\": Service already exists",
        ),
        (
            vec![command(
                4,
                C::DeleteDestination(dest_command(
                    "10.20.0.1:80",
                    dest("10.20.1.9:80", ForwardingMethod::Masquerade, 1),
                )),
            )],
            Code::NotFound,
            "commands[0] (line 4): \"-d -t 10.20.0.1:80 -r 10.20.1.9:80\": No such destination",
        ),
        (
            vec![command(
                5,
                C::AddDestination(dest_command(
                    "10.20.0.9:80",
                    dest("10.20.1.1:80", ForwardingMethod::Masquerade, 1),
                )),
            )],
            Code::FailedPrecondition,
            "commands[0] (line 5): \"-a -t 10.20.0.9:80 -r 10.20.1.1:80 -m -w 1\": Service not \
             defined",
        ),
    ];
    for (lines, code, message) in cases {
        let err = apply(&channel, on_top(lines, false))
            .await
            .expect_err(message);
        assert_eq!((err.code(), err.message()), (code, message));
        assert_eq!(table_snapshot()?, before, "{message}");
    }

    // The same lines replacing the table: everything else would go.
    let replace = ApplyRequest {
        mode: ApplyMode::Replace.into(),
        ..on_top(
            vec![command(
                1,
                C::AddService(service(
                    endpoint(Protocol::Tcp, "10.20.0.7:80"),
                    Scheduler::Sh,
                    vec![],
                )),
            )],
            true,
        )
    };
    let plan = apply(&channel, replace).await?;
    assert_eq!(
        words(&plan),
        vec![
            "-D -t 10.20.0.1:80",
            "-D -t 10.20.0.5:80",
            "-D -t 10.20.0.6:80"
        ]
    );
    assert_eq!(table_snapshot()?, before, "a dry run changed the table");
    Ok(())
}

#[tokio::test]
async fn invalid_input_changes_nothing() -> Result<()> {
    let _ns = Netns::new()?;
    base()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let before = table_snapshot()?;
    let mut one_packet_tcp = base_service(Scheduler::Rr, &[]);
    one_packet_tcp.options = Some(ServiceOptions {
        one_packet: true,
        ..Default::default()
    });
    let mut unknown_scheduler = base_service(Scheduler::Rr, &[]);
    unknown_scheduler.scheduler = 99;
    let mut bad_vip = base_service(Scheduler::Rr, &[]);
    if let Some(k) = bad_vip.key.as_mut() {
        k.address = "10.20.0".into();
    }
    let mut bad_real_server = base_service(Scheduler::Rr, &["10.20.1.1:80"]);
    bad_real_server.destinations[0].address = "10.20.1.one".into();
    // The message, and the request field a google.rpc.BadRequest names for a field that is
    // wrong in itself (none for a table that breaks a rule).
    let cases: Vec<(Vec<Service>, &str, Option<&str>)> = vec![
        (
            vec![
                base_service(Scheduler::Wrr, &["10.20.1.9:80"]),
                base_service(Scheduler::Rr, &[]),
            ],
            "service TCP 10.20.0.1:80 is listed more than once",
            None,
        ),
        (
            vec![
                base_service(Scheduler::Wrr, &["10.20.1.9:80"]),
                service(
                    endpoint(Protocol::Tcp, "10.20.0.7:0"),
                    Scheduler::Rr,
                    vec![],
                ),
            ],
            "service TCP 10.20.0.7:0: a service with port 0 must be persistent",
            None,
        ),
        (
            vec![base_service(
                Scheduler::Wrr,
                &["10.20.1.9:80", "10.20.1.9:80"],
            )],
            "real server 10.20.1.9:80 of service TCP 10.20.0.1:80 is listed more than once",
            None,
        ),
        (
            vec![one_packet_tcp],
            "service TCP 10.20.0.1:80: one-packet scheduling is only for UDP and fwmark services",
            None,
        ),
        (
            vec![base_service(Scheduler::Wrr, &[]), unknown_scheduler],
            "invalid services[1].scheduler: 99 is not a known value",
            Some("services[1].scheduler"),
        ),
        (
            vec![bad_vip],
            "invalid services[0].key.address: \"10.20.0\" is not an IP address",
            Some("services[0].key.address"),
        ),
        (
            vec![bad_real_server],
            "invalid services[0].destinations[0].address: \"10.20.1.one\" is not an IP address",
            Some("services[0].destinations[0].address"),
        ),
    ];
    for (services, message, field) in cases {
        match apply(&channel, request(services, true, false)).await {
            Ok(r) => bail!("{message}: applied {:?}", words(&r)),
            Err(s) => {
                assert_eq!((s.code(), s.message()), (Code::InvalidArgument, message));
                let named: Vec<String> =
                    field_violations(&s).into_iter().map(|v| v.field).collect();
                assert_eq!(named, Vec::from_iter(field.map(String::from)), "{message}");
            }
        }
        assert_eq!(table_snapshot()?, before, "{message}");
    }
    Ok(())
}

/// Fields left at their zero values mean the kernel's and ipvsadm's defaults: no scheduler is
/// wlc, no forwarding method is direct routing, no weight is 1, no options are none. A
/// declaration that leaves them out matches a table built with them spelled out.
#[tokio::test]
async fn zero_values_are_the_defaults() -> Result<()> {
    let _ns = Netns::new()?;
    base()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    // base() made 10.20.0.5:80 with `-s wlc`.
    let desired = || {
        vec![Service {
            key: endpoint(Protocol::Tcp, "10.20.0.5:80"),
            destinations: vec![Destination {
                address: "10.20.1.5".into(),
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        }]
    };
    let first = apply(&channel, request(desired(), false, false))
        .await
        .with_context(|| agent.log())?;
    assert_eq!(
        words(&first),
        vec!["-a -t 10.20.0.5:80 -r 10.20.1.5:80 -g -w 1"]
    );
    let listing = run_ok("ipvsadm", &["-Ln", "-t", "10.20.0.5:80"])?;
    assert!(listing.contains("TCP  10.20.0.5:80 wlc"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["->", "10.20.1.5:80", "Route", "1", "0", "0"]),
        "{listing}"
    );
    let second = apply(&channel, request(desired(), false, false)).await?;
    assert_eq!(words(&second), Vec::<&str>::new());
    // Replies spell the defaults out.
    let listed = IpvsServiceClient::new(channel.clone())
        .list_services(ListServicesRequest {})
        .await?
        .into_inner()
        .services;
    let svc = listed
        .iter()
        .find(|s| s.key == endpoint(Protocol::Tcp, "10.20.0.5:80"))
        .with_context(|| format!("{listed:#?}"))?;
    assert_eq!(svc.scheduler(), Scheduler::Wlc, "{svc:?}");
    let [d] = svc.destinations.as_slice() else {
        bail!("one real server expected: {svc:?}");
    };
    assert_eq!(
        (d.forwarding(), d.weight, d.address.as_str()),
        (ForwardingMethod::DirectRoute, Some(1), "10.20.1.5"),
        "{d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_kernel_refusal_half_way_is_undone() -> Result<()> {
    let _ns = Netns::new()?;
    base()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let before = table_snapshot()?;
    // Debian's 6.1 kernel has no ip_vs_twos: the third change fails, after two that worked
    // and before two more that the pipelined batch also makes.
    let desired = vec![
        base_service(
            Scheduler::Wrr,
            &["10.20.1.1:80", "10.20.1.2:80", "10.20.1.3:80"],
        ),
        service(
            endpoint(Protocol::Tcp, "10.20.0.2:80"),
            Scheduler::Twos,
            vec![],
        ),
        service(
            endpoint(Protocol::Tcp, "10.20.0.3:80"),
            Scheduler::Rr,
            vec![dest("10.20.1.4:80", ForwardingMethod::Masquerade, 1)],
        ),
    ];
    let err = apply(&channel, request(desired, false, false))
        .await
        .expect_err("the kernel has no twos");
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::Aborted,
            "change 3 of 5 failed: \"-A -t 10.20.0.2:80 -s twos\": Scheduler not found: twos; \
             the 4 changes made were undone: the table is as it was"
        ),
        "{}",
        agent.log()
    );
    assert_eq!(table_snapshot()?, before);
    assert!(
        agent.log().contains("cannot load the scheduler's module"),
        "modprobe ip_vs_twos was not tried: {}",
        agent.log()
    );
    Ok(())
}

#[tokio::test]
async fn a_scheduler_module_is_loaded_on_demand() -> Result<()> {
    // No other test here uses ovf, and the test binaries run one after another; a network
    // namespace an earlier one left may still hold it for a moment while the kernel cleans up.
    wait_for(Duration::from_secs(15), || {
        let out = run("rmmod", &["ip_vs_ovf"])?;
        Ok(out.status.success().then_some(()))
    })
    .context("rmmod ip_vs_ovf")?;
    ensure!(!std::path::Path::new("/sys/module/ip_vs_ovf").exists());
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let r = apply(
        &channel,
        request(
            vec![service(
                endpoint(Protocol::Tcp, "10.30.0.1:80"),
                Scheduler::Ovf,
                vec![],
            )],
            false,
            false,
        ),
    )
    .await
    .with_context(|| agent.log())?;
    assert_eq!(words(&r), vec!["-A -t 10.30.0.1:80 -s ovf"]);
    assert_eq!(table_snapshot()?, "-A -t 10.30.0.1:80 -s ovf\n");
    assert!(std::path::Path::new("/sys/module/ip_vs_ovf").exists());
    Ok(())
}

#[tokio::test]
async fn timeouts_set_and_get() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let mut config = ConfigServiceClient::new(agent.channel().await?);
    let shown = |t: &Timeouts| {
        format!(
            "Timeout (tcp tcpfin udp): {} {} {}\n",
            whole_seconds(t.tcp.as_ref()),
            whole_seconds(t.tcp_fin.as_ref()),
            whole_seconds(t.udp.as_ref())
        )
    };
    let got = config
        .get_timeouts(GetTimeoutsRequest {})
        .await?
        .into_inner()
        .timeouts
        .context("no timeouts")?;
    assert_eq!(run_ok("ipvsadm", &["-L", "--timeout"])?, shown(&got));
    let set = config
        .set_timeouts(SetTimeoutsRequest {
            // An unset one is left as it is.
            timeouts: Some(Timeouts {
                tcp: seconds(1800),
                tcp_fin: None,
                udp: seconds(45),
            }),
        })
        .await?
        .into_inner()
        .timeouts
        .context("no timeouts")?;
    assert_eq!(
        set,
        Timeouts {
            tcp: seconds(1800),
            tcp_fin: got.tcp_fin,
            udp: seconds(45)
        }
    );
    assert_eq!(run_ok("ipvsadm", &["-L", "--timeout"])?, shown(&set));
    Ok(())
}

#[tokio::test]
async fn sync_daemon_start_list_stop() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let mut config = ConfigServiceClient::new(agent.channel().await?);
    let master = Daemon {
        role: DaemonRole::Master.into(),
        interface: "lo".into(),
        sync_id: 5,
        ..Default::default()
    };
    config
        .start_daemon(StartDaemonRequest {
            daemon: Some(master.clone()),
        })
        .await
        .with_context(|| agent.log())?;
    let shown = run_ok("ipvsadm", &["-L", "--daemon"])?;
    assert!(
        shown.starts_with("master sync daemon (mcast=lo, syncid=5"),
        "{shown}"
    );
    let listed = config
        .list_daemons(ListDaemonsRequest {})
        .await?
        .into_inner()
        .daemons;
    let [d] = listed.as_slice() else {
        bail!("one daemon expected: {listed:?}");
    };
    assert_eq!(
        (d.role, d.interface.as_str(), d.sync_id),
        (master.role, "lo", 5)
    );
    let again = config
        .start_daemon(StartDaemonRequest {
            daemon: Some(master),
        })
        .await
        .expect_err("already running");
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    config
        .stop_daemon(StopDaemonRequest {
            role: DaemonRole::Master.into(),
        })
        .await?;
    assert_eq!(run_ok("ipvsadm", &["-L", "--daemon"])?, "");
    let gone = config
        .stop_daemon(StopDaemonRequest {
            role: DaemonRole::Master.into(),
        })
        .await
        .expect_err("not running");
    assert_eq!(
        (gone.code(), gone.message()),
        (Code::NotFound, "no sync daemon running")
    );
    Ok(())
}
