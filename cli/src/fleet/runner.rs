//! Running one command on one node, and on many with bounded concurrency.
//!
//! A node's command runs as a child `ipvsctl` with `IPVSCTL_AGENT` set to the node's address,
//! so every command behaves exactly as it does alone. The spawning sits behind [`Runner`] so
//! that selection, ordering, merging and rollout are tested without processes.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::client::AGENT_ENV;
use crate::exit;

use super::select::Node;

/// What one command printed on one node, and its exit status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub status: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == 0
    }

    /// The first non-blank line of stderr, without the program's `ipvsctl: ` prefix.
    pub fn reason(&self) -> Option<&str> {
        let line = self.stderr.lines().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.strip_prefix("ipvsctl: ").unwrap_or(line))
    }
}

/// Runs a command on a node.
pub trait Runner: Sync {
    fn run(&self, node: &Node, command: &[String]) -> Outcome;
}

/// `f` over `items`, at most `limit` at once, results in the order of `items` whatever the
/// order they finish in.
pub fn run_bounded<T: Sync, R: Send>(
    items: &[T],
    limit: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = limit.clamp(1, items.len().max(1));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    done.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Runs `command` on every node, at most `max_parallel` at once; outcomes in node order.
pub fn fan_out(
    runner: &dyn Runner,
    nodes: &[Node],
    command: &[String],
    max_parallel: usize,
) -> Vec<Outcome> {
    run_bounded(nodes, max_parallel, |node| runner.run(node, command))
}

/// Runs this very program as a child per node.
#[derive(Debug)]
pub struct ProcessRunner {
    exe: PathBuf,
    /// The name the user invoked, so children's messages read as theirs would.
    program: String,
    /// Standard input for every child (a restore's rules), read once; none otherwise.
    input: Option<Vec<u8>>,
}

impl ProcessRunner {
    pub fn new(exe: PathBuf, program: &str, input: Option<Vec<u8>>) -> Self {
        ProcessRunner {
            exe,
            program: program.to_string(),
            input,
        }
    }
}

impl Runner for ProcessRunner {
    fn run(&self, node: &Node, command: &[String]) -> Outcome {
        let mut cmd = Command::new(&self.exe);
        cmd.arg0(&self.program)
            .args(command)
            .env(AGENT_ENV, node.address.to_string())
            .stdin(if self.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cannot = |e: std::io::Error| Outcome {
            status: exit::UNREACHABLE,
            stdout: String::new(),
            stderr: format!("ipvsctl: cannot run {}: {e}\n", self.exe.display()),
        };
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return cannot(e),
        };
        let stdin = child.stdin.take();
        let output = std::thread::scope(|scope| {
            if let (Some(mut pipe), Some(input)) = (stdin, self.input.as_deref()) {
                // A child that exits without reading all of it is not our failure to report.
                scope.spawn(move || pipe.write_all(input).ok());
            }
            child.wait_with_output()
        });
        let output = match output {
            Ok(output) => output,
            Err(e) => return cannot(e),
        };
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let status = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
            (None, Some(signal)) => {
                stderr.insert_str(0, &format!("ipvsctl: killed by signal {signal}\n"));
                u8::try_from(128 + signal).unwrap_or(u8::MAX)
            }
            (None, None) => u8::MAX,
        };
        Outcome {
            status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr,
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted runner for tests: answers by node name and command, logs every call.

    use std::sync::Mutex;
    use std::time::Duration;

    use super::{Node, Outcome, Runner};
    use crate::client::AgentAddress;

    #[derive(Debug, Default)]
    pub struct Fake {
        /// (node, command's first word, outcome); unlisted calls succeed with no output.
        pub script: Vec<(&'static str, &'static str, Outcome)>,
        /// How long each node's calls take, to make them finish out of order.
        pub delay: Vec<(&'static str, Duration)>,
        /// "start NODE COMMAND..." / "end NODE VERB", in the order they happened.
        pub log: Mutex<Vec<String>>,
        /// Calls running now, and the most at once.
        pub running: Mutex<(usize, usize)>,
    }

    impl Fake {
        pub fn log(&self) -> Vec<String> {
            self.log.lock().map(|l| l.clone()).unwrap_or_default()
        }

        /// The most calls that were running at once.
        pub fn max_running(&self) -> usize {
            self.running.lock().map(|r| r.1).unwrap_or_default()
        }

        fn note(&self, line: String) {
            if let Ok(mut log) = self.log.lock() {
                log.push(line);
            }
        }
    }

    /// Nodes named `names`, each at `unix:/run/NAME.sock`.
    pub fn nodes(names: &[&str]) -> Vec<Node> {
        names
            .iter()
            .map(|n| Node {
                name: n.to_string(),
                address: AgentAddress::Unix(format!("/run/{n}.sock").into()),
            })
            .collect()
    }

    pub fn outcome(status: u8, stdout: &str, stderr: &str) -> Outcome {
        Outcome {
            status,
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
        }
    }

    impl Runner for Fake {
        fn run(&self, node: &Node, command: &[String]) -> Outcome {
            let verb = command.first().map(String::as_str).unwrap_or_default();
            if let Ok(mut r) = self.running.lock() {
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            self.note(format!("start {} {}", node.name, command.join(" ")));
            if let Some((_, d)) = self.delay.iter().find(|(n, _)| *n == node.name) {
                std::thread::sleep(*d);
            }
            let out = self
                .script
                .iter()
                .find(|(n, v, _)| *n == node.name && *v == verb)
                .map(|(_, _, o)| o.clone())
                .unwrap_or_default();
            self.note(format!("end {} {verb}", node.name));
            if let Ok(mut r) = self.running.lock() {
                r.0 -= 1;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fake::{Fake, nodes, outcome};
    use super::*;

    #[test]
    fn outcomes_come_in_node_order_and_concurrency_is_bounded() {
        let names = ["a", "b", "c", "d", "e"];
        for limit in [1, 2, 3, 8] {
            let fake = Fake {
                script: names
                    .iter()
                    .map(|n| (*n, "-ln", outcome(0, &format!("{n}\n"), "")))
                    .collect(),
                // Earlier nodes take longer, so they finish last.
                delay: names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (*n, Duration::from_millis(40 - 8 * i as u64)))
                    .collect(),
                ..Fake::default()
            };
            let got = fan_out(&fake, &nodes(&names), &["-ln".to_string()], limit);
            let stdout: Vec<&str> = got.iter().map(|o| o.stdout.as_str()).collect();
            assert_eq!(stdout, ["a\n", "b\n", "c\n", "d\n", "e\n"], "limit {limit}");
            assert_eq!(fake.max_running(), limit.min(names.len()), "limit {limit}");
        }
    }

    #[test]
    fn reason_is_the_first_stderr_line_without_the_program_name() {
        let cases = [
            (
                "ipvsctl: cannot reach agent at unix:/a: gone\nmore\n",
                Some("cannot reach agent at unix:/a: gone"),
            ),
            (
                "\n  Memory allocation problem\n",
                Some("Memory allocation problem"),
            ),
            ("", None),
        ];
        for (stderr, want) in cases {
            assert_eq!(outcome(3, "", stderr).reason(), want, "{stderr:?}");
        }
    }

    #[test]
    fn a_child_gets_the_node_s_address_and_the_input() {
        // /bin/sh stands in for ipvsctl: it echoes what a real child would use.
        let input = b"-A -t 10.0.0.1:80\n".to_vec();
        let runner = ProcessRunner::new("/bin/sh".into(), "sh", Some(input));
        let command: Vec<String> = ["-c", "echo \"$IPVSCTL_AGENT\"; cat; echo oops >&2; exit 7"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let got = runner.run(&nodes(&["lb1"])[0], &command);
        assert_eq!(
            got,
            outcome(7, "unix:/run/lb1.sock\n-A -t 10.0.0.1:80\n", "oops\n")
        );
    }

    #[test]
    fn a_child_killed_by_a_signal_says_so() {
        let runner = ProcessRunner::new("/bin/sh".into(), "sh", None);
        let command: Vec<String> = ["-c", "kill -9 $$"].iter().map(|s| s.to_string()).collect();
        let got = runner.run(&nodes(&["lb1"])[0], &command);
        assert_eq!(got, outcome(137, "", "ipvsctl: killed by signal 9\n"));
    }

    #[test]
    fn a_missing_program_is_a_failed_node() {
        let runner = ProcessRunner::new("/nonexistent/ipvsctl".into(), "ipvsctl", None);
        let got = runner.run(&nodes(&["lb1"])[0], &[]);
        assert_eq!(
            got,
            outcome(
                3,
                "",
                "ipvsctl: cannot run /nonexistent/ipvsctl: No such file or directory (os error 2)\n"
            )
        );
    }
}
