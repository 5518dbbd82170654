//! `udp`: a datagram on a connected socket, so that the kernel hands us only the target's
//! replies and reports its ICMP port-unreachable as `ECONNREFUSED` on the next receive.
//!
//! With `expect`, the first reply decides: it contains the bytes (up) or not (down, without
//! waiting for another: only the target can answer a connected socket). Silence runs into the
//! probe's timeout, reported as `no reply within ...`.
//!
//! Without `expect`, keepalived's `UDP_CHECK` semantics: down only if the port is unreachable,
//! up otherwise, reply or not. Silence is the normal case there, so instead of sitting out the
//! whole timeout this waits half of it: an ICMP error on loopback or a LAN arrives in well under
//! a millisecond, and the probe stays clear of its own deadline.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;
use tokio::time::Duration;

use super::{Verdict, contains, io_reason};
use crate::check::Udp;

/// The largest datagram there is; a smaller buffer would truncate a long reply and miss a match
/// at its end.
const MAX_DATAGRAM: usize = 65_535;

pub(super) async fn probe(u: &Udp, target: SocketAddr, timeout: Duration) -> Verdict {
    let socket = match connect(target).await {
        Ok(s) => s,
        Err(e) => return Verdict::down(io_reason(&e)),
    };
    if let Err(e) = socket.send(&u.send).await {
        return Verdict::down(udp_reason(&e));
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    match &u.expect {
        Some(expect) => match socket.recv(&mut buf).await {
            Ok(n) if contains(&buf[..n], expect) => Verdict::up("reply matches"),
            Ok(_) => Verdict::down("reply does not match"),
            Err(e) => Verdict::down(udp_reason(&e)),
        },
        None => match tokio::time::timeout(timeout / 2, socket.recv(&mut buf)).await {
            Ok(Ok(_)) => Verdict::up("reply received"),
            Ok(Err(e)) => Verdict::down(udp_reason(&e)),
            Err(_) => Verdict::up("no reply, port not unreachable"),
        },
    }
}

pub(super) async fn connect(target: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// On a connected UDP socket, "refused" is the ICMP port unreachable.
pub(super) fn udp_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "port unreachable".to_owned(),
        _ => io_reason(e),
    }
}
