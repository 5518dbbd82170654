//! `cargo xtask bench`: ipvsadm and ipvsctl side by side on one lab VM's kernel, at several
//! table sizes, with a kernel-floor reference line (`bench/src/main.rs`).
//!
//! The guest half ([`guest`]) only runs and times; the host builds release binaries, boots
//! one VM, reads [`record`] lines off its console and renders [`report`] tables. Not part of
//! `cargo xtask test` or CI: it takes long under TCG and its figures are for the README.

pub mod guest;
pub mod input;
pub mod record;
pub mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image;
use crate::init::Mode;
use crate::lab::{self, Prepared};
use crate::paths::Paths;
use crate::qemu::{self, Console, End, Flow, Vm};
use crate::{cargo, host, kernel};
use input::Size;
use record::Record;
use report::Results;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Numbers of services, each with --dests real servers, measured in this order.
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,16000")]
    pub sizes: Vec<u32>,
    /// Real servers per service.
    #[arg(long, default_value_t = 4)]
    pub dests: u32,
    /// Runs of each measurement; the tables show the median.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// A last size with one real server per service (a kube-proxy-sized table); 0 for none.
    #[arg(long, default_value_t = 50_000)]
    pub services_only_size: u32,
    /// No-op applies in the leak check at every size (default: 100, fewer at large sizes).
    #[arg(long)]
    pub leak_applies: Option<u32>,
    /// Check the harness: sizes 200,800, one run each, no services-only size.
    #[arg(long)]
    pub quick: bool,
    /// Build ipvsctl without the policy engine (`--no-default-features`, no wasmtime).
    #[arg(long)]
    pub thin_client: bool,
    /// Give up after this many seconds (default: estimated from the sizes).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Guest memory in MiB (default: sized from the initrd and the largest table).
    #[arg(long)]
    pub memory: Option<u64>,
}

/// What the guest is asked to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sizes: Vec<Size>,
    pub repeat: u32,
    pub leak_applies: Option<u32>,
}

impl Plan {
    pub fn new(a: &BenchArgs) -> Result<Self> {
        let (services, repeat, only) = if a.quick {
            (vec![200, 800], 1, 0)
        } else {
            (a.sizes.clone(), a.repeat, a.services_only_size)
        };
        if repeat == 0 {
            bail!("--repeat must be at least 1");
        }
        if a.dests == 0 || services.contains(&0) {
            bail!("--sizes and --dests must be at least 1");
        }
        let mut sizes: Vec<Size> = services
            .iter()
            .map(|&services| Size {
                services,
                dests: a.dests,
            })
            .collect();
        if only > 0 {
            sizes.push(Size {
                services: only,
                dests: 1,
            });
        }
        Ok(Plan {
            sizes,
            repeat,
            leak_applies: a.leak_applies,
        })
    }

    /// The guest's command line (`xtask bench-guest ...`).
    pub fn guest_args(&self) -> Vec<String> {
        let mut args = vec!["bench-guest".to_string()];
        for s in &self.sizes {
            args.extend(["--size".to_string(), s.label()]);
        }
        args.extend(["--repeat".to_string(), self.repeat.to_string()]);
        if let Some(k) = self.leak_applies {
            args.extend(["--leak-applies".to_string(), k.to_string()]);
        }
        args
    }

    /// A generous deadline: ipvsadm restores about 1,000 rules a second under TCG and each
    /// size runs about 15 table-sized operations per repeat, plus the leak check.
    pub fn timeout_secs(&self) -> u64 {
        let per_line_ms: u64 = 5;
        let sizes: u64 = self
            .sizes
            .iter()
            .map(|s| {
                let leak = self
                    .leak_applies
                    .unwrap_or_else(|| guest::default_leak_applies(*s));
                s.lines() * per_line_ms * (15 * u64::from(self.repeat) + u64::from(leak)) / 1000
            })
            .sum();
        600 + sizes
    }

    /// Guest RAM: the initrd's share plus room for the agent and tools at the largest table.
    pub fn memory_mb(&self, initrd_bytes: u64) -> u64 {
        let lines = self.sizes.iter().map(|s| s.lines()).max().unwrap_or(0);
        // About 8 kB per rule across the agent, ipvsctl and the kernel, measured generously.
        (image::memory_mb(initrd_bytes) + lines * 8 / 1024).div_ceil(128) * 128
    }
}

pub fn run(paths: &Paths, args: &BenchArgs) -> Result<()> {
    let plan = Plan::new(args)?;
    let started = Instant::now();
    host::ensure_packages()?;
    let kernel = kernel::prepare(paths)?;
    let base = image::base(paths, &kernel)?;
    let bins = cargo::build_release_bench(paths, args.thin_client)?;
    let ipvsctl = bins
        .iter()
        .find(|b| b.file_name().is_some_and(|n| n == "ipvsctl"))
        .context("cargo built no ipvsctl")?;
    let client = format!(
        "ipvsctl release build, {} ({:.1} MB)",
        if args.thin_client {
            "--no-default-features: no policy engine, no wasmtime"
        } else {
            "default features: with `policy test` (wasmtime), as `cargo build --release` makes it"
        },
        file_mb(ipvsctl)
    );
    let prep = Prepared { kernel, base, bins };
    let scratch = paths.scratch("bench")?;
    let mode = Mode::Bench {
        args: plan.guest_args(),
    };
    let manifest = lab::run_manifest(&prep, &[], &mode, true)?;
    let initrd = scratch.dir.join("initrd.img");
    let size = image::assemble(&prep.base, &manifest, &initrd)?;
    let vm = Vm {
        kernel: prep.kernel.clone(),
        initrd,
        memory_mb: args.memory.unwrap_or_else(|| plan.memory_mb(size)),
        nic: None,
        console: Console::Pipe,
        extra: Vec::new(),
    };
    let timeout = args.timeout.unwrap_or_else(|| plan.timeout_secs());
    let labels: Vec<String> = plan.sizes.iter().map(|s| s.label()).collect();
    eprintln!(
        "bench: booting kernel {} ({} MiB RAM, timeout {timeout} s); sizes {}, {} run(s) each",
        vm.kernel.version,
        vm.memory_mb,
        labels.join(", "),
        plan.repeat
    );
    let booted = Instant::now();
    let mut results = Results::default();
    let mut bad_line = None;
    let end = qemu::stream(&vm, Duration::from_secs(timeout), |line| {
        match Record::parse(line) {
            None => eprintln!("{line}"),
            Some(Err(e)) => {
                bad_line.get_or_insert(e);
            }
            Some(Ok(r)) => {
                progress(&r, booted);
                let last = matches!(r, Record::Done | Record::Error(_));
                results.add(r);
                if last {
                    return Flow::Finished;
                }
            }
        }
        Flow::Continue
    })?;
    if let Some(e) = bad_line {
        bail!("the guest printed a {e}");
    }
    if !results.done {
        let ended = match end {
            End::TimedOut => format!("the VM timed out after {timeout} s (--timeout)"),
            End::Exited(st) => format!("qemu exited ({st}) before `bench: done`"),
        };
        bail!(unfinished(&results, &ended));
    }
    println!("{}", machine(&results, &client, &plan));
    println!("{}", report::render(&results));
    eprintln!(
        "bench: done in {:.0} s ({:.0} s in the VM)",
        started.elapsed().as_secs_f64(),
        booted.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Why a run without `bench: done` failed: the guest's own error if it printed one, else how
/// the VM ended; and the operation it was at.
fn unfinished(res: &Results, ended: &str) -> String {
    let at = match &res.last_start {
        Some((op, size)) => format!("last seen: {op} at {}", size.label()),
        None => "no measurement had started".to_string(),
    };
    match res.errors.first() {
        Some(e) => format!("the guest failed: {e} ({at})"),
        None => format!("{ended} ({at})"),
    }
}

fn progress(r: &Record, booted: Instant) {
    let t = booted.elapsed().as_secs_f64();
    match r {
        Record::Start { op, size } => eprintln!("bench: [{t:6.0} s] {} {op}", size.label()),
        Record::Time {
            op,
            size,
            tool,
            secs,
        } => eprintln!("bench:            {} {op} {tool} {secs:.3} s", size.label()),
        Record::Error(e) => eprintln!("bench: guest error: {e}"),
        _ => {}
    }
}

fn file_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// The machine and build the figures belong to, for the README.
fn machine(res: &Results, client: &str, plan: &Plan) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim())
        })
        .unwrap_or("unknown CPU");
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = host::output(std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .unwrap_or_default();
    let qemu = host::output(std::process::Command::new("qemu-system-x86_64").arg("--version"))
        .unwrap_or_default();
    let info = |k: &str| {
        res.info
            .iter()
            .find(|(key, _)| key == k)
            .map_or("?", |(_, v)| v.as_str())
    };
    let sizes: Vec<String> = plan.sizes.iter().map(|s| s.label()).collect();
    format!(
        "## ipvsctl vs ipvsadm, {}\n\n\
         - host: {cpu}, {nproc} CPUs; {}\n\
         - guest: kernel {} under TCG, {} CPU, {} RAM\n\
         - {client}; ipvs-agent release build on its unix socket\n\
         - sizes {}, {} run(s) of each measurement (median shown); floor: ipvs-floor, the \
         agent's netlink handle alone: pipelined writes, pipelined dumps\n\
         - ratio adm/ctl > 1: ipvsctl is faster\n",
        date.trim(),
        qemu.lines().next().unwrap_or("qemu").trim(),
        info("guest_kernel"),
        info("guest_cpus"),
        info("guest_memory"),
        sizes.join(", "),
        plan.repeat,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn plan(args: &[&str]) -> Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))?;
        Plan::new(&cli.bench)
    }

    #[test]
    fn default_plan_is_the_issue_s() -> Result<()> {
        let p = plan(&[])?;
        let labels: Vec<String> = p.sizes.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["1000x4", "4000x4", "16000x4", "50000x1"]);
        assert_eq!(p.repeat, 3);
        Ok(())
    }

    #[test]
    fn quick_plan_checks_the_harness() -> Result<()> {
        let p = plan(&["--quick", "--sizes", "5000", "--repeat", "7"])?;
        assert_eq!(
            p.guest_args(),
            [
                "bench-guest",
                "--size",
                "200x4",
                "--size",
                "800x4",
                "--repeat",
                "1"
            ]
        );
        Ok(())
    }

    #[test]
    fn explicit_plan() -> Result<()> {
        let p = plan(&[
            "--sizes",
            "1000,4000",
            "--services-only-size",
            "0",
            "--leak-applies",
            "7",
            "--dests",
            "2",
        ])?;
        assert_eq!(
            p.guest_args(),
            [
                "bench-guest",
                "--size",
                "1000x2",
                "--size",
                "4000x2",
                "--repeat",
                "3",
                "--leak-applies",
                "7"
            ]
        );
        Ok(())
    }

    #[test]
    fn an_unfinished_run_says_where_it_stopped() {
        let mut res = Results::default();
        let ended = "the VM timed out after 60 s (--timeout)";
        assert_eq!(
            unfinished(&res, ended),
            "the VM timed out after 60 s (--timeout) (no measurement had started)"
        );
        for line in [
            "bench: start op=restore size=200x4",
            "bench: op=restore size=200x4 tool=ipvsadm secs=1.0",
            "bench: start op=list size=800x4",
        ] {
            if let Some(Ok(r)) = Record::parse(line) {
                res.add(r);
            }
        }
        assert_eq!(
            unfinished(&res, ended),
            "the VM timed out after 60 s (--timeout) (last seen: list at 800x4)"
        );
        res.add(Record::Error(
            "\"ipvsadm\" \"-Ln\" failed (exit status: 1)".into(),
        ));
        assert_eq!(
            unfinished(&res, ended),
            "the guest failed: \"ipvsadm\" \"-Ln\" failed (exit status: 1) (last seen: list at 800x4)"
        );
    }

    #[test]
    fn bad_plans_are_refused() {
        for args in [
            &["--repeat", "0"][..],
            &["--sizes", "0,10"][..],
            &["--dests", "0"][..],
        ] {
            assert!(plan(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn timeout_and_memory_grow_with_the_table() -> Result<()> {
        let quick = plan(&["--quick"])?;
        let full = plan(&[])?;
        assert!(quick.timeout_secs() < 3600, "{}", quick.timeout_secs());
        assert!(full.timeout_secs() > 4 * 3600, "{}", full.timeout_secs());
        assert_eq!(quick.memory_mb(100 << 20), 1152);
        // 50,000 x 2 rules at the largest size.
        assert_eq!(full.memory_mb(100 << 20), 1920);
        Ok(())
    }
}
