//! ipvsadm's table lines (`-A -E -D -C -a -e -d`, and `-Z` of one service) run in order
//! against a model of a table, giving the desired table they leave behind. Pure.
//!
//! This is how `ipvsadm -R` input is applied on top of the live table: the agent reads the
//! table under its apply lock, runs the commands here, and [`plan`](super::plan()) turns the
//! result into the few writes that make it so. Checking against the table the agent itself
//! read, rather than one a client read earlier, means a concurrent writer cannot make a
//! checked input wrong by the time it is applied. A command the kernel would refuse at its
//! point in the input is refused here with the kernel's reason, before anything is written.
//!
//! Starting from an empty table instead gives `ipvsadm-restore`'s meaning (the table is
//! cleared, then the input restored), for the whole-table replacement.
//!
//! Services and real servers the commands do not touch are kept exactly as the kernel reports
//! them, so the plan leaves them alone even when this build would not accept their settings
//! (a scheduler it does not know, say).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::desired::{DesiredService, DesiredTable, DestKey};
use crate::ipvs::{
    Destination, DestinationEntry, IpvsOp, Service, ServiceEntry, ServiceKey, ValidationError,
};

/// One table line, as the kernel would be asked to do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`
    AddService(Service),
    /// `-E`: the service's new settings.
    EditService(Service),
    /// `-D`
    DeleteService(ServiceKey),
    /// `-C`
    Clear,
    /// `-a`
    AddDest(ServiceKey, Destination),
    /// `-e`: the real server's new settings; `keep_weight` keeps its current weight (the
    /// request left the weight unset).
    EditDest {
        service: ServiceKey,
        dest: Destination,
        keep_weight: bool,
    },
    /// `-d`
    DeleteDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// `-Z` of one service: the service must exist; nothing changes.
    Zero(ServiceKey),
}

impl Command {
    /// The write the kernel would be asked for, for the words in messages.
    fn op(&self) -> IpvsOp {
        match self {
            Command::AddService(s) => IpvsOp::NewService(s.clone()),
            Command::EditService(s) => IpvsOp::SetService(s.clone()),
            Command::DeleteService(k) => IpvsOp::DelService(*k),
            Command::Clear => IpvsOp::Flush,
            Command::AddDest(k, d) => IpvsOp::NewDest(*k, *d),
            Command::EditDest { service, dest, .. } => IpvsOp::SetDest(*service, *dest),
            Command::DeleteDest {
                service,
                addr,
                port,
            } => IpvsOp::DelDest {
                service: *service,
                addr: *addr,
                port: *port,
            },
            Command::Zero(k) => IpvsOp::Zero(Some(*k)),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.op().fmt(f)
    }
}

/// A command with the caller's reference for it (an input line number; 0 for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub line: u32,
    pub command: Command,
}

/// What the commands run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The table as it is (`ipvsadm -R`).
    Current,
    /// An empty table (`ipvsadm-restore`, which clears the table first).
    Empty,
}

/// Why the kernel would refuse a command, in ipvsadm's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Service already exists")]
    ServiceExists,
    /// `-E`, `-D`, `-Z` of a missing service.
    #[error("No such service")]
    NoSuchService,
    /// A real-server command on a missing service.
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestExists,
    #[error("No such destination")]
    NoSuchDest,
    /// The service or real server breaks ipvsadm's rules.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl Refusal {
    /// The kernel's errno for the same refusal; `None` for a broken rule, which the kernel
    /// may never see.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Refusal::ServiceExists | Refusal::DestExists => Some(libc::EEXIST),
            Refusal::NoSuchService | Refusal::ServiceNotDefined => Some(libc::ESRCH),
            Refusal::NoSuchDest => Some(libc::ENOENT),
            Refusal::Invalid(_) => None,
        }
    }
}

/// The first command refused; nothing has been written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commands[{index}]{}: \"{command}\": {refusal}", line_suffix(*.line))]
pub struct CommandError {
    /// 0-based position in the request.
    pub index: usize,
    /// The caller's reference for it.
    pub line: u32,
    pub command: String,
    pub refusal: Refusal,
}

fn line_suffix(line: u32) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line})")
    }
}

/// The table as the commands so far have left it.
struct Model {
    services: BTreeMap<ServiceKey, DesiredService>,
}

impl Model {
    fn new(current: &[(ServiceEntry, Vec<DestinationEntry>)], start: Start) -> Self {
        let services = match start {
            Start::Empty => BTreeMap::new(),
            Start::Current => current
                .iter()
                .map(|(s, dests)| {
                    let dests = dests
                        .iter()
                        .map(|d| ((d.dest.addr, d.dest.port), d.dest))
                        .collect();
                    let entry = DesiredService {
                        service: s.service.clone(),
                        dests,
                    };
                    (s.service.key, entry)
                })
                .collect(),
        };
        Model { services }
    }

    fn dests(&mut self, key: &ServiceKey) -> Result<&mut BTreeMap<DestKey, Destination>, Refusal> {
        self.services
            .get_mut(key)
            .map(|s| &mut s.dests)
            .ok_or(Refusal::ServiceNotDefined)
    }

    /// Runs one command; the checks come in the kernel's order (the service is looked up
    /// first, then the settings are checked, then the real server is looked up).
    fn run(&mut self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::AddService(s) => {
                if self.services.contains_key(&s.key) {
                    return Err(Refusal::ServiceExists);
                }
                s.validate()?;
                self.services.insert(
                    s.key,
                    DesiredService {
                        service: s.clone(),
                        dests: BTreeMap::new(),
                    },
                );
            }
            Command::EditService(s) => {
                let entry = self
                    .services
                    .get_mut(&s.key)
                    .ok_or(Refusal::NoSuchService)?;
                s.validate()?;
                entry.service = s.clone();
            }
            Command::DeleteService(key) => {
                self.services.remove(key).ok_or(Refusal::NoSuchService)?;
            }
            Command::Clear => self.services.clear(),
            Command::AddDest(key, given) => {
                let dests = self.dests(key)?;
                let dest = given.normalized_for(key);
                dest.validate_for(key)?;
                if dests.contains_key(&(dest.addr, dest.port)) {
                    return Err(Refusal::DestExists);
                }
                dests.insert((dest.addr, dest.port), dest);
            }
            Command::EditDest {
                service,
                dest,
                keep_weight,
            } => {
                let dests = self.dests(service)?;
                let mut dest = dest.normalized_for(service);
                let have = dests
                    .get_mut(&(dest.addr, dest.port))
                    .ok_or(Refusal::NoSuchDest)?;
                if *keep_weight {
                    dest.weight = have.weight;
                }
                dest.validate_for(service)?;
                *have = dest;
            }
            Command::DeleteDest {
                service,
                addr,
                port,
            } => {
                self.dests(service)?
                    .remove(&(*addr, *port))
                    .ok_or(Refusal::NoSuchDest)?;
            }
            Command::Zero(key) => {
                if !self.services.contains_key(key) {
                    return Err(Refusal::NoSuchService);
                }
            }
        }
        Ok(())
    }
}

/// Runs `commands` in order against `current` (the kernel's table) or an empty table, and
/// returns the table they leave; the first refused command is the error.
pub fn run(
    current: &[(ServiceEntry, Vec<DestinationEntry>)],
    start: Start,
    commands: &[Numbered],
) -> Result<DesiredTable, CommandError> {
    let mut model = Model::new(current, start);
    for (index, n) in commands.iter().enumerate() {
        model.run(&n.command).map_err(|refusal| CommandError {
            index,
            line: n.line,
            command: n.command.to_string(),
            refusal,
        })?;
    }
    Ok(DesiredTable::from_checked(model.services))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::ipvs::{ForwardMethod, Protocol, Scheduler, ServiceFlags, Stats};
    use crate::state::{Change, plan};

    fn tcp(s: &str) -> ServiceKey {
        let sa: SocketAddr = s.parse().expect("test address");
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }

    fn svc(key: &str, sched: Scheduler) -> Service {
        Service::new(tcp(key), sched)
    }

    fn masq(s: &str, weight: u32) -> Destination {
        let sa: SocketAddr = s.parse().expect("test address");
        Destination {
            forward: ForwardMethod::Masquerade,
            weight,
            ..Destination::new(sa.ip(), sa.port())
        }
    }

    /// A table as the kernel reports it: HASHED set, counters running.
    fn kernel(table: &[(Service, Vec<Destination>)]) -> Vec<(ServiceEntry, Vec<DestinationEntry>)> {
        table
            .iter()
            .map(|(s, dests)| {
                let mut service = s.clone();
                service.flags = service.flags.with(ServiceFlags::HASHED, true);
                let stats = Stats {
                    conns: 9,
                    ..Stats::default()
                };
                let dests = dests
                    .iter()
                    .map(|d| DestinationEntry {
                        dest: *d,
                        active_conns: 1,
                        inactive_conns: 0,
                        persistent_conns: 0,
                        stats,
                    })
                    .collect();
                (ServiceEntry { service, stats }, dests)
            })
            .collect()
    }

    fn numbered(commands: Vec<Command>) -> Vec<Numbered> {
        commands
            .into_iter()
            .enumerate()
            .map(|(i, command)| Numbered {
                line: i as u32 + 1,
                command,
            })
            .collect()
    }

    /// The base table: `-A -t 10.1.1.1:80 -s rr`, `-a ... -r 10.2.2.2:80 -m`.
    fn base() -> Vec<(Service, Vec<Destination>)> {
        vec![(
            svc("10.1.1.1:80", Scheduler::Rr),
            vec![masq("10.2.2.2:80", 1)],
        )]
    }

    fn words(changes: &[Change]) -> Vec<String> {
        changes.iter().map(Change::description).collect()
    }

    /// Commands on top of a table: the writes they come to.
    #[test]
    fn on_top_writes_only_what_the_lines_change() {
        let a = || tcp("10.1.1.1:80");
        type Case = (&'static str, Vec<Command>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("nothing to do", vec![], vec![]),
            (
                "a new service is added; the existing one stays",
                vec![
                    Command::AddService(svc("10.3.3.3:80", Scheduler::Wrr)),
                    Command::AddDest(tcp("10.3.3.3:80"), masq("10.4.4.4:80", 1)),
                ],
                vec![
                    "-A -t 10.3.3.3:80 -s wrr",
                    "-a -t 10.3.3.3:80 -r 10.4.4.4:80 -m -w 1",
                ],
            ),
            (
                "an edit to the same settings writes nothing",
                vec![
                    Command::EditService(svc("10.1.1.1:80", Scheduler::Rr)),
                    Command::EditDest {
                        service: a(),
                        dest: masq("10.2.2.2:80", 1),
                        keep_weight: false,
                    },
                ],
                vec![],
            ),
            (
                "an edit in place keeps the real servers",
                vec![Command::EditService(svc("10.1.1.1:80", Scheduler::Wlc))],
                vec!["-E -t 10.1.1.1:80 -s wlc"],
            ),
            (
                "a real server edited without a weight keeps its weight",
                vec![
                    Command::EditDest {
                        service: a(),
                        dest: masq("10.2.2.2:80", 7),
                        keep_weight: false,
                    },
                    Command::EditDest {
                        service: a(),
                        dest: Destination {
                            upper_threshold: 10,
                            ..masq("10.2.2.2:80", 1)
                        },
                        keep_weight: true,
                    },
                ],
                vec!["-e -t 10.1.1.1:80 -r 10.2.2.2:80 -m -w 7 -x 10"],
            ),
            (
                "-d then -a of the same real server",
                vec![
                    Command::DeleteDest {
                        service: a(),
                        addr: "10.2.2.2".parse().expect("ip"),
                        port: 80,
                    },
                    Command::AddDest(a(), masq("10.2.2.2:80", 3)),
                ],
                vec!["-e -t 10.1.1.1:80 -r 10.2.2.2:80 -m -w 3"],
            ),
            (
                "-D deletes, with the real servers",
                vec![Command::DeleteService(a())],
                vec!["-D -t 10.1.1.1:80"],
            ),
            (
                "-C then the same service again: only the real server goes",
                vec![
                    Command::Clear,
                    Command::AddService(svc("10.1.1.1:80", Scheduler::Rr)),
                ],
                vec!["-d -t 10.1.1.1:80 -r 10.2.2.2:80"],
            ),
            (
                "-Z of an existing service writes nothing",
                vec![Command::Zero(a())],
                vec![],
            ),
        ];
        let current = kernel(&base());
        for (what, commands, want) in cases {
            let table = run(&current, Start::Current, &numbered(commands))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(words(&plan(&current, &table, true)), want, "{what}");
        }
    }

    /// The same commands against an empty table replace the whole table.
    #[test]
    fn from_empty_the_result_replaces_the_table() {
        let current = kernel(&base());
        let commands = numbered(vec![
            Command::AddService(svc("10.3.3.3:80", Scheduler::Wrr)),
            Command::AddDest(tcp("10.3.3.3:80"), masq("10.4.4.4:80", 1)),
        ]);
        let table = run(&current, Start::Empty, &commands).expect("runs");
        assert_eq!(
            words(&plan(&current, &table, true)),
            vec![
                "-A -t 10.3.3.3:80 -s wrr",
                "-a -t 10.3.3.3:80 -r 10.4.4.4:80 -m -w 1",
                "-D -t 10.1.1.1:80",
            ]
        );
        // A line that conflicts with the live table is fine on an empty one.
        let again = numbered(vec![Command::AddService(svc(
            "10.1.1.1:80",
            Scheduler::Wrr,
        ))]);
        assert!(run(&current, Start::Empty, &again).is_ok());
        assert_eq!(
            run(&current, Start::Current, &again).map_err(|e| e.refusal),
            Err(Refusal::ServiceExists)
        );
    }

    /// Every refusal, with the kernel's errno and the failing command's position.
    #[test]
    fn refusals_name_the_command_and_its_reason() {
        let a = || tcp("10.1.1.1:80");
        let missing = || tcp("10.9.9.9:80");
        let rs = || "10.2.2.2".parse::<IpAddr>().expect("ip");
        type Case = (Vec<Command>, Refusal, Option<i32>, &'static str);
        let cases: Vec<Case> = vec![
            (
                vec![Command::AddService(svc("10.1.1.1:80", Scheduler::Wrr))],
                Refusal::ServiceExists,
                Some(libc::EEXIST),
                "commands[0] (line 1): \"-A -t 10.1.1.1:80 -s wrr\": Service already exists",
            ),
            (
                vec![Command::EditService(svc("10.9.9.9:80", Scheduler::Rr))],
                Refusal::NoSuchService,
                Some(libc::ESRCH),
                "commands[0] (line 1): \"-E -t 10.9.9.9:80 -s rr\": No such service",
            ),
            (
                vec![Command::DeleteService(missing())],
                Refusal::NoSuchService,
                Some(libc::ESRCH),
                "commands[0] (line 1): \"-D -t 10.9.9.9:80\": No such service",
            ),
            (
                vec![Command::Zero(missing())],
                Refusal::NoSuchService,
                Some(libc::ESRCH),
                "commands[0] (line 1): \"-Z -t 10.9.9.9:80\": No such service",
            ),
            (
                vec![Command::AddDest(missing(), masq("10.2.2.2:80", 1))],
                Refusal::ServiceNotDefined,
                Some(libc::ESRCH),
                "commands[0] (line 1): \"-a -t 10.9.9.9:80 -r 10.2.2.2:80 -m -w 1\": Service \
                 not defined",
            ),
            (
                vec![Command::AddDest(a(), masq("10.2.2.2:80", 5))],
                Refusal::DestExists,
                Some(libc::EEXIST),
                "commands[0] (line 1): \"-a -t 10.1.1.1:80 -r 10.2.2.2:80 -m -w 5\": \
                 Destination already exists",
            ),
            (
                vec![
                    Command::AddService(svc("10.5.5.5:80", Scheduler::Wlc)),
                    Command::EditDest {
                        service: a(),
                        dest: masq("10.2.2.3:80", 1),
                        keep_weight: false,
                    },
                ],
                Refusal::NoSuchDest,
                Some(libc::ENOENT),
                "commands[1] (line 2): \"-e -t 10.1.1.1:80 -r 10.2.2.3:80 -m -w 1\": No such \
                 destination",
            ),
            (
                vec![
                    Command::DeleteDest {
                        service: a(),
                        addr: rs(),
                        port: 80,
                    },
                    Command::DeleteDest {
                        service: a(),
                        addr: rs(),
                        port: 80,
                    },
                ],
                Refusal::NoSuchDest,
                Some(libc::ENOENT),
                "commands[1] (line 2): \"-d -t 10.1.1.1:80 -r 10.2.2.2:80\": No such destination",
            ),
            (
                vec![
                    Command::DeleteService(a()),
                    Command::DeleteDest {
                        service: a(),
                        addr: rs(),
                        port: 80,
                    },
                ],
                Refusal::ServiceNotDefined,
                Some(libc::ESRCH),
                "commands[1] (line 2): \"-d -t 10.1.1.1:80 -r 10.2.2.2:80\": Service not defined",
            ),
            (
                vec![Command::Clear, Command::Zero(a())],
                Refusal::NoSuchService,
                Some(libc::ESRCH),
                "commands[1] (line 2): \"-Z -t 10.1.1.1:80\": No such service",
            ),
            (
                vec![Command::AddDest(a(), masq("10.2.2.9:80", 70000))],
                Refusal::Invalid(ValidationError::Weight(70000)),
                None,
                "commands[0] (line 1): \"-a -t 10.1.1.1:80 -r 10.2.2.9:80 -m -w 70000\": \
                 weight 70000 is out of range 0..65535",
            ),
        ];
        let current = kernel(&base());
        for (commands, refusal, errno, message) in cases {
            let err = run(&current, Start::Current, &numbered(commands)).expect_err(message);
            assert_eq!(err.refusal, refusal, "{message}");
            assert_eq!(err.refusal.errno(), errno, "{message}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn a_command_without_a_line_is_named_by_position() {
        let err = run(
            &[],
            Start::Current,
            &[Numbered {
                line: 0,
                command: Command::DeleteService(tcp("10.1.1.1:80")),
            }],
        )
        .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "commands[0]: \"-D -t 10.1.1.1:80\": No such service"
        );
    }

    /// Untouched services are kept as the kernel holds them, even with a scheduler this
    /// build does not know, so nothing is written for them.
    #[test]
    fn untouched_services_are_kept_as_they_are() {
        let mut odd = svc("10.7.7.7:80", Scheduler::Rr);
        odd.scheduler = Scheduler::Other("new".into());
        let current = kernel(&[(odd, vec![masq("10.2.2.2:80", 1)])]);
        let commands = numbered(vec![Command::AddService(svc("10.3.3.3:80", Scheduler::Rr))]);
        let table = run(&current, Start::Current, &commands).expect("runs");
        assert_eq!(
            words(&plan(&current, &table, true)),
            vec!["-A -t 10.3.3.3:80 -s rr"]
        );
    }
}
