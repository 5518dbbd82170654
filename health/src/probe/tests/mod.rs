//! Probes against servers started on 127.0.0.1 by each test: well-behaved ones for the
//! verdicts, hostile ones (silent, stalling, lying) for the bounds.

mod dns;
mod exec;
mod grpc;
mod http;
mod tcp;
mod tls;
mod udp;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::{Outcome, ProbeResult, Prober, human};
use crate::check::Kind;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn probe(kind: &Kind, target: SocketAddr, timeout: Duration) -> ProbeResult {
    Prober::new(4).probe(kind, target, timeout).await
}

#[track_caller]
fn assert_verdict(r: &ProbeResult, outcome: Outcome, reason: &str) {
    assert_eq!((r.outcome, r.reason.as_str()), (outcome, reason), "{r:?}");
}

/// A timed-out probe took its timeout, give or take scheduling, and not much more.
#[track_caller]
fn assert_bounded(r: &ProbeResult, timeout: Duration) {
    assert!(r.latency >= timeout, "returned early: {r:?}");
    assert!(r.latency < timeout + ms(300), "returned late: {r:?}");
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("local addr");
    (l, addr)
}

/// An address nothing listens on (a port just released).
async fn closed_port() -> SocketAddr {
    let (_, addr) = listener().await;
    addr
}

/// After the probe returned, its side of the connection is closed: the server reads the end
/// of the stream (or a reset) promptly instead of hanging.
async fn assert_closed_by_peer(conn: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(ms(1000), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the probe left its connection open");
}

#[test]
fn human_durations() {
    assert_eq!(human(Duration::from_secs(2)), "2s");
    assert_eq!(human(ms(500)), "500ms");
    assert_eq!(human(ms(1500)), "1.5s");
    assert_eq!(human(Duration::from_micros(250)), "250us");
}

#[tokio::test]
async fn regexes_are_compiled_once() {
    let p = Prober::new(1);
    let a = p.regex("^ok$").expect("compiles");
    let b = p.regex("^ok$").expect("compiles");
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert!(p.regex("(").is_err());
}
