//! Host and service names, looked up the way ipvsadm looks them up.
//!
//! ipvsadm accepts `-t www:http` (`gethostbyname`, `getservbyname`) and, without `-n`, prints
//! `localhost:tproxy` (`gethostbyaddr`, `getservbyport`). ipvsctl does the same on the client:
//! host names go through the system resolver (NSS: `/etc/hosts`, then DNS as
//! `/etc/nsswitch.conf` says), service names come from `/etc/services`. Names are the client's
//! view, not the agent's node's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

/// A layer-4 protocol, as `/etc/services` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    Tcp,
    Udp,
    Sctp,
}

/// Name lookups; `None` means "no name", and the caller falls back to numbers.
pub trait Resolve {
    /// `gethostbyname` restricted to IPv4, as ipvsadm's `host_to_addr`.
    fn host_to_ipv4(&self, name: &str) -> Option<Ipv4Addr>;
    /// `getservbyname(name, proto)`.
    fn service_to_port(&self, name: &str, proto: L4) -> Option<u16>;
    /// `gethostbyaddr`: the host's official name.
    fn addr_to_host(&self, addr: IpAddr) -> Option<String>;
    /// `getservbyport(port, proto)`: the service's official name.
    fn port_to_service(&self, port: u16, proto: L4) -> Option<String>;
}

/// Resolves nothing: every name is unknown and every number prints as a number. Tests and
/// fuzz runs use it so that they never wait on DNS or depend on `/etc/services`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl Resolve for NoNames {
    fn host_to_ipv4(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_to_port(&self, _: &str, _: L4) -> Option<u16> {
        None
    }
    fn addr_to_host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn port_to_service(&self, _: u16, _: L4) -> Option<String> {
        None
    }
}

/// The services database: `name port/proto aliases...` lines.
#[derive(Debug, Default, Clone)]
pub struct Services {
    by_name: HashMap<(String, L4), u16>,
    by_port: HashMap<(u16, L4), String>,
}

impl Services {
    /// Parses `/etc/services` text; malformed lines are skipped, as libc skips them.
    pub fn parse(text: &str) -> Self {
        let mut db = Services::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let proto = match proto {
                "tcp" => L4::Tcp,
                "udp" => L4::Udp,
                "sctp" => L4::Sctp,
                _ => continue,
            };
            db.by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_string());
            for alias in std::iter::once(name).chain(fields) {
                db.by_name.entry((alias.to_string(), proto)).or_insert(port);
            }
        }
        db
    }

    pub fn port(&self, name: &str, proto: L4) -> Option<u16> {
        self.by_name.get(&(name.to_string(), proto)).copied()
    }

    pub fn name(&self, port: u16, proto: L4) -> Option<String> {
        self.by_port.get(&(port, proto)).cloned()
    }
}

/// The system's resolver for hosts and `/etc/services` for services.
#[derive(Debug, Default)]
pub struct System {
    services: OnceLock<Services>,
}

impl System {
    fn services(&self) -> &Services {
        self.services.get_or_init(|| {
            std::fs::read_to_string("/etc/services")
                .map(|text| Services::parse(&text))
                .unwrap_or_default()
        })
    }
}

impl Resolve for System {
    fn host_to_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        let hints = dns_lookup::AddrInfoHints {
            address: i32::from(dns_lookup::AddrFamily::Inet),
            ..Default::default()
        };
        dns_lookup::getaddrinfo(Some(name), None, Some(hints))
            .ok()?
            .filter_map(Result::ok)
            .find_map(|info| match info.sockaddr.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
    }

    fn service_to_port(&self, name: &str, proto: L4) -> Option<u16> {
        self.services().port(name, proto)
    }

    fn addr_to_host(&self, addr: IpAddr) -> Option<String> {
        dns_lookup::lookup_addr(&addr).ok()
    }

    fn port_to_service(&self, port: u16, proto: L4) -> Option<String> {
        self.services().name(port, proto)
    }
}

/// A fixed table of names, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct FixedNames {
    pub hosts: Vec<(&'static str, IpAddr)>,
    pub services: Services,
}

#[cfg(test)]
impl Resolve for FixedNames {
    fn host_to_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|(n, a)| match a {
            IpAddr::V4(v4) if *n == name => Some(*v4),
            _ => None,
        })
    }
    fn service_to_port(&self, name: &str, proto: L4) -> Option<u16> {
        self.services.port(name, proto)
    }
    fn addr_to_host(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(n, _)| n.to_string())
    }
    fn port_to_service(&self, port: u16, proto: L4) -> Option<String> {
        self.services.name(port, proto)
    }
}

#[cfg(test)]
pub fn test_names() -> FixedNames {
    FixedNames {
        hosts: vec![("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST))],
        services: Services::parse(
            "http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\n\
             domain\t\t53/tcp\n\
             domain\t\t53/udp\n\
             https\t\t443/tcp\n\
             tproxy\t\t8081/tcp\t\t\t# Transparent Proxy\n\
             bogus line\n\
             sip\t\t5060/sctp\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_lookups_use_official_names_and_aliases() {
        let db = test_names().services;
        assert_eq!(db.port("http", L4::Tcp), Some(80));
        assert_eq!(db.port("www", L4::Tcp), Some(80));
        assert_eq!(db.port("http", L4::Udp), None);
        assert_eq!(db.port("domain", L4::Udp), Some(53));
        assert_eq!(db.name(8081, L4::Tcp).as_deref(), Some("tproxy"));
        assert_eq!(db.name(8082, L4::Tcp), None);
        assert_eq!(db.name(5060, L4::Sctp).as_deref(), Some("sip"));
        assert_eq!(db.port("bogus", L4::Tcp), None);
    }
}
