//! `drain`'s service and real server, read exactly as ipvsadm reads `-d -t SERVICE -r SERVER`
//! (same grammar, names, default port and messages), into a drain request.

use std::net::IpAddr;

use ipvs_proto::v1 as pb;

use crate::durations;
use crate::exit::{self, Failure};
use crate::ipvsadm::command::Command;
use crate::ipvsadm::parse::parse_line;
use crate::ipvsadm::request;
use crate::ipvsadm::resolve::Resolve;

/// The service as given on the command line: one of `-t`, `-u`, `--sctp-service`, `-f`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceArg {
    Tcp(String),
    Udp(String),
    Sctp(String),
    Fwmark(String),
}

/// What to drain and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainArgs {
    pub service: ServiceArg,
    /// `-6`: the fwmark service is IPv6 (ipvsadm refuses it with any other service).
    pub ipv6: bool,
    pub server: String,
    pub timeout_ms: u64,
    pub keep: bool,
    pub expected_revision: Option<u64>,
}

/// The request, and the server as progress lines name it.
pub fn request(
    args: &DrainArgs,
    names: &dyn Resolve,
) -> Result<(pb::DrainRequest, IpAddr, u16), Failure> {
    let mut argv: Vec<String> = vec!["-d".into()];
    match &args.service {
        ServiceArg::Tcp(s) => argv.extend(["-t".into(), s.clone()]),
        ServiceArg::Udp(s) => argv.extend(["-u".into(), s.clone()]),
        ServiceArg::Sctp(s) => argv.extend(["--sctp-service".into(), s.clone()]),
        ServiceArg::Fwmark(mark) => argv.extend(["-f".into(), mark.clone()]),
    }
    if args.ipv6 {
        argv.push("-6".into());
    }
    argv.extend(["-r".into(), args.server.clone()]);
    let command = parse_line("ipvsctl drain", &argv, names).map_err(|e| {
        Failure::new(
            e.exit_code(),
            format!("ipvsctl: {}", e.to_string().trim_end()),
        )
    })?;
    let Command::DeleteServer(key, addr, port) = command else {
        return Err(Failure::new(
            exit::USAGE,
            "ipvsctl: drain needs a service and a real server",
        ));
    };
    Ok((
        pb::DrainRequest {
            service: Some(request::service_key(&key)),
            destination: Some(pb::Destination {
                address: request::ip(addr),
                port: u32::from(port),
                ..Default::default()
            }),
            timeout: durations::from_millis(args.timeout_ms),
            keep: args.keep,
            expected_revision: args.expected_revision,
        },
        addr,
        port,
    ))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::ipvsadm::command::ServiceKey;
    use crate::ipvsadm::resolve::{L4, NoNames, test_names};

    fn args(service: ServiceArg, server: &str) -> DrainArgs {
        DrainArgs {
            service,
            ipv6: false,
            server: server.into(),
            timeout_ms: 300_000,
            keep: false,
            expected_revision: None,
        }
    }

    #[test]
    fn services_and_servers_read_as_ipvsadm_reads_them() {
        let tcp = ServiceKey::Addr {
            protocol: L4::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 80,
        };
        let real = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1));
        let cases: Vec<(DrainArgs, ServiceKey, u16)> = vec![
            // No port: the service's, as with ipvsadm -d.
            (
                args(ServiceArg::Tcp("10.0.0.1:80".into()), "10.0.1.1"),
                tcp,
                80,
            ),
            (
                args(ServiceArg::Tcp("10.0.0.1:80".into()), "10.0.1.1:8080"),
                tcp,
                8080,
            ),
            (
                args(ServiceArg::Udp("10.0.0.1:53".into()), "10.0.1.1:53"),
                ServiceKey::Addr {
                    protocol: L4::Udp,
                    addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                    port: 53,
                },
                53,
            ),
            (
                args(ServiceArg::Fwmark("7".into()), "10.0.1.1"),
                ServiceKey::Fwmark {
                    mark: 7,
                    ipv6: false,
                },
                0,
            ),
        ];
        let real6 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let a = DrainArgs {
            ipv6: true,
            ..args(ServiceArg::Fwmark("7".into()), "[2001:db8::1]:80")
        };
        let (req, addr, port) = request(&a, &NoNames).expect("valid");
        assert_eq!(
            (req.service, addr, port),
            (
                Some(request::service_key(&ServiceKey::Fwmark {
                    mark: 7,
                    ipv6: true
                })),
                real6,
                80
            )
        );
        for (a, key, port) in cases {
            let (req, addr, p) = request(&a, &NoNames).expect("valid");
            let dest = req.destination.clone().unwrap_or_default();
            assert_eq!(
                (req.service, dest.address, dest.port, addr, p),
                (
                    Some(request::service_key(&key)),
                    request::ip(real),
                    u32::from(port),
                    real,
                    port
                ),
                "{a:?}"
            );
            assert_eq!(
                (durations::millis(req.timeout.as_ref()), req.keep),
                (300_000, false)
            );
        }
    }

    #[test]
    fn names_resolve_like_ipvsadm() {
        let a = args(ServiceArg::Tcp("localhost:http".into()), "localhost");
        let (req, _, port) = request(&a, &test_names()).expect("known names");
        assert_eq!(port, 80);
        assert_eq!(req.destination.map(|d| d.port), Some(80));
    }

    #[test]
    fn bad_addresses_get_ipvsadm_messages() {
        let cases = [
            (
                args(ServiceArg::Tcp("nowhere".into()), "10.0.1.1"),
                (
                    2,
                    "ipvsctl: illegal virtual server address[:port] specified",
                ),
            ),
            (
                args(ServiceArg::Tcp("10.0.0.1:80".into()), "10.0.1.1:x"),
                (2, "ipvsctl: illegal real server address[:port] specified"),
            ),
            (
                args(ServiceArg::Fwmark("0".into()), "10.0.1.1"),
                (2, "ipvsctl: invalid fwmark value `0' specified"),
            ),
            (
                DrainArgs {
                    ipv6: true,
                    ..args(ServiceArg::Tcp("10.0.0.1:80".into()), "10.0.1.1")
                },
                (2, "ipvsctl: -6 used before -f"),
            ),
        ];
        for (a, (code, message)) in cases {
            assert_eq!(
                request(&a, &NoNames).map(|_| ()),
                Err(Failure::new(code, message)),
                "{a:?}"
            );
        }
    }
}
