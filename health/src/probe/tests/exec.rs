use std::path::Path;

use super::*;
use crate::check::Exec;

fn sh(script: &str) -> Kind {
    Kind::Exec(Exec {
        command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
    })
}

fn target() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("address")
}

/// A process's state letter in /proc (`R`, `S`, `Z`...), `None` once it is gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits (a little) until `pid` is gone or a zombie: not running, whatever reaps it. A
/// grandchild is reparented to whichever process adopts orphans, which may never reap it.
async fn assert_dies(pid: i32) {
    for _ in 0..100 {
        match proc_state(pid) {
            None | Some('Z') | Some('X') => return,
            Some(_) => tokio::time::sleep(ms(20)).await,
        }
    }
    panic!("process {pid} still running: {:?}", proc_state(pid));
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

#[tokio::test]
async fn exec_exit_codes() {
    let r = probe(&sh("exit 0"), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Up, "exit 0");
    let r = probe(&sh("exit 1"), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Down, "exit 1");
    let r = probe(&sh("exit 7"), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Weight(5), "exit 7: weight 5");
    let r = probe(&sh("exit 2"), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Weight(0), "exit 2: weight 0");
    let r = probe(&sh("exit 255"), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Weight(253), "exit 255: weight 253");
}

#[tokio::test]
async fn exec_stderr_says_why() {
    let r = probe(
        &sh("echo 'db down:\n  replica lag' >&2; exit 1"),
        target(),
        ms(2000),
    )
    .await;
    assert_verdict(&r, Outcome::Down, "exit 1: db down: replica lag");
    let long = probe(
        &sh("head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1"),
        target(),
        ms(2000),
    )
    .await;
    assert_eq!(long.reason.len(), "exit 1: ".len() + 1024, "{long:?}");
}

#[tokio::test]
async fn exec_killed_by_a_signal() {
    let r = probe(&sh("kill -9 $$"), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Down, "killed by signal 9");
}

#[tokio::test]
async fn exec_sees_the_target_and_nothing_on_stdin() {
    let script = r#"[ "$IPVS_CHECK_IP" = 127.0.0.1 ] && [ "$IPVS_CHECK_PORT" = 8080 ] \
        && [ -z "$(cat)" ] && [ "$(ps -o pgid= -p $$ | tr -d ' ')" = $$ ]"#;
    let r = probe(&sh(script), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Up, "exit 0");
}

#[tokio::test]
async fn exec_missing_program() {
    let kind = Kind::Exec(Exec {
        command: vec!["/nonexistent/check".to_owned()],
    });
    let r = probe(&kind, target(), ms(500)).await;
    assert_verdict(
        &r,
        Outcome::Down,
        "exec /nonexistent/check: No such file or directory (os error 2)",
    );
}

#[tokio::test]
async fn exec_hanging_is_killed_and_reaped_at_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let timeout = ms(300);
    let r = probe(&sh(&script), target(), timeout).await;
    assert_verdict(&r, Outcome::Down, "timeout after 300ms");
    assert_bounded(&r, timeout);
    // Reaped by the probe itself: not even a zombie is left.
    assert_eq!(proc_state(read_pid(&pidfile)), None);
}

#[tokio::test]
async fn exec_leaves_nothing_behind_after_a_clean_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; exit 0", pidfile.display());
    let r = probe(&sh(&script), target(), ms(2000)).await;
    assert_verdict(&r, Outcome::Up, "exit 0");
    assert!(r.latency < ms(1000), "{r:?}");
    assert_dies(read_pid(&pidfile)).await;
}

#[tokio::test]
async fn exec_dropped_probe_kills_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let prober = Prober::new(1);
    let kind = sh(&script);
    // The caller gives up before the probe's own timeout.
    let cut = tokio::time::timeout(ms(300), prober.probe(&kind, target(), ms(5000))).await;
    assert!(cut.is_err());
    assert_dies(read_pid(&pidfile)).await;
}

#[tokio::test]
async fn exec_waiting_for_a_slot_counts_against_the_timeout() {
    let prober = Prober::new(1);
    let kind = sh("sleep 2");
    // The first takes the only slot and keeps it to its timeout, past the second's.
    let (a, b) = tokio::join!(
        prober.probe(&kind, target(), ms(500)),
        prober.probe(&kind, target(), ms(200))
    );
    assert_verdict(&a, Outcome::Down, "timeout after 500ms");
    assert_verdict(
        &b,
        Outcome::Down,
        "timeout after 200ms, waiting for an exec slot",
    );
    assert_bounded(&a, ms(500));
    assert_bounded(&b, ms(200));
}
