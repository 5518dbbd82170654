//! One IPVS write, as a value: what [`super::handle::IpvsHandle::apply`] pipelines.

use std::net::IpAddr;

use super::cmd::Cmd;
use super::message::IpvsMessage;
use super::types::{Daemon, DaemonState, Destination, Service, ServiceKey, Timeouts};

/// A write to the IPVS table, named after the ipvsadm command it equals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsOp {
    /// `ipvsadm -A`.
    NewService(Service),
    /// `ipvsadm -E`.
    SetService(Service),
    /// `ipvsadm -D`.
    DelService(ServiceKey),
    /// `ipvsadm -a`.
    NewDest(ServiceKey, Destination),
    /// `ipvsadm -e`.
    SetDest(ServiceKey, Destination),
    /// `ipvsadm -d`.
    DelDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// `ipvsadm -Z [service]`.
    Zero(Option<ServiceKey>),
    /// `ipvsadm -C`.
    Flush,
    /// `ipvsadm --set`.
    SetTimeouts(Timeouts),
    /// `ipvsadm --start-daemon`.
    NewDaemon(Daemon),
    /// `ipvsadm --stop-daemon`.
    DelDaemon(DaemonState),
}

impl IpvsOp {
    pub fn message(&self) -> IpvsMessage {
        match self {
            IpvsOp::NewService(s) => IpvsMessage::new_service(s),
            IpvsOp::SetService(s) => IpvsMessage::set_service(s),
            IpvsOp::DelService(k) => IpvsMessage::del_service(k),
            IpvsOp::NewDest(k, d) => IpvsMessage::new_dest(k, d),
            IpvsOp::SetDest(k, d) => IpvsMessage::set_dest(k, d),
            IpvsOp::DelDest {
                service,
                addr,
                port,
            } => IpvsMessage::del_dest(service, *addr, *port),
            IpvsOp::Zero(k) => IpvsMessage::zero(k.as_ref()),
            IpvsOp::Flush => IpvsMessage::flush(),
            IpvsOp::SetTimeouts(t) => IpvsMessage::set_config(t),
            IpvsOp::NewDaemon(d) => IpvsMessage::new_daemon(d),
            IpvsOp::DelDaemon(s) => IpvsMessage::del_daemon(*s),
        }
    }

    pub fn cmd(&self) -> Cmd {
        match self {
            IpvsOp::NewService(_) => Cmd::NewService,
            IpvsOp::SetService(_) => Cmd::SetService,
            IpvsOp::DelService(_) => Cmd::DelService,
            IpvsOp::NewDest(..) => Cmd::NewDest,
            IpvsOp::SetDest(..) => Cmd::SetDest,
            IpvsOp::DelDest { .. } => Cmd::DelDest,
            IpvsOp::Zero(_) => Cmd::Zero,
            IpvsOp::Flush => Cmd::Flush,
            IpvsOp::SetTimeouts(_) => Cmd::SetConfig,
            IpvsOp::NewDaemon(_) => Cmd::NewDaemon,
            IpvsOp::DelDaemon(_) => Cmd::DelDaemon,
        }
    }

    /// The service whose scheduler or persistence engine a kernel ENOENT would be about.
    pub fn service(&self) -> Option<&Service> {
        match self {
            IpvsOp::NewService(s) | IpvsOp::SetService(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::types::{Family, Protocol, Scheduler};

    #[test]
    fn message_command_matches_cmd() {
        let key = ServiceKey::Endpoint {
            protocol: Protocol::Udp,
            addr: "10.0.0.1".parse().expect("ip"),
            port: 53,
        };
        let svc = Service::new(key, Scheduler::Rr);
        let dest = Destination::new("10.0.0.2".parse().expect("ip"), 53);
        let ops = vec![
            IpvsOp::NewService(svc.clone()),
            IpvsOp::SetService(svc),
            IpvsOp::DelService(key),
            IpvsOp::NewDest(key, dest),
            IpvsOp::SetDest(key, dest),
            IpvsOp::DelDest {
                service: key,
                addr: dest.addr,
                port: dest.port,
            },
            IpvsOp::Zero(None),
            IpvsOp::Zero(Some(ServiceKey::FwMark {
                mark: 1,
                family: Family::Inet,
            })),
            IpvsOp::Flush,
            IpvsOp::SetTimeouts(Timeouts::default()),
            IpvsOp::DelDaemon(DaemonState::Backup),
        ];
        for op in ops {
            assert_eq!(op.message().cmd, op.cmd(), "{op:?}");
            assert_eq!(
                op.service().is_some(),
                matches!(op, IpvsOp::NewService(_) | IpvsOp::SetService(_))
            );
        }
    }
}
