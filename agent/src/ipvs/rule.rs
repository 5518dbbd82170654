//! A write in ipvsadm's command-line words, as `ipvsadm -Sn` prints rules: what a plan or a
//! log line shows a person, e.g. `-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1`.
//!
//! Beyond `-S`, thresholds (`-x`, `-y`) are shown when set and a netmask (`-M`) whenever it is
//! not the default, so that no change is invisible.

use std::fmt::{self, Display, Formatter};
use std::net::SocketAddr;

use super::op::IpvsOp;
use super::types::{
    Daemon, DaemonState, Destination, Family, ForwardMethod, Protocol, Service, ServiceFlags,
    ServiceKey, TunnelChecksum, TunnelType, default_netmask,
};

impl Display for IpvsOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            IpvsOp::NewService(s) => write!(f, "-A {}", ServiceRule(s)),
            IpvsOp::SetService(s) => write!(f, "-E {}", ServiceRule(s)),
            IpvsOp::DelService(k) => write!(f, "-D {}", KeyWords(k)),
            IpvsOp::NewDest(k, d) => write!(f, "-a {} {}", KeyWords(k), DestRule(d)),
            IpvsOp::SetDest(k, d) => write!(f, "-e {} {}", KeyWords(k), DestRule(d)),
            IpvsOp::DelDest {
                service,
                addr,
                port,
            } => write!(
                f,
                "-d {} -r {}",
                KeyWords(service),
                SocketAddr::new(*addr, *port)
            ),
            IpvsOp::Zero(None) => f.write_str("-Z"),
            IpvsOp::Zero(Some(k)) => write!(f, "-Z {}", KeyWords(k)),
            IpvsOp::Flush => f.write_str("-C"),
            IpvsOp::SetTimeouts(t) => write!(f, "--set {} {} {}", t.tcp, t.tcp_fin, t.udp),
            IpvsOp::NewDaemon(d) => DaemonRule(d).fmt(f),
            IpvsOp::DelDaemon(s) => write!(f, "--stop-daemon {}", state(*s)),
        }
    }
}

/// `-t 10.0.0.1:80`, `-u [2001:db8::1]:53`, `--sctp-service ...`, `-f 7`, `-f 7 -6`.
struct KeyWords<'a>(&'a ServiceKey);

impl Display for KeyWords<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self.0 {
            ServiceKey::Endpoint {
                protocol,
                addr,
                port,
            } => {
                let opt = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                };
                write!(f, "{opt} {}", SocketAddr::new(addr, port))
            }
            ServiceKey::FwMark { mark, family } => match family {
                Family::Inet => write!(f, "-f {mark}"),
                Family::Inet6 => write!(f, "-f {mark} -6"),
            },
        }
    }
}

/// `<key> -s <sched> [-p <timeout>] [-M <mask>] [--pe <pe>] [-o] [-b <flags>]`.
struct ServiceRule<'a>(&'a Service);

impl Display for ServiceRule<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{} -s {}", KeyWords(&s.key), s.scheduler)?;
        if s.is_persistent() {
            write!(f, " -p {}", s.timeout)?;
        }
        let family = s.key.family();
        if s.netmask != default_netmask(family) {
            match family {
                Family::Inet => write!(f, " -M {}", std::net::Ipv4Addr::from(s.netmask))?,
                Family::Inet6 => write!(f, " -M {}", s.netmask)?,
            }
        }
        if let Some(pe) = &s.pe_name {
            write!(f, " --pe {pe}")?;
        }
        if s.flags.contains(ServiceFlags::ONEPACKET) {
            f.write_str(" -o")?;
        }
        let flags = sched_flags(s);
        if !flags.is_empty() {
            write!(f, " -b {}", flags.join(","))?;
        }
        Ok(())
    }
}

/// ipvsadm's `print_sched_flags`: named for sh and mh, numbered for the others.
fn sched_flags(s: &Service) -> Vec<&'static str> {
    let names: [&str; 3] = match s.scheduler.name() {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    [
        ServiceFlags::SCHED1,
        ServiceFlags::SCHED2,
        ServiceFlags::SCHED3,
    ]
    .into_iter()
    .zip(names)
    .filter(|(bit, _)| s.flags.contains(*bit))
    .map(|(_, name)| name)
    .collect()
}

/// `-r <addr:port> -g|-i|-m -w <weight> [-x <upper>] [-y <lower>] [--tun-type ...]`.
struct DestRule<'a>(&'a Destination);

impl Display for DestRule<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let fwd = match d.forward {
            ForwardMethod::Masquerade => "-m",
            ForwardMethod::Tunnel => "-i",
            ForwardMethod::Local | ForwardMethod::DirectRoute => "-g",
        };
        write!(
            f,
            "-r {} {fwd} -w {}",
            SocketAddr::new(d.addr, d.port),
            d.weight
        )?;
        if d.upper_threshold != 0 {
            write!(f, " -x {}", d.upper_threshold)?;
        }
        if d.lower_threshold != 0 {
            write!(f, " -y {}", d.lower_threshold)?;
        }
        if d.forward != ForwardMethod::Tunnel {
            return Ok(());
        }
        let csum = match d.tunnel.checksum {
            TunnelChecksum::None => "--tun-nocsum",
            TunnelChecksum::Csum => "--tun-csum",
            TunnelChecksum::RemCsum => "--tun-remcsum",
        };
        match d.tunnel.kind {
            TunnelType::Ipip => f.write_str(" --tun-type ipip"),
            TunnelType::Gue => write!(f, " --tun-type gue --tun-port {} {csum}", d.tunnel.port),
            TunnelType::Gre => write!(f, " --tun-type gre {csum}"),
        }
    }
}

fn state(s: DaemonState) -> &'static str {
    match s {
        DaemonState::Master => "master",
        DaemonState::Backup => "backup",
    }
}

/// `--start-daemon <state> --mcast-interface <if> --syncid <id> [...]`.
struct DaemonRule<'a>(&'a Daemon);

impl Display for DaemonRule<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "--start-daemon {} --mcast-interface {} --syncid {}",
            state(d.state),
            d.mcast_ifn,
            d.sync_id
        )?;
        if let Some(v) = d.sync_maxlen {
            write!(f, " --sync-maxlen {v}")?;
        }
        if let Some(v) = d.mcast_group {
            write!(f, " --mcast-group {v}")?;
        }
        if let Some(v) = d.mcast_port {
            write!(f, " --mcast-port {v}")?;
        }
        if let Some(v) = d.mcast_ttl {
            write!(f, " --mcast-ttl {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::types::{Scheduler, Timeouts, Tunnel};

    fn key(s: &str) -> ServiceKey {
        let (proto, addr) = s.split_once(' ').expect("proto and address");
        let sa: SocketAddr = addr.parse().expect("test address");
        ServiceKey::Endpoint {
            protocol: match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => Protocol::Sctp,
            },
            addr: sa.ip(),
            port: sa.port(),
        }
    }

    fn dest(addr: &str, forward: ForwardMethod) -> Destination {
        let sa: SocketAddr = addr.parse().expect("test address");
        Destination {
            forward,
            ..Destination::new(sa.ip(), sa.port())
        }
    }

    #[test]
    fn writes_in_ipvsadm_words() {
        let tcp = key("tcp 10.0.0.1:80");
        let v6 = key("udp [2001:db8::1]:53");
        let fw6 = ServiceKey::FwMark {
            mark: 7,
            family: Family::Inet6,
        };
        let mut persistent = Service::new(tcp, Scheduler::Wlc);
        persistent.flags = ServiceFlags(ServiceFlags::PERSISTENT);
        persistent.timeout = 300;
        persistent.netmask = 0xffff_ff00;
        persistent.pe_name = Some("sip".into());
        let mut sh = Service::new(v6, Scheduler::Sh);
        sh.flags =
            ServiceFlags(ServiceFlags::ONEPACKET | ServiceFlags::SCHED1 | ServiceFlags::SCHED2);
        let mut v6_mask = Service::new(fw6, Scheduler::Rr);
        v6_mask.flags = ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED3);
        v6_mask.timeout = 60;
        v6_mask.netmask = 64;
        let mut gue = dest("10.0.1.2:80", ForwardMethod::Tunnel);
        gue.tunnel = Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            checksum: TunnelChecksum::Csum,
        };
        let mut gre = dest("[2001:db8::2]:80", ForwardMethod::Tunnel);
        gre.tunnel = Tunnel {
            kind: TunnelType::Gre,
            port: 0,
            checksum: TunnelChecksum::None,
        };
        let mut thresholds = dest("10.0.1.3:8080", ForwardMethod::Masquerade);
        thresholds.weight = 0;
        thresholds.upper_threshold = 100;
        thresholds.lower_threshold = 10;
        let cases: Vec<(IpvsOp, &str)> = vec![
            (
                IpvsOp::NewService(Service::new(tcp, Scheduler::Rr)),
                "-A -t 10.0.0.1:80 -s rr",
            ),
            (
                IpvsOp::SetService(persistent),
                "-E -t 10.0.0.1:80 -s wlc -p 300 -M 255.255.255.0 --pe sip",
            ),
            (
                IpvsOp::NewService(sh),
                "-A -u [2001:db8::1]:53 -s sh -o -b sh-fallback,sh-port",
            ),
            (
                IpvsOp::NewService(v6_mask),
                "-A -f 7 -6 -s rr -p 60 -M 64 -b flag-3",
            ),
            (IpvsOp::DelService(fw6), "-D -f 7 -6"),
            (
                IpvsOp::DelService(key("sctp 10.0.0.5:9")),
                "-D --sctp-service 10.0.0.5:9",
            ),
            (
                IpvsOp::NewDest(tcp, dest("10.0.1.1:80", ForwardMethod::Masquerade)),
                "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
            ),
            (
                IpvsOp::NewDest(tcp, dest("10.0.1.1:80", ForwardMethod::DirectRoute)),
                "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1",
            ),
            (
                IpvsOp::SetDest(tcp, thresholds),
                "-e -t 10.0.0.1:80 -r 10.0.1.3:8080 -m -w 0 -x 100 -y 10",
            ),
            (
                IpvsOp::NewDest(tcp, gue),
                "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1 --tun-type gue --tun-port 6080 \
                 --tun-csum",
            ),
            (
                IpvsOp::NewDest(tcp, gre),
                "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -i -w 1 --tun-type gre --tun-nocsum",
            ),
            (
                IpvsOp::NewDest(tcp, dest("10.0.1.4:80", ForwardMethod::Tunnel)),
                "-a -t 10.0.0.1:80 -r 10.0.1.4:80 -i -w 1 --tun-type ipip",
            ),
            (
                IpvsOp::DelDest {
                    service: v6,
                    addr: "2001:db8::2".parse().expect("ip"),
                    port: 53,
                },
                "-d -u [2001:db8::1]:53 -r [2001:db8::2]:53",
            ),
            (IpvsOp::Zero(None), "-Z"),
            (IpvsOp::Zero(Some(tcp)), "-Z -t 10.0.0.1:80"),
            (IpvsOp::Flush, "-C"),
            (
                IpvsOp::SetTimeouts(Timeouts {
                    tcp: 900,
                    tcp_fin: 0,
                    udp: 300,
                }),
                "--set 900 0 300",
            ),
            (
                IpvsOp::NewDaemon(Daemon {
                    state: DaemonState::Master,
                    mcast_ifn: "lo".into(),
                    sync_id: 7,
                    sync_maxlen: None,
                    mcast_group: Some("224.0.0.82".parse().expect("ip")),
                    mcast_port: Some(8849),
                    mcast_ttl: Some(2),
                }),
                "--start-daemon master --mcast-interface lo --syncid 7 --mcast-group 224.0.0.82 \
                 --mcast-port 8849 --mcast-ttl 2",
            ),
            (
                IpvsOp::DelDaemon(DaemonState::Backup),
                "--stop-daemon backup",
            ),
        ];
        for (op, want) in cases {
            assert_eq!(op.to_string(), want, "{op:?}");
        }
    }
}
