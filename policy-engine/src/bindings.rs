//! Host bindings generated from `policies/wit/policy.wit`, and the conversion of the agent's
//! domain types into the contract's `input` record.

use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use ipvs_types::{
    Destination, DestinationEntry, Family, ForwardMethod, Protocol, ServiceEntry, ServiceKey, Stats,
};

use super::input::PolicyInput;

wasmtime::component::bindgen!({
    world: "policy",
    path: "../policies/wit",
});

use ipvs::policy::types as wit;

/// The name a policy uses for a real server: `10.0.0.2:80`, `[2001:db8::2]:80`. IPv4 names
/// are written byte by byte: every evaluation names every real server, and the `fmt`
/// machinery costs several times more.
pub fn server_name(dest: &Destination) -> String {
    match dest.addr {
        IpAddr::V4(a) => {
            // "255.255.255.255:65535" is 21 bytes.
            let mut buf = [0u8; 21];
            let mut len = 0;
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                len += put_decimal(&mut buf[len..], u32::from(octet));
            }
            buf[len] = b':';
            len += 1;
            len += put_decimal(&mut buf[len..], u32::from(dest.port));
            // Digits, dots and a colon: always ASCII.
            String::from_utf8_lossy(&buf[..len]).into_owned()
        }
        IpAddr::V6(a) => format!("[{a}]:{}", dest.port),
    }
}

/// Writes `n` (at most 65535) in decimal at the start of `out`; returns how many bytes.
fn put_decimal(out: &mut [u8], n: u32) -> usize {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut n = n.min(99_999);
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - at;
    out[..len].copy_from_slice(&digits[at..]);
    len
}

fn address(addr: IpAddr) -> wit::IpAddress {
    match addr {
        IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            wit::IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(a) => {
            let [a, b, c, d, e, f, g, h] = a.segments();
            wit::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    }
}

fn stats(s: &Stats) -> wit::Stats {
    wit::Stats {
        conns: s.conns,
        inpkts: s.inpkts,
        outpkts: s.outpkts,
        inbytes: s.inbytes,
        outbytes: s.outbytes,
        cps: s.cps,
        inpps: s.inpps,
        outpps: s.outpps,
        inbps: s.inbps,
        outbps: s.outbps,
    }
}

fn service(entry: &ServiceEntry) -> wit::Service {
    let svc = &entry.service;
    let key = match svc.key {
        ServiceKey::Endpoint {
            protocol,
            addr,
            port,
        } => wit::ServiceKey::Endpoint(wit::Endpoint {
            protocol: match protocol {
                Protocol::Tcp => wit::Protocol::Tcp,
                Protocol::Udp => wit::Protocol::Udp,
                Protocol::Sctp => wit::Protocol::Sctp,
            },
            address: address(addr),
            port,
        }),
        ServiceKey::FwMark { mark, family } => wit::ServiceKey::Fwmark(wit::Fwmark {
            mark,
            family: match family {
                Family::Inet => wit::Family::Inet,
                Family::Inet6 => wit::Family::Inet6,
            },
        }),
    };
    wit::Service {
        name: svc.key.to_string(),
        key,
        scheduler: svc.scheduler.name().to_owned(),
        flags: svc.flags.0,
        timeout: svc.timeout,
        stats: stats(&entry.stats),
    }
}

fn real_server(entry: &DestinationEntry) -> wit::RealServer {
    let d = &entry.dest;
    wit::RealServer {
        name: server_name(d),
        address: address(d.addr),
        port: d.port,
        forward: match d.forward {
            ForwardMethod::Masquerade => wit::ForwardMethod::Masquerade,
            ForwardMethod::Local => wit::ForwardMethod::Local,
            ForwardMethod::Tunnel => wit::ForwardMethod::Tunnel,
            ForwardMethod::DirectRoute => wit::ForwardMethod::DirectRoute,
        },
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        active_conns: entry.active_conns,
        inactive_conns: entry.inactive_conns,
        persistent_conns: entry.persistent_conns,
        stats: stats(&entry.stats),
    }
}

/// The contract's `input` record for `input`.
pub fn to_wit(input: &PolicyInput) -> wit::Input {
    let now_ms = input
        .now
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    wit::Input {
        service: service(&input.service),
        servers: input.servers.iter().map(real_server).collect(),
        now_ms,
        sequence: input.sequence,
        params: input.params.clone(),
        state: input.state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_types::{Scheduler, Service};
    use std::time::Duration;

    #[test]
    fn input_carries_the_service_as_the_kernel_reports_it() {
        let key = ServiceKey::Endpoint {
            protocol: Protocol::Udp,
            addr: "2001:db8::1".parse().expect("addr"),
            port: 53,
        };
        let mut dest = Destination::new("2001:db8::2".parse().expect("addr"), 5353);
        dest.forward = ForwardMethod::Masquerade;
        dest.weight = 7;
        let input = PolicyInput {
            service: ServiceEntry {
                service: Service::new(key, Scheduler::Wlc),
                stats: Stats {
                    conns: 1 << 40,
                    ..Stats::default()
                },
            },
            servers: vec![DestinationEntry {
                dest,
                active_conns: 3,
                inactive_conns: 4,
                persistent_conns: 5,
                stats: Stats::default(),
            }],
            now: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            sequence: 9,
            params: vec![("k".into(), "v".into())],
            state: vec![1, 2],
            schedulers: Scheduler::KNOWN.to_vec(),
        };
        let w = to_wit(&input);
        assert_eq!(w.service.name, "UDP [2001:db8::1]:53");
        assert_eq!(w.service.scheduler, "wlc");
        assert_eq!(w.service.stats.conns, 1 << 40);
        assert!(matches!(
            w.service.key,
            wit::ServiceKey::Endpoint(wit::Endpoint {
                protocol: wit::Protocol::Udp,
                address: wit::IpAddress::Ipv6((0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                port: 53
            })
        ));
        let s = &w.servers[0];
        assert_eq!(s.name, "[2001:db8::2]:5353");
        assert_eq!(
            (
                s.weight,
                s.active_conns,
                s.inactive_conns,
                s.persistent_conns
            ),
            (7, 3, 4, 5)
        );
        assert!(matches!(s.forward, wit::ForwardMethod::Masquerade));
        assert_eq!(
            (w.now_ms, w.sequence, w.state.as_slice()),
            (1_700_000_000_123, 9, &[1u8, 2][..])
        );
        assert_eq!(w.params, [("k".to_owned(), "v".to_owned())]);
    }

    #[test]
    fn names_are_what_display_writes() {
        let cases = [
            ("10.0.0.2", 8080),
            ("0.0.0.0", 0),
            ("255.255.255.255", 65535),
            ("192.168.100.1", 9),
            ("1.20.100.0", 10000),
            ("2001:db8::2", 80),
            ("::ffff:10.0.0.1", 443),
            ("::", 1),
        ];
        for (addr, port) in cases {
            let ip: IpAddr = addr.parse().expect("addr");
            let d = Destination::new(ip, port);
            let want = match ip {
                IpAddr::V4(a) => format!("{a}:{port}"),
                IpAddr::V6(a) => format!("[{a}]:{port}"),
            };
            assert_eq!(server_name(&d), want, "{addr} {port}");
        }
    }

    #[test]
    fn fwmark_and_v4_names() {
        let d = Destination::new("10.0.0.2".parse().expect("addr"), 8080);
        assert_eq!(server_name(&d), "10.0.0.2:8080");
        let entry = ServiceEntry {
            service: Service::new(
                ServiceKey::FwMark {
                    mark: 7,
                    family: Family::Inet6,
                },
                Scheduler::Rr,
            ),
            stats: Stats::default(),
        };
        let s = service(&entry);
        assert_eq!(s.name, "FWM 7 IPv6");
        assert!(matches!(
            s.key,
            wit::ServiceKey::Fwmark(wit::Fwmark {
                mark: 7,
                family: wit::Family::Inet6
            })
        ));
    }
}
