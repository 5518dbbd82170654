//! From probe results to a server's health: the state changes only after `rise` successes (or
//! `fall` failures) in a row, so a flapping server does not flap its weight. Pure: the caller
//! gives the time.

use std::time::{Duration, Instant};

use crate::check::State;
use crate::probe::{Outcome, ProbeResult};

/// What the owner of a weight must do after a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The server changed state; `weight` is the weight an up server asks for (`None`: its
    /// declared one).
    Went { to: State, weight: Option<u32> },
    /// Still up, asking for another weight (an exec check's dynamic weight).
    Reweighted(Option<u32>),
}

/// One server's health, as its probes have shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    state: State,
    /// Results in a row that agree with the last one (up or down).
    streak: u32,
    last_up: Option<bool>,
    /// The weight an up server asks for; `None`: the declared one.
    weight: Option<u32>,
    since: Instant,
    last: Option<ProbeResult>,
}

impl Machine {
    pub fn new(initial: State, now: Instant) -> Self {
        Machine {
            state: initial,
            streak: 0,
            last_up: None,
            weight: None,
            since: now,
            last: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Results in a row agreeing with the last one.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// When the state last changed (or the machine started).
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn last(&self) -> Option<&ProbeResult> {
        self.last.as_ref()
    }

    /// The weight an up server asks for; `None`: its declared one.
    pub fn weight(&self) -> Option<u32> {
        self.weight
    }

    /// Takes one result; says what changed for the weight's owner, if anything.
    pub fn record(
        &mut self,
        rise: u32,
        fall: u32,
        result: ProbeResult,
        now: Instant,
    ) -> Option<Effect> {
        let up = result.outcome.is_up();
        self.streak = if self.last_up == Some(up) {
            self.streak.saturating_add(1)
        } else {
            1
        };
        self.last_up = Some(up);
        let asked = match result.outcome {
            Outcome::Weight(w) => Some(w),
            Outcome::Up | Outcome::Down => None,
        };
        self.last = Some(result);
        match (self.state, up) {
            (State::Down, true) if self.streak >= rise.max(1) => {
                self.state = State::Up;
                self.since = now;
                self.weight = asked;
                Some(Effect::Went {
                    to: State::Up,
                    weight: asked,
                })
            }
            (State::Up, false) if self.streak >= fall.max(1) => {
                self.state = State::Down;
                self.since = now;
                Some(Effect::Went {
                    to: State::Down,
                    weight: None,
                })
            }
            (State::Up, true) if asked != self.weight => {
                self.weight = asked;
                Some(Effect::Reweighted(asked))
            }
            _ => None,
        }
    }

    /// How long the state has held at `now`.
    pub fn held(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome) -> ProbeResult {
        ProbeResult {
            outcome,
            reason: format!("{outcome:?}"),
            latency: Duration::from_millis(1),
        }
    }

    const U: Outcome = Outcome::Up;
    const D: Outcome = Outcome::Down;

    /// Runs `results` through a machine; returns the state after each and the effects.
    fn run(initial: State, rise: u32, fall: u32, results: &[Outcome]) -> (Vec<State>, Vec<Effect>) {
        let start = Instant::now();
        let mut m = Machine::new(initial, start);
        let mut states = Vec::new();
        let mut effects = Vec::new();
        for (i, o) in results.iter().enumerate() {
            let now = start + Duration::from_secs(i as u64 + 1);
            if let Some(e) = m.record(rise, fall, result(*o), now) {
                effects.push(e);
            }
            states.push(m.state());
        }
        (states, effects)
    }

    fn went(to: State) -> Effect {
        Effect::Went { to, weight: None }
    }

    #[test]
    fn rise_and_fall_hold_the_state_until_enough_results_agree() {
        use State::{Down as d, Up as u};
        // (initial, rise, fall, results, states after each, effects)
        type Case = (State, u32, u32, Vec<Outcome>, Vec<State>, Vec<Effect>);
        let cases: Vec<Case> = vec![
            (u, 2, 3, vec![D, D, D], vec![u, u, d], vec![went(d)]),
            (u, 2, 3, vec![D, D, U, D, D], vec![u, u, u, u, u], vec![]),
            (d, 2, 3, vec![U, U], vec![d, u], vec![went(u)]),
            (d, 2, 3, vec![U, D, U, D], vec![d, d, d, d], vec![]),
            (
                u,
                1,
                1,
                vec![D, U, D],
                vec![d, u, d],
                vec![went(d), went(u), went(d)],
            ),
            // rise/fall 0 act as 1.
            (u, 0, 0, vec![D, U], vec![d, u], vec![went(d), went(u)]),
            (
                u,
                2,
                2,
                vec![U, U, D, D, U, U],
                vec![u, u, u, d, d, u],
                vec![went(d), went(u)],
            ),
        ];
        for (i, (initial, rise, fall, results, states, effects)) in cases.into_iter().enumerate() {
            let (s, e) = run(initial, rise, fall, &results);
            assert_eq!((s, e), (states, effects), "case {i}");
        }
    }

    #[test]
    fn a_dynamic_weight_is_asked_for_only_when_it_changes() {
        let (_, e) = run(
            State::Up,
            2,
            2,
            &[
                Outcome::Weight(5),
                Outcome::Weight(5),
                Outcome::Up,
                Outcome::Weight(3),
            ],
        );
        assert_eq!(
            e,
            vec![
                Effect::Reweighted(Some(5)),
                Effect::Reweighted(None),
                Effect::Reweighted(Some(3))
            ]
        );
        // A server coming up with a dynamic weight brings it with it.
        let (_, e) = run(State::Down, 1, 1, &[Outcome::Weight(7)]);
        assert_eq!(
            e,
            vec![Effect::Went {
                to: State::Up,
                weight: Some(7)
            }]
        );
    }

    #[test]
    fn the_streak_and_since_follow_the_results() {
        let start = Instant::now();
        let mut m = Machine::new(State::Up, start);
        let t = |s| start + Duration::from_secs(s);
        m.record(1, 2, result(D), t(1));
        assert_eq!((m.state(), m.streak(), m.since()), (State::Up, 1, start));
        m.record(1, 2, result(D), t(2));
        assert_eq!((m.state(), m.streak(), m.since()), (State::Down, 2, t(2)));
        m.record(1, 2, result(D), t(3));
        assert_eq!(m.streak(), 3);
        assert_eq!(m.held(t(5)), Duration::from_secs(3));
        assert_eq!(m.last().map(|r| r.outcome), Some(D));
    }
}
