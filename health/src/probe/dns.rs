//! `dns`: one query over UDP, built and parsed here. A health check asks one question of one
//! server and reads a handful of fields back; a resolver library would bring its own caching,
//! retries and timeouts, all of which would have to be turned off.
//!
//! The reply comes from a server being checked, so it is parsed as hostile: every read is
//! bounds-checked, and names are skipped without following compression pointers (a pointer
//! ends a name in place), so a pointer loop cannot loop. A reply with the wrong id or no QR bit
//! is reported at once rather than waited past: the socket is connected, only the target can
//! send to it. A truncated (TC) reply is judged on the records it holds.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::udp::{connect, udp_reason};
use super::{Verdict, io_reason};
use crate::check::{Dns, DnsType};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// The largest reply a UDP socket can hand us.
const MAX_REPLY: usize = 65_535;

pub(super) async fn probe(d: &Dns, target: SocketAddr) -> Verdict {
    let id = fastrand::u16(..);
    let query = match query(id, &d.name, d.qtype) {
        Ok(q) => q,
        Err(e) => return Verdict::down(format!("dns {e}")),
    };
    let socket = match connect(target).await {
        Ok(s) => s,
        Err(e) => return Verdict::down(io_reason(&e)),
    };
    if let Err(e) = socket.send(&query).await {
        return Verdict::down(udp_reason(&e));
    }
    let mut buf = vec![0u8; MAX_REPLY];
    let n = match socket.recv(&mut buf).await {
        Ok(n) => n,
        Err(e) => return Verdict::down(udp_reason(&e)),
    };
    judge(&buf[..n], id, d)
}

fn judge(reply: &[u8], id: u16, d: &Dns) -> Verdict {
    // The id first: a reply to another query is that, whatever else it holds.
    if reply.len() >= 2 && reply[..2] != id.to_be_bytes() {
        return Verdict::down("dns reply id mismatch");
    }
    let reply = match parse(reply, d.qtype) {
        Ok(r) => r,
        Err(e) => return Verdict::down(format!("dns malformed reply: {e}")),
    };
    if reply.id != id {
        return Verdict::down("dns reply id mismatch");
    }
    if !reply.is_response {
        return Verdict::down("dns reply is not a response");
    }
    if reply.rcode != 0 {
        return Verdict::down(format!("dns {}", rcode_name(reply.rcode)));
    }
    let Some(first) = reply.addrs.first() else {
        return Verdict::down(format!("dns no {} record", type_name(d.qtype)));
    };
    if d.expect.is_empty() {
        return Verdict::up(format!("dns answer {first}"));
    }
    match reply.addrs.iter().find(|a| d.expect.contains(a)) {
        Some(a) => Verdict::up(format!("dns answer {a}")),
        None => {
            let all: Vec<String> = reply.addrs.iter().map(IpAddr::to_string).collect();
            Verdict::down(format!("dns answer {} not expected", all.join(", ")))
        }
    }
}

fn type_name(t: DnsType) -> &'static str {
    match t {
        DnsType::A => "A",
        DnsType::Aaaa => "AAAA",
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        n => format!("RCODE {n}"),
    }
}

/// Why a name cannot be asked about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NameError {
    #[error("empty label in name {0:?}")]
    EmptyLabel(String),
    #[error("label longer than 63 bytes in name {0:?}")]
    LongLabel(String),
    #[error("name longer than 255 bytes: {0:?}")]
    LongName(String),
}

/// A standard query: `id`, RD set, one question for `name` of type `qtype`, class IN.
pub(super) fn query(id: u16, name: &str, qtype: DnsType) -> Result<Vec<u8>, NameError> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let qname_start = q.len();
    // The root alone ("." or "") is one empty name, not an empty label.
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            match label.len() {
                0 => return Err(NameError::EmptyLabel(name.to_owned())),
                1..=63 => {}
                _ => return Err(NameError::LongLabel(name.to_owned())),
            }
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    if q.len() - qname_start > 255 {
        return Err(NameError::LongName(name.to_owned()));
    }
    let qtype = match qtype {
        DnsType::A => TYPE_A,
        DnsType::Aaaa => TYPE_AAAA,
    };
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// What a probe needs of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    pub id: u16,
    pub is_response: bool,
    pub rcode: u8,
    /// The addresses of the answer records of the asked type, class IN.
    pub addrs: Vec<IpAddr>,
}

/// Where a reply stops making sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParseError {
    Truncated,
    BadLabel,
    BadRdLength,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Truncated => "truncated",
            ParseError::BadLabel => "bad label",
            ParseError::BadRdLength => "bad address length",
        })
    }
}

/// A bounds-checked reader over a reply.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(ParseError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Steps over a name: labels up to the root label, or up to a compression pointer, which
    /// ends the name where it stands. Never follows the pointer, so never loops; each step
    /// moves forward.
    fn skip_name(&mut self) -> Result<(), ParseError> {
        loop {
            let len = self.u8()?;
            match len & 0xC0 {
                0xC0 => {
                    self.take(1)?;
                    return Ok(());
                }
                0x00 if len == 0 => return Ok(()),
                0x00 => {
                    self.take(usize::from(len))?;
                }
                // 0x40 and 0x80: extended label types, obsolete and not for us.
                _ => return Err(ParseError::BadLabel),
            }
        }
    }
}

/// Parses the header and the answer section of `reply`, keeping the `qtype` addresses. Total:
/// any input gives `Ok` or `Err`, in time linear in its length.
pub(super) fn parse(reply: &[u8], qtype: DnsType) -> Result<Reply, ParseError> {
    let mut c = Cursor { buf: reply, pos: 0 };
    let id = c.u16()?;
    let flags = c.u16()?;
    let qdcount = c.u16()?;
    let ancount = c.u16()?;
    c.take(4)?; // NSCOUNT, ARCOUNT: not needed.
    let is_response = flags & 0x8000 != 0;
    let rcode = (flags & 0x000F) as u8;
    let mut addrs = Vec::new();
    // An error reply may stop after the header; its rcode says all.
    if rcode != 0 {
        return Ok(Reply {
            id,
            is_response,
            rcode,
            addrs,
        });
    }
    for _ in 0..qdcount {
        c.skip_name()?;
        c.take(4)?; // QTYPE, QCLASS
    }
    let want = match qtype {
        DnsType::A => TYPE_A,
        DnsType::Aaaa => TYPE_AAAA,
    };
    for _ in 0..ancount {
        c.skip_name()?;
        let rtype = c.u16()?;
        let class = c.u16()?;
        c.take(4)?; // TTL
        let rdlength = usize::from(c.u16()?);
        let rdata = c.take(rdlength)?;
        if rtype != want || class != CLASS_IN {
            continue; // CNAMEs on the way, and anything else.
        }
        let addr = match (qtype, rdata.len()) {
            (DnsType::A, 4) => IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            (DnsType::Aaaa, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => return Err(ParseError::BadRdLength),
        };
        addrs.push(addr);
    }
    Ok(Reply {
        id,
        is_response,
        rcode,
        addrs,
    })
}

#[cfg(test)]
mod tests;
