//! `tcp`: a connect, nothing more. The cheapest check there is, and what keepalived's
//! `TCP_CHECK` does: the server is up when its kernel completes the handshake.

use std::net::SocketAddr;

use super::{Verdict, connect, io_reason};

pub(super) async fn probe(target: SocketAddr) -> Verdict {
    match connect(target).await {
        // Dropped at once: a reset right after the handshake (see `connect`).
        Ok(_) => Verdict::up("connected"),
        Err(e) => Verdict::down(io_reason(&e)),
    }
}
