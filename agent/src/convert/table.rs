//! `ipvs.agent.v1.TableService` requests and plans ↔ the [`crate::state`] model.

use ipvs_proto::v1 as pb;

use super::ipvs::{
    dest_config_to_proto, destination, destination_address, key_to_proto, service,
    service_config_to_proto, service_key,
};
use super::{At, FieldError, Problem, nested};
use crate::ipvs::{Destination, Service};
use crate::state::{Change, ChangeKind, Command, Numbered, Start};

/// An `ApplyRequest`, parsed; the table's own rules are checked by
/// [`DesiredTable::new`](crate::state::DesiredTable::new), the commands' when they run
/// ([`state::commands`](crate::state::commands)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyInput {
    pub form: Form,
    pub dry_run: bool,
}

/// The two forms of an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `services` (and `prune`): the desired services.
    Desired {
        services: Vec<(Service, Vec<Destination>)>,
        prune: bool,
    },
    /// `commands` run against the table `start` says.
    Commands {
        commands: Vec<Numbered>,
        start: Start,
    },
}

/// Every service at `services[i]`, every real server at `services[i].destinations[j]`, every
/// command at `commands[i]`. `services`/`prune` and `commands` do not mix: which table the
/// commands would run against would be ambiguous. REPLACE without commands is the commands
/// form too (an empty input replacing the table empties it, as `ipvsadm-restore` does);
/// without commands, and with a mode other than REPLACE, the request is the desired-table form.
pub fn apply_request(req: &pb::ApplyRequest) -> Result<ApplyInput, FieldError> {
    let start = match pb::ApplyMode::try_from(req.mode) {
        Ok(pb::ApplyMode::Unspecified | pb::ApplyMode::OnTop) => Start::Current,
        Ok(pb::ApplyMode::Replace) => Start::Empty,
        Err(_) => return Err(FieldError::new("mode", Problem::UnknownEnum(req.mode))),
    };
    if !req.commands.is_empty() || start == Start::Empty {
        if !req.services.is_empty() || req.prune {
            let field = if req.prune { "prune" } else { "services" };
            return Err(FieldError::new(
                field,
                Problem::Invalid("must be left unset with commands or REPLACE".into()),
            ));
        }
        let commands = req
            .commands
            .iter()
            .enumerate()
            .map(|(i, c)| table_command(c).at(&format!("commands[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(ApplyInput {
            form: Form::Commands { commands, start },
            dry_run: req.dry_run,
        });
    }
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
        form: Form::Desired {
            services,
            prune: req.prune,
        },
        dry_run: req.dry_run,
    })
}

/// One table line; the real server of a command at `<kind>.destination`.
fn table_command(c: &pb::TableCommand) -> Result<Numbered, FieldError> {
    use pb::table_command::Command as C;
    let dest_command = |d: &pb::DestinationCommand| {
        Ok::<_, FieldError>((
            nested(d.service.as_ref(), "service", service_key)?,
            nested(d.destination.as_ref(), "destination", destination)?,
        ))
    };
    let command = match &c.command {
        None => return Err(FieldError::new("command", Problem::Missing)),
        Some(C::AddService(s)) => {
            if !s.destinations.is_empty() {
                return Err(FieldError::new(
                    "add_service.destinations",
                    Problem::ReadOnly("add real servers with add_destination"),
                ));
            }
            Command::AddService(service(s).at("add_service")?)
        }
        Some(C::EditService(s)) => Command::EditService(service(s).at("edit_service")?),
        Some(C::DeleteService(k)) => Command::DeleteService(service_key(k).at("delete_service")?),
        Some(C::Clear(_)) => Command::Clear,
        Some(C::AddDestination(d)) => {
            let (key, dest) = dest_command(d).at("add_destination")?;
            Command::AddDest(key, dest)
        }
        Some(C::EditDestination(d)) => {
            let (service, dest) = dest_command(d).at("edit_destination")?;
            let keep_weight = d.destination.as_ref().is_some_and(|d| d.weight.is_none());
            Command::EditDest {
                service,
                dest,
                keep_weight,
            }
        }
        Some(C::DeleteDestination(d)) => {
            let at = "delete_destination";
            let service = nested(d.service.as_ref(), "service", service_key).at(at)?;
            let (addr, port) =
                nested(d.destination.as_ref(), "destination", destination_address).at(at)?;
            Command::DeleteDest {
                service,
                addr,
                port,
            }
        }
        Some(C::Zero(k)) => Command::Zero(service_key(k).at("zero")?),
    };
    Ok(Numbered {
        line: c.line,
        command,
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
                address: dest.addr.to_string(),
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

    use super::*;
    use crate::ipvs::{ForwardMethod, Protocol, Scheduler, ServiceKey};

    fn wire_key(port: u32) -> pb::ServiceKey {
        pb::ServiceKey {
            protocol: pb::Protocol::Tcp.into(),
            address: "10.0.0.1".into(),
            port,
            ..Default::default()
        }
    }

    fn wire_service(port: u32, dests: Vec<pb::Destination>) -> pb::Service {
        pb::Service {
            key: Some(wire_key(port)),
            scheduler: pb::Scheduler::Rr.into(),
            destinations: dests,
            ..Default::default()
        }
    }

    fn wire_dest(last: u8, weight: Option<u32>) -> pb::Destination {
        pb::Destination {
            address: format!("10.0.1.{last}"),
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
            ..Default::default()
        };
        let desired = Form::Desired {
            services: vec![
                (
                    Service::new(key(80), Scheduler::Rr),
                    vec![dest(1, 1), dest(2, 0)],
                ),
                (Service::new(key(81), Scheduler::Rr), vec![]),
            ],
            prune: true,
        };
        assert_eq!(
            apply_request(&ok),
            Ok(ApplyInput {
                form: desired.clone(),
                dry_run: false,
            })
        );
        // ON_TOP said outright is the zero value's meaning: still the desired table.
        let on_top = pb::ApplyRequest {
            mode: pb::ApplyMode::OnTop.into(),
            ..ok.clone()
        };
        assert_eq!(apply_request(&on_top).map(|i| i.form), Ok(desired));

        let mut unspecified_scheduler = ok.clone();
        unspecified_scheduler.services[1].scheduler = 0;
        assert_eq!(
            apply_request(&unspecified_scheduler).map(|i| match i.form {
                Form::Desired { services, .. } => services[1].0.scheduler.clone(),
                Form::Commands { .. } => panic!("the desired form expected"),
            }),
            Ok(Scheduler::Wlc)
        );

        type Breaker = fn(&mut pb::ApplyRequest);
        let refusals: Vec<(Breaker, &str)> = vec![
            (
                |r| r.services[1].destinations.push(wire_dest(3, Some(70000))),
                "invalid services[1].destinations[0].weight: 70000 is above the maximum 65535",
            ),
            (
                |r| r.services[0].destinations[1].address = "10.0.1".into(),
                r#"invalid services[0].destinations[1].address: "10.0.1" is not an IP address"#,
            ),
            (
                |r| r.services[0].scheduler = 99,
                "invalid services[0].scheduler: 99 is not a known value",
            ),
            (
                |r| r.services[1].key = Some(pb::ServiceKey::default()),
                "invalid services[1].key.address: is required",
            ),
            (
                |r| {
                    if let Some(k) = r.services[1].key.as_mut() {
                        k.family = pb::AddressFamily::Inet6.into();
                    }
                },
                r#"invalid services[1].key.family: does not match the address "10.0.0.1""#,
            ),
        ];
        for (break_it, want) in refusals {
            let mut req = ok.clone();
            break_it(&mut req);
            assert_eq!(
                apply_request(&req).map_err(|e| e.to_string()),
                Err(want.to_owned())
            );
        }
    }

    fn command(line: u32, c: pb::table_command::Command) -> pb::TableCommand {
        pb::TableCommand {
            line,
            command: Some(c),
        }
    }

    fn dest_command(port: u32, d: pb::Destination) -> pb::DestinationCommand {
        pb::DestinationCommand {
            service: Some(wire_key(port)),
            destination: Some(d),
        }
    }

    #[test]
    fn commands_parse_in_order_with_their_lines() {
        use pb::table_command::Command as C;
        let req = pb::ApplyRequest {
            commands: vec![
                command(1, C::AddService(wire_service(80, vec![]))),
                command(
                    2,
                    C::AddDestination(dest_command(80, wire_dest(1, Some(3)))),
                ),
                command(3, C::EditDestination(dest_command(80, wire_dest(1, None)))),
                command(4, C::EditService(wire_service(80, vec![]))),
                command(
                    5,
                    C::DeleteDestination(dest_command(
                        80,
                        pb::Destination {
                            address: "10.0.1.1".into(),
                            port: 8080,
                            ..Default::default()
                        },
                    )),
                ),
                command(6, C::Zero(wire_key(80))),
                command(7, C::DeleteService(wire_key(80))),
                command(8, C::Clear(pb::ClearTable {})),
            ],
            mode: pb::ApplyMode::Replace.into(),
            dry_run: true,
            ..Default::default()
        };
        let n = |line, command| Numbered { line, command };
        let ip: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(
            apply_request(&req),
            Ok(ApplyInput {
                form: Form::Commands {
                    commands: vec![
                        n(1, Command::AddService(Service::new(key(80), Scheduler::Rr))),
                        n(2, Command::AddDest(key(80), dest(1, 3))),
                        n(
                            3,
                            Command::EditDest {
                                service: key(80),
                                dest: dest(1, 1),
                                keep_weight: true,
                            }
                        ),
                        n(
                            4,
                            Command::EditService(Service::new(key(80), Scheduler::Rr))
                        ),
                        n(
                            5,
                            Command::DeleteDest {
                                service: key(80),
                                addr: ip,
                                port: 8080,
                            }
                        ),
                        n(6, Command::Zero(key(80))),
                        n(7, Command::DeleteService(key(80))),
                        n(8, Command::Clear),
                    ],
                    start: Start::Empty,
                },
                dry_run: true,
            })
        );
        let clear = || vec![command(1, C::Clear(pb::ClearTable {}))];
        let forms: Vec<(&str, pb::ApplyRequest, Form)> = vec![
            (
                "REPLACE alone: an empty input replacing the table",
                pb::ApplyRequest {
                    mode: pb::ApplyMode::Replace.into(),
                    ..Default::default()
                },
                Form::Commands {
                    commands: vec![],
                    start: Start::Empty,
                },
            ),
            (
                "the zero value of mode runs commands on top of the current table",
                pb::ApplyRequest {
                    commands: clear(),
                    ..Default::default()
                },
                Form::Commands {
                    commands: vec![n(1, Command::Clear)],
                    start: Start::Current,
                },
            ),
            (
                "so does ON_TOP",
                pb::ApplyRequest {
                    commands: clear(),
                    mode: pb::ApplyMode::OnTop.into(),
                    ..Default::default()
                },
                Form::Commands {
                    commands: vec![n(1, Command::Clear)],
                    start: Start::Current,
                },
            ),
            (
                "ON_TOP alone is an empty desired table",
                pb::ApplyRequest {
                    mode: pb::ApplyMode::OnTop.into(),
                    ..Default::default()
                },
                Form::Desired {
                    services: vec![],
                    prune: false,
                },
            ),
            (
                "a delete reads only the real server's address and port",
                pb::ApplyRequest {
                    commands: vec![command(
                        1,
                        C::DeleteDestination(dest_command(
                            80,
                            pb::Destination {
                                weight: Some(70000),
                                forwarding: 99,
                                ..wire_dest(1, None)
                            },
                        )),
                    )],
                    ..Default::default()
                },
                Form::Commands {
                    commands: vec![n(
                        1,
                        Command::DeleteDest {
                            service: key(80),
                            addr: ip,
                            port: 8080,
                        },
                    )],
                    start: Start::Current,
                },
            ),
        ];
        for (what, req, want) in forms {
            assert_eq!(apply_request(&req).map(|i| i.form), Ok(want), "{what}");
        }

        let on_top = pb::ApplyRequest {
            commands: clear(),
            ..Default::default()
        };
        let refusals: Vec<(pb::ApplyRequest, &str)> = vec![
            (
                pb::ApplyRequest {
                    prune: true,
                    ..on_top.clone()
                },
                "invalid prune: must be left unset with commands or REPLACE",
            ),
            (
                pb::ApplyRequest {
                    services: vec![wire_service(80, vec![])],
                    ..on_top.clone()
                },
                "invalid services: must be left unset with commands or REPLACE",
            ),
            (
                pb::ApplyRequest {
                    services: vec![wire_service(80, vec![])],
                    mode: pb::ApplyMode::Replace.into(),
                    ..Default::default()
                },
                "invalid services: must be left unset with commands or REPLACE",
            ),
            (
                pb::ApplyRequest {
                    prune: true,
                    mode: pb::ApplyMode::Replace.into(),
                    ..Default::default()
                },
                "invalid prune: must be left unset with commands or REPLACE",
            ),
            (
                pb::ApplyRequest {
                    mode: 7,
                    ..on_top.clone()
                },
                "invalid mode: 7 is not a known value",
            ),
            (
                pb::ApplyRequest {
                    services: vec![wire_service(80, vec![])],
                    mode: 7,
                    ..Default::default()
                },
                "invalid mode: 7 is not a known value",
            ),
            (
                pb::ApplyRequest {
                    commands: vec![
                        command(1, C::Clear(pb::ClearTable {})),
                        pb::TableCommand::default(),
                    ],
                    ..Default::default()
                },
                "invalid commands[1].command: is required",
            ),
            (
                pb::ApplyRequest {
                    commands: vec![command(
                        1,
                        C::AddService(wire_service(80, vec![wire_dest(1, None)])),
                    )],
                    ..Default::default()
                },
                "invalid commands[0].add_service.destinations: is read-only here: add real \
                 servers with add_destination",
            ),
            (
                pb::ApplyRequest {
                    commands: vec![command(
                        1,
                        C::AddDestination(dest_command(80, wire_dest(1, Some(70000)))),
                    )],
                    ..Default::default()
                },
                "invalid commands[0].add_destination.destination.weight: 70000 is above the \
                 maximum 65535",
            ),
            (
                pb::ApplyRequest {
                    commands: vec![command(
                        1,
                        C::DeleteDestination(dest_command(
                            80,
                            pb::Destination {
                                address: "10.0.1.1:8080".into(),
                                ..Default::default()
                            },
                        )),
                    )],
                    ..Default::default()
                },
                "invalid commands[0].delete_destination.destination.address: \"10.0.1.1:8080\" \
                 is not an IP address",
            ),
            (
                pb::ApplyRequest {
                    commands: vec![command(
                        1,
                        C::Zero(pb::ServiceKey {
                            fwmark: 1,
                            ..wire_key(80)
                        }),
                    )],
                    ..Default::default()
                },
                "invalid commands[0].zero.protocol: must be unset for a fwmark service",
            ),
        ];
        for (req, message) in refusals {
            assert_eq!(
                apply_request(&req).map_err(|e| e.to_string()),
                Err(message.to_owned())
            );
        }
    }

    #[test]
    fn changes_carry_new_settings_and_words() {
        let svc = Service::new(key(80), Scheduler::Rr);
        let create = change_to_proto(&Change::CreateService(svc.clone()));
        assert_eq!(create.kind, i32::from(pb::ChangeKind::CreateService));
        assert_eq!(
            create.service_key,
            Some(pb::ServiceKey {
                family: pb::AddressFamily::Inet.into(),
                ..wire_key(80)
            })
        );
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
        assert_eq!(
            update.destination.map(|d| (d.address, d.weight)),
            Some(("10.0.1.1".to_owned(), Some(4)))
        );
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
                address: "10.0.1.2".into(),
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
