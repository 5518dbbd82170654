//! A connected agent, handing out the API's typed clients on one channel.

use std::time::Duration;

use ipvs_proto::v1::config_service_client::ConfigServiceClient;
use ipvs_proto::v1::ipvs_service_client::IpvsServiceClient;
use ipvs_proto::v1::link_service_client::LinkServiceClient;
use ipvs_proto::v1::policy_service_client::PolicyServiceClient;
use ipvs_proto::v1::state_service_client::StateServiceClient;
use ipvs_proto::v1::stats_service_client::StatsServiceClient;
use ipvs_proto::v1::table_service_client::TableServiceClient;
use tonic::transport::Channel;

use crate::address::AgentAddress;
use crate::connect::{REQUEST_TIMEOUT, connect_with_timeout};
use crate::error::ClientError;

/// A connection to one agent. Cloning is cheap and shares the connection; each accessor
/// returns a fresh client that may be used concurrently with the others.
///
/// Clients accept answers of any size: a node with thousands of services or a busy
/// connection table answers with more than tonic's default 4 MiB limit.
#[derive(Debug, Clone)]
pub struct Agent {
    address: AgentAddress,
    channel: Channel,
}

impl Agent {
    /// Connects to the agent at `address`; each request may take [`REQUEST_TIMEOUT`].
    pub async fn connect(address: &AgentAddress) -> Result<Agent, ClientError> {
        Agent::connect_with_timeout(address, REQUEST_TIMEOUT).await
    }

    /// Connects to the agent at `address`; each request may take `request_timeout`.
    pub async fn connect_with_timeout(
        address: &AgentAddress,
        request_timeout: Duration,
    ) -> Result<Agent, ClientError> {
        let channel = connect_with_timeout(address, request_timeout).await?;
        Ok(Agent::from_channel(address.clone(), channel))
    }

    /// Wraps a channel opened elsewhere (e.g. with other transport settings).
    pub fn from_channel(address: AgentAddress, channel: Channel) -> Agent {
        Agent { address, channel }
    }

    /// The address this agent was reached at.
    pub fn address(&self) -> &AgentAddress {
        &self.address
    }

    /// The underlying channel, for clients this type does not name.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Virtual services and real servers (ipvsadm -A/-E/-D/-a/-e/-d/-L/-C/-Z).
    pub fn ipvs(&self) -> IpvsServiceClient<Channel> {
        IpvsServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Dummy links and their addresses.
    pub fn links(&self) -> LinkServiceClient<Channel> {
        LinkServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Counters and rates, as snapshots or a stream.
    pub fn stats(&self) -> StatsServiceClient<Channel> {
        StatsServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Timeouts, sync daemons and the connection table.
    pub fn config(&self) -> ConfigServiceClient<Channel> {
        ConfigServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Table apply: ipvsadm -R lines on top of the table, or a whole-table replacement, made
    /// with minimal changes.
    pub fn table(&self) -> TableServiceClient<Channel> {
        TableServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// WASM policies and their attachments.
    pub fn policy(&self) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Declared node state: apply, diff, export, revisions, drain.
    pub fn state(&self) -> StateServiceClient<Channel> {
        StateServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_fails_with_the_address_tried() {
        let address = AgentAddress::Unix("/nonexistent/ipvs-client-test/a.sock".into());
        assert_eq!(
            Agent::connect(&address).await.err(),
            Some(ClientError::Unreachable {
                address: "unix:/nonexistent/ipvs-client-test/a.sock".into(),
                reason: "No such file or directory (os error 2)".into(),
            })
        );
    }

    #[tokio::test]
    async fn a_channel_from_elsewhere_keeps_its_address() {
        let address = AgentAddress::Http("http://127.0.0.1:9".into());
        // A lazy channel never connects until used, so this test sends no traffic.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let agent = Agent::from_channel(address.clone(), channel);
        assert_eq!(agent.address(), &address);
    }
}
