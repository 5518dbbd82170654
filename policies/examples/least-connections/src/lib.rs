//! Least-connections weighting: each real server's weight is inversely proportional to its
//! connection load, so the least loaded server gets `max-weight` and one with twice the load
//! gets about half. Load counts an active connection as 256 inactive ones, as the kernel's
//! `lc` scheduler does.
//!
//! A server whose health check says down is left out of the choice and set to weight 0; the
//! state remembers it, so that it is weighted again once its check says up. Servers at
//! weight 0 for any other reason (quiesced by an operator) are left alone.
//!
//! Parameters: `max-weight` (1..=65535, default 100).

use ipvs_policy_sdk::state::{self, State};
use ipvs_policy_sdk::{Decision, Input, MAX_WEIGHT, Policy, RealServer, export_policy, params};

#[derive(Debug)]
pub struct LeastConnections;

fn load(s: &RealServer) -> u64 {
    u64::from(s.active_conns) * 256 + u64::from(s.inactive_conns)
}

/// The state's value for a server this policy set to 0 because it was down.
const DOWN: &str = "down";

impl Policy for LeastConnections {
    fn evaluate(input: &Input) -> Result<Decision, String> {
        let max = params::parse_or(&input.params, "max-weight", 100u32)?;
        if !(1..=MAX_WEIGHT).contains(&max) {
            return Err(format!("parameter max-weight: {max} is not in 1..=65535"));
        }
        let zeroed = state::decode(&input.state)?;
        // Ours to weigh: in service, or at 0 because this policy found it down.
        let ours = |s: &&RealServer| s.weight > 0 || zeroed.get(&s.name).is_some_and(|v| v == DOWN);
        let (live, down): (Vec<&RealServer>, Vec<&RealServer>) = input
            .servers
            .iter()
            .filter(ours)
            .partition(|s| s.is_healthy());
        // Every server its check says is down, whoever set its weight: for the reason.
        let unhealthy = input.servers.iter().filter(|s| !s.is_healthy()).count();
        let mut d = Decision::new(if unhealthy == 0 {
            "no real server in service"
        } else {
            "no healthy real server"
        });
        if let Some(min) = live.iter().map(|s| load(s)).min() {
            d = Decision::new(format!(
                "least-connections over {} servers, lowest load {min}",
                live.len()
            ));
            for s in &live {
                // (min + 1) / (load + 1) in 0..=1, rounded, never below 1 so no server is
                // drained.
                let (num, den) = (u64::from(max) * (min + 1), load(s) + 1);
                let w = (num + den / 2) / den;
                let w = u32::try_from(w.max(1)).unwrap_or(max);
                d = d.weight(&s.name, w);
            }
        }
        let mut now_zeroed = State::new();
        for s in &down {
            d = d.weight(&s.name, 0);
            now_zeroed.insert(s.name.clone(), DOWN.to_owned());
        }
        if unhealthy > 0 {
            d.reason.push_str(&format!("; {unhealthy} down"));
        }
        let blob = state::encode(&now_zeroed);
        if blob != input.state {
            d = d.state(blob);
        }
        Ok(d)
    }
}

export_policy!(LeastConnections);

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_policy_sdk::testing::{health, input, server};

    #[test]
    fn weights_follow_inverse_load() {
        let i = input(vec![
            server("10.0.0.2", 80).active(1).build(),
            server("10.0.0.3", 80).active(3).build(),
            server("10.0.0.4", 80).active(0).inactive(10).build(),
            server("10.0.0.5", 80).weight(0).active(50).build(),
        ]);
        let d = LeastConnections::evaluate(&i).expect("decision");
        // loads: 256, 768, 10 → 100 * 11 / 257 ≈ 4, 100 * 11 / 769 ≈ 1, 100.
        assert_eq!(d.weight_of("10.0.0.2:80"), Some(4));
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(1));
        assert_eq!(d.weight_of("10.0.0.4:80"), Some(100));
        assert_eq!(
            d.weight_of("10.0.0.5:80"),
            None,
            "quiesced server untouched"
        );
        assert_eq!(d.reason, "least-connections over 3 servers, lowest load 10");
    }

    #[test]
    fn idle_servers_all_get_max_weight() {
        let mut i = input(vec![
            server("10.0.0.2", 80).build(),
            server("10.0.0.3", 80).build(),
        ]);
        i.params = vec![("max-weight".into(), "7".into())];
        let d = LeastConnections::evaluate(&i).expect("decision");
        assert_eq!(d.weight_of("10.0.0.2:80"), Some(7));
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(7));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut i = input(vec![server("10.0.0.2", 80).build()]);
        i.params = vec![("max-weight".into(), "0".into())];
        assert_eq!(
            LeastConnections::evaluate(&i),
            Err("parameter max-weight: 0 is not in 1..=65535".to_owned())
        );
        i.params = vec![("max-weight".into(), "lots".into())];
        assert_eq!(
            LeastConnections::evaluate(&i),
            Err("parameter max-weight: invalid value \"lots\"".to_owned())
        );
    }

    #[test]
    fn down_servers_get_weight_0_until_they_are_up_again() {
        let i = input(vec![
            server("10.0.0.2", 80).active(1).build(),
            server("10.0.0.3", 80).down("http 503").build(),
            server("10.0.0.4", 80)
                .inactive(10)
                .health(health(true))
                .build(),
            // Quiesced by an operator, then down: still left alone.
            server("10.0.0.5", 80).weight(0).down("timeout").build(),
        ]);
        let d = LeastConnections::evaluate(&i).expect("decision");
        // Loads 256 and 10 among the healthy: 100 * 11 / 257 ≈ 4 and 100.
        assert_eq!(d.weight_of("10.0.0.2:80"), Some(4));
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(0));
        assert_eq!(d.weight_of("10.0.0.4:80"), Some(100));
        assert_eq!(d.weight_of("10.0.0.5:80"), None);
        assert_eq!(
            d.reason,
            "least-connections over 2 servers, lowest load 10; 2 down"
        );
        let state = d.state.expect("remembers the server it zeroed");
        assert_eq!(state, b"10.0.0.3:80=down\n");

        // Still down at weight 0: stays 0 and remembered, nothing new to store.
        let mut next = input(vec![
            server("10.0.0.2", 80).build(),
            server("10.0.0.3", 80).weight(0).down("http 503").build(),
        ]);
        next.state = state.clone();
        let d = LeastConnections::evaluate(&next).expect("decision");
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(0));
        assert_eq!(d.state, None, "state unchanged");

        // Up again: weighted like the others, and forgotten.
        let mut next = input(vec![
            server("10.0.0.2", 80).build(),
            server("10.0.0.3", 80)
                .weight(0)
                .health(health(true))
                .build(),
        ]);
        next.state = state;
        let d = LeastConnections::evaluate(&next).expect("decision");
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(100));
        assert_eq!(d.state, Some(Vec::new()));
    }

    #[test]
    fn all_down_zeroes_all() {
        let i = input(vec![
            server("10.0.0.2", 80).down("timeout").build(),
            server("10.0.0.3", 80).down("timeout").build(),
        ]);
        let d = LeastConnections::evaluate(&i).expect("decision");
        assert_eq!(d.weight_of("10.0.0.2:80"), Some(0));
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(0));
        assert_eq!(d.reason, "no healthy real server; 2 down");
    }

    #[test]
    fn empty_service_changes_nothing() {
        let d = LeastConnections::evaluate(&input(vec![])).expect("decision");
        assert!(d.weights.is_empty());
        assert_eq!(d.reason, "no real server in service");
    }
}
