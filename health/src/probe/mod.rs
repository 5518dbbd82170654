//! One probe of one server: what it found, why, and how long it took.

use std::net::SocketAddr;
use std::time::Duration;

use crate::check::Kind;

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Up,
    Down,
    /// Up, asking for this weight (an exec check's exit code 2..=255, minus 2).
    Weight(u32),
}

impl Outcome {
    pub fn is_up(self) -> bool {
        !matches!(self, Outcome::Down)
    }
}

/// A probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    /// One short phrase: `http 200`, `http 503`, `connect refused`, `timeout after 2s`.
    pub reason: String,
    /// From the start of the probe to its verdict.
    pub latency: Duration,
}

/// Runs probes; shared by every check of a node.
#[derive(Debug)]
pub struct Prober {}

impl Prober {
    /// At most `exec_concurrency` exec checks run at once.
    pub fn new(exec_concurrency: usize) -> Self {
        let _ = exec_concurrency;
        Prober {}
    }

    /// Probes `target` as `kind` says, within `timeout`.
    pub async fn probe(&self, kind: &Kind, target: SocketAddr, timeout: Duration) -> ProbeResult {
        let _ = (kind, target, timeout);
        ProbeResult {
            outcome: Outcome::Down,
            reason: "not implemented".to_owned(),
            latency: Duration::ZERO,
        }
    }
}
