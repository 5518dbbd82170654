//! What the integration tests share: running the real `ipvsctl` binary, and an agent for it
//! to talk to, the real agent's routes over its in-memory IPVS table and links
//! (`ipvs_agent::testing`).

// Each test file uses part of this.
#![allow(dead_code)]

use std::process::{Output, Stdio};

pub use ipvs_agent::testing::{Services, TestAgent};
use tokio::io::AsyncWriteExt;

pub const PROGRAM: &str = env!("CARGO_BIN_EXE_ipvsctl");

/// An agent serving what the real one does but policies (no test here needs them).
pub async fn agent() -> TestAgent {
    TestAgent::start(Services {
        policies: false,
        state: true,
    })
    .await
}

/// Runs `ipvsctl args` (named `arg0` when given), with `IPVSCTL_AGENT` set to `agent` (or
/// unset), and `input` on its stdin.
pub async fn run(arg0: Option<&str>, agent: Option<&str>, args: &[&str], input: &str) -> Output {
    let mut cmd = tokio::process::Command::new(PROGRAM);
    if let Some(arg0) = arg0 {
        cmd.arg0(arg0);
    }
    cmd.args(args)
        .env_remove("IPVSCTL_AGENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(a) = agent {
        cmd.env("IPVSCTL_AGENT", a);
    }
    let mut child = cmd.spawn().expect("run ipvsctl");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
    }
    child.wait_with_output().await.expect("wait for ipvsctl")
}

/// `ipvsctl args` against `agent` (or none), with nothing on stdin.
pub async fn ipvsctl(agent: Option<&str>, args: &[&str]) -> Output {
    run(None, agent, args, "").await
}

/// `ipvsctl args` against `agent` with `input` on stdin.
pub async fn ipvsctl_stdin(agent: &str, args: &[&str], input: &str) -> Output {
    run(None, Some(agent), args, input).await
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit status, stdout, stderr.
pub fn result(out: &Output) -> (Option<i32>, String, String) {
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Exit status 0, `stdout`, nothing on stderr.
pub fn ok(stdout: &str) -> (Option<i32>, String, String) {
    (Some(0), stdout.to_string(), String::new())
}

/// Puts `rules` (`ipvsadm -R` input) in `agent`'s table with ipvsctl, as an operator would.
pub async fn restore(agent: &TestAgent, rules: &str) {
    let out = ipvsctl_stdin(&agent.address(), &["-R"], rules).await;
    assert_eq!(result(&out), ok(""), "restoring {rules}");
}
