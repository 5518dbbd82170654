//! Builders of `ipvs.agent.v1` messages for the tests that call the gRPC API directly.

use std::net::{IpAddr, SocketAddr};

use ipvs_proto::v1::{
    Destination, Endpoint, ForwardingMethod, IpAddress, Protocol, ServiceKey, ip_address,
    service_key,
};

pub fn ip(addr: IpAddr) -> Option<IpAddress> {
    let ip = match addr {
        IpAddr::V4(a) => ip_address::Ip::V4(a.octets().to_vec()),
        IpAddr::V6(a) => ip_address::Ip::V6(a.octets().to_vec()),
    };
    Some(IpAddress { ip: Some(ip) })
}

/// The service key of `protocol` at `at` (`192.168.100.1:80`).
pub fn endpoint(protocol: Protocol, at: &str) -> Option<ServiceKey> {
    let sa: SocketAddr = at.parse().expect("test address");
    Some(ServiceKey {
        key: Some(service_key::Key::Endpoint(Endpoint {
            protocol: protocol.into(),
            address: ip(sa.ip()),
            port: sa.port().into(),
        })),
    })
}

/// A masquerading real server at `at` with `weight`.
pub fn masq(at: &str, weight: u32) -> Destination {
    let sa: SocketAddr = at.parse().expect("test address");
    Destination {
        address: ip(sa.ip()),
        port: sa.port().into(),
        forwarding: ForwardingMethod::Masquerade.into(),
        weight: Some(weight),
        ..Default::default()
    }
}
