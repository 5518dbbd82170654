//! Health checks on the real kernel, declared in a node file through `ipvsctl` and checked with
//! `ipvsadm`: a stopped backend's weight goes to 0 within fall × interval and the VIP's
//! traffic all reaches the other one; it comes back within rise × interval; drift enforcement
//! and an enforcing least-connections policy agree with health all along (no drift, no
//! revival), and the policy sees the server down. A restart of the agent in the middle of a
//! drain does not bring the drained server back, whatever its health check says.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ipvs_e2e::{Agent, Backend, Netns, http_get, ipvsadm, stdout, wait_for};

const VIP: &str = "192.168.100.1:80";
const B1: &str = "127.0.0.1:8081";
const B2: &str = "127.0.0.1:8082";
const POLICY_DIR: &str = "/opt/ipvs/policies";
/// The checks' interval and counts, as the node file declares them.
const INTERVAL: Duration = Duration::from_secs(1);
const RISE: u32 = 2;
const FALL: u32 = 2;

/// The seed service with an http check of both backends, and `extra` lines at the end.
fn node_file(dir: &Path, extra: &str) -> Result<PathBuf> {
    let text = format!(
        "drift: enforce
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: {VIP}
    scheduler: rr
    check:
      http: {{path: /, expect: [\"200-299\"]}}
      interval: 1s
      timeout: 500ms
      rise: {RISE}
      fall: {FALL}
    servers:
      - {{address: \"{B1}\", forward: masq}}
      - {{address: \"{B2}\", forward: masq}}
{extra}"
    );
    let path = dir.join("node.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ipvs-e2e-health-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("path")
}

/// Weight of real server `rs` in `ipvsadm -Ln`; `None` when it is not in the table.
fn weight(rs: &str) -> Result<Option<u32>> {
    let out = ipvsadm(&["-Ln", "-t", VIP])?;
    ensure!(out.status.success(), "ipvsadm failed: {out:?}");
    Ok(stdout(&out).lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() > 3 && cols[0] == "->" && cols[1] == rs)
            .then(|| cols[3].parse().ok())
            .flatten()
    }))
}

/// Waits until the weight of `rs` is `want` (any weight above 0 for [`UP`]); returns how long
/// it took.
fn until_weight(agent: &Agent, rs: &str, want: u32, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    let ok = |w: Option<u32>| match want {
        UP => w.is_some_and(|w| w > 0),
        want => w == Some(want),
    };
    wait_for(within, || Ok(ok(weight(rs)?).then_some(()))).with_context(|| {
        format!(
            "{rs} did not get weight {want} within {within:?} (it has {:?})\nagent log:\n{}",
            weight(rs),
            agent.log()
        )
    })?;
    Ok(start.elapsed())
}

/// Any weight above 0: an enforcing policy chooses the weights of servers in service.
const UP: u32 = u32::MAX;

#[test]
fn a_stopped_backend_is_taken_out_and_comes_back_and_nobody_fights() -> Result<()> {
    let _ns = Netns::new()?;
    let dir = scratch("steady")?;
    let b1 = Backend::start(B1.parse()?, "one\n")?;
    let _b2 = Backend::start(B2.parse()?, "two\n")?;
    let agent = Agent::start_with(&["--drift-interval", "1", "--policy-deadline-ms", "5000"])?;
    let lc = Path::new(POLICY_DIR).join("least_connections.wasm");
    ensure!(lc.exists(), "{} is missing", lc.display());
    agent.ipvsctl_ok(&["policy", "add", path_str(&lc)?, "--name", "lc"])?;
    let attach =
        format!("attachments:\n  - policy: lc\n    services: [\"tcp:{VIP}\"]\n    interval: 1s\n");
    let file = node_file(&dir, &attach)?;
    agent.ipvsctl_ok(&["apply", "-f", path_str(&file)?])?;
    until_weight(&agent, B1, UP, Duration::from_secs(10))?;
    until_weight(&agent, B2, UP, Duration::from_secs(10))?;

    // Stop backend 1: weight 0 within fall × interval (+ one probe timeout and slack for the
    // emulated CPU), every new request reaches backend 2.
    drop(b1);
    let took = until_weight(&agent, B1, 0, INTERVAL * (FALL + 3))?;
    eprintln!("health: backend 1 quiesced {took:?} after it stopped");
    let vip: SocketAddr = VIP.parse()?;
    for _ in 0..6 {
        let body = http_get(vip)?;
        ensure!(body == "two\n", "a request reached {body:?}");
    }
    let health = agent.ipvsctl_ok(&["health"])?;
    ensure!(
        health
            .lines()
            .any(|l| l.contains(B1) && l.contains("down") && l.contains("connect refused")),
        "ipvsctl health:\n{health}"
    );
    let json = agent.ipvsctl_ok(&["-o", "json", "health"])?;
    let doc: serde_json::Value = serde_json::from_str(&json).context("health json")?;
    ensure!(json.contains("\"down\"") && json.contains(B1), "{doc:#}");

    // Several drift checks and evaluations later: still 0, no drift, the policy saw it down.
    std::thread::sleep(Duration::from_secs(4));
    ensure!(
        weight(B1)? == Some(0),
        "revived: {:?}\n{}",
        weight(B1)?,
        agent.log()
    );
    let state = agent.ipvsctl_ok(&["-o", "json", "state"])?;
    let st: serde_json::Value = serde_json::from_str(&state).context("state json")?;
    let drift = st.get("drift").cloned().unwrap_or_default();
    ensure!(
        drift.as_array().is_none_or(|d| d.is_empty()),
        "health's weight reported as drift: {drift}"
    );
    let status = agent.ipvsctl_ok(&["-o", "json", "policy", "status"])?;
    ensure!(
        status.contains("1 down"),
        "the policy did not see the server down:\n{status}"
    );

    // Start it again: its weight is back within rise × interval (+ slack).
    let _b1 = Backend::start(B1.parse()?, "one\n")?;
    let took = until_weight(&agent, B1, UP, INTERVAL * (RISE + 3))?;
    eprintln!("health: backend 1 restored {took:?} after it started");
    Ok(())
}

#[test]
fn a_restart_in_the_middle_of_a_drain_does_not_bring_the_server_back() -> Result<()> {
    let _ns = Netns::new()?;
    let dir = scratch("drain")?;
    let state = dir.join("state");
    let _b1 = Backend::start(B1.parse()?, "one\n")?;
    let _b2 = Backend::start(B2.parse()?, "two\n")?;
    let flags = ["--state-dir", path_str(&state)?, "--drift-interval", "1"];
    let agent = Agent::start_with(&flags)?;
    // Backend 2 at weight 0 at first, so that the held connection goes to backend 1.
    let file = node_file(&dir, "")?;
    let text = std::fs::read_to_string(&file)?.replace(
        &format!("{{address: \"{B2}\", forward: masq}}"),
        &format!("{{address: \"{B2}\", forward: masq, weight: 0}}"),
    );
    std::fs::write(&file, text)?;
    agent.ipvsctl_ok(&["apply", "-f", path_str(&file)?])?;
    let vip: SocketAddr = VIP.parse()?;
    let held = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;
    let file = node_file(&dir, "")?;
    agent.ipvsctl_ok(&["apply", "-f", path_str(&file)?])?;
    until_weight(&agent, B2, 1, Duration::from_secs(10))?;

    // Drain backend 1 in the background; it waits for the held connection.
    let mut drain = std::process::Command::new(ipvs_e2e::bin_dir().join("ipvsctl"))
        .args(["drain", "-t", VIP, "-r", B1, "--timeout", "120s"])
        .env("IPVSCTL_AGENT", agent.address())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    until_weight(&agent, B1, 0, Duration::from_secs(10))?;
    let _ = drain.kill();
    let _ = drain.wait();
    drop(agent);
    let agent = Agent::start_with(&flags)?;
    // Many probes (all passing) and drift checks later, the server is still drained.
    std::thread::sleep(Duration::from_secs(5));
    ensure!(
        weight(B1)? == Some(0),
        "a restart gave the drained server its weight back: {:?}\nagent log:\n{}",
        weight(B1)?,
        agent.log()
    );
    let health = agent.ipvsctl_ok(&["health"])?;
    ensure!(
        health.lines().any(|l| l.contains(B1) && l.contains("up")),
        "the drained server's check still runs and says up:\n{health}"
    );
    // The drain ends with the connection: the server goes and stays gone.
    drop(held);
    wait_for(Duration::from_secs(30), || {
        Ok(weight(B1)?.is_none().then_some(()))
    })
    .with_context(|| format!("agent log:\n{}", agent.log()))?;
    std::thread::sleep(Duration::from_secs(3));
    ensure!(
        weight(B1)?.is_none(),
        "back after the drain: {:?}",
        weight(B1)?
    );
    Ok(())
}
