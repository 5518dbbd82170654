//! One probe of one server: what it found, why, and how long it took.
//!
//! Each kind has its module; this one dispatches, bounds every probe by its timeout as a whole
//! (connect, handshake, request and response together) and measures the latency. A probe that
//! times out is dropped where it stands: its sockets close with it, and the only tasks spawned
//! (tonic's, for a gRPC channel) end when that channel is dropped. The exec probe kills and
//! reaps its process group itself (module `exec`).

mod dns;
mod exec;
mod grpc;
mod http;
mod tcp;
mod tls;
mod udp;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::check::Kind;

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Up,
    Down,
    /// Up, asking for this weight (an exec check's exit code 2..=255, minus 2).
    Weight(u32),
}

impl Outcome {
    pub fn is_up(self) -> bool {
        !matches!(self, Outcome::Down)
    }
}

/// A probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    /// One short phrase: `http 200`, `http 503`, `connect refused`, `timeout after 2s`.
    pub reason: String,
    /// From the start of the probe to its verdict.
    pub latency: Duration,
}

/// Runs probes; shared by every check of a node.
///
/// It holds what is worth building once rather than per probe: TLS client configurations
/// (root store parsing is not free) and compiled body regexes, plus the permits that cap how
/// many exec checks run at once.
#[derive(Debug)]
pub struct Prober {
    exec_permits: Semaphore,
    tls: tls::Configs,
    regexes: Mutex<HashMap<String, Arc<regex::bytes::Regex>>>,
}

/// Compiled regexes kept at most; past this the cache starts over. Patterns come from
/// declarations, so this is only a bound against a declaration churning through patterns.
const REGEX_CACHE_MAX: usize = 1024;

impl Prober {
    /// At most `exec_concurrency` exec checks run at once.
    pub fn new(exec_concurrency: usize) -> Self {
        Prober {
            exec_permits: Semaphore::new(exec_concurrency),
            tls: tls::Configs::default(),
            regexes: Mutex::new(HashMap::new()),
        }
    }

    /// Probes `target` as `kind` says, within `timeout`.
    pub async fn probe(&self, kind: &Kind, target: SocketAddr, timeout: Duration) -> ProbeResult {
        let start = Instant::now();
        let deadline = start + timeout;
        let verdict = match kind {
            // Bounds itself so that, at the deadline, it can kill and reap before returning;
            // the outer bound only guards against a child the kernel will not let die.
            Kind::Exec(e) => {
                let probe = exec::probe(&self.exec_permits, e, target, deadline, timeout);
                tokio::time::timeout_at(deadline + exec::REAP_GRACE, probe)
                    .await
                    .unwrap_or_else(|_| Verdict::down(timeout_reason(timeout)))
            }
            _ => tokio::time::timeout_at(deadline, self.probe_net(kind, target, timeout))
                .await
                .unwrap_or_else(|_| Verdict::down(elapsed_reason(kind, timeout))),
        };
        ProbeResult {
            outcome: verdict.outcome,
            reason: verdict.reason,
            latency: start.elapsed(),
        }
    }

    /// The network probes: unbounded here, bounded by the caller.
    async fn probe_net(&self, kind: &Kind, target: SocketAddr, timeout: Duration) -> Verdict {
        match kind {
            Kind::Tcp => tcp::probe(target).await,
            Kind::Http(h) => http::probe(self, h, target).await,
            Kind::Udp(u) => udp::probe(u, target, timeout).await,
            Kind::Dns(d) => dns::probe(d, target).await,
            Kind::Grpc(g) => grpc::probe(&self.tls, g, target).await,
            Kind::Exec(_) => Verdict::down("exec probe outside its runner".to_owned()),
        }
    }

    /// The compiled body regex for `pattern`, compiled on first use.
    fn regex(&self, pattern: &str) -> Result<Arc<regex::bytes::Regex>, regex::Error> {
        let mut cache = self.regexes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(re) = cache.get(pattern) {
            return Ok(re.clone());
        }
        let re = Arc::new(regex::bytes::Regex::new(pattern)?);
        if cache.len() >= REGEX_CACHE_MAX {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re.clone());
        Ok(re)
    }
}

/// A verdict without its latency: what each kind's module returns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    outcome: Outcome,
    reason: String,
}

impl Verdict {
    fn up(reason: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::Up,
            reason: reason.into(),
        }
    }

    fn down(reason: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::Down,
            reason: reason.into(),
        }
    }
}

/// Why a network probe that ran out of time is down. A UDP check waiting for a reply says so,
/// since for UDP silence is the usual failure rather than a stall.
fn elapsed_reason(kind: &Kind, timeout: Duration) -> String {
    match kind {
        Kind::Udp(u) if u.expect.is_some() => format!("no reply within {}", human(timeout)),
        _ => timeout_reason(timeout),
    }
}

fn timeout_reason(timeout: Duration) -> String {
    format!("timeout after {}", human(timeout))
}

/// A duration as an operator writes it: `2s`, `500ms`, `1.5s`, `250us`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) && ms < 1000 {
        format!("{ms}ms")
    } else if ms >= 1000 {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{}us", d.as_micros())
    }
}

/// A TCP connection to `target` that closes with a reset (`SO_LINGER` 0), as HAProxy's checks
/// do: a probe has nothing left to say when it drops the connection, and an orderly close
/// would leave a `TIME_WAIT` socket on the node for each probe, 60 s each: 600,000 of them at
/// 10,000 probes a second, more than the kernel keeps (`tcp_max_tw_buckets`), and every
/// connect has to search past them for a free port. A server sees the reset of a client that
/// went away, as it does from any client that aborts.
async fn connect(target: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_zero_linger()?;
    socket.connect(target).await
}

/// An I/O error in the words of a probe reason: the two everybody knows by name, else the
/// error kind (`connection reset`, `network unreachable`...).
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect refused".to_owned(),
        io::ErrorKind::HostUnreachable => "no route to host".to_owned(),
        kind => kind.to_string(),
    }
}

/// Whether `needle` occurs in `haystack`; the empty needle occurs everywhere.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
