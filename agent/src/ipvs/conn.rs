//! The kernel's connection table as `/proc/net/ip_vs_conn` shows it (`ip_vs_conn_seq_show` in
//! `net/netfilter/ipvs/ip_vs_conn.c`); netlink has no command for it. Pure: parse only.
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP C0A86401 9792 C0A86401 0050 7F000001 1F91 TIME_WAIT       117
//! ```
//!
//! Each line is `"%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s"`: protocol, client, virtual
//! and real address and port, state, seconds to expiry, then `" <pe name> <pe data>"` when a
//! persistence engine made the entry. IPv4 addresses are 8 hex digits in host order; IPv6
//! ones are `%pI6`, eight groups of four hex digits. The real server's column follows the real
//! server's own family, which can differ from the connection's (tunnels to the other family).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where the agent reads its own network namespace's table.
pub const CONN_TABLE: &str = "/proc/self/net/ip_vs_conn";

/// The header line's start.
const HEADER: &str = "Pro FromIP";

/// One entry of the connection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// As the kernel names it: `TCP`, `UDP`, `SCTP`, `IP` (fwmark templates), `IP_<n>`.
    pub protocol: String,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub dest: SocketAddr,
    /// As the kernel names it: `ESTABLISHED`, `TIME_WAIT`, `NONE`, `UDP`, ...
    pub state: String,
    /// Seconds until the entry expires.
    pub expires: u32,
    /// The persistence engine that made the entry, with its data (a SIP Call-ID).
    pub pe: Option<PeData>,
}

/// A persistence engine's part of a connection entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeData {
    pub name: String,
    pub data: String,
}

/// A line the parser does not understand; the format changed or the file is not the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the connection table: {problem}: {text:?}")]
pub struct ConnTableError {
    /// 1-based, counting the header.
    pub line: usize,
    pub problem: String,
    pub text: String,
}

/// Every entry of a table read from the file.
pub fn parse_table(text: &str) -> Result<Vec<Connection>, ConnTableError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with(HEADER))
        .map(|(i, l)| {
            parse_line(l).map_err(|problem| ConnTableError {
                line: i + 1,
                problem,
                text: l.to_owned(),
            })
        })
        .collect()
}

/// One entry line.
pub fn parse_line(line: &str) -> Result<Connection, String> {
    let mut fields = Fields(line);
    let mut field = |name| fields.next(name);
    let protocol = field("protocol")?.to_owned();
    let client = endpoint(field("client address")?, field("client port")?)?;
    let vip = endpoint(field("virtual address")?, field("virtual port")?)?;
    let dest = endpoint(field("real server address")?, field("real server port")?)?;
    let state = field("state")?.to_owned();
    let expires = field("expiry")?;
    let expires = expires
        .parse()
        .map_err(|_| format!("expiry {expires:?} is not a number of seconds"))?;
    // One space separates the engine's name from its data, which is shown verbatim.
    let pe = token(fields.0).map(|(name, tail)| PeData {
        name: name.to_owned(),
        data: tail.strip_prefix(' ').unwrap_or(tail).to_owned(),
    });
    Ok(Connection {
        protocol,
        client,
        vip,
        dest,
        state,
        expires,
        pe,
    })
}

/// The fields of a line not read yet.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    fn next(&mut self, name: &str) -> Result<&'a str, String> {
        let (token, tail) = token(self.0).ok_or_else(|| format!("no {name}"))?;
        self.0 = tail;
        Ok(token)
    }
}

/// The next space-separated token and what follows it (starting with its separator).
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(s.split_at(s.find(' ').unwrap_or(s.len())))
}

fn endpoint(addr: &str, port: &str) -> Result<SocketAddr, String> {
    Ok(SocketAddr::new(address(addr)?, hex_port(port)?))
}

/// `%08X` of a host-order IPv4 address, or `%pI6`.
fn address(s: &str) -> Result<IpAddr, String> {
    let bad = || format!("address {s:?} is neither 8 hex digits nor IPv6");
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad());
    }
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u32::from_str_radix(s, 16)
        .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        .map_err(|_| bad())
}

/// `%04X` of a port.
fn hex_port(s: &str) -> Result<u16, String> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("port {s:?} is not 4 hex digits"));
    }
    u16::from_str_radix(s, 16).map_err(|_| format!("port {s:?} is not 4 hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test socket address")
    }

    fn conn(
        protocol: &str,
        [client, vip, dest]: [&str; 3],
        state: &str,
        expires: u32,
    ) -> Connection {
        Connection {
            protocol: protocol.into(),
            client: sa(client),
            vip: sa(vip),
            dest: sa(dest),
            state: state.into(),
            expires,
            pe: None,
        }
    }

    /// Lines as `ip_vs_conn_seq_show` prints them: read from Linux 6.1, or written with its
    /// format strings for the cases the lab does not produce.
    #[test]
    fn lines() {
        let sip = Connection {
            pe: Some(PeData {
                name: "sip".into(),
                data: "a84b4c76e66710@pc33.example.com".into(),
            }),
            ..conn(
                "UDP",
                ["10.0.0.9:5060", "10.0.0.1:5060", "10.0.1.1:5060"],
                "UDP",
                179,
            )
        };
        let cases: Vec<(&str, Connection)> = vec![
            // Read in the lab VM after HTTP requests to a NAT service on a local VIP.
            (
                "TCP C0A86401 9792 C0A86401 0050 7F000001 1F91 TIME_WAIT       117",
                conn(
                    "TCP",
                    ["192.168.100.1:38802", "192.168.100.1:80", "127.0.0.1:8081"],
                    "TIME_WAIT",
                    117,
                ),
            ),
            (
                "TCP C0A86402 BB9C C0A86402 0050 7F000001 1F92 TIME_WAIT       117",
                conn(
                    "TCP",
                    ["192.168.100.2:48028", "192.168.100.2:80", "127.0.0.1:8082"],
                    "TIME_WAIT",
                    117,
                ),
            ),
            (
                "TCP 0A000009 A000 0A000001 0050 0A000101 0050 ESTABLISHED     899",
                conn(
                    "TCP",
                    ["10.0.0.9:40960", "10.0.0.1:80", "10.0.1.1:80"],
                    "ESTABLISHED",
                    899,
                ),
            ),
            (
                "SCTP 0A000009 A000 0A000001 0050 0A000101 0050 ESTABLISHED 3599",
                conn(
                    "SCTP",
                    ["10.0.0.9:40960", "10.0.0.1:80", "10.0.1.1:80"],
                    "ESTABLISHED",
                    3599,
                ),
            ),
            // A persistence template of a fwmark service: protocol 0, ports 0.
            (
                "IP  0A000009 0000 00000001 0000 0A000101 0000 NONE            299",
                conn("IP", ["10.0.0.9:0", "0.0.0.1:0", "10.0.1.1:0"], "NONE", 299),
            ),
            (
                "TCP 2001:0db8:0000:0000:0000:0000:0000:0009 C350 \
                 2001:0db8:0000:0000:0000:0000:0000:0001 01BB \
                 2001:0db8:0000:0000:0000:0000:0001:0001 01BB SYN_RECV         59",
                conn(
                    "TCP",
                    [
                        "[2001:db8::9]:50000",
                        "[2001:db8::1]:443",
                        "[2001:db8::1:1]:443",
                    ],
                    "SYN_RECV",
                    59,
                ),
            ),
            // An IPv4 connection tunnelled to an IPv6 real server.
            (
                "TCP 0A000009 A000 0A000001 0050 2001:0db8:0000:0000:0000:0000:0001:0001 0050 \
                 ESTABLISHED     899",
                conn(
                    "TCP",
                    ["10.0.0.9:40960", "10.0.0.1:80", "[2001:db8::1:1]:80"],
                    "ESTABLISHED",
                    899,
                ),
            ),
            (
                "UDP 0A000009 13C4 0A000001 13C4 0A000101 13C4 UDP             179 sip \
                 a84b4c76e66710@pc33.example.com",
                sip,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), Ok(want), "{line}");
        }
    }

    #[test]
    fn bad_lines_name_the_field() {
        let cases = [
            ("TCP", "no client address"),
            ("TCP 0A000009", "no client port"),
            (
                "TCP 0A00009 A000 0A000001 0050 0A000101 0050 NONE 1",
                "address \"0A00009\" is neither 8 hex digits nor IPv6",
            ),
            (
                "TCP 0A000009 A000 0A000001 0050 2001:zz::1 0050 NONE 1",
                "address \"2001:zz::1\" is neither 8 hex digits nor IPv6",
            ),
            (
                "TCP 0A000009 1A000 0A000001 0050 0A000101 0050 NONE 1",
                "port \"1A000\" is not 4 hex digits",
            ),
            (
                "TCP 0A000009 A000 0A000001 0050 0A000101 0050 NONE",
                "no expiry",
            ),
            (
                "TCP 0A000009 A000 0A000001 0050 0A000101 0050 NONE -1",
                "expiry \"-1\" is not a number of seconds",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), Err(want.to_owned()), "{line}");
        }
    }

    #[test]
    fn table_skips_the_header_and_counts_lines() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
                    TCP 0A000009 A000 0A000001 0050 0A000101 0050 ESTABLISHED     899\n\
                    TCP 0A000009 A001 0A000001 0050 0A000102 0050 CLOSE            9\n";
        let table = parse_table(text).expect("table");
        assert_eq!(
            table
                .iter()
                .map(|c| (c.dest, c.state.as_str(), c.expires))
                .collect::<Vec<_>>(),
            vec![
                (sa("10.0.1.1:80"), "ESTABLISHED", 899),
                (sa("10.0.1.2:80"), "CLOSE", 9)
            ]
        );
        let header = text.lines().next().unwrap_or_default();
        assert_eq!(parse_table(header), Ok(vec![]), "header only");
        let bad = format!("{text}UDP 0A000009\n");
        assert_eq!(
            parse_table(&bad).map_err(|e| e.to_string()),
            Err("line 4 of the connection table: no client port: \"UDP 0A000009\"".to_owned())
        );
    }
}
