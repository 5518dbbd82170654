//! What one evaluation is given, in the agent's own types.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipvs_types::{DestinationEntry, Scheduler, ServiceEntry};

/// The live service a policy decides for, plus the attachment's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInput {
    pub service: ServiceEntry,
    pub servers: Vec<DestinationEntry>,
    /// The health of the real servers that have a health check, by address and port; a
    /// server not in here has none. Given to `ipvs:policy@1.1.0` components only.
    pub health: HashMap<(IpAddr, u16), ServerHealth>,
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

impl PolicyInput {
    /// The health of real server `addr:port`, if it has a check.
    pub fn health_of(&self, addr: IpAddr, port: u16) -> Option<&ServerHealth> {
        if self.health.is_empty() {
            return None;
        }
        self.health.get(&(addr, port))
    }
}

/// A real server's health check as of the evaluation (the contract's `health` record).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHealth {
    /// The check's verdict (it changes only after `rise`/`fall` agreeing probes).
    pub up: bool,
    /// Whether the last probe passed (false before the first probe).
    pub last_passed: bool,
    /// Probes in a row, up to and including the last one, with the last one's result; 0
    /// before the first probe.
    pub consecutive: u32,
    /// How long the last probe took; `None` before the first probe.
    pub last_latency: Option<Duration>,
    /// How long the verdict has held (since it last changed, or since the check started).
    pub since: Duration,
    /// The last probe's result in a few words ("ok", "http 503", "timeout"); the policy is
    /// given its first [`ServerHealth::REASON_BYTES`].
    pub reason: String,
}

impl ServerHealth {
    /// How much of `reason` a policy is given.
    pub const REASON_BYTES: usize = 128;
}
