//! Harness for the end-to-end tests. They run only inside the lab VM (`cargo xtask lab test`),
//! as root on a real kernel with IPVS; each test enters its own network namespace, so each has
//! its own IPVS table, links and loopback, and starts its own `ipvs-agent` there.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns, unshare};

pub mod api;
pub mod component;
pub mod corpus;

/// Fails loudly outside the lab VM: these tests must never pass by skipping.
pub fn require_lab() {
    if std::env::var_os("IPVS_LAB").is_none() {
        panic!("e2e tests run only inside the lab VM: use `cargo xtask lab test`");
    }
}

/// Directory holding `ipvs-agent` and `ipvsctl` inside the guest.
pub fn bin_dir() -> PathBuf {
    require_lab();
    std::env::var_os("IPVS_E2E_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin"))
}

/// A fresh network namespace for the current thread; the previous one is restored on drop.
/// Child processes started from this thread inherit it.
#[derive(Debug)]
pub struct Netns {
    previous: File,
}

impl Netns {
    pub fn new() -> Result<Self> {
        require_lab();
        let previous = File::open("/proc/thread-self/ns/net").context("open own netns")?;
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        let ns = Netns { previous };
        run_ok("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Moves the current thread into `agent`'s namespace (to act behind its back) until drop.
    pub fn enter(agent: &Agent) -> Result<Self> {
        require_lab();
        let previous = File::open("/proc/thread-self/ns/net").context("open own netns")?;
        let path = format!("/proc/{}/ns/net", agent._child.0.id());
        let target = File::open(&path).with_context(|| format!("open {path}"))?;
        setns(&target, CloneFlags::CLONE_NEWNET).context("setns into the agent's netns")?;
        Ok(Netns { previous })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.previous, CloneFlags::CLONE_NEWNET) {
            eprintln!("restoring the network namespace failed: {e}");
        }
    }
}

/// Kills and reaps a child process on drop.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command, capturing stdout and stderr.
pub fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Result<Output> {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawn {program:?}"))
}

/// Runs a command and fails unless it exits 0.
pub fn run_ok(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Result<String> {
    let program = program.as_ref();
    let out = run(program, args)?;
    if !out.status.success() {
        bail!(
            "{program:?} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The real ipvsadm, the oracle.
pub fn ipvsadm(args: &[&str]) -> Result<Output> {
    run("ipvsadm", args)
}

/// `ipvsadm -Sn`: the table in a comparable text form.
pub fn table_snapshot() -> Result<String> {
    run_ok("ipvsadm", &["-Sn"])
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// An `ipvs-agent` serving a unix socket in the current thread's network namespace.
#[derive(Debug)]
pub struct Agent {
    pub socket: PathBuf,
    _child: ChildGuard,
    dir: PathBuf,
}

impl Agent {
    /// Starts the agent and waits until its socket accepts connections.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "ipvs-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("agent.sock");
        let socket_str = socket.to_str().context("socket path")?.to_owned();
        // A state directory of its own unless the test names one: an agent reconciles the node
        // to the revisions it finds there, so a shared one would carry state between tests.
        let state = dir.join("state");
        let state_str = state.to_str().context("state path")?.to_owned();
        let mut args = vec!["--unix", socket_str.as_str()];
        if !extra.contains(&"--state-dir") {
            args.extend(["--state-dir", state_str.as_str()]);
        }
        args.extend_from_slice(extra);
        let child = Command::new(bin_dir().join("ipvs-agent"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("agent.log"))?)
            .spawn()
            .context("spawn ipvs-agent")?;
        let agent = Agent {
            socket,
            _child: ChildGuard(child),
            dir,
        };
        agent.wait_ready()?;
        Ok(agent)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "ipvs-agent did not listen on {:?}: {}",
            self.socket,
            self.log()
        )
    }

    /// The agent's process id, to read its memory figures from /proc.
    pub fn pid(&self) -> u32 {
        self._child.0.id()
    }

    /// The agent's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `unix:PATH`, as ipvsctl's `--agent` takes it.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Runs `ipvsctl` against this agent.
    pub fn ipvsctl(&self, args: &[&str]) -> Result<Output> {
        Command::new(bin_dir().join("ipvsctl"))
            .args(args)
            .env("IPVSCTL_AGENT", self.address())
            .stdin(Stdio::null())
            .output()
            .context("spawn ipvsctl")
    }

    /// Runs `ipvsctl` and fails unless it exits 0; returns stdout.
    pub fn ipvsctl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.ipvsctl(args)?;
        if !out.status.success() {
            bail!(
                "ipvsctl {args:?} failed ({}): {}\nagent log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A tonic channel to the agent's unix socket, for tests of the gRPC API itself.
    pub async fn channel(&self) -> Result<tonic::transport::Channel> {
        let path = self.socket.clone();
        let channel = tonic::transport::Endpoint::try_from("http://agent.invalid")?
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await?;
        Ok(channel)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A busybox httpd serving one page on `addr`, in the current netns.
#[derive(Debug)]
pub struct Backend {
    _child: ChildGuard,
    _dir: PathBuf,
}

impl Backend {
    pub fn start(addr: SocketAddr, body: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "ipvs-e2e-www-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("index.html"), body)?;
        let child = Command::new("busybox")
            .args(["httpd", "-f", "-p", &addr.to_string(), "-h"])
            .arg(&dir)
            .stdin(Stdio::null())
            .spawn()
            .context("spawn busybox httpd")?;
        let backend = Backend {
            _child: ChildGuard(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("backend {addr} did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(backend)
    }
}

/// One HTTP/1.0 GET; returns the response body.
pub fn http_get(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .with_context(|| format!("malformed HTTP response: {resp:?}"))?;
    Ok(body)
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Stdout of an `Output` as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of an `Output` as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether a path exists (for readability at call sites).
pub fn exists(p: impl AsRef<Path>) -> bool {
    p.as_ref().exists()
}
