//! `ipvsctl link ...` and `ipvsctl addr ...`: the agent's dummy links and their addresses,
//! with iproute2's grammar (`link add NAME type dummy`, `addr add CIDR dev NAME`, ...) and
//! iproute2's words for refusals (`RTNETLINK answers: File exists`, `Cannot find device`).

pub mod view;

use std::net::IpAddr;

use clap::{Parser, Subcommand};
use ipvs_proto::v1 as pb;
use ipvs_proto::v1::link_service_client::LinkServiceClient;

use crate::client::{self, AgentAddress};
use crate::exit::{self, Failure};
use crate::ipvsadm::request::ip;
use crate::output::{OutputFormat, to_json};
use view::{LinkView, link_text, with_addresses};

/// The interface commands' command line.
#[derive(Debug, Parser)]
#[command(name = "ipvsctl", about = "Links and addresses of the agent's node", after_help = exit::HELP)]
pub struct IfaceCli {
    /// The agent: unix:/path or http://host:port.
    #[arg(long, global = true, env = client::AGENT_ENV)]
    pub agent: Option<String>,
    /// Output of `show`: text or json.
    #[arg(short = 'o', long = "output", global = true, value_parser = parse_output)]
    pub output: Option<OutputFormat>,
    #[command(subcommand)]
    pub object: Object,
}

fn parse_output(s: &str) -> Result<OutputFormat, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum Object {
    /// Network links (ip link).
    Link {
        #[command(subcommand)]
        command: Option<LinkCmd>,
    },
    /// Addresses on links (ip addr).
    #[command(alias = "address")]
    Addr {
        #[command(subcommand)]
        command: Option<AddrCmd>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Creates a link: `link add NAME type dummy`.
    Add {
        name: String,
        #[arg(value_parser = ["type"])]
        type_keyword: String,
        #[arg(value_parser = ["dummy"])]
        kind: String,
    },
    /// Deletes a link: `link del [dev] NAME`.
    #[command(alias = "delete")]
    Del { name: String },
    /// Sets a link up or down: `link set [dev] NAME up|down`.
    Set {
        name: String,
        #[arg(value_parser = ["up", "down"])]
        state: String,
    },
    /// Lists links: `link show [[dev] NAME]`.
    #[command(alias = "list", alias = "ls")]
    Show { name: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum AddrCmd {
    /// Adds an address: `addr add CIDR dev NAME`.
    Add {
        cidr: String,
        #[arg(value_parser = ["dev"])]
        dev_keyword: String,
        dev: String,
    },
    /// Removes an address: `addr del CIDR dev NAME`.
    #[command(alias = "delete")]
    Del {
        cidr: String,
        #[arg(value_parser = ["dev"])]
        dev_keyword: String,
        dev: String,
    },
    /// Lists addresses: `addr show [dev NAME]`.
    #[command(alias = "list", alias = "ls")]
    Show { dev: Option<String> },
}

/// A checked interface command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfaceCommand {
    LinkAdd {
        name: String,
    },
    LinkDel {
        name: String,
    },
    LinkSet {
        name: String,
        up: bool,
    },
    LinkShow {
        name: Option<String>,
    },
    AddrAdd {
        dev: String,
        addr: IpAddr,
        prefix: u32,
    },
    AddrDel {
        dev: String,
        addr: IpAddr,
        prefix: u32,
    },
    AddrShow {
        dev: Option<String>,
    },
}

/// The words that start an interface command line (after any `--agent`/`-o`).
pub fn is_iface_command(args: &[String]) -> bool {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "--agent" | "--output" | "-o" => i += 2,
            s if s.starts_with("--agent=") || s.starts_with("--output=") => i += 1,
            "link" | "addr" | "address" => return true,
            _ => return false,
        }
    }
    false
}

/// Drops iproute2's optional `dev` keyword before a link name (`link set dev X up`,
/// `addr show dev X`), which clap cannot express as an optional positional keyword.
fn drop_dev_keyword(args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    let mut object: Option<&str> = None;
    for (i, a) in args.iter().enumerate() {
        let prev = i
            .checked_sub(1)
            .and_then(|p| args.get(p))
            .map(String::as_str);
        let verb_before = matches!(
            prev,
            Some("del" | "delete" | "set" | "show" | "list" | "ls")
        );
        let drop = a == "dev"
            && verb_before
            && (object == Some("link")
                || (object == Some("addr") && matches!(prev, Some("show" | "list" | "ls"))));
        if object.is_none() && matches!(a.as_str(), "link" | "addr" | "address") {
            object = Some(if a == "link" { "link" } else { "addr" });
        }
        if !drop {
            out.push(a.clone());
        }
    }
    out
}

/// `ADDR[/LEN]`; a bare address is a host route (/32 or /128), as with `ip addr add`. A
/// prefix length of 0 is refused: the agent's API reads 0 as the host route.
fn parse_cidr(s: &str) -> Result<(IpAddr, u32), Failure> {
    let bad = || {
        Failure::new(
            exit::USAGE,
            format!("Error: any valid prefix is expected rather than \"{s}\"."),
        )
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(bad)?,
    };
    if prefix == 0 {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "Error: prefix length 0 (\"{s}\") cannot be sent to the agent, which reads 0 as /{max}."
            ),
        ));
    }
    Ok((addr, prefix))
}

impl IfaceCli {
    /// The checked command.
    pub fn command(&self) -> Result<IfaceCommand, Failure> {
        Ok(match &self.object {
            Object::Link { command } => match command {
                None | Some(LinkCmd::Show { name: None }) => IfaceCommand::LinkShow { name: None },
                Some(LinkCmd::Show { name: Some(n) }) => IfaceCommand::LinkShow {
                    name: Some(n.clone()),
                },
                // The agent checks names (length, characters) and says what is wrong.
                Some(LinkCmd::Add { name, .. }) => IfaceCommand::LinkAdd { name: name.clone() },
                Some(LinkCmd::Del { name }) => IfaceCommand::LinkDel { name: name.clone() },
                Some(LinkCmd::Set { name, state }) => IfaceCommand::LinkSet {
                    name: name.clone(),
                    up: state == "up",
                },
            },
            Object::Addr { command } => match command {
                None => IfaceCommand::AddrShow { dev: None },
                Some(AddrCmd::Show { dev }) => IfaceCommand::AddrShow { dev: dev.clone() },
                Some(AddrCmd::Add { cidr, dev, .. }) => {
                    let (addr, prefix) = parse_cidr(cidr)?;
                    IfaceCommand::AddrAdd {
                        dev: dev.clone(),
                        addr,
                        prefix,
                    }
                }
                Some(AddrCmd::Del { cidr, dev, .. }) => {
                    let (addr, prefix) = parse_cidr(cidr)?;
                    IfaceCommand::AddrDel {
                        dev: dev.clone(),
                        addr,
                        prefix,
                    }
                }
            },
        })
    }
}

/// Parses an interface command line (with the program name first).
pub fn parse(args: &[String]) -> Result<IfaceCli, clap::Error> {
    IfaceCli::try_parse_from(drop_dev_keyword(args))
}

/// The agent's refusal in iproute2's words.
fn refusal(command: &IfaceCommand, status: &tonic::Status) -> Failure {
    use tonic::Code;
    let device = match command {
        IfaceCommand::LinkAdd { name }
        | IfaceCommand::LinkDel { name }
        | IfaceCommand::LinkSet { name, .. } => Some(name.as_str()),
        IfaceCommand::AddrAdd { dev, .. } | IfaceCommand::AddrDel { dev, .. } => Some(dev.as_str()),
        IfaceCommand::LinkShow { name } => name.as_deref(),
        IfaceCommand::AddrShow { dev } => dev.as_deref(),
    };
    // The agent's detail tells a missing address from a missing link.
    let about_address =
        ipvs_proto::details::detail(status).is_some_and(|d| d.reason == "ADDRESS_NOT_FOUND");
    match status.code() {
        Code::AlreadyExists => Failure::new(exit::USAGE, "RTNETLINK answers: File exists"),
        Code::NotFound if matches!(command, IfaceCommand::AddrDel { .. }) && about_address => {
            Failure::new(
                exit::USAGE,
                "RTNETLINK answers: Cannot assign requested address",
            )
        }
        Code::NotFound => Failure::new(
            exit::LIST_FAILED,
            format!("Cannot find device \"{}\"", device.unwrap_or_default()),
        ),
        Code::PermissionDenied => {
            Failure::new(exit::USAGE, "RTNETLINK answers: Operation not permitted")
        }
        _ => Failure::new(exit::USAGE, format!("Error: {}", status.message())),
    }
}

/// Runs an interface command; the result is what goes to stdout.
pub async fn run(
    command: IfaceCommand,
    agent: &AgentAddress,
    output: OutputFormat,
) -> Result<String, Failure> {
    let is_show = matches!(
        command,
        IfaceCommand::LinkShow { .. } | IfaceCommand::AddrShow { .. }
    );
    if output == OutputFormat::Json && !is_show {
        return Err(Failure::new(
            exit::USAGE,
            "ipvsctl: -o json applies to show",
        ));
    }
    let channel = client::connect(agent)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, format!("ipvsctl: {e}")))?;
    let mut links = LinkServiceClient::new(channel);
    let fail = |s: tonic::Status| {
        if client::is_transport_failure(&s) {
            Failure::new(
                exit::UNREACHABLE,
                format!(
                    "ipvsctl: cannot reach agent at {agent}: {}",
                    client::root_cause(&s)
                ),
            )
        } else {
            refusal(&command, &s)
        }
    };
    match &command {
        IfaceCommand::LinkAdd { name } => {
            links
                .create_dummy(pb::CreateDummyRequest { name: name.clone() })
                .await
                .map_err(fail)?;
        }
        IfaceCommand::LinkDel { name } => {
            links
                .delete_link(pb::DeleteLinkRequest { name: name.clone() })
                .await
                .map_err(fail)?;
        }
        IfaceCommand::LinkSet { name, up } => {
            links
                .set_link_state(pb::SetLinkStateRequest {
                    name: name.clone(),
                    up: *up,
                })
                .await
                .map_err(fail)?;
        }
        IfaceCommand::AddrAdd { dev, addr, prefix } => {
            links
                .add_address(pb::AddAddressRequest {
                    link: dev.clone(),
                    address: ip(*addr),
                    prefix_length: *prefix,
                })
                .await
                .map_err(fail)?;
        }
        IfaceCommand::AddrDel { dev, addr, prefix } => {
            links
                .delete_address(pb::DeleteAddressRequest {
                    link: dev.clone(),
                    address: ip(*addr),
                    prefix_length: *prefix,
                })
                .await
                .map_err(fail)?;
        }
        IfaceCommand::LinkShow { name } | IfaceCommand::AddrShow { dev: name } => {
            let all = links
                .list_links(pb::ListLinksRequest {})
                .await
                .map_err(fail)?
                .into_inner()
                .links;
            let mut shown: Vec<LinkView> = all
                .iter()
                .filter(|l| name.as_ref().is_none_or(|n| &l.name == n))
                .map(LinkView::from_pb)
                .collect();
            if let Some(n) = name
                && shown.is_empty()
            {
                return Err(Failure::new(
                    exit::LIST_FAILED,
                    format!("Device \"{n}\" does not exist."),
                ));
            }
            if matches!(command, IfaceCommand::AddrShow { .. }) {
                let addrs = links
                    .list_addresses(pb::ListAddressesRequest {
                        link: name.clone().unwrap_or_default(),
                    })
                    .await
                    .map_err(fail)?
                    .into_inner()
                    .addresses;
                shown = with_addresses(shown, &addrs)
                    .map_err(|e| Failure::new(exit::LIST_FAILED, format!("ipvsctl: {e}")))?;
            }
            return Ok(match output {
                OutputFormat::Json => to_json(&shown),
                OutputFormat::Text => link_text(&shown),
            });
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn words(line: &str) -> Vec<String> {
        std::iter::once("ipvsctl")
            .chain(line.split(' '))
            .map(String::from)
            .collect()
    }

    #[test]
    fn interface_command_lines_parse() {
        let v4 = |s: &str| IpAddr::V4(s.parse::<Ipv4Addr>().unwrap_or(Ipv4Addr::UNSPECIFIED));
        let cases: &[(&str, IfaceCommand)] = &[
            (
                "link add dummy1 type dummy",
                IfaceCommand::LinkAdd {
                    name: "dummy1".into(),
                },
            ),
            (
                "link del dummy1",
                IfaceCommand::LinkDel {
                    name: "dummy1".into(),
                },
            ),
            (
                "link delete dev dummy1",
                IfaceCommand::LinkDel {
                    name: "dummy1".into(),
                },
            ),
            (
                "link set dummy1 up",
                IfaceCommand::LinkSet {
                    name: "dummy1".into(),
                    up: true,
                },
            ),
            (
                "link set dev dummy1 down",
                IfaceCommand::LinkSet {
                    name: "dummy1".into(),
                    up: false,
                },
            ),
            ("link show", IfaceCommand::LinkShow { name: None }),
            ("link", IfaceCommand::LinkShow { name: None }),
            (
                "link ls dev lo",
                IfaceCommand::LinkShow {
                    name: Some("lo".into()),
                },
            ),
            (
                "addr add 192.168.100.1/32 dev dummy1",
                IfaceCommand::AddrAdd {
                    dev: "dummy1".into(),
                    addr: v4("192.168.100.1"),
                    prefix: 32,
                },
            ),
            (
                "address del 10.0.0.1 dev dummy1",
                IfaceCommand::AddrDel {
                    dev: "dummy1".into(),
                    addr: v4("10.0.0.1"),
                    prefix: 32,
                },
            ),
            (
                "addr show dev dummy1",
                IfaceCommand::AddrShow {
                    dev: Some("dummy1".into()),
                },
            ),
            ("addr", IfaceCommand::AddrShow { dev: None }),
            (
                "--agent unix:/x -o json addr show",
                IfaceCommand::AddrShow { dev: None },
            ),
        ];
        for (line, want) in cases {
            let cli = parse(&words(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(cli.command().as_ref(), Ok(want), "{line}");
        }
        let cli = parse(&words("-o json link show")).expect("valid");
        assert_eq!(cli.output, Some(OutputFormat::Json));
    }

    #[test]
    fn bad_interface_command_lines_are_refused() {
        let usage = |line: &str| parse(&words(line)).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(
            usage("link add dummy1 type veth"),
            Err(clap::error::ErrorKind::InvalidValue)
        );
        assert_eq!(
            usage("link set dummy1 sideways"),
            Err(clap::error::ErrorKind::InvalidValue)
        );
        assert_eq!(
            usage("addr add 10.0.0.1/32 on dummy1"),
            Err(clap::error::ErrorKind::InvalidValue)
        );
        let checked = |line: &str| {
            parse(&words(line))
                .map_err(|e| e.to_string())
                .and_then(|c| c.command().map_err(|f| f.message))
        };
        assert_eq!(
            checked("addr add 10.0.0.1/33 dev dummy1"),
            Err("Error: any valid prefix is expected rather than \"10.0.0.1/33\".".to_string())
        );
        assert_eq!(
            checked("addr add nonsense dev dummy1"),
            Err("Error: any valid prefix is expected rather than \"nonsense\".".to_string())
        );
        assert_eq!(
            checked("addr add 10.0.0.1/0 dev dummy1"),
            Err(
                "Error: prefix length 0 (\"10.0.0.1/0\") cannot be sent to the agent, which reads 0 as /32."
                    .to_string()
            )
        );
    }

    #[test]
    fn interface_lines_are_told_from_ipvsadm_lines() {
        let yes = [
            "link show",
            "addr",
            "--agent unix:/x link",
            "--agent=unix:/x -o json address show",
        ];
        let no = ["-ln", "-L -n", "--agent unix:/x -ln", "", "-o json -ln"];
        for line in yes {
            let args: Vec<String> = line.split(' ').map(String::from).collect();
            assert!(is_iface_command(&args), "{line}");
        }
        for line in no {
            let args: Vec<String> = line
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            assert!(!is_iface_command(&args), "{line}");
        }
    }

    #[test]
    fn refusals_use_iproute2_words() {
        use tonic::Code;
        let add = IfaceCommand::LinkAdd {
            name: "dummy1".into(),
        };
        let del_addr = IfaceCommand::AddrDel {
            dev: "dummy1".into(),
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            prefix: 32,
        };
        let cases: &[(&IfaceCommand, Code, &str, u8, &str)] = &[
            (
                &add,
                Code::AlreadyExists,
                "exists",
                2,
                "RTNETLINK answers: File exists",
            ),
            (
                &add,
                Code::InvalidArgument,
                "name too long",
                2,
                "Error: name too long",
            ),
            (
                &del_addr,
                Code::NotFound,
                "link \"dummy1\" not found",
                1,
                "Cannot find device \"dummy1\"",
            ),
            (
                &del_addr,
                Code::NotFound,
                "address 10.0.0.1/32 not found on link \"dummy1\"",
                2,
                "RTNETLINK answers: Cannot assign requested address",
            ),
            (
                &add,
                Code::PermissionDenied,
                "",
                2,
                "RTNETLINK answers: Operation not permitted",
            ),
        ];
        for (cmd, code, msg, exit_code, want) in cases {
            // As the agent answers: with the reason its detail names.
            let reason = match (*code, msg.starts_with("address")) {
                (Code::NotFound, true) => "ADDRESS_NOT_FOUND",
                (Code::NotFound, false) => "LINK_NOT_FOUND",
                _ => "",
            };
            let detail = ipvs_proto::v1::ErrorDetail {
                reason: reason.into(),
                ..Default::default()
            };
            let f = refusal(
                cmd,
                &ipvs_proto::details::status(*code, (*msg).into(), &detail),
            );
            assert_eq!(
                (f.code, f.message.as_str()),
                (*exit_code, *want),
                "{code:?} {msg}"
            );
        }
    }
}
