//! Fleet mode: one ipvsctl command run on many nodes.
//!
//! `ipvsctl [--fleet FILE] [--agents a,b] [--selector k=v]... [--max-parallel N] COMMAND...`
//! runs COMMAND (any ipvsctl command line) once per selected node, as a child ipvsctl with
//! `IPVSCTL_AGENT` set to that node's agent, at most N at once. Their outputs are merged
//! into one (see [`merge`]), a per-node summary goes to stderr, and the exit status is the
//! highest of the nodes'. `apply` (not `--dry-run`) is rolled out instead (see [`rollout`]).

mod args;
mod command;
pub(crate) mod inventory;
mod merge;
#[cfg(test)]
mod props;
mod rollout;
mod runner;
mod select;

use std::io::Read;
use std::process::ExitCode;

use crate::exit::{self, Failure};
use crate::output::{is_broken_pipe, write_stdout};

use merge::NodeOutcome;
use runner::{ProcessRunner, fan_out};

/// The fleet flags in `--help`.
pub const HELP: &str = "Fleet (flags before the command; the command runs on each selected node):
  --fleet FILE                        inventory (YAML): agents with name, address, labels
  --agents a,b,c                      only these inventory agents (without --fleet: addresses)
  --selector key=value                agents whose labels match (repeatable, all must match)
  --max-parallel N                    nodes at once (default 8). Output lines are prefixed
                                      with the node; a summary per node goes to stderr.
                                      `apply` rolls out: one node, then batches of N, each
                                      node checked with `diff`; the first failed batch stops it
";

/// Whether `args` (without the program name) start with a fleet flag.
pub fn is_fleet_command(args: &[String]) -> bool {
    args.first().is_some_and(|a| args::is_fleet_flag(a))
}

/// Runs a fleet command line and returns the exit status.
pub fn main(program: &str, args: &[String]) -> ExitCode {
    match run(program, args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::USAGE, format!("ipvsctl: {e}"))
}

fn run(program: &str, args: &[String]) -> Result<u8, Failure> {
    let parsed = args::parse(args).map_err(usage)?;
    let nodes = match &parsed.inventory {
        Some(path) => {
            let inv = inventory::load(path).map_err(usage)?;
            let file = path.display().to_string();
            select::from_inventory(&file, &inv, parsed.agents.as_deref(), &parsed.selectors)
        }
        None => select::from_addresses(parsed.agents.as_deref().unwrap_or_default()),
    }
    .map_err(usage)?;
    let input = if command::reads_stdin(&parsed.command) {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| usage(format!("cannot read standard input: {e}")))?;
        Some(buf)
    } else {
        None
    };
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(
            exit::UNREACHABLE,
            format!("ipvsctl: cannot start: cannot find its own program: {e}"),
        )
    })?;
    let runner = ProcessRunner::new(exe, program, input);
    let json = command::wants_json(&parsed.command);
    let merged = |results: &[NodeOutcome]| {
        if json {
            merge::json(results)
        } else {
            merge::text(results)
        }
    };
    let (stdout, stderr, code) = if command::is_rollout(&parsed.command) {
        let r = rollout::rollout(&runner, &nodes, &parsed.command, parsed.max_parallel);
        (merged(&r.apply_outcomes()), r.report(), r.exit_status())
    } else {
        let outcomes = fan_out(&runner, &nodes, &parsed.command, parsed.max_parallel);
        let results: Vec<NodeOutcome> = nodes
            .iter()
            .zip(outcomes)
            .map(|(n, outcome)| NodeOutcome {
                name: n.name.clone(),
                outcome,
            })
            .collect();
        (
            merged(&results),
            merge::summary(&results),
            merge::exit_status(&results),
        )
    };
    match write_stdout(&stdout) {
        Ok(()) => {}
        Err(e) if is_broken_pipe(&e) => {}
        Err(e) => eprintln!("ipvsctl: cannot write output: {e}"),
    }
    eprint!("{stderr}");
    Ok(code)
}
