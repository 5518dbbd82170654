//! Slow start: a real server added after the policy was attached starts at weight 1 and ramps
//! linearly to the weight it was added with over `duration-s` seconds (default 60). Servers
//! present at the first evaluation are left alone.
//!
//! The state blob (SDK `state` codec) remembers, per server name, either `done` or
//! `<first-seen-ms>,<target-weight>`; servers that left the service are forgotten.

use ipvs_policy_sdk::state::{self, State};
use ipvs_policy_sdk::{Decision, Input, Policy, export_policy, params};

#[derive(Debug)]
pub struct SlowStart;

/// Marks that the baseline (the servers present at attach time) has been taken.
const BASELINE: &str = "@baseline";
const DONE: &str = "done";

fn parse_ramp(v: &str) -> Option<(u64, u32)> {
    let (t, w) = v.split_once(',')?;
    Some((t.parse().ok()?, w.parse().ok()?))
}

impl Policy for SlowStart {
    fn evaluate(input: &Input) -> Result<Decision, String> {
        let duration_ms = params::parse_or(&input.params, "duration-s", 60u64)?
            .checked_mul(1000)
            .filter(|d| *d > 0)
            .ok_or("parameter duration-s: must be 1 or more seconds")?;
        let old = state::decode(&input.state)?;
        let first = !old.contains_key(BASELINE);
        let mut new = State::new();
        new.insert(BASELINE.into(), "1".into());
        let mut d = Decision::new("");
        let mut ramping = Vec::new();
        for s in &input.servers {
            let entry = if first {
                DONE.to_owned()
            } else {
                match old.get(&s.name) {
                    Some(v) if v == DONE => DONE.to_owned(),
                    Some(v) => v.clone(),
                    // Added since the last evaluation; a quiesced server is not ramped yet.
                    None if s.weight == 0 => continue,
                    None => format!("{},{}", input.now_ms, s.weight),
                }
            };
            if entry == DONE {
                new.insert(s.name.clone(), entry);
                continue;
            }
            let (since, target) =
                parse_ramp(&entry).ok_or_else(|| format!("state for {}: {entry:?}", s.name))?;
            let elapsed = input.now_ms.saturating_sub(since);
            if elapsed >= duration_ms {
                d = d.weight(&s.name, target);
                new.insert(s.name.clone(), DONE.to_owned());
                continue;
            }
            let w = u64::from(target) * elapsed / duration_ms;
            let w = u32::try_from(w).unwrap_or(target).max(1);
            d = d.weight(&s.name, w);
            ramping.push(format!("{} {w}/{target}", s.name));
            new.insert(s.name.clone(), entry);
        }
        d.reason = if ramping.is_empty() {
            "no server ramping".to_owned()
        } else {
            format!("ramping {}", ramping.join(", "))
        };
        Ok(d.state(state::encode(&new)))
    }
}

export_policy!(SlowStart);

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_policy_sdk::testing::{input, server};

    /// Runs the policy, feeding its state back, with the given servers at `now_ms`.
    fn step(state: &[u8], now_ms: u64, servers: Vec<ipvs_policy_sdk::RealServer>) -> Decision {
        let mut i = input(servers);
        i.state = state.to_vec();
        i.now_ms = now_ms;
        i.params = vec![("duration-s".into(), "10".into())];
        SlowStart::evaluate(&i).expect("decision")
    }

    #[test]
    fn new_server_ramps_then_stays() {
        let a = || server("10.0.0.2", 80).weight(50).build();
        let t0 = 1_000_000;
        let d = step(&[], t0, vec![a()]);
        assert!(d.weights.is_empty(), "baseline servers are not ramped");
        let s0 = d.state.expect("state");

        // 10.0.0.3 appears with weight 40: starts at 1.
        let b = |w| server("10.0.0.3", 80).weight(w).build();
        let d = step(&s0, t0 + 1000, vec![a(), b(40)]);
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(1));
        assert_eq!(d.weight_of("10.0.0.2:80"), None);
        assert_eq!(d.reason, "ramping 10.0.0.3:80 1/40");
        let s1 = d.state.expect("state");

        // 5 s later (half of 10 s): 20, whatever the kernel weight now is.
        let d = step(&s1, t0 + 6000, vec![a(), b(1)]);
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(20));
        let s2 = d.state.expect("state");

        // After the ramp: the target, then nothing more.
        let d = step(&s2, t0 + 11_000, vec![a(), b(20)]);
        assert_eq!(d.weight_of("10.0.0.3:80"), Some(40));
        assert_eq!(d.reason, "no server ramping");
        let s3 = d.state.expect("state");
        let d = step(&s3, t0 + 12_000, vec![a(), b(40)]);
        assert!(d.weights.is_empty());
    }

    #[test]
    fn departed_servers_are_forgotten() {
        let d = step(&[], 0, vec![server("10.0.0.2", 80).build()]);
        let d = step(&d.state.expect("state"), 1, vec![]);
        let s = state::decode(&d.state.expect("state")).expect("decodes");
        assert_eq!(s.keys().collect::<Vec<_>>(), ["@baseline"]);
    }

    #[test]
    fn quiesced_newcomer_waits_until_it_has_a_weight() {
        let s0 = step(&[], 0, vec![]).state.expect("state");
        let d = step(&s0, 1000, vec![server("10.0.0.4", 80).weight(0).build()]);
        assert!(d.weights.is_empty());
        let d = step(
            &d.state.expect("state"),
            2000,
            vec![server("10.0.0.4", 80).weight(8).build()],
        );
        assert_eq!(d.weight_of("10.0.0.4:80"), Some(1));
    }

    #[test]
    fn bad_input_is_refused() {
        let mut i = input(vec![]);
        i.params = vec![("duration-s".into(), "0".into())];
        assert_eq!(
            SlowStart::evaluate(&i),
            Err("parameter duration-s: must be 1 or more seconds".to_owned())
        );
        let mut i = input(vec![server("10.0.0.2", 80).build()]);
        i.state = b"@baseline=1\n10.0.0.2:80=soon\n".to_vec();
        assert_eq!(
            SlowStart::evaluate(&i),
            Err("state for 10.0.0.2:80: \"soon\"".to_owned())
        );
    }
}
