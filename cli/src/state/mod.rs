//! `ipvsctl apply|diff|export|state|drain|health`: the node's declared state on the agent
//! (`ipvs.agent.v1.StateService`), from and to node files (see [`crate::spec`]).
//!
//! - [`view`]: answers as text lines or JSON, pure.
//! - [`drain`]: `drain`'s ipvsadm-style service and server options as a request.
//! - [`run`]: the calls, with the agent's refusals as exit statuses.

pub mod clock;
pub mod drain;
pub mod run;
pub mod view;

#[cfg(test)]
mod tests;

use clap::{ArgGroup, Parser, Subcommand};

use crate::client::{self, AgentAddress};
use crate::exit::{self, Failure};
use crate::ipvsadm::resolve::System;
use crate::output::{OutputFormat, write_stdout};
use crate::spec::Format;
use drain::{DrainArgs, ServiceArg};

/// The declared-state commands' command line.
#[derive(Debug, Parser)]
#[command(
    name = "ipvsctl",
    about = "The node's declared state: apply node files, diff, export, revisions, drift, drain, health",
    after_help = exit::HELP
)]
pub struct StateCli {
    /// The agent: unix:/path or http://host:port.
    #[arg(long, global = true, env = client::AGENT_ENV)]
    pub agent: Option<String>,
    /// Output: text or json.
    #[arg(short = 'o', long = "output", global = true, value_parser = parse_output)]
    pub output: Option<OutputFormat>,
    #[command(subcommand)]
    pub command: StateCommand,
}

fn parse_output(s: &str) -> Result<OutputFormat, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StateCommand {
    /// Makes the node match a node file and records it as a new revision.
    Apply {
        /// The node file: .yaml, .yml or .toml; - for YAML on stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
        /// Also remove what an earlier revision declared and this file does not.
        #[arg(long)]
        prune: bool,
        /// Print the changes, make none.
        #[arg(long)]
        dry_run: bool,
        /// Refuse unless the current revision is N.
        #[arg(long = "revision", value_name = "N")]
        revision: Option<u64>,
    },
    /// Prints what `apply` would change (nothing when the node matches the file).
    Diff {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
        #[arg(long)]
        prune: bool,
    },
    /// Writes the node as it is now as a node file.
    Export {
        /// Write this file (atomically) instead of stdout.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<String>,
        /// yaml or toml; by default the file's extension, else yaml.
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
    },
    /// The declared state: revision, drift mode and the last drift check.
    State {
        #[command(subcommand)]
        command: Option<StateSub>,
    },
    /// The health of every checked real server: check, state, since when, last result.
    #[command(
        long_about = "The health of every checked real server (docs/health.md): per service, each \
                      checked server with its check, its state (up or down), how long it has \
                      been in it, the last probe's result and latency. With -o json, \
                      {\"declared_checks\": N, \"servers\": [...]} with `since` as RFC 3339 \
                      time. Prints `no health checks are declared` (exit 0) when there are none."
    )]
    Health,
    /// Drains a real server: weight 0, wait for its connections to end, remove it.
    #[command(group(ArgGroup::new("service").required(true).multiple(false)))]
    Drain {
        /// A TCP service VIP:PORT.
        #[arg(
            short = 't',
            long = "tcp-service",
            group = "service",
            value_name = "SERVICE"
        )]
        tcp: Option<String>,
        /// A UDP service VIP:PORT.
        #[arg(
            short = 'u',
            long = "udp-service",
            group = "service",
            value_name = "SERVICE"
        )]
        udp: Option<String>,
        /// An SCTP service VIP:PORT.
        #[arg(long = "sctp-service", group = "service", value_name = "SERVICE")]
        sctp: Option<String>,
        /// A firewall-mark service.
        #[arg(
            short = 'f',
            long = "fwmark-service",
            group = "service",
            value_name = "MARK"
        )]
        fwmark: Option<String>,
        /// The firewall-mark service is IPv6.
        #[arg(short = '6', long = "ipv6")]
        ipv6: bool,
        /// The real server: ADDR[:PORT] (the service's port if none).
        #[arg(short = 'r', long = "real-server", value_name = "SERVER")]
        server: String,
        /// How long to wait for active connections to end, e.g. 90s, 5m.
        #[arg(long, default_value = "5m")]
        timeout: String,
        /// Leave the server in place at weight 0 instead of removing it.
        #[arg(long)]
        keep: bool,
        /// Refuse unless the current revision is N.
        #[arg(long = "revision", value_name = "N")]
        revision: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StateSub {
    /// Lists the revisions the agent keeps, newest first.
    #[command(alias = "ls")]
    Revisions,
    /// Applies an earlier revision again, as a new revision.
    Rollback {
        /// The revision to return to; the one before the current if not given.
        target: Option<u64>,
        /// Print the changes, make none.
        #[arg(long)]
        dry_run: bool,
        /// Refuse unless the current revision is N.
        #[arg(long = "revision", value_name = "N")]
        revision: Option<u64>,
    },
    /// Streams applies, drift found and repaired, health and quorum changes until interrupted.
    Events,
}

/// The words that start a declared-state command line (after any `--agent`/`-o`).
pub fn is_state_command(args: &[String]) -> bool {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "--agent" | "--output" | "-o" => i += 2,
            s if s.starts_with("--agent=") || s.starts_with("--output=") => i += 1,
            "apply" | "diff" | "export" | "state" | "drain" | "health" => return true,
            _ => return false,
        }
    }
    false
}

/// Parses a declared-state command line (with the program name first).
pub fn parse(args: &[String]) -> Result<StateCli, clap::Error> {
    StateCli::try_parse_from(args)
}

impl StateCommand {
    /// `drain`'s options, checked as far as they can be without the agent.
    pub fn drain_args(&self) -> Result<Option<DrainArgs>, Failure> {
        let StateCommand::Drain {
            tcp,
            udp,
            sctp,
            fwmark,
            ipv6,
            server,
            timeout,
            keep,
            revision,
        } = self
        else {
            return Ok(None);
        };
        let service = match (tcp, udp, sctp, fwmark) {
            (Some(s), _, _, _) => ServiceArg::Tcp(s.clone()),
            (_, Some(s), _, _) => ServiceArg::Udp(s.clone()),
            (_, _, Some(s), _) => ServiceArg::Sctp(s.clone()),
            (_, _, _, Some(m)) => ServiceArg::Fwmark(m.clone()),
            _ => {
                return Err(Failure::new(
                    exit::USAGE,
                    "ipvsctl: drain needs one of -t, -u, --sctp-service or -f",
                ));
            }
        };
        let usage = |m: String| Failure::new(exit::USAGE, format!("ipvsctl: {m}"));
        let timeout = crate::policy::parse_interval(timeout).map_err(usage)?;
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        if timeout_ms == 0 {
            return Err(usage("--timeout must be at least 1ms".into()));
        }
        Ok(Some(DrainArgs {
            service,
            ipv6: *ipv6,
            server: server.clone(),
            timeout_ms,
            keep: *keep,
            expected_revision: *revision,
        }))
    }
}

/// Runs a declared-state command line (program name first); what it prints goes to stdout
/// as it comes, so the result is what is left to print.
pub fn main(argv: &[String]) -> Result<String, Failure> {
    let cli = match parse(argv) {
        Ok(cli) => cli,
        Err(e) => {
            // clap's own rendering: usage errors on stderr (status 2), --help on stdout (0).
            let code = u8::try_from(e.exit_code()).unwrap_or(exit::USAGE);
            let text = e.render().to_string();
            return if code == 0 {
                Ok(text)
            } else {
                Err(Failure::new(code, text.trim_end().to_string()))
            };
        }
    };
    // clap already read IPVSCTL_AGENT into `agent`.
    let agent = AgentAddress::choose(cli.agent.as_deref(), None)
        .map_err(|e| Failure::new(exit::USAGE, format!("ipvsctl: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::UNREACHABLE, format!("ipvsctl: cannot start: {e}")))?;
    let mut out = |text: &str| write_stdout(text);
    let settings = run::Settings {
        agent: &agent,
        output: cli.output.unwrap_or_default(),
        names: &System::default(),
    };
    runtime
        .block_on(run::run(cli.command, &settings, &mut out))
        .map(|()| String::new())
}
