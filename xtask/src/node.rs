//! The long-running lab node: `lab up`, `down`, `status` and `exec`.
//!
//! qemu runs daemonized with its state under `.lab/node/`: `qemu.pid`, `ports`,
//! `console.log` and the QMP socket `qmp.sock` (used to stop it cleanly).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::exec;
use crate::image;
use crate::init::{AGENT_PORT, EXEC_PORT, GUEST_IP, Mode};
use crate::lab::{self, VmOpts};
use crate::paths::Paths;
use crate::qemu::{Console, Vm};

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Host port (on 127.0.0.1) forwarded to the agent's gRPC port in the guest.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// Keep qemu in the foreground with the console on this terminal.
    #[arg(long)]
    pub foreground: bool,
    /// Seconds to wait for the guest and its agent.
    #[arg(long, default_value_t = 600)]
    pub boot_timeout: u64,
    #[command(flatten)]
    pub vm: VmOpts,
    /// Extra arguments for ipvs-agent.
    #[arg(last = true)]
    pub agent_args: Vec<String>,
}

/// A recorded node: where it listens and which process runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    dir: PathBuf,
    pid: Option<u32>,
    agent_port: u16,
    exec_port: u16,
}

impl Node {
    fn load(paths: &Paths) -> Result<Option<Self>> {
        let dir = paths.node();
        let Ok(text) = fs::read_to_string(dir.join("ports")) else {
            return Ok(None);
        };
        let (agent_port, exec_port) = parse_ports(&text)?;
        let pid = fs::read_to_string(dir.join("qemu.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Ok(Some(Self {
            dir,
            pid,
            agent_port,
            exec_port,
        }))
    }

    fn exec_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.exec_port))
    }

    /// qemu is running, and it is ours: its command line names this node's directory.
    fn alive(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.contains("qemu-system") && cmdline.contains(&*self.dir.to_string_lossy())
    }

    fn clear(&self) {
        for f in ["qemu.pid", "ports", "qmp.sock", "initrd.img"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
    }
}

fn parse_ports(text: &str) -> Result<(u16, u16)> {
    let mut agent = None;
    let mut exec = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v: u16 = v
            .trim()
            .parse()
            .with_context(|| format!("bad port in {line:?}"))?;
        match k.trim() {
            "agent" => agent = Some(v),
            "exec" => exec = Some(v),
            _ => {}
        }
    }
    match (agent, exec) {
        (Some(a), Some(e)) => Ok((a, e)),
        _ => bail!("ports file lacks agent= or exec="),
    }
}

fn running(paths: &Paths) -> Result<Node> {
    match Node::load(paths)? {
        Some(n) if n.alive() => Ok(n),
        _ => bail!("the lab node is not running: start it with `cargo xtask lab up`"),
    }
}

pub fn up(paths: &Paths, args: UpArgs) -> Result<()> {
    let started = Instant::now();
    if let Some(node) = Node::load(paths)? {
        if node.alive() {
            println!(
                "lab: node already up (pid {}, agent on 127.0.0.1:{})",
                node.pid.unwrap_or_default(),
                node.agent_port
            );
            return Ok(());
        }
        node.clear();
    }
    TcpListener::bind(("127.0.0.1", args.port)).with_context(|| {
        format!(
            "127.0.0.1:{} is in use; choose another port with --port",
            args.port
        )
    })?;
    let exec_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();

    let prep = lab::prepare(paths)?;
    let dir = paths.node();
    fs::create_dir_all(&dir)?;
    let manifest = lab::run_manifest(
        &prep,
        &[],
        &Mode::Up {
            agent_args: args.agent_args.clone(),
        },
        true,
    )?;
    let initrd = dir.join("initrd.img");
    let size = image::assemble(&prep.base, &manifest, &initrd)?;
    let node = Node {
        dir: dir.clone(),
        pid: None,
        agent_port: args.port,
        exec_port,
    };
    fs::write(
        dir.join("ports"),
        format!("agent={}\nexec={exec_port}\n", args.port),
    )?;
    let console_log = dir.join("console.log");
    let _ = fs::remove_file(&console_log);
    let mut extra = vec![
        "-pidfile".to_string(),
        dir.join("qemu.pid").to_string_lossy().into_owned(),
        "-qmp".to_string(),
        format!("unix:{},server=on,wait=off", dir.join("qmp.sock").display()),
    ];
    if !args.foreground {
        extra.push("-daemonize".into());
    }
    let vm = Vm {
        kernel: prep.kernel.clone(),
        initrd,
        memory_mb: args.vm.memory.unwrap_or_else(|| image::memory_mb(size)),
        nic: Some(format!(
            "user,model=e1000,restrict=on,ipv6=off,\
             hostfwd=tcp:127.0.0.1:{}-{GUEST_IP}:{AGENT_PORT},\
             hostfwd=tcp:127.0.0.1:{exec_port}-{GUEST_IP}:{EXEC_PORT}",
            args.port
        )),
        console: if args.foreground {
            Console::Inherit
        } else {
            Console::File(console_log.clone())
        },
        extra,
    };
    eprintln!(
        "lab: booting kernel {} as a node ({} MiB RAM)",
        vm.kernel.version, vm.memory_mb
    );
    let timeout = Duration::from_secs(args.boot_timeout);
    if args.foreground {
        let mut child = vm.command().spawn().context("starting qemu")?;
        let paths = paths.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(1));
            let node = Node::load(&paths).ok().flatten();
            match node.map(|n| wait_ready(&n, timeout, started)) {
                Some(Ok(())) => print_usage(args.port),
                Some(Err(e)) => eprintln!("lab: {e:#}"),
                None => eprintln!("lab: node state vanished"),
            }
        });
        let status = child.wait()?;
        node.clear();
        eprintln!("lab: qemu exited ({status})");
        return Ok(());
    }
    crate::host::run(&mut vm.command())?;
    let node = Node::load(paths)?.context("node state missing after start")?;
    if let Err(e) = wait_ready(&node, timeout, started) {
        if !node.alive() {
            print_tail(&console_log);
            node.clear();
        }
        return Err(e);
    }
    print_usage(args.port);
    Ok(())
}

fn print_usage(port: u16) {
    println!("lab: node up; the agent listens on 127.0.0.1:{port}");
    println!("  export IPVSCTL_AGENT=http://127.0.0.1:{port}");
    println!("  cargo xtask lab exec -- ipvsadm -ln     # run a command in the guest");
    println!(
        "  cargo xtask lab exec -- wget -qO- http://127.0.0.1:8081/   # seed backends on :8081 and :8082"
    );
    println!("  cargo xtask lab down");
}

/// Waits for the exec server, then for the agent to listen in the guest and to be reachable
/// through the forwarded port.
fn wait_ready(node: &Node, timeout: Duration, started: Instant) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_note = Instant::now();
    let mut stage = "the guest";
    loop {
        if !node.alive() {
            bail!(
                "qemu exited while waiting for {stage} (console: {})",
                node.dir.join("console.log").display()
            );
        }
        match exec::capture(node.exec_addr(), &["/lab/agent-status"]) {
            Ok((0, out)) => {
                let out = out.trim();
                if out == "listening" && forwarded(node.agent_port) {
                    eprintln!(
                        "lab: agent reachable on 127.0.0.1:{} after {:.0} s",
                        node.agent_port,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                if let Some(st) = out.strip_prefix("exited") {
                    bail!(
                        "ipvs-agent exited with status {} in the guest; the VM stays up for \
                         inspection (`cargo xtask lab exec -- ...`, console: {}); stop it with \
                         `cargo xtask lab down`",
                        st.trim(),
                        node.dir.join("console.log").display()
                    );
                }
                stage = "the agent";
            }
            Ok((code, _)) => bail!("agent status check failed in the guest (exit {code})"),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {} s waiting for {stage} (--boot-timeout)",
                timeout.as_secs()
            );
        }
        if last_note.elapsed() >= Duration::from_secs(15) {
            eprintln!(
                "lab: waiting for {stage} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            last_note = Instant::now();
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// A connection through qemu's forward stays open when the guest accepted it; qemu closes it
/// at once when nothing listens in the guest.
fn forwarded(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(700)));
    let mut buf = [0u8; 1];
    match conn.read(&mut buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn print_tail(console: &Path) {
    let Ok(text) = fs::read_to_string(console) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("lab: last console lines ({}):", console.display());
    for l in &lines[lines.len().saturating_sub(30)..] {
        eprintln!("  {l}");
    }
}

pub fn down(paths: &Paths) -> Result<()> {
    let Some(node) = Node::load(paths)? else {
        println!("lab: node is not running");
        return Ok(());
    };
    if !node.alive() {
        node.clear();
        println!("lab: node is not running (cleared stale state)");
        return Ok(());
    }
    let pid = node.pid.unwrap_or_default();
    if let Err(e) = qmp_quit(&node.dir.join("qmp.sock")) {
        eprintln!("lab: QMP quit failed ({e:#}); killing qemu {pid}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.alive() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    if node.alive() {
        // The shell's builtin: procps may not be installed.
        crate::host::run(Command::new("sh").args(["-c", &format!("kill -KILL {pid}")]))?;
        thread::sleep(Duration::from_millis(300));
    }
    if node.alive() {
        bail!("qemu {pid} did not stop");
    }
    node.clear();
    println!("lab: node stopped");
    Ok(())
}

fn qmp_quit(socket: &Path) -> Result<()> {
    let mut conn = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?; // greeting
    conn.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    conn.write_all(b"{\"execute\":\"quit\"}\n")?;
    // Hanging up at once can beat the command; wait for its reply or for qemu to go.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) if line.contains("\"return\"") || line.contains("SHUTDOWN") => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// Prints the node's state; returns false when it is down.
pub fn status(paths: &Paths) -> Result<bool> {
    let node = match Node::load(paths)? {
        Some(n) if n.alive() => n,
        _ => {
            println!("lab: node is down");
            return Ok(false);
        }
    };
    println!(
        "lab: node is up (qemu pid {})",
        node.pid.unwrap_or_default()
    );
    println!(
        "  agent: 127.0.0.1:{} -> {GUEST_IP}:{AGENT_PORT}",
        node.agent_port
    );
    println!(
        "  exec:  127.0.0.1:{} -> {GUEST_IP}:{EXEC_PORT}",
        node.exec_port
    );
    println!("  console: {}", node.dir.join("console.log").display());
    match exec::capture(node.exec_addr(), &["/lab/agent-status"]) {
        Ok((0, out)) => println!("  ipvs-agent: {}", out.trim()),
        Ok((code, _)) => println!("  ipvs-agent: status check exited {code}"),
        Err(e) => println!("  exec server: unreachable ({e:#})"),
    }
    Ok(true)
}

/// Runs `command` in the guest; returns its exit status.
pub fn exec(paths: &Paths, command: &[String], with_stdin: bool) -> Result<i32> {
    let node = running(paths)?;
    let mut stdin = Vec::new();
    if with_stdin {
        std::io::stdin()
            .read_to_end(&mut stdin)
            .context("reading stdin")?;
    }
    exec::run(node.exec_addr(), command, stdin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file() {
        assert_eq!(
            parse_ports("agent=50051\nexec=40001\n").ok(),
            Some((50051, 40001))
        );
        assert_eq!(
            parse_ports("agent=50051\n").map_err(|e| e.to_string()),
            Err("ports file lacks agent= or exec=".to_string())
        );
        assert_eq!(
            parse_ports("agent=99999\nexec=1\n").map_err(|e| e.to_string()),
            Err("bad port in \"agent=99999\"".to_string())
        );
    }
}
