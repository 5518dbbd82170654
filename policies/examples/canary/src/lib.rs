//! Canary split: the real servers named in `canary` share `percent` (0..=100, default 10) of a
//! weight budget `total` (default 1000); the other servers share the rest. Within a group the
//! share is even, and a group with a non-zero share never gets a weight below 1.

use ipvs_policy_sdk::{Decision, Input, MAX_WEIGHT, Policy, RealServer, export_policy, params};

#[derive(Debug)]
pub struct Canary;

/// Each of `n` servers' weight for `percent` of `total`.
fn share(total: u64, percent: u64, n: usize) -> u32 {
    let n = n.max(1) as u64;
    let w = (total * percent + 50 * n) / (100 * n);
    let w = if percent > 0 { w.max(1) } else { 0 };
    u32::try_from(w).map_or(MAX_WEIGHT, |w| w.min(MAX_WEIGHT))
}

impl Policy for Canary {
    fn evaluate(input: &Input) -> Result<Decision, String> {
        let percent = params::parse_or(&input.params, "percent", 10u64)?;
        if percent > 100 {
            return Err(format!("parameter percent: {percent} is more than 100"));
        }
        let total = params::parse_or(&input.params, "total", 1000u64)?;
        if total == 0 || total > 100 * u64::from(MAX_WEIGHT) {
            return Err(format!("parameter total: {total} is not in 1..=6553500"));
        }
        let names = params::list(&input.params, "canary");
        if names.is_empty() {
            return Err("parameter canary: name at least one real server".to_owned());
        }
        if let Some(missing) = names.iter().find(|n| input.server(n).is_none()) {
            return Err(format!("canary {missing} is not in the service"));
        }
        let (canary, stable): (Vec<&RealServer>, Vec<&RealServer>) =
            input.servers.iter().partition(|s| names.contains(&s.name));
        if stable.is_empty() && percent < 100 {
            return Err("no server outside the canary group".to_owned());
        }
        let cw = share(total, percent, canary.len());
        let sw = share(total, 100 - percent, stable.len());
        let mut d = Decision::new(format!(
            "canary {percent}%: {} servers at {cw}, {} at {sw}",
            canary.len(),
            stable.len()
        ));
        for s in canary {
            d = d.weight(&s.name, cw);
        }
        for s in stable {
            d = d.weight(&s.name, sw);
        }
        Ok(d)
    }
}

export_policy!(Canary);

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_policy_sdk::testing::{input, server};

    fn run(params: &[(&str, &str)]) -> Result<Decision, String> {
        let mut i = input(vec![
            server("10.0.0.2", 80).build(),
            server("10.0.0.3", 80).build(),
            server("10.0.0.4", 80).build(),
            server("10.0.0.9", 80).build(),
        ]);
        i.params = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Canary::evaluate(&i)
    }

    #[test]
    fn splits_by_percentage() {
        let d = run(&[("canary", "10.0.0.9:80"), ("percent", "25")]).expect("decision");
        assert_eq!(d.weight_of("10.0.0.9:80"), Some(250));
        for s in ["10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"] {
            assert_eq!(d.weight_of(s), Some(250), "{s}");
        }
        assert_eq!(d.reason, "canary 25%: 1 servers at 250, 3 at 250");

        let d = run(&[("canary", "10.0.0.9:80"), ("percent", "0")]).expect("decision");
        assert_eq!(d.weight_of("10.0.0.9:80"), Some(0));
        assert_eq!(d.weight_of("10.0.0.2:80"), Some(333));

        let d = run(&[
            ("canary", "10.0.0.9:80,10.0.0.2:80"),
            ("total", "10"),
            ("percent", "1"),
        ])
        .expect("decision");
        assert_eq!(d.weight_of("10.0.0.9:80"), Some(1), "never below 1");
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(5));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("canary", "10.0.0.9:80"), ("percent", "101")],
                "parameter percent: 101 is more than 100",
            ),
            (
                &[("canary", "10.0.0.9:80"), ("total", "0")],
                "parameter total: 0 is not in 1..=6553500",
            ),
            (
                &[("percent", "5")],
                "parameter canary: name at least one real server",
            ),
            (
                &[("canary", "10.0.0.7:80")],
                "canary 10.0.0.7:80 is not in the service",
            ),
        ];
        for (params, want) in cases {
            assert_eq!(run(params), Err(want.to_owned()));
        }
        let all = run(&[("canary", "10.0.0.2:80,10.0.0.3:80,10.0.0.4:80,10.0.0.9:80")]);
        assert_eq!(all, Err("no server outside the canary group".to_owned()));
    }
}
