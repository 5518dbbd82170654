//! Runs a parsed ipvsadm command against the agent.

use std::io::Read;
use std::time::Duration;

use ipvs_proto::v1 as pb;
use ipvs_proto::v1::config_service_client::ConfigServiceClient;
use ipvs_proto::v1::ipvs_service_client::IpvsServiceClient;
use ipvs_proto::v1::table_service_client::TableServiceClient;
use tonic::transport::Channel;

use super::command::{Command, ListFormat, ListOther, ServiceKey, ServiceSpec};
use super::conn::{self, ConnView};
use super::errors::{NO_IPVS, Op, ipvsadm_message, is_ipvs_missing};
use super::format;
use super::request;
use super::resolve::Resolve;
use super::restore::{self, ChangeView, Mode, PlanView, Refused, Restore, Table};
use super::settings::{self, TimeoutsView};
use super::sort::sort_like_ipvsadm;
use super::usage;
use super::view::{Info, Listing, ServiceView, ViewError};
use crate::client::{self, AgentAddress};
use crate::exit::{self, Failure};
use crate::output::{OutputFormat, to_json};

/// Where to find the agent and how to print.
pub struct Settings<'a> {
    pub program: &'a str,
    pub agent: &'a AgentAddress,
    pub output: OutputFormat,
    pub names: &'a dyn Resolve,
    /// `--dry-run`: `-R` prints its plan and changes nothing.
    pub dry_run: bool,
    /// `--replace` (or running as `ipvsctl-restore`): `-R` input is the whole table.
    pub restore_mode: Mode,
}

/// The agent's services, on one connection.
struct Clients {
    ipvs: IpvsServiceClient<Channel>,
    config: ConfigServiceClient<Channel>,
    table: TableServiceClient<Channel>,
}

fn unreachable(settings: &Settings<'_>, status: &tonic::Status) -> Failure {
    Failure::new(
        exit::UNREACHABLE,
        format!(
            "ipvsctl: cannot reach agent at {}: {}",
            settings.agent,
            client::root_cause(status)
        ),
    )
}

/// A failure that is not about the request itself: the agent unreachable, its node without
/// IPVS (ipvsadm exits 2 when it cannot initialise IPVS), or an agent without the call.
fn not_served(settings: &Settings<'_>, op: Op, status: &tonic::Status) -> Option<Failure> {
    if client::is_transport_failure(status) {
        return Some(unreachable(settings, status));
    }
    if is_ipvs_missing(status) {
        return Some(Failure::new(exit::USAGE, NO_IPVS));
    }
    (status.code() == tonic::Code::Unimplemented).then(|| {
        Failure::new(
            exit::UNSUPPORTED,
            format!(
                "ipvsctl: the agent does not implement {op:?}: {}",
                status.message()
            ),
        )
    })
}

/// A refusal of call `op`: unreachable agent, or ipvsadm's words with `code`.
fn refused(settings: &Settings<'_>, op: Op, code: u8, status: &tonic::Status) -> Failure {
    not_served(settings, op, status)
        .unwrap_or_else(|| Failure::new(code, ipvsadm_message(op, status)))
}

/// A listing that ipvsadm ends with `exit(1)` and `message` (empty: nothing printed).
fn list_failed(settings: &Settings<'_>, op: Op, message: &str, status: &tonic::Status) -> Failure {
    not_served(settings, op, status).unwrap_or_else(|| Failure::new(exit::LIST_FAILED, message))
}

fn bad_view(e: ViewError) -> Failure {
    Failure::new(exit::LIST_FAILED, format!("ipvsctl: {e}"))
}

fn views(services: &[pb::Service]) -> Result<Vec<ServiceView>, Failure> {
    services
        .iter()
        .map(ServiceView::from_pb)
        .collect::<Result<_, _>>()
        .map_err(bad_view)
}

/// Reads all of stdin for `-R`; bytes that are not UTF-8 cannot name anything and show as
/// U+FFFD in the message of the line that holds them.
fn read_stdin() -> Result<String, Failure> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(exit::USAGE, format!("ipvsctl: cannot read stdin: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Runs `command`; the result is what goes to stdout.
pub async fn run(command: Command, settings: &Settings<'_>) -> Result<String, Failure> {
    match &command {
        Command::Help => return Ok(usage::help(settings.program)),
        Command::Version => return Ok(usage::version()),
        _ => {}
    }
    if settings.dry_run && command != Command::Restore {
        return Err(Failure::new(
            exit::USAGE,
            "ipvsctl: --dry-run applies to -R",
        ));
    }
    if settings.restore_mode == Mode::Replace && command != Command::Restore {
        return Err(Failure::new(
            exit::USAGE,
            "ipvsctl: --replace applies to -R",
        ));
    }
    let reads = matches!(
        command,
        Command::List { .. } | Command::Save { .. } | Command::ListOther(_) | Command::Restore
    );
    if settings.output == OutputFormat::Json && !reads {
        return Err(Failure::new(
            exit::USAGE,
            "ipvsctl: -o json applies to listings (-L, -S) and -R; a bare -o is --ops",
        ));
    }
    // Refuse a bad restore input before connecting, unless lines before the bad one need
    // the agent's table to tell whether they fail first.
    let restore = match &command {
        Command::Restore => {
            let input = read_stdin()?;
            match restore::read(
                settings.program,
                &input,
                settings.names,
                settings.restore_mode,
            ) {
                Ok(r) => Some(Ok(r)),
                Err(r) if r.earlier.is_empty() && r.lookup.is_none() => {
                    return Err(line_failure(&r));
                }
                Err(r) => Some(Err(r)),
            }
        }
        _ => None,
    };
    let timeout = if restore.is_some() {
        APPLY_TIMEOUT
    } else {
        client::REQUEST_TIMEOUT
    };
    let channel = match client::connect_with_timeout(settings.agent, timeout).await {
        Ok(channel) => channel,
        Err(e) => {
            return Err(match &restore {
                // The input is wrong whatever the table holds.
                Some(Err(r)) => line_failure(r),
                _ => Failure::new(exit::UNREACHABLE, format!("ipvsctl: {e}")),
            });
        }
    };
    // A table of thousands of services, or a busy connection table, is larger than tonic's
    // default 4 MiB message limit.
    let mut clients = Clients {
        ipvs: IpvsServiceClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
        config: ConfigServiceClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
        table: TableServiceClient::new(channel).max_decoding_message_size(usize::MAX),
    };
    match command {
        Command::List { service, format } => {
            list(&mut clients.ipvs, service, format, settings).await
        }
        Command::Save { numeric } => {
            let listing = listing_all(&mut clients.ipvs, settings, false, false).await?;
            Ok(match settings.output {
                OutputFormat::Json => to_json(&listing),
                OutputFormat::Text => format::rules(&listing.services, numeric, settings.names),
            })
        }
        Command::ListOther(other) => list_other(&mut clients.config, other, settings).await,
        Command::Restore => match restore {
            Some(Ok(r)) => apply(&mut clients, r, settings).await,
            Some(Err(r)) => Err(first_refusal(&mut clients, r, settings).await),
            None => Ok(String::new()),
        },
        Command::AddService(ref spec) | Command::EditService(ref spec) => {
            let create = matches!(command, Command::AddService(_));
            let service = match request::service(spec) {
                Ok(service) => Some(service),
                Err(msg) => {
                    return Err(
                        unknown_scheduler(&mut clients.ipvs, spec, create, msg, settings).await,
                    );
                }
            };
            let r = if create {
                clients
                    .ipvs
                    .create_service(pb::CreateServiceRequest { service })
                    .await
                    .map(|_| ())
                    .map_err(|s| (Op::CreateService, s))
            } else {
                clients
                    .ipvs
                    .update_service(pb::UpdateServiceRequest { service })
                    .await
                    .map(|_| ())
                    .map_err(|s| (Op::UpdateService, s))
            };
            r.map_err(|(op, s)| refused(settings, op, exit::REFUSED, &s))?;
            Ok(String::new())
        }
        other => {
            change(&mut clients, &other)
                .await
                .map_err(|(op, s)| refused(settings, op, exit::REFUSED, &s))?;
            Ok(String::new())
        }
    }
}

/// `-A`/`-E` of a scheduler the API cannot name. The kernel looks the service up before the
/// scheduler, so ipvsadm says "Service already exists" (`-A`) or "No such service" (`-E`)
/// first when that applies; the service's presence is asked of the agent to say the same.
async fn unknown_scheduler(
    ipvs: &mut IpvsServiceClient<Channel>,
    spec: &ServiceSpec,
    create: bool,
    msg: &str,
    settings: &Settings<'_>,
) -> Failure {
    let (op, lookup) = if create {
        (Op::CreateService, "Service already exists")
    } else {
        (Op::UpdateService, "No such service")
    };
    if msg != request::UNKNOWN_SCHEDULER {
        return Failure::new(exit::REFUSED, msg);
    }
    let found = ipvs
        .get_service(pb::GetServiceRequest {
            key: Some(request::service_key(&spec.key)),
        })
        .await;
    let exists = match found {
        Ok(r) => r.get_ref().service.is_some(),
        Err(s) if s.code() == tonic::Code::NotFound => false,
        Err(s) => return refused(settings, op, exit::REFUSED, &s),
    };
    let msg = match (exists, create) {
        (true, true) | (false, false) => lookup,
        _ => msg,
    };
    Failure::new(exit::REFUSED, msg)
}

/// Runs a change other than `-A`/`-E`; `Err` names the call that failed.
async fn change(clients: &mut Clients, command: &Command) -> Result<(), (Op, tonic::Status)> {
    let ipvs = &mut clients.ipvs;
    let config = &mut clients.config;
    match command {
        Command::DeleteService(key) => ipvs
            .delete_service(pb::DeleteServiceRequest {
                key: Some(request::service_key(key)),
            })
            .await
            .map(|_| ())
            .map_err(|s| (Op::DeleteService, s)),
        Command::Flush => ipvs
            .flush(pb::FlushRequest {})
            .await
            .map(|_| ())
            .map_err(|s| (Op::Flush, s)),
        Command::AddServer(key, dest) => ipvs
            .add_destination(pb::AddDestinationRequest {
                service: Some(request::service_key(key)),
                destination: Some(request::destination(dest)),
            })
            .await
            .map(|_| ())
            .map_err(|s| (Op::AddDestination, s)),
        Command::EditServer(key, dest) => ipvs
            .update_destination(pb::UpdateDestinationRequest {
                service: Some(request::service_key(key)),
                destination: Some(request::destination(dest)),
            })
            .await
            .map(|_| ())
            .map_err(|s| (Op::UpdateDestination, s)),
        Command::DeleteServer(key, addr, port) => ipvs
            .delete_destination(pb::DeleteDestinationRequest {
                service: Some(request::service_key(key)),
                destination: Some(pb::Destination {
                    address: request::ip(*addr),
                    port: u32::from(*port),
                    ..Default::default()
                }),
            })
            .await
            .map(|_| ())
            .map_err(|s| (Op::DeleteDestination, s)),
        Command::Zero(key) => ipvs
            .zero(pb::ZeroRequest {
                service: key.as_ref().map(request::service_key),
            })
            .await
            .map(|_| ())
            .map_err(|s| (Op::Zero, s)),
        Command::SetTimeout { tcp, tcpfin, udp } => config
            .set_timeouts(settings::set_timeouts(*tcp, *tcpfin, *udp))
            .await
            .map(|_| ())
            .map_err(|s| (Op::SetTimeouts, s)),
        Command::StartDaemon(spec) => config
            .start_daemon(settings::start_daemon(spec))
            .await
            .map(|_| ())
            .map_err(|s| (Op::StartDaemon, s)),
        Command::StopDaemon(state) => config
            .stop_daemon(settings::stop_daemon(*state))
            .await
            .map(|_| ())
            .map_err(|s| (Op::StopDaemon, s)),
        Command::Help
        | Command::Version
        | Command::AddService(_)
        | Command::EditService(_)
        | Command::List { .. }
        | Command::ListOther(_)
        | Command::Save { .. }
        | Command::Restore => Ok(()),
    }
}

/// `-L -c`, `-L --timeout`, `-L --daemon`.
async fn list_other(
    config: &mut ConfigServiceClient<Channel>,
    other: ListOther,
    settings: &Settings<'_>,
) -> Result<String, Failure> {
    let json = settings.output == OutputFormat::Json;
    match other {
        ListOther::Connections {
            numeric,
            persistent,
        } => {
            let r = config
                .list_connections(pb::ListConnectionsRequest {})
                .await
                .map_err(|s| list_failed(settings, Op::ListConnections, CONN_UNREADABLE, &s))?;
            let conns = r
                .get_ref()
                .connections
                .iter()
                .map(ConnView::from_pb)
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad_view)?;
            Ok(if json {
                to_json(&conns)
            } else {
                conn::table(&conns, numeric, persistent, settings.names)
            })
        }
        ListOther::Timeout => {
            // ipvsadm exits 1 without a word when it cannot read the timeouts.
            let r = config
                .get_timeouts(pb::GetTimeoutsRequest {})
                .await
                .map_err(|s| list_failed(settings, Op::GetTimeouts, "", &s))?;
            let t = TimeoutsView::from(r.into_inner().timeouts.unwrap_or_default());
            Ok(if json {
                to_json(&t)
            } else {
                settings::timeouts_line(&t)
            })
        }
        ListOther::Daemon => {
            let r = config
                .list_daemons(pb::ListDaemonsRequest {})
                .await
                .map_err(|s| list_failed(settings, Op::ListDaemons, "", &s))?;
            let daemons = settings::daemons(&r.get_ref().daemons).map_err(bad_view)?;
            Ok(if json {
                to_json(&daemons)
            } else {
                settings::daemon_lines(&daemons)
            })
        }
    }
}

/// How long `-R` may take: applying tens of thousands of changes is slow on a busy node.
const APPLY_TIMEOUT: Duration = Duration::from_secs(3600);

/// ipvsadm's words when it cannot read the connection table.
const CONN_UNREADABLE: &str = "cannot open file /proc/net/ip_vs_conn";

/// A refusal of the input, as `line N: <ipvsadm's message>`.
fn line_failure(r: &Refused) -> Failure {
    Failure::new(r.error.code, r.error.to_string())
}

/// ipvsadm's words for the agent's refusal of one of `commands`, when its detail names the
/// command: the kernel's errno in ipvsadm's words, or the refusal alone for a broken rule.
fn command_failure(commands: &[pb::TableCommand], status: &tonic::Status) -> Option<Failure> {
    let detail = ipvs_proto::details::detail(status)?;
    let index = usize::try_from(detail.command).ok()?.checked_sub(1)?;
    let command = commands.get(index)?;
    let message = match detail.errno {
        0 => detail.cause,
        _ => ipvsadm_message(restore::op_of(command), status),
    };
    Some(Failure::new(
        exit::REFUSED,
        format!("line {}: {message}", command.line),
    ))
}

/// The agent's refusal of an apply: its account of which change failed, why, and whether the
/// undo restored the previous table; or ipvsadm's words for a refused line.
fn apply_failure(
    settings: &Settings<'_>,
    commands: &[pb::TableCommand],
    status: &tonic::Status,
) -> Failure {
    not_served(settings, Op::Apply, status)
        .or_else(|| command_failure(commands, status))
        .unwrap_or_else(|| {
            let msg = if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                status.message().to_string()
            };
            Failure::new(exit::REFUSED, msg)
        })
}

/// The input was refused at a line here. On top of the current table, a line before it may be
/// refused by the table first, and a scheduler the API cannot name is refused only once its
/// service lookup passes: the agent checks those lines (a dry run) and the first refusal wins.
async fn first_refusal(clients: &mut Clients, r: Refused, settings: &Settings<'_>) -> Failure {
    let local = line_failure(&r);
    let mut commands = r.earlier;
    commands.extend(r.lookup.map(|c| *c));
    let checked = clients
        .table
        .apply(pb::ApplyRequest {
            commands: commands.clone(),
            dry_run: true,
            ..Default::default()
        })
        .await;
    match checked {
        Ok(_) => local,
        Err(s) => match not_served(settings, Op::Apply, &s) {
            Some(_) => local,
            None => command_failure(&commands, &s).unwrap_or(local),
        },
    }
}

/// `-R`: the table lines (on top) or the desired table (`--replace`) to the agent, then the
/// deferred lines.
async fn apply(
    clients: &mut Clients,
    restore: Restore,
    settings: &Settings<'_>,
) -> Result<String, Failure> {
    let mut plan = PlanView {
        dry_run: settings.dry_run,
        applied: false,
        changes: Vec::new(),
        then: restore.deferred.iter().map(|d| d.text.clone()).collect(),
    };
    let (request, commands) = match restore.table {
        Table::Untouched => (None, Vec::new()),
        Table::Replace(services) => (
            Some(pb::ApplyRequest {
                services,
                prune: true,
                dry_run: settings.dry_run,
                ..Default::default()
            }),
            Vec::new(),
        ),
        Table::OnTop(commands) => (
            Some(pb::ApplyRequest {
                commands: commands.clone(),
                mode: pb::ApplyMode::OnTop.into(),
                dry_run: settings.dry_run,
                ..Default::default()
            }),
            commands,
        ),
    };
    if let Some(request) = request {
        let r = clients
            .table
            .apply(request)
            .await
            .map_err(|s| apply_failure(settings, &commands, &s))?
            .into_inner();
        if usize::try_from(r.commands_run).ok() != Some(commands.len()) {
            // An agent older than `commands` ignored them, and so changed nothing.
            return Err(Failure::new(
                exit::UNSUPPORTED,
                "ipvsctl: the agent does not run -R input on top of its table (it is older \
                 than this ipvsctl); nothing was changed. -R --replace works with it.",
            ));
        }
        plan.applied = r.applied;
        plan.changes = r.changes.iter().map(ChangeView::from).collect();
    }
    let json = settings.output == OutputFormat::Json;
    if settings.dry_run {
        return Ok(if json { to_json(&plan) } else { plan.text() });
    }
    let mut failures = Vec::new();
    for d in &restore.deferred {
        if let Err((op, s)) = change(clients, &d.command).await {
            if let Some(f) = not_served(settings, op, &s) {
                return Err(f);
            }
            failures.push(format!("line {}: {}", d.line, ipvsadm_message(op, &s)));
        }
    }
    if !failures.is_empty() {
        return Err(Failure::new(exit::REFUSED, failures.join("\n")));
    }
    Ok(if json { to_json(&plan) } else { String::new() })
}

/// Every service in the agent's order, taken in as the agent reads them (`StreamServices`);
/// from an agent older than that call, in one reply (`ListServices`). Either way a failure
/// is `ListServices`' refusal, whether it comes first or after some services.
async fn all_services(
    ipvs: &mut IpvsServiceClient<Channel>,
    settings: &Settings<'_>,
) -> Result<Vec<ServiceView>, Failure> {
    let failed = |s: tonic::Status| refused(settings, Op::ListServices, exit::LIST_FAILED, &s);
    let mut stream = match ipvs.stream_services(pb::StreamServicesRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            let r = ipvs
                .list_services(pb::ListServicesRequest {})
                .await
                .map_err(failed)?;
            return views(&r.get_ref().services);
        }
        Err(s) => return Err(failed(s)),
    };
    let mut services = Vec::new();
    while let Some(batch) = stream.message().await.map_err(failed)? {
        services.extend(views(&batch.services)?);
    }
    Ok(services)
}

/// Every service, sorted unless `nosort`, with the header when `with_info`.
async fn listing_all(
    ipvs: &mut IpvsServiceClient<Channel>,
    settings: &Settings<'_>,
    with_info: bool,
    nosort: bool,
) -> Result<Listing, Failure> {
    let list_failed = |op: Op| move |s: tonic::Status| refused(settings, op, exit::LIST_FAILED, &s);
    let info = if with_info {
        let r = ipvs
            .get_info(pb::GetInfoRequest {})
            .await
            .map_err(list_failed(Op::GetInfo))?;
        Some(Info::from(r.get_ref()))
    } else {
        None
    };
    let mut services = all_services(ipvs, settings).await?;
    if !nosort {
        sort_like_ipvsadm(&mut services);
    }
    Ok(Listing {
        ipvs: info,
        services,
    })
}

async fn list(
    ipvs: &mut IpvsServiceClient<Channel>,
    service: Option<ServiceKey>,
    format: ListFormat,
    settings: &Settings<'_>,
) -> Result<String, Failure> {
    let listing = match service {
        None => listing_all(ipvs, settings, true, format.nosort).await?,
        Some(key) => {
            let r = ipvs
                .get_service(pb::GetServiceRequest {
                    key: Some(request::service_key(&key)),
                })
                .await
                .map_err(|s| refused(settings, Op::GetService, exit::LIST_FAILED, &s))?;
            let service = r.into_inner().service.unwrap_or_default();
            let mut services = views(std::slice::from_ref(&service))?;
            if !format.nosort {
                sort_like_ipvsadm(&mut services);
            }
            Listing {
                ipvs: None,
                services,
            }
        }
    };
    Ok(match settings.output {
        OutputFormat::Json => to_json(&listing),
        OutputFormat::Text => format::table(
            listing.ipvs.as_ref(),
            &listing.services,
            format,
            settings.names,
        ),
    })
}
