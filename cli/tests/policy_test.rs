//! `ipvsctl policy test` on components that use WASI through Rust's standard library: the
//! binary runs its evaluation inside a tokio runtime, where WASI output, file access and a
//! panic's message once panicked the CLI itself (exit 101) instead of reporting.

#![cfg(feature = "policy-test")]

#[path = "../../policy-engine/tests/support/guests.rs"]
mod guests;

use std::process::Output;

use serde_json::Value;

/// `ipvsctl policy test` of the chatty fixture with `params` (a JSON object).
fn policy_test(params: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chatty.wasm");
    std::fs::write(&file, guests::component("chatty")).expect("write component");
    let input = format!(
        r#"{{"service": "TCP 10.0.0.1:80", "servers": [{{"address": "10.0.0.2", "port": 80}}],
            "params": {params}}}"#
    );
    std::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .args(["policy", "test"])
        .arg(&file)
        .args(["--input", &input])
        .output()
        .expect("runs ipvsctl")
}

/// The report: on stdout when the policy succeeded, on stderr when it failed.
fn report(out: &Output) -> Value {
    let text = if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    };
    serde_json::from_slice(text).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_policy_that_prints_succeeds() {
    let out = policy_test(r#"{"stdout": "100", "stderr": "10", "log": "10"}"#);
    assert_eq!(out.status.code(), Some(0));
    let r = report(&out);
    assert_eq!(
        r["decision"]["reason"],
        "printed 100, eprinted 10, logged 10"
    );
    assert_eq!(r["stdout"].as_str().map(str::len), Some(100));
    assert_eq!(r["output_truncated"], false);
}

#[test]
fn output_past_the_cap_is_reported_as_truncated() {
    let out = policy_test(r#"{"stdout": "65536"}"#);
    assert_eq!(out.status.code(), Some(0));
    let r = report(&out);
    assert_eq!(r["decision"]["reason"], "printed 65536");
    assert_eq!(r["stdout"].as_str().map(str::len), Some(16384));
    assert_eq!(r["stdout_dropped"], 65536 - 16384);
    assert_eq!(r["output_truncated"], true);
}

#[test]
fn a_policy_that_reads_a_file_finds_none() {
    let out = policy_test(r#"{"read": "/etc/passwd"}"#);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        report(&out)["decision"]["reason"],
        "read /etc/passwd: entity not found"
    );
}

#[test]
fn a_policy_that_panics_is_a_trap() {
    let out = policy_test(r#"{"panic": "policy gave up"}"#);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    assert_eq!(r["ok"], false);
    assert_eq!(
        r["failure"],
        serde_json::json!({
            "kind": "trap",
            "message": "trapped: wasm trap: wasm `unreachable` instruction executed",
        })
    );
    let stderr = r["stderr"].as_str().unwrap_or_default();
    assert!(stderr.contains("policy gave up"), "{stderr}");
}
