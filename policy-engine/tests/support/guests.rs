//! Builds the example policies (`policies/`, target wasm32-wasip2) once per test process, the
//! way `cargo xtask policies build` does, and finds their components.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace's `policies/` directory.
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
        .join("policies")
}

/// Ensures the target is installed and builds every example in release; returns the
/// directory holding the `.wasm` components.
fn build() -> Result<PathBuf, String> {
    let dir = policies_dir();
    // Installing an installed target is a quick no-op.
    match Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(format!("rustup target add wasm32-wasip2: {s}")),
        Err(e) => return Err(format!("running rustup: {e}")),
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = dir.join("target");
    let status = Command::new(cargo)
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the example policies: {status}"));
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

/// The bytes of example component `name` (e.g. "least_connections").
pub fn component(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(build) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
