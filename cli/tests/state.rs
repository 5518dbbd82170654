//! The declared-state commands of the real `ipvsctl` binary against the real agent's routes
//! over its in-memory IPVS table and links (`ipvs_agent::testing`): what is printed, the exit
//! statuses, and what reaches the node (the table, the links, the revisions kept).

mod support;

use std::net::IpAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipvs_agent::api::StateApi;
use ipvs_agent::declared::{Declared, EventKind};
use ipvs_agent::ipvs::{Protocol, ServiceKey};
use ipvs_agent::link::{LinkName, LinkOps};
use ipvs_agent::testing::{FakeIpvs, FakeLinks, TestNode, Write};
use ipvs_proto::v1 as pb;
use ipvs_proto::v1::state_service_server::{StateService, StateServiceServer};
use support::{Services, TestAgent, ok, result, text};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// `ipvsctl args` against `agent` with `input` on stdin.
async fn ipvsctl(agent: &TestAgent, args: &[&str], input: &str) -> std::process::Output {
    support::ipvsctl_stdin(&agent.address(), args, input).await
}

/// Writes `text` to `name` in the agent's directory; returns the path.
fn file(agent: &TestAgent, name: &str, text: &str) -> String {
    let path = agent.dir().join(name);
    std::fs::write(&path, text).expect("write a node file");
    path.display().to_string()
}

fn state(agent: &TestAgent) -> &Arc<Declared<FakeIpvs, FakeLinks>> {
    agent
        .state
        .as_ref()
        .expect("an agent with the declared state")
}

fn v4(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

fn tcp(a: [u8; 4], port: u32) -> pb::ServiceKey {
    pb::ServiceKey {
        protocol: pb::Protocol::Tcp.into(),
        address: v4(a),
        port,
        fwmark: 0,
        family: pb::AddressFamily::Inet.into(),
    }
}

const NODE_YAML: &str = "\
drift: enforce
links:
  - name: ipvs0
    addresses: [10.0.0.1/32]
services:
  - tcp: 10.0.0.1:80
    servers:
      - address: 10.0.1.1:8080
        forward: masq
";

/// NODE_YAML in TOML.
const NODE_TOML: &str = "\
drift = \"enforce\"

[[links]]
name = \"ipvs0\"
addresses = [\"10.0.0.1/32\"]

[[services]]
tcp = \"10.0.0.1:80\"

[[services.servers]]
address = \"10.0.1.1:8080\"
forward = \"masq\"
";

/// What NODE_YAML declares, as the agent keeps it: options at their zero values.
fn node_spec() -> pb::NodeSpec {
    pb::NodeSpec {
        links: vec![pb::LinkSpec {
            name: "ipvs0".into(),
            addresses: vec![pb::Prefix {
                address: "10.0.0.1".into(),
                prefix_length: 32,
            }],
        }],
        services: vec![pb::Service {
            key: Some(tcp([10, 0, 0, 1], 80)),
            scheduler: pb::Scheduler::Wlc.into(),
            options: Some(pb::ServiceOptions::default()),
            destinations: vec![pb::Destination {
                address: v4([10, 0, 1, 1]),
                port: 8080,
                forwarding: pb::ForwardingMethod::Masquerade.into(),
                weight: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        }],
        attachments: vec![],
        drift: pb::DriftMode::Enforce.into(),
        checks: vec![],
    }
}

/// The changes NODE_YAML makes to an empty node, as ipvsctl prints them.
const NODE_CHANGES: &str = "ip link add ipvs0 type dummy\n\
    ip link set ipvs0 up\n\
    ip addr add 10.0.0.1/32 dev ipvs0\n\
    -A -t 10.0.0.1:80 -s wlc\n\
    -a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1\n";

/// The spec of the agent's current revision, as GetState reports it.
async fn declared(agent: &TestAgent) -> Option<pb::NodeSpec> {
    pb::state_service_client::StateServiceClient::new(agent.channel().await)
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .spec
}

/// The node's links with their addresses, as `name up address/len...`.
async fn links(agent: &TestAgent) -> Vec<String> {
    let mut out = Vec::new();
    for link in agent.links.list().await.expect("links") {
        let name = LinkName::new(&link.name).expect("name");
        let mut words = vec![
            link.name.clone(),
            if link.up { "up" } else { "down" }.into(),
        ];
        for a in agent
            .links
            .list_addresses(Some(&name))
            .await
            .expect("addresses")
        {
            words.push(format!("{}/{}", a.address, a.prefix_len));
        }
        out.push(words.join(" "));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_sends_the_file_and_prints_the_changes() {
    let agent = support::agent().await;
    let path = file(&agent, "node.yaml", NODE_YAML);
    let out = ipvsctl(
        &agent,
        &["apply", "-f", &path, "--prune", "--revision", "0"],
        "",
    )
    .await;
    assert_eq!(result(&out), ok(&format!("{NODE_CHANGES}revision 1\n")));
    // The file as declared, and the node made to match it.
    assert_eq!(declared(&agent).await, Some(node_spec()));
    assert_eq!(
        agent.ipvs.rules(),
        [
            "-A -t 10.0.0.1:80 -s wlc",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1"
        ]
    );
    assert_eq!(links(&agent).await, ["ipvs0 up 10.0.0.1/32", "lo up"]);

    // The same file on stdin, as JSON, to another node.
    let other = support::agent().await;
    let out = ipvsctl(&other, &["-o", "json", "apply", "-f", "-"], NODE_YAML).await;
    let (code, stdout, stderr) = result(&out);
    assert_eq!((code, stderr), (Some(0), String::new()));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON"),
        serde_json::json!({
            "revision": 1,
            "applied": true,
            "recorded": true,
            "changes": [
                {"kind": "node", "description": "ip link add ipvs0 type dummy"},
                {"kind": "node", "description": "ip link set ipvs0 up"},
                {"kind": "node", "description": "ip addr add 10.0.0.1/32 dev ipvs0"},
                {"kind": "create-service", "description": "-A -t 10.0.0.1:80 -s wlc"},
                {"kind": "add-destination", "description": "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1"},
            ],
        })
    );
    assert_eq!(declared(&other).await, Some(node_spec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_and_diffs_change_nothing() {
    let agent = support::agent().await;
    let toml = file(&agent, "node.toml", NODE_TOML);
    let out = ipvsctl(&agent, &["apply", "--dry-run", "-f", &toml], "").await;
    let would: String = NODE_CHANGES
        .lines()
        .map(|l| format!("would: {l}\n"))
        .collect();
    assert_eq!(
        result(&out),
        ok(&format!("{would}dry run against revision 0\n"))
    );
    let out = ipvsctl(&agent, &["diff", "-f", &toml, "--prune"], "").await;
    assert_eq!(result(&out), ok(NODE_CHANGES));
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
    assert_eq!(links(&agent).await, ["lo up"]);
    assert_eq!(declared(&agent).await, None);

    // Once applied, nothing is left to change.
    let yaml = file(&agent, "node.yml", NODE_YAML);
    let out = ipvsctl(&agent, &["apply", "-f", &yaml], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ipvsctl(&agent, &["diff", "-f", &toml], "").await;
    assert_eq!(result(&out), ok("no changes (revision 1)\n"));
    let out = ipvsctl(&agent, &["diff", "-o", "json", "-f", &yaml], "").await;
    assert_eq!(
        result(&out),
        ok("{\n  \"revision\": 1,\n  \"changes\": []\n}\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_never_reaches_the_agent() {
    let agent = support::agent().await;
    let bad = file(
        &agent,
        "node.yaml",
        "services:\n  - tcp: 10.0.0.1:80\n    servers:\n      - address: 10.0.1.1\n        weight: 70000\n",
    );
    let out = ipvsctl(&agent, &["apply", "-f", &bad], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            format!(
                "ipvsctl: {bad}: services[0].servers[0].weight: 70000 is out of range 0..65535\n"
            )
        )
    );
    let out = ipvsctl(&agent, &["diff", "-f", "-"], "services: [\n").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: stdin:2:1: did not find expected node content, while parsing a flow node\n"
                .into()
        )
    );
    let out = ipvsctl(&agent, &["apply", "-f", "node.json"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: node.json: unknown file type (use .yaml, .yml or .toml, or - for YAML on stdin)\n".into()
        )
    );
    let missing = agent.dir().join("missing.yaml").display().to_string();
    let out = ipvsctl(&agent, &["apply", "-f", &missing], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            format!("ipvsctl: cannot read {missing}: No such file or directory (os error 2)\n")
        )
    );
    assert_eq!(agent.ipvs.reads(), 0, "the table was read");
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
    assert_eq!(declared(&agent).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_map_to_exit_statuses() {
    // A rule only the agent checks.
    let agent = support::agent().await;
    let path = file(
        &agent,
        "node.yaml",
        "services:\n  - tcp: 10.0.0.1:80\n    persistent: 60\n    pe: s-i-p\n",
    );
    let out = ipvsctl(&agent, &["apply", "-f", &path], "").await;
    assert_eq!(
        result(&out),
        (
            Some(255),
            String::new(),
            "ipvsctl: service TCP 10.0.0.1:80: invalid persistence engine name \"s-i-p\"\n".into()
        )
    );
    // Another revision than the one the file was written against.
    let path = file(&agent, "node.yaml", NODE_YAML);
    let out = ipvsctl(&agent, &["apply", "-f", &path, "--revision", "6"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(255),
            String::new(),
            "ipvsctl: the revision moved: expected 6, the current one is 0\n".into()
        )
    );
    assert_eq!(agent.ipvs.written(), Vec::<String>::new());
    assert_eq!(links(&agent).await, ["lo up"]);
    // The kernel refuses a change half-way: what was done is undone.
    agent.ipvs.refuse_nth_write(2, ipvs_proto::errno::ENODEV);
    let out = ipvsctl(&agent, &["apply", "-f", &path, "--revision", "0"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(255),
            String::new(),
            "ipvsctl: change 5 of 5 failed: \"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1\": add \
             destination: No such device (errno 19); the 1 change made was undone: the table is \
             as it was; the 3 earlier change(s) were undone: the node is as it was\n"
                .into()
        )
    );
    assert_eq!(agent.ipvs.rules(), Vec::<String>::new());
    assert_eq!(links(&agent).await, ["lo up"]);
    assert_eq!(declared(&agent).await, None);

    // An agent without the declared state.
    let old = TestAgent::start(Services::default()).await;
    let out = ipvsctl(&old, &["apply", "-f", &path, "--revision", "6"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(4),
            String::new(),
            "ipvsctl: the agent does not implement StateService.ApplyState\n".into()
        )
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let nobody = format!("unix:{}", dir.path().join("nobody.sock").display());
    let out = support::ipvsctl_stdin(&nobody, &["state"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(3),
            String::new(),
            format!(
                "ipvsctl: cannot reach agent at {nobody}: No such file or directory (os error 2)\n"
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_a_file_that_applies_back_unchanged() {
    let agent = support::agent().await;
    let applied = file(&agent, "node.yaml", NODE_YAML);
    let out = ipvsctl(&agent, &["apply", "-f", &applied], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ipvsctl(&agent, &["export"], "").await;
    assert_eq!(
        result(&out),
        ok(
            "drift: enforce\nlinks:\n- name: ipvs0\n  addresses:\n  - 10.0.0.1/32\nservices:\n- tcp: 10.0.0.1:80\n  servers:\n  - address: 10.0.1.1:8080\n    forward: masq\n"
        )
    );
    let out = ipvsctl(&agent, &["export", "--format", "toml"], "").await;
    let (code, toml_text, _) = result(&out);
    assert_eq!(code, Some(0));
    assert!(
        toml_text.starts_with("drift = \"enforce\"\n"),
        "{toml_text}"
    );

    // Written to a file (its extension says TOML), then applied: nothing to change, the same
    // spec declared.
    let path = agent.dir().join("exported.toml").display().to_string();
    let out = ipvsctl(&agent, &["export", "-f", &path], "").await;
    assert_eq!(result(&out), ok(""));
    assert_eq!(std::fs::read_to_string(&path).ok(), Some(toml_text));
    let before = agent.ipvs.written();
    let out = ipvsctl(&agent, &["apply", "-f", &path], "").await;
    assert_eq!(result(&out), ok("no changes (revision 1)\n"));
    assert_eq!(agent.ipvs.written(), before);
    assert_eq!(declared(&agent).await, Some(node_spec()));

    let out = ipvsctl(&agent, &["-o", "json", "export", "-f", &path], "").await;
    assert_eq!(
        result(&out),
        ok(&format!(
            "{{\n  \"file\": \"{path}\",\n  \"format\": \"toml\"\n}}\n"
        ))
    );
    let out = ipvsctl(&agent, &["export", "-f", "out.txt"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: out.txt: unknown file type (use .yaml, .yml or .toml, or - for YAML on stdin)\n".into()
        )
    );
}

/// `t` as RFC 3339 UTC, whole seconds: `2026-11-25T10:00:00Z`; counted year by year, apart
/// from the calendar arithmetic ipvsctl uses, so the two check each other.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (mut days, rem) = (secs / 86_400, secs % 86_400);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    while days >= if leap(year) { 366 } else { 365 } {
        days -= if leap(year) { 366 } else { 365 };
        year += 1;
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lengths[month] {
        days -= lengths[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        days + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Starts `ipvsctl args` (a watch) against `agent` and waits until its watch has started, so
/// that the events caused next reach it.
async fn watching(agent: &TestAgent, args: &[&str], stdout: Stdio) -> tokio::process::Child {
    let watchers = state(agent).watchers();
    let child = tokio::process::Command::new(support::PROGRAM)
        .args(args)
        .env("IPVSCTL_AGENT", agent.address())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ipvsctl");
    for _ in 0..1000 {
        if state(agent).watchers() > watchers {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the watch of {args:?} did not start");
}

/// The first `n` lines `child` prints.
async fn lines(mut child: tokio::process::Child, n: usize) -> (tokio::process::Child, Vec<String>) {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = tokio::io::BufReader::new(stdout).lines();
    let mut out = Vec::new();
    while out.len() < n {
        match reader.next_line().await.expect("read stdout") {
            Some(line) => out.push(line),
            None => break,
        }
    }
    (child, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn state_revisions_rollback_and_events() {
    let agent = support::agent().await;
    let report = NODE_YAML.replace("drift: enforce", "drift: report");
    let first = file(&agent, "first.yaml", &report);
    let second = file(
        &agent,
        "second.yaml",
        &format!("{report}      - address: 10.0.1.2:8080\n        forward: masq\n"),
    );
    for path in [&first, &second] {
        let out = ipvsctl(&agent, &["apply", "-f", path], "").await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // The address goes away behind the agent's back; a check finds it missing.
    let ipvs0 = LinkName::new("ipvs0").expect("name");
    let vip: IpAddr = "10.0.0.1".parse().expect("ip");
    agent
        .links
        .delete_address(&ipvs0, vip, 32)
        .await
        .expect("delete address");
    let drift = state(&agent).check(false).await.expect("check");
    assert_eq!(drift, ["ip addr add 10.0.0.1/32 dev ipvs0"]);

    let snapshot = state(&agent).snapshot().await;
    let applied = snapshot.current.as_ref().expect("a revision").applied_at;
    let checked = snapshot.last_check.expect("a check");
    let out = ipvsctl(&agent, &["state"], "").await;
    assert_eq!(
        result(&out),
        ok(&format!(
            "revision 2, applied {}\n\
             declared: 1 link, 1 service, 0 attachments\n\
             drift mode: report\n\
             last check: {}: 1 difference\n\
             \x20 ip addr add 10.0.0.1/32 dev ipvs0\n",
            rfc3339(applied),
            rfc3339(checked)
        ))
    );
    let revisions = state(&agent).revisions().await;
    let out = ipvsctl(&agent, &["state", "revisions"], "").await;
    assert_eq!(
        result(&out),
        ok(&format!(
            "REVISION  APPLIED AT            ORIGIN\n\
             \x20      2  {}  apply\n\
             \x20      1  {}  apply\n",
            rfc3339(revisions[0].applied_at),
            rfc3339(revisions[1].applied_at)
        ))
    );
    let out = ipvsctl(&agent, &["state", "rollback", "1", "--revision", "2"], "").await;
    assert_eq!(
        result(&out),
        ok("ip addr add 10.0.0.1/32 dev ipvs0\n\
            -d -t 10.0.0.1:80 -r 10.0.1.2:8080\n\
            revision 3\n")
    );
    assert_eq!(
        agent.ipvs.rules(),
        [
            "-A -t 10.0.0.1:80 -s wlc",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1"
        ]
    );

    // Events as they come, as text and as JSON lines, until the agent stops.
    let mut events = state(&agent).subscribe();
    let as_text = watching(&agent, &["state", "events"], Stdio::piped()).await;
    let as_json = watching(&agent, &["-o", "json", "state", "events"], Stdio::piped()).await;
    let out = ipvsctl(&agent, &["apply", "-f", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    agent
        .links
        .delete_address(&ipvs0, vip, 32)
        .await
        .expect("delete address");
    state(&agent).check(false).await.expect("check");
    let applied = events.recv().await.expect("applied");
    assert_eq!(
        applied.kind,
        EventKind::Applied {
            revision: 4,
            origin: "apply".into()
        }
    );
    let found = events.recv().await.expect("drift found");
    // Both printed before the agent stops (a stop ends the watches, whatever they hold).
    let (mut as_text, text_lines) = lines(as_text, 2).await;
    let (mut as_json, json_lines) = lines(as_json, 2).await;
    agent.stop().await.expect("clean stop");
    assert_eq!(
        text_lines,
        [
            format!("{} applied revision 4 (apply)", rfc3339(applied.time)),
            format!(
                "{} drift found: ip addr add 10.0.0.1/32 dev ipvs0",
                rfc3339(found.time)
            ),
        ]
    );
    for child in [&mut as_text, &mut as_json] {
        let status = child.wait().await.expect("ipvsctl");
        assert_eq!(status.code(), Some(0));
    }
    let lines: Vec<serde_json::Value> = json_lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"time": rfc3339(applied.time), "event": "applied", "revision": 4, "origin": "apply"}),
            serde_json::json!({"time": rfc3339(found.time), "event": "drift-found", "drift": ["ip addr add 10.0.0.1/32 dev ipvs0"]}),
        ]
    );
}

/// A node file with two real servers behind 10.0.0.1:80: 10.0.1.1 on the service's port at
/// weight 5, and on 8080.
const DRAINED_YAML: &str = "\
services:
  - tcp: 10.0.0.1:80
    servers:
      - address: 10.0.1.1:80
        weight: 5
      - address: 10.0.1.1:8080
        forward: masq
";

fn vip_key() -> ServiceKey {
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: "10.0.0.1".parse().expect("ip"),
        port: 80,
    }
}

/// In paused time (the agent's clock), so a drain's elapsed seconds are exact: its one wait
/// between connection counts takes one poll (1 s), however long the machine takes.
#[tokio::test(start_paused = true)]
async fn drain_streams_its_progress() {
    let agent = support::agent().await;
    let path = file(&agent, "node.yaml", DRAINED_YAML);
    let out = ipvsctl(&agent, &["apply", "-f", &path], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rip: IpAddr = "10.0.1.1".parse().expect("ip");
    // Clients still connected; they are gone by the drain's second count (its reads: the
    // real server's weight to keep, then to set to 0, then a count per poll).
    agent.ipvs.set_conns(&vip_key(), rip, 80, 2, 1);
    agent
        .ipvs
        .set_conns_after_reads(3, vip_key(), (rip, 80), 0, 1);
    let out = ipvsctl(
        &agent,
        &[
            "drain",
            "-t",
            "10.0.0.1:80",
            "-r",
            "10.0.1.1",
            "--timeout",
            "90s",
            "--revision",
            "1",
        ],
        "",
    )
    .await;
    assert_eq!(
        result(&out),
        ok("draining 10.0.1.1:80: weight 0 (was 5)\n\
            10.0.1.1:80: 2 active, 1 inactive, 0 s\n\
            10.0.1.1:80: drained in 1 s, removed (revision 2)\n")
    );
    assert_eq!(
        agent.ipvs.rules(),
        [
            "-A -t 10.0.0.1:80 -s wlc",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1"
        ]
    );

    agent.ipvs.set_conns(&vip_key(), rip, 8080, 1, 0);
    agent
        .ipvs
        .set_conns_after_reads(3, vip_key(), (rip, 8080), 0, 0);
    let out = ipvsctl(
        &agent,
        &[
            "-o",
            "json",
            "drain",
            "-t",
            "10.0.0.1:80",
            "-r",
            "10.0.1.1:8080",
            "--keep",
        ],
        "",
    )
    .await;
    let (code, stdout, _) = result(&out);
    assert_eq!(code, Some(0));
    let phases: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            format!("{} {}", v["server"], v["phase"])
        })
        .collect();
    assert_eq!(
        phases,
        vec![
            "\"10.0.1.1:8080\" \"weight-zero\"",
            "\"10.0.1.1:8080\" \"waiting\"",
            "\"10.0.1.1:8080\" \"done\""
        ]
    );
    // Kept, at weight 0.
    assert_eq!(
        agent.ipvs.rules(),
        [
            "-A -t 10.0.0.1:80 -s wlc",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 0"
        ]
    );

    // A bad server address is refused with ipvsadm's words before connecting.
    let (reads, written) = (agent.ipvs.reads(), agent.ipvs.written());
    let out = ipvsctl(
        &agent,
        &["drain", "-t", "10.0.0.1:80", "-r", "10.0.1.1:x"],
        "",
    )
    .await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: illegal real server address[:port] specified\n".into()
        )
    );
    assert_eq!((agent.ipvs.reads(), agent.ipvs.written()), (reads, written));
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The agent's StateService, but its drain streams stop after their first report, as if the
/// agent went away mid-drain: what no agent does on purpose, so only a wrapper shows it.
struct CutShort(StateApi<FakeIpvs, FakeLinks>);

#[tonic::async_trait]
impl StateService for CutShort {
    async fn apply_state(
        &self,
        r: Request<pb::ApplyStateRequest>,
    ) -> Result<Response<pb::ApplyStateResponse>, Status> {
        self.0.apply_state(r).await
    }
    async fn get_state(
        &self,
        r: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        self.0.get_state(r).await
    }
    async fn export(
        &self,
        r: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        self.0.export(r).await
    }
    async fn rollback(
        &self,
        r: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        self.0.rollback(r).await
    }
    async fn list_revisions(
        &self,
        r: Request<pb::ListRevisionsRequest>,
    ) -> Result<Response<pb::ListRevisionsResponse>, Status> {
        self.0.list_revisions(r).await
    }

    type DrainStream = Streamed<pb::DrainResponse>;

    async fn drain(
        &self,
        r: Request<pb::DrainRequest>,
    ) -> Result<Response<Self::DrainStream>, Status> {
        let stream = self.0.drain(r).await?.into_inner();
        Ok(Response::new(Box::pin(stream.take(1))))
    }

    type WatchStateEventsStream =
        <StateApi<FakeIpvs, FakeLinks> as StateService>::WatchStateEventsStream;

    async fn watch_state_events(
        &self,
        r: Request<pb::WatchStateEventsRequest>,
    ) -> Result<Response<Self::WatchStateEventsStream>, Status> {
        self.0.watch_state_events(r).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_cut_short_fails() {
    let drain = ["drain", "-t", "10.0.0.1:80", "-r", "10.0.1.1"];
    // The kernel refuses to remove the drained server: the agent says why.
    let agent = support::agent().await;
    let path = file(&agent, "node.yaml", DRAINED_YAML);
    let out = ipvsctl(&agent, &["apply", "-f", &path], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rip: IpAddr = "10.0.1.1".parse().expect("ip");
    agent.ipvs.refuse_write(
        Write::DelDest(vip_key(), rip, 80),
        ipvs_proto::errno::ENOENT,
    );
    assert_eq!(
        result(&ipvsctl(&agent, &drain, "").await),
        (
            Some(255),
            "draining 10.0.1.1:80: weight 0 (was 5)\n".into(),
            "ipvsctl: \"-d -t 10.0.0.1:80 -r 10.0.1.1:80\" failed: No such destination\n".into()
        )
    );

    // The stream just stops.
    let node = TestNode::new(Services {
        policies: false,
        state: true,
    })
    .await;
    // Only StateService: all the drain and the apply before it need.
    let cut = node.serve_with(|node, _| {
        let state = node.state.clone().expect("state");
        Ok(tonic::service::Routes::new(StateServiceServer::new(
            CutShort(StateApi::new(state)),
        )))
    });
    let path = file(&cut, "node.yaml", DRAINED_YAML);
    let out = ipvsctl(&cut, &["apply", "-f", &path], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        result(&ipvsctl(&cut, &drain, "").await),
        (
            Some(255),
            "draining 10.0.1.1:80: weight 0 (was 5)\n".into(),
            "ipvsctl: the drain of 10.0.1.1:80 ended before it was done\n".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_a_stream_quietly() {
    let agent = support::agent().await;
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = watching(&agent, &["state", "events"], Stdio::from(writer)).await;
    let path = file(&agent, "node.yaml", NODE_YAML);
    let out = ipvsctl(&agent, &["apply", "-f", &path], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = child.wait_with_output().await.expect("ipvsctl");
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(0), String::new())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_lists_the_checked_servers() {
    let agent = support::agent().await;
    let out = ipvsctl(&agent, &["health"], "").await;
    assert_eq!(result(&out), ok("no health checks are declared\n"));
    let checked = NODE_YAML.replace(
        "services:\n",
        "services:\n  - tcp: 10.0.0.2:80\n    check: {tcp: {}, interval: 1m, initial: down}\n    servers:\n      - address: 10.0.2.1:8080\n        forward: masq\n",
    );
    assert_ne!(checked, NODE_YAML);
    let path = file(&agent, "node.yaml", &checked);
    let out = ipvsctl(&agent, &["apply", "-f", &path], "").await;
    assert_eq!(result(&out).0, Some(0), "{:?}", result(&out));
    let out = ipvsctl(&agent, &["health"], "").await;
    let (code, stdout, stderr) = result(&out);
    assert_eq!((code, stderr), (Some(0), String::new()));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("SERVICE / SERVER "), "{stdout}");
    assert_eq!(lines[1], "TCP 10.0.0.2:80");
    assert!(
        lines[2].starts_with("  10.0.2.1:8080            tcp    down "),
        "{stdout}"
    );
    let out = ipvsctl(&agent, &["health", "-o", "json"], "").await;
    let (code, stdout, _) = result(&out);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["declared_checks"], 1);
    assert_eq!(v["servers"][0]["server"], "10.0.2.1:8080");
    assert_eq!(v["servers"][0]["state"], "down");
    assert_eq!(v["servers"][0]["service"], "TCP 10.0.0.2:80");
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_health_merges_each_node_s_table() {
    let checked = |vip: &str| {
        NODE_YAML.replace(
            "services:\n",
            &format!("services:\n  - tcp: {vip}:80\n    check: {{tcp: {{}}, interval: 1m, initial: down}}\n    servers:\n      - address: 10.0.2.1:8080\n        forward: masq\n"),
        )
    };
    let (a, c) = (support::agent().await, support::agent().await);
    for (agent, vip) in [(&a, "10.0.0.2"), (&c, "10.0.0.3")] {
        let path = file(agent, "node.yaml", &checked(vip));
        let out = ipvsctl(agent, &["apply", "-f", &path], "").await;
        assert_eq!(result(&out).0, Some(0), "{:?}", result(&out));
    }
    let agents = format!("{},{}", a.address(), c.address());
    let out = support::ipvsctl(None, &["--agents", &agents, "health"]).await;
    let (code, stdout, stderr) = result(&out);
    assert_eq!(
        (code, stderr),
        (
            Some(0),
            format!(
                "{}: ok\n{}: ok\nfleet: 2 of 2 nodes ok\n",
                a.address(),
                c.address()
            )
        )
    );
    // Each node's table, every line under the node's name, in the order given.
    let (na, nc) = (a.address(), c.address());
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("NODE ") && header.contains(" SERVICE / SERVER "),
        "{stdout}"
    );
    let rows: Vec<(&str, &str)> = lines
        .map(|l| {
            [na.as_str(), nc.as_str()]
                .into_iter()
                .find_map(|n| l.strip_prefix(n).map(|rest| (n, rest.trim_start())))
                .unwrap_or_else(|| panic!("a line under no node: {l:?}\n{stdout}"))
        })
        .collect();
    let services: Vec<(&str, &str)> = rows
        .iter()
        .filter(|(_, l)| l.starts_with("TCP "))
        .copied()
        .collect();
    assert_eq!(
        services,
        [
            (na.as_str(), "TCP 10.0.0.2:80"),
            (nc.as_str(), "TCP 10.0.0.3:80")
        ],
        "{stdout}"
    );
    let down: Vec<&str> = rows
        .iter()
        .filter(|(_, l)| l.starts_with("10.0.2.1:8080") && l.contains(" down "))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(down, [na.as_str(), nc.as_str()], "{stdout}");

    let out = support::ipvsctl(None, &["--agents", &agents, "health", "-o", "json"]).await;
    let (code, stdout, _) = result(&out);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    for (i, (node, vip)) in [(&na, "10.0.0.2"), (&nc, "10.0.0.3")].iter().enumerate() {
        assert_eq!(v[i]["node"], serde_json::json!(node), "{stdout}");
        let servers = &v[i]["result"]["servers"];
        assert_eq!(servers[0]["service"], format!("TCP {vip}:80"), "{stdout}");
        assert_eq!(servers[0]["state"], "down", "{stdout}");
    }
}
