//! The seed scenario (../shared/seed), done remotely: every step through `ipvsctl` and the
//! agent, checked against the real `ipvsadm` on the same kernel state.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ipvs_e2e::{Agent, Backend, Netns, http_get, ipvsadm, run_ok, stdout, wait_for};

const VIP: &str = "192.168.100.1:80";

fn seed_table(agent: &Agent) -> Result<()> {
    agent.ipvsctl_ok(&["link", "add", "dummy1", "type", "dummy"])?;
    agent.ipvsctl_ok(&["addr", "add", "192.168.100.1/32", "dev", "dummy1"])?;
    agent.ipvsctl_ok(&["link", "set", "dummy1", "up"])?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "rr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", "127.0.0.1:8081", "-m"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", "127.0.0.1:8082", "-m"])?;
    Ok(())
}

/// The list views must be the same bytes as ipvsadm's. Rates move every 2 s, so ipvsctl is
/// read between two ipvsadm reads and must equal one of them; a few tries cover a tick that
/// falls in between.
fn assert_same_view(agent: &Agent, args: &[&str]) -> Result<String> {
    let mut last = None;
    for _ in 0..5 {
        let before = ipvsadm(args)?;
        let ours = agent.ipvsctl(args)?;
        let after = ipvsadm(args)?;
        ensure!(
            before.status.success(),
            "ipvsadm {args:?} failed: {before:?}"
        );
        assert_eq!(ours.status.code(), before.status.code());
        if stdout(&ours) == stdout(&before) || stdout(&ours) == stdout(&after) {
            return Ok(stdout(&ours));
        }
        last = Some((ours, after));
    }
    let (ours, theirs) = last.context("no comparison ran")?;
    assert_eq!(
        stdout(&ours),
        stdout(&theirs),
        "ipvsctl {args:?} differs from ipvsadm (stderr: {})",
        String::from_utf8_lossy(&ours.stderr)
    );
    Ok(stdout(&ours))
}

#[test]
fn seed_scenario_remotely() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let _b1 = Backend::start(
        "127.0.0.1:8081".parse()?,
        "<h1>Response from Backend Server 1</h1>\n",
    )?;
    let _b2 = Backend::start(
        "127.0.0.1:8082".parse()?,
        "<h2>*** Response from Backend Server 2 ***</h2>\n",
    )?;
    seed_table(&agent)?;

    // The link and its address, as the agent reports them, and as the kernel has them.
    let links = agent.ipvsctl_ok(&["link", "show"])?;
    assert!(links.contains("dummy1"), "link show: {links}");
    let ip = run_ok("ip", &["addr", "show", "dev", "dummy1"])?;
    assert!(ip.contains("inet 192.168.100.1/32"), "ip addr: {ip}");
    assert!(ip.contains("UP"), "dummy1 not up: {ip}");

    let listing = assert_same_view(&agent, &["-ln"])?;
    let expected_rows = [
        "TCP  192.168.100.1:80 rr",
        "  -> 127.0.0.1:8081               Masq    1      0          0         ",
        "  -> 127.0.0.1:8082               Masq    1      0          0         ",
    ];
    for row in expected_rows {
        assert!(
            listing.lines().any(|l| l == row),
            "missing {row:?} in\n{listing}"
        );
    }

    // Six requests alternate between the two backends.
    let vip: SocketAddr = VIP.parse()?;
    let bodies = (0..6).map(|_| http_get(vip)).collect::<Result<Vec<_>>>()?;
    let servers: Vec<bool> = bodies.iter().map(|b| b.contains("Server 1")).collect();
    for pair in servers.windows(2) {
        assert_ne!(pair[0], pair[1], "not round robin: {bodies:?}");
    }
    assert_eq!(servers.iter().filter(|s| **s).count(), 3);

    // Counters fold every 2 s: wait until the service shows 6 connections.
    let stats = wait_for(Duration::from_secs(15), || {
        let out = agent.ipvsctl_ok(&["-ln", "--stats"])?;
        Ok(conns(&out, "TCP  192.168.100.1:80")?
            .filter(|c| *c == 6)
            .map(|_| out))
    })?;
    assert_eq!(conns(&stats, "  -> 127.0.0.1:8081")?, Some(3), "{stats}");
    assert_eq!(conns(&stats, "  -> 127.0.0.1:8082")?, Some(3), "{stats}");
    let stats = assert_same_view(&agent, &["-ln", "--stats"])?;
    println!("{stats}");
    assert_same_view(&agent, &["-ln", "--stats", "--exact"])?;
    assert_same_view(&agent, &["-ln", "--rate"])?;
    Ok(())
}

/// The Conns column of the row starting with `prefix`.
fn conns(table: &str, prefix: &str) -> Result<Option<u64>> {
    let Some(line) = table.lines().find(|l| l.starts_with(prefix)) else {
        return Ok(None);
    };
    let n = line[prefix.len()..]
        .split_whitespace()
        .next()
        .context("no Conns column")?
        .parse()?;
    Ok(Some(n))
}

#[test]
fn json_listing_carries_the_table() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    seed_table(&agent)?;
    let json = agent.ipvsctl_ok(&["-o", "json", "-ln"])?;
    for needle in ["192.168.100.1", "127.0.0.1", "8081", "8082", "rr"] {
        assert!(json.contains(needle), "{needle} missing from {json}");
    }
    let links = agent.ipvsctl_ok(&["-o", "json", "link", "show"])?;
    assert!(links.contains("\"dummy1\""), "{links}");
    let addrs = agent.ipvsctl_ok(&["-o", "json", "addr", "show", "dev", "dummy1"])?;
    assert!(addrs.contains("192.168.100.1"), "{addrs}");
    Ok(())
}
