//! What one evaluation is given, in the agent's own types.

use std::time::SystemTime;

use ipvs_types::{DestinationEntry, Scheduler, ServiceEntry};

/// The live service a policy decides for, plus the attachment's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInput {
    pub service: ServiceEntry,
    pub servers: Vec<DestinationEntry>,
    pub now: SystemTime,
    /// 1 for the attachment's first evaluation, then +1 each time.
    pub sequence: u64,
    /// Attach-time parameters, in the order given.
    pub params: Vec<(String, String)>,
    /// The state the previous decision returned (empty at first).
    pub state: Vec<u8>,
    /// The schedulers the kernel offers (the agent's `ipvs::schedulers`): a decision may only
    /// switch to one of these, or keep the current one.
    pub schedulers: Vec<Scheduler>,
}
