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
pub fn addrport(
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::ipvsadm::resolve::{FixedNames, NoNames, Services};
    use crate::ipvsadm::view::{Counters, Rates, TunnelView};

    #[test]
    fn largenum_follows_print_largenum() {
        // The non-exact strings were printed by ipvsadm's printf formats.
        let cases: &[(u64, bool, &str)] = &[
            (0, false, "        0"),
            (99_999_999, false, " 99999999"),
            (100_000_000, false, "  100000K"),
            (999_999_999, false, "  999999K"),
            (1_000_000_000, false, "    1000M"),
            (99_999_999_999, false, "   99999M"),
            (100_000_000_000, false, "     100G"),
            (99_999_999_999_999, false, "   99999G"),
            (100_000_000_000_000, false, "     100T"),
            (u64::MAX, false, "18446744T"),
            (12_345_678, true, " 12345678"),
            (123_456_789, true, " 123456789"),
            (u64::MAX, true, " 18446744073709551615"),
        ];
        for (n, exact, want) in cases {
            assert_eq!(largenum(*n, *exact), *want, "{n} exact={exact}");
        }
    }

    #[test]
    fn inet_ntop6_matches_glibc() {
        // Each pair was printed by glibc 2.36's inet_ntop.
        let cases: &[(&str, &str)] = &[
            ("::1", "::1"),
            ("::", "::"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::2", "::2"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("fe80::1:0:0:1", "fe80::1:0:0:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("0:0:0:0:0:1:1.2.3.4", "::1:102:304"),
            ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
            ("1::", "1::"),
            ("::0.0.1.0", "::100"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ];
        for (input, want) in cases {
            let a: Ipv6Addr = input.parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
            assert_eq!(inet_ntop6(a), *want, "{input}");
        }
    }

    fn service(
        family: Family,
        address: Option<IpAddr>,
        port: Option<u16>,
        protocol: Option<L4>,
    ) -> ServiceView {
        ServiceView {
            family,
            protocol,
            address,
            port,
            fwmark: None,
            scheduler: "rr".into(),
            sched_flags: Vec::new(),
            persistent: None,
            netmask: None,
            persistence_engine: None,
            one_packet: false,
            stats: Counters::default(),
            rates: Rates::default(),
            destinations: Vec::new(),
        }
    }

    fn real(
        address: IpAddr,
        port: u16,
        forwarding: Forwarding,
        tunnel: Option<TunnelView>,
    ) -> DestView {
        DestView {
            address,
            port,
            forwarding,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            active_connections: 0,
            inactive_connections: 0,
            persistent_connections: 0,
            tunnel,
            stats: Counters::default(),
            rates: Rates::default(),
        }
    }

    fn plain() -> ListFormat {
        ListFormat {
            view: ListView::Plain,
            numeric: true,
            exact: false,
            nosort: false,
        }
    }

    #[test]
    fn ipv6_and_fwmark_services() {
        let v6: IpAddr = "2001:db8::10"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let r6: IpAddr = "2001:db8:0:0:1:0:0:2"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut s = service(Family::Inet6, Some(v6), Some(443), Some(L4::Tcp));
        s.persistent = Some(300);
        s.netmask = Some("64".into());
        s.persistence_engine = Some("sip".into());
        s.destinations = vec![real(r6, 443, Forwarding::Route, None)];
        let mut m = service(Family::Inet6, None, None, None);
        m.fwmark = Some(5);
        m.one_packet = true;
        let text: String = [&s, &m]
            .iter()
            .map(|s| service_entry(s, plain(), &NoNames))
            .collect();
        assert_eq!(
            text,
            "TCP  [2001:db8::10]:443 rr persistent 300 mask 64 pe sip\n\
             \x20 -> [2001:db8::1:0:0:2]:443      Route   1      0          0         \n\
             FWM  5 IPv6 rr ops\n"
        );
        assert_eq!(
            rules(&[s, m], true, &NoNames),
            "-A -t [2001:db8::10]:443 -s rr -p 300 -M 64 --pe sip\n\
             -a -t [2001:db8::10]:443 -r [2001:db8::1:0:0:2]:443 -g -w 1\n\
             -A -f 5 -6 -s rr -o\n"
        );
    }

    #[test]
    fn tunnels_print_their_encapsulation() {
        // Lines as printf prints ipvsadm's "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"; the
        // -S lines are the formats reference's captures of ipvsadm 1.31.
        let ip = |s: &str| IpAddr::V4(s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED));
        let gue = TunnelView {
            kind: TunnelKind::Gue,
            port: Some(6080),
            checksum: Checksum::Csum,
        };
        let gre = TunnelView {
            kind: TunnelKind::Gre,
            port: None,
            checksum: Checksum::None,
        };
        let ipip = TunnelView {
            kind: TunnelKind::Ipip,
            port: None,
            checksum: Checksum::None,
        };
        let mut s = service(
            Family::Inet,
            Some(ip("198.18.10.8")),
            Some(80),
            Some(L4::Tcp),
        );
        s.destinations = vec![
            real(ip("198.18.20.11"), 80, Forwarding::Tunnel, Some(gue)),
            real(ip("198.18.20.12"), 80, Forwarding::Tunnel, Some(gre)),
            real(ip("198.18.20.13"), 80, Forwarding::Tunnel, Some(ipip)),
            real(ip("198.18.20.14"), 8080, Forwarding::Masq, None),
        ];
        let format = ListFormat {
            view: ListView::TunInfo,
            ..plain()
        };
        assert_eq!(
            service_entry(&s, format, &NoNames),
            "TCP  198.18.10.8:80 rr\n\
             \x20 -> 198.18.20.11:80              Tunnel  gue:6080:+c   1      0          0         \n\
             \x20 -> 198.18.20.12:80              Tunnel  gre:-c        1      0          0         \n\
             \x20 -> 198.18.20.13:80              Tunnel  ipip          1      0          0         \n\
             \x20 -> 198.18.20.14:8080            Masq    n/a           1      0          0         \n"
        );
        assert_eq!(
            rules(&[s], true, &NoNames),
            "-A -t 198.18.10.8:80 -s rr\n\
             -a -t 198.18.10.8:80 -r 198.18.20.11:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n\
             -a -t 198.18.10.8:80 -r 198.18.20.12:80 -i -w 1 --tun-type gre --tun-nocsum\n\
             -a -t 198.18.10.8:80 -r 198.18.20.13:80 -i -w 1 --tun-type ipip\n\
             -a -t 198.18.10.8:80 -r 198.18.20.14:8080 -m -w 1\n"
        );
    }

    #[test]
    fn long_names_are_cut_like_ipvsadm() {
        let ip = |s: &str| IpAddr::V4(s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED));
        let names = FixedNames {
            hosts: vec![
                ("a-rather-long-virtual-host.example.com", ip("10.0.0.1")),
                ("backend-number-one.example.com", ip("10.0.0.2")),
            ],
            services: Services::parse("http 80/tcp\n"),
        };
        let mut s = service(Family::Inet, Some(ip("10.0.0.1")), Some(80), Some(L4::Tcp));
        s.destinations = vec![real(ip("10.0.0.2"), 80, Forwarding::Route, None)];
        let format = ListFormat {
            numeric: false,
            ..plain()
        };
        // "TCP  " + name is cut at 33 bytes, the server's name at 28.
        assert_eq!(
            service_entry(&s, format, &names),
            "TCP  a-rather-long-virtual-host.e rr\n\
             \x20 -> backend-number-one.example.c Route   1      0          0         \n"
        );
        // Rules are not cut.
        assert_eq!(
            rules(&[s], false, &names),
            "-A -t a-rather-long-virtual-host.example.com:http -s rr\n\
             -a -t a-rather-long-virtual-host.example.com:http -r backend-number-one.example.com:http -g -w 1\n"
        );
    }
}
