//! `http`/`https`: one HTTP/1.1 request with `Connection: close`, written and read by hand.
//!
//! A health check needs the status line and, at most, a capped body: a full client stack would
//! add connection pools and background tasks for no gain. What is read:
//! - the status line, always; the verdict needs nothing else unless a body match is declared;
//! - with a body match, the headers and then the body until the server closes, the
//!   `Content-Length` is reached, or [`BODY_CAP`] bytes are in. A chunked body is de-chunked
//!   from what was read (a chunk cut by the cap is kept as far as it goes); any other
//!   transfer coding is matched as sent.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tls::{self, Alpn};
use super::{Prober, Verdict, connect, io_reason};
use crate::check::{BodyMatch, Http};

/// How much of a body is read for a body match.
pub(super) const BODY_CAP: usize = 64 * 1024;
/// How long a status line and headers may be before the response counts as malformed.
const HEAD_CAP: usize = 16 * 1024;

pub(super) async fn probe(prober: &Prober, h: &Http, target: SocketAddr) -> Verdict {
    let tcp = match connect(target).await {
        Ok(s) => s,
        Err(e) => return Verdict::down(io_reason(&e)),
    };
    let host = h.host.clone().unwrap_or_else(|| default_host(target));
    let Some(t) = &h.tls else {
        return exchange(prober, tcp, h, &host).await;
    };
    let config = match prober.tls.get(t, Alpn::Http1) {
        Ok(c) => c,
        Err(e) => return Verdict::down(format!("tls: {e}")),
    };
    let name = match tls::server_name(t, h.host.as_deref(), target) {
        Ok(n) => n,
        Err(e) => return Verdict::down(format!("tls: {e}")),
    };
    match tls::connect(config, name, tcp).await {
        Ok(stream) => exchange(prober, stream, h, &host).await,
        Err(e) => Verdict::down(format!("tls: {e}")),
    }
}

/// The `Host` of a request to an address: with its port unless it is a default one.
fn default_host(target: SocketAddr) -> String {
    match target.port() {
        80 | 443 => match target {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        },
        _ => target.to_string(),
    }
}

async fn exchange<S>(prober: &Prober, mut stream: S, h: &Http, host: &str) -> Verdict
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: ipvs-health\r\n\
         Accept: */*\r\n\r\n",
        h.method, h.path
    );
    if let Err(e) = async {
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await
    }
    .await
    {
        return Verdict::down(io_reason(&e));
    }

    let mut buf = Vec::with_capacity(1024);
    let status = match read_until(&mut stream, &mut buf, b"\r\n", HEAD_CAP).await {
        Ok(Some(line_end)) => match parse_status(&buf[..line_end]) {
            Some(s) => s,
            None => return Verdict::down("http malformed status line"),
        },
        Ok(None) => return Verdict::down("http malformed status line"),
        Err(e) => return Verdict::down(io_reason(&e)),
    };
    if !status_expected(&h.expect, status) {
        return Verdict::down(format!("http {status}"));
    }
    let Some(matcher) = &h.body else {
        return Verdict::up(format!("http {status}"));
    };

    let head_end = match read_until(&mut stream, &mut buf, b"\r\n\r\n", HEAD_CAP).await {
        Ok(Some(end)) => end + 4,
        Ok(None) => return Verdict::down(format!("http {status}, headers too long")),
        Err(e) => return Verdict::down(format!("http {status}, {}", io_reason(&e))),
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf.split_off(head_end);
    let chunked = is_chunked(&head);
    // A chunked body's length is in its chunks, not in a Content-Length (RFC 9112 §6.3).
    let length = if chunked { None } else { content_length(&head) };
    read_body(&mut stream, &mut body, length).await;
    if chunked {
        body = dechunk(&body);
    }

    let matches = match matcher {
        BodyMatch::Contains(s) => super::contains(&body, s.as_bytes()),
        BodyMatch::Regex(p) => match prober.regex(p) {
            Ok(re) => re.is_match(&body),
            Err(e) => return Verdict::down(format!("body regex: {e}")),
        },
    };
    if matches {
        Verdict::up(format!("http {status}"))
    } else {
        Verdict::down(format!("http {status}, body does not match"))
    }
}

/// Reads into `buf` until `delim` is in it; the delimiter's offset, or `None` past `cap` bytes
/// or at the end of the stream.
async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    delim: &[u8],
    cap: usize,
) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(delim.len()).position(|w| w == delim) {
            return Ok(Some(at));
        }
        if buf.len() > cap {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the body until the end of the stream, `length`, or [`BODY_CAP`]. A read error ends
/// the body too: many TLS servers close without a close_notify, and what came is what counts.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    body: &mut Vec<u8>,
    length: Option<usize>,
) {
    let limit = length.unwrap_or(BODY_CAP).min(BODY_CAP);
    let mut chunk = [0u8; 4096];
    while body.len() < limit {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(limit);
}

/// The code of `HTTP/1.x NNN reason`.
fn parse_status(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

fn status_expected(expect: &[(u16, u16)], status: u16) -> bool {
    if expect.is_empty() {
        return (200..=399).contains(&status);
    }
    expect.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

/// The value of the header `name` (lower case) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn content_length(head: &str) -> Option<usize> {
    header(head, "content-length")?.parse().ok()
}

fn is_chunked(head: &str) -> bool {
    header(head, "transfer-encoding").is_some_and(|v| {
        v.to_ascii_lowercase()
            .split(',')
            .any(|c| c.trim() == "chunked")
    })
}

/// The data of a chunked body, as far as it goes: a cut or malformed chunk ends it.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_field = String::from_utf8_lossy(&rest[..eol]);
        let hex = size_field.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(hex, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        rest = &rest[eol + 2..];
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        if take < size || rest.len() < take + 2 {
            break;
        }
        rest = &rest[take + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status(b"HTTP/2 200 OK"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20 OK"), None);
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
    }

    #[test]
    fn expected_statuses() {
        assert!(status_expected(&[], 200));
        assert!(status_expected(&[], 399));
        assert!(!status_expected(&[], 404));
        assert!(status_expected(&[(404, 404)], 404));
        assert!(!status_expected(&[(200, 204)], 301));
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"hel");
        assert_eq!(dechunk(b"zz\r\nhello"), b"");
        assert_eq!(dechunk(b"ffffffffffffffff\r\nab"), b"ab");
    }

    #[test]
    fn headers() {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(content_length(head), Some(12));
        assert!(is_chunked(head));
        assert!(!is_chunked("HTTP/1.1 200 OK\r\n\r\n"));
    }

    #[test]
    fn host_headers() {
        assert_eq!(
            default_host("10.0.0.1:80".parse().expect("addr")),
            "10.0.0.1"
        );
        assert_eq!(
            default_host("10.0.0.1:8080".parse().expect("addr")),
            "10.0.0.1:8080"
        );
        assert_eq!(default_host("[::1]:443".parse().expect("addr")), "[::1]");
        assert_eq!(
            default_host("[::1]:8443".parse().expect("addr")),
            "[::1]:8443"
        );
    }
}
