//! `lab test` and `lab capture`: boot a throwaway guest, run, read the result off the console.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::console::Tally;
use crate::cpio::Manifest;
use crate::image::{self, GUEST_BIN_DIR, GUEST_LAB_DIR, GUEST_TEST_DIR};
use crate::init::{self, Mode};
use crate::kernel::{self, Kernel};
use crate::paths::Paths;
use crate::qemu::{self, Console, End, Flow, Vm};
use crate::{cargo, host, pcap, policies};

/// Options of every boot.
#[derive(Debug, Clone, clap::Args)]
pub struct VmOpts {
    /// Give up on the guest after this many seconds.
    #[arg(long, env = "LAB_TIMEOUT", default_value_t = 1800)]
    pub timeout: u64,
    /// Guest memory in MiB (default: sized from the initrd, at least 1024).
    #[arg(long, env = "LAB_MEMORY")]
    pub memory: Option<u64>,
}

/// What every guest gets: host packages, kernel, base archive, the project's binaries.
#[derive(Debug)]
pub struct Prepared {
    pub kernel: Kernel,
    pub base: PathBuf,
    pub bins: Vec<PathBuf>,
}

pub fn prepare(paths: &Paths) -> Result<Prepared> {
    host::ensure_packages()?;
    let kernel = kernel::prepare(paths)?;
    let base = image::base(paths, &kernel)?;
    let bins = cargo::build_bins(paths)?;
    Ok(Prepared { kernel, base, bins })
}

/// The per-run archive: `/init` for `mode`, the project's binaries, `tests`, and (for a
/// long-running node) this binary as the exec server.
pub fn run_manifest(
    prep: &Prepared,
    tests: &[PathBuf],
    mode: &Mode,
    exec_server: bool,
) -> Result<Manifest> {
    let mut m = Manifest::new();
    m.data("/init", init::script(mode), 0o755)?;
    for bin in &prep.bins {
        image::add_binary(&mut m, &format!("{GUEST_BIN_DIR}/{}", file_name(bin)?), bin)?;
    }
    for t in tests {
        image::add_binary(&mut m, &format!("{GUEST_TEST_DIR}/{}", file_name(t)?), t)?;
    }
    if exec_server {
        let me = std::env::current_exe().context("locating the xtask binary")?;
        image::add_binary(&mut m, &format!("{GUEST_LAB_DIR}/xtask"), &me)?;
    }
    Ok(m)
}

/// Where the guest finds the example policies `cargo xtask policies build` left on the host.
pub const GUEST_POLICY_DIR: &str = "/opt/ipvs/policies";

/// Ships every built example component (if any were built) to [`GUEST_POLICY_DIR`]; tests
/// that need one say how to build it when it is missing.
fn add_policies(m: &mut Manifest, paths: &Paths) -> Result<()> {
    let out = policies::out_dir(paths);
    let Ok(entries) = std::fs::read_dir(&out) else {
        return Ok(());
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_some_and(|e| e == "wasm") {
            m.file(
                &format!("{GUEST_POLICY_DIR}/{}", file_name(&path)?),
                &path,
                0o644,
            )?;
        }
    }
    Ok(())
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("no file name in {}", p.display()))
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// `cargo xtask lab test [FILTER] [-- ARGS]`: every e2e test executable, in one guest.
pub fn test(
    paths: &Paths,
    opts: &VmOpts,
    targets: &[String],
    filter: Option<String>,
    extra: Vec<String>,
) -> Result<()> {
    let started = Instant::now();
    let prep = prepare(paths)?;
    let tests = cargo::build_tests(paths, targets)?;
    if tests.is_empty() {
        bail!("cargo built no test executable for {}", cargo::E2E_PACKAGE);
    }
    let mut args: Vec<String> = filter.into_iter().chain(extra).collect();
    if !args.iter().any(|a| a.starts_with("--test-threads")) {
        // Tests make their own namespaces, but one emulated CPU gains nothing from threads.
        args.push("--test-threads=1".into());
    }
    let scratch = paths.scratch("test")?;
    let mut manifest = run_manifest(&prep, &tests, &Mode::Test { args }, false)?;
    add_policies(&mut manifest, paths)?;
    let initrd = scratch.dir.join("initrd.img");
    let size = image::assemble(&prep.base, &manifest, &initrd)?;
    let vm = Vm {
        kernel: prep.kernel.clone(),
        initrd,
        memory_mb: opts.memory.unwrap_or_else(|| image::memory_mb(size)),
        nic: None,
        console: Console::Pipe,
        extra: Vec::new(),
    };
    eprintln!(
        "lab: booting kernel {} ({} test executables, initrd {} MiB, {} MiB RAM, prepared in {:.1} s)",
        vm.kernel.version,
        tests.len(),
        mib(size),
        vm.memory_mb,
        started.elapsed().as_secs_f64()
    );
    let booted = Instant::now();
    let mut tally = Tally::default();
    let end = qemu::stream(&vm, Duration::from_secs(opts.timeout), |line| {
        println!("{line}");
        if tally.observe(line) {
            Flow::Finished
        } else {
            Flow::Continue
        }
    })?;
    let vm_secs = booted.elapsed().as_secs_f64();
    if tally.result.is_none() {
        match end {
            End::TimedOut => bail!("the VM timed out after {} s (--timeout)", opts.timeout),
            End::Exited(st) => bail!("qemu exited ({st}) before the guest printed a result"),
        }
    }
    println!("vm: {} passed, {} failed", tally.passed, tally.failed);
    match tally.verdict() {
        Ok(()) => {
            println!(
                "lab: {} tests passed in the VM ({} executables, {vm_secs:.1} s in the VM, {:.1} s in all)",
                tally.passed,
                tally.binaries,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => bail!(e),
    }
}

/// `cargo xtask lab capture -- CMD...`: runs CMD while recording all netlink traffic, then
/// prints one line per netlink message. Returns CMD's exit status.
pub fn capture(
    paths: &Paths,
    opts: &VmOpts,
    pcap_out: Option<PathBuf>,
    command: Vec<String>,
) -> Result<i32> {
    let prep = prepare(paths)?;
    let scratch = paths.scratch("capture")?;
    let manifest = run_manifest(&prep, &[], &Mode::Capture { command }, false)?;
    let initrd = scratch.dir.join("initrd.img");
    let size = image::assemble(&prep.base, &manifest, &initrd)?;
    let vm = Vm {
        kernel: prep.kernel.clone(),
        initrd,
        memory_mb: opts.memory.unwrap_or_else(|| image::memory_mb(size)),
        nic: None,
        console: Console::Pipe,
        extra: Vec::new(),
    };
    eprintln!(
        "lab: booting kernel {} for a netlink capture",
        vm.kernel.version
    );
    let mut in_dump = false;
    let mut dump = String::new();
    let mut status: Option<i32> = None;
    let mut done = false;
    let end = qemu::stream(&vm, Duration::from_secs(opts.timeout), |line| {
        if line == init::PCAP_BEGIN {
            in_dump = true;
        } else if line == init::PCAP_END {
            in_dump = false;
            done = true;
            return Flow::Finished;
        } else if in_dump {
            dump.push_str(line);
            dump.push('\n');
        } else if let Some(st) = line.strip_prefix(init::CAPTURE_STATUS) {
            status = st.trim().parse().ok();
        } else {
            eprintln!("{line}");
        }
        Flow::Continue
    })?;
    if !done {
        match end {
            End::TimedOut => bail!("the VM timed out after {} s (--timeout)", opts.timeout),
            End::Exited(st) => bail!("qemu exited ({st}) before the capture was printed"),
        }
    }
    let bytes = pcap::decode_hex(&dump).context("decoding the capture from the console")?;
    if let Some(out) = &pcap_out {
        std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("lab: capture written to {}", out.display());
    }
    let messages = pcap::messages(&pcap::parse(&bytes)?)?;
    for m in &messages {
        println!("{}", pcap::format(m));
    }
    let status = status.context("the guest did not report the command's exit status")?;
    eprintln!(
        "lab: {} netlink messages captured; command exited with status {status}",
        messages.len()
    );
    Ok(status)
}
