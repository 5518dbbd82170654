//! `ipvs.agent.v1.TableService` requests and plans ↔ the [`crate::state`] model.

use ipvs_proto::v1 as pb;

use super::ipvs::{
    dest_config_to_proto, destination, ip_to_proto, key_to_proto, service, service_config_to_proto,
};
use super::{At, FieldError};
use crate::ipvs::{Destination, Service};
use crate::state::{Change, ChangeKind};

/// An `ApplyRequest`, parsed; the table's own rules are checked by
/// [`DesiredTable::new`](crate::state::DesiredTable::new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyInput {
    pub services: Vec<(Service, Vec<Destination>)>,
    pub prune: bool,
    pub dry_run: bool,
}

/// Every service at `services[i]`, every real server at `services[i].destinations[j]`.
pub fn apply_request(req: &pb::ApplyRequest) -> Result<ApplyInput, FieldError> {
    let services = req
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let at = format!("services[{i}]");
            let svc = service(s).at(&at)?;
            let dests = s
                .destinations
                .iter()
                .enumerate()
                .map(|(j, d)| destination(d).at(&format!("{at}.destinations[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((svc, dests))
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    Ok(ApplyInput {
        services,
        prune: req.prune,
        dry_run: req.dry_run,
    })
}

fn kind_to_proto(k: ChangeKind) -> pb::ChangeKind {
    match k {
        ChangeKind::CreateService => pb::ChangeKind::CreateService,
        ChangeKind::UpdateService => pb::ChangeKind::UpdateService,
        ChangeKind::DeleteService => pb::ChangeKind::DeleteService,
        ChangeKind::AddDestination => pb::ChangeKind::AddDestination,
        ChangeKind::UpdateDestination => pb::ChangeKind::UpdateDestination,
        ChangeKind::DeleteDestination => pb::ChangeKind::DeleteDestination,
    }
}

/// A change as the API shows it: the new settings, and the real server's address and port
/// alone for a deletion.
pub fn change_to_proto(c: &Change) -> pb::Change {
    let (service, dest) = match c {
        Change::CreateService(s) | Change::UpdateService { to: s, .. } => {
            (Some(service_config_to_proto(s)), None)
        }
        Change::DeleteService { .. } => (None, None),
        Change::AddDestination { dest, .. } | Change::UpdateDestination { to: dest, .. } => {
            (None, Some(dest_config_to_proto(dest)))
        }
        Change::DeleteDestination { dest, .. } => (
            None,
            Some(pb::Destination {
                address: Some(ip_to_proto(dest.addr)),
                port: dest.port.into(),
                ..Default::default()
            }),
        ),
    };
    pb::Change {
        kind: kind_to_proto(c.kind()).into(),
        service_key: Some(key_to_proto(&c.service_key())),
        service,
        destination: dest,
        description: c.description(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use pb::ip_address::Ip;
    use pb::service_key::Key;

    use super::*;
    use crate::convert::Problem;
    use crate::ipvs::{ForwardMethod, Protocol, Scheduler, ServiceKey};

    fn v4(o: [u8; 4]) -> Option<pb::IpAddress> {
        Some(pb::IpAddress {
            ip: Some(Ip::V4(o.to_vec())),
        })
    }

    fn wire_service(port: u32, dests: Vec<pb::Destination>) -> pb::Service {
        pb::Service {
            key: Some(pb::ServiceKey {
                key: Some(Key::Endpoint(pb::Endpoint {
                    protocol: pb::Protocol::Tcp.into(),
                    address: v4([10, 0, 0, 1]),
                    port,
                })),
            }),
            scheduler: pb::Scheduler::Rr.into(),
            destinations: dests,
            ..Default::default()
        }
    }

    fn wire_dest(last: u8, weight: Option<u32>) -> pb::Destination {
        pb::Destination {
            address: v4([10, 0, 1, last]),
            port: 8080,
            forwarding: pb::ForwardingMethod::Masquerade.into(),
            weight,
            ..Default::default()
        }
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port,
        }
    }

    fn dest(last: u8, weight: u32) -> Destination {
        Destination {
            forward: ForwardMethod::Masquerade,
            weight,
            ..Destination::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, last)), 8080)
        }
    }

    #[test]
    fn requests_parse_with_field_paths() {
        let ok = pb::ApplyRequest {
            services: vec![
                wire_service(80, vec![wire_dest(1, None), wire_dest(2, Some(0))]),
                wire_service(81, vec![]),
            ],
            prune: true,
            dry_run: false,
        };
        assert_eq!(
            apply_request(&ok),
            Ok(ApplyInput {
                services: vec![
                    (
                        Service::new(key(80), Scheduler::Rr),
                        vec![dest(1, 1), dest(2, 0)]
                    ),
                    (Service::new(key(81), Scheduler::Rr), vec![]),
                ],
                prune: true,
                dry_run: false,
            })
        );
        let mut bad_dest = ok.clone();
        bad_dest.services[1]
            .destinations
            .push(wire_dest(3, Some(70000)));
        assert_eq!(
            apply_request(&bad_dest),
            Err(FieldError::new(
                "services[1].destinations[0].weight",
                Problem::TooLarge {
                    value: 70000,
                    max: 65535
                }
            ))
        );
        let mut bad_service = ok;
        bad_service.services[0].scheduler = 0;
        assert_eq!(
            apply_request(&bad_service).map_err(|e| e.to_string()),
            Err(
                "invalid services[0].scheduler: must be set (SCHEDULER_UNSPECIFIED is not a \
                 choice)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn changes_carry_new_settings_and_words() {
        let svc = Service::new(key(80), Scheduler::Rr);
        let create = change_to_proto(&Change::CreateService(svc.clone()));
        assert_eq!(create.kind, i32::from(pb::ChangeKind::CreateService));
        assert_eq!(create.service_key, Some(key_to_proto(&key(80))));
        assert_eq!(
            create.service.map(|s| s.scheduler),
            Some(pb::Scheduler::Rr.into())
        );
        assert_eq!(create.description, "-A -t 10.0.0.1:80 -s rr");

        let update = change_to_proto(&Change::UpdateDestination {
            service: key(80),
            from: dest(1, 1),
            to: dest(1, 4),
        });
        assert_eq!(update.kind, i32::from(pb::ChangeKind::UpdateDestination));
        assert_eq!(update.destination.and_then(|d| d.weight), Some(4));
        assert_eq!(
            update.description,
            "-e -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 4"
        );

        let delete = change_to_proto(&Change::DeleteDestination {
            service: key(80),
            dest: dest(2, 1),
        });
        assert_eq!(
            delete.destination,
            Some(pb::Destination {
                address: v4([10, 0, 1, 2]),
                port: 8080,
                ..Default::default()
            })
        );
        let gone = change_to_proto(&Change::DeleteService {
            service: svc,
            dests: vec![dest(1, 1)],
        });
        assert_eq!(
            (gone.kind, gone.service, gone.destination),
            (pb::ChangeKind::DeleteService.into(), None, None)
        );
        assert_eq!(gone.description, "-D -t 10.0.0.1:80");
    }
}
