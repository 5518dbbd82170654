//! Scheduler switch on skew: when the busiest real server holds `high` times (default 2.0) the
//! mean active connections, switch to the `skewed` scheduler (default `lc`); once the ratio is
//! back under `low` (default 1.25) return to `normal` (default `wrr`). Between the two nothing
//! changes, so the scheduler does not flap. Below `min-conns` (default 10) active connections
//! in total there is too little traffic to judge.

use ipvs_policy_sdk::{Decision, Input, Policy, export_policy, params};

#[derive(Debug)]
pub struct SkewScheduler;

impl Policy for SkewScheduler {
    fn evaluate(input: &Input) -> Result<Decision, String> {
        let p = &input.params;
        let high = params::parse_or(p, "high", 2.0f64)?;
        let low = params::parse_or(p, "low", 1.25f64)?;
        if !(low >= 1.0 && high > low) {
            return Err(format!(
                "parameters low/high: need 1 <= low < high, got {low}/{high}"
            ));
        }
        let skewed = params::get(p, "skewed").unwrap_or("lc");
        let normal = params::get(p, "normal").unwrap_or("wrr");
        let min_conns = params::parse_or(p, "min-conns", 10u64)?;

        let live: Vec<u64> = input
            .servers
            .iter()
            .filter(|s| s.weight > 0)
            .map(|s| u64::from(s.active_conns))
            .collect();
        let total: u64 = live.iter().sum();
        if live.len() < 2 || total < min_conns {
            return Ok(Decision::new(format!(
                "{total} active connections on {} servers: too little to judge",
                live.len()
            )));
        }
        let mean = total as f64 / live.len() as f64;
        let ratio = live.iter().copied().max().unwrap_or(0) as f64 / mean;
        let current = input.service.scheduler.as_str();
        let d = if ratio >= high && current != skewed {
            Decision::new(format!(
                "skew {ratio:.2} >= {high:.2}: {current} -> {skewed}"
            ))
            .scheduler(skewed)
        } else if ratio <= low && current != normal {
            Decision::new(format!(
                "skew {ratio:.2} <= {low:.2}: {current} -> {normal}"
            ))
            .scheduler(normal)
        } else {
            Decision::new(format!("skew {ratio:.2}: keep {current}"))
        };
        Ok(d)
    }
}

export_policy!(SkewScheduler);

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_policy_sdk::testing::{input, server};

    fn run(sched: &str, active: &[u32]) -> Result<Decision, String> {
        let mut i = input(
            active
                .iter()
                .enumerate()
                .map(|(n, a)| server(&format!("10.0.0.{}", n + 2), 80).active(*a).build())
                .collect(),
        );
        i.service.scheduler = sched.to_owned();
        SkewScheduler::evaluate(&i)
    }

    #[test]
    fn switches_with_hysteresis() {
        let d = run("wrr", &[90, 5, 5]).expect("decision");
        assert_eq!(d.scheduler.as_deref(), Some("lc"));
        assert_eq!(d.reason, "skew 2.70 >= 2.00: wrr -> lc");

        let d = run("lc", &[90, 5, 5]).expect("decision");
        assert_eq!(d.scheduler, None, "already switched");

        let d = run("lc", &[45, 30, 25]).expect("decision");
        assert_eq!(d.scheduler, None, "1.25 < ratio < 2: keep");
        assert_eq!(d.reason, "skew 1.35: keep lc");

        let d = run("lc", &[34, 33, 33]).expect("decision");
        assert_eq!(d.scheduler.as_deref(), Some("wrr"));
    }

    #[test]
    fn too_little_traffic_or_bad_parameters() {
        let d = run("wrr", &[5, 0]).expect("decision");
        assert_eq!(d.scheduler, None);
        assert_eq!(
            d.reason,
            "5 active connections on 2 servers: too little to judge"
        );
        let mut i = input(vec![]);
        i.params = vec![("low".into(), "3".into()), ("high".into(), "2".into())];
        assert_eq!(
            SkewScheduler::evaluate(&i),
            Err("parameters low/high: need 1 <= low < high, got 3/2".to_owned())
        );
    }
}
