//! The fleet flags, which come before the command: `--fleet FILE`, `--agents a,b,c`,
//! `--selector key=value` (repeatable), `--max-parallel N`. Everything from the first other
//! word on is the command, run unchanged on each node.

use std::fmt;
use std::path::PathBuf;

/// Nodes worked on at once unless `--max-parallel` says otherwise.
pub const DEFAULT_MAX_PARALLEL: usize = 8;

const FLEET: &str = "--fleet";
const AGENTS: &str = "--agents";
const SELECTOR: &str = "--selector";
const MAX_PARALLEL: &str = "--max-parallel";
const FLAGS: [&str; 4] = [FLEET, AGENTS, SELECTOR, MAX_PARALLEL];

/// `--selector key=value`: the agent's label `key` must be `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// A parsed fleet command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetArgs {
    /// `--fleet`: the inventory file.
    pub inventory: Option<PathBuf>,
    /// `--agents`: inventory names, or addresses without `--fleet`.
    pub agents: Option<Vec<String>>,
    pub selectors: Vec<Selector>,
    pub max_parallel: usize,
    /// The command run on each node, without the program name.
    pub command: Vec<String>,
}

/// A fleet command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("{flag} needs {what}")]
    MissingValue {
        flag: &'static str,
        what: &'static str,
    },
    #[error("{0} given twice")]
    Repeated(&'static str),
    #[error("invalid --selector `{0}': expected key=value")]
    BadSelector(String),
    #[error("invalid --max-parallel `{0}': expected a whole number of at least 1")]
    BadMaxParallel(String),
    #[error("--agents has an empty item in `{0}'")]
    EmptyAgent(String),
    #[error("--selector needs --fleet: labels come from the inventory")]
    SelectorWithoutFleet,
    #[error("the fleet flags need --fleet FILE or --agents LIST")]
    NoAgents,
    #[error("no command after the fleet flags (e.g. ipvsctl --fleet FILE -ln)")]
    NoCommand,
    #[error(
        "--agent cannot be used with the fleet flags: each node's address comes from the fleet"
    )]
    AgentInCommand,
}

/// Whether `arg` is one of the fleet flags (`--fleet`, `--fleet=FILE`, ...).
pub fn is_fleet_flag(arg: &str) -> bool {
    split_flag(arg).is_some()
}

/// `--flag` or `--flag=value` as (flag, inline value).
fn split_flag(arg: &str) -> Option<(&'static str, Option<&str>)> {
    FLAGS.iter().find_map(|&flag| {
        let rest = arg.strip_prefix(flag)?;
        if rest.is_empty() {
            Some((flag, None))
        } else {
            rest.strip_prefix('=').map(|v| (flag, Some(v)))
        }
    })
}

fn what(flag: &str) -> &'static str {
    match flag {
        FLEET => "an inventory file",
        AGENTS => "a comma-separated list of agents",
        SELECTOR => "key=value",
        _ => "a number of nodes",
    }
}

/// Parses the fleet flags at the start of `args` (the program name excluded).
pub fn parse(args: &[String]) -> Result<FleetArgs, ArgsError> {
    let mut inventory = None;
    let mut agents: Option<Vec<String>> = None;
    let mut selectors = Vec::new();
    let mut max_parallel = None;
    let mut i = 0;
    while let Some((flag, inline)) = args.get(i).and_then(|a| split_flag(a)) {
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i)
                    .map(String::as_str)
                    .ok_or(ArgsError::MissingValue {
                        flag,
                        what: what(flag),
                    })?
            }
        };
        if value.is_empty() {
            return Err(ArgsError::MissingValue {
                flag,
                what: what(flag),
            });
        }
        i += 1;
        match flag {
            FLEET => {
                if inventory.replace(PathBuf::from(value)).is_some() {
                    return Err(ArgsError::Repeated(FLEET));
                }
            }
            AGENTS => {
                let items: Vec<String> = value.split(',').map(str::to_string).collect();
                if items.iter().any(String::is_empty) {
                    return Err(ArgsError::EmptyAgent(value.to_string()));
                }
                if agents.replace(items).is_some() {
                    return Err(ArgsError::Repeated(AGENTS));
                }
            }
            SELECTOR => {
                let (key, val) = value
                    .split_once('=')
                    .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                    .ok_or_else(|| ArgsError::BadSelector(value.to_string()))?;
                selectors.push(Selector {
                    key: key.to_string(),
                    value: val.to_string(),
                });
            }
            _ => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ArgsError::BadMaxParallel(value.to_string()))?;
                if max_parallel.replace(n).is_some() {
                    return Err(ArgsError::Repeated(MAX_PARALLEL));
                }
            }
        }
    }
    if inventory.is_none() {
        if !selectors.is_empty() {
            return Err(ArgsError::SelectorWithoutFleet);
        }
        if agents.is_none() {
            return Err(ArgsError::NoAgents);
        }
    }
    let command = args.get(i..).unwrap_or_default().to_vec();
    if command.is_empty() {
        return Err(ArgsError::NoCommand);
    }
    if command
        .iter()
        .any(|a| a == "--agent" || a.starts_with("--agent="))
    {
        return Err(ArgsError::AgentInCommand);
    }
    Ok(FleetArgs {
        inventory,
        agents,
        selectors,
        max_parallel: max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL),
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn sel(key: &str, value: &str) -> Selector {
        Selector {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn flags_before_the_command_are_the_fleet_s() {
        let cases: &[(&str, FleetArgs)] = &[
            (
                "--fleet inv.yaml -ln",
                FleetArgs {
                    inventory: Some("inv.yaml".into()),
                    agents: None,
                    selectors: vec![],
                    max_parallel: 8,
                    command: words("-ln"),
                },
            ),
            (
                "--fleet=inv.yaml --agents lb1,lb2 --selector role=lb --selector zone=a --max-parallel 2 link show",
                FleetArgs {
                    inventory: Some("inv.yaml".into()),
                    agents: Some(vec!["lb1".into(), "lb2".into()]),
                    selectors: vec![sel("role", "lb"), sel("zone", "a")],
                    max_parallel: 2,
                    command: words("link show"),
                },
            ),
            (
                "--agents=unix:/a.sock,http://127.0.0.1:1 --max-parallel=1 apply -f x.yaml --fleet y",
                FleetArgs {
                    inventory: None,
                    agents: Some(vec!["unix:/a.sock".into(), "http://127.0.0.1:1".into()]),
                    selectors: vec![],
                    max_parallel: 1,
                    // Fleet flags after the command belong to the command.
                    command: words("apply -f x.yaml --fleet y"),
                },
            ),
            (
                "--fleet f --selector k=v=w -L",
                FleetArgs {
                    inventory: Some("f".into()),
                    agents: None,
                    selectors: vec![sel("k", "v=w")],
                    max_parallel: 8,
                    command: words("-L"),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&words(line)).as_ref(), Ok(want), "{line}");
        }
    }

    #[test]
    fn bad_fleet_flags_are_named() {
        let cases: &[(&str, &str)] = &[
            ("--fleet", "--fleet needs an inventory file"),
            ("--fleet=", "--fleet needs an inventory file"),
            (
                "--agents",
                "--agents needs a comma-separated list of agents",
            ),
            ("--fleet f --selector", "--selector needs key=value"),
            (
                "--fleet f --max-parallel",
                "--max-parallel needs a number of nodes",
            ),
            (
                "--fleet inv.yaml",
                "no command after the fleet flags (e.g. ipvsctl --fleet FILE -ln)",
            ),
            ("--fleet a --fleet b -ln", "--fleet given twice"),
            ("--agents a --agents b -ln", "--agents given twice"),
            (
                "--agents a --max-parallel 2 --max-parallel 3 -ln",
                "--max-parallel given twice",
            ),
            (
                "--fleet f --selector role -ln",
                "invalid --selector `role': expected key=value",
            ),
            (
                "--fleet f --selector =lb -ln",
                "invalid --selector `=lb': expected key=value",
            ),
            (
                "--fleet f --selector role= -ln",
                "invalid --selector `role=': expected key=value",
            ),
            (
                "--agents a --max-parallel 0 -ln",
                "invalid --max-parallel `0': expected a whole number of at least 1",
            ),
            (
                "--agents a --max-parallel x -ln",
                "invalid --max-parallel `x': expected a whole number of at least 1",
            ),
            ("--agents a,,b -ln", "--agents has an empty item in `a,,b'"),
            ("--agents a, -ln", "--agents has an empty item in `a,'"),
            (
                "--agents a --selector role=lb -ln",
                "--selector needs --fleet: labels come from the inventory",
            ),
            (
                "--max-parallel 2 -ln",
                "the fleet flags need --fleet FILE or --agents LIST",
            ),
            (
                "--fleet f -ln --agent unix:/x",
                "--agent cannot be used with the fleet flags: each node's address comes from the fleet",
            ),
            (
                "--fleet f link show --agent=unix:/x",
                "--agent cannot be used with the fleet flags: each node's address comes from the fleet",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse(&words(line)).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{line}"
            );
        }
    }

    #[test]
    fn only_fleet_flags_start_fleet_mode() {
        let cases = [
            ("--fleet", true),
            ("--fleet=x", true),
            ("--agents", true),
            ("--agents=a", true),
            ("--selector", true),
            ("--max-parallel=3", true),
            ("--agent", false),
            ("--agent=unix:/x", false),
            ("--fleetx", false),
            ("-ln", false),
            ("link", false),
        ];
        for (arg, want) in cases {
            assert_eq!(is_fleet_flag(arg), want, "{arg}");
        }
    }
}
