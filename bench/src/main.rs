//! The kernel's floor for `cargo xtask bench`: what IPVS itself costs, with as little of our
//! own work around it as the agent's netlink handle allows, so the benchmark can tell the
//! kernel's share of a restore or a table dump from ours.
//!
//! - `ipvs-floor restore FILE`: the `-A`/`-a` lines of an `ipvsadm -R` file (only the forms
//!   the benchmark generates) written pipelined, as [`IpvsHandle::apply`] batches them.
//! - `ipvs-floor dump`: the services dump, then one `GET_DEST` dump per service, all issued
//!   at once on one socket ([`IpvsOps::table`]; the guest has one CPU, so more sockets only
//!   add work).
//!
//! Prints `secs=<f64> services=<n> dests=<n>`; the time leaves out process start and parsing.
//! It is an upper bound on the kernel's cost: the handle's own message handling is in it.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ipvs_agent::ipvs::{
    Destination, ForwardMethod, IpvsHandle, IpvsOp, IpvsOps, Protocol, Scheduler, Service,
    ServiceKey,
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let line = match args.first().map(String::as_str) {
        Some("restore") => {
            let file = args.get(1).context("usage: ipvs-floor restore FILE")?;
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            let ops = parse(&text)?;
            runtime.block_on(restore(&ops))?
        }
        Some("dump") => runtime.block_on(dump())?,
        _ => bail!("usage: ipvs-floor restore FILE | ipvs-floor dump"),
    };
    println!("{line}");
    Ok(())
}

async fn restore(ops: &[IpvsOp]) -> Result<String> {
    let handle = IpvsHandle::new().await?;
    let started = Instant::now();
    let results = handle.apply(ops).await;
    let secs = started.elapsed().as_secs_f64();
    if let Some((i, Err(e))) = results.iter().enumerate().find(|(_, r)| r.is_err()) {
        bail!("write {} ({}) failed: {e}", i + 1, ops[i]);
    }
    let services = ops
        .iter()
        .filter(|o| matches!(o, IpvsOp::NewService(_)))
        .count();
    Ok(format!(
        "secs={secs:.6} services={services} dests={}",
        ops.len() - services
    ))
}

async fn dump() -> Result<String> {
    let handle = IpvsHandle::new().await?;
    let started = Instant::now();
    let table = handle.table().await?;
    let secs = started.elapsed().as_secs_f64();
    let dests: usize = table.iter().map(|(_, d)| d.len()).sum();
    Ok(format!(
        "secs={secs:.6} services={} dests={dests}",
        table.len()
    ))
}

/// `-A -t ADDR:PORT -s SCHED` and `-a -t ADDR:PORT -r ADDR:PORT -m -w W`: what the benchmark
/// generates, nothing more.
fn parse(text: &str) -> Result<Vec<IpvsOp>> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let fail = || format!("line {}: unsupported {line:?}", i + 1);
        match words.as_slice() {
            [] => {}
            ["-A", "-t", vip, "-s", "rr"] => {
                ops.push(IpvsOp::NewService(Service::new(key(vip)?, Scheduler::Rr)));
            }
            ["-a", "-t", vip, "-r", rip, "-m", "-w", w] => {
                let rip: SocketAddr = rip.parse().with_context(fail)?;
                let mut d = Destination::new(rip.ip(), rip.port());
                d.forward = ForwardMethod::Masquerade;
                d.weight = w.parse().with_context(fail)?;
                ops.push(IpvsOp::NewDest(key(vip)?, d));
            }
            _ => bail!(fail()),
        }
    }
    Ok(ops)
}

fn key(vip: &str) -> Result<ServiceKey> {
    let addr: SocketAddr = vip
        .parse()
        .with_context(|| format!("bad address {vip:?}"))?;
    Ok(ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: addr.ip(),
        port: addr.port(),
    })
}
