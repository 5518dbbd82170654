//! Runs a parsed ipvsadm command against the agent.

use ipvs_proto::v1 as pb;
use ipvs_proto::v1::ipvs_service_client::IpvsServiceClient;
use tonic::transport::Channel;

use super::command::{Command, ListFormat, ListOther, ServiceKey};
use super::errors::{Op, ipvsadm_message, is_ipvs_missing};
use super::format;
use super::request;
use super::resolve::Resolve;
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
}

fn unsupported(what: &str) -> Failure {
    Failure::new(
        exit::UNSUPPORTED,
        format!("ipvsctl: {what} is not available: the agent's API has no such operation"),
    )
}

/// A refusal of call `op`: unreachable agent, or ipvsadm's words with `code`.
fn refused(settings: &Settings<'_>, op: Op, code: u8, status: &tonic::Status) -> Failure {
    if client::is_transport_failure(status) {
        return Failure::new(
            exit::UNREACHABLE,
            format!(
                "ipvsctl: cannot reach agent at {}: {}",
                settings.agent,
                client::root_cause(status)
            ),
        );
    }
    // ipvsadm exits 2 when it cannot initialise IPVS.
    let code = if is_ipvs_missing(status) {
        exit::USAGE
    } else {
        code
    };
    Failure::new(code, ipvsadm_message(op, status))
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

/// Runs `command`; the result is what goes to stdout.
pub async fn run(command: Command, settings: &Settings<'_>) -> Result<String, Failure> {
    match &command {
        Command::Help => return Ok(usage::help(settings.program)),
        Command::Version => return Ok(usage::version()),
        Command::ListOther(ListOther::Connections) => {
            return Err(unsupported("the connection table (-c)"));
        }
        Command::ListOther(ListOther::Timeout) => return Err(unsupported("--timeout")),
        Command::ListOther(ListOther::Daemon) => return Err(unsupported("--daemon")),
        Command::Restore => return Err(unsupported("--restore (-R)")),
        Command::SetTimeout { .. } => return Err(unsupported("--set")),
        Command::StartDaemon(_) => return Err(unsupported("--start-daemon")),
        Command::StopDaemon(_) => return Err(unsupported("--stop-daemon")),
        Command::List { .. } | Command::Save { .. } => {}
        _ if settings.output == OutputFormat::Json => {
            return Err(Failure::new(
                exit::USAGE,
                "ipvsctl: -o json applies to listings (-L, -S); a bare -o is --ops",
            ));
        }
        _ => {}
    }
    // Refuse what the kernel would refuse before connecting.
    let service = match &command {
        Command::AddService(spec) | Command::EditService(spec) => {
            Some(request::service(spec).map_err(|msg| Failure::new(exit::REFUSED, msg))?)
        }
        _ => None,
    };
    let channel = client::connect(settings.agent)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, format!("ipvsctl: {e}")))?;
    let mut ipvs = IpvsServiceClient::new(channel);
    let change = |op: Op| move |s: tonic::Status| refused(settings, op, exit::REFUSED, &s);
    match command {
        Command::AddService(_) => {
            ipvs.create_service(pb::CreateServiceRequest { service })
                .await
                .map_err(change(Op::CreateService))?;
        }
        Command::EditService(_) => {
            ipvs.update_service(pb::UpdateServiceRequest { service })
                .await
                .map_err(change(Op::UpdateService))?;
        }
        Command::DeleteService(key) => {
            ipvs.delete_service(pb::DeleteServiceRequest {
                key: Some(request::service_key(&key)),
            })
            .await
            .map_err(change(Op::DeleteService))?;
        }
        Command::Flush => {
            ipvs.flush(pb::FlushRequest {})
                .await
                .map_err(change(Op::Flush))?;
        }
        Command::AddServer(key, dest) => {
            ipvs.add_destination(pb::AddDestinationRequest {
                service: Some(request::service_key(&key)),
                destination: Some(request::destination(&dest)),
            })
            .await
            .map_err(change(Op::AddDestination))?;
        }
        Command::EditServer(key, dest) => {
            ipvs.update_destination(pb::UpdateDestinationRequest {
                service: Some(request::service_key(&key)),
                destination: Some(request::destination(&dest)),
            })
            .await
            .map_err(change(Op::UpdateDestination))?;
        }
        Command::DeleteServer(key, addr, port) => {
            ipvs.delete_destination(pb::DeleteDestinationRequest {
                service: Some(request::service_key(&key)),
                address: Some(request::ip(addr)),
                port: u32::from(port),
            })
            .await
            .map_err(change(Op::DeleteDestination))?;
        }
        Command::Zero(key) => {
            ipvs.zero(pb::ZeroRequest {
                service: key.as_ref().map(request::service_key),
            })
            .await
            .map_err(change(Op::Zero))?;
        }
        Command::List { service, format } => {
            return list(&mut ipvs, service, format, settings).await;
        }
        Command::Save { numeric } => {
            let listing = listing_all(&mut ipvs, settings, false, false).await?;
            return Ok(match settings.output {
                OutputFormat::Json => to_json(&listing),
                OutputFormat::Text => format::rules(&listing.services, numeric, settings.names),
            });
        }
        Command::Help
        | Command::Version
        | Command::ListOther(_)
        | Command::Restore
        | Command::SetTimeout { .. }
        | Command::StartDaemon(_)
        | Command::StopDaemon(_) => {}
    }
    Ok(String::new())
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
    let r = ipvs
        .list_services(pb::ListServicesRequest {})
        .await
        .map_err(list_failed(Op::ListServices))?;
    let mut services = views(&r.get_ref().services)?;
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
