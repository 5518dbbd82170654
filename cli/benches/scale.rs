//! How ipvsctl and the agent's own code grow with the table, without the kernel: the real
//! `ipvsctl` binary against the real agent routes over the in-memory IPVS table, at two sizes
//! (N services × 4 real servers), each operation run three times (median).
//!
//! `cargo bench -p ipvsctl --bench scale` (sizes: `SCALE_SIZES=2000,8000`, the default).
//! The kernel's own cost is measured by `cargo xtask bench` in the lab VM; what this measures
//! is everything else, which must grow linearly: an operation whose time grows more than
//! [`GROWTH_BUDGET`] times the size ratio is marked and the run exits 1.

use std::process::Stdio;
use std::time::{Duration, Instant};

use ipvs_agent::testing::{Services, TestAgent};
use tokio::io::AsyncWriteExt;

/// Allowed time growth per size growth: fixed costs make linear work grow less than the
/// size, so anything past this is work done per pair of items.
const GROWTH_BUDGET: f64 = 1.5;
const RUNS: usize = 3;

/// `ipvsadm -R` input: `n` round-robin services with 4 masquerading real servers each; the
/// first real server of service `bump` gets weight 7.
fn rules(n: usize, bump: Option<usize>) -> String {
    let mut s = String::new();
    for i in 0..n {
        let vip = format!("10.{}.{}.{}:80", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        s.push_str(&format!("-A -t {vip} -s rr\n"));
        for r in 0..4 {
            let w = if bump == Some(i) && r == 0 { 7 } else { 1 };
            let rs = format!("192.168.{r}.{}:8080", i % 250 + 1);
            s.push_str(&format!("-a -t {vip} -r {rs} -m -w {w}\n"));
        }
    }
    s
}

/// Runs ipvsctl once (stdin written while its output is read); its stdout and how long it
/// took. A failure ends the benchmark with ipvsctl's message.
async fn ipvsctl(agent: &TestAgent, args: &[&str], input: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .args(args)
        .env("IPVSCTL_AGENT", agent.address())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ipvsctl");
    let mut stdin = child.stdin.take().expect("ipvsctl's stdin");
    let input = input.to_owned();
    let writer = tokio::spawn(async move {
        // ipvsctl may finish without reading its input; that is not an error here.
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let out = child.wait_with_output().await.expect("wait for ipvsctl");
    let took = started.elapsed();
    let _ = writer.await;
    assert!(
        out.status.success(),
        "ipvsctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The operations at size `n`, in order, with their median times.
async fn measure(n: usize) -> Vec<(&'static str, Duration)> {
    let agent = TestAgent::start(Services {
        policies: false,
        state: true,
    })
    .await;
    let base = rules(n, None);
    let bumped = rules(n, Some(n / 2));
    let file = agent.dir().join("node.yaml");
    let file = file.display().to_string();
    let mut out = Vec::new();
    let mut times = Vec::new();
    for _ in 0..RUNS {
        ipvsctl(&agent, &["-C"], "").await;
        times.push(ipvsctl(&agent, &["-R"], &base).await.1);
    }
    out.push(("-R into an empty table", median(times)));
    let steps: [(&str, Vec<&str>, &str); 6] = [
        ("-Sn", vec!["-Sn"], ""),
        ("-Ln", vec!["-Ln"], ""),
        ("-Ln --stats", vec!["-Ln", "--stats"], ""),
        ("-R --replace, no change", vec!["-R", "--replace"], &base),
        ("-R --replace, one weight", vec!["-R", "--replace"], &bumped),
        ("export", vec!["export"], ""),
    ];
    for (name, args, input) in &steps {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(ipvsctl(&agent, args, input).await.1);
        }
        out.push((*name, median(times)));
    }
    let (exported, _) = ipvsctl(&agent, &["export"], "").await;
    std::fs::write(&file, exported).expect("write the export");
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    for _ in 0..RUNS {
        ipvsctl(&agent, &["-C"], "").await;
        fresh.push(ipvsctl(&agent, &["apply", "-f", &file], "").await.1);
        again.push(ipvsctl(&agent, &["apply", "-f", &file], "").await.1);
    }
    out.push(("apply -f, empty table", median(fresh)));
    out.push(("apply -f, no change", median(again)));
    agent.stop().await.expect("a clean stop");
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "2000,8000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("SCALE_SIZES: sizes separated by commas")
        })
        .collect();
    let [small, large] = sizes[..] else {
        panic!("SCALE_SIZES: two sizes, e.g. 2000,8000");
    };
    eprintln!("scale: {small} and {large} services × 4 real servers, median of {RUNS}");
    let a = measure(small).await;
    let b = measure(large).await;
    let ratio = large as f64 / small as f64;
    let limit = ratio * GROWTH_BUDGET;
    println!(
        "{:<26} {:>10} {:>10} {:>8}",
        "operation",
        format!("N={small}"),
        format!("N={large}"),
        "growth"
    );
    let mut over = 0;
    for ((name, t1), (_, t2)) in a.iter().zip(&b) {
        let growth = t2.as_secs_f64() / t1.as_secs_f64().max(1e-6);
        let mark = if growth > limit {
            over += 1;
            "  over budget"
        } else {
            ""
        };
        println!(
            "{name:<26} {:>10.3} {:>10.3} {growth:>7.2}×{mark}",
            t1.as_secs_f64(),
            t2.as_secs_f64()
        );
    }
    println!("size ratio {ratio:.1}×; budget {limit:.2}× ({GROWTH_BUDGET} × the size ratio)");
    if over > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
