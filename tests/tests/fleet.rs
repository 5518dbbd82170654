//! A fleet on the real kernel: three agents, each in its own network namespace with its own
//! IPVS table, driven from one `ipvsctl` with an inventory: a fleet apply rolls out to every
//! node, a second one changes nothing, a fleet listing carries a NODE column, drift behind one
//! node's back shows in the fleet's state and a fleet apply repairs it, and a node that cannot be
//! reached fails the run with a per-node summary.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use std::time::Duration;

use ipvs_e2e::{Agent, Netns, bin_dir, ipvsadm, stderr, stdout, wait_for};

const SPEC: &str = "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: 192.168.100.1:80
    scheduler: rr
    servers:
      - address: 127.0.0.1:8081
        forward: masq
      - address: 127.0.0.1:8082
        forward: masq
        weight: 2
";

fn ipvsctl(args: &[&str]) -> Result<std::process::Output> {
    Command::new(bin_dir().join("ipvsctl"))
        .args(args)
        .env_remove("IPVSCTL_AGENT")
        .stdin(Stdio::null())
        .output()
        .context("spawn ipvsctl")
}

#[test]
fn fleet_apply_and_listing_across_namespaces() -> Result<()> {
    // Each agent starts inside a namespace of its own (it stays there); the thread goes back.
    let mut agents = Vec::new();
    for _ in 0..3 {
        let _ns = Netns::new()?;
        agents.push(Agent::start_with(&["--drift-interval", "1"])?);
    }
    let dir = std::env::temp_dir().join(format!("ipvs-e2e-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("node.yaml");
    std::fs::write(&spec, SPEC)?;
    let inventory = dir.join("fleet.yaml");
    let mut inv = String::from("agents:\n");
    for (i, a) in agents.iter().enumerate() {
        inv.push_str(&format!(
            "  - name: lb{i}\n    address: {}\n    labels: {{role: lb, zone: z{}}}\n",
            a.address(),
            i % 2
        ));
    }
    inv.push_str(
        "  - name: gone\n    address: unix:/nonexistent/agent.sock\n    labels: {role: spare}\n",
    );
    std::fs::write(&inventory, inv)?;
    let inv = inventory.to_str().context("path")?;
    let spec = spec.to_str().context("path")?;

    let out = ipvsctl(&[
        "--fleet",
        inv,
        "--selector",
        "role=lb",
        "--max-parallel",
        "2",
        "apply",
        "-f",
        spec,
    ])?;
    ensure!(
        out.status.success(),
        "fleet apply failed ({}): {}\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    let summary = stderr(&out);
    for i in 0..3 {
        ensure!(summary.contains(&format!("lb{i}")), "{summary}");
    }
    let listing = ipvsctl(&["--fleet", inv, "--selector", "role=lb", "-ln"])?;
    ensure!(listing.status.success(), "{}", stderr(&listing));
    let text = stdout(&listing);
    ensure!(text.starts_with("NODE"), "{text}");
    for i in 0..3 {
        let rows = text
            .lines()
            .filter(|l| l.starts_with(&format!("lb{i} ")) && l.contains("127.0.0.1:8082"))
            .count();
        ensure!(rows == 1, "lb{i} has its real server:\n{text}");
    }
    // The tables are the nodes' own: this thread's namespace has none of it.
    ensure!(
        !stdout(&ipvsadm(&["-Ln"])?).contains("192.168.100.1"),
        "the test's own namespace is untouched"
    );

    // A second fleet apply has nothing to do on any node.
    let diff = ipvsctl(&[
        "--fleet",
        inv,
        "--selector",
        "role=lb",
        "diff",
        "-f",
        spec,
        "-o",
        "json",
    ])?;
    ensure!(diff.status.success(), "{}", stderr(&diff));
    let json = stdout(&diff);
    ensure!(
        json.matches("\"changes\": []").count() == 3,
        "no changes on any node:\n{json}"
    );

    // Drift behind lb1's back: the fleet's state names it on lb1 alone (the agents' default
    // mode only reports), and a fleet apply puts it back.
    {
        let _ns = Netns::enter(&agents[1])?;
        ensure!(
            ipvsadm(&["-d", "-t", "192.168.100.1:80", "-r", "127.0.0.1:8082"])?
                .status
                .success()
        );
    }
    let drift = |state: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        state
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["node"].as_str().unwrap_or("").to_owned(),
                    n["result"]["drift"].clone(),
                )
            })
            .collect()
    };
    let fleet_state = || -> Result<serde_json::Value> {
        let out = ipvsctl(&[
            "--fleet",
            inv,
            "--selector",
            "role=lb",
            "state",
            "-o",
            "json",
        ])?;
        ensure!(out.status.success(), "{}", stderr(&out));
        Ok(serde_json::from_str(&stdout(&out))?)
    };
    let missing = "-a -t 192.168.100.1:80 -r 127.0.0.1:8082 -m -w 2";
    let found = wait_for(Duration::from_secs(30), || {
        let state = fleet_state()?;
        Ok((drift(&state)[1].1 != serde_json::json!([])).then_some(state))
    })?;
    assert_eq!(
        drift(&found),
        vec![
            ("lb0".to_owned(), serde_json::json!([])),
            ("lb1".to_owned(), serde_json::json!([missing])),
            ("lb2".to_owned(), serde_json::json!([])),
        ],
        "{found}"
    );
    let repair = ipvsctl(&["--fleet", inv, "--selector", "role=lb", "apply", "-f", spec])?;
    ensure!(repair.status.success(), "{}", stderr(&repair));
    let listing = stdout(&ipvsctl(&["--fleet", inv, "--selector", "role=lb", "-ln"])?);
    ensure!(
        listing
            .lines()
            .filter(|l| l.contains("127.0.0.1:8082"))
            .count()
            == 3,
        "repaired on lb1:\n{listing}"
    );
    wait_for(Duration::from_secs(30), || {
        let state = fleet_state()?;
        Ok(drift(&state)
            .iter()
            .all(|(_, d)| *d == serde_json::json!([]))
            .then_some(()))
    })
    .context("no drift left after the repair")?;

    // All four: the unreachable one fails the run and is named in the summary.
    let all = ipvsctl(&["--fleet", inv, "-ln"])?;
    ensure!(all.status.code() == Some(3), "{:?}", all.status);
    let summary = stderr(&all);
    ensure!(summary.contains("gone: failed (exit 3)"), "{summary}");
    ensure!(summary.contains("fleet: 3 of 4 nodes ok"), "{summary}");
    Ok(())
}
