//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/`, each run for a fixed time from seeds
//! made fresh from the project's own sources (captured kernel bytes, ipvsadm test data, the
//! node-file docs), so no binary seed lives in git.
//!
//! Layout under `fuzz/` (all ignored by git): `seeds/<target>/` is rewritten on every run,
//! `corpus/<target>/` keeps what libFuzzer found across runs, `artifacts/<target>/` holds
//! crashes, `logs/<target>.log` libFuzzer's full output.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::paths::Paths;

/// Every target, in the order they run.
pub const TARGETS: &[&str] = &[
    "ipvs_reply",
    "proc_conn",
    "ipvsadm_args",
    "restore",
    "node_file",
    "inventory",
    "grpc_request",
];

/// The toolchain cargo-fuzz needs (`-Zsanitizer`).
const TOOLCHAIN: &str = "nightly";

/// Request kinds `grpc_request` tells apart by its first byte.
const GRPC_KINDS: u8 = 25;

/// Optimised, with debug assertions and overflow checks: an overflow in a parser is a finding.
const BUILD_FLAGS: &[&str] = &["-O", "-a"];

/// What one target's run found.
#[derive(Debug, Default)]
struct Outcome {
    execs: Option<u64>,
    exec_per_sec: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    crashes: Vec<String>,
    status_ok: bool,
}

/// Runs `targets` (all when empty) for `seconds` each; with `install`, gets a missing nightly
/// toolchain or cargo-fuzz first. `Ok(false)`: some target crashed.
pub fn run(paths: &Paths, targets: &[String], seconds: u64, install: bool) -> Result<bool> {
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!(
                    "unknown fuzz target {t:?}; the targets are {}",
                    TARGETS.join(", ")
                );
            }
        }
        targets.iter().map(String::as_str).collect()
    };
    tools(install)?;
    let fuzz = paths.root.join("fuzz");

    let started = Instant::now();
    eprintln!("xtask: building the fuzz targets");
    let ok = cargo_fuzz(&paths.root)
        .arg("build")
        .args(BUILD_FLAGS)
        .status()
        .context("running cargo fuzz build")?
        .success();
    if !ok {
        bail!("cargo fuzz build failed");
    }
    eprintln!(
        "xtask: fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut outcomes = Vec::new();
    for target in &targets {
        let seeds = fuzz.join("seeds").join(target);
        let count = write_seeds(&paths.root, target, &seeds)?;
        eprintln!("xtask: fuzz {target}: {count} seeds, {seconds} s");
        outcomes.push((*target, run_target(paths, &fuzz, target, &seeds, seconds)?));
    }

    println!(
        "{:<14} {:>12} {:>8} {:>6} {:>7}  crashes",
        "target", "execs", "exec/s", "cov", "ft"
    );
    let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut clean = true;
    for (target, o) in &outcomes {
        let crashes = if o.crashes.is_empty() && o.status_ok {
            "0".to_string()
        } else if o.crashes.is_empty() {
            "failed without an artifact (see the log)".to_string()
        } else {
            format!("{}: {}", o.crashes.len(), o.crashes.join(", "))
        };
        clean &= o.crashes.is_empty() && o.status_ok;
        println!(
            "{target:<14} {:>12} {:>8} {:>6} {:>7}  {crashes}",
            show(o.execs),
            show(o.exec_per_sec),
            show(o.cov),
            show(o.ft),
        );
    }
    Ok(clean)
}

/// `cargo +nightly fuzz ...` at the workspace root. The fuzz build keeps its own target
/// directory (`fuzz/target`): a shared `CARGO_TARGET_DIR` would mix nightly sanitizer builds
/// into the normal ones and rebuild both.
fn cargo_fuzz(root: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.arg(format!("+{TOOLCHAIN}"))
        .arg("fuzz")
        .current_dir(root)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTUP_TOOLCHAIN");
    c
}

/// Checks for the nightly toolchain and cargo-fuzz; installs what is missing only when asked.
fn tools(install: bool) -> Result<()> {
    let has_nightly = Command::new("rustup")
        .args(["run", TOOLCHAIN, "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nightly {
        let how = format!("rustup toolchain install {TOOLCHAIN} --profile minimal");
        if !install {
            bail!("no {TOOLCHAIN} toolchain (cargo-fuzz needs it): run `{how}`, or pass --install");
        }
        eprintln!("xtask: {how}");
        let ok = Command::new("rustup")
            .args(["toolchain", "install", TOOLCHAIN, "--profile", "minimal"])
            .status()?
            .success();
        if !ok {
            bail!("`{how}` failed");
        }
    }
    let has_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        let how = "cargo install cargo-fuzz --locked";
        if !install {
            bail!("cargo-fuzz is not installed: run `{how}`, or pass --install");
        }
        eprintln!("xtask: {how}");
        let ok = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()?
            .success();
        if !ok {
            bail!("`{how}` failed");
        }
    }
    Ok(())
}

/// One libFuzzer run; its output goes to `fuzz/logs/<target>.log`, the lines that matter to
/// the terminal too.
fn run_target(
    paths: &Paths,
    fuzz: &Path,
    target: &str,
    seeds: &Path,
    secs: u64,
) -> Result<Outcome> {
    let corpus = fuzz.join("corpus").join(target);
    let logs = fuzz.join("logs");
    fs::create_dir_all(&corpus)?;
    fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let mut child = cargo_fuzz(&paths.root)
        .arg("run")
        .args(BUILD_FLAGS)
        .arg(target)
        .arg(&corpus)
        .arg(seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        // A single input this slow is a hang worth reporting.
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz run")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut log = String::new();
    let mut outcome = Outcome::default();
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        parse_line(&line, &mut outcome);
        if is_notable(&line) {
            eprintln!("  {target}: {line}");
        }
        log.push_str(&line);
        log.push('\n');
    }
    outcome.status_ok = child.wait()?.success();
    fs::write(&log_path, log)?;
    if !outcome.status_ok {
        eprintln!(
            "xtask: fuzz {target} failed; full output in {}",
            log_path.display()
        );
    }
    Ok(outcome)
}

/// Lines worth showing while the run goes: the last status line, errors, artifacts.
fn is_notable(line: &str) -> bool {
    line.contains("\tDONE ")
        || line.contains("ERROR")
        || line.contains("panicked")
        || line.contains("Test unit written")
        || line.starts_with("SUMMARY")
}

/// Picks libFuzzer's figures out of its output: `#N ... cov: C ft: F` status lines (the last
/// one wins), `stat::` final stats, and where it wrote a crashing input.
fn parse_line(line: &str, o: &mut Outcome) {
    let word_after = |key: &str| -> Option<u64> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == key)?;
        words.next()?.parse().ok()
    };
    if line.starts_with('#') {
        if let Some(c) = word_after("cov:") {
            o.cov = Some(c);
        }
        if let Some(f) = word_after("ft:") {
            o.ft = Some(f);
        }
    }
    let stat = |name: &str| {
        line.strip_prefix(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(v) = stat("stat::number_of_executed_units:") {
        o.execs = Some(v);
    }
    if let Some(v) = stat("stat::average_exec_per_sec:") {
        o.exec_per_sec = Some(v);
    }
    if let Some((_, path)) = line.split_once("Test unit written to ") {
        o.crashes.push(path.trim().to_string());
    }
}

/// Writes the seeds of `target` into `dir` (emptied first); returns how many.
fn write_seeds(root: &Path, target: &str, dir: &Path) -> Result<usize> {
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    let seeds = seeds(root, target)?;
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:03}")), seed)?;
    }
    Ok(seeds.len())
}

/// A target's seeds, from the sources that hold real examples of its input. Deduplicated.
fn seeds(root: &Path, target: &str) -> Result<BTreeSet<Vec<u8>>> {
    let read = |rel: &str| -> Result<String> {
        fs::read_to_string(root.join(rel)).with_context(|| format!("reading {rel}"))
    };
    let ipvsadm = "cli/testdata/ipvsadm";
    let mut out = BTreeSet::new();
    match target {
        "ipvs_reply" => {
            out.extend(byte_constants(&read("agent/src/ipvs/tests/captured.rs")?));
        }
        "proc_conn" => {
            out.insert(read(&format!("{ipvsadm}/oracle/conn.table"))?.into_bytes());
            for src in ["agent/src/ipvs/conn.rs", "agent/src/ipvs/schedulers.rs"] {
                out.extend(
                    string_literals(&read(src)?)
                        .into_iter()
                        .filter(|s| s.len() >= 8 && (s.contains("ip_vs") || s.contains(' ')))
                        .map(String::into_bytes),
                );
            }
        }
        "ipvsadm_args" => {
            let mut lines = command_lines(&read(&format!("{ipvsadm}/oracle/requests.lines"))?);
            lines.extend(differential_lines(&read(DIFFERENTIAL)?));
            for line in lines {
                out.insert(
                    line.split_whitespace()
                        .collect::<Vec<_>>()
                        .join("\n")
                        .into(),
                );
            }
        }
        "restore" => {
            for file in ["many-S.txt", "many-Sn.txt", "oracle/requests.lines"] {
                out.insert(read(&format!("{ipvsadm}/{file}"))?.into_bytes());
            }
            let differential = differential_lines(&read(DIFFERENTIAL)?);
            out.insert(differential.join("\n").into_bytes());
            for line in command_lines(&read(&format!("{ipvsadm}/oracle/requests.lines"))?)
                .into_iter()
                .chain(differential)
            {
                out.insert(line.into_bytes());
            }
        }
        "node_file" => {
            // The first byte picks the format: 0 YAML, 1 TOML.
            for (lang, text) in fenced_blocks(&read("docs/node-file.md")?) {
                let format = match lang.as_str() {
                    "yaml" | "yml" => 0,
                    "toml" => 1,
                    _ => continue,
                };
                out.insert([&[format][..], text.as_bytes()].concat());
            }
            for text in string_literals(&read("cli/src/spec/tests.rs")?) {
                if text.len() >= 16 && text.contains('\n') {
                    for format in [0u8, 1] {
                        out.insert([&[format][..], text.as_bytes()].concat());
                    }
                }
            }
        }
        "inventory" => {
            for src in ["cli/src/fleet/inventory.rs", "cli/tests/fleet.rs"] {
                out.extend(
                    string_literals(&read(src)?)
                        .into_iter()
                        .filter(|s| s.contains("agents"))
                        .map(String::into_bytes),
                );
            }
        }
        "grpc_request" => {
            // Each request kind, empty: protobuf's fields are easy for libFuzzer to find.
            out.extend((0..GRPC_KINDS).map(|k| vec![k]));
        }
        _ => bail!("no seeds for {target}"),
    }
    Ok(out)
}

/// The differential corpus: the ipvsadm commands the lab runs through both tools.
const DIFFERENTIAL: &str = "tests/src/corpus.rs";

/// The whole ipvsadm command lines the differential corpus spells out (its templates with
/// `{}` holes are left out): refusals, odd spellings and option mixes the oracle was run on.
fn differential_lines(src: &str) -> Vec<String> {
    string_literals(src)
        .into_iter()
        .filter(|s| s.starts_with('-') && s.contains(' ') && !s.contains('{'))
        .collect()
}

/// The lines of a file of ipvsadm command lines, comments and blank lines left out.
fn command_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Every `const NAME: &[u8] = &[0x.., ...];` of a Rust source, comments left out.
fn byte_constants(src: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or("");
        if code.contains("const ") && code.contains(": &[u8] = &[") {
            current = Some(Vec::new());
            continue;
        }
        let Some(bytes) = current.as_mut() else {
            continue;
        };
        for word in code.split([',', ' ']).filter(|w| !w.is_empty()) {
            if let Some(hex) = word.strip_prefix("0x")
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                bytes.push(b);
            }
        }
        if code.trim_start().starts_with("];") {
            out.extend(current.take());
        }
    }
    out
}

/// The ```lang fenced blocks of a Markdown text.
fn fenced_blocks(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut block: Option<(String, String)> = None;
    for line in md.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut block, fence) {
            (None, Some(lang)) => block = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.extend(block.take()),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The string literals of a Rust source: `"..."` with the common escapes and line
/// continuations, and raw `r"..."`/`r#"..."#`. Enough for test data; not a Rust lexer (a
/// quote inside a comment or a char literal can throw it off, which costs a seed at most).
fn string_literals(src: &str) -> Vec<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' {
            // A char literal ('"') or a lifetime: skip the next char either way.
            i += 2;
        } else if c == 'r' && matches!(chars.get(i + 1), Some('"' | '#')) {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            let start = j + 1;
            let mut k = start;
            let closes = |k: usize| {
                chars.get(k) == Some(&'"') && (1..=hashes).all(|h| chars.get(k + h) == Some(&'#'))
            };
            while k < chars.len() && !closes(k) {
                k += 1;
            }
            out.push(chars[start..k.min(chars.len())].iter().collect());
            i = k + 1 + hashes;
        } else if c == '"' {
            let mut s = String::new();
            let mut k = i + 1;
            while k < chars.len() && chars[k] != '"' {
                if chars[k] == '\\' {
                    k += 1;
                    match chars.get(k) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some('0') => s.push('\0'),
                        Some('\n') => {
                            while chars.get(k + 1).is_some_and(|c| c.is_whitespace()) {
                                k += 1;
                            }
                        }
                        Some(&other) => s.push(other),
                        None => {}
                    }
                } else {
                    s.push(chars[k]);
                }
                k += 1;
            }
            out.push(s);
            i = k + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_targets_are_seeded_from_the_differential_corpus() {
        let src = r#"let a = "-A -t 10.0.0.1:80 -s rr"; let b = format!("-a {s} -r {r}"); "-t";"#;
        assert_eq!(differential_lines(src), ["-A -t 10.0.0.1:80 -s rr"]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let restore = seeds(&root, "restore").expect("seeds");
        assert!(restore.contains(b"-A -t nosuchhost.invalid:80 -s rr".as_slice()));
        let args = seeds(&root, "ipvsadm_args").expect("seeds");
        assert!(args.contains(b"-A\n-t\nnosuchhost.invalid:80\n-s\nrr".as_slice()));
    }

    #[test]
    fn finds_byte_constants_without_comment_hex() {
        let src = "pub(crate) const A: &[u8] = &[\n    0x0f, 0x01, // flags 0x0\n];\n";
        assert_eq!(byte_constants(src), vec![vec![0x0f, 0x01]]);
    }

    #[test]
    fn finds_string_literals() {
        let src = "let a = \"x\\ny\"; let b = r#\"q \"z\" \"#; let c = '\"'; // \"no\"\n";
        assert_eq!(string_literals(src), vec!["x\ny", "q \"z\" "]);
    }

    #[test]
    fn reads_final_stats() {
        let mut o = Outcome::default();
        for line in [
            "#1000\tDONE   cov: 812 ft: 2301 corp: 120/4Kb lim: 100 exec/s: 33 rss: 50Mb",
            "stat::number_of_executed_units: 1000",
            "stat::average_exec_per_sec:     33",
            "Test unit written to fuzz/artifacts/x/crash-ab",
        ] {
            parse_line(line, &mut o);
        }
        assert!(is_notable("#1000\tDONE   cov: 812 ft: 2301"));
        assert_eq!(
            (o.execs, o.exec_per_sec, o.cov, o.ft),
            (Some(1000), Some(33), Some(812), Some(2301))
        );
        assert_eq!(o.crashes, vec!["fuzz/artifacts/x/crash-ab"]);
    }
}
