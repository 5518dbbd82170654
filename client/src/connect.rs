//! Opening a channel to the agent.
//!
//! The connection is made before the first request, so a missing agent is reported once,
//! naming the address tried, rather than on every call.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::address::AgentAddress;
use crate::error::{ClientError, root_cause};

/// How long to wait for the agent to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, unless the caller chose otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to the agent; each request may take [`REQUEST_TIMEOUT`].
pub async fn connect(address: &AgentAddress) -> Result<Channel, ClientError> {
    connect_with_timeout(address, REQUEST_TIMEOUT).await
}

/// Connects to the agent; each request may take `request_timeout` (a whole-table apply of
/// thousands of services takes the kernel longer than a listing; a watch needs no limit).
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

#[cfg(test)]
mod tests {
    use super::*;

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
