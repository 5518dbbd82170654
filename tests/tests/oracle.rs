//! ipvsadm as the oracle: what ipvsctl writes, ipvsadm lists identically; what ipvsadm writes,
//! ipvsctl lists identically; and the same command run through both leaves the same table.

use anyhow::{Result, ensure};
use ipvs_e2e::{Agent, Netns, ipvsadm, stdout, table_snapshot};

/// Writes covering this milestone's grammar, applied in order.
const SCRIPT: &[&[&str]] = &[
    &["-A", "-t", "10.1.0.1:80", "-s", "rr"],
    &[
        "-a",
        "-t",
        "10.1.0.1:80",
        "-r",
        "10.2.0.1:8080",
        "-m",
        "-w",
        "3",
    ],
    &["-a", "-t", "10.1.0.1:80", "-r", "10.2.0.2", "-g"],
    &[
        "-a",
        "-t",
        "10.1.0.1:80",
        "-r",
        "10.2.0.3:80",
        "-i",
        "-w",
        "0",
    ],
    &["-A", "-u", "10.1.0.2:53", "-s", "wlc"],
    &[
        "-a",
        "-u",
        "10.1.0.2:53",
        "-r",
        "10.2.0.9:5353",
        "-m",
        "-w",
        "65535",
    ],
    &["-A", "-t", "10.1.0.3:443", "-s", "sh"],
    &["-A", "-t", "10.1.0.0:8080"],
    &["-A", "-u", "10.1.0.1:80", "-s", "lc"],
    &["-E", "-t", "10.1.0.3:443", "-s", "wrr"],
    &[
        "-e",
        "-t",
        "10.1.0.1:80",
        "-r",
        "10.2.0.1:8080",
        "-m",
        "-w",
        "7",
    ],
    &[
        "-a",
        "--tcp-service",
        "10.1.0.3:443",
        "--real-server",
        "10.2.0.4:443",
        "--masquerading",
        "--weight",
        "2",
    ],
    &["-d", "-t", "10.1.0.1:80", "-r", "10.2.0.2"],
    &["-D", "-t", "10.1.0.0:8080"],
    &["-Z"],
    &["-Z", "-t", "10.1.0.1:80"],
];

const VIEWS: &[&[&str]] = &[
    &["-Ln"],
    &["-ln"],
    &["-Ln", "--stats"],
    &["-Ln", "--rate"],
    &["-Ln", "--stats", "--exact"],
    &["-Ln", "-t", "10.1.0.1:80"],
    &["-Ln", "-u", "10.1.0.2:53", "--stats"],
    &["-L", "-n", "--rate", "--exact"],
];

fn check_views(agent: &Agent) -> Result<()> {
    for view in VIEWS {
        let ours = agent.ipvsctl(view)?;
        let theirs = ipvsadm(view)?;
        assert_eq!(
            stdout(&ours),
            stdout(&theirs),
            "view {view:?}; ipvsctl stderr: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(ours.status.code(), theirs.status.code(), "view {view:?}");
    }
    Ok(())
}

#[test]
fn what_ipvsctl_writes_ipvsadm_reads() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    for cmd in SCRIPT {
        agent.ipvsctl_ok(cmd)?;
    }
    check_views(&agent)?;
    let table = table_snapshot()?;
    ensure!(table.contains("-A -t 10.1.0.3:443 -s wrr"), "{table}");
    ensure!(
        table.contains("-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 7"),
        "{table}"
    );
    ensure!(!table.contains("10.2.0.2"), "{table}");
    Ok(())
}

#[test]
fn what_ipvsadm_writes_ipvsctl_reads() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    for cmd in SCRIPT {
        let out = ipvsadm(cmd)?;
        ensure!(out.status.success(), "ipvsadm {cmd:?}: {out:?}");
    }
    check_views(&agent)
}

#[test]
fn both_tools_build_the_same_table() -> Result<()> {
    let with_ipvsadm = {
        let _ns = Netns::new()?;
        for cmd in SCRIPT {
            let out = ipvsadm(cmd)?;
            ensure!(out.status.success(), "ipvsadm {cmd:?}: {out:?}");
        }
        table_snapshot()?
    };
    let with_ipvsctl = {
        let _ns = Netns::new()?;
        let agent = Agent::start()?;
        for cmd in SCRIPT {
            agent.ipvsctl_ok(cmd)?;
        }
        table_snapshot()?
    };
    assert_eq!(with_ipvsctl, with_ipvsadm);
    // And clearing through ipvsctl empties what ipvsadm sees.
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    for cmd in SCRIPT {
        agent.ipvsctl_ok(cmd)?;
    }
    agent.ipvsctl_ok(&["-C"])?;
    assert_eq!(table_snapshot()?, "");
    Ok(())
}
