//! The guest half of `cargo xtask bench`: runs ipvsadm, ipvsctl (against an agent on its unix
//! socket) and the kernel-floor probe on the guest's kernel, and prints every run as a
//! [`Record`] line on the console. All the thinking is on the host; this only times.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::input::{self, Size};
use crate::bench::record::Record;
use crate::bench::report::{
    FLOOR, FLOOR_DUMP, FLOOR_RESTORE, IPVSADM, IPVSCTL, SMALL, SMALL_CALLS,
};
use crate::image::GUEST_BIN_DIR;

/// The agent's socket; ipvsctl's default address, named explicitly all the same.
const SOCKET: &str = "/run/ipvs-agent/agent.sock";
const WORK: &str = "/tmp/bench";
/// ipvsctl calls in the small-call measurement.
pub const SMALL_CALL_COUNT: u32 = 20;

#[derive(Debug, Clone, clap::Args)]
pub struct GuestArgs {
    /// A table size, `SERVICESxDESTS`; repeatable, measured in order.
    #[arg(long = "size", value_parser = parse_size, required = true)]
    pub sizes: Vec<Size>,
    /// Runs of each measurement.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// No-op applies in the leak check (default: fewer at larger sizes).
    #[arg(long)]
    pub leak_applies: Option<u32>,
}

fn parse_size(s: &str) -> Result<Size, String> {
    Size::parse(s).ok_or_else(|| format!("expected SERVICESxDESTS, got {s:?}"))
}

/// No-op applies for the leak check at `size`: 100 at small sizes, down to 5 at large ones,
/// so that the check costs about as much as 40,000 services' worth of applies.
pub fn default_leak_applies(size: Size) -> u32 {
    (40_000 / size.services.max(1)).clamp(5, 100)
}

/// VmRSS in kB from a `/proc/<pid>/status` text.
pub fn vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn emit(r: &Record) {
    println!("{}", r.line());
}

pub fn run(args: &GuestArgs) -> Result<()> {
    let result = measure(args);
    match &result {
        Ok(()) => emit(&Record::Done),
        Err(e) => emit(&Record::Error(format!("{e:#}").replace('\n', " "))),
    }
    result
}

fn measure(args: &GuestArgs) -> Result<()> {
    fs::create_dir_all(WORK)?;
    info(
        "guest_kernel",
        fs::read_to_string("/proc/sys/kernel/osrelease")?.trim(),
    );
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    info("guest_cpus", &cpus.to_string());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(total) = meminfo.lines().find(|l| l.starts_with("MemTotal:")) {
        info("guest_memory", total["MemTotal:".len()..].trim());
    }
    let g = Guest::new();
    g.small_calls(args.repeat)?;
    for size in &args.sizes {
        let leak = args
            .leak_applies
            .unwrap_or_else(|| default_leak_applies(*size));
        g.size(*size, args.repeat, leak)?;
    }
    Ok(())
}

fn info(key: &str, value: &str) {
    emit(&Record::Info {
        key: key.into(),
        value: value.into(),
    });
}

struct Guest {
    ipvsctl: PathBuf,
    agent: PathBuf,
    floor: PathBuf,
}

/// A running agent; killed when dropped so an error never leaves it behind for the next size.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Agent {
    fn rss_kb(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.0.id());
        let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        vm_rss_kb(&text).with_context(|| format!("no VmRSS in {path}"))
    }
}

fn start(op: &str, size: Size) {
    emit(&Record::Start {
        op: op.into(),
        size,
    });
}

fn time(op: &str, size: Size, tool: &str, secs: f64) {
    emit(&Record::Time {
        op: op.into(),
        size,
        tool: tool.into(),
        secs,
    });
}

impl Guest {
    fn new() -> Self {
        let bin = Path::new(GUEST_BIN_DIR);
        Guest {
            ipvsctl: bin.join("ipvsctl"),
            agent: bin.join("ipvs-agent"),
            floor: bin.join("ipvs-floor"),
        }
    }

    /// A fresh agent with an empty state directory, waited for until ipvsctl reaches it.
    fn agent(&self, size: Size) -> Result<Agent> {
        let state = Path::new(WORK).join(format!("agent-{}", size.label()));
        let _ = fs::remove_dir_all(&state);
        let child = Command::new(&self.agent)
            .arg("--unix")
            .arg(SOCKET)
            .arg("--state-dir")
            .arg(&state)
            // No drift check reading the whole table in the middle of a measurement.
            .args(["--drift-interval", "86400", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting ipvs-agent")?;
        let mut agent = Agent(child);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(st) = agent.0.try_wait()? {
                bail!("ipvs-agent exited ({st}) before it served");
            }
            let ok = self
                .ctl()
                .arg("-ln")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(agent);
            }
            if Instant::now() > deadline {
                bail!("ipvs-agent did not answer on {SOCKET} within 300 s");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn ctl(&self) -> Command {
        let mut c = Command::new(&self.ipvsctl);
        c.env("IPVSCTL_AGENT", format!("unix:{SOCKET}"));
        c
    }

    fn flush(&self) -> Result<()> {
        timed(Command::new("ipvsadm").arg("-C"), None).map(|_| ())
    }

    fn floor(&self, args: &[&str]) -> Result<f64> {
        let out = Command::new(&self.floor)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running ipvs-floor")?;
        if !out.status.success() {
            bail!(
                "ipvs-floor {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("secs="))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("ipvs-floor printed no secs=: {text:?}"))
    }

    fn small_calls(&self, repeat: u32) -> Result<()> {
        let _agent = self.agent(SMALL)?;
        self.flush()?;
        let file = Path::new(WORK).join("small.rules");
        fs::write(&file, input::SMALL_TABLE)?;
        timed(Command::new("ipvsadm").arg("-R"), Some(&file))?;
        start(SMALL_CALLS, SMALL);
        for _ in 0..repeat {
            for tool in [IPVSADM, IPVSCTL] {
                let started = Instant::now();
                for _ in 0..SMALL_CALL_COUNT {
                    let mut c = if tool == IPVSADM {
                        Command::new("ipvsadm")
                    } else {
                        self.ctl()
                    };
                    timed(c.arg("-ln"), None)?;
                }
                time(SMALL_CALLS, SMALL, tool, started.elapsed().as_secs_f64());
            }
        }
        self.flush()
    }

    fn size(&self, size: Size, repeat: u32, leak_applies: u32) -> Result<()> {
        let agent = self.agent(size)?;
        let dir = Path::new(WORK);
        let rules = dir.join(format!("{}.rules", size.label()));
        let changed = dir.join(format!("{}-changed.rules", size.label()));
        let export = dir.join(format!("{}-export.yaml", size.label()));
        fs::write(&rules, input::rules(size, false))?;
        fs::write(&changed, input::rules(size, true))?;
        let adm = || Command::new("ipvsadm");

        start("restore", size);
        for r in 0..repeat {
            self.flush()?;
            time(
                "restore",
                size,
                IPVSADM,
                timed(adm().arg("-R"), Some(&rules))?,
            );
            self.flush()?;
            time(
                "restore",
                size,
                IPVSCTL,
                timed(self.ctl().arg("-R"), Some(&rules))?,
            );
            if r == 0 {
                self.check_lines(size)?;
            }
            self.flush()?;
            let rules_arg = rules.to_string_lossy();
            time(
                FLOOR_RESTORE,
                size,
                FLOOR,
                self.floor(&["restore", &rules_arg])?,
            );
        }

        for (op, args) in [
            ("save", &["-Sn"][..]),
            ("list", &["-Ln"][..]),
            ("list-stats", &["-Ln", "--stats"][..]),
        ] {
            start(op, size);
            for _ in 0..repeat {
                time(op, size, IPVSADM, timed(adm().args(args), None)?);
                time(op, size, IPVSCTL, timed(self.ctl().args(args), None)?);
            }
        }
        start(FLOOR_DUMP, size);
        for _ in 0..repeat {
            time(FLOOR_DUMP, size, FLOOR, self.floor(&["dump"])?);
        }

        start("restore-same", size);
        for _ in 0..repeat {
            let t = timed(self.ctl().args(["-R", "--replace"]), Some(&rules))?;
            time("restore-same", size, IPVSCTL, t);
        }

        start("one-weight", size);
        for _ in 0..repeat {
            let t = timed(adm().arg("-C"), None)? + timed(adm().arg("-R"), Some(&changed))?;
            time("one-weight", size, IPVSADM, t);
            // Back to the original table, untimed, so ipvsctl has one weight to change too.
            timed(self.ctl().args(["-R", "--replace"]), Some(&rules))?;
            let t = timed(self.ctl().args(["-R", "--replace"]), Some(&changed))?;
            time("one-weight", size, IPVSCTL, t);
            timed(self.ctl().args(["-R", "--replace"]), Some(&rules))?;
        }

        start("export", size);
        for _ in 0..repeat {
            let t = timed(self.ctl().arg("export").arg("-f").arg(&export), None)?;
            time("export", size, IPVSCTL, t);
        }
        start("apply-fresh", size);
        for _ in 0..repeat {
            self.flush()?;
            let t = timed(self.ctl().arg("apply").arg("-f").arg(&export), None)?;
            time("apply-fresh", size, IPVSCTL, t);
        }
        self.check_lines(size)?;
        start("apply-same", size);
        for _ in 0..repeat {
            let t = timed(self.ctl().arg("apply").arg("-f").arg(&export), None)?;
            time("apply-same", size, IPVSCTL, t);
        }
        emit(&Record::Rss {
            size,
            kb: agent.rss_kb()?,
        });

        start("leak", size);
        let before_kb = agent.rss_kb()?;
        for _ in 0..leak_applies {
            timed(self.ctl().arg("apply").arg("-f").arg(&export), None)?;
        }
        emit(&Record::Leak {
            size,
            applies: leak_applies,
            before_kb,
            after_kb: agent.rss_kb()?,
        });
        drop(agent);
        self.flush()
    }

    /// The table holds what the input declares: `ipvsadm -Sn` prints one line per input line.
    fn check_lines(&self, size: Size) -> Result<()> {
        let out = Command::new("ipvsadm")
            .arg("-Sn")
            .output()
            .context("running ipvsadm -Sn")?;
        let lines = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
        if lines != size.lines() {
            bail!(
                "after restoring {} the table has {lines} rules, not {}",
                size.label(),
                size.lines()
            );
        }
        Ok(())
    }
}

/// Runs `cmd` (stdin from `input`, stdout discarded) and returns its wall time; fails with its
/// stderr when it fails.
fn timed(cmd: &mut Command, input: Option<&Path>) -> Result<f64> {
    let stdin = match input {
        Some(p) => Stdio::from(File::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => Stdio::null(),
    };
    cmd.stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_proc_status() {
        let status = "Name:\tipvs-agent\nVmPeak:\t  123456 kB\nVmRSS:\t   26112 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kb(status), Some(26112));
        assert_eq!(vm_rss_kb("Name:\tx\n"), None);
        assert_eq!(vm_rss_kb("VmRSS:\tlots\n"), None);
    }

    #[test]
    fn leak_check_shrinks_with_size() {
        let s = |services| Size { services, dests: 4 };
        let got: Vec<u32> = [200, 800, 1000, 4000, 16_000, 50_000]
            .map(|n| default_leak_applies(s(n)))
            .to_vec();
        assert_eq!(got, [100, 50, 40, 10, 5, 5]);
    }
}
