//! Host bindings generated from the contract, one module per version it still runs
//! (`policies/wit/policy.wit`, 1.1.0, and `policies/wit/v1.0.0/policy.wit`), and the conversion
//! of the agent's domain types into each version's `input` record.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use ipvs_types::{
    Destination, DestinationEntry, Family, ForwardMethod, Protocol, ServiceEntry, ServiceKey, Stats,
};

use super::input::{PolicyInput, ServerHealth};

/// `ipvs:policy@1.0.0`: real servers without health.
pub mod v1_0 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../policies/wit/v1.0.0",
    });
}

/// `ipvs:policy@1.1.0`: 1.0.0 plus `real-server.health`.
pub mod v1_1 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../policies/wit",
    });
}

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

/// The conversions both versions share, written once against the `wit` in scope: the
/// generated types of each version are distinct Rust types of the same shape.
macro_rules! conversions {
    () => {
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

        fn forward(method: ForwardMethod) -> wit::ForwardMethod {
            match method {
                ForwardMethod::Masquerade => wit::ForwardMethod::Masquerade,
                ForwardMethod::Local => wit::ForwardMethod::Local,
                ForwardMethod::Tunnel => wit::ForwardMethod::Tunnel,
                ForwardMethod::DirectRoute => wit::ForwardMethod::DirectRoute,
            }
        }

        pub(crate) fn service(entry: &ServiceEntry) -> wit::Service {
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
    };
}

/// Wall-clock time of the evaluation in milliseconds since the Unix epoch.
fn now_ms(input: &PolicyInput) -> u64 {
    input
        .now
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The 1.0.0 `input`.
pub mod to_v1_0 {
    use super::v1_0::ipvs::policy::types as wit;
    use super::*;

    conversions!();

    fn real_server(entry: &DestinationEntry) -> wit::RealServer {
        let d = &entry.dest;
        wit::RealServer {
            name: server_name(d),
            address: address(d.addr),
            port: d.port,
            forward: forward(d.forward),
            weight: d.weight,
            upper_threshold: d.upper_threshold,
            lower_threshold: d.lower_threshold,
            active_conns: entry.active_conns,
            inactive_conns: entry.inactive_conns,
            persistent_conns: entry.persistent_conns,
            stats: stats(&entry.stats),
        }
    }

    /// The contract's 1.0.0 `input` record for `input`: no health.
    pub fn input(input: &PolicyInput) -> wit::Input {
        wit::Input {
            service: service(&input.service),
            servers: input.servers.iter().map(real_server).collect(),
            now_ms: now_ms(input),
            sequence: input.sequence,
            params: input.params.clone(),
            state: input.state.clone(),
        }
    }
}

/// The 1.1.0 `input`.
pub mod to_v1_1 {
    use super::v1_1::ipvs::policy::types as wit;
    use super::*;

    conversions!();

    fn health(h: &ServerHealth) -> wit::Health {
        wit::Health {
            state: if h.up {
                wit::HealthState::Up
            } else {
                wit::HealthState::Down
            },
            last_passed: h.last_passed,
            consecutive: h.consecutive,
            last_latency_us: h
                .last_latency
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            since_ms: millis(h.since),
            reason: clip(&h.reason, ServerHealth::REASON_BYTES).to_owned(),
        }
    }

    fn real_server(entry: &DestinationEntry, input: &PolicyInput) -> wit::RealServer {
        let d = &entry.dest;
        wit::RealServer {
            name: server_name(d),
            address: address(d.addr),
            port: d.port,
            forward: forward(d.forward),
            weight: d.weight,
            upper_threshold: d.upper_threshold,
            lower_threshold: d.lower_threshold,
            active_conns: entry.active_conns,
            inactive_conns: entry.inactive_conns,
            persistent_conns: entry.persistent_conns,
            stats: stats(&entry.stats),
            health: input.health_of(d.addr, d.port).map(health),
        }
    }

    /// The contract's 1.1.0 `input` record for `input`, with each real server's health.
    pub fn input(input: &PolicyInput) -> wit::Input {
        wit::Input {
            service: service(&input.service),
            servers: input
                .servers
                .iter()
                .map(|s| real_server(s, input))
                .collect(),
            now_ms: now_ms(input),
            sequence: input.sequence,
            params: input.params.clone(),
            state: input.state.clone(),
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::v1_1::ipvs::policy::types as wit;
    use super::*;
    use ipvs_types::{Scheduler, Service};
    use std::collections::HashMap;

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
            health: HashMap::new(),
            now: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            sequence: 9,
            params: vec![("k".into(), "v".into())],
            state: vec![1, 2],
            schedulers: Scheduler::KNOWN.to_vec(),
        };
        let w = to_v1_1::input(&input);
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

    fn two_servers() -> PolicyInput {
        let key = ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().expect("addr"),
            port: 80,
        };
        let entry = |addr: &str| DestinationEntry {
            dest: Destination::new(addr.parse().expect("addr"), 80),
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        };
        PolicyInput {
            service: ServiceEntry {
                service: Service::new(key, Scheduler::Wlc),
                stats: Stats::default(),
            },
            servers: vec![entry("10.0.0.2"), entry("10.0.0.3")],
            health: HashMap::new(),
            now: UNIX_EPOCH,
            sequence: 1,
            params: Vec::new(),
            state: Vec::new(),
            schedulers: Scheduler::KNOWN.to_vec(),
        }
    }

    #[test]
    fn health_goes_to_the_server_it_names_and_only_in_1_1() {
        let mut input = two_servers();
        input.health.insert(
            ("10.0.0.3".parse().expect("addr"), 80),
            ServerHealth {
                up: false,
                last_passed: false,
                consecutive: 4,
                last_latency: Some(Duration::from_micros(1_500)),
                since: Duration::from_millis(12_345),
                reason: format!("http 503 {}", "é".repeat(100)),
            },
        );
        let w = to_v1_1::input(&input);
        assert!(w.servers[0].health.is_none());
        let h = w.servers[1].health.as_ref().expect("health");
        assert!(matches!(h.state, wit::HealthState::Down));
        assert_eq!(
            (h.last_passed, h.consecutive, h.last_latency_us, h.since_ms),
            (false, 4, Some(1_500), 12_345)
        );
        // Cut to 128 bytes on a character boundary: "http 503 " and 59 two-byte characters.
        assert_eq!(h.reason.len(), 127);
        assert!(h.reason.starts_with("http 503 é"));

        // The 1.0.0 record has no health; everything else is the same.
        let old = to_v1_0::input(&input);
        assert_eq!(old.servers.len(), 2);
        assert_eq!(old.servers[1].name, w.servers[1].name);
        assert_eq!(old.now_ms, w.now_ms);
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
        let s = to_v1_1::service(&entry);
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
