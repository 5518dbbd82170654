//! Node-wide settings: connection timeouts (`--set`, `-L --timeout`) and sync daemons
//! (`--start-daemon`, `--stop-daemon`, `-L --daemon`), as requests and as ipvsadm prints them.

use std::fmt::Write;
use std::net::IpAddr;

use ipvs_proto::v1 as pb;
use serde::Serialize;

use super::command::{DaemonSpec, DaemonState};
use super::format::inet_ntop6;
use super::request;
use super::view::{ViewError, ip_from_pb};
use crate::durations;

/// Connection timeouts in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeoutsView {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl From<pb::Timeouts> for TimeoutsView {
    fn from(t: pb::Timeouts) -> Self {
        TimeoutsView {
            tcp: durations::secs(t.tcp.as_ref()),
            tcp_fin: durations::secs(t.tcp_fin.as_ref()),
            udp: durations::secs(t.udp.as_ref()),
        }
    }
}

/// ipvsadm's `list_timeout`.
pub fn timeouts_line(t: &TimeoutsView) -> String {
    // printf("%d") of the kernel's values.
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp as i32, t.tcp_fin as i32, t.udp as i32
    )
}

/// `--set tcp tcpfin udp` as a request; 0 leaves a value unchanged, as in the kernel (and is
/// sent unset).
pub fn set_timeouts(tcp: u32, tcp_fin: u32, udp: u32) -> pb::SetTimeoutsRequest {
    pb::SetTimeoutsRequest {
        timeouts: Some(pb::Timeouts {
            tcp: durations::from_secs(tcp),
            tcp_fin: durations::from_secs(tcp_fin),
            udp: durations::from_secs(udp),
        }),
    }
}

/// A daemon's role as ipvsadm names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Backup,
}

/// A running sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonView {
    pub role: Role,
    pub interface: String,
    pub sync_id: u32,
    /// 0 when the kernel did not say.
    pub sync_maxlen: u32,
    pub group: Option<IpAddr>,
    /// 0 when the kernel did not say.
    pub port: u32,
    /// 0 when the kernel did not say.
    pub ttl: u32,
}

impl DaemonView {
    /// `None` for a daemon of no known role, which ipvsadm skips.
    pub fn from_pb(d: &pb::Daemon) -> Result<Option<Self>, ViewError> {
        let role = match pb::DaemonRole::try_from(d.role) {
            Ok(pb::DaemonRole::Master) => Role::Master,
            Ok(pb::DaemonRole::Backup) => Role::Backup,
            _ => return Ok(None),
        };
        Ok(Some(DaemonView {
            role,
            interface: d.interface.clone(),
            sync_id: d.sync_id,
            sync_maxlen: d.sync_maxlen,
            group: ip_from_pb(&d.group)?,
            port: d.port,
            ttl: d.ttl,
        }))
    }
}

/// The daemons in the kernel's order: master first, then backup.
pub fn daemons(list: &[pb::Daemon]) -> Result<Vec<DaemonView>, ViewError> {
    let mut out = Vec::new();
    for d in list {
        if let Some(v) = DaemonView::from_pb(d)? {
            out.push(v);
        }
    }
    out.sort_by_key(|d| d.role);
    Ok(out)
}

/// ipvsadm's `list_daemon`.
pub fn daemon_lines(daemons: &[DaemonView]) -> String {
    let mut out = String::new();
    for d in daemons {
        let role = match d.role {
            Role::Master => "master",
            Role::Backup => "backup",
        };
        // strncpy into IP_VS_IFNAME_MAXLEN - 1 bytes.
        let ifname: String = d.interface.bytes().take(15).map(char::from).collect();
        let _ = write!(
            out,
            "{role} sync daemon (mcast={ifname}, syncid={}",
            d.sync_id as i32
        );
        if d.sync_maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.sync_maxlen);
        }
        match d.group {
            Some(IpAddr::V4(a)) => {
                let _ = write!(out, ", group={a}");
            }
            Some(IpAddr::V6(a)) => {
                let _ = write!(out, ", group={}", inet_ntop6(a));
            }
            None => {}
        }
        if d.port != 0 {
            let _ = write!(out, ", port={}", d.port);
        }
        if d.ttl != 0 {
            let _ = write!(out, ", ttl={}", d.ttl);
        }
        out.push_str(")\n");
    }
    out
}

fn role(state: DaemonState) -> pb::DaemonRole {
    match state {
        DaemonState::Master => pb::DaemonRole::Master,
        DaemonState::Backup => pb::DaemonRole::Backup,
    }
}

/// `--start-daemon` as a request.
pub fn start_daemon(spec: &DaemonSpec) -> pb::StartDaemonRequest {
    pb::StartDaemonRequest {
        daemon: Some(pb::Daemon {
            role: role(spec.state) as i32,
            interface: spec.interface.clone(),
            sync_id: u32::from(spec.sync_id),
            sync_maxlen: spec.sync_maxlen.map(u32::from).unwrap_or(0),
            group: spec.group.map(request::ip).unwrap_or_default(),
            port: spec.port.map(u32::from).unwrap_or(0),
            ttl: spec.ttl.map(u32::from).unwrap_or(0),
        }),
    }
}

/// `--stop-daemon` as a request.
pub fn stop_daemon(state: DaemonState) -> pb::StopDaemonRequest {
    pb::StopDaemonRequest {
        role: role(state) as i32,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn timeouts_print_like_list_timeout() {
        let t = TimeoutsView::from(pb::Timeouts {
            tcp: durations::from_secs(900),
            tcp_fin: durations::from_secs(120),
            udp: durations::from_secs(300),
        });
        assert_eq!(timeouts_line(&t), "Timeout (tcp tcpfin udp): 900 120 300\n");
        assert_eq!(
            set_timeouts(0, 5, 0).timeouts,
            Some(pb::Timeouts {
                tcp: None,
                tcp_fin: Some(prost_types::Duration {
                    seconds: 5,
                    nanos: 0
                }),
                udp: None
            })
        );
    }

    #[test]
    fn daemons_print_like_list_daemon_master_first() {
        let group6: Ipv6Addr = "ff02::1:3".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let list = vec![
            pb::Daemon {
                role: pb::DaemonRole::Backup as i32,
                interface: "a-very-long-interface-name".into(),
                sync_id: 7,
                group: request::ip(IpAddr::V6(group6)),
                ..Default::default()
            },
            pb::Daemon {
                role: pb::DaemonRole::Unspecified as i32,
                interface: "skipped".into(),
                ..Default::default()
            },
            pb::Daemon {
                role: pb::DaemonRole::Master as i32,
                interface: "eth0".into(),
                sync_id: 0,
                sync_maxlen: 1472,
                group: "224.0.0.81".into(),
                port: 8848,
                ttl: 1,
            },
        ];
        let views = daemons(&list).expect("valid");
        assert_eq!(
            daemon_lines(&views),
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
             backup sync daemon (mcast=a-very-long-int, syncid=7, group=ff02::1:3)\n"
        );
    }

    #[test]
    fn start_daemon_carries_every_option() {
        let spec = DaemonSpec {
            state: DaemonState::Backup,
            interface: "eth1".into(),
            sync_id: 3,
            sync_maxlen: Some(1400),
            group: Some(IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1))),
            port: Some(8849),
            ttl: None,
        };
        assert_eq!(
            start_daemon(&spec).daemon,
            Some(pb::Daemon {
                role: pb::DaemonRole::Backup as i32,
                interface: "eth1".into(),
                sync_id: 3,
                sync_maxlen: 1400,
                group: "239.1.1.1".into(),
                port: 8849,
                ttl: 0,
            })
        );
        assert_eq!(
            stop_daemon(DaemonState::Master).role,
            pb::DaemonRole::Master as i32
        );
    }
}
