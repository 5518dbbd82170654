//! WASM policies on the real kernel: the least-connections example moves weight away from a
//! backend that holds open connections, and a failing policy is quarantined while the kernel
//! keeps the last good weights. Everything goes through `ipvsctl policy`; the kernel's view is
//! read with the real `ipvsadm`.
//!
//! The components come from `cargo xtask policies build`; `cargo xtask lab test` ships them to
//! `/opt/ipvs/policies`.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ipvs_e2e::component::component;
use ipvs_e2e::{Agent, Backend, Netns, ipvsadm, stdout, wait_for};

const VIP: &str = "192.168.100.1:80";
const B1: &str = "127.0.0.1:8081";
const B2: &str = "127.0.0.1:8082";
const POLICY_DIR: &str = "/opt/ipvs/policies";

fn example(name: &str) -> Result<String> {
    let path = Path::new(POLICY_DIR).join(format!("{name}.wasm"));
    ensure!(
        path.exists(),
        "{} is missing: run `cargo xtask policies build` on the host before `cargo xtask lab test`",
        path.display()
    );
    Ok(path.to_string_lossy().into_owned())
}

/// The weight of real server `rs` in `ipvsadm -Ln`.
fn kernel_weight(rs: &str) -> Result<Option<u32>> {
    let out = ipvsadm(&["-Ln", "-t", VIP])?;
    ensure!(out.status.success(), "ipvsadm -Ln failed: {out:?}");
    Ok(stdout(&out).lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        match cols.as_slice() {
            ["->", addr, _fwd, weight, ..] if *addr == rs => weight.parse().ok(),
            _ => None,
        }
    }))
}

fn weights() -> Result<(Option<u32>, Option<u32>)> {
    Ok((kernel_weight(B1)?, kernel_weight(B2)?))
}

/// The seed service, with backend 1 holding `n` open connections and backend 2 none: backend 2
/// is quiesced while they are opened, then given its weight back.
fn seed_with_busy_backend(agent: &Agent, n: usize) -> Result<Vec<TcpStream>> {
    agent.ipvsctl_ok(&["link", "add", "dummy1", "type", "dummy"])?;
    agent.ipvsctl_ok(&["addr", "add", "192.168.100.1/32", "dev", "dummy1"])?;
    agent.ipvsctl_ok(&["link", "set", "dummy1", "up"])?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "rr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B2, "-m", "-w", "0"])?;
    let vip: SocketAddr = VIP.parse()?;
    // Connected and silent: busybox httpd waits for a request, so each stays established.
    let held = (0..n)
        .map(|_| TcpStream::connect_timeout(&vip, Duration::from_secs(5)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("connecting through the VIP")?;
    agent.ipvsctl_ok(&["-e", "-t", VIP, "-r", B2, "-m", "-w", "1"])?;
    let listing = stdout(&ipvsadm(&["-Ln", "-t", VIP])?);
    let active = |rs: &str| {
        listing.lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.as_slice() {
                ["->", addr, _, _, active, ..] if *addr == rs => active.parse::<usize>().ok(),
                _ => None,
            }
        })
    };
    ensure!(
        active(B1) == Some(n) && active(B2) == Some(0),
        "backend 1 should hold all {n} connections:\n{listing}"
    );
    Ok(held)
}

#[test]
fn least_connections_steers_and_a_failing_policy_is_quarantined() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("policy-state")?;
    // The emulated CPU is slow: a generous deadline, so only the policy's own failures count.
    let agent = Agent::start_with(&["--state-dir", &state, "--policy-deadline-ms", "5000"])?;
    let _b1 = Backend::start(B1.parse()?, "one\n")?;
    let _b2 = Backend::start(B2.parse()?, "two\n")?;
    let lc = example("least_connections")?;
    let hash = agent
        .ipvsctl_ok(&["policy", "add", &lc, "--name", "lc"])?
        .trim()
        .to_owned();
    ensure!(hash.len() == 64, "policy add printed {hash:?}");
    let listed = agent.ipvsctl_ok(&["policy", "ls"])?;
    ensure!(
        listed
            .lines()
            .any(|l| l.starts_with(&hash) && l.ends_with("  lc")),
        "policy ls: {listed}"
    );
    // The component is kept by hash in the state directory.
    ensure!(
        Path::new(&state)
            .join(format!("policies/{hash}.wasm"))
            .exists()
    );

    // After the upload: compiling takes the emulated CPU longer than httpd keeps a silent
    // connection open.
    let _held = seed_with_busy_backend(&agent, 10)?;
    assert_eq!(weights()?, (Some(1), Some(1)));

    let id = agent
        .ipvsctl_ok(&["policy", "attach", &hash, "-t", VIP, "--interval", "500ms"])?
        .trim()
        .to_owned();
    // Loads 10 × 256 and 0: backend 1 gets 100 × 1 / 2561 → at least 1, backend 2 gets 100.
    let steered = wait_for(Duration::from_secs(20), || {
        let w = weights()?;
        Ok((w == (Some(1), Some(100))).then_some(w))
    })
    .with_context(|| format!("weights: {:?}\nagent log:\n{}", weights(), agent.log()))?;
    assert_eq!(steered, (Some(1), Some(100)));
    let status = agent.ipvsctl_ok(&["-o", "json", "policy", "status", &id])?;
    ensure!(
        status.contains("\"quarantined\": false")
            && status.contains("\"consecutive_failures\": 0")
            && status.contains("least-connections over 2 servers"),
        "status: {status}"
    );
    let refused = agent.ipvsctl(&["policy", "rm", &hash])?;
    assert_eq!(refused.status.code(), Some(255));
    agent.ipvsctl_ok(&["policy", "detach", &id])?;

    // The same component with a parameter it refuses fails every evaluation.
    let bad = agent
        .ipvsctl_ok(&[
            "policy",
            "attach",
            &hash,
            "-t",
            VIP,
            "--interval",
            "200ms",
            "--param",
            "max-weight=0",
            "--quarantine-after",
            "3",
        ])?
        .trim()
        .to_owned();
    let quarantined = wait_for(Duration::from_secs(20), || {
        let s = agent.ipvsctl_ok(&["-o", "json", "policy", "status", &bad])?;
        Ok(s.contains("\"quarantined\": true").then_some(s))
    })?;
    ensure!(
        quarantined.contains("\"consecutive_failures\": 3")
            && quarantined.contains("\"evaluations\": 3")
            && quarantined.contains("parameter max-weight: 0 is not in 1..=65535"),
        "status: {quarantined}"
    );
    // Stopped: no further evaluations, and the kernel keeps the last good weights.
    std::thread::sleep(Duration::from_millis(800));
    let later = agent.ipvsctl_ok(&["-o", "json", "policy", "status", &bad])?;
    ensure!(later.contains("\"evaluations\": 3"), "status: {later}");
    assert_eq!(weights()?, (Some(1), Some(100)));
    let eval = agent.ipvsctl(&["policy", "eval", &bad])?;
    assert_eq!(eval.status.code(), Some(255));

    agent.ipvsctl_ok(&["policy", "detach", &bad])?;
    agent.ipvsctl_ok(&["policy", "rm", &hash])?;
    ensure!(
        !Path::new(&state)
            .join(format!("policies/{hash}.wasm"))
            .exists()
    );
    Ok(())
}

fn tempdir(name: &str) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("ipvs-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}

/// A component of the policy world whose `evaluate` traps.
fn trapping_component() -> Result<Vec<u8>> {
    let core = r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "evaluate") (param i32) (result i32)
    unreachable))"#;
    component(core)
}

/// A component of the policy world whose `evaluate` answers: switch to `scheduler`.
fn scheduler_component(scheduler: &str) -> Result<Vec<u8>> {
    // result<decision, string> at RET: ok, no weights, some(scheduler), no state, a reason.
    const RET: u32 = 1024;
    const NAME: u32 = 2048;
    const REASON: u32 = 2048 + 64;
    let reason = format!("switch to {scheduler}");
    let mut ret = [0u8; 44];
    for (off, v) in [
        (12, 1),
        (16, NAME),
        (20, u32::try_from(scheduler.len())?),
        (36, REASON),
        (40, u32::try_from(reason.len())?),
    ] {
        ret[off..off + 4].copy_from_slice(&u32::to_le_bytes(v));
    }
    let escape = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("\\{b:02x}")).collect() };
    let core = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "evaluate") (param i32) (result i32)
    (i32.const {RET}))
  (data (i32.const {RET}) "{}")
  (data (i32.const {NAME}) "{}")
  (data (i32.const {REASON}) "{}"))"#,
        escape(&ret),
        escape(scheduler.as_bytes()),
        escape(reason.as_bytes())
    );
    component(&core)
}

#[test]
fn a_trapping_policy_is_quarantined_and_the_kernel_keeps_its_weights() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("policy-trap")?;
    let agent = Agent::start_with(&["--state-dir", &state, "--policy-deadline-ms", "5000"])?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "wrr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m", "-w", "3"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B2, "-m", "-w", "5"])?;
    let file = Path::new(&state).join("trap.wasm");
    std::fs::write(&file, trapping_component()?)?;
    let file = file.to_string_lossy().into_owned();
    let hash = agent
        .ipvsctl_ok(&["policy", "add", &file])?
        .trim()
        .to_owned();
    let id = agent
        .ipvsctl_ok(&[
            "policy",
            "attach",
            &hash,
            "-t",
            VIP,
            "--interval",
            "200ms",
            "--quarantine-after",
            "2",
        ])?
        .trim()
        .to_owned();
    let status = wait_for(Duration::from_secs(20), || {
        let s = agent.ipvsctl_ok(&["-o", "json", "policy", "status", &id])?;
        Ok(s.contains("\"quarantined\": true").then_some(s))
    })?;
    ensure!(
        status.contains("\"kind\": \"trap\"")
            && status.contains("\"consecutive_failures\": 2")
            && status.contains("\"last_decision\": null"),
        "status: {status}"
    );
    assert_eq!(weights()?, (Some(3), Some(5)));
    Ok(())
}

/// A running `ipvsctl policy events`, its stdout read line by line as it comes.
struct Watch {
    child: ipvs_e2e::ChildGuard,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line so far, for failure messages.
    all: Vec<String>,
}

impl Watch {
    fn start(agent: &Agent, args: &[&str]) -> Result<Self> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(ipvs_e2e::bin_dir().join("ipvsctl"))
            .args(args)
            .env("IPVSCTL_AGENT", agent.address())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("spawn ipvsctl policy events")?;
        let out = child.stdout.take().context("events stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Watch {
            child: ipvs_e2e::ChildGuard(child),
            lines,
            all: Vec::new(),
        })
    }

    /// The next `n` lines that `wanted` accepts, waiting up to `timeout`; the lines in between
    /// are passed over.
    fn take(
        &mut self,
        n: usize,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).with_context(|| {
                format!(
                    "{} of {n} wanted event lines within {timeout:?}; all lines:\n{}",
                    got.len(),
                    self.all.join("\n")
                )
            })?;
            self.all.push(line.clone());
            if wanted(&line) {
                got.push(line);
            }
        }
        Ok(got)
    }

    /// Lines that arrive within `wait`, without blocking past it.
    fn drain(&mut self, wait: Duration) -> Vec<String> {
        std::thread::sleep(wait);
        let mut out = Vec::new();
        while let Ok(l) = self.lines.try_recv() {
            self.all.push(l.clone());
            out.push(l);
        }
        out
    }

    /// Ends the watcher: it runs until interrupted, so it must still be running.
    fn stop(mut self) -> Result<()> {
        ensure!(
            self.child.0.try_wait()?.is_none(),
            "ipvsctl policy events ended by itself; lines:\n{}",
            self.all.join("\n")
        );
        self.child.0.kill()?;
        self.child.0.wait()?;
        Ok(())
    }
}

/// A JSON event line without the fields that differ on every run (time, duration, fuel),
/// after checking that they are there and well formed.
fn stable_json(line: &str) -> Result<serde_json::Value> {
    let mut v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
    let result = v
        .get_mut("result")
        .and_then(|r| r.as_object_mut())
        .with_context(|| format!("no result: {line}"))?;
    let time = result.remove("time");
    let duration = result.remove("duration");
    let fuel = result.remove("fuel_used");
    ensure!(
        time.as_ref()
            .and_then(|t| t.as_str())
            .and_then(|t| t.split_once('.'))
            .is_some_and(|(s, ms)| s.parse::<u64>().is_ok_and(|s| s > 1_600_000_000)
                && ms.len() == 3
                && ms.parse::<u16>().is_ok()),
        "time: {line}"
    );
    ensure!(
        duration
            .as_ref()
            .and_then(|d| d.as_str())
            .is_some_and(|d| d.ends_with('s')),
        "duration: {line}"
    );
    ensure!(fuel.as_ref().is_some_and(|f| f.is_u64()), "fuel: {line}");
    Ok(v)
}

fn attachment_of(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(v.get("attachment")?.as_str()?.to_owned())
}

#[test]
fn events_stream_decisions_failures_and_quarantine() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("policy-events")?;
    let agent = Agent::start_with(&["--state-dir", &state, "--policy-deadline-ms", "5000"])?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "wrr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m", "-w", "3"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B2, "-m", "-w", "5"])?;
    let lc = example("least_connections")?;
    let hash = agent
        .ipvsctl_ok(&["policy", "add", &lc, "--name", "lc"])?
        .trim()
        .to_owned();
    let mut text = Watch::start(&agent, &["policy", "events"])?;
    let mut json = Watch::start(&agent, &["-o", "json", "policy", "events"])?;
    let wait = Duration::from_secs(30);
    let attach = |extra: &[&str]| -> Result<String> {
        let mut args = vec!["policy", "attach", &hash, "-t", VIP];
        args.extend_from_slice(extra);
        Ok(agent.ipvsctl_ok(&args)?.trim().to_owned())
    };

    // The policy sees the real servers in the kernel's order, the newest first, and so do the
    // decisions.
    //
    // A dry run first: both watchers print its events once they are subscribed, so nothing
    // the enforcing attachment does later can be missed.
    let probe = attach(&["--interval", "100ms", "--dry-run"])?;
    let dry = format!(
        "{probe} TCP {VIP} {B2} 5->100, {B1} 3->100: least-connections over 2 servers, \
         lowest load 0"
    );
    let first = text.take(1, wait, |l| l.starts_with(&format!("{probe} ")))?;
    assert_eq!(first, [dry]);
    json.take(1, wait, |l| {
        attachment_of(l).as_deref() == Some(probe.as_str())
    })?;
    agent.ipvsctl_ok(&["policy", "detach", &probe])?;
    assert_eq!(weights()?, (Some(3), Some(5)), "a dry run writes nothing");

    // Enforcing: the first evaluation writes both weights, the next finds nothing to change.
    let id = attach(&["--interval", "200ms"])?;
    let lines = text.take(2, wait, |l| l.starts_with(&format!("{id} ")))?;
    assert_eq!(
        lines,
        [
            format!(
                "{id} TCP {VIP} {B2} 5->100, {B1} 3->100 (applied): least-connections over 2 \
                 servers, lowest load 0"
            ),
            format!("{id} TCP {VIP} no change: least-connections over 2 servers, lowest load 0"),
        ]
    );
    let lines = json.take(2, wait, |l| {
        attachment_of(l).as_deref() == Some(id.as_str())
    })?;
    let decision = |weights: serde_json::Value, applied: bool| {
        serde_json::json!({
            "attachment": id,
            "quarantined": false,
            "missed": 0,
            "result": {"decision": {
                "service": format!("TCP {VIP}"),
                "weights": weights,
                "scheduler": null,
                "reason": "least-connections over 2 servers, lowest load 0",
                "applied": applied,
            }},
        })
    };
    assert_eq!(
        stable_json(&lines[0])?,
        decision(
            serde_json::json!([
                {"server": B2, "from": 5, "to": 100},
                {"server": B1, "from": 3, "to": 100},
            ]),
            true
        )
    );
    assert_eq!(
        stable_json(&lines[1])?,
        decision(serde_json::json!([]), false)
    );
    agent.ipvsctl_ok(&["policy", "detach", &id])?;
    assert_eq!(weights()?, (Some(100), Some(100)));

    // A parameter the policy refuses: two failures, the second one quarantines.
    let bad = attach(&[
        "--interval",
        "200ms",
        "--param",
        "max-weight=0",
        "--quarantine-after",
        "2",
    ])?;
    let failure = format!(
        "{bad} TCP {VIP} failed (policy-error): reported an error: parameter max-weight: 0 is \
         not in 1..=65535"
    );
    let lines = text.take(2, wait, |l| l.starts_with(&format!("{bad} ")))?;
    assert_eq!(lines, [failure.clone(), format!("{failure} QUARANTINED")]);
    let lines = json.take(2, wait, |l| {
        attachment_of(l).as_deref() == Some(bad.as_str())
    })?;
    for (line, quarantined) in lines.iter().zip([false, true]) {
        assert_eq!(
            stable_json(line)?,
            serde_json::json!({
                "attachment": bad,
                "quarantined": quarantined,
                "missed": 0,
                "result": {"failure": {
                    "service": format!("TCP {VIP}"),
                    "kind": "policy-error",
                    "message": "reported an error: parameter max-weight: 0 is not in 1..=65535",
                }},
            })
        );
    }
    // Quarantined: no more events from it.
    let later = text.drain(Duration::from_millis(800));
    ensure!(
        !later.iter().any(|l| l.starts_with(&format!("{bad} "))),
        "events after quarantine: {later:?}"
    );
    assert_eq!(weights()?, (Some(100), Some(100)));
    text.stop()?;
    json.stop()?;
    Ok(())
}

/// The scheduler of the VIP's service, from `ipvsadm -Sn`.
fn kernel_scheduler() -> Result<Option<String>> {
    let prefix = format!("-A -t {VIP} -s ");
    Ok(ipvs_e2e::table_snapshot()?.lines().find_map(|l| {
        l.strip_prefix(&prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    }))
}

#[test]
fn a_policy_switches_only_to_schedulers_the_kernel_offers() -> Result<()> {
    // sed's module is unloaded first: the kernel can load it again (it is in modules.dep), so
    // the agent offers it and loads it when a policy picks it. No other test here uses sed.
    wait_for(Duration::from_secs(15), || {
        let out = ipvs_e2e::run("rmmod", &["ip_vs_sed"])?;
        Ok(out.status.success().then_some(()))
    })
    .context("rmmod ip_vs_sed")?;
    ensure!(!Path::new("/sys/module/ip_vs_sed").exists());
    let _ns = Netns::new()?;
    let state = tempdir("policy-schedulers")?;
    let agent = Agent::start_with(&["--state-dir", &state, "--policy-deadline-ms", "5000"])?;
    // Debian's kernel builds every scheduler but twos as a module.
    ensure!(
        agent.log().contains(
            "schedulers=rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh from=/proc/modules, "
        ),
        "agent log:\n{}",
        agent.log()
    );
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "rr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m"])?;
    let status = |id: &str| -> Result<serde_json::Value> {
        let text = agent.ipvsctl_ok(&["-o", "json", "policy", "status", id])?;
        Ok(serde_json::from_str(&text)?)
    };
    let upload = |scheduler: &str| -> Result<String> {
        let file = Path::new(&state).join(format!("{scheduler}.wasm"));
        std::fs::write(&file, scheduler_component(scheduler)?)?;
        let hash = agent.ipvsctl_ok(&["policy", "add", &file.to_string_lossy()])?;
        Ok(hash.trim().to_owned())
    };

    let sed = upload("sed")?;
    // A long interval, so the only evaluations are the two asked for here: the first switches,
    // the second finds sed already in place and writes nothing.
    let id = agent
        .ipvsctl_ok(&["policy", "attach", &sed, "-t", VIP, "--interval", "30m"])?
        .trim()
        .to_owned();
    let eval = || -> Result<serde_json::Value> {
        let text = agent.ipvsctl_ok(&["-o", "json", "policy", "eval", &id])?;
        let results: serde_json::Value = serde_json::from_str(&text)?;
        Ok(results[0]["decision"].clone())
    };
    let decision = |scheduler: Option<&str>, applied: bool| {
        serde_json::json!({
            "service": format!("TCP {VIP}"),
            "weights": [],
            "scheduler": scheduler,
            "reason": "switch to sed",
            "applied": applied,
        })
    };
    let switched = eval()?;
    assert_eq!(
        switched,
        decision(Some("sed"), true),
        "agent log:\n{}",
        agent.log()
    );
    assert_eq!(status(&id)?["last_decision"], switched);
    assert_eq!(eval()?, decision(None, false));
    assert_eq!(kernel_scheduler()?.as_deref(), Some("sed"));
    ensure!(Path::new("/sys/module/ip_vs_sed").exists());
    agent.ipvsctl_ok(&["policy", "detach", &id])?;

    // twos is not in this kernel: the decision is refused before anything is written.
    let twos = upload("twos")?;
    let id = agent
        .ipvsctl_ok(&[
            "policy",
            "attach",
            &twos,
            "-t",
            VIP,
            "--interval",
            "200ms",
            "--quarantine-after",
            "1",
        ])?
        .trim()
        .to_owned();
    let refused = wait_for(Duration::from_secs(20), || {
        let s = status(&id)?;
        Ok((s["quarantined"] == true).then_some(s))
    })?;
    assert_eq!(
        refused["last"]["failure"],
        serde_json::json!({
            "service": format!("TCP {VIP}"),
            "kind": "invalid-output",
            "message": "invalid output: scheduler \"twos\" is not available in the kernel",
        }),
        "{refused}"
    );
    assert_eq!(kernel_scheduler()?.as_deref(), Some("sed"));
    Ok(())
}

#[test]
fn an_attachment_survives_an_agent_restart() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("policy-restart")?;
    let start = || Agent::start_with(&["--state-dir", &state]);
    let agent = start()?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "rr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m"])?;
    let file = Path::new(&state).join("wlc.wasm");
    std::fs::write(&file, scheduler_component("wlc")?)?;
    let hash = agent.ipvsctl_ok(&["policy", "add", &file.to_string_lossy()])?;
    let id = agent
        .ipvsctl_ok(&[
            "policy",
            "attach",
            hash.trim(),
            "-t",
            VIP,
            "--interval",
            "30m",
            "--param",
            "k=v",
        ])?
        .trim()
        .to_owned();
    // Every attachment with its health: none has run yet.
    let before = agent.ipvsctl_ok(&["-o", "json", "policy", "status"])?;
    drop(agent);

    let agent = start()?;
    ensure!(
        agent
            .log()
            .contains("policy attachments restored attachments=1"),
        "agent log:\n{}",
        agent.log()
    );
    assert_eq!(
        agent.ipvsctl_ok(&["-o", "json", "policy", "status"])?,
        before
    );
    let status: serde_json::Value =
        serde_json::from_str(&agent.ipvsctl_ok(&["-o", "json", "policy", "status", &id])?)?;
    assert_eq!(
        status["attachment"]["params"],
        serde_json::json!({"k": "v"})
    );
    assert_eq!(status["evaluations"], 0);
    agent.ipvsctl_ok(&["policy", "eval", &id])?;
    assert_eq!(kernel_scheduler()?.as_deref(), Some("wlc"));

    // Detached, it stays detached after the next restart.
    agent.ipvsctl_ok(&["policy", "detach", &id])?;
    drop(agent);
    let agent = start()?;
    let status = agent.ipvsctl(&["policy", "status", &id])?;
    assert_eq!(status.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&status.stderr),
        format!("ipvsctl: no attachment {id:?}\n")
    );
    Ok(())
}

/// Memory figures of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    peak: u64,
}

fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let n: u64 = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("{line:?}"))?
            .parse()?;
        Ok(n << 10)
    };
    Ok(Memory {
        rss: kib("VmRSS:")?,
        peak: kib("VmHWM:")?,
    })
}

/// Resets the peak (VmHWM) to the current RSS.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("clear_refs")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Guest memory the hostile fixture uses: it grows its memory to 136 pages.
const HOSTILE_MEMORY: u64 = 136 << 16;

/// A component that answers with 500 000 weight changes, each naming one 1 MiB string: the
/// copy of that answer once cost the agent over 100 MB per evaluation.
fn aliasing_component() -> Result<Vec<u8>> {
    const BIG: u32 = 1 << 20;
    const LIST: u32 = 2 << 20;
    const N: u32 = 500_000;
    let reason = b"hostile";
    let mut ret = [0u8; 44];
    for (off, v) in [(4, LIST), (8, N), (36, 2048), (40, reason.len() as u32)] {
        ret[off..off + 4].copy_from_slice(&u32::to_le_bytes(v));
    }
    let escape = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("\\{b:02x}")).collect() };
    let core = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $i (mut i32) (i32.const 0))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "evaluate") (param i32) (result i32)
    (drop (memory.grow (i32.const 135)))
    (memory.fill (i32.const {BIG}) (i32.const 0x78) (i32.const {BIG}))
    (block $done (loop $l
      (br_if $done (i32.ge_u (global.get $i) (i32.const {N})))
      (i32.store (i32.add (i32.const {LIST}) (i32.mul (global.get $i) (i32.const 12)))
                 (i32.const {BIG}))
      (i32.store (i32.add (i32.const {}) (i32.mul (global.get $i) (i32.const 12)))
                 (i32.const {BIG}))
      (i32.store (i32.add (i32.const {}) (i32.mul (global.get $i) (i32.const 12)))
                 (i32.const 1))
      (global.set $i (i32.add (global.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1024))
  (data (i32.const 1024) "{}")
  (data (i32.const 2048) "{}"))"#,
        LIST + 4,
        LIST + 8,
        escape(&ret),
        escape(reason)
    );
    component(&core)
}

#[test]
fn hostile_answers_cost_the_agent_a_bounded_amount_of_memory() -> Result<()> {
    use ipvs_agent::policy::Limits;
    use std::io::Write;
    let _ns = Netns::new()?;
    let state = tempdir("policy-memory")?;
    let agent = Agent::start_with(&["--state-dir", &state, "--policy-deadline-ms", "5000"])?;
    let pid = agent.pid();
    const N: u64 = 6;
    let vips: Vec<String> = (0..N)
        .map(|i| format!("192.168.100.1:{}", 80 + i))
        .collect();
    for vip in &vips {
        agent.ipvsctl_ok(&["-A", "-t", vip, "-s", "wrr"])?;
        agent.ipvsctl_ok(&["-a", "-t", vip, "-r", B1, "-m", "-w", "3"])?;
        agent.ipvsctl_ok(&["-a", "-t", vip, "-r", B2, "-m", "-w", "5"])?;
    }
    let file = Path::new(&state).join("aliasing.wasm");
    std::fs::write(&file, aliasing_component()?)?;
    let hash = agent
        .ipvsctl_ok(&["policy", "add", &file.to_string_lossy()])?
        .trim()
        .to_owned();
    // One evaluation first, so that what is measured is the evaluations, not the compiler
    // or the first use of the instance pool.
    let warm = agent
        .ipvsctl_ok(&[
            "policy",
            "attach",
            &hash,
            "-t",
            &vips[0],
            "--interval",
            "30m",
        ])?
        .trim()
        .to_owned();
    let first = agent.ipvsctl(&["-o", "json", "policy", "eval", &warm])?;
    let first = String::from_utf8_lossy(&first.stdout).into_owned()
        + &String::from_utf8_lossy(&first.stderr);
    ensure!(
        first.contains("500000 weight changes for a service of 2 real servers"),
        "eval: {first}"
    );
    agent.ipvsctl_ok(&["policy", "detach", &warm])?;
    std::thread::sleep(Duration::from_millis(500));
    let idle = memory(pid)?;
    reset_peak(pid)?;

    let ids = vips
        .iter()
        .map(|vip| {
            let out = agent.ipvsctl_ok(&[
                "policy",
                "attach",
                &hash,
                "-t",
                vip,
                "--interval",
                "100ms",
                "--quarantine-after",
                "100000",
            ])?;
            Ok(out.trim().to_owned())
        })
        .collect::<Result<Vec<_>>>()?;
    // Until every attachment has failed a few times, all of them running at once.
    let evaluations = |id: &str| -> Result<u64> {
        let s: serde_json::Value =
            serde_json::from_str(&agent.ipvsctl_ok(&["-o", "json", "policy", "status", id])?)?;
        Ok(s["evaluations"].as_u64().unwrap_or(0))
    };
    wait_for(Duration::from_secs(60), || {
        for id in &ids {
            if evaluations(id)? < 5 {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .with_context(|| format!("agent log:\n{}", agent.log()))?;
    let busy = memory(pid)?;
    let total: u64 = ids
        .iter()
        .map(|id| evaluations(id))
        .collect::<Result<Vec<_>>>()?
        .iter()
        .sum();
    let status = agent.ipvsctl_ok(&["-o", "json", "policy", "status", &ids[0]])?;
    ensure!(
        status.contains("500000 weight changes for a service of 2 real servers"),
        "status: {status}"
    );
    for id in &ids {
        agent.ipvsctl_ok(&["policy", "detach", id])?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = memory(pid)?;

    // The documented bound (policies/README.md): each evaluation in flight holds its guest's
    // memory (here the fixture's 8.5 MiB; at most memories × --policy-memory-bytes) and at
    // most hostcall_bytes(servers) + 3 × output_bytes copied by the host; at most
    // `concurrency` evaluations run at once. Slack covers the blocking pool's threads and the
    // allocator's own bookkeeping.
    let limits = Limits::default();
    let in_flight = N.min(limits.concurrency as u64);
    let per_evaluation =
        HOSTILE_MEMORY + (limits.hostcall_bytes(2) + 3 * limits.output_bytes) as u64;
    const SLACK: u64 = 16 << 20;
    let bound = in_flight * per_evaluation + SLACK;
    let rise = busy.peak.saturating_sub(idle.rss);
    let residue = after.rss.saturating_sub(idle.rss);
    // Written to the stderr handle itself: the harness captures eprintln! of a passing test,
    // and these figures belong in the CI log.
    let _ = writeln!(
        std::io::stderr(),
        "policy memory: {N} hostile attachments, {total} evaluations: agent RSS idle {}, \
         peak {} (+{}), after detaching {} (+{}); bound {in_flight} x {} + {} = {}",
        mib(idle.rss),
        mib(busy.peak),
        mib(rise),
        mib(after.rss),
        mib(residue),
        mib(per_evaluation),
        mib(SLACK),
        mib(bound)
    );
    ensure!(
        rise <= bound,
        "peak RSS rose by {} (bound {})",
        mib(rise),
        mib(bound)
    );
    // Back near idle: the pool keeps at most a little of each slot resident.
    ensure!(
        residue <= SLACK,
        "RSS after detaching is {} above idle",
        mib(residue)
    );
    Ok(())
}

#[test]
fn a_policy_that_prints_too_much_stays_healthy_and_says_so() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("policy-chatty")?;
    let agent = Agent::start_with(&["--state-dir", &state, "--policy-deadline-ms", "5000"])?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "wrr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m", "-w", "3"])?;
    let chatty = example("chatty")?;
    let hash = agent
        .ipvsctl_ok(&["policy", "add", &chatty])?
        .trim()
        .to_owned();
    let id = agent
        .ipvsctl_ok(&[
            "policy",
            "attach",
            &hash,
            "-t",
            VIP,
            "--interval",
            "30m",
            "--param",
            "stdout=65536",
            "--param",
            "log=20000",
            "--quarantine-after",
            "1",
        ])?
        .trim()
        .to_owned();
    for _ in 0..3 {
        agent.ipvsctl_ok(&["policy", "eval", &id])?;
    }
    let status: serde_json::Value =
        serde_json::from_str(&agent.ipvsctl_ok(&["-o", "json", "policy", "status", &id])?)?;
    assert_eq!(status["quarantined"], false, "{status}");
    assert_eq!(status["evaluations"], 3, "{status}");
    assert_eq!(status["last"]["output_truncated"], true, "{status}");
    assert_eq!(
        status["last"]["decision"]["reason"], "printed 65536, logged 20000",
        "{status}"
    );
    let text = agent.ipvsctl_ok(&["policy", "status", &id])?;
    ensure!(text.contains(", output truncated)"), "status: {text}");
    Ok(())
}
