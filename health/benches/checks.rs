//! What health checks cost the node that runs them: N checks at 1 s intervals against local
//! listeners, measured as the checker process's CPU time over wall time (one core = 100 %).
//!
//! `cargo bench -p ipvs-health --bench checks`. The budget is 10,000 checks at 1 s under 20 %
//! of one core. The listeners run in a child process (this binary again, `--serve`), so the
//! figure is the checker's own cost: user + system time of this process from `getrusage`,
//! connects and the kernel's loopback work on the probing side included.
//!
//! Per case (kind × runtime × size): a fresh runtime and [`Runner`] with `MAX_IN_FLIGHT`
//! (the agent's 256), a warm-up, then the measured window. Probes are counted by the checker:
//! with every server up, a check's streak grows by one per probe, so the sum of the streaks at
//! the end of the window minus at its start is the probes done in it.
//!
//! Environment: `HEALTH_BENCH_SIZES` (default `2500,10000`), `HEALTH_BENCH_SECONDS` (measured
//! window, default 10), `HEALTH_BENCH_WARMUP` (default 3), `HEALTH_BENCH_REPEAT` (runs per
//! case, the median shown; default 3), `HEALTH_BENCH_KINDS` (`tcp,http`),
//! `HEALTH_BENCH_RUNTIMES` (`floor,multi,current`: see [`floor_once`]; multi-thread with one
//! worker; current-thread).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipvs_health::check::{Check, Http, Kind, State};
use ipvs_health::probe::Prober;
use ipvs_health::runner::{Runner, Target};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The agent's bound on probes in flight (agent/src/declared/health.rs).
const MAX_IN_FLIGHT: usize = 256;
/// Listening ports per kind, shared round-robin by the checks.
const LISTENERS: usize = 100;
/// The budget at 10,000 checks, in % of one core.
const BUDGET: f64 = 20.0;
const BUDGET_CHECKS: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        serve();
        return;
    }
    // `cargo test --benches` runs this without `--bench`: nothing to check there.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("checks: a benchmark; run it with `cargo bench -p ipvs-health --bench checks`");
        return;
    }
    bench();
}

// ---------------------------------------------------------------------------------------------
// The listeners (child process).

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Binds the listeners, prints `tcp PORT,PORT...` and `http PORT,...`, serves until stdin
/// closes (the parent gone).
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut lines = String::new();
        for kind in ["tcp", "http"] {
            let mut ports = Vec::new();
            for _ in 0..LISTENERS {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind a listener");
                ports.push(l.local_addr().expect("addr").port().to_string());
                let http = kind == "http";
                tokio::spawn(async move {
                    loop {
                        let Ok((s, _)) = l.accept().await else {
                            continue;
                        };
                        if http {
                            tokio::spawn(answer(s));
                        }
                        // tcp: closed at once, as a server's kernel would after the handshake
                        // for all a connect check cares.
                    }
                });
            }
            lines.push_str(&format!("{kind} {}\n", ports.join(",")));
        }
        let mut out = std::io::stdout();
        out.write_all(lines.as_bytes()).expect("stdout");
        out.flush().expect("stdout");
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .expect("stdin");
    });
    std::process::exit(0);
}

/// Reads a request head, answers 200 and closes.
async fn answer(mut s: tokio::net::TcpStream) {
    let mut buf = [0u8; 1024];
    let mut have = 0;
    loop {
        match s.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") || have == buf.len() {
            break;
        }
    }
    let _ = s.write_all(RESPONSE).await;
}

// ---------------------------------------------------------------------------------------------
// The checker (this process).

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process (all its threads).
fn cpu_time() -> Duration {
    let ru = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(ru.user_time()) + tv(ru.system_time())
}

/// Raises the soft limit on open files to the hard one; the limit now.
fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    probes_per_s: f64,
    cpu_pct: f64,
    /// Checks not up at the end of the window, or whose last probe failed.
    failing: usize,
}

fn check(kind: &str) -> Check {
    let kind = match kind {
        "tcp" => Kind::Tcp,
        "http" => Kind::Http(Http {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            host: None,
            expect: Vec::new(),
            body: None,
            tls: None,
        }),
        k => panic!("unknown kind {k}"),
    };
    Check {
        kind,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 3,
        initial: State::Up,
        ..Check::default()
    }
}

fn runtime(flavour: &str) -> tokio::runtime::Runtime {
    let mut b = match flavour {
        "multi" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(1);
            b
        }
        "current" => tokio::runtime::Builder::new_current_thread(),
        f => panic!("unknown runtime {f}"),
    };
    b.enable_all().build().expect("runtime")
}

fn flavour_name(flavour: &str) -> &'static str {
    match flavour {
        "multi" => "multi-thread, 1 worker",
        "floor" => "floor: blocking probes, no runner",
        _ => "current-thread",
    }
}

fn measure_once(
    kind: &str,
    flavour: &str,
    n: usize,
    ports: &[u16],
    warmup: Duration,
    window: Duration,
) -> Measure {
    if flavour == "floor" {
        return floor_once(kind, n, ports, warmup, window);
    }
    let rt = runtime(flavour);
    let m = rt.block_on(async {
        let (runner, _rx) = Runner::new(Arc::new(Prober::new(4)), MAX_IN_FLIGHT);
        let check = check(kind);
        runner.set(
            (0..n)
                .map(|i| Target {
                    id: i as u32,
                    check: check.clone(),
                    addr: SocketAddr::from(([127, 0, 0, 1], ports[i % ports.len()])),
                })
                .collect(),
        );
        tokio::time::sleep(warmup).await;
        let streaks = |runner: &Runner<u32>| -> (u64, usize) {
            let all = runner.statuses();
            let failing = all
                .values()
                .filter(|s| {
                    s.state != State::Up || s.last.as_ref().is_none_or(|r| !r.outcome.is_up())
                })
                .count();
            (all.values().map(|s| u64::from(s.streak)).sum(), failing)
        };
        let (s0, _) = streaks(&runner);
        let (c0, t0) = (cpu_time(), Instant::now());
        tokio::time::sleep(window).await;
        let (c1, t1) = (cpu_time(), Instant::now());
        let (s1, failing) = streaks(&runner);
        drop(runner);
        let wall = (t1 - t0).as_secs_f64();
        Measure {
            probes_per_s: (s1 - s0) as f64 / wall,
            cpu_pct: (c1 - c0).as_secs_f64() / wall * 100.0,
            failing,
        }
    });
    drop(rt);
    m
}

/// The same probes without the runner or any runtime: one thread making them blocking, paced
/// in 1 ms batches at `n` per second. What the kernel alone charges a prober for them on
/// loopback (both ends of each handshake run in the prober's system calls there), so that
/// "runner − floor" is what the runner and tokio add.
fn floor_once(kind: &str, n: usize, ports: &[u16], warmup: Duration, window: Duration) -> Measure {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let addrs: Vec<SocketAddr> = ports
        .iter()
        .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let http = kind == "http";
    let worker = {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_nanos() * n as u128 / 1_000_000_000) as u64;
                while i < due {
                    if !floor_probe(addrs[i as usize % addrs.len()], http) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                    done.store(i, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(warmup);
    let (p0, f0) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let (c0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(window);
    let (c1, t1) = (cpu_time(), Instant::now());
    let (p1, f1) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("floor thread");
    let wall = (t1 - t0).as_secs_f64();
    Measure {
        probes_per_s: (p1 - p0) as f64 / wall,
        cpu_pct: (c1 - c0).as_secs_f64() / wall * 100.0,
        failing: (f1 - f0) as usize,
    }
}

/// One blocking probe as the probes make it: a connect that closes with a reset
/// (`SO_LINGER` 0), and for http the request and the status line.
fn floor_probe(addr: SocketAddr, http: bool) -> bool {
    let Ok(socket) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
    else {
        return false;
    };
    if socket.set_linger(Some(Duration::ZERO)).is_err() || socket.connect(&addr.into()).is_err() {
        return false;
    }
    let mut s = std::net::TcpStream::from(socket);
    if !http {
        return true;
    }
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: ipvs-health\r\n\
         Accept: */*\r\n\r\n"
    );
    let mut buf = [0u8; 1024];
    s.write_all(request.as_bytes()).is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench() {
    let sizes: Vec<usize> = env_list("HEALTH_BENCH_SIZES", "2500,10000")
        .iter()
        .map(|s| s.parse().expect("HEALTH_BENCH_SIZES: numbers"))
        .collect();
    let kinds = env_list("HEALTH_BENCH_KINDS", "tcp,http");
    let flavours = env_list("HEALTH_BENCH_RUNTIMES", "floor,multi,current");
    let window = Duration::from_secs(env_num("HEALTH_BENCH_SECONDS", 10));
    let warmup = Duration::from_secs(env_num("HEALTH_BENCH_WARMUP", 3));
    let repeat = env_num("HEALTH_BENCH_REPEAT", 3).max(1) as usize;
    let nofile = raise_nofile();

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the listeners");
    let mut ports = std::collections::HashMap::new();
    let mut out = BufReader::new(child.stdout.take().expect("listeners' stdout"));
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).expect("listeners' ports");
        let (kind, list) = line.trim().split_once(' ').expect("`kind ports`");
        let list: Vec<u16> = list.split(',').map(|p| p.parse().expect("port")).collect();
        ports.insert(kind.to_owned(), list);
    }

    eprintln!(
        "checks: {} cores, RLIMIT_NOFILE {nofile}, {LISTENERS} listeners per kind in a child \
         process, window {}s after {}s warm-up, median of {repeat}; load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        window.as_secs(),
        warmup.as_secs(),
        load()
    );
    let mut rows = Vec::new();
    let mut over = false;
    for kind in &kinds {
        // Per size: the floor's CPU share, when measured (it comes first).
        let mut floors = std::collections::HashMap::new();
        for flavour in &flavours {
            let mut at = Vec::new();
            for &n in &sizes {
                let mut runs = Vec::new();
                for r in 0..repeat {
                    let m = measure_once(kind, flavour, n, &ports[kind.as_str()], warmup, window);
                    eprintln!(
                        "  {kind} {n} ({}), run {}: {:.0} probes/s, {:.2} % cpu, {} failing; \
                         load {}",
                        flavour_name(flavour),
                        r + 1,
                        m.probes_per_s,
                        m.cpu_pct,
                        m.failing,
                        load()
                    );
                    runs.push(m);
                }
                let m = Measure {
                    probes_per_s: median(runs.iter().map(|m| m.probes_per_s).collect()),
                    cpu_pct: median(runs.iter().map(|m| m.cpu_pct).collect()),
                    failing: runs.iter().map(|m| m.failing).max().unwrap_or(0),
                };
                at.push((n, m));
            }
            for (i, &(n, m)) in at.iter().enumerate() {
                let linear = if i > 0 {
                    let (pn, pm) = at[i - 1];
                    format!(
                        " (linear: {pn} → {:.1} %, ×{:.2} for ×{:.2} checks)",
                        pm.cpu_pct,
                        m.cpu_pct / pm.cpu_pct,
                        n as f64 / pn as f64
                    )
                } else {
                    String::new()
                };
                if flavour == "floor" {
                    floors.insert(n, m.cpu_pct);
                }
                let own = match floors.get(&n) {
                    Some(f) if flavour != "floor" => {
                        format!(", floor {f:.1} % → runner's own {:.1} %", m.cpu_pct - f)
                    }
                    _ => String::new(),
                };
                let budget = if flavour != "floor" && n == BUDGET_CHECKS && m.cpu_pct >= BUDGET {
                    over = true;
                    " OVER BUDGET"
                } else {
                    ""
                };
                let failing = if m.failing > 0 {
                    format!(", {} failing", m.failing)
                } else {
                    String::new()
                };
                println!(
                    "{kind} {n} checks @1s ({}): {:.0} probes/s, {:.1} % of one core{own}\
                     {linear}{failing}{budget}",
                    flavour_name(flavour),
                    m.probes_per_s,
                    m.cpu_pct
                );
                rows.push((kind.clone(), flavour_name(flavour), n, m));
            }
        }
    }
    println!();
    println!("| check | runtime | checks | probes/s | CPU, % of one core |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (kind, flavour, n, m) in rows {
        println!(
            "| {kind} | {flavour} | {n} | {:.0} | {:.1} |",
            m.probes_per_s, m.cpu_pct
        );
    }
    drop(child.stdin.take());
    let _ = child.wait();
    if over {
        eprintln!("checks: over the budget of {BUDGET} % of one core at {BUDGET_CHECKS} checks");
        std::process::exit(1);
    }
}
