//! Least-connections weighting: each real server's weight is inversely proportional to its
//! connection load, so the least loaded server gets `max-weight` and one with twice the load
//! gets about half. Load counts an active connection as 256 inactive ones, as the kernel's
//! `lc` scheduler does.
//!
//! Parameters: `max-weight` (1..=65535, default 100). Servers at weight 0 (quiesced by an
//! operator) are left alone.

use ipvs_policy_sdk::{Decision, Input, MAX_WEIGHT, Policy, RealServer, export_policy, params};

#[derive(Debug)]
pub struct LeastConnections;

fn load(s: &RealServer) -> u64 {
    u64::from(s.active_conns) * 256 + u64::from(s.inactive_conns)
}

impl Policy for LeastConnections {
    fn evaluate(input: &Input) -> Result<Decision, String> {
        let max = params::parse_or(&input.params, "max-weight", 100u32)?;
        if !(1..=MAX_WEIGHT).contains(&max) {
            return Err(format!("parameter max-weight: {max} is not in 1..=65535"));
        }
        let live: Vec<&RealServer> = input.servers.iter().filter(|s| s.weight > 0).collect();
        let Some(min) = live.iter().map(|s| load(s)).min() else {
            return Ok(Decision::new("no real server in service"));
        };
        let mut d = Decision::new(format!(
            "least-connections over {} servers, lowest load {min}",
            live.len()
        ));
        for s in live {
            // (min + 1) / (load + 1) in 0..=1, rounded, never below 1 so no server is drained.
            let (num, den) = (u64::from(max) * (min + 1), load(s) + 1);
            let w = (num + den / 2) / den;
            let w = u32::try_from(w.max(1)).unwrap_or(max);
            d = d.weight(&s.name, w);
        }
        Ok(d)
    }
}

export_policy!(LeastConnections);

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_policy_sdk::testing::{input, server};

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
    fn empty_service_changes_nothing() {
        let d = LeastConnections::evaluate(&input(vec![])).expect("decision");
        assert!(d.weights.is_empty());
        assert_eq!(d.reason, "no real server in service");
    }
}
