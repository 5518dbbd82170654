//! Words of the node file that carry structure: service addresses (`10.0.0.1:80`,
//! `[2001:db8::1]:80`), service references (`tcp:10.0.0.1:80`, `fwmark6:7`), real server
//! addresses (with or without a port) and intervals (`500ms`, `2s`, `1m`). Numeric only: a
//! declared state does not depend on name lookups.

use std::net::{IpAddr, SocketAddr};

use ipvs_proto::v1 as pb;

use crate::ipvsadm::command::ServiceKey;
use crate::ipvsadm::resolve::L4;
use crate::ipvsadm::view::ip_from_pb;

/// `ADDR:PORT`, `[IPv6]:PORT`, or a bare address (no port).
pub fn address(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    text.parse::<IpAddr>()
        .map(|ip| (ip, None))
        .map_err(|_| format!("invalid address `{text}' (expected ADDR:PORT, [IPv6]:PORT or ADDR)"))
}

/// A service address: as [`address`], a bare address being port 0 (as ipvsadm reads
/// `-t host`).
pub fn endpoint(text: &str) -> Result<(IpAddr, u16), String> {
    address(text).map(|(ip, port)| (ip, port.unwrap_or(0)))
}

/// An address and port as written back: `10.0.0.1:80`, `[2001:db8::1]:80`.
pub fn endpoint_text(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
}

fn protocol_word(p: L4) -> &'static str {
    match p {
        L4::Tcp => "tcp",
        L4::Udp => "udp",
        L4::Sctp => "sctp",
    }
}

/// A service reference: `tcp:ADDR:PORT`, `udp:...`, `sctp:...`, `fwmark:N` or `fwmark6:N`.
pub fn reference(text: &str) -> Result<ServiceKey, String> {
    let bad = || {
        format!(
            "invalid service reference `{text}' (expected tcp:ADDR:PORT, udp:ADDR:PORT, sctp:ADDR:PORT, fwmark:N or fwmark6:N)"
        )
    };
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    let protocol = match kind {
        "tcp" => L4::Tcp,
        "udp" => L4::Udp,
        "sctp" => L4::Sctp,
        "fwmark" | "fwmark6" => {
            let mark = rest
                .parse::<u32>()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(bad)?;
            return Ok(ServiceKey::Fwmark {
                mark,
                ipv6: kind == "fwmark6",
            });
        }
        _ => return Err(bad()),
    };
    let (addr, port) = endpoint(rest).map_err(|_| bad())?;
    Ok(ServiceKey::Addr {
        protocol,
        addr,
        port,
    })
}

/// A service key as a reference (the inverse of [`reference`]).
pub fn reference_text(key: &ServiceKey) -> String {
    match *key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => format!("{}:{}", protocol_word(protocol), endpoint_text(addr, port)),
        ServiceKey::Fwmark { mark, ipv6: false } => format!("fwmark:{mark}"),
        ServiceKey::Fwmark { mark, ipv6: true } => format!("fwmark6:{mark}"),
    }
}

/// The key of a spec's service, or why it has none.
pub fn key_from_pb(key: Option<&pb::ServiceKey>) -> Result<ServiceKey, String> {
    let Some(k) = key.filter(|k| **k != pb::ServiceKey::default()) else {
        return Err("no service key".into());
    };
    if k.fwmark != 0 {
        return Ok(ServiceKey::Fwmark {
            mark: k.fwmark,
            ipv6: k.family == pb::AddressFamily::Inet6 as i32,
        });
    }
    let protocol = match pb::Protocol::try_from(k.protocol) {
        Ok(pb::Protocol::Tcp | pb::Protocol::Unspecified) => L4::Tcp,
        Ok(pb::Protocol::Udp) => L4::Udp,
        Ok(pb::Protocol::Sctp) => L4::Sctp,
        Err(_) => return Err(format!("unknown protocol {}", k.protocol)),
    };
    let addr = ip_from_pb(&k.address)
        .map_err(|e| e.to_string())?
        .ok_or("no service address")?;
    let port = u16::try_from(k.port).map_err(|_| format!("port {} above 65535", k.port))?;
    Ok(ServiceKey::Addr {
        protocol,
        addr,
        port,
    })
}

/// `500ms`, `2s`, `1m`, or a number of seconds, in whole milliseconds above 0.
pub fn interval_ms(text: &str) -> Result<u64, String> {
    let d = crate::policy::parse_interval(text)?;
    match u64::try_from(d.as_millis()) {
        Ok(0) => Err(format!(
            "interval {text:?} is under 1 ms (leave it out for the agent's default)"
        )),
        Ok(ms) => Ok(ms),
        Err(_) => Err(format!("interval {text:?} is too long")),
    }
}

/// Milliseconds in the largest unit that divides them: `1m`, `2s`, `500ms`.
pub fn interval_text(ms: u64) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    type Endpoint = Result<(IpAddr, u16), &'static str>;

    #[test]
    fn endpoints() {
        let cases: &[(&str, Endpoint)] = &[
            ("10.0.0.1:80", Ok((V4, 80))),
            ("10.0.0.1", Ok((V4, 0))),
            ("[2001:db8::1]:443", Ok((V6, 443))),
            ("2001:db8::1", Ok((V6, 0))),
            (
                "10.0.0.1:70000",
                Err("invalid address `10.0.0.1:70000' (expected ADDR:PORT, [IPv6]:PORT or ADDR)"),
            ),
            (
                "[2001:db8::1]",
                Err("invalid address `[2001:db8::1]' (expected ADDR:PORT, [IPv6]:PORT or ADDR)"),
            ),
            (
                "web:80",
                Err("invalid address `web:80' (expected ADDR:PORT, [IPv6]:PORT or ADDR)"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(endpoint(text), want.map_err(str::to_string), "{text}");
        }
        assert_eq!(endpoint_text(V6, 80), "[2001:db8::1]:80");
        assert_eq!(endpoint_text(V4, 0), "10.0.0.1:0");
    }

    #[test]
    fn references_round_trip() {
        let tcp = ServiceKey::Addr {
            protocol: L4::Tcp,
            addr: V4,
            port: 80,
        };
        let udp6 = ServiceKey::Addr {
            protocol: L4::Udp,
            addr: V6,
            port: 53,
        };
        let sctp = ServiceKey::Addr {
            protocol: L4::Sctp,
            addr: V4,
            port: 9,
        };
        let fw = ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        };
        let fw6 = ServiceKey::Fwmark {
            mark: 7,
            ipv6: true,
        };
        let cases = [
            ("tcp:10.0.0.1:80", tcp),
            ("udp:[2001:db8::1]:53", udp6),
            ("sctp:10.0.0.1:9", sctp),
            ("fwmark:7", fw),
            ("fwmark6:7", fw6),
        ];
        for (text, key) in cases {
            assert_eq!(reference(text), Ok(key), "{text}");
            assert_eq!(reference_text(&key), text);
            let pb_key = crate::ipvsadm::request::service_key(&key);
            assert_eq!(key_from_pb(Some(&pb_key)), Ok(key), "{text}");
        }
        let bad = |t: &str| {
            format!(
                "invalid service reference `{t}' (expected tcp:ADDR:PORT, udp:ADDR:PORT, sctp:ADDR:PORT, fwmark:N or fwmark6:N)"
            )
        };
        for text in [
            "10.0.0.1:80",
            "http:10.0.0.1:80",
            "fwmark:0",
            "fwmark:x",
            "tcp:web:80",
        ] {
            assert_eq!(reference(text), Err(bad(text)), "{text}");
        }
        assert_eq!(key_from_pb(None), Err("no service key".to_string()));
        let empty = pb::ServiceKey::default();
        assert_eq!(key_from_pb(Some(&empty)), Err("no service key".to_string()));
        let no_address = pb::ServiceKey { port: 80, ..empty };
        assert_eq!(
            key_from_pb(Some(&no_address)),
            Err("no service address".to_string())
        );
        // A key with only an address and a port is TCP, the API's default.
        let bare = pb::ServiceKey {
            address: "10.0.0.1".into(),
            port: 80,
            ..Default::default()
        };
        assert_eq!(key_from_pb(Some(&bare)), reference("tcp:10.0.0.1:80"));
    }

    #[test]
    fn intervals() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("500ms", Ok(500)),
            ("2s", Ok(2000)),
            ("1m", Ok(60_000)),
            ("3", Ok(3000)),
            ("1.5s", Ok(1500)),
            (
                "0.1ms",
                Err("interval \"0.1ms\" is under 1 ms (leave it out for the agent's default)"),
            ),
            ("2h", Err("invalid interval \"2h\" (e.g. 2s, 500ms, 1m)")),
        ];
        for (text, want) in cases {
            assert_eq!(interval_ms(text), want.map_err(str::to_string), "{text}");
        }
        for (ms, text) in [
            (500, "500ms"),
            (2000, "2s"),
            (120_000, "2m"),
            (1500, "1500ms"),
            (1_220_765_534_803, "1220765534803ms"),
        ] {
            assert_eq!(interval_text(ms), text);
            assert_eq!(interval_ms(text), Ok(ms));
        }
    }
}
