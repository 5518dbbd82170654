//! `tcp`: a connect, nothing more. The cheapest check there is, and what keepalived's
//! `TCP_CHECK` does: the server is up when its kernel completes the handshake.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::{Verdict, io_reason};

pub(super) async fn probe(target: SocketAddr) -> Verdict {
    match TcpStream::connect(target).await {
        // Dropped at once: a close right after the handshake.
        Ok(_) => Verdict::up("connected"),
        Err(e) => Verdict::down(io_reason(&e)),
    }
}
