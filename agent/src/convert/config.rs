//! `ipvs.agent.v1` timeouts, sync daemons and connections ↔ the [`crate::ipvs`] domain model.

use ipvs_proto::v1 as pb;

use super::{
    Field, FieldError, Problem, nested, optional_ip_address, quote, seconds_to_proto, whole_seconds,
};
use crate::ipvs::conn::Connection;
use crate::ipvs::{Daemon, DaemonState, Timeouts};

/// The longest interface name the kernel takes: its buffer less the NUL.
const MAX_IFNAME: usize = ipvs_types::uapi::IP_VS_IFNAME_MAXLEN - 1;

/// `SetTimeoutsRequest`: the timeouts to set, in whole seconds; unset or 0 leaves a value as
/// it is.
pub fn set_timeouts(req: &pb::SetTimeoutsRequest) -> Result<Timeouts, FieldError> {
    nested(req.timeouts.as_ref(), "timeouts", |t| {
        Ok(Timeouts {
            tcp: whole_seconds(t.tcp.as_ref()).field("tcp")?,
            tcp_fin: whole_seconds(t.tcp_fin.as_ref()).field("tcp_fin")?,
            udp: whole_seconds(t.udp.as_ref()).field("udp")?,
        })
    })
}

pub fn timeouts_to_proto(t: &Timeouts) -> pb::Timeouts {
    pb::Timeouts {
        tcp: Some(seconds_to_proto(t.tcp)),
        tcp_fin: Some(seconds_to_proto(t.tcp_fin)),
        udp: Some(seconds_to_proto(t.udp)),
    }
}

fn role(v: i32) -> Result<DaemonState, Problem> {
    match pb::DaemonRole::try_from(v) {
        Ok(pb::DaemonRole::Master) => Ok(DaemonState::Master),
        Ok(pb::DaemonRole::Backup) => Ok(DaemonState::Backup),
        Ok(pb::DaemonRole::Unspecified) => Err(Problem::Unspecified("DAEMON_ROLE_UNSPECIFIED")),
        Err(_) => Err(Problem::UnknownEnum(v)),
    }
}

fn role_to_proto(s: DaemonState) -> pb::DaemonRole {
    match s {
        DaemonState::Master => pb::DaemonRole::Master,
        DaemonState::Backup => pb::DaemonRole::Backup,
    }
}

/// A value that must fit `max`, 0 meaning "the kernel's default".
fn defaulted<T: TryFrom<u32>>(value: u32, max: u32) -> Result<Option<T>, Problem> {
    if value > max {
        return Err(Problem::TooLarge {
            value: value.into(),
            max: max.into(),
        });
    }
    if value == 0 {
        return Ok(None);
    }
    T::try_from(value).map(Some).map_err(|_| Problem::TooLarge {
        value: value.into(),
        max: max.into(),
    })
}

/// `StartDaemonRequest`: the daemon to start, with the kernel's defaults for unset options.
pub fn start_daemon(req: &pb::StartDaemonRequest) -> Result<Daemon, FieldError> {
    nested(req.daemon.as_ref(), "daemon", daemon)
}

fn daemon(d: &pb::Daemon) -> Result<Daemon, FieldError> {
    let state = role(d.role).field("role")?;
    let ifname = &d.interface;
    if ifname.is_empty() {
        return Err(FieldError::new("interface", Problem::Missing));
    }
    if ifname.len() > MAX_IFNAME || ifname.contains('\0') {
        return Err(FieldError::new(
            "interface",
            Problem::Invalid(format!(
                "{} is not an interface name (at most {MAX_IFNAME} bytes)",
                quote(ifname)
            )),
        ));
    }
    if d.sync_id > 255 {
        return Err(FieldError::new(
            "sync_id",
            Problem::TooLarge {
                value: d.sync_id.into(),
                max: 255,
            },
        ));
    }
    let group = optional_ip_address(&d.group).field("group")?;
    if let Some(g) = group
        && !g.is_multicast()
    {
        return Err(FieldError::new(
            "group",
            Problem::Invalid(format!("{g} is not a multicast address")),
        ));
    }
    Ok(Daemon {
        state,
        mcast_ifn: ifname.clone(),
        sync_id: d.sync_id,
        sync_maxlen: defaulted(d.sync_maxlen, u16::MAX.into()).field("sync_maxlen")?,
        mcast_group: group,
        mcast_port: defaulted(d.port, u16::MAX.into()).field("port")?,
        mcast_ttl: defaulted(d.ttl, u8::MAX.into()).field("ttl")?,
    })
}

/// `StopDaemonRequest`: the role to stop.
pub fn stop_daemon(req: &pb::StopDaemonRequest) -> Result<DaemonState, FieldError> {
    role(req.role).field("role")
}

pub fn daemon_to_proto(d: &Daemon) -> pb::Daemon {
    pb::Daemon {
        role: role_to_proto(d.state).into(),
        interface: d.mcast_ifn.clone(),
        sync_id: d.sync_id,
        sync_maxlen: d.sync_maxlen.map_or(0, u32::from),
        group: d.mcast_group.map(|g| g.to_string()).unwrap_or_default(),
        port: d.mcast_port.map_or(0, u32::from),
        ttl: d.mcast_ttl.map_or(0, u32::from),
    }
}

pub fn connection_to_proto(c: &Connection) -> pb::Connection {
    let (pe_name, pe_data) =
        c.pe.as_ref()
            .map(|p| (p.name.clone(), p.data.clone()))
            .unwrap_or_default();
    pb::Connection {
        protocol: c.protocol.clone(),
        client_address: c.client.ip().to_string(),
        client_port: c.client.port().into(),
        virtual_address: c.vip.ip().to_string(),
        virtual_port: c.vip.port().into(),
        destination_address: c.dest.ip().to_string(),
        destination_port: c.dest.port().into(),
        state: c.state.clone(),
        expires: Some(seconds_to_proto(c.expires)),
        pe_name,
        pe_data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn master_on_lo() -> pb::Daemon {
        pb::Daemon {
            role: pb::DaemonRole::Master.into(),
            interface: "lo".into(),
            ..Default::default()
        }
    }

    fn secs(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn daemons() {
        let with = |f: &dyn Fn(&mut pb::Daemon)| {
            let mut d = master_on_lo();
            f(&mut d);
            pb::StartDaemonRequest { daemon: Some(d) }
        };
        let plain = Daemon {
            state: DaemonState::Master,
            mcast_ifn: "lo".into(),
            sync_id: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        let long_name = "i".repeat(4096);
        let err = |field: &str, problem| Err(FieldError::new(field, problem));
        let cases: Vec<(&str, pb::StartDaemonRequest, Result<Daemon, FieldError>)> = vec![
            ("defaults", with(&|_| {}), Ok(plain.clone())),
            (
                "everything set",
                with(&|d| {
                    d.role = pb::DaemonRole::Backup.into();
                    d.sync_id = 255;
                    d.sync_maxlen = 1400;
                    d.group = "239.1.2.3".into();
                    d.port = 8849;
                    d.ttl = 255;
                }),
                Ok(Daemon {
                    state: DaemonState::Backup,
                    sync_id: 255,
                    sync_maxlen: Some(1400),
                    mcast_group: Some(IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3))),
                    mcast_port: Some(8849),
                    mcast_ttl: Some(255),
                    ..plain.clone()
                }),
            ),
            (
                "an IPv6 multicast group",
                with(&|d| d.group = "ff02::1:81".into()),
                Ok(Daemon {
                    mcast_group: Some("ff02::1:81".parse().expect("test group")),
                    ..plain.clone()
                }),
            ),
            (
                "no daemon",
                pb::StartDaemonRequest { daemon: None },
                err("daemon", Problem::Missing),
            ),
            (
                "no role",
                with(&|d| d.role = 0),
                err(
                    "daemon.role",
                    Problem::Unspecified("DAEMON_ROLE_UNSPECIFIED"),
                ),
            ),
            (
                "unknown role",
                with(&|d| d.role = 3),
                err("daemon.role", Problem::UnknownEnum(3)),
            ),
            (
                "no interface",
                with(&|d| d.interface.clear()),
                err("daemon.interface", Problem::Missing),
            ),
            (
                "interface name too long",
                with(&|d| d.interface = "a-very-long-ifname".into()),
                err(
                    "daemon.interface",
                    Problem::Invalid(
                        "\"a-very-long-ifname\" is not an interface name (at most 15 bytes)".into(),
                    ),
                ),
            ),
            (
                "a 4 KB interface name is quoted short",
                with(&|d| d.interface.clone_from(&long_name)),
                err(
                    "daemon.interface",
                    Problem::Invalid(format!(
                        "{:?}... (4096 bytes) is not an interface name (at most 15 bytes)",
                        &long_name[..48]
                    )),
                ),
            ),
            (
                "sync id above 255",
                with(&|d| d.sync_id = 256),
                err(
                    "daemon.sync_id",
                    Problem::TooLarge {
                        value: 256,
                        max: 255,
                    },
                ),
            ),
            (
                "not a multicast group",
                with(&|d| d.group = "10.0.0.1".into()),
                err(
                    "daemon.group",
                    Problem::Invalid("10.0.0.1 is not a multicast address".into()),
                ),
            ),
            (
                "unparsable group",
                with(&|d| d.group = "1".into()),
                err("daemon.group", Problem::NotAnAddress("\"1\"".into())),
            ),
            (
                "port above 65535",
                with(&|d| d.port = 65536),
                err(
                    "daemon.port",
                    Problem::TooLarge {
                        value: 65536,
                        max: 65535,
                    },
                ),
            ),
            (
                "ttl above 255",
                with(&|d| d.ttl = 256),
                err(
                    "daemon.ttl",
                    Problem::TooLarge {
                        value: 256,
                        max: 255,
                    },
                ),
            ),
            (
                "maxlen above 65535",
                with(&|d| d.sync_maxlen = 70000),
                err(
                    "daemon.sync_maxlen",
                    Problem::TooLarge {
                        value: 70000,
                        max: 65535,
                    },
                ),
            ),
        ];
        for (what, req, want) in cases {
            let got = start_daemon(&req);
            assert_eq!(got, want, "{what}");
            if let Ok(d) = got {
                assert_eq!(daemon_to_proto(&d).interface, "lo", "{what}");
            }
        }
    }

    #[test]
    fn daemons_read_back_as_written() {
        let everything = pb::Daemon {
            role: pb::DaemonRole::Backup.into(),
            interface: "eth0".into(),
            sync_id: 9,
            sync_maxlen: 1472,
            group: "224.0.0.81".into(),
            port: 8848,
            ttl: 1,
        };
        // The kernel's defaults stay unset: no group reads back as "".
        let defaults = master_on_lo();
        let v6 = pb::Daemon {
            group: "ff02::1:81".into(),
            ..master_on_lo()
        };
        for d in [everything, defaults, v6] {
            let domain = daemon(&d).expect("valid daemon");
            assert_eq!(daemon_to_proto(&domain), d);
        }
    }

    #[test]
    fn roles() {
        assert_eq!(
            stop_daemon(&pb::StopDaemonRequest {
                role: pb::DaemonRole::Backup.into()
            }),
            Ok(DaemonState::Backup)
        );
        assert_eq!(
            stop_daemon(&pb::StopDaemonRequest { role: 0 }),
            Err(FieldError::new(
                "role",
                Problem::Unspecified("DAEMON_ROLE_UNSPECIFIED")
            ))
        );
    }

    #[test]
    fn timeouts() {
        let set = |tcp, tcp_fin, udp| {
            set_timeouts(&pb::SetTimeoutsRequest {
                timeouts: Some(pb::Timeouts { tcp, tcp_fin, udp }),
            })
        };
        let t = |tcp, tcp_fin, udp| Ok(Timeouts { tcp, tcp_fin, udp });
        type Parsed = Result<Timeouts, FieldError>;
        let cases: Vec<(&str, Parsed, Parsed)> = vec![
            (
                "whole seconds",
                set(secs(900, 0), secs(120, 0), secs(60, 0)),
                t(900, 120, 60),
            ),
            (
                "unset and zero leave a value as it is",
                set(secs(900, 0), None, secs(0, 0)),
                t(900, 0, 0),
            ),
            ("nothing set", set(None, None, None), t(0, 0, 0)),
            (
                "the longest",
                set(secs(u32::MAX.into(), 0), None, None),
                t(u32::MAX, 0, 0),
            ),
            (
                "no timeouts",
                set_timeouts(&pb::SetTimeoutsRequest { timeouts: None }),
                Err(FieldError::new("timeouts", Problem::Missing)),
            ),
            (
                "a fraction of a second",
                set(None, secs(2, 250_000_000), None),
                Err(FieldError::new(
                    "timeouts.tcp_fin",
                    Problem::Invalid("2.250s is not a whole number of seconds".into()),
                )),
            ),
            (
                "negative",
                set(None, None, secs(-60, 0)),
                Err(FieldError::new(
                    "timeouts.udp",
                    Problem::Invalid("-60s is not a non-negative duration".into()),
                )),
            ),
            (
                "above u32",
                set(secs(1 << 32, 0), None, None),
                Err(FieldError::new(
                    "timeouts.tcp",
                    Problem::TooLarge {
                        value: 1 << 32,
                        max: u32::MAX.into(),
                    },
                )),
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
        // Replies say every value, zero included.
        assert_eq!(
            timeouts_to_proto(&Timeouts {
                tcp: 900,
                tcp_fin: 0,
                udp: 60,
            }),
            pb::Timeouts {
                tcp: secs(900, 0),
                tcp_fin: secs(0, 0),
                udp: secs(60, 0),
            }
        );
    }

    #[test]
    fn connections() {
        let cases = [
            (
                "UDP 0A000009 13C4 0A000001 13C4 0A000101 13C4 UDP             179 sip 1@h",
                pb::Connection {
                    protocol: "UDP".into(),
                    client_address: "10.0.0.9".into(),
                    client_port: 5060,
                    virtual_address: "10.0.0.1".into(),
                    virtual_port: 5060,
                    destination_address: "10.0.1.1".into(),
                    destination_port: 5060,
                    state: "UDP".into(),
                    expires: secs(179, 0),
                    pe_name: "sip".into(),
                    pe_data: "1@h".into(),
                },
            ),
            // The kernel writes IPv6 addresses in full; replies write them as people do.
            (
                "TCP 2001:0db8:0000:0000:0000:0000:0000:0009 D431 \
                 2001:0db8:0000:0000:0000:0000:0000:0001 0050 \
                 2001:0db8:0000:0000:0000:0000:0001:0001 0050 ESTABLISHED 0",
                pb::Connection {
                    protocol: "TCP".into(),
                    client_address: "2001:db8::9".into(),
                    client_port: 0xd431,
                    virtual_address: "2001:db8::1".into(),
                    virtual_port: 80,
                    destination_address: "2001:db8::1:1".into(),
                    destination_port: 80,
                    state: "ESTABLISHED".into(),
                    expires: secs(0, 0),
                    pe_name: String::new(),
                    pe_data: String::new(),
                },
            ),
        ];
        for (line, want) in cases {
            let conn = crate::ipvs::conn::parse_line(line).expect("line");
            assert_eq!(connection_to_proto(&conn), want, "{line}");
        }
    }
}
