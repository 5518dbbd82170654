//! The minimal ordered changes from the kernel's table to a desired one. Pure.
//!
//! What the kernel can change in place is changed in place, so connections and counters
//! survive: `ip_vs_edit_service` replaces a service's scheduler, flags, persistence timeout,
//! netmask and persistence engine; `ip_vs_edit_dest` a real server's forwarding method, weight,
//! thresholds and tunnel settings. Only the keys cannot change (a service's protocol, address,
//! port, or fwmark and family; a real server's address and port): another key is another
//! service or real server, so a moved one is deleted and created.
//!
//! Order: services by key, each one created or updated, then its real servers added, updated
//! and only then deleted (a service never has fewer servers than needed on the way); services
//! left out are deleted last, with their real servers (the kernel deletes those with the
//! service). The same inputs always give the same plan.

use std::collections::BTreeMap;

use super::desired::{DesiredTable, DestKey};
use crate::ipvs::{
    Destination, DestinationEntry, IpvsOp, Service, ServiceEntry, ServiceFlags, ServiceKey,
};

/// What a change does, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    CreateService,
    UpdateService,
    DeleteService,
    AddDestination,
    UpdateDestination,
    DeleteDestination,
}

/// One change of a plan, with what undoing it needs (the settings it replaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreateService(Service),
    UpdateService {
        from: Service,
        to: Service,
    },
    /// The kernel deletes the real servers with their service; they are kept to undo it.
    DeleteService {
        service: Service,
        dests: Vec<Destination>,
    },
    AddDestination {
        service: ServiceKey,
        dest: Destination,
    },
    UpdateDestination {
        service: ServiceKey,
        from: Destination,
        to: Destination,
    },
    DeleteDestination {
        service: ServiceKey,
        dest: Destination,
    },
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::CreateService(_) => ChangeKind::CreateService,
            Change::UpdateService { .. } => ChangeKind::UpdateService,
            Change::DeleteService { .. } => ChangeKind::DeleteService,
            Change::AddDestination { .. } => ChangeKind::AddDestination,
            Change::UpdateDestination { .. } => ChangeKind::UpdateDestination,
            Change::DeleteDestination { .. } => ChangeKind::DeleteDestination,
        }
    }

    pub fn service_key(&self) -> ServiceKey {
        match self {
            Change::CreateService(s) | Change::UpdateService { to: s, .. } => s.key,
            Change::DeleteService { service, .. } => service.key,
            Change::AddDestination { service, .. }
            | Change::UpdateDestination { service, .. }
            | Change::DeleteDestination { service, .. } => *service,
        }
    }

    /// The write that makes this change.
    pub fn op(&self) -> IpvsOp {
        match self {
            Change::CreateService(s) => IpvsOp::NewService(s.clone()),
            Change::UpdateService { to, .. } => IpvsOp::SetService(to.clone()),
            Change::DeleteService { service, .. } => IpvsOp::DelService(service.key),
            Change::AddDestination { service, dest } => IpvsOp::NewDest(*service, *dest),
            Change::UpdateDestination { service, to, .. } => IpvsOp::SetDest(*service, *to),
            Change::DeleteDestination { service, dest } => IpvsOp::DelDest {
                service: *service,
                addr: dest.addr,
                port: dest.port,
            },
        }
    }

    /// The writes that take this change back, in order.
    pub fn undo(&self) -> Vec<IpvsOp> {
        match self {
            Change::CreateService(s) => vec![IpvsOp::DelService(s.key)],
            Change::UpdateService { from, .. } => vec![IpvsOp::SetService(from.clone())],
            Change::DeleteService { service, dests } => {
                std::iter::once(IpvsOp::NewService(service.clone()))
                    .chain(dests.iter().map(|d| IpvsOp::NewDest(service.key, *d)))
                    .collect()
            }
            Change::AddDestination { service, dest } => vec![IpvsOp::DelDest {
                service: *service,
                addr: dest.addr,
                port: dest.port,
            }],
            Change::UpdateDestination { service, from, .. } => {
                vec![IpvsOp::SetDest(*service, *from)]
            }
            Change::DeleteDestination { service, dest } => vec![IpvsOp::NewDest(*service, *dest)],
        }
    }

    /// The change in ipvsadm's words, e.g. `-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1`.
    pub fn description(&self) -> String {
        self.op().to_string()
    }
}

/// Whether the kernel's service already has the desired settings. HASHED is the kernel's.
fn same_service(have: &Service, want: &Service) -> bool {
    have.scheduler == want.scheduler
        && have.flags.0 & ServiceFlags::USER_MASK == want.flags.0 & ServiceFlags::USER_MASK
        && have.timeout == want.timeout
        && have.netmask == want.netmask
        && have.pe_name == want.pe_name
}

/// The changes that turn `current` (the kernel's table) into `desired`. Real servers of
/// listed services that are not desired are deleted; unlisted services are deleted only with
/// `prune`.
pub fn plan(
    current: &[(ServiceEntry, Vec<DestinationEntry>)],
    desired: &DesiredTable,
    prune: bool,
) -> Vec<Change> {
    plan_with(current, desired, |_, dest| dest.is_some() || prune)
}

/// The changes that turn `current` into `desired`, deleting an undesired real server or
/// service only where `deletable(service, real server)` says so (`None`: the service itself).
pub fn plan_with(
    current: &[(ServiceEntry, Vec<DestinationEntry>)],
    desired: &DesiredTable,
    deletable: impl Fn(&ServiceKey, Option<&DestKey>) -> bool,
) -> Vec<Change> {
    let current: BTreeMap<ServiceKey, (&Service, BTreeMap<DestKey, &Destination>)> = current
        .iter()
        .map(|(s, dests)| {
            let dests = dests
                .iter()
                .map(|d| ((d.dest.addr, d.dest.port), &d.dest))
                .collect();
            (s.service.key, (&s.service, dests))
        })
        .collect();
    let mut changes = Vec::new();
    for want in desired.services() {
        let key = want.service.key;
        let Some((have, have_dests)) = current.get(&key) else {
            changes.push(Change::CreateService(want.service.clone()));
            changes.extend(want.dests.values().map(|d| Change::AddDestination {
                service: key,
                dest: *d,
            }));
            continue;
        };
        if !same_service(have, &want.service) {
            changes.push(Change::UpdateService {
                from: (*have).clone(),
                to: want.service.clone(),
            });
        }
        let mut updates = Vec::new();
        for (k, d) in &want.dests {
            match have_dests.get(k) {
                None => changes.push(Change::AddDestination {
                    service: key,
                    dest: *d,
                }),
                Some(h) if **h != *d => updates.push(Change::UpdateDestination {
                    service: key,
                    from: **h,
                    to: *d,
                }),
                Some(_) => {}
            }
        }
        changes.extend(updates);
        changes.extend(
            have_dests
                .iter()
                .filter(|(k, _)| !want.dests.contains_key(k) && deletable(&key, Some(k)))
                .map(|(_, h)| Change::DeleteDestination {
                    service: key,
                    dest: **h,
                }),
        );
    }
    changes.extend(
        current
            .iter()
            .filter(|(k, _)| desired.get(k).is_none() && deletable(k, None))
            .map(|(_, (s, dests))| Change::DeleteService {
                service: (*s).clone(),
                dests: dests.values().map(|d| **d).collect(),
            }),
    );
    changes
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::ipvs::{ForwardMethod, Protocol, Scheduler, Stats, Tunnel, TunnelType};

    fn tcp(s: &str) -> ServiceKey {
        let sa: SocketAddr = s.parse().expect("test address");
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }

    fn masq(s: &str, weight: u32) -> Destination {
        let sa: SocketAddr = s.parse().expect("test address");
        Destination {
            forward: ForwardMethod::Masquerade,
            weight,
            ..Destination::new(sa.ip(), sa.port())
        }
    }

    fn svc(key: &str, sched: Scheduler) -> Service {
        Service::new(tcp(key), sched)
    }

    /// A table as the kernel reports it: HASHED set, counters running.
    fn kernel(table: &[(Service, Vec<Destination>)]) -> Vec<(ServiceEntry, Vec<DestinationEntry>)> {
        table
            .iter()
            .map(|(s, dests)| {
                let mut service = s.clone();
                service.flags = service.flags.with(ServiceFlags::HASHED, true);
                let stats = Stats {
                    conns: 42,
                    ..Stats::default()
                };
                let dests = dests
                    .iter()
                    .map(|d| DestinationEntry {
                        dest: *d,
                        active_conns: 1,
                        inactive_conns: 2,
                        persistent_conns: 0,
                        stats,
                    })
                    .collect();
                (ServiceEntry { service, stats }, dests)
            })
            .collect()
    }

    fn desired(table: &[(Service, Vec<Destination>)]) -> DesiredTable {
        DesiredTable::new(table.to_vec()).expect("valid desired table")
    }

    #[test]
    fn plans() {
        let a = || svc("10.0.0.1:80", Scheduler::Rr);
        let b = || svc("10.0.0.2:80", Scheduler::Wrr);
        let c = || svc("10.0.0.3:80", Scheduler::Lc);
        let hashed = |mut s: Service| {
            s.flags = s.flags.with(ServiceFlags::HASHED, true);
            s
        };
        let d1 = masq("10.0.1.1:8080", 1);
        let d2 = masq("10.0.1.2:8080", 1);
        let d3 = masq("10.0.1.3:8080", 1);
        let mut persistent = a();
        persistent.flags = ServiceFlags(ServiceFlags::PERSISTENT);
        persistent.timeout = 300;
        let mut with_pe = a();
        with_pe.pe_name = Some("sip".into());
        let mut gue = masq("10.0.1.1:8080", 1);
        gue.forward = ForwardMethod::Tunnel;
        gue.port = 80;
        gue.tunnel = Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            ..Tunnel::default()
        };
        type Table = Vec<(Service, Vec<Destination>)>;
        let cases: Vec<(&str, Table, Table, bool, Vec<Change>)> = vec![
            ("empty to empty", vec![], vec![], true, vec![]),
            (
                "unchanged: nothing, not even the counters are touched",
                vec![(a(), vec![d1, d2]), (b(), vec![])],
                vec![(b(), vec![]), (a(), vec![d2, d1])],
                true,
                vec![],
            ),
            (
                "created services before their real servers, in key order",
                vec![],
                vec![(b(), vec![d2, d1]), (a(), vec![d3])],
                false,
                vec![
                    Change::CreateService(a()),
                    Change::AddDestination {
                        service: a().key,
                        dest: d3,
                    },
                    Change::CreateService(b()),
                    Change::AddDestination {
                        service: b().key,
                        dest: d1,
                    },
                    Change::AddDestination {
                        service: b().key,
                        dest: d2,
                    },
                ],
            ),
            (
                "a new scheduler is an update in place",
                vec![(a(), vec![d1])],
                vec![(svc("10.0.0.1:80", Scheduler::Wlc), vec![d1])],
                false,
                vec![Change::UpdateService {
                    from: hashed(a()),
                    to: svc("10.0.0.1:80", Scheduler::Wlc),
                }],
            ),
            (
                "persistence and a persistence engine are updates in place too",
                vec![(a(), vec![]), (b(), vec![])],
                vec![(persistent.clone(), vec![]), (b(), vec![])],
                false,
                vec![Change::UpdateService {
                    from: hashed(a()),
                    to: persistent.clone(),
                }],
            ),
            (
                "removing a persistence engine",
                vec![(with_pe.clone(), vec![])],
                vec![(a(), vec![])],
                false,
                vec![Change::UpdateService {
                    from: hashed(with_pe.clone()),
                    to: a(),
                }],
            ),
            (
                "real servers: added, updated, then deleted",
                vec![(a(), vec![d1, d2])],
                vec![(a(), vec![masq("10.0.1.1:8080", 5), d3])],
                false,
                vec![
                    Change::AddDestination {
                        service: a().key,
                        dest: d3,
                    },
                    Change::UpdateDestination {
                        service: a().key,
                        from: d1,
                        to: masq("10.0.1.1:8080", 5),
                    },
                    Change::DeleteDestination {
                        service: a().key,
                        dest: d2,
                    },
                ],
            ),
            (
                "a new forwarding method and tunnel are updates; a new port is another server",
                vec![(a(), vec![masq("10.0.1.1:80", 1), d2])],
                vec![(a(), vec![gue, masq("10.0.1.2:8081", 1)])],
                false,
                vec![
                    Change::AddDestination {
                        service: a().key,
                        dest: masq("10.0.1.2:8081", 1),
                    },
                    Change::UpdateDestination {
                        service: a().key,
                        from: masq("10.0.1.1:80", 1),
                        to: gue,
                    },
                    Change::DeleteDestination {
                        service: a().key,
                        dest: d2,
                    },
                ],
            ),
            (
                "without prune, unlisted services stay",
                vec![(a(), vec![d1]), (b(), vec![d2]), (c(), vec![])],
                vec![(b(), vec![d2])],
                false,
                vec![],
            ),
            (
                "with prune, unlisted services go last, with their real servers",
                vec![(c(), vec![d3]), (b(), vec![d2]), (a(), vec![d1, d2])],
                vec![(b(), vec![d1])],
                true,
                vec![
                    Change::AddDestination {
                        service: b().key,
                        dest: d1,
                    },
                    Change::DeleteDestination {
                        service: b().key,
                        dest: d2,
                    },
                    Change::DeleteService {
                        service: hashed(a()),
                        dests: vec![d1, d2],
                    },
                    Change::DeleteService {
                        service: hashed(c()),
                        dests: vec![d3],
                    },
                ],
            ),
            (
                "a moved service is another service",
                vec![(a(), vec![d1])],
                vec![(svc("10.0.0.1:81", Scheduler::Rr), vec![d1])],
                true,
                vec![
                    Change::CreateService(svc("10.0.0.1:81", Scheduler::Rr)),
                    Change::AddDestination {
                        service: tcp("10.0.0.1:81"),
                        dest: d1,
                    },
                    Change::DeleteService {
                        service: hashed(a()),
                        dests: vec![d1],
                    },
                ],
            ),
        ];
        for (what, have, want, prune, expected) in cases {
            let got = plan(&kernel(&have), &desired(&want), prune);
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn a_kernel_scheduler_this_build_does_not_know_is_replaced() {
        let mut odd = svc("10.0.0.1:80", Scheduler::Rr);
        odd.scheduler = Scheduler::Other("new".into());
        let got = plan(
            &kernel(&[(odd, vec![])]),
            &desired(&[(svc("10.0.0.1:80", Scheduler::Rr), vec![])]),
            false,
        );
        assert_eq!(
            got.iter().map(Change::description).collect::<Vec<_>>(),
            vec!["-E -t 10.0.0.1:80 -s rr"]
        );
    }

    #[test]
    fn each_change_is_undone_by_its_inverse() {
        let key = tcp("10.0.0.1:80");
        let old = svc("10.0.0.1:80", Scheduler::Rr);
        let new = svc("10.0.0.1:80", Scheduler::Wrr);
        let d1 = masq("10.0.1.1:8080", 1);
        let d2 = masq("10.0.1.2:8080", 3);
        let del_d1 = IpvsOp::DelDest {
            service: key,
            addr: d1.addr,
            port: d1.port,
        };
        let cases: Vec<(Change, ChangeKind, IpvsOp, Vec<IpvsOp>, &str)> = vec![
            (
                Change::CreateService(new.clone()),
                ChangeKind::CreateService,
                IpvsOp::NewService(new.clone()),
                vec![IpvsOp::DelService(key)],
                "-A -t 10.0.0.1:80 -s wrr",
            ),
            (
                Change::UpdateService {
                    from: old.clone(),
                    to: new.clone(),
                },
                ChangeKind::UpdateService,
                IpvsOp::SetService(new.clone()),
                vec![IpvsOp::SetService(old.clone())],
                "-E -t 10.0.0.1:80 -s wrr",
            ),
            (
                Change::DeleteService {
                    service: old.clone(),
                    dests: vec![d1, d2],
                },
                ChangeKind::DeleteService,
                IpvsOp::DelService(key),
                vec![
                    IpvsOp::NewService(old.clone()),
                    IpvsOp::NewDest(key, d1),
                    IpvsOp::NewDest(key, d2),
                ],
                "-D -t 10.0.0.1:80",
            ),
            (
                Change::AddDestination {
                    service: key,
                    dest: d1,
                },
                ChangeKind::AddDestination,
                IpvsOp::NewDest(key, d1),
                vec![del_d1.clone()],
                "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1",
            ),
            (
                Change::UpdateDestination {
                    service: key,
                    from: d1,
                    to: masq("10.0.1.1:8080", 9),
                },
                ChangeKind::UpdateDestination,
                IpvsOp::SetDest(key, masq("10.0.1.1:8080", 9)),
                vec![IpvsOp::SetDest(key, d1)],
                "-e -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 9",
            ),
            (
                Change::DeleteDestination {
                    service: key,
                    dest: d1,
                },
                ChangeKind::DeleteDestination,
                del_d1,
                vec![IpvsOp::NewDest(key, d1)],
                "-d -t 10.0.0.1:80 -r 10.0.1.1:8080",
            ),
        ];
        for (change, kind, op, undo, description) in cases {
            assert_eq!(change.kind(), kind);
            assert_eq!(change.service_key(), key);
            assert_eq!(change.op(), op, "{change:?}");
            assert_eq!(change.undo(), undo, "{change:?}");
            assert_eq!(change.description(), description);
        }
    }
}
