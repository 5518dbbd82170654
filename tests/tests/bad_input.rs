//! Bad input: every mistake gets a clear error and a precise gRPC status, and the kernel's
//! table is exactly what it was before.

use anyhow::{Context, Result};
use ipvs_e2e::api::raw_unary;
use ipvs_e2e::{Agent, Netns, ipvsadm, stderr, table_snapshot};
use ipvs_proto::details::field_violations;
use ipvs_proto::v1::{
    AddAddressRequest, AddDestinationRequest, AddressFamily, CreateDummyRequest,
    CreateServiceRequest, DeleteDestinationRequest, DeleteServiceRequest, Destination,
    ForwardingMethod, GetServiceRequest, ListServicesRequest, Protocol, Scheduler, Service,
    ServiceKey, UpdateServiceRequest, ipvs_service_client::IpvsServiceClient,
    link_service_client::LinkServiceClient,
};
use tonic::Code;

const BASE: &[&[&str]] = &[
    &["-A", "-t", "10.1.0.1:80", "-s", "rr"],
    &["-a", "-t", "10.1.0.1:80", "-r", "10.2.0.1:8080", "-m"],
];

/// Mistakes on ipvsadm's command line: ipvsctl must answer in ipvsadm's words and exit code,
/// and leave the table unchanged.
const BAD_COMMANDS: &[&[&str]] = &[
    &["-A", "-t", "10.1.0.300:80", "-s", "rr"],
    &["-A", "-t", "10.1.0.2:80", "-s", "bogus"],
    &["-A", "-t", "10.1.0.2:0", "-s", "rr"],
    &["-A", "-t", "10.1.0.2:65536", "-s", "rr"],
    &["-a", "-t", "10.1.0.1:80", "-r", "10.2.0.2:70000", "-m"],
    &["-A", "-t", "10.1.0.1:80", "-s", "rr"],
    &["-a", "-t", "10.1.0.1:80", "-r", "10.2.0.1:8080", "-m"],
    &["-D", "-t", "10.9.9.9:80"],
    &["-a", "-t", "10.9.9.9:80", "-r", "10.2.0.1:8080", "-m"],
    &["-d", "-t", "10.1.0.1:80", "-r", "10.2.0.7:8080"],
    &["-E", "-t", "10.9.9.9:80", "-s", "rr"],
    &["-e", "-t", "10.1.0.1:80", "-r", "10.2.0.7:8080", "-m"],
    &["-L", "-n", "-t", "10.9.9.9:80"],
];

#[test]
fn command_line_mistakes_match_ipvsadm_and_change_nothing() -> Result<()> {
    let mut failures = Vec::new();
    for cmd in BAD_COMMANDS {
        let (theirs, theirs_table) = {
            let _ns = Netns::new()?;
            for c in BASE {
                ipvsadm(c)?;
            }
            let before = table_snapshot()?;
            let out = ipvsadm(cmd)?;
            assert_eq!(
                table_snapshot()?,
                before,
                "ipvsadm {cmd:?} changed the table"
            );
            (out, before)
        };
        let _ns = Netns::new()?;
        let agent = Agent::start()?;
        for c in BASE {
            agent.ipvsctl_ok(c)?;
        }
        let before = table_snapshot()?;
        assert_eq!(before, theirs_table);
        let ours = agent.ipvsctl(cmd)?;
        assert_eq!(
            table_snapshot()?,
            before,
            "ipvsctl {cmd:?} changed the table"
        );
        assert!(!ours.status.success(), "ipvsctl {cmd:?} succeeded");
        let ours_err = stderr(&ours).replace("ipvsctl", "ipvsadm");
        if ours_err != stderr(&theirs) || ours.status.code() != theirs.status.code() {
            failures.push(format!(
                "{cmd:?}:\n  ipvsadm ({:?}): {:?}\n  ipvsctl ({:?}): {:?}",
                theirs.status.code(),
                stderr(&theirs),
                ours.status.code(),
                stderr(&ours)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Debian patches ipvsadm to take weights up to 2^31-1; ipvsctl keeps upstream's (and the
/// API's) 0..65535 and refuses more with upstream's words.
#[test]
fn weight_above_65535_is_refused() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    for c in BASE {
        agent.ipvsctl_ok(c)?;
    }
    let before = table_snapshot()?;
    let out = agent.ipvsctl(&[
        "-a",
        "-t",
        "10.1.0.1:80",
        "-r",
        "10.2.0.2:8080",
        "-m",
        "-w",
        "65536",
    ])?;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("illegal weight specified"),
        "{}",
        stderr(&out)
    );
    assert_eq!(table_snapshot()?, before);
    Ok(())
}

fn tcp_key(addr: &str, port: u32) -> Option<ServiceKey> {
    Some(ServiceKey {
        protocol: Protocol::Tcp.into(),
        address: addr.into(),
        port,
        ..Default::default()
    })
}

fn service(key: Option<ServiceKey>, scheduler: i32) -> CreateServiceRequest {
    CreateServiceRequest {
        service: Some(Service {
            key,
            scheduler,
            ..Default::default()
        }),
    }
}

fn masq(addr: &str, port: u32, weight: Option<u32>) -> Option<Destination> {
    Some(Destination {
        address: addr.into(),
        port,
        forwarding: ForwardingMethod::Masquerade.into(),
        weight,
        ..Default::default()
    })
}

/// Asserts the status code and that the message mentions `needle`.
fn expect<T: std::fmt::Debug>(
    what: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    needle: &str,
) {
    match r {
        Ok(v) => panic!("{what}: expected {code:?}, got success {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            assert!(
                s.message().to_lowercase().contains(&needle.to_lowercase()),
                "{what}: message {:?} does not mention {needle:?}",
                s.message()
            );
        }
    }
}

/// Asserts INVALID_ARGUMENT with exactly `message`, and that its google.rpc.BadRequest names
/// `field` (the request field at fault) and nothing else.
fn expect_field<T: std::fmt::Debug>(
    what: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
    message: &str,
    field: &str,
) {
    match r {
        Ok(v) => panic!("{what}: expected INVALID_ARGUMENT, got success {v:?}"),
        Err(s) => {
            assert_eq!(
                (s.code(), s.message()),
                (Code::InvalidArgument, message),
                "{what}"
            );
            let named: Vec<String> = field_violations(&s).into_iter().map(|v| v.field).collect();
            assert_eq!(named, [field], "{what}: field violations of {s:?}");
        }
    }
}

#[tokio::test]
async fn grpc_statuses_are_precise_and_nothing_changes() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    for c in BASE {
        agent.ipvsctl_ok(c)?;
    }
    let channel = agent.channel().await?;
    let mut ipvs = IpvsServiceClient::new(channel.clone());
    let mut links = LinkServiceClient::new(channel);
    let before = table_snapshot()?;
    let rr = Scheduler::Rr as i32;
    let key = tcp_key("10.1.0.1", 80);

    expect_field(
        "unparsable virtual address",
        ipvs.create_service(service(tcp_key("10.1.0", 80), rr))
            .await,
        r#"invalid service.key.address: "10.1.0" is not an IP address"#,
        "service.key.address",
    );
    expect_field(
        "IPv4 octet above 255",
        ipvs.create_service(service(tcp_key("10.1.0.300", 80), rr))
            .await,
        r#"invalid service.key.address: "10.1.0.300" is not an IP address"#,
        "service.key.address",
    );
    expect_field(
        "unknown scheduler",
        ipvs.create_service(service(tcp_key("10.1.0.2", 80), 99))
            .await,
        "invalid service.scheduler: 99 is not a known value",
        "service.scheduler",
    );
    // Debian's 6.1 kernel does not build ip_vs_twos: the kernel refuses, naming it.
    let twos = ipvs
        .create_service(service(tcp_key("10.1.0.2", 80), Scheduler::Twos as i32))
        .await;
    if let Err(s) = &twos {
        assert!(s.message().contains("twos"), "{s:?}");
        assert!(
            matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition),
            "{s:?}"
        );
    } else {
        // A kernel that has it: undo, so the table check below still holds.
        ipvs.delete_service(DeleteServiceRequest {
            key: tcp_key("10.1.0.2", 80),
        })
        .await?;
    }
    expect_field(
        "port 0",
        ipvs.create_service(service(tcp_key("10.1.0.2", 0), rr))
            .await,
        "a service with port 0 must be persistent",
        "service.key.port",
    );
    expect_field(
        "port > 65535",
        ipvs.create_service(service(tcp_key("10.1.0.2", 65536), rr))
            .await,
        "invalid service.key.port: 65536 is above the maximum 65535",
        "service.key.port",
    );
    expect_field(
        "weight > 65535",
        ipvs.add_destination(AddDestinationRequest {
            service: key.clone(),
            destination: masq("10.2.0.2", 8080, Some(65536)),
        })
        .await,
        "invalid destination.weight: 65536 is above the maximum 65535",
        "destination.weight",
    );
    expect_field(
        "unparsable real server address",
        ipvs.add_destination(AddDestinationRequest {
            service: key.clone(),
            destination: masq("10.2.0.x", 8080, None),
        })
        .await,
        r#"invalid destination.address: "10.2.0.x" is not an IP address"#,
        "destination.address",
    );
    expect_field(
        "real servers in UpdateService",
        ipvs.update_service(UpdateServiceRequest {
            service: Some(Service {
                key: key.clone(),
                scheduler: rr,
                destinations: vec![masq("10.2.0.2", 8080, None).context("masq")?],
                ..Default::default()
            }),
        })
        .await,
        "invalid service.destinations: is read-only here: change real servers with \
         UpdateDestination",
        "service.destinations",
    );
    expect(
        "duplicate service",
        ipvs.create_service(service(key.clone(), rr)).await,
        Code::AlreadyExists,
        "exists",
    );
    expect(
        "duplicate destination",
        ipvs.add_destination(AddDestinationRequest {
            service: key.clone(),
            destination: masq("10.2.0.1", 8080, None),
        })
        .await,
        Code::AlreadyExists,
        "exists",
    );
    expect(
        "missing destination",
        ipvs.delete_destination(DeleteDestinationRequest {
            service: key.clone(),
            destination: masq("10.2.0.7", 8080, None),
        })
        .await,
        Code::NotFound,
        "destination",
    );
    expect(
        "missing service",
        ipvs.delete_service(DeleteServiceRequest {
            key: tcp_key("10.9.9.9", 80),
        })
        .await,
        Code::NotFound,
        "service",
    );
    expect(
        "destination of a missing service",
        ipvs.add_destination(AddDestinationRequest {
            service: tcp_key("10.9.9.9", 80),
            destination: masq("10.2.0.1", 8080, None),
        })
        .await,
        Code::NotFound,
        "service",
    );
    expect_field(
        "link name longer than 15 bytes",
        links
            .create_dummy(CreateDummyRequest {
                name: "averyverylongname".into(),
            })
            .await,
        r#"invalid name: link name "averyverylongname" is longer than 15 bytes"#,
        "name",
    );
    expect(
        "address on a missing link",
        links
            .add_address(AddAddressRequest {
                link: "nosuchlink".into(),
                address: "192.168.100.1".into(),
                prefix_length: 32,
            })
            .await,
        Code::NotFound,
        "nosuchlink",
    );
    expect_field(
        "unparsable link address",
        links
            .add_address(AddAddressRequest {
                link: "lo".into(),
                address: "192.168.100.300".into(),
                prefix_length: 32,
            })
            .await,
        r#"invalid address: "192.168.100.300" is not an IP address"#,
        "address",
    );
    expect_field(
        "prefix longer than the address",
        links
            .add_address(AddAddressRequest {
                link: "lo".into(),
                address: "192.168.100.1".into(),
                prefix_length: 33,
            })
            .await,
        "invalid prefix_length: 33 is above the maximum 32",
        "prefix_length",
    );
    assert_eq!(table_snapshot()?, before, "the table changed");
    let ip = ipvs_e2e::run_ok("ip", &["-o", "link", "show"])?;
    assert!(!ip.contains("averyverylongname"), "{ip}");
    let addrs = ipvs_e2e::run_ok("ip", &["-o", "addr", "show"])?;
    assert!(!addrs.contains("192.168.100."), "{addrs}");
    Ok(())
}

/// A 4 KB value is quoted by its first 48 bytes and its length, not echoed whole: the message
/// stays short enough to read (and to travel in a header).
#[tokio::test]
async fn huge_values_are_quoted_short() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let mut ipvs = IpvsServiceClient::new(channel.clone());
    let mut links = LinkServiceClient::new(channel);
    let huge = "x".repeat(4096);
    let quoted = format!("\"{}\"... (4096 bytes)", "x".repeat(48));
    let cases = [
        (
            "link name",
            links
                .create_dummy(CreateDummyRequest { name: huge.clone() })
                .await
                .map(|_| ()),
            format!("invalid name: link name {quoted} is longer than 15 bytes"),
            "name",
        ),
        (
            "link address",
            links
                .add_address(AddAddressRequest {
                    link: "lo".into(),
                    address: huge.clone(),
                    prefix_length: 0,
                })
                .await
                .map(|_| ()),
            format!("invalid address: {quoted} is not an IP address"),
            "address",
        ),
        (
            "virtual address",
            ipvs.create_service(service(tcp_key(&huge, 80), Scheduler::Rr as i32))
                .await
                .map(|_| ()),
            format!("invalid service.key.address: {quoted} is not an IP address"),
            "service.key.address",
        ),
    ];
    for (what, r, message, field) in cases {
        assert!(message.len() < 128, "{what}: {message}");
        expect_field(what, r.map(tonic::Response::new), &message, field);
    }
    assert_eq!(table_snapshot()?, "");
    Ok(())
}

/// Bytes that are not the request's message are the caller's mistake: INVALID_ARGUMENT naming
/// the message and what did not decode, not INTERNAL.
#[tokio::test]
async fn a_request_that_is_not_protobuf_is_invalid_argument() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let channel = agent.channel().await?;
    let cases: [(&str, Vec<u8>, &str); 2] = [
        // Field 1 (key) as a length-delimited value 5 bytes long, with 1 byte present.
        (
            "/ipvs.agent.v1.IpvsService/GetService",
            vec![0x0a, 0x05, 0x01],
            "not a valid ipvs.agent.v1.GetServiceRequest message: failed to decode Protobuf \
             message: GetServiceRequest.key: buffer underflow",
        ),
        // Field 1 (service, a message) as a varint.
        (
            "/ipvs.agent.v1.IpvsService/CreateService",
            vec![0x08, 0x01],
            "not a valid ipvs.agent.v1.CreateServiceRequest message: failed to decode Protobuf \
             message: CreateServiceRequest.service: invalid wire type: Varint (expected \
             LengthDelimited)",
        ),
    ];
    for (path, body, message) in cases {
        match raw_unary(channel.clone(), path, body).await {
            Ok(reply) => panic!("{path}: expected INVALID_ARGUMENT, got a reply {reply:?}"),
            Err(s) => assert_eq!(
                (s.code(), s.message()),
                (Code::InvalidArgument, message),
                "{path}: {s:?}"
            ),
        }
    }
    // The agent still serves, and nothing was made.
    let listed = IpvsServiceClient::new(channel)
        .list_services(ListServicesRequest {})
        .await?
        .into_inner()
        .services;
    assert_eq!(listed, vec![]);
    assert_eq!(table_snapshot()?, "");
    Ok(())
}

/// Zero values are not mistakes: they are the defaults ipvsadm has. A service given only its
/// key is wlc, a real server given only its address and port is routed directly with weight
/// 1, and replies spell the defaults out (addresses in canonical form).
#[tokio::test]
async fn zero_values_are_the_defaults() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let mut ipvs = IpvsServiceClient::new(agent.channel().await?);
    let bare = |address: &str| {
        Some(ServiceKey {
            address: address.into(),
            port: 80,
            ..Default::default()
        })
    };
    let created = ipvs
        .create_service(CreateServiceRequest {
            service: Some(Service {
                key: bare("10.1.0.3"),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .service
        .context("no service in the reply")?;
    let spelled_out = Some(ServiceKey {
        protocol: Protocol::Tcp.into(),
        address: "10.1.0.3".into(),
        port: 80,
        fwmark: 0,
        family: AddressFamily::Inet.into(),
    });
    assert_eq!(
        (&created.key, created.scheduler()),
        (&spelled_out, Scheduler::Wlc)
    );
    ipvs.add_destination(AddDestinationRequest {
        service: bare("10.1.0.3"),
        destination: Some(Destination {
            address: "10.2.0.3".into(),
            port: 80,
            ..Default::default()
        }),
    })
    .await?;
    let listing = ipvsadm_ln()?;
    assert!(listing.contains("TCP  10.1.0.3:80 wlc"), "{listing}");
    assert!(
        listing.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>()
                == ["->", "10.2.0.3:80", "Route", "1", "0", "0"]
        }),
        "{listing}"
    );
    let read = ipvs
        .get_service(GetServiceRequest {
            key: bare("10.1.0.3"),
        })
        .await?
        .into_inner()
        .service
        .context("no service in the reply")?;
    let [d] = read.destinations.as_slice() else {
        panic!("one real server expected: {read:?}");
    };
    assert_eq!(
        (d.forwarding(), d.weight),
        (ForwardingMethod::DirectRoute, Some(1)),
        "{d:?}"
    );

    let v6 = ipvs
        .create_service(CreateServiceRequest {
            service: Some(Service {
                key: bare("2001:0DB8:0000::0001"),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .service
        .context("no service in the reply")?;
    assert_eq!(
        v6.key,
        Some(ServiceKey {
            protocol: Protocol::Tcp.into(),
            address: "2001:db8::1".into(),
            port: 80,
            fwmark: 0,
            family: AddressFamily::Inet6.into(),
        })
    );
    assert_eq!(
        table_snapshot()?,
        "-A -t 10.1.0.3:80 -s wlc\n\
         -a -t 10.1.0.3:80 -r 10.2.0.3:80 -g -w 1\n\
         -A -t [2001:db8::1]:80 -s wlc\n"
    );
    Ok(())
}

fn ipvsadm_ln() -> Result<String> {
    ipvs_e2e::run_ok("ipvsadm", &["-Ln"])
}

/// CreateService adds the real servers it lists with the service, all or nothing: if the
/// kernel refuses one, the service goes again and the table is as it was.
#[tokio::test]
async fn create_service_with_real_servers_is_all_or_nothing() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let mut ipvs = IpvsServiceClient::new(agent.channel().await?);
    let with = |addr: &str, dests: Vec<Option<Destination>>| CreateServiceRequest {
        service: Some(Service {
            key: tcp_key(addr, 80),
            scheduler: Scheduler::Rr.into(),
            destinations: dests.into_iter().flatten().collect(),
            ..Default::default()
        }),
    };
    let created = ipvs
        .create_service(with(
            "10.1.0.4",
            vec![
                masq("10.2.0.4", 8080, Some(2)),
                masq("10.2.0.5", 8080, Some(3)),
            ],
        ))
        .await
        .with_context(|| agent.log())?
        .into_inner()
        .service
        .context("no service in the reply")?;
    assert_eq!(created.destinations.len(), 2, "{created:?}");
    let table = "-A -t 10.1.0.4:80 -s rr\n\
                 -a -t 10.1.0.4:80 -r 10.2.0.4:8080 -m -w 2\n\
                 -a -t 10.1.0.4:80 -r 10.2.0.5:8080 -m -w 3\n";
    assert_eq!(table_snapshot()?, table);

    // The same real server twice: the kernel refuses the second, and the service goes again.
    let refused = ipvs
        .create_service(with(
            "10.1.0.5",
            vec![masq("10.2.0.6", 8080, None), masq("10.2.0.6", 8080, None)],
        ))
        .await
        .expect_err("a real server listed twice");
    assert_eq!(
        (refused.code(), refused.message()),
        (
            Code::AlreadyExists,
            "real server 2 of 2 (10.2.0.6:8080): Destination already exists; the service was \
             removed again"
        ),
        "{}",
        agent.log()
    );
    let detail = ipvs_proto::details::detail(&refused).context("no detail")?;
    assert_eq!(
        (detail.reason.as_str(), detail.change, detail.changes),
        ("DESTINATION_EXISTS", 3, 3),
        "{detail:?}"
    );
    assert_eq!(table_snapshot()?, table, "the refused service stayed");
    Ok(())
}

#[test]
fn ipvsctl_link_mistakes_are_clear() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let long = agent.ipvsctl(&["link", "add", "averyverylongname", "type", "dummy"])?;
    assert!(!long.status.success());
    assert!(stderr(&long).contains("longer than 15 bytes"), "{long:?}");
    let missing = agent.ipvsctl(&["addr", "add", "192.168.100.1/32", "dev", "nosuchlink"])?;
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("nosuchlink"), "{missing:?}");
    let unreachable = std::process::Command::new(ipvs_e2e::bin_dir().join("ipvsctl"))
        .args(["--agent", "unix:/nonexistent/agent.sock", "-ln"])
        .output()?;
    assert!(!unreachable.status.success());
    assert!(
        stderr(&unreachable).contains("unix:/nonexistent/agent.sock"),
        "{unreachable:?}"
    );
    Ok(())
}
