//! Host side: running commands and installing the Debian packages the lab needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

/// Debian packages the lab uses on the host: the emulator, the guest userland (static
/// busybox, `ipvsadm`, `ip`, `tcpdump` and their libraries, `/etc/services`), and `depmod`.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "ipvsadm",
    "iproute2",
    "tcpdump",
    "netbase",
];

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Runs `cmd` with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", show(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; stderr is passed through.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", show(cmd)))?;
    if !out.status.success() {
        bail!("{} failed: {}", show(cmd), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `apt-get update`, at most once per process. Returns false if it had already run.
pub fn apt_update() -> Result<bool> {
    if APT_UPDATED.swap(true, Ordering::SeqCst) {
        return Ok(false);
    }
    eprintln!("lab: apt-get update");
    run(apt("apt-get").args(["update", "-qq"]))?;
    Ok(true)
}

pub fn apt(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}

/// Installs whichever of [`PACKAGES`] is missing; does nothing when all are present.
pub fn ensure_packages() -> Result<()> {
    let missing = missing_packages(PACKAGES)?;
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("lab: installing {}", missing.join(" "));
    apt_update()?;
    run(apt("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
    .context("installing the lab's host packages (this needs root)")?;
    let still = missing_packages(PACKAGES)?;
    if !still.is_empty() {
        bail!("packages still missing after install: {}", still.join(" "));
    }
    Ok(())
}

fn missing_packages(pkgs: &[&str]) -> Result<Vec<String>> {
    // dpkg-query exits 1 when a package is unknown; the listing is still complete.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(pkgs)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running dpkg-query (is this a Debian host?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(missing_from_status(pkgs, &text))
}

/// Packages of `pkgs` not reported as "install ok installed" by `dpkg-query -W`.
fn missing_from_status(pkgs: &[&str], status: &str) -> Vec<String> {
    pkgs.iter()
        .filter(|p| {
            !status.lines().any(|l| {
                l.split_once(' ')
                    .is_some_and(|(name, st)| name == **p && st.trim() == "install ok installed")
            })
        })
        .map(|p| p.to_string())
        .collect()
}

/// The first executable called `name` in the usual system directories.
pub fn find_program(name: &str) -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{name} not found on the host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_from_dpkg_status() {
        let status = "ipvsadm install ok installed\n\
                      kmod deinstall ok config-files\n\
                      cpio install ok installed\n";
        assert_eq!(
            missing_from_status(&["ipvsadm", "kmod", "tcpdump", "cpio"], status),
            ["kmod", "tcpdump"]
        );
    }
}
