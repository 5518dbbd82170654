//! Client library for ipvs-agent: where an agent is ([`AgentAddress`]), how to reach it
//! ([`connect`], [`Agent`]), and what a failed call means ([`ClientError`], [`root_cause`],
//! [`is_transport_failure`]).
//!
//! The API itself is generated in [`ipvs_proto::v1`]; [`Agent`] hands out its typed clients on
//! one shared connection:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ipvs_client::{Agent, AgentAddress};
//! use ipvs_proto::v1::ListServicesRequest;
//!
//! let agent = Agent::connect(&AgentAddress::parse("http://127.0.0.1:50051")?).await?;
//! let services = agent.ipvs().list_services(ListServicesRequest {}).await?.into_inner();
//! println!("{} services", services.services.len());
//! # Ok(())
//! # }
//! ```

mod address;
mod agent;
mod connect;
mod error;

pub use address::{AGENT_ENV, AgentAddress, DEFAULT_AGENT};
pub use agent::Agent;
pub use connect::{CONNECT_TIMEOUT, REQUEST_TIMEOUT, connect, connect_with_timeout};
pub use error::{ClientError, is_transport_failure, root_cause};
