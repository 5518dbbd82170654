//! Attributes an older kernel accepts and silently drops: tunnel type, port and checksum
//! (`IPVS_DEST_ATTR_TUN_*`, Linux 5.2) and a real server's own address family
//! (`IPVS_DEST_ATTR_ADDR_FAMILY`, Linux 3.18). A write that sets them is read back; reading
//! costs one dump per service, so only writes that set them to something else than the
//! default are checked.

use std::net::SocketAddr;

use crate::ipvs::{Destination, DestinationEntry, ServiceKey, Tunnel};

/// Whether a write of `dest` must be read back.
pub fn needs_readback(service: &ServiceKey, dest: &Destination) -> bool {
    dest.tunnel != Tunnel::default() || dest.family() != service.family()
}

/// What the kernel dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error(
        "the kernel ignored the tunnel settings of real server {dest} of service {service} \
         (GUE and GRE tunnels need Linux 5.2 or later)"
    )]
    Tunnel {
        service: ServiceKey,
        dest: SocketAddr,
    },
    #[error(
        "the kernel ignored the address family of real server {dest} of service {service} (a \
         real server of the other family needs Linux 3.18 or later)"
    )]
    Family {
        service: ServiceKey,
        dest: SocketAddr,
    },
}

/// Checks `wanted` against the real servers read back from `service`. A kernel that ignored
/// the family read the address in the service's family, so the server is not found at all.
pub fn check(
    service: &ServiceKey,
    wanted: &Destination,
    readback: &[DestinationEntry],
) -> Result<(), Ignored> {
    let at = SocketAddr::new(wanted.addr, wanted.port);
    let found = readback
        .iter()
        .find(|e| e.dest.addr == wanted.addr && e.dest.port == wanted.port);
    match found {
        None if wanted.family() != service.family() => Err(Ignored::Family {
            service: *service,
            dest: at,
        }),
        Some(e) if e.dest.tunnel != wanted.tunnel => Err(Ignored::Tunnel {
            service: *service,
            dest: at,
        }),
        // Gone meanwhile (another client deleted it): nothing was ignored.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{ForwardMethod, Protocol, Stats, TunnelChecksum, TunnelType};

    fn entry(dest: Destination) -> DestinationEntry {
        DestinationEntry {
            dest,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        }
    }

    #[test]
    fn readbacks() {
        let service = ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().expect("ip"),
            port: 80,
        };
        let tunnel = |addr: &str, kind| Destination {
            forward: ForwardMethod::Tunnel,
            tunnel: Tunnel {
                kind,
                port: if kind == TunnelType::Gue { 6080 } else { 0 },
                checksum: TunnelChecksum::Csum,
            },
            ..Destination::new(addr.parse().expect("ip"), 80)
        };
        let gue = tunnel("10.0.1.1", TunnelType::Gue);
        let dropped = Destination {
            tunnel: Tunnel::default(),
            ..gue
        };
        let v6 = Destination {
            tunnel: Tunnel::default(),
            ..tunnel("2001:db8::1", TunnelType::Ipip)
        };
        // What a kernel before 3.18 makes of that address: its first four bytes.
        let truncated = Destination {
            addr: "32.1.13.184".parse().expect("ip"),
            ..v6
        };
        let masq = Destination {
            forward: ForwardMethod::Masquerade,
            ..Destination::new("10.0.1.9".parse().expect("ip"), 8080)
        };
        assert!(needs_readback(&service, &gue));
        assert!(needs_readback(&service, &v6));
        assert!(!needs_readback(&service, &dropped), "plain IPIP");
        assert!(!needs_readback(&service, &masq));
        let cases: Vec<(Destination, Vec<Destination>, Result<(), Ignored>)> = vec![
            (gue, vec![masq, gue], Ok(())),
            (
                gue,
                vec![dropped],
                Err(Ignored::Tunnel {
                    service,
                    dest: "10.0.1.1:80".parse().expect("addr"),
                }),
            ),
            (v6, vec![v6], Ok(())),
            (
                v6,
                vec![truncated],
                Err(Ignored::Family {
                    service,
                    dest: "[2001:db8::1]:80".parse().expect("addr"),
                }),
            ),
            (gue, vec![], Ok(())),
        ];
        for (wanted, back, want) in cases {
            let back: Vec<DestinationEntry> = back.into_iter().map(entry).collect();
            assert_eq!(check(&service, &wanted, &back), want, "{wanted:?}");
        }
        assert_eq!(
            Ignored::Tunnel {
                service,
                dest: "10.0.1.1:80".parse().expect("addr"),
            }
            .to_string(),
            "the kernel ignored the tunnel settings of real server 10.0.1.1:80 of service TCP \
             10.0.0.1:80 (GUE and GRE tunnels need Linux 5.2 or later)"
        );
    }
}
