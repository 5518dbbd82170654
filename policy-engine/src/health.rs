//! Quarantine bookkeeping for one attachment, as a pure state machine: consecutive failures
//! up to a threshold quarantine the policy; the last good decision is kept throughout so the
//! service stays on weights that were once valid.
//!
//! ```text
//!            ok                    failure (n < N)
//!   ┌───────────────┐          ┌───────────────┐
//!   ▼               │          ▼               │
//! Healthy ──failure──▶ Failing(n) ──failure (n = N)──▶ Quarantined ──release──▶ Healthy
//!   ▲                     │ ok
//!   └─────────────────────┘
//! ```

use super::error::Failure;
use super::output::Decision;

/// What the caller should do with an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply this decision.
    Apply(Decision),
    /// Keep the current weights; `consecutive` failures so far.
    Failed { consecutive: u32 },
    /// This failure reached the threshold: stop evaluating until released.
    Quarantined { consecutive: u32 },
    /// The policy was already quarantined; the outcome was ignored.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    threshold: u32,
    consecutive: u32,
    quarantined: bool,
    last_good: Option<Decision>,
    last_failure: Option<Failure>,
}

impl Health {
    /// `threshold` consecutive failures quarantine the policy (0 is taken as 1).
    pub fn new(threshold: u32) -> Self {
        Health {
            threshold: threshold.max(1),
            consecutive: 0,
            quarantined: false,
            last_good: None,
            last_failure: None,
        }
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// The last decision that passed validation.
    pub fn last_good(&self) -> Option<&Decision> {
        self.last_good.as_ref()
    }

    pub fn last_failure(&self) -> Option<&Failure> {
        self.last_failure.as_ref()
    }

    /// Records one evaluation's outcome.
    pub fn record(&mut self, outcome: Result<Decision, Failure>) -> Verdict {
        if self.quarantined {
            return Verdict::Ignored;
        }
        match outcome {
            Ok(decision) => {
                self.consecutive = 0;
                self.last_good = Some(decision.clone());
                Verdict::Apply(decision)
            }
            Err(failure) => {
                self.consecutive = self.consecutive.saturating_add(1);
                self.last_failure = Some(failure);
                if self.consecutive >= self.threshold {
                    self.quarantined = true;
                    Verdict::Quarantined {
                        consecutive: self.consecutive,
                    }
                } else {
                    Verdict::Failed {
                        consecutive: self.consecutive,
                    }
                }
            }
        }
    }

    /// Lifts a quarantine (an operator re-enabled the policy); the failure count restarts.
    pub fn release(&mut self) {
        self.quarantined = false;
        self.consecutive = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(reason: &str) -> Result<Decision, Failure> {
        Ok(Decision {
            reason: reason.into(),
            ..Decision::default()
        })
    }

    fn fail() -> Result<Decision, Failure> {
        Err(Failure::StackOverflow)
    }

    #[test]
    fn sequences() {
        let applied = |r: &str| {
            Verdict::Apply(Decision {
                reason: r.into(),
                ..Decision::default()
            })
        };
        type Case = (u32, Vec<Result<Decision, Failure>>, Vec<Verdict>, bool);
        let cases: Vec<Case> = vec![
            (
                3,
                vec![ok("a"), fail(), fail(), ok("b"), fail()],
                vec![
                    applied("a"),
                    Verdict::Failed { consecutive: 1 },
                    Verdict::Failed { consecutive: 2 },
                    applied("b"),
                    Verdict::Failed { consecutive: 1 },
                ],
                false,
            ),
            (
                2,
                vec![fail(), fail(), ok("late"), fail()],
                vec![
                    Verdict::Failed { consecutive: 1 },
                    Verdict::Quarantined { consecutive: 2 },
                    Verdict::Ignored,
                    Verdict::Ignored,
                ],
                true,
            ),
            (
                0,
                vec![fail()],
                vec![Verdict::Quarantined { consecutive: 1 }],
                true,
            ),
        ];
        for (threshold, outcomes, want, quarantined) in cases {
            let mut h = Health::new(threshold);
            let got: Vec<Verdict> = outcomes.into_iter().map(|o| h.record(o)).collect();
            assert_eq!(got, want, "threshold {threshold}");
            assert_eq!(h.is_quarantined(), quarantined, "threshold {threshold}");
        }
    }

    #[test]
    fn last_good_survives_failures_and_release_resets() {
        let mut h = Health::new(2);
        h.record(ok("good"));
        h.record(Err(Failure::Trap("boom".into())));
        h.record(fail());
        assert!(h.is_quarantined());
        assert_eq!(h.last_good().map(|d| d.reason.as_str()), Some("good"));
        assert_eq!(h.last_failure(), Some(&Failure::StackOverflow));
        h.release();
        assert!(!h.is_quarantined());
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(h.record(fail()), Verdict::Failed { consecutive: 1 });
        assert_eq!(h.last_good().map(|d| d.reason.as_str()), Some("good"));
    }
}
