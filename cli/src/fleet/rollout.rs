//! `apply` across a fleet, carefully: the first node alone, then the rest in batches of
//! `--max-parallel`; each node is applied, then verified with `diff` (the same arguments,
//! `-o json`), which must report no change left. The first batch with a failure ends the
//! rollout: its other nodes finish, no further batch starts.

use crate::exit;

use super::command::verify_command;
use super::merge::NodeOutcome;
use super::runner::{Outcome, Runner, run_bounded};
use super::select::Node;

/// Where a node stands after a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stand {
    Applied,
    Failed {
        reason: String,
        /// The exit status this failure contributes.
        status: u8,
    },
    NotStarted,
}

/// One node's part in a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRollout {
    pub name: String,
    pub stand: Stand,
    /// What `apply` printed, if it ran.
    pub apply: Option<Outcome>,
}

/// A finished (or stopped) rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// In node order.
    pub nodes: Vec<NodeRollout>,
    /// Batches that ran, and batches planned.
    pub batches_run: usize,
    pub batches: usize,
}

/// The batches: the first node alone, then groups of `max_parallel`.
pub fn batches(nodes: &[Node], max_parallel: usize) -> Vec<&[Node]> {
    match nodes.split_first() {
        None => Vec::new(),
        Some((first, rest)) => {
            let mut out = vec![std::slice::from_ref(first)];
            out.extend(rest.chunks(max_parallel.max(1)));
            out
        }
    }
}

/// Why a `diff` after apply is not a clean bill: `None` if it reported no change.
fn verify_failure(diff: &Outcome) -> Option<(String, u8)> {
    let parsed: Option<serde_json::Value> = serde_json::from_str(diff.stdout.trim()).ok();
    let changes = parsed
        .as_ref()
        .and_then(|v| v.get("changes"))
        .and_then(serde_json::Value::as_array);
    match changes {
        Some(c) if c.is_empty() && diff.ok() => None,
        Some(c) if !c.is_empty() => {
            let n = c.len();
            let s = if n == 1 { "" } else { "s" };
            Some((
                format!("{n} change{s} left after apply (diff)"),
                exit::NOT_CONVERGED,
            ))
        }
        _ if !diff.ok() => Some((
            format!(
                "diff exited {}{}",
                diff.status,
                diff.reason().map(|r| format!(": {r}")).unwrap_or_default()
            ),
            diff.status,
        )),
        _ if parsed.is_none() => Some(("diff printed no JSON".to_string(), exit::NOT_CONVERGED)),
        _ => Some((
            "diff printed no \"changes\" list".to_string(),
            exit::NOT_CONVERGED,
        )),
    }
}

/// Applies then verifies one node.
fn apply_one(runner: &dyn Runner, node: &Node, apply: &[String], diff: &[String]) -> NodeRollout {
    let applied = runner.run(node, apply);
    let stand = if !applied.ok() {
        Stand::Failed {
            reason: format!(
                "apply exited {}{}",
                applied.status,
                applied
                    .reason()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            status: applied.status,
        }
    } else {
        match verify_failure(&runner.run(node, diff)) {
            None => Stand::Applied,
            Some((reason, status)) => Stand::Failed { reason, status },
        }
    };
    NodeRollout {
        name: node.name.clone(),
        stand,
        apply: Some(applied),
    }
}

/// Rolls `apply` (the command, starting with the word `apply`) out over `nodes`.
pub fn rollout(
    runner: &dyn Runner,
    nodes: &[Node],
    apply: &[String],
    max_parallel: usize,
) -> Rollout {
    let diff = verify_command(apply);
    let plan = batches(nodes, max_parallel);
    let mut done: Vec<NodeRollout> = Vec::with_capacity(nodes.len());
    let mut batches_run = 0;
    for batch in &plan {
        let results = run_bounded(batch, batch.len(), |node| {
            apply_one(runner, node, apply, &diff)
        });
        batches_run += 1;
        let failed = results
            .iter()
            .any(|r| matches!(r.stand, Stand::Failed { .. }));
        done.extend(results);
        if failed {
            break;
        }
    }
    let rest = nodes.iter().skip(done.len()).map(|n| NodeRollout {
        name: n.name.clone(),
        stand: Stand::NotStarted,
        apply: None,
    });
    done.extend(rest);
    Rollout {
        nodes: done,
        batches_run,
        batches: plan.len(),
    }
}

impl Rollout {
    /// What `apply` printed on the nodes it ran on, for the merged output.
    pub fn apply_outcomes(&self) -> Vec<NodeOutcome> {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.apply.clone().map(|outcome| NodeOutcome {
                    name: n.name.clone(),
                    outcome,
                })
            })
            .collect()
    }

    /// The table of where each node stands, then one line on the whole.
    pub fn report(&self) -> String {
        let width = self
            .nodes
            .iter()
            .map(|n| n.name.len())
            .max()
            .unwrap_or(0)
            .max("NODE".len());
        let mut out = format!("{:<width$}  ROLLOUT\n", "NODE");
        for n in &self.nodes {
            let stand = match &n.stand {
                Stand::Applied => "applied".to_string(),
                Stand::Failed { reason, .. } => format!("failed: {reason}"),
                Stand::NotStarted => "not started".to_string(),
            };
            out.push_str(&format!("{:<width$}  {stand}\n", n.name));
        }
        let applied = self
            .nodes
            .iter()
            .filter(|n| n.stand == Stand::Applied)
            .count();
        let total = self.nodes.len();
        if applied == total {
            out.push_str(&format!(
                "fleet: rollout done: {applied} of {total} nodes applied\n"
            ));
        } else {
            out.push_str(&format!(
                "fleet: rollout stopped after batch {} of {}: {applied} of {total} nodes applied\n",
                self.batches_run, self.batches
            ));
        }
        out
    }

    /// 0 if every node was applied and verified; else the highest status of a failure.
    pub fn exit_status(&self) -> u8 {
        let worst = self
            .nodes
            .iter()
            .map(|n| match n.stand {
                Stand::Failed { status, .. } => status,
                Stand::Applied | Stand::NotStarted => 0,
            })
            .max()
            .unwrap_or(0);
        let complete = self.nodes.iter().all(|n| n.stand == Stand::Applied);
        if worst == 0 && !complete {
            exit::NOT_CONVERGED
        } else {
            worst
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::runner::fake::{Fake, nodes, outcome};

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    const CLEAN: &str = "{\"revision\": 4, \"changes\": []}\n";

    /// Position of the first log line starting with `prefix`.
    fn at(log: &[String], prefix: &str) -> usize {
        log.iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or(usize::MAX)
    }

    fn stands(r: &Rollout) -> Vec<(String, Stand)> {
        r.nodes
            .iter()
            .map(|n| (n.name.clone(), n.stand.clone()))
            .collect()
    }

    fn failed(reason: &str, status: u8) -> Stand {
        Stand::Failed {
            reason: reason.to_string(),
            status,
        }
    }

    #[test]
    fn batches_are_the_first_node_then_groups() {
        let names = |b: Vec<&[Node]>| -> Vec<Vec<String>> {
            b.iter()
                .map(|b| b.iter().map(|n| n.name.clone()).collect())
                .collect()
        };
        // (nodes, --max-parallel, batches)
        type Case<'a> = (&'a [&'a str], usize, &'a [&'a [&'a str]]);
        let cases: &[Case<'_>] = &[
            (&["a"], 8, &[&["a"]]),
            (
                &["a", "b", "c", "d", "e"],
                2,
                &[&["a"], &["b", "c"], &["d", "e"]],
            ),
            (&["a", "b", "c", "d"], 2, &[&["a"], &["b", "c"], &["d"]]),
            (&["a", "b", "c"], 1, &[&["a"], &["b"], &["c"]]),
            (&["a", "b", "c"], 8, &[&["a"], &["b", "c"]]),
            (&[], 8, &[]),
        ];
        for (input, n, want) in cases {
            let ns = nodes(input);
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|b| b.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(names(batches(&ns, *n)), want, "{input:?} by {n}");
        }
    }

    #[test]
    fn a_clean_rollout_applies_and_verifies_every_node_first_node_first() {
        let names = ["lb1", "lb2", "lb3", "lb4", "lb5"];
        let fake = Fake {
            script: names
                .iter()
                .flat_map(|n| {
                    [
                        (*n, "apply", outcome(0, "applied revision 4\n", "")),
                        (*n, "diff", outcome(0, CLEAN, "")),
                    ]
                })
                .collect(),
            ..Fake::default()
        };
        let r = rollout(
            &fake,
            &nodes(&names),
            &words("apply -f node.yaml --prune"),
            2,
        );
        assert_eq!(
            stands(&r),
            names
                .iter()
                .map(|n| (n.to_string(), Stand::Applied))
                .collect::<Vec<_>>()
        );
        assert_eq!((r.batches_run, r.batches, r.exit_status()), (3, 3, 0));
        let log = fake.log();
        // Each node: apply, then diff with the same arguments in JSON.
        assert!(
            log.contains(&"start lb3 apply -f node.yaml --prune".to_string()),
            "{log:?}"
        );
        assert!(
            log.contains(&"start lb3 diff -f node.yaml --prune -o json".to_string()),
            "{log:?}"
        );
        // lb1 is verified before the next batch starts; that batch ends before the last.
        assert!(
            at(&log, "end lb1 diff") < at(&log, "start lb2 apply"),
            "{log:?}"
        );
        assert!(
            at(&log, "end lb1 diff") < at(&log, "start lb3 apply"),
            "{log:?}"
        );
        for earlier in ["end lb2 diff", "end lb3 diff"] {
            for later in ["start lb4 apply", "start lb5 apply"] {
                assert!(
                    at(&log, earlier) < at(&log, later),
                    "{earlier} < {later}: {log:?}"
                );
            }
        }
        assert_eq!(
            r.report(),
            "NODE  ROLLOUT\nlb1   applied\nlb2   applied\nlb3   applied\nlb4   applied\nlb5   applied\nfleet: rollout done: 5 of 5 nodes applied\n"
        );
        assert_eq!(r.apply_outcomes().len(), 5);
    }

    #[test]
    fn a_failing_first_node_stops_everything() {
        let fake = Fake {
            script: vec![(
                "lb1",
                "apply",
                outcome(
                    3,
                    "",
                    "ipvsctl: cannot reach agent at unix:/run/lb1.sock: gone\n",
                ),
            )],
            ..Fake::default()
        };
        let r = rollout(
            &fake,
            &nodes(&["lb1", "lb2", "lb3"]),
            &words("apply -f x"),
            8,
        );
        assert_eq!(
            stands(&r),
            vec![
                (
                    "lb1".to_string(),
                    failed(
                        "apply exited 3: cannot reach agent at unix:/run/lb1.sock: gone",
                        3
                    )
                ),
                ("lb2".to_string(), Stand::NotStarted),
                ("lb3".to_string(), Stand::NotStarted),
            ]
        );
        // No diff after a failed apply, and nothing else started.
        assert_eq!(fake.log(), vec!["start lb1 apply -f x", "end lb1 apply"]);
        assert_eq!(r.exit_status(), 3);
        assert_eq!(
            r.report(),
            "NODE  ROLLOUT
lb1   failed: apply exited 3: cannot reach agent at unix:/run/lb1.sock: gone
lb2   not started
lb3   not started
fleet: rollout stopped after batch 1 of 2: 0 of 3 nodes applied
"
        );
    }

    #[test]
    fn a_failure_in_a_batch_lets_the_batch_finish_and_starts_no_other() {
        let clean = |n: &'static str| {
            [
                (n, "apply", outcome(0, "", "")),
                (n, "diff", outcome(0, CLEAN, "")),
            ]
        };
        let mut script: Vec<_> = ["lb1", "lb2", "lb3", "lb5"]
            .into_iter()
            .flat_map(clean)
            .collect();
        // lb4 applies but is not what the file says afterwards.
        script.push(("lb4", "apply", outcome(0, "", "")));
        script.push((
            "lb4",
            "diff",
            outcome(
                0,
                "{\"revision\": 4, \"changes\": [{\"op\": \"add\"}, {\"op\": \"del\"}]}",
                "",
            ),
        ));
        let fake = Fake {
            script,
            // lb4 fails fast; its batch-mates take longer and still finish.
            delay: vec![("lb3", std::time::Duration::from_millis(30))],
            ..Fake::default()
        };
        let ns = nodes(&["lb1", "lb2", "lb3", "lb4", "lb5", "lb6"]);
        let r = rollout(&fake, &ns, &words("apply -f x"), 3);
        assert_eq!(
            stands(&r),
            vec![
                ("lb1".to_string(), Stand::Applied),
                ("lb2".to_string(), Stand::Applied),
                ("lb3".to_string(), Stand::Applied),
                (
                    "lb4".to_string(),
                    failed("2 changes left after apply (diff)", 5)
                ),
                ("lb5".to_string(), Stand::NotStarted),
                ("lb6".to_string(), Stand::NotStarted),
            ]
        );
        assert_eq!((r.batches_run, r.batches), (2, 3));
        let log = fake.log();
        assert!(log.contains(&"end lb3 diff".to_string()), "{log:?}");
        assert_eq!(at(&log, "start lb5"), usize::MAX, "{log:?}");
        assert_eq!(r.exit_status(), 5);
        assert_eq!(
            r.apply_outcomes()
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>(),
            ["lb1", "lb2", "lb3", "lb4"]
        );
    }

    #[test]
    fn diff_answers_that_are_not_a_clean_bill() {
        let cases: &[(Outcome, Option<(&str, u8)>)] = &[
            (outcome(0, CLEAN, ""), None),
            (
                outcome(0, "{\"changes\": [{}]}", ""),
                Some(("1 change left after apply (diff)", 5)),
            ),
            // A diff that exits non-zero when something differs still counts its changes.
            (
                outcome(1, "{\"changes\": [{}, {}, {}]}", ""),
                Some(("3 changes left after apply (diff)", 5)),
            ),
            (
                outcome(2, "", "ipvsctl: unknown command diff\n"),
                Some(("diff exited 2: unknown command diff", 2)),
            ),
            (outcome(1, CLEAN, ""), Some(("diff exited 1", 1))),
            (
                outcome(0, "no changes\n", ""),
                Some(("diff printed no JSON", 5)),
            ),
            (
                outcome(0, "{\"revision\": 3}", ""),
                Some(("diff printed no \"changes\" list", 5)),
            ),
            (
                outcome(0, "{\"changes\": {}}", ""),
                Some(("diff printed no \"changes\" list", 5)),
            ),
        ];
        for (diff, want) in cases {
            let want = want.map(|(r, s)| (r.to_string(), s));
            assert_eq!(verify_failure(diff), want, "{diff:?}");
        }
    }
}
