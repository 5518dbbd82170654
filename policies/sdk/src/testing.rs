//! Builders for [`Input`]s in policy unit tests: `input(vec![server("10.0.0.2", 80).build()])`.

use std::net::IpAddr;

use crate::{
    Endpoint, ForwardMethod, Health, HealthState, Input, IpAddress, Protocol, RealServer, Service,
    ServiceKey, Stats,
};

/// A TCP service `10.0.0.1:80` with scheduler `wlc` and these real servers, at sequence 1.
pub fn input(servers: Vec<RealServer>) -> Input {
    Input {
        service: Service {
            name: "TCP 10.0.0.1:80".into(),
            key: ServiceKey::Endpoint(Endpoint {
                protocol: Protocol::Tcp,
                address: IpAddress::Ipv4((10, 0, 0, 1)),
                port: 80,
            }),
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 0,
            stats: zero_stats(),
        },
        servers,
        now_ms: 1_700_000_000_000,
        sequence: 1,
        params: Vec::new(),
        state: Vec::new(),
    }
}

/// Stats with every counter at zero.
pub fn zero_stats() -> Stats {
    Stats {
        conns: 0,
        inpkts: 0,
        outpkts: 0,
        inbytes: 0,
        outbytes: 0,
        cps: 0,
        inpps: 0,
        outpps: 0,
        inbps: 0,
        outbps: 0,
    }
}

/// A health check's verdict after three agreeing probes, 1 ms each, that has held for a
/// minute: "ok" when `up`, else "timeout".
pub fn health(up: bool) -> Health {
    Health {
        state: if up {
            HealthState::Up
        } else {
            HealthState::Down
        },
        last_passed: up,
        consecutive: 3,
        last_latency_us: Some(1_000),
        since_ms: 60_000,
        reason: if up { "ok" } else { "timeout" }.into(),
    }
}

/// A real server builder: weight 1, masquerading, no connections, no health check.
pub fn server(addr: &str, port: u16) -> ServerBuilder {
    ServerBuilder(RealServer {
        name: String::new(),
        address: match addr.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => {
                let s = a.segments();
                IpAddress::Ipv6((s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]))
            }
            Ok(IpAddr::V4(a)) => {
                let o = a.octets();
                IpAddress::Ipv4((o[0], o[1], o[2], o[3]))
            }
            // Test helper: an unparsable address keeps 0.0.0.0 and shows up in the name.
            Err(_) => IpAddress::Ipv4((0, 0, 0, 0)),
        },
        port,
        forward: ForwardMethod::Masquerade,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        active_conns: 0,
        inactive_conns: 0,
        persistent_conns: 0,
        stats: zero_stats(),
        health: None,
    })
    .named(&if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    })
}

#[derive(Debug, Clone)]
pub struct ServerBuilder(RealServer);

impl ServerBuilder {
    fn named(mut self, name: &str) -> Self {
        self.0.name = name.to_owned();
        self
    }

    pub fn weight(mut self, w: u32) -> Self {
        self.0.weight = w;
        self
    }

    pub fn active(mut self, n: u32) -> Self {
        self.0.active_conns = n;
        self
    }

    pub fn inactive(mut self, n: u32) -> Self {
        self.0.inactive_conns = n;
        self
    }

    /// Gives it a health check with this verdict.
    pub fn health(mut self, h: Health) -> Self {
        self.0.health = Some(h);
        self
    }

    /// Gives it a health check that says down, for `reason`.
    pub fn down(self, reason: &str) -> Self {
        let mut h = health(false);
        h.reason = reason.to_owned();
        self.health(h)
    }

    pub fn build(self) -> RealServer {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_ipvsadm() {
        assert_eq!(server("10.0.0.2", 8080).build().name, "10.0.0.2:8080");
        let v6 = server("2001:db8::2", 80).weight(5).build();
        assert_eq!(v6.name, "[2001:db8::2]:80");
        assert_eq!(
            v6.address,
            IpAddress::Ipv6((0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))
        );
        assert_eq!(v6.weight, 5);
    }
}
