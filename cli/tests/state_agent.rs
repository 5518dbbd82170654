//! Wiring tests of the declared-state commands: the real `ipvsctl` binary against an
//! in-process fake `StateService` on a Unix socket. The fake records each request and answers
//! from a script; the tests check what is sent, what is printed, and the exit statuses.

use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};

use ipvs_proto::v1 as pb;
use ipvs_proto::v1::state_service_server::{StateService, StateServiceServer};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio_stream::Stream;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

/// Each request as `call Debug-of-message`.
type Log = Arc<Mutex<Vec<String>>>;

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone, Default)]
struct Fake {
    log: Log,
    /// The answer of ApplyState and Rollback.
    plan: pb::ApplyStateResponse,
    state: pb::GetStateResponse,
    export: pb::NodeSpec,
    revisions: Vec<pb::Revision>,
    drain: Vec<pb::DrainResponse>,
    /// What the drain stream ends with after its steps, if it fails.
    drain_error: Option<(Code, &'static str)>,
    events: Vec<pb::WatchStateEventsResponse>,
    /// Calls that fail, with the status they fail with.
    failures: Vec<(&'static str, Code, &'static str)>,
}

impl Fake {
    fn record<R: std::fmt::Debug>(
        &self,
        call: &'static str,
        req: &Request<R>,
    ) -> Result<(), Status> {
        if let Ok(mut log) = self.log.lock() {
            log.push(format!("{call} {:?}", req.get_ref()));
        }
        match self.failures.iter().find(|(c, _, _)| *c == call) {
            Some((_, code, msg)) => Err(Status::new(*code, *msg)),
            None => Ok(()),
        }
    }

    fn answer<T, R: std::fmt::Debug>(
        &self,
        call: &'static str,
        req: Request<R>,
        ok: T,
    ) -> Result<Response<T>, Status> {
        self.record(call, &req).map(|()| Response::new(ok))
    }
}

fn stream<T: Send + 'static>(items: Vec<T>) -> Streamed<T> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

#[tonic::async_trait]
impl StateService for Fake {
    async fn apply_state(
        &self,
        r: Request<pb::ApplyStateRequest>,
    ) -> Result<Response<pb::ApplyStateResponse>, Status> {
        self.answer("ApplyState", r, self.plan.clone())
    }
    async fn get_state(
        &self,
        r: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        self.answer("GetState", r, self.state.clone())
    }
    async fn export(
        &self,
        r: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        let spec = Some(self.export.clone());
        self.answer("Export", r, pb::ExportResponse { spec })
    }
    async fn rollback(
        &self,
        r: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let p = self.plan.clone();
        let answer = pb::RollbackResponse {
            changes: p.changes,
            applied: p.applied,
            revision: p.revision,
            recorded: p.recorded,
        };
        self.answer("Rollback", r, answer)
    }
    async fn list_revisions(
        &self,
        r: Request<pb::ListRevisionsRequest>,
    ) -> Result<Response<pb::ListRevisionsResponse>, Status> {
        let revisions = self.revisions.clone();
        self.answer("ListRevisions", r, pb::ListRevisionsResponse { revisions })
    }

    type DrainStream = Streamed<pb::DrainResponse>;

    async fn drain(
        &self,
        r: Request<pb::DrainRequest>,
    ) -> Result<Response<Self::DrainStream>, Status> {
        let steps = self.drain.clone().into_iter().map(Ok);
        let error = self.drain_error.map(|(code, m)| Err(Status::new(code, m)));
        let items: Vec<Result<pb::DrainResponse, Status>> = steps.chain(error).collect();
        let stream: Self::DrainStream = Box::pin(tokio_stream::iter(items));
        self.answer("Drain", r, stream)
    }

    type WatchStateEventsStream = Streamed<pb::WatchStateEventsResponse>;

    async fn watch_state_events(
        &self,
        r: Request<pb::WatchStateEventsRequest>,
    ) -> Result<Response<Self::WatchStateEventsStream>, Status> {
        self.answer("WatchStateEvents", r, stream(self.events.clone()))
    }
}

/// A fake agent serving until dropped, in its own directory.
struct Agent {
    dir: tempfile::TempDir,
    socket: String,
    log: Log,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn start(fake: Fake) -> Agent {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind the fake agent's socket");
    let log = fake.log.clone();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(StateServiceServer::new(fake))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await;
    });
    Agent {
        socket: format!("unix:{}", path.display()),
        dir,
        log,
        server,
    }
}

impl Agent {
    fn calls(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Writes `text` to `name` in the agent's directory; returns the path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a node file");
        path.display().to_string()
    }
}

/// Runs `ipvsctl args` against `agent` with `input` on stdin.
async fn ipvsctl(agent: &str, args: &[&str], input: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .args(args)
        .env("IPVSCTL_AGENT", agent)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ipvsctl");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
    }
    child.wait_with_output().await.expect("wait for ipvsctl")
}

/// Exit status, stdout, stderr.
fn result(out: &Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(stdout: &str) -> (Option<i32>, String, String) {
    (Some(0), stdout.to_string(), String::new())
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

/// What NODE_YAML declares.
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
    }
}

fn node_change(description: &str) -> pb::StateChange {
    pb::StateChange {
        change: Some(pb::state_change::Change::Node(pb::NodeChange {
            description: description.into(),
        })),
    }
}

fn ipvs_change(kind: pb::ChangeKind, description: &str) -> pb::StateChange {
    pb::StateChange {
        change: Some(pb::state_change::Change::Ipvs(pb::Change {
            kind: kind.into(),
            description: description.into(),
            ..Default::default()
        })),
    }
}

fn plan(applied: bool, revision: u64) -> pb::ApplyStateResponse {
    pb::ApplyStateResponse {
        changes: vec![
            node_change("ip link add ipvs0 type dummy"),
            ipvs_change(pb::ChangeKind::CreateService, "-A -t 10.0.0.1:80 -s wlc"),
        ],
        applied,
        revision,
        recorded: applied,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_sends_the_file_and_prints_the_changes() {
    let agent = start(Fake {
        plan: plan(true, 7),
        ..Default::default()
    });
    let file = agent.file("node.yaml", NODE_YAML);
    let out = ipvsctl(
        &agent.socket,
        &["apply", "-f", &file, "--prune", "--revision", "6"],
        "",
    )
    .await;
    assert_eq!(
        result(&out),
        ok("ip link add ipvs0 type dummy\n-A -t 10.0.0.1:80 -s wlc\nrevision 7\n")
    );
    let sent = pb::ApplyStateRequest {
        spec: Some(node_spec()),
        prune: true,
        dry_run: false,
        expected_revision: Some(6),
    };
    assert_eq!(agent.calls(), vec![format!("ApplyState {sent:?}")]);

    // The same file on stdin, as JSON.
    let out = ipvsctl(
        &agent.socket,
        &["-o", "json", "apply", "-f", "-"],
        NODE_YAML,
    )
    .await;
    let (code, stdout, stderr) = result(&out);
    assert_eq!((code, stderr), (Some(0), String::new()));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).expect("JSON"),
        serde_json::json!({
            "revision": 7,
            "applied": true,
            "recorded": true,
            "changes": [
                {"kind": "node", "description": "ip link add ipvs0 type dummy"},
                {"kind": "create-service", "description": "-A -t 10.0.0.1:80 -s wlc"},
            ],
        })
    );
    let sent = pb::ApplyStateRequest {
        spec: Some(node_spec()),
        prune: false,
        dry_run: false,
        expected_revision: None,
    };
    assert_eq!(agent.calls().get(1), Some(&format!("ApplyState {sent:?}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_and_diffs_change_nothing() {
    let agent = start(Fake {
        plan: plan(false, 6),
        ..Default::default()
    });
    let file = agent.file("node.toml", "drift = \"enforce\"\n");
    let out = ipvsctl(&agent.socket, &["apply", "--dry-run", "-f", &file], "").await;
    assert_eq!(
        result(&out),
        ok(
            "would: ip link add ipvs0 type dummy\nwould: -A -t 10.0.0.1:80 -s wlc\ndry run against revision 6\n"
        )
    );
    let out = ipvsctl(&agent.socket, &["diff", "-f", &file, "--prune"], "").await;
    assert_eq!(
        result(&out),
        ok("ip link add ipvs0 type dummy\n-A -t 10.0.0.1:80 -s wlc\n")
    );
    let declared = pb::NodeSpec {
        drift: pb::DriftMode::Enforce.into(),
        ..Default::default()
    };
    let dry = |prune| pb::ApplyStateRequest {
        spec: Some(declared.clone()),
        prune,
        dry_run: true,
        expected_revision: None,
    };
    assert_eq!(
        agent.calls(),
        vec![
            format!("ApplyState {:?}", dry(false)),
            format!("ApplyState {:?}", dry(true))
        ]
    );

    let same = start(Fake {
        plan: pb::ApplyStateResponse {
            changes: vec![],
            applied: false,
            revision: 6,
            recorded: false,
        },
        ..Default::default()
    });
    let file = same.file("node.yml", NODE_YAML);
    let out = ipvsctl(&same.socket, &["diff", "-f", &file], "").await;
    assert_eq!(result(&out), ok("no changes (revision 6)\n"));
    let out = ipvsctl(&same.socket, &["diff", "-o", "json", "-f", &file], "").await;
    assert_eq!(
        result(&out),
        ok("{\n  \"revision\": 6,\n  \"changes\": []\n}\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_never_reaches_the_agent() {
    let agent = start(Fake::default());
    let bad = agent.file(
        "node.yaml",
        "services:\n  - tcp: 10.0.0.1:80\n    servers:\n      - address: 10.0.1.1\n        weight: 70000\n",
    );
    let out = ipvsctl(&agent.socket, &["apply", "-f", &bad], "").await;
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
    let out = ipvsctl(&agent.socket, &["diff", "-f", "-"], "services: [\n").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: stdin:2:1: did not find expected node content, while parsing a flow node\n"
                .into()
        )
    );
    let out = ipvsctl(&agent.socket, &["apply", "-f", "node.json"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: node.json: unknown file type (use .yaml, .yml or .toml, or - for YAML on stdin)\n".into()
        )
    );
    let missing = agent.dir.path().join("missing.yaml").display().to_string();
    let out = ipvsctl(&agent.socket, &["apply", "-f", &missing], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            format!("ipvsctl: cannot read {missing}: No such file or directory (os error 2)\n")
        )
    );
    assert_eq!(agent.calls(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_map_to_exit_statuses() {
    let cases = [
        (Code::InvalidArgument, "services[0]: unknown scheduler", 255),
        (
            Code::FailedPrecondition,
            "the current revision is 8, not 6",
            255,
        ),
        (
            Code::Aborted,
            "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1 failed: No such device; undone, the node is as before",
            255,
        ),
        (Code::Unimplemented, "", 4),
    ];
    for (code, message, status) in cases {
        let agent = start(Fake {
            failures: vec![("ApplyState", code, message)],
            ..Default::default()
        });
        let file = agent.file("node.yaml", NODE_YAML);
        let out = ipvsctl(
            &agent.socket,
            &["apply", "-f", &file, "--revision", "6"],
            "",
        )
        .await;
        let stderr = if code == Code::Unimplemented {
            "ipvsctl: the agent does not implement StateService.ApplyState\n".to_string()
        } else {
            format!("ipvsctl: {message}\n")
        };
        assert_eq!(
            result(&out),
            (Some(status), String::new(), stderr),
            "{code:?}"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let nobody = format!("unix:{}", dir.path().join("nobody.sock").display());
    let out = ipvsctl(&nobody, &["state"], "").await;
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
    let agent = start(Fake {
        export: node_spec(),
        plan: pb::ApplyStateResponse {
            changes: vec![],
            applied: true,
            revision: 4,
            recorded: false,
        },
        ..Default::default()
    });
    let out = ipvsctl(&agent.socket, &["export"], "").await;
    assert_eq!(
        result(&out),
        ok(
            "drift: enforce\nlinks:\n- name: ipvs0\n  addresses:\n  - 10.0.0.1/32\nservices:\n- tcp: 10.0.0.1:80\n  servers:\n  - address: 10.0.1.1:8080\n    forward: masq\n"
        )
    );
    let out = ipvsctl(&agent.socket, &["export", "--format", "toml"], "").await;
    let (code, toml_text, _) = result(&out);
    assert_eq!(code, Some(0));
    assert!(
        toml_text.starts_with("drift = \"enforce\"\n"),
        "{toml_text}"
    );

    // Written to a file (its extension says TOML), then applied: the same spec goes back.
    let path = agent.dir.path().join("exported.toml").display().to_string();
    let out = ipvsctl(&agent.socket, &["export", "-f", &path], "").await;
    assert_eq!(result(&out), ok(""));
    assert_eq!(std::fs::read_to_string(&path).ok(), Some(toml_text));
    let out = ipvsctl(&agent.socket, &["apply", "-f", &path], "").await;
    assert_eq!(result(&out), ok("no changes (revision 4)\n"));
    let sent = pb::ApplyStateRequest {
        spec: Some(node_spec()),
        prune: false,
        dry_run: false,
        expected_revision: None,
    };
    assert_eq!(agent.calls().last(), Some(&format!("ApplyState {sent:?}")));

    let out = ipvsctl(&agent.socket, &["-o", "json", "export", "-f", &path], "").await;
    assert_eq!(
        result(&out),
        ok(&format!(
            "{{\n  \"file\": \"{path}\",\n  \"format\": \"toml\"\n}}\n"
        ))
    );
    let out = ipvsctl(&agent.socket, &["export", "-f", "out.txt"], "").await;
    assert_eq!(
        result(&out),
        (
            Some(2),
            String::new(),
            "ipvsctl: out.txt: unknown file type (use .yaml, .yml or .toml, or - for YAML on stdin)\n".into()
        )
    );
}

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

#[tokio::test(flavor = "multi_thread")]
async fn state_revisions_rollback_and_events() {
    use pb::watch_state_events_response::Event;
    let t0 = 1_795_600_800;
    let agent = start(Fake {
        state: pb::GetStateResponse {
            revision: 7,
            spec: Some(node_spec()),
            applied_at: at(t0),
            drift_mode: pb::DriftMode::Report.into(),
            last_check: at(t0 + 30),
            drift: vec![pb::Drift {
                description: "ip addr add 10.0.0.1/32 dev ipvs0".into(),
            }],
        },
        revisions: vec![
            pb::Revision {
                revision: 7,
                applied_at: at(t0),
                origin: "apply".into(),
            },
            pb::Revision {
                revision: 6,
                applied_at: at(t0 - 60),
                origin: "drain".into(),
            },
        ],
        plan: plan(true, 8),
        events: vec![
            pb::WatchStateEventsResponse {
                time: at(t0),
                event: Some(Event::Applied(pb::Revision {
                    revision: 7,
                    applied_at: at(t0),
                    origin: "apply".into(),
                })),
            },
            pb::WatchStateEventsResponse {
                time: at(t0 + 30),
                event: Some(Event::DriftFound(pb::DriftFound {
                    drift: vec![pb::Drift {
                        description: "ip addr add 10.0.0.1/32 dev ipvs0".into(),
                    }],
                })),
            },
        ],
        ..Default::default()
    });
    let out = ipvsctl(&agent.socket, &["state"], "").await;
    assert_eq!(
        result(&out),
        ok("revision 7, applied 2026-11-25T10:00:00Z\n\
            declared: 1 link, 1 service, 0 attachments\n\
            drift mode: report\n\
            last check: 2026-11-25T10:00:30Z: 1 difference\n\
            \x20 ip addr add 10.0.0.1/32 dev ipvs0\n")
    );
    let out = ipvsctl(&agent.socket, &["state", "revisions"], "").await;
    assert_eq!(
        result(&out),
        ok("REVISION  APPLIED AT            ORIGIN\n\
            \x20      7  2026-11-25T10:00:00Z  apply\n\
            \x20      6  2026-11-25T09:59:00Z  drain\n")
    );
    let out = ipvsctl(
        &agent.socket,
        &["state", "rollback", "6", "--revision", "7"],
        "",
    )
    .await;
    assert_eq!(
        result(&out),
        ok("ip link add ipvs0 type dummy\n-A -t 10.0.0.1:80 -s wlc\nrevision 8\n")
    );
    let out = ipvsctl(&agent.socket, &["state", "events"], "").await;
    assert_eq!(
        result(&out),
        ok("2026-11-25T10:00:00Z applied revision 7 (apply)\n\
            2026-11-25T10:00:30Z drift found: ip addr add 10.0.0.1/32 dev ipvs0\n")
    );
    let out = ipvsctl(&agent.socket, &["-o", "json", "state", "events"], "").await;
    let (code, stdout, _) = result(&out);
    assert_eq!(code, Some(0));
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"time": "2026-11-25T10:00:00Z", "event": "applied", "revision": 7, "origin": "apply"}),
            serde_json::json!({"time": "2026-11-25T10:00:30Z", "event": "drift-found", "drift": ["ip addr add 10.0.0.1/32 dev ipvs0"]}),
        ]
    );
    let calls = agent.calls();
    assert_eq!(
        calls,
        vec![
            "GetState GetStateRequest".to_string(),
            "ListRevisions ListRevisionsRequest".to_string(),
            format!(
                "Rollback {:?}",
                pb::RollbackRequest {
                    revision: 6,
                    dry_run: false,
                    expected_revision: Some(7)
                }
            ),
            "WatchStateEvents WatchStateEventsRequest".to_string(),
            "WatchStateEvents WatchStateEventsRequest".to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_streams_its_progress() {
    let step = |phase: pb::DrainPhase| pb::DrainResponse {
        phase: phase.into(),
        ..Default::default()
    };
    let agent = start(Fake {
        drain: vec![
            pb::DrainResponse {
                previous_weight: 5,
                ..step(pb::DrainPhase::WeightZero)
            },
            pb::DrainResponse {
                active_connections: 2,
                inactive_connections: 1,
                elapsed: Some(prost_types::Duration {
                    seconds: 12,
                    nanos: 0,
                }),
                ..step(pb::DrainPhase::Waiting)
            },
            pb::DrainResponse {
                elapsed: Some(prost_types::Duration {
                    seconds: 31,
                    nanos: 0,
                }),
                removed: true,
                revision: 7,
                ..step(pb::DrainPhase::Done)
            },
        ],
        ..Default::default()
    });
    let out = ipvsctl(
        &agent.socket,
        &[
            "drain",
            "-t",
            "10.0.0.1:80",
            "-r",
            "10.0.1.1",
            "--timeout",
            "90s",
            "--revision",
            "6",
        ],
        "",
    )
    .await;
    assert_eq!(
        result(&out),
        ok("draining 10.0.1.1:80: weight 0 (was 5)\n\
            10.0.1.1:80: 2 active, 1 inactive, 12 s\n\
            10.0.1.1:80: drained in 31 s, removed (revision 7)\n")
    );
    let sent = pb::DrainRequest {
        service: Some(tcp([10, 0, 0, 1], 80)),
        destination: Some(pb::Destination {
            address: v4([10, 0, 1, 1]),
            port: 80,
            ..Default::default()
        }),
        timeout: Some(prost_types::Duration {
            seconds: 90,
            nanos: 0,
        }),
        keep: false,
        expected_revision: Some(6),
    };
    assert_eq!(agent.calls(), vec![format!("Drain {sent:?}")]);

    let out = ipvsctl(
        &agent.socket,
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

    // A bad server address is refused with ipvsadm's words before connecting.
    let out = ipvsctl(
        &agent.socket,
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
    assert_eq!(agent.calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_cut_short_fails() {
    let weight_zero = pb::DrainResponse {
        phase: pb::DrainPhase::WeightZero.into(),
        previous_weight: 5,
        ..Default::default()
    };
    let drain = ["drain", "-t", "10.0.0.1:80", "-r", "10.0.1.1"];
    // The agent says why.
    let agent = start(Fake {
        drain: vec![weight_zero],
        drain_error: Some((
            Code::Aborted,
            "\"-d -t 10.0.0.1:80 -r 10.0.1.1:80\" failed: No such destination",
        )),
        ..Default::default()
    });
    assert_eq!(
        result(&ipvsctl(&agent.socket, &drain, "").await),
        (
            Some(255),
            "draining 10.0.1.1:80: weight 0 (was 5)\n".into(),
            "ipvsctl: \"-d -t 10.0.0.1:80 -r 10.0.1.1:80\" failed: No such destination\n".into()
        )
    );
    // The stream just stops.
    let agent = start(Fake {
        drain: vec![weight_zero],
        ..Default::default()
    });
    assert_eq!(
        result(&ipvsctl(&agent.socket, &drain, "").await),
        (
            Some(255),
            "draining 10.0.1.1:80: weight 0 (was 5)\n".into(),
            "ipvsctl: the drain of 10.0.1.1:80 ended before it was done\n".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_a_stream_quietly() {
    let agent = start(Fake {
        events: vec![pb::WatchStateEventsResponse::default(); 3],
        ..Default::default()
    });
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .args(["--agent", &agent.socket, "state", "events"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .expect("run ipvsctl");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (Some(0), String::new())
    );
}
