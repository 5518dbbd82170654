use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::*;
use crate::check::{BodyMatch, Http};

pub(super) fn get(path: &str) -> Http {
    Http {
        method: "GET".to_owned(),
        path: path.to_owned(),
        host: None,
        expect: Vec::new(),
        body: None,
        tls: None,
    }
}

/// Reads a request head and answers `response`, then closes. Returns the request head.
pub(super) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    response: &[u8],
) -> String {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await.expect("read request");
        assert!(n > 0, "request cut short: {head:?}");
        head.extend_from_slice(&chunk[..n]);
    }
    // The client may have closed already (it needed only the status line).
    let _ = conn.write_all(response).await;
    let _ = conn.shutdown().await;
    String::from_utf8(head).expect("utf-8 request")
}

/// A server answering one request with `response`; the task gives the request head.
async fn serve_once(response: &'static [u8]) -> (SocketAddr, JoinHandle<String>) {
    let (l, addr) = listener().await;
    let task = tokio::spawn(async move {
        let (conn, _) = l.accept().await.expect("accept");
        answer(conn, response).await
    });
    (addr, task)
}

async fn http(h: Http, response: &'static [u8]) -> (ProbeResult, String) {
    let (addr, server) = serve_once(response).await;
    let r = probe(&Kind::Http(h), addr, ms(500)).await;
    (r, server.await.expect("server"))
}

#[tokio::test]
async fn http_200_is_up_and_the_request_is_well_formed() {
    let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    let r = probe(&Kind::Http(get("/health")), addr, ms(500)).await;
    assert_verdict(&r, Outcome::Up, "http 200");
    let request = server.await.expect("server");
    assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains(&format!("\r\nHost: {addr}\r\n")),
        "{request}"
    );
    assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
}

#[tokio::test]
async fn http_method_and_host_as_declared() {
    let mut h = get("/");
    h.method = "HEAD".to_owned();
    h.host = Some("www.example.com".to_owned());
    let (r, request) = http(h, b"HTTP/1.1 204 No Content\r\n\r\n").await;
    assert_verdict(&r, Outcome::Up, "http 204");
    assert!(request.starts_with("HEAD / HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains("\r\nHost: www.example.com\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn http_503_is_down() {
    let (r, _) = http(get("/"), b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
    assert_verdict(&r, Outcome::Down, "http 503");
}

#[tokio::test]
async fn http_expect_ranges() {
    let mut h = get("/");
    h.expect = vec![(200, 200), (404, 404)];
    let (r, _) = http(h.clone(), b"HTTP/1.1 404 Not Found\r\n\r\n").await;
    assert_verdict(&r, Outcome::Up, "http 404");
    let (r, _) = http(h, b"HTTP/1.1 301 Moved\r\n\r\n").await;
    assert_verdict(&r, Outcome::Down, "http 301");
}

#[tokio::test]
async fn http_body_contains() {
    let mut h = get("/");
    h.body = Some(BodyMatch::Contains("\"status\":\"ok\"".to_owned()));
    let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"ok\"}";
    let (r, _) = http(h.clone(), ok).await;
    assert_verdict(&r, Outcome::Up, "http 200");
    let bad = b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"degraded\"}";
    let (r, _) = http(h, bad).await;
    assert_verdict(&r, Outcome::Down, "http 200, body does not match");
}

#[tokio::test]
async fn http_body_regex_across_chunks() {
    let mut h = get("/");
    h.body = Some(BodyMatch::Regex("^ok: [0-9]+ backends$".to_owned()));
    // The match spans both chunks: it holds only on the de-chunked body.
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    6\r\nok: 12\r\n9\r\n backends\r\n0\r\n\r\n";
    let (r, _) = http(h.clone(), chunked).await;
    assert_verdict(&r, Outcome::Up, "http 200");
    let (r, _) = http(h, b"HTTP/1.1 200 OK\r\n\r\nok: many backends").await;
    assert_verdict(&r, Outcome::Down, "http 200, body does not match");
}

#[tokio::test]
async fn http_body_stops_at_content_length() {
    let mut h = get("/");
    h.body = Some(BodyMatch::Contains("tail".to_owned()));
    // "tail" comes after the declared length: not part of the body.
    let (r, _) = http(h, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheadtail").await;
    assert_verdict(&r, Outcome::Down, "http 200, body does not match");
}

#[tokio::test]
async fn http_body_is_capped() {
    let mut body = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    body.resize(body.len() + super::super::http::BODY_CAP, b'x');
    body.extend_from_slice(b"needle");
    let response: &'static [u8] = Box::leak(body.into_boxed_slice());
    let mut h = get("/");
    h.body = Some(BodyMatch::Contains("needle".to_owned()));
    let (r, _) = http(h.clone(), response).await;
    assert_verdict(&r, Outcome::Down, "http 200, body does not match");
    h.body = Some(BodyMatch::Contains("xxxx".to_owned()));
    let (r, _) = http(h, response).await;
    assert_verdict(&r, Outcome::Up, "http 200");
}

#[tokio::test]
async fn http_not_http() {
    let (r, _) = http(get("/"), b"SSH-2.0-OpenSSH_9.6\r\n").await;
    assert_verdict(&r, Outcome::Down, "http malformed status line");
}

#[tokio::test]
async fn http_refused() {
    let r = probe(&Kind::Http(get("/")), closed_port().await, ms(500)).await;
    assert_verdict(&r, Outcome::Down, "connect refused");
}

#[tokio::test]
async fn http_silent_server_times_out_and_the_connection_closes() {
    let (l, addr) = listener().await;
    let timeout = ms(200);
    let (r, accepted) = {
        let kind = Kind::Http(get("/"));
        tokio::join!(probe(&kind, addr, timeout), l.accept())
    };
    assert_verdict(&r, Outcome::Down, "timeout after 200ms");
    assert_bounded(&r, timeout);
    let (mut conn, _) = accepted.expect("accept");
    assert_closed_by_peer(&mut conn).await;
}

#[tokio::test]
async fn http_server_stalling_mid_body_times_out() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut conn, _) = l.accept().await.expect("accept");
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).await.expect("read");
        conn.write_all(b"HTTP/1.1 200 OK\r\n\r\npartial")
            .await
            .expect("write");
        assert_closed_by_peer(&mut conn).await;
    });
    let mut h = get("/");
    h.body = Some(BodyMatch::Contains("complete".to_owned()));
    let r = probe(&Kind::Http(h), addr, ms(200)).await;
    assert_verdict(&r, Outcome::Down, "timeout after 200ms");
    server.await.expect("server");
}
