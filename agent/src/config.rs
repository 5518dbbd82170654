//! The `ipvs-agent` command line, and the checks it passes before the agent touches the kernel.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::policy::Limits;

/// Where the agent listens unless told otherwise.
pub const DEFAULT_UNIX_SOCKET: &str = "/run/ipvs-agent/agent.sock";

/// Where the agent keeps uploaded policies unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ipvs-agent";

/// Serves this node's IPVS table and virtual-IP links over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "ipvs-agent", version)]
pub struct Cli {
    /// Unix socket to serve on; its directory is created, a stale socket replaced, and the
    /// socket made accessible to its owner only (0600).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_UNIX_SOCKET)]
    pub unix: PathBuf,

    /// Also serve on this TCP address. There is no authentication yet: an address other than
    /// loopback needs --insecure.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Allow --listen on an address other than loopback, without authentication.
    #[arg(long)]
    pub insecure: bool,

    /// Log line format, on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax, e.g. `info` or `warn,ipvs_agent=debug`.
    #[arg(long, value_name = "FILTER", env = "RUST_LOG", default_value = "info")]
    pub log_level: String,

    /// Directory for the agent's state: uploaded policies (`policies/`), their compiled
    /// artifacts (`artifacts/`) and the declared node state (`revisions/`), kept across
    /// restarts. Created 0700.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// What to do when the node drifts from its declared state (a spec's own `drift` wins):
    /// `report` it in GetState and WatchEvents, or `enforce` (report and restore it).
    #[arg(long, value_enum, default_value_t = DriftArg::Report)]
    pub drift: DriftArg,

    /// Seconds between drift checks.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub drift_interval: u64,

    /// Largest policy component accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT_COMPONENT_BYTES)]
    pub policy_max_bytes: usize,

    /// Fuel (about one unit per WebAssembly instruction) one policy evaluation may use.
    #[arg(long, value_name = "UNITS", default_value_t = Limits::DEFAULT_FUEL)]
    pub policy_fuel: u64,

    /// Wall-clock time one policy evaluation may take, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = Limits::DEFAULT_DEADLINE.as_millis() as u64)]
    pub policy_deadline_ms: u64,

    /// Linear memory one policy instance may grow to, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT_MEMORY_BYTES)]
    pub policy_memory_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftArg {
    Report,
    Enforce,
}

impl From<DriftArg> for crate::state::DriftMode {
    fn from(d: DriftArg) -> Self {
        match d {
            DriftArg::Report => crate::state::DriftMode::Report,
            DriftArg::Enforce => crate::state::DriftMode::Enforce,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A command line that parses but must not start an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "refusing to listen on {0} without --insecure: the agent has no authentication yet, so \
         anyone who can reach that address could rewrite this node's IPVS table and links. \
         Listen on a loopback address (127.0.0.1 or ::1) or use the unix socket, or pass \
         --insecure to accept that risk"
    )]
    InsecureListen(SocketAddr),
    #[error("invalid --log-level (or RUST_LOG) {filter:?}: {reason}")]
    LogFilter { filter: String, reason: String },
}

impl Cli {
    /// The policy engine's limits: the defaults with this command line's overrides.
    pub fn policy_limits(&self) -> Limits {
        Limits {
            component_bytes: self.policy_max_bytes,
            fuel: self.policy_fuel,
            deadline: std::time::Duration::from_millis(self.policy_deadline_ms),
            memory_bytes: self.policy_memory_bytes,
            ..Limits::default()
        }
    }

    /// Everything that can be refused before the agent opens a socket.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(addr) = self.listen
            && !self.insecure
            && !addr.ip().to_canonical().is_loopback()
        {
            return Err(ConfigError::InsecureListen(addr));
        }
        self.log_filter().map(|_| ())
    }

    pub fn log_filter(&self) -> Result<EnvFilter, ConfigError> {
        EnvFilter::try_new(&self.log_level).map_err(|e| ConfigError::LogFilter {
            filter: self.log_level.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ipvs-agent").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["ipvs-agent"]).expect("no arguments");
        assert_eq!(cli.unix, PathBuf::from("/run/ipvs-agent/agent.sock"));
        assert_eq!((cli.listen, cli.insecure), (None, false));
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    #[test]
    fn tcp_needs_loopback_or_insecure() {
        let cases: Vec<(&[&str], Result<(), ConfigError>)> = vec![
            (&[], Ok(())),
            (&["--listen", "127.0.0.1:50051"], Ok(())),
            (&["--listen", "127.0.0.53:50051"], Ok(())),
            (&["--listen", "[::1]:50051"], Ok(())),
            (&["--listen", "[::ffff:127.0.0.1]:50051"], Ok(())),
            (
                &["--listen", "0.0.0.0:50051"],
                Err(ConfigError::InsecureListen(addr("0.0.0.0:50051"))),
            ),
            (
                &["--listen", "10.0.2.15:50051"],
                Err(ConfigError::InsecureListen(addr("10.0.2.15:50051"))),
            ),
            (
                &["--listen", "[::]:50051"],
                Err(ConfigError::InsecureListen(addr("[::]:50051"))),
            ),
            (&["--listen", "0.0.0.0:50051", "--insecure"], Ok(())),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args).check(), want, "{args:?}");
        }
    }

    #[test]
    fn bad_log_filter_is_refused() {
        let cli = parse(&["--log-level", "info,[bad"]);
        assert!(
            matches!(&cli.check(), Err(ConfigError::LogFilter { filter, .. }) if filter == "info,[bad"),
            "{:?}",
            cli.check()
        );
        assert_eq!(
            parse(&["--log-level", "warn,ipvs_agent=debug"]).check(),
            Ok(())
        );
    }

    #[test]
    fn log_format_values() {
        assert_eq!(parse(&["--log-format", "json"]).log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["ipvs-agent", "--log-format", "xml"]).is_err());
    }
}
