//! Reading the guest console: result markers and libtest summaries.

use crate::init::{FAIL_PREFIX, PASS};

/// What one console line says about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `/init` saw every test executable pass.
    Pass,
    /// `/init` saw this many test executables fail.
    Fail(u32),
    /// A libtest summary: `test result: ok. 3 passed; 0 failed; ...`.
    Summary { passed: u64, failed: u64 },
}

pub fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line == PASS {
        return Some(Event::Pass);
    }
    if let Some(rest) = line.strip_prefix(FAIL_PREFIX) {
        return rest.trim().parse().ok().map(Event::Fail);
    }
    let at = line.find("test result: ")?;
    let rest = &line[at + "test result: ".len()..];
    let (_, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => passed = Some(n),
            "failed" => failed = Some(n),
            _ => {}
        }
    }
    Some(Event::Summary {
        passed: passed?,
        failed: failed?,
    })
}

/// Totals over a whole run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub binaries: u64,
    /// The final marker: `Some(0)` for pass, `Some(n)` for n failed executables.
    pub result: Option<u32>,
}

impl Tally {
    /// Records `line`; returns true once the final marker has been seen.
    pub fn observe(&mut self, line: &str) -> bool {
        match parse_line(line) {
            Some(Event::Pass) => self.result = Some(0),
            Some(Event::Fail(n)) => self.result = Some(n.max(1)),
            Some(Event::Summary { passed, failed }) => {
                self.passed += passed;
                self.failed += failed;
                self.binaries += 1;
            }
            None => {}
        }
        self.result.is_some()
    }

    /// The run passed: the pass marker, no failure, and at least one test ran.
    pub fn verdict(&self) -> Result<(), String> {
        match self.result {
            None => Err("the guest printed no result marker".into()),
            Some(n) if n > 0 || self.failed > 0 => Err(format!(
                "{} tests failed in the VM ({n} test executables failed)",
                self.failed
            )),
            Some(_) if self.passed == 0 => {
                Err("no test ran in the VM (does the filter match any test?)".into())
            }
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let cases = [
            ("LAB-RESULT: pass\r", Some(Event::Pass)),
            ("LAB-RESULT: fail 2", Some(Event::Fail(2))),
            ("LAB-RESULT: failure", None),
            (
                "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
                Some(Event::Summary {
                    passed: 3,
                    failed: 0,
                }),
            ),
            (
                "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.20s",
                Some(Event::Summary {
                    passed: 1,
                    failed: 2,
                }),
            ),
            (
                "[    1.2] test result: ok. 4 passed; 0 failed;",
                Some(Event::Summary {
                    passed: 4,
                    failed: 0,
                }),
            ),
            ("test result: ok. many passed", None),
            ("running 3 tests", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), want, "{line}");
        }
    }

    #[test]
    fn verdicts() {
        let run = |lines: &[&str]| {
            let mut t = Tally::default();
            for l in lines {
                t.observe(l);
            }
            t.verdict()
        };
        let ok = "test result: ok. 2 passed; 0 failed; 0 ignored";
        let none = "test result: ok. 0 passed; 0 failed; 0 ignored";
        let bad = "test result: FAILED. 1 passed; 1 failed; 0 ignored";
        assert_eq!(run(&[ok, none, "LAB-RESULT: pass"]), Ok(()));
        assert_eq!(run(&[ok]), Err("the guest printed no result marker".into()));
        assert_eq!(
            run(&[none, "LAB-RESULT: pass"]),
            Err("no test ran in the VM (does the filter match any test?)".into())
        );
        assert_eq!(
            run(&[ok, bad, "LAB-RESULT: fail 1"]),
            Err("1 tests failed in the VM (1 test executables failed)".into())
        );
    }
}
