//! Where the agent is.
//!
//! `unix:/path` names a Unix socket, `http://host:port` a TCP address (plaintext HTTP/2).
//! Programs pick the address from a flag, else [`AGENT_ENV`], else [`DEFAULT_AGENT`].

use std::fmt;
use std::path::PathBuf;

use tonic::transport::Uri;

use crate::error::ClientError;

/// The agent's address when neither a flag nor [`AGENT_ENV`] says otherwise.
pub const DEFAULT_AGENT: &str = "unix:/run/ipvs-agent/agent.sock";
/// The environment variable naming the agent's address.
pub const AGENT_ENV: &str = "IPVSCTL_AGENT";

/// A parsed agent address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentAddress {
    /// A Unix socket, by absolute path.
    Unix(PathBuf),
    /// A TCP endpoint, as the `http://host:port` URI given.
    Http(String),
}

impl fmt::Display for AgentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            AgentAddress::Http(u) => f.write_str(u),
        }
    }
}

impl std::str::FromStr for AgentAddress {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentAddress::parse(s)
    }
}

impl AgentAddress {
    /// Parses `unix:/path` (also `unix:///path`) or `http://host:port`.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadAddress(s.to_string());
        if let Some(path) = s.strip_prefix("unix:") {
            // Accept unix:/p and unix:///p.
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(bad());
            }
            return Ok(AgentAddress::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("http://") {
            if rest.is_empty() || s.parse::<Uri>().is_err() {
                return Err(bad());
            }
            return Ok(AgentAddress::Http(s.to_string()));
        }
        Err(bad())
    }

    /// `flag` if given, else `env` (the value of [`AGENT_ENV`]), else [`DEFAULT_AGENT`].
    pub fn choose(flag: Option<&str>, env: Option<&str>) -> Result<Self, ClientError> {
        AgentAddress::parse(flag.or(env).unwrap_or(DEFAULT_AGENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let cases: &[(&str, Result<AgentAddress, ClientError>)] = &[
            (
                "unix:/run/ipvs-agent/agent.sock",
                Ok(AgentAddress::Unix("/run/ipvs-agent/agent.sock".into())),
            ),
            (
                "unix:///tmp/a.sock",
                Ok(AgentAddress::Unix("/tmp/a.sock".into())),
            ),
            (
                "http://127.0.0.1:50051",
                Ok(AgentAddress::Http("http://127.0.0.1:50051".into())),
            ),
            (
                "http://[::1]:50051",
                Ok(AgentAddress::Http("http://[::1]:50051".into())),
            ),
            (
                "unix:relative.sock",
                Err(ClientError::BadAddress("unix:relative.sock".into())),
            ),
            (
                "/run/agent.sock",
                Err(ClientError::BadAddress("/run/agent.sock".into())),
            ),
            (
                "https://host:1",
                Err(ClientError::BadAddress("https://host:1".into())),
            ),
            ("http://", Err(ClientError::BadAddress("http://".into()))),
        ];
        for (input, want) in cases {
            assert_eq!(&AgentAddress::parse(input), want, "{input}");
            assert_eq!(&input.parse::<AgentAddress>(), want, "{input}");
        }
    }

    #[test]
    fn flag_beats_environment_beats_default() {
        let unix = |p: &str| AgentAddress::Unix(p.into());
        assert_eq!(
            AgentAddress::choose(Some("unix:/a"), Some("unix:/b")),
            Ok(unix("/a"))
        );
        assert_eq!(AgentAddress::choose(None, Some("unix:/b")), Ok(unix("/b")));
        assert_eq!(
            AgentAddress::choose(None, None),
            Ok(unix("/run/ipvs-agent/agent.sock"))
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["unix:/run/ipvs-agent/agent.sock", "http://127.0.0.1:50051"] {
            assert_eq!(
                AgentAddress::parse(s).map(|a| a.to_string()),
                Ok(s.to_string())
            );
        }
    }

    #[test]
    fn bad_address_message_says_what_is_expected() {
        assert_eq!(
            AgentAddress::parse("tcp://x:1").map_err(|e| e.to_string()),
            Err(
                "invalid agent address `tcp://x:1': expected unix:/path or http://host:port".into()
            )
        );
    }
}
