//! Cost of one policy evaluation: the least-connections example on a 100-real-server service,
//! including instantiation in a fresh store, input conversion and output validation.
//!
//! `cargo bench -p ipvs-policy --bench policy` prints criterion's estimate, then p50/p99 over
//! individually timed evaluations, evaluations per second on one core, and the CPU share of
//! 1000 attached services evaluated once a second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ipvs_policy::{Limits, PolicyEngine};

#[allow(dead_code)]
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../tests/support/guests.rs"]
mod guests;

const SERVERS: usize = 100;
const SERVICES: f64 = 1000.0;

fn main() {
    let engine = PolicyEngine::new(Limits::default(), None).expect("engine");
    let policy = engine
        .load(&guests::component("least_connections"))
        .expect("example loads");
    let input = fixtures::input(SERVERS);
    let first = engine.evaluate(&policy, &input);
    let decision = first.outcome.expect("the example decides");
    assert_eq!(
        decision.reason,
        "least-connections over 100 servers, lowest load 0"
    );
    eprintln!("fuel per evaluation: {}", first.fuel_used);

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("evaluate least_connections, 100 real servers", |b| {
        b.iter(|| black_box(engine.evaluate(&policy, black_box(&input))))
    });
    c.final_summary();

    // Individually timed runs for percentiles (criterion reports means), at two sizes.
    for servers in [10, SERVERS] {
        let input = fixtures::input(servers);
        let mut times: Vec<Duration> = (0..5000)
            .map(|_| {
                let t = Instant::now();
                black_box(engine.evaluate(&policy, black_box(&input)));
                t.elapsed()
            })
            .collect();
        times.sort();
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        let per_core = 1.0 / mean.as_secs_f64();
        let cpu = SERVICES * mean.as_secs_f64() * 100.0;
        println!(
            "policy, {servers} real servers: p50 {:.1} us, p99 {:.1} us, mean {:.1} us; \
             {:.0} evaluations/s per core; 1000 services at 1 s intervals: {:.1} % of one core",
            p(0.50).as_secs_f64() * 1e6,
            p(0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            per_core,
            cpu
        );
    }
}
