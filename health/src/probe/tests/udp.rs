use tokio::net::UdpSocket;

use super::*;
use crate::check::Udp;

async fn udp_server() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = s.local_addr().expect("local addr");
    (s, addr)
}

/// Answers each datagram with `reply`.
fn reply_with(s: UdpSocket, reply: &'static [u8]) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((_, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(reply, from).await;
        }
    })
}

async fn closed_udp_port() -> SocketAddr {
    let (_, addr) = udp_server().await;
    addr
}

fn udp(expect: Option<&[u8]>) -> Kind {
    Kind::Udp(Udp {
        send: b"ping".to_vec(),
        expect: expect.map(<[u8]>::to_vec),
    })
}

#[tokio::test]
async fn udp_reply_matches() {
    let (s, addr) = udp_server().await;
    let server = reply_with(s, b"+PONG ok");
    let r = probe(&udp(Some(b"PONG")), addr, ms(500)).await;
    assert_verdict(&r, Outcome::Up, "reply matches");
    server.abort();
}

#[tokio::test]
async fn udp_reply_does_not_match() {
    let (s, addr) = udp_server().await;
    let server = reply_with(s, b"-ERR");
    let r = probe(&udp(Some(b"PONG")), addr, ms(500)).await;
    assert_verdict(&r, Outcome::Down, "reply does not match");
    server.abort();
}

#[tokio::test]
async fn udp_silence_with_expect_is_down_at_the_timeout() {
    let (s, addr) = udp_server().await;
    let timeout = ms(200);
    let r = probe(&udp(Some(b"PONG")), addr, timeout).await;
    assert_verdict(&r, Outcome::Down, "no reply within 200ms");
    assert_bounded(&r, timeout);
    // The probe did send.
    let mut buf = [0u8; 16];
    let n = s.try_recv(&mut buf).expect("the probe's datagram");
    assert_eq!(&buf[..n], b"ping");
}

#[tokio::test]
async fn udp_unreachable_port_is_down() {
    let addr = closed_udp_port().await;
    let r = probe(&udp(None), addr, ms(500)).await;
    assert_verdict(&r, Outcome::Down, "port unreachable");
    let r = probe(&udp(Some(b"PONG")), addr, ms(500)).await;
    assert_verdict(&r, Outcome::Down, "port unreachable");
}

#[tokio::test]
async fn udp_silence_without_expect_is_up_after_half_the_timeout() {
    let (_s, addr) = udp_server().await;
    let r = probe(&udp(None), addr, ms(400)).await;
    assert_verdict(&r, Outcome::Up, "no reply, port not unreachable");
    assert!(r.latency >= ms(200) && r.latency < ms(400), "{r:?}");
}

#[tokio::test]
async fn udp_any_reply_without_expect_is_up() {
    let (s, addr) = udp_server().await;
    let server = reply_with(s, b"whatever");
    let r = probe(&udp(None), addr, ms(400)).await;
    assert_verdict(&r, Outcome::Up, "reply received");
    assert!(r.latency < ms(200), "{r:?}");
    server.abort();
}
