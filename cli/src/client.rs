//! Where the agent is and how to reach it: the `ipvs-client` library.
//!
//! The address comes from `--agent`, else `IPVSCTL_AGENT`, else the local socket
//! `unix:/run/ipvs-agent/agent.sock`.

pub use ipvs_client::{
    AGENT_ENV, AgentAddress, DEFAULT_AGENT, REQUEST_TIMEOUT, connect, connect_with_timeout,
    is_transport_failure, root_cause,
};
