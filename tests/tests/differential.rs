//! ipvsctl as a drop-in for ipvsadm, shown differentially: a seeded corpus of command
//! sequences (every option, every scheduler, valid and refused) runs once through the real
//! `ipvsadm` and once through `ipvsctl` and the agent, each in a fresh namespace. After every
//! command stderr (with the program's name aligned) and the exit status must be the same;
//! at the end every list view must be the same bytes, through both tools, in both
//! namespaces. All mismatches are collected and reported together.
//!
//! Also here: restores onto non-empty tables, compared with ipvsadm's; save/restore round
//! trips between the two tools; and `ipvsctl -R`'s promises beyond ipvsadm's (all or nothing,
//! and counters kept across a diff).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipvs_e2e::corpus::{Args, Batch, Corpus, RestoreCase, restore_cases, rich_table, words};
use ipvs_e2e::{Agent, Backend, Netns, bin_dir, http_get, run_ok};

/// What a run printed and how it ended, with ipvsctl's name replaced by ipvsadm's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn brief(&self) -> String {
        let mut s = format!("exit {:?}", self.code);
        if !self.stderr.is_empty() {
            s.push_str(&format!(", stderr {:?}", self.stderr));
        }
        if !self.stdout.is_empty() {
            s.push_str(&format!(", stdout {:?}", self.stdout));
        }
        s
    }
}

/// One of the two programs under comparison.
#[derive(Clone, Copy)]
enum Tool<'a> {
    Ipvsadm,
    Ipvsctl(&'a Agent),
}

impl Tool<'_> {
    fn name(&self) -> &'static str {
        match self {
            Tool::Ipvsadm => "ipvsadm",
            Tool::Ipvsctl(_) => "ipvsctl",
        }
    }

    fn run(&self, args: &[String]) -> Result<Outcome> {
        self.run_with(args, None)
    }

    /// Runs with `input` on stdin (for `-R`), or with no stdin at all.
    fn run_with(&self, args: &[String], input: Option<&str>) -> Result<Outcome> {
        let mut cmd = match self {
            Tool::Ipvsadm => Command::new("ipvsadm"),
            Tool::Ipvsctl(agent) => {
                let mut c = Command::new(bin_dir().join("ipvsctl"));
                // As on a PATH: messages that quote argv[0] then read "ipvsctl".
                c.arg0("ipvsctl").env("IPVSCTL_AGENT", agent.address());
                c
            }
        };
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.name()))?;
        if let Some(text) = input {
            let mut stdin = child.stdin.take().context("stdin")?;
            stdin.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let fix = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).into_owned();
            match self {
                Tool::Ipvsadm => s,
                Tool::Ipvsctl(_) => s.replace("ipvsctl", "ipvsadm"),
            }
        };
        Ok(Outcome {
            code: out.status.code(),
            stdout: fix(&out.stdout),
            stderr: fix(&out.stderr),
        })
    }

    fn ok(&self, args: &[String]) -> Result<String> {
        let out = self.run(args)?;
        ensure!(out.ok(), "{} {args:?}: {}", self.name(), out.brief());
        Ok(out.stdout)
    }
}

fn argv(line: &str) -> Args {
    words(line)
}

/// The list views compared at the end of every batch.
const VIEWS: &[&[&str]] = &[
    &[],
    &["-Ln"],
    &["-L"],
    &["-Ln", "--stats"],
    &["-L", "--stats"],
    &["-Ln", "--rate"],
    &["-Ln", "--thresholds"],
    &["-Ln", "--persistent-conn"],
    &["-L", "--tun-info"],
    &["-Ln", "--stats", "--exact"],
    &["-Ln", "--nosort"],
    &["-S"],
    &["-Sn"],
    &["-L", "--timeout"],
    &["-L", "--daemon"],
    &["-Lnc"],
];

/// `--nosort` lists in the kernel's hash order, which mixes in the namespace's address:
/// across namespaces only the set of lines can be compared.
fn namespace_dependent(view: &[&str]) -> bool {
    view.contains(&"--nosort")
}

/// Everything one tool's namespace produced for a batch.
struct BatchRun {
    commands: Vec<Outcome>,
    /// Per view: ipvsadm's, and ipvsctl's when it was asked (see [`run_batch`]).
    views: Vec<(Outcome, Option<Outcome>)>,
    command_secs: f64,
    view_secs: f64,
    calls: usize,
}

/// Runs `batch` with `writer` in a fresh namespace, then every view through ipvsadm; through
/// ipvsctl too in ipvsctl's namespace, and in ipvsadm's for the order-dependent views (the
/// others show the same table in both namespaces, so one ipvsctl reading is enough).
fn run_batch(batch: &Batch, use_ipvsctl: bool) -> Result<BatchRun> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let writer = if use_ipvsctl {
        Tool::Ipvsctl(&agent)
    } else {
        Tool::Ipvsadm
    };
    let started = Instant::now();
    let mut commands = Vec::new();
    for (_, args) in batch.commands() {
        commands.push(writer.run(args)?);
    }
    let command_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut views = Vec::new();
    let mut calls = commands.len();
    for view in VIEWS {
        let args: Args = view.iter().map(|s| s.to_string()).collect();
        let theirs = Tool::Ipvsadm.run(&args)?;
        let ours = if use_ipvsctl || namespace_dependent(view) {
            calls += 1;
            Some(Tool::Ipvsctl(&agent).run(&args)?)
        } else {
            None
        };
        calls += 1;
        views.push((theirs, ours));
    }
    Ok(BatchRun {
        calls,
        commands,
        views,
        command_secs,
        view_secs: started.elapsed().as_secs_f64(),
    })
}

/// Lines of `a` missing from `b` and lines of `b` missing from `a`, by a longest common
/// subsequence, as `-`/`+` lines.
fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push_str(&format!("      + {:?}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("      - {:?}\n", a[i]));
            i += 1;
        }
    }
    out
}

fn describe_view_mismatch(what: &str, want: &Outcome, got: &Outcome) -> String {
    let mut s = format!("    {what}\n");
    if want.code != got.code || want.stderr != got.stderr {
        s.push_str(&format!(
            "      ipvsadm: {}\n      ipvsctl: {}\n",
            Outcome {
                stdout: String::new(),
                ..want.clone()
            }
            .brief(),
            Outcome {
                stdout: String::new(),
                ..got.clone()
            }
            .brief()
        ));
    }
    if want.stdout != got.stdout {
        s.push_str(&line_diff(&want.stdout, &got.stdout));
    }
    s
}

fn sorted_lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort_unstable();
    v
}

/// The first line of ipvsctl's stderr, to group mismatches by their likely cause.
fn cause(ours: &Outcome) -> String {
    let line = ours.stderr.lines().next().unwrap_or("");
    if line.is_empty() {
        format!("exit {:?} with no message", ours.code)
    } else {
        line.to_owned()
    }
}

/// A line for the run's log even when the test passes: the test harness captures `println!`
/// and `eprintln!`, not writes to the stderr handle itself.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn ipvsctl_matches_ipvsadm_on_the_corpus() -> Result<()> {
    let corpus = Corpus::differential();
    report(&corpus.to_string());
    let started = Instant::now();
    let mut mismatches: Vec<String> = Vec::new();
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut adm_secs, mut ctl_secs, mut view_secs, mut calls) = (0.0, 0.0, 0.0, 0usize);
    for (b, batch) in corpus.batches.iter().enumerate() {
        let theirs = run_batch(batch, false)?;
        let ours = run_batch(batch, true)?;
        adm_secs += theirs.command_secs;
        ctl_secs += ours.command_secs;
        view_secs += theirs.view_secs + ours.view_secs;
        calls += theirs.calls + ours.calls;
        let mut last_seq = "";
        let mut k = 0;
        for (i, (seq, args)) in batch.commands().enumerate() {
            if seq.name != last_seq {
                last_seq = &seq.name;
                k = 0;
            }
            k += 1;
            let (want, got) = (&theirs.commands[i], &ours.commands[i]);
            if want != got {
                *causes.entry(cause(got)).or_default() += 1;
                let detail = if want.code == got.code
                    && want.stderr == got.stderr
                    && !want.stdout.is_empty()
                    && !got.stdout.is_empty()
                {
                    format!(
                        "    stdout (- ipvsadm, + ipvsctl):\n{}",
                        line_diff(&want.stdout, &got.stdout)
                    )
                } else {
                    format!(
                        "    ipvsadm: {}\n    ipvsctl: {}",
                        want.brief(),
                        got.brief()
                    )
                };
                mismatches.push(format!(
                    "[batch {b} {} #{k}] {}\n{detail}",
                    seq.name,
                    args.join(" "),
                ));
            }
        }
        for (view, ((adm_a, ctl_a), (adm_b, ctl_b))) in
            VIEWS.iter().zip(theirs.views.iter().zip(&ours.views))
        {
            let name = if view.is_empty() {
                "(no arguments)".to_string()
            } else {
                view.join(" ")
            };
            let mut report = String::new();
            if let Some(ctl_a) = ctl_a
                && adm_a != ctl_a
            {
                report.push_str(&describe_view_mismatch(
                    "ipvsctl reading ipvsadm's table",
                    adm_a,
                    ctl_a,
                ));
            }
            let same_table = if namespace_dependent(view) {
                sorted_lines(&adm_a.stdout) == sorted_lines(&adm_b.stdout)
                    && adm_a.code == adm_b.code
            } else {
                adm_a == adm_b
            };
            if !same_table {
                report.push_str(&describe_view_mismatch(
                    "ipvsadm reading ipvsctl's table (left: ipvsadm's table)",
                    adm_a,
                    adm_b,
                ));
            }
            match ctl_b {
                Some(ctl_b) if ctl_b != adm_b => report.push_str(&describe_view_mismatch(
                    "ipvsctl reading its own table",
                    adm_b,
                    ctl_b,
                )),
                Some(_) => {}
                None => bail!("ipvsctl's namespace has no ipvsctl view {name}"),
            }
            if !report.is_empty() {
                *causes.entry(format!("view {name}")).or_default() += 1;
                mismatches.push(format!("[batch {b} view] ipvsadm {name}\n{report}"));
            }
        }
        println!(
            "batch {b}: {} sequences, {} commands; ipvsadm {:.1} s, ipvsctl {:.1} s, views {:.1} s; {} mismatches so far",
            batch.sequences.len(),
            theirs.commands.len(),
            theirs.command_secs,
            ours.command_secs,
            theirs.view_secs + ours.view_secs,
            mismatches.len()
        );
    }
    report(&format!(
        "differential: {} tool runs in {:.1} s (commands: ipvsadm {adm_secs:.1} s, ipvsctl {ctl_secs:.1} s; views {view_secs:.1} s)",
        calls,
        started.elapsed().as_secs_f64()
    ));
    if !mismatches.is_empty() {
        let mut summary = String::from("mismatches by ipvsctl's first stderr line or view:\n");
        for (c, n) in &causes {
            summary.push_str(&format!("  {n:5} × {c}\n"));
        }
        panic!(
            "{} mismatches between ipvsadm and ipvsctl ({corpus}):\n{}\n\n{summary}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
    Ok(())
}

/// Debian's ipvsadm takes weights up to 2^31-1; ipvsctl keeps upstream's (and the API's)
/// 0..65535 and refuses more in upstream's words, changing nothing.
#[test]
fn weights_above_65535_are_refused_by_ipvsctl() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let ctl = Tool::Ipvsctl(&agent);
    ctl.ok(&argv("-A -t 10.1.0.1:80 -s rr"))?;
    ctl.ok(&argv("-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 65535"))?;
    let before = Tool::Ipvsadm.ok(&argv("-Sn"))?;
    for cmd in [
        "-a -t 10.1.0.1:80 -r 10.2.0.2:8080 -m -w 65536",
        "-a -t 10.1.0.1:80 -r 10.2.0.2:8080 -m -w 2147483647",
        "-e -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 65536",
        "-e -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 2147483647",
    ] {
        let out = ctl.run(&argv(cmd))?;
        assert_eq!(
            (out.code, out.stderr.as_str(), out.stdout.as_str()),
            (Some(2), "illegal weight specified\n", ""),
            "{cmd}"
        );
    }
    assert_eq!(Tool::Ipvsadm.ok(&argv("-Sn"))?, before);
    // Beyond 2^31-1 both refuse, alike.
    let cmd = argv("-a -t 10.1.0.1:80 -r 10.2.0.2:8080 -m -w 2147483648");
    assert_eq!(ctl.run(&cmd)?, Tool::Ipvsadm.run(&cmd)?);
    Ok(())
}

/// A persistence mask of 0.0.0.0 (one template for all clients) is set, edited, listed and
/// saved by ipvsctl as by ipvsadm; `-E` without `-M` puts the default /32 back.
#[test]
fn zero_persistence_mask_works_like_ipvsadm() -> Result<()> {
    // Each command, and a line `-Ln` then shows.
    let steps = [
        (
            "-A -t 10.1.0.1:80 -s rr -p 60 -M 0.0.0.0",
            "TCP  10.1.0.1:80 rr persistent 60 mask 0.0.0.0\n",
        ),
        (
            "-A -f 3 -s wlc -M 0 -p 30",
            "FWM  3 wlc persistent 30 mask 0.0.0.0\n",
        ),
        (
            "-E -t 10.1.0.1:80 -s rr -p 60",
            "TCP  10.1.0.1:80 rr persistent 60\n",
        ),
        (
            "-E -t 10.1.0.1:80 -s sh -p 90 -M 0.0.0.0",
            "TCP  10.1.0.1:80 sh persistent 90 mask 0.0.0.0\n",
        ),
    ];
    let mut outputs = Vec::new();
    for use_ipvsctl in [false, true] {
        let _ns = Netns::new()?;
        let agent = Agent::start()?;
        let tool = if use_ipvsctl {
            Tool::Ipvsctl(&agent)
        } else {
            Tool::Ipvsadm
        };
        let mut seen = Vec::new();
        for (line, wanted) in steps {
            tool.ok(&argv(line))?;
            let listing = Tool::Ipvsadm.ok(&argv("-Ln"))?;
            ensure!(
                listing.contains(wanted),
                "{} {line}: no {wanted:?} in\n{listing}",
                tool.name()
            );
            seen.push(listing);
        }
        let saved = tool.ok(&argv("-Sn"))?;
        ensure!(
            saved.contains("-A -t 10.1.0.1:80 -s sh -p 90 -M 0.0.0.0\n")
                && saved.contains("-A -f 3 -s wlc -p 30 -M 0.0.0.0\n"),
            "{} -Sn:\n{saved}",
            tool.name()
        );
        seen.push(saved);
        seen.push(tool.ok(&argv("-Ln"))?);
        outputs.push(seen);
    }
    assert_eq!(outputs[0], outputs[1]);
    Ok(())
}

/// Applies `commands` with `tool`, failing on the first refusal.
fn build(tool: Tool<'_>, commands: &[Args]) -> Result<()> {
    for c in commands {
        tool.ok(c)?;
    }
    Ok(())
}

/// `-S` of one tool restored by the other gives back the same `-S`, both ways, numeric and
/// with names.
#[test]
fn save_and_restore_round_trip_between_the_tools() -> Result<()> {
    let table = rich_table();
    let mut failures = Vec::new();
    for save in ["-Sn", "-S"] {
        // ipvsadm -S → ipvsctl -R → ipvsadm -S
        let saved = {
            let _ns = Netns::new()?;
            build(Tool::Ipvsadm, &table)?;
            Tool::Ipvsadm.ok(&argv(save))?
        };
        {
            let _ns = Netns::new()?;
            let agent = Agent::start()?;
            let out = Tool::Ipvsctl(&agent).run_with(&argv("-R"), Some(&saved))?;
            if !out.ok() {
                failures.push(format!("ipvsctl -R of ipvsadm {save}: {}", out.brief()));
            }
            let again = Tool::Ipvsadm.ok(&argv(save))?;
            if again != saved {
                failures.push(format!(
                    "ipvsadm {save} → ipvsctl -R → ipvsadm {save} differs:\n{}",
                    line_diff(&saved, &again)
                ));
            }
        }
        // ipvsctl -S → ipvsadm -R → ipvsctl -S
        let saved = {
            let _ns = Netns::new()?;
            let agent = Agent::start()?;
            build(Tool::Ipvsctl(&agent), &table)?;
            Tool::Ipvsctl(&agent).ok(&argv(save))?
        };
        {
            let _ns = Netns::new()?;
            let agent = Agent::start()?;
            let out = Tool::Ipvsadm.run_with(&argv("-R"), Some(&saved))?;
            ensure!(out.ok(), "ipvsadm -R of ipvsctl {save}: {}", out.brief());
            let again = Tool::Ipvsctl(&agent).ok(&argv(save))?;
            if again != saved {
                failures.push(format!(
                    "ipvsctl {save} → ipvsadm -R → ipvsctl {save} differs:\n{}",
                    line_diff(&saved, &again)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// A restore file whose line `bad` (1-based) is `bad_line`, among valid lines.
fn restore_text(bad: usize, bad_line: &str) -> String {
    let mut lines: Vec<String> = [
        "-A -t 10.9.0.1:80 -s rr",
        "-a -t 10.9.0.1:80 -r 172.16.9.1:8080 -m -w 2",
        "-A -u 10.9.0.2:53 -s wlc",
        "-a -u 10.9.0.2:53 -r 172.16.9.2:53 -m",
        "-A -f 5 -s sh -b sh-port",
        "-a -f 5 -r 172.16.9.3 -g",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lines.insert(bad - 1, bad_line.to_string());
    lines.join("\n") + "\n"
}

/// `ipvsctl -R` checks the whole input first: a bad line anywhere leaves the table as it
/// was and the message names the line.
#[test]
fn restore_with_a_bad_line_changes_nothing() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let ctl = Tool::Ipvsctl(&agent);
    build(
        Tool::Ipvsadm,
        &[
            argv("-A -t 10.1.0.1:80 -s wrr"),
            argv("-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 3"),
            argv("-A -u 10.1.0.2:53 -s rr"),
        ],
    )?;
    let before = Tool::Ipvsadm.ok(&argv("-Sn"))?;
    let mut failures = Vec::new();
    for (n, bad) in [
        (4, "-a -u 10.9.0.2:53 -r 172.16.9.9:53 -m -w abc"),
        (3, "-A -t 10.9.0.3:80 --bogus"),
        (5, "-A -t 10.9.0.4:0 -s rr"),
        (2, "-A -t 10.9.0.300:80 -s rr"),
        (6, "-a -t 10.9.0.99:80 -r 172.16.9.5:80 -m"),
        (7, "-a -t 10.9.0.1:80 -r 172.16.9.6 -i --tun-type gue"),
        (4, "-A -t 10.9.0.5:80 -s bogus"),
        (3, "-A -t 10.9.0.1:80 -s rr"),
    ] {
        let out = ctl.run_with(&argv("-R"), Some(&restore_text(n, bad)))?;
        let after = Tool::Ipvsadm.ok(&argv("-Sn"))?;
        if out.ok() {
            failures.push(format!("line {n} {bad:?}: accepted ({})", out.brief()));
        }
        if !out.stderr.contains(&format!("line {n}")) {
            failures.push(format!(
                "line {n} {bad:?}: the message does not name line {n}: {:?}",
                out.stderr
            ));
        }
        if after != before {
            failures.push(format!(
                "line {n} {bad:?}: the table changed:\n{}",
                line_diff(&before, &after)
            ));
            // Put it back for the next case.
            Tool::Ipvsadm.ok(&argv("-C"))?;
            Tool::Ipvsadm.run_with(&argv("-R"), Some(&before))?;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// The rows of `--stats --exact` output, by their address column.
fn stats_rows(listing: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    let mut service = String::new();
    for line in listing.lines() {
        let key = if let Some(rest) = line.strip_prefix("  -> ") {
            let Some(addr) = rest.split_whitespace().next() else {
                continue;
            };
            if addr == "RemoteAddress:Port" {
                continue;
            }
            format!("{service} -> {addr}")
        } else if line.starts_with("TCP ") || line.starts_with("UDP ") || line.starts_with("FWM ") {
            service = line
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            service.clone()
        } else {
            continue;
        };
        rows.insert(key, line.to_owned());
    }
    rows
}

/// The Conns column of a `--stats` row.
fn conns(row: &str) -> Option<u64> {
    let rest = row.strip_prefix("  -> ").unwrap_or(row);
    let mut it = rest.split_whitespace();
    if !row.starts_with("  ->") {
        it.next(); // protocol
    }
    it.next(); // address
    it.next()?.parse().ok()
}

/// Waits until two readings of `--stats --exact`, 2.5 s apart, agree (counters fold on a
/// 2 s timer).
fn settled_stats() -> Result<String> {
    let mut last = Tool::Ipvsadm.ok(&argv("-Ln --stats --exact"))?;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(2500));
        let now = Tool::Ipvsadm.ok(&argv("-Ln --stats --exact"))?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    bail!("counters did not settle:\n{last}")
}

/// `ipvsctl -R --replace` of a table that differs from the running one changes only the
/// difference: services it leaves alone keep their counters; `--dry-run` changes nothing.
#[test]
fn restore_applies_only_the_difference() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let ctl = Tool::Ipvsctl(&agent);
    run_ok("ip", &["link", "add", "vip0", "type", "dummy"])?;
    run_ok("ip", &["link", "set", "vip0", "up"])?;
    for a in ["192.168.100.1/32", "192.168.100.2/32", "192.168.100.3/32"] {
        run_ok("ip", &["addr", "add", a, "dev", "vip0"])?;
    }
    let _b1 = Backend::start("127.0.0.1:8081".parse()?, "one\n")?;
    let _b2 = Backend::start("127.0.0.1:8082".parse()?, "two\n")?;
    build(
        ctl,
        &[
            argv("-A -t 192.168.100.1:80 -s rr"),
            argv("-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m"),
            argv("-a -t 192.168.100.1:80 -r 127.0.0.1:8082 -m"),
            argv("-A -t 192.168.100.2:80 -s rr"),
            argv("-a -t 192.168.100.2:80 -r 127.0.0.1:8081 -m -w 1"),
            argv("-A -t 192.168.100.3:80 -s rr"),
            argv("-a -t 192.168.100.3:80 -r 127.0.0.1:8082 -m"),
        ],
    )?;
    for (vip, n) in [
        ("192.168.100.1:80", 4),
        ("192.168.100.2:80", 3),
        ("192.168.100.3:80", 2),
    ] {
        let addr: SocketAddr = vip.parse()?;
        for _ in 0..n {
            http_get(addr)?;
        }
    }
    let before = settled_stats()?;
    let rows_before = stats_rows(&before);
    ensure!(
        rows_before
            .get("TCP 192.168.100.1:80")
            .and_then(|r| conns(r))
            == Some(4),
        "traffic did not reach the first service:\n{before}"
    );
    let table_before = Tool::Ipvsadm.ok(&argv("-Sn"))?;

    // The wanted table: the first service as it is, the second with a new weight, the
    // third gone, a fourth new.
    let wanted = "-A -t 192.168.100.1:80 -s rr\n\
        -a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 1\n\
        -a -t 192.168.100.1:80 -r 127.0.0.1:8082 -m -w 1\n\
        -A -t 192.168.100.2:80 -s rr\n\
        -a -t 192.168.100.2:80 -r 127.0.0.1:8081 -m -w 5\n\
        -A -t 192.168.100.4:80 -s wlc\n\
        -a -t 192.168.100.4:80 -r 127.0.0.1:8082 -m -w 1\n";

    let mut failures = Vec::new();
    let dry = ctl.run_with(&argv("-R --replace --dry-run"), Some(wanted))?;
    if !dry.ok() {
        failures.push(format!("-R --replace --dry-run: {}", dry.brief()));
    }
    for needle in ["192.168.100.3", "192.168.100.4"] {
        if !dry.stdout.contains(needle) {
            failures.push(format!(
                "-R --replace --dry-run does not show the change to {needle}: {:?}",
                dry.stdout
            ));
        }
    }
    let after_dry = Tool::Ipvsadm.ok(&argv("-Sn"))?;
    if after_dry != table_before {
        failures.push(format!(
            "-R --replace --dry-run changed the table:\n{}",
            line_diff(&table_before, &after_dry)
        ));
    }

    let out = ctl.run_with(&argv("-R --replace"), Some(wanted))?;
    if !out.ok() {
        failures.push(format!("-R --replace: {}", out.brief()));
    }
    let table = Tool::Ipvsadm.ok(&argv("-Sn"))?;
    if table != wanted {
        failures.push(format!(
            "after -R --replace the table is not the input:\n{}",
            line_diff(wanted, &table)
        ));
    }
    let after = Tool::Ipvsadm.ok(&argv("-Ln --stats --exact"))?;
    let rows_after = stats_rows(&after);
    for key in [
        "TCP 192.168.100.1:80",
        "TCP 192.168.100.1:80 -> 127.0.0.1:8081",
        "TCP 192.168.100.1:80 -> 127.0.0.1:8082",
        "TCP 192.168.100.2:80",
        "TCP 192.168.100.2:80 -> 127.0.0.1:8081",
    ] {
        if rows_before.get(key) != rows_after.get(key) {
            failures.push(format!(
                "counters of {key} changed:\n  before {:?}\n  after  {:?}",
                rows_before.get(key),
                rows_after.get(key)
            ));
        }
    }
    if rows_after.contains_key("TCP 192.168.100.3:80") {
        failures.push("the third service is still there".into());
    }
    match rows_after.get("TCP 192.168.100.4:80").map(|r| conns(r)) {
        Some(Some(0)) => {}
        other => failures.push(format!("the new service: {other:?}")),
    }
    // Both tools agree on what is there now.
    let view = argv("-Ln --stats --exact");
    let theirs = Tool::Ipvsadm.run(&view)?;
    let ours = ctl.run(&view)?;
    if theirs != ours {
        failures.push(format!(
            "--stats --exact differs:\n{}",
            line_diff(&theirs.stdout, &ours.stdout)
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\nbefore:\n{before}\nafter:\n{after}",
        failures.join("\n")
    );
    Ok(())
}

/// What one tool left after a restore case.
struct RestoreRun {
    /// The `-R` run itself.
    outcome: Outcome,
    /// `ipvsadm -Sn` after the base, before `-R`.
    before: String,
    /// `ipvsadm -Sn` right after `-R`.
    after: String,
    /// ipvsctl only: `ipvsctl -R` of the lines before the failing one, and the table then.
    applied_part: Option<(Outcome, String)>,
}

/// Runs every case with `tool` in one namespace (the cases use disjoint addresses; the table
/// is read after each): the base is made with ipvsadm, the input restored with `tool`.
fn run_restores(cases: &[RestoreCase], use_ipvsctl: bool) -> Result<Vec<RestoreRun>> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let tool = if use_ipvsctl {
        Tool::Ipvsctl(&agent)
    } else {
        Tool::Ipvsadm
    };
    let mut runs = Vec::new();
    for case in cases {
        build(Tool::Ipvsadm, &case.base)?;
        let before = Tool::Ipvsadm.ok(&argv("-Sn"))?;
        let outcome = tool.run_with(&argv("-R"), Some(&case.input))?;
        let after = Tool::Ipvsadm.ok(&argv("-Sn"))?;
        let applied_part = match (use_ipvsctl, case.failing) {
            (true, Some(_)) => {
                let out = tool.run_with(&argv("-R"), Some(&case.applied_part()))?;
                Some((out, Tool::Ipvsadm.ok(&argv("-Sn"))?))
            }
            _ => None,
        };
        runs.push(RestoreRun {
            outcome,
            before,
            after,
            applied_part,
        });
    }
    Ok(runs)
}

/// What differs between ipvsadm's and ipvsctl's runs of `case`.
///
/// ipvsadm runs each line against the table and carries on after a failing one; ipvsctl
/// refuses the whole input at the first failing line and changes nothing. So for an input
/// without a failing line everything must be the same (exit status, output, the table after);
/// for one whose last line fails, what is comparable is compared: the exit status, the
/// message (ipvsctl's is ipvsadm's after `line N: `), ipvsctl's table unchanged, and
/// ipvsadm's table the one ipvsctl makes from the lines before the failing one.
fn restore_mismatches(case: &RestoreCase, theirs: &RestoreRun, ours: &RestoreRun) -> Vec<String> {
    let mut out = Vec::new();
    if theirs.before != ours.before {
        out.push(format!(
            "the tables differ before -R:\n{}",
            line_diff(&theirs.before, &ours.before)
        ));
    }
    let (adm, ctl) = (&theirs.outcome, &ours.outcome);
    match case.failing {
        None => {
            if adm != ctl {
                out.push(format!(
                    "-R: ipvsadm {}\n    ipvsctl {}",
                    adm.brief(),
                    ctl.brief()
                ));
            }
            if theirs.after != ours.after {
                out.push(format!(
                    "the tables differ after -R (- ipvsadm, + ipvsctl):\n{}",
                    line_diff(&theirs.after, &ours.after)
                ));
            }
        }
        Some(n) => {
            let wanted = format!("line {n}: {}", adm.stderr);
            if adm.code != ctl.code || ctl.stderr != wanted || !ctl.stdout.is_empty() {
                out.push(format!(
                    "-R: ipvsadm {}\n    ipvsctl {} (wanted {wanted:?})",
                    adm.brief(),
                    ctl.brief()
                ));
            }
            if adm.stderr.lines().count() != 1 {
                out.push(format!("ipvsadm did not fail once: {}", adm.brief()));
            }
            if ours.after != ours.before {
                out.push(format!(
                    "ipvsctl changed the table:\n{}",
                    line_diff(&ours.before, &ours.after)
                ));
            }
            match &ours.applied_part {
                Some((part, table)) if part.ok() && part.stderr.is_empty() => {
                    if *table != theirs.after {
                        out.push(format!(
                            "ipvsadm's table is not ipvsctl's from the lines before line {n} \
                             (- ipvsadm, + ipvsctl):\n{}",
                            line_diff(&theirs.after, table)
                        ));
                    }
                }
                Some((part, _)) => out.push(format!(
                    "ipvsctl -R of the lines before line {n}: {}",
                    part.brief()
                )),
                None => out.push("ipvsctl's lines before the failing one were not run".into()),
            }
        }
    }
    out
}

/// Restores onto tables that are not empty, every kind of line and of refusal, through the
/// real ipvsadm and through ipvsctl, compared as [`restore_mismatches`] says.
#[test]
fn restores_onto_a_table_match_ipvsadm() -> Result<()> {
    let cases = restore_cases(1000);
    let started = Instant::now();
    let theirs = run_restores(&cases, false)?;
    let ours = run_restores(&cases, true)?;
    let mut mismatches = Vec::new();
    for ((case, theirs), ours) in cases.iter().zip(&theirs).zip(&ours) {
        let found = restore_mismatches(case, theirs, ours);
        if !found.is_empty() {
            mismatches.push(format!(
                "[{}]\n  input:\n{}  {}",
                case.name,
                case.input
                    .lines()
                    .map(|l| format!("    {l}\n"))
                    .collect::<String>(),
                found.join("\n  ")
            ));
        }
    }
    report(&format!(
        "restores onto a table: {} cases ({} with a failing line) in {:.1} s",
        cases.len(),
        cases.iter().filter(|c| c.failing.is_some()).count(),
        started.elapsed().as_secs_f64()
    ));
    assert!(
        mismatches.is_empty(),
        "{} of {} restores differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    Ok(())
}

/// What is wrong with `got` when it should end with `code`, `stderr` and no output.
fn expected(what: &str, got: &Outcome, code: i32, stderr: &str) -> Option<String> {
    (got.code != Some(code) || got.stderr != stderr || !got.stdout.is_empty()).then(|| {
        format!(
            "{what}: {} (wanted exit {code}, stderr {stderr:?})",
            got.brief()
        )
    })
}

/// `ipvsadm -R` runs each line on the table as it is; so does `ipvsctl -R`. Restoring a
/// second file adds to what the first made; a line that conflicts with the table is refused
/// with ipvsadm's words, but where ipvsadm carries on (and exits with its last line's
/// status), ipvsctl refuses the whole input and changes nothing. The whole-table replacement
/// is `ipvsctl -R --replace`, or `ipvsctl-restore`, like `ipvsadm-restore`.
#[test]
fn restore_runs_on_top_of_the_table_like_ipvsadm() -> Result<()> {
    const BASE: &str = "-A -t 10.1.1.1:80 -s rr\n-a -t 10.1.1.1:80 -r 10.2.2.2:80 -m\n";
    const MORE: &str = "-A -t 10.3.3.3:80 -s wrr\n-a -t 10.3.3.3:80 -r 10.4.4.4:80 -m\n";
    const CONFLICT: &str = "-A -t 10.1.1.1:80 -s wrr\n-A -t 10.5.5.5:80\n";
    const BASE_SAVED: &str = "-A -t 10.1.1.1:80 -s rr\n-a -t 10.1.1.1:80 -r 10.2.2.2:80 -m -w 1\n";
    const MORE_SAVED: &str = "-A -t 10.3.3.3:80 -s wrr\n-a -t 10.3.3.3:80 -r 10.4.4.4:80 -m -w 1\n";
    let both = format!("{BASE_SAVED}{MORE_SAVED}");
    let conflicted = format!("{BASE_SAVED}-A -t 10.5.5.5:80 -s wlc\n");
    let mut failures = Vec::new();
    let mut tables = Vec::new();
    for use_ipvsctl in [false, true] {
        let _ns = Netns::new()?;
        let agent = Agent::start()?;
        let (tool, name) = if use_ipvsctl {
            (Tool::Ipvsctl(&agent), "ipvsctl")
        } else {
            (Tool::Ipvsadm, "ipvsadm")
        };
        let restore = |input: &str| tool.run_with(&argv("-R"), Some(input));
        let saved = || Tool::Ipvsadm.ok(&argv("-Sn"));
        // Two files, one after the other: both services.
        failures.extend(expected(
            &format!("{name} -R < base"),
            &restore(BASE)?,
            0,
            "",
        ));
        failures.extend(expected(
            &format!("{name} -R < more"),
            &restore(MORE)?,
            0,
            "",
        ));
        let after_two = saved()?;
        // A conflicting line: ipvsadm says so, carries on and exits 0 (its last line
        // succeeded); ipvsctl says so with the line and changes nothing.
        Tool::Ipvsadm.ok(&argv("-C"))?;
        Tool::Ipvsadm.run_with(&argv("-R"), Some(BASE))?;
        let out = restore(CONFLICT)?;
        if use_ipvsctl {
            failures.extend(expected(
                "ipvsctl -R < conflict",
                &out,
                255,
                "line 1: Service already exists\n",
            ));
        } else {
            failures.extend(expected(
                "ipvsadm -R < conflict",
                &out,
                0,
                "Service already exists\n",
            ));
        }
        let after_conflict = saved()?;
        // The whole-table replacement, by its names.
        let replaced = if use_ipvsctl {
            let out = tool.run_with(&argv("-R --replace --dry-run"), Some(MORE))?;
            failures.extend(expected(
                "ipvsctl -R --replace --dry-run < more",
                &Outcome {
                    stdout: String::new(),
                    ..out.clone()
                },
                0,
                "",
            ));
            if !out.stdout.contains("-D -t 10.1.1.1:80\n") {
                failures.push(format!(
                    "the dry run does not delete 10.1.1.1: {:?}",
                    out.stdout
                ));
            }
            let Tool::Ipvsctl(agent) = tool else {
                bail!("ipvsctl's tool")
            };
            let mut cmd = Command::new(bin_dir().join("ipvsctl"));
            cmd.arg0("ipvsctl-restore")
                .env("IPVSCTL_AGENT", agent.address())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().context("spawn ipvsctl-restore")?;
            child
                .stdin
                .take()
                .context("stdin")?
                .write_all(MORE.as_bytes())?;
            let out = child.wait_with_output()?;
            if !out.status.success() {
                failures.push(format!("ipvsctl-restore < more: {out:?}"));
            }
            saved()?
        } else {
            Tool::Ipvsadm.ok(&argv("-C"))?;
            Tool::Ipvsadm.run_with(&argv("-R"), Some(MORE))?;
            saved()?
        };
        tables.push((after_two, after_conflict, replaced));
    }
    let (adm, ctl) = (&tables[0], &tables[1]);
    for (what, theirs, ours, wanted) in [
        ("after base then more", &adm.0, &ctl.0, Some(both.as_str())),
        ("after the conflict", &adm.1, &ctl.1, None),
        ("after replacing", &adm.2, &ctl.2, Some(MORE_SAVED)),
    ] {
        if let Some(wanted) = wanted
            && theirs != wanted
        {
            failures.push(format!("ipvsadm {what}:\n{}", line_diff(wanted, theirs)));
        }
        if wanted.is_some() && theirs != ours {
            failures.push(format!(
                "{what} (- ipvsadm, + ipvsctl):\n{}",
                line_diff(theirs, ours)
            ));
        }
    }
    // ipvsadm kept rr and the real server and added 10.5.5.5; ipvsctl changed nothing.
    if adm.1 != conflicted {
        failures.push(format!(
            "ipvsadm after the conflict:\n{}",
            line_diff(&conflicted, &adm.1)
        ));
    }
    if ctl.1 != BASE_SAVED {
        failures.push(format!(
            "ipvsctl after the conflict:\n{}",
            line_diff(BASE_SAVED, &ctl.1)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[test]
fn restore_mismatches_compare_what_is_comparable() {
    let case = |failing| RestoreCase {
        name: "t".into(),
        base: vec![],
        input: "-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n".into(),
        failing,
    };
    let out = |code, stderr: &str| Outcome {
        code: Some(code),
        stdout: String::new(),
        stderr: stderr.into(),
    };
    let base = "-A -t 10.0.0.1:80 -s wlc\n".to_string();
    let with_2 = format!("{base}-A -t 10.0.0.2:80 -s wlc\n");
    let run = |outcome, after: &str, part: Option<(Outcome, &str)>| RestoreRun {
        outcome,
        before: base.clone(),
        after: after.into(),
        applied_part: part.map(|(o, t)| (o, t.to_owned())),
    };
    let adm = run(out(255, "Service already exists\n"), &with_2, None);
    let good = run(
        out(255, "line 2: Service already exists\n"),
        &base,
        Some((out(0, ""), &with_2)),
    );
    assert!(restore_mismatches(&case(Some(2)), &adm, &good).is_empty());
    let wrong: Vec<(&str, RestoreRun)> = vec![
        (
            "another line number",
            run(
                out(255, "line 1: Service already exists\n"),
                &base,
                Some((out(0, ""), &with_2)),
            ),
        ),
        (
            "another exit status",
            run(
                out(2, "line 2: Service already exists\n"),
                &base,
                Some((out(0, ""), &with_2)),
            ),
        ),
        (
            "the table changed",
            run(
                out(255, "line 2: Service already exists\n"),
                &with_2,
                Some((out(0, ""), &with_2)),
            ),
        ),
        (
            "the lines before make another table",
            run(
                out(255, "line 2: Service already exists\n"),
                &base,
                Some((out(0, ""), &base)),
            ),
        ),
    ];
    for (what, ours) in &wrong {
        assert!(
            !restore_mismatches(&case(Some(2)), &adm, ours).is_empty(),
            "{what}"
        );
    }
    // Without a failing line, everything must be the same.
    let ok = run(out(0, ""), &with_2, None);
    assert!(restore_mismatches(&case(None), &ok, &run(out(0, ""), &with_2, None)).is_empty());
    assert!(!restore_mismatches(&case(None), &ok, &run(out(0, ""), &base, None)).is_empty());
}

#[test]
fn line_diff_shows_both_sides() {
    assert_eq!(line_diff("a\nb\nc\n", "a\nb\nc\n"), "");
    assert_eq!(
        line_diff("a\nb\nc\n", "a\nx\nc\n"),
        "      - \"b\"\n      + \"x\"\n"
    );
    assert_eq!(line_diff("", "a\n"), "      + \"a\"\n");
}

#[test]
fn stats_rows_are_keyed_by_service_and_server() {
    let listing = "IP Virtual Server version 1.2.1 (size=4096)\n\
        Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  \
        -> RemoteAddress:Port\n\
        TCP  192.168.100.1:80                    6       36       24     2224     2812\n  \
        -> 127.0.0.1:8081                    3       18       12     1112     1406\n";
    let rows = stats_rows(listing);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.get("TCP 192.168.100.1:80").and_then(|r| conns(r)),
        Some(6)
    );
    assert_eq!(
        rows.get("TCP 192.168.100.1:80 -> 127.0.0.1:8081")
            .and_then(|r| conns(r)),
        Some(3)
    );
}
