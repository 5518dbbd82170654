//! The `ipvs-agent` binary refuses a bad command line before it touches the kernel, so these
//! run anywhere (the host has no IPVS).

use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipvs-agent"))
        .args(args)
        // The socket must never be created by a refused start.
        .args(["--unix", "/nonexistent/ipvs-agent-cli-test/agent.sock"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run ipvs-agent")
}

fn insecure_message(addr: &str) -> String {
    format!(
        "error: refusing to listen on {addr} without --insecure: the agent has no authentication \
         yet, so anyone who can reach that address could rewrite this node's IPVS table and \
         links. Listen on a loopback address (127.0.0.1 or ::1) or use the unix socket, or pass \
         --insecure to accept that risk\n"
    )
}

#[test]
fn tcp_beyond_loopback_needs_insecure() {
    for addr in ["0.0.0.0:50051", "10.0.2.15:50051", "[::]:50051"] {
        let out = agent(&["--listen", addr]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{addr}: {stderr}");
        assert!(
            stderr.starts_with(&insecure_message(addr)),
            "{addr}: got {stderr:?}"
        );
        assert!(out.stdout.is_empty(), "{addr}: {:?}", out.stdout);
    }
}

#[test]
fn a_bad_log_filter_is_refused_before_start() {
    let out = agent(&["--log-level", "info,[bad"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid --log-level (or RUST_LOG) \"info,[bad\": "),
        "{stderr:?}"
    );
}

#[test]
fn a_malformed_listen_address_is_a_usage_error() {
    let out = agent(&["--listen", "localhost"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid value 'localhost' for '--listen <ADDR:PORT>'"),
        "{stderr:?}"
    );
}
