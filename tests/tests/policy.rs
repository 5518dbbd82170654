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
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("policy.wit", include_str!("../../policies/wit/policy.wit"))?;
    let world = resolve.select_world(&[pkg], Some("policy"))?;
    let mut module = wat::parse_str(core)?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
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
