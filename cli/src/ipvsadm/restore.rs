//! `-R`: ipvsadm's restore input, read whole and checked before anything is touched.
//!
//! ipvsadm runs each line of its input as a command line as soon as it reads it, against the
//! table as it is, and carries on after a line that fails; a bad line in the middle leaves a
//! half-applied table. ipvsctl instead:
//!
//! 1. splits the input into lines of words as ipvsadm's `config_stream_read` does;
//! 2. parses every line with ipvsadm's grammar ([`parse_line`]);
//! 3. by default ([`Mode::OnTop`], `ipvsadm -R`'s meaning) sends the table lines, in order, to
//!    the agent, which runs them against the table as it is when it takes its apply lock: a
//!    line the kernel would refuse at that point (`-A` of an existing service, `-d` of a
//!    missing real server, ...) fails the whole input with ipvsadm's words and its line
//!    number, and only what the lines change is written;
//! 4. with `--replace` ([`Mode::Replace`], the meaning of the `ipvsadm-restore` script, which
//!    clears the table first) runs the lines here on a model of the table that starts empty,
//!    so `-A -E -D -C -a -e -d` keep their meaning and a line refused at its point is refused
//!    the same way, and hands the resulting table to the agent as the whole desired table,
//!    which changes only what differs.
//!
//! `--set`, `--start-daemon`, `--stop-daemon` and `-Z` are not table contents: they are kept,
//! in input order, to run after the table is in place (a `-Z` of one service is still checked
//! at its point: the service must exist there). Listings (`-L`, `-S`) and `-h`/`-v` have no
//! meaning in a table and are refused. Input without any table line leaves the table alone
//! (an explicit `-C` empties it).

use std::collections::HashMap;
use std::net::IpAddr;

use ipvs_proto::v1 as pb;
use serde::Serialize;

use super::command::{Command, DestSpec, ServiceKey, ServiceSpec};
use super::errors::Op;
use super::parse::{ParseError, parse_line};
use super::request;
use super::resolve::Resolve;
use crate::exit;

/// One line of input, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based.
    pub number: usize,
    pub words: Vec<String>,
}

/// Splits `input` into lines of words: words are separated by blanks, tabs and carriage
/// returns; a word starting with `#` starts a comment; a leading `ipvsadm` word (a pasted
/// command) is dropped; lines left without words are skipped.
pub fn lines(input: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, text) in input.split('\n').enumerate() {
        let mut words: Vec<String> = text
            .split([' ', '\t', '\r'])
            .filter(|w| !w.is_empty())
            .take_while(|w| !w.starts_with('#'))
            .map(String::from)
            .collect();
        if words.first().is_some_and(|w| w == "ipvsadm") {
            words.remove(0);
        }
        if !words.is_empty() {
            out.push(Line {
                number: i + 1,
                words,
            });
        }
    }
    out
}

/// Why the input was refused: the first bad line, with ipvsadm's message and exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub code: u8,
    pub message: String,
}

/// Why the input was refused before the agent changed anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub error: LineError,
    /// On top of the current table: the table lines before the refused one. One of them may
    /// fail against the table first, which only the agent can tell.
    pub earlier: Vec<pb::TableCommand>,
    /// On top of the current table, a scheduler the API cannot name: the line with a known
    /// scheduler, whose answer decides ipvsadm's message (the kernel looks the service up
    /// before the scheduler, so `-A` of an existing service is "Service already exists").
    pub lookup: Option<Box<pb::TableCommand>>,
}

impl From<LineError> for Refused {
    fn from(error: LineError) -> Self {
        Refused {
            error,
            earlier: Vec::new(),
            lookup: None,
        }
    }
}

/// Whether the lines run on top of the current table or replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `ipvsadm -R`: each line against the table as it is.
    #[default]
    OnTop,
    /// `ipvsadm-restore` (`ipvsadm -C` then `ipvsadm -R`): the result is the whole table.
    Replace,
}

/// A line that runs after the table is in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub line: usize,
    /// The line's words, as given.
    pub text: String,
    pub command: Command,
}

/// What the input does to the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Table {
    /// The input has no table line: the table is left alone.
    Untouched,
    /// The whole desired table ([`Mode::Replace`]).
    Replace(Vec<pb::Service>),
    /// The table lines, in order, for the agent to run on the current table ([`Mode::OnTop`]).
    OnTop(Vec<pb::TableCommand>),
}

/// What the input asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    pub table: Table,
    /// `--set`, daemon and `-Z` lines, in input order.
    pub deferred: Vec<Deferred>,
}

/// A service of the model: its settings as the agent takes them, and its real servers.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    service: pb::Service,
    dests: Vec<DestSpec>,
}

/// The table as the lines so far have left it, in the order services were added.
#[derive(Debug, Default)]
pub struct Model {
    entries: Vec<Option<Entry>>,
    index: HashMap<ServiceKey, usize>,
}

/// ipvsadm's words for what the kernel refuses (libipvs's `ipvs_strerror`).
const SERVICE_EXISTS: &str = "Service already exists";
const NO_SUCH_SERVICE: &str = "No such service";
const SERVICE_NOT_DEFINED: &str = "Service not defined";
const DEST_EXISTS: &str = "Destination already exists";
const NO_SUCH_DEST: &str = "No such destination";

impl Model {
    fn entry(&mut self, key: &ServiceKey) -> Option<&mut Entry> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i)?.as_mut()
    }

    /// The real servers of service `key`, or ipvsadm's "Service not defined".
    fn dests(&mut self, key: &ServiceKey) -> Result<&mut Vec<DestSpec>, &'static str> {
        self.entry(key)
            .map(|e| &mut e.dests)
            .ok_or(SERVICE_NOT_DEFINED)
    }

    fn position(dests: &[DestSpec], addr: IpAddr, port: u16) -> Option<usize> {
        dests.iter().position(|d| d.addr == addr && d.port == port)
    }

    /// Runs a table command; `Err` is ipvsadm's message for the kernel's refusal.
    pub fn run(&mut self, command: &Command) -> Result<(), &'static str> {
        match command {
            Command::AddService(spec) => {
                if self.index.contains_key(&spec.key) {
                    return Err(SERVICE_EXISTS);
                }
                let service = request::service(spec)?;
                self.index.insert(spec.key, self.entries.len());
                self.entries.push(Some(Entry {
                    service,
                    dests: Vec::new(),
                }));
            }
            Command::EditService(spec) => {
                // The kernel looks the service up before the scheduler.
                let entry = self.entry(&spec.key).ok_or(NO_SUCH_SERVICE)?;
                entry.service = request::service(spec)?;
            }
            Command::DeleteService(key) => {
                let i = self.index.remove(key).ok_or(NO_SUCH_SERVICE)?;
                if let Some(slot) = self.entries.get_mut(i) {
                    *slot = None;
                }
            }
            Command::Flush => {
                self.entries.clear();
                self.index.clear();
            }
            Command::AddServer(key, dest) => {
                let dests = self.dests(key)?;
                if Self::position(dests, dest.addr, dest.port).is_some() {
                    return Err(DEST_EXISTS);
                }
                dests.push(*dest);
            }
            Command::EditServer(key, dest) => {
                let dests = self.dests(key)?;
                let i = Self::position(dests, dest.addr, dest.port).ok_or(NO_SUCH_DEST)?;
                dests[i] = *dest;
            }
            Command::DeleteServer(key, addr, port) => {
                let dests = self.dests(key)?;
                let i = Self::position(dests, *addr, *port).ok_or(NO_SUCH_DEST)?;
                dests.remove(i);
            }
            Command::Zero(Some(key)) => {
                self.entry(key).ok_or(NO_SUCH_SERVICE)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The table as the agent takes it.
    pub fn services(&self) -> Vec<pb::Service> {
        self.entries
            .iter()
            .flatten()
            .map(|e| pb::Service {
                destinations: e.dests.iter().map(request::destination).collect(),
                ..e.service.clone()
            })
            .collect()
    }
}

/// The option a read-only command is known by, for the refusal message.
fn read_only(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::List { .. } | Command::ListOther(_) => "-L",
        Command::Save { .. } => "-S",
        Command::Help => "-h",
        Command::Version => "-v",
        _ => return None,
    })
}

/// Reads the whole input: every line parsed and, with [`Mode::Replace`], run on the model; the
/// first bad line refused. `program` is named in the usage hint of a nested `-R`, as ipvsadm
/// names it.
pub fn read(
    program: &str,
    input: &str,
    names: &dyn Resolve,
    mode: Mode,
) -> Result<Restore, Refused> {
    let mut model = Model::default();
    let mut has_table = false;
    let mut commands: Vec<pb::TableCommand> = Vec::new();
    let mut deferred = Vec::new();
    for line in lines(input) {
        let fail = |code: u8, message: String| LineError {
            line: line.number,
            code,
            message,
        };
        // On top, a line refused here may come after one the table refuses.
        let refuse = |error: LineError, lookup: Option<Box<pb::TableCommand>>| Refused {
            error,
            earlier: commands.clone(),
            lookup,
        };
        let command = parse_line(program, &line.words, names)
            .map_err(|e: ParseError| refuse(fail(e.exit_code(), e.to_string()), None))?;
        if let Some(option) = read_only(&command) {
            let message =
                format!("{option} does not change the table; -R input holds changes only");
            return Err(refuse(fail(exit::USAGE, message), None));
        }
        if command == Command::Restore {
            // ipvsadm refuses a nested restore with its usage hint.
            let hint = ParseError::TryHelp {
                program: program.to_string(),
            };
            return Err(refuse(fail(hint.exit_code(), hint.to_string()), None));
        }
        let is_table = !matches!(
            command,
            Command::Zero(_)
                | Command::SetTimeout { .. }
                | Command::StartDaemon(_)
                | Command::StopDaemon(_)
        );
        has_table |= is_table;
        match mode {
            Mode::Replace => model
                .run(&command)
                .map_err(|m| Refused::from(fail(exit::REFUSED, m.to_string())))?,
            Mode::OnTop => match table_command(&command, line.number) {
                Ok(Some(c)) => commands.push(c),
                Ok(None) => {}
                Err(message) => {
                    let lookup = lookup_command(&command, line.number).map(Box::new);
                    return Err(refuse(fail(exit::REFUSED, message.to_string()), lookup));
                }
            },
        }
        if !is_table {
            deferred.push(Deferred {
                line: line.number,
                text: line.words.join(" "),
                command,
            });
        }
    }
    let table = match mode {
        _ if !has_table && commands.is_empty() => Table::Untouched,
        Mode::Replace => Table::Replace(model.services()),
        Mode::OnTop => Table::OnTop(commands),
    };
    Ok(Restore { table, deferred })
}

/// A line as the agent runs it on the current table; `None` for lines with nothing to check
/// there (`--set`, daemons, `-Z` of everything). `Err` is ipvsadm's message for a scheduler
/// the API cannot name.
fn table_command(command: &Command, line: usize) -> Result<Option<pb::TableCommand>, &'static str> {
    use pb::table_command::Command as C;
    let dest = |key: &ServiceKey, d: &DestSpec| pb::DestinationCommand {
        service: Some(request::service_key(key)),
        destination: Some(request::destination(d)),
    };
    let c = match command {
        Command::AddService(spec) => C::AddService(request::service(spec)?),
        Command::EditService(spec) => C::EditService(request::service(spec)?),
        Command::DeleteService(key) => C::DeleteService(request::service_key(key)),
        Command::Flush => C::Clear(pb::ClearTable {}),
        Command::AddServer(key, d) => C::AddDestination(dest(key, d)),
        Command::EditServer(key, d) => C::EditDestination(dest(key, d)),
        Command::DeleteServer(key, addr, port) => C::DeleteDestination(pb::DestinationCommand {
            service: Some(request::service_key(key)),
            destination: Some(pb::Destination {
                address: request::ip(*addr),
                port: u32::from(*port),
                ..Default::default()
            }),
        }),
        Command::Zero(Some(key)) => C::Zero(request::service_key(key)),
        _ => return Ok(None),
    };
    Ok(Some(pb::TableCommand {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        command: Some(c),
    }))
}

/// `-A`/`-E` of a scheduler the API cannot name, with one it can: whether the agent refuses
/// it for the service's presence decides ipvsadm's message.
fn lookup_command(command: &Command, line: usize) -> Option<pb::TableCommand> {
    let known = |spec: &ServiceSpec| ServiceSpec {
        scheduler: "wlc".into(),
        ..spec.clone()
    };
    let probe = match command {
        Command::AddService(spec) => Command::AddService(known(spec)),
        Command::EditService(spec) => Command::EditService(known(spec)),
        _ => return None,
    };
    table_command(&probe, line).ok().flatten()
}

/// The call a table line stands for, for ipvsadm's words when the agent refuses it.
pub fn op_of(command: &pb::TableCommand) -> Op {
    use pb::table_command::Command as C;
    match command.command {
        Some(C::AddService(_)) => Op::CreateService,
        Some(C::EditService(_)) => Op::UpdateService,
        Some(C::DeleteService(_)) => Op::DeleteService,
        Some(C::Clear(_)) => Op::Flush,
        Some(C::AddDestination(_)) => Op::AddDestination,
        Some(C::EditDestination(_)) => Op::UpdateDestination,
        Some(C::DeleteDestination(_)) => Op::DeleteDestination,
        Some(C::Zero(_)) | None => Op::Zero,
    }
}

/// One change of the agent's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    /// `create_service`, `update_service`, `delete_service`, `add_destination`,
    /// `update_destination` or `delete_destination`.
    pub kind: &'static str,
    /// The change in ipvsadm's words.
    pub description: String,
}

impl From<&pb::Change> for ChangeView {
    fn from(c: &pb::Change) -> Self {
        use pb::ChangeKind as K;
        let kind = match K::try_from(c.kind) {
            Ok(K::CreateService) => "create_service",
            Ok(K::UpdateService) => "update_service",
            Ok(K::DeleteService) => "delete_service",
            Ok(K::AddDestination) => "add_destination",
            Ok(K::UpdateDestination) => "update_destination",
            Ok(K::DeleteDestination) => "delete_destination",
            Ok(K::Unspecified) | Err(_) => "unspecified",
        };
        ChangeView {
            kind,
            description: c.description.clone(),
        }
    }
}

/// What `-R` did, or would do with `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanView {
    pub dry_run: bool,
    /// Whether the table changes were made.
    pub applied: bool,
    /// The table changes, in order.
    pub changes: Vec<ChangeView>,
    /// The `--set`, daemon and `-Z` lines run after the table, as given.
    pub then: Vec<String>,
}

impl PlanView {
    /// One line per change, then one per deferred line.
    pub fn text(&self) -> String {
        self.changes
            .iter()
            .map(|c| c.description.as_str())
            .chain(self.then.iter().map(String::as_str))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests;
