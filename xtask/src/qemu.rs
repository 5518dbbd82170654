//! Booting the guest under qemu (TCG only: the build machines' KVM cannot run a stock kernel)
//! and following its serial console with a deadline.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::kernel::Kernel;

/// Where the guest's serial console goes.
#[derive(Debug, Clone)]
pub enum Console {
    /// A pipe read by [`stream`].
    Pipe,
    /// Straight to the terminal (`lab up --foreground`).
    Inherit,
    /// A file, for a daemonized node.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub kernel: Kernel,
    pub initrd: PathBuf,
    pub memory_mb: u64,
    /// `-nic` argument; `none` when unset.
    pub nic: Option<String>,
    pub console: Console,
    /// Extra arguments (e.g. `-daemonize`).
    pub extra: Vec<String>,
}

impl Vm {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-smp", "1", "-no-reboot", "-nodefaults"])
            .args(["-no-user-config", "-display", "none"])
            .arg("-m")
            .arg(self.memory_mb.to_string())
            .arg("-kernel")
            .arg(&self.kernel.vmlinuz)
            .arg("-initrd")
            .arg(&self.initrd)
            .args(["-append", "console=ttyS0 quiet loglevel=4 panic=-1"])
            .arg("-nic")
            .arg(self.nic.as_deref().unwrap_or("none"))
            .args(&self.extra)
            .stdin(Stdio::null());
        match &self.console {
            Console::Pipe => {
                cmd.args(["-serial", "stdio"]).stdout(Stdio::piped());
            }
            Console::Inherit => {
                cmd.args(["-serial", "stdio"]);
            }
            Console::File(path) => {
                cmd.arg("-serial").arg(format!("file:{}", path.display()));
            }
        }
        cmd
    }
}

/// How a streamed boot ended.
#[derive(Debug)]
pub enum End {
    /// qemu exited (the guest powered off or panicked).
    Exited(ExitStatus),
    /// The deadline passed; qemu was killed.
    TimedOut,
}

/// What the line handler wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The final marker was seen: allow a short grace period for poweroff, then stop.
    Finished,
}

/// Kills qemu if the host side bails out early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Boots `vm` with a piped console and hands each line (without `\r\n`) to `on_line`.
/// Never hangs: a reader thread feeds a channel that the caller drains against `timeout`, and
/// the channel closes when qemu's stdout does.
pub fn stream(vm: &Vm, timeout: Duration, mut on_line: impl FnMut(&str) -> Flow) -> Result<End> {
    let mut cmd = vm.command();
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().context("starting qemu-system-x86_64")?);
    let stdout = child.0.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut deadline = Instant::now() + timeout;
    let mut finished = false;
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if on_line(&line) == Flow::Finished && !finished {
                    finished = true;
                    deadline = deadline.min(Instant::now() + Duration::from_secs(60));
                }
            }
            Err(RecvTimeoutError::Disconnected) => break None,
            Err(RecvTimeoutError::Timeout) => break Some(End::TimedOut),
        }
    };
    let end = match end {
        Some(End::TimedOut) if finished => {
            // The result is in; a guest that does not power off is not a failure.
            let _ = child.0.kill();
            End::Exited(child.0.wait()?)
        }
        Some(e) => {
            let _ = child.0.kill();
            let _ = child.0.wait();
            e
        }
        None => End::Exited(child.0.wait()?),
    };
    let _ = reader.join();
    Ok(end)
}
