//! The guest policies in `policies/` (their own workspace, target wasm32-wasip2): installing
//! the target, building the example components, and running their unit tests on the host.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cargo::cargo;
use crate::paths::Paths;

pub const TARGET: &str = "wasm32-wasip2";

fn dir(paths: &Paths) -> PathBuf {
    paths.root.join("policies")
}

/// Where `build` leaves the components.
pub fn out_dir(paths: &Paths) -> PathBuf {
    dir(paths).join("target").join(TARGET).join("release")
}

/// `rustup target add` (a no-op when the target is installed).
fn ensure_target() -> Result<()> {
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("rustup target add {TARGET}: {status}");
    }
    Ok(())
}

fn policies_cargo(paths: &Paths, args: &[&str]) -> Result<()> {
    let dir = dir(paths);
    let status = cargo(paths)
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .args(args)
        .arg("--target-dir")
        .arg(dir.join("target"))
        .status()
        .context("running cargo in policies/")?;
    if !status.success() {
        bail!("cargo {} in policies/: {status}", args.join(" "));
    }
    Ok(())
}

/// `cargo xtask policies build`: every example as a component, in release.
pub fn build(paths: &Paths) -> Result<Vec<PathBuf>> {
    ensure_target()?;
    eprintln!("xtask: building the example policies for {TARGET}");
    policies_cargo(paths, &["build", "--release", "--target", TARGET])?;
    let out = out_dir(paths);
    let mut wasm: Vec<PathBuf> = std::fs::read_dir(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    wasm.sort();
    for p in &wasm {
        println!("{}", p.display());
    }
    Ok(wasm)
}

/// `cargo xtask policies test`: the SDK's and the examples' unit tests, on the host.
pub fn test(paths: &Paths) -> Result<()> {
    eprintln!("xtask: policy unit tests (host target)");
    policies_cargo(paths, &["test"])
}
