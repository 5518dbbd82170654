//! `exec`: a command of the operator's, keepalived's `MISC_CHECK` with `misc_dynamic`: exit 0
//! up, 1 down, 2..=255 up with weight `code - 2`, killed by a signal down.
//!
//! The command runs without a shell, stdin and stdout on /dev/null, in a process group of its
//! own. That group is what gets killed: at the timeout, since a check script's children (a
//! `curl`, a `sleep`) would otherwise outlive it; and after a normal exit too, so that a script
//! that left something running in the background leaves nothing behind. A process that puts
//! itself in another group or session escapes this, as it would escape keepalived.
//!
//! The first KiB of stderr is kept and added to a down verdict, where it says why.
//!
//! At most `exec_concurrency` commands run at once; waiting for a turn counts against the
//! timeout, so a backlog shows as timeouts rather than as an ever longer queue.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::{Verdict, human, timeout_reason};
use crate::check::Exec;

/// How long a killed command gets to be reaped past the deadline. SIGKILL cannot be caught;
/// this only covers a process stuck in the kernel (uninterruptible sleep).
pub(super) const REAP_GRACE: Duration = Duration::from_secs(1);
/// How much of stderr is kept for the reason.
const STDERR_CAP: usize = 1024;
/// How long, after the group is gone, stderr may take to reach its end.
const STDERR_DRAIN: Duration = Duration::from_millis(50);

pub(super) async fn probe(
    permits: &Semaphore,
    e: &Exec,
    target: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Verdict {
    let slot_timeout = || {
        Verdict::down(format!(
            "timeout after {}, waiting for an exec slot",
            human(timeout)
        ))
    };
    let _permit = match timeout_at(deadline, permits.acquire()).await {
        // A permit freed just at the deadline can still win the race with the timer: starting
        // a command with no time left would only be killed at once.
        Ok(Ok(_)) if Instant::now() >= deadline => return slot_timeout(),
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Verdict::down("exec: no more permits"),
        Err(_) => return slot_timeout(),
    };
    let Some((program, args)) = e.command.split_first() else {
        return Verdict::down("exec: empty command");
    };
    let mut child = match Command::new(program)
        .args(args)
        .env("IPVS_CHECK_IP", target.ip().to_string())
        .env("IPVS_CHECK_PORT", target.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(err) => return Verdict::down(format!("exec {program}: {err}")),
    };
    // The child leads its group: the group's id is its pid.
    let mut group = match child.id().and_then(|id| i32::try_from(id).ok()) {
        Some(id) => Group(Some(Pid::from_raw(id))),
        None => Group(None),
    };
    let mut stderr = Stderr::new(child.stderr.take());

    let status = tokio::select! {
        biased;
        status = child.wait() => Some(status),
        () = sleep_until(deadline) => None,
        () = stderr.collect() => None, // never: it reads until the probe ends
    };
    // Kill the group either way: at the deadline to stop the command, after an exit to stop
    // what it left behind. After an exit the pid is reaped, but the group id stays reserved by
    // the kernel while any member lives; with none left, `killpg` finds nothing.
    group.kill();
    let Some(status) = status else {
        // Reaped here rather than left to tokio's orphan queue, so the probe returns with
        // nothing of it left. Bounded by the caller's grace.
        let _ = child.wait().await;
        return Verdict::down(timeout_reason(timeout));
    };
    let _ = timeout_at(Instant::now() + STDERR_DRAIN, stderr.collect()).await;
    match status {
        Ok(status) => verdict(status, &stderr.text()),
        Err(err) => Verdict::down(format!("exec {program}: {err}")),
    }
}

fn verdict(status: ExitStatus, stderr: &str) -> Verdict {
    match (status.code(), status.signal()) {
        (Some(0), _) => Verdict::up("exit 0"),
        (Some(code), _) if code >= 2 => {
            let weight = u32::try_from(code - 2).unwrap_or(0);
            Verdict {
                outcome: super::Outcome::Weight(weight),
                reason: format!("exit {code}: weight {weight}"),
            }
        }
        (Some(code), _) => with_stderr(format!("exit {code}"), stderr),
        (None, Some(signal)) => with_stderr(format!("killed by signal {signal}"), stderr),
        (None, None) => Verdict::down(format!("exec: {status}")),
    }
}

fn with_stderr(reason: String, stderr: &str) -> Verdict {
    if stderr.is_empty() {
        Verdict::down(reason)
    } else {
        Verdict::down(format!("{reason}: {stderr}"))
    }
}

/// The command's process group, killed at most once, and on drop if the probe is dropped
/// before it got to it (the caller's own timeout, a shutdown).
struct Group(Option<Pid>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (nothing left) is the usual answer after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first [`STDERR_CAP`] bytes of the command's stderr. The rest is read and dropped, so
/// that a chatty command never blocks on a full pipe.
struct Stderr {
    pipe: Option<ChildStderr>,
    kept: Vec<u8>,
}

impl Stderr {
    fn new(pipe: Option<ChildStderr>) -> Self {
        Stderr {
            pipe,
            kept: Vec::new(),
        }
    }

    /// Reads until the end of the pipe (then waits forever: the caller bounds it).
    async fn collect(&mut self) {
        if let Some(pipe) = &mut self.pipe {
            let mut chunk = [0u8; 1024];
            loop {
                match pipe.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = STDERR_CAP - self.kept.len();
                        self.kept.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
            }
            self.pipe = None;
        }
        std::future::pending::<()>().await
    }

    /// What was kept, on one line.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}
