//! Bad input: every mistake gets a clear error and a precise gRPC status, and the kernel's
//! table is exactly what it was before.

use anyhow::Result;
use ipvs_e2e::{Agent, Netns, ipvsadm, stderr, table_snapshot};
use ipvs_proto::v1::{
    AddAddressRequest, AddDestinationRequest, CreateDummyRequest, CreateServiceRequest,
    DeleteServiceRequest, Destination, Endpoint, ForwardingMethod, IpAddress, Protocol, Scheduler,
    Service, ServiceKey, ip_address, ipvs_service_client::IpvsServiceClient,
    link_service_client::LinkServiceClient, service_key,
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

fn v4(a: [u8; 4]) -> Option<IpAddress> {
    Some(IpAddress {
        ip: Some(ip_address::Ip::V4(a.to_vec())),
    })
}

fn tcp_key(addr: Option<IpAddress>, port: u32) -> Option<ServiceKey> {
    Some(ServiceKey {
        key: Some(service_key::Key::Endpoint(Endpoint {
            protocol: Protocol::Tcp as i32,
            address: addr,
            port,
        })),
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

fn masq(addr: [u8; 4], port: u32, weight: Option<u32>) -> Option<Destination> {
    Some(Destination {
        address: v4(addr),
        port,
        forwarding: ForwardingMethod::Masquerade as i32,
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
    let key = tcp_key(v4([10, 1, 0, 1]), 80);

    let malformed = Some(IpAddress {
        ip: Some(ip_address::Ip::V4(vec![10, 1, 0])),
    });
    expect(
        "malformed address",
        ipvs.create_service(service(tcp_key(malformed, 80), rr))
            .await,
        Code::InvalidArgument,
        "address",
    );
    expect(
        "unknown scheduler",
        ipvs.create_service(service(tcp_key(v4([10, 1, 0, 2]), 80), 99))
            .await,
        Code::InvalidArgument,
        "scheduler",
    );
    // Debian's 6.1 kernel does not build ip_vs_twos: the kernel refuses, naming it.
    let twos = ipvs
        .create_service(service(
            tcp_key(v4([10, 1, 0, 2]), 80),
            Scheduler::Twos as i32,
        ))
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
            key: tcp_key(v4([10, 1, 0, 2]), 80),
        })
        .await?;
    }
    expect(
        "port 0",
        ipvs.create_service(service(tcp_key(v4([10, 1, 0, 2]), 0), rr))
            .await,
        Code::InvalidArgument,
        "port",
    );
    expect(
        "port > 65535",
        ipvs.create_service(service(tcp_key(v4([10, 1, 0, 2]), 65536), rr))
            .await,
        Code::InvalidArgument,
        "port",
    );
    expect(
        "weight > 65535",
        ipvs.add_destination(AddDestinationRequest {
            service: key.clone(),
            destination: masq([10, 2, 0, 2], 8080, Some(65536)),
        })
        .await,
        Code::InvalidArgument,
        "weight",
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
            destination: masq([10, 2, 0, 1], 8080, None),
        })
        .await,
        Code::AlreadyExists,
        "exists",
    );
    expect(
        "missing service",
        ipvs.delete_service(DeleteServiceRequest {
            key: tcp_key(v4([10, 9, 9, 9]), 80),
        })
        .await,
        Code::NotFound,
        "service",
    );
    expect(
        "destination of a missing service",
        ipvs.add_destination(AddDestinationRequest {
            service: tcp_key(v4([10, 9, 9, 9]), 80),
            destination: masq([10, 2, 0, 1], 8080, None),
        })
        .await,
        Code::NotFound,
        "service",
    );
    expect(
        "link name longer than 15 bytes",
        links
            .create_dummy(CreateDummyRequest {
                name: "averyverylongname".into(),
            })
            .await,
        Code::InvalidArgument,
        "15",
    );
    expect(
        "address on a missing link",
        links
            .add_address(AddAddressRequest {
                link: "nosuchlink".into(),
                address: v4([192, 168, 100, 1]),
                prefix_length: 32,
            })
            .await,
        Code::NotFound,
        "nosuchlink",
    );
    assert_eq!(table_snapshot()?, before, "the table changed");
    let ip = ipvs_e2e::run_ok("ip", &["-o", "link", "show"])?;
    assert!(!ip.contains("averyverylongname"), "{ip}");
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
