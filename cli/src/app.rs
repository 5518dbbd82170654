//! Dispatch: an interface command (`link`, `addr`) or an ipvsadm command line, run against the
//! agent, with the result on stdout and failures on stderr.

use std::process::ExitCode;

use crate::client::{AGENT_ENV, AgentAddress};
use crate::exit::{self, Failure};
use crate::fleet;
use crate::ipvsadm::parse::parse;
use crate::ipvsadm::resolve::System;
use crate::ipvsadm::restore::Mode;
use crate::ipvsadm::run::{Settings, run};
use crate::link;
use crate::output::{OutputFormat, is_broken_pipe, write_stdout};
use crate::policy;
use crate::state;

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::UNREACHABLE, format!("ipvsctl: cannot start: {e}")))
}

fn agent(flag: Option<&str>) -> Result<AgentAddress, Failure> {
    let env = std::env::var(AGENT_ENV).ok();
    AgentAddress::choose(flag, env.as_deref())
        .map_err(|e| Failure::new(exit::USAGE, format!("ipvsctl: {e}")))
}

fn ipvsadm_main(program: &str, args: &[String]) -> Result<String, Failure> {
    let names = System::default();
    let invocation =
        parse(program, args, &names).map_err(|e| Failure::new(e.exit_code(), e.to_string()))?;
    let agent = agent(invocation.globals.agent.as_deref())?;
    let settings = Settings {
        program,
        agent: &agent,
        output: invocation.globals.output.unwrap_or_default(),
        names: &names,
        dry_run: invocation.globals.dry_run,
        restore_mode: if invocation.globals.replace {
            Mode::Replace
        } else {
            Mode::OnTop
        },
    };
    runtime()?.block_on(run(invocation.command, &settings))
}

fn iface_main(argv: &[String]) -> Result<String, Failure> {
    let cli = match link::parse(argv) {
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
    let command = cli.command()?;
    // clap already read IPVSCTL_AGENT into `agent`.
    let agent = AgentAddress::choose(cli.agent.as_deref(), None)
        .map_err(|e| Failure::new(exit::USAGE, format!("ipvsctl: {e}")))?;
    runtime()?.block_on(link::run(
        command,
        &agent,
        cli.output.unwrap_or(OutputFormat::Text),
    ))
}

fn policy_main(argv: &[String]) -> Result<String, Failure> {
    let cli = match policy::parse(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = u8::try_from(e.exit_code()).unwrap_or(exit::USAGE);
            let text = e.render().to_string();
            return if code == 0 {
                Ok(text)
            } else {
                Err(Failure::new(code, text.trim_end().to_string()))
            };
        }
    };
    let agent = AgentAddress::choose(cli.agent.as_deref(), None)
        .map_err(|e| Failure::new(exit::USAGE, format!("ipvsctl: {e}")))?;
    let policy::Object::Policy { command } = cli.object;
    runtime()?.block_on(policy::run(
        command,
        &agent,
        cli.output.unwrap_or(OutputFormat::Text),
    ))
}

/// Run under this name (a link to ipvsctl), it means the `ipvsadm-restore` script, which clears
/// the table and restores stdin: `ipvsctl -R --replace`, which replaces the table with the
/// input while leaving alone what the input keeps.
pub const RESTORE_NAME: &str = "ipvsctl-restore";

/// The arguments `program` stands for: `ipvsctl-restore ARGS` is `ipvsctl ARGS -R --replace`
/// (last, so that fleet flags, which must come first, still do).
fn with_implied(program: &str, args: &[String]) -> Vec<String> {
    let name = std::path::Path::new(program)
        .file_name()
        .and_then(|n| n.to_str());
    let implied: &[&str] = if name == Some(RESTORE_NAME) {
        &["-R", "--replace"]
    } else {
        &[]
    };
    args.iter()
        .cloned()
        .chain(implied.iter().map(|a| a.to_string()))
        .collect()
}

/// Runs ipvsctl with `argv` (program name first) and returns the exit status.
pub fn main(argv: Vec<String>) -> ExitCode {
    let program = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "ipvsctl".to_string());
    let args = &with_implied(&program, argv.get(1..).unwrap_or_default());
    // Fleet flags come first and wrap any other command.
    if fleet::is_fleet_command(args) {
        return fleet::main(&program, args);
    }
    let result = if policy::is_policy_command(args) {
        policy_main(&argv)
    } else if state::is_state_command(args) {
        state::main(&argv)
    } else if link::is_iface_command(args) {
        iface_main(&argv)
    } else {
        ipvsadm_main(&program, args)
    };
    match result {
        Ok(text) => match write_stdout(&text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipvsctl: cannot write output: {e}");
                ExitCode::from(exit::LIST_FAILED)
            }
        },
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvsctl_restore_means_restore_replacing_the_table() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_implied("/usr/local/bin/ipvsctl-restore", &args(&["--dry-run"])),
            args(&["--dry-run", "-R", "--replace"])
        );
        assert_eq!(
            with_implied("ipvsctl-restore", &[]),
            args(&["-R", "--replace"])
        );
        assert_eq!(
            with_implied("ipvsctl-restore", &args(&["--agents", "a,b"])),
            args(&["--agents", "a,b", "-R", "--replace"])
        );
        assert!(fleet::is_fleet_command(&with_implied(
            "ipvsctl-restore",
            &args(&["--agents", "a,b"])
        )));
        assert_eq!(with_implied("ipvsctl", &args(&["-R"])), args(&["-R"]));
        assert_eq!(
            with_implied("/opt/ipvsctl-restore-old", &args(&["-R"])),
            args(&["-R"])
        );
    }
}
