//! Fleet mode of the real `ipvsctl` binary: nodes whose agents do not exist, and a fleet where
//! some nodes' agents (the real agent over in-memory cores) answer and another does not.

mod support;

use std::path::Path;
use std::process::Output;

use ipvs_agent::link::{LinkName, LinkOps};
use support::{TestAgent, text};

async fn ipvsctl(args: &[&str]) -> Output {
    support::ipvsctl(None, args).await
}

fn write_inventory(dir: &Path, yaml: &str) -> String {
    let path = dir.join("fleet.yaml");
    std::fs::write(&path, yaml).expect("write the inventory");
    path.display().to_string()
}

const UNREACHABLE: &str = "No such file or directory (os error 2)";

#[tokio::test]
async fn unreachable_nodes_are_summed_up_on_stderr_and_exit_3() {
    let a = "unix:/nonexistent/ipvsctl-fleet/a.sock";
    let b = "unix:/nonexistent/ipvsctl-fleet/b.sock";
    let out = ipvsctl(&[
        "--agents",
        &format!("{a},{b}"),
        "--max-parallel",
        "1",
        "-ln",
    ])
    .await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(3),
            String::new(),
            format!(
                "{a}: failed (exit 3): cannot reach agent at {a}: {UNREACHABLE}\n\
                 {b}: failed (exit 3): cannot reach agent at {b}: {UNREACHABLE}\n\
                 fleet: 0 of 2 nodes ok\n"
            )
        )
    );
}

#[tokio::test]
async fn an_inventory_selection_in_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inv = write_inventory(
        dir.path(),
        "agents:
  - name: lb1
    address: unix:/nonexistent/ipvsctl-fleet/lb1.sock
    labels: {role: lb, zone: a}
  - name: db1
    address: unix:/nonexistent/ipvsctl-fleet/db1.sock
    labels: {role: db, zone: a}
  - name: lb2
    address: unix:/nonexistent/ipvsctl-fleet/lb2.sock
    labels: {role: lb, zone: b}
",
    );
    let out = ipvsctl(&[
        "--fleet",
        &inv,
        "--selector",
        "role=lb",
        "-ln",
        "-o",
        "json",
    ])
    .await;
    let stdout = text(&out.stdout);
    let parsed: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    let reason = |n: &str| {
        format!("cannot reach agent at unix:/nonexistent/ipvsctl-fleet/{n}.sock: {UNREACHABLE}")
    };
    assert_eq!(
        parsed,
        serde_json::json!([
            {"node": "lb1", "error": reason("lb1")},
            {"node": "lb2", "error": reason("lb2")},
        ])
    );
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(3),
            format!(
                "lb1: failed (exit 3): {}\nlb2: failed (exit 3): {}\nfleet: 0 of 2 nodes ok\n",
                reason("lb1"),
                reason("lb2")
            )
        )
    );
}

#[tokio::test]
async fn bad_fleet_command_lines_are_usage_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inv = write_inventory(
        dir.path(),
        "agents:\n  - name: lb1\n    address: unix:/a.sock\n    labels: {role: lb}\n",
    );
    let tls = dir.path().join("tls.yaml");
    std::fs::write(
        &tls,
        "tls: {ca: ca.pem}\nagents:\n  - name: lb1\n    address: unix:/a.sock\n",
    )
    .expect("write");
    let tls = tls.display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--fleet"], "ipvsctl: --fleet needs an inventory file\n".into()),
        (
            vec!["--fleet", &inv],
            "ipvsctl: no command after the fleet flags (e.g. ipvsctl --fleet FILE -ln)\n".into(),
        ),
        (
            vec!["--fleet", &inv, "--selector", "role=db", "-ln"],
            format!("ipvsctl: no agent in {inv} matches --selector role=db\n"),
        ),
        (
            vec!["--fleet", &inv, "--agents", "lb9", "-ln"],
            format!("ipvsctl: agent `lb9' is not in {inv}\n"),
        ),
        (
            vec!["--fleet", &tls, "-ln"],
            format!("ipvsctl: {tls}: TLS is not supported yet\n"),
        ),
        (
            vec!["--agents", "lb1", "-ln"],
            "ipvsctl: invalid agent address `lb1': expected unix:/path or http://host:port (without --fleet, --agents lists addresses)\n".into(),
        ),
    ];
    for (args, stderr) in cases {
        let out = ipvsctl(&args).await;
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(2), String::new(), stderr),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn help_mentions_the_fleet_flags() {
    let out = ipvsctl(&["--help"]).await;
    let help = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for flag in [
        "--fleet FILE",
        "--agents a,b,c",
        "--selector key=value",
        "--max-parallel N",
    ] {
        assert!(help.contains(&format!("\n  {flag} ")), "{flag}: {help}");
    }
}

/// An agent (the real one over in-memory links) with a dummy link named for the node.
async fn node_agent(link: &str) -> TestAgent {
    let agent = support::agent().await;
    for name in ["dummy0", link] {
        let name = LinkName::new(name).expect("link name");
        agent.links.create_dummy(&name).await.expect("create link");
        agent.links.set_up(&name, true).await.expect("link up");
    }
    agent
}

#[tokio::test]
async fn each_node_answers_from_its_own_agent_in_inventory_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (agent_a, agent_c) = (node_agent("vip-a").await, node_agent("vip-c").await);
    let (a, c) = (agent_a.address(), agent_c.address());
    let missing = "unix:/nonexistent/ipvsctl-fleet/b.sock";
    let inv = write_inventory(
        dir.path(),
        &format!(
            "agents:\n  - {{name: node-a, address: '{a}'}}\n  - {{name: b, address: '{missing}'}}\n  - {{name: c, address: '{c}'}}\n"
        ),
    );
    // Each node alone, as the reference for the merged table.
    let alone_a = text(&ipvsctl(&["--agent", &a, "link", "show"]).await.stdout);
    let alone_c = text(&ipvsctl(&["--agent", &c, "link", "show"]).await.stdout);
    assert!(
        alone_a.contains("vip-a") && alone_c.contains("vip-c"),
        "{alone_a}{alone_c}"
    );

    let out = ipvsctl(&["--fleet", &inv, "link", "show"]).await;
    let mut want = String::new();
    for (node, alone) in [("node-a", &alone_a), ("c     ", &alone_c)] {
        for line in alone.lines() {
            want.push_str(&format!("{node}  {line}\n"));
        }
    }
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(3),
            want,
            format!(
                "node-a: ok\nb: failed (exit 3): cannot reach agent at {missing}: {UNREACHABLE}\nc: ok\nfleet: 2 of 3 nodes ok\n"
            )
        )
    );

    // All reachable: status 0.
    let out = ipvsctl(&[
        "--agents",
        &format!("{a},{c}"),
        "link",
        "show",
        "-o",
        "json",
    ])
    .await;
    let parsed: serde_json::Value =
        serde_json::from_str(&text(&out.stdout)).expect("one JSON document");
    let alone: serde_json::Value = serde_json::from_str(&text(
        &ipvsctl(&["--agent", &a, "link", "show", "-o", "json"])
            .await
            .stdout,
    ))
    .expect("JSON alone");
    assert_eq!(parsed[0], serde_json::json!({"node": a, "result": alone}));
    assert_eq!(parsed[1]["node"], serde_json::json!(c));
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(0),
            format!("{a}: ok\n{c}: ok\nfleet: 2 of 2 nodes ok\n")
        )
    );
}
