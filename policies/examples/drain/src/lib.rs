//! Drain: sets the real servers named in `servers` (comma-separated names such as
//! `10.0.0.2:80`) to weight 0, so they take no new connections, and reports in the reason
//! when their connections have reached zero ("drained: ...") — the moment to remove them.

use ipvs_policy_sdk::{Decision, Input, Level, Policy, export_policy, log, params};

#[derive(Debug)]
pub struct Drain;

impl Policy for Drain {
    fn evaluate(input: &Input) -> Result<Decision, String> {
        let names = params::list(&input.params, "servers");
        if names.is_empty() {
            return Err("parameter servers: name at least one real server".to_owned());
        }
        let mut d = Decision::new("");
        let mut busy = Vec::new();
        let mut drained = Vec::new();
        for name in &names {
            let Some(s) = input.server(name) else {
                log(Level::Warn, &format!("{name} is not in the service"));
                continue;
            };
            d = d.weight(&s.name, 0);
            if s.connections() == 0 {
                drained.push(s.name.as_str());
            } else {
                busy.push(format!(
                    "{} ({} active, {} inactive)",
                    s.name, s.active_conns, s.inactive_conns
                ));
            }
        }
        d.reason = match (busy.is_empty(), drained.is_empty()) {
            (true, true) => "none of the servers to drain is in the service".to_owned(),
            (true, false) => format!("drained: {}", drained.join(", ")),
            (false, _) => format!("draining: {}", busy.join(", ")),
        };
        Ok(d)
    }
}

export_policy!(Drain);

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_policy_sdk::testing::{input, server};

    fn run(servers: Vec<ipvs_policy_sdk::RealServer>, names: &str) -> Result<Decision, String> {
        let mut i = input(servers);
        i.params = vec![("servers".into(), names.into())];
        Drain::evaluate(&i)
    }

    #[test]
    fn draining_then_drained() {
        let busy = run(
            vec![
                server("10.0.0.2", 80)
                    .weight(5)
                    .active(3)
                    .inactive(1)
                    .build(),
                server("10.0.0.3", 80).weight(5).active(9).build(),
            ],
            "10.0.0.2:80",
        )
        .expect("decision");
        assert_eq!(busy.weight_of("10.0.0.2:80"), Some(0));
        assert_eq!(busy.weight_of("10.0.0.3:80"), None);
        assert_eq!(busy.reason, "draining: 10.0.0.2:80 (3 active, 1 inactive)");

        let idle = run(
            vec![server("10.0.0.2", 80).weight(0).build()],
            "10.0.0.2:80",
        )
        .expect("decision");
        assert_eq!(idle.reason, "drained: 10.0.0.2:80");
    }

    #[test]
    fn unknown_names_and_missing_parameter() {
        let d = run(vec![server("10.0.0.2", 80).build()], "10.9.9.9:80").expect("decision");
        assert!(d.weights.is_empty());
        assert_eq!(d.reason, "none of the servers to drain is in the service");
        assert_eq!(
            run(vec![], " , "),
            Err("parameter servers: name at least one real server".to_owned())
        );
    }
}
