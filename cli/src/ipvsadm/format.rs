//! ipvsadm's text output, byte for byte: `-L` in all its views and `-S`.
//!
//! Every line is built with the printf formats of ipvsadm 1.31's `print_title`,
//! `print_service_entry` and `print_largenum`, including their quirks: an IPv4 service name is
//! cut at 33 bytes and a real server's at 28, an address:port never exceeds 59 bytes, the
//! plain view pads its last column (so lines end in spaces), and the rate view prints a real
//! server's connection and packet rates without K/M/G/T.

use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};

use super::command::{ListFormat, ListView};
use super::resolve::{L4, Resolve};
use super::view::{Checksum, DestView, Family, Forwarding, Info, ServiceView, TunnelKind};

/// ipvsadm's `print_largenum`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        return format!("{i:>width$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1_000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// glibc's `inet_ntop(AF_INET6)`: like RFC 5952, and IPv4-compatible (`::a.b.c.d`) and
/// IPv4-mapped (`::ffff:a.b.c.d`) addresses end in dotted quads.
pub fn inet_ntop6(a: Ipv6Addr) -> String {
    let w = a.segments();
    let (mut best_base, mut best_len) = (None::<usize>, 0);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            let len = i - start;
            if len >= 2 && len > best_len {
                best_base = Some(start);
                best_len = len;
            }
        } else {
            i += 1;
        }
    }
    let in_best = |i: usize| best_base.is_some_and(|b| i >= b && i < b + best_len);
    let mut out = String::new();
    for i in 0..8 {
        if in_best(i) {
            if best_base == Some(i) {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == Some(0) && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let o = a.octets();
            let _ = write!(out, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            break;
        }
        let _ = write!(out, "{:x}", w[i]);
    }
    if best_base.is_some_and(|b| b + best_len == 8) {
        out.push(':');
    }
    out
}

fn ntop(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => inet_ntop6(a),
    }
}

/// Cuts `s` to at most `max` bytes, as writing a NUL into a C buffer does.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// ipvsadm's `addrport_to_anyname`: `host:port`, `[v6]:port`, names unless `numeric`.
fn addrport(
    addr: IpAddr,
    port: u16,
    proto: Option<L4>,
    numeric: bool,
    names: &dyn Resolve,
) -> String {
    let (open, close) = if addr.is_ipv6() { ("[", "]") } else { ("", "") };
    let s = if numeric {
        format!("{open}{}{close}:{port}", ntop(addr))
    } else {
        let host = names.addr_to_host(addr).unwrap_or_else(|| ntop(addr));
        let service = proto
            .and_then(|p| names.port_to_service(port, p))
            .unwrap_or_else(|| port.to_string());
        format!("{open}{host}{close}:{service}")
    };
    // snprintf into a 60-byte buffer.
    cut(s, 59)
}

fn protocol_name(p: Option<L4>) -> &'static str {
    match p {
        Some(L4::Tcp) => "TCP",
        Some(L4::Udp) => "UDP",
        Some(L4::Sctp) => "SCTP",
        None => "?",
    }
}

fn fwd_name(f: Forwarding) -> &'static str {
    match f {
        Forwarding::Masq => "Masq",
        Forwarding::Local => "Local",
        Forwarding::Tunnel => "Tunnel",
        Forwarding::Route => "Route",
        // printf("%s", NULL) in glibc.
        Forwarding::Unknown => "(null)",
    }
}

fn fwd_switch(f: Forwarding) -> &'static str {
    match f {
        Forwarding::Masq => "-m",
        Forwarding::Tunnel => "-i",
        Forwarding::Local | Forwarding::Route => "-g",
        Forwarding::Unknown => "(null)",
    }
}

fn checksum_flag(c: Checksum) -> &'static str {
    match c {
        Checksum::None => "-c",
        Checksum::Csum => "+c",
        Checksum::Remcsum => "r+c",
    }
}

fn checksum_option(c: Checksum) -> &'static str {
    match c {
        Checksum::None => "--tun-nocsum",
        Checksum::Csum => "--tun-csum",
        Checksum::Remcsum => "--tun-remcsum",
    }
}

fn tunnel_name(k: TunnelKind) -> &'static str {
    match k {
        TunnelKind::Ipip => "ipip",
        TunnelKind::Gue => "gue",
        TunnelKind::Gre => "gre",
    }
}

/// ipvsadm's `fwd_tun_info` (`gue:6080:+c`, `gre:-c`, `ipip`), `None` for non-tunnel servers.
fn tun_info(d: &DestView) -> Option<String> {
    let t = d.tunnel.filter(|_| d.forwarding == Forwarding::Tunnel)?;
    let s = match t.kind {
        TunnelKind::Ipip => "ipip".to_string(),
        TunnelKind::Gue => format!("gue:{}:{}", t.port.unwrap_or(0), checksum_flag(t.checksum)),
        TunnelKind::Gre => format!("gre:{}", checksum_flag(t.checksum)),
    };
    Some(cut(s, 15))
}

/// The first line of `-L`: `IP Virtual Server version 1.2.1 (size=4096)`.
pub fn header(info: &Info) -> String {
    format!(
        "IP Virtual Server version {} (size={})\n",
        info.version, info.connection_table_size
    )
}

/// ipvsadm's `print_title`.
pub fn title(view: ListView) -> String {
    const PROT: &str = "Prot LocalAddress:Port";
    const REMOTE: &str = "  -> RemoteAddress:Port";
    match view {
        ListView::Stats => format!(
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        ListView::Rate => format!(
            "{PROT:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        ListView::Thresholds => format!(
            "{PROT:<33} {:<10} {:<10} {:<10} {:<10}\n{REMOTE}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        ListView::PersistentConn => format!(
            "{PROT:<33} {:<9} {:<11} {:<10} {:<10}\n{REMOTE}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        ListView::TunInfo => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string(),
        ListView::Plain => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string(),
    }
}

/// The service's name in tables (`TCP  vip:port`, `FWM  7 IPv6`) or in rules (`-t vip:port`).
fn service_name(s: &ServiceView, rule: bool, numeric: bool, names: &dyn Resolve) -> String {
    // ipvsadm 1.31 prints the mark with %d.
    let mark = |m: u32| m as i32;
    match (s.fwmark, s.address) {
        (Some(m), _) => match (rule, s.family) {
            (true, Family::Inet6) => format!("-f {} -6", mark(m)),
            (true, Family::Inet) => format!("-f {}", mark(m)),
            (false, Family::Inet6) => format!("FWM  {} IPv6", mark(m)),
            (false, Family::Inet) => format!("FWM  {}", mark(m)),
        },
        (None, Some(addr)) => {
            let vname = addrport(addr, s.port.unwrap_or(0), s.protocol, numeric, names);
            if rule {
                let opt = match s.protocol {
                    Some(L4::Tcp) => "-t",
                    Some(L4::Udp) => "-u",
                    Some(L4::Sctp) => "--sctp-service",
                    None => "--xxx-service",
                };
                format!("{opt} {vname}")
            } else {
                let name = format!("{:<4} {vname}", protocol_name(s.protocol));
                if s.family == Family::Inet6 {
                    name
                } else {
                    cut(name, 33)
                }
            }
        }
        (None, None) => String::new(),
    }
}

fn dest_name(
    s: &ServiceView,
    d: &DestView,
    rule: bool,
    numeric: bool,
    names: &dyn Resolve,
) -> String {
    let name = addrport(d.address, d.port, s.protocol, numeric, names);
    if rule || d.address.is_ipv6() {
        name
    } else {
        cut(name, 28)
    }
}

/// One service and its real servers in a `-L` table (ipvsadm's `print_service_entry`).
pub fn service_entry(s: &ServiceView, format: ListFormat, names: &dyn Resolve) -> String {
    let numeric = format.numeric;
    let svc_name = service_name(s, false, numeric, names);
    let mut out = String::new();
    let nums = |out: &mut String, v: [u64; 5]| {
        for n in v {
            out.push_str(&largenum(n, format.exact));
        }
    };
    match format.view {
        ListView::Stats => {
            let _ = write!(out, "{svc_name:<33}");
            let c = s.stats;
            nums(
                &mut out,
                [
                    c.connections,
                    c.in_packets,
                    c.out_packets,
                    c.in_bytes,
                    c.out_bytes,
                ],
            );
        }
        ListView::Rate => {
            let _ = write!(out, "{svc_name:<33}");
            let r = s.rates;
            nums(
                &mut out,
                [
                    r.connections,
                    r.in_packets,
                    r.out_packets,
                    r.in_bytes,
                    r.out_bytes,
                ],
            );
        }
        _ => {
            let _ = write!(out, "{svc_name} {}", s.scheduler);
            if !s.sched_flags.is_empty() {
                let _ = write!(out, " ({})", s.sched_flags.join(","));
            }
            if let Some(timeout) = s.persistent {
                let _ = write!(out, " persistent {timeout}");
                if let Some(mask) = &s.netmask {
                    let _ = write!(out, " mask {mask}");
                }
                if let Some(pe) = &s.persistence_engine {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if s.one_packet {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');
    for d in &s.destinations {
        let dname = dest_name(s, d, false, numeric, names);
        match format.view {
            ListView::Stats => {
                let _ = write!(out, "  -> {dname:<28}");
                let c = d.stats;
                nums(
                    &mut out,
                    [
                        c.connections,
                        c.in_packets,
                        c.out_packets,
                        c.in_bytes,
                        c.out_bytes,
                    ],
                );
                out.push('\n');
            }
            ListView::Rate => {
                let r = d.rates;
                let _ = write!(
                    out,
                    "  -> {dname:<28} {:>8} {:>8} {:>8}",
                    r.connections, r.in_packets, r.out_packets
                );
                out.push_str(&largenum(r.in_bytes, format.exact));
                out.push_str(&largenum(r.out_bytes, format.exact));
                out.push('\n');
            }
            ListView::Thresholds => {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                    d.upper_threshold,
                    d.lower_threshold,
                    d.active_connections,
                    d.inactive_connections
                );
            }
            ListView::PersistentConn => {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                    d.weight,
                    d.persistent_connections,
                    d.active_connections,
                    d.inactive_connections
                );
            }
            ListView::TunInfo => {
                let info = tun_info(d).unwrap_or_else(|| "n/a".to_string());
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<7} {info:<13} {:<6} {:<10} {:<10}",
                    fwd_name(d.forwarding),
                    d.weight as i32,
                    d.active_connections,
                    d.inactive_connections
                );
            }
            ListView::Plain => {
                let _ = writeln!(
                    out,
                    "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                    fwd_name(d.forwarding),
                    d.weight as i32,
                    d.active_connections,
                    d.inactive_connections
                );
            }
        }
    }
    out
}

/// `-L`: the header when listing the whole table, the title, then every service.
pub fn table(
    info: Option<&Info>,
    services: &[ServiceView],
    format: ListFormat,
    names: &dyn Resolve,
) -> String {
    let mut out = String::new();
    if let Some(info) = info {
        out.push_str(&header(info));
    }
    out.push_str(&title(format.view));
    for s in services {
        out.push_str(&service_entry(s, format, names));
    }
    out
}

/// `-S`: the table as ipvsadm commands.
pub fn rules(services: &[ServiceView], numeric: bool, names: &dyn Resolve) -> String {
    let mut out = String::new();
    for s in services {
        let svc_name = service_name(s, true, numeric, names);
        let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
        if let Some(timeout) = s.persistent {
            let _ = write!(out, " -p {timeout}");
            if let Some(mask) = &s.netmask {
                let _ = write!(out, " -M {mask}");
            }
        }
        if let Some(pe) = &s.persistence_engine {
            let _ = write!(out, " --pe {pe}");
        }
        if s.one_packet {
            out.push_str(" -o");
        }
        if !s.sched_flags.is_empty() {
            let _ = write!(out, " -b {}", s.sched_flags.join(","));
        }
        out.push('\n');
        for d in &s.destinations {
            let dname = dest_name(s, d, true, numeric, names);
            let base = format!(
                "-a {svc_name} -r {dname} {} -w {}",
                fwd_switch(d.forwarding),
                d.weight as i32
            );
            match d.tunnel.filter(|_| d.forwarding == Forwarding::Tunnel) {
                Some(t) => {
                    let _ = match t.kind {
                        TunnelKind::Gre => {
                            writeln!(out, "{base} --tun-type gre {}", checksum_option(t.checksum))
                        }
                        TunnelKind::Gue => writeln!(
                            out,
                            "{base} --tun-type gue --tun-port {} {}",
                            t.port.unwrap_or(0),
                            checksum_option(t.checksum)
                        ),
                        TunnelKind::Ipip => {
                            writeln!(out, "{base} --tun-type {}", tunnel_name(t.kind))
                        }
                    };
                }
                None => {
                    let _ = writeln!(out, "{base}");
                }
            }
        }
    }
    out
}
