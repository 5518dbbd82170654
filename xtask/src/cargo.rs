//! Building the project's binaries and the e2e test executables with cargo.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::paths::Paths;

/// The package holding the e2e tests.
pub const E2E_PACKAGE: &str = "ipvs-e2e";

pub fn cargo(paths: &Paths) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(&paths.root);
    cmd
}

/// Builds every binary of the workspace except xtask; returns the executables.
pub fn build_bins(paths: &Paths) -> Result<Vec<PathBuf>> {
    eprintln!("lab: building the project's binaries");
    let mut cmd = cargo(paths);
    cmd.args(["build", "--workspace", "--exclude", "xtask", "--bins"]);
    artifacts(&mut cmd, Kind::Bin)
}

/// The benchmark's binaries, optimised as users run them: release `ipvs-agent` and
/// `ipvsctl` (`thin`: without the policy engine) and the kernel-floor probe
/// `ipvs-floor` (crate `bench`, outside the default members).
pub fn build_release_bench(paths: &Paths, thin: bool) -> Result<Vec<PathBuf>> {
    eprintln!("bench: building release binaries");
    let mut cmd = cargo(paths);
    let packages = ["ipvs-agent", "ipvsctl", "ipvs-bench"];
    cmd.args(["build", "--release", "--bins"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if thin {
        cmd.arg("--no-default-features");
    }
    let bins = artifacts(&mut cmd, Kind::Bin)?;
    for want in ["ipvs-agent", "ipvsctl", "ipvs-floor"] {
        if !bins
            .iter()
            .any(|b| b.file_name().is_some_and(|n| n == want))
        {
            bail!("cargo built no {want}");
        }
    }
    Ok(bins)
}

/// Builds the e2e test executables (all, or only `targets`) without running them.
pub fn build_tests(paths: &Paths, targets: &[String]) -> Result<Vec<PathBuf>> {
    eprintln!("lab: building the e2e tests");
    let mut cmd = cargo(paths);
    cmd.args(["test", "-p", E2E_PACKAGE, "--no-run"]);
    for t in targets {
        cmd.args(["--test", t]);
    }
    artifacts(&mut cmd, Kind::Test)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bin,
    Test,
}

fn artifacts(cmd: &mut Command, kind: Kind) -> Result<Vec<PathBuf>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let out = cmd.output().context("running cargo")?;
    if !out.status.success() {
        bail!("cargo failed: {}", out.status);
    }
    parse_artifacts(&String::from_utf8_lossy(&out.stdout), kind)
}

/// Executables from cargo's JSON messages: test harnesses for [`Kind::Test`], `bin` targets
/// otherwise.
fn parse_artifacts(json_lines: &str, kind: Kind) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in json_lines.lines().filter(|l| l.starts_with('{')) {
        let msg: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("cargo message {line:?}"))?;
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let is_test = msg["profile"]["test"].as_bool().unwrap_or(false);
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        let wanted = match kind {
            Kind::Test => is_test,
            Kind::Bin => is_bin && !is_test,
        };
        let exe = PathBuf::from(exe);
        if wanted && !out.contains(&exe) {
            out.push(exe);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &str = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ipvs_e2e"},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"lab_smoke"},"profile":{"test":true},"executable":"/t/debug/deps/lab_smoke-1"}
{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ipvs_e2e"},"profile":{"test":true},"executable":"/t/debug/deps/ipvs_e2e-2"}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"ipvsctl"},"profile":{"test":false},"executable":"/t/debug/ipvsctl"}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"ipvsctl"},"profile":{"test":false},"executable":"/t/debug/ipvsctl"}
{"reason":"build-finished","success":true}
"#;

    #[test]
    fn test_executables() -> Result<()> {
        assert_eq!(
            parse_artifacts(MESSAGES, Kind::Test)?,
            [
                PathBuf::from("/t/debug/deps/lab_smoke-1"),
                PathBuf::from("/t/debug/deps/ipvs_e2e-2")
            ]
        );
        Ok(())
    }

    #[test]
    fn bin_executables_are_deduplicated() -> Result<()> {
        assert_eq!(
            parse_artifacts(MESSAGES, Kind::Bin)?,
            [PathBuf::from("/t/debug/ipvsctl")]
        );
        Ok(())
    }

    #[test]
    fn malformed_message_is_an_error() {
        let err = parse_artifacts("{not json\n", Kind::Bin).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("cargo message \"{not json\"".to_string())
        );
    }
}
