//! The connection table (`-L -c`): the agent's entries as ipvsadm's `list_conn` prints them.
//!
//! ipvsadm reads `/proc/net/ip_vs_conn` line by line (`sscanf` into protocol, addresses, ports,
//! state, expiry and, when a persistence engine made the entry, its name and data) and prints
//! each row in `/proc` order with `"%-3s %-6s %-11s %-18s %-18s %s"` (expiry as `mm:ss`);
//! `--persistent-conn` adds the engine's columns to rows that have them. The agent reads the
//! same file on its node, so the rows come in the same order.

use std::fmt::Write;
use std::net::IpAddr;

use ipvs_proto::v1 as pb;
use serde::Serialize;

use super::format::addrport;
use super::resolve::{L4, Resolve};
use super::view::{ViewError, ip_from_pb};
use crate::durations;

/// One entry of the connection table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnView {
    /// As the kernel names it: `TCP`, `UDP`, `SCTP`, ...
    pub protocol: String,
    pub client_address: IpAddr,
    pub client_port: u16,
    pub virtual_address: IpAddr,
    pub virtual_port: u16,
    pub destination_address: IpAddr,
    pub destination_port: u16,
    /// As the kernel names it: `ESTABLISHED`, `TIME_WAIT`, `NONE`, ...
    pub state: String,
    pub expires_seconds: u32,
    /// Persistence engine name and data; null when no engine made the entry.
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}

fn port16(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(u16::MAX)
}

impl ConnView {
    pub fn from_pb(c: &pb::Connection) -> Result<Self, ViewError> {
        let addr = |a: &str| ip_from_pb(a)?.ok_or(ViewError::MissingAddress);
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(ConnView {
            protocol: c.protocol.clone(),
            client_address: addr(&c.client_address)?,
            client_port: port16(c.client_port),
            virtual_address: addr(&c.virtual_address)?,
            virtual_port: port16(c.virtual_port),
            destination_address: addr(&c.destination_address)?,
            destination_port: port16(c.destination_port),
            state: c.state.clone(),
            expires_seconds: durations::secs(c.expires.as_ref()),
            pe_name: text(&c.pe_name),
            pe_data: text(&c.pe_data),
        })
    }
}

/// The protocol whose service names apply, as ipvsadm's `print_conn` decides it.
fn l4(protocol: &str) -> Option<L4> {
    match protocol {
        "TCP" => Some(L4::Tcp),
        "UDP" => Some(L4::Udp),
        "SCTP" => Some(L4::Sctp),
        _ => None,
    }
}

/// The first blank-separated word of `s`, as `sscanf("%s")` reads it.
fn word(s: &str) -> &str {
    s.split_ascii_whitespace().next().unwrap_or_default()
}

/// ipvsadm's `list_conn`: the title, then one row per entry.
pub fn table(conns: &[ConnView], numeric: bool, persistent: bool, names: &dyn Resolve) -> String {
    // printf("pro expire %-11s %-18s %-18s %s\n", ...), with the engine's columns for
    // --persistent-conn.
    let mut out = String::from("IPVS connection entries\n");
    out.push_str(if persistent {
        "pro expire state       source             virtual            destination        pe name          pe_data\n"
    } else {
        "pro expire state       source             virtual            destination\n"
    });
    for c in conns {
        let proto = l4(&c.protocol);
        let cname = addrport(c.client_address, c.client_port, proto, numeric, names);
        let vname = addrport(c.virtual_address, c.virtual_port, proto, numeric, names);
        let dname = addrport(
            c.destination_address,
            c.destination_port,
            proto,
            numeric,
            names,
        );
        let expire = format!(
            "{:02}:{:02}",
            c.expires_seconds / 60,
            c.expires_seconds % 60
        );
        let protocol = word(&c.protocol);
        let state = word(&c.state);
        // sscanf fills all eleven fields only when the engine's name and data are both there.
        let engine = c
            .pe_name
            .as_deref()
            .map(word)
            .zip(c.pe_data.as_deref().map(word))
            .filter(|(n, d)| !n.is_empty() && !d.is_empty());
        match engine {
            Some((pe_name, pe_data)) if persistent => {
                let _ = writeln!(
                    out,
                    "{protocol:<3} {expire:<6} {state:<11} {cname:<18} {vname:<18} {dname:<16} {pe_name:<18} {pe_data}"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{protocol:<3} {expire:<6} {state:<11} {cname:<18} {vname:<18} {dname}"
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::resolve::test_names;

    fn v4(a: [u8; 4]) -> String {
        std::net::Ipv4Addr::from(a).to_string()
    }

    fn entry(protocol: &str, state: &str, expires: u32) -> pb::Connection {
        pb::Connection {
            protocol: protocol.into(),
            client_address: v4([127, 0, 0, 1]),
            client_port: 41000,
            virtual_address: v4([192, 168, 100, 1]),
            virtual_port: 80,
            destination_address: v4([127, 0, 0, 1]),
            destination_port: 8081,
            state: state.into(),
            expires: durations::from_secs(expires),
            ..Default::default()
        }
    }

    #[test]
    fn from_pb_needs_every_address() {
        let mut c = entry("TCP", "ESTABLISHED", 1);
        c.virtual_address = String::new();
        assert_eq!(ConnView::from_pb(&c), Err(ViewError::MissingAddress));
        c.virtual_address = "1.2".into();
        assert_eq!(
            ConnView::from_pb(&c),
            Err(ViewError::BadAddress("1.2".into()))
        );
    }

    #[test]
    fn rows_follow_print_conn() {
        // Each row as printf prints ipvsadm's "%-3s %-6s %-11s %-18s %-18s %s\n".
        let mut sip = entry("UDP", "UDP", 3599);
        sip.pe_name = "sip".into();
        sip.pe_data = "call-1@example".into();
        let mut v6 = entry("SCTP", "ESTABLISHED", 6000);
        v6.client_address = "2001:db8::10".into();
        v6.virtual_address = "2001:db8::1".into();
        v6.destination_address = v4([10, 0, 0, 2]);
        let conns: Vec<ConnView> = [entry("TCP", "TIME_WAIT", 65), sip, v6]
            .iter()
            .map(|c| ConnView::from_pb(c).expect("valid"))
            .collect();
        let names = test_names();
        assert_eq!(
            table(&conns, true, false, &names),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 01:05  TIME_WAIT   127.0.0.1:41000    192.168.100.1:80   127.0.0.1:8081\n\
             UDP 59:59  UDP         127.0.0.1:41000    192.168.100.1:80   127.0.0.1:8081\n\
             SCTP 100:00 ESTABLISHED [2001:db8::10]:41000 [2001:db8::1]:80   10.0.0.2:8081\n"
        );
        assert_eq!(
            table(&conns, true, true, &names),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination        pe name          pe_data\n\
             TCP 01:05  TIME_WAIT   127.0.0.1:41000    192.168.100.1:80   127.0.0.1:8081\n\
             UDP 59:59  UDP         127.0.0.1:41000    192.168.100.1:80   127.0.0.1:8081   sip                call-1@example\n\
             SCTP 100:00 ESTABLISHED [2001:db8::10]:41000 [2001:db8::1]:80   10.0.0.2:8081\n"
        );
        // Without -n: names for known hosts and for services of the entry's protocol.
        assert_eq!(
            table(&conns[..1], false, false, &names)
                .lines()
                .nth(2)
                .unwrap_or_default(),
            "TCP 01:05  TIME_WAIT   localhost:41000    192.168.100.1:http localhost:tproxy"
        );
    }
}
