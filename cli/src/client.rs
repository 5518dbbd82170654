//! Where the agent is and how to reach it.
//!
//! The address comes from `--agent`, else `IPVSCTL_AGENT`, else the local socket
//! `unix:/run/ipvs-agent/agent.sock`. `unix:/path` connects to a Unix socket, `http://host:port`
//! over TCP (plaintext HTTP/2). The connection is made before the first request, so a missing
//! agent is reported once, naming the address tried.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The agent's address when neither `--agent` nor `IPVSCTL_AGENT` says otherwise.
pub const DEFAULT_AGENT: &str = "unix:/run/ipvs-agent/agent.sock";
/// The environment variable naming the agent's address.
pub const AGENT_ENV: &str = "IPVSCTL_AGENT";
/// How long to wait for the agent to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed agent address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAddress {
    Unix(PathBuf),
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

/// Why the agent could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("invalid agent address `{0}': expected unix:/path or http://host:port")]
    BadAddress(String),
    #[error("cannot reach agent at {address}: {reason}")]
    Unreachable { address: String, reason: String },
}

impl AgentAddress {
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

    /// `--agent` if given, else `IPVSCTL_AGENT`, else the default socket.
    pub fn choose(flag: Option<&str>, env: Option<&str>) -> Result<Self, ClientError> {
        AgentAddress::parse(flag.or(env).unwrap_or(DEFAULT_AGENT))
    }
}

/// The innermost cause of an error: "No such file or directory (os error 2)", not
/// "transport error".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Connects to the agent; each request may take [`REQUEST_TIMEOUT`].
pub async fn connect(address: &AgentAddress) -> Result<Channel, ClientError> {
    connect_with_timeout(address, REQUEST_TIMEOUT).await
}

/// Connects to the agent; each request may take `request_timeout` (a whole-table apply of
/// thousands of services takes the kernel longer than a listing).
pub async fn connect_with_timeout(
    address: &AgentAddress,
    request_timeout: Duration,
) -> Result<Channel, ClientError> {
    let unreachable = |e: &(dyn std::error::Error + 'static)| ClientError::Unreachable {
        address: address.to_string(),
        reason: root_cause(e),
    };
    match address {
        AgentAddress::Unix(path) => {
            // The URI is required by the API but unused: the connector ignores it.
            let endpoint = Endpoint::from_static("http://ipvs-agent.invalid")
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(request_timeout);
            let path = path.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .map_err(|e| unreachable(&e))
        }
        AgentAddress::Http(uri) => {
            let endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|_| ClientError::BadAddress(uri.clone()))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(request_timeout);
            endpoint.connect().await.map_err(|e| unreachable(&e))
        }
    }
}

/// Whether a failed request means the connection itself failed (rather than the agent
/// refusing the request).
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable && std::error::Error::source(status).is_some()
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

    #[tokio::test]
    async fn a_missing_socket_names_the_address_and_the_reason() {
        let address = AgentAddress::Unix("/nonexistent/ipvsctl-test/agent.sock".into());
        let err = connect(&address).await.err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(
                "cannot reach agent at unix:/nonexistent/ipvsctl-test/agent.sock: No such file or directory (os error 2)"
                    .to_string()
            )
        );
    }
}
